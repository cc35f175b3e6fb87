/*
 * Persistent sessions end to end, with real unmodified clients: on node 2
 * of a three-node stack, mosquitto_sub (-c -q 1), MQTT.js (clean: false;
 * 3.1.1 over WebSockets, 5 over TCP) and Python Paho (3.1.1 and 5)
 * subscribe and leave. An author they follow then posts three times and
 * deletes one post, events that the three bridges route while the clients
 * are away. Each client reconnects to node 2 and receives exactly those
 * four messages, in order, once.
 *
 * The clients are tests/tools/mqtt_js.mjs and mqtt_paho.py (one output
 * format for both) and mosquitto_sub itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "node_env.h"
#include "ft_main.h"

#define AUTHOR "dsa"
#define NODE 2
#define OUT_MAX 16384

static ft_node_env env;

/*
 * The stack, with a realtime TTL (and so a Message Expiry Interval) of
 * 10 minutes instead of 30 s: what is under test is the queue of a
 * session while its device is away, and the clients collect one after
 * the other, which on a loaded machine took longer than 30 s (the third
 * found its queue expired).
 */
static int env_start(void)
{
    setenv("FEEDPUSH_DELIVER_TTL_MS", "600000", 1);
    return ft_node_env_start(&env, 3);
}

FT_FIXTURES(env_start(), ft_node_env_stop(&env))

/* One client under test: its user (and client id "<user>:dev"). */
typedef enum { CLIENT_MOSQUITTO_SUB, CLIENT_MQTTJS, CLIENT_PAHO } client_kind;

typedef struct {
    const char *user;
    client_kind kind;
    int version; /* 3 (3.1.1) or 5 */
    bool ws;
} client;

static const client clients[] = {
    {"ds1", CLIENT_MOSQUITTO_SUB, 3, false}, {"ds2", CLIENT_MQTTJS, 3, true},
    {"ds3", CLIENT_MQTTJS, 5, false},        {"ds4", CLIENT_PAHO, 3, false},
    {"ds5", CLIENT_PAHO, 5, false},
};
#define N_CLIENTS (sizeof(clients) / sizeof(clients[0]))

/*
 * Runs argv (a NULL-terminated vector; argv[0] looked up in PATH), its
 * stdout into out (cut to outsz - 1). Returns its exit code, or -1 when it
 * could not run or died of a signal.
 */
static int run(char *const argv[], char *out, size_t outsz)
{
    size_t len = 0;
    int fds[2], status;
    ssize_t n;
    pid_t pid;

    if (pipe(fds) != 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        n = read(fds[0], out + len, outsz - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == outsz - 1)
            break;
    }
    out[len] = '\0';
    close(fds[0]);
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* Fills argv for c in phase "leave" (subscribe and go), "collect" (expect
 * n messages) or "again" (n = 0: listen a while for nothing). */
static void client_argv(const client *c, const char *phase, int n, char *token, char *url,
                        char *port, char *topic, char *id, char *script, char *count,
                        char *const **argv_out)
{
    static char *argv[40];
    int k = 0;
    const char *src = getenv("FP_SOURCE_DIR");

    assert_non_null(src);
    snprintf(id, 64, "%s:dev", c->user);
    snprintf(topic, 64, "feed/%s", c->user);
    snprintf(port, 16, "%d", ft_node_port(&env, NODE));
    snprintf(count, 16, "%d", n);
    if (c->kind == CLIENT_MOSQUITTO_SUB) {
        char *fixed[] = {"mosquitto_sub",
                         "-h",
                         "127.0.0.1",
                         "-p",
                         port,
                         "-u",
                         (char *)c->user,
                         "-P",
                         token,
                         "-i",
                         id,
                         "-c",
                         "-q",
                         "1",
                         "-t",
                         topic,
                         "-V",
                         "mqttv311"};
        memcpy(argv, fixed, sizeof(fixed));
        k = (int)(sizeof(fixed) / sizeof(fixed[0]));
        if (strcmp(phase, "leave") == 0) {
            argv[k++] = "-E";
        } else if (strcmp(phase, "collect") == 0) {
            /* Not -C: mosquitto_sub exits at the count's last message
             * before its PUBACKs are out, and the broker then rightly
             * sends the unacked ones again. The queue arrives at once;
             * -W ends the run 3 s after the connect. */
            argv[k++] = "-W";
            argv[k++] = "3";
        } else {
            argv[k++] = "-W";
            argv[k++] = "2";
        }
        argv[k] = NULL;
        *argv_out = argv;
        return;
    }
    if (c->ws)
        snprintf(url, 96, "ws://127.0.0.1:%d", env.node[NODE - 1].mosq->ws_port);
    else
        snprintf(url, 96, "mqtt://127.0.0.1:%s", port);
    if (c->kind == CLIENT_MQTTJS) {
        snprintf(script, PATH_MAX, "%s/tests/tools/mqtt_js.mjs", src);
        argv[k++] = "node";
    } else {
        snprintf(script, PATH_MAX, "%s/tests/tools/mqtt_paho.py", src);
        argv[k++] = "/usr/bin/python3";
    }
    argv[k++] = script;
    argv[k++] = "--url";
    argv[k++] = url;
    argv[k++] = "--user";
    argv[k++] = (char *)c->user;
    argv[k++] = "--password";
    argv[k++] = token;
    argv[k++] = "--id";
    argv[k++] = id;
    argv[k++] = "--version";
    argv[k++] = c->version == 5 ? "5" : "3";
    argv[k++] = "--clean";
    argv[k++] = "0";
    argv[k++] = "--topic";
    argv[k++] = topic;
    argv[k++] = "--timeout";
    argv[k++] = "15";
    if (strcmp(phase, "leave") == 0) {
        argv[k++] = "--subscribe-only";
    } else {
        argv[k++] = "--expect";
        argv[k++] = count;
        argv[k++] = "--extra-wait";
        argv[k++] = "1500";
    }
    argv[k] = NULL;
    *argv_out = argv;
}

/* Runs c in phase; its exit code, stdout in out. mosquitto_sub's exit code
 * after -W is 27 (timed out), which is its normal end here. */
static int client_run(const client *c, const char *phase, int n, char *out)
{
    char *token = ft_node_token(&env, c->user);
    char url[96], port[16], topic[64], id[64], script[PATH_MAX], count[16];
    char *const *argv;
    int rc;

    client_argv(c, phase, n, token, url, port, topic, id, script, count, &argv);
    rc = run(argv, out, OUT_MAX);
    free(token);
    return rc;
}

/* The payloads c printed, in order (mosquitto_sub prints bare payloads,
 * the scripts "MSG <topic> <payload>"). Returns how many, at most max. */
static int payloads(const client *c, char *out, char **lines, int max)
{
    char *save = NULL, *line;
    int n = 0;

    for (line = strtok_r(out, "\n", &save); line != NULL && n < max;
         line = strtok_r(NULL, "\n", &save)) {
        if (c->kind == CLIENT_MOSQUITTO_SUB)
            lines[n++] = line;
        else if (strncmp(line, "MSG ", 4) == 0 && strchr(line + 4, ' ') != NULL)
            lines[n++] = strchr(line + 4, ' ') + 1;
    }
    return n;
}

/* Publishes an event and waits until node 2's bridge has delivered
 * `deliveries` messages in all: each event's deliveries are out before
 * the next event goes in, so the three bridges cannot reorder them. */
static void event_then_wait(const char *rk, const char *body, long long deliveries)
{
    assert_int_equal(ft_node_publish(&env, rk, body), 0);
    assert_int_equal(ft_node_stat_wait(&env, NODE, "deliveries", deliveries, 15000), deliveries);
}

/* Whether user's session is held on NODE with the user offline there. */
static bool held_offline(const char *user)
{
    return ft_node_redis_int(&env, "SISMEMBER sessions:n%d %s", NODE, user) == 1 &&
           ft_node_redis_int(&env, "SISMEMBER online:n%d %s", NODE, user) == 0;
}

static void test_devices_get_what_was_posted_while_away(void **state)
{
    char *out = malloc(OUT_MAX), *lines[8], body[512], tag[64];
    long long base;
    size_t i;
    int n, rc;

    (void)state;
    assert_non_null(out);
    for (i = 0; i < N_CLIENTS; i++) {
        assert_true(ft_node_redis_int(&env, "SADD followers:%s %s", AUTHOR, clients[i].user) >= 0);
        assert_true(ft_node_redis_int(&env, "SADD following:%s %s", clients[i].user, AUTHOR) >= 0);
        if (client_run(&clients[i], "leave", 0, out) != 0)
            fail_msg("%s could not subscribe and leave: %s", clients[i].user, out);
    }
    /* The plugin writes presence from its own thread once the broker has
     * handled the client's going: asked until it shows, 5 s at most. */
    for (i = 0; i < N_CLIENTS; i++) {
        for (n = 0; n < 250 && !held_offline(clients[i].user); n++)
            usleep(20000);
        if (!held_offline(clients[i].user))
            fail_msg("%s: sessions:n%d %lld, online:n%d %lld (want 1, 0)", clients[i].user, NODE,
                     ft_node_redis_int(&env, "SISMEMBER sessions:n%d %s", NODE, clients[i].user),
                     NODE,
                     ft_node_redis_int(&env, "SISMEMBER online:n%d %s", NODE, clients[i].user));
    }

    base = ft_node_stat(&env, NODE, "deliveries");
    if (base < 0)
        base = 0;
    for (i = 1; i <= 3; i++) {
        snprintf(body, sizeof(body),
                 "{\"type\":\"post.created\",\"post\":{\"id\":\"dsp%zu\",\"author_id\":\"" AUTHOR
                 "\",\"text\":\"away %zu\",\"created_at\":%lld}}",
                 i, i, (long long)time(NULL));
        event_then_wait("post.created", body, base + (long long)(N_CLIENTS * i));
    }
    event_then_wait("post.deleted",
                    "{\"type\":\"post.deleted\",\"post_id\":\"dsp2\",\"author_id\":\"" AUTHOR "\"}",
                    base + (long long)(N_CLIENTS * 4));

    for (i = 0; i < N_CLIENTS; i++) {
        const client *c = &clients[i];

        rc = client_run(c, "collect", 4, out);
        if (rc != (c->kind == CLIENT_MOSQUITTO_SUB ? 27 : 0))
            fail_msg("%s: did not get 4 messages (exit %d): %s", c->user, rc, out);
        if (c->kind != CLIENT_MOSQUITTO_SUB) {
            assert_non_null(strstr(out, "session_present=1"));
            assert_non_null(strstr(out, "DONE received=4\n"));
        }
        n = payloads(c, out, lines, 8);
        assert_int_equal(n, 4);
        for (int k = 0; k < 3; k++) {
            snprintf(tag, sizeof(tag), "\"id\":\"dsp%d\"", k + 1);
            if (strstr(lines[k], "\"type\":\"post.created\"") == NULL ||
                strstr(lines[k], tag) == NULL)
                fail_msg("%s: message %d is not post dsp%d: %s", c->user, k + 1, k + 1, lines[k]);
        }
        if (strstr(lines[3], "\"type\":\"post.deleted\"") == NULL ||
            strstr(lines[3], "\"post_id\":\"dsp2\"") == NULL)
            fail_msg("%s: message 4 is not the delete of dsp2: %s", c->user, lines[3]);
        /* Once: nothing more came in the runs above, and a new connect
         * finds the queue empty (27 = timed out with nothing); the scripts
         * listened 1.5 s past their fourth message already. */
        if (c->kind == CLIENT_MOSQUITTO_SUB) {
            assert_int_equal(client_run(c, "again", 0, out), 27);
            assert_string_equal(out, "");
        } else {
            assert_int_equal(client_run(c, "again", 0, out), 0);
            if (strstr(out, "session_present=1") == NULL ||
                strstr(out, "DONE received=0\n") == NULL)
                fail_msg("%s: a third connect got: %s", c->user, out);
        }
    }
    free(out);
}

/* clang-format off */
FT_MAIN(ft_mqtt_run_group, setup, teardown,
        cmocka_unit_test(test_devices_get_what_was_posted_while_away))
/* clang-format on */
