/*
 * config.c - feed-bridge configuration: conf/bridge.conf (key value lines)
 * plus FEEDPUSH_<KEY> environment overrides, via common/fp_config.
 */
#include <stddef.h>
#include <stdio.h>

#include "bridge.h"
#include "fp_config.h"

#define CONFIG__ENV "FEEDPUSH_"

static const fp_conf_opt config__table[] = {
    {"node_id", FP_CONF_STRING, offsetof(fb_config, node_id), "node1", 0, 0, true,
     "this node's id, [A-Za-z0-9_-] 1-64 (the mosquitto beside it has the same)"},
    FP_AMQP_CONF_OPTIONS(fb_config, amqp),
    {"prefetch", FP_CONF_INT, offsetof(fb_config, prefetch), "64", 1, 65535, false,
     "unacked messages in flight per consumer connection"},
    {"deliver_ttl_ms", FP_CONF_INT, offsetof(fb_config, deliver_ttl_ms), "30000", 100, 86400000,
     false, "a realtime delivery older than this is dropped"},
    {"deliver_max_length", FP_CONF_INT, offsetof(fb_config, deliver_max_length), "100000", 1,
     100000000, false, "deliveries queued per node at most (oldest dropped)"},
    {"deliver_expires_ms", FP_CONF_INT, offsetof(fb_config, deliver_expires_ms), "300000", 1000,
     604800000, false, "a node's queues vanish after this long unconsumed"},
    {"deliver_mode", FP_CONF_STRING, offsetof(fb_config, deliver_mode), "control", 0, 0, false,
     "control: one message per delivery, fanned out by feed_auth.so; publish: one MQTT publish "
     "per recipient"},
    {"local_delivery", FP_CONF_STRING, offsetof(fb_config, local_delivery), "direct", 0, 0, false,
     "direct: this node's own recipients straight from fan-out to its broker; queue: through "
     "feed.deliver.<node> like the other nodes'"},
    FP_REDIS_CONF_OPTIONS(fb_config, redis),
    {"redis_min_replicas", FP_CONF_INT, offsetof(fb_config, redis_min_replicas), "0", 0, 100, false,
     "ack an event only once its Redis writes reached this many replicas (WAIT)"},
    {"redis_wait_timeout_ms", FP_CONF_INT, offsetof(fb_config, redis_wait_timeout_ms), "1000", 10,
     60000, false, "how long WAIT waits for them; past it the event is handled again"},
    {"feed_length", FP_CONF_INT, offsetof(fb_config, feed_length), "1000", 1, 100000, false,
     "post ids kept per user feed"},
    {"pull_threshold", FP_CONF_INT, offsetof(fb_config, pull_threshold), "10000", 0, 1000000000,
     false, "an author with more followers has posts pulled into feeds at read time (0: never)"},
    {"post_ttl", FP_CONF_INT, offsetof(fb_config, post_ttl), "0", 0, 315360000, false,
     "seconds a post's body is kept in Redis (0: for ever); feeds skip posts whose body is gone"},
    {"revocation_ttl", FP_CONF_INT, offsetof(fb_config, revocation_ttl), "0", 0, 315360000, false,
     "seconds revoked:<uid> outlives its cut-off (0: for ever); needs require_iat and a "
     "max_lifetime at most this on every broker and gateway"},
    {"ribbon_length", FP_CONF_INT, offsetof(fb_config, ribbon_length), "50", 1, 500, false,
     "entries kept in the ribbon"},
    {"mqtt_host", FP_CONF_STRING, offsetof(fb_config, mqtt_host), "127.0.0.1", 0, 0, false,
     "the local mosquitto"},
    {"mqtt_port", FP_CONF_INT, offsetof(fb_config, mqtt_port), "1883", 1, 65535, false,
     "the local mosquitto's MQTT port"},
    {"mqtt_tls", FP_CONF_BOOL, offsetof(fb_config, mqtt_tls), "off", 0, 0, false,
     "TLS to the broker (its TLS listener in mqtt_port; certificate and host name verified)"},
    {"mqtt_tls_ca", FP_CONF_STRING, offsetof(fb_config, mqtt_tls_ca), "", 0, 0, false,
     "CA certificate file (PEM) the broker's certificate must chain to (\"\" = the system's CAs)"},
    {"jwt_alg", FP_CONF_STRING, offsetof(fb_config, jwt_alg), "HS256", 0, 0, false,
     "algorithm of the broker's tokens (HS256, RS256, ES256)"},
    {"jwt_signing_key", FP_CONF_STRING, offsetof(fb_config, jwt_signing_key), NULL, 0, 0, true,
     "HS256 secret or RS256/ES256 private key: the bridge mints its service token"},
    {"token_ttl", FP_CONF_INT, offsetof(fb_config, token_ttl), "3600", 60, 86400, false,
     "lifetime of the bridge's own token, seconds (renewed at 80%)"},
    {"timeout_ms", FP_CONF_INT, offsetof(fb_config, timeout_ms), "5000", 100, 60000, false,
     "network timeout for RabbitMQ, Redis and MQTT operations (2 x + 3 s at most "
     "amqp_heartbeat)"},
    {"log_level", FP_CONF_STRING, offsetof(fb_config, log_level), "info", 0, 0, false,
     "debug, info, warn or error"},
};
#define CONFIG__N (sizeof(config__table) / sizeof(config__table[0]))

int fb_config_load(fb_config *c, const char *path, char *err, size_t errlen)
{
    return fp_conf_load(config__table, CONFIG__N, c, path, CONFIG__ENV, err, errlen);
}

void fb_config_free(fb_config *c)
{
    fp_conf_free(config__table, CONFIG__N, c);
}

void fb_config_usage(FILE *out)
{
    fp_conf_usage(config__table, CONFIG__N, CONFIG__ENV, out);
}
