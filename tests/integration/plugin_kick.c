/*
 * feed_auth.so, kicks: a real mosquitto with the plugin disconnects a
 * client within 1 s of its token's exp, and every live session of a
 * revoked user within 1 s of the revocation message, while other users
 * stay connected. A revocation written while the plugin's Redis link is
 * down is loaded when the plugin reconnects. Latencies are measured on
 * the client side and asserted against the contract's limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "ft_redis.h"
#include "plugin_env.h"
#include "ft_main.h"

#define KICK_LIMIT_MS 1000 /* contract: kicked within 1 s */
#define KICK_SLACK_MS 100  /* client-side detection, scheduling */

static ft_plugin_env env;
static bool mosq_frozen;     /* SIGSTOPped by a test; teardown resumes it */

/* The wall clock (ms since the epoch) at the monotonic instant mono_ms. */
static double wall_ms_at(int64_t mono_ms)
{
    struct timespec rt;

    clock_gettime(CLOCK_REALTIME, &rt);
    return (double)rt.tv_sec * 1000.0 + (double)rt.tv_nsec / 1e6 - (double)(fp_time_mono_ms() - mono_ms);
}

/* ------------------------------------------------------------ redis */

/* Subscribers of the revocation channel (the plugin's link: 1 or 0). */
static long long revoked_subscribers(redisContext *c)
{
    redisReply *r = ft_redis_cmd(c, "PUBSUB NUMSUB revoked");
    long long n;

    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    assert_int_equal(r->element[1]->type, REDIS_REPLY_INTEGER);
    n = r->element[1]->integer;
    freeReplyObject(r);
    return n;
}

/* Waits until the plugin is subscribed to the revocation channel. */
static void wait_plugin_subscribed(redisContext *c)
{
    int64_t end = fp_time_mono_ms() + 3000;

    while (revoked_subscribers(c) != 1) {
        if (fp_time_mono_ms() >= end)
            fail_msg("the plugin did not subscribe to \"revoked\" within 3 s");
        ft_sleep_ms(10);
    }
}

/* ------------------------------------------------------------ mqtt */

/* One non-blocking turn of c's network loop; records a close. */
static void mqtt_turn(ft_mqtt *c)
{
    if (c->disconnected)
        return;
    if (mosquitto_loop(c->m, 0, 1) != MOSQ_ERR_SUCCESS && !c->disconnected) {
        c->disconnected = true;
        c->closed_at_ms = fp_time_mono_ms();
    }
}

/*
 * Runs the network loops of all n clients together (so each close is
 * stamped when it happens, not when its turn comes) until every one is
 * closed or timeout_ms passed. Returns how many are still open.
 */
static size_t wait_all_closed(ft_mqtt *const *cs, size_t n, int timeout_ms)
{
    int64_t end = fp_time_mono_ms() + timeout_ms;
    struct pollfd fds[8];
    size_t i, open;

    assert_true(n <= 8);
    for (;;) {
        open = 0;
        for (i = 0; i < n; i++) {
            mqtt_turn(cs[i]);
            if (!cs[i]->disconnected) {
                fds[open].fd = mosquitto_socket(cs[i]->m);
                fds[open].events = POLLIN;
                open++;
            }
        }
        if (open == 0 || fp_time_mono_ms() >= end)
            return open;
        poll(fds, (nfds_t)open, 10);
    }
}

/* c is still connected: a SUBACK for its own feed comes back. */
static void assert_alive(ft_mqtt *c, const char *sub)
{
    char topic[96];

    snprintf(topic, sizeof(topic), "feed/%s", sub);
    ft_mqtt_pump(c, 50);
    assert_false(c->disconnected);
    assert_int_equal(ft_mqtt_subscribe(c, topic, 2000), 1);
    assert_false(c->disconnected);
}

/* Connects user with tok and expects CONNACK want (v3.1.1 code). */
static void assert_connack(const char *client_id, const char *user, const char *tok, int want)
{
    ft_mqtt c;

    assert_int_equal(ft_mqtt_connect(&c, env.mosq.port, client_id, user, tok, 4, 3000), want);
    ft_mqtt_close(&c);
}

/* ------------------------------------------------------------ fixtures */

/* One Redis + broker for the whole file: under ASan each start and stop
 * of the pair costs seconds. Tests use distinct users. */
static int group_setup(void **state)
{
    (void)state;
    mosq_frozen = false;
    return ft_plugin_env_start(&env, "n1", NULL);
}

/* A failed stop (e.g. a sanitizer report in the broker's log) is counted
 * by the harness and fails the run through ft_harness_exit(). */
static int group_teardown(void **state)
{
    (void)state;
    return ft_plugin_env_stop(&env);
}

/* Each test starts with both servers up and the plugin subscribed to the
 * revocation channel, whatever an earlier failed test left behind. */
static int setup(void **state)
{
    redisContext *c;

    (void)state;
    if (!ft_server_running(&env.redis))
        assert_int_equal(ft_server_restart(&env.redis), 0);
    if (!ft_server_running(&env.mosq))
        assert_int_equal(ft_server_restart(&env.mosq), 0);
    c = ft_redis_connect(env.redis.port);
    wait_plugin_subscribed(c);
    redisFree(c);
    return 0;
}

/* After each test: the broker is alive (ASan and UBSan abort it on an
 * error) and has logged no sanitizer report. */
static int teardown(void **state)
{
    (void)state;
    if (mosq_frozen)
        kill((pid_t)-env.mosq.pid, SIGCONT);
    mosq_frozen = false;
    assert_true(ft_server_running(&env.mosq));
    assert_false(ft_plugin_env_sanitizer_report(&env));
    return 0;
}

/* ------------------------------------------------------------ tests */

/*
 * A token with exp = now + 3: the broker closes the connection not before
 * exp and no later than exp + 1 s (+ slack); the same token is then
 * refused. Another user's session with a long token is not touched. (now
 * is whole seconds: with now + 2, as little as 1 s was left for the two
 * connects, and a slow one was refused as expired.)
 */
static void test_expiry_disconnects_within_1s(void **state)
{
    int64_t now = (int64_t)time(NULL), exp = now + 3;
    char *tok = ft_plugin_env_token(&env, "alice", now, exp, FP_ROLE_USER);
    char *tok_bob = ft_plugin_env_token_now(&env, "bob", FP_ROLE_USER);
    ft_mqtt alice, bob;
    ft_mqtt *alices[] = {&alice};
    double closed_wall, exp_wall = (double)exp * 1000.0;

    (void)state;
    assert_int_equal(ft_mqtt_connect(&bob, env.mosq.port, "bob-1", "bob", tok_bob, 4, 3000), 0);
    assert_int_equal(ft_mqtt_connect(&alice, env.mosq.port, "alice-1", "alice", tok, 4, 3000), 0);
    assert_int_equal(wait_all_closed(alices, 1, 6000), 0);
    closed_wall = wall_ms_at(alice.closed_at_ms);
    print_message("expiry: closed %.0f ms after exp\n", closed_wall - exp_wall);
    assert_true(closed_wall >= exp_wall);
    assert_true(closed_wall <= exp_wall + KICK_LIMIT_MS + KICK_SLACK_MS);
    ft_mqtt_close(&alice);

    /* The expired token is refused outright (v3.1.1: 5, v5: 135). */
    assert_connack("alice-1", "alice", tok, 5);
    assert_int_equal(ft_mqtt_connect(&alice, env.mosq.port, "alice-1", "alice", tok, 5, 3000), 135);
    ft_mqtt_close(&alice);

    /* Bob lived through the kick and later expiry sweeps. */
    ft_mqtt_pump(&bob, 500);
    assert_alive(&bob, "bob");
    ft_mqtt_close(&bob);
    free(tok);
    free(tok_bob);
}

/*
 * SET revoked:rev + PUBLISH "rev <before>": both sessions of rev close
 * within 1 s of the PUBLISH, carol's does not; rev's old token is refused
 * from then on, and so is one issued in the cut-off's second; a token
 * issued after the cut-off is accepted.
 */
static void test_revocation_kicks_every_session_within_1s(void **state)
{
    int64_t now = (int64_t)time(NULL), before = now + 1, t0;
    char *old = ft_plugin_env_token(&env, "rev", now - 10, now + 3600, FP_ROLE_USER);
    char *at_cut = ft_plugin_env_token(&env, "rev", before, before + 3600, FP_ROLE_USER);
    char *fresh = ft_plugin_env_token(&env, "rev", before + 1, before + 3600, FP_ROLE_USER);
    char *tok_carol = ft_plugin_env_token_now(&env, "carol", FP_ROLE_USER);
    ft_mqtt r1, r2, carol, r3;
    ft_mqtt *revs[] = {&r1, &r2};
    redisContext *rc = ft_redis_connect(env.redis.port);
    size_t i;

    (void)state;
    assert_int_equal(ft_mqtt_connect(&r1, env.mosq.port, "rev-1", "rev", old, 4, 3000), 0);
    assert_int_equal(ft_mqtt_connect(&r2, env.mosq.port, "rev-2", "rev", old, 5, 3000), 0);
    assert_int_equal(ft_mqtt_connect(&carol, env.mosq.port, "carol-1", "carol", tok_carol, 4, 3000),
                     0);
    assert_alive(&r1, "rev");
    assert_alive(&r2, "rev");

    /* What the bridge will do: the key first, then the message. */
    ft_redis_ok(rc, "SET revoked:rev %lld", (long long)before);
    t0 = fp_time_mono_ms();
    assert_int_equal(ft_redis_int(rc, "PUBLISH revoked %s%lld", "rev ", (long long)before), 1);
    assert_int_equal(wait_all_closed(revs, 2, 3000), 0);
    for (i = 0; i < 2; i++) {
        print_message("revocation: rev-%zu closed %lld ms after the PUBLISH\n", i + 1,
                      (long long)(revs[i]->closed_at_ms - t0));
        assert_true(revs[i]->closed_at_ms >= t0);
        assert_true(revs[i]->closed_at_ms - t0 <= KICK_LIMIT_MS);
    }
    ft_mqtt_close(&r1);
    ft_mqtt_close(&r2);
    assert_alive(&carol, "carol");

    /* The old token is refused now, and so is one issued at the cut-off;
     * a token issued after it is not, and its session is left alone. */
    assert_connack("rev-1", "rev", old, 5);
    assert_connack("rev-4", "rev", at_cut, 5);
    assert_int_equal(ft_mqtt_connect(&r3, env.mosq.port, "rev-3", "rev", fresh, 4, 3000), 0);
    ft_mqtt_pump(&r3, 500);
    assert_alive(&r3, "rev");
    ft_mqtt_close(&r3);
    assert_alive(&carol, "carol");
    ft_mqtt_close(&carol);
    redisFree(rc);
    free(old);
    free(at_cut);
    free(fresh);
    free(tok_carol);
}

/*
 * Redis goes away (the plugin notices and retries), comes back empty on
 * the same port, and the bridge writes revoked:late before the plugin has
 * reconnected, without a message (none could reach the plugin). The
 * plugin loads revoked:* when it reconnects: late's live session is
 * kicked, late's old token refused, a newer one accepted; dora stays.
 *
 * Ordering: the plugin reconnects with a backoff of at most 2 s, which
 * could beat the SET. So the broker is frozen (SIGSTOP) from just before
 * the restart until the key is written; no Redis connection of the plugin
 * can exist in between, which PUBSUB NUMSUB confirms.
 */
static void test_revocation_loaded_after_redis_outage(void **state)
{
    int64_t now = (int64_t)time(NULL), before = now + 1, t0;
    char *old = ft_plugin_env_token(&env, "late", now - 10, now + 3600, FP_ROLE_USER);
    char *fresh = ft_plugin_env_token(&env, "late", before + 1, before + 3600, FP_ROLE_USER);
    char *tok_dora = ft_plugin_env_token_now(&env, "dora", FP_ROLE_USER);
    ft_mqtt live, dora, again;
    ft_mqtt *lives[] = {&live};
    redisContext *rc;
    long log_from;

    (void)state;
    assert_int_equal(ft_mqtt_connect(&live, env.mosq.port, "late-1", "late", old, 4, 3000), 0);
    assert_int_equal(ft_mqtt_connect(&dora, env.mosq.port, "dora-1", "dora", tok_dora, 4, 3000), 0);

    log_from = ft_plugin_env_log_size(&env);
    assert_int_equal(ft_server_stop(&env.redis), 0);
    assert_true(ft_plugin_env_log_wait(&env, log_from, "presence paused", 3000));
    assert_alive(&live, "late"); /* nothing revoked yet */

    assert_int_equal(kill((pid_t)-env.mosq.pid, SIGSTOP), 0);
    mosq_frozen = true;
    assert_int_equal(ft_server_restart(&env.redis), 0);
    rc = ft_redis_connect(env.redis.port);
    assert_int_equal(revoked_subscribers(rc), 0);
    ft_redis_ok(rc, "SET revoked:late %lld", (long long)before);
    assert_int_equal(kill((pid_t)-env.mosq.pid, SIGCONT), 0);
    mosq_frozen = false;
    t0 = fp_time_mono_ms();

    assert_int_equal(wait_all_closed(lives, 1, 5000), 0);
    print_message("revocation after outage: late-1 closed %lld ms after the broker resumed\n",
                  (long long)(live.closed_at_ms - t0));
    assert_true(live.closed_at_ms - t0 <= 3000);
    ft_mqtt_close(&live);
    wait_plugin_subscribed(rc);

    assert_connack("late-1", "late", old, 5);
    assert_int_equal(ft_mqtt_connect(&again, env.mosq.port, "late-2", "late", fresh, 4, 3000), 0);
    assert_alive(&again, "late");
    ft_mqtt_close(&again);
    assert_alive(&dora, "dora");
    ft_mqtt_close(&dora);
    redisFree(rc);
    free(old);
    free(fresh);
    free(tok_dora);
}

/*
 * redis_prefix is a key prefix, not a pattern. A plugin with the prefix
 * "p*" loads the revocation p*revoked:pat (pat's old token is refused)
 * and not pXrevoked:innocent, a key of another prefix that the plain
 * pattern "p*revoked:*" would match (innocent's token is accepted).
 */
static void test_prefix_is_not_a_pattern(void **state)
{
    int64_t now = (int64_t)time(NULL);
    ft_plugin_env e2;
    ft_server redis;
    redisContext *rc;
    char *tok_pat, *tok_innocent;
    ft_mqtt c;

    (void)state;
    assert_int_equal(ft_server_start(&redis, "redis", NULL), 0);
    rc = ft_redis_connect(redis.port);
    ft_redis_ok(rc, "SET p*revoked:pat %lld", (long long)(now + 1));
    ft_redis_ok(rc, "SET pXrevoked:innocent %lld", (long long)(now + 1));
    assert_int_equal(ft_plugin_env_start_on(&e2, "n2", &redis, "plugin_opt_redis_prefix p*\n"), 0);
    tok_pat = ft_plugin_env_token(&e2, "pat", now - 10, now + 3600, FP_ROLE_USER);
    tok_innocent = ft_plugin_env_token(&e2, "innocent", now - 10, now + 3600, FP_ROLE_USER);
    /* revocations are loaded before the presence resync */
    assert_true(ft_plugin_env_log_wait(&e2, 0, "presence of node n2 resynced", 5000));

    assert_int_equal(ft_mqtt_connect(&c, e2.mosq.port, "pat-1", "pat", tok_pat, 4, 3000), 5);
    ft_mqtt_close(&c);
    assert_int_equal(
        ft_mqtt_connect(&c, e2.mosq.port, "innocent-1", "innocent", tok_innocent, 4, 3000), 0);
    ft_mqtt_close(&c);
    redisFree(rc);
    free(tok_pat);
    free(tok_innocent);
    assert_false(ft_plugin_env_sanitizer_report(&e2));
    assert_int_equal(ft_plugin_env_stop(&e2), 0);
}

/* path (PATH_MAX + 16 bytes): a revocation file in a fresh directory the
 * broker may write in. */
static void revocation_path(char *path)
{
    char dir[PATH_MAX];

    assert_int_equal(ft_shared_dir(dir, "revocations-XXXXXX"), 0);
    snprintf(path, PATH_MAX + 16, "%s/revoked", dir);
}

/* Starts a Redis of its own and a broker (node) beside it whose plugin
 * keeps its revocations in path, with the plugin_opt_ lines more. */
static void revocation_env_start(ft_plugin_env *e, ft_server *redis, const char *node,
                                 const char *path, const char *more)
{
    char extra[PATH_MAX + 256];

    snprintf(extra, sizeof(extra), "plugin_opt_revocation_file %s\n%s", path, more);
    assert_int_equal(ft_server_start(redis, "redis", NULL), 0);
    assert_int_equal(ft_plugin_env_start_on(e, node, redis, extra), 0);
}

/*
 * revocation_file: a broker restarted while Redis is out of reach still
 * refuses a revoked token. keep is revoked (the key and the message, as
 * user_revoked.lua writes them) and the cut-off reaches the file; the
 * broker restarts with Redis stopped, loads the file and refuses keep's
 * old token, and accepts a token issued after the cut-off. Without the
 * file the old token was accepted until Redis came back.
 */
static void test_revocation_file_survives_restart(void **state)
{
    int64_t now = (int64_t)time(NULL), before = now + 1;
    char path[PATH_MAX + 16], line[96], failed[PATH_MAX + 64];
    char *old, *fresh;
    ft_plugin_env e2;
    ft_server redis;
    redisContext *rc;
    ft_mqtt c;
    FILE *junk;
    long from;

    (void)state;
    revocation_path(path);
    revocation_env_start(&e2, &redis, "n3", path, "");
    old = ft_plugin_env_token(&e2, "keep", now - 10, now + 3600, FP_ROLE_USER);
    fresh = ft_plugin_env_token(&e2, "keep", before + 1, before + 3600, FP_ROLE_USER);
    rc = ft_redis_connect(redis.port);
    wait_plugin_subscribed(rc);
    snprintf(line, sizeof(line), "keep %lld", (long long)before);
    ft_redis_ok(rc, "SET revoked:keep %lld", (long long)before);
    assert_int_equal(ft_redis_int(rc, "PUBLISH revoked %s", line), 1);
    strcat(line, "\n");
    assert_true(ft_file_line_wait(path, line, 5000));

    assert_int_equal(ft_server_stop(&redis), 0);
    from = ft_plugin_env_log_size(&e2);
    assert_int_equal(ft_server_restart(&e2.mosq), 0);
    assert_true(ft_plugin_env_log_wait(&e2, from, "1 revocations loaded from", 5000));
    assert_int_equal(ft_mqtt_connect(&c, e2.mosq.port, "keep-1", "keep", old, 4, 3000), 5);
    ft_mqtt_close(&c);
    assert_int_equal(ft_mqtt_connect(&c, e2.mosq.port, "keep-2", "keep", fresh, 4, 3000), 0);
    ft_mqtt_close(&c);

    /* A file that is not a revocation file stops the broker at start;
     * none at all is a first start. */
    junk = fopen(path, "w");
    assert_non_null(junk);
    fputs("keep 1\n", junk);
    fclose(junk);
    assert_int_equal(ft_server_restart(&e2.mosq), -1);
    /* fp-server sets each failed start's log aside. */
    snprintf(failed, sizeof(failed), "%s/mosquitto/mosquitto.log.failed-start-1", e2.mosq.dir);
    assert_int_equal(ft_log_count(failed, 0, "is not a revocation file"), 1);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(ft_server_restart(&e2.mosq), 0);

    assert_int_equal(ft_server_restart(&redis), 0);
    redisFree(rc);
    free(old);
    free(fresh);
    assert_false(ft_plugin_env_sanitizer_report(&e2));
    assert_int_equal(ft_plugin_env_stop(&e2), 0);
    assert_int_equal(ft_server_stop(&redis), 0);
}

/*
 * A failed write of the revocation file is tried again by itself: no
 * other revocation comes (Redis is stopped) and the file still gets the
 * cut-off, in time for a crash. The write fails while a directory sits
 * where the plugin writes its temporary file; once it is gone, the next
 * try (within 5 s) writes the file, the broker is killed (SIGKILL) and
 * restarted with Redis still down, and refuses the revoked token. Before,
 * the write was tried again only at the next revocation message.
 */
static void test_revocation_file_write_retried(void **state)
{
    int64_t now = (int64_t)time(NULL), before = now + 1;
    char path[PATH_MAX + 16], tmp[PATH_MAX + 32], line[96];
    char again[PATH_MAX + 64], *old;
    ft_plugin_env e2;
    ft_server redis;
    redisContext *rc;
    ft_mqtt c;
    long from;

    (void)state;
    revocation_path(path);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    revocation_env_start(&e2, &redis, "n4", path, "");
    old = ft_plugin_env_token(&e2, "keep", now - 10, now + 3600, FP_ROLE_USER);
    rc = ft_redis_connect(redis.port);
    wait_plugin_subscribed(rc);
    assert_int_equal(mkdir(tmp, 0755), 0);
    from = ft_plugin_env_log_size(&e2);
    snprintf(line, sizeof(line), "keep %lld", (long long)before);
    ft_redis_ok(rc, "SET revoked:keep %lld", (long long)before);
    assert_int_equal(ft_redis_int(rc, "PUBLISH revoked %s", line), 1);
    assert_true(ft_plugin_env_log_wait(&e2, from, "cannot write", 5000));
    redisFree(rc);
    assert_int_equal(ft_server_stop(&redis), 0);

    assert_int_equal(rmdir(tmp), 0);
    strcat(line, "\n");
    assert_true(ft_file_line_wait(path, line, 10000));
    snprintf(again, sizeof(again), "1 revocations saved to %s again", path);
    assert_true(ft_plugin_env_log_wait(&e2, from, again, 5000));
    assert_int_equal(ft_plugin_env_log_count(&e2, from, "cannot write"), 1);

    assert_int_equal(ft_server_kill(&e2.mosq), 0);
    from = ft_plugin_env_log_size(&e2);
    assert_int_equal(ft_server_restart(&e2.mosq), 0);
    assert_true(ft_plugin_env_log_wait(&e2, from, "1 revocations loaded from", 5000));
    assert_int_equal(ft_mqtt_connect(&c, e2.mosq.port, "keep-1", "keep", old, 4, 3000), 5);
    ft_mqtt_close(&c);

    free(old);
    assert_false(ft_plugin_env_sanitizer_report(&e2));
    assert_int_equal(ft_plugin_env_stop(&e2), 0);
}

/* Waits up to timeout_ms until the file at path no longer holds line. */
static bool file_line_gone_wait(const char *path, const char *line, int timeout_ms)
{
    int64_t end = fp_time_mono_ms() + timeout_ms;

    while (ft_file_has_line(path, line)) {
        if (fp_time_mono_ms() >= end)
            return false;
        ft_sleep_ms(20);
    }
    return true;
}

/*
 * A write that works after a failed one, of a table pruned empty
 * (require_iat with max_lifetime 6: the file's only cut-off is from
 * 1970), is logged as working again, and with Redis gone the plugin's
 * thread then waits for its next connect attempt. It used to take the
 * empty write for "nothing to write": the failure stayed set, its retry
 * time in the past, and the thread spun on a core while Redis was away.
 */
static void test_revocation_file_emptied_after_failure(void **state)
{
    char path[PATH_MAX + 16], tmp[PATH_MAX + 32], again[PATH_MAX + 64];
    ft_plugin_env e2;
    ft_server redis;
    double cpu0, cpu1;
    FILE *f;

    (void)state;
    revocation_path(path);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "feedpush-revocations 1\nstale 1000\n");
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, 0666), 0);
    assert_int_equal(mkdir(tmp, 0755), 0);
    revocation_env_start(&e2, &redis, "n6", path,
                         "plugin_opt_require_iat true\nplugin_opt_max_lifetime 6\n");
    assert_true(ft_plugin_env_log_wait(&e2, 0, "1 older than max_lifetime dropped", 5000));
    assert_true(ft_plugin_env_log_wait(&e2, 0, "cannot write", 5000));
    assert_int_equal(ft_server_stop(&redis), 0);

    assert_int_equal(rmdir(tmp), 0);
    assert_true(file_line_gone_wait(path, "stale 1000\n", 10000));
    snprintf(again, sizeof(again), "0 revocations saved to %s again", path);
    assert_true(ft_plugin_env_log_wait(&e2, 0, again, 5000));
    cpu0 = ft_server_cpu_seconds(&e2.mosq);
    ft_sleep_ms(3000);
    cpu1 = ft_server_cpu_seconds(&e2.mosq);
    assert_true(cpu0 >= 0 && cpu1 >= cpu0);
    printf("# broker CPU with Redis gone after the file was emptied: %.2f s in 3 s\n", cpu1 - cpu0);
    if (cpu1 - cpu0 > 0.33)
        fail_msg("the broker used %.2f CPU seconds in 3 s with Redis gone", cpu1 - cpu0);
    assert_int_equal(ft_plugin_env_log_count(&e2, 0, "cannot write"), 1);

    assert_false(ft_plugin_env_sanitizer_report(&e2));
    assert_int_equal(ft_plugin_env_stop(&e2), 0);
}

/*
 * require_iat with max_lifetime 6: a revocation is forgotten 6 s after its
 * cut-off, when every token it revoked has expired.
 *  - At start, the file's cut-off from 1970 is dropped (and left out of
 *    the file), one from the future is kept.
 *  - A token without iat is refused, even of a user never revoked.
 *  - gone is revoked now: its token issued before is refused and the
 *    cut-off reaches the file; an ancient cut-off sent on the channel
 *    (anc) is not taken in.
 *  - Within max_lifetime + the prune period (6 s + 6 s) of the cut-off,
 *    gone's line leaves the file, and that one drop is logged (anc's
 *    would be a second); the future cut-off stays.
 */
static void test_revocation_forgotten_after_max_lifetime(void **state)
{
    int64_t now = (int64_t)time(NULL), before;
    char path[PATH_MAX + 16], line[96], kept[96];
    char *old, *noiat;
    ft_plugin_env e2;
    ft_server redis;
    redisContext *rc;
    ft_mqtt c;
    FILE *f;
    long from;

    (void)state;
    revocation_path(path);
    snprintf(kept, sizeof(kept), "later %lld\n", (long long)(now + 3600));
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "feedpush-revocations 1\nstale 1000\n%s", kept);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, 0666), 0);
    revocation_env_start(&e2, &redis, "n5", path,
                         "plugin_opt_require_iat true\nplugin_opt_max_lifetime 6\n");
    assert_true(ft_plugin_env_log_wait(&e2, 0, "1 revocations loaded from", 5000));
    assert_true(ft_plugin_env_log_wait(&e2, 0, "1 older than max_lifetime dropped", 5000));
    assert_true(file_line_gone_wait(path, "stale 1000\n", 5000));
    assert_true(ft_file_has_line(path, kept));

    now = (int64_t)time(NULL);
    noiat = ft_plugin_env_token(&e2, "fresh", 0, now + 6, FP_ROLE_USER);
    from = ft_plugin_env_log_size(&e2);
    assert_int_equal(ft_mqtt_connect(&c, e2.mosq.port, "fresh-1", "fresh", noiat, 4, 3000), 5);
    ft_mqtt_close(&c);
    assert_true(ft_plugin_env_log_wait(&e2, from, "token refused (iat missing)", 5000));

    rc = ft_redis_connect(redis.port);
    wait_plugin_subscribed(rc);
    before = (int64_t)time(NULL);
    old = ft_plugin_env_token(&e2, "gone", before, before + 6, FP_ROLE_USER);
    from = ft_plugin_env_log_size(&e2);
    assert_int_equal(ft_redis_int(rc, "PUBLISH revoked %s", "anc 1000"), 1);
    snprintf(line, sizeof(line), "gone %lld", (long long)before);
    ft_redis_ok(rc, "SET revoked:gone %lld", (long long)before);
    assert_int_equal(ft_redis_int(rc, "PUBLISH revoked %s", line), 1);
    strcat(line, "\n");
    assert_true(ft_file_line_wait(path, line, 5000));
    assert_false(ft_file_has_line(path, "anc 1000\n"));
    assert_int_equal(ft_mqtt_connect(&c, e2.mosq.port, "gone-1", "gone", old, 4, 3000), 5);
    ft_mqtt_close(&c);
    assert_true(ft_plugin_env_log_wait(&e2, from,
                                       "token of gone issued at or before its revocation", 5000));

    /* Dropped from 6 s after the cut-off, by a prune at most 6 s later. */
    assert_true(file_line_gone_wait(path, line, 16000));
    assert_true((int64_t)time(NULL) >= before + 6);
    assert_true(
        ft_plugin_env_log_wait(&e2, from, "1 revocations older than max_lifetime dropped", 5000));
    assert_int_equal(ft_plugin_env_log_count(&e2, from, "older than max_lifetime dropped"), 1);
    assert_true(ft_file_has_line(path, kept));

    redisFree(rc);
    free(old);
    free(noiat);
    assert_false(ft_plugin_env_sanitizer_report(&e2));
    assert_int_equal(ft_plugin_env_stop(&e2), 0);
    assert_int_equal(ft_server_stop(&redis), 0);
}

/* clang-format off */
FT_MAIN(ft_mqtt_run_group, group_setup, group_teardown,
        cmocka_unit_test_setup_teardown(test_expiry_disconnects_within_1s, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revocation_kicks_every_session_within_1s, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_revocation_loaded_after_redis_outage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefix_is_not_a_pattern, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revocation_file_survives_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revocation_file_write_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revocation_forgotten_after_max_lifetime, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_revocation_file_emptied_after_failure, setup,
                                        teardown))
/* clang-format on */
