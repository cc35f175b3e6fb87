/*
 * backend.c - feed-gateway's Redis store (fp_store) and RabbitMQ
 * publisher (fp_amqp, publisher only, with confirms), both from the
 * backend library.
 *
 * Both are opened at start; one that is down then is logged and opened
 * on first use. After a failure a backend is not retried for
 * BACKEND__RETRY_US, so while it is down requests get their 503 at once
 * instead of each waiting for a connect timeout. Every outage is logged
 * once when it starts and once when it ends.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fp_log.h"
#include "gateway.h"

#define BACKEND__RETRY_US 1000000

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

int fg_backend_open(fg_gateway *gw)
{
    fp_store_config sc = {.host = gw->cfg.redis_host,
                          .port = (int)gw->cfg.redis_port,
                          .prefix = gw->cfg.redis_prefix,
                          .timeout_ms = (int)gw->cfg.timeout_ms};
    fp_amqp_config ac = {.host = gw->cfg.amqp_host,
                         .port = (int)gw->cfg.amqp_port,
                         .user = gw->cfg.amqp_user,
                         .password = gw->cfg.amqp_password,
                         .vhost = gw->cfg.amqp_vhost,
                         .node_id = NULL,
                         .prefetch = 1,
                         .timeout_ms = (int)gw->cfg.timeout_ms};
    int rc;

    rc = fp_store_open(&gw->store, &sc);
    if (rc == -ENOMEM)
        return rc;
    if (rc == -EINVAL) {
        fp_error("redis: %s", fp_store_errstr(gw->store));
        return rc;
    }
    if (rc != 0)
        backend__down(gw, &gw->store_retry_us, "redis", fp_store_errstr(gw->store));
    rc = fp_amqp_open(&gw->amqp, &ac);
    if (rc == -ENOMEM || gw->amqp == NULL)
        return -ENOMEM;
    if (rc != 0)
        backend__down(gw, &gw->amqp_retry_us, "rabbitmq", fp_amqp_errstr(gw->amqp));
    return 0;
}

void fg_backend_close(fg_gateway *gw)
{
    fp_store_free(gw->store);
    gw->store = NULL;
    fp_amqp_free(gw->amqp);
    gw->amqp = NULL;
}

int fg_backend_store_reconnect(fg_gateway *gw)
{
    if (gw->store_retry_us != 0 && fp_time_mono_us() < gw->store_retry_us)
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
    if (gw->amqp_retry_us != 0 && fp_time_mono_us() < gw->amqp_retry_us)
        return -EIO;
    if (fp_amqp_reconnect(gw->amqp) != 0) {
        backend__down(gw, &gw->amqp_retry_us, "rabbitmq", fp_amqp_errstr(gw->amqp));
        return -EIO;
    }
    backend__up(gw, &gw->amqp_retry_us, "rabbitmq");
    return 0;
}

/* The pieces of work done on the publisher link. */
typedef struct {
    const char *rk; /* NULL: a ping */
    const char *body;
    size_t len;
} backend__op;

/* Runs op once on the current link. 0 or -EIO. */
static int backend__amqp_once(fg_gateway *gw, const backend__op *op)
{
    if (op->rk == NULL)
        return fp_amqp_ping(gw->amqp);
    if (fp_amqp_publish(gw->amqp, FP_EXCHANGE_EVENTS, op->rk, op->body, op->len) != 0)
        return -EIO;
    return fp_amqp_confirm(gw->amqp);
}

/*
 * Runs op; when the link is broken (or was closed while idle) it
 * reconnects and runs it once more. A publish repeated that way is
 * harmless: every event is idempotent downstream. 0 or -EIO.
 */
static int backend__amqp_run(fg_gateway *gw, const backend__op *op)
{
    int rc;

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

int fg_backend_publish(fg_gateway *gw, const fp_event *ev)
{
    backend__op op = {fp_event_type_name(ev->type), NULL, 0};
    char *body;
    int rc;

    body = fp_event_encode(ev);
    if (body == NULL || op.rk == NULL) {
        free(body);
        return -EINVAL;
    }
    op.body = body;
    op.len = strlen(body);
    rc = backend__amqp_run(gw, &op);
    free(body);
    return rc;
}

int fg_backend_amqp_ping(fg_gateway *gw, const char **errstr)
{
    backend__op op = {NULL, NULL, 0};
    int rc = backend__amqp_run(gw, &op);

    *errstr = fp_amqp_errstr(gw->amqp);
    return rc;
}

bool fg_publish(fg_gateway *gw, const fp_event *ev, fg_response *resp)
{
    int rc = fg_backend_publish(gw, ev);

    if (rc == 0)
        return true;
    if (rc == -EIO)
        fg_respond_unavailable(resp, "rabbitmq");
    else
        fg_respond_internal(resp, "event encoding", rc);
    return false;
}

void fg_respond_store_error(fg_gateway *gw, fg_response *resp, int rc, const char *what)
{
    if (rc == -EIO) {
        fg_respond_unavailable(resp, "redis");
        return;
    }
    fp_error("%s: %s", what, fp_store_errstr(gw->store));
    fg_respond_internal(resp, what, rc);
}
