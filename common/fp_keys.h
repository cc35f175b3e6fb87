/*
 * fp_keys.h - the Redis keys and channels of the contract (docs/protocol.md,
 * "Redis keys"), in one place.
 *
 * Every key is "<prefix><name><id>": the deployment's prefix (config key
 * redis_prefix / plugin_opt_redis_prefix, "" by default, at most
 * FP_KEY_PREFIX_MAX bytes), one of the names below, and a user, post or
 * node id (nothing for the keys without one). The C code builds keys with
 * fp_key(); the Lua scripts of backend/scripts/ write @FP_KEY_<NAME>@,
 * which the build replaces with these values (backend/embed_lua.cmake);
 * tools/stack reads this file too. Keep each value on one #define line.
 */
#ifndef FP_KEYS_H
#define FP_KEYS_H

#include <stddef.h>

#define FP_KEY_PREFIX_MAX 128

#define FP_KEY_FOLLOWERS "followers:"       /* set of users following <uid> */
#define FP_KEY_FOLLOWING "following:"       /* set of users <uid> follows */
#define FP_KEY_FOLLOW "follow:" /* hash of <follower>:<followee>: issued, applied stamps */
#define FP_KEY_POST "post:"                 /* the post's JSON body */
#define FP_KEY_FEED "feed:"                 /* sorted set: post ids by sequence number */
#define FP_KEY_FANOUT "fanout:"             /* "<seq> <mode> <phase>", "deleted" tombstone */
#define FP_KEY_GONE "gone:"                 /* a deleted post's seq, beside its tombstone */
#define FP_KEY_FANOUT_TOP "fanout_top:"     /* the highest seq a big post's slices wrote it under */
#define FP_KEY_SEQ "post_seq"               /* counter: a post's sequence number */
#define FP_KEY_POSTS "posts:"               /* sorted set: a pull author's posts by seq */
#define FP_KEY_PULL "pull_authors"          /* set of authors whose posts are pulled */
#define FP_KEY_RIBBON "ribbon"              /* list of ribbon entries, newest first */
#define FP_KEY_RIBBON_VERSION "ribbon_version" /* counter: raised by every change of the ribbon */
#define FP_KEY_REVOKED "revoked:"           /* unix s: tokens issued earlier are refused */
#define FP_KEY_REVOKED_CHANNEL "revoked"    /* pub/sub: "<uid> <before>" */
#define FP_KEY_NODES "nodes"                /* set of node ids that heartbeat */
#define FP_KEY_NODE "node:"                 /* a node's heartbeat, with a TTL */
#define FP_KEY_ONLINE "online:"             /* set of users connected to <node> */
#define FP_KEY_SESSIONS "sessions:"         /* set of users with a persistent session on <node> */
#define FP_KEY_STATS_BRIDGE "stats:bridge:" /* hash of a node's bridge counters */
#define FP_KEY_SYNC "sync"                  /* bumped before WAIT (redis_min_replicas) */

/*
 * Writes "<prefix><name><id>" into buf (len bytes); prefix and id may be
 * NULL for "". Returns 0, or -ENAMETOOLONG when it does not fit (buf then
 * holds a cut, NUL-terminated string).
 */
int fp_key(char *buf, size_t len, const char *prefix, const char *name, const char *id);

#endif
