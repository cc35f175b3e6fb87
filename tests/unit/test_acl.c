/* Unit tests for the plugin's pure parts: the ACL rules and the session table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "feed_auth.h"

static void test_user_rules(void **state)
{
    static const char *const denied[] = {
        "#", "+", "feed/#", "feed/+", "feed/bob", "$SYS/#", "$SYS/broker/uptime",
        "feed/alice/x", "feed/alice/#", "ribbon/#", "ribbon/x", "feed/", "feed", "", "Feed/alice",
        "feed/alicex", "feed/alic",
    };
    size_t i;

    (void)state;
    assert_true(fa_acl_allowed(FP_ROLE_USER, "alice", "feed/alice", FA_ACL_SUBSCRIBE));
    assert_true(fa_acl_allowed(FP_ROLE_USER, "alice", "feed/alice", FA_ACL_READ));
    assert_true(fa_acl_allowed(FP_ROLE_USER, "alice", "ribbon", FA_ACL_SUBSCRIBE));
    assert_true(fa_acl_allowed(FP_ROLE_USER, "alice", "ribbon", FA_ACL_READ));
    assert_true(fa_acl_allowed(FP_ROLE_USER, "alice", "anything", FA_ACL_UNSUBSCRIBE));
    for (i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
        assert_false(fa_acl_allowed(FP_ROLE_USER, "alice", denied[i], FA_ACL_SUBSCRIBE));
        assert_false(fa_acl_allowed(FP_ROLE_USER, "alice", denied[i], FA_ACL_READ));
    }
    /* Users publish nothing, not even to their own feed. */
    assert_false(fa_acl_allowed(FP_ROLE_USER, "alice", "feed/alice", FA_ACL_WRITE));
    assert_false(fa_acl_allowed(FP_ROLE_USER, "alice", "ribbon", FA_ACL_WRITE));
}

static void test_service_rules(void **state)
{
    (void)state;
    assert_true(fa_acl_allowed(FP_ROLE_SERVICE, "bridge", "feed/bob", FA_ACL_WRITE));
    assert_true(fa_acl_allowed(FP_ROLE_SERVICE, "bridge", "ribbon", FA_ACL_WRITE));
    assert_false(fa_acl_allowed(FP_ROLE_SERVICE, "bridge", "feed/a/b", FA_ACL_WRITE));
    assert_false(fa_acl_allowed(FP_ROLE_SERVICE, "bridge", "feed/+", FA_ACL_WRITE));
    assert_false(fa_acl_allowed(FP_ROLE_SERVICE, "bridge", "feed/#", FA_ACL_WRITE));
    assert_false(fa_acl_allowed(FP_ROLE_SERVICE, "bridge", "feed/", FA_ACL_WRITE));
    assert_false(fa_acl_allowed(FP_ROLE_SERVICE, "bridge", "other", FA_ACL_WRITE));
    assert_false(fa_acl_allowed(FP_ROLE_SERVICE, "bridge", "feed/bob", FA_ACL_SUBSCRIBE));
    assert_false(fa_acl_allowed(FP_ROLE_SERVICE, "bridge", "feed/bob", FA_ACL_READ));
    assert_false(fa_acl_allowed(FP_ROLE_SERVICE, "bridge", NULL, FA_ACL_WRITE));
}

static void test_sessions_table(void **state)
{
    fa_sessions t = {0};
    fp_jwt_claims c = {0};
    struct mosquitto *a = (struct mosquitto *)&t, *b = (struct mosquitto *)&c;
    char sub[FP_ID_BUFSZ];

    (void)state;
    snprintf(c.sub, sizeof(c.sub), "alice");
    c.exp = 100;
    c.iat = 10;
    c.has_iat = true;
    assert_int_equal(fa_sessions_add(&t, a, "tab1", &c), 0);
    assert_non_null(fa_sessions_find(&t, a));
    assert_ptr_equal(fa_sessions_find_id(&t, "tab1"), fa_sessions_find(&t, a));
    assert_int_equal(fa_sessions_find(&t, a)->iat, 10);

    /* A takeover of the same client id: the id index moves to the new one,
     * the old session stays findable by its connection until it leaves. */
    assert_int_equal(fa_sessions_add(&t, b, "tab1", &c), 0);
    assert_int_equal(t.count, 2);
    assert_ptr_equal(fa_sessions_find_id(&t, "tab1"), fa_sessions_find(&t, b));
    assert_false(fa_sessions_find(&t, a)->in_by_id);
    assert_int_equal(fa_sessions_remove(&t, a, sub, NULL), 1);
    assert_string_equal(sub, "alice");
    assert_ptr_equal(fa_sessions_find_id(&t, "tab1"), fa_sessions_find(&t, b));
    assert_int_equal(fa_sessions_remove(&t, a, sub, NULL), 0);
    assert_int_equal(fa_sessions_remove(&t, b, NULL, NULL), 1);
    assert_null(fa_sessions_find_id(&t, "tab1"));
    assert_int_equal(t.count, 0);

    assert_int_equal(fa_sessions_add(&t, a, "x", &c), 0);
    fa_sessions_clear(&t);
    assert_int_equal(t.count, 0);
    assert_null(t.by_client);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_rules),
        cmocka_unit_test(test_service_rules),
        cmocka_unit_test(test_sessions_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
