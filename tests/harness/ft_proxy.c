/*
 * ft_proxy.c - a TCP relay for fault tests; see ft_proxy.h.
 *
 * One thread polls the listening socket, a pipe for the test's commands
 * and both sides of each relayed connection, and copies what one side
 * sends to the other (a blocking write: loopback, small messages).
 */
#include "ft_proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define PROXY__MAX 32 /* connections relayed at once */

struct ft_proxy {
    int target_port;
    int listen_fd;
    int port;
    int cmd[2];              /* the test writes 'c' (cut), 'h' (hold) or 's' (stop) */
    int done[2];             /* the thread answers: how many it cut or holds */
    atomic_long sent;        /* bytes relayed from clients */
    int pair[PROXY__MAX][2]; /* client, server; -1 when free */
    bool held[PROXY__MAX];   /* the server's side is not read */
    pthread_t tid;
};

static int proxy__dial(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void proxy__close_pair(ft_proxy *p, int i)
{
    close(p->pair[i][0]);
    close(p->pair[i][1]);
    p->pair[i][0] = p->pair[i][1] = -1;
    p->held[i] = false;
}

static void proxy__accept(ft_proxy *p)
{
    int c = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC), s, i;

    if (c < 0)
        return;
    s = proxy__dial(p->target_port);
    for (i = 0; i < PROXY__MAX && s >= 0; i++) {
        if (p->pair[i][0] < 0) {
            p->pair[i][0] = c;
            p->pair[i][1] = s;
            return;
        }
    }
    close(c); /* the target refused, or too many: the client sees a close */
    if (s >= 0)
        close(s);
}

/* Copies what fd `from` of pair i has to the other side. False when the
 * pair is to be closed. */
static int proxy__relay(ft_proxy *p, int i, int from)
{
    char buf[65536];
    ssize_t n = read(p->pair[i][from], buf, sizeof(buf)), off = 0, w;

    if (n <= 0)
        return 0;
    while (off < n) {
        w = write(p->pair[i][1 - from], buf + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return 0;
        off += w;
    }
    if (from == 0)
        atomic_fetch_add(&p->sent, (long)n);
    return 1;
}

/* Runs a command of the test. False on stop. */
static int proxy__command(ft_proxy *p)
{
    char c = 's';
    int i, n = 0;

    if (read(p->cmd[0], &c, 1) != 1 || c == 's')
        return 0;
    for (i = 0; i < PROXY__MAX; i++) {
        if (p->pair[i][0] < 0)
            continue;
        if (c == 'c')
            proxy__close_pair(p, i);
        else
            p->held[i] = true;
        n++;
    }
    if (write(p->done[1], &n, sizeof(n)) != sizeof(n))
        return 0;
    return 1;
}

static void *proxy__main(void *arg)
{
    ft_proxy *p = arg;
    struct pollfd fds[2 + 2 * PROXY__MAX];
    int i, k, n;

    for (;;) {
        fds[0] = (struct pollfd){.fd = p->cmd[0], .events = POLLIN};
        fds[1] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
        for (i = 0; i < PROXY__MAX; i++) {
            for (k = 0; k < 2; k++)
                fds[2 + 2 * i + k] = (struct pollfd){
                    .fd = k == 1 && p->held[i] ? -1 : p->pair[i][k], .events = POLLIN};
        }
        n = poll(fds, 2 + 2 * PROXY__MAX, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (fds[0].revents != 0 && !proxy__command(p)))
            break;
        if (fds[0].revents != 0)
            continue; /* a cut: the pairs polled are gone */
        if (fds[1].revents != 0)
            proxy__accept(p);
        for (i = 0; i < PROXY__MAX; i++) {
            for (k = 0; k < 2 && p->pair[i][0] >= 0; k++) {
                if (fds[2 + 2 * i + k].revents != 0 && fds[2 + 2 * i + k].fd == p->pair[i][k] &&
                    !proxy__relay(p, i, k))
                    proxy__close_pair(p, i);
            }
        }
    }
    for (i = 0; i < PROXY__MAX; i++) {
        if (p->pair[i][0] >= 0)
            proxy__close_pair(p, i);
    }
    return NULL;
}

static int proxy__listen(ft_proxy *p)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(p->listen_fd, 16) != 0 ||
        getsockname(p->listen_fd, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    p->port = ntohs(sa.sin_port);
    return 0;
}

/* Closes its own descriptors (-1: none) and frees it. */
static void proxy__free(ft_proxy *p)
{
    if (p->listen_fd >= 0)
        close(p->listen_fd);
    if (p->cmd[0] >= 0)
        close(p->cmd[0]);
    if (p->cmd[1] >= 0)
        close(p->cmd[1]);
    if (p->done[0] >= 0)
        close(p->done[0]);
    if (p->done[1] >= 0)
        close(p->done[1]);
    free(p);
}

int ft_proxy_start(ft_proxy **out, int target_port)
{
    ft_proxy *p = calloc(1, sizeof(*p));
    int i;

    *out = NULL;
    if (p == NULL)
        return -1;
    p->target_port = target_port;
    p->listen_fd = p->cmd[0] = p->cmd[1] = p->done[0] = p->done[1] = -1;
    for (i = 0; i < PROXY__MAX; i++)
        p->pair[i][0] = p->pair[i][1] = -1;
    if (proxy__listen(p) != 0 || pipe2(p->cmd, O_CLOEXEC) != 0 || pipe2(p->done, O_CLOEXEC) != 0 ||
        pthread_create(&p->tid, NULL, proxy__main, p) != 0) {
        fprintf(stderr, "ft_proxy: %s\n", strerror(errno));
        proxy__free(p);
        return -1;
    }
    *out = p;
    return 0;
}

int ft_proxy_port(const ft_proxy *p)
{
    return p->port;
}

/* Sends command c to the thread: its answer, or -1. */
static int proxy__ask(ft_proxy *p, const char *c)
{
    int n = -1;

    if (write(p->cmd[1], c, 1) != 1 || read(p->done[0], &n, sizeof(n)) != sizeof(n))
        return -1;
    return n;
}

int ft_proxy_hold(ft_proxy *p)
{
    return proxy__ask(p, "h");
}

long ft_proxy_sent(ft_proxy *p)
{
    return atomic_load(&p->sent);
}

int ft_proxy_cut(ft_proxy *p)
{
    return proxy__ask(p, "c");
}

void ft_proxy_stop(ft_proxy *p)
{
    if (p == NULL)
        return;
    if (write(p->cmd[1], "s", 1) == 1)
        pthread_join(p->tid, NULL);
    proxy__free(p);
}
