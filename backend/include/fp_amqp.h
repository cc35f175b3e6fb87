/*
 * fp_amqp.h - the RabbitMQ link of feed-bridge and feed-gateway (rabbitmq-c).
 *
 * Two connections: one consumes (feed.events.bridge, and/or this node's
 * feed.deliver.<node> and feed.broadcast.<node>) with a prefetch limit and
 * manual acks; the other publishes with publisher confirms. Keeping them
 * apart means waiting for a confirm never has to buffer deliveries. A link
 * is used by one thread; feed-bridge runs one link per stage.
 *
 * The topology of docs/protocol.md is declared idempotently on connect.
 * With no node id and nothing to consume the link is a publisher only
 * (feed-gateway): one connection, and only the event exchange and queues
 * are declared, so events wait in feed.events.bridge until a bridge runs.
 * Every function returns 0 or a negative errno; on -EIO the link is
 * broken, err/errstr say why, and the caller reconnects with
 * fp_amqp_reconnect() (messages not acked are redelivered by the broker).
 */
#ifndef FP_AMQP_H
#define FP_AMQP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fp_hosts.h"

#define FP_EXCHANGE_EVENTS "feed.events"
#define FP_EXCHANGE_DLX "feed.events.dlx"
#define FP_QUEUE_EVENTS "feed.events.bridge"
#define FP_QUEUE_DEAD "feed.events.dead"
#define FP_EXCHANGE_DELIVER "feed.deliver"
#define FP_EXCHANGE_BROADCAST "feed.broadcast"

/*
 * The RabbitMQ options feed-bridge and feed-gateway share, as their
 * configs hold them: the amqp_* keys of both config files
 * (FP_AMQP_CONF_OPTIONS, the fp_config table entries; the includer needs
 * fp_config.h and stddef.h), copied into a link's config by
 * fp_amqp_options_apply and checked at start-up by fp_amqp_options_check.
 */
typedef struct {
    char *host;
    int64_t port;
    char *user;
    char *password;
    char *vhost;
    char *hosts;
    bool tls;
    char *tls_ca;
    char *tls_cert;
    char *tls_key;
    bool tls_verify;
    int64_t heartbeat;
} fp_amqp_options;

/* The fp_conf_opt entries of the fp_amqp_options member of config type. */
#define FP_AMQP_CONF_OPTIONS(type, member) \
    {"amqp_host", FP_CONF_STRING, offsetof(type, member.host), "127.0.0.1", 0, 0, false, \
     "RabbitMQ host"}, \
    {"amqp_port", FP_CONF_INT, offsetof(type, member.port), "5672", 1, 65535, false, \
     "RabbitMQ port"}, \
    {"amqp_user", FP_CONF_STRING, offsetof(type, member.user), "guest", 0, 0, false, \
     "RabbitMQ user"}, \
    {"amqp_password", FP_CONF_STRING, offsetof(type, member.password), "guest", 0, 0, false, \
     "RabbitMQ password"}, \
    {"amqp_vhost", FP_CONF_STRING, offsetof(type, member.vhost), "/", 0, 0, false, \
     "RabbitMQ virtual host"}, \
    {"amqp_hosts", FP_CONF_STRING, offsetof(type, member.hosts), "", 0, 0, false, \
     "the nodes of a RabbitMQ cluster, host[:port],... tried in turn (\"\" = amqp_host:amqp_port)"}, \
    {"amqp_tls", FP_CONF_BOOL, offsetof(type, member.tls), "off", 0, 0, false, \
     "amqps: TLS to RabbitMQ (its TLS port, usually 5671, in amqp_port)"}, \
    {"amqp_tls_ca", FP_CONF_STRING, offsetof(type, member.tls_ca), "", 0, 0, false, \
     "CA certificate file (PEM) RabbitMQ's certificate must chain to (\"\" = the system's CAs)"}, \
    {"amqp_tls_cert", FP_CONF_STRING, offsetof(type, member.tls_cert), "", 0, 0, false, \
     "client certificate file (PEM) when RabbitMQ asks for one (\"\" = none)"}, \
    {"amqp_tls_key", FP_CONF_STRING, offsetof(type, member.tls_key), "", 0, 0, false, \
     "the client certificate's private key file (PEM)"}, \
    {"amqp_tls_verify", FP_CONF_BOOL, offsetof(type, member.tls_verify), "on", 0, 0, false, \
     "verify RabbitMQ's certificate and host name (off only for tests)"}, \
    {"amqp_heartbeat", FP_CONF_INT, offsetof(type, member.heartbeat), "30", 1, 600, false, \
     "AMQP heartbeat, seconds: RabbitMQ drops a link silent for twice that"}

typedef struct {
    const char *host;
    int port;
    /* Several nodes of a cluster: "host[:port],..." (NULL or "": host and
     * port alone). The link dials them in turn: the first that answers at
     * open, the next one after the current when the link is lost. */
    const char *hosts;
    const char *user;
    const char *password;
    const char *vhost;
    /* amqps: TLS with the broker, verifying its certificate chain against
     * tls_ca (a PEM file; NULL or "": the system's CAs) and its name
     * against host, unless tls_insecure. tls_cert/tls_key: an optional
     * client certificate (both or neither). */
    bool tls;
    bool tls_insecure;
    const char *tls_ca;
    const char *tls_cert;
    const char *tls_key;
    const char *node_id;    /* NULL: a publisher only (feed-gateway): no node
                             * queues; requires both consume_* false */
    int prefetch;           /* unacked messages in flight on the consumer */
    int deliver_ttl_ms;     /* per-message TTL of feed.deliver.<node> */
    int deliver_max_length; /* oldest dropped beyond this */
    int deliver_expires_ms; /* queue deleted after this long without a consumer */
    int timeout_ms;         /* socket and confirm timeout */
    int heartbeat_s;        /* AMQP heartbeat asked for (0: 30 s); the broker
                             * drops a link silent for twice that */
    bool consume_events;    /* stage 1: feed.events.bridge */
    bool consume_node;      /* stage 2: feed.deliver.<node>, feed.broadcast.<node> */
    /* Not NULL: the owner's stop flag. A publish that waits for room in a
     * blocked link (fp_amqp_blocked) gives up once it is set. */
    const atomic_int *stop;
} fp_amqp_config;

typedef enum { FP_AMQP_SRC_EVENTS = 1, FP_AMQP_SRC_DELIVER, FP_AMQP_SRC_BROADCAST } fp_amqp_source;

typedef struct {
    fp_amqp_source source;
    uint64_t tag; /* delivery tag for ack/reject */
    bool redelivered;
    char routing_key[256];
    const void *body; /* valid until the next fp_amqp_next / fp_amqp_done */
    size_t len;
} fp_amqp_msg;

typedef struct fp_amqp fp_amqp;

/* Fills c's connection fields (host to heartbeat) from o; the rest of c is
 * the caller's. o must outlive the fp_amqp_open that copies them. */
void fp_amqp_options_apply(const fp_amqp_options *o, fp_amqp_config *c);
/* o's amqp_hosts, when set, must parse (fp_hosts_parse). 0, or
 * -EINVAL with err saying why. */
int fp_amqp_options_check(const fp_amqp_options *o, char *err, size_t errlen);

/* Connects both connections, declares the topology, starts consuming.
 * Returns 0, -EIO (errstr says why), -EINVAL (a hosts list that
 * fp_hosts_parse refuses: check it at start-up) or -ENOMEM. On -EIO
 * *out is set, so the caller can read the error and retry. */
int fp_amqp_open(fp_amqp **out, const fp_amqp_config *c);
/* Reconnects, trying every host once, the one after the current first
 * (the current alone when there is one). 0 or -EIO (errstr: the last
 * host's failure). */
int fp_amqp_reconnect(fp_amqp *a);
const char *fp_amqp_errstr(const fp_amqp *a);
/*
 * Why RabbitMQ blocks the publisher connection (a resource alarm: its
 * connection.blocked reason, e.g. "low on memory"), or NULL when it does
 * not, as far as the frames read so far tell. RabbitMQ blocks a
 * connection when it publishes during an alarm and then reads nothing
 * more from it until the alarm ends (connection.unblocked); the publishes
 * wait in the socket and are confirmed then. While blocked, the confirm
 * deadline (timeout_ms) does not apply to the asynchronous waits
 * (fp_amqp_next's, fp_amqp_wait_confirms, and a publish's wait for room:
 * a publish waits for the alarm's end when 256 publishes await their
 * confirms, or 64 KiB were published since the block, so that the socket
 * RabbitMQ does not read never fills; cfg.stop ends that wait): a new
 * link would be blocked too. fp_amqp_wait_confirms and fp_amqp_keepalive
 * (which fp_amqp_next calls every 500 ms) read the link even when
 * nothing came, so that rabbitmq-c's heartbeat check finds a RabbitMQ
 * gone silent (two heartbeats). fp_amqp_confirm still gives up after
 * timeout_ms. The block and its end are logged once each.
 */
const char *fp_amqp_blocked(const fp_amqp *a);
/* "host:port" of the node the link uses (or last tried). */
const char *fp_amqp_peer(const fp_amqp *a);
void fp_amqp_free(fp_amqp *a);

/* Waits up to timeout_ms for a message, reading the confirms that release
 * held acks meanwhile (fp_amqp_ack_confirmed). Returns 0 (msg filled),
 * -ETIMEDOUT or -EIO. */
int fp_amqp_next(fp_amqp *a, fp_amqp_msg *msg, int timeout_ms);
/*
 * Keeps the publisher connection alive while it has nothing to do: reads
 * what the broker sent without waiting and sends a heartbeat when one is
 * due, at most every 500 ms (cheaper calls return at once). Without it an
 * idle publisher link is closed by the broker after two heartbeat
 * intervals and the next publish pays a reconnect. While the link is
 * blocked (fp_amqp_blocked) it also reads the confirms that come. fp_amqp_next
 * calls it; a publisher-only link's owner calls it when idle. 0, or -EIO
 * (errstr says why; reconnect).
 */
int fp_amqp_keepalive(fp_amqp *a);
/*
 * Keeps both connections of a open while their owner waits for something
 * else between tries at the message in hand (Redis down or busy, a
 * replica missing): sends a heartbeat frame on each once a second, or half the
 * negotiated heartbeat if that is shorter, has passed since the last ones
 * (cheaper calls return at once), and the acks deferred so far. It reads
 * nothing: the message in hand stays unacked on the same channel, and
 * what the broker sends meanwhile (the next messages, confirms) waits in
 * the socket for the next read. Without it RabbitMQ closes a link silent
 * for two heartbeats, and the message in hand and those whose acks were
 * deferred come again: their deliveries twice. RabbitMQ still closes the
 * channel of a delivery unacked past its consumer_timeout (30 min by
 * default). 0, or -EIO when a send failed (errstr says why; the owner
 * finds the link broken at its next use).
 */
int fp_amqp_heartbeat(fp_amqp *a);

/* Releases the last message's memory (after its ack/reject). */
void fp_amqp_done(fp_amqp *a);

/*
 * Acks tag. The ack is deferred and sent with the next ones as one
 * ("multiple"): once half the prefetch window is acked, before the link
 * waits for a message (fp_amqp_next), in fp_amqp_confirm, and when the
 * link is closed or reconnected, if it still works (if not, the broker
 * delivers those messages again). Messages must be settled in the order
 * they came, as the bridge does; a tag below one deferred is acked alone.
 * 0 or -EIO.
 */
int fp_amqp_ack(fp_amqp *a, uint64_t tag);
/*
 * Acks the consumed message tag once RabbitMQ has confirmed every publish
 * made on this link so far, without waiting for it: at once when none
 * awaits its confirm, else later, as fp_amqp_next (while it waits for the
 * next message), fp_amqp_confirm or a publish that fills the window reads
 * the confirms. A message held so when the link breaks is not acked: the
 * broker delivers it again after the reconnect. 0 or -EIO.
 */
int fp_amqp_ack_confirmed(fp_amqp *a, uint64_t tag);
/* Rejects without requeue: RabbitMQ drops it, or dead-letters it when its
 * queue has a dead-letter exchange (feed.events.bridge has). */
int fp_amqp_reject(fp_amqp *a, uint64_t tag);

/* Publishes a persistent JSON message and queues it for confirmation.
 * When 256 publishes await their confirms it first waits for room (no
 * confirm for timeout_ms: -EIO), and in a blocked link for the alarm's
 * end (fp_amqp_blocked). 0 or -EIO. */
int fp_amqp_publish(fp_amqp *a, const char *exchange, const char *routing_key, const void *body,
                    size_t len);

/* A string header of a published message (its application headers). */
typedef struct fp_amqp_header {
    const char *key;
    const char *value;
} fp_amqp_header;

#define FP_AMQP_HEADERS_MAX 4

/* fp_amqp_publish with n headers (at most FP_AMQP_HEADERS_MAX: more is
 * -EINVAL). */
int fp_amqp_publish_headers(fp_amqp *a, const char *exchange, const char *routing_key,
                            const void *body, size_t len, const fp_amqp_header *h, size_t n);
/* Waits until RabbitMQ confirmed every publish so far, then sends the acks
 * held for them (fp_amqp_ack_confirmed). Returns 0, or -EIO on a nack, a
 * timeout or a broken link. */
int fp_amqp_confirm(fp_amqp *a);

/* The publish sequence number of the last publish on the link (1 for the
 * first after each connect; 0: none yet). */
uint64_t fp_amqp_published(const fp_amqp *a);
/* Every publish on the link with a sequence number up to this one is
 * confirmed. */
uint64_t fp_amqp_confirmed(const fp_amqp *a);
/*
 * For a publisher with many publishes in flight: waits up to timeout_ms
 * until confirms come, or wake_fd (-1: none) is readable (it is not read
 * here), then reads every confirm that came and sends the acks they
 * release (fp_amqp_ack_confirmed). Returns 0 at once when nothing awaits
 * its confirm, unless RabbitMQ blocks the link: then it waits the same
 * way for what comes (the end of the block), and reads it all, also past
 * the last confirm. 0 (confirms read, or woken), -ETIMEDOUT, or -EIO on a
 * nack, a broken link, or no confirm for timeout_ms of the config while
 * publishes await theirs.
 */
int fp_amqp_wait_confirms(fp_amqp *a, int wake_fd, int timeout_ms);
/* One round trip on the publisher connection (a passive declare of
 * feed.events): 0 when RabbitMQ answers, else -EIO. Call it with no
 * publish awaiting its confirm. */
int fp_amqp_ping(fp_amqp *a);
/*
 * For a link that consumes its node's queues: a passive declare of each
 * on the publisher connection, which must find the queue and at least one
 * consumer (this link's). RabbitMQ can accept a consumer on a queue whose
 * node has just died and then delete the queue without the cancel that
 * consumer_cancel_notify promises; the consumer then waits for ever on a
 * queue nobody routes to. Call it while the link is idle. 0, or -EIO
 * (errstr says why: reconnect, which declares and consumes again).
 */
int fp_amqp_check_consumers(fp_amqp *a);

/*
 * Dead letters: feed.events.dead for an operator's tool (feedctl
 * dead-letters), on a publisher-only link (no node id, nothing consumed).
 * A letter is taken unacked. It leaves the queue with fp_amqp_dead_replay
 * (published again to feed.events, then acked), or goes to its end as a
 * fresh copy with fp_amqp_dead_keep; one neither replayed nor kept goes
 * back when the link is closed (fp_amqp_free), and that counts as a
 * delivery: a queue with a delivery-limit (RabbitMQ 4's default, or a
 * policy's) drops a letter given back that often. Calls made with
 * publishes awaiting their confirm wait for them first.
 */
#define FP_AMQP_DEAD_REASON_MAX 512

typedef struct {
    uint64_t tag;
    char routing_key[256]; /* the key it was published with: its event type, "batch" or ""
                            * (a kept copy's: x-feedpush-routing-key) */
    char reason[FP_AMQP_DEAD_REASON_MAX + 1]; /* x-feedpush-reason; "" without */
    char batch[32]; /* x-feedpush-batch, "<i> of <n>": an event of a batch; "" without */
    int64_t time;   /* when it died, seconds since the epoch (x-feedpush-time,
                     * else x-death's); 0 when not known */
    /* x-death's newest entry, when RabbitMQ dead-lettered it (a bridge
     * older than fp_amqp_dead rejected it whole): "" and 0 without. */
    char death_queue[256]; /* the queue it left, feed.events.bridge */
    char death_reason[32]; /* "rejected", "expired", ... */
    int64_t death_count;   /* times it was dead-lettered from there */
    const void *body;      /* valid until the next letter is taken or fp_amqp_free */
    size_t len;
} fp_amqp_dead;

/* Letters ready in feed.events.dead (taken ones are not counted). 0 or -EIO. */
int fp_amqp_dead_count(fp_amqp *a, uint32_t *n);
/* Takes the next letter into d (basic.get, not acked). 1, 0 when the
 * queue has none ready, or -EIO. */
int fp_amqp_dead_get(fp_amqp *a, fp_amqp_dead *d);
/* Publishes d's body to feed.events with its routing key, waits for the
 * confirm, then acks d: at least once (a replay cut between the two leaves
 * the letter in the queue, and handling an event twice is harmless, see
 * docs/protocol.md). 0 or -EIO. */
int fp_amqp_dead_replay(fp_amqp *a, const fp_amqp_dead *d);
/*
 * Puts d, the letter taken last, at the end of the queue as a fresh
 * message: a copy with its properties and headers (x-delivery-count
 * dropped, its routing key in x-feedpush-routing-key) published to the
 * queue by name, then, once RabbitMQ confirmed it, d acked. The copy has
 * no delivery to its count, so listing letters never wears them out. At
 * least once: a link lost between the confirm and the ack leaves both.
 * 0, -ENOMEM or -EIO.
 */
int fp_amqp_dead_keep(fp_amqp *a, const fp_amqp_dead *d);
/* Drops every ready letter; *n: how many. Taken ones stay. 0 or -EIO. */
int fp_amqp_dead_purge(fp_amqp *a, uint32_t *n);

#endif
