/*
 * kick.c - the end of connections: disconnects, and kicking clients whose
 * token expired or whose user was revoked.
 *
 * MOSQ_EVT_TICK runs on the broker thread many times a second. Expiry (of
 * tokens, and of offline persistent sessions, held.c) is checked at most
 * KICK__EXPIRY_PERIOD_MS apart; revocations as soon as the
 * Redis thread has raised one. Both walk the session table, which costs
 * O(sessions) per walk: fine for tens of thousands of sessions per node,
 * a heap keyed by exp would be the next step beyond that.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>

#include "feed_auth.h"

#define KICK__EXPIRY_PERIOD_MS 200

int fa_on_disconnect(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_disconnect *ev = event_data;
    fa_plugin *pl = userdata;
    fa_session *s;

    (void)event;
    s = fa_sessions_find(&pl->sessions, ev->client);
    if (s != NULL)
        fa_held_connection_gone(pl, s);
    return MOSQ_ERR_SUCCESS;
}

/* Why a session must go now, or NULL. */
static const char *kick__reason(fa_plugin *pl, const fa_session *s, int64_t now, bool revocations)
{
    int64_t before;

    if (now >= s->exp)
        return "token expired";
    if (revocations) {
        before = fa_revocations_get(&pl->revocations, s->sub);
        if (fp_jwt_revoked(s->iat != 0, s->iat, before))
            return "user revoked";
    }
    return NULL;
}

/*
 * Collects the client ids to kick first and kicks afterwards, because a
 * kick may remove sessions from the table. Only the newest session of a
 * client id is kicked by id; an older one is already being taken over.
 * Offline sessions are never kicked: they have no connection, and
 * kicking a disconnected context is not something mosquitto 2.0 handles.
 * Allocates only when something is due. Returns false when it ran out of
 * memory before it was through: the caller sweeps again at the next tick.
 */
static bool kick__sweep(fa_plugin *pl, int64_t now, bool revocations)
{
    fa_session *s, *tmp;
    char **ids = NULL, id[80];
    const char *why;
    size_t n = 0, i;
    bool whole = true;

    HASH_ITER(hh_client, pl->sessions.by_client, s, tmp) {
        why = s->in_by_id && !s->kicked && s->offline_until == 0
                  ? kick__reason(pl, s, now, revocations)
                  : NULL;
        if (why == NULL)
            continue;
        if (ids == NULL)
            ids = calloc(pl->sessions.count, sizeof(*ids));
        if (ids == NULL || n == pl->sessions.count) {
            whole = false;
            break;
        }
        ids[n] = strdup(s->client_id);
        if (ids[n] == NULL) {
            whole = false;
            continue;
        }
        s->kicked = true;
        fa_log_safe(s->client_id, id, sizeof(id));
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "feed_auth: disconnecting client \"%s\" of %s: %s",
                             id, s->sub, why);
        n++;
    }
    for (i = 0; i < n; i++) {
        mosquitto_kick_client_by_clientid(ids[i], false);
        free(ids[i]);
    }
    free(ids);
    return whole;
}

int fa_on_tick(int event, void *event_data, void *userdata)
{
    fa_plugin *pl = userdata;
    bool revocations;
    int64_t now_ms = fp_time_mono_ms();

    (void)event;
    (void)event_data;
    pl->reloading = false; /* the reload's re-checks are over */
    pl->ticked = true;
    fa_redis_drain_log(pl->redis);
    fa_held_autosave(pl, now_ms);
    fa_held_drop_leftovers(pl);
    revocations = atomic_exchange(&pl->revocations.pending, false);
    if (!revocations && now_ms < pl->next_expiry_check_ms)
        return MOSQ_ERR_SUCCESS;
    pl->next_expiry_check_ms = now_ms + KICK__EXPIRY_PERIOD_MS;
    if (!kick__sweep(pl, (int64_t)time(NULL), revocations)) {
        /* Out of memory: the next tick sweeps again, revocations too. */
        pl->next_expiry_check_ms = now_ms;
        if (revocations)
            atomic_store(&pl->revocations.pending, true);
    }
    fa_held_expire(pl, (int64_t)time(NULL));
    fa_ended_expire(&pl->ended, (int64_t)time(NULL));
    return MOSQ_ERR_SUCCESS;
}
