/*
 * amqp.c - the RabbitMQ link of feed-bridge and feed-gateway; see fp_amqp.h.
 */
#include "amqp_priv.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <openssl/ssl.h>

#include "fp_log.h"
#include "fp_time.h"

static int amqp__flush_acks(fp_amqp *a);

const char *fp_amqp_errstr(const fp_amqp *a)
{
    return a != NULL ? a->errstr : "out of memory";
}

void fp_amqp_options_apply(const fp_amqp_options *o, fp_amqp_config *c)
{
    c->host = o->host;
    c->port = (int)o->port;
    c->hosts = o->hosts;
    c->user = o->user;
    c->password = o->password;
    c->vhost = o->vhost;
    c->tls = o->tls;
    c->tls_insecure = !o->tls_verify;
    c->tls_ca = o->tls_ca;
    c->tls_cert = o->tls_cert;
    c->tls_key = o->tls_key;
    c->heartbeat_s = (int)o->heartbeat;
}

int fp_amqp_options_check(const fp_amqp_options *o, char *err, size_t errlen)
{
    fp_host hosts[FP_HOSTS_MAX];
    char why[192];

    if ((o->hosts == NULL || o->hosts[0] == '\0') && o->host != NULL &&
        strlen(o->host) > FP_HOST_MAX) {
        snprintf(err, errlen, "amqp_host: longer than %d bytes", FP_HOST_MAX);
        return -EINVAL;
    }
    if (o->hosts == NULL || o->hosts[0] == '\0' ||
        fp_hosts_parse(o->hosts, (int)o->port, hosts, why, sizeof(why)) > 0)
        return 0;
    snprintf(err, errlen, "amqp_hosts: %s", why);
    return -EINVAL;
}

const char *fp_amqp_peer(const fp_amqp *a)
{
    return a != NULL ? a->peer : "";
}

const char *fp_amqp_blocked(const fp_amqp *a)
{
    return a != NULL && a->blocked ? a->blocked_why : NULL;
}

void amqp__set_error(fp_amqp *a, int err, const char *fmt, const char *what, const char *detail)
{
    a->err = err;
    snprintf(a->errstr, sizeof(a->errstr), fmt, what, detail);
}

/* The error of a publisher link whose oldest unconfirmed publish has
 * waited timeout_ms (fp_amqp_confirm: also while RabbitMQ blocks the
 * link, which errstr then says). Returns -EIO. */
static int amqp__confirm_timeout(fp_amqp *a)
{
    if (a->blocked)
        amqp__set_error(a, AMQP_STATUS_TIMEOUT, "%s: RabbitMQ blocks publishing (%s)",
                        "amqp confirm", a->blocked_why);
    else
        amqp__set_error(a, AMQP_STATUS_TIMEOUT, "%s: %s", "amqp confirm",
                        amqp_error_string2(AMQP_STATUS_TIMEOUT));
    return -EIO;
}

/*
 * The monotonic ms at which the oldest unconfirmed publish has waited too
 * long (timeout_ms without a confirm): the link is taken as stuck then.
 * Never while RabbitMQ blocks the link: its confirms come once the alarm
 * ends, and a new link would be blocked as well.
 */
static int64_t amqp__stuck_at(const fp_amqp *a)
{
    return a->blocked ? INT64_MAX : a->confirm_ms + a->cfg.timeout_ms;
}

/*
 * A connection.blocked or connection.unblocked notice read on the
 * publisher connection: records it, and logs a change once. The confirm
 * deadline starts over at the end of a block. True when f was one.
 */
static bool amqp__notice(fp_amqp *a, const amqp_frame_t *f)
{
    const amqp_connection_blocked_t *b;
    size_t i, n;

    if (f->frame_type != AMQP_FRAME_METHOD)
        return false;
    if (f->payload.method.id == AMQP_CONNECTION_UNBLOCKED_METHOD) {
        if (a->blocked)
            fp_info("rabbitmq %s: publishing unblocked", a->peer);
        a->blocked = false;
        a->confirm_ms = fp_time_mono_ms();
        return true;
    }
    if (f->payload.method.id != AMQP_CONNECTION_BLOCKED_METHOD)
        return false;
    b = f->payload.method.decoded;
    n = b->reason.len < sizeof(a->blocked_why) - 1 ? b->reason.len : sizeof(a->blocked_why) - 1;
    for (i = 0; i < n; i++) { /* the broker's text, for a log line */
        char c = ((const char *)b->reason.bytes)[i];

        a->blocked_why[i] = c >= 0x20 && c < 0x7f ? c : '?';
    }
    a->blocked_why[n] = '\0';
    if (n == 0)
        snprintf(a->blocked_why, sizeof(a->blocked_why), "%s", "a resource alarm");
    if (!a->blocked) {
        fp_warn("rabbitmq %s: RabbitMQ blocks publishing: %s (a resource alarm; the events "
                "published wait until it ends)",
                a->peer, a->blocked_why);
        a->blocked_bytes = 0;
    }
    a->blocked = true;
    return true;
}

/*
 * Turns a failed RPC reply into err/errstr: a library error (socket,
 * timeout) or the broker's channel/connection close with its reply text.
 * Returns -EIO.
 */
int amqp__reply_error(fp_amqp *a, amqp_rpc_reply_t r, const char *what)
{
    char detail[288];
    amqp_channel_close_t *ch;
    amqp_connection_close_t *co;

    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
        amqp__set_error(a, r.library_error, "%s: %s", what, amqp_error_string2(r.library_error));
        return -EIO;
    }
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        ch = r.reply.decoded;
        snprintf(detail, sizeof(detail), "channel closed by broker (%u): %.*s", ch->reply_code,
                 (int)ch->reply_text.len, (const char *)ch->reply_text.bytes);
        amqp__set_error(a, ch->reply_code, "%s: %s", what, detail);
        return -EIO;
    }
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        co = r.reply.decoded;
        snprintf(detail, sizeof(detail), "connection closed by broker (%u): %.*s", co->reply_code,
                 (int)co->reply_text.len, (const char *)co->reply_text.bytes);
        amqp__set_error(a, co->reply_code, "%s: %s", what, detail);
        return -EIO;
    }
    amqp__set_error(a, -1, "%s: %s", what, "unexpected reply");
    return -EIO;
}

int amqp__check(fp_amqp *a, amqp_connection_state_t c, const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);

    return r.reply_type == AMQP_RESPONSE_NORMAL ? 0 : amqp__reply_error(a, r, what);
}

static struct timeval amqp__tv(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    return tv;
}

/* An empty string is as good as none. */
static bool amqp__set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/*
 * Makes c's socket a TLS one (amqps): the CA file, or the system's CAs;
 * the optional client certificate; peer and host name verification on
 * unless tls_insecure. Returns 0, -ENOMEM, or -EIO when a file is
 * unusable (errstr names it).
 */
static int amqp__tls_socket(fp_amqp *a, amqp_connection_state_t c, amqp_socket_t **out,
                            const char *what)
{
    amqp_socket_t *sock;
    bool verify = !a->cfg.tls_insecure;
    int rc;

    sock = amqp_ssl_socket_new(c);
    if (sock == NULL)
        return -ENOMEM;
    if (amqp__set(a->cfg.tls_ca)) {
        rc = amqp_ssl_socket_set_cacert(sock, a->cfg.tls_ca);
        if (rc != AMQP_STATUS_OK) {
            amqp__set_error(a, rc, "%s: tls_ca %s is not a usable PEM file", what, a->cfg.tls_ca);
            return -EIO;
        }
    } else if (SSL_CTX_set_default_verify_paths(amqp_ssl_socket_get_context(sock)) != 1) {
        amqp__set_error(a, -1, "%s: %s", what, "cannot load the system's CA certificates");
        return -EIO;
    }
    if (amqp__set(a->cfg.tls_cert)) {
        rc = amqp_ssl_socket_set_key(sock, a->cfg.tls_cert, a->cfg.tls_key);
        if (rc != AMQP_STATUS_OK) {
            amqp__set_error(a, rc, "%s: tls_cert/tls_key %s: unusable", what, a->cfg.tls_cert);
            return -EIO;
        }
    }
    amqp_ssl_socket_set_verify_peer(sock, verify);
    amqp_ssl_socket_set_verify_hostname(sock, verify);
    *out = sock;
    return 0;
}

/*
 * Opens one connection, logs in and opens channel 1. The publisher
 * connection asks for connection.blocked notices (fp_amqp_blocked); the
 * consumer one, which never publishes and so is never blocked, does not.
 */
static int amqp__connect_one(fp_amqp *a, amqp_connection_state_t *out, bool publisher,
                             const char *what)
{
    /* Without consumer_cancel_notify (rabbitmq-c does not offer it), a
     * consumer whose queue is lost with its RabbitMQ node is dropped in
     * silence and the link waits for ever; with it the broker sends
     * basic.cancel, which fp_amqp_next reports as a failure to
     * reconnect on. */
    amqp_table_entry_t caps[2] = {
        {amqp_cstring_bytes("consumer_cancel_notify"),
         {.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1}},
        {amqp_cstring_bytes("connection.blocked"),
         {.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1}},
    };
    amqp_table_entry_t prop = {
        amqp_cstring_bytes("capabilities"),
        {.kind = AMQP_FIELD_KIND_TABLE, .value.table = {publisher ? 2 : 1, caps}}};
    amqp_table_t props = {1, &prop};
    struct timeval tv = amqp__tv(a->cfg.timeout_ms);
    amqp_connection_state_t c;
    amqp_socket_t *sock;
    amqp_rpc_reply_t r;
    int rc, beat;

    c = amqp_new_connection();
    if (c == NULL)
        return -ENOMEM;
    *out = c;
    if (a->cfg.tls) {
        rc = amqp__tls_socket(a, c, &sock, what);
        if (rc != 0)
            return rc;
    } else {
        sock = amqp_tcp_socket_new(c);
        if (sock == NULL)
            return -ENOMEM;
    }
    rc = amqp_socket_open_noblock(sock, a->hosts[a->cur].host, a->hosts[a->cur].port, &tv);
    if (rc != AMQP_STATUS_OK) {
        amqp__set_error(a, rc, "%s: connect: %s", what, amqp_error_string2(rc));
        return -EIO;
    }
    amqp_set_rpc_timeout(c, &tv);
    /* The login's own wait (rabbitmq-c's default is 12 s): a host that
     * takes the connection but never speaks AMQP (a node booting or
     * frozen, a balancer before a dead one) costs timeout_ms, as any
     * other wait does. */
    rc = amqp_set_handshake_timeout(c, &tv);
    if (rc != AMQP_STATUS_OK) {
        amqp__set_error(a, rc, "%s: %s", what, amqp_error_string2(rc));
        return -EIO;
    }
    beat = a->cfg.heartbeat_s > 0 ? a->cfg.heartbeat_s : AMQP__HEARTBEAT_S;
    r = amqp_login_with_properties(c, a->cfg.vhost, 0, 131072, beat, &props, AMQP_SASL_METHOD_PLAIN,
                                   a->cfg.user, a->cfg.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return amqp__reply_error(a, r, what);
    /* The heartbeat is the lower of both sides': the daemons' checks of
     * their longest waits against amqp_heartbeat hold only with it. */
    if (amqp_get_heartbeat(c) > 0 && amqp_get_heartbeat(c) < beat && !a->warned_beat) {
        fp_warn("rabbitmq: the heartbeat is %d s, RabbitMQ's, below amqp_heartbeat (%d s): "
                "RabbitMQ may close a link in a wait longer than twice that; raise its "
                "heartbeat setting to at least amqp_heartbeat",
                amqp_get_heartbeat(c), beat);
        a->warned_beat = true;
    }
    amqp_channel_open(c, AMQP__CHANNEL);
    return amqp__check(a, c, what);
}

/* Closes *c: with connection.close and RabbitMQ's answer (up to
 * timeout_ms) when polite, else at once (a link that failed: a broker
 * that stopped answering would hold the caller for timeout_ms more). */
static void amqp__close_one(amqp_connection_state_t *c, bool polite)
{
    if (*c == NULL)
        return;
    if (polite)
        amqp_connection_close(*c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(*c);
    *c = NULL;
}

/* ------------------------------------------------------------ topology */

/* Table entry helpers for queue arguments. */
static amqp_table_entry_t amqp__arg_str(const char *k, const char *v)
{
    amqp_table_entry_t e;

    e.key = amqp_cstring_bytes(k);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(v);
    return e;
}

static amqp_table_entry_t amqp__arg_int(const char *k, int v)
{
    amqp_table_entry_t e;

    e.key = amqp_cstring_bytes(k);
    e.value.kind = AMQP_FIELD_KIND_I32;
    e.value.value.i32 = v;
    return e;
}

static int amqp__exchange(fp_amqp *a, const char *name, const char *type)
{
    amqp_exchange_declare(a->out, AMQP__CHANNEL, amqp_cstring_bytes(name), amqp_cstring_bytes(type),
                          0, 1, 0, 0, amqp_empty_table);
    return amqp__check(a, a->out, name);
}

/* Binds queue name to exchange with binding (idempotent). 0 or -EIO. */
static int amqp__bind(fp_amqp *a, const char *name, const char *exchange, const char *binding)
{
    amqp_queue_bind(a->out, AMQP__CHANNEL, amqp_cstring_bytes(name), amqp_cstring_bytes(exchange),
                    amqp_cstring_bytes(binding), amqp_empty_table);
    return amqp__check(a, a->out, name);
}

static int amqp__queue(fp_amqp *a, const char *name, bool durable, amqp_table_entry_t *args,
                       int n_args, const char *exchange, const char *binding)
{
    amqp_table_t t = {n_args, args};

    amqp_queue_declare(a->out, AMQP__CHANNEL, amqp_cstring_bytes(name), 0, durable, 0, 0, t);
    if (amqp__check(a, a->out, name) != 0)
        return -EIO;
    return amqp__bind(a, name, exchange, binding);
}

/*
 * After the broker closed the publisher's channel (a failed declare):
 * confirms the close and opens the channel again. 0 or -EIO.
 */
static int amqp__reopen_channel(fp_amqp *a)
{
    amqp_channel_close_ok_t ok = {0};

    if (amqp_send_method(a->out, AMQP__CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) !=
        AMQP_STATUS_OK)
        return -EIO;
    amqp_channel_open(a->out, AMQP__CHANNEL);
    return amqp__check(a, a->out, "channel.open");
}

/*
 * After a declare refused with PRECONDITION_FAILED (the queue exists with
 * other arguments): the channel opened again and the queue declared
 * passively, to be used as it is, and bound to exchange with binding (a
 * queue made by hand may lack its binding). 0, or -EIO (another failure,
 * or the queue is not there after all).
 */
static int amqp__queue_as_is(fp_amqp *a, const char *name, const char *exchange,
                             const char *binding)
{
    if (a->err != AMQP_PRECONDITION_FAILED || amqp__reopen_channel(a) != 0)
        return -EIO;
    amqp_queue_declare(a->out, AMQP__CHANNEL, amqp_cstring_bytes(name), 1, 0, 0, 0,
                       amqp_empty_table);
    if (amqp__check(a, a->out, name) != 0)
        return -EIO;
    return amqp__bind(a, name, exchange, binding);
}

/*
 * A durable queue of the shared topology (the events queue, the
 * dead-letter queue), declared as a quorum queue with args. One that
 * exists with other arguments (a classic queue made by an older
 * version: PRECONDITION_FAILED) is used as it is, with one warning per
 * link that it does not survive the loss of its node (docs/scaling.md
 * says how to migrate it). 0 or -EIO.
 */
static int amqp__durable_queue(fp_amqp *a, const char *name, amqp_table_entry_t *args, int n_args,
                               const char *exchange, const char *binding)
{
    if (amqp__queue(a, name, true, args, n_args, exchange, binding) == 0)
        return 0;
    if (amqp__queue_as_is(a, name, exchange, binding) != 0)
        return -EIO;
    if (!a->warned_classic)
        fp_warn("rabbitmq: queue %s exists but is not a quorum queue; it is used as it is, and "
                "it is lost with its node (docs/scaling.md: migrating to quorum queues)",
                name);
    a->warned_classic = true;
    return 0;
}

/*
 * A queue of this node (feed.deliver.<node>, feed.broadcast.<node>),
 * declared with the deliver_* settings as args. One that exists with
 * other values (the settings changed, and the queue outlived the
 * restart: it goes only deliver_expires_ms after its last use) is used
 * as it is, with one warning per link that names the difference and
 * how to apply the new values; refusing it would keep this node's
 * bridge off RabbitMQ until then. 0 or -EIO.
 */
static int amqp__node_queue(fp_amqp *a, const char *name, amqp_table_entry_t *args, int n_args,
                            const char *exchange, const char *binding)
{
    char why[sizeof(a->errstr)];

    if (amqp__queue(a, name, false, args, n_args, exchange, binding) == 0)
        return 0;
    memcpy(why, a->errstr, sizeof(why));
    if (amqp__queue_as_is(a, name, exchange, binding) != 0)
        return -EIO;
    if (!a->warned_node)
        fp_warn("rabbitmq: %s; the queue is used as it is: the deliver_* settings take effect "
                "once it is gone (delete it: rabbitmqctl delete_queue %s)",
                why, name);
    a->warned_node = true;
    return 0;
}

/*
 * Declares everything of docs/protocol.md. Declarations are idempotent;
 * a queue that exists with other arguments is used as it is, with a
 * warning (amqp__durable_queue, amqp__node_queue).
 */
static int amqp__declare(fp_amqp *a)
{
    amqp_table_entry_t events[2] = {amqp__arg_str("x-queue-type", "quorum"),
                                    amqp__arg_str("x-dead-letter-exchange", FP_EXCHANGE_DLX)};
    amqp_table_entry_t dead[1] = {amqp__arg_str("x-queue-type", "quorum")};
    amqp_table_entry_t node[4] = {amqp__arg_int("x-message-ttl", a->cfg.deliver_ttl_ms),
                                  amqp__arg_int("x-max-length", a->cfg.deliver_max_length),
                                  amqp__arg_str("x-overflow", "drop-head"),
                                  amqp__arg_int("x-expires", a->cfg.deliver_expires_ms)};

    if (amqp__exchange(a, FP_EXCHANGE_EVENTS, "topic") != 0 ||
        amqp__exchange(a, FP_EXCHANGE_DLX, "fanout") != 0 ||
        amqp__exchange(a, FP_EXCHANGE_DELIVER, "direct") != 0 ||
        amqp__exchange(a, FP_EXCHANGE_BROADCAST, "fanout") != 0)
        return -EIO;
    if (amqp__durable_queue(a, FP_QUEUE_DEAD, dead, 1, FP_EXCHANGE_DLX, "") != 0 ||
        amqp__durable_queue(a, FP_QUEUE_EVENTS, events, 2, FP_EXCHANGE_EVENTS, "#") != 0)
        return -EIO;
    if (a->cfg.node_id == NULL)
        return 0; /* a publisher only (feed-gateway): no node queues */
    if (amqp__node_queue(a, a->q_deliver, node, 4, FP_EXCHANGE_DELIVER, a->cfg.node_id) != 0 ||
        amqp__node_queue(a, a->q_broadcast, node, 4, FP_EXCHANGE_BROADCAST, "") != 0)
        return -EIO;
    return 0;
}

/* ------------------------------------------------------------ connect */

static int amqp__consume(fp_amqp *a, const char *queue, const char *tag)
{
    amqp_basic_consume(a->in, AMQP__CHANNEL, amqp_cstring_bytes(queue), amqp_cstring_bytes(tag), 0,
                       0, 0, amqp_empty_table);
    return amqp__check(a, a->in, queue);
}

static int amqp__connect(fp_amqp *a)
{
    int rc;

    a->next_tag = 1;
    a->n_pending = 0;
    a->n_held = 0; /* the old link's messages come again */
    snprintf(a->peer, sizeof(a->peer), "%s:%d", a->hosts[a->cur].host, a->hosts[a->cur].port);
    a->blocked = false; /* a new connection: not blocked until it says so */
    a->blocked_bytes = 0;
    rc = amqp__connect_one(a, &a->out, true, "amqp publisher");
    if (rc != 0)
        return rc;
    if (amqp__declare(a) != 0)
        return -EIO;
    amqp_confirm_select(a->out, AMQP__CHANNEL);
    if (amqp__check(a, a->out, "confirm.select") != 0)
        return -EIO;
    if (!a->cfg.consume_events && !a->cfg.consume_node)
        goto connected; /* a publisher only: no consumer connection */
    rc = amqp__connect_one(a, &a->in, false, "amqp consumer");
    if (rc != 0)
        return rc;
    amqp_basic_qos(a->in, AMQP__CHANNEL, 0, (uint16_t)a->cfg.prefetch, 0);
    if (amqp__check(a, a->in, "basic.qos") != 0)
        return -EIO;
    if (a->cfg.consume_events && amqp__consume(a, FP_QUEUE_EVENTS, "events") != 0)
        return -EIO;
    if (a->cfg.consume_node && (amqp__consume(a, a->q_deliver, "deliver") != 0 ||
                                amqp__consume(a, a->q_broadcast, "broadcast") != 0))
        return -EIO;
connected:
    a->err = 0;
    a->errstr[0] = '\0';
    return 0;
}

static void amqp__disconnect(fp_amqp *a)
{
    /* The acks deferred for messages handled already go out if the link
     * still works; if not, those messages come again. */
    if (a->in != NULL)
        (void)amqp__flush_acks(a);
    a->n_acks = 0;
    fp_amqp_done(a);
    amqp__dead_done(a);
    /* a->err: the link failed (or never opened) since it last connected. */
    amqp__close_one(&a->in, a->err == 0);
    amqp__close_one(&a->out, a->err == 0);
}

/* strdup of an optional string: NULL stays NULL. */
static char *amqp__dup(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

/* Copies the config strings so the caller's may go away. */
static int amqp__copy_config(fp_amqp *a, const fp_amqp_config *c)
{
    int rc;

    a->cfg = *c;
    a->cfg.host = strdup(c->host);
    a->cfg.user = strdup(c->user);
    a->cfg.password = strdup(c->password);
    a->cfg.vhost = strdup(c->vhost);
    a->cfg.node_id = amqp__dup(c->node_id);
    a->cfg.tls_ca = amqp__dup(c->tls_ca);
    a->cfg.tls_cert = amqp__dup(c->tls_cert);
    a->cfg.tls_key = amqp__dup(c->tls_key);
    if (a->cfg.host == NULL || a->cfg.user == NULL || a->cfg.password == NULL ||
        a->cfg.vhost == NULL || (c->node_id != NULL && a->cfg.node_id == NULL) ||
        (c->tls_ca != NULL && a->cfg.tls_ca == NULL) ||
        (c->tls_cert != NULL && a->cfg.tls_cert == NULL) ||
        (c->tls_key != NULL && a->cfg.tls_key == NULL))
        return -ENOMEM;
    if (c->hosts != NULL && c->hosts[0] != '\0') {
        rc = fp_hosts_parse(c->hosts, c->port, a->hosts, a->errstr, sizeof(a->errstr));
        if (rc < 0)
            return rc;
        a->n_hosts = (size_t)rc;
    } else {
        if (strlen(c->host) > FP_HOST_MAX) {
            snprintf(a->errstr, sizeof(a->errstr), "amqp host \"%.80s...\" is too long", c->host);
            return -EINVAL;
        }
        snprintf(a->hosts[0].host, sizeof(a->hosts[0].host), "%s", c->host);
        a->hosts[0].port = c->port;
        a->n_hosts = 1;
    }
    a->cfg.hosts = NULL; /* parsed: the caller's string is not kept */
    if (c->node_id == NULL)
        return 0;
    snprintf(a->q_deliver, sizeof(a->q_deliver), "%s.%s", FP_EXCHANGE_DELIVER, c->node_id);
    snprintf(a->q_broadcast, sizeof(a->q_broadcast), "%s.%s", FP_EXCHANGE_BROADCAST, c->node_id);
    return 0;
}

int fp_amqp_open(fp_amqp **out, const fp_amqp_config *c)
{
    fp_amqp *a;
    int rc;

    *out = NULL;
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    rc = amqp__copy_config(a, c);
    if (rc != 0) {
        fp_amqp_free(a); /* -EINVAL: a bad hosts list (fp_hosts_parse says why) */
        return rc;
    }
    *out = a;
    return fp_amqp_reconnect(a);
}

int fp_amqp_reconnect(fp_amqp *a)
{
    size_t tried;
    int rc = -EIO;

    for (tried = 0; tried < a->n_hosts; tried++) {
        if (a->opened || tried > 0)
            a->cur = (a->cur + 1) % a->n_hosts;
        amqp__disconnect(a);
        rc = amqp__connect(a);
        if (rc == 0) {
            a->opened = true;
            return 0;
        }
        amqp__disconnect(a);
        if (rc == -ENOMEM)
            return rc;
    }
    return rc;
}

void fp_amqp_free(fp_amqp *a)
{
    if (a == NULL)
        return;
    amqp__disconnect(a);
    free((char *)a->cfg.host);
    free((char *)a->cfg.user);
    free((char *)a->cfg.password);
    free((char *)a->cfg.vhost);
    free((char *)a->cfg.node_id);
    free((char *)a->cfg.tls_ca);
    free((char *)a->cfg.tls_cert);
    free((char *)a->cfg.tls_key);
    free(a->held);
    free(a);
}

/* ------------------------------------------------------------ consume */

static fp_amqp_source amqp__source(const amqp_bytes_t *tag)
{
    if (tag->len == 7 && memcmp(tag->bytes, "deliver", 7) == 0)
        return FP_AMQP_SRC_DELIVER;
    if (tag->len == 9 && memcmp(tag->bytes, "broadcast", 9) == 0)
        return FP_AMQP_SRC_BROADCAST;
    return FP_AMQP_SRC_EVENTS;
}

/*
 * After AMQP_STATUS_UNEXPECTED_STATE, reads the frame that interrupted the
 * consumer: a close from the broker is an error; anything else (e.g. a
 * basic.cancel because a queue was deleted) also means re-establishing.
 */
static int amqp__unexpected(fp_amqp *a)
{
    struct timeval tv = amqp__tv(a->cfg.timeout_ms);
    amqp_frame_t f;
    int rc;

    rc = amqp_simple_wait_frame_noblock(a->in, &f, &tv);
    if (rc != AMQP_STATUS_OK) {
        amqp__set_error(a, rc, "%s: %s", "amqp consumer", amqp_error_string2(rc));
        return -EIO;
    }
    if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_CANCEL_METHOD) {
        amqp__set_error(a, -1, "%s: %s", "amqp consumer",
                        "the broker cancelled it (its queue was deleted or lost with its node)");
        return -EIO;
    }
    if (f.frame_type == AMQP_FRAME_METHOD) {
        amqp__set_error(a, -1, "%s: broker sent %s", "amqp consumer",
                        amqp_method_name(f.payload.method.id));
        return -EIO;
    }
    return -ETIMEDOUT; /* a stray frame (e.g. heartbeat): nothing to do */
}

/*
 * Frees what the publisher connection's channel has read so far (confirms,
 * RPC replies, a dead letter's frames): rabbitmq-c keeps every frame a
 * channel read until its pool is recycled, about 40 bytes per confirm, so
 * a link that only publishes grew for ever. Called before each read or
 * RPC on the publisher connection, when nothing read before is in use;
 * rabbitmq-c skips it while frames of the channel are queued.
 */
void amqp__recycle(fp_amqp *a)
{
    if (a->out != NULL)
        amqp_maybe_release_buffers_on_channel(a->out, AMQP__CHANNEL);
}

static int amqp__read_confirm(fp_amqp *a, struct timeval *tv);
static int amqp__release(fp_amqp *a);

/*
 * Past the confirm deadline: is the link stuck, or was the caller away
 * (busy with its other links) while confirms came? True when nothing
 * waits to be read on the publisher socket either.
 */
static bool amqp__stuck(fp_amqp *a)
{
    struct pollfd p = {.fd = amqp_get_sockfd(a->out), .events = POLLIN};

    return poll(&p, 1, 0) == 0;
}

/*
 * amqp__await's wait on both connections, the deferred acks sent first,
 * for the sooner of to_stuck (the confirm deadline) and to_until (the
 * caller's) ms. Returns 1 when the consumer connection is readable, 0
 * when the publisher one is, -EAGAIN to look again (a signal, or the
 * confirm deadline came), -ETIMEDOUT (the caller's time is up) or -EIO.
 */
static int amqp__await_poll(fp_amqp *a, int64_t to_stuck, int64_t to_until)
{
    int64_t wait = to_until < to_stuck ? to_until : to_stuck;
    struct pollfd fds[2];
    int rc;

    if (amqp__flush_acks(a) != 0)
        return -EIO; /* about to wait: the deferred acks go first */
    fds[0] = (struct pollfd){.fd = amqp_get_sockfd(a->in), .events = POLLIN};
    fds[1] = (struct pollfd){.fd = amqp_get_sockfd(a->out), .events = POLLIN};
    rc = poll(fds, 2, wait > 0 ? (int)wait : 0);
    if (rc < 0 && errno == EINTR)
        return -EAGAIN;
    if (rc < 0) {
        amqp__set_error(a, -1, "%s: %s", "amqp consumer", strerror(errno));
        return -EIO;
    }
    if (rc == 0)
        return to_until <= to_stuck ? -ETIMEDOUT : -EAGAIN;
    return fds[0].revents != 0 ? 1 : 0;
}

/*
 * While consumed messages are held for confirms (fp_amqp_ack_confirmed),
 * waits on both connections: confirms are read as they come and release
 * their acks. Returns 0 once the consumer connection has something to
 * read or nothing is held any more (*timeout_ms: what is left of the
 * wait), -ETIMEDOUT, or -EIO (also when no confirm came for timeout_ms of
 * the config: the link is taken as broken, like fp_amqp_confirm would;
 * time the caller spent elsewhere does not count when confirms came
 * meanwhile). Without held messages it returns at once.
 */
static int amqp__await(fp_amqp *a, int *timeout_ms)
{
    struct timeval zero = {0, 0};
    int64_t until = fp_time_mono_ms() + *timeout_ms, now, stuck;
    int rc;

    while (a->n_held > 0) {
        if (amqp_frames_enqueued(a->in) || amqp_data_in_buffer(a->in))
            break;
        if (!amqp_frames_enqueued(a->out) && !amqp_data_in_buffer(a->out)) {
            now = fp_time_mono_ms();
            stuck = amqp__stuck_at(a);
            if (now >= stuck && amqp__stuck(a))
                return amqp__confirm_timeout(a);
            rc = now < stuck ? amqp__await_poll(a, stuck - now, until - now) : 0;
            if (rc == 1)
                break;
            if (rc == -EAGAIN)
                continue;
            if (rc < 0)
                return rc;
        }
        rc = amqp__read_confirm(a, &zero);
        if (rc == -EIO || (rc == 0 && amqp__release(a) != 0))
            return -EIO;
    }
    *timeout_ms = (int)(until > fp_time_mono_ms() ? until - fp_time_mono_ms() : 0);
    return 0;
}

int fp_amqp_next(fp_amqp *a, fp_amqp_msg *msg, int timeout_ms)
{
    struct timeval tv;
    amqp_rpc_reply_t r;
    size_t n;
    int rc;

    if (a->in == NULL) {
        amqp__set_error(a, -1, "%s: %s", "amqp consumer", "not connected");
        return -EIO;
    }
    fp_amqp_done(a);
    if (fp_amqp_keepalive(a) != 0)
        return -EIO;
    if (!amqp_frames_enqueued(a->in) && !amqp_data_in_buffer(a->in) && amqp__flush_acks(a) != 0)
        return -EIO; /* about to wait: the deferred acks go first */
    rc = amqp__await(a, &timeout_ms);
    if (rc != 0)
        return rc;
    tv = amqp__tv(timeout_ms);
    amqp_maybe_release_buffers(a->in);
    r = amqp_consume_message(a->in, &a->env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
        return -ETIMEDOUT;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        r.library_error == AMQP_STATUS_UNEXPECTED_STATE)
        return amqp__unexpected(a);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return amqp__reply_error(a, r, "amqp consumer");
    a->have_env = true;
    msg->source = amqp__source(&a->env.consumer_tag);
    msg->tag = a->env.delivery_tag;
    msg->redelivered = a->env.redelivered != 0;
    n = a->env.routing_key.len < sizeof(msg->routing_key) - 1 ? a->env.routing_key.len
                                                              : sizeof(msg->routing_key) - 1;
    memcpy(msg->routing_key, a->env.routing_key.bytes, n);
    msg->routing_key[n] = '\0';
    msg->body = a->env.message.body.bytes;
    msg->len = a->env.message.body.len;
    return 0;
}

void fp_amqp_done(fp_amqp *a)
{
    if (!a->have_env)
        return;
    amqp_destroy_envelope(&a->env);
    a->have_env = false;
}

/* Sends one ack for tag: with multiple, for every message up to it.
 * 0 or -EIO. */
static int amqp__send_ack(fp_amqp *a, uint64_t tag, bool multiple)
{
    int rc = amqp_basic_ack(a->in, AMQP__CHANNEL, tag, multiple ? 1 : 0);

    if (rc != AMQP_STATUS_OK) {
        amqp__set_error(a, rc, "%s: %s", "amqp ack", amqp_error_string2(rc));
        return -EIO;
    }
    return 0;
}

/* Sends the acks fp_amqp_ack deferred, as one. 0 or -EIO. */
static int amqp__flush_acks(fp_amqp *a)
{
    int n = a->n_acks;

    if (n == 0)
        return 0;
    a->n_acks = 0;
    return amqp__send_ack(a, a->ack_upto, n > 1);
}

/*
 * Acks are deferred and sent as one ack with "multiple" set: when half the
 * prefetch window is acked, before the link waits for a message, and
 * before it closes. That saves RabbitMQ a settle command per message on
 * a quorum queue. It is right because every message of the channel is
 * settled in order: a message below tag is acked already, deferred, or
 * rejected (a reject is sent at once; a multiple ack skips it). A tag
 * out of that order (below the deferred ones) is acked alone at once:
 * the later multiple ack skips it too.
 */
int fp_amqp_ack(fp_amqp *a, uint64_t tag)
{
    if (a->in == NULL) {
        amqp__set_error(a, -1, "%s: %s", "amqp ack", "not connected");
        return -EIO;
    }
    if (a->n_acks > 0 && tag <= a->ack_upto)
        return amqp__send_ack(a, tag, false);
    a->ack_upto = tag;
    a->n_acks++;
    if (a->n_acks * 2 >= a->cfg.prefetch)
        return amqp__flush_acks(a);
    return 0;
}

int fp_amqp_reject(fp_amqp *a, uint64_t tag)
{
    int rc = amqp_basic_reject(a->in, AMQP__CHANNEL, tag, 0);

    if (rc != AMQP_STATUS_OK) {
        amqp__set_error(a, rc, "%s: %s", "amqp reject", amqp_error_string2(rc));
        return -EIO;
    }
    return 0;
}

/* ------------------------------------------------------------ publish */

int fp_amqp_publish(fp_amqp *a, const char *exchange, const char *routing_key, const void *body,
                    size_t len)
{
    return fp_amqp_publish_headers(a, exchange, routing_key, body, len, NULL, 0);
}

int fp_amqp_publish_headers(fp_amqp *a, const char *exchange, const char *routing_key,
                            const void *body, size_t len, const fp_amqp_header *h, size_t n)
{
    amqp_table_entry_t headers[FP_AMQP_HEADERS_MAX];
    amqp_basic_properties_t props;
    amqp_bytes_t b = {len, (void *)body};
    size_t i;

    if (n > FP_AMQP_HEADERS_MAX)
        return -EINVAL;
    memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = 2; /* persistent */
    if (n > 0) {
        for (i = 0; i < n; i++)
            headers[i] = amqp__arg_str(h[i].key, h[i].value);
        props._flags |= AMQP_BASIC_HEADERS_FLAG;
        props.headers.num_entries = (int)n;
        props.headers.entries = headers;
    }
    return amqp__publish_props(a, exchange, routing_key, &props, b);
}

/* Whether a publish of len bytes must wait: AMQP__MAX_PENDING publishes
 * await their confirms, or the link is blocked and AMQP__BLOCKED_BYTES
 * went into it since (one publish at least goes, however large). */
static bool amqp__full(const fp_amqp *a, size_t len)
{
    return a->n_pending == AMQP__MAX_PENDING ||
           (a->blocked && a->blocked_bytes > 0 && a->blocked_bytes + len > AMQP__BLOCKED_BYTES);
}

/*
 * Waits until a publish of len bytes may go (amqp__full): as
 * fp_amqp_wait_confirms, so no confirm for timeout_ms breaks the link, but
 * not while RabbitMQ blocks it; that wait lasts until the alarm ends (or
 * cfg.stop is set), with the link's heartbeats and deferred acks sent
 * meanwhile (fp_amqp_heartbeat), so that neither connection is closed for
 * silence. 0 or -EIO.
 */
static int amqp__make_room(fp_amqp *a, size_t len)
{
    int rc;

    while (amqp__full(a, len)) {
        if (a->cfg.stop != NULL && atomic_load(a->cfg.stop)) {
            amqp__set_error(a, -1, "%s: %s", "amqp publish",
                            "stopping while RabbitMQ blocks publishing");
            return -EIO;
        }
        rc = fp_amqp_wait_confirms(a, -1, AMQP__BEAT_MS);
        if (rc == -EIO || fp_amqp_heartbeat(a) != 0)
            return -EIO;
    }
    return 0;
}

/*
 * Publishes to exchange, tracked for its confirm. An event (to
 * feed.events), a dead letter (to feed.events.dlx) and a letter put back
 * (to feed.events.dead through the default exchange, "") go mandatory:
 * with no queue bound there (an operator deleted feed.events.bridge or
 * feed.events.dead) RabbitMQ returns the message before its confirm, which
 * then fails (amqp__read_confirm), instead of confirming a message it
 * dropped. A delivery (feed.deliver, feed.broadcast) does not: a node gone
 * with its queue is no loss.
 */
int amqp__publish_props(fp_amqp *a, const char *exchange, const char *routing_key,
                        const amqp_basic_properties_t *props, amqp_bytes_t body)
{
    int mandatory = strcmp(exchange, FP_EXCHANGE_EVENTS) == 0 ||
                    strcmp(exchange, FP_EXCHANGE_DLX) == 0 ||
                    (exchange[0] == '\0' && strcmp(routing_key, FP_QUEUE_DEAD) == 0);
    int rc;

    if (a->out == NULL) {
        amqp__set_error(a, -1, "%s: %s", "amqp publish", "not connected");
        return -EIO;
    }
    if (amqp__full(a, body.len) && amqp__make_room(a, body.len) != 0)
        return -EIO;
    rc = amqp_basic_publish(a->out, AMQP__CHANNEL, amqp_cstring_bytes(exchange),
                            amqp_cstring_bytes(routing_key), mandatory, 0, props, body);
    if (rc != AMQP_STATUS_OK) {
        amqp__set_error(a, rc, "%s: %s", "amqp publish", amqp_error_string2(rc));
        return -EIO;
    }
    if (a->n_pending == 0)
        a->confirm_ms = fp_time_mono_ms();
    if (a->blocked)
        a->blocked_bytes += body.len;
    a->pending[a->n_pending] = a->next_tag++;
    a->acked[a->n_pending] = false;
    a->n_pending++;
    return 0;
}

/* Marks tag (or every tag up to it) confirmed and drops the confirmed
 * publishes from the head of pending. */
static void amqp__mark(fp_amqp *a, uint64_t tag, bool multiple)
{
    size_t i, head = 0;

    for (i = 0; i < a->n_pending; i++) {
        if (a->pending[i] == tag || (multiple && a->pending[i] <= tag))
            a->acked[i] = true;
    }
    while (head < a->n_pending && a->acked[head])
        head++;
    if (head > 0)
        a->confirm_ms = fp_time_mono_ms();
    a->n_pending -= head;
    memmove(a->pending, a->pending + head, a->n_pending * sizeof(a->pending[0]));
    memmove(a->acked, a->acked + head, a->n_pending * sizeof(a->acked[0]));
}

/* Acks the held messages whose publishes are all confirmed. 0 or -EIO. */
static int amqp__release(fp_amqp *a)
{
    uint64_t upto = fp_amqp_confirmed(a);
    size_t done = 0;

    while (done < a->n_held && a->held[done].seq <= upto) {
        if (fp_amqp_ack(a, a->held[done].tag) != 0)
            return -EIO;
        done++;
    }
    if (done == 0)
        return 0; /* held may be NULL: nothing was ever held */
    a->n_held -= done;
    memmove(a->held, a->held + done, a->n_held * sizeof(*a->held));
    return 0;
}

/* On a failure of the publisher link (err/errstr say which): the held
 * messages whose publishes were confirmed before it are acked
 * (amqp__release), and the failure's error is kept, whatever the acks
 * do. Returns -EIO. */
static int amqp__release_failed(fp_amqp *a)
{
    char errstr[sizeof(a->errstr)];
    int err = a->err;

    memcpy(errstr, a->errstr, sizeof(errstr));
    (void)amqp__release(a);
    a->err = err;
    memcpy(a->errstr, errstr, sizeof(errstr));
    return -EIO;
}

/* The error of a message RabbitMQ returned (mandatory, and no queue
 * bound where it went: amqp__publish_props). */
static void amqp__returned(fp_amqp *a, const amqp_basic_return_t *r)
{
    size_t n = r->exchange.len;

    if (n == 0) /* the default exchange: a letter put back */
        amqp__set_error(a, -1, "%s: %s", "amqp confirm",
                        "RabbitMQ returned a letter: no queue " FP_QUEUE_DEAD
                        " (deleted?); the next link declares it again");
    else if (n == strlen(FP_EXCHANGE_DLX) && memcmp(r->exchange.bytes, FP_EXCHANGE_DLX, n) == 0)
        amqp__set_error(a, -1, "%s: %s", "amqp confirm",
                        "RabbitMQ returned a dead letter: no queue is bound to " FP_EXCHANGE_DLX
                        " (" FP_QUEUE_DEAD " deleted?); the next link declares it again");
    else
        amqp__set_error(a, -1, "%s: %s", "amqp confirm",
                        "RabbitMQ returned an event: no queue is bound to " FP_EXCHANGE_EVENTS
                        " (" FP_QUEUE_EVENTS " deleted?); the next link declares it again");
}

/*
 * Reads one frame of the publisher connection, waiting up to tv, and
 * marks the confirm it carries. Returns 0, -ETIMEDOUT (no whole frame
 * came) or -EIO (a nack, a returned event, a close or a broken link:
 * errstr says which; the link must be connected again, which declares
 * the topology again, and what was not confirmed published again).
 */
static int amqp__read_confirm(fp_amqp *a, struct timeval *tv)
{
    amqp_basic_ack_t *ack;
    amqp_frame_t f;
    int rc;

    amqp__recycle(a);
    rc = amqp_simple_wait_frame_noblock(a->out, &f, tv);

    if (rc == AMQP_STATUS_TIMEOUT)
        return -ETIMEDOUT;
    if (rc != AMQP_STATUS_OK) {
        amqp__set_error(a, rc, "%s: %s", "amqp confirm", amqp_error_string2(rc));
        return -EIO;
    }
    if (f.frame_type != AMQP_FRAME_METHOD || amqp__notice(a, &f))
        return 0; /* a heartbeat, a block or its end */
    if (f.payload.method.id == AMQP_BASIC_RETURN_METHOD) {
        amqp__returned(a, f.payload.method.decoded);
        return -EIO;
    }
    if (f.payload.method.id != AMQP_BASIC_ACK_METHOD) {
        amqp__set_error(a, -1, "%s: broker answered %s", "amqp confirm",
                        amqp_method_name(f.payload.method.id));
        return -EIO;
    }
    ack = f.payload.method.decoded;
    amqp__mark(a, ack->delivery_tag, ack->multiple != 0);
    return 0;
}

int fp_amqp_confirm(fp_amqp *a)
{
    struct timeval tv = amqp__tv(a->cfg.timeout_ms);
    int rc;

    while (a->n_pending > 0) {
        rc = amqp__read_confirm(a, &tv);
        /* The messages whose publishes were confirmed before a failure
         * (a return, a nack, a timeout) are done: their acks go with the
         * link's end rather than them coming again. */
        if (rc == -ETIMEDOUT) {
            amqp__confirm_timeout(a);
            return amqp__release_failed(a);
        }
        if (rc != 0)
            return amqp__release_failed(a);
    }
    if (amqp__release(a) != 0)
        return -EIO;
    return amqp__flush_acks(a);
}

uint64_t fp_amqp_published(const fp_amqp *a)
{
    return a->next_tag - 1;
}

uint64_t fp_amqp_confirmed(const fp_amqp *a)
{
    return a->n_pending > 0 ? a->pending[0] - 1 : a->next_tag - 1;
}

/* Polls the publisher socket and wake_fd up to ms. 1 when the socket is
 * readable, 0 when woken or on EINTR, -ETIMEDOUT, or -EIO. */
static int amqp__poll_out(fp_amqp *a, int wake_fd, int ms)
{
    struct pollfd fds[2];
    int rc;

    fds[0] = (struct pollfd){.fd = amqp_get_sockfd(a->out), .events = POLLIN};
    fds[1] = (struct pollfd){.fd = wake_fd, .events = POLLIN}; /* -1: ignored */
    rc = poll(fds, 2, ms);
    if (rc < 0 && errno == EINTR)
        return 0;
    if (rc < 0) {
        amqp__set_error(a, -1, "%s: %s", "amqp confirm", strerror(errno));
        return -EIO;
    }
    if (rc == 0)
        return -ETIMEDOUT;
    return fds[0].revents != 0 ? 1 : 0;
}

/*
 * A wait that saw nothing come: the publisher connection is read all the
 * same, with no wait. rabbitmq-c checks RabbitMQ's heartbeats (and sends
 * its own) only in its reads; while blocked no confirm deadline applies,
 * so without this a RabbitMQ gone silent (its host down, a network cut:
 * no FIN) would never be found; with it, that takes two heartbeats.
 * Returns -ETIMEDOUT, or -EIO.
 */
static int amqp__read_idle(fp_amqp *a)
{
    struct timeval zero = {0, 0};
    int rc = amqp__read_confirm(a, &zero);

    if (rc == -EIO)
        return amqp__release_failed(a);
    if (rc == 0 && amqp__release(a) != 0)
        return -EIO;
    return -ETIMEDOUT;
}

/*
 * fp_amqp_wait_confirms' wait, with nothing read yet: up to timeout_ms
 * (less when the confirm deadline comes first) for the publisher socket
 * or wake_fd. Blocked with no publish awaiting its confirm, the end of
 * the block is waited for the same way, so that a caller waiting for
 * room (amqp__make_room) sleeps instead of spinning. 1 when there is
 * something to read, else what fp_amqp_wait_confirms returns.
 */
static int amqp__wait_out(fp_amqp *a, int wake_fd, int timeout_ms)
{
    int64_t now, stuck;
    int rc;

    if (a->n_pending == 0) {
        rc = amqp__poll_out(a, wake_fd, timeout_ms);
        return rc == -ETIMEDOUT ? amqp__read_idle(a) : rc;
    }
    now = fp_time_mono_ms();
    stuck = amqp__stuck_at(a);
    if (now >= stuck)
        return amqp__stuck(a) ? amqp__confirm_timeout(a) : 1; /* confirms came meanwhile */
    rc = amqp__poll_out(a, wake_fd, stuck - now < timeout_ms ? (int)(stuck - now) : timeout_ms);
    if (rc == -ETIMEDOUT && fp_time_mono_ms() >= stuck)
        return amqp__confirm_timeout(a);
    if (rc == -ETIMEDOUT && a->blocked)
        return amqp__read_idle(a);
    return rc;
}

int fp_amqp_wait_confirms(fp_amqp *a, int wake_fd, int timeout_ms)
{
    struct timeval zero = {0, 0};
    int rc;

    if (a->out == NULL) {
        amqp__set_error(a, -1, "%s: %s", "amqp confirm", "not connected");
        return -EIO;
    }
    /* Blocked, what came is read however many publishes await: the end
     * of the block may be there (behind the last confirm, or with none
     * awaited), and a caller that fails its events while blocked, as the
     * gateway does, reads nothing else between them. */
    if (a->n_pending == 0 && !a->blocked)
        return 0;
    if (!amqp_frames_enqueued(a->out) && !amqp_data_in_buffer(a->out)) {
        rc = amqp__wait_out(a, wake_fd, timeout_ms);
        if (rc <= 0)
            return rc;
    }
    /* Everything that came: whole frames until none is left to read. */
    while (a->n_pending > 0 || a->blocked) {
        rc = amqp__read_confirm(a, &zero);
        if (rc == -ETIMEDOUT)
            break;
        if (rc != 0)
            return amqp__release_failed(a); /* as in fp_amqp_confirm */
    }
    return amqp__release(a);
}

int fp_amqp_ack_confirmed(fp_amqp *a, uint64_t tag)
{
    amqp__held *grown;
    size_t cap;

    if (a->n_pending == 0)
        return fp_amqp_ack(a, tag);
    if (a->n_held == a->cap_held) {
        cap = a->cap_held > 0 ? a->cap_held * 2 : 64;
        grown = realloc(a->held, cap * sizeof(*grown));
        if (grown == NULL) /* out of memory: wait for the confirms instead */
            return fp_amqp_confirm(a) == 0 ? fp_amqp_ack(a, tag) : -EIO;
        a->held = grown;
        a->cap_held = cap;
    }
    a->held[a->n_held].tag = tag;
    a->held[a->n_held].seq = a->next_tag - 1;
    a->n_held++;
    return 0;
}

int fp_amqp_keepalive(fp_amqp *a)
{
    struct timeval zero = {0, 0};
    int64_t now = fp_time_mono_ms();
    amqp_frame_t f;
    int rc;

    if (a->out == NULL || now - a->keepalive_ms < AMQP__KEEPALIVE_MS)
        return 0;
    a->keepalive_ms = now;
    if (a->n_pending > 0) {
        /* Publishes await confirms that nobody may wait for now (the
         * gateway's failed in a block, whose end and confirms come
         * later): what came is read, and the link all the same, so that
         * rabbitmq-c sends its heartbeat and checks RabbitMQ's. */
        rc = fp_amqp_wait_confirms(a, -1, 0);
        if (rc == -ETIMEDOUT)
            rc = amqp__read_idle(a);
        return rc == -ETIMEDOUT ? 0 : rc;
    }
    amqp__recycle(a);
    for (;;) {
        rc = amqp_simple_wait_frame_noblock(a->out, &f, &zero);
        if (rc == AMQP_STATUS_TIMEOUT)
            return 0;
        if (rc != AMQP_STATUS_OK) {
            amqp__set_error(a, rc, "%s: %s", "amqp publisher (idle)", amqp_error_string2(rc));
            return -EIO;
        }
        if (amqp__notice(a, &f))
            continue;
        /* Nothing is awaited on an idle link: a close is the broker's. */
        if (f.frame_type == AMQP_FRAME_METHOD &&
            (f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD ||
             f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD)) {
            amqp__set_error(a, -1, "%s: broker sent %s", "amqp publisher (idle)",
                            amqp_method_name(f.payload.method.id));
            return -EIO;
        }
    }
}

/* Sends one heartbeat frame on c, if c is open. 0, or -EIO. */
static int amqp__beat(fp_amqp *a, amqp_connection_state_t c, const char *what)
{
    amqp_frame_t f;
    int rc;

    if (c == NULL)
        return 0;
    memset(&f, 0, sizeof(f));
    f.frame_type = AMQP_FRAME_HEARTBEAT;
    f.channel = 0;
    rc = amqp_send_frame(c, &f);
    if (rc != AMQP_STATUS_OK) {
        amqp__set_error(a, rc, "%s: heartbeat: %s", what, amqp_error_string2(rc));
        return -EIO;
    }
    return 0;
}

int fp_amqp_heartbeat(fp_amqp *a)
{
    amqp_connection_state_t c = a->in != NULL ? a->in : a->out;
    int64_t now = fp_time_mono_ms(), every;

    if (c == NULL || amqp_get_heartbeat(c) <= 0)
        return 0;
    every = (int64_t)amqp_get_heartbeat(c) * 1000 / 2;
    if (every > AMQP__BEAT_MS)
        every = AMQP__BEAT_MS;
    if (now - a->beat_ms < every)
        return 0;
    a->beat_ms = now;
    /* Not on a blocked publisher connection: RabbitMQ reads nothing of it
     * (and expects nothing: its heartbeat check is paused), so the
     * frames would only fill the socket. */
    if (amqp__beat(a, a->in, "amqp consumer") != 0 ||
        amqp__beat(a, a->blocked ? NULL : a->out, "amqp publisher") != 0)
        return -EIO;
    /* The acks deferred before the message in hand go too (as before a
     * wait in fp_amqp_next): should the link still be lost, those
     * messages do not come again. */
    return a->in != NULL ? amqp__flush_acks(a) : 0;
}

int fp_amqp_ping(fp_amqp *a)
{
    if (a->out == NULL) {
        amqp__set_error(a, -1, "%s: %s", "amqp ping", "not connected");
        return -EIO;
    }
    amqp__recycle(a);
    amqp_exchange_declare(a->out, AMQP__CHANNEL, amqp_cstring_bytes(FP_EXCHANGE_EVENTS),
                          amqp_cstring_bytes("topic"), 1, 1, 0, 0, amqp_empty_table);
    return amqp__check(a, a->out, "amqp ping");
}

int fp_amqp_check_consumers(fp_amqp *a)
{
    const char *queues[2] = {a->q_deliver, a->q_broadcast};
    amqp_queue_declare_ok_t *ok;
    size_t i;

    if (!a->cfg.consume_node)
        return 0;
    if (a->out == NULL) {
        amqp__set_error(a, -1, "%s: %s", "amqp consumer check", "not connected");
        return -EIO;
    }
    amqp__recycle(a);
    for (i = 0; i < 2; i++) {
        ok = amqp_queue_declare(a->out, AMQP__CHANNEL, amqp_cstring_bytes(queues[i]), 1, 0, 0, 0,
                                amqp_empty_table);
        if (amqp__check(a, a->out, queues[i]) != 0)
            return -EIO;
        if (ok == NULL || ok->consumer_count == 0) {
            amqp__set_error(a, -1, "%s: %s", queues[i],
                            "RabbitMQ lists no consumer of it (lost with a node, without a "
                            "cancel)");
            return -EIO;
        }
    }
    return 0;
}
