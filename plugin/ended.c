/*
 * ended.c - connections that ended without a held record while the broker
 * may still keep their context: an MQTT 5 client may ask for a session
 * expiry under any client id, and a plugin of mosquitto 2.0 cannot see it
 * (held.c holds owned ids only). Nothing is delivered into such a session
 * (no record: acl.c refuses), but a configuration reload asks about its
 * context again, with the token of its last connect. Refused, mosquitto
 * 2.0 ends that context a second time and puts it on its session expiry
 * list twice (a freed context left on the list: a crash later); taken for
 * a connect, it would be recorded as a live connection, and kicked later.
 *
 * So each such end is remembered here (client pointer, client id, token)
 * for session_max_lifetime, the longest the broker keeps a session
 * (persistent_client_expiration equals it), and a reload passes a context
 * found here with that very token as it is (auth.c). Client pointers are
 * compared, never used: the broker may have freed the context and given
 * its memory to a new connection, whose authentication forgets the entry
 * (fa_ended_forget).
 *
 * All entries live equally long, so they are kept oldest first and expiry
 * costs O(expired); at most FA_ENDED_MAX of them, the oldest going first.
 * Broker thread only.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <utlist.h>

#include "feed_auth.h"

/* Removes and frees e. */
static void ended__free(fa_ended_set *set, fa_ended *e)
{
    HASH_DEL(set->by_client, e);
    DL_DELETE(set->oldest, e);
    set->count--;
    free(e->client_id);
    free(e);
}

void fa_ended_add(fa_plugin *pl, const fa_session *s)
{
    fa_ended_set *set = &pl->ended;
    fa_ended *e;

    if (s->client == NULL || s->offline_until != 0 ||
        mosquitto_client_protocol_version(s->client) != 5)
        return;
    fa_ended_forget(pl, s->client);
    if (set->count >= FA_ENDED_MAX)
        ended__free(set, set->oldest);
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return;
    e->client_id = strdup(s->client_id);
    if (e->client_id == NULL) {
        free(e);
        return;
    }
    e->client = s->client;
    memcpy(e->sub, s->sub, sizeof(e->sub));
    e->exp = s->exp;
    e->iat = s->iat;
    /* One second more, as held.c: the broker expires a session once its
     * end is strictly in the past. */
    e->until = (int64_t)time(NULL) + pl->opts.session_max_lifetime + 1;
    HASH_ADD_PTR(set->by_client, client, e);
    DL_APPEND(set->oldest, e);
    set->count++;
}

const fa_ended *fa_ended_find(fa_plugin *pl, const struct mosquitto *client)
{
    fa_ended *e = NULL;

    HASH_FIND_PTR(pl->ended.by_client, &client, e);
    return e;
}

void fa_ended_forget(fa_plugin *pl, const struct mosquitto *client)
{
    fa_ended *e = NULL;

    HASH_FIND_PTR(pl->ended.by_client, &client, e);
    if (e != NULL)
        ended__free(&pl->ended, e);
}

void fa_ended_expire(fa_plugin *pl, int64_t now)
{
    while (pl->ended.oldest != NULL && pl->ended.oldest->until <= now)
        ended__free(&pl->ended, pl->ended.oldest);
}

void fa_ended_clear(fa_ended_set *set)
{
    while (set->oldest != NULL)
        ended__free(set, set->oldest);
}
