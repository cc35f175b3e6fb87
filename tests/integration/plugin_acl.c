/*
 * feed_auth.so, topic ACL: a real mosquitto loading the plugin over TCP.
 * Role user may subscribe to and receive feed/<sub> and ribbon only and
 * publish nothing; role service may publish feed/<id> and ribbon only and
 * subscribe to nothing. Denials are checked where a client sees them: the
 * SUBACK (128 under MQTT 3.1.1, 135 under v5), the v5 PUBACK reason code
 * (135), and messages that never arrive. "Never arrives" is always proven
 * against a later message that does arrive on the same connection, since
 * the broker delivers in order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "plugin_env.h"
#include "ft_main.h"

#define CONNECT_MS 3000
#define WAIT_MS 3000
#define SUB_DENIED(protocol) ((protocol) == 5 ? 135 : 128)

static ft_plugin_env env;

/* Fails when a stop failed, e.g. a sanitizer report in the broker log. */
FT_FIXTURES(ft_plugin_env_start(&env, "acl1", NULL), ft_plugin_env_stop(&env))

/* Connects sub with a fresh token of role; asserts the CONNACK accepted
 * it. The client id is "<client_id>". */
static void connect_as(ft_mqtt *c, const char *client_id, const char *sub, fp_role role,
                       int protocol)
{
    char *tok = ft_plugin_env_token_now(&env, sub, role);
    int rc = ft_mqtt_connect(c, env.mosq.port, client_id, sub, tok, protocol, CONNECT_MS);

    free(tok);
    assert_int_equal(rc, 0);
}

/* ------------------------------------------------------------ publish */

/* Waits for exactly one message on c (and a little more for a second),
 * and asserts it is topic/payload. */
static void expect_only_message(ft_mqtt *c, const char *topic, const char *payload)
{
    assert_int_equal(ft_mqtt_wait_messages(c, 1, WAIT_MS), 1);
    ft_mqtt_pump(c, 100);
    assert_int_equal(c->received, 1);
    assert_string_equal(c->last_topic, topic);
    assert_string_equal(c->last_payload, payload);
}

/* ------------------------------------------------------------ tests */

static void test_user_subscribe_own_feed_and_ribbon(void **state)
{
    ft_mqtt c4, c5;

    (void)state;
    connect_as(&c4, "sub-ok-4", "alice", FP_ROLE_USER, 4);
    connect_as(&c5, "sub-ok-5", "alice", FP_ROLE_USER, 5);
    assert_int_equal(ft_mqtt_subscribe(&c4, "feed/alice", WAIT_MS), 1);
    assert_int_equal(ft_mqtt_subscribe(&c4, "ribbon", WAIT_MS), 1);
    assert_int_equal(ft_mqtt_subscribe(&c5, "feed/alice", WAIT_MS), 1);
    assert_int_equal(ft_mqtt_subscribe(&c5, "ribbon", WAIT_MS), 1);
    ft_mqtt_close(&c4);
    ft_mqtt_close(&c5);
}

static void test_user_subscribe_denied(void **state)
{
    static const char *const topics[] = {
        "#",
        "+",
        "feed/#",
        "feed/+",
        "feed/bob",
        "$SYS/#",
        "feed/alice/x",
        "ribbon/#",
        "feed/alice/#",
        "feed/",
        "Ribbon",
        "feed/alice ",
        "feed/alice/",
        "/feed/alice",
        "$share/g/feed/bob",
        "$share/g/#",
    };
    int protocol;
    size_t i;
    ft_mqtt c;

    (void)state;
    for (protocol = 4; protocol <= 5; protocol++) {
        connect_as(&c, protocol == 5 ? "sub-no-5" : "sub-no-4", "alice", FP_ROLE_USER, protocol);
        for (i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
            int granted = ft_mqtt_subscribe(&c, topics[i], WAIT_MS);

            if (granted != SUB_DENIED(protocol))
                fail_msg("user alice, MQTT %d, subscribe \"%s\": granted %d, want %d", protocol,
                         topics[i], granted, SUB_DENIED(protocol));
        }
        /* Denials do not cost the connection its rights. */
        assert_int_equal(ft_mqtt_subscribe(&c, "feed/alice", WAIT_MS), 1);
        assert_false(c.disconnected);
        ft_mqtt_close(&c);
    }
}

/* alice, subscribed to feed/alice (and refused feed/bob and #), never gets
 * what the service sends bob; bob does. */
static void test_user_receives_only_own_feed(void **state)
{
    ft_mqtt alice, bob, svc;

    (void)state;
    connect_as(&alice, "own-alice", "alice", FP_ROLE_USER, 4);
    connect_as(&bob, "own-bob", "bob", FP_ROLE_USER, 5);
    connect_as(&svc, "own-svc", "svc", FP_ROLE_SERVICE, 5);
    assert_int_equal(ft_mqtt_subscribe(&alice, "feed/alice", WAIT_MS), 1);
    assert_int_equal(ft_mqtt_subscribe(&alice, "feed/bob", WAIT_MS), 128);
    assert_int_equal(ft_mqtt_subscribe(&alice, "#", WAIT_MS), 128);
    assert_int_equal(ft_mqtt_subscribe(&bob, "feed/bob", WAIT_MS), 1);

    assert_int_equal(ft_mqtt_publish(&svc, "feed/bob", "to-bob", false, WAIT_MS), 0);
    assert_int_equal(ft_mqtt_publish(&svc, "feed/alice", "to-alice", false, WAIT_MS), 0);
    expect_only_message(&bob, "feed/bob", "to-bob");
    expect_only_message(&alice, "feed/alice", "to-alice");
    ft_mqtt_close(&alice);
    ft_mqtt_close(&bob);
    ft_mqtt_close(&svc);
}

/* A user's publishes to its own feed and to ribbon reach nobody, not even
 * as a retained message. */
static void test_user_publish_not_delivered(void **state)
{
    ft_mqtt alice, carol, dave, gina, svc;

    (void)state;
    connect_as(&alice, "pub-alice", "alice", FP_ROLE_USER, 5);
    connect_as(&carol, "pub-carol", "carol", FP_ROLE_USER, 4);
    connect_as(&dave, "pub-dave", "dave", FP_ROLE_USER, 4);
    connect_as(&svc, "pub-svc", "svc", FP_ROLE_SERVICE, 5);
    assert_int_equal(ft_mqtt_subscribe(&alice, "feed/alice", WAIT_MS), 1);
    assert_int_equal(ft_mqtt_subscribe(&alice, "ribbon", WAIT_MS), 1);
    assert_int_equal(ft_mqtt_subscribe(&carol, "ribbon", WAIT_MS), 1);

    assert_int_equal(ft_mqtt_publish(&alice, "feed/alice", "self", false, WAIT_MS), 135);
    assert_int_equal(ft_mqtt_publish(&alice, "ribbon", "from-alice", false, WAIT_MS), 135);
    assert_int_equal(ft_mqtt_publish(&dave, "ribbon", "from-dave", true, WAIT_MS), 0); /* 3.1.1: acked, dropped */
    assert_int_equal(ft_mqtt_publish(&dave, "feed/dave", "from-dave", false, WAIT_MS), 0);
    assert_false(alice.disconnected);
    assert_false(dave.disconnected);

    assert_int_equal(ft_mqtt_publish(&svc, "ribbon", "control", false, WAIT_MS), 0);
    expect_only_message(&carol, "ribbon", "control");
    expect_only_message(&alice, "ribbon", "control");
    /* Had dave's retained publish been kept, a new subscriber would get it
     * first. */
    connect_as(&gina, "pub-gina", "gina", FP_ROLE_USER, 4);
    assert_int_equal(ft_mqtt_subscribe(&gina, "ribbon", WAIT_MS), 1);
    assert_int_equal(ft_mqtt_publish(&svc, "ribbon", "control-2", false, WAIT_MS), 0);
    expect_only_message(&gina, "ribbon", "control-2");
    assert_false(gina.last_retain);
    ft_mqtt_close(&alice);
    ft_mqtt_close(&carol);
    ft_mqtt_close(&dave);
    ft_mqtt_close(&gina);
    ft_mqtt_close(&svc);
}

static void test_service_publish(void **state)
{
    static const char *const denied[] = {"feed/a/b", "other",  "feed/",     "feed",
                                         "ribbon/x", "$SYS/x", "feed/bob/x"};
    ft_mqtt bob, bob2, carol, svc, svc4;
    size_t i;

    (void)state;
    connect_as(&bob, "svc-bob", "bob", FP_ROLE_USER, 4);
    connect_as(&carol, "svc-carol", "carol", FP_ROLE_USER, 5);
    connect_as(&svc, "svc-5", "svc", FP_ROLE_SERVICE, 5);
    connect_as(&svc4, "svc-4", "svc", FP_ROLE_SERVICE, 4);
    assert_int_equal(ft_mqtt_subscribe(&bob, "feed/bob", WAIT_MS), 1);
    assert_int_equal(ft_mqtt_subscribe(&carol, "ribbon", WAIT_MS), 1);

    for (i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
        int rc = ft_mqtt_publish(&svc, denied[i], "nope", false, WAIT_MS);

        if (rc != 135)
            fail_msg("service publish to \"%s\": PUBACK %d, want 135", denied[i], rc);
    }
    /* Retained only on ribbon: a retained feed event would reach every
     * later subscriber again (3.1.1: acked and dropped). */
    assert_int_equal(ft_mqtt_publish(&svc, "feed/bob", "kept?", true, WAIT_MS), 135);
    assert_int_equal(ft_mqtt_publish(&svc4, "feed/bob", "kept-4?", true, WAIT_MS), 0);
    connect_as(&bob2, "svc-bob2", "bob", FP_ROLE_USER, 5);
    assert_int_equal(ft_mqtt_subscribe(&bob2, "feed/bob", WAIT_MS), 1);
    /* Any valid id's feed is allowed, whether or not anyone listens. */
    assert_int_equal(ft_mqtt_publish(&svc, "feed/nobody-here", "x", false, WAIT_MS), 16);

    assert_int_equal(ft_mqtt_publish(&svc, "feed/bob", "hello bob", false, WAIT_MS), 0);
    expect_only_message(&bob, "feed/bob", "hello bob");
    expect_only_message(&bob2, "feed/bob", "hello bob");
    assert_false(bob2.last_retain);
    ft_mqtt_close(&bob2);
    assert_int_equal(ft_mqtt_publish(&svc4, "ribbon", "news", false, WAIT_MS), 0);
    expect_only_message(&carol, "ribbon", "news");
    ft_mqtt_close(&bob);
    ft_mqtt_close(&carol);
    ft_mqtt_close(&svc);
    ft_mqtt_close(&svc4);
}

static void test_service_subscribe_denied(void **state)
{
    static const char *const topics[] = {"feed/bob", "ribbon", "#", "feed/+", "other"};
    int protocol;
    size_t i;
    ft_mqtt c;

    (void)state;
    for (protocol = 4; protocol <= 5; protocol++) {
        connect_as(&c, protocol == 5 ? "svcsub-5" : "svcsub-4", "svc", FP_ROLE_SERVICE, protocol);
        for (i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
            int granted = ft_mqtt_subscribe(&c, topics[i], WAIT_MS);

            if (granted != SUB_DENIED(protocol))
                fail_msg("service, MQTT %d, subscribe \"%s\": granted %d, want %d", protocol,
                         topics[i], granted, SUB_DENIED(protocol));
        }
        assert_false(c.disconnected);
        ft_mqtt_close(&c);
    }
}

/* The service's retained ribbon reaches a user subscribing afterwards with
 * retain set; clearing it (empty retained payload) works too. Last, so
 * no other test sees the retained message. */
static void test_retained_ribbon(void **state)
{
    ft_mqtt svc, erin, frank;
    int rc;

    (void)state;
    connect_as(&svc, "ret-svc", "svc", FP_ROLE_SERVICE, 5);
    rc = ft_mqtt_publish(&svc, "ribbon", "breaking", true, WAIT_MS);
    assert_true(rc >= 0 && rc < 128);
    connect_as(&erin, "ret-erin", "erin", FP_ROLE_USER, 4);
    assert_int_equal(ft_mqtt_subscribe(&erin, "ribbon", WAIT_MS), 1);
    expect_only_message(&erin, "ribbon", "breaking");
    assert_true(erin.last_retain);

    rc = ft_mqtt_publish(&svc, "ribbon", "", true, WAIT_MS);
    assert_true(rc >= 0 && rc < 128);
    connect_as(&frank, "ret-frank", "frank", FP_ROLE_USER, 5);
    assert_int_equal(ft_mqtt_subscribe(&frank, "ribbon", WAIT_MS), 1);
    assert_int_equal(ft_mqtt_publish(&svc, "ribbon", "live", false, WAIT_MS), 0);
    expect_only_message(&frank, "ribbon", "live");
    assert_false(frank.last_retain);
    ft_mqtt_close(&svc);
    ft_mqtt_close(&erin);
    ft_mqtt_close(&frank);
}

/* clang-format off */
FT_MAIN(ft_mqtt_run_group, setup, teardown,
        cmocka_unit_test(test_user_subscribe_own_feed_and_ribbon),
        cmocka_unit_test(test_user_subscribe_denied),
        cmocka_unit_test(test_user_receives_only_own_feed),
        cmocka_unit_test(test_user_publish_not_delivered),
        cmocka_unit_test(test_service_publish),
        cmocka_unit_test(test_service_subscribe_denied),
        cmocka_unit_test(test_retained_ribbon))
/* clang-format on */
