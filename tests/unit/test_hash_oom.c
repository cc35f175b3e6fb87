/*
 * test_hash_oom.c - the plugin's tables when uthash finds no memory.
 *
 * sessions.c, ended.c and presence.c are built into this test with uthash's allocator
 * replaced by ft_hash_malloc (tests/CMakeLists.txt), which fails while
 * ft_hash_fail is set, and with HASH_DEBUG, so uthash checks each table
 * whole after every add and delete (and exits on a broken one). With
 * failures on, an add that needs a new table or more buckets must fail
 * cleanly: nothing added, nothing lost, the broker still up (uthash's
 * default would have called exit()).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "feed_auth.h"
#include "ft_hash_malloc.h"

#define N_SESSIONS 2000
#define N_ENDED 2000

static bool ft_hash_fail;
static size_t ft_hash_failed;

void *ft_hash_malloc(size_t size)
{
    if (ft_hash_fail) {
        ft_hash_failed++;
        return NULL;
    }
    return malloc(size);
}

static struct mosquitto *client_at(char *base, size_t i)
{
    return (struct mosquitto *)(base + i);
}

/* Adds N_SESSIONS sessions, each tried first with uthash's allocations
 * failing: an add that needed one fails and changes nothing; retried,
 * it succeeds. Some of them must have failed (the first, at least, needs
 * both tables), or the test would prove nothing. */
static void test_sessions_add(void **state)
{
    static char clients[N_SESSIONS];
    fa_sessions t = {0};
    fp_jwt_claims c = {0};
    fa_session *s, *replaced;
    char id[32];
    size_t i, j, failed = 0;

    (void)state;
    snprintf(c.sub, sizeof(c.sub), "alice");
    c.exp = 100;
    for (i = 0; i < N_SESSIONS; i++) {
        snprintf(id, sizeof(id), "tab%zu", i);
        /* Every other one without a client: a record loaded from the state
         * file, in by_id only, bound later. */
        ft_hash_fail = true;
        s = fa_sessions_add(&t, i % 2 == 0 ? client_at(clients, i) : NULL, id, &c, &replaced);
        ft_hash_fail = false;
        if (s == NULL) {
            failed++;
            assert_int_equal(t.count, i);
            assert_null(fa_sessions_find_id(&t, id));
            assert_null(fa_sessions_find(&t, client_at(clients, i)));
            s = fa_sessions_add(&t, i % 2 == 0 ? client_at(clients, i) : NULL, id, &c, &replaced);
            assert_non_null(s);
        }
        assert_null(replaced);
        assert_int_equal(t.count, i + 1);
        if (i % 2 == 1) {
            ft_hash_fail = true;
            if (fa_sessions_bind(&t, s, client_at(clients, i)) != 0) {
                failed++;
                assert_false(s->in_by_client);
                assert_null(s->client);
                assert_null(fa_sessions_find(&t, client_at(clients, i)));
                ft_hash_fail = false;
                assert_int_equal(fa_sessions_bind(&t, s, client_at(clients, i)), 0);
            }
            ft_hash_fail = false;
        }
        assert_ptr_equal(fa_sessions_find(&t, client_at(clients, i)), s);
    }
    assert_true(failed >= 2);
    assert_true(ft_hash_failed >= failed);
    for (j = 0; j < N_SESSIONS; j++) {
        snprintf(id, sizeof(id), "tab%zu", j);
        s = fa_sessions_find_id(&t, id);
        assert_non_null(s);
        assert_ptr_equal(fa_sessions_find(&t, client_at(clients, j)), s);
    }
    fa_sessions_clear(&t);
    assert_int_equal(t.count, 0);
}

/* A takeover that finds no memory leaves the session it would have
 * replaced where it was. */
static void test_sessions_takeover(void **state)
{
    char a, b;
    fa_sessions t = {0};
    fp_jwt_claims c = {0};
    fa_session *old, *replaced;

    (void)state;
    snprintf(c.sub, sizeof(c.sub), "bob");
    old = fa_sessions_add(&t, NULL, "bob:phone", &c, &replaced);
    assert_non_null(old);
    /* by_client has no table yet: the takeover's bind needs one. */
    ft_hash_fail = true;
    assert_null(fa_sessions_add(&t, (struct mosquitto *)&a, "bob:phone", &c, &replaced));
    ft_hash_fail = false;
    assert_null(replaced);
    assert_int_equal(t.count, 1);
    assert_ptr_equal(fa_sessions_find_id(&t, "bob:phone"), old);
    assert_true(old->in_by_id);

    assert_int_equal(fa_sessions_bind(&t, old, (struct mosquitto *)&a), 0);
    assert_non_null(fa_sessions_add(&t, (struct mosquitto *)&b, "bob:phone", &c, &replaced));
    assert_ptr_equal(replaced, old);
    fa_sessions_clear(&t);
}

/* The ended set: entries of many users (the users table grows too),
 * each tried first with allocations failing. */
static void test_ended_add(void **state)
{
    static char clients[N_ENDED];
    fa_ended_set set = {0};
    const fa_ended *e;
    fa_ended_user *u;
    char id[32], sub[32];
    size_t i, failed = 0;
    int rc;

    (void)state;
    for (i = 0; i < N_ENDED; i++) {
        snprintf(id, sizeof(id), "dev%zu", i);
        snprintf(sub, sizeof(sub), "user%zu", i / 2);
        ft_hash_fail = true;
        rc = fa_ended_add(&set, client_at(clients, i), id, sub, 100, 0, 1000);
        ft_hash_fail = false;
        if (rc != 0) {
            failed++;
            assert_int_equal(rc, -ENOMEM);
            assert_int_equal(set.count, i);
            assert_null(fa_ended_find(&set, client_at(clients, i)));
            /* A user made for the failed add went with it. */
            u = NULL;
            HASH_FIND_STR(set.users, sub, u);
            if (i % 2 == 0)
                assert_null(u);
            else
                assert_int_equal(u->count, 1);
            assert_int_equal(fa_ended_add(&set, client_at(clients, i), id, sub, 100, 0, 1000), 0);
        }
        assert_int_equal(set.count, i + 1);
    }
    assert_true(failed >= 3);
    for (i = 0; i < N_ENDED; i++) {
        snprintf(sub, sizeof(sub), "user%zu", i / 2);
        e = fa_ended_find(&set, client_at(clients, i));
        assert_non_null(e);
        assert_string_equal(e->sub, sub);
        assert_int_equal(e->user->count, 2);
    }
    fa_ended_expire(&set, 1000);
    assert_int_equal(set.count, 0);
    assert_null(set.users);
    fa_ended_clear(&set);
}

/* Takes p's queued deltas, each of which must be op, with no resync
 * asked for. Returns how many there were. */
static size_t take_deltas(fa_presence *p, fa_presence_op op)
{
    fa_presence_delta *head, *d;
    bool resync = true;
    size_t n = 0;

    head = fa_presence_take(p, &resync, NULL);
    assert_false(resync);
    for (d = head; d != NULL; d = d->next) {
        assert_int_equal(d->op, op);
        n++;
    }
    fa_presence_deltas_free(head);
    return n;
}

/*
 * Presence counts when uthash finds no memory: an up that cannot make the
 * user's entry says so (-ENOMEM) and counts nothing, queues nothing; the
 * caller then counts nothing down. An up while the user has a count
 * needs no memory and never fails. Without the return value, a refused
 * first session's down took the count of the user's next session.
 */
static void test_presence_up(void **state)
{
    fa_presence p;
    char sub[FP_ID_BUFSZ] = ""; /* presence copies the whole buffer */
    size_t i, failed = 0;

    (void)state;
    assert_int_equal(fa_presence_init(&p), 0);
    for (i = 0; i < N_SESSIONS; i++) {
        snprintf(sub, sizeof(sub), "u%zu", i);
        ft_hash_fail = true;
        if (fa_presence_up(&p, FA_SET_ONLINE, sub) != 0) {
            failed++;
            assert_int_equal(HASH_COUNT(p.users), i);
            ft_hash_fail = false;
            assert_int_equal(fa_presence_up(&p, FA_SET_ONLINE, sub), 0);
        }
        /* Counted once: a second up and a held one need no memory. */
        ft_hash_fail = true;
        assert_int_equal(fa_presence_up(&p, FA_SET_ONLINE, sub), 0);
        assert_int_equal(fa_presence_up(&p, FA_SET_HELD, sub), 0);
        ft_hash_fail = false;
        assert_int_equal(HASH_COUNT(p.users), i + 1);
        assert_int_equal(fa_presence_held(&p, sub), 1);
    }
    assert_true(failed > 0);
    /* One ADD per user and set, none for the failed tries. */
    assert_int_equal(take_deltas(&p, FA_PRESENCE_ADD), 2 * N_SESSIONS);
    /* Down to zero: each user leaves the table, one REMOVE per set. */
    for (i = 0; i < N_SESSIONS; i++) {
        snprintf(sub, sizeof(sub), "u%zu", i);
        fa_presence_down(&p, FA_SET_ONLINE, sub);
        fa_presence_down(&p, FA_SET_ONLINE, sub);
        fa_presence_down(&p, FA_SET_HELD, sub);
    }
    assert_int_equal(HASH_COUNT(p.users), 0);
    assert_int_equal(take_deltas(&p, FA_PRESENCE_REMOVE), 2 * N_SESSIONS);
    fa_presence_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sessions_add),
        cmocka_unit_test(test_sessions_takeover),
        cmocka_unit_test(test_ended_add),
        cmocka_unit_test(test_presence_up),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
