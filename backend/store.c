/*
 * store.c - the Redis connection, the scripts and the event writes of
 * feed-bridge (see fp_store.h for the contract).
 *
 * One synchronous hiredis connection. Whatever touches more than a couple
 * of keys runs as one Lua script from backend/scripts/ (embedded at build
 * time into fp_store_scripts.h by embed_lua.cmake): the scripts are loaded
 * with SCRIPT LOAD on every (re)connect and run with EVALSHA; a NOSCRIPT
 * reply (Redis restarted, SCRIPT FLUSH) loads them again and retries once.
 *
 * The scripts that derive key names from data (post ids, followers) get
 * the prefix as ARGV[1] and build their keys themselves; this targets a
 * single Redis instance, not Redis Cluster.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "fp_store_scripts.h"
#include "store_priv.h"

static const struct {
    const char *name;
    const char *body;
    size_t len;
} store__scripts[STORE__N_SCRIPTS] = {
    [STORE__POST_CREATED] = {"post_created", fp_lua_post_created, sizeof(fp_lua_post_created) - 1},
    [STORE__POST_DELETED] = {"post_deleted", fp_lua_post_deleted, sizeof(fp_lua_post_deleted) - 1},
    [STORE__FANOUT_CHUNK] = {"fanout_chunk", fp_lua_fanout_chunk, sizeof(fp_lua_fanout_chunk) - 1},
    [STORE__ROUTE_SCAN] = {"route_scan", fp_lua_route_scan, sizeof(fp_lua_route_scan) - 1},
    [STORE__FEED_READ] = {"feed_read", fp_lua_feed_read, sizeof(fp_lua_feed_read) - 1},
    [STORE__RIBBON_PUSH] = {"ribbon_push", fp_lua_ribbon_push, sizeof(fp_lua_ribbon_push) - 1},
    [STORE__USER_REVOKED] = {"user_revoked", fp_lua_user_revoked, sizeof(fp_lua_user_revoked) - 1},
    [STORE__FOLLOW] = {"follow", fp_lua_follow, sizeof(fp_lua_follow) - 1},
    [STORE__FOLLOW_STAMP] = {"follow_stamp", fp_lua_follow_stamp, sizeof(fp_lua_follow_stamp) - 1},
};

/* ------------------------------------------------------------ errors */

/* Records a failure: the context's I/O error when it has one, else what. */
void store__fail(fp_store *s, const char *what)
{
    if (s->c != NULL && s->c->err != 0) {
        s->err = s->c->err;
        snprintf(s->errstr, sizeof(s->errstr), "%.48s: %.72s", what, s->c->errstr);
    } else {
        s->err = REDIS_ERR_OTHER;
        snprintf(s->errstr, sizeof(s->errstr), "%.120s", what);
    }
}

static void store__disconnect(fp_store *s);

/*
 * Is an error reply one of Redis's passing states rather than a refusal
 * of the command itself: out of memory under noeviction (OOM), a script
 * running too long (BUSY), a restart loading its data (LOADING), a
 * replica cut off from its primary (MASTERDOWN), too few replicas for
 * min-replicas-to-write (NOREPLICAS), a failing snapshot (MISCONF), a
 * cluster in flux (TRYAGAIN, CLUSTERDOWN)? The code is the reply's first
 * word.
 */
static bool store__transient(const char *text)
{
    static const char *const codes[] = {"OOM",        "BUSY",    "LOADING",  "MASTERDOWN",
                                        "NOREPLICAS", "MISCONF", "TRYAGAIN", "CLUSTERDOWN"};
    size_t i, n;

    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        n = strlen(codes[i]);
        if (strncmp(text, codes[i], n) == 0 && (text[n] == ' ' || text[n] == '\0'))
            return true;
    }
    return false;
}

/* Records an error reply (or a reply of the wrong shape when r is not an
 * error). Returns -EPROTO; but a READONLY reply (the server became a
 * replica: a failover) returns -EIO and marks the connection unusable
 * (store__connected drops it), so the caller reconnects to the new
 * primary; and one of Redis's passing states (store__transient) returns
 * -EBUSY: the same call may succeed a little later. Callers may still
 * read the rest of a pipeline. */
int store__protocol(fp_store *s, const char *what, const redisReply *r)
{
    const char *tail;
    int len;

    s->err = REDIS_ERR_OTHER;
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        /* Redis 7 ends the error of a command a script ran with " script:
         * f_<sha1>, on @user_script:<line>.": what names the script. */
        tail = strstr(r->str, " script: ");
        len = tail != NULL && tail - r->str < 72 ? (int)(tail - r->str) : 72;
        snprintf(s->errstr, sizeof(s->errstr), "%.48s: %.*s", what, len, r->str);
    } else
        snprintf(s->errstr, sizeof(s->errstr), "%.48s: unexpected reply", what);
    if (r != NULL && r->type == REDIS_REPLY_ERROR && fp_sentinel_readonly(r->str)) {
        s->readonly = true;
        return -EIO;
    }
    if (r != NULL && r->type == REDIS_REPLY_ERROR && store__transient(r->str))
        return -EBUSY;
    return -EPROTO;
}

/* Records a refused argument. Returns -EINVAL. */
int store__invalid(fp_store *s, const char *what, const char *reason)
{
    s->err = REDIS_ERR_OTHER;
    snprintf(s->errstr, sizeof(s->errstr), "%.48s: %.72s", what, reason);
    return -EINVAL;
}

/* 0 when there is a usable connection, else -EIO (errstr kept or set).
 * With Sentinels, a +switch-master seen since the last call drops the
 * connection first: the caller reconnects to the new primary. */
int store__connected(fp_store *s)
{
    if (s->readonly) {
        store__disconnect(s);
        return -EIO; /* errstr: the READONLY reply */
    }
    if (s->c != NULL && s->sentinel != NULL && fp_sentinel_switched(s->sentinel) == 1) {
        store__disconnect(s);
        s->err = REDIS_ERR_OTHER;
        snprintf(s->errstr, sizeof(s->errstr), "the primary moved (+switch-master)");
        return -EIO;
    }
    if (s->c != NULL && s->c->err == 0)
        return 0;
    if (s->errstr[0] == '\0')
        store__fail(s, "not connected");
    return -EIO;
}

/* Checks that ev is a valid event of type t. Returns 0 or -EINVAL. */
int store__check_event(fp_store *s, const fp_event *ev, fp_event_type t)
{
    char reason[96];

    if (ev == NULL || ev->type != t)
        return store__invalid(s, "event", "missing or of the wrong type");
    if (fp_event_validate(ev, reason, sizeof(reason)) != 0)
        return store__invalid(s, fp_event_type_name(t), reason);
    return 0;
}

/* -------------------------------------------------------- connection */

/*
 * Asks one PING, alone, before the scripts go out. Redis closes the
 * connection of a client that has not authenticated as soon as it sends a
 * bulk over 16 KiB (the longest scripts are), so without this a missing
 * redis_password_file would read as "Server closed the connection"; the
 * PING's NOAUTH names the cause. That is the only error reply that fails
 * here: the scripts' own replies say the rest. A replica cut off from its
 * primary answers PING with MASTERDOWN but serves SCRIPT LOAD, and the
 * calls made on the connection say -EBUSY until it serves again (failing
 * the connect would make them say the server is unreachable, and hold
 * off the next attempt); an ACL user need not be allowed PING (NOPERM).
 * Returns 0, -EIO (connection) or -EPROTO (NOAUTH, recorded).
 */
static int store__ping_first(fp_store *s)
{
    void *reply = NULL;
    redisReply *r;
    int rc = 0;

    if (redisAppendCommand(s->c, "PING") != REDIS_OK || redisGetReply(s->c, &reply) != REDIS_OK ||
        reply == NULL) {
        store__fail(s, "PING");
        return -EIO;
    }
    r = reply;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOAUTH", 6) == 0)
        rc = store__protocol(s, "PING", r);
    freeReplyObject(r);
    return rc;
}

/*
 * Loads every script (SCRIPT LOAD, pipelined) and keeps their SHA1s, after
 * one PING (store__ping_first). Returns 0, -EIO (connection), -EBUSY (a
 * script refused in one of Redis's passing states) or -EPROTO (NOAUTH to
 * the PING, or a script refused).
 */
int store__load_scripts(fp_store *s)
{
    redisReply *r;
    void *reply;
    int rc = store__ping_first(s);
    size_t i;

    if (rc != 0)
        return rc;
    for (i = 0; i < STORE__N_SCRIPTS; i++) {
        if (redisAppendCommand(s->c, "SCRIPT LOAD %b", store__scripts[i].body,
                               store__scripts[i].len) != REDIS_OK) {
            store__fail(s, "SCRIPT LOAD");
            return -EIO;
        }
    }
    for (i = 0; i < STORE__N_SCRIPTS; i++) {
        reply = NULL;
        if (redisGetReply(s->c, &reply) != REDIS_OK) {
            store__fail(s, "SCRIPT LOAD");
            return -EIO;
        }
        r = reply;
        if (r->type == REDIS_REPLY_STRING && r->len == STORE__SHA_LEN)
            memcpy(s->sha[i], r->str, STORE__SHA_LEN + 1);
        else if (rc == 0)
            rc = store__protocol(s, store__scripts[i].name, r);
        freeReplyObject(r);
    }
    return rc;
}

static void store__disconnect(fp_store *s)
{
    if (s->c != NULL)
        redisFree(s->c);
    s->c = NULL;
    s->readonly = false;
    s->client_id = 0;
}

/*
 * (Re)connects with the configured timeouts and loads the scripts.
 * Returns 0 or -EIO; on failure there is no connection and err/errstr
 * say why.
 */
static int store__connect(fp_store *s)
{
    struct timeval tv = {s->timeout_ms / 1000, (s->timeout_ms % 1000) * 1000};
    const char *host = s->host;
    int port = s->port;

    store__disconnect(s);
    s->err = 0;
    s->errstr[0] = '\0';
    if (s->sentinel != NULL) {
        if (fp_sentinel_primary(s->sentinel, &s->primary) != 0) {
            s->err = REDIS_ERR_OTHER;
            snprintf(s->errstr, sizeof(s->errstr), "%.200s", fp_sentinel_errstr(s->sentinel));
            return -EIO;
        }
        host = s->primary.host;
        port = s->primary.port;
    }
    snprintf(s->peer, sizeof(s->peer), "%s:%d", host, port);
    s->c = redisConnectWithTimeout(host, port, tv);
    if (s->c == NULL) {
        s->err = REDIS_ERR_OOM;
        snprintf(s->errstr, sizeof(s->errstr), "connect: out of memory");
        return -EIO;
    }
    if (s->c->err != 0 || redisSetTimeout(s->c, tv) != REDIS_OK) {
        store__fail(s, "connect");
        goto fail;
    }
    redisEnableKeepAlive(s->c);
    if (fp_redis_auth(s->c, "redis_password_file", s->user, s->password_file, s->errstr,
                      sizeof(s->errstr)) != 0) {
        s->err = REDIS_ERR_OTHER;
        goto fail;
    }
    if (s->sentinel != NULL && fp_sentinel_check_primary(s->c, s->errstr, sizeof(s->errstr)) != 0) {
        s->err = REDIS_ERR_OTHER;
        goto fail;
    }
    if (store__load_scripts(s) != 0)
        goto fail;
    return 0;
fail:
    store__disconnect(s);
    return -EIO;
}

/* Validates and copies the numeric settings. Returns 0 or -EINVAL. */
static int store__configure(fp_store *s, const fp_store_config *c)
{
    if (c->port < 0 || c->port > 65535)
        return store__invalid(s, "config", "port out of range");
    if (strlen(s->prefix) > FP_STORE_PREFIX_MAX)
        return store__invalid(s, "config", "prefix longer than 128 bytes");
    if (c->feed_length < 0 || c->feed_length > FP_STORE_FEED_LENGTH_MAX)
        return store__invalid(s, "config", "feed_length out of range");
    if (c->ribbon_length < 0 || c->ribbon_length > FP_STORE_RIBBON_LENGTH_MAX)
        return store__invalid(s, "config", "ribbon_length out of range");
    if (c->timeout_ms < 0 || c->timeout_ms > STORE__TIMEOUT_MS_MAX)
        return store__invalid(s, "config", "timeout_ms out of range");
    s->port = c->port != 0 ? c->port : 6379;
    s->feed_length = c->feed_length != 0 ? c->feed_length : FP_STORE_FEED_LENGTH_DEFAULT;
    s->ribbon_length = c->ribbon_length != 0 ? c->ribbon_length : FP_STORE_RIBBON_LENGTH_DEFAULT;
    s->timeout_ms = c->timeout_ms != 0 ? c->timeout_ms : FP_STORE_TIMEOUT_MS_DEFAULT;
    if (c->pull_threshold < -1)
        return store__invalid(s, "config", "pull_threshold out of range");
    s->pull_threshold =
        c->pull_threshold == 0 ? FP_STORE_PULL_THRESHOLD_DEFAULT : c->pull_threshold;
    if (s->pull_threshold < 0)
        s->pull_threshold = 0;
    if (c->post_ttl_s < 0)
        return store__invalid(s, "config", "post_ttl out of range");
    s->post_ttl_s = c->post_ttl_s;
    if (c->revocation_ttl_s < 0)
        return store__invalid(s, "config", "revocation_ttl out of range");
    s->revocation_ttl_s = c->revocation_ttl_s;
    if (c->min_replicas < 0 || c->min_replicas > 100)
        return store__invalid(s, "config", "min_replicas out of range (0..100)");
    if (c->wait_timeout_ms < 0 || c->wait_timeout_ms > STORE__TIMEOUT_MS_MAX)
        return store__invalid(s, "config", "wait_timeout_ms out of range");
    s->min_replicas = c->min_replicas;
    s->page_bytes = c->page_bytes;
    s->wait_timeout_ms = c->wait_timeout_ms != 0 ? c->wait_timeout_ms : 1000;
    /* WAIT's reply must come within the socket's own timeout. */
    if (s->min_replicas > 0 && s->wait_timeout_ms >= s->timeout_ms)
        return store__invalid(s, "config", "redis_wait_timeout_ms must be below timeout_ms");
    s->configured = true;
    return 0;
}

/* Validates and copies the config, connects and loads the scripts (see
 * fp_store.h for what *out holds on failure). */
int fp_store_open(fp_store **out, const fp_store_config *c)
{
    char why[160];
    fp_store *s;
    int rc;

    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    if (c == NULL)
        return -EINVAL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->host = strdup(c->host != NULL ? c->host : "127.0.0.1");
    s->prefix = strdup(c->prefix != NULL ? c->prefix : "");
    if (c->password_file != NULL && c->password_file[0] != '\0')
        s->password_file = strdup(c->password_file);
    if (c->user != NULL && c->user[0] != '\0')
        s->user = strdup(c->user);
    if (s->host == NULL || s->prefix == NULL ||
        (c->password_file != NULL && c->password_file[0] != '\0' && s->password_file == NULL) ||
        (c->user != NULL && c->user[0] != '\0' && s->user == NULL)) {
        fp_store_free(s);
        return -ENOMEM;
    }
    *out = s;
    snprintf(s->peer, sizeof(s->peer), "%s:%d", s->host, c->port != 0 ? c->port : 6379);
    rc = store__configure(s, c);
    if (rc != 0)
        return rc;
    if (c->sentinels != NULL && c->sentinels[0] != '\0') {
        rc = fp_sentinel_new(&s->sentinel, c->sentinels, c->master_name, s->timeout_ms, why,
                             sizeof(why));
        if (rc == 0)
            rc = fp_sentinel_auth(s->sentinel, c->sentinel_user, c->sentinel_password_file);
        if (rc == -ENOMEM) {
            /* Not a store that would connect to redis_host instead. */
            fp_store_free(s);
            *out = NULL;
            return rc;
        }
        if (rc != 0)
            return store__invalid(s, "sentinels", why);
    }
    return store__connect(s);
}

void fp_store_options_apply(const fp_redis_options *o, fp_store_config *c)
{
    c->host = o->host;
    c->port = (int)o->port;
    c->prefix = o->prefix;
    c->sentinels = o->sentinels;
    c->master_name = o->master_name;
    c->password_file = o->password_file;
    c->user = o->user;
    c->sentinel_password_file = o->sentinel_password_file;
    c->sentinel_user = o->sentinel_user;
}

const char *fp_store_peer(const fp_store *s)
{
    return s != NULL ? s->peer : "";
}

int fp_store_sync(fp_store *s)
{
    char key[STORE__KEY_MAX], timeout[24];
    redisReply *r = NULL;
    long long acked = 0;
    int rc, i;

    if (s == NULL)
        return -EINVAL;
    if (s->min_replicas == 0)
        return 0;
    rc = store__connected(s);
    if (rc != 0)
        return rc;
    store__key(s, key, FP_KEY_SYNC, NULL);
    snprintf(timeout, sizeof(timeout), "%d", s->wait_timeout_ms);
    /* Both queued or the link dropped: one reply short would leave the
     * next call reading this one's. */
    if (redisAppendCommand(s->c, "INCR %s", key) != REDIS_OK ||
        redisAppendCommand(s->c, "WAIT %d %s", s->min_replicas, timeout) != REDIS_OK) {
        store__fail(s, "WAIT");
        return -EIO;
    }
    for (i = 0; i < 2; i++) {
        if (redisGetReply(s->c, (void **)&r) != REDIS_OK) {
            store__fail(s, "WAIT");
            return -EIO;
        }
        if (r->type != REDIS_REPLY_INTEGER && rc == 0)
            rc = store__protocol(s, i == 0 ? "sync" : "WAIT", r);
        acked = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        freeReplyObject(r);
    }
    if (rc != 0)
        return rc;
    if (acked >= s->min_replicas)
        return 0;
    s->err = REDIS_ERR_OTHER;
    snprintf(s->errstr, sizeof(s->errstr), "WAIT: %lld of %d replica(s) acknowledged within %d ms",
             acked, s->min_replicas, s->wait_timeout_ms);
    return -EAGAIN;
}

const char *fp_store_errstr(const fp_store *s)
{
    return s != NULL ? s->errstr : "no store";
}

int fp_store_err(const fp_store *s)
{
    return s != NULL ? s->err : REDIS_ERR_OTHER;
}

int fp_store_reconnect(fp_store *s)
{
    if (s == NULL)
        return -EINVAL;
    if (!s->configured)
        return -EINVAL;
    return store__connect(s);
}

void fp_store_free(fp_store *s)
{
    if (s == NULL)
        return;
    store__disconnect(s);
    fp_sentinel_free(s->sentinel);
    free(s->password_file);
    free(s->user);
    free(s->prefix);
    free(s->host);
    free(s);
}

/* ----------------------------------------------------------- helpers */

/* Builds "<prefix><name><id>" into buf (STORE__KEY_MAX bytes; always fits:
 * the prefix and ids are bounded). */
void store__key(const fp_store *s, char *buf, const char *name, const char *id)
{
    /* Cannot be cut: STORE__KEY_MAX has room for the longest prefix, name
     * and id, and fp_store_open() refused a longer prefix. */
    (void)fp_key(buf, STORE__KEY_MAX, s->prefix, name, id);
}

/*
 * Queues EVALSHA of script `which` on the link without sending it:
 * argv[0 .. nkeys-1] are its KEYS, the rest its ARGV, all strings (their
 * lengths are taken here). hiredis sends it with the next read. Returns
 * 0, -EIO (not connected) or -ENOMEM.
 */
int store__eval_append(fp_store *s, int which, size_t nkeys, size_t argc, const char **argv)
{
    const char **av;
    size_t *al, i;
    char numkeys[24];
    int rc;

    rc = store__connected(s);
    if (rc != 0)
        return rc;
    rc = -ENOMEM;
    av = malloc((argc + 3) * sizeof(*av));
    al = malloc((argc + 3) * sizeof(*al));
    if (av == NULL || al == NULL)
        goto done;
    snprintf(numkeys, sizeof(numkeys), "%zu", nkeys);
    av[0] = "EVALSHA";
    al[0] = strlen(av[0]);
    av[1] = s->sha[which];
    al[1] = STORE__SHA_LEN;
    av[2] = numkeys;
    al[2] = strlen(numkeys);
    memcpy(av + 3, argv, argc * sizeof(*av));
    for (i = 0; i < argc; i++)
        al[3 + i] = strlen(argv[i]);
    rc = redisAppendCommandArgv(s->c, (int)(argc + 3), av, al) == REDIS_OK ? 0 : -ENOMEM;
done:
    free(al);
    free(av);
    return rc;
}

/*
 * Reads the reply of a call store__eval_append queued. Returns 0 with
 * *reply set (the caller frees it), -ENOENT on NOSCRIPT (the scripts
 * must be loaded again), -EIO (the link failed), or -EPROTO (an error
 * reply, recorded).
 */
int store__eval_reply(fp_store *s, int which, redisReply **reply)
{
    redisReply *r = NULL;
    int rc;

    *reply = NULL;
    if (redisGetReply(s->c, (void **)&r) != REDIS_OK || r == NULL) {
        store__fail(s, store__scripts[which].name);
        return -EIO;
    }
    if (r->type != REDIS_REPLY_ERROR) {
        *reply = r;
        return 0;
    }
    rc = strncmp(r->str, "NOSCRIPT", 8) == 0 ? -ENOENT
                                             : store__protocol(s, store__scripts[which].name, r);
    freeReplyObject(r);
    return rc;
}

/*
 * Runs script `which` with EVALSHA (store__eval_append). On NOSCRIPT the
 * scripts are loaded again and the call retried once. Returns 0 with
 * *reply set (the caller frees it), -EIO, -EPROTO (error reply, recorded)
 * or -ENOMEM.
 */
int store__eval(fp_store *s, int which, size_t nkeys, size_t argc, const char **argv,
                redisReply **reply)
{
    int attempt, rc = 0;

    *reply = NULL;
    for (attempt = 0; attempt < 2; attempt++) {
        rc = store__eval_append(s, which, nkeys, argc, argv);
        if (rc == 0)
            rc = store__eval_reply(s, which, reply);
        if (rc != -ENOENT)
            return rc;
        if (attempt == 0) {
            rc = store__load_scripts(s);
            if (rc != 0)
                return rc;
        }
    }
    s->err = REDIS_ERR_OTHER;
    snprintf(s->errstr, sizeof(s->errstr), "%s: NOSCRIPT after loading the scripts",
             store__scripts[which].name);
    return -EPROTO;
}

/* Copies a string reply that is a valid id into dst. False otherwise. */
bool store__copy_id(const redisReply *r, char *dst)
{
    if (r->type != REDIS_REPLY_STRING || !fp_id_valid_n(r->str, r->len))
        return false;
    memcpy(dst, r->str, r->len);
    dst[r->len] = '\0';
    return true;
}

/* Formats v in decimal into buf (24 bytes). */
void store__i64(char *buf, int64_t v)
{
    snprintf(buf, 24, "%" PRId64, v);
}

/* Adds v to obj as an exact JSON integer. Returns false on ENOMEM. */
bool store__add_i64(cJSON *obj, const char *key, int64_t v)
{
    char buf[24];

    store__i64(buf, v);
    return cJSON_AddRawToObject(obj, key, buf) != NULL;
}

/* A ribbon entry {"user_id","name"?,"text"?,"at"}; malloc'd, NULL on ENOMEM. */
static char *store__entry_json(const fp_ribbon_entry *e)
{
    cJSON *o;
    char *json = NULL;

    o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    if (cJSON_AddStringToObject(o, "user_id", e->user_id) == NULL)
        goto done;
    if (e->name != NULL && cJSON_AddStringToObject(o, "name", e->name) == NULL)
        goto done;
    if (e->text != NULL && cJSON_AddStringToObject(o, "text", e->text) == NULL)
        goto done;
    if (!store__add_i64(o, "at", e->at))
        goto done;
    json = cJSON_PrintUnformatted(o);
done:
    cJSON_Delete(o);
    return json;
}

/*
 * Builds {"type":"ribbon","version":N,"entries":[...]} from the ribbon's
 * version (an integer or a decimal string; nil: 0) and a list reply of
 * entry JSON strings, in order; an entry that is not a JSON object is
 * left out. Returns 0 with *out malloc'd, -EPROTO or -ENOMEM.
 */
static int store__ribbon_json(fp_store *s, const char *what, const redisReply *v,
                              const redisReply *r, char **out)
{
    cJSON *root, *entries, *e;
    long long version = 0;
    size_t i;
    int rc = -ENOMEM;

    if (v->type == REDIS_REPLY_INTEGER)
        version = v->integer;
    else if (v->type == REDIS_REPLY_STRING)
        version = strtoll(v->str, NULL, 10);
    else if (v->type != REDIS_REPLY_NIL)
        return store__protocol(s, what, v);
    if (r->type != REDIS_REPLY_ARRAY || version < 0)
        return store__protocol(s, what, r);
    root = cJSON_CreateObject();
    if (root == NULL)
        return -ENOMEM;
    if (cJSON_AddStringToObject(root, "type", "ribbon") == NULL ||
        cJSON_AddNumberToObject(root, "version", (double)version) == NULL)
        goto done;
    entries = cJSON_AddArrayToObject(root, "entries");
    if (entries == NULL)
        goto done;
    for (i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;
        e = cJSON_ParseWithLength(r->element[i]->str, r->element[i]->len);
        if (e == NULL || !cJSON_IsObject(e)) {
            cJSON_Delete(e);
            continue;
        }
        cJSON_AddItemToArray(entries, e);
    }
    *out = cJSON_PrintUnformatted(root);
    if (*out != NULL)
        rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

/* ----------------------------------------------------------- follows */

/*
 * Reads the 4 replies of MULTI, op, op, EXEC (always all of them, so the
 * connection stays in step). With exec, hands the EXEC reply (an array of
 * the two ops' replies, neither an error) to the caller, who frees it.
 * Returns 0, -EIO or -EPROTO.
 */
static int store__read_transaction(fp_store *s, const char *what, redisReply **exec)
{
    redisReply *r;
    void *reply;
    size_t i, k;
    int rc = 0;

    for (i = 0; i < 4; i++) {
        reply = NULL;
        if (redisGetReply(s->c, &reply) != REDIS_OK) {
            store__fail(s, what);
            return -EIO;
        }
        r = reply;
        if (rc == 0 && r->type == REDIS_REPLY_ERROR)
            rc = store__protocol(s, what, r);
        if (rc == 0 && i == 3 && (r->type != REDIS_REPLY_ARRAY || r->elements != 2))
            rc = store__protocol(s, what, r);
        for (k = 0; rc == 0 && i == 3 && k < r->elements; k++) {
            if (r->element[k]->type == REDIS_REPLY_ERROR)
                rc = store__protocol(s, what, r->element[k]);
        }
        if (rc == 0 && i == 3 && exec != NULL)
            *exec = r; /* the caller's */
        else
            freeReplyObject(r);
    }
    return rc;
}

/* follow:<follower>:<followee> into buf (STORE__PAIR_KEY_MAX bytes): ids
 * hold no ':', so the name is the pair's alone. */
#define STORE__PAIR_KEY_MAX (STORE__KEY_MAX + 1 + FP_ID_BUFSZ)
static void store__pair_key(const fp_store *s, char *buf, const char *follower,
                            const char *followee)
{
    char key[STORE__KEY_MAX];

    store__key(s, key, FP_KEY_FOLLOW, follower);
    snprintf(buf, STORE__PAIR_KEY_MAX, "%s:%s", key, followee);
}

/*
 * follow.created / follow.deleted: both set updates (SADD or SREM) in
 * follow.lua, in the pair's order: an event stamped (follow_at) at or
 * below the stamp of the change the sets hold is left out. Returns 0,
 * -EINVAL, -EIO or -EPROTO.
 */
int fp_store_follow(fp_store *s, const fp_event *ev)
{
    char followers[STORE__KEY_MAX], following[STORE__KEY_MAX], pair[STORE__PAIR_KEY_MAX];
    char at[24], ttl[24];
    const char *what, *argv[8];
    redisReply *r = NULL;
    int rc;

    if (s == NULL || ev == NULL)
        return -EINVAL;
    if (ev->type != FP_EVENT_FOLLOW_CREATED && ev->type != FP_EVENT_FOLLOW_DELETED)
        return store__invalid(s, "follow", "not a follow event");
    rc = store__check_event(s, ev, ev->type);
    if (rc != 0)
        return rc;
    what = fp_event_type_name(ev->type);
    if (strcmp(ev->follower_id, ev->followee_id) == 0)
        return store__invalid(s, what, "a user cannot follow themselves");
    store__key(s, followers, FP_KEY_FOLLOWERS, ev->followee_id);
    store__key(s, following, FP_KEY_FOLLOWING, ev->follower_id);
    store__pair_key(s, pair, ev->follower_id, ev->followee_id);
    store__i64(at, ev->follow_at);
    store__i64(ttl, FP_STORE_MARKER_TTL_S);
    argv[0] = followers;
    argv[1] = following;
    argv[2] = pair;
    argv[3] = ev->type == FP_EVENT_FOLLOW_CREATED ? "SADD" : "SREM";
    argv[4] = ev->follower_id;
    argv[5] = ev->followee_id;
    argv[6] = at;
    argv[7] = ttl;
    rc = store__eval(s, STORE__FOLLOW, 3, 8, argv, &r);
    if (rc != 0)
        return rc;
    if (r->type != REDIS_REPLY_INTEGER)
        rc = store__protocol(s, what, r);
    freeReplyObject(r);
    return rc;
}

int fp_store_follow_stamp(fp_store *s, const char *follower, const char *followee, int64_t *at)
{
    char pair[STORE__PAIR_KEY_MAX], ttl[24];
    const char *argv[2];
    redisReply *r = NULL;
    int rc;

    if (s == NULL || at == NULL)
        return -EINVAL;
    *at = 0;
    if (!fp_id_valid(follower) || !fp_id_valid(followee))
        return store__invalid(s, "follow stamp", "not a valid id");
    store__pair_key(s, pair, follower, followee);
    store__i64(ttl, FP_STORE_MARKER_TTL_S);
    argv[0] = pair;
    argv[1] = ttl;
    rc = store__eval(s, STORE__FOLLOW_STAMP, 1, 2, argv, &r);
    if (rc != 0)
        return rc;
    if (r->type == REDIS_REPLY_INTEGER && r->integer > 0 && r->integer <= FP_EVENT_TS_MAX)
        *at = r->integer;
    else
        rc = store__protocol(s, "follow stamp", r);
    freeReplyObject(r);
    return rc;
}

/* ------------------------------------------------------------ ribbon */

/*
 * ribbon.pushed: encodes the entry, runs ribbon_push.lua (dedupe, insert
 * by "at", LTRIM, raise the version, return it and the list) and wraps them as the
 * MQTT ribbon message.
 * Returns 0 with *ribbon_json malloc'd, -EINVAL, -EIO, -EPROTO or -ENOMEM.
 */
int fp_store_ribbon_push(fp_store *s, const fp_event *ev, char **ribbon_json)
{
    char key[STORE__KEY_MAX], vkey[STORE__KEY_MAX], at[24], len[24], *entry = NULL;
    const char *argv[6];
    redisReply *r = NULL;
    int rc;

    if (s == NULL || ribbon_json == NULL)
        return -EINVAL;
    *ribbon_json = NULL;
    rc = store__check_event(s, ev, FP_EVENT_RIBBON_PUSHED);
    if (rc != 0)
        return rc;
    entry = store__entry_json(&ev->entry);
    if (entry == NULL)
        return -ENOMEM;
    store__key(s, key, FP_KEY_RIBBON, "");
    store__key(s, vkey, FP_KEY_RIBBON_VERSION, "");
    store__i64(at, ev->entry.at);
    store__i64(len, s->ribbon_length);
    argv[0] = key;
    argv[1] = vkey;
    argv[2] = ev->entry.user_id;
    argv[3] = entry;
    argv[4] = at;
    argv[5] = len;
    rc = store__eval(s, STORE__RIBBON_PUSH, 2, 6, argv, &r);
    if (rc != 0)
        goto done;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        rc = store__protocol(s, "ribbon_push", r);
        goto done;
    }
    rc = store__ribbon_json(s, "ribbon_push", r->element[0], r->element[1], ribbon_json);
done:
    if (r != NULL)
        freeReplyObject(r);
    free(entry);
    return rc;
}

/* The ribbon (LRANGE) as the MQTT ribbon message. Returns like
 * fp_store_ribbon_push(). */
int fp_store_ribbon_get(fp_store *s, char **ribbon_json)
{
    char key[STORE__KEY_MAX], vkey[STORE__KEY_MAX];
    redisReply *r = NULL;
    int rc;

    if (s == NULL || ribbon_json == NULL)
        return -EINVAL;
    *ribbon_json = NULL;
    rc = store__connected(s);
    if (rc != 0)
        return rc;
    store__key(s, key, FP_KEY_RIBBON, "");
    store__key(s, vkey, FP_KEY_RIBBON_VERSION, "");
    /* One transaction: the version names the list read with it. */
    if (redisAppendCommand(s->c, "MULTI") != REDIS_OK ||
        redisAppendCommand(s->c, "GET %s", vkey) != REDIS_OK ||
        redisAppendCommand(s->c, "LRANGE %s 0 -1", key) != REDIS_OK ||
        redisAppendCommand(s->c, "EXEC") != REDIS_OK) {
        store__fail(s, "ribbon_get");
        return -EIO;
    }
    rc = store__read_transaction(s, "ribbon_get", &r);
    if (rc != 0)
        return rc;
    rc = store__ribbon_json(s, "ribbon_get", r->element[0], r->element[1], ribbon_json);
    freeReplyObject(r);
    return rc;
}

/* -------------------------------------------------------- revocation */

/*
 * user.revoked: user_revoked.lua raises revoked:<uid> (never lowers it),
 * sets it to expire revocation_ttl after its value when that is set, and
 * publishes "<uid> <value>" on <prefix>revoked, atomically. Returns 0,
 * -EINVAL, -EIO or -EPROTO.
 */
int fp_store_user_revoked(fp_store *s, const fp_event *ev)
{
    char key[STORE__KEY_MAX], channel[STORE__KEY_MAX], before[24], ttl[24];
    const char *argv[5];
    redisReply *r = NULL;
    int rc;

    if (s == NULL)
        return -EINVAL;
    rc = store__check_event(s, ev, FP_EVENT_USER_REVOKED);
    if (rc != 0)
        return rc;
    store__key(s, key, FP_KEY_REVOKED, ev->user_id);
    store__key(s, channel, FP_KEY_REVOKED_CHANNEL, "");
    store__i64(before, ev->before);
    argv[0] = key;
    argv[1] = channel;
    argv[2] = ev->user_id;
    argv[3] = before;
    store__i64(ttl, s->revocation_ttl_s);
    argv[4] = ttl;
    rc = store__eval(s, STORE__USER_REVOKED, 1, 5, argv, &r);
    if (rc != 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        rc = store__protocol(s, "user_revoked", r);
    freeReplyObject(r);
    return rc;
}

int fp_store_put_stats(fp_store *s, const char *node, const char *const *names,
                       const uint64_t *values, size_t n)
{
    char key[STORE__KEY_MAX], (*nums)[24] = NULL;
    const char **argv = NULL;
    redisReply *r;
    size_t i;
    int rc;

    if (s == NULL || node == NULL || !fp_id_valid(node) || n == 0)
        return -EINVAL;
    rc = store__connected(s);
    if (rc != 0)
        return rc;
    argv = calloc(2 + 2 * n, sizeof(*argv));
    nums = calloc(n, sizeof(*nums));
    if (argv == NULL || nums == NULL) {
        rc = -ENOMEM;
        goto done;
    }
    store__key(s, key, FP_KEY_STATS_BRIDGE, node);
    argv[0] = "HSET";
    argv[1] = key;
    for (i = 0; i < n; i++) {
        snprintf(nums[i], sizeof(nums[i]), "%llu", (unsigned long long)values[i]);
        argv[2 + 2 * i] = names[i];
        argv[3 + 2 * i] = nums[i];
    }
    r = redisCommandArgv(s->c, (int)(2 + 2 * n), argv, NULL);
    if (r == NULL) {
        store__fail(s, "stats");
        rc = -EIO;
    } else {
        rc = r->type == REDIS_REPLY_INTEGER ? 0 : store__protocol(s, "stats", r);
        freeReplyObject(r);
    }
done:
    free(nums);
    free(argv);
    return rc;
}
