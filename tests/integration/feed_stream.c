/*
 * feed_stream.c - streams of posts, feed checks and live watchers for the
 * fault tests; see feed_stream.h.
 */
#include "feed_stream.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <mosquitto.h>

#include "fp_time.h"

#define FS__SETTLE_TIMEOUT_MS 30000
#define FS__RECOVERY_TIMEOUT_MS 20000
#define FS__WATCHERS 8

static ft_node_env *fs__env;
static ft_stream *fs__running;
static ft_watcher *fs__watchers[FS__WATCHERS];

/* The recipients of a test's posts: the author and the three followers. */
static const char *const fs__rcpt[FT_STREAM_RCPT] = {"a", "f1", "f2", "f3"};

/* A command (fs__rq) or an integer reply, -1 for anything else
 * (fs__rq_int), on a connection of its own: Redis may be restarted under
 * our feet. */
#define fs__rq(...) ft_redis_once(fs__env->p.redis.port, __VA_ARGS__)
#define fs__rq_int(...) ft_redis_once_int(fs__env->p.redis.port, __VA_ARGS__)

void ft_stream_use(ft_node_env *e)
{
    fs__env = e;
}

/* ------------------------------------------------------------ events */

void ft_stream_post_id(const char *t, int i, char *out, size_t len)
{
    snprintf(out, len, "%sp%04d", t, i);
}

/* The post.created body of post i of test t; with explicit recipients
 * (the followers) when explicit, else they come from followers:<t>a. */
static void fs__post_body(const char *t, int i, bool explicit_rcpt, char *out, size_t len)
{
    char id[64], rcpt[256] = "";

    ft_stream_post_id(t, i, id, sizeof(id));
    if (explicit_rcpt)
        snprintf(rcpt, sizeof(rcpt), ",\"recipients\":[\"%sf1\",\"%sf2\",\"%sf3\"]", t, t, t);
    snprintf(out, len,
             "{\"type\":\"post.created\",\"post\":{\"id\":\"%s\",\"author_id\":\"%sa\","
             "\"text\":\"post %d\",\"created_at\":%lld}%s}",
             id, t, i, (long long)time(NULL) * 1000, rcpt);
}

void ft_stream_publish_post(const char *t, int i)
{
    char body[512];

    fs__post_body(t, i, false, body, sizeof(body));
    assert_int_equal(ft_node_publish(fs__env, "post.created", body), 0);
}

void ft_stream_follow(const char *t)
{
    char body[256];
    int i;

    for (i = 1; i <= 3; i++) {
        snprintf(body, sizeof(body),
                 "{\"type\":\"follow.created\",\"follower_id\":\"%sf%d\",\"followee_id\":\"%sa\"}",
                 t, i, t);
        assert_int_equal(ft_node_publish(fs__env, "follow.created", body), 0);
    }
    for (i = 0; i < 250 && fs__rq_int("SCARD followers:%sa", t) != 3; i++)
        ft_sleep_ms(20);
    assert_int_equal(fs__rq_int("SCARD followers:%sa", t), 3);
}

/* ------------------------------------------------------------ the stream */

static void *fs__stream_run(void *arg)
{
    ft_stream *s = arg;
    char body[512];
    int i;

    for (i = 0; i < s->n && !atomic_load(&s->stop); i++) {
        fs__post_body(s->t, i, s->explicit_rcpt, body, sizeof(body));
        if (ft_node_publish(fs__env, "post.created", body) != 0) {
            atomic_store(&s->failed, 1);
            break;
        }
        atomic_fetch_add(&s->sent, 1);
        usleep((useconds_t)s->pace_us);
    }
    return NULL;
}

void ft_stream_start(ft_stream *s, const char *t, int n, bool explicit_rcpt, int pace_us)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->t, sizeof(s->t), "%s", t);
    s->n = n;
    s->pace_us = pace_us;
    s->explicit_rcpt = explicit_rcpt;
    atomic_init(&s->sent, 0);
    atomic_init(&s->failed, 0);
    atomic_init(&s->stop, 0);
    assert_int_equal(pthread_create(&s->th, NULL, fs__stream_run, s), 0);
    fs__running = s;
}

void ft_stream_wait(ft_stream *s, int k)
{
    int i;

    for (i = 0; i < 3000 && atomic_load(&s->sent) < k && !atomic_load(&s->failed); i++)
        ft_sleep_ms(10);
    assert_false(atomic_load(&s->failed));
    assert_true(atomic_load(&s->sent) >= k);
}

int ft_stream_next(ft_stream *s)
{
    int next = atomic_load(&s->sent);

    return next < s->n ? next : s->n - 1;
}

void ft_stream_join(ft_stream *s)
{
    fs__running = NULL;
    assert_int_equal(pthread_join(s->th, NULL), 0);
    assert_false(atomic_load(&s->failed));
    assert_int_equal(atomic_load(&s->sent), s->n);
}

/* ------------------------------------------------------------ feeds */

int ft_feed_scan_one(const char *t, const char *suffix, int n, int from, ft_feed_scan *out)
{
    redisReply *r = fs__rq("ZREVRANGE feed:%s%s 0 -1", t, suffix);
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
static bool fs__feeds_complete(const char *t, int n, int from)
{
    ft_feed_scan f;
    int i;

    for (i = 0; i < FT_STREAM_RCPT; i++) {
        if (ft_feed_scan_one(t, fs__rcpt[i], n, from, &f) != 0 || f.missing > 0)
            return false;
    }
    return true;
}

/* The events all bridges have handled (their stage1_count summed), or -1
 * when one has no counters. */
static long long fs__handled(void)
{
    long long sum = 0, v;
    int i;

    for (i = 1; i <= fs__env->n_nodes; i++) {
        v = ft_node_stat(fs__env, i, "stage1_count");
        if (v < 0)
            return -1;
        sum += v;
    }
    return sum;
}

void ft_feeds_settle(const char *t, int n, int from)
{
    int64_t end = fp_time_mono_ms() + FS__SETTLE_TIMEOUT_MS;
    long long before, after;

    while (!fs__feeds_complete(t, n, from) && fp_time_mono_ms() < end)
        ft_sleep_ms(50);
    while (fp_time_mono_ms() < end) {
        before = fs__handled();
        ft_sleep_ms(1200); /* longer than the bridges' 1 s counter period */
        after = fs__handled();
        if (before == after && before >= 0 &&
            ft_node_queue_depth(fs__env, "feed.events.bridge") == 0)
            return;
    }
    print_message("the bridges did not settle within %d ms\n", FS__SETTLE_TIMEOUT_MS);
}

int ft_feeds_assert(const char *t, int n, int from)
{
    ft_feed_scan f;
    int i, bad = 0, kept = 0;

    for (i = 0; i < FT_STREAM_RCPT; i++) {
        assert_int_equal(ft_feed_scan_one(t, fs__rcpt[i], n, from, &f), 0);
        if (f.missing > 0 || f.duplicated > 0 || f.foreign > 0 || (from == 0 && f.len != n)) {
            print_message("feed:%s%s: %lld entries for %d posts; %d missing (first: %sp%04d), "
                          "%d duplicated (first: %sp%04d), %d foreign\n",
                          t, fs__rcpt[i], f.len, n - from, f.missing, t, f.first_missing,
                          f.duplicated, t, f.first_dup, f.foreign);
            bad++;
        }
        if (i == 0)
            kept = (int)f.len - f.present - f.foreign;
    }
    assert_int_equal(bad, 0);
    return kept;
}

/* Milliseconds from now until post i of test t is in every recipient's
 * feed, or -1 after FS__RECOVERY_TIMEOUT_MS. */
static int64_t fs__wait_post_everywhere(const char *t, int i)
{
    int64_t t0 = fp_time_mono_ms();
    char id[64];
    int k, found;

    ft_stream_post_id(t, i, id, sizeof(id));
    while (fp_time_mono_ms() - t0 < FS__RECOVERY_TIMEOUT_MS) {
        found = 0;
        for (k = 0; k < FT_STREAM_RCPT; k++) {
            redisReply *r = fs__rq("ZRANK feed:%s%s %s", t, fs__rcpt[k], id);

            if (r != NULL && r->type == REDIS_REPLY_INTEGER)
                found++;
            freeReplyObject(r);
        }
        if (found == FT_STREAM_RCPT)
            return fp_time_mono_ms() - t0;
        ft_sleep_ms(10);
    }
    return -1;
}

void ft_feeds_report_recovery(const char *what, const char *t, int i)
{
    int64_t ms = fs__wait_post_everywhere(t, i);

    if (ms < 0)
        fail_msg("%s: post %sp%04d (published after the fault) not in every feed after %d ms", what,
                 t, i, FS__RECOVERY_TIMEOUT_MS);
    printf("# %s: the first post published after the fault was in every feed %lld ms later\n", what,
           (long long)ms);
}

/* ------------------------------------------------------------ watchers */

void ft_stream_wait_online(int node, const char *uid)
{
    const char *id = fs__env->node[node - 1].id;
    char key[16 + FP_ID_BUFSZ];

    snprintf(key, sizeof(key), "online:%s", id);
    if (ft_redis_wait_member(fs__env->p.redis.port, key, uid, 3000) != 1)
        fail_msg("%s never showed up in %s", uid, key);
}

static void fs__on_connect(struct mosquitto *m, void *obj, int rc)
{
    ft_watcher *w = obj;

    if (rc != 0)
        return;
    pthread_mutex_lock(&w->lock);
    w->connects++;
    w->sub_mid = 0;
    mosquitto_subscribe(m, &w->sub_mid, w->topic, 1);
    pthread_mutex_unlock(&w->lock);
}

static void fs__on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *qos)
{
    ft_watcher *w = obj;

    (void)m;
    if (n != 1 || qos[0] != 1)
        return; /* refused (0x80) or downgraded: not a subscription the test can count on */
    pthread_mutex_lock(&w->lock);
    if (mid == w->sub_mid)
        w->acked = w->connects;
    pthread_mutex_unlock(&w->lock);
}

static void fs__on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    ft_watcher *w = obj;
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
    if (idx >= 0 && idx < FT_WATCH_MAX && w->seen[idx] < 255)
        w->seen[idx]++;
    pthread_mutex_unlock(&w->lock);
}

int ft_watcher_connects(ft_watcher *w)
{
    int n;

    pthread_mutex_lock(&w->lock);
    n = w->connects;
    pthread_mutex_unlock(&w->lock);
    return n;
}

/* Whether the watcher has connected `connects` times and its latest
 * connect's subscription is acknowledged (fs__on_subscribe). */
static bool fs__subscribed(ft_watcher *w, int connects)
{
    bool done;

    pthread_mutex_lock(&w->lock);
    done = w->connects >= connects && w->acked == w->connects;
    pthread_mutex_unlock(&w->lock);
    return done;
}

void ft_watcher_wait_connected(ft_watcher *w, int connects)
{
    int i;

    for (i = 0; i < 500 && !fs__subscribed(w, connects); i++)
        ft_sleep_ms(20);
    assert_true(fs__subscribed(w, connects));
    ft_stream_wait_online(w->node, w->uid);
}

void ft_watcher_start(ft_watcher *w, int node, const char *t, const char *suffix)
{
    char *tok;
    int i;

    memset(w, 0, sizeof(*w));
    w->node = node;
    snprintf(w->uid, sizeof(w->uid), "%s%s", t, suffix);
    snprintf(w->topic, sizeof(w->topic), "feed/%s", w->uid);
    snprintf(w->t, sizeof(w->t), "%s", t);
    pthread_mutex_init(&w->lock, NULL);
    w->m = mosquitto_new(NULL, true, w);
    assert_non_null(w->m);
    tok = ft_plugin_env_token_now(&fs__env->p, w->uid, FP_ROLE_USER);
    assert_int_equal(mosquitto_username_pw_set(w->m, w->uid, tok), MOSQ_ERR_SUCCESS);
    free(tok);
    mosquitto_connect_callback_set(w->m, fs__on_connect);
    mosquitto_subscribe_callback_set(w->m, fs__on_subscribe);
    mosquitto_message_callback_set(w->m, fs__on_message);
    mosquitto_reconnect_delay_set(w->m, 1, 2, false);
    assert_int_equal(mosquitto_connect(w->m, "127.0.0.1", ft_node_port(fs__env, node), 30),
                     MOSQ_ERR_SUCCESS);
    assert_int_equal(mosquitto_loop_start(w->m), MOSQ_ERR_SUCCESS);
    for (i = 0; i < FS__WATCHERS; i++) {
        if (fs__watchers[i] == NULL) {
            fs__watchers[i] = w;
            break;
        }
    }
    ft_watcher_wait_connected(w, 1);
}

void ft_watcher_stop(ft_watcher *w)
{
    int i;

    for (i = 0; i < FS__WATCHERS; i++) {
        if (fs__watchers[i] == w)
            fs__watchers[i] = NULL;
    }
    mosquitto_disconnect(w->m);
    mosquitto_loop_stop(w->m, false);
    mosquitto_destroy(w->m);
    pthread_mutex_destroy(&w->lock);
}

int ft_watcher_count(ft_watcher *w, int from, int n)
{
    int i, got = 0;

    pthread_mutex_lock(&w->lock);
    for (i = from; i < n; i++)
        got += w->seen[i] > 0;
    pthread_mutex_unlock(&w->lock);
    return got;
}

int64_t ft_watcher_wait(ft_watcher *w, int from, int n, int timeout_ms)
{
    int64_t t0 = fp_time_mono_ms();

    while (ft_watcher_count(w, from, n) < n - from) {
        if (fp_time_mono_ms() - t0 > timeout_ms)
            return -1;
        ft_sleep_ms(10);
    }
    return fp_time_mono_ms() - t0;
}

void ft_stream_cleanup(void)
{
    int i;

    if (fs__running != NULL) {
        atomic_store(&fs__running->stop, 1);
        pthread_join(fs__running->th, NULL);
        fs__running = NULL;
    }
    for (i = 0; i < FS__WATCHERS; i++) {
        if (fs__watchers[i] != NULL)
            ft_watcher_stop(fs__watchers[i]);
    }
}
