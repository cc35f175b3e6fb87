/*
 * stats.c - what the bridge did, as counters.
 *
 * Kept in memory (atomics: both stage threads count) and written every second to the Redis hash
 * <prefix>stats:bridge:<node> (field = counter name, value = number, plus
 * "updated_ms"), where `feedctl stats` and the gateway's /metrics read
 * them. Counters only grow; they restart from 0 when the bridge restarts.
 */
#include <stdio.h>
#include <time.h>

#include "bridge.h"

static const char *const stats__names[FB_STAT__COUNT] = {
    [FB_STAT_EVENTS_POST_CREATED] = "events_post_created",
    [FB_STAT_EVENTS_POST_DELETED] = "events_post_deleted",
    [FB_STAT_EVENTS_FOLLOW_CREATED] = "events_follow_created",
    [FB_STAT_EVENTS_FOLLOW_DELETED] = "events_follow_deleted",
    [FB_STAT_EVENTS_RIBBON_PUSHED] = "events_ribbon_pushed",
    [FB_STAT_EVENTS_USER_REVOKED] = "events_user_revoked",
    [FB_STAT_DEAD_LETTERS] = "dead_letters",
    [FB_STAT_EVENT_BATCHES] = "event_batches",
    [FB_STAT_FANOUT_RECIPIENTS] = "fanout_recipients",
    [FB_STAT_DELIVER_MESSAGES] = "deliver_messages",
    [FB_STAT_DELIVERIES] = "deliveries",
    [FB_STAT_BROADCASTS] = "broadcasts",
    [FB_STAT_RECONNECTS_AMQP] = "reconnects_amqp",
    [FB_STAT_RECONNECTS_REDIS] = "reconnects_redis",
    [FB_STAT_RECONNECTS_MQTT] = "reconnects_mqtt",
    [FB_STAT_MQTT_REFUSED] = "mqtt_refused",
    [FB_STAT_STAGE1_US_SUM] = "stage1_us_sum",
    [FB_STAT_STAGE1_COUNT] = "stage1_count",
    [FB_STAT_STAGE1_US_MAX] = "stage1_us_max",
    [FB_STAT_STAGE2_US_SUM] = "stage2_us_sum",
    [FB_STAT_STAGE2_COUNT] = "stage2_count",
    [FB_STAT_STAGE2_US_MAX] = "stage2_us_max",
    [FB_STAT_SYNC_US_SUM] = "sync_us_sum",
    [FB_STAT_SYNC_COUNT] = "sync_count",
};

void fb_stats_add(fb_stats *st, fb_stat s, uint64_t n)
{
    atomic_fetch_add_explicit(&st->v[s], n, memory_order_relaxed);
}

void fb_stats_latency(fb_stats *st, bool stage1, int64_t us)
{
    fb_stat sum = stage1 ? FB_STAT_STAGE1_US_SUM : FB_STAT_STAGE2_US_SUM;
    fb_stat count = stage1 ? FB_STAT_STAGE1_COUNT : FB_STAT_STAGE2_COUNT;
    fb_stat max = stage1 ? FB_STAT_STAGE1_US_MAX : FB_STAT_STAGE2_US_MAX;

    uint64_t v, seen;

    v = us < 0 ? 0 : (uint64_t)us;
    fb_stats_add(st, sum, v);
    fb_stats_add(st, count, 1);
    seen = atomic_load_explicit(&st->v[max], memory_order_relaxed);
    while (v > seen && !atomic_compare_exchange_weak_explicit(
                           &st->v[max], &seen, v, memory_order_relaxed, memory_order_relaxed))
        ;
}

int fb_stats_publish(fb_bridge *b)
{
    const char *names[FB_STAT__COUNT + 1];
    uint64_t values[FB_STAT__COUNT + 1];
    size_t i;

    for (i = 0; i < FB_STAT__COUNT; i++) {
        names[i] = stats__names[i];
        values[i] = atomic_load_explicit(&b->stats.v[i], memory_order_relaxed);
    }
    names[i] = "updated_ms";
    values[i] = (uint64_t)fp_time_real_ms();
    return fp_store_put_stats(b->store, b->cfg.node_id, names, values, FB_STAT__COUNT + 1);
}
