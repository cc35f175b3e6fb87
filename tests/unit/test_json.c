/*
 * fp_json: the one reader of untrusted JSON objects (events, request
 * bodies, JWT headers and claims) and the reason helpers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "fp_json.h"
#include "ft_main.h"

/* Parses len bytes of text and expects -EINVAL with want in the reason. */
static void expect_refused_n(const char *text, size_t len, const char *want)
{
    cJSON *root = (cJSON *)1;
    char reason[160] = "x";

    assert_int_equal(fp_json_object_parse(text, len, &root, reason, sizeof(reason)), -EINVAL);
    assert_null(root);
    if (strstr(reason, want) == NULL)
        fail_msg("reason \"%s\" does not contain \"%s\"", reason, want);
}

/* The same for a NUL-terminated text. */
static void expect_refused(const char *text, const char *want)
{
    expect_refused_n(text, text != NULL ? strlen(text) : 0, want);
}

static cJSON *expect_ok(const char *text)
{
    cJSON *root = NULL;
    char reason[160] = "x";

    assert_int_equal(fp_json_object_parse(text, strlen(text), &root, reason, sizeof(reason)), 0);
    assert_non_null(root);
    assert_string_equal(reason, "");
    return root;
}

static void test_object(void **state)
{
    cJSON *root = expect_ok("{\"text\":\"hi\"} \n");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "text");

    (void)state;
    assert_true(cJSON_IsString(v));
    assert_string_equal(v->valuestring, "hi");
    cJSON_Delete(root);
    /* Only len bytes count: what follows them is not read. */
    assert_int_equal(fp_json_object_parse("{}garbage", 2, &root, NULL, 0), 0);
    cJSON_Delete(root);
}

static void test_nul(void **state)
{
    static const char nul_body[] = "{\"a\":\"x\0y\"}";
    cJSON *root;

    (void)state;
    expect_refused_n(nul_body, sizeof(nul_body) - 1, "NUL byte in body at offset 7");
    expect_refused("{\"t\":\"a\\u0000b\"}", "\\u0000");
    /* An escaped backslash followed by u0000 is text, not an escape. */
    root = expect_ok("{\"t\":\"a\\\\u0000b\"}");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "t")->valuestring, "a\\u0000b");
    cJSON_Delete(root);
    /* ... and an escaped backslash before a real \u0000 does not hide it. */
    expect_refused("{\"t\":\"a\\\\\\u0000b\"}", "\\u0000");
}

/* What cJSON alone would take: a \u escape without four hex digits (it
 * reads U+0000 and cuts the string), a control character unescaped in a
 * string or between tokens. */
static void test_rfc8259(void **state)
{
    cJSON *root;

    (void)state;
    expect_refused("{\"sub\":\"alice\\uZZZZ-x\"}", "bad \\u escape at offset 13");
    expect_refused("{\"t\":\"a\\u00g0\"}", "bad \\u escape");
    expect_refused("{\"t\":\"a\\u12\\\"x\"}", "bad \\u escape");
    expect_refused("{\"t\\uQQQQ\":1}", "bad \\u escape");
    expect_refused("{\"t\":\"a\\u0000b\"}", "\\u0000 at offset 7");
    expect_refused("{\"t\":\"a\x01"
                   "b\"}",
                   "unescaped control character 0x01 in a string at offset 7");
    expect_refused("{\"t\":\"a\tb\"}", "unescaped control character 0x09");
    expect_refused("{\"t\":\"a\nb\"}", "unescaped control character 0x0a");
    expect_refused("{\x01\"t\":1}", "control character 0x01 at offset 1");
    expect_refused("{\"t\":1\x1f}", "control character 0x1f at offset 6");
    /* RFC 8259's blanks between tokens, and escapes of every kind. */
    root = expect_ok("\t{\r\n\"t\" : \"\\u00e9\\uD83D\\uDE00\\t\\n\\\"\\\\\\/\"}\n");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "t")->valuestring,
                        "\xc3\xa9\xf0\x9f\x98\x80\t\n\"\\/");
    cJSON_Delete(root);
}

static void test_structure(void **state)
{
    cJSON *root;

    (void)state;
    expect_refused("{} {}", "trailing data");
    expect_refused("[1]", "top level is not a JSON object");
    expect_refused("\"s\"", "top level is not a JSON object");
    expect_refused("{\"a\":", "malformed JSON at offset");
    expect_refused("", "empty body");
    expect_refused(NULL, "empty body");
    assert_int_equal(fp_json_object_parse("{}", 2, NULL, NULL, 0), -EINVAL);
    /* No reason buffer is fine. */
    assert_int_equal(fp_json_object_parse("[", 1, &root, NULL, 0), -EINVAL);
    assert_null(root);
}

/* {"k0":0,...,"k19999":0} parses; with "k0" again at the end it does not. */
static void big_object_check(void)
{
    size_t cap = 20000 * 16 + 64, n = 0, i;
    char *text = malloc(cap);
    cJSON *root;

    assert_non_null(text);
    text[n++] = '{';
    for (i = 0; i < 20000; i++)
        n += (size_t)snprintf(text + n, cap - n, "%s\"k%zu\":0", i > 0 ? "," : "", i);
    memcpy(text + n, "}", 2);
    root = expect_ok(text);
    assert_int_equal(cJSON_GetArraySize(root), 20000);
    cJSON_Delete(root);
    memcpy(text + n, ",\"k0\":1}", 9);
    expect_refused(text, "k0: duplicate member");
    free(text);
}

static void test_duplicates(void **state)
{
    cJSON *root;

    (void)state;
    expect_refused("{\"sub\":\"bob\",\"sub\":\"alice\"}", "sub: duplicate member");
    expect_refused("{\"a\":1,\"b\":2,\"a\":3}", "a: duplicate member");
    /* Nested objects and objects inside arrays too. */
    expect_refused("{\"post\":{\"id\":\"p\",\"id\":\"q\"}}", "post.id: duplicate member");
    expect_refused("{\"l\":[{\"x\":1},{\"x\":1,\"x\":2}]}", "l[1].x: duplicate member");
    /* Large objects are checked by sorting their names: a duplicate at
     * either end of 20,000 members is found, unique names pass. */
    big_object_check();
    /* Names differing in case, and equal values, are distinct members. */
    root = expect_ok("{\"a\":1,\"A\":1,\"o\":{\"a\":1},\"l\":[1,1]}");
    cJSON_Delete(root);
}

static void test_utf8(void **state)
{
    static const char *const bad[] = {
        "\xff", "a\x80", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82",
    };
    char text[64];
    size_t i;
    cJSON *root;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "{\"post\":{\"text\":\"%s\"}}", bad[i]);
        expect_refused(text, "post.text: not valid UTF-8");
        snprintf(text, sizeof(text), "{\"k%s\":1}", bad[i]);
        expect_refused(text, "member name not valid UTF-8");
        assert_false(fp_json_utf8_valid(bad[i], strlen(bad[i])));
    }
    root = expect_ok("{\"t\":\"\x7f\xc2\x80\xdf\xbf\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\","
                     "\"e\":\"\\ud83d\\ude00\"}");
    cJSON_Delete(root);
}

static void test_quote_and_refuse(void **state)
{
    char out[FP_JSON_QUOTE_MAX + 4], reason[32], long_in[200];

    (void)state;
    fp_json_quote("a\"b\\c<d>e&f'g`h\ni\xff", out, sizeof(out));
    assert_string_equal(out, "a?b?c?d?e?f?g?h?i?");
    memset(long_in, 'x', sizeof(long_in) - 1);
    long_in[sizeof(long_in) - 1] = '\0';
    fp_json_quote(long_in, out, sizeof(out));
    assert_int_equal(strlen(out), FP_JSON_QUOTE_MAX + 3);
    assert_string_equal(out + FP_JSON_QUOTE_MAX, "...");
    fp_json_quote("abcdef", out, 4);
    assert_string_equal(out, "abc");
    assert_int_equal(fp_json_refuse(reason, sizeof(reason), -EINVAL, "n=%d", 7), -EINVAL);
    assert_string_equal(reason, "n=7");
    assert_int_equal(fp_json_refuse(NULL, 0, -E2BIG, "ignored"), -E2BIG);
}

/* clang-format off */
FT_MAIN(ft_unit_run, NULL, NULL,
        cmocka_unit_test(test_object),
        cmocka_unit_test(test_nul),
        cmocka_unit_test(test_rfc8259),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_quote_and_refuse))
/* clang-format on */
