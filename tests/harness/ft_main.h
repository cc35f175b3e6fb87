/*
 * ft_main.h - the parts every cmocka test program repeats, written once.
 *
 *     static ft_node_env env;
 *     FT_FIXTURES(ft_node_env_start(&env, 1), ft_node_env_stop(&env))
 *     ...tests...
 *     FT_MAIN(ft_harness_run, setup, teardown,
 *             cmocka_unit_test(test_a),
 *             cmocka_unit_test(test_b))
 *
 * FT_FIXTURES(start, stop) defines the group fixtures setup() and
 * teardown() of a program whose tests share one environment: each returns
 * what its expression gives (0, or -1 when the environment failed).
 *
 * FT_MAIN(runner, setup, teardown, tests...) defines main(): the tests
 * (cmocka_unit_test entries) run as one group with the group fixtures
 * (NULL for none) through runner, a function shaped like cmocka's group
 * runner:
 *   ft_unit_run        cmocka's own (unit tests)
 *   ft_harness_run     tests on real servers: SIGPIPE ignored (a server
 *                      may close a socket mid-write), and what the
 *                      teardown found is counted (ft_harness_exit:
 *                      cmocka 1.1.5 exits 0 after a failed group
 *                      teardown)
 *   ft_mqtt_run_group  the same with libmosquitto initialised for the run
 *                      (plugin_env.h)
 * Include <cmocka.h> first.
 */
#ifndef FT_MAIN_H
#define FT_MAIN_H

#include <signal.h>

#include "ft_harness.h"

#define FT_FIXTURES(start, stop)                                                                   \
    static int setup(void **state)                                                                 \
    {                                                                                              \
        (void)state;                                                                               \
        return (start);                                                                            \
    }                                                                                              \
    static int teardown(void **state)                                                              \
    {                                                                                              \
        (void)state;                                                                               \
        return (stop);                                                                             \
    }

#define FT_MAIN(runner, setup, teardown, ...)                                                      \
    int main(void)                                                                                 \
    {                                                                                              \
        static const struct CMUnitTest ft__tests[] = {__VA_ARGS__};                                \
                                                                                                   \
        return runner("tests", ft__tests, sizeof(ft__tests) / sizeof(ft__tests[0]), setup,         \
                      teardown);                                                                   \
    }

#define ft_unit_run _cmocka_run_group_tests

/* Only programs that call it link ft_harness (a static inline that is not
 * called is not emitted). */
static inline int ft_harness_run(const char *name, const struct CMUnitTest *tests, size_t n,
                                 CMFixtureFunction setup, CMFixtureFunction teardown)
{
    signal(SIGPIPE, SIG_IGN);
    return ft_harness_exit(_cmocka_run_group_tests(name, tests, n, setup, teardown));
}

#endif
