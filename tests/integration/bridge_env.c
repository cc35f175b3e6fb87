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

#include <amqp_tcp_socket.h>
#include <hiredis/hiredis.h>

extern char **environ;

static int env__amqp_connect(fp_bridge_env *e)
{
    amqp_socket_t *sock;
    amqp_rpc_reply_t r;

    e->pub = amqp_new_connection();
    sock = amqp_tcp_socket_new(e->pub);
    if (sock == NULL || amqp_socket_open(sock, "127.0.0.1", e->rabbit.port) != AMQP_STATUS_OK)
        return -1;
    r = amqp_login(e->pub, e->vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return -1;
    amqp_channel_open(e->pub, 1);
    if (amqp_get_rpc_reply(e->pub).reply_type != AMQP_RESPONSE_NORMAL)
        return -1;
    amqp_confirm_select(e->pub, 1);
    return amqp_get_rpc_reply(e->pub).reply_type == AMQP_RESPONSE_NORMAL ? 0 : -1;
}

int fp_bridge_env_start(fp_bridge_env *e, const char *node_id)
{
    memset(e, 0, sizeof(*e));
    if (fp_plugin_env_start(&e->p, node_id, NULL) != 0)
        return -1;
    if (fp_server_shared(&e->rabbit, "rabbitmq") != 0)
        return -1;
    snprintf(e->vhost, sizeof(e->vhost), "t%ld-%s", (long)getpid(), node_id);
    if (fp_server_vhost(&e->rabbit, e->vhost) != 0)
        return -1;
    snprintf(e->bridge_log, sizeof(e->bridge_log), "%s/feed-bridge.log", e->p.dir);
    if (fp_bridge_start(e) != 0)
        return -1;
    return env__amqp_connect(e);
}

/* The child: its own process group, killed with the test, FEEDPUSH_*
 * configuration, output appended to the log. Never returns. */
static void env__exec_bridge(fp_bridge_env *e, const char *bin)
{
    char v[6][PATH_MAX + 64];
    int fd;

    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    fd = open(e->bridge_log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
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

int fp_bridge_start(fp_bridge_env *e)
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
        if (fp_bridge_stat(e, "updated_ms") > 0)
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

int fp_bridge_signal(fp_bridge_env *e, int sig, int wait_ms)
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

int fp_bridge_env_stop(fp_bridge_env *e)
{
    int rc = 0, status;

    if (e->pub != NULL) {
        amqp_connection_close(e->pub, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(e->pub);
        e->pub = NULL;
    }
    if (e->bridge > 0) {
        status = fp_bridge_signal(e, SIGTERM, 5000);
        if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fp_harness_fail("feed-bridge did not exit 0 within 5 s of SIGTERM");
            if (e->bridge > 0)
                fp_bridge_signal(e, SIGKILL, 2000);
            rc = -1;
        }
    }
    if (fp_plugin_env_stop(&e->p) != 0)
        rc = -1;
    return rc;
}

int fp_bridge_publish(fp_bridge_env *e, const char *rk, const char *body)
{
    amqp_basic_properties_t props;
    struct timeval tv = {10, 0};
    amqp_frame_t f;

    memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    props.delivery_mode = 2;
    props.content_type = amqp_cstring_bytes("application/json");
    if (amqp_basic_publish(e->pub, 1, amqp_cstring_bytes("feed.events"), amqp_cstring_bytes(rk),
                           0, 0, &props, amqp_cstring_bytes(body)) != AMQP_STATUS_OK)
        return -1;
    e->published++;
    for (;;) {
        if (amqp_simple_wait_frame_noblock(e->pub, &f, &tv) != AMQP_STATUS_OK)
            return -1;
        if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_ACK_METHOD &&
            ((amqp_basic_ack_t *)f.payload.method.decoded)->delivery_tag >= e->published)
            return 0;
        if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id != AMQP_BASIC_ACK_METHOD)
            return -1;
    }
}

int fp_bridge_queue_depth(fp_bridge_env *e, const char *queue)
{
    amqp_queue_declare_ok_t *ok;

    ok = amqp_queue_declare(e->pub, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    return ok != NULL ? (int)ok->message_count : -1;
}

long long fp_bridge_stat(fp_bridge_env *e, const char *name)
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
