/*
 * feedctl against the whole stack: the README's terminal walkthrough as a
 * test. B listens to feed/B over MQTT (as mosquitto_sub would), feedctl
 * follows, posts, reads the feed and the ribbon, deletes and reads the
 * counters through feed-gateway; refusals exit 1 with the gateway's
 * error, usage errors exit 2.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "gateway_env.h"
#include "ft_main.h"

static ft_gateway_env env;

FT_FIXTURES(ft_gateway_env_start(&env, 0), ft_gateway_env_stop(&env))

typedef struct {
    int status; /* exit status, -1 when it did not exit normally */
    char out[8192];
    char err[2048];
} run_result;

/* Reads fd to EOF into buf (NUL-terminated, cut at cap). */
static void slurp(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    ssize_t n;
    char sink[512];

    for (;;) {
        if (got + 1 < cap)
            n = read(fd, buf + got, cap - 1 - got);
        else
            n = read(fd, sink, sizeof(sink));
        if (n <= 0)
            break;
        if (got + 1 < cap)
            got += (size_t)n;
    }
    buf[got] = '\0';
}

/* Runs feedctl --url <gateway> ARGS... (NULL-terminated). */
static void feedctl(run_result *r, ...)
{
    const char *bin = getenv("FP_FEEDCTL"), *argv[32];
    int out[2], err[2], status, n = 0;
    va_list ap;
    pid_t pid;

    assert_non_null(bin);
    argv[n++] = bin;
    argv[n++] = "--url";
    argv[n++] = env.url;
    va_start(ap, r);
    while (n < 31) {
        argv[n] = va_arg(ap, const char *);
        if (argv[n] == NULL)
            break;
        n++;
    }
    va_end(ap);
    argv[n] = NULL;
    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(err), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        close(out[0]);
        close(err[0]);
        unsetenv("FEEDPUSH_TOKEN");
        unsetenv("FEEDPUSH_JWT_SIGNING_KEY");
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    /* stderr is small; read stdout first, then stderr. */
    slurp(out[0], r->out, sizeof(r->out));
    slurp(err[0], r->err, sizeof(r->err));
    close(out[0]);
    close(err[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    r->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (r->status != 0)
        fprintf(stderr, "feedctl %s ... -> %d: %s", argv[3] != NULL ? argv[3] : "", r->status,
                r->err);
}

/* Waits until an MQTT message whose payload contains needle arrived. */
static bool mqtt_got(ft_mqtt *m, const char *needle)
{
    int i;

    for (i = 0; i < 40; i++) {
        if (strstr(m->last_payload, needle) != NULL)
            return true;
        ft_mqtt_wait_messages(m, m->received + 1, 100);
    }
    return strstr(m->last_payload, needle) != NULL;
}

static void test_terminal_walkthrough(void **state)
{
    const char *key = env.b.p.secret_path;
    char *tok = ft_gateway_token(&env, "cb"), id[80] = "";
    ft_mqtt m = {0};
    run_result r;
    int i;

    (void)state;
    /* B listens like mosquitto_sub -t feed/cb. */
    assert_int_equal(ft_mqtt_connect(&m, env.b.p.mosq.port, NULL, "cb", tok, 4, 5000), 0);
    assert_int_equal(ft_mqtt_subscribe(&m, "feed/cb", 5000), 1);
    free(tok);

    feedctl(&r, "--key", key, "--as", "cb", "follow", "ca", NULL);
    assert_int_equal(r.status, 0);
    for (i = 0; i < 50; i++) {
        feedctl(&r, "--as", "cb", "--key", key, "--json", "feed", NULL);
        assert_int_equal(r.status, 0);
        if (ft_node_stat(&env.b, 1, "events_follow_created") >= 1)
            break;
        usleep(100000);
    }
    feedctl(&r, "--key", key, "--as", "ca", "post", "hello from the terminal", NULL);
    assert_int_equal(r.status, 0);
    sscanf(r.out, "%79s", id);
    assert_true(fp_id_valid(id));
    assert_true(mqtt_got(&m, id)); /* live, over MQTT */
    assert_non_null(strstr(m.last_payload, "\"type\":\"post.created\""));
    assert_non_null(strstr(m.last_payload, "hello from the terminal"));

    feedctl(&r, "--key", key, "--as", "cb", "feed", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, id));
    assert_non_null(strstr(r.out, "hello from the terminal"));
    assert_non_null(strstr(r.out, "ca"));

    feedctl(&r, "--key", key, "--as", "ca", "ribbon", "push", "--text", "new here", NULL);
    assert_int_equal(r.status, 0);
    for (i = 0; i < 50; i++) {
        feedctl(&r, "--key", key, "--as", "cb", "ribbon", NULL);
        assert_int_equal(r.status, 0);
        if (strstr(r.out, "new here") != NULL)
            break;
        usleep(100000);
    }
    assert_non_null(strstr(r.out, "ca"));
    assert_non_null(strstr(r.out, "new here"));

    /* Not the author: the gateway's 403, exit 1. */
    feedctl(&r, "--key", key, "--as", "cb", "delete", id, NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "403"));
    assert_non_null(strstr(r.err, "forbidden"));
    feedctl(&r, "--key", key, "--as", "ca", "delete", id, NULL);
    assert_int_equal(r.status, 0);
    assert_true(mqtt_got(&m, "\"type\":\"post.deleted\""));
    assert_non_null(strstr(m.last_payload, id));

    /* A dev token (no key: the gateway is in dev mode). */
    feedctl(&r, "--as", "cdev", "post", "via a dev token", NULL);
    assert_int_equal(r.status, 0);

    feedctl(&r, "stats", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "n1"));
    ft_mqtt_close(&m);
}

static void test_refusals(void **state)
{
    const char *key = env.b.p.secret_path;
    run_result r;

    (void)state;
    feedctl(&r, "--key", key, "--as", "ca", "follow", "ca", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "400"));
    feedctl(&r, "--key", key, "--as", "ca", "follow", "not/valid", NULL);
    assert_int_equal(r.status, 2);
    feedctl(&r, "--key", key, "--as", "ca", "frobnicate", NULL);
    assert_int_equal(r.status, 2);
    feedctl(&r, "post", "no user", NULL);
    assert_int_equal(r.status, 2);
    feedctl(&r, "--token", "garbage", "feed", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "401"));
    feedctl(&r, "--help", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "ribbon"));
}

static void test_unreachable(void **state)
{
    const char *bin = getenv("FP_FEEDCTL");
    char cmd[PATH_MAX + 128];
    int status;

    (void)state;
    /* Nothing listens on port 1. */
    snprintf(cmd, sizeof(cmd), "%s --url http://127.0.0.1:1 --as x --key %s feed >/dev/null 2>&1",
             bin, env.b.p.secret_path);
    status = system(cmd);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
}

/* clang-format off */
FT_MAIN(ft_harness_run, setup, teardown,
        cmocka_unit_test(test_terminal_walkthrough),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_unreachable))
/* clang-format on */
