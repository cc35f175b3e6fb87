/*
 * backend.c - feed-gateway's Redis store (fp_store) and RabbitMQ
 * publisher (fp_amqp, publisher only, with confirms), both from the
 * backend library, and the publisher thread the HTTP workers share.
 *
 * Both are opened at start; one that is down then is logged and opened
 * on first use. After a failure a backend is not retried for
 * BACKEND__RETRY_US, so while it is down requests get their 503 at once
 * instead of each waiting for a connect timeout. Every outage is logged
 * once when it starts and once when it ends.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/eventfd.h>

#include "fp_event_batch.h"
#include "fp_log.h"
#include "gateway.h"

#define BACKEND__RETRY_US 1000000
#define BACKEND__KEEPALIVE_MS 1000 /* an idle publisher's heartbeat check, at most */
/* With publish_batch above 1: messages awaiting their confirms before the
 * next events wait, to go together in one message when a confirm comes. */
#define BACKEND__IN_FLIGHT 2
#define BACKEND__BATCH_BYTES (256 * 1024) /* a batch grows no bigger */

/* Logs the start of an outage (once; at debug level for a worker, whose
 * outages the health loop reports) and arms the retry delay. */
static void backend__down(const fg_gateway *gw, int64_t *retry_us, const char *what,
                          const char *why)
{
    if (*retry_us == 0)
        fp_log(gw->quiet ? FP_LOG_DEBUG : FP_LOG_WARN,
               "%s unreachable: %s (requests that need it get 503 until it is back)", what, why);
    *retry_us = fp_time_mono_us() + BACKEND__RETRY_US;
}

/* Logs the end of an outage. */
static void backend__up(const fg_gateway *gw, int64_t *retry_us, const char *what)
{
    if (*retry_us != 0)
        fp_log(gw->quiet ? FP_LOG_DEBUG : FP_LOG_INFO, "%s reachable again", what);
    *retry_us = 0;
}

int fg_backend_open(fg_gateway *gw, bool store, bool amqp)
{
    fp_store_config sc = {.timeout_ms = (int)gw->cfg.timeout_ms,
                          .feed_length = (int)gw->cfg.feed_length,
                          .page_bytes = (size_t)gw->cfg.max_page_bytes};
    fp_amqp_config ac = {.node_id = NULL,
                         .prefetch = 1,
                         .timeout_ms = (int)gw->cfg.timeout_ms};
    int rc;

    fp_store_options_apply(&gw->cfg.redis, &sc);
    if (store) {
        rc = fp_store_open(&gw->store, &sc);
        if (rc == -ENOMEM)
            return rc;
        if (rc == -EINVAL) {
            fp_error("redis: %s", fp_store_errstr(gw->store));
            return rc;
        }
        if (rc != 0)
            backend__down(gw, &gw->store_retry_us, "redis", fp_store_errstr(gw->store));
        if (gw->shared != NULL)
            fp_store_set_body_cache(gw->store, fg_bodies_cache(gw->shared->bodies));
    }
    if (!amqp)
        return 0;
    fp_amqp_options_apply(&gw->cfg.amqp, &ac);
    rc = fp_amqp_open(&gw->amqp, &ac);
    if (rc == -ENOMEM || gw->amqp == NULL)
        return -ENOMEM;
    if (rc != 0)
        backend__down(gw, &gw->amqp_retry_us, "rabbitmq", fp_amqp_errstr(gw->amqp));
    return 0;
}

void fg_backend_copy(fg_gateway *dst, const fg_gateway *gw)
{
    *dst = *gw;
    dst->store = NULL;
    dst->amqp = NULL;
    dst->store_retry_us = 0;
    dst->amqp_retry_us = 0;
    dst->quiet = true; /* the health loop reports the outages */
}

void fg_backend_close(fg_gateway *gw)
{
    fp_store_free(gw->store);
    gw->store = NULL;
    fp_amqp_free(gw->amqp);
    gw->amqp = NULL;
}

/*
 * Is a reconnect attempt due: no failure pending, its retry delay over,
 * or (a worker's or the publisher's link) the health loop has seen the
 * backend answer since that failure, so nobody waits out the delay once
 * /healthz says it is back.
 */
static bool backend__retry_due(const fg_gateway *gw, int64_t retry_us, bool redis)
{
    bool up;

    if (retry_us == 0 || fp_time_mono_us() >= retry_us)
        return true;
    if (gw->shared == NULL || !gw->quiet)
        return false;
    pthread_mutex_lock(&gw->shared->lock);
    up = gw->shared->health_known && (redis ? gw->shared->redis_ok : gw->shared->amqp_ok) &&
         gw->shared->health_us > retry_us - BACKEND__RETRY_US;
    pthread_mutex_unlock(&gw->shared->lock);
    return up;
}

int fg_backend_store_reconnect(fg_gateway *gw)
{
    if (!backend__retry_due(gw, gw->store_retry_us, true))
        return -EIO;
    if (fp_store_reconnect(gw->store) != 0) {
        backend__down(gw, &gw->store_retry_us, "redis", fp_store_errstr(gw->store));
        return -EIO;
    }
    backend__up(gw, &gw->store_retry_us, "redis");
    return 0;
}

fp_store *fg_backend_store(fg_gateway *gw)
{
    /* A store that failed (or never connected) reports an error until it
     * is reconnected; a healthy one has err 0 since its last connect. */
    if (gw->store_retry_us != 0 && fg_backend_store_reconnect(gw) != 0)
        return NULL;
    return gw->store;
}

/* Reconnects the publisher unless a recent attempt failed. 0 or -EIO. */
static int backend__amqp_reconnect(fg_gateway *gw)
{
    if (!backend__retry_due(gw, gw->amqp_retry_us, false))
        return -EIO;
    if (fp_amqp_reconnect(gw->amqp) != 0) {
        backend__down(gw, &gw->amqp_retry_us, "rabbitmq", fp_amqp_errstr(gw->amqp));
        return -EIO;
    }
    backend__up(gw, &gw->amqp_retry_us, "rabbitmq");
    return 0;
}

/* An event to publish: its routing key and JSON body; with the
 * publisher, the outcome for the worker waiting on it. */
typedef struct backend__job {
    const char *rk;
    const char *body;
    size_t len;
    int rc;
    bool done;
    int tries;           /* links the publisher published it on */
    uint64_t seq;        /* its publish sequence number there (0: not yet) */
    pthread_cond_t cond; /* the publisher's: signalled when done */
    struct backend__job *next;
} backend__job;

/* The work done on a publisher link: the jobs, or a ping (jobs NULL). */
typedef struct {
    backend__job *jobs;
} backend__op;

/* Runs op once on the current link: every job published, then their
 * confirms awaited together. 0 or -EIO. */
static int backend__amqp_once(fg_gateway *gw, const backend__op *op)
{
    const backend__job *j;

    if (op->jobs == NULL)
        return fp_amqp_ping(gw->amqp);
    for (j = op->jobs; j != NULL; j = j->next) {
        if (fp_amqp_publish(gw->amqp, FP_EXCHANGE_EVENTS, j->rk, j->body, j->len) != 0)
            return -EIO;
    }
    return fp_amqp_confirm(gw->amqp);
}

/*
 * Runs op; when the link is broken (or was closed while idle) it
 * reconnects and runs it once more, all of it. A publish repeated that
 * way is harmless: every event is idempotent downstream. 0 or -EIO.
 */
static int backend__amqp_run(fg_gateway *gw, const backend__op *op)
{
    int rc;

    if (gw->amqp == NULL)
        return -EIO; /* a link without a publisher (an HTTP worker's) */
    if (gw->amqp_retry_us != 0 && backend__amqp_reconnect(gw) != 0)
        return -EIO;
    rc = backend__amqp_once(gw, op);
    if (rc == 0)
        return 0;
    fp_info("rabbitmq: %s; reconnecting", fp_amqp_errstr(gw->amqp));
    gw->amqp_retry_us = 0;
    rc = backend__amqp_reconnect(gw);
    if (rc == 0)
        rc = backend__amqp_once(gw, op);
    if (rc != 0)
        backend__down(gw, &gw->amqp_retry_us, "rabbitmq", fp_amqp_errstr(gw->amqp));
    return rc;
}

/* ------------------------------------------------------------ the publisher */

/*
 * The workers' one publisher link, with many events in flight. A worker
 * queues its event and waits. The publisher thread publishes what is
 * queued at once, whatever still awaits its confirm, and answers each
 * worker when RabbitMQ has confirmed its event (confirms come in order,
 * often several in one). While it waits for confirms it also waits on
 * an eventfd, which a worker writes when it queues an event then, so a
 * new event never waits for older ones' confirms.
 *
 * When the link breaks, the thread reconnects and publishes again every
 * event not yet confirmed, in order (harmless: every event is idempotent
 * downstream); an event whose second link broke too, or every one when
 * RabbitMQ cannot be reached, fails and its worker answers 503.
 */
struct fg_publisher {
    fg_gateway gw; /* its link: gw.amqp */
    pthread_mutex_t lock;
    pthread_cond_t work;       /* a job queued, or the stop, while it is idle */
    int wake;                  /* eventfd: the same while it waits for confirms */
    bool polling;              /* it waits for confirms: a new job writes wake */
    backend__job *head, *tail; /* queued by workers, not taken yet */
    bool stop;
    pthread_t tid;
    /* The thread's own: taken jobs not done yet, oldest first (those
     * published on the current link first, in publish order). */
    backend__job *sent, *sent_tail;
    char blocked[64]; /* RabbitMQ blocks the link: its reason; "" when not (lock) */
    bool was_blocked; /* the thread's own: blocked[] is not "" */
    const char **bodies;                /* a batch's bodies and their lengths, */
    size_t *lens;                       /* cfg.publish_batch of each */
    _Atomic uint64_t events, messages, batches; /* published (again after a relink too) */
};

/* Waits (p->lock held) for a job or the stop, up to a keepalive period:
 * BACKEND__KEEPALIVE_MS, or half the AMQP heartbeat when that is shorter
 * (RabbitMQ drops a link silent for two heartbeats, and the library sends
 * one only when a heartbeat passed since its last frame: checking at half
 * of it leaves half a heartbeat to spare). 0 when woken, ETIMEDOUT when
 * the period passed. */
static int backend__idle_wait(fg_publisher *p)
{
    int64_t half = p->gw.cfg.amqp.heartbeat * 1000 / 2;
    struct timespec until = fp_time_mono_deadline(
        half > 0 && half < BACKEND__KEEPALIVE_MS ? (int)half : BACKEND__KEEPALIVE_MS);

    return pthread_cond_timedwait(&p->work, &p->lock, &until) == ETIMEDOUT ? ETIMEDOUT : 0;
}

/* The idle publisher link's heartbeats (fp_amqp_keepalive). A link found
 * broken is reconnected now, not by the next request; one that is down
 * is retried here as on use (backend__amqp_reconnect's window). */
static void backend__keepalive(fg_gateway *gw)
{
    if (gw->amqp == NULL)
        return;
    if (gw->amqp_retry_us == 0) {
        if (fp_amqp_keepalive(gw->amqp) == 0)
            return;
        fp_info("rabbitmq: %s; reconnecting", fp_amqp_errstr(gw->amqp));
    }
    backend__amqp_reconnect(gw);
}

/* Ends job with rc and wakes its worker, who may free it at once.
 * p->lock held. */
static void backend__finish(backend__job *j, int rc)
{
    j->rc = rc;
    j->done = true;
    pthread_cond_signal(&j->cond);
}

/* Fails every job taken with rc, its worker answers 503. */
static void backend__fail_sent(fg_publisher *p, int rc)
{
    backend__job *j;

    pthread_mutex_lock(&p->lock);
    while (p->sent != NULL) {
        j = p->sent;
        p->sent = j->next;
        backend__finish(j, rc);
    }
    p->sent_tail = NULL;
    pthread_mutex_unlock(&p->lock);
}

/*
 * Publishes first and the jobs after it, up to cfg.publish_batch of them
 * and BACKEND__BATCH_BYTES, as one message: a job alone as its event, more
 * as a batch (fp_event_batch.h); without memory for the batch, first goes
 * alone. *next: the first job left. 0, or -EIO when the link broke.
 */
static int backend__publish_group(fg_publisher *p, backend__job *first, backend__job **next)
{
    fg_gateway *gw = &p->gw;
    size_t n = 0, bytes = 0, len = 0;
    backend__job *j;
    char *batch = NULL;
    int rc;

    for (j = first; j != NULL && n < (size_t)gw->cfg.publish_batch; j = j->next) {
        if (n > 0 && bytes + j->len > BACKEND__BATCH_BYTES)
            break;
        p->bodies[n] = j->body;
        p->lens[n++] = j->len;
        bytes += j->len;
    }
    if (n > 1)
        batch = fp_event_batch_join(p->bodies, p->lens, n, &len);
    if (batch == NULL) {
        n = 1;
        rc = fp_amqp_publish(gw->amqp, FP_EXCHANGE_EVENTS, first->rk, first->body, first->len);
    } else {
        rc = fp_amqp_publish(gw->amqp, FP_EXCHANGE_EVENTS, FP_EVENT_BATCH_TYPE, batch, len);
        free(batch);
    }
    if (rc != 0)
        return -EIO;
    p->events += n;
    p->messages++;
    p->batches += n > 1;
    for (j = first; n > 0; j = j->next, n--) {
        j->seq = fp_amqp_published(gw->amqp);
        j->tries++;
    }
    *next = j;
    return 0;
}

int fg_publisher_render(fg_publisher *p, char **out, size_t *len, size_t *cap)
{
    fg_metric_value v[] = {
        {"feedpush_gateway_events_published_total", "Events published to RabbitMQ.", false, 0},
        {"feedpush_gateway_event_messages_total", "RabbitMQ messages those events went in.", false,
         0},
        {"feedpush_gateway_event_batches_total",
         "Those messages that were batches of two events or more.", false, 0},
        {"feedpush_gateway_rabbitmq_blocked",
         "1 while RabbitMQ blocks the publisher (a resource alarm: events get 503).", true, 0},
    };

    if (p == NULL)
        return 0;
    v[0].value = p->events;
    v[1].value = p->messages;
    v[2].value = p->batches;
    pthread_mutex_lock(&p->lock);
    v[3].value = p->blocked[0] != '\0';
    pthread_mutex_unlock(&p->lock);
    return fg_metrics_render_values(v, sizeof(v) / sizeof(v[0]), out, len, cap);
}

/* Answers the workers whose events are confirmed. */
static void backend__finish_confirmed(fg_publisher *p)
{
    uint64_t upto = fp_amqp_confirmed(p->gw.amqp);
    backend__job *j;

    pthread_mutex_lock(&p->lock);
    while (p->sent != NULL && p->sent->seq != 0 && p->sent->seq <= upto) {
        j = p->sent;
        p->sent = j->next;
        backend__finish(j, 0);
    }
    if (p->sent == NULL)
        p->sent_tail = NULL;
    pthread_mutex_unlock(&p->lock);
}

/*
 * Whether RabbitMQ blocks the link (a resource alarm: fp_amqp_blocked),
 * kept where fg_publisher_blocked reads it. Nothing is published while it
 * does: the jobs fail at once (-EBUSY, a 503 that says so) instead of
 * waiting for the alarm's end, however long. Those published before the
 * block was known fail too; they wait in RabbitMQ's socket and may still
 * be taken when the alarm ends (a client's retry is harmless, as after a
 * lost confirm). While blocked, what the link received is read first
 * (the end of the block, confirms), so that a steady stream of events,
 * which keeps the thread from its idle check, does not hide the end.
 * Returns 1 when blocked, 0 when not, -EIO when the link broke meanwhile
 * (errstr says why).
 */
static int backend__blocked(fg_publisher *p)
{
    const char *why = fp_amqp_blocked(p->gw.amqp);

    if (why != NULL && fp_amqp_wait_confirms(p->gw.amqp, -1, 0) == -EIO)
        return -EIO;
    why = fp_amqp_blocked(p->gw.amqp);
    if ((why != NULL) != p->was_blocked) { /* the lock only on a change */
        pthread_mutex_lock(&p->lock);
        snprintf(p->blocked, sizeof(p->blocked), "%s", why != NULL ? why : "");
        pthread_mutex_unlock(&p->lock);
        p->was_blocked = why != NULL;
    }
    return why != NULL ? 1 : 0;
}

bool fg_publisher_blocked(fg_publisher *p, char *why, size_t len)
{
    bool blocked;

    if (p == NULL)
        return false;
    pthread_mutex_lock(&p->lock);
    blocked = p->blocked[0] != '\0';
    snprintf(why, len, "%s", p->blocked);
    pthread_mutex_unlock(&p->lock);
    return blocked;
}

/*
 * Publishes the taken jobs not yet published on the current link, in
 * order, as far as the window allows: with publish_batch above 1, no more
 * than BACKEND__IN_FLIGHT messages await their confirms, and the jobs
 * after wait to go together. 0, or -EIO when the link broke (errstr says
 * why). While RabbitMQ is down (backend__amqp_reconnect's window) the
 * jobs fail at once.
 */
static int backend__flush(fg_publisher *p)
{
    fg_gateway *gw = &p->gw;
    backend__job *j;
    int rc;

    if (gw->amqp == NULL || (gw->amqp_retry_us != 0 && backend__amqp_reconnect(gw) != 0)) {
        backend__fail_sent(p, -EIO);
        return 0;
    }
    rc = backend__blocked(p);
    if (rc < 0)
        return -EIO;
    if (rc > 0) {
        backend__finish_confirmed(p); /* confirms read there */
        backend__fail_sent(p, -EBUSY);
        return 0;
    }
    j = p->sent;
    while (j != NULL && j->seq != 0)
        j = j->next; /* the jobs not yet published come after those that are */
    while (j != NULL) {
        if (gw->cfg.publish_batch > 1 &&
            fp_amqp_published(gw->amqp) - fp_amqp_confirmed(gw->amqp) >= BACKEND__IN_FLIGHT)
            break;
        if (backend__publish_group(p, j, &j) != 0)
            return -EIO;
    }
    return 0;
}

/*
 * Waits for confirms, or for a worker to queue a job (at once when one is
 * queued), and answers the workers whose events are confirmed. 0, or -EIO
 * when the link broke or no confirm came for the config's timeout.
 */
static int backend__await_confirms(fg_publisher *p)
{
    fg_gateway *gw = &p->gw;
    uint64_t drained;
    bool wait;
    int rc;

    pthread_mutex_lock(&p->lock);
    wait = p->head == NULL; /* on stop too: the last confirms are awaited */
    p->polling = wait;
    pthread_mutex_unlock(&p->lock);
    rc = fp_amqp_wait_confirms(gw->amqp, p->wake, wait ? BACKEND__KEEPALIVE_MS : 0);
    if (wait) {
        pthread_mutex_lock(&p->lock);
        p->polling = false;
        pthread_mutex_unlock(&p->lock);
        if (read(p->wake, &drained, sizeof(drained)) < 0 && errno != EAGAIN)
            fp_debug("publisher: eventfd: %s", strerror(errno));
    }
    if (rc == -EIO)
        return -EIO;
    rc = backend__blocked(p); /* it may read more confirms */
    if (rc < 0)
        return -EIO;
    backend__finish_confirmed(p);
    if (rc > 0)
        backend__fail_sent(p, -EBUSY); /* the rest */
    return 0;
}

/* The link broke: answers the jobs whose confirms came before the break
 * (read in the same frames as the failure: a returned event, a close),
 * reconnects (logging why), and keeps for publishing again every other
 * job that was published on one link only; the others, and all of them
 * when the reconnect fails, fail. */
static void backend__relink(fg_publisher *p)
{
    fg_gateway *gw = &p->gw;
    uint64_t upto = fp_amqp_confirmed(gw->amqp); /* of the broken link */
    backend__job **jp, *j;
    int again = 0;
    bool up;

    fp_info("rabbitmq: %s; reconnecting", fp_amqp_errstr(gw->amqp));
    gw->amqp_retry_us = 0;
    up = backend__amqp_reconnect(gw) == 0;
    pthread_mutex_lock(&p->lock);
    p->sent_tail = NULL;
    jp = &p->sent;
    while (*jp != NULL) {
        j = *jp;
        if (j->seq != 0 && j->seq <= upto) {
            *jp = j->next;
            backend__finish(j, 0); /* confirmed: stored by RabbitMQ */
            continue;
        }
        j->seq = 0;
        if (up && j->tries < 2) {
            again += j->tries;
            p->sent_tail = j;
            jp = &j->next;
            continue;
        }
        *jp = j->next;
        backend__finish(j, -EIO);
    }
    pthread_mutex_unlock(&p->lock);
    if (again > 0)
        fp_info("rabbitmq: publishing %d unconfirmed events again on the new link", again);
}

/* Moves the queued jobs to the end of sent. p->lock held. */
static void backend__take(fg_publisher *p)
{
    if (p->head == NULL)
        return;
    if (p->sent_tail != NULL)
        p->sent_tail->next = p->head;
    else
        p->sent = p->head;
    p->sent_tail = p->tail;
    p->head = p->tail = NULL;
}

static void *backend__publisher_main(void *arg)
{
    fg_publisher *p = arg;
    int rc;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->head == NULL && p->sent == NULL && !p->stop) {
            if (backend__idle_wait(p) == 0)
                continue;
            /* Nothing to publish for a while: keep the link alive (a
             * broken one is found now and reconnected on the next use). */
            pthread_mutex_unlock(&p->lock);
            backend__keepalive(&p->gw);
            (void)backend__blocked(p); /* a broken link: found on the next use */
            pthread_mutex_lock(&p->lock);
        }
        if (p->head == NULL && p->sent == NULL)
            break; /* stopped, and every job answered */
        backend__take(p);
        pthread_mutex_unlock(&p->lock);
        rc = backend__flush(p);
        if (rc == 0 && p->sent != NULL)
            rc = backend__await_confirms(p);
        if (rc != 0)
            backend__relink(p);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int fg_publisher_start(fg_publisher **out, const fg_gateway *gw)
{
    fg_publisher *p = calloc(1, sizeof(*p));
    int rc = -ENOMEM;

    *out = NULL;
    if (p == NULL)
        return -ENOMEM;
    fg_backend_copy(&p->gw, gw);
    p->bodies = calloc((size_t)gw->cfg.publish_batch, sizeof(*p->bodies));
    p->lens = calloc((size_t)gw->cfg.publish_batch, sizeof(*p->lens));
    if (p->bodies == NULL || p->lens == NULL)
        goto fail_wake;
    p->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->wake < 0)
        goto fail_wake;
    if (pthread_mutex_init(&p->lock, NULL) != 0)
        goto fail_mutex;
    if (fp_time_cond_init(&p->work) != 0)
        goto fail_work;
    rc = fg_backend_open(&p->gw, false, true);
    if (rc != 0)
        goto fail_open;
    if (pthread_create(&p->tid, NULL, backend__publisher_main, p) != 0) {
        rc = -EAGAIN;
        goto fail_thread;
    }
    *out = p;
    return 0;
fail_thread:
    fg_backend_close(&p->gw);
fail_open:
    pthread_cond_destroy(&p->work);
fail_work:
    pthread_mutex_destroy(&p->lock);
fail_mutex:
    close(p->wake);
fail_wake:
    free(p->lens);
    free(p->bodies);
    free(p);
    return rc;
}

/* Wakes the publisher thread, idle or waiting for confirms. p->lock
 * held. */
static void backend__wake(fg_publisher *p)
{
    uint64_t one = 1;

    if (!p->polling) {
        pthread_cond_signal(&p->work);
        return;
    }
    p->polling = false; /* one write per wait is enough */
    if (write(p->wake, &one, sizeof(one)) < 0)
        fp_debug("publisher: eventfd: %s", strerror(errno)); /* it wakes within a second */
}

void fg_publisher_stop(fg_publisher *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    backend__wake(p);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->tid, NULL);
    fg_backend_close(&p->gw);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    close(p->wake);
    free(p->lens);
    free(p->bodies);
    free(p);
}

/* Queues job on p and waits until it is confirmed (or failed). 0, -EIO,
 * or -ENOMEM. */
static int backend__submit(fg_publisher *p, backend__job *job)
{
    if (pthread_cond_init(&job->cond, NULL) != 0)
        return -ENOMEM;
    pthread_mutex_lock(&p->lock);
    if (p->tail != NULL)
        p->tail->next = job;
    else
        p->head = job;
    p->tail = job;
    backend__wake(p);
    while (!job->done)
        pthread_cond_wait(&job->cond, &p->lock);
    pthread_mutex_unlock(&p->lock);
    pthread_cond_destroy(&job->cond);
    return job->rc;
}

int fg_backend_publish(fg_gateway *gw, const fp_event *ev)
{
    backend__job job = {.rk = fp_event_type_name(ev->type)};
    backend__op op = {&job};
    char *body;
    int rc;

    body = fp_event_encode(ev);
    if (body == NULL || job.rk == NULL) {
        free(body);
        return -EINVAL;
    }
    job.body = body;
    job.len = strlen(body);
    if (gw->shared != NULL && gw->shared->publisher != NULL)
        rc = backend__submit(gw->shared->publisher, &job);
    else
        rc = backend__amqp_run(gw, &op);
    free(body);
    return rc;
}

int fg_backend_amqp_ping(fg_gateway *gw, const char **errstr)
{
    backend__op op = {NULL};
    int rc = backend__amqp_run(gw, &op);

    *errstr = fp_amqp_errstr(gw->amqp);
    return rc;
}

/* resp = 503: RabbitMQ blocks publishes (-EBUSY from the publisher). */
static void backend__respond_blocked(fg_gateway *gw, fg_response *resp)
{
    char why[64];

    if (!fg_publisher_blocked(gw->shared->publisher, why, sizeof(why)))
        snprintf(why, sizeof(why), "%s", "a resource alarm"); /* it ended meanwhile */
    fg_respond_error(resp, 503, "unavailable",
                     "rabbitmq is not taking events for now (%s); try again shortly", why);
}

bool fg_publish(fg_gateway *gw, const fp_event *ev, fg_response *resp)
{
    int rc = fg_backend_publish(gw, ev);

    if (rc == 0)
        return true;
    if (rc == -EIO)
        fg_respond_unavailable(resp, "rabbitmq");
    else if (rc == -EBUSY)
        backend__respond_blocked(gw, resp);
    else
        fg_respond_internal(resp, "event encoding", rc);
    return false;
}

void fg_respond_store_error(fg_gateway *gw, fg_response *resp, int rc, const char *what)
{
    if (rc == -EIO || rc == -EBUSY) { /* down, or in a passing state (OOM, LOADING...) */
        fg_respond_unavailable(resp, "redis");
        return;
    }
    if (rc != -EPROTO && rc != -EINVAL) { /* out of memory...: the store has no word on it */
        fg_respond_internal(resp, what, rc);
        return;
    }
    fp_error("%s failed: %s", what, fp_store_errstr(gw->store)); /* once, with Redis's reason */
    fg_respond_error(resp, 500, "internal", "%s failed", what);
}
