/*
 * node_env.c - N node pairs on one redis and one RabbitMQ vhost (see
 * node_env.h). Node 1 is plugin_env's broker; the others get the same
 * plugin configuration (ft_plugin_conf_write) on the shared redis and
 * secret. The bridges are forked and configured through FEEDPUSH_*
 * variables.
 */
#include "node_env.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define NODE__BRIDGE_READY_MS 15000
#define NODE__BRIDGE_STOP_MS 5000

static ft_node *node__get(ft_node_env *e, int i)
{
    if (i < 1 || i > e->n_nodes)
        return NULL;
    return &e->node[i - 1];
}

/* Writes node n's plugin config and starts its mosquitto (nodes 2..N;
 * node 1's is plugin_env's). 0 or -1. */
static int node__start_broker(ft_node_env *e, ft_node *n)
{
    char conf[PATH_MAX + 64];

    snprintf(conf, sizeof(conf), "%s/plugin.conf", n->dir);
    if (ft_plugin_conf_write(conf, "HS256", e->p.secret_path, n->id, e->p.redis.port,
                             e->opts.extra) != 0)
        return -1;
    if (ft_server_start(n->mosq, "mosquitto", conf) != 0)
        return -1;
    n->mosq_up = true;
    return 0;
}

/* The bridge child: its own process group, killed with the test, output
 * appended to the node's log. Never returns. */
static void node__exec_bridge(const ft_node_env *e, const ft_node *n, const char *bin)
{
    char v[5][PATH_MAX + 96];

    ft_harness_child(n->bridge_log);
    snprintf(v[0], sizeof(v[0]), "%d", e->rabbit.port);
    snprintf(v[1], sizeof(v[1]), "%d", e->p.redis.port);
    snprintf(v[2], sizeof(v[2]), "%d", n->mosq->port);
    /* The harness's orphan check matches the resolved path. */
    if (realpath(n->dir, v[4]) == NULL)
        snprintf(v[4], sizeof(v[4]), "%s", n->dir);
    snprintf(v[3], sizeof(v[3]), "%.*s/bridge", PATH_MAX, v[4]);
    setenv("FEEDPUSH_NODE_ID", n->id, 1);
    setenv("FEEDPUSH_AMQP_PORT", v[0], 1);
    setenv("FEEDPUSH_AMQP_VHOST", e->vhost, 1);
    if (e->opts.amqp_hosts != NULL)
        setenv("FEEDPUSH_AMQP_HOSTS", e->opts.amqp_hosts, 1);
    setenv("FEEDPUSH_REDIS_PORT", v[1], 1);
    setenv("FEEDPUSH_MQTT_PORT", v[2], 1);
    setenv("FEEDPUSH_JWT_SIGNING_KEY", e->p.secret_path, 1);
    setenv("FEEDPUSH_TIMEOUT_MS", e->opts.timeout_ms != NULL ? e->opts.timeout_ms : "2000", 1);
    setenv("FEEDPUSH_LOG_LEVEL", e->opts.log_level != NULL ? e->opts.log_level : "debug", 1);
    /* The harness's orphan check finds it by this marker. */
    setenv("FEEDPUSH_HARNESS", v[3], 1);
    execl(bin, bin, (char *)NULL);
    _exit(127);
}

/* Forks node n's bridge (not waiting for it). 0 or -1. */
static int node__spawn_bridge(ft_node_env *e, ft_node *n)
{
    const char *bin = getenv("FP_BRIDGE");
    pid_t pid;

    if (bin == NULL) {
        fprintf(stderr, "node_env: FP_BRIDGE not set (run through ctest)\n");
        return -1;
    }
    /* Readiness is the new process's first "updated_ms". */
    ft_node_redis_int(e, "HDEL stats:bridge:%s updated_ms", n->id);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        node__exec_bridge(e, n, bin);
    n->bridge = pid;
    return 0;
}

/* Waits until node n's bridge has written its counters, i.e. connected
 * everything and declared the topology. 0 or -1. */
static int node__wait_bridge(ft_node_env *e, ft_node *n, int64_t deadline_ms)
{
    int i = (int)(n - e->node) + 1;

    for (;;) {
        if (ft_node_stat(e, i, "updated_ms") > 0)
            return 0;
        if (waitpid(n->bridge, NULL, WNOHANG) == n->bridge) {
            n->bridge = 0;
            fprintf(stderr, "node_env: feed-bridge %s exited at start, see %s\n", n->id,
                    n->bridge_log);
            return -1;
        }
        if (fp_time_mono_ms() > deadline_ms)
            break;
        ft_sleep_ms(50);
    }
    fprintf(stderr, "node_env: feed-bridge %s not ready after %d ms, see %s\n", n->id,
            NODE__BRIDGE_READY_MS, n->bridge_log);
    return -1;
}

/* Waits up to wait_ms for node n's bridge to end. Returns the waitpid
 * status, or -1 when it is still running (or was not). */
static int node__reap_bridge(ft_node *n, int wait_ms)
{
    int64_t end = fp_time_mono_ms() + wait_ms;
    int status;

    if (n->bridge <= 0)
        return -1;
    do {
        if (waitpid(n->bridge, &status, WNOHANG) == n->bridge) {
            n->bridge = 0;
            return status;
        }
        ft_sleep_ms(20);
    } while (fp_time_mono_ms() <= end);
    return -1;
}

/* Sets up node i's names and dir (and for node 1, plugin_env's broker). */
static int node__init(ft_node_env *e, int i)
{
    ft_node *n = &e->node[i - 1];
    char path[sizeof(n->bridge_log)];
    int k;

    /* Built in path, not in place: source and destination both lie in
     * *e, which gcc's restrict check cannot tell apart without -O. */
    snprintf(n->id, sizeof(n->id), "n%d", i);
    k = snprintf(path, sizeof(path), "%s/%s", e->p.dir, n->id);
    if (k < 0 || (size_t)k >= sizeof(n->dir))
        return -1;
    memcpy(n->dir, path, (size_t)k + 1);
    if (mkdir(n->dir, 0755) != 0 && errno != EEXIST)
        return -1;
    k = snprintf(path, sizeof(path), "%s/feed-bridge.log", n->dir);
    if (k < 0 || (size_t)k >= sizeof(n->bridge_log))
        return -1;
    memcpy(n->bridge_log, path, (size_t)k + 1);
    if (i == 1) {
        n->mosq = &e->p.mosq;
        n->mosq_up = true;
        return 0;
    }
    n->mosq = &n->own_mosq;
    return node__start_broker(e, n);
}

int ft_node_env_start(ft_node_env *e, int n_nodes)
{
    return ft_node_env_start_opts(e, n_nodes, NULL);
}

int ft_node_env_start_opts(ft_node_env *e, int n_nodes, const ft_node_opts *opts)
{
    int64_t deadline;
    int i;

    memset(e, 0, sizeof(*e));
    if (n_nodes < 1 || n_nodes > FT_NODES_MAX) {
        fprintf(stderr, "node_env: %d nodes (1..%d)\n", n_nodes, FT_NODES_MAX);
        return -1;
    }
    e->n_nodes = n_nodes;
    if (opts != NULL)
        e->opts = *opts;
    if (ft_plugin_env_start_on(&e->p, "n1", e->opts.redis, e->opts.extra) != 0)
        return -1;
    if (e->opts.rabbit != NULL) {
        e->rabbit = *e->opts.rabbit;
        snprintf(e->vhost, sizeof(e->vhost), "%s", e->opts.vhost);
    } else if (ft_server_shared(&e->rabbit, "rabbitmq") != 0) {
        return -1;
    } else {
        snprintf(e->vhost, sizeof(e->vhost), "t%ld-nodes", (long)getpid());
        if (ft_server_vhost(&e->rabbit, e->vhost) != 0)
            return -1;
    }
    for (i = 1; i <= n_nodes; i++) {
        if (node__init(e, i) != 0)
            return -1;
    }
    /* The bridges start side by side, as a cluster would. */
    for (i = 0; i < n_nodes; i++) {
        if (node__spawn_bridge(e, &e->node[i]) != 0)
            return -1;
    }
    deadline = fp_time_mono_ms() + NODE__BRIDGE_READY_MS;
    for (i = 0; i < n_nodes; i++) {
        if (node__wait_bridge(e, &e->node[i], deadline) != 0)
            return -1;
    }
    /* Each plugin writes its presence (node:<id>) once it reaches Redis. */
    for (i = 0; i < n_nodes; i++) {
        while (ft_node_redis_int(e, "EXISTS node:%s", e->node[i].id) != 1) {
            if (fp_time_mono_ms() > deadline) {
                fprintf(stderr, "node_env: no presence of node %s\n", e->node[i].id);
                return -1;
            }
            ft_sleep_ms(20);
        }
    }
    return ft_event_pub_open(&e->pub, e->rabbit.port, e->vhost);
}

int ft_node_env_stop(ft_node_env *e)
{
    char why[128];
    int rc = 0, i, status;

    ft_event_pub_close(&e->pub);
    /* All bridges are asked at once, then each must have exited 0. */
    for (i = 0; i < e->n_nodes; i++) {
        if (e->node[i].bridge > 0)
            kill(e->node[i].bridge, SIGTERM);
    }
    for (i = 0; i < e->n_nodes; i++) {
        ft_node *n = &e->node[i];

        if (n->bridge <= 0)
            continue;
        status = node__reap_bridge(n, NODE__BRIDGE_STOP_MS);
        if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            snprintf(why, sizeof(why), "feed-bridge %s did not exit 0 within 5 s of SIGTERM",
                     n->id);
            ft_harness_fail(why);
            ft_node_bridge_signal(e, i + 1, SIGKILL, 2000);
            rc = -1;
        }
    }
    for (i = 1; i < e->n_nodes; i++) {
        if (e->node[i].mosq_up && ft_server_stop(e->node[i].mosq) != 0)
            rc = -1;
        e->node[i].mosq_up = false;
    }
    /* Node 1's broker and the redis. */
    if (ft_plugin_env_stop(&e->p) != 0)
        rc = -1;
    e->node[0].mosq_up = false;
    return rc;
}

int ft_node_bridge_spawn(ft_node_env *e, int i)
{
    ft_node *n = node__get(e, i);

    if (n == NULL || n->bridge > 0)
        return -1;
    return node__spawn_bridge(e, n);
}

int ft_node_bridge_wait(ft_node_env *e, int i)
{
    ft_node *n = node__get(e, i);

    if (n == NULL || n->bridge <= 0)
        return -1;
    return node__wait_bridge(e, n, fp_time_mono_ms() + NODE__BRIDGE_READY_MS);
}

int ft_node_bridge_start(ft_node_env *e, int i)
{
    if (ft_node_bridge_spawn(e, i) != 0)
        return -1;
    return ft_node_bridge_wait(e, i);
}

int ft_node_bridge_signal(ft_node_env *e, int i, int sig, int wait_ms)
{
    ft_node *n = node__get(e, i);

    if (n == NULL || n->bridge <= 0)
        return -1;
    kill(n->bridge, sig);
    return node__reap_bridge(n, wait_ms);
}

int ft_node_kill(ft_node_env *e, int i)
{
    ft_node *n = node__get(e, i);
    int status, rc = 0;

    if (n == NULL)
        return -1;
    if (n->bridge > 0) {
        status = ft_node_bridge_signal(e, i, SIGKILL, 2000);
        if (status == -1 || !WIFSIGNALED(status))
            rc = -1;
    }
    if (n->mosq_up) {
        if (ft_server_kill(n->mosq) != 0)
            rc = -1;
        n->mosq_up = false;
    }
    return rc;
}

int ft_node_restart(ft_node_env *e, int i)
{
    ft_node *n = node__get(e, i);
    int port;

    if (n == NULL || n->bridge > 0 || n->mosq_up)
        return -1;
    port = n->mosq->port;
    /* ft_server_restart reuses the port (and the WebSocket port). */
    if (ft_server_restart(n->mosq) != 0)
        return -1;
    n->mosq_up = true;
    if (n->mosq->port != port)
        return -1;
    return ft_node_bridge_start(e, i);
}

int ft_node_port(const ft_node_env *e, int i)
{
    if (i < 1 || i > e->n_nodes)
        return -1;
    return e->node[i - 1].mosq->port;
}

char *ft_node_token(const ft_node_env *e, const char *sub)
{
    return ft_plugin_env_token_now(&e->p, sub, FP_ROLE_USER);
}

int ft_node_publish(ft_node_env *e, const char *rk, const char *body)
{
    return ft_event_pub_send(&e->pub, rk, body);
}

int ft_node_publishf(ft_node_env *e, const char *rk, const char *fmt, ...)
{
    char *body = malloc(65536);
    va_list ap;
    int n, rc = -1;

    if (body == NULL)
        return -1;
    va_start(ap, fmt);
    n = vsnprintf(body, 65536, fmt, ap);
    va_end(ap);
    if (n >= 0 && n < 65536)
        rc = ft_node_publish(e, rk, body);
    else
        fprintf(stderr, "node_env: event body of %d bytes is too long\n", n);
    free(body);
    return rc;
}

int ft_node_follow(ft_node_env *e, const char *follower, const char *followee)
{
    return ft_node_publishf(
        e, "follow.created",
        "{\"type\":\"follow.created\",\"follower_id\":\"%s\",\"followee_id\":\"%s\"}", follower,
        followee);
}

int ft_node_post(ft_node_env *e, const char *id, const char *author, const char *text)
{
    return ft_node_publishf(
        e, "post.created",
        "{\"type\":\"post.created\",\"post\":{\"id\":\"%s\",\"author_id\":\"%s\",\"text\":\"%s\","
        "\"created_at\":%lld}}",
        id, author, text, (long long)time(NULL) * 1000);
}

int ft_node_queue_depth(ft_node_env *e, const char *queue)
{
    return ft_event_pub_queue_depth(&e->pub, queue);
}

long long ft_node_stat_wait(const ft_node_env *e, int i, const char *name, long long want,
                            int timeout_ms)
{
    int64_t end = fp_time_mono_ms() + timeout_ms;
    long long v = ft_node_stat(e, i, name);

    while (v < want && fp_time_mono_ms() < end) {
        ft_sleep_ms(20);
        v = ft_node_stat(e, i, name);
    }
    return v;
}

long long ft_node_stat(const ft_node_env *e, int i, const char *name)
{
    redisReply *r;
    long long v = -1;

    if (i < 1 || i > e->n_nodes)
        return -1;
    r = ft_redis_once(e->p.redis.port, "HGET stats:bridge:%s %s", e->node[i - 1].id, name);
    if (r != NULL && r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    freeReplyObject(r);
    return v;
}
