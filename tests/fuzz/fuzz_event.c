/*
 * fuzz_event.c - fp_event_parse on any bytes (the bridge's input from
 * RabbitMQ). The first byte picks the routing key (none, or one of the
 * six types); the rest is the body. An event it accepts must encode, and
 * that encoding must parse back and encode to the same text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fp_event.h"
#include "fp_event_batch.h"

static const char *const fuzz__keys[] = {
    NULL,
    "post.created",
    "post.deleted",
    "follow.created",
    "follow.deleted",
    "ribbon.pushed",
    "user.revoked",
    FP_EVENT_BATCH_TYPE,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An event accepted must encode, parse back and encode the same. */
static void fuzz__roundtrip(const fp_event *ev)
{
    char reason[256], *json, *again;
    fp_event back;

    json = fp_event_encode(ev);
    if (json == NULL)
        abort();
    if (fp_event_parse(json, strlen(json), fp_event_type_name(ev->type), &back, reason,
                       sizeof(reason)) != 0)
        abort();
    again = fp_event_encode(&back);
    if (again == NULL || strcmp(json, again) != 0)
        abort();
    free(again);
    free(json);
    fp_event_free(&back);
}

/* The bytes given for event i (text) read as the event the batch holds:
 * both written by cJSON compare equal (a number beyond a double is null
 * in both, where cJSON_Compare would find inf unequal to itself). */
static void fuzz__same_event(const fp_event_batch *b, size_t i, const char *text)
{
    const cJSON *item =
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(b->root_, "events"), (int)i);
    cJSON *again = cJSON_Parse(text);
    char *x = cJSON_PrintUnformatted(item), *y = cJSON_PrintUnformatted(again);

    if (x == NULL || y == NULL || strcmp(x, y) != 0)
        abort();
    free(x);
    free(y);
    cJSON_Delete(again);
}

/* Every event of a batch, as the bridge takes them. */
static void fuzz__batch(const char *body, size_t len)
{
    char reason[256], *text;
    const char *rk;
    fp_event_batch b;
    fp_event ev;
    size_t i;

    if (fp_event_batch_parse(body, len, &b, reason, sizeof(reason)) != 0)
        return;
    for (i = 0; i < b.n; i++) {
        text = fp_event_batch_text(&b, i, &rk);
        if (text == NULL || rk == NULL)
            abort();
        fuzz__same_event(&b, i, text);
        free(text);
        if (fp_event_batch_get(&b, i, &ev, reason, sizeof(reason)) != 0)
            continue;
        fuzz__roundtrip(&ev);
        fp_event_free(&ev);
    }
    fp_event_batch_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *key;
    char reason[256];
    fp_event ev;

    if (size == 0)
        return 0;
    key = fuzz__keys[data[0] % (sizeof(fuzz__keys) / sizeof(fuzz__keys[0]))];
    if (fp_event_is_batch(key)) {
        fuzz__batch((const char *)data + 1, size - 1);
        return 0;
    }
    if (fp_event_parse((const char *)data + 1, size - 1, key, &ev, reason, sizeof(reason)) != 0)
        return 0;
    fuzz__roundtrip(&ev);
    fp_event_free(&ev);
    return 0;
}
