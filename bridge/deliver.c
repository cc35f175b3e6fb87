/*
 * deliver.c - stage 2: beside each mosquitto node, turn feed.deliver.<node>
 * and feed.broadcast.<node> messages into QoS 1 publishes on the local
 * broker only, and ack each message once the broker has acknowledged every
 * publish it caused. If the broker goes away mid-way the whole message is
 * published again after it returns (clients dedupe by post id).
 *
 * A message that cannot be understood is dropped with one log line: these
 * queues carry only what stage 1 wrote, so that is a bug, not input.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bridge.h"
#include "fp_id.h"
#include "fp_log.h"

#define DELIVER__TOPIC_MAX (5 + FP_ID_MAX + 1)

static fb_outcome deliver__drop(fb_bridge *b, const fp_amqp_msg *msg, const char *why)
{
    fp_error("dropping a malformed %s message (%zu bytes): %s",
             msg->source == FP_AMQP_SRC_DELIVER ? "feed.deliver" : "feed.broadcast", msg->len, why);
    return fp_amqp_reject(b->amqp_node, msg->tag) == 0 ? FB_DONE : FB_LOST_AMQP;
}

/* Publishes payload to feed/<uid> for every recipient, then waits for the PUBACKs. */
static fb_outcome deliver__feeds(fb_bridge *b, const char *payload, const cJSON *recipients)
{
    char topic[DELIVER__TOPIC_MAX];
    const cJSON *r;
    size_t len = strlen(payload), n = 0;

    cJSON_ArrayForEach(r, recipients)
    {
        if (!cJSON_IsString(r) || !fp_id_valid(r->valuestring))
            continue;
        snprintf(topic, sizeof(topic), "feed/%s", r->valuestring);
        if (fb_mqtt_publish(b->mqtt, topic, payload, len, false) != 0)
            return FB_RETRY_MQTT;
        n++;
        if (n % FB_MQTT_BATCH_MAX == 0 && fb_mqtt_flush(b->mqtt) != 0)
            return FB_RETRY_MQTT;
    }
    if (fb_mqtt_flush(b->mqtt) != 0)
        return FB_RETRY_MQTT;
    fp_debug("delivered to %zu local recipient(s)", n);
    fb_stats_add(&b->stats, FB_STAT_DELIVERIES, n);
    return FB_DONE;
}

/* Delivers one feed.deliver message. *why is set (and nothing published)
 * when the message is malformed. */
static fb_outcome deliver__one(fb_bridge *b, const fp_amqp_msg *msg, const char **why)
{
    cJSON *root, *payload, *recipients;
    fb_outcome out = FB_RETRY_MQTT;
    char *text;

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
    if (text != NULL)
        out = deliver__feeds(b, text, recipients);
    free(text);
    cJSON_Delete(root);
    return out;
}

/* Publishes a ribbon document retained on "ribbon", so a client that
 * subscribes later gets it at once. */
static fb_outcome deliver__ribbon(fb_bridge *b, const void *body, size_t len)
{
    if (fb_mqtt_publish(b->mqtt, "ribbon", body, len, true) != 0 || fb_mqtt_flush(b->mqtt) != 0)
        return FB_RETRY_MQTT;
    fb_stats_add(&b->stats, FB_STAT_BROADCASTS, 1);
    return FB_DONE;
}

static bool deliver__is_ribbon(const fp_amqp_msg *msg)
{
    cJSON *root = cJSON_ParseWithLength(msg->body, msg->len), *type;
    bool ok;

    type = cJSON_GetObjectItemCaseSensitive(root, "type");
    ok = cJSON_IsString(type) && strcmp(type->valuestring, "ribbon") == 0 &&
         cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "entries"));
    cJSON_Delete(root);
    return ok;
}

fb_outcome fb_deliver_handle(fb_bridge *b, const fp_amqp_msg *msg)
{
    const char *why = NULL;
    fb_outcome out;

    if (msg->source == FP_AMQP_SRC_BROADCAST) {
        if (!deliver__is_ribbon(msg))
            return deliver__drop(b, msg, "not a ribbon document");
        out = deliver__ribbon(b, msg->body, msg->len);
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
    char *ribbon = NULL;
    int rc;

    rc = fp_store_ribbon_get(b->store, &ribbon);
    if (rc != 0)
        return rc;
    rc = fb_mqtt_publish(b->mqtt, "ribbon", ribbon, strlen(ribbon), true);
    if (rc == 0)
        rc = fb_mqtt_flush(b->mqtt);
    free(ribbon);
    return rc;
}
