/*
 * gateway.h - private header of feed-gateway.
 *
 *   main.c      wiring: config, keys, the HTTP workers, the health loop,
 *               signals
 *   config.c    gateway.conf + FEEDPUSH_* environment
 *   http.c      libwebsockets: http_workers threads, each serving its own
 *               connections on the shared port with its own Redis link;
 *               requests in (method, path, headers, body), responses out,
 *               the static mounts of the browser client
 *   routes.c    the route table: path + method -> handler, 404/405
 *   auth.c      bearer tokens (common/fp_jwt) and revocation
 *   revoked.c   the revocation cache, kept by the revocations channel;
 *               the thread of the gateway's subscriptions
 *   bodies.c    the post body cache, kept by Redis's invalidations
 *   backend.c   the Redis store and the RabbitMQ publisher (batches),
 *               reconnects
 *   posts.c     POST/DELETE /api/v1/posts          follows.c  /api/v1/follows
 *   reads.c     GET /api/v1/feed, /api/v1/ribbon (and POST ribbon)
 *   dev.c       GET /api/v1/config, POST /api/v1/dev/token
 *   health.c    GET /healthz (from the health loop's state), GET /metrics,
 *               the health loop                    metrics.c  counters
 *   prom.c      the Prometheus text format: a growing buffer, plain values
 *   response.c  JSON responses and errors
 */
#ifndef FEED_GATEWAY_H
#define FEED_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <pthread.h>

#include <cjson/cJSON.h>

#include "fp_amqp.h"
#include "fp_event.h"
#include "fp_jwt.h"
#include "fp_time.h"
#include "fp_store.h"

typedef struct {
    char *http_host;
    int64_t http_port;
    int64_t http_workers;
    char *tls_cert;
    char *tls_key;
    char *www_dir;
    char *mqtt_js_dir;
    char *mqtt_ws_urls;
    fp_amqp_options amqp; /* the amqp_* keys */
    fp_redis_options redis; /* the redis_* keys */
    char *jwt_alg;
    char *jwt_key;
    char *jwt_issuer;
    char *jwt_audience;
    int64_t jwt_leeway;
    int64_t jwt_max_lifetime;
    bool jwt_require_iat;
    bool dev_mode;
    char *jwt_signing_key;
    int64_t dev_token_ttl;
    int64_t max_body_bytes;
    int64_t body_timeout_ms;
    int64_t max_page_bytes;
    int64_t send_timeout_ms;
    bool keep_alive;
    bool revocation_cache;
    int64_t post_cache_mb;
    int64_t publish_batch;
    int64_t timeout_ms;
    int64_t feed_length; /* the bridges' (catch-up reads: fp_store's feed_length) */
    char *log_level;
} fg_config;

/* Loads path (NULL = none) and the environment. 0 or -errno, err filled. */
int fg_config_load(fg_config *c, const char *path, char *err, size_t errlen);
void fg_config_free(fg_config *c);
void fg_config_usage(FILE *out);

/* ------------------------------------------------------------ metrics */

typedef enum {
    FG_ROUTE_CONFIG,
    FG_ROUTE_DEV_TOKEN,
    FG_ROUTE_POSTS,
    FG_ROUTE_POST,
    FG_ROUTE_FOLLOWS,
    FG_ROUTE_FOLLOW,
    FG_ROUTE_FEED,
    FG_ROUTE_RIBBON,
    FG_ROUTE_HEALTHZ,
    FG_ROUTE_METRICS,
    FG_ROUTE_STATS,
    FG_ROUTE_UNKNOWN, /* no route matched (404) */
    FG_ROUTE__COUNT
} fg_route_id;

/* The route's path pattern, the `route` label ("/api/v1/posts/{id}"). */
const char *fg_route_label(fg_route_id r);

typedef enum {
    FG_GET = 1,
    FG_POST,
    FG_PUT,
    FG_DELETE,
    FG_HEAD,
    FG_PATCH,
    FG_OPTIONS,
    FG_METHOD_OTHER
} fg_method;

#define FG_METRICS_BUCKETS 12
#define FG_METRICS_METHODS 9      /* fg_method values, 0 (none) to FG_METHOD_OTHER */
#define FG_METRICS_STATUS_MIN 100 /* statuses 100..599 are counted */
#define FG_METRICS_STATUSES 500

/* The gateway's request counters, shared by the workers (lock). One
 * counter per (route, method, status), every one of them: no request,
 * however odd, can push another series out. */
typedef struct {
    pthread_mutex_t lock;
    uint64_t requests[FG_ROUTE__COUNT][FG_METRICS_METHODS][FG_METRICS_STATUSES];
    uint64_t overflow; /* requests with a status outside 100..599 (none are made) */
    uint64_t cut;      /* answers whose connection ended before they were sent whole */
    uint64_t buckets[FG_ROUTE__COUNT][FG_METRICS_BUCKETS];
    uint64_t count[FG_ROUTE__COUNT];
    double sum_s[FG_ROUTE__COUNT];
} fg_metrics;

/* Makes m empty, its lock ready. 0 or -errno. */
int fg_metrics_init(fg_metrics *m);
void fg_metrics_destroy(fg_metrics *m);
/* Counts one finished request that took us microseconds. */
void fg_metrics_observe(fg_metrics *m, fg_route_id route, fg_method method, int status, int64_t us);
/* printf onto the growing buffer *out (*len bytes used of *cap; *out may
 * start NULL), always NUL-terminated. 0 or -ENOMEM. */
int fg_buf_printf(char **out, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Appends the gateway's series in Prometheus text format to out. 0 or
 * -ENOMEM. */
int fg_metrics_render(fg_metrics *m, char **out, size_t *len, size_t *cap);
/* Every request counted so far. */
uint64_t fg_metrics_requests(fg_metrics *m);
/* Counts an answer whose connection ended before it was sent whole. */
void fg_metrics_cut(fg_metrics *m);

/* One value of /metrics: its name, help text, and whether it is a gauge
 * (else a counter). */
typedef struct {
    const char *name;
    const char *help;
    bool gauge;
    uint64_t value;
} fg_metric_value;

/* Appends n values in Prometheus text format to out (as
 * fg_metrics_render). 0 or -ENOMEM. */
int fg_metrics_render_values(const fg_metric_value *v, size_t n, char **out, size_t *len,
                             size_t *cap);

/* ------------------------------------------------------------ the gateway */

typedef struct fg_publisher fg_publisher;
typedef struct fg_revoked fg_revoked;
typedef struct fg_bodies fg_bodies;

/* What every worker reads: the counters, the publisher, and the backends'
 * health as the health loop last saw it (lock). */
typedef struct {
    fg_metrics metrics;
    fg_publisher *publisher; /* NULL: each gateway publishes on its own link */
    fg_revoked *revoked;     /* NULL: no subscriber thread */
    fg_bodies *bodies;       /* NULL: no post body cache */
    pthread_mutex_t lock;
    bool health_known, redis_ok, amqp_ok;
    int64_t health_us; /* when the loop last looked (fp_time_mono_us) */
} fg_shared;

/*
 * One set of backend links and what a request handler needs. main() owns
 * the configuration, the keys and the shared state; each HTTP worker (a
 * store), the publisher thread (a RabbitMQ link) and the health loop (both)
 * has a copy of its own: hiredis and rabbitmq-c connections are used by
 * one thread.
 */
typedef struct {
    fg_config cfg; /* the strings are main()'s, shared read-only */
    fp_store *store;
    fp_amqp *amqp;
    int64_t store_retry_us; /* no reconnect attempt before this (fail fast) */
    int64_t amqp_retry_us;
    bool quiet; /* a worker or the publisher: outages logged at debug level (the health loop warns) */
    fp_jwt_verifier *verifier;
    fp_jwt_alg alg;
    unsigned char *signing_key; /* dev mode only */
    size_t signing_key_len;
    fg_shared *shared;
} fg_gateway;


/* Opens (or tries to open) Redis when store and RabbitMQ when amqp; a
 * backend that is down is logged once and retried on use. Returns 0 or
 * -ENOMEM / -EINVAL. */
int fg_backend_open(fg_gateway *gw, bool store, bool amqp);
void fg_backend_close(fg_gateway *gw);
/* dst becomes a copy of gw for a thread of its own: the same config,
 * keys and shared state, no links yet (fg_backend_open), outages logged
 * at debug level (the health loop warns). */
void fg_backend_copy(fg_gateway *dst, const fg_gateway *gw);
/* The store, reconnected first when its last call broke the connection.
 * NULL when Redis is down (the caller answers 503). */
fp_store *fg_backend_store(fg_gateway *gw);
/* Reconnects the store after a call returned -EIO. 0 or -EIO. */
int fg_backend_store_reconnect(fg_gateway *gw);
/*
 * Encodes ev, publishes it to feed.events (routing key = its type) and
 * waits for RabbitMQ's confirm: through the shared publisher when there is
 * one, else on gw's link; on a broken link it reconnects and tries once
 * more. Returns 0, -EINVAL (ev invalid) or -EIO (RabbitMQ down).
 */
int fg_backend_publish(fg_gateway *gw, const fp_event *ev);
/* The revocation cache (revoked.c) and the thread of the gateway's
 * subscriptions, with a Redis link of its own: the revocations channel
 * when cfg.revocation_cache is on, Redis's invalidations for
 * gw->shared->bodies when there is one. 0 or a negative errno. */
int fg_revoked_start(fg_revoked **out, const fg_gateway *gw);
void fg_revoked_stop(fg_revoked *r);
/* uid's revoked:<uid> from the cache: 0 with *before set, or -ENOENT (a
 * miss, or no cache: r NULL or its subscription down), then *gen says
 * whether the value read from Redis may be kept: pass it to
 * fg_revoked_put. */
int fg_revoked_get(fg_revoked *r, const char *uid, int64_t *before, uint64_t *gen);
void fg_revoked_put(fg_revoked *r, const char *uid, int64_t before, uint64_t gen);

/* The post body cache (bodies.c), of at most max_bytes. 0 or -ENOMEM. */
int fg_bodies_new(fg_bodies **out, size_t max_bytes);
void fg_bodies_free(fg_bodies *b);
/* What the workers' stores read through (fp_store_set_body_cache). */
const fp_body_cache *fg_bodies_cache(fg_bodies *b);
/* Empties the cache; from now on it keeps bodies read with tracking
 * redirected to redirect (the subscriber's client id), or none when
 * redirect is 0 (the subscriber is down). */
void fg_bodies_live(fg_bodies *b, long long redirect);
/* Drops the bodies of ids, and every read still under way may not keep
 * what it read. */
void fg_bodies_invalidate(fg_bodies *b, char (*ids)[FP_ID_BUFSZ], size_t n);
/* Drops every body (Redis was flushed). */
void fg_bodies_flush(fg_bodies *b);
/* The links whose reads the cache keeps, at most (more are not kept). */
#define FG_BODIES_READERS_MAX 256
/* Asks Redis, on st, whether the links whose reads the cache keeps are
 * still connected, and empties it when one is gone (health loop). */
void fg_bodies_check_readers(fg_bodies *b, fp_store *st);
/* Appends the cache's counters in Prometheus text format to out (as
 * fg_metrics_render; nothing when b is NULL). 0 or -ENOMEM. */
int fg_bodies_render(fg_bodies *b, char **out, size_t *len, size_t *cap);
/* Is body exactly one JSON object, nothing after it, by fp_json's strict
 * rules? A body a feed page copies as it is must be valid JSON: anyone
 * may write post:<id>, and cJSON alone takes control bytes, raw or around
 * the object, that a browser's JSON.parse refuses. */
bool fg_body_is_object(const char *body);
/* FNV-1a of a NUL-terminated id. */
uint64_t fg_id_hash(const char *id);

/* Starts the publisher thread with a RabbitMQ link of its own (a copy of
 * gw's settings; a link that is down is retried on use). 0 or -errno. */
int fg_publisher_start(fg_publisher **out, const fg_gateway *gw);
/* Publishes what is queued, ends the thread, frees p (NULL: nothing). */
void fg_publisher_stop(fg_publisher *p);
/* Appends the publisher's counters (events, messages, batches) in
 * Prometheus text format to out (as fg_metrics_render; nothing when p is
 * NULL). 0 or -ENOMEM. */
int fg_publisher_render(fg_publisher *p, char **out, size_t *len, size_t *cap);
/* Whether RabbitMQ blocks the publisher's link (a resource alarm), as the
 * publisher last saw it; why gets its reason ("" when not). False for a
 * NULL p. */
bool fg_publisher_blocked(fg_publisher *p, char *why, size_t len);
/* RabbitMQ answers (a passive declare on the publisher link). 0 or -EIO;
 * errstr says why. */
int fg_backend_amqp_ping(fg_gateway *gw, const char **errstr);

/* Runs a store call; on -EIO reconnects once and runs it again. */
#define FG_STORE_CALL(gw, rc, call)                                                                \
    do {                                                                                           \
        (rc) = (call);                                                                             \
        if ((rc) == -EIO && fg_backend_store_reconnect(gw) == 0)                                   \
            (rc) = (call);                                                                         \
    } while (0)

/* ------------------------------------------------------------ requests */

const char *fg_method_name(fg_method m);

typedef struct {
    fg_method method;
    char path[512];    /* decoded, without the query */
    const char *param; /* the {id} segment of the route, inside path */
    char limit[16];    /* ?limit= ("" when absent) */
    char before[FP_ID_BUFSZ + 1];
    char after[FP_ID_BUFSZ + 1];
    bool bad_query;     /* a query argument too long to hold */
    const char *bearer; /* the Authorization bearer token, or NULL */
    const char *body;   /* NUL-terminated */
    size_t body_len;
    fp_jwt_claims caller; /* filled by the router for authenticated routes */
} fg_request;

typedef struct {
    int status;
    char *body; /* malloc'd */
    size_t len;
    const char *content_type;
    const char *allow; /* Allow header for 405 */
} fg_response;

/* The route a path belongs to (FG_ROUTE_UNKNOWN when none), for counting
 * requests refused before routing. */
fg_route_id fg_route_lookup(const char *path);
/* Routes req and fills resp (always: errors become JSON error bodies). */
fg_route_id fg_route(fg_gateway *gw, fg_request *req, fg_response *resp);

/* A request handler: fills resp (always; errors become JSON error
 * bodies). The route table (routes.c) maps paths and methods to these. */
typedef void fg_handler(fg_gateway *gw, const fg_request *req, fg_response *resp);

fg_handler fg_posts_create, fg_posts_delete; /* posts.c */
fg_handler fg_follows_put, fg_follows_delete, fg_follows_list; /* follows.c */
fg_handler fg_reads_feed, fg_reads_ribbon, fg_reads_ribbon_push; /* reads.c */
fg_handler fg_dev_config, fg_dev_token; /* dev.c */
/* A dev token for sub, as POST /api/v1/dev/token gives it (its expiry in
 * *exp). 0 with a malloc'd *token, or -errno with err set. */
int fg_dev_mint(const fg_gateway *gw, const char *sub, char **token, int64_t *exp, char *err,
                size_t errlen);
fg_handler fg_health_check, fg_health_metrics, fg_health_stats; /* health.c */

/* How a route authenticates its caller (routes.c). */
typedef enum {
    FG_AUTH_NONE,  /* open */
    FG_AUTH_FULL,  /* fg_auth_check: the token, then revoked:<sub> */
    FG_AUTH_TOKEN, /* the token only: the handler reads revoked:<sub> with its
                    * own Redis call and must pass fg_auth_not_revoked before
                    * it answers with data (the feed: one round trip) */
} fg_auth_mode;

/*
 * Verifies req->bearer and checks revocation. Returns 0 with *claims
 * filled, or fills resp with 401 (or 503 when Redis is down) and returns
 * -1.
 */
int fg_auth_check(fg_gateway *gw, const fg_request *req, fp_jwt_claims *claims, fg_response *resp);
/* Whether the verified claims' user was revoked since they were issued
 * (fg_auth_check's second half: the revocation cache, else Redis). 0, or
 * -1 with a 401 (revoked) or a 503 (Redis) in resp. */
int fg_auth_revocation(fg_gateway *gw, const fp_jwt_claims *claims, fg_response *resp);
/* The token alone (fg_auth_check's first half). 0, or -1 with a 401. */
int fg_auth_token(fg_gateway *gw, const fg_request *req, fp_jwt_claims *claims, fg_response *resp);
/* The second half: a token issued at or before before (revoked:<sub>, 0 =
 * never revoked) is refused. 0, or -1 with a 401. */
int fg_auth_not_revoked(const fp_jwt_claims *claims, int64_t before, fg_response *resp);

/* ------------------------------------------------------------ responses */

/* resp = status with obj printed as the body; obj is consumed (freed). */
void fg_respond_json(fg_response *resp, int status, cJSON *obj);
/* resp = status with body (malloc'd, len bytes; consumed) of content_type
 * (a static string): for a body built as text, not as a cJSON tree. */
void fg_respond_body(fg_response *resp, int status, const char *content_type, char *body,
                     size_t len);
/* resp = {"error":code,"message":...}. */
void fg_respond_error(fg_response *resp, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* resp = 503 naming the backend that is down (errstr goes to the log only
 * once per outage, not to the client). */
void fg_respond_unavailable(fg_response *resp, const char *what);
/* fg_backend_publish, answering 503 (RabbitMQ down, or blocking
 * publishes: a resource alarm) or 500 on failure. True when the event
 * went. */
bool fg_publish(fg_gateway *gw, const fp_event *ev, fg_response *resp);
/* Answers a failed store call: 503 for -EIO, else 500 with the store's
 * errstr logged. */
void fg_respond_store_error(fg_gateway *gw, fg_response *resp, int rc, const char *what);
/* resp = 500, logged. */
void fg_respond_internal(fg_response *resp, const char *what, int rc);
/* Parses the body as one JSON object; on failure fills resp with 400 and
 * returns NULL. An empty body gives an empty object when allow_empty. */
cJSON *fg_body_object(const fg_request *req, fg_response *resp, bool allow_empty);

/* ------------------------------------------------------------ the server */

/* Looks at Redis and RabbitMQ through gw's links and stores what it saw in
 * gw->shared for GET /healthz. */
void fg_health_refresh(fg_gateway *gw);

/* Starts the publisher thread and cfg.http_workers workers, each a copy
 * of gw with a Redis link of its own, serving HTTP on the shared port,
 * and runs the health loop on gw (every FG_HEALTH_PERIOD_MS) until *stop
 * becomes non-zero; then stops the workers and the publisher. 0 or -1
 * (could not listen: logged). */
#define FG_HEALTH_PERIOD_MS 1000
int fg_http_run(fg_gateway *gw, volatile int *stop);

#endif
