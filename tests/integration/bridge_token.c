/*
 * feed-bridge's broker token outlives an outage. With token_ttl 60 s (the
 * least allowed), the broker is SIGKILLed while a post is routed to its
 * node, and stays down 65 s: longer than the bridge's token lives, with
 * the delivery in the bridge's hands all along. When the broker is back,
 * the bridge connects with a fresh token, publishes the delivery it held,
 * and the next post reaches its user live. (It used to offer the expired
 * token for ever.) Then the renewal while connected: at 80 % of the
 * token's life the bridge reconnects with a fresh one, set on its network
 * thread.
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

#define TOKEN_TTL_S 60
#define OUTAGE_MS ((TOKEN_TTL_S + 5) * 1000)

static ft_node_env env;

static int start(void)
{
    char ttl[16];

    snprintf(ttl, sizeof(ttl), "%d", TOKEN_TTL_S);
    setenv("FEEDPUSH_TOKEN_TTL", ttl, 1); /* the bridge inherits it */
    return ft_node_env_start(&env, 1);
}

FT_FIXTURES(start(), ft_node_env_stop(&env))

static void post(const char *id)
{
    assert_int_equal(ft_node_publishf(&env, "post.created",
                                      "{\"type\":\"post.created\",\"post\":{\"id\":\"%s\","
                                      "\"author_id\":\"tka\",\"text\":\"t\",\"created_at\":%lld}}",
                                      id, (long long)time(NULL)),
                     0);
}

/* Presence reaches Redis through the plugin's thread, after the SUBACK
 * may have come: wait for it. */
static void wait_online(const char *uid)
{
    assert_int_equal(ft_redis_wait_member(env.p.redis.port, "online:n1", uid, 5000), 1);
}

/* True once the bridge's log holds needle (up to timeout_ms). */
static bool bridge_log_wait(const char *needle, int timeout_ms)
{
    return ft_log_wait(env.node[0].bridge_log, 0, needle, timeout_ms) == 1;
}

static void test_outage_longer_than_the_token(void **state)
{
    long long deliveries;
    ft_mqtt u;
    char *t;

    (void)state;
    assert_true(ft_node_redis_int(&env, "SADD followers:tka %s", "tku") >= 0);
    t = ft_node_token(&env, "tku");
    assert_int_equal(ft_mqtt_connect(&u, ft_node_port(&env, 1), NULL, "tku", t, 4, 5000), 0);
    assert_int_equal(ft_mqtt_subscribe(&u, "feed/tku", 5000), 1);
    wait_online("tku");

    /* The broker dies; its presence stays, and the test keeps its
     * heartbeat up, as in the seconds before it would lapse, so the post
     * is routed to it and the bridge holds the delivery. */
    assert_int_equal(ft_server_kill(&env.p.mosq), 0);
    assert_true(ft_node_redis_int(&env, "SET node:n1 %s EX 300", "1") != 0);
    deliveries = ft_node_stat(&env, 1, "deliveries");
    post("tk1");
    assert_true(bridge_log_wait("waiting for the link", 10000));
    ft_sleep_ms(OUTAGE_MS); /* the outage itself: the token must run out */

    assert_int_equal(ft_server_restart(&env.p.mosq), 0);
    assert_int_equal(ft_node_stat_wait(&env, 1, "deliveries", deliveries + 1, 20000),
                     deliveries + 1);
    ft_mqtt_close(&u);
    assert_int_equal(ft_mqtt_connect(&u, ft_node_port(&env, 1), NULL, "tku", t, 4, 5000), 0);
    assert_int_equal(ft_mqtt_subscribe(&u, "feed/tku", 5000), 1);
    wait_online("tku"); /* the restarted plugin's presence, or tk2 skips n1 */
    post("tk2");
    assert_int_equal(ft_mqtt_wait_messages(&u, 1, 10000), 1);
    assert_non_null(strstr(u.last_payload, "\"id\":\"tk2\""));
    ft_mqtt_close(&u);
    free(t);
}

/*
 * At 80 % of its token's life the bridge ends its connection, its network
 * thread sets a fresh token, and it connects again at once. Past the old
 * token's end (12 s after the renewal, plus the plugin's check), a post
 * still reaches its user live, and the broker never refused the bridge
 * nor disconnected it for an expired token.
 */
static void test_renewal_while_connected(void **state)
{
    char broker_log[sizeof(env.p.mosq.dir) + 32];
    long from = ft_log_size(env.node[0].bridge_log), broker_from = ft_plugin_env_log_size(&env.p);
    ft_mqtt u;
    char *t;

    (void)state;
    assert_true(from >= 0 && broker_from >= 0);
    snprintf(broker_log, sizeof(broker_log), "%s/mosquitto/mosquitto.log", env.p.mosq.dir);
    assert_true(ft_node_redis_int(&env, "SADD followers:tka %s", "tku") >= 0);
    t = ft_node_token(&env, "tku");
    assert_int_equal(ft_mqtt_connect(&u, ft_node_port(&env, 1), NULL, "tku", t, 4, 5000), 0);
    assert_int_equal(ft_mqtt_subscribe(&u, "feed/tku", 5000), 1);

    assert_int_equal(ft_log_wait(env.node[0].bridge_log, from, "renewing the bridge token",
                                 TOKEN_TTL_S * 1000),
                     1);
    ft_sleep_ms((TOKEN_TTL_S / 5 + 3) * 1000);
    post("tk3");
    assert_int_equal(ft_mqtt_wait_messages(&u, 1, 10000), 1);
    assert_non_null(strstr(u.last_payload, "\"id\":\"tk3\""));
    assert_int_equal(ft_log_wait(broker_log, broker_from, "client \"feed-bridge-", 0), 0);
    assert_int_equal(ft_log_wait(env.node[0].bridge_log, from, "refused the bridge", 0), 0);
    ft_mqtt_close(&u);
    free(t);
}

/* clang-format off */
FT_MAIN(ft_mqtt_run_group, setup, teardown,
        cmocka_unit_test(test_outage_longer_than_the_token),
        cmocka_unit_test(test_renewal_while_connected))
/* clang-format on */
