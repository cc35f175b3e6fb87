/*
 * bench_lib.h - what the three benchmarks share; docs/benchmarks.md has the
 * layout. Times come from fp_time_mono_ns(), one clock for the machine, so
 * a publish time in a post compares with a receipt time in another thread.
 */
#ifndef FP_BENCH_LIB_H
#define FP_BENCH_LIB_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#include "fp_id.h"
#include "fp_jwt.h"
#include "fp_time.h"
#include "ft_token.h"
#include "node_env.h"

#define BENCH_MAX_NODES FT_NODES_MAX
#define BENCH_MAX_LIST 8
#define BENCH_STALL_MS 15000 /* a run with no progress for this long gives up */

/* ------------------------------------------------------------ options */

typedef enum {
    BENCH_OPT_SIZE,   /* size_t */
    BENCH_OPT_INT,    /* int */
    BENCH_OPT_DOUBLE, /* double */
    BENCH_OPT_STRING, /* const char *, pointing into argv */
    BENCH_OPT_FLAG,   /* bool, no argument */
    BENCH_OPT_LIST,   /* bench_list: "1,100,10000" */
} bench_opt_type;

typedef struct {
    double v[BENCH_MAX_LIST];
    int n;
} bench_list;

/* One option: --name (and -letter when letter != 0), stored at offset in
 * the caller's struct, numbers checked against min..max; def is its
 * default and smoke its value under --smoke (NULL: none), as text. */
typedef struct {
    const char *name;
    int letter;
    const char *arg; /* metavar for --help; NULL for a flag */
    bench_opt_type type;
    size_t offset;
    double min, max;
    const char *def, *smoke, *help;
} bench_opt;

/* The options every bench takes (paths default to this build tree). */
typedef struct {
    const char *fp_server, *plugin, *bridge, *log_level;
    bool keep;  /* keep the temp dir with the servers' logs */
    bool smoke; /* tiny sizes, a check that the measured path works */
} bench_common;

/* Fills cfg and c from the defaults, argv, then the smoke values under
 * --smoke. with_bridge adds --bridge and --log-level. Returns 0, 1 after
 * --help, or -1 (printed). */
int bench_parse(const char *prog, const bench_opt *opts, size_t n_opts, void *cfg, bench_common *c,
                bool with_bridge, int argc, char **argv);

/* ------------------------------------------------------------ numbers */

void bench_sort_i64(int64_t *v, size_t n);
/* Nearest-rank percentile p (0..100] of sorted v[0..n-1] (ns), in ms. */
double bench_pct_ms(const int64_t *v, size_t n, double p);
/* Median of v[0..n-1] (n >= 1; sorts v). */
double bench_median(double *v, int n);
/* Microseconds of CPU per item, 0 when n is 0. */
double bench_us_per(double cpu_s, uint64_t n);
/* "1.23 0.98 0.50" from /proc/loadavg, or "?". */
void bench_loadavg(char *out, size_t len);
/* Prints "<prog>: N CPUs (model), load average ...". */
void bench_print_machine(const char *prog);

/* ------------------------------------------------------------ CPU */

#define BENCH_MAX_GROUPS (2 + 2 * BENCH_MAX_NODES)

/* Seconds on a CPU and runnable but waiting (schedstat), context switches
 * (voluntary = waits, involuntary = preemptions), over all threads. */
typedef struct {
    double cpu, wait, vol, invol;
} bench_times;

typedef struct {
    int64_t t_ns;
    double machine;   /* busy seconds of all CPUs (/proc/stat) */
    bench_times self; /* cpu: getrusage, ended threads included */
    bench_times g[BENCH_MAX_GROUPS];
} bench_cpu;

/* Samples this process and every process of the groups pgids[0..n-1]. */
void bench_cpu_sample(const long *pgids, int n, bench_cpu *out);
/* b - a, field by field, into d (t_ns: the interval). */
void bench_cpu_diff(const bench_cpu *a, const bench_cpu *b, bench_cpu *d);

/* The kinds of process a node pair run's CPU time is split over. */
enum { BENCH_P_BRIDGE, BENCH_P_REDIS, BENCH_P_RABBIT, BENCH_P_MOSQ, BENCH_P_SELF, BENCH_P_N };

/* Per kind over a bench_env_cpu difference d: the bridges and brokers of
 * node pairs 0..n_nodes-1 summed. */
void bench_cpu_procs(const bench_cpu *d, int n_nodes, bench_times t[BENCH_P_N]);

/* ------------------------------------------------------------ servers */

typedef struct {
    const bench_common *c;
    char root[PATH_MAX]; /* temp dir, FP_TEST_TMP of the harness; "" until made */
    ft_server rabbit;    /* port 0: not running */
    bool shared_rabbit;  /* the ctest fixture's, in a vhost of ours */
    char vhost[32];
    ft_node_env nodes; /* redis, node pairs n1..nN, the publisher */
    bool nodes_up;
    redisContext *rc; /* to the nodes' redis */
} bench_env;

/* CPU groups of bench_env_cpu: indexes into bench_cpu.g. */
#define BENCH_G_REDIS 0
#define BENCH_G_RABBIT 1
#define BENCH_G_MOSQ(i) (2 + 2 * (i))
#define BENCH_G_BRIDGE(i) (3 + 2 * (i))

/* Makes the temp dir, points the harness (and node_env: FP_PLUGIN,
 * FP_BRIDGE) at it and, when with_rabbit, starts rabbitmq (under ctest:
 * the rabbitmq fixture's, in a vhost of ours). Returns 0 or -1. */
int bench_env_start(bench_env *e, const bench_common *c, bool with_rabbit);
/* Stops nodes and servers, checks for orphans, removes the temp dir
 * unless keep or !ok. Safe after a partial start. Returns 0 or -1. */
int bench_env_stop(bench_env *e, bool ok);
/* Starts redis and node pairs n1..n<n> (node_env, which waits for the
 * bridges' counters and each plugin's presence). 0 or -1. */
int bench_nodes_start(bench_env *e, int n);
/* Bridges first (SIGTERM; each must exit 0 within 5 s), then brokers, redis. */
int bench_nodes_stop(bench_env *e);
void bench_env_cpu(const bench_env *e, bench_cpu *out);

/* SADD followers:<author> f<(first + i) % users> for i < n, pipelined.
 * 0 or -1 (printed). */
int bench_redis_followers(bench_env *e, const char *author, size_t first, size_t n, size_t users);

/* A bridge or scale bench's main(): setup (its options: 0, 1 after
 * --help, or -1), header, the servers (rabbitmq, redis and nodes node
 * pairs when nodes > 0), run, the servers stopped, print, the "total"
 * line. Returns the exit status. */
typedef struct {
    const char *servers; /* "bench: starting <servers>..." */
    int nodes;
    int (*setup)(void *arg, bench_common *c, int argc, char **argv);
    void (*header)(void *arg, const bench_common *c);
    int (*run)(void *arg, bench_env *e); /* 0 or -1 */
    void (*print)(void *arg);
} bench_driver;

int bench_main(const bench_driver *d, bench_env *e, void *arg, int argc, char **argv);

/* ------------------------------------------------------------ publisher */

typedef struct {
    int64_t first_ns, last_ns; /* the first and the last publish */
    int64_t confirmed_ns;      /* the last confirm */
    int64_t lag_ns;            /* paced: the latest a publish was after its slot */
    double rate;               /* posts/s, first to last publish; 0: one post */
} bench_pubtimes;

/*
 * Publishes posts 0..n-1 of phase with the nodes' publisher, id
 * "p<phase>-<i>", post i by a<author0 + i % n_authors>, at most window
 * unconfirmed; rate > 0 paces them at start + i/rate s (absolute
 * schedule). Each post's text carries its publish time. Waits for the last
 * confirm. Returns 0 or -1.
 */
/* Sleeps until post i of a schedule of rate posts/s begun at start
 * (monotonic ns) is due: an absolute schedule, so a late post does not
 * shift the next. Returns the due time. */
int64_t bench_pace(int64_t start, size_t i, double rate);

int bench_publish(bench_env *e, int window, double rate, int phase, size_t n, size_t author0,
                  size_t n_authors, bench_pubtimes *pt);
/*
 * bench_publish as feed-gateway's publisher does it: at most in_flight
 * messages await their confirms; the posts that come meanwhile wait and
 * go together as one batch message (up to 64, fp_event_batch.h) when a
 * confirm comes, one alone as itself. Each post's text carries the time
 * it was handed to the publisher, so its wait for a batch counts in its
 * latency. 0 or -1.
 */
int bench_publish_batched(bench_env *e, int in_flight, double rate, int phase, size_t n,
                          size_t author0, size_t n_authors, bench_pubtimes *pt);
/* The text the subscribers parse: "fp:<phase>:<seq>:<ns>". */
void bench_post_text(char *buf, size_t len, int phase, size_t seq, int64_t ns);
/* A post.created event of post id by a<author> with text, created now,
 * into buf (len bytes). Returns its length, as snprintf does. */
int bench_post_event(char *buf, size_t len, const char *id, size_t author, const char *text);

/* ------------------------------------------------------------ subscribers */

typedef struct bench_subs bench_subs;

/* A storm connect's time when it got no CONNACK, or a refusing one. */
#define BENCH_CONNECT_ERROR (-1)
#define BENCH_CONNECT_REFUSED (-2)

typedef struct {
    fp_jwt_alg alg; /* tokens minted with key */
    const unsigned char *key;
    size_t key_len;
    int ports[BENCH_MAX_NODES]; /* MQTT port of node i, on 127.0.0.1 */
    int n_nodes;
    size_t users; /* f0..f<users-1>, f<j> on node j % n_nodes */
    int threads;
    int timeout_ms;      /* until every SUBACK; in a storm, per connect */
    size_t lat_capacity; /* latencies a phase records at most */
    /* Optional: f<j>'s token is tokens[j] (NULL: minted); at most
     * connecting connects in progress per thread (0: 32). storm != NULL: a
     * connect storm, no subscriptions: each user connects, writes
     * DISCONNECT after the CONNACK and waits for the broker to close;
     * storm[j] is ns to the CONNACK or BENCH_CONNECT_*. */
    char **tokens;
    int connecting;
    int64_t *storm;
} bench_subs_cfg;

/* Connects the users (MQTT 3.1.1, clean session, QoS 1 subscription to
 * feed/f<j>). 0 once all have their SUBACK (a storm: once all are done),
 * or -1; free *out either way. */
int bench_subs_start(bench_subs **out, const bench_subs_cfg *cfg);
/* bench_subs_start for the node pairs of e (their HS256 secret), then
 * waits until each node's online set holds its share. 0 or -1. */
int bench_subs_nodes(bench_subs **out, bench_env *e, size_t users, int threads,
                     size_t lat_capacity);
void bench_subs_stop(bench_subs *s);
/* Clients that lost their connection after their SUBACK. */
size_t bench_subs_dropped(bench_subs *s);
/* Counts the receipts of phase from now on (counters restart); records
 * up to cfg.lat_capacity latencies when record. */
void bench_subs_phase(bench_subs *s, int phase, bool record);
/* Receipts of the phase; *other: of no or another phase (stray). */
uint64_t bench_subs_received(bench_subs *s, uint64_t *other);
uint64_t bench_subs_user(bench_subs *s, size_t j);
uint64_t bench_subs_node(bench_subs *s, int i);
/* Monotonic ns of the phase's latest receipt (0: none). */
int64_t bench_subs_last_ns(bench_subs *s);
typedef struct {
    double p50_ms, p99_ms, max_ms;
    size_t n;
} bench_lat;

/* Sums up the phase's latencies; stops recording. */
void bench_subs_lat(bench_subs *s, bench_lat *out);
/* Waits for expected receipts (and until more(arg) is false, when given),
 * giving up after BENCH_STALL_MS without progress (s NULL: none expected,
 * 4 x BENCH_STALL_MS in all). Returns the receipts. */
uint64_t bench_subs_await(bench_subs *s, uint64_t expected, bool (*more)(void *), void *arg);

#endif
