/*
 * presence.c - how many connections and persistent sessions each user has
 * on this node, and the changes Redis has not seen yet.
 *
 * The broker thread counts both per user; only the transitions 0 -> 1
 * (SADD online:<node> or sessions:<node>) and 1 -> 0 (SREM) become deltas
 * for the Redis thread, which it is woken for through a pipe. When Redis is away the
 * queue grows up to PRESENCE__QUEUE_MAX and is then dropped in favour of a
 * full resync (a snapshot of the table), which also happens after every
 * reconnect. So presence is exact once Redis is back, whatever happened
 * meanwhile.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "feed_auth.h"

#define PRESENCE__QUEUE_MAX 100000

int fa_presence_init(fa_presence *p)
{
    int rc;

    memset(p, 0, sizeof(*p));
    p->tail = &p->head;
    if (pipe(p->wake_fd) != 0)
        return -errno;
    /* Non-blocking both ends: a full pipe already means "wake up". */
    fcntl(p->wake_fd[0], F_SETFL, O_NONBLOCK);
    fcntl(p->wake_fd[1], F_SETFL, O_NONBLOCK);
    rc = pthread_mutex_init(&p->lock, NULL);
    if (rc != 0) {
        close(p->wake_fd[0]);
        close(p->wake_fd[1]);
        return -rc;
    }
    return 0;
}

void fa_presence_deltas_free(fa_presence_delta *d)
{
    fa_presence_delta *next;

    while (d != NULL) {
        next = d->next;
        free(d);
        d = next;
    }
}

void fa_presence_destroy(fa_presence *p)
{
    fa_presence_user *u, *tmp;

    HASH_ITER(hh, p->users, u, tmp) {
        HASH_DEL(p->users, u);
        free(u);
    }
    fa_presence_deltas_free(p->head);
    close(p->wake_fd[0]);
    close(p->wake_fd[1]);
    pthread_mutex_destroy(&p->lock);
}

/* Queues a delta (lock held). On allocation failure or a full queue the
 * queue is dropped and a resync requested instead. Returns true when the
 * Redis thread must be woken: the queue was empty (a non-empty queue has
 * its wake-up pending already, and the thread takes the whole queue). */
static bool presence__queue(fa_presence *p, fa_presence_op op, fa_presence_set set, const char *sub)
{
    bool was_idle = p->head == NULL && !p->overflow;
    fa_presence_delta *d = NULL;

    if (!p->overflow && p->queued < PRESENCE__QUEUE_MAX)
        d = calloc(1, sizeof(*d));
    if (d == NULL) {
        fa_presence_deltas_free(p->head);
        p->head = NULL;
        p->tail = &p->head;
        p->queued = 0;
        p->overflow = true;
        return was_idle;
    }
    d->op = op;
    d->set = set;
    memcpy(d->sub, sub, sizeof(d->sub));
    *p->tail = d;
    p->tail = &d->next;
    p->queued++;
    return was_idle;
}

static void presence__wake(fa_presence *p)
{
    char one = 1;

    /* EAGAIN means a wake-up is already pending: nothing to do. */
    if (write(p->wake_fd[1], &one, 1) < 0)
        return;
}

int fa_presence_up(fa_presence *p, fa_presence_set set, const char *sub)
{
    fa_presence_user *u = NULL;
    bool wake = false;

    pthread_mutex_lock(&p->lock);
    HASH_FIND_STR(p->users, sub, u);
    if (u == NULL) {
        u = calloc(1, sizeof(*u));
        if (u != NULL) {
            memcpy(u->sub, sub, sizeof(u->sub));
            HASH_ADD_STR(p->users, sub, u);
            if (!FA_HASH_ADDED(u, hh)) {
                free(u);
                u = NULL;
            }
        }
    }
    if (u != NULL && u->count[set]++ == 0) {
        p->n_in[set]++;
        wake = presence__queue(p, FA_PRESENCE_ADD, set, sub);
    }
    pthread_mutex_unlock(&p->lock);
    if (wake)
        presence__wake(p);
    return u != NULL ? 0 : -ENOMEM;
}

void fa_presence_down(fa_presence *p, fa_presence_set set, const char *sub)
{
    fa_presence_user *u = NULL;
    bool wake = false;

    pthread_mutex_lock(&p->lock);
    HASH_FIND_STR(p->users, sub, u);
    if (u != NULL && u->count[set] > 0 && --u->count[set] == 0) {
        p->n_in[set]--;
        wake = presence__queue(p, FA_PRESENCE_REMOVE, set, sub);
        if (u->count[FA_SET_ONLINE] == 0 && u->count[FA_SET_HELD] == 0) {
            HASH_DEL(p->users, u);
            free(u);
        }
    }
    pthread_mutex_unlock(&p->lock);
    if (wake)
        presence__wake(p);
}

unsigned fa_presence_held(fa_presence *p, const char *sub)
{
    fa_presence_user *u = NULL;
    unsigned n;

    pthread_mutex_lock(&p->lock);
    HASH_FIND_STR(p->users, sub, u);
    n = u != NULL ? u->count[FA_SET_HELD] : 0;
    pthread_mutex_unlock(&p->lock);
    return n;
}

fa_presence_delta *fa_presence_take(fa_presence *p, bool *resync, size_t n[FA_SETS])
{
    fa_presence_delta *d;
    int k;

    pthread_mutex_lock(&p->lock);
    d = p->head;
    p->head = NULL;
    p->tail = &p->head;
    p->queued = 0;
    *resync = p->overflow;
    p->overflow = false;
    for (k = 0; n != NULL && k < FA_SETS; k++)
        n[k] = p->n_in[k];
    pthread_mutex_unlock(&p->lock);
    return d;
}

fa_presence_entry *fa_presence_snapshot(fa_presence *p, size_t *n)
{
    fa_presence_entry *all;
    fa_presence_user *u, *tmp;
    size_t i = 0, count;
    int k;

    pthread_mutex_lock(&p->lock);
    count = HASH_COUNT(p->users);
    all = malloc((count > 0 ? count : 1) * sizeof(*all));
    if (all != NULL) {
        HASH_ITER(hh, p->users, u, tmp) {
            memcpy(all[i].sub, u->sub, FP_ID_BUFSZ);
            for (k = 0; k < FA_SETS; k++)
                all[i].in[k] = u->count[k] > 0;
            i++;
        }
        /* The snapshot supersedes whatever was queued. */
        fa_presence_deltas_free(p->head);
        p->head = NULL;
        p->tail = &p->head;
        p->queued = 0;
        p->overflow = false;
    }
    pthread_mutex_unlock(&p->lock);
    *n = all != NULL ? i : 0;
    return all;
}
