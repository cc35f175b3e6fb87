/*
 * fanout.c - MOSQ_EVT_CONTROL on FP_CONTROL_DELIVER_TOPIC: feed-bridge
 * sends one message per delivery (fp_control.h: the expiry, the
 * recipients, the payload) and the broker thread publishes the payload to
 * feed/<uid> for each recipient here, instead of the bridge publishing
 * (and the broker acknowledging) once per recipient.
 *
 * mosquitto 2.0.11, which this is written against (src/handle_publish.c,
 * src/control.c, src/loop.c):
 *   - a PUBLISH to $CONTROL/... goes through the WRITE ACL check first
 *     (acl.c: role service only), so anyone else gets PUBACK 135 and this
 *     callback never runs; it checks the role again all the same;
 *   - the PUBACK (reason code 0 whatever we return) is queued after this
 *     callback returned, so the bridge's PUBACK means the fan-out is
 *     inside the broker; a non-zero return makes the broker drop the
 *     client, so a malformed message from the bridge is refused by
 *     logging it and delivering nothing, not by returning an error (the
 *     bridge would publish it again after reconnecting, for ever);
 *   - mosquitto_broker_publish() owns what it is given: the payload must
 *     come from mosquitto_malloc() and the property list from
 *     mosquitto_property_add_*(), one of each per call, freed by the
 *     broker after it queued the message at the top of its next loop
 *     (queue_plugin_msgs: the expiry property becomes the stored message's
 *     expiry). A failed call leaves both with the caller.
 *   - Those messages reach subscribers through subs__send, which runs the
 *     READ ACL check per subscriber (acl.c), offline persistent sessions
 *     included, exactly as a publish of the bridge's would.
 * Broker thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <mqtt_protocol.h>

#include "feed_auth.h"
#include "fp_control.h"

#define FANOUT__FEED "feed/"
#define FANOUT__TOPIC_MAX (sizeof(FANOUT__FEED) + FP_ID_MAX)

/* Queues one feed/<id> publish with its own copies. Returns a MOSQ_ERR_*. */
static int fanout__publish(const char *id, size_t id_len, const fa_deliver_msg *m)
{
    char topic[FANOUT__TOPIC_MAX];
    mosquitto_property *props = NULL;
    void *copy;
    int rc;

    snprintf(topic, sizeof(topic), FANOUT__FEED "%.*s", (int)id_len, id);
    copy = mosquitto_malloc(m->body_len);
    if (copy == NULL)
        return MOSQ_ERR_NOMEM;
    memcpy(copy, m->body, m->body_len);
    if (m->expiry_s != 0 && mosquitto_property_add_int32(&props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL,
                                                         m->expiry_s) != MOSQ_ERR_SUCCESS) {
        mosquitto_free(copy);
        return MOSQ_ERR_NOMEM;
    }
    rc = mosquitto_broker_publish(NULL, topic, (int)m->body_len, copy, 1, false, props);
    if (rc != MOSQ_ERR_SUCCESS) {
        mosquitto_free(copy);
        mosquitto_property_free_all(&props);
    }
    return rc;
}

/* The client's id for a log line. */
static void fanout__who(struct mosquitto *client, char *out, size_t outsz)
{
    const char *id = mosquitto_client_id(client);

    fa_log_safe(id != NULL ? id : "", out, outsz);
}

int fa_on_control(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_control *ev = event_data;
    fa_plugin *pl = userdata;
    const char *why, *id;
    char who[72];
    fa_session *s;
    fa_deliver_msg m;
    size_t pos = 0, id_len, done = 0;
    int rc = MOSQ_ERR_SUCCESS;

    (void)event;
    s = fa_sessions_find(&pl->sessions, ev->client);
    if (s == NULL || s->role != FP_ROLE_SERVICE || s->offline_until != 0) {
        /* The ACL lets no one else publish here; should it ever, the
         * broker disconnects a client whose control message fails. */
        fanout__who(ev->client, who, sizeof(who));
        mosquitto_log_printf(MOSQ_LOG_WARNING,
                             "feed_auth: refused a deliver control message from \"%s\": not a "
                             "service client",
                             who);
        return MOSQ_ERR_ACL_DENIED;
    }
    why = fa_deliver_parse(ev->payload, ev->payloadlen, &m);
    if (why != NULL) {
        fanout__who(ev->client, who, sizeof(who));
        mosquitto_log_printf(MOSQ_LOG_WARNING,
                             "feed_auth: refused a malformed deliver control message from \"%s\" "
                             "(%u bytes): %s; nothing delivered",
                             who, (unsigned)ev->payloadlen, why);
        return MOSQ_ERR_SUCCESS;
    }
    while (fa_deliver_next(&m, &pos, &id, &id_len)) {
        rc = fanout__publish(id, id_len, &m);
        if (rc != MOSQ_ERR_SUCCESS)
            break;
        done++;
    }
    if (rc != MOSQ_ERR_SUCCESS) {
        fanout__who(ev->client, who, sizeof(who));
        mosquitto_log_printf(MOSQ_LOG_ERR,
                             "feed_auth: deliver control message from \"%s\": queued %zu of %zu "
                             "publishes: %s",
                             who, done, m.n, mosquitto_strerror(rc));
    }
    return MOSQ_ERR_SUCCESS;
}
