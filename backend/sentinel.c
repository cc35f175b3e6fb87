/*
 * sentinel.c - the Redis primary through Redis Sentinel; see fp_sentinel.h.
 */
#include "fp_sentinel.h"
#include "fp_store.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "fp_time.h"

#define SENTINEL__CHANNEL "+switch-master"
#define SENTINEL__RETRY_MS 1000 /* between two attempts to open the watch again */

/* The watch connection's states. */
typedef enum {
    SENTINEL__NONE,     /* no watch: open one at next_ms */
    SENTINEL__DIALLING, /* non-blocking connect in progress */
    SENTINEL__STARTING, /* [AUTH,] question and SUBSCRIBE sent, replies awaited */
    SENTINEL__WATCHING  /* subscribed */
} sentinel__state;

struct fp_sentinel {
    fp_host sentinels[FP_HOSTS_MAX];
    size_t n, cur; /* cur: the one that answered last */
    char name[FP_SENTINEL_NAME_MAX + 1];
    int timeout_ms;
    char *user;          /* AUTH as (NULL: the default user) */
    char *password_file; /* AUTH with the password in it (NULL: no AUTH) */
    redisContext *watch; /* SUBSCRIBE +switch-master, or NULL */
    sentinel__state state;
    size_t watch_k;      /* the Sentinel the watch is on, or being opened on */
    int replies;         /* STARTING: replies to read before SUBSCRIBE's */
    int64_t deadline_ms; /* DIALLING, STARTING: give this Sentinel up then */
    /* Each Sentinel's address as a blocking dial last found it (getpeername;
     * "": none yet), so that opening the watch again resolves no name. */
    char addr[FP_HOSTS_MAX][INET6_ADDRSTRLEN];
    int64_t next_ms;     /* NONE: the next attempt */
    fp_host primary;     /* what fp_sentinel_primary returned last */
    bool located;        /* primary is set: the watch is opened again */
    bool switched;       /* seen on the watch, not reported yet */
    char errstr[320];
};

int fp_sentinel_new(fp_sentinel **out, const char *list, const char *name, int timeout_ms,
                    char *err, size_t errlen)
{
    fp_sentinel *s;
    int n;
    size_t i;

    *out = NULL;
    if (name == NULL || name[0] == '\0' || strlen(name) > FP_SENTINEL_NAME_MAX) {
        snprintf(err, errlen, "the master name must have 1 to %d characters", FP_SENTINEL_NAME_MAX);
        return -EINVAL;
    }
    for (i = 0; name[i] != '\0'; i++) {
        if (name[i] <= ' ' || name[i] == 0x7f) {
            snprintf(err, errlen, "the master name may not hold spaces or control characters");
            return -EINVAL;
        }
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    n = fp_hosts_parse(list != NULL ? list : "", FP_SENTINEL_PORT, s->sentinels, err, errlen);
    if (n < 0) {
        free(s);
        return n;
    }
    s->n = (size_t)n;
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->timeout_ms = timeout_ms > 0 ? timeout_ms : 1000;
    *out = s;
    return 0;
}

static void sentinel__unwatch(fp_sentinel *s)
{
    if (s->watch != NULL)
        redisFree(s->watch);
    s->watch = NULL;
    s->state = SENTINEL__NONE;
}

int fp_sentinel_auth(fp_sentinel *s, const char *user, const char *path)
{
    free(s->user);
    free(s->password_file);
    s->user = NULL;
    s->password_file = NULL;
    if (path == NULL || path[0] == '\0')
        return 0;
    s->password_file = strdup(path);
    if (user != NULL && user[0] != '\0')
        s->user = strdup(user);
    if (s->password_file == NULL || (user != NULL && user[0] != '\0' && s->user == NULL))
        return -ENOMEM;
    return 0;
}

void fp_sentinel_free(fp_sentinel *s)
{
    if (s == NULL)
        return;
    sentinel__unwatch(s);
    free(s->user);
    free(s->password_file);
    free(s);
}

const char *fp_sentinel_errstr(const fp_sentinel *s)
{
    return s != NULL ? s->errstr : "out of memory";
}

int fp_sentinel_fd(const fp_sentinel *s)
{
    return s != NULL && s->watch != NULL ? s->watch->fd : -1;
}

bool fp_sentinel_watching(const fp_sentinel *s)
{
    return s != NULL && s->watch != NULL && s->state == SENTINEL__WATCHING;
}

bool fp_sentinel_readonly(const char *error_text)
{
    return error_text != NULL && strncmp(error_text, "READONLY", 8) == 0;
}

/* Records the address Sentinel k was reached at on fd (a connected TCP
 * socket), for sentinel__rewatch_start; kept as it was when unknown. */
static void sentinel__remember_addr(fp_sentinel *s, size_t k, int fd)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    const void *in;

    if (getpeername(fd, (struct sockaddr *)&sa, &len) != 0)
        return;
    if (sa.ss_family == AF_INET)
        in = &((const struct sockaddr_in *)&sa)->sin_addr;
    else if (sa.ss_family == AF_INET6)
        in = &((const struct sockaddr_in6 *)&sa)->sin6_addr;
    else
        return;
    if (inet_ntop(sa.ss_family, in, s->addr[k], sizeof(s->addr[k])) == NULL)
        s->addr[k][0] = '\0';
}

/* Sets errstr to "sentinel <host>:<port>: " and what fmt says. */
static void sentinel__fail(fp_sentinel *s, const fp_host *h, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sentinel__fail(fp_sentinel *s, const fp_host *h, const char *fmt, ...)
{
    int n = snprintf(s->errstr, sizeof(s->errstr), "sentinel %.64s:%d: ", h->host, h->port);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s->errstr + n, sizeof(s->errstr) - (size_t)n, fmt, ap);
    va_end(ap);
}

/*
 * Reads Sentinel h's answer r to SENTINEL get-master-addr-by-name into
 * *primary. 0, or -EIO when it is an error or names no usable address
 * (errstr says which).
 */
static int sentinel__answer(fp_sentinel *s, const fp_host *h, const redisReply *r, fp_host *primary)
{
    char *end;
    long port;

    if (r->type == REDIS_REPLY_ERROR) {
        sentinel__fail(s, h, "%.100s", r->str);
        return -EIO;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING ||
        r->element[0]->len > FP_HOST_MAX) {
        sentinel__fail(s, h, "knows no primary called \"%s\"", s->name);
        return -EIO;
    }
    port = strtol(r->element[1]->str, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535) {
        sentinel__fail(s, h, "bad port in its answer");
        return -EIO;
    }
    memcpy(primary->host, r->element[0]->str, r->element[0]->len);
    primary->host[r->element[0]->len] = '\0';
    primary->port = (int)port;
    return 0;
}

/* Connects to one host with the timeouts, and AUTHs when a password is
 * set (fp_sentinel_auth). NULL on failure (errstr set). */
static redisContext *sentinel__dial(fp_sentinel *s, const fp_host *h)
{
    struct timeval tv = {s->timeout_ms / 1000, (s->timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(h->host, h->port, tv);
    char why[256];

    if (c == NULL) {
        sentinel__fail(s, h, "out of memory");
        return NULL;
    }
    if (c->err != 0 || redisSetTimeout(c, tv) != REDIS_OK) {
        sentinel__fail(s, h, "%.100s", c->errstr);
        redisFree(c);
        return NULL;
    }
    if (fp_redis_auth(c, "redis_sentinel_password_file", s->user, s->password_file, why,
                      sizeof(why)) != 0) {
        sentinel__fail(s, h, "%.200s", why);
        redisFree(c);
        return NULL;
    }
    sentinel__remember_addr(s, (size_t)(h - s->sentinels), c->fd);
    return c;
}

/*
 * Takes c, on which SUBSCRIBE +switch-master was sent, as the new watch
 * when SUBSCRIBE's reply says it is subscribed; frees it otherwise (best
 * effort: without a watch, connection loss and READONLY still make
 * callers ask again, and later calls of fp_sentinel_switched open one).
 */
static void sentinel__watch(fp_sentinel *s, redisContext *c)
{
    redisReply *r = NULL;

    sentinel__unwatch(s);
    s->next_ms = fp_time_mono_ms() + SENTINEL__RETRY_MS; /* if it is lost: not at once */
    if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL || r->type != REDIS_REPLY_ARRAY ||
        r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(r->element[0]->str, "subscribe") != 0) {
        if (r != NULL)
            freeReplyObject(r);
        redisFree(c);
        return;
    }
    freeReplyObject(r);
    redisEnableKeepAlive(c); /* a Sentinel host gone silent is noticed */
    s->watch = c;
    s->state = SENTINEL__WATCHING;
}

/*
 * Asks Sentinel k for the primary and subscribes the same connection to
 * +switch-master, the two commands in one write. A Sentinel runs the
 * commands of one read of a connection one after the other, with no
 * failover step between them, so a switch after its answer is on the
 * watch: asked on one connection and subscribed on another, a switch
 * between the two went unseen. Returns 0 with *primary filled (the
 * connection kept as the watch when SUBSCRIBE was accepted), or -EIO (I/O,
 * an error reply, or it does not know the name: errstr says which).
 */
static int sentinel__ask(fp_sentinel *s, size_t k, fp_host *primary)
{
    const fp_host *h = &s->sentinels[k];
    redisContext *c = sentinel__dial(s, h);
    redisReply *r = NULL;
    int rc;

    if (c == NULL)
        return -EIO;
    if (redisAppendCommand(c, "SENTINEL get-master-addr-by-name %s", s->name) != REDIS_OK ||
        redisAppendCommand(c, "SUBSCRIBE " SENTINEL__CHANNEL) != REDIS_OK) {
        sentinel__fail(s, h, "out of memory");
        redisFree(c);
        return -EIO;
    }
    if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL) {
        sentinel__fail(s, h, "%.100s", c->errstr);
        redisFree(c);
        return -EIO;
    }
    rc = sentinel__answer(s, h, r, primary);
    freeReplyObject(r);
    if (rc != 0) {
        redisFree(c);
        return rc;
    }
    sentinel__watch(s, c);
    return 0;
}

int fp_sentinel_primary(fp_sentinel *s, fp_host *primary)
{
    size_t i, k;

    for (i = 0; i < s->n; i++) {
        k = (s->cur + i) % s->n;
        if (sentinel__ask(s, k, primary) != 0)
            continue;
        s->cur = k;
        s->switched = false;
        s->primary = *primary;
        s->located = true;
        s->watch_k = k;
        return 0;
    }
    return -EIO;
}

/* Is "<new ip> <new port>", the end of a +switch-master text of len
 * bytes, the primary fp_sentinel_primary returned last? */
static bool sentinel__already_there(const fp_sentinel *s, const char *text, size_t len)
{
    const char *port = NULL, *host = NULL;
    size_t i = len;

    while (i > 0 && host == NULL) {
        i--;
        if (text[i] != ' ')
            continue;
        if (port == NULL)
            port = text + i + 1;
        else
            host = text + i + 1;
    }
    return host != NULL && (size_t)(port - 1 - host) == strlen(s->primary.host) &&
           strncmp(host, s->primary.host, (size_t)(port - 1 - host)) == 0 &&
           strtol(port, NULL, 10) == s->primary.port;
}

/*
 * A +switch-master message ("<name> <old ip> <old port> <new ip> <new
 * port>") that moves our primary? One naming as the new primary the one
 * fp_sentinel_primary returned last is not: a lookup made during the
 * failover already found it (the promoted replica is named before the
 * message goes out), and reconnecting to it again would be for nothing.
 */
static bool sentinel__is_switch(const fp_sentinel *s, const redisReply *r)
{
    size_t len = strlen(s->name);
    const redisReply *text;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") != 0)
        return false;
    text = r->element[2];
    if (text->type != REDIS_REPLY_STRING || text->len <= len ||
        strncmp(text->str, s->name, len) != 0 || text->str[len] != ' ')
        return false;
    return !(s->located && sentinel__already_there(s, text->str, text->len));
}

/* An attempt to open the watch again failed (errstr says why): the next
 * one goes to the next Sentinel, SENTINEL__RETRY_MS after this one began. */
static void sentinel__rewatch_failed(fp_sentinel *s)
{
    sentinel__unwatch(s);
    s->watch_k = (s->watch_k + 1) % s->n;
}

/*
 * Starts opening the watch on Sentinel watch_k without blocking: a
 * non-blocking connect with [AUTH,] the question and SUBSCRIBE queued
 * behind it. The question's answer is compared with the primary known, so
 * a switch while there was no watch is not missed.
 */
static void sentinel__rewatch_start(fp_sentinel *s)
{
    const fp_host *h = &s->sentinels[s->watch_k];
    char why[256];
    int rc;

    s->next_ms = fp_time_mono_ms() + SENTINEL__RETRY_MS; /* if it is lost: not at once */
    s->watch = redisConnectNonBlock(s->addr[s->watch_k][0] != '\0' ? s->addr[s->watch_k] : h->host,
                                    h->port);
    if (s->watch == NULL || s->watch->err != 0) {
        sentinel__fail(s, h, "%.100s", s->watch != NULL ? s->watch->errstr : "out of memory");
        sentinel__rewatch_failed(s);
        return;
    }
    redisEnableKeepAlive(s->watch);
    rc = fp_redis_auth_append(s->watch, "redis_sentinel_password_file", s->user, s->password_file,
                              why, sizeof(why));
    if (rc < 0 ||
        redisAppendCommand(s->watch, "SENTINEL get-master-addr-by-name %s", s->name) != REDIS_OK ||
        redisAppendCommand(s->watch, "SUBSCRIBE " SENTINEL__CHANNEL) != REDIS_OK) {
        sentinel__fail(s, h, "%.200s", rc < 0 ? why : "out of memory");
        sentinel__rewatch_failed(s);
        return;
    }
    s->replies = rc + 1; /* [AUTH's,] the question's */
    s->state = SENTINEL__DIALLING;
    s->deadline_ms = fp_time_mono_ms() + s->timeout_ms;
}

/* DIALLING: 1 when the connect has completed, 0 while it goes on, -1 when
 * it failed (errstr set). */
static int sentinel__dialled(fp_sentinel *s)
{
    const fp_host *h = &s->sentinels[s->watch_k];
    struct pollfd p = {.fd = s->watch->fd, .events = POLLOUT};
    socklen_t len = sizeof(int);
    int soerr = 0;

    if (poll(&p, 1, 0) != 1)
        return 0;
    if (getsockopt(s->watch->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
        soerr = errno;
    if (soerr == 0 && (p.revents & (POLLERR | POLLHUP)) == 0) {
        /* Its address, for the next watch on it: no name looked up then. */
        sentinel__remember_addr(s, s->watch_k, s->watch->fd);
        return 1;
    }
    sentinel__fail(s, h, "%s", strerror(soerr != 0 ? soerr : ECONNREFUSED));
    return -1;
}

/*
 * STARTING: takes one reply: AUTH's, the question's, then SUBSCRIBE's
 * (s->replies counts down to it). 0 when it is accepted, -1 when this
 * Sentinel is given up (errstr set). The question's answer, when it names
 * another primary, is a switch.
 */
static int sentinel__starting_reply(fp_sentinel *s, const redisReply *r)
{
    const fp_host *h = &s->sentinels[s->watch_k];
    fp_host named;

    if (s->replies == 1) { /* the question's */
        if (sentinel__answer(s, h, r, &named) != 0)
            return -1;
        if (strcmp(named.host, s->primary.host) != 0 || named.port != s->primary.port)
            s->switched = true;
        return 0;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        sentinel__fail(s, h, "%s refused: %.100s", s->replies == 0 ? "SUBSCRIBE" : "AUTH", r->str);
        return -1;
    }
    if (s->replies == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
                            r->element[0]->type != REDIS_REPLY_STRING ||
                            strcmp(r->element[0]->str, "subscribe") != 0)) {
        sentinel__fail(s, h, "SUBSCRIBE: unexpected reply");
        return -1;
    }
    return 0;
}

/*
 * Moves an attempt to open the watch on as far as it can without waiting:
 * the connect, the queued commands, the replies before SUBSCRIBE's. On
 * SUBSCRIBE's reply the watch is WATCHING; on a failure or past the
 * deadline the attempt is dropped (sentinel__rewatch_failed).
 */
static void sentinel__rewatch_step(fp_sentinel *s)
{
    const fp_host *h = &s->sentinels[s->watch_k];
    struct pollfd p;
    void *reply;
    int done = 0, rc = 0;

    if (s->state == SENTINEL__DIALLING) {
        rc = sentinel__dialled(s);
        if (rc == 1) {
            s->state = SENTINEL__STARTING;
            /* Counted again from here: a caller that comes seldom (a quiet
             * gateway worker) still gets the replies of what it sends. */
            s->deadline_ms = fp_time_mono_ms() + s->timeout_ms;
        }
    }
    if (s->state == SENTINEL__STARTING) {
        if (redisBufferWrite(s->watch, &done) != REDIS_OK)
            rc = -1;
        p.fd = s->watch->fd;
        p.events = POLLIN;
        p.revents = 0;
        if (rc >= 0 && poll(&p, 1, 0) == 1 && redisBufferRead(s->watch) != REDIS_OK)
            rc = -1;
        if (rc == -1)
            sentinel__fail(s, h, "%.100s", s->watch->errstr);
        while (rc >= 0 && s->state == SENTINEL__STARTING) {
            reply = NULL;
            if (redisGetReplyFromReader(s->watch, &reply) != REDIS_OK) {
                rc = -1;
                sentinel__fail(s, h, "%.100s", s->watch->errstr);
                break;
            }
            if (reply == NULL)
                break;
            if (sentinel__starting_reply(s, reply) != 0)
                rc = -1;
            else if (s->replies == 0)
                s->state = SENTINEL__WATCHING; /* SUBSCRIBE's reply */
            else
                s->replies--;
            freeReplyObject(reply);
        }
    }
    if (rc < 0 || (s->state != SENTINEL__WATCHING && fp_time_mono_ms() >= s->deadline_ms)) {
        if (rc >= 0)
            sentinel__fail(s, h, "no answer within %d ms", s->timeout_ms);
        sentinel__rewatch_failed(s);
    }
}

int fp_sentinel_switched(fp_sentinel *s)
{
    struct pollfd p;
    void *reply;

    if (s->watch == NULL && s->located && s->n > 0 && fp_time_mono_ms() >= s->next_ms)
        sentinel__rewatch_start(s);
    if (s->watch != NULL && s->state != SENTINEL__WATCHING)
        sentinel__rewatch_step(s);
    if (s->watch != NULL && s->state == SENTINEL__WATCHING) {
        p.fd = s->watch->fd;
        p.events = POLLIN;
        p.revents = 0;
        if (poll(&p, 1, 0) == 1 && redisBufferRead(s->watch) != REDIS_OK) {
            sentinel__unwatch(s);
        }
        while (s->watch != NULL) {
            reply = NULL;
            if (redisGetReplyFromReader(s->watch, &reply) != REDIS_OK) {
                sentinel__unwatch(s);
                break;
            }
            if (reply == NULL)
                break;
            if (sentinel__is_switch(s, reply))
                s->switched = true;
            freeReplyObject(reply);
        }
    }
    if (!s->switched)
        return 0;
    s->switched = false;
    return 1;
}

int fp_sentinel_check_primary(redisContext *c, char *err, size_t errlen)
{
    redisReply *r = redisCommand(c, "ROLE");
    int rc;

    if (r == NULL) {
        snprintf(err, errlen, "ROLE: %s", c->errstr);
        return -EIO;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        /* NOAUTH (no redis_password_file), NOPERM: the cause, not a
         * failover. */
        snprintf(err, errlen, "ROLE refused: %.160s", r->str);
        freeReplyObject(r);
        return -EPROTO;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master") == 0) {
        rc = 0;
    } else {
        snprintf(err, errlen, "not the primary (ROLE: %s)",
                 r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                         r->element[0]->type == REDIS_REPLY_STRING
                     ? r->element[0]->str
                     : "unexpected reply");
        rc = -EAGAIN;
    }
    freeReplyObject(r);
    return rc;
}

int fp_redis_options_check(const fp_redis_options *o, char *err, size_t errlen)
{
    fp_sentinel *s = NULL;
    char why[256];
    int rc;

    if (o->prefix != NULL && strlen(o->prefix) > FP_STORE_PREFIX_MAX) {
        snprintf(err, errlen, "redis_prefix: longer than %d bytes", FP_STORE_PREFIX_MAX);
        return -EINVAL;
    }
    if (o->host != NULL && strlen(o->host) > FP_HOST_MAX) {
        snprintf(err, errlen, "redis_host: longer than %d bytes", FP_HOST_MAX);
        return -EINVAL;
    }
    rc = fp_redis_password_check("redis_password_file", o->password_file, err, errlen);
    if (rc == 0)
        rc = fp_redis_password_check("redis_sentinel_password_file", o->sentinel_password_file, err,
                                     errlen);
    if (rc != 0)
        return rc;
    if (o->sentinels == NULL || o->sentinels[0] == '\0')
        return 0;
    rc = fp_sentinel_new(&s, o->sentinels, o->master_name, 1000, why, sizeof(why));
    fp_sentinel_free(s);
    if (rc == -EINVAL)
        snprintf(err, errlen, "redis_sentinels/redis_master_name: %s", why);
    else if (rc != 0)
        snprintf(err, errlen, "out of memory");
    return rc;
}
