/*
 * revoked.c - the gateway's cache of revocations (revoked:<uid>), shared
 * by the HTTP workers, so that a request's token check does not need a
 * Redis round trip each time.
 *
 * A thread subscribes to the revocations channel: every raise of
 * revoked:<uid> is published there in the same script
 * (fp_store_user_revoked), and the thread raises the cached value as the
 * message comes. While the subscription is not live (not yet, or its
 * link broke) nothing is cached and every check reads Redis; each time
 * it becomes live the cache starts empty. A value a worker read from
 * Redis is kept only if the subscription stayed live since before that
 * read (a generation number), and a cached value only goes up, so a
 * message that came during the read wins over it.
 *
 * The same thread keeps the post body cache (bodies.c) right: its link
 * also listens to Redis's invalidations, and the cache is live exactly
 * when the link is. With revocation_cache off it serves the body cache
 * alone.
 *
 * Known limits: a revocation takes effect at the gateway when its
 * message arrives, milliseconds after Redis applied it (as the brokers'
 * kicks do); a subscription whose link dies silently is found within two
 * pings (REVOKED__PING_MS each), and until then revocations can be
 * missed. A SET of revoked:<uid> that bypasses the script (no message)
 * is not seen until the cache is emptied. `revocation_cache off` reads
 * Redis on every check instead.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fp_log.h"
#include "gateway.h"

#define REVOKED__SLOTS 16384  /* open addressing, emptied when 3/4 full */
#define REVOKED__PING_MS 1000 /* a silent subscription is pinged after this */
#define REVOKED__RETRY_MS 1000

typedef struct {
    char uid[FP_ID_BUFSZ]; /* "": free */
    int64_t before;
} revoked__slot;

struct fg_revoked {
    fg_gateway gw; /* its store: the subscriber */
    pthread_mutex_t lock;
    revoked__slot *slots;
    size_t used;
    uint64_t gen; /* bumped each time the cache is emptied */
    bool live;    /* the subscription is up: values may be cached */
    bool revocations;  /* revocation_cache on */
    fg_bodies *bodies; /* NULL: no body cache */
    atomic_bool stop;
    pthread_t tid;
};

static size_t revoked__hash(const char *uid)
{
    return (size_t)(fg_id_hash(uid) % REVOKED__SLOTS);
}

/* The slot of uid, or with create a new one (the table emptied first
 * when 3/4 full, which starts a new generation), or NULL. r->lock held. */
static revoked__slot *revoked__find(fg_revoked *r, const char *uid, bool create)
{
    size_t i = revoked__hash(uid);

    for (;;) {
        if (r->slots[i].uid[0] == '\0')
            break;
        if (strcmp(r->slots[i].uid, uid) == 0)
            return &r->slots[i];
        i = (i + 1) % REVOKED__SLOTS;
    }
    if (!create)
        return NULL;
    if (r->used >= REVOKED__SLOTS / 4 * 3) {
        /* Emptied: values read from Redis before now may be older than a
         * message whose slot just went, so their puts are refused. */
        memset(r->slots, 0, REVOKED__SLOTS * sizeof(*r->slots));
        r->used = 0;
        r->gen++;
        i = revoked__hash(uid);
    }
    snprintf(r->slots[i].uid, sizeof(r->slots[i].uid), "%s", uid);
    r->slots[i].before = 0;
    r->used++;
    return &r->slots[i];
}

/* Empties the cache and says whether values may be cached from now. */
static void revoked__reset(fg_revoked *r, bool live)
{
    pthread_mutex_lock(&r->lock);
    memset(r->slots, 0, REVOKED__SLOTS * sizeof(*r->slots));
    r->used = 0;
    r->gen++;
    r->live = live && r->revocations;
    pthread_mutex_unlock(&r->lock);
}

/* Raises uid's cached value to before (gen 0: from the channel). */
static void revoked__raise(fg_revoked *r, const char *uid, int64_t before, uint64_t gen)
{
    revoked__slot *slot;

    pthread_mutex_lock(&r->lock);
    if (r->live && (gen == 0 || gen == r->gen)) {
        slot = revoked__find(r, uid, true);
        if (slot->before < before)
            slot->before = before;
    }
    pthread_mutex_unlock(&r->lock);
}

int fg_revoked_get(fg_revoked *r, const char *uid, int64_t *before, uint64_t *gen)
{
    const revoked__slot *slot;
    int rc = -ENOENT;

    *gen = 0;
    if (r == NULL || !fp_id_valid(uid))
        return -ENOENT;
    pthread_mutex_lock(&r->lock);
    if (r->live) {
        slot = revoked__find(r, uid, false);
        if (slot != NULL) {
            *before = slot->before;
            rc = 0;
        } else {
            *gen = r->gen;
        }
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void fg_revoked_put(fg_revoked *r, const char *uid, int64_t before, uint64_t gen)
{
    if (r != NULL && gen != 0 && fp_id_valid(uid))
        revoked__raise(r, uid, before, gen);
}

/* Sleeps up to ms, less when asked to stop. */
static void revoked__nap(fg_revoked *r, int ms)
{
    struct timespec step = {0, 100 * 1000 * 1000};

    for (; ms > 0 && !atomic_load(&r->stop); ms -= 100)
        nanosleep(&step, NULL);
}

/* One message of the subscription. */
static void revoked__message(fg_revoked *r, fp_sub_msg *m)
{
    if (m->kind == FP_SUB_REVOKED)
        revoked__raise(r, m->uid, m->before, 0);
    else if (m->kind == FP_SUB_INVALIDATED)
        fg_bodies_invalidate(r->bodies, m->ids, m->n);
    else if (m->kind == FP_SUB_FLUSHED)
        fg_bodies_flush(r->bodies);
    fp_sub_msg_free(m);
}

/*
 * Reads the subscription until it breaks or the thread is stopped:
 * messages raise cached values or drop cached bodies, a PING after
 * REVOKED__PING_MS of silence must be answered within as long. Returns
 * why it ended (for the log).
 */
static const char *revoked__listen(fg_revoked *r)
{
    fp_store *st = r->gw.store;
    bool pinged = false;
    fp_sub_msg m;
    int rc;

    while (!atomic_load(&r->stop)) {
        rc = fp_store_sub_next(st, REVOKED__PING_MS, &m);
        if (rc == 0 && m.kind == FP_SUB_PONG)
            pinged = false;
        else if (rc == 0)
            revoked__message(r, &m);
        else if (rc == -EPROTO)
            fp_warn("subscription: %s (message ignored)", fp_store_errstr(st));
        else if (rc == -ETIMEDOUT && pinged)
            return "no answer to a ping";
        else if (rc == -ETIMEDOUT && fp_store_sub_ping(st) == 0)
            pinged = true;
        else
            return fp_store_errstr(st);
    }
    return NULL;
}

/* What is cached while the subscription is down, for the log. */
static const char *revoked__down_text(const fg_revoked *r)
{
    if (r->revocations && r->bodies != NULL)
        return "every token check and every post body reads Redis";
    if (r->revocations)
        return "every token check reads Redis";
    return "every post body reads Redis";
}

/*
 * Subscribes: to the invalidations first when there is a body cache (a
 * subscriber cannot ask for its client id), then to the revocations.
 * Invalidations refused (an ACL without CLIENT or __redis__:invalidate)
 * leave the body cache off, logged once. 0 or -1.
 */
static int revoked__subscribe(fg_revoked *r, long long *client_id, bool *refused)
{
    fp_store *st = r->gw.store;
    int rc;

    *client_id = 0;
    if (fp_store_reconnect(st) != 0)
        return -1;
    if (r->bodies != NULL) {
        rc = fp_store_subscribe_invalidations(st, client_id);
        if (rc == -EPROTO && !*refused)
            fp_warn("post body cache off: Redis refused its invalidations (%s)",
                    fp_store_errstr(st));
        if (rc == -EPROTO)
            *refused = true;
        else if (rc != 0)
            return -1;
    }
    if (r->revocations && fp_store_subscribe_revoked(st) != 0)
        return -1;
    if (!r->revocations && *client_id == 0)
        return -1; /* nothing to listen to */
    return 0;
}

static void *revoked__main(void *arg)
{
    fg_revoked *r = arg;
    bool down = false, refused = false;
    long long client_id;
    const char *why;

    while (!atomic_load(&r->stop)) {
        if (revoked__subscribe(r, &client_id, &refused) != 0) {
            if (!down && !(refused && !r->revocations))
                fp_warn("subscription: %s; %s until it is back", fp_store_errstr(r->gw.store),
                        revoked__down_text(r));
            down = true;
            revoked__nap(r, REVOKED__RETRY_MS);
            continue;
        }
        revoked__reset(r, true);
        fg_bodies_live(r->bodies, client_id);
        fp_info("subscription up%s: revocation cache %s, post body cache %s", down ? " again" : "",
                r->revocations ? "on" : "off", client_id != 0 ? "on" : "off");
        down = false;
        why = revoked__listen(r);
        revoked__reset(r, false);
        fg_bodies_live(r->bodies, 0);
        if (why != NULL) {
            fp_warn("subscription: %s; %s until it is back", why, revoked__down_text(r));
            down = true;
        }
    }
    return NULL;
}

int fg_revoked_start(fg_revoked **out, const fg_gateway *gw)
{
    fg_revoked *r = calloc(1, sizeof(*r));
    int rc = -ENOMEM;

    *out = NULL;
    if (r == NULL)
        return -ENOMEM;
    r->slots = calloc(REVOKED__SLOTS, sizeof(*r->slots));
    if (r->slots == NULL)
        goto fail_slots;
    fg_backend_copy(&r->gw, gw);
    r->revocations = gw->cfg.revocation_cache;
    r->bodies = gw->shared->bodies;
    if (pthread_mutex_init(&r->lock, NULL) != 0)
        goto fail_mutex;
    rc = fg_backend_open(&r->gw, true, false);
    if (rc != 0)
        goto fail_open;
    if (pthread_create(&r->tid, NULL, revoked__main, r) != 0) {
        rc = -EAGAIN;
        goto fail_thread;
    }
    *out = r;
    return 0;
fail_thread:
    fg_backend_close(&r->gw);
fail_open:
    pthread_mutex_destroy(&r->lock);
fail_mutex:
    free(r->slots);
fail_slots:
    free(r);
    return rc;
}

void fg_revoked_stop(fg_revoked *r)
{
    if (r == NULL)
        return;
    atomic_store(&r->stop, true);
    pthread_join(r->tid, NULL);
    fg_backend_close(&r->gw);
    pthread_mutex_destroy(&r->lock);
    free(r->slots);
    free(r);
}
