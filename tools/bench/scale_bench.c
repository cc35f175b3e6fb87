/*
 * scale_bench.c - feedpush-bench-scale: does adding node pairs add
 * delivery capacity? The same fixed load is delivered by 1, 2 and 3 node
 * pairs (--nodes); per node count the bench measures deliveries/s and the
 * node pairs' CPU time per delivery (docs/benchmarks.md, "Scale-out").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_lib.h"

#define SB__MAX_BURSTS 5
#define SB__MAX_AUTHORS 64
#define SB__MAX_USERS 20000
#define SB__MAX_POSTS 100000

typedef struct {
    bench_list nodes, followers;
    size_t users, authors, posts, warmup;
    int bursts, threads, window;
    double rate; /* posts/s published; 0: as fast as confirms allow */
} sb_opts;

static const bench_opt sb__opts[] = {
    {"nodes", 'N', "LIST", BENCH_OPT_LIST, offsetof(sb_opts, nodes), 1, BENCH_MAX_NODES, "1,2,3",
     "2", "node pair counts, one run each (at most 8)"},
    {"users", 'u', "U", BENCH_OPT_SIZE, offsetof(sb_opts, users), 1, SB__MAX_USERS, "600", "20",
     "users online, split over the nodes"},
    {"authors", 'a', "A", BENCH_OPT_SIZE, offsetof(sb_opts, authors), 1, SB__MAX_AUTHORS, "4", "2",
     "authors of the burst's posts"},
    {"followers", 'f', "MIN,MAX", BENCH_OPT_LIST, offsetof(sb_opts, followers), 1, SB__MAX_USERS,
     "100,200", "5,10", "followers per author, spread over A"},
    {"posts", 'p', "P", BENCH_OPT_SIZE, offsetof(sb_opts, posts), 1, SB__MAX_POSTS, "300", "20",
     "posts per burst"},
    {"warmup", 'W', "W", BENCH_OPT_SIZE, offsetof(sb_opts, warmup), 0, SB__MAX_POSTS, "30", "4",
     "warm-up posts per node count, not measured"},
    {"bursts", 'b', "K", BENCH_OPT_INT, offsetof(sb_opts, bursts), 1, SB__MAX_BURSTS, "2", "1",
     "measured bursts per node count"},
    {"threads", 't', "N", BENCH_OPT_INT, offsetof(sb_opts, threads), 1, 64, "4", "2",
     "client threads in this process"},
    {"window", 'w', "N", BENCH_OPT_INT, offsetof(sb_opts, window), 1, 65535, "500", NULL,
     "unconfirmed publishes at most"},
    {"rate", 'r', "R", BENCH_OPT_DOUBLE, offsetof(sb_opts, rate), 0, 1e6, "0", NULL,
     "posts/s, evenly spaced (absolute schedule); 0 = as fast as confirms allow"},
};

/* The fixed load: who follows whom, and what each user must receive
 * from a burst of posts. */
typedef struct {
    size_t posts;
    size_t followers[SB__MAX_AUTHORS]; /* F_k */
    size_t first[SB__MAX_AUTHORS];     /* a<k>'s followers start at f<first> */
    uint64_t *per_user;                /* receipts expected per burst, per user */
    uint64_t total;                    /* per burst */
} sb_load;

/* What one burst measured on one node pair. */
typedef struct {
    size_t users;
    uint64_t expected, received; /* this node's users */
    long long deliveries;        /* stats:bridge:n<i> deliveries, delta */
    long long events;            /* post.created events its bridge applied */
    long long messages;          /* feed.deliver messages it consumed */
    double mosq_s, bridge_s;     /* CPU seconds */
} sb_node_run;

typedef struct {
    bool ran, complete;
    int nodes;
    uint64_t expected, received, stray;
    size_t wrong_users; /* users whose receipts differ from what they follow */
    double seconds;     /* first publish -> last receipt */
    double publish_s;   /* first publish -> last confirm */
    double pub_rate;    /* posts/s published: first to last publish */
    double lag_ms;      /* --rate: the latest a publish went out after its slot */
    double rate;        /* deliveries/s */
    bench_lat lat;
    bench_times t[BENCH_P_N]; /* bridges and brokers: all node pairs' */
    double machine_s;         /* busy time of all CPUs, everybody's */
    double other_s;           /* of that, not ours */
    double idle_cpus;         /* CPUs the node pairs used idle, just before */
    sb_node_run node[BENCH_MAX_NODES];
} sb_run;

/* Per-node counters: deliveries, events applied, delivery messages. */
typedef struct {
    long long deliv[BENCH_MAX_NODES], events[BENCH_MAX_NODES], messages[BENCH_MAX_NODES];
} sb_marks;

typedef struct {
    sb_opts o;
    sb_load l, w; /* a measured burst, the warm-up */
    bench_env e;
    bench_subs *subs;
    sb_run runs[BENCH_MAX_LIST][SB__MAX_BURSTS]; /* per node count */
} sb_ctx;

/* ------------------------------------------------------------ the load */

/* F_k spread evenly over [fmin, fmax]; a<k>'s followers are U/A apart,
 * wrapping around. Fills the expected receipts per user for a burst of
 * posts, post p by a<p % A>. */
static int sb__load_make(const sb_opts *o, size_t posts, sb_load *l)
{
    size_t k, i, posts_of, fmin = (size_t)o->followers.v[0], fmax = (size_t)o->followers.v[1];

    memset(l, 0, sizeof(*l));
    l->posts = posts;
    l->per_user = calloc(o->users, sizeof(*l->per_user));
    if (l->per_user == NULL)
        return -1;
    for (k = 0; k < o->authors; k++) {
        l->followers[k] =
            o->authors > 1 ? fmin + (fmax - fmin) * k / (o->authors - 1) : (fmin + fmax) / 2;
        l->first[k] = k * o->users / o->authors;
        posts_of = posts / o->authors + (k < posts % o->authors ? 1 : 0);
        for (i = 0; i < l->followers[k]; i++)
            l->per_user[(l->first[k] + i) % o->users] += posts_of;
        l->total += (uint64_t)posts_of * l->followers[k];
    }
    return 0;
}

/* SADD followers:a<k> for every author. Returns 0 or -1. */
static int sb__load_write(sb_ctx *x)
{
    char author[FP_ID_BUFSZ];
    int rc = 0;
    size_t k;

    for (k = 0; k < x->o.authors && rc == 0; k++) {
        snprintf(author, sizeof(author), "a%zu", k);
        rc = bench_redis_followers(&x->e, author, x->l.first[k], x->l.followers[k], x->o.users);
    }
    return rc;
}

/* ------------------------------------------------------------ a burst */

/* The bridges' counters, once they show at least want[i] deliveries each
 * (they write them once a second; 3 s at most per node). */
static void sb__counters(sb_ctx *x, const long long *want, sb_marks *m)
{
    int i;

    for (i = 0; i < x->e.nodes.n_nodes; i++) {
        m->deliv[i] = ft_node_stat_wait(&x->e.nodes, i + 1, "deliveries", want[i], 3000);
        m->events[i] = ft_node_stat(&x->e.nodes, i + 1, "events_post_created");
        m->messages[i] = ft_node_stat(&x->e.nodes, i + 1, "stage2_count");
    }
}

/* CPUs the node pairs use by themselves: over one idle second. */
static double sb__idle_cpus(sb_ctx *x)
{
    bench_cpu c0, c1, d;
    bench_times t[BENCH_P_N];

    bench_env_cpu(&x->e, &c0);
    usleep(1000000);
    bench_env_cpu(&x->e, &c1);
    bench_cpu_diff(&c0, &c1, &d);
    bench_cpu_procs(&d, x->e.nodes.n_nodes, t);
    return (t[BENCH_P_MOSQ].cpu + t[BENCH_P_BRIDGE].cpu) / ((double)d.t_ns / 1e9);
}

/*
 * One burst of load l with the nodes up and the users online: CPU and the
 * bridges' counters before and after, every user's receipts checked
 * against what it follows. *m holds the counters after the previous burst
 * and is advanced.
 */
static int sb__burst(sb_ctx *x, const sb_load *l, int phase, sb_marks *m, sb_run *r)
{
    long long want[BENCH_MAX_NODES];
    int i, n = x->e.nodes.n_nodes;
    bench_pubtimes pt;
    bench_cpu c0, c1, d;
    int64_t t_last;
    sb_marks now;
    size_t j;

    memset(r, 0, sizeof(*r));
    r->nodes = n;
    r->expected = l->total;
    for (i = 0; i < n; i++) {
        for (j = (size_t)i; j < x->o.users; j += (size_t)n) {
            r->node[i].expected += l->per_user[j];
            r->node[i].users++;
        }
        want[i] = m->deliv[i] + (long long)r->node[i].expected;
    }
    bench_subs_phase(x->subs, phase, true);
    r->idle_cpus = sb__idle_cpus(x);
    bench_env_cpu(&x->e, &c0);
    if (bench_publish(&x->e, x->o.window, x->o.rate, phase, l->posts, 0, x->o.authors, &pt) != 0) {
        fprintf(stderr, "bench: publishing the burst failed\n");
        return -1;
    }
    r->received = bench_subs_await(x->subs, r->expected, NULL, NULL);
    bench_env_cpu(&x->e, &c1);
    bench_cpu_diff(&c0, &c1, &d);
    t_last = bench_subs_last_ns(x->subs);
    r->ran = true;
    r->seconds = t_last > c0.t_ns ? (double)(t_last - c0.t_ns) / 1e9 : 0.0;
    r->publish_s = (double)(pt.confirmed_ns - c0.t_ns) / 1e9;
    r->pub_rate = pt.rate;
    r->lag_ms = (double)pt.lag_ns / 1e6;
    r->rate = r->seconds > 0 ? (double)r->received / r->seconds : 0.0;
    bench_subs_lat(x->subs, &r->lat);
    /* Late duplicates would show here: give stragglers a moment. */
    usleep(200000);
    r->received = bench_subs_received(x->subs, &r->stray);
    for (j = 0; j < x->o.users; j++)
        r->wrong_users += bench_subs_user(x->subs, j) != l->per_user[j];
    sb__counters(x, want, &now);
    bench_cpu_procs(&d, n, r->t);
    r->machine_s = d.machine;
    r->other_s = d.machine;
    for (i = 0; i < BENCH_P_N; i++)
        r->other_s -= r->t[i].cpu;
    r->complete = r->received == r->expected && r->wrong_users == 0;
    for (i = 0; i < n; i++) {
        r->node[i].mosq_s = d.g[BENCH_G_MOSQ(i)].cpu;
        r->node[i].bridge_s = d.g[BENCH_G_BRIDGE(i)].cpu;
        r->node[i].received = bench_subs_node(x->subs, i);
        r->node[i].deliveries = now.deliv[i] - m->deliv[i];
        r->node[i].events = now.events[i] - m->events[i];
        r->node[i].messages = now.messages[i] - m->messages[i];
        if (r->node[i].deliveries != (long long)r->node[i].expected ||
            r->node[i].received != r->node[i].expected)
            r->complete = false;
    }
    *m = now;
    return r->complete ? 0 : -1;
}

/* The warm-up (not measured: links, scripts and queues in use), a burst
 * checked like the others, from whose counters the first burst starts. */
static int sb__warmup(sb_ctx *x, int phase, sb_marks *m)
{
    long long zero[BENCH_MAX_NODES] = {0};
    sb_run r;

    sb__counters(x, zero, m);
    if (x->o.warmup == 0 || sb__burst(x, &x->w, phase, m, &r) == 0)
        return 0;
    fprintf(stderr, "bench: warm-up: %llu of %llu receipts, %zu users with a wrong count\n",
            (unsigned long long)r.received, (unsigned long long)r.expected, r.wrong_users);
    return -1;
}

/*
 * Node count n: n node pairs on a fresh Redis, the followers, the users
 * online, the warm-up, then --bursts measured bursts into runs[]. Stops
 * the node pairs again.
 */
static int sb__config(sb_ctx *x, int n, int config, sb_run *runs)
{
    sb_marks m;
    int b, rc = -1;

    fprintf(stderr, "bench: %d node pair(s): starting...\n", n);
    if (bench_nodes_start(&x->e, n) != 0 || sb__load_write(x) != 0 ||
        bench_subs_nodes(&x->subs, &x->e, x->o.users, x->o.threads, x->l.total + 16) != 0 ||
        sb__warmup(x, 100 + config, &m) != 0)
        goto cleanup;
    for (b = 0; b < x->o.bursts; b++) {
        fprintf(stderr, "bench: %d node pair(s): burst %d of %d, %zu posts...\n", n, b + 1,
                x->o.bursts, x->o.posts);
        if (sb__burst(x, &x->l, 10 * config + b, &m, &runs[b]) != 0) {
            fprintf(stderr, "bench: the burst was incomplete (%llu of %llu receipts)\n",
                    (unsigned long long)runs[b].received, (unsigned long long)runs[b].expected);
            goto cleanup;
        }
    }
    if (bench_subs_dropped(x->subs) > 0) {
        fprintf(stderr, "bench: %zu users lost their connection\n", bench_subs_dropped(x->subs));
        goto cleanup;
    }
    rc = 0;
cleanup:
    bench_subs_stop(x->subs);
    x->subs = NULL;
    if (bench_nodes_stop(&x->e) != 0)
        rc = -1;
    return rc;
}

/* bench_driver.run: every node count in turn. */
static int sb__runs(void *arg, bench_env *e)
{
    sb_ctx *x = arg;
    int k;

    (void)e;
    for (k = 0; k < x->o.nodes.n; k++) {
        if (sb__config(x, (int)x->o.nodes.v[k], k, x->runs[k]) != 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ output */

/* bench_driver.header: the machine and the load. */
static void sb__print_header(void *arg, const bench_common *c)
{
    const sb_opts *o = &((const sb_ctx *)arg)->o;
    const sb_load *l = &((const sb_ctx *)arg)->l;
    size_t k;

    (void)c;
    bench_print_machine("feedpush-bench-scale");
    printf("  one redis-server, one rabbitmq-server; per node count N, node\n"
           "  pairs n1..nN (mosquitto + feed_auth.so, heartbeat 1 s; feed-bridge).\n"
           "  Everything, this process included, shares these CPUs, on loopback.\n");
    printf("  load: %zu users f0..f%zu online, f<j> on node (j %% N) + 1; %zu posts per burst,\n"
           "  post p by a<p %% %zu>; followers (all online):",
           o->users, o->users - 1, o->posts, o->authors);
    for (k = 0; k < o->authors; k++)
        printf(" a%zu %zu", k, l->followers[k]);
    printf("\n  = %llu deliveries per burst; %zu warm-up posts first, not measured\n",
           (unsigned long long)l->total, o->warmup);
    if (o->rate > 0)
        printf("  paced: %g posts/s, evenly spaced (about %.0f deliveries/s)\n", o->rate,
               o->rate * (double)l->total / (double)o->posts);
    else
        printf("  unpaced: each burst as fast as publisher confirms allow (window %d)\n",
               o->window);
    fflush(stdout);
}

/* A burst's figures, per delivery (us, switches) or per second (CPUs). */
enum {
    SB__RATE,
    SB__COST,
    SB__MOSQ,
    SB__BRIDGE,
    SB__REDIS,
    SB__RABBIT,
    SB__CLIENTS,
    SB__BUSY,
    SB__OTHER,
    SB__VOL,
    SB__INVOL,
    SB__P50,
    SB__P99,
    SB__COLS
};

static void sb__figures(const sb_run *r, double f[SB__COLS])
{
    const bench_times *mosq = &r->t[BENCH_P_MOSQ], *bridge = &r->t[BENCH_P_BRIDGE];
    double d = (double)r->received;

    f[SB__RATE] = r->rate;
    f[SB__COST] = bench_us_per(mosq->cpu + bridge->cpu, r->received);
    f[SB__MOSQ] = bench_us_per(mosq->cpu, r->received);
    f[SB__BRIDGE] = bench_us_per(bridge->cpu, r->received);
    f[SB__REDIS] = bench_us_per(r->t[BENCH_P_REDIS].cpu, r->received);
    f[SB__RABBIT] = bench_us_per(r->t[BENCH_P_RABBIT].cpu, r->received);
    f[SB__CLIENTS] = bench_us_per(r->t[BENCH_P_SELF].cpu, r->received);
    f[SB__BUSY] = r->seconds > 0 ? r->machine_s / r->seconds : 0.0;
    f[SB__OTHER] = r->seconds > 0 ? r->other_s / r->seconds : 0.0;
    f[SB__VOL] = d > 0 ? (mosq->vol + bridge->vol) / d : 0.0;
    f[SB__INVOL] = d > 0 ? (mosq->invol + bridge->invol) / d : 0.0;
    f[SB__P50] = r->lat.p50_ms;
    f[SB__P99] = r->lat.p99_ms;
}

/* One burst in full: totals, CPU per delivery, switches, latency, per node. */
static void sb__print_run(const sb_run *r, int burst)
{
    const sb_node_run *nr;
    double d = (double)r->received, f[SB__COLS];
    int i;

    sb__figures(r, f);
    printf("\n%d node pair(s), burst %d: %llu of %llu received (%llu stray), %zu users with\n"
           "  a wrong count; %.2f s (publishing %.2f s), %.0f deliveries/s\n",
           r->nodes, burst + 1, (unsigned long long)r->received, (unsigned long long)r->expected,
           (unsigned long long)r->stray, r->wrong_users, r->seconds, r->publish_s, r->rate);
    printf("  CPU us per delivery: mosquitto %.1f + feed-bridge %.1f = %.1f;"
           " shared: redis %.1f,\n  rabbitmq %.1f; the clients (this process) %.1f;"
           " CPUs busy %.2f, of which other load %.2f;\n  idle just before, the node pairs used "
           "%.4f CPUs\n",
           f[SB__MOSQ], f[SB__BRIDGE], f[SB__COST], f[SB__REDIS], f[SB__RABBIT], f[SB__CLIENTS],
           f[SB__BUSY], f[SB__OTHER], r->idle_cpus);
    printf("  context switches of the node pairs' threads per delivery: %.3f voluntary (waits),\n"
           "  %.3f involuntary (preempted)\n",
           f[SB__VOL], f[SB__INVOL]);
    printf("  published %.1f posts/s", r->pub_rate);
    if (r->lag_ms > 0)
        printf(" (paced: the latest publish %.2f ms after its slot)", r->lag_ms);
    printf(";\n  latency publish -> receipt: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%zu samples)\n",
           r->lat.p50_ms, r->lat.p99_ms, r->lat.max_ms, r->lat.n);
    printf("  %-5s %6s %9s %9s %11s %8s %9s %10s %10s %8s\n", "node", "users", "expected",
           "received", "deliveries", "share", "events", "dlv msgs", "mosq CPU s", "bridge s");
    for (i = 0; i < r->nodes; i++) {
        nr = &r->node[i];
        printf("  n%-4d %6zu %9llu %9llu %11lld %7.1f%% %9lld %10lld %10.3f %8.3f\n", i + 1,
               nr->users, (unsigned long long)nr->expected, (unsigned long long)nr->received,
               nr->deliveries, d > 0 ? 100.0 * (double)nr->deliveries / d : 0.0, nr->events,
               nr->messages, nr->mosq_s, nr->bridge_s);
    }
}

/* Per node count: the median of its bursts, and the node pairs' CPU per
 * delivery relative to the first node count. */
static void sb__print_medians(const sb_ctx *x)
{
    double v[SB__COLS][SB__MAX_BURSTS], f[SB__COLS], med[SB__COLS], base = 0;
    const sb_run *r;
    int c, b, k, col;

    printf("\nMedian of the bursts per node count (waits, preempted: context switches of the\n"
           "mosquitto and feed-bridge threads per delivery, voluntary and involuntary):\n");
    printf("  %5s %12s %12s %9s %9s %18s %5s %10s %13s %7s %7s\n", "nodes", "deliveries/s",
           "node CPU us", "mosq us", "bridge us", "relative to first", "busy", "waits/dlv",
           "preempted/dlv", "p50 ms", "p99 ms");
    for (c = 0; c < x->o.nodes.n; c++) {
        for (b = 0, k = 0; b < x->o.bursts; b++) {
            r = &x->runs[c][b];
            if (!r->ran || r->received == 0)
                continue;
            sb__figures(r, f);
            for (col = 0; col < SB__COLS; col++)
                v[col][k] = f[col];
            k++;
        }
        if (k == 0)
            continue;
        for (col = 0; col < SB__COLS; col++)
            med[col] = bench_median(v[col], k);
        if (base <= 0)
            base = med[SB__COST];
        printf("  %5d %12.0f %12.1f %9.1f %9.1f %18.2f %5.2f %10.3f %13.3f %7.2f %7.2f\n",
               (int)x->o.nodes.v[c], med[SB__RATE], med[SB__COST], med[SB__MOSQ], med[SB__BRIDGE],
               med[SB__COST] / base, med[SB__BUSY], med[SB__VOL], med[SB__INVOL], med[SB__P50],
               med[SB__P99]);
    }
}

/* bench_driver.print: every burst, then the medians per node count. */
static void sb__print(void *arg)
{
    sb_ctx *x = arg;
    double f[SB__COLS];
    const sb_run *r;
    int c, b;

    for (c = 0; c < x->o.nodes.n; c++) {
        for (b = 0; b < x->o.bursts; b++) {
            if (x->runs[c][b].ran)
                sb__print_run(&x->runs[c][b], b);
        }
    }
    printf("\nPer node count: deliveries/s = receipts / (last receipt - first publish);\n"
           "CPU us/delivery = CPU time of all mosquitto + all feed-bridge processes during the\n"
           "burst / receipts (shared redis, rabbitmq and the clients shown apart).\n");
    printf("  %5s %5s %9s %7s %12s %12s %8s %9s %8s %9s %8s %5s %6s %7s %7s\n", "nodes", "burst",
           "received", "seconds", "deliveries/s", "node CPU us", "mosq us", "bridge us", "redis us",
           "rabbit us", "clients", "busy", "other", "p50 ms", "p99 ms");
    for (c = 0; c < x->o.nodes.n; c++) {
        for (b = 0; b < x->o.bursts; b++) {
            r = &x->runs[c][b];
            if (!r->ran)
                continue;
            sb__figures(r, f);
            printf("  %5d %5d %9llu %7.2f %12.0f %12.1f %8.1f %9.1f %8.1f %9.1f %8.1f %5.2f %6.2f "
                   "%7.2f %7.2f%s\n",
                   r->nodes, b + 1, (unsigned long long)r->received, r->seconds, f[SB__RATE],
                   f[SB__COST], f[SB__MOSQ], f[SB__BRIDGE], f[SB__REDIS], f[SB__RABBIT],
                   f[SB__CLIENTS], f[SB__BUSY], f[SB__OTHER], f[SB__P50], f[SB__P99],
                   r->complete ? "" : "  (incomplete)");
        }
    }
    printf("\nbusy: CPUs busy during the burst (/proc/stat), all processes; other: those of\n"
           "processes this run did not start. p50, p99: publish -> receipt latency.\n");
    sb__print_medians(x);
    fflush(stdout);
    free(x->l.per_user);
    free(x->w.per_user);
}

/* ------------------------------------------------------------ main */

/* bench_driver.setup: the options, their checks and the loads. Returns
 * 0, 1 after --help, or -1. */
static int sb__setup(void *arg, bench_common *c, int argc, char **argv)
{
    sb_ctx *x = arg;
    sb_opts *o = &x->o;
    int i, rc;

    rc = bench_parse("feedpush-bench-scale", sb__opts, sizeof(sb__opts) / sizeof(sb__opts[0]), o, c,
                     true, argc, argv);
    if (rc != 0)
        return rc;
    if (o->followers.n != 2 || o->followers.v[0] > o->followers.v[1]) {
        fprintf(stderr, "bench: --followers takes MIN,MAX\n");
        return -1;
    }
    /* Every follower must be online, and the users split over the nodes. */
    if ((size_t)o->followers.v[1] > o->users) {
        fprintf(stderr, "bench: --followers MAX exceeds --users (%zu)\n", o->users);
        return -1;
    }
    for (i = 0; i < o->nodes.n; i++) {
        if ((size_t)o->nodes.v[i] > o->users) {
            fprintf(stderr, "bench: fewer users than nodes\n");
            return -1;
        }
    }
    if (sb__load_make(o, o->posts, &x->l) != 0 || sb__load_make(o, o->warmup, &x->w) != 0)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    static sb_ctx x;
    /* Node pairs per node count (sb__runs). */
    const bench_driver d = {"rabbitmq and redis", 0,        sb__setup,
                            sb__print_header,     sb__runs, sb__print};

    return bench_main(&d, &x.e, &x, argc, argv);
}
