/*
 * fp_hosts.h - lists of servers to dial, "host[:port],host[:port],...":
 * the nodes of a RabbitMQ cluster (amqp_hosts), the Sentinels of a Redis
 * (redis_sentinels).
 */
#ifndef FP_HOSTS_H
#define FP_HOSTS_H

#include <stddef.h>

#define FP_HOSTS_MAX 16
#define FP_HOST_MAX 255

/* One server to dial. */
typedef struct {
    char host[FP_HOST_MAX + 1];
    int port;
} fp_host;

/*
 * Parses "host[:port],host[:port],..." (a port left out is default_port;
 * at most FP_HOSTS_MAX entries, spaces around entries ignored; no IPv6
 * literals) into hosts. Returns the count (>= 1), or -EINVAL with err
 * saying which entry is wrong.
 */
int fp_hosts_parse(const char *list, int default_port, fp_host hosts[FP_HOSTS_MAX], char *err,
                   size_t errlen);

#endif
