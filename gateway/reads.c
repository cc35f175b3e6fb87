/*
 * reads.c - GET /api/v1/feed (one page of the caller's feed cache: the
 * newest, one older than a `before` cursor, or the posts newer than an
 * `after` cursor) and the ribbon: GET /api/v1/ribbon, POST /api/v1/ribbon
 * (ribbon.pushed for the caller).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

#define READS__LIMIT_DEFAULT 50
#define READS__LIMIT_MAX 1000
#define READS__LIMIT_MAX_STR "1000" /* the same, for a message */

/* ?limit=: 1..READS__LIMIT_MAX, default READS__LIMIT_DEFAULT. 0 or -1. */
static int reads__limit(const char *s, size_t *out)
{
    size_t v = 0, i;

    if (s[0] == '\0') {
        *out = READS__LIMIT_DEFAULT;
        return 0;
    }
    for (i = 0; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9' || v > READS__LIMIT_MAX)
            return -1; /* leading zeros are fine: 00050 is 50 */
        v = v * 10 + (size_t)(s[i] - '0');
    }
    if (v < 1 || v > READS__LIMIT_MAX)
        return -1;
    *out = v;
    return 0;
}

/* The JSON value of a cursor field: the id quoted, or null. */
static const char *reads__id_or_null(const char *id, char buf[FP_ID_BUFSZ + 2])
{
    if (id == NULL)
        return "null";
    snprintf(buf, FP_ID_BUFSZ + 2, "\"%s\"", id);
    return buf;
}

/*
 * The end of a page's document, from the bracket that closes "posts":
 * next_before, and after_found and next_after when the page answers an
 * after cursor. next_before is the last id of a full page, but null when
 * the page is the one above a cursor that was found (what is older, the
 * client has); next_after is the page's newest id when newer posts remain
 * above the page, else null. A page the read cut short (page->resume: at
 * its budget of ids, or of bytes, max_page_bytes) continues from the id
 * the read says instead, which may be the id of a post that is gone.
 */
static void reads__page_tail(const fp_feed_page *page, size_t limit, char *out, size_t cap)
{
    char b[FP_ID_BUFSZ + 2], a[FP_ID_BUFSZ + 2];
    const char *next_before = NULL, *next_after = NULL;
    bool found = page->after == FP_FEED_AFTER_TOP || page->after == FP_FEED_AFTER_MORE;
    bool cut = page->resume[0] != '\0';

    if (!found && cut)
        next_before = page->resume;
    else if (!found && page->n == limit && page->n > 0)
        next_before = page->ids[limit - 1];
    if (page->after == FP_FEED_AFTER_MORE && cut)
        next_after = page->resume;
    else if (page->after == FP_FEED_AFTER_MORE && page->n > 0)
        next_after = page->ids[0];
    if (page->after == FP_FEED_AFTER_NONE) {
        snprintf(out, cap, "],\"next_before\":%s}", reads__id_or_null(next_before, b));
        return;
    }
    snprintf(out, cap, "],\"next_before\":%s,\"after_found\":%s,\"next_after\":%s}",
             reads__id_or_null(next_before, b), found ? "true" : "false",
             reads__id_or_null(next_after, a));
}

/*
 * {"posts":[...],"next_before":id|null} (plus "after_found" and
 * "next_after" for an after cursor, reads__page_tail) from a page of
 * stored bodies, spliced in as stored (the bridge wrote them with cJSON)
 * rather than parsed into a tree and printed again; a body that is not
 * exactly one JSON object is skipped (those from the body cache were
 * checked when it took them). Ids are plain [A-Za-z0-9_-]
 * (fp_id_valid): no escaping. Returns the malloc'd document (and its
 * length) or NULL.
 */
static char *reads__page_body(const fp_feed_page *page, size_t limit, size_t *len)
{
    static const char head[] = "{\"posts\":[";
    char tail[128 + 2 * FP_ID_BUFSZ];
    size_t i, cap, n = 0, tail_len;
    bool first = true;
    char *out;

    reads__page_tail(page, limit, tail, sizeof(tail));
    tail_len = strlen(tail);
    cap = sizeof(head) + tail_len + 1;
    for (i = 0; i < page->n; i++)
        cap += strlen(page->posts[i]) + 1;
    out = malloc(cap);
    if (out == NULL)
        return NULL;
    memcpy(out, head, sizeof(head) - 1);
    n = sizeof(head) - 1;
    for (i = 0; i < page->n; i++) {
        size_t l = strlen(page->posts[i]);

        if ((page->cached == NULL || !page->cached[i]) && !fg_body_is_object(page->posts[i]))
            continue; /* the cache keeps objects only */
        if (!first)
            out[n++] = ',';
        memcpy(out + n, page->posts[i], l);
        n += l;
        first = false;
    }
    memcpy(out + n, tail, tail_len + 1);
    n += tail_len;
    *len = n;
    return out;
}

/*
 * The query of a feed read: NULL when it is good, else what is wrong
 * with it (for a 400). limit is 1 to READS__LIMIT_MAX; before and after
 * are post ids ("" when absent), not both.
 */
static const char *reads__feed_query(const fg_request *req, size_t *limit)
{
    if (req->bad_query)
        return "a query argument is too long";
    if (reads__limit(req->limit, limit) != 0)
        return "limit: an integer from 1 to " READS__LIMIT_MAX_STR;
    if (req->before[0] != '\0' && !fp_id_valid(req->before))
        return "before: a post id";
    if (req->after[0] != '\0' && !fp_id_valid(req->after))
        return "after: a post id";
    if (req->before[0] != '\0' && req->after[0] != '\0')
        return "before and after cannot be combined";
    return NULL;
}

void fg_reads_feed(fg_gateway *gw, const fg_request *req, fg_response *resp)
{
    const char *bad;
    fp_feed_page page = {0};
    fp_store *st;
    size_t limit, len = 0;
    char *body;
    int rc;

    bad = reads__feed_query(req, &limit);
    if (bad != NULL) {
        /* A revoked token is refused first, as on every other route
         * (which reads revoked:<sub> before its handler runs). */
        if (fg_auth_revocation(gw, &req->caller, resp) == 0)
            fg_respond_error(resp, 400, "bad_request", "%s", bad);
        return;
    }
    st = fg_backend_store(gw);
    if (st == NULL) {
        fg_respond_unavailable(resp, "redis");
        return;
    }
    /* The route's auth is FG_AUTH_TOKEN: revoked:<sub> comes with the page. */
    if (req->after[0] != '\0')
        FG_STORE_CALL(gw, rc, fp_store_feed_after(st, req->caller.sub, limit, req->after, &page));
    else
        FG_STORE_CALL(gw, rc, fp_store_feed_page(st, req->caller.sub, limit, req->before, &page));
    if (rc != 0) {
        fg_respond_store_error(gw, resp, rc, "feed read");
        return;
    }
    if (fg_auth_not_revoked(&req->caller, page.revoked_before, resp) != 0) {
        fp_feed_page_free(&page);
        return;
    }
    body = reads__page_body(&page, limit, &len); /* cut at max_page_bytes by the store */
    fp_feed_page_free(&page);
    if (body == NULL) {
        fg_respond_internal(resp, "feed page", -ENOMEM);
        return;
    }
    fg_respond_body(resp, 200, "application/json", body, len);
}

void fg_reads_ribbon(fg_gateway *gw, const fg_request *req, fg_response *resp)
{
    char *json = NULL;
    fp_store *st;
    int rc;

    (void)req;
    st = fg_backend_store(gw);
    if (st == NULL) {
        fg_respond_unavailable(resp, "redis");
        return;
    }
    FG_STORE_CALL(gw, rc, fp_store_ribbon_get(st, &json));
    if (rc != 0) {
        fg_respond_store_error(gw, resp, rc, "ribbon read");
        return;
    }
    /* The same document subscribers of the retained `ribbon` topic get. */
    fg_respond_body(resp, 200, "application/json", json, strlen(json));
}

/* An optional string field of the ribbon body: NULL when absent or null,
 * else it must be a string. Returns 0 or -1 (400 filled). */
static int reads__opt_string(const cJSON *body, const char *key, char **out, fg_response *resp)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);

    *out = NULL;
    if (v == NULL || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v)) {
        fg_respond_error(resp, 400, "bad_request", "%s: a string is expected", key);
        return -1;
    }
    *out = v->valuestring;
    return 0;
}

void fg_reads_ribbon_push(fg_gateway *gw, const fg_request *req, fg_response *resp)
{
    fp_event ev = {.type = FP_EVENT_RIBBON_PUSHED};
    cJSON *body, *out, *entry;
    char reason[160];

    body = fg_body_object(req, resp, true);
    if (body == NULL)
        return;
    if (reads__opt_string(body, "name", &ev.entry.name, resp) != 0 ||
        reads__opt_string(body, "text", &ev.entry.text, resp) != 0)
        goto done;
    snprintf(ev.entry.user_id, sizeof(ev.entry.user_id), "%s", req->caller.sub);
    ev.entry.at = fp_time_real_ms();
    if (fp_event_validate(&ev, reason, sizeof(reason)) != 0) {
        fg_respond_error(resp, 400, "bad_request", "%s",
                         strncmp(reason, "entry.", 6) == 0 ? reason + 6 : reason);
        goto done;
    }
    if (!fg_publish(gw, &ev, resp))
        goto done;
    out = cJSON_CreateObject();
    entry = cJSON_AddObjectToObject(out, "entry");
    if (entry == NULL || cJSON_AddStringToObject(entry, "user_id", ev.entry.user_id) == NULL ||
        (ev.entry.name != NULL && cJSON_AddStringToObject(entry, "name", ev.entry.name) == NULL) ||
        (ev.entry.text != NULL && cJSON_AddStringToObject(entry, "text", ev.entry.text) == NULL) ||
        cJSON_AddNumberToObject(entry, "at", (double)ev.entry.at) == NULL) {
        cJSON_Delete(out);
        out = NULL;
    }
    fg_respond_json(resp, 202, out);
done:
    cJSON_Delete(body); /* the entry's strings pointed into it */
}
