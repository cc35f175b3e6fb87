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
    fp_plugin_env p;
    fp_server rabbit;
    char vhost[64];
    pid_t bridge;           /* 0 when not running */
    char bridge_log[PATH_MAX + 32];
    fp_event_pub pub;       /* the test's publisher (a backend) */
} fp_bridge_env;

/* Starts everything and waits until the bridge consumes. 0 or -1. */
int fp_bridge_env_start(fp_bridge_env *e, const char *node_id);
/* SIGTERMs the bridge (it must exit 0 within 5 s) and stops the servers.
 * Returns -1 if anything did not stop cleanly. */
int fp_bridge_env_stop(fp_bridge_env *e);

/* Starts the bridge process and waits (up to 15 s) for its first counters
 * in Redis, which it writes once it consumes. 0 or -1. */
int fp_bridge_start(fp_bridge_env *e);
/* Sends sig and waits up to wait_ms. Returns the exit status as from
 * waitpid (WIFEXITED etc.), or -1 when it did not end in time. */
int fp_bridge_signal(fp_bridge_env *e, int sig, int wait_ms);

/* Publishes one event body to feed.events with routing key rk and waits
 * for the broker's confirm. 0 or -1. */
int fp_bridge_publish(fp_bridge_env *e, const char *rk, const char *body);
/* Messages ready in a queue of the test's vhost, or -1. */
int fp_bridge_queue_depth(fp_bridge_env *e, const char *queue);
/* A counter the bridge wrote to Redis (stats:bridge:<node>), or -1. */
long long fp_bridge_stat(fp_bridge_env *e, const char *name);

#endif
