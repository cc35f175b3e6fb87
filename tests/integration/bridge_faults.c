/*
 * feed-bridge under faults (the acceptance). In each test a steady
 * stream of posts flows through a node pair (one every few ms, published
 * with confirms from a thread of its own) and one fault is injected in the
 * middle of it:
 *
 *   - Redis paused past the bridge's I/O timeout (CLIENT PAUSE), then its
 *     client connections killed (CLIENT KILL) a few times;
 *   - redis-server restarted, its data kept (an RDB written at shutdown);
 *   - redis-server restarted empty (the test Redis has no persistence);
 *   - the bridge SIGKILLed, posts keep coming, the bridge started again;
 *   - mosquitto restarted (the bridge's MQTT link reconnects by itself);
 *   - the bridge stopped with SIGINT / SIGTERM mid-stream (exit 0 within
 *     5 s), then started again.
 *
 * Others, on single events: Redis refusing, out of memory or read-only;
 * too few replicas with redis_min_replicas, also for longer than
 * RabbitMQ's heartbeat timeout; the broker stopped or unresolvable at
 * the bridge's start.
 *
 * Afterwards every post is in every recipient's feed list (the author's
 * and three followers') exactly once -- for the empty restart: no post
 * twice and every post published after it present -- and the bridge
 * recovered without a manual restart (the same process, for the Redis and
 * mosquitto faults). An online follower gets posts live at least once
 * (clients dedupe by id): every post when the bridge itself was stopped or
 * killed; after a Redis fault every post published once its presence and
 * its node's heartbeat are back (a stall longer than the heartbeat TTL
 * makes routing treat the node as gone meanwhile); after the broker
 * restart, users connected afterwards receive live posts again. Recovery
 * times are printed as "# ..." lines.
 *
 * The node pair is shared by the group; each test has its own ids (author
 * <t>a, followers <t>f1..3, posts <t>p0000...).
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <mosquitto.h>

#include "feed_stream.h"
#include "ft_redis.h"
#include "node_env.h"
#include "ft_main.h"

#define STREAM_POSTS 300
#define STREAM_PACE_US 5000 /* between two confirmed publishes */
#define PAUSE_MS 2500       /* longer than the bridge's 2 s timeout (node_env) */

static ft_node_env env;

FT_FIXTURES((ft_stream_use(&env), ft_node_env_start(&env, 1)), ft_node_env_stop(&env))

/* ------------------------------------------------------------ helpers */

/* A command (rq) or an integer reply, -1 for anything else (rq_int), on a
 * connection of its own: Redis is restarted under our feet. */
#define rq(...) ft_redis_once(env.p.redis.port, __VA_ARGS__)
#define rq_int(...) ft_redis_once_int(env.p.redis.port, __VA_ARGS__)

typedef ft_stream stream;
typedef ft_watcher watcher;

/* Asserts that a command got a status or integer reply (not an error). */
static void rq_ok(redisReply *r)
{
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        print_message("redis error: %s\n", r->str);
    assert_true(r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
}

/* Asserts that the bridge process that ran before the fault still runs. */
static void assert_same_bridge(pid_t before)
{
    int status;

    assert_int_equal(env.node[0].bridge, before);
    assert_int_equal(waitpid(env.node[0].bridge, &status, WNOHANG), 0);
}

/* Starts the bridge again and waits until it is up: the old process's
 * "updated_ms" is removed first so ft_node_bridge_start waits for the new one. */
static int64_t restart_bridge(void)
{
    int64_t t0 = fp_time_mono_ms();

    rq_ok(rq("HDEL stats:bridge:%s updated_ms", env.p.node_id));
    assert_int_equal(ft_node_bridge_start(&env, 1), 0);
    return fp_time_mono_ms() - t0;
}

/* Asserts that the online follower got every post live at least once. */
static void assert_watcher_all(watcher *w, int n)
{
    if (ft_watcher_wait(w, 0, n, 10000) < 0)
        fail_msg("%s received %d of %d posts live (%d messages)", w->uid, ft_watcher_count(w, 0, n),
                 n, w->messages);
}

/* The time the plugin last wrote into its node's heartbeat key (unix
 * seconds), 0 when the key is missing. */
static long long heartbeat_time(void)
{
    return rq_int("EVAL %s 1 node:%s", "return tonumber(redis.call('GET', KEYS[1]) or '0')",
                  env.p.node_id);
}

/*
 * After a Redis fault: waits until the plugin has written its node's
 * heartbeat since (a time after the fault's end: a key kept through a
 * restart, or not yet expired after a pause, says nothing of a plugin
 * that has not reconnected yet) and the watcher's presence is there (a
 * reconnect rewrites it), and returns the index of the first post
 * published after that.
 */
static int live_again_from(watcher *w, stream *s)
{
    long long after = (long long)time(NULL) + 1;
    int i;

    for (i = 0; i < 500 && heartbeat_time() < after; i++)
        ft_sleep_ms(20);
    assert_true(heartbeat_time() >= after);
    ft_stream_wait_online(1, w->uid);
    return ft_stream_next(s) + 1;
}

/* Asserts that the watcher got posts from..n-1 live and reports how many
 * of the earlier ones it missed. */
static void assert_watcher_from(watcher *w, int from, int n)
{
    if (from < n && ft_watcher_wait(w, from, n, 10000) < 0)
        fail_msg("%s received %d of the %d posts published once presence was back", w->uid,
                 ft_watcher_count(w, from, n), n - from);
    printf("# %s: %d of the %d posts before that were not delivered live\n", w->uid,
           from - ft_watcher_count(w, 0, from), from);
}

/* A test's scenario begins: t's author followed, follower f1 online
 * (watcher w), and stream s of n posts running. */
static void scenario_start(const char *t, watcher *w, stream *s, int n)
{
    ft_stream_follow(t);
    ft_watcher_start(w, 1, t, "f1");
    ft_stream_start(s, t, n, false, STREAM_PACE_US);
}

/* The scenario ends after a fault the bridge rode out: once the stream is
 * done, every feed has each of the n posts once and w got all of them
 * live. */
static void scenario_end_all(const char *t, watcher *w, stream *s, int n)
{
    ft_stream_join(s);
    ft_feeds_settle(t, n, 0);
    ft_feeds_assert(t, n, 0);
    assert_watcher_all(w, n);
    ft_watcher_stop(w);
}

/* The scenario ends after a Redis fault that kept the data: once the
 * stream is done, one more post (so the live check is never empty); every
 * feed has each post once, the bridge is still process pid, and w got
 * every post from live on (live_again_from) live. */
static void redis_fault_end(const char *t, watcher *w, stream *s, int n, int live, pid_t pid)
{
    ft_stream_join(s);
    ft_stream_publish_post(t, n);
    ft_feeds_settle(t, n + 1, 0);
    ft_feeds_assert(t, n + 1, 0);
    assert_same_bridge(pid);
    assert_watcher_from(w, live, n + 1);
    ft_watcher_stop(w);
}

/*
 * After each test, also a failed one (cmocka jumps out of it): stops the
 * stream and the watchers it left running and starts the bridge again if
 * it was down, so the next test finds the node pair as usual.
 */
static int cleanup(void **state)
{
    (void)state;
    ft_stream_cleanup();
    if (env.node[0].bridge <= 0) {
        freeReplyObject(rq("HDEL stats:bridge:%s updated_ms", env.p.node_id));
        return ft_node_bridge_start(&env, 1);
    }
    return 0;
}

/* ------------------------------------------------------------ the tests */

/* Every Redis client connection killed five times in a row, then Redis
 * unresponsive for longer than the bridge's timeout (its command and its
 * first reconnect time out): the same bridge catches up, each post once
 * per feed. */
static void test_redis_client_kill_and_pause(void **state)
{
    const char *t = "rk_";
    int n = 700, i, live;
    pid_t pid = env.node[0].bridge;
    long long rec0 = ft_node_stat(&env, 1, "reconnects_redis");
    static watcher w;
    static stream s;

    (void)state;
    scenario_start(t, &w, &s, n);

    ft_stream_wait(&s, 100);
    for (i = 0; i < 5; i++) {
        rq_ok(rq("CLIENT KILL TYPE normal"));
        ft_sleep_ms(100);
    }
    ft_feeds_report_recovery("redis clients killed 5x", t, ft_stream_next(&s));

    ft_stream_wait(&s, 250);
    rq_ok(rq("CLIENT PAUSE %d ALL", PAUSE_MS));
    ft_sleep_ms(PAUSE_MS);
    ft_feeds_report_recovery("redis paused 2.5 s", t, ft_stream_next(&s));
    live = live_again_from(&w, &s);

    redis_fault_end(t, &w, &s, n, live, pid);
    assert_true(ft_node_stat(&env, 1, "reconnects_redis") >= rec0 + 2);
}

/* An idle bridge whose Redis link is killed reconnects by itself: its
 * counters (updated_ms, which alerting reads) keep being written though
 * no event comes to find the link broken. */
static void test_idle_redis_link_repaired(void **state)
{
    pid_t pid = env.node[0].bridge;
    long long rec0 = ft_node_stat(&env, 1, "reconnects_redis");

    (void)state;
    assert_true(rec0 >= 0);
    rq_ok(rq("CLIENT KILL TYPE normal"));
    rq_ok(rq("HDEL stats:bridge:%s updated_ms", env.p.node_id));
    assert_true(ft_node_stat_wait(&env, 1, "updated_ms", 1, 5000) > 0);
    assert_true(ft_node_stat(&env, 1, "reconnects_redis") >= rec0 + 1);
    assert_same_bridge(pid);
}

/* A real restart without persistence: everything in Redis is gone. The
 * bridge reconnects by itself; no post is in a feed twice and every post
 * published after the restart is in every feed. (Explicit recipients: the
 * follower sets are gone with the rest.) */
static void test_redis_restart_empty(void **state)
{
    const char *t = "re_";
    int n = STREAM_POSTS, from, kept;
    pid_t pid = env.node[0].bridge;
    long long rec0 = ft_node_stat(&env, 1, "reconnects_redis");
    redisReply *dir;
    char path[PATH_MAX + 16];
    static stream s;

    (void)state;
    /* No RDB of an earlier restart may come back. */
    dir = rq("CONFIG GET dir");
    assert_non_null(dir);
    assert_int_equal(dir->type, REDIS_REPLY_ARRAY);
    assert_int_equal(dir->elements, 2);
    snprintf(path, sizeof(path), "%s/dump.rdb", dir->element[1]->str);
    freeReplyObject(dir);
    unlink(path);
    rq_ok(rq("CONFIG SET save %s", ""));
    rq_ok(rq("SET faults:before 1"));

    ft_stream_start(&s, t, n, true, STREAM_PACE_US);
    ft_stream_wait(&s, n / 2);
    assert_int_equal(ft_server_restart(&env.p.redis), 0);
    /* The post at ft_stream_next may have gone out before the restart
     * and been written to the Redis that was lost. */
    from = ft_stream_next(&s) + 1;
    assert_int_equal(rq_int("EXISTS faults:before"), 0); /* it did lose everything */
    ft_feeds_report_recovery("redis restarted empty", t, from);

    ft_stream_join(&s);
    ft_feeds_settle(t, n, from);
    kept = ft_feeds_assert(t, n, from);
    printf("# redis restarted empty: %d of the %d posts before the restart survived in a feed\n",
           kept, from);
    assert_same_bridge(pid);
    assert_true(ft_node_stat(&env, 1, "reconnects_redis") > rec0);
}

/* A real restart that keeps the data (an RDB written at shutdown): every
 * post in every feed exactly once, live deliveries go on. */
static void test_redis_restart_keeps_data(void **state)
{
    const char *t = "rd_";
    int n = STREAM_POSTS, live;
    pid_t pid = env.node[0].bridge;
    long long rec0 = ft_node_stat(&env, 1, "reconnects_redis");
    static watcher w;
    static stream s;

    (void)state;
    /* The harness starts Redis with --save "": a save point makes the
     * SIGTERM shutdown write dump.rdb, which the restart loads. */
    rq_ok(rq("CONFIG SET save %s", "3600 1"));
    rq_ok(rq("SET faults:kept 1"));
    scenario_start(t, &w, &s, n);
    ft_stream_wait(&s, n / 2);
    assert_int_equal(ft_server_restart(&env.p.redis), 0);
    assert_int_equal(rq_int("EXISTS faults:kept"), 1);
    ft_feeds_report_recovery("redis restarted (data kept)", t, ft_stream_next(&s));
    live = live_again_from(&w, &s);

    redis_fault_end(t, &w, &s, n, live, pid);
    assert_true(ft_node_stat(&env, 1, "reconnects_redis") > rec0);
}

/* The bridge killed (no chance to ack what it holds), posts keep coming
 * while it is down, then it starts again: redeliveries do not duplicate. */
static void test_bridge_sigkill(void **state)
{
    const char *t = "bk_";
    int n = STREAM_POSTS, status;
    int64_t down, start_ms;
    static watcher w;
    static stream s;

    (void)state;
    scenario_start(t, &w, &s, n);

    ft_stream_wait(&s, n / 2);
    down = fp_time_mono_ms();
    status = ft_node_bridge_signal(&env, 1, SIGKILL, 2000);
    assert_true(status != -1);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    ft_stream_wait(&s, n / 2 + 50); /* while it is down */
    start_ms = restart_bridge();
    printf("# bridge SIGKILLed: down %lld ms, of which the new process took %lld ms to start\n",
           (long long)(fp_time_mono_ms() - down), (long long)start_ms);
    ft_feeds_report_recovery("bridge restarted after SIGKILL", t, ft_stream_next(&s));

    scenario_end_all(t, &w, &s, n);
}

/* Waits for post i to reach w live (15 s at most) and reports how long
 * after `since` (the broker restart) that was. */
static void live_again(watcher *w, int i, int64_t since)
{
    if (ft_watcher_wait(w, i, i + 1, 15000) < 0)
        fail_msg("%s (connected after the restart) did not get post %d live", w->uid, i);
    printf("# mosquitto restarted: live posts reach users again %lld ms after the restart\n",
           (long long)(fp_time_mono_ms() - since));
}

/* mosquitto restarted (the plugin reloads) under the stream: the bridge's
 * MQTT link comes back by itself, feeds are exact, a user who connects
 * after the restart gets live posts again, and so does the one who was
 * connected before (after reconnecting). */
static void test_mosquitto_restart(void **state)
{
    const char *t = "mq_";
    int n = 450, from1, from2;
    pid_t pid = env.node[0].bridge;
    long long mq0 = ft_node_stat(&env, 1, "reconnects_mqtt");
    int64_t t0, back;
    static watcher w1, w2;
    static stream s;

    (void)state;
    ft_stream_follow(t);
    ft_watcher_start(&w1, 1, t, "f1"); /* online through the restart: reconnects */
    ft_stream_start(&s, t, n, false, STREAM_PACE_US);

    ft_stream_wait(&s, n / 3);
    t0 = fp_time_mono_ms();
    assert_int_equal(ft_server_restart(&env.p.mosq), 0);
    back = fp_time_mono_ms();
    printf("# mosquitto restart took %lld ms\n", (long long)(back - t0));
    ft_feeds_report_recovery("mosquitto restarted", t, ft_stream_next(&s));

    /* A user who connects after the restart gets the next live post (one
     * of the stream's, or the extra one below when the stream is over). */
    ft_watcher_start(&w2, 1, t, "f2");
    from2 = ft_stream_next(&s) + 1;
    if (from2 < n)
        live_again(&w2, from2, back);
    ft_watcher_wait_connected(&w1, 2);
    from1 = ft_stream_next(&s) + 1;
    ft_stream_join(&s);
    ft_stream_publish_post(t, n);
    if (from2 >= n)
        live_again(&w2, n, back);

    if (ft_watcher_wait(&w2, from2, n + 1, 10000) < 0)
        fail_msg("%sf2 got %d of the %d posts published after it was online", t,
                 ft_watcher_count(&w2, from2, n + 1), n + 1 - from2);
    if (ft_watcher_wait(&w1, from1, n + 1, 10000) < 0)
        fail_msg("%sf1 got %d of the %d posts published after it was back online", t,
                 ft_watcher_count(&w1, from1, n + 1), n + 1 - from1);

    ft_feeds_settle(t, n + 1, 0);
    ft_feeds_assert(t, n + 1, 0);
    assert_same_bridge(pid);
    assert_true(ft_node_stat(&env, 1, "reconnects_mqtt") > mq0);
    ft_watcher_stop(&w2);
    ft_watcher_stop(&w1);
}

/* sig mid-stream: the bridge stops consuming, finishes what it holds and
 * exits 0 within 5 s; started again, it handles the rest, each post once. */
static void stop_mid_stream(int sig, const char *t, int n)
{
    int status;
    int64_t t0, stop_ms;
    static watcher w;
    static stream s;

    scenario_start(t, &w, &s, n);

    ft_stream_wait(&s, n / 2);
    t0 = fp_time_mono_ms();
    status = ft_node_bridge_signal(&env, 1, sig, 5000);
    stop_ms = fp_time_mono_ms() - t0;
    if (status == -1)
        fail_msg("feed-bridge still running 5 s after %s", strsignal(sig));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    printf("# %s mid-stream: the bridge exited 0 after %lld ms\n", strsignal(sig),
           (long long)stop_ms);
    ft_stream_wait(&s, n / 2 + n / 6); /* while it is down */
    restart_bridge();
    ft_feeds_report_recovery("bridge restarted after a clean stop", t, ft_stream_next(&s));

    scenario_end_all(t, &w, &s, n);
}

static void test_sigint_mid_stream(void **state)
{
    (void)state;
    stop_mid_stream(SIGINT, "si_", STREAM_POSTS);
}

static void test_sigterm_mid_stream(void **state)
{
    (void)state;
    stop_mid_stream(SIGTERM, "st_", STREAM_POSTS / 2);
}

/* Publishes a batch of two follows (f1 follows w1, f2 follows w2) and
 * waits for RabbitMQ's confirm. */
static void publish_two_follows(const char *f1, const char *w1, const char *f2, const char *w2)
{
#define FOLLOW_JSON "{\"type\":\"follow.created\",\"follower_id\":\"%s\",\"followee_id\":\"%s\"}"
    assert_int_equal(ft_node_publishf(&env, "batch",
                                      "{\"type\":\"batch\",\"events\":[" FOLLOW_JSON "," FOLLOW_JSON
                                      "]}",
                                      f1, w1, f2, w2),
                     0);
#undef FOLLOW_JSON
}

/*
 * Redis refusals (WRONGTYPE) count per event of a batch: the first event
 * is refused twice, then its key is mended and it goes through; the
 * second is refused for good and gets its own five tries (four logged,
 * the fifth dead-letters it), not what the first left of them.
 */
static void test_batch_refusals_per_event(void **state)
{
    const char *log = env.node[0].bridge_log;
    long from = ft_log_size(log);
    int dead = ft_node_queue_depth(&env, "feed.events.dead");
    int i;

    (void)state;
    rq_ok(rq("SET followers:rrw not-a-set"));
    rq_ok(rq("SET followers:rrv not-a-set"));
    publish_two_follows("rr1", "rrw", "rr2", "rrv");
    assert_int_equal(ft_log_wait(log, from, "redis refused an event", 10000), 1);
    (void)ft_log_wait_n(log, from, "redis refused an event", 2, 1000);
    rq_ok(rq("DEL followers:rrw"));
    assert_int_equal(ft_redis_wait_member(env.p.redis.port, "followers:rrw", "rr1", 10000), 1);
    for (i = 0; i < 400 && ft_node_queue_depth(&env, "feed.events.dead") != dead + 1; i++)
        ft_sleep_ms(25);
    assert_int_equal(ft_node_queue_depth(&env, "feed.events.dead"), dead + 1);
    /* The first event's two or more, then the second's four. */
    if (ft_log_count(log, from, "redis refused an event") < 6)
        fail_msg("%d refusals logged: the second event did not get its own five tries",
                 ft_log_count(log, from, "redis refused an event"));
    assert_int_equal(ft_log_count(log, from, "dead-lettering event 2 of a batch of 2"), 1);
    rq_ok(rq("DEL followers:rrv"));
}

/* Gives Redis its memory back, also after a failure. */
static int oom_cleanup(void **state)
{
    freeReplyObject(rq("CONFIG SET maxmemory 0"));
    return cleanup(state);
}

/*
 * Redis out of memory (maxmemory reached under noeviction: it refuses
 * every write with OOM) is a passing state, not a bad event: the bridge
 * tries the event again and again with a backoff, well past the five
 * refusals after which a refused event is dead-lettered, and applies it
 * once Redis has room. Nothing is dead-lettered.
 */
static void test_redis_oom_waited_out(void **state)
{
    const char *log = env.node[0].bridge_log;
    long from = ft_log_size(log);
    int dead = ft_node_queue_depth(&env, "feed.events.dead");
    int tries;

    (void)state;
    rq_ok(rq("CONFIG SET maxmemory 1"));
    assert_int_equal(ft_node_follow(&env, "ro1", "row"), 0);
    tries = ft_log_wait_n(log, from, "redis cannot take the event now", 7, 10000);
    if (tries < 7)
        fail_msg("the bridge did not keep trying the event: %d tries logged", tries);
    assert_true(ft_log_count(log, from, "OOM command not allowed") >= 1); /* the reason, said */
    assert_int_equal(ft_node_queue_depth(&env, "feed.events.dead"), dead);
    assert_int_equal(rq_int("SCARD followers:row"), 0);
    rq_ok(rq("CONFIG SET maxmemory 0"));
    assert_int_equal(ft_redis_wait_member(env.p.redis.port, "followers:row", "ro1", 10000), 1);
    assert_int_equal(ft_node_queue_depth(&env, "feed.events.dead"), dead);
}

static int primary_cleanup(void **state)
{
    freeReplyObject(rq("REPLICAOF NO ONE"));
    return cleanup(state);
}

/*
 * The bridge's Redis turns into a replica (REPLICAOF; no Sentinels to
 * name another primary): every write is refused with READONLY, which
 * makes the bridge reconnect, the reconnect works, and the next write is
 * refused again. The reconnects back off (the first at once, then 100 ms
 * doubling) rather than running in a loop; once the server is a primary
 * again the event goes through.
 */
static void test_readonly_backs_off(void **state)
{
    const char *log = env.node[0].bridge_log;
    long from = ft_log_size(log);
    int n;

    (void)state;
    rq_ok(rq("REPLICAOF 127.0.0.1 1"));
    assert_int_equal(ft_node_follow(&env, "rof", "row"), 0);
    assert_true(ft_log_wait(log, from, "READONLY", 5000) == 1);
    ft_sleep_ms(2000);
    n = ft_log_count(log, from, "read only replica.; reconnecting");
    print_message("reconnects in about 2 s of READONLY: %d\n", n);
    /* At once, then after 0.1, 0.3, 0.7, 1.5 s (and 3.1): a loop made
     * hundreds. */
    assert_true(n >= 2 && n <= 8);
    rq_ok(rq("REPLICAOF NO ONE"));
    assert_int_equal(ft_redis_wait_member(env.p.redis.port, "followers:row", "rof", 10000), 1);
}

/* The bridge again, started with redis_min_replicas (set) or without. */
static void bridge_min_replicas(bool set)
{
    int status = ft_node_bridge_signal(&env, 1, SIGTERM, 5000);

    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (set) {
        setenv("FEEDPUSH_REDIS_MIN_REPLICAS", "1", 1);
        setenv("FEEDPUSH_REDIS_WAIT_TIMEOUT_MS", "100", 1);
    }
    restart_bridge();
    unsetenv("FEEDPUSH_REDIS_MIN_REPLICAS");
    unsetenv("FEEDPUSH_REDIS_WAIT_TIMEOUT_MS");
}

static ft_server replica;  /* test_batch_again_after_sync_failed's */
static bool with_replicas; /* the bridge runs with redis_min_replicas */

/* Stops that test's replica and gives the bridge its usual settings back,
 * also after a failure. */
static int replicas_cleanup(void **state)
{
    unsetenv("FEEDPUSH_AMQP_HEARTBEAT"); /* test_long_wait_keeps_rabbitmq_link's */
    env.opts.timeout_ms = NULL;
    if (replica.pid > 0)
        ft_server_stop(&replica);
    memset(&replica, 0, sizeof(replica));
    if (with_replicas && env.node[0].bridge > 0)
        bridge_min_replicas(false);
    with_replicas = false;
    return cleanup(state);
}

/*
 * Follower f of author a online as u (subscribed to feed/<f>), the follow
 * acked with a replica there, started for it, and the replica gone again:
 * else the follow's own sync would wait for it (redis_min_replicas).
 */
static void online_without_replica(const char *f, const char *a, ft_mqtt *u)
{
    char *tok = ft_node_token(&env, f), key[FP_ID_BUFSZ + 16], topic[FP_ID_BUFSZ + 8];
    long long follows = ft_node_stat(&env, 1, "events_follow_created");

    assert_int_equal(ft_server_start_replica(&replica, &env.p.redis), 0);
    assert_int_equal(ft_node_follow(&env, f, a), 0);
    assert_int_equal(ft_mqtt_connect(u, ft_node_port(&env, 1), NULL, f, tok, 4, 5000), 0);
    free(tok);
    snprintf(topic, sizeof(topic), "feed/%s", f);
    assert_int_equal(ft_mqtt_subscribe(u, topic, 5000), 1);
    snprintf(key, sizeof(key), "online:%s", env.p.node_id);
    assert_int_equal(ft_redis_wait_member(env.p.redis.port, key, f, 3000), 1);
    assert_true(ft_node_stat_wait(&env, 1, "events_follow_created", follows + 1, 20000) >=
                follows + 1);
    ft_server_stop(&replica);
    memset(&replica, 0, sizeof(replica));
}

/*
 * redis_min_replicas 1 and no replica: the writes of a post are made but
 * no replica takes them (WAIT fails). That is waited out: the probe alone
 * again, with backoff, on the same link. The post is not applied again:
 * its online follower gets it once, and the bridge does not reconnect
 * (before, it reconnected and applied the post again every
 * redis_wait_timeout_ms, a copy to the follower each time). Once a
 * replica is there the post is acked.
 */
static void test_sync_short_waited_out(void **state)
{
    const char *log = env.node[0].bridge_log;
    long long events;
    ft_mqtt u;
    long from;

    (void)state;
    with_replicas = true;
    bridge_min_replicas(true);
    online_without_replica("rsf", "rsa", &u);
    events = ft_node_stat(&env, 1, "events_post_created");
    from = ft_log_size(log);
    assert_int_equal(ft_node_post(&env, "rsp1", "rsa", "while no replica"), 0);
    assert_int_equal(ft_mqtt_wait_messages(&u, 1, 5000), 1);
    /* Two seconds of WAITs of 100 ms that fail. */
    ft_mqtt_pump(&u, 2000);
    assert_int_equal(u.received, 1);
    assert_int_equal(ft_node_stat(&env, 1, "events_post_created"), events); /* not acked */
    /* Said once, at warning level (the tries after it at debug level). */
    assert_int_equal(
        ft_log_count(log, from, "WARN  [feed-bridge] redis cannot take the event now (WAIT: 0 of"),
        1);
    assert_int_equal(ft_log_count(log, from, "reconnecting"), 0);
    assert_int_equal(ft_server_start_replica(&replica, &env.p.redis), 0);
    assert_true(ft_node_stat_wait(&env, 1, "events_post_created", events + 1, 20000) >= events + 1);
    ft_mqtt_pump(&u, 300);
    assert_int_equal(u.received, 1);
    ft_mqtt_close(&u);
}

/*
 * A wait between tries at an event that outlasts RabbitMQ's heartbeat
 * timeout (here redis_min_replicas 1 and no replica for three heartbeats
 * of 4 s; RabbitMQ drops a link silent for two): the bridge keeps its
 * RabbitMQ link meanwhile, and once a replica is there the event is acked
 * on it. Its follower gets the post once. Before, the link was closed
 * under the waiting bridge, the ack failed, and the event came again
 * after a reconnect: applied again and delivered a second time.
 */
static void test_long_wait_keeps_rabbitmq_link(void **state)
{
    const char *log = env.node[0].bridge_log;
    long long events, reconnects;
    ft_mqtt u;
    long from;

    (void)state;
    with_replicas = true;
    setenv("FEEDPUSH_AMQP_HEARTBEAT", "4", 1);
    env.opts.timeout_ms = "500"; /* 2 x 500 ms + 3 s: within 4 s */
    bridge_min_replicas(true);
    unsetenv("FEEDPUSH_AMQP_HEARTBEAT");
    env.opts.timeout_ms = NULL;
    online_without_replica("rhf", "rha", &u);
    events = ft_node_stat(&env, 1, "events_post_created");
    reconnects = ft_node_stat(&env, 1, "reconnects_amqp");
    from = ft_log_size(log);
    assert_int_equal(ft_node_post(&env, "rhp1", "rha", "through a long wait"), 0);
    assert_int_equal(ft_mqtt_wait_messages(&u, 1, 5000), 1);
    ft_mqtt_pump(&u, 14000);
    assert_int_equal(ft_node_stat(&env, 1, "events_post_created"), events); /* not acked */
    assert_int_equal(ft_server_start_replica(&replica, &env.p.redis), 0);
    assert_true(ft_node_stat_wait(&env, 1, "events_post_created", events + 1, 20000) >= events + 1);
    ft_mqtt_pump(&u, 1000);
    assert_int_equal(u.received, 1);
    assert_int_equal(ft_node_stat(&env, 1, "reconnects_amqp"), reconnects);
    assert_int_equal(ft_log_count(log, from, "rabbitmq"), 0);
    ft_mqtt_close(&u);
}

/*
 * redis_min_replicas 1 and no replica: a batch of two follows is written
 * but not acknowledged by a replica (WAIT fails), and its writes are
 * then lost, as a primary's are when it dies before a replica caught up
 * (here they are deleted, and the bridge's link cut as that death
 * would). Once a replica is there, the batch is acked with both follows
 * in Redis: after the reconnect the batch went again from its first
 * event, rather than from where it stopped, which would have run only
 * the WAIT.
 */
static void test_batch_again_after_sync_failed(void **state)
{
    long long batches;

    (void)state;
    with_replicas = true;
    bridge_min_replicas(true);
    batches = ft_node_stat(&env, 1, "event_batches");
    publish_two_follows("rb1", "rbw", "rb2", "rbw");
    assert_int_equal(ft_redis_wait_member(env.p.redis.port, "followers:rbw", "rb1", 10000), 1);
    assert_int_equal(ft_redis_wait_member(env.p.redis.port, "followers:rbw", "rb2", 10000), 1);
    assert_true(ft_node_stat(&env, 1, "event_batches") <= batches); /* not acked: no replica */
    rq_ok(rq("DEL followers:rbw following:rb1 following:rb2"));
    rq_ok(rq("CLIENT KILL TYPE normal"));
    assert_int_equal(ft_redis_wait_member(env.p.redis.port, "followers:rbw", "rb1", 10000), 1);
    assert_int_equal(ft_server_start_replica(&replica, &env.p.redis), 0);
    assert_true(ft_node_stat_wait(&env, 1, "event_batches", batches + 1, 20000) >= batches + 1);
    assert_int_equal(rq_int("SISMEMBER followers:rbw rb1"), 1);
    assert_int_equal(rq_int("SISMEMBER followers:rbw rb2"), 1);
}

/*
 * redis_min_replicas with a replica, and the probe refused (its key of
 * the wrong type; alike a WAIT an ACL denies): the event is applied, but
 * the refusal is the setup's, not the event's. The probe (not the event)
 * is tried again well past the five refusals after which a refused event
 * is dead-lettered, and the event acked once the probe works. Nothing is
 * dead-lettered.
 */
static void test_sync_refused_waited_out(void **state)
{
    const char *log = env.node[0].bridge_log;
    int dead = ft_node_queue_depth(&env, "feed.events.dead"), tries;
    long long events;
    long from;

    (void)state;
    assert_int_equal(ft_server_start_replica(&replica, &env.p.redis), 0);
    with_replicas = true;
    bridge_min_replicas(true);
    events = ft_node_stat(&env, 1, "events_follow_created");
    rq_ok(rq("DEL sync"));
    assert_int_equal(rq_int("HSET sync not a-counter"), 1);
    from = ft_log_size(log);
    assert_int_equal(ft_node_follow(&env, "rs1", "rsw"), 0);
    assert_int_equal(ft_redis_wait_member(env.p.redis.port, "followers:rsw", "rs1", 10000), 1);
    tries = ft_log_wait_n(log, from, "redis cannot take the event now", 7, 15000);
    if (tries < 7)
        fail_msg("the bridge did not keep trying the event: %d tries logged", tries);
    assert_int_equal(ft_node_queue_depth(&env, "feed.events.dead"), dead);
    assert_true(ft_node_stat(&env, 1, "events_follow_created") == events); /* not acked */
    /* Only the probe is tried again, not the event: what it wrote, taken
     * away here, is not written again (a post would be routed again). */
    rq_ok(rq("DEL followers:rsw following:rs1"));
    if (ft_log_wait_n(log, from, "redis cannot take the event now", tries + 2, 15000) < tries + 2)
        fail_msg("the bridge stopped trying the probe");
    assert_int_equal(rq_int("EXISTS followers:rsw"), 0);
    rq_ok(rq("DEL sync"));
    assert_true(ft_node_stat_wait(&env, 1, "events_follow_created", events + 1, 20000) >=
                events + 1);
    assert_int_equal(ft_node_queue_depth(&env, "feed.events.dead"), dead);
    assert_int_equal(rq_int("EXISTS followers:rsw"), 0);
}

static bool broker_stopped; /* test_start_with_broker_stopped's, for its cleanup */

static int broker_cleanup(void **state)
{
    if (broker_stopped && kill((pid_t)env.p.mosq.pid, SIGCONT) == 0)
        broker_stopped = false;
    return cleanup(state);
}

/*
 * The bridge starts while its broker is stopped (its connection accepted,
 * no CONNACK): the feeds are written at once, since stage 1 needs no
 * broker, and once the broker runs again the posts go out live. Before,
 * the start waited for the broker with stage 1's consumer open: up to
 * prefetch events taken and nothing written.
 */
static void test_start_with_broker_stopped(void **state)
{
    const char *t = "bs_";
    static watcher w;

    (void)state;
    ft_stream_follow(t);
    assert_int_equal(ft_node_bridge_signal(&env, 1, SIGTERM, 5000), 0);
    assert_int_equal(kill((pid_t)env.p.mosq.pid, SIGSTOP), 0);
    broker_stopped = true;
    restart_bridge();
    ft_stream_publish_post(t, 0);
    ft_feeds_report_recovery("bridge started with its broker stopped", t, 0);

    assert_int_equal(kill((pid_t)env.p.mosq.pid, SIGCONT), 0);
    broker_stopped = false;
    ft_watcher_start(&w, 1, t, "f1");
    ft_stream_publish_post(t, 1);
    if (ft_watcher_wait(&w, 1, 2, 10000) < 0)
        fail_msg("%sf1 did not get the post published once the broker ran again", t);
    ft_feeds_settle(t, 2, 0);
    ft_feeds_assert(t, 2, 0);
}

static char hosts_path[PATH_MAX + 32]; /* test_broker_name_resolves_later's */
static char *asan_options;             /* ASAN_OPTIONS before that test */

/* The environment of the test process as before that test; the bridge
 * again with the usual settings, also after a failure. */
static int names_cleanup(void **state)
{
    unsetenv("FEEDPUSH_MQTT_HOST");
    unsetenv("FEEDPUSH_LOCAL_DELIVERY");
    unsetenv("LD_PRELOAD");
    unsetenv("NSS_WRAPPER_HOSTS");
    unsetenv("NSS_WRAPPER_DISABLE_DEEPBIND");
    if (asan_options != NULL)
        setenv("ASAN_OPTIONS", asan_options, 1);
    else
        unsetenv("ASAN_OPTIONS");
    free(asan_options);
    asan_options = NULL;
    if (env.node[0].bridge > 0 && ft_node_bridge_signal(&env, 1, SIGTERM, 5000) == -1)
        return -1;
    return cleanup(state);
}

/* Writes the bridge's hosts file (nss_wrapper's format, as /etc/hosts):
 * a new file renamed over the old, so a lookup never reads half of it. */
static void hosts_write(const char *text, bool backdate)
{
    struct timespec old[2] = {{0, 0}, {0, 0}};
    char tmp[sizeof(hosts_path) + 8];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.new", hosts_path);
    f = fopen(tmp, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
    /* nss_wrapper reads the file again when its mtime changes: the first
     * version is dated back, so a rewrite within the same second counts. */
    if (backdate) {
        old[0].tv_sec = old[1].tv_sec = time(NULL) - 3600;
        assert_int_equal(utimensat(AT_FDCWD, tmp, old, 0), 0);
    }
    assert_int_equal(rename(tmp, hosts_path), 0);
}

/*
 * The broker's host name does not resolve when the bridge starts (a DNS
 * record not there yet), then does: the bridge connects without a
 * restart. Names are resolved through nss_wrapper with a hosts file of
 * the test's. Before the fix the first failed lookup ended the start of
 * the MQTT link, and the bridge waited for the link for ever. The bridge
 * runs with local_delivery queue: one MQTT link, so one thread resolving
 * (nss_wrapper 1.1.12 crashed once when two threads reloaded its hosts
 * file at the same moment).
 */
static void test_broker_name_resolves_later(void **state)
{
    const char *tmp = getenv("FP_TEST_TMP"), *asan = getenv("ASAN_OPTIONS");
    char opts[1024];
    long log_from;
    int status;

    (void)state;
    assert_non_null(tmp);
    snprintf(hosts_path, sizeof(hosts_path), "%s/hosts-%ld", tmp, (long)getpid());
    hosts_write("127.0.0.2 other.test\n", true);
    status = ft_node_bridge_signal(&env, 1, SIGTERM, 5000);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    asan_options = asan != NULL ? strdup(asan) : NULL;
    /* A preloaded library ahead of ASan's runtime is fine here. */
    snprintf(opts, sizeof(opts), "%s%sverify_asan_link_order=0", asan != NULL ? asan : "",
             asan != NULL && asan[0] != '\0' ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    setenv("FEEDPUSH_MQTT_HOST", "fp-broker.test", 1);
    setenv("FEEDPUSH_LOCAL_DELIVERY", "queue", 1);
    setenv("NSS_WRAPPER_HOSTS", hosts_path, 1);
    setenv("NSS_WRAPPER_DISABLE_DEEPBIND", "1", 1); /* ASan refuses RTLD_DEEPBIND */
    setenv("LD_PRELOAD", "libnss_wrapper.so", 1);
    log_from = ft_log_size(env.node[0].bridge_log);
    rq_ok(rq("HDEL stats:bridge:%s updated_ms", env.p.node_id));
    assert_int_equal(ft_node_bridge_spawn(&env, 1), 0);
    unsetenv("LD_PRELOAD"); /* for the bridge alone */

    /* Its first connect failed (the open's wait ran out): now the name. */
    assert_int_equal(ft_log_wait(env.node[0].bridge_log, log_from, "waiting for the link", 10000),
                     1);
    hosts_write("127.0.0.2 other.test\n127.0.0.1 fp-broker.test\n", false);
    assert_int_equal(ft_node_bridge_wait(&env, 1), 0);
    assert_int_equal(ft_log_count(env.node[0].bridge_log, log_from, "running: rabbitmq"), 1);
}

/* clang-format off */
FT_MAIN(ft_mqtt_run_group, setup, teardown,
        cmocka_unit_test_teardown(test_redis_client_kill_and_pause, cleanup),
        /* Before the restart that writes an RDB (it unlinks it anyway). */
        cmocka_unit_test_teardown(test_idle_redis_link_repaired, cleanup),
        cmocka_unit_test_teardown(test_redis_restart_empty, cleanup),
        cmocka_unit_test_teardown(test_redis_restart_keeps_data, cleanup),
        cmocka_unit_test_teardown(test_bridge_sigkill, cleanup),
        cmocka_unit_test_teardown(test_mosquitto_restart, cleanup),
        cmocka_unit_test_teardown(test_sigint_mid_stream, cleanup),
        cmocka_unit_test_teardown(test_sigterm_mid_stream, cleanup),
        cmocka_unit_test_teardown(test_batch_refusals_per_event, cleanup),
        cmocka_unit_test_teardown(test_redis_oom_waited_out, oom_cleanup),
        cmocka_unit_test_teardown(test_readonly_backs_off, primary_cleanup),
        cmocka_unit_test_teardown(test_sync_short_waited_out, replicas_cleanup),
        cmocka_unit_test_teardown(test_long_wait_keeps_rabbitmq_link, replicas_cleanup),
        cmocka_unit_test_teardown(test_batch_again_after_sync_failed, replicas_cleanup),
        cmocka_unit_test_teardown(test_sync_refused_waited_out, replicas_cleanup),
        cmocka_unit_test_teardown(test_start_with_broker_stopped, broker_cleanup),
        cmocka_unit_test_teardown(test_broker_name_resolves_later, names_cleanup))
/* clang-format on */
