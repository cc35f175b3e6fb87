/*
 * fp_id.h - validation of user, post and node ids.
 *
 * An id is 1 to FP_ID_MAX characters of [A-Za-z0-9_-]. That keeps MQTT
 * topic wildcards ('+', '#'), level separators ('/') and anything that
 * needs escaping out of topics, Redis keys and AMQP routing keys.
 */
#ifndef FP_ID_H
#define FP_ID_H

#include <stdbool.h>
#include <stddef.h>

#define FP_ID_MAX 64
/* Room for the longest id plus its terminating NUL. */
#define FP_ID_BUFSZ (FP_ID_MAX + 1)

/* True when the NUL-terminated string s is a valid id. NULL is not. */
bool fp_id_valid(const char *s);

/* True when the len bytes at s form a valid id (no NUL may appear). */
bool fp_id_valid_n(const char *s, size_t len);

#endif
