/*
 * feed_auth.so under churn: 1,000 clients connect with valid tokens
 * (several users, some with a second session, some taking over a client
 * id), subscribe to their feed and leave; then 100 connects are refused
 * for each kind of bad credentials. Afterwards the node's presence set in
 * Redis must be empty again (every session counted up was counted down)
 * and the broker must stop cleanly.
 *
 * This is the plugin's leak check: in the sanitizer build (FEEDPUSH_SANITIZE)
 * the broker runs with ASan/LSan preloaded, and ft_plugin_env_stop() fails
 * when the broker's log holds a sanitizer report, such as memory the plugin
 * lost along one of these paths.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "plugin_env.h"
#include "ft_main.h"

#define LEAK_NODE "leak"
#define LEAK_CLIENTS 1000
#define LEAK_USERS 37
#define LEAK_SECOND_EVERY 10   /* every 10th client also opens a second session */
#define LEAK_TAKEOVER_EVERY 50 /* every 50th has its client id taken over */
#define LEAK_REFUSED 100
#define LEAK_TIMEOUT_MS 5000

static ft_plugin_env env;
static bool env_stopped;

static int setup(void **state)
{
    (void)state;
    return ft_plugin_env_start(&env, LEAK_NODE, NULL);
}

static int teardown(void **state)
{
    (void)state;
    /* After a failed test; the last test stops the env itself. */
    if (!env_stopped)
        ft_plugin_env_stop(&env);
    return 0;
}

/* MQTT 3.1.1 for even i, MQTT 5 for odd i. */
static int leak_protocol(int i)
{
    return i % 2 == 0 ? 4 : 5;
}

/* The not-authorised CONNACK code of the protocol. */
static int leak_refused_code(int protocol)
{
    return protocol == 5 ? 135 : 5;
}

/* Connects (must be accepted) and subscribes to the user's feed (QoS 1). */
static void leak_connect_subscribe(ft_mqtt *c, const char *client_id, const char *sub,
                                   const char *token, int protocol)
{
    char topic[FP_ID_BUFSZ + 8];

    snprintf(topic, sizeof(topic), "feed/%s", sub);
    assert_int_equal(
        ft_mqtt_connect(c, env.mosq.port, client_id, sub, token, protocol, LEAK_TIMEOUT_MS), 0);
    assert_int_equal(ft_mqtt_subscribe(c, topic, LEAK_TIMEOUT_MS), 1);
}

/*
 * A new connection with the client id of a live one: the broker closes
 * the old connection, whose session the plugin must still remove by
 * pointer while the new one owns the id.
 */
static void leak_takeover(ft_mqtt *old, const char *client_id, const char *sub, const char *token,
                          int protocol)
{
    ft_mqtt c;

    leak_connect_subscribe(&c, client_id, sub, token, protocol);
    assert_true(ft_mqtt_wait_closed(old, LEAK_TIMEOUT_MS) >= 0);
    ft_mqtt_close(&c);
}

static void test_churn_valid_clients(void **state)
{
    char *tokens[LEAK_USERS];
    char subs[LEAK_USERS][FP_ID_BUFSZ], id[64];
    ft_mqtt c, second;
    int i, u, p;

    (void)state;
    for (u = 0; u < LEAK_USERS; u++) {
        snprintf(subs[u], sizeof(subs[u]), "leak%d", u);
        tokens[u] = ft_plugin_env_token_now(&env, subs[u], FP_ROLE_USER);
    }
    for (i = 0; i < LEAK_CLIENTS; i++) {
        u = i % LEAK_USERS;
        p = leak_protocol(i);
        snprintf(id, sizeof(id), "leak-%d", i);
        leak_connect_subscribe(&c, id, subs[u], tokens[u], p);
        if (i % LEAK_SECOND_EVERY == 0) {
            snprintf(id, sizeof(id), "leak-%d-b", i);
            leak_connect_subscribe(&second, id, subs[u], tokens[u], leak_protocol(i + 1));
            ft_mqtt_close(&second);
        }
        if (i % LEAK_TAKEOVER_EVERY == LEAK_TAKEOVER_EVERY / 2) {
            snprintf(id, sizeof(id), "leak-%d", i);
            leak_takeover(&c, id, subs[u], tokens[u], p);
        }
        ft_mqtt_close(&c);
    }
    for (u = 0; u < LEAK_USERS; u++)
        free(tokens[u]);
}

/*
 * Refused connects, cycling through the kinds of bad credentials: not a
 * JWT, a bad signature, an expired token, a username that is not the
 * token's sub. Each must get the not-authorised CONNACK.
 */
static void test_refused_connects(void **state)
{
    int64_t now = (int64_t)time(NULL);
    char *good = ft_plugin_env_token_now(&env, "leak0", FP_ROLE_USER);
    char *expired = ft_plugin_env_token(&env, "leak0", now - 7200, now - 3600, FP_ROLE_USER);
    char *badsig = strdup(good);
    const char *token, *user;
    char id[64];
    size_t len;
    ft_mqtt c;
    int i, p;

    (void)state;
    assert_non_null(badsig);
    len = strlen(badsig);
    badsig[len - 2] = badsig[len - 2] == 'A' ? 'B' : 'A';
    for (i = 0; i < LEAK_REFUSED; i++) {
        user = "leak0";
        switch (i % 4) {
        case 0:
            token = "not-a-jwt";
            break;
        case 1:
            token = badsig;
            break;
        case 2:
            token = expired;
            break;
        default:
            token = good;
            user = "leak1";
            break;
        }
        p = leak_protocol(i / 4);
        snprintf(id, sizeof(id), "refused-%d", i);
        assert_int_equal(ft_mqtt_connect(&c, env.mosq.port, id, user, token, p, LEAK_TIMEOUT_MS),
                         leak_refused_code(p));
        ft_mqtt_close(&c);
    }
    free(badsig);
    free(expired);
    free(good);
}

/* SCARD online:<node> through redis-cli, or -1. */
static long leak_presence_count(void)
{
    char cmd[128], out[64];
    long n = -1;
    FILE *f;

    snprintf(cmd, sizeof(cmd), "redis-cli -h 127.0.0.1 -p %d SCARD online:%s 2>/dev/null",
             env.redis.port, LEAK_NODE);
    f = popen(cmd, "r");
    if (f == NULL)
        return -1;
    if (fgets(out, sizeof(out), f) != NULL)
        n = strtol(out, NULL, 10);
    pclose(f);
    return n;
}

/* Every session up was matched by a session down: presence drains to 0. */
static void test_presence_drained(void **state)
{
    struct timespec pause = {0, 100 * 1000 * 1000};
    int64_t end = fp_time_mono_ms() + 5000;
    long n;

    (void)state;
    for (;;) {
        n = leak_presence_count();
        if (n == 0 || fp_time_mono_ms() > end)
            break;
        nanosleep(&pause, NULL);
    }
    assert_int_equal(n, 0);
}

/* The broker exits cleanly; under the sanitizers its log has no report. */
static void test_broker_stops_clean(void **state)
{
    (void)state;
    env_stopped = true;
    assert_int_equal(ft_plugin_env_stop(&env), 0);
}

/* tools/fp-server gives instrumented brokers the suppression for
 * mosquitto's own websockets leak; every other leak fails the stop. */
/* clang-format off */
FT_MAIN(ft_mqtt_run_group, setup, teardown,
        cmocka_unit_test(test_churn_valid_clients),
        cmocka_unit_test(test_refused_connects),
        cmocka_unit_test(test_presence_drained),
        cmocka_unit_test(test_broker_stops_clean))
/* clang-format on */
