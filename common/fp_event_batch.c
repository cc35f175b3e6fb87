/*
 * fp_event_batch.c - several events in one message (fp_event_batch.h).
 */
#include "fp_event_batch.h"
#include "fp_json.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH__HEAD "{\"type\":\"" FP_EVENT_BATCH_TYPE "\",\"events\":["
#define BATCH__TAIL "]}"

bool fp_event_is_batch(const char *routing_key)
{
    return routing_key != NULL && strcmp(routing_key, FP_EVENT_BATCH_TYPE) == 0;
}

/* The offset after the blanks at i (RFC 8259's four; the text is known
 * to be valid JSON by fp_json's rules). */
static size_t batch__blanks(const char *s, size_t len, size_t i)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* The offset after the value that starts at i (a string, an object, an
 * array or a scalar), or len when the text ends first. */
static size_t batch__skip_value(const char *s, size_t len, size_t i)
{
    bool in_string = false;
    size_t depth = 0;

    if (i < len && s[i] != '"' && s[i] != '{' && s[i] != '[') {
        while (i < len && strchr(",]} \t\r\n", s[i]) == NULL)
            i++;
        return i;
    }
    for (; i < len; i++) {
        if (in_string) {
            if (s[i] == '\\')
                i++; /* the escaped character */
            else if (s[i] == '"')
                in_string = false;
            if (!in_string && depth == 0)
                return i + 1; /* a string value ends */
        } else if (s[i] == '"') {
            in_string = true;
        } else if (s[i] == '{' || s[i] == '[') {
            depth++;
        } else if ((s[i] == '}' || s[i] == ']') && --depth == 0) {
            return i + 1;
        }
    }
    return len;
}

/* Whether the member name at s[0..n) (with its quotes) reads as name,
 * escapes decoded. */
static bool batch__name_is(const char *s, size_t n, const char *name)
{
    cJSON *decoded;
    bool same;

    if (memchr(s, '\\', n) == NULL)
        return n == strlen(name) + 2 && memcmp(s + 1, name, n - 2) == 0;
    decoded = cJSON_ParseWithLength(s, n);
    same = cJSON_IsString(decoded) && strcmp(decoded->valuestring, name) == 0;
    cJSON_Delete(decoded);
    return same;
}

/*
 * Finds where each element of the top-level "events" array of the batch
 * text s (len bytes, already read by fp_json, so valid) starts and ends:
 * spans[2 * k] its offset, spans[2 * k + 1] its length, blanks around it
 * left out. Returns how many elements it found (at most max), or 0 when
 * the text is not as expected.
 */
static size_t batch__spans(const char *s, size_t len, size_t *spans, size_t max)
{
    size_t i = batch__blanks(s, len, 0), name, n = 0, at;

    if (i >= len || s[i] != '{')
        return 0;
    for (i++;;) {
        i = batch__blanks(s, len, i);
        if (i >= len || s[i] != '"')
            return 0;
        name = i;
        i = batch__skip_value(s, len, i);
        if (batch__name_is(s + name, i - name, "events"))
            break;
        i = batch__blanks(s, len, i);
        if (i >= len || s[i] != ':')
            return 0;
        i = batch__skip_value(s, len, batch__blanks(s, len, i + 1));
        i = batch__blanks(s, len, i);
        if (i >= len || s[i] != ',')
            return 0;
        i++;
    }
    i = batch__blanks(s, len, i);
    if (i >= len || s[i] != ':')
        return 0;
    i = batch__blanks(s, len, i + 1);
    if (i >= len || s[i] != '[')
        return 0;
    for (i++;;) {
        i = batch__blanks(s, len, i);
        if (i >= len || n == max || s[i] == ']')
            return i < len && s[i] == ']' ? n : 0;
        at = i;
        i = batch__skip_value(s, len, i);
        spans[2 * n] = at;
        spans[2 * n + 1] = i - at;
        n++;
        i = batch__blanks(s, len, i);
        if (i < len && s[i] == ',')
            i++;
    }
}

int fp_event_batch_parse(const char *body, size_t len, fp_event_batch *b, char *reason,
                         size_t reason_len)
{
    const cJSON *type, *events;
    cJSON *root = NULL;
    int n, rc;

    memset(b, 0, sizeof(*b));
    if (reason != NULL && reason_len > 0)
        reason[0] = '\0';
    if (len > FP_EVENT_MAX_BYTES)
        return fp_json_refuse(reason, reason_len, -E2BIG, "batch: body larger than %d bytes",
                              FP_EVENT_MAX_BYTES);
    rc = fp_json_object_parse(body, len, &root, reason, reason_len);
    if (rc < 0)
        return rc;
    type = cJSON_GetObjectItemCaseSensitive(root, "type");
    events = cJSON_GetObjectItemCaseSensitive(root, "events");
    rc = -EINVAL;
    if (!cJSON_IsString(type) || strcmp(type->valuestring, FP_EVENT_BATCH_TYPE) != 0) {
        fp_json_refuse(reason, reason_len, rc, "batch: type: expected \"%s\"", FP_EVENT_BATCH_TYPE);
        goto fail;
    }
    if (!cJSON_IsArray(events)) {
        fp_json_refuse(reason, reason_len, rc, "batch: events: expected an array");
        goto fail;
    }
    n = cJSON_GetArraySize(events);
    if (n < 1 || n > FP_EVENT_BATCH_MAX) {
        fp_json_refuse(reason, reason_len, rc, "batch: events: %d, not 1 to %d", n,
                       FP_EVENT_BATCH_MAX);
        goto fail;
    }
    b->spans_ = malloc(2 * (size_t)n * sizeof(*b->spans_));
    if (b->spans_ == NULL) {
        rc = fp_json_refuse(reason, reason_len, -ENOMEM, "out of memory");
        goto fail;
    }
    if (batch__spans(body, len, b->spans_, (size_t)n) != (size_t)n) {
        /* Not expected of a text fp_json read: the events are then given
         * as cJSON writes them (fp_event_batch_text). */
        free(b->spans_);
        b->spans_ = NULL;
    }
    b->root_ = root;
    b->body_ = body;
    b->n = (size_t)n;
    return 0;
fail:
    cJSON_Delete(root);
    return rc;
}

/* Element i of the batch's events. */
static const cJSON *batch__item(const fp_event_batch *b, size_t i)
{
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(b->root_, "events");

    return cJSON_GetArrayItem(events, (int)i);
}

int fp_event_batch_get(const fp_event_batch *b, size_t i, fp_event *ev, char *reason,
                       size_t reason_len)
{
    return fp_event_from_json(batch__item(b, i), NULL, ev, reason, reason_len);
}

char *fp_event_batch_text(const fp_event_batch *b, size_t i, const char **type)
{
    const cJSON *item = batch__item(b, i);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(item, "type");
    size_t off, n;
    char *out;

    *type = cJSON_IsString(t) ? t->valuestring : "";
    if (b->spans_ == NULL)
        return cJSON_PrintUnformatted(item);
    off = b->spans_[2 * i];
    n = b->spans_[2 * i + 1];
    out = malloc(n + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, b->body_ + off, n);
    out[n] = '\0';
    return out;
}

void fp_event_batch_free(fp_event_batch *b)
{
    free(b->spans_);
    cJSON_Delete(b->root_);
    memset(b, 0, sizeof(*b));
}

char *fp_event_batch_join(const char *const *bodies, const size_t *lens, size_t n, size_t *len)
{
    size_t total = sizeof(BATCH__HEAD) - 1 + sizeof(BATCH__TAIL) - 1, i, at;
    char *out;

    for (i = 0; i < n; i++)
        total += lens[i] + 1;
    out = malloc(total + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, BATCH__HEAD, sizeof(BATCH__HEAD) - 1);
    at = sizeof(BATCH__HEAD) - 1;
    for (i = 0; i < n; i++) {
        if (i > 0)
            out[at++] = ',';
        memcpy(out + at, bodies[i], lens[i]);
        at += lens[i];
    }
    memcpy(out + at, BATCH__TAIL, sizeof(BATCH__TAIL));
    *len = at + sizeof(BATCH__TAIL) - 1;
    return out;
}
