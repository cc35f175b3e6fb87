/*
 * bridge_bench_subs.c - the online followers of feedpush-bench-bridge.
 *
 * Users f0 .. f<n-1> connect to the node's mosquitto as real clients (a
 * user token each, minted with the broker's HS256 secret; MQTT 3.1.1,
 * clean session, client id bb-f<i>) and subscribe to their feed/<uid> at
 * QoS 1, which also makes the plugin list them in online:<node>.
 *
 * A few threads drive all clients without libmosquitto's own thread per
 * client: each thread owns a slice of the clients, waits on one epoll set
 * for their sockets to become readable, calls mosquitto_loop_read() (a
 * QoS 1 PUBLISH is acknowledged from inside it, before the message
 * callback) and writes what is queued (SUBSCRIBE, PUBACKs) at once. At
 * most SUBS__CONNECTING connects per thread wait for their CONNACK, so
 * the broker's listen backlog never overflows.
 *
 * A receipt is counted for the current phase when the post text reads
 * "bb:<phase>:<ns>" (bb_post_text); its latency is the receipt time minus
 * that publish timestamp, both CLOCK_MONOTONIC of this machine.
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

#include "bridge_bench.h"
#include "fp_jwt.h"

#define SUBS__CONNECTING 32 /* connects awaiting their CONNACK, per thread */
#define SUBS__EVENTS 64
#define SUBS__TEXT_TAG "\"text\":\"bb:"

typedef struct subs__thread subs__thread;

typedef struct {
    struct mosquitto *m;
    subs__thread *t;
    size_t idx;
    int connack; /* -1 until the CONNACK */
    bool subscribed;
    bool refused; /* CONNACK other than 0, or the subscription refused */
    bool dead;    /* refused, failed or closed: no longer watched */
} subs__client;

struct subs__thread {
    bb_subs *s;
    pthread_t tid;
    bool started;
    int ep;
    subs__client *clients;
    size_t n, next, connecting;
    bb_lat_log lat; /* latencies of this thread's receipts */
};

struct bb_subs {
    const bb_env *e;
    subs__thread *threads;
    int n_threads;
    size_t n;
    atomic_bool stop;
    atomic_int phase;
    atomic_bool recording;
    atomic_uint_fast64_t hits, other;
    atomic_int_fast64_t last_ns;
    atomic_size_t ready, failed, dropped;
};

void bb_post_text(char *buf, size_t len, int phase, int64_t ns)
{
    snprintf(buf, len, "bb:%d:%lld", phase, (long long)ns);
}

/* ------------------------------------------------------------ callbacks */

static void subs__on_connect(struct mosquitto *m, void *obj, int rc)
{
    subs__client *c = obj;
    char topic[FP_ID_BUFSZ + 8];

    c->connack = rc;
    c->t->connecting--;
    if (rc != 0) {
        c->refused = true;
        return;
    }
    snprintf(topic, sizeof(topic), "feed/f%zu", c->idx);
    if (mosquitto_subscribe(m, NULL, topic, 1) != MOSQ_ERR_SUCCESS)
        c->refused = true;
}

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

/* Raises s->last_ns to now unless another thread already went past it. */
static void subs__last(bb_subs *s, int64_t now)
{
    int_fast64_t seen = atomic_load(&s->last_ns);

    while (seen < now && !atomic_compare_exchange_weak(&s->last_ns, &seen, now))
        ;
}

static void subs__on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    subs__client *c = obj;
    subs__thread *t = c->t;
    bb_subs *s = t->s;
    int64_t now = fp_time_mono_ns();
    char buf[1024];
    const char *p;
    long long ts;
    size_t n;
    int phase;

    (void)m;
    n = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    if (n >= sizeof(buf))
        n = sizeof(buf) - 1;
    memcpy(buf, msg->payload, n);
    buf[n] = '\0';
    p = strstr(buf, SUBS__TEXT_TAG);
    if (p == NULL || sscanf(p + strlen(SUBS__TEXT_TAG), "%d:%lld", &phase, &ts) != 2 ||
        phase != atomic_load(&s->phase)) {
        atomic_fetch_add(&s->other, 1);
        return;
    }
    atomic_fetch_add(&s->hits, 1);
    subs__last(s, now);
    if (!atomic_load(&s->recording))
        return;
    bb_lat_add(&t->lat, now - (int64_t)ts);
}

/* ------------------------------------------------------------ the threads */

/* Marks c dead (once), counts it and stops watching its socket. */
static void subs__kill(subs__thread *t, subs__client *c)
{
    int fd;

    if (c->dead)
        return;
    c->dead = true;
    if (c->connack < 0)
        t->connecting--;
    if (c->subscribed)
        atomic_fetch_add(&t->s->dropped, 1);
    else
        atomic_fetch_add(&t->s->failed, 1);
    fd = mosquitto_socket(c->m);
    if (fd >= 0)
        epoll_ctl(t->ep, EPOLL_CTL_DEL, fd, NULL);
}

/* Starts the connect of client i of thread t: TCP connect and CONNECT
 * written. A failure marks it dead. */
static void subs__start_one(subs__thread *t, subs__client *c)
{
    const bb_env *e = t->s->e;
    fp_jwt_mint_claims cl;
    struct epoll_event ev;
    char cid[32], user[24], *tok = NULL, err[256];
    int64_t now = (int64_t)time(NULL);

    c->t = t;
    c->connack = -1;
    snprintf(cid, sizeof(cid), "bb-f%zu", c->idx);
    snprintf(user, sizeof(user), "f%zu", c->idx);
    memset(&cl, 0, sizeof(cl));
    cl.sub = user;
    cl.iat = now;
    cl.exp = now + 3600;
    cl.role = FP_ROLE_USER;
    if (fp_jwt_mint(FP_JWT_HS256, e->key, e->key_len, &cl, &tok, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench: minting a token for %s: %s\n", user, err);
        goto fail;
    }
    c->m = mosquitto_new(cid, true, c);
    if (c->m == NULL)
        goto fail;
    mosquitto_connect_callback_set(c->m, subs__on_connect);
    mosquitto_subscribe_callback_set(c->m, subs__on_subscribe);
    mosquitto_message_callback_set(c->m, subs__on_message);
    if (mosquitto_username_pw_set(c->m, user, tok) != MOSQ_ERR_SUCCESS ||
        mosquitto_connect(c->m, "127.0.0.1", e->mqtt_port, 60) != MOSQ_ERR_SUCCESS)
        goto fail;
    free(tok);
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    if (epoll_ctl(t->ep, EPOLL_CTL_ADD, mosquitto_socket(c->m), &ev) != 0)
        goto fail_quiet;
    t->connecting++;
    return;
fail:
    free(tok);
fail_quiet:
    c->dead = true;
    atomic_fetch_add(&t->s->failed, 1);
}

/* Reads what arrived for c and writes what that queued. */
static void subs__service(subs__thread *t, subs__client *c, uint32_t events)
{
    int rc = MOSQ_ERR_SUCCESS;

    if (c->dead)
        return;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        rc = mosquitto_loop_read(c->m, 1);
    if (rc == MOSQ_ERR_SUCCESS && mosquitto_want_write(c->m))
        rc = mosquitto_loop_write(c->m, 1);
    if ((rc != MOSQ_ERR_SUCCESS || c->refused) && !atomic_load(&t->s->stop))
        subs__kill(t, c);
}

/* Once in a while: keepalive PINGs, and writes left over after EAGAIN. */
static void subs__sweep(subs__thread *t)
{
    size_t i;

    for (i = 0; i < t->next; i++) {
        if (t->clients[i].dead)
            continue;
        mosquitto_loop_misc(t->clients[i].m);
        subs__service(t, &t->clients[i], 0);
    }
}

static void *subs__thread_main(void *arg)
{
    subs__thread *t = arg;
    struct epoll_event evs[SUBS__EVENTS];
    int64_t next_sweep = fp_time_mono_ns();
    int i, k;

    while (!atomic_load(&t->s->stop)) {
        while (t->next < t->n && t->connecting < SUBS__CONNECTING)
            subs__start_one(t, &t->clients[t->next++]);
        k = epoll_wait(t->ep, evs, SUBS__EVENTS, 50);
        if (k < 0 && errno != EINTR)
            break;
        for (i = 0; i < k; i++)
            subs__service(t, evs[i].data.ptr, evs[i].events);
        if (fp_time_mono_ns() >= next_sweep) {
            subs__sweep(t);
            next_sweep = fp_time_mono_ns() + 500000000;
        }
    }
    for (i = 0; i < (int)t->next; i++) {
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

int bb_subs_start(bb_subs **out, const bb_env *e, size_t n, int threads, int timeout_ms)
{
    int64_t end = fp_time_mono_ns() + (int64_t)timeout_ms * 1000000;
    subs__thread *t;
    bb_subs *s;
    size_t i, per;
    int k;

    *out = NULL;
    if (threads < 1)
        threads = 1;
    if ((size_t)threads > n)
        threads = n > 0 ? (int)n : 1;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -1;
    *out = s;
    s->e = e;
    s->n = n;
    atomic_init(&s->phase, -1);
    s->threads = calloc((size_t)threads, sizeof(*s->threads));
    if (s->threads == NULL)
        return -1;
    s->n_threads = threads;
    for (k = 0; k < threads; k++)
        s->threads[k].ep = -1; /* nothing to close if setup stops early */
    for (k = 0; k < threads; k++) {
        t = &s->threads[k];
        t->s = s;
        if (bb_lat_init(&t->lat) != 0)
            return -1;
        /* Users are dealt round robin: f0, f<threads>, ... go to thread 0. */
        per = n / (size_t)threads + ((size_t)k < n % (size_t)threads ? 1 : 0);
        t->clients = calloc(per > 0 ? per : 1, sizeof(*t->clients));
        t->ep = epoll_create1(EPOLL_CLOEXEC);
        if (t->clients == NULL || t->ep < 0)
            return -1;
        t->n = per;
        for (i = 0; i < per; i++)
            t->clients[i].idx = (size_t)k + i * (size_t)threads;
    }
    for (k = 0; k < threads; k++) {
        if (pthread_create(&s->threads[k].tid, NULL, subs__thread_main, &s->threads[k]) != 0)
            return -1;
        s->threads[k].started = true;
    }
    while (atomic_load(&s->ready) + atomic_load(&s->failed) < n && fp_time_mono_ns() < end)
        usleep(10000);
    if (atomic_load(&s->ready) < n) {
        fprintf(stderr, "bench: %zu of %zu subscribers ready (%zu failed) after %d ms\n",
                atomic_load(&s->ready), n, atomic_load(&s->failed), timeout_ms);
        return -1;
    }
    return 0;
}

void bb_subs_stop(bb_subs *s)
{
    int k;

    if (s == NULL)
        return;
    atomic_store(&s->stop, true);
    for (k = 0; k < s->n_threads && s->threads != NULL; k++) {
        if (s->threads[k].started)
            pthread_join(s->threads[k].tid, NULL);
    }
    for (k = 0; k < s->n_threads && s->threads != NULL; k++) {
        if (s->threads[k].ep >= 0)
            close(s->threads[k].ep);
        free(s->threads[k].clients);
        bb_lat_free(&s->threads[k].lat);
    }
    free(s->threads);
    free(s);
}

size_t bb_subs_dropped(bb_subs *s)
{
    return atomic_load(&s->dropped);
}

int bb_subs_phase(bb_subs *s, int phase, size_t lat_capacity)
{
    subs__thread *t;
    int k, rc = 0;

    atomic_store(&s->recording, false);
    atomic_store(&s->phase, phase);
    atomic_store(&s->hits, 0);
    atomic_store(&s->other, 0);
    atomic_store(&s->last_ns, 0);
    for (k = 0; k < s->n_threads; k++) {
        t = &s->threads[k];
        /* Any thread may get every receipt (one follower online). */
        if (bb_lat_reset(&t->lat, lat_capacity) != 0)
            rc = -1;
    }
    atomic_store(&s->recording, lat_capacity > 0);
    return rc;
}

uint64_t bb_subs_received(bb_subs *s, uint64_t *other)
{
    if (other != NULL)
        *other = atomic_load(&s->other);
    return atomic_load(&s->hits);
}

int64_t bb_subs_last_ns(bb_subs *s)
{
    return atomic_load(&s->last_ns);
}

int64_t *bb_subs_latencies(bb_subs *s, size_t *n)
{
    bb_lat_log **logs = calloc((size_t)s->n_threads, sizeof(*logs));
    int64_t *all;
    int k;

    *n = 0;
    atomic_store(&s->recording, false);
    if (logs == NULL)
        return NULL;
    for (k = 0; k < s->n_threads; k++)
        logs[k] = &s->threads[k].lat;
    all = bb_lat_merge(logs, s->n_threads, n);
    free(logs);
    return all;
}
