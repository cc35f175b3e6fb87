/*
 * health.c - GET /healthz (whether Redis and RabbitMQ answer, as the
 * health loop last saw it), GET /metrics (the gateway's own series and
 * every live node's bridge counters, Prometheus text) and GET
 * /api/v1/stats (the same counters as JSON, for feedctl).
 *
 * The health loop (fg_health_refresh, from fg_http_run every
 * FG_HEALTH_PERIOD_MS) pings both on links of its own, so a probe never
 * waits for a backend's timeout and never queues behind other requests,
 * and checks that the post body cache's readers are still connected
 * (fg_bodies_check_readers).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

void fg_health_refresh(fg_gateway *gw)
{
    const char *amqp_err = "";
    fp_store *st = fg_backend_store(gw);
    bool amqp_ok;
    int rc = -EIO;

    if (st != NULL)
        FG_STORE_CALL(gw, rc, fp_store_ping(st));
    fg_bodies_check_readers(gw->shared->bodies, st);
    amqp_ok = fg_backend_amqp_ping(gw, &amqp_err) == 0;
    pthread_mutex_lock(&gw->shared->lock);
    gw->shared->redis_ok = rc == 0;
    gw->shared->amqp_ok = amqp_ok;
    gw->shared->health_us = fp_time_mono_us();
    gw->shared->health_known = true;
    pthread_mutex_unlock(&gw->shared->lock);
}

/*
 * The answer carries checked_ms: how long ago the loop looked. While
 * RabbitMQ blocks the publisher's link (a resource alarm:
 * fg_publisher_blocked; the health loop's own link publishes nothing and
 * cannot see it) it is 200 with "status":"degraded", "rabbitmq":"blocked"
 * and a message: the alarm is the whole cluster's, so every gateway has
 * it, and a load balancer that took them all out would stop the reads,
 * which go on.
 */
void fg_health_check(fg_gateway *gw, const fg_request *req, fg_response *resp)
{
    cJSON *out = cJSON_CreateObject();
    bool redis_ok, amqp_ok, blocked;
    const char *status;
    char why[64], msg[320];
    int64_t age_us;

    (void)req;
    pthread_mutex_lock(&gw->shared->lock);
    redis_ok = gw->shared->health_known && gw->shared->redis_ok;
    amqp_ok = gw->shared->health_known && gw->shared->amqp_ok;
    age_us = fp_time_mono_us() - gw->shared->health_us;
    pthread_mutex_unlock(&gw->shared->lock);
    blocked = amqp_ok && fg_publisher_blocked(gw->shared->publisher, why, sizeof(why));
    status = !redis_ok || !amqp_ok ? "down" : blocked ? "degraded" : "ok";
    if (out == NULL || cJSON_AddStringToObject(out, "status", status) == NULL ||
        cJSON_AddStringToObject(out, "redis", redis_ok ? "ok" : "down") == NULL ||
        cJSON_AddStringToObject(out, "rabbitmq",
                                !amqp_ok  ? "down"
                                : blocked ? "blocked"
                                          : "ok") == NULL ||
        cJSON_AddNumberToObject(out, "checked_ms", (double)(age_us / 1000)) == NULL) {
        cJSON_Delete(out);
        fg_respond_json(resp, 500, NULL);
        return;
    }
    if (!redis_ok || !amqp_ok) {
        snprintf(msg, sizeof(msg), "%s%s%s%s%s%s", redis_ok ? "" : "redis unreachable",
                 !redis_ok && !amqp_ok ? "; " : "", amqp_ok ? "" : "rabbitmq unreachable",
                 blocked ? "; rabbitmq blocks publishing (" : "", blocked ? why : "",
                 blocked ? ")" : "");
        cJSON_AddStringToObject(out, "error", "unavailable");
        cJSON_AddStringToObject(out, "message", msg);
    } else if (blocked) {
        snprintf(msg, sizeof(msg),
                 "rabbitmq blocks publishing (%s): every write (a post, a delete, a "
                 "follow, a ribbon entry) gets 503 until it ends",
                 why);
        cJSON_AddStringToObject(out, "message", msg);
    }
    fg_respond_json(resp, redis_ok && amqp_ok ? 200 : 503, out);
}

/* Whether a bridge counter is a gauge (a maximum, a timestamp). */
static bool health__gauge(const char *name)
{
    size_t n = strlen(name);

    return strcmp(name, "updated_ms") == 0 || (n > 4 && strcmp(name + n - 4, "_max") == 0);
}

/* qsort order of bridge samples: by name, then by node. */
static int health__by_name(const void *a, const void *b)
{
    const fp_stat_sample *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    return c != 0 ? c : strcmp(x->node, y->node);
}

/*
 * The bridge counters: feedpush_bridge_<name>_total{node} for counters,
 * feedpush_bridge_<name>{node} for gauges. Samples arrive grouped by
 * node; the text format wants each name's samples together under its one
 * TYPE line, so they are sorted by name (then node) first, in place.
 */
static int health__bridge(fp_stat_sample *s, size_t n, char **out, size_t *len, size_t *cap)
{
    size_t i;
    int rc = 0;

    if (n > 1)
        qsort(s, n, sizeof(*s), health__by_name);
    for (i = 0; rc == 0 && i < n; i++) {
        bool gauge = health__gauge(s[i].name);

        if (i == 0 || strcmp(s[i - 1].name, s[i].name) != 0)
            rc = fg_buf_printf(out, len, cap, "# TYPE feedpush_bridge_%s%s %s\n", s[i].name,
                               gauge ? "" : "_total", gauge ? "gauge" : "counter");
        if (rc == 0)
            rc = fg_buf_printf(out, len, cap, "feedpush_bridge_%s%s{node=\"%s\"} %llu\n", s[i].name,
                               gauge ? "" : "_total", s[i].node, (unsigned long long)s[i].value);
    }
    return rc;
}

void fg_health_metrics(fg_gateway *gw, const fg_request *req, fg_response *resp)
{
    fp_stat_sample *samples = NULL;
    size_t n = 0, len = 0, cap = 4096;
    char *out = malloc(cap);
    fp_store *st;
    int rc = -EIO, stats_rc = -EIO;

    (void)req;
    if (out == NULL) {
        fg_respond_json(resp, 500, NULL);
        return;
    }
    out[0] = '\0';
    st = fg_backend_store(gw);
    if (st != NULL)
        FG_STORE_CALL(gw, stats_rc, fp_store_stats_get(st, &samples, &n));
    rc = fg_metrics_render(&gw->shared->metrics, &out, &len, &cap);
    if (rc == 0)
        rc = fg_bodies_render(gw->shared->bodies, &out, &len, &cap);
    if (rc == 0)
        rc = fg_publisher_render(gw->shared->publisher, &out, &len, &cap);
    if (rc == 0)
        rc = fg_buf_printf(&out, &len, &cap,
                           "# HELP feedpush_bridge_up Whether the bridges' counters could be "
                           "read from Redis.\n# TYPE feedpush_bridge_up gauge\n"
                           "feedpush_bridge_up %d\n",
                           stats_rc == 0 ? 1 : 0);
    if (rc == 0)
        rc = health__bridge(samples, n, &out, &len, &cap);
    free(samples);
    if (rc != 0) {
        free(out);
        fg_respond_json(resp, 500, NULL);
        return;
    }
    fg_respond_body(resp, 200, "text/plain; version=0.0.4; charset=utf-8", out, len);
}

/* Adds every sample to nodes as nodes[node][name] = value. 0 or -ENOMEM. */
static int health__stats_nodes(const fp_stat_sample *s, size_t n, cJSON *nodes)
{
    cJSON *node;
    size_t i;

    for (i = 0; i < n; i++) {
        node = cJSON_GetObjectItemCaseSensitive(nodes, s[i].node);
        if (node == NULL)
            node = cJSON_AddObjectToObject(nodes, s[i].node);
        if (node == NULL || cJSON_AddNumberToObject(node, s[i].name, (double)s[i].value) == NULL)
            return -ENOMEM;
    }
    return 0;
}

/*
 * GET /api/v1/stats: {"bridges_up":bool,"nodes":{"<node>":{"<counter>":N,
 * ...}},"gateway_requests_total":N}. The counters are the fields of every
 * live node's stats:bridge:<node> hash, as /metrics has them; bridges_up
 * is false (and nodes empty) when Redis could not be read. Values are
 * JSON numbers, exact up to 2^53.
 */
void fg_health_stats(fg_gateway *gw, const fg_request *req, fg_response *resp)
{
    fp_stat_sample *samples = NULL;
    cJSON *out = cJSON_CreateObject(), *nodes;
    fp_store *st;
    size_t n = 0;
    int rc = -EIO;

    (void)req;
    st = fg_backend_store(gw);
    if (st != NULL)
        FG_STORE_CALL(gw, rc, fp_store_stats_get(st, &samples, &n));
    nodes = cJSON_AddObjectToObject(out, "nodes");
    if (out == NULL || nodes == NULL || cJSON_AddBoolToObject(out, "bridges_up", rc == 0) == NULL ||
        (rc == 0 && health__stats_nodes(samples, n, nodes) != 0) ||
        cJSON_AddNumberToObject(out, "gateway_requests_total",
                                (double)fg_metrics_requests(&gw->shared->metrics)) == NULL) {
        free(samples);
        cJSON_Delete(out);
        fg_respond_json(resp, 500, NULL);
        return;
    }
    free(samples);
    fg_respond_json(resp, 200, out);
}
