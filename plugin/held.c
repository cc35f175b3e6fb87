/*
 * held.c - persistent sessions: who owns a client id, the records that
 * outlive a connection, and the state file that carries them over a
 * broker restart: written at a graceful stop, and every
 * session_save_interval seconds while they change, so that a crash
 * loses no more of them than the broker's autosave loses of its sessions.
 *
 * A client id "<user>:<name>" belongs to <user> (auth.c refuses everyone
 * else), and only such ids get persistent sessions. When the connection of
 * a held session ends, its record stays in the session table, offline,
 * for session_max_lifetime seconds: the broker keeps queueing the user's
 * deliveries into it (acl.c admits them), and presence keeps the user in
 * sessions:<node> so routing sends them here. Past its lifetime the record
 * goes; so does the user's sessions:<node> entry once no held session is
 * left.
 *
 * mosquitto 2.0 tells a plugin neither a client's session expiry interval
 * nor when it expires a session, so the plugin keeps its own clock: the
 * broker's persistent_client_expiration must equal session_max_lifetime
 * (docs/plugin.md). A record whose broker session went earlier (an MQTT 5
 * client asking for less) only costs a routed delivery that finds no
 * subscriber; its client pointer is never used again, because the broker
 * sends no event for a freed context. The record goes when a new
 * connection at the same address is authenticated (the stale record is
 * dropped first), or at the next tick after a new connection took its
 * client id (fa_held_drop_leftovers).
 *
 * Broker thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>

#include "feed_auth.h"

#define HELD__MAGIC "feedpush-sessions 1"
/* The longest client id MQTT allows (a two-byte length). */
#define HELD__ID_MAX 65535

void fa_held_drop(fa_plugin *pl, fa_session *s)
{
    if (s->held)
        pl->held_changes++;
    if (s->role == FP_ROLE_USER && s->offline_until == 0 && s->in_by_client)
        fa_presence_down(&pl->presence, FA_SET_ONLINE, s->sub);
    if (s->held && s->in_by_id)
        fa_presence_down(&pl->presence, FA_SET_HELD, s->sub);
    fa_sessions_free(&pl->sessions, s);
}

void fa_held_drop_gone(fa_plugin *pl, fa_session *s)
{
    char id[80];

    fa_log_safe(s->client_id, id, sizeof(id));
    mosquitto_log_printf(MOSQ_LOG_INFO,
                         "feed_auth: session \"%s\" of %s is no longer in the broker (an MQTT 5 "
                         "session expiry shorter than session_max_lifetime, 0 included, or a "
                         "persistent_client_expiration shorter than it); its record is dropped",
                         id, s->sub);
    fa_held_drop(pl, s);
}

/* Whether the broker may keep the context of s's connection, which ends
 * without a held record (ended.c): the newest of its id, and an MQTT 5
 * client (its session expiry is not visible) or one with clean session
 * off (a service's: a user's is held or refused). */
static bool held__broker_may_keep(const fa_session *s)
{
    return s->client != NULL && s->offline_until == 0 && s->in_by_id &&
           (mosquitto_client_protocol_version(s->client) == 5 ||
            !mosquitto_client_clean_session(s->client));
}

void fa_held_connection_gone(fa_plugin *pl, fa_session *s)
{
    if (!s->held || !s->in_by_id || s->offline_until != 0) {
        /* The broker expires a session once its end is strictly in the
         * past (whole seconds): one second more, as below. */
        if (held__broker_may_keep(s) &&
            fa_ended_add(&pl->ended, s->client, s->client_id, s->sub, s->exp, s->iat,
                         (int64_t)time(NULL) + pl->opts.session_max_lifetime + 1) != 0)
            mosquitto_log_printf(MOSQ_LOG_WARNING,
                                 "feed_auth: out of memory: a configuration reload may "
                                 "refuse the ended session of %s",
                                 s->sub);
        fa_held_drop(pl, s);
        return;
    }
    fa_presence_down(&pl->presence, FA_SET_ONLINE, s->sub);
    pl->held_changes++;
    /* The broker expires a session once its end is strictly in the past
     * (whole seconds): one more second, and the two agree. */
    s->offline_until = (int64_t)time(NULL) + pl->opts.session_max_lifetime + 1;
    s->kicked = false;
}

fa_session *fa_held_adopt(fa_plugin *pl, struct mosquitto *client)
{
    const char *id = mosquitto_client_id(client);
    fa_session *s;

    if (id == NULL)
        return NULL;
    s = fa_sessions_find_id(&pl->sessions, id);
    if (s == NULL || s->in_by_client || s->offline_until == 0)
        return NULL;
    if (fa_sessions_bind(&pl->sessions, s, client) != 0)
        return NULL; /* out of memory: this check is denied, the next tries again */
    pl->held_changes++;
    return s;
}

void fa_held_expire(fa_plugin *pl, int64_t now)
{
    fa_session *s, *tmp;
    char id[80];

    HASH_ITER(hh_id, pl->sessions.by_id, s, tmp)
    {
        if (s->offline_until == 0 || s->offline_until > now)
            continue;
        fa_log_safe(s->client_id, id, sizeof(id));
        mosquitto_log_printf(MOSQ_LOG_INFO, "feed_auth: persistent session \"%s\" of %s expired",
                             id, s->sub);
        fa_held_drop(pl, s);
    }
}

/*
 * When a new connection takes the client id of an offline record, the
 * record leaves by_id (fa_sessions_add) and waits in by_client for the
 * broker to end its old context, which the broker does while it completes
 * that connect, before the next tick. A session that ended with its
 * connection (an MQTT 5 client with session expiry 0, taken for a held
 * one) has no context left, so no end ever comes: an offline record still
 * out of by_id at a tick is such a leftover, and goes. Walks the table
 * only after such a take-over (pl->leftovers_due); client pointers are
 * compared, never used.
 */
void fa_held_drop_leftovers(fa_plugin *pl)
{
    fa_session *s, *tmp;

    if (!pl->leftovers_due)
        return;
    pl->leftovers_due = false;
    HASH_ITER(hh_client, pl->sessions.by_client, s, tmp)
    {
        if (!s->in_by_id && s->offline_until != 0)
            fa_held_drop_gone(pl, s);
    }
}

/* ------------------------------------------------------------ state file */

/* Client ids are any UTF-8 the client chose, so the file holds them in hex. */
static void held__hex(const char *s, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        out[2 * i] = digits[(unsigned char)s[i] >> 4];
        out[2 * i + 1] = digits[(unsigned char)s[i] & 15];
    }
    out[2 * i] = '\0';
}

static int held__nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes hex into out (outsz bytes). Returns 0 or -EINVAL. */
static int held__unhex(const char *hex, size_t len, char *out, size_t outsz)
{
    size_t i;
    int hi, lo;

    if (len % 2 != 0 || len == 0 || len / 2 >= outsz)
        return -EINVAL;
    for (i = 0; i < len / 2; i++) {
        hi = held__nibble(hex[2 * i]);
        lo = held__nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            return -EINVAL;
        out[i] = (char)(hi << 4 | lo);
    }
    out[i] = '\0';
    return 0;
}

/*
 * One line "<hex client id> <sub> <offline_until>" (any client id MQTT
 * allows, so up to 131,070 hex digits) into a held, offline record
 * without a client. offline_until 0: the session was connected
 * when the file was written, so its connection ended at that moment or
 * later (a crash), and it lasts session_max_lifetime from now: too long
 * only costs a routed delivery that finds no subscriber. An end further
 * than that (session_max_lifetime lowered since) is brought to it. id: a buffer of
 * HELD__ID_MAX + 1 bytes. Returns 1 when added, 0 when skipped (expired,
 * or the id is not the user's), -EINVAL when malformed, -ENOMEM.
 */
static int held__load_line(fa_plugin *pl, char *line, char *id, int64_t now)
{
    char owner[FP_ID_BUFSZ], *end;
    size_t hex_len = strcspn(line, " ");
    fp_jwt_claims c;
    fa_session *s, *replaced;
    long long until;
    int n = 0;

    memset(&c, 0, sizeof(c));
    if (line[hex_len] != ' ' || sscanf(line + hex_len, " %64s %lld%n", c.sub, &until, &n) != 2 ||
        n == 0)
        return -EINVAL;
    end = line + hex_len + n;
    if (*end != '\n' && *end != '\0')
        return -EINVAL;
    if (held__unhex(line, hex_len, id, HELD__ID_MAX + 1) != 0 || !fp_id_valid(c.sub))
        return -EINVAL;
    /* 0, or an end further than session_max_lifetime (a file written
     * with a longer one, or a damaged number): the session lasts that
     * long from now, and the next save writes that end. */
    if (until == 0 || until > now + pl->opts.session_max_lifetime + 1) {
        until = now + pl->opts.session_max_lifetime + 1;
        pl->held_changes++;
    }
    if (!fa_client_id_owner(id, owner) || strcmp(owner, c.sub) != 0 || until <= now)
        return 0;
    if (fa_sessions_find_id(&pl->sessions, id) != NULL)
        return 0;
    c.role = FP_ROLE_USER;
    s = fa_sessions_add(&pl->sessions, NULL, id, &c, &replaced);
    if (s == NULL)
        return -ENOMEM;
    if (fa_presence_up(&pl->presence, FA_SET_HELD, s->sub) != 0) {
        fa_sessions_free(&pl->sessions, s);
        return -ENOMEM;
    }
    s->held = true;
    s->offline_until = until;
    return 1;
}

/* What fa_held_load counts while it reads the file, and the client id
 * buffer of its lines. */
typedef struct {
    fa_plugin *pl;
    char *id;
    int64_t now;
    size_t loaded, bad;
} held__load;

/* One line of the file (a fa_statefile_read line reader): counted as
 * loaded or bad (held__load_line). Returns 0, or -ENOMEM to stop. */
static int held__read_line(char *line, void *arg)
{
    held__load *l = arg;
    int rc = held__load_line(l->pl, line, l->id, l->now);

    if (rc == 1)
        l->loaded++;
    else if (rc == -EINVAL)
        l->bad++;
    return rc == -ENOMEM ? rc : 0;
}

/*
 * Reads plugin_opt_session_file, written by the previous run at its
 * graceful stop (fa_held_save) or at its last periodic save before a
 * crash (fa_held_autosave). A missing file is a first start. Malformed
 * lines are skipped, each of them alone, with one warning: the file is
 * the plugin's own, so that means damage, not input. A file that is not
 * a session file, or a read error in it, stops the broker from starting:
 * the next save would replace the file, and with it the records not read
 * (or another file given by mistake). Returns 0 or -errno (logged).
 */
int fa_held_load(fa_plugin *pl)
{
    held__load l = {.pl = pl, .now = (int64_t)time(NULL)};
    int rc;

    if (pl->opts.session_file == NULL)
        return 0;
    l.id = malloc(HELD__ID_MAX + 1);
    rc = l.id != NULL
             ? fa_statefile_read(pl->opts.session_file, HELD__MAGIC, "session", held__read_line, &l)
             : -ENOMEM;
    free(l.id);
    if (rc == -ENOMEM)
        mosquitto_log_printf(MOSQ_LOG_ERR, "feed_auth: out of memory loading %s",
                             pl->opts.session_file);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    if (l.bad > 0)
        mosquitto_log_printf(MOSQ_LOG_WARNING, "feed_auth: %s: %zu malformed lines skipped",
                             pl->opts.session_file, l.bad);
    mosquitto_log_printf(MOSQ_LOG_INFO, "feed_auth: %zu persistent sessions loaded from %s",
                         l.loaded, pl->opts.session_file);
    return 0;
}

/* What held__write needs: the end of a connected session's lifetime
 * (0 while the broker runs, see held__load_line), and the count. */
typedef struct {
    fa_plugin *pl;
    int64_t connected_until;
    size_t n;
} held__out;

/* Writes every held session to f (a fa_statefile_replace writer; arg: a
 * held__out); a connected one with offline_until connected_until: 0 while
 * the broker runs (held__load_line), the end of its lifetime from now at
 * a graceful stop, which ends its connection. Returns 0 or -errno. */
static int held__write(FILE *f, void *arg)
{
    held__out *o = arg;
    char *hex = malloc(2 * HELD__ID_MAX + 1);
    int64_t until;
    fa_session *s, *tmp;
    int rc = 0;

    if (hex == NULL)
        return -ENOMEM;
    if (fprintf(f, "%s\n", HELD__MAGIC) < 0)
        rc = -EIO;
    HASH_ITER(hh_id, o->pl->sessions.by_id, s, tmp)
    {
        /* MQTT caps a client id at HELD__ID_MAX bytes: none is longer. */
        if (rc != 0 || !s->held || strlen(s->client_id) > HELD__ID_MAX)
            continue;
        until = s->offline_until != 0 ? s->offline_until : o->connected_until;
        held__hex(s->client_id, hex);
        if (fprintf(f, "%s %s %lld\n", hex, s->sub, (long long)until) < 0)
            rc = -EIO;
        else
            o->n++;
    }
    free(hex);
    return rc;
}

/* Writes the held sessions to plugin_opt_session_file (whole, see
 * fa_statefile_replace). connected_until: as held__write. *n: how many.
 * Returns 0 or -errno; logs nothing. */
static int held__save_file(fa_plugin *pl, int64_t connected_until, size_t *n)
{
    held__out o = {.pl = pl, .connected_until = connected_until, .n = 0};
    int rc = fa_statefile_replace(pl->opts.session_file, held__write, &o);

    *n = o.n;
    return rc;
}

/*
 * Writes the held sessions for the next run, at a graceful stop
 * (mosquitto_plugin_cleanup). Returns 0 or -errno, logged either way.
 */
int fa_held_save(fa_plugin *pl)
{
    size_t n = 0;
    int rc;

    if (pl->opts.session_file == NULL)
        return 0;
    rc = held__save_file(pl, (int64_t)time(NULL) + pl->opts.session_max_lifetime + 1, &n);
    if (rc != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "feed_auth: cannot write %s: %s", pl->opts.session_file,
                             strerror(-rc));
        return rc;
    }
    mosquitto_log_printf(MOSQ_LOG_INFO, "feed_auth: %zu persistent sessions saved to %s", n,
                         pl->opts.session_file);
    return 0;
}

/*
 * Saves the held sessions while the broker runs, at most once every
 * session_save_interval seconds and only when they changed, so a crash
 * (SIGKILL, power loss) loses at most that interval of them, as the
 * broker's autosave_interval bounds what it loses of its own sessions.
 * The write and its fsync run on the broker thread: with many sessions
 * (about 100 bytes each) that is a pause like the broker's own autosave.
 * A failure is logged once, and so is the first save that works again;
 * a failed save is tried again after the next interval.
 */
void fa_held_autosave(fa_plugin *pl, int64_t now_ms)
{
    uint64_t changes = pl->held_changes;
    size_t n = 0;
    int rc;

    if (pl->opts.session_file == NULL || pl->opts.session_save_interval == 0)
        return;
    if (changes == pl->held_saved || now_ms < pl->next_held_save_ms)
        return;
    pl->next_held_save_ms = now_ms + pl->opts.session_save_interval * 1000;
    rc = held__save_file(pl, 0, &n);
    if (rc != 0) {
        if (!pl->held_save_failing)
            mosquitto_log_printf(MOSQ_LOG_ERR,
                                 "feed_auth: cannot write %s: %s (a crash now loses the "
                                 "persistent sessions since the last save; trying again every "
                                 "%lld s)",
                                 pl->opts.session_file, strerror(-rc),
                                 (long long)pl->opts.session_save_interval);
        pl->held_save_failing = true;
        return;
    }
    if (pl->held_save_failing)
        mosquitto_log_printf(MOSQ_LOG_INFO, "feed_auth: %s written again", pl->opts.session_file);
    else
        mosquitto_log_printf(MOSQ_LOG_INFO, "feed_auth: %zu persistent sessions saved to %s", n,
                             pl->opts.session_file);
    pl->held_save_failing = false;
    pl->held_saved = changes;
}
