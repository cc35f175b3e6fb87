/*
 * http.c - feed-gateway's HTTP/1.1 server on libwebsockets.
 *
 * http_workers workers, each a thread with an lws context of its own, a
 * listening socket of its own on the shared port (SO_REUSEPORT: the kernel
 * spreads the connections over them; lws 4.1 sets no SO_REUSEPORT itself,
 * so the worker accepts and hands each connection to lws) and a Redis
 * link of its own, so a request waiting for Redis or for its event's
 * confirm holds up only its worker's other connections. Events go through
 * the one publisher thread (backend.c), which keeps many in flight and
 * answers each worker when its event is confirmed; token checks take
 * revocations from the cache (revoked.c) when it is on. The main thread
 * meanwhile runs the health loop. Mounts: /api, /healthz
 * and /metrics go to our protocol callback; /vendor/ serves MQTT.js from
 * mqtt_js_dir and / serves the browser client from www_dir (lws file
 * mounts, which refuse paths escaping their directory). Anything else
 * also reaches the callback and gets a JSON 404.
 *
 * A request is read whole before it is routed: method, decoded path,
 * query arguments, the bearer token and a body of at most max_body_bytes
 * (a larger Content-Length is answered 413 at once and the connection
 * closed; a body sent with Transfer-Encoding is 411, a Content-Length that
 * is not plain decimal digits 400, and so is a decoded path with a control
 * character; a body not whole body_timeout_ms after the headers is 408,
 * however it trickles in). A POST, PUT or PATCH without Content-Length
 * has no body (RFC 9112); it is answered, then its connection closed,
 * because lws would read what follows on it as that request's body. The
 * answer is written whole from the callback that completes the request
 * (lws buffers what the socket does not take), so pipelined requests are
 * answered in order. After it the connection is closed once the answer is
 * out, however long that takes, unless keep_alive is on (then only when
 * the client sent Connection: close): with keep_alive off (the default)
 * no connection serves a second request, files included
 * (http__second_request), so nothing lws 4.1 misreads into a request's
 * body is ever run (docs/gateway.md, "Known gaps"). The answer to a HEAD
 * has no body. Every response carries the vhost headers (nosniff, CSP,
 * ...).
 */
#define _GNU_SOURCE /* accept4 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <libwebsockets.h>
#include <openssl/ssl.h>

#include "fp_log.h"
#include "gateway.h"

#define HTTP__PROTOCOL "feed-gateway-http"
#define HTTP__LISTEN "feed-gateway-listen"
#define HTTP__BACKLOG 1024
#define HTTP__BEARER "Bearer "
#define HTTP__MAX_WORKERS 64 /* the http_workers maximum */
#define HTTP__TX_MAX (1024 * 1024) /* one send() of an answer at most */
#define HTTP__HEADERS_MAX 2048     /* room for an answer's status line and headers */
#define HTTP__CONNECT_TIMEOUT_S 5  /* a CONNECT's answer must be taken by then */
#define HTTP__ACCEPT_PAUSE_US 100000 /* out of descriptors: accept again after */

typedef struct {
    fg_request req;
    fg_response resp;
    char *auth; /* Authorization header value, malloc'd */
    char *body; /* malloc'd, NUL-terminated */
    size_t body_len;
    size_t body_cap;
    int64_t t0_us;
    fg_route_id route;
    bool responding; /* resp is ready */
    bool close_after;
    bool draining;      /* the answer is written, lws still sending it */
    bool awaiting_body; /* the body timer runs */
} http__session;

/* A worker: its links (gw), its lws context (the user pointer is the
 * worker) and the mounts the context points to. */
typedef struct {
    fg_gateway gw;
    struct lws_context *ctx;
    struct lws_http_mount mounts[5];
    int listen_fd;
    bool accept_paused; /* out of descriptors: accepting waits (http__accept_pause) */
    bool completing;    /* lws is completing a transaction (http__completed) */
    pthread_t tid;
    bool started;
} http__worker;

static http__worker http__workers[HTTP__MAX_WORKERS];
static atomic_bool http__quit;     /* the workers are to end */
/* With HTTPS, the TLS client context every worker's lws context is given
 * (http__client_ctx_get): lws 4.1 would otherwise make one per worker,
 * each loading the system's CA certificates, and never free 31 of 32 of
 * them (LeakSanitizer counted 21.6 MB at exit). The gateway makes no TLS
 * client connection through lws: this one loads nothing. */
static SSL_CTX *http__client_ctx;

/* The links of the worker serving wsi. */
static fg_gateway *http__gw(struct lws *wsi)
{
    return &((http__worker *)lws_context_user(lws_get_context(wsi)))->gw;
}

/* Frees a session's request and response, ready for the next request on
 * the same (kept-alive) connection. */
static void http__reset(http__session *s)
{
    free(s->auth);
    free(s->body);
    free(s->resp.body);
    memset(s, 0, sizeof(*s));
}

static fg_method http__method(struct lws *wsi, enum lws_token_indexes *tok)
{
    static const struct {
        enum lws_token_indexes t;
        fg_method m;
    } map[] = {{WSI_TOKEN_GET_URI, FG_GET},        {WSI_TOKEN_POST_URI, FG_POST},
               {WSI_TOKEN_PUT_URI, FG_PUT},        {WSI_TOKEN_DELETE_URI, FG_DELETE},
               {WSI_TOKEN_HEAD_URI, FG_HEAD},      {WSI_TOKEN_PATCH_URI, FG_PATCH},
               {WSI_TOKEN_OPTIONS_URI, FG_OPTIONS}};
    size_t i;

    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (lws_hdr_total_length(wsi, map[i].t) > 0) {
            *tok = map[i].t;
            return map[i].m;
        }
    }
    return FG_METHOD_OTHER;
}

/* Copies one query value (after "name=") into dst; too long marks the
 * request bad. */
static void http__arg(fg_request *req, const char *frag, const char *name, char *dst, size_t cap)
{
    size_t n = strlen(name);

    if (strncmp(frag, name, n) != 0 || frag[n] != '=')
        return;
    if (strlen(frag + n + 1) >= cap) {
        req->bad_query = true;
        return;
    }
    snprintf(dst, cap, "%s", frag + n + 1);
}

/*
 * Reads the query arguments we know (limit, before, after), each of them
 * wherever it stands; others are ignored whatever their length, and so
 * are empty ones (the "" between "&&"). One of ours too long for its
 * field marks the request bad. 0 or -ENOMEM.
 */
static int http__query(struct lws *wsi, fg_request *req)
{
    int i, len, total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    char *frag;

    if (total <= 0)
        return 0;
    frag = malloc((size_t)total + 1); /* room for the longest argument */
    if (frag == NULL)
        return -ENOMEM;
    for (i = 0;; i++) {
        len = lws_hdr_copy_fragment(wsi, frag, total + 1, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (len < 0)
            break; /* no argument i: the last one was read */
        http__arg(req, frag, "limit", req->limit, sizeof(req->limit));
        http__arg(req, frag, "before", req->before, sizeof(req->before));
        http__arg(req, frag, "after", req->after, sizeof(req->after));
    }
    free(frag);
    return 0;
}

/* The bearer token, if the Authorization header has one. A header longer
 * than any acceptable token is kept as "" (refused as malformed). */
static int http__auth(struct lws *wsi, http__session *s)
{
    int len = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    size_t pre = strlen(HTTP__BEARER);

    if (len <= 0)
        return 0;
    if ((size_t)len > FP_JWT_MAX_BYTES + pre + 16) {
        s->req.bearer = "";
        return 0;
    }
    s->auth = malloc((size_t)len + 1);
    if (s->auth == NULL)
        return -ENOMEM;
    if (lws_hdr_copy(wsi, s->auth, len + 1, WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
        return -EINVAL;
    if (strncasecmp(s->auth, HTTP__BEARER, pre) == 0)
        s->req.bearer = s->auth + pre;
    return 0;
}

static int http__send(struct lws *wsi, http__session *s);

/*
 * The answer in s->resp is ready. With now (from LWS_CALLBACK_HTTP or
 * _BODY_COMPLETION) it is written at once and the transaction completed:
 * when a pipelined request is already in lws's buffer, lws drops and
 * binds the protocol again for it as soon as this callback returns, which
 * frees the session, so an answer left for the writeable callback would
 * be lost. Without now (from a timer) it goes out from the writeable
 * callback. Returns 0, or -1 to close the connection.
 */
static int http__answer(struct lws *wsi, http__session *s, bool now)
{
    s->responding = true;
    if (now)
        return http__send(wsi, s);
    lws_callback_on_writable(wsi);
    return 0;
}

/* Routes the complete request and answers it. 0 or -1 (close). */
static int http__dispatch(struct lws *wsi, http__session *s)
{
    s->req.body = s->body != NULL ? s->body : "";
    s->req.body_len = s->body_len;
    s->route = fg_route(http__gw(wsi), &s->req, &s->resp);
    return http__answer(wsi, s, true);
}

/* Answers with an error, without routing (the request is unusable); now
 * as for http__answer. 0 or -1 (close). */
static int http__refuse(struct lws *wsi, http__session *s, int status, const char *code,
                        const char *message, bool close_after, bool now)
{
    fg_respond_error(&s->resp, status, code, "%s", message);
    s->route = fg_route_lookup(s->req.path);
    s->close_after = s->close_after || close_after;
    return http__answer(wsi, s, now);
}

/* The longest Content-Length value libwebsockets 4.1 reads (into 32
 * bytes, less one); it ignores a longer one and then expects a POST's
 * body to be 100 MiB long, and a GET's to be none. */
#define HTTP__LENGTH_MAX 30
#define HTTP__STR_(x) #x
#define HTTP__STR(x) HTTP__STR_(x)

/*
 * The request's Content-Length: 0 when there is none, its value when it
 * is decimal digits and nothing else (LLONG_MAX when that is past 18
 * significant digits: over any max_body_bytes, so 413), -1 for anything
 * else (a sign, a space, a suffix), -2 for a value over HTTP__LENGTH_MAX
 * bytes (leading zeros count): both are answered with 400.
 */
static long long http__content_length(struct lws *wsi)
{
    char num[HTTP__LENGTH_MAX + 1];
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    long long v = 0;
    int i, first = 0;

    if (n == 0)
        return 0;
    if (n > HTTP__LENGTH_MAX)
        return -2;
    if (n < 0 || lws_hdr_copy(wsi, num, sizeof(num), WSI_TOKEN_HTTP_CONTENT_LENGTH) != n)
        return -1;
    for (i = 0; i < n; i++) {
        if (num[i] < '0' || num[i] > '9')
            return -1;
    }
    while (first < n - 1 && num[first] == '0')
        first++;
    if (n - first > 18)
        return LLONG_MAX;
    for (i = first; i < n; i++)
        v = v * 10 + (num[i] - '0');
    return v;
}

/* Does the decoded path of n bytes hold a control character (a %0d, a
 * %00 that ends the string early, ...)? */
static bool http__path_has_control(const char *path, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f)
            return true;
    }
    return false;
}

/* Is the request HTTP/1.1 (as lws reads the version: else 1.0)? */
static bool http__is_11(struct lws *wsi)
{
    char ver[16];

    return lws_hdr_copy(wsi, ver, sizeof(ver), WSI_TOKEN_HTTP) > 7 && ver[5] == '1' &&
           ver[7] == '1';
}

/*
 * Does the connection close after this answer? As lws decides it (and
 * acts on it when the transaction completes): HTTP/1.1 keeps it open
 * unless "Connection: close", HTTP/1.0 closes it unless the header is
 * "keep-alive" (the whole value, any case). Also when the header lists
 * "close" among other tokens, which lws does not see: the gateway closes
 * those itself, and those of a header over 255 bytes.
 */
static bool http__wants_close(struct lws *wsi)
{
    char v[256];
    int i, n;
    bool http11 = http__is_11(wsi);

    if (lws_hdr_total_length(wsi, WSI_TOKEN_CONNECTION) >= (int)sizeof(v))
        return true; /* a list of tokens too long to read: closed, to be safe */
    n = lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_CONNECTION);

    for (i = 0; i < n; i++)
        v[i] = (char)tolower((unsigned char)v[i]);
    if (n > 0 && strstr(v, "close") != NULL)
        return true;
    return !http11 && !(n > 0 && strcmp(v, "keep-alive") == 0);
}

/*
 * A request with a body that says "Expect: 100-continue" (curl sends it
 * before a larger body, then waits up to a second for it) gets the interim
 * "100 Continue" once its headers passed the checks, as RFC 9110 10.1.1
 * asks (of HTTP/1.1 requests); lws 4.1 does not send it. Other
 * expectations are ignored.
 * Returns 0, or -1 when the write failed (close).
 */
static int http__continue(struct lws *wsi)
{
    static const char interim[] = "HTTP/1.1 100 Continue\r\n\r\n";
    unsigned char buf[LWS_PRE + sizeof(interim)];
    char v[32];

    /* An HTTP/1.0 client could take the interim answer for the final
     * one: RFC 9110 has the server ignore the expectation then. */
    if (!http__is_11(wsi) || lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_HTTP_EXPECT) <= 0 ||
        strcasecmp(v, "100-continue") != 0)
        return 0;
    memcpy(buf + LWS_PRE, interim, sizeof(interim) - 1);
    if (lws_write(wsi, buf + LWS_PRE, sizeof(interim) - 1, LWS_WRITE_RAW) !=
        (int)sizeof(interim) - 1)
        return -1;
    return 0;
}

/*
 * LWS_CALLBACK_HTTP: the request line and headers are in. Returns what
 * the callback returns (0, or -1 to drop the connection).
 */
static int http__on_request(struct lws *wsi, http__session *s)
{
    const fg_config *cfg = &http__gw(wsi)->cfg;
    enum lws_token_indexes tok = WSI_TOKEN_GET_URI;
    long long clen;
    int len;

    http__reset(s);
    s->t0_us = fp_time_mono_us();
    /* keep_alive off: no request is read after this one on the
     * connection, so none can hide in its body (docs/gateway.md). */
    s->close_after = !cfg->keep_alive || http__wants_close(wsi);
    s->req.method = http__method(wsi, &tok);
    if (s->req.method == FG_METHOD_OTHER) {
        return http__refuse(wsi, s, 405, "method_not_allowed", "unsupported method", true, true);
    }
    len = lws_hdr_total_length(wsi, tok);
    if (len < 0 || (size_t)len >= sizeof(s->req.path)) {
        return http__refuse(wsi, s, 414, "uri_too_long", "the path is too long", true, true);
    }
    len = lws_hdr_copy(wsi, s->req.path, sizeof(s->req.path), tok);
    if (len < 0)
        return -1;
    if (http__path_has_control(s->req.path, len)) {
        return http__refuse(wsi, s, 400, "bad_request", "the path has a control character", true,
                            true);
    }
    if (http__query(wsi, &s->req) != 0 || http__auth(wsi, s) != 0)
        return -1;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        return http__refuse(wsi, s, 411, "length_required", "send the body with a Content-Length",
                            true, true);
    }
    clen = http__content_length(wsi);
    if (clen == -2) {
        return http__refuse(
            wsi, s, 400, "bad_request",
            "Content-Length is longer than " HTTP__STR(HTTP__LENGTH_MAX) " characters", true, true);
    }
    if (clen < 0) {
        return http__refuse(wsi, s, 400, "bad_request", "Content-Length is not a decimal number",
                            true, true);
    }
    if (clen > cfg->max_body_bytes) {
        char msg[96];

        snprintf(msg, sizeof(msg), "the body is larger than %lld bytes",
                 (long long)cfg->max_body_bytes);
        return http__refuse(wsi, s, 413, "payload_too_large", msg, true, true);
    }
    if ((s->req.method == FG_POST || s->req.method == FG_PUT || s->req.method == FG_PATCH) &&
        lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0)
        s->close_after = true; /* lws now waits for a body that never comes */
    if (clen > 0) {
        if (http__continue(wsi) != 0)
            return -1;
        /* Wait for LWS_CALLBACK_HTTP_BODY(_COMPLETION), at most
         * body_timeout_ms in all, however the body trickles in. */
        s->awaiting_body = true;
        lws_set_timer_usecs(wsi, (lws_usec_t)cfg->body_timeout_ms * 1000);
        return 0;
    }
    return http__dispatch(wsi, s);
}

/* LWS_CALLBACK_HTTP_BODY: a piece of the body. */
static int http__on_body(struct lws *wsi, http__session *s, const void *in, size_t len)
{
    size_t max = (size_t)http__gw(wsi)->cfg.max_body_bytes;
    char *grown;

    if (s->responding || !s->awaiting_body)
        return 0; /* already refused, or answered without a body: drain */
    if (s->body_len + len > max)
        return -1; /* more than its Content-Length said: drop */
    if (s->body_len + len + 1 > s->body_cap) {
        size_t cap = s->body_cap == 0 ? 1024 : s->body_cap;

        while (cap < s->body_len + len + 1)
            cap *= 2;
        grown = realloc(s->body, cap);
        if (grown == NULL)
            return -1;
        s->body = grown;
        s->body_cap = cap;
    }
    memcpy(s->body + s->body_len, in, len);
    s->body_len += len;
    s->body[s->body_len] = '\0';
    return 0;
}

/* Adds the status line and headers at *p (at most up to end) and the
 * blank line that ends them. 0 or -1 (they do not fit). */
static int http__add_headers(struct lws *wsi, http__session *s, unsigned char **p,
                             unsigned char *end)
{
    if (lws_add_http_common_headers(wsi, (unsigned int)s->resp.status, s->resp.content_type,
                                    s->resp.len, p, end) != 0 ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, p, end) != 0)
        return -1;
    if (s->resp.allow != NULL &&
        lws_add_http_header_by_name(
            wsi, (const unsigned char *)"allow:", (const unsigned char *)s->resp.allow,
            (int)strlen(s->resp.allow), p, end) != 0)
        return -1;
    if (s->close_after &&
        lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5,
                                     p, end) != 0)
        return -1;
    if (lws_finalize_http_header(wsi, p, end) != 0)
        return -1;
    return 0;
}

/* The answer is out: the connection closes (close_after) or takes the
 * next request. Returns 0, or -1 to close. */
static int http__sent(struct lws *wsi, http__session *s)
{
    if (s->close_after)
        return -1;
    http__reset(s);
    return lws_http_transaction_completed(wsi) != 0 ? -1 : 0;
}

/*
 * The answer is written and lws holds what the socket did not take: it
 * sends that when the socket is writeable again, within send_timeout_ms
 * or the connection is cut. With close_after the writeable callback
 * closes once all is out. Otherwise the transaction is completed now and
 * lws completes it for real in the same pass of its loop that sends the
 * last byte: a request the client sends once it has read the answer would
 * otherwise be read before the writeable callback, into the old request's
 * header table (http__pipelined). The session stays draining until lws
 * drops the protocol (http__dropped). Returns 0, or -1 to close.
 */
static int http__draining(struct lws *wsi, http__session *s)
{
    s->draining = true;
    lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT,
                    (int)((http__gw(wsi)->cfg.send_timeout_ms + 999) / 1000));
    if (s->close_after) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    return lws_http_transaction_completed(wsi) != 0 ? -1 : 0;
}

/*
 * Writes the answer whole in one lws_write: status line, headers and body
 * together, so a small answer is one segment and one wake-up of the
 * client, not two (lws keeps what the socket does not take yet and sends
 * it before anything else). HTTP/1.1 only: over h2 lws would have to
 * frame headers and body apart. A HEAD's answer is its headers alone.
 * Then completes the transaction, or, with close_after, closes the
 * connection (http__sent): at once when the socket took everything, else
 * as http__draining says (closing at once would give lws 5 s to send the
 * rest, which cuts a large answer to a slow client). Returns 0, or -1 to
 * close.
 */
static int http__send(struct lws *wsi, http__session *s)
{
    size_t body = s->req.method == FG_HEAD ? 0 : s->resp.len;
    unsigned char *out, *start, *p;
    size_t len;
    int n;

    fg_metrics_observe(&http__gw(wsi)->shared->metrics, s->route, s->req.method, s->resp.status,
                       fp_time_mono_us() - s->t0_us);
    out = malloc(LWS_PRE + HTTP__HEADERS_MAX + s->resp.len);
    if (out == NULL)
        return -1;
    start = out + LWS_PRE;
    p = start;
    if (http__add_headers(wsi, s, &p, start + HTTP__HEADERS_MAX) != 0) {
        free(out);
        return -1;
    }
    if (body > 0)
        memcpy(p, s->resp.body, body);
    len = (size_t)(p - start) + body;
    n = lws_write(wsi, start, len, LWS_WRITE_HTTP_FINAL);
    free(out);
    if (n != (int)len)
        return -1;
    if (lws_send_pipe_choked(wsi))
        return http__draining(wsi, s);
    return http__sent(wsi, s);
}

/*
 * LWS_CALLBACK_FILTER_HTTP_CONNECTION while an answer drains: the client
 * pipelined a request behind it. lws 4.1 reads it into the header table
 * of the request being answered (reset only when the transaction
 * completes), drops its bytes and would run the old request again, and
 * the connection could send nothing more (lws then believes its headers
 * are not yet in). The connection is closed instead; lws sends no more of
 * the answer (for that same reason) and drops it within its 5 s close
 * timeout. A client that pipelines sends again what was not answered
 * whole (RFC 9112, 9.3.2). Logged at debug level once per connection (it
 * closes; any client can cause it, so not at info), and counted as a cut
 * answer (http__cut). Returns -1.
 */
static int http__pipelined(http__session *s)
{
    fp_debug("%s %s: a request pipelined behind its answer, which was still being sent: the "
             "connection is closed",
             fg_method_name(s->req.method), s->req.path);
    return -1;
}

/*
 * LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: the request asks to switch to h2c or
 * WebSocket. lws would switch (its default), and the API speaks
 * neither: an h2c client would wait for an answer that never comes, a
 * WebSocket would hold its connection with nothing to say. The request is
 * answered 400 upgrade_not_supported and the connection closed. Any other
 * upgrade lws has answered 403 itself before asking: it is only closed.
 * The answer is made in a session of its own: on a connection's first
 * request lws has bound no protocol yet, so there may be no session.
 * Returns -1.
 */
static int http__upgrade(struct lws *wsi)
{
    enum lws_token_indexes tok = WSI_TOKEN_GET_URI;
    http__session s;
    char up[16];

    /* Not the callback's pointer into the header table: after its own 403
     * on a keep-alive connection, lws has freed the table when it asks. */
    if (lws_hdr_copy(wsi, up, sizeof(up), WSI_TOKEN_UPGRADE) <= 0 ||
        (strcasecmp(up, "h2c") != 0 && strcasecmp(up, "websocket") != 0))
        return -1;
    memset(&s, 0, sizeof(s));
    s.t0_us = fp_time_mono_us();
    s.req.method = http__method(wsi, &tok);
    if (s.req.method == FG_METHOD_OTHER ||
        lws_hdr_copy(wsi, s.req.path, sizeof(s.req.path), tok) < 0)
        s.req.path[0] = '\0';
    (void)http__refuse(wsi, &s, 400, "upgrade_not_supported",
                       "this API speaks HTTP/1.1 only: send the request without Upgrade", true,
                       true);
    http__reset(&s);
    return -1;
}

/*
 * CONNECT, a proxy's method, is not an HTTP request to lws 4.1: it turns
 * the connection into a raw socket bound to this protocol
 * (LWS_CALLBACK_RAW_ADOPT), with no timeout, which the client could hold
 * for ever. It is answered 405 from the raw writeable callback (writing)
 * and closed at once (lws does not flush a raw socket before closing it:
 * the short answer goes if the socket takes it); a socket that never
 * becomes writeable is closed after HTTP__CONNECT_TIMEOUT_S. Returns 0,
 * or -1 to close.
 */
static int http__connect(struct lws *wsi, bool writing)
{
    static const char body[] = "{\"error\":\"method_not_allowed\","
                               "\"message\":\"CONNECT is not supported: this is not a proxy\"}";
    unsigned char buf[LWS_PRE + 512];
    int n;

    if (!writing) {
        fp_debug("CONNECT refused (405): not a proxy");
        lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, HTTP__CONNECT_TIMEOUT_S);
        lws_callback_on_writable(wsi);
        return 0;
    }
    n = snprintf((char *)buf + LWS_PRE, sizeof(buf) - LWS_PRE,
                 "HTTP/1.1 405 Method Not Allowed\r\ncontent-type: application/json\r\n"
                 "connection: close\r\ncontent-length: %zu\r\n\r\n%s",
                 sizeof(body) - 1, body);
    (void)lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_RAW);
    return -1;
}

/* What a draining answer was, kept in lws's opaque pointer of the wsi
 * from the protocol's drop until lws either binds it again (the answer
 * went out whole: the transaction completed) or closes (it did not).
 * Otherwise that pointer is NULL until the connection's first request,
 * &http__served after it (http__second_request). */
static char http__served;

typedef struct {
    fg_method method;
    size_t len;
    char path[sizeof(((fg_request *)0)->path)];
} http__drop_note;

/* Logs and counts (feedpush_gateway_answers_cut_total) an answer whose
 * connection ended while lws still held part of it: the send timeout, a
 * client gone, or http__pipelined. */
static void http__cut(struct lws *wsi, fg_method method, const char *path, size_t len)
{
    fg_metrics_cut(&http__gw(wsi)->shared->metrics);
    fp_debug("%s %s: the connection ended before the answer (%zu bytes) was sent whole",
             fg_method_name(method), path, len);
}

/* Frees the drop note; with cut, the answer it tells of was cut. */
static void http__drop_note_end(struct lws *wsi, bool cut)
{
    http__drop_note *note = lws_get_opaque_user_data(wsi);

    if (note == NULL || (void *)note == &http__served)
        return;
    if (cut)
        http__cut(wsi, note->method, note->path, note->len);
    free(note);
    lws_set_opaque_user_data(wsi, &http__served);
}

/*
 * LWS_CALLBACK_FILTER_HTTP_CONNECTION, for every request lws asks about
 * (the API's and the files it serves; not a redirect, which it answers
 * before): notes that the connection has had one. With keep_alive off, a
 * second request on it is not served: the connection closes (-1). The
 * gateway's own answers close their connection, a file's too
 * (LWS_CALLBACK_HTTP_FILE_COMPLETION), and so do the transactions lws
 * completes itself (http__completed); this is the backstop.
 */
static int http__second_request(struct lws *wsi)
{
    http__worker *w = lws_context_user(lws_get_context(wsi));

    /* No transaction is being completed while a request starts: a flag
     * left by a bind that failed inside lws (out of memory) goes here. */
    w->completing = false;
    if (lws_get_opaque_user_data(wsi) == NULL) {
        lws_set_opaque_user_data(wsi, &http__served);
        return 0;
    }
    if (http__gw(wsi)->cfg.keep_alive)
        return 0;
    fp_debug("a second request on a connection (keep_alive off): closed");
    return -1;
}

/*
 * LWS_CALLBACK_HTTP_DROP_PROTOCOL (in: lws's reason) and the
 * LWS_CALLBACK_HTTP_BIND_PROTOCOL that follows it at once: with
 * keep_alive off, a transaction lws completes (an answer it made itself:
 * a HEAD or a 304 of a file, a 415, a 416) ends the connection, by
 * failing the bind lws_http_transaction_completed makes to wait for the
 * next request (it then closes). The gateway's own answers close before
 * that, and so do files (LWS_CALLBACK_HTTP_FILE_COMPLETION).
 * http__second_request cannot do this alone: lws answers a redirect (a
 * 301 to /vendor/) before it asks whether to serve a request. The reason
 * is the name of the lws 4.1 function that completes transactions.
 * Returns 0, or -1 (bind) to close.
 */
static int http__completed(struct lws *wsi, enum lws_callback_reasons reason, const void *in)
{
    http__worker *w = lws_context_user(lws_get_context(wsi));
    bool completing = w->completing;

    if (reason == LWS_CALLBACK_HTTP_DROP_PROTOCOL) {
        w->completing = in != NULL && strcmp(in, "lws_http_transaction_completed") == 0;
        return 0;
    }
    w->completing = false;
    return completing && !http__gw(wsi)->cfg.keep_alive ? -1 : 0;
}

/* LWS_CALLBACK_ADD_HEADERS, for a file lws serves (its mount names our
 * protocol when keep_alive is off, http__mounts): says the connection
 * closes after it. Returns 0, or -1 when the headers do not fit. */
static int http__file_headers(struct lws *wsi, struct lws_process_html_args *args)
{
    unsigned char *p = (unsigned char *)args->p, *end = p + args->max_len;

    if (http__gw(wsi)->cfg.keep_alive)
        return 0;
    if (lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5,
                                     &p, end) != 0)
        return -1;
    args->max_len -= (int)(p - (unsigned char *)args->p);
    args->p = (char *)p;
    return 0;
}

/* LWS_CALLBACK_HTTP_DROP_PROTOCOL: the transaction completed (a bind
 * follows) or the connection closes (LWS_CALLBACK_CLOSED_HTTP follows);
 * a draining answer is noted to tell which (out of memory: taken as
 * whole). The session is freed after this. */
static void http__dropped(struct lws *wsi, http__session *s)
{
    http__drop_note *note;

    /* Nothing held by lws: the answer went out whole, whatever comes
     * next (a client that half-closed is closed once lws has flushed). */
    if (s->draining && lws_partial_buffered(wsi)) {
        http__drop_note_end(wsi, false);
        note = malloc(sizeof(*note));
        if (note != NULL) {
            note->method = s->req.method;
            note->len = s->resp.len;
            memcpy(note->path, s->req.path, sizeof(note->path));
            lws_set_opaque_user_data(wsi, note);
        }
    }
    http__reset(s);
}

static int http__callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len)
{
    http__session *s = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return http__on_request(wsi, s);
    case LWS_CALLBACK_HTTP_BODY:
        return http__on_body(wsi, s, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        /* Only for a body waited for: lws also completes a POST with
         * Content-Length: 0, which was answered from LWS_CALLBACK_HTTP. */
        if (!s->awaiting_body)
            return 0;
        s->awaiting_body = false;
        lws_set_timer_usecs(wsi, LWS_SET_TIMER_USEC_CANCEL);
        return s->responding ? 0 : http__dispatch(wsi, s);
    case LWS_CALLBACK_TIMER:
        if (s != NULL && s->awaiting_body && !s->responding) {
            s->awaiting_body = false;
            /* From the writeable callback: a timer callback writes nothing. */
            return http__refuse(wsi, s, 408, "request_timeout", "the body did not arrive in time",
                                true, false);
        }
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return http__upgrade(wsi);
    case LWS_CALLBACK_FILTER_HTTP_CONNECTION:
        if (s != NULL && s->draining)
            return http__pipelined(s);
        if (http__second_request(wsi) != 0)
            return -1;
        break;
    case LWS_CALLBACK_ADD_HEADERS:
        return http__file_headers(wsi, in);
    case LWS_CALLBACK_HTTP_FILE_COMPLETION:
        /* keep_alive off: closed once the file is out (all of it: lws
         * calls this when it holds nothing more). */
        if (!http__gw(wsi)->cfg.keep_alive)
            return -1;
        break;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (s != NULL && s->draining) {
            if (!s->close_after)
                return 0;        /* lws completes the transaction (http__draining) */
            s->draining = false; /* the answer is out: close */
            return -1;
        }
        return s != NULL && s->responding ? http__send(wsi, s) : 0;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (s != NULL)
            http__dropped(wsi, s);
        http__completed(wsi, reason, in);
        break;
    case LWS_CALLBACK_HTTP_BIND_PROTOCOL:
        http__drop_note_end(wsi, false);
        if (http__completed(wsi, reason, in) != 0)
            return -1;
        break;
    case LWS_CALLBACK_CLOSED_HTTP:
        /* lws drops the protocol first: the note tells of a cut. */
        if (s != NULL && s->draining && lws_partial_buffered(wsi))
            http__cut(wsi, s->req.method, s->req.path, s->resp.len);
        http__drop_note_end(wsi, true);
        if (s != NULL)
            http__reset(s);
        break;
    case LWS_CALLBACK_WSI_DESTROY:
        /* A note left: closed without LWS_CALLBACK_CLOSED_HTTP (lws skips
         * it on some early closes), still a cut. */
        http__drop_note_end(wsi, true);
        break;
    case LWS_CALLBACK_RAW_ADOPT:
        return http__connect(wsi, false);
    case LWS_CALLBACK_RAW_WRITEABLE:
        return http__connect(wsi, true);
    case LWS_CALLBACK_RAW_RX:
        return 0; /* what the client sends after CONNECT is not read */
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/*
 * accept() failed for want of a descriptor or memory (EMFILE, ENFILE,
 * ENOBUFS, ENOMEM): the listening socket stays readable, and polling it
 * again at once would spin the worker and log the failure thousands of
 * times a second. Polling pauses for HTTP__ACCEPT_PAUSE_US instead (the
 * connections wait in the backlog), and the episode is logged once.
 */
static void http__accept_pause(struct lws *wsi, http__worker *w, int err)
{
    if (!w->accept_paused)
        fp_warn("accept: %s; new connections wait (tried again every %d ms)", strerror(err),
                HTTP__ACCEPT_PAUSE_US / 1000);
    w->accept_paused = true;
    lws_rx_flow_control(wsi, 0);
    lws_set_timer_usecs(wsi, HTTP__ACCEPT_PAUSE_US);
}

/* The worker's listening socket, adopted as a raw descriptor: readable
 * means connections wait; each is accepted and given to lws as an HTTP
 * connection of the vhost. */
static int http__listen_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                                 void *in, size_t len)
{
    http__worker *w = lws_context_user(lws_get_context(wsi));
    int fd, one = 1;

    if (reason == LWS_CALLBACK_TIMER) {
        lws_rx_flow_control(wsi, 1); /* http__accept_pause is over */
        return 0;
    }
    if (reason != LWS_CALLBACK_RAW_RX_FILE)
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    for (;;) {
        fd = accept4(w->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            break;
        if (w->accept_paused) {
            fp_info("accept: taking new connections again");
            w->accept_paused = false;
        }
        /* An answer is one write, but pipelined answers and the rest of a
         * large one that the socket did not take at once would otherwise
         * wait for the client's delayed ACK (40 ms). */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        /* On failure lws has closed fd. */
        if (lws_adopt_socket_vhost(lws_get_vhost(wsi), fd) == NULL)
            fp_warn("lws could not take a new connection");
    }
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
        http__accept_pause(wsi, w, errno);
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
        fp_warn("accept: %s", strerror(errno));
    return 0;
}

static const struct lws_protocols http__protocols[] = {
    /* tx_packet_size: lws sends at most this much of a write at once and
     * buffers the rest for the next writeable callback, another pass of
     * its loop (4 KiB by default: a page of 50 posts took two). 1 MiB
     * is more than most answers (the socket takes what it can); only a
     * page of hundreds of long posts goes in several pieces. */
    {HTTP__PROTOCOL, http__callback, sizeof(http__session), 0, 0, NULL, HTTP__TX_MAX},
    {HTTP__LISTEN, http__listen_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* Headers on every response: the page may run scripts and styles from
 * its own origin only and talk to the brokers' WebSockets. */
static const struct lws_protocol_vhost_options http__hdr_referrer = {
    NULL, NULL, "referrer-policy:", "no-referrer"};
static const struct lws_protocol_vhost_options http__hdr_frame = {&http__hdr_referrer, NULL,
                                                                  "x-frame-options:", "DENY"};
static const struct lws_protocol_vhost_options http__hdr_nosniff = {
    &http__hdr_frame, NULL, "x-content-type-options:", "nosniff"};
static const struct lws_protocol_vhost_options http__headers = {
    &http__hdr_nosniff, NULL, "content-security-policy:",
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"};

static const struct lws_protocol_vhost_options http__mime_mjs = {NULL, NULL, ".mjs",
                                                                 "text/javascript"};

/* lws logs a line for some requests it drops by itself (headers over
 * its table, say), which anyone can send: at most this many of its lines
 * pass per window. */
#define HTTP__LWS_LOG_BURST 20
#define HTTP__LWS_LOG_WINDOW_MS 60000

static pthread_mutex_t http__lws_log_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t http__lws_log_since;   /* monotonic ms: the window's start */
static unsigned http__lws_log_passed; /* lines passed in the window */
static unsigned http__lws_log_held;   /* lines left out in it */

/*
 * Routes lws's own log lines (errors and warnings) into ours, at most
 * HTTP__LWS_LOG_BURST per HTTP__LWS_LOG_WINDOW_MS; how many were left
 * out is said with the first line of a later window. Any thread.
 */
static void http__lws_log(int level, const char *line)
{
    size_t n = strlen(line);
    int64_t now = fp_time_mono_ms();
    unsigned held = 0;
    bool pass;

    pthread_mutex_lock(&http__lws_log_lock);
    if (now - http__lws_log_since >= HTTP__LWS_LOG_WINDOW_MS) {
        held = http__lws_log_held;
        http__lws_log_since = now;
        http__lws_log_passed = 0;
        http__lws_log_held = 0;
    }
    pass = http__lws_log_passed < HTTP__LWS_LOG_BURST;
    if (pass)
        http__lws_log_passed++;
    else
        http__lws_log_held++;
    pthread_mutex_unlock(&http__lws_log_lock);
    if (held > 0)
        fp_warn("lws: %u more of its lines were left out (at most %d a minute are logged)", held,
                HTTP__LWS_LOG_BURST);
    if (!pass)
        return;
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
        n--;
    fp_log(level == LLL_ERR ? FP_LOG_ERROR : FP_LOG_WARN, "lws: %.*s", (int)n, line);
}

/* Fills the mounts: the callback ones always, the file ones when their
 * directory is configured. Returns the head of the list. */
static const struct lws_http_mount *http__mounts(const fg_config *c, struct lws_http_mount *m)
{
    static const char *const callback_paths[] = {"/api", "/healthz", "/metrics"};
    struct lws_http_mount *head = NULL;
    size_t i;

    memset(m, 0, 5 * sizeof(*m));
    for (i = 0; i < 3; i++) {
        m[i].mountpoint = callback_paths[i];
        m[i].mountpoint_len = (unsigned char)strlen(callback_paths[i]);
        m[i].origin = HTTP__PROTOCOL;
        m[i].origin_protocol = LWSMPRO_CALLBACK;
        m[i].mount_next = head;
        head = &m[i];
    }
    if (c->mqtt_js_dir[0] != '\0') {
        /* keep_alive off: lws asks our protocol for extra headers
         * (http__file_headers) only when the mount names it. */
        m[3].protocol = c->keep_alive ? NULL : HTTP__PROTOCOL;
        m[3].mountpoint = "/vendor";
        m[3].mountpoint_len = 7;
        m[3].origin = c->mqtt_js_dir;
        m[3].origin_protocol = LWSMPRO_FILE;
        m[3].extra_mimetypes = &http__mime_mjs;
        m[3].mount_next = head;
        head = &m[3];
    }
    if (c->www_dir[0] != '\0') {
        m[4].protocol = c->keep_alive ? NULL : HTTP__PROTOCOL;
        m[4].mountpoint = "/";
        m[4].mountpoint_len = 1;
        m[4].origin = c->www_dir;
        m[4].def = "index.html";
        m[4].origin_protocol = LWSMPRO_FILE;
        m[4].mount_next = head;
        head = &m[4];
    }
    return head;
}

/* A worker's thread: serves its context until the run ends. */
static void *http__worker_main(void *arg)
{
    http__worker *w = arg;

    while (!atomic_load(&http__quit)) {
        if (lws_service(w->ctx, 0) < 0) {
            fp_error("an HTTP worker's service loop failed; its connections are dropped");
            break;
        }
    }
    return NULL;
}

/*
 * A non-blocking listening socket on host:port that the other workers
 * share (SO_REUSEPORT when share). Without share it only proves the port
 * free: SO_REUSEPORT would let a second gateway of the same user join a
 * running one's port instead of failing. Returns it, or -1 (logged).
 */
static int http__listen(const char *host, int port, bool share)
{
    struct sockaddr_in sa;
    int fd, one = 1;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fp_error("http_host %s: not an IPv4 address", host);
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (share && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, HTTP__BACKLOG) != 0) {
        fp_error("cannot serve HTTP on %s:%d: %s", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* The shared TLS client context (http__client_ctx), made on first use.
 * Returns it, or NULL after logging (out of memory). */
static SSL_CTX *http__client_ctx_get(void)
{
    if (http__client_ctx == NULL)
        http__client_ctx = SSL_CTX_new(TLS_client_method());
    if (http__client_ctx == NULL)
        fp_error("cannot make a TLS client context (out of memory)");
    return http__client_ctx;
}

/*
 * Worker w: a copy of gw with links of its own (opened now; one that is
 * down is retried on use), its listening socket, an lws context that
 * listens on nothing itself and has that socket adopted, a thread.
 * Returns 0 or -1 (logged).
 */
static int http__worker_start(const fg_gateway *gw, http__worker *w)
{
    struct lws_context_creation_info info;
    lws_sock_file_fd_type lfd;

    fg_backend_copy(&w->gw, gw);
    w->listen_fd = -1;
    if (fg_backend_open(&w->gw, true, false) != 0)
        return -1;
    w->listen_fd = http__listen(gw->cfg.http_host, (int)gw->cfg.http_port, true);
    if (w->listen_fd < 0)
        return -1;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = http__protocols;
    info.mounts = http__mounts(&gw->cfg, w->mounts);
    info.headers = &http__headers;
    info.vhost_name = "feed-gateway";
    info.server_string = "feed-gateway";
    info.max_http_header_data = FP_JWT_MAX_BYTES + 4096;
    info.keepalive_timeout = 30;
    /* lws's own wait for the next piece of a body: longer than
     * body_timeout_ms, so that a slow body gets its 408, not a silent
     * close. */
    info.timeout_secs = 20;
    if (gw->cfg.body_timeout_ms / 1000 + 2 > info.timeout_secs)
        info.timeout_secs = (unsigned int)(gw->cfg.body_timeout_ms / 1000 + 2);
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    if (gw->cfg.tls_cert[0] != '\0') {
        /* HTTPS on the adopted connections (lws_adopt_socket_vhost allows
         * TLS); HTTP/1.1 only, the protocol this server implements. */
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = gw->cfg.tls_cert;
        info.ssl_private_key_filepath = gw->cfg.tls_key;
        info.alpn = "http/1.1";
        info.provided_client_ssl_ctx = http__client_ctx_get();
        if (info.provided_client_ssl_ctx == NULL)
            return -1;
    }
    info.user = w;
    w->ctx = lws_create_context(&info);
    if (w->ctx == NULL) {
        fp_error("cannot start an HTTP worker (see the lws line above)");
        return -1;
    }
    /* Before the thread runs: nobody else uses the context yet. */
    lfd.filefd = w->listen_fd;
    if (lws_adopt_descriptor_vhost(lws_get_vhost_by_name(w->ctx, "feed-gateway"),
                                   LWS_ADOPT_RAW_FILE_DESC, lfd, HTTP__LISTEN, NULL) == NULL) {
        fp_error("lws would not watch the listening socket");
        w->listen_fd = -1; /* lws closed it */
        return -1;
    }
    if (pthread_create(&w->tid, NULL, http__worker_main, w) != 0) {
        fp_error("cannot start an HTTP worker thread");
        return -1;
    }
    w->started = true;
    return 0;
}

/* Sleeps ms milliseconds, or less when *stop is set. */
static void http__nap(volatile int *stop, int ms)
{
    for (; ms > 0 && !*stop; ms -= 50)
        usleep(50000);
}

/* Wakes the first n workers' service loops (after http__quit is set). */
static void http__wake(int n)
{
    int i;

    for (i = 0; i < n; i++) {
        if (http__workers[i].ctx != NULL)
            lws_cancel_service(http__workers[i].ctx);
    }
}

int fg_http_run(fg_gateway *gw, volatile int *stop)
{
    int i, n = (int)gw->cfg.http_workers, rc = 0;
    http__worker *w;

    lws_set_log_level(LLL_ERR | LLL_WARN, http__lws_log);
    n = n < HTTP__MAX_WORKERS ? n : HTTP__MAX_WORKERS;
    atomic_store(&http__quit, false);
    rc = http__listen(gw->cfg.http_host, (int)gw->cfg.http_port, false);
    if (rc < 0)
        return -1;
    close(rc);
    rc = 0;
    /* A worker the start below never reaches holds no socket (the array
     * is static: 0 would be stdin's descriptor, or whatever took it). */
    for (i = 0; i < n; i++)
        http__workers[i].listen_fd = -1;
    fg_health_refresh(gw); /* the first state, before anyone asks */
    rc = fg_publisher_start(&gw->shared->publisher, gw);
    if (rc == 0 && gw->cfg.post_cache_mb > 0)
        rc = fg_bodies_new(&gw->shared->bodies, (size_t)gw->cfg.post_cache_mb << 20);
    if (rc == 0 && (gw->cfg.revocation_cache || gw->shared->bodies != NULL))
        rc = fg_revoked_start(&gw->shared->revoked, gw);
    for (i = 0; i < n && rc == 0; i++)
        rc = http__worker_start(gw, &http__workers[i]);
    if (rc == 0) {
        fp_info("running: %s on %s://%s:%lld/, %d workers (dev mode %s)",
                gw->cfg.tls_cert[0] != '\0' ? "HTTPS" : "HTTP",
                gw->cfg.tls_cert[0] != '\0' ? "https" : "http", gw->cfg.http_host,
                (long long)gw->cfg.http_port, n,
                gw->cfg.dev_mode ? "ON: anyone can get a token" : "off");
        while (!*stop) {
            http__nap(stop, FG_HEALTH_PERIOD_MS);
            if (!*stop)
                fg_health_refresh(gw);
        }
    }
    atomic_store(&http__quit, true);
    http__wake(n);
    for (i = 0; i < n; i++) {
        w = &http__workers[i];
        if (w->started)
            pthread_join(w->tid, NULL);
        if (w->ctx != NULL)
            lws_context_destroy(w->ctx);
        else if (w->listen_fd >= 0)
            close(w->listen_fd);
        fg_backend_close(&w->gw);
        memset(w, 0, sizeof(*w));
    }
    SSL_CTX_free(http__client_ctx); /* no lws context uses it any more */
    http__client_ctx = NULL;
    fg_revoked_stop(gw->shared->revoked);
    gw->shared->revoked = NULL;
    fg_bodies_free(gw->shared->bodies);
    gw->shared->bodies = NULL;
    fg_publisher_stop(gw->shared->publisher);
    gw->shared->publisher = NULL;
    return rc == 0 ? 0 : -1;
}
