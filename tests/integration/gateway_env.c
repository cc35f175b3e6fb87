#include "gateway_env.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

/* The first port of the kernel's ephemeral range (32768 when unknown). */
static int env__ephemeral_low(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    int lo = 32768;

    if (f != NULL) {
        if (fscanf(f, "%d", &lo) != 1)
            lo = 32768;
        fclose(f);
    }
    return lo;
}

/*
 * A loopback port nobody holds right now, below the ephemeral range as
 * tools/fp-server picks servers' ports: a port from that range may be
 * taken meanwhile as the source port of any outgoing connection. Tries
 * random ones with a bind. Returns the port or -1.
 */
static int env__free_port(void)
{
    static bool seeded;
    struct sockaddr_in a = {0};
    int span = env__ephemeral_low() - 10000, i, fd, port;

    if (span < 2000)
        return -1;
    if (!seeded) {
        srandom((unsigned)getpid() ^ (unsigned)time(NULL));
        seeded = true;
    }
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (i = 0; i < 200; i++) {
        port = 10000 + (int)(random() % span);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            return -1;
        a.sin_port = htons((uint16_t)port);
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
            close(fd);
            return port;
        }
        close(fd);
    }
    return -1;
}

int ft_gateway_env_start(ft_gateway_env *e, int dev_token_ttl)
{
    return ft_gateway_env_start_opts(e, dev_token_ttl, NULL);
}

int ft_gateway_env_start_opts(ft_gateway_env *e, int dev_token_ttl, const ft_node_opts *opts)
{
    memset(e, 0, sizeof(*e));
    e->dev_token_ttl = dev_token_ttl;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return -1;
    if (ft_node_env_start_opts(&e->b, 1, opts) != 0)
        return -1;
    e->dev_mode = true;
    e->amqp_port = e->b.rabbit.port;
    snprintf(e->log, sizeof(e->log), "%s/feed-gateway.log", e->b.p.dir);
    return ft_gateway_start(e);
}

/* The child: own process group, killed with the test, FEEDPUSH_* config,
 * output appended to the log. Never returns. */
static void env__exec_gateway(ft_gateway_env *e, const char *bin)
{
    const char *src = getenv("FP_SOURCE_DIR");
    char v[8][PATH_MAX + 64];

    ft_harness_child(e->log);
    snprintf(v[0], sizeof(v[0]), "%d", e->port);
    snprintf(v[1], sizeof(v[1]), "%d", e->amqp_port);
    snprintf(v[2], sizeof(v[2]), "%d", e->b.p.redis.port);
    snprintf(v[3], sizeof(v[3]), "ws://127.0.0.1:%d/mqtt", e->b.p.mosq.ws_port);
    snprintf(v[4], sizeof(v[4]), "%s/gateway/www", src != NULL ? src : ".");
    snprintf(v[5], sizeof(v[5]), "%s/node_modules/mqtt/dist", src != NULL ? src : ".");
    if (realpath(e->b.p.dir, v[7]) == NULL)
        snprintf(v[7], sizeof(v[7]), "%s", e->b.p.dir);
    snprintf(v[6], sizeof(v[6]), "%.*s/gateway", PATH_MAX, v[7]);
    setenv("FEEDPUSH_HTTP_PORT", v[0], 1);
    setenv("FEEDPUSH_AMQP_PORT", v[1], 1);
    setenv("FEEDPUSH_AMQP_VHOST", e->b.vhost, 1);
    setenv("FEEDPUSH_REDIS_PORT", v[2], 1);
    setenv("FEEDPUSH_MQTT_WS_URLS", v[3], 1);
    setenv("FEEDPUSH_WWW_DIR", v[4], 1);
    setenv("FEEDPUSH_MQTT_JS_DIR", v[5], 1);
    setenv("FEEDPUSH_JWT_KEY", e->b.p.secret_path, 1);
    setenv("FEEDPUSH_JWT_SIGNING_KEY", e->signing_key != NULL ? e->signing_key : e->b.p.secret_path,
           1);
    setenv("FEEDPUSH_DEV_MODE", e->dev_mode ? "on" : "off", 1);
    snprintf(v[0], sizeof(v[0]), "%d", e->dev_token_ttl > 0 ? e->dev_token_ttl : 600);
    setenv("FEEDPUSH_DEV_TOKEN_TTL", v[0], 1);
    setenv("FEEDPUSH_TIMEOUT_MS", "1000", 1);
    /* Pages up to 16 MiB, unless the test set its own: the tests of
     * answers larger than a socket takes read pages of some 6.6 MB. */
    setenv("FEEDPUSH_MAX_PAGE_BYTES", "16777216", 0);
    setenv("FEEDPUSH_LOG_LEVEL", "debug", 1);
    /* The harness's orphan check finds it by this marker. */
    setenv("FEEDPUSH_HARNESS", v[6], 1);
    execl(bin, bin, (char *)NULL);
    _exit(127);
}

bool ft_gateway_alive(ft_gateway_env *e)
{
    if (e->gw <= 0)
        return false;
    if (waitpid(e->gw, NULL, WNOHANG) == e->gw) {
        e->gw = 0;
        return false;
    }
    return true;
}

/* Copies the last lines of the gateway's log to stderr (the log goes
 * with the test's temp dir, so a failed start says why in the test's own
 * output). */
static void env__log_tail(const ft_gateway_env *e)
{
    char buf[2048];
    FILE *f = fopen(e->log, "r");
    long size;
    size_t n;

    if (f == NULL)
        return;
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0, SEEK_SET);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "gateway_env: the end of %s:\n%s\n", e->log, buf);
}

/* Does the gateway's log hold needle past offset from? */
static bool env__log_has_since(const ft_gateway_env *e, long from, const char *needle)
{
    return ft_log_count(e->log, from, needle) > 0;
}

/*
 * Starts the gateway once on a port free a moment ago, and waits until it
 * answers and has logged that it is running: the first worker answers
 * while the others are still opening their Redis links, and a test that
 * then stops Redis taking new connections would leave those without one.
 * 0; 1 when it exited because another process took that port between the
 * pick and its bind (the caller picks again); -1 otherwise.
 */
static int env__start_once(ft_gateway_env *e, const char *bin)
{
    long from = ft_log_size(e->log);
    pid_t pid;
    int i;

    e->port = env__free_port();
    if (e->port <= 0)
        return -1;
    snprintf(e->url, sizeof(e->url), "http://127.0.0.1:%d", e->port);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        env__exec_gateway(e, bin);
    e->gw = pid;
    for (i = 0; i < 150; i++) {
        char none[8];

        /* Listening yet? (A plain connect, so curl logs no refusals.) */
        if (ft_http_raw(e, "", 0, none, sizeof(none), 0) >= 0 &&
            ft_http(e, "GET", "/api/v1/config", NULL, NULL, NULL) == 200 &&
            env__log_has_since(e, from, "] running: "))
            return 0;
        if (!ft_gateway_alive(e)) {
            if (env__log_has_since(e, from, "Address already in use")) {
                fprintf(stderr,
                        "gateway_env: port %d was taken before feed-gateway bound it; "
                        "starting it on another\n",
                        e->port);
                return 1;
            }
            fprintf(stderr, "gateway_env: feed-gateway exited at start\n");
            env__log_tail(e);
            return -1;
        }
        usleep(100000);
    }
    fprintf(stderr, "gateway_env: feed-gateway not answering after 15 s\n");
    env__log_tail(e);
    return -1;
}

int ft_gateway_start(ft_gateway_env *e)
{
    const char *bin = getenv("FP_GATEWAY");
    int rc = 1, tries;

    if (bin == NULL) {
        fprintf(stderr, "gateway_env: FP_GATEWAY not set (run through ctest)\n");
        return -1;
    }
    if (e->gw > 0 && ft_gateway_stop(e) != 0)
        return -1;
    /* The port is picked, closed, then bound by the gateway: under
     * parallel tests another process may take it in between. */
    for (tries = 0; tries < 3 && rc == 1; tries++)
        rc = env__start_once(e, bin);
    if (rc == 1)
        env__log_tail(e);
    return rc == 0 ? 0 : -1;
}

int ft_gateway_stop(ft_gateway_env *e)
{
    int status, waited;

    if (e->gw <= 0)
        return 0;
    kill(e->gw, SIGTERM);
    for (waited = 0; waited <= 5000; waited += 20) {
        if (waitpid(e->gw, &status, WNOHANG) == e->gw) {
            e->gw = 0;
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
            ft_harness_fail("feed-gateway did not exit 0 on SIGTERM");
            return -1;
        }
        usleep(20000);
    }
    kill(e->gw, SIGKILL);
    waitpid(e->gw, NULL, 0);
    e->gw = 0;
    ft_harness_fail("feed-gateway did not exit within 5 s of SIGTERM");
    return -1;
}

int ft_gateway_env_stop(ft_gateway_env *e)
{
    int rc = ft_gateway_stop(e);

    if (ft_node_env_stop(&e->b) != 0)
        rc = -1;
    curl_global_cleanup();
    return rc;
}

/* ------------------------------------------------------------ HTTP client */

/* Appends a piece of the body; the buffer at least doubles when it
 * grows, so a page of megabytes is not copied over and over (slow under
 * ASan, where every realloc copies). */
static size_t env__on_body(char *data, size_t size, size_t n, void *user)
{
    ft_http_reply *r = user;
    size_t len = size * n, want = r->len + len + 1, cap = r->cap;
    char *grown;

    if (want > cap) {
        while (cap < want)
            cap = cap < 4096 ? 4096 : cap * 2;
        grown = realloc(r->body, cap);
        if (grown == NULL)
            return 0;
        r->body = grown;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, len);
    r->len += len;
    r->body[r->len] = '\0';
    return len;
}

/* Copies "Allow:" into the reply. */
static size_t env__on_header(char *data, size_t size, size_t n, void *user)
{
    ft_http_reply *r = user;
    size_t len = size * n, k = 6, m;

    if (len > k && strncasecmp(data, "allow:", k) == 0) {
        while (k < len && data[k] == ' ')
            k++;
        m = len - k;
        while (m > 0 && (data[k + m - 1] == '\r' || data[k + m - 1] == '\n'))
            m--;
        if (m >= sizeof(r->allow))
            m = sizeof(r->allow) - 1;
        memcpy(r->allow, data + k, m);
        r->allow[m] = '\0';
    }
    return len;
}

long ft_http(ft_gateway_env *e, const char *method, const char *path, const char *token,
             const char *body, ft_http_reply *reply)
{
    ft_http_reply local = {0};
    ft_http_reply *r = reply != NULL ? reply : &local;
    struct curl_slist *h = NULL;
    char url[2048], auth[9000];
    const char *ct = NULL;
    CURL *c = curl_easy_init();
    CURLcode rc;
    long status;

    memset(r, 0, sizeof(*r));
    r->body = calloc(1, 1);
    r->cap = 1;
    if (c == NULL || r->body == NULL) {
        curl_easy_cleanup(c);
        return 0;
    }
    snprintf(url, sizeof(url), "%s%s", e->url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, env__on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, env__on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (token != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    if (body != NULL) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fprintf(stderr, "gateway_env: %s %s: %s\n", method, url, curl_easy_strerror(rc));
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        if (ct != NULL)
            snprintf(r->content_type, sizeof(r->content_type), "%s", ct);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    status = r->status;
    if (reply == NULL)
        ft_http_reply_free(&local);
    return status;
}

void ft_http_reply_free(ft_http_reply *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* A TCP connection to the gateway (with a small receive buffer when
 * small): its fd, or -1. */
static int gateway__connect(const ft_gateway_env *e, bool small)
{
    struct sockaddr_in a = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0), size = 4096;

    if (fd < 0)
        return -1;
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)e->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((small && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) != 0) ||
        connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ft_http_raw, ft_http_raw_slow and ft_http_raw_then: delay_ms > 0 makes
 * the socket's receive buffer small and waits that long after sending
 * req, before reading; then (len2 > 0) req2 is sent and the reading
 * begins. *closed (if not NULL) tells whether the server closed. */
static long gateway__raw(ft_gateway_env *e, const void *req, size_t len, const char *req2,
                         size_t len2, char *out, size_t cap, int timeout_ms, int delay_ms,
                         bool *closed)
{
    struct pollfd p;
    size_t got = 0;
    ssize_t n;
    int fd = gateway__connect(e, delay_ms > 0), waited = 0;

    if (fd < 0)
        return -1;
    if (closed != NULL)
        *closed = false;
    if (len > 0 && send(fd, req, len, MSG_NOSIGNAL) < 0) {
        close(fd);
        return 0;
    }
    if (delay_ms > 0)
        usleep((useconds_t)delay_ms * 1000);
    if (len2 > 0 && send(fd, req2, len2, MSG_NOSIGNAL) < 0) {
        close(fd);
        return 0;
    }
    p.fd = fd;
    p.events = POLLIN;
    while (got + 1 < cap && waited < timeout_ms) {
        if (poll(&p, 1, 50) <= 0) {
            waited += 50;
            continue;
        }
        n = recv(fd, out + got, cap - 1 - got, 0);
        if (n <= 0) {
            if (closed != NULL)
                *closed = n == 0 || errno == ECONNRESET;
            break;
        }
        got += (size_t)n;
    }
    out[got] = '\0';
    close(fd);
    return (long)got;
}

long ft_http_raw(ft_gateway_env *e, const void *req, size_t len, char *out, size_t cap,
                 int timeout_ms)
{
    return gateway__raw(e, req, len, NULL, 0, out, cap, timeout_ms, 0, NULL);
}

long ft_http_raw_slow(ft_gateway_env *e, const void *req, size_t len, char *out, size_t cap,
                      int timeout_ms, int delay_ms)
{
    return gateway__raw(e, req, len, NULL, 0, out, cap, timeout_ms, delay_ms, NULL);
}

long ft_http_raw_then(ft_gateway_env *e, const char *req, const char *req2, char *out, size_t cap,
                      int timeout_ms, int delay_ms, bool *closed)
{
    return gateway__raw(e, req, strlen(req), req2, strlen(req2), out, cap, timeout_ms, delay_ms,
                        closed);
}

/* recv on fd, waiting up to timeout_ms for data. Returns recv's result,
 * or -1 after the timeout. */
static ssize_t gateway__recv(int fd, char *buf, size_t len, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    if (poll(&p, 1, timeout_ms) <= 0)
        return -1;
    return recv(fd, buf, len, 0);
}

int ft_http_rounds(ft_gateway_env *e, const char *req, int rounds, int timeout_ms)
{
    char head[65536], body[65536];
    const char *end, *len_hdr;
    long long left;
    size_t have;
    ssize_t n;
    int fd = gateway__connect(e, false), r;

    if (fd < 0)
        return -1;
    for (r = 0; r < rounds; r++) {
        if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0)
            break;
        have = 0;
        head[0] = '\0';
        while ((end = strstr(head, "\r\n\r\n")) == NULL && have + 1 < sizeof(head)) {
            n = gateway__recv(fd, head + have, sizeof(head) - 1 - have, timeout_ms);
            if (n <= 0)
                goto done;
            have += (size_t)n;
            head[have] = '\0';
        }
        len_hdr = strstr(head, "\r\ncontent-length: ");
        if (end == NULL || len_hdr == NULL || len_hdr > end)
            break;
        left = strtoll(len_hdr + 18, NULL, 10) - (long long)(have - (size_t)(end + 4 - head));
        /* Exactly the rest of this answer: the next is asked for after. */
        while (left > 0) {
            n = gateway__recv(
                fd, body, left < (long long)sizeof(body) ? (size_t)left : sizeof(body), timeout_ms);
            if (n <= 0)
                goto done;
            left -= n;
        }
        if (left < 0)
            break; /* more than one answer came */
    }
done:
    close(fd);
    return r;
}

char *ft_gateway_token(ft_gateway_env *e, const char *sub)
{
    return ft_plugin_env_token_now(&e->b.p, sub, FP_ROLE_USER);
}

double ft_gateway_metric(ft_gateway_env *e, const char *name)
{
    char key[128];
    ft_http_reply r;
    const char *p;
    double v = -1;

    if (ft_http(e, "GET", "/metrics", NULL, NULL, &r) == 200) {
        snprintf(key, sizeof(key), "\n%s ", name);
        p = strstr(r.body, key);
        if (p != NULL)
            v = strtod(p + strlen(key), NULL);
    }
    ft_http_reply_free(&r);
    return v;
}
