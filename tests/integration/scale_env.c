/*
 * scale_env.c - N node pairs sharing one redis and one RabbitMQ vhost (see
 * scale_env.h). The plugin configuration is written in plugin_env.c's
 * format, the bridges are forked and configured through FEEDPUSH_*
 * variables as in bridge_env.c.
 */
#include "scale_env.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define SCALE__BRIDGE_READY_MS 15000
#define SCALE__BRIDGE_STOP_MS 5000

static ft_scale_node *scale__node(ft_scale_env *e, int i)
{
    if (i < 1 || i > e->n_nodes)
        return NULL;
    return &e->node[i - 1];
}

/* 48 random bytes (no newline bytes: the verifier strips one) as the
 * HS256 secret, written where mosquitto (its own user) can read it. */
static int scale__write_secret(ft_scale_env *e)
{
    int fd = open("/dev/urandom", O_RDONLY);
    ssize_t n;
    size_t k;
    FILE *f;

    if (fd < 0)
        return -1;
    n = read(fd, e->secret, sizeof(e->secret));
    close(fd);
    if (n != (ssize_t)sizeof(e->secret))
        return -1;
    for (k = 0; k < sizeof(e->secret); k++) {
        if (e->secret[k] == '\n' || e->secret[k] == '\r')
            e->secret[k] = 'x';
    }
    snprintf(e->secret_path, sizeof(e->secret_path), "%s/jwt.secret", e->dir);
    f = fopen(e->secret_path, "wb");
    if (f == NULL)
        return -1;
    fwrite(e->secret, 1, sizeof(e->secret), f);
    fclose(f);
    chmod(e->secret_path, 0644);
    return 0;
}

/* Writes node i's plugin config and starts its mosquitto. 0 or -1. */
static int scale__start_broker(ft_scale_env *e, ft_scale_node *n)
{
    const char *plugin = getenv("FP_PLUGIN");
    char conf[PATH_MAX + 64];
    FILE *f;

    if (plugin == NULL) {
        fprintf(stderr, "scale_env: FP_PLUGIN not set (run through ctest)\n");
        return -1;
    }
    snprintf(conf, sizeof(conf), "%s/plugin.conf", n->dir);
    f = fopen(conf, "w");
    if (f == NULL)
        return -1;
    fprintf(f,
            "plugin %s\nplugin_opt_alg HS256\nplugin_opt_key_file %s\nplugin_opt_node_id %s\n"
            "plugin_opt_redis_host 127.0.0.1\nplugin_opt_redis_port %d\n"
            "plugin_opt_heartbeat_interval 1\n",
            plugin, e->secret_path, n->id, e->redis.port);
    fclose(f);
    if (ft_server_start(&n->mosq, "mosquitto", conf) != 0)
        return -1;
    n->mosq_up = true;
    return 0;
}

/* The bridge child: its own process group, killed with the test, output
 * appended to the node's log. Never returns. */
static void scale__exec_bridge(const ft_scale_env *e, const ft_scale_node *n, const char *bin)
{
    char v[5][PATH_MAX + 96];

    ft_harness_child(n->bridge_log);
    snprintf(v[0], sizeof(v[0]), "%d", e->rabbit.port);
    snprintf(v[1], sizeof(v[1]), "%d", e->redis.port);
    snprintf(v[2], sizeof(v[2]), "%d", n->mosq.port);
    /* The harness's orphan check matches the resolved path. */
    if (realpath(n->dir, v[4]) == NULL)
        snprintf(v[4], sizeof(v[4]), "%s", n->dir);
    snprintf(v[3], sizeof(v[3]), "%.*s/bridge", PATH_MAX, v[4]);
    setenv("FEEDPUSH_NODE_ID", n->id, 1);
    setenv("FEEDPUSH_AMQP_PORT", v[0], 1);
    setenv("FEEDPUSH_AMQP_VHOST", e->vhost, 1);
    setenv("FEEDPUSH_REDIS_PORT", v[1], 1);
    setenv("FEEDPUSH_MQTT_PORT", v[2], 1);
    setenv("FEEDPUSH_JWT_SIGNING_KEY", e->secret_path, 1);
    setenv("FEEDPUSH_TIMEOUT_MS", "2000", 1);
    setenv("FEEDPUSH_LOG_LEVEL", "debug", 1);
    setenv("FEEDPUSH_HARNESS", v[3], 1);
    execl(bin, bin, (char *)NULL);
    _exit(127);
}

/* Forks node n's bridge (not waiting for it). 0 or -1. */
static int scale__spawn_bridge(ft_scale_env *e, ft_scale_node *n)
{
    const char *bin = getenv("FP_BRIDGE");
    pid_t pid;

    if (bin == NULL) {
        fprintf(stderr, "scale_env: FP_BRIDGE not set (run through ctest)\n");
        return -1;
    }
    /* Readiness is the new process's first "updated_ms". */
    ft_scale_redis_int(e, "HDEL stats:bridge:%s updated_ms", n->id);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        scale__exec_bridge(e, n, bin);
    n->bridge = pid;
    return 0;
}

/* Waits until node n's bridge has written its counters, i.e. connected
 * everything and declared the topology. 0 or -1. */
static int scale__wait_bridge(ft_scale_env *e, ft_scale_node *n, int64_t deadline_ms)
{
    int i = (int)(n - e->node) + 1;

    for (;;) {
        if (ft_scale_stat(e, i, "updated_ms") > 0)
            return 0;
        if (waitpid(n->bridge, NULL, WNOHANG) == n->bridge) {
            n->bridge = 0;
            fprintf(stderr, "scale_env: feed-bridge %s exited at start, see %s\n", n->id,
                    n->bridge_log);
            return -1;
        }
        if (fp_time_mono_ms() > deadline_ms)
            break;
        usleep(50000);
    }
    fprintf(stderr, "scale_env: feed-bridge %s not ready after %d ms, see %s\n", n->id,
            SCALE__BRIDGE_READY_MS, n->bridge_log);
    return -1;
}

/* Waits up to wait_ms for node n's bridge to end. Returns the waitpid
 * status, or -1 when it is still running (or was not). */
static int scale__reap_bridge(ft_scale_node *n, int wait_ms)
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
        usleep(20000);
    } while (fp_time_mono_ms() <= end);
    return -1;
}

/* Sends sig to node n's bridge and waits up to wait_ms for it to end. */
static int scale__signal_bridge(ft_scale_node *n, int sig, int wait_ms)
{
    if (n->bridge <= 0)
        return -1;
    kill(n->bridge, sig);
    return scale__reap_bridge(n, wait_ms);
}

/* Opens the test's publisher: guest in the vhost, channel 1 in confirm
 * mode. 0 or -1. */
int ft_scale_env_start(ft_scale_env *e, int n_nodes)
{
    const char *tmp = getenv("FP_TEST_TMP");
    int64_t deadline;
    int i;

    memset(e, 0, sizeof(*e));
    if (tmp == NULL || n_nodes < 1 || n_nodes > FT_SCALE_MAX_NODES) {
        fprintf(stderr, "scale_env: FP_TEST_TMP not set (run through ctest) or bad node count\n");
        return -1;
    }
    e->n_nodes = n_nodes;
    snprintf(e->dir, sizeof(e->dir), "%s/scale-%ld", tmp, (long)getpid());
    if (mkdir(e->dir, 0755) != 0 && errno != EEXIST)
        return -1;
    if (scale__write_secret(e) != 0)
        return -1;
    if (ft_server_start(&e->redis, "redis", NULL) != 0)
        return -1;
    if (ft_server_shared(&e->rabbit, "rabbitmq") != 0)
        return -1;
    snprintf(e->vhost, sizeof(e->vhost), "t%ld-scale", (long)getpid());
    if (ft_server_vhost(&e->rabbit, e->vhost) != 0)
        return -1;
    for (i = 0; i < n_nodes; i++) {
        ft_scale_node *n = &e->node[i];

        snprintf(n->id, sizeof(n->id), "n%d", i + 1);
        snprintf(n->dir, sizeof(n->dir), "%s/%s", e->dir, n->id);
        if (mkdir(n->dir, 0755) != 0 && errno != EEXIST)
            return -1;
        snprintf(n->bridge_log, sizeof(n->bridge_log), "%s/feed-bridge.log", n->dir);
        if (scale__start_broker(e, n) != 0)
            return -1;
    }
    /* The bridges start side by side, as a cluster would. */
    for (i = 0; i < n_nodes; i++) {
        if (scale__spawn_bridge(e, &e->node[i]) != 0)
            return -1;
    }
    deadline = fp_time_mono_ms() + SCALE__BRIDGE_READY_MS;
    for (i = 0; i < n_nodes; i++) {
        if (scale__wait_bridge(e, &e->node[i], deadline) != 0)
            return -1;
    }
    return ft_event_pub_open(&e->pub, e->rabbit.port, e->vhost);
}

int ft_scale_env_stop(ft_scale_env *e)
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
        ft_scale_node *n = &e->node[i];

        if (n->bridge <= 0)
            continue;
        status = scale__reap_bridge(n, SCALE__BRIDGE_STOP_MS);
        if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            snprintf(why, sizeof(why), "feed-bridge %s did not exit 0 within 5 s of SIGTERM",
                     n->id);
            ft_harness_fail(why);
            if (n->bridge > 0)
                scale__signal_bridge(n, SIGKILL, 2000);
            rc = -1;
        }
    }
    for (i = 0; i < e->n_nodes; i++) {
        if (e->node[i].mosq_up && ft_server_stop(&e->node[i].mosq) != 0)
            rc = -1;
        e->node[i].mosq_up = false;
    }
    if (e->redis.pid > 0 && ft_server_stop(&e->redis) != 0)
        rc = -1;
    e->redis.pid = 0;
    return rc;
}

int ft_scale_node_kill(ft_scale_env *e, int i)
{
    ft_scale_node *n = scale__node(e, i);
    int status, rc = 0;

    if (n == NULL)
        return -1;
    if (n->bridge > 0) {
        status = scale__signal_bridge(n, SIGKILL, 2000);
        if (status == -1 || !WIFSIGNALED(status))
            rc = -1;
    }
    if (n->mosq_up) {
        if (ft_server_kill(&n->mosq) != 0)
            rc = -1;
        n->mosq_up = false;
    }
    return rc;
}

int ft_scale_node_restart(ft_scale_env *e, int i)
{
    ft_scale_node *n = scale__node(e, i);
    int port;

    if (n == NULL || n->bridge > 0 || n->mosq_up)
        return -1;
    port = n->mosq.port;
    /* ft_server_restart reuses the port (and the WebSocket port). */
    if (ft_server_restart(&n->mosq) != 0)
        return -1;
    n->mosq_up = true;
    if (n->mosq.port != port)
        return -1;
    if (scale__spawn_bridge(e, n) != 0)
        return -1;
    return scale__wait_bridge(e, n, fp_time_mono_ms() + SCALE__BRIDGE_READY_MS);
}

int ft_scale_port(const ft_scale_env *e, int i)
{
    if (i < 1 || i > e->n_nodes)
        return -1;
    return e->node[i - 1].mosq.port;
}

char *ft_scale_token(const ft_scale_env *e, const char *sub)
{
    fp_jwt_mint_claims c = {0};
    int64_t now = (int64_t)time(NULL);
    char *tok = NULL, err[256];

    c.sub = sub;
    c.iat = now;
    c.exp = now + 3600;
    c.role = FP_ROLE_USER;
    if (fp_jwt_mint(FP_JWT_HS256, e->secret, sizeof(e->secret), &c, &tok, err, sizeof(err)) != 0) {
        fprintf(stderr, "scale_env: mint: %s\n", err);
        abort();
    }
    return tok;
}

int ft_scale_publish(ft_scale_env *e, const char *rk, const char *body)
{
    return ft_event_pub_send(&e->pub, rk, body);
}

int ft_scale_queue_depth(ft_scale_env *e, const char *queue)
{
    return ft_event_pub_queue_depth(&e->pub, queue);
}

/* Runs one command on a connection of its own. NULL when redis failed. */
static redisReply *scale__redis(const ft_scale_env *e, const char *fmt, va_list ap)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", e->redis.port, tv);
    redisReply *r;

    if (c == NULL || c->err != 0) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    r = redisvCommand(c, fmt, ap);
    redisFree(c);
    return r;
}

long long ft_scale_redis_int(const ft_scale_env *e, const char *fmt, ...)
{
    redisReply *r;
    long long v = -1;
    va_list ap;

    va_start(ap, fmt);
    r = scale__redis(e, fmt, ap);
    va_end(ap);
    if (r != NULL && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    freeReplyObject(r);
    return v;
}

/* Wraps the va_list variant for a fixed format. */
static redisReply *scale__redis_cmd(const ft_scale_env *e, const char *fmt, ...)
{
    redisReply *r;
    va_list ap;

    va_start(ap, fmt);
    r = scale__redis(e, fmt, ap);
    va_end(ap);
    return r;
}

long long ft_scale_stat(const ft_scale_env *e, int i, const char *name)
{
    redisReply *r;
    long long v = -1;

    if (i < 1 || i > e->n_nodes)
        return -1;
    r = scale__redis_cmd(e, "HGET stats:bridge:%s %s", e->node[i - 1].id, name);
    if (r != NULL && r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    freeReplyObject(r);
    return v;
}
