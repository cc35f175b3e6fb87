/*
 * plugin_env.h - a broker with feed_auth.so for integration tests.
 *
 * ft_plugin_env_start() starts a redis-server and a mosquitto loading the
 * plugin (HS256, a fresh secret, the given node id, presence in that
 * Redis), both on free loopback ports through the harness. Tokens are
 * minted with common/fp_jwt. The MQTT helpers wrap libmosquitto for the
 * questions tests ask: was the connect accepted, which QoS was granted,
 * did a message arrive, when did the broker close the connection.
 */
#ifndef PLUGIN_ENV_H
#define PLUGIN_ENV_H

#include <stdbool.h>
#include <stdint.h>

#include <mosquitto.h>

#include "ft_harness.h"
#include "fp_jwt.h"
#include "fp_time.h"

typedef struct {
    ft_server redis;
    ft_server mosq;
    char dir[PATH_MAX];         /* test files: secret, plugin config */
    char secret_path[PATH_MAX + 16];
    unsigned char secret[48];
    char node_id[FP_ID_BUFSZ];
} ft_plugin_env;

/* Starts redis and mosquitto+plugin. extra: more plugin_opt_* lines (or
 * NULL). Returns 0 or -1. */
int ft_plugin_env_start(ft_plugin_env *e, const char *node_id, const char *extra);

/* The same on a Redis the caller started (it becomes e->redis: stopped
 * with the rest). */
int ft_plugin_env_start_on(ft_plugin_env *e, const char *node_id, const ft_server *redis,
                           const char *extra);

/* The same with the plugin verifying alg with key_file (a public key for
 * RS256 and ES256); key_file NULL: HS256 with the fresh secret. */
int ft_plugin_env_start_key(ft_plugin_env *e, const char *node_id, fp_jwt_alg alg,
                            const char *key_file, const char *extra);

/* Stops both. Returns -1 when a stop failed (e.g. a sanitizer report in
 * the broker log), so tests assert on it. */
int ft_plugin_env_stop(ft_plugin_env *e);

/* True when the broker's log (all its runs so far) holds a sanitizer
 * report (ASan, LSan or UBSan); its first line is printed. Lets a test
 * check after each step what the final stop would otherwise find. */
bool ft_plugin_env_sanitizer_report(const ft_plugin_env *e);

/* A directory under the run's FP_TEST_TMP that the broker (its own user)
 * may write in: dir (PATH_MAX bytes) from template name ("...-XXXXXX").
 * 0 or -1. */
int ft_shared_dir(char *dir, const char *name);

/* Does the file at path hold the line want (with its newline)? Lines
 * are compared up to 511 bytes. */
bool ft_file_has_line(const char *path, const char *want);
/* Waits up to timeout_ms until it does. */
bool ft_file_line_wait(const char *path, const char *want, int timeout_ms);

/* Byte size of the file at path (a log), to look for lines written
 * after it (-1 when it cannot be read). */
long ft_log_size(const char *path);
/* The same for the broker's log. */
long ft_plugin_env_log_size(const ft_plugin_env *e);

/* Waits up to timeout_ms (0: looks once) until the file at path holds a
 * line with needle after byte offset from. 1 when it does, 0 when it
 * never did, -1 when the file could not be read. */
int ft_log_wait(const char *path, long from, const char *needle, int timeout_ms);
/* Waits up to timeout_ms until n such lines are there. Returns how many
 * were there last (n or more when they came), -1 when the file could not
 * be read by then. */
int ft_log_wait_n(const char *path, long from, const char *needle, int n, int timeout_ms);

/* How many lines of the file at path after byte offset from (below 0:
 * from the start) hold needle; -1 when it cannot be read. */
int ft_log_count(const char *path, long from, const char *needle);
/* The same for the broker's log. */
int ft_plugin_env_log_count(const ft_plugin_env *e, long from, const char *needle);

/* Waits up to timeout_ms until the broker's log holds needle after byte
 * offset from. False (and a line on stderr) when it never does. */
bool ft_plugin_env_log_wait(const ft_plugin_env *e, long from, const char *needle,
                            int timeout_ms);
/* ft_log_wait_n on the broker's log. */
int ft_plugin_env_log_wait_n(const ft_plugin_env *e, long from, const char *needle, int n,
                             int timeout_ms);

/* A token for sub signed with the env's secret; iat/exp absolute unix
 * seconds (iat 0 = omitted). Returns a malloc'd string (abort on failure). */
char *ft_plugin_env_token(const ft_plugin_env *e, const char *sub, int64_t iat, int64_t exp,
                          fp_role role);

/* A token valid for an hour from now. */
char *ft_plugin_env_token_now(const ft_plugin_env *e, const char *sub, fp_role role);

struct evp_md_st;
/* A compact JWT built by hand from header and payload JSON text (for
 * tokens fp_jwt would never mint), signed with HMAC md (e.g. EVP_sha256())
 * over e's secret, or with an empty signature when md is NULL. Returns a
 * malloc'd string (abort on failure). */
char *ft_plugin_env_hand_token(const ft_plugin_env *e, const char *header, const char *payload,
                               const struct evp_md_st *md);

/* ------------------------------------------------------------ MQTT client */

typedef struct {
    struct mosquitto *m;
    int connack;           /* -1 until CONNACK (v3.1.1 return code, or v5 reason code) */
    bool disconnected;
    int64_t connected_at_ms;
    int64_t closed_at_ms;  /* 0 while open */
    int granted[8];        /* last SUBACK */
    int n_granted;
    bool suback;
    int received;          /* messages so far */
    char last_topic[256];
    char last_payload[4096];
    bool last_retain;
    int64_t last_expiry_s;  /* the last message's Message Expiry Interval, -1: none */
    bool session_present;   /* the CONNACK's flag */
    int disconnect_rc;      /* v5: the server's DISCONNECT reason code; else the
                               library's error (e.g. MOSQ_ERR_CONN_LOST); -1 */
    char payloads[16][256]; /* the first 16 messages' payloads, cut to 255 */
} ft_mqtt;


/* Connects to 127.0.0.1:port (protocol 4 = 3.1.1, 5 = v5) and waits up to
 * timeout_ms for the CONNACK. Returns the CONNACK code (0 = accepted, 5 /
 * 135 = not authorised), or -1 when none came. c must be freed with
 * ft_mqtt_close() either way. client_id NULL = generated. */
int ft_mqtt_connect(ft_mqtt *c, int port, const char *client_id, const char *user,
                    const char *password, int protocol, int timeout_ms);

/* The same with the session flags: clean (3.1.1 clean session, v5 clean
 * start) and, for v5, the Session Expiry Interval sent in CONNECT (0: none). */
int ft_mqtt_connect_session(ft_mqtt *c, int port, const char *client_id, const char *user,
                            const char *password, int protocol, bool clean, uint32_t session_expiry,
                            int timeout_ms);

/* Subscribes at QoS 1 and waits for the SUBACK. Returns the granted QoS
 * (0..2, or >= 128 when refused), or -1 on timeout / closed connection. */
int ft_mqtt_subscribe(ft_mqtt *c, const char *topic, int timeout_ms);

/*
 * Publishes at QoS 1 and runs the loop until the PUBACK or timeout.
 * Returns the PUBACK's reason code (MQTT 5: 0, 16 no matching subscribers,
 * 135 not authorised; always 0 under 3.1.1, where mosquitto acks a denied
 * publish and drops it), or -1 when none came.
 */
int ft_mqtt_publish(ft_mqtt *c, const char *topic, const char *payload, bool retain,
                    int timeout_ms);

/* Runs the loop until c->received >= n, the connection closes, or timeout.
 * Returns c->received. */
int ft_mqtt_wait_messages(ft_mqtt *c, int n, int timeout_ms);

/* Runs the loop until the broker closes the connection or timeout.
 * Returns ms from CONNACK to close, or -1 if still open. */
int64_t ft_mqtt_wait_closed(ft_mqtt *c, int timeout_ms);

/* Runs the loop for ms milliseconds (to let the broker act). */
void ft_mqtt_pump(ft_mqtt *c, int ms);

/* Disconnects (if connected) and frees. */
void ft_mqtt_close(ft_mqtt *c);

/* ------------------------------------------------------------ main() */

/* The runner of tests that speak MQTT (FT_MAIN, ft_main.h): ft_harness_run
 * with libmosquitto initialised for the run. */
struct CMUnitTest;
int ft_mqtt_run_group(const char *name, const struct CMUnitTest *tests, size_t n,
                      int (*setup)(void **state), int (*teardown)(void **state));

#endif
