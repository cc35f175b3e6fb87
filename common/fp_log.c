#include "fp_log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log__level = FP_LOG_INFO;
static _Atomic int log__fd = STDERR_FILENO;
static char log__component[32] = "feedpush";

static const char *const log__names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void fp_log_set_component(const char *name)
{
    if (name == NULL)
        return;
    snprintf(log__component, sizeof(log__component), "%s", name);
}

void fp_log_set_level(fp_log_level level)
{
    log__level = (int)level;
}

void fp_log_set_fd(int fd)
{
    log__fd = fd;
}

int fp_log_level_parse(const char *s, fp_log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "off"};
    size_t i;

    if (s == NULL || out == NULL)
        return -EINVAL;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = (fp_log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* Writes "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC) into buf; returns its length. */
static size_t log__timestamp(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000L);
    return n;
}

/* Replaces control characters in s[0..len) with '?'. */
static void log__sanitize(char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            s[i] = '?';
    }
}

void fp_logv(fp_log_level level, const char *fmt, va_list ap)
{
    char line[FP_LOG_LINE_MAX + 2];
    size_t head, room, n;
    int w;

    if ((int)level < log__level || level >= FP_LOG_OFF)
        return;
    head = log__timestamp(line, sizeof(line));
    head += (size_t)snprintf(line + head, sizeof(line) - head, " %-5s [%s] ",
                             log__names[level], log__component);
    room = FP_LOG_LINE_MAX - head;
    w = vsnprintf(line + head, room + 1, fmt, ap);
    if (w < 0)
        w = 0;
    n = (size_t)w;
    if (n > room) {
        n = room;
        memcpy(line + head + n - 3, "...", 3);
    }
    log__sanitize(line + head, n);
    line[head + n] = '\n';
    /* One write per line keeps lines whole when threads log concurrently. */
    if (write(log__fd, line, head + n + 1) < 0)
        return;
}

void fp_log(fp_log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fp_logv(level, fmt, ap);
    va_end(ap);
}
