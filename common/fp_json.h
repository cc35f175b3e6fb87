/*
 * fp_json.h - the one reader of untrusted JSON objects, and how refusals
 * of untrusted input are worded.
 *
 * Event bodies (fp_event), request bodies (feed-gateway) and JWT headers
 * and claims sets (fp_jwt) are all read by fp_json_object_parse(), under
 * one set of rules, so that no two parts of the system can read the same
 * bytes differently.
 */
#ifndef FP_JSON_H
#define FP_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* Longest piece of untrusted input quoted back in a reason (bytes). */
#define FP_JSON_QUOTE_MAX 64

struct cJSON;

/*
 * Parses len bytes (need not be NUL-terminated) as exactly one JSON object:
 *   - no NUL byte; every member name and string is strict UTF-8 (the
 *     reason names the member, e.g. "post.text: not valid UTF-8");
 *   - valid JSON (the reason names the byte offset where it is not), with
 *     nothing but blanks after the object;
 *   - no \u0000 escape in a string, and no \u escape without four hex
 *     digits (cJSON would cut the string there while other readers would
 *     not, or refuse it);
 *   - no control character unescaped in a string, and none but tab, LF
 *     and CR between tokens (cJSON takes any byte up to 0x20 as a blank);
 *   - no object anywhere holds two members of the same name (readers
 *     disagree on which one counts: RFC 8259 4, RFC 7519 4).
 * Returns 0 with *root set (cJSON_Delete it), or -EINVAL (-ENOMEM when
 * memory ran out) with a reason
 * (always NUL-terminated when reason_len > 0, "" on success) and *root
 * NULL.
 */
int fp_json_object_parse(const char *text, size_t len, struct cJSON **root, char *reason,
                         size_t reason_len);

/* True when the len bytes at s are strict UTF-8: no overlong form, no
 * UTF-16 surrogate, nothing beyond U+10FFFF, no truncated sequence. */
bool fp_json_utf8_valid(const char *s, size_t len);

/* Length of the well-formed UTF-8 sequence at s (avail > 0 bytes there;
 * 1 for ASCII), or 0 when it is not one (fp_json_utf8_valid's rules). */
size_t fp_json_utf8_len(const char *s, size_t avail);

/*
 * Writes untrusted text s into out (outsz bytes) for quoting in a reason
 * or a log line: at most FP_JSON_QUOTE_MAX bytes, every byte that is not
 * printable ASCII, and every quote, backslash, <, >, & and backtick,
 * replaced by '?' (safe in a log line, a JSON string and an HTML page),
 * "..." appended when cut. out is NUL-terminated when outsz > 0.
 */
void fp_json_quote(const char *s, char *out, size_t outsz);

/*
 * Formats a refusal reason into reason (skipped when reason is NULL or
 * reason_len is 0) and returns rc, so that a check can end with
 *     return fp_json_refuse(reason, len, -EINVAL, "...", ...);
 */
int fp_json_refuse(char *reason, size_t reason_len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
