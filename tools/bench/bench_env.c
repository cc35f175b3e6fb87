/*
 * bench_env.c - what the benches run against, started through the test
 * harness (tests/harness, tools/fp-server: free loopback ports, a watchdog
 * that stops a server if this process dies): a temp dir that is the
 * harness's FP_TEST_TMP, an HS256 secret, redis-server, rabbitmq-server
 * and node pairs n<i> (mosquitto + feed_auth.so, feed-bridge as our child
 * through ft_harness_child). Also the Redis questions the runs ask and the
 * backend's AMQP publisher.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <amqp_tcp_socket.h>

#include "bench_lib.h"

#define ENV__SADD_BATCH 1000
#define ENV__BODY_MAX 512

/* ------------------------------------------------------------ start / stop */

/*
 * The temp dir goes under the harness's FP_TEST_TMP when ctest set one
 * (the servers fixture then finds whatever is left), else under TMPDIR;
 * the harness then starts every server below it.
 */
int bench_env_start(bench_env *e, const bench_common *c, bool with_rabbit)
{
    const char *base = getenv("FP_TEST_TMP");
    struct timeval tv = {5, 0};
    unsigned char secret[48];
    char err[512];

    memset(e, 0, sizeof(*e));
    e->c = c;
#ifdef FP_BENCH_SANITIZED
    /* This build's plugin needs the sanitizer runtimes in mosquitto. */
    if (getenv("FP_MOSQUITTO_PRELOAD") == NULL || *getenv("FP_MOSQUITTO_PRELOAD") == '\0') {
        fprintf(stderr, "bench: a FEEDPUSH_SANITIZE build needs FP_MOSQUITTO_PRELOAD (ctest sets "
                        "it); benchmark a normal build\n");
        return -1;
    }
#endif
    if (access(c->fp_server, X_OK) != 0 || access(c->plugin, R_OK) != 0) {
        fprintf(stderr, "bench: need %s and %s\n", c->fp_server, c->plugin);
        return -1;
    }
    /* Under ctest the rabbitmq fixture's server saves a slow start. */
    e->shared_rabbit = with_rabbit && base != NULL && *base != '\0' &&
                       ft_server_shared(&e->rabbit, "rabbitmq") == 0;
    if (base == NULL || *base == '\0')
        base = getenv("TMPDIR");
    snprintf(e->root, sizeof(e->root), "%s/feedpush-bench.XXXXXX",
             base != NULL && *base != '\0' ? base : "/tmp");
    if (mkdtemp(e->root) == NULL) {
        fprintf(stderr, "bench: mkdtemp %s: %s\n", e->root, strerror(errno));
        e->root[0] = '\0';
        return -1;
    }
    /* rabbitmq and mosquitto run as their own users and must reach it. */
    chmod(e->root, 0755);
    setenv("FP_HARNESS", c->fp_server, 1);
    setenv("FP_TEST_TMP", e->root, 1);
    snprintf(e->secret_path, sizeof(e->secret_path), "%s/jwt.secret", e->root);
    if (ft_secret_write(e->secret_path, secret, sizeof(secret)) != 0 ||
        fp_jwt_load_key(FP_JWT_HS256, e->secret_path, &e->key, &e->key_len, err, sizeof(err)) !=
            0) {
        fprintf(stderr, "bench: cannot make the HS256 secret\n");
        return -1;
    }
    if (ft_server_start(&e->redis, "redis", NULL) != 0)
        return -1;
    snprintf(e->vhost, sizeof(e->vhost), "/");
    if (e->shared_rabbit) {
        snprintf(e->vhost, sizeof(e->vhost), "bench-%ld", (long)getpid());
        if (ft_server_vhost(&e->rabbit, e->vhost) != 0)
            return -1;
    } else if (with_rabbit && ft_server_start(&e->rabbit, "rabbitmq", NULL) != 0) {
        return -1;
    }
    e->rc = redisConnectWithTimeout("127.0.0.1", e->redis.port, tv);
    if (e->rc == NULL || e->rc->err != 0) {
        fprintf(stderr, "bench: cannot connect to our redis\n");
        return -1;
    }
    redisSetTimeout(e->rc, tv);
    return 0;
}

int bench_env_stop(bench_env *e, bool ok)
{
    char *orphans[] = {(char *)e->c->fp_server, "orphans", e->root, NULL};
    char *rm[] = {"rm", "-rf", e->root, NULL};
    int rc = 0;

    if (bench_nodes_stop(e) != 0)
        rc = -1;
    if (e->rc != NULL)
        redisFree(e->rc);
    e->rc = NULL;
    if (e->key != NULL)
        fp_jwt_key_free(e->key, e->key_len);
    e->key = NULL;
    if (e->rabbit.port > 0 && !e->shared_rabbit && ft_server_stop(&e->rabbit) != 0)
        rc = -1;
    if (e->redis.port > 0 && ft_server_stop(&e->redis) != 0)
        rc = -1;
    e->rabbit.port = e->redis.port = 0;
    if (e->root[0] == '\0')
        return rc;
    if (bench_run(orphans, true) != 0) {
        fprintf(stderr, "bench: processes were left behind under %s\n", e->root);
        rc = -1;
    }
    if (e->c->keep || !ok || rc != 0)
        fprintf(stderr, "bench: servers' and bridges' logs kept in %s\n", e->root);
    else if (bench_run(rm, false) != 0)
        rc = -1;
    e->root[0] = '\0';
    return rc;
}

int bench_broker_start(bench_env *e, ft_server *s, fp_jwt_alg alg, const char *key_file,
                       const char *node_id)
{
    char conf[PATH_MAX + 64], buf[4096];
    FILE *f, *in;
    size_t n;

    snprintf(conf, sizeof(conf), "%s/%s.conf", e->root, node_id);
    f = fopen(conf, "w");
    if (f == NULL)
        return -1;
    /* The production defaults except the node id, key and Redis port. */
    fprintf(f,
            "plugin %s\nplugin_opt_alg %s\nplugin_opt_key_file %s\nplugin_opt_node_id %s\n"
            "plugin_opt_redis_host 127.0.0.1\nplugin_opt_redis_port %d\n",
            e->c->plugin, fp_jwt_alg_name(alg), key_file, node_id, e->redis.port);
    if (e->heartbeat_s > 0)
        fprintf(f, "plugin_opt_heartbeat_interval %d\n", e->heartbeat_s);
    in = e->broker_conf != NULL ? fopen(e->broker_conf, "r") : NULL;
    if (e->broker_conf != NULL && in == NULL)
        fprintf(stderr, "bench: %s: %s\n", e->broker_conf, strerror(errno));
    for (n = 1; in != NULL && n > 0;) {
        n = fread(buf, 1, sizeof(buf), in);
        fwrite(buf, 1, n, f);
    }
    if (in != NULL)
        fclose(in);
    if (fclose(f) != 0 || (e->broker_conf != NULL && in == NULL))
        return -1;
    return ft_server_start(s, "mosquitto", conf);
}

/* ------------------------------------------------------------ node pairs */

/* The bridge child of node n: ft_harness_child (own group, killed with
 * us, log in the temp dir), FEEDPUSH_* configuration. Never returns. */
static void env__exec_bridge(const bench_env *e, const bench_node *n)
{
    char v[4][PATH_MAX + 128];

    snprintf(v[0], sizeof(v[0]), "%s/feed-bridge-%s.log", e->root, n->id);
    ft_harness_child(v[0]);
    snprintf(v[1], sizeof(v[1]), "%d", e->rabbit.port);
    snprintf(v[2], sizeof(v[2]), "%d", e->redis.port);
    snprintf(v[3], sizeof(v[3]), "%d", n->mosq.port);
    setenv("FEEDPUSH_NODE_ID", n->id, 1);
    setenv("FEEDPUSH_AMQP_PORT", v[1], 1);
    setenv("FEEDPUSH_AMQP_VHOST", e->vhost, 1);
    setenv("FEEDPUSH_REDIS_PORT", v[2], 1);
    setenv("FEEDPUSH_MQTT_PORT", v[3], 1);
    setenv("FEEDPUSH_JWT_SIGNING_KEY", e->secret_path, 1);
    setenv("FEEDPUSH_LOG_LEVEL", e->c->log_level, 1);
    /* fp-server's orphan check finds our processes by this marker. */
    snprintf(v[0], sizeof(v[0]), "%s/bridge-%s", e->root, n->id);
    setenv("FEEDPUSH_HARNESS", v[0], 1);
    execl(e->c->bridge, e->c->bridge, (char *)NULL);
    _exit(127);
}

/* Has every node's plugin heartbeated and every bridge written counters? */
static bool env__nodes_ready(bench_env *e)
{
    int i;

    for (i = 0; i < e->n_nodes; i++) {
        if (bench_redis_int(e, "EXISTS node:%s", e->node[i].id) != 1 ||
            bench_stat(e, i, "updated_ms") <= 0)
            return false;
    }
    return true;
}

int bench_nodes_start(bench_env *e, int n)
{
    bench_node *nd;
    pid_t pid;
    int i, k;

    if (n < 1 || n > BENCH_MAX_NODES || access(e->c->bridge, X_OK) != 0) {
        fprintf(stderr, "bench: %d nodes of %s: no\n", n, e->c->bridge);
        return -1;
    }
    for (i = 0; i < n; i++) {
        nd = &e->node[i];
        memset(nd, 0, sizeof(*nd));
        snprintf(nd->id, sizeof(nd->id), "n%d", i + 1);
        e->n_nodes = i + 1;
        if (bench_broker_start(e, &nd->mosq, FP_JWT_HS256, e->secret_path, nd->id) != 0)
            return -1;
    }
    for (i = 0; i < n; i++) {
        pid = fork();
        if (pid < 0)
            return -1;
        if (pid == 0)
            env__exec_bridge(e, &e->node[i]);
        e->node[i].bridge = pid;
    }
    for (k = 0; k < 300; k++) {
        if (env__nodes_ready(e))
            return 0;
        for (i = 0; i < n; i++) {
            if (waitpid(e->node[i].bridge, NULL, WNOHANG) == e->node[i].bridge) {
                e->node[i].bridge = 0;
                fprintf(stderr, "bench: feed-bridge %s exited at start, see %s\n", e->node[i].id,
                        e->root);
                return -1;
            }
        }
        usleep(100000);
    }
    fprintf(stderr, "bench: the %d node pairs were not ready after 30 s\n", n);
    return -1;
}

/* Waits up to 5 s for bridge n after its SIGTERM, then SIGKILLs its group.
 * Returns 0 when it exited 0. */
static int env__bridge_wait(bench_node *n)
{
    int status = 0, waited;

    for (waited = 0; waited < 5000; waited += 20) {
        if (waitpid(n->bridge, &status, WNOHANG) == n->bridge) {
            n->bridge = 0;
            return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
        }
        usleep(20000);
    }
    fprintf(stderr, "bench: feed-bridge %s ignored SIGTERM for 5 s; killing it\n", n->id);
    kill(-n->bridge, SIGKILL);
    waitpid(n->bridge, &status, 0);
    n->bridge = 0;
    return -1;
}

int bench_nodes_stop(bench_env *e)
{
    int i, rc = 0;

    for (i = 0; i < e->n_nodes; i++) {
        if (e->node[i].bridge > 0)
            kill(e->node[i].bridge, SIGTERM);
    }
    for (i = 0; i < e->n_nodes; i++) {
        if (e->node[i].bridge > 0 && env__bridge_wait(&e->node[i]) != 0) {
            fprintf(stderr, "bench: feed-bridge %s did not exit cleanly, see %s\n", e->node[i].id,
                    e->root);
            rc = -1;
        }
    }
    for (i = 0; i < e->n_nodes; i++) {
        if (e->node[i].mosq.port > 0 && ft_server_stop(&e->node[i].mosq) != 0)
            rc = -1;
        e->node[i].mosq.port = 0;
    }
    e->n_nodes = 0;
    return rc;
}

void bench_env_cpu(const bench_env *e, bench_cpu *out)
{
    long groups[BENCH_MAX_GROUPS];
    int i;

    memset(groups, 0, sizeof(groups));
    groups[BENCH_G_REDIS] = e->redis.pid;
    groups[BENCH_G_RABBIT] = e->rabbit.pid;
    for (i = 0; i < e->n_nodes; i++) {
        groups[BENCH_G_MOSQ(i)] = e->node[i].mosq.pid;
        groups[BENCH_G_BRIDGE(i)] = e->node[i].bridge;
    }
    bench_cpu_sample(groups, BENCH_MAX_GROUPS, out);
}

/* ------------------------------------------------------------ Redis */

long long bench_stat(bench_env *e, int i, const char *name)
{
    redisReply *r = redisCommand(e->rc, "HGET stats:bridge:%s %s", e->node[i].id, name);
    long long v = -1;

    if (r != NULL && r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    freeReplyObject(r);
    return v;
}

long long bench_stat_wait(bench_env *e, int i, const char *name, long long want, int64_t end_ns)
{
    long long v = bench_stat(e, i, name);

    while (v < want && fp_time_mono_ns() < end_ns) {
        usleep(20000);
        v = bench_stat(e, i, name);
    }
    return v;
}

long long bench_redis_int(bench_env *e, const char *fmt, ...)
{
    redisReply *r;
    long long v = -1;
    va_list ap;

    va_start(ap, fmt);
    r = redisvCommand(e->rc, fmt, ap);
    va_end(ap);
    if (r != NULL && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    freeReplyObject(r);
    return v;
}

int bench_redis_followers(bench_env *e, const char *author, const size_t *ids, size_t n)
{
    const char **argv = malloc((ENV__SADD_BATCH + 2) * sizeof(*argv));
    char(*names)[24] = malloc(ENV__SADD_BATCH * sizeof(*names)), key[FP_ID_BUFSZ + 16];
    size_t i, j, batch, sent = 0;
    redisReply *r;
    int rc = -1;

    if (argv == NULL || names == NULL)
        goto done;
    snprintf(key, sizeof(key), "followers:%s", author);
    freeReplyObject(redisCommand(e->rc, "DEL %s", key));
    argv[0] = "SADD";
    argv[1] = key;
    for (i = 0; i < n; i += batch) {
        batch = n - i < ENV__SADD_BATCH ? n - i : ENV__SADD_BATCH;
        for (j = 0; j < batch; j++) {
            snprintf(names[j], sizeof(names[j]), "f%zu", ids[i + j]);
            argv[j + 2] = names[j];
        }
        if (redisAppendCommandArgv(e->rc, (int)batch + 2, argv, NULL) != REDIS_OK)
            goto done;
        sent++;
    }
    rc = 0;
    for (i = 0; i < sent; i++) {
        if (redisGetReply(e->rc, (void **)&r) != REDIS_OK) {
            rc = -1;
            break;
        }
        if (r->type == REDIS_REPLY_ERROR)
            rc = -1;
        freeReplyObject(r);
    }
done:
    free(names);
    free(argv);
    return rc;
}

int bench_await_online(bench_env *e, size_t users)
{
    long long have = 0;
    size_t want, n = (size_t)e->n_nodes;
    int i = 0, k;

    for (k = 0; k < 1000; k++) {
        for (i = 0; i < e->n_nodes; i++) {
            want = users / n + ((size_t)i < users % n ? 1 : 0);
            have = bench_redis_int(e, "SCARD online:%s", e->node[i].id);
            if (have != (long long)want)
                break;
        }
        if (i == e->n_nodes)
            return 0;
        usleep(10000);
    }
    fprintf(stderr, "bench: online:%s has %lld users, not its share of %zu\n", e->node[i].id, have,
            users);
    return -1;
}

/* ------------------------------------------------------------ AMQP */

int bench_pub_open(bench_pub *p, const bench_env *e)
{
    amqp_socket_t *sock;
    amqp_rpc_reply_t r;

    memset(p, 0, sizeof(*p));
    p->conn = amqp_new_connection();
    if (p->conn == NULL)
        return -1;
    sock = amqp_tcp_socket_new(p->conn);
    if (sock == NULL || amqp_socket_open(sock, "127.0.0.1", e->rabbit.port) != AMQP_STATUS_OK)
        goto fail;
    r = amqp_login(p->conn, e->vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        goto fail;
    amqp_channel_open(p->conn, 1);
    if (amqp_get_rpc_reply(p->conn).reply_type != AMQP_RESPONSE_NORMAL)
        goto fail;
    amqp_confirm_select(p->conn, 1);
    if (amqp_get_rpc_reply(p->conn).reply_type != AMQP_RESPONSE_NORMAL)
        goto fail;
    return 0;
fail:
    fprintf(stderr, "bench: cannot open the AMQP publisher on port %d\n", e->rabbit.port);
    bench_pub_close(p);
    return -1;
}

void bench_pub_close(bench_pub *p)
{
    if (p->conn == NULL)
        return;
    amqp_connection_close(p->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(p->conn);
    p->conn = NULL;
}

/*
 * Reads confirms until tag upto is confirmed. RabbitMQ confirms the
 * messages of one channel routed to one queue in order, so the highest
 * tag acked so far stands for all below it.
 */
int bench_pub_wait(bench_pub *p, uint64_t upto, int timeout_ms)
{
    int64_t end = fp_time_mono_ns() + (int64_t)timeout_ms * 1000000, left;
    struct timeval tv;
    amqp_frame_t f;
    uint64_t tag;

    while (p->confirmed < upto) {
        left = end - fp_time_mono_ns();
        if (left <= 0)
            return -1;
        tv.tv_sec = (time_t)(left / 1000000000);
        tv.tv_usec = (suseconds_t)(left % 1000000000 / 1000);
        if (amqp_simple_wait_frame_noblock(p->conn, &f, &tv) != AMQP_STATUS_OK)
            return -1;
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        if (f.payload.method.id != AMQP_BASIC_ACK_METHOD) {
            fprintf(stderr, "bench: RabbitMQ refused a publish (method 0x%08x)\n",
                    (unsigned)f.payload.method.id);
            return -1;
        }
        tag = ((amqp_basic_ack_t *)f.payload.method.decoded)->delivery_tag;
        if (tag > p->confirmed)
            p->confirmed = tag;
    }
    return 0;
}

void bench_post_text(char *buf, size_t len, int phase, size_t seq, int64_t ns)
{
    snprintf(buf, len, "fp:%d:%zu:%lld", phase, seq, (long long)ns);
}

/* Publishes one post.created event (persistent). Returns 0 or -1. */
static int env__send(bench_pub *p, int phase, size_t seq, size_t author, int64_t ns)
{
    amqp_basic_properties_t props;
    char body[ENV__BODY_MAX], text[64];

    bench_post_text(text, sizeof(text), phase, seq, ns);
    snprintf(body, sizeof(body),
             "{\"type\":\"post.created\",\"post\":{\"id\":\"p%d-%zu\",\"author_id\":\"a%zu\","
             "\"text\":\"%s\",\"created_at\":%lld}}",
             phase, seq, author, text, (long long)fp_time_real_ms());
    memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    props.delivery_mode = 2;
    props.content_type = amqp_cstring_bytes("application/json");
    if (amqp_basic_publish(p->conn, 1, amqp_cstring_bytes("feed.events"),
                           amqp_cstring_bytes("post.created"), 0, 0, &props,
                           amqp_cstring_bytes(body)) != AMQP_STATUS_OK)
        return -1;
    p->published++;
    return 0;
}

int bench_publish(bench_pub *p, int window, double rate, int phase, size_t n, size_t author0,
                  size_t n_authors, bench_pubtimes *pt)
{
    int64_t start = fp_time_mono_ns(), due = start, sent;
    struct timespec ts;
    size_t i;

    memset(pt, 0, sizeof(*pt));
    for (i = 0; i < n; i++) {
        if (p->published - p->confirmed >= (uint64_t)window &&
            bench_pub_wait(p, p->published - (uint64_t)window + 1, BENCH_STALL_MS) != 0)
            return -1;
        if (rate > 0) {
            /* An absolute schedule: a late publish does not shift the next. */
            due = start + (int64_t)((double)i * 1e9 / rate);
            ts.tv_sec = (time_t)(due / 1000000000);
            ts.tv_nsec = (long)(due % 1000000000);
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
        }
        sent = fp_time_mono_ns();
        if (rate > 0 && sent - due > pt->lag_ns)
            pt->lag_ns = sent - due;
        if (i == 0)
            pt->first_ns = sent;
        pt->last_ns = sent;
        if (env__send(p, phase, i, author0 + i % n_authors, sent) != 0)
            return -1;
    }
    if (bench_pub_wait(p, p->published, BENCH_STALL_MS) != 0)
        return -1;
    pt->confirmed_ns = fp_time_mono_ns();
    return 0;
}
