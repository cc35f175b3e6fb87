/*
 * auth.c - MOSQ_EVT_BASIC_AUTH: the password is a JWT, the username must
 * equal its sub, and a revoked user's older tokens are refused.
 *
 * Every refusal is one log line naming the reason and the client id, never
 * the token. The check is CPU work only: the revocation table is an
 * in-memory copy kept current by the Redis thread, so a Redis outage never
 * slows or stops authentication.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>

#include "feed_auth.h"

void fa_log_safe(const char *s, char *out, size_t outsz)
{
    size_t i;

    if (outsz == 0)
        return;
    if (s == NULL)
        s = "(none)";
    for (i = 0; s[i] != '\0' && i < 64 && i + 1 < outsz; i++) {
        unsigned char c = (unsigned char)s[i];
        /* Quotes too: the id is logged between quotes. */
        out[i] = (c < 0x20 || c == 0x7f || c == '"' || c == '\\') ? '?' : (char)c;
    }
    out[i] = '\0';
}

/* ------------------------------------------------------------ revocations */

int fa_revocations_init(fa_revocations *r)
{
    int rc;

    r->map = NULL;
    atomic_init(&r->pending, false);
    rc = pthread_mutex_init(&r->lock, NULL);
    return rc == 0 ? 0 : -rc;
}

void fa_revocations_destroy(fa_revocations *r)
{
    fa_revocation *e, *tmp;

    HASH_ITER(hh, r->map, e, tmp) {
        HASH_DEL(r->map, e);
        free(e);
    }
    pthread_mutex_destroy(&r->lock);
}

void fa_revocations_raise(fa_revocations *r, const char *sub, int64_t before)
{
    fa_revocation *e = NULL;
    bool raised = false;

    if (!fp_id_valid(sub) || before <= 0)
        return;
    pthread_mutex_lock(&r->lock);
    HASH_FIND_STR(r->map, sub, e);
    if (e == NULL) {
        e = calloc(1, sizeof(*e));
        if (e != NULL) {
            snprintf(e->sub, sizeof(e->sub), "%s", sub);
            HASH_ADD_STR(r->map, sub, e);
        }
    }
    if (e != NULL && before > e->before) {
        e->before = before;
        raised = true;
    }
    pthread_mutex_unlock(&r->lock);
    if (raised)
        atomic_store(&r->pending, true);
}

int64_t fa_revocations_get(fa_revocations *r, const char *sub)
{
    fa_revocation *e = NULL;
    int64_t before;

    pthread_mutex_lock(&r->lock);
    HASH_FIND_STR(r->map, sub, e);
    before = e != NULL ? e->before : 0;
    pthread_mutex_unlock(&r->lock);
    return before;
}

/* ------------------------------------------------------------ basic auth */

static int auth__refuse(const char *client_id, const char *why)
{
    char id[80];

    fa_log_safe(client_id, id, sizeof(id));
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "feed_auth: refused client \"%s\": %s", id, why);
    return MOSQ_ERR_AUTH;
}

/*
 * Checks what the token alone cannot: username == sub, the revocation
 * cut-off, and that the client id is not held by another user's live
 * session (which would let one user kick another by taking over its id).
 * Returns 0 or MOSQ_ERR_AUTH (logged).
 */
static int auth__check_context(fa_plugin *pl, const char *client_id, const char *username,
                               const fp_jwt_claims *c)
{
    fa_session *holder;
    int64_t before;
    char why[160];

    if (strcmp(username, c->sub) != 0)
        return auth__refuse(client_id, "username does not match the token's sub");
    before = fa_revocations_get(&pl->revocations, c->sub);
    if (fp_jwt_revoked(c->has_iat, c->iat, before)) {
        snprintf(why, sizeof(why), "token of %s issued at or before its revocation", c->sub);
        return auth__refuse(client_id, why);
    }
    holder = fa_sessions_find_id(&pl->sessions, client_id);
    if (holder != NULL && strcmp(holder->sub, c->sub) != 0)
        return auth__refuse(client_id, "client id is in use by another user");
    /* The bridges' client ids are reserved, so no user can squat on one
     * while a bridge reconnects. */
    if (c->role != FP_ROLE_SERVICE &&
        strncmp(client_id, FA_SERVICE_CLIENT_PREFIX, strlen(FA_SERVICE_CLIENT_PREFIX)) == 0)
        return auth__refuse(client_id, "client ids starting with \"" FA_SERVICE_CLIENT_PREFIX
                                       "\" are reserved for services");
    return 0;
}

int fa_on_basic_auth(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_basic_auth *ev = event_data;
    fa_plugin *pl = userdata;
    const char *client_id = mosquitto_client_id(ev->client);
    fp_jwt_claims claims;
    char reason[256], why[300], old_sub[FP_ID_BUFSZ];
    fp_role old_role;
    int rc;

    (void)event;
    if (client_id == NULL)
        client_id = "";
    if (ev->username == NULL || ev->password == NULL)
        return auth__refuse(client_id, "no username or no password (token)");
    rc = fp_jwt_verify(pl->verifier, ev->password, (int64_t)time(NULL), &claims, reason,
                       sizeof(reason));
    if (rc != 0) {
        snprintf(why, sizeof(why), "token refused (%s): %s", fp_jwt_strerror(rc), reason);
        return auth__refuse(client_id, why);
    }
    rc = auth__check_context(pl, client_id, ev->username, &claims);
    if (rc != 0)
        return rc;
    /* A connection authenticates once; never count one twice. */
    if (fa_sessions_remove(&pl->sessions, ev->client, old_sub, &old_role) == 1 &&
        old_role == FP_ROLE_USER)
        fa_presence_session_down(&pl->presence, old_sub);
    if (fa_sessions_add(&pl->sessions, ev->client, client_id, &claims) != 0)
        return auth__refuse(client_id, "out of memory");
    /* Presence lists users; a bridge's connection is not one. */
    if (claims.role == FP_ROLE_USER)
        fa_presence_session_up(&pl->presence, claims.sub);
    return MOSQ_ERR_SUCCESS;
}
