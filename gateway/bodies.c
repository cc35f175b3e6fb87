/*
 * bodies.c - the gateway's cache of post bodies (post:<id>), shared by
 * the HTTP workers: a feed page takes the bodies it finds here and reads
 * only the others from Redis (backend/store_read.c, through
 * fp_body_cache).
 *
 * It is kept right by Redis's client-side caching. A body is read into
 * the cache with tracking on, redirected to the client id of the
 * gateway's subscriber (revoked.c), so Redis sends that subscriber the
 * key on __redis__:invalidate when the body changes, is deleted or
 * expires, and the thread drops it here. While the subscriber is not
 * live the cache is off (empty, nothing kept); each time it becomes live
 * the cache starts empty. A body read from Redis is kept only if no
 * invalidation came since before that read (an epoch number): one that
 * came after drops it again. When Redis refuses the tracking (an ACL
 * without CLIENT TRACKING), nothing is kept and that is logged once, until
 * a read's tracking is taken again or the cache goes live again.
 *
 * Only bodies that are one JSON object are kept, so a page need not check
 * them again; so is the absence of a body (a post deleted or expired
 * whose id a feed still holds), which Redis tracks the same way. When the
 * bodies kept would pass max_bytes, an eighth of the cache goes: whole
 * hash chains, from where the last eviction stopped (a sweep in hash
 * order, so what goes is unrelated to how recently it was read).
 *
 * Redis tracks keys per link and forgets them when the link closes, so
 * the cache remembers the client ids of the links whose reads it keeps
 * (the workers'), and the health loop empties it once one of them is gone
 * (fg_bodies_check_readers).
 *
 * Known limits: an invalidation takes effect when its message arrives,
 * milliseconds after the change (a page read meanwhile may still show
 * the old body); a subscriber whose link dies silently is found within
 * two pings (revoked.c), and a closed reader's link within a health
 * period, and until then changes can be missed. An
 * expired body is dropped when Redis deletes it, which for a key nobody
 * touches can be some time after its TTL ran out.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fp_json.h"
#include "fp_log.h"
#include "gateway.h"

#define BODIES__BUCKETS 65536 /* chained */

typedef struct bodies__entry {
    struct bodies__entry *next;
    size_t len;
    bool gone; /* post:<id> does not exist (body is "") */
    char id[FP_ID_BUFSZ];
    char body[]; /* len bytes and a NUL */
} bodies__entry;

struct fg_bodies {
    pthread_mutex_t lock;
    bodies__entry **buckets;
    size_t bytes;       /* kept: entries and bodies */
    size_t max_bytes;   /* never passed: bodies__evict first */
    size_t sweep;       /* the bucket the next eviction starts at */
    uint64_t epoch;     /* bumped by every invalidation and every emptying */
    long long redirect; /* the subscriber's client id; 0: the cache is off */
    uint64_t hits;      /* ids answered from memory (a body, or none) */
    uint64_t misses;    /* ids left to Redis */
    bool refused;       /* Redis refused the tracking of a read: logged */
    bool unchecked;     /* Redis refused CLIENT LIST: nothing kept, logged */
    /* The client ids of the links whose reads are kept (the workers'):
     * Redis forgets what a link tracked when it closes, so the cache is
     * emptied once one is gone (fg_bodies_check_readers). */
    long long readers[FG_BODIES_READERS_MAX];
    size_t n_readers;
    fp_body_cache ops;
};

uint64_t fg_id_hash(const char *id)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */

    for (; *id != '\0'; id++)
        h = (h ^ (unsigned char)*id) * 1099511628211ULL;
    return h;
}

bool fg_body_is_object(const char *body)
{
    cJSON *v = NULL;
    int rc = fp_json_object_parse(body, strlen(body), &v, NULL, 0);

    cJSON_Delete(v);
    return rc == 0;
}

/* The link to id's entry (NULL at the end of its chain). b->lock held. */
static bodies__entry **bodies__slot(fg_bodies *b, const char *id)
{
    bodies__entry **e = &b->buckets[fg_id_hash(id) % BODIES__BUCKETS];

    while (*e != NULL && strcmp((*e)->id, id) != 0)
        e = &(*e)->next;
    return e;
}

/* Drops every entry and starts a new epoch. b->lock held. */
static void bodies__empty(fg_bodies *b)
{
    bodies__entry *e, *next;
    size_t i;

    for (i = 0; i < BODIES__BUCKETS && b->bytes > 0; i++) {
        for (e = b->buckets[i]; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
        b->buckets[i] = NULL;
    }
    b->bytes = 0;
    b->epoch++;
}

/* Frees whole chains from b->sweep on until at most target bytes are
 * kept. Dropping entries never makes the cache wrong, so the epoch stays.
 * b->lock held. */
static void bodies__evict(fg_bodies *b, size_t target)
{
    bodies__entry *e, *next;
    size_t i;

    for (i = 0; i < BODIES__BUCKETS && b->bytes > target; i++) {
        for (e = b->buckets[b->sweep]; e != NULL; e = next) {
            next = e->next;
            b->bytes -= sizeof(*e) + e->len + 1;
            free(e);
        }
        b->buckets[b->sweep] = NULL;
        b->sweep = (b->sweep + 1) % BODIES__BUCKETS;
    }
}

/* fp_body_cache.get: copies of the cached bodies of ids, and which are
 * known to have none. */
static long long bodies__get(void *ctx, char (*ids)[FP_ID_BUFSZ], size_t n, char **out, bool *gone,
                             uint64_t *epoch)
{
    fg_bodies *b = ctx;
    const bodies__entry *e;
    long long redirect;
    size_t i;

    pthread_mutex_lock(&b->lock);
    redirect = b->redirect;
    *epoch = b->epoch;
    for (i = 0; i < n && redirect != 0; i++) {
        e = *bodies__slot(b, ids[i]);
        if (e == NULL)
            continue;
        b->hits++;
        gone[i] = e->gone;
        if (e->gone)
            continue;
        out[i] = malloc(e->len + 1);
        if (out[i] != NULL) /* else read from Redis */
            memcpy(out[i], e->body, e->len + 1);
    }
    for (i = 0; i < n; i++)
        b->misses += out[i] == NULL && !gone[i];
    pthread_mutex_unlock(&b->lock);
    return redirect;
}

/* Keeps body as id's (one JSON object, checked by the caller; NULL: id
 * has none). b->lock held. */
static void bodies__keep(fg_bodies *b, const char *id, const char *body)
{
    size_t len = body != NULL ? strlen(body) : 0, size = sizeof(bodies__entry) + len + 1;
    bodies__entry **slot = bodies__slot(b, id), *e;

    if (*slot != NULL || size > b->max_bytes / 8)
        return;
    if (b->bytes + size > b->max_bytes) {
        bodies__evict(b, b->max_bytes - b->max_bytes / 8 - size);
        slot = bodies__slot(b, id);
    }
    e = malloc(size);
    if (e == NULL)
        return;
    e->next = NULL;
    e->len = len;
    e->gone = body == NULL;
    memcpy(e->id, id, FP_ID_BUFSZ);
    memcpy(e->body, body != NULL ? body : "", len + 1);
    *slot = e;
    b->bytes += size;
}

/* Is reader one of the links whose reads are kept? If not, it becomes
 * one, when there is room. b->lock held. */
static bool bodies__reader(fg_bodies *b, long long reader)
{
    size_t i;

    if (reader <= 0)
        return false;
    for (i = 0; i < b->n_readers; i++) {
        if (b->readers[i] == reader)
            return true;
    }
    if (b->n_readers == FG_BODIES_READERS_MAX)
        return false;
    b->readers[b->n_readers++] = reader;
    return true;
}

/* fp_body_cache.put: keeps the bodies that are one JSON object, and the
 * ids that have none, unless the epoch moved on since they were read
 * (or the readers cannot be checked, or reader is one too many). */
static void bodies__put(void *ctx, long long reader, char (*ids)[FP_ID_BUFSZ], size_t n,
                        char *const *bodies, uint64_t epoch)
{
    fg_bodies *b = ctx;
    bool *ok = calloc(n > 0 ? n : 1, sizeof(*ok)), again, keep;
    size_t i;

    if (ok == NULL)
        return;
    for (i = 0; i < n; i++) /* the parse outside the lock */
        ok[i] = bodies[i] == NULL || fg_body_is_object(bodies[i]);
    pthread_mutex_lock(&b->lock);
    again = b->refused;
    b->refused = false;
    keep = b->redirect != 0 && b->epoch == epoch && !b->unchecked && bodies__reader(b, reader);
    for (i = 0; i < n && keep; i++) {
        if (ok[i])
            bodies__keep(b, ids[i], bodies[i]);
    }
    pthread_mutex_unlock(&b->lock);
    free(ok);
    if (again)
        fp_info("Redis tracks post bodies again: post body cache on");
}

/* fp_body_cache.refused: logged once, until a read's tracking is taken
 * again or the cache goes live again. */
static void bodies__refused(void *ctx, const char *reply)
{
    fg_bodies *b = ctx;
    bool say;

    pthread_mutex_lock(&b->lock);
    say = !b->refused;
    b->refused = true;
    pthread_mutex_unlock(&b->lock);
    if (say)
        fp_warn("Redis refused CLIENT TRACKING (%.160s): post bodies are not cached, every feed "
                "page reads them from Redis until it takes it",
                reply);
}

int fg_bodies_new(fg_bodies **out, size_t max_bytes)
{
    fg_bodies *b = calloc(1, sizeof(*b));

    *out = NULL;
    if (b == NULL)
        return -ENOMEM;
    b->buckets = calloc(BODIES__BUCKETS, sizeof(*b->buckets));
    if (b->buckets == NULL)
        goto fail;
    if (pthread_mutex_init(&b->lock, NULL) != 0)
        goto fail;
    b->max_bytes = max_bytes;
    b->ops = (fp_body_cache){
        .ctx = b, .get = bodies__get, .put = bodies__put, .refused = bodies__refused};
    *out = b;
    return 0;
fail:
    free(b->buckets);
    free(b);
    return -ENOMEM;
}

void fg_bodies_free(fg_bodies *b)
{
    if (b == NULL)
        return;
    bodies__empty(b);
    pthread_mutex_destroy(&b->lock);
    free(b->buckets);
    free(b);
}

const fp_body_cache *fg_bodies_cache(fg_bodies *b)
{
    return b != NULL ? &b->ops : NULL;
}

void fg_bodies_live(fg_bodies *b, long long redirect)
{
    if (b == NULL)
        return;
    pthread_mutex_lock(&b->lock);
    bodies__empty(b);
    b->redirect = redirect;
    b->refused = false;
    pthread_mutex_unlock(&b->lock);
}

void fg_bodies_invalidate(fg_bodies *b, char (*ids)[FP_ID_BUFSZ], size_t n)
{
    bodies__entry **slot, *e;
    size_t i;

    if (b == NULL)
        return;
    pthread_mutex_lock(&b->lock);
    for (i = 0; i < n; i++) {
        slot = bodies__slot(b, ids[i]);
        e = *slot;
        if (e == NULL)
            continue;
        *slot = e->next;
        b->bytes -= sizeof(*e) + e->len + 1;
        free(e);
    }
    b->epoch++;
    pthread_mutex_unlock(&b->lock);
}

void fg_bodies_flush(fg_bodies *b)
{
    if (b == NULL)
        return;
    pthread_mutex_lock(&b->lock);
    bodies__empty(b);
    pthread_mutex_unlock(&b->lock);
}

/* Drops from b->readers the n ids that alive says are gone. b->lock
 * held. */
static void bodies__forget(fg_bodies *b, const long long *ids, const bool *alive, size_t n)
{
    size_t i, j, k = 0;
    bool dead;

    for (i = 0; i < b->n_readers; i++) {
        for (j = 0, dead = false; j < n && !dead; j++)
            dead = !alive[j] && ids[j] == b->readers[i];
        if (!dead)
            b->readers[k++] = b->readers[i];
    }
    b->n_readers = k;
}

/*
 * The health loop's check (every FG_HEALTH_PERIOD_MS) that every link
 * whose reads the cache keeps is still connected: Redis tracks keys per
 * link and forgets them when it closes (a worker's link reset, killed,
 * timed out), so no invalidation would come for what it read. One gone:
 * the cache is emptied (a new epoch, so reads under way keep nothing)
 * and forgets it. CLIENT LIST refused: nothing is kept until it is
 * allowed again (asked each time, with id 0 when there are no readers),
 * logged once; no answer (Redis down): emptied.
 */
void fg_bodies_check_readers(fg_bodies *b, fp_store *st)
{
    long long ids[FG_BODIES_READERS_MAX] = {0};
    bool alive[FG_BODIES_READERS_MAX], gone = false, was;
    size_t i, n;
    int rc;

    if (b == NULL)
        return;
    pthread_mutex_lock(&b->lock);
    n = b->redirect != 0 ? b->n_readers : 0;
    memcpy(ids, b->readers, n * sizeof(*ids));
    was = b->unchecked;
    pthread_mutex_unlock(&b->lock);
    if (n == 0 && !was)
        return;
    rc = fp_store_clients_alive(st, ids, n > 0 ? n : 1, alive);
    for (i = 0; rc == 0 && i < n; i++)
        gone = gone || !alive[i];
    pthread_mutex_lock(&b->lock);
    if (rc != 0 || gone)
        bodies__empty(b);
    if (rc != 0)
        b->n_readers = 0;
    else
        bodies__forget(b, ids, alive, n);
    if (rc == 0 || rc == -EPROTO)
        b->unchecked = rc == -EPROTO;
    pthread_mutex_unlock(&b->lock);
    if (rc == -EPROTO && !was)
        fp_warn("Redis refused CLIENT LIST (%.160s): post bodies are not cached, every feed page "
                "reads them from Redis until it takes it",
                fp_store_errstr(st));
    else if (rc == 0 && was)
        fp_info("Redis takes CLIENT LIST again: post body cache on");
    else if (gone)
        fp_info("a Redis link that read post bodies has closed (Redis forgot what it tracked): "
                "post body cache emptied");
}

int fg_bodies_render(fg_bodies *b, char **out, size_t *len, size_t *cap)
{
    fg_metric_value v[] = {
        {"feedpush_gateway_post_cache_hits_total",
         "Post bodies (or their absence) a feed page took from the post body cache.", false, 0},
        {"feedpush_gateway_post_cache_misses_total", "Post bodies a feed page read from Redis.",
         false, 0},
        {"feedpush_gateway_post_cache_bytes", "Memory the post body cache holds.", true, 0},
    };

    if (b == NULL)
        return 0;
    pthread_mutex_lock(&b->lock);
    v[0].value = b->hits;
    v[1].value = b->misses;
    v[2].value = b->bytes;
    pthread_mutex_unlock(&b->lock);
    return fg_metrics_render_values(v, sizeof(v) / sizeof(v[0]), out, len, cap);
}
