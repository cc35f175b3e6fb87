/*
 * feedctl against the whole stack: the README's terminal walkthrough as a
 * test. B listens to feed/B over MQTT (as mosquitto_sub would), feedctl
 * follows, posts, reads the feed and the ribbon, deletes and reads the
 * counters through feed-gateway; refusals exit 1 with the gateway's
 * error, usage errors exit 2. `dead-letters` lists, replays and purges
 * the run's feed.events.dead straight on RabbitMQ.
 */
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <cjson/cJSON.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "fp_jws.h"
#include "gateway_env.h"
#include "ft_main.h"

static ft_gateway_env env;

FT_FIXTURES(ft_gateway_env_start(&env, 0), ft_gateway_env_stop(&env))

/* Runs feedctl with first (n entries) and then the arguments of ap up to
 * a NULL, without the token variables of whoever runs the tests. */
static void feedctl_v(ft_run_result *r, const char *const *first, int n, va_list ap)
{
    const char *argv[32] = {getenv("FP_FEEDCTL")};
    int i;

    assert_non_null(argv[0]);
    for (i = 0; i < n; i++)
        argv[i + 1] = first[i];
    for (n++; n < 31; n++) {
        argv[n] = va_arg(ap, const char *);
        if (argv[n] == NULL)
            break;
    }
    argv[n] = NULL;
    unsetenv("FEEDPUSH_TOKEN");
    unsetenv("FEEDPUSH_JWT_SIGNING_KEY");
    if (ft_run(r, argv) != 0)
        fprintf(stderr, "feedctl %s %s ... -> %d: %s", argv[1] != NULL ? argv[1] : "",
                argv[1] != NULL && argv[2] != NULL ? argv[2] : "", r->status, r->err);
}

/* Runs feedctl --url <gateway> ARGS... (NULL-terminated). */
static void feedctl(ft_run_result *r, ...)
{
    const char *first[] = {"--url", env.url};
    va_list ap;

    va_start(ap, r);
    feedctl_v(r, first, 2, ap);
    va_end(ap);
}

/* Waits until an MQTT message whose payload contains needle arrived. */
static bool mqtt_got(ft_mqtt *m, const char *needle)
{
    int i;

    for (i = 0; i < 40; i++) {
        if (strstr(m->last_payload, needle) != NULL)
            return true;
        ft_mqtt_wait_messages(m, m->received + 1, 100);
    }
    return strstr(m->last_payload, needle) != NULL;
}

static void test_terminal_walkthrough(void **state)
{
    const char *key = env.b.p.secret_path;
    char *tok = ft_gateway_token(&env, "cb"), id[80] = "", keyed[80] = "";
    ft_mqtt m = {0};
    ft_run_result r;
    int i, json_status;
    bool json_down;

    (void)state;
    /* B listens like mosquitto_sub -t feed/cb. */
    assert_int_equal(ft_mqtt_connect(&m, env.b.p.mosq.port, NULL, "cb", tok, 4, 5000), 0);
    assert_int_equal(ft_mqtt_subscribe(&m, "feed/cb", 5000), 1);
    free(tok);

    feedctl(&r, "--key", key, "--as", "cb", "follow", "ca", NULL);
    assert_int_equal(r.status, 0);
    for (i = 0; i < 50; i++) {
        feedctl(&r, "--as", "cb", "--key", key, "--json", "feed", NULL);
        assert_int_equal(r.status, 0);
        if (ft_node_stat(&env.b, 1, "events_follow_created") >= 1)
            break;
        usleep(100000);
    }
    feedctl(&r, "--key", key, "--as", "ca", "post", "hello from the terminal", NULL);
    assert_int_equal(r.status, 0);
    sscanf(r.out, "%79s", id);
    assert_true(fp_id_valid(id));
    assert_true(mqtt_got(&m, id)); /* live, over MQTT */
    assert_non_null(strstr(m.last_payload, "\"type\":\"post.created\""));
    assert_non_null(strstr(m.last_payload, "hello from the terminal"));

    feedctl(&r, "--key", key, "--as", "cb", "feed", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, id));
    assert_non_null(strstr(r.out, "hello from the terminal"));
    assert_non_null(strstr(r.out, "ca"));

    /* --idempotency-key: the same command again names the same post
     * (its id derived from author, key and text); another text, another. */
    feedctl(&r, "--key", key, "--as", "ca", "post", "--idempotency-key", "run-42", "keyed", NULL);
    assert_int_equal(r.status, 0);
    sscanf(r.out, "%79s", keyed);
    assert_true(fp_id_valid(keyed));
    assert_string_not_equal(keyed, id);
    feedctl(&r, "--key", key, "--as", "ca", "post", "--idempotency-key", "run-42", "keyed", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, keyed));
    feedctl(&r, "--key", key, "--as", "ca", "post", "--idempotency-key", "run-42", "keyed 2", NULL);
    assert_int_equal(r.status, 0);
    assert_null(strstr(r.out, keyed));
    feedctl(&r, "--key", key, "--as", "ca", "post", "--idempotency-key", "bad key", "x", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--idempotency-key"));

    feedctl(&r, "--key", key, "--as", "ca", "ribbon", "push", "--text", "new here", NULL);
    assert_int_equal(r.status, 0);
    for (i = 0; i < 50; i++) {
        feedctl(&r, "--key", key, "--as", "cb", "ribbon", NULL);
        assert_int_equal(r.status, 0);
        if (strstr(r.out, "new here") != NULL)
            break;
        usleep(100000);
    }
    assert_non_null(strstr(r.out, "ca"));
    assert_non_null(strstr(r.out, "new here"));

    /* Not the author: the gateway's 403, exit 1. */
    feedctl(&r, "--key", key, "--as", "cb", "delete", id, NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "403"));
    assert_non_null(strstr(r.err, "forbidden"));
    feedctl(&r, "--key", key, "--as", "ca", "delete", id, NULL);
    assert_int_equal(r.status, 0);
    assert_true(mqtt_got(&m, "\"type\":\"post.deleted\""));
    assert_non_null(strstr(m.last_payload, id));

    /* A dev token (no key: the gateway is in dev mode). */
    feedctl(&r, "--as", "cdev", "post", "via a dev token", NULL);
    assert_int_equal(r.status, 0);

    feedctl(&r, "stats", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "n1"));
    feedctl(&r, "--json", "stats", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "\"bridges_up\":true"));

    /* Redis away: the gateway answers 200 with bridges_up false, and
     * stats exits 1 in both forms (monitoring reads --json). */
    kill((pid_t)env.b.p.redis.pid, SIGSTOP);
    feedctl(&r, "--json", "stats", NULL);
    json_status = r.status;
    json_down = strstr(r.out, "\"bridges_up\":false") != NULL;
    feedctl(&r, "stats", NULL);
    kill((pid_t)env.b.p.redis.pid, SIGCONT);
    assert_true(json_down);
    assert_int_equal(json_status, 1);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "is Redis up?"));
    ft_mqtt_close(&m);
}

static void test_refusals(void **state)
{
    const char *key = env.b.p.secret_path;
    ft_run_result r;

    (void)state;
    feedctl(&r, "--key", key, "--as", "ca", "follow", "ca", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "400"));
    feedctl(&r, "--key", key, "--as", "ca", "follow", "not/valid", NULL);
    assert_int_equal(r.status, 2);
    feedctl(&r, "--key", key, "--as", "ca", "frobnicate", NULL);
    assert_int_equal(r.status, 2);
    feedctl(&r, "post", "no user", NULL);
    assert_int_equal(r.status, 2);
    feedctl(&r, "--token", "garbage", "feed", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "401"));
    feedctl(&r, "--help", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "ribbon"));
    /* A text that starts with "-h" is no request for help (exit 0 with
     * nothing posted): a usage error that says to put "--" before it. */
    feedctl(&r, "--key", key, "--as", "ca", "post", "-hey there", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "\"-hey there\" is not an option"));
    assert_non_null(strstr(r.err, "put \"--\" before"));
    feedctl(&r, "--key", key, "--as", "ca", "post", "-h", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "post"));
    feedctl(&r, "post", "--hel", NULL); /* getopt_long's abbreviation */
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "post"));

    /* token: --ttl and --iat are whole numbers of seconds in range. */
    feedctl(&r, "token", "ca", "--key", key, "--ttl", "1h", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--ttl takes a whole number of seconds"));
    feedctl(&r, "token", "ca", "--key", key, "--ttl", "0", NULL);
    assert_int_equal(r.status, 2);
    feedctl(&r, "token", "ca", "--key", key, "--ttl", "99999999999999999999", NULL);
    assert_int_equal(r.status, 2);
    feedctl(&r, "token", "ca", "--key", key, "--iat", "yesterday", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--iat takes a whole number of seconds"));
    feedctl(&r, "token", "ca", "--key", key, "--ttl", "60", "--iat", "1796000000", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(
        strspn(r.out, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."),
        strlen(r.out) - 1);
}

static void test_unreachable(void **state)
{
    const char *bin = getenv("FP_FEEDCTL");
    const char *argv[] = {NULL,   "--url", "http://ops:s3cret@127.0.0.1:1", "--token", "t",
                          "feed", NULL};
    char cmd[PATH_MAX + 128];
    ft_run_result r;
    int status;

    (void)state;
    /* Nothing listens on port 1. */
    snprintf(cmd, sizeof(cmd), "%s --url http://127.0.0.1:1 --as x --key %s feed >/dev/null 2>&1",
             bin, env.b.p.secret_path);
    status = system(cmd);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);

    /* The URL it names has no password in it, nor a user name. */
    argv[0] = bin;
    assert_int_equal(ft_run(&r, argv), 1);
    assert_non_null(strstr(r.err, "cannot reach the gateway at http://127.0.0.1:1/: "));
    assert_null(strstr(r.err, "s3cret"));
    assert_null(strstr(r.err, "ops"));
}

/* Runs feedctl dead-letters ARGS... (NULL-terminated) on the stack's
 * RabbitMQ: its port and vhost from FEEDPUSH_AMQP_* (set in the test
 * process, inherited), unless config (a file) is given instead. */
static void dead_letters(ft_run_result *r, const char *config, ...)
{
    const char *first[] = {"dead-letters", "--config", config};
    char port[16];
    va_list ap;

    if (config != NULL) {
        unsetenv("FEEDPUSH_AMQP_PORT");
        unsetenv("FEEDPUSH_AMQP_VHOST");
    } else {
        snprintf(port, sizeof(port), "%d", env.b.rabbit.port);
        setenv("FEEDPUSH_AMQP_PORT", port, 1);
        setenv("FEEDPUSH_AMQP_VHOST", env.b.vhost, 1);
    }
    va_start(ap, config);
    feedctl_v(r, first, config != NULL ? 3 : 1, ap);
    va_end(ap);
}

/* Checks a reply of the stack's Redis: not NULL, not an error. */
static void redis_ok(redisReply *r)
{
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

/* Waits until feed.events.dead holds n letters. */
static void dead_depth_is(int n)
{
    int i;

    for (i = 0; i < 750 && ft_node_queue_depth(&env.b, "feed.events.dead") != n; i++)
        usleep(20000);
    assert_int_equal(ft_node_queue_depth(&env.b, "feed.events.dead"), n);
}

/* needle is in s before end (the next line). */
static void in_line(const char *s, const char *needle, const char *end)
{
    const char *at = strstr(s, needle);

    assert_non_null(at);
    assert_true(at < end);
}

/* Letter e (listed with --json) has a reason, and the bridge logged it. */
static void reason_logged(const cJSON *e)
{
    const cJSON *why = cJSON_GetObjectItem(e, "reason");

    assert_true(cJSON_IsString(why));
    assert_true(strlen(why->valuestring) > 10);
    assert_int_equal(ft_log_wait(env.b.node[0].bridge_log, 0, why->valuestring, 0), 1);
}

/* The number of lines of s. */
static int lines_of(const char *s)
{
    int n = 0;

    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

#define FOLLOW_X "{\"type\":\"follow.created\",\"follower_id\":\"dx\",\"followee_id\":\"dw\"}"
#define FOLLOW_Y "{\"type\":\"follow.created\",\"follower_id\":\"dy\",\"followee_id\":\"dw\"}"

/*
 * A letter as RabbitMQ itself dead-letters one (as a bridge older than
 * `dead-letters` did, with a reject): a message that expires at once in
 * a queue of the test's whose dead-letter exchange is feed.events.dlx.
 * It carries x-death (queue dl.old, reason expired) and no reason header.
 */
static void expired_letter(void)
{
    amqp_table_entry_t args[2] = {
        {amqp_cstring_bytes("x-message-ttl"), {.kind = AMQP_FIELD_KIND_I32, .value.i32 = 0}},
        {amqp_cstring_bytes("x-dead-letter-exchange"),
         {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("feed.events.dlx")}}};
    amqp_table_t t = {2, args};
    ft_event_pub p;

    assert_int_equal(ft_event_pub_open(&p, env.b.rabbit.port, env.b.vhost), 0);
    assert_non_null(amqp_queue_declare(p.c, 1, amqp_cstring_bytes("dl.old"), 0, 0, 0, 1, t));
    assert_int_equal(amqp_basic_publish(p.c, 1, amqp_cstring_bytes(""),
                                        amqp_cstring_bytes("dl.old"), 0, 0, NULL,
                                        amqp_cstring_bytes("{\"old\":1}")),
                     AMQP_STATUS_OK);
    ft_event_pub_close(&p);
}

/*
 * Four dead letters: a follow Redis kept refusing (followers:dw is not a
 * set), another one inside a batch (its place in the batch as well), and
 * malformed JSON, all three published by the bridge with their reasons;
 * then one RabbitMQ dead-lettered itself (x-death). `list` shows them in
 * order with their reasons and leaves them, however often it is run with
 * a delivery-limit of 1 on the queue (a letter given back would be
 * dropped: listing keeps a fresh copy of each); once Redis is mended,
 * `replay --limit 2` brings the two follows back through the bridge and
 * leaves the rest; `purge --yes` drops them.
 */
static void test_dead_letters(void **state)
{
    int base = ft_node_queue_depth(&env.b, "feed.events.dead");
    long long dead = ft_node_stat(&env.b, 1, "dead_letters");
    char conf[PATH_MAX + 32], *l2, *l3, *l4;
    time_t t0 = time(NULL);
    ft_run_result r;
    cJSON *arr, *e;
    FILE *f;

    (void)state;
    assert_int_equal(base, 0);
    assert_int_equal(ft_server_policy(&env.b.rabbit, env.b.vhost, "dead-limit",
                                      "^feed\\.events\\.dead$", "{\"delivery-limit\":1}"),
                     0);
    redis_ok(ft_redis_once(env.b.p.redis.port, "SET followers:dw not-a-set"));
    assert_int_equal(ft_node_publish(&env.b, "follow.created", FOLLOW_X), 0);
    assert_int_equal(ft_node_publish(&env.b, "batch",
                                     "{\"type\":\"batch\",\"events\":[{\"type\":\"post.deleted\","
                                     "\"post_id\":\"nothing\",\"author_id\":\"dz\"}," FOLLOW_Y
                                     "]}"),
                     0);
    assert_int_equal(ft_node_publish(&env.b, "post.created", "{\"type\":"), 0);
    dead_depth_is(3);
    assert_true(ft_node_stat_wait(&env.b, 1, "dead_letters", dead + 3, 5000) >= dead + 3);
    expired_letter();
    dead_depth_is(4);

    dead_letters(&r, NULL, NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(lines_of(r.out), 4);
    l2 = strstr(r.out, "\n2  ");
    l3 = strstr(r.out, "\n3  ");
    l4 = strstr(r.out, "\n4  ");
    assert_true(l2 != NULL && l3 > l2 && l4 > l3);
    assert_true(strncmp(r.out, "1  follow.created  20", 21) == 0);
    in_line(r.out, "  redis kept refusing it: ", l2);
    in_line(r.out, "\"follower_id\":\"dx\"", l2);
    assert_true(strncmp(l2, "\n2  follow.created  20", 21) == 0);
    in_line(l2, "  event 2 of 2 of a batch: redis kept refusing it: ", l3);
    in_line(l2, "\"follower_id\":\"dy\"", l3);
    assert_true(strncmp(l3, "\n3  post.created  20", 20) == 0);
    assert_true(strstr(l3, "{\"type\":\n") == l4 - strlen("{\"type\":"));
    assert_true(strncmp(l4, "\n4  dl.old  20", 14) == 0);
    assert_non_null(strstr(l4, "  expired from dl.old (x-death, 1 time(s))  {\"old\":1}\n"));
    dead_depth_is(4); /* a listing leaves them */

    dead_letters(&r, NULL, "--json", NULL);
    assert_int_equal(r.status, 0);
    dead_depth_is(4);
    arr = cJSON_Parse(r.out);
    assert_true(cJSON_IsArray(arr));
    assert_int_equal(cJSON_GetArraySize(arr), 4);
    e = cJSON_GetArrayItem(arr, 0);
    assert_string_equal(cJSON_GetObjectItem(e, "body")->valuestring, FOLLOW_X);
    assert_string_equal(cJSON_GetObjectItem(e, "routing_key")->valuestring, "follow.created");
    assert_string_equal(cJSON_GetObjectItem(e, "batch")->valuestring, "");
    assert_string_equal(cJSON_GetObjectItem(e, "death_queue")->valuestring, "");
    assert_true(cJSON_GetObjectItem(e, "time")->valuedouble >= (double)t0 - 1);
    assert_true(cJSON_GetObjectItem(e, "time")->valuedouble <= (double)time(NULL) + 1);
    reason_logged(e);
    e = cJSON_GetArrayItem(arr, 1);
    assert_string_equal(cJSON_GetObjectItem(e, "body")->valuestring, FOLLOW_Y);
    assert_string_equal(cJSON_GetObjectItem(e, "batch")->valuestring, "2 of 2");
    reason_logged(e);
    e = cJSON_GetArrayItem(arr, 2);
    assert_string_equal(cJSON_GetObjectItem(e, "body")->valuestring, "{\"type\":");
    reason_logged(e);
    e = cJSON_GetArrayItem(arr, 3);
    assert_string_equal(cJSON_GetObjectItem(e, "reason")->valuestring, "");
    assert_string_equal(cJSON_GetObjectItem(e, "death_queue")->valuestring, "dl.old");
    assert_string_equal(cJSON_GetObjectItem(e, "death_reason")->valuestring, "expired");
    assert_int_equal(cJSON_GetObjectItem(e, "death_count")->valueint, 1);
    assert_true(cJSON_GetObjectItem(e, "time")->valuedouble >= (double)t0 - 1);
    assert_true(cJSON_GetObjectItem(e, "time")->valuedouble <= (double)time(NULL) + 1);
    cJSON_Delete(arr);

    /* RabbitMQ takes a closed link's letters back in the background. */
    dead_depth_is(4);
    dead_letters(&r, NULL, "--limit", "1", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(lines_of(r.out), 2);
    assert_non_null(strstr(r.out, "\n(3 more: --limit)\n"));
    dead_depth_is(4);

    /* Mended: the two follows go through on replay; the rest is left. */
    redis_ok(ft_redis_once(env.b.p.redis.port, "DEL followers:dw"));
    dead_letters(&r, NULL, "replay", "--limit", "2", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "replayed 2 dead letter(s) to feed.events\n"
                               "2 left in feed.events.dead\n");
    assert_int_equal(ft_redis_wait_member(env.b.p.redis.port, "followers:dw", "dx", 10000), 1);
    assert_int_equal(ft_redis_wait_member(env.b.p.redis.port, "followers:dw", "dy", 10000), 1);
    dead_depth_is(2);
    assert_int_equal(ft_node_stat(&env.b, 1, "dead_letters"), dead + 3);

    /* The same through a config file of the bridge's, other keys and all. */
    snprintf(conf, sizeof(conf), "%s/dead.conf", env.b.node[0].dir);
    f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f, "node_id n1\nredis_port 6379\namqp_port %d\namqp_vhost %s\n", env.b.rabbit.port,
            env.b.vhost);
    fclose(f);
    dead_letters(&r, conf, NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(lines_of(r.out), 2);
    assert_true(strncmp(r.out, "1  post.created  ", 17) == 0);
    assert_non_null(strstr(r.out, "\n2  dl.old  "));

    dead_letters(&r, conf, "purge", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--yes"));
    dead_depth_is(2);
    /* Not a purge of one: refused, rather than drop them all. */
    dead_letters(&r, conf, "purge", "--yes", "--limit", "1", NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--limit is for list and replay"));
    dead_depth_is(2);
    dead_letters(&r, conf, "purge", "--yes", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "purged 2 dead letter(s)\n");
    dead_depth_is(0);
    dead_letters(&r, NULL, NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "no dead letters\n");

    /* Bad settings exit 2 and name the file's line; no RabbitMQ exits 1. */
    f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f, "node_id n1\namqp_port 0\n");
    fclose(f);
    dead_letters(&r, conf, NULL);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "dead.conf:2:"));
    f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f, "amqp_port 1\n"); /* nothing listens on port 1 */
    fclose(f);
    dead_letters(&r, conf, NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "rabbitmq 127.0.0.1:1: "));
    dead_letters(&r, NULL, "forget", NULL);
    assert_int_equal(r.status, 2);
}

/* A letter whose body is not UTF-8 (the bridge dead-letters it as
 * malformed): --json gives its body as null and its exact bytes in
 * body_base64url, and the output is still valid JSON; the listing prints
 * each byte that is not UTF-8 as '?' (a lone 0x9b is CSI to a terminal
 * not in UTF-8 mode), and keeps the UTF-8 around them; a NUL byte as '?',
 * with what follows it. */
static void test_dead_letter_bytes(void **state)
{
    static const char bad[] = "{\"type\":\"post.created\",\"text\":\"\xff\xfe\x9b"
                              "2J\xc3\xa9\xc2\x9b\"}";
    static const char nul[] = "{\"type\":\0\"after a NUL\"}";
    const cJSON *e, *b64;
    unsigned char *bytes;
    ft_run_result r;
    cJSON *arr;
    size_t n;

    (void)state;
    dead_depth_is(0);
    assert_int_equal(ft_node_publish(&env.b, "post.created", bad), 0);
    dead_depth_is(1);
    dead_letters(&r, NULL, "--json", NULL);
    assert_int_equal(r.status, 0);
    arr = cJSON_Parse(r.out);
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != 1)
        fail_msg("not a JSON array of one letter: %.300s", r.out);
    e = cJSON_GetArrayItem(arr, 0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(e, "body")));
    b64 = cJSON_GetObjectItem(e, "body_base64url");
    assert_true(cJSON_IsString(b64));
    bytes = fp_b64url_decode(b64->valuestring, strlen(b64->valuestring), &n);
    assert_non_null(bytes);
    assert_int_equal(n, sizeof(bad) - 1);
    assert_memory_equal(bytes, bad, n);
    free(bytes);
    cJSON_Delete(arr);
    dead_letters(&r, NULL, NULL);
    assert_int_equal(r.status, 0);
    if (strstr(r.out, "\"text\":\"???2J\xc3\xa9?\"}") == NULL || strchr(r.out, '\x9b') != NULL)
        fail_msg("listed as: %.300s", r.out);
    /* A NUL byte is a '?' too, and what follows it is listed. */
    assert_int_equal(
        ft_event_pub_post_bytes(&env.b.pub, "feed.events", "post.created", nul, sizeof(nul) - 1),
        0);
    assert_int_equal(ft_event_pub_wait(&env.b.pub, env.b.pub.published, 10000), 0);
    dead_depth_is(2);
    dead_letters(&r, NULL, NULL);
    assert_int_equal(r.status, 0);
    if (strstr(r.out, "  {\"type\":?\"after a NUL\"}\n") == NULL)
        fail_msg("listed as: %.400s", r.out);
    dead_letters(&r, NULL, "purge", "--yes", NULL);
    assert_int_equal(r.status, 0);
    dead_depth_is(0);
}

/* True when s holds none of the bytes that may start a terminal control
 * (C0 other than tab and line breaks, DEL, UTF-8 C1) and no byte that is
 * not UTF-8 (0xff here). */
static bool no_raw_controls(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];

        if ((c < 0x20 && c != '\n' && c != '\t' && c != '\r') || c == 0x7f || c == 0xff ||
            (c == 0xc2 && (unsigned char)s[i + 1] <= 0x9f))
            return false;
    }
    return true;
}

/*
 * --json output escapes what a terminal may take as a control: a post
 * holding the 8-bit CSI (U+009B) and DEL comes out of `feed --json` with
 * both as \u escapes, which decode to the same text; a dead letter whose
 * routing key is not UTF-8 (published straight to the dead-letter
 * exchange, as any client of RabbitMQ may) comes out of `dead-letters
 * --json` as valid JSON, the bad byte as U+FFFD.
 */
static void test_json_controls(void **state)
{
    const char *key = env.b.p.secret_path;
    static const char text[] = "csi \xc2\x9b"
                               "2J del \x7f end";
    const cJSON *posts, *post, *e;
    char id[80] = "";
    ft_event_pub p;
    ft_run_result r;
    cJSON *doc;
    bool found = false;
    int i;

    (void)state;
    feedctl(&r, "--key", key, "--as", "cj", "post", text, NULL);
    assert_int_equal(r.status, 0);
    sscanf(r.out, "%79s", id);
    assert_true(fp_id_valid(id));
    for (i = 0; i < 50 && !found; i++) {
        feedctl(&r, "--key", key, "--as", "cj", "--json", "feed", NULL);
        assert_int_equal(r.status, 0);
        found = strstr(r.out, id) != NULL;
        if (!found)
            usleep(100000);
    }
    assert_true(found);
    if (!no_raw_controls(r.out) || strstr(r.out, "\\u009b") == NULL ||
        strstr(r.out, "\\u007f") == NULL)
        fail_msg("feed --json printed: %.300s", r.out);
    doc = cJSON_Parse(r.out);
    posts = cJSON_GetObjectItem(doc, "posts");
    assert_true(cJSON_IsArray(posts));
    found = false;
    cJSON_ArrayForEach(post, posts)
    {
        if (strcmp(cJSON_GetObjectItem(post, "id")->valuestring, id) == 0) {
            assert_string_equal(cJSON_GetObjectItem(post, "text")->valuestring, text);
            found = true;
        }
    }
    assert_true(found);
    cJSON_Delete(doc);

    dead_depth_is(0);
    assert_int_equal(ft_event_pub_open(&p, env.b.rabbit.port, env.b.vhost), 0);
    assert_int_equal(amqp_basic_publish(p.c, 1, amqp_cstring_bytes("feed.events.dlx"),
                                        amqp_cstring_bytes("key\xff\xc2\x9b"), 0, 0, NULL,
                                        amqp_cstring_bytes("{}")),
                     AMQP_STATUS_OK);
    ft_event_pub_close(&p);
    dead_depth_is(1);
    dead_letters(&r, NULL, "--json", NULL);
    assert_int_equal(r.status, 0);
    if (!no_raw_controls(r.out))
        fail_msg("dead-letters --json printed: %.300s", r.out);
    doc = cJSON_Parse(r.out);
    if (!cJSON_IsArray(doc) || cJSON_GetArraySize(doc) != 1)
        fail_msg("not a JSON array of one letter: %.300s", r.out);
    e = cJSON_GetArrayItem(doc, 0);
    assert_string_equal(cJSON_GetObjectItem(e, "routing_key")->valuestring,
                        "key\xef\xbf\xbd\xc2\x9b");
    cJSON_Delete(doc);
    dead_letters(&r, NULL, NULL);
    assert_int_equal(r.status, 0);
    if (strstr(r.out, "key??") == NULL || !no_raw_controls(r.out))
        fail_msg("listed as: %.300s", r.out);
    dead_letters(&r, NULL, "purge", "--yes", NULL);
    assert_int_equal(r.status, 0);
    dead_depth_is(0);
}

/* A 200 that is not JSON (a page, as a proxy in front of the gateway may
 * answer) is said to be that, not blamed on Redis: `stats` through a URL
 * that makes the gateway serve its page instead of /api/v1/stats. */
static void test_stats_not_json(void **state)
{
    char url[300];
    ft_run_result r;
    int json;

    (void)state;
    snprintf(url, sizeof(url), "%s/index.html?to=", env.url);
    for (json = 0; json < 2; json++) {
        if (json)
            feedctl(&r, "--url", url, "--json", "stats", NULL);
        else
            feedctl(&r, "--url", url, "stats", NULL);
        assert_int_equal(r.status, 1);
        if (strstr(r.err, "the gateway's reply (status 200) is not a JSON object") == NULL ||
            strstr(r.err, "Redis") != NULL || r.out[0] != '\0')
            fail_msg("stats%s said: %.300s / %.300s", json ? " --json" : "", r.out, r.err);
    }
}

/* clang-format off */
FT_MAIN(ft_harness_run, setup, teardown,
        cmocka_unit_test(test_terminal_walkthrough),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_dead_letters),
        cmocka_unit_test(test_dead_letter_bytes),
        cmocka_unit_test(test_json_controls),
        cmocka_unit_test(test_stats_not_json))
/* clang-format on */
