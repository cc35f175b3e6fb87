/*
 * The browser end-to-end test: the whole stack (gateway_env: RabbitMQ in a
 * vhost of this test's own, Redis, mosquitto with feed_auth.so over
 * WebSockets, feed-bridge, feed-gateway serving gateway/www/) and
 * tests/browser/feed_e2e.mjs driving Debian's headless Chromium through
 * playwright-core against it: three users, follow, live post within 2 s,
 * not to a stranger, ribbon, HTML shown as text, delete. The script's
 * steps are printed; its exit status is the verdict. Screenshots go to
 * <build>/browser-shots/.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
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

#include "gateway_env.h"

#define BROWSER__TIMEOUT_S 150

static fp_gateway_env env;

static int setup(void **state)
{
    (void)state;
    return fp_gateway_env_start(&env, "n1");
}

static int teardown(void **state)
{
    (void)state;
    return fp_gateway_env_stop(&env);
}

/* Runs node on the script with the stack's URL; returns its wait status
 * (or -1 when it had to be killed after BROWSER__TIMEOUT_S). */
static int browser__run(const char *script, const char *shots)
{
    char run_id[32];
    pid_t pid;
    int status = 0, waited;

    snprintf(run_id, sizeof(run_id), "t%ld", (long)getpid());
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setenv("FP_GATEWAY_URL", env.url, 1);
        setenv("FP_SHOTS_DIR", shots, 1);
        setenv("FP_RUN_ID", run_id, 1);
        execlp("node", "node", script, (char *)NULL);
        _exit(127);
    }
    for (waited = 0; waited < BROWSER__TIMEOUT_S * 10; waited++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        usleep(100000);
    }
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
    if (status == -1)
        fprintf(stderr, "feed_e2e.mjs did not finish within %d s\n", BROWSER__TIMEOUT_S);
    assert_true(status != -1 && WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The gateway and the broker took all of that without a hiccup. */
    assert_true(fp_gateway_alive(&env));
    assert_false(fp_plugin_env_sanitizer_report(&env.b.p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_users_live),
    };

    return fp_harness_exit(cmocka_run_group_tests(tests, setup, teardown));
}
