/*
 * feed-bridge: RabbitMQ events -> Redis feed caches and ribbon -> per-node
 * routing -> the local mosquitto. See bridge.h for the modules and
 * docs/bridge.md for what it does.
 *
 *   feed-bridge [-c bridge.conf]
 *
 * Two threads, one per stage, each handling one message at a time: stage
 * 1 (fan-out: its AMQP link and Redis) and stage 2 (delivery: this node's
 * queues on a second AMQP link, and the local broker). Stage 2 acks a
 * message when it is done with it; stage 1 acks an event once RabbitMQ
 * has confirmed what the event published, and takes the next event
 * meanwhile (fanout.c). Each link reconnects with a capped backoff when
 * it breaks; SIGTERM or SIGINT stops consuming, lets the messages in hand
 * finish, waits for the last confirms and exits 0 (messages prefetched
 * but not acked go back to RabbitMQ).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

#include "bridge.h"
#include "fp_config.h"
#include "fp_id.h"
#include "fp_log.h"
#include "fp_version.h"

#define MAIN__BACKOFF_MIN_MS 100
#define MAIN__BACKOFF_MAX_MS 5000
#define MAIN__SENTINEL_BACKOFF_MAX_MS 1000 /* asking a Sentinel again is cheap */
#define MAIN__POLL_MS 200
#define MAIN__STATS_EVERY_US 1000000
#define MAIN__REFUSED_TRIES 5 /* Redis error replies before an event is dead-lettered */
/* Stage 2, idle: how often it checks that RabbitMQ still lists its
 * consumers (fp_amqp_check_consumers). */
#define MAIN__CHECK_EVERY_US 1000000
/* Stage 1's link to the broker: client id feed-bridge-<node>-direct. */
#define MAIN__DIRECT_SUFFIX "-direct"

/* Set by the signal handler, read by both stage threads (lock-free atomic,
 * so async-signal-safe). */
static atomic_int main__stop;

static void main__on_signal(int sig)
{
    (void)sig;
    main__stop = 1;
}

/*
 * Sleeps ms in short slices, returning early on a stop request. keep, when
 * not NULL, is the stage's AMQP link while it waits between tries at the
 * message in hand: it is kept open meanwhile (fp_amqp_heartbeat), so that
 * message is settled on it once the wait is over, however long that takes,
 * and neither it nor the messages whose acks were deferred come again.
 */
static void main__sleep(int ms, fp_amqp *keep)
{
    while (ms > 0 && !main__stop) {
        if (keep != NULL && fp_amqp_heartbeat(keep) != 0)
            fp_debug("rabbitmq: %s", fp_amqp_errstr(keep));
        usleep(50000);
        ms -= 50;
    }
}

/* Doubles *ms up to cap after sleeping it (keep: main__sleep). */
static void main__backoff_to(int *ms, int cap, fp_amqp *keep)
{
    main__sleep(*ms, keep);
    *ms = *ms * 2 > cap ? cap : *ms * 2;
}

/* Doubles *ms up to MAIN__BACKOFF_MAX_MS after sleeping it. */
static void main__backoff(int *ms, fp_amqp *keep)
{
    main__backoff_to(ms, MAIN__BACKOFF_MAX_MS, keep);
}

/* The checks a config needs beyond each key's own: node_id an id (as
 * the plugin's: it names queues, Redis keys and the client ids), the host
 * lists, WAIT's reply within the socket timeout, deliver_mode,
 * local_delivery, timeout_ms within amqp_heartbeat. 0 or -EINVAL (err
 * says why). */
static int main__check(const fb_config *c, char *err, size_t errlen)
{
    if (!fp_id_valid(c->node_id)) {
        snprintf(err, errlen, "node_id \"%.64s\" is not a valid id ([A-Za-z0-9_-], 1-64)",
                 c->node_id);
        return -EINVAL;
    }
    if (strcmp(c->deliver_mode, "publish") != 0 && strcmp(c->deliver_mode, "control") != 0) {
        snprintf(err, errlen, "deliver_mode \"%.16s\" is not publish or control", c->deliver_mode);
        return -EINVAL;
    }
    if (strcmp(c->local_delivery, "direct") != 0 && strcmp(c->local_delivery, "queue") != 0) {
        snprintf(err, errlen, "local_delivery \"%.16s\" is not direct or queue", c->local_delivery);
        return -EINVAL;
    }
    if (c->redis_min_replicas > 0 && c->redis_wait_timeout_ms >= c->timeout_ms) {
        snprintf(err, errlen, "redis_wait_timeout_ms (%lld) must be below timeout_ms (%lld)",
                 (long long)c->redis_wait_timeout_ms, (long long)c->timeout_ms);
        return -EINVAL;
    }
    /* Within one try at a message a stage makes no RabbitMQ call (between
     * tries stage 1 sends heartbeats: main__sleep), and RabbitMQ closes a
     * link that missed two heartbeats. Stage 1's longest try at an event
     * of one batch of recipients: a store call (timeout_ms), a direct
     * delivery's publish waiting for a reconnect and its flush (timeout_ms
     * + 1 s each), then dropping that link's client (fb_mqtt_discard, 3 s
     * at most): 3 timeout_ms + 5 s, plus up to a second since the last
     * heartbeat: within two heartbeats when this holds. Bigger deliveries
     * (a flush per batch) take longer: the link is then connected again
     * and the event comes again. */
    if (2 * c->timeout_ms + 3000 > c->amqp.heartbeat * 1000) {
        snprintf(err, errlen,
                 "2 x timeout_ms (%lld) + 3 s must not exceed amqp_heartbeat (%lld s): RabbitMQ "
                 "would close a link that waits that long",
                 (long long)c->timeout_ms, (long long)c->amqp.heartbeat);
        return -EINVAL;
    }
    if (fp_amqp_options_check(&c->amqp, err, errlen) != 0 ||
        fp_redis_options_check(&c->redis, err, errlen) != 0)
        return -EINVAL;
    return 0;
}

/* ------------------------------------------------------------ links */

/* (Re)opens the Redis link, retrying until it works or stop; keep: the
 * stage's AMQP link while a message is in hand (main__sleep), or NULL. */
static int main__store_up(fb_bridge *b, fp_amqp *keep)
{
    fp_store_config c = {.feed_length = (int)b->cfg.feed_length,
                         .pull_threshold =
                             b->cfg.pull_threshold > 0 ? (long)b->cfg.pull_threshold : -1,
                         .post_ttl_s = (long)b->cfg.post_ttl,
                         .revocation_ttl_s = (long)b->cfg.revocation_ttl,
                         .ribbon_length = (int)b->cfg.ribbon_length,
                         .timeout_ms = (int)b->cfg.timeout_ms,
                         .min_replicas = (int)b->cfg.redis_min_replicas,
                         .wait_timeout_ms = (int)b->cfg.redis_wait_timeout_ms};
    int wait = MAIN__BACKOFF_MIN_MS, rc, cap = MAIN__BACKOFF_MAX_MS;
    bool failed = false, again = b->store != NULL;

    fp_store_options_apply(&b->cfg.redis, &c);
    /* During a failover the Sentinels name the new primary within
     * seconds: look again soon. */
    if (c.sentinels[0] != '\0')
        cap = MAIN__SENTINEL_BACKOFF_MAX_MS;
    rc = b->store == NULL ? fp_store_open(&b->store, &c) : fp_store_reconnect(b->store);
    while (rc != 0 && !main__stop) {
        fp_log(failed ? FP_LOG_DEBUG : FP_LOG_WARN, "redis %s: %s; retrying (backoff up to %d ms)",
               fp_store_peer(b->store),
               b->store != NULL ? fp_store_errstr(b->store) : "out of memory", cap);
        failed = true;
        main__backoff_to(&wait, cap, keep);
        rc = b->store == NULL ? fp_store_open(&b->store, &c) : fp_store_reconnect(b->store);
    }
    if (rc == 0 && (failed || again))
        fp_info("redis %s: connected again", fp_store_peer(b->store));
    return rc;
}

/* (Re)opens one stage's AMQP link, *link, retrying until it works or stop.
 * stage1 selects what it consumes. */
static int main__amqp_up(fb_bridge *b, fp_amqp **link, bool stage1)
{
    fp_amqp_config c = {.node_id = b->cfg.node_id,
                        .prefetch = (int)b->cfg.prefetch,
                        .deliver_ttl_ms = (int)b->cfg.deliver_ttl_ms,
                        .deliver_max_length = (int)b->cfg.deliver_max_length,
                        .deliver_expires_ms = (int)b->cfg.deliver_expires_ms,
                        .timeout_ms = (int)b->cfg.timeout_ms,
                        .consume_events = stage1,
                        .consume_node = !stage1,
                        .stop = &main__stop};
    int wait = MAIN__BACKOFF_MIN_MS, rc;
    bool failed = false, again = *link != NULL;

    fp_amqp_options_apply(&b->cfg.amqp, &c);
    rc = *link == NULL ? fp_amqp_open(link, &c) : fp_amqp_reconnect(*link);
    while (rc != 0 && !main__stop) {
        fp_log(failed ? FP_LOG_DEBUG : FP_LOG_WARN,
               "rabbitmq %s: %s; retrying (backoff up to %d ms)", fp_amqp_peer(*link),
               fp_amqp_errstr(*link), MAIN__BACKOFF_MAX_MS);
        failed = true;
        main__backoff(&wait, NULL);
        rc = *link == NULL ? fp_amqp_open(link, &c) : fp_amqp_reconnect(*link);
    }
    if (rc == 0 && (failed || again))
        fp_info("rabbitmq %s: connected again (%s)", fp_amqp_peer(*link),
                stage1 ? "events" : "deliveries");
    return rc;
}

/* The MQTT link reconnects by itself; this waits for it (or for stop),
 * checking its state every 100 ms: a flag, no I/O. keep: main__sleep. */
static int main__mqtt_up(fb_bridge *b, fp_amqp *keep)
{
    if (!fb_mqtt_connected(b->node.mqtt))
        fp_warn("mqtt %s:%d: not connected (%s); waiting for the link", b->cfg.mqtt_host,
                (int)b->cfg.mqtt_port, fb_mqtt_errstr(b->node.mqtt));
    while (!fb_mqtt_connected(b->node.mqtt) && !main__stop) {
        /* A token that runs out while the broker is away is renewed here
         * too, or every reconnect would offer the expired one. */
        fb_mqtt_maintain(b->node.mqtt);
        main__sleep(MAIN__BACKOFF_MIN_MS, keep);
    }
    return main__stop ? -EINTR : 0;
}

static int main__open(fb_bridge *b)
{
    fb_mqtt_config m = {.host = b->cfg.mqtt_host,
                        .port = (int)b->cfg.mqtt_port,
                        .tls = b->cfg.mqtt_tls,
                        .tls_ca = b->cfg.mqtt_tls_ca,
                        .node_id = b->cfg.node_id,
                        .alg = FP_JWT_HS256,
                        .signing_key_file = b->cfg.jwt_signing_key,
                        .token_ttl_s = (int)b->cfg.token_ttl,
                        .timeout_ms = (int)b->cfg.timeout_ms,
                        .expiry_ms = (int)b->cfg.deliver_ttl_ms};
    int64_t flush_max = 5 * (b->cfg.timeout_ms + 1000);
    int rc;

    if (fp_jwt_alg_parse(b->cfg.jwt_alg, &m.alg) != 0) {
        fp_error("jwt_alg \"%.16s\" is not HS256, RS256 or ES256", b->cfg.jwt_alg);
        return -EINVAL;
    }
    /* Stage 2's flushes wait for a slow broker up to 5 periods, and never
     * as long as RabbitMQ takes to drop its silent link (twice the
     * heartbeat). Stage 1's direct link waits one: it has the queue. */
    if (flush_max > b->cfg.amqp.heartbeat * 1000)
        flush_max = b->cfg.amqp.heartbeat * 1000;
    m.flush_max_ms = (int)flush_max;
    rc = fb_mqtt_open(&b->node.mqtt, &m);
    if (rc == -EINVAL || rc == -ENOMEM) {
        fp_error("%s", fb_mqtt_errstr(b->node.mqtt));
        return rc;
    }
    if (b->local_direct) {
        /* Stage 1's own link: it reconnects by itself, and until it is up
         * this node's deliveries take the queue (fanout__direct). */
        m.client_suffix = MAIN__DIRECT_SUFFIX;
        m.flush_max_ms = 0;
        rc = fb_mqtt_open(&b->direct.mqtt, &m);
        if (rc == -EINVAL || rc == -ENOMEM) {
            fp_error("%s", fb_mqtt_errstr(b->direct.mqtt));
            return rc;
        }
    }
    /* The broker is not waited for beyond fb_mqtt_open's timeout_ms per
     * link: stage 1 needs none (with local_delivery direct it takes the
     * queue until its link is up), and stage 2 waits for it before its
     * first delivery (main__stage2). Not waiting at all was tried: with
     * the broker up, stage 1's first events could then take the queue and
     * the start ribbon go out late, whenever the link connected after the
     * rest of the start. */
    if (main__store_up(b, NULL) != 0 || main__amqp_up(b, &b->amqp, true) != 0 ||
        main__amqp_up(b, &b->amqp_node, false) != 0)
        return -EINTR;
    if (fb_deliver_ribbon_from_store(b) != 0)
        fp_warn("could not publish the current ribbon at start; it goes out once the broker "
                "link is back, or with the next ribbon event if Redis could not be read");
    fp_info("node %s running: rabbitmq %s, redis %s, mqtt %s:%d (deliver_mode %s, "
            "local_delivery %s)",
            b->cfg.node_id, fp_amqp_peer(b->amqp), fp_store_peer(b->store), b->cfg.mqtt_host,
            (int)b->cfg.mqtt_port, b->cfg.deliver_mode, b->cfg.local_delivery);
    return 0;
}

/* ------------------------------------------------------------ the loop */

/*
 * Handles msg until it is settled, repairing whichever link failed on the
 * way. Returns after a RabbitMQ failure without settling: the broker
 * redelivers what was not acked. link is the stage's AMQP link.
 */
static void main__handle(fb_bridge *b, fp_amqp **link, const fp_amqp_msg *msg)
{
    bool stage1 = msg->source == FP_AMQP_SRC_EVENTS;
    /* Stage 1 keeps its RabbitMQ link through its waits: an event that
     * came again would be applied and delivered again. Stage 2 lets its
     * link go in a wait longer than RabbitMQ's heartbeat timeout: its
     * messages come again, and RabbitMQ drops those older than
     * deliver_ttl_ms instead of the bridge delivering them late. */
    fp_amqp *keep = stage1 ? *link : NULL;
    int64_t start = fp_time_mono_us();
    int refused = 0, busy = 0, lost = 0, wait = MAIN__BACKOFF_MIN_MS;
    size_t next;
    char reason[256];
    fb_outcome out;

    if (stage1)
        fb_fanout_begin(b);
    for (;;) {
        next = stage1 ? b->batch_next : 0; /* batch_next is stage 1's */
        out = stage1 ? fb_fanout_handle(b, msg) : fb_deliver_handle(b, msg);
        if (out == FB_DONE || main__stop)
            break;
        if (stage1 && b->batch_next != next) { /* a batch went on: its next event's own tries */
            refused = 0;
            busy = 0;
            lost = 0;
            wait = MAIN__BACKOFF_MIN_MS;
        }
        if (out == FB_STORE_REFUSED && ++refused >= MAIN__REFUSED_TRIES) {
            snprintf(reason, sizeof(reason), "redis kept refusing it: %s",
                     fp_store_errstr(b->store));
            refused = 0;
            out = fb_fanout_give_up(b, msg, reason);
            if (out == FB_DONE || main__stop)
                break;
        }
        if (out == FB_STORE_REFUSED) {
            fp_warn("redis refused an event (%s); retrying in %d ms", fp_store_errstr(b->store),
                    wait);
            main__backoff(&wait, keep);
        } else if (out == FB_STORE_BUSY) {
            /* Not the event's fault: waited out, however long, never
             * dead-lettered. Said once per event, then at debug level. */
            fp_log(busy++ == 0 ? FP_LOG_WARN : FP_LOG_DEBUG,
                   "redis cannot take the event now (%s); retrying (backoff up to %d ms)",
                   fp_store_errstr(b->store), MAIN__BACKOFF_MAX_MS);
            main__backoff(&wait, keep);
        } else if (out == FB_NO_MEMORY) {
            fp_log(busy++ == 0 ? FP_LOG_WARN : FP_LOG_DEBUG,
                   "out of memory handling a message; retrying (backoff up to %d ms)",
                   MAIN__BACKOFF_MAX_MS);
            main__backoff(&wait, keep);
        } else if (out == FB_RETRY_STORE) {
            fp_warn("redis: %s; reconnecting", fp_store_errstr(b->store));
            fb_stats_add(&b->stats, FB_STAT_RECONNECTS_REDIS, 1);
            /* The first reconnect at once; when the new link fails the
             * message again (a server that answers READONLY without
             * Sentinels to name another, memory running out), with the
             * backoff: not in a loop. */
            if (lost++ > 0)
                main__backoff_to(&wait,
                                 b->cfg.redis.sentinels[0] != '\0' ? MAIN__SENTINEL_BACKOFF_MAX_MS
                                                                   : MAIN__BACKOFF_MAX_MS,
                                 keep);
            if (main__stop || main__store_up(b, keep) != 0)
                break;
            /* With redis_min_replicas, what the message wrote before may
             * be lost with a primary no replica had caught up with, and
             * the WAIT after the reconnect covers only what this link
             * writes: a batch goes again from its first event. */
            if (stage1 && b->cfg.redis_min_replicas > 0)
                fb_fanout_begin(b);
        } else if (out == FB_RETRY_MQTT) {
            /* After missing PUBACKs the link is connecting again
             * (fb_mqtt_flush): main__mqtt_up waits for a broker that
             * answers. */
            fp_warn("%s; publishing again once the broker is back", fb_mqtt_errstr(b->node.mqtt));
            main__sleep(MAIN__BACKOFF_MIN_MS, keep);
            if (main__mqtt_up(b, keep) != 0)
                break;
        } else {
            fp_warn("rabbitmq: %s; reconnecting", fp_amqp_errstr(*link));
            fb_stats_add(&b->stats, FB_STAT_RECONNECTS_AMQP, 1);
            main__amqp_up(b, link, stage1);
            return;
        }
    }
    if (out == FB_DONE)
        fb_stats_latency(&b->stats, stage1, fp_time_mono_us() - start);
}

/*
 * Writes the counters; when the Redis link is found broken (an idle stage
 * 1 has no event to find it), makes one attempt to reconnect and writes
 * them again, so updated_ms, which alerting reads, does not freeze until
 * the next event. *down: the link failed here and is not back yet (the
 * failure is logged once, and its end).
 */
static void main__publish_stats(fb_bridge *b, bool *down)
{
    int rc = fb_stats_publish(b);

    if (rc == -EIO) {
        if (!*down) {
            fp_warn("redis: %s; reconnecting", fp_store_errstr(b->store));
            fb_stats_add(&b->stats, FB_STAT_RECONNECTS_REDIS, 1);
        }
        *down = true;
        if (main__stop)
            return;
        if (fp_store_reconnect(b->store) != 0) {
            fp_debug("redis %s: %s; trying again in a second", fp_store_peer(b->store),
                     fp_store_errstr(b->store));
            return;
        }
        fp_info("redis %s: connected again", fp_store_peer(b->store));
        rc = fb_stats_publish(b);
    }
    if (rc != -EIO)
        *down = false; /* back here, or by an event's retry meanwhile */
    if (rc != 0)
        fp_debug("redis: counters not written: %s", fp_store_errstr(b->store));
}

static void main__periodic(fb_bridge *b, int64_t *next_stats, bool *store_down)
{
    int64_t now = fp_time_mono_us();
    unsigned long reconnects, refused, direct_reconnects, direct_refused;

    if (now < *next_stats)
        return;
    fb_mqtt_counters(b->node.mqtt, &reconnects, &refused);
    if (b->direct.mqtt != NULL) {
        fb_mqtt_counters(b->direct.mqtt, &direct_reconnects, &direct_refused);
        reconnects += direct_reconnects;
        refused += direct_refused;
        fb_mqtt_maintain(b->direct.mqtt); /* stage 1's link */
    }
    atomic_store(&b->stats.v[FB_STAT_RECONNECTS_MQTT], reconnects);
    atomic_store(&b->stats.v[FB_STAT_MQTT_REFUSED], refused);
    main__publish_stats(b, store_down);
    /* The next period counts from now, not from its start: a reconnect
     * above may have taken a timeout, and stage 1's messages come first. */
    *next_stats = fp_time_mono_us() + MAIN__STATS_EVERY_US;
}

/*
 * Stage 2 while it waits: once a second at most, makes sure RabbitMQ
 * still lists its consumers; after a node loss it can keep a consumer on
 * a queue it deleted, and this node's deliveries would then stop without
 * an error. Returns -EIO when the link must reconnect.
 */
static int main__check_consumers(fb_bridge *b, int64_t *next_check)
{
    int64_t now = fp_time_mono_us();

    if (now < *next_check)
        return 0;
    *next_check = now + MAIN__CHECK_EVERY_US;
    return fp_amqp_check_consumers(b->amqp_node);
}

/* One stage's loop: take a message from its link, handle it, repeat. */
static void main__loop(fb_bridge *b, fp_amqp **link, bool stage1)
{
    int64_t next_stats = 0, next_check = 0;
    bool store_down = false;
    fp_amqp_msg msg;
    int rc;

    while (!main__stop) {
        rc = fp_amqp_next(*link, &msg, MAIN__POLL_MS);
        if (rc == -ETIMEDOUT && !stage1 && main__check_consumers(b, &next_check) != 0)
            rc = -EIO;
        if (rc == 0)
            main__handle(b, link, &msg);
        else if (rc == -EIO && !main__stop) {
            fp_warn("rabbitmq: %s; reconnecting", fp_amqp_errstr(*link));
            fb_stats_add(&b->stats, FB_STAT_RECONNECTS_AMQP, 1);
            main__amqp_up(b, link, stage1);
        }
        if (stage1)
            main__periodic(b, &next_stats, &store_down);
        else {
            fb_mqtt_maintain(b->node.mqtt); /* the MQTT link belongs to stage 2 */
            fb_deliver_ribbon_again(b);
        }
    }
    /* Stopping: the events whose acks wait for confirms are acked now, or
     * RabbitMQ delivers them again (harmless, but their posts would reach
     * the online followers twice). */
    if (stage1 && fp_amqp_confirm(*link) != 0)
        fp_warn("rabbitmq: %s; the last events are handled again after the restart",
                fp_amqp_errstr(*link));
}

static void *main__stage2(void *arg)
{
    fb_bridge *b = arg;

    if (main__mqtt_up(b, NULL) == 0)
        main__loop(b, &b->amqp_node, false);
    return NULL;
}

/* Stage 2 on its own thread, stage 1 (and the periodic work, which uses
 * stage 1's Redis link) on this one. 0, or -EAGAIN when the thread could
 * not start (logged). */
static int main__run(fb_bridge *b)
{
    pthread_t stage2;

    if (pthread_create(&stage2, NULL, main__stage2, b) != 0) {
        fp_error("cannot start the delivery thread");
        return -EAGAIN;
    }
    main__loop(b, &b->amqp, true);
    pthread_join(stage2, NULL);
    return 0;
}

/* ------------------------------------------------------------ main */

static void main__usage(FILE *out)
{
    fprintf(out, "usage: feed-bridge [-c bridge.conf] | --help | --version\n\n"
                 "Options (config file key, default, meaning, environment override):\n");
    fb_config_usage(out);
}

static int main__args(int argc, char **argv, const char **conf)
{
    int i;

    *conf = NULL;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            main__usage(stdout);
            exit(0);
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("feed-bridge %s\n", FP_VERSION);
            exit(0);
        }
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            *conf = argv[++i];
            continue;
        }
        main__usage(stderr);
        return -EINVAL;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    fb_bridge b;
    fp_log_level level;
    const char *conf;
    char err[FP_CONF_ERR_MAX];
    bool bad_config;
    int rc;

    memset(&b, 0, sizeof(b));
    fp_log_set_component("feed-bridge");
    if (main__args(argc, argv, &conf) != 0)
        return 2;
    if (fb_config_load(&b.cfg, conf, err, sizeof(err)) != 0) {
        fp_error("%s", err);
        return 2;
    }
    if (fp_log_level_parse(b.cfg.log_level, &level) != 0) {
        fp_error("log_level \"%.16s\" is not debug, info, warn or error", b.cfg.log_level);
        fb_config_free(&b.cfg);
        return 2;
    }
    if (main__check(&b.cfg, err, sizeof(err)) != 0) {
        fp_error("%s", err);
        fb_config_free(&b.cfg);
        return 2;
    }
    fp_log_set_level(level);
    b.deliver_control = strcmp(b.cfg.deliver_mode, "control") == 0;
    b.local_direct = strcmp(b.cfg.local_delivery, "direct") == 0;
    /* This process's mark on its own queued deliveries (fanout.c): one of
     * an earlier run, still in the queue, is not waited for. */
    snprintf(b.run, sizeof(b.run), "%lx-%llx", (unsigned long)getpid(),
             (unsigned long long)fp_time_real_ms());
    atomic_init(&b.queued_done, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = main__on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    mosquitto_lib_init();
    rc = main__open(&b);
    /* A jwt_alg or a signing key it cannot use is a bad configuration. */
    bad_config = rc == -EINVAL;
    if (rc == 0)
        rc = main__run(&b);
    if (b.store != NULL && rc == 0)
        fb_stats_publish(&b);
    fp_amqp_free(b.amqp);
    fp_amqp_free(b.amqp_node);
    fb_mqtt_free(b.direct.mqtt);
    fb_mqtt_free(b.node.mqtt);
    free(b.ribbon_doc);
    fp_store_free(b.store);
    mosquitto_lib_cleanup();
    fb_config_free(&b.cfg);
    if (bad_config)
        return 2;
    if (rc == -EINVAL || rc == -ENOMEM || rc == -EAGAIN)
        return 1;
    fp_info("stopped");
    return 0;
}
