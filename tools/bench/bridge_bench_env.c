/*
 * bridge_bench_env.c - what feedpush-bench-bridge runs against: one node
 * pair (redis-server, mosquitto + feed_auth.so, feed-bridge) and a
 * rabbitmq-server, all in a temp dir of this run, started and stopped
 * through tools/fp-server (free loopback ports; a watchdog stops a server
 * if this process dies). The bridge is our child in its own process group,
 * configured through FEEDPUSH_* variables, killed if we die.
 *
 * Also here: the backend's AMQP publisher (publisher confirms), the Redis
 * questions the runs ask, and per-process CPU time from /proc.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <amqp_tcp_socket.h>

#include "bridge_bench.h"
#include "fp_jwt.h"

extern char **environ;

#define ENV__SADD_BATCH 1000

/* ------------------------------------------------------------ fp-server */

/* Spawns argv (argv[0] looked up in PATH). Returns the pid or -1. */
pid_t bb_spawn(char *const argv[])
{
    pid_t pid;
    int rc;

    rc = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
    if (rc != 0) {
        fprintf(stderr, "bench: cannot run %s: %s\n", argv[0], strerror(rc));
        return -1;
    }
    return pid;
}

/* Waits for pid. Returns its exit status, or -1 when killed or when pid
 * is not a child (a failed spawn). */
int bb_wait(pid_t pid)
{
    int status;

    if (pid <= 0)
        return -1;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Reads KEY=<number> from DIR/KIND.env. Returns the number or -1. */
long bb_read_env(const char *dir, const char *kind, const char *key)
{
    char path[PATH_MAX + 64], line[256];
    size_t klen = strlen(key);
    long v = -1;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s.env", dir, kind);
    f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == '=')
            v = atol(line + klen + 1);
    }
    fclose(f);
    return v > 0 ? v : -1;
}

/* Starts `fp-server start KIND ROOT --owner <us> [--conf FILE]` without
 * waiting for it. Returns the fp-server pid or -1. */
pid_t bb_server_spawn(const char *fp_server, const char *kind, const char *dir, const char *conf)
{
    char owner[24];
    char *argv[10];
    int n = 0;

    snprintf(owner, sizeof(owner), "%ld", (long)getpid());
    argv[n++] = (char *)fp_server;
    argv[n++] = "start";
    argv[n++] = (char *)kind;
    argv[n++] = (char *)dir;
    argv[n++] = "--owner";
    argv[n++] = owner;
    if (conf != NULL) {
        argv[n++] = "--conf";
        argv[n++] = (char *)conf;
    }
    argv[n] = NULL;
    return bb_spawn(argv);
}

/* Waits for the fp-server start of kind; fills its port and process
 * group. Returns 0 or -1. */
int bb_server_ready(pid_t starter, const char *kind, const char *dir, int *port, pid_t *pgid)
{
    long p, pid;

    if (starter < 0 || bb_wait(starter) != 0) {
        fprintf(stderr, "bench: fp-server could not start %s in %s\n", kind, dir);
        return -1;
    }
    p = bb_read_env(dir, kind, "PORT");
    pid = bb_read_env(dir, kind, "PID");
    if (p < 0 || pid < 0)
        return -1;
    *port = (int)p;
    *pgid = (pid_t)pid; /* fp-server starts each server in its own session */
    return 0;
}

/* ------------------------------------------------------------ files */

/* 48 random bytes without newline bytes, readable by mosquitto's user. */
static int env__write_secret(bb_env *e)
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

/* Copies the file at path to the end of out. Returns 0 or -1. */
static int env__append_file(FILE *out, const char *path)
{
    char buf[4096];
    size_t n;
    FILE *in = fopen(path, "r");

    if (in == NULL) {
        fprintf(stderr, "bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (;;) {
        n = fread(buf, 1, sizeof(buf), in);
        if (n == 0)
            break;
        fwrite(buf, 1, n, out);
    }
    fclose(in);
    return 0;
}

/* The plugin lines appended to fp-server's generated mosquitto config:
 * the production defaults except the node id, key and Redis port; then
 * --broker-conf's lines, if any. */
static int env__write_plugin_conf(bb_env *e, char *path, size_t len)
{
    FILE *f;

    snprintf(path, len, "%s/plugin.conf", e->root);
    f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fprintf(f,
            "plugin %s\nplugin_opt_alg HS256\nplugin_opt_key_file %s\nplugin_opt_node_id %s\n"
            "plugin_opt_redis_host 127.0.0.1\nplugin_opt_redis_port %d\n",
            e->plugin, e->secret_path, e->node, e->redis_port);
    if (e->broker_conf != NULL && env__append_file(f, e->broker_conf) != 0) {
        fclose(f);
        return -1;
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ the bridge */

/* The child: own process group, killed with us, FEEDPUSH_* configuration,
 * output to ROOT/feed-bridge.log. Never returns. */
static void env__exec_bridge(const bb_env *e)
{
    char v[5][PATH_MAX + 32];
    int fd;

    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    snprintf(v[0], sizeof(v[0]), "%s/feed-bridge.log", e->root);
    fd = open(v[0], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    snprintf(v[1], sizeof(v[1]), "%d", e->amqp_port);
    snprintf(v[2], sizeof(v[2]), "%d", e->redis_port);
    snprintf(v[3], sizeof(v[3]), "%d", e->mqtt_port);
    snprintf(v[4], sizeof(v[4]), "%s/bridge", e->root);
    setenv("FEEDPUSH_NODE_ID", e->node, 1);
    setenv("FEEDPUSH_AMQP_PORT", v[1], 1);
    setenv("FEEDPUSH_AMQP_VHOST", "/", 1);
    setenv("FEEDPUSH_REDIS_PORT", v[2], 1);
    setenv("FEEDPUSH_MQTT_PORT", v[3], 1);
    setenv("FEEDPUSH_JWT_SIGNING_KEY", e->secret_path, 1);
    setenv("FEEDPUSH_LOG_LEVEL", e->bridge_log_level, 1);
    /* fp-server's orphan check finds our processes by this marker. */
    setenv("FEEDPUSH_HARNESS", v[4], 1);
    execl(e->bridge_bin, e->bridge_bin, (char *)NULL);
    _exit(127);
}

/* Starts the bridge and waits (20 s at most) for its first counters in
 * Redis, written once it has connected everything. Returns 0 or -1. */
static int env__bridge_start(bb_env *e)
{
    pid_t pid;
    int i;

    if (access(e->bridge_bin, X_OK) != 0) {
        fprintf(stderr, "bench: feed-bridge %s: %s\n", e->bridge_bin, strerror(errno));
        return -1;
    }
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        env__exec_bridge(e);
    e->bridge = pid;
    for (i = 0; i < 200; i++) {
        if (bb_stat(e, "updated_ms") > 0)
            return 0;
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            e->bridge = 0;
            fprintf(stderr, "bench: feed-bridge exited at start, see %s/feed-bridge.log\n",
                    e->root);
            return -1;
        }
        usleep(100000);
    }
    fprintf(stderr, "bench: feed-bridge not ready after 20 s\n");
    return -1;
}

/* SIGTERM, up to 5 s, then SIGKILL. Returns 0 when it exited 0. */
static int env__bridge_stop(bb_env *e)
{
    int status = 0, waited;

    if (e->bridge <= 0)
        return 0;
    kill(e->bridge, SIGTERM);
    for (waited = 0; waited < 5000; waited += 20) {
        if (waitpid(e->bridge, &status, WNOHANG) == e->bridge) {
            e->bridge = 0;
            return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
        }
        usleep(20000);
    }
    fprintf(stderr, "bench: feed-bridge ignored SIGTERM for 5 s; killing it\n");
    kill(-e->bridge, SIGKILL);
    waitpid(e->bridge, &status, 0);
    e->bridge = 0;
    return -1;
}

/* ------------------------------------------------------------ start / stop */

int bb_env_start(bb_env *e)
{
    const char *tmp = getenv("TMPDIR");
    char conf[PATH_MAX + 32], err[512];
    pid_t rabbit, starter;
    struct timeval tv = {5, 0};

    if (access(e->fp_server, X_OK) != 0 || access(e->plugin, R_OK) != 0) {
        fprintf(stderr, "bench: need %s and %s\n", e->fp_server, e->plugin);
        return -1;
    }
    snprintf(e->root, sizeof(e->root), "%s/feedpush-bench-bridge.XXXXXX",
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
    /* RabbitMQ takes the longest: it boots while the others start. */
    rabbit = bb_server_spawn(e->fp_server, "rabbitmq", e->root, NULL);
    starter = bb_server_spawn(e->fp_server, "redis", e->root, NULL);
    if (bb_server_ready(starter, "redis", e->root, &e->redis_port, &e->redis_pgid) != 0)
        goto fail;
    if (env__write_plugin_conf(e, conf, sizeof(conf)) != 0)
        goto fail;
    starter = bb_server_spawn(e->fp_server, "mosquitto", e->root, conf);
    if (bb_server_ready(starter, "mosquitto", e->root, &e->mqtt_port, &e->mqtt_pgid) != 0)
        goto fail;
    if (bb_server_ready(rabbit, "rabbitmq", e->root, &e->amqp_port, &e->amqp_pgid) != 0) {
        rabbit = -1;
        goto fail;
    }
    rabbit = -1;
    e->redis = redisConnectWithTimeout("127.0.0.1", e->redis_port, tv);
    if (e->redis == NULL || e->redis->err != 0) {
        fprintf(stderr, "bench: cannot connect to our redis\n");
        return -1;
    }
    redisSetTimeout(e->redis, tv);
    return env__bridge_start(e);
fail:
    if (rabbit > 0)
        bb_wait(rabbit);
    return -1;
}

int bb_env_stop(bb_env *e)
{
    char *stop[] = {e->fp_server, "stop-all", e->root, NULL};
    char *orphans[] = {e->fp_server, "orphans", e->root, NULL};
    char *rm[] = {"rm", "-rf", e->root, NULL};
    int rc = 0;

    if (env__bridge_stop(e) != 0)
        rc = -1;
    if (e->redis != NULL)
        redisFree(e->redis);
    e->redis = NULL;
    if (e->key != NULL)
        fp_jwt_key_free(e->key, e->key_len);
    e->key = NULL;
    if (e->root[0] == '\0')
        return rc;
    if (bb_wait(bb_spawn(stop)) != 0)
        rc = -1;
    if (bb_wait(bb_spawn(orphans)) != 0)
        rc = -1;
    if (e->keep)
        fprintf(stderr, "bench: servers' and bridge logs kept in %s\n", e->root);
    else if (bb_wait(bb_spawn(rm)) != 0)
        rc = -1;
    e->root[0] = '\0';
    return rc;
}

/* ------------------------------------------------------------ Redis */

long long bb_stat(bb_env *e, const char *name)
{
    redisReply *r;
    long long v = -1;
    struct timeval tv = {2, 0};

    if (e->redis == NULL) {
        /* Before bb_env_start finished: a short-lived connection. */
        redisContext *c = redisConnectWithTimeout("127.0.0.1", e->redis_port, tv);

        if (c == NULL || c->err != 0) {
            redisFree(c);
            return -1;
        }
        r = redisCommand(c, "HGET stats:bridge:%s %s", e->node, name);
        if (r != NULL && r->type == REDIS_REPLY_STRING)
            v = atoll(r->str);
        freeReplyObject(r);
        redisFree(c);
        return v;
    }
    r = redisCommand(e->redis, "HGET stats:bridge:%s %s", e->node, name);
    if (r != NULL && r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    freeReplyObject(r);
    return v;
}

long long bb_stat_wait(bb_env *e, const char *name, long long want, int ms)
{
    int64_t end = fp_time_mono_ns() + (int64_t)ms * 1000000;
    long long v;

    for (;;) {
        v = bb_stat(e, name);
        if (v >= want || fp_time_mono_ns() >= end)
            return v;
        usleep(20000);
    }
}

int bb_redis_cmdstat(bb_env *e, const char *cmd, long long *calls, long long *usec)
{
    char key[64], *p;
    redisReply *r;
    int rc = -1;

    *calls = *usec = 0;
    r = redisCommand(e->redis, "INFO commandstats");
    if (r == NULL || r->type != REDIS_REPLY_STRING)
        goto done;
    snprintf(key, sizeof(key), "cmdstat_%s:calls=", cmd);
    p = strstr(r->str, key);
    rc = 0; /* a command never called has no line: zero */
    if (p == NULL)
        goto done;
    *calls = atoll(p + strlen(key));
    p = strstr(p, ",usec=");
    if (p != NULL)
        *usec = atoll(p + 6);
done:
    freeReplyObject(r);
    return rc;
}

int bb_redis_followers(bb_env *e, const char *author, size_t n)
{
    const char **argv = NULL;
    char(*ids)[16] = NULL, key[FP_ID_BUFSZ + 16];
    size_t i, j, batch, sent = 0;
    redisReply *r;
    int rc = -1;

    argv = malloc((ENV__SADD_BATCH + 2) * sizeof(*argv));
    ids = malloc(ENV__SADD_BATCH * sizeof(*ids));
    if (argv == NULL || ids == NULL)
        goto done;
    snprintf(key, sizeof(key), "followers:%s", author);
    r = redisCommand(e->redis, "DEL %s", key);
    freeReplyObject(r);
    for (i = 0; i < n; i += batch) {
        batch = n - i < ENV__SADD_BATCH ? n - i : ENV__SADD_BATCH;
        argv[0] = "SADD";
        argv[1] = key;
        for (j = 0; j < batch; j++) {
            snprintf(ids[j], sizeof(ids[j]), "f%zu", i + j);
            argv[j + 2] = ids[j];
        }
        if (redisAppendCommandArgv(e->redis, (int)batch + 2, argv, NULL) != REDIS_OK)
            goto done;
        sent++;
    }
    rc = 0;
    for (i = 0; i < sent; i++) {
        if (redisGetReply(e->redis, (void **)&r) != REDIS_OK)
            return -1;
        if (r->type == REDIS_REPLY_ERROR)
            rc = -1;
        freeReplyObject(r);
    }
done:
    free(ids);
    free(argv);
    return rc;
}

bool bb_redis_feed_head_is(bb_env *e, const char *uid, const char *post_id)
{
    redisReply *r = redisCommand(e->redis, "LINDEX feed:%s 0", uid);
    bool yes = r != NULL && r->type == REDIS_REPLY_STRING && strcmp(r->str, post_id) == 0;

    freeReplyObject(r);
    return yes;
}

long long bb_redis_online(bb_env *e)
{
    redisReply *r = redisCommand(e->redis, "SCARD online:%s", e->node);
    long long v = r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;

    freeReplyObject(r);
    return v;
}

static int env__cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

void bb_sort_i64(int64_t *v, size_t n)
{
    if (n > 1)
        qsort(v, n, sizeof(*v), env__cmp_i64);
}

double bb_pct_ms(const int64_t *v, size_t n, double p)
{
    size_t rank;

    if (n == 0)
        return 0.0;
    rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)v[rank - 1] / 1e6;
}

int bb_lat_init(bb_lat_log *l)
{
    if (pthread_mutex_init(&l->lock, NULL) != 0)
        return -1;
    l->lock_init = true;
    return 0;
}

void bb_lat_free(bb_lat_log *l)
{
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
    if (l->lock_init)
        pthread_mutex_destroy(&l->lock);
    l->lock_init = false;
}

int bb_lat_reset(bb_lat_log *l, size_t capacity)
{
    int rc = 0;

    pthread_mutex_lock(&l->lock);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
    if (capacity > 0) {
        l->v = malloc(capacity * sizeof(*l->v));
        if (l->v != NULL)
            l->cap = capacity;
        else
            rc = -1;
    }
    pthread_mutex_unlock(&l->lock);
    return rc;
}

void bb_lat_add(bb_lat_log *l, int64_t ns)
{
    pthread_mutex_lock(&l->lock);
    if (l->n < l->cap)
        l->v[l->n++] = ns;
    pthread_mutex_unlock(&l->lock);
}

int64_t *bb_lat_merge(bb_lat_log *const *logs, int n_logs, size_t *n)
{
    int64_t *all;
    size_t total = 0;
    int k;

    *n = 0;
    for (k = 0; k < n_logs; k++) {
        pthread_mutex_lock(&logs[k]->lock);
        total += logs[k]->n;
        pthread_mutex_unlock(&logs[k]->lock);
    }
    if (total == 0)
        return NULL;
    all = malloc(total * sizeof(*all));
    if (all == NULL)
        return NULL;
    for (k = 0; k < n_logs; k++) {
        pthread_mutex_lock(&logs[k]->lock);
        if (*n + logs[k]->n <= total) {
            memcpy(all + *n, logs[k]->v, logs[k]->n * sizeof(*all));
            *n += logs[k]->n;
        }
        pthread_mutex_unlock(&logs[k]->lock);
    }
    bb_sort_i64(all, *n);
    return all;
}

int bb_redis_ping(bb_env *e, int n, double *p50_us, double *p99_us)
{
    int64_t rtt[1000], t0;
    redisReply *r;
    int i;

    if (n > 1000)
        n = 1000;
    for (i = 0; i < n; i++) {
        t0 = fp_time_mono_ns();
        r = redisCommand(e->redis, "PING");
        rtt[i] = fp_time_mono_ns() - t0;
        if (r == NULL)
            return -1;
        freeReplyObject(r);
        usleep(1000);
    }
    bb_sort_i64(rtt, (size_t)n);
    *p50_us = (double)rtt[n / 2] / 1e3;
    *p99_us = (double)rtt[(n * 99) / 100] / 1e3;
    return 0;
}

/* ------------------------------------------------------------ CPU */

/* Field 5 (the process group) of /proc/<pid>/stat, or -1. */
long bb_pgrp(const char *pid)
{
    char path[300], buf[1024], *p;
    int field;
    size_t n;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%.256s/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces: start after its ')'. */
    p = strrchr(buf, ')');
    for (field = 2; p != NULL && field < 5; field++)
        p = strchr(p + 1, ' ');
    return p != NULL ? strtol(p + 1, NULL, 10) : -1;
}

/* Adds the schedstat times (ns on a CPU, ns waiting for one) of every
 * thread of /proc/<pid> to *cpu and *wait, in seconds. */
static void env__schedstat(const char *pid, double *cpu, double *wait)
{
    char path[600];
    unsigned long long on, queued;
    struct dirent *d;
    DIR *dir;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%.256s/task", pid);
    dir = opendir(path);
    if (dir == NULL)
        return;
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
        if (fscanf(f, "%llu %llu", &on, &queued) == 2) {
            *cpu += (double)on / 1e9;
            *wait += (double)queued / 1e9;
        }
        fclose(f);
    }
    closedir(dir);
}

void bb_cpu_sample(const bb_env *e, bb_cpu *out)
{
    pid_t groups[BB_P__COUNT];
    struct dirent *d;
    long pgrp;
    DIR *dir;
    int k;

    memset(out, 0, sizeof(*out));
    groups[BB_P_BRIDGE] = e->bridge;
    groups[BB_P_REDIS] = e->redis_pgid;
    groups[BB_P_RABBITMQ] = e->amqp_pgid;
    groups[BB_P_MOSQUITTO] = e->mqtt_pgid;
    groups[BB_P_BENCH] = 0;
    env__schedstat("self", &out->cpu[BB_P_BENCH], &out->wait[BB_P_BENCH]);
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
        for (k = 0; k < BB_P_BENCH; k++) {
            if (groups[k] > 0 && pgrp == groups[k])
                env__schedstat(d->d_name, &out->cpu[k], &out->wait[k]);
        }
    }
    closedir(dir);
}

/* ------------------------------------------------------------ AMQP */

int bb_pub_open(bb_pub *p, const bb_env *e)
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
    r = amqp_login(p->conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
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
    fprintf(stderr, "bench: cannot open the AMQP publisher on port %d\n", e->amqp_port);
    bb_pub_close(p);
    return -1;
}

void bb_pub_close(bb_pub *p)
{
    if (p->conn == NULL)
        return;
    amqp_connection_close(p->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(p->conn);
    p->conn = NULL;
}

int bb_pub_send(bb_pub *p, const char *rk, const char *body)
{
    amqp_basic_properties_t props;

    memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    props.delivery_mode = 2;
    props.content_type = amqp_cstring_bytes("application/json");
    if (amqp_basic_publish(p->conn, 1, amqp_cstring_bytes("feed.events"), amqp_cstring_bytes(rk), 0,
                           0, &props, amqp_cstring_bytes(body)) != AMQP_STATUS_OK)
        return -1;
    p->published++;
    return 0;
}

/*
 * Reads confirms until tag upto is confirmed. RabbitMQ confirms the
 * messages of one channel routed to one queue in order, so the highest
 * tag acked so far stands for all below it.
 */
int bb_pub_wait(bb_pub *p, uint64_t upto, int timeout_ms)
{
    int64_t end = fp_time_mono_ns() + (int64_t)timeout_ms * 1000000;
    struct timeval tv;
    amqp_frame_t f;
    uint64_t tag;
    int64_t left;

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
