/*
 * fp_log.h - one line per event on stderr.
 *
 * Format: "2026-11-23T17:54:13.123Z LEVEL [component] message". Control
 * characters in the message (newlines included) are replaced by '?', so a
 * hostile string cannot forge extra log lines. Lines longer than
 * FP_LOG_LINE_MAX are cut and end with "...". Thread-safe: each line is
 * written with a single write(2).
 */
#ifndef FP_LOG_H
#define FP_LOG_H

#include <stdarg.h>

#define FP_LOG_LINE_MAX 2048

typedef enum {
    FP_LOG_DEBUG = 0,
    FP_LOG_INFO = 1,
    FP_LOG_WARN = 2,
    FP_LOG_ERROR = 3,
    FP_LOG_OFF = 4,
} fp_log_level;

/* Sets the component name shown in brackets (copied, at most 31 chars). */
void fp_log_set_component(const char *name);

/* Messages below level are dropped. Default FP_LOG_INFO. */
void fp_log_set_level(fp_log_level level);

/* Parses "debug", "info", "warn", "error" or "off" (any case).
 * Returns 0 and sets *out, or -EINVAL. */
int fp_log_level_parse(const char *s, fp_log_level *out);

/* Sends lines to fd instead of stderr (tests use a pipe). */
void fp_log_set_fd(int fd);

void fp_log(fp_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void fp_logv(fp_log_level level, const char *fmt, va_list ap);

#define fp_debug(...) fp_log(FP_LOG_DEBUG, __VA_ARGS__)
#define fp_info(...) fp_log(FP_LOG_INFO, __VA_ARGS__)
#define fp_warn(...) fp_log(FP_LOG_WARN, __VA_ARGS__)
#define fp_error(...) fp_log(FP_LOG_ERROR, __VA_ARGS__)

#endif
