/*
 * fp_json.c - the strict JSON object reader (see fp_json.h) on cJSON.
 */
#include "fp_json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

int fp_json_refuse(char *reason, size_t reason_len, int rc, const char *fmt, ...)
{
    va_list ap;

    if (reason == NULL || reason_len == 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(reason, reason_len, fmt, ap);
    va_end(ap);
    return rc;
}

void fp_json_quote(const char *s, char *out, size_t outsz)
{
    size_t i, n = 0;

    if (outsz == 0)
        return;
    for (i = 0; s[i] != '\0' && i < FP_JSON_QUOTE_MAX && n + 1 < outsz; i++) {
        unsigned char c = (unsigned char)s[i];
        out[n++] = (c < 0x20 || c > 0x7e || strchr("\"\\<>&'`", c) != NULL) ? '?' : (char)c;
    }
    out[n] = '\0';
    if (s[i] != '\0' && n + 4 <= outsz)
        memcpy(out + n, "...", 4);
}

/*
 * Length of the well-formed UTF-8 sequence at s (avail > 0 bytes there),
 * or 0 when it is invalid: bad lead or continuation byte, truncated,
 * overlong, a UTF-16 surrogate or beyond U+10FFFF.
 */
static size_t json__utf8_seq(const unsigned char *s, size_t avail)
{
    size_t n, k;
    uint32_t cp, min;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
        cp = s[0] & 0x1f;
        min = 0x80;
    } else if ((s[0] & 0xf0) == 0xe0) {
        n = 3;
        cp = s[0] & 0x0f;
        min = 0x800;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        cp = s[0] & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (k = 1; k < n; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

size_t fp_json_utf8_len(const char *s, size_t avail)
{
    return json__utf8_seq((const unsigned char *)s, avail);
}

bool fp_json_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n;

    while (i < len) {
        n = json__utf8_seq(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* Whether the 4 bytes at s are hex digits. */
static bool json__hex4(const char *s)
{
    size_t i;

    for (i = 0; i < 4; i++) {
        if (s[i] == '\0' || strchr("0123456789abcdefABCDEF", s[i]) == NULL)
            return false;
    }
    return true;
}

/*
 * What cJSON reads differently from RFC 8259 in the text of len bytes
 * (already known to parse): a \u escape without four hex digits after it
 * (cJSON decodes it as U+0000, cutting the string there, where a strict
 * reader refuses it), a \u0000 escape (the same cut), a control character
 * (below 0x20) unescaped in a string, and one other than tab, LF and CR
 * between tokens (cJSON counts every byte up to 0x20 as a blank). Each
 * escape is skipped whole, so an escaped backslash followed by "u0000" is
 * text. Returns 0, or -EINVAL with a reason naming the byte offset.
 */
static int json__check_text(const char *s, size_t len, char *reason, size_t rlen)
{
    bool in_string = false;
    unsigned char c;
    size_t i;

    for (i = 0; i < len; i++) {
        c = (unsigned char)s[i];
        if (!in_string) {
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
                return fp_json_refuse(reason, rlen, -EINVAL,
                                      "control character 0x%02x at offset %zu", c, i);
            in_string = c == '"';
        } else if (c == '"') {
            in_string = false;
        } else if (c < 0x20) {
            return fp_json_refuse(reason, rlen, -EINVAL,
                                  "unescaped control character 0x%02x in a string at offset %zu", c,
                                  i);
        } else if (c == '\\' && i + 1 < len) {
            if (s[i + 1] == 'u' && (i + 6 > len || !json__hex4(s + i + 2)))
                return fp_json_refuse(reason, rlen, -EINVAL,
                                      "bad \\u escape at offset %zu (four hex digits needed)", i);
            if (s[i + 1] == 'u' && memcmp(s + i + 2, "0000", 4) == 0)
                return fp_json_refuse(reason, rlen, -EINVAL,
                                      "a string contains \\u0000 at offset %zu", i);
            i++; /* skip the escaped character */
        }
    }
    return 0;
}

/* Longest member path named in a reason ("post.text", "recipients[3]"). */
#define JSON__PATH_MAX 96

/* Appends ".name" (or "name" at the top) or, when name is NULL, "[i]" to
 * path, cut to fit. */
static void json__path_push(char *path, const char *name, size_t i)
{
    size_t n = strlen(path);
    char quoted[FP_JSON_QUOTE_MAX + 4];

    if (name == NULL) {
        snprintf(path + n, JSON__PATH_MAX - n, "[%zu]", i);
        return;
    }
    fp_json_quote(name, quoted, sizeof(quoted));
    snprintf(path + n, JSON__PATH_MAX - n, "%s%s", n > 0 ? "." : "", quoted);
}

static int json__cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Objects up to this many members are checked pairwise, larger ones by
 * sorting their names: a 1 MiB body can hold 100,000 members, and a
 * pairwise check of that many would hold the reader for seconds. */
#define JSON__PAIRWISE_MAX 16

/*
 * The member name object obj holds twice, or NULL when every name is
 * unique. Returns -ENOMEM (and NULL in *dup) when memory ran out, else 0.
 */
static int json__duplicate(const cJSON *obj, const char **dup)
{
    const cJSON *a, *b;
    const char **names;
    size_t n = 0, k;

    *dup = NULL;
    for (a = obj->child; a != NULL; a = a->next)
        n++;
    if (n <= JSON__PAIRWISE_MAX) {
        for (a = obj->child; a != NULL && *dup == NULL; a = a->next) {
            for (b = a->next; b != NULL && *dup == NULL; b = b->next) {
                if (strcmp(a->string, b->string) == 0)
                    *dup = a->string;
            }
        }
        return 0;
    }
    names = malloc(n * sizeof(*names));
    if (names == NULL)
        return -ENOMEM;
    for (a = obj->child, k = 0; a != NULL; a = a->next)
        names[k++] = a->string;
    qsort(names, n, sizeof(*names), json__cmp_names);
    for (k = 1; k < n && *dup == NULL; k++) {
        if (strcmp(names[k - 1], names[k]) == 0)
            *dup = names[k];
    }
    free(names);
    return 0;
}

/*
 * Walks the children of item (path names item, "" for the root): every
 * member name and string value must be strict UTF-8, and no object may
 * hold two members of the same name. Returns 0, -EINVAL with a reason
 * naming the member, or -ENOMEM.
 */
static int json__check_members(const cJSON *item, char *path, char *reason, size_t rlen)
{
    size_t n = strlen(path), i = 0;
    bool object = cJSON_IsObject(item);
    const char *dup = NULL;
    const cJSON *a;
    int rc;

    for (a = item->child; a != NULL; a = a->next, i++) {
        json__path_push(path, object ? a->string : NULL, i);
        if (object && !fp_json_utf8_valid(a->string, strlen(a->string)))
            return fp_json_refuse(reason, rlen, -EINVAL, "%s: member name not valid UTF-8", path);
        if (cJSON_IsString(a) && !fp_json_utf8_valid(a->valuestring, strlen(a->valuestring)))
            return fp_json_refuse(reason, rlen, -EINVAL, "%s: not valid UTF-8", path);
        rc = json__check_members(a, path, reason, rlen);
        if (rc != 0)
            return rc;
        path[n] = '\0';
    }
    if (!object)
        return 0;
    if (json__duplicate(item, &dup) != 0)
        return fp_json_refuse(reason, rlen, -ENOMEM, "out of memory");
    if (dup != NULL) {
        json__path_push(path, dup, 0);
        return fp_json_refuse(reason, rlen, -EINVAL, "%s: duplicate member", path);
    }
    return 0;
}

/* The rules on the raw bytes, before cJSON sees them. 0 or -EINVAL. */
static int json__check_bytes(const char *text, size_t len, char *reason, size_t rlen)
{
    const char *nul;

    if (text == NULL || len == 0)
        return fp_json_refuse(reason, rlen, -EINVAL, "empty body");
    nul = memchr(text, '\0', len);
    if (nul != NULL)
        return fp_json_refuse(reason, rlen, -EINVAL, "NUL byte in body at offset %zu",
                              (size_t)(nul - text));
    return 0;
}

/* The rules on the parsed tree. 0 or -EINVAL. */
static int json__check_tree(const char *text, size_t len, const cJSON *root, char *reason,
                            size_t rlen)
{
    char path[JSON__PATH_MAX] = "";
    int rc = json__check_text(text, len, reason, rlen);

    if (rc != 0)
        return rc;
    if (!cJSON_IsObject(root))
        return fp_json_refuse(reason, rlen, -EINVAL, "top level is not a JSON object");
    return json__check_members(root, path, reason, rlen);
}

int fp_json_object_parse(const char *text, size_t len, struct cJSON **root, char *reason,
                         size_t reason_len)
{
    const char *end = NULL;
    size_t off;
    int rc;

    if (reason != NULL && reason_len > 0)
        reason[0] = '\0';
    if (root == NULL)
        return -EINVAL;
    *root = NULL;
    rc = json__check_bytes(text, len, reason, reason_len);
    if (rc != 0)
        return rc;
    *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (*root == NULL) {
        off = (end != NULL && end >= text) ? (size_t)(end - text) : 0;
        return fp_json_refuse(reason, reason_len, -EINVAL, "malformed JSON at offset %zu", off);
    }
    off = (size_t)(end - text);
    while (off < len && strchr(" \t\r\n", text[off]) != NULL)
        off++;
    if (off < len)
        rc = fp_json_refuse(reason, reason_len, -EINVAL,
                            "malformed JSON at offset %zu: trailing data", off);
    else
        rc = json__check_tree(text, len, *root, reason, reason_len);
    if (rc != 0) {
        cJSON_Delete(*root);
        *root = NULL;
    }
    return rc;
}
