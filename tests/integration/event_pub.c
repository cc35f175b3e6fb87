#include "event_pub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <amqp_tcp_socket.h>

#include "fp_time.h"

int ft_event_pub_open(ft_event_pub *p, int port, const char *vhost)
{
    amqp_socket_t *sock;
    amqp_rpc_reply_t r;

    memset(p, 0, sizeof(*p));
    p->c = amqp_new_connection();
    sock = amqp_tcp_socket_new(p->c);
    if (sock == NULL || amqp_socket_open(sock, "127.0.0.1", port) != AMQP_STATUS_OK)
        return -1;
    r = amqp_login(p->c, vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return -1;
    amqp_channel_open(p->c, 1);
    if (amqp_get_rpc_reply(p->c).reply_type != AMQP_RESPONSE_NORMAL)
        return -1;
    amqp_confirm_select(p->c, 1);
    return amqp_get_rpc_reply(p->c).reply_type == AMQP_RESPONSE_NORMAL ? 0 : -1;
}

int ft_event_pub_post(ft_event_pub *p, const char *rk, const char *body)
{
    return ft_event_pub_post_to(p, "feed.events", rk, body);
}

int ft_event_pub_post_to(ft_event_pub *p, const char *exchange, const char *rk, const char *body)
{
    return ft_event_pub_post_bytes(p, exchange, rk, body, strlen(body));
}

int ft_event_pub_post_bytes(ft_event_pub *p, const char *exchange, const char *rk, const void *body,
                            size_t len)
{
    amqp_basic_properties_t props;
    amqp_bytes_t bytes = {.len = len, .bytes = (void *)body};

    memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    props.delivery_mode = 2;
    props.content_type = amqp_cstring_bytes("application/json");
    if (amqp_basic_publish(p->c, 1, amqp_cstring_bytes(exchange), amqp_cstring_bytes(rk), 0, 0,
                           &props, bytes) != AMQP_STATUS_OK)
        return -1;
    p->published++;
    return 0;
}

/*
 * Reads confirms until upto is confirmed. RabbitMQ confirms the messages
 * of one channel routed to one queue in order, so the highest tag acked so
 * far stands for all below it.
 */
int ft_event_pub_wait_until(ft_event_pub *p, uint64_t upto, int64_t deadline_ns)
{
    int64_t left;
    struct timeval tv;
    amqp_frame_t f;
    uint64_t tag;
    int rc;

    while (p->confirmed < upto) {
        amqp_maybe_release_buffers_on_channel(p->c, 1); /* the confirms read */
        left = deadline_ns - fp_time_mono_ns();
        if (left < 0)
            left = 0; /* past it: what has come is still read */
        tv.tv_sec = (time_t)(left / 1000000000);
        tv.tv_usec = (suseconds_t)(left % 1000000000 / 1000);
        rc = amqp_simple_wait_frame_noblock(p->c, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            return 1;
        if (rc != AMQP_STATUS_OK)
            return -1;
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        if (f.payload.method.id != AMQP_BASIC_ACK_METHOD) {
            fprintf(stderr, "event_pub: RabbitMQ refused a publish (method 0x%08x)\n",
                    (unsigned)f.payload.method.id);
            return -1;
        }
        tag = ((amqp_basic_ack_t *)f.payload.method.decoded)->delivery_tag;
        if (tag > p->confirmed)
            p->confirmed = tag;
    }
    return 0;
}

int ft_event_pub_wait(ft_event_pub *p, uint64_t upto, int timeout_ms)
{
    return ft_event_pub_wait_until(p, upto, fp_time_mono_ns() + (int64_t)timeout_ms * 1000000) == 0
               ? 0
               : -1;
}

int ft_event_pub_send(ft_event_pub *p, const char *rk, const char *body)
{
    if (ft_event_pub_post(p, rk, body) != 0)
        return -1;
    return ft_event_pub_wait(p, p->published, 10000);
}

int ft_event_pub_queue_depth(ft_event_pub *p, const char *queue)
{
    amqp_queue_declare_ok_t *ok;

    ok = amqp_queue_declare(p->c, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    return ok != NULL ? (int)ok->message_count : -1;
}

/* A string header's value into out (outsz bytes). */
static void event_pub__header(const amqp_table_entry_t *e, char *out, size_t outsz)
{
    if (e->value.kind != AMQP_FIELD_KIND_UTF8 && e->value.kind != AMQP_FIELD_KIND_BYTES)
        return;
    snprintf(out, outsz, "%.*s", (int)e->value.value.bytes.len,
             (const char *)e->value.value.bytes.bytes);
}

/* basic.get of the next message of queue (acked) into *msg and its
 * routing key into rk (rk_size bytes). 1, 0 when the queue is empty, -1
 * on an error; with 1, free *msg with amqp_destroy_message. */
static int event_pub__get(ft_event_pub *p, const char *queue, amqp_message_t *msg, char *rk,
                          size_t rk_size)
{
    const amqp_basic_get_ok_t *ok;
    amqp_rpc_reply_t r;

    r = amqp_basic_get(p->c, 1, amqp_cstring_bytes(queue), 1);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return -1;
    if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
        return 0;
    ok = r.reply.decoded;
    snprintf(rk, rk_size, "%.*s", (int)ok->routing_key.len, (const char *)ok->routing_key.bytes);
    r = amqp_read_message(p->c, 1, msg, 0);
    return r.reply_type == AMQP_RESPONSE_NORMAL ? 1 : -1;
}

int ft_event_pub_take(ft_event_pub *p, const char *queue, ft_event_taken *m)
{
    const amqp_table_entry_t *e;
    amqp_message_t msg;
    int i, rc;

    memset(m, 0, sizeof(*m));
    rc = event_pub__get(p, queue, &msg, m->routing_key, sizeof(m->routing_key));
    if (rc != 1)
        return rc;
    snprintf(m->body, sizeof(m->body), "%.*s", (int)msg.body.len, (const char *)msg.body.bytes);
    if (msg.properties._flags & AMQP_BASIC_HEADERS_FLAG) {
        for (i = 0; i < msg.properties.headers.num_entries; i++) {
            e = &msg.properties.headers.entries[i];
            if (e->key.len == 7 && memcmp(e->key.bytes, "x-death", 7) == 0)
                m->x_death = true;
            else if (e->key.len == 17 && memcmp(e->key.bytes, "x-feedpush-reason", 17) == 0)
                event_pub__header(e, m->reason, sizeof(m->reason));
            else if (e->key.len == 16 && memcmp(e->key.bytes, "x-feedpush-batch", 16) == 0)
                event_pub__header(e, m->batch, sizeof(m->batch));
        }
    }
    amqp_destroy_message(&msg);
    return 1;
}

int ft_event_pub_take_body(ft_event_pub *p, const char *queue, char **body)
{
    amqp_message_t msg;
    char rk[256];
    int rc;

    *body = NULL;
    rc = event_pub__get(p, queue, &msg, rk, sizeof(rk));
    if (rc != 1)
        return rc;
    *body = malloc(msg.body.len + 1);
    if (*body != NULL) {
        memcpy(*body, msg.body.bytes, msg.body.len);
        (*body)[msg.body.len] = '\0';
    }
    amqp_destroy_message(&msg);
    return *body != NULL ? 1 : -1;
}

int ft_event_pub_bind(ft_event_pub *p, const char *queue, const char *exchange, const char *key)
{
    amqp_queue_declare(p->c, 1, amqp_cstring_bytes(queue), 0, 0, 0, 0, amqp_empty_table);
    if (amqp_get_rpc_reply(p->c).reply_type != AMQP_RESPONSE_NORMAL)
        return -1;
    amqp_queue_bind(p->c, 1, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                    amqp_cstring_bytes(key), amqp_empty_table);
    return amqp_get_rpc_reply(p->c).reply_type == AMQP_RESPONSE_NORMAL ? 0 : -1;
}

int ft_event_pub_delete(ft_event_pub *p, const char *queue)
{
    amqp_queue_delete(p->c, 1, amqp_cstring_bytes(queue), 0, 0);
    return amqp_get_rpc_reply(p->c).reply_type == AMQP_RESPONSE_NORMAL ? 0 : -1;
}

void ft_event_pub_close(ft_event_pub *p)
{
    if (p->c == NULL)
        return;
    amqp_connection_close(p->c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(p->c);
    p->c = NULL;
}
