/*
 * feed-bridge's link to its broker (bridge/mqtt_link.c) against a real
 * mosquitto with feed_auth.so. A batch cut by a drop waits for the next
 * connection, where libmosquitto sends what it had queued, and each
 * publish reaches the subscriber once, not again through a retry of the
 * caller.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "ft_main.h"
#include "ft_redis.h"
#include "mqtt_link.h"
#include "plugin_env.h"

#define DOWN_PUBLISHES 20
#define SLOW_PUBLISHES 1500
#define SLOW_STOP_MS 250 /* the broker stopped, then running 5 ms, again and again */

static ft_plugin_env env;

static int group_setup(void **state)
{
    (void)state;
    return ft_plugin_env_start(&env, "n1", NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    return ft_plugin_env_stop(&env);
}

/* Subscribes u1 (token tok) to feed/u1 on the broker at port (sub), then
 * opens a link with cfg; returns it. */
static fb_mqtt *open_watched(int port, const char *tok, const fb_mqtt_config *cfg, ft_mqtt *sub)
{
    fb_mqtt *m = NULL;

    assert_int_equal(ft_mqtt_connect(sub, port, "u1-sub", "u1", tok, 5, 3000), 0);
    assert_int_equal(ft_mqtt_subscribe(sub, "feed/u1", 3000), 1);
    assert_int_equal(fb_mqtt_open(&m, cfg), 0);
    return m;
}

/* Publishes text to feed/u1 as a delivery of its own, flushed. */
static void publish_flushed(fb_mqtt *m, const char *text)
{
    fb_mqtt_begin(m);
    assert_int_equal(fb_mqtt_publish(m, "feed/u1", text, strlen(text), false), 0);
    assert_int_equal(fb_mqtt_flush(m, NULL), 0);
}

/* Runs sub's loop until fb_mqtt_connected(m) is want, or timeout_ms. */
static bool wait_link(fb_mqtt *m, ft_mqtt *sub, bool want, int timeout_ms)
{
    int64_t end = fp_time_mono_ms() + timeout_ms;

    while (fb_mqtt_connected(m) != want) {
        if (fp_time_mono_ms() >= end)
            return false;
        ft_mqtt_pump(sub, 20);
    }
    return true;
}

/* Revokes the bridge's user (bridge-n1) with a cut-off at now + ahead
 * seconds: the plugin kicks the link within a second and refuses the
 * tokens it mints until then. Waits until the link is down. */
static void revoke_link(redisContext *rc, fb_mqtt *m, ft_mqtt *sub, int ahead)
{
    long long before = (long long)time(NULL) + ahead;
    char msg[64];

    snprintf(msg, sizeof(msg), "bridge-n1 %lld", before);
    ft_redis_ok(rc, "SET revoked:bridge-n1 %lld", before);
    assert_int_equal(ft_redis_int(rc, "PUBLISH revoked %s", msg), 1);
    assert_true(wait_link(m, sub, false, 3000));
}

/*
 * The link is kicked in the middle of a delivery, after its first batch
 * was flushed (its user revoked 3 s ahead, so the token minted at its
 * first reconnect is usually refused too, and a later one accepted). The
 * publishes made meanwhile wait for the new connection and return 0;
 * the flush returns 0 with none refused; the subscriber gets each once.
 * A delivery that has not begun learns at once that the link is down
 * (-EIO, nothing queued). Before, a publish made while the link was down
 * failed (although libmosquitto had queued it when the drop had not been
 * seen yet), and the caller's retry of the delivery sent a second copy
 * of all it had published.
 */
static void test_publish_while_down(void **state)
{
    fb_mqtt_config cfg = {.host = "127.0.0.1",
                          .port = env.mosq.port,
                          .node_id = "n1",
                          .alg = FP_JWT_HS256,
                          .signing_key_file = env.secret_path,
                          .token_ttl_s = 3600,
                          .timeout_ms = 10000};
    char *tok = ft_plugin_env_token_now(&env, "u1", FP_ROLE_USER);
    redisContext *rc = ft_redis_connect(env.redis.port);
    char payload[32], seen[DOWN_PUBLISHES + 2] = {0};
    fb_mqtt_batch batch;
    fb_mqtt *m = NULL;
    int64_t t0;
    ft_mqtt sub;
    int i, n;

    (void)state;
    m = open_watched(env.mosq.port, tok, &cfg, &sub);

    /* A delivery of two batches: the first flushed, then the drop. */
    publish_flushed(m, "down -1");
    revoke_link(rc, m, &sub, 3);
    for (i = 0; i < DOWN_PUBLISHES; i++) {
        n = snprintf(payload, sizeof(payload), "down %d", i);
        assert_int_equal(fb_mqtt_publish(m, "feed/u1", payload, (size_t)n, false), 0);
    }
    assert_int_equal(fb_mqtt_flush(m, &batch), 0);
    assert_int_equal(batch.refused, 0);
    assert_int_equal(batch.unsendable, 0);

    /* Each once: 1 + DOWN_PUBLISHES messages, and no more after a pause. */
    assert_int_equal(ft_mqtt_wait_messages(&sub, 1 + DOWN_PUBLISHES, 5000), 1 + DOWN_PUBLISHES);
    ft_mqtt_pump(&sub, 1000);
    assert_int_equal(sub.received, 1 + DOWN_PUBLISHES);
    for (i = 0; i < 16 && i < 1 + DOWN_PUBLISHES; i++) {
        assert_int_equal(sscanf(sub.payloads[i], "down %d", &n), 1);
        assert_true(n >= -1 && n < DOWN_PUBLISHES && !seen[n + 1]);
        seen[n + 1] = 1;
    }

    /* A batch that has not begun: refused at once while the link is down. */
    revoke_link(rc, m, &sub, 1);
    fb_mqtt_begin(m);
    t0 = fp_time_mono_ms();
    assert_int_equal(fb_mqtt_publish(m, "feed/u1", "never", 5, false), -EIO);
    assert_true(fp_time_mono_ms() - t0 < 1000);
    assert_int_equal(fb_mqtt_flush(m, NULL), 0);
    assert_true(wait_link(m, &sub, true, 8000));
    ft_mqtt_pump(&sub, 500);
    assert_int_equal(sub.received, 1 + DOWN_PUBLISHES);

    fb_mqtt_free(m);
    ft_mqtt_close(&sub);
    redisFree(rc);
    free(tok);
    assert_false(ft_plugin_env_sanitizer_report(&env));
}

/* Starts env, a broker of node with receive maximum 1 (one publish in
 * flight), and points cfg at it. */
static void start_receive_max_1(ft_plugin_env *env, const char *node, fb_mqtt_config *cfg)
{
    assert_int_equal(ft_plugin_env_start(env, node, "max_inflight_messages 1\n"), 0);
    cfg->port = env->mosq.port;
    cfg->signing_key_file = env->secret_path;
}

/* A broker that is slow, not hung: stopped SLOW_STOP_MS, then let run for
 * 5 ms, until *done. */
typedef struct {
    long pid;
    atomic_bool done;
} slow_broker;

static void *slow_broker_main(void *arg)
{
    slow_broker *s = arg;

    while (!atomic_load(&s->done)) {
        kill((pid_t)s->pid, SIGSTOP);
        ft_sleep_ms(SLOW_STOP_MS);
        kill((pid_t)s->pid, SIGCONT);
        ft_sleep_ms(5);
    }
    return NULL;
}

/*
 * Opens a link with cfg, publishes SLOW_PUBLISHES to feed/u1 and flushes
 * them while the broker (pid) is slow (slow_broker_main). Returns the
 * flush's result, with how long it took in *took and the link's reconnects
 * in *reconnects; *batch as fb_mqtt_flush fills it.
 */
static int slow_flush(const fb_mqtt_config *cfg, long pid, fb_mqtt_batch *batch, int64_t *took,
                      unsigned long *reconnects)
{
    slow_broker slow = {.pid = pid};
    unsigned long refused;
    fb_mqtt *m = NULL;
    pthread_t stopper;
    char payload[32];
    int64_t t0;
    int i, n, rc;

    assert_int_equal(fb_mqtt_open(&m, cfg), 0);
    fb_mqtt_begin(m);
    for (i = 0; i < SLOW_PUBLISHES; i++) {
        n = snprintf(payload, sizeof(payload), "slow %d", i);
        assert_int_equal(fb_mqtt_publish(m, "feed/u1", payload, (size_t)n, false), 0);
    }
    atomic_init(&slow.done, false);
    t0 = fp_time_mono_ms();
    assert_int_equal(pthread_create(&stopper, NULL, slow_broker_main, &slow), 0);
    rc = fb_mqtt_flush(m, batch);
    *took = fp_time_mono_ms() - t0;
    atomic_store(&slow.done, true);
    pthread_join(stopper, NULL);
    kill((pid_t)pid, SIGCONT);
    fb_mqtt_counters(m, reconnects, &refused);
    fb_mqtt_free(m);
    return rc;
}

/*
 * A batch that a slow broker acknowledges a little at a time (receive
 * maximum 1, and the broker stopped for all but 5 ms of every 255) takes
 * far longer than timeout_ms + 1 s, but PUBACKs keep coming: the flush
 * waits for them all and returns 0, without a new connection. It used to
 * give the whole batch one deadline, drop the link and fail: the caller
 * published the whole delivery again behind the copies libmosquitto
 * resends, which took longer still, for ever. With flush_max_ms 0 (stage
 * 1's direct link) it waits one period only.
 */
static void test_slow_broker_not_hung(void **state)
{
    fb_mqtt_config cfg = {.host = "127.0.0.1",
                          .node_id = "n2",
                          .alg = FP_JWT_HS256,
                          .token_ttl_s = 3600,
                          .timeout_ms = 200,
                          .flush_max_ms = 30000};
    unsigned long reconnects;
    fb_mqtt_batch batch;
    ft_plugin_env env2;
    int64_t took;
    int rc;

    (void)state;
    start_receive_max_1(&env2, "n2", &cfg);

    rc = slow_flush(&cfg, env2.mosq.pid, &batch, &took, &reconnects);
    printf("# %d publishes acknowledged by a slow broker in %lld ms (rc %d)\n", SLOW_PUBLISHES,
           (long long)took, rc);
    assert_int_equal(rc, 0);
    assert_int_equal(batch.refused, 0);
    /* The case this test is about: longer than one deadline. */
    assert_true(took > cfg.timeout_ms + 1000);
    assert_int_equal(reconnects, 0);

    /* flush_max_ms 0 (the direct link's): one period, then -EIO. */
    cfg.flush_max_ms = 0;
    rc = slow_flush(&cfg, env2.mosq.pid, &batch, &took, &reconnects);
    printf("# with flush_max_ms 0: rc %d after %lld ms\n", rc, (long long)took);
    assert_int_equal(rc, -EIO);
    assert_true(took < 2 * (cfg.timeout_ms + 1000));

    assert_false(ft_plugin_env_sanitizer_report(&env2));
    assert_int_equal(ft_plugin_env_stop(&env2), 0);
}

/*
 * A delivery given up on a hung broker (stopped), then fb_mqtt_discard:
 * of its publishes, the one written to the socket before the broker
 * stopped still arrives when it resumes, but those libmosquitto held back
 * (receive maximum 1) never do, on any later connection; a later publish
 * goes out on the new client. Without the discard, the link's next
 * connection sent them all again (stage 1's direct link: after the
 * queue had carried the same share, and maybe the post's delete).
 */
static void test_discard_drops_unacked(void **state)
{
    fb_mqtt_config cfg = {.host = "127.0.0.1",
                          .node_id = "n3",
                          .alg = FP_JWT_HS256,
                          .token_ttl_s = 3600,
                          .timeout_ms = 300};
    char *tok, payload[32];
    int i, n, stale = 0, fresh = 0, acked = 0, published = 0, flushed, dropped;
    unsigned long connects;
    bool up;
    fb_mqtt *m = NULL;
    ft_plugin_env env3;
    ft_mqtt sub;

    (void)state;
    start_receive_max_1(&env3, "n3", &cfg);
    tok = ft_plugin_env_token_now(&env3, "u1", FP_ROLE_USER);
    m = open_watched(env3.mosq.port, tok, &cfg, &sub);
    /* Nothing unacknowledged: nothing to drop, the link stays. */
    publish_flushed(m, "acked");
    assert_int_equal(fb_mqtt_discard(m), 0);
    assert_true(fb_mqtt_connected(m));

    /* Results kept until the broker runs again: a failed assertion must
     * not leave it stopped. */
    kill((pid_t)env3.mosq.pid, SIGSTOP);
    fb_mqtt_begin(m);
    for (i = 0; i < 5; i++) {
        n = snprintf(payload, sizeof(payload), "stale %d", i);
        published += fb_mqtt_publish(m, "feed/u1", payload, (size_t)n, false) == 0;
    }
    flushed = fb_mqtt_flush(m, NULL);
    dropped = fb_mqtt_discard(m);
    up = fb_mqtt_connected(m);
    connects = fb_mqtt_connects(m);
    kill((pid_t)env3.mosq.pid, SIGCONT);
    assert_int_equal(published, 5);
    assert_int_equal(flushed, -EIO);
    assert_int_equal(dropped, 1);
    assert_false(up);

    assert_true(wait_link(m, &sub, true, 8000));
    /* The old client's last CONNECT (its reconnect after the flush) was
     * in the stopped broker's socket too, with the same client id: if the
     * broker reads it after the new client's, it takes the session over
     * and the new client connects again, 2 s later. Both are read within
     * moments of the resume. */
    ft_mqtt_pump(&sub, 500);
    assert_true(wait_link(m, &sub, true, 8000));
    assert_true(fb_mqtt_connects(m) > connects);
    publish_flushed(m, "fresh");
    /* Time for anything resent to arrive. */
    ft_mqtt_pump(&sub, 1500);
    assert_true(sub.received <= 16);
    for (i = 0; i < sub.received; i++) {
        if (strcmp(sub.payloads[i], "acked") == 0)
            acked++;
        else if (strcmp(sub.payloads[i], "fresh") == 0)
            fresh++;
        else if (strncmp(sub.payloads[i], "stale ", 6) == 0)
            stale++;
        printf("# received %s\n", sub.payloads[i]);
        /* Only the one in the socket before the stop. */
        if (strncmp(sub.payloads[i], "stale ", 6) == 0)
            assert_string_equal(sub.payloads[i], "stale 0");
    }
    assert_int_equal(acked, 1);
    assert_int_equal(fresh, 1);
    assert_true(stale <= 1);

    fb_mqtt_free(m);
    ft_mqtt_close(&sub);
    free(tok);
    assert_false(ft_plugin_env_sanitizer_report(&env3));
    assert_int_equal(ft_plugin_env_stop(&env3), 0);
}

/* clang-format off */
FT_MAIN(ft_mqtt_run_group, group_setup, group_teardown,
        cmocka_unit_test(test_publish_while_down),
        cmocka_unit_test(test_slow_broker_not_hung),
        cmocka_unit_test(test_discard_drops_unacked))
/* clang-format on */
