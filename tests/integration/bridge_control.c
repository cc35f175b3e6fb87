/*
 * feed-bridge with deliver_mode control: the bridge sends one message per
 * delivery to the broker's $CONTROL/feedpush/v1/deliver, and feed_auth.so
 * fans it out to feed/<uid> inside the broker (plugin/fanout.c). With
 * local_delivery direct (the default) a post's deliveries to this node
 * go from stage 1 through its own link (client id feed-bridge-n1-direct);
 * what comes through feed.deliver.n1 goes through stage 2's
 * (feed-bridge-n1). One node pair, the broker logging at debug level so
 * the PUBLISHes it received and the PUBACKs it sent can be counted.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <cmocka.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "fp_control.h"
#include "node_env.h"
#include "ft_main.h"

/* The bridge's deliver_ttl_ms: not whole seconds, so the expiry the
 * deliveries carry shows the rounding up (to TTL_S). */
#define TTL_MS 29500
#define TTL_S ((TTL_MS + 999) / 1000)
#define FROM_BRIDGE "Received PUBLISH from feed-bridge-n1 "
#define FROM_DIRECT "Received PUBLISH from feed-bridge-n1-direct "
#define DIRECT_ID "feed-bridge-n1-direct"
#define MALFORMED "refused a malformed deliver control message"

/* The broker's message_size_limit: a larger payload gets PUBACK 149. */
#define SIZE_LIMIT 40000
#define FT_STR_(x) #x
#define FT_STR(x) FT_STR_(x)

static ft_node_env env;

static int start(void)
{
    /* message_size_limit: for test_oversized_control (test_large_delivery's
     * control messages are 6 KB). */
    ft_node_opts opts = {.extra = "log_type debug\nmessage_size_limit " FT_STR(SIZE_LIMIT)};
    char ttl[16];

    snprintf(ttl, sizeof(ttl), "%d", TTL_MS);
    setenv("FEEDPUSH_DELIVER_TTL_MS", ttl, 1); /* the bridge inherits them */
    setenv("FEEDPUSH_DELIVER_MODE", "control", 1);
    return ft_node_env_start_opts(&env, 1, &opts);
}

FT_FIXTURES(start(), ft_node_env_stop(&env))

static void follow(const char *follower, const char *followee)
{
    assert_int_equal(ft_node_follow(&env, follower, followee), 0);
}

static void post(const char *id, const char *author, const char *text)
{
    assert_int_equal(ft_node_post(&env, id, author, text), 0);
}

/* Waits until uid is in the Redis set <set>:n1 (presence goes through the
 * plugin's thread). */
static void wait_member(const char *set, const char *uid)
{
    char key[32];

    snprintf(key, sizeof(key), "%s:n1", set);
    assert_int_equal(ft_redis_wait_member(env.p.redis.port, key, uid, 3000), 1);
}

/* Connects uid (protocol 4 or 5) and subscribes to its feed. */
static void connect_user(ft_mqtt *c, const char *uid, int protocol)
{
    char *tok = ft_plugin_env_token_now(&env.p, uid, FP_ROLE_USER);
    char topic[80];

    assert_int_equal(ft_mqtt_connect(c, env.p.mosq.port, NULL, uid, tok, protocol, 3000), 0);
    snprintf(topic, sizeof(topic), "feed/%s", uid);
    assert_int_equal(ft_mqtt_subscribe(c, topic, 3000), 1);
    free(tok);
    wait_member("online", uid);
}

/* Lines of the broker's log after byte from holding needle (and, when not
 * NULL, also 'and'). */
static int log_count(long from, const char *needle, const char *and)
{
    char path[PATH_MAX + 32], line[2048];
    int n = 0;
    FILE *f;

    snprintf(path, sizeof(path), "%s/mosquitto/mosquitto.log", env.p.mosq.dir);
    f = fopen(path, "r");
    assert_non_null(f);
    fseek(f, from, SEEK_SET);
    while (fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, needle) != NULL && (and == NULL || strstr(line, and) != NULL);
    fclose(f);
    return n;
}

/* The expiry a delivery carries: deliver_ttl_ms in whole seconds, or a
 * second or two less (the broker forwards the time left). */
static void assert_ttl(const ft_mqtt *c)
{
    printf("# %s came with a message expiry interval of %lld s (deliver_ttl_ms %d)\n",
           c->last_topic, (long long)c->last_expiry_s, TTL_MS);
    assert_true(c->last_expiry_s > 0);
    assert_true(c->last_expiry_s <= TTL_S);
    assert_true(c->last_expiry_s + 2 >= TTL_S);
}

/*
 * A post to three followers on the node: two connected (MQTT 5 and
 * 3.1.1), one a persistent session that is offline. Stage 1 sends the
 * broker one control message for it through its direct link, not a
 * publish per follower and nothing through feed.deliver.n1; each gets the
 * post, the MQTT 5 ones with the realtime TTL as expiry, and the offline
 * session finds it queued when it comes back.
 */
static void test_fanout_in_broker(void **state)
{
    long long deliveries = ft_node_stat(&env, 1, "deliveries");
    long long events = ft_node_stat(&env, 1, "stage1_count");
    long long acked = ft_node_stat(&env, 1, "stage2_count");
    long long queued = ft_node_stat(&env, 1, "deliver_messages");
    char *tok = ft_plugin_env_token_now(&env.p, "cH", FP_ROLE_USER);
    ft_mqtt b, c, h;
    long from;

    (void)state;
    follow("cB", "cA");
    follow("cC", "cA");
    follow("cH", "cA");
    assert_int_equal(
        ft_mqtt_connect_session(&h, env.p.mosq.port, "cH:phone", "cH", tok, 5, false, 3600, 3000),
        0);
    assert_int_equal(ft_mqtt_subscribe(&h, "feed/cH", 3000), 1);
    ft_mqtt_close(&h);
    wait_member("sessions", "cH");
    connect_user(&b, "cB", 5);
    connect_user(&c, "cC", 4);

    from = ft_plugin_env_log_size(&env.p);
    post("c1", "cA", "fanned out by the broker");
    assert_int_equal(ft_mqtt_wait_messages(&b, 1, 3000), 1);
    assert_string_equal(b.last_topic, "feed/cB");
    assert_non_null(strstr(b.last_payload, "\"id\":\"c1\""));
    assert_non_null(strstr(b.last_payload, "fanned out by the broker"));
    assert_ttl(&b);
    assert_int_equal(ft_mqtt_wait_messages(&c, 1, 3000), 1);
    assert_string_equal(c.last_topic, "feed/cC");
    assert_string_equal(c.last_payload, b.last_payload);

    assert_true(ft_node_stat_wait(&env, 1, "stage1_count", events + 1, 5000) >= events + 1);
    assert_true(ft_node_stat_wait(&env, 1, "deliveries", deliveries + 3, 3000) >= deliveries + 3);
    /* One control message from stage 1, acknowledged; no feed publish,
     * nothing queued for stage 2. */
    assert_int_equal(log_count(from, FROM_DIRECT, "'" FP_CONTROL_DELIVER_TOPIC "'"), 1);
    assert_int_equal(log_count(from, FROM_DIRECT, "'feed/"), 0);
    assert_int_equal(log_count(from, "Sending PUBACK to " DIRECT_ID " ", ", rc0)"), 1);
    assert_int_equal(log_count(from, FROM_BRIDGE, NULL), 0);
    assert_int_equal(ft_node_stat(&env, 1, "deliver_messages"), queued);
    assert_int_equal(ft_node_stat(&env, 1, "stage2_count"), acked);
    assert_int_equal(log_count(0, MALFORMED, NULL), 0);

    /* The offline persistent session had it queued. */
    assert_int_equal(
        ft_mqtt_connect_session(&h, env.p.mosq.port, "cH:phone", "cH", tok, 5, false, 3600, 3000),
        0);
    assert_true(h.session_present);
    assert_int_equal(ft_mqtt_wait_messages(&h, 1, 3000), 1);
    assert_string_equal(h.last_topic, "feed/cH");
    assert_string_equal(h.last_payload, b.last_payload);
    assert_ttl(&h);

    ft_mqtt_close(&b);
    ft_mqtt_close(&c);
    ft_mqtt_close(&h);
    free(tok);
}

/*
 * local_delivery direct while its link is down: a service client takes
 * over the direct link's client id, so the broker closes the bridge's
 * connection (the bridge connects again 2 s later and takes the id back).
 * A post in between reaches its online follower through feed.deliver.n1
 * and stage 2's link, with one log line. Once the direct link is back,
 * the next post goes straight again, with one line saying so. The post
 * must be handled inside the bridge's 2 s pause: when it was not (the
 * direct link was back first, so it went straight), the round runs again,
 * three at most.
 */
static void test_direct_falls_back(void **state)
{
    char *svc = ft_plugin_env_token_now(&env.p, "bridge-n1", FP_ROLE_SERVICE);
    const char *blog = env.node[0].bridge_log;
    long long queued = ft_node_stat(&env, 1, "deliver_messages"), events;
    long from = 0, bfrom = 0;
    bool fell = false;
    char id[8];
    ft_mqtt f, imp;
    int round;

    (void)state;
    follow("cF", "cE");
    connect_user(&f, "cF", 5);
    for (round = 0; round < 3 && !fell; round++) {
        from = ft_plugin_env_log_size(&env.p);
        bfrom = ft_log_size(blog);
        assert_int_equal(
            ft_mqtt_connect(&imp, env.p.mosq.port, DIRECT_ID, "bridge-n1", svc, 5, 3000), 0);
        assert_int_equal(ft_log_wait(blog, bfrom, DIRECT_ID " lost the broker", 5000), 1);
        snprintf(id, sizeof(id), "e%d", round);
        post(id, "cE", "while the direct link is down");
        assert_int_equal(ft_mqtt_wait_messages(&f, round + 1, 5000), round + 1);
        assert_non_null(strstr(f.last_payload, id));
        fell = ft_log_wait(blog, bfrom,
                           "the direct link is down; this node's deliveries go "
                           "through feed.deliver.n1",
                           0) == 1;
        printf("# round %d: the post went %s\n", round, fell ? "through the queue" : "straight");
        assert_int_equal(ft_log_wait(blog, bfrom, DIRECT_ID " connected to the broker again", 5000),
                         1);
        ft_mqtt_close(&imp);
    }
    assert_true(fell);
    /* Delivered by stage 2 from the queue: one control message on its link. */
    assert_true(ft_node_stat_wait(&env, 1, "deliver_messages", queued + 1, 3000) >= queued + 1);
    assert_int_equal(log_count(from, FROM_BRIDGE, "'" FP_CONTROL_DELIVER_TOPIC "'"), 1);
    assert_int_equal(log_count(from, FROM_DIRECT, NULL), 0);

    /* The direct link is back (logged above): straight again. */
    from = ft_plugin_env_log_size(&env.p);
    events = ft_node_stat(&env, 1, "stage1_count");
    post("eback", "cE", "straight again");
    assert_int_equal(ft_mqtt_wait_messages(&f, round + 1, 5000), round + 1);
    assert_non_null(strstr(f.last_payload, "\"id\":\"eback\""));
    assert_int_equal(ft_log_wait(blog, bfrom, "go straight to its broker again", 3000), 1);
    assert_int_equal(log_count(from, FROM_DIRECT, "'" FP_CONTROL_DELIVER_TOPIC "'"), 1);
    assert_int_equal(log_count(from, FROM_BRIDGE, NULL), 0);
    assert_true(ft_node_stat_wait(&env, 1, "stage1_count", events + 1, 3000) >= events + 1);
    assert_int_equal(ft_node_stat(&env, 1, "deliver_messages"), queued + 1);
    ft_mqtt_pump(&f, 200);
    assert_int_equal(f.received, round + 1);
    ft_mqtt_close(&f);
    free(svc);
}

static bool broker_stopped; /* SIGSTOPped by a test; its teardown resumes it */

static int resume_broker(void **state)
{
    (void)state;
    if (broker_stopped)
        kill((pid_t)-env.p.mosq.pid, SIGCONT);
    broker_stopped = false;
    return 0;
}

/* Runs c's loop until a message whose payload holds needle came (as the
 * last one so far), or timeout_ms. True when it did. */
static bool wait_payload(ft_mqtt *c, const char *needle, int timeout_ms)
{
    int64_t end = fp_time_mono_ms() + timeout_ms;

    while (strstr(c->last_payload, needle) == NULL && fp_time_mono_ms() < end)
        ft_mqtt_pump(c, 20);
    return strstr(c->last_payload, needle) != NULL;
}

/*
 * A broker slow to acknowledge, not gone: it is stopped (SIGSTOP) longer
 * than the bridge waits for a PUBACK, so a post's direct delivery falls
 * back to the queue, then resumed. Its connections never dropped, yet
 * deliveries go straight again within seconds (the bridge connects the
 * direct link again), rather than through the queue until the next
 * unexpected drop of the link.
 */
static void test_direct_back_after_slow_pubacks(void **state)
{
    const char *blog = env.node[0].bridge_log;
    long bfrom = ft_log_size(blog), from;
    bool straight = false;
    char id[8];
    ft_mqtt f;
    int i;

    (void)state;
    follow("cP", "cO");
    connect_user(&f, "cP", 5);
    assert_int_equal(kill((pid_t)-env.p.mosq.pid, SIGSTOP), 0);
    broker_stopped = true;
    post("o0", "cO", "to a stopped broker");
    assert_int_equal(ft_log_wait(blog, bfrom, "until the direct link has reconnected", 10000), 1);
    assert_int_equal(kill((pid_t)-env.p.mosq.pid, SIGCONT), 0);
    broker_stopped = false;
    assert_true(wait_payload(&f, "\"id\":\"o0\"", 10000));

    /* A post every 300 ms or so until one goes straight: 30 at most. */
    for (i = 1; i <= 30 && !straight; i++) {
        snprintf(id, sizeof(id), "o%d", i);
        post(id, "cO", "after the stop");
        straight = ft_log_wait(blog, bfrom, "go straight to its broker again", 300) == 1;
    }
    printf("# straight again at the %d. post after the broker resumed\n", i - 1);
    assert_true(straight);
    from = ft_plugin_env_log_size(&env.p);
    post("oback", "cO", "straight");
    assert_true(wait_payload(&f, "\"id\":\"oback\"", 5000));
    assert_int_equal(log_count(from, FROM_DIRECT, "'" FP_CONTROL_DELIVER_TOPIC "'"), 1);
    ft_mqtt_close(&f);
}

/* Where in c's first 16 messages the first one holding needle is; -1. */
static int payload_at(const ft_mqtt *c, const char *needle)
{
    int i;

    for (i = 0; i < c->received && i < 16; i++) {
        if (strstr(c->payloads[i], needle) != NULL)
            return i;
    }
    return -1;
}

/* Runs c's loop until both a and b are among its first 16 messages, or
 * timeout_ms. True when they are. */
static bool wait_both(ft_mqtt *c, const char *a, const char *b, int timeout_ms)
{
    int64_t end = fp_time_mono_ms() + timeout_ms;

    while ((payload_at(c, a) < 0 || payload_at(c, b) < 0) && fp_time_mono_ms() < end)
        ft_mqtt_pump(c, 20);
    return payload_at(c, a) >= 0 && payload_at(c, b) >= 0;
}

/*
 * Routing order across a switch back to the direct link: a post goes
 * through the queue while both of the bridge's links are taken over
 * (stage 2's half a second after the direct one, so the direct link is
 * back first); its delete, published once the direct link is back but
 * while stage 2 still waits for its own, must not reach the follower
 * before the post. Direct deliveries resume only once stage 2 has
 * delivered what went through the queue meanwhile: the next post goes
 * straight. A round where stage 2 was back before the delete proves
 * nothing and runs again (three at most).
 */
static void test_delete_after_post_across_switch(void **state)
{
    char *svc = ft_plugin_env_token_now(&env.p, "bridge-n1", FP_ROLE_SERVICE);
    const char *blog = env.node[0].bridge_log;
    char id[8], created[32], deleted[48];
    bool window = false;
    ft_mqtt f, imp_direct, imp_node;
    int round, at_post, at_delete;
    long bfrom;

    (void)state;
    follow("cG", "cD");
    for (round = 0; round < 3 && !window; round++) {
        connect_user(&f, "cG", 5);
        bfrom = ft_log_size(blog);
        assert_int_equal(
            ft_mqtt_connect(&imp_direct, env.p.mosq.port, DIRECT_ID, "bridge-n1", svc, 5, 3000), 0);
        assert_int_equal(ft_log_wait(blog, bfrom, DIRECT_ID " lost the broker", 5000), 1);
        ft_sleep_ms(500);
        assert_int_equal(ft_mqtt_connect(&imp_node, env.p.mosq.port, "feed-bridge-n1", "bridge-n1",
                                         svc, 5, 3000),
                         0);
        assert_int_equal(ft_log_wait(blog, bfrom, "feed-bridge-n1 lost the broker", 5000), 1);
        snprintf(id, sizeof(id), "d%d", round);
        post(id, "cD", "deleted soon");
        assert_int_equal(ft_log_wait(blog, bfrom, DIRECT_ID " connected to the broker again", 5000),
                         1);
        window = ft_log_wait(blog, bfrom, "feed-bridge-n1 connected to the broker again", 0) == 0;
        assert_int_equal(ft_node_publishf(&env, "post.deleted",
                                          "{\"type\":\"post.deleted\",\"post_id\":\"%s\","
                                          "\"author_id\":\"cD\"}",
                                          id),
                         0);
        snprintf(created, sizeof(created), "\"id\":\"%s\"", id);
        snprintf(deleted, sizeof(deleted), "\"post_id\":\"%s\"", id);
        assert_true(wait_both(&f, created, deleted, 10000));
        at_post = payload_at(&f, created);
        at_delete = payload_at(&f, deleted);
        printf("# round %d: stage 2 %s when the delete came; post at %d, delete at %d\n", round,
               window ? "still away" : "back", at_post, at_delete);
        assert_true(at_post >= 0 && at_delete >= 0);
        if (window)
            assert_true(at_post < at_delete);
        ft_mqtt_close(&imp_direct);
        ft_mqtt_close(&imp_node);
        ft_mqtt_close(&f);
    }
    assert_true(window);
    /* Straight again once stage 2 has caught up: at the delete already
     * (stage 1 waits for it) or at a post after it, 10 at most. */
    connect_user(&f, "cG", 5);
    for (round = 0; round < 10 && ft_log_wait(blog, bfrom, "go straight to its broker again",
                                              round == 0 ? 0 : 300) != 1;
         round++) {
        snprintf(id, sizeof(id), "db%d", round);
        post(id, "cD", "after");
    }
    assert_int_equal(ft_log_wait(blog, bfrom, "go straight to its broker again", 0), 1);
    ft_mqtt_close(&f);
    free(svc);
}

/* Publishes body to feed.deliver for node n1, as stage 1 would, and waits
 * for RabbitMQ's confirm. */
static void deliver_raw(const char *body)
{
    amqp_basic_properties_t props;

    memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    props.delivery_mode = 2;
    props.content_type = amqp_cstring_bytes("application/json");
    assert_int_equal(amqp_basic_publish(env.pub.c, 1, amqp_cstring_bytes("feed.deliver"),
                                        amqp_cstring_bytes("n1"), 0, 0, &props,
                                        amqp_cstring_bytes(body)),
                     AMQP_STATUS_OK);
    env.pub.published++;
    assert_int_equal(ft_event_pub_wait(&env.pub, env.pub.published, 10000), 0);
}

/*
 * Stage 2 against a hung broker: it is stopped (SIGSTOP) for 15 s, five
 * times the bridge's wait for a PUBACK, while a feed.deliver message is
 * in hand. The bridge connects its link again after the first missed
 * PUBACK and waits for a broker that answers, rather than publishing a
 * copy into the stalled connection at every try: once the broker
 * resumes, the user gets the post, and at most three copies of it (the
 * first, libmosquitto's resend of it on the new connection, the bridge's
 * retry), not one per timeout (five before the fix).
 */
static void test_hung_broker_few_copies(void **state)
{
    const char *blog = env.node[0].bridge_log;
    int copies, tries, i;
    ft_mqtt u;
    long bfrom;

    (void)state;
    connect_user(&u, "cQ", 5);
    bfrom = ft_log_size(blog);
    assert_int_equal(kill((pid_t)-env.p.mosq.pid, SIGSTOP), 0);
    broker_stopped = true;
    deliver_raw("{\"type\":\"deliver\",\"payload\":{\"type\":\"post.created\",\"post\":{"
                "\"id\":\"hq1\"}},\"recipients\":[\"cQ\"]}");
    ft_sleep_ms(15000); /* the fault's length */
    assert_int_equal(kill((pid_t)-env.p.mosq.pid, SIGCONT), 0);
    broker_stopped = false;
    assert_true(wait_payload(&u, "\"id\":\"hq1\"", 10000));
    ft_mqtt_pump(&u, 500); /* copies still on their way */
    copies = u.received;   /* each copy the broker took reached cQ once */
    for (i = 0; i < copies && i < 16; i++)
        assert_non_null(strstr(u.payloads[i], "\"id\":\"hq1\""));
    tries = ft_log_count(blog, bfrom, "publishing again once the broker is back");
    printf("# %d cop%s reached the broker, after %d tr%s\n", copies, copies == 1 ? "y" : "ies",
           tries, tries == 1 ? "y" : "ies");
    assert_true(copies >= 1 && copies <= 3);
    ft_mqtt_close(&u);
}

/* A delivery to 2,500 recipients (three of them online, one in each
 * thousand, and one invalid id the bridge skips) goes out as three control
 * messages of at most 1,000 recipients; each online one gets it once. */
static void test_large_delivery(void **state)
{
    static char body[2500 * 12 + 256];
    long long deliveries = ft_node_stat(&env, 1, "deliveries");
    long long acked = ft_node_stat(&env, 1, "stage2_count");
    ft_mqtt u[3];
    const char *online[3] = {"cU", "cV", "cW"};
    static const int at[3] = {10, 1500, 2400}; /* where they are in the list */
    size_t n;
    long from;
    int i, k;

    (void)state;
    for (i = 0; i < 3; i++)
        connect_user(&u[i], online[i], 5);
    n = (size_t)snprintf(body, sizeof(body),
                         "{\"type\":\"deliver\",\"payload\":{\"type\":\"post.created\",\"post\":{"
                         "\"id\":\"big1\"}},\"recipients\":[\"bad/id\"");
    for (i = 0, k = 0; i < 2500; i++) {
        if (k < 3 && i == at[k])
            n += (size_t)snprintf(body + n, sizeof(body) - n, ",\"%s\"", online[k++]);
        else
            n += (size_t)snprintf(body + n, sizeof(body) - n, ",\"x%d\"", i);
    }
    snprintf(body + n, sizeof(body) - n, "]}");

    from = ft_plugin_env_log_size(&env.p);
    deliver_raw(body);
    for (i = 0; i < 3; i++) {
        assert_int_equal(ft_mqtt_wait_messages(&u[i], 1, 5000), 1);
        assert_non_null(strstr(u[i].last_payload, "\"id\":\"big1\""));
        assert_ttl(&u[i]);
    }
    assert_true(ft_node_stat_wait(&env, 1, "stage2_count", acked + 1, 5000) >= acked + 1);
    assert_true(ft_node_stat_wait(&env, 1, "deliveries", deliveries + 2500, 3000) >=
                deliveries + 2500);
    assert_int_equal(ft_node_stat(&env, 1, "deliveries"), deliveries + 2500);
    assert_int_equal(log_count(from, FROM_BRIDGE, "'" FP_CONTROL_DELIVER_TOPIC "'"), 3);
    for (i = 0; i < 3; i++) {
        ft_mqtt_pump(&u[i], i == 0 ? 300 : 0);
        assert_int_equal(u[i].received, 1);
        ft_mqtt_close(&u[i]);
    }
}

/* A feed.deliver body for post id to first, n - 1 recipients with
 * 60-character ids (z0...01 on), then last (NULL: none), into body (cap
 * bytes). Returns its length. */
static size_t wide_body(char *body, size_t cap, const char *id, const char *first, int n,
                        const char *last)
{
    size_t len;
    int i;

    len = (size_t)snprintf(body, cap,
                           "{\"type\":\"deliver\",\"payload\":{\"type\":\"post.created\",\"post\":{"
                           "\"id\":\"%s\"}},\"recipients\":[\"%s\"",
                           id, first);
    for (i = 1; i < n; i++)
        len += (size_t)snprintf(body + len, cap - len, ",\"z%059d\"", i);
    if (last != NULL)
        len += (size_t)snprintf(body + len, cap - len, ",\"%s\"", last);
    len += (size_t)snprintf(body + len, cap - len, "]}");
    assert_true(len < cap);
    return len;
}

/*
 * A control message the broker refuses for its size (mosquitto's
 * message_size_limit, which its CONNACK does not announce: PUBACK 149)
 * and not for want of the fan-out: 700 recipients with 60-character ids
 * make it 43 KB, each of their publishes is small. That delivery goes out
 * per recipient (logged once), and the next one goes through the control
 * topic again. Before, any refusal made the link publish per recipient
 * until it reconnected.
 */
static void test_oversized_control(void **state)
{
    static char body[700 * 64 + 256];
    long long deliveries = ft_node_stat(&env, 1, "deliveries");
    long long acked = ft_node_stat(&env, 1, "stage2_count");
    const char *blog = env.node[0].bridge_log;
    long bfrom = ft_log_size(blog), from = ft_plugin_env_log_size(&env.p);
    size_t n;
    ft_mqtt u;

    (void)state;
    connect_user(&u, "cZ", 5);
    n = wide_body(body, sizeof(body), "wide1", "cZ", 700, NULL);
    assert_true(n > SIZE_LIMIT);
    deliver_raw(body);
    assert_true(wait_payload(&u, "\"id\":\"wide1\"", 10000));
    assert_true(ft_node_stat_wait(&env, 1, "stage2_count", acked + 1, 5000) >= acked + 1);
    assert_int_equal(ft_log_wait(blog, bfrom, "(reason code 149)", 3000), 1);
    /* Refused once, then one publish per recipient. */
    assert_int_equal(log_count(from, FROM_BRIDGE, "'" FP_CONTROL_DELIVER_TOPIC "'"), 0);
    assert_int_equal(log_count(from, FROM_BRIDGE, "'feed/"), 700);
    assert_true(ft_node_stat_wait(&env, 1, "deliveries", deliveries + 700, 3000) >=
                deliveries + 700);
    assert_int_equal(ft_node_stat(&env, 1, "deliveries"), deliveries + 700);

    /* The next delivery: one control message again. */
    from = ft_plugin_env_log_size(&env.p);
    deliver_raw("{\"type\":\"deliver\",\"payload\":{\"type\":\"post.created\",\"post\":{"
                "\"id\":\"wide2\"}},\"recipients\":[\"cZ\"]}");
    assert_true(wait_payload(&u, "\"id\":\"wide2\"", 5000));
    assert_true(ft_node_stat_wait(&env, 1, "stage2_count", acked + 2, 5000) >= acked + 2);
    assert_int_equal(log_count(from, FROM_BRIDGE, "'" FP_CONTROL_DELIVER_TOPIC "'"), 1);
    assert_int_equal(log_count(from, FROM_BRIDGE, "'feed/"), 0);
    assert_int_equal(ft_log_count(blog, bfrom, "does its feed_auth.so have the fan-out"), 0);
    assert_int_equal(ft_log_count(blog, bfrom, "refused a deliver control message"), 1);
    ft_mqtt_pump(&u, 200);
    assert_int_equal(u.received, 2);
    ft_mqtt_close(&u);
}

/*
 * A delivery split into two control messages of which only the first is
 * over message_size_limit: 1,001 recipients with 60-character ids, 1,000
 * in the first message (61 KB, refused with 149) and one in the second.
 * The first message's recipients get one publish each, the second is
 * delivered through the control topic, and every recipient gets the post
 * once. Before, the whole delivery went out per recipient after both
 * messages, so cZ2 got it twice.
 */
static void test_oversized_chunk(void **state)
{
    static char body[1001 * 64 + 256];
    long long deliveries = ft_node_stat(&env, 1, "deliveries");
    long long acked = ft_node_stat(&env, 1, "stage2_count");
    long from = ft_plugin_env_log_size(&env.p);
    ft_mqtt first, last;

    (void)state;
    connect_user(&first, "cZ1", 5);
    connect_user(&last, "cZ2", 5);
    wide_body(body, sizeof(body), "wide3", "cZ1", 1000, "cZ2");
    deliver_raw(body);
    assert_true(wait_payload(&first, "\"id\":\"wide3\"", 10000));
    assert_true(wait_payload(&last, "\"id\":\"wide3\"", 10000));
    assert_true(ft_node_stat_wait(&env, 1, "stage2_count", acked + 1, 5000) >= acked + 1);
    assert_true(ft_node_stat_wait(&env, 1, "deliveries", deliveries + 1001, 3000) >=
                deliveries + 1001);
    assert_int_equal(ft_node_stat(&env, 1, "deliveries"), deliveries + 1001);
    /* The second message through the control topic, the first's 1,000
     * recipients one by one, nobody twice. */
    assert_int_equal(log_count(from, FROM_BRIDGE, "'" FP_CONTROL_DELIVER_TOPIC "'"), 1);
    assert_int_equal(log_count(from, FROM_BRIDGE, "'feed/"), 1000);
    ft_mqtt_pump(&first, 300);
    ft_mqtt_pump(&last, 0);
    assert_int_equal(first.received, 1);
    assert_int_equal(last.received, 1);
    ft_mqtt_close(&first);
    ft_mqtt_close(&last);
}

/* A user may not publish to the control topic: the broker's ACL check
 * (before any control callback) refuses it, PUBACK 135 under MQTT 5
 * (3.1.1 has no refusal code: acked and dropped), and nothing reaches the
 * recipient it names. */
static void test_user_refused(void **state)
{
    char *tok = ft_plugin_env_token_now(&env.p, "cX", FP_ROLE_USER);
    const char *msg = "30 cR\n{\"type\":\"post.created\",\"post\":{\"id\":\"forged\"}}";
    ft_mqtt r, x5, x4;
    long from = ft_plugin_env_log_size(&env.p);

    (void)state;
    connect_user(&r, "cR", 5);
    assert_int_equal(ft_mqtt_connect(&x5, env.p.mosq.port, NULL, "cX", tok, 5, 3000), 0);
    assert_int_equal(ft_mqtt_publish(&x5, FP_CONTROL_DELIVER_TOPIC, msg, false, 3000),
                     MQTT_RC_NOT_AUTHORIZED);
    assert_int_equal(ft_mqtt_connect(&x4, env.p.mosq.port, NULL, "cX", tok, 4, 3000), 0);
    assert_int_equal(ft_mqtt_publish(&x4, FP_CONTROL_DELIVER_TOPIC, msg, false, 3000), 0);
    ft_mqtt_pump(&r, 500);
    assert_int_equal(r.received, 0);
    assert_int_equal(log_count(from, "Denied PUBLISH from ", "'" FP_CONTROL_DELIVER_TOPIC "'"), 2);
    /* Refused by the ACL, so the plugin's callback never saw them. */
    assert_int_equal(log_count(from, "not a service client", NULL), 0);
    ft_mqtt_pump(&x5, 100);
    assert_false(x5.disconnected);
    ft_mqtt_close(&x5);
    ft_mqtt_close(&x4);
    ft_mqtt_close(&r);
    free(tok);
}

/* Malformed control messages from a service client are refused as a
 * whole with one log line each: nothing delivered, the client stays
 * connected (mosquitto 2.0.11 acks a control message with 0 whatever the
 * plugin says), the broker keeps running; the next good one is delivered
 * with its expiry. */
static void test_malformed_refused(void **state)
{
    static const char *const bad[] = {
        "",
        "30 cM",
        "30 cM {\"a\":1}",
        "30\n{\"a\":1}",
        "30 \n{\"a\":1}",
        "30 cM\n",
        "30 cM  cM\n{\"a\":1}",
        "x cM\n{\"a\":1}",
        "4294967296 cM\n{\"a\":1}",
        "30 feed/cM\n{\"a\":1}",
        "30 cM/#\n{\"a\":1}",
        "30 cM+\n{\"a\":1}",
        "30 u1234567890123456789012345678901234567890123456789012345678901234\n{}",
    };
    const size_t n_bad = sizeof(bad) / sizeof(bad[0]);
    char *tok = ft_plugin_env_token_now(&env.p, "svc-test", FP_ROLE_SERVICE);
    long from = ft_plugin_env_log_size(&env.p);
    ft_mqtt m, s;
    size_t i;

    (void)state;
    connect_user(&m, "cM", 5);
    assert_int_equal(ft_mqtt_connect(&s, env.p.mosq.port, NULL, "svc-test", tok, 5, 3000), 0);
    for (i = 0; i < n_bad; i++) {
        assert_int_equal(ft_mqtt_publish(&s, FP_CONTROL_DELIVER_TOPIC, bad[i], false, 3000), 0);
        assert_false(s.disconnected);
    }
    assert_true(ft_plugin_env_log_wait(&env.p, from, MALFORMED, 3000));
    ft_mqtt_pump(&m, 300);
    assert_int_equal(log_count(from, MALFORMED, NULL), (int)n_bad);
    assert_int_equal(m.received, 0);

    assert_int_equal(
        ft_mqtt_publish(&s, FP_CONTROL_DELIVER_TOPIC, "7 cM\n{\"good\":1}", false, 3000), 0);
    assert_int_equal(ft_mqtt_wait_messages(&m, 1, 3000), 1);
    assert_string_equal(m.last_topic, "feed/cM");
    assert_string_equal(m.last_payload, "{\"good\":1}");
    assert_true(m.last_expiry_s > 0 && m.last_expiry_s <= 7);
    /* Expiry 0: none. */
    assert_int_equal(
        ft_mqtt_publish(&s, FP_CONTROL_DELIVER_TOPIC, "0 cM\n{\"good\":2}", false, 3000), 0);
    assert_int_equal(ft_mqtt_wait_messages(&m, 2, 3000), 2);
    assert_string_equal(m.last_payload, "{\"good\":2}");
    assert_int_equal(m.last_expiry_s, -1);
    assert_int_equal(log_count(from, MALFORMED, NULL), (int)n_bad);
    assert_false(ft_plugin_env_sanitizer_report(&env.p));
    ft_mqtt_close(&s);
    ft_mqtt_close(&m);
    free(tok);
}

/* clang-format off */
FT_MAIN(ft_mqtt_run_group, setup, teardown,
        cmocka_unit_test(test_fanout_in_broker),
        cmocka_unit_test(test_direct_falls_back),
        cmocka_unit_test(test_large_delivery),
        cmocka_unit_test(test_oversized_control),
        cmocka_unit_test(test_oversized_chunk),
        cmocka_unit_test(test_user_refused),
        cmocka_unit_test(test_malformed_refused),
        /* Last: the copies their faults leave are still being counted after them. */
        cmocka_unit_test(test_delete_after_post_across_switch),
        cmocka_unit_test_teardown(test_hung_broker_few_copies, resume_broker),
        cmocka_unit_test_teardown(test_direct_back_after_slow_pubacks, resume_broker))
/* clang-format on */
