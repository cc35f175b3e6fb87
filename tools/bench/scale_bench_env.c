/*
 * scale_bench_env.c - what feedpush-bench-scale runs against: one
 * redis-server and one rabbitmq-server (a vhost of this run) shared by N
 * node pairs n1..nN, all in a temp dir of this run. The servers are
 * started and stopped through tools/fp-server (free loopback ports; a
 * watchdog stops a server if this process dies). Node i's mosquitto lives
 * in ROOT/n<i>/ and loads feed_auth.so with plugin_opt_node_id n<i> and a
 * short heartbeat; its feed-bridge is our child in its own process group,
 * configured through FEEDPUSH_* variables, killed if we die.
 *
 * Also here: the publisher's login to the vhost, a few Redis helpers and
 * the CPU time of every process, from /proc.
 */
#include <dirent.h>
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
#include <unistd.h>

#include <amqp_tcp_socket.h>

#include "fp_jwt.h"
#include "scale_bench.h"

/* ------------------------------------------------------------ processes */

/* Runs `fp-server VERB ARG1 [ARG2]` to its end. Returns its status. */
static int env__fp_server(const sb_env *e, const char *verb, const char *a1, const char *a2)
{
    char *argv[6];
    int n = 0;

    argv[n++] = (char *)e->fp_server;
    argv[n++] = (char *)verb;
    argv[n++] = (char *)a1;
    if (a2 != NULL)
        argv[n++] = (char *)a2;
    argv[n] = NULL;
    return bb_wait(bb_spawn(argv));
}

/* ------------------------------------------------------------ files */

/* 48 random bytes without newline bytes, readable by mosquitto's user. */
static int env__write_secret(sb_env *e)
{
    unsigned char secret[48];
    int fd = open("/dev/urandom", O_RDONLY);
    ssize_t n;
    size_t i;
    FILE *f;

    if (fd < 0)
        return -1;
    n = read(fd, secret, sizeof(secret));
    close(fd);
    if (n != (ssize_t)sizeof(secret))
        return -1;
    for (i = 0; i < sizeof(secret); i++) {
        if (secret[i] == '\n' || secret[i] == '\r')
            secret[i] = 'x';
    }
    snprintf(e->secret_path, sizeof(e->secret_path), "%s/jwt.secret", e->root);
    f = fopen(e->secret_path, "wb");
    if (f == NULL)
        return -1;
    n = (ssize_t)fwrite(secret, 1, sizeof(secret), f);
    if (fclose(f) != 0 || n != (ssize_t)sizeof(secret))
        return -1;
    return chmod(e->secret_path, 0644);
}

/* Node n's directory and the plugin lines fp-server appends to its
 * generated mosquitto config: production defaults except the node id,
 * key, Redis port and the heartbeat. Returns 0 or -1. */
static int env__node_prepare(sb_env *e, sb_node *n, int i, char *conf, size_t len)
{
    FILE *f;

    memset(n, 0, sizeof(*n));
    snprintf(n->id, sizeof(n->id), "n%d", i);
    snprintf(n->dir, sizeof(n->dir), "%s/%s", e->root, n->id);
    if (mkdir(n->dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "bench: mkdir %s: %s\n", n->dir, strerror(errno));
        return -1;
    }
    /* mosquitto runs as its own user and reads the plugin conf there. */
    chmod(n->dir, 0755);
    snprintf(conf, len, "%s/plugin.conf", n->dir);
    f = fopen(conf, "w");
    if (f == NULL)
        return -1;
    fprintf(f,
            "plugin %s\nplugin_opt_alg HS256\nplugin_opt_key_file %s\nplugin_opt_node_id %s\n"
            "plugin_opt_redis_host 127.0.0.1\nplugin_opt_redis_port %d\n"
            "plugin_opt_heartbeat_interval %d\n",
            e->plugin, e->secret_path, n->id, e->redis_port, e->heartbeat_s);
    return fclose(f) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ the bridges */

/* The child: own process group, killed with us, FEEDPUSH_* configuration,
 * output to DIR/feed-bridge.log. Never returns. */
static void env__exec_bridge(const sb_env *e, const sb_node *n)
{
    char v[5][PATH_MAX + 64];
    int fd;

    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    snprintf(v[0], sizeof(v[0]), "%s/feed-bridge.log", n->dir);
    fd = open(v[0], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    snprintf(v[1], sizeof(v[1]), "%d", e->amqp_port);
    snprintf(v[2], sizeof(v[2]), "%d", e->redis_port);
    snprintf(v[3], sizeof(v[3]), "%d", n->mqtt_port);
    snprintf(v[4], sizeof(v[4]), "%s/bridge", n->dir);
    setenv("FEEDPUSH_NODE_ID", n->id, 1);
    setenv("FEEDPUSH_AMQP_PORT", v[1], 1);
    setenv("FEEDPUSH_AMQP_VHOST", e->vhost, 1);
    setenv("FEEDPUSH_REDIS_PORT", v[2], 1);
    setenv("FEEDPUSH_MQTT_PORT", v[3], 1);
    setenv("FEEDPUSH_JWT_SIGNING_KEY", e->secret_path, 1);
    setenv("FEEDPUSH_LOG_LEVEL", e->bridge_log_level, 1);
    /* fp-server's orphan check finds our processes by this marker. */
    setenv("FEEDPUSH_HARNESS", v[4], 1);
    execl(e->bridge_bin, e->bridge_bin, (char *)NULL);
    _exit(127);
}

/* SIGTERM, up to 5 s, then SIGKILL. Returns 0 when it exited 0. */
static int env__bridge_stop(sb_node *n)
{
    int status = 0, waited;

    if (n->bridge <= 0)
        return 0;
    kill(n->bridge, SIGTERM);
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

/* ------------------------------------------------------------ start / stop */

int sb_env_start(sb_env *e)
{
    const char *tmp = getenv("TMPDIR");
    char err[512];
    pid_t rabbit, starter;
    struct timeval tv = {5, 0};
    int rc = -1;

    if (access(e->fp_server, X_OK) != 0 || access(e->plugin, R_OK) != 0 ||
        access(e->bridge_bin, X_OK) != 0) {
        fprintf(stderr, "bench: need %s, %s and %s\n", e->fp_server, e->plugin, e->bridge_bin);
        return -1;
    }
    snprintf(e->root, sizeof(e->root), "%s/feedpush-bench-scale.XXXXXX",
             tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
    if (mkdtemp(e->root) == NULL) {
        fprintf(stderr, "bench: mkdtemp %s: %s\n", e->root, strerror(errno));
        e->root[0] = '\0';
        return -1;
    }
    /* rabbitmq and mosquitto run as their own users and must reach it. */
    chmod(e->root, 0755);
    if (env__write_secret(e) != 0 || fp_jwt_load_key(FP_JWT_HS256, e->secret_path, &e->key,
                                                     &e->key_len, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench: cannot make the HS256 secret\n");
        return -1;
    }
    /* RabbitMQ takes the longest: it boots while redis starts. */
    rabbit = bb_server_spawn(e->fp_server, "rabbitmq", e->root, NULL);
    starter = bb_server_spawn(e->fp_server, "redis", e->root, NULL);
    if (bb_server_ready(starter, "redis", e->root, &e->redis_port, &e->redis_pgid) != 0)
        goto cleanup;
    starter = rabbit;
    rabbit = -1;
    if (bb_server_ready(starter, "rabbitmq", e->root, &e->amqp_port, &e->amqp_pgid) != 0)
        goto cleanup;
    snprintf(e->vhost, sizeof(e->vhost), "feedpush-scale");
    if (env__fp_server(e, "vhost", e->root, e->vhost) != 0) {
        fprintf(stderr, "bench: cannot create the vhost %s\n", e->vhost);
        goto cleanup;
    }
    e->redis = redisConnectWithTimeout("127.0.0.1", e->redis_port, tv);
    if (e->redis == NULL || e->redis->err != 0) {
        fprintf(stderr, "bench: cannot connect to our redis\n");
        goto cleanup;
    }
    redisSetTimeout(e->redis, tv);
    rc = 0;
cleanup:
    if (rabbit > 0)
        bb_wait(rabbit);
    return rc;
}

/* Has every node's plugin heartbeated and every bridge written counters? */
static bool env__nodes_ready(sb_env *e, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        if (sb_redis_int(e, "EXISTS node:%s", e->node[i].id) != 1 ||
            sb_stat(e, e->node[i].id, "updated_ms") <= 0)
            return false;
    }
    return true;
}

/*
 * The brokers start side by side (one fp-server each), then the bridges.
 * Ready means: node:n<i> exists (the plugin's heartbeat, so routing takes
 * the node) and stats:bridge:n<i> has been written (the bridge has its
 * links and its queues).
 */
int sb_nodes_start(sb_env *e, int n)
{
    char conf[PATH_MAX + 32];
    pid_t starter[SB_MAX_NODES], pid;
    int i, k, rc = 0;

    if (n < 1 || n > SB_MAX_NODES)
        return -1;
    for (i = 0; i < n; i++) {
        starter[i] = -1;
        if (env__node_prepare(e, &e->node[i], i + 1, conf, sizeof(conf)) != 0)
            rc = -1;
        else
            starter[i] = bb_server_spawn(e->fp_server, "mosquitto", e->node[i].dir, conf);
    }
    e->n_nodes = n;
    for (i = 0; i < n; i++) {
        if (bb_server_ready(starter[i], "mosquitto", e->node[i].dir, &e->node[i].mqtt_port,
                            &e->node[i].mqtt_pgid) != 0)
            rc = -1;
    }
    if (rc != 0)
        return -1;
    for (i = 0; i < n; i++) {
        pid = fork();
        if (pid < 0)
            return -1;
        if (pid == 0)
            env__exec_bridge(e, &e->node[i]);
        e->node[i].bridge = pid;
    }
    for (k = 0; k < 300; k++) {
        if (env__nodes_ready(e, n))
            return 0;
        for (i = 0; i < n; i++) {
            if (waitpid(e->node[i].bridge, NULL, WNOHANG) == e->node[i].bridge) {
                e->node[i].bridge = 0;
                fprintf(stderr, "bench: feed-bridge %s exited at start, see %s/feed-bridge.log\n",
                        e->node[i].id, e->node[i].dir);
                return -1;
            }
        }
        usleep(100000);
    }
    fprintf(stderr, "bench: the %d node pairs were not ready after 30 s\n", n);
    return -1;
}

int sb_nodes_stop(sb_env *e)
{
    int i, rc = 0;

    for (i = 0; i < e->n_nodes; i++) {
        if (e->node[i].bridge > 0)
            kill(e->node[i].bridge, SIGTERM);
    }
    for (i = 0; i < e->n_nodes; i++) {
        if (env__bridge_stop(&e->node[i]) != 0) {
            fprintf(stderr, "bench: feed-bridge %s did not exit cleanly, see %s/feed-bridge.log\n",
                    e->node[i].id, e->node[i].dir);
            rc = -1;
        }
    }
    for (i = 0; i < e->n_nodes; i++) {
        if (e->node[i].mqtt_pgid > 0 && env__fp_server(e, "stop", "mosquitto", e->node[i].dir) != 0)
            rc = -1;
        e->node[i].mqtt_pgid = 0;
    }
    e->n_nodes = 0;
    return rc;
}

int sb_env_stop(sb_env *e)
{
    int rc = 0;

    if (sb_nodes_stop(e) != 0)
        rc = -1;
    if (e->redis != NULL)
        redisFree(e->redis);
    e->redis = NULL;
    if (e->key != NULL)
        fp_jwt_key_free(e->key, e->key_len);
    e->key = NULL;
    if (e->root[0] == '\0')
        return rc;
    if (env__fp_server(e, "stop-all", e->root, NULL) != 0)
        rc = -1;
    if (env__fp_server(e, "orphans", e->root, NULL) != 0)
        rc = -1;
    if (e->keep) {
        fprintf(stderr, "bench: servers' and bridges' logs kept in %s\n", e->root);
    } else {
        char *rm[] = {"rm", "-rf", e->root, NULL};

        if (bb_wait(bb_spawn(rm)) != 0)
            rc = -1;
    }
    e->root[0] = '\0';
    return rc;
}

/* ------------------------------------------------------------ Redis */

int sb_redis_flush(sb_env *e)
{
    redisReply *r = redisCommand(e->redis, "FLUSHALL");
    int rc = r != NULL && r->type == REDIS_REPLY_STATUS ? 0 : -1;

    freeReplyObject(r);
    return rc;
}

long long sb_stat(sb_env *e, const char *node, const char *name)
{
    redisReply *r = redisCommand(e->redis, "HGET stats:bridge:%s %s", node, name);
    long long v = -1;

    if (r != NULL && r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    freeReplyObject(r);
    return v;
}

long long sb_redis_int(sb_env *e, const char *fmt, ...)
{
    redisReply *r;
    long long v = -1;
    va_list ap;

    va_start(ap, fmt);
    r = redisvCommand(e->redis, fmt, ap);
    va_end(ap);
    if (r != NULL && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    freeReplyObject(r);
    return v;
}

int sb_redis_followers(sb_env *e, const char *author, const size_t *ids, size_t n)
{
    const char **argv = malloc((n + 2) * sizeof(*argv));
    char(*names)[24] = malloc((n > 0 ? n : 1) * sizeof(*names));
    char key[FP_ID_BUFSZ + 16];
    redisReply *r = NULL;
    size_t i;
    int rc = -1;

    if (argv == NULL || names == NULL)
        goto cleanup;
    snprintf(key, sizeof(key), "followers:%s", author);
    argv[0] = "SADD";
    argv[1] = key;
    for (i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "f%zu", ids[i]);
        argv[i + 2] = names[i];
    }
    r = redisCommandArgv(e->redis, (int)n + 2, argv, NULL);
    if (r != NULL && r->type == REDIS_REPLY_INTEGER)
        rc = 0;
cleanup:
    freeReplyObject(r);
    free(names);
    free(argv);
    return rc;
}

/* ------------------------------------------------------------ AMQP */

int sb_pub_open(bb_pub *p, const sb_env *e)
{
    amqp_socket_t *sock;
    amqp_rpc_reply_t r;

    memset(p, 0, sizeof(*p));
    p->conn = amqp_new_connection();
    if (p->conn == NULL)
        return -1;
    sock = amqp_tcp_socket_new(p->conn);
    if (sock == NULL || amqp_socket_open(sock, "127.0.0.1", e->amqp_port) != AMQP_STATUS_OK)
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
    fprintf(stderr, "bench: cannot open the AMQP publisher on port %d, vhost %s\n", e->amqp_port,
            e->vhost);
    bb_pub_close(p);
    return -1;
}

/* ------------------------------------------------------------ CPU */

/* The context switches of one thread, from its status file: adds them
 * to *vol and *invol. */
static void env__switches(const char *path, double *vol, double *invol)
{
    char line[128];
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0)
            *vol += strtod(line + 24, NULL);
        else if (strncmp(line, "nonvoluntary_ctxt_switches:", 27) == 0)
            *invol += strtod(line + 27, NULL);
    }
    fclose(f);
}

/* Seconds on a CPU of every thread of /proc/<pid> (schedstat, ns); with
 * vol and invol given, adds the threads' context switches to them. */
static double env__schedstat(const char *pid, double *vol, double *invol)
{
    char path[600];
    unsigned long long on, queued;
    struct dirent *d;
    double sum = 0;
    DIR *dir;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%.256s/task", pid);
    dir = opendir(path);
    if (dir == NULL)
        return 0;
    for (;;) {
        d = readdir(dir);
        if (d == NULL)
            break;
        if (d->d_name[0] < '0' || d->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%.256s/task/%.256s/schedstat", pid, d->d_name);
        f = fopen(path, "r");
        if (f == NULL)
            continue;
        if (fscanf(f, "%llu %llu", &on, &queued) == 2)
            sum += (double)on / 1e9;
        fclose(f);
        if (vol != NULL) {
            snprintf(path, sizeof(path), "/proc/%.256s/task/%.256s/status", pid, d->d_name);
            env__switches(path, vol, invol);
        }
    }
    closedir(dir);
    return sum;
}

/* Busy seconds of all CPUs together: the first line of /proc/stat minus
 * idle and iowait. */
static double env__machine_busy(void)
{
    unsigned long long v[8];
    long hz = sysconf(_SC_CLK_TCK);
    FILE *f = fopen("/proc/stat", "r");
    int n;

    if (f == NULL)
        return 0;
    n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8 || hz <= 0)
        return 0;
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)hz;
}

/*
 * Every process is attributed by its process group: fp-server starts each
 * server in a session of its own (the group id is the PID in its .env),
 * and each bridge is the leader of its own group. The threads of a
 * process each have a schedstat; their sum is the process's CPU time.
 */
void sb_cpu_sample(const sb_env *e, sb_cpu *out)
{
    struct dirent *d;
    long pgrp;
    DIR *dir;
    int i;

    memset(out, 0, sizeof(*out));
    out->machine = env__machine_busy();
    out->bench = env__schedstat("self", NULL, NULL);
    dir = opendir("/proc");
    if (dir == NULL)
        return;
    for (;;) {
        d = readdir(dir);
        if (d == NULL)
            break;
        if (d->d_name[0] < '0' || d->d_name[0] > '9')
            continue;
        pgrp = bb_pgrp(d->d_name);
        if (pgrp <= 0)
            continue;
        if (pgrp == e->redis_pgid)
            out->redis += env__schedstat(d->d_name, NULL, NULL);
        else if (pgrp == e->amqp_pgid)
            out->rabbit += env__schedstat(d->d_name, NULL, NULL);
        for (i = 0; i < e->n_nodes; i++) {
            if (pgrp == e->node[i].mqtt_pgid)
                out->mosq[i] += env__schedstat(d->d_name, &out->node_vol, &out->node_invol);
            else if (pgrp == e->node[i].bridge)
                out->bridge[i] += env__schedstat(d->d_name, &out->node_vol, &out->node_invol);
        }
    }
    closedir(dir);
}
