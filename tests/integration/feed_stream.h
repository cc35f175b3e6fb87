/*
 * feed_stream.h - what the fault tests share: a steady stream of posts
 * published with confirms from a thread of its own, exact checks of the
 * recipients' feed lists in Redis, and MQTT users who watch their feed
 * live while servers fail under them.
 *
 * A test t (a short prefix such as "bk_") has an author <t>a, followers
 * <t>f1..<t>f3 and posts <t>p0000, <t>p0001, ... The recipients of its
 * posts are the author and the three followers. Everything works on the
 * node environment given to ft_stream_use (its Redis, its publisher, its
 * bridges' counters); checks fail the running cmocka test.
 */
#ifndef FEED_STREAM_H
#define FEED_STREAM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node_env.h"

#define FT_STREAM_RCPT 4  /* the author and three followers */
#define FT_WATCH_MAX 1024 /* post indexes a watcher can count */

/* The environment every function below works on. */
void ft_stream_use(ft_node_env *e);

/* The id of post i of test t. */
void ft_stream_post_id(const char *t, int i, char *out, size_t len);
/* Publishes post i of test t (followers from Redis) from the calling
 * thread: only while no stream runs. */
void ft_stream_publish_post(const char *t, int i);
/* The three follows of test t, then waits until Redis has them. */
void ft_stream_follow(const char *t);

/*
 * A publisher thread: posts 0..n-1 of test t, one every pace_us after
 * the previous confirm. It owns the environment's publisher while it
 * runs, so the test neither publishes nor asks queue depths then.
 */
typedef struct {
    char t[16];
    int n;
    int pace_us;
    bool explicit_rcpt; /* recipients listed in the event, not from Redis */
    atomic_int sent;    /* confirmed by RabbitMQ */
    atomic_int failed;
    atomic_int stop; /* set by ft_stream_cleanup after a failure */
    pthread_t th;
} ft_stream;

void ft_stream_start(ft_stream *s, const char *t, int n, bool explicit_rcpt, int pace_us);
/* Waits until k posts are confirmed (30 s at most). */
void ft_stream_wait(ft_stream *s, int k);
/* Index of the next post the stream publishes (the last one if done). */
int ft_stream_next(ft_stream *s);
/* Waits for the thread; every post must have been confirmed. */
void ft_stream_join(ft_stream *s);

/* Entries of one feed list against posts 0..n-1 of a test. */
typedef struct {
    long long len;  /* entries */
    int present;    /* required posts present */
    int missing;    /* required posts absent */
    int duplicated; /* posts present more than once */
    int foreign;    /* entries that are not posts 0..n-1 of the test */
    int first_dup;  /* one duplicated index, for the message */
    int first_missing;
} ft_feed_scan;

/* Reads feed:<t><suffix>; posts from..n-1 are required. 0, or -1 when
 * Redis did not answer. */
int ft_feed_scan_one(const char *t, const char *suffix, int n, int from, ft_feed_scan *out);
/*
 * Waits until the bridges are done with the stream: every recipient has
 * posts from..n-1 (or 30 s passed), feed.events.bridge is empty and the
 * bridges' stage1_count stood still over a counter period (so a late
 * redelivery would have shown up as a duplicate).
 */
void ft_feeds_settle(const char *t, int n, int from);
/*
 * Asserts that every recipient's feed holds posts from..n-1 exactly once,
 * no other post of the test twice, nothing foreign, and, when from is 0,
 * nothing else at all. Returns how many posts before `from` survived in
 * the author's feed.
 */
int ft_feeds_assert(const char *t, int n, int from);
/* Asserts that post i of test t reaches every feed within 20 s and
 * prints how long it took after the fault `what`. */
void ft_feeds_report_recovery(const char *what, const char *t, int i);

/*
 * An MQTT user subscribed to feed/<uid> on a node's broker, on a
 * libmosquitto thread of its own (it keeps reading while the test does
 * other things, and reconnects and resubscribes after the broker
 * restarts). Counts the posts of its test it receives, by index, and
 * when each first arrived.
 */
typedef struct ft_watcher {
    struct mosquitto *m;
    int node; /* 1..N */
    char uid[FP_ID_BUFSZ];
    char topic[FP_ID_BUFSZ + 8];
    char t[16];
    pthread_mutex_t lock;
    unsigned char seen[FT_WATCH_MAX];
    int connects;
    int sub_mid; /* the latest connect's SUBSCRIBE */
    int acked;   /* the connect (1..) whose SUBSCRIBE was acknowledged last */
    int messages;
} ft_watcher;

/* Connects user <t><suffix> to node's broker, subscribes to its feed and
 * waits until it is online in Redis. */
void ft_watcher_start(ft_watcher *w, int node, const char *t, const char *suffix);
void ft_watcher_stop(ft_watcher *w);
/* How many times the watcher has connected (and subscribed). */
int ft_watcher_connects(ft_watcher *w);
/* Waits until the watcher connected `connects` times, the broker
 * acknowledged the subscription of its latest connect, and it is online
 * again. */
void ft_watcher_wait_connected(ft_watcher *w, int connects);
/* Waits until uid shows up in online:<node's id> (3 s at most). */
void ft_stream_wait_online(int node, const char *uid);
/* How many of posts from..n-1 the watcher has seen at least once. */
int ft_watcher_count(ft_watcher *w, int from, int n);
/* Waits (up to timeout_ms) until the watcher saw posts from..n-1; returns
 * the milliseconds it took or -1. */
int64_t ft_watcher_wait(ft_watcher *w, int from, int n, int timeout_ms);

/* After a test, also a failed one: stops the stream and the watchers it
 * left running. (Tests keep them in static storage: their threads may
 * outlive the stack frame of a test that failed.) */
void ft_stream_cleanup(void);

#endif
