/*
 * fp_amqp against the run's RabbitMQ, in a vhost of this test's own.
 *
 * Held acks (fp_amqp_ack_confirmed): a consumed event's ack waits for the
 * confirms of what was published before it, goes out once fp_amqp_next
 * or fp_amqp_confirm has read them, and is never sent by a link that
 * broke first, so RabbitMQ delivers the event again. This is how
 * feed-bridge's stage 1 acks an event without waiting for its
 * feed.deliver publishes (bridge/fanout.c).
 *
 * Acks (fp_amqp_ack) are deferred and sent as one: a consumer with many
 * messages in its prefetch window never stalls on them, and they are out
 * before the link waits for the next message, so a bridge that dies then
 * does not get those messages again.
 *
 * A link whose confirms stop coming (RabbitMQ hangs) is given up after
 * timeout_ms, and its held messages come again; a caller busy elsewhere
 * for that long is not taken for it.
 *
 * A consumer whose queue goes away (deleted, or lost with its RabbitMQ
 * node) hears of it: fp_amqp_next fails, so the bridge reconnects and
 * declares the queue again instead of waiting for ever.
 *
 * A link that publishes for ever does not grow with what it read.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <cmocka.h>
#include <malloc.h>

#include "fp_amqp.h"
#include "fp_log.h"
#include "fp_time.h"
#include "ft_proxy.h"
#include "ft_harness.h"
#include "ft_main.h"

static fp_amqp *link_;
static char node[32];
static char vhost[64];
static int port;

/* A bridge's link for node_id in the test's vhost: stage 1's (events) or
 * stage 2's. */
static fp_amqp_config link_config(const char *node_id, bool events)
{
    return (fp_amqp_config){.host = "127.0.0.1",
                            .port = port,
                            .user = "guest",
                            .password = "guest",
                            .vhost = vhost,
                            .node_id = node_id,
                            .prefetch = 10,
                            .deliver_ttl_ms = 60000,
                            .deliver_max_length = 1000,
                            .deliver_expires_ms = 600000,
                            .timeout_ms = 5000,
                            .consume_events = events,
                            .consume_node = !events};
}

/* A link that consumes feed.events.bridge in a vhost of its own. */
static int setup(void **state)
{
    fp_amqp_config c;
    ft_server s;

    (void)state;
    snprintf(vhost, sizeof(vhost), "t%ld-confirms", (long)getpid());
    snprintf(node, sizeof(node), "c%ld", (long)getpid());
    if (ft_server_shared(&s, "rabbitmq") != 0 || ft_server_vhost(&s, vhost) != 0)
        return -1;
    port = s.port;
    c = link_config(node, true);
    if (fp_amqp_open(&link_, &c) != 0) {
        fprintf(stderr, "fp_amqp_open: %s\n", fp_amqp_errstr(link_));
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fp_amqp_free(link_);
    return 0;
}

/* Publishes one event on the link itself and takes it from the queue:
 * its delivery tag. redelivered: what the broker says of it. */
static uint64_t take_event(const char *body, bool *redelivered)
{
    fp_amqp_msg m;

    assert_int_equal(fp_amqp_publish(link_, FP_EXCHANGE_EVENTS, "post.created", body, strlen(body)),
                     0);
    assert_int_equal(fp_amqp_confirm(link_), 0);
    if (fp_amqp_next(link_, &m, 5000) != 0)
        fail_msg("no event came back: %s", fp_amqp_errstr(link_));
    assert_int_equal(m.source, FP_AMQP_SRC_EVENTS);
    assert_int_equal(m.len, strlen(body));
    assert_memory_equal(m.body, body, m.len);
    *redelivered = m.redelivered;
    return m.tag;
}

/* The event's ack, held behind a publish, then the link breaks: the
 * event comes again after the reconnect. */
static uint64_t hold_and_break(const char *body)
{
    fp_amqp_msg m;
    bool again;
    uint64_t tag = take_event(body, &again);

    assert_false(again);
    assert_int_equal(fp_amqp_publish(link_, FP_EXCHANGE_DELIVER, node, "{}", 2), 0);
    assert_int_equal(fp_amqp_ack_confirmed(link_, tag), 0);
    assert_int_equal(fp_amqp_reconnect(link_), 0);
    if (fp_amqp_next(link_, &m, 5000) != 0)
        fail_msg("the held event did not come again: %s", fp_amqp_errstr(link_));
    assert_true(m.redelivered);
    assert_int_equal(m.len, strlen(body));
    assert_memory_equal(m.body, body, m.len);
    return m.tag;
}

/* Publishes one delivery to node's queue on a and takes it back there
 * (after a reconnect or a changed setting: what must still flow). */
static void deliver_one(fp_amqp *a, const char *node_id, const char *body)
{
    fp_amqp_msg m;

    assert_int_equal(fp_amqp_publish(a, FP_EXCHANGE_DELIVER, node_id, body, strlen(body)), 0);
    assert_int_equal(fp_amqp_confirm(a), 0);
    if (fp_amqp_next(a, &m, 5000) != 0)
        fail_msg("no delivery: %s", fp_amqp_errstr(a));
    assert_int_equal(m.source, FP_AMQP_SRC_DELIVER);
    assert_int_equal(fp_amqp_ack(a, m.tag), 0);
}

/* Nothing is left in the queue: after a reconnect no event comes. */
static void assert_queue_settled(void)
{
    fp_amqp_msg m;

    assert_int_equal(fp_amqp_reconnect(link_), 0);
    assert_int_equal(fp_amqp_next(link_, &m, 1000), -ETIMEDOUT);
}

/* A held ack is not sent before the confirm is read: the broken link's
 * event is delivered again. */
static void test_held_ack_not_sent_before_confirm(void **state)
{
    uint64_t tag;

    (void)state;
    tag = hold_and_break("{\"n\":1}");
    assert_int_equal(fp_amqp_ack(link_, tag), 0);
    assert_queue_settled();
}

/* fp_amqp_next, waiting for the next message, reads the confirm and sends
 * the held ack. */
static void test_next_sends_held_ack(void **state)
{
    fp_amqp_msg m;
    uint64_t tag;

    (void)state;
    tag = hold_and_break("{\"n\":2}");
    assert_int_equal(fp_amqp_publish(link_, FP_EXCHANGE_DELIVER, node, "{}", 2), 0);
    assert_int_equal(fp_amqp_ack_confirmed(link_, tag), 0);
    assert_int_equal(fp_amqp_next(link_, &m, 1000), -ETIMEDOUT);
    assert_queue_settled();
}

/* fp_amqp_confirm sends every held ack once all publishes are confirmed;
 * with nothing awaiting a confirm the ack goes at once. */
static void test_confirm_sends_held_acks(void **state)
{
    uint64_t tag[2];
    bool again;

    (void)state;
    tag[0] = take_event("{\"n\":3}", &again);
    assert_int_equal(fp_amqp_publish(link_, FP_EXCHANGE_DELIVER, node, "{}", 2), 0);
    assert_int_equal(fp_amqp_ack_confirmed(link_, tag[0]), 0);
    assert_int_equal(fp_amqp_publish(link_, FP_EXCHANGE_DELIVER, node, "{}", 2), 0);
    assert_int_equal(fp_amqp_confirm(link_), 0);
    assert_queue_settled();

    tag[1] = take_event("{\"n\":4}", &again);
    assert_int_equal(fp_amqp_ack_confirmed(link_, tag[1]), 0); /* nothing pending */
    assert_queue_settled();
}

/* A stage-2 link of its own for node_id (its queue declared), or NULL. */
static fp_amqp *node_link(const char *node_id)
{
    fp_amqp_config c = link_config(node_id, false);
    fp_amqp *a = NULL;

    if (fp_amqp_open(&a, &c) != 0) {
        fprintf(stderr, "fp_amqp_open: %s\n", fp_amqp_errstr(a));
        fp_amqp_free(a);
        return NULL;
    }
    return a;
}

/* Publishes n deliveries for node_id on link_, confirmed. */
static void send_deliveries(const char *node_id, int n)
{
    int i;

    for (i = 0; i < n; i++)
        assert_int_equal(fp_amqp_publish(link_, FP_EXCHANGE_DELIVER, node_id, "{}", 2), 0);
    assert_int_equal(fp_amqp_confirm(link_), 0);
}

/* Three times the prefetch window (10), each message acked as it comes:
 * the deferred acks never leave the consumer without credit. */
static void test_acks_keep_the_window_open(void **state)
{
    char other[48];
    fp_amqp *a;
    fp_amqp_msg m;
    int i;

    (void)state;
    snprintf(other, sizeof(other), "%s-window", node);
    a = node_link(other);
    assert_non_null(a);
    send_deliveries(other, 30);
    for (i = 0; i < 30; i++) {
        if (fp_amqp_next(a, &m, 5000) != 0)
            fail_msg("delivery %d of 30 did not come: %s", i + 1, fp_amqp_errstr(a));
        assert_int_equal(fp_amqp_ack(a, m.tag), 0);
    }
    assert_int_equal(fp_amqp_next(a, &m, 500), -ETIMEDOUT);
    fp_amqp_free(a);
}

/* A child process takes three deliveries, acks them, waits in
 * fp_amqp_next and dies there without closing its link: the acks were
 * sent before the wait, so no delivery comes again. The child's exit
 * code: 0, or the step that went wrong. */
static int ack_then_die(const char *node_id)
{
    fp_amqp *a = node_link(node_id);
    fp_amqp_msg m;
    int i;

    if (a == NULL)
        return 2;
    for (i = 0; i < 3; i++) {
        if (fp_amqp_next(a, &m, 5000) != 0 || fp_amqp_ack(a, m.tag) != 0)
            return 3;
    }
    return fp_amqp_next(a, &m, 300) == -ETIMEDOUT ? 0 : 4; /* _exit: no close, no flush */
}

static void test_acks_sent_before_waiting(void **state)
{
    char other[48];
    fp_amqp *a;
    fp_amqp_msg m;
    pid_t pid;
    int status;

    (void)state;
    snprintf(other, sizeof(other), "%s-die", node);
    a = node_link(other); /* declares the queue */
    assert_non_null(a);
    fp_amqp_free(a);
    send_deliveries(other, 3);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(ack_then_die(other));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    a = node_link(other);
    assert_non_null(a);
    if (fp_amqp_next(a, &m, 1000) != -ETIMEDOUT)
        fail_msg("a delivery acked before the wait came again");
    fp_amqp_free(a);
}

/* A stage-2 link of its own for node_id with timeout_ms 1 s, on port (a
 * relay's, or RabbitMQ's), with one delivery taken into *m. */
static fp_amqp *taken_one(const char *node_id, int on_port, fp_amqp_msg *m)
{
    fp_amqp_config c = link_config(node_id, false);
    fp_amqp *a = NULL;

    c.port = on_port;
    c.timeout_ms = 1000;
    if (fp_amqp_open(&a, &c) != 0)
        fail_msg("fp_amqp_open on port %d: %s", on_port, fp_amqp_errstr(a));
    send_deliveries(node_id, 1);
    if (fp_amqp_next(a, m, 5000) != 0)
        fail_msg("no delivery: %s", fp_amqp_errstr(a));
    return a;
}

/* A held ack whose confirm never comes (a relay holds RabbitMQ's answers
 * to the link): fp_amqp_next fails once timeout_ms has passed without a
 * confirm, the failed link closes without waiting, and the held message
 * comes again on a new link. */
static void test_confirm_timeout_breaks_the_link(void **state)
{
    char other[48];
    fp_amqp *a;
    fp_amqp_msg m;
    ft_proxy *px;
    int64_t t0;

    (void)state;
    snprintf(other, sizeof(other), "%s-stall", node);
    assert_int_equal(ft_proxy_start(&px, port), 0);
    a = taken_one(other, ft_proxy_port(px), &m);
    assert_true(ft_proxy_hold(px) >= 2); /* both connections of the link */
    assert_int_equal(fp_amqp_publish(a, FP_EXCHANGE_DELIVER, "nowhere", "{}", 2), 0);
    assert_int_equal(fp_amqp_ack_confirmed(a, m.tag), 0);
    t0 = fp_time_mono_ms();
    assert_int_equal(fp_amqp_next(a, &m, 10000), -EIO);
    if (strstr(fp_amqp_errstr(a), "amqp confirm") == NULL)
        fail_msg("not the confirm timeout: %s", fp_amqp_errstr(a));
    assert_true(fp_time_mono_ms() - t0 < 5000);
    /* A link that failed is closed at once, not with connection.close,
     * whose answer the relay would hold for timeout_ms (1 s here:
     * taken_one's) on each of its two connections. */
    t0 = fp_time_mono_ms();
    fp_amqp_free(a);
    printf("# closing the failed link took %lld ms\n", (long long)(fp_time_mono_ms() - t0));
    assert_true(fp_time_mono_ms() - t0 < 500);
    ft_proxy_stop(px);
    a = node_link(other);
    assert_non_null(a);
    if (fp_amqp_next(a, &m, 5000) != 0)
        fail_msg("the held delivery did not come again: %s", fp_amqp_errstr(a));
    assert_true(m.redelivered);
    assert_int_equal(fp_amqp_ack(a, m.tag), 0);
    fp_amqp_free(a);
}

/*
 * Time the caller spends away from the link (the bridge waiting on its
 * MQTT link or on Redis) is not RabbitMQ withholding confirms: a confirm
 * that came meanwhile, waiting in the socket, is read and releases its
 * held ack, in fp_amqp_next as in fp_amqp_wait_confirms, however long
 * past timeout_ms the caller comes back.
 */
static void test_away_is_no_confirm_timeout(void **state)
{
    char other[48];
    fp_amqp *a;
    fp_amqp_msg m;

    (void)state;
    snprintf(other, sizeof(other), "%s-away", node);
    a = taken_one(other, port, &m);
    assert_int_equal(fp_amqp_publish(a, FP_EXCHANGE_DELIVER, "nowhere", "{}", 2), 0);
    assert_int_equal(fp_amqp_ack_confirmed(a, m.tag), 0);
    usleep(1500 * 1000); /* away for longer than timeout_ms */
    if (fp_amqp_next(a, &m, 300) != -ETIMEDOUT)
        fail_msg("fp_amqp_next after a while away: %s", fp_amqp_errstr(a));
    assert_int_equal(fp_amqp_confirmed(a), fp_amqp_published(a));

    assert_int_equal(fp_amqp_publish(a, FP_EXCHANGE_DELIVER, "nowhere", "{}", 2), 0);
    usleep(1500 * 1000);
    if (fp_amqp_wait_confirms(a, -1, 300) != 0)
        fail_msg("fp_amqp_wait_confirms after a while away: %s", fp_amqp_errstr(a));
    assert_int_equal(fp_amqp_confirmed(a), fp_amqp_published(a));
    fp_amqp_free(a);
    a = node_link(other); /* the delivery was acked: it does not come again */
    assert_non_null(a);
    assert_int_equal(fp_amqp_next(a, &m, 1000), -ETIMEDOUT);
    fp_amqp_free(a);
}

/* Deletes queue through a connection of its own, as an operator would. */
static void delete_queue(const char *queue)
{
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(c);
    amqp_rpc_reply_t r;

    assert_non_null(sock);
    assert_int_equal(amqp_socket_open(sock, "127.0.0.1", port), AMQP_STATUS_OK);
    r = amqp_login(c, vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
    assert_int_equal(r.reply_type, AMQP_RESPONSE_NORMAL);
    amqp_channel_open(c, 1);
    amqp_queue_delete(c, 1, amqp_cstring_bytes(queue), 0, 0);
    assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

/* A stage-2 link whose feed.deliver.<node> is deleted: fp_amqp_next
 * fails at once (basic.cancel), and a reconnect declares the queue again
 * and consumes it. */
static void test_lost_queue_is_a_failure(void **state)
{
    char queue[80], other[48];
    fp_amqp_config c = link_config(other, false);
    fp_amqp *a = NULL;
    fp_amqp_msg m;

    (void)state;
    snprintf(other, sizeof(other), "%s-lost", node); /* a node queue nothing was sent to */
    if (fp_amqp_open(&a, &c) != 0)
        fail_msg("fp_amqp_open: %s", fp_amqp_errstr(a));
    snprintf(queue, sizeof(queue), "%s.%s", FP_EXCHANGE_DELIVER, other);
    delete_queue(queue);
    assert_int_equal(fp_amqp_next(a, &m, 5000), -EIO);
    if (strstr(fp_amqp_errstr(a), "cancelled") == NULL)
        fail_msg("not the cancel: %s", fp_amqp_errstr(a));

    assert_int_equal(fp_amqp_reconnect(a), 0);
    deliver_one(a, other, "{\"d\":1}");
    fp_amqp_free(a);
}

/* With queue deleted, a publish to exchange on p is returned: its confirm
 * fails with why; the reconnect declares the queue again, and the same
 * message published again is confirmed. */
static void returned_then_kept(fp_amqp *p, const char *queue, const char *exchange, const char *why,
                               const char *body)
{
    delete_queue(queue);
    assert_int_equal(fp_amqp_publish(p, exchange, "post.created", body, strlen(body)), 0);
    assert_int_equal(fp_amqp_confirm(p), -EIO);
    if (strstr(fp_amqp_errstr(p), why) == NULL)
        fail_msg("not the return: %s", fp_amqp_errstr(p));
    assert_int_equal(fp_amqp_reconnect(p), 0);
    assert_int_equal(fp_amqp_publish(p, exchange, "post.created", body, strlen(body)), 0);
    assert_int_equal(fp_amqp_confirm(p), 0);
}

/*
 * An event published while feed.events has no queue bound (an operator
 * deleted feed.events.bridge) is returned by RabbitMQ: its confirm fails
 * and says so; so is a dead letter while feed.events.dead is deleted. Before, RabbitMQ confirmed an
 * event it had dropped, and feed-gateway answered 201 for a post that was lost. The reconnect
 * declares the queue again; the event published again is confirmed and
 * kept there, for a consumer connected after the deletion.
 */
static void test_unroutable_event_is_a_failure(void **state)
{
    static const char body[] = "{\"r\":1}";
    fp_amqp_config c = link_config(NULL, false);
    fp_amqp *p = NULL;
    uint32_t dead = 0;
    fp_amqp_msg m;

    (void)state;
    c.consume_node = false; /* a publisher only, as feed-gateway's */
    if (fp_amqp_open(&p, &c) != 0)
        fail_msg("fp_amqp_open: %s", fp_amqp_errstr(p));
    returned_then_kept(p, FP_QUEUE_EVENTS, FP_EXCHANGE_EVENTS, "returned an event", body);
    /* Deliveries to a node without a queue are no loss: confirmed. */
    assert_int_equal(fp_amqp_publish(p, FP_EXCHANGE_DELIVER, "no-such-node", "{}", 2), 0);
    assert_int_equal(fp_amqp_confirm(p), 0);
    /* Nor is a dead letter lost with feed.events.dead deleted: returned,
     * and kept once the next link declared the queue again. */
    returned_then_kept(p, FP_QUEUE_DEAD, FP_EXCHANGE_DLX, "returned a dead letter", body);
    assert_int_equal(fp_amqp_dead_count(p, &dead), 0);
    assert_int_equal(dead, 1);
    fp_amqp_free(p);

    /* The test's consumer of the deleted queue heard nothing (RabbitMQ
     * 3.10 cancels no consumer of a deleted quorum queue, and delivers
     * nothing to it from the new one): connected again, it gets the
     * event. */
    assert_int_equal(fp_amqp_reconnect(link_), 0);
    if (fp_amqp_next(link_, &m, 5000) != 0)
        fail_msg("the event published again did not come: %s", fp_amqp_errstr(link_));
    assert_int_equal(m.len, strlen(body));
    assert_memory_equal(m.body, body, m.len);
    assert_int_equal(fp_amqp_ack(link_, m.tag), 0);
    assert_int_equal(fp_amqp_confirm(link_), 0);
}

/*
 * A confirm read in the same call as a failure (here a dead letter
 * returned: feed.events.dead deleted) releases the ack it held back all
 * the same: that event is done, and does not come again after the
 * reconnect. Before, the held ack went with the link, and the event was
 * handled twice.
 */
static void test_confirm_before_a_return(void **state)
{
    bool again;
    uint64_t tag = take_event("{\"n\":7}", &again);

    (void)state;
    assert_false(again);
    assert_int_equal(fp_amqp_publish(link_, FP_EXCHANGE_DELIVER, node, "{}", 2), 0);
    assert_int_equal(fp_amqp_ack_confirmed(link_, tag), 0);
    delete_queue(FP_QUEUE_DEAD);
    assert_int_equal(fp_amqp_publish(link_, FP_EXCHANGE_DLX, "post.created", "{}", 2), 0);
    assert_int_equal(fp_amqp_confirm(link_), -EIO);
    assert_queue_settled();
}

/*
 * The deliver_* settings changed while the node's queues still exist
 * (they outlive a restart by deliver_expires_ms): the link comes up on
 * the queues as they are instead of failing for ever, and deliveries
 * flow (the warning it logs goes to this test's output).
 */
static void test_node_queue_other_settings(void **state)
{
    fp_amqp_config c = link_config(node, false);
    fp_amqp *a = NULL;

    (void)state;
    c.deliver_ttl_ms = 20000;
    c.deliver_max_length = 50;
    if (fp_amqp_open(&a, &c) != 0)
        fail_msg("fp_amqp_open with other deliver_* settings: %s", fp_amqp_errstr(a));
    deliver_one(a, node, "{\"d\":2}");
    assert_int_equal(fp_amqp_reconnect(a), 0); /* the same, again */
    fp_amqp_free(a);
}

/*
 * fp_amqp_check_consumers: 0 on a link that consumes its node queues;
 * -EIO once the queue it consumes is gone and another of the same name,
 * with no consumer, took its place (what a node loss can leave, checked
 * here before the link reads the cancel RabbitMQ sends in this simpler
 * case); 0 again after a reconnect.
 */
static void test_check_consumers(void **state)
{
    char queue[80], other[48];
    fp_amqp_config c = link_config(other, false), pc;
    fp_amqp *a = NULL, *p = NULL;

    (void)state;
    snprintf(other, sizeof(other), "%s-check", node);
    pc = link_config(other, false);
    pc.consume_node = false; /* declares the node queues, consumes nothing */
    if (fp_amqp_open(&a, &c) != 0)
        fail_msg("fp_amqp_open: %s", fp_amqp_errstr(a));
    assert_int_equal(fp_amqp_check_consumers(a), 0);
    snprintf(queue, sizeof(queue), "%s.%s", FP_EXCHANGE_DELIVER, other);
    delete_queue(queue);
    if (fp_amqp_open(&p, &pc) != 0)
        fail_msg("fp_amqp_open (declaring): %s", fp_amqp_errstr(p));
    assert_int_equal(fp_amqp_check_consumers(a), -EIO);
    if (strstr(fp_amqp_errstr(a), "no consumer") == NULL)
        fail_msg("not the missing consumer: %s", fp_amqp_errstr(a));
    assert_int_equal(fp_amqp_reconnect(a), 0);
    assert_int_equal(fp_amqp_check_consumers(a), 0);
    fp_amqp_free(p);
    fp_amqp_free(a);
}

#if defined(__SANITIZE_ADDRESS__)
/* libasan's (GCC ships no header for it). */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

/* Bytes the process has allocated and not freed (the sanitizer's count
 * in its build: freed memory it holds back is not in use). */
static size_t heap_in_use(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return __sanitizer_get_current_allocated_bytes();
#else
    return mallinfo2().uordblks;
#endif
}

/*
 * A publisher-only link (feed-gateway's) publishes 50,000 messages and
 * reads their confirms: its memory stays flat. rabbitmq-c keeps every
 * frame a channel read until the channel's pool is recycled; before
 * fp_amqp did that, each confirm kept about 40 bytes for ever (2 MB here,
 * gigabytes a day for a busy gateway).
 */
static void test_publisher_memory(void **state)
{
    fp_amqp_config c = link_config(NULL, false);
    fp_amqp *a = NULL;
    size_t before;
    int i;

    (void)state;
    c.consume_node = false;
    if (fp_amqp_open(&a, &c) != 0)
        fail_msg("fp_amqp_open: %s", fp_amqp_errstr(a));
    for (i = 0; i < 1000; i++) /* warm up: the pools' first pages */
        assert_int_equal(fp_amqp_publish(a, "", "nowhere", "{}", 2), 0);
    assert_int_equal(fp_amqp_confirm(a), 0);
    before = heap_in_use();
    for (i = 0; i < 50000; i++)
        assert_int_equal(fp_amqp_publish(a, "", "nowhere", "{}", 2), 0);
    assert_int_equal(fp_amqp_confirm(a), 0);
    assert_int_equal(fp_amqp_ping(a), 0);
    if (heap_in_use() > before + 256 * 1024)
        fail_msg("the link grew by %zu bytes over 50,000 confirms", heap_in_use() - before);
    fp_amqp_free(a);
}

/*
 * A heartbeat asked for above RabbitMQ's (60 s by default; 600 here) is
 * cut to RabbitMQ's, which the daemons' checks of their longest waits do
 * not know: the link says so, once, however often it connects again.
 */
static int log_fd = -1; /* test_heartbeat_cut_is_said's log, or -1 */

static void test_heartbeat_cut_is_said(void **state)
{
    fp_amqp_config c = link_config(NULL, false);
    char path[] = "/tmp/fp-amqp-log-XXXXXX", buf[4096];
    fp_amqp *p = NULL;
    const char *at;
    ssize_t n;

    (void)state;
    log_fd = mkstemp(path);
    assert_true(log_fd >= 0);
    unlink(path);
    fp_log_set_fd(log_fd);
    c.consume_node = false;
    c.heartbeat_s = 600;
    if (fp_amqp_open(&p, &c) != 0)
        fail_msg("fp_amqp_open: %s", fp_amqp_errstr(p));
    assert_int_equal(fp_amqp_reconnect(p), 0);
    fp_amqp_free(p);
    n = pread(log_fd, buf, sizeof(buf) - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    at = strstr(buf, "below amqp_heartbeat (600 s)");
    if (at == NULL)
        fail_msg("not said: %s", buf);
    assert_null(strstr(at + 1, "below amqp_heartbeat"));
}

/* The log back to stderr after test_heartbeat_cut_is_said, also when it
 * failed. */
static int log_back(void **state)
{
    (void)state;
    fp_log_set_fd(2);
    if (log_fd >= 0)
        close(log_fd);
    log_fd = -1;
    return 0;
}

/* A loopback port that takes connections (the kernel completes them into
 * its backlog) and never says a word; *fd to close. */
static int silent_port(int *fd)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);

    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(*fd >= 0);
    assert_int_equal(bind(*fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(*fd, 8), 0);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&sa, &len), 0);
    return ntohs(sa.sin_port);
}

/*
 * amqp_hosts whose first host takes the connection but never speaks AMQP
 * (a node booting or frozen, a balancer before a dead node): the open
 * gives it up after timeout_ms (1 s here) and opens on the second. Before,
 * rabbitmq-c's own login wait (12 s) applied, and the failed connection
 * was then closed politely, waiting timeout_ms more for an answer.
 */
static void test_silent_host_is_skipped(void **state)
{
    fp_amqp_config c = link_config(NULL, false);
    char hosts[64], second[32];
    fp_amqp *p = NULL;
    int64_t t0, took;
    int fd;

    (void)state;
    snprintf(second, sizeof(second), "127.0.0.1:%d", port);
    snprintf(hosts, sizeof(hosts), "127.0.0.1:%d,%s", silent_port(&fd), second);
    c.hosts = hosts;
    c.consume_node = false;
    c.timeout_ms = 1000;
    t0 = fp_time_mono_ms();
    if (fp_amqp_open(&p, &c) != 0)
        fail_msg("fp_amqp_open: %s", fp_amqp_errstr(p));
    took = fp_time_mono_ms() - t0;
    printf("# open past a silent host: %lld ms (timeout_ms 1000)\n", (long long)took);
    assert_string_equal(fp_amqp_peer(p), second);
    fp_amqp_free(p);
    close(fd);
    /* The login's wait and nothing after it; rabbitmq-c's own would be
     * 12 s. */
    assert_true(took < 5000);
}

/* clang-format off */
FT_MAIN(ft_harness_run, setup, teardown,
        cmocka_unit_test(test_held_ack_not_sent_before_confirm),
        cmocka_unit_test(test_next_sends_held_ack),
        cmocka_unit_test(test_confirm_sends_held_acks),
        cmocka_unit_test(test_acks_keep_the_window_open),
        cmocka_unit_test(test_acks_sent_before_waiting),
        cmocka_unit_test(test_confirm_timeout_breaks_the_link),
        cmocka_unit_test(test_away_is_no_confirm_timeout),
        cmocka_unit_test(test_lost_queue_is_a_failure),
        cmocka_unit_test(test_unroutable_event_is_a_failure),
        cmocka_unit_test(test_confirm_before_a_return),
        cmocka_unit_test(test_check_consumers),
        cmocka_unit_test(test_node_queue_other_settings),
        cmocka_unit_test(test_publisher_memory),
        cmocka_unit_test(test_silent_host_is_skipped),
        cmocka_unit_test_teardown(test_heartbeat_cut_is_said, log_back))
/* clang-format on */
