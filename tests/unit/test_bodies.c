/* Unit tests for the gateway's post body cache (gateway/bodies.c): off
 * until live, hits and known absences, the epoch that refuses a put read
 * before an invalidation, JSON objects only, eviction by eighths, and the
 * readers' check (against a fake fp_store_clients_alive). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ft_main.h"
#include "gateway.h"

/* One counter of fg_bodies_render. */
static unsigned long long counter(fg_bodies *b, const char *name)
{
    char *out = NULL, key[96];
    size_t len = 0, cap = 0;
    const char *p;
    unsigned long long v;

    assert_int_equal(fg_bodies_render(b, &out, &len, &cap), 0);
    snprintf(key, sizeof(key), "\n%s ", name);
    p = strstr(out, key);
    assert_non_null(p);
    v = strtoull(p + strlen(key), NULL, 10);
    free(out);
    return v;
}

/* get for n ids (at most 4): *epoch, the redirect, bodies and gone. */
static long long get(fg_bodies *b, char (*ids)[FP_ID_BUFSZ], size_t n, char **bodies, bool *gone,
                     uint64_t *epoch)
{
    const fp_body_cache *c = fg_bodies_cache(b);

    memset(bodies, 0, n * sizeof(*bodies));
    memset(gone, 0, n * sizeof(*gone));
    return c->get(c->ctx, ids, n, bodies, gone, epoch);
}

static void free_all(char **bodies, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(bodies[i]);
}

/* put from the reader (a Redis client id) the tests call 7. */
static void put(fg_bodies *b, char (*ids)[FP_ID_BUFSZ], size_t n, char *const *bodies,
                uint64_t epoch)
{
    const fp_body_cache *c = fg_bodies_cache(b);

    c->put(c->ctx, 7, ids, n, bodies, epoch);
}

/* The fake Redis of fg_bodies_check_readers: which client ids are
 * connected, what CLIENT LIST answers, and what it was asked. */
static struct {
    long long live[4];
    int rc;
    size_t calls, asked;
} fake;

int fp_store_clients_alive(fp_store *s, const long long *ids, size_t n, bool *alive)
{
    size_t i, j;

    (void)s;
    fake.calls++;
    fake.asked = n;
    for (i = 0; i < n; i++) {
        alive[i] = false;
        for (j = 0; j < sizeof(fake.live) / sizeof(fake.live[0]); j++)
            alive[i] = alive[i] || (fake.live[j] != 0 && fake.live[j] == ids[i]);
    }
    return fake.rc;
}

const char *fp_store_errstr(const fp_store *s)
{
    (void)s;
    return "NOPERM";
}

/* Is id's body (one of the tests') in the cache? */
static bool cached(fg_bodies *b, char (*ids)[FP_ID_BUFSZ])
{
    char *bodies[1];
    bool gone[1], hit;
    uint64_t epoch;

    get(b, ids, 1, bodies, gone, &epoch);
    hit = bodies[0] != NULL;
    free_all(bodies, 1);
    return hit;
}

static void test_off_until_live(void **state)
{
    char ids[1][FP_ID_BUFSZ] = {"p1"}, *bodies[1], *in[1] = {"{\"id\":\"p1\"}"};
    bool gone[1];
    uint64_t epoch;
    fg_bodies *b;

    (void)state;
    assert_int_equal(fg_bodies_new(&b, 1 << 20), 0);
    assert_int_equal(get(b, ids, 1, bodies, gone, &epoch), 0);
    put(b, ids, 1, in, epoch);
    fg_bodies_live(b, 42);
    assert_int_equal(get(b, ids, 1, bodies, gone, &epoch), 42);
    assert_null(bodies[0]); /* the put while off was not kept */
    put(b, ids, 1, in, epoch);
    assert_int_equal(get(b, ids, 1, bodies, gone, &epoch), 42);
    assert_string_equal(bodies[0], in[0]);
    free_all(bodies, 1);
    fg_bodies_live(b, 0); /* the subscriber went: off and empty */
    assert_int_equal(get(b, ids, 1, bodies, gone, &epoch), 0);
    fg_bodies_live(b, 43);
    assert_int_equal(get(b, ids, 1, bodies, gone, &epoch), 43);
    assert_null(bodies[0]);
    fg_bodies_free(b);
}

static void test_hits_gone_and_objects_only(void **state)
{
    char ids[4][FP_ID_BUFSZ] = {"a", "b", "c", "d"}, *bodies[4];
    char *in[4] = {"{\"id\":\"a\"}", NULL, "not json", "[1]"};
    bool gone[4];
    uint64_t epoch;
    fg_bodies *b;

    (void)state;
    assert_int_equal(fg_bodies_new(&b, 1 << 20), 0);
    fg_bodies_live(b, 1);
    get(b, ids, 4, bodies, gone, &epoch);
    put(b, ids, 4, in, epoch);
    get(b, ids, 4, bodies, gone, &epoch);
    assert_string_equal(bodies[0], in[0]);
    assert_false(gone[0]);
    assert_null(bodies[1]);
    assert_true(gone[1]); /* no body: known */
    assert_null(bodies[2]);
    assert_false(gone[2]); /* not an object: not kept */
    assert_null(bodies[3]);
    assert_false(gone[3]);
    free_all(bodies, 4);
    assert_int_equal(counter(b, "feedpush_gateway_post_cache_hits_total"), 2);
    assert_int_equal(counter(b, "feedpush_gateway_post_cache_misses_total"), 4 + 2);
    fg_bodies_flush(b);
    get(b, ids, 4, bodies, gone, &epoch);
    assert_null(bodies[0]);
    assert_false(gone[1]);
    fg_bodies_free(b);
}

/* A body is served as it is stored, so only valid JSON is one: what
 * cJSON alone would take but a browser's JSON.parse refuses is not. */
static void test_body_strict(void **state)
{
    (void)state;
    assert_true(fg_body_is_object("{\"id\":\"a\",\"text\":\"a\\tb\"}"));
    assert_true(fg_body_is_object(" {\"id\":\"a\"}\n"));
    assert_false(fg_body_is_object("{\"id\":\"a\",\"text\":\"a\tb\"}")); /* a raw tab */
    assert_false(fg_body_is_object("\x01{\"id\":\"a\"}"));
    assert_false(fg_body_is_object("{\"id\":\"a\"}\x01"));
    assert_false(fg_body_is_object("{\"n\":\"\\uZZZZ\"}"));
    assert_false(fg_body_is_object("{\"t\":\"\xff\"}"));
    assert_false(fg_body_is_object("{\"id\":\"a\",\"id\":\"b\"}"));
    assert_false(fg_body_is_object("[1]"));
    assert_false(fg_body_is_object(""));
}

/* A body read before an invalidation is not kept, whatever was
 * invalidated; one read after is. An invalidated body goes. */
static void test_epoch(void **state)
{
    char ids[1][FP_ID_BUFSZ] = {"p1"}, other[1][FP_ID_BUFSZ] = {"p2"}, *bodies[1];
    char *old[1] = {"{\"v\":1}"}, *fresh[1] = {"{\"v\":2}"};
    uint64_t before, after;
    bool gone[1];
    fg_bodies *b;

    (void)state;
    assert_int_equal(fg_bodies_new(&b, 1 << 20), 0);
    fg_bodies_live(b, 1);
    get(b, ids, 1, bodies, gone, &before);
    fg_bodies_invalidate(b, other, 1);
    put(b, ids, 1, old, before);
    get(b, ids, 1, bodies, gone, &after);
    assert_null(bodies[0]);
    assert_true(after != before);
    put(b, ids, 1, fresh, after);
    get(b, ids, 1, bodies, gone, &after);
    assert_string_equal(bodies[0], fresh[0]);
    free_all(bodies, 1);
    fg_bodies_invalidate(b, ids, 1);
    get(b, ids, 1, bodies, gone, &after);
    assert_null(bodies[0]);
    assert_false(gone[0]);
    fg_bodies_free(b);
}

/* Filling past max_bytes drops an eighth, not everything; the bytes kept
 * never pass max_bytes. */
static void test_eviction(void **state)
{
    const size_t max = 64 * 1024;
    char ids[1][FP_ID_BUFSZ], body[256], *in[1] = {body}, *bodies[1];
    unsigned long long bytes, last = 0, evictions = 0, kept = 0;
    uint64_t epoch;
    bool gone[1];
    fg_bodies *b;
    int i;

    (void)state;
    assert_int_equal(fg_bodies_new(&b, max), 0);
    fg_bodies_live(b, 1);
    for (i = 0; i < 3000; i++) {
        snprintf(ids[0], sizeof(ids[0]), "post%04d", i);
        snprintf(body, sizeof(body), "{\"id\":\"%s\",\"text\":\"%080d\"}", ids[0], i);
        get(b, ids, 1, bodies, gone, &epoch);
        put(b, ids, 1, in, epoch);
        bytes = counter(b, "feedpush_gateway_post_cache_bytes");
        assert_true(bytes <= max);
        if (bytes < last) {
            evictions++;
            assert_true(bytes >= max / 2); /* not emptied */
        }
        last = bytes;
    }
    assert_true(evictions >= 2);
    for (i = 0; i < 3000; i++) {
        snprintf(ids[0], sizeof(ids[0]), "post%04d", i);
        get(b, ids, 1, bodies, gone, &epoch);
        kept += bodies[0] != NULL;
        free_all(bodies, 1);
    }
    assert_true(kept > 0 && kept < 3000);
    fg_bodies_free(b);
}

/*
 * The readers' check: nothing asked without readers; all connected, the
 * cache stays; one gone (Redis forgot what its link tracked), emptied,
 * and a read under way keeps nothing; CLIENT LIST refused, nothing kept
 * until it answers again; no answer, emptied; more readers than
 * FG_BODIES_READERS_MAX, the last one's reads not kept.
 */
static void test_readers(void **state)
{
    char ids[1][FP_ID_BUFSZ] = {"p1"}, *in[1] = {"{\"id\":\"p1\"}"}, *bodies[1];
    const fp_body_cache *c;
    uint64_t epoch;
    bool gone[1];
    fg_bodies *b;
    long long r;

    (void)state;
    memset(&fake, 0, sizeof(fake));
    assert_int_equal(fg_bodies_new(&b, 1 << 20), 0);
    c = fg_bodies_cache(b);
    fg_bodies_live(b, 1);
    fg_bodies_check_readers(b, NULL);
    assert_int_equal(fake.calls, 0);

    fake.live[0] = 7;
    get(b, ids, 1, bodies, gone, &epoch);
    free_all(bodies, 1);
    put(b, ids, 1, in, epoch);
    fg_bodies_check_readers(b, NULL);
    assert_int_equal(fake.asked, 1);
    assert_true(cached(b, ids));

    fake.live[0] = 0; /* reader 7's link closed */
    get(b, ids, 1, bodies, gone, &epoch);
    free_all(bodies, 1);
    fg_bodies_check_readers(b, NULL);
    assert_false(cached(b, ids));
    put(b, ids, 1, in, epoch); /* read before the check: not kept */
    assert_false(cached(b, ids));
    fake.live[0] = 8;
    get(b, ids, 1, bodies, gone, &epoch);
    free_all(bodies, 1);
    c->put(c->ctx, 8, ids, 1, in, epoch);
    fake.calls = 0;
    fg_bodies_check_readers(b, NULL);
    assert_int_equal(fake.calls, 1);
    assert_int_equal(fake.asked, 1); /* 7 forgotten */
    assert_true(cached(b, ids));

    fake.rc = -EPROTO; /* CLIENT LIST refused */
    fg_bodies_check_readers(b, NULL);
    assert_false(cached(b, ids));
    get(b, ids, 1, bodies, gone, &epoch);
    free_all(bodies, 1);
    c->put(c->ctx, 8, ids, 1, in, epoch);
    assert_false(cached(b, ids));
    fake.calls = 0;
    fake.asked = 0;
    fg_bodies_check_readers(b, NULL); /* asked again, without readers */
    assert_int_equal(fake.calls, 1);
    assert_int_equal(fake.asked, 1);
    fake.rc = 0;
    fg_bodies_check_readers(b, NULL);
    get(b, ids, 1, bodies, gone, &epoch);
    free_all(bodies, 1);
    c->put(c->ctx, 8, ids, 1, in, epoch);
    assert_true(cached(b, ids));

    fake.rc = -EIO; /* no answer */
    fg_bodies_check_readers(b, NULL);
    assert_false(cached(b, ids));
    fake.rc = 0;

    for (r = 1000; r < 1000 + FG_BODIES_READERS_MAX; r++) {
        get(b, ids, 1, bodies, gone, &epoch);
        free_all(bodies, 1);
        c->put(c->ctx, r, ids, 1, in, epoch);
        fg_bodies_flush(b);
    }
    get(b, ids, 1, bodies, gone, &epoch);
    free_all(bodies, 1);
    c->put(c->ctx, r, ids, 1, in, epoch); /* one too many */
    assert_false(cached(b, ids));
    c->put(c->ctx, 1000, ids, 1, in, epoch);
    assert_true(cached(b, ids));
    fg_bodies_free(b);
}

/* clang-format off */
FT_MAIN(ft_unit_run, NULL, NULL,
        cmocka_unit_test(test_off_until_live),
        cmocka_unit_test(test_hits_gone_and_objects_only),
        cmocka_unit_test(test_body_strict),
        cmocka_unit_test(test_epoch),
        cmocka_unit_test(test_eviction),
        cmocka_unit_test(test_readers))
/* clang-format on */
