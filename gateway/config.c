/*
 * config.c - feed-gateway configuration: conf/gateway.conf (key value
 * lines) plus FEEDPUSH_<KEY> environment overrides, via common/fp_config.
 */
#include <stddef.h>
#include <stdio.h>

#include "fp_config.h"
#include "gateway.h"

#define CONFIG__ENV "FEEDPUSH_"

static const fp_conf_opt config__table[] = {
    {"http_host", FP_CONF_STRING, offsetof(fg_config, http_host), "127.0.0.1", 0, 0, false,
     "address the HTTP server listens on"},
    {"http_port", FP_CONF_INT, offsetof(fg_config, http_port), "8080", 1, 65535, false,
     "HTTP port"},
    {"http_workers", FP_CONF_INT, offsetof(fg_config, http_workers), "32", 1, 64, false,
     "HTTP worker threads, each with its own Redis link (requests waiting on one block only it; "
     "a post holds its worker until confirmed)"},
    {"tls_cert", FP_CONF_STRING, offsetof(fg_config, tls_cert), "", 0, 0, false,
     "certificate chain file (PEM): with tls_key, serve HTTPS instead of HTTP"},
    {"tls_key", FP_CONF_STRING, offsetof(fg_config, tls_key), "", 0, 0, false,
     "private key file (PEM) of tls_cert"},
    {"www_dir", FP_CONF_STRING, offsetof(fg_config, www_dir), "gateway/www", 0, 0, false,
     "the browser client served at / (\"\" serves none)"},
    {"mqtt_js_dir", FP_CONF_STRING, offsetof(fg_config, mqtt_js_dir), "node_modules/mqtt/dist", 0,
     0, false, "MQTT.js build served at /vendor/ (npm package mqtt)"},
    {"mqtt_ws_urls", FP_CONF_STRING, offsetof(fg_config, mqtt_ws_urls), "ws://127.0.0.1:9001/mqtt",
     0, 0, false, "brokers' WebSocket URLs for the browser, comma-separated (it picks one)"},
    FP_AMQP_CONF_OPTIONS(fg_config, amqp),
    FP_REDIS_CONF_OPTIONS(fg_config, redis),
    {"jwt_alg", FP_CONF_STRING, offsetof(fg_config, jwt_alg), "HS256", 0, 0, false,
     "the one accepted token algorithm (HS256, RS256, ES256)"},
    {"jwt_key", FP_CONF_STRING, offsetof(fg_config, jwt_key), NULL, 0, 0, true,
     "HS256 secret file or RS256/ES256 public key file (verification)"},
    {"jwt_issuer", FP_CONF_STRING, offsetof(fg_config, jwt_issuer), "", 0, 0, false,
     "required iss claim (\"\" = not checked)"},
    {"jwt_audience", FP_CONF_STRING, offsetof(fg_config, jwt_audience), "", 0, 0, false,
     "required aud claim (\"\" = not checked)"},
    {"jwt_leeway", FP_CONF_INT, offsetof(fg_config, jwt_leeway), "5", 0, FP_JWT_LEEWAY_MAX, false,
     "clock-skew allowance for nbf/iat, seconds"},
    {"jwt_max_lifetime", FP_CONF_INT, offsetof(fg_config, jwt_max_lifetime), "0", 0,
     FP_JWT_LIFETIME_MAX, false, "longest token lifetime (exp - iat) accepted, seconds; 0 = none"},
    {"jwt_require_iat", FP_CONF_BOOL, offsetof(fg_config, jwt_require_iat), "off", 0, 0, false,
     "refuse tokens without iat (as plugin_opt_require_iat)"},
    {"dev_mode", FP_CONF_BOOL, offsetof(fg_config, dev_mode), "off", 0, 0, false,
     "serve POST /api/v1/dev/token: tokens for anyone who asks (never in production)"},
    {"jwt_signing_key", FP_CONF_STRING, offsetof(fg_config, jwt_signing_key), "", 0, 0, false,
     "dev mode: HS256 secret or RS256/ES256 private key the dev tokens are signed with"},
    {"dev_token_ttl", FP_CONF_INT, offsetof(fg_config, dev_token_ttl), "900", 10, 86400, false,
     "lifetime of a dev token, seconds"},
    {"max_body_bytes", FP_CONF_INT, offsetof(fg_config, max_body_bytes), "65536", 1024, 1048576,
     false, "largest request body accepted (413 beyond)"},
    {"body_timeout_ms", FP_CONF_INT, offsetof(fg_config, body_timeout_ms), "10000", 100, 600000,
     false, "a request body must be whole this long after its headers (408 then)"},
    {"max_page_bytes", FP_CONF_INT, offsetof(fg_config, max_page_bytes), "1048576", 65536,
     268435456, false,
     "posts of one feed page at most, bytes: a longer page is cut short (its cursor goes on)"},
    {"send_timeout_ms", FP_CONF_INT, offsetof(fg_config, send_timeout_ms), "20000", 1000, 3600000,
     false,
     "an answer the client has not read whole this long after it was written: the connection "
     "is closed"},
    {"keep_alive", FP_CONF_BOOL, offsetof(fg_config, keep_alive), "off", 0, 0, false,
     "keep a connection open for the next request (off: closed after each answer); on only when "
     "no connection carries two clients' requests (docs/gateway.md, \"Known gaps\")"},
    {"revocation_cache", FP_CONF_BOOL, offsetof(fg_config, revocation_cache), "on", 0, 0, false,
     "keep users' revocations in memory, kept right by Redis's revocations channel (off: read "
     "Redis on every token check)"},
    {"post_cache_mb", FP_CONF_INT, offsetof(fg_config, post_cache_mb), "64", 0, 65536, false,
     "memory for post bodies kept by the gateway, kept right by Redis's client-side caching, "
     "MiB (0: read every body from Redis)"},
    {"publish_batch", FP_CONF_INT, offsetof(fg_config, publish_batch), "64", 1, 1000, false,
     "most events in one RabbitMQ message: events waiting while earlier ones await their "
     "confirms go together (1: one message per event)"},
    {"timeout_ms", FP_CONF_INT, offsetof(fg_config, timeout_ms), "2000", 100, 60000, false,
     "network timeout for Redis and RabbitMQ operations"},
    {"feed_length", FP_CONF_INT, offsetof(fg_config, feed_length), "1000", 1, 100000, false,
     "the bridges' feed_length: a catch-up read (after=) uses it to tell whether posts above its "
     "cursor may have been trimmed"},
    {"log_level", FP_CONF_STRING, offsetof(fg_config, log_level), "info", 0, 0, false,
     "debug, info, warn or error"},
};
#define CONFIG__N (sizeof(config__table) / sizeof(config__table[0]))

int fg_config_load(fg_config *c, const char *path, char *err, size_t errlen)
{
    return fp_conf_load(config__table, CONFIG__N, c, path, CONFIG__ENV, err, errlen);
}

void fg_config_free(fg_config *c)
{
    fp_conf_free(config__table, CONFIG__N, c);
}

void fg_config_usage(FILE *out)
{
    fp_conf_usage(config__table, CONFIG__N, CONFIG__ENV, out);
}
