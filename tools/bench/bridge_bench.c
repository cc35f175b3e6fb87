/*
 * bridge_bench.c - feedpush-bench-bridge: how fast feed-bridge fans posts
 * out and delivers them, and how long a post takes from the backend's
 * AMQP publish to a follower's MQTT client.
 *
 * One node pair on loopback, all started by this run in a temp dir through
 * tools/fp-server: rabbitmq-server, redis-server, mosquitto loading
 * feed_auth.so (HS256) and feed-bridge as a child process (FEEDPUSH_*
 * variables). Per case F (followers per post, default 1, 100, 10000) the
 * author a<F> gets followers f0 .. f<F-1>, written straight into Redis
 * (SADD followers:a<F>, no follow events). Then:
 *
 *   1. fan-out (nobody online): --events posts are published to
 *      feed.events as fast as publisher confirms allow (at most --window
 *      unconfirmed); the clock runs from the first publish until the last
 *      post is at the head of f0's feed list (polled every 2 ms; the bridge
 *      handles events one at a time, in order). events/s = posts / that.
 *   2. deliveries: users f0 .. f<online-1> connect as real MQTT clients and
 *      subscribe to their feed; the same burst again, now each post also
 *      goes out to min(F, online) clients; the clock runs until the last
 *      expected receipt. deliveries/s = receipts / that.
 *   3. latency: posts at a steady --rate (well below saturation); each
 *      carries its CLOCK_MONOTONIC publish time in its text, each receipt
 *      gives one latency sample (publish -> MQTT message at the client).
 *
 * For each run it also reads what the bridge reports about itself (its
 * counters hash: mean time per event in stage 1 and per delivery message
 * in stage 2), Redis's time in the post_created script (INFO
 * commandstats: EVALSHA), and the CPU time each process used.
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

#include "bridge_bench.h"

#define BB__MAX_CASES 6
#define BB__BODY_MAX 512
#define BB__STALL_MS 15000 /* a run with no progress for this long gives up */
#define BB__POLL_US 2000

typedef struct {
    size_t followers[BB__MAX_CASES];
    size_t events[BB__MAX_CASES];
    double rates[BB__MAX_CASES];
    int n_cases, n_events, n_rates;
    double lat_seconds;
    size_t online;
    int threads;
    int window;
    bb_env env;
    double ping_us[2][2]; /* Redis PING p50, p99: before the runs, after */
    char load[2][64];     /* /proc/loadavg then */
} bb_opts;

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
    bb_cpu cpu; /* CPU seconds used during the run */
    double p50_ms, p99_ms, max_ms, rate;
    size_t samples;
} bb_run;

typedef struct {
    size_t followers, targets;
    bb_run fanout, deliver, latency;
} bb_row;

/* ------------------------------------------------------------ posts */

/* Writes a post.created event of author, id "p<phase>-<seq>", whose text
 * carries the phase and the publish time now_ns. */
static void bb__post(char *body, size_t len, int phase, size_t seq, const char *author,
                     int64_t now_ns)
{
    char text[64];

    bb_post_text(text, sizeof(text), phase, now_ns);
    snprintf(body, len,
             "{\"type\":\"post.created\",\"post\":{\"id\":\"p%d-%zu\",\"author_id\":\"%s\","
             "\"text\":\"%s\",\"created_at\":%lld}}",
             phase, seq, author, text,
             (long long)fp_time_real_ms());
}

/* ------------------------------------------------------------ measuring */

typedef struct {
    long long s1_sum, s1_count, s2_sum, s2_count, lua_calls, lua_usec;
    bb_cpu cpu;
    int64_t t0;
} bb_mark;

static void bb__mark(bb_env *e, bb_mark *m)
{
    m->s1_sum = bb_stat(e, "stage1_us_sum");
    m->s1_count = bb_stat(e, "stage1_count");
    m->s2_sum = bb_stat(e, "stage2_us_sum");
    m->s2_count = bb_stat(e, "stage2_count");
    bb_redis_cmdstat(e, "evalsha", &m->lua_calls, &m->lua_usec);
    bb_cpu_sample(e, &m->cpu);
    m->t0 = fp_time_mono_ns();
}

static double bb__mean(long long sum0, long long sum1, long long n0, long long n1)
{
    if (sum0 < 0 || sum1 < 0 || n0 < 0 || n1 <= n0)
        return -1.0;
    return (double)(sum1 - sum0) / (double)(n1 - n0);
}

/*
 * Closes a run begun at *m: CPU and Redis figures now; the bridge's own
 * counters once it has written them for all `posts` events (and, when
 * deliveries > 0, that many delivery messages): it writes them once a
 * second.
 */
static void bb__finish(bb_env *e, const bb_mark *m, size_t posts, size_t deliveries, bb_run *r)
{
    bb_mark now;
    int k;

    bb_cpu_sample(e, &now.cpu);
    for (k = 0; k < BB_P__COUNT; k++) {
        r->cpu.cpu[k] = now.cpu.cpu[k] - m->cpu.cpu[k];
        r->cpu.wait[k] = now.cpu.wait[k] - m->cpu.wait[k];
    }
    bb_redis_cmdstat(e, "evalsha", &now.lua_calls, &now.lua_usec);
    r->lua_us = bb__mean(m->lua_usec, now.lua_usec, m->lua_calls, now.lua_calls);
    now.s1_count = bb_stat_wait(e, "stage1_count", m->s1_count + (long long)posts, 3000);
    now.s2_count = deliveries > 0
                       ? bb_stat_wait(e, "stage2_count", m->s2_count + (long long)deliveries, 3000)
                       : m->s2_count;
    now.s1_sum = bb_stat(e, "stage1_us_sum");
    now.s2_sum = bb_stat(e, "stage2_us_sum");
    r->stage1_us = bb__mean(m->s1_sum, now.s1_sum, m->s1_count, now.s1_count);
    r->stage2_us = bb__mean(m->s2_sum, now.s2_sum, m->s2_count, now.s2_count);
    if (now.s1_count - m->s1_count != (long long)posts)
        fprintf(stderr, "bench: the bridge counted %lld events, %zu were published\n",
                now.s1_count - m->s1_count, posts);
}

/*
 * Publishes n posts of author tagged phase, keeping at most window
 * unconfirmed, then waits for the last confirm. *confirmed_ns: when it came.
 * Returns 0 or -1.
 */
static int bb__burst(bb_pub *p, int window, int phase, const char *author, size_t n,
                     int64_t *confirmed_ns)
{
    char body[BB__BODY_MAX];
    size_t i;

    for (i = 0; i < n; i++) {
        if (p->published - p->confirmed >= (uint64_t)window &&
            bb_pub_wait(p, p->published - (uint64_t)window + 1, BB__STALL_MS) != 0)
            return -1;
        bb__post(body, sizeof(body), phase, i, author, fp_time_mono_ns());
        if (bb_pub_send(p, "post.created", body) != 0)
            return -1;
    }
    if (bb_pub_wait(p, p->published, BB__STALL_MS) != 0)
        return -1;
    *confirmed_ns = fp_time_mono_ns();
    return 0;
}

/* Run 1: posts with nobody online; done when f0's feed starts with the
 * last one. */
static int bb__run_fanout(bb_opts *o, bb_pub *p, int phase, size_t posts, bb_row *row)
{
    bb_run *r = &row->fanout;
    char author[FP_ID_BUFSZ], last[FP_ID_BUFSZ];
    int64_t confirmed = 0, t_end;
    bb_mark m;

    snprintf(author, sizeof(author), "a%zu", row->followers);
    snprintf(last, sizeof(last), "p%d-%zu", phase, posts - 1);
    r->posts = posts;
    bb__mark(&o->env, &m);
    if (bb__burst(p, o->window, phase, author, posts, &confirmed) != 0)
        return -1;
    t_end = fp_time_mono_ns() + (int64_t)BB__STALL_MS * 1000000 * 4;
    while (!bb_redis_feed_head_is(&o->env, "f0", last) && fp_time_mono_ns() < t_end)
        usleep(BB__POLL_US);
    r->complete = bb_redis_feed_head_is(&o->env, "f0", last);
    t_end = fp_time_mono_ns();
    r->ran = true;
    r->seconds = (double)(t_end - m.t0) / 1e9;
    r->publish_s = (double)(confirmed - m.t0) / 1e9;
    r->events_rate = (double)posts / r->seconds;
    bb__finish(&o->env, &m, posts, 0, r);
    return r->complete ? 0 : -1;
}

/*
 * Waits until the subscribers have every expected receipt, giving up after
 * BB__STALL_MS without progress. While waiting, notes when `last` reached
 * f0's feed (stage 1 done) in *s1_ns unless already set.
 */
static void bb__await(bb_opts *o, bb_subs *s, uint64_t expected, const char *last, int64_t *s1_ns)
{
    uint64_t got, prev = 0;
    int64_t progress = fp_time_mono_ns();

    for (;;) {
        if (*s1_ns == 0 && bb_redis_feed_head_is(&o->env, "f0", last))
            *s1_ns = fp_time_mono_ns();
        got = bb_subs_received(s, NULL);
        if (got >= expected && *s1_ns != 0)
            return;
        if (got != prev) {
            prev = got;
            progress = fp_time_mono_ns();
        } else if (fp_time_mono_ns() - progress > (int64_t)BB__STALL_MS * 1000000) {
            return;
        }
        usleep(BB__POLL_US);
    }
}

/* Run 2: the same burst with the followers online. */
static int bb__run_deliver(bb_opts *o, bb_pub *p, bb_subs *s, int phase, size_t posts, bb_row *row)
{
    bb_run *r = &row->deliver;
    char author[FP_ID_BUFSZ], last[FP_ID_BUFSZ];
    int64_t confirmed = 0, s1 = 0, t_last;
    bb_mark m;

    snprintf(author, sizeof(author), "a%zu", row->followers);
    snprintf(last, sizeof(last), "p%d-%zu", phase, posts - 1);
    r->posts = posts;
    r->expected = (uint64_t)posts * row->targets;
    bb_subs_phase(s, phase, 0);
    bb__mark(&o->env, &m);
    if (bb__burst(p, o->window, phase, author, posts, &confirmed) != 0)
        return -1;
    bb__await(o, s, r->expected, last, &s1);
    r->received = bb_subs_received(s, &r->stray);
    t_last = bb_subs_last_ns(s);
    r->ran = true;
    r->complete = r->received == r->expected && s1 != 0;
    r->seconds = t_last > m.t0 ? (double)(t_last - m.t0) / 1e9 : 0.0;
    r->publish_s = (double)(confirmed - m.t0) / 1e9;
    r->deliv_rate = r->seconds > 0 ? (double)r->received / r->seconds : 0.0;
    r->events_rate = s1 != 0 ? (double)posts / ((double)(s1 - m.t0) / 1e9) : 0.0;
    bb__finish(&o->env, &m, posts, posts, r);
    return r->complete ? 0 : -1;
}

/* Run 3: posts at a steady rate, one confirm at a time (a backend
 * publishing as posts are written), each receipt timed. */
static int bb__run_latency(bb_opts *o, bb_pub *p, bb_subs *s, int phase, double rate, bb_row *row)
{
    bb_run *r = &row->latency;
    char author[FP_ID_BUFSZ], last[FP_ID_BUFSZ], body[BB__BODY_MAX];
    size_t i, posts = (size_t)(rate * o->lat_seconds + 0.5), n_lat = 0;
    int64_t t0, due, now, sent = 0, s1 = 0, *lat;
    bb_mark m;

    if (posts < 1)
        posts = 1;
    snprintf(author, sizeof(author), "a%zu", row->followers);
    snprintf(last, sizeof(last), "p%d-%zu", phase, posts - 1);
    r->posts = posts;
    r->expected = (uint64_t)posts * row->targets;
    if (bb_subs_phase(s, phase, (size_t)r->expected + 16) != 0)
        return -1;
    bb__mark(&o->env, &m);
    t0 = m.t0;
    for (i = 0; i < posts; i++) {
        due = t0 + (int64_t)((double)i * 1e9 / rate);
        now = fp_time_mono_ns();
        if (due > now)
            usleep((useconds_t)((due - now) / 1000));
        sent = fp_time_mono_ns();
        bb__post(body, sizeof(body), phase, i, author, sent);
        if (bb_pub_send(p, "post.created", body) != 0 ||
            bb_pub_wait(p, p->published, BB__STALL_MS) != 0)
            return -1;
    }
    r->publish_s = (double)(fp_time_mono_ns() - t0) / 1e9;
    /* The rate achieved: posts - 1 intervals from the first to the last. */
    r->rate = posts > 1 && sent > t0 ? (double)(posts - 1) / ((double)(sent - t0) / 1e9) : rate;
    bb__await(o, s, r->expected, last, &s1);
    r->received = bb_subs_received(s, &r->stray);
    r->ran = true;
    r->complete = r->received == r->expected;
    r->seconds = (double)(bb_subs_last_ns(s) - t0) / 1e9;
    lat = bb_subs_latencies(s, &n_lat);
    r->samples = n_lat;
    r->p50_ms = bb_pct_ms(lat, n_lat, 50.0);
    r->p99_ms = bb_pct_ms(lat, n_lat, 99.0);
    r->max_ms = n_lat > 0 ? (double)lat[n_lat - 1] / 1e6 : 0.0;
    free(lat);
    bb__finish(&o->env, &m, posts, posts, r);
    return r->complete ? 0 : -1;
}

/* Waits until the plugin has reported n users online on our node. */
static int bb__await_online(bb_env *e, size_t n)
{
    int i;

    for (i = 0; i < 1000; i++) {
        if (bb_redis_online(e) >= (long long)n)
            return 0;
        usleep(10000);
    }
    fprintf(stderr, "bench: online:%s has %lld users, expected %zu\n", e->node, bb_redis_online(e),
            n);
    return -1;
}

/* ------------------------------------------------------------ output */

static void bb__cpu_model(char *out, size_t len)
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

/* The three load averages of /proc/loadavg, or "?". */
static void bb__loadavg(char *out, size_t len)
{
    double l[3];
    FILE *f = fopen("/proc/loadavg", "r");

    snprintf(out, len, "?");
    if (f == NULL)
        return;
    if (fscanf(f, "%lf %lf %lf", &l[0], &l[1], &l[2]) == 3)
        snprintf(out, len, "%.2f %.2f %.2f", l[0], l[1], l[2]);
    fclose(f);
}

static void bb__print_header(const bb_opts *o)
{
    char model[256], load[64];

    bb__loadavg(load, sizeof(load));
    bb__cpu_model(model, sizeof(model));
    printf("feedpush-bench-bridge: %ld CPUs (%s), load average %s\n", sysconf(_SC_NPROCESSORS_ONLN),
           model, load);
    printf("  rabbitmq-server, redis-server, mosquitto + feed_auth.so, feed-bridge and this\n"
           "  process (publisher, MQTT subscribers) all share these CPUs, on loopback.\n");
    printf("  bridge: %s\n", o->env.bridge_bin);
    printf("  followers: SADD followers:a<F> f0..f<F-1> straight into Redis (no follow events)\n");
    printf("  online: f0..f%zu as MQTT 3.1.1 clients (QoS 1, %d threads); a post of a<F>\n"
           "  reaches min(F, %zu) of them\n",
           o->online - 1, o->threads, o->online);
    fflush(stdout);
}

/* "12.3" or "-" for an unknown mean in microseconds. */
static const char *bb__us(char *buf, size_t len, double us)
{
    if (us < 0)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%.0f", us);
    return buf;
}

static double bb__pct(double cpu_s, double wall_s)
{
    return wall_s > 0 ? 100.0 * cpu_s / wall_s : 0.0;
}

/* One row of the time table: per process, % of the run's wall time spent
 * on a CPU and waiting for one. */
static void bb__print_time(const char *what, size_t followers, const bb_run *r)
{
    int k;

    if (!r->ran)
        return;
    printf("  %-10s %9zu %8.2f |", what, followers, r->seconds);
    for (k = 0; k < BB_P__COUNT; k++)
        printf(" %5.0f %4.0f", bb__pct(r->cpu.cpu[k], r->seconds),
               bb__pct(r->cpu.wait[k], r->seconds));
    printf("\n");
}

static void bb__print(const bb_opts *o, const bb_row *rows)
{
    static const char *const procs[BB_P__COUNT] = {"bridge", "redis", "rabbitmq", "mosquitto",
                                                   "bench"};
    char a[32], b[32], c[32];
    const bb_run *r;
    int i, k;

    printf("\nMachine while running: load average %s before the runs, %s after;\n"
           "  Redis PING round trip from this process p50/p99 %.0f/%.0f us before, "
           "%.0f/%.0f us after\n",
           o->load[0], o->load[1], o->ping_us[0][0], o->ping_us[0][1], o->ping_us[1][0],
           o->ping_us[1][1]);
    printf("\nSummary (posts per case: throughput runs as listed below; latency at a steady "
           "rate)\n");
    printf("  %9s %7s %10s %13s %12s %9s %9s\n", "followers", "online", "events/s", "deliveries/s",
           "lat. rate/s", "p50 ms", "p99 ms");
    for (i = 0; i < o->n_cases; i++) {
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
           o->window);
    printf("  %9s %6s %8s %9s %10s %11s %9s %9s\n", "followers", "posts", "seconds", "events/s",
           "publish s", "feed rows/s", "stage1 us", "lua us");
    for (i = 0; i < o->n_cases; i++) {
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
    for (i = 0; i < o->n_cases; i++) {
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
    for (i = 0; i < o->n_cases; i++) {
        r = &rows[i].latency;
        printf("  %9zu %6zu %8.1f %6zu %9llu %5lld %8.2f %8.2f %8.2f %9s %9s\n", rows[i].followers,
               rows[i].targets, r->rate, r->posts, (unsigned long long)r->received,
               (long long)r->expected - (long long)r->received, r->p50_ms, r->p99_ms, r->max_ms,
               bb__us(a, sizeof(a), r->stage1_us), bb__us(b, sizeof(b), r->stage2_us));
    }
    printf("\n4. Where the time went: per process, %% of the run's wall time on a CPU (cpu)\n"
           "   and runnable but waiting for a CPU (wait), from /proc/*/task/*/schedstat.\n");
    printf("  %-10s %9s %8s |", "run", "followers", "seconds");
    for (k = 0; k < BB_P__COUNT; k++)
        printf(" %10s", procs[k]);
    printf("\n  %-10s %9s %8s |", "", "", "");
    for (k = 0; k < BB_P__COUNT; k++)
        printf(" %5s %4s", "cpu", "wait");
    printf("\n");
    for (i = 0; i < o->n_cases; i++)
        bb__print_time("fan-out", rows[i].followers, &rows[i].fanout);
    for (i = 0; i < o->n_cases; i++)
        bb__print_time("deliveries", rows[i].followers, &rows[i].deliver);
    for (i = 0; i < o->n_cases; i++)
        bb__print_time("latency", rows[i].followers, &rows[i].latency);
    fflush(stdout);
}

/* ------------------------------------------------------------ options */

static void bb__usage(FILE *f, const bb_opts *o)
{
    fprintf(f,
            "usage: feedpush-bench-bridge [options]\n"
            "  -f, --followers LIST  followers per post, one case each (1,100,10000)\n"
            "  -n, --events LIST     posts per throughput run, per case (2000,500,60)\n"
            "  -r, --rate LIST       posts/s of the latency run, per case (100,20,2)\n"
            "  -s, --seconds S       length of each latency run (5)\n"
            "  -o, --online N        users online at most, f0..f<N-1> (1000)\n"
            "  -t, --threads N       subscriber threads (4)\n"
            "  -w, --window N        unconfirmed publishes in a burst (500)\n"
            "      --bridge FILE     feed-bridge to run (%s)\n"
            "      --plugin FILE     feed_auth.so to load (%s)\n"
            "      --fp-server FILE  tools/fp-server (%s)\n"
            "      --log-level L     the bridge's log level (info)\n"
            "      --broker-conf FILE  more mosquitto config lines (e.g. set_tcp_nodelay true)\n"
            "      --keep            keep the temp dir with the logs\n",
            o->env.bridge_bin, o->env.plugin, o->env.fp_server);
}

static int bb__num(const char *name, const char *s, double min, double max, double *out)
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

/* Parses "1,100,10000" into up to BB__MAX_CASES numbers. Returns the count
 * or -1. */
static int bb__list(const char *name, const char *s, double min, double max, double *out)
{
    char buf[256], *tok, *save = NULL;
    int n = 0;

    snprintf(buf, sizeof(buf), "%s", s);
    for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        if (n == BB__MAX_CASES || bb__num(name, tok, min, max, &out[n]) != 0)
            return -1;
        n++;
    }
    return n > 0 ? n : -1;
}

/* path = dirname(our executable)/rel when that file exists. */
static void bb__beside_us(char *path, size_t len, const char *rel)
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

static void bb__defaults(bb_opts *o)
{
    static const size_t followers[] = {1, 100, 10000}, events[] = {2000, 500, 60};
    static const double rates[] = {100, 20, 2};
    int i;

    memset(o, 0, sizeof(*o));
    for (i = 0; i < 3; i++) {
        o->followers[i] = followers[i];
        o->events[i] = events[i];
        o->rates[i] = rates[i];
    }
    o->n_cases = o->n_events = o->n_rates = 3;
    o->lat_seconds = 5;
    o->online = 1000;
    o->threads = 4;
    o->window = 500;
    snprintf(o->env.node, sizeof(o->env.node), "bench1");
    o->env.bridge_log_level = "info";
    snprintf(o->env.fp_server, sizeof(o->env.fp_server), "%s/tools/fp-server", FP_BENCH_SOURCE_DIR);
    snprintf(o->env.bridge_bin, sizeof(o->env.bridge_bin), "%s", FP_BENCH_BRIDGE);
    snprintf(o->env.plugin, sizeof(o->env.plugin), "%s", FP_BENCH_PLUGIN);
    /* The build tree this binary sits in: tools/bench/ -> bridge/, plugin/. */
    bb__beside_us(o->env.bridge_bin, sizeof(o->env.bridge_bin), "../../bridge/feed-bridge");
    bb__beside_us(o->env.plugin, sizeof(o->env.plugin), "../../plugin/feed_auth.so");
}

/* Fills o from argv. Returns 0, 1 for --help, or -1. */
static int bb__parse(bb_opts *o, int argc, char **argv)
{
    static const struct option longs[] = {
        {"followers", required_argument, NULL, 'f'},
        {"events", required_argument, NULL, 'n'},
        {"rate", required_argument, NULL, 'r'},
        {"seconds", required_argument, NULL, 's'},
        {"online", required_argument, NULL, 'o'},
        {"threads", required_argument, NULL, 't'},
        {"window", required_argument, NULL, 'w'},
        {"bridge", required_argument, NULL, 'B'},
        {"plugin", required_argument, NULL, 'P'},
        {"fp-server", required_argument, NULL, 'F'},
        {"log-level", required_argument, NULL, 'L'},
        {"broker-conf", required_argument, NULL, 'C'},
        {"keep", no_argument, NULL, 'K'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    double v = 0, list[BB__MAX_CASES];
    int c, i, n, rc = 0;

    bb__defaults(o);
    for (;;) {
        c = getopt_long(argc, argv, "f:n:r:s:o:t:w:h", longs, NULL);
        if (c == -1)
            break;
        switch (c) {
        case 'f':
        case 'n':
            n = bb__list(c == 'f' ? "followers" : "events", optarg, 1, 1000000, list);
            rc = n < 0 ? -1 : 0;
            for (i = 0; i < n; i++) {
                if (c == 'f')
                    o->followers[i] = (size_t)list[i];
                else
                    o->events[i] = (size_t)list[i];
            }
            if (c == 'f')
                o->n_cases = n;
            else
                o->n_events = n;
            break;
        case 'r':
            n = bb__list("rate", optarg, 0.1, 100000, list);
            rc = n < 0 ? -1 : 0;
            for (i = 0; i < n; i++)
                o->rates[i] = list[i];
            o->n_rates = n;
            break;
        case 's':
            rc = bb__num("seconds", optarg, 0.1, 600, &o->lat_seconds);
            break;
        case 'o':
            rc = bb__num("online", optarg, 1, 20000, &v);
            o->online = (size_t)v;
            break;
        case 't':
            rc = bb__num("threads", optarg, 1, 64, &v);
            o->threads = (int)v;
            break;
        case 'w':
            rc = bb__num("window", optarg, 1, 65535, &v);
            o->window = (int)v;
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
        case 'C':
            o->env.broker_conf = optarg;
            break;
        case 'K':
            o->env.keep = true;
            break;
        case 'h':
            bb__usage(stdout, o);
            return 1;
        default:
            bb__usage(stderr, o);
            return -1;
        }
        if (rc != 0)
            return -1;
    }
    if (optind < argc || o->n_events != o->n_cases || o->n_rates != o->n_cases) {
        fprintf(stderr, "bench: --followers, --events and --rate need as many entries\n");
        bb__usage(stderr, o);
        return -1;
    }
    /* No more users online than the largest case has followers. */
    for (i = 0, v = 0; i < o->n_cases; i++) {
        if ((double)o->followers[i] > v)
            v = (double)o->followers[i];
    }
    if ((double)o->online > v)
        o->online = (size_t)v;
    return 0;
}

/* ------------------------------------------------------------ main */

/* The three runs of every case, in the order above. */
static int bb__runs(bb_opts *o, bb_row *rows)
{
    bb_subs *subs = NULL;
    bb_pub pub;
    int i, rc = -1;

    memset(&pub, 0, sizeof(pub));
    for (i = 0; i < o->n_cases; i++) {
        char author[FP_ID_BUFSZ];

        snprintf(author, sizeof(author), "a%zu", o->followers[i]);
        rows[i].followers = o->followers[i];
        rows[i].targets = o->followers[i] < o->online ? o->followers[i] : o->online;
        if (bb_redis_followers(&o->env, author, o->followers[i]) != 0) {
            fprintf(stderr, "bench: cannot write followers:%s\n", author);
            return -1;
        }
    }
    bb__loadavg(o->load[0], sizeof(o->load[0]));
    bb_redis_ping(&o->env, 200, &o->ping_us[0][0], &o->ping_us[0][1]);
    if (bb_pub_open(&pub, &o->env) != 0)
        return -1;
    for (i = 0; i < o->n_cases; i++) {
        fprintf(stderr, "bench: fan-out, %zu followers, %zu posts...\n", o->followers[i],
                o->events[i]);
        if (bb__run_fanout(o, &pub, 10 + i, o->events[i], &rows[i]) != 0)
            goto out;
    }
    fprintf(stderr, "bench: connecting %zu subscribers...\n", o->online);
    if (bb_subs_start(&subs, &o->env, o->online, o->threads, 60000) != 0 ||
        bb__await_online(&o->env, o->online) != 0)
        goto out;
    for (i = 0; i < o->n_cases; i++) {
        fprintf(stderr, "bench: deliveries, %zu followers (%zu online), %zu posts...\n",
                o->followers[i], rows[i].targets, o->events[i]);
        if (bb__run_deliver(o, &pub, subs, 20 + i, o->events[i], &rows[i]) != 0)
            goto out;
    }
    for (i = 0; i < o->n_cases; i++) {
        fprintf(stderr, "bench: latency, %zu followers, %.1f posts/s for %.0f s...\n",
                o->followers[i], o->rates[i], o->lat_seconds);
        if (bb__run_latency(o, &pub, subs, 30 + i, o->rates[i], &rows[i]) != 0)
            goto out;
    }
    if (bb_subs_dropped(subs) > 0)
        fprintf(stderr, "bench: %zu subscribers lost their connection\n", bb_subs_dropped(subs));
    bb__loadavg(o->load[1], sizeof(o->load[1]));
    bb_redis_ping(&o->env, 200, &o->ping_us[1][0], &o->ping_us[1][1]);
    rc = 0;
out:
    bb_subs_stop(subs);
    bb_pub_close(&pub);
    return rc;
}

int main(int argc, char **argv)
{
    bb_opts o;
    bb_row rows[BB__MAX_CASES];
    int64_t t0 = fp_time_mono_ns();
    int rc;

    rc = bb__parse(&o, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 1;
    signal(SIGPIPE, SIG_IGN);
    memset(rows, 0, sizeof(rows));
    bb__print_header(&o);
    mosquitto_lib_init();
    fprintf(stderr, "bench: starting rabbitmq, redis, mosquitto and feed-bridge...\n");
    rc = bb_env_start(&o.env);
    if (rc == 0) {
        fprintf(stderr, "bench: servers up after %.1f s (temp dir %s)\n",
                (double)(fp_time_mono_ns() - t0) / 1e9, o.env.root);
        rc = bb__runs(&o, rows);
    }
    if (bb_env_stop(&o.env) != 0) {
        fprintf(stderr, "bench: something did not stop cleanly\n");
        rc = -1;
    }
    mosquitto_lib_cleanup();
    bb__print(&o, rows);
    printf("\n  total %.1f s\n", (double)(fp_time_mono_ns() - t0) / 1e9);
    if (rc != 0) {
        fprintf(stderr, "bench: the run did not complete\n");
        return 1;
    }
    return 0;
}
