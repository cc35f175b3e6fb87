/*
 * bench.h - shared declarations of feedpush-bench-auth.
 *
 *   auth_bench.c  options, the ACL micro-benchmark, the result table
 *   bench_env.c   temp dir, keys, tokens, redis + mosquitto through
 *                 tools/fp-server
 *   bench_mqtt.c  the connect storm and the end-to-end message run
 *                 (libmosquitto clients, several threads)
 */
#ifndef FP_BENCH_H
#define FP_BENCH_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fp_jwt.h"
#include "fp_time.h"

/* ------------------------------------------------------------ environment */

/* One broker under test, or an existing one (--port): where to connect and
 * the key its tokens are signed with. */
typedef struct {
    fp_jwt_alg alg;
    char host[256];
    int port;
    unsigned char *key; /* HS256 secret or RS256/ES256 private key PEM */
    size_t key_len;
    char dir[PATH_MAX + 16]; /* fp-server dir of this mosquitto; "" = not ours */
    long pid;                /* its pid when ours, else 0 */
} bench_broker;

typedef struct {
    char root[PATH_MAX]; /* temp dir; "" until created */
    char fp_server[PATH_MAX];
    char plugin[PATH_MAX];
    int redis_port; /* 0 = no redis started */
    long redis_pid;
    bool keep; /* leave the temp dir (logs) behind */
} bench_env;

/* Creates the temp dir and starts redis. Returns 0 or -1 (reason on stderr). */
int bench_env_start(bench_env *e);

/* Starts a mosquitto loading the plugin for alg (fresh key material in the
 * temp dir) and fills b. Returns 0 or -1. */
int bench_env_broker_start(bench_env *e, fp_jwt_alg alg, bench_broker *b);

/* Stops the broker (if ours) and frees b's key. Returns 0 or -1 when the
 * stop failed. */
int bench_env_broker_stop(bench_env *e, bench_broker *b);

/* Stops everything still running and removes the temp dir (unless keep).
 * Returns 0 or -1. */
int bench_env_stop(bench_env *e);

/* Mints n tokens for users "u0".."u<n-1>" (role user, valid one hour) on
 * up to threads threads. Returns a malloc'd array (free with
 * bench_tokens_free) or NULL (reason on stderr). */
char **bench_tokens_mint(const bench_broker *b, size_t n, int threads);
void bench_tokens_free(char **tokens, size_t n);

/* One token for sub with the given role (malloc'd), NULL on failure. */
char *bench_token_one(const bench_broker *b, const char *sub, fp_role role);

/* ------------------------------------------------------------ CPU use */

/* A snapshot of the machine's and the run's CPU counters. */
typedef struct {
    int64_t t_ns;
    unsigned long long total_ticks, idle_ticks; /* /proc/stat, all CPUs */
    double self_s, broker_s, redis_s;           /* process CPU seconds */
} bench_cpu_sample;

/* CPU use between two samples, in CPUs (1.0 = one CPU fully busy). */
typedef struct {
    double busy;   /* the whole machine */
    double client; /* this process (client threads) */
    double broker; /* mosquitto, all threads (the plugin's Redis thread too) */
    double redis;  /* redis-server */
    double other;  /* busy minus the above: anything else on the machine */
} bench_cpu_use;

/* Samples the counters; e may be NULL and broker_pid 0 (not ours). */
void bench_cpu_take(const bench_env *e, long broker_pid, bench_cpu_sample *s);
void bench_cpu_diff(const bench_cpu_sample *a, const bench_cpu_sample *b, bench_cpu_use *u);

/* ------------------------------------------------------------ MQTT load */

typedef struct {
    size_t ok;
    size_t refused; /* CONNACK other than 0 */
    size_t errors;  /* connect error, closed without CONNACK, timeout */
    double seconds; /* wall time of the whole storm */
    double rate;    /* ok / seconds */
    double p50_ms;
    double p99_ms;
    double max_ms;
} bench_connect_result;

typedef struct {
    int threads;    /* client threads */
    int inflight;   /* connects in progress per thread */
    int timeout_ms; /* per connect, until CONNACK */
    const char *id_prefix;
    size_t first; /* tokens[first .. first+n-1] are used */
} bench_connect_opts;

/* Connects once per token i = first .. first+n-1 (username u<i>, client
 * id <prefix><i>), waits for the CONNACK, disconnects. Returns 0 (the
 * result filled) or -1 when the run could not be set up. */
int bench_connect_storm(const bench_broker *b, char **tokens, size_t n, const bench_connect_opts *o,
                        bench_connect_result *r);

typedef struct {
    size_t sent;
    size_t received;
    double seconds;
    double rate; /* received / seconds */
} bench_e2e_result;

/* A service client publishes n QoS 1 messages to feed/<user>, a user
 * client subscribed to it receives them; at most window messages are in
 * the system at a time (the broker drops beyond its queue limit). Returns
 * 0 or -1. */
int bench_e2e(const bench_broker *b, size_t n, int window, bench_e2e_result *r);

#endif
