/*
 * bench_subs.c - the subscriber pool: users f0..f<U-1> as real MQTT
 * clients, f<j> on node j % N only, so per-node counts show which node
 * delivered what. A few threads drive all clients through one epoll set
 * each (mosquitto_loop_read acknowledges a QoS 1 PUBLISH), at most
 * cfg.connecting connects per thread in progress. A receipt counts for
 * the phase its text names (bench_post_text); its latency is the receipt
 * time minus the publish time the text carries. In a connect storm
 * (cfg.storm) each client only connects, is timed and disconnects.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

#include "bench_lib.h"

#define SUBS__CONNECTING 32
#define SUBS__EVENTS 64
#define SUBS__TAG "\"text\":\"fp:"

typedef struct subs__thread subs__thread;

typedef struct {
    struct mosquitto *m;
    subs__thread *t;
    size_t idx;            /* user f<idx> */
    int node;              /* 0-based */
    int connack;           /* -1 until the CONNACK */
    int64_t t0, t_connack; /* before mosquitto_connect; the CONNACK */
    bool subscribed, refused, dead;
    bool closing; /* storm: accepted, DISCONNECT sent, the broker to close */
} subs__client;

struct subs__thread {
    bench_subs *s;
    pthread_t tid;
    bool started;
    int ep;
    subs__client *clients;
    size_t n, next, connecting;
};

struct bench_subs {
    bench_subs_cfg cfg;
    subs__thread *threads;
    int n_threads;
    atomic_uint_fast64_t *per_user;
    atomic_bool stop, recording;
    atomic_int phase;
    atomic_uint_fast64_t hits, other;
    atomic_int_fast64_t last_ns;
    atomic_size_t ready, failed, dropped;
    atomic_int_fast64_t *lat; /* cfg.lat_capacity latencies of the phase */
    atomic_size_t n_lat;      /* taken so far (may exceed the capacity) */
};

/* ------------------------------------------------------------ callbacks */

/*
 * A storm's CONNACK: its time goes in cfg.storm, and an accepted client
 * writes DISCONNECT itself. mosquitto_disconnect() would close the socket
 * right after it, leaving the TIME_WAIT here: 20,000 connects on one host
 * then fill the ephemeral port range. The broker closes first; the
 * client waits for that (subs__service).
 */
static void subs__storm_connack(struct mosquitto *m, subs__client *c, int rc)
{
    static const unsigned char disconnect[2] = {0xe0, 0x00}; /* type 14, length 0 */

    c->t_connack = fp_time_mono_ns();
    c->t->s->cfg.storm[c->idx] = rc == 0 ? c->t_connack - c->t0 : BENCH_CONNECT_REFUSED;
    c->closing = rc == 0 && write(mosquitto_socket(m), disconnect, 2) == 2;
    c->refused = !c->closing;
}

static void subs__on_connect(struct mosquitto *m, void *obj, int rc)
{
    subs__client *c = obj;
    char topic[FP_ID_BUFSZ + 8];

    c->connack = rc;
    if (c->t->s->cfg.storm != NULL) {
        subs__storm_connack(m, c, rc);
        return;
    }
    c->t->connecting--;
    snprintf(topic, sizeof(topic), "feed/f%zu", c->idx);
    if (rc != 0 || mosquitto_subscribe(m, NULL, topic, 1) != MOSQ_ERR_SUCCESS)
        c->refused = true;
}

/* The SUBACK: the client is ready, or refused when the grant is not QoS 0-2. */
static void subs__on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted)
{
    subs__client *c = obj;

    (void)m;
    (void)mid;
    if (c->subscribed)
        return;
    if (n > 0 && granted[0] >= 0 && granted[0] <= 2) {
        c->subscribed = true;
        atomic_fetch_add(&c->t->s->ready, 1);
    } else {
        c->refused = true;
    }
}

/* Counts a receipt of the current phase per user, raises
 * last_ns, and records its latency while the phase records them. */
static void subs__on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    subs__client *c = obj;
    bench_subs *s = c->t->s;
    int64_t now = fp_time_mono_ns();
    int_fast64_t seen;
    char buf[1024];
    const char *p;
    long long ts;
    size_t n, seq;
    int phase;

    (void)m;
    n = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    n = n < sizeof(buf) ? n : sizeof(buf) - 1;
    memcpy(buf, msg->payload, n);
    buf[n] = '\0';
    p = strstr(buf, SUBS__TAG);
    if (p == NULL || sscanf(p + strlen(SUBS__TAG), "%d:%zu:%lld", &phase, &seq, &ts) != 3 ||
        phase != atomic_load(&s->phase)) {
        atomic_fetch_add(&s->other, 1);
        return;
    }
    atomic_fetch_add(&s->hits, 1);
    atomic_fetch_add(&s->per_user[c->idx], 1);
    seen = atomic_load(&s->last_ns);
    while (seen < now && !atomic_compare_exchange_weak(&s->last_ns, &seen, now))
        ;
    if (!atomic_load(&s->recording))
        return;
    n = atomic_fetch_add(&s->n_lat, 1);
    if (n < s->cfg.lat_capacity)
        atomic_store_explicit(&s->lat[n], now - (int64_t)ts, memory_order_relaxed);
}

/* ------------------------------------------------------------ the threads */

/* Marks c dead (once), counts it and stops watching its socket; a
 * storm's client is done: counted ready when it got that far, and freed. */
static void subs__kill(subs__thread *t, subs__client *c)
{
    bench_subs *s = t->s;
    int fd;

    if (c->dead)
        return;
    c->dead = true;
    if (c->connack < 0 || s->cfg.storm != NULL)
        t->connecting--;
    if (s->cfg.storm != NULL)
        atomic_fetch_add(c->closing ? &s->ready : &s->failed, 1);
    else
        atomic_fetch_add(c->subscribed ? &s->dropped : &s->failed, 1);
    fd = mosquitto_socket(c->m);
    if (fd >= 0)
        epoll_ctl(t->ep, EPOLL_CTL_DEL, fd, NULL);
    if (s->cfg.storm != NULL) {
        mosquitto_destroy(c->m);
        c->m = NULL;
    }
}

/* Starts the connect of c to its node: TCP connect and CONNECT written.
 * A failure marks it dead. */
static void subs__start_one(subs__thread *t, subs__client *c)
{
    const bench_subs_cfg *cfg = &t->s->cfg;
    struct epoll_event ev;
    char cid[32], user[24], *tok = NULL;

    c->t = t;
    c->connack = -1;
    snprintf(user, sizeof(user), "f%zu", c->idx);
    snprintf(cid, sizeof(cid), "bench-%s", user);
    if (cfg->tokens == NULL) {
        tok = ft_token_mint(cfg->alg, cfg->key, cfg->key_len, user, FP_ROLE_USER, time(NULL),
                            time(NULL) + 3600);
        if (tok == NULL)
            goto fail;
    }
    c->m = mosquitto_new(cid, true, c);
    if (c->m == NULL)
        goto fail;
    mosquitto_connect_callback_set(c->m, subs__on_connect);
    mosquitto_subscribe_callback_set(c->m, subs__on_subscribe);
    mosquitto_message_callback_set(c->m, subs__on_message);
    c->t0 = fp_time_mono_ns();
    if (mosquitto_username_pw_set(c->m, user, tok != NULL ? tok : cfg->tokens[c->idx]) !=
            MOSQ_ERR_SUCCESS ||
        mosquitto_connect(c->m, "127.0.0.1", cfg->ports[c->node], 60) != MOSQ_ERR_SUCCESS)
        goto fail;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    if (epoll_ctl(t->ep, EPOLL_CTL_ADD, mosquitto_socket(c->m), &ev) != 0)
        goto fail;
    free(tok);
    t->connecting++;
    return;
fail:
    free(tok);
    mosquitto_destroy(c->m);
    c->m = NULL;
    c->dead = true;
    atomic_fetch_add(&t->s->failed, 1);
}

/* Reads what arrived for c and writes what that queued. */
static void subs__service(subs__thread *t, subs__client *c, uint32_t events)
{
    int rc = MOSQ_ERR_SUCCESS;

    if (c->dead)
        return;
    if (c->closing) {
        /* Nothing more is sent to a storm's client: readable means closed. */
        if (events != 0)
            subs__kill(t, c);
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        rc = mosquitto_loop_read(c->m, 1);
    if (rc == MOSQ_ERR_SUCCESS && mosquitto_want_write(c->m))
        rc = mosquitto_loop_write(c->m, 1);
    if ((rc != MOSQ_ERR_SUCCESS || c->refused) && !atomic_load(&t->s->stop))
        subs__kill(t, c);
}

/* One thread: starts its clients a few at a time, services their sockets,
 * every 0.5 s keepalives, writes left over after EAGAIN and, in a storm,
 * timeouts. */
static void *subs__thread_main(void *arg)
{
    subs__thread *t = arg;
    struct epoll_event evs[SUBS__EVENTS];
    const bench_subs_cfg *cfg = &t->s->cfg;
    int64_t next_sweep = fp_time_mono_ns(), late = (int64_t)cfg->timeout_ms * 1000000;
    int k, j, connecting = cfg->connecting > 0 ? cfg->connecting : SUBS__CONNECTING;
    subs__client *c;
    size_t i;

    while (!atomic_load(&t->s->stop)) {
        while (t->next < t->n && t->connecting < (size_t)connecting)
            subs__start_one(t, &t->clients[t->next++]);
        k = epoll_wait(t->ep, evs, SUBS__EVENTS, 50);
        if (k < 0 && errno != EINTR)
            break;
        for (j = 0; j < k; j++)
            subs__service(t, evs[j].data.ptr, evs[j].events);
        if (fp_time_mono_ns() < next_sweep)
            continue;
        for (i = 0, c = t->clients; i < t->next; i++, c++) {
            /* A storm's client waits cfg.timeout_ms at most for each step. */
            if (!c->dead && cfg->storm != NULL &&
                next_sweep - (c->connack < 0 ? c->t0 : c->t_connack) > late)
                subs__kill(t, c);
            else if (!c->dead)
                mosquitto_loop_misc(c->m);
            subs__service(t, c, 0);
        }
        next_sweep = fp_time_mono_ns() + 500000000;
    }
    for (i = 0; i < t->next; i++) {
        if (t->clients[i].m == NULL)
            continue;
        if (!t->clients[i].dead)
            mosquitto_disconnect(t->clients[i].m);
        mosquitto_destroy(t->clients[i].m);
        t->clients[i].m = NULL;
    }
    return NULL;
}

/* ------------------------------------------------------------ API */

/* Users are dealt round robin: f<k>, f<k + threads>, ... go to thread k. */
int bench_subs_start(bench_subs **out, const bench_subs_cfg *cfg)
{
    int64_t end = fp_time_mono_ns() + (int64_t)cfg->timeout_ms * 1000000;
    size_t i, per, n = cfg->users;
    subs__thread *t;
    bench_subs *s;
    int k, threads = cfg->threads;

    *out = NULL;
    if (cfg->n_nodes < 1 || cfg->n_nodes > BENCH_MAX_NODES || n == 0)
        return -1;
    threads = threads < 1 ? 1 : threads;
    threads = (size_t)threads > n ? (int)n : threads;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -1;
    *out = s;
    s->cfg = *cfg;
    atomic_init(&s->phase, -1);
    s->per_user = calloc(n, sizeof(*s->per_user));
    s->threads = calloc((size_t)threads, sizeof(*s->threads));
    s->lat = cfg->lat_capacity > 0 ? calloc(cfg->lat_capacity, sizeof(*s->lat)) : NULL;
    if (s->per_user == NULL || s->threads == NULL || (cfg->lat_capacity > 0 && s->lat == NULL))
        return -1;
    s->n_threads = threads;
    for (k = 0; k < threads; k++)
        s->threads[k].ep = -1; /* nothing to close if setup stops early */
    for (k = 0; k < threads; k++) {
        t = &s->threads[k];
        t->s = s;
        per = n / (size_t)threads + ((size_t)k < n % (size_t)threads ? 1 : 0);
        t->clients = calloc(per > 0 ? per : 1, sizeof(*t->clients));
        t->ep = epoll_create1(EPOLL_CLOEXEC);
        if (t->clients == NULL || t->ep < 0)
            return -1;
        t->n = per;
        for (i = 0; i < per; i++) {
            t->clients[i].idx = (size_t)k + i * (size_t)threads;
            t->clients[i].node = (int)(t->clients[i].idx % (size_t)cfg->n_nodes);
        }
    }
    for (i = 0; i < n && cfg->storm != NULL; i++)
        cfg->storm[i] = BENCH_CONNECT_ERROR;
    for (k = 0; k < threads; k++) {
        if (pthread_create(&s->threads[k].tid, NULL, subs__thread_main, &s->threads[k]) != 0)
            return -1;
        s->threads[k].started = true;
    }
    /* A storm ends by itself: every connect has its own timeout. */
    while (atomic_load(&s->ready) + atomic_load(&s->failed) < n &&
           (cfg->storm != NULL || fp_time_mono_ns() < end))
        usleep(10000);
    if (cfg->storm == NULL && atomic_load(&s->ready) < n) {
        fprintf(stderr, "bench: %zu of %zu subscribers ready (%zu failed) after %d ms\n",
                atomic_load(&s->ready), n, atomic_load(&s->failed), cfg->timeout_ms);
        return -1;
    }
    return 0;
}

void bench_subs_stop(bench_subs *s)
{
    int k;

    if (s == NULL)
        return;
    atomic_store(&s->stop, true);
    for (k = 0; k < s->n_threads; k++) {
        if (s->threads[k].started)
            pthread_join(s->threads[k].tid, NULL);
    }
    for (k = 0; k < s->n_threads; k++) {
        if (s->threads[k].ep >= 0)
            close(s->threads[k].ep);
        free(s->threads[k].clients);
    }
    free(s->threads);
    free(s->per_user);
    free(s->lat);
    free(s);
}

size_t bench_subs_dropped(bench_subs *s)
{
    return atomic_load(&s->dropped);
}

void bench_subs_phase(bench_subs *s, int phase, bool record)
{
    size_t j;

    atomic_store(&s->recording, false);
    atomic_store(&s->phase, -1);
    for (j = 0; j < s->cfg.users; j++)
        atomic_store(&s->per_user[j], 0);
    atomic_store(&s->hits, 0);
    atomic_store(&s->other, 0);
    atomic_store(&s->last_ns, 0);
    atomic_store(&s->n_lat, 0);
    atomic_store(&s->recording, record && s->lat != NULL);
    atomic_store(&s->phase, phase);
}

uint64_t bench_subs_received(bench_subs *s, uint64_t *other)
{
    if (other != NULL)
        *other = atomic_load(&s->other);
    return atomic_load(&s->hits);
}

uint64_t bench_subs_user(bench_subs *s, size_t j)
{
    return j < s->cfg.users ? atomic_load(&s->per_user[j]) : 0;
}

/* The receipts of its users f<i>, f<i + N>, ... */
uint64_t bench_subs_node(bench_subs *s, int i)
{
    uint64_t sum = 0;
    size_t j;

    for (j = (size_t)i; i >= 0 && j < s->cfg.users; j += (size_t)s->cfg.n_nodes)
        sum += atomic_load(&s->per_user[j]);
    return sum;
}

int64_t bench_subs_last_ns(bench_subs *s)
{
    return atomic_load(&s->last_ns);
}

/* The phase's latencies, copied (a late receipt may still write), sorted
 * and summed up. */
void bench_subs_lat(bench_subs *s, bench_lat *out)
{
    size_t i, n = atomic_load(&s->n_lat);
    int64_t *all;

    atomic_store(&s->recording, false);
    n = n < s->cfg.lat_capacity ? n : s->cfg.lat_capacity;
    all = malloc((n > 0 ? n : 1) * sizeof(*all));
    n = all != NULL ? n : 0;
    for (i = 0; i < n; i++)
        all[i] = atomic_load_explicit(&s->lat[i], memory_order_relaxed);
    bench_sort_i64(all, n);
    out->n = n;
    out->p50_ms = bench_pct_ms(all, n, 50.0);
    out->p99_ms = bench_pct_ms(all, n, 99.0);
    out->max_ms = n > 0 ? (double)all[n - 1] / 1e6 : 0.0;
    free(all);
}

uint64_t bench_subs_await(bench_subs *s, uint64_t expected, bool (*more)(void *), void *arg)
{
    int64_t progress = fp_time_mono_ns(), stall = (int64_t)BENCH_STALL_MS * (s ? 1 : 4) * 1000000;
    uint64_t got, prev = 0;
    bool pending;

    for (;;) {
        pending = more != NULL && more(arg);
        got = s != NULL ? bench_subs_received(s, NULL) : 0;
        if (got >= expected && !pending)
            return got;
        if (got != prev) {
            prev = got;
            progress = fp_time_mono_ns();
        } else if (fp_time_mono_ns() - progress > stall) {
            return got;
        }
        usleep(2000);
    }
}
