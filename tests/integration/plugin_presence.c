/*
 * feed_auth.so, presence: online:<node> in Redis holds exactly the users
 * with at least one session on the node, whether sessions end with a
 * DISCONNECT, a dead process or a dropped socket; node:<node> is a
 * heartbeat with a TTL of 3 intervals; stale entries are cleared when the
 * broker starts; authentication does not wait for Redis, and presence is
 * exact again shortly after Redis comes back. Redis is read with hiredis.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "ft_redis.h"
#include "plugin_env.h"
#include "ft_main.h"

#define ONLINE "online:n1"

static ft_plugin_env env;
static redisContext *rc;     /* the test's own Redis connection */

/* ------------------------------------------------------------ redis */

/* (Re)connects rc to the env's Redis. */
static void redis_open(void)
{
    if (rc != NULL)
        redisFree(rc);
    rc = ft_redis_connect(env.redis.port);
}

/* A command on rc whose reply must be an integer. */
#define redis_int(...) ft_redis_int(rc, __VA_ARGS__)

static bool is_online(const char *user)
{
    return redis_int("SISMEMBER %s %s", ONLINE, user) == 1;
}

/* SMEMBERS online:n1 == want (as sets). Prints the set when describe. */
static bool online_is(const char *const *want, size_t n, bool describe)
{
    redisReply *r = ft_redis_cmd(rc, "SMEMBERS %s", ONLINE);
    bool same;
    size_t i, j;

    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    same = r->elements == n;
    for (i = 0; same && i < n; i++) {
        same = false;
        for (j = 0; j < r->elements; j++)
            same = same || strcmp(r->element[j]->str, want[i]) == 0;
    }
    if (!same && describe) {
        print_message("%s holds %zu:", ONLINE, r->elements);
        for (j = 0; j < r->elements; j++)
            print_message(" %s", r->element[j]->str);
        print_message("\n");
    }
    freeReplyObject(r);
    return same;
}

/* Polls until user's membership is present; returns the ms it took, or
 * fails the test after timeout_ms. */
static int64_t wait_online(const char *user, bool present, int timeout_ms)
{
    int64_t t0 = fp_time_mono_ms();

    while (is_online(user) != present) {
        if (fp_time_mono_ms() - t0 >= timeout_ms)
            fail_msg("%s still %s %s after %d ms", user, present ? "not in" : "in", ONLINE,
                     timeout_ms);
        ft_sleep_ms(5);
    }
    return fp_time_mono_ms() - t0;
}

/* Polls until online:n1 is exactly want; returns the ms it took. */
static int64_t wait_online_is(const char *const *want, size_t n, int timeout_ms)
{
    int64_t t0 = fp_time_mono_ms();

    while (!online_is(want, n, false)) {
        if (fp_time_mono_ms() - t0 >= timeout_ms) {
            online_is(want, n, true);
            fail_msg("%s not the expected %zu users after %d ms", ONLINE, n, timeout_ms);
        }
        ft_sleep_ms(10);
    }
    return fp_time_mono_ms() - t0;
}

/* True when online:n1 is empty within timeout_ms. */
static bool online_empty_within(int timeout_ms)
{
    int64_t end = fp_time_mono_ms() + timeout_ms;

    while (redis_int("EXISTS %s", ONLINE) != 0) {
        if (fp_time_mono_ms() >= end)
            return false;
        ft_sleep_ms(10);
    }
    return true;
}

/* Waits until the plugin's Redis link is up: node:n1 written. */
static void wait_plugin_linked(void)
{
    int64_t end = fp_time_mono_ms() + 3000;

    while (redis_int("EXISTS node:n1") != 1) {
        if (fp_time_mono_ms() >= end)
            fail_msg("the plugin wrote no heartbeat within 3 s");
        ft_sleep_ms(10);
    }
}

/*
 * Barrier: the plugin handles connects and disconnects in order, and the
 * Redis thread writes the changes in order. Once a marker user connected
 * after some event shows up in online:n1, that event's write (if any) has
 * been made. The marker leaves again before returning.
 */
static void presence_barrier(void)
{
    char *tok = ft_plugin_env_token_now(&env, "marker", FP_ROLE_USER);
    ft_mqtt m;

    assert_int_equal(ft_mqtt_connect(&m, env.mosq.port, "marker-1", "marker", tok, 4, 3000), 0);
    wait_online("marker", true, 2000);
    ft_mqtt_close(&m);
    wait_online("marker", false, 2000);
    free(tok);
}

/* ------------------------------------------------------------ mqtt */

/* Connects a session of user (a fresh token each time). */
static void connect_user(ft_mqtt *c, const char *client_id, const char *user)
{
    char *tok = ft_plugin_env_token_now(&env, user, FP_ROLE_USER);

    assert_int_equal(ft_mqtt_connect(c, env.mosq.port, client_id, user, tok, 4, 3000), 0);
    free(tok);
}

/* ------------------------------------------------------------ fixtures */

/* One Redis + broker for the whole file: under ASan each start and stop
 * of the pair costs seconds. Tests use distinct users. */
static int group_setup(void **state)
{
    (void)state;
    rc = NULL;
    return ft_plugin_env_start(&env, "n1", NULL);
}

/* A failed stop (e.g. a sanitizer report in the broker's log) is counted
 * by the harness and fails the run through ft_harness_exit(). */
static int group_teardown(void **state)
{
    (void)state;
    return ft_plugin_env_stop(&env);
}

/* Each test starts with both servers up, the plugin linked to Redis and
 * nobody online, whatever an earlier failed test left behind. */
static int setup(void **state)
{
    (void)state;
    if (!ft_server_running(&env.redis))
        assert_int_equal(ft_server_restart(&env.redis), 0);
    if (!ft_server_running(&env.mosq))
        assert_int_equal(ft_server_restart(&env.mosq), 0);
    redis_open();
    wait_plugin_linked();
    if (!online_empty_within(2000)) {
        /* A failed test left sessions behind: start the broker afresh. */
        print_message("setup: %s not empty, restarting the broker\n", ONLINE);
        assert_int_equal(ft_server_restart(&env.mosq), 0);
        wait_plugin_linked();
        wait_online_is(NULL, 0, 2000);
    }
    return 0;
}

/* After each test: the broker is alive (ASan and UBSan abort it on an
 * error) and has logged no sanitizer report. */
static int teardown(void **state)
{
    (void)state;
    if (rc != NULL)
        redisFree(rc);
    rc = NULL;
    assert_true(ft_server_running(&env.mosq));
    assert_false(ft_plugin_env_sanitizer_report(&env));
    return 0;
}

/* ------------------------------------------------------------ tests */

/*
 * One user, two sessions: in the set within 1 s of the first connect,
 * still in (once) with two and with one, out within 1 s of the last close.
 */
static void test_presence_follows_sessions(void **state)
{
    ft_mqtt a1, a2;
    int64_t ms;

    (void)state;
    connect_user(&a1, "alice-1", "alice");
    ms = wait_online("alice", true, 1000);
    print_message("presence: alice in %s %lld ms after CONNACK\n", ONLINE, (long long)ms);
    assert_int_equal(redis_int("SCARD %s", ONLINE), 1);

    connect_user(&a2, "alice-2", "alice");
    presence_barrier();
    assert_true(is_online("alice"));
    assert_int_equal(redis_int("SCARD %s", ONLINE), 1);

    ft_mqtt_close(&a1);
    presence_barrier();
    assert_true(is_online("alice"));
    assert_int_equal(redis_int("SCARD %s", ONLINE), 1);

    ft_mqtt_close(&a2);
    ms = wait_online("alice", false, 1000);
    print_message("presence: alice out of %s %lld ms after the last close\n", ONLINE,
                  (long long)ms);
    assert_int_equal(redis_int("EXISTS %s", ONLINE), 0);
}

/*
 * A new connection takes a session over by its client id, over TCP (the
 * old connection's disconnect runs inside the take-over): the user never
 * leaves online:n1, not even for a moment. Redis' MONITOR sees no SREM of
 * the user up to the barrier's own SREM.
 */
static void test_presence_takeover_steady(void **state)
{
    ft_mqtt e1, e2;
    redisContext *mon;
    redisReply *r;
    void *reply;
    bool srem = false, end = false;

    (void)state;
    connect_user(&e1, "erin-1", "erin");
    wait_online("erin", true, 1000);
    mon = ft_redis_connect(env.redis.port);
    r = ft_redis_cmd(mon, "MONITOR");
    freeReplyObject(r);
    connect_user(&e2, "erin-1", "erin"); /* takes erin-1 over */
    presence_barrier();
    while (!end) {
        reply = NULL;
        if (redisGetReply(mon, &reply) != REDIS_OK)
            fail_msg("MONITOR: %s", mon->errstr);
        r = reply;
        if (r->type == REDIS_REPLY_STATUS) {
            srem = srem || strstr(r->str, "\"SREM\" \"" ONLINE "\" \"erin\"") != NULL;
            end = strstr(r->str, "\"SREM\" \"" ONLINE "\" \"marker\"") != NULL;
        }
        freeReplyObject(r);
    }
    redisFree(mon);
    if (srem)
        fail_msg("erin left %s for a moment during the take-over", ONLINE);
    assert_true(is_online("erin"));
    ft_mqtt_close(&e1);
    ft_mqtt_close(&e2);
    wait_online("erin", false, 1000);
}

/*
 * A client process dies (SIGKILL: no DISCONNECT, the kernel closes the
 * socket): its user leaves online:n1 within 2 s; others stay.
 */
/* A service connection (the bridge) is not a user: never in presence. */
static void test_presence_ignores_services(void **state)
{
    char *tok = ft_plugin_env_token_now(&env, "bridge-n1", FP_ROLE_SERVICE);
    ft_mqtt svc;

    (void)state;
    assert_int_equal(ft_mqtt_connect(&svc, env.mosq.port, "feed-bridge-n1", "bridge-n1", tok, 4,
                                     3000),
                     0);
    presence_barrier(); /* everything before this has reached Redis */
    assert_false(is_online("bridge-n1"));
    ft_mqtt_close(&svc);
    free(tok);
}

static void test_presence_killed_client_leaves(void **state)
{
    const char *only_bob[] = {"bob"};
    char *tok = ft_plugin_env_token_now(&env, "dave", FP_ROLE_USER);
    ft_mqtt bob, child;
    pid_t pid;
    int status, i;
    int64_t t0, ms;

    (void)state;
    connect_user(&bob, "bob-1", "bob");
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The child: connect, then idle until killed (or 30 s). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (ft_mqtt_connect(&child, env.mosq.port, "dave-1", "dave", tok, 4, 3000) != 0)
            _exit(1);
        for (i = 0; i < 300; i++)
            ft_sleep_ms(100);
        _exit(0);
    }
    free(tok);
    t0 = fp_time_mono_ms();
    while (!is_online("dave") && fp_time_mono_ms() - t0 < 3000 && waitpid(pid, &status, WNOHANG) == 0)
        ft_sleep_ms(5);
    if (!is_online("dave")) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("the child's session of dave never showed up in %s", ONLINE);
    }
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    t0 = fp_time_mono_ms();
    ms = wait_online("dave", false, 2000);
    print_message("presence: dave out %lld ms after his process was killed\n", (long long)ms);
    assert_true(fp_time_mono_ms() - t0 <= 2000);
    wait_online_is(only_bob, 1, 1000);
    ft_mqtt_pump(&bob, 50);
    assert_false(bob.disconnected);
    ft_mqtt_close(&bob);
}

/*
 * A client whose socket is shut down under it (no DISCONNECT packet):
 * the broker sees the close and the user leaves online:n1 within 2 s.
 */
static void test_presence_dropped_socket_leaves(void **state)
{
    ft_mqtt eve;
    int fd;
    int64_t ms;

    (void)state;
    connect_user(&eve, "eve-1", "eve");
    wait_online("eve", true, 1000);
    fd = mosquitto_socket(eve.m);
    assert_true(fd >= 0);
    assert_int_equal(shutdown(fd, SHUT_RDWR), 0);
    ms = wait_online("eve", false, 2000);
    print_message("presence: eve out %lld ms after her socket was shut down\n", (long long)ms);
    ft_mqtt_close(&eve);
}

/*
 * node:n1 is a heartbeat with a TTL of 3 x heartbeat_interval (the env
 * uses 1 s) that is refreshed, and nodes contains n1.
 */
static void test_presence_node_heartbeat(void **state)
{
    long long ttl, pttl, last, now_s;
    int64_t end;
    bool refreshed = false;
    redisReply *r;

    (void)state;
    ttl = redis_int("TTL node:n1");
    assert_true(ttl >= 1 && ttl <= 3);
    assert_int_equal(redis_int("SISMEMBER nodes n1"), 1);

    /* The value is the time of the beat (unix seconds). */
    r = ft_redis_cmd(rc, "GET node:n1");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    now_s = (long long)time(NULL);
    assert_true(atoll(r->str) >= now_s - 3 && atoll(r->str) <= now_s);
    freeReplyObject(r);

    /* Refreshed: within 2 s the remaining lifetime goes up again. */
    last = redis_int("PTTL node:n1");
    end = fp_time_mono_ms() + 2000;
    while (!refreshed && fp_time_mono_ms() < end) {
        ft_sleep_ms(20);
        pttl = redis_int("PTTL node:n1");
        assert_true(pttl > 0 && pttl <= 3000);
        refreshed = pttl > last + 100;
        last = pttl;
    }
    assert_true(refreshed);
}

/*
 * The SigBlk mask (hex, from /proc/<pid>/task/<tid>/status) of the
 * broker's thread named name (its comm), into *mask. 0, or -1 when there
 * is no such thread or its status cannot be read.
 */
static int thread_sigblk(long pid, const char *name, unsigned long long *mask)
{
    char path[384], line[256];
    struct dirent *d;
    int found = -1;
    FILE *f;
    DIR *dir;

    snprintf(path, sizeof(path), "/proc/%ld/task", pid);
    dir = opendir(path);
    if (dir == NULL)
        return -1;
    while (found != 0 && (d = readdir(dir)) != NULL) {
        if (d->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/task/%s/comm", pid, d->d_name);
        f = fopen(path, "r");
        if (f == NULL)
            continue;
        line[0] = '\0';
        if (fgets(line, sizeof(line), f) == NULL)
            line[0] = '\0';
        fclose(f);
        line[strcspn(line, "\n")] = '\0';
        if (strcmp(line, name) != 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/task/%s/status", pid, d->d_name);
        f = fopen(path, "r");
        if (f == NULL)
            continue;
        while (fgets(line, sizeof(line), f) != NULL) {
            if (strncmp(line, "SigBlk:", 7) == 0) {
                *mask = strtoull(line + 7, NULL, 16);
                found = 0;
            }
        }
        fclose(f);
    }
    closedir(dir);
    return found;
}

#define SIGBIT(sig) (1ULL << ((sig)-1))

/*
 * The plugin's Redis thread (FA_REDIS_THREAD_NAME) has mosquitto's
 * signals blocked, so they are left to the broker's thread and never
 * interrupt a Redis connect; faults stay deliverable. (mosquitto blocks
 * them in its own thread while it waits for events, so before, a SIGHUP
 * or SIGTERM most often landed on the Redis thread.)
 */
static void test_presence_thread_signals(void **state)
{
    static const int blocked[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM};
    static const int open_[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
    unsigned long long redis_mask = 0;
    size_t i;

    (void)state;
    assert_int_equal(thread_sigblk(env.mosq.pid, "feed_auth-redis", &redis_mask), 0);
    for (i = 0; i < sizeof(blocked) / sizeof(blocked[0]); i++) {
        if ((redis_mask & SIGBIT(blocked[i])) == 0)
            fail_msg("signal %d is not blocked in the Redis thread (SigBlk %llx)", blocked[i],
                     redis_mask);
    }
    for (i = 0; i < sizeof(open_) / sizeof(open_[0]); i++) {
        if ((redis_mask & SIGBIT(open_[i])) != 0)
            fail_msg("signal %d is blocked in the Redis thread (SigBlk %llx)", open_[i],
                     redis_mask);
    }
}

/*
 * Presence changed behind the plugin's back is put right at its next
 * heartbeat (1 s here), with a warning each time: online:n1 emptied (as a
 * second broker started by mistake with this node id does at its start),
 * then a ghost added by hand. Left alone, routing would miss alice and bob
 * on this node until the plugin's next reconnect.
 */
static void test_presence_repaired(void **state)
{
    const char *both[] = {"alice", "bob"};
    ft_mqtt a, b;
    long from;
    int64_t ms;

    (void)state;
    connect_user(&a, "alice-1", "alice");
    connect_user(&b, "bob-1", "bob");
    wait_online_is(both, 2, 1000);

    from = ft_plugin_env_log_size(&env);
    assert_int_equal(redis_int("DEL %s", ONLINE), 1);
    ms = wait_online_is(both, 2, 3000);
    print_message("presence: emptied by hand, whole again %lld ms later\n", (long long)ms);
    assert_true(
        ft_plugin_env_log_wait(&env, from, "is another broker running with node id n1", 1000));

    from = ft_plugin_env_log_size(&env);
    assert_int_equal(redis_int("SADD %s ghost", ONLINE), 1);
    ms = wait_online_is(both, 2, 3000);
    print_message("presence: ghost added by hand, gone %lld ms later\n", (long long)ms);
    assert_true(ft_plugin_env_log_wait(&env, from, "online:n1 holds 3 users", 1000));

    ft_mqtt_close(&a);
    ft_mqtt_close(&b);
    wait_online_is(NULL, 0, 1000);
}

/*
 * Leftovers in online:n1 (a ghost nobody is connected as) are gone after
 * the broker restarts, and the users who connect again are in the set.
 */
static void test_presence_stale_cleared_on_restart(void **state)
{
    const char *only_alice[] = {"alice"};
    ft_mqtt a;

    (void)state;
    connect_user(&a, "alice-1", "alice");
    wait_online("alice", true, 1000);
    assert_int_equal(redis_int("SADD %s ghost", ONLINE), 1);

    assert_int_equal(ft_server_restart(&env.mosq), 0);
    assert_true(ft_mqtt_wait_closed(&a, 3000) >= 0);
    ft_mqtt_close(&a);
    wait_plugin_linked();
    wait_online_is(NULL, 0, 2000);

    connect_user(&a, "alice-1", "alice");
    wait_online_is(only_alice, 1, 1000);
    ft_mqtt_close(&a);
    wait_online_is(NULL, 0, 1000);
}

/*
 * The broker crashes (SIGKILL: no clean withdrawal), leaving alice and a
 * ghost in online:n1. The restarted broker's plugin clears both before
 * anyone connects, then tracks the users who come back.
 */
static void test_presence_stale_cleared_after_crash(void **state)
{
    const char *stale[] = {"alice", "ghost"}, *only_alice[] = {"alice"};
    ft_mqtt a;
    int64_t ms;

    (void)state;
    connect_user(&a, "alice-1", "alice");
    wait_online("alice", true, 1000);

    assert_int_equal(ft_server_kill(&env.mosq), 0);
    /* Added once the broker is dead: a live one puts its set right at
     * each heartbeat (test_presence_repaired). */
    assert_int_equal(redis_int("SADD %s ghost", ONLINE), 1);
    assert_true(ft_mqtt_wait_closed(&a, 3000) >= 0);
    ft_mqtt_close(&a);
    assert_true(online_is(stale, 2, true)); /* nobody cleaned up */

    assert_int_equal(ft_server_restart(&env.mosq), 0);
    ms = wait_online_is(NULL, 0, 3000);
    print_message("presence: stale entries gone %lld ms after the broker was up\n", (long long)ms);
    connect_user(&a, "alice-1", "alice");
    wait_online_is(only_alice, 1, 1000);
    ft_mqtt_close(&a);
}

/*
 * Redis stops: a valid client still connects in under 100 ms, another
 * leaves. Redis restarts on the same port with the data it had saved
 * (alice, bob), and within 5 s online:n1 is exactly who is connected.
 */
static void test_presence_redis_outage(void **state)
{
    const char *before[] = {"alice", "bob"}, *after[] = {"alice", "carol"};
    ft_mqtt a, b, c;
    int64_t t0, connect_ms, ms;
    long log_from;

    (void)state;
    connect_user(&a, "alice-1", "alice");
    connect_user(&b, "bob-1", "bob");
    wait_online_is(before, 2, 1000);
    /* Like a Redis with persistence: it comes back with this set. */
    ft_redis_ok(rc, "SAVE");
    redisFree(rc);
    rc = NULL;

    log_from = ft_plugin_env_log_size(&env);
    assert_int_equal(ft_server_stop(&env.redis), 0);
    t0 = fp_time_mono_ms();
    connect_user(&c, "carol-1", "carol");
    connect_ms = fp_time_mono_ms() - t0;
    print_message("presence: connect with Redis down took %lld ms\n", (long long)connect_ms);
    assert_true(connect_ms < 100);
    ft_mqtt_close(&b);
    /* Once more after the plugin has logged the outage and is retrying. */
    assert_true(ft_plugin_env_log_wait(&env, log_from, "presence paused", 3000));
    t0 = fp_time_mono_ms();
    connect_user(&b, "bob-2", "bob");
    connect_ms = fp_time_mono_ms() - t0;
    print_message("presence: connect while the plugin retries took %lld ms\n",
                  (long long)connect_ms);
    assert_true(connect_ms < 100);
    ft_mqtt_close(&b);

    assert_int_equal(ft_server_restart(&env.redis), 0);
    t0 = fp_time_mono_ms();
    redis_open();
    ms = wait_online_is(after, 2, 5000);
    print_message("presence: exact %lld ms after Redis restarted\n", (long long)(ms));
    assert_true(fp_time_mono_ms() - t0 <= 5000);
    wait_plugin_linked();
    assert_int_equal(redis_int("SISMEMBER nodes n1"), 1);
    ft_mqtt_close(&a);
    ft_mqtt_close(&c);
    wait_online_is(NULL, 0, 1000);
}

/*
 * A clean stop withdraws the node: its presence sets, its heartbeat and
 * its entry in nodes are gone once the broker has exited. With Redis
 * down at the stop, the broker says so (routing drops the node only when
 * the heartbeat expires). The next test's setup starts both again.
 */
static void test_presence_withdrawn_on_stop(void **state)
{
    ft_mqtt a;
    long log_from;

    (void)state;
    connect_user(&a, "alice-1", "alice");
    wait_online("alice", true, 1000);
    assert_int_equal(redis_int("EXISTS node:n1"), 1);
    assert_int_equal(redis_int("SISMEMBER nodes n1"), 1);
    assert_int_equal(ft_server_stop(&env.mosq), 0);
    ft_mqtt_close(&a);
    assert_int_equal(redis_int("EXISTS node:n1 %s sessions:n1", ONLINE), 0);
    assert_int_equal(redis_int("SISMEMBER nodes n1"), 0);

    assert_int_equal(ft_server_restart(&env.mosq), 0);
    wait_plugin_linked();
    log_from = ft_plugin_env_log_size(&env);
    assert_int_equal(ft_server_stop(&env.redis), 0);
    assert_true(ft_plugin_env_log_wait(&env, log_from, "presence paused", 3000));
    assert_int_equal(ft_server_stop(&env.mosq), 0);
    assert_true(
        ft_plugin_env_log_wait(&env, log_from, "presence of node n1 not withdrawn (connect: ", 0));
    assert_true(ft_plugin_env_log_wait(&env, log_from,
                                       "routing drops the node when its heartbeat expires", 0));
    assert_int_equal(ft_server_restart(&env.redis), 0);
    assert_int_equal(ft_server_restart(&env.mosq), 0);
}

/* clang-format off */
FT_MAIN(ft_mqtt_run_group, group_setup, group_teardown,
        cmocka_unit_test_setup_teardown(test_presence_follows_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_ignores_services, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_takeover_steady, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_killed_client_leaves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_dropped_socket_leaves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_node_heartbeat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_thread_signals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_repaired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_stale_cleared_on_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_stale_cleared_after_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_redis_outage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_withdrawn_on_stop, setup, teardown))
/* clang-format on */
