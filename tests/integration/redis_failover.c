/*
 * Redis loses its primary (the acceptance). A primary, two
 * replicas and three Sentinels on loopback (tools/fp-server; the
 * Sentinels call the primary "feedpush", quorum 2, down after 3 s: 1 s
 * made them fail over twice on a loaded machine); a node
 * pair and a feed-gateway that find the primary through the Sentinels
 * (redis_sentinels, plugin_opt_redis_sentinels), the bridge with
 * redis_min_replicas 1.
 *
 * Under a steady stream of posts the primary is SIGKILLed. The Sentinels
 * promote a replica (the other one follows it, so WAIT still finds a
 * replica). Within 10 s of the kill, with no restart: the bridge writes
 * to the new primary, the gateway serves reads from it, and the plugin
 * has rewritten its presence there. Every post the backend published
 * (and RabbitMQ confirmed) is in every recipient's feed exactly once,
 * presence follows connects and disconnects exactly, live delivery goes
 * on to a user who stayed connected throughout, and a revocation made
 * after the failover kicks the user.
 *
 * Printed as "# ..." lines: the failover's timings and what WAIT costs
 * per event (the bridge's sync_us_sum / sync_count).
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <mosquitto.h>

#include "feed_stream.h"
#include "fp_sentinel.h"
#include "fp_time.h"
#include "ft_redis.h"
#include "gateway_env.h"
#include "ft_main.h"

#define N_REPLICAS 2
#define N_SENTINELS 3
#define STREAM_POSTS 900 /* under the feed length (1000): all stay */
#define STREAM_PACE_US 12000
#define KILL_AFTER 150
#define FOLLOW_LIMIT_MS 10000

static ft_gateway_env env;
static ft_server primary, replica[N_REPLICAS], sentinel[N_SENTINELS];
static char sentinels[128], extra[256];
static fp_sentinel *watcher;    /* test_watch_reopened's own client of the Sentinels */
#define WATCHER_TIMEOUT_MS 3000 /* its timeout */

/* The reply of a Sentinel command to sentinel i, or NULL. */
#define sq(i, ...) ft_redis_once(sentinel[i].port, __VA_ARGS__)

/* The port the Sentinel i names as the primary, or -1. */
static int sentinel_primary(int i)
{
    redisReply *r = sq(i, "SENTINEL get-master-addr-by-name feedpush");
    int port = -1;

    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        port = atoi(r->element[1]->str);
    freeReplyObject(r);
    return port;
}

/* The count of entries Sentinel i lists for "SENTINEL <what> feedpush". */
static int sentinel_count(int i, const char *what)
{
    redisReply *r = sq(i, "SENTINEL %s feedpush", what);
    int n = r != NULL && r->type == REDIS_REPLY_ARRAY ? (int)r->elements : -1;

    freeReplyObject(r);
    return n;
}

/* Every Sentinel knows both replicas and the two other Sentinels (else
 * no quorum could promote anyone). 0 or -1 after 20 s. */
static int sentinels_ready(void)
{
    int64_t end = fp_time_mono_ms() + 20000;
    int i, ok;

    do {
        ok = 0;
        for (i = 0; i < N_SENTINELS; i++)
            ok += sentinel_count(i, "replicas") == N_REPLICAS &&
                  sentinel_count(i, "sentinels") == N_SENTINELS - 1;
        if (ok == N_SENTINELS)
            return 0;
        ft_sleep_ms(100);
    } while (fp_time_mono_ms() < end);
    fprintf(stderr, "redis_failover: the Sentinels did not find each other and the replicas\n");
    return -1;
}

static int setup(void **state)
{
    ft_node_opts o = {0};
    int i, n = 0;

    (void)state;
    if (ft_server_start(&primary, "redis", NULL) != 0)
        return -1;
    for (i = 0; i < N_REPLICAS; i++) {
        if (ft_server_start_replica(&replica[i], &primary) != 0)
            return -1;
    }
    for (i = 0; i < N_SENTINELS; i++) {
        if (ft_server_start_sentinel(&sentinel[i], &primary) != 0)
            return -1;
        n += snprintf(sentinels + n, sizeof(sentinels) - (size_t)n, "%s127.0.0.1:%d",
                      i > 0 ? "," : "", sentinel[i].port);
    }
    if (sentinels_ready() != 0)
        return -1;
    snprintf(extra, sizeof(extra),
             "plugin_opt_redis_sentinels %s\nplugin_opt_redis_master_name feedpush\n", sentinels);
    /* The bridge and the gateway inherit these. */
    setenv("FEEDPUSH_REDIS_SENTINELS", sentinels, 1);
    setenv("FEEDPUSH_REDIS_MASTER_NAME", "feedpush", 1);
    setenv("FEEDPUSH_REDIS_MIN_REPLICAS", "1", 1);
    o.redis = &primary;
    o.extra = extra;
    ft_stream_use(&env.b);
    return ft_gateway_env_start_opts(&env, 0, &o);
}

/* The env stops the Redis it holds (the primary of the moment); the
 * others are stopped here (the env's again: a no-op). */
static int teardown(void **state)
{
    int rc = ft_gateway_env_stop(&env);

    (void)state;
    if (ft_servers_stop(replica, N_REPLICAS) != 0 || ft_servers_stop(&primary, 1) != 0)
        rc = -1;
    return ft_servers_stop(sentinel, N_SENTINELS) != 0 ? -1 : rc;
}

static int cleanup(void **state)
{
    int i;

    (void)state;
    ft_stream_cleanup();
    for (i = 0; i < N_SENTINELS; i++) /* a test that failed with them stopped */
        kill((pid_t)sentinel[i].pid, SIGCONT);
    fp_sentinel_free(watcher);
    watcher = NULL;
    return 0;
}

/* Milliseconds from `since` until cond(arg) held, or -1 after limit_ms. */
static int64_t until(bool (*cond)(const void *), const void *arg, int64_t since, int limit_ms)
{
    while (!cond(arg)) {
        if (fp_time_mono_ms() - since > limit_ms)
            return -1;
        ft_sleep_ms(20);
    }
    return fp_time_mono_ms() - since;
}

static int old_port; /* the primary's before a failover */
static int new_port; /* the promoted replica's */
static long bridge_log_from, plugin_log_from; /* their sizes before the failover */

static void plugin_log(char *path, size_t size)
{
    snprintf(path, size, "%s/mosquitto/mosquitto.log", env.b.p.mosq.dir);
}

/* Records the primary and where the daemons' logs end, before a
 * failover: what they log about the new primary comes after. */
static void before_failover(void)
{
    char log[PATH_MAX + 32];

    old_port = env.b.p.redis.port;
    plugin_log(log, sizeof(log));
    bridge_log_from = ft_log_size(env.b.node[0].bridge_log);
    plugin_log_from = ft_log_size(log);
}

static bool promoted(const void *arg)
{
    int p = sentinel_primary(0);

    (void)arg;
    if (p <= 0 || p == old_port)
        return false;
    new_port = p;
    return true;
}

static bool bridge_follows(const void *arg)
{
    char needle[64];

    (void)arg;
    snprintf(needle, sizeof(needle), "redis 127.0.0.1:%d: connected again", new_port);
    return ft_log_count(env.b.node[0].bridge_log, bridge_log_from, needle) > 0;
}

/* The plugin says it reached the new primary (where it rewrites its
 * heartbeat and presence), and both are there. */
static bool plugin_follows(const void *arg)
{
    char needle[64], log[PATH_MAX + 32];

    snprintf(needle, sizeof(needle), "Redis 127.0.0.1:%d reachable again", new_port);
    plugin_log(log, sizeof(log));
    return ft_log_count(log, plugin_log_from, needle) > 0 &&
           ft_redis_once_int(new_port, "EXISTS node:n1") == 1 &&
           ft_redis_once_int(new_port, "SISMEMBER online:n1 %s", (const char *)arg) == 1;
}

static bool gateway_serves(const void *arg)
{
    char *tok = ft_gateway_token(&env, (const char *)arg);
    long status = ft_http(&env, "GET", "/api/v1/feed", tok, NULL, NULL);

    free(tok);
    return status == 200;
}

/* online:n1 is exactly {a} (b NULL) or {a, b}. */
static bool online_is(const char *a, const char *b)
{
    redisReply *r = ft_redis_once(new_port, "SMEMBERS online:n1");
    bool ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == (b != NULL ? 2u : 1u);
    size_t i;

    for (i = 0; ok && i < r->elements; i++)
        ok =
            strcmp(r->element[i]->str, a) == 0 || (b != NULL && strcmp(r->element[i]->str, b) == 0);
    freeReplyObject(r);
    return ok;
}

/* Waits (5 s at most) for online:n1 to be exactly {a[, b]}. */
static void assert_online(const char *a, const char *b)
{
    int i;

    for (i = 0; i < 250 && !online_is(a, b); i++)
        ft_sleep_ms(20);
    if (!online_is(a, b))
        fail_msg("online:n1 is not exactly {%s%s%s}", a, b != NULL ? ", " : "", b != NULL ? b : "");
}

/* Every Sentinel names env's Redis as the primary, and it has a replica
 * in sync (else SENTINEL FAILOVER finds no replica to promote, and WAIT
 * none to wait for). */
static bool settled(const void *arg)
{
    redisReply *r;
    bool ok;
    int i;

    (void)arg;
    for (i = 0; i < N_SENTINELS; i++) {
        if (sentinel_primary(i) != env.b.p.redis.port)
            return false;
    }
    r = ft_redis_once(env.b.p.redis.port, "INFO replication");
    ok = r != NULL && r->type == REDIS_REPLY_STRING && strstr(r->str, "state=online") != NULL;
    freeReplyObject(r);
    return ok;
}

/* Swaps the promoted server in as the env's Redis (what the helpers
 * query and the teardown stops with the env). */
static void adopt_new_primary(void)
{
    int i;

    for (i = 0; i < N_REPLICAS; i++) {
        if (replica[i].port == new_port)
            env.b.p.redis = replica[i];
    }
    if (primary.port == new_port)
        env.b.p.redis = primary;
    assert_int_equal(env.b.p.redis.port, new_port);
}

/*
 * Waits for the failover that began at t0 (the Sentinels name another
 * primary), adopts the new primary, and asserts that the bridge, the
 * plugin (with online user uid) and the gateway are on it within
 * FOLLOW_LIMIT_MS of t0. Prints the timings after what.
 */
static void follow_failover(const char *what, int64_t t0, const char *uid)
{
    int64_t ms_promoted, ms_bridge, ms_plugin, ms_gateway;

    ms_promoted = until(promoted, NULL, t0, FOLLOW_LIMIT_MS);
    assert_true(ms_promoted >= 0);
    adopt_new_primary();
    ms_bridge = until(bridge_follows, NULL, t0, FOLLOW_LIMIT_MS);
    ms_plugin = until(plugin_follows, uid, t0, FOLLOW_LIMIT_MS);
    ms_gateway = until(gateway_serves, "reader", t0, FOLLOW_LIMIT_MS);
    printf("# %s: a replica promoted after %lld ms; the bridge on it after %lld ms, the plugin "
           "on it after %lld ms, the gateway serving after %lld ms\n",
           what, (long long)ms_promoted, (long long)ms_bridge, (long long)ms_plugin,
           (long long)ms_gateway);
    assert_true(ms_bridge >= 0 && ms_plugin >= 0 && ms_gateway >= 0);
}

/* After a failover: the Sentinels agree on the new primary and it has a
 * replica in sync again (20 s at most). */
static void assert_settled(void)
{
    if (until(settled, NULL, fp_time_mono_ms(), 20000) < 0)
        fail_msg("the Sentinels do not agree on 127.0.0.1:%d with a replica in sync",
                 env.b.p.redis.port);
}

static void test_primary_killed(void **state)
{
    const char *t = "rf_";
    static ft_watcher w1, w2;
    static ft_stream s;
    int64_t kill_at;
    long long sync_us, syncs;
    pid_t bridge = env.b.node[0].bridge;
    ft_mqtt victim;
    char *tok, body[160];
    int from, status;

    (void)state;
    ft_stream_follow(t);
    ft_watcher_start(&w1, 1, t, "f1");
    ft_stream_start(&s, t, STREAM_POSTS, false, STREAM_PACE_US);
    ft_stream_wait(&s, KILL_AFTER);

    before_failover();
    kill_at = fp_time_mono_ms();
    assert_int_equal(ft_server_kill(&env.b.p.redis), 0);
    follow_failover("redis primary killed", kill_at, w1.uid);
    from = ft_stream_next(&s) + 1;
    assert_true(from < STREAM_POSTS - 50); /* the checks below have posts to look at */
    assert_settled();
    ft_feeds_report_recovery("redis primary killed", t, from);

    /* Presence is exact on the new primary: a connect and a disconnect. */
    ft_watcher_start(&w2, 1, t, "f2");
    assert_online(w1.uid, w2.uid);
    ft_watcher_stop(&w2);
    assert_online(w1.uid, NULL);

    ft_stream_join(&s);
    ft_feeds_settle(t, STREAM_POSTS, 0);
    ft_feeds_assert(t, STREAM_POSTS, 0);
    if (ft_watcher_wait(&w1, from, STREAM_POSTS, 10000) < 0)
        fail_msg("%s got %d of the %d posts published after the failover live", w1.uid,
                 ft_watcher_count(&w1, from, STREAM_POSTS), STREAM_POSTS - from);
    assert_int_equal(ft_watcher_connects(&w1), 1); /* never kicked nor dropped */
    ft_watcher_stop(&w1);
    assert_int_equal(env.b.node[0].bridge, bridge);
    assert_int_equal(waitpid(bridge, &status, WNOHANG), 0);

    /* A revocation made now reaches the plugin through the new primary. */
    tok = ft_plugin_env_token_now(&env.b.p, "rf_victim", FP_ROLE_USER);
    assert_int_equal(ft_mqtt_connect(&victim, env.b.p.mosq.port, NULL, "rf_victim", tok, 4, 5000),
                     0);
    free(tok);
    snprintf(body, sizeof(body),
             "{\"type\":\"user.revoked\",\"user_id\":\"rf_victim\",\"before\":%lld}",
             (long long)time(NULL) + 1);
    assert_int_equal(ft_node_publish(&env.b, "user.revoked", body), 0);
    if (ft_mqtt_wait_closed(&victim, 5000) < 0)
        fail_msg("rf_victim was not kicked after a revocation made after the failover");
    ft_mqtt_close(&victim);

    sync_us = ft_node_stat(&env.b, 1, "sync_us_sum");
    syncs = ft_node_stat(&env.b, 1, "sync_count");
    assert_true(syncs > 0);
    printf("# redis_min_replicas 1: WAIT took %.0f us per event on average (%lld events)\n",
           (double)sync_us / (double)syncs, syncs);
}

/* A connection of the test's own to Sentinel 0, subscribed to its
 * +switch-master and to the events that abort a failover
 * (-failover-abort-*), with FOLLOW_LIMIT_MS as its read timeout. */
static redisContext *switch_listener(void)
{
    struct timeval tv = {FOLLOW_LIMIT_MS / 1000, 0};
    redisContext *c = ft_redis_connect(sentinel[0].port);
    redisReply *r = ft_redis_cmd(c, "PSUBSCRIBE +switch-master -failover-abort-*");
    void *second = NULL;

    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    assert_int_equal(redisGetReply(c, &second), REDIS_OK); /* the second pattern's */
    freeReplyObject(second);
    assert_int_equal(redisSetTimeout(c, tv), REDIS_OK);
    return c;
}

/* Copies the next event on c (switch_listener's) into event; fails the
 * test after FOLLOW_LIMIT_MS without one. */
static void next_event(redisContext *c, char *event, size_t size)
{
    void *reply = NULL;
    redisReply *r;

    if (redisGetReply(c, &reply) != REDIS_OK)
        fail_msg("no +switch-master from Sentinel 0: %s", c->errstr);
    r = reply;
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 4); /* pmessage, pattern, channel, text */
    assert_string_equal(r->element[0]->str, "pmessage");
    snprintf(event, size, "%s", r->element[2]->str);
    freeReplyObject(r);
}

/* Asks Sentinel 0 for a failover: the time of the request it took. A
 * -NOGOODSLAVE or -INPROG (Sentinel still ending an aborted attempt) is
 * asked again for 10 s; any other error fails the test. */
static int64_t ask_failover(void)
{
    int64_t end = fp_time_mono_ms() + 10000, t0;
    redisReply *r;
    bool again;

    for (;;) {
        t0 = fp_time_mono_ms();
        r = sq(0, "SENTINEL FAILOVER feedpush");
        assert_non_null(r);
        if (r->type != REDIS_REPLY_ERROR) {
            freeReplyObject(r);
            return t0;
        }
        again = strncmp(r->str, "NOGOODSLAVE", 11) == 0 || strncmp(r->str, "INPROG", 6) == 0;
        if (!again || fp_time_mono_ms() > end)
            fail_msg("SENTINEL FAILOVER: %s", r->str);
        freeReplyObject(r);
        ft_sleep_ms(200);
    }
}

/*
 * SENTINEL FAILOVER on Sentinel 0 (before_failover first), then waits
 * for its +switch-master, so the switch has been published when this
 * returns. Returns the time Sentinel was asked the attempt that switched
 * (the request it took, after any -NOGOODSLAVE or -INPROG).
 *
 * Sentinel aborts an attempt whose promoted replica it does not see as a
 * primary within failover-timeout (-failover-abort-slave-timeout: twice
 * in full runs beside other builds). That is Sentinel's own timing on a
 * loaded machine, not what this file tests (how feedpush follows a
 * switch), so an aborted attempt is printed and asked again, 3 attempts
 * at most.
 */
static int64_t failover(void)
{
    redisContext *c = switch_listener();
    char event[64];
    int64_t t0;
    int attempt;

    for (attempt = 1;; attempt++) {
        before_failover();
        t0 = ask_failover();
        next_event(c, event, sizeof(event));
        if (strcmp(event, "+switch-master") == 0)
            break;
        printf("# failover attempt %d: Sentinel 0 published %s after %lld ms\n", attempt, event,
               (long long)(fp_time_mono_ms() - t0));
        if (attempt == 3)
            fail_msg("Sentinel 0 aborted 3 failovers in a row (last: %s)", event);
    }
    redisFree(c);
    return t0;
}

/*
 * A failover while the old primary lives on (SENTINEL FAILOVER: it
 * becomes a replica, so nothing breaks a connection): the Sentinels'
 * +switch-master (or a READONLY reply) moves the bridge, the plugin and
 * the gateway to the new primary. Feeds exact, live delivery goes on.
 * The whole stream (10.8 s): with half of it, a follow that took over
 * 3.9 s (2.5 s seen) left fewer than 50 posts to check live delivery on.
 */
static void test_switch_master(void **state)
{
    const char *t = "sw_";
    static ft_watcher w1;
    static ft_stream s;
    int64_t t0;
    int from;

    (void)state;
    assert_settled();
    ft_stream_follow(t);
    ft_watcher_start(&w1, 1, t, "f1");
    ft_stream_start(&s, t, STREAM_POSTS, false, STREAM_PACE_US);
    ft_stream_wait(&s, KILL_AFTER / 2);

    t0 = failover();
    follow_failover("SENTINEL FAILOVER (the old primary lives on)", t0, w1.uid);
    from = ft_stream_next(&s) + 1;
    assert_true(from < STREAM_POSTS - 50);
    assert_settled();
    ft_feeds_report_recovery("SENTINEL FAILOVER", t, from);

    ft_stream_join(&s);
    ft_feeds_settle(t, STREAM_POSTS, 0);
    ft_feeds_assert(t, STREAM_POSTS, 0);
    if (ft_watcher_wait(&w1, from, STREAM_POSTS, 10000) < 0)
        fail_msg("%s got %d of the %d posts published after the failover live", w1.uid,
                 ft_watcher_count(&w1, from, STREAM_POSTS), STREAM_POSTS - from);
    ft_watcher_stop(&w1);
}

/* Every Sentinel closes its subscribers (CLIENT KILL TYPE pubsub), as a
 * Sentinel restart or a cut connection would. Returns how many in all. */
static long long kill_watches(void)
{
    long long n = 0;
    redisReply *r;
    int i;

    for (i = 0; i < N_SENTINELS; i++) {
        r = sq(i, "CLIENT KILL TYPE pubsub");
        assert_non_null(r);
        if (r->type != REDIS_REPLY_INTEGER)
            fail_msg("CLIENT KILL TYPE pubsub on Sentinel %d: %s", i,
                     r->type == REDIS_REPLY_ERROR ? r->str : "not a number");
        n += r->integer;
        freeReplyObject(r);
    }
    return n;
}

#define WATCH_PORTS_MAX 256

static bool is_sentinel_port(int port)
{
    int i;

    for (i = 0; i < N_SENTINELS; i++) {
        if (sentinel[i].port == port)
            return true;
    }
    return false;
}

/* The client-side ports of every Sentinel's subscribers (CLIENT LIST TYPE
 * pubsub): the watches. Returns how many (at most max). */
static size_t watch_ports(int *ports, size_t max)
{
    const char *p;
    redisReply *r;
    size_t n = 0;
    int i;

    for (i = 0; i < N_SENTINELS; i++) {
        r = sq(i, "CLIENT LIST TYPE pubsub");
        assert_non_null(r);
        if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS)
            fail_msg("CLIENT LIST TYPE pubsub on Sentinel %d: %s", i,
                     r->type == REDIS_REPLY_ERROR ? r->str : "not a text");
        for (p = strstr(r->str, " addr=127.0.0.1:"); p != NULL && n < max;
             p = strstr(p + 1, " addr=127.0.0.1:"))
            ports[n++] = atoi(p + strlen(" addr=127.0.0.1:"));
        freeReplyObject(r);
    }
    return n;
}

/* Whether process pid holds a TCP socket to a Sentinel whose local port
 * is in ports (/proc/<pid>/fd for its sockets' inodes, /proc/net/tcp for
 * their ports). */
static bool pid_holds_port(pid_t pid, const int *ports, size_t n)
{
    char line[512], path[64], fd_path[sizeof(path) + 300], link[64];
    unsigned long inode, *mine = NULL, *grown;
    size_t n_mine = 0, i, j;
    unsigned int lport, rport;
    struct dirent *e;
    bool found = false;
    ssize_t len;
    FILE *f;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    d = opendir(path);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        snprintf(fd_path, sizeof(fd_path), "%s/%s", path, e->d_name);
        len = readlink(fd_path, link, sizeof(link) - 1);
        if (len <= 0)
            continue;
        link[len] = '\0';
        if (sscanf(link, "socket:[%lu]", &inode) != 1)
            continue;
        grown = realloc(mine, (n_mine + 1) * sizeof(*mine));
        assert_non_null(grown);
        mine = grown;
        mine[n_mine++] = inode;
    }
    closedir(d);
    f = fopen("/proc/net/tcp", "r");
    assert_non_null(f);
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, " %*d: %*x:%x %*x:%x %*x %*x:%*x %*x:%*x %*x %*u %*u %lu", &lport, &rport,
                   &inode) != 3 ||
            !is_sentinel_port((int)rport))
            continue;
        for (i = 0; i < n_mine && !found; i++) {
            for (j = 0; j < n && mine[i] == inode && !found; j++)
                found = (int)lport == ports[j];
        }
    }
    fclose(f);
    free(mine);
    return found;
}

/* The bridge and the broker (its plugin) both hold a watch. */
static bool daemons_watch(const void *arg)
{
    int ports[WATCH_PORTS_MAX];
    size_t n = watch_ports(ports, WATCH_PORTS_MAX);

    (void)arg;
    return pid_holds_port(env.b.node[0].bridge, ports, n) &&
           pid_holds_port((pid_t)env.b.p.mosq.pid, ports, n);
}

/* Sends sig to every Sentinel. */
static void sentinels_signal(int sig)
{
    int i;

    for (i = 0; i < N_SENTINELS; i++)
        assert_int_equal(kill((pid_t)sentinel[i].pid, sig), 0);
}

static bool reports_switch(const void *arg)
{
    (void)arg;
    return fp_sentinel_switched(watcher) == 1;
}

/* Asks fp_sentinel_switched (which must say 0) until the watch is back. */
static bool watching_again(const void *arg)
{
    (void)arg;
    assert_int_equal(fp_sentinel_switched(watcher), 0);
    return fp_sentinel_watching(watcher);
}

/*
 * The watch on +switch-master is lost (every Sentinel closes its
 * subscribers) and must come back by itself, without a Redis failure:
 * - the bridge's and the plugin's: each holds a subscribed connection to
 *   a Sentinel again (their processes' sockets against the Sentinels'
 *   CLIENT LIST);
 * - the library's (the test's own fp_sentinel): a switch made while it
 *   was gone is reported (the Sentinel asked again names another
 *   primary), and once it is back a switch is reported as well.
 */
static void test_watch_reopened(void **state)
{
    const char *t = "wr_";
    static ft_watcher w1;
    char err[160];
    fp_host p;
    int64_t t0, t1, longest;

    (void)state;
    assert_settled();
    ft_stream_follow(t);
    ft_watcher_start(&w1, 1, t, "f1");
    assert_true(until(daemons_watch, NULL, fp_time_mono_ms(), 5000) >= 0);
    assert_int_equal(
        fp_sentinel_new(&watcher, sentinels, "feedpush", WATCHER_TIMEOUT_MS, err, sizeof(err)), 0);
    assert_int_equal(fp_sentinel_primary(watcher, &p), 0);
    assert_int_equal(p.port, env.b.p.redis.port);
    assert_true(fp_sentinel_watching(watcher));

    /* The daemons open theirs again; the test's is left closed, and a
     * switch is made. */
    assert_true(kill_watches() >= 3); /* the bridge's, the plugin's, the test's */
    if (until(daemons_watch, NULL, fp_time_mono_ms(), 5000) < 0)
        fail_msg("the bridge or the plugin did not open its Sentinel watch again");
    t0 = failover(); /* published: the test's watch cannot see it */
    if (until(reports_switch, NULL, fp_time_mono_ms(), 5000) < 0)
        fail_msg("a switch made while the watch was closed was not reported");
    follow_failover("SENTINEL FAILOVER (the watches closed before)", t0, w1.uid);
    assert_settled();

    /* The watch opened again carries the next +switch-master. */
    assert_int_equal(fp_sentinel_primary(watcher, &p), 0);
    assert_int_equal(p.port, env.b.p.redis.port);
    assert_true(kill_watches() >= 3);
    assert_true(until(watching_again, NULL, fp_time_mono_ms(), 5000) >= 0);
    t0 = failover();
    if (until(reports_switch, NULL, t0, FOLLOW_LIMIT_MS) < 0)
        fail_msg("the watch opened again did not report a switch");
    follow_failover("SENTINEL FAILOVER (the watches opened again)", t0, w1.uid);
    assert_settled();
    ft_watcher_stop(&w1);

    /* Every Sentinel stopped (connections accepted, never answered):
     * opening the watch again never holds the caller for the timeout.
     * Last: a Sentinel stopped for seconds enters TILT mode. */
    assert_int_equal(fp_sentinel_primary(watcher, &p), 0);
    assert_true(kill_watches() >= 3);
    sentinels_signal(SIGSTOP);
    longest = 0;
    t0 = fp_time_mono_ms();
    /* The first attempt starts within a second (fp_sentinel_primary's
     * watch was opened just before) and is given up after the timeout. */
    while (fp_time_mono_ms() - t0 < WATCHER_TIMEOUT_MS + 2000) {
        t1 = fp_time_mono_ms();
        assert_int_equal(fp_sentinel_switched(watcher), 0);
        if (fp_time_mono_ms() - t1 > longest)
            longest = fp_time_mono_ms() - t1;
        assert_false(fp_sentinel_watching(watcher));
        ft_sleep_ms(10);
    }
    sentinels_signal(SIGCONT);
    printf("# every Sentinel stopped: the longest fp_sentinel_switched took %lld ms (%s)\n",
           (long long)longest, fp_sentinel_errstr(watcher));
    if (longest >= WATCHER_TIMEOUT_MS / 3)
        fail_msg("fp_sentinel_switched blocked for %lld ms", (long long)longest);
    assert_non_null(strstr(fp_sentinel_errstr(watcher), "no answer within"));
    if (until(watching_again, NULL, fp_time_mono_ms(), 2 * WATCHER_TIMEOUT_MS) < 0)
        fail_msg("no watch once the Sentinels went on: %s", fp_sentinel_errstr(watcher));
    fp_sentinel_free(watcher);
    watcher = NULL;
}

/* clang-format off */
FT_MAIN(ft_mqtt_run_group, setup, teardown,
        cmocka_unit_test_teardown(test_primary_killed, cleanup),
        cmocka_unit_test_teardown(test_switch_master, cleanup),
        cmocka_unit_test_teardown(test_watch_reopened, cleanup))
/* clang-format on */
