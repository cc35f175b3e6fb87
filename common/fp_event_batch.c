/*
 * fp_event_batch.c - several events in one message (fp_event_batch.h).
 */
#include "fp_event_batch.h"
#include "fp_json.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH__HEAD "{\"type\":\"" FP_EVENT_BATCH_TYPE "\",\"events\":["
#define BATCH__TAIL "]}"

bool fp_event_is_batch(const char *routing_key)
{
    return routing_key != NULL && strcmp(routing_key, FP_EVENT_BATCH_TYPE) == 0;
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
    b->root_ = root;
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

    *type = cJSON_IsString(t) ? t->valuestring : "";
    return cJSON_PrintUnformatted(item);
}

void fp_event_batch_free(fp_event_batch *b)
{
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
