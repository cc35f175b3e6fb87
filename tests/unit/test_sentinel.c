/* Unit tests for the parts of backend/sentinel.c that need no server:
 * the Sentinel list and master name checks (fp_sentinel_new,
 * fp_redis_options_check) and the READONLY test. The Sentinel protocol
 * itself runs against real Sentinels in integration.redis_failover. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fp_sentinel.h"
#include "ft_main.h"

static void test_new(void **state)
{
    fp_sentinel *s = NULL;
    char err[160];

    (void)state;
    assert_int_equal(
        fp_sentinel_new(&s, "s1, s2:26380,10.0.0.3", "feedpush", 500, err, sizeof(err)), 0);
    assert_non_null(s);
    assert_int_equal(fp_sentinel_fd(s), -1); /* nothing dialled yet */
    assert_int_equal(fp_sentinel_switched(s), 0);
    fp_sentinel_free(s);
    fp_sentinel_free(NULL);
}

static void test_refusals(void **state)
{
    static const struct {
        const char *list, *name, *says;
    } bad[] = {
        {"", "feedpush", "is not host or host:port"},
        {"s1:0", "feedpush", "is not host or host:port"},
        {"s1,", "feedpush", "is not host or host:port"},
        {"s1", "", "1 to 64 characters"},
        {"s1", NULL, "1 to 64 characters"},
        {"s1", "a b", "spaces or control characters"},
        {"s1", "a\tb", "spaces or control characters"},
        {"s1", "x123456789x123456789x123456789x123456789x123456789x123456789x1234",
         "1 to 64 characters"},
    };
    fp_sentinel *s;
    char err[160];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s = (fp_sentinel *)&err; /* must be reset */
        err[0] = '\0';
        assert_int_equal(fp_sentinel_new(&s, bad[i].list, bad[i].name, 500, err, sizeof(err)),
                         -EINVAL);
        assert_null(s);
        if (strstr(err, bad[i].says) == NULL)
            fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err, bad[i].says);
    }
}

static void test_options_check(void **state)
{
    fp_redis_options o = {.host = "127.0.0.1",
                          .port = 6379,
                          .prefix = "",
                          .sentinels = "",
                          .master_name = "feedpush"};
    char err[200] = "";

    (void)state;
    assert_int_equal(fp_redis_options_check(&o, err, sizeof(err)), 0); /* no Sentinels */
    o.sentinels = "s1:26379,s2:26379,s3:26379";
    assert_int_equal(fp_redis_options_check(&o, err, sizeof(err)), 0);
    o.sentinels = "s1:26379,:1";
    assert_int_equal(fp_redis_options_check(&o, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "redis_sentinels/redis_master_name: \":1\""));
    o.sentinels = "s1";
    o.master_name = "";
    assert_int_equal(fp_redis_options_check(&o, err, sizeof(err)), -EINVAL);
}

static void test_readonly(void **state)
{
    (void)state;
    assert_true(fp_sentinel_readonly("READONLY You can't write against a read only replica."));
    assert_false(fp_sentinel_readonly("ERR unknown command"));
    assert_false(fp_sentinel_readonly("READ"));
    assert_false(fp_sentinel_readonly(NULL));
}

/* clang-format off */
FT_MAIN(ft_unit_run, NULL, NULL,
        cmocka_unit_test(test_new),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_options_check),
        cmocka_unit_test(test_readonly))
/* clang-format on */
