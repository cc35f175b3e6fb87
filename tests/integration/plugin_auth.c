/*
 * feed_auth.so, authentication: a real mosquitto loading the plugin over
 * TCP. Every refusal the plugin promises is tried and must produce a
 * not-authorised CONNACK; valid tokens are accepted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "plugin_env.h"

static fp_plugin_env env;

static int setup(void **state)
{
    (void)state;
    return fp_plugin_env_start(&env, "n1", NULL);
}

static int teardown(void **state)
{
    (void)state;
    return fp_plugin_env_stop(&env);
}

static void test_valid_token_accepted(void **state)
{
    char *tok = fp_plugin_env_token_now(&env, "alice", FP_ROLE_USER);
    fp_mqtt c;

    (void)state;
    assert_int_equal(fp_mqtt_connect(&c, env.mosq.port, NULL, "alice", tok, 4, 3000), 0);
    assert_int_equal(fp_mqtt_subscribe(&c, "feed/alice", 3000), 1);
    fp_mqtt_close(&c);
    free(tok);
}

static void test_username_must_equal_sub(void **state)
{
    char *tok = fp_plugin_env_token_now(&env, "alice", FP_ROLE_USER);
    fp_mqtt c;

    (void)state;
    assert_int_equal(fp_mqtt_connect(&c, env.mosq.port, NULL, "bob", tok, 4, 3000), 5);
    fp_mqtt_close(&c);
    assert_int_equal(fp_mqtt_connect(&c, env.mosq.port, NULL, "bob", tok, 5, 3000), 135);
    fp_mqtt_close(&c);
    free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_token_accepted),
        cmocka_unit_test(test_username_must_equal_sub),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    mosquitto_lib_init();
    rc = cmocka_run_group_tests(tests, setup, teardown);
    mosquitto_lib_cleanup();
    return rc;
}
