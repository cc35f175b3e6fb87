/*
 * store_fanout.c - the fan-out of post.created and post.deleted in Redis,
 * in slices (see fp_store.h for the contract, docs/bridge.md "Big
 * fan-outs" for the design).
 *
 * A post is one call of post_created.lua (post_deleted.lua for a delete),
 * which stores it, numbers it and names the live nodes, and for a post to
 * at most STORE__SLICE recipients does the whole fan-out; else as many calls
 * of fanout_chunk.lua as its recipients need, each pushing the post onto
 * (or removing it from) a slice of feeds (STORE__SLICE; an SSCAN slice
 * may run a few over, never past twice that) and finding which
 * of them are reached on the nodes that reach many users; then, for each
 * node that reaches fewer users than the author has followers, calls of
 * route_scan.lua that walk that node's users (STORE__SCAN_SLICE a call)
 * and keep the followers. Every call is short, so Redis serves the
 * plugins and the gateway between them, whatever the follower count.
 * The targets of all calls are gathered per node, each user once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store_priv.h"

/* Feeds per call: a fanout_chunk.lua slice (SSCAN COUNT, a hint the
 * script holds to at most twice; or explicit recipients), and the most a
 * first call pushes and routes itself. */
#define STORE__SLICE 100
#define STORE__STR_(x) #x
#define STORE__STR(x) STORE__STR_(x)
#define STORE__SLICE_S STORE__STR(STORE__SLICE)
#define STORE__SCAN_SLICE "1000" /* node users per route_scan.lua call */
#define STORE__CHUNK_ARGS 9      /* ARGV of fanout_chunk.lua before the node ids */
#define STORE__BEGIN_ARGS 10     /* ARGV of post_created.lua before inline recipients */
#define STORE__DELETE_ARGS 7     /* ARGV of post_deleted.lua before inline recipients */

/* A live node as the first call named it. */
typedef struct {
    char node[FP_ID_BUFSZ];
    long long size;   /* users it reaches: online + sessions */
    bool author_here; /* the author is one of them */
    bool scan;        /* routed from its side (route_scan.lua) */
} store__node;

/* The reply of post_created.lua / post_deleted.lua. */
typedef struct {
    int state;   /* 0 first, 1 again, 2 already deleted (create only) */
    char mode;   /* 'e' explicit, 'p' pushed, 'l' pulled */
    bool slices; /* phase a: the recipients' feeds are still to be written */
    bool routed; /* phase r: the first call did it all; the nodes carry their users */
    long long n_followers;
    store__node *nodes;
    size_t n_nodes;
} store__begin;

/* One post's fan-out in progress. */
typedef struct {
    fp_store *s;
    const char *what; /* the script family, for errors */
    const char *id, *author;
    const char *op; /* for fanout_chunk.lua: push, unpush or route */
    store__begin b;
    fp_fanout *out; /* one entry per live node, in b.nodes' order */
    size_t *cap;    /* allocated users per out->nodes entry */
} store__run;

/* ------------------------------------------------------------ targets */

/* Appends uid to node i's targets. Returns 0 or -ENOMEM. */
static int store__target_add(store__run *r, size_t i, const char *uid)
{
    fp_node_targets *t = &r->out->nodes[i];
    char(*grown)[FP_ID_BUFSZ];
    size_t cap;

    if (t->n_users == r->cap[i]) {
        cap = r->cap[i] == 0 ? 16 : r->cap[i] * 2;
        grown = realloc(t->users, cap * sizeof(*t->users));
        if (grown == NULL)
            return -ENOMEM;
        t->users = grown;
        r->cap[i] = cap;
    }
    memcpy(t->users[t->n_users], uid, FP_ID_BUFSZ);
    t->n_users++;
    return 0;
}

/* The index in out->nodes of the node named by a string reply, or -1. */
static long store__node_index(const store__run *r, const redisReply *name)
{
    char node[FP_ID_BUFSZ];
    size_t i;

    if (!store__copy_id(name, node))
        return -1;
    for (i = 0; i < r->out->n_nodes; i++) {
        if (strcmp(r->out->nodes[i].node, node) == 0)
            return (long)i;
    }
    return -1;
}

/*
 * Adds the users of a {uid...} array reply to node i. Entries that are
 * not valid ids (foreign data in Redis) are skipped. Returns 0, -EPROTO
 * or -ENOMEM.
 */
static int store__targets_add(store__run *r, size_t i, const redisReply *users)
{
    char uid[FP_ID_BUFSZ];
    size_t k;
    int rc;

    if (users->type != REDIS_REPLY_ARRAY)
        return store__protocol(r->s, r->what, users);
    for (k = 0; k < users->elements; k++) {
        if (!store__copy_id(users->element[k], uid))
            continue;
        rc = store__target_add(r, i, uid);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int store__uid_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Sorts each node's targets, drops repeats (a slice may list a user
 * twice) and the nodes left without targets. */
static void store__targets_finish(fp_fanout *out)
{
    size_t i, k, n, kept = 0;
    fp_node_targets *t;

    for (i = 0; i < out->n_nodes; i++) {
        t = &out->nodes[i];
        if (t->n_users == 0) {
            free(t->users);
            continue;
        }
        qsort(t->users, t->n_users, sizeof(*t->users), store__uid_cmp);
        for (n = 1, k = 1; k < t->n_users; k++) {
            if (strcmp(t->users[k], t->users[n - 1]) != 0)
                memcpy(t->users[n++], t->users[k], FP_ID_BUFSZ);
        }
        t->n_users = n;
        out->nodes[kept++] = *t;
    }
    out->n_nodes = kept;
    if (kept == 0) {
        free(out->nodes);
        out->nodes = NULL;
    }
}

void fp_fanout_free(fp_fanout *f)
{
    size_t i;

    if (f == NULL)
        return;
    for (i = 0; i < f->n_nodes; i++)
        free(f->nodes[i].users);
    free(f->nodes);
    memset(f, 0, sizeof(*f));
}

/*
 * Adds a script's {count, first key} of feed keys of another type to
 * out (lib_feed.lua). False when e is not of that shape.
 */
static bool store__bad_feeds_add(fp_fanout *out, const redisReply *e)
{
    size_t len;

    if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
        e->element[0]->type != REDIS_REPLY_INTEGER || e->element[0]->integer < 0)
        return false;
    if (e->element[0]->integer == 0)
        return true;
    if (e->elements != 2 || e->element[1]->type != REDIS_REPLY_STRING)
        return false;
    if (out->n_bad_feeds == 0) {
        len = e->element[1]->len;
        if (len >= sizeof(out->bad_feed))
            len = sizeof(out->bad_feed) - 1;
        memcpy(out->bad_feed, e->element[1]->str, len);
        out->bad_feed[len] = '\0';
    }
    out->n_bad_feeds += (size_t)e->element[0]->integer;
    return true;
}

/* -------------------------------------------------------- first call */

/* Reads one {node, size, author_here[, users]} of the first call's reply
 * into n. False when it is not of that shape or the node id is not valid. */
static bool store__parse_node(const redisReply *e, store__node *n)
{
    if (e->type != REDIS_REPLY_ARRAY || (e->elements != 3 && e->elements != 4) ||
        e->element[1]->type != REDIS_REPLY_INTEGER || e->element[2]->type != REDIS_REPLY_INTEGER)
        return false;
    if (!store__copy_id(e->element[0], n->node))
        return false;
    n->size = e->element[1]->integer;
    n->author_here = e->element[2]->integer != 0;
    return true;
}

/*
 * Parses the reply of post_created.lua / post_deleted.lua ({state, seq,
 * mode, phase, n_followers, {n_bad, first bad key}, {node, size,
 * author_here[, users]}...}) into
 * r->b and sets up r->out with one entry per live node, the author (and,
 * in phase r, the users the call routed) already added. Returns 0,
 * -EPROTO or -ENOMEM.
 */
static int store__parse_begin(store__run *r, const redisReply *rep)
{
    store__begin *b = &r->b;
    size_t i, n;
    int rc;

    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 5 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_STRING ||
        rep->element[2]->type != REDIS_REPLY_STRING ||
        rep->element[3]->type != REDIS_REPLY_STRING || rep->element[4]->type != REDIS_REPLY_INTEGER)
        return store__protocol(r->s, r->what, rep);
    b->state = (int)rep->element[0]->integer;
    b->mode = rep->element[2]->len == 1 ? rep->element[2]->str[0] : '\0';
    b->slices = strcmp(rep->element[3]->str, "a") == 0;
    b->routed = strcmp(rep->element[3]->str, "r") == 0;
    b->n_followers = rep->element[4]->integer;
    if (b->state == 2)
        return 0;
    if ((b->mode != 'e' && b->mode != 'p' && b->mode != 'l') || rep->elements < 6 ||
        !store__bad_feeds_add(r->out, rep->element[5]))
        return store__protocol(r->s, r->what, rep);
    n = rep->elements - 6;
    if (n == 0)
        return 0;
    b->nodes = calloc(n, sizeof(*b->nodes));
    r->out->nodes = calloc(n, sizeof(*r->out->nodes));
    r->cap = calloc(n, sizeof(*r->cap));
    if (b->nodes == NULL || r->out->nodes == NULL || r->cap == NULL)
        return -ENOMEM;
    for (i = 0; i < n; i++) {
        const redisReply *e = rep->element[i + 6];
        size_t k = b->n_nodes;

        if (!store__parse_node(e, &b->nodes[k]))
            continue;
        memcpy(r->out->nodes[k].node, b->nodes[k].node, FP_ID_BUFSZ);
        r->out->n_nodes = ++b->n_nodes;
        if (b->nodes[k].author_here) {
            rc = store__target_add(r, k, r->author);
            if (rc != 0)
                return rc;
        }
        if (b->routed && e->elements == 4) {
            rc = store__targets_add(r, k, e->element[3]);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

/* ------------------------------------------------------------- slices */

static int store__slices(store__run *r, const char (*uids)[FP_ID_BUFSZ], size_t n, bool last);
static int store__chunk_whole(store__run *r, const redisReply *ids, bool last);

/*
 * One fanout_chunk.lua call over the slice `uids` (explicit recipients;
 * NULL: the SSCAN slice of followers at *cursor, which is advanced).
 * Returns 1 when the slices are done, 0 when more remain, 2 when the post
 * turned out deleted, or -EIO, -EPROTO, -ENOMEM.
 */
static int store__chunk(store__run *r, char *cursor, const char (*uids)[FP_ID_BUFSZ], size_t n_uids,
                        bool last)
{
    const char **argv;
    size_t argc, i, n_check = 0;
    char feed_len[24], check[24];
    redisReply *rep = NULL;
    long idx;
    int rc;

    argc = STORE__CHUNK_ARGS + r->b.n_nodes + n_uids;
    argv = malloc(argc * sizeof(*argv));
    if (argv == NULL) {
        rc = -ENOMEM;
        goto done;
    }
    for (i = 0; i < r->b.n_nodes; i++) {
        if (!r->b.nodes[i].scan)
            argv[STORE__CHUNK_ARGS + n_check++] = r->b.nodes[i].node;
    }
    for (i = 0; i < n_uids; i++)
        argv[STORE__CHUNK_ARGS + n_check + i] = uids[i];
    argc = STORE__CHUNK_ARGS + n_check + n_uids;
    store__i64(feed_len, r->s->feed_length);
    store__i64(check, (int64_t)n_check);
    argv[0] = r->s->prefix;
    argv[1] = r->id;
    argv[2] = r->author;
    argv[3] = feed_len;
    argv[4] = r->op;
    argv[5] = uids == NULL ? cursor : "";
    argv[6] = STORE__SLICE_S;
    argv[7] = last ? "1" : "0";
    argv[8] = check;
    rc = store__eval(r->s, STORE__FANOUT_CHUNK, 0, argc, argv, &rep);
    if (rc != 0)
        goto done;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[0]->len >= 24 ||
        rep->element[1]->type != REDIS_REPLY_INTEGER) {
        rc = store__protocol(r->s, r->what, rep);
        goto done;
    }
    if (rep->element[1]->integer == 2) {
        rc = 2;
        goto done;
    }
    if (uids == NULL) { /* the caller's next slice starts there */
        memcpy(cursor, rep->element[0]->str, rep->element[0]->len);
        cursor[rep->element[0]->len] = '\0';
    }
    if (rep->element[1]->integer == 3 && uids == NULL) {
        /* SSCAN gave more than two slices (a set in a compact encoding
         * comes whole, whatever COUNT says): written in slices. */
        if (rep->elements != 3) {
            rc = store__protocol(r->s, r->what, rep);
            goto done;
        }
        rc = store__chunk_whole(r, rep->element[2], strcmp(cursor, "0") == 0);
        if (rc == 0)
            rc = strcmp(cursor, "0") == 0;
        goto done;
    }
    if (rep->elements < 3 || !store__bad_feeds_add(r->out, rep->element[2])) {
        rc = store__protocol(r->s, r->what, rep);
        goto done;
    }
    for (i = 3; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) {
            rc = store__protocol(r->s, r->what, e);
            goto done;
        }
        idx = store__node_index(r, e->element[0]);
        if (idx < 0)
            continue;
        rc = store__targets_add(r, (size_t)idx, e->element[1]);
        if (rc != 0)
            goto done;
    }
    rc = uids == NULL ? strcmp(cursor, "0") == 0 : last;
done:
    if (rep != NULL)
        freeReplyObject(rep);
    free(argv);
    return rc;
}

/* The n recipients at uids in slices of STORE__SLICE (one call at least,
 * so that a last one with none still ends the push); last: the final
 * slice is the fan-out's last. Returns 0, 2 (deleted) or a negative error
 * as store__chunk(). */
static int store__slices(store__run *r, const char (*uids)[FP_ID_BUFSZ], size_t n, bool last)
{
    size_t first = 0, k;
    int rc;

    do {
        k = n - first;
        if (k > STORE__SLICE)
            k = STORE__SLICE;
        rc = store__chunk(r, NULL, uids + first, k, last && first + k == n);
        if (rc < 0 || rc == 2)
            return rc;
        first += k;
    } while (first < n);
    return 0;
}

/* All the slices of an explicit recipient list. Returns as
 * store__slices(). */
static int store__chunks_explicit(store__run *r, const fp_event *ev)
{
    return store__slices(r, (const char(*)[FP_ID_BUFSZ])ev->recipients, ev->n_recipients, true);
}

/* The followers an SSCAN reply (ids) gave at once, more than two slices,
 * written in slices. Members that are not valid ids are skipped (no
 * follower is written under one). Returns as store__slices(). */
static int store__chunk_whole(store__run *r, const redisReply *ids, bool last)
{
    char(*uids)[FP_ID_BUFSZ];
    size_t i, n = 0;
    int rc;

    if (ids->type != REDIS_REPLY_ARRAY)
        return store__protocol(r->s, r->what, ids);
    uids = calloc(ids->elements > 0 ? ids->elements : 1, sizeof(*uids));
    if (uids == NULL)
        return -ENOMEM;
    for (i = 0; i < ids->elements; i++) {
        const redisReply *e = ids->element[i];

        if (e->type != REDIS_REPLY_STRING || !fp_id_valid_n(e->str, e->len))
            continue;
        memcpy(uids[n], e->str, e->len);
        uids[n][e->len] = '\0';
        n++;
    }
    rc = store__slices(r, (const char(*)[FP_ID_BUFSZ])uids, n, last);
    free(uids);
    return rc;
}

/* All the SSCAN slices of the author's followers. Returns like
 * store__chunks_explicit(). */
static int store__chunks_followers(store__run *r)
{
    char cursor[24] = "0";
    int rc;

    do {
        rc = store__chunk(r, cursor, NULL, 0, false);
    } while (rc == 0);
    return rc == 1 ? 0 : rc;
}

/*
 * Routes from node i's side: route_scan.lua over its online:<node>, then
 * its sessions:<node>, STORE__SCAN_SLICE users a call, keeping the
 * author's followers. Returns 0, -EIO, -EPROTO or -ENOMEM.
 */
static int store__scan_node(store__run *r, size_t i)
{
    static const char *const sets[] = {"online", "sessions"};
    const char *argv[6];
    size_t set;
    char cursor[24];
    redisReply *rep;
    int rc;

    for (set = 0; set < 2; set++) {
        strcpy(cursor, "0");
        do {
            argv[0] = r->s->prefix;
            argv[1] = r->author;
            argv[2] = r->b.nodes[i].node;
            argv[3] = sets[set];
            argv[4] = cursor;
            argv[5] = STORE__SCAN_SLICE;
            rc = store__eval(r->s, STORE__ROUTE_SCAN, 0, 6, argv, &rep);
            if (rc != 0)
                return rc;
            if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
                rep->element[0]->type != REDIS_REPLY_STRING || rep->element[0]->len >= 24) {
                rc = store__protocol(r->s, r->what, rep);
                freeReplyObject(rep);
                return rc;
            }
            memcpy(cursor, rep->element[0]->str, rep->element[0]->len);
            cursor[rep->element[0]->len] = '\0';
            rc = store__targets_add(r, i, rep->element[1]);
            freeReplyObject(rep);
            if (rc != 0)
                return rc;
        } while (strcmp(cursor, "0") != 0);
    }
    return 0;
}

/*
 * The routing after the first call: the nodes that reach fewer users than
 * the author has followers are walked from their side (route_scan.lua);
 * the others are checked against the recipients, walked in slices
 * without writing (fanout_chunk.lua, op route). Returns 0 or a negative
 * error.
 */
static int store__route(store__run *r, const fp_event *explicit_ev)
{
    bool check = false;
    size_t i;
    int rc = 0;

    for (i = 0; i < r->b.n_nodes; i++) {
        /* A node is walked from its side when that reads fewer users
         * than the followers; explicit recipients are always checked. */
        r->b.nodes[i].scan = explicit_ev == NULL && r->b.nodes[i].size < r->b.n_followers;
        if (!r->b.nodes[i].scan && r->b.nodes[i].size > 0)
            check = true;
    }
    r->op = "route";
    if (check && explicit_ev != NULL)
        rc = store__chunks_explicit(r, explicit_ev);
    else if (check)
        rc = store__chunks_followers(r);
    if (rc != 0)
        return rc;
    for (i = 0; i < r->b.n_nodes; i++) {
        if (r->b.nodes[i].scan && r->b.nodes[i].size > 0) {
            rc = store__scan_node(r, i);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

/* Frees what a run holds besides *out. */
static void store__run_free(store__run *r)
{
    free(r->b.nodes);
    free(r->cap);
}

/*
 * The common tail of both entry points: parse the first call's reply,
 * route, finish the targets and note the slices still to write. *out is
 * left empty on failure and when the post is deleted. Returns 0 or a
 * negative error.
 */
static int store__run_all(store__run *r, const redisReply *first, const fp_event *explicit_ev)
{
    int rc;

    rc = store__parse_begin(r, first);
    if (rc != 0 || r->b.state == 2)
        goto fail;
    if (!r->b.routed)
        rc = store__route(r, explicit_ev);
    if (rc != 0)
        goto fail;
    store__targets_finish(r->out);
    r->out->pending = r->b.slices;
    store__run_free(r);
    return 0;
fail:
    fp_fanout_free(r->out);
    store__run_free(r);
    return rc;
}

/* ------------------------------------------------------------- posts */

/* The stored post body {"id","author_id","text","created_at"}; malloc'd,
 * NULL on ENOMEM. */
static char *store__post_json(const fp_post *p)
{
    cJSON *o;
    char *json = NULL;

    o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    if (cJSON_AddStringToObject(o, "id", p->id) == NULL ||
        cJSON_AddStringToObject(o, "author_id", p->author_id) == NULL ||
        cJSON_AddStringToObject(o, "text", p->text) == NULL ||
        !store__add_i64(o, "created_at", p->created_at))
        goto done;
    json = cJSON_PrintUnformatted(o);
done:
    cJSON_Delete(o);
    return json;
}

/* The recipients of a post (author: its author), the author included
 * once: the explicit list (sorted, without repeats) or the followers
 * (never the author). */
static size_t store__n_recipients(const fp_event *ev, const char *author, long long n_followers)
{
    if (!ev->has_recipients)
        return (size_t)n_followers + 1;
    if (bsearch(author, ev->recipients, ev->n_recipients, sizeof(*ev->recipients),
                store__uid_cmp) != NULL)
        return ev->n_recipients;
    return ev->n_recipients + 1;
}

/* The arguments of one post_created.lua call, and what they point at. */
typedef struct {
    const char *argv[STORE__BEGIN_ARGS + STORE__SLICE];
    size_t argc;
    char feed_len[24], ttl[24], threshold[24], post_ttl[24];
    char *body;
} store__post_call;

/* Builds c for ev (checked to be a valid post.created). 0, -EINVAL or
 * -ENOMEM; free c->body after the call either way. */
static int store__post_call_init(fp_store *s, const fp_event *ev, store__post_call *c)
{
    bool inline_rcpt;
    size_t i;
    int rc;

    c->body = NULL;
    rc = store__check_event(s, ev, FP_EVENT_POST_CREATED);
    if (rc != 0)
        return rc;
    c->body = store__post_json(&ev->post);
    if (c->body == NULL)
        return -ENOMEM;
    store__i64(c->feed_len, s->feed_length);
    store__i64(c->ttl, FP_STORE_MARKER_TTL_S);
    store__i64(c->threshold, s->pull_threshold);
    store__i64(c->post_ttl, s->post_ttl_s);
    c->argv[0] = s->prefix;
    c->argv[1] = ev->post.id;
    c->argv[2] = ev->post.author_id;
    c->argv[3] = c->body;
    c->argv[4] = c->feed_len;
    c->argv[5] = c->ttl;
    inline_rcpt = ev->has_recipients && ev->n_recipients <= STORE__SLICE;
    c->argv[6] = !ev->has_recipients ? "0" : inline_rcpt ? "2" : "1";
    c->argv[7] = c->threshold;
    c->argv[8] = STORE__SLICE_S;
    c->argv[9] = c->post_ttl;
    c->argc = STORE__BEGIN_ARGS;
    for (i = 0; inline_rcpt && i < ev->n_recipients; i++)
        c->argv[c->argc++] = ev->recipients[i];
    return 0;
}

/* The rest of a post.created after post_created.lua answered rep: the
 * routing (store__route) into *out. 0 or a negative error; *out is
 * empty on failure. */
static int store__post_routed(fp_store *s, const fp_event *ev, const redisReply *rep,
                              fp_fanout *out)
{
    store__run r = {.s = s, .what = "post_created", .out = out};
    int rc;

    r.id = ev->post.id;
    r.author = ev->post.author_id;
    rc = store__run_all(&r, rep, ev->has_recipients ? ev : NULL);
    if (rc != 0)
        return rc;
    out->duplicate = r.b.state != 0;
    if (r.b.state != 2)
        out->n_recipients = store__n_recipients(ev, ev->post.author_id, r.b.n_followers);
    return 0;
}

/*
 * post.created: post_created.lua, then the routing (store__route). Returns
 * 0 with *out filled, -EINVAL, -EIO, -EPROTO or -ENOMEM.
 */
int fp_store_post_created(fp_store *s, const fp_event *ev, fp_fanout *out)
{
    store__post_call c;
    redisReply *rep = NULL;
    int rc;

    if (s == NULL || out == NULL)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    rc = store__post_call_init(s, ev, &c);
    if (rc == 0)
        rc = store__eval(s, STORE__POST_CREATED, 0, c.argc, c.argv, &rep);
    free(c.body);
    if (rc != 0)
        return rc;
    rc = store__post_routed(s, ev, rep, out);
    freeReplyObject(rep);
    return rc;
}

/*
 * Several post.created in one round trip: their post_created.lua calls
 * are sent together and their replies read together, then each is routed
 * like fp_store_post_created (a big post's routing may take more calls).
 * A call refused with NOSCRIPT is run again alone (scripts reloaded).
 * Returns 0 with rcs[i] and outs[i] what fp_store_post_created would have
 * given for evs[i], or -EIO / -ENOMEM when the link failed or memory ran
 * out first (then outs hold nothing, and which calls ran is unknown: all
 * are harmless to run again).
 */
int fp_store_posts_created(fp_store *s, const fp_event *const *evs, size_t n, fp_fanout *outs,
                           int *rcs)
{
    store__post_call *calls;
    redisReply **reps;
    size_t i, sent;
    int rc = 0;

    if (s == NULL || evs == NULL || outs == NULL || rcs == NULL)
        return -EINVAL;
    memset(outs, 0, n * sizeof(*outs));
    calls = calloc(n, sizeof(*calls));
    reps = calloc(n, sizeof(*reps));
    if (calls == NULL || reps == NULL) {
        rc = -ENOMEM;
        goto done;
    }
    /* Every call queued, then every reply read: the routing after may
     * take calls of its own, which must not read these replies. */
    for (sent = 0; sent < n && rc == 0; sent++) {
        rcs[sent] = store__post_call_init(s, evs[sent], &calls[sent]);
        if (rcs[sent] == 0)
            rcs[sent] =
                store__eval_append(s, STORE__POST_CREATED, 0, calls[sent].argc, calls[sent].argv);
        if (rcs[sent] == -ENOMEM || rcs[sent] == -EIO)
            rc = rcs[sent];
    }
    for (i = 0; i < sent && rc != -EIO; i++) {
        if (rcs[i] == 0)
            rcs[i] = store__eval_reply(s, STORE__POST_CREATED, &reps[i]);
        if (rcs[i] == -EIO)
            rc = -EIO; /* the link is gone: no reply after this one */
    }
    for (i = 0; i < n && rc == 0; i++) {
        if (rcs[i] == 0)
            rcs[i] = store__post_routed(s, evs[i], reps[i], &outs[i]);
        else if (rcs[i] == -ENOENT)
            rcs[i] = fp_store_post_created(s, evs[i], &outs[i]);
    }
done:
    for (i = 0; calls != NULL && i < n; i++)
        free(calls[i].body);
    for (i = 0; reps != NULL && i < n; i++)
        freeReplyObject(reps[i]);
    free(reps);
    free(calls);
    if (rc != 0) {
        for (i = 0; i < n; i++)
            fp_fanout_free(&outs[i]);
    }
    return rc;
}

/* post.deleted: post_deleted.lua, then the slices. Returns like
 * fp_store_post_created(). */
int fp_store_post_deleted(fp_store *s, const fp_event *ev, fp_fanout *out)
{
    store__run r = {.s = s, .what = "post_deleted", .out = out};
    const char *argv[STORE__DELETE_ARGS + STORE__SLICE];
    char ttl[24], threshold[24];
    redisReply *rep = NULL;
    bool inline_rcpt;
    size_t argc, i;
    int rc;

    if (s == NULL || out == NULL)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    rc = store__check_event(s, ev, FP_EVENT_POST_DELETED);
    if (rc != 0)
        return rc;
    r.id = ev->post_id;
    r.author = ev->author_id;
    store__i64(ttl, FP_STORE_MARKER_TTL_S);
    store__i64(threshold, s->pull_threshold);
    argv[0] = s->prefix;
    argv[1] = r.id;
    argv[2] = r.author;
    argv[3] = ttl;
    argv[4] = threshold;
    argv[5] = STORE__SLICE_S;
    inline_rcpt = ev->has_recipients && ev->n_recipients <= STORE__SLICE;
    argv[6] = !ev->has_recipients ? "0" : inline_rcpt ? "2" : "1";
    argc = STORE__DELETE_ARGS;
    for (i = 0; inline_rcpt && i < ev->n_recipients; i++)
        argv[argc++] = ev->recipients[i];
    rc = store__eval(s, STORE__POST_DELETED, 0, argc, argv, &rep);
    if (rc != 0)
        return rc;
    rc = store__run_all(&r, rep, ev->has_recipients ? ev : NULL);
    freeReplyObject(rep);
    if (rc != 0)
        return rc;
    out->duplicate = r.b.state != 0;
    out->n_recipients = store__n_recipients(ev, ev->author_id, r.b.n_followers);
    out->unpush = true;
    return 0;
}

/*
 * The feed writes left after the first call (f->pending): the post added
 * to (or, for a delete, removed from) the recipients' feeds in slices of
 * STORE__SLICE, the last of which marks the push done. A post
 * deleted meanwhile stops it (not an error). Returns 0, -EINVAL, -EIO,
 * -EPROTO or -ENOMEM.
 */
int fp_store_post_finish(fp_store *s, const fp_event *ev, fp_fanout *f)
{
    store__run r = {.s = s, .what = "post_finish"};
    fp_fanout none = {0};
    int rc;

    if (s == NULL || ev == NULL || f == NULL)
        return -EINVAL;
    if (!f->pending)
        return 0;
    if (ev->type == FP_EVENT_POST_CREATED) {
        r.id = ev->post.id;
        r.author = ev->post.author_id;
    } else {
        r.id = ev->post_id;
        r.author = ev->author_id;
    }
    r.op = f->unpush ? "unpush" : "push";
    r.out = &none;
    if (ev->has_recipients)
        rc = store__chunks_explicit(&r, ev);
    else
        rc = store__chunks_followers(&r);
    if (none.n_bad_feeds > 0) {
        if (f->n_bad_feeds == 0)
            memcpy(f->bad_feed, none.bad_feed, sizeof(f->bad_feed));
        f->n_bad_feeds += none.n_bad_feeds;
    }
    return rc == 2 ? 0 : rc;
}
