/*
 * event_pub.h - a backend's side of RabbitMQ for tests: publish events to
 * feed.events with publisher confirms, look at queue depths and take
 * messages from a queue (the dead letters), in a virtual host of the
 * test's own.
 */
#ifndef EVENT_PUB_H
#define EVENT_PUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <amqp.h>

typedef struct {
    amqp_connection_state_t c;
    uint64_t published; /* publish sequence number of the last publish */
    uint64_t confirmed; /* the highest one RabbitMQ has confirmed */
} ft_event_pub;

/* Connects as guest to 127.0.0.1:port, vhost, with confirms on. 0 or -1. */
int ft_event_pub_open(ft_event_pub *p, int port, const char *vhost);
/* Publishes body to feed.events with routing key rk and waits for the
 * broker's confirm. 0 or -1. */
int ft_event_pub_send(ft_event_pub *p, const char *rk, const char *body);
/* The publish of ft_event_pub_send without the wait (persistent, JSON). */
int ft_event_pub_post(ft_event_pub *p, const char *rk, const char *body);
/* ft_event_pub_post to another exchange (feed.broadcast, as a bridge). */
int ft_event_pub_post_to(ft_event_pub *p, const char *exchange, const char *rk, const char *body);
/* ft_event_pub_post_to with a body of len bytes (a NUL among them). */
int ft_event_pub_post_bytes(ft_event_pub *p, const char *exchange, const char *rk, const void *body,
                            size_t len);
/* Waits up to timeout_ms until publish upto is confirmed. 0, or -1 on a
 * nack (said on stderr) or timeout. */
int ft_event_pub_wait(ft_event_pub *p, uint64_t upto, int timeout_ms);
/* ft_event_pub_wait until a monotonic deadline (fp_time_mono_ns; one
 * already past reads the confirms that have come, without waiting): 0
 * when upto is confirmed, 1 when the deadline came first, -1 on a nack
 * or a broken link. */
int ft_event_pub_wait_until(ft_event_pub *p, uint64_t upto, int64_t deadline_ns);
/* Messages ready in queue, or -1. */
int ft_event_pub_queue_depth(ft_event_pub *p, const char *queue);

/* A message taken from a queue (strings cut to fit). */
typedef struct {
    char routing_key[256];
    char body[2048];
    char reason[640]; /* its header x-feedpush-reason, "" without */
    char batch[64];   /* its header x-feedpush-batch, "" without */
    bool x_death;     /* RabbitMQ's x-death header: it was rejected */
} ft_event_taken;

/* Takes the next message of queue (basic.get, acked). 1 when there was
 * one, 0 when the queue is empty, -1 on an error. */
int ft_event_pub_take(ft_event_pub *p, const char *queue, ft_event_taken *m);
/* Takes the next message of queue whole (basic.get, acked): *body is
 * its text, malloc'd, for the caller to free. 1, 0 when the queue is
 * empty, -1 on an error. */
int ft_event_pub_take_body(ft_event_pub *p, const char *queue, char **body);
/* Declares queue (not durable) and binds it to exchange with key, as a
 * node's stage 2 binds feed.deliver.<node>. 0 or -1. */
int ft_event_pub_bind(ft_event_pub *p, const char *queue, const char *exchange, const char *key);
/* Deletes queue. 0 or -1. */
int ft_event_pub_delete(ft_event_pub *p, const char *queue);
void ft_event_pub_close(ft_event_pub *p);

#endif
