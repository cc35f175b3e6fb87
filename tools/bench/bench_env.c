/*
 * bench_env.c - what the benchmark runs against: a temp dir with key
 * material, a redis-server and one mosquitto + feed_auth.so per algorithm,
 * all started and stopped through tools/fp-server (free loopback ports, a
 * watchdog that stops them if this process dies), and the tokens.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

extern char **environ;

/*
 * Runs argv (argv[0] looked up in PATH) and waits. quiet sends its stdout
 * and stderr to /dev/null. Returns the exit status, or -1 when it could
 * not run or was killed.
 */
static int env__run(char *const argv[], bool quiet)
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int rc, status;

    posix_spawn_file_actions_init(&fa);
    if (quiet) {
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    }
    rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "bench: cannot run %s: %s\n", argv[0], strerror(rc));
        return -1;
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Reads PORT= and PID= from DIR/KIND.env. Returns the port or -1. */
static int env__read_env(const char *dir, const char *kind, long *pid)
{
    char path[PATH_MAX + 32], line[256];
    int port = -1;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s.env", dir, kind);
    f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    *pid = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "PORT=", 5) == 0)
            port = atoi(line + 5);
        else if (strncmp(line, "PID=", 4) == 0)
            *pid = atol(line + 4);
    }
    fclose(f);
    return port > 0 ? port : -1;
}

/*
 * fp-server start KIND DIR [--conf FILE], owned by this process (its
 * watchdog stops the server if we die). Returns the port (and the
 * server's pid in *pid) or -1.
 */
static int env__server_start(bench_env *e, const char *kind, const char *dir, const char *conf,
                             long *pid)
{
    char owner[24];
    char *argv[10];
    int n = 0;

    snprintf(owner, sizeof(owner), "%ld", (long)getpid());
    argv[n++] = e->fp_server;
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
    if (env__run(argv, false) != 0) {
        fprintf(stderr, "bench: fp-server could not start %s in %s\n", kind, dir);
        return -1;
    }
    return env__read_env(dir, kind, pid);
}

/* fp-server stop KIND DIR. Returns 0 or -1 (e.g. a sanitizer report). */
static int env__server_stop(bench_env *e, const char *kind, const char *dir)
{
    char *argv[] = {e->fp_server, "stop", (char *)kind, (char *)dir, NULL};

    return env__run(argv, false) == 0 ? 0 : -1;
}

int bench_env_start(bench_env *e)
{
    const char *tmp = getenv("TMPDIR");
    char redis_dir[PATH_MAX + 16], abs[PATH_MAX];

    if (access(e->fp_server, X_OK) != 0) {
        fprintf(stderr, "bench: %s: %s\n", e->fp_server, strerror(errno));
        return -1;
    }
    /* mosquitto runs in its own directory: give it an absolute path. */
    if (realpath(e->plugin, abs) == NULL || access(abs, R_OK) != 0) {
        fprintf(stderr, "bench: plugin %s: %s\n", e->plugin, strerror(errno));
        return -1;
    }
    snprintf(e->plugin, sizeof(e->plugin), "%s", abs);
    snprintf(e->root, sizeof(e->root), "%s/feedpush-bench.XXXXXX",
             tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
    if (mkdtemp(e->root) == NULL) {
        fprintf(stderr, "bench: mkdtemp %s: %s\n", e->root, strerror(errno));
        e->root[0] = '\0';
        return -1;
    }
    /* mosquitto drops to its own user and must read the key files. */
    chmod(e->root, 0755);
    snprintf(redis_dir, sizeof(redis_dir), "%s/redis", e->root);
    e->redis_port = env__server_start(e, "redis", redis_dir, NULL, &e->redis_pid);
    return e->redis_port > 0 ? 0 : -1;
}

/* 48 random bytes (no newline bytes) as the HS256 secret file. */
static int env__write_secret(const char *path)
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
    f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    n = (ssize_t)fwrite(secret, 1, sizeof(secret), f);
    if (fclose(f) != 0 || n != (ssize_t)sizeof(secret))
        return -1;
    return chmod(path, 0644);
}

/* A key pair with the openssl CLI: priv (for minting), pub (for the
 * plugin). RS256: RSA 2048; ES256: EC P-256. Returns 0 or -1. */
static int env__write_keypair(fp_jwt_alg alg, const char *priv, const char *pub)
{
    char *gen_rsa[] = {"openssl", "genpkey",    "-algorithm",
                       "RSA",     "-pkeyopt",   "rsa_keygen_bits:2048",
                       "-out",    (char *)priv, NULL};
    char *gen_ec[] = {"openssl", "genpkey",    "-algorithm",
                      "EC",      "-pkeyopt",   "ec_paramgen_curve:P-256",
                      "-out",    (char *)priv, NULL};
    char *extract[] = {"openssl", "pkey", "-in",       (char *)priv,
                       "-pubout", "-out", (char *)pub, NULL};

    if (env__run(alg == FP_JWT_RS256 ? gen_rsa : gen_ec, true) != 0 ||
        env__run(extract, true) != 0) {
        fprintf(stderr, "bench: openssl could not make a %s key pair\n", fp_jwt_alg_name(alg));
        return -1;
    }
    return chmod(pub, 0644);
}

/*
 * Writes the key material of alg into the temp dir and the plugin lines
 * that use it into conf. *mint_key is the file tokens are signed with.
 * Returns 0 or -1.
 */
static int env__write_plugin_conf(bench_env *e, fp_jwt_alg alg, const char *name, const char *conf,
                                  char *mint_key, size_t mint_key_len)
{
    char pub[PATH_MAX + 32];
    FILE *f;
    int rc;

    if (alg == FP_JWT_HS256) {
        snprintf(mint_key, mint_key_len, "%s/%s.secret", e->root, name);
        snprintf(pub, sizeof(pub), "%s", mint_key);
        rc = env__write_secret(mint_key);
    } else {
        snprintf(mint_key, mint_key_len, "%s/%s.key", e->root, name);
        snprintf(pub, sizeof(pub), "%s/%s.pub", e->root, name);
        rc = env__write_keypair(alg, mint_key, pub);
    }
    if (rc != 0)
        return -1;
    f = fopen(conf, "w");
    if (f == NULL)
        return -1;
    fprintf(f,
            "plugin %s\nplugin_opt_alg %s\nplugin_opt_key_file %s\nplugin_opt_node_id bench-%s\n"
            "plugin_opt_redis_host 127.0.0.1\nplugin_opt_redis_port %d\n",
            e->plugin, fp_jwt_alg_name(alg), pub, name, e->redis_port);
    return fclose(f) == 0 ? 0 : -1;
}

int bench_env_broker_start(bench_env *e, fp_jwt_alg alg, bench_broker *b)
{
    char name[8], conf[PATH_MAX + 32], mint_key[PATH_MAX + 32], err[512];
    size_t i;

    memset(b, 0, sizeof(*b));
    b->alg = alg;
    snprintf(b->host, sizeof(b->host), "127.0.0.1");
    snprintf(name, sizeof(name), "%s", fp_jwt_alg_name(alg));
    for (i = 0; name[i] != '\0'; i++)
        name[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
    snprintf(conf, sizeof(conf), "%s/%s.conf", e->root, name);
    if (env__write_plugin_conf(e, alg, name, conf, mint_key, sizeof(mint_key)) != 0) {
        fprintf(stderr, "bench: cannot write the %s key or plugin config\n", name);
        return -1;
    }
    if (fp_jwt_load_key(alg, mint_key, &b->key, &b->key_len, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        return -1;
    }
    snprintf(b->dir, sizeof(b->dir), "%s/%s", e->root, name);
    b->port = env__server_start(e, "mosquitto", b->dir, conf, &b->pid);
    if (b->port < 0) {
        bench_env_broker_stop(e, b);
        return -1;
    }
    return 0;
}

int bench_env_broker_stop(bench_env *e, bench_broker *b)
{
    int rc = 0;

    if (b->dir[0] != '\0' && env__server_stop(e, "mosquitto", b->dir) != 0)
        rc = -1;
    b->dir[0] = '\0';
    b->pid = 0;
    if (b->key != NULL)
        fp_jwt_key_free(b->key, b->key_len);
    b->key = NULL;
    return rc;
}

int bench_env_stop(bench_env *e)
{
    char redis_dir[PATH_MAX + 16];
    char *rm[] = {"rm", "-rf", e->root, NULL};
    int rc = 0;

    if (e->root[0] == '\0')
        return 0;
    snprintf(redis_dir, sizeof(redis_dir), "%s/redis", e->root);
    if (e->redis_port > 0 && env__server_stop(e, "redis", redis_dir) != 0)
        rc = -1;
    e->redis_port = 0;
    e->redis_pid = 0;
    if (e->keep)
        fprintf(stderr, "bench: servers' logs kept in %s\n", e->root);
    else if (env__run(rm, false) != 0)
        rc = -1;
    e->root[0] = '\0';
    return rc;
}

/* ------------------------------------------------------------ tokens */

typedef struct {
    const bench_broker *b;
    char **tokens;
    size_t from, to;
    int64_t now;
    int failed;
} env__mint_job;

static void *env__mint_thread(void *arg)
{
    env__mint_job *j = arg;
    fp_jwt_mint_claims c;
    char sub[FP_ID_BUFSZ], err[256];
    size_t i;

    for (i = j->from; i < j->to; i++) {
        memset(&c, 0, sizeof(c));
        snprintf(sub, sizeof(sub), "u%zu", i);
        c.sub = sub;
        c.iat = j->now;
        c.exp = j->now + 3600;
        c.role = FP_ROLE_USER;
        if (fp_jwt_mint(j->b->alg, j->b->key, j->b->key_len, &c, &j->tokens[i], err, sizeof(err)) !=
            0) {
            fprintf(stderr, "bench: minting token %zu: %s\n", i, err);
            j->failed = 1;
            return NULL;
        }
    }
    return NULL;
}

/*
 * Mints tokens i = 0..n-1 for users u<i>, splitting the range over up to
 * threads threads (RSA signing is slow). Returns the array or NULL.
 */
char **bench_tokens_mint(const bench_broker *b, size_t n, int threads)
{
    env__mint_job jobs[16];
    pthread_t tids[16];
    char **tokens;
    int i, started = 0, failed = 0;

    if (threads < 1)
        threads = 1;
    if (threads > 16)
        threads = 16;
    tokens = calloc(n > 0 ? n : 1, sizeof(*tokens));
    if (tokens == NULL)
        return NULL;
    for (i = 0; i < threads; i++) {
        jobs[i].b = b;
        jobs[i].tokens = tokens;
        jobs[i].from = n * (size_t)i / (size_t)threads;
        jobs[i].to = n * (size_t)(i + 1) / (size_t)threads;
        jobs[i].now = (int64_t)time(NULL);
        jobs[i].failed = 0;
        if (pthread_create(&tids[i], NULL, env__mint_thread, &jobs[i]) != 0) {
            failed = 1;
            break;
        }
        started++;
    }
    for (i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
        failed |= jobs[i].failed;
    }
    if (failed) {
        bench_tokens_free(tokens, n);
        return NULL;
    }
    return tokens;
}

void bench_tokens_free(char **tokens, size_t n)
{
    size_t i;

    if (tokens == NULL)
        return;
    for (i = 0; i < n; i++)
        free(tokens[i]);
    free(tokens);
}

char *bench_token_one(const bench_broker *b, const char *sub, fp_role role)
{
    fp_jwt_mint_claims c;
    char *tok = NULL, err[256];
    int64_t now = (int64_t)time(NULL);

    memset(&c, 0, sizeof(c));
    c.sub = sub;
    c.iat = now;
    c.exp = now + 3600;
    c.role = role;
    if (fp_jwt_mint(b->alg, b->key, b->key_len, &c, &tok, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench: minting a token for %s: %s\n", sub, err);
        return NULL;
    }
    return tok;
}

/* ------------------------------------------------------------ CPU use */

/* utime + stime of a process (all its threads), in seconds; 0 if gone. */
static double env__proc_cpu_s(long pid)
{
    char path[64], buf[1024], *p;
    unsigned long long utime = 0, stime = 0;
    size_t n;
    FILE *f;
    int field;

    if (pid <= 0)
        return 0.0;
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return 0.0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* "pid (comm) state ...": fields count from the last ')'; utime is
     * field 14 and stime 15 of the whole line. */
    p = strrchr(buf, ')');
    if (p == NULL)
        return 0.0;
    for (field = 2; field < 14 && p != NULL; field++)
        p = strchr(p + 1, ' ');
    if (p == NULL || sscanf(p, " %llu %llu", &utime, &stime) != 2)
        return 0.0;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

void bench_cpu_take(const bench_env *e, long broker_pid, bench_cpu_sample *s)
{
    unsigned long long v[8] = {0};
    struct rusage ru;
    FILE *f;
    int i;

    memset(s, 0, sizeof(*s));
    s->t_ns = fp_time_mono_ns();
    f = fopen("/proc/stat", "r");
    if (f != NULL) {
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]) == 8) {
            for (i = 0; i < 8; i++)
                s->total_ticks += v[i];
            s->idle_ticks = v[3] + v[4]; /* idle + iowait */
        }
        fclose(f);
    }
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        s->self_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    s->broker_s = env__proc_cpu_s(broker_pid);
    s->redis_s = e != NULL ? env__proc_cpu_s(e->redis_pid) : 0.0;
}

void bench_cpu_diff(const bench_cpu_sample *a, const bench_cpu_sample *b, bench_cpu_use *u)
{
    double wall = (double)(b->t_ns - a->t_ns) / 1e9;
    double ticks = (double)(b->total_ticks - a->total_ticks);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    memset(u, 0, sizeof(*u));
    if (wall <= 0 || ticks <= 0 || cpus <= 0)
        return;
    u->busy = (ticks - (double)(b->idle_ticks - a->idle_ticks)) / ticks * (double)cpus;
    u->client = (b->self_s - a->self_s) / wall;
    u->broker = (b->broker_s - a->broker_s) / wall;
    u->redis = (b->redis_s - a->redis_s) / wall;
    u->other = u->busy - u->client - u->broker - u->redis;
    if (u->other < 0)
        u->other = 0;
}
