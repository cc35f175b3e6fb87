/*
 * Scale-out across node pairs (the acceptance): three nodes n1..n3
 * (mosquitto + feed_auth.so + feed-bridge each) share one redis and one
 * RabbitMQ vhost (node_env). A post is delivered over MQTT only by the
 * node(s) where a recipient is connected:
 *
 *   1. B on n2 only, author A offline: B gets the post on feed/B within
 *      1 s; n2 delivers exactly one publish, n1 and n3 none; one
 *      feed.deliver message in all, none when n2's own bridge took the
 *      post (it delivers to its node directly).
 *   2. B on n1 and n3 at once (two client ids): both sessions get it; n1
 *      and n3 deliver one each, n2 none; two feed.deliver messages, one
 *      less when the bridge of n1 or n3 took the post.
 *   3. n2's mosquitto and bridge SIGKILLed while C is connected there:
 *      node:n2 expires within the heartbeat TTL (3 s) + a margin; a post
 *      for C then produces no feed.deliver message (the counters of the
 *      surviving bridges and the depth of feed.deliver.n2 stand still),
 *      and routing removed n2 from `nodes` and deleted the stale
 *      online:n2. C reconnects to n1 and gets the next posts live. n2
 *      restarted on the same ports rejoins by itself (node:n2, n2 in
 *      nodes) and a user connecting there gets posts again.
 *
 * Per-node counters are the bridges' stats:bridge:n<i> hashes, flushed
 * every second: comparisons wait until the counters stood still for
 * 1.2 s. Latencies are printed as "# ..." lines. Each test has its own
 * user ids (s<k>_...).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <mosquitto.h>

#include "node_env.h"
#include "ft_main.h"

#define N_NODES 3
#define LIVE_MS 1000  /* the limit: post published -> on the client */
#define FLUSH_MS 1200 /* longer than the bridges' 1 s counter period */
#define HEARTBEAT_TTL_MS 3000
#define EXPIRY_MARGIN_MS 2000
#define WAIT_MS 5000 /* upper bound for things that have no limit of their own */

static ft_node_env env;

static int setup(void **state)
{
    (void)state;
    return ft_node_env_start(&env, N_NODES);
}

/* Prints each bridge's stage timings (event received -> acked, delivery
 * received -> acked) from its counters: where the latency goes. */
static void print_stage_times(void)
{
    long long sum, count, max;
    int i, stage;

    for (i = 1; i <= N_NODES; i++) {
        for (stage = 1; stage <= 2; stage++) {
            char f_sum[32], f_count[32], f_max[32];

            snprintf(f_sum, sizeof(f_sum), "stage%d_us_sum", stage);
            snprintf(f_count, sizeof(f_count), "stage%d_count", stage);
            snprintf(f_max, sizeof(f_max), "stage%d_us_max", stage);
            sum = ft_node_stat(&env, i, f_sum);
            count = ft_node_stat(&env, i, f_count);
            max = ft_node_stat(&env, i, f_max);
            if (count > 0)
                printf("# bridge n%d stage %d: %lld messages, mean %lld us, max %lld us\n", i,
                       stage, count, sum / count, max);
        }
    }
}

static int teardown(void **state)
{
    (void)state;
    print_stage_times();
    return ft_node_env_stop(&env);
}

/* ------------------------------------------------------------ events */

/* Publishes an event built from fmt (waits for RabbitMQ's confirm). */
#define event(...) assert_int_equal(ft_node_publishf(&env, __VA_ARGS__), 0)

/* follower follows followee; waits until Redis has it. */
static void follow(const char *follower, const char *followee)
{
    int i;

    event("follow.created",
          "{\"type\":\"follow.created\",\"follower_id\":\"%s\",\"followee_id\":\"%s\"}", follower,
          followee);
    for (i = 0; i < 250; i++) {
        if (ft_node_redis_int(&env, "SISMEMBER followers:%s %s", followee, follower) == 1)
            return;
        ft_sleep_ms(20);
    }
    fail_msg("follow %s -> %s not applied within 5 s", follower, followee);
}

/* Publishes a post (recipients: the author's followers). Returns the
 * monotonic time just before the publish. */
static int64_t post(const char *id, const char *author)
{
    int64_t t0 = fp_time_mono_ms();

    event("post.created",
          "{\"type\":\"post.created\",\"post\":{\"id\":\"%s\",\"author_id\":\"%s\","
          "\"text\":\"post %s\",\"created_at\":%lld}}",
          id, author, id, (long long)time(NULL) * 1000);
    return t0;
}

/* ------------------------------------------------------------ presence */

/* Waits until SISMEMBER online:n<node> uid answers want. */
static void wait_presence(int node, const char *uid, int want)
{
    int i;

    for (i = 0; i < 250; i++) {
        if (ft_node_redis_int(&env, "SISMEMBER online:n%d %s", node, uid) == want)
            return;
        ft_sleep_ms(20);
    }
    fail_msg("%s %s online:n%d after 5 s", uid, want ? "not in" : "still in", node);
}

/* Connects uid to node's broker with client id cid, subscribes to its feed
 * and waits until the plugin has it in online:n<node>. c must stay where
 * it is (the client's callbacks point at it). */
static void connect_user(ft_mqtt *c, int node, const char *uid, const char *cid)
{
    char *tok = ft_node_token(&env, uid);
    char topic[80];

    assert_int_equal(ft_mqtt_connect(c, ft_node_port(&env, node), cid, uid, tok, 4, 3000), 0);
    snprintf(topic, sizeof(topic), "feed/%s", uid);
    assert_int_equal(ft_mqtt_subscribe(c, topic, 3000), 1);
    free(tok);
    wait_presence(node, uid, 1);
}

/* ------------------------------------------------------------ delivery */

/*
 * Pumps every client (none waits for another) until client k has received
 * want[k] messages, for all k, or timeout_ms passed. at[k] gets the ms
 * from t0 at which client k got there (-1 if it did not).
 */
static void wait_all(ft_mqtt *const *cs, int n, const int *want, int64_t t0, int timeout_ms,
                     int64_t *at)
{
    int64_t end = fp_time_mono_ms() + timeout_ms;
    int k, done;

    for (k = 0; k < n; k++)
        at[k] = cs[k]->received >= want[k] ? fp_time_mono_ms() - t0 : -1;
    for (;;) {
        done = 0;
        for (k = 0; k < n; k++) {
            if (at[k] < 0 && !cs[k]->disconnected &&
                mosquitto_loop(cs[k]->m, 5, 1) != MOSQ_ERR_SUCCESS)
                cs[k]->disconnected = true;
            if (at[k] < 0 && cs[k]->received >= want[k])
                at[k] = fp_time_mono_ms() - t0;
            if (at[k] >= 0)
                done++;
        }
        if (done == n || fp_time_mono_ms() > end)
            break;
    }
}

/* Asserts that c's latest message is post id on feed/<uid>. */
static void assert_got_post(const ft_mqtt *c, const char *uid, const char *id)
{
    char topic[80], needle[96];

    snprintf(topic, sizeof(topic), "feed/%s", uid);
    snprintf(needle, sizeof(needle), "\"id\":\"%s\"", id);
    assert_string_equal(c->last_topic, topic);
    assert_non_null(strstr(c->last_payload, "\"type\":\"post.created\""));
    assert_non_null(strstr(c->last_payload, needle));
}

/*
 * Waits until each client cs[k] (user uids[k]) has received want[k]
 * messages, and asserts that each got there at most LIVE_MS after t0 and
 * that its last message is post id. what names the step in the report.
 */
static void assert_live_all(const char *what, ft_mqtt *const *cs, const char *const *uids,
                            const int *want, int n, const char *id, int64_t t0)
{
    int64_t at[N_NODES];
    int k;

    assert_true(n <= N_NODES);
    wait_all(cs, n, want, t0, WAIT_MS, at);
    for (k = 0; k < n; k++) {
        if (at[k] < 0)
            fail_msg("%s: %s never got post %s (%d of %d messages)", what, uids[k], id,
                     cs[k]->received, want[k]);
        printf("# %s: post %s reached %s %lld ms after the publish\n", what, id, uids[k],
               (long long)at[k]);
        if (at[k] > LIVE_MS)
            fail_msg("%s: post %s took %lld ms to reach %s (limit %d ms)", what, id,
                     (long long)at[k], uids[k], LIVE_MS);
        assert_got_post(cs[k], uids[k], id);
    }
}

/* assert_live_all for one client. */
static void assert_live(ft_mqtt *c, const char *what, const char *uid, const char *id, int want,
                        int64_t t0)
{
    assert_live_all(what, &c, &uid, &want, 1, id, t0);
}

/* ------------------------------------------------------------ counters */

/* Counter `name` of every node (index 1..N_NODES; a node without the
 * field counts 0), into v[]. */
static void read_counters(const char *name, long long v[N_NODES + 1])
{
    int i;

    v[0] = 0;
    for (i = 1; i <= N_NODES; i++) {
        v[i] = ft_node_stat(&env, i, name);
        if (v[i] < 0)
            v[i] = 0;
    }
}

static bool same_counters(const long long a[N_NODES + 1], const long long b[N_NODES + 1])
{
    return memcmp(a, b, sizeof(long long) * (N_NODES + 1)) == 0;
}

/*
 * Reads two counters of every node once they stood still over a flush
 * period (so nothing in flight is left to show up): the baseline of a
 * before/after comparison. At most 10 s.
 */
static void settled_counters(const char *n1, long long a[N_NODES + 1], const char *n2,
                             long long b[N_NODES + 1])
{
    long long a2[N_NODES + 1], b2[N_NODES + 1];
    int i;

    read_counters(n1, a);
    read_counters(n2, b);
    for (i = 0; i < 8; i++) {
        ft_sleep_ms(FLUSH_MS);
        read_counters(n1, a2);
        read_counters(n2, b2);
        if (same_counters(a, a2) && same_counters(b, b2))
            return;
        memcpy(a, a2, sizeof(a2));
        memcpy(b, b2, sizeof(b2));
    }
    fail_msg("the bridges' counters %s/%s never stood still", n1, n2);
}

/* Waits until node's counter reaches at least target (WAIT_MS at most). */
static void wait_counter(int node, const char *name, long long target)
{
    int i;

    for (i = 0; i < WAIT_MS / 20; i++) {
        if (ft_node_stat(&env, node, name) >= target)
            return;
        ft_sleep_ms(20);
    }
    fail_msg("%s of n%d never reached %lld (is %lld)", name, node, target,
             ft_node_stat(&env, node, name));
}

static long long sum_of(const long long v[N_NODES + 1])
{
    long long s = 0;
    int i;

    for (i = 1; i <= N_NODES; i++)
        s += v[i];
    return s;
}

/* Asserts node i's counter `name` grew by want[i] from before[] to now. */
static void assert_grew(const char *name, const long long before[N_NODES + 1],
                        const long long want[N_NODES + 1])
{
    long long now[N_NODES + 1];
    int i, bad = 0;

    read_counters(name, now);
    for (i = 1; i <= N_NODES; i++) {
        printf("# %s of n%d: %lld -> %lld (expected +%lld)\n", name, i, before[i], now[i], want[i]);
        if (now[i] - before[i] != want[i])
            bad++;
    }
    assert_int_equal(bad, 0);
}

/*
 * After a post: waits until each node i with want[i] > 0 has counted
 * want[i] more deliveries than deliv[i], then one counter period more for
 * the others to show anything they might have done, and asserts that each
 * node's deliveries grew by exactly want[i], and that the bridges
 * published one feed.deliver message per node with a recipient but the
 * node of the bridge that took the post (its events_post_created grew
 * from events[]), which delivered its own share directly
 * (local_delivery direct).
 */
static void assert_delivered(const long long deliv[N_NODES + 1], const long long want[N_NODES + 1],
                             const long long msgs[N_NODES + 1], const long long events[N_NODES + 1])
{
    long long msgs_now[N_NODES + 1], events_now[N_NODES + 1], n_msgs = 0;
    int i, took = 0;

    for (i = 1; i <= N_NODES; i++) {
        if (want[i] > 0)
            wait_counter(i, "deliveries", deliv[i] + want[i]);
    }
    ft_sleep_ms(FLUSH_MS);
    assert_grew("deliveries", deliv, want);
    read_counters("events_post_created", events_now);
    assert_int_equal(sum_of(events_now) - sum_of(events), 1);
    for (i = 1; i <= N_NODES; i++) {
        if (events_now[i] > events[i])
            took = i;
        if (want[i] > 0)
            n_msgs++;
    }
    if (want[took] > 0)
        n_msgs--;
    printf("# the bridge of n%d took the post: %lld feed.deliver message(s) expected\n", took,
           n_msgs);
    read_counters("deliver_messages", msgs_now);
    assert_int_equal(sum_of(msgs_now) - sum_of(msgs), n_msgs);
}

/* ------------------------------------------------------------ the tests */

/* B is connected to n2 only; A (offline) posts: only n2 publishes it. */
static void test_delivered_only_where_connected(void **state)
{
    const long long want[N_NODES + 1] = {0, 0, 1, 0};
    long long deliv[N_NODES + 1], msgs[N_NODES + 1], events[N_NODES + 1];
    ft_mqtt b;
    int64_t t0;

    (void)state;
    follow("s1_B", "s1_A");
    connect_user(&b, 2, "s1_B", "s1_B-tab");
    settled_counters("deliveries", deliv, "deliver_messages", msgs);
    read_counters("events_post_created", events);

    t0 = post("s1_p1", "s1_A");
    assert_live(&b, "B on n2", "s1_B", "s1_p1", 1, t0);

    assert_delivered(deliv, want, msgs, events);
    ft_mqtt_pump(&b, 100);
    assert_int_equal(b.received, 1);
    ft_mqtt_close(&b);
}

/* B has sessions on n1 and n3 at once: both get it, n2 publishes nothing. */
static void test_two_sessions_two_nodes(void **state)
{
    const long long want[N_NODES + 1] = {0, 1, 0, 1};
    long long deliv[N_NODES + 1], msgs[N_NODES + 1], events[N_NODES + 1];
    ft_mqtt b1, b3;
    ft_mqtt *cs[2] = {&b1, &b3};
    const char *const uids[2] = {"s2_B", "s2_B"};
    const int one_each[2] = {1, 1};
    int64_t t0;

    (void)state;
    follow("s2_B", "s2_A");
    connect_user(&b1, 1, "s2_B", "s2_B-tab1");
    connect_user(&b3, 3, "s2_B", "s2_B-tab3");
    assert_int_equal(ft_node_redis_int(&env, "SISMEMBER online:n2 s2_B"), 0);
    settled_counters("deliveries", deliv, "deliver_messages", msgs);
    read_counters("events_post_created", events);

    t0 = post("s2_p1", "s2_A");
    assert_live_all("B on n1 and n3", cs, uids, one_each, 2, "s2_p1", t0);

    assert_delivered(deliv, want, msgs, events);
    ft_mqtt_pump(&b1, 100);
    ft_mqtt_pump(&b3, 100);
    assert_int_equal(b1.received, 1);
    assert_int_equal(b3.received, 1);
    ft_mqtt_close(&b1);
    ft_mqtt_close(&b3);
}

/* Sum of a counter over the nodes in mask (bit i = node i). */
static long long sum_nodes(const char *name, unsigned mask)
{
    long long s = 0, v;
    int i;

    for (i = 1; i <= N_NODES; i++) {
        if ((mask & (1u << i)) == 0)
            continue;
        v = ft_node_stat(&env, i, name);
        s += v > 0 ? v : 0;
    }
    return s;
}

/*
 * n2 crashes with C connected there. Routing stops going to n2 once its
 * heartbeat expired (and cleans its presence up), C moves to n1 and gets
 * posts live, n2 restarts and rejoins by itself.
 */
static void test_node_crash_and_rejoin(void **state)
{
    const unsigned alive = (1u << 1) | (1u << 3);
    long long msgs[N_NODES + 1], events[N_NODES + 1], msgs0, events0, depth0;
    ft_mqtt c, d;
    ft_mqtt *cs[2] = {&d, &c};
    const char *const uids[2] = {"s3_D", "s3_C"};
    const int want[2] = {1, 3};
    int64_t t0, t_kill, expiry_ms, rejoin_ms;
    int i;

    (void)state;
    follow("s3_C", "s3_X");
    follow("s3_D", "s3_X");
    connect_user(&c, 2, "s3_C", "s3_C-tab");
    t0 = post("s3_p1", "s3_X");
    assert_live(&c, "C on n2 before the crash", "s3_C", "s3_p1", 1, t0);

    /* The crash: nothing of n2 gets to clean up. */
    t_kill = fp_time_mono_ms();
    assert_int_equal(ft_node_kill(&env, 2), 0);
    assert_true(ft_mqtt_wait_closed(&c, 3000) >= 0);
    ft_mqtt_close(&c);

    /* Its heartbeat lapses within the TTL. */
    while (ft_node_redis_int(&env, "EXISTS node:n2") != 0 &&
           fp_time_mono_ms() - t_kill < HEARTBEAT_TTL_MS + EXPIRY_MARGIN_MS)
        ft_sleep_ms(20);
    expiry_ms = fp_time_mono_ms() - t_kill;
    printf("# n2 SIGKILLed: node:n2 expired %lld ms later (TTL %d ms)\n", (long long)expiry_ms,
           HEARTBEAT_TTL_MS);
    if (ft_node_redis_int(&env, "EXISTS node:n2") != 0)
        fail_msg("node:n2 still exists %lld ms after the kill (TTL %d ms + %d ms margin)",
                 (long long)expiry_ms, HEARTBEAT_TTL_MS, EXPIRY_MARGIN_MS);
    /* What the crash left behind: routing is what cleans it up. */
    assert_int_equal(ft_node_redis_int(&env, "SISMEMBER online:n2 s3_C"), 1);
    assert_int_equal(ft_node_redis_int(&env, "SISMEMBER nodes n2"), 1);

    /* A post whose only "online" recipient is C, stale on n2. */
    settled_counters("deliver_messages", msgs, "events_post_created", events);
    msgs0 = msgs[1] + msgs[3];
    events0 = events[1] + events[3];
    depth0 = ft_node_queue_depth(&env, "feed.deliver.n2");
    assert_true(depth0 >= 0);
    post("s3_p2", "s3_X");
    for (i = 0; i < WAIT_MS / 20 && sum_nodes("events_post_created", alive) < events0 + 1; i++)
        ft_sleep_ms(20);
    assert_int_equal(sum_nodes("events_post_created", alive), events0 + 1);
    ft_sleep_ms(FLUSH_MS);
    printf("# post for C after n2 expired: deliver_messages of n1+n3 %lld -> %lld, "
           "feed.deliver.n2 depth %lld -> %d\n",
           msgs0, sum_nodes("deliver_messages", alive), depth0,
           ft_node_queue_depth(&env, "feed.deliver.n2"));
    assert_int_equal(sum_nodes("deliver_messages", alive), msgs0);
    assert_int_equal(ft_node_queue_depth(&env, "feed.deliver.n2"), depth0);
    assert_int_equal(ft_node_redis_int(&env, "SISMEMBER nodes n2"), 0);
    assert_int_equal(ft_node_redis_int(&env, "EXISTS online:n2"), 0);
    /* C catches up from its feed. */
    assert_true(ft_node_redis_int(&env, "ZRANK feed:s3_C s3_p2") >= 0);

    /* C reconnects to n1 and gets the next posts live. */
    connect_user(&c, 1, "s3_C", "s3_C-tab");
    t0 = post("s3_p3", "s3_X");
    assert_live(&c, "C moved to n1", "s3_C", "s3_p3", 1, t0);
    t0 = post("s3_p4", "s3_X");
    assert_live(&c, "C moved to n1", "s3_C", "s3_p4", 2, t0);

    /* n2 restarts on the same ports and rejoins by itself. */
    t0 = fp_time_mono_ms();
    assert_int_equal(ft_node_restart(&env, 2), 0);
    while ((ft_node_redis_int(&env, "EXISTS node:n2") != 1 ||
            ft_node_redis_int(&env, "SISMEMBER nodes n2") != 1) &&
           fp_time_mono_ms() - t0 < WAIT_MS)
        ft_sleep_ms(20);
    rejoin_ms = fp_time_mono_ms() - t0;
    assert_int_equal(ft_node_redis_int(&env, "EXISTS node:n2"), 1);
    assert_int_equal(ft_node_redis_int(&env, "SISMEMBER nodes n2"), 1);
    printf("# n2 restarted (mosquitto + bridge ready) and back in nodes %lld ms after the "
           "restart began; it was down %lld ms\n",
           (long long)rejoin_ms, (long long)(fp_time_mono_ms() - t_kill));

    /* A user on the rejoined node gets posts again, C on n1 too. */
    connect_user(&d, 2, "s3_D", "s3_D-tab");
    t0 = post("s3_p5", "s3_X");
    assert_live_all("after n2 rejoined (D on n2, C on n1)", cs, uids, want, 2, "s3_p5", t0);
    wait_counter(2, "deliveries", 1); /* the new n2 bridge counts from 0 */
    ft_mqtt_close(&c);
    ft_mqtt_close(&d);
}

/* clang-format off */
FT_MAIN(ft_mqtt_run_group, setup, teardown,
        cmocka_unit_test(test_delivered_only_where_connected),
        cmocka_unit_test(test_two_sessions_two_nodes),
        /* Last: it crashes n2 (and brings it back). */
        cmocka_unit_test(test_node_crash_and_rejoin))
/* clang-format on */
