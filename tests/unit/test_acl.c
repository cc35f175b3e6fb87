/* Unit tests for the plugin's pure parts: the ACL rules and the session table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "feed_auth.h"
#include "ft_main.h"

/* One question to the topic rules: may a user ("alice") or the service
 * ("bridge") do access on topic? */
typedef struct {
    fp_role role;
    const char *topic;
    int access;
    bool allowed;
} acl_case;

#define USER(topic, access, allowed) {FP_ROLE_USER, topic, access, allowed}
#define SERVICE(topic, access, allowed) {FP_ROLE_SERVICE, topic, access, allowed}

static void test_rules(void **state)
{
    static const acl_case cases[] = {
        USER("feed/alice", FA_ACL_SUBSCRIBE, true),
        USER("feed/alice", FA_ACL_READ, true),
        USER("ribbon", FA_ACL_SUBSCRIBE, true),
        USER("ribbon", FA_ACL_READ, true),
        USER("anything", FA_ACL_UNSUBSCRIBE, true),
        /* Users publish nothing, not even to their own feed. */
        USER("feed/alice", FA_ACL_WRITE, false),
        USER("ribbon", FA_ACL_WRITE, false),
        SERVICE("feed/bob", FA_ACL_WRITE, true),
        SERVICE("ribbon", FA_ACL_WRITE, true),
        SERVICE("feed/a/b", FA_ACL_WRITE, false),
        SERVICE("feed/+", FA_ACL_WRITE, false),
        SERVICE("feed/#", FA_ACL_WRITE, false),
        SERVICE("feed/", FA_ACL_WRITE, false),
        SERVICE("other", FA_ACL_WRITE, false),
        SERVICE("feed/bob", FA_ACL_SUBSCRIBE, false),
        SERVICE("feed/bob", FA_ACL_READ, false),
        SERVICE(NULL, FA_ACL_WRITE, false),
    };
    /* Topics a user may neither subscribe to nor read from. */
    static const char *const denied[] = {
        "#", "+", "feed/#", "feed/+", "feed/bob", "$SYS/#", "$SYS/broker/uptime",
        "feed/alice/x", "feed/alice/#", "ribbon/#", "ribbon/x", "feed/", "feed", "", "Feed/alice",
        "feed/alicex", "feed/alic",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const acl_case *c = &cases[i];
        const char *sub = c->role == FP_ROLE_USER ? "alice" : "bridge";

        if (fa_acl_allowed(c->role, sub, c->topic, c->access) != c->allowed)
            fail_msg("%s, access %d on \"%s\": %s expected", sub, c->access,
                     c->topic != NULL ? c->topic : "(null)", c->allowed ? "allowed" : "denied");
    }
    for (i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
        assert_false(fa_acl_allowed(FP_ROLE_USER, "alice", denied[i], FA_ACL_SUBSCRIBE));
        assert_false(fa_acl_allowed(FP_ROLE_USER, "alice", denied[i], FA_ACL_READ));
    }
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

/* clang-format off */
FT_MAIN(ft_unit_run, NULL, NULL,
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_sessions_table))
/* clang-format on */
