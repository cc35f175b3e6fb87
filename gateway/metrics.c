/*
 * metrics.c - request counters and latency histograms of feed-gateway,
 * rendered in the Prometheus text format (0.0.4).
 *
 * Kept per (route, method, status) in a fixed table with a counter for
 * every combination: routes are the route table's patterns, never raw
 * paths, methods the fg_method values and statuses 100..599, so no
 * client can grow it or push a series out of it (a status outside that
 * range, which the gateway never makes, would only be counted in
 * feedpush_gateway_requests_overflow_total). The HTTP workers share one
 * table: every function takes its lock.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

/* Upper bounds of the latency buckets, seconds (+Inf is implied). */
static const double metrics__le[FG_METRICS_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                       0.05,   0.1,   0.25,   0.5,   1,    2.5};

int fg_metrics_init(fg_metrics *m)
{
    memset(m, 0, sizeof(*m));
    return -pthread_mutex_init(&m->lock, NULL);
}

void fg_metrics_destroy(fg_metrics *m)
{
    pthread_mutex_destroy(&m->lock);
}

void fg_metrics_observe(fg_metrics *m, fg_route_id route, fg_method method, int status, int64_t us)
{
    double s = us > 0 ? (double)us / 1e6 : 0;
    int code = status - FG_METRICS_STATUS_MIN;
    size_t i;

    if ((unsigned)route >= FG_ROUTE__COUNT)
        route = FG_ROUTE_UNKNOWN;
    if ((unsigned)method >= FG_METRICS_METHODS)
        method = FG_METHOD_OTHER;
    pthread_mutex_lock(&m->lock);
    if (code >= 0 && code < FG_METRICS_STATUSES)
        m->requests[route][method][code]++;
    else
        m->overflow++;
    for (i = 0; i < FG_METRICS_BUCKETS; i++) {
        if (s <= metrics__le[i])
            m->buckets[route][i]++;
    }
    m->count[route]++;
    m->sum_s[route] += s;
    pthread_mutex_unlock(&m->lock);
}

uint64_t fg_metrics_requests(fg_metrics *m)
{
    uint64_t n = 0;
    size_t i;

    pthread_mutex_lock(&m->lock);
    for (i = 0; i < FG_ROUTE__COUNT; i++)
        n += m->count[i]; /* every request, whatever its status */
    pthread_mutex_unlock(&m->lock);
    return n;
}

/* The requests_total lines of one route, those counted at least once.
 * m->lock held. */
static int metrics__requests(const fg_metrics *m, fg_route_id r, char **out, size_t *len,
                             size_t *cap)
{
    int rc = 0, method, code;

    for (method = 0; rc == 0 && method < FG_METRICS_METHODS; method++) {
        for (code = 0; rc == 0 && code < FG_METRICS_STATUSES; code++) {
            if (m->requests[r][method][code] == 0)
                continue;
            rc = fg_buf_printf(out, len, cap,
                               "feedpush_gateway_requests_total{route=\"%s\",method=\"%s\","
                               "status=\"%d\"} %llu\n",
                               fg_route_label(r), fg_method_name((fg_method)method),
                               code + FG_METRICS_STATUS_MIN,
                               (unsigned long long)m->requests[r][method][code]);
        }
    }
    return rc;
}

void fg_metrics_cut(fg_metrics *m)
{
    pthread_mutex_lock(&m->lock);
    m->cut++;
    pthread_mutex_unlock(&m->lock);
}

/* The histogram of one route. */
static int metrics__histogram(const fg_metrics *m, fg_route_id r, char **out, size_t *len,
                              size_t *cap)
{
    const char *label = fg_route_label(r);
    const char *name = "feedpush_gateway_request_duration_seconds";
    int rc = 0;
    size_t i;

    for (i = 0; rc == 0 && i < FG_METRICS_BUCKETS; i++)
        rc = fg_buf_printf(out, len, cap, "%s_bucket{route=\"%s\",le=\"%g\"} %llu\n", name, label,
                           metrics__le[i], (unsigned long long)m->buckets[r][i]);
    if (rc == 0)
        rc = fg_buf_printf(out, len, cap, "%s_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", name, label,
                           (unsigned long long)m->count[r]);
    if (rc == 0)
        rc = fg_buf_printf(out, len, cap, "%s_sum{route=\"%s\"} %.6f\n", name, label, m->sum_s[r]);
    if (rc == 0)
        rc = fg_buf_printf(out, len, cap, "%s_count{route=\"%s\"} %llu\n", name, label,
                           (unsigned long long)m->count[r]);
    return rc;
}

int fg_metrics_render(fg_metrics *m, char **out, size_t *len, size_t *cap)
{
    int rc;
    size_t i;

    pthread_mutex_lock(&m->lock);
    rc = fg_buf_printf(out, len, cap,
                       "# HELP feedpush_gateway_requests_total API requests answered.\n"
                       "# TYPE feedpush_gateway_requests_total counter\n");
    for (i = 0; rc == 0 && i < FG_ROUTE__COUNT; i++) {
        if (m->count[i] > 0)
            rc = metrics__requests(m, (fg_route_id)i, out, len, cap);
    }
    if (rc == 0) {
        const fg_metric_value v[] = {
            {"feedpush_gateway_requests_overflow_total",
             "Requests with a status outside 100..599 (not counted by status).", false,
             m->overflow},
            {"feedpush_gateway_answers_cut_total",
             "Answers whose connection ended before they were sent whole.", false, m->cut},
        };

        rc = fg_metrics_render_values(v, sizeof(v) / sizeof(v[0]), out, len, cap);
    }
    if (rc == 0)
        rc = fg_buf_printf(out, len, cap,
                           "# HELP feedpush_gateway_request_duration_seconds Time from a "
                           "request's arrival to its response being queued.\n"
                           "# TYPE feedpush_gateway_request_duration_seconds histogram\n");
    for (i = 0; rc == 0 && i < FG_ROUTE__COUNT; i++) {
        if (m->count[i] > 0)
            rc = metrics__histogram(m, (fg_route_id)i, out, len, cap);
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}
