/*
 * mqtt_link.c - feed-bridge's publisher to its local broker; see mqtt_link.h.
 *
 * The bridge speaks MQTT 5 to its broker, so that every feed/<uid> publish
 * carries a Message Expiry Interval: the realtime TTL (deliver_ttl_ms). A
 * delivery queued for an offline persistent session is dropped by the
 * broker once it is that old; the device catches up through the HTTP API.
 * The retained ribbon carries none: it is state, not an event.
 *
 * One network thread of ours (mqtt__thread) runs libmosquitto's loop,
 * which reconnects with a capped backoff. Callbacks run on that thread and
 * share the counters below with the main thread under one mutex.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include "mqtt_link.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "fp_log.h"
#include "fp_time.h"

/* Where Debian keeps the system's CA certificates (hashed names). */
#define MQTT__SYSTEM_CAS "/etc/ssl/certs"
#define MQTT__KEEPALIVE_S 30
/* Pause before the network loop runs again after it gave up (see
 * mqtt__thread): the longest reconnect delay. */
#define MQTT__RESTART_MS 2000
/* After a failed token renewal, or a renewal the network thread has not
 * taken up, the next attempt waits this long. */
#define MQTT__RENEW_RETRY_S 10
/* How long fb_mqtt_free() and fb_mqtt_discard() let the network thread
 * end by itself: above the longest reconnect delay, which it may be
 * sleeping out. */
#define MQTT__JOIN_MS 3000
#define MQTT__JOIN_SLICE_MS 100 /* mqtt__join's disconnect repeated this often */
/* MQTT 5 reason codes from 128 on are failures; below, successes. */
#define MQTT__RC_FAILURE 128

struct fb_mqtt {
    fb_mqtt_config cfg;
    char *host;
    char *signing_key_file;
    char client_id[96];
    char sub[96];
    unsigned char *key;
    size_t key_len;
    struct mosquitto *m;
    mosquitto_property *expiry; /* of every non-retained publish; NULL: none */
    pthread_t thread;           /* mqtt__thread, once started */
    bool thread_started;
    bool start_failed;   /* mqtt__restart's failure logged */
    atomic_bool closing; /* fb_mqtt_free() or fb_mqtt_discard() began: the network thread ends */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    time_t token_exp;      /* of the token the next CONNECT offers */
    bool renew;            /* fb_mqtt_maintain() asked the network thread for a new one */
    time_t renew_asked_at; /* ... then */
    time_t renew_retry_at; /* a renewal failed: not asked again before this */
    bool connected;
    int last_connack;                 /* MQTT 5 reason code */
    unsigned char pending[65536 / 8]; /* bit per message id awaiting its PUBACK */
    unsigned char early[65536 / 8];   /* PUBACKs that beat the recording of their mid */
    unsigned char early_rc[65536];    /* ... and their reason codes (read under that bit only) */
    unsigned long outstanding;
    fb_mqtt_batch batch;    /* the current batch's (fb_mqtt_flush) */
    bool unflushed;         /* publishes since the last flush (fb_mqtt_begin) */
    bool begun;             /* publishes since fb_mqtt_begin, flushed or not */
    bool unacked;           /* publishes since the last flush that returned 0 (fb_mqtt_discard) */
    unsigned long connects; /* CONNACKs that accepted the link */
    unsigned long reconnects;
    unsigned long refused;          /* PUBACKs with a failure reason code */
    unsigned long unsendable;       /* publishes never sent: too large (mqtt__unsendable) */
    uint32_t max_packet;            /* the broker's Maximum Packet Size (CONNACK); 0: none */
    unsigned char refused_seen[32]; /* bit per failure reason code already logged */
    unsigned char unsendable_seen[8]; /* bit per mqtt__unsendable error already logged */
    char errstr[192];
};

const char *fb_mqtt_errstr(const fb_mqtt *m)
{
    return m != NULL ? m->errstr : "out of memory";
}

/* A CONNACK; rc is its MQTT 5 reason code (0 = accepted). */
static void mqtt__on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
                             const mosquitto_property *props)
{
    fb_mqtt *m = obj;
    unsigned long losses;
    uint32_t max_packet = 0;

    (void)flags;
    if (atomic_load(&m->closing)) {
        /* A reconnect that crossed mqtt__stop's disconnect (it found no
         * socket to close): this DISCONNECT goes out ahead of the
         * unacknowledged publishes libmosquitto resends after this
         * callback, and the socket closes with it, before they are
         * written (fb_mqtt_discard must not let them out). */
        mosquitto_disconnect(mosq);
        return;
    }
    if (rc == 0)
        mosquitto_property_read_int32(props, MQTT_PROP_MAXIMUM_PACKET_SIZE, &max_packet, false);
    pthread_mutex_lock(&m->lock);
    m->connected = rc == 0;
    m->last_connack = rc;
    if (rc == 0) {
        m->max_packet = max_packet;
        m->connects++;
    }
    losses = m->reconnects;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    if (rc == 0 && losses > 0)
        fp_info("mqtt: %s connected to the broker again", m->client_id);
    if (rc != 0)
        fp_warn("mqtt: broker %s:%d refused the bridge: %s (reason code %d)", m->host, m->cfg.port,
                mosquitto_reason_string(rc), rc);
}

/* What ended a connection: rc is the reason code of the broker's MQTT 5
 * DISCONNECT (128 and above) when it sent one, else a MOSQ_ERR_* code. */
static const char *mqtt__disconnect_string(int rc)
{
    return rc >= MQTT__RC_FAILURE ? mosquitto_reason_string(rc) : mosquitto_strerror(rc);
}

static void mqtt__on_disconnect(struct mosquitto *mosq, void *obj, int rc,
                                const mosquitto_property *props)
{
    fb_mqtt *m = obj;
    bool was;

    (void)mosq;
    (void)props;
    pthread_mutex_lock(&m->lock);
    was = m->connected;
    m->connected = false;
    if (was && rc != 0)
        m->reconnects++;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    if (was && rc != 0)
        fp_warn("mqtt: %s lost the broker %s:%d (%s); reconnecting", m->client_id, m->host,
                m->cfg.port, mqtt__disconnect_string(rc));
}

/* Sets or clears bit n of map (n below 65,536 and the map's size in bits:
 * a message id, or a reason code); returns its previous value. */
static bool mqtt__bit(unsigned char *map, int n, bool set)
{
    unsigned idx = (unsigned)n & 0xffffu;
    unsigned char bit = (unsigned char)(1u << (idx & 7u));
    bool was = (map[idx >> 3] & bit) != 0;

    if (set)
        map[idx >> 3] |= bit;
    else
        map[idx >> 3] &= (unsigned char)~bit;
    return was;
}

/* Lock held: a publish of the current batch was refused with rc. */
static void mqtt__batch_refused(fb_mqtt *m, int rc)
{
    if (m->batch.refused++ == 0)
        m->batch.refused_rc = rc;
}

/*
 * A PUBACK, with its MQTT 5 reason code rc. 0 and 16 (no matching
 * subscribers: the user went offline in the meantime) are successes. From
 * 128 on (e.g. 135, not authorised) the broker refused the publish; it
 * would refuse it again, so it is settled all the same (not retried),
 * counted, and logged once per distinct reason code. Either way its mid
 * leaves the pending map, and a refusal counts for the current batch; or
 * it enters the early map, and fb_mqtt_publish decides when it records
 * the mid (a PUBACK of a publish from before the batch never is).
 */
static void mqtt__on_publish(struct mosquitto *mosq, void *obj, int mid, int rc,
                             const mosquitto_property *props)
{
    fb_mqtt *m = obj;
    bool first = false;

    (void)mosq;
    (void)props;
    pthread_mutex_lock(&m->lock);
    if (rc >= MQTT__RC_FAILURE) {
        m->refused++;
        first = !mqtt__bit(m->refused_seen, rc & 0xff, true);
    }
    if (mqtt__bit(m->pending, mid, false)) {
        m->outstanding--;
        if (rc >= MQTT__RC_FAILURE)
            mqtt__batch_refused(m, rc);
    } else {
        /* Its publish is still being recorded (fb_mqtt_publish), or is
         * not of this batch: the recording decides. */
        mqtt__bit(m->early, mid, true);
        m->early_rc[mid & 0xffff] = (unsigned char)rc;
    }
    /* Only the last PUBACK of a batch is worth waking the flusher for. */
    if (m->outstanding == 0)
        pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    if (first)
        fp_warn("mqtt: broker %s:%d refused a publish: %s (reason code %d); such publishes are "
                "dropped and counted, this reason is not logged again",
                m->host, m->cfg.port, mosquitto_reason_string(rc), rc);
}

/*
 * Mints a fresh service token and sets it as mosq's password for the next
 * (re)connect. libmosquitto reads the password while it connects, on the
 * network thread, without a lock: so this runs only while that thread is
 * not running (mqtt__client) or on it, between two runs of its loop
 * (mqtt__thread). Returns 0, or -EINVAL/-ENOMEM with err set.
 */
static int mqtt__set_token(fb_mqtt *m, struct mosquitto *mosq, char *errbuf, size_t errlen)
{
    fp_jwt_mint_claims c = {0};
    char *token = NULL, err[256];
    time_t now = time(NULL);
    int rc;

    c.sub = m->sub;
    c.iat = (int64_t)now;
    c.exp = (int64_t)now + m->cfg.token_ttl_s;
    c.role = FP_ROLE_SERVICE;
    rc = fp_jwt_mint(m->cfg.alg, m->key, m->key_len, &c, &token, err, sizeof(err));
    if (rc != 0) {
        snprintf(errbuf, errlen, "mqtt: minting the bridge token: %.150s", err);
        return -EINVAL;
    }
    rc = mosquitto_username_pw_set(mosq, m->sub, token);
    free(token);
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(errbuf, errlen, "mqtt: %s", mosquitto_strerror(rc));
        return -ENOMEM;
    }
    pthread_mutex_lock(&m->lock);
    m->token_exp = (time_t)c.exp;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

/* Waits (lock held) until connected or timeout. */
static bool mqtt__wait_connected(fb_mqtt *m, int timeout_ms)
{
    struct timespec until = fp_time_mono_deadline(timeout_ms);

    while (!m->connected) {
        if (pthread_cond_timedwait(&m->cond, &m->lock, &until) != 0)
            break;
    }
    return m->connected;
}

/*
 * TLS to the broker: its certificate must chain to the CA file (or to one
 * of the system's CAs) and name m->host; libmosquitto checks both during
 * every (re)connect. Returns 0 or -EINVAL (errstr says why).
 */
static int mqtt__tls(fb_mqtt *m, struct mosquitto *mosq, const fb_mqtt_config *c)
{
    bool own_ca = c->tls_ca != NULL && c->tls_ca[0] != '\0';
    int rc;

    rc = mosquitto_tls_set(mosq, own_ca ? c->tls_ca : NULL, own_ca ? NULL : MQTT__SYSTEM_CAS, NULL,
                           NULL, NULL);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_tls_insecure_set(mosq, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(m->errstr, sizeof(m->errstr), "mqtt: TLS with CAs from %.120s: %s",
                 own_ca ? c->tls_ca : MQTT__SYSTEM_CAS, mosquitto_strerror(rc));
        return -EINVAL;
    }
    return 0;
}

/*
 * The Message Expiry Interval of non-retained publishes: expiry_ms rounded
 * up to whole seconds (so never shorter than asked), 1 s at least; none
 * when expiry_ms is 0. The list is built once and used by every publish.
 * Returns 0 or -ENOMEM.
 */
unsigned fb_mqtt_expiry_s(int expiry_ms)
{
    return expiry_ms <= 0 ? 0 : (unsigned)(((int64_t)expiry_ms + 999) / 1000);
}

static int mqtt__expiry(fb_mqtt *m, int expiry_ms)
{
    if (expiry_ms <= 0)
        return 0;
    if (mosquitto_property_add_int32(&m->expiry, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL,
                                     (uint32_t)fb_mqtt_expiry_s(expiry_ms)) != MOSQ_ERR_SUCCESS) {
        snprintf(m->errstr, sizeof(m->errstr), "mqtt: out of memory");
        return -ENOMEM;
    }
    return 0;
}

/*
 * A libmosquitto client for m (*out), not connected: its client id, MQTT
 * 5, the callbacks, TLS as configured and a fresh token. Returns 0, or
 * -ENOMEM/-EINVAL with errstr set (*out NULL).
 */
static int mqtt__client(fb_mqtt *m, struct mosquitto **out)
{
    struct mosquitto *mosq = mosquitto_new(m->client_id, true, m);
    int rc;

    *out = NULL;
    if (mosq == NULL) {
        snprintf(m->errstr, sizeof(m->errstr), "mqtt: out of memory");
        return -ENOMEM;
    }
    /* MQTT 5 for the expiry property; the callbacks are the v5 ones, which
     * get reason codes (a v3 callback would be called too, and twice would
     * settle a PUBACK twice). The loop runs on our own thread. */
    mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_threaded_set(mosq, true);
    mosquitto_connect_v5_callback_set(mosq, mqtt__on_connect);
    mosquitto_disconnect_v5_callback_set(mosq, mqtt__on_disconnect);
    mosquitto_publish_v5_callback_set(mosq, mqtt__on_publish);
    /* 1 s, then 2 s between attempts: a restarted broker is back quickly. */
    mosquitto_reconnect_delay_set(mosq, 1, 2, false);
    rc = m->cfg.tls ? mqtt__tls(m, mosq, &m->cfg) : 0;
    if (rc == 0)
        rc = mqtt__set_token(m, mosq, m->errstr, sizeof(m->errstr));
    if (rc != 0) {
        mosquitto_destroy(mosq);
        return rc;
    }
    *out = mosq;
    return 0;
}

static int mqtt__init(fb_mqtt *m, const fb_mqtt_config *c)
{
    char err[256];
    int rc;

    m->cfg = *c;
    m->host = strdup(c->host);
    m->signing_key_file = strdup(c->signing_key_file);
    if (m->host == NULL || m->signing_key_file == NULL)
        return -ENOMEM;
    snprintf(m->sub, sizeof(m->sub), "bridge-%s", c->node_id);
    snprintf(m->client_id, sizeof(m->client_id), "feed-bridge-%s%s", c->node_id,
             c->client_suffix != NULL ? c->client_suffix : "");
    rc = fp_jwt_load_key(c->alg, c->signing_key_file, &m->key, &m->key_len, err, sizeof(err));
    if (rc != 0) {
        snprintf(m->errstr, sizeof(m->errstr), "mqtt: %.180s", err);
        return rc == -ENOMEM ? -ENOMEM : -EINVAL; /* -EINVAL: a bad configuration */
    }
    pthread_mutex_init(&m->lock, NULL);
    if (fp_time_cond_init(&m->cond) != 0)
        return -ENOMEM;
    atomic_init(&m->closing, false);
    if (mqtt__expiry(m, c->expiry_ms) != 0)
        return -ENOMEM;
    return mqtt__client(m, &m->m);
}

static bool mqtt__renew_asked(fb_mqtt *m)
{
    bool r;

    pthread_mutex_lock(&m->lock);
    r = m->renew;
    pthread_mutex_unlock(&m->lock);
    return r;
}

/* On the network thread, its loop stopped: a fresh token for the next
 * CONNECT, whether fb_mqtt_maintain() asked for one or the broker ended
 * the session or refused the last one (a kick, a revocation of the
 * bridge's user, a token the broker no longer takes): one minted now is
 * the best the link can offer. A failure keeps the current token; one
 * fb_mqtt_maintain() asked for is asked again MQTT__RENEW_RETRY_S later. */
static void mqtt__renew(fb_mqtt *m)
{
    char err[192];
    int rc;

    rc = mqtt__set_token(m, m->m, err, sizeof(err));
    if (rc != 0)
        fp_error("%s; the link goes on with its current token", err);
    pthread_mutex_lock(&m->lock);
    m->renew = false;
    if (rc != 0)
        m->renew_retry_at = time(NULL) + MQTT__RENEW_RETRY_S;
    pthread_mutex_unlock(&m->lock);
}

/*
 * The network thread. mosquitto_loop_forever() reconnects by itself after
 * a lost connection, but under MQTT 5 it returns for good when the broker
 * ends the session with a DISCONNECT (a plugin's kick, a session taken
 * over: libmosquitto then takes the session for closed on purpose) or
 * refuses a CONNECT (it reads every MQTT 5 refusal as a protocol error).
 * So it runs again here, MQTT__RESTART_MS later, with a fresh token,
 * until fb_mqtt_free(). It also returns when fb_mqtt_maintain()
 * disconnects to renew the token: the new token is set here, and the loop
 * runs again at once.
 */
static void *mqtt__thread(void *arg)
{
    fb_mqtt *m = arg;
    int ms;

    for (;;) {
        mosquitto_loop_forever(m->m, MQTT__KEEPALIVE_S * 1000, 1);
        for (ms = 0; ms < MQTT__RESTART_MS && !atomic_load(&m->closing) && !mqtt__renew_asked(m);
             ms += 50)
            usleep(50000);
        if (atomic_load(&m->closing))
            break;
        mqtt__renew(m);
        if (atomic_load(&m->closing))
            break;
        fp_debug("mqtt: the network loop ended; connecting to %s:%d again", m->host, m->cfg.port);
        mosquitto_reconnect_async(m->m); /* a failure is retried by the loop */
    }
    return NULL;
}

/* Why the link is not up after fb_mqtt_open's wait (lock held): the
 * broker's refusal, else the first attempt's failure (first: what
 * mosquitto_connect_async returned), else no answer. */
static const char *mqtt__no_link_reason(const fb_mqtt *m, int first)
{
    if (m->last_connack != 0)
        return mosquitto_reason_string(m->last_connack);
    if (first != MOSQ_ERR_SUCCESS && first != MOSQ_ERR_ERRNO)
        return mosquitto_strerror(first);
    return "no answer";
}

/*
 * Starts connecting m->m and its network thread: connect_async + the
 * thread, which keeps retrying even when the broker is not up yet, or its
 * name does not resolve yet (a failed first attempt, MOSQ_ERR_EAI or the
 * like, is retried by the loop as any later one; only bad arguments are
 * final). Returns 0, with what mosquitto_connect_async returned in
 * *first; or -EINVAL/-ENOMEM, or -EAGAIN (no thread), with errstr set:
 * fb_mqtt_maintain() tries again (mqtt__restart).
 */
static int mqtt__start(fb_mqtt *m, int *first)
{
    *first = mosquitto_connect_async(m->m, m->host, m->cfg.port, MQTT__KEEPALIVE_S);
    if (*first == MOSQ_ERR_INVAL || *first == MOSQ_ERR_NOMEM) {
        snprintf(m->errstr, sizeof(m->errstr), "mqtt: %s", mosquitto_strerror(*first));
        return *first == MOSQ_ERR_NOMEM ? -ENOMEM : -EINVAL;
    }
    atomic_store(&m->closing, false);
    if (pthread_create(&m->thread, NULL, mqtt__thread, m) != 0) {
        snprintf(m->errstr, sizeof(m->errstr), "mqtt: cannot start the network thread");
        return -EAGAIN;
    }
    m->thread_started = true;
    return 0;
}

int fb_mqtt_open(fb_mqtt **out, const fb_mqtt_config *c)
{
    fb_mqtt *m;
    int rc, first;

    *out = NULL;
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        return -ENOMEM;
    *out = m;
    rc = mqtt__init(m, c);
    if (rc == 0)
        rc = mqtt__start(m, &first);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&m->lock);
    rc = mqtt__wait_connected(m, m->cfg.timeout_ms) ? 0 : -EIO;
    if (rc != 0)
        snprintf(m->errstr, sizeof(m->errstr), "mqtt: broker %s:%d not reachable or refused (%s)",
                 m->host, m->cfg.port, mqtt__no_link_reason(m, first));
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/*
 * Ends the network thread once closing is set and the link disconnected:
 * libmosquitto's loop then returns, at the latest after the reconnect
 * delay it may be sleeping out, and so does the thread.
 *
 * A disconnect that found no socket is undone by a reconnect already on
 * its way (the thread's, past its look at closing, or libmosquitto's own
 * after its reconnect delay): that connection would then wait for a
 * CONNACK, for as long as the keepalive if the broker is stalled. So the
 * disconnect is repeated every MQTT__JOIN_SLICE_MS while the thread runs.
 * Only a thread still running after MQTT__JOIN_MS (stuck in a connect to a
 * host that never answers) is cancelled, and that is logged: a thread
 * cancelled while it ends by itself leaves its stack poisoned for
 * AddressSanitizer, which then reports its exit.
 */
static void mqtt__join(fb_mqtt *m)
{
    int64_t end = fp_time_mono_ms() + MQTT__JOIN_MS;
    struct timespec until;

    for (;;) {
        until = fp_time_real_deadline(MQTT__JOIN_SLICE_MS);
        if (pthread_timedjoin_np(m->thread, NULL, &until) == 0)
            return;
        if (fp_time_mono_ms() >= end)
            break;
        mosquitto_disconnect(m->m);
    }
    fp_warn("mqtt: %s: the network thread did not end within %d ms; cancelled", m->client_id,
            MQTT__JOIN_MS);
    pthread_cancel(m->thread);
    pthread_join(m->thread, NULL);
}

/* Ends the connection and the network thread (mqtt__join). */
static void mqtt__stop(fb_mqtt *m)
{
    atomic_store(&m->closing, true);
    mosquitto_disconnect(m->m);
    if (m->thread_started)
        mqtt__join(m);
    m->thread_started = false;
}

void fb_mqtt_free(fb_mqtt *m)
{
    if (m == NULL)
        return;
    if (m->m != NULL) {
        mqtt__stop(m);
        mosquitto_destroy(m->m);
        pthread_cond_destroy(&m->cond);
        pthread_mutex_destroy(&m->lock);
    }
    mosquitto_property_free_all(&m->expiry);
    fp_jwt_key_free(m->key, m->key_len);
    free(m->host);
    free(m->signing_key_file);
    free(m);
}

/*
 * Errors of mosquitto_publish_v5 that publishing again cannot mend: the
 * message is larger than MQTT allows or asks for what the broker does not
 * offer (QoS 1), or the arguments are wrong.
 */
static bool mqtt__unsendable(int rc)
{
    return rc == MOSQ_ERR_OVERSIZE_PACKET || rc == MOSQ_ERR_PAYLOAD_SIZE ||
           rc == MOSQ_ERR_QOS_NOT_SUPPORTED || rc == MOSQ_ERR_MALFORMED_UTF8 ||
           rc == MOSQ_ERR_INVAL;
}

/* An unsendable publish (rc): settled, counted, and logged once per
 * error. */
static void mqtt__refuse_unsendable(fb_mqtt *m, const char *topic, size_t len, int rc)
{
    bool first;

    pthread_mutex_lock(&m->lock);
    m->unsendable++;
    m->batch.unsendable++;
    m->unflushed = true;
    first = !mqtt__bit(m->unsendable_seen, rc & 0x3f, true);
    pthread_mutex_unlock(&m->lock);
    if (first)
        fp_warn("mqtt: a publish to %s (%zu bytes) cannot be sent to broker %s:%d: %s; such "
                "publishes are dropped and counted as refused, this error is not logged again",
                topic, len, m->host, m->cfg.port, mosquitto_strerror(rc));
}

/* Bytes of an MQTT variable byte integer holding v. */
static size_t mqtt__varint_len(size_t v)
{
    return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

/*
 * The whole size of the PUBLISH fb_mqtt_publish sends (QoS 1, MQTT 5):
 * fixed header, topic, packet id, properties (the expiry on a message
 * that is not retained: 5 bytes), payload; what a broker holds against
 * its Maximum Packet Size.
 */
static size_t mqtt__publish_size(const fb_mqtt *m, size_t topic_len, size_t len, bool retain)
{
    size_t props = !retain && m->expiry != NULL ? 5 : 0;
    size_t remaining = 2 + topic_len + 2 + mqtt__varint_len(props) + props + len;

    return 1 + mqtt__varint_len(remaining) + remaining;
}

bool fb_mqtt_fits(fb_mqtt *m, size_t topic_len, size_t len, bool retain)
{
    uint32_t max;

    pthread_mutex_lock(&m->lock);
    max = m->max_packet;
    pthread_mutex_unlock(&m->lock);
    return max == 0 || mqtt__publish_size(m, topic_len, len, retain) <= max;
}

/*
 * Whether a publish may go now (lock held). With the link down, a
 * delivery that has published already since fb_mqtt_begin() waits for
 * the next connection, up to the flush's limit: its publishes not yet
 * acknowledged wait in libmosquitto's queue for it, and those flushed
 * reached the broker; a publish that failed instead would make the
 * caller retry the whole delivery, a second copy each. A delivery that
 * has published nothing yet does not wait: its caller learns at once
 * that the link is down (and, stage 1, takes the queue instead).
 */
static bool mqtt__link_ready_locked(fb_mqtt *m)
{
    if (m->connected)
        return true;
    if (!m->begun)
        return false;
    return mqtt__wait_connected(m, m->cfg.timeout_ms + 1000);
}

int fb_mqtt_publish(fb_mqtt *m, const char *topic, const void *payload, size_t len, bool retain)
{
    int rc, mid = 0;
    bool ready;

    /* Checked here, not left to libmosquitto: 2.0.11 counts a publish
     * one byte short in mosquitto_publish_v5, and the one that passes
     * that check by one byte then fails its send, which aborts. */
    if (!fb_mqtt_fits(m, strlen(topic), len, retain)) {
        mqtt__refuse_unsendable(m, topic, len, MOSQ_ERR_OVERSIZE_PACKET);
        return 0;
    }
    pthread_mutex_lock(&m->lock);
    ready = mqtt__link_ready_locked(m);
    pthread_mutex_unlock(&m->lock);
    if (!ready) {
        snprintf(m->errstr, sizeof(m->errstr), "mqtt publish: %s",
                 mosquitto_strerror(MOSQ_ERR_NO_CONN));
        return -EIO;
    }
    /* Never hold our lock across libmosquitto calls (its network thread
     * takes it in callbacks); a PUBACK that arrives before the mid is
     * recorded lands in the early map instead. A retained message is
     * state and never expires; every other one carries the expiry. */
    rc = mosquitto_publish_v5(m->m, &mid, topic, (int)len, payload, 1, retain,
                              retain ? NULL : m->expiry);
    /* MOSQ_ERR_NO_CONN: the link dropped since the check above, but
     * libmosquitto has queued the publish all the same (mid given) and
     * sends it once it reconnects. It is tracked as sent, so that its
     * PUBACK settles it (the flush waits for it); failing it would make
     * the caller retry, and the broker would get this copy too. */
    if (rc == MOSQ_ERR_NO_CONN)
        rc = MOSQ_ERR_SUCCESS;
    if (rc == MOSQ_ERR_SUCCESS) {
        pthread_mutex_lock(&m->lock);
        m->unflushed = true;
        m->begun = true;
        m->unacked = true;
        if (mqtt__bit(m->early, mid, false)) {
            if (m->early_rc[mid & 0xffff] >= MQTT__RC_FAILURE)
                mqtt__batch_refused(m, m->early_rc[mid & 0xffff]);
        } else if (!mqtt__bit(m->pending, mid, true)) {
            m->outstanding++;
        }
        pthread_mutex_unlock(&m->lock);
    }
    if (rc != MOSQ_ERR_SUCCESS && mqtt__unsendable(rc)) {
        mqtt__refuse_unsendable(m, topic, len, rc);
        return 0;
    }
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(m->errstr, sizeof(m->errstr), "mqtt publish: %s", mosquitto_strerror(rc));
        return -EIO;
    }
    return 0;
}

/*
 * Lock held: marks the link down and asks the network thread for a new
 * connection (with a fresh token, as a renewal). True when the caller is
 * to end the current connection (mosquitto_disconnect, outside the lock):
 * it was up. Marking it down at once, not when the DISCONNECT has gone out
 * (which a stalled socket can hold back until the keepalive ends it),
 * makes every user of the link wait for the new connection.
 */
static bool mqtt__relink_locked(fb_mqtt *m)
{
    if (!m->connected)
        return false;
    m->connected = false;
    /* A loss of the broker like any other (unlike a token renewal): the
     * broker may be restarting (fb_deliver_ribbon_again), and the link's
     * "connected again" follows. */
    m->reconnects++;
    m->renew = true;
    m->renew_asked_at = time(NULL);
    return true;
}

/* Lock held: the next publish starts a new batch; the PUBACKs of the
 * publishes before it no longer count. */
static void mqtt__batch_clear_locked(fb_mqtt *m)
{
    memset(m->pending, 0, sizeof(m->pending));
    memset(m->early, 0, sizeof(m->early));
    m->outstanding = 0;
    memset(&m->batch, 0, sizeof(m->batch));
    m->unflushed = false;
}

void fb_mqtt_begin(fb_mqtt *m)
{
    pthread_mutex_lock(&m->lock);
    m->begun = false;
    if (m->unflushed)
        mqtt__batch_clear_locked(m);
    pthread_mutex_unlock(&m->lock);
}

int fb_mqtt_flush(fb_mqtt *m, fb_mqtt_batch *batch)
{
    struct timespec until = fp_time_mono_deadline(m->cfg.timeout_ms + 1000);
    int64_t end = fp_time_mono_ms() + m->cfg.flush_max_ms;
    unsigned long left;
    bool relink = false;
    int rc = 0;

    pthread_mutex_lock(&m->lock);
    left = m->outstanding;
    while (m->outstanding > 0) {
        if (pthread_cond_timedwait(&m->cond, &m->lock, &until) != 0) {
            if (m->outstanding < left && fp_time_mono_ms() < end) {
                /* PUBACKs came in the last period: a slow broker, not a
                 * hung one. A big batch may need several periods, up to
                 * flush_max_ms (the caller's RabbitMQ link stays silent
                 * meanwhile). */
                left = m->outstanding;
                until = fp_time_mono_deadline(m->cfg.timeout_ms + 1000);
                continue;
            }
            snprintf(m->errstr, sizeof(m->errstr), "mqtt: %lu publish(es) not acknowledged",
                     m->outstanding);
            rc = -EIO;
            /* A broker that took the publishes but does not acknowledge
             * them (hung, or slow): a new connection, so that the next try
             * waits for one that answers instead of piling more copies
             * into this one (libmosquitto keeps each until acknowledged,
             * and sends it again on the new connection). */
            relink = mqtt__relink_locked(m);
            break;
        }
    }
    /* Whatever is still unacknowledged is retried by the caller as a whole. */
    if (rc == 0)
        m->unacked = false;
    if (batch != NULL)
        *batch = m->batch;
    mqtt__batch_clear_locked(m);
    pthread_mutex_unlock(&m->lock);
    if (relink)
        mosquitto_disconnect(m->m);
    return rc;
}

/* A link whose network thread is not running (its start failed in
 * fb_mqtt_open or fb_mqtt_discard): starts it again; a failure is logged
 * once until a start succeeds. */
static void mqtt__restart(fb_mqtt *m)
{
    int first;

    if (mqtt__start(m, &first) == 0) {
        if (m->start_failed)
            fp_info("mqtt: %s: the network thread runs again; connecting", m->client_id);
        m->start_failed = false;
        return;
    }
    if (!m->start_failed)
        fp_error("%s; trying again", m->errstr);
    m->start_failed = true;
}

void fb_mqtt_maintain(fb_mqtt *m)
{
    time_t now = time(NULL);
    bool due;

    if (!m->thread_started) {
        mqtt__restart(m);
        return;
    }

    /* Renew at 80% of the lifetime: well before the plugin's expiry kick.
     * A request still pending after MQTT__RENEW_RETRY_S is made again: its
     * disconnect can go unseen when it crosses a reconnect in progress. */
    pthread_mutex_lock(&m->lock);
    if (m->renew)
        due = now >= m->renew_asked_at + MQTT__RENEW_RETRY_S;
    else
        due = now >= m->token_exp - m->cfg.token_ttl_s / 5 && now >= m->renew_retry_at;
    if (due) {
        m->renew = true;
        m->renew_asked_at = now;
    }
    pthread_mutex_unlock(&m->lock);
    if (!due)
        return;
    fp_info("mqtt: renewing the bridge token (reconnect)");
    /* Ends the network loop (or its wait for the next attempt); the
     * network thread then sets the new token and connects again. */
    mosquitto_disconnect(m->m);
}

int fb_mqtt_discard(fb_mqtt *m)
{
    struct mosquitto *fresh;
    bool unacked, was;
    int rc, first;

    pthread_mutex_lock(&m->lock);
    unacked = m->unacked;
    pthread_mutex_unlock(&m->lock);
    if (!unacked)
        return 0;
    /* The new client first: without it the old one, and its copies, stay. */
    rc = mqtt__client(m, &fresh);
    if (rc != 0)
        return rc;
    mqtt__stop(m);
    mosquitto_destroy(m->m);
    m->m = fresh;
    pthread_mutex_lock(&m->lock);
    was = m->connected;
    m->connected = false;
    if (was)
        m->reconnects++; /* a relink, as mqtt__relink_locked counts it */
    m->begun = false;
    m->unacked = false;
    m->renew = false;
    mqtt__batch_clear_locked(m);
    pthread_mutex_unlock(&m->lock);
    fp_info("mqtt: %s connects again without the publishes the broker had not acknowledged",
            m->client_id);
    rc = mqtt__start(m, &first);
    if (rc != 0) {
        fp_error("%s; the link is started again from fb_mqtt_maintain", m->errstr);
        m->start_failed = true;
        return -EAGAIN;
    }
    return 1;
}

void fb_mqtt_relink(fb_mqtt *m)
{
    bool relink;

    pthread_mutex_lock(&m->lock);
    relink = mqtt__relink_locked(m);
    pthread_mutex_unlock(&m->lock);
    if (relink)
        mosquitto_disconnect(m->m);
}

unsigned long fb_mqtt_connects(fb_mqtt *m)
{
    unsigned long n;

    pthread_mutex_lock(&m->lock);
    n = m->connects;
    pthread_mutex_unlock(&m->lock);
    return n;
}

bool fb_mqtt_connected(fb_mqtt *m)
{
    bool c;

    pthread_mutex_lock(&m->lock);
    c = m->connected;
    pthread_mutex_unlock(&m->lock);
    return c;
}

void fb_mqtt_counters(fb_mqtt *m, unsigned long *reconnects, unsigned long *refused)
{
    pthread_mutex_lock(&m->lock);
    *reconnects = m->reconnects;
    *refused = m->refused + m->unsendable;
    pthread_mutex_unlock(&m->lock);
}
