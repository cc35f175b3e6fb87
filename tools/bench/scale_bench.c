/*
 * scale_bench.c - feedpush-bench-scale: does adding node pairs add
 * delivery capacity? The same fixed load is delivered by 1, 2 and 3 node
 * pairs (--nodes), and for each the bench measures deliveries/s and the
 * CPU time the node pairs spend per delivery.
 *
 * Everything runs on this machine, started by this run in a temp dir
 * through tools/fp-server: one redis-server, one rabbitmq-server (a vhost
 * of ours), and per node count N the node pairs n1..nN: mosquitto with
 * feed_auth.so (plugin_opt_node_id n<i>, heartbeat every --heartbeat s)
 * and a feed-bridge (FEEDPUSH_NODE_ID n<i>) on that broker. Between node
 * counts every node pair is stopped and Redis is flushed.
 *
 * The load, the same for every N:
 *   - --users U users f0..f<U-1> online, user f<j> on node (j % N) + 1
 *     only: U/N users per node;
 *   - --authors A authors a0..a<A-1>; a<k> has F_k followers, F_k spread
 *     evenly over --followers MIN,MAX, written straight into Redis (SADD
 *     followers:a<k>), the users f<(k*U/A + i) % U>, i < F_k: every
 *     follower is online, and spread over the nodes like the users;
 *   - a burst of --posts P post.created events, post p by a<p % A>,
 *     published to feed.events as fast as publisher confirms allow, or
 *     with --rate R at R posts/s, evenly spaced on an absolute schedule
 *     (clock_nanosleep, TIMER_ABSTIME), so that the load can be one that
 *     leaves the machine below saturation.
 *
 * Per N: deliveries/s = MQTT messages received by the users / (last
 * receipt - first publish); CPU per delivery = CPU seconds of every
 * mosquitto and every feed-bridge (all threads, /proc schedstat) over the
 * same interval / deliveries. Redis, RabbitMQ and this process (the
 * publisher and the U clients) are shown on their own lines: they are
 * shared, or stand for clients that would run elsewhere. One idle second
 * before each burst shows what the node pairs use by themselves
 * (heartbeats, counters, keepalives). Each node's own
 * counters (stats:bridge:n<i> deliveries) and its users' receipts show
 * that a node delivered exactly its own users' messages. Each receipt is
 * also timed against its publish (the post text carries the publish time):
 * p50 and p99 publish -> receipt latency per burst.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

#include "scale_bench.h"

#define SB__MAX_CONFIGS 6
#define SB__MAX_BURSTS 5
#define SB__MAX_AUTHORS 64
#define SB__BODY_MAX 512
#define SB__STALL_MS 15000 /* a burst with no progress for this long gives up */
#define SB__POLL_US 2000

typedef struct {
    int nodes[SB__MAX_CONFIGS];
    int n_configs;
    size_t users, authors, fmin, fmax, posts, warmup;
    int bursts, threads, window;
    double rate; /* posts/s published; 0: as fast as confirms allow */
    sb_env env;
} sb_opts;

/* The fixed load: who follows whom, and what each user must receive. */
typedef struct {
    size_t followers[SB__MAX_AUTHORS]; /* F_k */
    size_t first[SB__MAX_AUTHORS];     /* a<k>'s followers start at f<first> */
    uint64_t *per_user;                /* receipts expected per burst, per user */
    uint64_t total;                    /* per burst */
} sb_load;

/* What one burst measured on one node pair (index 0-based). */
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
    /* Publish -> receipt latency: p50, p99, max, and the receipts timed. */
    double p50_ms, p99_ms, max_ms;
    size_t samples;
    double mosq_s, bridge_s, redis_s, rabbit_s, bench_s, other_s;
    double machine_s;  /* busy time of all CPUs, everybody's */
    double idle_cpus;  /* CPUs the node pairs used idle, just before */
    double vol, invol; /* the node pairs' context switches */
    sb_node_run node[SB_MAX_NODES];
} sb_run;

/* ------------------------------------------------------------ the load */

/* F_k spread evenly over [fmin, fmax]; a<k>'s followers are U/A apart,
 * wrapping around. Fills the expected receipts per user for one burst. */
static int sb__load_make(const sb_opts *o, sb_load *l)
{
    size_t k, i, p, posts_of;

    memset(l, 0, sizeof(*l));
    l->per_user = calloc(o->users, sizeof(*l->per_user));
    if (l->per_user == NULL)
        return -1;
    for (k = 0; k < o->authors; k++) {
        l->followers[k] = o->authors > 1 ? o->fmin + (o->fmax - o->fmin) * k / (o->authors - 1)
                                         : (o->fmin + o->fmax) / 2;
        l->first[k] = k * o->users / o->authors;
        posts_of = 0;
        for (p = 0; p < o->posts; p++) {
            if (p % o->authors == k)
                posts_of++;
        }
        for (i = 0; i < l->followers[k]; i++)
            l->per_user[(l->first[k] + i) % o->users] += posts_of;
        l->total += (uint64_t)posts_of * l->followers[k];
    }
    return 0;
}

/* SADD followers:a<k> for every author. Returns 0 or -1. */
static int sb__load_write(sb_opts *o, const sb_load *l)
{
    size_t *ids = malloc(o->fmax * sizeof(*ids));
    char author[FP_ID_BUFSZ];
    size_t k, i;
    int rc = -1;

    if (ids == NULL)
        return -1;
    for (k = 0; k < o->authors; k++) {
        for (i = 0; i < l->followers[k]; i++)
            ids[i] = (l->first[k] + i) % o->users;
        snprintf(author, sizeof(author), "a%zu", k);
        if (sb_redis_followers(&o->env, author, ids, l->followers[k]) != 0) {
            fprintf(stderr, "bench: cannot write followers:%s\n", author);
            goto cleanup;
        }
    }
    rc = 0;
cleanup:
    free(ids);
    return rc;
}

/* Expected receipts per burst of the users on node i (0-based) of n. */
static uint64_t sb__node_expected(const sb_opts *o, const sb_load *l, int n, int i, size_t *users)
{
    uint64_t sum = 0;
    size_t j;

    *users = 0;
    for (j = (size_t)i; j < o->users; j += (size_t)n) {
        sum += l->per_user[j];
        (*users)++;
    }
    return sum;
}

/* ------------------------------------------------------------ a burst */

/* A post.created event by a<author>, id "p<phase>-<seq>", whose text
 * carries the phase and ns, the publish time. */
static void sb__post(char *body, size_t len, int phase, size_t seq, size_t author, int64_t ns)
{
    char text[64];

    sb_post_text(text, sizeof(text), phase, seq, ns);
    snprintf(body, len,
             "{\"type\":\"post.created\",\"post\":{\"id\":\"p%d-%zu\",\"author_id\":\"a%zu\","
             "\"text\":\"%s\",\"created_at\":%lld}}",
             phase, seq, author, text,
             (long long)fp_time_real_ms());
}

/* When a publish went out and when its burst's last confirm came. */
typedef struct {
    int64_t first_ns, last_ns; /* the first and the last publish */
    int64_t confirmed_ns;      /* the last confirm */
    int64_t lag_ns;            /* --rate: the latest a publish was after its slot */
} sb_pubtimes;

/* Sleeps until CLOCK_MONOTONIC reaches ns (fp_time_mono_ns's clock); returns at
 * once when it is past. */
static void sb__sleep_until(int64_t ns)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/*
 * Publishes posts 0..n-1 of phase, keeping at most window unconfirmed,
 * then waits for the last confirm. With --rate R, post i goes out at
 * start + i/R s (an absolute schedule: a late publish does not shift the
 * ones after it); otherwise as fast as the window allows. Every post
 * carries the time it went out. Returns 0 or -1.
 */
static int sb__publish(const sb_opts *o, bb_pub *p, int phase, size_t n, sb_pubtimes *pt)
{
    char body[SB__BODY_MAX];
    int64_t start = fp_time_mono_ns(), due = start, sent;
    size_t i;

    memset(pt, 0, sizeof(*pt));
    for (i = 0; i < n; i++) {
        if (p->published - p->confirmed >= (uint64_t)o->window &&
            bb_pub_wait(p, p->published - (uint64_t)o->window + 1, SB__STALL_MS) != 0)
            return -1;
        if (o->rate > 0) {
            due = start + (int64_t)((double)i * 1e9 / o->rate);
            sb__sleep_until(due);
        }
        sent = fp_time_mono_ns();
        if (o->rate > 0 && sent - due > pt->lag_ns)
            pt->lag_ns = sent - due;
        if (i == 0)
            pt->first_ns = sent;
        pt->last_ns = sent;
        sb__post(body, sizeof(body), phase, i, i % o->authors, sent);
        if (bb_pub_send(p, "post.created", body) != 0)
            return -1;
    }
    if (bb_pub_wait(p, p->published, SB__STALL_MS) != 0)
        return -1;
    pt->confirmed_ns = fp_time_mono_ns();
    return 0;
}

/* Waits until the users have `expected` receipts, giving up after
 * SB__STALL_MS without progress. Returns the receipts. */
static uint64_t sb__await(sb_subs *s, uint64_t expected)
{
    uint64_t got, prev = 0;
    int64_t progress = fp_time_mono_ns();

    for (;;) {
        got = sb_subs_received(s, NULL);
        if (got >= expected)
            return got;
        if (got != prev) {
            prev = got;
            progress = fp_time_mono_ns();
        } else if (fp_time_mono_ns() - progress > (int64_t)SB__STALL_MS * 1000000) {
            return got;
        }
        usleep(SB__POLL_US);
    }
}

/* The bridges' counters, once they show at least want[i] deliveries each
 * (they write them once a second; 3 s at most). */
static void sb__counters(sb_opts *o, const long long *want, long long *deliv, long long *events,
                         long long *messages)
{
    int64_t end = fp_time_mono_ns() + 3000000000LL;
    bool all;
    int i;

    for (;;) {
        all = true;
        for (i = 0; i < o->env.n_nodes; i++) {
            deliv[i] = sb_stat(&o->env, o->env.node[i].id, "deliveries");
            if (deliv[i] < want[i])
                all = false;
        }
        if (all || fp_time_mono_ns() >= end)
            break;
        usleep(20000);
    }
    for (i = 0; i < o->env.n_nodes; i++) {
        events[i] = sb_stat(&o->env, o->env.node[i].id, "events_post_created");
        messages[i] = sb_stat(&o->env, o->env.node[i].id, "stage2_count");
    }
}

/* Per-node counters: deliveries, events applied, delivery messages. */
typedef struct {
    long long deliv[SB_MAX_NODES], events[SB_MAX_NODES], messages[SB_MAX_NODES];
} sb_marks;

/*
 * One measured burst with n nodes up and the users online: CPU and the
 * bridges' counters before and after, every user's receipts checked
 * against what it follows. *m holds the counters after the previous burst
 * and is advanced.
 */
static int sb__burst(sb_opts *o, const sb_load *l, bb_pub *p, sb_subs *s, int phase, sb_marks *m,
                     sb_run *r)
{
    long long want[SB_MAX_NODES];
    sb_marks now;
    sb_pubtimes pt;
    sb_cpu c0, c1;
    int64_t t0, t_last, *lat;
    int i, n = o->env.n_nodes;
    size_t j;

    memset(r, 0, sizeof(*r));
    r->nodes = n;
    r->expected = l->total;
    for (i = 0; i < n; i++) {
        r->node[i].expected = sb__node_expected(o, l, n, i, &r->node[i].users);
        want[i] = m->deliv[i] + (long long)r->node[i].expected;
    }
    /* Any client thread may get every receipt: room for all in each. */
    if (sb_subs_phase(s, phase, (size_t)l->total + 16) != 0)
        fprintf(stderr, "bench: no memory for the latencies; not measured\n");
    /* The node pairs' own background (heartbeats, counters, keepalives):
     * one idle second, so a fixed cost per node shows apart. */
    sb_cpu_sample(&o->env, &c0);
    t0 = fp_time_mono_ns();
    usleep(1000000);
    sb_cpu_sample(&o->env, &c1);
    for (i = 0; i < n; i++)
        r->idle_cpus += c1.mosq[i] - c0.mosq[i] + c1.bridge[i] - c0.bridge[i];
    r->idle_cpus /= (double)(fp_time_mono_ns() - t0) / 1e9;
    sb_cpu_sample(&o->env, &c0);
    t0 = fp_time_mono_ns();
    if (sb__publish(o, p, phase, o->posts, &pt) != 0) {
        fprintf(stderr, "bench: publishing the burst failed\n");
        return -1;
    }
    r->received = sb__await(s, r->expected);
    sb_cpu_sample(&o->env, &c1);
    t_last = sb_subs_last_ns(s);
    r->ran = true;
    r->seconds = t_last > t0 ? (double)(t_last - t0) / 1e9 : 0.0;
    r->publish_s = (double)(pt.confirmed_ns - t0) / 1e9;
    r->pub_rate = o->posts > 1 && pt.last_ns > pt.first_ns
                      ? (double)(o->posts - 1) / ((double)(pt.last_ns - pt.first_ns) / 1e9)
                      : 0.0;
    r->lag_ms = (double)pt.lag_ns / 1e6;
    r->rate = r->seconds > 0 ? (double)r->received / r->seconds : 0.0;
    lat = sb_subs_latencies(s, &r->samples);
    r->p50_ms = bb_pct_ms(lat, r->samples, 50.0);
    r->p99_ms = bb_pct_ms(lat, r->samples, 99.0);
    r->max_ms = r->samples > 0 ? (double)lat[r->samples - 1] / 1e6 : 0.0;
    free(lat);
    /* Late duplicates would show here: give stragglers a moment. */
    usleep(200000);
    r->received = sb_subs_received(s, &r->stray);
    for (j = 0; j < o->users; j++) {
        if (sb_subs_user(s, j) != l->per_user[j])
            r->wrong_users++;
    }
    sb__counters(o, want, now.deliv, now.events, now.messages);
    for (i = 0; i < n; i++) {
        r->node[i].received = sb_subs_node(s, i + 1);
        r->node[i].deliveries = now.deliv[i] - m->deliv[i];
        r->node[i].events = now.events[i] - m->events[i];
        r->node[i].messages = now.messages[i] - m->messages[i];
        r->node[i].mosq_s = c1.mosq[i] - c0.mosq[i];
        r->node[i].bridge_s = c1.bridge[i] - c0.bridge[i];
        r->mosq_s += r->node[i].mosq_s;
        r->bridge_s += r->node[i].bridge_s;
    }
    *m = now;
    r->redis_s = c1.redis - c0.redis;
    r->rabbit_s = c1.rabbit - c0.rabbit;
    r->bench_s = c1.bench - c0.bench;
    r->machine_s = c1.machine - c0.machine;
    r->vol = c1.node_vol - c0.node_vol;
    r->invol = c1.node_invol - c0.node_invol;
    r->other_s = r->machine_s - (r->mosq_s + r->bridge_s + r->redis_s + r->rabbit_s + r->bench_s);
    r->complete = r->received == r->expected && r->wrong_users == 0;
    for (i = 0; i < n; i++) {
        if (r->node[i].deliveries != (long long)r->node[i].expected ||
            r->node[i].received != r->node[i].expected)
            r->complete = false;
    }
    return r->complete ? 0 : -1;
}

/* Waits until online:n<i> holds every user of node i. */
static int sb__await_online(sb_opts *o)
{
    long long have = 0;
    size_t want;
    int i, k, n = o->env.n_nodes;

    for (k = 0; k < 1000; k++) {
        for (i = 0; i < n; i++) {
            want = o->users / (size_t)n + ((size_t)i < o->users % (size_t)n ? 1 : 0);
            have = sb_redis_int(&o->env, "SCARD online:%s", o->env.node[i].id);
            if (have != (long long)want)
                break;
        }
        if (i == n)
            return 0;
        usleep(10000);
    }
    fprintf(stderr, "bench: online:%s has %lld users, not its share of %zu\n", o->env.node[i].id,
            have, o->users);
    return -1;
}

/*
 * Node count n: start n node pairs on a flushed Redis, write the
 * followers, connect the users, a warm-up burst (not measured), then
 * o->bursts measured bursts into runs[]. Stops the node pairs again.
 */
static int sb__config(sb_opts *o, const sb_load *l, int n, int config, sb_run *runs)
{
    long long base[SB_MAX_NODES];
    sb_subs *subs = NULL;
    sb_marks m;
    bb_pub pub;
    uint64_t got;
    int b, rc = -1;

    memset(&pub, 0, sizeof(pub));
    memset(base, 0, sizeof(base));
    fprintf(stderr, "bench: %d node pair(s): starting...\n", n);
    if (sb_redis_flush(&o->env) != 0 || sb_nodes_start(&o->env, n) != 0 ||
        sb__load_write(o, l) != 0)
        goto cleanup;
    if (sb_subs_start(&subs, &o->env, o->users, o->threads, 60000) != 0 ||
        sb__await_online(o) != 0 || sb_pub_open(&pub, &o->env) != 0)
        goto cleanup;
    /* Warm-up: links, scripts and queues in use; its receipts not kept. */
    if (o->warmup > 0) {
        sb_pubtimes pt;
        uint64_t want = 0;
        size_t p, i, k;

        /* Its receipts per node: the bridges' counters must show them
         * before the first burst starts from them. */
        for (p = 0; p < o->warmup; p++) {
            k = p % o->authors;
            want += l->followers[k];
            for (i = 0; i < l->followers[k]; i++)
                base[(l->first[k] + i) % o->users % (size_t)n]++;
        }
        sb_subs_phase(subs, 100 + config, 0);
        if (sb__publish(o, &pub, 100 + config, o->warmup, &pt) != 0)
            goto cleanup;
        got = sb__await(subs, want);
        if (got != want) {
            fprintf(stderr, "bench: warm-up: %llu of %llu receipts\n", (unsigned long long)got,
                    (unsigned long long)want);
            goto cleanup;
        }
    }
    sb__counters(o, base, m.deliv, m.events, m.messages);
    for (b = 0; b < n; b++) {
        if (m.deliv[b] != base[b]) {
            fprintf(stderr, "bench: after the warm-up %s counts %lld deliveries, not %lld\n",
                    o->env.node[b].id, m.deliv[b], base[b]);
            goto cleanup;
        }
    }
    for (b = 0; b < o->bursts; b++) {
        fprintf(stderr, "bench: %d node pair(s): burst %d of %d, %zu posts...\n", n, b + 1,
                o->bursts, o->posts);
        if (sb__burst(o, l, &pub, subs, 10 * config + b, &m, &runs[b]) != 0) {
            fprintf(stderr, "bench: the burst was incomplete (%llu of %llu receipts)\n",
                    (unsigned long long)runs[b].received, (unsigned long long)runs[b].expected);
            goto cleanup;
        }
    }
    if (sb_subs_dropped(subs) > 0) {
        fprintf(stderr, "bench: %zu users lost their connection\n", sb_subs_dropped(subs));
        goto cleanup;
    }
    rc = 0;
cleanup:
    bb_pub_close(&pub);
    sb_subs_stop(subs);
    if (sb_nodes_stop(&o->env) != 0)
        rc = -1;
    return rc;
}

/* ------------------------------------------------------------ output */

static void sb__cpu_model(char *out, size_t len)
{
    char line[512], *colon, *end;
    FILE *f = fopen("/proc/cpuinfo", "r");

    snprintf(out, len, "unknown");
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        colon = strchr(line, ':');
        if (colon == NULL)
            break;
        colon++;
        while (*colon == ' ' || *colon == '\t')
            colon++;
        end = strchr(colon, '\n');
        if (end != NULL)
            *end = '\0';
        snprintf(out, len, "%s", colon);
        break;
    }
    fclose(f);
}

static void sb__loadavg(char *out, size_t len)
{
    double v[3];
    FILE *f = fopen("/proc/loadavg", "r");

    snprintf(out, len, "?");
    if (f == NULL)
        return;
    if (fscanf(f, "%lf %lf %lf", &v[0], &v[1], &v[2]) == 3)
        snprintf(out, len, "%.2f %.2f %.2f", v[0], v[1], v[2]);
    fclose(f);
}

static void sb__print_header(const sb_opts *o, const sb_load *l)
{
    char model[256], load[64];
    size_t k;

    sb__loadavg(load, sizeof(load));
    sb__cpu_model(model, sizeof(model));
    printf("feedpush-bench-scale: %ld CPUs (%s), load average %s\n", sysconf(_SC_NPROCESSORS_ONLN),
           model, load);
    printf("  one redis-server, one rabbitmq-server (vhost %s); per node count N, node\n"
           "  pairs n1..nN (mosquitto + feed_auth.so, heartbeat %d s; feed-bridge).\n"
           "  Everything, this process included, shares these CPUs, on loopback.\n",
           o->env.vhost[0] != '\0' ? o->env.vhost : "feedpush-scale", o->env.heartbeat_s);
    printf("  bridge: %s\n", o->env.bridge_bin);
    printf("  load: %zu users f0..f%zu online, f<j> on node (j %% N) + 1; %zu posts per burst,\n"
           "  post p by a<p %% %zu>; followers (all online):",
           o->users, o->users - 1, o->posts, o->authors);
    for (k = 0; k < o->authors; k++)
        printf(" a%zu %zu", k, l->followers[k]);
    printf("\n  = %llu deliveries per burst; %zu warm-up posts first, not measured\n",
           (unsigned long long)l->total, o->warmup);
    if (o->rate > 0)
        printf("  paced: %g posts/s, evenly spaced (about %.0f deliveries/s)\n", o->rate,
               o->posts > 0 ? o->rate * (double)l->total / (double)o->posts : 0.0);
    else
        printf("  unpaced: each burst as fast as publisher confirms allow (window %d)\n",
               o->window);
    fflush(stdout);
}

static double sb__us(double cpu_s, uint64_t n)
{
    return n > 0 ? cpu_s * 1e6 / (double)n : 0.0;
}

static void sb__print_run(const sb_run *r, int burst)
{
    double d = (double)r->received;
    int i;

    printf("\n%d node pair(s), burst %d: %llu of %llu received (%llu stray), %zu users with\n"
           "  a wrong count; %.2f s (publishing %.2f s), %.0f deliveries/s\n",
           r->nodes, burst + 1, (unsigned long long)r->received, (unsigned long long)r->expected,
           (unsigned long long)r->stray, r->wrong_users, r->seconds, r->publish_s, r->rate);
    printf("  CPU us per delivery: mosquitto %.1f + feed-bridge %.1f = %.1f;"
           " shared: redis %.1f,\n  rabbitmq %.1f; the clients (this process) %.1f;"
           " CPUs busy %.2f, of which other load %.2f;\n  idle just before, the node pairs used "
           "%.4f CPUs\n",
           sb__us(r->mosq_s, r->received), sb__us(r->bridge_s, r->received),
           sb__us(r->mosq_s + r->bridge_s, r->received), sb__us(r->redis_s, r->received),
           sb__us(r->rabbit_s, r->received), sb__us(r->bench_s, r->received),
           r->seconds > 0 ? r->machine_s / r->seconds : 0.0,
           r->seconds > 0 ? r->other_s / r->seconds : 0.0, r->idle_cpus);
    printf("  context switches of the node pairs' threads per delivery: %.3f voluntary (waits),\n"
           "  %.3f involuntary (preempted)\n",
           d > 0 ? r->vol / d : 0.0, d > 0 ? r->invol / d : 0.0);
    printf("  published %.1f posts/s", r->pub_rate);
    if (r->lag_ms > 0)
        printf(" (paced: the latest publish %.2f ms after its slot)", r->lag_ms);
    printf(";\n  latency publish -> receipt: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%zu samples)\n",
           r->p50_ms, r->p99_ms, r->max_ms, r->samples);
    printf("  %-5s %6s %9s %9s %11s %8s %9s %10s %10s %8s\n", "node", "users", "expected",
           "received", "deliveries", "share", "events", "dlv msgs", "mosq CPU s", "bridge s");
    for (i = 0; i < r->nodes; i++) {
        const sb_node_run *nr = &r->node[i];

        printf("  n%-4d %6zu %9llu %9llu %11lld %7.1f%% %9lld %10lld %10.3f %8.3f\n", i + 1,
               nr->users, (unsigned long long)nr->expected, (unsigned long long)nr->received,
               nr->deliveries, d > 0 ? 100.0 * (double)nr->deliveries / d : 0.0, nr->events,
               nr->messages, nr->mosq_s, nr->bridge_s);
    }
}

/* Median of v[0..n-1] (n >= 1; sorts v). */
static double sb__median(double *v, int n)
{
    double t;
    int i, j;

    for (i = 1; i < n; i++) {
        for (j = i; j > 0 && v[j - 1] > v[j]; j--) {
            t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    }
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

/*
 * The summary: every burst, then per node count the median of its bursts
 * and the node pairs' CPU per delivery relative to the first node count.
 */
static void sb__print(const sb_opts *o, sb_run runs[][SB__MAX_BURSTS])
{
    double rate[SB__MAX_BURSTS], cost[SB__MAX_BURSTS], vol[SB__MAX_BURSTS];
    double invol[SB__MAX_BURSTS], mosq[SB__MAX_BURSTS], bridge[SB__MAX_BURSTS];
    double busy[SB__MAX_BURSTS], p50[SB__MAX_BURSTS], p99[SB__MAX_BURSTS], base = 0;
    const sb_run *r;
    int c, b, k;

    printf("\nPer node count: deliveries/s = receipts / (last receipt - first publish);\n"
           "CPU us/delivery = CPU time of all mosquitto + all feed-bridge processes during the\n"
           "burst / receipts (shared redis, rabbitmq and the clients shown apart).\n");
    printf("  %5s %5s %9s %7s %12s %12s %8s %9s %8s %9s %8s %5s %6s %7s %7s\n", "nodes", "burst",
           "received", "seconds", "deliveries/s", "node CPU us", "mosq us", "bridge us", "redis us",
           "rabbit us", "clients", "busy", "other", "p50 ms", "p99 ms");
    for (c = 0; c < o->n_configs; c++) {
        for (b = 0; b < o->bursts; b++) {
            r = &runs[c][b];
            if (!r->ran)
                continue;
            printf("  %5d %5d %9llu %7.2f %12.0f %12.1f %8.1f %9.1f %8.1f %9.1f %8.1f %5.2f %6.2f "
                   "%7.2f %7.2f%s\n",
                   r->nodes, b + 1, (unsigned long long)r->received, r->seconds, r->rate,
                   sb__us(r->mosq_s + r->bridge_s, r->received), sb__us(r->mosq_s, r->received),
                   sb__us(r->bridge_s, r->received), sb__us(r->redis_s, r->received),
                   sb__us(r->rabbit_s, r->received), sb__us(r->bench_s, r->received),
                   r->seconds > 0 ? r->machine_s / r->seconds : 0.0,
                   r->seconds > 0 ? r->other_s / r->seconds : 0.0, r->p50_ms, r->p99_ms,
                   r->complete ? "" : "  (incomplete)");
        }
    }
    printf("\nbusy: CPUs busy during the burst (/proc/stat), all processes; other: those of\n"
           "processes this run did not start. p50, p99: publish -> receipt latency.\n");
    printf("\nMedian of the bursts per node count (waits, preempted: context switches of the\n"
           "mosquitto and feed-bridge threads per delivery, voluntary and involuntary):\n");
    printf("  %5s %12s %12s %9s %9s %18s %5s %10s %13s %7s %7s\n", "nodes", "deliveries/s",
           "node CPU us", "mosq us", "bridge us", "relative to first", "busy", "waits/dlv",
           "preempted/dlv", "p50 ms", "p99 ms");
    for (c = 0; c < o->n_configs; c++) {
        for (b = 0, k = 0; b < o->bursts; b++) {
            r = &runs[c][b];
            if (!r->ran || r->received == 0)
                continue;
            rate[k] = r->rate;
            cost[k] = sb__us(r->mosq_s + r->bridge_s, r->received);
            vol[k] = r->vol / (double)r->received;
            invol[k] = r->invol / (double)r->received;
            mosq[k] = sb__us(r->mosq_s, r->received);
            bridge[k] = sb__us(r->bridge_s, r->received);
            busy[k] = r->seconds > 0 ? r->machine_s / r->seconds : 0.0;
            p50[k] = r->p50_ms;
            p99[k] = r->p99_ms;
            k++;
        }
        if (k == 0)
            continue;
        rate[0] = sb__median(rate, k);
        cost[0] = sb__median(cost, k);
        vol[0] = sb__median(vol, k);
        invol[0] = sb__median(invol, k);
        mosq[0] = sb__median(mosq, k);
        bridge[0] = sb__median(bridge, k);
        busy[0] = sb__median(busy, k);
        p50[0] = sb__median(p50, k);
        p99[0] = sb__median(p99, k);
        if (base <= 0)
            base = cost[0];
        printf("  %5d %12.0f %12.1f %9.1f %9.1f %18.2f %5.2f %10.3f %13.3f %7.2f %7.2f\n",
               o->nodes[c], rate[0], cost[0], mosq[0], bridge[0], cost[0] / base, busy[0], vol[0],
               invol[0], p50[0], p99[0]);
    }
    fflush(stdout);
}

/* ------------------------------------------------------------ options */

static void sb__usage(FILE *f, const sb_opts *o)
{
    fprintf(f,
            "usage: feedpush-bench-scale [options]\n"
            "  -N, --nodes LIST      node pair counts, one run each (1,2,3; at most %d)\n"
            "  -u, --users U         users online, split over the nodes (600)\n"
            "  -a, --authors A       authors of the burst's posts (4)\n"
            "  -f, --followers MIN,MAX  followers per author, spread over A (100,200)\n"
            "  -p, --posts P         posts per burst (300)\n"
            "  -W, --warmup W        warm-up posts per node count, not measured (30)\n"
            "  -b, --bursts K        measured bursts per node count (2)\n"
            "  -t, --threads N       client threads in this process (4)\n"
            "  -w, --window N        unconfirmed publishes at most (500)\n"
            "  -r, --rate R          posts/s published, evenly spaced (absolute schedule);\n"
            "                        0 = each burst as fast as confirms allow (0)\n"
            "      --heartbeat S     plugin_opt_heartbeat_interval (1)\n"
            "      --bridge FILE     feed-bridge to run (%s)\n"
            "      --plugin FILE     feed_auth.so to load (%s)\n"
            "      --fp-server FILE  tools/fp-server (%s)\n"
            "      --log-level L     the bridges' log level (info)\n"
            "      --keep            keep the temp dir with the logs\n",
            SB_MAX_NODES, o->env.bridge_bin, o->env.plugin, o->env.fp_server);
}

static int sb__num(const char *name, const char *s, double min, double max, double *out)
{
    char *end = NULL;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "bench: --%s: \"%s\" is not a number in %g..%g\n", name, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

/* Parses "1,2,3" into up to max numbers. Returns the count or -1. */
static int sb__list(const char *name, const char *s, double min, double max, double *out, int cap)
{
    char buf[256], *tok, *save = NULL;
    int n = 0;

    snprintf(buf, sizeof(buf), "%s", s);
    for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        if (n == cap || sb__num(name, tok, min, max, &out[n]) != 0)
            return -1;
        n++;
    }
    return n > 0 ? n : -1;
}

/* path = dirname(our executable)/rel when that file exists. */
static void sb__beside_us(char *path, size_t len, const char *rel)
{
    char exe[PATH_MAX], cand[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

    if (n <= 0)
        return;
    exe[n] = '\0';
    snprintf(cand, sizeof(cand), "%s/%s", dirname(exe), rel);
    if (access(cand, F_OK) == 0 && strlen(cand) < len)
        snprintf(path, len, "%s", cand);
}

static void sb__defaults(sb_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->nodes[0] = 1;
    o->nodes[1] = 2;
    o->nodes[2] = 3;
    o->n_configs = 3;
    o->users = 600;
    o->authors = 4;
    o->fmin = 100;
    o->fmax = 200;
    o->posts = 300;
    o->warmup = 30;
    o->bursts = 2;
    o->threads = 4;
    o->window = 500;
    o->env.heartbeat_s = 1;
    o->env.bridge_log_level = "info";
    snprintf(o->env.fp_server, sizeof(o->env.fp_server), "%s/tools/fp-server", FP_BENCH_SOURCE_DIR);
    snprintf(o->env.bridge_bin, sizeof(o->env.bridge_bin), "%s", FP_BENCH_BRIDGE);
    snprintf(o->env.plugin, sizeof(o->env.plugin), "%s", FP_BENCH_PLUGIN);
    /* The build tree this binary sits in: tools/bench/ -> bridge/, plugin/. */
    sb__beside_us(o->env.bridge_bin, sizeof(o->env.bridge_bin), "../../bridge/feed-bridge");
    sb__beside_us(o->env.plugin, sizeof(o->env.plugin), "../../plugin/feed_auth.so");
}

/* Fills o from argv. Returns 0, 1 for --help, or -1. */
static int sb__parse(sb_opts *o, int argc, char **argv)
{
    static const struct option longs[] = {
        {"nodes", required_argument, NULL, 'N'},
        {"users", required_argument, NULL, 'u'},
        {"authors", required_argument, NULL, 'a'},
        {"followers", required_argument, NULL, 'f'},
        {"posts", required_argument, NULL, 'p'},
        {"warmup", required_argument, NULL, 'W'},
        {"bursts", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'},
        {"window", required_argument, NULL, 'w'},
        {"rate", required_argument, NULL, 'r'},
        {"heartbeat", required_argument, NULL, 'H'},
        {"bridge", required_argument, NULL, 'B'},
        {"plugin", required_argument, NULL, 'P'},
        {"fp-server", required_argument, NULL, 'F'},
        {"log-level", required_argument, NULL, 'L'},
        {"keep", no_argument, NULL, 'K'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    double v = 0, list[SB__MAX_CONFIGS];
    int c, i, n, rc = 0;

    sb__defaults(o);
    for (;;) {
        c = getopt_long(argc, argv, "N:u:a:f:p:W:b:t:w:r:h", longs, NULL);
        if (c == -1)
            break;
        switch (c) {
        case 'N':
            n = sb__list("nodes", optarg, 1, SB_MAX_NODES, list, SB__MAX_CONFIGS);
            rc = n < 0 ? -1 : 0;
            for (i = 0; i < n; i++)
                o->nodes[i] = (int)list[i];
            o->n_configs = n;
            break;
        case 'u':
            rc = sb__num("users", optarg, 1, 20000, &v);
            o->users = (size_t)v;
            break;
        case 'a':
            rc = sb__num("authors", optarg, 1, SB__MAX_AUTHORS, &v);
            o->authors = (size_t)v;
            break;
        case 'f':
            n = sb__list("followers", optarg, 1, 20000, list, 2);
            rc = n == 2 && list[0] <= list[1] ? 0 : -1;
            if (rc == 0) {
                o->fmin = (size_t)list[0];
                o->fmax = (size_t)list[1];
            }
            break;
        case 'p':
            rc = sb__num("posts", optarg, 1, 100000, &v);
            o->posts = (size_t)v;
            break;
        case 'W':
            rc = sb__num("warmup", optarg, 0, 100000, &v);
            o->warmup = (size_t)v;
            break;
        case 'b':
            rc = sb__num("bursts", optarg, 1, SB__MAX_BURSTS, &v);
            o->bursts = (int)v;
            break;
        case 't':
            rc = sb__num("threads", optarg, 1, 64, &v);
            o->threads = (int)v;
            break;
        case 'w':
            rc = sb__num("window", optarg, 1, 65535, &v);
            o->window = (int)v;
            break;
        case 'r':
            rc = sb__num("rate", optarg, 0, 1e6, &o->rate);
            break;
        case 'H':
            rc = sb__num("heartbeat", optarg, 1, 300, &v);
            o->env.heartbeat_s = (int)v;
            break;
        case 'B':
            snprintf(o->env.bridge_bin, sizeof(o->env.bridge_bin), "%s", optarg);
            break;
        case 'P':
            snprintf(o->env.plugin, sizeof(o->env.plugin), "%s", optarg);
            break;
        case 'F':
            snprintf(o->env.fp_server, sizeof(o->env.fp_server), "%s", optarg);
            break;
        case 'L':
            o->env.bridge_log_level = optarg;
            break;
        case 'K':
            o->env.keep = true;
            break;
        case 'h':
            sb__usage(stdout, o);
            return 1;
        default:
            sb__usage(stderr, o);
            return -1;
        }
        if (rc != 0) {
            if (c == 'f')
                fprintf(stderr, "bench: --followers takes MIN,MAX\n");
            return -1;
        }
    }
    if (optind < argc) {
        sb__usage(stderr, o);
        return -1;
    }
    /* Every follower must be online, and the users split over the nodes. */
    if (o->fmax > o->users) {
        fprintf(stderr, "bench: --followers MAX (%zu) exceeds --users (%zu)\n", o->fmax, o->users);
        return -1;
    }
    for (i = 0; i < o->n_configs; i++) {
        if ((size_t)o->nodes[i] > o->users) {
            fprintf(stderr, "bench: fewer users than nodes\n");
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    static sb_run runs[SB__MAX_CONFIGS][SB__MAX_BURSTS];
    sb_opts o;
    sb_load l;
    int64_t t0 = fp_time_mono_ns();
    int c, rc;

    rc = sb__parse(&o, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 1;
    if (sb__load_make(&o, &l) != 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    sb__print_header(&o, &l);
    mosquitto_lib_init();
    fprintf(stderr, "bench: starting rabbitmq and redis...\n");
    rc = sb_env_start(&o.env);
    if (rc == 0)
        fprintf(stderr, "bench: servers up after %.1f s (temp dir %s)\n",
                (double)(fp_time_mono_ns() - t0) / 1e9, o.env.root);
    for (c = 0; c < o.n_configs && rc == 0; c++)
        rc = sb__config(&o, &l, o.nodes[c], c, runs[c]);
    if (sb_env_stop(&o.env) != 0) {
        fprintf(stderr, "bench: something did not stop cleanly\n");
        rc = -1;
    }
    mosquitto_lib_cleanup();
    for (c = 0; c < o.n_configs; c++) {
        int b;

        for (b = 0; b < o.bursts; b++) {
            if (runs[c][b].ran)
                sb__print_run(&runs[c][b], b);
        }
    }
    sb__print(&o, runs);
    printf("\n  total %.1f s\n", (double)(fp_time_mono_ns() - t0) / 1e9);
    free(l.per_user);
    if (rc != 0) {
        fprintf(stderr, "bench: the run did not complete\n");
        return 1;
    }
    return 0;
}
