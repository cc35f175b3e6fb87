/*
 * amqp_priv.h - what the files of the RabbitMQ link share (amqp.c: the
 * link, amqp_dead.c: the dead-letter queue for an operator's tool): the
 * link's struct and its error helpers. Not exported.
 */
#ifndef FP_AMQP_PRIV_H
#define FP_AMQP_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <amqp.h>

#include "fp_amqp.h"

#define AMQP__CHANNEL 1
#define AMQP__HEARTBEAT_S 30   /* default heartbeat_s */
#define AMQP__KEEPALIVE_MS 500 /* fp_amqp_keepalive works at most this often */
/* fp_amqp_heartbeat sends at least this often (and at half the heartbeat
 * when that is shorter): its owner's tries between two calls take up to
 * 1.5 heartbeats (the bridge's timeout_ms check), so the frames come
 * within RabbitMQ's two. */
#define AMQP__BEAT_MS 1000
#define AMQP__MAX_PENDING 256  /* publishes between two confirms */
/* Bodies published into a blocked link, at most (the socket's buffers,
 * which RabbitMQ does not read while blocked, take several times that). */
#define AMQP__BLOCKED_BYTES (64 * 1024)

/* A consumed message whose ack waits for the confirms of the publishes up
 * to seq (fp_amqp_ack_confirmed). */
typedef struct {
    uint64_t tag;
    uint64_t seq;
} amqp__held;

struct fp_amqp {
    fp_amqp_config cfg; /* strings owned */
    fp_host hosts[FP_HOSTS_MAX];
    size_t n_hosts, cur; /* cur: the node in use or last tried */
    bool opened;         /* connected once: a reconnect starts at the next node */
    char peer[FP_HOST_MAX + 8];
    amqp_connection_state_t in;  /* consumer */
    amqp_connection_state_t out; /* publisher with confirms */
    amqp_envelope_t env;
    bool have_env;
    uint64_t next_tag;                   /* publish sequence number of the next publish */
    uint64_t pending[AMQP__MAX_PENDING]; /* publishes awaiting their confirm, */
    bool acked[AMQP__MAX_PENDING];       /* oldest first; the head is never acked */
    size_t n_pending;
    int64_t confirm_ms; /* monotonic ms: the last confirm, or the publish that
                         * made pending non-empty; too old = a stuck link */
    amqp__held *held;   /* consumed messages to ack once publishes are confirmed */
    size_t n_held, cap_held;
    uint64_t ack_upto;    /* acks not sent yet: every message up to this tag */
    int n_acks;           /* how many (sent as one ack, "multiple") */
    int64_t keepalive_ms; /* monotonic time of the last keepalive */
    int64_t beat_ms;      /* monotonic time of fp_amqp_heartbeat's last frames */
    bool warned_classic;  /* said that a durable queue is not a quorum one */
    bool warned_node;     /* said that a node queue has other deliver_* args */
    bool warned_beat;     /* said that RabbitMQ cut the heartbeat asked for */
    bool blocked;         /* the publisher connection is blocked (connection.blocked) */
    char blocked_why[64]; /* the reason RabbitMQ gave, e.g. "low on memory" */
    size_t blocked_bytes; /* bodies published since the block was known */
    int err;              /* last failure: an AMQP_STATUS_* or a reply code, 0 if none */
    char errstr[320];
    char q_deliver[128];
    char q_broadcast[128];
    amqp_envelope_t dead; /* the last dead letter taken (fp_amqp_dead_get) */
    bool have_dead;
};

/* Records a failure: err, and errstr built from fmt with what and detail. */
void amqp__set_error(fp_amqp *a, int err, const char *fmt, const char *what, const char *detail);
/* Turns a failed RPC reply into err/errstr. Returns -EIO. */
int amqp__reply_error(fp_amqp *a, amqp_rpc_reply_t r, const char *what);
/* The RPC reply of the last call on c: 0, or -EIO with errstr naming what. */
int amqp__check(fp_amqp *a, amqp_connection_state_t c, const char *what);
/* Publishes body with props on the publisher connection, tracked for its
 * confirm as fp_amqp_publish's are. 0 or -EIO (amqp.c). */
int amqp__publish_props(fp_amqp *a, const char *exchange, const char *routing_key,
                        const amqp_basic_properties_t *props, amqp_bytes_t body);
/* Frees the frames the publisher connection's channel has read (amqp.c). */
void amqp__recycle(fp_amqp *a);
/* Frees the last dead letter taken, if any (amqp_dead.c). */
void amqp__dead_done(fp_amqp *a);

#endif
