/*
 * node_env.h - N feedpush node pairs for integration tests: one redis, the
 * run's RabbitMQ in a virtual host of the test's own, and nodes n1..nN,
 * each a mosquitto loading feed_auth.so (plugin_opt_node_id n<i>,
 * heartbeat every second, so node:n<i> lives 3 s) and a feed-bridge
 * process (FEEDPUSH_NODE_ID n<i>, FEEDPUSH_MQTT_PORT of its own broker),
 * configured through FEEDPUSH_* variables. All nodes share the redis and
 * the vhost: the bridges compete for feed.events.bridge and each consumes
 * its own feed.deliver.n<i>. Events are published the way a backend would:
 * to feed.events with publisher confirms.
 *
 * Node 1 is the plugin environment p (its redis, secret and broker), so
 * the plugin helpers (tokens, broker log, sanitizer report) work on it
 * unchanged. Nodes are numbered 1..N in every function, as in their ids.
 * A node pair can be SIGKILLed (a crash) and restarted on the same ports.
 */
#ifndef NODE_ENV_H
#define NODE_ENV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "event_pub.h"
#include "ft_redis.h"
#include "plugin_env.h"

#define FT_NODES_MAX 8

typedef struct {
    char id[FP_ID_BUFSZ];    /* "n<i>" */
    char dir[PATH_MAX + 16]; /* plugin config, bridge log */
    char bridge_log[PATH_MAX + 64];
    ft_server own_mosq; /* nodes 2..N; node 1's broker is p.mosq */
    ft_server *mosq;    /* this node's broker */
    bool mosq_up;
    pid_t bridge; /* 0 when not running */
} ft_node;

/* What a caller other than a test (the benches) may set; all NULL: the
 * tests' setup. */
typedef struct {
    const ft_server *rabbit; /* a RabbitMQ of the caller's, in vhost (which
                                exists); NULL: the run's, in a vhost of ours */
    const char *vhost;
    const char *extra;     /* more config lines for every broker, or NULL */
    const char *log_level; /* the bridges' FEEDPUSH_LOG_LEVEL; NULL: debug */
    const char *timeout_ms; /* the bridges' FEEDPUSH_TIMEOUT_MS; NULL: 2000 */
    const char *amqp_hosts; /* the bridges' FEEDPUSH_AMQP_HOSTS (a cluster's
                               nodes), or NULL: rabbit alone */
    const ft_server *redis; /* a running Redis of the caller's (it becomes
                               p.redis, stopped with the rest), or NULL */
} ft_node_opts;

typedef struct {
    ft_plugin_env p; /* redis, the HS256 secret, node 1's broker */
    ft_node_opts opts;
    ft_server rabbit;
    char vhost[64];
    int n_nodes;
    ft_node node[FT_NODES_MAX];
    ft_event_pub pub; /* the test's publisher (a backend) */
} ft_node_env;

/* Starts redis, the vhost and n_nodes node pairs, each bridge consuming
 * and each plugin's presence in Redis. Returns 0 or -1 (reason on stderr). */
int ft_node_env_start(ft_node_env *e, int n_nodes);
/* The same with opts (NULL: none). */
int ft_node_env_start_opts(ft_node_env *e, int n_nodes, const ft_node_opts *opts);

/* SIGTERMs every bridge (each must exit 0 within 5 s), stops the brokers
 * and redis. Returns -1 if anything did not stop cleanly (also counted by
 * ft_harness_fail, so the run fails). */
int ft_node_env_stop(ft_node_env *e);

/* Starts node i's bridge and waits (up to 15 s) for its first counters in
 * Redis, which it writes once it consumes. 0 or -1. */
int ft_node_bridge_start(ft_node_env *e, int i);
/* Its two halves: the process started (with the test's environment as it
 * is now), then the wait for its first counters. 0 or -1. */
int ft_node_bridge_spawn(ft_node_env *e, int i);
int ft_node_bridge_wait(ft_node_env *e, int i);

/* Sends sig to node i's bridge and waits up to wait_ms. Returns the exit
 * status as from waitpid (WIFEXITED etc.), or -1 when it did not end in
 * time (or was not running). */
int ft_node_bridge_signal(ft_node_env *e, int i, int sig, int wait_ms);

/* Node pair i crashes: its bridge and its mosquitto SIGKILLed, nothing
 * cleaned up. Returns 0 or -1. */
int ft_node_kill(ft_node_env *e, int i);

/* Starts node pair i again on the same MQTT/WebSocket ports: mosquitto
 * first, then the bridge, which is waited for. Returns 0 or -1. */
int ft_node_restart(ft_node_env *e, int i);

/* The MQTT port of node i's mosquitto (-1 for a bad i). */
int ft_node_port(const ft_node_env *e, int i);

/* A user token for sub, valid for an hour (abort on failure). Free it. */
char *ft_node_token(const ft_node_env *e, const char *sub);

/* Publishes one event body to feed.events with routing key rk and waits
 * for RabbitMQ's confirm. 0 or -1. */
int ft_node_publish(ft_node_env *e, const char *rk, const char *body);

/* ft_node_publish of a body built from fmt (at most 64 KiB). 0 or -1. */
int ft_node_publishf(ft_node_env *e, const char *rk, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A follow.created event (follower follows followee), published and
 * confirmed. 0 or -1. */
int ft_node_follow(ft_node_env *e, const char *follower, const char *followee);

/* A post.created event of post id by author with text (no explicit
 * recipients; created_at now), published and confirmed. 0 or -1. */
int ft_node_post(ft_node_env *e, const char *id, const char *author, const char *text);

/* Messages ready in a queue of the vhost (passive declare: the queue must
 * exist), or -1. */
int ft_node_queue_depth(ft_node_env *e, const char *queue);

/* A counter of node i's bridge (HGET stats:bridge:n<i> name), or -1 when
 * absent. */
long long ft_node_stat(const ft_node_env *e, int i, const char *name);

/* ft_node_stat once it is at least want (the bridges write their counters
 * once a second), or its value after timeout_ms. */
long long ft_node_stat_wait(const ft_node_env *e, int i, const char *name, long long want,
                            int timeout_ms);

/* An integer reply of a redis command (e.g. "EXISTS node:n2"), or -1 when
 * redis failed or answered something else (ft_redis_once_int). */
#define ft_node_redis_int(e, ...) ft_redis_once_int((e)->p.redis.port, __VA_ARGS__)

#endif
