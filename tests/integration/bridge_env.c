#include "bridge_env.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

extern char **environ;

int ft_bridge_env_start(ft_bridge_env *e, const char *node_id)
{
    memset(e, 0, sizeof(*e));
    if (ft_plugin_env_start(&e->p, node_id, NULL) != 0)
        return -1;
    if (ft_server_shared(&e->rabbit, "rabbitmq") != 0)
        return -1;
    snprintf(e->vhost, sizeof(e->vhost), "t%ld-%s", (long)getpid(), node_id);
    if (ft_server_vhost(&e->rabbit, e->vhost) != 0)
        return -1;
    snprintf(e->bridge_log, sizeof(e->bridge_log), "%s/feed-bridge.log", e->p.dir);
    if (ft_bridge_start(e) != 0)
        return -1;
    return ft_event_pub_open(&e->pub, e->rabbit.port, e->vhost);
}

/* The child: its own process group, killed with the test, FEEDPUSH_*
 * configuration, output appended to the log. Never returns. */
static void env__exec_bridge(ft_bridge_env *e, const char *bin)
{
    char v[6][PATH_MAX + 64];

    ft_harness_child(e->bridge_log);
    snprintf(v[0], sizeof(v[0]), "%s", e->p.node_id);
    snprintf(v[1], sizeof(v[1]), "%d", e->rabbit.port);
    snprintf(v[2], sizeof(v[2]), "%d", e->p.redis.port);
    snprintf(v[3], sizeof(v[3]), "%d", e->p.mosq.port);
    /* The harness's orphan check matches the resolved path. */
    if (realpath(e->p.dir, v[5]) == NULL)
        snprintf(v[5], sizeof(v[5]), "%s", e->p.dir);
    snprintf(v[4], sizeof(v[4]), "%.*s/bridge", PATH_MAX, v[5]);
    setenv("FEEDPUSH_NODE_ID", v[0], 1);
    setenv("FEEDPUSH_AMQP_PORT", v[1], 1);
    setenv("FEEDPUSH_AMQP_VHOST", e->vhost, 1);
    setenv("FEEDPUSH_REDIS_PORT", v[2], 1);
    setenv("FEEDPUSH_MQTT_PORT", v[3], 1);
    setenv("FEEDPUSH_JWT_SIGNING_KEY", e->p.secret_path, 1);
    setenv("FEEDPUSH_TIMEOUT_MS", "2000", 1);
    setenv("FEEDPUSH_LOG_LEVEL", "debug", 1);
    /* The harness's orphan check finds it by this marker. */
    setenv("FEEDPUSH_HARNESS", v[4], 1);
    execl(bin, bin, (char *)NULL);
    _exit(127);
}

int ft_bridge_start(ft_bridge_env *e)
{
    const char *bin = getenv("FP_BRIDGE");
    pid_t pid;
    int i;

    if (bin == NULL) {
        fprintf(stderr, "bridge_env: FP_BRIDGE not set (run through ctest)\n");
        return -1;
    }
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        env__exec_bridge(e, bin);
    e->bridge = pid;
    /* Ready once it has written its counters, i.e. after it connected
     * everything and declared the topology. */
    for (i = 0; i < 150; i++) {
        if (ft_bridge_stat(e, "updated_ms") > 0)
            return 0;
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            e->bridge = 0;
            fprintf(stderr, "bridge_env: feed-bridge exited at start, see %s\n", e->bridge_log);
            return -1;
        }
        usleep(100000);
    }
    fprintf(stderr, "bridge_env: feed-bridge not ready after 15 s, see %s\n", e->bridge_log);
    return -1;
}

int ft_bridge_signal(ft_bridge_env *e, int sig, int wait_ms)
{
    int status, waited;

    if (e->bridge <= 0)
        return -1;
    kill(e->bridge, sig);
    for (waited = 0; waited <= wait_ms; waited += 20) {
        if (waitpid(e->bridge, &status, WNOHANG) == e->bridge) {
            e->bridge = 0;
            return status;
        }
        usleep(20000);
    }
    return -1;
}

int ft_bridge_env_stop(ft_bridge_env *e)
{
    int rc = 0, status;

    ft_event_pub_close(&e->pub);
    if (e->bridge > 0) {
        status = ft_bridge_signal(e, SIGTERM, 5000);
        if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            ft_harness_fail("feed-bridge did not exit 0 within 5 s of SIGTERM");
            if (e->bridge > 0)
                ft_bridge_signal(e, SIGKILL, 2000);
            rc = -1;
        }
    }
    if (ft_plugin_env_stop(&e->p) != 0)
        rc = -1;
    return rc;
}

int ft_bridge_publish(ft_bridge_env *e, const char *rk, const char *body)
{
    return ft_event_pub_send(&e->pub, rk, body);
}

int ft_bridge_queue_depth(ft_bridge_env *e, const char *queue)
{
    return ft_event_pub_queue_depth(&e->pub, queue);
}

long long ft_bridge_stat(ft_bridge_env *e, const char *name)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", e->p.redis.port, tv);
    redisReply *r;
    long long v = -1;

    if (c == NULL || c->err != 0) {
        redisFree(c);
        return -1;
    }
    r = redisCommand(c, "HGET stats:bridge:%s %s", e->p.node_id, name);
    if (r != NULL && r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    freeReplyObject(r);
    redisFree(c);
    return v;
}
