/*
 * Smoke test: a real redis-server started by the harness answers hiredis,
 * can be restarted on the same port (fault tests rely on it) and is gone
 * after stop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "ft_harness.h"
#include "ft_main.h"
#include "ft_redis.h"

static void test_redis_set_get_restart_stop(void **state)
{
    ft_server s;
    redisContext *c;
    redisReply *r;

    (void)state;
    assert_int_equal(ft_server_start(&s, "redis", NULL), 0);
    c = ft_redis_connect(s.port);
    ft_redis_ok(c, "SET %s %s", "smoke:key", "value");
    r = ft_redis_cmd(c, "GET %s", "smoke:key");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "value");
    freeReplyObject(r);

    /* Restart on the same port: the old connection breaks, a new one works,
     * and the test server keeps no data across restarts. */
    int old_port = s.port;
    long old_pid = s.pid;
    assert_int_equal(ft_server_restart(&s), 0);
    assert_int_equal(s.port, old_port);
    assert_int_not_equal(s.pid, old_pid);
    r = redisCommand(c, "PING");
    assert_null(r);
    redisFree(c);
    c = ft_redis_connect(s.port);
    r = ft_redis_cmd(c, "GET %s", "smoke:key");
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    redisFree(c);

    assert_int_equal(ft_server_stop(&s), 0);
    assert_false(ft_server_running(&s));
    c = redisConnect("127.0.0.1", s.port);
    assert_non_null(c);
    assert_int_not_equal(c->err, 0);
    redisFree(c);
}

static void test_redis_kill(void **state)
{
    ft_server s;

    (void)state;
    assert_int_equal(ft_server_start(&s, "redis", NULL), 0);
    assert_true(ft_server_running(&s));
    assert_int_equal(ft_server_kill(&s), 0);
    assert_false(ft_server_running(&s));
}

/* clang-format off */
FT_MAIN(ft_harness_run, NULL, NULL,
        cmocka_unit_test(test_redis_set_get_restart_stop),
        cmocka_unit_test(test_redis_kill))
/* clang-format on */
