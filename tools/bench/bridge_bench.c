/*
 * bridge_bench.c - feedpush-bench-bridge: how fast feed-bridge fans posts
 * out and delivers them, and how long a post takes from the backend's
 * AMQP publish to a follower's MQTT client.
 *
 * One node pair on loopback (bench_env.c): rabbitmq-server, redis-server,
 * mosquitto loading feed_auth.so (HS256) and feed-bridge. Per case F
 * (followers per post, default 1, 100, 10000) the author a<F> gets
 * followers f0 .. f<F-1>, written straight into Redis (no follow events).
 *
 *   1. fan-out (nobody online): --events posts published as fast as
 *      publisher confirms allow (at most --window unconfirmed); the clock
 *      runs until the last post heads f0's feed list (polled every 2 ms).
 *   2. deliveries: users f0 .. f<online-1> online (bench_subs.c); the same
 *      burst, each post now also reaching min(F, online) clients; the
 *      clock runs until the last expected receipt.
 *   3. latency: posts at a steady --rate, one confirm at a time; each
 *      receipt is timed against the publish time its text carries.
 *
 * Each run also reads the bridge's counters (mean time per event in stage
 * 1, per delivery message in stage 2), Redis's time in the post_created
 * script (INFO commandstats: EVALSHA) and the CPU time of each process.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mosquitto.h>

#include "bench_lib.h"

#define BB__PROCS 5

typedef struct {
    bench_list followers, events, rates;
    double lat_seconds;
    size_t online;
    int threads, window;
    const char *broker_conf;
} bb_opts;

static const bench_opt bb__opts[] = {
    {"followers", 'f', "LIST", BENCH_OPT_LIST, offsetof(bb_opts, followers), 1, 1e6, "1,100,10000",
     "10", "followers per post, one case each"},
    {"events", 'n', "LIST", BENCH_OPT_LIST, offsetof(bb_opts, events), 1, 1e6, "2000,500,60", "20",
     "posts per throughput run, per case"},
    {"rate", 'r', "LIST", BENCH_OPT_LIST, offsetof(bb_opts, rates), 0.1, 1e5, "100,20,2", "20",
     "posts/s of the latency run, per case"},
    {"seconds", 's', "S", BENCH_OPT_DOUBLE, offsetof(bb_opts, lat_seconds), 0.1, 600, "5", "1",
     "length of each latency run"},
    {"online", 'o', "N", BENCH_OPT_SIZE, offsetof(bb_opts, online), 1, 20000, "1000", "10",
     "users online at most, f0..f<N-1>"},
    {"threads", 't', "N", BENCH_OPT_INT, offsetof(bb_opts, threads), 1, 64, "4", "2",
     "subscriber threads"},
    {"window", 'w', "N", BENCH_OPT_INT, offsetof(bb_opts, window), 1, 65535, "500", NULL,
     "unconfirmed publishes in a burst"},
    {"broker-conf", 0, "FILE", BENCH_OPT_STRING, offsetof(bb_opts, broker_conf), 0, 0, NULL, NULL,
     "more mosquitto config lines (e.g. set_tcp_nodelay true)"},
};

/* What one run measured; the *_us figures are means, -1 when unknown. */
typedef struct {
    bool ran, complete;
    size_t posts;
    uint64_t expected, received, stray;
    double seconds;     /* first publish -> end condition */
    double publish_s;   /* first publish -> last confirm */
    double events_rate; /* posts / time until the last post was in f0's feed */
    double deliv_rate;  /* receipts / seconds */
    double stage1_us, stage2_us, lua_us;
    bench_times t[BB__PROCS]; /* bridge, redis, rabbitmq, mosquitto, bench */
    double p50_ms, p99_ms, max_ms, rate;
} bb_run;

typedef struct {
    size_t followers, targets;
    bb_run fanout, deliver, latency;
} bb_row;

/* The context of a run: the servers, publisher and subscribers. */
typedef struct {
    bb_opts *o;
    bench_env e;
    bench_subs *subs;
    char last[FP_ID_BUFSZ]; /* the id of the run's last post */
    int64_t s1_ns;          /* when it headed f0's feed (0: not yet) */
    double ping_us[2][2];   /* Redis PING p50, p99: before the runs, after */
    char load[2][64];       /* /proc/loadavg then */
} bb_ctx;

/* ------------------------------------------------------------ measuring */

typedef struct {
    long long s1_sum, s1_count, s2_sum, s2_count, lua_calls, lua_usec;
    bench_cpu cpu;
    int64_t t0;
} bb_mark;

/* cmdstat_evalsha of INFO commandstats: calls and microseconds so far. */
static void bb__evalsha(bench_env *e, long long *calls, long long *usec)
{
    redisReply *r = redisCommand(e->rc, "INFO commandstats");
    const char *p = NULL;

    *calls = *usec = 0;
    if (r != NULL && r->type == REDIS_REPLY_STRING)
        p = strstr(r->str, "cmdstat_evalsha:calls=");
    if (p != NULL) {
        *calls = atoll(p + 22);
        p = strstr(p, ",usec=");
    }
    if (p != NULL)
        *usec = atoll(p + 6);
    freeReplyObject(r);
}

/* The start of a run: the counters, Redis's script time, CPU and the clock. */
static void bb__mark(bb_ctx *x, bb_mark *m)
{
    m->s1_sum = ft_node_stat(&x->e.nodes, 1, "stage1_us_sum");
    m->s1_count = ft_node_stat(&x->e.nodes, 1, "stage1_count");
    m->s2_sum = ft_node_stat(&x->e.nodes, 1, "stage2_us_sum");
    m->s2_count = ft_node_stat(&x->e.nodes, 1, "stage2_count");
    bb__evalsha(&x->e, &m->lua_calls, &m->lua_usec);
    bench_env_cpu(&x->e, &m->cpu);
    m->t0 = fp_time_mono_ns();
}

/* The mean per item between two samples of a sum and a count, -1 when unknown. */
static double bb__mean(long long sum0, long long sum1, long long n0, long long n1)
{
    if (sum0 < 0 || sum1 < 0 || n0 < 0 || n1 <= n0)
        return -1.0;
    return (double)(sum1 - sum0) / (double)(n1 - n0);
}

/* Closes a run begun at *m: CPU and Redis figures now, the bridge's
 * counters once they cover the run's posts (and delivery messages). */
static void bb__finish(bb_ctx *x, const bb_mark *m, size_t posts, size_t deliveries, bb_run *r)
{
    int64_t end = fp_time_mono_ns() + 3000000000LL;
    bench_cpu now, d;
    long long calls, usec, s1, s2;

    bench_env_cpu(&x->e, &now);
    bench_cpu_diff(&m->cpu, &now, &d);
    r->t[0] = d.g[BENCH_G_BRIDGE(0)];
    r->t[1] = d.g[BENCH_G_REDIS];
    r->t[2] = d.g[BENCH_G_RABBIT];
    r->t[3] = d.g[BENCH_G_MOSQ(0)];
    r->t[4] = d.self;
    bb__evalsha(&x->e, &calls, &usec);
    r->lua_us = bb__mean(m->lua_usec, usec, m->lua_calls, calls);
    s1 = bench_stat_wait(&x->e, 1, "stage1_count", m->s1_count + (long long)posts, end);
    s2 = bench_stat_wait(&x->e, 1, "stage2_count", m->s2_count + (long long)deliveries, end);
    r->stage1_us =
        bb__mean(m->s1_sum, ft_node_stat(&x->e.nodes, 1, "stage1_us_sum"), m->s1_count, s1);
    r->stage2_us =
        bb__mean(m->s2_sum, ft_node_stat(&x->e.nodes, 1, "stage2_us_sum"), m->s2_count, s2);
    if (s1 - m->s1_count != (long long)posts)
        fprintf(stderr, "bench: the bridge counted %lld events, %zu were published\n",
                s1 - m->s1_count, posts);
}

/* Is f0's newest feed entry the run's last post? */
static bool bb__head_is_last(bb_ctx *x)
{
    redisReply *r = redisCommand(x->e.rc, "LINDEX feed:f0 0");
    bool yes = r != NULL && r->type == REDIS_REPLY_STRING && strcmp(r->str, x->last) == 0;

    freeReplyObject(r);
    return yes;
}

/* For bench_subs_await: still waiting for stage 1 (notes when it ended)? */
static bool bb__stage1_pending(void *arg)
{
    bb_ctx *x = arg;

    if (x->s1_ns == 0 && bb__head_is_last(x))
        x->s1_ns = fp_time_mono_ns();
    return x->s1_ns == 0;
}

/* Run 1: posts with nobody online; done when f0's feed starts with the
 * last one. */
static int bb__run_fanout(bb_ctx *x, int phase, size_t posts, bb_row *row)
{
    bb_run *r = &row->fanout;
    bench_pubtimes pt;
    int64_t t_end;
    bb_mark m;

    snprintf(x->last, sizeof(x->last), "p%d-%zu", phase, posts - 1);
    r->posts = posts;
    bb__mark(x, &m);
    if (bench_publish(&x->e, x->o->window, 0, phase, posts, row->followers, 1, &pt) != 0)
        return -1;
    t_end = fp_time_mono_ns() + (int64_t)BENCH_STALL_MS * 1000000 * 4;
    while (!bb__head_is_last(x) && fp_time_mono_ns() < t_end)
        usleep(2000);
    r->complete = bb__head_is_last(x);
    r->ran = true;
    r->seconds = (double)(fp_time_mono_ns() - m.t0) / 1e9;
    r->publish_s = (double)(pt.confirmed_ns - m.t0) / 1e9;
    r->events_rate = (double)posts / r->seconds;
    bb__finish(x, &m, posts, 0, r);
    return r->complete ? 0 : -1;
}

/* Runs 2 (rate 0: a burst) and 3 (paced, one confirm at a time, each
 * receipt timed) with the followers online. */
static int bb__run_online(bb_ctx *x, int phase, size_t posts, double rate, bb_row *row, bb_run *r)
{
    bench_pubtimes pt;
    int64_t *lat, t_last;
    size_t n_lat = 0;
    bb_mark m;

    snprintf(x->last, sizeof(x->last), "p%d-%zu", phase, posts - 1);
    x->s1_ns = 0;
    r->posts = posts;
    r->expected = (uint64_t)posts * row->targets;
    if (bench_subs_phase(x->subs, phase, rate > 0 ? (size_t)r->expected + 16 : 0) != 0)
        return -1;
    bb__mark(x, &m);
    if (bench_publish(&x->e, rate > 0 ? 1 : x->o->window, rate, phase, posts, row->followers, 1,
                      &pt) != 0)
        return -1;
    bench_subs_await(x->subs, r->expected, bb__stage1_pending, x);
    r->received = bench_subs_received(x->subs, &r->stray);
    t_last = bench_subs_last_ns(x->subs);
    r->ran = true;
    r->complete = r->received == r->expected && x->s1_ns != 0;
    r->seconds = t_last > m.t0 ? (double)(t_last - m.t0) / 1e9 : 0.0;
    r->publish_s = (double)(pt.confirmed_ns - m.t0) / 1e9;
    r->deliv_rate = r->seconds > 0 ? (double)r->received / r->seconds : 0.0;
    r->events_rate = x->s1_ns != 0 ? (double)posts / ((double)(x->s1_ns - m.t0) / 1e9) : 0.0;
    if (rate > 0) {
        /* The rate achieved: posts - 1 intervals from the first to the last. */
        r->rate = posts > 1 && pt.last_ns > pt.first_ns
                      ? (double)(posts - 1) / ((double)(pt.last_ns - pt.first_ns) / 1e9)
                      : rate;
        lat = bench_subs_latencies(x->subs, &n_lat);
        r->p50_ms = bench_pct_ms(lat, n_lat, 50.0);
        r->p99_ms = bench_pct_ms(lat, n_lat, 99.0);
        r->max_ms = n_lat > 0 ? (double)lat[n_lat - 1] / 1e6 : 0.0;
        free(lat);
    }
    bb__finish(x, &m, posts, posts, r);
    return r->complete ? 0 : -1;
}

/* Round trip of n PINGs (1 ms apart) on our Redis connection, p50 and p99
 * in microseconds: how long a wakeup takes on this machine now. */
static void bb__ping(bb_ctx *x, double *p50_us, double *p99_us)
{
    int64_t rtt[200], t0;
    int i;

    for (i = 0; i < 200; i++) {
        t0 = fp_time_mono_ns();
        freeReplyObject(redisCommand(x->e.rc, "PING"));
        rtt[i] = fp_time_mono_ns() - t0;
        usleep(1000);
    }
    bench_sort_i64(rtt, 200);
    *p50_us = (double)rtt[100] / 1e3;
    *p99_us = (double)rtt[198] / 1e3;
}

/* ------------------------------------------------------------ output */

/* "12" or "-" for an unknown mean in microseconds. */
static const char *bb__us(char *buf, size_t len, double us)
{
    if (us < 0)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%.0f", us);
    return buf;
}

/* One row of the time table: per process, % of the run's wall time spent
 * on a CPU and waiting for one. */
static void bb__print_time(const char *what, size_t followers, const bb_run *r)
{
    int k;

    if (!r->ran)
        return;
    printf("  %-10s %9zu %8.2f |", what, followers, r->seconds);
    for (k = 0; k < BB__PROCS; k++)
        printf(" %5.0f %4.0f", r->seconds > 0 ? 100.0 * r->t[k].cpu / r->seconds : 0.0,
               r->seconds > 0 ? 100.0 * r->t[k].wait / r->seconds : 0.0);
    printf("\n");
}

/* The machine line and the five tables, after the runs. */
static void bb__print(const bb_ctx *x, const bb_row *rows, int n)
{
    static const char *const procs[BB__PROCS] = {"bridge", "redis", "rabbitmq", "mosquitto",
                                                 "bench"};
    char a[32], b[32], c[32];
    const bb_run *r;
    int i, k;

    printf("\nMachine while running: load average %s before the runs, %s after;\n"
           "  Redis PING round trip from this process p50/p99 %.0f/%.0f us before, "
           "%.0f/%.0f us after\n",
           x->load[0], x->load[1], x->ping_us[0][0], x->ping_us[0][1], x->ping_us[1][0],
           x->ping_us[1][1]);
    printf("\nSummary (posts per case: throughput runs as listed below; latency at a steady "
           "rate)\n");
    printf("  %9s %7s %10s %13s %12s %9s %9s\n", "followers", "online", "events/s", "deliveries/s",
           "lat. rate/s", "p50 ms", "p99 ms");
    for (i = 0; i < n; i++) {
        printf("  %9zu %7zu %10.0f %13.0f %12.1f %9.2f %9.2f%s\n", rows[i].followers,
               rows[i].targets, rows[i].fanout.events_rate, rows[i].deliver.deliv_rate,
               rows[i].latency.rate, rows[i].latency.p50_ms, rows[i].latency.p99_ms,
               rows[i].fanout.complete && rows[i].deliver.complete && rows[i].latency.complete
                   ? ""
                   : "  (incomplete)");
    }
    printf("\n1. Fan-out, nobody online: publish as fast as confirms allow (window %d), until\n"
           "   the last post heads f0's feed. stage1/lua us: the bridge's mean time per event,\n"
           "   Redis's mean time in the post_created script.\n",
           x->o->window);
    printf("  %9s %6s %8s %9s %10s %11s %9s %9s\n", "followers", "posts", "seconds", "events/s",
           "publish s", "feed rows/s", "stage1 us", "lua us");
    for (i = 0; i < n; i++) {
        r = &rows[i].fanout;
        printf("  %9zu %6zu %8.2f %9.0f %10.2f %11.0f %9s %9s\n", rows[i].followers, r->posts,
               r->seconds, r->events_rate, r->publish_s,
               r->events_rate * (double)(rows[i].followers + 1), bb__us(a, sizeof(a), r->stage1_us),
               bb__us(b, sizeof(b), r->lua_us));
    }
    printf("\n2. Deliveries, followers online: the same burst, until the last receipt.\n"
           "   stage2 us: the bridge's mean time per feed.deliver message (one per post).\n");
    printf("  %9s %6s %6s %9s %5s %8s %12s %9s %9s %9s %9s\n", "followers", "online", "posts",
           "received", "lost", "seconds", "deliveries/s", "events/s", "stage1 us", "stage2 us",
           "lua us");
    for (i = 0; i < n; i++) {
        r = &rows[i].deliver;
        printf("  %9zu %6zu %6zu %9llu %5lld %8.2f %12.0f %9.0f %9s %9s %9s\n", rows[i].followers,
               rows[i].targets, r->posts, (unsigned long long)r->received,
               (long long)r->expected - (long long)r->received, r->seconds, r->deliv_rate,
               r->events_rate, bb__us(a, sizeof(a), r->stage1_us),
               bb__us(b, sizeof(b), r->stage2_us), bb__us(c, sizeof(c), r->lua_us));
    }
    printf("\n3. End-to-end latency, AMQP publish -> MQTT receipt, at a steady rate.\n");
    printf("  %9s %6s %8s %6s %9s %5s %8s %8s %8s %9s %9s\n", "followers", "online", "posts/s",
           "posts", "received", "lost", "p50 ms", "p99 ms", "max ms", "stage1 us", "stage2 us");
    for (i = 0; i < n; i++) {
        r = &rows[i].latency;
        printf("  %9zu %6zu %8.1f %6zu %9llu %5lld %8.2f %8.2f %8.2f %9s %9s\n", rows[i].followers,
               rows[i].targets, r->rate, r->posts, (unsigned long long)r->received,
               (long long)r->expected - (long long)r->received, r->p50_ms, r->p99_ms, r->max_ms,
               bb__us(a, sizeof(a), r->stage1_us), bb__us(b, sizeof(b), r->stage2_us));
    }
    printf("\n4. Where the time went: per process, %% of the run's wall time on a CPU (cpu)\n"
           "   and runnable but waiting for a CPU (wait), from /proc/*/task/*/schedstat.\n");
    printf("  %-10s %9s %8s |", "run", "followers", "seconds");
    for (k = 0; k < BB__PROCS; k++)
        printf(" %10s", procs[k]);
    printf("\n  %-10s %9s %8s |", "", "", "");
    for (k = 0; k < BB__PROCS; k++)
        printf(" %5s %4s", "cpu", "wait");
    printf("\n");
    for (i = 0; i < n; i++)
        bb__print_time("fan-out", rows[i].followers, &rows[i].fanout);
    for (i = 0; i < n; i++)
        bb__print_time("deliveries", rows[i].followers, &rows[i].deliver);
    for (i = 0; i < n; i++)
        bb__print_time("latency", rows[i].followers, &rows[i].latency);
    fflush(stdout);
}

/* ------------------------------------------------------------ main */

/* The followers of every case, then the three runs of every case. */
static int bb__runs(bb_ctx *x, bb_row *rows, int n)
{
    bench_subs_cfg sc;
    size_t *ids = NULL, i, max = 0;
    char author[FP_ID_BUFSZ];
    int k;

    for (k = 0; k < n; k++)
        max = rows[k].followers > max ? rows[k].followers : max;
    ids = malloc(max * sizeof(*ids));
    if (ids == NULL)
        return -1;
    for (i = 0; i < max; i++)
        ids[i] = i;
    for (k = 0; k < n; k++) {
        snprintf(author, sizeof(author), "a%zu", rows[k].followers);
        if (bench_redis_followers(&x->e, author, ids, rows[k].followers) != 0) {
            fprintf(stderr, "bench: cannot write followers:%s\n", author);
            free(ids);
            return -1;
        }
    }
    free(ids);
    bench_loadavg(x->load[0], sizeof(x->load[0]));
    bb__ping(x, &x->ping_us[0][0], &x->ping_us[0][1]);
    for (k = 0; k < n; k++) {
        fprintf(stderr, "bench: fan-out, %zu followers, %zu posts...\n", rows[k].followers,
                (size_t)x->o->events.v[k]);
        if (bb__run_fanout(x, 10 + k, (size_t)x->o->events.v[k], &rows[k]) != 0)
            return -1;
    }
    fprintf(stderr, "bench: connecting %zu subscribers...\n", x->o->online);
    memset(&sc, 0, sizeof(sc));
    sc.alg = FP_JWT_HS256;
    sc.key = x->e.nodes.p.secret;
    sc.key_len = sizeof(x->e.nodes.p.secret);
    sc.ports[0] = ft_node_port(&x->e.nodes, 1);
    sc.n_nodes = 1;
    sc.users = x->o->online;
    sc.threads = x->o->threads;
    sc.timeout_ms = 60000;
    if (bench_subs_start(&x->subs, &sc) != 0 || bench_await_online(&x->e, x->o->online) != 0)
        return -1;
    for (k = 0; k < n; k++) {
        fprintf(stderr, "bench: deliveries, %zu followers (%zu online), %zu posts...\n",
                rows[k].followers, rows[k].targets, (size_t)x->o->events.v[k]);
        if (bb__run_online(x, 20 + k, (size_t)x->o->events.v[k], 0, &rows[k], &rows[k].deliver))
            return -1;
    }
    for (k = 0; k < n; k++) {
        i = (size_t)(x->o->rates.v[k] * x->o->lat_seconds + 0.5);
        fprintf(stderr, "bench: latency, %zu followers, %.1f posts/s for %.0f s...\n",
                rows[k].followers, x->o->rates.v[k], x->o->lat_seconds);
        if (bb__run_online(x, 30 + k, i > 0 ? i : 1, x->o->rates.v[k], &rows[k],
                           &rows[k].latency) != 0)
            return -1;
    }
    if (bench_subs_dropped(x->subs) > 0) {
        fprintf(stderr, "bench: %zu subscribers lost their connection\n",
                bench_subs_dropped(x->subs));
        return -1;
    }
    bench_loadavg(x->load[1], sizeof(x->load[1]));
    bb__ping(x, &x->ping_us[1][0], &x->ping_us[1][1]);
    return 0;
}

/* The options, and the cases' rows. Returns 0, 1 after --help, or -1. */
static int bb__setup(bb_opts *o, bench_common *c, bb_row *rows, int argc, char **argv)
{
    size_t max = 0;
    int k, rc;

    memset(o, 0, sizeof(*o));
    rc = bench_parse("feedpush-bench-bridge", bb__opts, sizeof(bb__opts) / sizeof(bb__opts[0]), o,
                     c, true, argc, argv);
    if (rc != 0)
        return rc;
    if (o->events.n != o->followers.n || o->rates.n != o->followers.n) {
        fprintf(stderr, "bench: --followers, --events and --rate need as many entries\n");
        return -1;
    }
    for (k = 0; k < o->followers.n; k++) {
        rows[k].followers = (size_t)o->followers.v[k];
        max = rows[k].followers > max ? rows[k].followers : max;
    }
    /* No more users online than the largest case has followers. */
    o->online = o->online < max ? o->online : max;
    for (k = 0; k < o->followers.n; k++)
        rows[k].targets = rows[k].followers < o->online ? rows[k].followers : o->online;
    return 0;
}

int main(int argc, char **argv)
{
    static bb_ctx x;
    bb_row rows[BENCH_MAX_LIST];
    bench_common c;
    bb_opts o;
    int64_t t0 = fp_time_mono_ns();
    int rc;

    memset(rows, 0, sizeof(rows));
    rc = bb__setup(&o, &c, rows, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 1;
    x.o = &o;
    signal(SIGPIPE, SIG_IGN);
    bench_print_machine("feedpush-bench-bridge");
    printf("  rabbitmq-server, redis-server, mosquitto + feed_auth.so, feed-bridge and this\n"
           "  process (publisher, MQTT subscribers) all share these CPUs, on loopback.\n"
           "  bridge: %s\n"
           "  followers: SADD followers:a<F> f0..f<F-1> straight into Redis (no follow events)\n"
           "  online: f0..f%zu as MQTT 3.1.1 clients (QoS 1, %d threads); a post of a<F>\n"
           "  reaches min(F, %zu) of them\n",
           c.bridge, o.online - 1, o.threads, o.online);
    fflush(stdout);
    mosquitto_lib_init();
    fprintf(stderr, "bench: starting rabbitmq, redis, mosquitto and feed-bridge...\n");
    rc = bench_env_start(&x.e, &c, true);
    x.e.broker_conf = o.broker_conf;
    x.e.heartbeat_s = 5; /* the plugin's default */
    if (rc == 0)
        rc = bench_nodes_start(&x.e, 1);
    if (rc == 0) {
        fprintf(stderr, "bench: servers up after %.1f s (temp dir %s)\n",
                (double)(fp_time_mono_ns() - t0) / 1e9, x.e.root);
        rc = bb__runs(&x, rows, o.followers.n);
    }
    bench_subs_stop(x.subs);
    if (bench_env_stop(&x.e, rc == 0) != 0) {
        fprintf(stderr, "bench: something did not stop cleanly\n");
        rc = -1;
    }
    mosquitto_lib_cleanup();
    bb__print(&x, rows, o.followers.n);
    printf("\n  total %.1f s\n", (double)(fp_time_mono_ns() - t0) / 1e9);
    if (rc != 0) {
        fprintf(stderr, "bench: the run did not complete\n");
        return 1;
    }
    return 0;
}
