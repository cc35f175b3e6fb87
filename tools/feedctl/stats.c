/*
 * stats.c - `feedctl stats`: the bridges' counters from the gateway's
 * GET /api/v1/stats (no token), one table row per node, and the gateway's
 * request total. --json prints the reply as it is:
 * {"bridges_up":B,"nodes":{"<node>":{"<field>":N,...}},"gateway_requests_total":N}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feedctl.h"

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

/* The answer said bridges_up false, or had no nodes: says so on stderr.
 * Returns FC_FAIL. */
static int stats__unreadable(void)
{
    fprintf(stderr, "feedctl: the gateway could not read the bridges' counters (is Redis up?)\n");
    return FC_FAIL;
}

/* Prints the reply in human form: the node table (or a note that no
 * bridge reported), then the gateway's request total. Returns 0, or
 * FC_FAIL when the counters could not be read or memory ran out. */
static int stats__print(const cJSON *all)
{
    const cJSON *up = cJSON_GetObjectItemCaseSensitive(all, "bridges_up");
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(all, "nodes");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(all, "gateway_requests_total");
    size_t nrows = (size_t)cJSON_GetArraySize(nodes), i = 0;
    const cJSON **rows = calloc(nrows + 1, sizeof(*rows));
    const cJSON *n;

    if (!cJSON_IsTrue(up) || !cJSON_IsObject(nodes)) {
        free(rows);
        return stats__unreadable();
    }
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
        printf("no bridge has reported\n");
    printf("gateway requests: %.15g\n", cJSON_IsNumber(req) ? req->valuedouble : 0.0);
    free(rows);
    return 0;
}

/* `stats`: GET /api/v1/stats and print the bridges' counters per node. */
int fc_cmd_stats(fc_ctx *x, int argc, char **argv)
{
    fc_reply r = {0};
    int rc = fc_parse(x, argc, argv, NULL, NULL, NULL);

    if (rc != 0)
        return rc;
    if (optind != argc) {
        fprintf(stderr, "feedctl: stats takes no arguments\n");
        return FC_USAGE;
    }
    rc = fc_request(x, "GET", "/api/v1/stats", NULL, NULL, &r);
    if (rc == 0)
        rc = fc_reply_error(&r);
    if (rc == 0)
        rc = fc_reply_object(&r); /* not "is Redis up?" for a proxy's page */
    if (rc == 0 && x->json) {
        fc_reply_print(&r);
        /* The same exit status as the table: 1 when the counters could
         * not be read. */
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r.json, "bridges_up")))
            rc = stats__unreadable();
    } else if (rc == 0) {
        rc = stats__print(r.json);
    }
    fc_reply_free(&r);
    return rc;
}
