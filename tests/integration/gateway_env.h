/*
 * gateway_env.h - a whole stack for feed-gateway tests: one node pair and
 * the run's RabbitMQ (node_env) plus a feed-gateway process on a free
 * loopback port, configured through FEEDPUSH_* variables, and an HTTP
 * client (libcurl) to talk to it.
 */
#ifndef GATEWAY_ENV_H
#define GATEWAY_ENV_H

#include <stdbool.h>
#include <sys/types.h>

#include "node_env.h"

typedef struct {
    ft_node_env b;
    pid_t gw; /* 0 when not running */
    int port;
    bool dev_mode;
    int dev_token_ttl; /* seconds; 0 = 600 */
    int amqp_port;     /* what the gateway is told (a dead port for outage tests) */
    const char *signing_key; /* its jwt_signing_key; NULL: the node's secret (jwt_key) */
    char url[64];      /* http://127.0.0.1:<port> */
    char log[PATH_MAX + 32];
} ft_gateway_env;

/* Starts the node pair and a gateway (dev mode on, dev tokens living
 * dev_token_ttl seconds; 0 = 600). 0 or -1. */
int ft_gateway_env_start(ft_gateway_env *e, int dev_token_ttl);
/* The same with the node pair's options (ft_node_env_start_opts; NULL:
 * none). */
int ft_gateway_env_start_opts(ft_gateway_env *e, int dev_token_ttl, const ft_node_opts *opts);
/* SIGTERMs the gateway (it must exit 0 within 5 s), then stops the rest.
 * -1 if anything did not stop cleanly. */
int ft_gateway_env_stop(ft_gateway_env *e);

/* (Re)starts the gateway with the env's dev_mode and amqp_port and waits
 * until it answers HTTP. 0 or -1. */
int ft_gateway_start(ft_gateway_env *e);
/* SIGTERM and wait; fails (-1) unless it exits 0 within 5 s. */
int ft_gateway_stop(ft_gateway_env *e);
/* True while the gateway process runs. */
bool ft_gateway_alive(ft_gateway_env *e);

typedef struct {
    long status; /* 0 when no reply came */
    char *body;  /* malloc'd, NUL-terminated ("" when empty) */
    size_t len;
    size_t cap; /* bytes body has room for */
    char content_type[128];
    char allow[64];
} ft_http_reply;

/* One request: method, path (with query), bearer token or NULL, body or
 * NULL. Returns the status (0 when the request failed). reply may be NULL;
 * free it with ft_http_reply_free(). */
long ft_http(ft_gateway_env *e, const char *method, const char *path, const char *token,
             const char *body, ft_http_reply *reply);
void ft_http_reply_free(ft_http_reply *r);

/* Sends raw bytes on a fresh TCP connection, reads what comes back until
 * the server closes or timeout_ms passes, into out (NUL-terminated).
 * Returns the bytes read, or -1 if it could not connect. */
long ft_http_raw(ft_gateway_env *e, const void *req, size_t len, char *out, size_t cap,
                 int timeout_ms);
/* ft_http_raw by a slow reader: a small receive buffer, and nothing read
 * for delay_ms after the request is sent. */
long ft_http_raw_slow(ft_gateway_env *e, const void *req, size_t len, char *out, size_t cap,
                      int timeout_ms, int delay_ms);
/* ft_http_raw_slow that sends req2 after the delay, before reading;
 * *closed: whether the reading ended because the server closed. */
long ft_http_raw_then(ft_gateway_env *e, const char *req, const char *req2, char *out, size_t cap,
                      int timeout_ms, int delay_ms, bool *closed);

/* Sends req (keep-alive) on one connection rounds times, each time once
 * the whole answer to the previous one has been read (as a client that
 * does not pipeline). Returns how many answers came whole before the
 * connection closed or timeout_ms passed without data (rounds when all
 * did), -1 if it could not connect. */
int ft_http_rounds(ft_gateway_env *e, const char *req, int rounds, int timeout_ms);

/* The value of a metric without labels on the gateway's /metrics, or -1
 * (no such line, or /metrics did not answer 200). */
double ft_gateway_metric(ft_gateway_env *e, const char *name);
/* A user token (an hour, iat now) signed with the stack's secret. */
char *ft_gateway_token(ft_gateway_env *e, const char *sub);

#endif
