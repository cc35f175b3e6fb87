/*
 * feed-bridge against a broker's limits: a broker with max_packet_size
 * 4096, which its CONNACK announces. A deliver control message that would
 * be over the limit (ten recipients with 64-character ids) is split into
 * messages that fit: all ten get the post. A post too large as a control
 * message even for one recipient goes as a publish to feed/<uid>, which
 * is shorter; too large for that too, it is dropped, logged once and
 * counted as refused, and the next post is delivered. Before, such a publish was retried every 100
 * ms for ever, and every later delivery waited behind it; and libmosquitto 2.0.11 aborts the
 * process on a publish one byte over (test_exact_limit). A ribbon document
 * over the limit is dropped too, and not counted as a broadcast. A node's
 * share over 10,000 recipients goes to feed.deliver in several messages.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "ft_redis.h"
#include "node_env.h"
#include "ft_main.h"

#define USERS 10

static ft_node_env env;

static int start(void)
{
    static const ft_node_opts opts = {.extra = "max_packet_size 4096"};

    return ft_node_env_start_opts(&env, 1, &opts);
}

FT_FIXTURES(start(), ft_node_env_stop(&env))

/* A post by "lim" whose text is n times 'x'. */
static void post(const char *id, size_t n)
{
    char *text = malloc(n + 1);

    assert_non_null(text);
    memset(text, 'x', n);
    text[n] = '\0';
    assert_int_equal(ft_node_publishf(&env, "post.created",
                                      "{\"type\":\"post.created\",\"post\":{\"id\":\"%s\","
                                      "\"author_id\":\"lim\",\"text\":\"%s\",\"created_at\":%lld}}",
                                      id, text, (long long)time(NULL)),
                     0);
    free(text);
}

/* Waits until every user has received want messages; the last one's id
 * must be id. */
static void all_got(ft_mqtt *u, int want, const char *id)
{
    char needle[64];
    int i;

    snprintf(needle, sizeof(needle), "\"id\":\"%s\"", id);
    for (i = 0; i < USERS; i++) {
        if (ft_mqtt_wait_messages(&u[i], want, 10000) != want)
            fail_msg("user %d got %d messages, want %d (the last: %s)", i, u[i].received, want, id);
        assert_non_null(strstr(u[i].last_payload, needle));
    }
}

static void test_packet_limit(void **state)
{
    static ft_mqtt u[USERS];
    char uid[72], topic[80], key[FP_ID_BUFSZ + 16], *tok;
    long long refused = ft_node_stat(&env, 1, "mqtt_refused");
    const char *blog = env.node[0].bridge_log;
    long from = ft_log_size(blog);
    int i;

    (void)state;
    snprintf(key, sizeof(key), "online:%s", env.p.node_id);
    for (i = 0; i < USERS; i++) {
        snprintf(uid, sizeof(uid), "%02d%062d", i, 0); /* 64 characters */
        assert_true(ft_node_redis_int(&env, "SADD followers:lim %s", uid) >= 0);
        tok = ft_node_token(&env, uid);
        assert_int_equal(ft_mqtt_connect(&u[i], ft_node_port(&env, 1), NULL, uid, tok, 4, 5000), 0);
        snprintf(topic, sizeof(topic), "feed/%s", uid);
        assert_int_equal(ft_mqtt_subscribe(&u[i], topic, 5000), 1);
        assert_int_equal(ft_redis_wait_member(env.p.redis.port, key, uid, 3000), 1);
        free(tok);
    }

    /* About 3.7 KB each, 4.4 KB as one control message for the ten: it
     * goes in two. */
    post("l1", 3600);
    all_got(u, 1, "l1");
    assert_int_equal(ft_log_count(blog, from, "cannot be sent to broker"), 0);
    /* Over the limit for one recipient too: dropped (logged once), and
     * the next post comes through. */
    post("l2", 5000);
    post("l3", 10);
    all_got(u, 2, "l3");
    assert_int_equal(ft_log_count(blog, from, "cannot be sent to broker"), 1);
    /* l2's ten publishes, one per recipient. */
    assert_int_equal(ft_node_stat_wait(&env, 1, "mqtt_refused", refused + USERS, 5000),
                     refused + USERS);
    assert_int_equal(ft_log_count(blog, from, "refused a deliver control message"), 0);
    for (i = 0; i < USERS; i++)
        ft_mqtt_close(&u[i]);
}

/*
 * Around the exact limits: one recipient, posts of n bytes of text. Up to
 * the size whose control message is exactly 4096 bytes (found from a
 * first post's payload, as the user gets it) a post goes as a control
 * message; above it, as a publish to feed/<uid>, which is 27 bytes
 * shorter here (its topic, no expiry and id in the body): the posts in
 * that window are delivered too. Then a sweep from just below to just
 * above the size whose publish is exactly 4096 bytes: the bridge must
 * live through all of them (libmosquitto 2.0.11 aborted on the size one
 * byte over); the posts that fit are delivered in order, those that do
 * not are dropped, and the next small post comes.
 */
static void test_exact_limit(void **state)
{
    static const char uid[] = "edge";
    /* The control message's topic (28), and its body's head: the expiry
     * ("30": deliver_ttl_ms 30000), a space, the id, a newline; the
     * publish's topic, feed/edge (9). */
    const size_t topic = 28, head = 2 + 1 + sizeof(uid) - 1 + 1, feed_topic = 9;
    char *tok = ft_node_token(&env, uid), key[FP_ID_BUFSZ + 16], id[32];
    pid_t bridge = env.node[0].bridge;
    long long refused = ft_node_stat(&env, 1, "mqtt_refused");
    long from = ft_log_size(env.node[0].bridge_log);
    size_t base, fit_control, fit, n;
    int k, got = 0, dropped = 0;
    const char *p;
    ft_mqtt u;

    (void)state;
    snprintf(key, sizeof(key), "online:%s", env.p.node_id);
    /* The only follower now: test_packet_limit's users are gone. */
    assert_true(ft_node_redis_int(&env, "DEL followers:lim") >= 0);
    assert_true(ft_node_redis_int(&env, "SADD followers:lim %s", uid) >= 0);
    assert_int_equal(ft_mqtt_connect(&u, ft_node_port(&env, 1), NULL, uid, tok, 4, 5000), 0);
    assert_int_equal(ft_mqtt_subscribe(&u, "feed/edge", 5000), 1);
    assert_int_equal(ft_redis_wait_member(env.p.redis.port, key, uid, 3000), 1);
    post("e0", 10);
    assert_int_equal(ft_mqtt_wait_messages(&u, 1, 10000), 1);
    base = strlen(u.last_payload) - 10;
    /* 4096 = 1 + 2 (remaining length) + 2 + topic + 2 (packet id) + 1 + 5
     * (the expiry property) + head + base + text. */
    fit_control = 4096 - 3 - 2 - topic - 2 - 6 - head - base;
    fit = 4096 - 3 - 2 - feed_topic - 2 - 6 - base;
    assert_int_equal(fit - fit_control, 27);
    /* The largest control message, then the smallest that goes as a
     * publish instead: both delivered. */
    post("c0", fit_control);
    post("c1", fit_control + 1);
    assert_int_equal(ft_mqtt_wait_messages(&u, 3, 10000), 3);
    assert_non_null(strstr(u.payloads[1], "\"id\":\"c0\""));
    assert_non_null(strstr(u.payloads[2], "\"id\":\"c1\""));
    for (k = -6; k <= 6; k++) {
        snprintf(id, sizeof(id), "s%d", k + 6);
        n = fit + (size_t)(k);
        post(id, n);
    }
    post("end", 10);
    /* Wait for "end": e0, c0, c1, the posts that fit, end. */
    for (k = 0; k < 50 && strstr(u.last_payload, "\"id\":\"end\"") == NULL; k++)
        ft_mqtt_wait_messages(&u, u.received + 1, 200);
    assert_non_null(strstr(u.last_payload, "\"id\":\"end\""));
    assert_true(u.received <= 17);
    /* The ones delivered are the first of the sweep, in order. */
    for (k = 3; k < u.received - 1; k++) {
        snprintf(id, sizeof(id), "\"id\":\"s%d\"", k - 3);
        p = strstr(u.payloads[k], id);
        if (p == NULL)
            fail_msg("message %d is not post s%d: %.80s", k, k - 3, u.payloads[k]);
        got++;
    }
    dropped = 13 - got;
    printf("# around the limit: %d of 13 posts delivered, %d dropped\n", got, dropped);
    /* Exactly those up to the limit. */
    assert_int_equal(got, 7);
    assert_int_equal(ft_node_stat_wait(&env, 1, "mqtt_refused", refused + 6, 5000), refused + 6);
    assert_true(env.node[0].bridge == bridge && kill(bridge, 0) == 0);
    assert_int_equal(ft_log_count(env.node[0].bridge_log, from, "Assertion"), 0);
    ft_mqtt_close(&u);
    free(tok);
}

/*
 * Ribbon documents past the limit: ten pushes of entries with 480-byte
 * texts make documents that grow past 4096 bytes (about seven entries
 * fit). Those that fit are published retained (broadcasts), the others
 * dropped unsent (mqtt_refused): each document counts once, never as a
 * broadcast as well.
 */
static void test_ribbon_too_large(void **state)
{
    long long b0 = ft_node_stat(&env, 1, "broadcasts"), r0 = ft_node_stat(&env, 1, "mqtt_refused");
    long long b = b0, r = r0, at;
    char text[481];
    int i;

    (void)state;
    assert_true(b0 >= 0 && r0 >= 0);
    memset(text, 'r', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    for (i = 0; i < 10; i++)
        assert_int_equal(ft_node_publishf(&env, "ribbon.pushed",
                                          "{\"type\":\"ribbon.pushed\",\"entry\":{\"user_id\":"
                                          "\"rb%d\",\"text\":\"%s\",\"at\":%d}}",
                                          i, text, i + 1),
                         0);
    /* Every document handled (each counts once at least), then one more
     * write of the counters: what they say then is final. */
    for (i = 0; i < 100 && (b - b0) + (r - r0) < 10; i++) {
        at = ft_node_stat(&env, 1, "updated_ms");
        ft_node_stat_wait(&env, 1, "updated_ms", at + 1, 2000);
        b = ft_node_stat(&env, 1, "broadcasts");
        r = ft_node_stat(&env, 1, "mqtt_refused");
    }
    at = ft_node_stat(&env, 1, "updated_ms");
    assert_true(ft_node_stat_wait(&env, 1, "updated_ms", at + 1, 5000) > at);
    b = ft_node_stat(&env, 1, "broadcasts") - b0;
    r = ft_node_stat(&env, 1, "mqtt_refused") - r0;
    printf("# ribbon documents: %lld published, %lld too large\n", b, r);
    assert_true(b >= 1 && r >= 1);
    assert_int_equal(b + r, 10);
}

/* Adds every id of a feed.deliver message's "recipients" to the Redis set
 * seen, each new there. Returns how many, or -1 when body is not such a
 * message. */
static long deliver_recipients(const char *body, const char *seen)
{
    cJSON *root = cJSON_Parse(body), *list, *id;
    long n = -1;

    list = cJSON_GetObjectItemCaseSensitive(root, "recipients");
    if (cJSON_IsArray(list)) {
        n = 0;
        cJSON_ArrayForEach(id, list)
        {
            assert_true(cJSON_IsString(id));
            assert_int_equal(ft_node_redis_int(&env, "SADD %s %s", seen, id->valuestring), 1);
            n++;
        }
    }
    cJSON_Delete(root);
    return n;
}

/*
 * A node's share over 10,000 recipients goes to feed.deliver in several
 * messages, so that none nears RabbitMQ's max_message_size (a message
 * over it closes the channel at every try, and its event would come back
 * for ever). Node "nx" is the test's: a heartbeat, 10,001 users online
 * who follow "big", and its queue feed.deliver.nx, bound as a stage 2
 * would bind it but read by the test. One post by "big": two messages,
 * 10,000 and 1 recipients, each recipient once.
 */
static void test_deliver_split(void **state)
{
    const int n = 10001;
    char *body = NULL;
    long first, second;
    int i;

    (void)state;
    /* The node's heartbeat (EX: gone after the test whatever happens),
     * its place in `nodes`, its users, and the author's followers. */
    assert_int_equal(
        ft_node_redis_int(&env, "EVAL %s 4 followers:big online:nx node:nx nodes %d",
                          "redis.call('SET', KEYS[3], '1', 'EX', 120) "
                          "redis.call('SADD', KEYS[4], 'nx') "
                          "for i = 0, tonumber(ARGV[1]) - 1 do "
                          "local u = string.format('bg%05d', i) "
                          "redis.call('SADD', KEYS[1], u) redis.call('SADD', KEYS[2], u) "
                          "end return redis.call('SCARD', KEYS[2])",
                          n),
        n);
    assert_int_equal(ft_event_pub_bind(&env.pub, "feed.deliver.nx", "feed.deliver", "nx"), 0);
    assert_int_equal(
        ft_node_publishf(&env, "post.created",
                         "{\"type\":\"post.created\",\"post\":{\"id\":\"bp1\","
                         "\"author_id\":\"big\",\"text\":\"to many\",\"created_at\":%lld}}",
                         (long long)time(NULL)),
        0);
    for (i = 0; i < 500 && ft_node_queue_depth(&env, "feed.deliver.nx") < 2; i++)
        ft_sleep_ms(20);
    assert_int_equal(ft_node_queue_depth(&env, "feed.deliver.nx"), 2);
    assert_int_equal(ft_event_pub_take_body(&env.pub, "feed.deliver.nx", &body), 1);
    first = deliver_recipients(body, "seen:nx");
    free(body);
    assert_int_equal(ft_event_pub_take_body(&env.pub, "feed.deliver.nx", &body), 1);
    second = deliver_recipients(body, "seen:nx");
    free(body);
    printf("# a share of %d recipients: messages of %ld and %ld\n", n, first, second);
    assert_int_equal(first, 10000);
    assert_int_equal(second, 1);
    assert_int_equal(ft_node_redis_int(&env, "SCARD seen:nx"), n);

    assert_int_equal(ft_event_pub_delete(&env.pub, "feed.deliver.nx"), 0);
    assert_true(ft_node_redis_int(&env, "DEL node:nx online:nx seen:nx followers:big") >= 0);
    assert_true(ft_node_redis_int(&env, "SREM nodes nx") >= 0);
}

/* clang-format off */
FT_MAIN(ft_mqtt_run_group, setup, teardown,
        cmocka_unit_test(test_packet_limit),
        cmocka_unit_test(test_exact_limit),
        cmocka_unit_test(test_ribbon_too_large),
        cmocka_unit_test(test_deliver_split))
/* clang-format on */
