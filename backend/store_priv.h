/*
 * store_priv.h - what the files of the store share (store.c: the
 * connection, scripts and the bridge's writes; store_read.c: the reads
 * feed-gateway serves). Private to backend/: users see fp_store.h.
 */
#ifndef FP_STORE_PRIV_H
#define FP_STORE_PRIV_H

#include <stdbool.h>
#include <stddef.h>

#include <stdint.h>

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>

#include "fp_hosts.h"
#include "fp_keys.h"
#include "fp_sentinel.h"
#include "fp_store.h"

#define STORE__SHA_LEN 40
#define STORE__KEY_MAX FP_STORE_KEY_BUFSZ /* key names are < 32 bytes */
#define STORE__TIMEOUT_MS_MAX 600000

enum {
    STORE__POST_CREATED,
    STORE__POST_DELETED,
    STORE__FANOUT_CHUNK,
    STORE__ROUTE_SCAN,
    STORE__FEED_READ,
    STORE__RIBBON_PUSH,
    STORE__USER_REVOKED,
    STORE__FOLLOW,
    STORE__FOLLOW_STAMP,
    STORE__N_SCRIPTS
};

struct fp_store {
    redisContext *c; /* NULL while not connected */
    char *host;
    int port;
    char *prefix;
    char *user;          /* NULL: the default user */
    char *password_file; /* NULL: no AUTH */
    int feed_length;
    long pull_threshold; /* 0: never pull */
    long post_ttl_s;     /* of post:<id>; 0: never expires */
    long revocation_ttl_s; /* of revoked:<uid>, from its cut-off; 0: never */
    int ribbon_length;
    int timeout_ms;
    fp_sentinel *sentinel; /* NULL: host and port are the server */
    fp_host primary;       /* with Sentinels: the primary of the moment */
    char peer[FP_HOST_MAX + 8];
    int min_replicas;
    int wait_timeout_ms;
    size_t page_bytes; /* of a feed page's bodies; 0: no bound */
    bool readonly;   /* a READONLY reply: drop the connection before the next call */
    bool configured; /* the config passed validation */
    char sha[STORE__N_SCRIPTS][STORE__SHA_LEN + 1];
    const fp_body_cache *bodies; /* NULL: feed reads MGET every body */
    long long client_id; /* this connection's CLIENT ID once a tracked read asked; 0: not yet */
    int err; /* last failure: hiredis REDIS_ERR_* or 0 */
    char errstr[256];
};

/* Records a failure: the context's I/O error when it has one, else what. */
void store__fail(fp_store *s, const char *what);
/* Records an error reply (or a reply of the wrong shape). Returns -EPROTO. */
int store__protocol(fp_store *s, const char *what, const redisReply *r);
/* Records a refused argument. Returns -EINVAL. */
int store__invalid(fp_store *s, const char *what, const char *reason);
/* 0 when there is a usable connection, else -EIO. */
int store__connected(fp_store *s);
/* Checks that ev is a valid event of type t. Returns 0 or -EINVAL. */
int store__check_event(fp_store *s, const fp_event *ev, fp_event_type t);
/* "<prefix><name><id>" into buf (STORE__KEY_MAX bytes). */
void store__key(const fp_store *s, char *buf, const char *name, const char *id);
/* EVALSHA of script `which` (reloaded and retried once on NOSCRIPT). */
int store__eval(fp_store *s, int which, size_t nkeys, size_t argc, const char **argv,
                redisReply **reply);
/* The same in two halves, for pipelines: queue the call, then read its
 * reply (-ENOENT on NOSCRIPT). */
int store__eval_append(fp_store *s, int which, size_t nkeys, size_t argc, const char **argv);
int store__eval_reply(fp_store *s, int which, redisReply **reply);
/* SCRIPT LOAD of every script. 0, -EIO or -EPROTO. */
int store__load_scripts(fp_store *s);
/* Copies a string reply that is a valid id into dst. False otherwise. */
bool store__copy_id(const redisReply *r, char *dst);
/* Formats v in decimal into buf (24 bytes). */
void store__i64(char *buf, int64_t v);
/* Adds v to obj as an exact JSON integer. Returns false on ENOMEM. */
bool store__add_i64(cJSON *obj, const char *key, int64_t v);

#endif
