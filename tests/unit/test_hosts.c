/* Unit tests for fp_hosts_parse (common/fp_hosts.c): the amqp_hosts and
 * redis_sentinels lists of feed-bridge, feed-gateway and the plugin. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fp_hosts.h"
#include "ft_main.h"

static void test_lists(void **state)
{
    fp_host h[FP_HOSTS_MAX];
    char err[128];

    (void)state;
    assert_int_equal(fp_hosts_parse("rabbit1", 5672, h, err, sizeof(err)), 1);
    assert_string_equal(h[0].host, "rabbit1");
    assert_int_equal(h[0].port, 5672);
    assert_int_equal(fp_hosts_parse("a:5671, b ,10.0.0.3:1", 5672, h, err, sizeof(err)), 3);
    assert_string_equal(h[0].host, "a");
    assert_int_equal(h[0].port, 5671);
    assert_string_equal(h[1].host, "b");
    assert_int_equal(h[1].port, 5672);
    assert_string_equal(h[2].host, "10.0.0.3");
    assert_int_equal(h[2].port, 1);
    assert_int_equal(fp_hosts_parse("x:65535", 5672, h, err, sizeof(err)), 1);
    assert_int_equal(h[0].port, 65535);
}

static void test_refusals(void **state)
{
    static const char *const bad[] = {
        "",        ",",        "a,",    ",a",    "a,,b",       ":5672", "a:",  "a:0",
        "a:65536", "a:123456", "a:12x", "a b:1", "[::1]:5672", "a:-1",  "a/b",
    };
    fp_host h[FP_HOSTS_MAX];
    char err[128], many[256] = "";
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(fp_hosts_parse(bad[i], 5672, h, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "is not host or host:port"));
    }
    for (i = 0; i <= FP_HOSTS_MAX; i++)
        strcat(many, i == 0 ? "h" : ",h");
    assert_int_equal(fp_hosts_parse(many, 5672, h, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "more than"));
}

/* clang-format off */
FT_MAIN(ft_unit_run, NULL, NULL,
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_refusals))
/* clang-format on */
