/*
 * sessions.c - the table of live, authenticated sessions of this broker.
 *
 * Indexed twice with uthash: by the broker's client pointer (ACL checks,
 * disconnects) and by client id (kicks go through
 * mosquitto_kick_client_by_clientid). When a client id is taken over by a
 * new connection, the id index points at the newest session only; the old
 * one stays findable by pointer until its disconnect arrives.
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

int fa_sessions_add(fa_sessions *t, struct mosquitto *client, const char *client_id,
                    const fp_jwt_claims *c)
{
    fa_session *s, *old;

    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->client_id = strdup(client_id);
    if (s->client_id == NULL) {
        free(s);
        return -ENOMEM;
    }
    s->client = client;
    memcpy(s->sub, c->sub, sizeof(s->sub));
    s->role = c->role;
    s->exp = c->exp;
    s->iat = c->has_iat ? c->iat : 0;
    old = fa_sessions_find_id(t, client_id);
    if (old != NULL) {
        HASH_DELETE(hh_id, t->by_id, old);
        old->in_by_id = false;
    }
    HASH_ADD(hh_client, t->by_client, client, sizeof(s->client), s);
    HASH_ADD_KEYPTR(hh_id, t->by_id, s->client_id, strlen(s->client_id), s);
    s->in_by_id = true;
    t->count++;
    return 0;
}

static void sessions__free(fa_sessions *t, fa_session *s)
{
    HASH_DELETE(hh_client, t->by_client, s);
    if (s->in_by_id)
        HASH_DELETE(hh_id, t->by_id, s);
    t->count--;
    free(s->client_id);
    free(s);
}

int fa_sessions_remove(fa_sessions *t, const struct mosquitto *client, char *sub_out,
                       fp_role *role_out)
{
    fa_session *s = fa_sessions_find(t, client);

    if (s == NULL)
        return 0;
    if (sub_out != NULL)
        memcpy(sub_out, s->sub, FP_ID_BUFSZ);
    if (role_out != NULL)
        *role_out = s->role;
    sessions__free(t, s);
    return 1;
}

void fa_sessions_clear(fa_sessions *t)
{
    fa_session *s, *tmp;

    HASH_ITER(hh_client, t->by_client, s, tmp) {
        sessions__free(t, s);
    }
}
