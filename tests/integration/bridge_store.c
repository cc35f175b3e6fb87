/*
 * bridge_store: the backend's Redis layer (backend/store.c) against a real
 * redis-server started by the harness, one per test: post fan-out (followers,
 * explicit recipients, the feed cap, redelivery), online targeting per live
 * node with stale-node cleanup, deletes, follows, the ribbon script,
 * revocation with its pub/sub message, NOSCRIPT recovery, a Redis restart,
 * and the time of a 10,000-follower fan-out.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "ft_harness.h"
#include "fp_time.h"
#include "fp_store.h"
#include "ft_main.h"
#include "ft_redis.h"

#define PREFIX "pfx:"

typedef struct {
    ft_server redis;
    fp_store *st;     /* opened with PREFIX */
    redisContext *rc; /* raw connection for setup and checks */
} env;

/* ------------------------------------------------------------ helpers */

/* The config each store of these tests starts from: the test's Redis,
 * prefix, a 5 s timeout; a test sets the field it is about. */
static fp_store_config store_config(const ft_server *s, const char *prefix)
{
    return (fp_store_config){
        .host = "127.0.0.1", .port = s->port, .prefix = prefix, .timeout_ms = 5000};
}

static fp_store *open_store(const ft_server *s, const char *prefix, int feed_length)
{
    fp_store_config cfg = store_config(s, prefix);
    fp_store *st = NULL;
    int rc;

    cfg.feed_length = feed_length;
    rc = fp_store_open(&st, &cfg);

    if (rc != 0)
        fail_msg("fp_store_open: %d (%s)", rc, fp_store_errstr(st));
    return st;
}

static int setup(void **state)
{
    env *e = calloc(1, sizeof(*e));

    assert_non_null(e);
    assert_int_equal(ft_server_start(&e->redis, "redis", NULL), 0);
    e->rc = ft_redis_connect(e->redis.port);
    e->st = open_store(&e->redis, PREFIX, 0);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;

    fp_store_free(e->st);
    redisFree(e->rc);
    ft_server_stop(&e->redis);
    free(e);
    return 0;
}

/* A command on the raw connection whose reply must not be an error, the
 * reply dropped. */
#define run(c, ...) freeReplyObject(ft_redis_cmd((c), __VA_ARGS__))

/* Parses an event from printf-formatted JSON (the codec the bridge uses). */
__attribute__((format(printf, 2, 3))) static void event(fp_event *ev, const char *fmt, ...)
{
    char body[4096], reason[128];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(body));
    if (fp_event_parse(body, (size_t)n, NULL, ev, reason, sizeof(reason)) != 0)
        fail_msg("event %s: %s", body, reason);
}

static void post(fp_store *st, const char *id, const char *author, fp_fanout *f)
{
    fp_event ev;
    int rc;

    event(&ev,
          "{\"type\":\"post.created\",\"post\":{\"id\":\"%s\",\"author_id\":\"%s\","
          "\"text\":\"hello from %s\",\"created_at\":1700000000000}}",
          id, author, author);
    rc = fp_store_post_created(st, &ev, f);
    if (rc != 0)
        fail_msg("post_created %s: %d (%s)", id, rc, fp_store_errstr(st));
    rc = fp_store_post_finish(st, &ev, f);
    if (rc != 0)
        fail_msg("post_finish %s: %d (%s)", id, rc, fp_store_errstr(st));
    fp_event_free(&ev);
}

static void follow(fp_store *st, const char *type, const char *follower, const char *followee)
{
    fp_event ev;

    event(&ev, "{\"type\":\"%s\",\"follower_id\":\"%s\",\"followee_id\":\"%s\"}", type, follower,
          followee);
    assert_int_equal(fp_store_follow(st, &ev), 0);
    fp_event_free(&ev);
}

/* How many times id occurs in the feed key (a sorted set: 0 or 1). */
static size_t list_count(redisContext *c, const char *key, const char *id)
{
    redisReply *r = ft_redis_cmd(c, "ZREVRANGE %s 0 -1", key);
    size_t i, n = 0;

    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    for (i = 0; i < r->elements; i++)
        n += strcmp(r->element[i]->str, id) == 0;
    freeReplyObject(r);
    return n;
}

/* True when fp_store_feed_ids(uid) returns id. */
static bool feed_has(fp_store *st, const char *uid, const char *id)
{
    char(*ids)[FP_ID_BUFSZ] = NULL;
    size_t n = 0, i;
    bool found = false;

    assert_int_equal(fp_store_feed_ids(st, uid, 1000, &ids, &n), 0);
    for (i = 0; i < n; i++)
        found = found || strcmp(ids[i], id) == 0;
    free(ids);
    return found;
}

static const fp_node_targets *find_node(const fp_fanout *f, const char *node)
{
    size_t i;

    for (i = 0; i < f->n_nodes; i++) {
        if (strcmp(f->nodes[i].node, node) == 0)
            return &f->nodes[i];
    }
    return NULL;
}

static bool has_user(const fp_node_targets *t, const char *uid)
{
    size_t i;

    for (i = 0; i < t->n_users; i++) {
        if (strcmp(t->users[i], uid) == 0)
            return true;
    }
    return false;
}

static double now_s(void)
{
    return (double)fp_time_mono_ns() / 1e9;
}

/* Node n1 is live (its heartbeat and its place in nodes) with the users
 * (ids, up to a NULL) online on it. */
static void n1_live(env *e, ...)
{
    const char *uid;
    va_list ap;

    run(e->rc, "SET %s %s EX 30", PREFIX "node:n1", "1");
    run(e->rc, "SADD %s n1", PREFIX "nodes");
    va_start(ap, e);
    for (uid = va_arg(ap, const char *); uid != NULL; uid = va_arg(ap, const char *))
        run(e->rc, "SADD %s %s", PREFIX "online:n1", uid);
    va_end(ap);
}

/* ------------------------------------------------------------- posts */

/* B follows A; A posts: B's and A's feeds hold it, C's does not. */
static void seed_scenario(fp_store *st, redisContext *rc, const char *prefix)
{
    fp_fanout f;
    redisReply *r;
    cJSON *body;
    char key[64];

    follow(st, "follow.created", "B", "A");
    post(st, "p1", "A", &f);
    assert_false(f.duplicate);
    assert_int_equal(f.n_recipients, 2);
    assert_int_equal(f.n_nodes, 0); /* nobody online anywhere */
    fp_fanout_free(&f);

    assert_true(feed_has(st, "B", "p1"));
    assert_true(feed_has(st, "A", "p1"));
    assert_false(feed_has(st, "C", "p1"));

    snprintf(key, sizeof(key), "%spost:p1", prefix);
    r = ft_redis_cmd(rc, "GET %s", key);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    body = cJSON_Parse(r->str);
    assert_non_null(body);
    assert_string_equal(cJSON_GetObjectItem(body, "id")->valuestring, "p1");
    assert_string_equal(cJSON_GetObjectItem(body, "author_id")->valuestring, "A");
    assert_string_equal(cJSON_GetObjectItem(body, "text")->valuestring, "hello from A");
    assert_true(cJSON_GetObjectItem(body, "created_at")->valuedouble == 1700000000000.0);
    cJSON_Delete(body);
    freeReplyObject(r);
    snprintf(key, sizeof(key), "%sfeed:B", prefix);
    assert_int_equal(list_count(rc, key, "p1"), 1);
}

static void test_seed_scenario(void **state)
{
    env *e = *state;
    fp_store *plain;

    seed_scenario(e->st, e->rc, PREFIX);
    /* The same without a prefix, on the same server: separate keys. */
    plain = open_store(&e->redis, "", 0);
    assert_false(feed_has(plain, "B", "p1"));
    seed_scenario(plain, e->rc, "");
    fp_store_free(plain);
    assert_int_equal(ft_redis_int(e->rc, "EXISTS %s", "followers:A"), 1);
    assert_int_equal(ft_redis_int(e->rc, "EXISTS %s", PREFIX "followers:A"), 1);
}

/* Explicit recipients replace the followers; the author is added. */
static void test_explicit_recipients(void **state)
{
    env *e = *state;
    fp_fanout f;
    fp_event ev;

    follow(e->st, "follow.created", "B", "A");
    event(&ev, "{\"type\":\"post.created\",\"post\":{\"id\":\"p2\",\"author_id\":\"A\","
               "\"text\":\"just you two\",\"created_at\":1},\"recipients\":[\"C\",\"D\",\"C\"]}");
    assert_int_equal(fp_store_post_created(e->st, &ev, &f), 0);
    fp_event_free(&ev);
    assert_int_equal(f.n_recipients, 3);
    fp_fanout_free(&f);
    assert_true(feed_has(e->st, "C", "p2"));
    assert_true(feed_has(e->st, "D", "p2"));
    assert_true(feed_has(e->st, "A", "p2"));
    assert_false(feed_has(e->st, "B", "p2"));
}

/* Writes to body (cap bytes) head, an event's JSON up to its
 * "recipients":[, then the ids <tag>000 .. <tag><n - 1> and "]}". */
static void with_recipients(char *body, size_t cap, const char *head, char tag, int n)
{
    size_t used = (size_t)snprintf(body, cap, "%s", head);
    int i;

    for (i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(body + used, cap - used, "%s\"%c%03d\"", i ? "," : "", tag, i);
    if (used < cap)
        used += (size_t)snprintf(body + used, cap - used, "]}");
    assert_true(used < cap);
}

/* 300 explicit recipients (more than one call's worth, 100): every feed
 * gets the post, the online ones among them are the targets, and a
 * redelivery pushes nothing again but routes the same. */
static void test_explicit_slices(void **state)
{
    env *e = *state;
    char body[8192], uid[16];
    const fp_node_targets *t;
    redisReply *r;
    fp_fanout f;
    fp_event ev;
    int i, round;

    with_recipients(body, sizeof(body),
                    "{\"type\":\"post.created\",\"post\":{\"id\":\"px\",\"author_id\":"
                    "\"A\",\"text\":\"many\",\"created_at\":1},\"recipients\":[",
                    'r', 300);
    n1_live(e, "r000", "r150", "r299", "other", NULL);
    for (round = 0; round < 2; round++) {
        event(&ev, "%s", body);
        assert_int_equal(fp_store_post_created(e->st, &ev, &f), 0);
        assert_int_equal(f.pending, round == 0);
        assert_int_equal(fp_store_post_finish(e->st, &ev, &f), 0);
        fp_event_free(&ev);
        assert_int_equal(f.duplicate, round == 1);
        assert_int_equal(f.n_recipients, 301);
        t = find_node(&f, "n1");
        assert_non_null(t);
        assert_int_equal(t->n_users, 3);
        assert_true(has_user(t, "r000") && has_user(t, "r150") && has_user(t, "r299"));
        fp_fanout_free(&f);
    }
    for (i = 0; i < 300; i += 37) {
        snprintf(uid, sizeof(uid), "r%03d", i);
        assert_true(feed_has(e->st, uid, "px"));
    }
    assert_true(feed_has(e->st, "r299", "px"));
    r = ft_redis_cmd(e->rc, "GET %s", PREFIX "fanout:px");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_true(r->len > 4 && strcmp(r->str + r->len - 4, " e d") == 0);
    freeReplyObject(r);
}

/* 1,500 posts: the follower's feed holds exactly the newest 1,000, newest first. */
static void test_feed_cap(void **state)
{
    env *e = *state;
    char(*ids)[FP_ID_BUFSZ] = NULL;
    char id[16];
    fp_fanout f;
    size_t n = 0, i;

    follow(e->st, "follow.created", "B", "A");
    for (i = 0; i < 1500; i++) {
        snprintf(id, sizeof(id), "p%04zu", i);
        post(e->st, id, "A", &f);
        fp_fanout_free(&f);
    }
    assert_int_equal(ft_redis_int(e->rc, "ZCARD %s", PREFIX "feed:B"), 1000);
    assert_int_equal(fp_store_feed_ids(e->st, "B", 5000, &ids, &n), 0);
    assert_int_equal(n, 1000);
    for (i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "p%04zu", 1499 - i);
        assert_string_equal(ids[i], id);
    }
    free(ids);
    /* A limit smaller than the feed. */
    assert_int_equal(fp_store_feed_ids(e->st, "B", 3, &ids, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(ids[0], "p1499");
    assert_string_equal(ids[2], "p1497");
    free(ids);
    assert_int_equal(fp_store_feed_ids(e->st, "B", 0, &ids, &n), 0);
    assert_int_equal(n, 0);
    assert_null(ids);
}

/* The same post.created twice: each feed holds the id once. */
static void test_redelivery(void **state)
{
    env *e = *state;
    fp_fanout f;

    follow(e->st, "follow.created", "B", "A");
    post(e->st, "p3", "A", &f);
    assert_false(f.duplicate);
    fp_fanout_free(&f);
    post(e->st, "p3", "A", &f);
    assert_true(f.duplicate);
    assert_int_equal(f.n_recipients, 2);
    fp_fanout_free(&f);
    assert_int_equal(list_count(e->rc, PREFIX "feed:B", "p3"), 1);
    assert_int_equal(list_count(e->rc, PREFIX "feed:A", "p3"), 1);
    assert_int_equal(ft_redis_int(e->rc, "TTL %s", PREFIX "fanout:p3") > 86400, 1);
}

/* A fake post body cache: what it was offered, and by which reader. */
static struct {
    long long redirect, reader;
    size_t gets, puts, refusals;
    size_t most; /* ids asked of one get, at most */
} fake_cache;

static long long fake_get(void *ctx, char (*ids)[FP_ID_BUFSZ], size_t n, char **bodies, bool *gone,
                          uint64_t *epoch)
{
    (void)ctx;
    (void)ids;
    (void)n;
    (void)bodies;
    (void)gone;
    *epoch = 1;
    fake_cache.gets++;
    return fake_cache.redirect;
}

static void fake_put(void *ctx, long long reader, char (*ids)[FP_ID_BUFSZ], size_t n,
                     char *const *bodies, uint64_t epoch)
{
    (void)ctx;
    (void)ids;
    (void)n;
    (void)bodies;
    (void)epoch;
    fake_cache.reader = reader;
    fake_cache.puts++;
}

static void fake_refused(void *ctx, const char *reply)
{
    (void)ctx;
    printf("# refused: %s\n", reply);
    fake_cache.refusals++;
}

/* The body cache's side of a feed read: bodies read with tracking
 * redirected to a live subscriber are offered with the reading link's
 * client id (what fp_store_clients_alive then checks); a redirect to a
 * client that is gone (the subscriber reconnecting) offers nothing and
 * is no refusal. */
static void test_body_cache_reads(void **state)
{
    static const fp_body_cache cache = {
        .ctx = NULL, .get = fake_get, .put = fake_put, .refused = fake_refused};
    env *e = *state;
    redisContext *sub = ft_redis_connect(e->redis.port);
    fp_feed_page page;
    long long id = ft_redis_int(sub, "CLIENT ID");
    bool alive[2];
    long long ids[2];
    fp_fanout f;

    run(sub, "SUBSCRIBE __redis__:invalidate");
    post(e->st, "bc1", "A", &f);
    fp_fanout_free(&f);
    memset(&fake_cache, 0, sizeof(fake_cache));
    fp_store_set_body_cache(e->st, &cache);
    fake_cache.redirect = id;
    assert_int_equal(fp_store_feed_page(e->st, "A", 10, NULL, &page), 0);
    assert_int_equal(page.n, 1);
    fp_feed_page_free(&page);
    assert_int_equal(fake_cache.puts, 1);
    assert_true(fake_cache.reader > 0);
    ids[0] = fake_cache.reader;
    ids[1] = 999999999;
    assert_int_equal(fp_store_clients_alive(e->st, ids, 2, alive), 0);
    assert_true(alive[0]);
    assert_false(alive[1]);

    fake_cache.redirect = 999999999; /* no such client */
    assert_int_equal(fp_store_feed_page(e->st, "A", 10, NULL, &page), 0);
    assert_int_equal(page.n, 1); /* read all the same */
    fp_feed_page_free(&page);
    assert_int_equal(fake_cache.puts, 1);
    assert_int_equal(fake_cache.refusals, 0);
    fp_store_set_body_cache(e->st, NULL);
    redisFree(sub);
}

/* Redis's keyspace_hits so far (INFO stats): keys found by any read,
 * the bodies an MGET takes among them. */
static long long keyspace_hits(redisContext *c)
{
    static const char key[] = "keyspace_hits:";
    redisReply *r = ft_redis_cmd(c, "INFO stats");
    const char *p = strstr(r->str, key);
    long long n;

    assert_non_null(p);
    n = atoll(p + sizeof(key) - 1);
    freeReplyObject(r);
    return n;
}

/* Walks uid's feed with limit 1000 from the newest page (before=, or
 * after= from the post first when up), following each page's resume until
 * a page comes back whole; checks that every page's bodies (each length +
 * 1) take at most cap bytes, and more than cap - body (a body's length at
 * most) when the page was cut. The ids, in walking order, into got;
 * returns their count. */
static size_t walk_bounded(fp_store *st, const char *uid, const char *first, bool up, size_t cap,
                           size_t body, char got[][FP_ID_BUFSZ], size_t max)
{
    char cursor[FP_ID_BUFSZ];
    fp_feed_page p;
    size_t n = 0, i, pages = 0, bytes;
    bool more = true;

    snprintf(cursor, sizeof(cursor), "%s", first);
    while (more) {
        if (up)
            assert_int_equal(fp_store_feed_after(st, uid, 1000, cursor, &p), 0);
        else
            assert_int_equal(fp_store_feed_page(st, uid, 1000, pages > 0 ? cursor : NULL, &p), 0);
        assert_true(p.n >= 1);
        bytes = 0;
        for (i = 0; i < p.n && n < max; i++) {
            assert_non_null(strstr(p.posts[i], p.ids[i]));
            bytes += strlen(p.posts[i]) + 1;
            memcpy(got[n++], p.ids[up ? p.n - 1 - i : i], FP_ID_BUFSZ);
        }
        more = p.resume[0] != '\0';
        assert_true(bytes <= cap);
        if (more) {
            assert_true(bytes > cap - body);
            memcpy(cursor, p.resume, FP_ID_BUFSZ);
        }
        if (up)
            assert_int_equal(p.after, more ? FP_FEED_AFTER_MORE : FP_FEED_AFTER_TOP);
        fp_feed_page_free(&p);
        assert_true(++pages < 30);
    }
    return n;
}

/* Checks that got (n ids) is prefix<first>, prefix<first + step>, ... */
static void check_run(char got[][FP_ID_BUFSZ], size_t n, const char *prefix, long first, long step)
{
    char id[32];
    size_t i;

    for (i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "%s%ld", prefix, first + step * (long)i);
        assert_string_equal(got[i], id);
    }
}

/* Walks uid's feed of n posts <prefix>0 .. <prefix><n-1> under a bound of
 * 64 KiB (walk_bounded, bodies of at most body bytes): downward from the
 * newest, all n newest first; upward from <prefix>0, the n - 1 after it,
 * oldest first. */
static void walk_both(fp_store *st, const char *uid, const char *prefix, size_t n, size_t body)
{
    char first[FP_ID_BUFSZ], got[320][FP_ID_BUFSZ];

    assert_true(n <= 320);
    snprintf(first, sizeof(first), "%s0", prefix);
    assert_int_equal(walk_bounded(st, uid, "", false, 65536, body, got, 320), n);
    check_run(got, n, prefix, (long)n - 1, -1);
    assert_int_equal(walk_bounded(st, uid, first, true, 65536, body, got, 320), n - 1);
    check_run(got, n - 1, prefix, 1, 1);
}

/* The body test_page_bytes_chunks stores for post id (text chars of
 * 'y'), into buf. */
static void chunk_body(const char *id, size_t text, char *buf, size_t len)
{
    int k = snprintf(buf, len, "{\"id\":\"%s\",\"author_id\":\"pca\",\"text\":\"", id);

    assert_true(k > 0 && (size_t)k + text + 3 <= len);
    memset(buf + k, 'y', text);
    memcpy(buf + k + text, "\"}", 3);
}

/* fake_cache's get that knows the bodies of test_page_bytes_chunks's
 * posts of an even number, as stored. */
static long long chunk_get(void *ctx, char (*ids)[FP_ID_BUFSZ], size_t n, char **bodies, bool *gone,
                           uint64_t *epoch)
{
    char buf[600];
    size_t i;

    for (i = 0; i < n; i++) {
        if (strncmp(ids[i], "pc", 2) != 0 || atoi(ids[i] + 2) % 2 != 0)
            continue;
        chunk_body(ids[i], 450, buf, sizeof(buf));
        bodies[i] = strdup(buf);
        assert_non_null(bodies[i]);
    }
    if (n > fake_cache.most)
        fake_cache.most = n;
    return fake_get(ctx, ids, n, bodies, gone, epoch);
}

/*
 * A page under a bound of bytes (page_bytes 64 KiB; 101 posts of 8,000
 * bytes asked for with limit 1000): the newest posts that fit, resume the
 * last of them, and walking on from resume gives every post once, in
 * order, downward and upward (after=). The bodies are read in chunks: the
 * first page takes one chunk of bodies from Redis (64, keyspace_hits),
 * not the 101 asked for (the gateway used to cut the page only once all
 * were read).
 */
static void test_page_bytes(void **state)
{
    env *e = *state;
    fp_store_config cfg = store_config(&e->redis, PREFIX);
    char *text = malloc(8001), id[24];
    fp_store *st = NULL;
    fp_feed_page page;
    long long hits;
    fp_fanout f;
    size_t i;

    assert_non_null(text);
    memset(text, 'z', 8000);
    text[8000] = '\0';
    follow(e->st, "follow.created", "pbr", "pba");
    for (i = 0; i <= 100; i++) {
        snprintf(id, sizeof(id), "pb%zu", i);
        post(e->st, id, "pba", &f);
        fp_fanout_free(&f);
        run(e->rc, "SET %s%s {\"id\":\"%s\",\"author_id\":\"pba\",\"text\":\"%s\"}",
            PREFIX "post:", id, id, text);
    }
    cfg.page_bytes = 65536;
    assert_int_equal(fp_store_open(&st, &cfg), 0);

    hits = keyspace_hits(e->rc);
    assert_int_equal(fp_store_feed_page(st, "pbr", 1000, NULL, &page), 0);
    hits = keyspace_hits(e->rc) - hits;
    printf("# first page: %zu posts, %lld keys read\n", page.n, hits);
    assert_int_equal(page.n, 8);
    assert_string_equal(page.ids[0], "pb100");
    assert_string_equal(page.resume, page.ids[7]);
    assert_true(hits < 80);
    fp_feed_page_free(&page);

    walk_both(st, "pbr", "pb", 101, 8100);
    fp_store_free(st);
    free(text);
}

/* pcr's first page of limit 1000 through a store of cfg with page_bytes
 * bytes: n posts, resume the last of them. */
static void first_page_bounded(fp_store_config *cfg, size_t bytes, size_t n, const char *resume)
{
    fp_store *st = NULL;
    fp_feed_page page;

    cfg->page_bytes = bytes;
    assert_int_equal(fp_store_open(&st, cfg), 0);
    assert_int_equal(fp_store_feed_page(st, "pcr", 1000, NULL, &page), 0);
    assert_int_equal(page.n, n);
    assert_string_equal(page.resume, resume);
    fp_feed_page_free(&page);
    fp_store_free(st);
}

/*
 * The bound of bytes across chunks and the body cache: 300 posts of about
 * 490 bytes, 133 of which fit in 64 KiB, so a page of limit 1000 takes two
 * chunks of bodies (64, then about 70: store__chunk's average); the cache
 * knows every other body, and is asked a chunk at a time. Walking down
 * and up gives every post once, in order, each cut page full to within a
 * body. Then bounds of exactly three bodies, and one byte less, hold three
 * and two posts.
 */
static void test_page_bytes_chunks(void **state)
{
    static const fp_body_cache cache = {
        .ctx = NULL, .get = chunk_get, .put = fake_put, .refused = fake_refused};
    env *e = *state;
    fp_store_config cfg = store_config(&e->redis, PREFIX);
    redisContext *sub = ft_redis_connect(e->redis.port);
    char id[24], buf[600];
    size_t i, three = 0;
    fp_store *st = NULL;
    fp_feed_page page;
    fp_fanout f;

    memset(&fake_cache, 0, sizeof(fake_cache));
    fake_cache.redirect = ft_redis_int(sub, "CLIENT ID");
    run(sub, "SUBSCRIBE __redis__:invalidate");
    follow(e->st, "follow.created", "pcr", "pca");
    for (i = 0; i < 300; i++) {
        snprintf(id, sizeof(id), "pc%zu", i);
        post(e->st, id, "pca", &f);
        fp_fanout_free(&f);
        chunk_body(id, 450, buf, sizeof(buf));
        run(e->rc, "SET %s%s %s", PREFIX "post:", id, buf);
        if (i >= 297)
            three += strlen(buf) + 1;
    }
    cfg.page_bytes = 65536;
    assert_int_equal(fp_store_open(&st, &cfg), 0);
    fp_store_set_body_cache(st, &cache);

    assert_int_equal(fp_store_feed_page(st, "pcr", 1000, NULL, &page), 0);
    printf("# first page: %zu posts, %zu cache gets, at most %zu ids\n", page.n, fake_cache.gets,
           fake_cache.most);
    assert_true(page.n > 64 && page.n < 140);
    assert_int_equal(fake_cache.gets, 2);
    assert_true(fake_cache.puts >= 1);
    fp_feed_page_free(&page);

    walk_both(st, "pcr", "pc", 300, 500);
    assert_true(fake_cache.most <= 128);
    fp_store_free(st);

    /* Exactly three bodies' bytes: three posts; one byte less: two. */
    first_page_bounded(&cfg, three, 3, "pc297");
    first_page_bounded(&cfg, three - 1, 2, "pc298");
    redisFree(sub);
}

/* A first call that failed after its marker (nodes of the wrong type: a
 * script error is not rolled back) is refused again until the key is
 * fixed, and the redelivery that succeeds leaves the post once on the
 * author's and the follower's feeds. */
static void test_redelivery_after_error(void **state)
{
    env *e = *state;
    fp_fanout f;
    fp_event ev;

    follow(e->st, "follow.created", "B", "A");
    run(e->rc, "SET %s oops", PREFIX "nodes");
    event(&ev, "{\"type\":\"post.created\",\"post\":{\"id\":\"pe\",\"author_id\":\"A\","
               "\"text\":\"t\",\"created_at\":1700000000000}}");
    assert_int_equal(fp_store_post_created(e->st, &ev, &f), -EPROTO);
    assert_int_equal(fp_store_post_created(e->st, &ev, &f), -EPROTO);
    fp_event_free(&ev);
    assert_int_equal(ft_redis_int(e->rc, "DEL %s", PREFIX "nodes"), 1);
    post(e->st, "pe", "A", &f);
    assert_true(f.duplicate);
    fp_fanout_free(&f);
    assert_int_equal(list_count(e->rc, PREFIX "feed:A", "pe"), 1);
    assert_int_equal(list_count(e->rc, PREFIX "feed:B", "pe"), 1);
}

/*
 * Realtime targets: n1 (live) has B online, n2 is in nodes without a
 * heartbeat (stale: cleaned up), n3 (live) has a big online set holding
 * the author. Both intersection strategies of lib_route.lua run.
 */
static void test_online_targeting(void **state)
{
    env *e = *state;
    const fp_node_targets *t;
    char uid[16];
    fp_fanout f;
    int i;

    follow(e->st, "follow.created", "B", "A");
    follow(e->st, "follow.created", "C", "A");
    run(e->rc, "SET %s %s EX 30", PREFIX "node:n1", "1");
    run(e->rc, "SET %s %s EX 30", PREFIX "node:n3", "1");
    run(e->rc, "SADD %s n1 n2 n3", PREFIX "nodes");
    run(e->rc, "SADD %s B X", PREFIX "online:n1");
    run(e->rc, "SADD %s C", PREFIX "online:n2");
    run(e->rc, "SADD %s A", PREFIX "online:n3");
    for (i = 0; i < 100; i++) {
        snprintf(uid, sizeof(uid), "other%d", i);
        run(e->rc, "SADD %s %s", PREFIX "online:n3", uid);
    }

    post(e->st, "p4", "A", &f);
    assert_int_equal(f.n_recipients, 3);
    assert_int_equal(f.n_nodes, 2);
    t = find_node(&f, "n1");
    assert_non_null(t);
    assert_int_equal(t->n_users, 1);
    assert_string_equal(t->users[0], "B");
    t = find_node(&f, "n3");
    assert_non_null(t);
    assert_int_equal(t->n_users, 1);
    assert_string_equal(t->users[0], "A");
    assert_null(find_node(&f, "n2"));
    fp_fanout_free(&f);
    assert_null(f.nodes);

    /* n2 was cleaned up: out of nodes, its online set gone. */
    assert_int_equal(ft_redis_int(e->rc, "SISMEMBER %s n2", PREFIX "nodes"), 0);
    assert_int_equal(ft_redis_int(e->rc, "EXISTS %s", PREFIX "online:n2"), 0);
    assert_int_equal(ft_redis_int(e->rc, "SISMEMBER %s n1", PREFIX "nodes"), 1);

    /* A redelivery still computes the targets. */
    post(e->st, "p4", "A", &f);
    assert_true(f.duplicate);
    t = find_node(&f, "n1");
    assert_non_null(t);
    assert_true(has_user(t, "B"));
    fp_fanout_free(&f);
}

/* post.deleted: body gone, feeds no longer return it, online targets. */
static void test_post_deleted(void **state)
{
    env *e = *state;
    const fp_node_targets *t;
    fp_fanout f;
    fp_event ev, del;

    follow(e->st, "follow.created", "B", "A");
    n1_live(e, "B", NULL);
    event(&ev, "{\"type\":\"post.created\",\"post\":{\"id\":\"p5\",\"author_id\":\"A\","
               "\"text\":\"oops\",\"created_at\":5},\"recipients\":[\"B\",\"C\"]}");
    assert_int_equal(fp_store_post_created(e->st, &ev, &f), 0);
    fp_fanout_free(&f);
    post(e->st, "p6", "A", &f);
    fp_fanout_free(&f);
    assert_true(feed_has(e->st, "C", "p5"));

    event(&del, "{\"type\":\"post.deleted\",\"post_id\":\"p5\",\"author_id\":\"A\"}");
    assert_int_equal(fp_store_post_deleted(e->st, &del, &f), 0);
    assert_false(f.duplicate);
    assert_int_equal(f.n_recipients, 2); /* B (follower) and A */
    assert_int_equal(f.n_nodes, 1);
    t = find_node(&f, "n1");
    assert_non_null(t);
    assert_int_equal(t->n_users, 1);
    assert_string_equal(t->users[0], "B");
    fp_fanout_free(&f);

    assert_int_equal(ft_redis_int(e->rc, "EXISTS %s", PREFIX "post:p5"), 0);
    assert_int_equal(list_count(e->rc, PREFIX "feed:B", "p5"), 0);
    assert_int_equal(list_count(e->rc, PREFIX "feed:A", "p5"), 0);
    /* C is no follower: the id is still in the list, the read skips it. */
    assert_int_equal(list_count(e->rc, PREFIX "feed:C", "p5"), 1);
    assert_false(feed_has(e->st, "C", "p5"));
    assert_false(feed_has(e->st, "B", "p5"));
    assert_true(feed_has(e->st, "B", "p6"));

    /* Deleting again: already gone. Days later (their TTLs cut short
     * here), the tombstone, fanout_top:<id> and gone:<id> last as long
     * again, all three. */
    assert_true(ft_redis_int(e->rc, "TTL %s", PREFIX "gone:p5") > 60);
    run(e->rc, "EXPIRE %s 30", PREFIX "gone:p5");
    run(e->rc, "EXPIRE %s 30", PREFIX "fanout:p5");
    assert_int_equal(fp_store_post_deleted(e->st, &del, &f), 0);
    assert_true(f.duplicate);
    fp_fanout_free(&f);
    assert_true(ft_redis_int(e->rc, "TTL %s", PREFIX "fanout:p5") > 60);
    assert_true(ft_redis_int(e->rc, "TTL %s", PREFIX "gone:p5") > 60);

    /* A late redelivery of the create does not bring the post back. */
    assert_int_equal(fp_store_post_created(e->st, &ev, &f), 0);
    assert_true(f.duplicate);
    assert_int_equal(f.n_recipients, 0);
    assert_int_equal(f.n_nodes, 0);
    fp_fanout_free(&f);
    assert_int_equal(ft_redis_int(e->rc, "EXISTS %s", PREFIX "post:p5"), 0);
    assert_int_equal(list_count(e->rc, PREFIX "feed:B", "p5"), 0);
    fp_event_free(&ev);
    fp_event_free(&del);
}

/*
 * A post.deleted naming the post's explicit recipients: their feeds lose
 * the id and the online ones among them are the targets, followers or
 * not; with more recipients than one call takes (300), in slices.
 */
static void test_post_deleted_explicit(void **state)
{
    env *e = *state;
    char body[8192], del_body[8192], uid[16];
    const fp_node_targets *t;
    fp_fanout f;
    fp_event ev, del;
    int i;

    follow(e->st, "follow.created", "B", "A");
    n1_live(e, "B", "C", "D", NULL);
    event(&ev, "{\"type\":\"post.created\",\"post\":{\"id\":\"p8\",\"author_id\":\"A\","
               "\"text\":\"for C and D\",\"created_at\":8},\"recipients\":[\"C\",\"D\"]}");
    assert_int_equal(fp_store_post_created(e->st, &ev, &f), 0);
    fp_fanout_free(&f);
    fp_event_free(&ev);
    assert_true(feed_has(e->st, "D", "p8"));

    event(&del, "{\"type\":\"post.deleted\",\"post_id\":\"p8\",\"author_id\":\"A\","
                "\"recipients\":[\"D\",\"C\",\"D\"]}");
    assert_int_equal(fp_store_post_deleted(e->st, &del, &f), 0);
    assert_false(f.duplicate);
    assert_int_equal(f.n_recipients, 3); /* C, D and A */
    t = find_node(&f, "n1");
    assert_non_null(t);
    assert_int_equal(t->n_users, 2); /* not B: a follower, no recipient */
    assert_true(has_user(t, "C") && has_user(t, "D"));
    assert_false(f.pending);
    fp_fanout_free(&f);
    fp_event_free(&del);
    assert_int_equal(list_count(e->rc, PREFIX "feed:C", "p8"), 0);
    assert_int_equal(list_count(e->rc, PREFIX "feed:D", "p8"), 0);
    assert_int_equal(list_count(e->rc, PREFIX "feed:A", "p8"), 0);

    /* 300 recipients: the first call routes, the slices unpush. */
    with_recipients(body, sizeof(body),
                    "{\"type\":\"post.created\",\"post\":{\"id\":\"pz\",\"author_id\":"
                    "\"A\",\"text\":\"many\",\"created_at\":1},\"recipients\":[",
                    'z', 300);
    with_recipients(del_body, sizeof(del_body),
                    "{\"type\":\"post.deleted\",\"post_id\":\"pz\",\"author_id\":"
                    "\"A\",\"recipients\":[",
                    'z', 300);
    run(e->rc, "SADD %s z000 z150 z299", PREFIX "online:n1");
    event(&ev, "%s", body);
    assert_int_equal(fp_store_post_created(e->st, &ev, &f), 0);
    assert_int_equal(fp_store_post_finish(e->st, &ev, &f), 0);
    fp_fanout_free(&f);
    fp_event_free(&ev);
    assert_int_equal(list_count(e->rc, PREFIX "feed:z150", "pz"), 1);

    event(&del, "%s", del_body);
    assert_int_equal(fp_store_post_deleted(e->st, &del, &f), 0);
    assert_true(f.pending);
    assert_int_equal(f.n_recipients, 301);
    t = find_node(&f, "n1");
    assert_non_null(t);
    assert_int_equal(t->n_users, 3);
    assert_true(has_user(t, "z000") && has_user(t, "z150") && has_user(t, "z299"));
    assert_int_equal(fp_store_post_finish(e->st, &del, &f), 0);
    fp_fanout_free(&f);
    fp_event_free(&del);
    for (i = 0; i < 300; i += 23) {
        snprintf(uid, sizeof(uid), PREFIX "feed:z%03d", i);
        assert_int_equal(list_count(e->rc, uid, "pz"), 0);
    }
    assert_int_equal(list_count(e->rc, PREFIX "feed:z299", "pz"), 0);
}

/* ----------------------------------------------------------- follows */

static void test_follow_unfollow(void **state)
{
    env *e = *state;
    fp_event ev;

    follow(e->st, "follow.created", "B", "A");
    follow(e->st, "follow.created", "C", "A");
    follow(e->st, "follow.created", "B", "A"); /* idempotent */
    assert_int_equal(ft_redis_int(e->rc, "SCARD %s", PREFIX "followers:A"), 2);
    assert_int_equal(ft_redis_int(e->rc, "SISMEMBER %s B", PREFIX "followers:A"), 1);
    assert_int_equal(ft_redis_int(e->rc, "SISMEMBER %s A", PREFIX "following:B"), 1);
    follow(e->st, "follow.deleted", "B", "A");
    assert_int_equal(ft_redis_int(e->rc, "SISMEMBER %s B", PREFIX "followers:A"), 0);
    assert_int_equal(ft_redis_int(e->rc, "EXISTS %s", PREFIX "following:B"), 0);
    assert_int_equal(ft_redis_int(e->rc, "SISMEMBER %s C", PREFIX "followers:A"), 1);

    /* Following oneself, or the wrong event type, is refused. */
    event(&ev, "{\"type\":\"follow.created\",\"follower_id\":\"A\",\"followee_id\":\"A\"}");
    assert_int_equal(fp_store_follow(e->st, &ev), -EINVAL);
    assert_non_null(strstr(fp_store_errstr(e->st), "themselves"));
    fp_event_free(&ev);
    event(&ev, "{\"type\":\"post.deleted\",\"post_id\":\"p\",\"author_id\":\"A\"}");
    assert_int_equal(fp_store_follow(e->st, &ev), -EINVAL);
    fp_event_free(&ev);
    assert_int_equal(ft_redis_int(e->rc, "EXISTS %s", PREFIX "followers:A"), 1);

    /* A key of the wrong type: Redis' error comes back as -EPROTO, and the
     * connection stays usable. */
    run(e->rc, "SET %s x", PREFIX "followers:Z");
    event(&ev, "{\"type\":\"follow.created\",\"follower_id\":\"Y\",\"followee_id\":\"Z\"}");
    assert_int_equal(fp_store_follow(e->st, &ev), -EPROTO);
    assert_non_null(strstr(fp_store_errstr(e->st), "WRONGTYPE"));
    fp_event_free(&ev);
    follow(e->st, "follow.created", "Y", "A");
}

/* ------------------------------------------------------------ ribbon */

static char *ribbon_push(fp_store *st, const char *uid, long long at)
{
    char *json = NULL;
    fp_event ev;
    int rc;

    event(&ev,
          "{\"type\":\"ribbon.pushed\",\"entry\":{\"user_id\":\"%s\",\"name\":\"User %s\","
          "\"text\":\"hi \\\"there\\\"\",\"at\":%lld}}",
          uid, uid, at);
    rc = fp_store_ribbon_push(st, &ev, &json);
    if (rc != 0)
        fail_msg("ribbon_push: %d (%s)", rc, fp_store_errstr(st));
    fp_event_free(&ev);
    assert_non_null(json);
    return json;
}

/* Checks the ribbon JSON: at most max entries, each user once, "at"
 * strictly decreasing; returns the number of entries, first user in first. */
static size_t ribbon_check(const char *json, size_t max, char *first)
{
    cJSON *root = cJSON_Parse(json), *entries, *en;
    double prev_at = 1e300;
    size_t n, i, j;

    assert_non_null(root);
    assert_string_equal(cJSON_GetObjectItem(root, "type")->valuestring, "ribbon");
    entries = cJSON_GetObjectItem(root, "entries");
    assert_true(cJSON_IsArray(entries));
    n = (size_t)cJSON_GetArraySize(entries);
    assert_true(n <= max);
    for (i = 0; i < n; i++) {
        en = cJSON_GetArrayItem(entries, (int)i);
        assert_true(cJSON_GetObjectItem(en, "at")->valuedouble < prev_at);
        prev_at = cJSON_GetObjectItem(en, "at")->valuedouble;
        assert_string_equal(cJSON_GetObjectItem(en, "text")->valuestring, "hi \"there\"");
        for (j = 0; j < i; j++) {
            assert_string_not_equal(
                cJSON_GetObjectItem(cJSON_GetArrayItem(entries, (int)j), "user_id")->valuestring,
                cJSON_GetObjectItem(en, "user_id")->valuestring);
        }
    }
    if (n > 0)
        snprintf(first, FP_ID_BUFSZ, "%s",
                 cJSON_GetObjectItem(cJSON_GetArrayItem(entries, 0), "user_id")->valuestring);
    cJSON_Delete(root);
    return n;
}

/* The ribbon JSON's "version" (-1 when it has none). */
static long long ribbon_version(const char *json)
{
    cJSON *root = cJSON_Parse(json), *v = cJSON_GetObjectItem(root, "version");
    long long version = cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;

    cJSON_Delete(root);
    return version;
}

/* Redis's clock, in milliseconds. */
static long long redis_ms(redisContext *rc)
{
    redisReply *r = ft_redis_cmd(rc, "TIME");
    long long ms;

    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    ms =
        strtoll(r->element[0]->str, NULL, 10) * 1000 + strtoll(r->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(r);
    return ms;
}

/* 60 pushes of 40 users (some repeated); then 60 distinct users (the cap).
 * Every push that changes the ribbon raises its version, at least to
 * Redis's clock in ms: also after the counter was lost. */
static void test_ribbon(void **state)
{
    env *e = *state;
    char uid[16], first[FP_ID_BUFSZ], *json, *got;
    long long version = 0, now;
    size_t i, n = 0;

    for (i = 0; i < 60; i++) {
        /* u00..u39 once each, then 20 repeats: u00, u07, u14, ... */
        snprintf(uid, sizeof(uid), "u%02zu", i < 40 ? i : i * 7 % 40);
        now = redis_ms(e->rc);
        json = ribbon_push(e->st, uid, 1000 + (long long)i);
        n = ribbon_check(json, 50, first);
        assert_string_equal(first, uid); /* the pushed (or repeated) user is in front */
        assert_true(ribbon_version(json) > version && ribbon_version(json) >= now);
        version = ribbon_version(json);
        free(json);
    }
    assert_int_equal(n, 40);
    assert_int_equal(ft_redis_int(e->rc, "LLEN %s", PREFIX "ribbon"), 40);

    /* An older entry of a user already on the ribbon is ignored: the
     * ribbon and its version stay. */
    json = ribbon_push(e->st, "u05", 10);
    assert_int_equal(ribbon_check(json, 50, first), 40);
    assert_string_not_equal(first, "u05");
    assert_int_equal(ribbon_version(json), version);
    free(json);

    /* An ignored push that drops an entry which is not a JSON object
     * changed the list: its version rises. */
    ft_redis_int(e->rc, "LPUSH %s %s", PREFIX "ribbon", "junk");
    json = ribbon_push(e->st, "u05", 11);
    assert_int_equal(ribbon_check(json, 50, first), 40);
    assert_string_not_equal(first, "u05");
    assert_true(ribbon_version(json) > version);
    version = ribbon_version(json);
    free(json);
    assert_int_equal(ft_redis_int(e->rc, "LLEN %s", PREFIX "ribbon"), 40);

    /* The counter lost (a failover, a restore): the next version is still
     * at least the clock, past what was published before it; an ignored
     * push too (not version 0, which every ribbon would replace). */
    ft_redis_int(e->rc, "DEL %s", PREFIX "ribbon_version");
    now = redis_ms(e->rc);
    json = ribbon_push(e->st, "u05", 12);
    assert_int_equal(ribbon_check(json, 50, first), 40);
    assert_string_not_equal(first, "u05");
    assert_true(ribbon_version(json) >= now);
    free(json);
    ft_redis_int(e->rc, "DEL %s", PREFIX "ribbon_version");
    now = redis_ms(e->rc);
    json = ribbon_push(e->st, "u06", 3000);
    assert_true(ribbon_version(json) >= now);
    version = ribbon_version(json);
    free(json);

    /* A redelivered push (the same "at") does not move its entry above
     * a later one; a late push of another user goes in at its place by
     * "at", not in front (ribbon_check: newest first). */
    json = ribbon_push(e->st, "u07", 3001);
    version = ribbon_version(json);
    free(json);
    json = ribbon_push(e->st, "u06", 3000);
    assert_int_equal(ribbon_check(json, 50, first), 40);
    assert_string_equal(first, "u07");
    assert_int_equal(ribbon_version(json), version);
    free(json);
    json = ribbon_push(e->st, "w01", 2000);
    assert_int_equal(ribbon_check(json, 50, first), 41);
    assert_string_equal(first, "u07");
    assert_true(ribbon_version(json) > version);
    version = ribbon_version(json);
    free(json);

    /* 60 distinct new users: capped at 50, the newest first. */
    for (i = 0; i < 60; i++) {
        snprintf(uid, sizeof(uid), "v%02zu", i);
        json = ribbon_push(e->st, uid, 5000 + (long long)i);
        free(json);
    }
    assert_int_equal(fp_store_ribbon_get(e->st, &got), 0);
    assert_int_equal(ribbon_check(got, 50, first), 50);
    assert_string_equal(first, "v59");
    assert_true(ribbon_version(got) > version);
    free(got);
    assert_int_equal(ft_redis_int(e->rc, "LLEN %s", PREFIX "ribbon"), 50);

    /* Older than every entry of a full ribbon: not kept. */
    json = ribbon_push(e->st, "w02", 100);
    assert_int_equal(ribbon_check(json, 50, first), 50);
    assert_string_equal(first, "v59");
    free(json);
    assert_int_equal(ft_redis_int(e->rc, "LLEN %s", PREFIX "ribbon"), 50);
}

/* -------------------------------------------------------- revocation */

static void revoke(fp_store *st, const char *uid, long long before)
{
    fp_event ev;

    event(&ev, "{\"type\":\"user.revoked\",\"user_id\":\"%s\",\"before\":%lld}", uid, before);
    assert_int_equal(fp_store_user_revoked(st, &ev), 0);
    fp_event_free(&ev);
}

static void check_message(redisContext *sub, const char *text)
{
    redisReply *r = NULL;

    assert_int_equal(redisGetReply(sub, (void **)&r), REDIS_OK);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[0]->str, "message");
    assert_string_equal(r->element[1]->str, PREFIX "revoked");
    assert_string_equal(r->element[2]->str, text);
    freeReplyObject(r);
}

static void check_value(redisContext *c, const char *key, const char *value)
{
    redisReply *r = ft_redis_cmd(c, "GET %s", key);

    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, value);
    freeReplyObject(r);
}

static void test_revocation(void **state)
{
    env *e = *state;
    redisContext *sub = ft_redis_connect(e->redis.port);

    run(sub, "SUBSCRIBE %s", PREFIX "revoked");
    revoke(e->st, "u1", 2000);
    check_message(sub, "u1 2000");
    check_value(e->rc, PREFIX "revoked:u1", "2000");

    /* Never lowered; the message repeats the cut-off in effect. */
    revoke(e->st, "u1", 1000);
    check_message(sub, "u1 2000");
    check_value(e->rc, PREFIX "revoked:u1", "2000");

    revoke(e->st, "u1", 3000);
    check_message(sub, "u1 3000");
    check_value(e->rc, PREFIX "revoked:u1", "3000");

    /* 2^53 stays exact (no Lua number formatting). */
    revoke(e->st, "u2", 9007199254740992LL);
    check_message(sub, "u2 9007199254740992");
    check_value(e->rc, PREFIX "revoked:u2", "9007199254740992");
    assert_int_equal(ft_redis_int(e->rc, "TTL %s", PREFIX "revoked:u1"), -1); /* for ever */
    redisFree(sub);
}

/* revocation_ttl: the key expires ttl after the cut-off in effect, the
 * expiry follows a raise, a key kept for ever gets one at its next event,
 * and a cut-off already older than the ttl is announced but not kept. A
 * value set by hand that is not a decimal cut-off is replaced.
 * Back on a store without it, the next event removes the expiry. */
static void test_revocation_ttl(void **state)
{
    env *e = *state;
    fp_store_config cfg = store_config(&e->redis, PREFIX);
    long long now = (long long)time(NULL);
    redisContext *sub = ft_redis_connect(e->redis.port);
    fp_store *st = NULL;
    char text[64];

    cfg.revocation_ttl_s = 3600;
    assert_int_equal(fp_store_open(&st, &cfg), 0);
    run(sub, "SUBSCRIBE %s", PREFIX "revoked");

    revoke(st, "t1", now);
    snprintf(text, sizeof(text), "t1 %lld", now);
    check_message(sub, text);
    assert_int_equal(ft_redis_int(e->rc, "EXPIRETIME %s", PREFIX "revoked:t1"), now + 3600);
    revoke(st, "t1", now + 60);
    snprintf(text, sizeof(text), "t1 %lld", now + 60);
    check_message(sub, text);
    assert_int_equal(ft_redis_int(e->rc, "EXPIRETIME %s", PREFIX "revoked:t1"), now + 3660);
    revoke(st, "t1", now); /* not lowered, nor its expiry */
    check_message(sub, text);
    assert_int_equal(ft_redis_int(e->rc, "EXPIRETIME %s", PREFIX "revoked:t1"), now + 3660);

    run(e->rc, "SET %s %lld", PREFIX "revoked:t2", now);
    assert_int_equal(ft_redis_int(e->rc, "EXPIRETIME %s", PREFIX "revoked:t2"), -1);
    revoke(st, "t2", now - 10);
    snprintf(text, sizeof(text), "t2 %lld", now);
    check_message(sub, text);
    assert_int_equal(ft_redis_int(e->rc, "EXPIRETIME %s", PREFIX "revoked:t2"), now + 3600);

    revoke(st, "t3", now - 3600);
    snprintf(text, sizeof(text), "t3 %lld", now - 3600);
    check_message(sub, text);
    assert_int_equal(ft_redis_int(e->rc, "EXISTS %s", PREFIX "revoked:t3"), 0);

    /* Values set by hand that the readers refuse count as absent: the
     * next event replaces them. */
    run(e->rc, "SET %s 1e300", PREFIX "revoked:t4");
    revoke(st, "t4", now);
    snprintf(text, sizeof(text), "t4 %lld", now);
    check_message(sub, text);
    check_value(e->rc, PREFIX "revoked:t4", text + 3);
    assert_int_equal(ft_redis_int(e->rc, "EXPIRETIME %s", PREFIX "revoked:t4"), now + 3600);
    run(e->rc, "SET %s nan", PREFIX "revoked:t4");
    revoke(st, "t4", now);
    check_message(sub, text);
    check_value(e->rc, PREFIX "revoked:t4", text + 3);

    /* A value the readers take, however it is written, is never lowered. */
    run(e->rc, "SET %s 00000000004000000000", PREFIX "revoked:t6");
    revoke(st, "t6", now);
    check_message(sub, "t6 00000000004000000000");
    check_value(e->rc, PREFIX "revoked:t6", "00000000004000000000");

    /* A cut-off no expiry time can follow, set by hand, stays for ever. */
    run(e->rc, "SET %s 999999999999999999", PREFIX "revoked:t5");
    revoke(st, "t5", now);
    check_message(sub, "t5 999999999999999999");
    assert_int_equal(ft_redis_int(e->rc, "EXPIRETIME %s", PREFIX "revoked:t5"), -1);

    /* Without a ttl (any more), the next event keeps the key for ever. */
    revoke(e->st, "t1", now);
    snprintf(text, sizeof(text), "t1 %lld", now + 60);
    check_message(sub, text);
    assert_int_equal(ft_redis_int(e->rc, "EXPIRETIME %s", PREFIX "revoked:t1"), -1);
    fp_store_free(st);
    redisFree(sub);
}

/* ------------------------------------------------------------ faults */

/* SCRIPT FLUSH: the next calls re-load the scripts and work. */
static void test_noscript_recovery(void **state)
{
    env *e = *state;
    redisReply *r;
    char uid[16];
    fp_fanout f;
    fp_event ev;
    char *json;
    int i;

    follow(e->st, "follow.created", "B", "A");
    post(e->st, "p7", "A", &f);
    fp_fanout_free(&f);
    run(e->rc, "SCRIPT FLUSH");
    post(e->st, "p8", "A", &f);
    assert_false(f.duplicate);
    fp_fanout_free(&f);
    assert_true(feed_has(e->st, "B", "p8"));
    run(e->rc, "SCRIPT FLUSH");
    json = ribbon_push(e->st, "u1", 1);
    free(json);
    run(e->rc, "SCRIPT FLUSH");
    revoke(e->st, "u1", 5);

    /* Scripts lost between a big post's routing and its feed writes: the
     * pipelined writes reload them and send the batch again. */
    for (i = 0; i < 250; i++)
        run(e->rc, "SADD %s f%03d", PREFIX "followers:C", i);
    event(&ev, "{\"type\":\"post.created\",\"post\":{\"id\":\"p9\",\"author_id\":\"C\","
               "\"text\":\"big\",\"created_at\":1}}");
    assert_int_equal(fp_store_post_created(e->st, &ev, &f), 0);
    assert_true(f.pending);
    run(e->rc, "SCRIPT FLUSH");
    assert_int_equal(fp_store_post_finish(e->st, &ev, &f), 0);
    fp_event_free(&ev);
    fp_fanout_free(&f);
    for (i = 0; i < 250; i++) {
        snprintf(uid, sizeof(uid), "f%03d", i);
        assert_true(feed_has(e->st, uid, "p9"));
    }
    r = ft_redis_cmd(e->rc, "GET %s", PREFIX "fanout:p9");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_true(r->len > 4 && strcmp(r->str + r->len - 4, " p d") == 0);
    freeReplyObject(r);
}

/* Redis restarts: -EIO, then fp_store_reconnect() and calls work again. */
static void test_restart(void **state)
{
    env *e = *state;
    fp_fanout f;
    fp_event ev;
    char *json = NULL;

    follow(e->st, "follow.created", "B", "A");
    assert_int_equal(ft_server_restart(&e->redis), 0);
    event(&ev, "{\"type\":\"post.created\",\"post\":{\"id\":\"p9\",\"author_id\":\"A\","
               "\"text\":\"after restart\",\"created_at\":9}}");
    assert_int_equal(fp_store_post_created(e->st, &ev, &f), -EIO);
    assert_int_not_equal(fp_store_err(e->st), 0);
    assert_true(fp_store_errstr(e->st)[0] != '\0');
    printf("# after restart: %s\n", fp_store_errstr(e->st));
    /* Still broken until reconnected. */
    assert_int_equal(fp_store_ribbon_get(e->st, &json), -EIO);

    assert_int_equal(fp_store_reconnect(e->st), 0);
    assert_int_equal(fp_store_err(e->st), 0);
    assert_int_equal(fp_store_post_created(e->st, &ev, &f), 0);
    assert_false(f.duplicate);
    assert_int_equal(f.n_recipients, 1); /* the test server keeps no data */
    fp_fanout_free(&f);
    fp_event_free(&ev);
    assert_true(feed_has(e->st, "A", "p9"));

    /* Redis gone for good: reconnect fails with -EIO and a reason. */
    assert_int_equal(ft_server_stop(&e->redis), 0);
    assert_int_equal(fp_store_reconnect(e->st), -EIO);
    assert_true(fp_store_errstr(e->st)[0] != '\0');
    assert_int_equal(fp_store_ribbon_get(e->st, &json), -EIO);
    assert_null(json);
}

/* The server becomes a replica (as an old primary does after a
 * failover): a write gets READONLY, which is -EIO (reconnect), not a
 * refusal that would dead-letter the event; the next call drops the
 * connection until fp_store_reconnect(). With redis_min_replicas and no
 * replica, fp_store_sync() says -EAGAIN and how many acknowledged. */
static void test_readonly_and_sync(void **state)
{
    env *e = *state;
    fp_store_config cfg = store_config(&e->redis, PREFIX);
    fp_store *st = NULL;
    fp_fanout f;
    fp_event ev;

    cfg.min_replicas = 1;
    cfg.wait_timeout_ms = 100;

    /* A replica of nothing that listens: READONLY for writes. */
    run(e->rc, "REPLICAOF 127.0.0.1 1");
    event(&ev, "{\"type\":\"post.created\",\"post\":{\"id\":\"ro1\",\"author_id\":\"A\","
               "\"text\":\"to a replica\",\"created_at\":1}}");
    assert_int_equal(fp_store_post_created(e->st, &ev, &f), -EIO);
    assert_non_null(strstr(fp_store_errstr(e->st), "READONLY"));
    assert_int_equal(fp_store_ribbon_get(e->st, &(char *){NULL}), -EIO); /* dropped */
    run(e->rc, "REPLICAOF NO ONE");
    assert_int_equal(fp_store_reconnect(e->st), 0);
    assert_int_equal(fp_store_post_created(e->st, &ev, &f), 0);
    fp_fanout_free(&f);
    assert_int_equal(fp_store_sync(e->st), 0); /* min_replicas 0: nothing to wait for */

    assert_int_equal(fp_store_open(&st, &cfg), 0);
    assert_int_equal(fp_store_post_created(st, &ev, &f), 0);
    fp_fanout_free(&f);
    assert_int_equal(fp_store_sync(st), -EAGAIN);
    assert_non_null(strstr(fp_store_errstr(st), "0 of 1 replica(s)"));
    assert_int_equal(ft_redis_int(e->rc, "STRLEN %s", PREFIX "sync"), 1); /* "1": one probe */
    fp_store_free(st);
    fp_event_free(&ev);
}

/*
 * A replica cut off from its primary with replica-serve-stale-data off
 * answers MASTERDOWN, to PING too, but serves SCRIPT LOAD: a reconnect
 * and a first open then succeed, calls say -EBUSY (a passing state, not
 * a refusal or a lost link), and the same connection serves once Redis
 * does.
 */
static void test_masterdown(void **state)
{
    env *e = *state;
    fp_store_config cfg = store_config(&e->redis, PREFIX);
    fp_store *st = NULL;
    char *json = NULL;

    run(e->rc, "CONFIG SET replica-serve-stale-data no");
    run(e->rc, "REPLICAOF 127.0.0.1 1");
    assert_int_equal(fp_store_reconnect(e->st), 0);
    assert_int_equal(fp_store_err(e->st), 0);
    assert_int_equal(fp_store_open(&st, &cfg), 0);
    assert_int_equal(fp_store_ribbon_get(st, &json), -EBUSY);
    assert_null(json);
    assert_non_null(strstr(fp_store_errstr(st), "MASTERDOWN"));
    assert_int_equal(fp_store_ping(e->st), -EBUSY);
    run(e->rc, "REPLICAOF NO ONE");
    assert_int_equal(fp_store_ribbon_get(st, &json), 0);
    assert_non_null(strstr(json, "\"type\":\"ribbon\""));
    free(json);
    assert_int_equal(fp_store_ping(e->st), 0);
    fp_store_free(st);
}

/* A follow event of type, stamped at (0: no "at"). */
static void follow_at(fp_store *st, const char *type, const char *follower, const char *followee,
                      long long at)
{
    fp_event ev;

    if (at == 0)
        event(&ev, "{\"type\":\"%s\",\"follower_id\":\"%s\",\"followee_id\":\"%s\"}", type,
              follower, followee);
    else
        event(&ev, "{\"type\":\"%s\",\"follower_id\":\"%s\",\"followee_id\":\"%s\",\"at\":%lld}",
              type, follower, followee, at);
    assert_int_equal(fp_store_follow(st, &ev), 0);
    fp_event_free(&ev);
}

/* Whether follower is in followee's followers and followee in follower's
 * following, checked to agree. */
static bool follows(redisContext *c, const char *follower, const char *followee)
{
    long long a = ft_redis_int(c, "SISMEMBER " PREFIX "followers:%s %s", followee, follower);
    long long b = ft_redis_int(c, "SISMEMBER " PREFIX "following:%s %s", follower, followee);

    assert_int_equal(a, b);
    return a == 1;
}

/* The applied stamp of a pair's hash (key), -1 without one. */
static long long applied_stamp(redisContext *c, const char *key)
{
    redisReply *r = ft_redis_cmd(c, "HGET %s applied", key);
    long long v = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;

    freeReplyObject(r);
    return v;
}

/*
 * A pair's follow and unfollow applied in their stamps' order: one
 * delivered again after a later change of the pair (a bridge killed
 * with its ack held) is left out, and so is the same event twice;
 * stamps come from fp_store_follow_stamp, which only grow per pair
 * (Redis's clock, or one more than the last); an event without a stamp
 * is applied as it comes; each pair has its own order.
 */
static void test_follow_order(void **state)
{
    env *e = *state;
    int64_t s1 = 0, s2 = 0, s3 = 0, s4 = 0;
    long long ttl;

    assert_int_equal(fp_store_follow_stamp(e->st, "F", "A", &s1), 0);
    assert_int_equal(fp_store_follow_stamp(e->st, "F", "A", &s2), 0);
    assert_true(s1 > 1700000000000LL); /* Redis's clock in ms */
    assert_true(s2 > s1);
    /* The clock behind the last stamp (a primary whose clock is late):
     * one more than it. */
    run(e->rc, "HSET %s issued %lld", PREFIX "follow:F:A", (long long)s2 + 3600000);
    assert_int_equal(fp_store_follow_stamp(e->st, "F", "A", &s3), 0);
    assert_int_equal(s3, s2 + 3600001);
    /* Above the applied stamp too (one a backend's clock put on an
     * event), or the gateway's changes would all be left out. */
    run(e->rc, "HSET %s applied %lld", PREFIX "follow:F:B", (long long)s3 + 5000);
    assert_int_equal(fp_store_follow_stamp(e->st, "F", "B", &s4), 0);
    assert_int_equal(s4, s3 + 5001);
    run(e->rc, "DEL %s", PREFIX "follow:F:B");
    ttl = ft_redis_int(e->rc, "TTL %s", PREFIX "follow:F:A");
    assert_true(ttl > 0 && ttl <= FP_STORE_MARKER_TTL_S);

    /* Unfollow (s2) applied, then the follow before it (s1) again. */
    follow_at(e->st, "follow.created", "F", "A", s1);
    assert_true(follows(e->rc, "F", "A"));
    follow_at(e->st, "follow.deleted", "F", "A", s2);
    assert_false(follows(e->rc, "F", "A"));
    follow_at(e->st, "follow.created", "F", "A", s1);
    assert_false(follows(e->rc, "F", "A"));
    /* The reverse: a follow (s3) applied, then the unfollow before it. */
    follow_at(e->st, "follow.created", "F", "A", s3);
    assert_true(follows(e->rc, "F", "A"));
    follow_at(e->st, "follow.deleted", "F", "A", s2);
    assert_true(follows(e->rc, "F", "A"));
    follow_at(e->st, "follow.deleted", "F", "A", s3); /* the same stamp: the same event */
    assert_true(follows(e->rc, "F", "A"));
    assert_int_equal(applied_stamp(e->rc, PREFIX "follow:F:A"), s3);
    ttl = ft_redis_int(e->rc, "TTL %s", PREFIX "follow:F:A");
    assert_true(ttl > 0 && ttl <= FP_STORE_MARKER_TTL_S);

    /* Without a stamp: applied as it comes, the pair's stamp kept. */
    follow_at(e->st, "follow.deleted", "F", "A", 0);
    assert_false(follows(e->rc, "F", "A"));
    assert_int_equal(applied_stamp(e->rc, PREFIX "follow:F:A"), s3);
    /* Another pair, another order: the same low stamp applies there. */
    follow_at(e->st, "follow.created", "G", "A", s1);
    assert_true(follows(e->rc, "G", "A"));
    follow_at(e->st, "follow.created", "F", "B", 1);
    assert_true(follows(e->rc, "F", "B"));

    /* Bad ids are refused before Redis. */
    assert_int_equal(fp_store_follow_stamp(e->st, "F", "a/b", &s1), -EINVAL);
    assert_int_equal(s1, 0);
}

/* Bad configurations and arguments. */
static void test_bad_arguments(void **state)
{
    env *e = *state;
    fp_store_config cfg = {.port = e->redis.port, .feed_length = -1};
    char(*ids)[FP_ID_BUFSZ] = NULL;
    fp_store *st = NULL;
    fp_fanout f;
    fp_event ev;
    size_t n;

    assert_int_equal(fp_store_open(&st, &cfg), -EINVAL);
    assert_non_null(st);
    assert_non_null(strstr(fp_store_errstr(st), "feed_length"));
    assert_int_equal(fp_store_reconnect(st), -EINVAL);
    fp_store_free(st);
    assert_int_equal(fp_store_open(&st, NULL), -EINVAL);
    assert_null(st);

    /* Nothing listens on port 1: -EIO, the store is kept for the reason. */
    cfg.port = 1;
    cfg.feed_length = 0;
    cfg.timeout_ms = 500;
    assert_int_equal(fp_store_open(&st, &cfg), -EIO);
    assert_non_null(st);
    printf("# no server: %s\n", fp_store_errstr(st));
    assert_true(fp_store_errstr(st)[0] != '\0');
    assert_int_equal(fp_store_ribbon_get(st, &(char *){NULL}), -EIO);
    fp_store_free(st);

    assert_int_equal(fp_store_feed_ids(e->st, "not valid!", 10, &ids, &n), -EINVAL);
    event(&ev, "{\"type\":\"post.deleted\",\"post_id\":\"p\",\"author_id\":\"A\"}");
    assert_int_equal(fp_store_post_created(e->st, &ev, &f), -EINVAL);
    assert_int_equal(f.n_nodes, 0);
    assert_int_equal(fp_store_user_revoked(e->st, &ev), -EINVAL);
    assert_int_equal(fp_store_ribbon_push(e->st, &ev, &(char *){NULL}), -EINVAL);
    fp_event_free(&ev);
    /* A hand-built event that breaks the rules. */
    memset(&ev, 0, sizeof(ev));
    ev.type = FP_EVENT_POST_DELETED;
    snprintf(ev.post_id, sizeof(ev.post_id), "a/b");
    snprintf(ev.author_id, sizeof(ev.author_id), "A");
    assert_int_equal(fp_store_post_deleted(e->st, &ev, &f), -EINVAL);
    assert_non_null(strstr(fp_store_errstr(e->st), "post_id"));
}

/* ------------------------------------------------------------- scale */

/* A post of an author with 10,000 followers is one call; print its time. */
static void test_big_fanout(void **state)
{
    env *e = *state;
    const char *argv[1002];
    char uids[1000][16];
    const fp_node_targets *t;
    redisReply *r;
    double t0, dt;
    fp_fanout f;
    fp_event del, ev;
    size_t i, k;

    /* followers:big = f00000..f09999 (pipelined, 1,000 per SADD); half of
     * them (the even ones) online on live node n1. */
    for (i = 0; i < 10000; i += 1000) {
        argv[0] = "SADD";
        argv[1] = PREFIX "followers:big";
        for (k = 0; k < 1000; k++) {
            snprintf(uids[k], sizeof(uids[k]), "f%05zu", i + k);
            argv[k + 2] = uids[k];
        }
        r = redisCommandArgv(e->rc, 1002, argv, NULL);
        assert_non_null(r);
        freeReplyObject(r);
        argv[1] = PREFIX "online:n1";
        for (k = 0; k < 500; k++)
            argv[k + 2] = uids[2 * k];
        r = redisCommandArgv(e->rc, 502, argv, NULL);
        assert_non_null(r);
        freeReplyObject(r);
    }
    run(e->rc, "SET %s %s EX 30", PREFIX "node:n1", "1");
    run(e->rc, "SADD %s n1", PREFIX "nodes");

    t0 = now_s();
    post(e->st, "big1", "big", &f);
    dt = now_s() - t0;
    printf("# 10,000-follower fan-out: %.1f ms (in slices)\n", dt * 1000.0);
    assert_true(dt < 2.0);
    assert_int_equal(f.n_recipients, 10001);
    t = find_node(&f, "n1");
    assert_non_null(t);
    assert_int_equal(t->n_users, 5000);
    assert_true(has_user(t, "f09998"));
    assert_false(has_user(t, "f09999"));
    fp_fanout_free(&f);
    assert_true(feed_has(e->st, "f00000", "big1"));
    assert_true(feed_has(e->st, "f09999", "big1"));
    assert_true(feed_has(e->st, "big", "big1"));

    /* The targets come before the feed writes, which the caller asks for
     * once the live deliveries are out. */
    event(&ev, "{\"type\":\"post.created\",\"post\":{\"id\":\"big2\",\"author_id\":"
               "\"big\",\"text\":\"again\",\"created_at\":2}}");
    assert_int_equal(fp_store_post_created(e->st, &ev, &f), 0);
    assert_true(f.pending);
    assert_non_null(find_node(&f, "n1"));
    assert_int_equal(find_node(&f, "n1")->n_users, 5000);
    assert_false(feed_has(e->st, "f00000", "big2"));
    assert_true(feed_has(e->st, "big", "big2"));
    assert_int_equal(fp_store_post_finish(e->st, &ev, &f), 0);
    fp_event_free(&ev);
    fp_fanout_free(&f);
    assert_true(feed_has(e->st, "f00000", "big2"));
    assert_true(feed_has(e->st, "f09999", "big2"));

    t0 = now_s();
    post(e->st, "big1", "big", &f);
    dt = now_s() - t0;
    printf("# redelivery of it: %.1f ms\n", dt * 1000.0);
    assert_true(f.duplicate);
    fp_fanout_free(&f);
    assert_int_equal(ft_redis_int(e->rc, "ZCARD %s", PREFIX "feed:f04242"), 2); /* big1, big2 */

    event(&del, "{\"type\":\"post.deleted\",\"post_id\":\"big1\",\"author_id\":\"big\"}");
    t0 = now_s();
    assert_int_equal(fp_store_post_deleted(e->st, &del, &f), 0);
    assert_int_equal(fp_store_post_finish(e->st, &del, &f), 0);
    dt = now_s() - t0;
    printf("# its delete: %.1f ms\n", dt * 1000.0);
    assert_true(dt < 2.0);
    t = find_node(&f, "n1");
    assert_non_null(t);
    assert_int_equal(t->n_users, 5000);
    fp_fanout_free(&f);
    fp_event_free(&del);
    assert_int_equal(ft_redis_int(e->rc, "ZCARD %s", PREFIX "feed:f04242"), 1); /* big2 */
}

/*
 * An author whose followers are all numeric ids: Redis keeps up to 512 of
 * them as an intset, which SSCAN returns whole whatever its COUNT. The
 * bridge writes them in explicit slices of 100 all the same: each push
 * slice scores its feeds with a sequence number of its own, so no score
 * may be shared by more than 100 of the 300 feeds. The delete takes the
 * post out of all of them, in slices too.
 */
static void test_compact_followers(void **state)
{
    env *e = *state;
    const char *argv[302];
    char uids[300][16], key[64];
    long long scores[300], seen[300];
    size_t counts[300], n_seen = 0, i, k;
    redisReply *r;
    fp_fanout f;
    fp_event del;

    argv[0] = "SADD";
    argv[1] = PREFIX "followers:cmp";
    for (i = 0; i < 300; i++) {
        snprintf(uids[i], sizeof(uids[i]), "%zu", 1000 + i);
        argv[i + 2] = uids[i];
    }
    r = redisCommandArgv(e->rc, 302, argv, NULL);
    assert_non_null(r);
    freeReplyObject(r);
    r = redisCommand(e->rc, "OBJECT ENCODING %s", PREFIX "followers:cmp");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "intset");
    freeReplyObject(r);

    post(e->st, "cmp1", "cmp", &f);
    assert_int_equal(f.n_recipients, 301);
    fp_fanout_free(&f);
    for (i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), PREFIX "feed:%s", uids[i]);
        r = redisCommand(e->rc, "ZSCORE %s cmp1", key);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STRING); /* every follower has it */
        scores[i] = strtoll(r->str, NULL, 10);
        freeReplyObject(r);
    }
    for (i = 0; i < 300; i++) {
        for (k = 0; k < n_seen && seen[k] != scores[i]; k++)
            ;
        if (k == n_seen) {
            seen[n_seen] = scores[i];
            counts[n_seen++] = 0;
        }
        counts[k]++;
    }
    assert_true(n_seen >= 3);
    for (k = 0; k < n_seen; k++)
        assert_true(counts[k] <= 100);

    event(&del, "{\"type\":\"post.deleted\",\"post_id\":\"cmp1\",\"author_id\":\"cmp\"}");
    assert_int_equal(fp_store_post_deleted(e->st, &del, &f), 0);
    assert_int_equal(fp_store_post_finish(e->st, &del, &f), 0);
    fp_fanout_free(&f);
    fp_event_free(&del);
    for (i = 0; i < 300; i++)
        assert_false(feed_has(e->st, uids[i], "cmp1"));
}

/* The ids of one page of uid's feed, comma-joined (before/after: NULL or
 * a cursor; at most one of them). */
static void page_ids(fp_store *st, const char *uid, size_t limit, const char *before,
                     const char *after, char *buf, size_t len, fp_feed_after *where)
{
    fp_feed_page p;
    size_t i, used = 0;
    int rc;

    rc = after != NULL ? fp_store_feed_after(st, uid, limit, after, &p)
                       : fp_store_feed_page(st, uid, limit, before, &p);
    assert_int_equal(rc, 0);
    buf[0] = '\0';
    for (i = 0; i < p.n; i++) {
        assert_non_null(strstr(p.posts[i], p.ids[i]));
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i > 0 ? "," : "", p.ids[i]);
        assert_true(used < len);
    }
    if (where != NULL)
        *where = p.after;
    fp_feed_page_free(&p);
}

static void check_page(fp_store *st, const char *uid, size_t limit, const char *before,
                       const char *want)
{
    char got[256];

    page_ids(st, uid, limit, before, NULL, got, sizeof(got), NULL);
    assert_string_equal(got, want);
}

/* The page above after: where it says the cursor was, and its ids. */
static void check_after(fp_store *st, const char *uid, size_t limit, const char *after,
                        fp_feed_after want_where, const char *want)
{
    fp_feed_after where;
    char got[256];

    page_ids(st, uid, limit, NULL, after, got, sizeof(got), &where);
    assert_int_equal(where, want_where);
    assert_string_equal(got, want);
}

/*
 * Hybrid push/pull: an author above pull_threshold (3 here) has posts
 * kept in posts:<author> only; reads merge them with the pushed ones in
 * one order, across pages and cursors; a delete and an unfollow take them
 * out; routing still reaches every follower online and the author.
 */
static void test_pull_author(void **state)
{
    env *e = *state;
    fp_store_config cfg = store_config(&e->redis, PREFIX);
    const fp_node_targets *t;
    fp_store *st = NULL;
    fp_fanout f;
    fp_event ev;

    cfg.pull_threshold = 3;
    assert_int_equal(fp_store_open(&st, &cfg), 0);
    follow(st, "follow.created", "u1", "star");
    follow(st, "follow.created", "u2", "star");
    follow(st, "follow.created", "u3", "star");
    follow(st, "follow.created", "u4", "star");
    follow(st, "follow.created", "u1", "pal");
    run(e->rc, "SET %s %s EX 30", PREFIX "node:n1", "1");
    run(e->rc, "SET %s %s EX 30", PREFIX "node:n2", "1");
    run(e->rc, "SADD %s n1 n2", PREFIX "nodes");
    run(e->rc, "SADD %s u1 u2 x1 x2 x3 x4 x5 x6", PREFIX "online:n1");
    run(e->rc, "SADD %s u3", PREFIX "sessions:n1");
    run(e->rc, "SADD %s star", PREFIX "online:n2");

    post(st, "p1", "pal", &f);
    fp_fanout_free(&f);
    post(st, "p2", "star", &f);
    assert_false(f.duplicate);
    assert_int_equal(f.n_recipients, 5);
    t = find_node(&f, "n1");
    assert_non_null(t);
    assert_int_equal(t->n_users, 3);
    assert_true(has_user(t, "u1") && has_user(t, "u2") && has_user(t, "u3"));
    t = find_node(&f, "n2");
    assert_non_null(t);
    assert_int_equal(t->n_users, 1);
    assert_string_equal(t->users[0], "star");
    fp_fanout_free(&f);
    post(st, "p3", "pal", &f);
    fp_fanout_free(&f);
    post(st, "p4", "star", &f);
    fp_fanout_free(&f);

    /* Not pushed: only the author's feed and posts:star hold them. */
    assert_int_equal(ft_redis_int(e->rc, "EXISTS %s", PREFIX "feed:u2"), 0);
    assert_int_equal(list_count(e->rc, PREFIX "feed:u1", "p2"), 0);
    assert_int_equal(list_count(e->rc, PREFIX "feed:u1", "p3"), 1);
    assert_int_equal(list_count(e->rc, PREFIX "posts:star", "p4"), 1);
    assert_int_equal(list_count(e->rc, PREFIX "feed:star", "p4"), 1);
    assert_int_equal(ft_redis_int(e->rc, "SISMEMBER %s star", PREFIX "pull_authors"), 1);

    /* Merged in one order, whatever the page size. */
    check_page(st, "u1", 10, NULL, "p4,p3,p2,p1");
    check_page(st, "u2", 10, NULL, "p4,p2");
    check_page(st, "star", 10, NULL, "p4,p2");
    check_page(st, "u1", 1, NULL, "p4");
    check_page(st, "u1", 2, "p4", "p3,p2");
    check_page(st, "u1", 2, "p3", "p2,p1");
    check_page(st, "u1", 2, "p1", "");
    check_page(st, "u2", 1, "p4", "p2");
    /* posts:star starts above p1 (star was pulled since), but far from
     * full: it lost nothing, no gap. */
    check_after(st, "u1", 2, "p1", FP_FEED_AFTER_MORE, "p3,p2");
    check_after(st, "u1", 2, "p2", FP_FEED_AFTER_TOP, "p4,p3");

    /* A redelivery: same targets, nothing written twice. */
    post(st, "p4", "star", &f);
    assert_true(f.duplicate);
    assert_non_null(find_node(&f, "n1"));
    fp_fanout_free(&f);
    check_page(st, "u1", 10, NULL, "p4,p3,p2,p1");

    /* The delete of a pulled post: gone from every merged page; its
     * notification reaches the followers online and the author. */
    event(&ev, "{\"type\":\"post.deleted\",\"post_id\":\"p2\",\"author_id\":\"star\"}");
    assert_int_equal(fp_store_post_deleted(st, &ev, &f), 0);
    fp_event_free(&ev);
    t = find_node(&f, "n1");
    assert_non_null(t);
    assert_int_equal(t->n_users, 3);
    assert_non_null(find_node(&f, "n2"));
    fp_fanout_free(&f);
    assert_int_equal(list_count(e->rc, PREFIX "posts:star", "p2"), 0);
    check_page(st, "u1", 10, NULL, "p4,p3,p1");
    check_page(st, "u1", 1, "p3", "p1");
    check_page(st, "star", 10, NULL, "p4");

    /* An unfollow stops the merge; what was pushed stays. */
    follow(st, "follow.deleted", "u1", "star");
    check_page(st, "u1", 10, NULL, "p3,p1");
    fp_store_free(st);
}

/*
 * A feed written by a release that kept feeds as lists is turned into a
 * sorted set on its next push or read, in the same order, below every
 * newer post.
 */
static void test_list_feed_upgrade(void **state)
{
    env *e = *state;
    fp_event ev;
    fp_fanout f;

    run(e->rc, "SET %s {\"id\":\"old1\"}", PREFIX "post:old1");
    run(e->rc, "SET %s {\"id\":\"old2\"}", PREFIX "post:old2");
    run(e->rc, "RPUSH %s old2 old1 old2", PREFIX "feed:v1");
    run(e->rc, "RPUSH %s old2 old1", PREFIX "feed:v2");
    check_page(e->st, "v1", 10, NULL, "old2,old1");
    assert_int_equal(ft_redis_int(e->rc, "ZCARD %s", PREFIX "feed:v1"), 2);

    event(&ev, "{\"type\":\"post.created\",\"post\":{\"id\":\"new1\",\"author_id\":\"w\","
               "\"text\":\"hi\",\"created_at\":1700000000000},\"recipients\":[\"v2\"]}");
    assert_int_equal(fp_store_post_created(e->st, &ev, &f), 0);
    fp_event_free(&ev);
    fp_fanout_free(&f);
    check_page(e->st, "v2", 10, NULL, "new1,old2,old1");
    check_page(e->st, "v2", 10, "old2", "old1");
}

/*
 * Big post big by wide (150 followers <p>000.., so its feeds are written
 * in slices after its first call), and between that call and its slices
 * a post small by narrow, which <p>000 follows too, written in one call:
 * <p>000's feed then has big above small.
 */
static void big_post_overtaking(env *e, const char *p, const char *wide, const char *big,
                                const char *narrow, const char *small)
{
    char reader[16], body[256];
    fp_fanout f, g;
    fp_event ev;
    int i;

    for (i = 0; i < 150; i++)
        run(e->rc, "SADD %sfollowers:%s %s%03d", PREFIX, wide, p, i);
    snprintf(reader, sizeof(reader), "%s000", p);
    follow(e->st, "follow.created", reader, narrow);
    snprintf(body, sizeof(body),
             "{\"type\":\"post.created\",\"post\":{\"id\":\"%s\",\"author_id\":\"%s\","
             "\"text\":\"big\",\"created_at\":1}}",
             big, wide);
    event(&ev, "%s", body);
    assert_int_equal(fp_store_post_created(e->st, &ev, &f), 0);
    assert_true(f.pending);
    post(e->st, small, narrow, &g); /* one call: written at once */
    fp_fanout_free(&g);
    check_page(e->st, reader, 10, NULL, small);
    assert_int_equal(fp_store_post_finish(e->st, &ev, &f), 0);
    fp_fanout_free(&f);
    fp_event_free(&ev);
}

/*
 * A big post's feeds are written after its routing (and after posts that
 * came later were written in one call): it must land above them, so that
 * a reader catching up with after=<the newer post> still gets it.
 */
static void test_after_sees_late_writes(void **state)
{
    env *e = *state;

    big_post_overtaking(e, "u", "wide", "pw", "narrow", "pn");
    check_page(e->st, "u000", 10, NULL, "pw,pn");
    check_after(e->st, "u000", 10, "pn", FP_FEED_AFTER_TOP, "pw");
}

/* GET key as a number (the key must hold one). */
static long long get_ll(redisContext *rc, const char *key)
{
    redisReply *r = ft_redis_cmd(rc, "GET %s", key);
    long long v;

    assert_int_equal(r->type, REDIS_REPLY_STRING);
    v = atoll(r->str);
    freeReplyObject(r);
    return v;
}

/*
 * The cursor of a big post deleted meanwhile: in a follower's feed it sat
 * above a post written there during its fan-out (under its slice's
 * number, above its own), so before=<it> must still reach that post. It
 * used to page on below the post's own number, and skipped it. after=<it>
 * goes on from the post's own number: what lies between repeats, nothing
 * newer is missed.
 */
static void test_cursor_gone_big(void **state)
{
    env *e = *state;
    char marker[64];
    fp_fanout f, g;
    fp_event ev, del;
    redisReply *r;
    long long top;

    big_post_overtaking(e, "k", "kwide", "kw", "knarrow", "kn1");
    check_page(e->st, "k000", 10, NULL, "kw,kn1");

    /* Its fan-out run again with the marker still in phase a (a crash
     * before the ack): its slices add nothing, so fanout_top:kw stays
     * (a higher one would make before=kw repeat more). */
    r = ft_redis_cmd(e->rc, "GET %s", PREFIX "fanout:kw");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    snprintf(marker, sizeof(marker), "%s", r->str);
    freeReplyObject(r);
    assert_int_equal(marker[strlen(marker) - 1], 'd');
    marker[strlen(marker) - 1] = 'a';
    ft_redis_ok(e->rc, "SET %s %s KEEPTTL", PREFIX "fanout:kw", marker);
    top = get_ll(e->rc, PREFIX "fanout_top:kw");
    assert_true(top > 0);
    post(e->st, "kn0", "knarrow", &g); /* the sequence goes on meanwhile */
    fp_fanout_free(&g);
    event(&ev, "{\"type\":\"post.created\",\"post\":{\"id\":\"kw\",\"author_id\":"
               "\"kwide\",\"text\":\"big\",\"created_at\":1}}");
    assert_int_equal(fp_store_post_created(e->st, &ev, &f), 0);
    assert_int_equal(fp_store_post_finish(e->st, &ev, &f), 0);
    fp_fanout_free(&f);
    fp_event_free(&ev);
    assert_int_equal(get_ll(e->rc, PREFIX "fanout_top:kw"), top);
    run(e->rc, "ZREM %s kn0", PREFIX "feed:k000");

    event(&del, "{\"type\":\"post.deleted\",\"post_id\":\"kw\",\"author_id\":\"kwide\"}");
    assert_int_equal(fp_store_post_deleted(e->st, &del, &f), 0);
    assert_int_equal(fp_store_post_finish(e->st, &del, &f), 0);
    fp_fanout_free(&f);
    fp_event_free(&del);
    assert_false(feed_has(e->st, "k000", "kw"));
    post(e->st, "kn2", "knarrow", &g);
    fp_fanout_free(&g);

    check_page(e->st, "k000", 10, "kw", "kn1");
    check_after(e->st, "k000", 10, "kw", FP_FEED_AFTER_TOP, "kn2,kn1");

    /* The same once the big post has outlived its marker (fanout_top:<id>
     * went with it): the delete's slices find the slice number the post
     * stood at in each feed. It used to page on below the post's own
     * number, from the author's lists, and skip the small post. */
    big_post_overtaking(e, "m", "mwide", "mw", "mnarrow", "mn1");
    check_page(e->st, "m000", 10, NULL, "mw,mn1");
    assert_int_equal(ft_redis_int(e->rc, "DEL %s %s", PREFIX "fanout:mw", PREFIX "fanout_top:mw"),
                     2);
    event(&del, "{\"type\":\"post.deleted\",\"post_id\":\"mw\",\"author_id\":\"mwide\"}");
    assert_int_equal(fp_store_post_deleted(e->st, &del, &f), 0);
    assert_int_equal(fp_store_post_finish(e->st, &del, &f), 0);
    fp_fanout_free(&f);
    fp_event_free(&del);
    assert_false(feed_has(e->st, "m000", "mw"));
    check_page(e->st, "m000", 10, "mw", "mn1");
    check_after(e->st, "m000", 10, "mw", FP_FEED_AFTER_TOP, "mn1"); /* from its own number */
}

/*
 * A post too big to write in one call (150 followers) whose first call
 * ran, then a crash before its slices (marker still in phase a), then a
 * post by another author written at once; by the redelivery 60 followers
 * have gone, so it is written in one call now. Those writes come after
 * the other post's: the reader's feed has the big post above it, and
 * after=<the other post> finds it. It used to be written under its own,
 * older number, below, and a reader caught up with after= never saw it.
 */
static void test_redelivery_written_late(void **state)
{
    env *e = *state;
    fp_fanout f, g;
    fp_event ev;
    int i;

    for (i = 0; i < 150; i++)
        run(e->rc, "SADD %sfollowers:rlwide rl%03d", PREFIX, i);
    follow(e->st, "follow.created", "rl000", "rlnarrow");
    event(&ev, "{\"type\":\"post.created\",\"post\":{\"id\":\"rlb\",\"author_id\":"
               "\"rlwide\",\"text\":\"big\",\"created_at\":1}}");
    assert_int_equal(fp_store_post_created(e->st, &ev, &f), 0);
    assert_true(f.pending);
    fp_fanout_free(&f); /* the crash: no slices */
    post(e->st, "rln1", "rlnarrow", &g);
    fp_fanout_free(&g);
    for (i = 90; i < 150; i++)
        run(e->rc, "SREM %sfollowers:rlwide rl%03d", PREFIX, i);
    assert_int_equal(fp_store_post_created(e->st, &ev, &f), 0); /* redelivered */
    assert_int_equal(fp_store_post_finish(e->st, &ev, &f), 0);
    fp_fanout_free(&f);
    fp_event_free(&ev);
    check_page(e->st, "rl000", 10, NULL, "rlb,rln1");
    check_after(e->st, "rl000", 10, "rln1", FP_FEED_AFTER_TOP, "rlb");
    check_page(e->st, "rl089", 10, NULL, "rlb");
}

/*
 * A page skips the posts whose body is gone, however many in a row: the
 * read goes on past them stretch by stretch (each asks for a few more ids
 * than it still needs), newest first, below a cursor and above one; a
 * post listed in two sources under two scores shows once in a page,
 * where its higher score puts it.
 */
static void test_feed_gaps(void **state)
{
    env *e = *state;
    char id[16];
    fp_fanout f;
    int i;

    follow(e->st, "follow.created", "g1", "ga");
    for (i = 0; i < 40; i++) {
        snprintf(id, sizeof(id), "q%02d", i);
        post(e->st, id, "ga", &f);
        fp_fanout_free(&f);
    }
    for (i = 10; i < 30; i++) /* 20 in a row: more than a stretch's spare ids */
        run(e->rc, "DEL %sq%02d", PREFIX "post:", i);

    check_page(e->st, "g1", 3, NULL, "q39,q38,q37");
    check_page(e->st, "g1", 12, NULL, "q39,q38,q37,q36,q35,q34,q33,q32,q31,q30,q09,q08");
    check_page(e->st, "g1", 2, "q30", "q09,q08");
    check_page(e->st, "g1", 2, "q20", "q09,q08"); /* a gone post is still a cursor */
    check_page(e->st, "g1", 5, "q02", "q01,q00");
    check_after(e->st, "g1", 3, "q08", FP_FEED_AFTER_MORE, "q31,q30,q09");
    check_after(e->st, "g1", 10, "q12", FP_FEED_AFTER_TOP,
                "q39,q38,q37,q36,q35,q34,q33,q32,q31,q30");
    check_after(e->st, "g1", 0, "q12", FP_FEED_AFTER_MORE, "");

    /* q05 also in a pull author's posts, above everything: first, once. */
    run(e->rc, "SADD %s ga", PREFIX "pull_authors");
    run(e->rc, "ZADD %s 1000000000 q05", PREFIX "posts:ga");
    check_page(e->st, "g1", 16, NULL,
               "q05,q39,q38,q37,q36,q35,q34,q33,q32,q31,q30,q09,q08,q07,q06,q04");
    /* Below a cursor only the lower copy is in range. */
    check_page(e->st, "g1", 3, "q07", "q06,q05,q04");
}

/* A store of e's Redis with PREFIX, this feed_length and pull_threshold. */
static fp_store *open_store_pull(env *e, int feed_length, long pull_threshold)
{
    fp_store_config cfg = store_config(&e->redis, PREFIX);
    fp_store *st = NULL;

    cfg.feed_length = feed_length;
    cfg.pull_threshold = pull_threshold;
    assert_int_equal(fp_store_open(&st, &cfg), 0);
    return st;
}

static void post_free(fp_store *st, const char *id, const char *author)
{
    fp_fanout f;

    post(st, id, author, &f);
    fp_fanout_free(&f);
}

/* post.deleted of id by author, its first call only (a post with few
 * enough recipients is done in it). */
static void delete_free(fp_store *st, const char *id, const char *author)
{
    fp_event del;
    fp_fanout f;

    event(&del, "{\"type\":\"post.deleted\",\"post_id\":\"%s\",\"author_id\":\"%s\"}", id, author);
    assert_int_equal(fp_store_post_deleted(st, &del, &f), 0);
    fp_fanout_free(&f);
    fp_event_free(&del);
}

/* Walks mreader's feed back from the top in pages of limit, then forward
 * with after= from mp<from>: each page holds the posts nearest its
 * cursor, in order (mp<n>, newest first), with no gap and no repeat. */
static void walk_feed(fp_store *st, int total, int limit, int from)
{
    char want[16], got[4096], *cur = NULL;
    fp_feed_after where;
    int k, n, top;

    for (n = total - 1; n >= 0; n -= limit) {
        page_ids(st, "mreader", (size_t)limit, cur, NULL, got, sizeof(got), NULL);
        for (k = 0; k < limit && n - k >= 0; k++) {
            snprintf(want, sizeof(want), "mp%03d", n - k);
            if (strncmp(got + k * 6, want, 5) != 0)
                fail_msg("page before %s: %s", cur != NULL ? cur : "(none)", got);
        }
        free(cur);
        cur = strndup(got + (k - 1) * 6, 5);
    }
    page_ids(st, "mreader", (size_t)limit, cur, NULL, got, sizeof(got), NULL);
    assert_string_equal(got, "");
    free(cur);

    snprintf(want, sizeof(want), "mp%03d", from);
    cur = strdup(want);
    for (n = from + 1; n < total; n += limit) {
        page_ids(st, "mreader", (size_t)limit, NULL, cur, got, sizeof(got), &where);
        top = n + limit - 1 > total - 1 ? total - 1 : n + limit - 1;
        for (k = 0; top - k >= n; k++) {
            snprintf(want, sizeof(want), "mp%03d", top - k);
            if (strncmp(got + k * 6, want, 5) != 0)
                fail_msg("page after %s: %s", cur, got);
        }
        assert_int_equal(where, n + limit < total ? FP_FEED_AFTER_MORE : FP_FEED_AFTER_TOP);
        free(cur);
        cur = strndup(got, 5);
    }
    free(cur);
}

/*
 * A reader following 30 pull authors (two followers each, over the
 * threshold of 1) and 5 others: 203 posts, made round-robin but for a
 * run of 40 by one pull author (more than a source's first read of 16,
 * so the merge reads it again), come back in the order they were made,
 * walked back and forward in pages of 7 and of 29.
 */
static void test_many_pull_authors(void **state)
{
    env *e = *state;
    fp_store *st = open_store_pull(e, 1000, 1);
    char author[16], id[16];
    int i;

    for (i = 0; i < 35; i++) {
        snprintf(author, sizeof(author), "ma%02d", i);
        follow(st, "follow.created", "mreader", author);
        if (i < 30)
            follow(st, "follow.created", "mother", author);
    }
    for (i = 0; i < 203; i++) {
        snprintf(author, sizeof(author), "ma%02d", i >= 140 && i < 180 ? 0 : (i * 3) % 35);
        snprintf(id, sizeof(id), "mp%03d", i);
        post_free(st, id, author);
    }
    assert_int_equal(ft_redis_int(e->rc, "SCARD %s", PREFIX "pull_authors"), 30);
    walk_feed(st, 203, 7, 0);
    walk_feed(st, 203, 29, 0);
    fp_store_free(st);
}

/*
 * A feed that ends in a long run of gone posts (bodies expired: DEL
 * here): a read looks at no more than its page plus
 * FP_STORE_FEED_SCAN_EXTRA ids, and stops with a short page and resume,
 * the last id it looked at; reads from there go on and reach the posts
 * below the run. An after= read cut short says more (FP_FEED_AFTER_MORE)
 * and resumes above the ids it looked at.
 */
static void test_feed_scan_budget(void **state)
{
    env *e = *state;
    fp_store *st = open_store_pull(e, 3000, 0);
    char id[16], cursor[FP_ID_BUFSZ];
    fp_feed_page p;
    int i, reads = 0;

    follow(st, "follow.created", "sreader", "sa");
    for (i = 0; i < 1300; i++) {
        snprintf(id, sizeof(id), "sp%04d", i);
        post_free(st, id, "sa");
    }
    for (i = 100; i < 1300; i++)
        run(e->rc, "DEL %ssp%04d", PREFIX "post:", i);

    assert_int_equal(fp_store_feed_page(st, "sreader", 10, NULL, &p), 0);
    assert_int_equal(p.n, 0);
    assert_true(p.resume[0] != '\0');
    /* It looked at 10 + FP_STORE_FEED_SCAN_EXTRA ids: sp1299 down to sp0290. */
    assert_string_equal(p.resume, "sp0290");
    snprintf(cursor, sizeof(cursor), "%s", p.resume);
    fp_feed_page_free(&p);
    for (;;) {
        assert_true(++reads < 5);
        assert_int_equal(fp_store_feed_page(st, "sreader", 10, cursor, &p), 0);
        if (p.n > 0)
            break;
        assert_true(p.resume[0] != '\0');
        snprintf(cursor, sizeof(cursor), "%s", p.resume);
        fp_feed_page_free(&p);
    }
    assert_int_equal(p.n, 10);
    assert_string_equal(p.ids[0], "sp0099");
    assert_string_equal(p.ids[9], "sp0090");
    assert_string_equal(p.resume, "");
    fp_feed_page_free(&p);

    /* Forward from sp0099: the run above it is looked at, then cut. */
    assert_int_equal(fp_store_feed_after(st, "sreader", 10, "sp0099", &p), 0);
    assert_int_equal(p.n, 0);
    assert_int_equal(p.after, FP_FEED_AFTER_MORE);
    assert_string_equal(p.resume, "sp1110"); /* 11 + 1000 ids above sp0099 */
    fp_feed_page_free(&p);
    fp_store_free(st);
}

/*
 * after= when posts above the cursor were trimmed from one of the
 * sources: the cursor counts as missing (the newest page, after_found
 * false), so the client knows of the gap; when no source at its cap
 * starts above the cursor, it is found. feed_length 5 here.
 */
static void test_after_gap(void **state)
{
    env *e = *state;
    fp_store *st = open_store_pull(e, 5, 1);
    char got[256], id[16];
    fp_feed_after where;
    int i;

    follow(st, "follow.created", "greader", "gpush");
    follow(st, "follow.created", "greader", "gpull");
    follow(st, "follow.created", "gother", "gpull");
    post_free(st, "gb1", "gpull");
    for (i = 1; i <= 7; i++) {
        snprintf(id, sizeof(id), "ga%d", i);
        post_free(st, id, "gpush");
    }
    /* feed:greader holds ga3..ga7: ga1 and ga2, above gb1, are gone. */
    check_after(st, "greader", 3, "gb1", FP_FEED_AFTER_MISSING, "ga7,ga6,ga5");
    /* Above ga4 nothing was trimmed (posts:gpull holds one post). */
    check_after(st, "greader", 3, "ga4", FP_FEED_AFTER_TOP, "ga7,ga6,ga5");

    /* posts:gpull at its cap: gb3..gb7 kept, gb2 (above ga7) gone. */
    for (i = 2; i <= 7; i++) {
        snprintf(id, sizeof(id), "gb%d", i);
        post_free(st, id, "gpull");
    }
    page_ids(st, "greader", 3, NULL, "ga7", got, sizeof(got), &where);
    assert_int_equal(where, FP_FEED_AFTER_MISSING); /* gb2 is gone */
    assert_string_equal(got, "gb7,gb6,gb5");
    check_after(st, "greader", 10, "gb3", FP_FEED_AFTER_TOP, "gb7,gb6,gb5,gb4");
    fp_store_free(st);
}

/*
 * A cursor whose post was deleted after the reader got it (a delete takes
 * the id off the feeds): before= still pages on below its place, and
 * after= goes on above it as found, for as long as gone:<id> keeps its
 * sequence number (taken from the author's own lists when the post
 * outlived its marker); an id never seen, or deleted before gone:<id>
 * existed (a bare tombstone), gives the empty page / the newest one, as
 * before.
 */
static void test_cursor_gone(void **state)
{
    env *e = *state;
    char id[16];
    int i;

    follow(e->st, "follow.created", "cr", "cw");
    for (i = 1; i <= 5; i++) {
        snprintf(id, sizeof(id), "cg%d", i);
        post_free(e->st, id, "cw");
    }
    delete_free(e->st, "cg3", "cw");
    delete_free(e->st, "cg3", "cw"); /* again: the place stays */
    assert_int_equal(list_count(e->rc, PREFIX "feed:cr", "cg3"), 0);

    check_page(e->st, "cr", 10, "cg3", "cg2,cg1");
    check_after(e->st, "cr", 10, "cg3", FP_FEED_AFTER_TOP, "cg5,cg4");

    check_page(e->st, "cr", 10, "nosuch", "");
    check_after(e->st, "cr", 3, "nosuch", FP_FEED_AFTER_MISSING, "cg5,cg4,cg2");
    assert_int_equal(ft_redis_int(e->rc, "DEL %s", PREFIX "gone:cg3"), 1);
    check_page(e->st, "cr", 10, "cg3", "");

    /* A post older than the marker TTL (its fanout:<id> expired) keeps
     * its place too: the author's own lists still hold its number. It
     * used to give an empty page, which reads as the end of the feed. */
    assert_int_equal(ft_redis_int(e->rc, "DEL %s", PREFIX "fanout:cg4"), 1);
    delete_free(e->st, "cg4", "cw");
    assert_int_equal(list_count(e->rc, PREFIX "feed:cr", "cg4"), 0);
    check_page(e->st, "cr", 10, "cg4", "cg2,cg1");
    check_after(e->st, "cr", 10, "cg4", FP_FEED_AFTER_TOP, "cg5");

    /* And once the author's lists no longer hold it either (trimmed out:
     * the author posted more than a feed holds since), before= pages on
     * below the highest number the feeds it was taken off held (it used
     * to give an empty page, read as the end of the feed); after= takes
     * it for unknown (the newest page): a place taken from other readers'
     * feeds could stand above this reader's and skip what lies between. */
    post_free(e->st, "cg6", "cw");
    assert_int_equal(ft_redis_int(e->rc, "DEL %s", PREFIX "fanout:cg5"), 1);
    run(e->rc, "ZREM %s cg5", PREFIX "feed:cw");
    run(e->rc, "ZREM %s cg5", PREFIX "posts:cw");
    delete_free(e->st, "cg5", "cw");
    assert_int_equal(list_count(e->rc, PREFIX "feed:cr", "cg5"), 0);
    check_page(e->st, "cr", 10, "cg5", "cg2,cg1");
    check_after(e->st, "cr", 10, "cg5", FP_FEED_AFTER_MISSING, "cg6,cg2,cg1");
}

/*
 * post_ttl: a post's body expires that long after it is stored, and a feed
 * read then skips the post; without post_ttl a body never expires; a
 * negative post_ttl is refused.
 */
static void test_post_ttl(void **state)
{
    env *e = *state;
    fp_store_config cfg = store_config(&e->redis, PREFIX);
    fp_store *st = NULL;
    fp_fanout f;
    long long ttl;
    int i;

    cfg.post_ttl_s = 3600;
    assert_int_equal(fp_store_open(&st, &cfg), 0);
    follow(st, "follow.created", "r1", "ta");
    post(st, "tp1", "ta", &f);
    fp_fanout_free(&f);
    ttl = ft_redis_int(e->rc, "TTL %s", PREFIX "post:tp1");
    assert_true(ttl > 3500 && ttl <= 3600);
    post(st, "tp2", "ta", &f);
    fp_fanout_free(&f);
    check_page(st, "r1", 10, NULL, "tp2,tp1");
    /* tp2's body runs out: the feed skips it. */
    assert_int_equal(ft_redis_int(e->rc, "PEXPIRE %s 1", PREFIX "post:tp2"), 1);
    for (i = 0; i < 400 && ft_redis_int(e->rc, "EXISTS %s", PREFIX "post:tp2") != 0; i++)
        ft_sleep_ms(5);
    assert_int_equal(ft_redis_int(e->rc, "EXISTS %s", PREFIX "post:tp2"), 0);
    check_page(st, "r1", 10, NULL, "tp1");
    fp_store_free(st);

    post(e->st, "tp3", "ta", &f);
    fp_fanout_free(&f);
    assert_int_equal(ft_redis_int(e->rc, "TTL %s", PREFIX "post:tp3"), -1);

    st = NULL;
    cfg.post_ttl_s = -1;
    assert_int_equal(fp_store_open(&st, &cfg), -EINVAL);
    assert_non_null(strstr(fp_store_errstr(st), "post_ttl"));
    fp_store_free(st);
}

/* The post is in uid's feed (by its score: ZSCORE is 0/1 entries). */
static bool feed_holds(redisContext *rc, const char *uid, const char *id)
{
    redisReply *r = ft_redis_cmd(rc, "ZSCORE %sfeed:%s %s", PREFIX, uid, id);
    bool found = r->type == REDIS_REPLY_STRING;

    freeReplyObject(r);
    return found;
}

/*
 * A feed key holding another type than a feed (written by someone else)
 * is left alone and named in the result; every other feed of the post is
 * written, by the first call and by the slices, and the delete takes the
 * post off them again.
 */
static void test_feed_wrong_type(void **state)
{
    env *e = *state;
    char uid[16];
    fp_event del;
    fp_fanout f;
    fp_store *st;
    int i, rc;

    /* 3 followers, written by the first call; s1's key is a string. */
    for (i = 0; i < 3; i++) {
        snprintf(uid, sizeof(uid), "s%d", i);
        follow(e->st, "follow.created", uid, "small");
    }
    run(e->rc, "SET %s %s", PREFIX "feed:s1", "not-a-feed");
    post(e->st, "p1", "small", &f);
    assert_int_equal(f.n_bad_feeds, 1);
    assert_string_equal(f.bad_feed, PREFIX "feed:s1");
    fp_fanout_free(&f);
    assert_true(feed_holds(e->rc, "s0", "p1"));
    assert_true(feed_holds(e->rc, "s2", "p1"));
    assert_true(feed_holds(e->rc, "small", "p1"));
    check_value(e->rc, PREFIX "feed:s1", "not-a-feed");

    /* 150 followers, written in slices after the first call; two of their
     * keys and the author's own are of other types. */
    for (i = 0; i < 150; i++) {
        snprintf(uid, sizeof(uid), "w%03d", i);
        run(e->rc, "SADD %s %s", PREFIX "followers:wide", uid);
    }
    run(e->rc, "HSET %s a b", PREFIX "feed:wide");
    run(e->rc, "HSET %s a b", PREFIX "feed:w007");
    run(e->rc, "SET %s %s", PREFIX "feed:w140", "not-a-feed");
    post(e->st, "p2", "wide", &f);
    assert_int_equal(f.n_bad_feeds, 3);
    assert_string_equal(f.bad_feed, PREFIX "feed:wide");
    fp_fanout_free(&f);
    for (i = 0; i < 150; i++) {
        snprintf(uid, sizeof(uid), "w%03d", i);
        if (i != 7 && i != 140)
            assert_true(feed_holds(e->rc, uid, "p2"));
    }
    check_value(e->rc, PREFIX "feed:w140", "not-a-feed");

    event(&del, "{\"type\":\"post.deleted\",\"post_id\":\"p2\",\"author_id\":\"wide\"}");
    assert_int_equal(fp_store_post_deleted(e->st, &del, &f), 0);
    assert_int_equal(fp_store_post_finish(e->st, &del, &f), 0);
    assert_int_equal(f.n_bad_feeds, 3);
    assert_string_equal(f.bad_feed, PREFIX "feed:wide");
    fp_fanout_free(&f);
    fp_event_free(&del);
    for (i = 0; i < 150; i++) {
        snprintf(uid, sizeof(uid), "w%03d", i);
        if (i != 7 && i != 140)
            assert_false(feed_holds(e->rc, uid, "p2"));
    }
    assert_int_equal(ft_redis_int(e->rc, "HLEN %s", PREFIX "feed:w007"), 1);

    /* posts:<author> of a pull author (over a threshold of 2 here), of
     * another type: the post is not there, and a follower's read leaves
     * that key out instead of failing whole. */
    st = open_store_pull(e, 1000, 2);
    for (i = 0; i < 3; i++) {
        snprintf(uid, sizeof(uid), "pf%d", i);
        follow(st, "follow.created", uid, "pa");
    }
    follow(st, "follow.created", "pf0", "pn");
    post(st, "n1", "pn", &f);
    fp_fanout_free(&f);
    run(e->rc, "SET %s %s", PREFIX "posts:pa", "not-a-feed");
    post(st, "q1", "pa", &f);
    assert_int_equal(f.n_bad_feeds, 1);
    assert_string_equal(f.bad_feed, PREFIX "posts:pa");
    fp_fanout_free(&f);
    check_page(st, "pf0", 10, NULL, "n1");
    /* The reader's own feed of another type: the page holds the pulled
     * posts (pb's, a sound key), instead of failing whole. */
    for (i = 0; i < 3; i++) {
        snprintf(uid, sizeof(uid), "pf%d", i);
        follow(st, "follow.created", uid, "pb");
    }
    post(st, "q2", "pb", &f);
    fp_fanout_free(&f);
    run(e->rc, "HSET %s a b", PREFIX "feed:pf1");
    check_page(st, "pf1", 10, NULL, "q2");
    check_page(e->st, "s1", 10, NULL, ""); /* feed:s1, a string, and nothing pulled */
    fp_store_free(st);

    /* Any other error is no key of another type: a primary demoted under
     * a delete's slices (READONLY on their first write, a ZREM) fails
     * the call, as before. */
    post(e->st, "p3", "wide", &f);
    fp_fanout_free(&f);
    event(&del, "{\"type\":\"post.deleted\",\"post_id\":\"p3\",\"author_id\":\"wide\"}");
    assert_int_equal(fp_store_post_deleted(e->st, &del, &f), 0);
    assert_true(f.pending);
    run(e->rc, "REPLICAOF 127.0.0.1 1");
    rc = fp_store_post_finish(e->st, &del, &f);
    run(e->rc, "REPLICAOF NO ONE");
    assert_true(rc < 0);
    assert_non_null(strstr(fp_store_errstr(e->st), "READONLY"));
    fp_fanout_free(&f);
    fp_event_free(&del);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
/* clang-format off */
FT_MAIN(ft_harness_run, NULL, NULL,
        T(test_seed_scenario),    T(test_explicit_recipients), T(test_post_deleted_explicit),
        T(test_feed_cap),         T(test_redelivery),
        T(test_online_targeting), T(test_post_deleted),
        T(test_follow_unfollow),  T(test_ribbon),
        T(test_revocation),       T(test_revocation_ttl),
        T(test_noscript_recovery),
        T(test_restart),          T(test_bad_arguments),
        T(test_readonly_and_sync), T(test_big_fanout), T(test_compact_followers),
        T(test_pull_author),      T(test_list_feed_upgrade),
        T(test_explicit_slices),  T(test_after_sees_late_writes),
        T(test_post_ttl),         T(test_feed_gaps),
        T(test_many_pull_authors), T(test_feed_scan_budget),
        T(test_after_gap),        T(test_redelivery_after_error),
        T(test_body_cache_reads), T(test_cursor_gone),
        T(test_cursor_gone_big),  T(test_feed_wrong_type),
        T(test_redelivery_written_late), T(test_page_bytes),
        T(test_page_bytes_chunks), T(test_masterdown),
        T(test_follow_order))
/* clang-format on */
#undef T
