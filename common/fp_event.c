/*
 * fp_event.c - parse, validate and encode the v1 events (see fp_event.h).
 *
 * Each event type is described by a small schema: the list of its scalar
 * fields (id, text or timestamp; top level or inside "post"/"entry") plus
 * whether it carries "recipients". Parsing, validation of a hand-built
 * struct and encoding all walk the same schema, so the three cannot drift
 * apart.
 */
#include "fp_event.h"
#include "fp_json.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENT__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

typedef enum { EVENT__ID, EVENT__TEXT, EVENT__TS } event__kind;

/* One scalar field of an event, located in fp_event by its offset. */
typedef struct {
    const char *parent; /* NULL: top level; else the enclosing object's key */
    const char *key;
    const char *path; /* as quoted in reasons, e.g. "post.id" */
    event__kind kind;
    size_t off;      /* offsetof(fp_event, ...) */
    size_t min, max; /* EVENT__TEXT: length limits in bytes */
    bool optional;   /* may be absent: EVENT__TEXT then NULL, EVENT__TS then 0 (and 0
                        is not written) */
} event__field;

typedef struct {
    const event__field *fields;
    size_t n_fields;
    bool recipients; /* carries the optional "recipients" array */
} event__schema;

/* Where reasons are written; buf may be NULL or len 0 (then discarded). */
typedef struct {
    char *buf;
    size_t len;
} event__reason;

#define EVENT__F_ID(parent, key, path, member)                                                     \
    {                                                                                              \
        parent, key, path, EVENT__ID, offsetof(fp_event, member), 0, 0, false                      \
    }
#define EVENT__F_TS(parent, key, path, member)                                                     \
    {                                                                                              \
        parent, key, path, EVENT__TS, offsetof(fp_event, member), 0, 0, false                      \
    }
#define EVENT__F_TS_OPT(parent, key, path, member)                                                 \
    {                                                                                              \
        parent, key, path, EVENT__TS, offsetof(fp_event, member), 0, 0, true                       \
    }
#define EVENT__F_TEXT(parent, key, path, member, min, max, opt)                                    \
    {                                                                                              \
        parent, key, path, EVENT__TEXT, offsetof(fp_event, member), min, max, opt                  \
    }

static const event__field event__post_created_fields[] = {
    EVENT__F_ID("post", "id", "post.id", post.id),
    EVENT__F_ID("post", "author_id", "post.author_id", post.author_id),
    EVENT__F_TEXT("post", "text", "post.text", post.text, 1, FP_POST_TEXT_MAX, false),
    EVENT__F_TS("post", "created_at", "post.created_at", post.created_at),
};

static const event__field event__post_deleted_fields[] = {
    EVENT__F_ID(NULL, "post_id", "post_id", post_id),
    EVENT__F_ID(NULL, "author_id", "author_id", author_id),
};

static const event__field event__follow_fields[] = {
    EVENT__F_ID(NULL, "follower_id", "follower_id", follower_id),
    EVENT__F_ID(NULL, "followee_id", "followee_id", followee_id),
    EVENT__F_TS_OPT(NULL, "at", "at", follow_at),
};

static const event__field event__ribbon_fields[] = {
    EVENT__F_ID("entry", "user_id", "entry.user_id", entry.user_id),
    EVENT__F_TEXT("entry", "name", "entry.name", entry.name, 0, FP_RIBBON_NAME_MAX, true),
    EVENT__F_TEXT("entry", "text", "entry.text", entry.text, 0, FP_RIBBON_TEXT_MAX, true),
    EVENT__F_TS("entry", "at", "entry.at", entry.at),
};

static const event__field event__revoked_fields[] = {
    EVENT__F_ID(NULL, "user_id", "user_id", user_id),
    EVENT__F_TS(NULL, "before", "before", before),
};

#define EVENT__SCHEMA(fields, rcpt)                                                                \
    {                                                                                              \
        fields, EVENT__ARRAY_LEN(fields), rcpt                                                     \
    }

/* Indexed by fp_event_type; entry 0 is unused. */
static const event__schema event__schemas[] = {
    [FP_EVENT_POST_CREATED] = EVENT__SCHEMA(event__post_created_fields, true),
    [FP_EVENT_POST_DELETED] = EVENT__SCHEMA(event__post_deleted_fields, true),
    [FP_EVENT_FOLLOW_CREATED] = EVENT__SCHEMA(event__follow_fields, false),
    [FP_EVENT_FOLLOW_DELETED] = EVENT__SCHEMA(event__follow_fields, false),
    [FP_EVENT_RIBBON_PUSHED] = EVENT__SCHEMA(event__ribbon_fields, false),
    [FP_EVENT_USER_REVOKED] = EVENT__SCHEMA(event__revoked_fields, false),
};

static const char *const event__names[] = {
    [FP_EVENT_POST_CREATED] = "post.created",     [FP_EVENT_POST_DELETED] = "post.deleted",
    [FP_EVENT_FOLLOW_CREATED] = "follow.created", [FP_EVENT_FOLLOW_DELETED] = "follow.deleted",
    [FP_EVENT_RIBBON_PUSHED] = "ribbon.pushed",   [FP_EVENT_USER_REVOKED] = "user.revoked",
};

/* Name of type t ("post.created", ...); NULL when t is not a known type. */
const char *fp_event_type_name(fp_event_type t)
{
    if ((int)t <= 0 || (size_t)t >= EVENT__ARRAY_LEN(event__names))
        return NULL;
    return event__names[t];
}

/* Type named s into *out (may be NULL to only test). Returns 0 or -EINVAL. */
int fp_event_type_parse(const char *s, fp_event_type *out)
{
    size_t i;

    if (s == NULL)
        return -EINVAL;
    for (i = 1; i < EVENT__ARRAY_LEN(event__names); i++) {
        if (strcmp(s, event__names[i]) == 0) {
            if (out != NULL)
                *out = (fp_event_type)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* ------------------------------------------------------------ helpers */

/* Writes a reason to r (see fp_json_refuse) and returns rc. */
#define event__fail(r, rc, ...) fp_json_refuse((r)->buf, (r)->len, (rc), __VA_ARGS__)

/* malloc'd copy of the len bytes at s plus a NUL; NULL on ENOMEM. */
static char *event__strndup(const char *s, size_t len)
{
    char *d = malloc(len + 1);

    if (d == NULL)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

/* Address of field f inside ev. */
static void *event__at(const fp_event *ev, const event__field *f)
{
    return (char *)ev + f->off;
}

/* ------------------------------------------------------ value checks */

/* 0 when s is a valid id, else -EINVAL with a reason naming path. */
static int event__check_id(const char *s, const char *path, event__reason *r)
{
    if (!fp_id_valid(s))
        return event__fail(r, -EINVAL, "%s: not a valid id (1-%d chars of [A-Za-z0-9_-])", path,
                           FP_ID_MAX);
    return 0;
}

/*
 * 0 when the NUL-terminated s is strict UTF-8 of f->min..f->max bytes,
 * else -EINVAL with a reason. Scans at most f->max + 1 bytes for the length.
 */
static int event__check_text(const char *s, const event__field *f, event__reason *r)
{
    size_t len = strnlen(s, f->max + 1);

    if (len > f->max)
        return event__fail(r, -EINVAL, "%s: longer than %zu bytes", f->path, f->max);
    if (len < f->min)
        return event__fail(r, -EINVAL, "%s: must not be empty", f->path);
    if (!fp_json_utf8_valid(s, len))
        return event__fail(r, -EINVAL, "%s: not valid UTF-8", f->path);
    return 0;
}

/* Fail with the reason for a timestamp outside 0..FP_EVENT_TS_MAX; returns -EINVAL. */
static int event__ts_range(const char *path, event__reason *r)
{
    return event__fail(r, -EINVAL, "%s: must be between 0 and %" PRId64, path, FP_EVENT_TS_MAX);
}

/* 0 when v is a timestamp in 0..FP_EVENT_TS_MAX, else -EINVAL with a reason. */
static int event__check_ts(int64_t v, const char *path, event__reason *r)
{
    if (v < 0 || v > FP_EVENT_TS_MAX)
        return event__ts_range(path, r);
    return 0;
}

/* ----------------------------------------------------------- parsing */

/*
 * Read "type" from root, check it is known and, when routing_key is not
 * NULL, equal to it. Returns 0 or -EINVAL.
 */
static int event__parse_type(const cJSON *root, const char *routing_key, fp_event_type *type,
                             event__reason *r)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, "type");
    char q1[FP_JSON_QUOTE_MAX + 4], q2[FP_JSON_QUOTE_MAX + 4];

    if (item == NULL)
        return event__fail(r, -EINVAL, "missing field \"type\"");
    if (!cJSON_IsString(item))
        return event__fail(r, -EINVAL, "type: expected a string");
    fp_json_quote(item->valuestring, q1, sizeof(q1));
    if (fp_event_type_parse(item->valuestring, type) < 0)
        return event__fail(r, -EINVAL, "unknown event type \"%s\"", q1);
    if (routing_key != NULL && strcmp(routing_key, item->valuestring) != 0) {
        fp_json_quote(routing_key, q2, sizeof(q2));
        return event__fail(r, -EINVAL, "type \"%s\" does not match routing key \"%s\"", q1, q2);
    }
    return 0;
}

/*
 * Find the object holding field f: root itself or root's f->parent, which
 * must then be an object. Returns 0 or -EINVAL.
 */
static int event__container(const cJSON *root, const event__field *f, const cJSON **obj,
                            event__reason *r)
{
    const cJSON *p;

    *obj = root;
    if (f->parent == NULL)
        return 0;
    p = cJSON_GetObjectItemCaseSensitive(root, f->parent);
    if (p == NULL)
        return event__fail(r, -EINVAL, "missing field \"%s\"", f->parent);
    if (!cJSON_IsObject(p))
        return event__fail(r, -EINVAL, "%s: expected an object", f->parent);
    *obj = p;
    return 0;
}

/* Store the id in item into the FP_ID_BUFSZ buffer dst. Returns 0 or -EINVAL. */
static int event__parse_id(const cJSON *item, const event__field *f, char *dst, event__reason *r)
{
    int rc;

    if (!cJSON_IsString(item))
        return event__fail(r, -EINVAL, "%s: expected a string", f->path);
    rc = event__check_id(item->valuestring, f->path, r);
    if (rc < 0)
        return rc;
    memcpy(dst, item->valuestring, strlen(item->valuestring) + 1); /* <= FP_ID_BUFSZ */
    return 0;
}

/* Store a malloc'd copy of the text in item at *dst. Returns 0, -EINVAL or -ENOMEM. */
static int event__parse_text(const cJSON *item, const event__field *f, char **dst, event__reason *r)
{
    int rc;

    if (!cJSON_IsString(item))
        return event__fail(r, -EINVAL, "%s: expected a string", f->path);
    rc = event__check_text(item->valuestring, f, r);
    if (rc < 0)
        return rc;
    *dst = event__strndup(item->valuestring, strlen(item->valuestring));
    if (*dst == NULL)
        return event__fail(r, -ENOMEM, "out of memory");
    return 0;
}

/*
 * Store the timestamp in item at *dst: a JSON number that is integral and
 * within 0..FP_EVENT_TS_MAX. Returns 0 or -EINVAL.
 */
static int event__parse_ts(const cJSON *item, const event__field *f, int64_t *dst, event__reason *r)
{
    double d;

    if (!cJSON_IsNumber(item))
        return event__fail(r, -EINVAL, "%s: expected an integer", f->path);
    d = item->valuedouble;
    if (!(d >= 0.0 && d <= (double)FP_EVENT_TS_MAX))
        return event__ts_range(f->path, r);
    if ((double)(int64_t)d != d)
        return event__fail(r, -EINVAL, "%s: expected an integer", f->path);
    *dst = (int64_t)d;
    return 0;
}

/* Parse one schema field from root into ev. Returns 0, -EINVAL or -ENOMEM. */
static int event__parse_field(const cJSON *root, const event__field *f, fp_event *ev,
                              event__reason *r)
{
    const cJSON *obj, *item;
    int rc = event__container(root, f, &obj, r);

    if (rc < 0)
        return rc;
    item = cJSON_GetObjectItemCaseSensitive(obj, f->key);
    if (f->optional && cJSON_IsNull(item))
        item = NULL;
    if (item == NULL && f->optional)
        return 0;
    if (item == NULL)
        return event__fail(r, -EINVAL, "missing field \"%s\"", f->path);
    switch (f->kind) {
    case EVENT__ID:
        return event__parse_id(item, f, event__at(ev, f), r);
    case EVENT__TEXT:
        return event__parse_text(item, f, event__at(ev, f), r);
    case EVENT__TS:
        return event__parse_ts(item, f, event__at(ev, f), r);
    }
    return -EINVAL;
}

/* qsort comparator for an array of char[FP_ID_BUFSZ]. */
static int event__cmp_id(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Sort the n ids and drop duplicates in place; returns the new count. */
static size_t event__dedup(char (*ids)[FP_ID_BUFSZ], size_t n)
{
    size_t i, last = 0;

    if (n == 0)
        return 0;
    qsort(ids, n, sizeof(ids[0]), event__cmp_id);
    for (i = 1; i < n; i++) {
        if (strcmp(ids[i], ids[last]) == 0)
            continue;
        last++;
        if (last != i)
            memcpy(ids[last], ids[i], sizeof(ids[0]));
    }
    return last + 1;
}

/*
 * Copy the ids of the JSON array arr into a malloc'd array at ev (at most
 * FP_RECIPIENTS_MAX entries, each a valid id), sorted and deduplicated.
 * Returns 0, -EINVAL or -ENOMEM; on failure ev->recipients stays NULL.
 */
static int event__parse_id_array(const cJSON *arr, fp_event *ev, event__reason *r)
{
    char(*ids)[FP_ID_BUFSZ] = NULL;
    const cJSON *it;
    size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
    int rc = 0;

    if (n > FP_RECIPIENTS_MAX)
        return event__fail(r, -EINVAL, "recipients: more than %d ids", FP_RECIPIENTS_MAX);
    if (n > 0) {
        ids = calloc(n, sizeof(ids[0]));
        if (ids == NULL)
            return event__fail(r, -ENOMEM, "out of memory");
    }
    for (it = arr->child; it != NULL; it = it->next) {
        if (!cJSON_IsString(it)) {
            rc = event__fail(r, -EINVAL, "recipients[%zu]: expected a string", i);
            goto fail;
        }
        if (!fp_id_valid(it->valuestring)) {
            rc = event__fail(r, -EINVAL, "recipients[%zu]: not a valid id", i);
            goto fail;
        }
        memcpy(ids[i++], it->valuestring, strlen(it->valuestring) + 1);
    }
    ev->recipients = ids;
    ev->n_recipients = event__dedup(ids, n);
    return 0;
fail:
    free(ids);
    return rc;
}

/*
 * Parse the optional "recipients" of root into ev. Absent or null leaves
 * has_recipients false. Returns 0, -EINVAL or -ENOMEM.
 */
static int event__parse_recipients(const cJSON *root, fp_event *ev, event__reason *r)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "recipients");

    if (arr == NULL || cJSON_IsNull(arr))
        return 0;
    if (!cJSON_IsArray(arr))
        return event__fail(r, -EINVAL, "recipients: expected an array");
    ev->has_recipients = true;
    return event__parse_id_array(arr, ev, r);
}

/*
 * Fill ev (type already set) from root following the type's schema.
 * Returns 0, -EINVAL or -ENOMEM; ev may then hold partial allocations.
 */
static int event__parse_schema(const cJSON *root, fp_event *ev, event__reason *r)
{
    const event__schema *s = &event__schemas[ev->type];
    size_t i;
    int rc;

    for (i = 0; i < s->n_fields; i++) {
        rc = event__parse_field(root, &s->fields[i], ev, r);
        if (rc < 0)
            return rc;
    }
    if (s->recipients)
        return event__parse_recipients(root, ev, r);
    return 0;
}

/*
 * Parse and validate one event body (see fp_event.h). Size is checked before
 * anything else; on any failure *ev is freed and zeroed. Returns 0, -EINVAL,
 * -E2BIG or -ENOMEM.
 */
int fp_event_parse(const char *body, size_t len, const char *routing_key, fp_event *ev,
                   char *reason, size_t reason_len)
{
    event__reason r = {reason, reason_len};
    cJSON *root = NULL;
    int rc;

    if (reason != NULL && reason_len > 0)
        reason[0] = '\0';
    if (ev == NULL)
        return event__fail(&r, -EINVAL, "no event to fill");
    memset(ev, 0, sizeof(*ev));
    if (len > FP_EVENT_MAX_BYTES)
        return event__fail(&r, -E2BIG, "body larger than %d bytes", FP_EVENT_MAX_BYTES);
    rc = fp_json_object_parse(body, len, &root, reason, reason_len);
    if (rc < 0)
        return rc;
    rc = fp_event_from_json(root, routing_key, ev, reason, reason_len);
    cJSON_Delete(root);
    return rc;
}

/*
 * The schema part of fp_event_parse, on an object already read by
 * fp_json_object_parse (one event of a batch). Returns 0 or -EINVAL
 * (-ENOMEM); on failure *ev holds nothing to free.
 */
int fp_event_from_json(const struct cJSON *root, const char *routing_key, fp_event *ev,
                       char *reason, size_t reason_len)
{
    event__reason r = {reason, reason_len};
    int rc;

    if (reason != NULL && reason_len > 0)
        reason[0] = '\0';
    memset(ev, 0, sizeof(*ev));
    if (!cJSON_IsObject(root))
        return event__fail(&r, -EINVAL, "not a JSON object");
    rc = event__parse_type(root, routing_key, &ev->type, &r);
    if (rc == 0)
        rc = event__parse_schema(root, ev, &r);
    if (rc < 0)
        fp_event_free(ev);
    return rc;
}

/* -------------------------------------------------------- validation */

/* Check one schema field of ev. Returns 0 or -EINVAL. */
static int event__validate_field(const fp_event *ev, const event__field *f, event__reason *r)
{
    const char *text;

    switch (f->kind) {
    case EVENT__ID:
        return event__check_id(event__at(ev, f), f->path, r);
    case EVENT__TEXT:
        text = *(char *const *)event__at(ev, f);
        if (text == NULL && f->optional)
            return 0;
        if (text == NULL)
            return event__fail(r, -EINVAL, "missing field \"%s\"", f->path);
        return event__check_text(text, f, r);
    case EVENT__TS:
        return event__check_ts(*(const int64_t *)event__at(ev, f), f->path, r);
    }
    return -EINVAL;
}

/* Check ev's recipients (only when has_recipients). Returns 0 or -EINVAL. */
static int event__validate_recipients(const fp_event *ev, event__reason *r)
{
    size_t i;

    if (!ev->has_recipients)
        return 0;
    if (ev->n_recipients > FP_RECIPIENTS_MAX)
        return event__fail(r, -EINVAL, "recipients: more than %d ids", FP_RECIPIENTS_MAX);
    if (ev->n_recipients > 0 && ev->recipients == NULL)
        return event__fail(r, -EINVAL, "recipients: count without array");
    for (i = 0; i < ev->n_recipients; i++) {
        if (!fp_id_valid(ev->recipients[i]))
            return event__fail(r, -EINVAL, "recipients[%zu]: not a valid id", i);
    }
    return 0;
}

/* Check a struct against its type's schema (see fp_event.h). Returns 0 or -EINVAL. */
int fp_event_validate(const fp_event *ev, char *reason, size_t reason_len)
{
    event__reason r = {reason, reason_len};
    const event__schema *s;
    size_t i;
    int rc;

    if (reason != NULL && reason_len > 0)
        reason[0] = '\0';
    if (ev == NULL)
        return event__fail(&r, -EINVAL, "no event");
    if (fp_event_type_name(ev->type) == NULL)
        return event__fail(&r, -EINVAL, "unknown event type %d", (int)ev->type);
    s = &event__schemas[ev->type];
    for (i = 0; i < s->n_fields; i++) {
        rc = event__validate_field(ev, &s->fields[i], &r);
        if (rc < 0)
            return rc;
    }
    return s->recipients ? event__validate_recipients(ev, &r) : 0;
}

/* ---------------------------------------------------------- encoding */

/* The object of out that holds field f, created on first use; NULL on ENOMEM. */
static cJSON *event__out_container(cJSON *out, const event__field *f)
{
    cJSON *obj;

    if (f->parent == NULL)
        return out;
    obj = cJSON_GetObjectItemCaseSensitive(out, f->parent);
    if (obj != NULL)
        return obj;
    return cJSON_AddObjectToObject(out, f->parent);
}

/* Add a timestamp as an exact JSON integer (never in exponent form). */
static int event__add_ts(cJSON *obj, const char *key, int64_t v)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%" PRId64, v);
    return cJSON_AddRawToObject(obj, key, buf) != NULL ? 0 : -ENOMEM;
}

/* Add field f of ev to out. Returns 0 or -ENOMEM. */
static int event__encode_field(cJSON *out, const event__field *f, const fp_event *ev)
{
    cJSON *obj = event__out_container(out, f);
    const char *text;

    if (obj == NULL)
        return -ENOMEM;
    switch (f->kind) {
    case EVENT__ID:
        return cJSON_AddStringToObject(obj, f->key, event__at(ev, f)) != NULL ? 0 : -ENOMEM;
    case EVENT__TEXT:
        text = *(char *const *)event__at(ev, f);
        if (text == NULL)
            return 0;
        return cJSON_AddStringToObject(obj, f->key, text) != NULL ? 0 : -ENOMEM;
    case EVENT__TS:
        if (f->optional && *(const int64_t *)event__at(ev, f) == 0)
            return 0;
        return event__add_ts(obj, f->key, *(const int64_t *)event__at(ev, f));
    }
    return -EINVAL;
}

/* qsort comparator for an array of const char *. */
static int event__cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Add ev's recipients to out as "recipients", sorted and without
 * duplicates so that the output parses back to the same array.
 * Returns 0 or -ENOMEM.
 */
static int event__encode_recipients(cJSON *out, const fp_event *ev)
{
    const char **ids = NULL;
    cJSON *arr = cJSON_AddArrayToObject(out, "recipients");
    size_t i, n = ev->n_recipients;
    int rc = -ENOMEM;

    if (arr == NULL)
        return -ENOMEM;
    if (n == 0)
        return 0;
    ids = malloc(n * sizeof(*ids));
    if (ids == NULL)
        return -ENOMEM;
    for (i = 0; i < n; i++)
        ids[i] = ev->recipients[i];
    qsort(ids, n, sizeof(*ids), event__cmp_str_ptr);
    for (i = 0; i < n; i++) {
        cJSON *s;
        if (i > 0 && strcmp(ids[i], ids[i - 1]) == 0)
            continue;
        s = cJSON_CreateString(ids[i]);
        if (s == NULL)
            goto fail;
        cJSON_AddItemToArray(arr, s);
    }
    rc = 0;
fail:
    free(ids);
    return rc;
}

/* Build the cJSON tree of a validated ev into *out. Returns 0 or -ENOMEM. */
static int event__encode_tree(const fp_event *ev, cJSON *out)
{
    const event__schema *s = &event__schemas[ev->type];
    size_t i;
    int rc;

    if (cJSON_AddStringToObject(out, "type", fp_event_type_name(ev->type)) == NULL)
        return -ENOMEM;
    for (i = 0; i < s->n_fields; i++) {
        rc = event__encode_field(out, &s->fields[i], ev);
        if (rc < 0)
            return rc;
    }
    if (s->recipients && ev->has_recipients)
        return event__encode_recipients(out, ev);
    return 0;
}

/*
 * Encode a validated ev as compact JSON; NULL when invalid or out of memory.
 * The string comes from cJSON_PrintUnformatted(), which allocates with
 * malloc() unless someone installed other cJSON hooks (nobody in feedpush
 * does), so free() is the right way to release it.
 */
char *fp_event_encode(const fp_event *ev)
{
    cJSON *out;
    char *json = NULL;

    if (fp_event_validate(ev, NULL, 0) < 0)
        return NULL;
    out = cJSON_CreateObject();
    if (out == NULL)
        return NULL;
    if (event__encode_tree(ev, out) < 0)
        goto fail;
    json = cJSON_PrintUnformatted(out);
fail:
    cJSON_Delete(out);
    return json;
}

/* Release what ev owns and zero it, so a second call is a no-op. */
void fp_event_free(fp_event *ev)
{
    if (ev == NULL)
        return;
    free(ev->post.text);
    free(ev->recipients);
    free(ev->entry.name);
    free(ev->entry.text);
    memset(ev, 0, sizeof(*ev));
}
