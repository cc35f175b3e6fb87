/*
 * feedctl - command-line tool for a feedpush deployment.
 *
 *   feedctl token <user_id> [options]       mint a signed JWT (dev and tests)
 *   feedctl [global options] <command> ...  talk to feed-gateway's HTTP API:
 *       post, delete, follow, unfollow, feed, ribbon, stats
 *   feedctl dead-letters ...                RabbitMQ's dead-letter queue
 *
 * main.c: the usage texts, the option parser every gateway command shares
 * (global options are accepted before and after the command) and the
 * dispatch. token.c: `token` and the choice of bearer token; http.c: the
 * libcurl client; commands.c, stats.c: the gateway commands; dead.c:
 * dead-letters, on RabbitMQ. The API is
 * docs/gateway.md; its "feedctl" section describes this tool.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feedctl.h"
#include "fp_version.h"

/* Most options one command may have, the global ones included. */
#define MAIN_MAX_OPTS 16

/* A gateway command: name, synopsis (after "feedctl [global options]"),
 * one-line summary, help text and entry point. */
typedef struct {
    const char *name;
    const char *synopsis;
    const char *summary;
    const char *help;
    int (*run)(fc_ctx *x, int argc, char **argv);
} main_command;

static const main_command main__commands[] = {
    {"post", "post [--idempotency-key KEY] TEXT", "publish a post; prints its id",
     "Publishes TEXT (1-8192 bytes of UTF-8) as a post of the acting user\n"
     "(POST /api/v1/posts) and prints the new post's id.\n"
     "  --idempotency-key KEY  ([A-Za-z0-9_-], 1-64) the API's \"key\": run again\n"
     "                         with the same key and TEXT (after a 503 or a\n"
     "                         timeout), it names the same post, applied once\n",
     fc_cmd_post},
    {"delete", "delete POST_ID", "delete one of your posts",
     "Deletes one of the acting user's posts (DELETE /api/v1/posts/POST_ID).\n", fc_cmd_delete},
    {"follow", "follow USER_ID", "follow a user",
     "The acting user follows USER_ID (PUT /api/v1/follows/USER_ID).\n", fc_cmd_follow},
    {"unfollow", "unfollow USER_ID", "stop following a user",
     "The acting user stops following USER_ID (DELETE /api/v1/follows/USER_ID).\n",
     fc_cmd_unfollow},
    {"feed", "feed [--limit N] [--before POST_ID]", "your feed, newest first",
     "Prints the acting user's feed (GET /api/v1/feed), newest first, one line\n"
     "per post: ID  AUTHOR  YYYY-MM-DD HH:MM:SS (local time)  TEXT.\n"
     "When the page is full, a last line \"next: --before ID\" gives the option\n"
     "for the next page.\n"
     "  --limit N          at most N posts, 1-1000 (default: the gateway's, 50)\n"
     "  --before POST_ID   start after this post of the feed\n",
     fc_cmd_feed},
    {"ribbon", "ribbon [push [--text T] [--name N]]", "show the ribbon, or join it",
     "Without arguments, prints the ribbon (GET /api/v1/ribbon), newest first,\n"
     "one line per entry: USER  NAME  TEXT  TIME (\"-\" for what is not set).\n"
     "`ribbon push` puts the acting user on the ribbon (POST /api/v1/ribbon)\n"
     "and prints the entry.\n"
     "  --text T   the entry's text (up to 512 bytes)\n"
     "  --name N   the display name (up to 128 bytes)\n",
     fc_cmd_ribbon},
    {"stats", "stats", "bridge counters per node (GET /api/v1/stats)",
     "Prints the bridges' counters from the gateway's GET /api/v1/stats (no\n"
     "token needed; the counters /metrics shows): one row per node (posts =\n"
     "events_post_created, fanout = fanout_recipients, deliveries,\n"
     "dead_letters, reconnects), then the gateway's total requests. With\n"
     "--json: the gateway's answer as it is. Exits 1 when the gateway could\n"
     "not read the counters (bridges_up false: Redis down), in both forms.\n",
     fc_cmd_stats},
    {"dead-letters", "dead-letters [list|replay|purge]",
     "events in feed.events.dead: show, replay, drop",
     "Works on RabbitMQ's queue feed.events.dead directly (not through the\n"
     "gateway; no token needed). Its settings are the amqp_* keys of a\n"
     "feed-bridge or feed-gateway config file (--config; the other keys are\n"
     "ignored), overridden by $FEEDPUSH_AMQP_HOST, $FEEDPUSH_AMQP_PORT, ... as\n"
     "for the daemons; without either, guest@127.0.0.1:5672, vhost /.\n"
     "  list (default)  the letters, oldest first, one line each:\n"
     "                  N  ROUTING_KEY  WHEN  WHY  BODY (cut at 160 bytes);\n"
     "                  they stay in the queue, in their order (it reads them\n"
     "                  all, which takes a while on a large queue). With\n"
     "                  --json: an array of\n"
     "                  {routing_key, reason, batch, time, death_queue,\n"
     "                  death_reason, death_count, body}.\n"
     "  replay          publishes them again to feed.events with their routing\n"
     "                  keys, oldest first, each removed once RabbitMQ confirmed\n"
     "                  its copy. Fix the cause first: a letter that fails again\n"
     "                  comes back (at the end of the queue).\n"
     "  purge --yes     drops every letter for good.\n"
     "  --config FILE   bridge.conf or gateway.conf to take the amqp_* keys from\n"
     "  --limit N       at most N letters, 1-1000000 (list: 100 by default;\n"
     "                  replay: every letter there at the start)\n"
     "Exit status: 1 when RabbitMQ refused or cannot be reached; 2 for a bad\n"
     "setting or an unreadable --config.\n",
     fc_cmd_dead_letters},
};
#define MAIN_NCOMMANDS (sizeof(main__commands) / sizeof(main__commands[0]))

static const struct option main__global_opts[] = {
    {"url", required_argument, NULL, FC_OPT_URL},
    {"as", required_argument, NULL, FC_OPT_AS},
    {"token", required_argument, NULL, FC_OPT_TOKEN},
    {"key", required_argument, NULL, FC_OPT_KEY},
    {"alg", required_argument, NULL, FC_OPT_ALG},
    {"json", no_argument, NULL, FC_OPT_JSON},
    {"version", no_argument, NULL, FC_OPT_VERSION},
    {"cacert", required_argument, NULL, FC_OPT_CACERT},
    {"help", no_argument, NULL, 'h'},
};
#define MAIN_NGLOBAL (sizeof(main__global_opts) / sizeof(main__global_opts[0]))

static const char main__global_help[] =
    "global options (also accepted after the command):\n"
    "  --url URL      the gateway (default $FEEDPUSH_GATEWAY_URL, else " FC_DEFAULT_URL ")\n"
    "  --as USER_ID   the acting user\n"
    "  --token JWT    bearer token to send (default $FEEDPUSH_TOKEN)\n"
    "  --key FILE     signing key to mint a 300 s token for --as locally: HS256\n"
    "                 secret, or RS256/ES256 private key PEM\n"
    "                 (default $FEEDPUSH_JWT_SIGNING_KEY)\n"
    "  --alg ALG      algorithm of --key: HS256 (default), RS256 or ES256\n"
    "  --json         print the gateway's JSON reply as it is\n"
    "  --cacert FILE  CA certificate (PEM) an https gateway's certificate must\n"
    "                 chain to (default $FEEDPUSH_CACERT, else the system's CAs)\n"
    "  -h, --help     this text; feedctl COMMAND --help for one command\n"
    "  --version      print feedctl's version and exit\n"
    "\n"
    "The token: --token if given; else, with --as, one minted with --key or,\n"
    "without a key, one from the gateway's dev endpoint (dev mode only); else\n"
    "$FEEDPUSH_TOKEN. Every command but stats needs one.\n"
    "Exit status: 0 done, 1 the gateway refused or cannot be reached (or no token\n"
    "could be made from --key), 2 usage.\n";

/* Prints the overall usage on out. */
static void main__usage(FILE *out)
{
    size_t i;

    fputs("usage: feedctl [global options] <command> [args]\n\ncommands:\n", out);
    fprintf(out, "  %-36s %s\n", "token USER_ID [options]", "mint a JWT (feedctl token --help)");
    for (i = 0; i < MAIN_NCOMMANDS; i++)
        fprintf(out, "  %-36s %s\n", main__commands[i].synopsis, main__commands[i].summary);
    fputc('\n', out);
    fputs(main__global_help, out);
}

/* Prints the help of command c on stdout. */
static void main__command_help(const main_command *c)
{
    printf("usage: feedctl [global options] %s\n\n%s\n%s", c->synopsis, c->help, main__global_help);
}

/* Applies global option code with its argument to x. Returns 0, FC_USAGE
 * (bad value, after saying so) or 1 when code is not a global option. */
static int main__global(fc_ctx *x, int code, const char *arg)
{
    switch (code) {
    case FC_OPT_URL:
        x->url = arg;
        return 0;
    case FC_OPT_AS:
        x->as = arg;
        return 0;
    case FC_OPT_TOKEN:
        x->token = arg;
        return 0;
    case FC_OPT_KEY:
        x->key_file = arg;
        return 0;
    case FC_OPT_JSON:
        x->json = true;
        return 0;
    case FC_OPT_CACERT:
        x->cacert = arg;
        return 0;
    case FC_OPT_VERSION:
        printf("feedctl %s\n", FP_VERSION);
        exit(0);
    case FC_OPT_ALG:
        if (fp_jwt_alg_parse(arg, &x->alg) == 0)
            return 0;
        fprintf(stderr, "feedctl: --alg must be HS256, RS256 or ES256\n");
        return FC_USAGE;
    default:
        return 1;
    }
}

/*
 * Whether the -h getopt_long just returned was an argument of its own
 * ("-h", "--help"): then optind has moved past it. Inside a cluster
 * ("-hey", a text that starts with '-') it has not, and the text must not
 * be taken for a request for help, which exits 0 with nothing done: it is
 * a usage error, whose message says to put "--" before such a text.
 */
static bool main__help_alone(int argc, char **argv, int index)
{
    const char *arg = index > 0 ? argv[index - 1] : "";
    size_t n = strlen(arg);

    /* getopt_long also takes an abbreviation ("--he"). */
    if (strcmp(arg, "-h") == 0 || (n > 2 && strncmp(arg, "--help", n) == 0))
        return true;
    fprintf(stderr,
            "feedctl: \"%s\" is not an option; put \"--\" before a text that starts with "
            "'-'\n",
            index < argc ? argv[index] : arg);
    return false;
}

/* Runs getopt_long over argv with optstring, the global options and extra
 * (see fc_parse). Returns 0, FC_HELP or FC_USAGE. */
static int main__getopt(fc_ctx *x, int argc, char **argv, const char *optstring,
                        const struct option *extra, fc_opt_fn on_opt, void *arg_ctx)
{
    struct option opts[MAIN_MAX_OPTS] = {{0}};
    size_t n = MAIN_NGLOBAL;
    int c, rc;

    memcpy(opts, main__global_opts, sizeof(main__global_opts));
    for (; extra != NULL && extra[n - MAIN_NGLOBAL].name != NULL && n + 1 < MAIN_MAX_OPTS; n++)
        opts[n] = extra[n - MAIN_NGLOBAL];
    optind = 0; /* glibc: start over on this argv */
    for (;;) {
        c = getopt_long(argc, argv, optstring, opts, NULL);
        if (c == -1)
            return 0;
        if (c == 'h')
            return main__help_alone(argc, argv, optind) ? FC_HELP : FC_USAGE;
        if (c == '?' || c == ':')
            return FC_USAGE;
        rc = main__global(x, c, optarg);
        if (rc == 1)
            rc = on_opt != NULL ? on_opt(c, optarg, arg_ctx) : FC_USAGE;
        if (rc != 0)
            return rc;
    }
}

/* See feedctl.h. Options may come anywhere among the arguments; "--" ends
 * them (for a TEXT starting with '-'). */
int fc_parse(fc_ctx *x, int argc, char **argv, const struct option *extra, fc_opt_fn on_opt,
             void *arg_ctx)
{
    return main__getopt(x, argc, argv, "h", extra, on_opt, arg_ctx);
}

/* Returns the gateway command called name, or NULL. */
static const main_command *main__find(const char *name)
{
    size_t i;

    for (i = 0; i < MAIN_NCOMMANDS; i++) {
        if (strcmp(main__commands[i].name, name) == 0)
            return &main__commands[i];
    }
    return NULL;
}

/* Fills x with the defaults: the environment, else built-in values. */
static void main__defaults(fc_ctx *x)
{
    const char *url = getenv("FEEDPUSH_GATEWAY_URL");

    memset(x, 0, sizeof(*x));
    x->url = url != NULL && *url != '\0' ? url : FC_DEFAULT_URL;
    x->env_token = getenv("FEEDPUSH_TOKEN");
    x->key_file = getenv("FEEDPUSH_JWT_SIGNING_KEY");
    x->cacert = getenv("FEEDPUSH_CACERT");
    x->alg = FP_JWT_HS256;
}

/* Runs gateway command c on argv (argv[0] = its name) and turns FC_HELP
 * and FC_USAGE into their output. Returns the exit code. */
static int main__run(fc_ctx *x, const main_command *c, int argc, char **argv)
{
    int rc = fc_http_init();

    if (rc != 0)
        return rc;
    rc = c->run(x, argc, argv);
    fc_ctx_free(x);
    fc_http_cleanup();
    if (rc == FC_HELP) {
        main__command_help(c);
        return 0;
    }
    if (rc == FC_USAGE)
        fprintf(stderr, "usage: feedctl [global options] %s (feedctl %s --help)\n", c->synopsis,
                c->name);
    return rc;
}

int main(int argc, char **argv)
{
    const main_command *c;
    fc_ctx x;
    int rc;

    main__defaults(&x);
    rc = main__getopt(&x, argc, argv, "+h", NULL, NULL, NULL);
    if (rc == FC_HELP) {
        main__usage(stdout);
        return 0;
    }
    if (rc == 0 && optind >= argc)
        main__usage(stderr);
    else if (rc != 0)
        fprintf(stderr, "usage: feedctl [global options] <command> [args] (feedctl --help)\n");
    if (rc != 0 || optind >= argc)
        return FC_USAGE;
    if (strcmp(argv[optind], "token") == 0)
        return fc_cmd_token(argc - optind, argv + optind, x.key_file, x.alg);
    c = main__find(argv[optind]);
    if (c == NULL) {
        fprintf(stderr, "feedctl: unknown command \"%s\" (see feedctl --help)\n", argv[optind]);
        return FC_USAGE;
    }
    return main__run(&x, c, argc - optind, argv + optind);
}
