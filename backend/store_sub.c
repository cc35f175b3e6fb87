/*
 * store_sub.c - a store turned subscriber of the revocations channel
 * (<prefix>revoked, docs/protocol.md), for feed-gateway's revocation
 * cache. Reads never block longer than the caller asks: a hiredis read
 * timeout would leave the context unusable, so the socket is polled
 * first.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>

#include "fp_id.h"
#include "fp_keys.h"
#include "store_priv.h"

/* True when r is an array of n elements whose first is the string kind. */
static bool sub__is(const redisReply *r, size_t n, const char *kind)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements == n &&
           (r->element[0]->type == REDIS_REPLY_STRING ||
            r->element[0]->type == REDIS_REPLY_STATUS) &&
           strcasecmp(r->element[0]->str, kind) == 0;
}

int fp_store_subscribe_revoked(fp_store *s)
{
    char chan[STORE__KEY_MAX];
    redisReply *r;
    int rc = 0;

    if (s == NULL)
        return -EINVAL;
    if (store__connected(s) != 0)
        return -EIO;
    store__key(s, chan, FP_KEY_REVOKED_CHANNEL, "");
    r = redisCommand(s->c, "SUBSCRIBE %s", chan);
    if (r == NULL) {
        store__fail(s, "subscribe");
        return -EIO;
    }
    if (!sub__is(r, 3, "subscribe"))
        rc = store__protocol(s, "subscribe", r);
    freeReplyObject(r);
    return rc;
}

int fp_store_sub_ping(fp_store *s)
{
    int done = 0;

    if (s == NULL)
        return -EINVAL;
    if (store__connected(s) != 0)
        return -EIO;
    if (redisAppendCommand(s->c, "PING") != REDIS_OK)
        goto fail;
    while (!done) {
        if (redisBufferWrite(s->c, &done) != REDIS_OK)
            goto fail;
    }
    return 0;
fail:
    store__fail(s, "ping");
    return -EIO;
}

/* One whole reply, waiting at most timeout_ms for its bytes. 0 with *out
 * set (the caller frees it), -ETIMEDOUT, or -EIO. */
static int sub__read(fp_store *s, int timeout_ms, redisReply **out)
{
    void *r = NULL;
    struct pollfd pfd;
    int n;

    if (redisGetReplyFromReader(s->c, &r) != REDIS_OK)
        goto fail;
    while (r == NULL) {
        pfd = (struct pollfd){.fd = s->c->fd, .events = POLLIN};
        n = poll(&pfd, 1, timeout_ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            return -ETIMEDOUT;
        if (n < 0 || redisBufferRead(s->c) != REDIS_OK ||
            redisGetReplyFromReader(s->c, &r) != REDIS_OK)
            goto fail;
    }
    *out = r;
    return 0;
fail:
    store__fail(s, "subscription");
    return -EIO;
}

/* "<uid> <before>" into uid and *before. 0 or -EPROTO. */
static int sub__parse(fp_store *s, const redisReply *payload, char *uid, int64_t *before)
{
    const char *sp;
    char *end;
    size_t n;
    long long v;

    if (payload->type != REDIS_REPLY_STRING)
        return store__protocol(s, "revoked message", payload);
    sp = memchr(payload->str, ' ', payload->len);
    n = sp != NULL ? (size_t)(sp - payload->str) : 0;
    if (n == 0 || n > FP_ID_MAX) {
        store__invalid(s, "revoked message", "not \"<uid> <before>\"");
        return -EPROTO;
    }
    memcpy(uid, payload->str, n);
    uid[n] = '\0';
    errno = 0;
    v = strtoll(sp + 1, &end, 10);
    if (!fp_id_valid(uid) || errno != 0 || end == sp + 1 || end != payload->str + payload->len ||
        v < 0) {
        store__invalid(s, "revoked message", "not \"<uid> <before>\"");
        return -EPROTO;
    }
    *before = v;
    return 0;
}

int fp_store_revoked_next(fp_store *s, int timeout_ms, char uid[FP_ID_BUFSZ], int64_t *before)
{
    redisReply *r = NULL;
    int rc;

    if (s == NULL || uid == NULL || before == NULL)
        return -EINVAL;
    if (store__connected(s) != 0)
        return -EIO;
    rc = sub__read(s, timeout_ms, &r);
    if (rc != 0)
        return rc;
    if (sub__is(r, 3, "message"))
        rc = sub__parse(s, r->element[2], uid, before);
    else if (sub__is(r, 2, "pong"))
        rc = 1;
    else
        rc = store__protocol(s, "subscription", r);
    freeReplyObject(r);
    return rc;
}
