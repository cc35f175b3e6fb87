/*
 * bridge_bench.c - feedpush-bench-bridge: how fast feed-bridge fans posts
 * out and delivers them, and how long a post takes from the backend's AMQP
 * publish to a follower's MQTT client (docs/benchmarks.md, "feed-bridge").
 * With --replicas N, Redis gets N replicas and every latency case runs a
 * second time with the bridge restarted with redis_min_replicas N: what
 * WAIT costs, in the same run.
 *
 * The baseline, in the same run: the delivery and latency runs again with
 * this process publishing each delivery straight to feed/<uid> (QoS 1, as
 * a service client of the same broker and plugin, one libmosquitto
 * client with its own network thread), the same payloads to the same
 * subscribers: how close the feed path gets to raw MQTT. With --half,
 * each case's two latency runs are paced at half of the feed path's
 * deliveries/s just measured for that case.
 *
 * Per case, the longest Redis call of its feed-path runs, from SLOWLOG
 * (calls of --slowlog-us or more; the bench's own connection left out):
 * Redis is a black box here but for SLOWLOG and CONFIG.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <mosquitto.h>

#include "bench_lib.h"
#include "fp_event.h"
#include "fp_store.h"

typedef struct {
    bench_list followers, events, rates;
    double lat_seconds;
    size_t online;
    int threads, window, replicas, slowlog_us;
    bool half;
    bool paced;
    int batch; /* --gateway-publisher: messages in flight; 0: off */
} bb_opts;

#define BB_REPLICAS_MAX 4
/* --half: latencies a latency run records at most, per second of it (half
 * of 100,000 deliveries/s); a faster case is paced slower than half. */
#define BB_HALF_LAT_PER_S 50000.0
/* SLOWLOG entries Redis keeps during a run. */
#define BB_SLOWLOG_LEN 100000
/* The client name of the bench's own Redis connection, left out of SLOWLOG. */
#define BB_CLIENT_NAME "feedpush-bench"

static const bench_opt bb__opts[] = {
    {"followers", 'f', "LIST", BENCH_OPT_LIST, offsetof(bb_opts, followers), 1, 1e6,
     "1,100,1000,10000", "10", "followers per post, one case each"},
    {"events", 'n', "LIST", BENCH_OPT_LIST, offsetof(bb_opts, events), 1, 1e6, "2000,500,200,60",
     "20", "posts per throughput run, per case"},
    {"rate", 'r', "LIST", BENCH_OPT_LIST, offsetof(bb_opts, rates), 0.1, 1e5, "100,20,10,2", "20",
     "posts/s of the latency run, per case"},
    {"seconds", 's', "S", BENCH_OPT_DOUBLE, offsetof(bb_opts, lat_seconds), 0.1, 600, "5", "1",
     "length of each latency run"},
    {"online", 'o', "N", BENCH_OPT_SIZE, offsetof(bb_opts, online), 1, 20000, "1000", "10",
     "users online at most, f0..f<N-1>"},
    {"threads", 't', "N", BENCH_OPT_INT, offsetof(bb_opts, threads), 1, 64, "4", "2",
     "subscriber threads"},
    {"window", 'w', "N", BENCH_OPT_INT, offsetof(bb_opts, window), 1, 65535, "500", NULL,
     "unconfirmed publishes in a burst"},
    {"replicas", 'R', "N", BENCH_OPT_INT, offsetof(bb_opts, replicas), 0, BB_REPLICAS_MAX, "0", "1",
     "Redis replicas; >0: each latency case again with redis_min_replicas N"},
    {"half", 0, NULL, BENCH_OPT_FLAG, offsetof(bb_opts, half), 0, 0, NULL, NULL,
     "latency runs (feed, raw) at half the case's feed deliveries/s: deliveries/s / online / 2 "
     "posts/s; no --rate"},
    {"paced", 0, NULL, BENCH_OPT_FLAG, offsetof(bb_opts, paced), 0, 0, NULL, NULL,
     "latency runs at --rate paced by the schedule alone, publishes windowed as with --half "
     "(default: one confirm at a time)"},
    {"gateway-publisher", 0, "N", BENCH_OPT_INT, offsetof(bb_opts, batch), 0, 64, "0", NULL,
     "publish posts as feed-gateway does: at most N messages awaiting their confirms, the posts "
     "meanwhile in one batch message (2 is the gateway's; 0: one message per post)"},
    {"slowlog-us", 0, "US", BENCH_OPT_INT, offsetof(bb_opts, slowlog_us), 0, 1e6, "10", NULL,
     "SLOWLOG threshold during the runs (0 logs every call, those inside scripts too)"},
};

/* What one run measured; the *_us figures are means, -1 when unknown. */
typedef struct {
    bool ran, complete;
    size_t posts;
    uint64_t expected, received, stray;
    double seconds;     /* first publish -> end condition */
    double publish_s;   /* first publish -> last confirm */
    double events_rate; /* posts / time until the last post was in every feed */
    double deliv_rate;  /* receipts / seconds */
    double stage1_us, stage2_us, lua_us, sync_us;
    bench_times t[BENCH_P_N];
    double rate; /* latency run: the rate achieved */
    bench_lat lat;
    bool s1_counted;   /* stage 1's end from the bridge's counter, not f0's feed */
    long long slow_us; /* the longest Redis call of the run (SLOWLOG), -1: unknown */
    char slow_cmd[80]; /* which: the command, for EVALSHA its sha, first arguments */
    size_t slow_n;     /* Redis calls of the run (SLOWLOG), ours left out */
} bb_run;

typedef struct {
    size_t followers, targets;
    double lat_rate; /* posts/s the latency runs were paced at */
    bb_run fanout, deliver, latency, latency_wait;
    bb_run deliver_raw, latency_raw; /* the baseline: raw MQTT publishes */
    bb_run solo; /* stage 1 alone: posts written by this process, nothing else running */
} bb_row;

/* The raw publisher: a service client of node 1's broker. */
typedef struct {
    struct mosquitto *m;
    atomic_int connack;      /* -1 until the CONNACK */
    atomic_ullong acked;     /* PUBACKs so far */
    unsigned long long sent; /* publishes so far */
} bb_raw;

/* The runs' context: options, cases, servers, subscribers. */
typedef struct {
    bb_opts o;
    bb_row rows[BENCH_MAX_LIST];
    int n;
    bench_env e;
    bench_subs *subs;       /* NULL: nobody online (fan-out) */
    char last[FP_ID_BUFSZ]; /* the id of the run's last post */
    int64_t s1_ns;          /* when it was in every feed (0: not yet) */
    long long s1_want;      /* the bridge's stage1_count once the run's events are done */
    bool s1_counted;        /* s1_ns from that counter */
    unsigned polls;         /* bb__stage1_pending calls in this run */
    double ping_us[2][2];   /* Redis PING p50, p99: before the runs, after */
    ft_server replica[BB_REPLICAS_MAX];
    bb_raw raw;
    char load[2][64]; /* /proc/loadavg then */
    bool incomplete;  /* a run was */
} bb_ctx;

/* ------------------------------------------------------------ measuring */

typedef struct {
    long long s1_sum, s1_count, s2_sum, s2_count, lua_calls, lua_usec, sync_sum, sync_count;
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

/*
 * Every Redis call of --slowlog-us or longer from now on goes to SLOWLOG
 * (room for BB_SLOWLOG_LEN), and our own connection gets a name so that
 * its calls can be left out. After the followers are written: the setup
 * is not measured. Redis 7 logs the calls a script makes as well, each
 * costing the script time when logged: hence a threshold above theirs.
 * 0 or -1 (printed).
 */
static int bb__slowlog_start(bb_ctx *x)
{
    redisReply *r[3];
    int i, rc = 0;

    r[0] = redisCommand(x->e.rc, "CLIENT SETNAME %s", BB_CLIENT_NAME);
    r[1] = redisCommand(x->e.rc, "CONFIG SET slowlog-max-len %d", BB_SLOWLOG_LEN);
    r[2] = redisCommand(x->e.rc, "CONFIG SET slowlog-log-slower-than %d", x->o.slowlog_us);
    for (i = 0; i < 3; i++) {
        if (r[i] == NULL || r[i]->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "bench: Redis refused the SLOWLOG settings: %s\n",
                    r[i] != NULL ? r[i]->str : x->e.rc->errstr);
            rc = -1;
        }
        freeReplyObject(r[i]);
    }
    return rc;
}

/* A short name for one SLOWLOG entry's arguments: the command, for EVAL
 * and EVALSHA the script's sha (8 digits) and its number of arguments,
 * then up to three arguments ("" when empty), each cut at 16 bytes. */
static void bb__slow_name(const redisReply *args, char *out, size_t len)
{
    const redisReply *a;
    size_t i = 1, shown, n;
    int w;

    a = args->elements > 0 ? args->element[0] : NULL;
    w = snprintf(out, len, "%.24s", a != NULL && a->type == REDIS_REPLY_STRING ? a->str : "?");
    if (w < 0 || (size_t)w >= len)
        return;
    if (a != NULL && a->type == REDIS_REPLY_STRING &&
        (strcasecmp(a->str, "evalsha") == 0 || strcasecmp(a->str, "eval") == 0) &&
        args->elements > 2 && args->element[1]->type == REDIS_REPLY_STRING) {
        w += snprintf(out + w, len - (size_t)w, " %.8s, %zu args:", args->element[1]->str,
                      args->elements - 3);
        i = 3;
    }
    for (shown = 0; i < args->elements && shown < 3 && w >= 0 && (size_t)w < len; i++, shown++) {
        a = args->element[i];
        n = a->type == REDIS_REPLY_STRING ? a->len : 0;
        w += snprintf(out + w, len - (size_t)w, n == 0 ? " \"\"" : " %.16s", n == 0 ? "" : a->str);
    }
}

/*
 * The longest call SLOWLOG holds, leaving out the bench's own connection
 * (by its client name), into r->slow_*. Entries: id, time, microseconds,
 * arguments, client address, client name.
 */
static void bb__slowlog_read(bb_ctx *x, bb_run *r)
{
    redisReply *rep = redisCommand(x->e.rc, "SLOWLOG GET -1"), *e;
    size_t i;

    r->slow_us = -1;
    r->slow_n = 0;
    r->slow_cmd[0] = '\0';
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rep);
        return;
    }
    if (rep->elements >= BB_SLOWLOG_LEN)
        fprintf(stderr, "bench: SLOWLOG is full (%zu calls): the longest may be missing\n",
                rep->elements);
    for (i = 0; i < rep->elements; i++) {
        e = rep->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 4 ||
            e->element[2]->type != REDIS_REPLY_INTEGER || e->element[3]->type != REDIS_REPLY_ARRAY)
            continue;
        if (e->elements > 5 && e->element[5]->type == REDIS_REPLY_STRING &&
            strcmp(e->element[5]->str, BB_CLIENT_NAME) == 0)
            continue;
        r->slow_n++;
        if (e->element[2]->integer > r->slow_us) {
            r->slow_us = e->element[2]->integer;
            bb__slow_name(e->element[3], r->slow_cmd, sizeof(r->slow_cmd));
        }
    }
    freeReplyObject(rep);
}

/* Posts of "stage 1 alone" per case (bb__solo). */
#define BB_SOLO_POSTS 10

/* One post of a<followers> through fp_store as feed-bridge writes it:
 * fp_store_post_created, then fp_store_post_finish. 0 or -1. */
static int bb__solo_post(fp_store *st, const char *id, size_t followers)
{
    char body[256], reason[128];
    fp_fanout f = {0};
    fp_event ev;
    int n, rc;

    n = bench_post_event(body, sizeof(body), id, followers, "alone");
    if (fp_event_parse(body, (size_t)n, NULL, &ev, reason, sizeof(reason)) != 0) {
        fprintf(stderr, "bench: %s: %s\n", body, reason);
        return -1;
    }
    rc = fp_store_post_created(st, &ev, &f);
    if (rc == 0)
        rc = fp_store_post_finish(st, &ev, &f);
    if (rc != 0)
        fprintf(stderr, "bench: stage 1 alone, %s: %s\n", id, fp_store_errstr(st));
    fp_fanout_free(&f);
    fp_event_free(&ev);
    return rc == 0 ? 0 : -1;
}

/*
 * Stage 1 alone, for case k with its users online: BB_SOLO_POSTS posts
 * of the case's author written by this process through fp_store, the
 * calls feed-bridge makes, while nothing else runs (no AMQP, no
 * deliveries; the bridge and the broker idle). The longest Redis call
 * (SLOWLOG) then shows what the scripts themselves take, without the
 * preemption a loaded machine adds to the runs' figures; seconds is the
 * longest post. 0 or -1.
 */
static int bb__solo(bb_ctx *x, int k, bb_row *row)
{
    fp_store_config c = {.port = x->e.nodes.p.redis.port, .timeout_ms = 60000};
    fp_store *st = NULL;
    char id[FP_ID_BUFSZ];
    int64_t t0;
    double s;
    int i, rc = 0;

    if (fp_store_open(&st, &c) != 0) {
        fprintf(stderr, "bench: stage 1 alone: %s\n", fp_store_errstr(st));
        fp_store_free(st);
        return -1;
    }
    freeReplyObject(redisCommand(x->e.rc, "SLOWLOG RESET"));
    for (i = 0; i < BB_SOLO_POSTS && rc == 0; i++) {
        snprintf(id, sizeof(id), "s%d-%d", k, i);
        t0 = fp_time_mono_ns();
        rc = bb__solo_post(st, id, row->followers);
        s = (double)(fp_time_mono_ns() - t0) / 1e9;
        if (s > row->solo.seconds)
            row->solo.seconds = s;
    }
    fp_store_free(st);
    row->solo.ran = true;
    row->solo.posts = (size_t)i;
    row->solo.complete = rc == 0;
    bb__slowlog_read(x, &row->solo);
    return rc;
}

/* The start of a run: the counters, Redis's script time, CPU, an empty
 * SLOWLOG and the clock. */
static void bb__mark(bb_ctx *x, bb_mark *m)
{
    m->s1_sum = ft_node_stat(&x->e.nodes, 1, "stage1_us_sum");
    m->s1_count = ft_node_stat(&x->e.nodes, 1, "stage1_count");
    m->s2_sum = ft_node_stat(&x->e.nodes, 1, "stage2_us_sum");
    m->s2_count = ft_node_stat(&x->e.nodes, 1, "stage2_count");
    m->sync_sum = ft_node_stat(&x->e.nodes, 1, "sync_us_sum");
    m->sync_count = ft_node_stat(&x->e.nodes, 1, "sync_count");
    freeReplyObject(redisCommand(x->e.rc, "SLOWLOG RESET"));
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
 * counters once they cover the run's posts (and delivery messages), then
 * the longest Redis call. */
static void bb__finish(bb_ctx *x, const bb_mark *m, size_t posts, size_t deliveries, bb_run *r)
{
    bench_cpu now, d;
    long long calls, usec, s1, s2;

    bench_env_cpu(&x->e, &now);
    bench_cpu_diff(&m->cpu, &now, &d);
    bench_cpu_procs(&d, 1, r->t);
    bb__evalsha(&x->e, &calls, &usec);
    r->lua_us = bb__mean(m->lua_usec, usec, m->lua_calls, calls);
    s1 = ft_node_stat_wait(&x->e.nodes, 1, "stage1_count", m->s1_count + (long long)posts, 3000);
    s2 = ft_node_stat_wait(&x->e.nodes, 1, "stage2_count", m->s2_count + (long long)deliveries,
                           3000);
    r->stage1_us =
        bb__mean(m->s1_sum, ft_node_stat(&x->e.nodes, 1, "stage1_us_sum"), m->s1_count, s1);
    r->stage2_us =
        bb__mean(m->s2_sum, ft_node_stat(&x->e.nodes, 1, "stage2_us_sum"), m->s2_count, s2);
    r->sync_us = bb__mean(m->sync_sum, ft_node_stat(&x->e.nodes, 1, "sync_us_sum"), m->sync_count,
                          ft_node_stat(&x->e.nodes, 1, "sync_count"));
    if (s1 - m->s1_count != (long long)posts)
        fprintf(stderr, "bench: the bridge counted %lld events, %zu were published\n",
                s1 - m->s1_count, posts);
    bb__slowlog_read(x, r);
}

/*
 * Still waiting for the run's last post to be written to every feed (its
 * marker fanout:<id> in phase d: pushed, or a pull author's)? Notes when
 * it was (polled every call, about 2 ms) or, every 50th call, when the
 * bridge's stage1_count (written every second) covers the run's posts: a
 * fallback, in 1 s steps, should the marker never show that phase.
 */
static bool bb__stage1_pending(void *arg)
{
    bb_ctx *x = arg;
    redisReply *r;

    if (x->s1_ns != 0)
        return false;
    r = redisCommand(x->e.rc, "GET fanout:%s", x->last);
    if (r != NULL && r->type == REDIS_REPLY_STRING && r->len > 2 &&
        strcmp(r->str + r->len - 2, " d") == 0)
        x->s1_ns = fp_time_mono_ns();
    freeReplyObject(r);
    if (x->s1_ns == 0 && x->s1_want > 0 && ++x->polls % 50 == 0 &&
        ft_node_stat(&x->e.nodes, 1, "stage1_count") >= x->s1_want) {
        x->s1_ns = fp_time_mono_ns();
        x->s1_counted = true;
    }
    return x->s1_ns == 0;
}

/*
 * One run of a case: a burst (rate 0, at most --window unconfirmed) or
 * posts at a steady rate (one confirm at a time, each receipt timed). It
 * ends when the last post is in every feed and, with subscribers, at the
 * last expected receipt. Returns 0, 1 (incomplete) or -1.
 */
static int bb__run(bb_ctx *x, int phase, size_t posts, double rate, bb_row *row, bb_run *r)
{
    int64_t t_last;
    bench_pubtimes pt;
    bb_mark m;

    snprintf(x->last, sizeof(x->last), "p%d-%zu", phase, posts - 1);
    x->s1_ns = 0;
    r->posts = posts;
    r->expected = x->subs != NULL ? (uint64_t)posts * row->targets : 0;
    if (x->subs != NULL)
        bench_subs_phase(x->subs, phase, rate > 0);
    bb__mark(x, &m);
    x->s1_want = m.s1_count >= 0 ? m.s1_count + (long long)posts : 0;
    x->s1_counted = false;
    x->polls = 0;
    /* --half, --paced: paced by the schedule alone, like the raw runs (a
     * late confirm does not delay the next post, so its wait is counted);
     * otherwise one confirm at a time. */
    if (x->o.batch > 0
            ? bench_publish_batched(&x->e, x->o.batch, rate, phase, posts, row->followers, 1, &pt)
            : bench_publish(&x->e, rate > 0 && !x->o.half && !x->o.paced ? 1 : x->o.window, rate,
                            phase, posts, row->followers, 1, &pt))
        return -1;
    bench_subs_await(x->subs, r->expected, bb__stage1_pending, x);
    r->received = x->subs != NULL ? bench_subs_received(x->subs, &r->stray) : 0;
    t_last = x->subs != NULL ? bench_subs_last_ns(x->subs) : x->s1_ns;
    r->ran = true;
    r->s1_counted = x->s1_counted;
    r->complete = r->received == r->expected && x->s1_ns != 0;
    r->seconds = t_last > m.t0 ? (double)(t_last - m.t0) / 1e9 : 0.0;
    r->publish_s = (double)(pt.confirmed_ns - m.t0) / 1e9;
    r->deliv_rate = r->seconds > 0 ? (double)r->received / r->seconds : 0.0;
    r->events_rate = x->s1_ns != 0 ? (double)posts / ((double)(x->s1_ns - m.t0) / 1e9) : 0.0;
    if (rate > 0) {
        r->rate = pt.rate > 0 ? pt.rate : rate;
        bench_subs_lat(x->subs, &r->lat);
    }
    bb__finish(x, &m, posts, x->subs != NULL ? posts : 0, r);
    return r->complete ? 0 : 1;
}

static void bb__raw_connected(struct mosquitto *m, void *obj, int rc)
{
    bb_raw *r = obj;

    (void)m;
    atomic_store(&r->connack, rc);
}

static void bb__raw_acked(struct mosquitto *m, void *obj, int mid)
{
    bb_raw *r = obj;

    (void)m;
    (void)mid;
    atomic_fetch_add(&r->acked, 1);
}

/* Connects the raw publisher to node 1's broker with a service token and
 * no limit on messages in flight. 0 or -1. */
static int bb__raw_open(bb_ctx *x)
{
    bb_raw *r = &x->raw;
    char *tok;
    int i;

    atomic_init(&r->connack, -1);
    atomic_init(&r->acked, 0);
    r->sent = 0;
    r->m = mosquitto_new("bench-raw", true, r);
    if (r->m == NULL)
        return -1;
    tok = ft_plugin_env_token_now(&x->e.nodes.p, "bench-raw", FP_ROLE_SERVICE);
    mosquitto_username_pw_set(r->m, "bench-raw", tok);
    free(tok);
    mosquitto_max_inflight_messages_set(r->m, 0); /* bb__raw_publish keeps the window */
    mosquitto_connect_callback_set(r->m, bb__raw_connected);
    mosquitto_publish_callback_set(r->m, bb__raw_acked);
    if (mosquitto_connect(r->m, "127.0.0.1", ft_node_port(&x->e.nodes, 1), 60) !=
            MOSQ_ERR_SUCCESS ||
        mosquitto_loop_start(r->m) != MOSQ_ERR_SUCCESS)
        return -1;
    for (i = 0; i < 500 && atomic_load(&r->connack) == -1; i++)
        usleep(10000);
    if (atomic_load(&r->connack) != 0) {
        fprintf(stderr, "bench: the raw publisher was not accepted (%d)\n",
                atomic_load(&r->connack));
        return -1;
    }
    return 0;
}

static void bb__raw_close(bb_ctx *x)
{
    if (x->raw.m == NULL)
        return;
    mosquitto_disconnect(x->raw.m);
    mosquitto_loop_stop(x->raw.m, false);
    mosquitto_destroy(x->raw.m);
    x->raw.m = NULL;
}

/*
 * The raw counterpart of bench_publish: for each of n posts (at rate, or
 * as fast as the window allows when rate is 0), the payload the bridge
 * would deliver, published QoS 1 to feed/f0 .. feed/f<targets-1>. At most
 * --window publishes wait for their PUBACK (libmosquitto searches its
 * list of those on every PUBACK).
 */
static int bb__raw_publish(bb_ctx *x, double rate, int phase, size_t n, const bb_row *row,
                           bench_pubtimes *pt)
{
    int64_t start = fp_time_mono_ns(), sent;
    char payload[512], text[64], topic[32], id[FP_ID_BUFSZ];
    size_t i, j;
    int len;

    memset(pt, 0, sizeof(*pt));
    for (i = 0; i < n; i++) {
        if (rate > 0)
            bench_pace(start, i, rate);
        sent = fp_time_mono_ns();
        if (i == 0)
            pt->first_ns = sent;
        pt->last_ns = sent;
        bench_post_text(text, sizeof(text), phase, i, sent);
        snprintf(id, sizeof(id), "p%d-%zu", phase, i);
        len = bench_post_event(payload, sizeof(payload), id, row->followers, text);
        for (j = 0; j < row->targets; j++) {
            while (x->raw.sent - atomic_load(&x->raw.acked) >= (unsigned long long)x->o.window)
                usleep(50);
            snprintf(topic, sizeof(topic), "feed/f%zu", j);
            if (mosquitto_publish(x->raw.m, NULL, topic, len, payload, 1, false) !=
                MOSQ_ERR_SUCCESS)
                return -1;
            x->raw.sent++;
        }
    }
    pt->confirmed_ns = fp_time_mono_ns();
    if (n > 1 && pt->last_ns > pt->first_ns)
        pt->rate = (double)(n - 1) / ((double)(pt->last_ns - pt->first_ns) / 1e9);
    return 0;
}

/* A raw run of a case: like bb__run's delivery and latency runs, with
 * this process as the publisher and no bridge, RabbitMQ or Redis work.
 * Returns 0, 1 (incomplete) or -1. */
static int bb__raw_run(bb_ctx *x, int phase, size_t posts, double rate, bb_row *row, bb_run *r)
{
    bench_pubtimes pt;
    bb_mark m;
    int64_t t_last;

    r->posts = posts;
    r->expected = (uint64_t)posts * row->targets;
    bench_subs_phase(x->subs, phase, rate > 0);
    bb__mark(x, &m);
    if (bb__raw_publish(x, rate, phase, posts, row, &pt) != 0)
        return -1;
    bench_subs_await(x->subs, r->expected, NULL, NULL);
    r->received = bench_subs_received(x->subs, &r->stray);
    t_last = bench_subs_last_ns(x->subs);
    r->ran = true;
    r->complete = r->received == r->expected;
    r->seconds = t_last > m.t0 ? (double)(t_last - m.t0) / 1e9 : 0.0;
    r->publish_s = (double)(pt.confirmed_ns - m.t0) / 1e9;
    r->deliv_rate = r->seconds > 0 ? (double)r->received / r->seconds : 0.0;
    if (rate > 0) {
        r->rate = pt.rate > 0 ? pt.rate : rate;
        bench_subs_lat(x->subs, &r->lat);
    }
    bb__finish(x, &m, 0, 0, r);
    return r->complete ? 0 : 1;
}

/* Round trip of 200 PINGs (1 ms apart) on our Redis connection, p50 and p99
 * in microseconds, and the load average: how busy this machine is now. */
static void bb__machine(bb_ctx *x, int when)
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
    x->ping_us[when][0] = (double)rtt[100] / 1e3;
    x->ping_us[when][1] = (double)rtt[198] / 1e3;
    bench_loadavg(x->load[when], sizeof(x->load[when]));
}

/* How often needle occurs in s. */
static int bb__count(const char *s, const char *needle)
{
    int n = 0;

    for (s = strstr(s, needle); s != NULL; s = strstr(s + 1, needle))
        n++;
    return n;
}

/* --replicas: N replicas of the nodes' Redis, in sync. 0 or -1. */
static int bb__replicas_start(bb_ctx *x)
{
    redisReply *r;
    int i;

    for (i = 0; i < x->o.replicas; i++) {
        if (ft_server_start_replica(&x->replica[i], &x->e.nodes.p.redis) != 0)
            return -1;
    }
    /* Each replica's line says state=online once its first sync is done. */
    for (i = 0; i < 600; i++) {
        r = redisCommand(x->e.rc, "INFO replication");
        if (r != NULL && r->type == REDIS_REPLY_STRING &&
            bb__count(r->str, "state=online") == x->o.replicas) {
            freeReplyObject(r);
            return 0;
        }
        freeReplyObject(r);
        usleep(50000);
    }
    fprintf(stderr, "bench: the Redis replicas did not connect\n");
    return -1;
}

static void bb__replicas_stop(bb_ctx *x)
{
    int i;

    for (i = 0; i < x->o.replicas; i++) {
        if (x->replica[i].pid > 0)
            ft_server_stop(&x->replica[i]);
    }
}

/* Restarts the bridge with redis_min_replicas n (inherited from our
 * environment). 0 or -1. */
static int bb__bridge_with(bb_ctx *x, int n)
{
    char v[16];

    if (ft_node_bridge_signal(&x->e.nodes, 1, SIGTERM, 5000) == -1)
        return -1;
    snprintf(v, sizeof(v), "%d", n);
    setenv("FEEDPUSH_REDIS_MIN_REPLICAS", v, 1);
    freeReplyObject(redisCommand(x->e.rc, "HDEL stats:bridge:n1 updated_ms"));
    return ft_node_bridge_start(&x->e.nodes, 1);
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
    for (k = 0; k < BENCH_P_N; k++)
        printf(" %5.0f %4.0f", r->seconds > 0 ? 100.0 * r->t[k].cpu / r->seconds : 0.0,
               r->seconds > 0 ? 100.0 * r->t[k].wait / r->seconds : 0.0);
    printf("\n");
}

/* The longest Redis call of a case's feed-path runs (-1: unknown). */
static long long bb__case_slow(const bb_row *row)
{
    const bb_run *runs[] = {&row->fanout, &row->deliver, &row->latency, &row->latency_wait};
    long long us = -1;
    size_t i;

    for (i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
        if (runs[i]->ran && runs[i]->slow_us > us)
            us = runs[i]->slow_us;
    }
    return us;
}

/* "873918", or "<10" when no call reached the threshold of 10 us. */
static const char *bb__slow_us(char *buf, size_t len, long long us, int threshold)
{
    if (us < 0)
        snprintf(buf, len, "<%d", threshold);
    else
        snprintf(buf, len, "%lld", us);
    return buf;
}

/* One row of table 5: a run's longest Redis call. */
static void bb__print_slow(const char *what, size_t followers, const bb_run *r)
{
    if (!r->ran)
        return;
    if (r->slow_us < 0)
        printf("  %9zu  %-10s %8zu %9s  -\n", followers, what, r->slow_n, "<");
    else
        printf("  %9zu  %-10s %8zu %9lld  %s\n", followers, what, r->slow_n, r->slow_us,
               r->slow_cmd);
}

/* Did a latency run keep to 90 % of its pace? */
static bool bb__paced(const bb_run *r, double rate)
{
    return r->posts < 2 || r->rate >= 0.9 * rate;
}

/* The machine line and the tables, after the runs. */
static void bb__print(void *arg)
{
    const bb_ctx *x = arg;
    const bb_row *row;
    const bb_run *r;
    char a[32], b[32], c[32];
    bool counted = false;
    int i;

    printf("\nMachine while running: load average %s before the runs, %s after;\n"
           "  Redis PING round trip from this process p50/p99 %.0f/%.0f us before, "
           "%.0f/%.0f us after\n",
           x->load[0], x->load[1], x->ping_us[0][0], x->ping_us[0][1], x->ping_us[1][0],
           x->ping_us[1][1]);
    printf("\nSummary (posts per case: throughput runs as listed below; latency at a steady "
           "rate%s).\n  raw p99: the same latency run published straight to MQTT (3c). Redis "
           "max us: the\n  longest Redis call of the case's feed-path runs (5).\n",
           x->o.half ? ", half of the case's deliveries/s" : "");
    printf("  %9s %7s %10s %13s %12s %9s %9s %9s %9s %12s\n", "followers", "online", "events/s",
           "deliveries/s", "lat. rate/s", "p50 ms", "p99 ms", "raw p99", "+p99 ms", "Redis max us");
    for (row = x->rows; row < x->rows + x->n; row++) {
        printf("  %9zu %7zu %10.0f %13.0f %12.1f %9.2f %9.2f %9.2f %9.2f %12s%s\n", row->followers,
               row->targets, row->fanout.events_rate, row->deliver.deliv_rate, row->latency.rate,
               row->latency.lat.p50_ms, row->latency.lat.p99_ms, row->latency_raw.lat.p99_ms,
               row->latency.lat.p99_ms - row->latency_raw.lat.p99_ms,
               bb__slow_us(a, sizeof(a), bb__case_slow(row), x->o.slowlog_us),
               row->fanout.complete && row->deliver.complete && row->latency.complete
                   ? ""
                   : "  (incomplete)");
    }
    printf("\n1. Fan-out, nobody online: publish as fast as confirms allow (window %d), until\n"
           "   the last post is in every feed. stage1/lua us: the bridge's mean time per event,\n"
           "   Redis's mean time per script call (a post makes one per slice of its fan-out).\n",
           x->o.window);
    printf("  %9s %6s %8s %9s %10s %11s %9s %9s\n", "followers", "posts", "seconds", "events/s",
           "publish s", "feed rows/s", "stage1 us", "lua us");
    for (row = x->rows; row < x->rows + x->n; row++) {
        r = &row->fanout;
        counted = counted || r->s1_counted || row->deliver.s1_counted;
        printf("  %9zu %6zu %8.2f %9.0f %10.2f %11.0f %9s %9s%s\n", row->followers, r->posts,
               r->seconds, r->events_rate, r->publish_s,
               r->events_rate * (double)(row->followers + 1), bb__us(a, sizeof(a), r->stage1_us),
               bb__us(b, sizeof(b), r->lua_us), r->s1_counted ? "  *" : "");
    }
    printf("\n2. Deliveries, followers online: the same burst, until the last receipt.\n"
           "   stage2 us: the bridge's mean time per feed.deliver message (one per post).\n");
    printf("  %9s %6s %6s %9s %5s %8s %12s %9s %9s %9s %9s\n", "followers", "online", "posts",
           "received", "lost", "seconds", "deliveries/s", "events/s", "stage1 us", "stage2 us",
           "lua us");
    for (row = x->rows; row < x->rows + x->n; row++) {
        r = &row->deliver;
        printf("  %9zu %6zu %6zu %9llu %5lld %8.2f %12.0f %9.0f %9s %9s %9s%s\n", row->followers,
               row->targets, r->posts, (unsigned long long)r->received,
               (long long)r->expected - (long long)r->received, r->seconds, r->deliv_rate,
               r->events_rate, bb__us(a, sizeof(a), r->stage1_us),
               bb__us(b, sizeof(b), r->stage2_us), bb__us(c, sizeof(c), r->lua_us),
               r->s1_counted ? "  *" : "");
    }
    if (counted)
        printf("  * the last post's fanout:<id> never showed phase d: stage 1's end is when the\n"
               "    bridge's stage1_count (written every second) covered the run; events/s reads "
               "low.\n");
    printf("\n3. End-to-end latency, AMQP publish -> MQTT receipt, at a steady rate.\n");
    printf("  %9s %6s %8s %6s %9s %5s %8s %8s %8s %9s %9s\n", "followers", "online", "posts/s",
           "posts", "received", "lost", "p50 ms", "p99 ms", "max ms", "stage1 us", "stage2 us");
    for (row = x->rows; row < x->rows + x->n; row++) {
        r = &row->latency;
        printf("  %9zu %6zu %8.1f %6zu %9llu %5lld %8.2f %8.2f %8.2f %9s %9s\n", row->followers,
               row->targets, r->rate, r->posts, (unsigned long long)r->received,
               (long long)r->expected - (long long)r->received, r->lat.p50_ms, r->lat.p99_ms,
               r->lat.max_ms, bb__us(a, sizeof(a), r->stage1_us),
               bb__us(b, sizeof(b), r->stage2_us));
    }
    if (x->o.replicas > 0) {
        printf("\n3b. The same latency runs with the bridge restarted with redis_min_replicas %d\n"
               "   (%d Redis replica(s) on this machine): an event is acked after INCR sync +\n"
               "   WAIT. sync us: the bridge's mean time in that round trip.\n",
               x->o.replicas, x->o.replicas);
        printf("  %9s %6s %8s %8s %8s %8s %8s %9s %9s %9s\n", "followers", "online", "posts/s",
               "p50 ms", "p99 ms", "+p50 ms", "+p99 ms", "stage1 us", "+stage1", "sync us");
        for (row = x->rows; row < x->rows + x->n; row++) {
            r = &row->latency_wait;
            printf("  %9zu %6zu %8.1f %8.2f %8.2f %8.2f %8.2f %9s %9.0f %9s%s\n", row->followers,
                   row->targets, r->rate, r->lat.p50_ms, r->lat.p99_ms,
                   r->lat.p50_ms - row->latency.lat.p50_ms, r->lat.p99_ms - row->latency.lat.p99_ms,
                   bb__us(a, sizeof(a), r->stage1_us), r->stage1_us - row->latency.stage1_us,
                   bb__us(b, sizeof(b), r->sync_us), r->complete ? "" : "  (incomplete)");
        }
    }
    printf("\n3c. The feed path next to raw MQTT: the same deliveries published by this process\n"
           "   straight to feed/<uid> (QoS 1, a service client of the same broker and plugin),\n"
           "   in the same run. ratio: feed path / raw. posts/s: the pace of both latency runs%s.\n"
           "   +p99: feed path p99 - raw p99.\n",
           x->o.half ? " (--half:\n   the feed path's deliveries/s / online / 2)" : "");
    printf("  %9s %6s | %12s %12s %6s | %8s | %8s %8s %8s %8s %8s\n", "followers", "online",
           "deliveries/s", "raw", "ratio", "posts/s", "p50 ms", "raw", "p99 ms", "raw", "+p99 ms");
    for (row = x->rows; row < x->rows + x->n; row++) {
        printf(
            "  %9zu %6zu | %12.0f %12.0f %6.2f | %8.2f | %8.2f %8.2f %8.2f %8.2f %8.2f%s%s\n",
            row->followers, row->targets, row->deliver.deliv_rate, row->deliver_raw.deliv_rate,
            row->deliver_raw.deliv_rate > 0 ? row->deliver.deliv_rate / row->deliver_raw.deliv_rate
                                            : 0.0,
            row->lat_rate, row->latency.lat.p50_ms, row->latency_raw.lat.p50_ms,
            row->latency.lat.p99_ms, row->latency_raw.lat.p99_ms,
            row->latency.lat.p99_ms - row->latency_raw.lat.p99_ms,
            row->deliver_raw.complete && row->latency_raw.complete ? "" : "  (incomplete)",
            bb__paced(&row->latency, row->lat_rate) && bb__paced(&row->latency_raw, row->lat_rate)
                ? ""
                : "  (pace missed)");
    }
    printf("\n4. Where the time went: per process, %% of the run's wall time on a CPU (cpu)\n"
           "   and runnable but waiting for a CPU (wait), from /proc/*/task/*/schedstat.\n");
    printf(
        "  run        followers  seconds |     bridge      redis   rabbitmq  mosquitto      bench\n"
        "                                |   cpu wait   cpu wait   cpu wait   cpu wait   cpu "
        "wait\n");
    for (i = 0; i < x->n; i++)
        bb__print_time("fan-out", x->rows[i].followers, &x->rows[i].fanout);
    for (i = 0; i < x->n; i++)
        bb__print_time("deliveries", x->rows[i].followers, &x->rows[i].deliver);
    for (i = 0; i < x->n; i++)
        bb__print_time("latency", x->rows[i].followers, &x->rows[i].latency);
    for (i = 0; i < x->n; i++)
        bb__print_time("raw deliv.", x->rows[i].followers, &x->rows[i].deliver_raw);
    for (i = 0; i < x->n; i++)
        bb__print_time("raw lat.", x->rows[i].followers, &x->rows[i].latency_raw);
    printf("\n5. The longest Redis call per run, from SLOWLOG: calls of %d us or more\n"
           "   (--slowlog-us) by the bridge, the plugin or inside a script; the bench's own\n"
           "   connection left out. calls: how many; max us: the longest one's time in Redis\n"
           "   (\"<\": none that long), wall time, so a call preempted on a busy CPU counts.\n",
           x->o.slowlog_us);
    printf("  %9s  %-10s %8s %9s  %s\n", "followers", "run", "calls", "max us", "command");
    for (i = 0; i < x->n; i++) {
        row = &x->rows[i];
        bb__print_slow("fan-out", row->followers, &row->fanout);
        bb__print_slow("deliveries", row->followers, &row->deliver);
        bb__print_slow("latency", row->followers, &row->latency);
        bb__print_slow("lat. WAIT", row->followers, &row->latency_wait);
        bb__print_slow("raw deliv.", row->followers, &row->deliver_raw);
        bb__print_slow("raw lat.", row->followers, &row->latency_raw);
        bb__print_slow("alone", row->followers, &row->solo);
    }
    printf("   alone: %d posts written by this process through fp_store as feed-bridge writes\n"
           "   them, with the users online and nothing else running; the longest took:\n",
           BB_SOLO_POSTS);
    for (i = 0; i < x->n; i++)
        printf("  %9zu  %.1f ms\n", x->rows[i].followers, x->rows[i].solo.seconds * 1000.0);
    fflush(stdout);
}

/* ------------------------------------------------------------ main */

/* The followers of every case: a<F> followed by f0..f<F-1>. 0 or -1. */
static int bb__followers(bb_ctx *x)
{
    char author[FP_ID_BUFSZ];
    size_t f;
    int k, rc = 0;

    for (k = 0; k < x->n && rc == 0; k++) {
        f = x->rows[k].followers;
        snprintf(author, sizeof(author), "a%zu", f);
        rc = bench_redis_followers(&x->e, author, 0, f, f);
    }
    return rc;
}

/* The posts of a latency run at rate posts/s. */
static size_t bb__lat_posts(const bb_opts *o, double rate)
{
    size_t n = (size_t)(rate * o->lat_seconds + 0.5);

    return n > 0 ? n : 1;
}

/*
 * The posts/s of case k's latency runs, feed path and raw: --rate's or,
 * with --half, half of the feed path's deliveries/s of the case's delivery
 * run, as posts (deliveries/s / online followers / 2), and no more than
 * the subscribers can record (BB_HALF_LAT_PER_S); at least 0.1.
 */
static double bb__lat_rate(const bb_ctx *x, int k)
{
    const bb_row *row = &x->rows[k];
    double rate, most;

    if (!x->o.half)
        return x->o.rates.v[k];
    rate = row->deliver.deliv_rate / (double)row->targets / 2.0;
    most = BB_HALF_LAT_PER_S / (double)row->targets;
    if (rate > most) {
        fprintf(stderr,
                "bench: half of %.0f deliveries/s is more than %.0f a second can record; "
                "pacing at %.1f posts/s\n",
                row->deliver.deliv_rate, BB_HALF_LAT_PER_S, most);
        rate = most;
    }
    return rate > 0.1 ? rate : 0.1;
}

/* What a run's result means for the others: an incomplete one is noted
 * (the bench fails at the end) and the runs go on, so that the other
 * cases are measured; an error (-1) stops them. 0 or -1. */
static int bb__went(bb_ctx *x, int rc, const char *what, size_t followers)
{
    if (rc > 0) {
        fprintf(stderr, "bench: %s, %zu followers: incomplete; going on\n", what, followers);
        x->incomplete = true;
    }
    return rc < 0 ? -1 : 0;
}

/* bench_driver.run: the followers, then the three runs of every case. */
static int bb__runs(void *arg, bench_env *e)
{
    bb_ctx *x = arg;
    bb_opts *o = &x->o;
    bb_row *row;
    int64_t t0 = fp_time_mono_ns();
    size_t n, posts;
    int k, rc = -1;

    if (bb__followers(x) != 0)
        return -1;
    fprintf(stderr, "bench: followers written in %.2f s\n", (double)(fp_time_mono_ns() - t0) / 1e9);
    if ((o->replicas > 0 && bb__replicas_start(x) != 0) || bb__slowlog_start(x) != 0)
        return -1;
    bb__machine(x, 0);
    for (k = 0, row = x->rows; k < x->n; k++, row++) {
        fprintf(stderr, "bench: fan-out, %zu followers, %zu posts...\n", row->followers,
                (size_t)o->events.v[k]);
        if (bb__went(x, bb__run(x, 10 + k, (size_t)o->events.v[k], 0, row, &row->fanout), "fan-out",
                     row->followers) != 0)
            return -1;
    }
    fprintf(stderr, "bench: connecting %zu subscribers...\n", o->online);
    if (o->half) { /* the rates are not known yet: bb__lat_rate keeps within this */
        n = (size_t)(BB_HALF_LAT_PER_S * o->lat_seconds) + o->online + 16;
    } else {
        for (k = 0, n = 16; k < x->n; k++) /* room for every latency run's receipts */
            n += bb__lat_posts(o, o->rates.v[k]) * x->rows[k].targets;
        for (k = 0; k < x->n; k++) /* and the raw latency runs' */
            n += bb__lat_posts(o, o->rates.v[k]) * x->rows[k].targets;
    }
    /* The raw publisher first: libmosquitto's own network thread uses
     * select(), which takes no descriptor above FD_SETSIZE (1024), and the
     * subscribers take one each. */
    if (bb__raw_open(x) != 0 || bench_subs_nodes(&x->subs, e, o->online, o->threads, n) != 0)
        goto cleanup;
    for (k = 0, row = x->rows; k < x->n; k++, row++) {
        fprintf(stderr, "bench: stage 1 alone, %zu followers (%zu online), %d posts...\n",
                row->followers, row->targets, BB_SOLO_POSTS);
        if (bb__went(x, bb__solo(x, k, row), "stage 1 alone", row->followers) != 0)
            goto cleanup;
    }
    for (k = 0, row = x->rows; k < x->n; k++, row++) {
        fprintf(stderr, "bench: deliveries, %zu followers (%zu online), %zu posts...\n",
                row->followers, row->targets, (size_t)o->events.v[k]);
        if (bb__went(x, bb__run(x, 20 + k, (size_t)o->events.v[k], 0, row, &row->deliver),
                     "deliveries", row->followers) != 0)
            goto cleanup;
        fprintf(stderr, "bench: the same deliveries published raw...\n");
        if (bb__went(x, bb__raw_run(x, 50 + k, (size_t)o->events.v[k], 0, row, &row->deliver_raw),
                     "raw deliveries", row->followers) != 0)
            goto cleanup;
    }
    for (k = 0, row = x->rows; k < x->n; k++, row++) {
        row->lat_rate = bb__lat_rate(x, k);
        posts = bb__lat_posts(o, row->lat_rate);
        fprintf(stderr, "bench: latency, %zu followers, %.1f posts/s for %.0f s...\n",
                row->followers, row->lat_rate, o->lat_seconds);
        if (bb__went(x, bb__run(x, 30 + k, posts, row->lat_rate, row, &row->latency), "latency",
                     row->followers) != 0)
            goto cleanup;
        fprintf(stderr, "bench: the same latency run published raw...\n");
        if (bb__went(x, bb__raw_run(x, 60 + k, posts, row->lat_rate, row, &row->latency_raw),
                     "raw latency", row->followers) != 0)
            goto cleanup;
        if (o->replicas == 0)
            continue;
        fprintf(stderr, "bench: the same with redis_min_replicas %d...\n", o->replicas);
        if (bb__bridge_with(x, o->replicas) != 0 ||
            bb__went(x, bb__run(x, 40 + k, posts, row->lat_rate, row, &row->latency_wait),
                     "latency with WAIT", row->followers) != 0 ||
            bb__bridge_with(x, 0) != 0)
            goto cleanup;
    }
    if (bench_subs_dropped(x->subs) > 0) {
        fprintf(stderr, "bench: %zu subscribers lost their connection\n",
                bench_subs_dropped(x->subs));
        goto cleanup;
    }
    bb__machine(x, 1);
    rc = x->incomplete ? -1 : 0;
cleanup:
    bb__raw_close(x);
    bench_subs_stop(x->subs);
    x->subs = NULL;
    return rc;
}

/* bench_driver.run with the replicas stopped whatever happened. */
static int bb__runs_all(void *arg, bench_env *e)
{
    int rc = bb__runs(arg, e);

    bb__replicas_stop(arg);
    return rc;
}

/* The options, and the cases' rows. Returns 0, 1 after --help, or -1. */
static int bb__setup(void *arg, bench_common *c, int argc, char **argv)
{
    bb_ctx *x = arg;
    bb_opts *o = &x->o;
    size_t max = 0;
    int k, rc;

    rc = bench_parse("feedpush-bench-bridge", bb__opts, sizeof(bb__opts) / sizeof(bb__opts[0]), o,
                     c, true, argc, argv);
    if (rc != 0)
        return rc;
    if (o->events.n != o->followers.n || (!o->half && o->rates.n != o->followers.n)) {
        fprintf(stderr, "bench: --followers, --events and --rate need as many entries\n");
        return -1;
    }
    x->n = o->followers.n;
    for (k = 0; k < x->n; k++) {
        x->rows[k].followers = (size_t)o->followers.v[k];
        max = x->rows[k].followers > max ? x->rows[k].followers : max;
    }
    /* No more users online than the largest case has followers. */
    o->online = o->online < max ? o->online : max;
    for (k = 0; k < x->n; k++)
        x->rows[k].targets = x->rows[k].followers < o->online ? x->rows[k].followers : o->online;
    return 0;
}

/* bench_driver.header: what runs where. */
static void bb__header(void *arg, const bench_common *c)
{
    const bb_ctx *x = arg;

    bench_print_machine("feedpush-bench-bridge");
    printf("  rabbitmq-server, redis-server, mosquitto + feed_auth.so, feed-bridge and this\n"
           "  process (publisher, MQTT subscribers) all share these CPUs, on loopback.\n"
           "  bridge: %s\n"
           "  followers: SADD followers:a<F> f0..f<F-1> straight into Redis (no follow events)\n"
           "  online: f0..f%zu as MQTT 3.1.1 clients (QoS 1, %d threads); a post of a<F>\n"
           "  reaches min(F, %zu) of them\n",
           c->bridge, x->o.online - 1, x->o.threads, x->o.online);
    if (x->o.half)
        printf("  latency: each case's two runs (feed path, raw) paced at half the feed path's\n"
               "  deliveries/s of that case, as posts/s (/ online / 2), publishes windowed\n");
    else if (x->o.paced)
        printf("  latency: each case's two runs (feed path, raw) at --rate, publishes windowed\n");
    if (x->o.batch > 0)
        printf("  publisher: as feed-gateway's, at most %d messages awaiting their confirms, the\n"
               "  posts meanwhile in one batch message (a post's latency counts its wait)\n",
               x->o.batch);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    static bb_ctx x;
    /* One node pair. */
    const bench_driver d = {"rabbitmq, redis, mosquitto and feed-bridge",
                            1,
                            bb__setup,
                            bb__header,
                            bb__runs_all,
                            bb__print};

    return bench_main(&d, &x.e, &x, argc, argv);
}
