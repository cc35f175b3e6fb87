/*
 * feed-bridge against a broker's limits: a broker with max_packet_size
 * 4096 (its CONNACK says so, and libmosquitto refuses larger publishes
 * before sending them). A deliver control message over the limit (ten
 * recipients with 64-character ids) falls back to one publish per
 * recipient, which fit: all ten get the post. A post too large even for
 * one recipient is dropped, logged once and counted as refused, and the
 * next post is delivered. Before, such a publish was retried every 100 ms
 * for ever, and every later delivery waited behind it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

    /* About 3.7 KB each, 4.4 KB as one control message for the ten. */
    post("l1", 3600);
    all_got(u, 1, "l1");
    assert_int_equal(ft_log_count(blog, from, "cannot be sent to broker"), 1);
    /* Over the limit for one recipient too: dropped, and the next post
     * comes through. The error was logged already. */
    post("l2", 5000);
    post("l3", 10);
    all_got(u, 2, "l3");
    assert_int_equal(ft_log_count(blog, from, "cannot be sent to broker"), 1);
    /* The control message, then l2 for each of the ten. */
    assert_int_equal(ft_node_stat_wait(&env, 1, "mqtt_refused", refused + 1 + USERS, 5000),
                     refused + 1 + USERS);
    for (i = 0; i < USERS; i++)
        ft_mqtt_close(&u[i]);
}

/* clang-format off */
FT_MAIN(ft_mqtt_run_group, setup, teardown,
        cmocka_unit_test(test_packet_limit))
/* clang-format on */
