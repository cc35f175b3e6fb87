#include "ft_redis.h"

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>

#include <cmocka.h>

#include "ft_harness.h"

#define REDIS__TIMEOUT_S 5

/* Connects with the timeout for the connect and for each command. The
 * context may be NULL (out of memory) or carry err. */
static redisContext *redis__open(int port)
{
    struct timeval tv = {REDIS__TIMEOUT_S, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);

    if (c != NULL && c->err == 0)
        redisSetTimeout(c, tv);
    return c;
}

redisContext *ft_redis_connect(int port)
{
    redisContext *c = redis__open(port);

    if (c == NULL)
        fail_msg("redis on port %d: out of memory", port);
    if (c->err != 0)
        fail_msg("redis on port %d: %s", port, c->errstr);
    return c;
}

/* Runs the command; fails the test on a lost connection or an error
 * reply. */
static redisReply *redis__vcmd(redisContext *c, const char *fmt, va_list ap)
{
    redisReply *r = redisvCommand(c, fmt, ap);

    if (r == NULL)
        fail_msg("redis \"%s\": %s", fmt, c->errstr);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("redis \"%s\": %s", fmt, r->str);
    return r;
}

redisReply *ft_redis_cmd(redisContext *c, const char *fmt, ...)
{
    redisReply *r;
    va_list ap;

    va_start(ap, fmt);
    r = redis__vcmd(c, fmt, ap);
    va_end(ap);
    return r;
}

long long ft_redis_int(redisContext *c, const char *fmt, ...)
{
    redisReply *r;
    long long v;
    va_list ap;

    va_start(ap, fmt);
    r = redis__vcmd(c, fmt, ap);
    va_end(ap);
    if (r->type != REDIS_REPLY_INTEGER)
        fail_msg("redis \"%s\": reply type %d, not an integer", fmt, r->type);
    v = r->integer;
    freeReplyObject(r);
    return v;
}

void ft_redis_ok(redisContext *c, const char *fmt, ...)
{
    redisReply *r;
    va_list ap;

    va_start(ap, fmt);
    r = redis__vcmd(c, fmt, ap);
    va_end(ap);
    if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "OK") != 0)
        fail_msg("redis \"%s\": reply type %d (%s), not OK", fmt, r->type,
                 r->str != NULL ? r->str : "");
    freeReplyObject(r);
}

redisReply *ft_redis_vonce(int port, const char *fmt, va_list ap)
{
    redisContext *c = redis__open(port);
    redisReply *r = NULL;

    if (c != NULL && c->err == 0)
        r = redisvCommand(c, fmt, ap);
    redisFree(c);
    return r;
}

redisReply *ft_redis_once(int port, const char *fmt, ...)
{
    redisReply *r;
    va_list ap;

    va_start(ap, fmt);
    r = ft_redis_vonce(port, fmt, ap);
    va_end(ap);
    return r;
}

long long ft_redis_once_int(int port, const char *fmt, ...)
{
    redisReply *r;
    long long v = -1;
    va_list ap;

    va_start(ap, fmt);
    r = ft_redis_vonce(port, fmt, ap);
    va_end(ap);
    if (r != NULL && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    freeReplyObject(r);
    return v;
}

int ft_redis_wait_member(int port, const char *key, const char *member, int timeout_ms)
{
    int waited;

    for (waited = 0;; waited += 20) {
        if (ft_redis_once_int(port, "SISMEMBER %s %s", key, member) == 1)
            return 1;
        if (waited >= timeout_ms)
            return 0;
        ft_sleep_ms(20);
    }
}
