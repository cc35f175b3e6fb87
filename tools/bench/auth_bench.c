/*
 * auth_bench.c - feedpush-bench-auth: how fast feed_auth.so lets clients
 * in, and what its per-message ACL check costs.
 *
 *   1. ACL micro-benchmark: fa_acl_allowed() (the pure topic rules) for
 *      allowed and denied cases, and fa_on_acl_check() (the broker
 *      callback: session lookup in a table of --connections sessions, then
 *      the rules), in ns per check. No broker involved.
 *   2. Connect storm, per algorithm (HS256, RS256): a temp dir, a
 *      redis-server and a mosquitto loading the plugin, started through
 *      tools/fp-server; --connections tokens (--pk-connections for RS256
 *      and ES256, whose minting is slow) for distinct users u0..uN
 *      minted before the clock starts; client threads each keep
 *      --inflight connects going (TCP connect, CONNECT, wait for CONNACK
 *      0, DISCONNECT). Reports connects/s, p50/p99/max latency, failures.
 *   3. End to end (HS256 broker): a service client publishes --messages
 *      QoS 1 messages to feed/<user>, a subscribed user receives them.
 *
 * With --port the storm and the end-to-end run go to a broker already
 * running (with --key: the HS256 secret or RS256/ES256 private key the
 * tokens are signed with, and --alg) and nothing is started.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>

#include "bench.h"
#include "feed_auth.h"

#define BENCH__MAX_ALGS 3

typedef struct {
    size_t connections;
    size_t pk_connections; /* RS256 / ES256 */
    size_t warmup;
    int threads;
    int inflight;
    int timeout_ms;
    size_t messages;
    int window;
    long acl_iterations;
    fp_jwt_alg algs[BENCH__MAX_ALGS];
    int n_algs;
    bool plugin_given; /* --plugin */
    int ext_port;      /* 0 = start our own servers */
    char ext_host[256];
    const char *ext_key;
    bench_env env;
} bench_opts;

typedef struct {
    fp_jwt_alg alg;
    bool ran;
    double mint_s;
    bench_connect_result r;
    bench_cpu_use cpu; /* during the measured storm */
} bench_connect_row;

/* ------------------------------------------------------------ ACL */

#define ACL__IDS 1024 /* distinct users cycled through (a power of two) */

typedef struct {
    const char *what;
    fp_role role;
    int access;
    int topic; /* ACL__T_* */
    bool expect;
} acl__case;

enum { ACL__T_OWN, ACL__T_OTHER, ACL__T_RIBBON, ACL__T_WILDCARD };

static const acl__case acl__cases[] = {
    {"user    READ      feed/<own>", FP_ROLE_USER, FA_ACL_READ, ACL__T_OWN, true},
    {"user    SUBSCRIBE feed/<own>", FP_ROLE_USER, FA_ACL_SUBSCRIBE, ACL__T_OWN, true},
    {"user    READ      ribbon", FP_ROLE_USER, FA_ACL_READ, ACL__T_RIBBON, true},
    {"service WRITE     feed/<id>", FP_ROLE_SERVICE, FA_ACL_WRITE, ACL__T_OTHER, true},
    {"user    SUBSCRIBE feed/<other>", FP_ROLE_USER, FA_ACL_SUBSCRIBE, ACL__T_OTHER, false},
    {"user    SUBSCRIBE feed/#", FP_ROLE_USER, FA_ACL_SUBSCRIBE, ACL__T_WILDCARD, false},
    {"user    WRITE     feed/<own>", FP_ROLE_USER, FA_ACL_WRITE, ACL__T_OWN, false},
    {"service SUBSCRIBE feed/<id>", FP_ROLE_SERVICE, FA_ACL_SUBSCRIBE, ACL__T_OTHER, false},
};
#define ACL__N_CASES (sizeof(acl__cases) / sizeof(acl__cases[0]))

typedef struct {
    char subs[ACL__IDS][FP_ID_BUFSZ];
    char own[ACL__IDS][FP_ID_BUFSZ + 8];
    char other[ACL__IDS][FP_ID_BUFSZ + 8];
} acl__ids;

/* UUID-shaped user ids (36 characters), the kind an identity provider
 * hands out, and the topics built from them. */
static void acl__ids_fill(acl__ids *ids)
{
    unsigned x;
    size_t i;

    for (i = 0; i < ACL__IDS; i++) {
        x = (unsigned)i * 2654435761u;
        snprintf(ids->subs[i], sizeof(ids->subs[i]), "%08x-%04x-4%03x-a%03x-%012x", x,
                 (unsigned)i & 0xffff, x & 0xfff, (x >> 12) & 0xfff, x ^ 0x5bd1e995u);
    }
    for (i = 0; i < ACL__IDS; i++) {
        snprintf(ids->own[i], sizeof(ids->own[i]), "feed/%s", ids->subs[i]);
        snprintf(ids->other[i], sizeof(ids->other[i]), "feed/%s",
                 ids->subs[(i + 1) & (ACL__IDS - 1)]);
    }
}

static const char *acl__topic(const acl__ids *ids, int kind, size_t i)
{
    switch (kind) {
    case ACL__T_OWN:
        return ids->own[i];
    case ACL__T_OTHER:
        return ids->other[i];
    case ACL__T_RIBBON:
        return "ribbon";
    default:
        return "feed/#";
    }
}

static int acl__cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/*
 * Times `iters` calls of fa_acl_allowed() for case c, three times; returns
 * the median ns per call, or -1 when a result differed from c->expect.
 */
static double acl__time_case(const acl__ids *ids, const acl__case *c, long iters)
{
    const char *topics[ACL__IDS];
    double ns[3];
    size_t i, hits;
    long it;
    int64_t t0;
    int rep;

    for (i = 0; i < ACL__IDS; i++)
        topics[i] = acl__topic(ids, c->topic, i);
    for (rep = 0; rep < 3; rep++) {
        hits = 0;
        t0 = fp_time_mono_ns();
        for (it = 0; it < iters; it++) {
            i = (size_t)it & (ACL__IDS - 1);
            hits += fa_acl_allowed(c->role, ids->subs[i], topics[i], c->access);
        }
        ns[rep] = (double)(fp_time_mono_ns() - t0) / (double)iters;
        if (hits != (c->expect ? (size_t)iters : 0))
            return -1.0;
    }
    qsort(ns, 3, sizeof(ns[0]), acl__cmp_double);
    return ns[1];
}

/*
 * The broker's view: fa_on_acl_check() with a session table of n_sessions
 * sessions (fake client pointers), a READ of the client's own feed, the
 * check mosquitto makes for every message it delivers. Returns the median
 * ns per call of three runs, or -1 on a wrong answer or no memory.
 */
static double acl__time_callback(const acl__ids *ids, size_t n_sessions, long iters)
{
    struct mosquitto_evt_acl_check ev;
    fa_plugin pl;
    fp_jwt_claims c;
    char *clients = NULL, cid[32];
    double ns[3], result = -1.0;
    size_t i, hits;
    long it;
    int64_t t0;
    int rep;

    memset(&pl, 0, sizeof(pl));
    if (n_sessions < ACL__IDS)
        n_sessions = ACL__IDS;
    clients = malloc(n_sessions);
    if (clients == NULL)
        return -1.0;
    for (i = 0; i < n_sessions; i++) {
        memset(&c, 0, sizeof(c));
        snprintf(c.sub, sizeof(c.sub), "%s", ids->subs[i & (ACL__IDS - 1)]);
        c.exp = 4102444800; /* 2100 */
        snprintf(cid, sizeof(cid), "c%zu", i);
        if (fa_sessions_add(&pl.sessions, (struct mosquitto *)(clients + i), cid, &c) != 0)
            goto out;
    }
    memset(&ev, 0, sizeof(ev));
    ev.access = FA_ACL_READ;
    for (rep = 0; rep < 3; rep++) {
        hits = 0;
        t0 = fp_time_mono_ns();
        for (it = 0; it < iters; it++) {
            i = ((size_t)it * 7919) % n_sessions;
            ev.client = (struct mosquitto *)(clients + i);
            ev.topic = ids->own[i & (ACL__IDS - 1)];
            hits += fa_on_acl_check(MOSQ_EVT_ACL_CHECK, &ev, &pl) == MOSQ_ERR_SUCCESS;
        }
        ns[rep] = (double)(fp_time_mono_ns() - t0) / (double)iters;
        if (hits != (size_t)iters)
            goto out;
    }
    qsort(ns, 3, sizeof(ns[0]), acl__cmp_double);
    result = ns[1];
out:
    fa_sessions_clear(&pl.sessions);
    free(clients);
    return result;
}

/* Runs and prints the ACL micro-benchmark. Returns 0, or -1 when a rule
 * gave an unexpected answer. */
static int bench__acl(const bench_opts *o)
{
    acl__ids *ids;
    double ns;
    size_t i;
    int rc = 0;

    if (o->acl_iterations <= 0)
        return 0;
    ids = malloc(sizeof(*ids));
    if (ids == NULL)
        return -1;
    acl__ids_fill(ids);
    printf("\nACL check cost (%ld calls per case, median of 3; 36-char user ids)\n",
           o->acl_iterations);
    printf("  %-46s %-8s %10s\n", "function and case", "result", "ns/check");
    for (i = 0; i < ACL__N_CASES; i++) {
        ns = acl__time_case(ids, &acl__cases[i], o->acl_iterations);
        if (ns < 0) {
            printf("  fa_acl_allowed  %-30s %-8s %10s\n", acl__cases[i].what, "WRONG", "-");
            rc = -1;
            continue;
        }
        printf("  fa_acl_allowed  %-30s %-8s %10.1f\n", acl__cases[i].what,
               acl__cases[i].expect ? "allowed" : "denied", ns);
    }
    ns = acl__time_callback(ids, o->connections, o->acl_iterations);
    if (ns < 0) {
        printf("  fa_on_acl_check (callback) WRONG\n");
        rc = -1;
    } else {
        printf("  fa_on_acl_check %-30s %-8s %10.1f   (lookup among %zu sessions + rule)\n",
               "user    READ      feed/<own>", "allowed", ns,
               o->connections > ACL__IDS ? o->connections : (size_t)ACL__IDS);
    }
    fflush(stdout);
    free(ids);
    return rc;
}

/* ------------------------------------------------------------ connects */

/* Measured connects for alg: RSA and EC tokens take ~1-3 ms each to mint
 * (fp_jwt_mint parses the PEM key per token), so fewer by default. */
static size_t bench__n_connections(const bench_opts *o, fp_jwt_alg alg)
{
    return alg == FP_JWT_HS256 ? o->connections : o->pk_connections;
}

/*
 * Mints the tokens (warm-up + measured), runs a short warm-up storm, then
 * the measured one. Returns 0 or -1 when it could not run.
 */
static int bench__connects(const bench_opts *o, const bench_broker *b, bench_connect_row *row)
{
    bench_connect_opts co;
    bench_connect_result warm;
    bench_cpu_sample before, after;
    size_t n = bench__n_connections(o, b->alg), total = o->warmup + n;
    char **tokens;
    char prefix[16];
    int64_t t0;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    row->alg = b->alg;
    fprintf(stderr, "bench: %s: minting %zu tokens...\n", fp_jwt_alg_name(b->alg), total);
    t0 = fp_time_mono_ns();
    tokens = bench_tokens_mint(b, total, cpus > 0 ? (int)cpus : 1);
    if (tokens == NULL)
        return -1;
    row->mint_s = (double)(fp_time_mono_ns() - t0) / 1e9;
    memset(&co, 0, sizeof(co));
    co.threads = o->threads;
    co.inflight = o->inflight;
    co.timeout_ms = o->timeout_ms;
    snprintf(prefix, sizeof(prefix), "%s-", fp_jwt_alg_name(b->alg));
    co.id_prefix = prefix;
    if (o->warmup > 0) {
        co.first = n;
        if (bench_connect_storm(b, tokens, o->warmup, &co, &warm) != 0)
            goto fail;
    }
    fprintf(stderr, "bench: %s: %zu connects...\n", fp_jwt_alg_name(b->alg), n);
    co.first = 0;
    bench_cpu_take(&o->env, b->pid, &before);
    if (bench_connect_storm(b, tokens, n, &co, &row->r) != 0)
        goto fail;
    bench_cpu_take(&o->env, b->pid, &after);
    bench_cpu_diff(&before, &after, &row->cpu);
    row->ran = true;
    bench_tokens_free(tokens, total);
    return 0;
fail:
    bench_tokens_free(tokens, total);
    return -1;
}

/* ------------------------------------------------------------ output */

/* "AMD EPYC ..." from /proc/cpuinfo, or "unknown". */
static void bench__cpu_model(char *out, size_t len)
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

static void bench__print_header(const bench_opts *o)
{
    char model[256];
    int major, minor, rev;

    bench__cpu_model(model, sizeof(model));
    mosquitto_lib_version(&major, &minor, &rev);
    printf("feedpush-bench-auth: %ld CPUs (%s), libmosquitto %d.%d.%d\n",
           sysconf(_SC_NPROCESSORS_ONLN), model, major, minor, rev);
    printf("  broker, redis and these clients share the machine: mosquitto is single-threaded\n"
           "  and takes one CPU; client threads, redis-server and the plugin's Redis thread\n"
           "  share the other.\n");
    if (o->ext_port > 0)
        printf("  broker: %s:%d (already running)\n", o->ext_host, o->ext_port);
    else
        printf("  broker: mosquitto + %s, started by this run\n", o->env.plugin);
    printf("  connects: %zu HS256 / %zu RS256+ES256, after %zu warm-up each, %d threads x %d "
           "in flight,\n  MQTT 3.1.1 over TCP\n",
           o->connections, o->pk_connections, o->warmup, o->threads, o->inflight);
    fflush(stdout);
}

static void bench__print_connects(const bench_connect_row *rows, int n, bool own)
{
    int i;

    printf("\nAuthenticated connects (CONNECT -> CONNACK 0 -> DISCONNECT)\n");
    printf("  %-6s %8s %7s %7s %8s %11s %8s %8s %8s %8s\n", "alg", "ok", "refused", "errors",
           "seconds", "connects/s", "p50 ms", "p99 ms", "max ms", "mint s");
    for (i = 0; i < n; i++) {
        if (!rows[i].ran) {
            printf("  %-6s (not run)\n", fp_jwt_alg_name(rows[i].alg));
            continue;
        }
        printf("  %-6s %8zu %7zu %7zu %8.2f %11.0f %8.2f %8.2f %8.2f %8.1f\n",
               fp_jwt_alg_name(rows[i].alg), rows[i].r.ok, rows[i].r.refused, rows[i].r.errors,
               rows[i].r.seconds, rows[i].r.rate, rows[i].r.p50_ms, rows[i].r.p99_ms,
               rows[i].r.max_ms, rows[i].mint_s);
    }
    printf("\nCPU during the measured connects (1.00 = one CPU busy all the time)\n");
    printf("  %-6s %8s %8s %8s %8s %8s\n", "alg", "machine", "broker", "clients", "redis", "other");
    for (i = 0; i < n; i++) {
        if (!rows[i].ran)
            continue;
        if (own)
            printf("  %-6s %8.2f %8.2f %8.2f %8.2f %8.2f\n", fp_jwt_alg_name(rows[i].alg),
                   rows[i].cpu.busy, rows[i].cpu.broker, rows[i].cpu.client, rows[i].cpu.redis,
                   rows[i].cpu.other);
        else
            printf("  %-6s %8.2f %8s %8.2f %8s %8s\n", fp_jwt_alg_name(rows[i].alg),
                   rows[i].cpu.busy, "?", rows[i].cpu.client, "?", "?");
    }
    printf("  broker = mosquitto with the plugin (its Redis thread included); other = the rest\n"
           "  of the machine: well above 0, the run competed with something else.\n");
}

static void bench__print_e2e(const bench_e2e_result *e, int window)
{
    printf("\nEnd to end (service publishes QoS 1 to feed/<user>, user subscribed QoS 1, "
           "<= %d in flight)\n",
           window);
    printf("  %8s %9s %8s %11s\n", "sent", "received", "seconds", "messages/s");
    printf("  %8zu %9zu %8.2f %11.0f\n", e->sent, e->received, e->seconds, e->rate);
}

/* ------------------------------------------------------------ options */

static void bench__usage(FILE *f)
{
    fprintf(f,
            "usage: feedpush-bench-auth [options]\n"
            "  -n, --connections N   measured HS256 connects (20000)\n"
            "      --pk-connections N  measured RS256 / ES256 connects (5000)\n"
            "      --warmup N        connects before the clock starts (1000)\n"
            "  -t, --threads N       client threads (2)\n"
            "  -w, --inflight N      connects in progress per thread (8)\n"
            "      --timeout-ms N    per connect, until the CONNACK (10000)\n"
            "  -a, --alg LIST        HS256, RS256, ES256, comma-separated (HS256,RS256)\n"
            "  -m, --messages N      end-to-end messages, 0 = skip (20000)\n"
            "      --window N        end-to-end messages in flight (200)\n"
            "      --acl-iterations N  calls per ACL case, 0 = skip (5000000)\n"
            "      --plugin FILE     feed_auth.so to load (%s)\n"
            "      --fp-server FILE  tools/fp-server (%s)\n"
            "      --keep            keep the temp dir with the servers' logs\n"
            "  existing broker (nothing started):\n"
            "  -p, --port N          its MQTT port\n"
            "      --host H          its address (127.0.0.1)\n"
            "  -k, --key FILE        HS256 secret, or RS256/ES256 private key PEM, to mint\n"
            "                        tokens with; --alg names the one algorithm\n",
            FP_BENCH_PLUGIN, FP_BENCH_SOURCE_DIR "/tools/fp-server");
}

/* Parses a non-negative integer option. Returns 0 or -1 (message printed). */
static int bench__num(const char *name, const char *s, long min, long max, long *out)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "bench: --%s: \"%s\" is not a number in %ld..%ld\n", name, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

/* Parses "HS256,RS256". Returns 0 or -1. */
static int bench__algs(bench_opts *o, const char *s)
{
    char buf[64], *tok, *save = NULL;

    snprintf(buf, sizeof(buf), "%s", s);
    o->n_algs = 0;
    for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        if (o->n_algs == BENCH__MAX_ALGS || fp_jwt_alg_parse(tok, &o->algs[o->n_algs]) != 0) {
            fprintf(stderr, "bench: --alg: \"%s\" is not HS256, RS256 or ES256\n", tok);
            return -1;
        }
        o->n_algs++;
    }
    return o->n_algs > 0 ? 0 : -1;
}

/* Fills o from argv. Returns 0, 1 for --help, or -1. */
static int bench__parse(bench_opts *o, int argc, char **argv)
{
    static const struct option longs[] = {
        {"connections", required_argument, NULL, 'n'},
        {"pk-connections", required_argument, NULL, 'N'},
        {"warmup", required_argument, NULL, 'W'},
        {"threads", required_argument, NULL, 't'},
        {"inflight", required_argument, NULL, 'w'},
        {"timeout-ms", required_argument, NULL, 'T'},
        {"alg", required_argument, NULL, 'a'},
        {"messages", required_argument, NULL, 'm'},
        {"window", required_argument, NULL, 'M'},
        {"acl-iterations", required_argument, NULL, 'A'},
        {"plugin", required_argument, NULL, 'P'},
        {"fp-server", required_argument, NULL, 'F'},
        {"keep", no_argument, NULL, 'K'},
        {"port", required_argument, NULL, 'p'},
        {"host", required_argument, NULL, 'H'},
        {"key", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long v = 0;
    int c, rc = 0;

    memset(o, 0, sizeof(*o));
    o->connections = 20000;
    o->pk_connections = 5000;
    o->warmup = 1000;
    o->threads = 2;
    o->inflight = 8;
    o->timeout_ms = 10000;
    o->messages = 20000;
    o->window = 200;
    o->acl_iterations = 5000000;
    o->algs[0] = FP_JWT_HS256;
    o->algs[1] = FP_JWT_RS256;
    o->n_algs = 2;
    snprintf(o->ext_host, sizeof(o->ext_host), "127.0.0.1");
    snprintf(o->env.plugin, sizeof(o->env.plugin), "%s", FP_BENCH_PLUGIN);
    snprintf(o->env.fp_server, sizeof(o->env.fp_server), "%s/tools/fp-server", FP_BENCH_SOURCE_DIR);
    for (;;) {
        c = getopt_long(argc, argv, "n:t:w:a:m:p:k:h", longs, NULL);
        if (c == -1)
            break;
        switch (c) {
        case 'n':
            rc = bench__num("connections", optarg, 1, 10000000, &v);
            o->connections = (size_t)v;
            break;
        case 'N':
            rc = bench__num("pk-connections", optarg, 1, 10000000, &v);
            o->pk_connections = (size_t)v;
            break;
        case 'W':
            rc = bench__num("warmup", optarg, 0, 1000000, &v);
            o->warmup = (size_t)v;
            break;
        case 't':
            rc = bench__num("threads", optarg, 1, 64, &v);
            o->threads = (int)v;
            break;
        case 'w':
            rc = bench__num("inflight", optarg, 1, 256, &v);
            o->inflight = (int)v;
            break;
        case 'T':
            rc = bench__num("timeout-ms", optarg, 1, 600000, &v);
            o->timeout_ms = (int)v;
            break;
        case 'a':
            rc = bench__algs(o, optarg);
            break;
        case 'm':
            rc = bench__num("messages", optarg, 0, 100000000, &v);
            o->messages = (size_t)v;
            break;
        case 'M':
            rc = bench__num("window", optarg, 1, 1000, &v);
            o->window = (int)v;
            break;
        case 'A':
            rc = bench__num("acl-iterations", optarg, 0, 1000000000, &v);
            o->acl_iterations = v;
            break;
        case 'P':
            snprintf(o->env.plugin, sizeof(o->env.plugin), "%s", optarg);
            o->plugin_given = true;
            break;
        case 'F':
            snprintf(o->env.fp_server, sizeof(o->env.fp_server), "%s", optarg);
            break;
        case 'K':
            o->env.keep = true;
            break;
        case 'p':
            rc = bench__num("port", optarg, 1, 65535, &v);
            o->ext_port = (int)v;
            break;
        case 'H':
            snprintf(o->ext_host, sizeof(o->ext_host), "%s", optarg);
            break;
        case 'k':
            o->ext_key = optarg;
            break;
        case 'h':
            bench__usage(stdout);
            return 1;
        default:
            bench__usage(stderr);
            return -1;
        }
        if (rc != 0)
            return -1;
    }
    if (optind < argc || (o->ext_port > 0) != (o->ext_key != NULL) ||
        (o->ext_port > 0 && o->n_algs != 1)) {
        fprintf(stderr, "bench: --port and --key go together, with one --alg\n");
        bench__usage(stderr);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ main */

/* Runs the storm (and, once, the end-to-end run) against broker b. */
static int bench__run_broker(const bench_opts *o, const bench_broker *b, bench_connect_row *row,
                             bench_e2e_result *e2e, bool *e2e_done)
{
    if (bench__connects(o, b, row) != 0)
        return -1;
    if (o->messages > 0 && !*e2e_done) {
        fprintf(stderr, "bench: end to end, %zu messages...\n", o->messages);
        if (bench_e2e(b, o->messages, o->window, e2e) != 0)
            return -1;
        *e2e_done = true;
    }
    return 0;
}

/* Against a running broker: the key comes from --key. */
static int bench__external(bench_opts *o, bench_connect_row *rows, bench_e2e_result *e2e,
                           bool *e2e_done)
{
    bench_broker b;
    char err[512];
    int rc;

    memset(&b, 0, sizeof(b));
    b.alg = o->algs[0];
    b.port = o->ext_port;
    snprintf(b.host, sizeof(b.host), "%s", o->ext_host);
    if (fp_jwt_load_key(b.alg, o->ext_key, &b.key, &b.key_len, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        return -1;
    }
    rc = bench__run_broker(o, &b, &rows[0], e2e, e2e_done);
    fp_jwt_key_free(b.key, b.key_len);
    return rc;
}

/* Our own servers: redis once, a mosquitto per algorithm. */
static int bench__own(bench_opts *o, bench_connect_row *rows, bench_e2e_result *e2e, bool *e2e_done)
{
    bench_broker b;
    int i, rc = 0;

    if (bench_env_start(&o->env) != 0) {
        bench_env_stop(&o->env);
        return -1;
    }
    for (i = 0; i < o->n_algs && rc == 0; i++) {
        rows[i].alg = o->algs[i];
        if (bench_env_broker_start(&o->env, o->algs[i], &b) != 0) {
            rc = -1;
            break;
        }
        rc = bench__run_broker(o, &b, &rows[i], e2e, e2e_done);
        if (bench_env_broker_stop(&o->env, &b) != 0)
            rc = -1;
    }
    if (bench_env_stop(&o->env) != 0)
        rc = -1;
    return rc;
}

int main(int argc, char **argv)
{
    bench_opts o;
    bench_connect_row rows[BENCH__MAX_ALGS];
    bench_e2e_result e2e;
    bool e2e_done = false, failures = false;
    int rc, i;

    rc = bench__parse(&o, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 1;
#ifdef FP_BENCH_SANITIZED
    /* This build's feed_auth.so needs the sanitizer runtimes preloaded
     * into mosquitto, and its timings would mean nothing anyway. */
    if (o.ext_port == 0 && !o.plugin_given) {
        fprintf(stderr, "bench: this is a FEEDPUSH_SANITIZE build: benchmark a normal build, or\n"
                        "       pass --plugin with a feed_auth.so built without sanitizers\n");
        return 1;
    }
#endif
    signal(SIGPIPE, SIG_IGN);
    memset(rows, 0, sizeof(rows));
    for (i = 0; i < o.n_algs; i++)
        rows[i].alg = o.algs[i];
    memset(&e2e, 0, sizeof(e2e));
    bench__print_header(&o);
    if (bench__acl(&o) != 0)
        failures = true;
    mosquitto_lib_init();
    if (o.ext_port > 0)
        rc = bench__external(&o, rows, &e2e, &e2e_done);
    else
        rc = bench__own(&o, rows, &e2e, &e2e_done);
    mosquitto_lib_cleanup();
    bench__print_connects(rows, o.n_algs, o.ext_port == 0);
    if (e2e_done)
        bench__print_e2e(&e2e, o.window);
    for (i = 0; i < o.n_algs; i++) {
        if (rows[i].ran && rows[i].r.ok != bench__n_connections(&o, rows[i].alg))
            failures = true;
    }
    if (e2e_done && e2e.received != o.messages)
        failures = true;
    if (rc != 0) {
        fprintf(stderr, "bench: the run did not complete\n");
        return 1;
    }
    return failures ? 2 : 0;
}
