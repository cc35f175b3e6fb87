/* Unit tests for common/fp_id (the id rule of the v1 contract) and
 * common/fp_keys (the Redis keys built from ids). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>

#include "fp_id.h"
#include "fp_keys.h"
#include "ft_main.h"

static void test_valid_ids(void **state)
{
    char longest[FP_ID_MAX + 1];

    (void)state;
    memset(longest, 'a', FP_ID_MAX);
    longest[FP_ID_MAX] = '\0';
    assert_true(fp_id_valid("a"));
    assert_true(fp_id_valid("user_42"));
    assert_true(fp_id_valid("Node-1"));
    assert_true(fp_id_valid("0123456789"));
    assert_true(fp_id_valid(longest));
}

static void test_invalid_ids(void **state)
{
    static const char *const bad[] = {
        "", "a/b", "a+b", "#", "feed/#", "a b", "a.b", "\xc3\xa9", "a\tb", "$SYS", "*", "a:b",
    };
    char too_long[FP_ID_MAX + 2];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(fp_id_valid(bad[i]));
    memset(too_long, 'a', FP_ID_MAX + 1);
    too_long[FP_ID_MAX + 1] = '\0';
    assert_false(fp_id_valid(too_long));
    assert_false(fp_id_valid(NULL));
}

static void test_valid_n(void **state)
{
    (void)state;
    /* Only the given length counts: the rest of the buffer is not read. */
    assert_true(fp_id_valid_n("abc/def", 3));
    assert_false(fp_id_valid_n("abc/def", 4));
    /* An embedded NUL is not an id character. */
    assert_false(fp_id_valid_n("ab\0c", 4));
    assert_false(fp_id_valid_n("abc", 0));
    assert_false(fp_id_valid_n(NULL, 3));
}

static void test_keys(void **state)
{
    char buf[32];

    (void)state;
    assert_int_equal(fp_key(buf, sizeof(buf), "app:", FP_KEY_FEED, "alice"), 0);
    assert_string_equal(buf, "app:feed:alice");
    assert_int_equal(fp_key(buf, sizeof(buf), NULL, FP_KEY_NODES, NULL), 0);
    assert_string_equal(buf, "nodes");
    assert_int_equal(fp_key(buf, sizeof(buf), "", FP_KEY_REVOKED_CHANNEL, ""), 0);
    assert_string_equal(buf, "revoked");
    /* 31 bytes fit, 32 do not (and the result is cut, NUL-terminated). */
    assert_int_equal(fp_key(buf, sizeof(buf), "0123456789012345678901", "post:", "abcd"), 0);
    assert_int_equal(fp_key(buf, sizeof(buf), "0123456789012345678901", "post:", "abcde"),
                     -ENAMETOOLONG);
    assert_int_equal(strlen(buf), sizeof(buf) - 1);
}

/* clang-format off */
FT_MAIN(ft_unit_run, NULL, NULL,
        cmocka_unit_test(test_valid_ids),
        cmocka_unit_test(test_invalid_ids),
        cmocka_unit_test(test_valid_n),
        cmocka_unit_test(test_keys))
/* clang-format on */
