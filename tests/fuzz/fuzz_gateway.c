/*
 * fuzz_gateway.c - feed-gateway's request handling without a socket:
 * fg_route() (route lookup, method check, bearer verification, query and
 * body parsing, the handlers) on requests built from any bytes.
 *
 * Input: byte 0 picks the method, byte 1 whether a valid bearer token of
 * user u1 goes with the request; then the path, the ?limit= value and the
 * ?before= value, one per line; the rest is the body. libwebsockets' own
 * HTTP parsing is not covered.
 *
 * The backend is a small in-memory one, defined here in place of
 * gateway/backend.c, gateway/revoked.c (no cache) and
 * backend/store_read.c: nobody is revoked, post p1
 * is u1's, feeds and follows are empty, every publish succeeds after the
 * event encodes. A crash, leak or UB is a finding; so is a response
 * without a status or a 5xx, which this backend never causes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway.h"

static fg_gateway fuzz__gw;
static fg_shared fuzz__shared;
static char *fuzz__token;
static int fuzz__store; /* its address stands for the store */

/* ------------------------------------------------------------ backend */

fp_store *fg_backend_store(fg_gateway *gw)
{
    (void)gw;
    return (fp_store *)&fuzz__store;
}

int fg_backend_store_reconnect(fg_gateway *gw)
{
    (void)gw;
    return 0;
}

int fg_backend_amqp_ping(fg_gateway *gw, const char **errstr)
{
    (void)gw;
    *errstr = "";
    return 0;
}

/* No revocation cache: every check reads the store below. */
int fg_revoked_get(fg_revoked *r, const char *uid, int64_t *before, uint64_t *gen)
{
    (void)r;
    (void)uid;
    (void)before;
    *gen = 0;
    return -ENOENT;
}

void fg_revoked_put(fg_revoked *r, const char *uid, int64_t before, uint64_t gen)
{
    (void)r;
    (void)uid;
    (void)before;
    (void)gen;
}

bool fg_publish(fg_gateway *gw, const fp_event *ev, fg_response *resp)
{
    char *body = fp_event_encode(ev);

    (void)gw;
    if (body == NULL) {
        fg_respond_internal(resp, "event encoding", -EINVAL);
        return false;
    }
    free(body);
    return true;
}

/* No publisher thread here (fg_publish above stands for it): no counters. */
int fg_publisher_render(fg_publisher *p, char **out, size_t *len, size_t *cap)
{
    (void)p;
    (void)out;
    (void)len;
    (void)cap;
    return 0;
}

/* Nor a RabbitMQ link that could be blocked. */
bool fg_publisher_blocked(fg_publisher *p, char *why, size_t len)
{
    (void)p;
    if (len > 0)
        why[0] = '\0';
    return false;
}

void fg_respond_store_error(fg_gateway *gw, fg_response *resp, int rc, const char *what)
{
    (void)gw;
    fg_respond_internal(resp, what, rc);
}

int fp_store_feed_page(fp_store *s, const char *uid, size_t limit, const char *before,
                       fp_feed_page *out)
{
    (void)s;
    (void)limit;
    (void)before;
    memset(out, 0, sizeof(*out));
    return fp_id_valid(uid) ? 0 : -EINVAL;
}

int fp_store_feed_after(fp_store *s, const char *uid, size_t limit, const char *after,
                        fp_feed_page *out)
{
    (void)s;
    (void)limit;
    memset(out, 0, sizeof(*out));
    out->after = FP_FEED_AFTER_MISSING;
    return fp_id_valid(uid) && fp_id_valid(after) ? 0 : -EINVAL;
}

int fp_store_post_author(fp_store *s, const char *post_id, char author[FP_ID_BUFSZ])
{
    (void)s;
    if (strcmp(post_id, "p1") != 0)
        return -ENOENT;
    snprintf(author, FP_ID_BUFSZ, "u1");
    return 0;
}

int fp_store_following(fp_store *s, const char *uid, char (**ids)[FP_ID_BUFSZ], size_t *n)
{
    (void)s;
    *ids = NULL;
    *n = 0;
    return fp_id_valid(uid) ? 0 : -EINVAL;
}

int fp_store_follow_stamp(fp_store *s, const char *follower, const char *followee, int64_t *at)
{
    (void)s;
    *at = 1;
    return fp_id_valid(follower) && fp_id_valid(followee) ? 0 : -EINVAL;
}

int fp_store_revoked_before(fp_store *s, const char *uid, int64_t *before)
{
    (void)s;
    *before = 0;
    return fp_id_valid(uid) ? 0 : -EINVAL;
}

int fp_store_ping(fp_store *s)
{
    (void)s;
    return 0;
}

int fp_store_clients_alive(fp_store *s, const long long *ids, size_t n, bool *alive)
{
    size_t i;

    (void)s;
    (void)ids;
    for (i = 0; i < n; i++)
        alive[i] = true;
    return 0;
}

const char *fp_store_errstr(const fp_store *s)
{
    (void)s;
    return "";
}

int fp_store_ribbon_get(fp_store *s, char **ribbon_json)
{
    (void)s;
    *ribbon_json = strdup("[]");
    return *ribbon_json != NULL ? 0 : -ENOMEM;
}

int fp_store_stats_get(fp_store *s, fp_stat_sample **out, size_t *n)
{
    (void)s;
    *out = NULL;
    *n = 0;
    return 0;
}

/* ------------------------------------------------------------ the target */

/* Writes a fixed secret to a temporary file for the verifier and the dev
 * token signer, configures the gateway from its defaults, and mints u1's
 * token. Aborts on failure: the target cannot run without them. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fp_jwt_config jc = {.alg = FP_JWT_HS256, .leeway_s = 5};
    fp_jwt_mint_claims c = {.sub = "u1", .iat = 0, .exp = 4102444800};
    char path[64], err[512];
    FILE *f;

    (void)argc;
    (void)argv;
    snprintf(path, sizeof(path), "/tmp/fuzz_gateway.%ld.secret", (long)getpid());
    f = fopen(path, "w");
    if (f == NULL || fputs("fuzz-secret-fuzz-secret-fuzz-secret!", f) < 0 || fclose(f) != 0)
        abort();
    setenv("FEEDPUSH_JWT_KEY", path, 1);
    setenv("FEEDPUSH_JWT_SIGNING_KEY", path, 1);
    setenv("FEEDPUSH_DEV_MODE", "on", 1);
    jc.key_file = path;
    if (fg_config_load(&fuzz__gw.cfg, NULL, err, sizeof(err)) != 0 ||
        fp_jwt_verifier_new(&jc, &fuzz__gw.verifier, err, sizeof(err)) != 0 ||
        fp_jwt_load_key(FP_JWT_HS256, path, &fuzz__gw.signing_key, &fuzz__gw.signing_key_len, err,
                        sizeof(err)) != 0 ||
        fp_jwt_mint(FP_JWT_HS256, fuzz__gw.signing_key, fuzz__gw.signing_key_len, &c, &fuzz__token,
                    err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_gateway: %s\n", err);
        abort();
    }
    unlink(path);
    fuzz__gw.alg = FP_JWT_HS256;
    if (fg_metrics_init(&fuzz__shared.metrics) != 0 ||
        pthread_mutex_init(&fuzz__shared.lock, NULL) != 0)
        abort();
    fuzz__gw.shared = &fuzz__shared;
    fg_health_refresh(&fuzz__gw); /* both up: /healthz is 200 */
    return 0;
}

/* The next line of [*p, end) into dst (cap bytes, truncated), *p past it.
 * Returns false when it did not fit. */
static bool fuzz__line(const char **p, const char *end, char *dst, size_t cap)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = (size_t)((nl != NULL ? nl : end) - *p);
    bool fits = n < cap;

    if (!fits)
        n = cap - 1;
    memcpy(dst, *p, n);
    dst[n] = '\0';
    *p = nl != NULL ? nl + 1 : end;
    return fits;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data + 2, *end = (const char *)data + size;
    fg_response resp = {0};
    fg_request req;
    char *body;

    if (size < 2)
        return 0;
    memset(&req, 0, sizeof(req));
    req.method = (fg_method)(data[0] % FG_METHOD_OTHER + 1);
    req.bearer = (data[1] & 1) ? fuzz__token : NULL;
    fuzz__line(&p, end, req.path, sizeof(req.path));
    req.bad_query = !fuzz__line(&p, end, req.limit, sizeof(req.limit));
    req.bad_query |= !fuzz__line(&p, end, req.before, sizeof(req.before));
    req.body_len = (size_t)(end - p);
    body = malloc(req.body_len + 1);
    if (body == NULL)
        return 0;
    memcpy(body, p, req.body_len);
    body[req.body_len] = '\0';
    req.body = body;
    fg_route(&fuzz__gw, &req, &resp);
    if (resp.status < 200 || resp.status >= 500)
        abort();
    free(resp.body);
    free(body);
    return 0;
}
