/*
 * bench_mqtt.c - MQTT load for feedpush-bench-auth, with libmosquitto.
 *
 * The connect storm: each client thread keeps `inflight` connections in
 * progress, one mosquitto instance each, driven by one poll() loop
 * (mosquitto_loop_read/write); a finished one (CONNACK received) sends
 * DISCONNECT, waits for the broker to close the connection, is destroyed
 * and replaced by the next token. The latency of one connect runs from
 * before mosquitto_connect() (TCP connect + CONNECT sent) to the CONNACK
 * callback; the rate counts whole cycles, up to the last close.
 *
 * The end-to-end run: a service client publishes QoS 1 messages to
 * feed/<user> and a user client subscribed to that topic receives them,
 * each on libmosquitto's own network thread.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

#include "bench.h"

#define MQTT__MAX_INFLIGHT 256

/* MQTT DISCONNECT: packet type 14, no flags, remaining length 0. */
static const unsigned char mqtt__disconnect_packet[2] = {0xe0, 0x00};

typedef enum {
    MQTT__IDLE,
    MQTT__CONNECTING, /* TCP connected, CONNECT sent, waiting for CONNACK */
    MQTT__CLOSING,    /* DISCONNECT sent (or refused), waiting for the broker's close */
} mqtt__state;

/* One connection in progress. */
typedef struct {
    struct mosquitto *m;
    size_t idx;
    mqtt__state state;
    int64_t t0; /* before mosquitto_connect */
    int64_t t_connack;
    int connack; /* -1 until the CONNACK */
} mqtt__slot;

typedef struct {
    const bench_broker *b;
    char **tokens;
    size_t n;
    const bench_connect_opts *o;
    atomic_size_t *next; /* next token index, shared by the threads */
    int64_t *lat_ns;     /* per index; -1 = failed */
    pthread_barrier_t *start;
    size_t ok, refused, errors;
    int64_t end_ns;
    mqtt__slot slots[MQTT__MAX_INFLIGHT];
} mqtt__worker;

static void mqtt__on_connect(struct mosquitto *m, void *obj, int rc)
{
    mqtt__slot *s = obj;

    (void)m;
    s->connack = rc;
    s->t_connack = fp_time_mono_ns();
}

/* Frees the slot's client (closing its socket if still open). */
static void mqtt__slot_free(mqtt__worker *w, mqtt__slot *s)
{
    mosquitto_destroy(s->m);
    s->m = NULL;
    s->state = MQTT__IDLE;
    w->end_ns = fp_time_mono_ns();
}

/*
 * Starts the connect of token first+idx in slot s: TCP connect and
 * CONNECT written. Returns 0, or -1 when it failed at once (counted as
 * an error).
 */
static int mqtt__slot_start(mqtt__worker *w, mqtt__slot *s, size_t idx)
{
    char cid[64], user[32];

    snprintf(cid, sizeof(cid), "%s%zu", w->o->id_prefix, w->o->first + idx);
    snprintf(user, sizeof(user), "u%zu", w->o->first + idx);
    s->idx = idx;
    s->connack = -1;
    s->m = mosquitto_new(cid, true, s);
    if (s->m == NULL)
        goto fail;
    mosquitto_connect_callback_set(s->m, mqtt__on_connect);
    if (mosquitto_username_pw_set(s->m, user, w->tokens[w->o->first + idx]) != MOSQ_ERR_SUCCESS)
        goto fail;
    s->t0 = fp_time_mono_ns();
    if (mosquitto_connect(s->m, w->b->host, w->b->port, 60) != MOSQ_ERR_SUCCESS)
        goto fail;
    s->state = MQTT__CONNECTING;
    return 0;
fail:
    if (s->m != NULL)
        mosquitto_destroy(s->m);
    s->m = NULL;
    s->state = MQTT__IDLE;
    w->lat_ns[idx] = -1;
    w->errors++;
    return -1;
}

/*
 * The CONNACK arrived: records the outcome, and for an accepted client
 * writes DISCONNECT itself. mosquitto_disconnect() would close the socket
 * right after sending it, leaving the TIME_WAIT on this side: on one host
 * 20,000 connects then fill the ephemeral port range and connect() slows
 * down. Real clients live on many hosts; here the broker closes first (as
 * it does on DISCONNECT), and the slot waits for that close.
 */
static void mqtt__slot_connack(mqtt__worker *w, mqtt__slot *s)
{
    ssize_t n;

    if (s->connack != 0) {
        w->lat_ns[s->idx] = -1;
        w->refused++;
        /* The broker closes after a refusal; libmosquitto may have seen it. */
        if (mosquitto_socket(s->m) < 0)
            mqtt__slot_free(w, s);
        else
            s->state = MQTT__CLOSING;
        return;
    }
    w->lat_ns[s->idx] = s->t_connack - s->t0;
    w->ok++;
    n = write(mosquitto_socket(s->m), mqtt__disconnect_packet, sizeof(mqtt__disconnect_packet));
    if (n != (ssize_t)sizeof(mqtt__disconnect_packet)) {
        mqtt__slot_free(w, s);
        return;
    }
    s->state = MQTT__CLOSING;
}

/* The connect failed before a CONNACK (closed, error or timeout). */
static void mqtt__slot_fail(mqtt__worker *w, mqtt__slot *s)
{
    w->lat_ns[s->idx] = -1;
    w->errors++;
    mqtt__slot_free(w, s);
}

/* Fills the idle slots with the next tokens. Returns the busy count. */
static int mqtt__fill(mqtt__worker *w, int k, bool *exhausted)
{
    size_t idx;
    int i, busy = 0;

    for (i = 0; i < k; i++) {
        while (w->slots[i].state == MQTT__IDLE && !*exhausted) {
            idx = atomic_fetch_add(w->next, 1);
            if (idx >= w->n) {
                *exhausted = true;
                break;
            }
            mqtt__slot_start(w, &w->slots[i], idx);
        }
        if (w->slots[i].state != MQTT__IDLE)
            busy++;
    }
    return busy;
}

/* Handles poll's verdict on slot s (revents of its socket). */
static void mqtt__slot_event(mqtt__worker *w, mqtt__slot *s, short revents, int64_t timeout_ns)
{
    int rc = MOSQ_ERR_SUCCESS;

    if (s->state == MQTT__CLOSING) {
        /* Nothing more is sent to us: readable means the broker closed. */
        if (revents != 0 || fp_time_mono_ns() - s->t_connack > timeout_ns)
            mqtt__slot_free(w, s);
        return;
    }
    if (revents & POLLOUT)
        rc = mosquitto_loop_write(s->m, 1);
    if (rc == MOSQ_ERR_SUCCESS && (revents & (POLLIN | POLLERR | POLLHUP)))
        rc = mosquitto_loop_read(s->m, 1);
    if (s->connack >= 0)
        mqtt__slot_connack(w, s);
    else if (rc != MOSQ_ERR_SUCCESS || fp_time_mono_ns() - s->t0 > timeout_ns)
        mqtt__slot_fail(w, s);
}

/*
 * One client thread: keeps o->inflight connects going until the shared
 * token index runs past n, polling all their sockets at once.
 */
static void *mqtt__worker_main(void *arg)
{
    mqtt__worker *w = arg;
    struct pollfd fds[MQTT__MAX_INFLIGHT];
    int map[MQTT__MAX_INFLIGHT];
    int k = w->o->inflight, i, nfds;
    int64_t timeout_ns = (int64_t)w->o->timeout_ms * 1000000;
    bool exhausted = false;
    mqtt__slot *s;

    pthread_barrier_wait(w->start);
    for (;;) {
        if (mqtt__fill(w, k, &exhausted) == 0 && exhausted)
            break;
        nfds = 0;
        for (i = 0; i < k; i++) {
            s = &w->slots[i];
            if (s->state == MQTT__IDLE)
                continue;
            fds[nfds].fd = mosquitto_socket(s->m);
            fds[nfds].events = POLLIN;
            if (s->state == MQTT__CONNECTING && mosquitto_want_write(s->m))
                fds[nfds].events |= POLLOUT;
            fds[nfds].revents = 0;
            map[nfds++] = i;
        }
        if (poll(fds, (nfds_t)nfds, 100) < 0 && errno != EINTR)
            break;
        for (i = 0; i < nfds; i++)
            mqtt__slot_event(w, &w->slots[map[i]], fds[i].revents, timeout_ns);
    }
    for (i = 0; i < k; i++) {
        if (w->slots[i].state == MQTT__CONNECTING)
            mqtt__slot_fail(w, &w->slots[i]);
        else if (w->slots[i].state == MQTT__CLOSING)
            mqtt__slot_free(w, &w->slots[i]);
    }
    return NULL;
}

static int mqtt__cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* Nearest-rank percentile p (0..100] of the sorted v[0..n-1], in ms. */
static double mqtt__pct_ms(const int64_t *v, size_t n, double p)
{
    size_t rank;

    if (n == 0)
        return 0.0;
    rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)v[rank - 1] / 1e6;
}

/* Fills the latency figures of r from the per-connect latencies. */
static void mqtt__latencies(const int64_t *lat_ns, size_t n, bench_connect_result *r)
{
    int64_t *ok;
    size_t i, k = 0;

    ok = malloc((n > 0 ? n : 1) * sizeof(*ok));
    if (ok == NULL)
        return;
    for (i = 0; i < n; i++) {
        if (lat_ns[i] >= 0)
            ok[k++] = lat_ns[i];
    }
    qsort(ok, k, sizeof(*ok), mqtt__cmp_i64);
    r->p50_ms = mqtt__pct_ms(ok, k, 50.0);
    r->p99_ms = mqtt__pct_ms(ok, k, 99.0);
    r->max_ms = k > 0 ? (double)ok[k - 1] / 1e6 : 0.0;
    free(ok);
}

int bench_connect_storm(const bench_broker *b, char **tokens, size_t n, const bench_connect_opts *o,
                        bench_connect_result *r)
{
    pthread_barrier_t start;
    atomic_size_t next;
    mqtt__worker *w = NULL;
    pthread_t *tids = NULL;
    int64_t *lat_ns = NULL, t0, end = 0;
    int i, started = 0, rc = -1;

    memset(r, 0, sizeof(*r));
    if (o->threads < 1 || o->inflight < 1 || o->inflight > MQTT__MAX_INFLIGHT)
        return -1;
    atomic_init(&next, 0);
    w = calloc((size_t)o->threads, sizeof(*w));
    tids = calloc((size_t)o->threads, sizeof(*tids));
    lat_ns = calloc(n > 0 ? n : 1, sizeof(*lat_ns));
    if (w == NULL || tids == NULL || lat_ns == NULL)
        goto out;
    if (pthread_barrier_init(&start, NULL, (unsigned)o->threads + 1) != 0)
        goto out;
    for (i = 0; i < o->threads; i++) {
        w[i].b = b;
        w[i].tokens = tokens;
        w[i].n = n;
        w[i].o = o;
        w[i].next = &next;
        w[i].lat_ns = lat_ns;
        w[i].start = &start;
        if (pthread_create(&tids[i], NULL, mqtt__worker_main, &w[i]) != 0)
            break;
        started++;
    }
    if (started < o->threads) {
        /* The barrier can never open: nothing to do but report. */
        fprintf(stderr, "bench: cannot start client threads\n");
        abort();
    }
    t0 = fp_time_mono_ns();
    pthread_barrier_wait(&start);
    for (i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
        r->ok += w[i].ok;
        r->refused += w[i].refused;
        r->errors += w[i].errors;
        if (w[i].end_ns > end)
            end = w[i].end_ns;
    }
    pthread_barrier_destroy(&start);
    r->seconds = end > t0 ? (double)(end - t0) / 1e9 : 0.0;
    r->rate = r->seconds > 0 ? (double)r->ok / r->seconds : 0.0;
    mqtt__latencies(lat_ns, n, r);
    rc = 0;
out:
    free(lat_ns);
    free(tids);
    free(w);
    return rc;
}

/* ------------------------------------------------------------ end to end */

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int connack[2]; /* -1 until CONNACK: [0] subscriber, [1] publisher */
    bool suback;
    size_t received;
    int64_t last_ns; /* when the latest message arrived */
} mqtt__e2e;

static void mqtt__e2e_signal(mqtt__e2e *st)
{
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
}

static void mqtt__e2e_on_connect_sub(struct mosquitto *m, void *obj, int rc)
{
    mqtt__e2e *st = obj;

    (void)m;
    pthread_mutex_lock(&st->lock);
    st->connack[0] = rc;
    mqtt__e2e_signal(st);
}

static void mqtt__e2e_on_connect_pub(struct mosquitto *m, void *obj, int rc)
{
    mqtt__e2e *st = obj;

    (void)m;
    pthread_mutex_lock(&st->lock);
    st->connack[1] = rc;
    mqtt__e2e_signal(st);
}

static void mqtt__e2e_on_subscribe(struct mosquitto *m, void *obj, int mid, int n,
                                   const int *granted)
{
    mqtt__e2e *st = obj;

    (void)m;
    (void)mid;
    pthread_mutex_lock(&st->lock);
    st->suback = n > 0 && granted[0] <= 2;
    mqtt__e2e_signal(st);
}

static void mqtt__e2e_on_message(struct mosquitto *m, void *obj,
                                 const struct mosquitto_message *msg)
{
    mqtt__e2e *st = obj;

    (void)m;
    (void)msg;
    pthread_mutex_lock(&st->lock);
    st->received++;
    st->last_ns = fp_time_mono_ns();
    mqtt__e2e_signal(st);
}

/* Waits (lock held) until cond_fn(st, arg) holds or ms pass. Returns
 * true when it holds. */
static bool mqtt__e2e_wait(mqtt__e2e *st, bool (*cond_fn)(const mqtt__e2e *, size_t), size_t arg,
                           int ms)
{
    struct timespec dl = fp_time_real_deadline(ms);

    while (!cond_fn(st, arg)) {
        if (pthread_cond_timedwait(&st->cond, &st->lock, &dl) == ETIMEDOUT)
            return cond_fn(st, arg);
    }
    return true;
}

static bool mqtt__e2e_connected(const mqtt__e2e *st, size_t which)
{
    return st->connack[which] >= 0;
}

static bool mqtt__e2e_subscribed(const mqtt__e2e *st, size_t unused)
{
    (void)unused;
    return st->suback;
}

/* At least `count` messages have arrived. */
static bool mqtt__e2e_room(const mqtt__e2e *st, size_t count)
{
    return st->received >= count;
}

/* Creates a client for sub/role with its callbacks, connects it and
 * starts its network thread. Returns it, or NULL. */
static struct mosquitto *mqtt__e2e_client(const bench_broker *b, mqtt__e2e *st, const char *id,
                                          const char *sub, fp_role role)
{
    struct mosquitto *m;
    char *tok;
    int rc;

    tok = bench_token_one(b, sub, role);
    if (tok == NULL)
        return NULL;
    m = mosquitto_new(id, true, st);
    if (m == NULL) {
        free(tok);
        return NULL;
    }
    mosquitto_connect_callback_set(m, role == FP_ROLE_SERVICE ? mqtt__e2e_on_connect_pub
                                                              : mqtt__e2e_on_connect_sub);
    mosquitto_subscribe_callback_set(m, mqtt__e2e_on_subscribe);
    mosquitto_message_callback_set(m, mqtt__e2e_on_message);
    rc = mosquitto_username_pw_set(m, sub, tok);
    free(tok);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_connect(m, b->host, b->port, 60);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_loop_start(m);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "bench: e2e client %s: %s\n", id, mosquitto_strerror(rc));
        mosquitto_destroy(m);
        return NULL;
    }
    return m;
}

static void mqtt__e2e_close(struct mosquitto *m)
{
    if (m == NULL)
        return;
    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);
}

/*
 * Publishes n messages with at most window unreceived at a time and
 * waits for the last one (10 s without progress ends the run). The clock
 * runs from the first publish to the last message received.
 */
int bench_e2e(const bench_broker *b, size_t n, int window, bench_e2e_result *r)
{
    const char *user = "bench-e2e-user", *topic = "feed/bench-e2e-user";
    char payload[64];
    struct mosquitto *sub = NULL, *pub = NULL;
    mqtt__e2e st;
    int64_t t0, t1;
    size_t i, last;
    int rc = -1;

    memset(r, 0, sizeof(*r));
    memset(&st, 0, sizeof(st));
    st.connack[0] = st.connack[1] = -1;
    pthread_mutex_init(&st.lock, NULL);
    pthread_cond_init(&st.cond, NULL);
    sub = mqtt__e2e_client(b, &st, "bench-e2e-sub", user, FP_ROLE_USER);
    pub = mqtt__e2e_client(b, &st, "bench-e2e-pub", "bench-svc", FP_ROLE_SERVICE);
    if (sub == NULL || pub == NULL)
        goto out;
    pthread_mutex_lock(&st.lock);
    if (!mqtt__e2e_wait(&st, mqtt__e2e_connected, 0, 5000) ||
        !mqtt__e2e_wait(&st, mqtt__e2e_connected, 1, 5000) || st.connack[0] != 0 ||
        st.connack[1] != 0) {
        pthread_mutex_unlock(&st.lock);
        fprintf(stderr, "bench: e2e clients not accepted (CONNACK %d, %d)\n", st.connack[0],
                st.connack[1]);
        goto out;
    }
    pthread_mutex_unlock(&st.lock);
    mosquitto_subscribe(sub, NULL, topic, 1);
    pthread_mutex_lock(&st.lock);
    if (!mqtt__e2e_wait(&st, mqtt__e2e_subscribed, 0, 5000)) {
        pthread_mutex_unlock(&st.lock);
        fprintf(stderr, "bench: e2e subscription to %s refused\n", topic);
        goto out;
    }
    pthread_mutex_unlock(&st.lock);

    t0 = fp_time_mono_ns();
    for (i = 0; i < n; i++) {
        if (i >= (size_t)window) {
            pthread_mutex_lock(&st.lock);
            if (!mqtt__e2e_wait(&st, mqtt__e2e_room, i - (size_t)window + 1, 10000)) {
                pthread_mutex_unlock(&st.lock);
                break;
            }
            pthread_mutex_unlock(&st.lock);
        }
        snprintf(payload, sizeof(payload), "{\"seq\":%zu,\"kind\":\"bench\"}", i);
        if (mosquitto_publish(pub, NULL, topic, (int)strlen(payload), payload, 1, false) !=
            MOSQ_ERR_SUCCESS)
            break;
        r->sent++;
    }
    pthread_mutex_lock(&st.lock);
    do {
        last = st.received;
    } while (!mqtt__e2e_wait(&st, mqtt__e2e_room, r->sent, 10000) && st.received > last);
    r->received = st.received;
    t1 = st.last_ns;
    pthread_mutex_unlock(&st.lock);
    r->seconds = t1 > t0 ? (double)(t1 - t0) / 1e9 : 0.0;
    r->rate = r->seconds > 0 ? (double)r->received / r->seconds : 0.0;
    rc = 0;
out:
    mqtt__e2e_close(pub);
    mqtt__e2e_close(sub);
    pthread_cond_destroy(&st.cond);
    pthread_mutex_destroy(&st.lock);
    return rc;
}
