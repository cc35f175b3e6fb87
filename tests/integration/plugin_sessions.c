/*
 * feed_auth.so, persistent sessions, against a real mosquitto with the
 * plugin: a session with clean session off (3.1.1) or an owned id (MQTT 5)
 * receives on reconnect what was published to its feed while it was away,
 * once and in order; sessions:<node> lists its user as long as the
 * session lasts; a client id "<user>:<name>" is its user's alone; the
 * per-user session cap and the broker's queue cap hold; 1,000 expired
 * sessions leave presence empty and broker memory flat; kicks reach an
 * MQTT 5 client as DISCONNECT 0x98; the record of an MQTT 5 session
 * that ended with its connection goes; a configuration reload changes no
 * session; queued messages and the routing
 * presence survive a graceful broker restart, and a crash after the
 * broker's and the plugin's periodic saves. The publisher is a service
 * client, as feed-bridge is.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "ft_redis.h"
#include "plugin_env.h"
#include "ft_main.h"

#define LIFETIME_S 3 /* plugin_opt_session_max_lifetime here */
#define QUEUE_CAP 5  /* max_queued_messages here */
#define SESSIONS_CAP 2
#define HELD "sessions:n1"
#define ONLINE "online:n1"
#define MQTT_RC_ADMINISTRATIVE_ACTION 152
#define CONNACK_V3_NOT_AUTHORISED 5
#define CONNACK_V5_NOT_AUTHORISED 135

static ft_plugin_env env;
static ft_mqtt pub; /* the service publisher */
static char session_file[PATH_MAX]; /* the plugin's, where the test can read it */

static int setup(void **state)
{
    char extra[PATH_MAX + 512], dir[PATH_MAX], tun[1024];
    const char *tunables;

    (void)state;
    if (ft_shared_dir(dir, "sessions-XXXXXX") != 0 ||
        snprintf(session_file, sizeof(session_file), "%.*s/feedpush-sessions", PATH_MAX - 32,
                 dir) >= (int)sizeof(session_file))
        return -1;
    snprintf(extra, sizeof(extra),
             "plugin_opt_session_max_lifetime %d\n"
             "plugin_opt_max_sessions_per_user %d\n"
             "plugin_opt_session_file %s\n"
             "plugin_opt_session_save_interval 1\n"
             "max_queued_messages %d\n"
             "persistence true\n"
             "persistence_location ./\n"
             "autosave_interval 1\n",
             LIFETIME_S, SESSIONS_CAP, session_file, QUEUE_CAP);
    /* For test_expiry's memory check: the broker's malloc (glibc) keeps
     * what it freed instead of giving the heap's top back now and then
     * (a run measured 400 KiB less after one round than after the next),
     * and has one arena for all threads, so its resident memory after a
     * round is the most it ever held. Brokers of this test inherit it. */
    tunables = getenv("GLIBC_TUNABLES");
    snprintf(tun, sizeof(tun),
             "%s%sglibc.malloc.trim_threshold=1073741824:glibc.malloc.arena_max=1",
             tunables != NULL ? tunables : "", tunables != NULL && tunables[0] != '\0' ? ":" : "");
    setenv("GLIBC_TUNABLES", tun, 1);
    return ft_plugin_env_start(&env, "n1", extra);
}

static int teardown(void **state)
{
    (void)state;
    ft_mqtt_close(&pub);
    return ft_plugin_env_stop(&env);
}

/* (Re)connects the service publisher. */
static void publisher_open(void)
{
    char *t = ft_plugin_env_token_now(&env, "bridge", FP_ROLE_SERVICE);

    ft_mqtt_close(&pub);
    assert_int_equal(ft_mqtt_connect(&pub, env.mosq.port, "feed-bridge-n1", "bridge", t, 5, 5000),
                     0);
    free(t);
}

/* Publishes "<tag><i>" for i in [first, last] to feed/<user>, each acked. */
static void publish_range(const char *user, const char *tag, int first, int last)
{
    char topic[96], payload[64];
    int i, rc;

    if (pub.m == NULL || pub.disconnected)
        publisher_open();
    snprintf(topic, sizeof(topic), "feed/%s", user);
    for (i = first; i <= last; i++) {
        snprintf(payload, sizeof(payload), "%s%d", tag, i);
        rc = ft_mqtt_publish(&pub, topic, payload, false, 5000);
        /* 16: no subscriber matched, which the offline cases must not see. */
        assert_int_equal(rc, 0);
    }
}

/* Connects user with client_id (a fresh token), session flags as given. */
static int connect_on(ft_plugin_env *e, ft_mqtt *c, const char *user, const char *client_id,
                      int protocol, bool clean, uint32_t expiry)
{
    char *t = ft_plugin_env_token_now(e, user, FP_ROLE_USER);
    int rc =
        ft_mqtt_connect_session(c, e->mosq.port, client_id, user, t, protocol, clean, expiry, 5000);

    free(t);
    return rc;
}

/* connect_on the suite's broker. */
static int connect_as(ft_mqtt *c, const char *user, const char *client_id, int protocol, bool clean,
                      uint32_t expiry)
{
    return connect_on(&env, c, user, client_id, protocol, clean, expiry);
}

/* A persistent session of user, subscribed to its feed, then left. */
static void leave_session(const char *user, const char *client_id, int protocol)
{
    char topic[96];
    ft_mqtt c;

    assert_int_equal(connect_as(&c, user, client_id, protocol, false, 3600), 0);
    snprintf(topic, sizeof(topic), "feed/%s", user);
    assert_int_equal(ft_mqtt_subscribe(&c, topic, 5000), 1);
    ft_mqtt_close(&c);
}

static long long redis_int(const char *fmt, const char *a, const char *b)
{
    return ft_redis_once_int(env.redis.port, fmt, a, b);
}

/* Waits up to 3 s until SISMEMBER key user == want. */
static bool member_wait(const char *key, const char *user, long long want)
{
    int64_t end = fp_time_mono_ms() + 3000;

    while (redis_int("SISMEMBER %s %s", key, user) != want) {
        if (fp_time_mono_ms() >= end)
            return false;
        ft_sleep_ms(20);
    }
    return true;
}

/* Reconnects client_id and expects exactly tag<first..last>, in order,
 * and nothing more within half a second. */
static void expect_queued(const char *user, const char *client_id, int protocol, const char *tag,
                          int first, int last)
{
    int n = last - first + 1, i;
    char want[64];
    ft_mqtt c;

    assert_int_equal(connect_as(&c, user, client_id, protocol, false, 3600), 0);
    assert_true(c.session_present);
    assert_int_equal(ft_mqtt_wait_messages(&c, n, 5000), n);
    ft_mqtt_pump(&c, 500);
    assert_int_equal(c.received, n);
    for (i = 0; i < n; i++) {
        snprintf(want, sizeof(want), "%s%d", tag, first + i);
        assert_string_equal(c.payloads[i], want);
    }
    ft_mqtt_close(&c);
}

/* 3.1.1 clean session off and MQTT 5 with an owned id: what was published
 * while away arrives on reconnect, once, in order; sessions:<node> lists
 * the user while it is away, online:<node> does not. */
static void test_offline_queue(void **state)
{
    (void)state;
    leave_session("alice", "alice:phone", 4);
    assert_true(member_wait(HELD, "alice", 1));
    assert_true(member_wait(ONLINE, "alice", 0));
    publish_range("alice", "a", 1, 4);
    expect_queued("alice", "alice:phone", 4, "a", 1, 4);

    leave_session("alice", "alice:tablet", 5);
    publish_range("alice", "b", 1, 3);
    expect_queued("alice", "alice:tablet", 5, "b", 1, 3);
    /* The phone's session got b1..b3 too while it was away. */
    expect_queued("alice", "alice:phone", 4, "b", 1, 3);
}

/* "<user>:<name>" is the user's alone, connected or not; a persistent
 * session needs such an id. The owner then gets its queue intact. */
static void test_owner(void **state)
{
    ft_mqtt c;

    (void)state;
    leave_session("carol", "carol:phone", 4);
    publish_range("carol", "c", 1, 2);
    assert_int_equal(connect_as(&c, "dave", "carol:phone", 4, false, 0), CONNACK_V3_NOT_AUTHORISED);
    ft_mqtt_close(&c);
    assert_int_equal(connect_as(&c, "dave", "carol:phone", 4, true, 0), CONNACK_V3_NOT_AUTHORISED);
    ft_mqtt_close(&c);
    assert_int_equal(connect_as(&c, "dave", "carol:phone", 5, true, 0), CONNACK_V5_NOT_AUTHORISED);
    ft_mqtt_close(&c);
    assert_int_equal(connect_as(&c, "dave", "dave-phone", 4, false, 0), CONNACK_V3_NOT_AUTHORISED);
    ft_mqtt_close(&c);
    /* Clean sessions with ids of any form work as before. */
    assert_int_equal(connect_as(&c, "dave", "dave-phone", 4, true, 0), 0);
    ft_mqtt_close(&c);
    expect_queued("carol", "carol:phone", 4, "c", 1, 2);
}

/* At most SESSIONS_CAP persistent sessions per user and node; resuming
 * one is not a new one, and clean sessions do not count. */
static void test_session_cap(void **state)
{
    ft_mqtt c;

    (void)state;
    leave_session("erin", "erin:a", 4);
    leave_session("erin", "erin:b", 5);
    assert_int_equal(connect_as(&c, "erin", "erin:c", 4, false, 0), CONNACK_V3_NOT_AUTHORISED);
    ft_mqtt_close(&c);
    assert_int_equal(connect_as(&c, "erin", "erin:c", 5, true, 60), CONNACK_V5_NOT_AUTHORISED);
    ft_mqtt_close(&c);
    assert_int_equal(connect_as(&c, "erin", "erin:a", 4, false, 0), 0);
    assert_true(c.session_present);
    ft_mqtt_close(&c);
    assert_int_equal(connect_as(&c, "erin", "erin-web", 4, true, 0), 0);
    ft_mqtt_close(&c);
}

/* The broker queues at most max_queued_messages per session: the first
 * ones stay, later ones are dropped. */
static void test_queue_cap(void **state)
{
    (void)state;
    leave_session("frank", "frank:phone", 4);
    publish_range("frank", "f", 1, QUEUE_CAP + 3);
    expect_queued("frank", "frank:phone", 4, "f", 1, QUEUE_CAP);
}

/* A kicked MQTT 5 client is told why: DISCONNECT 0x98 (Administrative
 * action) for token expiry, revocation and takeover alike. */
static void test_kick_reasons(void **state)
{
    int64_t now = (int64_t)time(NULL);
    ft_mqtt c, d;
    char *t;

    (void)state;
    /* now + 3: now is whole seconds, and the connect needs some of it. */
    t = ft_plugin_env_token(&env, "gus", now, now + 3, FP_ROLE_USER);
    assert_int_equal(
        ft_mqtt_connect_session(&c, env.mosq.port, "gus:phone", "gus", t, 5, false, 60, 5000), 0);
    free(t);
    assert_true(ft_mqtt_wait_closed(&c, 6000) >= 0);
    assert_int_equal(c.disconnect_rc, MQTT_RC_ADMINISTRATIVE_ACTION);
    ft_mqtt_close(&c);

    assert_int_equal(connect_as(&c, "gus", "gus:phone", 5, false, 60), 0);
    assert_int_equal(connect_as(&d, "gus", "gus:phone", 5, false, 60), 0);
    assert_true(d.session_present);
    assert_true(ft_mqtt_wait_closed(&c, 3000) >= 0);
    assert_int_equal(c.disconnect_rc, MQTT_RC_ADMINISTRATIVE_ACTION);
    ft_mqtt_close(&c);

    /* d's token is newer than now: revoke at the current second. */
    now = (int64_t)time(NULL);
    ft_redis_once_int(env.redis.port, "SET revoked:gus %lld", (long long)now);
    assert_int_equal(
        ft_redis_once_int(env.redis.port, "PUBLISH revoked %s%lld", "gus ", (long long)now), 1);
    assert_true(ft_mqtt_wait_closed(&d, 3000) >= 0);
    assert_int_equal(d.disconnect_rc, MQTT_RC_ADMINISTRATIVE_ACTION);
    ft_mqtt_close(&d);
}

/* A TCP connection to the broker on port that sends nothing: its fd. */
static int raw_connect(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/*
 * An MQTT 5 session with an owned id and session expiry 0 ends with its
 * connection, but the plugin cannot see the expiry and keeps a record as
 * for a held one. When the client connects again with that id, the
 * record is dropped with one line: at that connect (the new connection
 * reuses the old one's address, as glibc's malloc often has it) or at the
 * next tick (under ASan, which never reuses it soon). Before, the record
 * stayed until some connection happened to reuse the address. A held
 * session taken over the same way is ended by the broker and is not
 * reported; ticks are known to have run once a short token is kicked.
 */
static void test_session_ended(void **state)
{
    long from = ft_plugin_env_log_size(&env);
    int64_t now;
    ft_mqtt c, d;
    char *t;
    int raw;

    (void)state;
    leave_session("gwen", "gwen:kept", 5);
    assert_int_equal(connect_as(&c, "gwen", "gwen:kept", 5, false, 3600), 0);
    assert_true(c.session_present);
    ft_mqtt_close(&c);
    assert_int_equal(connect_as(&c, "gwen", "gwen:gone", 5, true, 0), 0);
    ft_mqtt_close(&c);
    /* A connection that sends no CONNECT most likely takes the freed
     * context's address (glibc hands the last freed block out first), so
     * the reconnect lands elsewhere and leaves the record to the tick. */
    raw = raw_connect(env.mosq.port);
    assert_int_equal(connect_as(&c, "gwen", "gwen:gone", 5, true, 0), 0);
    assert_false(c.session_present);
    assert_true(ft_plugin_env_log_wait(
        &env, from, "session \"gwen:gone\" of gwen is no longer in the broker", 3000));

    /* c stays: once it goes, its own record is the next one dropped. */
    now = (int64_t)time(NULL);
    t = ft_plugin_env_token(&env, "hal", now, now + 3, FP_ROLE_USER);
    assert_int_equal(
        ft_mqtt_connect_session(&d, env.mosq.port, "hal-web", "hal", t, 4, true, 0, 5000), 0);
    free(t);
    assert_true(ft_plugin_env_log_wait(&env, from, "disconnecting client \"hal-web\"", 6000));
    ft_mqtt_close(&d);
    assert_int_equal(
        ft_plugin_env_log_count(&env, from, "session \"gwen:gone\" of gwen is no longer"), 1);
    assert_int_equal(
        ft_plugin_env_log_count(&env, from, "session \"gwen:kept\" of gwen is no longer"), 0);
    assert_true(member_wait(HELD, "gwen", 1));
    ft_mqtt_close(&c);
    close(raw);
}

/* The broker's anonymous resident memory in KiB (RssAnon: heap, thread
 * arenas, stacks), or -1. Not VmRSS: that also counts the pages of the
 * broker's libraries that happen to be in memory, which come and go with
 * the page cache (a CI run under load saw VmRSS 390 KiB apart between two
 * rounds that left the same heap); a leak grows anonymous memory only. */
static long broker_anon_kib(void)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)env.mosq.pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "RssAnon: %ld", &kib) == 1)
            break;
    }
    fclose(f);
    return kib;
}

/* How many records of the session file belong to an expiry user (x<n>),
 * or -1 if the file cannot be read. The plugin writes the file from its
 * own table, so this counts the records it still holds in memory. */
static int file_expiry_records(void)
{
    char line[512], sub[64];
    int n = 0;
    FILE *f = fopen(session_file, "r");

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "%*s %63s", sub) == 1 && sub[0] == 'x' && sub[1] >= '0' && sub[1] <= '9')
            n++;
    }
    fclose(f);
    return n;
}

#define EXPIRY_SESSIONS 1000

/* EXPIRY_SESSIONS MQTT 5 sessions (x<i>:d, session expiry = the plugin's
 * lifetime), opened EXPIRY_BATCH at a time (libmosquitto's select() loop
 * takes descriptors below 1024 only), each batch listed in sessions:<node>
 * while connected and then left, and all waited out: sessions:<node> holds
 * none of them, and the broker has let go of them too. A lifetime starts
 * when its session is left, so how long the opening takes does not
 * matter. */
#define EXPIRY_BATCH 100

/* True once every x<first>..x<first + EXPIRY_BATCH - 1> is in HELD. */
static bool batch_listed(int first)
{
    char user[32];
    int i;

    for (i = first; i < first + EXPIRY_BATCH; i++) {
        snprintf(user, sizeof(user), "x%d", i);
        if (redis_int("SISMEMBER %s %s", HELD, user) != 1)
            return false;
    }
    return true;
}

static void expiry_round(int round)
{
    char user[32], id[40], topic[48];
    ft_mqtt *c = calloc(EXPIRY_BATCH, sizeof(*c));
    int64_t end;
    int i, k;

    assert_non_null(c);
    if (pub.m == NULL || pub.disconnected)
        publisher_open();
    for (i = 0; i < EXPIRY_SESSIONS; i += EXPIRY_BATCH) {
        for (k = 0; k < EXPIRY_BATCH; k++) {
            snprintf(user, sizeof(user), "x%d", i + k);
            snprintf(id, sizeof(id), "x%d:d", i + k);
            snprintf(topic, sizeof(topic), "feed/%s", user);
            assert_int_equal(connect_as(&c[k], user, id, 5, false, LIFETIME_S), 0);
            assert_int_equal(ft_mqtt_subscribe(&c[k], topic, 5000), 1);
        }
        /* Presence is written by the plugin's Redis thread, a moment later. */
        end = fp_time_mono_ms() + 5000;
        while (!batch_listed(i)) {
            if (fp_time_mono_ms() >= end)
                fail_msg("round %d: sessions x%d.. not all listed in " HELD, round, i);
            ft_sleep_ms(20);
        }
        /* The first batch, still connected (so none of it can expire):
         * the plugin's save has it, so the file's check below has
         * something to see go. */
        end = fp_time_mono_ms() + 5000;
        while (i == 0 && file_expiry_records() < EXPIRY_BATCH) {
            if (fp_time_mono_ms() >= end)
                fail_msg("round %d: the session file has %d of the first %d records", round,
                         file_expiry_records(), EXPIRY_BATCH);
            ft_sleep_ms(100);
        }
        for (k = 0; k < EXPIRY_BATCH; k++)
            ft_mqtt_close(&c[k]);
    }
    free(c);
    /* The lifetime, the plugin's sweep period and the broker's
     * once-a-second check, with room for a loaded machine. */
    end = fp_time_mono_ms() + (LIFETIME_S + 10) * 1000;
    while (redis_int("SISMEMBER %s %s", HELD, "x0") != 0 ||
           redis_int("SISMEMBER %s %s", HELD, "x999") != 0) {
        if (fp_time_mono_ms() >= end)
            fail_msg("round %d: sessions still listed 10 s after their lifetime", round);
        ft_sleep_ms(100);
    }
    for (i = 0; i < EXPIRY_SESSIONS; i += 97) {
        snprintf(user, sizeof(user), "x%d", i);
        assert_int_equal(redis_int("SISMEMBER %s %s", HELD, user), 0);
    }
    /* The plugin's own table lets them go too: its next save (every
     * second here) writes none of them. */
    end = fp_time_mono_ms() + 5000;
    while (file_expiry_records() != 0) {
        if (fp_time_mono_ms() >= end)
            fail_msg("round %d: the session file has %d expired records 5 s later (-1: "
                     "unreadable)",
                     round, file_expiry_records());
        ft_sleep_ms(100);
    }
    /* The broker frees a session in its once-a-second expiry check, which
     * may run a moment after the plugin let it go; x999's was the last to
     * be left. A publish matching no session answers 16; until then the
     * plugin already refuses it into the session. */
    end = fp_time_mono_ms() + 5000;
    while (ft_mqtt_publish(&pub, "feed/x999", "late", false, 5000) != 16) {
        if (fp_time_mono_ms() >= end)
            fail_msg("round %d: the broker still holds x999's session 5 s after the plugin", round);
        ft_sleep_ms(100);
    }
}

/* After the lifetime: nothing is queued (a resume finds no session),
 * presence is gone, the plugin's record too, and a third round leaves the
 * broker's memory where the second left it. */
static void test_expiry(void **state)
{
    long rss1, rss2;
    ft_mqtt c;

    (void)state;
    expiry_round(1);
    /* Past its lifetime a publish to x5 is queued nowhere. */
    assert_int_equal(ft_mqtt_publish(&pub, "feed/x5", "late", false, 5000), 16);
    assert_int_equal(connect_as(&c, "x5", "x5:d", 5, false, LIFETIME_S), 0);
    assert_false(c.session_present);
    ft_mqtt_pump(&c, 300);
    assert_int_equal(c.received, 0);
    ft_mqtt_close(&c);
    /* Round 1 warms up what the broker keeps once made (a thread arena
     * of malloc's came in round 2 in some runs); rounds 2 and 3 then
     * leave the same memory. */
    expiry_round(2);
    rss1 = broker_anon_kib();
    expiry_round(3);
    rss2 = broker_anon_kib();
    print_message("broker RssAnon after round 2: %ld KiB, after round 3: %ld KiB\n", rss1, rss2);
    assert_true(rss1 > 0 && rss2 > 0);
    /* Under the sanitizers (the plugin's runtimes preloaded into the
     * broker) freed memory sits in ASan's quarantine, so RSS says nothing
     * there; LeakSanitizer checks the plugin at the broker's stop instead.
     * Without them, a leak of 256 bytes per session grows it by about
     * 300 KiB (360 in a run with such a leak put in). */
    if (getenv("FP_MOSQUITTO_PRELOAD") == NULL || getenv("FP_MOSQUITTO_PRELOAD")[0] == '\0')
        assert_true(rss2 - rss1 < 250);
    assert_false(ft_plugin_env_sanitizer_report(&env));
}

/* A graceful restart with persistence on: the queue survives, and the
 * state file brings the routing presence and the owner back, so what is
 * published after the restart and before the reconnect is queued too;
 * also for a session whose client id is longer than a line buffer. */
static void test_restart(void **state)
{
    char long_id[5 + 2000 + 1];
    ft_mqtt c;

    (void)state;
    /* kira's only session has a client id of 2,005 bytes. */
    memcpy(long_id, "kira:", 5);
    memset(long_id + 5, 'x', 2000);
    long_id[5 + 2000] = '\0';
    leave_session("hana", "hana:phone", 4);
    leave_session("kira", long_id, 4);
    publish_range("hana", "h", 1, 2);
    ft_mqtt_close(&pub);
    assert_int_equal(ft_server_restart(&env.mosq), 0);
    assert_true(member_wait(HELD, "hana", 1));
    assert_true(member_wait(HELD, "kira", 1));
    publish_range("hana", "h", 3, 3);
    publish_range("kira", "k", 1, 1);
    assert_int_equal(connect_as(&c, "ivan", "hana:phone", 4, false, 0), CONNACK_V3_NOT_AUTHORISED);
    ft_mqtt_close(&c);
    expect_queued("hana", "hana:phone", 4, "h", 1, 3);
    expect_queued("kira", long_id, 4, "k", 1, 1);
}

/* A crash: the broker killed (SIGKILL) while a persistent session is
 * connected, after its autosave and the plugin's periodic save (every
 * second here) have both seen the session. The restarted broker restores
 * it, and the plugin its record: sessions:<node> lists the user, the id is
 * still the user's, and what is published before the device is back is
 * queued for it and delivered on reconnect. */
static void test_crash(void **state)
{
    long subscribed, restarted;
    ft_mqtt c, other;

    (void)state;
    assert_int_equal(connect_as(&c, "kira", "kira:phone", 5, false, 3600), 0);
    assert_int_equal(ft_mqtt_subscribe(&c, "feed/kira", 5000), 1);
    subscribed = ft_plugin_env_log_size(&env);
    /* The plugin's save: "kira:phone" in hex, connected (0). */
    assert_true(ft_file_line_wait(session_file, "6b6972613a70686f6e65 kira 0\n", 10000));
    /* The broker logs a save as it begins it, so a second line is when
     * the first save after the subscription is on disk. */
    assert_true(ft_plugin_env_log_wait_n(&env, subscribed, "Saving in-memory database", 2, 10000) >=
                2);
    ft_mqtt_close(&pub);
    assert_int_equal(ft_server_kill(&env.mosq), 0);
    ft_mqtt_close(&c);
    restarted = ft_plugin_env_log_size(&env);
    assert_int_equal(ft_server_restart(&env.mosq), 0);
    /* Redis still lists kira from before the kill: the record must come
     * from the file, loaded at the start. */
    assert_true(ft_plugin_env_log_wait(&env, restarted, "persistent sessions loaded from", 5000));
    assert_int_equal(
        ft_plugin_env_log_count(&env, restarted, "feed_auth: 0 persistent sessions loaded"), 0);
    assert_true(member_wait(HELD, "kira", 1));
    publish_range("kira", "k", 1, 3);
    assert_int_equal(connect_as(&other, "ivan", "kira:phone", 4, false, 0),
                     CONNACK_V3_NOT_AUTHORISED);
    ft_mqtt_close(&other);
    expect_queued("kira", "kira:phone", 5, "k", 1, 3);
}

static ft_plugin_env e2; /* the broker of the tests below that need their own */
static bool e2_up;

static int e2_stop(void **state)
{
    (void)state;
    if (!e2_up)
        return 0;
    e2_up = false;
    return ft_plugin_env_stop(&e2);
}

/* Reads from fd into buf until it holds end (or cap - 1 bytes), waiting
 * at most timeout_ms in all. Returns the bytes read, -1 on error. */
static int read_until(int fd, char *buf, size_t cap, const char *end, int timeout_ms)
{
    int64_t until = fp_time_mono_ms() + timeout_ms;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    size_t n = 0;
    ssize_t got;

    buf[0] = '\0';
    while (n + 1 < cap && strstr(buf, end) == NULL) {
        if (poll(&p, 1, (int)(until - fp_time_mono_ms())) <= 0)
            return -1;
        got = read(fd, buf + n, cap - 1 - n);
        if (got <= 0)
            return -1;
        n += (size_t)got;
        buf[n] = '\0';
    }
    return (int)n;
}

/* A WebSocket connection to the broker's websockets listener, upgraded
 * (subprotocol mqtt): its fd. */
static int ws_open(int port)
{
    static const char req[] =
        "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";
    int fd = raw_connect(port);
    char head[1024];

    assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    assert_true(read_until(fd, head, sizeof(head), "\r\n\r\n", 3000) > 0);
    assert_non_null(strstr(head, " 101 "));
    return fd;
}

/* Appends an MQTT string (length, bytes) at p. Returns the end. */
static unsigned char *mqtt_str(unsigned char *p, const char *s)
{
    size_t n = strlen(s);

    *p++ = (unsigned char)(n >> 8);
    *p++ = (unsigned char)n;
    memcpy(p, s, n);
    return p + n;
}

/* Sends an MQTT 3.1.1 CONNECT (clean session) as one masked WebSocket
 * binary frame. */
static void ws_connect_packet(int fd, const char *client_id, const char *user, const char *token)
{
    static const unsigned char head[] = {0, 4, 'M', 'Q', 'T', 'T', 4, 0xC2, 0, 60};
    static const unsigned char mask[4] = {0x11, 0x22, 0x33, 0x44};
    unsigned char body[2048], pkt[2100], frame[2200], *p = body;
    size_t len, n = 0, i, f = 0;

    assert_true(strlen(client_id) + strlen(user) + strlen(token) + 16 < sizeof(body));
    memcpy(p, head, sizeof(head));
    p = mqtt_str(mqtt_str(mqtt_str(p + sizeof(head), client_id), user), token);
    len = (size_t)(p - body);
    pkt[n++] = 0x10;
    do { /* remaining length: 7 bits a byte */
        pkt[n] = (unsigned char)(len & 0x7f);
        len >>= 7;
        pkt[n++] |= len > 0 ? 0x80 : 0;
    } while (len > 0);
    memcpy(pkt + n, body, (size_t)(p - body));
    n += (size_t)(p - body);
    frame[f++] = 0x82; /* FIN, binary */
    if (n < 126) {
        frame[f++] = (unsigned char)(0x80 | n);
    } else {
        frame[f++] = 0x80 | 126;
        frame[f++] = (unsigned char)(n >> 8);
        frame[f++] = (unsigned char)n;
    }
    memcpy(frame + f, mask, 4);
    f += 4;
    for (i = 0; i < n; i++)
        frame[f++] = pkt[i] ^ mask[i % 4];
    assert_int_equal(write(fd, frame, f), (ssize_t)f);
}

/* The return code of the CONNACK that comes on fd (a WebSocket frame),
 * -1 when none comes within timeout_ms (or the connection closes). */
static int ws_connack(int fd, int timeout_ms)
{
    int64_t until = fp_time_mono_ms() + timeout_ms;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    unsigned char buf[16];
    size_t n = 0;
    ssize_t got;

    while (n < 6) {
        if (poll(&p, 1, (int)(until - fp_time_mono_ms())) <= 0)
            return -1;
        got = read(fd, buf + n, sizeof(buf) - n);
        if (got <= 0)
            return -1;
        n += (size_t)got;
    }
    /* 0x82 4 | 0x20 2 flags rc */
    if (buf[0] != 0x82 || buf[1] != 4 || buf[2] != 0x20 || buf[3] != 2)
        return -1;
    return buf[5];
}

/* Waits up to 3 s until process pid is stopped (state T). */
static bool process_stopped(pid_t pid)
{
    char path[64], line[512], *st;
    int k;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    for (k = 0; k < 300; k++) {
        f = fopen(path, "r");
        if (f == NULL)
            return false;
        st = fgets(line, sizeof(line), f) != NULL ? strrchr(line, ')') : NULL;
        fclose(f);
        if (st != NULL && st[1] == ' ' && st[2] == 'T')
            return true;
        ft_sleep_ms(10);
    }
    return false;
}

/* SISMEMBER key user on e2's Redis. */
static long long e2_member(const char *key, const char *user)
{
    return ft_redis_once_int(e2.redis.port, "SISMEMBER %s %s", key, user);
}

/* A session on e2 of user (role) with a token valid for ttl seconds from
 * now, subscribed to its feed when a user and subscribe, then left: MQTT
 * protocol, clean session or start off, session expiry (MQTT 5). Returns
 * the token's exp. */
static int64_t e2_leave(const char *user, const char *client_id, fp_role role, int64_t ttl,
                        int protocol, uint32_t expiry, bool subscribe)
{
    int64_t now = (int64_t)time(NULL);
    char *t = ft_plugin_env_token(&e2, user, now, now + ttl, role);
    char topic[96];
    ft_mqtt c;

    assert_int_equal(ft_mqtt_connect_session(&c, e2.mosq.port, client_id, user, t, protocol, false,
                                             expiry, 5000),
                     0);
    free(t);
    snprintf(topic, sizeof(topic), "feed/%s", user);
    if (role == FP_ROLE_USER && subscribe)
        assert_int_equal(ft_mqtt_subscribe(&c, topic, 5000), 1);
    ft_mqtt_close(&c);
    return now + ttl;
}

/* Reloads e2 (SIGHUP), then a round trip through its loop, so the reload
 * is behind it: a service connection (into *p) publishes "r1" to
 * feed/jo, which live (jo's) receives. */
static void e2_reload(ft_mqtt *p, ft_mqtt *live)
{
    char *t;

    assert_int_equal(kill((pid_t)e2.mosq.pid, SIGHUP), 0);
    assert_true(ft_plugin_env_log_wait(&e2, 0, "feed_auth: configuration reload", 5000));
    t = ft_plugin_env_token_now(&e2, "bridge", FP_ROLE_SERVICE);
    assert_int_equal(ft_mqtt_connect(p, e2.mosq.port, "feed-bridge-n2", "bridge", t, 5, 5000), 0);
    free(t);
    assert_int_equal(ft_mqtt_publish(p, "feed/jo", "r1", false, 5000), 0);
    assert_int_equal(ft_mqtt_wait_messages(live, 1, 5000), 1);
}

/*
 * A configuration reload (SIGHUP): mosquitto asks the plugin again about
 * every client it has, connected or not, and disconnects those refused.
 * Nothing changes: a connected client stays, still online; an offline
 * session whose token has run out since keeps its place in
 * sessions:<node> and its queue, and does not show online. Before, the
 * offline session was refused (the broker then ended it a second time,
 * and its deliveries were refused from then on), and every connected
 * client's record was dropped and made again. On a broker of its own:
 * the suite's sessions last 3 s, less than a token takes to run out.
 */
static void test_reload(void **state)
{
    char got[16];
    ft_mqtt live, c, p;
    int64_t exp;
    int i;

    (void)state;
    e2_up = true;
    assert_int_equal(ft_plugin_env_start(&e2, "n2", NULL), 0);
    exp = e2_leave("ivy", "ivy:phone", FP_ROLE_USER, 3, 4, 0, true);
    assert_int_equal(connect_on(&e2, &live, "jo", "jo-web", 4, true, 0), 0);
    assert_int_equal(ft_mqtt_subscribe(&live, "feed/jo", 5000), 1);
    for (i = 0;
         i < 150 && (e2_member("sessions:n2", "ivy") != 1 || e2_member("online:n2", "jo") != 1);
         i++)
        ft_sleep_ms(20);
    assert_int_equal(e2_member("sessions:n2", "ivy"), 1);
    assert_int_equal(e2_member("online:n2", "jo"), 1);
    /* ivy's token has run out: exp has no leeway. */
    while ((int64_t)time(NULL) < exp)
        ft_sleep_ms(100);

    e2_reload(&p, &live);
    assert_false(live.disconnected);
    assert_int_equal(ft_plugin_env_log_count(&e2, 0, "refused client"), 0);
    assert_int_equal(ft_plugin_env_log_count(&e2, 0, "is no longer in the broker"), 0);
    /* Presence as it was (given the Redis thread time to write a change). */
    ft_sleep_ms(500);
    assert_int_equal(e2_member("online:n2", "jo"), 1);
    assert_int_equal(e2_member("online:n2", "ivy"), 0);
    assert_int_equal(e2_member("sessions:n2", "ivy"), 1);
    /* ivy's queue still takes her feed. */
    for (i = 1; i <= 2; i++) {
        snprintf(got, sizeof(got), "v%d", i);
        assert_int_equal(ft_mqtt_publish(&p, "feed/ivy", got, false, 5000), 0);
    }
    assert_int_equal(connect_on(&e2, &c, "ivy", "ivy:phone", 4, false, 0), 0);
    assert_true(c.session_present);
    assert_int_equal(ft_mqtt_wait_messages(&c, 2, 5000), 2);
    assert_string_equal(c.payloads[0], "v1");
    assert_string_equal(c.payloads[1], "v2");
    ft_mqtt_close(&c);
    ft_mqtt_close(&p);
    ft_mqtt_close(&live);

    /* The broker serves its WebSocket connections between a reload's
     * checks and its next tick: a CONNECT read then is a connect like any
     * other, refused without a valid token. Each round stops the broker,
     * queues a CONNECT and the SIGHUP, and lets it go on: woken from its
     * wait by the signal, it reloads, then reads the CONNECT (unless it
     * was stopped elsewhere in its loop: hence the rounds). */
    for (i = 0; i < 6; i++) {
        int ws = ws_open(e2.mosq.ws_port), rc;

        assert_int_equal(kill((pid_t)e2.mosq.pid, SIGSTOP), 0);
        assert_true(process_stopped((pid_t)e2.mosq.pid));
        ws_connect_packet(ws, "mallory-ws", "ivy", "not-a-token");
        assert_int_equal(kill((pid_t)e2.mosq.pid, SIGHUP), 0);
        assert_int_equal(kill((pid_t)e2.mosq.pid, SIGCONT), 0);
        rc = ws_connack(ws, 5000);
        close(ws);
        if (rc != CONNACK_V3_NOT_AUTHORISED)
            fail_msg("round %d: a CONNECT with a bad token during a reload got CONNACK %d", i, rc);
        assert_true(ft_plugin_env_log_wait_n(&e2, 0, "feed_auth: configuration reload", i + 2,
                                             5000) >= i + 2);
    }
}

/*
 * A reload and sessions the plugin does not hold: MQTT 5 ones with a
 * session expiry under an id that is not "<sub>:<name>" (kim's and lu's
 * with a subscription, mo's without), and a service's MQTT 3.1.1 one
 * with clean session off; and more of them than the plugin remembers of
 * one user (ned's). The broker keeps them, and asks about them again
 * with their last token. All pass as they are: kim's, mo's, ned's and
 * the service's tokens have run out since (before, they were refused,
 * and mosquitto then ended their ended connections a second time, listing
 * the sessions for expiry twice: a freed context left on that list once
 * a session went), lu's has not (before, she was taken for a connect and
 * showed online with no connection). Then lu's session expires in the
 * broker, which goes on serving: lu connects again, a new session. Each
 * token's time runs from its own connect, so a slow setup cannot let one
 * run out before its connect.
 */
static void test_reload_unheld(void **state)
{
    int64_t last = 0, lu_left, exp;
    ft_mqtt live, c, p;
    char id[16];
    int i;

    (void)state;
    e2_up = true;
    assert_int_equal(ft_plugin_env_start(&e2, "n2", NULL), 0);
    assert_int_equal(connect_on(&e2, &live, "jo", "jo-web", 4, true, 0), 0);
    assert_int_equal(ft_mqtt_subscribe(&live, "feed/jo", 5000), 1);
    /* Tokens of 3 s (at least 2 from a whole-second now); sessions of
     * 15 s, longer than the setup and that. */
    last = e2_leave("kim", "kim-dev", FP_ROLE_USER, 3, 5, 15, true);
    exp = e2_leave("mo", "mo-dev", FP_ROLE_USER, 3, 5, 15, false);
    last = exp > last ? exp : last;
    exp = e2_leave("bridge", "feed-bridge-old", FP_ROLE_SERVICE, 3, 4, 0, false);
    last = exp > last ? exp : last;
    /* ned ends 33 such sessions, one more than the plugin remembers of a
     * user (FA_ENDED_PER_USER): the first one's entry goes, and its
     * subscription alone tells the reload it is a kept session. */
    for (i = 0; i < 33; i++) {
        snprintf(id, sizeof(id), "ned-%d", i);
        exp = e2_leave("ned", id, FP_ROLE_USER, 3, 5, 15, true);
        last = exp > last ? exp : last;
    }
    /* lu last, with a session of 8 s: it outlasts the wait for the
     * others' tokens (3 s at most), and is over within the test. */
    e2_leave("lu", "lu-dev", FP_ROLE_USER, 120, 5, 8, true);
    lu_left = (int64_t)time(NULL);
    for (i = 0; i < 150 && e2_member("online:n2", "jo") != 1; i++)
        ft_sleep_ms(20);
    assert_int_equal(e2_member("online:n2", "jo"), 1);
    /* The tokens of kim, mo, ned and the service have run out: exp has
     * no leeway. */
    while ((int64_t)time(NULL) < last)
        ft_sleep_ms(100);

    e2_reload(&p, &live);
    assert_int_equal(ft_plugin_env_log_count(&e2, 0, "refused client"), 0);
    ft_sleep_ms(500); /* the Redis thread's time to write a change */
    assert_int_equal(e2_member("online:n2", "lu"), 0);
    assert_int_equal(e2_member("online:n2", "kim"), 0);

    /* lu's session is gone 8 s after it left (whole seconds: by 10 s),
     * through the broker's session expiry checks. */
    while ((int64_t)time(NULL) < lu_left + 10)
        ft_sleep_ms(100);
    assert_int_equal(ft_mqtt_publish(&p, "feed/jo", "r2", false, 5000), 0);
    assert_int_equal(ft_mqtt_wait_messages(&live, 2, 5000), 2);
    assert_int_equal(connect_on(&e2, &c, "lu", "lu-dev", 5, false, 8), 0);
    assert_false(c.session_present);
    assert_int_equal(ft_mqtt_subscribe(&c, "feed/lu", 5000), 1);
    assert_int_equal(ft_mqtt_publish(&p, "feed/lu", "l1", false, 5000), 0);
    assert_int_equal(ft_mqtt_wait_messages(&c, 1, 5000), 1);
    ft_mqtt_close(&c);
    ft_mqtt_close(&p);
    ft_mqtt_close(&live);
}

/* The periodic save into a directory that is not there: the failure is
 * logged once, however often the save is tried again, and once the
 * directory is made the next save works, says so, and holds every
 * session. */
static void test_save_failing(void **state)
{
    char dir[PATH_MAX], sub[PATH_MAX + 8], file[PATH_MAX + 24], extra[PATH_MAX + 96];
    ft_mqtt a, b;

    (void)state;
    assert_int_equal(ft_shared_dir(dir, "save-XXXXXX"), 0);
    snprintf(sub, sizeof(sub), "%s/state", dir);
    snprintf(file, sizeof(file), "%s/sessions", sub);
    snprintf(extra, sizeof(extra),
             "plugin_opt_session_file %s\nplugin_opt_session_save_interval 1\n", file);
    e2_up = true;
    assert_int_equal(ft_plugin_env_start(&e2, "n2", extra), 0);
    assert_int_equal(connect_on(&e2, &a, "lena", "lena:phone", 5, false, 3600), 0);
    assert_true(ft_plugin_env_log_wait(&e2, 0, "cannot write", 5000));
    assert_int_equal(connect_on(&e2, &b, "lena", "lena:tablet", 5, false, 3600), 0);
    /* Two more intervals: saves tried, and failed, without a word. */
    ft_sleep_ms(2500);
    assert_int_equal(ft_plugin_env_log_count(&e2, 0, "cannot write"), 1);
    assert_int_equal(ft_plugin_env_log_count(&e2, 0, "written again"), 0);
    assert_int_equal(mkdir(sub, 0777), 0);
    assert_int_equal(chmod(sub, 0777), 0);
    assert_true(ft_plugin_env_log_wait(&e2, 0, "written again", 5000));
    /* Client ids in hex: "lena:phone", "lena:tablet"; connected: 0. */
    assert_true(ft_file_has_line(file, "6c656e613a70686f6e65 lena 0\n"));
    assert_true(ft_file_has_line(file, "6c656e613a7461626c6574 lena 0\n"));
    assert_int_equal(ft_plugin_env_log_count(&e2, 0, "cannot write"), 1);
    ft_mqtt_close(&a);
    ft_mqtt_close(&b);
}

/*
 * A damaged session file: a malformed line between good records is
 * skipped alone (both records after it loaded, and their users listed in
 * sessions:<node>), with one warning. A file that is not a session file
 * stops the broker from starting, and is left as it was. Before, the load
 * stopped at the first bad line (the records after it were lost, and the
 * next save made that final), and a wrong file was ignored, then
 * overwritten by the first save.
 */
static void test_damaged_file(void **state)
{
    char dir[PATH_MAX], file[PATH_MAX + 16], extra[PATH_MAX + 96], failed[PATH_MAX + 64];
    long long until = (long long)time(NULL) + 3600;
    FILE *f;

    (void)state;
    assert_int_equal(ft_shared_dir(dir, "damaged-XXXXXX"), 0);
    snprintf(file, sizeof(file), "%s/sessions", dir);
    f = fopen(file, "w");
    assert_non_null(f);
    /* "mona:phone", "nico:phone" in hex. */
    fprintf(f,
            "feedpush-sessions 1\n6d6f6e613a70686f6e65 mona %lld\nzz not a record\n"
            "6e69636f3a70686f6e65 nico %lld\n",
            until, until);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(file, 0666), 0);
    snprintf(extra, sizeof(extra), "plugin_opt_session_file %s\n", file);
    e2_up = true;
    assert_int_equal(ft_plugin_env_start(&e2, "n3", extra), 0);
    assert_true(ft_plugin_env_log_wait(&e2, 0, "1 malformed lines skipped", 5000));
    assert_true(ft_plugin_env_log_wait(&e2, 0, "2 persistent sessions loaded", 5000));
    assert_int_equal(ft_redis_once_int(e2.redis.port, "SISMEMBER sessions:n3 %s", "mona"), 1);
    assert_int_equal(ft_redis_once_int(e2.redis.port, "SISMEMBER sessions:n3 %s", "nico"), 1);
    assert_int_equal(ft_server_stop(&e2.mosq), 0);

    f = fopen(file, "w");
    assert_non_null(f);
    fputs("not a session file\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(ft_server_restart(&e2.mosq), -1);
    snprintf(failed, sizeof(failed), "%s/mosquitto/mosquitto.log.failed-start-1", e2.mosq.dir);
    assert_int_equal(ft_log_count(failed, 0, "is not a session file"), 1);
    assert_true(ft_file_has_line(file, "not a session file\n"));
    assert_int_equal(unlink(file), 0);
    assert_int_equal(ft_server_restart(&e2.mosq), 0);
}

/*
 * A loaded session whose end is further than session_max_lifetime (a
 * file written with a longer one) lasts that long from the start, no
 * more; and the file is written anew, mode 0600, even where an old temp
 * file of another mode was left beside it.
 */
static void test_loaded_end_capped(void **state)
{
    char dir[PATH_MAX], file[PATH_MAX + 16], tmp[PATH_MAX + 32], extra[PATH_MAX + 160];
    char old_line[64];
    long long until = (long long)time(NULL) + 30 * 86400;
    int64_t give_up;
    struct stat st;
    FILE *f;

    (void)state;
    assert_int_equal(ft_shared_dir(dir, "capped-XXXXXX"), 0);
    snprintf(file, sizeof(file), "%s/sessions", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", file);
    f = fopen(file, "w");
    assert_non_null(f);
    /* "olga:phone" in hex, 30 days to go. */
    fprintf(f, "feedpush-sessions 1\n6f6c67613a70686f6e65 olga %lld\n", until);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(file, 0666), 0);
    f = fopen(tmp, "w");
    assert_non_null(f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(tmp, 0666), 0);
    snprintf(extra, sizeof(extra),
             "plugin_opt_session_file %s\nplugin_opt_session_max_lifetime 2\n"
             "plugin_opt_session_save_interval 1\n",
             file);
    e2_up = true;
    snprintf(old_line, sizeof(old_line), "6f6c67613a70686f6e65 olga %lld\n", until);
    assert_int_equal(ft_plugin_env_start(&e2, "n5", extra), 0);
    assert_true(ft_plugin_env_log_wait(&e2, 0, "1 persistent sessions loaded", 5000));
    assert_int_equal(ft_redis_once_int(e2.redis.port, "SISMEMBER sessions:n5 %s", "olga"), 1);
    /* Written again with the end brought in (its first save, about a
     * second after the start: the next comes only when the session
     * ends), as a new file of mode 0600, not through the temp file left
     * there. */
    give_up = fp_time_mono_ms() + 5000;
    while (ft_file_has_line(file, old_line) || stat(file, &st) != 0) {
        if (fp_time_mono_ms() > give_up)
            fail_msg("the session file was not written again");
        ft_sleep_ms(20);
    }
    assert_int_equal(st.st_mode & 0777, 0600);
    /* Ended after its 2 s, not 30 days. */
    give_up = fp_time_mono_ms() + 8000;
    while (ft_redis_once_int(e2.redis.port, "SISMEMBER sessions:n5 %s", "olga") != 0) {
        if (fp_time_mono_ms() > give_up)
            fail_msg("a loaded session outlived session_max_lifetime");
        ft_sleep_ms(100);
    }
}

/* clang-format off */
FT_MAIN(ft_mqtt_run_group, setup, teardown,
        cmocka_unit_test(test_offline_queue),
        cmocka_unit_test(test_owner),
        cmocka_unit_test(test_session_cap),
        cmocka_unit_test(test_queue_cap),
        cmocka_unit_test(test_kick_reasons),
        cmocka_unit_test(test_session_ended),
        cmocka_unit_test(test_restart),
        cmocka_unit_test(test_crash),
        cmocka_unit_test_teardown(test_save_failing, e2_stop),
        cmocka_unit_test_teardown(test_damaged_file, e2_stop),
        cmocka_unit_test_teardown(test_loaded_end_capped, e2_stop),
        cmocka_unit_test_teardown(test_reload, e2_stop),
        cmocka_unit_test_teardown(test_reload_unheld, e2_stop),
        cmocka_unit_test(test_expiry))
/* clang-format on */
