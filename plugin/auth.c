/*
 * auth.c - MOSQ_EVT_BASIC_AUTH: the password is a JWT, the username must
 * equal its sub, and a revoked user's older tokens are refused. On a
 * configuration reload (SIGHUP) the broker asks again about every client
 * it has: MOSQ_EVT_RELOAD, then those calls, then its next tick.
 *
 * The client id is checked too: "<user>:<name>" ids belong to their user,
 * persistent sessions need one, and a user holds at most
 * max_sessions_per_user of them on this node (held.c).
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

#define AUTH__NO_TICK_MS 5000

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
 * cut-off, the reserved service prefix. Returns 0 or MOSQ_ERR_AUTH (logged).
 */
static int auth__check_context(fa_plugin *pl, const char *client_id, const char *username,
                               const fp_jwt_claims *c)
{
    int64_t before;
    char why[160];

    if (strcmp(username, c->sub) != 0)
        return auth__refuse(client_id, "username does not match the token's sub");
    before = fa_revocations_get(&pl->revocations, c->sub);
    if (fp_jwt_revoked(c->has_iat, c->iat, before)) {
        snprintf(why, sizeof(why), "token of %s issued at or before its revocation", c->sub);
        return auth__refuse(client_id, why);
    }
    /* The bridges' client ids are reserved, so no user can squat on one
     * while a bridge reconnects. */
    if (c->role != FP_ROLE_SERVICE &&
        strncmp(client_id, FA_SERVICE_CLIENT_PREFIX, strlen(FA_SERVICE_CLIENT_PREFIX)) == 0)
        return auth__refuse(client_id, "client ids starting with \"" FA_SERVICE_CLIENT_PREFIX
                                       "\" are reserved for services");
    return 0;
}

/*
 * Decides whether the session of this connection is held (kept after the
 * connection ends) and checks the client id against its owner and the
 * caps. MQTT 3.1.1 says it exactly (clean session off); MQTT 5's session
 * expiry is not visible to plugins, so an MQTT 5 session with an owned id
 * is held. Returns 0 with *held set, or MOSQ_ERR_AUTH (logged).
 */
static int auth__check_id(fa_plugin *pl, struct mosquitto *client, const char *client_id,
                          const fp_jwt_claims *c, bool *held)
{
    char owner[FP_ID_BUFSZ], why[200];
    bool owned = fa_client_id_owner(client_id, owner);
    fa_session *holder = fa_sessions_find_id(&pl->sessions, client_id);
    bool persistent;
    unsigned n_held;

    *held = false;
    if (owned && strcmp(owner, c->sub) != 0)
        return auth__refuse(client_id, "client id belongs to another user");
    if (holder != NULL && strcmp(holder->sub, c->sub) != 0)
        return auth__refuse(client_id, "client id is in use by another user");
    if (c->role != FP_ROLE_USER)
        return 0;
    if (mosquitto_client_protocol_version(client) == 5)
        persistent = owned;
    else
        persistent = !mosquitto_client_clean_session(client);
    if (persistent && !owned) {
        snprintf(why, sizeof(why),
                 "a persistent session (clean session off) needs a client id \"%s%c<name>\"",
                 c->sub, FA_OWNER_SEP);
        return auth__refuse(client_id, why);
    }
    if (persistent && (holder == NULL || !holder->held)) {
        n_held = fa_presence_held(&pl->presence, c->sub);
        if (n_held >= (unsigned)pl->opts.max_sessions_per_user) {
            snprintf(why, sizeof(why), "%s already has %u persistent sessions on this node",
                     c->sub, n_held);
            return auth__refuse(client_id, why);
        }
    }
    *held = persistent;
    return 0;
}

/*
 * Closes the live connection that holds client_id before a new one of the
 * same user takes its session over, so an MQTT 5 client is told why
 * (DISCONNECT, reason 0x98) rather than finding its socket closed. May
 * free the holder's record (its disconnect runs inside the kick).
 */
static void auth__take_over(fa_plugin *pl, const char *client_id)
{
    fa_session *holder = fa_sessions_find_id(&pl->sessions, client_id);
    char id[80];

    if (holder == NULL || !holder->in_by_client || holder->offline_until != 0 || holder->kicked)
        return;
    holder->kicked = true;
    fa_log_safe(client_id, id, sizeof(id));
    mosquitto_log_printf(MOSQ_LOG_NOTICE,
                         "feed_auth: disconnecting client \"%s\" of %s: session taken over", id,
                         holder->sub);
    mosquitto_kick_client_by_clientid(client_id, false);
}

/*
 * Records the new session and counts it. A held session that replaces a
 * held one of the same id is the same persistent session: counted up
 * before the old is counted down, so presence never blinks.
 */
static int auth__record(fa_plugin *pl, struct mosquitto *client, const char *client_id,
                        const fp_jwt_claims *c, bool held)
{
    fa_session *holder = fa_sessions_find_id(&pl->sessions, client_id);
    bool holder_held = holder != NULL && holder->held;
    char holder_sub[FP_ID_BUFSZ];
    fa_session *s, *replaced;

    if (holder_held)
        memcpy(holder_sub, holder->sub, sizeof(holder_sub));
    s = fa_sessions_add(&pl->sessions, client, client_id, c, &replaced);
    if (s == NULL)
        return -ENOMEM;
    if (replaced != NULL && replaced->offline_until != 0)
        pl->leftovers_due = true; /* ended by the broker now, or a leftover */
    s->held = held;
    /* Presence lists users; a bridge's connection is not one. Neither up
     * can fail: the caller counts the user up around this call, so the
     * user's entry exists (only held sessions are users'). */
    if (c->role == FP_ROLE_USER)
        (void)fa_presence_up(&pl->presence, FA_SET_ONLINE, c->sub);
    if (held)
        (void)fa_presence_up(&pl->presence, FA_SET_HELD, c->sub);
    if (holder_held)
        fa_presence_down(&pl->presence, FA_SET_HELD, holder_sub);
    if (held || holder_held)
        pl->held_changes++;
    /* An offline record stays in by_client until the broker ends its old
     * context (which it does while it completes this connect), or until
     * the next tick finds that it had none (fa_held_drop_leftovers). */
    return 0;
}

/*
 * The token of a basic auth call, and what it must match: verified, and
 * checked against the username and the revocations (auth__check_context).
 * Returns 0 with *claims filled, or MOSQ_ERR_AUTH (logged).
 */
static int auth__check_token(fa_plugin *pl, const struct mosquitto_evt_basic_auth *ev,
                             const char *client_id, fp_jwt_claims *claims)
{
    char reason[256], why[300];
    int rc;

    if (ev->username == NULL || ev->password == NULL)
        return auth__refuse(client_id, "no username or no password (token)");
    rc = fp_jwt_verify(pl->verifier, ev->password, (int64_t)time(NULL), claims, reason,
                       sizeof(reason));
    if (rc != 0) {
        snprintf(why, sizeof(why), "token refused (%s): %s", fp_jwt_strerror(rc), reason);
        return auth__refuse(client_id, why);
    }
    return auth__check_context(pl, client_id, ev->username, claims);
}

int fa_on_reload(int event, void *event_data, void *userdata)
{
    fa_plugin *pl = userdata;

    (void)event;
    (void)event_data;
    /* The tick ends the re-checks. Before the broker's first tick (or
     * with none at all: per_listener_settings true) they would not end,
     * and every later connect would pass unchecked: they run as
     * connects instead. */
    if (!pl->ticked) {
        mosquitto_log_printf(MOSQ_LOG_WARNING,
                             "feed_auth: configuration reload before the broker's first tick: "
                             "every client it has is checked as a new connect");
        return MOSQ_ERR_PLUGIN_DEFER;
    }
    /* Records the broker has ended since the last tick go first: a new
     * connection must not find one at its address. */
    fa_held_drop_leftovers(pl);
    pl->reloading = true;
    mosquitto_log_printf(MOSQ_LOG_INFO, "feed_auth: configuration reload: the tokens of the "
                                        "connected clients are checked again, sessions are kept");
    return MOSQ_ERR_PLUGIN_DEFER;
}

/*
 * Whether the token a context holds is the very token a record of it was
 * made from, with sub, exp and iat (0: none) (an ended connection's
 * context keeps the token of its last connect): valid as it was then
 * (signature, alg, iss, aud, lifetime) at a moment before its exp, since
 * it may have run out by now, with those claims. False for anything else.
 */
static bool auth__same_token(fa_plugin *pl, const struct mosquitto_evt_basic_auth *ev,
                             const char *sub, int64_t exp, int64_t iat)
{
    fp_jwt_claims claims;
    char reason[256];

    if (ev->username == NULL || ev->password == NULL ||
        fp_jwt_verify(pl->verifier, ev->password, exp - 1, &claims, reason, sizeof(reason)) != 0)
        return false;
    return claims.exp == exp && (claims.has_iat ? claims.iat : 0) == iat &&
           strcmp(claims.sub, sub) == 0 && strcmp(ev->username, sub) == 0;
}

/*
 * A basic auth call while pl->reloading: mosquitto asks again about every
 * context it has, connected or not. Those it knows are answered here
 * (*handled):
 * - a connected client recorded at this address under this id is checked
 *   as at its connect (token, username, revocation) and kept as it is
 *   when it passes (refused, the broker disconnects it);
 * - an offline session recorded there passes when it holds that record's
 *   token (auth__same_token), though it may have run out since: refusing
 *   it would make mosquitto 2.0 end a connection that is already over a
 *   second time;
 * - so does a context with no record that has subscriptions (a session
 *   the broker kept: a new connection has none yet), or whose connection
 *   ended here with that token and id (ended.c: a session the plugin does
 *   not hold), as it is, still without a record;
 * - a session the broker restored from its persistence (no address, no
 *   token) passes.
 * Anything else is not one of those (the broker serves WebSocket
 * connections between the reload and its next tick), nor is a context
 * with another token than what is known of its address (a freed
 * context's memory reused): a connect, checked as any other, refused or
 * recorded. A connection that slips in with the very token known there
 * gets nothing from it (acl.c: an offline record only receives, and no
 * record gets nothing). Returns MOSQ_ERR_SUCCESS or MOSQ_ERR_AUTH when
 * *handled.
 */
static int auth__recheck(fa_plugin *pl, const struct mosquitto_evt_basic_auth *ev,
                         const char *client_id, bool *handled)
{
    fa_session *s = fa_sessions_find(&pl->sessions, ev->client);
    unsigned char id[FA_ENDED_HASH_LEN];
    const fa_ended *e;
    fp_jwt_claims claims;

    *handled = true;
    if (mosquitto_client_address(ev->client) == NULL && ev->password == NULL)
        return MOSQ_ERR_SUCCESS;
    if (s != NULL && strcmp(s->client_id, client_id) == 0 && s->offline_until == 0)
        return auth__check_token(pl, ev, client_id, &claims);
    if (s != NULL && strcmp(s->client_id, client_id) == 0 &&
        auth__same_token(pl, ev, s->sub, s->exp, s->iat))
        return MOSQ_ERR_SUCCESS;
    /* A context with subscriptions and no record is a session the broker
     * kept: a new connection gets its session's subscriptions only once
     * it is authenticated (connect__on_authorised). */
    if (s == NULL && mosquitto_client_sub_count(ev->client) > 0)
        return MOSQ_ERR_SUCCESS;
    e = s == NULL ? fa_ended_find(&pl->ended, ev->client) : NULL;
    if (e != NULL)
        fa_ended_id_hash(client_id, id);
    if (e != NULL && memcmp(e->id_hash, id, sizeof(id)) == 0 &&
        auth__same_token(pl, ev, e->sub, e->exp, e->iat))
        return MOSQ_ERR_SUCCESS;
    *handled = false;
    return MOSQ_ERR_SUCCESS;
}

/*
 * Whether the broker sends this plugin no tick: with per_listener_settings
 * true mosquitto 2.0 sends none, and without it no token that expires or
 * is revoked is ever kicked, no session is saved and the Redis thread's
 * lines are never logged. A tick follows every pass of the broker's loop
 * (at least every 100 ms), and a connect is handled inside one: true once
 * AUTH__NO_TICK_MS have passed since the first connect without any tick
 * (logged once, as an error). Connects are refused from then on.
 */
static bool auth__no_tick(fa_plugin *pl)
{
    int64_t now;

    if (pl->ticked)
        return false;
    now = fp_time_mono_ms();
    if (pl->first_auth_ms == 0) {
        pl->first_auth_ms = now;
        return false;
    }
    if (now - pl->first_auth_ms < AUTH__NO_TICK_MS)
        return false;
    if (!pl->no_tick_logged) {
        mosquitto_log_printf(MOSQ_LOG_ERR,
                             "feed_auth: the broker has sent no tick in %d s of connects "
                             "(per_listener_settings true?): without it no expired or revoked "
                             "token is kicked, so every connect is refused from now on; set "
                             "per_listener_settings false",
                             AUTH__NO_TICK_MS / 1000);
        pl->no_tick_logged = true;
    }
    return true;
}

int fa_on_basic_auth(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_basic_auth *ev = event_data;
    fa_plugin *pl = userdata;
    const char *client_id = mosquitto_client_id(ev->client);
    fp_jwt_claims claims;
    fa_session *stale;
    bool held, handled;
    int rc;

    (void)event;
    if (client_id == NULL)
        client_id = "";
    if (pl->reloading) {
        rc = auth__recheck(pl, ev, client_id, &handled);
        if (handled)
            return rc;
    }
    /* A connect: a context remembered as ended (ended.c) was freed, and
     * its memory is this new connection's. */
    fa_ended_forget(&pl->ended, ev->client);
    if (auth__no_tick(pl))
        return auth__refuse(client_id, "the broker sends no tick (per_listener_settings true?)");
    rc = auth__check_token(pl, ev, client_id, &claims);
    if (rc != 0)
        return rc;
    /* A record at this address is stale: a connection authenticates once,
     * and a context the broker freed (an expired session) may be reused. */
    stale = fa_sessions_find(&pl->sessions, ev->client);
    if (stale != NULL)
        fa_held_drop_gone(pl, stale);
    rc = auth__check_id(pl, ev->client, client_id, &claims, &held);
    if (rc != 0)
        return rc;
    /* The user is counted once more across the take-over: over TCP the old
     * connection's disconnect runs inside the kick, and would take the
     * count through 0 before the new one is recorded (an SREM then an
     * SADD: a post routed between them would skip this node). */
    if (claims.role == FP_ROLE_USER &&
        fa_presence_up(&pl->presence, FA_SET_ONLINE, claims.sub) != 0)
        return auth__refuse(client_id, "out of memory");
    auth__take_over(pl, client_id);
    rc = auth__record(pl, ev->client, client_id, &claims, held);
    if (claims.role == FP_ROLE_USER)
        fa_presence_down(&pl->presence, FA_SET_ONLINE, claims.sub);
    if (rc != 0)
        return auth__refuse(client_id, "out of memory");
    /* The broker frees the context this connect takes the id from. */
    fa_ended_forget_id(&pl->ended, client_id);
    return MOSQ_ERR_SUCCESS;
}
