/*
 * bench_env.c - the servers the benches run against, through the test
 * harness and the integration tests' node_env; the Redis questions; paced,
 * windowed publishing; a bridge or scale bench's main().
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

#include "bench_lib.h"
#include "fp_event_batch.h"

#define ENV__BODY_MAX 512

/* ------------------------------------------------------------ start / stop */

/*
 * The temp dir goes under the harness's FP_TEST_TMP when ctest set one
 * (the servers fixture then finds whatever is left), else under TMPDIR;
 * the harness then starts every server below it.
 */
int bench_env_start(bench_env *e, const bench_common *c, bool with_rabbit)
{
    const char *base = getenv("FP_TEST_TMP");

    memset(e, 0, sizeof(*e));
    e->c = c;
#ifdef FP_BENCH_SANITIZED
    /* This build's plugin needs the sanitizer runtimes in mosquitto. */
    if (getenv("FP_MOSQUITTO_PRELOAD") == NULL || *getenv("FP_MOSQUITTO_PRELOAD") == '\0') {
        fprintf(stderr, "bench: a FEEDPUSH_SANITIZE build needs FP_MOSQUITTO_PRELOAD (ctest sets "
                        "it); benchmark a normal build\n");
        return -1;
    }
#endif
    if (access(c->fp_server, X_OK) != 0 || access(c->plugin, R_OK) != 0) {
        fprintf(stderr, "bench: need %s and %s\n", c->fp_server, c->plugin);
        return -1;
    }
    /* Under ctest the rabbitmq fixture's server saves a slow start. */
    e->shared_rabbit = with_rabbit && base != NULL && *base != '\0' &&
                       ft_server_shared(&e->rabbit, "rabbitmq") == 0;
    if (base == NULL || *base == '\0')
        base = getenv("TMPDIR");
    snprintf(e->root, sizeof(e->root), "%s/feedpush-bench.XXXXXX",
             base != NULL && *base != '\0' ? base : "/tmp");
    if (mkdtemp(e->root) == NULL) {
        fprintf(stderr, "bench: mkdtemp %s: %s\n", e->root, strerror(errno));
        e->root[0] = '\0';
        return -1;
    }
    /* rabbitmq and mosquitto run as their own users and must reach it. */
    chmod(e->root, 0755);
    setenv("FP_HARNESS", c->fp_server, 1);
    setenv("FP_TEST_TMP", e->root, 1);
    /* What node_env runs. */
    setenv("FP_PLUGIN", c->plugin, 1);
    if (c->bridge != NULL)
        setenv("FP_BRIDGE", c->bridge, 1);
    snprintf(e->vhost, sizeof(e->vhost), "/");
    if (e->shared_rabbit) {
        snprintf(e->vhost, sizeof(e->vhost), "bench-%ld", (long)getpid());
        return ft_server_vhost(&e->rabbit, e->vhost);
    }
    if (with_rabbit && ft_server_start(&e->rabbit, "rabbitmq", NULL) != 0)
        return -1;
    return 0;
}

int bench_env_stop(bench_env *e, bool ok)
{
    bool keep;
    int rc = 0;

    if (bench_nodes_stop(e) != 0)
        rc = -1;
    if (e->rabbit.port > 0 && !e->shared_rabbit && ft_server_stop(&e->rabbit) != 0)
        rc = -1;
    e->rabbit.port = 0;
    if (e->root[0] == '\0')
        return rc;
    keep = e->c->keep || !ok || rc != 0;
    if (ft_harness_root_drop(e->root, keep) != 0) {
        fprintf(stderr, "bench: processes were left behind under %s\n", e->root);
        rc = -1;
        keep = true;
    }
    if (keep)
        fprintf(stderr, "bench: servers' and bridges' logs kept in %s\n", e->root);
    e->root[0] = '\0';
    return rc;
}

/* ------------------------------------------------------------ node pairs */

int bench_nodes_start(bench_env *e, int n)
{
    ft_node_opts opts = {.rabbit = &e->rabbit, .vhost = e->vhost, .log_level = e->c->log_level};
    struct timeval tv = {5, 0};

    e->nodes_up = true;
    if (ft_node_env_start_opts(&e->nodes, n, &opts) != 0) {
        fprintf(stderr, "bench: %d node pairs did not start, see %s\n", n, e->root);
        return -1;
    }
    e->rc = redisConnectWithTimeout("127.0.0.1", e->nodes.p.redis.port, tv);
    if (e->rc == NULL || e->rc->err != 0) {
        fprintf(stderr, "bench: cannot connect to our redis\n");
        return -1;
    }
    redisSetTimeout(e->rc, tv);
    return 0;
}

int bench_nodes_stop(bench_env *e)
{
    int rc = 0;

    if (e->rc != NULL)
        redisFree(e->rc);
    e->rc = NULL;
    if (e->nodes_up && ft_node_env_stop(&e->nodes) != 0) {
        fprintf(stderr, "bench: the node pairs did not stop cleanly, see %s\n", e->root);
        rc = -1;
    }
    e->nodes_up = false;
    return rc;
}

void bench_env_cpu(const bench_env *e, bench_cpu *out)
{
    long groups[BENCH_MAX_GROUPS];
    int i;

    memset(groups, 0, sizeof(groups));
    groups[BENCH_G_REDIS] = e->nodes.p.redis.pid;
    groups[BENCH_G_RABBIT] = e->rabbit.pid;
    for (i = 0; i < e->nodes.n_nodes; i++) {
        groups[BENCH_G_MOSQ(i)] = e->nodes.node[i].mosq->pid;
        groups[BENCH_G_BRIDGE(i)] = e->nodes.node[i].bridge;
    }
    bench_cpu_sample(groups, BENCH_MAX_GROUPS, out);
}

/* ------------------------------------------------------------ Redis */

int bench_redis_followers(bench_env *e, const char *author, size_t first, size_t n, size_t users)
{
    redisReply *r;
    size_t i;
    int rc = 0;

    redisAppendCommand(e->rc, "DEL followers:%s", author);
    for (i = 0; i < n; i++) /* (hiredis's formats know no %zu) */
        redisAppendCommand(e->rc, "SADD followers:%s f%llu", author,
                           (unsigned long long)((first + i) % users));
    for (i = 0; i <= n; i++) {
        if (redisGetReply(e->rc, (void **)&r) != REDIS_OK) {
            rc = -1;
            break;
        }
        rc = r->type == REDIS_REPLY_ERROR ? -1 : rc;
        freeReplyObject(r);
    }
    if (rc != 0)
        fprintf(stderr, "bench: cannot write followers:%s\n", author);
    return rc;
}

/* Waits until online:<node i> holds its share of users f0..f<users-1>
 * (f<j> on node j % N). 0 or -1. */
static int env__await_online(bench_env *e, size_t users)
{
    long long have = 0;
    int i = 0, k, n = e->nodes.n_nodes;
    size_t want;

    for (k = 0; k < 1000; k++) {
        for (i = 0; i < n; i++) {
            want = users / (size_t)n + ((size_t)i < users % (size_t)n ? 1 : 0);
            have = ft_node_redis_int(&e->nodes, "SCARD online:%s", e->nodes.node[i].id);
            if (have != (long long)want)
                break;
        }
        if (i == n)
            return 0;
        usleep(10000);
    }
    fprintf(stderr, "bench: online:%s has %lld users, not its share of %zu\n", e->nodes.node[i].id,
            have, users);
    return -1;
}

int bench_subs_nodes(bench_subs **out, bench_env *e, size_t users, int threads, size_t lat_capacity)
{
    bench_subs_cfg sc = {.alg = FP_JWT_HS256,
                         .key = e->nodes.p.secret,
                         .key_len = sizeof(e->nodes.p.secret),
                         .n_nodes = e->nodes.n_nodes,
                         .users = users,
                         .threads = threads,
                         .timeout_ms = 60000,
                         .lat_capacity = lat_capacity};
    int i;

    for (i = 0; i < sc.n_nodes; i++)
        sc.ports[i] = ft_node_port(&e->nodes, i + 1);
    if (bench_subs_start(out, &sc) != 0)
        return -1;
    return env__await_online(e, users);
}

/* ------------------------------------------------------------ publishing */

void bench_post_text(char *buf, size_t len, int phase, size_t seq, int64_t ns)
{
    snprintf(buf, len, "fp:%d:%zu:%lld", phase, seq, (long long)ns);
}

int bench_post_event(char *buf, size_t len, const char *id, size_t author, const char *text)
{
    return snprintf(buf, len,
                    "{\"type\":\"post.created\",\"post\":{\"id\":\"%s\",\"author_id\":\"a%zu\","
                    "\"text\":\"%s\",\"created_at\":%lld}}",
                    id, author, text, (long long)fp_time_real_ms());
}

/* Post seq of phase by a<author>, its text carrying ns, as a
 * post.created event into body (ENV__BODY_MAX bytes). */
static void env__body(char *body, int phase, size_t seq, size_t author, int64_t ns)
{
    char text[64], id[FP_ID_BUFSZ];

    bench_post_text(text, sizeof(text), phase, seq, ns);
    snprintf(id, sizeof(id), "p%d-%zu", phase, seq);
    bench_post_event(body, ENV__BODY_MAX, id, author, text);
}

/* Publishes one post.created event without waiting. Returns 0 or -1. */
static int env__send(ft_event_pub *p, int phase, size_t seq, size_t author, int64_t ns)
{
    char body[ENV__BODY_MAX];

    env__body(body, phase, seq, author, ns);
    return ft_event_pub_post(p, "post.created", body);
}

/* Records in pt that post i was published at now (due: its slot when
 * paced). Returns now. */
static int64_t env__stamp(bench_pubtimes *pt, size_t i, double rate, int64_t due)
{
    int64_t now = fp_time_mono_ns();

    if (rate > 0 && now - due > pt->lag_ns)
        pt->lag_ns = now - due;
    if (i == 0)
        pt->first_ns = now;
    pt->last_ns = now;
    return now;
}

/* Waits for the last confirm, then fills pt's confirmed_ns and rate for
 * n posts. 0 or -1. */
static int env__finish(ft_event_pub *p, size_t n, bench_pubtimes *pt)
{
    if (ft_event_pub_wait(p, p->published, BENCH_STALL_MS) != 0)
        return -1;
    pt->confirmed_ns = fp_time_mono_ns();
    if (n > 1 && pt->last_ns > pt->first_ns)
        pt->rate = (double)(n - 1) / ((double)(pt->last_ns - pt->first_ns) / 1e9);
    return 0;
}

int64_t bench_pace(int64_t start, size_t i, double rate)
{
    int64_t due = start + (int64_t)((double)i * 1e9 / rate);
    struct timespec ts;

    ts.tv_sec = (time_t)(due / 1000000000);
    ts.tv_nsec = (long)(due % 1000000000);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
    return due;
}

int bench_publish(bench_env *e, int window, double rate, int phase, size_t n, size_t author0,
                  size_t n_authors, bench_pubtimes *pt)
{
    ft_event_pub *p = &e->nodes.pub;
    int64_t start = fp_time_mono_ns(), due = start, sent;
    size_t i;

    memset(pt, 0, sizeof(*pt));
    for (i = 0; i < n; i++) {
        if (p->published - p->confirmed >= (uint64_t)window &&
            ft_event_pub_wait(p, p->published - (uint64_t)window + 1, BENCH_STALL_MS) != 0)
            return -1;
        if (rate > 0)
            due = bench_pace(start, i, rate);
        sent = env__stamp(pt, i, rate, due);
        if (env__send(p, phase, i, author0 + i % n_authors, sent) != 0)
            return -1;
    }
    return env__finish(p, n, pt);
}

/* The batches of bench_publish_batched: up to ENV__BATCH_MAX events. */
#define ENV__BATCH_MAX 64

typedef struct {
    char body[ENV__BATCH_MAX][ENV__BODY_MAX];
    const char *bodies[ENV__BATCH_MAX];
    size_t lens[ENV__BATCH_MAX];
    size_t n;
} env__batch;

/* Publishes what q holds: one event as itself, several as one batch
 * message (fp_event_batch_join), and empties q. 0 or -1. */
static int env__flush(ft_event_pub *p, env__batch *q)
{
    size_t len, i;
    char *batch;
    int rc;

    if (q->n == 1) {
        q->n = 0;
        return ft_event_pub_post(p, "post.created", q->body[0]);
    }
    for (i = 0; i < q->n; i++) {
        q->bodies[i] = q->body[i];
        q->lens[i] = strlen(q->body[i]);
    }
    batch = fp_event_batch_join(q->bodies, q->lens, q->n, &len);
    q->n = 0;
    if (batch == NULL)
        return -1;
    rc = ft_event_pub_post(p, FP_EVENT_BATCH_TYPE, batch);
    free(batch);
    return rc;
}

/* While q holds events and fewer than in_flight messages await their
 * confirms, publishes them; with in_flight reached, waits for a confirm
 * until deadline (monotonic ns; one past reads the confirms that came, as
 * the gateway's publisher does whenever it runs). 0 or -1. */
static int env__pump(ft_event_pub *p, env__batch *q, int in_flight, int64_t deadline)
{
    int rc;

    for (;;) {
        if (q->n > 0 && p->published - p->confirmed < (uint64_t)in_flight) {
            if (env__flush(p, q) != 0)
                return -1;
            continue;
        }
        if (q->n == 0)
            return 0;
        rc = ft_event_pub_wait_until(p, p->confirmed + 1, deadline);
        if (rc != 0)
            return rc < 0 ? -1 : 0; /* the deadline, with no room yet */
    }
}

int bench_publish_batched(bench_env *e, int in_flight, double rate, int phase, size_t n,
                          size_t author0, size_t n_authors, bench_pubtimes *pt)
{
    ft_event_pub *p = &e->nodes.pub;
    int64_t start = fp_time_mono_ns(), due, now;
    env__batch *q = calloc(1, sizeof(*q));
    size_t i;
    int rc = -1;

    if (q == NULL)
        return -1;
    memset(pt, 0, sizeof(*pt));
    for (i = 0; i < n; i++) {
        due = rate > 0 ? start + (int64_t)((double)i * 1e9 / rate) : 0;
        /* A full batch waits for room (as the gateway's POSTs would);
         * then the queued posts go out while the post waits for its slot. */
        if (q->n == ENV__BATCH_MAX &&
            (env__pump(p, q, in_flight, fp_time_mono_ns() + BENCH_STALL_MS * 1000000LL) != 0 ||
             q->n == ENV__BATCH_MAX))
            goto done;
        if (env__pump(p, q, in_flight, due) != 0)
            goto done;
        if (rate > 0)
            bench_pace(start, i, rate);
        now = env__stamp(pt, i, rate, due);
        env__body(q->body[q->n++], phase, i, author0 + i % n_authors, now);
        if (env__pump(p, q, in_flight, 0) != 0)
            goto done;
    }
    if (env__pump(p, q, in_flight, fp_time_mono_ns() + BENCH_STALL_MS * 1000000LL) != 0 || q->n > 0)
        goto done;
    rc = env__finish(p, n, pt);
done:
    free(q);
    return rc;
}

/* ------------------------------------------------------------ main */

int bench_main(const bench_driver *d, bench_env *e, void *arg, int argc, char **argv)
{
    static bench_common c;
    int64_t t0;
    int rc;

    rc = d->setup(arg, &c, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 1;
    d->header(arg, &c);
    t0 = fp_time_mono_ns();
    signal(SIGPIPE, SIG_IGN);
    mosquitto_lib_init();
    fprintf(stderr, "bench: starting %s...\n", d->servers);
    rc = bench_env_start(e, &c, true);
    if (rc == 0 && d->nodes > 0)
        rc = bench_nodes_start(e, d->nodes);
    if (rc == 0) {
        fprintf(stderr, "bench: servers up after %.1f s (temp dir %s)\n",
                (double)(fp_time_mono_ns() - t0) / 1e9, e->root);
        rc = d->run(arg, e);
    }
    if (bench_env_stop(e, rc == 0) != 0) {
        fprintf(stderr, "bench: something did not stop cleanly\n");
        rc = -1;
    }
    mosquitto_lib_cleanup();
    d->print(arg);
    printf("\n  total %.1f s\n", (double)(fp_time_mono_ns() - t0) / 1e9);
    if (rc != 0) {
        fprintf(stderr, "bench: the run did not complete\n");
        return 1;
    }
    return 0;
}
