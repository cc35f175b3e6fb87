/*
 * feedctl.h - what the feedctl files share: the global options, the
 * option parser (main.c), the token choice (token.c), the one small HTTP
 * client (http.c) and the commands (commands.c, stats.c; dead.c talks to
 * RabbitMQ instead of the gateway).
 *
 * Exit codes: 0 done, 1 the gateway (dead-letters: RabbitMQ) refused or
 * could not be reached, or no token could be made (token.c: the key file),
 * 2 usage error. A command returns FC_HELP when it saw --help; main.c
 * then prints that command's help and exits 0.
 */
#ifndef FEEDCTL_H
#define FEEDCTL_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "fp_jwt.h"

#define FC_DEFAULT_URL "http://127.0.0.1:8080"
#define FC_FAIL 1
#define FC_USAGE 2
#define FC_HELP (-1)

/* getopt_long codes of the global options (above any single character). */
enum {
    FC_OPT_URL = 0x100,
    FC_OPT_AS,
    FC_OPT_TOKEN,
    FC_OPT_KEY,
    FC_OPT_ALG,
    FC_OPT_JSON,
    FC_OPT_VERSION,
    FC_OPT_CACERT
};

typedef struct fc_http fc_http;

/* One run of feedctl: the global options and what a command acquired. */
typedef struct {
    const char *url;       /* gateway base URL, no trailing '/' needed */
    const char *as;        /* --as: the acting user, or NULL */
    const char *token;     /* --token, or NULL */
    const char *env_token; /* $FEEDPUSH_TOKEN, or NULL */
    const char *key_file;  /* --key or $FEEDPUSH_JWT_SIGNING_KEY, or NULL */
    const char *cacert;    /* --cacert or $FEEDPUSH_CACERT: CA file for https, or NULL */
    fp_jwt_alg alg;        /* --alg, HS256 by default */
    bool json;             /* --json: print the raw reply */
    fc_http *http;         /* the HTTP client, made by the first request */
    char *bearer;          /* the token in use, after fc_auth (owned) */
} fc_ctx;

/* A reply: status, the body as received (NUL-terminated) and, when the
 * body is JSON, its parse. */
typedef struct {
    long status;
    char *body;
    size_t len;
    cJSON *json;
} fc_reply;

/* Called for each option of a command that is not a global one; returns
 * 0, or FC_USAGE after printing why. */
typedef int (*fc_opt_fn)(int code, const char *arg, void *arg_ctx);

/* main.c: parses argv (argv[0] = the command name) with the global options
 * plus extra (NULL or terminated by a zero entry), calling on_opt for the
 * extra ones. Returns 0 with the positional arguments at argv[optind..],
 * FC_HELP for --help, or FC_USAGE after printing why. */
int fc_parse(fc_ctx *x, int argc, char **argv, const struct option *extra, fc_opt_fn on_opt,
             void *arg_ctx);

/* token.c */
int fc_cmd_token(int argc, char **argv, const char *key_file, fp_jwt_alg alg);
int fc_mint(fp_jwt_alg alg, const char *key_file, const fp_jwt_mint_claims *claims, char **token,
            char *err, size_t errlen);
int fc_auth(fc_ctx *x);

/* http.c: fc_http_init/fc_http_cleanup around a run's requests. */
int fc_http_init(void);
void fc_http_cleanup(void);
int fc_request(fc_ctx *x, const char *method, const char *path, const cJSON *body,
               const char *bearer, fc_reply *r);
int fc_call(fc_ctx *x, const char *method, const char *path, const cJSON *body, fc_reply *r);
int fc_reply_error(const fc_reply *r);
/* 0 when r's body is a JSON object, else FC_FAIL after saying so. */
int fc_reply_object(const fc_reply *r);
void fc_reply_print(const fc_reply *r);
void fc_reply_free(fc_reply *r);
char *fc_path(fc_ctx *x, const char *prefix, const char *segment);
void fc_ctx_free(fc_ctx *x);

/* commands.c: helpers, then the commands (argv[0] = the command name). */
void fc_put_clean(FILE *out, const char *s);
/* fc_put_clean of len bytes, a NUL among them printed as '?'. */
void fc_put_clean_n(FILE *out, const char *s, size_t len);
void fc_put_json(FILE *out, const char *s, size_t len);
int fc_check_id(const char *what, const char *s);
/* Reads s, option what's value, as a whole decimal number from min to
 * max (unit: how the message names it after "a whole number", "" for
 * nothing) into *out. Returns 0, or FC_USAGE after saying why. */
int fc_check_number(const char *what, const char *unit, const char *s, long long min, long long max,
                    long long *out);
int fc_cmd_post(fc_ctx *x, int argc, char **argv);
int fc_cmd_delete(fc_ctx *x, int argc, char **argv);
int fc_cmd_follow(fc_ctx *x, int argc, char **argv);
int fc_cmd_unfollow(fc_ctx *x, int argc, char **argv);
int fc_cmd_feed(fc_ctx *x, int argc, char **argv);
int fc_cmd_ribbon(fc_ctx *x, int argc, char **argv);
/* stats.c */
int fc_cmd_stats(fc_ctx *x, int argc, char **argv);
/* dead.c: RabbitMQ's feed.events.dead */
int fc_cmd_dead_letters(fc_ctx *x, int argc, char **argv);

#endif
