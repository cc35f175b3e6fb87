/*
 * sessions.c - the table of live, authenticated sessions of this broker.
 *
 * Indexed twice with uthash: by the broker's client pointer (ACL checks,
 * disconnects) and by client id (kicks go through
 * mosquitto_kick_client_by_clientid; ownership). When a client id is taken
 * over by a new connection, the id index points at the newest session
 * only; the old one stays findable by pointer until its disconnect
 * arrives. A record loaded from the state file (held.c) has no client
 * until its restored session is met, so it is in by_id only.
 * Broker thread only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "feed_auth.h"

fa_session *fa_sessions_find(fa_sessions *t, const struct mosquitto *client)
{
    fa_session *s = NULL;

    HASH_FIND(hh_client, t->by_client, &client, sizeof(client), s);
    return s;
}

fa_session *fa_sessions_find_id(fa_sessions *t, const char *client_id)
{
    fa_session *s = NULL;

    HASH_FIND(hh_id, t->by_id, client_id, strlen(client_id), s);
    return s;
}

bool fa_client_id_owner(const char *client_id, char owner[FP_ID_BUFSZ])
{
    const char *sep;
    size_t len;

    if (client_id == NULL)
        return false;
    sep = strchr(client_id, FA_OWNER_SEP);
    if (sep == NULL)
        return false;
    len = (size_t)(sep - client_id);
    if (!fp_id_valid_n(client_id, len))
        return false;
    memcpy(owner, client_id, len);
    owner[len] = '\0';
    return true;
}

fa_session *fa_sessions_add(fa_sessions *t, struct mosquitto *client, const char *client_id,
                            const fp_jwt_claims *c, fa_session **replaced)
{
    fa_session *s, *old;

    *replaced = NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->client_id = strdup(client_id);
    if (s->client_id == NULL) {
        free(s);
        return NULL;
    }
    memcpy(s->sub, c->sub, sizeof(s->sub));
    s->role = c->role;
    s->exp = c->exp;
    s->iat = c->has_iat ? c->iat : 0;
    /* Both indexes take s before the one it replaces leaves by_id: out of
     * memory, nothing changed. */
    old = fa_sessions_find_id(t, client_id);
    if (client != NULL && fa_sessions_bind(t, s, client) != 0)
        goto fail;
    HASH_ADD_KEYPTR(hh_id, t->by_id, s->client_id, strlen(s->client_id), s);
    if (!FA_HASH_ADDED(s, hh_id)) {
        if (s->in_by_client)
            HASH_DELETE(hh_client, t->by_client, s);
        goto fail;
    }
    s->in_by_id = true;
    t->count++;
    if (old != NULL) {
        HASH_DELETE(hh_id, t->by_id, old);
        old->in_by_id = false;
        if (old->in_by_client)
            *replaced = old;
        else
            fa_sessions_free(t, old); /* a loaded record: nothing else knows it */
    }
    return s;

fail:
    free(s->client_id);
    free(s);
    return NULL;
}

int fa_sessions_bind(fa_sessions *t, fa_session *s, struct mosquitto *client)
{
    s->client = client;
    HASH_ADD(hh_client, t->by_client, client, sizeof(s->client), s);
    if (!FA_HASH_ADDED(s, hh_client)) {
        s->client = NULL;
        return -ENOMEM;
    }
    s->in_by_client = true;
    return 0;
}

void fa_sessions_free(fa_sessions *t, fa_session *s)
{
    if (s->in_by_client)
        HASH_DELETE(hh_client, t->by_client, s);
    if (s->in_by_id)
        HASH_DELETE(hh_id, t->by_id, s);
    t->count--;
    free(s->client_id);
    free(s);
}

void fa_sessions_clear(fa_sessions *t)
{
    fa_session *s, *tmp;

    HASH_ITER(hh_client, t->by_client, s, tmp) {
        fa_sessions_free(t, s);
    }
    HASH_ITER(hh_id, t->by_id, s, tmp)
    {
        fa_sessions_free(t, s);
    }
}
