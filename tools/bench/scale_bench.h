/*
 * scale_bench.h - shared declarations of feedpush-bench-scale.
 *
 *   scale_bench.c       options, the load (users, followers, posts), the
 *                       burst per node count, the result tables
 *   scale_bench_env.c   temp dir, HS256 secret, one redis and one rabbitmq
 *                       (a vhost of ours) through tools/fp-server, N node
 *                       pairs n1..nN (mosquitto + feed_auth.so, feed-bridge
 *                       child), the AMQP publisher's login, CPU accounting
 *   scale_bench_subs.c  the online users: libmosquitto clients, each on
 *                       exactly one node, driven by a few epoll threads,
 *                       counting receipts per user and per node and
 *                       timing each receipt against its publish
 *
 * From bridge_bench_env.c (linked in, unchanged): fp_time_mono_ns() and the
 * publisher with confirms (bb_pub_send, bb_pub_wait, bb_pub_close).
 */
#ifndef FP_SCALE_BENCH_H
#define FP_SCALE_BENCH_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#include "bridge_bench.h"
#include "fp_id.h"

#define SB_MAX_NODES 8

/* ------------------------------------------------------------ environment */

/* One node pair: node id n<i>, its mosquitto and its feed-bridge. */
typedef struct {
    char id[FP_ID_BUFSZ];
    char dir[PATH_MAX + 16]; /* ROOT/n<i>: fp-server state, plugin conf, logs */
    int mqtt_port;
    pid_t mqtt_pgid; /* mosquitto's process group (0: not running) */
    pid_t bridge;    /* the feed-bridge child, own process group (0: none) */
} sb_node;

typedef struct {
    char root[PATH_MAX]; /* temp dir; "" until created */
    char fp_server[PATH_MAX];
    char plugin[PATH_MAX];
    char bridge_bin[PATH_MAX];
    char secret_path[PATH_MAX + 32];
    char vhost[32];
    unsigned char *key; /* the HS256 secret, to mint user tokens */
    size_t key_len;
    int redis_port, amqp_port;
    pid_t redis_pgid, amqp_pgid;
    int heartbeat_s; /* plugin_opt_heartbeat_interval */
    const char *bridge_log_level;
    bool keep; /* leave the temp dir (logs) behind */
    redisContext *redis;
    int n_nodes; /* node pairs running now */
    sb_node node[SB_MAX_NODES];
} sb_env;

/* Creates the temp dir and the secret, starts redis and rabbitmq and
 * creates the vhost. No node yet. Returns 0 or -1 (reason on stderr). */
int sb_env_start(sb_env *e);

/* Starts node pairs n1..n<n>: the brokers, then the bridges, and waits
 * until every plugin heartbeats (node:n<i>) and every bridge has written
 * its first counters. Returns 0 or -1. */
int sb_nodes_start(sb_env *e, int n);

/* Stops every node pair (bridges first, SIGTERM, each must exit 0 within
 * 5 s; then the brokers). Returns 0 or -1. */
int sb_nodes_stop(sb_env *e);

/* Stops the nodes, the servers, checks for orphans, removes the temp dir
 * (unless keep). Safe after a partial start. Returns 0 or -1. */
int sb_env_stop(sb_env *e);

/* FLUSHALL on our redis. Returns 0 or -1. */
int sb_redis_flush(sb_env *e);

/* A field of stats:bridge:<node>, -1 when absent or on error. */
long long sb_stat(sb_env *e, const char *node, const char *name);

/* An integer reply of a Redis command (SCARD, EXISTS...), -1 otherwise. */
long long sb_redis_int(sb_env *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* SADD followers:<author> f<ids[0]> ... (one command). Returns 0 or -1. */
int sb_redis_followers(sb_env *e, const char *author, const size_t *ids, size_t n);

/* Opens p (bridge_bench.h) as the backend: a connection to our vhost,
 * channel 1 in confirm mode. Returns 0 or -1. */
int sb_pub_open(bb_pub *p, const sb_env *e);

/* CPU seconds so far (on a CPU, from /proc/<pid>/task/<tid>/schedstat,
 * every thread), per process (group). */
typedef struct {
    double mosq[SB_MAX_NODES], bridge[SB_MAX_NODES];
    double redis, rabbit, bench;
    double machine; /* busy time of all CPUs (/proc/stat), for other load */
    /* Context switches of every mosquitto and feed-bridge thread so far
     * (/proc/<pid>/task/<tid>/status): voluntary (the thread waited for
     * something: a wakeup each) and involuntary (preempted). */
    double node_vol, node_invol;
} sb_cpu;

void sb_cpu_sample(const sb_env *e, sb_cpu *out);

/* ------------------------------------------------------------ subscribers */

typedef struct sb_subs sb_subs;

/*
 * Connects users f0 .. f<n-1>, user f<j> to node (j % nodes) + 1 (its
 * MQTT port from e), on `threads` epoll threads: MQTT 3.1.1, clean
 * session, a user token each, then a QoS 1 subscription to feed/f<j>.
 * Returns 0 once all have their SUBACK (within timeout_ms), or -1; *out
 * is set either way when memory allowed: free it with sb_subs_stop().
 */
int sb_subs_start(sb_subs **out, const sb_env *e, size_t n, int threads, int timeout_ms);

/* Disconnects every client and joins the threads. NULL is fine. */
void sb_subs_stop(sb_subs *s);

/* Clients that lost their connection after their SUBACK. */
size_t sb_subs_dropped(sb_subs *s);

/* Counts from now on the receipts whose post text is "sb:<phase>:..."
 * (sb_post_text); every counter restarts. When lat_capacity > 0, also
 * records the latency (receipt - publish time in the text) of up to
 * lat_capacity receipts per client thread. Returns 0, or -1 when the
 * latency buffers could not be allocated (counting goes on). */
int sb_subs_phase(sb_subs *s, int phase, size_t lat_capacity);

/* Receipts of the current phase so far; *other: those of no phase or of
 * another one (late or stray). */
uint64_t sb_subs_received(sb_subs *s, uint64_t *other);

/* Receipts of the current phase by user f<j>, and by the users of node
 * i (1-based). */
uint64_t sb_subs_user(sb_subs *s, size_t j);
uint64_t sb_subs_node(sb_subs *s, int i);

/* Monotonic ns of the latest receipt of the current phase (0: none). */
int64_t sb_subs_last_ns(sb_subs *s);

/* The latencies recorded in the current phase (ns), sorted ascending;
 * *n set. Stops recording. A malloc'd array (free it), or NULL when none. */
int64_t *sb_subs_latencies(sb_subs *s, size_t *n);

/* The post text the subscribers parse: "sb:<phase>:<seq>:<ns>", ns the
 * publish time (fp_time_mono_ns). */
void sb_post_text(char *buf, size_t len, int phase, size_t seq, int64_t ns);

#endif
