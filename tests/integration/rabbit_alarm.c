/*
 * RabbitMQ's resource alarm (memory or disk low): RabbitMQ blocks every
 * connection that publishes, and reads nothing more from it until the
 * alarm ends. The test has a RabbitMQ of its own (an alarm stops the
 * whole node's publishers; tools/fp-server alarm raises one by setting
 * the memory watermark to 0) with one node pair and a feed-gateway on it.
 *
 *   - fp_amqp: a link hears of the block (fp_amqp_blocked says why), its
 *     asynchronous confirm wait does not give up after timeout_ms while
 *     it lasts, and the confirm comes once it ends; a publish that finds
 *     the most publishes awaiting confirms waits for the end too; the
 *     synchronous wait (fp_amqp_confirm) still gives up, naming the block;
 *     a RabbitMQ gone silent in a block is found from its heartbeats.
 *   - feed-gateway: a POST during the alarm is answered 503 naming it,
 *     at once after the first; /healthz is 200 "degraded" with
 *     "rabbitmq":"blocked" and the gauge feedpush_gateway_rabbitmq_blocked
 *     is 1; reads go on; with Redis down as well, /healthz is 503 and
 *     names both; the POSTs work again once the alarm is over,
 *     even while they keep coming. Each change logged once.
 *   - feed-bridge: stage 1 with a publish blocked (a dead letter) waits
 *     for the alarm's end on the same link instead of reconnecting every
 *     timeout_ms, and the dead letter lands once it ends.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "fp_amqp.h"
#include "fp_time.h"
#include "gateway_env.h"
#include "ft_main.h"

/* timeout_ms of the test's links and of the bridge: the confirm deadline
 * applies until the block's notice is read, so it leaves room for a
 * loaded machine. */
#define LINK_TIMEOUT_MS 2000
#define BRIDGE_TIMEOUT "2000"
#define END_WAIT_MS 15000 /* for the alarm's end to be seen */
#define MAX_PENDING 256   /* fp_amqp's publishes awaiting their confirms, at most */
/* What stage 1 logs when it reconnects after a failed confirm (not
 * Redis's reconnects, nor stage 2's). */
#define CONFIRM_RECONNECT "rabbitmq: amqp confirm"

static ft_server rabbit;
static ft_gateway_env env;
static char vhost[64];
static pthread_t ender; /* alarm_ender, while ender_running */
static bool ender_running;

static int start(void)
{
    ft_node_opts o = {0};

    if (ft_server_start(&rabbit, "rabbitmq", NULL) != 0)
        return -1;
    snprintf(vhost, sizeof(vhost), "t%ld-alarm", (long)getpid());
    if (ft_server_vhost(&rabbit, vhost) != 0)
        return -1;
    o.rabbit = &rabbit;
    o.vhost = vhost;
    o.timeout_ms = BRIDGE_TIMEOUT;
    return ft_gateway_env_start_opts(&env, 0, &o);
}

static int stop(void)
{
    int rc = ft_gateway_env_stop(&env);

    return ft_server_stop(&rabbit) != 0 ? -1 : rc;
}

FT_FIXTURES(start(), stop())

/* The alarm ends (and RabbitMQ runs) even when a test failed inside it:
 * the next tests need RabbitMQ to take publishes. */
static int alarm_off(void **state)
{
    (void)state;
    if (ender_running)
        pthread_join(ender, NULL);
    ender_running = false;
    kill((pid_t)-rabbit.pid, SIGCONT);
    return ft_server_alarm(&rabbit, false);
}

/* How many times needle occurs in the file at path (-1: unreadable). */
static int log_count(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int n = 0;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* Waits up to ms until needle occurs at least want times in path. */
static void log_wait(const char *path, const char *needle, int want, int ms)
{
    int64_t until = fp_time_mono_ms() + ms;

    while (log_count(path, needle) < want) {
        if (fp_time_mono_ms() > until)
            fail_msg("%s: \"%s\" not %d times in %d ms", path, needle, want, ms);
        ft_sleep_ms(50);
    }
}

/* ------------------------------------------------------------ fp_amqp */

static fp_amqp *open_link_beat(int heartbeat_s)
{
    fp_amqp_config c = {.heartbeat_s = heartbeat_s,
                        .host = "127.0.0.1",
                        .port = rabbit.port,
                        .user = "guest",
                        .password = "guest",
                        .vhost = vhost,
                        .prefetch = 1,
                        .timeout_ms = LINK_TIMEOUT_MS};
    fp_amqp *a = NULL;

    if (fp_amqp_open(&a, &c) != 0)
        fail_msg("fp_amqp_open: %s", fp_amqp_errstr(a));
    return a;
}

static fp_amqp *open_link(void)
{
    return open_link_beat(0);
}

/* A message nobody gets (feed.deliver to a node that is not there): it
 * is confirmed all the same. */
static void publish_one(fp_amqp *a)
{
    static const char body[] = "{\"alarm\":1}";

    assert_int_equal(fp_amqp_publish(a, FP_EXCHANGE_DELIVER, "nobody", body, sizeof(body) - 1), 0);
}

static void test_link_waits_out_a_block(void **state)
{
    fp_amqp *a = open_link();
    int64_t until;
    int rc;

    (void)state;
    publish_one(a);
    assert_int_equal(fp_amqp_confirm(a), 0);
    assert_null(fp_amqp_blocked(a));
    assert_int_equal(ft_server_alarm(&rabbit, true), 0);
    publish_one(a);
    /* Three times timeout_ms: the link neither breaks nor gets its
     * confirm, and says why. */
    until = fp_time_mono_ms() + 3 * LINK_TIMEOUT_MS;
    while (fp_time_mono_ms() < until) {
        rc = fp_amqp_wait_confirms(a, -1, 100);
        if (rc != 0 && rc != -ETIMEDOUT)
            fail_msg("a blocked link gave up: %s", fp_amqp_errstr(a));
    }
    assert_non_null(fp_amqp_blocked(a));
    assert_string_equal(fp_amqp_blocked(a), "low on memory");
    assert_true(fp_amqp_confirmed(a) < fp_amqp_published(a));
    assert_int_equal(ft_server_alarm(&rabbit, false), 0);
    until = fp_time_mono_ms() + END_WAIT_MS;
    while (fp_amqp_confirmed(a) < fp_amqp_published(a)) {
        if (fp_time_mono_ms() > until)
            fail_msg("no confirm after the alarm's end");
        rc = fp_amqp_wait_confirms(a, -1, 100);
        if (rc != 0 && rc != -ETIMEDOUT)
            fail_msg("the link broke at the alarm's end: %s", fp_amqp_errstr(a));
    }
    assert_null(fp_amqp_blocked(a));
    fp_amqp_free(a);
}

/* Ends the alarm after 3 * LINK_TIMEOUT_MS (a thread of its own). */
static void *alarm_ender(void *arg)
{
    (void)arg;
    ft_sleep_ms(3 * LINK_TIMEOUT_MS);
    return (void *)(intptr_t)ft_server_alarm(&rabbit, false);
}

/* A publish when MAX_PENDING await their confirms waits for room: while
 * blocked, until the alarm ends, not timeout_ms (stage 1 reaches that
 * many with a large prefetch or many nodes). */
/* Publishes one and waits until a's block is known. */
static void block(fp_amqp *a)
{
    int64_t until = fp_time_mono_ms() + END_WAIT_MS;
    int rc;

    publish_one(a);
    while (fp_amqp_blocked(a) == NULL) {
        if (fp_time_mono_ms() > until)
            fail_msg("no block notice");
        rc = fp_amqp_wait_confirms(a, -1, 100);
        assert_true(rc == 0 || rc == -ETIMEDOUT);
    }
}

/*
 * In an alarm, with a's block known: n publishes of len bytes, while a
 * thread ends the alarm after 3 * LINK_TIMEOUT_MS. Fails unless they all
 * went and the last one waited for the alarm's end.
 */
static void publish_through_alarm(fp_amqp *a, int n, const char *body, size_t len)
{
    int64_t t0, waited;
    void *ended;
    int i;

    assert_int_equal(ft_server_alarm(&rabbit, true), 0);
    block(a);
    t0 = fp_time_mono_ms();
    assert_int_equal(pthread_create(&ender, NULL, alarm_ender, NULL), 0);
    ender_running = true;
    for (i = 0; i < n; i++) {
        if (fp_amqp_publish(a, FP_EXCHANGE_DELIVER, "nobody", body, len) != 0)
            fail_msg("publish %d of %zu bytes: %s", i + 1, len, fp_amqp_errstr(a));
    }
    waited = fp_time_mono_ms() - t0;
    ender_running = false;
    assert_int_equal(pthread_join(ender, &ended), 0);
    assert_int_equal((int)(intptr_t)ended, 0);
    if (waited < 3 * LINK_TIMEOUT_MS)
        fail_msg("the publishes were done after %lld ms", (long long)waited);
    assert_int_equal(fp_amqp_confirm(a), 0);
    assert_null(fp_amqp_blocked(a));
}

static void test_full_link_waits_out_a_block(void **state)
{
    fp_amqp *a = open_link();

    (void)state;
    /* With the one block() published: the last finds MAX_PENDING. */
    publish_through_alarm(a, MAX_PENDING, "{}", 2);
    fp_amqp_free(a);
}

/* A RabbitMQ that goes silent while it blocks the link (stopped here, as
 * a host that died or a cut network would be: no FIN) is found from its
 * missing heartbeats, although no confirm deadline applies. */
static void test_silent_while_blocked(void **state)
{
    fp_amqp *a;
    int64_t until;
    int rc = 0;

    (void)state;
    /* The alarm first: the link opened before it idled through
     * rabbitmqctl's run (over two heartbeats, 4 s, on a loaded machine),
     * and RabbitMQ closed it for silence before the block. */
    assert_int_equal(ft_server_alarm(&rabbit, true), 0);
    a = open_link_beat(2);
    block(a);
    assert_int_equal(kill((pid_t)-rabbit.pid, SIGSTOP), 0);
    /* Two heartbeats (4 s) and a margin: then the link must have failed. */
    until = fp_time_mono_ms() + END_WAIT_MS;
    while (rc != -EIO && fp_time_mono_ms() < until)
        rc = fp_amqp_wait_confirms(a, -1, 100);
    assert_int_equal(kill((pid_t)-rabbit.pid, SIGCONT), 0);
    if (rc != -EIO)
        fail_msg("a silent RabbitMQ went unnoticed for %d ms", END_WAIT_MS);
    if (strstr(fp_amqp_errstr(a), "heartbeat") == NULL)
        fail_msg("errstr: %s", fp_amqp_errstr(a));
    fp_amqp_free(a);
}

/* In a blocked link, publishes wait for the alarm's end once 64 KiB went
 * into it (RabbitMQ reads nothing of it: a full socket would hang the
 * publish in a write): the fifth of 16 KiB waits. */
static void test_blocked_bytes_wait(void **state)
{
    static char body[16 * 1024];
    fp_amqp *a = open_link();

    (void)state;
    memset(body, 'x', sizeof(body));
    publish_through_alarm(a, 5, body, sizeof(body));
    fp_amqp_free(a);
}

/* fp_amqp_confirm, which its callers use for a publish that must be
 * settled before they go on, still gives up after timeout_ms, and says
 * it was the block. */
static void test_confirm_names_the_block(void **state)
{
    fp_amqp *a = open_link();

    (void)state;
    assert_int_equal(ft_server_alarm(&rabbit, true), 0);
    publish_one(a);
    assert_int_equal(fp_amqp_confirm(a), -EIO);
    if (strstr(fp_amqp_errstr(a), "RabbitMQ blocks publishing (low on memory)") == NULL)
        fail_msg("errstr: %s", fp_amqp_errstr(a));
    fp_amqp_free(a);
    assert_int_equal(ft_server_alarm(&rabbit, false), 0);
}

/* ------------------------------------------------------------ gateway */

static cJSON *call(long want, const char *method, const char *path, const char *tok,
                   const char *body)
{
    ft_http_reply r;
    long got = ft_http(&env, method, path, tok, body, &r);
    cJSON *j;

    if (got != want)
        fail_msg("%s %s: got %ld, want %ld: %s", method, path, got, want, r.body);
    j = cJSON_Parse(r.body);
    if (j == NULL)
        fail_msg("%s %s: not JSON: %s", method, path, r.body);
    ft_http_reply_free(&r);
    return j;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    if (!cJSON_IsString(v))
        fail_msg("no string \"%s\"", key);
    return v->valuestring;
}

/* Waits (up to END_WAIT_MS) until /healthz answers want. */
static void healthz_wait(long want)
{
    int64_t until = fp_time_mono_ms() + END_WAIT_MS;

    while (ft_http(&env, "GET", "/healthz", NULL, NULL, NULL) != want) {
        if (fp_time_mono_ms() > until)
            fail_msg("/healthz not %ld", want);
        ft_sleep_ms(100);
    }
}

/* A POST refused for the alarm: 503, and the message names it. */
static void post_refused(const char *tok)
{
    cJSON *j = call(503, "POST", "/api/v1/posts", tok, "{\"text\":\"in the alarm\"}");

    assert_string_equal(str(j, "error"), "unavailable");
    if (strstr(str(j, "message"), "not taking events for now (low on memory)") == NULL)
        fail_msg("message: %s", str(j, "message"));
    cJSON_Delete(j);
}

/* A client that POSTs every 20 ms until one is taken (201) or anything
 * but the alarm's 503 comes, or END_WAIT_MS passes: the publisher is
 * never idle long enough for its idle check meanwhile. */
typedef struct {
    const char *tok;
    long last; /* the last status */
} poster;

static void *poster_main(void *arg)
{
    poster *p = arg;
    int64_t until = fp_time_mono_ms() + END_WAIT_MS;

    do {
        p->last = ft_http(&env, "POST", "/api/v1/posts", p->tok, "{\"text\":\"after\"}", NULL);
        if (p->last != 503)
            break;
        ft_sleep_ms(20);
    } while (fp_time_mono_ms() < until);
    return NULL;
}

/* Redis down as well while the alarm lasts: /healthz is 503 and its
 * message names both; back to "degraded" once Redis is. */
static void redis_down_in_the_alarm(void)
{
    cJSON *j;

    assert_int_equal(ft_server_stop(&env.b.p.redis), 0);
    healthz_wait(503);
    j = call(503, "GET", "/healthz", NULL, NULL);
    assert_string_equal(str(j, "status"), "down");
    assert_string_equal(str(j, "redis"), "down");
    assert_string_equal(str(j, "rabbitmq"), "blocked");
    if (strstr(str(j, "message"),
               "redis unreachable; rabbitmq blocks publishing (low on memory)") == NULL)
        fail_msg("/healthz message: %s", str(j, "message"));
    cJSON_Delete(j);
    assert_int_equal(ft_server_restart(&env.b.p.redis), 0);
    healthz_wait(200);
    j = call(200, "GET", "/healthz", NULL, NULL);
    assert_string_equal(str(j, "status"), "degraded");
    cJSON_Delete(j);
}

static void test_gateway_in_an_alarm(void **state)
{
    char *tok = ft_gateway_token(&env, "al");
    int blocked0 = log_count(env.log, "RabbitMQ blocks publishing: low on memory");
    int unblocked0 = log_count(env.log, "publishing unblocked");
    poster pc = {0};
    pthread_t t;
    cJSON *j;

    (void)state;
    healthz_wait(200);
    cJSON_Delete(call(201, "POST", "/api/v1/posts", tok, "{\"text\":\"before\"}"));
    assert_int_equal(ft_server_alarm(&rabbit, true), 0);
    /* The first POST is published and then blocked; the next ones are
     * not published at all. */
    post_refused(tok);
    post_refused(tok);
    post_refused(tok);
    /* 200: every gateway has the alarm, and reads go on. */
    j = call(200, "GET", "/healthz", NULL, NULL);
    assert_string_equal(str(j, "status"), "degraded");
    assert_string_equal(str(j, "rabbitmq"), "blocked");
    assert_string_equal(str(j, "redis"), "ok");
    if (strstr(str(j, "message"), "rabbitmq blocks publishing (low on memory)") == NULL)
        fail_msg("/healthz message: %s", str(j, "message"));
    cJSON_Delete(j);
    assert_true(ft_gateway_metric(&env, "feedpush_gateway_rabbitmq_blocked") == 1);
    cJSON_Delete(call(200, "GET", "/api/v1/feed", tok, NULL)); /* reads go on */
    redis_down_in_the_alarm();
    /* The alarm ends while POSTs keep coming: the publisher sees the end
     * between them, not only when idle. */
    pc.tok = tok;
    assert_int_equal(pthread_create(&t, NULL, poster_main, &pc), 0);
    ft_sleep_ms(200);
    assert_int_equal(ft_server_alarm(&rabbit, false), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    if (pc.last != 201)
        fail_msg("POST after the alarm: %ld", pc.last);
    j = call(200, "GET", "/healthz", NULL, NULL);
    assert_string_equal(str(j, "status"), "ok");
    cJSON_Delete(j);
    assert_true(ft_gateway_metric(&env, "feedpush_gateway_rabbitmq_blocked") == 0);
    assert_int_equal(log_count(env.log, "RabbitMQ blocks publishing: low on memory"), blocked0 + 1);
    assert_int_equal(log_count(env.log, "publishing unblocked"), unblocked0 + 1);
    free(tok);
}

/* ------------------------------------------------------------ bridge */

static void test_bridge_waits_out_a_block(void **state)
{
    const char *log = env.b.node[0].bridge_log;
    pid_t pid = env.b.node[0].bridge;
    int reconnects = log_count(log, CONFIRM_RECONNECT);
    int blocked = log_count(log, "RabbitMQ blocks publishing: low on memory");
    int unblocked = log_count(log, "publishing unblocked");
    int dead = ft_node_queue_depth(&env.b, FP_QUEUE_DEAD);
    int64_t until;

    (void)state;
    assert_true(dead >= 0);
    /* The event is queued while the bridge is stopped, so that stage 1
     * takes it, and publishes its dead letter, in the alarm. */
    assert_int_equal(kill(pid, SIGSTOP), 0);
    if (ft_node_publish(&env.b, "post.created", "{not json") != 0) {
        kill(pid, SIGCONT);
        fail_msg("could not publish the event");
    }
    assert_int_equal(ft_server_alarm(&rabbit, true), 0);
    assert_int_equal(kill(pid, SIGCONT), 0);
    log_wait(log, "RabbitMQ blocks publishing: low on memory", blocked + 1, END_WAIT_MS);
    /* Three times the bridge's timeout_ms: no reconnect meanwhile. */
    ft_sleep_ms(3 * atoi(BRIDGE_TIMEOUT));
    assert_int_equal(log_count(log, CONFIRM_RECONNECT), reconnects);
    assert_int_equal(ft_node_queue_depth(&env.b, FP_QUEUE_DEAD), dead);
    assert_int_equal(ft_server_alarm(&rabbit, false), 0);
    until = fp_time_mono_ms() + END_WAIT_MS;
    while (ft_node_queue_depth(&env.b, FP_QUEUE_DEAD) != dead + 1) {
        if (fp_time_mono_ms() > until)
            fail_msg("the dead letter did not land after the alarm");
        ft_sleep_ms(50);
    }
    log_wait(log, "publishing unblocked", unblocked + 1, END_WAIT_MS);
    assert_int_equal(log_count(log, CONFIRM_RECONNECT), reconnects);
}

/* clang-format off */
FT_MAIN(ft_harness_run, setup, teardown,
        cmocka_unit_test_teardown(test_link_waits_out_a_block, alarm_off),
        cmocka_unit_test_teardown(test_full_link_waits_out_a_block, alarm_off),
        cmocka_unit_test_teardown(test_blocked_bytes_wait, alarm_off),
        cmocka_unit_test_teardown(test_confirm_names_the_block, alarm_off),
        cmocka_unit_test_teardown(test_gateway_in_an_alarm, alarm_off),
        cmocka_unit_test_teardown(test_bridge_waits_out_a_block, alarm_off),
        /* Last: the RabbitMQ stopped for seconds makes the stack's links
         * reconnect. */
        cmocka_unit_test_teardown(test_silent_while_blocked, alarm_off))
/* clang-format on */
