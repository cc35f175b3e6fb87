/*
 * auth_bench.c - feedpush-bench-auth: how fast feed_auth.so lets clients
 * in, and what its per-message ACL check costs.
 *
 *   1. ACL micro-benchmark: fa_acl_allowed() (the topic rules) for allowed
 *      and denied cases, and fa_on_acl_check() (the broker callback:
 *      session lookup among --connections sessions, then the rules), in ns
 *      per check. No broker.
 *   2. Connect storm, per algorithm: a redis-server and a mosquitto loading
 *      the plugin with fresh key material (bench_env.c); tokens for users
 *      u0..uN minted before the clock starts; client threads each keep
 *      --inflight connects going (TCP connect, CONNECT, CONNACK 0,
 *      DISCONNECT, the broker's close). Connects/s, latency, failures.
 *   3. End to end (first broker): a service client publishes --messages
 *      QoS 1 messages to feed/f0, a user of the subscriber pool receives.
 *
 * With --port and --key the storm and the end-to-end run go to a broker
 * already running, and nothing is started.
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
#define AUTH__IDS 1024 /* distinct users of the ACL cases (a power of two) */

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

/* One broker under test: where, and the key its tokens are signed with. */
typedef struct {
    fp_jwt_alg alg;
    const char *host;
    int port;
    long pid; /* ours: its process group, else 0 */
    unsigned char *key;
    size_t key_len;
} auth_broker;

typedef struct {
    fp_jwt_alg alg;
    bool ran;
    size_t ok, refused, errors; /* refused: CONNACK != 0; errors: no CONNACK */
    double seconds, rate, p50_ms, p99_ms, max_ms, mint_s;
    double busy, broker, client, redis, other; /* CPUs during the storm */
} auth_row;

/* ------------------------------------------------------------ ACL */

typedef struct {
    const char *what;
    fp_role role;
    int access;
    int topic; /* 0 own feed, 1 another's, 2 ribbon, 3 feed/# */
    bool expect;
} acl__case;

static const acl__case acl__cases[] = {
    {"user    READ      feed/<own>", FP_ROLE_USER, FA_ACL_READ, 0, true},
    {"user    SUBSCRIBE feed/<own>", FP_ROLE_USER, FA_ACL_SUBSCRIBE, 0, true},
    {"user    READ      ribbon", FP_ROLE_USER, FA_ACL_READ, 2, true},
    {"service WRITE     feed/<id>", FP_ROLE_SERVICE, FA_ACL_WRITE, 1, true},
    {"user    SUBSCRIBE feed/<other>", FP_ROLE_USER, FA_ACL_SUBSCRIBE, 1, false},
    {"user    SUBSCRIBE feed/#", FP_ROLE_USER, FA_ACL_SUBSCRIBE, 3, false},
    {"user    WRITE     feed/<own>", FP_ROLE_USER, FA_ACL_WRITE, 0, false},
    {"service SUBSCRIBE feed/<id>", FP_ROLE_SERVICE, FA_ACL_SUBSCRIBE, 1, false},
};

/* UUID-shaped user ids (36 characters) and the topics built from them. */
typedef struct {
    char subs[AUTH__IDS][FP_ID_BUFSZ];
    char topics[2][AUTH__IDS][FP_ID_BUFSZ + 8]; /* own feed, the next user's feed */
} acl__ids;

/* Fills the ids: i times a large odd constant, spread over the fields. */
static void acl__ids_fill(acl__ids *ids)
{
    unsigned x;
    size_t i;

    for (i = 0; i < AUTH__IDS; i++) {
        x = (unsigned)i * 2654435761u;
        snprintf(ids->subs[i], sizeof(ids->subs[i]), "%08x-%04x-4%03x-a%03x-%012x", x,
                 (unsigned)i & 0xffff, x & 0xfff, (x >> 12) & 0xfff, x ^ 0x5bd1e995u);
    }
    for (i = 0; i < AUTH__IDS; i++) {
        snprintf(ids->topics[0][i], sizeof(ids->topics[0][i]), "feed/%s", ids->subs[i]);
        snprintf(ids->topics[1][i], sizeof(ids->topics[1][i]), "feed/%s",
                 ids->subs[(i + 1) & (AUTH__IDS - 1)]);
    }
}

/*
 * Times iters calls of case c (c == NULL: fa_on_acl_check() on pl, a READ
 * of the client's own feed, among n sessions), three times. Returns the
 * median ns per call, or -1 when an answer was wrong.
 */
static double acl__time(const acl__ids *ids, const acl__case *c, fa_plugin *pl, char *clients,
                        size_t n, long iters)
{
    struct mosquitto_evt_acl_check ev;
    const char *topic;
    double ns[3];
    size_t i, hits;
    long it;
    int64_t t0;
    int rep;

    memset(&ev, 0, sizeof(ev));
    ev.access = FA_ACL_READ;
    for (rep = 0; rep < 3; rep++) {
        hits = 0;
        t0 = fp_time_mono_ns();
        for (it = 0; it < iters && c != NULL; it++) {
            i = (size_t)it & (AUTH__IDS - 1);
            topic = c->topic < 2 ? ids->topics[c->topic][i] : c->topic == 2 ? "ribbon" : "feed/#";
            hits += fa_acl_allowed(c->role, ids->subs[i], topic, c->access);
        }
        for (it = 0; it < iters && c == NULL; it++) {
            i = ((size_t)it * 7919) % n;
            ev.client = (struct mosquitto *)(clients + i);
            ev.topic = ids->topics[0][i & (AUTH__IDS - 1)];
            hits += fa_on_acl_check(MOSQ_EVT_ACL_CHECK, &ev, pl) == MOSQ_ERR_SUCCESS;
        }
        ns[rep] = (double)(fp_time_mono_ns() - t0) / (double)iters;
        if (hits != (c == NULL || c->expect ? (size_t)iters : 0))
            return -1.0;
    }
    return bench_median(ns, 3);
}

/* The callback's case: a session table of n sessions (fake client
 * pointers) first. Returns ns per call or -1. */
static double acl__time_callback(const acl__ids *ids, size_t n, long iters)
{
    fp_jwt_claims c;
    fa_plugin pl;
    char *clients = malloc(n), cid[32];
    double ns = -1.0;
    size_t i;

    memset(&pl, 0, sizeof(pl));
    for (i = 0; i < n && clients != NULL; i++) {
        memset(&c, 0, sizeof(c));
        snprintf(c.sub, sizeof(c.sub), "%s", ids->subs[i & (AUTH__IDS - 1)]);
        c.exp = 4102444800; /* 2100 */
        snprintf(cid, sizeof(cid), "c%zu", i);
        if (fa_sessions_add(&pl.sessions, (struct mosquitto *)(clients + i), cid, &c) != 0)
            break;
    }
    if (clients != NULL && i == n)
        ns = acl__time(ids, NULL, &pl, clients, n, iters);
    fa_sessions_clear(&pl.sessions);
    free(clients);
    return ns;
}

/* Runs and prints the ACL micro-benchmark. Returns 0, or -1 when a rule
 * gave an unexpected answer. */
static int auth__acl(const auth_opts *o)
{
    size_t i, n = o->connections > AUTH__IDS ? o->connections : AUTH__IDS;
    long iters = (long)o->acl_iterations;
    acl__ids *ids;
    double ns;
    int rc = 0;

    if (iters <= 0)
        return 0;
    ids = malloc(sizeof(*ids));
    if (ids == NULL)
        return -1;
    acl__ids_fill(ids);
    printf("\nACL check cost (%ld calls per case, median of 3; 36-char user ids)\n", iters);
    printf("  %-46s %-8s %10s\n", "function and case", "result", "ns/check");
    for (i = 0; i < sizeof(acl__cases) / sizeof(acl__cases[0]); i++) {
        ns = acl__time(ids, &acl__cases[i], NULL, NULL, 0, iters);
        rc = ns < 0 ? -1 : rc;
        if (ns < 0)
            printf("  fa_acl_allowed  %-30s %-8s %10s\n", acl__cases[i].what, "WRONG", "-");
        else
            printf("  fa_acl_allowed  %-30s %-8s %10.1f\n", acl__cases[i].what,
                   acl__cases[i].expect ? "allowed" : "denied", ns);
    }
    ns = acl__time_callback(ids, n, iters);
    rc = ns < 0 ? -1 : rc;
    if (ns < 0)
        printf("  fa_on_acl_check (callback) WRONG\n");
    else
        printf("  fa_on_acl_check %-30s %-8s %10.1f   (lookup among %zu sessions + rule)\n",
               "user    READ      feed/<own>", "allowed", ns, n);
    fflush(stdout);
    free(ids);
    return rc;
}

/* ------------------------------------------------------------ tokens */

typedef struct {
    const auth_broker *b;
    char **tokens;
    size_t from, to;
    int failed;
} auth__mint_job;

/* One minting thread: tokens from..to-1; stops at the first failure. */
static void *auth__mint_thread(void *arg)
{
    auth__mint_job *j = arg;
    char sub[FP_ID_BUFSZ];
    size_t i;

    for (i = j->from; i < j->to && !j->failed; i++) {
        snprintf(sub, sizeof(sub), "u%zu", i);
        j->failed =
            bench_token(j->b->alg, j->b->key, j->b->key_len, sub, FP_ROLE_USER, &j->tokens[i]) != 0;
    }
    return NULL;
}

/* Tokens for users u0..u<n-1> on one thread per CPU (RSA signing is slow).
 * Returns the array (n entries, free with auth__tokens_free) or NULL. */
static char **auth__tokens_mint(const auth_broker *b, size_t n)
{
    auth__mint_job jobs[16];
    pthread_t tids[16];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int i, threads = cpus < 1 ? 1 : cpus > 16 ? 16 : (int)cpus, started = 0, failed = 0;
    char **tokens = calloc(n > 0 ? n : 1, sizeof(*tokens));

    for (i = 0; i < threads && tokens != NULL; i++) {
        jobs[i].b = b;
        jobs[i].tokens = tokens;
        jobs[i].from = n * (size_t)i / (size_t)threads;
        jobs[i].to = n * (size_t)(i + 1) / (size_t)threads;
        jobs[i].failed = 0;
        if (pthread_create(&tids[i], NULL, auth__mint_thread, &jobs[i]) != 0) {
            failed = 1;
            break;
        }
        started++;
    }
    for (i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
        failed |= jobs[i].failed;
    }
    if (tokens != NULL && failed) {
        for (i = 0; (size_t)i < n; i++)
            free(tokens[i]);
        free(tokens);
        tokens = NULL;
    }
    return tokens;
}

/* ------------------------------------------------------------ the connect storm */

/* MQTT DISCONNECT: packet type 14, no flags, remaining length 0. */
static const unsigned char auth__disconnect[2] = {0xe0, 0x00};

enum { SLOT_IDLE, SLOT_CONNECTING, SLOT_CLOSING };

/* One connection in progress. */
typedef struct {
    struct mosquitto *m;
    size_t idx;
    int state;
    int64_t t0, t_connack; /* before mosquitto_connect; the CONNACK */
    int connack;           /* -1 until the CONNACK */
} auth__slot;

typedef struct {
    const auth_broker *b;
    const auth_opts *o;
    char **tokens;
    size_t first, n;     /* tokens[first + i], i < n */
    atomic_size_t *next; /* next i, shared by the threads */
    int64_t *lat_ns;     /* per i; -1 = failed */
    size_t ok, refused, errors;
    int64_t end_ns;
    auth__slot slots[AUTH__MAX_INFLIGHT];
} auth__worker;

static void auth__on_connect(struct mosquitto *m, void *obj, int rc)
{
    auth__slot *s = obj;

    (void)m;
    s->connack = rc;
    s->t_connack = fp_time_mono_ns();
}

/* Frees the slot's client (closing its socket if still open); failed
 * counts it as an error. */
static void auth__slot_free(auth__worker *w, auth__slot *s, bool failed)
{
    if (failed) {
        w->lat_ns[s->idx] = -1;
        w->errors++;
    }
    mosquitto_destroy(s->m);
    s->m = NULL;
    s->state = SLOT_IDLE;
    w->end_ns = fp_time_mono_ns();
}

/* Starts connect i in slot s: TCP connect and CONNECT written. */
static void auth__slot_start(auth__worker *w, auth__slot *s, size_t i)
{
    char cid[64], user[32];

    snprintf(cid, sizeof(cid), "%s-%zu", fp_jwt_alg_name(w->b->alg), w->first + i);
    snprintf(user, sizeof(user), "u%zu", w->first + i);
    s->idx = i;
    s->connack = -1;
    s->state = SLOT_CONNECTING;
    s->m = mosquitto_new(cid, true, s);
    if (s->m == NULL) {
        s->state = SLOT_IDLE;
        w->lat_ns[i] = -1;
        w->errors++;
        return;
    }
    mosquitto_connect_callback_set(s->m, auth__on_connect);
    s->t0 = fp_time_mono_ns();
    if (mosquitto_username_pw_set(s->m, user, w->tokens[w->first + i]) != MOSQ_ERR_SUCCESS ||
        mosquitto_connect(s->m, w->b->host, w->b->port, 60) != MOSQ_ERR_SUCCESS)
        auth__slot_free(w, s, true);
}

/*
 * The CONNACK arrived: records it and, when accepted, writes DISCONNECT
 * itself. mosquitto_disconnect() would close the socket right after it,
 * leaving the TIME_WAIT here: 20,000 connects on one host then fill the
 * ephemeral port range. The broker closes first, and the slot waits.
 */
static void auth__slot_connack(auth__worker *w, auth__slot *s)
{
    s->state = SLOT_CLOSING;
    if (s->connack != 0) {
        w->lat_ns[s->idx] = -1;
        w->refused++;
        if (mosquitto_socket(s->m) < 0)
            auth__slot_free(w, s, false);
        return;
    }
    w->lat_ns[s->idx] = s->t_connack - s->t0;
    w->ok++;
    if (write(mosquitto_socket(s->m), auth__disconnect, 2) != 2)
        auth__slot_free(w, s, false);
}

/* Handles poll's verdict on slot s. */
static void auth__slot_event(auth__worker *w, auth__slot *s, short revents, int64_t timeout_ns)
{
    int rc = MOSQ_ERR_SUCCESS;

    if (s->state == SLOT_CLOSING) {
        /* Nothing more is sent to us: readable means the broker closed. */
        if (revents != 0 || fp_time_mono_ns() - s->t_connack > timeout_ns)
            auth__slot_free(w, s, false);
        return;
    }
    if (revents & POLLOUT)
        rc = mosquitto_loop_write(s->m, 1);
    if (rc == MOSQ_ERR_SUCCESS && (revents & (POLLIN | POLLERR | POLLHUP)))
        rc = mosquitto_loop_read(s->m, 1);
    if (s->connack >= 0)
        auth__slot_connack(w, s);
    else if (rc != MOSQ_ERR_SUCCESS || fp_time_mono_ns() - s->t0 > timeout_ns)
        auth__slot_free(w, s, true);
}

/* One client thread: keeps o->inflight connects going until the shared
 * index runs past n, polling all their sockets at once. */
static void *auth__worker_main(void *arg)
{
    auth__worker *w = arg;
    struct pollfd fds[AUTH__MAX_INFLIGHT];
    int map[AUTH__MAX_INFLIGHT], k = w->o->inflight, i, nfds;
    int64_t timeout_ns = (int64_t)w->o->timeout_ms * 1000000;
    bool exhausted = false;
    auth__slot *s;
    size_t idx;

    for (;;) {
        for (i = 0, nfds = 0; i < k; i++) {
            s = &w->slots[i];
            while (s->state == SLOT_IDLE && !exhausted) {
                idx = atomic_fetch_add(w->next, 1);
                exhausted = idx >= w->n;
                if (!exhausted)
                    auth__slot_start(w, s, idx);
            }
            if (s->state == SLOT_IDLE)
                continue;
            fds[nfds].fd = mosquitto_socket(s->m);
            fds[nfds].events = POLLIN;
            if (s->state == SLOT_CONNECTING && mosquitto_want_write(s->m))
                fds[nfds].events |= POLLOUT;
            fds[nfds].revents = 0;
            map[nfds++] = i;
        }
        if (nfds == 0 && exhausted)
            break;
        if (poll(fds, (nfds_t)nfds, 100) < 0 && errno != EINTR)
            break;
        for (i = 0; i < nfds; i++)
            auth__slot_event(w, &w->slots[map[i]], fds[i].revents, timeout_ns);
    }
    for (i = 0; i < k; i++) {
        if (w->slots[i].state != SLOT_IDLE)
            auth__slot_free(w, &w->slots[i], w->slots[i].state == SLOT_CONNECTING);
    }
    return NULL;
}

/* Connects once per token first..first+n-1 and fills the counts, rate and
 * latencies of row (when row is not NULL). Returns 0 or -1. */
static int auth__storm(const auth_opts *o, const auth_broker *b, char **tokens, size_t first,
                       size_t n, auth_row *row)
{
    auth__worker *w = calloc((size_t)o->threads, sizeof(*w));
    pthread_t *tids = calloc((size_t)o->threads, sizeof(*tids));
    int64_t *lat = calloc(n > 0 ? n : 1, sizeof(*lat)), t0 = fp_time_mono_ns(), end = 0;
    size_t i, k = 0;
    atomic_size_t next;
    int t, started = 0;

    atomic_init(&next, 0);
    for (t = 0; t < o->threads && w != NULL && tids != NULL && lat != NULL; t++) {
        w[t].b = b;
        w[t].o = o;
        w[t].tokens = tokens;
        w[t].first = first;
        w[t].n = n;
        w[t].next = &next;
        w[t].lat_ns = lat;
        if (pthread_create(&tids[t], NULL, auth__worker_main, &w[t]) != 0)
            break;
        started++;
    }
    for (t = 0; t < started; t++) {
        pthread_join(tids[t], NULL);
        if (row != NULL) {
            row->ok += w[t].ok;
            row->refused += w[t].refused;
            row->errors += w[t].errors;
        }
        end = w[t].end_ns > end ? w[t].end_ns : end;
    }
    if (row != NULL && started == o->threads) {
        row->seconds = end > t0 ? (double)(end - t0) / 1e9 : 0.0;
        row->rate = row->seconds > 0 ? (double)row->ok / row->seconds : 0.0;
        for (i = 0; i < n; i++) {
            if (lat[i] >= 0)
                lat[k++] = lat[i];
        }
        bench_sort_i64(lat, k);
        row->p50_ms = bench_pct_ms(lat, k, 50.0);
        row->p99_ms = bench_pct_ms(lat, k, 99.0);
        row->max_ms = k > 0 ? (double)lat[k - 1] / 1e6 : 0.0;
    }
    free(lat);
    free(tids);
    free(w);
    return started == o->threads ? 0 : -1;
}

/* Mints the tokens (measured + warm-up), runs the warm-up storm, then the
 * measured one with the CPU sampled around it. Returns 0 or -1. */
static int auth__connects(const auth_opts *o, const auth_broker *b, long redis_pid, auth_row *row)
{
    size_t n = b->alg == FP_JWT_HS256 ? o->connections : o->pk_connections, i;
    long groups[2] = {b->pid, redis_pid};
    int64_t t0 = fp_time_mono_ns();
    bench_cpu c0, c1, d;
    double wall;
    char **tokens;
    int rc = -1;

    fprintf(stderr, "bench: %s: minting %zu tokens...\n", fp_jwt_alg_name(b->alg), n + o->warmup);
    tokens = auth__tokens_mint(b, n + o->warmup);
    if (tokens == NULL)
        return -1;
    row->mint_s = (double)(fp_time_mono_ns() - t0) / 1e9;
    if (o->warmup > 0 && auth__storm(o, b, tokens, n, o->warmup, NULL) != 0)
        goto out;
    fprintf(stderr, "bench: %s: %zu connects...\n", fp_jwt_alg_name(b->alg), n);
    bench_cpu_sample(groups, 2, &c0);
    if (auth__storm(o, b, tokens, 0, n, row) != 0)
        goto out;
    bench_cpu_sample(groups, 2, &c1);
    bench_cpu_diff(&c0, &c1, &d);
    wall = (double)d.t_ns / 1e9;
    row->busy = d.machine / wall;
    row->client = d.self.cpu / wall;
    row->broker = d.g[0].cpu / wall;
    row->redis = d.g[1].cpu / wall;
    row->other = row->busy - row->client - row->broker - row->redis;
    row->other = row->other > 0 ? row->other : 0;
    row->ran = true;
    rc = 0;
out:
    for (i = 0; i < n + o->warmup; i++)
        free(tokens[i]);
    free(tokens);
    return rc;
}

/* ------------------------------------------------------------ end to end */

static void auth__on_pub_connect(struct mosquitto *m, void *obj, int rc)
{
    (void)m;
    atomic_store((atomic_int *)obj, rc);
}

/*
 * A service client publishes n QoS 1 messages to feed/f0, user f0 of the
 * subscriber pool receives them; at most window unreceived at a time (the
 * broker drops beyond its queue limit). The clock runs from the first
 * publish to the last receipt. Returns the receipts, or -1.
 */
static long auth__e2e(const auth_opts *o, const auth_broker *b, double *seconds)
{
    bench_subs_cfg sc = {b->alg, b->key, b->key_len, b->host, {b->port}, 1, 1, 1, 5000};
    char payload[128], text[64], *tok = NULL;
    struct mosquitto *pub = NULL;
    bench_subs *subs = NULL;
    atomic_int connack;
    int64_t t0 = 0, stall;
    long got = -1;
    size_t i;
    int k;

    atomic_init(&connack, -1);
    if (bench_subs_start(&subs, &sc) != 0 || bench_subs_phase(subs, 1, 0) != 0 ||
        bench_token(b->alg, b->key, b->key_len, "bench-svc", FP_ROLE_SERVICE, &tok) != 0)
        goto out;
    pub = mosquitto_new("bench-e2e-pub", true, &connack);
    if (pub == NULL)
        goto out;
    mosquitto_connect_callback_set(pub, auth__on_pub_connect);
    if (mosquitto_username_pw_set(pub, "bench-svc", tok) != MOSQ_ERR_SUCCESS ||
        mosquitto_connect(pub, b->host, b->port, 60) != MOSQ_ERR_SUCCESS ||
        mosquitto_loop_start(pub) != MOSQ_ERR_SUCCESS)
        goto out;
    for (k = 0; k < 500 && atomic_load(&connack) < 0; k++)
        usleep(10000);
    if (atomic_load(&connack) != 0) {
        fprintf(stderr, "bench: e2e publisher not accepted (CONNACK %d)\n", atomic_load(&connack));
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
        if (mosquitto_publish(pub, NULL, "feed/f0", (int)strlen(payload), payload, 1, false) !=
            MOSQ_ERR_SUCCESS)
            break;
    }
    got = (long)bench_subs_await(subs, i, NULL, NULL);
    *seconds = (double)(bench_subs_last_ns(subs) - t0) / 1e9;
    *seconds = *seconds > 0 ? *seconds : 0.0;
out:
    if (pub != NULL) {
        mosquitto_disconnect(pub);
        mosquitto_loop_stop(pub, false);
        mosquitto_destroy(pub);
    }
    free(tok);
    bench_subs_stop(subs);
    return got;
}

/* ------------------------------------------------------------ output */

/* The connect table and the CPU table (own: the servers are ours). */
static void auth__print(const auth_row *rows, int n, bool own)
{
    const auth_row *r;
    int i;

    printf("\nAuthenticated connects (CONNECT -> CONNACK 0 -> DISCONNECT)\n");
    printf("  %-6s %8s %7s %7s %8s %11s %8s %8s %8s %8s\n", "alg", "ok", "refused", "errors",
           "seconds", "connects/s", "p50 ms", "p99 ms", "max ms", "mint s");
    for (i = 0, r = rows; i < n; i++, r++) {
        if (!r->ran)
            printf("  %-6s (not run)\n", fp_jwt_alg_name(r->alg));
        else
            printf("  %-6s %8zu %7zu %7zu %8.2f %11.0f %8.2f %8.2f %8.2f %8.1f\n",
                   fp_jwt_alg_name(r->alg), r->ok, r->refused, r->errors, r->seconds, r->rate,
                   r->p50_ms, r->p99_ms, r->max_ms, r->mint_s);
    }
    printf("\nCPU during the measured connects (1.00 = one CPU busy all the time)\n");
    printf("  %-6s %8s %8s %8s %8s %8s\n", "alg", "machine", "broker", "clients", "redis", "other");
    for (i = 0, r = rows; i < n; i++, r++) {
        if (r->ran && own)
            printf("  %-6s %8.2f %8.2f %8.2f %8.2f %8.2f\n", fp_jwt_alg_name(r->alg), r->busy,
                   r->broker, r->client, r->redis, r->other);
        else if (r->ran)
            printf("  %-6s %8.2f %8s %8.2f %8s %8s\n", fp_jwt_alg_name(r->alg), r->busy, "?",
                   r->client, "?", "?");
    }
    printf("  broker = mosquitto with the plugin (its Redis thread included); other = the rest\n"
           "  of the machine: well above 0, the run competed with something else.\n");
}

/* ------------------------------------------------------------ main */

/* The key material of alg in the temp dir: HS256 a fresh secret, RS256
 * and ES256 a key pair from the openssl CLI. *pub: the plugin's file;
 * *priv: the one to mint with. Returns 0 or -1. */
static int auth__keys(bench_env *e, fp_jwt_alg alg, char *pub, char *priv, size_t len)
{
    unsigned char secret[48];
    char *gen[] = {"openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                   "-out",    priv,      NULL};
    char *extract[] = {"openssl", "pkey", "-in", priv, "-pubout", "-out", pub, NULL};

    if (alg == FP_JWT_HS256) {
        snprintf(priv, len, "%s/jwt.secret", e->root);
        snprintf(pub, len, "%s", priv);
        return ft_secret_write(priv, secret, sizeof(secret));
    }
    snprintf(priv, len, "%s/%s.key", e->root, fp_jwt_alg_name(alg));
    snprintf(pub, len, "%s/%s.pub", e->root, fp_jwt_alg_name(alg));
    if (alg == FP_JWT_ES256) {
        gen[3] = "EC";
        gen[5] = "ec_paramgen_curve:P-256";
    }
    if (bench_run(gen, true) != 0 || bench_run(extract, true) != 0) {
        fprintf(stderr, "bench: openssl could not make a %s key pair\n", fp_jwt_alg_name(alg));
        return -1;
    }
    return chmod(pub, 0644);
}

/* Starts a mosquitto with the plugin's production defaults but for alg,
 * key_file (the secret or public key), node id and Redis port. 0 or -1. */
static int auth__broker_start(const bench_env *e, ft_server *s, fp_jwt_alg alg,
                              const char *key_file, const char *node_id, int redis_port)
{
    char conf[PATH_MAX + 64];
    FILE *f;

    snprintf(conf, sizeof(conf), "%s/%s.conf", e->root, node_id);
    f = fopen(conf, "w");
    if (f == NULL)
        return -1;
    fprintf(f,
            "plugin %s\nplugin_opt_alg %s\nplugin_opt_key_file %s\nplugin_opt_node_id %s\n"
            "plugin_opt_redis_host 127.0.0.1\nplugin_opt_redis_port %d\n",
            e->c->plugin, fp_jwt_alg_name(alg), key_file, node_id, redis_port);
    if (fclose(f) != 0)
        return -1;
    return ft_server_start(s, "mosquitto", conf);
}

/* The storm on broker b, and the end-to-end run on the first one. */
static int auth__broker(const auth_opts *o, auth_broker *b, long redis_pid, auth_row *row,
                        long *e2e, double *e2e_s)
{
    if (auth__connects(o, b, redis_pid, row) != 0)
        return -1;
    if (o->messages == 0 || *e2e >= 0)
        return 0;
    fprintf(stderr, "bench: end to end, %zu messages...\n", o->messages);
    *e2e = auth__e2e(o, b, e2e_s);
    return *e2e >= 0 ? 0 : -1;
}

/* Our own servers: redis once, a mosquitto per algorithm; or the one at
 * --port. Fills rows; *e2e: receipts of the end-to-end run (-1: none). */
static int auth__run(const auth_opts *o, const bench_common *c, const fp_jwt_alg *algs, int n,
                     auth_row *rows, long *e2e, double *e2e_s)
{
    char pub[PATH_MAX + 64], priv[PATH_MAX + 64], err[512], node[32];
    static bench_env e;
    ft_server redis, s;
    auth_broker b;
    int i, rc = 0;

    memset(&b, 0, sizeof(b));
    memset(&redis, 0, sizeof(redis));
    b.host = o->host;
    if (o->port > 0) {
        b.alg = algs[0];
        b.port = o->port;
        if (fp_jwt_load_key(b.alg, o->key, &b.key, &b.key_len, err, sizeof(err)) != 0) {
            fprintf(stderr, "bench: %s\n", err);
            return -1;
        }
        rc = auth__broker(o, &b, 0, &rows[0], e2e, e2e_s);
        fp_jwt_key_free(b.key, b.key_len);
        return rc;
    }
    rc = bench_env_start(&e, c, false);
    if (rc == 0)
        rc = ft_server_start(&redis, "redis", NULL);
    for (i = 0; i < n && rc == 0; i++) {
        b.alg = algs[i];
        snprintf(node, sizeof(node), "bench-%s", fp_jwt_alg_name(b.alg));
        rc = auth__keys(&e, b.alg, pub, priv, sizeof(pub));
        if (rc == 0)
            rc = fp_jwt_load_key(b.alg, priv, &b.key, &b.key_len, err, sizeof(err));
        if (rc == 0)
            rc = auth__broker_start(&e, &s, b.alg, pub, node, redis.port);
        if (rc == 0) {
            b.port = s.port;
            b.pid = s.pid;
            rc = auth__broker(o, &b, redis.pid, &rows[i], e2e, e2e_s);
            if (ft_server_stop(&s) != 0)
                rc = -1;
        }
        if (b.key != NULL)
            fp_jwt_key_free(b.key, b.key_len);
        b.key = NULL;
    }
    if (redis.port > 0 && ft_server_stop(&redis) != 0)
        rc = -1;
    if (bench_env_stop(&e, rc == 0) != 0)
        rc = -1;
    return rc;
}

/* The options and the algorithms. Returns 0, 1 after --help, or -1. */
static int auth__setup(auth_opts *o, bench_common *c, fp_jwt_alg *algs, int *n, int argc,
                       char **argv)
{
    char buf[64], *tok, *save = NULL;
    int rc;

    memset(o, 0, sizeof(*o));
    rc = bench_parse("feedpush-bench-auth", auth__opts, sizeof(auth__opts) / sizeof(auth__opts[0]),
                     o, c, false, argc, argv);
    if (rc != 0)
        return rc;
    snprintf(buf, sizeof(buf), "%s", o->algs);
    *n = 0;
    for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        if (*n == AUTH__MAX_ALGS || fp_jwt_alg_parse(tok, &algs[*n]) != 0) {
            fprintf(stderr, "bench: --alg: \"%s\" is not HS256, RS256 or ES256\n", tok);
            return -1;
        }
        (*n)++;
    }
    if (*n == 0 || (o->port > 0) != (o->key != NULL) || (o->port > 0 && *n != 1)) {
        fprintf(stderr, "bench: --port and --key go together, with one --alg\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    auth_row rows[AUTH__MAX_ALGS];
    fp_jwt_alg algs[AUTH__MAX_ALGS];
    bench_common c;
    auth_opts o;
    double e2e_s = 0;
    long e2e = -1;
    int i, n, rc;
    bool failed;

    rc = auth__setup(&o, &c, algs, &n, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 1;
    signal(SIGPIPE, SIG_IGN);
    memset(rows, 0, sizeof(rows));
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
    for (i = 0; i < n; i++)
        rows[i].alg = algs[i];
    rc = auth__run(&o, &c, algs, n, rows, &e2e, &e2e_s);
    mosquitto_lib_cleanup();
    auth__print(rows, n, o.port == 0);
    if (e2e >= 0) {
        printf("\nEnd to end (service publishes QoS 1 to feed/<user>, user subscribed QoS 1, "
               "<= %d in flight)\n",
               o.window);
        printf("  %8s %9s %8s %11s\n", "sent", "received", "seconds", "messages/s");
        printf("  %8zu %9ld %8.2f %11.0f\n", o.messages, e2e, e2e_s,
               e2e_s > 0 ? (double)e2e / e2e_s : 0.0);
    }
    for (i = 0; i < n; i++) {
        if (rows[i].ran &&
            rows[i].ok != (algs[i] == FP_JWT_HS256 ? o.connections : o.pk_connections))
            failed = true;
    }
    if (o.messages > 0 && e2e != (long)o.messages)
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
