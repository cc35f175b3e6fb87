/*
 * ft_redis.h - what tests ask of a redis-server they started: a
 * connection, and commands whose reply must be of one kind (the test
 * fails, naming the command and the reply, when it is not). The _once
 * functions open a connection of their own per command and never fail the
 * test: for tests that restart or kill Redis under their feet.
 */
#ifndef FT_REDIS_H
#define FT_REDIS_H

#include <stdarg.h>

#include <hiredis/hiredis.h>

/* Connects to 127.0.0.1:port, 5 s connect and command timeouts. Fails the
 * test when it cannot. redisFree() it. */
redisContext *ft_redis_connect(int port);

/* Runs a command on c. Fails the test on a lost connection or an error
 * reply; returns the reply (freeReplyObject it). */
redisReply *ft_redis_cmd(redisContext *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ft_redis_cmd whose reply must be an integer: returns it. */
long long ft_redis_int(redisContext *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ft_redis_cmd whose reply must be the status OK. */
void ft_redis_ok(redisContext *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Runs one command on a connection of its own (5 s timeouts). Returns the
 * reply (freeReplyObject it), or NULL when Redis could not be reached or
 * the command failed on the way. */
redisReply *ft_redis_once(int port, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
redisReply *ft_redis_vonce(int port, const char *fmt, va_list ap);

/* The integer reply of ft_redis_once, or -1 for anything else. */
long long ft_redis_once_int(int port, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Waits up to timeout_ms until member is in the set key (e.g. a user in a
 * node's presence set online:<node>), asking every 20 ms with
 * ft_redis_once_int. 1 when it is, 0 when it never was. */
int ft_redis_wait_member(int port, const char *key, const char *member, int timeout_ms);

#endif
