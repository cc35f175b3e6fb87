/*
 * commands.c - the feedctl commands that act as a user: post, delete,
 * follow, unfollow, feed, ribbon. Each checks its arguments (ids with
 * fp_id_valid) before anything goes out, takes a token (fc_auth), sends
 * one request and prints the reply: the raw JSON with --json, else a
 * short human form in which text from the gateway has its control
 * characters replaced.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "feedctl.h"
#include "fp_id.h"
#include "fp_json.h"

/* Prints s on out with ASCII and C1 control characters replaced (line
 * breaks and tabs by a space, the rest by '?'), and so is every byte that
 * is not well-formed UTF-8 (a lone 0x9b is CSI to a terminal not in
 * UTF-8 mode), so text from the gateway or a dead letter cannot move the
 * cursor or send terminal escapes. */
void fc_put_clean(FILE *out, const char *s)
{
    fc_put_clean_n(out, s, strlen(s));
}

void fc_put_clean_n(FILE *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n;

    while (i < len) {
        n = fp_json_utf8_len(s + i, len - i);
        if (p[i] == '\n' || p[i] == '\r' || p[i] == '\t' || p[i] == '\v' || p[i] == '\f')
            fputc(' ', out);
        else if (n == 0 || p[i] < 0x20 || p[i] == 0x7f || (p[i] == 0xc2 && p[i + 1] <= 0x9f))
            fputc('?', out); /* U+0080..U+009F too, e.g. the 8-bit CSI */
        else
            fwrite(s + i, 1, n, out);
        i += n > 0 ? n : 1;
    }
}

/* Prints the len bytes of JSON text at s on out as they are, except the
 * characters a terminal may take as controls: U+0080..U+009F (the 8-bit
 * CSI among them) and DEL as \u escapes, which JSON readers decode to the
 * same text, and so are C0 controls other than tab and line breaks
 * (valid JSON has none unescaped); a byte that is not well-formed UTF-8
 * (a header of a dead letter, a body not from the gateway) as \ufffd,
 * so the output is UTF-8 whatever came in. */
void fc_put_json(FILE *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n;

    while (i < len) {
        n = fp_json_utf8_len(s + i, len - i);
        if (n == 0)
            fputs("\\ufffd", out);
        else if (n == 2 && p[i] == 0xc2 && p[i + 1] <= 0x9f)
            fprintf(out, "\\u%04x", p[i + 1]);
        else if (p[i] == 0x7f || (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r'))
            fprintf(out, "\\u%04x", p[i]);
        else
            fwrite(s + i, 1, n, out);
        i += n > 0 ? n : 1;
    }
}

/* Returns 0 when s is a valid id, else FC_USAGE after saying so (what
 * names the argument, e.g. "POST_ID"). */
int fc_check_id(const char *what, const char *s)
{
    if (fp_id_valid(s))
        return 0;
    fprintf(stderr, "feedctl: %s must be an id: 1 to %d characters of A-Z a-z 0-9 _ -\n", what,
            FP_ID_MAX);
    return FC_USAGE;
}

int fc_check_number(const char *what, const char *unit, const char *s, long long min, long long max,
                    long long *out)
{
    char *end = NULL;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno == 0 && end != s && *end == '\0' && v >= min && v <= max) {
        *out = v;
        return 0;
    }
    fprintf(stderr, "feedctl: %s takes a whole number%s from %lld to %lld, not \"%s\"\n", what,
            unit, min, max, s);
    return FC_USAGE;
}

/* Prints the string member name of o cleaned, or "-" when it is absent or
 * not a string. */
static void cmd__put_member(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    fc_put_clean(stdout, cJSON_IsString(v) ? v->valuestring : "-");
}

/* Prints the member name of o, milliseconds since the epoch, as local
 * "YYYY-MM-DD HH:MM:SS", or "-" when it is not a usable number. */
static void cmd__put_time(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    char buf[32];
    struct tm tm;
    time_t t;

    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740992.0) {
        fputs("-", stdout);
        return;
    }
    t = (time_t)(v->valuedouble / 1000);
    if (localtime_r(&t, &tm) == NULL || strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm) == 0)
        fputs("-", stdout);
    else
        fputs(buf, stdout);
}

/* Parses a command without options of its own that takes exactly n
 * arguments. Returns 0 with them at argv[optind..], FC_HELP or FC_USAGE. */
static int cmd__parse_n(fc_ctx *x, int argc, char **argv, int n)
{
    int rc = fc_parse(x, argc, argv, NULL, NULL, NULL);

    if (rc != 0)
        return rc;
    if (argc - optind != n) {
        fprintf(stderr, "feedctl: %s takes %d argument%s, not %d\n", argv[0], n, n == 1 ? "" : "s",
                argc - optind);
        return FC_USAGE;
    }
    return 0;
}

/* Takes a token and sends one API request; with --json prints the raw
 * reply. Returns 0 with the reply in *r (always safe to fc_reply_free),
 * or the exit code. */
static int cmd__send(fc_ctx *x, const char *method, const char *path, const cJSON *body,
                     fc_reply *r)
{
    int rc;

    memset(r, 0, sizeof(*r));
    rc = fc_auth(x);
    if (rc == 0)
        rc = fc_call(x, method, path, body, r);
    if (rc == 0 && x->json)
        fc_reply_print(r);
    return rc;
}

/* Option handler of `post`: --idempotency-key KEY, an id
 * ([A-Za-z0-9_-], 1-64). */
static int post__option(int code, const char *arg, void *arg_ctx)
{
    (void)code;
    *(const char **)arg_ctx = arg;
    return fc_check_id("--idempotency-key", arg);
}

/* `post [--idempotency-key KEY] TEXT`: POST /api/v1/posts
 * {"text"[,"key"]}; prints the new post's id. With a key, the same
 * command run again (after a failure whose outcome is unknown: a 503, a
 * timeout) names the same post, and the bridges apply it once. */
int fc_cmd_post(fc_ctx *x, int argc, char **argv)
{
    static const struct option opts[] = {
        {"idempotency-key", required_argument, NULL, 'K'},
        {NULL, 0, NULL, 0},
    };
    const char *key = NULL;
    cJSON *body = NULL;
    const cJSON *id;
    fc_reply r = {0};
    int rc = fc_parse(x, argc, argv, opts, post__option, &key);

    if (rc != 0)
        return rc;
    if (argc - optind != 1) {
        fprintf(stderr, "feedctl: post takes 1 argument, not %d\n", argc - optind);
        return FC_USAGE;
    }
    if (argv[optind][0] == '\0') {
        fprintf(stderr, "feedctl: TEXT must not be empty\n");
        return FC_USAGE;
    }
    body = cJSON_CreateObject();
    if (body == NULL || cJSON_AddStringToObject(body, "text", argv[optind]) == NULL ||
        (key != NULL && cJSON_AddStringToObject(body, "key", key) == NULL)) {
        fprintf(stderr, "feedctl: out of memory\n");
        rc = FC_FAIL;
        goto done;
    }
    rc = cmd__send(x, "POST", "/api/v1/posts", body, &r);
    if (rc != 0 || x->json)
        goto done;
    id = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r.json, "post"), "id");
    if (cJSON_IsString(id)) {
        fc_put_clean(stdout, id->valuestring);
        putchar('\n');
    } else {
        fprintf(stderr, "feedctl: the gateway's reply holds no post id\n");
        rc = FC_FAIL;
    }
done:
    fc_reply_free(&r);
    cJSON_Delete(body);
    return rc;
}

/* Sends method prefix+ID with no body for a command taking one id (what
 * names it in messages) and, in human form, prints done followed by the
 * id. Returns the exit code. */
static int cmd__on_id(fc_ctx *x, int argc, char **argv, const char *what, const char *method,
                      const char *prefix, const char *done)
{
    fc_reply r = {0};
    char *path;
    int rc = cmd__parse_n(x, argc, argv, 1);

    if (rc != 0)
        return rc;
    if (fc_check_id(what, argv[optind]) != 0)
        return FC_USAGE;
    path = fc_path(x, prefix, argv[optind]);
    if (path == NULL)
        return FC_FAIL;
    rc = cmd__send(x, method, path, NULL, &r);
    if (rc == 0 && !x->json)
        printf("%s %s\n", done, argv[optind]);
    fc_reply_free(&r);
    free(path);
    return rc;
}

/* `delete POST_ID`: DELETE /api/v1/posts/{id}. */
int fc_cmd_delete(fc_ctx *x, int argc, char **argv)
{
    return cmd__on_id(x, argc, argv, "POST_ID", "DELETE", "/api/v1/posts/", "deleted");
}

/* `follow USER_ID`: PUT /api/v1/follows/{user}. */
int fc_cmd_follow(fc_ctx *x, int argc, char **argv)
{
    return cmd__on_id(x, argc, argv, "USER_ID", "PUT", "/api/v1/follows/", "following");
}

/* `unfollow USER_ID`: DELETE /api/v1/follows/{user}. */
int fc_cmd_unfollow(fc_ctx *x, int argc, char **argv)
{
    return cmd__on_id(x, argc, argv, "USER_ID", "DELETE", "/api/v1/follows/", "not following");
}

typedef struct {
    long long limit; /* 0 = the gateway's default */
    const char *before;
} feed_args;

/* Option handler of `feed`: --limit N (1-1000), --before POST_ID. */
static int feed__option(int code, const char *arg, void *arg_ctx)
{
    feed_args *a = arg_ctx;

    if (code == 'b') {
        a->before = arg;
        return fc_check_id("--before", arg);
    }
    return fc_check_number("--limit", "", arg, 1, 1000, &a->limit);
}

/* Returns the feed path with the query of a (malloc'd), or NULL after
 * printing why. */
static char *feed__path(fc_ctx *x, const feed_args *a)
{
    char prefix[64];

    if (a->limit > 0)
        snprintf(prefix, sizeof(prefix), "/api/v1/feed?limit=%lld", a->limit);
    else
        snprintf(prefix, sizeof(prefix), "/api/v1/feed");
    if (a->before == NULL)
        return fc_path(x, prefix, "");
    strcat(prefix, a->limit > 0 ? "&before=" : "?before=");
    return fc_path(x, prefix, a->before);
}

/* Prints a feed page: "ID  AUTHOR  TIME  TEXT" per post, in the order
 * given (newest first), then "next: --before ID" when there is more. */
static void feed__print(const cJSON *page)
{
    const cJSON *posts = cJSON_GetObjectItemCaseSensitive(page, "posts");
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(page, "next_before");
    const cJSON *p;

    cJSON_ArrayForEach(p, posts)
    {
        cmd__put_member(p, "id");
        fputs("  ", stdout);
        cmd__put_member(p, "author_id");
        fputs("  ", stdout);
        cmd__put_time(p, "created_at");
        fputs("  ", stdout);
        cmd__put_member(p, "text");
        putchar('\n');
    }
    if (cJSON_IsString(next)) {
        fputs("next: --before ", stdout);
        fc_put_clean(stdout, next->valuestring);
        putchar('\n');
    }
}

/* `feed [--limit N] [--before POST_ID]`: GET /api/v1/feed. */
int fc_cmd_feed(fc_ctx *x, int argc, char **argv)
{
    static const struct option opts[] = {
        {"limit", required_argument, NULL, 'l'},
        {"before", required_argument, NULL, 'b'},
        {NULL, 0, NULL, 0},
    };
    feed_args a = {0};
    fc_reply r = {0};
    char *path;
    int rc = fc_parse(x, argc, argv, opts, feed__option, &a);

    if (rc != 0)
        return rc;
    if (optind != argc) {
        fprintf(stderr, "feedctl: feed takes no arguments\n");
        return FC_USAGE;
    }
    path = feed__path(x, &a);
    if (path == NULL)
        return FC_FAIL;
    rc = cmd__send(x, "GET", path, NULL, &r);
    if (rc == 0 && !x->json)
        feed__print(r.json);
    fc_reply_free(&r);
    free(path);
    return rc;
}

typedef struct {
    const char *text;
    const char *name;
} ribbon_args;

/* Option handler of `ribbon`: --text T, --name N. */
static int ribbon__option(int code, const char *arg, void *arg_ctx)
{
    ribbon_args *a = arg_ctx;

    if (code == 't')
        a->text = arg;
    else
        a->name = arg;
    return 0;
}

/* Prints one ribbon entry: "USER  NAME  TEXT  TIME" ("-" for what is
 * absent). */
static void ribbon__print_entry(const cJSON *e)
{
    cmd__put_member(e, "user_id");
    fputs("  ", stdout);
    cmd__put_member(e, "name");
    fputs("  ", stdout);
    cmd__put_member(e, "text");
    fputs("  ", stdout);
    cmd__put_time(e, "at");
    putchar('\n');
}

/* Builds the body of `ribbon push`: {"text"?,"name"?}, or NULL with *body
 * unset when neither is given. Returns 0 or FC_FAIL (out of memory). */
static int ribbon__body(const ribbon_args *a, cJSON **body)
{
    *body = NULL;
    if (a->text == NULL && a->name == NULL)
        return 0;
    *body = cJSON_CreateObject();
    if (*body == NULL ||
        (a->text != NULL && cJSON_AddStringToObject(*body, "text", a->text) == NULL) ||
        (a->name != NULL && cJSON_AddStringToObject(*body, "name", a->name) == NULL)) {
        fprintf(stderr, "feedctl: out of memory\n");
        return FC_FAIL;
    }
    return 0;
}

/* Checks the arguments of `ribbon`: none (show) or "push". Sets *push.
 * Returns 0 or FC_USAGE. */
static int ribbon__mode(int argc, char **argv, const ribbon_args *a, bool *push)
{
    *push = argc - optind == 1 && strcmp(argv[optind], "push") == 0;
    if (argc - optind > 1 || (argc - optind == 1 && !*push)) {
        fprintf(stderr, "feedctl: ribbon takes no argument or \"push\"\n");
        return FC_USAGE;
    }
    if (!*push && (a->text != NULL || a->name != NULL)) {
        fprintf(stderr, "feedctl: --text and --name go with \"ribbon push\"\n");
        return FC_USAGE;
    }
    return 0;
}

/* `ribbon`: GET /api/v1/ribbon, one line per entry; `ribbon push [--text
 * T] [--name N]`: POST /api/v1/ribbon, prints the entry pushed. */
int fc_cmd_ribbon(fc_ctx *x, int argc, char **argv)
{
    static const struct option opts[] = {
        {"text", required_argument, NULL, 't'},
        {"name", required_argument, NULL, 'n'},
        {NULL, 0, NULL, 0},
    };
    ribbon_args a = {0};
    cJSON *body = NULL;
    const cJSON *e;
    fc_reply r = {0};
    bool push;
    int rc = fc_parse(x, argc, argv, opts, ribbon__option, &a);

    if (rc == 0)
        rc = ribbon__mode(argc, argv, &a, &push);
    if (rc != 0)
        return rc;
    rc = push ? ribbon__body(&a, &body) : 0;
    if (rc == 0)
        rc = cmd__send(x, push ? "POST" : "GET", "/api/v1/ribbon", body, &r);
    if (rc == 0 && !x->json && push)
        ribbon__print_entry(cJSON_GetObjectItemCaseSensitive(r.json, "entry"));
    if (rc == 0 && !x->json && !push) {
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(r.json, "entries"))
        {
            ribbon__print_entry(e);
        }
    }
    fc_reply_free(&r);
    cJSON_Delete(body);
    return rc;
}
