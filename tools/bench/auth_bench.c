/*
 * auth_bench.c - feedpush-bench-auth (docs/benchmarks.md): the cost of
 * feed_auth.so's ACL check; authenticated connects/s per algorithm, on a
 * mosquitto loading the plugin (plugin_env, the keys of tests/data/jwt or
 * a fresh HS256 secret) or on the broker at --port;
 * QoS 1 messages end to end through the first broker.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>

#include "bench_lib.h"
#include "feed_auth.h"

#define AUTH__MAX_ALGS 3
#define AUTH__MAX_INFLIGHT 256
#define AUTH__MAX_MINTERS 16
#define AUTH__IDS 1024 /* distinct users of the ACL cases (a power of two) */

typedef struct {
    size_t connections, pk_connections, warmup, messages;
    int threads, inflight, timeout_ms, window, port;
    double acl_iterations;
    const char *algs, *key;
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
     "an existing broker's MQTT port on 127.0.0.1 (nothing started; needs --key)"},
    {"key", 'k', "FILE", BENCH_OPT_STRING, offsetof(auth_opts, key), 0, 0, NULL, NULL,
     "HS256 secret or RS256/ES256 private key to mint with; one --alg"},
};

/* One algorithm's run: the broker under test, the key its tokens are
 * signed with, and what was measured. */
typedef struct {
    fp_jwt_alg alg;
    int port;
    long pid, redis_pid; /* ours: their process groups, else 0 */
    unsigned char *key;
    size_t key_len;
    bool ran;
    size_t ok, refused, errors; /* refused: CONNACK != 0; errors: no CONNACK */
    double seconds, rate, p50_ms, p99_ms, max_ms, mint_s; /* rate: connects/s */
    double busy, broker, client, redis, other;            /* CPUs during the storm */
    long received;                                        /* end to end; -1: not run */
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

/* The ACL callback asks held.c (which needs the broker) for clients it
 * never authenticated; the timed cases only ask about clients that have a
 * session, so this stand-in is never reached. */
fa_session *fa_held_adopt(struct fa_plugin *pl, struct mosquitto *client)
{
    (void)pl;
    (void)client;
    return NULL;
}

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
    fa_session *replaced;
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
        if (fa_sessions_add(&a->pl.sessions, (struct mosquitto *)(a->clients + i), cid, &c,
                            &replaced) == NULL)
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

/* Minting work for a pool of threads: tokens[i] for user f<i>, i < n. */
typedef struct {
    const auth_alg *a;
    char **tokens;
    size_t n;
    atomic_size_t next; /* the next token to mint */
    atomic_bool failed;
} auth__mint;

/* One minting thread: the next token until none is left or one failed. */
static void *auth__mint_thread(void *arg)
{
    auth__mint *j = arg;
    char sub[FP_ID_BUFSZ];
    size_t i;

    for (;;) {
        i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n || atomic_load(&j->failed))
            return NULL;
        snprintf(sub, sizeof(sub), "f%zu", i);
        j->tokens[i] = ft_token_mint(j->a->alg, j->a->key, j->a->key_len, sub, FP_ROLE_USER,
                                     time(NULL), time(NULL) + 3600);
        if (j->tokens[i] == NULL)
            atomic_store(&j->failed, true);
    }
}

/* Mints j->n tokens on n threads at once. Returns 0 or -1. */
static int auth__mint_all(int n, auth__mint *j)
{
    pthread_t tids[AUTH__MAX_MINTERS];
    int i, started = 0;

    while (started < n && pthread_create(&tids[started], NULL, auth__mint_thread, j) == 0)
        started++;
    for (i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    return started > 0 && !atomic_load(&j->failed) ? 0 : -1;
}

/* Connects users f0..f<n-1> once each with tokens[0..n-1], through the
 * subscriber pool's connect storm, and fills lat[0..n-1]. Returns the
 * seconds it took, or -1. */
static double auth__storm(const auth_opts *o, const auth_alg *a, char **tokens, size_t n,
                          int64_t *lat)
{
    bench_subs_cfg sc = {a->alg,     a->key,        a->key_len, {a->port}, 1,           n,
                         o->threads, o->timeout_ms, 0,          tokens,    o->inflight, lat};
    int64_t t0 = fp_time_mono_ns();
    bench_subs *s;
    double seconds = -1.0;

    if (bench_subs_start(&s, &sc) == 0)
        seconds = (double)(fp_time_mono_ns() - t0) / 1e9;
    bench_subs_stop(s);
    return seconds;
}

/* Mints the tokens on a thread per CPU (RSA signing is slow), runs the
 * warm-up storm (the first users), then the measured one with the CPU
 * sampled around it. Returns 0 or -1. */
static int auth__connects(const auth_opts *o, auth_alg *a)
{
    size_t n = a->alg == FP_JWT_HS256 ? o->connections : o->pk_connections, i, k = 0;
    long groups[2] = {a->pid, a->redis_pid}, cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t t0 = fp_time_mono_ns(), *lat = calloc(n + o->warmup + 1, sizeof(*lat));
    auth__mint mint = {.a = a, .n = n > o->warmup ? n : o->warmup};
    bench_cpu c0, c1, d;
    double wall;
    int rc = -1;

    fprintf(stderr, "bench: %s: minting %zu tokens...\n", fp_jwt_alg_name(a->alg), mint.n);
    cpus = cpus < 1 ? 1 : cpus > AUTH__MAX_MINTERS ? AUTH__MAX_MINTERS : cpus;
    mint.tokens = calloc(mint.n + 1, sizeof(*mint.tokens));
    if (lat == NULL || mint.tokens == NULL || auth__mint_all((int)cpus, &mint) != 0)
        goto out;
    a->mint_s = (double)(fp_time_mono_ns() - t0) / 1e9;
    if (o->warmup > 0 && auth__storm(o, a, mint.tokens, o->warmup, lat + n) < 0)
        goto out;
    fprintf(stderr, "bench: %s: %zu connects...\n", fp_jwt_alg_name(a->alg), n);
    bench_cpu_sample(groups, 2, &c0);
    a->seconds = auth__storm(o, a, mint.tokens, n, lat);
    if (a->seconds < 0)
        goto out;
    bench_cpu_sample(groups, 2, &c1);
    for (i = 0; i < n; i++) {
        if (lat[i] >= 0)
            lat[k++] = lat[i];
        else if (lat[i] == BENCH_CONNECT_REFUSED)
            a->refused++;
    }
    a->ok = k;
    a->errors = n - k - a->refused;
    a->rate = a->seconds > 0 ? (double)k / a->seconds : 0.0;
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
    bench_subs_cfg sc = {.alg = a->alg,
                         .key = a->key,
                         .key_len = a->key_len,
                         .ports = {a->port},
                         .n_nodes = 1,
                         .users = 1,
                         .threads = 1,
                         .timeout_ms = 5000};
    char payload[128], text[64], *tok = NULL;
    bench_subs *subs = NULL;
    ft_mqtt pub = {0};
    int64_t t0, stall;
    int connack = -1;
    long got = -1;
    size_t i;

    tok = ft_token_mint(a->alg, a->key, a->key_len, "bench-svc", FP_ROLE_SERVICE, time(NULL),
                        time(NULL) + 3600);
    if (tok == NULL || bench_subs_start(&subs, &sc) != 0)
        goto out;
    connack = ft_mqtt_connect(&pub, a->port, "bench-e2e-pub", "bench-svc", tok, 4, 5000);
    if (connack != 0 || mosquitto_loop_start(pub.m) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "bench: e2e publisher not accepted (CONNACK %d)\n", connack);
        goto out;
    }
    bench_subs_phase(subs, 1, false);
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
    mosquitto_disconnect(pub.m);
    mosquitto_loop_stop(pub.m, false);
    pub.disconnected = true;
out:
    ft_mqtt_close(&pub);
    free(tok);
    bench_subs_stop(subs);
    return got;
}

/* ------------------------------------------------------------ output */

/* The connect table (connects/s also relative to HS256's of the same
 * run), the CPU table (own: the servers are ours) and the end-to-end line. */
static void auth__print(const auth_opts *o, const auth_alg *algs, int n)
{
    const auth_alg *a;
    double hs = 0;
    char vs[16];

    for (a = algs; a < algs + n; a++)
        hs = a->ran && a->alg == FP_JWT_HS256 ? a->rate : hs;
    printf("\nAuthenticated connects (CONNECT -> CONNACK 0 -> DISCONNECT)\n");
    printf("  %-6s %8s %7s %7s %8s %11s %8s %8s %8s %8s %8s\n", "alg", "ok", "refused", "errors",
           "seconds", "connects/s", "vs HS256", "p50 ms", "p99 ms", "max ms", "mint s");
    for (a = algs; a < algs + n; a++) {
        snprintf(vs, sizeof(vs), "%.2f", hs > 0 ? a->rate / hs : 0.0);
        if (!a->ran)
            printf("  %-6s (not run)\n", fp_jwt_alg_name(a->alg));
        else
            printf("  %-6s %8zu %7zu %7zu %8.2f %11.0f %8s %8.2f %8.2f %8.2f %8.1f\n",
                   fp_jwt_alg_name(a->alg), a->ok, a->refused, a->errors, a->seconds, a->rate,
                   hs > 0 ? vs : "-", a->p50_ms, a->p99_ms, a->max_ms, a->mint_s);
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

/* A broker of ours for a->alg: redis and mosquitto loading the plugin
 * (plugin_env), verifying with a fresh HS256 secret or the public key of
 * tests/data/jwt. priv: the key to mint with. Returns 0 or -1. */
static int auth__broker_start(auth_alg *a, ft_plugin_env *pe, char *priv, size_t len)
{
    const char *name = fp_jwt_alg_name(a->alg);
    bool hs = a->alg == FP_JWT_HS256;
    char pub[PATH_MAX], node[32];

    snprintf(pub, sizeof(pub), "%s/tests/data/jwt/%s.pub", FP_BENCH_SOURCE_DIR,
             a->alg == FP_JWT_RS256 ? "rs256" : "es256");
    snprintf(node, sizeof(node), "bench-%s", name);
    if (ft_plugin_env_start_key(pe, node, a->alg, hs ? NULL : pub, NULL) != 0)
        return -1;
    snprintf(priv, len, "%s", hs ? pe->secret_path : pub);
    if (!hs)
        memcpy(priv + strlen(priv) - 4, ".key", 4);
    a->port = pe->mosq.port;
    a->pid = pe->mosq.pid;
    a->redis_pid = pe->redis.pid;
    return 0;
}

/* The run on algorithm a: its key (--key, or a broker of ours), the
 * connect storm and, when e2e, the end-to-end run. 0 or -1. */
static int auth__alg(const auth_opts *o, auth_alg *a, bool e2e)
{
    char priv[PATH_MAX + 64], err[512];
    ft_plugin_env pe;
    int rc = -1;

    memset(&pe, 0, sizeof(pe));
    snprintf(priv, sizeof(priv), "%s", o->key != NULL ? o->key : "");
    if (o->port == 0 && auth__broker_start(a, &pe, priv, sizeof(priv)) != 0)
        goto out;
    if (fp_jwt_load_key(a->alg, priv, &a->key, &a->key_len, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        goto out;
    }
    rc = auth__connects(o, a);
    if (rc == 0 && e2e) {
        fprintf(stderr, "bench: end to end, %zu messages...\n", o->messages);
        a->received = auth__e2e(o, a);
        rc = a->received >= 0 ? 0 : -1;
    }
out:
    if (a->key != NULL)
        fp_jwt_key_free(a->key, a->key_len);
    a->key = NULL;
    if (pe.mosq.port > 0 && ft_plugin_env_stop(&pe) != 0)
        rc = -1;
    return rc;
}

/* Our temp dir unless --port, then the run on each algorithm, end to end
 * on the first. Returns 0 or -1. */
static int auth__run(const auth_opts *o, const bench_common *c, auth_alg *algs, int n)
{
    static bench_env e;
    int i, rc = 0;

    if (o->port == 0)
        rc = bench_env_start(&e, c, false);
    for (i = 0; i < n && rc == 0; i++)
        rc = auth__alg(o, &algs[i], i == 0 && o->messages > 0);
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
        printf("  broker: 127.0.0.1:%d (already running)\n", o.port);
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
