/*
 * mqtt_link.h - feed-bridge's publisher to its local mosquitto (libmosquitto).
 *
 * The bridge authenticates like any client, with a JWT of role service it
 * mints itself from the signing key (sub = "bridge-<node>"; each link has
 * a client id of its own, "feed-bridge-<node>[suffix]"), and renews the
 * token by reconnecting before it expires (the broker plugin would
 * disconnect it at exp). After the broker ended its session or refused a
 * CONNECT it connects again with a fresh token. It speaks MQTT 5. Publishes are QoS 1;
 * fb_mqtt_flush() waits until the broker has acknowledged every one of
 * them. Every publish but a retained one carries a Message Expiry Interval
 * (expiry_ms rounded up to seconds), so the broker drops it from an offline
 * persistent session once it is older than that.
 */
#ifndef FB_MQTT_H
#define FB_MQTT_H

#include <stdbool.h>
#include <stddef.h>

#include "fp_jwt.h"

typedef struct {
    const char *host;
    int port;
    bool tls;           /* TLS to the broker, certificate and host name verified */
    const char *tls_ca; /* CA file (PEM); NULL or "": the system's CAs */
    const char *node_id;
    const char *client_suffix; /* client id "feed-bridge-<node_id><suffix>"; NULL: none */
    fp_jwt_alg alg;
    const char *signing_key_file; /* HS256 secret, or RS256/ES256 private key */
    int token_ttl_s;
    int timeout_ms; /* for connect and for PUBACKs */
    /* The longest a flush waits while PUBACKs keep coming (each period of
     * timeout_ms + 1 s with one); 0: a single period. */
    int flush_max_ms;
    int expiry_ms;  /* of non-retained publishes, rounded up to whole seconds; 0: none */
} fb_mqtt_config;

typedef struct fb_mqtt fb_mqtt;

/* Loads the key, starts the network thread and connects. Returns 0;
 * -EIO when the link is not up within timeout_ms (it keeps trying: a
 * broker not up yet, a host name that does not resolve yet); -EAGAIN
 * when the network thread did not start (fb_mqtt_maintain() starts it);
 * or -EINVAL / -ENOMEM, final. fb_mqtt_errstr() says why; *out is set when memory
 * allows. The link reconnects by itself after a drop, a DISCONNECT from
 * the broker or a refused CONNECT. */
int fb_mqtt_open(fb_mqtt **out, const fb_mqtt_config *c);
const char *fb_mqtt_errstr(const fb_mqtt *m);
void fb_mqtt_free(fb_mqtt *m);

/* The Message Expiry Interval of expiry_ms: rounded up to whole seconds,
 * 1 at least; 0 (none) when expiry_ms is 0 or less. */
unsigned fb_mqtt_expiry_s(int expiry_ms);

/* Most publishes between two flushes: PUBACKs are matched by the 16-bit
 * message id, so a batch must stay well below 65,536. */
#define FB_MQTT_BATCH_MAX 10000

/* Queues a QoS 1 publish. Returns 0 or -EIO: the link is down and this
 * is the first publish since fb_mqtt_begin(); the link stayed down for
 * timeout_ms + 1 s after earlier publishes since fb_mqtt_begin() (those
 * not yet acknowledged wait in libmosquitto's queue for the next
 * connection, so this one waits for it too); or out of memory. A publish made as the link drops is
 * queued by libmosquitto and counts as made: fb_mqtt_flush() waits for its PUBACK on the next
 * connection. A publish the broker cannot take (unsendable,
 * fb_mqtt_counters) is dropped: 0 too. */
int fb_mqtt_publish(fb_mqtt *m, const char *topic, const void *payload, size_t len, bool retain);

/* What became of the publishes of one batch, those made since the
 * previous fb_mqtt_flush(): a late PUBACK of an earlier publish (one
 * libmosquitto sent again after a reconnect, say) is not counted here. */
typedef struct {
    unsigned long refused;    /* PUBACKs with a reason code of 128 or more */
    int refused_rc;           /* the first of them; 0: none */
    unsigned long unsendable; /* dropped unsent (fb_mqtt_counters) */
} fb_mqtt_batch;

/* Starts a batch, and a delivery (one or more batches, fb_mqtt_publish):
 * the publishes of one that was not flushed (its caller gave up on a
 * failed publish, to retry it whole later) no longer count, nor do their
 * PUBACKs, whenever they come. */
void fb_mqtt_begin(fb_mqtt *m);
/* Waits until every publish so far is acknowledged. Returns 0, or -EIO
 * (no PUBACK for timeout_ms + 1 s, none acknowledged after flush_max_ms,
 * or lost connection: the caller retries the whole batch; after
 * a timeout on a live link, the link connects again, fb_mqtt_relink). A
 * publish the broker refused (PUBACK reason code 128 or above) counts as
 * acknowledged: it is not retried. *batch (when not NULL) tells what
 * became of the batch's publishes, also when -EIO; the next batch starts
 * after this call either way. */
int fb_mqtt_flush(fb_mqtt *m, fb_mqtt_batch *batch);
/* Reconnects with a fresh token when the current one is near its end,
 * and starts the network thread again when it could not be started
 * (fb_mqtt_open, fb_mqtt_discard: -EAGAIN). Call regularly, from the
 * thread that publishes on the link. */
void fb_mqtt_maintain(fb_mqtt *m);
/* Drops the connection, if up, and connects again at once (with a fresh
 * token): for a link whose broker stopped acknowledging. The link counts
 * as down from this call on. Publishes not yet acknowledged may reach
 * the broker twice. */
void fb_mqtt_relink(fb_mqtt *m);
/* Drops the publishes of a delivery given up (those made since the last
 * fb_mqtt_flush() that returned 0): libmosquitto keeps each publish until its
 * PUBACK and sends it again on its next connection, however late, and
 * offers no way to take one back. So the link gets a new client (same id
 * and options, a fresh token), which starts connecting at once; the old
 * connection ends. For a caller that serves the recipients another way
 * (stage 1's direct link: the queue), where a late copy could overtake
 * what follows it there (a post's create after its delete). Copies
 * already written to the socket (a stalled broker reads them when it
 * resumes) still reach the broker. Call it from the thread that
 * publishes; it waits for the network thread to end (up to the 2 s
 * reconnect delay the thread may be sleeping out, 3 s at most).
 * Returns 1 (a new client), 0 (nothing to drop: nothing done),
 * -ENOMEM/-EINVAL (no new client: the old one is kept, with its copies),
 * or -EAGAIN (the new client's network thread did not start: the link
 * stays down until fb_mqtt_maintain() starts it); errstr says why. */
int fb_mqtt_discard(fb_mqtt *m);
bool fb_mqtt_connected(fb_mqtt *m);
/* Connections the broker accepted since start (the first one included). */
unsigned long fb_mqtt_connects(fb_mqtt *m);
/* Connection losses since start (the reconnects counter), and publishes
 * the broker refused (PUBACK reason code >= 128, e.g. 135 not authorised;
 * each distinct reason is logged once) or could not take: unsendable
 * ones, dropped unsent (over the Maximum Packet Size of its CONNACK, or
 * MQTT's limits; each distinct error logged once). */
void fb_mqtt_counters(fb_mqtt *m, unsigned long *reconnects, unsigned long *refused);
/* Whether a publish of len bytes to a topic of topic_len bytes fits the
 * broker's Maximum Packet Size (true while none is known). */
bool fb_mqtt_fits(fb_mqtt *m, size_t topic_len, size_t len, bool retain);

#endif
