/*
 * dead.c - `feedctl dead-letters`: the events waiting in feed.events.dead,
 * straight from RabbitMQ (not through the gateway). `list` shows them with
 * the reason each carries and leaves them in their order; `replay`
 * publishes them to feed.events again, oldest first, each acked only once
 * RabbitMQ confirmed its copy; `purge --yes` drops them. The link's
 * settings are the amqp_* keys of a feed-bridge or feed-gateway config
 * file (--config), overridden by FEEDPUSH_AMQP_* as for the daemons.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "feedctl.h"
#include "fp_amqp.h"
#include "fp_config.h"
#include "fp_json.h"
#include "fp_jws.h"

#define DEAD_TIMEOUT_MS 10000
#define DEAD_LIST_DEFAULT 100
#define DEAD_BODY_SHOWN 160 /* bytes of a body a text listing shows */

typedef struct {
    const char *config; /* --config FILE, or NULL */
    long long limit;    /* --limit N; 0: the command's default */
    bool yes;           /* --yes */
} dead_args;

typedef struct {
    fp_amqp_options amqp;
} dead_conf;

static const fp_conf_opt dead__table[] = {FP_AMQP_CONF_OPTIONS(dead_conf, amqp)};
#define DEAD_NOPTS (sizeof(dead__table) / sizeof(dead__table[0]))

/* Option handler: --config FILE, --limit N (1..1000000), --yes. */
static int dead__option(int code, const char *arg, void *arg_ctx)
{
    dead_args *a = arg_ctx;

    if (code == 'c') {
        a->config = arg;
        return 0;
    }
    if (code == 'y') {
        a->yes = true;
        return 0;
    }
    return fc_check_number("--limit", "", arg, 1, 1000000, &a->limit);
}

/*
 * Loads the settings (defaults, the amqp_* keys of args' config file,
 * FEEDPUSH_AMQP_*) into conf and opens a publisher-only link. Returns 0
 * with *out set (conf to be freed by the caller), FC_USAGE for a bad
 * setting or an unreadable file, or FC_FAIL when RabbitMQ cannot be
 * reached or memory ran out (all said on stderr; nothing left to free).
 */
static int dead__open(const dead_args *args, dead_conf *conf, fp_amqp **out)
{
    fp_amqp_config c = {0};
    char err[FP_CONF_ERR_MAX];
    int rc;

    rc = fp_conf_load_part(dead__table, DEAD_NOPTS, conf, args->config, "FEEDPUSH_", err,
                           sizeof(err));
    if (rc != 0) { /* nothing loaded is left */
        fprintf(stderr, "feedctl: %s\n", rc == -ENOMEM ? "out of memory" : err);
        return rc == -ENOMEM ? FC_FAIL : FC_USAGE;
    }
    rc = fp_amqp_options_check(&conf->amqp, err, sizeof(err));
    if (rc == 0 && (conf->amqp.hosts == NULL || conf->amqp.hosts[0] == '\0') &&
        strlen(conf->amqp.host) > FP_HOST_MAX) {
        snprintf(err, sizeof(err), "amqp_host is longer than %d bytes", FP_HOST_MAX);
        rc = -EINVAL;
    }
    if (rc != 0) {
        fprintf(stderr, "feedctl: %s\n", err);
        fp_conf_free(dead__table, DEAD_NOPTS, conf);
        return FC_USAGE;
    }
    fp_amqp_options_apply(&conf->amqp, &c);
    c.prefetch = 1;
    c.timeout_ms = DEAD_TIMEOUT_MS;
    rc = fp_amqp_open(out, &c);
    if (rc == 0)
        return 0;
    fprintf(stderr, "feedctl: rabbitmq %s: %s\n", fp_amqp_peer(*out), fp_amqp_errstr(*out));
    fp_amqp_free(*out);
    *out = NULL;
    fp_conf_free(dead__table, DEAD_NOPTS, conf);
    return FC_FAIL;
}

/* Says that memory ran out. FC_FAIL. */
static int dead__oom(void)
{
    fprintf(stderr, "feedctl: out of memory\n");
    return FC_FAIL;
}

/* Says on stderr why the link failed in the middle of what. FC_FAIL. */
static int dead__fail(fp_amqp *a, const char *what)
{
    fprintf(stderr, "feedctl: %s: rabbitmq %s: %s\n", what, fp_amqp_peer(a), fp_amqp_errstr(a));
    return FC_FAIL;
}

/* Why d is dead, in words, into buf: its reason header, else what its
 * x-death says (a letter from a bridge that rejected it whole: its log
 * has the reason), else "-". */
static void dead__why(const fp_amqp_dead *d, char *buf, size_t len)
{
    if (d->reason[0] != '\0' && d->batch[0] != '\0')
        snprintf(buf, len, "event %s of a batch: %s", d->batch, d->reason);
    else if (d->reason[0] != '\0')
        snprintf(buf, len, "%s", d->reason);
    else if (d->death_queue[0] != '\0')
        snprintf(buf, len, "%s from %s (x-death, %" PRId64 " time(s))",
                 d->death_reason[0] != '\0' ? d->death_reason : "dead-lettered", d->death_queue,
                 d->death_count);
    else
        snprintf(buf, len, "-");
}

/* One line of a text listing: N  ROUTING_KEY  WHEN  WHY  BODY (cut),
 * with control characters replaced. */
static void dead__print_line(uint32_t n, const fp_amqp_dead *d)
{
    char why[FP_AMQP_DEAD_REASON_MAX + 600], when[32] = "-";
    size_t shown = d->len < DEAD_BODY_SHOWN ? d->len : DEAD_BODY_SHOWN;
    time_t t = (time_t)d->time;
    struct tm tm;

    if (d->time > 0 && localtime_r(&t, &tm) != NULL)
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    dead__why(d, why, sizeof(why));
    printf("%" PRIu32 "  ", n);
    fc_put_clean(stdout, d->routing_key[0] != '\0' ? d->routing_key : "-");
    printf("  %s  ", when);
    fc_put_clean(stdout, why);
    fputs("  ", stdout);
    fc_put_clean_n(stdout, (const char *)d->body, shown); /* a NUL byte too */
    fputs(d->len > shown ? "...\n" : "\n", stdout);
}

/* d's body into o: as the string "body" when it is strict UTF-8 without
 * a NUL byte (what JSON can hold as it is), else "body" null and its
 * exact bytes in "body_base64url" (unpadded): a dead letter is often
 * exactly the body that is not text. true, or false when out of memory. */
static bool dead__json_body(cJSON *o, const fp_amqp_dead *d)
{
    char *text;
    bool ok;

    if (d->len == 0 ||
        (fp_json_utf8_valid(d->body, d->len) && memchr(d->body, '\0', d->len) == NULL)) {
        text = malloc(d->len + 1);
        if (text == NULL)
            return false;
        if (d->len > 0)
            memcpy(text, d->body, d->len);
        text[d->len] = '\0';
        ok = cJSON_AddStringToObject(o, "body", text) != NULL;
    } else {
        text = fp_b64url_encode(d->body, d->len);
        ok = text != NULL && cJSON_AddNullToObject(o, "body") != NULL &&
             cJSON_AddStringToObject(o, "body_base64url", text) != NULL;
    }
    free(text);
    return ok;
}

/* d as a JSON object added to arr. 0 or -ENOMEM. */
static int dead__json_add(cJSON *arr, const fp_amqp_dead *d)
{
    cJSON *o = cJSON_CreateObject();
    bool ok;

    if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        return -ENOMEM;
    }
    ok = cJSON_AddStringToObject(o, "routing_key", d->routing_key) != NULL &&
         cJSON_AddStringToObject(o, "reason", d->reason) != NULL &&
         cJSON_AddStringToObject(o, "batch", d->batch) != NULL &&
         cJSON_AddNumberToObject(o, "time", (double)d->time) != NULL &&
         cJSON_AddStringToObject(o, "death_queue", d->death_queue) != NULL &&
         cJSON_AddStringToObject(o, "death_reason", d->death_reason) != NULL &&
         cJSON_AddNumberToObject(o, "death_count", (double)d->death_count) != NULL &&
         dead__json_body(o, d);
    return ok ? 0 : -ENOMEM;
}

/*
 * `list`: prints the first limit letters of those ready at the start. It
 * takes all of them, not only those it prints, and puts each at the end
 * of the queue as a fresh copy (fp_amqp_dead_keep), so they stay in their
 * order and a replay after a listing still goes oldest first. Not given
 * back: a letter given back counts as delivered, and a queue with a
 * delivery-limit (RabbitMQ 4's default of 20, or a policy's) drops it
 * after that many listings. A large queue takes a while (two round trips
 * a letter). A letter that arrives meanwhile may end up among them.
 */
static int dead__list(fp_amqp *a, uint32_t limit, bool json)
{
    cJSON *arr = json ? cJSON_CreateArray() : NULL;
    fp_amqp_dead d;
    uint32_t total, n = 0;
    char *text;
    int rc;

    if (json && arr == NULL)
        return dead__oom();
    rc = fp_amqp_dead_count(a, &total);
    while (rc == 0 && n < total) {
        rc = fp_amqp_dead_get(a, &d);
        if (rc <= 0)
            break;
        rc = fp_amqp_dead_keep(a, &d);
        if (rc != 0)
            break;
        n++;
        if (n > limit)
            continue;
        if (!json)
            dead__print_line(n, &d);
        else if (dead__json_add(arr, &d) != 0)
            rc = -ENOMEM;
    }
    if (rc < 0) {
        cJSON_Delete(arr);
        return rc == -ENOMEM ? dead__oom() : dead__fail(a, "list");
    }
    if (json) {
        text = cJSON_PrintUnformatted(arr);
        cJSON_Delete(arr);
        if (text == NULL)
            return dead__oom();
        fc_put_json(stdout, text, strlen(text));
        putchar('\n');
        free(text);
    } else if (n > limit) {
        printf("(%" PRIu32 " more: --limit)\n", n - limit);
    } else if (n == 0) {
        printf("no dead letters\n");
    }
    return 0;
}

/*
 * `replay`: publishes up to limit of the letters ready at the start
 * (never more, so letters dead-lettered again meanwhile are not taken
 * twice) to feed.events, oldest first.
 */
static int dead__replay(fp_amqp *a, uint32_t limit)
{
    fp_amqp_dead d;
    uint32_t total, n = 0, left;
    int rc;

    rc = fp_amqp_dead_count(a, &total);
    while (rc == 0 && n < total && n < limit) {
        rc = fp_amqp_dead_get(a, &d);
        if (rc <= 0)
            break;
        rc = fp_amqp_dead_replay(a, &d);
        if (rc == 0)
            n++;
    }
    if (rc < 0) {
        fprintf(stderr, "feedctl: replayed %" PRIu32 " dead letter(s) before the failure\n", n);
        return dead__fail(a, "replay");
    }
    printf("replayed %" PRIu32 " dead letter(s) to " FP_EXCHANGE_EVENTS "\n", n);
    if (fp_amqp_dead_count(a, &left) == 0 && left > 0)
        printf("%" PRIu32 " left in " FP_QUEUE_DEAD "\n", left);
    return 0;
}

/* `purge --yes`: drops every ready letter. */
static int dead__purge(fp_amqp *a)
{
    uint32_t n;

    if (fp_amqp_dead_purge(a, &n) != 0)
        return dead__fail(a, "purge");
    printf("purged %" PRIu32 " dead letter(s)\n", n);
    return 0;
}

/*
 * `dead-letters [list|replay|purge]`: checks the arguments before any
 * link (purge without --yes is a usage error), opens the link, runs the
 * verb, closes (which gives back a letter taken when a failure stopped
 * it). Returns 0, FC_FAIL,
 * FC_USAGE or FC_HELP.
 */
int fc_cmd_dead_letters(fc_ctx *x, int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"limit", required_argument, NULL, 'l'},
        {"yes", no_argument, NULL, 'y'},
        {NULL, 0, NULL, 0},
    };
    dead_args args = {0};
    dead_conf conf;
    const char *verb;
    fp_amqp *a = NULL;
    int rc = fc_parse(x, argc, argv, opts, dead__option, &args);

    if (rc != 0)
        return rc;
    verb = optind < argc ? argv[optind] : "list";
    if (optind + 1 < argc ||
        (strcmp(verb, "list") != 0 && strcmp(verb, "replay") != 0 && strcmp(verb, "purge") != 0)) {
        fprintf(stderr, "feedctl: dead-letters takes one of list, replay, purge\n");
        return FC_USAGE;
    }
    if (strcmp(verb, "purge") == 0 && !args.yes) {
        fprintf(stderr, "feedctl: purge drops every dead letter for good: add --yes\n");
        return FC_USAGE;
    }
    if (strcmp(verb, "purge") == 0 && args.limit > 0) {
        /* Not a purge of N: it would drop them all. */
        fprintf(stderr, "feedctl: purge drops every dead letter; --limit is for list and replay\n");
        return FC_USAGE;
    }
    rc = dead__open(&args, &conf, &a);
    if (rc != 0)
        return rc;
    if (strcmp(verb, "list") == 0)
        rc = dead__list(a, args.limit > 0 ? (uint32_t)args.limit : DEAD_LIST_DEFAULT, x->json);
    else if (strcmp(verb, "replay") == 0)
        rc = dead__replay(a, args.limit > 0 ? (uint32_t)args.limit : UINT32_MAX);
    else
        rc = dead__purge(a);
    fp_amqp_free(a);
    fp_conf_free(dead__table, DEAD_NOPTS, &conf);
    return rc;
}
