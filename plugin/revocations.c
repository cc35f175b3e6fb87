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
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>

#include "feed_auth.h"

#define REVOCATIONS__MAGIC "feedpush-revocations 1"

int fa_revocations_init(fa_revocations *r, const char *file)
{
    int rc;

    r->map = NULL;
    r->file = file;
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

/* Raises sub's cut-off; true when it rose. */
static bool revocations__raise(fa_revocations *r, const char *sub, int64_t before)
{
    fa_revocation *e = NULL;
    bool raised = false;

    if (!fp_id_valid(sub) || before <= 0)
        return false;
    pthread_mutex_lock(&r->lock);
    HASH_FIND_STR(r->map, sub, e);
    if (e == NULL) {
        e = calloc(1, sizeof(*e));
        if (e != NULL) {
            snprintf(e->sub, sizeof(e->sub), "%s", sub);
            HASH_ADD_STR(r->map, sub, e);
        }
    }
    if (e != NULL && before > e->before) {
        e->before = before;
        raised = true;
    }
    pthread_mutex_unlock(&r->lock);
    return raised;
}

void fa_revocations_raise(fa_revocations *r, const char *sub, int64_t before)
{
    if (!revocations__raise(r, sub, before))
        return;
    atomic_store(&r->pending, true);
    if (r->file != NULL)
        atomic_store(&r->dirty, true);
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

/* Applies one "<uid> <cut-off>" line of the file. True when well formed. */
static bool revocations__load_line(fa_revocations *r, const char *line)
{
    char sub[FP_ID_BUFSZ];
    long long before;
    int end = 0;

    if (sscanf(line, "%64s %lld%n", sub, &before, &end) != 2 || line[end] != '\n' ||
        !fp_id_valid(sub) || before <= 0)
        return false;
    revocations__raise(r, sub, before);
    return true;
}

/*
 * Reads the file into the table (broker thread, at start, before any
 * client). A missing file is a first start. Malformed lines are skipped
 * and counted in one warning: the file is the plugin's own, so that means
 * damage, not input. Returns 0 or -errno (logged).
 */
int fa_revocations_load(fa_revocations *r)
{
    size_t loaded = 0, bad = 0, cap = 0;
    char *line = NULL;
    FILE *f;
    int rc;

    if (r->file == NULL)
        return 0;
    f = fopen(r->file, "r");
    if (f == NULL) {
        if (errno == ENOENT)
            return 0;
        rc = -errno;
        mosquitto_log_printf(MOSQ_LOG_ERR, "feed_auth: cannot read %s: %s", r->file,
                             strerror(errno));
        return rc;
    }
    if (getline(&line, &cap, f) < 0 ||
        strncmp(line, REVOCATIONS__MAGIC "\n", strlen(REVOCATIONS__MAGIC) + 1) != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "feed_auth: %s is not a revocation file", r->file);
        free(line);
        fclose(f);
        return -EINVAL;
    }
    while (getline(&line, &cap, f) >= 0) {
        if (revocations__load_line(r, line))
            loaded++;
        else
            bad++;
    }
    free(line);
    /* A read error is not the end of the file: the cut-offs after it
     * would be missing, and the next save would drop them. */
    rc = ferror(f) ? -EIO : 0;
    fclose(f);
    if (rc != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "feed_auth: cannot read %s: read error after %zu lines",
                             r->file, loaded + bad);
        return rc;
    }
    if (bad > 0)
        mosquitto_log_printf(MOSQ_LOG_WARNING, "feed_auth: %s: %zu malformed lines skipped",
                             r->file, bad);
    mosquitto_log_printf(MOSQ_LOG_INFO, "feed_auth: %zu revocations loaded from %s", loaded,
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
    return 0;
}
