/* Unit tests for the plugin's pure parts: the ACL rules, the session table,
 * the deliver control message and the set of ended connections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "feed_auth.h"
#include "fp_control.h"
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
        /* The deliver control topic: the service publishes there, no one
         * else, and no other $CONTROL topic. */
        SERVICE("$CONTROL/feedpush/v1/deliver", FA_ACL_WRITE, true),
        SERVICE("$CONTROL/feedpush/v1/deliver", FA_ACL_SUBSCRIBE, false),
        SERVICE("$CONTROL/feedpush/v1/deliver", FA_ACL_READ, false),
        SERVICE("$CONTROL/feedpush/v1/deliver/x", FA_ACL_WRITE, false),
        SERVICE("$CONTROL/feedpush/v1/#", FA_ACL_WRITE, false),
        SERVICE("$CONTROL/dynamic-security/v1", FA_ACL_WRITE, false),
        USER("$CONTROL/feedpush/v1/deliver", FA_ACL_WRITE, false),
        USER("$CONTROL/feedpush/v1/deliver", FA_ACL_SUBSCRIBE, false),
        USER("$CONTROL/feedpush/v1/deliver", FA_ACL_READ, false),
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

/* Retained publishes: the ribbon only, exactly. */
static void test_retain(void **state)
{
    static const char *const denied[] = {
        "feed/bob", "feed/", FP_CONTROL_DELIVER_TOPIC, "ribbon/x", "Ribbon", "ribbonx", ""};
    size_t i;

    (void)state;
    assert_true(fa_acl_retain_allowed("ribbon"));
    assert_false(fa_acl_retain_allowed(NULL));
    for (i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
        if (fa_acl_retain_allowed(denied[i]))
            fail_msg("a retained publish to \"%s\" was allowed", denied[i]);
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

/* Parses s (a C string) as a deliver control message. */
static const char *parse(const char *s, fa_deliver_msg *m)
{
    return fa_deliver_parse(s, strlen(s), m);
}

/* "<expiry_s> <uid> ...\n<payload>": every recipient in order, the
 * payload as it is (newlines included). */
static void test_deliver_parse(void **state)
{
    fa_deliver_msg m;
    const char *id;
    size_t pos = 0, len;
    char ids[128] = "";

    (void)state;
    assert_null(parse("30 B c-1 D_2\n{\"type\":\"post.created\"}\nx", &m));
    assert_int_equal(m.expiry_s, 30);
    assert_int_equal(m.n, 3);
    assert_int_equal(m.body_len, strlen("{\"type\":\"post.created\"}\nx"));
    assert_memory_equal(m.body, "{\"type\":\"post.created\"}\nx", m.body_len);
    while (fa_deliver_next(&m, &pos, &id, &len))
        snprintf(ids + strlen(ids), sizeof(ids) - strlen(ids), "[%.*s]", (int)len, id);
    assert_string_equal(ids, "[B][c-1][D_2]");

    assert_null(parse("0 x\n{}", &m));
    assert_int_equal(m.expiry_s, 0);
    assert_int_equal(m.n, 1);
    assert_null(parse("4294967295 x\n.", &m));
    assert_int_equal(m.expiry_s, 4294967295u);
    /* A 64-character id is the longest. */
    assert_null(parse("1 u123456789012345678901234567890123456789012345678901234567890123\n.", &m));
}

/* Anything else is refused as a whole, with a reason. */
static void test_deliver_parse_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "30 B {}",     /* no newline */
        "\n{}",        /* no header */
        "30\n{}",      /* no recipients */
        "30 \n{}",     /* empty recipient */
        "30 B\n",      /* no payload */
        "30 B  C\n{}", /* empty recipient between */
        "30 B \n{}",   /* trailing space */
        "x B\n{}",     /* expiry not a number */
        "-1 B\n{}",
        "4294967296 B\n{}", /* more than 32 bits */
        "99999999999 B\n{}",
        "030000000000 B\n{}", /* too many digits */
        "30 feed/B\n{}",      /* not an id */
        "30 B+\n{}",
        "30 #\n{}",
        "30 B\tC\n{}",
        "30 B\r\n{}",
        "30 u1234567890123456789012345678901234567890123456789012345678901234\n{}",
        " 30 B\n{}",
    };
    fa_deliver_msg m;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], &m) == NULL)
            fail_msg("\"%s\" was accepted", bad[i]);
    }
    assert_non_null(fa_deliver_parse(NULL, 0, &m));
    /* A NUL in an id is not an id character. */
    assert_non_null(fa_deliver_parse("30 B\0C\n{}", 9, &m));
    /* Only len bytes count: the newline past them is not seen. */
    assert_non_null(fa_deliver_parse("30 B\n{}", 4, &m));
}

/* At most FP_CONTROL_IDS_MAX recipients: each costs the broker a copy. */
static void test_deliver_parse_cap(void **state)
{
    char msg[4 + 2 * (FP_CONTROL_IDS_MAX + 1) + 8];
    size_t n = 0, i;
    fa_deliver_msg m;

    (void)state;
    n += (size_t)snprintf(msg, sizeof(msg), "30");
    for (i = 0; i < FP_CONTROL_IDS_MAX; i++)
        n += (size_t)snprintf(msg + n, sizeof(msg) - n, " a");
    snprintf(msg + n, sizeof(msg) - n, "\n{}");
    assert_null(parse(msg, &m));
    assert_int_equal(m.n, FP_CONTROL_IDS_MAX);
    snprintf(msg + n, sizeof(msg) - n, " a\n{}");
    assert_string_equal(parse(msg, &m), "more than 1000 recipients");
}

/* A client pointer for the set of ended connections: compared, never
 * used, as the plugin does with the broker's. */
#define CLIENT(n) ((const struct mosquitto *)(uintptr_t)(0x1000 + 16 * (n)))

/* The set of ended connections: found by client pointer, with the hash of
 * its client id; one entry per client and per id (the newest); forgotten
 * by client, by id and at its time, oldest first. */
static void test_ended(void **state)
{
    unsigned char h[FA_ENDED_HASH_LEN];
    fa_ended_set set = {0};
    const fa_ended *e;

    (void)state;
    assert_int_equal(fa_ended_add(&set, CLIENT(1), "dev1", "kim", 100, 50, 1000), 0);
    assert_int_equal(fa_ended_add(&set, CLIENT(2), "dev2", "lu", 200, 0, 1001), 0);
    e = fa_ended_find(&set, CLIENT(1));
    assert_non_null(e);
    assert_string_equal(e->sub, "kim");
    assert_true(e->exp == 100 && e->iat == 50 && e->until == 1000);
    fa_ended_id_hash("dev1", h);
    assert_memory_equal(e->id_hash, h, sizeof(h));
    fa_ended_id_hash("dev2", h);
    assert_memory_not_equal(e->id_hash, h, sizeof(h));
    assert_null(fa_ended_find(&set, CLIENT(3)));

    /* The same id at another client: the broker keeps one context per id. */
    assert_int_equal(fa_ended_add(&set, CLIENT(3), "dev1", "kim", 300, 0, 1002), 0);
    assert_null(fa_ended_find(&set, CLIENT(1)));
    assert_non_null(fa_ended_find(&set, CLIENT(3)));
    /* The same client again (its memory reused): the newest entry. */
    assert_int_equal(fa_ended_add(&set, CLIENT(3), "dev3", "kim", 400, 0, 1003), 0);
    assert_int_equal(fa_ended_find(&set, CLIENT(3))->exp, 400);
    assert_int_equal(set.count, 2);

    fa_ended_forget_id(&set, "dev2");
    assert_null(fa_ended_find(&set, CLIENT(2)));
    fa_ended_forget(&set, CLIENT(3));
    assert_int_equal(set.count, 0);
    assert_null(set.users);

    assert_int_equal(fa_ended_add(&set, CLIENT(1), "a", "kim", 1, 0, 10), 0);
    assert_int_equal(fa_ended_add(&set, CLIENT(2), "b", "kim", 1, 0, 20), 0);
    assert_int_equal(fa_ended_add(&set, CLIENT(3), "c", "kim", 1, 0, 30), 0);
    fa_ended_expire(&set, 19);
    assert_null(fa_ended_find(&set, CLIENT(1)));
    assert_non_null(fa_ended_find(&set, CLIENT(2)));
    fa_ended_expire(&set, 20);
    assert_null(fa_ended_find(&set, CLIENT(2)));
    assert_int_equal(set.count, 1);
    fa_ended_clear(&set);
    assert_int_equal(set.count, 0);
    assert_null(set.oldest);
}

/* The bounds: a user's own oldest entry goes at FA_ENDED_PER_USER, never
 * another user's; at FA_ENDED_MAX in all, the oldest of all goes, also
 * when it is the only entry of the user who adds one (its user record
 * goes and comes again). */
static void test_ended_bounds(void **state)
{
    fa_ended_set set = {0};
    char id[32], sub[32];
    size_t i;

    (void)state;
    assert_int_equal(fa_ended_add(&set, CLIENT(0), "lu-dev", "lu", 1, 0, 10), 0);
    for (i = 1; i <= FA_ENDED_PER_USER + 5; i++) {
        snprintf(id, sizeof(id), "m%zu", i);
        assert_int_equal(fa_ended_add(&set, CLIENT(i), id, "mallory", 1, 0, 10), 0);
    }
    assert_int_equal(set.count, FA_ENDED_PER_USER + 1);
    assert_non_null(fa_ended_find(&set, CLIENT(0)));
    for (i = 1; i <= 5; i++)
        assert_null(fa_ended_find(&set, CLIENT(i)));
    assert_non_null(fa_ended_find(&set, CLIENT(6)));
    fa_ended_clear(&set);

    assert_int_equal(fa_ended_add(&set, CLIENT(0), "solo-1", "solo", 1, 0, 0), 0);
    for (i = 1; i < FA_ENDED_MAX + 1; i++) {
        snprintf(id, sizeof(id), "d%zu", i);
        snprintf(sub, sizeof(sub), "u%zu", i / FA_ENDED_PER_USER);
        assert_int_equal(fa_ended_add(&set, CLIENT(i), id, sub, 1, 0, (int64_t)i), 0);
    }
    assert_int_equal(set.count, FA_ENDED_MAX);
    assert_null(fa_ended_find(&set, CLIENT(0)));
    assert_non_null(fa_ended_find(&set, CLIENT(1)));
    assert_non_null(fa_ended_find(&set, CLIENT(FA_ENDED_MAX)));
    /* Full again: solo's only entry is the oldest of all. */
    fa_ended_clear(&set);
    assert_int_equal(fa_ended_add(&set, CLIENT(0), "solo-1", "solo", 1, 0, 0), 0);
    for (i = 1; i < FA_ENDED_MAX; i++) {
        snprintf(id, sizeof(id), "d%zu", i);
        snprintf(sub, sizeof(sub), "u%zu", i / FA_ENDED_PER_USER);
        assert_int_equal(fa_ended_add(&set, CLIENT(i), id, sub, 1, 0, (int64_t)i), 0);
    }
    assert_int_equal(fa_ended_add(&set, CLIENT(FA_ENDED_MAX), "solo-2", "solo", 1, 0, 9), 0);
    assert_null(fa_ended_find(&set, CLIENT(0)));
    assert_string_equal(fa_ended_find(&set, CLIENT(FA_ENDED_MAX))->user->sub, "solo");
    assert_int_equal(fa_ended_find(&set, CLIENT(FA_ENDED_MAX))->user->count, 1);
    fa_ended_clear(&set);
    assert_null(set.users);
}

/* clang-format off */
FT_MAIN(ft_unit_run, NULL, NULL,
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_retain),
        cmocka_unit_test(test_sessions_table),
        cmocka_unit_test(test_client_id_owner),
        cmocka_unit_test(test_deliver_parse),
        cmocka_unit_test(test_deliver_parse_malformed),
        cmocka_unit_test(test_deliver_parse_cap),
        cmocka_unit_test(test_ended),
        cmocka_unit_test(test_ended_bounds))
/* clang-format on */
