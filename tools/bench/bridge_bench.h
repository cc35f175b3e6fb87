/*
 * bridge_bench.h - shared declarations of feedpush-bench-bridge.
 *
 *   bridge_bench.c       options, the runs (fan-out, deliveries, latency),
 *                        the result tables
 *   bridge_bench_env.c   temp dir, HS256 secret, redis + rabbitmq +
 *                        mosquitto/feed_auth.so through tools/fp-server, the
 *                        feed-bridge child process, the AMQP publisher with
 *                        confirms, Redis helpers, CPU accounting
 *   bridge_bench_subs.c  the online followers: libmosquitto clients driven
 *                        by a few poll() threads, counting receipts and
 *                        recording end-to-end latencies
 */
#ifndef FP_BRIDGE_BENCH_H
#define FP_BRIDGE_BENCH_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include <amqp.h>
#include <hiredis/hiredis.h>

#include "fp_id.h"
#include "fp_time.h" /* fp_time_mono_ns(): one clock for the whole machine, so a
                        publish time can be compared with a receipt time taken
                        in another thread */
/* Sorts v[0..n-1] ascending. */
void bb_sort_i64(int64_t *v, size_t n);
/* Nearest-rank percentile p (0..100] of sorted v[0..n-1] (ns), in ms. */
double bb_pct_ms(const int64_t *v, size_t n, double p);

/* The receipt latencies one client thread records (ns), behind its own
 * lock: the thread adds, the bench resets and merges between bursts. */
typedef struct {
    pthread_mutex_t lock;
    bool lock_init;
    int64_t *v;
    size_t n, cap;
} bb_lat_log;

/* 0, or -1 when the lock cannot be made. */
int bb_lat_init(bb_lat_log *l);
/* Frees the buffer and the lock (safe on a zeroed log). */
void bb_lat_free(bb_lat_log *l);
/* Empties the log and gives it room for capacity samples (0: none).
 * 0, or -1 when that memory is not there. */
int bb_lat_reset(bb_lat_log *l, size_t capacity);
/* Records one sample; dropped when the log is full. */
void bb_lat_add(bb_lat_log *l, int64_t ns);
/* Every sample of logs[0..n_logs-1], sorted ascending, in one malloc'd
 * array (NULL when there are none or memory ran out); *n samples. */
int64_t *bb_lat_merge(bb_lat_log *const *logs, int n_logs, size_t *n);

/* Process helpers shared by the bridge and scale-out benches. */
/* Spawns argv (argv[0] looked up in PATH). Returns the pid or -1. */
pid_t bb_spawn(char *const argv[]);
/* Waits for pid. Returns its exit status, or -1 when killed or not a child. */
int bb_wait(pid_t pid);
/* Reads KEY=<number> from DIR/KIND.env (written by tools/fp-server); -1 if absent. */
long bb_read_env(const char *dir, const char *kind, const char *key);
/* Starts `fp-server start KIND DIR [--conf CONF]` owned by this process;
 * returns the starter's pid (or -1). Pair with bb_server_ready(). */
pid_t bb_server_spawn(const char *fp_server, const char *kind, const char *dir, const char *conf);
/* Waits for the starter, then reads the server's port and process group. 0 or -1. */
int bb_server_ready(pid_t starter, const char *kind, const char *dir, int *port, pid_t *pgid);
/* The process group of /proc/<pid>, or -1. */
long bb_pgrp(const char *pid);

/* ------------------------------------------------------------ environment */

/* The servers of one node pair and the bridge, all ours. */
typedef struct {
    char root[PATH_MAX]; /* temp dir; "" until created */
    char fp_server[PATH_MAX];
    char plugin[PATH_MAX];
    char bridge_bin[PATH_MAX];
    char node[FP_ID_BUFSZ];
    char secret_path[PATH_MAX + 32];
    unsigned char *key; /* the HS256 secret as the plugin reads it */
    size_t key_len;
    int redis_port, amqp_port, mqtt_port;
    pid_t redis_pgid, amqp_pgid, mqtt_pgid; /* process groups, for CPU accounting */
    pid_t bridge;                           /* 0 when not running */
    const char *bridge_log_level;
    const char *broker_conf; /* more mosquitto config lines (a file), or NULL */
    bool keep;               /* leave the temp dir (logs) behind */
    redisContext *redis;
} bb_env;

/* Creates the temp dir and the secret, starts rabbitmq (in the background),
 * redis and mosquitto + plugin, then the bridge, and waits until the bridge
 * has written its first counters. Returns 0 or -1 (reason on stderr). */
int bb_env_start(bb_env *e);

/* SIGTERMs the bridge (SIGKILL after 5 s), stops the servers and removes
 * the temp dir (unless keep). Returns 0, or -1 when something did not stop
 * cleanly. Safe after a failed or partial start. */
int bb_env_stop(bb_env *e);

/* A field of the bridge's counters hash (stats:bridge:<node>), -1 if
 * absent or Redis failed. */
long long bb_stat(bb_env *e, const char *name);

/* Waits up to ms until the bridge's counter name is >= want. Returns its
 * last value (or -1). */
long long bb_stat_wait(bb_env *e, const char *name, long long want, int ms);

/* cmdstat_<cmd> of INFO commandstats: calls and microseconds so far.
 * Returns 0 or -1. */
int bb_redis_cmdstat(bb_env *e, const char *cmd, long long *calls, long long *usec);

/* Adds followers f<first> .. f<first+n-1> to followers:<author> directly
 * (SADD in batches of 1,000 members, pipelined). Returns 0 or -1. */
int bb_redis_followers(bb_env *e, const char *author, size_t n);

/* Is feed:<uid>'s newest entry post_id? */
bool bb_redis_feed_head_is(bb_env *e, const char *uid, const char *post_id);

/* Size of online:<node> (users the plugin reported online), -1 on error. */
long long bb_redis_online(bb_env *e);

/* Round trip of n PINGs (1 ms apart) on our Redis connection, p50 and
 * p99 in microseconds: how long a wakeup takes on this machine now.
 * Returns 0 or -1. */
int bb_redis_ping(bb_env *e, int n, double *p50_us, double *p99_us);

/* The processes whose time is accounted. */
typedef enum {
    BB_P_BRIDGE,
    BB_P_REDIS,
    BB_P_RABBITMQ,
    BB_P_MOSQUITTO,
    BB_P_BENCH, /* this process: publisher and subscribers */
    BB_P__COUNT
} bb_proc;

/* Seconds so far, summed over the threads of each process (group), from
 * /proc/<pid>/task/<tid>/schedstat: on a CPU, and runnable but waiting
 * for one (run queue). */
typedef struct {
    double cpu[BB_P__COUNT];
    double wait[BB_P__COUNT];
} bb_cpu;

void bb_cpu_sample(const bb_env *e, bb_cpu *out);

/* ------------------------------------------------------------ AMQP publisher */

/* The backend's side: one connection publishing to feed.events with
 * publisher confirms. */
typedef struct {
    amqp_connection_state_t conn;
    uint64_t published; /* delivery tags handed out */
    uint64_t confirmed; /* highest tag confirmed */
} bb_pub;

int bb_pub_open(bb_pub *p, const bb_env *e);
void bb_pub_close(bb_pub *p);

/* Publishes body (persistent, routing key rk) without waiting. 0 or -1. */
int bb_pub_send(bb_pub *p, const char *rk, const char *body);

/* Waits until every tag <= upto is confirmed (or timeout_ms pass, or a
 * nack). Returns 0 or -1. */
int bb_pub_wait(bb_pub *p, uint64_t upto, int timeout_ms);

/* ------------------------------------------------------------ subscribers */

typedef struct bb_subs bb_subs;

/*
 * Connects n users f0 .. f<n-1> (tokens minted with the env's secret,
 * MQTT 3.1.1, clean session) on `threads` poll() threads; each subscribes
 * to its feed/<uid> at QoS 1. Returns 0 once every client has its SUBACK
 * (within timeout_ms), or -1. *out is set either way when memory allowed:
 * free it with bb_subs_stop().
 */
int bb_subs_start(bb_subs **out, const bb_env *e, size_t n, int threads, int timeout_ms);

/* Disconnects every client and joins the threads. NULL is fine. */
void bb_subs_stop(bb_subs *s);

/* Clients that lost their connection after their SUBACK. */
size_t bb_subs_dropped(bb_subs *s);

/*
 * Starts counting the posts whose text carries tag `phase` (see
 * bb_post_text) and, when lat_capacity > 0, recording the end-to-end
 * latency of each receipt (up to lat_capacity in all). Counters restart.
 */
int bb_subs_phase(bb_subs *s, int phase, size_t lat_capacity);

/* Receipts of the current phase so far, and of other phases (late or
 * stray messages). */
uint64_t bb_subs_received(bb_subs *s, uint64_t *other);

/* Monotonic ns of the latest receipt of the current phase (0: none). */
int64_t bb_subs_last_ns(bb_subs *s);

/* The recorded latencies (ns), sorted ascending; *n set. A malloc'd array
 * (free it), or NULL when none. Call when the phase is over. */
int64_t *bb_subs_latencies(bb_subs *s, size_t *n);

/* The post text the subscribers parse: "bb:<phase>:<publish time ns>". */
void bb_post_text(char *buf, size_t len, int phase, int64_t ns);

#endif
