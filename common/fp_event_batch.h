/*
 * fp_event_batch.h - several events in one feed.events message.
 *
 * Under load feed-gateway puts the events it has waiting into one message
 * (docs/protocol.md, "Batches"): much of RabbitMQ's work is per message,
 * so a batch costs it far less than its events one by one. A batch is
 *
 *   {"type":"batch","events":[<event>, ...]}     routing key "batch"
 *
 * each <event> an event object as fp_event.h describes, checked on its
 * own: one bad event is that event's dead letter, not the batch's. The
 * whole message obeys the rules of one event body (size, JSON).
 */
#ifndef FP_EVENT_BATCH_H
#define FP_EVENT_BATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "fp_event.h"

#define FP_EVENT_BATCH_TYPE "batch" /* its "type" and routing key */
#define FP_EVENT_BATCH_MAX 1000     /* events in one batch */

typedef struct {
    struct cJSON *root_; /* private: the parsed message */
    const char *body_;   /* private: its text (the caller's) */
    size_t *spans_;      /* private: offset and length of each event in body_ */
    size_t n;            /* events in it */
} fp_event_batch;

/* Is routing_key (NULL: no) the batches' one. */
bool fp_event_is_batch(const char *routing_key);

/*
 * Reads a batch message of len bytes: one JSON object (fp_json's rules),
 * "type" "batch", "events" an array of 1 to FP_EVENT_BATCH_MAX elements,
 * the whole at most FP_EVENT_MAX_BYTES. The events themselves are checked
 * by fp_event_batch_get. body must outlive b (fp_event_batch_text copies
 * from it). Returns 0 (free b with fp_event_batch_free), -EINVAL, -E2BIG
 * or -ENOMEM with reason as fp_event_parse gives it, and then b holds
 * nothing.
 */
int fp_event_batch_parse(const char *body, size_t len, fp_event_batch *b, char *reason,
                         size_t reason_len);

/* Parses and validates event i (< b->n) like fp_event_parse does a body.
 * Same returns. */
int fp_event_batch_get(const fp_event_batch *b, size_t i, fp_event *ev, char *reason,
                       size_t reason_len);

/* Event i as it came, byte for byte (for its dead letter: a number out
 * of a double's range or precision is kept as it was written), malloc'd,
 * or NULL (out of memory). *type: its "type" when that is a string (any
 * string, of any length: untrusted), else "". */
char *fp_event_batch_text(const fp_event_batch *b, size_t i, const char **type);

void fp_event_batch_free(fp_event_batch *b);

/*
 * Joins n event bodies (each the compact JSON of one event, as
 * fp_event_encode writes it) into one batch message. Returns it
 * malloc'd, with its length in *len, or NULL (out of memory).
 */
char *fp_event_batch_join(const char *const *bodies, const size_t *lens, size_t n, size_t *len);

#endif
