/*
 * store_sub.c - a store turned subscriber, for feed-gateway's caches: of
 * the revocations channel (<prefix>revoked, docs/protocol.md) and of
 * Redis's invalidations (__redis__:invalidate: the post bodies the
 * gateway cached changed or went). Reads never block longer than the
 * caller asks: a hiredis read timeout would leave the context unusable,
 * so the socket is polled first.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>

#include "fp_id.h"
#include "fp_keys.h"
#include "fp_time.h"
#include "store_priv.h"

/* Where Redis sends the invalidations of client-side caching. */
#define SUB__INVALIDATE "__redis__:invalidate"

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

int fp_store_subscribe_invalidations(fp_store *s, long long *client_id)
{
    redisReply *r;
    long long id;
    int rc = 0;

    if (s == NULL || client_id == NULL)
        return -EINVAL;
    *client_id = 0;
    if (store__connected(s) != 0)
        return -EIO;
    r = redisCommand(s->c, "CLIENT ID");
    if (r == NULL) {
        store__fail(s, "client id");
        return -EIO;
    }
    if (r->type != REDIS_REPLY_INTEGER || r->integer <= 0) {
        rc = store__protocol(s, "client id", r);
        freeReplyObject(r);
        return rc;
    }
    id = r->integer;
    freeReplyObject(r);
    r = redisCommand(s->c, "SUBSCRIBE " SUB__INVALIDATE);
    if (r == NULL) {
        store__fail(s, "subscribe");
        return -EIO;
    }
    if (!sub__is(r, 3, "subscribe"))
        rc = store__protocol(s, "subscribe", r);
    else
        *client_id = id; /* only once it listens */
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

/* One whole reply, waiting at most timeout_ms in all for its bytes,
 * however many pieces they come in. 0 with *out set (the caller frees
 * it), -ETIMEDOUT, or -EIO. */
static int sub__read(fp_store *s, int timeout_ms, redisReply **out)
{
    int64_t end = fp_time_mono_ms() + timeout_ms, left;
    void *r = NULL;
    struct pollfd pfd;
    int n;

    if (redisGetReplyFromReader(s->c, &r) != REDIS_OK)
        goto fail;
    while (r == NULL) {
        pfd = (struct pollfd){.fd = s->c->fd, .events = POLLIN};
        left = end - fp_time_mono_ms();
        n = poll(&pfd, 1, left > 0 ? (int)left : 0);
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
    store__fail(s, "read");
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

void fp_sub_msg_free(fp_sub_msg *m)
{
    if (m == NULL)
        return;
    free(m->ids);
    m->ids = NULL;
    m->n = 0;
}

/*
 * An invalidation's payload into m: nil (everything was flushed) or the
 * keys that changed, of which the post bodies (<prefix>post:<id>) are
 * kept as ids. Returns 0, -EPROTO or -ENOMEM.
 */
static int sub__invalidated(fp_store *s, const redisReply *keys, fp_sub_msg *m)
{
    char head[STORE__KEY_MAX];
    size_t i, hl;

    if (keys->type == REDIS_REPLY_NIL) {
        m->kind = FP_SUB_FLUSHED;
        return 0;
    }
    if (keys->type != REDIS_REPLY_ARRAY)
        return store__protocol(s, "invalidation", keys);
    m->kind = FP_SUB_INVALIDATED;
    if (keys->elements == 0)
        return 0;
    m->ids = calloc(keys->elements, sizeof(*m->ids));
    if (m->ids == NULL)
        return -ENOMEM;
    store__key(s, head, FP_KEY_POST, "");
    hl = strlen(head);
    for (i = 0; i < keys->elements; i++) {
        const redisReply *k = keys->element[i];

        if (k->type != REDIS_REPLY_STRING || k->len <= hl || memcmp(k->str, head, hl) != 0 ||
            !fp_id_valid_n(k->str + hl, k->len - hl))
            continue;
        memcpy(m->ids[m->n], k->str + hl, k->len - hl);
        m->ids[m->n][k->len - hl] = '\0';
        m->n++;
    }
    return 0;
}

int fp_store_sub_next(fp_store *s, int timeout_ms, fp_sub_msg *m)
{
    redisReply *r = NULL;
    int rc;

    if (s == NULL || m == NULL)
        return -EINVAL;
    memset(m, 0, sizeof(*m));
    if (store__connected(s) != 0)
        return -EIO;
    rc = sub__read(s, timeout_ms, &r);
    if (rc != 0)
        return rc;
    if (sub__is(r, 3, "message") && r->element[1]->type == REDIS_REPLY_STRING &&
        strcmp(r->element[1]->str, SUB__INVALIDATE) == 0) {
        rc = sub__invalidated(s, r->element[2], m);
    } else if (sub__is(r, 3, "message")) {
        m->kind = FP_SUB_REVOKED;
        rc = sub__parse(s, r->element[2], m->uid, &m->before);
    } else if (sub__is(r, 2, "pong")) {
        m->kind = FP_SUB_PONG;
    } else {
        rc = store__protocol(s, "subscription", r);
    }
    freeReplyObject(r);
    if (rc != 0)
        fp_sub_msg_free(m);
    return rc;
}
