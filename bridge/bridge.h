/*
 * bridge.h - private header of feed-bridge.
 *
 *   main.c     wiring: config, signals, the loop, reconnects with backoff
 *   config.c   bridge.conf + FEEDPUSH_* environment
 *   fanout.c   stage 1: feed.events -> Redis -> feed.deliver / feed.broadcast
 *              (this node's own share straight to its broker: deliver.c)
 *   deliver.c  stage 2: feed.deliver.<node>, feed.broadcast.<node> -> local MQTT
 *   stats.c    counters, published to Redis for feedctl stats and /metrics
 *   mqtt_link.c  local broker link
 * Redis and RabbitMQ through the backend library (backend/: fp_store.h,
 * fp_amqp.h).
 */
#ifndef FEED_BRIDGE_H
#define FEED_BRIDGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fp_amqp.h"
#include "mqtt_link.h"
#include "fp_store.h"
#include "fp_time.h"

typedef struct {
    char *node_id;
    fp_amqp_options amqp; /* the amqp_* keys */
    int64_t prefetch;
    int64_t deliver_ttl_ms;
    int64_t deliver_max_length;
    int64_t deliver_expires_ms;
    char *deliver_mode;     /* "publish" or "control" */
    char *local_delivery;   /* "direct" or "queue": how this node's own share reaches it */
    fp_redis_options redis; /* the redis_* keys */
    int64_t redis_min_replicas;
    int64_t redis_wait_timeout_ms;
    int64_t feed_length;
    int64_t pull_threshold;
    int64_t post_ttl;
    int64_t revocation_ttl;
    int64_t ribbon_length;
    char *mqtt_host;
    int64_t mqtt_port;
    bool mqtt_tls;
    char *mqtt_tls_ca;
    char *jwt_alg;
    char *jwt_signing_key;
    int64_t token_ttl;
    int64_t timeout_ms;
    char *log_level;
} fb_config;

/* Loads path (NULL = none) and the environment. 0 or -errno, err filled. */
int fb_config_load(fb_config *c, const char *path, char *err, size_t errlen);
void fb_config_free(fb_config *c);
void fb_config_usage(FILE *out);

/* ------------------------------------------------------------ counters */

typedef enum {
    FB_STAT_EVENTS_POST_CREATED,
    FB_STAT_EVENTS_POST_DELETED,
    FB_STAT_EVENTS_FOLLOW_CREATED,
    FB_STAT_EVENTS_FOLLOW_DELETED,
    FB_STAT_EVENTS_RIBBON_PUSHED,
    FB_STAT_EVENTS_USER_REVOKED,
    FB_STAT_DEAD_LETTERS,
    FB_STAT_EVENT_BATCHES,     /* feed.events messages that were batches */
    FB_STAT_FANOUT_RECIPIENTS, /* feed entries written */
    FB_STAT_DELIVER_MESSAGES,  /* feed.deliver messages published */
    FB_STAT_DELIVERIES,        /* MQTT publishes to feed/<uid> */
    FB_STAT_BROADCASTS,        /* MQTT publishes to ribbon */
    FB_STAT_RECONNECTS_AMQP,
    FB_STAT_RECONNECTS_REDIS,
    FB_STAT_RECONNECTS_MQTT,
    FB_STAT_MQTT_REFUSED,  /* publishes the broker refused (PUBACK reason >= 128) */
    FB_STAT_STAGE1_US_SUM, /* event received -> handled (its ack may wait for confirms), us */
    FB_STAT_STAGE1_COUNT,
    FB_STAT_STAGE1_US_MAX,
    FB_STAT_STAGE2_US_SUM, /* delivery received -> acked */
    FB_STAT_STAGE2_COUNT,
    FB_STAT_STAGE2_US_MAX,
    FB_STAT_SYNC_US_SUM, /* redis_min_replicas: INCR sync + WAIT, microseconds */
    FB_STAT_SYNC_COUNT,
    FB_STAT__COUNT
} fb_stat;

/* Shared by the two stage threads: every counter is atomic. */
typedef struct {
    _Atomic uint64_t v[FB_STAT__COUNT];
} fb_stats;

void fb_stats_add(fb_stats *st, fb_stat s, uint64_t n);
void fb_stats_latency(fb_stats *st, bool stage1, int64_t us);

/* ------------------------------------------------------------ the bridge */

#define FB_PREFETCH 32 /* posts of a batch whose first store calls go together */

/* A link to the local broker and what deliver.c has learnt through it. */
typedef struct {
    fb_mqtt *mqtt;
    bool control_refused;             /* the broker refused one: publishing per recipient ... */
    unsigned long control_refused_at; /* ... until this link reconnects past this */
    bool control_other_logged;        /* a refusal of another kind was logged */
} fb_outlet;

/*
 * Two threads, one per stage, so that stage 2's waits for a broker's
 * PUBACKs never hold up fan-out: stage 1 owns amqp, store and direct;
 * stage 2 owns amqp_node and node.
 */
typedef struct {
    fb_config cfg;
    fp_amqp *amqp;      /* stage 1: consumes feed.events.bridge, publishes */
    fp_amqp *amqp_node; /* stage 2: consumes this node's queues */
    fp_store *store;
    fb_outlet node;        /* stage 2: deliveries from feed.deliver.<node>, ribbons */
    fb_outlet direct;      /* stage 1: this node's own recipients (local_delivery direct) */
    bool deliver_control;  /* deliver_mode control: one control message per delivery */
    bool local_direct;     /* local_delivery direct */
    bool direct_failing;   /* stage 1: direct deliveries fell back to the queue (fanout.c) ... */
    unsigned long direct_failed_at; /* ... at this count of the direct link's connects */
    /* Own-node deliveries queued by stage 1 carry run and a sequence
     * number: the last one given (stage 1), the highest stage 2 has
     * delivered (written by stage 2 only). Direct deliveries resume only
     * once stage 2 has caught up, so that they keep routing order. */
    char run[24];
    uint64_t queued_seq;
    atomic_uint_fast64_t queued_done;
    unsigned long direct_waited_at; /* stage 1: the connects count it last waited for them at */
    int64_t ribbon_version;         /* stage 2: the newest ribbon version published to the broker */
    char *ribbon_doc;               /* stage 2: that ribbon (NULL: none yet), ... */
    size_t ribbon_len;
    unsigned long ribbon_losses; /* ... published since the link's last loss of the broker */
    size_t batch_next; /* stage 1: the event of a batch to handle next (fb_fanout_begin) */
    bool applied;      /* stage 1: the single event in hand is applied, its sync is left */
    /* Stage 1: the first store calls of a batch's posts pre_from ..
     * pre_from + pre_n - 1, run together (fanout.c, fanout__prefetch). */
    size_t pre_from, pre_n;
    fp_fanout pre_outs[FB_PREFETCH];
    int pre_rcs[FB_PREFETCH];
    fb_stats stats;
} fb_bridge;


/* Outcome of handling one message. */
typedef enum {
    FB_DONE = 0,      /* acked or rejected: next message */
    FB_RETRY_STORE,   /* Redis connection failed: reconnect and handle it again */
    FB_NO_MEMORY,     /* out of memory: wait (backoff), handle it again */
    FB_STORE_REFUSED, /* Redis answered with an error: retry a few times, then dead-letter */
    FB_STORE_BUSY,    /* Redis is in a passing state (OOM, LOADING...): wait, handle again */
    FB_RETRY_MQTT,    /* the local broker failed: wait for it, handle again */
    FB_LOST_AMQP,     /* RabbitMQ failed: reconnect; unacked work is redelivered */
} fb_outcome;

/* Stage 1 takes a new message: a batch's events are handled from its
 * first (fb_fanout_handle called again for the same message goes on from
 * where it stopped). */
void fb_fanout_begin(fb_bridge *b);
fb_outcome fb_fanout_handle(fb_bridge *b, const fp_amqp_msg *msg);
fb_outcome fb_deliver_handle(fb_bridge *b, const fp_amqp_msg *msg);
/* Stage 1, local_delivery direct: delivers payload (the text users get)
 * to t's users through the direct link, as stage 2 would, and waits for
 * the broker's PUBACKs. FB_DONE, or FB_RETRY_MQTT (link down or a PUBACK
 * missing: the caller queues the delivery instead). */
fb_outcome fb_deliver_direct(fb_bridge *b, const char *payload, const fp_node_targets *t);
/* Dead-letters an event to feed.events.dead with its reason (header
 * x-feedpush-reason) and one log line, then acks it once confirmed. */
fb_outcome fb_fanout_dead_letter(fb_bridge *b, const fp_amqp_msg *msg, const char *reason);
/* Redis keeps refusing msg: dead-letters it, or in a batch the event it
 * stopped at, and goes on with the batch's next events. */
fb_outcome fb_fanout_give_up(fb_bridge *b, const fp_amqp_msg *msg, const char *reason);
/* Publishes the current ribbon (retained) to the local broker. */
int fb_deliver_ribbon_from_store(fb_bridge *b);
/* Stage 2, between messages: after the link lost the broker (a restart
 * without persistence loses retained messages), publishes the last
 * ribbon again. */
void fb_deliver_ribbon_again(fb_bridge *b);
/* Writes the counters to Redis (hash <prefix>stats:bridge:<node>). */
int fb_stats_publish(fb_bridge *b);

#endif
