/*
 * fuzz_event.c - fp_event_parse on any bytes (the bridge's input from
 * RabbitMQ). The first byte picks the routing key (none, or one of the
 * six types); the rest is the body. An event it accepts must encode, and
 * that encoding must parse back and encode to the same text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fp_event.h"

static const char *const fuzz__keys[] = {
    NULL,
    "post.created",
    "post.deleted",
    "follow.created",
    "follow.deleted",
    "ribbon.pushed",
    "user.revoked",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *key;
    char reason[256], *json, *again;
    fp_event ev, back;

    if (size == 0)
        return 0;
    key = fuzz__keys[data[0] % (sizeof(fuzz__keys) / sizeof(fuzz__keys[0]))];
    if (fp_event_parse((const char *)data + 1, size - 1, key, &ev, reason, sizeof(reason)) != 0)
        return 0;
    json = fp_event_encode(&ev);
    if (json == NULL)
        abort();
    if (fp_event_parse(json, strlen(json), fp_event_type_name(ev.type), &back, reason,
                       sizeof(reason)) != 0)
        abort();
    again = fp_event_encode(&back);
    if (again == NULL || strcmp(json, again) != 0)
        abort();
    free(again);
    free(json);
    fp_event_free(&back);
    fp_event_free(&ev);
    return 0;
}
