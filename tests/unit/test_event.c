/*
 * test_event.c - unit tests of the v1 event codec (common/fp_event.c).
 *
 * Every body is handed to fp_event_parse() in a malloc'd buffer of exactly
 * its length, without a terminating NUL, so that ASan catches any read
 * past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "fp_event.h"
#include "fp_event_batch.h"
#include "ft_main.h"

#define REASON_SZ 256

/* malloc'd printf-formatted string; aborts the test when out of memory. */
static char *fmt(const char *f, ...)
{
    va_list ap;
    int n;
    char *s;

    va_start(ap, f);
    n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    assert_true(n >= 0);
    s = malloc((size_t)n + 1);
    assert_non_null(s);
    va_start(ap, f);
    vsnprintf(s, (size_t)n + 1, f, ap);
    va_end(ap);
    return s;
}

/* malloc'd string of n copies of c. */
static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);

    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* fp_event_parse() on a copy of the len bytes at body that has no NUL after it. */
static int parse_n(const char *body, size_t len, const char *rk, fp_event *ev, char *reason,
                   size_t reason_len)
{
    char *copy = malloc(len > 0 ? len : 1);
    int rc;

    assert_non_null(copy);
    memcpy(copy, body, len);
    rc = fp_event_parse(copy, len, rk, ev, reason, reason_len);
    free(copy);
    return rc;
}

static int parse(const char *body, const char *rk, fp_event *ev, char *reason)
{
    return parse_n(body, strlen(body), rk, ev, reason, REASON_SZ);
}

/* Parse body, which must succeed; prints the reason when it does not. */
static void expect_ok(const char *body, const char *rk, fp_event *ev)
{
    char reason[REASON_SZ];
    int rc = parse(body, rk, ev, reason);

    if (rc != 0)
        print_message("unexpected failure %d \"%s\" for %.200s\n", rc, reason, body);
    assert_int_equal(rc, 0);
    assert_string_equal(reason, "");
}

/* True when every byte of ev is zero (nothing owned, nothing set). */
static bool is_zeroed(const fp_event *ev)
{
    static const fp_event zero;

    return memcmp(ev, &zero, sizeof(zero)) == 0;
}

/* Parse the len bytes at body, which must fail with want_rc and a reason containing want. */
static void expect_fail_n(const char *body, size_t len, const char *rk, int want_rc,
                          const char *want)
{
    fp_event ev;
    char reason[REASON_SZ];
    int rc;

    memset(&ev, 0x5a, sizeof(ev)); /* garbage in: must come out zeroed */
    rc = parse_n(body, len, rk, &ev, reason, sizeof(reason));
    if (rc != want_rc || strstr(reason, want) == NULL)
        print_message("body %.200s: got %d \"%s\", want %d \"%s\"\n", body, rc, reason, want_rc,
                      want);
    assert_int_equal(rc, want_rc);
    assert_non_null(strstr(reason, want));
    assert_true(is_zeroed(&ev));
    fp_event_free(&ev);
}

static void expect_fail(const char *body, const char *rk, int want_rc, const char *want)
{
    expect_fail_n(body, strlen(body), rk, want_rc, want);
}

/* Same as expect_fail(), then frees the malloc'd body. */
static void expect_fail_free(char *body, int want_rc, const char *want)
{
    expect_fail(body, NULL, want_rc, want);
    free(body);
}

/* A post.created body with the given raw JSON pieces. */
static char *post_body(const char *id, const char *author, const char *text, const char *ts)
{
    return fmt("{\"type\":\"post.created\",\"post\":{\"id\":%s,\"author_id\":%s,\"text\":%s,"
               "\"created_at\":%s}}",
               id, author, text, ts);
}

/* Compare two optional strings. */
static void assert_opt_str_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

/* Every field of a and b is equal. */
static void assert_event_equal(const fp_event *a, const fp_event *b)
{
    size_t i;

    assert_int_equal(a->type, b->type);
    assert_string_equal(a->post.id, b->post.id);
    assert_string_equal(a->post.author_id, b->post.author_id);
    assert_opt_str_equal(a->post.text, b->post.text);
    assert_int_equal(a->post.created_at, b->post.created_at);
    assert_int_equal(a->has_recipients, b->has_recipients);
    assert_int_equal(a->n_recipients, b->n_recipients);
    for (i = 0; i < a->n_recipients; i++)
        assert_string_equal(a->recipients[i], b->recipients[i]);
    assert_string_equal(a->post_id, b->post_id);
    assert_string_equal(a->author_id, b->author_id);
    assert_string_equal(a->follower_id, b->follower_id);
    assert_string_equal(a->followee_id, b->followee_id);
    assert_int_equal(a->follow_at, b->follow_at);
    assert_string_equal(a->entry.user_id, b->entry.user_id);
    assert_opt_str_equal(a->entry.name, b->entry.name);
    assert_opt_str_equal(a->entry.text, b->entry.text);
    assert_int_equal(a->entry.at, b->entry.at);
    assert_string_equal(a->user_id, b->user_id);
    assert_int_equal(a->before, b->before);
}

/*
 * Parse body into *a, encode it, parse the encoding (with its type as
 * routing key) and check both structs and both encodings are equal.
 */
static void roundtrip(const char *body, fp_event *a)
{
    fp_event b;
    char *json, *json2;

    expect_ok(body, NULL, a);
    json = fp_event_encode(a);
    assert_non_null(json);
    expect_ok(json, fp_event_type_name(a->type), &b);
    assert_event_equal(a, &b);
    json2 = fp_event_encode(&b);
    assert_non_null(json2);
    assert_string_equal(json, json2);
    free(json);
    free(json2);
    fp_event_free(&b);
}

/* Encodes ev, asserts that the JSON is want, and frees ev. */
static void expect_encoded(fp_event *ev, const char *want)
{
    char *json = fp_event_encode(ev);

    assert_non_null(json);
    assert_string_equal(json, want);
    free(json);
    fp_event_free(ev);
}

/* Encodes ev, asserts that the JSON has part (expect_encoded_has) or has
 * not (expect_encoded_lacks), and frees ev. */
static void expect_encoded_part(fp_event *ev, const char *part, bool has)
{
    char *json = fp_event_encode(ev);

    assert_non_null(json);
    if (has)
        assert_non_null(strstr(json, part));
    else
        assert_null(strstr(json, part));
    free(json);
    fp_event_free(ev);
}
#define expect_encoded_has(ev, part) expect_encoded_part(ev, part, true)
#define expect_encoded_lacks(ev, part) expect_encoded_part(ev, part, false)

/* ------------------------------------------------------ type names */

static void test_type_names(void **state)
{
    fp_event_type t = 0;
    int i;

    (void)state;
    for (i = FP_EVENT_POST_CREATED; i <= FP_EVENT_USER_REVOKED; i++) {
        const char *name = fp_event_type_name((fp_event_type)i);
        assert_non_null(name);
        assert_int_equal(fp_event_type_parse(name, &t), 0);
        assert_int_equal(t, i);
    }
    assert_string_equal(fp_event_type_name(FP_EVENT_RIBBON_PUSHED), "ribbon.pushed");
    assert_null(fp_event_type_name((fp_event_type)0));
    assert_null(fp_event_type_name((fp_event_type)7));
    assert_null(fp_event_type_name((fp_event_type)-1));
    assert_int_equal(fp_event_type_parse("post.edited", &t), -EINVAL);
    assert_int_equal(fp_event_type_parse("POST.CREATED", &t), -EINVAL);
    assert_int_equal(fp_event_type_parse("", &t), -EINVAL);
    assert_int_equal(fp_event_type_parse(NULL, &t), -EINVAL);
}

/* ----------------------------------------------------- round trips */

static void test_post_created_roundtrip(void **state)
{
    fp_event ev;

    (void)state;
    roundtrip("{\"type\":\"post.created\",\"post\":{\"id\":\"p1\",\"author_id\":\"alice\","
              "\"text\":\"hello \\\"world\\\"\\n\\u00e9\",\"created_at\":1700000000123}}",
              &ev);
    assert_int_equal(ev.type, FP_EVENT_POST_CREATED);
    assert_string_equal(ev.post.id, "p1");
    assert_string_equal(ev.post.author_id, "alice");
    assert_string_equal(ev.post.text, "hello \"world\"\n\xc3\xa9");
    assert_int_equal(ev.post.created_at, 1700000000123LL);
    assert_false(ev.has_recipients);
    assert_null(ev.recipients);
    assert_int_equal(ev.n_recipients, 0);
    fp_event_free(&ev);
}

static void test_post_created_recipients_roundtrip(void **state)
{
    fp_event ev;

    (void)state;
    roundtrip("{\"type\":\"post.created\",\"post\":{\"id\":\"p-2\",\"author_id\":\"A_1\","
              "\"text\":\"x\",\"created_at\":0},\"recipients\":[\"zed\",\"bob\",\"zed\",\"amy\","
              "\"bob\"]}",
              &ev);
    assert_true(ev.has_recipients);
    assert_int_equal(ev.n_recipients, 3);
    assert_string_equal(ev.recipients[0], "amy");
    assert_string_equal(ev.recipients[1], "bob");
    assert_string_equal(ev.recipients[2], "zed");
    assert_int_equal(ev.post.created_at, 0);
    expect_encoded_has(&ev, "\"recipients\":[\"amy\",\"bob\",\"zed\"]");
}

static void test_post_created_empty_and_null_recipients(void **state)
{
    fp_event ev;

    (void)state;
    roundtrip("{\"type\":\"post.created\",\"post\":{\"id\":\"p\",\"author_id\":\"a\","
              "\"text\":\"t\",\"created_at\":1},\"recipients\":[]}",
              &ev);
    assert_true(ev.has_recipients);
    assert_int_equal(ev.n_recipients, 0);
    expect_encoded_has(&ev, "\"recipients\":[]");

    /* null counts as absent */
    roundtrip("{\"type\":\"post.created\",\"post\":{\"id\":\"p\",\"author_id\":\"a\","
              "\"text\":\"t\",\"created_at\":1},\"recipients\":null}",
              &ev);
    assert_false(ev.has_recipients);
    expect_encoded_lacks(&ev, "recipients");
}

static void test_post_created_limits_roundtrip(void **state)
{
    fp_event ev;
    char *id64 = repeat('i', FP_ID_MAX);
    char *text = repeat('t', FP_POST_TEXT_MAX);
    char *body = fmt("{\"type\":\"post.created\",\"post\":{\"id\":\"%s\",\"author_id\":\"%s\","
                     "\"text\":\"%s\",\"created_at\":9007199254740992}}",
                     id64, id64, text);

    (void)state;
    roundtrip(body, &ev);
    assert_string_equal(ev.post.id, id64);
    assert_int_equal(strlen(ev.post.text), FP_POST_TEXT_MAX);
    assert_int_equal(ev.post.created_at, FP_EVENT_TS_MAX);
    fp_event_free(&ev);
    free(body);
    free(text);
    free(id64);
}

static void test_post_created_multibyte_roundtrip(void **state)
{
    fp_event ev;

    (void)state;
    /* 2-, 3- and 4-byte UTF-8 raw, plus a surrogate pair escape (U+1F600) */
    roundtrip(
        "{\"type\":\"post.created\",\"post\":{\"id\":\"p\",\"author_id\":\"a\","
        "\"text\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \\ud83d\\ude00\",\"created_at\":1e3}}",
        &ev);
    assert_string_equal(ev.post.text, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \xf0\x9f\x98\x80");
    assert_int_equal(ev.post.created_at, 1000);
    expect_encoded_has(&ev, "\"created_at\":1000");
}

static void test_post_deleted_roundtrip(void **state)
{
    fp_event ev;

    (void)state;
    roundtrip("{\"type\":\"post.deleted\",\"post_id\":\"p1\",\"author_id\":\"alice\"}", &ev);
    assert_int_equal(ev.type, FP_EVENT_POST_DELETED);
    assert_string_equal(ev.post_id, "p1");
    assert_string_equal(ev.author_id, "alice");
    assert_null(ev.post.text);
    assert_false(ev.has_recipients);
    expect_encoded(&ev, "{\"type\":\"post.deleted\",\"post_id\":\"p1\",\"author_id\":\"alice\"}");

    /* Naming the post's explicit recipients, checked and kept as a
     * post.created's. */
    roundtrip("{\"type\":\"post.deleted\",\"post_id\":\"p1\",\"author_id\":\"alice\","
              "\"recipients\":[\"zed\",\"amy\",\"zed\"]}",
              &ev);
    assert_true(ev.has_recipients);
    assert_int_equal(ev.n_recipients, 2);
    assert_string_equal(ev.recipients[0], "amy");
    expect_encoded_has(&ev, "\"recipients\":[\"amy\",\"zed\"]");
    expect_fail("{\"type\":\"post.deleted\",\"post_id\":\"p1\",\"author_id\":\"alice\","
                "\"recipients\":[\"bad/id\"]}",
                NULL, -EINVAL, "recipients[0]: not a valid id");
}

static void test_follow_roundtrip(void **state)
{
    static const struct {
        const char *value, *reason;
    } bad_at[] = {{"\"1\"", "at: expected an integer"},
                  {"-1", "at: must be between 0 and"},
                  {"1.5", "at: expected an integer"},
                  {"9007199254740994", "at: must be between 0 and"}};
    char body[160];
    fp_event ev;
    size_t i;

    (void)state;
    roundtrip("{\"type\":\"follow.created\",\"follower_id\":\"bob\",\"followee_id\":\"alice\"}",
              &ev);
    assert_int_equal(ev.type, FP_EVENT_FOLLOW_CREATED);
    assert_string_equal(ev.follower_id, "bob");
    assert_string_equal(ev.followee_id, "alice");
    fp_event_free(&ev);

    roundtrip("{\"followee_id\":\"alice\",\"follower_id\":\"bob\",\"type\":\"follow.deleted\"}",
              &ev);
    assert_int_equal(ev.type, FP_EVENT_FOLLOW_DELETED);
    assert_string_equal(ev.follower_id, "bob");
    assert_string_equal(ev.followee_id, "alice");
    assert_int_equal(ev.follow_at, 0); /* none given: none written */
    expect_encoded(&ev, "{\"type\":\"follow.deleted\",\"follower_id\":\"bob\",\"followee_id\":\"alice\"}");
    fp_event_free(&ev);

    /* "at" orders a pair's follows; null counts as absent. */
    roundtrip("{\"type\":\"follow.created\",\"follower_id\":\"bob\",\"followee_id\":\"alice\","
              "\"at\":1700000000123}",
              &ev);
    assert_int_equal(ev.follow_at, 1700000000123LL);
    expect_encoded(&ev, "{\"type\":\"follow.created\",\"follower_id\":\"bob\",\"followee_id\":"
                        "\"alice\",\"at\":1700000000123}");
    fp_event_free(&ev);
    roundtrip("{\"type\":\"follow.deleted\",\"follower_id\":\"bob\",\"followee_id\":\"alice\","
              "\"at\":null}",
              &ev);
    assert_int_equal(ev.follow_at, 0);
    fp_event_free(&ev);
    for (i = 0; i < sizeof(bad_at) / sizeof(bad_at[0]); i++) {
        snprintf(body, sizeof(body),
                 "{\"type\":\"follow.created\",\"follower_id\":\"b\",\"followee_id\":\"a\","
                 "\"at\":%s}",
                 bad_at[i].value);
        expect_fail(body, NULL, -EINVAL, bad_at[i].reason);
    }
}

static void test_ribbon_roundtrip_full(void **state)
{
    fp_event ev;

    (void)state;
    roundtrip("{\"type\":\"ribbon.pushed\",\"entry\":{\"user_id\":\"u1\",\"name\":\"Ann \xc3\xa9\","
              "\"text\":\"is live\",\"at\":1700000000000}}",
              &ev);
    assert_int_equal(ev.type, FP_EVENT_RIBBON_PUSHED);
    assert_string_equal(ev.entry.user_id, "u1");
    assert_string_equal(ev.entry.name, "Ann \xc3\xa9");
    assert_string_equal(ev.entry.text, "is live");
    assert_int_equal(ev.entry.at, 1700000000000LL);
    fp_event_free(&ev);
}

static void test_ribbon_roundtrip_minimal(void **state)
{
    fp_event ev;

    (void)state;
    roundtrip("{\"type\":\"ribbon.pushed\",\"entry\":{\"user_id\":\"u1\",\"at\":5}}", &ev);
    assert_null(ev.entry.name);
    assert_null(ev.entry.text);
    assert_int_equal(ev.entry.at, 5);
    expect_encoded(&ev, "{\"type\":\"ribbon.pushed\",\"entry\":{\"user_id\":\"u1\",\"at\":5}}");

    /* null optional fields are absent; empty strings are kept */
    roundtrip("{\"type\":\"ribbon.pushed\",\"entry\":{\"user_id\":\"u1\",\"name\":null,"
              "\"text\":\"\",\"at\":5}}",
              &ev);
    assert_null(ev.entry.name);
    assert_non_null(ev.entry.text);
    assert_string_equal(ev.entry.text, "");
    fp_event_free(&ev);
}

static void test_user_revoked_roundtrip(void **state)
{
    fp_event ev;

    (void)state;
    roundtrip("{\"type\":\"user.revoked\",\"user_id\":\"mallory\",\"before\":1700000000}", &ev);
    assert_int_equal(ev.type, FP_EVENT_USER_REVOKED);
    assert_string_equal(ev.user_id, "mallory");
    assert_int_equal(ev.before, 1700000000LL);
    fp_event_free(&ev);
}

static void test_extra_fields_ignored(void **state)
{
    fp_event ev;

    (void)state;
    expect_ok("  {\"v\":2,\"type\":\"user.revoked\",\"user_id\":\"u\",\"before\":3,"
              "\"reason\":{\"nested\":[1,2,{}]},\"flag\":true}\n",
              "user.revoked", &ev);
    assert_string_equal(ev.user_id, "u");
    assert_int_equal(ev.before, 3);
    expect_encoded(&ev, "{\"type\":\"user.revoked\",\"user_id\":\"u\",\"before\":3}");
}

/* ---------------------------------------------------- failure classes */

static void test_missing_fields(void **state)
{
    (void)state;
    expect_fail("{\"post_id\":\"p\",\"author_id\":\"a\"}", NULL, -EINVAL, "missing field \"type\"");
    expect_fail("{\"type\":\"post.created\"}", NULL, -EINVAL, "missing field \"post\"");
    expect_fail("{\"type\":\"post.created\",\"post\":{\"author_id\":\"a\",\"text\":\"t\","
                "\"created_at\":1}}",
                NULL, -EINVAL, "missing field \"post.id\"");
    expect_fail("{\"type\":\"post.created\",\"post\":{\"id\":\"p\",\"author_id\":\"a\","
                "\"created_at\":1}}",
                NULL, -EINVAL, "missing field \"post.text\"");
    expect_fail("{\"type\":\"post.created\",\"post\":{\"id\":\"p\",\"author_id\":\"a\","
                "\"text\":\"t\"}}",
                NULL, -EINVAL, "missing field \"post.created_at\"");
    expect_fail("{\"type\":\"post.deleted\",\"post_id\":\"p\"}", NULL, -EINVAL,
                "missing field \"author_id\"");
    expect_fail("{\"type\":\"follow.created\",\"followee_id\":\"a\"}", NULL, -EINVAL,
                "missing field \"follower_id\"");
    expect_fail("{\"type\":\"follow.deleted\",\"follower_id\":\"a\"}", NULL, -EINVAL,
                "missing field \"followee_id\"");
    expect_fail("{\"type\":\"ribbon.pushed\",\"entry\":{\"user_id\":\"u\"}}", NULL, -EINVAL,
                "missing field \"entry.at\"");
    expect_fail("{\"type\":\"user.revoked\",\"user_id\":\"u\"}", NULL, -EINVAL,
                "missing field \"before\"");
    /* keys are case-sensitive */
    expect_fail("{\"Type\":\"user.revoked\",\"user_id\":\"u\",\"before\":1}", NULL, -EINVAL,
                "missing field \"type\"");
}

static void test_wrong_types(void **state)
{
    (void)state;
    expect_fail("{\"type\":7}", NULL, -EINVAL, "type: expected a string");
    expect_fail("{\"type\":\"post.created\",\"post\":[]}", NULL, -EINVAL,
                "post: expected an object");
    expect_fail_free(post_body("1", "\"a\"", "\"t\"", "1"), -EINVAL, "post.id: expected a string");
    expect_fail_free(post_body("\"p\"", "null", "\"t\"", "1"), -EINVAL,
                     "post.author_id: expected a string");
    expect_fail_free(post_body("\"p\"", "\"a\"", "42", "1"), -EINVAL,
                     "post.text: expected a string");
    expect_fail_free(post_body("\"p\"", "\"a\"", "\"t\"", "\"1700000000000\""), -EINVAL,
                     "post.created_at: expected an integer");
    expect_fail("{\"type\":\"ribbon.pushed\",\"entry\":\"x\"}", NULL, -EINVAL,
                "entry: expected an object");
    expect_fail("{\"type\":\"ribbon.pushed\",\"entry\":{\"user_id\":\"u\",\"name\":1,\"at\":1}}",
                NULL, -EINVAL, "entry.name: expected a string");
    expect_fail("{\"type\":\"ribbon.pushed\",\"entry\":{\"user_id\":\"u\",\"text\":[],\"at\":1}}",
                NULL, -EINVAL, "entry.text: expected a string");
    expect_fail("{\"type\":\"user.revoked\",\"user_id\":\"u\",\"before\":true}", NULL, -EINVAL,
                "before: expected an integer");
    expect_fail("{\"type\":\"follow.created\",\"follower_id\":{},\"followee_id\":\"a\"}", NULL,
                -EINVAL, "follower_id: expected a string");
}

static void test_bad_ids(void **state)
{
    static const char *const bad[] = {"\"a/b\"", "\"a+b\"",     "\"#\"",   "\"\"",
                                      "\"a b\"", "\"\\u00e9\"", "\"a.b\"", "\"a\\tb\""};
    char *id65 = fmt("\"%0*d\"", FP_ID_MAX + 1, 7);
    size_t i;

    (void)state;
    assert_int_equal(strlen(id65), FP_ID_MAX + 3);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_fail_free(post_body(bad[i], "\"a\"", "\"t\"", "1"), -EINVAL,
                         "post.id: not a valid id");
        expect_fail_free(post_body("\"p\"", bad[i], "\"t\"", "1"), -EINVAL,
                         "post.author_id: not a valid id");
    }
    expect_fail_free(post_body(id65, "\"a\"", "\"t\"", "1"), -EINVAL, "post.id: not a valid id");
    expect_fail_free(fmt("{\"type\":\"post.deleted\",\"post_id\":\"p\",\"author_id\":%s}", id65),
                     -EINVAL, "author_id: not a valid id");
    expect_fail("{\"type\":\"follow.created\",\"follower_id\":\"a/b\",\"followee_id\":\"x\"}", NULL,
                -EINVAL, "follower_id: not a valid id");
    expect_fail("{\"type\":\"follow.deleted\",\"follower_id\":\"x\",\"followee_id\":\"#\"}", NULL,
                -EINVAL, "followee_id: not a valid id");
    expect_fail("{\"type\":\"ribbon.pushed\",\"entry\":{\"user_id\":\"a+b\",\"at\":1}}", NULL,
                -EINVAL, "entry.user_id: not a valid id");
    expect_fail("{\"type\":\"user.revoked\",\"user_id\":\"\",\"before\":1}", NULL, -EINVAL,
                "user_id: not a valid id");
    free(id65);
}

static void test_oversized_text(void **state)
{
    char *t8193 = repeat('x', FP_POST_TEXT_MAX + 1);
    char *n129 = repeat('n', FP_RIBBON_NAME_MAX + 1);
    char *t513 = repeat('r', FP_RIBBON_TEXT_MAX + 1);
    char *ok = fmt("{\"type\":\"ribbon.pushed\",\"entry\":{\"user_id\":\"u\",\"name\":\"%.*s\","
                   "\"text\":\"%.*s\",\"at\":1}}",
                   FP_RIBBON_NAME_MAX, n129, FP_RIBBON_TEXT_MAX, t513);
    char *quoted;
    fp_event ev;

    (void)state;
    quoted = fmt("\"%s\"", t8193);
    expect_fail_free(post_body("\"p\"", "\"a\"", quoted, "1"), -EINVAL,
                     "post.text: longer than 8192 bytes");
    free(quoted);
    expect_fail_free(post_body("\"p\"", "\"a\"", "\"\"", "1"), -EINVAL,
                     "post.text: must not be empty");
    expect_fail_free(fmt("{\"type\":\"ribbon.pushed\",\"entry\":{\"user_id\":\"u\",\"name\":\"%s\","
                         "\"at\":1}}",
                         n129),
                     -EINVAL, "entry.name: longer than 128 bytes");
    expect_fail_free(fmt("{\"type\":\"ribbon.pushed\",\"entry\":{\"user_id\":\"u\",\"text\":\"%s\","
                         "\"at\":1}}",
                         t513),
                     -EINVAL, "entry.text: longer than 512 bytes");
    /* the limit counts bytes: 4097 two-byte characters are 8194 bytes */
    {
        char *wide = malloc(2 * 4097 + 3);
        size_t i;
        assert_non_null(wide);
        wide[0] = '"';
        for (i = 0; i < 4097; i++)
            memcpy(wide + 1 + 2 * i, "\xc3\xa9", 2);
        memcpy(wide + 1 + 2 * 4097, "\"", 2);
        expect_fail_free(post_body("\"p\"", "\"a\"", wide, "1"), -EINVAL,
                         "post.text: longer than 8192 bytes");
        free(wide);
    }
    expect_ok(ok, NULL, &ev);
    assert_int_equal(strlen(ev.entry.name), FP_RIBBON_NAME_MAX);
    assert_int_equal(strlen(ev.entry.text), FP_RIBBON_TEXT_MAX);
    fp_event_free(&ev);
    free(ok);
    free(t513);
    free(n129);
    free(t8193);
}

static void test_invalid_utf8(void **state)
{
    static const char *const bad[] = {
        "\xff",             /* never valid */
        "a\x80",            /* lone continuation */
        "\xc0\xaf",         /* overlong '/' */
        "\xc1\xbf",         /* overlong */
        "\xe0\x80\xaf",     /* overlong 3-byte */
        "\xf0\x80\x80\xaf", /* overlong 4-byte */
        "\xed\xa0\x80",     /* surrogate U+D800 */
        "\xed\xbf\xbf",     /* surrogate U+DFFF */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\xf5\x80\x80\x80", /* lead beyond F4 */
        "\xe2\x82",         /* truncated */
        "\xe2\x28\xa1",     /* bad continuation */
    };
    size_t i;
    fp_event ev;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *text = fmt("\"%s\"", bad[i]);
        expect_fail_free(post_body("\"p\"", "\"a\"", text, "1"), -EINVAL,
                         "post.text: not valid UTF-8");
        expect_fail_free(fmt("{\"type\":\"ribbon.pushed\",\"entry\":{\"user_id\":\"u\","
                             "\"name\":%s,\"at\":1}}",
                             text),
                         -EINVAL, "entry.name: not valid UTF-8");
        free(text);
    }
    /* boundaries that are valid: U+007F, U+0080, U+07FF, U+FFFF, U+10000, U+10FFFF */
    expect_ok("{\"type\":\"post.created\",\"post\":{\"id\":\"p\",\"author_id\":\"a\",\"text\":"
              "\"\x7f\xc2\x80\xdf\xbf\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\","
              "\"created_at\":1}}",
              NULL, &ev);
    assert_int_equal(strlen(ev.post.text), 1 + 2 + 2 + 3 + 4 + 4);
    fp_event_free(&ev);
}

static void test_nul_in_body(void **state)
{
    static const char with_nul[] = "{\"type\":\"user.revoked\",\"user_id\":\"u\0x\",\"before\":1}";

    (void)state;
    /* \u0000 would silently cut the C string at the NUL */
    expect_fail("{\"type\":\"user.revoked\",\"user_id\":\"u\\u0000x\",\"before\":1}", NULL, -EINVAL,
                "\\u0000");
    expect_fail_n(with_nul, sizeof(with_nul) - 1, NULL, -EINVAL, "NUL byte in body at offset 35");
}

static void test_bad_timestamps(void **state)
{
    static const char *const not_int[] = {"1.5", "0.000001", "\"5\"", "null", "[1]"};
    static const char *const range[] = {"-1",   "-0.5",   "9007199254740994",
                                        "1e20", "-1e400", "1e400"};
    size_t i;
    fp_event ev;

    (void)state;
    for (i = 0; i < sizeof(not_int) / sizeof(not_int[0]); i++)
        expect_fail_free(post_body("\"p\"", "\"a\"", "\"t\"", not_int[i]), -EINVAL,
                         "post.created_at: expected an integer");
    for (i = 0; i < sizeof(range) / sizeof(range[0]); i++)
        expect_fail_free(post_body("\"p\"", "\"a\"", "\"t\"", range[i]), -EINVAL,
                         "post.created_at: must be between 0 and 9007199254740992");
    expect_fail("{\"type\":\"ribbon.pushed\",\"entry\":{\"user_id\":\"u\",\"at\":-5}}", NULL,
                -EINVAL, "entry.at: must be between 0 and");
    expect_fail("{\"type\":\"user.revoked\",\"user_id\":\"u\",\"before\":2.25}", NULL, -EINVAL,
                "before: expected an integer");
    expect_fail("{\"type\":\"user.revoked\",\"user_id\":\"u\",\"before\":-1}", NULL, -EINVAL,
                "before: must be between 0 and");
    /* integral values in other spellings are fine */
    expect_ok("{\"type\":\"user.revoked\",\"user_id\":\"u\",\"before\":1.7E9}", NULL, &ev);
    assert_int_equal(ev.before, 1700000000LL);
    fp_event_free(&ev);
    expect_ok("{\"type\":\"user.revoked\",\"user_id\":\"u\",\"before\":-0}", NULL, &ev);
    assert_int_equal(ev.before, 0);
    fp_event_free(&ev);
}

static void test_routing_key(void **state)
{
    static const char body[] = "{\"type\":\"post.deleted\",\"post_id\":\"p\",\"author_id\":\"a\"}";
    fp_event ev;

    (void)state;
    expect_fail(body, "post.created", -EINVAL,
                "type \"post.deleted\" does not match routing key \"post.created\"");
    expect_fail(body, "", -EINVAL, "does not match routing key \"\"");
    expect_fail(body, "post.deleted.x", -EINVAL, "does not match routing key");
    expect_ok(body, "post.deleted", &ev);
    assert_string_equal(ev.post_id, "p");
    fp_event_free(&ev);
    expect_ok(body, NULL, &ev);
    assert_int_equal(ev.type, FP_EVENT_POST_DELETED);
    fp_event_free(&ev);
}

static void test_unknown_type(void **state)
{
    char *longtype = repeat('q', 500);
    char *body = fmt("{\"type\":\"%s\"}", longtype);
    fp_event ev;
    char reason[REASON_SZ];

    (void)state;
    expect_fail("{\"type\":\"post.edited\",\"post_id\":\"p\"}", NULL, -EINVAL,
                "unknown event type \"post.edited\"");
    /* unknown wins over a routing key mismatch, and checked before the schema */
    expect_fail("{\"type\":\"x\"}", "post.created", -EINVAL, "unknown event type \"x\"");
    expect_fail("{\"type\":\"\"}", NULL, -EINVAL, "unknown event type \"\"");
    /* quoted input is cut and made printable */
    expect_fail("{\"type\":\"a\\\"b\\nc\"}", NULL, -EINVAL, "unknown event type \"a?b?c\"");
    assert_int_equal(parse(body, NULL, &ev, reason), -EINVAL);
    assert_non_null(strstr(reason, "...\""));
    assert_true(strlen(reason) < 100);
    free(body);
    free(longtype);
}

static void test_malformed_json(void **state)
{
    (void)state;
    expect_fail("{\"type\":\"user.revoked\",\"user_id\":\"u\",", NULL, -EINVAL,
                "malformed JSON at offset");
    expect_fail("{\"type\":tru}", NULL, -EINVAL, "malformed JSON at offset 8");
    expect_fail("{'type':1}", NULL, -EINVAL, "malformed JSON at offset ");
    expect_fail("{\"type\":\"user.revoked\",\"user_id\":\"u\",\"before\":1} x", NULL, -EINVAL,
                "malformed JSON at offset 49: trailing data");
    expect_fail("{} {}", NULL, -EINVAL, "trailing data");
    expect_fail("   ", NULL, -EINVAL, "malformed JSON");
    expect_fail("{\"type\":\"\\ud800\"}", NULL, -EINVAL, "malformed JSON");
    expect_fail("", NULL, -EINVAL, "empty body");
}

static void test_non_object_top_level(void **state)
{
    static const char *const bodies[] = {
        "[]", "[{\"type\":\"post.deleted\"}]", "\"post.deleted\"", "null", "42", "true"};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        expect_fail(bodies[i], NULL, -EINVAL, "top level is not a JSON object");
}

static void test_body_size(void **state)
{
    static const char head[] = "{\"type\":\"user.revoked\",\"user_id\":\"u\",\"before\":1}";
    size_t len = FP_EVENT_MAX_BYTES;
    char *big = malloc(len + 1);
    fp_event ev;
    char reason[REASON_SZ];

    (void)state;
    assert_non_null(big);
    /* exactly the limit (valid JSON padded with whitespace) is accepted */
    memcpy(big, head, sizeof(head) - 1);
    memset(big + sizeof(head) - 1, ' ', len + 1 - (sizeof(head) - 1));
    assert_int_equal(parse_n(big, len, NULL, &ev, reason, sizeof(reason)), 0);
    assert_string_equal(ev.user_id, "u");
    fp_event_free(&ev);
    /* one byte more is refused before parsing */
    expect_fail_n(big, len + 1, NULL, -E2BIG, "body larger than 1048576 bytes");
    /* even when it is not JSON at all */
    memset(big, '{', len + 1);
    expect_fail_n(big, len + 1, NULL, -E2BIG, "body larger than 1048576 bytes");
    free(big);
}

/* Body of a post.created with n recipients "r<i % modulo>" (all distinct when modulo >= n). */
static char *recipients_body(size_t n, size_t modulo)
{
    size_t cap = 128 + n * 16, off;
    char *s = malloc(cap);
    size_t i;

    assert_non_null(s);
    off = (size_t)snprintf(s, cap,
                           "{\"type\":\"post.created\",\"post\":{\"id\":\"p\",\"author_id\":"
                           "\"a\",\"text\":\"t\",\"created_at\":1},\"recipients\":[");
    for (i = 0; i < n; i++)
        off += (size_t)snprintf(s + off, cap - off, "%s\"r%zu\"", i ? "," : "", i % modulo);
    snprintf(s + off, cap - off, "]}");
    return s;
}

static void test_recipients_limits(void **state)
{
    char *ok = recipients_body(FP_RECIPIENTS_MAX, FP_RECIPIENTS_MAX);
    char *too_many = recipients_body(FP_RECIPIENTS_MAX + 1, FP_RECIPIENTS_MAX + 1);
    char *dups = recipients_body(FP_RECIPIENTS_MAX, 7);
    fp_event ev;
    size_t i;

    (void)state;
    roundtrip(ok, &ev);
    assert_int_equal(ev.n_recipients, FP_RECIPIENTS_MAX);
    for (i = 1; i < ev.n_recipients; i++)
        assert_true(strcmp(ev.recipients[i - 1], ev.recipients[i]) < 0);
    fp_event_free(&ev);
    expect_fail(too_many, NULL, -EINVAL, "recipients: more than 10000 ids");
    roundtrip(dups, &ev);
    assert_int_equal(ev.n_recipients, 7);
    assert_string_equal(ev.recipients[0], "r0");
    assert_string_equal(ev.recipients[6], "r6");
    fp_event_free(&ev);
    free(dups);
    free(too_many);
    free(ok);
}

static void test_recipients_bad_elements(void **state)
{
    static const char pre[] = "{\"type\":\"post.created\",\"post\":{\"id\":\"p\",\"author_id\":"
                              "\"a\",\"text\":\"t\",\"created_at\":1},\"recipients\":";

    (void)state;
    expect_fail_free(fmt("%s[\"a\",5]}", pre), -EINVAL, "recipients[1]: expected a string");
    expect_fail_free(fmt("%s[null]}", pre), -EINVAL, "recipients[0]: expected a string");
    expect_fail_free(fmt("%s[\"a\",\"b\",\"c/d\"]}", pre), -EINVAL,
                     "recipients[2]: not a valid id");
    expect_fail_free(fmt("%s[\"\"]}", pre), -EINVAL, "recipients[0]: not a valid id");
    expect_fail_free(fmt("%s{\"a\":1}}", pre), -EINVAL, "recipients: expected an array");
    expect_fail_free(fmt("%s\"a\"}", pre), -EINVAL, "recipients: expected an array");
}

/* --------------------------------------------------- free and encode */

static void test_free_safety(void **state)
{
    fp_event ev;
    char reason[REASON_SZ];
    char *body = post_body("\"p\"", "\"a\"", "\"some text\"", "\"late\"");

    (void)state;
    memset(&ev, 0, sizeof(ev));
    fp_event_free(&ev); /* zeroed */
    fp_event_free(NULL);
    /* failure after post.text was already copied: nothing left to free */
    assert_int_equal(parse(body, NULL, &ev, reason), -EINVAL);
    assert_null(ev.post.text);
    fp_event_free(&ev);
    fp_event_free(&ev);
    assert_true(is_zeroed(&ev));
    free(body);
    /* failure after recipients were allocated */
    body = fmt("{\"type\":\"post.created\",\"post\":{\"id\":\"p\",\"author_id\":\"a\","
               "\"text\":\"t\",\"created_at\":1},\"recipients\":[\"a\",\"b\",1]}");
    assert_int_equal(parse(body, NULL, &ev, reason), -EINVAL);
    assert_null(ev.recipients);
    assert_false(ev.has_recipients);
    fp_event_free(&ev);
    free(body);
    /* success, then free twice */
    expect_ok("{\"type\":\"ribbon.pushed\",\"entry\":{\"user_id\":\"u\",\"name\":\"n\","
              "\"text\":\"t\",\"at\":1}}",
              NULL, &ev);
    assert_non_null(ev.entry.name);
    fp_event_free(&ev);
    assert_null(ev.entry.name);
    assert_null(ev.entry.text);
    fp_event_free(&ev);
    assert_true(is_zeroed(&ev));
}

static void test_reason_buffer(void **state)
{
    fp_event ev;
    char small[8];

    (void)state;
    memset(small, 'z', sizeof(small));
    assert_int_equal(parse_n("{\"type\":1}", 10, NULL, &ev, small, sizeof(small)), -EINVAL);
    assert_int_equal(strlen(small), sizeof(small) - 1); /* truncated, terminated */
    assert_int_equal(strncmp(small, "type: e", 7), 0);
    assert_int_equal(parse_n("{\"type\":1}", 10, NULL, &ev, NULL, 0), -EINVAL);
    assert_int_equal(parse_n("{\"type\":1}", 10, NULL, &ev, small, 0), -EINVAL);
    assert_int_equal(fp_event_parse("{}", 2, NULL, NULL, small, sizeof(small)), -EINVAL);
    assert_int_equal(fp_event_parse(NULL, 0, NULL, &ev, NULL, 0), -EINVAL);
}

static void test_encode_invalid(void **state)
{
    fp_event ev;
    char reason[REASON_SZ];
    char *big;

    (void)state;
    memset(&ev, 0, sizeof(ev));
    assert_null(fp_event_encode(NULL));
    assert_null(fp_event_encode(&ev)); /* type 0 */
    assert_int_equal(fp_event_validate(&ev, reason, sizeof(reason)), -EINVAL);
    assert_non_null(strstr(reason, "unknown event type"));

    ev.type = FP_EVENT_FOLLOW_CREATED;
    snprintf(ev.follower_id, sizeof(ev.follower_id), "%s", "a/b");
    snprintf(ev.followee_id, sizeof(ev.followee_id), "%s", "b");
    assert_null(fp_event_encode(&ev));
    assert_int_equal(fp_event_validate(&ev, reason, sizeof(reason)), -EINVAL);
    assert_non_null(strstr(reason, "follower_id: not a valid id"));
    memset(ev.follower_id, 'a', sizeof(ev.follower_id)); /* not terminated */
    assert_null(fp_event_encode(&ev));
    snprintf(ev.follower_id, sizeof(ev.follower_id), "%s", "a");
    assert_int_equal(fp_event_validate(&ev, reason, sizeof(reason)), 0);

    memset(&ev, 0, sizeof(ev));
    ev.type = FP_EVENT_POST_CREATED;
    snprintf(ev.post.id, sizeof(ev.post.id), "%s", "p");
    snprintf(ev.post.author_id, sizeof(ev.post.author_id), "%s", "a");
    assert_null(fp_event_encode(&ev)); /* text NULL */
    big = repeat('x', FP_POST_TEXT_MAX + 1);
    ev.post.text = big;
    assert_null(fp_event_encode(&ev));
    big[FP_POST_TEXT_MAX] = '\0';
    ev.post.created_at = -1;
    assert_null(fp_event_encode(&ev));
    assert_int_equal(fp_event_validate(&ev, reason, sizeof(reason)), -EINVAL);
    assert_non_null(strstr(reason, "post.created_at: must be between"));
    ev.post.created_at = 1;
    big[0] = '\xff';
    assert_null(fp_event_encode(&ev));
    big[0] = 'x';
    ev.has_recipients = true;
    ev.n_recipients = 2; /* but no array */
    assert_null(fp_event_encode(&ev));
    ev.has_recipients = false; /* count ignored without has_recipients */
    {
        char *json = fp_event_encode(&ev);
        assert_non_null(json);
        free(json);
    }
    free(big);
}

static void test_encode_built_struct(void **state)
{
    fp_event ev, back;
    char ids[4][FP_ID_BUFSZ] = {"zz", "aa", "zz", "mm"};
    char *json;

    (void)state;
    memset(&ev, 0, sizeof(ev));
    ev.type = FP_EVENT_POST_CREATED;
    snprintf(ev.post.id, sizeof(ev.post.id), "%s", "p9");
    snprintf(ev.post.author_id, sizeof(ev.post.author_id), "%s", "au");
    ev.post.text = "line1\nline2 \"q\" \\ \x01";
    ev.post.created_at = 1700000000001LL;
    ev.has_recipients = true;
    ev.recipients = ids;
    ev.n_recipients = 4;
    json = fp_event_encode(&ev);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"created_at\":1700000000001"));
    assert_non_null(strstr(json, "\"recipients\":[\"aa\",\"mm\",\"zz\"]"));
    assert_null(strchr(json, '\n')); /* compact, escaped */
    expect_ok(json, "post.created", &back);
    assert_string_equal(back.post.text, ev.post.text);
    assert_int_equal(back.post.created_at, ev.post.created_at);
    assert_int_equal(back.n_recipients, 3);
    assert_string_equal(back.recipients[1], "mm");
    fp_event_free(&back);
    free(json);

    /* fields of other types are not encoded */
    memset(&ev, 0, sizeof(ev));
    ev.type = FP_EVENT_USER_REVOKED;
    snprintf(ev.user_id, sizeof(ev.user_id), "%s", "u");
    snprintf(ev.post_id, sizeof(ev.post_id), "%s", "ignored");
    ev.before = FP_EVENT_TS_MAX;
    json = fp_event_encode(&ev);
    assert_non_null(json);
    assert_string_equal(json, "{\"type\":\"user.revoked\",\"user_id\":\"u\","
                              "\"before\":9007199254740992}");
    free(json);
}

/* A batch event's text is the bytes that came (its dead letter), not
 * cJSON's writing of it: numbers beyond a double, blanks and escapes kept;
 * whatever the envelope's member order, blanks or escaped names. */
static void test_batch_text_as_sent(void **state)
{
    static const char *const texts[] = {
        "{\"events\" :\n [ {\"type\":\"post.created\",\"post\":{\"created_at\":1e400}} ,"
        "\t{\"type\":\"follow.created\",\"n\":18446744073709551617,\"s\":\"]}\\\"[{,\"} ],"
        "\"type\":\"batch\"}",
        "{\"type\":\"batch\",\"x\":[{\"events\":[1]},\"events\"],\"ev\\u0065nts\":[[1, 2],"
        "\"e\\u00e9\",-0.5e-3,true,null,{\"type\":\"post.deleted\"}]}"};
    static const char *const want[][6] = {
        {"{\"type\":\"post.created\",\"post\":{\"created_at\":1e400}}",
         "{\"type\":\"follow.created\",\"n\":18446744073709551617,\"s\":\"]}\\\"[{,\"}"},
        {"[1, 2]", "\"e\\u00e9\"", "-0.5e-3", "true", "null", "{\"type\":\"post.deleted\"}"}};
    static const size_t n[] = {2, 6};
    char reason[160], *text;
    const char *rk;
    fp_event_batch b;
    size_t t, i;

    (void)state;
    for (t = 0; t < 2; t++) {
        assert_int_equal(
            fp_event_batch_parse(texts[t], strlen(texts[t]), &b, reason, sizeof(reason)), 0);
        assert_int_equal(b.n, n[t]);
        assert_non_null(b.spans_);
        for (i = 0; i < b.n; i++) {
            text = fp_event_batch_text(&b, i, &rk);
            assert_string_equal(text, want[t][i]);
            free(text);
        }
        fp_event_batch_free(&b);
    }
}

/* Batches: joined bodies parse back event by event; a bad event is that
 * event's failure only; the envelope's own rules refuse the whole. */
static void test_batch(void **state)
{
    const char *bodies[3] = {
        "{\"type\":\"follow.created\",\"follower_id\":\"a\",\"followee_id\":\"b\"}",
        "{\"type\":\"post.deleted\",\"post_id\":\"p\"}", "{\"type\":\"batch\",\"events\":[]}"};
    size_t lens[3], len, i;
    char reason[160], *text, *big;
    const char *rk, *mixed = "{\"type\":\"batch\",\"events\":[7,{\"type\":3}]}";
    fp_event_batch b;
    fp_event ev;

    (void)state;
    for (i = 0; i < 3; i++)
        lens[i] = strlen(bodies[i]);
    text = fp_event_batch_join(bodies, lens, 3, &len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    assert_true(fp_event_is_batch("batch"));
    assert_false(fp_event_is_batch("post.created"));
    assert_false(fp_event_is_batch(NULL));
    assert_int_equal(fp_event_batch_parse(text, len, &b, reason, sizeof(reason)), 0);
    assert_string_equal(reason, "");
    assert_int_equal(b.n, 3);
    assert_int_equal(fp_event_batch_get(&b, 0, &ev, reason, sizeof(reason)), 0);
    assert_int_equal(ev.type, FP_EVENT_FOLLOW_CREATED);
    assert_string_equal(ev.follower_id, "a");
    assert_string_equal(ev.followee_id, "b");
    fp_event_free(&ev);
    assert_int_equal(fp_event_batch_get(&b, 1, &ev, reason, sizeof(reason)), -EINVAL);
    assert_string_equal(reason, "missing field \"author_id\"");
    assert_int_equal(fp_event_batch_get(&b, 2, &ev, reason, sizeof(reason)), -EINVAL);
    assert_string_equal(reason, "unknown event type \"batch\"");
    big = fp_event_batch_text(&b, 1, &rk);
    assert_string_equal(big, bodies[1]);
    assert_string_equal(rk, "post.deleted");
    free(big);
    fp_event_batch_free(&b);
    assert_null(b.root_);
    free(text); /* the body outlives the batch */

    /* An element that is not an object, and one without a string type. */
    assert_int_equal(fp_event_batch_parse(mixed, strlen(mixed), &b, reason, sizeof(reason)), 0);
    assert_int_equal(fp_event_batch_get(&b, 0, &ev, reason, sizeof(reason)), -EINVAL);
    assert_string_equal(reason, "not a JSON object");
    free(fp_event_batch_text(&b, 0, &rk));
    assert_string_equal(rk, "");
    assert_int_equal(fp_event_batch_get(&b, 1, &ev, reason, sizeof(reason)), -EINVAL);
    assert_string_equal(reason, "type: expected a string");
    fp_event_batch_free(&b);

    /* The envelope. */
    static const struct {
        const char *body;
        const char *reason;
    } bad[] = {
        {"{\"type\":\"post.created\",\"events\":[{}]}", "batch: type: expected \"batch\""},
        {"{\"events\":[{}]}", "batch: type: expected \"batch\""},
        {"{\"type\":\"batch\"}", "batch: events: expected an array"},
        {"{\"type\":\"batch\",\"events\":{}}", "batch: events: expected an array"},
        {"{\"type\":\"batch\",\"events\":[]}", "batch: events: 0, not 1 to 1000"},
        {"[1]", NULL},
        {"{\"type\":\"batch\",\"events\":[{\"a\":1,\"a\":2}]}", NULL},
    };
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            fp_event_batch_parse(bad[i].body, strlen(bad[i].body), &b, reason, sizeof(reason)),
            -EINVAL);
        assert_null(b.root_);
        assert_true(reason[0] != '\0');
        if (bad[i].reason != NULL)
            assert_string_equal(reason, bad[i].reason);
    }
    /* 1001 events, and a body over 1 MiB. */
    big = malloc(FP_EVENT_MAX_BYTES + 2);
    assert_non_null(big);
    len = (size_t)snprintf(big, 64, "{\"type\":\"batch\",\"events\":[");
    for (i = 0; i < 1001; i++)
        len += (size_t)snprintf(big + len, 8, "%s{}", i > 0 ? "," : "");
    len += (size_t)snprintf(big + len, 8, "]}");
    assert_int_equal(fp_event_batch_parse(big, len, &b, reason, sizeof(reason)), -EINVAL);
    assert_string_equal(reason, "batch: events: 1001, not 1 to 1000");
    memset(big, ' ', FP_EVENT_MAX_BYTES + 1);
    assert_int_equal(fp_event_batch_parse(big, FP_EVENT_MAX_BYTES + 1, &b, reason, sizeof(reason)),
                     -E2BIG);
    assert_string_equal(reason, "batch: body larger than 1048576 bytes");
    free(big);
}

/* clang-format off */
FT_MAIN(ft_unit_run, NULL, NULL,
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_post_created_roundtrip),
        cmocka_unit_test(test_post_created_recipients_roundtrip),
        cmocka_unit_test(test_post_created_empty_and_null_recipients),
        cmocka_unit_test(test_post_created_limits_roundtrip),
        cmocka_unit_test(test_post_created_multibyte_roundtrip),
        cmocka_unit_test(test_post_deleted_roundtrip),
        cmocka_unit_test(test_follow_roundtrip),
        cmocka_unit_test(test_ribbon_roundtrip_full),
        cmocka_unit_test(test_ribbon_roundtrip_minimal),
        cmocka_unit_test(test_user_revoked_roundtrip),
        cmocka_unit_test(test_extra_fields_ignored),
        cmocka_unit_test(test_missing_fields),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_bad_ids),
        cmocka_unit_test(test_oversized_text),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_nul_in_body),
        cmocka_unit_test(test_bad_timestamps),
        cmocka_unit_test(test_routing_key),
        cmocka_unit_test(test_unknown_type),
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_non_object_top_level),
        cmocka_unit_test(test_body_size),
        cmocka_unit_test(test_recipients_limits),
        cmocka_unit_test(test_recipients_bad_elements),
        cmocka_unit_test(test_free_safety),
        cmocka_unit_test(test_reason_buffer),
        cmocka_unit_test(test_encode_invalid),
        cmocka_unit_test(test_encode_built_struct),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_batch_text_as_sent))
/* clang-format on */
