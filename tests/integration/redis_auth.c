/*
 * Redis AUTH (redis_user, redis_password_file) against a redis-server
 * that requires a password: fp_store (what feed-bridge and feed-gateway
 * connect with) and feed_auth.so connect with the password read from a
 * file, as the default user or as an ACL user. A wrong password, none, and
 * a file that is missing or holds no password each fail with a reason
 * that names the cause and never holds the password. The same for a
 * Redis Sentinel that requires a password of its own
 * (redis_sentinel_user, redis_sentinel_password_file).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "fp_amqp.h"
#include "fp_config.h"
#include "fp_sentinel.h"
#include "fp_store.h"
#include "ft_main.h"
#include "ft_redis.h"
#include "plugin_env.h"

#define PASSWORD "s3cret-Pw"
#define ACL_USER "fpuser"
#define ACL_PASSWORD "acl-Pw2"
#define WRONG_PASSWORD "not-the-Pw"
#define SENTINEL_PASSWORD "sentinel-Pw3"
#define SENTINEL_USER "fpwatch"
#define SENTINEL_USER_PASSWORD "watch-Pw4"

static ft_plugin_env env; /* redis (with requirepass) and a broker whose plugin AUTHs */
static redisContext *rc;  /* the test's own connection, AUTHed */
static char pw_file[PATH_MAX + 32], acl_file[PATH_MAX + 32], wrong_file[PATH_MAX + 32];
static char empty_file[PATH_MAX + 32], missing_file[PATH_MAX + 32];
static ft_server sentinel; /* one Sentinel of that Redis, with a password of its own */
static char sentinel_addr[64], spw_file[PATH_MAX + 32], suser_file[PATH_MAX + 32];

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (f == NULL)
        return -1;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -1;
}

/* A Sentinel of redis that AUTHs to it, then made to require a password
 * of its own from its default user, with an ACL user beside it. */
static int start_sentinel(const ft_server *redis)
{
    redisReply *r;
    int ok;

    snprintf(spw_file, sizeof(spw_file), "%s/sentinel.password", redis->dir);
    snprintf(suser_file, sizeof(suser_file), "%s/sentinel-user.password", redis->dir);
    if (write_file(spw_file, SENTINEL_PASSWORD "\n") != 0 ||
        write_file(suser_file, SENTINEL_USER_PASSWORD "\n") != 0 ||
        ft_server_start_sentinel(&sentinel, redis) != 0)
        return -1;
    snprintf(sentinel_addr, sizeof(sentinel_addr), "127.0.0.1:%d", sentinel.port);
    r = ft_redis_once(sentinel.port, "SENTINEL SET feedpush auth-pass %s", PASSWORD);
    ok = r != NULL && r->type == REDIS_REPLY_STATUS;
    if (r != NULL)
        freeReplyObject(r);
    r = ft_redis_once(sentinel.port, "ACL SETUSER %s on >%s ~* &* +@all", SENTINEL_USER,
                      SENTINEL_USER_PASSWORD);
    ok = ok && r != NULL && r->type == REDIS_REPLY_STATUS;
    if (r != NULL)
        freeReplyObject(r);
    r = ft_redis_once(sentinel.port, "ACL SETUSER default resetpass >%s on", SENTINEL_PASSWORD);
    ok = ok && r != NULL && r->type == REDIS_REPLY_STATUS;
    if (r != NULL)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

/* Redis first, made to require a password (and given an ACL user), its
 * Sentinel, then the broker, whose plugin reads the password from
 * pw_file. */
static int start(void)
{
    ft_server redis;
    char extra[PATH_MAX + 64];

    if (ft_server_start(&redis, "redis", NULL) != 0)
        return -1;
    snprintf(pw_file, sizeof(pw_file), "%s/redis.password", redis.dir);
    snprintf(acl_file, sizeof(acl_file), "%s/acl.password", redis.dir);
    snprintf(wrong_file, sizeof(wrong_file), "%s/wrong.password", redis.dir);
    snprintf(empty_file, sizeof(empty_file), "%s/empty.password", redis.dir);
    snprintf(missing_file, sizeof(missing_file), "%s/missing.password", redis.dir);
    if (write_file(pw_file, PASSWORD "\n") != 0 || write_file(acl_file, ACL_PASSWORD) != 0 ||
        write_file(wrong_file, WRONG_PASSWORD "\n") != 0 || write_file(empty_file, "\n") != 0)
        return -1;
    rc = ft_redis_connect(redis.port);
    ft_redis_ok(rc, "ACL SETUSER %s on >%s ~* &* +@all", ACL_USER, ACL_PASSWORD);
    ft_redis_ok(rc, "CONFIG SET requirepass %s", PASSWORD);
    if (start_sentinel(&redis) != 0)
        return -1;
    snprintf(extra, sizeof(extra), "plugin_opt_redis_password_file %s\n", pw_file);
    return ft_plugin_env_start_on(&env, "n1", &redis, extra);
}

static int stop(void)
{
    int r = 0;

    if (rc != NULL)
        redisFree(rc);
    rc = NULL;
    if (sentinel.pid > 0 && ft_server_stop(&sentinel) != 0)
        r = -1;
    return ft_plugin_env_stop(&env) != 0 ? -1 : r;
}

FT_FIXTURES(start(), stop())

/* fp_store_open with c, then a read; returns the result, the reason in
 * why. */
static int store_try(const fp_store_config *c, char *why, size_t len)
{
    fp_store *st = NULL;
    char *ribbon = NULL;
    int r = fp_store_open(&st, c);

    snprintf(why, len, "%s", fp_store_errstr(st));
    if (r == 0)
        r = fp_store_ribbon_get(st, &ribbon) == 0 ? 0 : -1;
    free(ribbon);
    fp_store_free(st);
    return r;
}

/* store_try on Redis with these credentials. */
static int store_open(const char *user, const char *file, char *why, size_t len)
{
    fp_store_config c = {.host = "127.0.0.1",
                         .port = env.redis.port,
                         .timeout_ms = 3000,
                         .user = user,
                         .password_file = file};

    return store_try(&c, why, len);
}

/* store_try through the Sentinel, with these Sentinel credentials and
 * the Redis password of file (NULL: none). */
static int store_open_sentinel_pw(const char *suser, const char *sfile, const char *file, char *why,
                                  size_t len)
{
    fp_store_config c = {.sentinels = sentinel_addr,
                         .master_name = "feedpush",
                         .timeout_ms = 3000,
                         .password_file = file,
                         .sentinel_user = suser,
                         .sentinel_password_file = sfile};

    return store_try(&c, why, len);
}

/* The same with the Redis password. */
static int store_open_sentinel(const char *suser, const char *sfile, char *why, size_t len)
{
    return store_open_sentinel_pw(suser, sfile, pw_file, why, len);
}

static void test_store(void **state)
{
    char why[256];

    (void)state;
    /* The default user, then the ACL user, with their passwords. */
    assert_int_equal(store_open(NULL, pw_file, why, sizeof(why)), 0);
    assert_int_equal(store_open(ACL_USER, acl_file, why, sizeof(why)), 0);
    /* An ACL user need not be allowed PING (the store sends one first). */
    ft_redis_ok(rc, "ACL SETUSER fpnoping on >%s ~* &* +@all -ping", ACL_PASSWORD);
    assert_int_equal(store_open("fpnoping", acl_file, why, sizeof(why)), 0);

    assert_int_equal(store_open(NULL, wrong_file, why, sizeof(why)), -EIO);
    printf("# wrong password: %s\n", why);
    assert_non_null(strstr(why, "WRONGPASS"));
    assert_null(strstr(why, WRONG_PASSWORD));
    assert_int_equal(store_open(ACL_USER, pw_file, why, sizeof(why)), -EIO);
    assert_non_null(strstr(why, ACL_USER));
    assert_null(strstr(why, PASSWORD));

    assert_int_equal(store_open(NULL, NULL, why, sizeof(why)), -EIO);
    printf("# no password: %s\n", why);
    assert_non_null(strstr(why, "NOAUTH"));

    assert_int_equal(store_open(NULL, missing_file, why, sizeof(why)), -EIO);
    assert_non_null(strstr(why, missing_file));
    assert_int_equal(store_open(NULL, empty_file, why, sizeof(why)), -EIO);
    assert_non_null(strstr(why, empty_file));
}

/* A Sentinel that requires a password: found through with it (its
 * default user, then its ACL user); without it, or with a wrong one, the
 * reason names the Sentinel and its refusal, never the password. */
static void test_sentinel_store(void **state)
{
    char why[256];

    (void)state;
    assert_int_equal(store_open_sentinel(NULL, spw_file, why, sizeof(why)), 0);
    assert_int_equal(store_open_sentinel(SENTINEL_USER, suser_file, why, sizeof(why)), 0);

    assert_int_equal(store_open_sentinel(NULL, NULL, why, sizeof(why)), -EIO);
    printf("# no Sentinel password: %s\n", why);
    assert_non_null(strstr(why, sentinel_addr));
    assert_non_null(strstr(why, "NOAUTH"));
    assert_int_equal(store_open_sentinel(NULL, wrong_file, why, sizeof(why)), -EIO);
    printf("# wrong Sentinel password: %s\n", why);
    assert_non_null(strstr(why, sentinel_addr));
    assert_non_null(strstr(why, "WRONGPASS"));
    assert_null(strstr(why, WRONG_PASSWORD));
    assert_int_equal(store_open_sentinel(SENTINEL_USER, spw_file, why, sizeof(why)), -EIO);
    assert_non_null(strstr(why, SENTINEL_USER));
    assert_null(strstr(why, SENTINEL_PASSWORD));
    assert_int_equal(store_open_sentinel(NULL, missing_file, why, sizeof(why)), -EIO);
    assert_non_null(strstr(why, "redis_sentinel_password_file"));
    assert_non_null(strstr(why, missing_file));

    /* The Sentinel answers; the primary it names wants a password that
     * is not given: its NOAUTH, not "not the primary". */
    assert_int_equal(store_open_sentinel_pw(NULL, spw_file, NULL, why, sizeof(why)), -EIO);
    printf("# no Redis password behind a Sentinel: %s\n", why);
    assert_non_null(strstr(why, "NOAUTH"));
    assert_null(strstr(why, "not the primary"));
}

/* A connection to the Sentinel as its default user (redisFree it). */
static redisContext *sentinel_admin(void)
{
    redisContext *c = ft_redis_connect(sentinel.port);
    redisReply *r = ft_redis_cmd(c, "AUTH %s", SENTINEL_PASSWORD);

    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    return c;
}

/* Closes every subscriber of the Sentinel (as its restart would); how
 * many. */
static long long sentinel_kill_watches(void)
{
    redisContext *c = sentinel_admin();
    long long n = ft_redis_int(c, "CLIENT KILL TYPE pubsub");

    redisFree(c);
    return n;
}

/* Calls fp_sentinel_switched on s (which must say 0, the watch not
 * subscribed) every 20 ms, 5 s at most, until the watch is back (want
 * NULL) or errstr holds want. */
static bool sentinel_rewatch_until(fp_sentinel *s, const char *want)
{
    int i;

    for (i = 0; i < 250; i++) {
        assert_int_equal(fp_sentinel_switched(s), 0);
        if (want == NULL ? fp_sentinel_watching(s) : strstr(fp_sentinel_errstr(s), want) != NULL)
            return true;
        assert_false(fp_sentinel_watching(s));
        ft_sleep_ms(20);
    }
    return false;
}

/* The watch opened again after its Sentinel closed it AUTHs too: with the
 * ACL user's password it is back; with a wrong one it is not, and
 * errstr gives the refusal, never the password. */
static void test_sentinel_watch_auth(void **state)
{
    fp_sentinel *s = NULL;
    char err[160];
    fp_host p;

    (void)state;
    assert_int_equal(fp_sentinel_new(&s, sentinel_addr, "feedpush", 3000, err, sizeof(err)), 0);
    assert_int_equal(fp_sentinel_auth(s, SENTINEL_USER, suser_file), 0);
    assert_int_equal(fp_sentinel_primary(s, &p), 0);
    assert_true(fp_sentinel_watching(s));
    assert_true(sentinel_kill_watches() >= 1);
    if (!sentinel_rewatch_until(s, NULL))
        fail_msg("the watch did not come back: %s", fp_sentinel_errstr(s));

    assert_int_equal(fp_sentinel_auth(s, SENTINEL_USER, wrong_file), 0);
    assert_true(sentinel_kill_watches() >= 1);
    if (!sentinel_rewatch_until(s, "AUTH refused"))
        fail_msg("no refusal reported: %s", fp_sentinel_errstr(s));
    printf("# watch with a wrong Sentinel password: %s\n", fp_sentinel_errstr(s));
    assert_non_null(strstr(fp_sentinel_errstr(s), "WRONGPASS"));
    assert_null(strstr(fp_sentinel_errstr(s), WRONG_PASSWORD));
    fp_sentinel_free(s);
}

/* A Sentinel user that may not SUBSCRIBE (no channels): the primary is
 * found, but no watch is taken for one, neither at the connect nor when
 * it is opened again (the refusal is reported). */
static void test_sentinel_watch_refused(void **state)
{
    redisContext *c = sentinel_admin();
    fp_sentinel *s = NULL;
    redisReply *r;
    char err[160];
    fp_host p;

    (void)state;
    r = ft_redis_cmd(c, "ACL SETUSER fpnochan on >%s ~* resetchannels +@all",
                     SENTINEL_USER_PASSWORD);
    freeReplyObject(r);
    redisFree(c);
    assert_int_equal(fp_sentinel_new(&s, sentinel_addr, "feedpush", 3000, err, sizeof(err)), 0);
    assert_int_equal(fp_sentinel_auth(s, "fpnochan", suser_file), 0);
    assert_int_equal(fp_sentinel_primary(s, &p), 0);
    assert_int_equal(p.port, env.redis.port);
    assert_false(fp_sentinel_watching(s));
    if (!sentinel_rewatch_until(s, "SUBSCRIBE refused"))
        fail_msg("no refusal reported: %s", fp_sentinel_errstr(s));
    printf("# watch without channel rights: %s\n", fp_sentinel_errstr(s));
    assert_non_null(strstr(fp_sentinel_errstr(s), "NOPERM"));
    fp_sentinel_free(s);
}

/* The daemons' start-up check: a missing or empty file is a config error,
 * and so is a prefix or host too long. */
static void test_config_check(void **state)
{
    fp_redis_options o = {.host = "127.0.0.1", .port = 6379, .sentinels = "", .user = ""};
    fp_amqp_options ao = {.port = 5672, .hosts = ""};
    char err[256], longer[FP_HOST_MAX + 2];

    (void)state;
    o.password_file = pw_file;
    assert_int_equal(fp_redis_options_check(&o, err, sizeof(err)), 0);
    o.password_file = "";
    assert_int_equal(fp_redis_options_check(&o, err, sizeof(err)), 0);
    o.password_file = missing_file;
    assert_int_equal(fp_redis_options_check(&o, err, sizeof(err)), -EINVAL);
    printf("# missing file: %s\n", err);
    assert_non_null(strstr(err, missing_file));
    o.password_file = empty_file;
    assert_int_equal(fp_redis_options_check(&o, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "one line"));
    /* The Sentinels' file alike, named as its own option. */
    o.password_file = pw_file;
    o.sentinel_password_file = spw_file;
    assert_int_equal(fp_redis_options_check(&o, err, sizeof(err)), 0);
    o.sentinel_password_file = missing_file;
    assert_int_equal(fp_redis_options_check(&o, err, sizeof(err)), -EINVAL);
    printf("# missing Sentinel file: %s\n", err);
    assert_non_null(strstr(err, "redis_sentinel_password_file"));
    assert_non_null(strstr(err, missing_file));
    o.sentinel_password_file = empty_file;
    assert_int_equal(fp_redis_options_check(&o, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "redis_sentinel_password_file"));
    o.sentinel_password_file = NULL;

    /* A prefix or host the store could not take stops the daemon at
     * start rather than failing every connect (and amqp_host alike). */
    memset(longer, 'x', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    o.prefix = longer + sizeof(longer) - 1 - FP_STORE_PREFIX_MAX;
    assert_int_equal(fp_redis_options_check(&o, err, sizeof(err)), 0);
    o.prefix = longer + sizeof(longer) - 2 - FP_STORE_PREFIX_MAX;
    assert_int_equal(fp_redis_options_check(&o, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "redis_prefix"));
    o.prefix = "";
    o.host = longer;
    assert_int_equal(fp_redis_options_check(&o, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "redis_host"));
    ao.host = longer;
    assert_int_equal(fp_amqp_options_check(&ao, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "amqp_host"));
    ao.host = longer + sizeof(longer) - 1 - FP_HOST_MAX;
    assert_int_equal(fp_amqp_options_check(&ao, err, sizeof(err)), 0);
}

/* Connects uid to e's broker and waits up to 3 s until uid is in
 * online:<node>, which only the plugin's Redis thread writes: 1 when it
 * shows up, 0 when it does not, -1 when the connect failed. */
static int presence(const ft_plugin_env *e, const char *node, const char *uid)
{
    char *tok = ft_plugin_env_token_now(e, uid, FP_ROLE_USER);
    int i, member = -1;
    ft_mqtt c;

    if (ft_mqtt_connect(&c, e->mosq.port, NULL, uid, tok, 4, 3000) == 0) {
        for (i = 0, member = 0; i < 150 && member != 1; i++) {
            member = (int)ft_redis_int(rc, "SISMEMBER online:%s %s", node, uid);
            if (member != 1)
                ft_sleep_ms(20);
        }
        ft_mqtt_close(&c);
    }
    free(tok);
    return member;
}

/* Does e's broker log hold a refused AUTH (NOAUTH or WRONGPASS)? */
static bool auth_refused(const ft_plugin_env *e)
{
    char log[PATH_MAX + 32];

    snprintf(log, sizeof(log), "%s/mosquitto/mosquitto.log", e->mosq.dir);
    return ft_log_wait(log, 0, "NOAUTH", 0) != 0 || ft_log_wait(log, 0, "WRONGPASS", 0) != 0;
}

/* The plugin AUTHs too: a user who connects shows up in its presence set. */
static void test_plugin(void **state)
{
    (void)state;
    assert_int_equal(presence(&env, "n1", "pa"), 1);
    assert_false(auth_refused(&env));
}

/* A second broker on the same Redis whose plugin finds it through the
 * Sentinel, as its ACL user: a user who connects there shows up in that
 * node's presence set. */
static void test_sentinel_plugin(void **state)
{
    static ft_plugin_env env2;
    char extra[3 * PATH_MAX + 256];
    bool refused;
    int member;

    (void)state;
    snprintf(extra, sizeof(extra),
             "plugin_opt_redis_password_file %s\nplugin_opt_redis_sentinels %s\n"
             "plugin_opt_redis_master_name feedpush\nplugin_opt_redis_sentinel_user %s\n"
             "plugin_opt_redis_sentinel_password_file %s\n",
             pw_file, sentinel_addr, SENTINEL_USER, suser_file);
    assert_int_equal(ft_plugin_env_start_on(&env2, "n2", &env.redis, extra), 0);
    env2.redis.pid = 0; /* env's: stopped by stop() */
    member = presence(&env2, "n2", "ps");
    refused = auth_refused(&env2);
    assert_int_equal(ft_plugin_env_stop(&env2), 0);
    assert_int_equal(member, 1);
    assert_false(refused);
}

/*
 * Redis out of reach for the plugin (its password changed, its links
 * killed) and then the Sentinel gone too: the plugin's thread waits
 * between its attempts instead of spinning on the Sentinel's closed
 * connection. The broker uses under a third of a CPU second in 3 s (a
 * spinning thread, a whole core); once Redis takes the password again,
 * presence resumes.
 */
static void test_sentinel_gone_while_down(void **state)
{
    static ft_plugin_env env2;
    char extra[3 * PATH_MAX + 256];
    double cpu0, cpu1;
    int member;

    (void)state;
    snprintf(extra, sizeof(extra),
             "plugin_opt_redis_password_file %s\nplugin_opt_redis_sentinels %s\n"
             "plugin_opt_redis_master_name feedpush\nplugin_opt_redis_sentinel_password_file %s\n",
             pw_file, sentinel_addr, spw_file);
    assert_int_equal(ft_plugin_env_start_on(&env2, "n3", &env.redis, extra), 0);
    env2.redis.pid = 0; /* env's: stopped by stop() */
    assert_int_equal(presence(&env2, "n3", "pg"), 1);
    ft_redis_ok(rc, "CONFIG SET requirepass %s", WRONG_PASSWORD);
    assert_true(ft_redis_int(rc, "CLIENT KILL TYPE normal SKIPME yes") >= 1);
    ft_sleep_ms(500); /* the plugin has found its link gone */
    assert_int_equal(ft_server_stop(&sentinel), 0);
    sentinel.pid = 0;
    ft_sleep_ms(500);
    cpu0 = ft_server_cpu_seconds(&env2.mosq);
    ft_sleep_ms(3000);
    cpu1 = ft_server_cpu_seconds(&env2.mosq);
    ft_redis_ok(rc, "CONFIG SET requirepass %s", PASSWORD);
    member = presence(&env, "n1", "ph"); /* env's plugin reconnects too */
    assert_int_equal(ft_plugin_env_stop(&env2), 0);
    assert_true(cpu0 >= 0 && cpu1 >= cpu0);
    printf("# broker CPU with Redis and the Sentinel gone: %.2f s in 3 s\n", cpu1 - cpu0);
    if (cpu1 - cpu0 > 0.33)
        fail_msg("the broker used %.2f CPU seconds in 3 s with Redis and the Sentinel gone",
                 cpu1 - cpu0);
    assert_int_equal(member, 1);
}

/* clang-format off */
FT_MAIN(ft_mqtt_run_group, setup, teardown,
        cmocka_unit_test(test_store),
        cmocka_unit_test(test_sentinel_store),
        cmocka_unit_test(test_sentinel_watch_auth),
        cmocka_unit_test(test_sentinel_watch_refused),
        cmocka_unit_test(test_config_check),
        cmocka_unit_test(test_plugin),
        cmocka_unit_test(test_sentinel_plugin),
        cmocka_unit_test(test_sentinel_gone_while_down))
/* clang-format on */
