/*
 * feed-bridge end to end: RabbitMQ event in, Redis feed lists and MQTT
 * deliveries out, through a real mosquitto with feed_auth.so (the bridge
 * authenticates with its own service token and speaks MQTT 5), with
 * deliver_mode publish and local_delivery queue. The broker logs at debug
 * level, so its PUBACKs to the bridge can be read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "ft_redis.h"
#include "node_env.h"
#include "ft_main.h"

/* The bridge's deliver_ttl_ms: not a whole number of seconds, so the
 * expiry its deliveries carry shows the rounding up (to TTL_S). */
#define TTL_MS 29500
#define TTL_S ((TTL_MS + 999) / 1000)
/* How long a test waits for a live delivery: a deadline for the poll on
 * a loaded machine, not a speed requirement (the benchmarks measure
 * latency). */
#define LIVE_WAIT_MS 5000

static ft_node_env env;

static int start(void)
{
    ft_node_opts opts = {.extra = "log_type debug"};
    char ttl[16];

    snprintf(ttl, sizeof(ttl), "%d", TTL_MS);
    setenv("FEEDPUSH_DELIVER_TTL_MS", ttl, 1); /* the bridge inherits them */
    /* One publish per recipient: the PUBACKs of feed/<uid> publishes are
     * checked here; bridge_control covers deliver_mode control. */
    setenv("FEEDPUSH_DELIVER_MODE", "publish", 1);
    /* Stage 2 delivers: every post's deliveries take feed.deliver.n1;
     * bridge_control and the other node tests cover local_delivery
     * direct, the default. */
    setenv("FEEDPUSH_LOCAL_DELIVERY", "queue", 1);
    return ft_node_env_start_opts(&env, 1, &opts);
}

FT_FIXTURES(start(), ft_node_env_stop(&env))

/* Publishes an event built from fmt (waits for RabbitMQ's confirm). */
#define event(...) assert_int_equal(ft_node_publishf(&env, __VA_ARGS__), 0)

static void follow(const char *follower, const char *followee)
{
    assert_int_equal(ft_node_follow(&env, follower, followee), 0);
}

static void post(const char *id, const char *author, const char *text)
{
    assert_int_equal(ft_node_post(&env, id, author, text), 0);
}

/* Waits until the bridge has handled n events of the stage-1 counter. */
static void wait_stage1(long long n)
{
    assert_true(ft_node_stat_wait(&env, 1, "stage1_count", n, 12000) >= n);
}

/* feed:<uid>, newest first, as one comma-joined string. */
static void feed_of(const char *uid, char *out, size_t len)
{
    redisContext *c = ft_redis_connect(env.p.redis.port);
    redisReply *r = ft_redis_cmd(c, "ZREVRANGE feed:%s 0 -1", uid);
    size_t i, n = 0;

    out[0] = '\0';
    for (i = 0; i < r->elements && n + 1 < len; i++)
        n += (size_t)snprintf(out + n, len - n, "%s%s", i > 0 ? "," : "", r->element[i]->str);
    freeReplyObject(r);
    redisFree(c);
}

/* Connects uid and subscribes to its feed. c must stay where it is: the
 * client's callbacks point at it. */
static void connect_user(ft_mqtt *c, const char *uid)
{
    char *tok = ft_plugin_env_token_now(&env.p, uid, FP_ROLE_USER);
    char topic[80];

    assert_int_equal(ft_mqtt_connect(c, env.p.mosq.port, NULL, uid, tok, 4, 3000), 0);
    snprintf(topic, sizeof(topic), "feed/%s", uid);
    assert_int_equal(ft_mqtt_subscribe(c, topic, 3000), 1);
    free(tok);
}

/* Presence reaches Redis through the plugin's thread: wait for it. */
static void wait_online(const char *uid)
{
    char key[16 + FP_ID_BUFSZ];

    snprintf(key, sizeof(key), "online:%s", env.p.node_id);
    assert_int_equal(ft_redis_wait_member(env.p.redis.port, key, uid, 3000), 1);
}

/* True when the bridge's log (all its runs so far) holds needle. */
static bool bridge_log_has(const char *needle)
{
    int rc = ft_log_wait(env.node[0].bridge_log, 0, needle, 0);

    assert_true(rc >= 0); /* the log exists */
    return rc == 1;
}

/* Connects uid with MQTT 5 and subscribes to topic. */
static void connect_v5(ft_mqtt *c, const char *uid, const char *topic)
{
    char *tok = ft_plugin_env_token_now(&env.p, uid, FP_ROLE_USER);

    assert_int_equal(ft_mqtt_connect(c, env.p.mosq.port, NULL, uid, tok, 5, 3000), 0);
    assert_int_equal(ft_mqtt_subscribe(c, topic, 3000), 1);
    free(tok);
}

/* N is online on the node but not subscribed to feed/N: the broker answers
 * the bridge's publish with PUBACK reason code 16 (no matching
 * subscribers), a success. The delivery is acked and not published again:
 * once N subscribes, the next post is the first thing N gets. Runs first,
 * while stage 2 has nothing else in hand. */
static void test_puback_no_subscribers(void **state)
{
    char *tok = ft_plugin_env_token_now(&env.p, "N", FP_ROLE_USER);
    long long acked = ft_node_stat(&env, 1, "stage2_count");
    long long deliveries = ft_node_stat(&env, 1, "deliveries");
    long long queued = ft_node_stat(&env, 1, "deliver_messages");
    long from = ft_plugin_env_log_size(&env.p);
    ft_mqtt c;

    (void)state;
    assert_int_equal(ft_mqtt_connect(&c, env.p.mosq.port, NULL, "N", tok, 4, 3000), 0);
    wait_online("N");
    post("n1", "N", "nobody listens");
    assert_true(ft_plugin_env_log_wait(&env.p, from, "Sending PUBACK to feed-bridge-n1 (m", 5000));
    assert_true(ft_plugin_env_log_wait(&env.p, from, ", rc16)", 1000));
    assert_true(ft_node_stat_wait(&env, 1, "stage2_count", acked + 1, 5000) >= acked + 1);
    assert_int_equal(ft_node_stat(&env, 1, "deliveries"), deliveries + 1);
    assert_int_equal(ft_node_stat(&env, 1, "deliver_messages"), queued + 1);

    assert_int_equal(ft_mqtt_subscribe(&c, "feed/N", 3000), 1);
    post("n2", "N", "now listening");
    assert_int_equal(ft_mqtt_wait_messages(&c, 1, 3000), 1);
    assert_non_null(strstr(c.last_payload, "\"id\":\"n2\""));
    ft_mqtt_pump(&c, 300);
    assert_int_equal(c.received, 1);
    assert_false(bridge_log_has("refused a publish"));
    assert_false(bridge_log_has("not acknowledged"));
    ft_mqtt_close(&c);
    free(tok);
}

/* The bridge connects with MQTT 5, and every feed/<uid> delivery carries a
 * Message Expiry Interval of deliver_ttl_ms rounded up to seconds. The
 * broker forwards the time left, so it may be a second less. The retained
 * ribbon carries none. */
static void test_deliveries_expire(void **state)
{
    long long before = ft_node_stat(&env, 1, "stage1_count");
    ft_mqtt e, r;
    int i;

    (void)state;
    assert_true(ft_plugin_env_log_wait(&env.p, 0, "as feed-bridge-n1 (p5,", 1000));
    connect_v5(&e, "E", "feed/E");
    wait_online("E");
    post("e1", "E", "expires with the realtime TTL");
    assert_int_equal(ft_mqtt_wait_messages(&e, 1, 3000), 1);
    assert_string_equal(e.last_topic, "feed/E");
    assert_non_null(strstr(e.last_payload, "\"id\":\"e1\""));
    printf("# feed/E came with a message expiry interval of %lld s (deliver_ttl_ms %d)\n",
           (long long)e.last_expiry_s, TTL_MS);
    assert_true(e.last_expiry_s > 0);
    assert_true(e.last_expiry_s <= TTL_S);
    assert_true(e.last_expiry_s + 2 >= TTL_S); /* the TTL it is, not some other number */
    ft_mqtt_close(&e);

    event("ribbon.pushed",
          "{\"type\":\"ribbon.pushed\",\"entry\":{\"user_id\":\"x5\",\"name\":\"X 5\",\"at\":5}}");
    wait_stage1(before + 2);
    connect_v5(&r, "R5", "ribbon");
    for (i = 0; i < 40 && strstr(r.last_payload, "\"X 5\"") == NULL; i++)
        ft_mqtt_wait_messages(&r, r.received + 1, 100);
    assert_non_null(strstr(r.last_payload, "\"X 5\""));
    assert_int_equal(r.last_expiry_s, -1);
    ft_mqtt_close(&r);
    assert_false(bridge_log_has("refused a publish"));
}

/* The seed scenario: B follows A and is connected; A posts; B gets it
 * live, A's own session too, C (not following) nothing, offline follower
 * D has it in the feed list only. Then the delete. Then a post to
 * explicit recipients and its delete naming them. */
static void test_seed_scenario(void **state)
{
    ft_mqtt a, b, c;
    char feed[256];
    int64_t t0;

    (void)state;
    follow("B", "A");
    follow("D", "A");
    connect_user(&a, "A");
    connect_user(&b, "B");
    connect_user(&c, "C");
    wait_online("A");
    wait_online("B");
    wait_online("C");

    t0 = fp_time_mono_ms();
    post("p1", "A", "hello from A");
    assert_int_equal(ft_mqtt_wait_messages(&b, 1, LIVE_WAIT_MS), 1);
    printf("# A's post reached B %lld ms after the publish\n", (long long)(fp_time_mono_ms() - t0));
    assert_string_equal(b.last_topic, "feed/B");
    assert_non_null(strstr(b.last_payload, "\"type\":\"post.created\""));
    assert_non_null(strstr(b.last_payload, "\"id\":\"p1\""));
    assert_non_null(strstr(b.last_payload, "hello from A"));
    assert_int_equal(ft_mqtt_wait_messages(&a, 1, LIVE_WAIT_MS), 1);
    assert_string_equal(a.last_topic, "feed/A");
    ft_mqtt_pump(&c, 300);
    assert_int_equal(c.received, 0);

    feed_of("B", feed, sizeof(feed));
    assert_string_equal(feed, "p1");
    feed_of("D", feed, sizeof(feed));
    assert_string_equal(feed, "p1");
    feed_of("A", feed, sizeof(feed));
    assert_string_equal(feed, "p1");
    feed_of("C", feed, sizeof(feed));
    assert_string_equal(feed, "");

    /* Delete: B is told, and the post body is gone (the read path skips it). */
    event("post.deleted", "{\"type\":\"post.deleted\",\"post_id\":\"p1\",\"author_id\":\"A\"}");
    assert_int_equal(ft_mqtt_wait_messages(&b, 2, LIVE_WAIT_MS), 2);
    assert_non_null(strstr(b.last_payload, "\"type\":\"post.deleted\""));
    assert_non_null(strstr(b.last_payload, "\"post_id\":\"p1\""));
    feed_of("B", feed, sizeof(feed));
    assert_string_equal(feed, "");

    /* A post to C alone (no follower of A), then its delete naming C: C
     * gets both live and its feed loses the id; B, a follower but no
     * recipient, gets neither. */
    event("post.created", "{\"type\":\"post.created\",\"post\":{\"id\":\"p2\",\"author_id\":"
                          "\"A\",\"text\":\"for C\",\"created_at\":2},\"recipients\":[\"C\"]}");
    assert_int_equal(ft_mqtt_wait_messages(&c, 1, LIVE_WAIT_MS), 1);
    assert_non_null(strstr(c.last_payload, "\"id\":\"p2\""));
    feed_of("C", feed, sizeof(feed));
    assert_string_equal(feed, "p2");
    event("post.deleted", "{\"type\":\"post.deleted\",\"post_id\":\"p2\",\"author_id\":\"A\","
                          "\"recipients\":[\"C\"]}");
    assert_int_equal(ft_mqtt_wait_messages(&c, 2, LIVE_WAIT_MS), 2);
    assert_non_null(strstr(c.last_payload, "\"type\":\"post.deleted\""));
    assert_non_null(strstr(c.last_payload, "\"post_id\":\"p2\""));
    assert_null(strstr(c.last_payload, "recipients"));
    feed_of("C", feed, sizeof(feed));
    assert_string_equal(feed, "");
    ft_mqtt_pump(&b, 300);
    assert_int_equal(b.received, 2);

    ft_mqtt_close(&a);
    ft_mqtt_close(&b);
    ft_mqtt_close(&c);
}

/* A follower whose feed key holds another type (written by someone
 * else) misses the post in the feed; the other follower gets it in the
 * feed and live, the event is done (no dead letter, no retry), and the
 * bridge says so once. */
static void test_feed_wrong_type(void **state)
{
    long long dead = ft_node_stat(&env, 1, "dead_letters");
    redisContext *rc = ft_redis_connect(env.p.redis.port);
    const char *line = "post.created k1: 1 feed key(s) hold another type than a feed and "
                       "were left alone, the first \"feed:KX1\"";
    char feed[64];
    redisReply *r;
    ft_mqtt c;

    (void)state;
    follow("KX1", "K");
    follow("KX2", "K");
    freeReplyObject(ft_redis_cmd(rc, "SET feed:KX1 not-a-feed"));
    connect_user(&c, "KX2");
    wait_online("KX2");
    post("k1", "K", "to both");
    assert_int_equal(ft_mqtt_wait_messages(&c, 1, 3000), 1);
    assert_non_null(strstr(c.last_payload, "\"id\":\"k1\""));
    assert_int_equal(ft_log_wait(env.node[0].bridge_log, 0, line, 5000), 1);
    feed_of("KX2", feed, sizeof(feed));
    assert_string_equal(feed, "k1");
    r = ft_redis_cmd(rc, "GET feed:KX1");
    assert_string_equal(r->str, "not-a-feed");
    freeReplyObject(r);
    /* A later event is handled after it, so a retry would show by now. */
    post("k2", "K", "again");
    assert_int_equal(ft_mqtt_wait_messages(&c, 2, 3000), 2);
    assert_int_equal(ft_log_count(env.node[0].bridge_log, 0, line), 1);
    assert_int_equal(ft_node_stat(&env, 1, "dead_letters"), dead);
    ft_mqtt_close(&c);
    redisFree(rc);
}

/* 1,500 posts: every follower's list holds exactly the newest 1,000. */
static void test_feed_capped_at_1000(void **state)
{
    redisContext *rc;
    redisReply *r;
    char id[32];
    long long before = ft_node_stat(&env, 1, "stage1_count");
    int i;

    (void)state;
    follow("F1", "W");
    for (i = 1; i <= 1500; i++) {
        snprintf(id, sizeof(id), "w%d", i);
        post(id, "W", "x");
    }
    wait_stage1(before + 1501);
    rc = ft_redis_connect(env.p.redis.port);
    r = ft_redis_cmd(rc, "ZREVRANGE feed:F1 0 -1");
    assert_int_equal(r->elements, 1000);
    for (i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "w%d", 1500 - i);
        assert_string_equal(r->element[i]->str, id);
    }
    freeReplyObject(r);
    redisFree(rc);
}

/* 60 pushes of 55 users (5 push twice): the ribbon holds 50 entries, one
 * per user, newest first; a later subscriber gets it at once (retained). */
static void test_ribbon(void **state)
{
    long long before = ft_node_stat(&env, 1, "stage1_count");
    char *tok, needle[32];
    ft_mqtt c;
    int i, entries = 0, u;
    const char *p, *first;

    (void)state;
    for (i = 0; i < 60; i++)
        event("ribbon.pushed",
              "{\"type\":\"ribbon.pushed\",\"entry\":{\"user_id\":\"r%d\",\"name\":\"R %d\",\"at\":%d}}",
              i % 55, i, 1000 + i);
    wait_stage1(before + 60);
    tok = ft_plugin_env_token_now(&env.p, "viewer", FP_ROLE_USER);
    assert_int_equal(ft_mqtt_connect(&c, env.p.mosq.port, NULL, "viewer", tok, 4, 3000), 0);
    assert_int_equal(ft_mqtt_subscribe(&c, "ribbon", 3000), 1);
    /* The broadcast stage may still be publishing: wait for the last one. */
    for (i = 0; i < 40 && strstr(c.last_payload, "\"R 59\"") == NULL; i++)
        ft_mqtt_wait_messages(&c, c.received + 1, 100);
    assert_true(c.last_retain || c.received > 1);
    assert_non_null(strstr(c.last_payload, "\"type\":\"ribbon\""));
    for (p = c.last_payload; (p = strstr(p, "\"user_id\"")) != NULL; p++)
        entries++;
    assert_int_equal(entries, 50);
    /* Each user at most once. */
    for (u = 0; u < 55; u++) {
        snprintf(needle, sizeof(needle), "\"r%d\"", u);
        first = strstr(c.last_payload, needle);
        assert_true(first == NULL || strstr(first + 1, needle) == NULL);
    }
    /* Newest first: push 59 (user r4, pushed again) leads, and r4's older
     * entry (push 4) is gone. */
    assert_true(strstr(c.last_payload, "\"R 59\"") < strstr(c.last_payload, "\"R 58\""));
    assert_null(strstr(c.last_payload, "\"R 4\""));
    ft_mqtt_close(&c);
    free(tok);
}

/* Sends a ribbon document to feed.broadcast, as a node's stage 1 does. */
static void broadcast_ribbon(long long version, const char *user)
{
    char doc[256];

    snprintf(doc, sizeof(doc),
             "{\"type\":\"ribbon\",\"version\":%lld,\"entries\":[{\"user_id\":\"%s\","
             "\"at\":1}]}",
             version, user);
    assert_int_equal(ft_event_pub_post_to(&env.pub, "feed.broadcast", "", doc), 0);
    assert_int_equal(ft_event_pub_wait(&env.pub, env.pub.published, 10000), 0);
}

/*
 * Ribbons carry a version (ribbon_push.lua raises it with every change),
 * and stage 2 never replaces a newer one: ribbons of two nodes' stage 1
 * can reach feed.broadcast in the opposite order. After test_ribbon's
 * pushes (version V), three documents go out as such bridges could send
 * them: V+2, then V+1 (older: skipped), then V+3. A subscriber sees V+2
 * and V+3 only; before, V+1 replaced V+2 (three messages, the retained
 * ribbon an old one until the next push).
 */
static void test_ribbon_newest_wins(void **state)
{
    char *tok = ft_plugin_env_token_now(&env.p, "viewer", FP_ROLE_USER);
    const char *v;
    long long version;
    ft_mqtt c;
    int got, i;

    (void)state;
    assert_int_equal(ft_mqtt_connect(&c, env.p.mosq.port, NULL, "viewer", tok, 4, 3000), 0);
    assert_int_equal(ft_mqtt_subscribe(&c, "ribbon", 3000), 1);
    assert_int_equal(ft_mqtt_wait_messages(&c, 1, 3000), 1); /* the retained one */
    v = strstr(c.last_payload, "\"version\":");
    assert_non_null(v);
    version = strtoll(v + 10, NULL, 10);
    assert_true(version > 0);
    got = c.received;
    broadcast_ribbon(version + 2, "newer");
    broadcast_ribbon(version + 1, "older");
    broadcast_ribbon(version + 3, "newest");
    for (i = 0; i < 50 && strstr(c.last_payload, "\"newest\"") == NULL; i++)
        ft_mqtt_wait_messages(&c, c.received + 1, 100);
    assert_non_null(strstr(c.last_payload, "\"newest\""));
    /* Stage 2 takes them in order: "newest" came, so "older" was handled. */
    assert_int_equal(c.received, got + 2);
    /* A real push after them still goes out: its version is at least
     * Redis's clock, past V + 3 (V was made seconds ago). */
    event("ribbon.pushed",
          "{\"type\":\"ribbon.pushed\",\"entry\":{\"user_id\":\"later\",\"at\":9000}}");
    for (i = 0; i < 50 && strstr(c.last_payload, "\"later\"") == NULL; i++)
        ft_mqtt_wait_messages(&c, c.received + 1, 100);
    assert_non_null(strstr(c.last_payload, "\"later\""));
    ft_mqtt_close(&c);
    free(tok);
}

/*
 * The broker restarts (without persistence here, as a broker whose
 * retained messages were lost): once the bridge's link is back, the bridge
 * publishes its last ribbon again, so a user who subscribes then gets it.
 * Before, the broker had no ribbon for new subscribers until the next
 * push or a restart of the bridge.
 */
static void test_ribbon_after_broker_restart(void **state)
{
    char *tok = ft_plugin_env_token_now(&env.p, "viewer", FP_ROLE_USER);
    const char *blog = env.node[0].bridge_log;
    ft_mqtt c;
    long from;

    (void)state;
    /* test_ribbon_newest_wins's last push: what the broker retains. */
    assert_int_equal(ft_mqtt_connect(&c, env.p.mosq.port, NULL, "viewer", tok, 4, 3000), 0);
    assert_int_equal(ft_mqtt_subscribe(&c, "ribbon", 3000), 1);
    assert_int_equal(ft_mqtt_wait_messages(&c, 1, 3000), 1);
    assert_non_null(strstr(c.last_payload, "\"later\""));
    ft_mqtt_close(&c);

    from = ft_log_size(blog);
    assert_int_equal(ft_server_restart(&env.p.mosq), 0);
    /* The bridge reconnects (within 2 s) and publishes it again, once. */
    assert_int_equal(ft_log_wait(blog, from, "published again", 15000), 1);
    assert_int_equal(ft_log_count(blog, from, "published again"), 1);
    assert_int_equal(ft_mqtt_connect(&c, env.p.mosq.port, NULL, "viewer", tok, 4, 3000), 0);
    assert_int_equal(ft_mqtt_subscribe(&c, "ribbon", 3000), 1);
    assert_int_equal(ft_mqtt_wait_messages(&c, 1, 3000), 1);
    assert_true(c.last_retain);
    assert_non_null(strstr(c.last_payload, "\"later\""));
    ft_mqtt_close(&c);
    free(tok);
}

/* Malformed and unknown events are dead-lettered; the next good one is
 * processed normally. */
static void test_dead_letters(void **state)
{
    long long dead = ft_node_stat(&env, 1, "dead_letters");
    char feed[64];
    int i;

    (void)state;
    event("post.created", "{\"type\":\"post.created\",\"post\":");
    event("post.shared", "{\"type\":\"post.shared\",\"post_id\":\"z\"}");
    event("post.created", "{\"type\":\"post.deleted\",\"post_id\":\"z\",\"author_id\":\"A\"}");
    post("good1", "G", "still working");
    for (i = 0; i < 200 && ft_node_queue_depth(&env, "feed.events.dead") < 3; i++)
        usleep(20000);
    assert_int_equal(ft_node_queue_depth(&env, "feed.events.dead"), 3);
    ft_node_stat_wait(&env, 1, "dead_letters", dead + 3, 3000);
    assert_int_equal(ft_node_stat(&env, 1, "dead_letters"), dead + 3);
    feed_of("G", feed, sizeof(feed));
    assert_string_equal(feed, "good1");
}

/* A post.created event's JSON, as a string literal (for batches). */
#define POST_JSON(id, text, at)                                                                    \
    "{\"type\":\"post.created\",\"post\":{\"id\":\"" id "\",\"author_id\":\"B\",\"text\":\"" text  \
    "\",\"created_at\":" #at "}}"

/* Waits until the bridge has handled `batches` batches in all, then checks
 * bf's feed (newest first) and the dead letters counted in all. */
static void batches_handled(long long batches, const char *want_feed, long long dead)
{
    char feed[64];

    assert_true(ft_node_stat_wait(&env, 1, "event_batches", batches, 15000) >= batches);
    feed_of("bf", feed, sizeof(feed));
    assert_string_equal(feed, want_feed);
    assert_int_equal(ft_node_stat(&env, 1, "dead_letters"), dead);
}

/* An event of test_batches' first batch, as its dead letter must keep it:
 * a number beyond a double (cJSON would write it as null) and blanks. */
#define BATCH_SELF_FOLLOW                                                                          \
    "{\"type\":\"follow.created\", \"follower_id\":\"S\",\"followee_id\":\"S\",\"n\":1e400}"

/* Empties feed.events.dead after test_batches: every letter was published
 * by the bridge (none carries RabbitMQ's x-death, which a reject would
 * give) with the reason its log line gave; the events of a batch
 * dead-lettered alone also carry their place in the batch, in order, and
 * the messages dead-lettered whole (test_dead_letters' `whole_before` and
 * the two malformed batches) none. */
static void dead_letters_taken(int whole_before)
{
    static const char *const places[] = {"2 of 5", "3 of 5", "4 of 5", "2 of 3", "1 of 2"};
    /* The bodies checked: each event as it was in its batch. */
    static const char *const bodies[] = {"{\"type\":\"post.created\",\"post\":{\"id\":\"b2\"}}",
                                         BATCH_SELF_FOLLOW, "{\"type\":\"batch\",\"events\":[]}",
                                         NULL, NULL};
    /* A batch inside a batch is an unknown type: no routing key. */
    static const char *const keys[] = {"post.created", "follow.created", "", "follow.created", ""};
    ft_event_taken m;
    int inner = 0, whole = 0, rc, i;

    /* The last dead letter's publish may still be on its way when the
     * bridge counts its batch handled. */
    for (i = 0; i < 500 && ft_node_queue_depth(&env, "feed.events.dead") < whole_before + 7; i++)
        usleep(20000);
    while ((rc = ft_event_pub_take(&env.pub, "feed.events.dead", &m)) == 1) {
        assert_false(m.x_death);
        assert_true(m.reason[0] != '\0');
        assert_true(bridge_log_has(m.reason));
        if (m.batch[0] == '\0') {
            whole++;
            continue;
        }
        assert_true(inner < 5);
        assert_string_equal(m.batch, places[inner]);
        assert_string_equal(m.routing_key, keys[inner]);
        if (bodies[inner] != NULL)
            assert_string_equal(m.body, bodies[inner]);
        inner++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(inner, 5);
    assert_int_equal(whole, whole_before + 2);
}

/* A batch (docs/protocol.md, "Batches"): its events are handled in order;
 * a bad event inside is dead-lettered alone, with one log line, and the
 * others go on; a malformed batch is dead-lettered whole. */
static void test_batches(void **state)
{
    long long dead = ft_node_stat(&env, 1, "dead_letters");
    long long batches = ft_node_stat(&env, 1, "event_batches");
    int depth = ft_node_queue_depth(&env, "feed.events.dead"), i;
    char feed[64], longtype[300];
    redisContext *r;
    ft_mqtt c;

    (void)state;
    follow("bf", "B");
    event("batch", "{\"type\":\"batch\",\"events\":[" POST_JSON(
                       "b1", "one",
                       1) ","
                          "{\"type\":\"post.created\",\"post\":{\"id\":\"b2\"}},"
                          " " BATCH_SELF_FOLLOW " ,"
                          "{\"type\":\"batch\",\"events\":[]}," POST_JSON("b3", "three", 3) "]}");
    batches_handled(batches + 1, "b3,b1", dead + 3);
    for (i = 0; i < 200 && ft_node_queue_depth(&env, "feed.events.dead") < depth + 3; i++)
        usleep(20000);
    assert_int_equal(ft_node_queue_depth(&env, "feed.events.dead"), depth + 3);
    assert_true(bridge_log_has("dead-lettering event 2 of a batch of 5 (type \"post.created\""));
    assert_true(bridge_log_has("dead-lettering event 3 of a batch of 5 (type \"follow.created\""));
    assert_true(bridge_log_has("dead-lettering event 4 of a batch of 5 (type \"batch\""));

    /* Not a batch at all: the message goes whole, and nothing of it is
     * handled. */
    event("batch", "{\"type\":\"batch\",\"events\":{\"a\":1}}");
    event("batch", "{\"type\":\"post.created\",\"events\":[{\"type\":\"post.deleted\","
                   "\"post_id\":\"b1\",\"author_id\":\"B\"}]}");
    ft_node_stat_wait(&env, 1, "dead_letters", dead + 5, 6000);
    assert_int_equal(ft_node_stat(&env, 1, "dead_letters"), dead + 5);
    assert_true(bridge_log_has("batch: events: expected an array"));
    assert_true(bridge_log_has("batch: type: expected \"batch\""));
    assert_int_equal(ft_node_stat(&env, 1, "event_batches"), batches + 1);
    feed_of("bf", feed, sizeof(feed));
    assert_string_equal(feed, "b3,b1");

    /* Posts in a row run their first store calls together (one round
     * trip); the delete between them and the post after come after, in
     * order, and each post still reaches its online follower live. */
    connect_user(&c, "bf");
    wait_online("bf");
    event("batch", "{\"type\":\"batch\",\"events\":[" POST_JSON("c1", "c one", 4) "," POST_JSON(
                       "c2", "c two",
                       5) "," POST_JSON("c3", "c three",
                                        6) ","
                                           "{\"type\":\"post.deleted\",\"post_id\":\"c2\",\"author_"
                                           "id\":\"B\"}," POST_JSON("c4", "c four", 7) "]}");
    batches_handled(batches + 2, "c4,c3,c1,b3,b1", dead + 5);
    assert_true(ft_mqtt_wait_messages(&c, 5, 5000) >= 5);
    assert_non_null(strstr(c.last_payload, "\"c four\""));
    ft_mqtt_close(&c);

    /* Redis keeps refusing one event (followers:W is not a set): after
     * its retries that event alone is dead-lettered, and the batch goes
     * on from the next. */
    r = ft_redis_connect(env.p.redis.port);
    freeReplyObject(ft_redis_cmd(r, "SET followers:W not-a-set"));
    event("batch",
          "{\"type\":\"batch\",\"events\":[" POST_JSON(
              "d1", "d one", 8) ","
                                "{\"type\":\"follow.created\",\"follower_id\":\"X\",\"followee_"
                                "id\":\"W\"}," POST_JSON("d2", "d two", 9) "]}");
    batches_handled(batches + 3, "d2,d1,c4,c3,c1,b3,b1", dead + 6);
    assert_true(bridge_log_has("dead-lettering event 2 of a batch of 3 (type \"follow.created\""));
    assert_true(bridge_log_has("redis kept refusing it: "));
    freeReplyObject(ft_redis_cmd(r, "DEL followers:W"));
    redisFree(r);

    /* An event whose type is too long for a routing key: its dead letter
     * goes without one, and the batch goes on. */
    memset(longtype, 'x', sizeof(longtype) - 1);
    longtype[sizeof(longtype) - 1] = '\0';
    event("batch",
          "{\"type\":\"batch\",\"events\":[{\"type\":\"%s\"}," POST_JSON("bz", "z one", 10) "]}",
          longtype);
    batches_handled(batches + 4, "bz,d2,d1,c4,c3,c1,b3,b1", dead + 7);
    assert_true(bridge_log_has("dead-lettering event 1 of a batch of 2 (type \"xxxx"));
    dead_letters_taken(depth);
}

/* clang-format off */
FT_MAIN(ft_mqtt_run_group, setup, teardown,
        cmocka_unit_test(test_puback_no_subscribers),
        cmocka_unit_test(test_deliveries_expire),
        cmocka_unit_test(test_seed_scenario),
        cmocka_unit_test(test_dead_letters),
        cmocka_unit_test(test_batches),
        cmocka_unit_test(test_ribbon),
        cmocka_unit_test(test_ribbon_newest_wins),
        cmocka_unit_test(test_ribbon_after_broker_restart),
        cmocka_unit_test(test_feed_wrong_type),
        cmocka_unit_test(test_feed_capped_at_1000))
/* clang-format on */
