/*
 * stats.c - `feedctl stats`: the bridges' counters from the gateway's
 * GET /metrics (no token), one table row per node.
 *
 * Only two kinds of Prometheus sample are read: feedpush_bridge_<field>
 * (counters end in _total, gauges do not) with a node label, and
 * feedpush_gateway_requests_total, summed over its labels (plus
 * feedpush_gateway_requests_overflow_total, the requests of series the
 * gateway had no room for). Comments, other metrics and lines that do not
 * parse are ignored. The samples are collected into
 * {"nodes":{"<node>":{"<field>":N,...}},"gateway_requests_total":N},
 * which --json prints as it is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feedctl.h"

#define STATS_BRIDGE "feedpush_bridge_"
#define STATS_REQUESTS "feedpush_gateway_requests_total"
#define STATS_OVERFLOW "feedpush_gateway_requests_overflow_total"

/* The table's columns: a heading and the fields shown in it, '/'-joined. */
static const struct {
    const char *head;
    const char *fields[3];
} stats__cols[] = {
    {"posts", {"events_post_created"}},
    {"fanout", {"fanout_recipients"}},
    {"deliveries", {"deliveries"}},
    {"dead_letters", {"dead_letters"}},
    {"reconnects amqp/redis/mqtt", {"reconnects_amqp", "reconnects_redis", "reconnects_mqtt"}},
};
#define STATS_NCOLS (sizeof(stats__cols) / sizeof(stats__cols[0]))

/* One sample line, split in place. */
typedef struct {
    const char *name;
    size_t name_len;
    const char *labels; /* between the braces, or "" */
    size_t labels_len;
    double value;
} stats_sample;

/* Splits the sample line "name{labels} value [timestamp]". Returns 0, or
 * -1 for a comment, a blank line or anything malformed. */
static int stats__split(const char *line, stats_sample *s)
{
    const char *p = line;
    char *end;
    bool quoted = false;

    s->name = p;
    while (*p == '_' || *p == ':' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
           (*p >= '0' && *p <= '9'))
        p++;
    s->name_len = (size_t)(p - line);
    s->labels = "";
    s->labels_len = 0;
    if (s->name_len == 0)
        return -1;
    if (*p == '{') {
        s->labels = ++p;
        for (; *p != '\0' && (quoted || *p != '}'); p++) {
            if (quoted && *p == '\\' && p[1] != '\0')
                p++;
            else if (*p == '"')
                quoted = !quoted;
        }
        if (*p != '}')
            return -1;
        s->labels_len = (size_t)(p - s->labels);
        p++;
    }
    if (*p != ' ' && *p != '\t')
        return -1;
    s->value = strtod(p, &end);
    return end == p ? -1 : 0;
}

/* Finds label key in the label text of s and copies its unescaped value
 * into out. Returns 0, or -1 when it is absent or longer than out. */
static int stats__label(const stats_sample *s, const char *key, char *out, size_t outlen)
{
    const char *p = s->labels, *end = s->labels + s->labels_len;
    size_t klen = strlen(key), n;
    bool match;
    char ch;

    while (p < end) {
        while (p < end && (*p == ',' || *p == ' '))
            p++;
        match = (size_t)(end - p) > klen && strncmp(p, key, klen) == 0 && p[klen] == '=';
        p = memchr(p, '"', (size_t)(end - p));
        if (p == NULL)
            return -1;
        for (p++, n = 0; p < end && *p != '"'; p++) {
            ch = *p;
            if (ch == '\\' && p + 1 < end) {
                p++;
                ch = *p == 'n' ? '\n' : *p;
            }
            if (match && n + 1 >= outlen)
                return -1;
            if (match)
                out[n++] = ch;
        }
        if (match) {
            out[n] = '\0';
            return 0;
        }
        p++;
    }
    return -1;
}

/* True when the sample's metric name is name. */
static bool stats__is(const stats_sample *s, const char *name)
{
    return s->name_len == strlen(name) && strncmp(s->name, name, s->name_len) == 0;
}

/* Adds a feedpush_bridge_* sample to nodes[node][field]. Returns 0, or -1
 * for a sample without a node label or with a field name too long to be
 * one of ours (it is then ignored). */
static int stats__add_bridge(cJSON *nodes, const stats_sample *s)
{
    char node[256], field[128];
    size_t flen = s->name_len - strlen(STATS_BRIDGE);
    cJSON *n;

    if (stats__label(s, "node", node, sizeof(node)) != 0 || flen == 0 || flen >= sizeof(field))
        return -1;
    memcpy(field, s->name + strlen(STATS_BRIDGE), flen);
    field[flen] = '\0';
    if (flen > 6 && strcmp(field + flen - 6, "_total") == 0)
        field[flen - 6] = '\0';
    n = cJSON_GetObjectItemCaseSensitive(nodes, node);
    if (n == NULL)
        n = cJSON_AddObjectToObject(nodes, node);
    if (n == NULL)
        return -1;
    cJSON_DeleteItemFromObjectCaseSensitive(n, field);
    return cJSON_AddNumberToObject(n, field, s->value) != NULL ? 0 : -1;
}

/* Collects the samples we know from a /metrics text into *out (see the
 * top of the file). Returns 0, or FC_FAIL when out of memory. */
static int stats__collect(const char *text, cJSON **out)
{
    cJSON *all = cJSON_CreateObject();
    cJSON *nodes = cJSON_AddObjectToObject(all, "nodes");
    char *copy = strdup(text), *line, *next;
    double requests = 0;
    stats_sample s;

    if (all == NULL || nodes == NULL || copy == NULL)
        goto fail;
    for (line = copy; line != NULL; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        if (stats__split(line, &s) != 0)
            continue;
        if (s.name_len > strlen(STATS_BRIDGE) &&
            strncmp(s.name, STATS_BRIDGE, strlen(STATS_BRIDGE)) == 0)
            stats__add_bridge(nodes, &s);
        else if (stats__is(&s, STATS_REQUESTS) || stats__is(&s, STATS_OVERFLOW))
            requests += s.value;
    }
    if (cJSON_AddNumberToObject(all, "gateway_requests_total", requests) == NULL)
        goto fail;
    free(copy);
    *out = all;
    return 0;
fail:
    fprintf(stderr, "feedctl: out of memory\n");
    free(copy);
    cJSON_Delete(all);
    return FC_FAIL;
}

/* Writes the cell of column col for node n into buf: the column's fields
 * '/'-joined, "-" for a field the node did not report. */
static void stats__cell(const cJSON *n, size_t col, char *buf, size_t len)
{
    const cJSON *v;
    size_t used = 0, i;

    buf[0] = '\0';
    for (i = 0; i < 3 && stats__cols[col].fields[i] != NULL && used < len; i++) {
        v = cJSON_GetObjectItemCaseSensitive(n, stats__cols[col].fields[i]);
        if (cJSON_IsNumber(v))
            snprintf(buf + used, len - used, "%s%.15g", i > 0 ? "/" : "", v->valuedouble);
        else
            snprintf(buf + used, len - used, "%s-", i > 0 ? "/" : "");
        used = strlen(buf);
    }
}

/* Orders nodes by name, for qsort. */
static int stats__by_name(const void *a, const void *b)
{
    const cJSON *const *x = a, *const *y = b;

    return strcmp((*x)->string, (*y)->string);
}

/* Sets each column's width to the widest of its heading and its cells
 * (col 0 is the node name). */
static void stats__widths(const cJSON **rows, size_t nrows, int *w)
{
    char cell[128];
    size_t r, c;

    w[0] = 4;
    for (c = 0; c < STATS_NCOLS; c++)
        w[c + 1] = (int)strlen(stats__cols[c].head);
    for (r = 0; r < nrows; r++) {
        if ((int)strlen(rows[r]->string) > w[0])
            w[0] = (int)strlen(rows[r]->string);
        for (c = 0; c < STATS_NCOLS; c++) {
            stats__cell(rows[r], c, cell, sizeof(cell));
            if ((int)strlen(cell) > w[c + 1])
                w[c + 1] = (int)strlen(cell);
        }
    }
}

/* Prints rows as a table: node name left-aligned, numbers right-aligned. */
static void stats__table(const cJSON **rows, size_t nrows)
{
    int w[STATS_NCOLS + 1];
    char cell[128];
    size_t r, c;

    stats__widths(rows, nrows, w);
    printf("%-*s", w[0], "node");
    for (c = 0; c < STATS_NCOLS; c++)
        printf("  %*s", w[c + 1], stats__cols[c].head);
    putchar('\n');
    for (r = 0; r < nrows; r++) {
        fc_put_clean(stdout, rows[r]->string);
        printf("%*s", w[0] - (int)strlen(rows[r]->string), "");
        for (c = 0; c < STATS_NCOLS; c++) {
            stats__cell(rows[r], c, cell, sizeof(cell));
            printf("  %*s", w[c + 1], cell);
        }
        putchar('\n');
    }
}

/* Prints the collected samples in human form: the node table (or a note
 * that no bridge reported), then the gateway's request total. Returns 0
 * or FC_FAIL (out of memory). */
static int stats__print(const cJSON *all)
{
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(all, "nodes");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(all, "gateway_requests_total");
    size_t nrows = (size_t)cJSON_GetArraySize(nodes), i = 0;
    const cJSON **rows = calloc(nrows + 1, sizeof(*rows));
    const cJSON *n;

    if (rows == NULL) {
        fprintf(stderr, "feedctl: out of memory\n");
        return FC_FAIL;
    }
    cJSON_ArrayForEach(n, nodes)
    {
        rows[i++] = n;
    }
    qsort(rows, nrows, sizeof(*rows), stats__by_name);
    if (nrows > 0)
        stats__table(rows, nrows);
    else
        printf("no bridge has reported (no %s* samples)\n", STATS_BRIDGE);
    printf("gateway requests: %.15g\n", cJSON_IsNumber(req) ? req->valuedouble : 0.0);
    free(rows);
    return 0;
}

/* `stats`: GET /metrics and print the bridges' counters per node. */
int fc_cmd_stats(fc_ctx *x, int argc, char **argv)
{
    fc_reply r = {0};
    cJSON *all = NULL;
    char *text;
    int rc = fc_parse(x, argc, argv, NULL, NULL, NULL);

    if (rc != 0)
        return rc;
    if (optind != argc) {
        fprintf(stderr, "feedctl: stats takes no arguments\n");
        return FC_USAGE;
    }
    rc = fc_request(x, "GET", "/metrics", NULL, NULL, &r);
    if (rc == 0)
        rc = fc_reply_error(&r);
    if (rc == 0)
        rc = stats__collect(r.body, &all);
    if (rc == 0 && x->json) {
        text = cJSON_Print(all);
        rc = text != NULL ? 0 : FC_FAIL;
        if (text != NULL)
            printf("%s\n", text);
        cJSON_free(text);
    } else if (rc == 0) {
        rc = stats__print(all);
    }
    cJSON_Delete(all);
    fc_reply_free(&r);
    return rc;
}
