/*
 * prom.c - the Prometheus text format's plumbing: a growing text buffer,
 * and plain values with their HELP and TYPE lines (metrics.c, bodies.c,
 * the publisher's counters).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "gateway.h"

int fg_buf_printf(char **out, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    char *grown;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(*out != NULL ? *out + *len : NULL, *out != NULL ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -ENOMEM;
        if (*out != NULL && *len + (size_t)n < *cap) {
            *len += (size_t)n;
            return 0;
        }
        grown = realloc(*out, *cap * 2 + (size_t)n + 1);
        if (grown == NULL)
            return -ENOMEM;
        *out = grown;
        *cap = *cap * 2 + (size_t)n + 1;
    }
}

int fg_metrics_render_values(const fg_metric_value *v, size_t n, char **out, size_t *len,
                             size_t *cap)
{
    size_t i;
    int rc = 0;

    for (i = 0; i < n && rc == 0; i++)
        rc = fg_buf_printf(out, len, cap, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", v[i].name,
                           v[i].help, v[i].name, v[i].gauge ? "gauge" : "counter", v[i].name,
                           (unsigned long long)v[i].value);
    return rc;
}
