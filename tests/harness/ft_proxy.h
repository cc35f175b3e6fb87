/*
 * ft_proxy.h - a TCP relay for fault tests: it listens on a free loopback
 * port and relays every connection to a target port on 127.0.0.1, in a
 * thread of the test process, until the test cuts the connections (as a
 * network fault or a dying server would) or stops it.
 */
#ifndef FT_PROXY_H
#define FT_PROXY_H

typedef struct ft_proxy ft_proxy;

/* Starts relaying to target_port. 0 or -1 (reason on stderr). */
int ft_proxy_start(ft_proxy **out, int target_port);
/* The port it listens on. */
int ft_proxy_port(const ft_proxy *p);
/* Stops relaying what the target sends on the connections relayed now
 * (the clients' bytes still go through; new connections are relayed in
 * full), as a server that hangs would, until they are cut. Returns how
 * many it holds, or -1. */
int ft_proxy_hold(ft_proxy *p);
/* Bytes relayed from clients to the target so far. */
long ft_proxy_sent(ft_proxy *p);
/* Closes every connection it relays now, both sides, and ends a hold;
 * new connections are relayed again. Returns how many it closed. */
int ft_proxy_cut(ft_proxy *p);
/* Closes everything and ends the thread. */
void ft_proxy_stop(ft_proxy *p);

#endif
