/*
 * event_pub.h - a backend's side of RabbitMQ for tests: publish events to
 * feed.events with publisher confirms, and look at queue depths, in a
 * virtual host of the test's own.
 */
#ifndef EVENT_PUB_H
#define EVENT_PUB_H

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
/* Waits up to timeout_ms until publish upto is confirmed. 0, or -1 on a
 * nack (said on stderr) or timeout. */
int ft_event_pub_wait(ft_event_pub *p, uint64_t upto, int timeout_ms);
/* Messages ready in queue, or -1. */
int ft_event_pub_queue_depth(ft_event_pub *p, const char *queue);
void ft_event_pub_close(ft_event_pub *p);

#endif
