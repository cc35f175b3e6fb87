#include "ft_harness.h"

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

extern char **environ;

static int harness__failures;

void ft_harness_fail(const char *why)
{
    fprintf(stderr, "ft_harness: %s\n", why);
    harness__failures++;
}

int ft_harness_exit(int cmocka_rc)
{
    if (cmocka_rc != 0)
        return cmocka_rc;
    if (harness__failures > 0) {
        fprintf(stderr, "ft_harness: %d failure(s) outside the test bodies (see above)\n",
                harness__failures);
        return 1;
    }
    return 0;
}

static const char *harness__env(const char *name)
{
    const char *v = getenv(name);

    if (v == NULL || *v == '\0') {
        fprintf(stderr, "ft_harness: %s is not set (run the test through ctest)\n", name);
        return NULL;
    }
    return v;
}

/*
 * Runs fp-server with argv (NULL-terminated, argv[0] ignored) and waits.
 * Returns 0 when it exited 0, -1 otherwise.
 */
static int harness__run(char *const argv[])
{
    const char *script = harness__env("FP_HARNESS");
    char *args[16];
    pid_t pid;
    int i, status, rc;

    if (script == NULL)
        return -1;
    args[0] = (char *)script;
    for (i = 1; argv[i] != NULL && i < 15; i++)
        args[i] = argv[i];
    args[i] = NULL;
    rc = posix_spawn(&pid, script, NULL, NULL, args, environ);
    if (rc != 0) {
        fprintf(stderr, "ft_harness: cannot run %s: %s\n", script, strerror(rc));
        return -1;
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Reads PORT, WS_PORT and PID from DIR/KIND.env. Returns 0 or -1. */
static int harness__read_env(ft_server *s)
{
    char path[PATH_MAX + 32], line[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s.env", s->dir, s->kind);
    f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "ft_harness: %s: %s\n", path, strerror(errno));
        return -1;
    }
    s->port = s->ws_port = 0;
    s->pid = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "PORT=", 5) == 0)
            s->port = atoi(line + 5);
        else if (strncmp(line, "WS_PORT=", 8) == 0)
            s->ws_port = atoi(line + 8);
        else if (strncmp(line, "PID=", 4) == 0)
            s->pid = atol(line + 4);
    }
    fclose(f);
    return s->port > 0 && s->pid > 0 ? 0 : -1;
}

static int harness__start(ft_server *s, const char *port)
{
    char owner[32], other[16];
    char *argv[16] = {"fp-server", "start", s->kind, s->dir, "--owner", owner};
    int n = 6;

    snprintf(owner, sizeof(owner), "%ld", (long)getpid());
    if (port != NULL) {
        argv[n++] = "--port";
        argv[n++] = (char *)port;
    }
    if (s->conf[0] != '\0') {
        argv[n++] = "--conf";
        argv[n++] = s->conf;
    }
    if (s->cluster[0] != '\0') {
        argv[n++] = "--cluster";
        argv[n++] = s->cluster;
    }
    if (s->replica_of > 0 || s->monitor > 0) {
        snprintf(other, sizeof(other), "%d", s->replica_of > 0 ? s->replica_of : s->monitor);
        argv[n++] = s->replica_of > 0 ? "--replica-of" : "--monitor";
        argv[n++] = other;
    }
    argv[n] = NULL;
    if (harness__run(argv) != 0)
        return -1;
    return harness__read_env(s);
}

/* Fills s for a new server of kind in a fresh dir under FP_TEST_TMP. */
static int harness__init(ft_server *s, const char *kind)
{
    static int seq;
    const char *tmp = harness__env("FP_TEST_TMP");

    if (tmp == NULL)
        return -1;
    memset(s, 0, sizeof(*s));
    snprintf(s->kind, sizeof(s->kind), "%s", kind);
    snprintf(s->dir, sizeof(s->dir), "%s/t%ld-%d", tmp, (long)getpid(), ++seq);
    return 0;
}

int ft_server_start(ft_server *s, const char *kind, const char *conf)
{
    if (harness__init(s, kind) != 0)
        return -1;
    if (conf != NULL)
        snprintf(s->conf, sizeof(s->conf), "%s", conf);
    return harness__start(s, NULL);
}

int ft_server_start_node(ft_server *s, const ft_server *epmd)
{
    if (harness__init(s, "rabbitmq") != 0)
        return -1;
    snprintf(s->cluster, sizeof(s->cluster), "%s", epmd->dir);
    return harness__start(s, NULL);
}

int ft_server_start_replica(ft_server *s, const ft_server *primary)
{
    if (harness__init(s, "redis") != 0)
        return -1;
    s->replica_of = primary->port;
    return harness__start(s, NULL);
}

int ft_server_start_sentinel(ft_server *s, const ft_server *primary)
{
    if (harness__init(s, "sentinel") != 0)
        return -1;
    s->monitor = primary->port;
    return harness__start(s, NULL);
}

int ft_server_restart(ft_server *s)
{
    char port[16];

    snprintf(port, sizeof(port), "%d", s->port);
    if (ft_server_stop(s) != 0)
        return -1;
    return harness__start(s, port);
}

int ft_server_stop(ft_server *s)
{
    char *argv[] = {"fp-server", "stop", s->kind, s->dir, NULL};
    char why[PATH_MAX + 64];

    if (harness__run(argv) == 0)
        return 0;
    snprintf(why, sizeof(why), "stopping %s in %s failed", s->kind, s->dir);
    ft_harness_fail(why);
    return -1;
}

int ft_servers_stop(ft_server *s, size_t n)
{
    int rc = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        if (ft_server_stop(&s[i]) != 0)
            rc = -1;
    }
    return rc;
}

int ft_server_vhost(const ft_server *s, const char *name)
{
    char *argv[] = {"fp-server", "vhost", (char *)s->dir, (char *)name, NULL};

    return harness__run(argv);
}

int ft_server_policy(const ft_server *s, const char *vhost, const char *name, const char *pattern,
                     const char *definition)
{
    char *argv[] = {"fp-server",  "policy",        (char *)s->dir,     (char *)vhost,
                    (char *)name, (char *)pattern, (char *)definition, NULL};

    return harness__run(argv);
}

int ft_server_alarm(const ft_server *s, bool on)
{
    char *argv[] = {"fp-server", "alarm", (char *)s->dir, on ? "on" : "off", NULL};

    return harness__run(argv);
}

int ft_server_kill(ft_server *s)
{
    if (s->pid <= 0)
        return -1;
    /* The server leads its own process group: take the whole group. */
    if (kill((pid_t)-s->pid, SIGKILL) != 0)
        return -1;
    return ft_server_stop(s); /* reaps leftovers (epmd) and forgets it */
}

/* The fields of /proc/<pid>/stat after "pid (comm) " (the command name
 * may hold spaces and parentheses: it ends at the last ')'), read into
 * buf: the state first. NULL when there is no such process. */
static const char *harness__proc_stat(long pid, char *buf, size_t len)
{
    char path[64], *paren;
    size_t n;
    FILE *f;

    if (pid <= 0)
        return NULL;
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    paren = strrchr(buf, ')');
    if (paren == NULL || paren[1] == '\0' || paren[2] == '\0')
        return NULL;
    return paren + 2;
}

int ft_server_running(const ft_server *s)
{
    char buf[512];
    const char *f = harness__proc_stat(s->pid, buf, sizeof(buf));

    return f != NULL && *f != 'Z' && *f != 'X';
}

double ft_server_cpu_seconds(const ft_server *s)
{
    unsigned long long ut, st;
    char buf[1024];
    const char *f = harness__proc_stat(s->pid, buf, sizeof(buf));

    /* state ppid pgrp session tty tpgid flags minflt cminflt majflt
     * cmajflt utime stime */
    if (f == NULL ||
        sscanf(f, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

int ft_server_shared(ft_server *s, const char *kind)
{
    const char *tmp = harness__env("FP_TEST_TMP");

    if (tmp == NULL)
        return -1;
    memset(s, 0, sizeof(*s));
    snprintf(s->kind, sizeof(s->kind), "%s", kind);
    snprintf(s->dir, sizeof(s->dir), "%s/shared", tmp);
    return harness__read_env(s);
}

void ft_harness_child(const char *log_path)
{
    int fd;

    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
}

int ft_harness_root_drop(const char *root, bool keep)
{
    char *argv[] = {NULL, "root-drop", (char *)root, keep ? "--keep" : NULL, NULL};

    return harness__run(argv);
}

void ft_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int ft_secret_write(const char *path, unsigned char *secret, size_t len)
{
    int fd = open("/dev/urandom", O_RDONLY);
    ssize_t n;
    size_t k;

    if (fd < 0)
        return -1;
    n = read(fd, secret, len);
    close(fd);
    if (n != (ssize_t)len)
        return -1;
    for (k = 0; k < len; k++) {
        if (secret[k] == '\n' || secret[k] == '\r')
            secret[k] = 'x';
    }
    return ft_secret_put(path, secret, len);
}

int ft_secret_put(const char *path, const unsigned char *secret, size_t len)
{
    FILE *f = fopen(path, "wb");

    if (f == NULL)
        return -1;
    if (fwrite(secret, 1, len, f) != len) {
        fclose(f);
        return -1;
    }
    fclose(f);
    /* mosquitto drops to its own user: readable by others (tools/fp-server
     * copies it for that user when the path cannot be reached). */
    return chmod(path, 0644);
}

int ft_plugin_conf_write(const char *path, const char *alg, const char *key_file,
                         const char *node_id, int redis_port, const char *extra)
{
    const char *plugin = harness__env("FP_PLUGIN");
    FILE *f;
    int rc;

    if (plugin == NULL)
        return -1;
    f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fprintf(f,
            "plugin %s\nplugin_opt_alg %s\nplugin_opt_key_file %s\nplugin_opt_node_id %s\n"
            "plugin_opt_redis_host 127.0.0.1\nplugin_opt_redis_port %d\n"
            "plugin_opt_heartbeat_interval 1\n%s\n",
            plugin, alg, key_file, node_id, redis_port, extra != NULL ? extra : "");
    rc = ferror(f) ? -1 : 0;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

/* Reads fd to its end into buf (NUL-terminated, cut at cap: the rest is
 * read and dropped, so the writer never blocks). */
static void harness__slurp(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    ssize_t n;
    char sink[512];

    for (;;) {
        if (got + 1 < cap)
            n = read(fd, buf + got, cap - 1 - got);
        else
            n = read(fd, sink, sizeof(sink));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (got + 1 < cap)
            got += (size_t)n;
    }
    buf[got] = '\0';
}

/* stdout is read to its end first, then stderr: a command that fills the
 * stderr pipe (64 KiB) before it closes stdout would block, which the
 * commands run here never do. */
int ft_run(ft_run_result *r, const char *const *argv)
{
    int out[2], err[2], status;
    pid_t pid;

    r->status = -1;
    r->out[0] = r->err[0] = '\0';
    if (pipe(out) != 0)
        return -1;
    if (pipe(err) != 0) {
        close(out[0]);
        close(out[1]);
        return -1;
    }
    pid = fork();
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        close(out[0]);
        close(err[0]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    if (pid > 0) {
        harness__slurp(out[0], r->out, sizeof(r->out));
        harness__slurp(err[0], r->err, sizeof(r->err));
    }
    close(out[0]);
    close(err[0]);
    if (pid > 0 && waitpid(pid, &status, 0) == pid)
        r->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r->status;
}
