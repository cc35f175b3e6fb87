/*
 * A RabbitMQ cluster loses a node (the acceptance). Three RabbitMQ
 * nodes on loopback form a cluster (tools/fp-server --cluster); two node
 * pairs (n1, n2: mosquitto + feed_auth.so + feed-bridge) list all three
 * in amqp_hosts and so connect to the first. The test's publisher (the
 * backend) uses a node the bridges are not on (the third at first).
 *
 *   - The topology: feed.events.bridge and feed.events.dead are quorum
 *     queues; a dead-letter queue left classic by an older version is
 *     used as it is (the link still opens).
 *   - A steady stream of posts by an author with a follower online on
 *     each node and one offline. Partway through, the node the bridges
 *     are connected to is SIGKILLed. Every post is in every recipient's
 *     feed exactly once, the bridges are the same processes, and live
 *     delivery resumes on both nodes within 10 s of the kill; from then
 *     on every post reaches both followers live.
 *   - The killed node restarts and rejoins; then the node the bridges
 *     moved to is killed, with the same checks. (A bridge moves to the
 *     node after its own in the list, or past it when that one refuses
 *     for a moment, e.g. while RabbitMQ still holds the lost node's
 *     delivery queue: the logs say which, and that is the one killed.)
 *
 * The bridges run with local_delivery queue (see setup). The time to
 * resume and the posts not delivered live in between (their node's
 * delivery queue was gone with the node) are printed as "# ..." lines:
 * docs/scaling.md quotes them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <mosquitto.h>

#include "feed_stream.h"
#include "fp_amqp.h"
#include "fp_time.h"
#include "node_env.h"
#include "ft_main.h"

#define N_RABBIT 3
#define PUB_NODE 2       /* rabbit[2]: the publisher's at first */
#define STREAM_POSTS 900 /* under the feed length (1000): all stay */
#define STREAM_PACE_US 8000
#define KILL_AFTER 150 /* posts confirmed before the kill */
#define RESUME_LIMIT_MS 10000

static ft_server epmd, rabbit[N_RABBIT];
static int pub_node = PUB_NODE; /* where the test's publisher is */
static int killed = -1;         /* the node the first round killed */
static ft_node_env env;
static char hosts[128];

static int setup(void **state)
{
    ft_node_opts o = {0};
    char vhost[64];
    int i, n;

    (void)state;
    ft_stream_use(&env);
    if (ft_server_start(&epmd, "epmd", NULL) != 0)
        return -1;
    for (i = 0; i < N_RABBIT; i++) {
        if (ft_server_start_node(&rabbit[i], &epmd) != 0)
            return -1;
    }
    n = snprintf(hosts, sizeof(hosts), "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", rabbit[0].port,
                 rabbit[1].port, rabbit[2].port);
    if (n < 0 || (size_t)n >= sizeof(hosts))
        return -1;
    snprintf(vhost, sizeof(vhost), "t%ld-cluster", (long)getpid());
    if (ft_server_vhost(&rabbit[0], vhost) != 0)
        return -1;
    o.rabbit = &rabbit[PUB_NODE];
    o.vhost = vhost;
    o.amqp_hosts = hosts;
    /* Every delivery through the node queues, whose loss and return this
     * test measures. With local_delivery direct a bridge's own node gets
     * its posts at once after a kill, and the other bridge's through the
     * queue about a second later (stage 2 finds its queue gone: the
     * cancel, or fp_amqp_check_consumers), so "resumed" would be read off
     * the first path while the second still drops a few. */
    setenv("FEEDPUSH_LOCAL_DELIVERY", "queue", 1);
    return ft_node_env_start_opts(&env, 2, &o);
}

/* The nodes, then the cluster's port mapper. */
static int teardown(void **state)
{
    int rc = ft_node_env_stop(&env);

    (void)state;
    if (ft_servers_stop(rabbit, N_RABBIT) != 0)
        rc = -1;
    return ft_servers_stop(&epmd, 1) != 0 ? -1 : rc;
}

static int cleanup(void **state)
{
    (void)state;
    ft_stream_cleanup();
    return 0;
}

/* ------------------------------------------------------------ topology */

/* A connection of the test's own to rabbit[PUB_NODE] in vhost, channel 1
 * open. */
static amqp_connection_state_t open_conn(const char *vhost)
{
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(c);
    amqp_rpc_reply_t r;

    assert_non_null(sock);
    assert_int_equal(amqp_socket_open(sock, "127.0.0.1", rabbit[PUB_NODE].port), AMQP_STATUS_OK);
    r = amqp_login(c, vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
    assert_int_equal(r.reply_type, AMQP_RESPONSE_NORMAL);
    amqp_channel_open(c, 1);
    assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
    return c;
}

static void close_conn(amqp_connection_state_t c)
{
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

/* Declares queue durable with x-queue-type type (NULL: no arguments, a
 * classic queue) on a fresh connection: true when the broker accepted it,
 * false on PRECONDITION_FAILED (it exists with other arguments). */
static bool declare_as(const char *vhost, const char *queue, const char *type)
{
    amqp_connection_state_t c = open_conn(vhost);
    amqp_table_entry_t e = {.key = amqp_cstring_bytes("x-queue-type"),
                            .value = {.kind = AMQP_FIELD_KIND_UTF8}};
    amqp_table_t args = {0, &e};
    amqp_rpc_reply_t r;
    bool ok;

    if (type != NULL) {
        e.value.value.bytes = amqp_cstring_bytes(type);
        args.num_entries = 1;
    }
    amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, args);
    r = amqp_get_rpc_reply(c);
    ok = r.reply_type == AMQP_RESPONSE_NORMAL;
    if (!ok) {
        assert_int_equal(r.reply_type, AMQP_RESPONSE_SERVER_EXCEPTION);
        assert_int_equal(r.reply.id, AMQP_CHANNEL_CLOSE_METHOD);
        assert_int_equal(((amqp_channel_close_t *)r.reply.decoded)->reply_code,
                         AMQP_PRECONDITION_FAILED);
    }
    close_conn(c);
    return ok;
}

/* The bridges declared both durable queues as quorum queues: declaring
 * them classic is refused, quorum accepted. A link to a vhost whose
 * dead-letter queue an older version (or an operator) made classic opens
 * all the same, binds that queue if it was not, and leaves it as it
 * was. */
static void test_quorum_queues(void **state)
{
    fp_amqp_config c = {.host = "127.0.0.1",
                        .port = rabbit[PUB_NODE].port,
                        .user = "guest",
                        .password = "guest",
                        .timeout_ms = 5000};
    uint32_t letters = 0;
    char old[64];
    fp_amqp *a = NULL;

    (void)state;
    assert_false(declare_as(env.vhost, "feed.events.dead", NULL));
    assert_false(declare_as(env.vhost, "feed.events.bridge", NULL));
    assert_true(declare_as(env.vhost, "feed.events.dead", "quorum"));

    snprintf(old, sizeof(old), "t%ld-classic", (long)getpid());
    assert_int_equal(ft_server_vhost(&rabbit[0], old), 0);
    assert_true(declare_as(old, "feed.events.dead", NULL));
    c.vhost = old;
    if (fp_amqp_open(&a, &c) != 0)
        fail_msg("fp_amqp_open over a classic dead-letter queue: %s", fp_amqp_errstr(a));
    /* Made by hand, that queue had no binding: the link adds it, and a
     * dead letter reaches the queue (not returned). */
    assert_int_equal(fp_amqp_publish(a, FP_EXCHANGE_DLX, "post.created", "{}", 2), 0);
    if (fp_amqp_confirm(a) != 0)
        fail_msg("a dead letter into the classic queue: %s", fp_amqp_errstr(a));
    assert_int_equal(fp_amqp_dead_count(a, &letters), 0);
    assert_int_equal(letters, 1);
    fp_amqp_free(a);
    assert_true(declare_as(old, "feed.events.dead", NULL));    /* still classic */
    assert_false(declare_as(old, "feed.events.bridge", NULL)); /* made quorum */
}

/* ------------------------------------------------------------ failover */

/* Does the bridge log of node i say it is on rabbit[r] (its start line or
 * its last reconnect)? */
static bool bridge_on(int i, int r)
{
    char needle[64], line[1024];
    bool on = false;
    FILE *f = fopen(env.node[i - 1].bridge_log, "r");

    assert_non_null(f);
    snprintf(needle, sizeof(needle), "rabbitmq 127.0.0.1:%d", rabbit[r].port);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, "running: rabbitmq") != NULL || strstr(line, "connected again") != NULL)
            on = strstr(line, needle) != NULL;
    }
    fclose(f);
    return on;
}

/* The node bridge i is on (its start line or last reconnect says). */
static int bridge_node(int i)
{
    int r;

    for (r = 0; r < N_RABBIT; r++) {
        if (bridge_on(i, r))
            return r;
    }
    fail_msg("the log of bridge n%d names no node of the cluster", i);
    return -1;
}

/* Moves the test's publisher off rabbit[victim] when it is there (to a
 * node that runs). */
static void publisher_off(int victim)
{
    int r;

    if (pub_node != victim)
        return;
    for (r = 0; r < N_RABBIT && (r == victim || r == killed); r++)
        ;
    assert_true(r < N_RABBIT);
    ft_event_pub_close(&env.pub);
    assert_int_equal(ft_event_pub_open(&env.pub, rabbit[r].port, env.vhost), 0);
    pub_node = r;
}

/* Waits until every post after index k reached w live, or one did: the
 * milliseconds since `since`, or -1 after 20 s. */
static int64_t resumed(ft_watcher *w, int k, int n, int64_t since)
{
    while (ft_watcher_count(w, k + 1, n) == 0) {
        if (fp_time_mono_ms() - since > 20000)
            return -1;
        ft_sleep_ms(5);
    }
    return fp_time_mono_ms() - since;
}

/*
 * One round: stream of test t, the node bridge n1 is on SIGKILLed after
 * KILL_AFTER posts. Checks the feeds, the bridges and live delivery as
 * the file's comment says. Returns the node killed.
 */
static int kill_round(const char *t)
{
    pid_t pid[2] = {env.node[0].bridge, env.node[1].bridge};
    static ft_watcher w1, w2;
    static ft_stream s;
    int64_t kill_at, ms1, ms2;
    int at_kill, from, i, victim = bridge_node(1);

    printf("# bridge n1 is on rabbitmq node %d, n2 on node %d\n", victim + 1, bridge_node(2) + 1);
    publisher_off(victim);
    ft_stream_follow(t);
    ft_watcher_start(&w1, 1, t, "f1");
    ft_watcher_start(&w2, 2, t, "f2");
    ft_stream_start(&s, t, STREAM_POSTS, false, STREAM_PACE_US);
    ft_stream_wait(&s, KILL_AFTER);

    at_kill = ft_stream_next(&s);
    kill_at = fp_time_mono_ms();
    assert_int_equal(ft_server_kill(&rabbit[victim]), 0);
    ms1 = resumed(&w1, at_kill, STREAM_POSTS, kill_at);
    ms2 = resumed(&w2, at_kill, STREAM_POSTS, kill_at);
    printf("# rabbitmq node %d killed: live delivery resumed after %lld ms (n1), %lld ms (n2)\n",
           victim + 1, (long long)ms1, (long long)ms2);
    assert_true(ms1 >= 0 && ms1 <= RESUME_LIMIT_MS);
    assert_true(ms2 >= 0 && ms2 <= RESUME_LIMIT_MS);
    from = ft_stream_next(&s) + 1;
    assert_true(from < STREAM_POSTS - 50); /* the check below has posts to look at */
    ft_feeds_report_recovery("rabbitmq node killed", t, from);

    ft_stream_join(&s);
    ft_feeds_settle(t, STREAM_POSTS, 0);
    ft_feeds_assert(t, STREAM_POSTS, 0);
    if (ft_watcher_wait(&w1, from, STREAM_POSTS, 10000) < 0 ||
        ft_watcher_wait(&w2, from, STREAM_POSTS, 10000) < 0)
        fail_msg("after live delivery resumed (post %d on), n1 got %d and n2 %d of %d posts", from,
                 ft_watcher_count(&w1, from, STREAM_POSTS),
                 ft_watcher_count(&w2, from, STREAM_POSTS), STREAM_POSTS - from);
    printf("# rabbitmq node %d killed: of the %d posts published before live delivery resumed, "
           "%d (n1) and %d (n2) were not delivered live; all are in the feeds\n",
           victim + 1, from, from - ft_watcher_count(&w1, 0, from),
           from - ft_watcher_count(&w2, 0, from));
    for (i = 0; i < 2; i++) {
        int status;

        assert_int_equal(env.node[i].bridge, pid[i]);
        assert_int_equal(waitpid(pid[i], &status, WNOHANG), 0);
    }
    ft_watcher_stop(&w2);
    ft_watcher_stop(&w1);
    return victim;
}

/* The first kill: the node the bridges started on (the first listed). */
static void test_kill_first_node(void **state)
{
    (void)state;
    killed = kill_round("k1_");
}

/* The killed node restarts and rejoins; then the node the bridges moved
 * to is killed. */
static void test_kill_second_node(void **state)
{
    (void)state;
    assert_true(killed >= 0);
    assert_int_equal(ft_server_restart(&rabbit[killed]), 0);
    killed = -1;
    kill_round("k2_");
}

/* clang-format off */
FT_MAIN(ft_mqtt_run_group, setup, teardown,
        cmocka_unit_test(test_quorum_queues),
        cmocka_unit_test_teardown(test_kill_first_node, cleanup),
        cmocka_unit_test_teardown(test_kill_second_node, cleanup))
/* clang-format on */
