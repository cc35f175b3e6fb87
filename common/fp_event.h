/*
 * fp_event.h - the v1 event JSON codec (docs: "Contract (v1)", Events).
 *
 * Every event travelling through the feed.events / feed.broadcast exchanges
 * is a JSON object whose "type" equals the AMQP routing key:
 *
 *   post.created   {"type","post":{"id","author_id","text","created_at"},
 *                   "recipients"?:[ids]}
 *   post.deleted   {"type","post_id","author_id","recipients"?:[ids]}
 *   follow.created {"type","follower_id","followee_id","at"?}
 *   follow.deleted {"type","follower_id","followee_id","at"?}
 *   ribbon.pushed  {"type","entry":{"user_id","name"?,"text"?,"at"}}
 *   user.revoked   {"type","user_id","before"}
 *
 * fp_event_parse() validates a body completely (ids, UTF-8, sizes,
 * timestamps) so that nothing downstream has to; fp_event_encode() writes
 * the compact JSON form back. Unknown extra fields are ignored; an optional
 * field given as JSON null counts as absent.
 */
#ifndef FP_EVENT_H
#define FP_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fp_id.h"

#define FP_EVENT_MAX_BYTES (1024 * 1024) /* whole body */
#define FP_POST_TEXT_MAX 8192            /* bytes of UTF-8, at least 1 */
#define FP_RIBBON_NAME_MAX 128           /* bytes of UTF-8 */
#define FP_RIBBON_TEXT_MAX 512           /* bytes of UTF-8 */
#define FP_RECIPIENTS_MAX 10000          /* entries of "recipients", before dedup */
/* Largest accepted timestamp: 2^53, the end of exactly representable JSON integers. */
#define FP_EVENT_TS_MAX ((int64_t)1 << 53)

typedef enum {
    FP_EVENT_POST_CREATED = 1,
    FP_EVENT_POST_DELETED,
    FP_EVENT_FOLLOW_CREATED,
    FP_EVENT_FOLLOW_DELETED,
    FP_EVENT_RIBBON_PUSHED,
    FP_EVENT_USER_REVOKED
} fp_event_type;

/* "post.created", ...; NULL if t is not a known type. */
const char *fp_event_type_name(fp_event_type t);

/* Look up a type by its name (NUL-terminated). Returns 0 or -EINVAL. */
int fp_event_type_parse(const char *s, fp_event_type *out);

typedef struct {
    char id[FP_ID_BUFSZ];
    char author_id[FP_ID_BUFSZ];
    char *text;         /* malloc'd, owned */
    int64_t created_at; /* unix milliseconds */
} fp_post;

typedef struct {
    char user_id[FP_ID_BUFSZ];
    char *name; /* malloc'd, owned; NULL if absent */
    char *text; /* malloc'd, owned; NULL if absent */
    int64_t at; /* unix milliseconds */
} fp_ribbon_entry;

typedef struct {
    fp_event_type type;
    fp_post post;                    /* post.created */
    bool has_recipients;             /* post.created/deleted: "recipients" present */
    char (*recipients)[FP_ID_BUFSZ]; /* malloc'd array, deduplicated, sorted */
    size_t n_recipients;
    char post_id[FP_ID_BUFSZ];     /* post.deleted */
    char author_id[FP_ID_BUFSZ];   /* post.deleted */
    char follower_id[FP_ID_BUFSZ]; /* follow.created / follow.deleted */
    char followee_id[FP_ID_BUFSZ];
    int64_t follow_at;         /* their order within the pair (unix ms); 0: none given */
    fp_ribbon_entry entry;     /* ribbon.pushed */
    char user_id[FP_ID_BUFSZ]; /* user.revoked */
    int64_t before;            /* user.revoked, unix seconds */
} fp_event;

/*
 * Parse and validate one event body of len bytes (not NUL-terminated).
 * routing_key may be NULL (then not checked); otherwise "type" must equal it.
 * Returns 0, -EINVAL (invalid/malformed), -E2BIG (len > FP_EVENT_MAX_BYTES)
 * or -ENOMEM. *ev is overwritten; on failure it holds nothing to free. When
 * reason is not NULL and reason_len > 0 it always receives a NUL-terminated
 * human-readable explanation (possibly truncated), "" on success.
 */
int fp_event_parse(const char *body, size_t len, const char *routing_key, fp_event *ev,
                   char *reason, size_t reason_len);

/*
 * fp_event_parse() on a JSON object already parsed by
 * fp_json_object_parse() (an event inside a batch, fp_event_batch.h): the
 * size and JSON checks are the caller's. Same returns.
 */
struct cJSON;
int fp_event_from_json(const struct cJSON *root, const char *routing_key, fp_event *ev,
                       char *reason, size_t reason_len);

/*
 * Check that a struct built in code obeys the same rules fp_event_parse()
 * enforces (the fields of ev->type only). Returns 0 or -EINVAL with reason
 * filled like fp_event_parse().
 */
int fp_event_validate(const fp_event *ev, char *reason, size_t reason_len);

/*
 * Encode ev as compact JSON. Recipients are written only when
 * has_recipients. Returns a malloc'd NUL-terminated string (free() it), or
 * NULL when ev is invalid (see fp_event_validate) or memory ran out. The
 * output parses back to an equal struct.
 */
char *fp_event_encode(const fp_event *ev);

/* Free what ev owns and zero it. Safe on a zeroed struct and idempotent. */
void fp_event_free(fp_event *ev);

#endif
