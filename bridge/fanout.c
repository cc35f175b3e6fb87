/*
 * fanout.c - stage 1: one event from feed.events, handled once wherever it
 * runs.
 *
 * The event is validated (common/fp_event); one that can never be
 * processed is dead-lettered to feed.events.dead with its reason, and one
 * log line. Otherwise
 * Redis applies it (fp_store: a script per event), the realtime work
 * is published to RabbitMQ (one feed.deliver message per node that holds a
 * recipient, or the ribbon on feed.broadcast), and the event is acked once
 * RabbitMQ has confirmed those publishes. Stage 1 does not wait for the
 * confirms: it takes the next event while they come, and fp_amqp sends
 * the acks as they arrive (fp_amqp_ack_confirmed). A crash anywhere
 * before the ack means redelivery, which the store makes harmless (a
 * post's fan-out is idempotent).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "bridge.h"
#include "fp_event.h"
#include "fp_event_batch.h"
#include "fp_json.h"
#include "fp_log.h"
#include "fp_time.h"

/* The longest reason a dead letter carries. */
#define FANOUT__REASON_MAX FP_AMQP_DEAD_REASON_MAX

static const fb_stat fanout__event_stat[] = {
    [FP_EVENT_POST_CREATED] = FB_STAT_EVENTS_POST_CREATED,
    [FP_EVENT_POST_DELETED] = FB_STAT_EVENTS_POST_DELETED,
    [FP_EVENT_FOLLOW_CREATED] = FB_STAT_EVENTS_FOLLOW_CREATED,
    [FP_EVENT_FOLLOW_DELETED] = FB_STAT_EVENTS_FOLLOW_DELETED,
    [FP_EVENT_RIBBON_PUSHED] = FB_STAT_EVENTS_RIBBON_PUSHED,
    [FP_EVENT_USER_REVOKED] = FB_STAT_EVENTS_USER_REVOKED,
};

/*
 * Builds one feed.deliver message: {"type":"deliver","payload":<what each
 * recipient's feed/<uid> gets>,"recipients":[...]}, and, for this node's
 * own share (seq above 0), "run" and "seq" (see fb_bridge.queued_seq).
 * payload is compact JSON text. Returns a malloc'd string or NULL (out of
 * memory).
 */
static char *fanout__deliver_message(const fb_bridge *b, const char *payload,
                                     const fp_node_targets *t, uint64_t seq)
{
    cJSON *root = cJSON_CreateObject(), *p = cJSON_Parse(payload), *list, *user;
    char *out = NULL;
    size_t i;

    /* Every step is checked: a recipient or the payload left out for want
     * of memory would be a delivery lost with its event acked. */
    if (root == NULL || p == NULL || cJSON_AddStringToObject(root, "type", "deliver") == NULL ||
        !cJSON_AddItemToObject(root, "payload", p))
        goto done;
    p = NULL;
    if (seq > 0 && (cJSON_AddStringToObject(root, "run", b->run) == NULL ||
                    cJSON_AddNumberToObject(root, "seq", (double)seq) == NULL))
        goto done;
    list = cJSON_AddArrayToObject(root, "recipients");
    if (list == NULL)
        goto done;
    for (i = 0; i < t->n_users; i++) {
        user = cJSON_CreateString(t->users[i]);
        if (user == NULL || !cJSON_AddItemToArray(list, user)) {
            cJSON_Delete(user);
            goto done;
        }
    }
    out = cJSON_PrintUnformatted(root);
done:
    cJSON_Delete(p);
    cJSON_Delete(root);
    return out;
}

/*
 * The payload users receive: the event without its recipients, i.e.
 * {"type":"post.created","post":{...}} or {"type":"post.deleted",...}.
 */
static char *fanout__payload(const fp_event *ev)
{
    fp_event copy = *ev;

    copy.has_recipients = false;
    copy.recipients = NULL;
    copy.n_recipients = 0;
    return fp_event_encode(&copy);
}

/* Recipients per feed.deliver message at most: a node's share above it
 * goes in several messages, so that none nears RabbitMQ's
 * max_message_size (16 MiB by default from RabbitMQ 4.0). A message over
 * it closes the channel at every try: the event would come back for ever.
 * 10,000 ids of 64 bytes make about 0.7 MB. */
#define FANOUT__DELIVER_MAX 10000

/* Publishes one feed.deliver message, to t's node (seq: see
 * fanout__deliver_message). */
static fb_outcome fanout__queue_delivery(fb_bridge *b, const char *payload,
                                         const fp_node_targets *t, uint64_t seq)
{
    char *msg = fanout__deliver_message(b, payload, t, seq);
    int rc;

    if (msg == NULL)
        return FB_NO_MEMORY;
    rc = fp_amqp_publish(b->amqp, FP_EXCHANGE_DELIVER, t->node, msg, strlen(msg));
    free(msg);
    if (rc != 0)
        return FB_LOST_AMQP;
    fb_stats_add(&b->stats, FB_STAT_DELIVER_MESSAGES, 1);
    return FB_DONE;
}

/*
 * Publishes node t's share in messages of FANOUT__DELIVER_MAX recipients
 * at most, in order. own: this node's share, each message with the next
 * sequence number (taken once it is published: one taken by a message
 * that never went would hold fanout__catch_up for its whole timeout).
 * Returns FB_DONE or the first failure (the event is handled again: a
 * recipient may get the post twice, as after any redelivery).
 */
static fb_outcome fanout__queue_share(fb_bridge *b, const char *payload, const fp_node_targets *t,
                                      bool own)
{
    fp_node_targets part = *t;
    fb_outcome out = FB_DONE;
    size_t off;

    for (off = 0; off < t->n_users && out == FB_DONE; off += part.n_users) {
        part.users = t->users + off;
        part.n_users = t->n_users - off;
        if (part.n_users > FANOUT__DELIVER_MAX)
            part.n_users = FANOUT__DELIVER_MAX;
        out = fanout__queue_delivery(b, payload, &part, own ? b->queued_seq + 1 : 0);
        if (out == FB_DONE && own)
            b->queued_seq++;
    }
    return out;
}

/*
 * Waits, at most timeout_ms, until stage 2 has delivered every own-node
 * share stage 1 queued (queued_done reaches queued_seq), checking every
 * millisecond. Stage 1 queues nothing meanwhile, so the wait converges
 * unless stage 2 is stuck or far behind.
 */
static void fanout__catch_up(fb_bridge *b)
{
    int64_t end = fp_time_mono_ms() + b->cfg.timeout_ms;
    struct timespec ms = {0, 1000000};

    while (atomic_load(&b->queued_done) < b->queued_seq && fp_time_mono_ms() < end)
        nanosleep(&ms, NULL);
}

/*
 * local_delivery direct: this node's own share (t) straight to its
 * broker. True when it got there; false when it must take the queue
 * instead: the direct link is down, or a PUBACK did not come (the broker
 * may have some of them; clients dedupe a post received twice). After
 * that the queue is used until the link has connected again, so that a
 * hung broker costs stage 1 one timeout, not one per event. What the
 * link had not had acknowledged is dropped (fb_mqtt_discard: a new
 * client), so that it is not sent again on the next connection, behind
 * the queue. A link that is up but missed PUBACKs connects again (the
 * new client; fb_mqtt_relink when there was nothing to drop: a failure
 * of ours on a live link, out of memory): a
 * broker that was only slow is used again as soon as it accepts the new
 * connection, one that hangs never accepts it. And the link is used again
 * only once stage 2 has delivered every share queued meanwhile: a post's
 * delete going straight could otherwise reach a follower before the post,
 * still in the queue. The first event after the link is back waits for
 * that (fanout__catch_up); if stage 2 needs longer, events keep taking
 * the queue until one finds it caught up.
 */
static bool fanout__direct(fb_bridge *b, const char *payload, const fp_node_targets *t)
{
    unsigned long connects = fb_mqtt_connects(b->direct.mqtt);
    bool up = fb_mqtt_connected(b->direct.mqtt);
    int dropped;

    if (b->direct_failing && up && connects != b->direct_failed_at &&
        connects != b->direct_waited_at) {
        b->direct_waited_at = connects;
        fanout__catch_up(b);
    }
    if (b->direct_failing &&
        (!up || connects == b->direct_failed_at || atomic_load(&b->queued_done) < b->queued_seq))
        return false;
    if (fb_deliver_direct(b, payload, t) != FB_DONE) {
        /* A link down (e.g. renewing its token) is routine; PUBACKs
         * missing on a live one are not. */
        if (!b->direct_failing && up)
            fp_warn("%s; this node's deliveries go through feed.deliver.%s until the direct "
                    "link has reconnected",
                    fb_mqtt_errstr(b->direct.mqtt), b->cfg.node_id);
        else if (!b->direct_failing)
            fp_info("mqtt: the direct link is down; this node's deliveries go through "
                    "feed.deliver.%s until it is back",
                    b->cfg.node_id);
        /* The queue serves this share now: what the link had not had
         * acknowledged must not go out later, on its next connection,
         * behind what follows through the queue (a post's delete). A
         * live link connects again either way. */
        dropped = fb_mqtt_discard(b->direct.mqtt);
        if (dropped < 0 && dropped != -EAGAIN)
            fp_warn("%s; the direct link may send its unacknowledged deliveries again",
                    fb_mqtt_errstr(b->direct.mqtt));
        if (dropped <= 0 && up)
            fb_mqtt_relink(b->direct.mqtt);
        b->direct_failing = true;
        b->direct_failed_at = connects;
        return false;
    }
    if (b->direct_failing)
        fp_info("mqtt: this node's deliveries go straight to its broker again");
    b->direct_failing = false;
    return true;
}

/*
 * The live deliveries of a post: one feed.deliver message per node, or
 * several for a share over FANOUT__DELIVER_MAX recipients (the event's
 * ack waits for their confirms). With local_delivery direct, this
 * node's own share goes last and straight to the broker beside this
 * bridge, which has acknowledged it when this returns: that saves a
 * RabbitMQ round trip and stage 2's hop per local delivery.
 */
static fb_outcome fanout__publish_deliveries(fb_bridge *b, const fp_event *ev, const fp_fanout *f)
{
    const fp_node_targets *own = NULL;
    fb_outcome out = FB_DONE;
    char *payload;
    size_t i;

    if (f->n_nodes == 0)
        return FB_DONE;
    payload = fanout__payload(ev);
    if (payload == NULL)
        return FB_NO_MEMORY;
    for (i = 0; i < f->n_nodes && out == FB_DONE; i++) {
        if (b->local_direct && strcmp(f->nodes[i].node, b->cfg.node_id) == 0)
            own = &f->nodes[i];
        else
            out = fanout__queue_share(b, payload, &f->nodes[i], false);
    }
    if (out == FB_DONE && own != NULL && !fanout__direct(b, payload, own))
        out = fanout__queue_share(b, payload, own, true);
    free(payload);
    return out;
}

/* A failed store call's outcome: refused (-EPROTO), Redis in a passing
 * state (-EBUSY), else the link to repair. */
static fb_outcome fanout__store_error(int rc)
{
    if (rc == -EPROTO)
        return FB_STORE_REFUSED;
    return rc == -EBUSY ? FB_STORE_BUSY : FB_RETRY_STORE;
}

/* What a store call's result means for the message. */
static fb_outcome fanout__store_outcome(int rc, bool *dead)
{
    *dead = rc == -EINVAL;
    if (rc == 0 || rc == -EINVAL)
        return FB_DONE;
    return fanout__store_error(rc);
}

/* A post once its store call answered rc with *f: the counters, the live
 * deliveries, then the feed writes left (fp_store_post_finish). Frees
 * *f. */
static fb_outcome fanout__post_stored(fb_bridge *b, const fp_event *ev, int rc, fp_fanout *f,
                                      bool *dead)
{
    fb_outcome out = fanout__store_outcome(rc, dead);

    if (rc != 0) {
        fp_fanout_free(f);
        return out;
    }
    if (ev->type == FP_EVENT_POST_CREATED && !f->duplicate)
        fb_stats_add(&b->stats, FB_STAT_FANOUT_RECIPIENTS, f->n_recipients);
    fp_debug("%s %s: %zu feed(s)%s, online on %zu node(s)", fp_event_type_name(ev->type),
             ev->type == FP_EVENT_POST_CREATED ? ev->post.id : ev->post_id, f->n_recipients,
             f->duplicate ? " (already done)" : "", f->n_nodes);
    out = fanout__publish_deliveries(b, ev, f);
    if (out == FB_DONE) {
        /* The live deliveries first; a big fan-out's feed writes after. */
        rc = fp_store_post_finish(b->store, ev, f);
        out = fanout__store_outcome(rc, dead);
    }
    if (f->n_bad_feeds > 0)
        fp_warn("%s %s: %zu feed key(s) hold another type than a feed and were left alone, "
                "the first \"%s\" (the other feeds were written)",
                fp_event_type_name(ev->type),
                ev->type == FP_EVENT_POST_CREATED ? ev->post.id : ev->post_id, f->n_bad_feeds,
                f->bad_feed);
    fp_fanout_free(f);
    return out;
}

static fb_outcome fanout__post(fb_bridge *b, const fp_event *ev, bool *dead)
{
    fp_fanout f = {0};
    int rc;

    if (ev->type == FP_EVENT_POST_CREATED)
        rc = fp_store_post_created(b->store, ev, &f);
    else
        rc = fp_store_post_deleted(b->store, ev, &f);
    return fanout__post_stored(b, ev, rc, &f, dead);
}

static fb_outcome fanout__ribbon(fb_bridge *b, const fp_event *ev, bool *dead)
{
    char *ribbon = NULL;
    int rc;

    rc = fp_store_ribbon_push(b->store, ev, &ribbon);
    if (rc != 0)
        return fanout__store_outcome(rc, dead);
    rc = fp_amqp_publish(b->amqp, FP_EXCHANGE_BROADCAST, "", ribbon, strlen(ribbon));
    free(ribbon);
    return rc == 0 ? FB_DONE : FB_LOST_AMQP;
}

/* Applies a valid event. -EINVAL from the store (e.g. following oneself)
 * is a dead letter, like a schema error. */
static fb_outcome fanout__apply(fb_bridge *b, const fp_event *ev, bool *dead)
{
    int rc;

    *dead = false;
    switch (ev->type) {
    case FP_EVENT_POST_CREATED:
    case FP_EVENT_POST_DELETED:
        return fanout__post(b, ev, dead);
    case FP_EVENT_RIBBON_PUSHED:
        return fanout__ribbon(b, ev, dead);
    case FP_EVENT_FOLLOW_CREATED:
    case FP_EVENT_FOLLOW_DELETED:
        rc = fp_store_follow(b->store, ev);
        break;
    case FP_EVENT_USER_REVOKED:
        rc = fp_store_user_revoked(b->store, ev);
        break;
    default:
        rc = -EINVAL;
    }
    return fanout__store_outcome(rc, dead);
}

/*
 * redis_min_replicas: the event's writes must have reached that many
 * replicas before it is acked. When fewer replicas took them within the
 * timeout (one down or behind), that is waited out like a passing state:
 * the probe alone again, with backoff, on the same link, whose later
 * WAIT covers the event's writes too; the event is not applied again and
 * its deliveries do not go again. A link that breaks meanwhile (a primary
 * that died, or moved: +switch-master, READONLY) begins the event anew on
 * the next primary (main.c), where its writes may be missing.
 */
static fb_outcome fanout__synced(fb_bridge *b)
{
    int64_t t0 = fp_time_mono_us();
    int rc = fp_store_sync(b->store);

    if (b->cfg.redis_min_replicas > 0) {
        fb_stats_add(&b->stats, FB_STAT_SYNC_US_SUM, (uint64_t)(fp_time_mono_us() - t0));
        fb_stats_add(&b->stats, FB_STAT_SYNC_COUNT, 1);
    }
    if (rc == 0)
        return FB_DONE;
    /* Too few replicas, or the probe refused (its key of the wrong type, a
     * WAIT an ACL denies): the setup's fault, not the event's, which is
     * applied. Waited out like a passing state, never dead-lettered. */
    if (rc == -EAGAIN || rc == -EPROTO)
        return FB_STORE_BUSY;
    return fanout__store_error(rc);
}

/*
 * Publishes a dead letter to the dead-letter exchange under routing key
 * rk, with the headers x-feedpush-reason (reason, cut at
 * FANOUT__REASON_MAX bytes), x-feedpush-time (now, seconds since the
 * epoch) and, when where is not NULL, x-feedpush-batch. The publish is
 * confirmed with the rest of the message's work, before its ack: unlike
 * a reject (a quorum queue dead-letters at most once), it is not lost if
 * feed.events.dead cannot take it at once. 0 or -EIO.
 */
static int fanout__publish_dead(fb_bridge *b, const char *rk, const void *body, size_t len,
                                const char *reason, const char *where)
{
    char why[FANOUT__REASON_MAX + 1], now[24];
    fp_amqp_header h[3] = {
        {"x-feedpush-reason", why}, {"x-feedpush-time", now}, {"x-feedpush-batch", where}};

    snprintf(why, sizeof(why), "%s", reason);
    snprintf(now, sizeof(now), "%lld", (long long)(fp_time_real_ms() / 1000));
    return fp_amqp_publish_headers(b->amqp, FP_EXCHANGE_DLX, rk, body, len, h,
                                   where != NULL ? 3 : 2);
}

fb_outcome fb_fanout_dead_letter(fb_bridge *b, const fp_amqp_msg *msg, const char *reason)
{
    fp_warn("dead-lettering event (routing key \"%.64s\", %zu bytes): %s", msg->routing_key,
            msg->len, reason);
    fb_stats_add(&b->stats, FB_STAT_DEAD_LETTERS, 1);
    if (fanout__publish_dead(b, msg->routing_key, msg->body, msg->len, reason, NULL) != 0)
        return FB_LOST_AMQP;
    return fp_amqp_ack_confirmed(b->amqp, msg->tag) == 0 ? FB_DONE : FB_LOST_AMQP;
}

/*
 * Dead-letters event i of a batch alone: published as its own message
 * (under its type's routing key), with its place ("<i> of <n>") as well
 * as its reason, and the rest of the batch goes on. The publish is
 * confirmed with the batch's other work, before the batch is acked.
 */
static fb_outcome fanout__dead_batched(fb_bridge *b, const fp_event_batch *batch, size_t i,
                                       const char *reason)
{
    char q[FP_JSON_QUOTE_MAX + 4], where[48];
    const char *type;
    char *text = fp_event_batch_text(batch, i, &type);
    fp_event_type t;
    int rc;

    if (text == NULL)
        return FB_NO_MEMORY; /* the batch is handled again */
    fp_json_quote(type, q, sizeof(q));
    fp_warn("dead-lettering event %zu of a batch of %zu (type \"%s\", %zu bytes): %s", i + 1,
            batch->n, q, strlen(text), reason);
    fb_stats_add(&b->stats, FB_STAT_DEAD_LETTERS, 1);
    /* Its type as routing key only when it is one: any other string may
     * be too long for one (the dead-letter exchange ignores it). */
    if (fp_event_type_parse(type, &t) != 0)
        type = "";
    snprintf(where, sizeof(where), "%zu of %zu", i + 1, batch->n);
    rc = fanout__publish_dead(b, type, text, strlen(text), reason, where);
    free(text);
    return rc == 0 ? FB_DONE : FB_LOST_AMQP;
}

/* Drops what fanout__prefetch kept. */
static void fanout__prefetch_drop(fb_bridge *b)
{
    size_t i;

    for (i = 0; i < b->pre_n; i++)
        fp_fanout_free(&b->pre_outs[i]);
    b->pre_from = b->pre_n = 0;
}

/*
 * The post.created events of a batch from i on (up to FB_PREFETCH, until
 * another type or an invalid event) run their first store call together,
 * in one round trip to Redis (fp_store_posts_created), and their results
 * are kept for fanout__batched; none when event i is not one. Returns
 * FB_DONE, FB_RETRY_STORE when the link failed, or FB_NO_MEMORY.
 */
static fb_outcome fanout__prefetch(fb_bridge *b, const fp_event_batch *batch, size_t i)
{
    fp_event evs[FB_PREFETCH];
    const fp_event *ptrs[FB_PREFETCH];
    size_t n = 0, k;
    int rc = 0;

    fanout__prefetch_drop(b);
    while (n < FB_PREFETCH && i + n < batch->n) {
        if (fp_event_batch_get(batch, i + n, &evs[n], NULL, 0) != 0)
            break;
        if (evs[n].type != FP_EVENT_POST_CREATED) {
            fp_event_free(&evs[n]);
            break;
        }
        ptrs[n] = &evs[n];
        n++;
    }
    if (n > 1)
        rc = fp_store_posts_created(b->store, ptrs, n, b->pre_outs, b->pre_rcs);
    for (k = 0; k < n; k++)
        fp_event_free(&evs[k]);
    if (rc == -ENOMEM)
        return FB_NO_MEMORY; /* a link hiredis found no memory for fails its next call */
    if (rc != 0)
        return FB_RETRY_STORE;
    if (n > 1) {
        b->pre_from = i;
        b->pre_n = n;
    }
    return FB_DONE;
}

/* Handles event i of a batch as fb_fanout_handle does a message's, but
 * its dead letter is its own (fanout__dead_batched); a post.created whose
 * store call ran in a prefetch takes its result from there. */
static fb_outcome fanout__batched(fb_bridge *b, const fp_event_batch *batch, size_t i)
{
    char reason[256];
    fp_event ev;
    fb_outcome out;
    bool dead;
    int rc;

    if (i < b->pre_from || i >= b->pre_from + b->pre_n) {
        out = fanout__prefetch(b, batch, i);
        if (out != FB_DONE)
            return out;
    }
    rc = fp_event_batch_get(batch, i, &ev, reason, sizeof(reason));
    if (rc == -ENOMEM)
        return FB_NO_MEMORY;
    if (rc != 0)
        return fanout__dead_batched(b, batch, i, reason);
    if (i >= b->pre_from && i < b->pre_from + b->pre_n)
        out = fanout__post_stored(b, &ev, b->pre_rcs[i - b->pre_from],
                                  &b->pre_outs[i - b->pre_from], &dead);
    else
        out = fanout__apply(b, &ev, &dead);
    if (out == FB_DONE && dead) {
        snprintf(reason, sizeof(reason), "refused: %s", fp_store_errstr(b->store));
        out = fanout__dead_batched(b, batch, i, reason);
    } else if (out == FB_DONE) {
        fb_stats_add(&b->stats, fanout__event_stat[ev.type], 1);
    }
    fp_event_free(&ev);
    return out;
}

/*
 * A batch (fp_event_batch.h): its events in order from b->batch_next,
 * then one ack for the message. After a failure that retries (Redis or
 * the broker lost, Redis refusing) main.c calls again for the same
 * message, and the batch goes on from the event that failed; after a
 * RabbitMQ failure the batch is redelivered and handled from its start,
 * which the store makes harmless, as for one event. A malformed batch is
 * dead-lettered whole.
 */
static fb_outcome fanout__batch(fb_bridge *b, const fp_amqp_msg *msg)
{
    fp_event_batch batch;
    char reason[256];
    fb_outcome out = FB_DONE;
    int rc;

    rc = fp_event_batch_parse(msg->body, msg->len, &batch, reason, sizeof(reason));
    if (rc == -ENOMEM)
        return FB_NO_MEMORY;
    if (rc != 0)
        return fb_fanout_dead_letter(b, msg, reason);
    while (b->batch_next < batch.n && out == FB_DONE) {
        out = fanout__batched(b, &batch, b->batch_next);
        if (out == FB_DONE)
            b->batch_next++;
        /* A batch of slow events may outlast two heartbeats: RabbitMQ
         * would close the link, and the batch would come again whole. */
        if (out == FB_DONE && fp_amqp_heartbeat(b->amqp) != 0)
            out = FB_LOST_AMQP;
    }
    /* Done, or handled again from the event that failed: what the
     * prefetch kept is not used again (run again, it is harmless). */
    fanout__prefetch_drop(b);
    fp_event_batch_free(&batch);
    if (out == FB_DONE)
        out = fanout__synced(b);
    if (out == FB_DONE) {
        fb_stats_add(&b->stats, FB_STAT_EVENT_BATCHES, 1);
        out = fp_amqp_ack_confirmed(b->amqp, msg->tag) == 0 ? FB_DONE : FB_LOST_AMQP;
    }
    return out;
}

void fb_fanout_begin(fb_bridge *b)
{
    b->batch_next = 0;
    b->applied = false;
    fanout__prefetch_drop(b);
}

fb_outcome fb_fanout_give_up(fb_bridge *b, const fp_amqp_msg *msg, const char *reason)
{
    fp_event_batch batch;
    fb_outcome out;
    int rc;

    if (!fp_event_is_batch(msg->routing_key))
        return fb_fanout_dead_letter(b, msg, reason);
    /* It parsed when it came (its events are being handled), so a
     * failure now is memory running out, whatever error it reads as
     * (cJSON's own says "malformed"): tried again, not dead-lettered. */
    rc = fp_event_batch_parse(msg->body, msg->len, &batch, NULL, 0);
    if (rc != 0)
        return FB_NO_MEMORY;
    if (b->batch_next >= batch.n) {
        /* Not refused for one of its events: the batch itself goes. */
        fp_event_batch_free(&batch);
        return fb_fanout_dead_letter(b, msg, reason);
    }
    out = fanout__dead_batched(b, &batch, b->batch_next, reason);
    fp_event_batch_free(&batch);
    if (out != FB_DONE)
        return out;
    b->batch_next++;
    return fb_fanout_handle(b, msg);
}

fb_outcome fb_fanout_handle(fb_bridge *b, const fp_amqp_msg *msg)
{
    char reason[256];
    fp_event ev;
    fb_outcome out;
    bool dead;
    int rc;

    if (fp_event_is_batch(msg->routing_key))
        return fanout__batch(b, msg);
    rc = fp_event_parse(msg->body, msg->len, msg->routing_key, &ev, reason, sizeof(reason));
    if (rc == -ENOMEM)
        return FB_NO_MEMORY; /* not the event's fault: try again */
    if (rc != 0)
        return fb_fanout_dead_letter(b, msg, reason);
    /* Applied already, its sync refused: only the sync again (a new
     * Redis link begins the event anew: fb_fanout_begin). */
    dead = false;
    out = b->applied ? FB_DONE : fanout__apply(b, &ev, &dead);
    if (out == FB_DONE && dead) {
        snprintf(reason, sizeof(reason), "refused: %s", fp_store_errstr(b->store));
        out = fb_fanout_dead_letter(b, msg, reason);
    } else if (out == FB_DONE) {
        b->applied = true;
        out = fanout__synced(b);
    }
    if (out == FB_DONE && !dead) {
        fb_stats_add(&b->stats, fanout__event_stat[ev.type], 1);
        out = fp_amqp_ack_confirmed(b->amqp, msg->tag) == 0 ? FB_DONE : FB_LOST_AMQP;
    }
    fp_event_free(&ev);
    return out;
}
