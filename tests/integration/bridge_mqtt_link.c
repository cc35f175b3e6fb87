/*
 * feed-bridge's link to its broker (bridge/mqtt_link.c) against a real
 * mosquitto with feed_auth.so. Publishes made while the link is down are
 * queued by libmosquitto and sent when it reconnects: the link counts
 * them as sent, its flush settles them by their PUBACKs on the new
 * connection, and each reaches the subscriber once, not again through a
 * retry of the caller.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "ft_main.h"
#include "ft_redis.h"
#include "mqtt_link.h"
#include "plugin_env.h"

#define DOWN_PUBLISHES 20

static ft_plugin_env env;

static int group_setup(void **state)
{
    (void)state;
    return ft_plugin_env_start(&env, "n1", NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    return ft_plugin_env_stop(&env);
}

/* Runs sub's loop until fb_mqtt_connected(m) is want, or timeout_ms. */
static bool wait_link(fb_mqtt *m, ft_mqtt *sub, bool want, int timeout_ms)
{
    int64_t end = fp_time_mono_ms() + timeout_ms;

    while (fb_mqtt_connected(m) != want) {
        if (fp_time_mono_ms() >= end)
            return false;
        ft_mqtt_pump(sub, 20);
    }
    return true;
}

/*
 * The bridge's user is revoked one second ahead, so the plugin kicks the
 * link and refuses the tokens it mints until that second has passed: the
 * link is down for one to three seconds while the broker stays up. The
 * publishes made meanwhile all return 0, the flush returns 0 once the
 * link is back with every one acknowledged and none refused, and the
 * subscriber gets each exactly once. Before, a publish made while
 * libmosquitto had no socket failed, although libmosquitto had queued it
 * and sent it after the reconnect: the caller's retry was a second copy.
 */
static void test_publish_while_down(void **state)
{
    fb_mqtt_config cfg = {.host = "127.0.0.1",
                          .port = env.mosq.port,
                          .node_id = "n1",
                          .alg = FP_JWT_HS256,
                          .signing_key_file = env.secret_path,
                          .token_ttl_s = 3600,
                          .timeout_ms = 10000};
    char *tok = ft_plugin_env_token_now(&env, "u1", FP_ROLE_USER);
    redisContext *rc = ft_redis_connect(env.redis.port);
    char payload[32], seen[DOWN_PUBLISHES + 1] = {0};
    fb_mqtt_batch batch;
    long long before;
    fb_mqtt *m = NULL;
    ft_mqtt sub;
    int i, n;

    (void)state;
    assert_int_equal(ft_mqtt_connect(&sub, env.mosq.port, "u1-sub", "u1", tok, 5, 3000), 0);
    assert_int_equal(ft_mqtt_subscribe(&sub, "feed/u1", 3000), 1);
    assert_int_equal(fb_mqtt_open(&m, &cfg), 0);
    assert_int_equal(fb_mqtt_publish(m, "feed/u1", "up", 2, false), 0);
    assert_int_equal(fb_mqtt_flush(m, NULL), 0);
    assert_int_equal(ft_mqtt_wait_messages(&sub, 1, 3000), 1);

    before = (long long)time(NULL) + 1;
    ft_redis_ok(rc, "SET revoked:bridge-n1 %lld", before);
    snprintf(payload, sizeof(payload), "bridge-n1 %lld", before);
    assert_int_equal(ft_redis_int(rc, "PUBLISH revoked %s", payload), 1);
    assert_true(wait_link(m, &sub, false, 3000));

    fb_mqtt_begin(m);
    for (i = 0; i < DOWN_PUBLISHES; i++) {
        n = snprintf(payload, sizeof(payload), "down %d", i);
        assert_int_equal(fb_mqtt_publish(m, "feed/u1", payload, (size_t)n, false), 0);
        ft_mqtt_pump(&sub, 50);
    }
    assert_int_equal(fb_mqtt_flush(m, &batch), 0);
    assert_int_equal(batch.refused, 0);
    assert_int_equal(batch.unsendable, 0);
    assert_true(fb_mqtt_connected(m));

    /* Each once: 1 + DOWN_PUBLISHES messages, and no more after a pause. */
    assert_int_equal(ft_mqtt_wait_messages(&sub, 1 + DOWN_PUBLISHES, 5000), 1 + DOWN_PUBLISHES);
    ft_mqtt_pump(&sub, 1000);
    assert_int_equal(sub.received, 1 + DOWN_PUBLISHES);
    for (i = 1; i < 16 && i <= DOWN_PUBLISHES; i++) {
        assert_int_equal(sscanf(sub.payloads[i], "down %d", &n), 1);
        assert_true(n >= 0 && n < DOWN_PUBLISHES && !seen[n]);
        seen[n] = 1;
    }

    fb_mqtt_free(m);
    ft_mqtt_close(&sub);
    redisFree(rc);
    free(tok);
    assert_false(ft_plugin_env_sanitizer_report(&env));
}

/* clang-format off */
FT_MAIN(ft_mqtt_run_group, group_setup, group_teardown,
        cmocka_unit_test(test_publish_while_down))
/* clang-format on */
