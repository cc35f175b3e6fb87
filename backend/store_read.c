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
/* A stretch's bound: '(' and a score as Redis prints it. */
#define STORE__BOUND_MAX 64
/* A feed read asks for this many ids more than it still needs: a deleted
 * or expired post leaves its id until it is trimmed. */
#define STORE__FEED_SLACK 8

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
 * One feed_read.lua call (see the script for mode and arg): its reply,
 * checked to be revoked, cursor (0 or 3), last ('' or a bound) and ids.
 * Returns 0 with *out set (the caller frees it), or a negative errno.
 */
static int store__feed_stretch(fp_store *s, const char *uid, size_t size, const char *mode,
                               const char *arg, redisReply **out)
{
    const char *argv[6];
    redisReply *r = NULL;
    char sz[24], cap[24];
    int rc;

    snprintf(sz, sizeof(sz), "%zu", size);
    snprintf(cap, sizeof(cap), "%d", s->feed_length);
    argv[0] = s->prefix;
    argv[1] = uid;
    argv[2] = sz;
    argv[3] = mode;
    argv[4] = arg;
    argv[5] = cap;
    rc = store__eval(s, STORE__FEED_READ, 0, 6, argv, &r);
    if (rc != 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->elements - 3 > size ||
        r->element[1]->type != REDIS_REPLY_INTEGER ||
        (r->element[1]->integer != 0 && r->element[1]->integer != 3) ||
        r->element[2]->type != REDIS_REPLY_STRING || r->element[2]->len >= STORE__BOUND_MAX) {
        rc = store__protocol(s, "feed_read", r);
        freeReplyObject(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* Is id among the first n of page? */
static bool store__page_has(const fp_feed_page *page, const char *id)
{
    size_t i;

    for (i = 0; i < page->n; i++) {
        if (strcmp(page->ids[i], id) == 0)
            return true;
    }
    return false;
}

void fp_store_set_body_cache(fp_store *s, const fp_body_cache *cache)
{
    if (s != NULL)
        s->bodies = cache;
}

/* The error text of a tracking command's reply, or NULL when it is not
 * an error. */
static const char *store__tracking_error(const redisReply *r)
{
    if (r == NULL)
        return "no reply";
    return r->type == REDIS_REPLY_ERROR ? r->str : r->type == REDIS_REPLY_STATUS ? NULL : "?";
}

/* Why a CLIENT ID reply is not this connection's id (NULL: it is one;
 * s->client_id is set). */
static const char *store__client_id(fp_store *s, const redisReply *r)
{
    if (r == NULL)
        return "no reply";
    if (r->type != REDIS_REPLY_INTEGER || r->integer <= 0)
        return r->type == REDIS_REPLY_ERROR ? r->str : "?";
    s->client_id = r->integer;
    return NULL;
}

/*
 * MGET of the n keys (av[1..n], av[0] is "MGET"), with tracking on for
 * them when redirect > 0: CLIENT TRACKING on REDIRECT <redirect> OPTIN
 * and CLIENT CACHING yes go first, in the same pipeline, after CLIENT ID
 * the first time on a connection (the cache is told which connection
 * read what it keeps: fp_body_cache.put). Returns the MGET's reply (an
 * array of n) or NULL (error recorded; *rc set); *tracked says whether
 * Redis took the tracking (when it refused, the cache is told why:
 * fp_body_cache.refused).
 */
static redisReply *store__mget(fp_store *s, const char **av, size_t n, long long redirect,
                               bool *tracked, int *rc)
{
    redisReply *m = NULL, *t = NULL, *c = NULL, *id = NULL;
    bool ask_id = redirect > 0 && s->client_id == 0;
    int ok;

    *tracked = false;
    ok = !ask_id || redisAppendCommand(s->c, "CLIENT ID") == REDIS_OK;
    if (ok && redirect > 0)
        ok = redisAppendCommand(s->c, "CLIENT TRACKING on REDIRECT %lld OPTIN", redirect) ==
                 REDIS_OK &&
             redisAppendCommand(s->c, "CLIENT CACHING yes") == REDIS_OK;
    if (ok)
        ok = redisAppendCommandArgv(s->c, (int)(n + 1), av, NULL) == REDIS_OK;
    if (ok && ask_id)
        ok = redisGetReply(s->c, (void **)&id) == REDIS_OK;
    if (ok && redirect > 0)
        ok = redisGetReply(s->c, (void **)&t) == REDIS_OK &&
             redisGetReply(s->c, (void **)&c) == REDIS_OK;
    if (ok)
        ok = redisGetReply(s->c, (void **)&m) == REDIS_OK;
    if (!ok) {
        store__fail(s, "feed_read: post bodies");
        *rc = -EIO;
    } else if (m->type != REDIS_REPLY_ARRAY || m->elements != n) {
        *rc = store__protocol(s, "feed_read: post bodies", m);
    } else {
        const char *why = ask_id ? store__client_id(s, id) : NULL;

        if (why == NULL)
            why = store__tracking_error(t);
        if (why == NULL)
            why = store__tracking_error(c);
        *tracked = redirect > 0 && why == NULL;
        /* A redirect to a client gone (the subscriber reconnecting, the
         * cache not told yet) is no refusal: nothing is kept, no word. */
        if (redirect > 0 && why != NULL && strstr(why, "redirect to does not exist") == NULL &&
            s->bodies->refused != NULL)
            s->bodies->refused(s->bodies->ctx, why);
        *rc = 0;
    }
    if (id != NULL)
        freeReplyObject(id);
    if (t != NULL)
        freeReplyObject(t);
    if (c != NULL)
        freeReplyObject(c);
    if (*rc != 0 && m != NULL) {
        freeReplyObject(m);
        m = NULL;
    }
    return m;
}

/* A feed page's bound of bytes (s->page_bytes; cap 0: none): what its
 * bodies take so far, and whether it stopped there. */
typedef struct {
    size_t cap, used;
    bool cut;
} store__bytes;

/* The largest body a stored post can have: every byte of its text a
 * control character, escaped six-fold, and its other fields. */
#define STORE__BODY_MAX (6 * FP_POST_TEXT_MAX + 512)
/* Bodies read at a time under a bound of bytes, at least (a default page
 * of 50 and its slack in one read) and at most. */
#define STORE__CHUNK_MIN 64
#define STORE__CHUNK_MAX 128

/*
 * How many of the left ids the next body read takes: all of them without
 * a bound; else as many as the bytes left hold at the page's average body
 * (before any, the largest a post can have), within STORE__CHUNK_MIN and
 * STORE__CHUNK_MAX. So a read under a bound holds at most the bound and
 * one chunk of bodies, whatever limit asked for.
 */
static size_t store__chunk(const store__bytes *b, size_t held, size_t left)
{
    size_t avg, k;

    if (b->cap == 0)
        return left;
    avg = held > 0 ? b->used / held : STORE__BODY_MAX;
    if (avg == 0)
        avg = 1;
    k = b->used < b->cap ? (b->cap - b->used) / avg + 1 : 1;
    if (k < STORE__CHUNK_MIN)
        k = STORE__CHUNK_MIN;
    if (k > STORE__CHUNK_MAX)
        k = STORE__CHUNK_MAX;
    return k < left ? k : left;
}

/*
 * Takes body (a malloc'd post body of id, which this owns now) into page,
 * unless the page's bound of bytes is reached: a page holds at least one
 * post, and stops at the first whose body would take it past the bound
 * (b->cut set, resume the last post it holds; body freed).
 */
static void store__page_take(fp_feed_page *page, const char *id, char *body, bool cached,
                             store__bytes *b)
{
    size_t len = strlen(body) + 1;

    if (b->cap > 0 && page->n > 0 && b->used + len > b->cap) {
        b->cut = true;
        memcpy(page->resume, page->ids[page->n - 1], FP_ID_BUFSZ);
        free(body);
        return;
    }
    b->used += len;
    page->posts[page->n] = body;
    page->cached[page->n] = cached;
    memcpy(page->ids[page->n], id, FP_ID_BUFSZ);
    page->n++;
}

/*
 * Appends to page, up to want and its bound of bytes (b), those of the n
 * ids whose post:<id> exists, with their bodies: from the body cache when
 * it knows them, the others read with one MGET (and offered to the
 * cache). page's arrays have room for want. Returns 0, -EIO, -EPROTO or
 * -ENOMEM.
 */
static int store__feed_chunk(fp_store *s, char (*ids)[FP_ID_BUFSZ], size_t n, size_t want,
                             fp_feed_page *page, store__bytes *b)
{
    char(*mids)[FP_ID_BUFSZ] = NULL, (*keys)[STORE__KEY_MAX] = NULL;
    char **bodies = NULL, **fresh = NULL;
    const char **av = NULL;
    redisReply *m = NULL;
    long long redirect = 0;
    uint64_t epoch = 0;
    bool tracked = false, *gone = NULL;
    size_t i, k, misses = 0;
    int rc = -ENOMEM;

    mids = malloc(n * sizeof(*mids));
    keys = malloc(n * sizeof(*keys));
    av = malloc((n + 1) * sizeof(*av));
    bodies = calloc(n, sizeof(*bodies)); /* by id */
    fresh = calloc(n, sizeof(*fresh));   /* by miss */
    gone = calloc(n, sizeof(*gone));
    if (mids == NULL || keys == NULL || av == NULL || bodies == NULL || fresh == NULL ||
        gone == NULL)
        goto done;
    if (s->bodies != NULL)
        redirect = s->bodies->get(s->bodies->ctx, ids, n, bodies, gone, &epoch);
    av[0] = "MGET";
    for (i = 0; i < n; i++) {
        if (bodies[i] != NULL || gone[i])
            continue;
        memcpy(mids[misses], ids[i], FP_ID_BUFSZ);
        store__key(s, keys[misses], FP_KEY_POST, ids[i]);
        av[1 + misses] = keys[misses];
        misses++;
    }
    rc = 0;
    if (misses > 0) {
        m = store__mget(s, av, misses, redirect, &tracked, &rc);
        if (m == NULL)
            goto done;
    }
    for (k = 0; k < misses; k++) {
        const redisReply *r = m->element[k];

        if (r->type != REDIS_REPLY_STRING)
            continue;
        fresh[k] = malloc(r->len + 1);
        if (fresh[k] == NULL) {
            rc = -ENOMEM;
            goto done;
        }
        memcpy(fresh[k], r->str, r->len);
        fresh[k][r->len] = '\0';
    }
    if (tracked)
        s->bodies->put(s->bodies->ctx, s->client_id, mids, misses, fresh, epoch);
    for (i = 0, k = 0; i < n && page->n < want && !b->cut; i++) {
        char **from = &bodies[i];

        if (bodies[i] == NULL && !gone[i])
            from = &fresh[k++];
        if (*from == NULL)
            continue;
        store__page_take(page, ids[i], *from, from == &bodies[i], b);
        *from = NULL;
    }
done:
    if (m != NULL)
        freeReplyObject(m);
    for (i = 0; bodies != NULL && fresh != NULL && i < n; i++) {
        free(bodies[i]);
        free(fresh[i]);
    }
    free(gone);
    free(fresh);
    free(bodies);
    free(av);
    free(keys);
    free(mids);
    return rc;
}

/*
 * Appends to page, up to want and its bound of bytes (b), the ids of a
 * stretch (elements 3.. of r) whose post:<id> exists, with their bodies
 * (store__feed_chunk), read in chunks under a bound (store__chunk). Ids
 * that are not valid ids are skipped, and so is an id the page holds
 * already (a post in two sources under two scores) when dedupe is set.
 * Returns 0, -EIO, -EPROTO or -ENOMEM.
 */
static int store__feed_bodies(fp_store *s, const redisReply *r, size_t want, bool dedupe,
                              fp_feed_page *page, store__bytes *b)
{
    size_t i, k, n = 0, nids = r->elements - 3;
    char(*ids)[FP_ID_BUFSZ] = NULL;
    int rc = 0;

    if (nids == 0)
        return 0;
    ids = malloc(nids * sizeof(*ids));
    if (ids == NULL)
        return -ENOMEM;
    for (i = 0; i < nids; i++) {
        if (!store__copy_id(r->element[3 + i], ids[n]) || (dedupe && store__page_has(page, ids[n])))
            continue;
        n++;
    }
    for (i = 0; i < n && rc == 0 && page->n < want && !b->cut; i += k) {
        k = store__chunk(b, page->n, n - i);
        rc = store__feed_chunk(s, ids + i, k, want, page, b);
    }
    free(ids);
    return rc;
}

/* Reverses the order of page's entries. */
static void store__page_reverse(fp_feed_page *page)
{
    char id[FP_ID_BUFSZ];
    size_t i, j;
    char *p;
    bool c;

    for (i = 0, j = page->n; i + 1 < j; i++, j--) {
        memcpy(id, page->ids[i], FP_ID_BUFSZ);
        memcpy(page->ids[i], page->ids[j - 1], FP_ID_BUFSZ);
        memcpy(page->ids[j - 1], id, FP_ID_BUFSZ);
        p = page->posts[i];
        page->posts[i] = page->posts[j - 1];
        page->posts[j - 1] = p;
        c = page->cached[i];
        page->cached[i] = page->cached[j - 1];
        page->cached[j - 1] = c;
    }
}

/*
 * Fills page with up to want existing posts, starting with the stretch r
 * (which this takes and frees) and going on from its bound, newest first
 * when desc, else oldest first, until the page is full or the merge has
 * no more. Each round is one script call and at most one MGET (a few of
 * them under a bound of bytes: store__chunk), and asks for what is still
 * missing plus a few (a deleted or expired post leaves its id until it is
 * trimmed), so a first page is usually one round; after a round that
 * found gone posts, the next asks for twice as many. The ids looked at
 * stop at want + FP_STORE_FEED_SCAN_EXTRA: a feed that ends in a long run
 * of gone posts (post_ttl) gives a short page with page->resume, the last
 * id looked at, rather than a read that holds Redis for many rounds. The
 * bodies stop at s->page_bytes (store__page_take), with page->resume the
 * last post the page holds.
 */
static int store__feed_collect(fp_store *s, const char *uid, size_t want, bool desc, redisReply *r,
                               fp_feed_page *page)
{
    size_t budget = want + FP_STORE_FEED_SCAN_EXTRA, seen = 0, size = 0, next, i;
    char bound[STORE__BOUND_MAX], last[FP_ID_BUFSZ] = "", id[FP_ID_BUFSZ];
    store__bytes bytes = {.cap = s->page_bytes};
    size_t rounds = 0;
    int rc = 0;

    page->ids = calloc(want > 0 ? want : 1, sizeof(*page->ids));
    page->posts = calloc(want > 0 ? want : 1, sizeof(*page->posts));
    page->cached = calloc(want > 0 ? want : 1, sizeof(*page->cached));
    if (page->ids == NULL || page->posts == NULL || page->cached == NULL) {
        freeReplyObject(r);
        return -ENOMEM;
    }
    for (;;) {
        rc = store__feed_bodies(s, r, want, rounds > 0, page, &bytes);
        memcpy(bound, r->element[2]->str, r->element[2]->len + 1);
        seen += r->elements - 3;
        /* The last valid id: an invalid one (damage) cannot be a cursor. */
        for (i = r->elements; i > 3 && !store__copy_id(r->element[i - 1], id); i--)
            ;
        if (i > 3)
            memcpy(last, id, FP_ID_BUFSZ);
        freeReplyObject(r);
        r = NULL;
        if (rc != 0 || page->n >= want || bytes.cut || bound[0] == '\0')
            return rc;
        if (seen >= budget) {
            memcpy(page->resume, last, FP_ID_BUFSZ);
            return 0;
        }
        rounds++;
        next = want - page->n + STORE__FEED_SLACK;
        size = size * 2 > next ? size * 2 : next;
        if (size > budget - seen)
            size = budget - seen;
        rc = store__feed_stretch(s, uid, size, desc ? "below" : "above", bound, &r);
        if (rc != 0)
            return rc;
    }
}

/*
 * A feed read: before and after are "" or a post id (not both, checked by
 * the callers). Fills *out (zeroed first; freed again on failure).
 */
static int store__feed_read(fp_store *s, const char *uid, size_t limit, const char *before,
                            const char *after, fp_feed_page *out)
{
    const char *mode = *after != '\0' ? "after" : *before != '\0' ? "before" : "new";
    size_t want = limit, size = limit + (*after != '\0') + STORE__FEED_SLACK;
    bool found, desc = true;
    redisReply *r = NULL;
    int rc;

    if (limit == 0 && *after == '\0')
        size = 0; /* only the revocation */
    rc = store__feed_stretch(s, uid, size, mode, *after != '\0' ? after : before, &r);
    if (rc != 0)
        return rc;
    rc = store__revoked_value(s, r->element[0], &out->revoked_before);
    if (rc != 0 || size == 0)
        goto done;
    found = r->element[1]->integer == 0;
    if (*before != '\0' && !found)
        goto done;
    if (*after != '\0') {
        /* Found: the nearest ones above it, oldest first, and one more to
         * tell whether newer posts remain. Not found: the newest page. */
        out->after = found ? FP_FEED_AFTER_TOP : FP_FEED_AFTER_MISSING;
        desc = !found;
        want = found ? limit + 1 : limit;
    }
    if (want == 0)
        goto done; /* after, not found, limit 0: nothing to read */
    rc = store__feed_collect(s, uid, want, desc, r, out);
    r = NULL;
    if (rc != 0)
        goto done;
    if (!desc) {
        if (out->n > limit) {
            out->after = FP_FEED_AFTER_MORE;
            free(out->posts[limit]);
            out->posts[limit] = NULL;
            out->n = limit;
        } else if (out->resume[0] != '\0') {
            out->after = FP_FEED_AFTER_MORE; /* from resume (fp_feed_page) */
        }
        store__page_reverse(out);
    }
done:
    if (r != NULL)
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

/*
 * Whether post_id's tombstone (fanout:<id> = "deleted", left by
 * post_deleted.lua for FP_STORE_MARKER_TTL_S) is there: -EIDRM when it
 * is, -ENOENT when not, -EIO or -EPROTO when Redis could not say.
 */
static int store__post_gone(fp_store *s, const char *post_id)
{
    char key[STORE__KEY_MAX];
    redisReply *r;
    int rc;

    store__key(s, key, FP_KEY_FANOUT, post_id);
    r = store__command(s, "post_author", "GET %s", key);
    if (r == NULL)
        return -EIO;
    if (r->type == REDIS_REPLY_STRING)
        rc = strcmp(r->str, "deleted") == 0 ? -EIDRM : -ENOENT;
    else if (r->type == REDIS_REPLY_NIL)
        rc = -ENOENT;
    else
        rc = store__protocol(s, "post_author: tombstone", r);
    freeReplyObject(r);
    return rc;
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
        /* No body: deleted, or never written (a second round trip, on
         * this path only). */
        freeReplyObject(r);
        return store__post_gone(s, post_id);
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

/* Marks alive[i] for each ids[i] that a line of a CLIENT LIST reply
 * (text: "id=<n> addr=...", a line per client) names. */
static void store__mark_listed(const char *text, const long long *ids, size_t n, bool *alive)
{
    const char *line = text;
    long long id;
    size_t i;

    while (line != NULL && *line != '\0') {
        if (strncmp(line, "id=", 3) == 0) {
            id = strtoll(line + 3, NULL, 10);
            for (i = 0; i < n; i++)
                alive[i] = alive[i] || ids[i] == id;
        }
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
}

int fp_store_clients_alive(fp_store *s, const long long *ids, size_t n, bool *alive)
{
    char(*nums)[24] = NULL;
    const char **av = NULL;
    redisReply *r = NULL;
    size_t i;
    int rc = -ENOMEM;

    if (s == NULL || (n > 0 && (ids == NULL || alive == NULL)))
        return -EINVAL;
    for (i = 0; i < n; i++)
        alive[i] = false;
    if (n == 0)
        return 0;
    if (store__connected(s) != 0)
        return -EIO;
    nums = malloc(n * sizeof(*nums));
    av = malloc((n + 3) * sizeof(*av));
    if (nums == NULL || av == NULL)
        goto done;
    av[0] = "CLIENT";
    av[1] = "LIST";
    av[2] = "ID";
    for (i = 0; i < n; i++) {
        snprintf(nums[i], sizeof(nums[i]), "%lld", ids[i]);
        av[3 + i] = nums[i];
    }
    r = redisCommandArgv(s->c, (int)(n + 3), av, NULL);
    if (r == NULL) {
        store__fail(s, "client list");
        rc = -EIO;
    } else if (r->type != REDIS_REPLY_STRING) {
        rc = store__protocol(s, "client list", r);
    } else {
        store__mark_listed(r->str, ids, n, alive);
        rc = 0;
    }
done:
    if (r != NULL)
        freeReplyObject(r);
    free(av);
    free(nums);
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
