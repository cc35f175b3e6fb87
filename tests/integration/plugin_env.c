#include "plugin_env.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ft_main.h"
#include "ft_token.h"

static int plugin_env__start(ft_plugin_env *e, const char *node_id, fp_jwt_alg alg,
                             const char *key_file, const ft_server *redis, const char *extra);

int ft_plugin_env_start(ft_plugin_env *e, const char *node_id, const char *extra)
{
    return plugin_env__start(e, node_id, FP_JWT_HS256, NULL, NULL, extra);
}

int ft_plugin_env_start_key(ft_plugin_env *e, const char *node_id, fp_jwt_alg alg,
                            const char *key_file, const char *extra)
{
    return plugin_env__start(e, node_id, alg, key_file, NULL, extra);
}

int ft_plugin_env_start_on(ft_plugin_env *e, const char *node_id, const ft_server *redis,
                           const char *extra)
{
    return plugin_env__start(e, node_id, FP_JWT_HS256, NULL, redis, extra);
}

/* The environment; redis: a running one of the caller's, or NULL for a
 * new one. */
static int plugin_env__start(ft_plugin_env *e, const char *node_id, fp_jwt_alg alg,
                             const char *key_file, const ft_server *redis, const char *extra)
{
    const char *tmp = getenv("FP_TEST_TMP");
    char conf[PATH_MAX + 32];

    memset(e, 0, sizeof(*e));
    if (tmp == NULL) {
        fprintf(stderr, "plugin_env: FP_TEST_TMP not set (run through ctest)\n");
        return -1;
    }
    snprintf(e->node_id, sizeof(e->node_id), "%s", node_id);
    snprintf(e->dir, sizeof(e->dir), "%s/plugin-%ld-%s", tmp, (long)getpid(), node_id);
    if (mkdir(e->dir, 0755) != 0 && errno != EEXIST)
        return -1;
    snprintf(e->secret_path, sizeof(e->secret_path), "%s/jwt.secret", e->dir);
    if (ft_secret_write(e->secret_path, e->secret, sizeof(e->secret)) != 0)
        return -1;
    if (redis != NULL)
        e->redis = *redis;
    else if (ft_server_start(&e->redis, "redis", NULL) != 0)
        return -1;
    snprintf(conf, sizeof(conf), "%s/plugin.conf", e->dir);
    if (ft_plugin_conf_write(conf, fp_jwt_alg_name(alg), key_file != NULL ? key_file : e->secret_path, node_id, e->redis.port,
                             extra) != 0)
        return -1;
    return ft_server_start(&e->mosq, "mosquitto", conf);
}

int ft_plugin_env_stop(ft_plugin_env *e)
{
    int rc = 0;

    if (e->mosq.pid > 0 && ft_server_stop(&e->mosq) != 0)
        rc = -1;
    if (e->redis.pid > 0 && ft_server_stop(&e->redis) != 0)
        rc = -1;
    return rc;
}

bool ft_plugin_env_sanitizer_report(const ft_plugin_env *e)
{
    static const char *const marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                        "runtime error:"};
    char path[PATH_MAX + 32], line[1024];
    bool found = false;
    size_t i;
    FILE *f;

    snprintf(path, sizeof(path), "%s/mosquitto/mosquitto.log", e->mosq.dir);
    f = fopen(path, "r");
    if (f == NULL)
        return false;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        for (i = 0; !found && i < sizeof(marks) / sizeof(marks[0]); i++)
            found = strstr(line, marks[i]) != NULL;
    }
    fclose(f);
    if (found)
        fprintf(stderr, "sanitizer report in %s: %s", path, line);
    return found;
}

long ft_log_size(const char *path)
{
    FILE *f = fopen(path, "r");
    long n;

    if (f == NULL)
        return -1;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fclose(f);
    return n;
}

long ft_plugin_env_log_size(const ft_plugin_env *e)
{
    char path[PATH_MAX + 32];

    snprintf(path, sizeof(path), "%s/mosquitto/mosquitto.log", e->mosq.dir);
    return ft_log_size(path);
}

int ft_shared_dir(char *dir, const char *name)
{
    const char *tmp = getenv("FP_TEST_TMP");

    if (tmp == NULL || snprintf(dir, PATH_MAX, "%s/%s", tmp, name) >= PATH_MAX ||
        mkdtemp(dir) == NULL)
        return -1;
    return chmod(dir, 0777);
}

bool ft_file_has_line(const char *path, const char *want)
{
    char line[512];
    bool found = false;
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return false;
    while (!found && fgets(line, sizeof(line), f) != NULL)
        found = strcmp(line, want) == 0;
    fclose(f);
    return found;
}

bool ft_file_line_wait(const char *path, const char *want, int timeout_ms)
{
    int64_t end = fp_time_mono_ms() + timeout_ms;

    while (!ft_file_has_line(path, want)) {
        if (fp_time_mono_ms() >= end)
            return false;
        usleep(20000);
    }
    return true;
}

int ft_log_wait_n(const char *path, long from, const char *needle, int n, int timeout_ms)
{
    int64_t end = fp_time_mono_ms() + timeout_ms;
    int seen;

    for (;;) {
        seen = ft_log_count(path, from, needle);
        if (seen >= n || fp_time_mono_ms() >= end)
            return seen; /* a file not there yet is looked for again */
        usleep(20000);
    }
}

int ft_log_wait(const char *path, long from, const char *needle, int timeout_ms)
{
    int seen = ft_log_wait_n(path, from, needle, 1, timeout_ms);

    return seen < 0 ? -1 : seen > 0;
}

int ft_log_count(const char *path, long from, const char *needle)
{
    char line[1024];
    int n = 0;
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return -1;
    fseek(f, from > 0 ? from : 0, SEEK_SET);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, needle) != NULL)
            n++;
    }
    fclose(f);
    return n;
}

int ft_plugin_env_log_count(const ft_plugin_env *e, long from, const char *needle)
{
    char path[PATH_MAX + 32];

    snprintf(path, sizeof(path), "%s/mosquitto/mosquitto.log", e->mosq.dir);
    return ft_log_count(path, from, needle);
}

int ft_plugin_env_log_wait_n(const ft_plugin_env *e, long from, const char *needle, int n,
                             int timeout_ms)
{
    char path[PATH_MAX + 32];

    snprintf(path, sizeof(path), "%s/mosquitto/mosquitto.log", e->mosq.dir);
    return ft_log_wait_n(path, from, needle, n, timeout_ms);
}

bool ft_plugin_env_log_wait(const ft_plugin_env *e, long from, const char *needle, int timeout_ms)
{
    char path[PATH_MAX + 32];

    snprintf(path, sizeof(path), "%s/mosquitto/mosquitto.log", e->mosq.dir);
    if (ft_log_wait(path, from, needle, timeout_ms) == 1)
        return true;
    fprintf(stderr, "\"%s\" not in the broker log within %d ms\n", needle, timeout_ms);
    return false;
}

char *ft_plugin_env_token(const ft_plugin_env *e, const char *sub, int64_t iat, int64_t exp,
                          fp_role role)
{
    char *tok = ft_token_mint(FP_JWT_HS256, e->secret, sizeof(e->secret), sub, role, iat, exp);

    if (tok == NULL)
        abort();
    return tok;
}

char *ft_plugin_env_token_now(const ft_plugin_env *e, const char *sub, fp_role role)
{
    int64_t now = (int64_t)time(NULL);

    return ft_plugin_env_token(e, sub, now, now + 3600, role);
}

/* ------------------------------------------------------------ MQTT client */

static void mqtt__on_connect(struct mosquitto *m, void *obj, int rc, int flags,
                             const mosquitto_property *props)
{
    ft_mqtt *c = obj;

    (void)m;
    (void)props;
    c->connack = rc;
    c->session_present = (flags & 1) != 0;
    c->connected_at_ms = fp_time_mono_ms();
}

static void mqtt__on_disconnect(struct mosquitto *m, void *obj, int rc,
                                const mosquitto_property *props)
{
    ft_mqtt *c = obj;

    (void)m;
    (void)props;
    if (c->disconnect_rc < 0)
        c->disconnect_rc = rc;
    c->disconnected = true;
    if (c->closed_at_ms == 0)
        c->closed_at_ms = fp_time_mono_ms();
}

static void mqtt__on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *qos,
                               const mosquitto_property *props)
{
    ft_mqtt *c = obj;
    int i;

    (void)m;
    (void)mid;
    (void)props;
    c->n_granted = n < 8 ? n : 8;
    for (i = 0; i < c->n_granted; i++)
        c->granted[i] = qos[i];
    c->suback = true;
}

static void mqtt__on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                             const mosquitto_property *props)
{
    ft_mqtt *c = obj;
    size_t n = (size_t)msg->payloadlen;
    uint32_t expiry;

    (void)m;
    c->last_expiry_s = -1;
    if (mosquitto_property_read_int32(props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, &expiry, false) !=
        NULL)
        c->last_expiry_s = expiry;
    if (n >= sizeof(c->last_payload))
        n = sizeof(c->last_payload) - 1;
    memcpy(c->last_payload, msg->payload, n);
    c->last_payload[n] = '\0';
    snprintf(c->last_topic, sizeof(c->last_topic), "%s", msg->topic);
    c->last_retain = msg->retain;
    if (c->received < 16)
        snprintf(c->payloads[c->received], sizeof(c->payloads[0]), "%.255s", c->last_payload);
    c->received++;
}

static int published_mid = -1;
static int published_rc = -1; /* the PUBACK's reason code, -1 until it came */

static void mqtt__on_publish(struct mosquitto *m, void *obj, int mid, int rc,
                             const mosquitto_property *props)
{
    (void)m;
    (void)obj;
    (void)props;
    if (mid == published_mid)
        published_rc = rc;
}

/* Runs one loop iteration; a closed connection is recorded, not an error. */
static void mqtt__loop(ft_mqtt *c, int ms)
{
    if (c->disconnected) {
        usleep((useconds_t)ms * 1000);
        return;
    }
    if (mosquitto_loop(c->m, ms, 1) != MOSQ_ERR_SUCCESS && !c->disconnected) {
        c->disconnected = true;
        c->closed_at_ms = fp_time_mono_ms();
    }
}

int ft_mqtt_connect(ft_mqtt *c, int port, const char *client_id, const char *user,
                    const char *password, int protocol, int timeout_ms)
{
    return ft_mqtt_connect_session(c, port, client_id, user, password, protocol, true, 0,
                                   timeout_ms);
}

int ft_mqtt_connect_session(ft_mqtt *c, int port, const char *client_id, const char *user,
                            const char *password, int protocol, bool clean, uint32_t session_expiry,
                            int timeout_ms)
{
    int64_t end = fp_time_mono_ms() + timeout_ms;
    mosquitto_property *props = NULL;
    int rc;

    memset(c, 0, sizeof(*c));
    c->connack = -1;
    c->disconnect_rc = -1;
    c->m = mosquitto_new(client_id, clean, c);
    if (c->m == NULL)
        return -1;
    mosquitto_int_option(c->m, MOSQ_OPT_PROTOCOL_VERSION,
                         protocol == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
    mosquitto_connect_v5_callback_set(c->m, mqtt__on_connect);
    mosquitto_disconnect_v5_callback_set(c->m, mqtt__on_disconnect);
    mosquitto_subscribe_v5_callback_set(c->m, mqtt__on_subscribe);
    mosquitto_message_v5_callback_set(c->m, mqtt__on_message);
    mosquitto_publish_v5_callback_set(c->m, mqtt__on_publish);
    if (user != NULL && mosquitto_username_pw_set(c->m, user, password) != MOSQ_ERR_SUCCESS)
        return -1;
    if (protocol == 5 && session_expiry > 0 &&
        mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, session_expiry) !=
            MOSQ_ERR_SUCCESS)
        return -1;
    rc = mosquitto_connect_bind_v5(c->m, "127.0.0.1", port, 60, NULL, props);
    mosquitto_property_free_all(&props);
    if (rc != MOSQ_ERR_SUCCESS)
        return -1;
    while (c->connack < 0 && !c->disconnected && fp_time_mono_ms() < end)
        mqtt__loop(c, 50);
    return c->connack;
}

int ft_mqtt_subscribe(ft_mqtt *c, const char *topic, int timeout_ms)
{
    int64_t end = fp_time_mono_ms() + timeout_ms;

    c->suback = false;
    if (mosquitto_subscribe(c->m, NULL, topic, 1) != MOSQ_ERR_SUCCESS)
        return -1;
    while (!c->suback && !c->disconnected && fp_time_mono_ms() < end)
        mqtt__loop(c, 50);
    return c->suback && c->n_granted > 0 ? c->granted[0] : -1;
}

int ft_mqtt_publish(ft_mqtt *c, const char *topic, const char *payload, bool retain,
                    int timeout_ms)
{
    int64_t end = fp_time_mono_ms() + timeout_ms;
    int mid;

    published_rc = -1;
    if (mosquitto_publish(c->m, &mid, topic, (int)strlen(payload), payload, 1, retain) !=
        MOSQ_ERR_SUCCESS)
        return -1;
    published_mid = mid;
    while (published_rc < 0 && !c->disconnected && fp_time_mono_ms() < end)
        mqtt__loop(c, 50);
    return published_rc;
}

int ft_mqtt_wait_messages(ft_mqtt *c, int n, int timeout_ms)
{
    int64_t end = fp_time_mono_ms() + timeout_ms;

    while (c->received < n && !c->disconnected && fp_time_mono_ms() < end)
        mqtt__loop(c, 50);
    return c->received;
}

int64_t ft_mqtt_wait_closed(ft_mqtt *c, int timeout_ms)
{
    int64_t end = fp_time_mono_ms() + timeout_ms;

    while (!c->disconnected && fp_time_mono_ms() < end)
        mqtt__loop(c, 50);
    return c->disconnected ? c->closed_at_ms - c->connected_at_ms : -1;
}

void ft_mqtt_pump(ft_mqtt *c, int ms)
{
    int64_t end = fp_time_mono_ms() + ms;

    while (fp_time_mono_ms() < end)
        mqtt__loop(c, 50);
}

void ft_mqtt_close(ft_mqtt *c)
{
    if (c->m == NULL)
        return;
    if (!c->disconnected)
        mosquitto_disconnect(c->m);
    mosquitto_destroy(c->m);
    c->m = NULL;
}

char *ft_plugin_env_hand_token(const ft_plugin_env *e, const char *header, const char *payload,
                               const struct evp_md_st *md)
{
    return ft_token_hand(header, payload, md, e->secret, sizeof(e->secret));
}

int ft_mqtt_run_group(const char *name, const struct CMUnitTest *tests, size_t n,
                      int (*setup)(void **state), int (*teardown)(void **state))
{
    int rc;

    mosquitto_lib_init();
    rc = ft_harness_run(name, tests, n, setup, teardown);
    mosquitto_lib_cleanup();
    return rc;
}
