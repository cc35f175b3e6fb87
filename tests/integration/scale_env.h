/*
 * scale_env.h - a multi-node feedpush for scale-out tests: one redis, the
 * run's RabbitMQ in a virtual host of the test's own, and N node pairs
 * n1..nN, each a mosquitto loading feed_auth.so (plugin_opt_node_id n<i>,
 * heartbeat every second, so node:n<i> lives 3 s) and a feed-bridge
 * (FEEDPUSH_NODE_ID n<i>, FEEDPUSH_MQTT_PORT of its own mosquitto). All
 * nodes share the redis and the vhost: the bridges compete for
 * feed.events.bridge and each consumes its own feed.deliver.n<i>.
 *
 * Built from the harness pieces (ft_server_start for redis and each
 * mosquitto, a forked feed-bridge per node, as bridge_env.c does), so the
 * single-node environments stay untouched. Nodes are numbered 1..N in
 * every function, as in their ids. A node pair can be SIGKILLed (a crash)
 * and restarted on the same ports.
 */
#ifndef SCALE_ENV_H
#define SCALE_ENV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "event_pub.h"

#include "plugin_env.h"

#define FT_SCALE_MAX_NODES 8

typedef struct {
    char id[FP_ID_BUFSZ];    /* "n<i>" */
    char dir[PATH_MAX + 16]; /* plugin config, bridge log */
    char bridge_log[PATH_MAX + 64];
    ft_server mosq;
    bool mosq_up;
    pid_t bridge; /* 0 when not running */
} ft_scale_node;

typedef struct {
    char dir[PATH_MAX];
    char secret_path[PATH_MAX + 16];
    unsigned char secret[48];
    ft_server redis;
    ft_server rabbit;
    char vhost[64];
    int n_nodes;
    ft_scale_node node[FT_SCALE_MAX_NODES];
    ft_event_pub pub; /* the test's publisher (a backend) */
} ft_scale_env;

/* Starts redis, the vhost and n_nodes node pairs, each bridge consuming.
 * Returns 0 or -1 (reason on stderr). */
int ft_scale_env_start(ft_scale_env *e, int n_nodes);

/* SIGTERMs every bridge (each must exit 0 within 5 s), stops the brokers
 * and redis. Returns -1 if anything did not stop cleanly (also counted by
 * ft_harness_fail, so the run fails). */
int ft_scale_env_stop(ft_scale_env *e);

/* The node pair i (1..n_nodes) crashes: its bridge and its mosquitto
 * SIGKILLed, nothing cleaned up. Returns 0 or -1. */
int ft_scale_node_kill(ft_scale_env *e, int i);

/* Starts node pair i again on the same MQTT/WebSocket ports: mosquitto
 * first, then the bridge, which is waited for (its first counters in
 * Redis). Returns 0 or -1. */
int ft_scale_node_restart(ft_scale_env *e, int i);

/* The MQTT port of node i's mosquitto. */
int ft_scale_port(const ft_scale_env *e, int i);

/* A user token for sub, valid for an hour (abort on failure). Free it. */
char *ft_scale_token(const ft_scale_env *e, const char *sub);

/* Publishes one event to feed.events with routing key rk and waits for
 * RabbitMQ's confirm. 0 or -1. */
int ft_scale_publish(ft_scale_env *e, const char *rk, const char *body);

/* Messages ready in a queue of the vhost (passive declare: the queue must
 * exist), or -1. */
int ft_scale_queue_depth(ft_scale_env *e, const char *queue);

/* A counter of node i's bridge (HGET stats:bridge:n<i> name), or -1 when
 * absent. */
long long ft_scale_stat(const ft_scale_env *e, int i, const char *name);

/* An integer reply of a redis command (e.g. "EXISTS node:n2"), or -1 when
 * redis failed or answered something else. */
long long ft_scale_redis_int(const ft_scale_env *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
