/*
 * feed-gateway's HTTP API against the whole stack: real RabbitMQ (a vhost
 * of this test's own), Redis, mosquitto with feed_auth.so, feed-bridge and
 * the gateway, spoken to with libcurl (and raw sockets for garbage).
 * Every endpoint, each of its error statuses, malformed bodies, refused
 * tokens, Redis and RabbitMQ outages, and the gateway surviving garbage.
 * The gateway runs with keep_alive on, so that its keep-alive handling is
 * tested too; test_keep_alive_off runs it as it ships.
 */
#define _GNU_SOURCE /* prlimit, strcasestr */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "fp_event.h"
#include "ft_proxy.h"
#include "ft_redis.h"
#include "gateway_env.h"
#include "ft_main.h"

static ft_gateway_env env;

static int start(void)
{
    setenv("FEEDPUSH_KEEP_ALIVE", "on", 1); /* the gateway inherits it */
    return ft_gateway_env_start(&env, 0);
}

FT_FIXTURES(start(), ft_gateway_env_stop(&env))

/* How many times needle occurs in s. */
static int occurrences(const char *s, const char *needle)
{
    int n = 0;

    while ((s = strstr(s, needle)) != NULL) {
        n++;
        s += strlen(needle);
    }
    return n;
}

/* ------------------------------------------------------------ helpers */

/* A request whose reply must be JSON; returns the parsed body (caller
 * deletes) after asserting the status. */
static cJSON *call(long want, const char *method, const char *path, const char *token,
                   const char *body)
{
    ft_http_reply r;
    cJSON *j;
    long got = ft_http(&env, method, path, token, body, &r);

    if (got != want)
        fprintf(stderr, "%s %s: got %ld, want %ld: %s\n", method, path, got, want, r.body);
    assert_int_equal(got, want);
    assert_non_null(strstr(r.content_type, "application/json"));
    j = cJSON_Parse(r.body);
    if (j == NULL)
        fprintf(stderr, "%s %s: not JSON: %s\n", method, path, r.body);
    assert_non_null(j);
    ft_http_reply_free(&r);
    return j;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

/* The request fails with status and {"error":code,"message":non-empty}. */
static void refused(long status, const char *code, const char *method, const char *path,
                    const char *token, const char *body)
{
    cJSON *j = call(status, method, path, token, body);

    assert_string_equal(str(j, "error"), code);
    assert_true(strlen(str(j, "message")) > 0);
    cJSON_Delete(j);
}

static char *token(const char *sub)
{
    return ft_gateway_token(&env, sub);
}

/* Index of post id in the caller's first feed page (limit 1000), or -1. */
static int feed_index(const char *tok, const char *post_id)
{
    cJSON *j = call(200, "GET", "/api/v1/feed?limit=1000", tok, NULL), *p;
    int i = 0, found = -1;

    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(j, "posts"))
    {
        if (found < 0 && strcmp(str(p, "id"), post_id) == 0)
            found = i;
        i++;
    }
    cJSON_Delete(j);
    return found;
}

/* Waits (up to 5 s) until post_id is (or is not) in the caller's feed:
 * events are applied by the bridge a moment after the API accepted them. */
static bool feed_has(const char *tok, const char *post_id, bool want)
{
    int i;

    for (i = 0; i < 100; i++) {
        if ((feed_index(tok, post_id) >= 0) == want)
            return true;
        usleep(50000);
    }
    return false;
}

/* Waits until the caller's follows list does (or does not) hold uid. */
static bool following(const char *tok, const char *uid, bool want)
{
    cJSON *j, *v;
    bool has;
    int i;

    for (i = 0; i < 100; i++) {
        j = call(200, "GET", "/api/v1/follows", tok, NULL);
        has = false;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(j, "following"))
        {
            has = has || strcmp(v->valuestring, uid) == 0;
        }
        cJSON_Delete(j);
        if (has == want)
            return true;
        usleep(50000);
    }
    return false;
}

/* Posts text as tok; returns the new post id (malloc'd). */
static char *post(const char *tok, const char *text)
{
    cJSON *body = cJSON_CreateObject(), *j;
    char *b, *id;

    cJSON_AddStringToObject(body, "text", text);
    b = cJSON_PrintUnformatted(body);
    j = call(201, "POST", "/api/v1/posts", tok, b);
    id = strdup(str(cJSON_GetObjectItemCaseSensitive(j, "post"), "id"));
    free(b);
    cJSON_Delete(body);
    cJSON_Delete(j);
    return id;
}

static void follow(const char *tok, const char *uid)
{
    char path[128];

    snprintf(path, sizeof(path), "/api/v1/follows/%s", uid);
    cJSON_Delete(call(200, "PUT", path, tok, NULL));
}

/* GET path with token tok (200 expected): the size of the body's array
 * member name. */
static int array_size(const char *path, const char *tok, const char *name)
{
    cJSON *j = call(200, "GET", path, tok, NULL);
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, name));

    cJSON_Delete(j);
    return n;
}

/* ------------------------------------------------------------ tests */

static void test_config(void **state)
{
    cJSON *j, *urls;
    char want[64];

    (void)state;
    j = call(200, "GET", "/api/v1/config", NULL, NULL);
    urls = cJSON_GetObjectItemCaseSensitive(j, "mqtt_ws_urls");
    assert_int_equal(cJSON_GetArraySize(urls), 1);
    snprintf(want, sizeof(want), "ws://127.0.0.1:%d/mqtt", env.b.p.mosq.ws_port);
    assert_string_equal(cJSON_GetArrayItem(urls, 0)->valuestring, want);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "dev_mode")));
    cJSON_Delete(j);
}

static void test_dev_token(void **state)
{
    cJSON *j, *exp;
    char *tok;
    int64_t now = (int64_t)time(NULL);

    (void)state;
    j = call(200, "POST", "/api/v1/dev/token", NULL, "{\"user_id\":\"dev_user\"}");
    assert_string_equal(str(j, "user_id"), "dev_user");
    exp = cJSON_GetObjectItemCaseSensitive(j, "expires_at");
    assert_true(cJSON_IsNumber(exp));
    assert_true(exp->valuedouble >= (double)(now + 590) && exp->valuedouble <= (double)(now + 610));
    tok = strdup(str(j, "token"));
    cJSON_Delete(j);
    /* The token works on the API as that user... */
    cJSON_Delete(call(200, "GET", "/api/v1/follows", tok, NULL));
    free(tok);

    refused(400, "bad_request", "POST", "/api/v1/dev/token", NULL, "{\"user_id\":\"a/b\"}");
    refused(400, "bad_request", "POST", "/api/v1/dev/token", NULL, "{\"user_id\":42}");
    refused(400, "bad_request", "POST", "/api/v1/dev/token", NULL, "{\"user_id\":");
    refused(400, "bad_request", "POST", "/api/v1/dev/token", NULL, NULL);
    refused(405, "method_not_allowed", "GET", "/api/v1/dev/token", NULL, NULL);
}

/* Polls GET path with tok until it answers want: true when it did within
 * 2 s (a revocation reaches the gateway's cache through Redis pub/sub). */
static bool until_status(long want, const char *path, const char *tok)
{
    int i;

    for (i = 0; i < 100; i++) {
        if (ft_http(&env, "GET", path, tok, NULL, NULL) == want)
            return true;
        ft_sleep_ms(20);
    }
    return false;
}

/* A revocation as feed-bridge applies it (fp_store_user_revoked): the
 * value raised and "<uid> <before>" published. */
static void revoke_user(const char *uid, long long before)
{
    redisContext *r = ft_redis_connect(env.b.p.redis.port);

    ft_redis_ok(r, "SET revoked:%s %lld", uid, before);
    assert_true(ft_redis_int(r, "PUBLISH revoked %s%s%lld", uid, " ", before) >= 1);
    redisFree(r);
}

static void test_auth_refusals(void **state)
{
    static const char alg_none[] = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
                                   "eyJzdWIiOiJtYWxsb3J5IiwiZXhwIjo0MTAyNDQ0ODAwfQ.";
    unsigned char other[48];
    fp_jwt_mint_claims c = {0};
    int64_t now = (int64_t)time(NULL);
    char *expired, *forged = NULL, *tok, err[128], *tampered;

    (void)state;
    refused(401, "unauthorized", "GET", "/api/v1/feed", NULL, NULL);
    refused(401, "unauthorized", "GET", "/api/v1/feed", "not-a-token", NULL);
    refused(401, "unauthorized", "GET", "/api/v1/feed", alg_none, NULL);
    expired = ft_plugin_env_token(&env.b.p, "eve", now - 100, now - 10, FP_ROLE_USER);
    refused(401, "unauthorized", "GET", "/api/v1/feed", expired, NULL);
    free(expired);
    /* Signed with another secret. */
    memset(other, 'x', sizeof(other));
    c.sub = "eve";
    c.iat = now;
    c.exp = now + 600;
    assert_int_equal(fp_jwt_mint(FP_JWT_HS256, other, sizeof(other), &c, &forged, err, sizeof(err)),
                     0);
    refused(401, "unauthorized", "GET", "/api/v1/feed", forged, NULL);
    free(forged);
    /* A valid token with its payload changed (sub swapped). Issued at
     * `now`, at or before the revocation below however long this takes. */
    tok = ft_plugin_env_token(&env.b.p, "eve", now, now + 600, FP_ROLE_USER);
    tampered = strdup(tok);
    tampered[strchr(tampered, '.') - tampered + 3] ^= 1;
    refused(401, "unauthorized", "GET", "/api/v1/feed", tampered, NULL);
    free(tampered);
    /* A token of a user revoked after it was issued. */
    cJSON_Delete(call(200, "GET", "/api/v1/feed", tok, NULL));
    revoke_user("eve", (long long)now + 1);
    assert_true(until_status(401, "/api/v1/feed", tok));
    refused(401, "unauthorized", "GET", "/api/v1/feed", tok, NULL);
    /* Whatever its query: a revoked token is not told its limit is bad. */
    refused(401, "unauthorized", "GET", "/api/v1/feed?limit=0", tok, NULL);
    free(tok);
    /* So is one issued in the revocation's own second (fp_jwt_revoked). */
    tok = ft_plugin_env_token(&env.b.p, "eve", now + 1, now + 600, FP_ROLE_USER);
    refused(401, "unauthorized", "GET", "/api/v1/feed", tok, NULL);
    free(tok);
    /* A fresh token (iat after the revocation) is accepted again. */
    tok = ft_plugin_env_token(&env.b.p, "eve", now + 2, now + 600, FP_ROLE_USER);
    cJSON_Delete(call(200, "GET", "/api/v1/feed", tok, NULL));
    free(tok);
}

/* A stamp (field "issued" or "applied") of the pair's follow:<follower>:
 * <followee> hash, -1 without one. */
static long long pair_stamp(const char *follower, const char *followee, const char *field)
{
    redisReply *r =
        ft_redis_once(env.b.p.redis.port, "HGET follow:%s:%s %s", follower, followee, field);
    long long v = r != NULL && r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;

    freeReplyObject(r);
    return v;
}

static void test_follows(void **state)
{
    char *fa = token("fa"), *fb = token("fb");
    long long put_stamp;
    cJSON *j;

    (void)state;
    j = call(200, "PUT", "/api/v1/follows/fb", fa, NULL);
    assert_string_equal(str(j, "follower_id"), "fa");
    assert_string_equal(str(j, "followee_id"), "fb");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "following")));
    cJSON_Delete(j);
    assert_true(following(fa, "fb", true));
    /* fb follows nobody. */
    assert_int_equal(array_size("/api/v1/follows", fb, "following"), 0);

    refused(400, "bad_request", "PUT", "/api/v1/follows/fa", fa, NULL);
    refused(400, "bad_request", "PUT", "/api/v1/follows/bad.id", fa, NULL);
    refused(404, "not_found", "PUT", "/api/v1/follows/", fa, NULL);
    refused(404, "not_found", "PUT", "/api/v1/follows/x/y", fa, NULL);
    refused(405, "method_not_allowed", "POST", "/api/v1/follows/fb", fa, NULL);
    refused(401, "unauthorized", "PUT", "/api/v1/follows/fb", NULL, NULL);

    put_stamp = pair_stamp("fa", "fb", "applied");
    assert_true(put_stamp > 0);
    j = call(200, "DELETE", "/api/v1/follows/fb", fa, NULL);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "following")));
    cJSON_Delete(j);
    assert_true(following(fa, "fb", false));
    /* Each change is stamped when taken, and applied in the stamps'
     * order: the follow delivered again after the unfollow (a bridge
     * killed with its ack held) is left out. fc's follow, behind it in
     * the queue, tells when the bridge is past it. */
    assert_true(pair_stamp("fa", "fb", "applied") > put_stamp);
    assert_int_equal(pair_stamp("fa", "fb", "applied"), pair_stamp("fa", "fb", "issued"));
    assert_int_equal(ft_node_publishf(&env.b, "follow.created",
                                      "{\"type\":\"follow.created\",\"follower_id\":\"fa\","
                                      "\"followee_id\":\"fb\",\"at\":%lld}",
                                      put_stamp),
                     0);
    assert_int_equal(ft_node_publishf(&env.b, "follow.created",
                                      "{\"type\":\"follow.created\",\"follower_id\":\"fc\","
                                      "\"followee_id\":\"fb\"}"),
                     0);
    assert_true(ft_redis_wait_member(env.b.p.redis.port, "followers:fb", "fc", 5000));
    assert_int_equal(array_size("/api/v1/follows", fa, "following"), 0);
    free(fa);
    free(fb);
}

static void test_posts(void **state)
{
    char *a = token("pa"), *b = token("pb"), *c = token("pc"), *id, big[8300];
    cJSON *j, *p;
    int64_t before = (int64_t)time(NULL) * 1000;

    (void)state;
    follow(b, "pa");
    assert_true(following(b, "pa", true));
    j = call(201, "POST", "/api/v1/posts", a, "{\"text\":\"first <b>post</b>\"}");
    p = cJSON_GetObjectItemCaseSensitive(j, "post");
    assert_string_equal(str(p, "author_id"), "pa");
    assert_string_equal(str(p, "text"), "first <b>post</b>");
    assert_true(fp_id_valid(str(p, "id")));
    assert_true(cJSON_GetObjectItemCaseSensitive(p, "created_at")->valuedouble >= (double)before);
    id = strdup(str(p, "id"));
    cJSON_Delete(j);
    assert_true(feed_has(b, id, true));      /* the follower */
    assert_true(feed_has(a, id, true));      /* the author's other tabs */
    assert_int_equal(feed_index(c, id), -1); /* nobody else */
    free(id);

    refused(400, "bad_request", "POST", "/api/v1/posts", a, "{}");
    refused(400, "bad_request", "POST", "/api/v1/posts", a, "{\"text\":42}");
    refused(400, "bad_request", "POST", "/api/v1/posts", a, "{\"text\":\"\"}");
    refused(400, "bad_request", "POST", "/api/v1/posts", a, "{\"text\":\"a\\u0000b\"}");
    refused(400, "bad_request", "POST", "/api/v1/posts", a, "{\"text\":\"\xff\xfe\"}");
    refused(400, "bad_request", "POST", "/api/v1/posts", a, "{\"text\":\"x\"");
    refused(400, "bad_request", "POST", "/api/v1/posts", a, "{\"text\":\"x\"} trailing");
    refused(400, "bad_request", "POST", "/api/v1/posts", a, "[\"text\"]");
    refused(400, "bad_request", "POST", "/api/v1/posts", a, NULL);
    memset(big, 'x', sizeof(big));
    memcpy(big, "{\"text\":\"", 9);
    snprintf(big + 9 + 8193, sizeof(big) - 9 - 8193, "\"}");
    refused(400, "bad_request", "POST", "/api/v1/posts", a, big);
    refused(401, "unauthorized", "POST", "/api/v1/posts", NULL, "{\"text\":\"x\"}");
    refused(405, "method_not_allowed", "GET", "/api/v1/posts", a, NULL);
    free(a);
    free(b);
    free(c);
}

/* How many posts in the caller's first feed page have this text. */
static int feed_count(const char *tok, const char *text)
{
    cJSON *j = call(200, "GET", "/api/v1/feed?limit=1000", tok, NULL), *p;
    int n = 0;

    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(j, "posts"))
    {
        n += strcmp(str(p, "text"), text) == 0;
    }
    cJSON_Delete(j);
    return n;
}

/* POST text with key as tok (201 expected); returns the post id. */
static char *post_keyed(const char *tok, const char *text, const char *key)
{
    char body[256];
    cJSON *j;
    char *id;

    snprintf(body, sizeof(body), "{\"text\":\"%s\",\"key\":\"%s\"}", text, key);
    j = call(201, "POST", "/api/v1/posts", tok, body);
    id = strdup(str(cJSON_GetObjectItemCaseSensitive(j, "post"), "id"));
    cJSON_Delete(j);
    return id;
}

/*
 * A post sent with a key and sent again (a client retrying after a 503 or
 * a lost answer) is one post: the same id, once in each feed. Another
 * author's same key is another post. After a delete, a retry does not
 * bring the post back. A bad key is a 400, a null one none. (A later unkeyed post, once in
 * the feed, shows that the events before it were applied: one bridge
 * takes them in order.)
 */
static void test_post_key(void **state)
{
    char *a = token("ka"), *b = token("kb"), *c = token("kc"), *id1, *id2, *id3, *mark;
    char path[128], long_key[70];
    cJSON *j;

    (void)state;
    follow(b, "ka");
    assert_true(following(b, "ka", true));
    id1 = post_keyed(a, "once", "tab1-0001");
    id2 = post_keyed(a, "once", "tab1-0001");
    assert_string_equal(id1, id2);
    id3 = post_keyed(c, "once", "tab1-0001");
    assert_string_not_equal(id1, id3); /* another author */
    free(id3);
    id3 = post_keyed(a, "twice", "tab1-0001");
    assert_string_not_equal(id1, id3); /* another text */
    mark = post(a, "after the retry");
    assert_true(feed_has(b, mark, true));
    assert_int_equal(feed_count(b, "once"), 1); /* one post, not two */
    assert_int_equal(feed_count(a, "once"), 1);

    snprintf(path, sizeof(path), "/api/v1/posts/%s", id1);
    cJSON_Delete(call(200, "DELETE", path, a, NULL));
    assert_true(feed_has(b, id1, false));
    free(id2);
    id2 = post_keyed(a, "once", "tab1-0001");
    assert_string_equal(id1, id2);
    free(mark);
    mark = post(a, "after the retry of a deleted post");
    assert_true(feed_has(b, mark, true));
    assert_int_equal(feed_count(b, "once"), 0);
    assert_int_equal(feed_count(a, "once"), 0);

    /* "key": null is no key: two posts. */
    j = call(201, "POST", "/api/v1/posts", a, "{\"text\":\"nullkey\",\"key\":null}");
    free(id3);
    id3 = strdup(str(cJSON_GetObjectItemCaseSensitive(j, "post"), "id"));
    cJSON_Delete(j);
    j = call(201, "POST", "/api/v1/posts", a, "{\"text\":\"nullkey\",\"key\":null}");
    assert_string_not_equal(id3, str(cJSON_GetObjectItemCaseSensitive(j, "post"), "id"));
    cJSON_Delete(j);
    refused(400, "bad_request", "POST", "/api/v1/posts", a, "{\"text\":\"x\",\"key\":\"\"}");
    refused(400, "bad_request", "POST", "/api/v1/posts", a, "{\"text\":\"x\",\"key\":42}");
    refused(400, "bad_request", "POST", "/api/v1/posts", a, "{\"text\":\"x\",\"key\":\"a/b\"}");
    memset(long_key, 'k', 65);
    long_key[65] = '\0';
    snprintf(path, sizeof(path), "{\"text\":\"x\",\"key\":\"%s\"}", long_key);
    refused(400, "bad_request", "POST", "/api/v1/posts", a, path);
    free(mark);
    free(id1);
    free(id2);
    free(id3);
    free(a);
    free(b);
    free(c);
}

static void test_feed_pages(void **state)
{
    char *a = token("fpa"), *ids[5], path[160];
    redisContext *r;
    cJSON *j, *posts;
    int i;

    (void)state;
    for (i = 0; i < 5; i++) {
        char text[16];

        snprintf(text, sizeof(text), "p%d", i);
        ids[i] = post(a, text);
    }
    assert_true(feed_has(a, ids[4], true));
    assert_true(feed_has(a, ids[0], true));
    /* Newest first, two per page, following next_before. */
    j = call(200, "GET", "/api/v1/feed?limit=2", a, NULL);
    posts = cJSON_GetObjectItemCaseSensitive(j, "posts");
    assert_int_equal(cJSON_GetArraySize(posts), 2);
    assert_string_equal(str(cJSON_GetArrayItem(posts, 0), "id"), ids[4]);
    assert_string_equal(str(cJSON_GetArrayItem(posts, 1), "id"), ids[3]);
    assert_string_equal(str(cJSON_GetArrayItem(posts, 1), "text"), "p3");
    assert_string_equal(str(j, "next_before"), ids[3]);
    cJSON_Delete(j);
    snprintf(path, sizeof(path), "/api/v1/feed?limit=2&before=%s", ids[3]);
    j = call(200, "GET", path, a, NULL);
    posts = cJSON_GetObjectItemCaseSensitive(j, "posts");
    assert_int_equal(cJSON_GetArraySize(posts), 2);
    assert_string_equal(str(cJSON_GetArrayItem(posts, 0), "id"), ids[2]);
    assert_string_equal(str(cJSON_GetArrayItem(posts, 1), "id"), ids[1]);
    cJSON_Delete(j);
    snprintf(path, sizeof(path), "/api/v1/feed?before=%s&limit=2", ids[1]);
    j = call(200, "GET", path, a, NULL);
    posts = cJSON_GetObjectItemCaseSensitive(j, "posts");
    assert_int_equal(cJSON_GetArraySize(posts), 1);
    assert_string_equal(str(cJSON_GetArrayItem(posts, 0), "id"), ids[0]);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "next_before")));
    cJSON_Delete(j);
    /* The default page holds all five; an unknown cursor gives nothing. */
    assert_int_equal(array_size("/api/v1/feed", a, "posts"), 5);
    assert_int_equal(array_size("/api/v1/feed?before=nosuchpost", a, "posts"), 0);

    assert_int_equal(array_size("/api/v1/feed?limit=00002", a, "posts"), 2); /* leading zeros */
    refused(400, "bad_request", "GET", "/api/v1/feed?limit=0", a, NULL);
    refused(400, "bad_request", "GET", "/api/v1/feed?limit=000000000000000", a, NULL);
    refused(400, "bad_request", "GET", "/api/v1/feed?limit=000000000001001", a, NULL);
    refused(400, "bad_request", "GET", "/api/v1/feed?limit=1001", a, NULL);
    refused(400, "bad_request", "GET", "/api/v1/feed?limit=ten", a, NULL);
    refused(400, "bad_request", "GET", "/api/v1/feed?limit=-1", a, NULL);
    refused(400, "bad_request", "GET", "/api/v1/feed?before=a%2Fb", a, NULL);
    /* Stored bodies are spliced into the answer as they are: one that is
     * not exactly one JSON object is left out, the answer stays JSON.
     * The post body cache drops the three old bodies when Redis's
     * invalidations arrive, a moment after the SETs. */
    r = ft_redis_connect(env.b.p.redis.port);
    ft_redis_ok(r, "SET post:%s %s", ids[2], "not-json");
    ft_redis_ok(r, "SET post:%s %s", ids[1], "{\"id\":\"x\"},{\"id\":\"y\"}");
    ft_redis_ok(r, "SET post:%s %s", ids[0], "[1]");
    redisFree(r);
    for (i = 0; i < 100 && array_size("/api/v1/feed", a, "posts") != 2; i++)
        usleep(50000);
    j = call(200, "GET", "/api/v1/feed", a, NULL);
    posts = cJSON_GetObjectItemCaseSensitive(j, "posts");
    assert_int_equal(cJSON_GetArraySize(posts), 2);
    assert_string_equal(str(cJSON_GetArrayItem(posts, 0), "id"), ids[4]);
    assert_string_equal(str(cJSON_GetArrayItem(posts, 1), "id"), ids[3]);
    cJSON_Delete(j);
    for (i = 0; i < 5; i++)
        free(ids[i]);
    free(a);
}

/* GET path as tok (200): the posts' ids are exactly want[0..n-1], in
 * that order. Returns the body (caller deletes). */
static cJSON *feed_expect(const char *tok, const char *path, char *const *want, int n)
{
    cJSON *j = call(200, "GET", path, tok, NULL);
    const cJSON *posts = cJSON_GetObjectItemCaseSensitive(j, "posts");
    int i;

    if (cJSON_GetArraySize(posts) != n)
        fprintf(stderr, "%s: %d posts, want %d\n", path, cJSON_GetArraySize(posts), n);
    assert_int_equal(cJSON_GetArraySize(posts), n);
    for (i = 0; i < n; i++)
        assert_string_equal(str(cJSON_GetArrayItem(posts, i), "id"), want[i]);
    return j;
}

/* Member key of j is the string want, or null when want is NULL. */
static void id_or_null(const cJSON *j, const char *key, const char *want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

    if (want == NULL)
        assert_true(cJSON_IsNull(v));
    else
        assert_string_equal(str(j, key), want);
}

/* The cursor members of an after= answer; consumes j. */
static void after_fields(cJSON *j, bool found, const char *next_after, const char *next_before)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "after_found");

    assert_true(cJSON_IsBool(f));
    assert_int_equal(cJSON_IsTrue(f), found);
    id_or_null(j, "next_after", next_after);
    id_or_null(j, "next_before", next_before);
    cJSON_Delete(j);
}

/* GET /api/v1/feed?after=: the posts newer than a post, paged forward
 * from the cursor, and the answers for a cursor the feed no longer has. */
static void test_feed_after(void **state)
{
    char *a = token("faa"), *ids[8], path[256], big[96];
    redisContext *r;
    cJSON *j;
    int i;

    (void)state;
    for (i = 0; i < 7; i++) {
        char text[16];

        snprintf(text, sizeof(text), "a%d", i);
        ids[i] = post(a, text);
    }
    assert_true(feed_has(a, ids[6], true));
    assert_true(feed_has(a, ids[0], true));
    /* Exactly the newer posts, newest first; nothing more above them. */
    snprintf(path, sizeof(path), "/api/v1/feed?after=%s", ids[2]);
    after_fields(feed_expect(a, path, (char *[]){ids[6], ids[5], ids[4], ids[3]}, 4), true, NULL,
                 NULL);
    /* After the newest: caught up, an empty page. */
    snprintf(path, sizeof(path), "/api/v1/feed?after=%s&limit=1", ids[6]);
    after_fields(feed_expect(a, path, NULL, 0), true, NULL, NULL);
    /* Without a cursor (an empty after= is none) the answer is as before. */
    j = feed_expect(a, "/api/v1/feed?limit=2&after=", (char *[]){ids[6], ids[5]}, 2);
    assert_string_equal(str(j, "next_before"), ids[5]);
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "after_found"));
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "next_after"));
    cJSON_Delete(j);

    /* More than limit newer: each page is the oldest `limit` of them,
     * newest first, and next_after (its newest id) walks forward until
     * null. A full last page has next_after null too. */
    snprintf(path, sizeof(path), "/api/v1/feed?limit=2&after=%s", ids[0]);
    after_fields(feed_expect(a, path, (char *[]){ids[2], ids[1]}, 2), true, ids[2], NULL);
    snprintf(path, sizeof(path), "/api/v1/feed?limit=2&after=%s", ids[2]);
    after_fields(feed_expect(a, path, (char *[]){ids[4], ids[3]}, 2), true, ids[4], NULL);
    snprintf(path, sizeof(path), "/api/v1/feed?limit=2&after=%s", ids[4]);
    after_fields(feed_expect(a, path, (char *[]){ids[6], ids[5]}, 2), true, NULL, NULL);
    snprintf(path, sizeof(path), "/api/v1/feed?after=%s&limit=4", ids[0]);
    after_fields(feed_expect(a, path, (char *[]){ids[4], ids[3], ids[2], ids[1]}, 4), true, ids[4],
                 NULL);
    snprintf(path, sizeof(path), "/api/v1/feed?after=%s&limit=4", ids[4]);
    after_fields(feed_expect(a, path, (char *[]){ids[6], ids[5]}, 2), true, NULL, NULL);

    /* A cursor not in the feed: the newest page, after_found false, and
     * next_before as without a cursor, to page back over the gap. */
    after_fields(feed_expect(a, "/api/v1/feed?after=nosuchpost&limit=3",
                             (char *[]){ids[6], ids[5], ids[4]}, 3),
                 false, NULL, ids[4]);
    snprintf(path, sizeof(path), "/api/v1/feed?limit=3&before=%s", ids[4]);
    cJSON_Delete(feed_expect(a, path, (char *[]){ids[3], ids[2], ids[1]}, 3));

    /* Refused: not an id, too long to be one, too long to hold, a bad
     * limit with it, and together with before (an empty before is none). */
    refused(400, "bad_request", "GET", "/api/v1/feed?after=a%2Fb", a, NULL);
    refused(400, "bad_request", "GET", "/api/v1/feed?after=a.b", a, NULL);
    memset(big, 'x', sizeof(big));
    snprintf(path, sizeof(path), "/api/v1/feed?after=%.65s", big);
    refused(400, "bad_request", "GET", path, a, NULL);
    snprintf(path, sizeof(path), "/api/v1/feed?after=%.90s", big);
    refused(400, "bad_request", "GET", path, a, NULL);
    snprintf(path, sizeof(path), "/api/v1/feed?after=%s&limit=0", ids[1]);
    refused(400, "bad_request", "GET", path, a, NULL);
    snprintf(path, sizeof(path), "/api/v1/feed?after=%s&before=%s", ids[1], ids[5]);
    refused(400, "bad_request", "GET", path, a, NULL);
    snprintf(path, sizeof(path), "/api/v1/feed?before=%s&after=nosuchpost", ids[5]);
    refused(400, "bad_request", "GET", path, a, NULL);
    snprintf(path, sizeof(path), "/api/v1/feed?before=&after=%s", ids[5]);
    after_fields(feed_expect(a, path, (char *[]){ids[6]}, 1), true, NULL, NULL);

    /* A post that arrives later is what the next catch-up gets. */
    ids[7] = post(a, "a7");
    assert_true(feed_has(a, ids[7], true));
    snprintf(path, sizeof(path), "/api/v1/feed?after=%s", ids[6]);
    after_fields(feed_expect(a, path, (char *[]){ids[7]}, 1), true, NULL, NULL);

    /* A deleted post leaves the feed, but as a cursor it keeps its place
     * (gone:<id>); the pages above others skip it. */
    snprintf(path, sizeof(path), "/api/v1/posts/%s", ids[5]);
    cJSON_Delete(call(200, "DELETE", path, a, NULL));
    assert_true(feed_has(a, ids[5], false));
    snprintf(path, sizeof(path), "/api/v1/feed?after=%s", ids[5]);
    after_fields(feed_expect(a, path, (char *[]){ids[7], ids[6]}, 2), true, NULL, NULL);
    snprintf(path, sizeof(path), "/api/v1/feed?limit=2&before=%s", ids[5]);
    cJSON_Delete(feed_expect(a, path, (char *[]){ids[4], ids[3]}, 2));
    snprintf(path, sizeof(path), "/api/v1/feed?after=%s", ids[4]);
    after_fields(feed_expect(a, path, (char *[]){ids[7], ids[6]}, 2), true, NULL, NULL);
    /* An id still listed whose body is gone keeps its place as a cursor. */
    r = ft_redis_connect(env.b.p.redis.port);
    assert_int_equal(ft_redis_int(r, "DEL post:%s", ids[3]), 1);
    snprintf(path, sizeof(path), "/api/v1/feed?after=%s", ids[3]);
    after_fields(feed_expect(a, path, (char *[]){ids[7], ids[6], ids[4]}, 3), true, NULL, NULL);
    /* Taken out of the feed by hand (the newest three entries remain;
     * the feed far from its cap, so nothing above was trimmed): the
     * cursor's place is still known from its marker. An id with no
     * marker either is unknown: the newest page, after_found false. */
    assert_int_equal(ft_redis_int(r, "ZREMRANGEBYRANK feed:faa 0 -4"), 4);
    snprintf(path, sizeof(path), "/api/v1/feed?after=%s&limit=2", ids[2]);
    after_fields(feed_expect(a, path, (char *[]){ids[6], ids[4]}, 2), true, ids[6], NULL);
    assert_int_equal(ft_redis_int(r, "DEL fanout:%s", ids[2]), 1);
    after_fields(feed_expect(a, path, (char *[]){ids[7], ids[6]}, 2), false, NULL, ids[6]);
    redisFree(r);
    snprintf(path, sizeof(path), "/api/v1/feed?after=%s", ids[4]);
    after_fields(feed_expect(a, path, (char *[]){ids[7], ids[6]}, 2), true, NULL, NULL);
    for (i = 0; i < 8; i++)
        free(ids[i]);
    free(a);
}

static void test_delete(void **state)
{
    char *a = token("da"), *b = token("db"), *id, path[128];
    cJSON *j;

    (void)state;
    follow(b, "da");
    assert_true(following(b, "da", true));
    id = post(a, "soon gone");
    assert_true(feed_has(b, id, true));
    snprintf(path, sizeof(path), "/api/v1/posts/%s", id);
    refused(403, "forbidden", "DELETE", path, b, NULL);
    refused(404, "not_found", "DELETE", "/api/v1/posts/nosuchpost", a, NULL);
    refused(400, "bad_request", "DELETE", "/api/v1/posts/bad.id", a, NULL);
    refused(401, "unauthorized", "DELETE", path, NULL, NULL);
    j = call(200, "DELETE", path, a, NULL);
    assert_string_equal(str(j, "post_id"), id);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "deleted")));
    cJSON_Delete(j);
    assert_true(feed_has(b, id, false));
    assert_true(feed_has(a, id, false));
    /* Once the bridge applied it, the post is gone for the API too: a
     * delete sent again (after a 503 whose event went through) is told
     * so, by author and others alike, not "no such post". */
    refused(410, "gone", "DELETE", path, a, NULL);
    refused(410, "gone", "DELETE", path, b, NULL);
    free(id);
    free(a);
    free(b);
}

/* Restarts node 1's bridge with FEEDPUSH_PULL_THRESHOLD = value (NULL:
 * the default). */
static void bridge_pull_threshold(const char *value)
{
    if (value != NULL)
        setenv("FEEDPUSH_PULL_THRESHOLD", value, 1);
    else
        unsetenv("FEEDPUSH_PULL_THRESHOLD");
    assert_int_equal(ft_node_bridge_signal(&env.b, 1, SIGTERM, 5000), 0);
    assert_int_equal(ft_node_bridge_start(&env.b, 1), 0);
}

/*
 * Hybrid push/pull through the API: the bridge runs with pull_threshold
 * 2, so "ps" (3 followers) is a pull author and "pp" (1) is not. Each of
 * pq1's pages merges both in posting order, across before/after cursors;
 * a deleted post of ps leaves every page; ps's posts never enter the
 * followers' own feeds.
 */
static void test_pull_feed(void **state)
{
    char *s = token("ps"), *p = token("pp"), *q1 = token("pq1"), *q2 = token("pq2");
    char *q3 = token("pq3"), *ids[5], path[192];
    redisContext *r = ft_redis_connect(env.b.p.redis.port);
    int i;

    (void)state;
    bridge_pull_threshold("2");
    follow(q1, "ps");
    follow(q2, "ps");
    follow(q3, "ps");
    follow(q1, "pp");
    assert_true(following(q3, "ps", true));
    assert_true(following(q1, "pp", true));
    for (i = 0; i < 5; i++) {
        char text[16];

        snprintf(text, sizeof(text), "m%d", i);
        ids[i] = post(i % 2 == 0 ? s : p, text);
        /* One at a time: the order of the sequence numbers is the order
         * the bridge applies them. */
        assert_true(feed_has(q1, ids[i], true));
    }
    assert_int_equal(ft_redis_int(r, "ZCARD posts:ps"), 3);
    /* Only pp's two posts were pushed into pq1's feed; pq2's has none. */
    assert_int_equal(ft_redis_int(r, "ZCARD feed:pq1"), 2);
    assert_int_equal(ft_redis_int(r, "EXISTS feed:pq2"), 0);
    cJSON_Delete(
        feed_expect(q1, "/api/v1/feed", (char *[]){ids[4], ids[3], ids[2], ids[1], ids[0]}, 5));
    cJSON_Delete(feed_expect(q2, "/api/v1/feed", (char *[]){ids[4], ids[2], ids[0]}, 3));
    snprintf(path, sizeof(path), "/api/v1/feed?limit=2&before=%s", ids[4]);
    cJSON_Delete(feed_expect(q1, path, (char *[]){ids[3], ids[2]}, 2));
    snprintf(path, sizeof(path), "/api/v1/feed?limit=2&before=%s", ids[2]);
    cJSON_Delete(feed_expect(q1, path, (char *[]){ids[1], ids[0]}, 2));
    snprintf(path, sizeof(path), "/api/v1/feed?limit=2&after=%s", ids[0]);
    after_fields(feed_expect(q1, path, (char *[]){ids[2], ids[1]}, 2), true, ids[2], NULL);

    /* The delete of a pulled post, by its author. */
    snprintf(path, sizeof(path), "/api/v1/posts/%s", ids[2]);
    cJSON_Delete(call(200, "DELETE", path, s, NULL));
    assert_true(feed_has(q1, ids[2], false));
    assert_true(feed_has(q2, ids[2], false));
    assert_true(feed_has(s, ids[2], false));
    cJSON_Delete(feed_expect(q1, "/api/v1/feed", (char *[]){ids[4], ids[3], ids[1], ids[0]}, 4));
    snprintf(path, sizeof(path), "/api/v1/feed?limit=1&before=%s", ids[3]);
    cJSON_Delete(feed_expect(q1, path, (char *[]){ids[1]}, 1));
    assert_int_equal(ft_redis_int(r, "ZCARD posts:ps"), 2);

    redisFree(r);
    bridge_pull_threshold(NULL);
    for (i = 0; i < 5; i++)
        free(ids[i]);
    free(s);
    free(p);
    free(q1);
    free(q2);
    free(q3);
}

/* True when the ribbon (GET) holds an entry of uid with text. */
static bool ribbon_has(const char *tok, const char *uid, const char *text)
{
    cJSON *j, *e;
    bool has = false;
    int i;

    for (i = 0; i < 100 && !has; i++) {
        j = call(200, "GET", "/api/v1/ribbon", tok, NULL);
        assert_string_equal(str(j, "type"), "ribbon");
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "entries"))
        {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "text");

            has = has || (strcmp(str(e, "user_id"), uid) == 0 && cJSON_IsString(t) &&
                          strcmp(t->valuestring, text) == 0);
        }
        cJSON_Delete(j);
        if (!has)
            usleep(50000);
    }
    return has;
}

static void test_ribbon(void **state)
{
    char *a = token("ra"), big[700];
    cJSON *j, *e;

    (void)state;
    j = call(202, "POST", "/api/v1/ribbon", a, "{\"text\":\"look at me\",\"name\":\"Ra\"}");
    e = cJSON_GetObjectItemCaseSensitive(j, "entry");
    assert_string_equal(str(e, "user_id"), "ra");
    assert_string_equal(str(e, "name"), "Ra");
    assert_string_equal(str(e, "text"), "look at me");
    cJSON_Delete(j);
    assert_true(ribbon_has(a, "ra", "look at me"));
    /* An empty body pushes the user without text. */
    cJSON_Delete(call(202, "POST", "/api/v1/ribbon", a, NULL));

    memset(big, 'y', sizeof(big));
    memcpy(big, "{\"text\":\"", 9);
    snprintf(big + 9 + 513, sizeof(big) - 9 - 513, "\"}");
    refused(400, "bad_request", "POST", "/api/v1/ribbon", a, big);
    refused(400, "bad_request", "POST", "/api/v1/ribbon", a, "{\"name\":7}");
    refused(400, "bad_request", "POST", "/api/v1/ribbon", a, "{\"text\":[]}");
    refused(400, "bad_request", "POST", "/api/v1/ribbon", a, "not json");
    refused(401, "unauthorized", "GET", "/api/v1/ribbon", NULL, NULL);
    refused(405, "method_not_allowed", "DELETE", "/api/v1/ribbon", a, NULL);
    free(a);
}

/* out in lower case (header names and values compared as such). */
static void lower(char *out)
{
    for (; *out != '\0'; out++)
        *out = (char)tolower((unsigned char)*out);
}

/* Garbage on the wire: the gateway answers what it can, drops the rest and
 * keeps serving. */
/* A raw POST /api/v1/posts with that Content-Length and no body: the
 * answer into out. */
static void post_length(const char *tok, const char *length, char *out, size_t cap)
{
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "POST /api/v1/posts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Content-Length: %s\r\n\r\n",
                     tok, length);

    ft_http_raw(&env, req, (size_t)n, out, cap, 2000);
}

/* GET /healthz with that Connection header: the answer says close and
 * the gateway closes (well before the 10 s this read would otherwise
 * wait). */
static void expect_close(const char *connection)
{
    char req[512], out[4096];
    int64_t t0 = fp_time_mono_ms();
    int n = snprintf(req, sizeof(req), "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: %s\r\n\r\n",
                     connection);

    ft_http_raw(&env, req, (size_t)n, out, sizeof(out), 10000);
    assert_non_null(strstr(out, "HTTP/1.1 200 "));
    lower(out);
    assert_non_null(strstr(out, "connection: close"));
    assert_true(fp_time_mono_ms() - t0 < 5000);
}

/*
 * Raw requests that the HTTP layer must refuse with 400 (and close), and
 * Connection: close honoured. Known gaps, in libwebsockets 4.1's parser
 * before any of our code runs: %0d or %0a in the path ends its request
 * line there (the rest is lost and the request is taken as HTTP/1.0), %00
 * drops the connection; bytes after the headers that it does not count as
 * the body are parsed as a pipelined request, and a malformed one drops
 * the connection, so the bad lengths below go without a body.
 */
static void test_http_strict(void **state)
{
    static const char *const bad_lengths[] = {"12abc", "-1", "+5", "5 5", "0x10"};
    /* Plain digits past any max_body_bytes, however many: 413. */
    static const char *const big_lengths[] = {
        "9999999999999999999", "000000000000000000000000070000", "123456789012345678901234567890"};
    /* A 15-byte body: with its length in 30 characters, libwebsockets
     * reads it as the gateway does (201); in 31 it would ignore the
     * header and wait for 100 MiB of body (a 408 after body_timeout_ms),
     * so the gateway refuses it at once. */
    static const char body15[] = "{\"text\":\"abcd\"}";
    /* Without the check these would be 404s (no such route). */
    static const char *const bad_paths[] = {"/api/v1/feed%01", "/healthz%09", "/api/v1/follows%1f",
                                            "/api/v1/feed%7f"};
    char *tok = token("hs"), req[1024], out[4096];
    size_t i;
    int n;

    (void)state;
    for (i = 0; i < sizeof(bad_lengths) / sizeof(bad_lengths[0]); i++) {
        post_length(tok, bad_lengths[i], out, sizeof(out));
        /* The header's own refusal (an empty body would be a 400 too). */
        if (strstr(out, "HTTP/1.1 400 ") == NULL || strstr(out, "not a decimal number") == NULL)
            fail_msg("Content-Length \"%s\": no 400 but: %.80s", bad_lengths[i], out);
    }
    for (i = 0; i < sizeof(big_lengths) / sizeof(big_lengths[0]); i++) {
        post_length(tok, big_lengths[i], out, sizeof(out));
        if (strstr(out, "HTTP/1.1 413 ") == NULL)
            fail_msg("Content-Length \"%s\": no 413 but: %.80s", big_lengths[i], out);
    }
    for (i = 30; i <= 31; i++) {
        n = snprintf(req, sizeof(req),
                     "POST /api/v1/posts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Content-Length: %0*d\r\n\r\n%s",
                     tok, (int)i, (int)strlen(body15), body15);
        ft_http_raw(&env, req, (size_t)n, out, sizeof(out), 2000);
        if (i == 30 && strstr(out, "HTTP/1.1 201 ") == NULL)
            fail_msg("Content-Length in 30 characters: no 201 but: %.80s", out);
        if (i == 31 &&
            (strstr(out, "HTTP/1.1 400 ") == NULL || strstr(out, "longer than 30") == NULL))
            fail_msg("Content-Length in 31 characters: no 400 but: %.80s", out);
    }
    for (i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
        n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
                     bad_paths[i], tok);
        ft_http_raw(&env, req, (size_t)n, out, sizeof(out), 2000);
        if (strstr(out, "HTTP/1.1 400 ") == NULL)
            fail_msg("path %s: no 400 but: %.80s", bad_paths[i], out);
    }
    /* Nobody was followed by those. */
    assert_int_equal(array_size("/api/v1/follows", tok, "following"), 0);
    expect_close("Close");
    /* "close" among other tokens, in a header over 64 bytes. */
    expect_close("TE, Keep-Alive, X-A-Rather-Long-Hop-By-Hop-Header-Name, X-Another-One, close");
    free(tok);
}

/* The ids of a feed answer's posts in order, comma-joined, into buf. */
static void page_ids(const char *answer, char *buf, size_t len)
{
    const char *body = strstr(answer, "\r\n\r\n");
    cJSON *j = body != NULL ? cJSON_Parse(body + 4) : NULL, *p;
    size_t used = 0;

    buf[0] = '\0';
    if (j == NULL)
        fail_msg("not a JSON answer: %.300s", answer);
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(j, "posts"))
    {
        used += (size_t)snprintf(buf + used, len - used, "%s%s", used > 0 ? "," : "", str(p, "id"));
        if (used >= len)
            fail_msg("too many posts");
    }
    cJSON_Delete(j);
}

/*
 * Requests at HTTP/1.1's edges, each on a connection of its own:
 * - a PUT without Content-Length has no body: it is carried out and
 *   answered with Connection: close, and the connection closed at once
 *   (lws would take a request behind it as the body that never came);
 * - a HEAD's answer is its headers alone, so the request behind it is
 *   answered right after them, in step;
 * - empty query arguments ("&&") and a long unknown one hide neither
 *   limit nor before: each page is the one asked for.
 */
static void test_http_edges(void **state)
{
    char *tok = token("he"), req[4096], out[16384], pad[401], want[256], got[256];
    char *ids[3];
    const char *second;
    int64_t t0;
    int i, n;

    (void)state;
    n = snprintf(req, sizeof(req),
                 "PUT /api/v1/follows/hf HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                 "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                 tok);
    t0 = fp_time_mono_ms();
    ft_http_raw(&env, req, (size_t)n, out, sizeof(out), 10000);
    if (strncmp(out, "HTTP/1.1 200 ", 13) != 0)
        fail_msg("PUT without Content-Length: %.300s", out);
    lower(out);
    assert_non_null(strstr(out, "connection: close"));
    assert_null(strstr(out + 1, "http/1.1 ")); /* one answer, then closed */
    assert_true(fp_time_mono_ms() - t0 < 5000);
    assert_true(following(tok, "hf", true));

    n = snprintf(req, sizeof(req),
                 "HEAD /api/v1/feed HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                 "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 tok);
    ft_http_raw(&env, req, (size_t)n, out, sizeof(out), 10000);
    second = strstr(out, "\r\n\r\n");
    if (strncmp(out, "HTTP/1.1 405 ", 13) != 0 || second == NULL ||
        strncmp(second + 4, "HTTP/1.1 200 ", 13) != 0 ||
        strstr(second, "\"status\":\"ok\"") == NULL)
        fail_msg("HEAD then GET on one connection: %.600s", out);

    for (i = 0; i < 3; i++) {
        char text[8];

        snprintf(text, sizeof(text), "e%d", i);
        ids[i] = post(tok, text);
    }
    /* All three in the feed: the pages below start from the last. */
    for (i = 0; i < 3; i++)
        assert_true(feed_has(tok, ids[i], true));
    memset(pad, 'z', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    n = snprintf(req, sizeof(req),
                 "GET /api/v1/feed?&limit=1&&before=%s&x=%s HTTP/1.1\r\nHost: x\r\n"
                 "Authorization: Bearer %s\r\nConnection: close\r\n\r\n",
                 ids[2], pad, tok);
    ft_http_raw(&env, req, (size_t)n, out, sizeof(out), 10000);
    if (strncmp(out, "HTTP/1.1 200 ", 13) != 0)
        fail_msg("empty and long query arguments: %.300s", out);
    page_ids(out, got, sizeof(got));
    assert_string_equal(got, ids[1]);
    n = snprintf(req, sizeof(req),
                 "GET /api/v1/feed?x=%s&&after=%s HTTP/1.1\r\nHost: x\r\n"
                 "Authorization: Bearer %s\r\nConnection: close\r\n\r\n",
                 pad, ids[0], tok);
    ft_http_raw(&env, req, (size_t)n, out, sizeof(out), 10000);
    page_ids(out, got, sizeof(got));
    snprintf(want, sizeof(want), "%s,%s", ids[2], ids[1]);
    assert_string_equal(got, want);
    for (i = 0; i < 3; i++)
        free(ids[i]);
    free(tok);
}

static void test_garbage(void **state)
{
    static const char binary[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\xff";
    static const char huge_length[] = "POST /api/v1/posts HTTP/1.1\r\nHost: x\r\n"
                                      "Content-Length: 99999999\r\n\r\n{";
    static const char chunked[] = "POST /api/v1/posts HTTP/1.1\r\nHost: x\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    char *a = token("ga"), out[4096], *big, *hdr;
    ft_http_reply r;
    size_t n = 70000;
    int i;

    (void)state;
    big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'z', n);
    memcpy(big, "{\"text\":\"", 9);
    memcpy(big + n - 2, "\"}", 3);
    refused(413, "payload_too_large", "POST", "/api/v1/posts", a, big);
    free(big);

    /* A Content-Length far beyond the limit is refused before the body. */
    ft_http_raw(&env, huge_length, sizeof(huge_length) - 1, out, sizeof(out), 2000);
    assert_non_null(strstr(out, " 413 "));
    /* A chunked body is refused (411). */
    ft_http_raw(&env, chunked, sizeof(chunked) - 1, out, sizeof(out), 2000);
    assert_non_null(strstr(out, " 411 "));
    ft_http_raw(&env, "GARBAGE\r\n\r\n", 11, out, sizeof(out), 1000);
    ft_http_raw(&env, binary, sizeof(binary) - 1, out, sizeof(out), 1000);
    ft_http_raw(&env, "GET /api/v1/feed HTTP/1.1\r\nHost:", 32, out, sizeof(out), 300);
    ft_http_raw(&env, "", 0, out, sizeof(out), 100);
    /* A header far beyond the header space. */
    hdr = malloc(70000);
    assert_non_null(hdr);
    n = (size_t)snprintf(hdr, 70000, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(hdr + n, 'h', 60000);
    memcpy(hdr + n + 60000, "\r\n\r\n", 4);
    ft_http_raw(&env, hdr, n + 60004, out, sizeof(out), 2000);
    assert_null(strstr(out, " 200 "));
    free(hdr);
    /* An oversized Authorization header is a refused token, not a crash. */
    hdr = malloc(20000);
    assert_non_null(hdr);
    memset(hdr, 'a', 12000);
    hdr[12000] = '\0';
    assert_true(ft_http(&env, "GET", "/api/v1/feed", hdr, NULL, NULL) >= 400);
    free(hdr);
    /* A path longer than any route. */
    hdr = malloc(700);
    assert_non_null(hdr);
    memcpy(hdr, "/api/v1/posts/", 14);
    memset(hdr + 14, 'p', 600);
    hdr[614] = '\0';
    refused(414, "uri_too_long", "DELETE", hdr, a, NULL);
    free(hdr);
    /* Unknown routes; methods a route does not take (Allow says which). */
    refused(404, "not_found", "GET", "/api/v1/nope", a, NULL);
    refused(404, "not_found", "GET", "/nothing-here", NULL, NULL);
    assert_int_equal(ft_http(&env, "PATCH", "/api/v1/posts", a, "{}", &r), 405);
    assert_string_equal(r.allow, "POST");
    ft_http_reply_free(&r);
    assert_int_equal(ft_http(&env, "DELETE", "/api/v1/follows", a, NULL, &r), 405);
    assert_string_equal(r.allow, "GET");
    ft_http_reply_free(&r);

    /* Still serving, and the same connection logic works many times. */
    for (i = 0; i < 50; i++)
        assert_int_equal(ft_http(&env, "GET", "/healthz", NULL, NULL, NULL), 200);
    assert_true(ft_gateway_alive(&env));
    free(a);
}

static void test_static_client(void **state)
{
    ft_http_reply r;

    (void)state;
    assert_int_equal(ft_http(&env, "GET", "/", NULL, NULL, &r), 200);
    assert_non_null(strstr(r.content_type, "text/html"));
    assert_non_null(strstr(r.body, "/vendor/mqtt.min.js"));
    ft_http_reply_free(&r);
    assert_int_equal(ft_http(&env, "GET", "/vendor/mqtt.min.js", NULL, NULL, &r), 200);
    assert_true(r.len > 100000);
    ft_http_reply_free(&r);
    assert_int_equal(ft_http(&env, "GET", "/app.js", NULL, NULL, NULL), 200);
    assert_int_equal(ft_http(&env, "GET", "/no-such-file.js", NULL, NULL, NULL), 404);
    assert_true(ft_http(&env, "GET", "/../../../../etc/passwd", NULL, NULL, &r) != 200 ||
                strstr(r.body, "root:") == NULL);
    ft_http_reply_free(&r);
}

/*
 * Fails unless each family of bridge samples (feedpush_bridge_*) in body
 * is one run of lines, as the text format asks: a name seen again after
 * another one began is reported.
 */
static void assert_bridge_families_whole(const char *body)
{
    char done[64][96], cur[96] = "";
    const char *line, *end;
    size_t n_done = 0, i, len;

    for (line = body; *line != '\0'; line = *end != '\0' ? end + 1 : end) {
        end = strchr(line, '\n');
        if (end == NULL)
            end = line + strlen(line);
        if (strncmp(line, "feedpush_bridge_", 16) != 0)
            continue;
        len = strcspn(line, "{ ");
        assert_true(len < sizeof(cur));
        if (strlen(cur) == len && strncmp(cur, line, len) == 0)
            continue;
        for (i = 0; i < n_done; i++)
            if (strlen(done[i]) == len && strncmp(done[i], line, len) == 0)
                fail_msg("the samples of %s are not together: %.*s", done[i], (int)(end - line),
                         line);
        if (cur[0] != '\0') {
            assert_true(n_done < 64);
            memcpy(done[n_done++], cur, sizeof(cur));
        }
        memcpy(cur, line, len);
        cur[len] = '\0';
    }
}

static void test_metrics(void **state)
{
    redisContext *rc = ft_redis_connect(env.b.p.redis.port);
    ft_http_reply r;

    (void)state;
    ft_node_stat_wait(&env.b, 1, "events_post_created", 1, 4000);
    /* A second bridge's counters (its heartbeat too, so routing keeps it
     * in `nodes` meanwhile). */
    ft_redis_ok(rc, "SET node:nz 1 EX 60");
    assert_true(ft_redis_int(rc, "SADD nodes nz") >= 0);
    assert_int_equal(
        ft_redis_int(rc, "HSET stats:bridge:nz events_post_created 5 deliveries 7 stage1_us_max 9"),
        3);
    assert_int_equal(ft_http(&env, "GET", "/metrics", NULL, NULL, &r), 200);
    assert_non_null(strstr(r.content_type, "text/plain"));
    assert_non_null(strstr(r.body, "# TYPE feedpush_gateway_requests_total counter\n"));
    assert_non_null(strstr(r.body, "feedpush_gateway_requests_total{route=\"/api/v1/posts\","
                                   "method=\"POST\",status=\"201\"}"));
    assert_non_null(strstr(r.body, "feedpush_gateway_requests_total{route=\"/api/v1/posts\","
                                   "method=\"POST\",status=\"413\"}"));
    assert_non_null(strstr(r.body, "route=\"/api/v1/posts/{id}\",method=\"DELETE\","
                                   "status=\"403\"}"));
    assert_non_null(strstr(r.body, "# TYPE feedpush_gateway_request_duration_seconds histogram"));
    assert_non_null(strstr(r.body, "feedpush_gateway_request_duration_seconds_bucket{route=\"/api/"
                                   "v1/feed\",le=\"+Inf\"}"));
    assert_non_null(strstr(r.body, "feedpush_gateway_request_duration_seconds_count{route=\"/api/"
                                   "v1/feed\"}"));
    assert_non_null(strstr(r.body, "feedpush_bridge_up 1\n"));
    assert_non_null(strstr(r.body, "# TYPE feedpush_bridge_deliveries_total counter\n"));
    assert_non_null(strstr(r.body, "feedpush_bridge_events_post_created_total{node=\"n1\"} "));
    assert_null(strstr(r.body, "feedpush_bridge_events_post_created_total{node=\"n1\"} 0\n"));
    assert_non_null(strstr(r.body, "# TYPE feedpush_bridge_stage1_us_max gauge\n"));
    assert_non_null(strstr(r.body, "feedpush_bridge_events_post_created_total{node=\"nz\"} 5\n"));
    assert_non_null(strstr(r.body, "feedpush_bridge_stage1_us_max{node=\"nz\"} 9\n"));
    assert_bridge_families_whole(r.body);
    ft_http_reply_free(&r);
    redisFree(rc);
}

/* test_metrics's second node goes, also after a failure. */
static int metrics_cleanup(void **state)
{
    redisContext *rc = ft_redis_connect(env.b.p.redis.port);

    (void)state;
    freeReplyObject(ft_redis_cmd(rc, "SREM nodes nz"));
    freeReplyObject(ft_redis_cmd(rc, "DEL node:nz stats:bridge:nz"));
    redisFree(rc);
    return 0;
}

/*
 * Requests nobody authenticated cannot crowd series out of /metrics:
 * after 11 paths x 4 methods x 3 refusals made before any route runs
 * (411, 413, 400: more than the 128 series the table once held), a
 * series never seen before still shows, and so do the refusals.
 */
static void test_metrics_not_crowded(void **state)
{
    static const char *const paths[] = {"/api/v1/config",  "/api/v1/dev/token", "/api/v1/posts",
                                        "/api/v1/posts/x", "/api/v1/follows",   "/api/v1/follows/x",
                                        "/api/v1/feed",    "/api/v1/ribbon",    "/healthz",
                                        "/api/v1/stats",   "/nowhere"};
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE"};
    static const char *const lengths[] = {"Transfer-Encoding: chunked", "Content-Length: 99999999",
                                          "Content-Length: 1x"};
    char req[512], out[2048], *tok;
    ft_http_reply r;
    size_t i, j, k;
    int n;

    (void)state;
    assert_int_equal(ft_gateway_start(&env), 0); /* counters from zero */
    tok = token("mc");
    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        for (j = 0; j < sizeof(methods) / sizeof(methods[0]); j++) {
            for (k = 0; k < sizeof(lengths) / sizeof(lengths[0]); k++) {
                n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n",
                             methods[j], paths[i], lengths[k]);
                ft_http_raw(&env, req, (size_t)n, out, sizeof(out), 2000);
            }
        }
    }
    assert_int_equal(ft_http(&env, "GET", "/api/v1/ribbon", tok, NULL, NULL), 200);
    free(tok);
    assert_int_equal(ft_http(&env, "GET", "/metrics", NULL, NULL, &r), 200);
    assert_non_null(strstr(r.body, "feedpush_gateway_requests_total{route=\"/api/v1/ribbon\","
                                   "method=\"GET\",status=\"200\"} 1\n"));
    assert_non_null(strstr(r.body, "feedpush_gateway_requests_total{route=\"/api/v1/follows/{id}\","
                                   "method=\"DELETE\",status=\"400\"} 1\n"));
    assert_non_null(strstr(r.body, "feedpush_gateway_requests_overflow_total 0\n"));
    ft_http_reply_free(&r);
}

/* GET /api/v1/stats: the same bridge counters as JSON, per node. */
static void test_stats(void **state)
{
    const cJSON *nodes, *n1, *v;
    cJSON *j;

    (void)state;
    ft_node_stat_wait(&env.b, 1, "events_post_created", 1, 4000);
    j = call(200, "GET", "/api/v1/stats", NULL, NULL);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "bridges_up")));
    nodes = cJSON_GetObjectItemCaseSensitive(j, "nodes");
    assert_true(cJSON_IsObject(nodes));
    n1 = cJSON_GetObjectItemCaseSensitive(nodes, "n1");
    assert_true(cJSON_IsObject(n1));
    v = cJSON_GetObjectItemCaseSensitive(n1, "events_post_created");
    assert_true(cJSON_IsNumber(v) && v->valuedouble >= 1);
    v = cJSON_GetObjectItemCaseSensitive(n1, "deliveries");
    assert_true(cJSON_IsNumber(v));
    v = cJSON_GetObjectItemCaseSensitive(n1, "updated_ms");
    assert_true(cJSON_IsNumber(v) && v->valuedouble > 1.7e12);
    v = cJSON_GetObjectItemCaseSensitive(j, "gateway_requests_total");
    assert_true(cJSON_IsNumber(v) && v->valuedouble >= 1);
    cJSON_Delete(j);
    refused(405, "method_not_allowed", "POST", "/api/v1/stats", NULL, "{}");
}

/* GET path once it answers status, within 4 s (the health loop looks
 * once a second). Returns the body. */
static cJSON *get_until(long status, const char *path, const char *tok)
{
    int i;

    for (i = 0; i < 40 && ft_http(&env, "GET", path, tok, NULL, NULL) != status; i++)
        usleep(100000);
    return call(status, "GET", path, tok, NULL);
}

/* Redis down: 503 for what needs it, /healthz says which; back when it is. */
static void test_redis_outage(void **state)
{
    char *a = token("oa");
    cJSON *j;

    (void)state;
    cJSON_Delete(call(200, "GET", "/healthz", NULL, NULL));
    assert_int_equal(ft_server_stop(&env.b.p.redis), 0);
    j = get_until(503, "/healthz", NULL);
    assert_string_equal(str(j, "status"), "down");
    assert_string_equal(str(j, "redis"), "down");
    assert_string_equal(str(j, "rabbitmq"), "ok");
    cJSON_Delete(j);
    refused(503, "unavailable", "GET", "/api/v1/feed", a, NULL);
    refused(503, "unavailable", "GET", "/api/v1/ribbon", a, NULL);
    /* Routes that need no Redis still work. */
    cJSON_Delete(call(200, "GET", "/api/v1/config", NULL, NULL));
    assert_int_equal(ft_http(&env, "GET", "/metrics", NULL, NULL, NULL), 200);
    j = call(200, "GET", "/api/v1/stats", NULL, NULL);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "bridges_up")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "nodes")), 0);
    cJSON_Delete(j);
    assert_int_equal(ft_server_restart(&env.b.p.redis), 0);
    cJSON_Delete(get_until(200, "/healthz", NULL));
    /* Once the health loop has seen Redis back, every worker retries at once. */
    cJSON_Delete(call(200, "GET", "/api/v1/feed", a, NULL));
    free(a);
}

/* Makes the stack's Redis a primary that serves again (also the teardown
 * of test_redis_refusing_is_503, so a failure there leaves no replica
 * behind for the tests after it). */
static int redis_serving(void **state)
{
    redisContext *rc = ft_redis_connect(env.b.p.redis.port);

    (void)state;
    ft_redis_ok(rc, "REPLICAOF NO ONE");
    ft_redis_ok(rc, "CONFIG SET replica-serve-stale-data yes");
    redisFree(rc);
    return 0;
}

/*
 * Redis up but refusing for a while (here MASTERDOWN: made a replica of a
 * dead port with replica-serve-stale-data off): 503, not 500, from the
 * revocation check of a route with full auth (bb, not yet cached) and
 * from the reads (ba, whose revocation state is cached); 200 again once
 * Redis serves.
 */
static void test_redis_refusing_is_503(void **state)
{
    char *a = token("ba"), *b = token("bb");
    redisContext *rc = ft_redis_connect(env.b.p.redis.port);
    redisReply *r;

    (void)state;
    cJSON_Delete(call(200, "GET", "/api/v1/ribbon", a, NULL));
    ft_redis_ok(rc, "CONFIG SET replica-serve-stale-data no");
    ft_redis_ok(rc, "REPLICAOF 127.0.0.1 1");
    r = redisCommand(rc, "GET feedpush-test");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_int_equal(strncmp(r->str, "MASTERDOWN", 10), 0);
    freeReplyObject(r);
    refused(503, "unavailable", "GET", "/api/v1/ribbon", b, NULL);
    refused(503, "unavailable", "GET", "/api/v1/ribbon", a, NULL);
    refused(503, "unavailable", "GET", "/api/v1/feed", a, NULL);
    refused(503, "unavailable", "GET", "/api/v1/follows", a, NULL);
    redis_serving(NULL);
    cJSON_Delete(call(200, "GET", "/api/v1/ribbon", b, NULL));
    redisFree(rc);
    free(a);
    free(b);
}

/* RabbitMQ unreachable: writes are 503 (nothing is lost silently), reads
 * still work, /healthz names it. */
static void test_rabbitmq_outage(void **state)
{
    char *a = token("qa");
    cJSON *j;

    (void)state;
    env.amqp_port = 1; /* nothing listens there */
    assert_int_equal(ft_gateway_start(&env), 0);
    j = call(503, "GET", "/healthz", NULL, NULL);
    assert_string_equal(str(j, "rabbitmq"), "down");
    assert_string_equal(str(j, "redis"), "ok");
    cJSON_Delete(j);
    refused(503, "unavailable", "POST", "/api/v1/posts", a, "{\"text\":\"lost?\"}");
    refused(503, "unavailable", "PUT", "/api/v1/follows/qb", a, NULL);
    refused(503, "unavailable", "POST", "/api/v1/ribbon", a, NULL);
    cJSON_Delete(call(200, "GET", "/api/v1/feed", a, NULL));
    env.amqp_port = env.b.rabbit.port;
    assert_int_equal(ft_gateway_start(&env), 0);
    /* Until: a first link that missed timeout_ms under load is tried
     * again a second later. */
    cJSON_Delete(get_until(200, "/healthz", NULL));
    free(a);
}

/* A body that is not whole body_timeout_ms after its headers is answered
 * 408 and the connection closed (the timer is not restarted by body
 * bytes, so a trickled body fares the same). */
static void test_body_timeout(void **state)
{
    char *tok = token("bt"), req[1024], out[4096];
    int64_t t0, ms;
    int n;

    (void)state;
    setenv("FEEDPUSH_BODY_TIMEOUT_MS", "500", 1);
    assert_int_equal(ft_gateway_start(&env), 0);
    n = snprintf(req, sizeof(req),
                 "POST /api/v1/posts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                 "Content-Length: 20\r\n\r\n{\"te",
                 tok);
    t0 = fp_time_mono_ms();
    ft_http_raw(&env, req, (size_t)n, out, sizeof(out), 10000);
    ms = fp_time_mono_ms() - t0;
    if (strstr(out, "HTTP/1.1 408 ") == NULL)
        fail_msg("no 408 after %lld ms but: %.80s", (long long)ms, out);
    /* The timer's doing (not before it), and closed (not the 10 s read). */
    assert_true(ms >= 400);
    assert_true(ms < 5000);
    unsetenv("FEEDPUSH_BODY_TIMEOUT_MS");
    assert_int_equal(ft_gateway_start(&env), 0);
    free(tok);
}

/* Requests pipelined in one write are all answered, in order. */
static void test_pipelined(void **state)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /api/v1/nope HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /api/v1/config HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char out[8192];
    const char *a, *b, *c;

    (void)state;
    ft_http_raw(&env, req, sizeof(req) - 1, out, sizeof(out), 5000);
    a = strstr(out, "HTTP/1.1 200 ");
    b = a != NULL ? strstr(a + 1, "HTTP/1.1 404 ") : NULL;
    c = b != NULL ? strstr(b + 1, "HTTP/1.1 200 ") : NULL;
    if (a == NULL || strstr(a, "\"status\":\"ok\"") == NULL || c == NULL ||
        strstr(c, "\"mqtt_ws_urls\"") == NULL)
        fail_msg("three pipelined requests, answers: %.2000s", out);
}

/* An answer far larger than one send (a page of 40 posts of 8,000 bytes,
 * some 320 KB, which the socket may take in pieces) comes whole, with the
 * bytes its Content-Length says, and a request pipelined after it is
 * answered after it. */
static void test_large_answer(void **state)
{
    static const size_t cap = 1024 * 1024;
    char *tok = token("lg"), *text = malloc(8001), *ids[40], req[2048], *out = malloc(cap);
    const char *body, *second, *len_hdr;
    cJSON *j;
    long got, clen;
    int i, n;

    (void)state;
    assert_non_null(text);
    assert_non_null(out);
    memset(text, 'x', 8000);
    text[8000] = '\0';
    for (i = 0; i < 40; i++) {
        text[0] = (char)('a' + i % 26);
        ids[i] = post(tok, text);
    }
    assert_true(feed_has(tok, ids[39], true));
    assert_true(feed_has(tok, ids[0], true));
    n = snprintf(
        req, sizeof(req),
        "GET /api/v1/feed?limit=1000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        tok);
    got = ft_http_raw(&env, req, (size_t)n, out, cap, 10000);
    assert_true(got > 40 * 8000);
    if (strncmp(out, "HTTP/1.1 200 ", 13) != 0 || strstr(out, "\r\n\r\n") == NULL)
        fail_msg("the page's answer begins: %.300s", out);
    len_hdr = strstr(out, "\r\ncontent-length: "); /* lws writes header names in lower case */
    assert_non_null(len_hdr);
    clen = strtol(len_hdr + 18, NULL, 10);
    body = strstr(out, "\r\n\r\n") + 4;
    assert_true(clen > 40 * 8000);
    assert_true(body + clen <= out + got);
    second = body + clen;
    if (strncmp(second, "HTTP/1.1 200 ", 13) != 0 || strstr(second, "\"status\":\"ok\"") == NULL)
        fail_msg("after %ld bytes of the page, the next answer: %.300s", clen, second);
    j = cJSON_ParseWithLength(body, (size_t)clen);
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "posts")), 40);
    assert_int_equal(
        strlen(str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "posts"), 0), "text")),
        8000);
    cJSON_Delete(j);
    for (i = 0; i < 40; i++)
        free(ids[i]);
    free(out);
    free(text);
    free(tok);
}

/*
 * With Connection: close, an answer larger than the socket takes (800
 * posts of 8,192 bytes, some 6.6 MB, over the kernel's 4 MB send buffer)
 * comes whole to a client that reads nothing for 6 s: the gateway closes
 * once lws has sent it all (lws, told to close at once, gives what it
 * still holds 5 s).
 */
static void test_close_slow_reader(void **state)
{
    static const size_t cap = 8 * 1024 * 1024;
    char *tok = token("cs"), *text = malloc(FP_POST_TEXT_MAX + 1), *first = NULL, *id, req[2048];
    char *out = malloc(cap);
    const char *body, *len_hdr;
    redisContext *r;
    long got, clen;
    int i, n;

    (void)state;
    assert_non_null(text);
    assert_non_null(out);
    memset(text, 'y', FP_POST_TEXT_MAX);
    text[FP_POST_TEXT_MAX] = '\0';
    for (i = 0; i < 800; i++) {
        id = post(tok, text);
        if (first == NULL)
            first = id;
        else
            free(id);
    }
    /* All 800 in the feed, asked of Redis: polling the 6.6 MB page itself
     * took more than curl's 10 s under ASan on a busy machine. */
    r = ft_redis_connect(env.b.p.redis.port);
    for (i = 0; i < 400 && ft_redis_int(r, "ZCARD feed:cs") < 800; i++)
        ft_sleep_ms(50);
    assert_int_equal(ft_redis_int(r, "ZCARD feed:cs"), 800);
    redisFree(r);
    assert_true(feed_has(tok, first, true));
    n = snprintf(req, sizeof(req),
                 "GET /api/v1/feed?limit=1000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                 "Connection: close\r\n\r\n",
                 tok);
    got = ft_http_raw_slow(&env, req, (size_t)n, out, cap, 10000, 6000);
    body = strstr(out, "\r\n\r\n");
    len_hdr = strstr(out, "\r\ncontent-length: ");
    if (strncmp(out, "HTTP/1.1 200 ", 13) != 0 || body == NULL || len_hdr == NULL)
        fail_msg("the page's answer to a slow reader begins: %.300s", out);
    clen = strtol(len_hdr + 18, NULL, 10);
    assert_true(clen > 800 * FP_POST_TEXT_MAX);
    if (got != (long)(body + 4 - out) + clen)
        fail_msg("a slow reader got %ld bytes of %ld", got, (long)(body + 4 - out) + clen);
    free(first);
    free(out);
    free(text);
    free(tok);
}

/* The value of an unlabelled series in GET /metrics, -1 when absent. */
static double metric_value(const char *name)
{
    double v = ft_gateway_metric(&env, name);

    if (v < 0)
        fail_msg("no %s on /metrics", name);
    return v;
}

/*
 * send_timeout_ms: a client that does not read its answer does not hold
 * the connection (and the answer's buffered bytes) beyond it. With 1 s,
 * a reader that waits 4 s before reading the 6.6 MB page of
 * test_close_slow_reader's user gets what the sockets held, not all of
 * it, with and without keep-alive; a reader that does not wait gets
 * everything. Then the gateway again with the default (20 s).
 */
static void test_send_timeout(void **state)
{
    static const size_t cap = 8 * 1024 * 1024;
    static const char *const conn[] = {"Connection: close\r\n", ""};
    char *tok = token("cs"), *out = malloc(cap), req[2048];
    const char *body, *len_hdr;
    long got, whole, from;
    int i, n;

    (void)state;
    assert_non_null(out);
    setenv("FEEDPUSH_SEND_TIMEOUT_MS", "1000", 1);
    assert_int_equal(ft_gateway_start(&env), 0);
    unsetenv("FEEDPUSH_SEND_TIMEOUT_MS");
    for (i = 0; i < 2; i++) {
        n = snprintf(req, sizeof(req),
                     "GET /api/v1/feed?limit=1000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                     "%s\r\n%s\r\n",
                     tok, conn[i]);
        /* Keep-alive: the connection stays open after the answer, so
         * the reader that does not wait stops after 2 s of silence. */
        got = ft_http_raw_slow(&env, req, (size_t)n, out, cap, i == 0 ? 10000 : 2000, 0);
        body = strstr(out, "\r\n\r\n");
        len_hdr = strstr(out, "\r\ncontent-length: ");
        if (strncmp(out, "HTTP/1.1 200 ", 13) != 0 || body == NULL || len_hdr == NULL)
            fail_msg("the page's answer begins: %.300s", out);
        whole = (long)(body + 4 - out) + strtol(len_hdr + 18, NULL, 10);
        assert_true(whole > 800L * FP_POST_TEXT_MAX);
        if (got != whole)
            fail_msg("a reader that did not wait got %ld bytes of %ld", got, whole);
        from = ft_log_size(env.log);
        got = ft_http_raw_slow(&env, req, (size_t)n, out, cap, 10000, 4000);
        printf("# %s: a reader 4 s late got %ld of %ld bytes\n", i == 0 ? "close" : "keep-alive",
               got, whole);
        assert_true(got > 0 && got < whole);
        /* Counted, then logged, as lws closes. */
        assert_int_equal(ft_log_wait(env.log, from, "before the answer", 5000), 1);
        assert_true(metric_value("feedpush_gateway_answers_cut_total") == i + 1);
        assert_int_equal(ft_log_count(env.log, from, "before the answer"), 1);
    }
    assert_int_equal(ft_gateway_start(&env), 0);
    free(out);
    free(tok);
}

/* The length with headers of the answer that out (got bytes) begins
 * with, or -1 (with a message) when it is not a 200 with a
 * Content-Length. */
static long answer_length(const char *out, long got)
{
    const char *body, *len_hdr;

    if (got < 13 || strncmp(out, "HTTP/1.1 200 ", 13) != 0) {
        print_message("the answer (%ld bytes) begins: %.200s\n", got, got > 0 ? out : "");
        return -1;
    }
    body = strstr(out, "\r\n\r\n");
    len_hdr = strstr(out, "\r\ncontent-length: ");
    if (body == NULL || len_hdr == NULL || len_hdr > body)
        return -1;
    return (long)(body + 4 - out) + strtol(len_hdr + 18, NULL, 10);
}

/*
 * A request pipelined behind an answer that the socket did not take
 * whole (the 6.6 MB page of test_close_slow_reader's user, to a reader
 * that waits 1 s), sent with the first request or while its answer
 * drains: lws cannot take it then, so the gateway closes the connection
 * before the answer is whole and says so once. Before, lws ran the first
 * request again in the pipelined one's place, and the connection stalled
 * until the send timeout. Without pipelining, keep-alive goes on after
 * such an answer.
 */
static void test_pipelined_while_draining(void **state)
{
    static const size_t cap = 16 * 1024 * 1024;
    static const char *const how[] = {"sent together", "sent while draining"};
    char *tok = token("cs"), *out = malloc(cap), big[2048], small[2048], both[4096];
    long got, first, from;
    double cut;
    bool closed;
    int round;

    (void)state;
    assert_non_null(out);
    snprintf(big, sizeof(big),
             "GET /api/v1/feed?limit=1000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
             tok);
    snprintf(small, sizeof(small),
             "GET /api/v1/feed?limit=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
             tok);
    snprintf(both, sizeof(both), "%s%s", big, small);
    cut = metric_value("feedpush_gateway_answers_cut_total");
    for (round = 0; round < 2; round++) {
        from = ft_log_size(env.log);
        if (round == 0)
            got = ft_http_raw_then(&env, both, "", out, cap, 10000, 1000, &closed);
        else
            got = ft_http_raw_then(&env, big, small, out, cap, 10000, 1000, &closed);
        first = answer_length(out, got);
        print_message("# %s: %ld bytes of the first answer's %ld, closed %d\n", how[round], got,
                      first, closed);
        assert_true(first > 800L * FP_POST_TEXT_MAX);
        assert_true(got < first);
        assert_true(closed);
        assert_int_equal(ft_log_count(env.log, from, "a request pipelined behind its answer"), 1);
        assert_int_equal(ft_log_wait(env.log, from, "before the answer", 5000), 1);
        assert_true(metric_value("feedpush_gateway_answers_cut_total") == cut + round + 1);
    }
    got = ft_http_raw_then(&env, big, "", out, cap, 2000, 1000, &closed);
    assert_int_equal(got, answer_length(out, got));
    assert_false(closed);
    free(out);
    free(tok);
}

/*
 * HTTP/1.0 without "Connection: keep-alive" (ab, curl -0, a proxy speaking
 * 1.0 upstream): lws closes the connection after the answer. A large
 * answer that the socket did not take at once goes out whole and is not
 * counted as cut. It was: the gateway took the connection for a
 * keep-alive one and lws's close for a cut. Checked against a real cut
 * made after it (a request pipelined behind a large answer), which must
 * be the only one counted.
 */
static void test_http10_whole(void **state)
{
    static const size_t cap = 16 * 1024 * 1024;
    char *tok = token("cs"), *out = malloc(cap), req[2048], both[4096];
    const char *body, *len_hdr;
    long got, whole, from;
    double cut;
    bool closed;
    int n;

    (void)state;
    assert_non_null(out);
    cut = metric_value("feedpush_gateway_answers_cut_total");
    from = ft_log_size(env.log);
    snprintf(req, sizeof(req),
             "GET /api/v1/feed?limit=1000 HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
             tok);
    got = ft_http_raw_then(&env, req, "", out, cap, 10000, 1000, &closed);
    body = strstr(out, "\r\n\r\n");
    len_hdr = strstr(out, "\r\ncontent-length: ");
    if (strncmp(out, "HTTP/1.", 7) != 0 || strncmp(out + 8, " 200 ", 5) != 0 || body == NULL ||
        len_hdr == NULL)
        fail_msg("the HTTP/1.0 answer begins: %.300s", out);
    whole = (long)(body + 4 - out) + strtol(len_hdr + 18, NULL, 10);
    assert_true(whole > 800L * FP_POST_TEXT_MAX);
    assert_int_equal(got, whole);
    assert_true(closed);

    snprintf(req, sizeof(req),
             "GET /api/v1/feed?limit=1000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
             tok);
    n = snprintf(both, sizeof(both), "%s%s", req, req);
    assert_true(n > 0 && (size_t)n < sizeof(both));
    got = ft_http_raw_then(&env, both, "", out, cap, 10000, 1000, &closed);
    assert_true(closed);
    assert_int_equal(ft_log_wait(env.log, from, "before the answer", 5000), 1);
    assert_true(metric_value("feedpush_gateway_answers_cut_total") == cut + 1);
    assert_int_equal(ft_log_count(env.log, from, "before the answer"), 1);
    free(out);
    free(tok);
}

/*
 * Keep-alive after large answers: a client that sends its next request as
 * soon as it has read the 6.6 MB page of test_close_slow_reader's user
 * whole (no pipelining) gets every answer, 100 times on one connection.
 * lws sends the last part of such an answer in one pass of its loop and
 * calls back in the next: a request read in between was taken for a
 * pipelined one (the connection closed) until the transaction was
 * completed when lws sent the last byte.
 */
static void test_keepalive_after_draining(void **state)
{
    char *tok = token("cs"), req[2048];

    (void)state;
    snprintf(req, sizeof(req),
             "GET /api/v1/feed?limit=1000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
             tok);
    assert_int_equal(ft_http_rounds(&env, req, 100, 5000), 100);
    free(tok);
}

/*
 * The API speaks HTTP/1.1 only: a request that asks to switch to h2c (as
 * curl --http2 does) or to a WebSocket is answered 400
 * upgrade_not_supported, and the connection closed. Before, lws switched:
 * the h2c client got no answer, the WebSocket an idle connection.
 */
/* The ETag lws gives /app.js, in etag (empty if none). */
static void app_js_etag(char *etag, size_t cap)
{
    static const char req[] = "GET /app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char out[65536];
    const char *p;
    bool closed;
    size_t n = 0;

    etag[0] = '\0';
    ft_http_raw_then(&env, req, "", out, sizeof(out), 5000, 0, &closed);
    p = strcasestr(out, "\r\netag: ");
    if (p == NULL)
        return;
    for (p += 8; *p != '\r' && *p != '\0' && n + 1 < cap; p++)
        etag[n++] = *p;
    etag[n] = '\0';
}

/* For test_keep_alive_off: requests lws answers itself (a file, a HEAD of
 * it, a 304, a 301), each with a "Cache:" header that hides the
 * Content-Length, and the request in its body sent 100 ms later. */
static void files_then_hidden(const char *hidden)
{
    static const char redirect[] = "GET /vendor HTTP/1.1\r\nHost: evil\r\n\r\n";
    char etag[64], req[512], out[65536];
    const char *heads[4];
    /* lws's 301 says HTTP/1.0. */
    const char *want[4] = {" 200 ", " 200 ", " 304 ", " 301 "};
    bool closed;
    int i;

    app_js_etag(etag, sizeof(etag));
    assert_true(etag[0] != '\0');
    snprintf(req, sizeof(req), "GET /app.js HTTP/1.1\r\nIf-None-Match: %s", etag);
    heads[0] = "GET /app.js HTTP/1.1";
    heads[1] = "HEAD /app.js HTTP/1.1";
    heads[2] = req;
    heads[3] = "GET /vendor HTTP/1.1";
    for (i = 0; i < 4; i++) {
        char first[640];

        snprintf(first, sizeof(first), "%s\r\nHost: x\r\nCache: x\r\nContent-Length: %zu\r\n\r\n",
                 heads[i], strlen(hidden));
        ft_http_raw_then(&env, first, hidden, out, sizeof(out), 5000, 100, &closed);
        if (strncmp(out, "HTTP/1.", 7) != 0 || strncmp(out + 8, want[i], 5) != 0 ||
            occurrences(out, "HTTP/1.") != 1 || !closed)
            fail_msg("%s, then the request hidden in its body, was answered (%s): %.600s", heads[i],
                     closed ? "closed" : "left open", out);
        /* lws writes a 304 and a 301 without asking for headers. */
        if (i < 2)
            assert_non_null(strcasestr(out, "connection: close"));
    }
    /* A redirect hidden behind an answer lws completes: lws answers a
     * redirect before it asks whether to serve the request. */
    snprintf(req, sizeof(req),
             "HEAD /app.js HTTP/1.1\r\nHost: x\r\nCache: x\r\nContent-Length: %zu\r\n\r\n",
             strlen(redirect));
    ft_http_raw_then(&env, req, redirect, out, sizeof(out), 5000, 100, &closed);
    if (strncmp(out, "HTTP/1.1 200 ", 13) != 0 || occurrences(out, "HTTP/1.") != 1 || !closed ||
        strstr(out, "evil") != NULL)
        fail_msg("HEAD, then a redirect hidden in its body, was answered (%s): %.600s",
                 closed ? "closed" : "left open", out);
}

/*
 * keep_alive off, as the gateway ships: every answer says "Connection:
 * close" and the connection is closed after it, so nothing sent behind a
 * request is ever read as one. The first request is the smuggling that
 * lws 4.1's parser allows (docs/gateway.md, "Known gaps"): "Cache:" makes
 * it take the Content-Length line into that header's name, so the body
 * is a second request; with keep_alive on it is answered too.
 */
static void test_keep_alive_off(void **state)
{
    static const char hidden[] = "GET /api/v1/hidden HTTP/1.1\r\nHost: x\r\n\r\n";
    static const char plain[] = "GET /api/v1/config HTTP/1.1\r\nHost: x\r\n\r\n";
    char req[512], out[65536];
    bool closed;

    (void)state;
    unsetenv("FEEDPUSH_KEEP_ALIVE");
    assert_int_equal(ft_gateway_start(&env), 0);
    snprintf(req, sizeof(req),
             "GET /api/v1/config HTTP/1.1\r\nHost: x\r\nCache: x\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(hidden), hidden);
    ft_http_raw_then(&env, req, "", out, sizeof(out), 5000, 0, &closed);
    if (strncmp(out, "HTTP/1.1 200 ", 13) != 0 || occurrences(out, "HTTP/1.") != 1)
        fail_msg("a request with one hidden in its body was answered: %.600s", out);
    assert_non_null(strcasestr(out, "connection: close"));
    assert_true(closed);
    /* Files and the answers lws makes itself: the hidden request comes
     * a moment later (in the same write, lws refuses it as pipelined by
     * itself, below). A file's answer says close; after a 301, a HEAD or
     * a 304, which lws completes keeping the connection, the second
     * request is not served. */
    files_then_hidden(hidden);
    /* The same behind a static file, which lws serves itself: its 403
     * for what it took for a pipelined request, and a close. */
    snprintf(req, sizeof(req),
             "GET / HTTP/1.1\r\nHost: x\r\nCache: x\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(hidden), hidden);
    ft_http_raw_then(&env, req, "", out, sizeof(out), 5000, 0, &closed);
    if (strncmp(out, "HTTP/1.1 200 ", 13) != 0 || strstr(out, "no such route") != NULL)
        fail_msg("a static file with a request hidden in its body was answered: %.600s", out);
    assert_true(closed);
    /* A plain HTTP/1.1 request: answered, and the one sent after it on
     * the same connection is not. */
    ft_http_raw_then(&env, plain, plain, out, sizeof(out), 5000, 100, &closed);
    if (strncmp(out, "HTTP/1.1 200 ", 13) != 0 || occurrences(out, "HTTP/1.") != 1)
        fail_msg("two requests in turn were answered: %.600s", out);
    assert_non_null(strcasestr(out, "connection: close"));
    assert_true(closed);
}

/* After test_keep_alive_off, also when it failed: the gateway as the rest
 * of this file runs it. */
static int keep_alive_on(void **state)
{
    (void)state;
    setenv("FEEDPUSH_KEEP_ALIVE", "on", 1);
    return ft_gateway_start(&env);
}

static void test_upgrade_refused(void **state)
{
    static const char *const up[] = {"h2c", "websocket"};
    char *tok = token("cs"), out[65536], req[2048];
    bool closed;
    int i;

    (void)state;
    for (i = 0; i < 2; i++) {
        snprintf(req, sizeof(req),
                 "GET /api/v1/feed?limit=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                 "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: %s\r\n"
                 "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 tok, up[i]);
        ft_http_raw_then(&env, req, "", out, sizeof(out), 5000, 0, &closed);
        /* The status line says HTTP/1.0: lws has not taken the request's
         * version yet when it asks whether to switch. */
        if (strncmp(out, "HTTP/1.", 7) != 0 || strncmp(out + 8, " 400 ", 5) != 0 ||
            strstr(out, "upgrade_not_supported") == NULL)
            fail_msg("Upgrade: %s was answered: %.300s", up[i], out);
        assert_true(closed);
    }
    /* Any other Upgrade, on a keep-alive connection's second request:
     * lws answers 403 itself and has let go of the request's headers by
     * the time it asks us (the value is not read then). */
    snprintf(req, sizeof(req),
             "GET /api/v1/feed?limit=1 HTTP/1.1\r\nHost: x\r\n"
             "Authorization: Bearer %s\r\n\r\n",
             tok);
    ft_http_raw_then(&env, req,
                     "GET /api/v1/feed?limit=1 HTTP/1.1\r\nHost: x\r\n"
                     "Connection: Upgrade\r\nUpgrade: foo\r\n\r\n",
                     out, sizeof(out), 5000, 100, &closed);
    if (strncmp(out, "HTTP/1.1 200 ", 13) != 0 || strstr(out, " 403 ") == NULL)
        fail_msg("Upgrade: foo after a first request was answered: %.300s", out);
    assert_true(closed);
    /* And the same request without Upgrade is served. */
    cJSON_Delete(call(200, "GET", "/api/v1/feed?limit=1", tok, NULL));
    free(tok);
}

/*
 * "Expect: 100-continue" (curl sends it before a larger body and waits up
 * to a second for the answer): the gateway answers "100 Continue" before the
 * body comes, then the request's own answer. Before, no 100 came: curl
 * lost a second, a client that waits for it got 408 after body_timeout_ms.
 */
static void test_expect_continue(void **state)
{
    static const char body[] = "{\"text\":\"sent after 100 Continue\"}";
    static const char *const expect[] = {"Expect: 100-continue\r\n", "",
                                         "Expect: 100-continue\r\n"};
    static const char *const version[] = {"1.1", "1.1", "1.0"};
    static const char *const want[] = {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 ",
                                       "HTTP/1.1 201 ", "HTTP/1.0 201 "};
    char *tok = token("ec"), out[8192], req[2048];
    bool closed;
    int i;

    (void)state;
    for (i = 0; i < 3; i++) {
        snprintf(req, sizeof(req),
                 "POST /api/v1/posts HTTP/%s\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n%s"
                 "Connection: close\r\n\r\n",
                 version[i], tok, sizeof(body) - 1, expect[i]);
        /* The body goes 300 ms after the headers; the answer to read
         * ends with the connection. Without Expect, or from an HTTP/1.0
         * client (RFC 9110 10.1.1): no interim answer. */
        ft_http_raw_then(&env, req, body, out, sizeof(out), 5000, 300, &closed);
        if (strncmp(out, want[i], strlen(want[i])) != 0)
            fail_msg("a POST (case %d) was answered: %.300s", i, out);
        assert_true(closed);
    }
    free(tok);
}

/* The descriptors process pid has open. */
static int open_fds(pid_t pid)
{
    char path[64];
    struct dirent *d;
    DIR *dir;
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    dir = opendir(path);
    assert_non_null(dir);
    while ((d = readdir(dir)) != NULL)
        n += d->d_name[0] != '.';
    closedir(dir);
    return n;
}

/*
 * Out of descriptors (the gateway's limit lowered to what it has open plus
 * 4, then 24 connections): accept() fails with EMFILE and the listening
 * socket stays readable. Each worker pauses accepting and says so once;
 * before, it spun, logging the failure tens of thousands of times a
 * second. With the limit back, the connections wait no longer than the
 * pause and requests are served.
 */
static void test_out_of_descriptors(void **state)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    struct rlimit lim, low;
    int fds[24], i, lines, failures, paused;
    long from;

    (void)state;
    assert_int_equal(prlimit(env.gw, RLIMIT_NOFILE, NULL, &lim), 0);
    low = lim;
    low.rlim_cur = (rlim_t)open_fds(env.gw) + 4;
    from = ft_log_size(env.log);
    assert_int_equal(prlimit(env.gw, RLIMIT_NOFILE, &low, NULL), 0);
    a.sin_port = htons((uint16_t)env.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (i = 0; i < 24; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fds[i] >= 0);
        assert_int_equal(connect(fds[i], (struct sockaddr *)&a, sizeof(a)), 0);
    }
    paused = ft_log_wait(env.log, from, "new connections wait", 5000);
    /* What a second of it logs: at most once per worker (32). The limit
     * is restored before any assertion: the later tests need it. */
    ft_sleep_ms(1000);
    lines = ft_log_count(env.log, from, "new connections wait");
    failures = ft_log_count(env.log, from, "Too many open files");
    assert_int_equal(prlimit(env.gw, RLIMIT_NOFILE, &lim, NULL), 0);
    for (i = 0; i < 24; i++)
        close(fds[i]);
    printf("# out of descriptors: %d accept failures logged in the first second\n", failures);
    assert_int_equal(paused, 1);
    assert_true(lines >= 1 && lines <= 32 && failures == lines);
    cJSON_Delete(call(200, "GET", "/api/v1/config", NULL, NULL));
    assert_int_equal(ft_log_wait(env.log, from, "taking new connections again", 5000), 1);
    assert_true(ft_gateway_alive(&env));
}

/* CONNECT (a proxy's method): lws would turn the connection into a raw
 * socket with no timeout, held for as long as the client likes. It is
 * answered 405 and closed. */
static void test_connect_refused(void **state)
{
    static const char req[] = "CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n";
    char out[4096];
    bool closed;

    (void)state;
    ft_http_raw_then(&env, req, "", out, sizeof(out), 5000, 0, &closed);
    if (strncmp(out, "HTTP/1.1 405 ", 13) != 0 || strstr(out, "method_not_allowed") == NULL)
        fail_msg("CONNECT was answered: %.300s", out);
    assert_true(closed);
    assert_true(ft_gateway_alive(&env));
}

/* jwt_max_lifetime: a token living up to it is accepted, a longer one
 * refused; a dev_token_ttl over it stops the gateway at start. */
static void test_max_lifetime(void **state)
{
    int64_t now = (int64_t)time(NULL);
    char *longest = ft_plugin_env_token(&env.b.p, "mia", now, now + 7200, FP_ROLE_USER);
    char *too_long = ft_plugin_env_token(&env.b.p, "mia", now, now + 7201, FP_ROLE_USER);

    (void)state;
    setenv("FEEDPUSH_JWT_MAX_LIFETIME", "7200", 1);
    assert_int_equal(ft_gateway_start(&env), 0);
    cJSON_Delete(call(200, "GET", "/api/v1/feed", longest, NULL));
    refused(401, "unauthorized", "GET", "/api/v1/feed", too_long, NULL);
    /* Dev tokens live 600 s here. */
    setenv("FEEDPUSH_JWT_MAX_LIFETIME", "300", 1);
    assert_int_equal(ft_gateway_start(&env), -1);
    assert_false(ft_gateway_alive(&env));
    unsetenv("FEEDPUSH_JWT_MAX_LIFETIME");
    assert_int_equal(ft_gateway_start(&env), 0);
    cJSON_Delete(call(200, "GET", "/api/v1/feed", too_long, NULL));
    free(longest);
    free(too_long);
}

/* Dev mode with a jwt_signing_key whose tokens jwt_key refuses (another
 * HS256 secret) stops the gateway at start, with one line naming both;
 * before, every dev token was then refused with 401. */
static void test_signing_key_pair(void **state)
{
    char path[PATH_MAX];
    long from = ft_log_size(env.log);
    FILE *f;
    int rc;

    (void)state;
    snprintf(path, sizeof(path), "%.*s/other.secret", PATH_MAX - 16, env.b.p.dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("another secret of forty-eight bytes, not jwt_key", f);
    assert_int_equal(fclose(f), 0);
    env.signing_key = path;
    rc = ft_gateway_start(&env);
    env.signing_key = NULL; /* before any assert: the later tests start it too */
    assert_int_equal(rc, -1);
    assert_false(ft_gateway_alive(&env));
    assert_int_equal(ft_log_count(env.log, from, "makes dev tokens that jwt_key"), 1);
    assert_int_equal(ft_gateway_start(&env), 0);
    cJSON_Delete(call(200, "POST", "/api/v1/dev/token", NULL, "{\"user_id\":\"kim\"}"));
}

/*
 * Requests whose headers do not fit libwebsockets' table (a 13 KB path,
 * no token needed) are dropped by it, each with a line in its log, which
 * the gateway's log takes in: at most 20 of those lines a minute pass,
 * so nobody can flood the log. The gateway serves on. (Before, all 40
 * were logged.)
 */
static void test_lws_log_capped(void **state)
{
    static char req[14000];
    char out[512];
    long from;
    int i, n;

    (void)state;
    assert_int_equal(ft_gateway_start(&env), 0); /* a fresh window */
    from = ft_log_size(env.log);
    n = snprintf(req, sizeof(req), "GET /api/v1/feed?%0*d HTTP/1.1\r\nHost: x\r\n\r\n", 13000, 0);
    for (i = 0; i < 40; i++)
        ft_http_raw(&env, req, (size_t)n, out, sizeof(out), 2000);
    assert_int_equal(ft_http(&env, "GET", "/healthz", NULL, NULL, NULL), 200);
    n = ft_log_count(env.log, from, "lws: ");
    print_message("lws lines for 40 oversized requests: %d\n", n);
    assert_int_equal(n, 20); /* one each, until the cap */
}

/* jwt_require_iat: a token without iat is refused, one with iat accepted;
 * without the option both are accepted. */
static void test_require_iat(void **state)
{
    int64_t now = (int64_t)time(NULL);
    char *with = ft_plugin_env_token(&env.b.p, "ivy", now, now + 3600, FP_ROLE_USER);
    char *without = ft_plugin_env_token(&env.b.p, "ivy", 0, now + 3600, FP_ROLE_USER);
    cJSON *j;

    (void)state;
    setenv("FEEDPUSH_JWT_REQUIRE_IAT", "on", 1);
    assert_int_equal(ft_gateway_start(&env), 0);
    cJSON_Delete(call(200, "GET", "/api/v1/feed", with, NULL));
    j = call(401, "GET", "/api/v1/feed", without, NULL);
    assert_string_equal(str(j, "error"), "unauthorized");
    assert_string_equal(str(j, "message"), "token refused: token has no iat claim");
    cJSON_Delete(j);
    unsetenv("FEEDPUSH_JWT_REQUIRE_IAT");
    assert_int_equal(ft_gateway_start(&env), 0);
    cJSON_Delete(call(200, "GET", "/api/v1/feed", without, NULL));
    free(with);
    free(without);
}

/*
 * A feed that ends in a long run of gone posts (ids listed, no bodies:
 * as after post_ttl): the read stops at its budget with an empty page and
 * next_before the last id it looked at; the next read goes on from there
 * and reaches the live posts below the run. Written into Redis directly:
 * 1,200 gone ids above 5 live posts.
 */
static void test_feed_cut_short(void **state)
{
    redisContext *r = ft_redis_connect(env.b.p.redis.port);
    char *tok = token("cutr");
    cJSON *j, *posts;
    int i;

    (void)state;
    for (i = 1; i <= 5; i++)
        ft_redis_ok(r,
                    "SET post:cl%d {\"id\":\"cl%d\",\"author_id\":\"cx\",\"text\":\"live\","
                    "\"created_at\":1}",
                    i, i);
    for (i = 1; i <= 5; i++)
        assert_int_equal(ft_redis_int(r, "ZADD feed:cutr %d cl%d", i, i), 1);
    for (i = 1; i <= 1200; i++)
        assert_int_equal(ft_redis_int(r, "ZADD feed:cutr %d cg%04d", 100 + i, i), 1);

    j = call(200, "GET", "/api/v1/feed?limit=10", tok, NULL);
    posts = cJSON_GetObjectItemCaseSensitive(j, "posts");
    assert_int_equal(cJSON_GetArraySize(posts), 0);
    /* 10 + 1,000 ids looked at: cg1200 down to cg0191. */
    assert_string_equal(str(j, "next_before"), "cg0191");
    cJSON_Delete(j);
    j = call(200, "GET", "/api/v1/feed?limit=10&before=cg0191", tok, NULL);
    posts = cJSON_GetObjectItemCaseSensitive(j, "posts");
    assert_int_equal(cJSON_GetArraySize(posts), 5);
    assert_string_equal(str(cJSON_GetArrayItem(posts, 0), "id"), "cl5");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "next_before")));
    cJSON_Delete(j);
    assert_int_equal(ft_redis_int(r, "DEL feed:cutr"), 1);
    redisFree(r);
    free(tok);
}

/*
 * Walks the feed from path0 on, page by page, following next_before (or,
 * with after, next_after) until it is null. Each page must hold 1 to 8
 * posts (64 KiB of posts of some 8.1 KB; with after, after_found), and its
 * cursor must be the last post it adds. The ids go to got (malloc'd) in
 * walking order: newest first, or with after oldest first. Returns how
 * many; *pages, how many pages.
 */
static int walk_pages(const char *tok, const char *path0, bool after, char **got, int cap,
                      int *pages)
{
    const char *cursor = after ? "next_after" : "next_before";
    const cJSON *posts;
    char path[256];
    int n = 0, per, i;
    cJSON *j;

    snprintf(path, sizeof(path), "%s", path0);
    for (*pages = 1;; (*pages)++) {
        j = call(200, "GET", path, tok, NULL);
        posts = cJSON_GetObjectItemCaseSensitive(j, "posts");
        per = cJSON_GetArraySize(posts);
        assert_true(per >= 1 && per <= 8);
        if (after)
            assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "after_found")));
        for (i = 0; i < per; i++) {
            assert_true(n < cap);
            got[n++] = strdup(str(cJSON_GetArrayItem(posts, after ? per - 1 - i : i), "id"));
        }
        if (cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, cursor))) {
            cJSON_Delete(j);
            return n;
        }
        assert_string_equal(str(j, cursor), got[n - 1]);
        snprintf(path, sizeof(path), "/api/v1/feed?limit=1000&%s=%s", after ? "after" : "before",
                 got[n - 1]);
        cJSON_Delete(j);
    }
}

/*
 * A page whose posts pass max_page_bytes (64 KiB here: 20 posts of 8,000
 * bytes asked for with limit=1000) is cut short: the newest posts that
 * fit, next_before the last of them, and the pages that follow give the
 * rest, each post once, in order. Above an after cursor the page keeps the
 * posts next to the cursor, with after_found and next_after its newest
 * id, and walking next_after gives all the newer posts. It used to be
 * one page of every post asked for, however large.
 */
static bool small_pages; /* the gateway runs with test_feed_page_bytes's max_page_bytes */

static void test_feed_page_bytes(void **state)
{
    char *tok = token("pgb"), *text = malloc(8001), *ids[20], *got[64], path[256];
    int i, n, pages;

    (void)state;
    assert_non_null(text);
    memset(text, 'z', 8000);
    text[8000] = '\0';
    for (i = 0; i < 20; i++)
        ids[i] = post(tok, text);
    assert_true(feed_has(tok, ids[19], true));
    assert_true(feed_has(tok, ids[0], true));
    setenv("FEEDPUSH_MAX_PAGE_BYTES", "65536", 1);
    small_pages = true;
    assert_int_equal(ft_gateway_start(&env), 0);
    unsetenv("FEEDPUSH_MAX_PAGE_BYTES");

    n = walk_pages(tok, "/api/v1/feed?limit=1000", false, got, 64, &pages);
    assert_int_equal(n, 20);
    assert_true(pages >= 3);
    for (i = 0; i < 20; i++)
        assert_string_equal(got[i], ids[19 - i]);
    for (i = 0; i < n; i++)
        free(got[i]);

    snprintf(path, sizeof(path), "/api/v1/feed?limit=1000&after=%s", ids[0]);
    n = walk_pages(tok, path, true, got, 64, &pages);
    assert_int_equal(n, 19);
    assert_true(pages >= 3);
    for (i = 0; i < 19; i++)
        assert_string_equal(got[i], ids[i + 1]);
    for (i = 0; i < n; i++)
        free(got[i]);

    small_pages = false;
    assert_int_equal(ft_gateway_start(&env), 0);
    for (i = 0; i < 20; i++)
        free(ids[i]);
    free(text);
    free(tok);
}

/* test_feed_page_bytes's gateway with small pages goes, also after a
 * failure (the tests after it read large pages). */
static int page_bytes_default(void **state)
{
    (void)state;
    unsetenv("FEEDPUSH_MAX_PAGE_BYTES");
    if (!small_pages)
        return 0;
    small_pages = false;
    return ft_gateway_start(&env);
}

/* Does file path hold text after byte offset from? */
static bool file_has_after(const char *path, long from, const char *text)
{
    return ft_log_count(path, from, text) > 0;
}

/* An idle publisher link outlives RabbitMQ's heartbeat timeout: with a
 * heartbeat of 1 s the broker drops a link silent for about 2 s, so after
 * 5 s without a post (the idleness under test, not a wait for anything)
 * the next post must go out on the same link, without a reconnect. */
static void test_idle_publisher(void **state)
{
    char *t = token("idler");
    long from;

    (void)state;
    setenv("FEEDPUSH_AMQP_HEARTBEAT", "1", 1);
    assert_int_equal(ft_gateway_start(&env), 0);
    from = ft_log_size(env.log);
    free(post(t, "before the pause"));
    sleep(5);
    free(post(t, "after the pause"));
    assert_false(file_has_after(env.log, from, "reconnecting"));
    assert_false(file_has_after(env.log, from, "rabbitmq unreachable"));
    unsetenv("FEEDPUSH_AMQP_HEARTBEAT");
    assert_int_equal(ft_gateway_start(&env), 0);
    free(t);
}

/* Waits up to 5 s until the gateway's log has text after from. */
static bool log_until(long from, const char *text)
{
    int i;

    for (i = 0; i < 250; i++) {
        if (file_has_after(env.log, from, text))
            return true;
        ft_sleep_ms(20);
    }
    return false;
}

/* Redis refuses a read (a key of the wrong type, set by hand): 500, and
 * the reason logged once per request, with Redis's words. */
static void test_store_refusal_logged_once(void **state)
{
    char *t = token("sr");
    redisContext *r = ft_redis_connect(env.b.p.redis.port);
    long from;

    (void)state;
    ft_redis_ok(r, "SET following:sr oops");
    from = ft_log_size(env.log);
    refused(500, "internal", "GET", "/api/v1/follows", t, NULL);
    assert_true(log_until(from, "WRONGTYPE"));
    assert_int_equal(ft_log_count(env.log, from, "follows read"), 1);
    assert_int_equal(ft_redis_int(r, "DEL following:sr"), 1);
    redisFree(r);
    free(t);
}

/* The Redis link of a test that sets maxclients 1 (Redis then takes no
 * new connection) or narrows the default user's ACL: admin_close, its
 * teardown, undoes both through it, so a failure meanwhile does not leave
 * the next tests locked out. */
static redisContext *admin;

static redisContext *admin_open(void)
{
    admin = ft_redis_connect(env.b.p.redis.port);
    return admin;
}

static int admin_close(void **state)
{
    redisReply *x;

    (void)state;
    if (admin == NULL)
        return 0;
    x = redisCommand(admin, "CONFIG SET maxclients 10000");
    freeReplyObject(x);
    x = redisCommand(admin, "ACL SETUSER default +client|tracking allchannels");
    freeReplyObject(x);
    redisFree(admin);
    admin = NULL;
    return 0;
}

/*
 * The revocation cache: a user's value is kept in memory (a SET that
 * bypasses the revocations channel is not seen), a message on the channel
 * reaches it, and while its subscription is down every check reads Redis
 * again; once the subscription is back the cache starts empty.
 */
static void test_revocation_cache(void **state)
{
    int64_t now = (int64_t)time(NULL);
    char *a = token("rc_a"), *b = token("rc_b");
    redisContext *r = admin_open();
    long from = ft_log_size(env.log);

    (void)state;
    /* A gateway of its own, whose cache is on before the first check. */
    assert_int_equal(ft_gateway_start(&env), 0);
    assert_true(log_until(from, "subscription up: revocation cache on"));
    cJSON_Delete(call(200, "GET", "/api/v1/follows", a, NULL)); /* rc_a cached: 0 */
    ft_redis_ok(r, "SET revoked:rc_a %lld", (long long)now + 1);
    cJSON_Delete(call(200, "GET", "/api/v1/follows", a, NULL));        /* from memory */
    assert_true(ft_redis_int(r, "PUBLISH revoked %s", "rc_a 1") >= 1); /* lower: ignored */
    assert_true(ft_redis_int(r, "PUBLISH revoked %s", "rc_a not-a-number") >= 1); /* logged */
    revoke_user("rc_a", (long long)now + 1);
    assert_true(until_status(401, "/api/v1/follows", a));
    assert_true(file_has_after(env.log, from, "(message ignored)"));

    /* The subscription killed and kept down (Redis takes no new
     * connections; the workers keep theirs): the cache is off, so a
     * bypassing SET is seen at once. */
    cJSON_Delete(call(200, "GET", "/api/v1/follows", b, NULL)); /* rc_b cached: 0 */
    from = ft_log_size(env.log);
    ft_redis_ok(r, "CONFIG SET maxclients 1");
    assert_true(ft_redis_int(r, "CLIENT KILL TYPE pubsub") >= 1);
    assert_true(log_until(from, "reads Redis until it is back"));
    ft_redis_ok(r, "SET revoked:rc_b %lld", (long long)now + 1);
    refused(401, "unauthorized", "GET", "/api/v1/follows", b, NULL);
    ft_redis_ok(r, "CONFIG SET maxclients 10000");
    assert_true(log_until(from, "subscription up again: revocation cache on"));
    refused(401, "unauthorized", "GET", "/api/v1/follows", b, NULL);
    free(a);
    free(b);
}

/* Redis's count of MGET calls so far (INFO commandstats). */
static long long mget_calls(redisContext *r)
{
    static const char key[] = "cmdstat_mget:calls=";
    redisReply *rep = ft_redis_cmd(r, "INFO commandstats");
    const char *p = strstr(rep->str, key);
    long long n = p != NULL ? atoll(p + sizeof(key) - 1) : 0;

    freeReplyObject(rep);
    return n;
}

/* The text of post id in the caller's first feed page, "" when it is not
 * there; into buf. */
static const char *feed_text(const char *tok, const char *id, char *buf, size_t len)
{
    cJSON *j = call(200, "GET", "/api/v1/feed?limit=50", tok, NULL), *p;

    buf[0] = '\0';
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(j, "posts"))
    {
        if (strcmp(str(p, "id"), id) == 0)
            snprintf(buf, len, "%s", str(p, "text"));
    }
    cJSON_Delete(j);
    return buf;
}

/* Waits (up to 5 s) until post id's text in the caller's feed is want. */
static bool until_text(const char *tok, const char *id, const char *want)
{
    char buf[128];
    int i;

    for (i = 0; i < 100; i++) {
        if (strcmp(feed_text(tok, id, buf, sizeof(buf)), want) == 0)
            return true;
        usleep(50000);
    }
    return false;
}

/* Stores a body for post id by hand, as an operator might. */
static void set_body(redisContext *r, const char *id, const char *text)
{
    char body[256];

    snprintf(body, sizeof(body),
             "{\"id\":\"%s\",\"author_id\":\"pc_a\",\"text\":\"%s\",\"created_at\":1}", id, text);
    ft_redis_ok(r, "SET post:%s %s", id, body);
}

/*
 * The post body cache: a body read once is served from memory (no MGET);
 * a body changed, deleted or expired in Redis by any means is dropped
 * once Redis's invalidation comes, and so is a known absence when the
 * body appears; while the subscription is down every
 * read goes to Redis, and once it is back the cache starts empty; the
 * links that read bodies killed, it is emptied; with CLIENT TRACKING
 * refused nothing is cached until it is allowed again; with the
 * invalidations refused the cache stays off.
 */
static void test_post_cache(void **state)
{
    char *a = token("pc_a"), *p1, *p2, *p3, *p4, *p5, buf[128];
    redisContext *r = admin_open();
    long from = ft_log_size(env.log);
    long long n;
    int i;

    (void)state;
    assert_int_equal(ft_gateway_start(&env), 0);
    assert_true(log_until(from, "post body cache on"));
    p1 = post(a, "first");
    assert_true(feed_has(a, p1, true)); /* read from Redis once: now cached */
    n = mget_calls(r);
    assert_string_equal(feed_text(a, p1, buf, sizeof(buf)), "first");
    assert_int_equal(mget_calls(r), n);
    assert_true(metric_value("feedpush_gateway_post_cache_hits_total") >= 1);
    assert_true(metric_value("feedpush_gateway_post_cache_misses_total") >= 1);
    assert_true(metric_value("feedpush_gateway_post_cache_bytes") > 0);

    set_body(r, p1, "edited by hand");
    assert_true(until_text(a, p1, "edited by hand"));
    assert_int_equal(ft_redis_int(r, "DEL post:%s", p1), 1);
    assert_true(feed_has(a, p1, false));
    for (i = 0, n = -1; i < 100 && n != mget_calls(r); i++) {
        n = mget_calls(r);
        feed_text(a, p1, buf, sizeof(buf));
    }
    assert_true(i < 100);            /* a page without MGET: p1 known to have no body */
    set_body(r, p1, "back by hand"); /* Redis tracks the missing key too */
    assert_true(until_text(a, p1, "back by hand"));
    assert_int_equal(ft_redis_int(r, "DEL post:%s", p1), 1);
    assert_true(feed_has(a, p1, false));
    p2 = post(a, "second");
    assert_true(feed_has(a, p2, true));
    assert_true(ft_redis_int(r, "PEXPIRE post:%s 100", p2) == 1);
    /* The gateway serves p2 from its cache and never reads the key, so
     * the test's reads expire it (Redis's own sweep of keys with a time
     * to live could take seconds to reach it). */
    for (i = 0; i < 100 && ft_redis_int(r, "EXISTS post:%s", p2) == 1; i++)
        usleep(20000);
    assert_true(i < 100);
    assert_true(feed_has(a, p2, false));

    /* The subscription killed and kept down: the cache is off. */
    p3 = post(a, "third");
    assert_true(feed_has(a, p3, true));
    from = ft_log_size(env.log);
    ft_redis_ok(r, "CONFIG SET maxclients 1");
    assert_true(ft_redis_int(r, "CLIENT KILL TYPE pubsub") >= 1);
    assert_true(log_until(from, "reads Redis until it is back"));
    n = mget_calls(r);
    assert_string_equal(feed_text(a, p3, buf, sizeof(buf)), "third");
    assert_int_equal(mget_calls(r), n + 1);
    set_body(r, p3, "seen at once");
    assert_string_equal(feed_text(a, p3, buf, sizeof(buf)), "seen at once");
    ft_redis_ok(r, "CONFIG SET maxclients 10000");
    assert_true(log_until(from, "subscription up again"));
    assert_true(log_until(from, "post body cache on"));
    n = mget_calls(r);
    assert_string_equal(feed_text(a, p3, buf, sizeof(buf)), "seen at once");
    assert_string_equal(feed_text(a, p3, buf, sizeof(buf)), "seen at once");
    assert_int_equal(mget_calls(r), n + 1); /* empty after the restart, then cached */

    /* The links that read bodies closed (Redis forgets what a link
     * tracked, so no invalidation would come): the cache is emptied, and
     * a change made after is seen. */
    p5 = post(a, "fifth");
    assert_true(feed_has(a, p5, true));
    n = mget_calls(r);
    assert_string_equal(feed_text(a, p5, buf, sizeof(buf)), "fifth");
    assert_int_equal(mget_calls(r), n); /* cached */
    from = ft_log_size(env.log);
    assert_true(ft_redis_int(r, "CLIENT KILL TYPE normal") >= 1);
    set_body(r, p5, "changed after the kill");
    assert_true(until_text(a, p5, "changed after the kill"));
    assert_true(log_until(from, "post body cache emptied"));

    /* CLIENT TRACKING refused (an ACL without that subcommand): said once,
     * and every page reads its bodies from Redis, right; allowed again,
     * the next read is tracked and cached. */
    from = ft_log_size(env.log);
    ft_redis_ok(r, "ACL SETUSER default -client|tracking");
    p4 = post(a, "fourth");
    assert_true(feed_has(a, p4, true));
    n = mget_calls(r);
    assert_string_equal(feed_text(a, p4, buf, sizeof(buf)), "fourth");
    assert_string_equal(feed_text(a, p4, buf, sizeof(buf)), "fourth");
    ft_redis_ok(r, "ACL SETUSER default +client|tracking");
    assert_int_equal(mget_calls(r), n + 2);
    assert_int_equal(ft_log_count(env.log, from, "Redis refused CLIENT TRACKING"), 1);
    n = mget_calls(r);
    assert_string_equal(feed_text(a, p4, buf, sizeof(buf)), "fourth");
    assert_string_equal(feed_text(a, p4, buf, sizeof(buf)), "fourth");
    assert_int_equal(mget_calls(r), n + 1);
    assert_true(log_until(from, "Redis tracks post bodies again: post body cache on"));

    /* Invalidations refused (an ACL without the channel): said once, and
     * every page reads its bodies from Redis. */
    from = ft_log_size(env.log);
    ft_redis_ok(r, "ACL SETUSER default resetchannels &revoked");
    assert_int_equal(ft_gateway_start(&env), 0);
    assert_true(log_until(from, "post body cache off: Redis refused its invalidations"));
    assert_true(log_until(from, "revocation cache on, post body cache off"));
    n = mget_calls(r);
    assert_string_equal(feed_text(a, p3, buf, sizeof(buf)), "seen at once");
    assert_string_equal(feed_text(a, p3, buf, sizeof(buf)), "seen at once");
    assert_int_equal(mget_calls(r), n + 2);
    ft_redis_ok(r, "ACL SETUSER default allchannels");
    free(p5);
    free(p4);
    free(p3);
    free(p2);
    free(p1);
    free(a);
}

/* A poster thread: one POST, its status and the post's id. */
typedef struct {
    const char *tok;
    long status;
    char id[64];
} poster;

static void *poster_main(void *arg)
{
    poster *ps = arg;
    char body[400];
    ft_http_reply r;
    cJSON *j, *id;

    /* No cmocka here: a thread of its own. A long text: each publish is over 300 bytes
     * (test_publisher_relink). */
    snprintf(body, sizeof(body), "{\"text\":\"%0300d\"}", 7);
    ps->status = ft_http(&env, "POST", "/api/v1/posts", ps->tok, body, &r);
    j = cJSON_Parse(r.body);
    id = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "post"), "id");
    if (ps->status == 201 && cJSON_IsString(id))
        snprintf(ps->id, sizeof(ps->id), "%s", id->valuestring);
    cJSON_Delete(j);
    ft_http_reply_free(&r);
    return NULL;
}

/* Restarts the gateway with its RabbitMQ behind a relay, and posts once
 * as tok: the publisher's link is up, and *one is the bytes of one such
 * post's publish, alone (and of whatever the gateway's health link sent
 * meanwhile: a lower bound only). Returns the relay. */
static ft_proxy *relay_up(const char *tok, long *one)
{
    poster ps = {.tok = tok};
    ft_proxy *px;

    assert_int_equal(ft_proxy_start(&px, env.b.rabbit.port), 0);
    env.amqp_port = ft_proxy_port(px);
    assert_int_equal(ft_gateway_start(&env), 0);
    *one = ft_proxy_sent(px);
    poster_main(&ps);
    assert_int_equal(ps.status, 201);
    *one = ft_proxy_sent(px) - *one;
    return px;
}

/* The publisher's link breaks with events published and not confirmed
 * (a relay between the gateway and RabbitMQ holds the broker's answers,
 * then cuts every connection): the gateway reconnects and publishes them
 * again, so every post is answered 201 and is in the feed. While two
 * messages await their confirms the next posts wait, and events that
 * wait go together: the two published alone before the cut go again in
 * one batch (docs/gateway.md, "Batches"). */
static void test_publisher_relink(void **state)
{
    char *t = token("relinker");
    double events, messages, batches;
    pthread_t th[6];
    poster ps[6];
    ft_proxy *px;
    long from, sent, one;
    int i;

    (void)state;
    px = relay_up(t, &one);
    /* Read now: while the link is held, a request may wait behind a
     * worker that waits for its confirm. */
    events = metric_value("feedpush_gateway_events_published_total");
    messages = metric_value("feedpush_gateway_event_messages_total");
    batches = metric_value("feedpush_gateway_event_batches_total");
    assert_true(events >= 1 && messages >= 1);
    from = ft_log_size(env.log);
    assert_true(ft_proxy_hold(px) >= 1);
    sent = ft_proxy_sent(px);
    for (i = 0; i < 6; i++) {
        ps[i] = (poster){.tok = t};
        assert_int_equal(pthread_create(&th[i], NULL, poster_main, &ps[i]), 0);
    }
    /* Until two events or more are published (one alone is less, a batch
     * of two too), with no confirm coming back. */
    for (i = 0; i < 200 && ft_proxy_sent(px) - sent < 2 * one; i++)
        ft_sleep_ms(25);
    assert_true(ft_proxy_sent(px) - sent >= 2 * one);
    assert_true(ft_proxy_cut(px) >= 1);
    for (i = 0; i < 6; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(ps[i].status, 201);
        assert_true(feed_has(t, ps[i].id, true));
    }
    assert_true(file_has_after(env.log, from, "unconfirmed events again on the new link"));
    assert_true(metric_value("feedpush_gateway_event_batches_total") >= batches + 1);
    assert_true(metric_value("feedpush_gateway_events_published_total") >= events + 8);
    /* Fewer messages than events: at least the two (or more) published
     * before the cut went again together. */
    assert_true(metric_value("feedpush_gateway_event_messages_total") -
                    metric_value("feedpush_gateway_events_published_total") <=
                messages - events - 1);
    env.amqp_port = env.b.rabbit.port;
    assert_int_equal(ft_gateway_start(&env), 0);
    ft_proxy_stop(px);
    free(t);
}

/* RabbitMQ takes a publish but never confirms it (the relay holds its
 * answers on that link): after timeout_ms the publisher gives the link up,
 * publishes the event again on a new one, and the post is answered 201
 * and is in the feed. */
static void test_publisher_confirm_timeout(void **state)
{
    char *t = token("stalled");
    poster ps = {.tok = t};
    pthread_t th;
    ft_proxy *px;
    long from;

    (void)state;
    assert_int_equal(ft_proxy_start(&px, env.b.rabbit.port), 0);
    env.amqp_port = ft_proxy_port(px);
    setenv("FEEDPUSH_TIMEOUT_MS", "1000", 1);
    assert_int_equal(ft_gateway_start(&env), 0);
    free(post(t, "before the stall"));
    from = ft_log_size(env.log);
    assert_true(ft_proxy_hold(px) >= 1);
    assert_int_equal(pthread_create(&th, NULL, poster_main, &ps), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(ps.status, 201);
    assert_true(feed_has(t, ps.id, true));
    assert_true(file_has_after(env.log, from, "amqp confirm: "));
    assert_true(file_has_after(env.log, from, "unconfirmed events again on the new link"));
    unsetenv("FEEDPUSH_TIMEOUT_MS");
    env.amqp_port = env.b.rabbit.port;
    assert_int_equal(ft_gateway_start(&env), 0);
    ft_proxy_stop(px);
    free(t);
}

/* amqp_hosts: a node that refuses is skipped for the next one in the
 * list; a list that does not parse stops the gateway at start. */
static void test_amqp_hosts(void **state)
{
    char *t = token("hoster"), *id, list[128];

    (void)state;
    snprintf(list, sizeof(list), "127.0.0.1:1, 127.0.0.1:%d", env.amqp_port);
    setenv("FEEDPUSH_AMQP_HOSTS", list, 1);
    assert_int_equal(ft_gateway_start(&env), 0);
    id = post(t, "through the second host");
    assert_true(feed_has(t, id, true));
    free(id);
    setenv("FEEDPUSH_AMQP_HOSTS", "127.0.0.1:1,:5672", 1);
    assert_int_equal(ft_gateway_start(&env), -1);
    assert_false(ft_gateway_alive(&env));
    unsetenv("FEEDPUSH_AMQP_HOSTS");
    assert_int_equal(ft_gateway_start(&env), 0);
    free(t);
}

static void test_dev_mode_off(void **state)
{
    cJSON *j;

    (void)state;
    env.dev_mode = false;
    assert_int_equal(ft_gateway_start(&env), 0);
    j = call(200, "GET", "/api/v1/config", NULL, NULL);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "dev_mode")));
    cJSON_Delete(j);
    refused(404, "not_found", "POST", "/api/v1/dev/token", NULL, "{\"user_id\":\"x\"}");
    /* The route is not there at all: no 405 that would tell it exists. */
    refused(404, "not_found", "GET", "/api/v1/dev/token", NULL, NULL);
    refused(404, "not_found", "DELETE", "/api/v1/dev/token", NULL, NULL);
    env.dev_mode = true;
    assert_int_equal(ft_gateway_start(&env), 0);
}

/* clang-format off */
FT_MAIN(ft_harness_run, setup, teardown,
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_dev_token),
        cmocka_unit_test(test_auth_refusals),
        cmocka_unit_test(test_follows),
        cmocka_unit_test(test_posts),
        cmocka_unit_test(test_post_key),
        cmocka_unit_test(test_feed_pages),
        cmocka_unit_test(test_feed_cut_short),
        cmocka_unit_test_teardown(test_feed_page_bytes, page_bytes_default),
        cmocka_unit_test(test_feed_after),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_ribbon),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_http_strict),
        cmocka_unit_test(test_store_refusal_logged_once),
        cmocka_unit_test(test_http_edges),
        cmocka_unit_test(test_static_client),
        cmocka_unit_test_teardown(test_metrics, metrics_cleanup),
        cmocka_unit_test(test_metrics_not_crowded),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_redis_outage),
        cmocka_unit_test_teardown(test_redis_refusing_is_503, redis_serving),
        cmocka_unit_test(test_rabbitmq_outage),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_large_answer),
        cmocka_unit_test(test_close_slow_reader),
        cmocka_unit_test(test_send_timeout),
        cmocka_unit_test(test_pipelined_while_draining),
        cmocka_unit_test(test_keepalive_after_draining),
        cmocka_unit_test(test_upgrade_refused),
        cmocka_unit_test_teardown(test_keep_alive_off, keep_alive_on),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_out_of_descriptors),
        cmocka_unit_test(test_http10_whole),
        cmocka_unit_test(test_max_lifetime),
        cmocka_unit_test(test_signing_key_pair),
        cmocka_unit_test(test_lws_log_capped),
        cmocka_unit_test(test_require_iat),
        cmocka_unit_test(test_body_timeout),
        cmocka_unit_test(test_idle_publisher),
        cmocka_unit_test(test_publisher_relink),
        cmocka_unit_test(test_publisher_confirm_timeout),
        cmocka_unit_test_teardown(test_revocation_cache, admin_close),
        cmocka_unit_test_teardown(test_post_cache, admin_close),
        cmocka_unit_test(test_amqp_hosts),
        cmocka_unit_test(test_dev_mode_off),
        /* Last: it restarts the bridge, whose counters test_metrics and
         * test_stats read. */
        cmocka_unit_test(test_pull_feed))
/* clang-format on */
