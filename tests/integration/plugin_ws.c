/*
 * feed_auth.so over WebSockets: the broker of the TCP tests, reached on its
 * websockets listener by MQTT.js, the library the web app uses, through
 * tests/tools/mqtt-ws-client.mjs (run with node; it prints one JSON line,
 * parsed here with cJSON). A valid token connects and receives its feed;
 * bad tokens get the not-authorised CONNACK (5 under MQTT 3.1.1, 135 under
 * v5); the ACL holds for subscriptions and publishes. Independent node
 * runs go in parallel to keep the test fast.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "plugin_env.h"
#include "ft_main.h"

#define CONNECT_MS 3000
#define WS_TIMEOUT "30000" /* an upper bound; runs end as soon as they are done */
#define WS_MAX_ARGS 32

extern char **environ;

static ft_plugin_env env;

/* Fails when a stop failed, e.g. a sanitizer report in the broker log. */
FT_FIXTURES(ft_plugin_env_start(&env, "ws1", NULL), ft_plugin_env_stop(&env))

/* ------------------------------------------------------------ node client */

typedef struct {
    pid_t pid;
    int fd; /* read end of its stdout */
} ws_run;

/* Starts mqtt-ws-client.mjs against the broker's websockets listener with
 * the NULL-terminated args after --url. */
static void ws_start(ws_run *r, const char *const *args)
{
    const char *src = getenv("FP_SOURCE_DIR");
    char script[PATH_MAX], url[64], *argv[WS_MAX_ARGS];
    posix_spawn_file_actions_t fa;
    int fds[2], n = 0, rc;

    if (src == NULL)
        fail_msg("FP_SOURCE_DIR is not set (run through ctest)");
    snprintf(script, sizeof(script), "%s/tests/tools/mqtt-ws-client.mjs", src);
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/mqtt", env.mosq.ws_port);
    argv[n++] = "node";
    argv[n++] = script;
    argv[n++] = "--url";
    argv[n++] = url;
    for (; *args != NULL; args++) {
        assert_true(n < WS_MAX_ARGS - 1);
        argv[n++] = (char *)*args;
    }
    argv[n] = NULL;
    assert_int_equal(pipe(fds), 0);
    /* Only the child's stdout may hold a write end: EOF means it is done. */
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    rc = posix_spawnp(&r->pid, "node", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        fail_msg("cannot run node: %s", strerror(rc));
    }
    r->fd = fds[0];
}

/* Reads the client's output until it exits, asserts it ran (exit 0) and
 * returns its JSON line parsed (cJSON_Delete it). */
static cJSON *ws_finish(ws_run *r)
{
    static char out[65536];
    size_t n = 0;
    ssize_t got;
    int status = 0;
    cJSON *json;

    for (;;) {
        got = read(r->fd, out + n, sizeof(out) - 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += (size_t)got;
        if (n == sizeof(out) - 1)
            break;
    }
    out[n] = '\0';
    close(r->fd);
    while (waitpid(r->pid, &status, 0) < 0) {
        if (errno != EINTR)
            fail_msg("waitpid: %s", strerror(errno));
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("mqtt-ws-client failed (status %d): %s", status, out);
    json = cJSON_Parse(out);
    if (json == NULL || !cJSON_IsObject(json))
        fail_msg("mqtt-ws-client printed no JSON object: %s", out);
    return json;
}

/* A number field as int; -1 when absent or null. */
static int json_int(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

    return cJSON_IsNumber(v) ? v->valueint : -1;
}

static const char *json_str(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

    return cJSON_IsString(v) ? v->valuestring : "(none)";
}

static bool json_true(const cJSON *obj, const char *name)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, name));
}

static const cJSON *json_array(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

    assert_true(cJSON_IsArray(v));
    return v;
}

/* ------------------------------------------------------------ tokens */

/* An otherwise valid token for sub with header alg "none" and an empty
 * signature; malloc'd. */
static char *alg_none_token(const char *sub)
{
    static const char header[] = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
    int64_t now = (int64_t)time(NULL);
    char payload[256];

    snprintf(payload, sizeof(payload), "{\"sub\":\"%s\",\"iat\":%lld,\"exp\":%lld}", sub,
             (long long)now, (long long)now + 3600);
    return ft_plugin_env_hand_token(&env, header, payload, NULL);
}

/* ------------------------------------------------------------ tests */

/* alice (MQTT 3.1.1) and bob (MQTT 5) connect over WebSockets at once,
 * subscribe to their feeds and get what the service (over TCP) publishes
 * there. */
static void test_ws_valid_token_receives_feed(void **state)
{
    static const char *const users[] = {"alice", "bob"};
    static const char *const proto[] = {"4", "5"};
    char *svc_tok = ft_plugin_env_token_now(&env, "svc", FP_ROLE_SERVICE);
    char *toks[2], topics[2][32], payloads[2][32];
    const cJSON *granted, *msgs, *m;
    int rcs[2] = {-1, -1};
    int64_t end;
    ft_mqtt svc;
    ws_run runs[2];
    size_t i;
    cJSON *out;

    (void)state;
    for (i = 0; i < 2; i++) {
        const char *args[] = {
            "--username",   users[i],      "--password", NULL,       "--protocol-version",
            proto[i],       "--subscribe", topics[i],    "--expect", "1",
            "--timeout-ms", WS_TIMEOUT,    NULL};

        toks[i] = ft_plugin_env_token_now(&env, users[i], FP_ROLE_USER);
        args[3] = toks[i];
        snprintf(topics[i], sizeof(topics[i]), "feed/%s", users[i]);
        snprintf(payloads[i], sizeof(payloads[i]), "hello-%s-v%s", users[i], proto[i]);
        ws_start(&runs[i], args);
    }
    assert_int_equal(ft_mqtt_connect(&svc, env.mosq.port, "ws-svc", "svc", svc_tok, 5, CONNECT_MS),
                     0);
    /* PUBACK 0 instead of 16 once the node client's subscription is in
     * (node's start-up alone can take seconds on a loaded 2-core machine). */
    end = fp_time_mono_ms() + 25000;
    for (i = 0; i < 2; i++) {
        for (;;) {
            rcs[i] = ft_mqtt_publish(&svc, topics[i], payloads[i], false, CONNECT_MS);
            if (rcs[i] != 16 || fp_time_mono_ms() >= end)
                break;
            ft_sleep_ms(50);
        }
    }
    ft_mqtt_close(&svc);
    for (i = 0; i < 2; i++) {
        out = ws_finish(&runs[i]);
        assert_int_equal(rcs[i], 0);
        assert_true(json_true(out, "connected"));
        assert_int_equal(json_int(out, "connack_rc"), 0);
        granted = json_array(out, "granted");
        assert_int_equal(cJSON_GetArraySize(granted), 1);
        assert_int_equal(json_int(cJSON_GetArrayItem(granted, 0), "qos"), 1);
        msgs = json_array(out, "messages");
        assert_int_equal(cJSON_GetArraySize(msgs), 1);
        m = cJSON_GetArrayItem(msgs, 0);
        assert_string_equal(json_str(m, "topic"), topics[i]);
        assert_string_equal(json_str(m, "payload"), payloads[i]);
        cJSON_Delete(out);
        free(toks[i]);
    }
    free(svc_tok);
}

/* Bad signature, expired, alg none, username != sub: each refused with the
 * not-authorised CONNACK under both protocol versions (8 runs at once). */
static void test_ws_bad_tokens_refused(void **state)
{
    int64_t now = (int64_t)time(NULL);
    char *good = ft_plugin_env_token_now(&env, "alice", FP_ROLE_USER);
    char *bad_sig = strdup(good), *sig;
    char *expired = ft_plugin_env_token(&env, "alice", now - 7200, now - 60, FP_ROLE_USER);
    char *none = alg_none_token("alice");
    struct {
        const char *name, *user, *token;
    } cases[] = {
        {"badsig", "alice", bad_sig},
        {"expired", "alice", expired},
        {"algnone", "alice", none},
        {"username", "bob", good},
    };
    enum { N_CASES = sizeof(cases) / sizeof(cases[0]) };
    ws_run runs[N_CASES][2];
    char ids[N_CASES][2][32];
    const char *proto[] = {"4", "5"};
    size_t i, p;
    cJSON *out;

    (void)state;
    assert_non_null(bad_sig);
    sig = strrchr(bad_sig, '.') + 1;
    assert_true(strlen(sig) > 20);
    sig[10] = sig[10] == 'A' ? 'B' : 'A';
    for (i = 0; i < N_CASES; i++) {
        for (p = 0; p < 2; p++) {
            const char *args[] = {"--username",         cases[i].user, "--password",
                                  cases[i].token,       "--client-id", ids[i][p],
                                  "--protocol-version", proto[p],      "--timeout-ms",
                                  WS_TIMEOUT,           NULL};

            snprintf(ids[i][p], sizeof(ids[i][p]), "ws-%s-v%s", cases[i].name, proto[p]);
            ws_start(&runs[i][p], args);
        }
    }
    for (i = 0; i < N_CASES; i++) {
        for (p = 0; p < 2; p++) {
            int want = p == 1 ? 135 : 5, got;

            out = ws_finish(&runs[i][p]);
            got = json_int(out, "connack_rc");
            if (json_true(out, "connected") || got != want)
                fail_msg("%s over MQTT %s: connected %d, connack_rc %d, want %d (error %s)",
                         cases[i].name, proto[p], json_true(out, "connected"), got, want,
                         json_str(out, "error"));
            cJSON_Delete(out);
        }
    }
    free(good);
    free(bad_sig);
    free(expired);
    free(none);
}

/* One SUBSCRIBE for "#", feed/bob, feed/alice and ribbon: the first two
 * refused, the last two granted; the user's publish to ribbon is refused
 * (MQTT 5 PUBACK 135; 3.1.1 acks and drops it) and does not come back to
 * it within the 200 ms it stays. */
static void test_ws_subscribe_acl(void **state)
{
    static const char *const topics[] = {"#", "feed/bob", "feed/alice", "ribbon"};
    char *tok = ft_plugin_env_token_now(&env, "alice", FP_ROLE_USER);
    const char *proto[] = {"4", "5"};
    const cJSON *granted, *pubs, *g;
    ws_run runs[2];
    size_t p, i;
    cJSON *out;

    (void)state;
    for (p = 0; p < 2; p++) {
        const char *args[] = {"--username",
                              "alice",
                              "--password",
                              tok,
                              "--protocol-version",
                              proto[p],
                              "--subscribe",
                              topics[0],
                              "--subscribe",
                              topics[1],
                              "--subscribe",
                              topics[2],
                              "--subscribe",
                              topics[3],
                              "--publish",
                              "ribbon=from-ws-user",
                              "--stay-ms",
                              "200",
                              "--timeout-ms",
                              WS_TIMEOUT,
                              NULL};

        ws_start(&runs[p], args);
    }
    for (p = 0; p < 2; p++) {
        int denied = p == 1 ? 135 : 128;

        out = ws_finish(&runs[p]);
        assert_true(json_true(out, "connected"));
        granted = json_array(out, "granted");
        assert_int_equal(cJSON_GetArraySize(granted), 4);
        for (i = 0; i < 4; i++) {
            int want = i < 2 ? denied : 1;

            g = cJSON_GetArrayItem(granted, (int)i);
            assert_string_equal(json_str(g, "topic"), topics[i]);
            if (json_int(g, "qos") != want)
                fail_msg("MQTT %s, subscribe \"%s\": granted %d, want %d", proto[p], topics[i],
                         json_int(g, "qos"), want);
        }
        pubs = json_array(out, "published");
        assert_int_equal(cJSON_GetArraySize(pubs), 1);
        g = cJSON_GetArrayItem(pubs, 0);
        assert_true(json_true(g, "acked"));
        assert_int_equal(json_int(g, "reason_code"), p == 1 ? 135 : -1);
        /* Its own publish never came back to it through ribbon. */
        assert_int_equal(cJSON_GetArraySize(json_array(out, "messages")), 0);
        assert_int_equal(json_int(out, "closed_after_ms"), -1);
        cJSON_Delete(out);
    }
    free(tok);
}

/* clang-format off */
FT_MAIN(ft_mqtt_run_group, setup, teardown,
        cmocka_unit_test(test_ws_valid_token_receives_feed),
        cmocka_unit_test(test_ws_bad_tokens_refused),
        cmocka_unit_test(test_ws_subscribe_acl))
/* clang-format on */
