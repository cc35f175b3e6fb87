/*
 * store_read.c - the reads of the store that feed-gateway serves (feed
 * pages, post authors, follows, revocations, health, the bridges'
 * counters); see fp_store.h. Each is one round trip (or one pipeline).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "store_priv.h"

#define STORE__STAT_NAME_MAX 47

void fp_feed_page_free(fp_feed_page *p)
{
    size_t i;

    if (p == NULL)
        return;
    for (i = 0; i < p->n; i++)
        free(p->posts[i]);
    free(p->posts);
    free(p->ids);
    memset(p, 0, sizeof(*p));
}

/* revoked:<uid>'s value (a GET reply: nil when unset) into *before.
 * Returns 0 or -EPROTO (not a non-negative integer). */
static int store__revoked_value(fp_store *s, const redisReply *r, int64_t *before)
{
    char *end;
    long long v;

    *before = 0;
    if (r->type == REDIS_REPLY_NIL)
        return 0;
    if (r->type != REDIS_REPLY_STRING)
        return store__protocol(s, "revoked", r);
    errno = 0;
    v = strtoll(r->str, &end, 10);
    if (errno != 0 || end == r->str || *end != '\0' || v < 0)
        return store__protocol(s, "revoked: not a number", r);
    *before = v;
    return 0;
}

/*
 * Fills page from feed_read.lua's flat reply (revoked, cursor, id, body,
 * id, body, ...). cursor is 0 without an after cursor, else 1 (found, at
 * the top), 2 (found, more above) or 3 (not found): want_after says which
 * kind of call it answers. Pairs whose id is not a valid id are skipped.
 * Returns 0, -EPROTO or -ENOMEM (page then freed by the caller).
 */
static int store__parse_page(fp_store *s, const redisReply *r, size_t limit, bool want_after,
                             fp_feed_page *page)
{
    static const fp_feed_after cursors[] = {FP_FEED_AFTER_NONE, FP_FEED_AFTER_TOP,
                                            FP_FEED_AFTER_MORE, FP_FEED_AFTER_MISSING};
    const redisReply *cur;
    size_t i, pairs;
    int rc;

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->elements % 2 != 0 ||
        (r->elements - 2) / 2 > limit)
        return store__protocol(s, "feed_read", r);
    cur = r->element[1];
    if (cur->type != REDIS_REPLY_INTEGER || cur->integer < 0 || cur->integer > 3 ||
        (cur->integer != 0) != want_after)
        return store__protocol(s, "feed_read: cursor", r);
    page->after = cursors[cur->integer];
    rc = store__revoked_value(s, r->element[0], &page->revoked_before);
    if (rc != 0)
        return rc;
    pairs = (r->elements - 2) / 2;
    if (pairs == 0)
        return 0;
    page->ids = calloc(pairs, sizeof(*page->ids));
    page->posts = calloc(pairs, sizeof(*page->posts));
    if (page->ids == NULL || page->posts == NULL)
        return -ENOMEM;
    for (i = 0; i < pairs; i++) {
        const redisReply *body = r->element[2 * i + 3];

        if (!store__copy_id(r->element[2 * i + 2], page->ids[page->n]) ||
            body->type != REDIS_REPLY_STRING)
            continue;
        page->posts[page->n] = malloc(body->len + 1);
        if (page->posts[page->n] == NULL)
            return -ENOMEM;
        memcpy(page->posts[page->n], body->str, body->len);
        page->posts[page->n][body->len] = '\0';
        page->n++;
    }
    return 0;
}

/*
 * One feed_read.lua call: before and after are "" or a post id (not
 * both, checked by the callers). Fills *out (zeroed first; freed again on
 * failure).
 */
static int store__feed_read(fp_store *s, const char *uid, size_t limit, const char *before,
                            const char *after, fp_feed_page *out)
{
    const char *argv[5];
    redisReply *r = NULL;
    char lim[24];
    int rc;

    snprintf(lim, sizeof(lim), "%zu", limit);
    argv[0] = s->prefix;
    argv[1] = uid;
    argv[2] = lim;
    argv[3] = before;
    argv[4] = after;
    rc = store__eval(s, STORE__FEED_READ, 0, 5, argv, &r);
    if (rc != 0)
        return rc;
    rc = store__parse_page(s, r, limit, *after != '\0', out);
    freeReplyObject(r);
    if (rc != 0)
        fp_feed_page_free(out);
    return rc;
}

/* Checks a feed read's ids and runs it: before may be NULL or "" (the
 * newest page), after NULL (none) or else an id; not both set. */
static int store__feed(fp_store *s, const char *uid, size_t limit, const char *before,
                       const char *after, fp_feed_page *out)
{
    if (s == NULL || out == NULL)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    if (!fp_id_valid(uid))
        return store__invalid(s, "feed_read", "user id is not a valid id");
    if (before == NULL)
        before = "";
    if (*before != '\0' && !fp_id_valid(before))
        return store__invalid(s, "feed_read", "before is not a valid id");
    if (after != NULL && !fp_id_valid(after))
        return store__invalid(s, "feed_read", "after is not a valid id");
    return store__feed_read(s, uid, limit, before, after != NULL ? after : "", out);
}

int fp_store_feed_page(fp_store *s, const char *uid, size_t limit, const char *before,
                       fp_feed_page *out)
{
    return store__feed(s, uid, limit, before, NULL, out);
}

int fp_store_feed_after(fp_store *s, const char *uid, size_t limit, const char *after,
                        fp_feed_page *out)
{
    /* A NULL cursor is refused like any invalid one. */
    return store__feed(s, uid, limit, NULL, after != NULL ? after : "", out);
}

int fp_store_feed_ids(fp_store *s, const char *uid, size_t limit, char (**ids)[FP_ID_BUFSZ],
                      size_t *n)
{
    fp_feed_page page;
    int rc;

    if (ids == NULL || n == NULL)
        return -EINVAL;
    *ids = NULL;
    *n = 0;
    rc = fp_store_feed_page(s, uid, limit, NULL, &page);
    if (rc != 0)
        return rc;
    *ids = page.ids;
    *n = page.n;
    page.ids = NULL;
    fp_feed_page_free(&page);
    if (*n == 0) {
        free(*ids);
        *ids = NULL;
    }
    return 0;
}

/* Runs one command (printf-style, hiredis) and checks the connection.
 * Returns the reply (caller frees) or NULL with -EIO recorded. */
static redisReply *store__command(fp_store *s, const char *what, const char *fmt, ...)
{
    redisReply *r;
    va_list ap;

    if (store__connected(s) != 0)
        return NULL;
    va_start(ap, fmt);
    r = redisvCommand(s->c, fmt, ap);
    va_end(ap);
    if (r == NULL)
        store__fail(s, what);
    return r;
}

int fp_store_post_author(fp_store *s, const char *post_id, char author[FP_ID_BUFSZ])
{
    char key[STORE__KEY_MAX];
    const cJSON *a;
    redisReply *r;
    cJSON *post = NULL;
    int rc;

    if (s == NULL || author == NULL)
        return -EINVAL;
    author[0] = '\0';
    if (!fp_id_valid(post_id))
        return store__invalid(s, "post_author", "post id is not a valid id");
    store__key(s, key, FP_KEY_POST, post_id);
    r = store__command(s, "post_author", "GET %s", key);
    if (r == NULL)
        return -EIO;
    if (r->type == REDIS_REPLY_NIL) {
        rc = -ENOENT;
        goto done;
    }
    if (r->type != REDIS_REPLY_STRING) {
        rc = store__protocol(s, "post_author", r);
        goto done;
    }
    post = cJSON_ParseWithLength(r->str, r->len);
    a = cJSON_GetObjectItemCaseSensitive(post, "author_id");
    if (!cJSON_IsString(a) || !fp_id_valid(a->valuestring)) {
        rc = store__protocol(s, "post_author: stored post has no valid author_id", r);
        goto done;
    }
    snprintf(author, FP_ID_BUFSZ, "%s", a->valuestring);
    rc = 0;
done:
    cJSON_Delete(post);
    freeReplyObject(r);
    return rc;
}

static int store__cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

int fp_store_following(fp_store *s, const char *uid, char (**ids)[FP_ID_BUFSZ], size_t *n)
{
    char key[STORE__KEY_MAX];
    redisReply *r;
    size_t i, count = 0;
    int rc = 0;

    if (s == NULL || ids == NULL || n == NULL)
        return -EINVAL;
    *ids = NULL;
    *n = 0;
    if (!fp_id_valid(uid))
        return store__invalid(s, "following", "user id is not a valid id");
    store__key(s, key, FP_KEY_FOLLOWING, uid);
    r = store__command(s, "following", "SMEMBERS %s", key);
    if (r == NULL)
        return -EIO;
    if (r->type != REDIS_REPLY_ARRAY) {
        rc = store__protocol(s, "following", r);
        goto done;
    }
    if (r->elements > 0) {
        *ids = calloc(r->elements, sizeof(**ids));
        if (*ids == NULL) {
            rc = -ENOMEM;
            goto done;
        }
    }
    for (i = 0; i < r->elements; i++) {
        if (store__copy_id(r->element[i], (*ids)[count]))
            count++;
    }
    if (count > 1)
        qsort(*ids, count, sizeof(**ids), store__cmp_id);
    *n = count;
    if (count == 0) {
        free(*ids);
        *ids = NULL;
    }
done:
    freeReplyObject(r);
    return rc;
}

int fp_store_revoked_before(fp_store *s, const char *uid, int64_t *before)
{
    char key[STORE__KEY_MAX];
    redisReply *r;
    int rc;

    if (s == NULL || before == NULL)
        return -EINVAL;
    *before = 0;
    if (!fp_id_valid(uid))
        return store__invalid(s, "revoked", "user id is not a valid id");
    store__key(s, key, FP_KEY_REVOKED, uid);
    r = store__command(s, "revoked", "GET %s", key);
    if (r == NULL)
        return -EIO;
    rc = store__revoked_value(s, r, before);
    freeReplyObject(r);
    return rc;
}

int fp_store_ping(fp_store *s)
{
    redisReply *r;
    int rc = 0;

    if (s == NULL)
        return -EINVAL;
    r = store__command(s, "ping", "PING");
    if (r == NULL)
        return -EIO;
    if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "PONG") != 0)
        rc = store__protocol(s, "ping", r);
    freeReplyObject(r);
    return rc;
}

/* ----------------------------------------------------------- stats */

/* A counter field name: 1..STORE__STAT_NAME_MAX of [a-z0-9_]. */
static bool store__stat_name_ok(const redisReply *r)
{
    size_t i;

    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > STORE__STAT_NAME_MAX)
        return false;
    for (i = 0; i < r->len; i++) {
        char c = r->str[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

/* A decimal counter value. */
static bool store__stat_value(const redisReply *r, uint64_t *v)
{
    char *end;

    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->str[0] < '0' || r->str[0] > '9')
        return false;
    errno = 0;
    *v = strtoull(r->str, &end, 10);
    return errno == 0 && *end == '\0';
}

/* Appends the fields of one HGETALL reply for node to *out. */
static int store__add_samples(const char *node, const redisReply *h, fp_stat_sample **out,
                              size_t *n)
{
    fp_stat_sample *grown;
    size_t i;
    uint64_t v;

    if (h->type != REDIS_REPLY_ARRAY)
        return 0;
    if (h->elements == 0)
        return 0;
    grown = realloc(*out, (*n + h->elements / 2) * sizeof(**out));
    if (grown == NULL)
        return -ENOMEM;
    *out = grown;
    for (i = 0; i + 1 < h->elements; i += 2) {
        if (!store__stat_name_ok(h->element[i]) || !store__stat_value(h->element[i + 1], &v))
            continue;
        snprintf(grown[*n].node, sizeof(grown[*n].node), "%s", node);
        memcpy(grown[*n].name, h->element[i]->str, h->element[i]->len);
        grown[*n].name[h->element[i]->len] = '\0';
        grown[*n].value = v;
        (*n)++;
    }
    return 0;
}

/* Sends one HGETALL per node and collects the replies in order. */
static int store__stats_pipeline(fp_store *s, char (*nodes)[FP_ID_BUFSZ], size_t n_nodes,
                                 fp_stat_sample **out, size_t *n)
{
    char key[STORE__KEY_MAX];
    void *reply;
    size_t i;
    int rc = 0;

    for (i = 0; i < n_nodes; i++) {
        store__key(s, key, FP_KEY_STATS_BRIDGE, nodes[i]);
        if (redisAppendCommand(s->c, "HGETALL %s", key) != REDIS_OK) {
            store__fail(s, "stats");
            return -EIO;
        }
    }
    for (i = 0; i < n_nodes; i++) {
        reply = NULL;
        if (redisGetReply(s->c, &reply) != REDIS_OK) {
            store__fail(s, "stats");
            return -EIO;
        }
        if (rc == 0)
            rc = store__add_samples(nodes[i], reply, out, n);
        freeReplyObject(reply);
    }
    return rc;
}

int fp_store_stats_get(fp_store *s, fp_stat_sample **out, size_t *n)
{
    char(*nodes)[FP_ID_BUFSZ] = NULL;
    char key[STORE__KEY_MAX];
    redisReply *r;
    size_t i, n_nodes = 0;
    int rc = 0;

    if (s == NULL || out == NULL || n == NULL)
        return -EINVAL;
    *out = NULL;
    *n = 0;
    store__key(s, key, FP_KEY_NODES, "");
    r = store__command(s, "stats", "SMEMBERS %s", key);
    if (r == NULL)
        return -EIO;
    if (r->type != REDIS_REPLY_ARRAY) {
        rc = store__protocol(s, "stats", r);
        goto done;
    }
    if (r->elements == 0)
        goto done;
    nodes = calloc(r->elements, sizeof(*nodes));
    if (nodes == NULL) {
        rc = -ENOMEM;
        goto done;
    }
    for (i = 0; i < r->elements; i++) {
        if (store__copy_id(r->element[i], nodes[n_nodes]))
            n_nodes++;
    }
    qsort(nodes, n_nodes, sizeof(*nodes), store__cmp_id);
    rc = store__stats_pipeline(s, nodes, n_nodes, out, n);
done:
    if (rc != 0) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    free(nodes);
    freeReplyObject(r);
    return rc;
}
