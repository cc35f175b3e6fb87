/*
 * auth_bench.c - feedpush-bench-auth (docs/benchmarks.md): the cost of
 * feed_auth.so's ACL check; authenticated connects/s per algorithm, on a
 * mosquitto loading the plugin with fresh keys or on the broker at --port;
 * QoS 1 messages end to end through the first broker.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>

#include "bench_lib.h"
#include "feed_auth.h"

#define AUTH__MAX_ALGS 3
#define AUTH__MAX_INFLIGHT 256
#define AUTH__MAX_THREADS 64 /* the --threads maximum */
#define AUTH__MAX_MINTERS 16
#define AUTH__IDS 1024     /* distinct users of the ACL cases (a power of two) */
#define AUTH__ERROR (-1)   /* a connect's latency: no CONNACK */
#define AUTH__REFUSED (-2) /* a connect's latency: CONNACK != 0 */

typedef struct {
    size_t connections, pk_connections, warmup, messages;
    int threads, inflight, timeout_ms, window, port;
    double acl_iterations;
    const char *algs, *host, *key;
} auth_opts;

static const bench_opt auth__opts[] = {
    {"connections", 'n', "N", BENCH_OPT_SIZE, offsetof(auth_opts, connections), 1, 1e7, "20000",
     "300", "measured HS256 connects"},
    {"pk-connections", 0, "N", BENCH_OPT_SIZE, offsetof(auth_opts, pk_connections), 1, 1e7, "5000",
     "50", "measured RS256 / ES256 connects"},
    {"warmup", 0, "N", BENCH_OPT_SIZE, offsetof(auth_opts, warmup), 0, 1e6, "1000", "20",
     "connects before the clock starts"},
    {"threads", 't', "N", BENCH_OPT_INT, offsetof(auth_opts, threads), 1, 64, "2", NULL,
     "client threads"},
    {"inflight", 'w', "N", BENCH_OPT_INT, offsetof(auth_opts, inflight), 1, AUTH__MAX_INFLIGHT, "8",
     NULL, "connects in progress per thread"},
    {"timeout-ms", 0, "N", BENCH_OPT_INT, offsetof(auth_opts, timeout_ms), 1, 600000, "10000", NULL,
     "per connect, until the CONNACK"},
    {"alg", 'a', "LIST", BENCH_OPT_STRING, offsetof(auth_opts, algs), 0, 0, "HS256,RS256", NULL,
     "HS256, RS256, ES256, comma-separated"},
    {"messages", 'm', "N", BENCH_OPT_SIZE, offsetof(auth_opts, messages), 0, 1e8, "20000", "200",
     "end-to-end messages, 0 = skip"},
    {"window", 0, "N", BENCH_OPT_INT, offsetof(auth_opts, window), 1, 1000, "200", NULL,
     "end-to-end messages in flight"},
    {"acl-iterations", 0, "N", BENCH_OPT_DOUBLE, offsetof(auth_opts, acl_iterations), 0, 1e9,
     "5000000", "10000", "calls per ACL case, 0 = skip"},
    {"port", 'p', "N", BENCH_OPT_INT, offsetof(auth_opts, port), 1, 65535, NULL, NULL,
     "an existing broker's MQTT port (nothing started; needs --key)"},
    {"host", 0, "H", BENCH_OPT_STRING, offsetof(auth_opts, host), 0, 0, "127.0.0.1", NULL,
     "the existing broker's address"},
    {"key", 'k', "FILE", BENCH_OPT_STRING, offsetof(auth_opts, key), 0, 0, NULL, NULL,
     "HS256 secret or RS256/ES256 private key to mint with; one --alg"},
};

/* One algorithm's run: the broker under test, the key its tokens are
 * signed with, and what was measured. */
typedef struct {
    fp_jwt_alg alg;
    const char *host;
    int port;
    long pid; /* ours: its process group, else 0 */
    unsigned char *key;
    size_t key_len;
    bool ran;
    size_t ok, refused, errors; /* refused: CONNACK != 0; errors: no CONNACK */
    double seconds, p50_ms, p99_ms, max_ms, mint_s;
    double busy, broker, client, redis, other; /* CPUs during the storm */
    long received;                             /* end to end; -1: not run */
    double e2e_s;
} auth_alg;

/* ------------------------------------------------------------ ACL */

typedef struct {
    const char *what;
    fp_role role;
    int access;
    const char *topic; /* NULL: a feed, next users after the user's own */
    size_t next;
    bool expect;
    bool callback; /* fa_on_acl_check() among the sessions, not fa_acl_allowed() */
} acl__case;

static const acl__case acl__cases[] = {
    {"user    READ      feed/<own>", FP_ROLE_USER, FA_ACL_READ, NULL, 0, true, false},
    {"user    SUBSCRIBE feed/<own>", FP_ROLE_USER, FA_ACL_SUBSCRIBE, NULL, 0, true, false},
    {"user    READ      ribbon", FP_ROLE_USER, FA_ACL_READ, "ribbon", 0, true, false},
    {"service WRITE     feed/<id>", FP_ROLE_SERVICE, FA_ACL_WRITE, NULL, 1, true, false},
    {"user    SUBSCRIBE feed/<other>", FP_ROLE_USER, FA_ACL_SUBSCRIBE, NULL, 1, false, false},
    {"user    SUBSCRIBE feed/#", FP_ROLE_USER, FA_ACL_SUBSCRIBE, "feed/#", 0, false, false},
    {"user    WRITE     feed/<own>", FP_ROLE_USER, FA_ACL_WRITE, NULL, 0, false, false},
    {"service SUBSCRIBE feed/<id>", FP_ROLE_SERVICE, FA_ACL_SUBSCRIBE, NULL, 1, false, false},
    {"user    READ      feed/<own>", FP_ROLE_USER, FA_ACL_READ, NULL, 0, true, true},
};

/* What the cases run on: the feeds of UUID-shaped user ids (36 characters,
 * at feeds[i] + 5), and the plugin's session table of n fake clients. */
typedef struct {
    char feeds[AUTH__IDS][FP_ID_BUFSZ + 8];
    fa_plugin pl;
    char *clients; /* n bytes: their addresses are the sessions' clients */
    size_t n;
} acl__env;

/* Fills the feeds (i times a large odd constant spread over an id's
 * fields) and the session table of a (zeroed). Returns 0 or -1. */
static int acl__env_init(acl__env *a, size_t n)
{
    fp_jwt_claims c;
    char cid[32];
    unsigned x;
    size_t i;

    for (i = 0; i < AUTH__IDS; i++) {
        x = (unsigned)i * 2654435761u;
        snprintf(a->feeds[i], sizeof(a->feeds[i]), "feed/%08x-%04x-4%03x-a%03x-%012x", x,
                 (unsigned)i & 0xffff, x & 0xfff, (x >> 12) & 0xfff, x ^ 0x5bd1e995u);
    }
    a->n = n;
    a->clients = malloc(n);
    for (i = 0; i < n && a->clients != NULL; i++) {
        memset(&c, 0, sizeof(c));
        snprintf(c.sub, sizeof(c.sub), "%s", a->feeds[i & (AUTH__IDS - 1)] + 5);
        c.exp = 4102444800; /* 2100 */
        snprintf(cid, sizeof(cid), "c%zu", i);
        if (fa_sessions_add(&a->pl.sessions, (struct mosquitto *)(a->clients + i), cid, &c) != 0)
            return -1;
    }
    return a->clients != NULL ? 0 : -1;
}

/* Times iters calls of case c, three times. Returns the median ns per
 * call, or -1 when an answer was wrong. */
static double acl__time(acl__env *a, const acl__case *c, long iters)
{
    struct mosquitto_evt_acl_check ev;
    const char *topic;
    double ns[3];
    size_t i, hits;
    long it;
    int64_t t0;
    int rep;

    memset(&ev, 0, sizeof(ev));
    ev.access = c->access;
    for (rep = 0; rep < 3; rep++) {
        hits = 0;
        t0 = fp_time_mono_ns();
        for (it = 0; it < iters && !c->callback; it++) {
            i = (size_t)it & (AUTH__IDS - 1);
            topic = c->topic != NULL ? c->topic : a->feeds[(i + c->next) & (AUTH__IDS - 1)];
            hits += fa_acl_allowed(c->role, a->feeds[i] + 5, topic, c->access);
        }
        for (it = 0; it < iters && c->callback; it++) {
            i = ((size_t)it * 7919) % a->n;
            ev.client = (struct mosquitto *)(a->clients + i);
            ev.topic = a->feeds[i & (AUTH__IDS - 1)];
            hits += fa_on_acl_check(MOSQ_EVT_ACL_CHECK, &ev, &a->pl) == MOSQ_ERR_SUCCESS;
        }
        ns[rep] = (double)(fp_time_mono_ns() - t0) / (double)iters;
        if (hits != (c->expect ? (size_t)iters : 0))
            return -1.0;
    }
    return bench_median(ns, 3);
}

/* Runs and prints the ACL micro-benchmark. Returns 0, or -1 when a rule
 * gave an unexpected answer. */
static int auth__acl(const auth_opts *o)
{
    size_t i, n = o->connections > AUTH__IDS ? o->connections : AUTH__IDS;
    long iters = (long)o->acl_iterations;
    const acl__case *c;
    char note[64];
    acl__env *a;
    double ns;
    int rc = -1;

    if (iters <= 0)
        return 0;
    a = calloc(1, sizeof(*a));
    if (a == NULL || acl__env_init(a, n) != 0)
        goto out;
    rc = 0;
    snprintf(note, sizeof(note), "   (lookup among %zu sessions + rule)", n);
    printf("\nACL check cost (%ld calls per case, median of 3; 36-char user ids)\n", iters);
    printf("  %-46s %-8s %10s\n", "function and case", "result", "ns/check");
    for (i = 0; i < sizeof(acl__cases) / sizeof(acl__cases[0]); i++) {
        c = &acl__cases[i];
        ns = acl__time(a, c, iters);
        rc = ns < 0 ? -1 : rc;
        if (ns < 0 && c->callback)
            printf("  fa_on_acl_check (callback) WRONG\n");
        else if (ns < 0)
            printf("  fa_acl_allowed  %-30s %-8s %10s\n", c->what, "WRONG", "-");
        else
            printf("  %-15s %-30s %-8s %10.1f%s\n",
                   c->callback ? "fa_on_acl_check" : "fa_acl_allowed", c->what,
                   c->expect ? "allowed" : "denied", ns, c->callback ? note : "");
    }
    fflush(stdout);
out:
    if (a != NULL) {
        fa_sessions_clear(&a->pl.sessions);
        free(a->clients);
    }
    free(a);
    return rc;
}

/* ------------------------------------------------------------ the connect storm */

/* Work for a pool of threads: items i < n, user u<first + i> with
 * tokens[first + i]. Minting fills tokens; a storm connects with them and
 * fills lat[i]: ns to the CONNACK, AUTH__ERROR or AUTH__REFUSED. */
typedef struct {
    const auth_opts *o;
    const auth_alg *a;
    char **tokens;
    size_t first, n;
    atomic_size_t next; /* the next item to take */
    atomic_bool failed;
    int64_t *lat;
} auth__job;

/* One client: idle while m is NULL, then waiting for its CONNACK (connack
 * -1), then, in a storm, for the broker to close the connection. */
typedef struct {
    struct mosquitto *m;
    size_t idx;
    int64_t t0, t_connack; /* before mosquitto_connect; the CONNACK */
    int connack;
} auth__slot;

/* MQTT DISCONNECT: packet type 14, no flags, remaining length 0. */
static const unsigned char auth__disconnect[2] = {0xe0, 0x00};

/* Runs fn(j) on n threads at once and waits for them. Returns 0, or -1
 * when one could not start (those started still do all the work). */
static int auth__threads(int n, void *(*fn)(void *), auth__job *j)
{
    pthread_t tids[AUTH__MAX_THREADS];
    int i, started = 0;

    while (started < n && pthread_create(&tids[started], NULL, fn, j) == 0)
        started++;
    for (i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    return started == n ? 0 : -1;
}

/* One minting thread: the next token until none is left or one failed. */
static void *auth__mint_thread(void *arg)
{
    auth__job *j = arg;
    char sub[FP_ID_BUFSZ];
    size_t i;

    for (;;) {
        i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n || atomic_load(&j->failed))
            return NULL;
        snprintf(sub, sizeof(sub), "u%zu", i);
        if (bench_token(j->a->alg, j->a->key, j->a->key_len, sub, FP_ROLE_USER, &j->tokens[i]))
            atomic_store(&j->failed, true);
    }
}

static void auth__on_connect(struct mosquitto *m, void *obj, int rc)
{
    auth__slot *s = obj;

    (void)m;
    s->connack = rc;
    s->t_connack = fp_time_mono_ns();
}

/* Frees the slot's client, closing its socket if still open. */
static void auth__slot_free(auth__slot *s)
{
    mosquitto_destroy(s->m);
    s->m = NULL;
}

/* Connects a client in slot s to a's broker as user: TCP connect, CONNECT
 * queued. s->m stays NULL when that failed. */
static void auth__slot_connect(auth__slot *s, const auth_alg *a, const char *cid, const char *user,
                               const char *token)
{
    s->connack = -1;
    s->m = mosquitto_new(cid, true, s);
    if (s->m == NULL)
        return;
    mosquitto_connect_callback_set(s->m, auth__on_connect);
    s->t0 = fp_time_mono_ns();
    if (mosquitto_username_pw_set(s->m, user, token) != MOSQ_ERR_SUCCESS ||
        mosquitto_connect(s->m, a->host, a->port, 60) != MOSQ_ERR_SUCCESS)
        auth__slot_free(s);
}

/* Starts the storm's next connect in slot s. Returns false when none is left. */
static bool auth__slot_start(auth__job *j, auth__slot *s)
{
    size_t i = atomic_fetch_add(&j->next, 1);
    char cid[64], user[32];

    if (i >= j->n)
        return false;
    snprintf(cid, sizeof(cid), "%s-%zu", fp_jwt_alg_name(j->a->alg), j->first + i);
    snprintf(user, sizeof(user), "u%zu", j->first + i);
    s->idx = i;
    auth__slot_connect(s, j->a, cid, user, j->tokens[j->first + i]);
    return true;
}

/*
 * The CONNACK arrived: records it and, when accepted, writes DISCONNECT
 * itself. mosquitto_disconnect() would close the socket right after it,
 * leaving the TIME_WAIT here: 20,000 connects on one host then fill the
 * ephemeral port range. The broker closes first, and the slot waits.
 */
static void auth__slot_connack(auth__job *j, auth__slot *s)
{
    if (s->connack != 0) {
        j->lat[s->idx] = AUTH__REFUSED;
        if (mosquitto_socket(s->m) < 0)
            auth__slot_free(s);
        return;
    }
    j->lat[s->idx] = s->t_connack - s->t0;
    if (write(mosquitto_socket(s->m), auth__disconnect, 2) != 2)
        auth__slot_free(s);
}

/* Handles poll's verdict on slot s. */
static void auth__slot_event(auth__job *j, auth__slot *s, short revents)
{
    int64_t timeout_ns = (int64_t)j->o->timeout_ms * 1000000;
    int rc = MOSQ_ERR_SUCCESS;

    if (s->connack >= 0) {
        /* Nothing more is sent to us: readable means the broker closed. */
        if (revents != 0 || fp_time_mono_ns() - s->t_connack > timeout_ns)
            auth__slot_free(s);
        return;
    }
    if (revents & POLLOUT)
        rc = mosquitto_loop_write(s->m, 1);
    if (rc == MOSQ_ERR_SUCCESS && (revents & (POLLIN | POLLERR | POLLHUP)))
        rc = mosquitto_loop_read(s->m, 1);
    if (s->connack >= 0)
        auth__slot_connack(j, s);
    else if (rc != MOSQ_ERR_SUCCESS || fp_time_mono_ns() - s->t0 > timeout_ns)
        auth__slot_free(s);
}

/* One client thread: keeps o->inflight connects going until none is left,
 * polling all their sockets at once (fds[i] is slot i's, -1 when idle). */
static void *auth__storm_thread(void *arg)
{
    auth__job *j = arg;
    auth__slot slots[AUTH__MAX_INFLIGHT];
    struct pollfd fds[AUTH__MAX_INFLIGHT];
    int i, busy, k = j->o->inflight;
    bool exhausted = false;

    memset(slots, 0, sizeof(slots));
    for (;;) {
        for (i = 0, busy = 0; i < k; i++) {
            while (slots[i].m == NULL && !exhausted)
                exhausted = !auth__slot_start(j, &slots[i]);
            fds[i].fd = slots[i].m != NULL ? mosquitto_socket(slots[i].m) : -1;
            fds[i].events = POLLIN;
            if (fds[i].fd >= 0 && slots[i].connack < 0 && mosquitto_want_write(slots[i].m))
                fds[i].events |= POLLOUT;
            fds[i].revents = 0;
            busy += fds[i].fd >= 0;
        }
        if (busy == 0 || (poll(fds, (nfds_t)k, 100) < 0 && errno != EINTR))
            break;
        for (i = 0; i < k; i++) {
            if (slots[i].m != NULL)
                auth__slot_event(j, &slots[i], fds[i].revents);
        }
    }
    for (i = 0; i < k; i++) {
        if (slots[i].m != NULL)
            auth__slot_free(&slots[i]);
    }
    return NULL;
}

/* Connects once per token first..first+n-1 and fills lat[0..n-1]. Returns
 * the seconds it took, or -1 when a thread could not start. */
static double auth__storm(const auth_opts *o, const auth_alg *a, char **tokens, size_t first,
                          size_t n, int64_t *lat)
{
    auth__job j = {.o = o, .a = a, .tokens = tokens, .first = first, .n = n, .lat = lat};
    int64_t t0 = fp_time_mono_ns();
    size_t i;

    for (i = 0; i < n; i++)
        lat[i] = AUTH__ERROR;
    if (auth__threads(o->threads, auth__storm_thread, &j) != 0)
        return -1.0;
    return (double)(fp_time_mono_ns() - t0) / 1e9;
}

/* Mints the tokens (measured + warm-up) on a thread per CPU (RSA signing is
 * slow), runs the warm-up storm, then the measured one with the CPU
 * sampled around it. Returns 0 or -1. */
static int auth__connects(const auth_opts *o, auth_alg *a, long redis_pid)
{
    size_t n = a->alg == FP_JWT_HS256 ? o->connections : o->pk_connections, i, k = 0;
    long groups[2] = {a->pid, redis_pid}, cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t t0 = fp_time_mono_ns(), *lat = calloc(n + o->warmup + 1, sizeof(*lat));
    auth__job mint = {.a = a, .n = n + o->warmup};
    bench_cpu c0, c1, d;
    double wall;
    int rc = -1;

    fprintf(stderr, "bench: %s: minting %zu tokens...\n", fp_jwt_alg_name(a->alg), mint.n);
    cpus = cpus < 1 ? 1 : cpus > AUTH__MAX_MINTERS ? AUTH__MAX_MINTERS : cpus;
    mint.tokens = calloc(mint.n + 1, sizeof(*mint.tokens));
    if (lat == NULL || mint.tokens == NULL ||
        auth__threads((int)cpus, auth__mint_thread, &mint) != 0 || atomic_load(&mint.failed))
        goto out;
    a->mint_s = (double)(fp_time_mono_ns() - t0) / 1e9;
    if (o->warmup > 0 && auth__storm(o, a, mint.tokens, n, o->warmup, lat + n) < 0)
        goto out;
    fprintf(stderr, "bench: %s: %zu connects...\n", fp_jwt_alg_name(a->alg), n);
    bench_cpu_sample(groups, 2, &c0);
    a->seconds = auth__storm(o, a, mint.tokens, 0, n, lat);
    if (a->seconds < 0)
        goto out;
    bench_cpu_sample(groups, 2, &c1);
    for (i = 0; i < n; i++) {
        if (lat[i] >= 0)
            lat[k++] = lat[i];
        else if (lat[i] == AUTH__REFUSED)
            a->refused++;
    }
    a->ok = k;
    a->errors = n - k - a->refused;
    bench_sort_i64(lat, k);
    a->p50_ms = bench_pct_ms(lat, k, 50.0);
    a->p99_ms = bench_pct_ms(lat, k, 99.0);
    a->max_ms = k > 0 ? (double)lat[k - 1] / 1e6 : 0.0;
    bench_cpu_diff(&c0, &c1, &d);
    wall = (double)d.t_ns / 1e9;
    a->busy = d.machine / wall;
    a->client = d.self.cpu / wall;
    a->broker = d.g[0].cpu / wall;
    a->redis = d.g[1].cpu / wall;
    a->other = a->busy - a->client - a->broker - a->redis;
    a->other = a->other > 0 ? a->other : 0;
    a->ran = true;
    rc = 0;
out:
    for (i = 0; mint.tokens != NULL && i < mint.n; i++)
        free(mint.tokens[i]);
    free(mint.tokens);
    free(lat);
    return rc;
}

/* ------------------------------------------------------------ end to end */

/* A service client publishes --messages QoS 1 messages to feed/f0, at most
 * --window unreceived (the broker drops beyond its queue limit); user f0 of
 * the subscriber pool receives them. Timed from the first publish to the
 * last receipt into a->e2e_s. Returns the receipts, or -1. */
static long auth__e2e(const auth_opts *o, auth_alg *a)
{
    bench_subs_cfg sc = {a->alg, a->key, a->key_len, a->host, {a->port}, 1, 1, 1, 5000};
    char payload[128], text[64], *tok = NULL;
    bench_subs *subs = NULL;
    auth__slot pub = {0};
    int64_t t0, stall;
    long got = -1;
    size_t i;
    int k;

    if (bench_subs_start(&subs, &sc) != 0 || bench_subs_phase(subs, 1, 0) != 0 ||
        bench_token(a->alg, a->key, a->key_len, "bench-svc", FP_ROLE_SERVICE, &tok) != 0)
        goto out;
    auth__slot_connect(&pub, a, "bench-e2e-pub", "bench-svc", tok);
    for (k = 0; k < 500 && pub.m != NULL && pub.connack < 0; k++)
        mosquitto_loop(pub.m, 10, 1);
    if (pub.m == NULL || pub.connack != 0 || mosquitto_loop_start(pub.m) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "bench: e2e publisher not accepted (CONNACK %d)\n", pub.connack);
        goto out;
    }
    t0 = fp_time_mono_ns();
    for (i = 0; i < o->messages; i++) {
        stall = fp_time_mono_ns() + 10000000000LL;
        while (i >= bench_subs_received(subs, NULL) + (size_t)o->window &&
               fp_time_mono_ns() < stall)
            usleep(50);
        bench_post_text(text, sizeof(text), 1, i, fp_time_mono_ns());
        snprintf(payload, sizeof(payload), "{\"text\":\"%s\",\"kind\":\"bench\"}", text);
        if (mosquitto_publish(pub.m, NULL, "feed/f0", (int)strlen(payload), payload, 1, false) !=
            MOSQ_ERR_SUCCESS)
            break;
    }
    got = (long)bench_subs_await(subs, i, NULL, NULL);
    a->e2e_s = (double)(bench_subs_last_ns(subs) - t0) / 1e9;
    a->e2e_s = a->e2e_s > 0 ? a->e2e_s : 0.0;
out:
    if (pub.m != NULL) {
        mosquitto_disconnect(pub.m);
        mosquitto_loop_stop(pub.m, false);
        auth__slot_free(&pub);
    }
    free(tok);
    bench_subs_stop(subs);
    return got;
}

/* ------------------------------------------------------------ output */

/* The connect table, the CPU table (own: the servers are ours) and the
 * end-to-end line. */
static void auth__print(const auth_opts *o, const auth_alg *algs, int n)
{
    const auth_alg *a;

    printf("\nAuthenticated connects (CONNECT -> CONNACK 0 -> DISCONNECT)\n");
    printf("  %-6s %8s %7s %7s %8s %11s %8s %8s %8s %8s\n", "alg", "ok", "refused", "errors",
           "seconds", "connects/s", "p50 ms", "p99 ms", "max ms", "mint s");
    for (a = algs; a < algs + n; a++) {
        if (!a->ran)
            printf("  %-6s (not run)\n", fp_jwt_alg_name(a->alg));
        else
            printf("  %-6s %8zu %7zu %7zu %8.2f %11.0f %8.2f %8.2f %8.2f %8.1f\n",
                   fp_jwt_alg_name(a->alg), a->ok, a->refused, a->errors, a->seconds,
                   a->seconds > 0 ? (double)a->ok / a->seconds : 0.0, a->p50_ms, a->p99_ms,
                   a->max_ms, a->mint_s);
    }
    printf("\nCPU during the measured connects (1.00 = one CPU busy all the time)\n");
    printf("  %-6s %8s %8s %8s %8s %8s\n", "alg", "machine", "broker", "clients", "redis", "other");
    for (a = algs; a < algs + n; a++) {
        if (a->ran && o->port == 0)
            printf("  %-6s %8.2f %8.2f %8.2f %8.2f %8.2f\n", fp_jwt_alg_name(a->alg), a->busy,
                   a->broker, a->client, a->redis, a->other);
        else if (a->ran)
            printf("  %-6s %8.2f %8s %8.2f %8s %8s\n", fp_jwt_alg_name(a->alg), a->busy, "?",
                   a->client, "?", "?");
    }
    printf("  broker = mosquitto with the plugin (its Redis thread included); other = the rest\n"
           "  of the machine: well above 0, the run competed with something else.\n");
    if (algs[0].received < 0)
        return;
    printf("\nEnd to end (service publishes QoS 1 to feed/<user>, user subscribed QoS 1, "
           "<= %d in flight)\n",
           o->window);
    printf("  %8s %9s %8s %11s\n", "sent", "received", "seconds", "messages/s");
    printf("  %8zu %9ld %8.2f %11.0f\n", o->messages, algs[0].received, algs[0].e2e_s,
           algs[0].e2e_s > 0 ? (double)algs[0].received / algs[0].e2e_s : 0.0);
}

/* ------------------------------------------------------------ main */

/* Fresh key material for a->alg in the temp dir (HS256: a secret; RS256,
 * ES256: a key pair from the openssl CLI) and a mosquitto loading the
 * plugin with its defaults but for those. priv: the key to mint with. */
static int auth__broker_start(const bench_env *e, int redis_port, auth_alg *a, ft_server *s,
                              char *priv, size_t len)
{
    const char *name = fp_jwt_alg_name(a->alg);
    bool ec = a->alg == FP_JWT_ES256;
    char pub[PATH_MAX + 64], conf[PATH_MAX + 64];
    char *gen[] = {"openssl",    "genpkey",
                   "-algorithm", ec ? "EC" : "RSA",
                   "-pkeyopt",   ec ? "ec_paramgen_curve:P-256" : "rsa_keygen_bits:2048",
                   "-out",       priv,
                   NULL};
    char *extract[] = {"openssl", "pkey", "-in", priv, "-pubout", "-out", pub, NULL};
    unsigned char secret[48];
    FILE *f;

    snprintf(priv, len, "%s/%s.key", e->root, name);
    snprintf(pub, sizeof(pub), "%s/%s.pub", e->root, name);
    if (a->alg == FP_JWT_HS256) {
        snprintf(pub, sizeof(pub), "%s", priv);
        if (ft_secret_write(priv, secret, sizeof(secret)) != 0)
            return -1;
    } else if (bench_run(gen, true) != 0 || bench_run(extract, true) != 0 ||
               chmod(pub, 0644) != 0) {
        fprintf(stderr, "bench: openssl could not make a %s key pair\n", name);
        return -1;
    }
    snprintf(conf, sizeof(conf), "%s/bench-%s.conf", e->root, name);
    f = fopen(conf, "w");
    if (f == NULL)
        return -1;
    fprintf(f,
            "plugin %s\nplugin_opt_alg %s\nplugin_opt_key_file %s\nplugin_opt_node_id bench-%s\n"
            "plugin_opt_redis_host 127.0.0.1\nplugin_opt_redis_port %d\n",
            e->c->plugin, name, pub, name, redis_port);
    if (fclose(f) != 0 || ft_server_start(s, "mosquitto", conf) != 0)
        return -1;
    a->port = s->port;
    a->pid = s->pid;
    return 0;
}

/* The run on algorithm a: its key (--key, or fresh material for a broker of
 * ours), the connect storm and, when e2e, the end-to-end run. 0 or -1. */
static int auth__alg(const auth_opts *o, bench_env *e, const ft_server *redis, auth_alg *a,
                     bool e2e)
{
    char priv[PATH_MAX + 64], err[512];
    ft_server s;
    int rc = -1;

    memset(&s, 0, sizeof(s));
    snprintf(priv, sizeof(priv), "%s", o->key != NULL ? o->key : "");
    if (o->port == 0 && auth__broker_start(e, redis->port, a, &s, priv, sizeof(priv)) != 0)
        goto out;
    if (fp_jwt_load_key(a->alg, priv, &a->key, &a->key_len, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        goto out;
    }
    rc = auth__connects(o, a, redis->pid);
    if (rc == 0 && e2e) {
        fprintf(stderr, "bench: end to end, %zu messages...\n", o->messages);
        a->received = auth__e2e(o, a);
        rc = a->received >= 0 ? 0 : -1;
    }
out:
    if (a->key != NULL)
        fp_jwt_key_free(a->key, a->key_len);
    a->key = NULL;
    if (s.port > 0 && ft_server_stop(&s) != 0)
        rc = -1;
    return rc;
}

/* Our servers (the temp dir and redis) unless --port, then the run on each
 * algorithm, end to end on the first. Returns 0 or -1. */
static int auth__run(const auth_opts *o, const bench_common *c, auth_alg *algs, int n)
{
    static bench_env e;
    ft_server redis;
    int i, rc = 0;

    memset(&redis, 0, sizeof(redis));
    if (o->port == 0) {
        rc = bench_env_start(&e, c, false);
        if (rc == 0)
            rc = ft_server_start(&redis, "redis", NULL);
    }
    for (i = 0; i < n && rc == 0; i++)
        rc = auth__alg(o, &e, &redis, &algs[i], i == 0 && o->messages > 0);
    if (redis.port > 0 && ft_server_stop(&redis) != 0)
        rc = -1;
    if (o->port == 0 && bench_env_stop(&e, rc == 0) != 0)
        rc = -1;
    return rc;
}

/* The options, and the algorithms in algs[0..*n-1]. Returns 0, 1 after
 * --help, or -1. */
static int auth__setup(auth_opts *o, bench_common *c, auth_alg *algs, int *n, int argc, char **argv)
{
    char buf[64], *tok, *save = NULL;
    int rc;

    memset(o, 0, sizeof(*o));
    memset(algs, 0, sizeof(*algs) * AUTH__MAX_ALGS);
    rc = bench_parse("feedpush-bench-auth", auth__opts, sizeof(auth__opts) / sizeof(auth__opts[0]),
                     o, c, false, argc, argv);
    if (rc != 0)
        return rc;
    snprintf(buf, sizeof(buf), "%s", o->algs);
    for (*n = 0, tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        if (*n == AUTH__MAX_ALGS || fp_jwt_alg_parse(tok, &algs[*n].alg) != 0) {
            fprintf(stderr, "bench: --alg: \"%s\" is not HS256, RS256 or ES256\n", tok);
            return -1;
        }
        algs[*n].host = o->host;
        algs[*n].port = o->port;
        algs[(*n)++].received = -1;
    }
    if (*n == 0 || (o->port > 0) != (o->key != NULL) || (o->port > 0 && *n != 1)) {
        fprintf(stderr, "bench: --port and --key go together, with one --alg\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    auth_alg algs[AUTH__MAX_ALGS];
    bench_common c;
    auth_opts o;
    int i, n, rc;
    bool failed;

    rc = auth__setup(&o, &c, algs, &n, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 1;
    signal(SIGPIPE, SIG_IGN);
    bench_print_machine("feedpush-bench-auth");
    printf("  broker, redis and these clients share the machine: mosquitto is single-threaded\n"
           "  and takes one CPU; client threads, redis-server and the plugin's Redis thread\n"
           "  share the other.\n");
    if (o.port > 0)
        printf("  broker: %s:%d (already running)\n", o.host, o.port);
    else
        printf("  broker: mosquitto + %s, started by this run\n", c.plugin);
    printf("  connects: %zu HS256 / %zu RS256+ES256, after %zu warm-up each, %d threads x %d "
           "in flight,\n  MQTT 3.1.1 over TCP\n",
           o.connections, o.pk_connections, o.warmup, o.threads, o.inflight);
    failed = auth__acl(&o) != 0;
    mosquitto_lib_init();
    rc = auth__run(&o, &c, algs, n);
    mosquitto_lib_cleanup();
    auth__print(&o, algs, n);
    for (i = 0; i < n; i++) {
        if (algs[i].refused + algs[i].errors > 0)
            failed = true;
    }
    if (o.messages > 0 && algs[0].received != (long)o.messages)
        failed = true;
    if (rc != 0) {
        fprintf(stderr, "bench: the run did not complete\n");
        return 1;
    }
    if (failed)
        fprintf(stderr,
                "bench: failures: a wrong ACL answer, a failed connect or a lost message\n");
    return failed ? 2 : 0;
}
