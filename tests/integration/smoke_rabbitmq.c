/*
 * Smoke test: the run-wide RabbitMQ of the "rabbitmq" fixture accepts an
 * AMQP login, declares a durable quorum queue (what feed.events uses),
 * confirms a published message and hands it back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <cmocka.h>

#include "ft_harness.h"
#include "ft_main.h"

static void expect_ok(amqp_connection_state_t c, const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);

    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        fail_msg("%s failed (reply type %d)", what, (int)r.reply_type);
}

static amqp_connection_state_t connect_to(const ft_server *s)
{
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(c);
    amqp_rpc_reply_t r;

    assert_non_null(sock);
    assert_int_equal(amqp_socket_open(sock, "127.0.0.1", s->port), AMQP_STATUS_OK);
    r = amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
    assert_int_equal(r.reply_type, AMQP_RESPONSE_NORMAL);
    amqp_channel_open(c, 1);
    expect_ok(c, "channel.open");
    return c;
}

/* Waits for the broker's basic.ack of a confirmed publish. */
static void wait_for_ack(amqp_connection_state_t c)
{
    struct timeval tv = {10, 0};
    amqp_frame_t f;

    assert_int_equal(amqp_simple_wait_frame_noblock(c, &f, &tv), AMQP_STATUS_OK);
    assert_int_equal(f.frame_type, AMQP_FRAME_METHOD);
    assert_int_equal(f.payload.method.id, AMQP_BASIC_ACK_METHOD);
}

static void test_quorum_queue_confirm_get(void **state)
{
    ft_server s;
    amqp_connection_state_t c;
    amqp_table_entry_t arg;
    amqp_table_t args;
    amqp_basic_properties_t props;
    amqp_rpc_reply_t r;
    amqp_message_t msg;
    char qname[64];

    (void)state;
    assert_int_equal(ft_server_shared(&s, "rabbitmq"), 0);
    c = connect_to(&s);
    snprintf(qname, sizeof(qname), "smoke.quorum.%ld", (long)getpid());

    arg.key = amqp_cstring_bytes("x-queue-type");
    arg.value.kind = AMQP_FIELD_KIND_UTF8;
    arg.value.value.bytes = amqp_cstring_bytes("quorum");
    args.num_entries = 1;
    args.entries = &arg;
    amqp_queue_declare(c, 1, amqp_cstring_bytes(qname), 0, 1, 0, 0, args);
    expect_ok(c, "queue.declare (quorum)");

    amqp_confirm_select(c, 1);
    expect_ok(c, "confirm.select");
    memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    props.delivery_mode = 2;
    props.content_type = amqp_cstring_bytes("application/json");
    assert_int_equal(amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(qname), 1, 0,
                                        &props, amqp_cstring_bytes("{\"smoke\":true}")),
                     AMQP_STATUS_OK);
    wait_for_ack(c);

    r = amqp_basic_get(c, 1, amqp_cstring_bytes(qname), 1);
    assert_int_equal(r.reply_type, AMQP_RESPONSE_NORMAL);
    assert_int_equal(r.reply.id, AMQP_BASIC_GET_OK_METHOD);
    r = amqp_read_message(c, 1, &msg, 0);
    assert_int_equal(r.reply_type, AMQP_RESPONSE_NORMAL);
    assert_int_equal(msg.body.len, strlen("{\"smoke\":true}"));
    assert_memory_equal(msg.body.bytes, "{\"smoke\":true}", msg.body.len);
    amqp_destroy_message(&msg);

    amqp_queue_delete(c, 1, amqp_cstring_bytes(qname), 0, 0);
    expect_ok(c, "queue.delete");
    amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

/* clang-format off */
FT_MAIN(ft_harness_run, NULL, NULL,
        cmocka_unit_test(test_quorum_queue_confirm_get))
/* clang-format on */
