/*
 * ended.c - connections that ended without a held record while the broker
 * may still keep their context: an MQTT 5 client may ask for a session
 * expiry under any client id, which a plugin of mosquitto 2.0 cannot see
 * (held.c holds owned ids only), and a service's MQTT 3.1.1 session with
 * clean session off is not held either. Nothing is delivered into such a
 * session (no record: acl.c refuses), but a configuration reload asks
 * about its context again, with the token of its last connect. Refused,
 * mosquitto 2.0 ends that context a second time and puts it on its
 * session expiry list twice (a freed context left on the list: a crash
 * later); taken for a connect, it would be recorded as a live connection,
 * and kicked later.
 *
 * So each such end is remembered here (client pointer, the SHA-256 of
 * the client id, the token's sub, exp and iat) until a time the caller sets
 * (session_max_lifetime on: the broker keeps no session longer), and a
 * reload passes a context found here with that very token as it is
 * (auth.c). Client pointers are compared, never used: the broker may have
 * freed the context and given its memory to a new connection, whose
 * authentication forgets the entry (fa_ended_forget); a connect that
 * takes the client id forgets the entry of that id too (the broker frees
 * the context it takes over: fa_ended_forget_id). The broker keeps one
 * context per client id, so the set keeps one entry per id.
 *
 * Bounds: FA_ENDED_PER_USER entries per sub (the user's oldest goes
 * first, so no user pushes out another's entries) and, as a last resort,
 * FA_ENDED_MAX in all (the oldest goes first). A session whose entry went
 * is still passed by a reload when it has subscriptions (auth.c); one
 * without is taken for a connect. All entries live equally long, so they
 * are kept oldest first and expiry costs O(expired). Pure data structure
 * (unit-tested); broker thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>
#include <utlist.h>

#include "feed_auth.h"

void fa_ended_id_hash(const char *client_id, unsigned char out[FA_ENDED_HASH_LEN])
{
    SHA256((const unsigned char *)client_id, strlen(client_id), out);
}

/* Removes and frees e, and its user when e was the user's last. */
static void ended__free(fa_ended_set *set, fa_ended *e)
{
    fa_ended_user *u = e->user;

    HASH_DELETE(hh_client, set->by_client, e);
    HASH_DELETE(hh_id, set->by_id, e);
    DL_DELETE(set->oldest, e);
    DL_DELETE2(u->oldest, e, uprev, unext);
    set->count--;
    if (--u->count == 0) {
        HASH_DEL(set->users, u);
        free(u);
    }
    free(e);
}

/* The user entry of sub, made when missing. NULL: out of memory. */
static fa_ended_user *ended__user(fa_ended_set *set, const char *sub)
{
    fa_ended_user *u = NULL;

    HASH_FIND_STR(set->users, sub, u);
    if (u != NULL)
        return u;
    u = calloc(1, sizeof(*u));
    if (u == NULL)
        return NULL;
    snprintf(u->sub, sizeof(u->sub), "%s", sub);
    HASH_ADD_STR(set->users, sub, u);
    if (!FA_HASH_ADDED(u, hh)) {
        free(u);
        return NULL;
    }
    return u;
}

/* Drops u when no entry of it is left (one made for an add that failed). */
static void ended__user_unused(fa_ended_set *set, fa_ended_user *u)
{
    if (u->count > 0)
        return;
    HASH_DEL(set->users, u);
    free(u);
}

int fa_ended_add(fa_ended_set *set, const struct mosquitto *client, const char *client_id,
                 const char *sub, int64_t exp, int64_t iat, int64_t until)
{
    fa_ended *e;
    fa_ended_user *u;

    fa_ended_forget(set, client);
    fa_ended_forget_id(set, client_id);
    u = NULL;
    HASH_FIND_STR(set->users, sub, u);
    if (u != NULL && u->count >= FA_ENDED_PER_USER)
        ended__free(set, u->oldest); /* u stays: it had more than one */
    else if (set->count >= FA_ENDED_MAX)
        ended__free(set, set->oldest); /* anyone's, u's too */
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return -ENOMEM;
    u = ended__user(set, sub);
    if (u == NULL) {
        free(e);
        return -ENOMEM;
    }
    e->client = client;
    fa_ended_id_hash(client_id, e->id_hash);
    snprintf(e->sub, sizeof(e->sub), "%s", sub);
    e->exp = exp;
    e->iat = iat;
    e->until = until;
    e->user = u;
    HASH_ADD(hh_client, set->by_client, client, sizeof(e->client), e);
    if (!FA_HASH_ADDED(e, hh_client))
        goto fail;
    HASH_ADD(hh_id, set->by_id, id_hash, FA_ENDED_HASH_LEN, e);
    if (!FA_HASH_ADDED(e, hh_id)) {
        HASH_DELETE(hh_client, set->by_client, e);
        goto fail;
    }
    DL_APPEND(set->oldest, e);
    DL_APPEND2(u->oldest, e, uprev, unext);
    u->count++;
    set->count++;
    return 0;

fail:
    ended__user_unused(set, u);
    free(e);
    return -ENOMEM;
}

const fa_ended *fa_ended_find(fa_ended_set *set, const struct mosquitto *client)
{
    fa_ended *e = NULL;

    HASH_FIND(hh_client, set->by_client, &client, sizeof(client), e);
    return e;
}

void fa_ended_forget(fa_ended_set *set, const struct mosquitto *client)
{
    fa_ended *e = NULL;

    HASH_FIND(hh_client, set->by_client, &client, sizeof(client), e);
    if (e != NULL)
        ended__free(set, e);
}

void fa_ended_forget_id(fa_ended_set *set, const char *client_id)
{
    unsigned char h[FA_ENDED_HASH_LEN];
    fa_ended *e = NULL;

    if (set->by_id == NULL)
        return; /* nothing remembered: no digest to take (every connect) */
    fa_ended_id_hash(client_id, h);
    HASH_FIND(hh_id, set->by_id, h, FA_ENDED_HASH_LEN, e);
    if (e != NULL)
        ended__free(set, e);
}

void fa_ended_expire(fa_ended_set *set, int64_t now)
{
    while (set->oldest != NULL && set->oldest->until <= now)
        ended__free(set, set->oldest);
}

void fa_ended_clear(fa_ended_set *set)
{
    while (set->oldest != NULL)
        ended__free(set, set->oldest);
}
