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

/* fa_on_acl_check (in acl.c, never called here) asks held.c, which needs
 * the broker; this stand-in keeps the rules linkable on their own. */
fa_session *fa_held_adopt(struct fa_plugin *pl, struct mosquitto *client)
{
    (void)pl;
    (void)client;
    return NULL;
}

static void test_sessions_table(void **state)
{
    fa_sessions t = {0};
    fp_jwt_claims c = {0};
    struct mosquitto *a = (struct mosquitto *)&t, *b = (struct mosquitto *)&c;
    fa_session *s, *replaced;

    (void)state;
    snprintf(c.sub, sizeof(c.sub), "alice");
    c.exp = 100;
    c.iat = 10;
    c.has_iat = true;
    s = fa_sessions_add(&t, a, "tab1", &c, &replaced);
    assert_non_null(s);
    assert_null(replaced);
    assert_ptr_equal(fa_sessions_find(&t, a), s);
    assert_ptr_equal(fa_sessions_find_id(&t, "tab1"), s);
    assert_int_equal(s->iat, 10);

    /* A takeover of the same client id: the id index moves to the new one,
     * the old session stays findable by its connection until it leaves. */
    s = fa_sessions_add(&t, b, "tab1", &c, &replaced);
    assert_ptr_equal(replaced, fa_sessions_find(&t, a));
    assert_int_equal(t.count, 2);
    assert_ptr_equal(fa_sessions_find_id(&t, "tab1"), s);
    assert_false(replaced->in_by_id);
    fa_sessions_free(&t, replaced);
    assert_null(fa_sessions_find(&t, a));
    assert_ptr_equal(fa_sessions_find_id(&t, "tab1"), fa_sessions_find(&t, b));
    fa_sessions_free(&t, s);
    assert_null(fa_sessions_find_id(&t, "tab1"));
    assert_int_equal(t.count, 0);

    /* A record without a client (loaded from the state file) is in by_id
     * only; bound, it is found by client; replaced unbound, it is freed. */
    s = fa_sessions_add(&t, NULL, "alice:phone", &c, &replaced);
    assert_false(s->in_by_client);
    assert_null(fa_sessions_find(&t, NULL));
    fa_sessions_bind(&t, s, a);
    assert_ptr_equal(fa_sessions_find(&t, a), s);
    fa_sessions_free(&t, s);
    s = fa_sessions_add(&t, NULL, "alice:phone", &c, &replaced);
    s = fa_sessions_add(&t, b, "alice:phone", &c, &replaced);
    assert_null(replaced);
    assert_int_equal(t.count, 1);
    assert_ptr_equal(fa_sessions_find(&t, b), s);

    assert_non_null(fa_sessions_add(&t, NULL, "x", &c, &replaced));
    fa_sessions_clear(&t);
    assert_int_equal(t.count, 0);
    assert_null(t.by_client);
    assert_null(t.by_id);
}

/* "<user>:<name>" ids name their owner; anything else has none. */
static void test_client_id_owner(void **state)
{
    char owner[FP_ID_BUFSZ];

    (void)state;
    assert_true(fa_client_id_owner("alice:phone", owner));
    assert_string_equal(owner, "alice");
    assert_true(fa_client_id_owner("bob-2:a:b", owner));
    assert_string_equal(owner, "bob-2");
    assert_true(fa_client_id_owner("alice:", owner));
    assert_string_equal(owner, "alice");
    assert_false(fa_client_id_owner("alice-phone", owner));
    assert_false(fa_client_id_owner(":phone", owner));
    assert_false(fa_client_id_owner("al ice:phone", owner));
    assert_false(fa_client_id_owner("a/b:phone", owner));
    assert_false(fa_client_id_owner(
        "u1234567890123456789012345678901234567890123456789012345678901234:x", owner));
    assert_false(fa_client_id_owner(NULL, owner));
}

/* clang-format off */
FT_MAIN(ft_unit_run, NULL, NULL,
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_sessions_table),
        cmocka_unit_test(test_client_id_owner))
/* clang-format on */
