/*
 * redis_auth.c - AUTH after each Redis or Sentinel connect, with the
 * password read from redis_password_file (redis_sentinel_password_file);
 * see fp_sentinel.h.
 *
 * The file is read again on every connect, so a rotated password is
 * picked up by the next reconnect, and the password lives in memory only
 * for the length of the AUTH command (then the buffer is wiped). Errors
 * name the file and Redis' reply, never the password.
 */
#include "fp_sentinel.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

/* Longest password accepted (Redis itself has no limit; this bounds the
 * buffer). */
#define AUTH__MAX 512

/*
 * Reads the password from path into buf (at most AUTH__MAX bytes, one
 * trailing "\n" or "\r\n" dropped). Returns its length, or -EINVAL with
 * err saying why (unreadable, empty, too long, a line break or NUL inside)
 * and naming key, the option that names the file.
 */
static int auth__read(const char *key, const char *path, char *buf, size_t size, char *err,
                      size_t errlen)
{
    FILE *f = fopen(path, "rb");
    size_t n;

    if (f == NULL) {
        snprintf(err, errlen, "%s %.200s: %s", key, path, strerror(errno));
        return -EINVAL;
    }
    n = fread(buf, 1, size, f);
    fclose(f);
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (n == 0 || n > AUTH__MAX || memchr(buf, '\n', n) != NULL || memchr(buf, '\r', n) != NULL ||
        memchr(buf, '\0', n) != NULL) {
        snprintf(err, errlen, "%s %.200s: must hold one line of 1 to %d bytes, the password", key,
                 path, AUTH__MAX);
        return -EINVAL;
    }
    buf[n] = '\0';
    return (int)n;
}

/* Overwrites buf in a way the compiler keeps. */
static void auth__wipe(char *buf, size_t size)
{
    volatile char *p = buf;

    while (size-- > 0)
        *p++ = 0;
}

int fp_redis_password_check(const char *key, const char *path, char *err, size_t errlen)
{
    char buf[AUTH__MAX + 3];
    int n;

    if (path == NULL || path[0] == '\0')
        return 0;
    n = auth__read(key, path, buf, sizeof(buf) - 1, err, errlen);
    auth__wipe(buf, sizeof(buf));
    return n < 0 ? n : 0;
}

int fp_redis_auth_append(struct redisContext *c, const char *key, const char *user,
                         const char *path, char *err, size_t errlen)
{
    char buf[AUTH__MAX + 3];
    int n, rc;

    if (path == NULL || path[0] == '\0')
        return 0;
    n = auth__read(key, path, buf, sizeof(buf) - 1, err, errlen);
    if (n < 0)
        return n;
    if (user != NULL && user[0] != '\0')
        rc = redisAppendCommand(c, "AUTH %s %b", user, buf, (size_t)n);
    else
        rc = redisAppendCommand(c, "AUTH %b", buf, (size_t)n);
    auth__wipe(buf, sizeof(buf));
    if (rc != REDIS_OK) {
        snprintf(err, errlen, "AUTH: out of memory");
        return -ENOMEM;
    }
    return 1;
}

/* Blocking: the AUTH fp_redis_auth_append queues, sent and answered. */
int fp_redis_auth(struct redisContext *c, const char *key, const char *user, const char *path,
                  char *err, size_t errlen)
{
    void *reply = NULL;
    redisReply *r;
    int rc = fp_redis_auth_append(c, key, user, path, err, errlen);

    if (rc <= 0)
        return rc;
    if (redisGetReply(c, &reply) != REDIS_OK || reply == NULL) {
        snprintf(err, errlen, "AUTH: %s", c->errstr[0] != '\0' ? c->errstr : "no reply");
        return -EIO;
    }
    r = reply;
    rc = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "AUTH%s%.64s refused: %.120s", user != NULL && user[0] ? " as " : "",
                 user != NULL ? user : "", r->str);
        rc = -EACCES;
    }
    freeReplyObject(r);
    return rc;
}
