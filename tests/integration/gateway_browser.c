/*
 * The browser end-to-end test: the whole stack (gateway_env: RabbitMQ in a
 * vhost of this test's own, Redis, mosquitto with feed_auth.so over
 * WebSockets, feed-bridge, feed-gateway serving gateway/www/) and
 * tests/browser/feed_e2e.mjs driving Debian's headless Chromium through
 * playwright-core against it: three users, follow, live post within 2 s,
 * not to a stranger, ribbon, HTML shown as text, delete; then, with this
 * harness publishing as a service and stopping and starting the broker
 * when the script asks (FP_BROKER_CONTROL=stdio), an older ribbon document
 * not shown over a newer one, no post lost across a broker outage, dev
 * tokens (30 s here) renewed with the pages staying live past the first
 * ones' expiry, and pages refused by a broker with another key (one of
 * them signed in with a token this harness mints) live again once it
 * takes their tokens. The script's steps are printed; its exit status is the
 * verdict. Screenshots go to <build>/browser-shots/.
 */
#include <setjmp.h>
#include <signal.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fp_id.h"
#include "gateway_env.h"
#include "ft_main.h"

/* Bounds against a hang, not timings: a run takes ~40 s alone in the
 * sanitizer build (plus up to 50 s for the refusal step), and up to 145 s
 * was measured before that step with two other test
 * suites and a build beside it on 2 cores. The script ends itself at
 * FP_E2E_TIMEOUT_MS; this harness kills it BROWSER__TIMEOUT_S after the
 * start; ctest's TIMEOUT for the test is above both. */
#define BROWSER__TIMEOUT_S 330

static ft_gateway_env env;

FT_FIXTURES(ft_gateway_env_start(&env, 30), ft_gateway_env_stop(&env))

/* Publishes payload on topic as a service client of the broker, at QoS 1,
 * not retained, as a bridge of another node would. Returns 0 once the
 * broker acknowledged it, -1 otherwise. */
static int browser__publish(const char *topic, const char *payload)
{
    ft_mqtt c;
    char *tok = ft_plugin_env_token_now(&env.b.p, "e2e-service", FP_ROLE_SERVICE);
    int rc = -1;

    if (ft_mqtt_connect(&c, env.b.p.mosq.port, NULL, "e2e-service", tok, 4, 5000) == 0 &&
        ft_mqtt_publish(&c, topic, payload, false, 5000) == 0)
        rc = 0;
    ft_mqtt_close(&c);
    free(tok);
    return rc;
}

/* SIGSTOPs or SIGCONTs pid (0: none running); the answer for the
 * script's stdin. */
static const char *browser__signal(long pid, int sig)
{
    return pid > 0 && kill((pid_t)pid, sig) == 0 ? "done\n" : "failed\n";
}

/* Restarts the broker with its plugin verifying tokens with another
 * secret (other: every token the gateway issues or takes is refused) or
 * with the stack's own again; the gateway keeps the key it read at its
 * start. The answer for the script's stdin. */
static const char *browser__rekey(bool other)
{
    unsigned char secret[sizeof(env.b.p.secret)];
    int rc;

    if (other)
        rc = ft_secret_write(env.b.p.secret_path, secret, sizeof(secret));
    else
        rc = ft_secret_put(env.b.p.secret_path, env.b.p.secret, sizeof(env.b.p.secret));
    if (rc != 0)
        return "failed\n";
    return ft_server_restart(&env.b.p.mosq) == 0 ? "done\n" : "failed\n";
}

/* "token <jwt>": a user token for sub that lives 10 minutes, signed with
 * the stack's secret (a token pasted into a page, where the gateway's dev
 * tokens live 30 s). */
static const char *browser__token(const char *sub)
{
    static char answer[2048];
    int64_t now = fp_time_real_ms() / 1000;
    char *tok;

    if (!fp_id_valid(sub))
        return "failed\n";
    tok = ft_plugin_env_token(&env.b.p, sub, now, now + 600, FP_ROLE_USER);
    if (tok == NULL || strlen(tok) + 8 > sizeof(answer)) {
        free(tok);
        return "failed\n";
    }
    snprintf(answer, sizeof(answer), "token %s\n", tok);
    free(tok);
    return answer;
}

/* Does what the script asked for on one of its stdout lines ("fp-e2e:
 * broker stop|start", "fp-e2e: broker rekey|unkey" (browser__rekey),
 * "fp-e2e: bridge stop|start" (SIGSTOP, SIGCONT: the bridge falls behind),
 * "fp-e2e: redis stop|start" (SIGSTOP, SIGCONT: the gateway answers 503),
 * "fp-e2e: publish TOPIC PAYLOAD", "fp-e2e: token SUB"
 * (browser__token)); returns the answer for its stdin. */
static const char *browser__command(const char *line)
{
    static const char publish[] = "fp-e2e: publish ";
    static const char token[] = "fp-e2e: token ";
    char topic[256];
    const char *sp;

    if (strcmp(line, "fp-e2e: broker stop") == 0)
        return ft_server_stop(&env.b.p.mosq) == 0 ? "done\n" : "failed\n";
    if (strcmp(line, "fp-e2e: broker start") == 0)
        return ft_server_restart(&env.b.p.mosq) == 0 ? "done\n" : "failed\n";
    if (strcmp(line, "fp-e2e: broker rekey") == 0)
        return browser__rekey(true);
    if (strcmp(line, "fp-e2e: broker unkey") == 0)
        return browser__rekey(false);
    if (strncmp(line, token, sizeof(token) - 1) == 0)
        return browser__token(line + sizeof(token) - 1);
    if (strcmp(line, "fp-e2e: bridge stop") == 0)
        return browser__signal(env.b.node[0].bridge, SIGSTOP);
    if (strcmp(line, "fp-e2e: bridge start") == 0)
        return browser__signal(env.b.node[0].bridge, SIGCONT);
    if (strcmp(line, "fp-e2e: redis stop") == 0)
        return browser__signal(env.b.p.redis.pid, SIGSTOP);
    if (strcmp(line, "fp-e2e: redis start") == 0)
        return browser__signal(env.b.p.redis.pid, SIGCONT);
    if (strncmp(line, publish, sizeof(publish) - 1) == 0) {
        line += sizeof(publish) - 1;
        sp = strchr(line, ' ');
        if (sp == NULL || (size_t)(sp - line) >= sizeof(topic))
            return "failed\n";
        memcpy(topic, line, (size_t)(sp - line));
        topic[sp - line] = '\0';
        return browser__publish(topic, sp + 1) == 0 ? "done\n" : "failed\n";
    }
    return NULL;
}

/* Echoes the script's output and answers its requests until it closes its
 * stdout or the deadline passes. */
static void browser__converse(int out_fd, int in_fd, int64_t deadline_ms)
{
    char buf[8192], line[1024];
    size_t n_line = 0;
    ssize_t n, i;
    bool cut = false; /* the line was longer than line[] */
    const char *answer;
    struct pollfd p = {out_fd, POLLIN, 0};

    while (fp_time_mono_ms() < deadline_ms) {
        if (poll(&p, 1, 100) <= 0)
            continue;
        n = read(out_fd, buf, sizeof(buf));
        if (n <= 0)
            return;
        fwrite(buf, 1, (size_t)n, stdout);
        fflush(stdout);
        for (i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (n_line + 1 < sizeof(line))
                    line[n_line++] = buf[i];
                else
                    cut = true;
                continue;
            }
            line[n_line] = '\0';
            n_line = 0;
            /* A request cut short is refused, never carried out in part. */
            if (cut && strncmp(line, "fp-e2e: ", 8) == 0)
                answer = "failed\n";
            else
                answer = browser__command(line);
            cut = false;
            if (answer != NULL && write(in_fd, answer, strlen(answer)) < 0)
                return;
        }
    }
}

/* Runs node on the script with the stack's URL; returns its wait status
 * (or -1 when it had to be killed after BROWSER__TIMEOUT_S). */
static int browser__run(const char *script, const char *shots)
{
    char run_id[32];
    int to_child[2], from_child[2], status = 0;
    pid_t pid;

    snprintf(run_id, sizeof(run_id), "t%ld", (long)getpid());
    assert_int_equal(pipe(to_child), 0);
    assert_int_equal(pipe(from_child), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(to_child[0], STDIN_FILENO);
        dup2(from_child[1], STDOUT_FILENO);
        close(to_child[1]);
        close(from_child[0]);
        setenv("FP_GATEWAY_URL", env.url, 1);
        setenv("FP_SHOTS_DIR", shots, 1);
        setenv("FP_RUN_ID", run_id, 1);
        setenv("FP_BROKER_CONTROL", "stdio", 1);
        setenv("FP_E2E_TIMEOUT_MS", "300000", 1);
        execlp("node", "node", script, (char *)NULL);
        _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    browser__converse(from_child[0], to_child[1], fp_time_mono_ms() + BROWSER__TIMEOUT_S * 1000);
    close(from_child[0]);
    close(to_child[1]);
    if (waitpid(pid, &status, WNOHANG) == pid)
        return status;
    usleep(500000);
    if (waitpid(pid, &status, WNOHANG) == pid)
        return status;
    kill(-pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

static void test_two_users_live(void **state)
{
    const char *src = getenv("FP_SOURCE_DIR"), *shots = getenv("FP_SHOTS_DIR");
    char script[PATH_MAX];
    int status;

    (void)state;
    assert_non_null(src);
    assert_non_null(shots);
    mkdir(shots, 0755);
    snprintf(script, sizeof(script), "%s/tests/browser/feed_e2e.mjs", src);
    status = browser__run(script, shots);
    /* A script cut short may have left Redis or the bridge stopped, or
     * the broker's key file replaced (browser__rekey). */
    browser__signal(env.b.p.redis.pid, SIGCONT);
    browser__signal(env.b.node[0].bridge, SIGCONT);
    assert_int_equal(ft_secret_put(env.b.p.secret_path, env.b.p.secret, sizeof(env.b.p.secret)), 0);
    if (status == -1)
        fprintf(stderr, "feed_e2e.mjs did not finish within %d s\n", BROWSER__TIMEOUT_S);
    assert_true(status != -1 && WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The gateway and the broker took all of that without a hiccup. */
    assert_true(ft_gateway_alive(&env));
    assert_false(ft_plugin_env_sanitizer_report(&env.b.p));
}

/* clang-format off */
FT_MAIN(ft_harness_run, setup, teardown,
        cmocka_unit_test(test_two_users_live))
/* clang-format on */
