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
#include <sys/wait.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <mosquitto.h>

#include "ft_redis.h"
#include "node_env.h"
#include "ft_main.h"

#define STREAM_POSTS 300
#define STREAM_PACE_US 5000 /* between two confirmed publishes */
#define PAUSE_MS 2500       /* longer than the bridge's 2 s timeout (node_env) */
#define SETTLE_TIMEOUT_MS 30000
#define RECOVERY_TIMEOUT_MS 20000
#define WATCH_MAX 1024 /* post indexes a watcher can count */
#define N_RCPT 4

static ft_node_env env;

/* The recipients of a test's posts: the author and the three followers. */
static const char *const rcpt_suffix[N_RCPT] = {"a", "f1", "f2", "f3"};

FT_FIXTURES(ft_node_env_start(&env, 1), ft_node_env_stop(&env))

/* ------------------------------------------------------------ redis */

/* A command (rq) or an integer reply, -1 for anything else (rq_int), on a
 * connection of its own: Redis is restarted under our feet. */
#define rq(...) ft_redis_once(env.p.redis.port, __VA_ARGS__)
#define rq_int(...) ft_redis_once_int(env.p.redis.port, __VA_ARGS__)

/* Asserts that a command got a status or integer reply (not an error). */
static void rq_ok(redisReply *r)
{
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        print_message("redis error: %s\n", r->str);
    assert_true(r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
}

/* Presence reaches Redis through the plugin's thread: wait for it. */
static void wait_online(const char *uid)
{
    int i;

    for (i = 0; i < 150; i++) {
        if (rq_int("SISMEMBER online:%s %s", env.p.node_id, uid) == 1)
            return;
        ft_sleep_ms(20);
    }
    fail_msg("%s never showed up in online:%s", uid, env.p.node_id);
}

/* ------------------------------------------------------------ events */

static void post_id(const char *t, int i, char *out, size_t len)
{
    snprintf(out, len, "%sp%04d", t, i);
}

/* The post.created body of post i of test t; with explicit recipients
 * (the followers) when explicit, else they come from followers:<t>a. */
static void post_body(const char *t, int i, bool explicit_rcpt, char *out, size_t len)
{
    char id[64], rcpt[256] = "";

    post_id(t, i, id, sizeof(id));
    if (explicit_rcpt)
        snprintf(rcpt, sizeof(rcpt), ",\"recipients\":[\"%sf1\",\"%sf2\",\"%sf3\"]", t, t, t);
    snprintf(out, len,
             "{\"type\":\"post.created\",\"post\":{\"id\":\"%s\",\"author_id\":\"%sa\","
             "\"text\":\"post %d\",\"created_at\":%lld}%s}",
             id, t, i, (long long)time(NULL) * 1000, rcpt);
}

/* Publishes post i of test t (followers from Redis) from the main thread:
 * only while no stream runs. */
static void publish_post(const char *t, int i)
{
    char body[512];

    post_body(t, i, false, body, sizeof(body));
    assert_int_equal(ft_node_publish(&env, "post.created", body), 0);
}

/* The three follows of test t, then waits until Redis has them. */
static void follow_author(const char *t)
{
    char body[256];
    int i;

    for (i = 1; i <= 3; i++) {
        snprintf(body, sizeof(body),
                 "{\"type\":\"follow.created\",\"follower_id\":\"%sf%d\",\"followee_id\":\"%sa\"}",
                 t, i, t);
        assert_int_equal(ft_node_publish(&env, "follow.created", body), 0);
    }
    for (i = 0; i < 250 && rq_int("SCARD followers:%sa", t) != 3; i++)
        ft_sleep_ms(20);
    assert_int_equal(rq_int("SCARD followers:%sa", t), 3);
}

/* ------------------------------------------------------------ the stream */

/*
 * A publisher thread: posts 0..n-1 of test t, one every
 * STREAM_PACE_US after the previous confirm. It owns env.pub while it
 * runs, so the main thread neither publishes nor asks queue depths then.
 */
typedef struct {
    char t[16];
    int n;
    bool explicit_rcpt;
    atomic_int sent; /* confirmed by RabbitMQ */
    atomic_int failed;
    atomic_int stop; /* set by the per-test cleanup after a failure */
    pthread_t th;
} stream;

/* What a failed test leaves running, for cleanup(). */
static stream *running_stream;
static struct watcher *running_watchers[4];

static void *stream_run(void *arg)
{
    stream *s = arg;
    char body[512];
    int i;

    for (i = 0; i < s->n && !atomic_load(&s->stop); i++) {
        post_body(s->t, i, s->explicit_rcpt, body, sizeof(body));
        if (ft_node_publish(&env, "post.created", body) != 0) {
            atomic_store(&s->failed, 1);
            break;
        }
        atomic_fetch_add(&s->sent, 1);
        usleep(STREAM_PACE_US);
    }
    return NULL;
}

static void stream_start(stream *s, const char *t, int n, bool explicit_rcpt)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->t, sizeof(s->t), "%s", t);
    s->n = n;
    s->explicit_rcpt = explicit_rcpt;
    atomic_init(&s->sent, 0);
    atomic_init(&s->failed, 0);
    atomic_init(&s->stop, 0);
    assert_int_equal(pthread_create(&s->th, NULL, stream_run, s), 0);
    running_stream = s;
}

/* Waits until k posts are confirmed (30 s at most). */
static void stream_wait(stream *s, int k)
{
    int i;

    for (i = 0; i < 3000 && atomic_load(&s->sent) < k && !atomic_load(&s->failed); i++)
        ft_sleep_ms(10);
    assert_false(atomic_load(&s->failed));
    assert_true(atomic_load(&s->sent) >= k);
}

/* Index of the next post the stream publishes (the last one if done). */
static int stream_next(stream *s)
{
    int next = atomic_load(&s->sent);

    return next < s->n ? next : s->n - 1;
}

static void stream_join(stream *s)
{
    running_stream = NULL;
    assert_int_equal(pthread_join(s->th, NULL), 0);
    assert_false(atomic_load(&s->failed));
    assert_int_equal(atomic_load(&s->sent), s->n);
}

/* ------------------------------------------------------------ feeds */

typedef struct {
    long long len;  /* entries */
    int present;    /* required posts present */
    int missing;    /* required posts absent */
    int duplicated; /* posts present more than once */
    int foreign;    /* entries that are not posts 0..n-1 of the test */
    int first_dup;  /* one duplicated index, for the message */
    int first_missing;
} feed_scan;

/*
 * Reads feed:<t><suffix> and classifies its entries against posts 0..n-1
 * of test t, of which from..n-1 are required. Returns 0, or -1 when Redis
 * did not answer.
 */
static int scan_feed(const char *t, const char *suffix, int n, int from, feed_scan *out)
{
    redisReply *r = rq("LRANGE feed:%s%s 0 -1", t, suffix);
    size_t tl = strlen(t), i;
    unsigned char *count;
    char *end;
    long idx;
    int k;

    memset(out, 0, sizeof(*out));
    out->first_dup = out->first_missing = -1;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return -1;
    }
    count = calloc((size_t)n, 1);
    assert_non_null(count);
    out->len = (long long)r->elements;
    for (i = 0; i < r->elements; i++) {
        const char *s = r->element[i]->str;

        idx = -1;
        if (s != NULL && strncmp(s, t, tl) == 0 && s[tl] == 'p') {
            idx = strtol(s + tl + 1, &end, 10);
            if (*end != '\0' || end == s + tl + 1)
                idx = -1;
        }
        if (idx < 0 || idx >= n) {
            out->foreign++;
            continue;
        }
        if (count[idx] < 255)
            count[idx]++;
    }
    for (k = 0; k < n; k++) {
        if (count[k] > 1) {
            out->duplicated++;
            if (out->first_dup < 0)
                out->first_dup = k;
        }
        if (k >= from && count[k] > 0)
            out->present++;
        if (k >= from && count[k] == 0) {
            out->missing++;
            if (out->first_missing < 0)
                out->first_missing = k;
        }
    }
    free(count);
    freeReplyObject(r);
    return 0;
}

/* True when every recipient's feed holds posts from..n-1. */
static bool feeds_complete(const char *t, int n, int from)
{
    feed_scan f;
    int i;

    for (i = 0; i < N_RCPT; i++) {
        if (scan_feed(t, rcpt_suffix[i], n, from, &f) != 0 || f.missing > 0)
            return false;
    }
    return true;
}

/*
 * Waits until the bridge is done with the stream: every recipient has
 * posts from..n-1 (or SETTLE_TIMEOUT_MS passed), feed.events.bridge is
 * empty and stage1_count stood still over a counter period (so a late
 * redelivery would have shown up as a duplicate).
 */
static void settle(const char *t, int n, int from)
{
    int64_t end = fp_time_mono_ms() + SETTLE_TIMEOUT_MS;
    long long before, after;

    while (!feeds_complete(t, n, from) && fp_time_mono_ms() < end)
        ft_sleep_ms(50);
    while (fp_time_mono_ms() < end) {
        before = ft_node_stat(&env, 1, "stage1_count");
        ft_sleep_ms(1200);
        after = ft_node_stat(&env, 1, "stage1_count");
        if (before == after && before >= 0 &&
            ft_node_queue_depth(&env, "feed.events.bridge") == 0)
            return;
    }
    print_message("the bridge did not settle within %d ms\n", SETTLE_TIMEOUT_MS);
}

/*
 * Asserts that every recipient's feed holds posts from..n-1 exactly once,
 * no other post of the test twice, nothing foreign, and, when from is 0,
 * nothing else at all. Returns how many posts before `from` survived in
 * the author's feed (for the report).
 */
static int assert_feeds(const char *t, int n, int from)
{
    feed_scan f;
    int i, bad = 0, kept = 0;

    for (i = 0; i < N_RCPT; i++) {
        assert_int_equal(scan_feed(t, rcpt_suffix[i], n, from, &f), 0);
        if (f.missing > 0 || f.duplicated > 0 || f.foreign > 0 || (from == 0 && f.len != n)) {
            print_message("feed:%s%s: %lld entries for %d posts; %d missing (first: %sp%04d), "
                          "%d duplicated (first: %sp%04d), %d foreign\n",
                          t, rcpt_suffix[i], f.len, n - from, f.missing, t, f.first_missing,
                          f.duplicated, t, f.first_dup, f.foreign);
            bad++;
        }
        if (i == 0)
            kept = (int)f.len - f.present - f.foreign;
    }
    assert_int_equal(bad, 0);
    return kept;
}

/*
 * Milliseconds from now until post i of test t is in every recipient's
 * feed, or -1 after RECOVERY_TIMEOUT_MS.
 */
static int64_t wait_post_everywhere(const char *t, int i)
{
    int64_t t0 = fp_time_mono_ms();
    char id[64];
    int k, found;

    post_id(t, i, id, sizeof(id));
    while (fp_time_mono_ms() - t0 < RECOVERY_TIMEOUT_MS) {
        found = 0;
        for (k = 0; k < N_RCPT; k++) {
            redisReply *r = rq("LPOS feed:%s%s %s", t, rcpt_suffix[k], id);

            if (r != NULL && r->type == REDIS_REPLY_INTEGER)
                found++;
            freeReplyObject(r);
        }
        if (found == N_RCPT)
            return fp_time_mono_ms() - t0;
        ft_sleep_ms(10);
    }
    return -1;
}

/* Asserts the recovery and prints it. */
static void report_recovery(const char *what, const char *t, int i)
{
    int64_t ms = wait_post_everywhere(t, i);

    if (ms < 0)
        fail_msg("%s: post %sp%04d (published after the fault) not in every feed after %d ms", what,
                 t, i, RECOVERY_TIMEOUT_MS);
    printf("# %s: the first post published after the fault was in every feed %lld ms later\n", what,
           (long long)ms);
}

/* ------------------------------------------------------------ the bridge */

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

/* ------------------------------------------------------------ live watcher */

/*
 * An MQTT user subscribed to feed/<uid> on a libmosquitto thread of its
 * own (it keeps reading while the test does other things, and reconnects
 * and resubscribes after the broker restarts). Counts the posts of test t
 * it receives, by index.
 */
typedef struct watcher {
    struct mosquitto *m;
    char uid[FP_ID_BUFSZ];
    char topic[FP_ID_BUFSZ + 8];
    char t[16];
    pthread_mutex_t lock;
    unsigned char seen[WATCH_MAX];
    int connects;
    int messages;
} watcher;

static void watcher_on_connect(struct mosquitto *m, void *obj, int rc)
{
    watcher *w = obj;

    if (rc != 0)
        return;
    mosquitto_subscribe(m, NULL, w->topic, 1);
    pthread_mutex_lock(&w->lock);
    w->connects++;
    pthread_mutex_unlock(&w->lock);
}

static void watcher_on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    watcher *w = obj;
    char needle[48], buf[4096];
    const char *p;
    long idx = -1;
    size_t len;

    (void)m;
    len = (size_t)msg->payloadlen < sizeof(buf) - 1 ? (size_t)msg->payloadlen : sizeof(buf) - 1;
    memcpy(buf, msg->payload, len);
    buf[len] = '\0';
    snprintf(needle, sizeof(needle), "\"id\":\"%sp", w->t);
    p = strstr(buf, needle);
    if (p != NULL)
        idx = strtol(p + strlen(needle), NULL, 10);
    pthread_mutex_lock(&w->lock);
    w->messages++;
    if (idx >= 0 && idx < WATCH_MAX && w->seen[idx] < 255)
        w->seen[idx]++;
    pthread_mutex_unlock(&w->lock);
}

static int watcher_connects(watcher *w)
{
    int n;

    pthread_mutex_lock(&w->lock);
    n = w->connects;
    pthread_mutex_unlock(&w->lock);
    return n;
}

/* Waits until the watcher has connected (and subscribed) `connects` times
 * and is online in Redis. */
static void watcher_wait_connected(watcher *w, int connects)
{
    int i;

    for (i = 0; i < 500 && watcher_connects(w) < connects; i++)
        ft_sleep_ms(20);
    assert_true(watcher_connects(w) >= connects);
    ft_sleep_ms(100); /* the SUBACK follows the CONNACK */
    wait_online(w->uid);
}

/* Connects user <t><suffix> and subscribes to its feed. */
static void watcher_start(watcher *w, const char *t, const char *suffix)
{
    char *tok;
    int i;

    memset(w, 0, sizeof(*w));
    snprintf(w->uid, sizeof(w->uid), "%s%s", t, suffix);
    snprintf(w->topic, sizeof(w->topic), "feed/%s", w->uid);
    snprintf(w->t, sizeof(w->t), "%s", t);
    pthread_mutex_init(&w->lock, NULL);
    w->m = mosquitto_new(NULL, true, w);
    assert_non_null(w->m);
    tok = ft_plugin_env_token_now(&env.p, w->uid, FP_ROLE_USER);
    assert_int_equal(mosquitto_username_pw_set(w->m, w->uid, tok), MOSQ_ERR_SUCCESS);
    free(tok);
    mosquitto_connect_callback_set(w->m, watcher_on_connect);
    mosquitto_message_callback_set(w->m, watcher_on_message);
    mosquitto_reconnect_delay_set(w->m, 1, 2, false);
    assert_int_equal(mosquitto_connect(w->m, "127.0.0.1", env.p.mosq.port, 30), MOSQ_ERR_SUCCESS);
    assert_int_equal(mosquitto_loop_start(w->m), MOSQ_ERR_SUCCESS);
    for (i = 0; i < 4; i++) {
        if (running_watchers[i] == NULL) {
            running_watchers[i] = w;
            break;
        }
    }
    watcher_wait_connected(w, 1);
}

static void watcher_stop(watcher *w)
{
    int i;

    for (i = 0; i < 4; i++) {
        if (running_watchers[i] == w)
            running_watchers[i] = NULL;
    }
    mosquitto_disconnect(w->m);
    mosquitto_loop_stop(w->m, false);
    mosquitto_destroy(w->m);
    pthread_mutex_destroy(&w->lock);
}

/* How many of posts from..n-1 the watcher has seen at least once. */
static int watcher_count(watcher *w, int from, int n)
{
    int i, got = 0;

    pthread_mutex_lock(&w->lock);
    for (i = from; i < n; i++)
        got += w->seen[i] > 0;
    pthread_mutex_unlock(&w->lock);
    return got;
}

/* Waits (up to timeout_ms) until the watcher saw posts from..n-1; returns
 * the milliseconds it took or -1. */
static int64_t watcher_wait(watcher *w, int from, int n, int timeout_ms)
{
    int64_t t0 = fp_time_mono_ms();

    while (watcher_count(w, from, n) < n - from) {
        if (fp_time_mono_ms() - t0 > timeout_ms)
            return -1;
        ft_sleep_ms(10);
    }
    return fp_time_mono_ms() - t0;
}

/* Asserts that the online follower got every post live at least once. */
static void assert_watcher_all(watcher *w, int n)
{
    if (watcher_wait(w, 0, n, 10000) < 0)
        fail_msg("%s received %d of %d posts live (%d messages)", w->uid, watcher_count(w, 0, n), n,
                 w->messages);
}

/*
 * After a Redis fault: waits until the watcher's presence and its node's
 * heartbeat are back (the plugin rewrites them when it reconnects), and
 * returns the index of the first post published after that.
 */
static int live_again_from(watcher *w, stream *s)
{
    int i;

    wait_online(w->uid);
    for (i = 0; i < 250 && rq_int("EXISTS node:%s", env.p.node_id) != 1; i++)
        ft_sleep_ms(20);
    assert_int_equal(rq_int("EXISTS node:%s", env.p.node_id), 1);
    return stream_next(s) + 1;
}

/* Asserts that the watcher got posts from..n-1 live and reports how many
 * of the earlier ones it missed. */
static void assert_watcher_from(watcher *w, int from, int n)
{
    if (from < n && watcher_wait(w, from, n, 10000) < 0)
        fail_msg("%s received %d of the %d posts published once presence was back", w->uid,
                 watcher_count(w, from, n), n - from);
    printf("# %s: %d of the %d posts before that were not delivered live\n", w->uid,
           from - watcher_count(w, 0, from), from);
}

/* A test's scenario begins: t's author followed, follower f1 online
 * (watcher w), and stream s of n posts running. */
static void scenario_start(const char *t, watcher *w, stream *s, int n)
{
    follow_author(t);
    watcher_start(w, t, "f1");
    stream_start(s, t, n, false);
}

/* The scenario ends after a fault the bridge rode out: once the stream is
 * done, every feed has each of the n posts once and w got all of them
 * live. */
static void scenario_end_all(const char *t, watcher *w, stream *s, int n)
{
    stream_join(s);
    settle(t, n, 0);
    assert_feeds(t, n, 0);
    assert_watcher_all(w, n);
    watcher_stop(w);
}

/* The scenario ends after a Redis fault that kept the data: once the
 * stream is done, one more post (so the live check is never empty); every
 * feed has each post once, the bridge is still process pid, and w got
 * every post from live on (live_again_from) live. */
static void redis_fault_end(const char *t, watcher *w, stream *s, int n, int live, pid_t pid)
{
    stream_join(s);
    publish_post(t, n);
    settle(t, n + 1, 0);
    assert_feeds(t, n + 1, 0);
    assert_same_bridge(pid);
    assert_watcher_from(w, live, n + 1);
    watcher_stop(w);
}

/*
 * After each test, also a failed one (cmocka jumps out of it): stops the
 * stream and the watchers it left running and starts the bridge again if
 * it was down, so the next test finds the node pair as usual. (Tests keep
 * their stream and watchers in static storage: those threads may outlive
 * the stack frame of a test that failed.)
 */
static int cleanup(void **state)
{
    int i;

    (void)state;
    if (running_stream != NULL) {
        atomic_store(&running_stream->stop, 1);
        pthread_join(running_stream->th, NULL);
        running_stream = NULL;
    }
    for (i = 0; i < 4; i++) {
        if (running_watchers[i] != NULL)
            watcher_stop(running_watchers[i]);
    }
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

    stream_wait(&s, 100);
    for (i = 0; i < 5; i++) {
        rq_ok(rq("CLIENT KILL TYPE normal"));
        ft_sleep_ms(100);
    }
    report_recovery("redis clients killed 5x", t, stream_next(&s));

    stream_wait(&s, 250);
    rq_ok(rq("CLIENT PAUSE %d ALL", PAUSE_MS));
    ft_sleep_ms(PAUSE_MS);
    report_recovery("redis paused 2.5 s", t, stream_next(&s));
    live = live_again_from(&w, &s);

    redis_fault_end(t, &w, &s, n, live, pid);
    assert_true(ft_node_stat(&env, 1, "reconnects_redis") >= rec0 + 2);
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

    stream_start(&s, t, n, true);
    stream_wait(&s, n / 2);
    assert_int_equal(ft_server_restart(&env.p.redis), 0);
    from = stream_next(&s);
    assert_int_equal(rq_int("EXISTS faults:before"), 0); /* it did lose everything */
    report_recovery("redis restarted empty", t, from);

    stream_join(&s);
    settle(t, n, from);
    kept = assert_feeds(t, n, from);
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
    stream_wait(&s, n / 2);
    assert_int_equal(ft_server_restart(&env.p.redis), 0);
    assert_int_equal(rq_int("EXISTS faults:kept"), 1);
    report_recovery("redis restarted (data kept)", t, stream_next(&s));
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

    stream_wait(&s, n / 2);
    down = fp_time_mono_ms();
    status = ft_node_bridge_signal(&env, 1, SIGKILL, 2000);
    assert_true(status != -1);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    stream_wait(&s, n / 2 + 50); /* while it is down */
    start_ms = restart_bridge();
    printf("# bridge SIGKILLed: down %lld ms, of which the new process took %lld ms to start\n",
           (long long)(fp_time_mono_ms() - down), (long long)start_ms);
    report_recovery("bridge restarted after SIGKILL", t, stream_next(&s));

    scenario_end_all(t, &w, &s, n);
}

/* Waits for post i to reach w live (15 s at most) and reports how long
 * after `since` (the broker restart) that was. */
static void live_again(watcher *w, int i, int64_t since)
{
    if (watcher_wait(w, i, i + 1, 15000) < 0)
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
    follow_author(t);
    watcher_start(&w1, t, "f1"); /* online through the restart: reconnects */
    stream_start(&s, t, n, false);

    stream_wait(&s, n / 3);
    t0 = fp_time_mono_ms();
    assert_int_equal(ft_server_restart(&env.p.mosq), 0);
    back = fp_time_mono_ms();
    printf("# mosquitto restart took %lld ms\n", (long long)(back - t0));
    report_recovery("mosquitto restarted", t, stream_next(&s));

    /* A user who connects after the restart gets the next live post (one
     * of the stream's, or the extra one below when the stream is over). */
    watcher_start(&w2, t, "f2");
    from2 = stream_next(&s) + 1;
    if (from2 < n)
        live_again(&w2, from2, back);
    watcher_wait_connected(&w1, 2);
    from1 = stream_next(&s) + 1;
    stream_join(&s);
    publish_post(t, n);
    if (from2 >= n)
        live_again(&w2, n, back);

    if (watcher_wait(&w2, from2, n + 1, 10000) < 0)
        fail_msg("%sf2 got %d of the %d posts published after it was online", t,
                 watcher_count(&w2, from2, n + 1), n + 1 - from2);
    if (watcher_wait(&w1, from1, n + 1, 10000) < 0)
        fail_msg("%sf1 got %d of the %d posts published after it was back online", t,
                 watcher_count(&w1, from1, n + 1), n + 1 - from1);

    settle(t, n + 1, 0);
    assert_feeds(t, n + 1, 0);
    assert_same_bridge(pid);
    assert_true(ft_node_stat(&env, 1, "reconnects_mqtt") > mq0);
    watcher_stop(&w2);
    watcher_stop(&w1);
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

    stream_wait(&s, n / 2);
    t0 = fp_time_mono_ms();
    status = ft_node_bridge_signal(&env, 1, sig, 5000);
    stop_ms = fp_time_mono_ms() - t0;
    if (status == -1)
        fail_msg("feed-bridge still running 5 s after %s", strsignal(sig));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    printf("# %s mid-stream: the bridge exited 0 after %lld ms\n", strsignal(sig),
           (long long)stop_ms);
    stream_wait(&s, n / 2 + n / 6); /* while it is down */
    restart_bridge();
    report_recovery("bridge restarted after a clean stop", t, stream_next(&s));

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

/* clang-format off */
FT_MAIN(ft_mqtt_run_group, setup, teardown,
        cmocka_unit_test_teardown(test_redis_client_kill_and_pause, cleanup),
        /* Before the restart that writes an RDB (it unlinks it anyway). */
        cmocka_unit_test_teardown(test_redis_restart_empty, cleanup),
        cmocka_unit_test_teardown(test_redis_restart_keeps_data, cleanup),
        cmocka_unit_test_teardown(test_bridge_sigkill, cleanup),
        cmocka_unit_test_teardown(test_mosquitto_restart, cleanup),
        cmocka_unit_test_teardown(test_sigint_mid_stream, cleanup),
        cmocka_unit_test_teardown(test_sigterm_mid_stream, cleanup))
/* clang-format on */
