/* Unit tests for the gateway's post body cache (gateway/bodies.c): off
 * until live, hits and known absences, the epoch that refuses a put read
 * before an invalidation, JSON objects only, and eviction by eighths. */
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

static void put(fg_bodies *b, char (*ids)[FP_ID_BUFSZ], size_t n, char *const *bodies,
                uint64_t epoch)
{
    const fp_body_cache *c = fg_bodies_cache(b);

    c->put(c->ctx, ids, n, bodies, epoch);
}

static void free_all(char **bodies, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(bodies[i]);
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

/* clang-format off */
FT_MAIN(ft_unit_run, NULL, NULL,
        cmocka_unit_test(test_off_until_live),
        cmocka_unit_test(test_hits_gone_and_objects_only),
        cmocka_unit_test(test_epoch),
        cmocka_unit_test(test_eviction))
/* clang-format on */
