/*
 * deliver.c - stage 2: beside each mosquitto node, turn feed.deliver.<node>
 * and feed.broadcast.<node> messages into QoS 1 publishes on the local
 * broker only, and ack each message once the broker has acknowledged every
 * publish it caused. If the broker goes away mid-way the whole message is
 * published again after it returns (clients dedupe by post id).
 *
 * deliver_mode publish: one publish to feed/<uid> per recipient.
 * deliver_mode control: one message per delivery (at most
 * FP_CONTROL_IDS_MAX recipients each) to the broker's control topic,
 * which feed_auth.so fans out to feed/<uid> inside the broker
 * (fp_control.h, plugin/fanout.c); its PUBACK comes once the broker has
 * queued every publish.
 *
 * A message that cannot be understood is dropped with one log line: these
 * queues carry only what stage 1 wrote, so that is a bug, not input.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "bridge.h"
#include "fp_control.h"
#include "fp_id.h"
#include "fp_log.h"

#define DELIVER__TOPIC_MAX (5 + FP_ID_MAX + 1)

static fb_outcome deliver__drop(fb_bridge *b, const fp_amqp_msg *msg, const char *why)
{
    fp_error("dropping a malformed %s message (%zu bytes): %s",
             msg->source == FP_AMQP_SRC_DELIVER ? "feed.deliver" : "feed.broadcast", msg->len, why);
    return fp_amqp_reject(b->amqp_node, msg->tag) == 0 ? FB_DONE : FB_LOST_AMQP;
}

/* Flushes o's link and adds to *count the recipients of the batch's n
 * that the broker took: less one for each publish it refused or that was
 * dropped unsent (a publish per recipient; a control message dropped
 * unsent had one). *refused_rc, when not NULL: the first refusal's
 * reason code, or 0. */
static int deliver__flush(fb_outlet *o, size_t n, size_t *count, int *refused_rc)
{
    fb_mqtt_batch batch;
    size_t lost;
    int rc = fb_mqtt_flush(o->mqtt, &batch);

    lost = batch.refused + batch.unsendable;
    *count += lost < n ? n - lost : 0;
    if (refused_rc != NULL)
        *refused_rc = batch.refused_rc;
    return rc;
}

/* Publishes payload to feed/<uid> for each of ids[0..n), then waits for
 * the PUBACKs; adds to *count the recipients the broker took. */
static fb_outcome deliver__feeds_count(fb_outlet *o, const char *payload, const char *const *ids,
                                       size_t n, size_t *count)
{
    char topic[DELIVER__TOPIC_MAX];
    size_t len = strlen(payload), i, from = 0;

    for (i = 0; i < n; i++) {
        snprintf(topic, sizeof(topic), "feed/%s", ids[i]);
        if (fb_mqtt_publish(o->mqtt, topic, payload, len, false) != 0)
            return FB_RETRY_MQTT;
        if ((i + 1) % FB_MQTT_BATCH_MAX == 0) {
            if (deliver__flush(o, i + 1 - from, count, NULL) != 0)
                return FB_RETRY_MQTT;
            from = i + 1;
        }
    }
    return deliver__flush(o, n - from, count, NULL) == 0 ? FB_DONE : FB_RETRY_MQTT;
}

/* deliver__feeds_count, and the recipients reached counted in the stats. */
static fb_outcome deliver__feeds(fb_bridge *b, fb_outlet *o, const char *payload,
                                 const char *const *ids, size_t n)
{
    size_t count = 0;

    if (deliver__feeds_count(o, payload, ids, n, &count) != FB_DONE)
        return FB_RETRY_MQTT;
    fp_debug("delivered to %zu of %zu local recipient(s)", count, n);
    fb_stats_add(&b->stats, FB_STAT_DELIVERIES, count);
    return FB_DONE;
}

/* Sends ids[0..n) one control message: "<expiry_s> <id> ...\n<payload>".
 * FB_DONE, FB_NO_MEMORY (nothing sent) or FB_RETRY_MQTT. */
static fb_outcome deliver__control_one(fb_bridge *b, fb_outlet *o, const char *payload, size_t len,
                                       const char *const *ids, size_t n)
{
    size_t cap = 16 + n * (FP_ID_MAX + 1) + len, off;
    char *msg = malloc(cap);
    size_t i, l;
    int rc;

    if (msg == NULL)
        return FB_NO_MEMORY;
    off = (size_t)snprintf(msg, cap, "%u", fb_mqtt_expiry_s((int)b->cfg.deliver_ttl_ms));
    for (i = 0; i < n; i++) {
        l = strlen(ids[i]);
        msg[off++] = ' ';
        memcpy(msg + off, ids[i], l);
        off += l;
    }
    msg[off++] = '\n';
    memcpy(msg + off, payload, len);
    off += len;
    rc = fb_mqtt_publish(o->mqtt, FP_CONTROL_DELIVER_TOPIC, msg, off, false);
    free(msg);
    return rc == 0 ? FB_DONE : FB_RETRY_MQTT;
}

/*
 * How many of ids[0..n) go in the next control message for a payload of
 * len bytes, its expiry written in head bytes: at most
 * FP_CONTROL_IDS_MAX, and no more than the broker's Maximum Packet Size
 * takes. 0 when even ids[0] alone does not fit.
 */
static size_t deliver__control_batch(fb_outlet *o, size_t head, size_t len, const char *const *ids,
                                     size_t n)
{
    size_t topic = strlen(FP_CONTROL_DELIVER_TOPIC), size = head + 1 + len, next, k;

    for (k = 0; k < n && k < FP_CONTROL_IDS_MAX; k++) {
        next = size + 1 + strlen(ids[k]);
        if (!fb_mqtt_fits(o->mqtt, topic, next, false))
            break;
        size = next;
    }
    return k;
}

/* Whether a control message's refusal (reason code rc) says that the
 * broker has no fan-out: its ACL refused the topic (135, a feed_auth.so
 * without it), or it has no $CONTROL topics at all (131). Any other
 * refusal (149: over mosquitto's message_size_limit, say) is of that
 * message only. */
static bool deliver__no_fanout(int rc)
{
    return rc == MQTT_RC_NOT_AUTHORIZED || rc == MQTT_RC_IMPLEMENTATION_SPECIFIC;
}

/* A control message refused for another reason than a missing fan-out
 * (rc): logged once per link. */
static void deliver__control_other(fb_outlet *o, int rc)
{
    if (o->control_other_logged)
        return;
    fp_warn("mqtt: the broker refused a deliver control message: %s (reason code %d); such a "
            "message is delivered per recipient instead, this is not logged again",
            mosquitto_reason_string(rc), rc);
    o->control_other_logged = true;
}

/*
 * deliver_mode control: ids[0..n) in control messages of
 * deliver__control_batch ids, each acknowledged before the next goes, so
 * that a refusal is known by its message. A message refused for another
 * reason than a missing fan-out (149: over mosquitto's
 * message_size_limit) goes out per recipient, to its own recipients only
 * (deliver__feeds_count), and the next ones through the control topic
 * again.
 * A recipient whose control message would be too large even alone gets
 * a publish to feed/<uid> instead: its topic is shorter and its body
 * carries no expiry and id, so it may fit (if it does not either,
 * fb_mqtt_publish drops it, counted and logged once).
 * Returns FB_DONE with *done = n; or FB_DONE with *done = the recipients
 * handled before the first message refused for want of the fan-out
 * (deliver__no_fanout) and *refused_rc its reason code (the caller
 * delivers the rest); or FB_NO_MEMORY or FB_RETRY_MQTT. *reached gets the recipients the
 * broker took (a publish dropped unsent is not counted); the caller
 * counts them once the whole delivery is done, so a retry counts none
 * twice.
 */
static fb_outcome deliver__control(fb_bridge *b, fb_outlet *o, const char *payload,
                                   const char *const *ids, size_t n, size_t *done, size_t *reached,
                                   int *refused_rc)
{
    size_t len = strlen(payload), i, k, got, count = 0, head;
    char expiry[16];
    fb_outcome out;
    int rc = 0;

    *refused_rc = 0;
    head = (size_t)snprintf(expiry, sizeof(expiry), "%u",
                            fb_mqtt_expiry_s((int)b->cfg.deliver_ttl_ms));
    for (i = 0; i < n; i += k) {
        k = deliver__control_batch(o, head, len, ids + i, n - i);
        if (k == 0) {
            /* This one and those after it that do not fit either, in one
             * go (the payload is the same: most often all of them). */
            for (k = 1; i + k < n && deliver__control_batch(o, head, len, ids + i + k, 1) == 0;)
                k++;
            if (deliver__feeds_count(o, payload, ids + i, k, &count) != FB_DONE)
                return FB_RETRY_MQTT;
            continue;
        }
        got = 0;
        out = deliver__control_one(b, o, payload, len, ids + i, k);
        if (out != FB_DONE)
            return out;
        if (deliver__flush(o, k, &got, &rc) != 0)
            return FB_RETRY_MQTT;
        if (rc == 0)
            count += got;
        if (rc != 0 && deliver__no_fanout(rc)) {
            *refused_rc = rc;
            break;
        }
        if (rc != 0) {
            deliver__control_other(o, rc);
            if (deliver__feeds_count(o, payload, ids + i, k, &count) != FB_DONE)
                return FB_RETRY_MQTT;
        }
    }
    *done = i;
    *reached += count;
    fp_debug("delivered to %zu of %zu local recipient(s) through the broker's fan-out", count, i);
    return FB_DONE;
}

/*
 * Delivers payload to ids[0..n) through o: deliver_mode control, unless
 * the broker refused a control message on this link for lack of the
 * fan-out (a feed_auth.so without it, e.g. a broker not yet restarted
 * after an upgrade): the recipients of that message and of the next ones
 * get one publish each (clients dedupe a post received twice), and so do
 * later deliveries until the link reconnects, when control is tried
 * again. A control message refused for another reason goes out per
 * recipient alone (deliver__control).
 */
static fb_outcome deliver__payload(fb_bridge *b, fb_outlet *o, const char *text,
                                   const char *const *ids, size_t n)
{
    unsigned long reconnects, refused;
    size_t done = 0, reached = 0;
    fb_outcome out;
    int rc = 0;

    if (n == 0)
        return FB_DONE;
    fb_mqtt_begin(o->mqtt);
    if (!b->deliver_control)
        return deliver__feeds(b, o, text, ids, n);
    fb_mqtt_counters(o->mqtt, &reconnects, &refused);
    if (o->control_refused && reconnects != o->control_refused_at) {
        fp_info("mqtt: reconnected to the broker since it refused a deliver control message; "
                "trying deliver_mode control again");
        o->control_refused = false;
    }
    if (!o->control_refused) {
        out = deliver__control(b, o, text, ids, n, &done, &reached, &rc);
        if (out != FB_DONE)
            return out;
        if (rc == 0) {
            fb_stats_add(&b->stats, FB_STAT_DELIVERIES, reached);
            return FB_DONE;
        }
        fp_warn("mqtt: the broker refused a deliver control message (%s: does its "
                "feed_auth.so have the fan-out?); publishing per recipient until the broker "
                "reconnects",
                FP_CONTROL_DELIVER_TOPIC);
        /* Read again: a loss during the attempt must not end the
         * fallback at once. */
        fb_mqtt_counters(o->mqtt, &reconnects, &refused);
        o->control_refused = true;
        o->control_refused_at = reconnects;
    }
    if (deliver__feeds_count(o, text, ids + done, n - done, &reached) != FB_DONE)
        return FB_RETRY_MQTT;
    fp_debug("delivered to %zu of %zu local recipient(s)", reached, n);
    fb_stats_add(&b->stats, FB_STAT_DELIVERIES, reached);
    return FB_DONE;
}

/* The valid ids of a feed.deliver message's recipients, in a malloc'd
 * array (*n of them; NULL when there are none or memory ran out, which
 * *oom tells apart). They point into recipients. */
static const char **deliver__ids(const cJSON *recipients, size_t *n, bool *oom)
{
    const char **ids;
    const cJSON *r;
    int size = cJSON_GetArraySize(recipients);

    *n = 0;
    *oom = false;
    if (size <= 0)
        return NULL;
    ids = malloc((size_t)size * sizeof(*ids));
    if (ids == NULL) {
        *oom = true;
        return NULL;
    }
    cJSON_ArrayForEach(r, recipients)
    {
        if (cJSON_IsString(r) && fp_id_valid(r->valuestring))
            ids[(*n)++] = r->valuestring;
    }
    return ids;
}

/* After a delivery: one of this process's own queued shares ("run" this
 * run's, "seq") raises queued_done, which stage 1 waits for before it
 * delivers straight again (fanout.c). Stage 2 is its only writer. */
static void deliver__queued_done(fb_bridge *b, const cJSON *root)
{
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(root, "run");
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(root, "seq");

    /* Exact in a double up to 2^53; anything else is not ours. */
    if (!cJSON_IsString(run) || strcmp(run->valuestring, b->run) != 0 || !cJSON_IsNumber(seq) ||
        seq->valuedouble < 1 || seq->valuedouble > 9007199254740992.0)
        return;
    if ((uint64_t)seq->valuedouble > atomic_load(&b->queued_done))
        atomic_store(&b->queued_done, (uint64_t)seq->valuedouble);
}

/* Delivers one feed.deliver message. *why is set (and nothing published)
 * when the message is malformed. Returns FB_DONE, FB_NO_MEMORY (nothing
 * published) or FB_RETRY_MQTT (the broker did not take every publish). */
static fb_outcome deliver__one(fb_bridge *b, const fp_amqp_msg *msg, const char **why)
{
    cJSON *root, *payload, *recipients;
    fb_outcome out;
    const char **ids;
    char *text;
    size_t n;
    bool oom;

    *why = NULL;
    root = cJSON_ParseWithLength(msg->body, msg->len);
    payload = cJSON_GetObjectItemCaseSensitive(root, "payload");
    recipients = cJSON_GetObjectItemCaseSensitive(root, "recipients");
    if (!cJSON_IsObject(payload) || !cJSON_IsArray(recipients)) {
        *why = "not {\"payload\":{...},\"recipients\":[...]}";
        cJSON_Delete(root);
        return FB_DONE;
    }
    text = cJSON_PrintUnformatted(payload);
    ids = deliver__ids(recipients, &n, &oom);
    if (text == NULL || oom)
        out = FB_NO_MEMORY; /* not the broker's failure: the backoff, no reconnect */
    else
        out = deliver__payload(b, &b->node, text, ids, n);
    if (out == FB_DONE)
        deliver__queued_done(b, root);
    free(ids);
    free(text);
    cJSON_Delete(root);
    return out;
}

fb_outcome fb_deliver_direct(fb_bridge *b, const char *payload, const fp_node_targets *t)
{
    const char **ids;
    fb_outcome out;
    size_t i;

    if (t->n_users == 0)
        return FB_DONE;
    if (b->direct.mqtt == NULL || !fb_mqtt_connected(b->direct.mqtt))
        return FB_RETRY_MQTT;
    ids = malloc(t->n_users * sizeof(*ids));
    if (ids == NULL)
        return FB_RETRY_MQTT;
    for (i = 0; i < t->n_users; i++)
        ids[i] = t->users[i];
    out = deliver__payload(b, &b->direct, payload, ids, t->n_users);
    free(ids);
    return out;
}

/* The stage 2 link's count of lost connections so far. */
static unsigned long deliver__losses(fb_bridge *b)
{
    unsigned long losses, refused;

    fb_mqtt_counters(b->node.mqtt, &losses, &refused);
    return losses;
}

/*
 * Keeps a copy of the ribbon just published (body, len): what the broker
 * retains now. losses: deliver__losses() from before the publish, so a
 * loss during it still counts for fb_deliver_ribbon_again. Out of
 * memory, the previous copy stays: at worst an older ribbon is published
 * again after a loss, until the next push.
 */
static void deliver__ribbon_keep(fb_bridge *b, const void *body, size_t len, unsigned long losses)
{
    char *copy = malloc(len + 1);

    if (copy == NULL)
        return;
    memcpy(copy, body, len);
    copy[len] = '\0';
    free(b->ribbon_doc);
    b->ribbon_doc = copy;
    b->ribbon_len = len;
    b->ribbon_losses = losses;
}

/* Publishes a ribbon document retained on "ribbon" and waits for its
 * PUBACK. 0, counted as a broadcast unless the broker refused it or it
 * was dropped unsent (mqtt_refused counts those); -1 when the broker did
 * not take it (the caller tries again). */
static int deliver__ribbon_publish(fb_bridge *b, const void *body, size_t len)
{
    fb_mqtt_batch batch;

    fb_mqtt_begin(b->node.mqtt);
    if (fb_mqtt_publish(b->node.mqtt, "ribbon", body, len, true) != 0 ||
        fb_mqtt_flush(b->node.mqtt, &batch) != 0)
        return -1;
    if (batch.refused == 0 && batch.unsendable == 0)
        fb_stats_add(&b->stats, FB_STAT_BROADCASTS, 1);
    return 0;
}

/*
 * Publishes a ribbon document of the given version retained on "ribbon",
 * so a client that subscribes later gets it at once, unless this broker
 * has a newer one: ribbons reach feed.broadcast from every node's stage
 * 1, and one made earlier can arrive later. Version 0 (a document without
 * one) is always published. Returns FB_DONE, or FB_RETRY_MQTT when the
 * broker did not take it.
 */
static fb_outcome deliver__ribbon(fb_bridge *b, const void *body, size_t len, int64_t version)
{
    unsigned long losses;

    if (version > 0 && version < b->ribbon_version) {
        fp_debug("ribbon version %lld skipped: version %lld is out", (long long)version,
                 (long long)b->ribbon_version);
        return FB_DONE;
    }
    losses = deliver__losses(b);
    if (deliver__ribbon_publish(b, body, len) != 0)
        return FB_RETRY_MQTT;
    deliver__ribbon_keep(b, body, len, losses);
    if (version > b->ribbon_version)
        b->ribbon_version = version;
    return FB_DONE;
}

/* The version of a ribbon document ({"type":"ribbon","version":N,
 * "entries":[...]}, N a whole number; 0 without one), or -1 when body is
 * not one. */
static int64_t deliver__ribbon_version(const void *body, size_t len)
{
    cJSON *root = cJSON_ParseWithLength(body, len), *type, *version;
    int64_t v = -1;

    type = cJSON_GetObjectItemCaseSensitive(root, "type");
    version = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "ribbon") == 0 &&
        cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "entries"))) {
        if (version == NULL)
            v = 0;
        else if (cJSON_IsNumber(version) && version->valuedouble >= 0 &&
                 version->valuedouble <= 9007199254740992.0 &&
                 version->valuedouble == (double)(int64_t)version->valuedouble)
            v = (int64_t)version->valuedouble;
    }
    cJSON_Delete(root);
    return v;
}

fb_outcome fb_deliver_handle(fb_bridge *b, const fp_amqp_msg *msg)
{
    const char *why = NULL;
    int64_t version;
    fb_outcome out;

    if (msg->source == FP_AMQP_SRC_BROADCAST) {
        version = deliver__ribbon_version(msg->body, msg->len);
        if (version < 0)
            return deliver__drop(b, msg, "not a ribbon document");
        out = deliver__ribbon(b, msg->body, msg->len, version);
    } else {
        out = deliver__one(b, msg, &why);
        if (why != NULL)
            return deliver__drop(b, msg, why);
    }
    if (out != FB_DONE)
        return out;
    return fp_amqp_ack(b->amqp_node, msg->tag) == 0 ? FB_DONE : FB_LOST_AMQP;
}

int fb_deliver_ribbon_from_store(fb_bridge *b)
{
    unsigned long losses;
    char *ribbon = NULL;
    int rc;

    rc = fp_store_ribbon_get(b->store, &ribbon);
    if (rc != 0)
        return rc;
    losses = deliver__losses(b);
    fb_mqtt_begin(b->node.mqtt);
    rc = fb_mqtt_publish(b->node.mqtt, "ribbon", ribbon, strlen(ribbon), true);
    if (rc == 0)
        rc = fb_mqtt_flush(b->node.mqtt, NULL);
    /* Before stage 2 runs: any ribbon it takes later that is older than
     * this one is skipped. */
    b->ribbon_version = deliver__ribbon_version(ribbon, strlen(ribbon));
    /* Not sent: kept as lost with the link, so that stage 2 publishes it
     * once the link is up (fb_deliver_ribbon_again). */
    deliver__ribbon_keep(b, ribbon, strlen(ribbon), rc == 0 ? losses : losses - 1);
    free(ribbon);
    return rc;
}

void fb_deliver_ribbon_again(fb_bridge *b)
{
    unsigned long losses;

    if (b->ribbon_doc == NULL || !fb_mqtt_connected(b->node.mqtt))
        return;
    losses = deliver__losses(b);
    if (losses == b->ribbon_losses)
        return;
    /* Tried again at the next turn if the link fails meanwhile. */
    if (deliver__ribbon_publish(b, b->ribbon_doc, b->ribbon_len) != 0)
        return;
    b->ribbon_losses = losses;
    fp_info("ribbon version %lld published again: the link to the broker was lost",
            (long long)b->ribbon_version);
}
