/*
 * redis_sync.c - the plugin's background thread: every byte of Redis I/O
 * the plugin does happens here, never on the broker thread.
 *
 *  - presence: online:<node> (connected users) and sessions:<node> (users
 *    with a persistent session here) follow the local tables; after every
 *    (re)connect both are rewritten whole (MULTI, DEL, SADD ..., EXEC),
 *    which also clears what a previous run of this node left behind;
 *  - heartbeat: node:<node> with a TTL of 3 intervals, and <node> in nodes;
 *  - revocations: SUBSCRIBE to the channel <prefix>revoked (messages
 *    "<user id> <before>"), then load every <prefix>revoked:<uid> key, so
 *    nothing raised while we were away is missed. Each raises the
 *    in-memory table the broker thread reads.
 *
 * On any error both connections are dropped and retried with a capped
 * exponential backoff (100 ms .. 2 s); err/errstr keep the cause for the
 * log. With redis_sentinels, every (re)connect asks the Sentinels for the
 * primary and checks its ROLE; a +switch-master on the Sentinel watch or
 * a READONLY reply (an error reply like any other) also counts as an
 * error, so presence and revocations are rebuilt on the new primary.
 *
 * Log lines are queued and written by the broker thread (fa_on_tick),
 * because mosquitto's logging is not thread-safe.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>

#include <hiredis/hiredis.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>

#include "feed_auth.h"
#include "fp_keys.h"

#define REDIS__BACKOFF_MIN_MS 100
#define REDIS__BACKOFF_MAX_MS 2000
#define REDIS__IO_TIMEOUT_MS 1000
#define REDIS__SADD_CHUNK 1000
#define REDIS__SCAN_COUNT "1000"
#define REDIS__LOG_LINES 32
#define REDIS__KEY_MAX 256
/* After a failed write of the revocation file, the next try. */
#define REDIS__SAVE_RETRY_MS 5000

struct fa_redis {
    pthread_t thread;
    atomic_bool stop;
    const fa_options *o;
    fa_presence *presence;
    fa_revocations *revocations;
    redisContext *cmd; /* commands */
    redisContext *sub; /* SUBSCRIBE only */
    fp_sentinel *sentinel; /* NULL: redis_host and redis_port are the server */
    fp_host primary;       /* the server of the moment */
    bool connected;
    bool was_down;     /* a failure or a move was logged; log the recovery */
    bool warned;       /* this outage was logged as a warning */
    int err;           /* last failure: hiredis REDIS_ERR_* or 0 */
    char errstr[160];
    int64_t backoff_ms;
    int64_t next_attempt_ms;
    int64_t next_heartbeat_ms;
    int64_t next_save_ms; /* the revocation file: no write before (a retry) */
    bool save_failing;    /* its last write failed (logged) */
    char key_online[REDIS__KEY_MAX];
    char key_sessions[REDIS__KEY_MAX];
    char key_node[REDIS__KEY_MAX];
    char key_nodes[REDIS__KEY_MAX];
    char key_revoked[REDIS__KEY_MAX];  /* "<prefix>revoked:" */
    char chan_revoked[REDIS__KEY_MAX]; /* "<prefix>revoked" */
    pthread_mutex_t log_lock;
    char log[REDIS__LOG_LINES][256];
    int log_levels[REDIS__LOG_LINES];
    size_t log_n;
};

/* Queues a log line for the broker thread; drops it when the queue is full. */
__attribute__((format(printf, 3, 4))) static void redis__log(fa_redis *rs, int level,
                                                             const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&rs->log_lock);
    if (rs->log_n < REDIS__LOG_LINES) {
        va_start(ap, fmt);
        vsnprintf(rs->log[rs->log_n], sizeof(rs->log[0]), fmt, ap);
        va_end(ap);
        rs->log_levels[rs->log_n++] = level;
    }
    pthread_mutex_unlock(&rs->log_lock);
}

void fa_redis_drain_log(fa_redis *rs)
{
    char lines[REDIS__LOG_LINES][256];
    int levels[REDIS__LOG_LINES];
    size_t n, i;

    if (rs == NULL)
        return;
    pthread_mutex_lock(&rs->log_lock);
    n = rs->log_n;
    memcpy(lines, rs->log, n * sizeof(lines[0]));
    memcpy(levels, rs->log_levels, n * sizeof(levels[0]));
    rs->log_n = 0;
    pthread_mutex_unlock(&rs->log_lock);
    for (i = 0; i < n; i++)
        mosquitto_log_printf(levels[i], "feed_auth: %s", lines[i]);
}

/* Records why the connection failed (from a context, or a message). */
static void redis__set_error(fa_redis *rs, const redisContext *c, const char *what)
{
    if (c != NULL && c->err != 0) {
        rs->err = c->err;
        snprintf(rs->errstr, sizeof(rs->errstr), "%s: %.96s", what, c->errstr);
    } else {
        rs->err = REDIS_ERR_OTHER;
        snprintf(rs->errstr, sizeof(rs->errstr), "%s", what);
    }
}

static void redis__disconnect(fa_redis *rs)
{
    if (rs->cmd != NULL)
        redisFree(rs->cmd);
    if (rs->sub != NULL)
        redisFree(rs->sub);
    rs->cmd = rs->sub = NULL;
    rs->connected = false;
}

/* Opens one connection with I/O timeouts. NULL on failure (error recorded). */
static redisContext *redis__open(fa_redis *rs)
{
    struct timeval tv = {REDIS__IO_TIMEOUT_MS / 1000, (REDIS__IO_TIMEOUT_MS % 1000) * 1000};
    redisContext *c;
    char msg[160];

    c = redisConnectWithTimeout(rs->primary.host, rs->primary.port, tv);
    if (c == NULL) {
        redis__set_error(rs, NULL, "connect: out of memory");
        return NULL;
    }
    if (c->err != 0 || redisSetTimeout(c, tv) != REDIS_OK) {
        redis__set_error(rs, c, "connect");
        redisFree(c);
        return NULL;
    }
    redisEnableKeepAlive(c);
    if (fp_redis_auth(c, "redis_password_file", rs->o->redis.user, rs->o->redis.password_file, msg,
                      sizeof(msg)) != 0) {
        redis__set_error(rs, NULL, msg);
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Checks a reply: NULL (I/O error) and error replies fail. Frees it. */
static int redis__reply_ok(fa_redis *rs, redisContext *c, redisReply *r, const char *what)
{
    char msg[96];

    if (r == NULL) {
        redis__set_error(rs, c, what);
        return -EIO;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(msg, sizeof(msg), "%s: %.64s", what, r->str);
        redis__set_error(rs, NULL, msg);
        freeReplyObject(r);
        return -EIO;
    }
    freeReplyObject(r);
    return 0;
}

/* Reads n pipelined replies, all of which must succeed; with ints, each
 * must be an integer, stored there. 0, or -EIO. */
static int redis__read_replies(fa_redis *rs, size_t n, const char *what, long long *ints)
{
    redisReply *r;
    int rc = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        r = NULL;
        if (redisGetReply(rs->cmd, (void **)&r) != REDIS_OK) {
            redis__set_error(rs, rs->cmd, what);
            return -EIO;
        }
        if (ints != NULL && r->type == REDIS_REPLY_INTEGER) {
            ints[i] = r->integer;
        } else if (ints != NULL && r->type != REDIS_REPLY_ERROR) {
            redis__set_error(rs, NULL, what);
            rc = -EIO;
        }
        if (redis__reply_ok(rs, rs->cmd, r, what) != 0)
            rc = -EIO;
    }
    return rc;
}

/* Reads n pipelined replies, all of which must succeed. */
static int redis__drain_replies(fa_redis *rs, size_t n, const char *what)
{
    return redis__read_replies(rs, n, what, NULL);
}

/*
 * Refreshes node:<node> (TTL 3 intervals) and our entry in nodes. SET ...
 * GET returns the previous value: none means the key had lapsed (Redis
 * stalled longer than the TTL), and routing may then have dropped this
 * node's presence as stale, so *lapsed asks for a rewrite. Needs Redis
 * 6.2 or later.
 */
static int redis__heartbeat(fa_redis *rs, bool *lapsed)
{
    char ttl[24], now[24];
    redisReply *r = NULL;

    snprintf(ttl, sizeof(ttl), "%lld", (long long)(rs->o->heartbeat_interval * 3));
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    redisAppendCommand(rs->cmd, "SET %s %s EX %s GET", rs->key_node, now, ttl);
    redisAppendCommand(rs->cmd, "SADD %s %s", rs->key_nodes, rs->o->node_id);
    rs->next_heartbeat_ms = fp_time_mono_ms() + rs->o->heartbeat_interval * 1000;
    if (redisGetReply(rs->cmd, (void **)&r) != REDIS_OK) {
        redis__set_error(rs, rs->cmd, "heartbeat");
        return -EIO;
    }
    *lapsed = r != NULL && r->type == REDIS_REPLY_NIL;
    if (redis__reply_ok(rs, rs->cmd, r, "heartbeat") != 0)
        return -EIO;
    return redis__drain_replies(rs, 1, "heartbeat");
}

/* The key of a presence set. */
static const char *redis__set_key(const fa_redis *rs, fa_presence_set set)
{
    return set == FA_SET_HELD ? rs->key_sessions : rs->key_online;
}

/* Appends SADD key user... for the snapshot's users in set, in chunks.
 * Returns the number of commands appended. */
static size_t redis__append_sadds(fa_redis *rs, const fa_presence_entry *users, size_t n,
                                  fa_presence_set set)
{
    const char *argv[REDIS__SADD_CHUNK + 2];
    size_t i, k = 0, cmds = 0;

    argv[0] = "SADD";
    argv[1] = redis__set_key(rs, set);
    for (i = 0; i < n; i++) {
        if (!users[i].in[set])
            continue;
        argv[2 + k++] = users[i].sub;
        if (k == REDIS__SADD_CHUNK) {
            redisAppendCommandArgv(rs->cmd, (int)k + 2, argv, NULL);
            cmds++;
            k = 0;
        }
    }
    if (k > 0) {
        redisAppendCommandArgv(rs->cmd, (int)k + 2, argv, NULL);
        cmds++;
    }
    return cmds;
}

/* Rewrites online:<node> and sessions:<node> from the local table in one
 * transaction. */
static int redis__resync(fa_redis *rs)
{
    fa_presence_entry *users;
    size_t n, replies = 3;
    int rc;

    users = fa_presence_snapshot(rs->presence, &n);
    if (users == NULL) {
        redis__set_error(rs, NULL, "resync: out of memory");
        return -ENOMEM;
    }
    redisAppendCommand(rs->cmd, "MULTI");
    redisAppendCommand(rs->cmd, "DEL %s %s", rs->key_online, rs->key_sessions);
    replies += redis__append_sadds(rs, users, n, FA_SET_ONLINE);
    replies += redis__append_sadds(rs, users, n, FA_SET_HELD);
    redisAppendCommand(rs->cmd, "EXEC");
    rc = redis__drain_replies(rs, replies, "presence resync");
    free(users);
    if (rc == 0)
        redis__log(rs, MOSQ_LOG_INFO, "presence of node %s resynced: %zu users", rs->o->node_id,
                   n);
    return rc;
}

/*
 * The answers to the two SCARDs redis__flush_presence sent with a
 * heartbeat's changes, against want, the node's own counts as those
 * changes leave them: sets of other sizes were changed by someone else (a
 * second broker started with this node id by mistake, which rewrites them
 * at its start, a hand edit, a primary that lost writes with no failover
 * seen here) and are rewritten whole. Sets of the right sizes with other
 * members are not found. 0, or -EIO.
 */
static int redis__check_sizes(fa_redis *rs, const size_t want[FA_SETS])
{
    long long have[FA_SETS];

    if (redis__read_replies(rs, FA_SETS, "presence check", have) != 0)
        return -EIO;
    if (have[FA_SET_ONLINE] == (long long)want[FA_SET_ONLINE] &&
        have[FA_SET_HELD] == (long long)want[FA_SET_HELD])
        return 0;
    redis__log(rs, MOSQ_LOG_WARNING,
               "%s holds %lld users and %s %lld, where node %s has %zu and %zu: rewriting "
               "both (is another broker running with node id %s?)",
               rs->key_online, have[FA_SET_ONLINE], rs->key_sessions, have[FA_SET_HELD],
               rs->o->node_id, want[FA_SET_ONLINE], want[FA_SET_HELD], rs->o->node_id);
    return redis__resync(rs);
}

/*
 * Writes the queued presence changes, pipelined; a dropped queue means a
 * resync. With check (at a heartbeat), SCARD online:<node> and
 * sessions:<node> follow the changes in the same pipeline, so their
 * answers count exactly what was written, however busy the node is, and
 * go to redis__check_sizes. 0, or -EIO.
 */
static int redis__flush_presence(fa_redis *rs, bool check)
{
    fa_presence_delta *d, *all;
    size_t want[FA_SETS], n = 0;
    bool resync;

    all = fa_presence_take(rs->presence, &resync, want);
    if (resync) {
        fa_presence_deltas_free(all);
        return redis__resync(rs);
    }
    for (d = all; d != NULL; d = d->next, n++)
        redisAppendCommand(rs->cmd, "%s %s %s", d->op == FA_PRESENCE_ADD ? "SADD" : "SREM",
                           redis__set_key(rs, d->set), d->sub);
    fa_presence_deltas_free(all);
    if (check) {
        redisAppendCommand(rs->cmd, "SCARD %s", rs->key_online);
        redisAppendCommand(rs->cmd, "SCARD %s", rs->key_sessions);
    }
    if (n > 0 && redis__drain_replies(rs, n, "presence update") != 0)
        return -EIO;
    return check ? redis__check_sizes(rs, want) : 0;
}

/* Applies "<uid> <before>" from the revocation channel or a revoked: key.
 * 0, or -EIO when memory ran out (the caller drops the link, so every
 * revocation is loaded again once it is back: none is lost). */
static int redis__apply_revocation(fa_redis *rs, const char *uid, const char *before_s)
{
    char *end = NULL;
    long long before;

    errno = 0;
    before = strtoll(before_s, &end, 10);
    if (!fp_id_valid(uid) || errno != 0 || end == before_s || *end != '\0' || before <= 0) {
        redis__log(rs, MOSQ_LOG_WARNING, "ignoring malformed revocation for \"%.64s\"",
                   fp_id_valid(uid) ? uid : "(invalid id)");
        return 0;
    }
    if (fa_revocations_raise(rs->revocations, uid, before, (int64_t)time(NULL)) != 0) {
        redis__set_error(rs, NULL, "out of memory keeping a revocation; loading them again");
        return -EIO;
    }
    return 0;
}

/* A message on the revocation channel. 0 or -EIO (redis__apply_revocation). */
static int redis__on_message(fa_redis *rs, const redisReply *r)
{
    char buf[FP_ID_BUFSZ + 32], *space;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") != 0 ||
        r->element[2]->type != REDIS_REPLY_STRING)
        return 0;
    if (r->element[2]->len >= sizeof(buf)) {
        redis__log(rs, MOSQ_LOG_WARNING, "ignoring oversized revocation message");
        return 0;
    }
    memcpy(buf, r->element[2]->str, r->element[2]->len);
    buf[r->element[2]->len] = '\0';
    space = strchr(buf, ' ');
    if (space == NULL) {
        redis__log(rs, MOSQ_LOG_WARNING, "ignoring malformed revocation message");
        return 0;
    }
    *space = '\0';
    return redis__apply_revocation(rs, buf, space + 1);
}

/*
 * Writes "<key with every glob character escaped>*" to out (at least
 * 2 * strlen(key) + 2 bytes): the MATCH pattern of the keys that start
 * with key, whatever redis_prefix holds ("*", "?", "[" or "\" included).
 */
static void redis__prefix_pattern(const char *key, char *out)
{
    size_t o = 0;

    for (; *key != '\0'; key++) {
        if (strchr("*?[]\\", *key) != NULL)
            out[o++] = '\\';
        out[o++] = *key;
    }
    out[o++] = '*';
    out[o] = '\0';
}

/*
 * Writes the revocations to plugin_opt_revocation_file if they changed
 * since the last write (fa_revocations_save), unless a failed write is waiting
 * for its retry time. Called at every turn of the thread's loop, with
 * Redis up or down, so a failed write is tried again every
 * REDIS__SAVE_RETRY_MS until it works, whether or not another revocation
 * comes: the file must hold the cut-offs before a crash. The failure is
 * logged once, and so is the write that works again.
 */
static void redis__save_revocations(fa_redis *rs)
{
    size_t n;
    int rc;

    if (fp_time_mono_ms() < rs->next_save_ms)
        return;
    rc = fa_revocations_save(rs->revocations, &n);
    if (rc < 0) {
        if (!rs->save_failing)
            redis__log(rs, MOSQ_LOG_ERR, "cannot write %s: %s; trying again every %d s",
                       rs->revocations->file, strerror(-rc), REDIS__SAVE_RETRY_MS / 1000);
        rs->save_failing = true;
        rs->next_save_ms = fp_time_mono_ms() + REDIS__SAVE_RETRY_MS;
        return;
    }
    if (rc == 0)
        return; /* nothing was due */
    if (rs->save_failing)
        redis__log(rs, MOSQ_LOG_NOTICE, "%zu revocations saved to %s again", n,
                   rs->revocations->file);
    else
        redis__log(rs, MOSQ_LOG_INFO, "%zu revocations saved to %s", n, rs->revocations->file);
    rs->save_failing = false;
}

/* Drops the revocations older than max_lifetime (with require_iat; at
 * most once a minute, fa_revocations_prune) and logs how many went. */
static void redis__prune_revocations(fa_redis *rs)
{
    size_t n = fa_revocations_prune(rs->revocations, (int64_t)time(NULL));

    if (n > 0)
        redis__log(rs, MOSQ_LOG_INFO, "%zu revocations older than max_lifetime dropped", n);
}

/* Loads every <prefix>revoked:<uid> key (SCAN + GET, pipelined per page). */
static int redis__load_revocations(fa_redis *rs)
{
    char pattern[2 * REDIS__KEY_MAX + 2], cursor[32] = "0";
    size_t plen = strlen(rs->key_revoked), i;
    redisReply *r, *keys, *g;
    int rc = 0;

    redis__prefix_pattern(rs->key_revoked, pattern);
    do {
        r = redisCommand(rs->cmd, "SCAN %s MATCH %s COUNT " REDIS__SCAN_COUNT, cursor, pattern);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
            redis__set_error(rs, rs->cmd, "loading revocations");
            if (r != NULL)
                freeReplyObject(r);
            return -EIO;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        keys = r->element[1];
        for (i = 0; i < keys->elements; i++)
            redisAppendCommand(rs->cmd, "GET %b", keys->element[i]->str, keys->element[i]->len);
        for (i = 0; i < keys->elements && rc == 0; i++) {
            g = NULL;
            if (redisGetReply(rs->cmd, (void **)&g) != REDIS_OK) {
                redis__set_error(rs, rs->cmd, "loading revocations");
                rc = -EIO;
                break;
            }
            if (g->type == REDIS_REPLY_STRING && keys->element[i]->len > plen &&
                memcmp(keys->element[i]->str, rs->key_revoked, plen) == 0)
                rc = redis__apply_revocation(rs, keys->element[i]->str + plen, g->str);
            freeReplyObject(g);
        }
        freeReplyObject(r);
    } while (rc == 0 && strcmp(cursor, "0") != 0);
    return rc; /* the file is written at the loop's next turn (redis__main) */
}

/* With Sentinels: asks them where the primary is now. 0 or -EIO. */
static int redis__locate(fa_redis *rs)
{
    if (rs->sentinel == NULL)
        return 0;
    if (fp_sentinel_primary(rs->sentinel, &rs->primary) == 0)
        return 0;
    redis__set_error(rs, NULL, fp_sentinel_errstr(rs->sentinel));
    return -EIO;
}

/* Connects both contexts (to a primary: checked with ROLE when a
 * Sentinel named it), subscribes, then brings Redis up to date. */
static int redis__connect(fa_redis *rs)
{
    char why[128];
    redisReply *r;
    bool lapsed;

    if (redis__locate(rs) != 0)
        return -EIO;
    rs->cmd = redis__open(rs);
    if (rs->cmd == NULL)
        return -EIO;
    if (rs->sentinel != NULL && fp_sentinel_check_primary(rs->cmd, why, sizeof(why)) != 0) {
        redis__set_error(rs, NULL, why);
        goto fail;
    }
    rs->sub = redis__open(rs);
    if (rs->sub == NULL)
        goto fail;
    r = redisCommand(rs->sub, "SUBSCRIBE %s", rs->chan_revoked);
    if (redis__reply_ok(rs, rs->sub, r, "subscribe") != 0)
        goto fail;
    /* Heartbeat first: routing treats a node without one as gone and
     * deletes its presence set, which the resync is about to write. */
    if (redis__heartbeat(rs, &lapsed) != 0 || redis__load_revocations(rs) != 0 ||
        redis__resync(rs) != 0)
        goto fail;
    rs->connected = true;
    return 0;
fail:
    redis__disconnect(rs);
    return -EIO;
}

/* Reads whatever the subscription connection has: revocation messages. */
static int redis__read_subscription(fa_redis *rs)
{
    void *reply;
    int rc;

    if (redisBufferRead(rs->sub) != REDIS_OK) {
        redis__set_error(rs, rs->sub, "subscription");
        return -EIO;
    }
    for (;;) {
        reply = NULL;
        if (redisGetReplyFromReader(rs->sub, &reply) != REDIS_OK) {
            redis__set_error(rs, rs->sub, "subscription");
            return -EIO;
        }
        if (reply == NULL)
            return 0;
        rc = redis__on_message(rs, reply);
        freeReplyObject(reply);
        if (rc != 0)
            return rc;
    }
}

/* Waits for a wake-up, a message, a Sentinel notice or the timeout; 1
 * when the sub fd is readable. */
static int redis__wait(fa_redis *rs, int64_t timeout_ms)
{
    struct pollfd fds[3];
    char drain[64];
    int n = 1, sub = -1;

    fds[0].fd = rs->presence->wake_fd[0];
    fds[0].events = POLLIN;
    if (rs->sub != NULL) {
        sub = n;
        fds[n].fd = rs->sub->fd;
        fds[n++].events = POLLIN;
    }
    if (fp_sentinel_fd(rs->sentinel) >= 0) {
        fds[n].fd = fp_sentinel_fd(rs->sentinel);
        fds[n++].events = POLLIN;
    }
    if (timeout_ms < 0)
        timeout_ms = 0;
    if (poll(fds, (nfds_t)n, (int)timeout_ms) <= 0)
        return 0;
    if (fds[0].revents != 0) {
        while (read(rs->presence->wake_fd[0], drain, sizeof(drain)) > 0)
            ;
    }
    return sub > 0 && fds[sub].revents != 0;
}

static void redis__fail(fa_redis *rs)
{
    if (!rs->warned)
        redis__log(rs, MOSQ_LOG_WARNING,
                   "Redis %s:%d unavailable (%s); presence paused, authentication unaffected",
                   rs->primary.host, rs->primary.port, rs->errstr);
    rs->warned = true;
    rs->was_down = true;
    redis__disconnect(rs);
    rs->next_attempt_ms = fp_time_mono_ms() + rs->backoff_ms;
    rs->backoff_ms *= 2;
    if (rs->backoff_ms > REDIS__BACKOFF_MAX_MS)
        rs->backoff_ms = REDIS__BACKOFF_MAX_MS;
}

/* A planned move (+switch-master): reconnect at once, to the new primary,
 * without the outage warning; "reachable again" follows. */
static void redis__moved(fa_redis *rs)
{
    redis__log(rs, MOSQ_LOG_NOTICE, "Redis primary %s:%d replaced (+switch-master); reconnecting",
               rs->primary.host, rs->primary.port);
    rs->was_down = true;
    redis__disconnect(rs);
    rs->next_attempt_ms = fp_time_mono_ms();
}

/* One turn of the loop while connected. Returns 0, -EIO, or -EAGAIN when
 * the Sentinels announced another primary. */
static int redis__step(fa_redis *rs)
{
    int64_t wait = rs->next_heartbeat_ms - fp_time_mono_ms();
    bool lapsed, due;

    if (redis__wait(rs, wait > 250 ? 250 : wait) == 1 && redis__read_subscription(rs) != 0)
        return -EIO;
    if (rs->sentinel != NULL && fp_sentinel_switched(rs->sentinel) == 1)
        return -EAGAIN;
    /* At a heartbeat, the sets' sizes are checked with the changes. */
    due = fp_time_mono_ms() >= rs->next_heartbeat_ms;
    if (redis__flush_presence(rs, due) != 0)
        return -EIO;
    if (!due)
        return 0;
    if (redis__heartbeat(rs, &lapsed) != 0)
        return -EIO;
    if (lapsed) {
        redis__log(rs, MOSQ_LOG_NOTICE, "heartbeat of node %s had lapsed; rewriting presence",
                   rs->o->node_id);
        return redis__resync(rs);
    }
    return 0;
}

static void *redis__main(void *arg)
{
    fa_redis *rs = arg;
    int64_t wait;
    int rc;

    /* Named for top -H and /proc/<pid>/task/<tid>/comm (15 bytes). */
    prctl(PR_SET_NAME, FA_REDIS_THREAD_NAME, 0, 0, 0);
    while (!atomic_load(&rs->stop)) {
        redis__prune_revocations(rs);
        redis__save_revocations(rs);
        if (rs->connected) {
            rc = redis__step(rs);
            if (rc == -EAGAIN)
                redis__moved(rs);
            else if (rc != 0)
                redis__fail(rs);
            continue;
        }
        if (fp_time_mono_ms() < rs->next_attempt_ms) {
            wait = rs->next_attempt_ms;
            if (rs->save_failing && rs->next_save_ms < wait)
                wait = rs->next_save_ms;
            redis__wait(rs, wait - fp_time_mono_ms());
            /* The Sentinels' notices are read while down too: one left
             * unread, or a watch the Sentinel closed, would end every
             * wait at once (a thread spinning on a core of the broker's
             * machine). A new primary is tried at once. */
            if (rs->sentinel != NULL && fp_sentinel_switched(rs->sentinel) == 1)
                rs->next_attempt_ms = fp_time_mono_ms();
            continue;
        }
        if (redis__connect(rs) != 0) {
            redis__fail(rs);
            continue;
        }
        if (rs->was_down)
            redis__log(rs, MOSQ_LOG_NOTICE, "Redis %s:%d reachable again", rs->primary.host,
                       rs->primary.port);
        rs->was_down = false;
        rs->warned = false;
        rs->backoff_ms = REDIS__BACKOFF_MIN_MS;
    }
    return NULL;
}

/*
 * Starts the thread with every asynchronous signal blocked in it, so that
 * mosquitto's signals (SIGTERM, SIGHUP, SIGUSR1, ...) are left to its own
 * thread. mosquitto 2.0 blocks them there while it waits for events (up
 * to 100 ms at a time) and takes them between two waits; with this thread
 * open to them, most landed here instead, where they interrupted a
 * connect or a poll of ours (hiredis' connect fails on EINTR, which was
 * logged as a Redis outage). Faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL)
 * stay deliverable. Returns 0 or a negative errno.
 */
static int redis__thread_start(fa_redis *rs)
{
    sigset_t all, old;
    int rc;

    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    rc = -pthread_sigmask(SIG_SETMASK, &all, &old);
    if (rc != 0)
        return rc;
    rc = -pthread_create(&rs->thread, NULL, redis__main, rs);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int fa_redis_start(fa_redis **out, const fa_options *o, fa_presence *p, fa_revocations *r)
{
    fa_redis *rs;
    int rc;

    rs = calloc(1, sizeof(*rs));
    if (rs == NULL)
        return -ENOMEM;
    rs->o = o;
    rs->presence = p;
    rs->revocations = r;
    rs->backoff_ms = REDIS__BACKOFF_MIN_MS;
    atomic_init(&rs->stop, false);
    snprintf(rs->primary.host, sizeof(rs->primary.host), "%s", o->redis.host);
    rs->primary.port = (int)o->redis.port;
    if (o->redis.sentinels != NULL && o->redis.sentinels[0] != '\0') {
        rc = fp_sentinel_new(&rs->sentinel, o->redis.sentinels, o->redis.master_name,
                             REDIS__IO_TIMEOUT_MS, rs->errstr, sizeof(rs->errstr));
        if (rc == 0)
            rc = fp_sentinel_auth(rs->sentinel, o->redis.sentinel_user,
                                  o->redis.sentinel_password_file);
        if (rc != 0)
            goto fail;
    }
    rc = -ENAMETOOLONG;
    if (fp_key(rs->key_online, REDIS__KEY_MAX, o->redis.prefix, FP_KEY_ONLINE, o->node_id) != 0 ||
        fp_key(rs->key_sessions, REDIS__KEY_MAX, o->redis.prefix, FP_KEY_SESSIONS, o->node_id) !=
            0 ||
        fp_key(rs->key_node, REDIS__KEY_MAX, o->redis.prefix, FP_KEY_NODE, o->node_id) != 0 ||
        fp_key(rs->key_nodes, REDIS__KEY_MAX, o->redis.prefix, FP_KEY_NODES, NULL) != 0 ||
        fp_key(rs->key_revoked, REDIS__KEY_MAX, o->redis.prefix, FP_KEY_REVOKED, NULL) != 0 ||
        fp_key(rs->chan_revoked, REDIS__KEY_MAX, o->redis.prefix, FP_KEY_REVOKED_CHANNEL, NULL) !=
            0)
        goto fail;
    rc = -pthread_mutex_init(&rs->log_lock, NULL);
    if (rc != 0)
        goto fail;
    rc = redis__thread_start(rs);
    if (rc != 0)
        goto fail_lock;
    *out = rs;
    return 0;

fail_lock:
    pthread_mutex_destroy(&rs->log_lock);
fail:
    fp_sentinel_free(rs->sentinel);
    free(rs);
    return rc;
}

/*
 * Best effort, on a clean shutdown: this node no longer holds anyone
 * (its presence sets, heartbeat and entry in nodes deleted), on the
 * thread's connection or a new one. When Redis cannot be reached that is
 * logged: routing then takes the node for gone only once its heartbeat
 * key expires.
 */
static void redis__withdraw(fa_redis *rs)
{
    int rc = -EIO;

    if (rs->cmd == NULL)
        rs->cmd = redis__open(rs);
    if (rs->cmd != NULL) {
        redisAppendCommand(rs->cmd, "DEL %s %s %s", rs->key_online, rs->key_sessions, rs->key_node);
        redisAppendCommand(rs->cmd, "SREM %s %s", rs->key_nodes, rs->o->node_id);
        rc = redis__drain_replies(rs, 2, "withdraw");
    }
    if (rc != 0)
        redis__log(rs, MOSQ_LOG_WARNING,
                   "presence of node %s not withdrawn (%s); routing drops the node when its "
                   "heartbeat expires, within %lld s",
                   rs->o->node_id, rs->errstr, (long long)(rs->o->heartbeat_interval * 3));
}

void fa_redis_stop(fa_redis *rs)
{
    char one = 1;

    if (rs == NULL)
        return;
    atomic_store(&rs->stop, true);
    if (write(rs->presence->wake_fd[1], &one, 1) < 0) {
        /* The pipe is full: the thread is awake anyway. */
    }
    pthread_join(rs->thread, NULL);
    redis__withdraw(rs);
    redis__disconnect(rs);
    fa_redis_drain_log(rs); /* the thread's last lines: no tick writes them now */
    fp_sentinel_free(rs->sentinel);
    pthread_mutex_destroy(&rs->log_lock);
    free(rs);
}
