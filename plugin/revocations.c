/*
 * revocations.c - the users' revocation cut-offs: a token of user sub
 * with iat at or before the cut-off is refused (auth.c) and its sessions
 * are kicked (kick.c). Filled from Redis by the Redis thread
 * (redis_sync.c: the revoked:<uid> keys at every connect, then the
 * "revoked" channel); read by the broker thread under the table's lock.
 *
 * With plugin_opt_revocation_file the table is also kept in that file,
 * "<uid> <cut-off>" per line, rewritten whole (statefile.c) by the Redis
 * thread whenever a cut-off rises, and loaded at start, before the
 * broker accepts a client: a broker that starts while Redis is out of
 * reach still refuses the tokens revoked before. Without it, those
 * tokens are accepted until the plugin first reaches Redis.
 *
 * With require_iat and max_lifetime (fp_jwt_revocation_keep), a cut-off
 * is forgotten max_lifetime after it: every token it revoked has expired
 * by then. Cut-offs already that old are not taken in (from Redis or the
 * file), and the Redis thread drops the others once a minute (or once
 * per max_lifetime when that is shorter), so the table and the file hold
 * only the revocations that still refuse something. Without both options
 * they are kept for ever.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>

#include "feed_auth.h"

#define REVOCATIONS__MAGIC "feedpush-revocations 1"
/* Longest time between two prunes of the table, seconds: a shorter
 * keep time prunes as often as it lasts. */
#define REVOCATIONS__PRUNE_PERIOD 60

int fa_revocations_init(fa_revocations *r, const char *file, int64_t keep_s)
{
    int rc;

    r->map = NULL;
    r->file = file;
    r->keep_s = keep_s;
    r->next_prune = 0;
    atomic_init(&r->pending, false);
    atomic_init(&r->dirty, false);
    rc = pthread_mutex_init(&r->lock, NULL);
    return rc == 0 ? 0 : -rc;
}

void fa_revocations_destroy(fa_revocations *r)
{
    fa_revocation *e, *tmp;

    HASH_ITER(hh, r->map, e, tmp)
    {
        HASH_DEL(r->map, e);
        free(e);
    }
    pthread_mutex_destroy(&r->lock);
}

/* Is a cut-off at before past its keep time at now? before may be any
 * value a damaged file or key holds, so keep_s (at most ten years) is
 * taken from now, a clock reading: no overflow. */
static bool revocations__expired(const fa_revocations *r, int64_t before, int64_t now)
{
    return r->keep_s > 0 && before <= now - r->keep_s;
}

/* Raises sub's cut-off: 1 when it rose, 0 when not (a cut-off past its
 * keep time is not taken), -ENOMEM when a new user found no memory. */
static int revocations__raise(fa_revocations *r, const char *sub, int64_t before, int64_t now)
{
    fa_revocation *e = NULL;
    int raised = 0;

    if (!fp_id_valid(sub) || before <= 0 || revocations__expired(r, before, now))
        return 0;
    pthread_mutex_lock(&r->lock);
    HASH_FIND_STR(r->map, sub, e);
    if (e == NULL) {
        e = calloc(1, sizeof(*e));
        if (e != NULL) {
            snprintf(e->sub, sizeof(e->sub), "%s", sub);
            HASH_ADD_STR(r->map, sub, e);
            if (!FA_HASH_ADDED(e, hh)) {
                free(e);
                e = NULL;
            }
        }
    }
    if (e == NULL) {
        raised = -ENOMEM;
    } else if (before > e->before) {
        e->before = before;
        raised = 1;
    }
    pthread_mutex_unlock(&r->lock);
    return raised;
}

int fa_revocations_raise(fa_revocations *r, const char *sub, int64_t before, int64_t now)
{
    int rc = revocations__raise(r, sub, before, now);

    if (rc <= 0)
        return rc;
    atomic_store(&r->pending, true);
    if (r->file != NULL)
        atomic_store(&r->dirty, true);
    return 0;
}

/*
 * Drops every cut-off past its keep time at now, and marks the file due
 * for a write when one went. Runs at most once every
 * REVOCATIONS__PRUNE_PERIOD seconds, or keep_s if shorter (the Redis
 * thread calls it at every turn of its loop), so a cut-off stays at most
 * that long past its time. A pass holds the table's lock: an auth waits
 * for at most one pass over the table. Returns how many went.
 */
size_t fa_revocations_prune(fa_revocations *r, int64_t now)
{
    fa_revocation *e, *tmp;
    size_t n = 0;

    if (r->keep_s <= 0 || now < r->next_prune)
        return 0;
    r->next_prune =
        now + (r->keep_s < REVOCATIONS__PRUNE_PERIOD ? r->keep_s : REVOCATIONS__PRUNE_PERIOD);
    pthread_mutex_lock(&r->lock);
    HASH_ITER(hh, r->map, e, tmp)
    {
        if (revocations__expired(r, e->before, now)) {
            HASH_DEL(r->map, e);
            free(e);
            n++;
        }
    }
    pthread_mutex_unlock(&r->lock);
    if (n > 0 && r->file != NULL)
        atomic_store(&r->dirty, true);
    return n;
}

int64_t fa_revocations_get(fa_revocations *r, const char *sub)
{
    fa_revocation *e = NULL;
    int64_t before;

    pthread_mutex_lock(&r->lock);
    HASH_FIND_STR(r->map, sub, e);
    before = e != NULL ? e->before : 0;
    pthread_mutex_unlock(&r->lock);
    return before;
}

/* What fa_revocations_load counts while it reads the file. */
typedef struct {
    fa_revocations *r;
    int64_t now;
    size_t loaded, bad, old;
} revocations__load;

/* One "<uid> <cut-off>" line of the file (a fa_statefile_read line
 * reader): applied, or counted as old when past its keep time, or as bad
 * when malformed. Returns 0, or -ENOMEM (the start then fails: a
 * revocation is never dropped). */
static int revocations__load_line(char *line, void *arg)
{
    revocations__load *l = arg;
    char sub[FP_ID_BUFSZ];
    long long before;
    int end = 0;

    if (sscanf(line, "%64s %lld%n", sub, &before, &end) != 2 || line[end] != '\n' ||
        !fp_id_valid(sub) || before <= 0) {
        l->bad++;
        return 0;
    }
    l->loaded++;
    if (revocations__expired(l->r, before, l->now))
        l->old++;
    else if (revocations__raise(l->r, sub, before, l->now) < 0)
        return -ENOMEM;
    return 0;
}

/*
 * Reads the file into the table (broker thread, at start, before any
 * client). A missing file is a first start. Malformed lines are skipped
 * and counted in one warning: the file is the plugin's own, so that means
 * damage, not input. Returns 0 or -errno (logged).
 */
int fa_revocations_load(fa_revocations *r)
{
    revocations__load l = {.r = r, .now = (int64_t)time(NULL)};
    int rc;

    if (r->file == NULL)
        return 0;
    rc = fa_statefile_read(r->file, REVOCATIONS__MAGIC "\n", "revocation", revocations__load_line,
                           &l);
    if (rc != 0)
        return rc > 0 ? 0 : rc;
    if (l.bad > 0)
        mosquitto_log_printf(MOSQ_LOG_WARNING, "feed_auth: %s: %zu malformed lines skipped",
                             r->file, l.bad);
    if (l.old > 0) {
        /* The next write leaves them out. */
        atomic_store(&r->dirty, true);
        mosquitto_log_printf(MOSQ_LOG_INFO,
                             "feed_auth: %zu revocations loaded from %s, %zu older than "
                             "max_lifetime dropped",
                             l.loaded - l.old, r->file, l.old);
        return 0;
    }
    mosquitto_log_printf(MOSQ_LOG_INFO, "feed_auth: %zu revocations loaded from %s", l.loaded,
                         r->file);
    return 0;
}

/* A copy of the table, taken under its lock, to write without it. */
typedef struct {
    fa_revocation *items;
    size_t n;
} revocations__copy;

/* Writes the copy (a fa_statefile_replace writer). 0 or -EIO. */
static int revocations__write(FILE *f, void *arg)
{
    const revocations__copy *c = arg;
    size_t i;

    if (fprintf(f, "%s\n", REVOCATIONS__MAGIC) < 0)
        return -EIO;
    for (i = 0; i < c->n; i++) {
        if (fprintf(f, "%s %" PRId64 "\n", c->items[i].sub, c->items[i].before) < 0)
            return -EIO;
    }
    return 0;
}

int fa_revocations_save(fa_revocations *r, size_t *n)
{
    revocations__copy c = {0};
    fa_revocation *e, *tmp;
    int rc;

    *n = 0;
    if (r->file == NULL || !atomic_exchange(&r->dirty, false))
        return 0;
    pthread_mutex_lock(&r->lock);
    c.items = malloc((HASH_COUNT(r->map) + 1) * sizeof(*c.items));
    if (c.items != NULL) {
        HASH_ITER(hh, r->map, e, tmp)
        {
            memcpy(c.items[c.n].sub, e->sub, sizeof(e->sub));
            c.items[c.n++].before = e->before;
        }
    }
    pthread_mutex_unlock(&r->lock);
    rc = c.items != NULL ? fa_statefile_replace(r->file, revocations__write, &c) : -ENOMEM;
    free(c.items);
    if (rc != 0) {
        atomic_store(&r->dirty, true); /* tried again at the next change */
        return rc;
    }
    *n = c.n;
    return 1;
}
