/*
 * fp_store.h - every Redis operation of feed-bridge and feed-gateway
 * (docs/protocol.md, Redis keys; key names in fp_keys.h).
 *
 * One fp_store is one synchronous hiredis connection; it is not
 * thread-safe (one per thread). Multi-key work runs as Lua scripts from
 * backend/scripts/ (embedded at build time), loaded with SCRIPT LOAD when
 * connecting and run with EVALSHA; a NOSCRIPT error (Redis restarted or
 * SCRIPT FLUSH) re-loads them and retries the call once.
 *
 * Keys, each preceded by the configured prefix: followers:<uid>,
 * following:<uid>, post:<id>, feed:<uid>, ribbon, revoked:<uid> (and the
 * channel "revoked"); read: nodes, node:<node>, online:<node> (written by
 * the broker plugin). Added by this module: fanout:<post id>,
 * "<seq> <mode> <phase>" (the post's sequence number, e/p/l for explicit,
 * pushed or pulled, a while feed writes remain, d once done; "1" from
 * older releases = done) and "deleted" once it was deleted; it expires
 * after FP_STORE_MARKER_TTL_S and makes post.created idempotent. post_seq
 * (the sequence counter), posts:<uid> and pull_authors (pull authors:
 * docs/bridge.md "Big fan-outs"), follow:<follower>:<followee> (a pair's
 * order: fp_store_follow). Feeds are sorted sets scored by
 * sequence number (docs/protocol.md).
 *
 * Stale presence cleanup: routing (post.created / post.deleted) treats a
 * node as live while node:<node> exists; a node in `nodes` without it is
 * removed from `nodes` and its online:<node> is deleted.
 *
 * Every function returns 0 or a negative errno:
 *   -EINVAL  a bad argument (the event is not of the right type or breaks
 *            fp_event_validate(), a follow of oneself, ...);
 *   -EIO     connection trouble, or a READONLY reply (the server became a
 *            replica: a failover): the connection is unusable until
 *            fp_store_reconnect() succeeds (retry with a backoff);
 *   -EBUSY   Redis is in a passing state (OOM, BUSY, LOADING, MASTERDOWN,
 *            NOREPLICAS, MISCONF, TRYAGAIN, CLUSTERDOWN): the same call
 *            may work a little later; the connection is still usable;
 *   -EPROTO  any other error reply (WRONGTYPE, NOSCRIPT, ...) or a reply of
 *            an unexpected shape; the connection is still usable;
 *   -ENOMEM  out of memory.
 * (fp_store_sync adds -EAGAIN: too few replicas.) After -EIO / -EBUSY /
 * -EPROTO, fp_store_errstr() says why (for the log).
 */
#ifndef FP_STORE_H
#define FP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fp_event.h"
#include "fp_id.h"
#include "fp_keys.h"
#include "fp_sentinel.h"

#define FP_STORE_FEED_LENGTH_DEFAULT 1000
#define FP_STORE_RIBBON_LENGTH_DEFAULT 50
#define FP_STORE_TIMEOUT_MS_DEFAULT 5000
#define FP_STORE_FEED_LENGTH_MAX 1000000
#define FP_STORE_RIBBON_LENGTH_MAX 500
#define FP_STORE_PREFIX_MAX FP_KEY_PREFIX_MAX /* bytes */
#define FP_STORE_KEY_BUFSZ (FP_STORE_PREFIX_MAX + 32 + FP_ID_BUFSZ) /* a key, NUL included */
#define FP_STORE_MARKER_TTL_S (7 * 86400) /* lifetime of fanout:<id> */
#define FP_STORE_PULL_THRESHOLD_DEFAULT 10000 /* followers; docs/bridge.md "Big fan-outs" */

typedef struct fp_store fp_store;

typedef struct {
    const char *host;   /* NULL: "127.0.0.1" */
    int port;           /* 0: 6379 */
    const char *prefix; /* NULL or "": no prefix; at most FP_STORE_PREFIX_MAX bytes */
    int feed_length;    /* 0: FP_STORE_FEED_LENGTH_DEFAULT; 1..FP_STORE_FEED_LENGTH_MAX */
    int ribbon_length;  /* 0: FP_STORE_RIBBON_LENGTH_DEFAULT; 1..FP_STORE_RIBBON_LENGTH_MAX */
    /* An author with more followers than this has posts pulled, not
     * pushed; 0: FP_STORE_PULL_THRESHOLD_DEFAULT, -1: never pulled. */
    long pull_threshold;
    /* post:<id> (a post's body) expires this many seconds after it is
     * stored; 0: never. Feed reads skip ids whose body is gone. */
    long post_ttl_s;
    /* revoked:<uid> expires this many seconds after its cut-off (its
     * value); 0: never. Safe only when every verifier requires iat and
     * caps the lifetime at most this (fp_jwt_revocation_keep). */
    long revocation_ttl_s;
    int timeout_ms;     /* connect and per-command I/O; 0: FP_STORE_TIMEOUT_MS_DEFAULT */
    /* Redis Sentinel: "host[:port],..." of the Sentinels (NULL or "": none,
     * host and port name the server) and the primary's name there. */
    const char *sentinels;
    const char *master_name;
    /* AUTH after each connect (fp_redis_auth): the password's file (NULL
     * or "": no AUTH) and the ACL user (NULL or "": the default user). */
    const char *password_file;
    const char *user;
    /* The same for the Sentinels (fp_sentinel_auth). */
    const char *sentinel_password_file;
    const char *sentinel_user;
    int min_replicas;    /* fp_store_sync waits for this many replicas; 0: none */
    int wait_timeout_ms; /* ... for at most this long; 0: 1000 */
    /* A feed page's post bodies stop at about this many bytes (each
     * body's length + 1; fp_feed_page.resume); 0: no bound. */
    size_t page_bytes;
} fp_store_config;

/* Fills c's connection fields (host to master_name) from o (the redis_*
 * keys, fp_sentinel.h); the rest of c is the caller's. o must outlive the
 * fp_store_open that copies them. */
void fp_store_options_apply(const fp_redis_options *o, fp_store_config *c);

/*
 * Copy the config, connect and load the scripts. Returns 0, -EINVAL (bad
 * config), -EIO (could not connect or load the scripts) or -ENOMEM. On
 * -EINVAL and -EIO *out is still set, so fp_store_errstr() can say why,
 * and after -EIO fp_store_reconnect() may be tried; free it with
 * fp_store_free() in every case. *out is NULL only on -ENOMEM (or when
 * out or c is NULL: -EINVAL).
 */
int fp_store_open(fp_store **out, const fp_store_config *c);

/* Why the most recent failing call failed ("" when none failed since the
 * last successful (re)connect); never NULL. */
const char *fp_store_errstr(const fp_store *s);

/* hiredis REDIS_ERR_* of the last failure (REDIS_ERR_OTHER for an error
 * reply), 0 when there was none since the last (re)connect. */
int fp_store_err(const fp_store *s);

/* Drop the connection, connect again and re-load the scripts. 0 or -EIO.
 * With Sentinels the primary is asked for again first, and a server that
 * is not a primary (ROLE) is refused. */
int fp_store_reconnect(fp_store *s);

/* "host:port" of the Redis in use or last tried (the primary of the
 * moment with Sentinels); never NULL. */
const char *fp_store_peer(const fp_store *s);

/*
 * With min_replicas > 0: makes sure every write this connection made so
 * far has reached min_replicas replicas (a probe write, INCR sync, then
 * WAIT, in one round trip). 0 when they have (or min_replicas is 0),
 * -EAGAIN when fewer acknowledged within wait_timeout_ms (errstr says how
 * many), -EIO on connection trouble. The bridge acks an event to RabbitMQ
 * only after this succeeded.
 */
int fp_store_sync(fp_store *s);

/* Close the connection and free s. NULL is fine. */
void fp_store_free(fp_store *s);

/* The users of one live node who must get a realtime delivery. */
typedef struct {
    char node[FP_ID_BUFSZ];
    char (*users)[FP_ID_BUFSZ];
    size_t n_users;
} fp_node_targets;

/* Result of routing a post.created / post.deleted. */
typedef struct {
    fp_node_targets *nodes; /* one per live node with at least one target */
    size_t n_nodes;
    size_t n_recipients; /* recipients (author included); those of a pull
                          * author get the post through reads, not feeds */
    bool duplicate;      /* post.created: redelivery, or the post is already
                          * deleted (then n_recipients is 0 and there are no
                          * targets); post.deleted: the body was already gone */
    /* For fp_store_post_finish(): feed writes are left (a big fan-out),
     * and whether they remove the post. */
    bool pending;
    bool unpush;
    /* Feed keys found holding another type than a feed (a string, a
     * hash...: not written by feedpush). They are left alone, so their
     * users miss this post in their feeds, and the other feeds are
     * written; the caller logs it. The count, and the first key's name
     * (cut at FP_STORE_KEY_BUFSZ - 1 bytes). fp_store_post_finish() adds
     * its own. */
    size_t n_bad_feeds;
    char bad_feed[FP_STORE_KEY_BUFSZ];
} fp_fanout;

/* Free what f holds and zero it. Safe on a zeroed struct, idempotent. */
void fp_fanout_free(fp_fanout *f);

/*
 * post.created: recipients = ev->recipients when has_recipients, else
 * followers:<author>; plus the author. Stores post:<id>
 * ({"id","author_id","text","created_at"}) if absent and gives it its
 * sequence number; fills *out with the recipients reached on each live
 * node, each once; and pushes the id onto each recipient's feed (trimmed
 * to feed_length) unless a previous delivery of this post already did,
 * or, when the author has more followers than pull_threshold, onto
 * posts:<author> only (reads merge it in). A post to at most 100
 * recipients is pushed here; a bigger one leaves out->pending, and
 * fp_store_post_finish() pushes it after the caller has sent the live
 * deliveries, which so do not wait for the feed writes. A post already
 * deleted is not stored again. The work is split into script calls of a
 * bounded size (docs/bridge.md, "Big fan-outs"): each returns quickly, so
 * Redis serves others in between. *out is zeroed first and holds nothing
 * to free on failure.
 */
int fp_store_post_created(fp_store *s, const fp_event *ev, fp_fanout *out);

/*
 * fp_store_post_created for n events in one round trip (their first
 * calls pipelined; a batch's posts). Returns 0 with rcs[i] and outs[i]
 * what fp_store_post_created would have given for evs[i] (free each
 * out), or -EIO / -ENOMEM when the link failed or memory ran out before
 * every reply was read: then outs hold nothing, and any of the calls may
 * have run (running them again is harmless).
 */
int fp_store_posts_created(fp_store *s, const fp_event *const *evs, size_t n, fp_fanout *outs,
                           int *rcs);

/*
 * The feed writes fp_store_post_created() or fp_store_post_deleted() left
 * (f->pending; nothing to do otherwise), for the same ev. Until it
 * returned 0 the event must not be acked: when it is handled again, the
 * marker fanout:<id> still says so, and the writes are made again
 * (harmless). Feed keys of another type it meets are added to
 * f->n_bad_feeds. Returns 0, -EINVAL, -EIO, -EPROTO or -ENOMEM.
 */
int fp_store_post_finish(fp_store *s, const fp_event *ev, fp_fanout *f);

/*
 * post.deleted: DEL post:<id>, leave a tombstone so a late post.created
 * cannot restore it (and a fan-out still pushing it stops), remove the id
 * from the author's feeds and, unless the author is above pull_threshold,
 * from the followers' feeds, or from the explicit recipients' when the
 * event names them; fill *out with the author and those recipients
 * reached on each live node (they get the delete notification). Split
 * like fp_store_post_created(), with the removals from the recipients'
 * feeds left to fp_store_post_finish() when there are many.
 */
int fp_store_post_deleted(fp_store *s, const fp_event *ev, fp_fanout *out);

/*
 * follow.created (SADD followers:<followee> follower, SADD
 * following:<follower> followee) or follow.deleted (the SREMs), in one
 * script. An event with a stamp (follow_at) is applied only when it is
 * above the stamp of the pair's change the sets hold (follow:<follower>:
 * <followee>, kept FP_STORE_MARKER_TTL_S after its last change), which it
 * then becomes: a change delivered again after a later one of the same
 * pair is left out (and so is the same event twice). One without a stamp
 * is applied as it comes. Following oneself is -EINVAL. Returns 0 (also
 * when left out), -EINVAL, -EIO, -EBUSY (one of Redis's passing states),
 * -EPROTO or -ENOMEM.
 */
int fp_store_follow(fp_store *s, const fp_event *ev);

/*
 * The stamp of a follow or unfollow of followee by follower, given when
 * the request is taken (feed-gateway): Redis's clock in milliseconds, or
 * one more than the pair's last stamp when the clock is not past it, so
 * the stamps of a pair grow whichever gateway gives them, and one more
 * than the pair's applied stamp when that is higher still (a backend's
 * own stamp). 0 with *at set, -EINVAL, -EIO, -EBUSY, -EPROTO or -ENOMEM.
 */
int fp_store_follow_stamp(fp_store *s, const char *follower, const char *followee, int64_t *at);

/*
 * ribbon.pushed: the entry ({"user_id","name"?,"text"?,"at"}) replaces
 * that user's entry, in the ribbon's order by "at" (at the head unless
 * late; trimmed to ribbon_length), unless the ribbon holds one of that
 * user with the same or a larger "at" (ribbon_push.lua). Sets
 * *ribbon_json to the malloc'd {"type":"ribbon","entries":[...]}, newest
 * first (free() it).
 */
int fp_store_ribbon_push(fp_store *s, const fp_event *ev, char **ribbon_json);

/* The current ribbon as fp_store_ribbon_push() returns it. */
int fp_store_ribbon_get(fp_store *s, char **ribbon_json);

/*
 * user.revoked: revoked:<uid> becomes max(current, before), never lower,
 * and "<uid> <value in effect>" is published on <prefix>revoked, in one
 * script call.
 */
int fp_store_user_revoked(fp_store *s, const fp_event *ev);

/* ------------------------------------------------------------------
 * Reads (store_read.c), served by feed-gateway.
 */

/* Where the cursor of fp_store_feed_after() was. */
typedef enum {
    FP_FEED_AFTER_NONE = 0, /* no after cursor (fp_store_feed_page) */
    FP_FEED_AFTER_TOP,      /* found; nothing newer remains above the page */
    FP_FEED_AFTER_MORE,     /* found; newer posts remain above the page */
    FP_FEED_AFTER_MISSING   /* unknown, or a gap above it: the page is the newest one */
} fp_feed_after;

/* One page of a feed: parallel arrays of ids and post bodies (JSON), and
 * the owner's revocation read in the same script call. */
typedef struct {
    char (*ids)[FP_ID_BUFSZ];
    char **posts; /* each malloc'd: {"id","author_id","text","created_at"} */
    bool *cached; /* posts[i] came from the body cache (fp_body_cache) */
    size_t n;
    int64_t revoked_before; /* revoked:<uid> (unix seconds), 0 when unset */
    fp_feed_after after;    /* FP_FEED_AFTER_NONE but from fp_store_feed_after */
    /* "" when the page ends where it should; else the read stopped short
     * (of limit posts, or above an after cursor of the one more that says
     * whether newer posts remain) while the feed goes on, and this is the
     * id the next read continues from (before=, or after= for an after page, whose
     * after is then FP_FEED_AFTER_MORE): at its budget of ids
     * (FP_STORE_FEED_SCAN_EXTRA ids of gone posts), the last id it looked
     * at; at its bound of bytes (fp_store_config.page_bytes), the last
     * post it holds. */
    char resume[FP_ID_BUFSZ];
} fp_feed_page;

/* Ids of posts that are gone (deleted, expired) a feed read looks at
 * beyond the posts it returns, at most, before it stops with a short page
 * and fp_feed_page.resume: each costs Redis work, and a feed may end in a
 * long run of them (post_ttl). */
#define FP_STORE_FEED_SCAN_EXTRA 1000

/* Free what p holds and zero it. Safe on a zeroed struct, idempotent. */
void fp_feed_page_free(fp_feed_page *p);

/*
 * A cache of post bodies that feed reads go through (feed-gateway's,
 * gateway/bodies.c), kept right by Redis's client-side caching: the bodies
 * it lacks are read with tracking on (CLIENT TRACKING ... REDIRECT <id>
 * OPTIN, CLIENT CACHING yes, MGET, in one pipeline), so Redis tells the
 * client <id>, a subscriber of __redis__:invalidate, when one of them
 * changes or goes (fp_store_subscribe_invalidations).
 *
 * get: for each of the n ids, bodies[i] = a malloc'd copy of its cached
 * body, or NULL, and gone[i] = whether the cache knows it has none;
 * returns the client id to redirect tracking to, with *epoch set, or 0
 * when the cache is off (nothing filled).
 * put: offers what was read with tracking on, after get returned epoch,
 * for the n ids: bodies[i], NULL when post:<id> does not exist; the cache
 * keeps them only if nothing was invalidated since. reader is the client
 * id of the connection that read them: Redis tracks keys per connection
 * and forgets them when it closes, so the cache must be emptied once a
 * reader is gone (fp_store_clients_alive).
 * refused (may be NULL): Redis answered the tracking commands with an
 * error (reply, e.g. an ACL without CLIENT TRACKING), so what was read is
 * not offered: every page reads its bodies from Redis while it refuses.
 * All are called from any thread that reads feeds.
 */
typedef struct {
    void *ctx;
    long long (*get)(void *ctx, char (*ids)[FP_ID_BUFSZ], size_t n, char **bodies, bool *gone,
                     uint64_t *epoch);
    void (*put)(void *ctx, long long reader, char (*ids)[FP_ID_BUFSZ], size_t n,
                char *const *bodies, uint64_t epoch);
    void (*refused)(void *ctx, const char *reply);
} fp_body_cache;

/* Feed reads on s go through cache from now on (NULL: none). The cache
 * must outlive its use by s. */
void fp_store_set_body_cache(fp_store *s, const fp_body_cache *cache);

/*
 * Which of the n client ids are connected to Redis now (CLIENT LIST ID):
 * alive[i] for ids[i]. For the body cache's readers (fp_body_cache.put).
 * Returns 0, -EIO (no connection) or -EPROTO (an error reply, e.g. an
 * ACL without CLIENT LIST; fp_store_errstr says which).
 */
int fp_store_clients_alive(fp_store *s, const long long *ids, size_t n, bool *alive);

/*
 * The newest posts (at most limit) of uid's feed (feed:<uid> merged with
 * posts:<a> of each pull author a uid follows, by sequence number) whose
 * body still exists, newest first, each once, and revoked:<uid>
 * (out->revoked_before), in one
 * script call: the gateway checks the caller's token without a round trip
 * of its own. before NULL or "": from the newest; else a post id, and the
 * page starts after that entry; an id no longer in the feed (trimmed,
 * deleted) starts it at the place its sequence number says while its
 * marker lasts (feed_read.lua), and an unknown one gives an empty page.
 * limit 0 gives an empty page (the revocation is still read). Under a
 * bound of bytes (fp_store_config.page_bytes) the page holds the newest
 * posts whose bodies fit, at least one, and out->resume when it stopped
 * there; the bodies are read in chunks, so a read holds about the bound,
 * not limit bodies. A feed still stored as a list (older releases) is
 * converted first, so a read may write. *out is zeroed first and holds
 * nothing to free on failure.
 */
int fp_store_feed_page(fp_store *s, const char *uid, size_t limit, const char *before,
                       fp_feed_page *out);

/*
 * The posts of uid's merged feed (as fp_store_feed_page) newer than the
 * entry after (a post id, whether or not its body still exists) whose
 * body still exists, each once: the limit of them nearest
 * to that entry (the oldest of the newer ones), newest first, so that the
 * page's newest id is the cursor of the next call. out->after is
 * FP_FEED_AFTER_MORE when newer posts remain above the page, else
 * FP_FEED_AFTER_TOP; when after is unknown (not in the feed, and its
 * place no longer known: as for fp_store_feed_page) or posts above it may
 * have been trimmed, it is FP_FEED_AFTER_MISSING and the page is the one
 * fp_store_feed_page() gives without a cursor. revoked:<uid> comes with
 * it, in the same script call. limit 0 gives an empty page (out->after
 * still says whether newer posts exist). Under a bound of bytes the page
 * holds the posts next to the cursor that fit (out->after then
 * FP_FEED_AFTER_MORE, out->resume its newest). *out is zeroed first and holds
 * nothing to free on failure.
 */
int fp_store_feed_after(fp_store *s, const char *uid, size_t limit, const char *after,
                        fp_feed_page *out);

/*
 * The newest ids (at most limit) of feed:<uid> whose post body still
 * exists, newest first, each once. *ids is malloc'd (free() it), NULL when
 * *n is 0. limit 0 gives no ids.
 */
int fp_store_feed_ids(fp_store *s, const char *uid, size_t limit, char (**ids)[FP_ID_BUFSZ],
                      size_t *n);

/* The author of post:<id> into author. -EIDRM when the post was deleted
 * (its tombstone lasts FP_STORE_MARKER_TTL_S), -ENOENT when there is no
 * such post otherwise (never written, expired, or deleted longer ago). */
int fp_store_post_author(fp_store *s, const char *post_id, char author[FP_ID_BUFSZ]);

/* following:<uid>, sorted; *ids malloc'd (free() it), NULL when *n is 0. */
int fp_store_following(fp_store *s, const char *uid, char (**ids)[FP_ID_BUFSZ], size_t *n);

/* revoked:<uid> (tokens with an older iat are refused), 0 when unset. */
int fp_store_revoked_before(fp_store *s, const char *uid, int64_t *before);

/*
 * The subscriptions of feed-gateway (store_sub.c): the revocations
 * channel and Redis's invalidations. fp_store_subscribe_revoked makes s a
 * subscriber of <prefix>revoked until it is reconnected; meanwhile only
 * the calls below, fp_store_reconnect and fp_store_free may be used on
 * it. 0, -EIO or -EPROTO (an unexpected reply).
 */
int fp_store_subscribe_revoked(fp_store *s);
/* Subscribes s to __redis__:invalidate and gives its client id, the one
 * that fp_body_cache.get returns (0 unless this succeeded). Must come
 * before fp_store_subscribe_revoked (a subscriber cannot ask for its id).
 * 0, -EIO or -EPROTO (refused, for instance by an ACL; s still works). */
int fp_store_subscribe_invalidations(fp_store *s, long long *client_id);
/* Sends a PING on a subscriber without waiting: its answer comes through
 * fp_store_sub_next. 0 or -EIO. */
int fp_store_sub_ping(fp_store *s);

/* A subscriber's message. */
typedef enum {
    FP_SUB_REVOKED,     /* "<uid> <before>": a raise of revoked:<uid> */
    FP_SUB_PONG,        /* the answer to fp_store_sub_ping */
    FP_SUB_INVALIDATED, /* these post:<id> keys changed or went (ids, n) */
    FP_SUB_FLUSHED      /* every key may have changed (FLUSHALL, FLUSHDB) */
} fp_sub_kind;

typedef struct {
    fp_sub_kind kind;
    char uid[FP_ID_BUFSZ]; /* FP_SUB_REVOKED */
    int64_t before;
    char (*ids)[FP_ID_BUFSZ]; /* FP_SUB_INVALIDATED: malloc'd, NULL when n is 0 */
    size_t n;
} fp_sub_msg;

/* Frees what m holds. */
void fp_sub_msg_free(fp_sub_msg *m);
/* Waits up to timeout_ms for the subscriber's next message into *m: 0,
 * -ETIMEDOUT, -EPROTO (a message that is not of its form; errstr says
 * so; the subscription goes on), -ENOMEM or -EIO (the link broke).
 * Invalidated keys other than post bodies are left out of m->ids. */
int fp_store_sub_next(fp_store *s, int timeout_ms, fp_sub_msg *m);

/* PING: 0 when Redis answers. */
int fp_store_ping(fp_store *s);

/* One field of a bridge's counter hash stats:bridge:<node>. */
typedef struct {
    char node[FP_ID_BUFSZ];
    char name[48];
    uint64_t value;
} fp_stat_sample;

/*
 * The counters of every node in `nodes` (SMEMBERS, then one pipelined
 * HGETALL per node), nodes sorted; fields that are not a name of
 * [a-z0-9_] with a decimal value are skipped. *out malloc'd (free() it),
 * NULL when *n is 0.
 */
int fp_store_stats_get(fp_store *s, fp_stat_sample **out, size_t *n);

/* Writes counters to the hash <prefix>stats:bridge:<node> (HSET of every
 * name/value pair, one round trip). Returns 0, -EIO or -EPROTO. */
int fp_store_put_stats(fp_store *s, const char *node, const char *const *names,
                       const uint64_t *values, size_t n);

#endif
