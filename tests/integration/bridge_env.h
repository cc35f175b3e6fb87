/*
 * bridge_env.h - one node pair for feed-bridge tests: redis, mosquitto with
 * feed_auth.so (plugin_env), the run's RabbitMQ in a virtual host of the
 * test's own, and a feed-bridge process configured through FEEDPUSH_*
 * variables. Events are published the way a backend would: to feed.events
 * with publisher confirms.
 */
#ifndef BRIDGE_ENV_H
#define BRIDGE_ENV_H

#include <sys/types.h>

#include "event_pub.h"
#include "plugin_env.h"

typedef struct {
    ft_plugin_env p;
    ft_server rabbit;
    char vhost[64];
    pid_t bridge;           /* 0 when not running */
    char bridge_log[PATH_MAX + 32];
    ft_event_pub pub;       /* the test's publisher (a backend) */
} ft_bridge_env;

/* Starts everything and waits until the bridge consumes. 0 or -1. */
int ft_bridge_env_start(ft_bridge_env *e, const char *node_id);
/* SIGTERMs the bridge (it must exit 0 within 5 s) and stops the servers.
 * Returns -1 if anything did not stop cleanly. */
int ft_bridge_env_stop(ft_bridge_env *e);

/* Starts the bridge process and waits (up to 15 s) for its first counters
 * in Redis, which it writes once it consumes. 0 or -1. */
int ft_bridge_start(ft_bridge_env *e);
/* Sends sig and waits up to wait_ms. Returns the exit status as from
 * waitpid (WIFEXITED etc.), or -1 when it did not end in time. */
int ft_bridge_signal(ft_bridge_env *e, int sig, int wait_ms);

/* Publishes one event body to feed.events with routing key rk and waits
 * for the broker's confirm. 0 or -1. */
int ft_bridge_publish(ft_bridge_env *e, const char *rk, const char *body);
/* Messages ready in a queue of the test's vhost, or -1. */
int ft_bridge_queue_depth(ft_bridge_env *e, const char *queue);
/* A counter the bridge wrote to Redis (stats:bridge:<node>), or -1. */
long long ft_bridge_stat(ft_bridge_env *e, const char *name);

#endif
