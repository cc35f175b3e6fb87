/* Unit tests for the parts of backend/sentinel.c that need no server:
 * the Sentinel list and master name checks (fp_sentinel_new,
 * fp_redis_options_check) and the READONLY test; and, against a fake
 * Sentinel, a failover at the one moment a real Sentinel cannot be made
 * to pick on demand. The Sentinel protocol itself runs against real
 * Sentinels in integration.redis_failover and integration.redis_auth. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "fp_sentinel.h"
#include "ft_main.h"

static void test_new(void **state)
{
    fp_sentinel *s = NULL;
    char err[160];

    (void)state;
    assert_int_equal(
        fp_sentinel_new(&s, "s1, s2:26380,10.0.0.3", "feedpush", 500, err, sizeof(err)), 0);
    assert_non_null(s);
    assert_int_equal(fp_sentinel_fd(s), -1); /* nothing dialled yet */
    assert_int_equal(fp_sentinel_switched(s), 0);
    fp_sentinel_free(s);
    fp_sentinel_free(NULL);
}

static void test_refusals(void **state)
{
    static const struct {
        const char *list, *name, *says;
    } bad[] = {
        {"", "feedpush", "is not host or host:port"},
        {"s1:0", "feedpush", "is not host or host:port"},
        {"s1,", "feedpush", "is not host or host:port"},
        {"s1", "", "1 to 64 characters"},
        {"s1", NULL, "1 to 64 characters"},
        {"s1", "a b", "spaces or control characters"},
        {"s1", "a\tb", "spaces or control characters"},
        {"s1", "x123456789x123456789x123456789x123456789x123456789x123456789x1234",
         "1 to 64 characters"},
    };
    fp_sentinel *s;
    char err[160];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s = (fp_sentinel *)&err; /* must be reset */
        err[0] = '\0';
        assert_int_equal(fp_sentinel_new(&s, bad[i].list, bad[i].name, 500, err, sizeof(err)),
                         -EINVAL);
        assert_null(s);
        if (strstr(err, bad[i].says) == NULL)
            fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err, bad[i].says);
    }
}

static void test_options_check(void **state)
{
    fp_redis_options o = {.host = "127.0.0.1",
                          .port = 6379,
                          .prefix = "",
                          .sentinels = "",
                          .master_name = "feedpush"};
    char err[200] = "";

    (void)state;
    assert_int_equal(fp_redis_options_check(&o, err, sizeof(err)), 0); /* no Sentinels */
    o.sentinels = "s1:26379,s2:26379,s3:26379";
    assert_int_equal(fp_redis_options_check(&o, err, sizeof(err)), 0);
    o.sentinels = "s1:26379,:1";
    assert_int_equal(fp_redis_options_check(&o, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "redis_sentinels/redis_master_name: \":1\""));
    o.sentinels = "s1";
    o.master_name = "";
    assert_int_equal(fp_redis_options_check(&o, err, sizeof(err)), -EINVAL);
}

static void test_readonly(void **state)
{
    (void)state;
    assert_true(fp_sentinel_readonly("READONLY You can't write against a read only replica."));
    assert_false(fp_sentinel_readonly("ERR unknown command"));
    assert_false(fp_sentinel_readonly("READ"));
    assert_false(fp_sentinel_readonly(NULL));
}

/* ------------------------------------------------------ a fake Sentinel */

#define FAKE__CLIENTS 8
#define FAKE__FIRST_PORT 7001

/*
 * A Sentinel for the primary "feedpush" that fails over right after each
 * answer to SENTINEL get-master-addr-by-name (the primary's port goes
 * 7001, 7002, ...), once the commands of that read from the connection
 * are done, and publishes the +switch-master to the connections then
 * subscribed: as a real Sentinel, whose failover steps run between two
 * reads of a client, never in the middle of one. With late set, the
 * failover is done before the answer, which names the new primary, and
 * only its message comes after (a lookup during a failover). fake_switch
 * fails over at once.
 */
typedef struct {
    int listen_fd;
    int ctl[2]; /* on ctl[1]: 'x' ends the thread, 's' fails over */
    bool late;
    int port;
    int primary_port;
    int fds[FAKE__CLIENTS];
    bool subscribed[FAKE__CLIENTS];
    char in[FAKE__CLIENTS][1024];
    size_t n_in[FAKE__CLIENTS];
    pthread_t thread;
} fake_sentinel;

/* Sends all of text on fd (a test socket: short writes do not happen). */
static void fake__send(int fd, const char *text)
{
    if (send(fd, text, strlen(text), MSG_NOSIGNAL) < 0) {
        /* The client went away: its EOF is read next. */
    }
}

/* The header line at *p (before end) that starts with mark: its number
 * into *value and *p past the line. 1, 0 when the line is not whole yet,
 * -1 when it does not start with mark. */
static int fake__header(const char **p, const char *end, char mark, long *value)
{
    const char *nl;

    if (*p >= end)
        return 0;
    if (**p != mark)
        return -1;
    nl = memchr(*p, '\n', (size_t)(end - *p));
    if (nl == NULL)
        return 0;
    *value = strtol(*p + 1, NULL, 10);
    *p = nl + 1;
    return 1;
}

/* The first word of the first whole command in buf (n bytes) into cmd;
 * returns the command's length, 0 when it is not whole yet, -1 when it
 * is not a RESP array of bulk strings. */
static long fake__command(const char *buf, size_t n, char *cmd, size_t cmd_size)
{
    const char *p = buf, *end = buf + n;
    long args, len, i;
    int rc;

    rc = fake__header(&p, end, '*', &args);
    if (rc != 1)
        return rc;
    cmd[0] = '\0';
    for (i = 0; i < args; i++) {
        rc = fake__header(&p, end, '$', &len);
        if (rc != 1)
            return rc;
        if (end - p < len + 2)
            return 0;
        if (i == 0 && (size_t)len < cmd_size) {
            memcpy(cmd, p, (size_t)len);
            cmd[len] = '\0';
        }
        p += len + 2;
    }
    return (long)(p - buf);
}

/* Serves the commands read from client k so far; true when one was the
 * question (a failover follows, or with late, its message). */
static bool fake__serve(fake_sentinel *f, size_t k)
{
    char cmd[32], answer[96];
    bool asked = false;
    long used;

    for (;;) {
        used = fake__command(f->in[k], f->n_in[k], cmd, sizeof(cmd));
        if (used <= 0)
            break;
        if (strcasecmp(cmd, "SENTINEL") == 0) {
            if (f->late)
                f->primary_port++;
            snprintf(answer, sizeof(answer), "*2\r\n$9\r\n127.0.0.1\r\n$4\r\n%d\r\n",
                     f->primary_port);
            fake__send(f->fds[k], answer);
            asked = true;
        } else if (strcasecmp(cmd, "SUBSCRIBE") == 0) {
            fake__send(f->fds[k], "*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n");
            f->subscribed[k] = true;
        } else {
            fake__send(f->fds[k], "-ERR unknown command\r\n");
        }
        memmove(f->in[k], f->in[k] + used, f->n_in[k] - (size_t)used);
        f->n_in[k] -= (size_t)used;
    }
    return asked;
}

/* Tells every subscriber that the primary moved from port `from` to
 * port `to`. */
static void fake__announce(fake_sentinel *f, int from, int to)
{
    char payload[80], msg[160];
    size_t k;

    snprintf(payload, sizeof(payload), "feedpush 127.0.0.1 %d 127.0.0.1 %d", from, to);
    snprintf(msg, sizeof(msg), "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$%zu\r\n%s\r\n",
             strlen(payload), payload);
    for (k = 0; k < FAKE__CLIENTS; k++) {
        if (f->fds[k] >= 0 && f->subscribed[k])
            fake__send(f->fds[k], msg);
    }
}

static void fake__close(fake_sentinel *f, size_t k)
{
    close(f->fds[k]);
    f->fds[k] = -1;
    f->subscribed[k] = false;
    f->n_in[k] = 0;
}

/* Reads one batch from client k and serves it; the failover after it. */
static void fake__read(fake_sentinel *f, size_t k)
{
    ssize_t n = recv(f->fds[k], f->in[k] + f->n_in[k], sizeof(f->in[k]) - f->n_in[k], 0);

    if (n <= 0) {
        fake__close(f, k);
        return;
    }
    f->n_in[k] += (size_t)n;
    if (fake__command(f->in[k], f->n_in[k], (char[8]){0}, 8) < 0 ||
        f->n_in[k] == sizeof(f->in[k])) {
        fake__close(f, k);
        return;
    }
    if (!fake__serve(f, k))
        return;
    if (f->late) {
        fake__announce(f, f->primary_port - 1, f->primary_port);
    } else {
        fake__announce(f, f->primary_port, f->primary_port + 1);
        f->primary_port++;
    }
}

static void fake__accept(fake_sentinel *f)
{
    int fd = accept(f->listen_fd, NULL, NULL);
    size_t k;

    if (fd < 0)
        return;
    for (k = 0; k < FAKE__CLIENTS; k++) {
        if (f->fds[k] < 0) {
            f->fds[k] = fd;
            return;
        }
    }
    close(fd);
}

static void *fake__main(void *arg)
{
    fake_sentinel *f = arg;
    struct pollfd p[FAKE__CLIENTS + 2];
    size_t k;
    char c;

    for (;;) {
        p[0] = (struct pollfd){f->ctl[0], POLLIN, 0};
        p[1] = (struct pollfd){f->listen_fd, POLLIN, 0};
        for (k = 0; k < FAKE__CLIENTS; k++)
            p[2 + k] = (struct pollfd){f->fds[k], POLLIN, 0};
        if (poll(p, FAKE__CLIENTS + 2, -1) < 0)
            continue;
        if (p[0].revents != 0 && (read(f->ctl[0], &c, 1) != 1 || c == 'x'))
            return NULL;
        if (p[0].revents != 0) {
            fake__announce(f, f->primary_port, f->primary_port + 1);
            f->primary_port++;
        }
        if (p[1].revents != 0)
            fake__accept(f);
        for (k = 0; k < FAKE__CLIENTS; k++) {
            if (f->fds[k] >= 0 && p[2 + k].revents != 0)
                fake__read(f, k);
        }
    }
}

static void fake_start(fake_sentinel *f, bool late)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    size_t k;

    memset(f, 0, sizeof(*f));
    f->primary_port = FAKE__FIRST_PORT;
    f->late = late;
    for (k = 0; k < FAKE__CLIENTS; k++)
        f->fds[k] = -1;
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->listen_fd >= 0);
    assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->listen_fd, 8), 0);
    assert_int_equal(getsockname(f->listen_fd, (struct sockaddr *)&a, &len), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pipe(f->ctl), 0);
    assert_int_equal(pthread_create(&f->thread, NULL, fake__main, f), 0);
}

/* Fails over at once (the next port), told to every subscriber. */
static void fake_switch(fake_sentinel *f)
{
    assert_int_equal(write(f->ctl[1], "s", 1), 1);
}

static void fake_stop(fake_sentinel *f)
{
    size_t k;

    assert_int_equal(write(f->ctl[1], "x", 1), 1);
    pthread_join(f->thread, NULL);
    for (k = 0; k < FAKE__CLIENTS; k++) {
        if (f->fds[k] >= 0)
            close(f->fds[k]);
    }
    close(f->listen_fd);
    close(f->ctl[0]);
    close(f->ctl[1]);
}

/* Calls fp_sentinel_switched every 10 ms, 2 s at most, until it says 1;
 * returns what it said last. */
static int switched_within_2s(fp_sentinel *s)
{
    int i, rc = 0;

    for (i = 0; i < 200 && rc == 0; i++) {
        rc = fp_sentinel_switched(s);
        if (rc == 0)
            poll(NULL, 0, 10);
    }
    return rc;
}

/*
 * A failover right after the Sentinel's answer to fp_sentinel_primary is
 * reported by fp_sentinel_switched, and the primary asked for again is
 * the new one. (With the watch subscribed on a second connection after
 * the answer, this switch was never reported: the one moment a real
 * Sentinel cannot be made to fail over at on demand.)
 */
static void test_switch_after_answer(void **state)
{
    static fake_sentinel f; /* its thread outlives a failed assert */
    fp_sentinel *s = NULL;
    char list[32], err[160];
    fp_host p;

    (void)state;
    fake_start(&f, false);
    snprintf(list, sizeof(list), "127.0.0.1:%d", f.port);
    assert_int_equal(fp_sentinel_new(&s, list, "feedpush", 1000, err, sizeof(err)), 0);
    assert_int_equal(fp_sentinel_primary(s, &p), 0);
    assert_string_equal(p.host, "127.0.0.1");
    assert_int_equal(p.port, FAKE__FIRST_PORT);
    if (switched_within_2s(s) != 1)
        fail_msg("the switch after the answer was not reported (watching: %d; %s)",
                 fp_sentinel_watching(s), fp_sentinel_errstr(s));
    assert_int_equal(fp_sentinel_primary(s, &p), 0);
    assert_int_equal(p.port, FAKE__FIRST_PORT + 1);
    assert_true(fp_sentinel_watching(s));
    fp_sentinel_free(s);
    fake_stop(&f);
}

/*
 * A +switch-master naming as the new primary the one a lookup during the
 * failover already returned is not reported (reconnecting to it would be
 * for nothing); the next switch is.
 */
static void test_switch_already_followed(void **state)
{
    static fake_sentinel f; /* its thread outlives a failed assert */
    fp_sentinel *s = NULL;
    char list[32], err[160];
    fp_host p;
    int i;

    (void)state;
    fake_start(&f, true);
    snprintf(list, sizeof(list), "127.0.0.1:%d", f.port);
    assert_int_equal(fp_sentinel_new(&s, list, "feedpush", 1000, err, sizeof(err)), 0);
    assert_int_equal(fp_sentinel_primary(s, &p), 0);
    assert_int_equal(p.port, FAKE__FIRST_PORT + 1);
    /* Its message (7001 -> 7002) comes within a few ms on loopback. */
    for (i = 0; i < 20; i++) {
        if (fp_sentinel_switched(s) != 0)
            fail_msg("a switch to the primary already found was reported");
        poll(NULL, 0, 10);
    }
    assert_true(fp_sentinel_watching(s));
    fake_switch(&f);
    if (switched_within_2s(s) != 1)
        fail_msg("the next switch was not reported (%s)", fp_sentinel_errstr(s));
    fp_sentinel_free(s);
    fake_stop(&f);
}

/* clang-format off */
FT_MAIN(ft_unit_run, NULL, NULL,
        cmocka_unit_test(test_new),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_options_check),
        cmocka_unit_test(test_readonly),
        cmocka_unit_test(test_switch_after_answer),
        cmocka_unit_test(test_switch_already_followed))
/* clang-format on */
