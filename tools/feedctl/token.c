/*
 * token.c - `feedctl token` (mint a signed JWT) and the choice of the
 * bearer token for the commands that talk to the gateway as a user.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "feedctl.h"
#include "fp_id.h"

/* Lifetime of a token minted for --as. */
#define TOKEN_AS_TTL_S 300

static void token__usage(FILE *out)
{
    fprintf(out, "usage: feedctl token <user_id> [options]\n"
                 "\n"
                 "Mints a signed JWT for user_id and prints it.\n"
                 "  --key FILE     HS256 secret file, or RS256/ES256 private key PEM\n"
                 "                 (default: $FEEDPUSH_JWT_SIGNING_KEY)\n"
                 "  --alg ALG      HS256 (default), RS256 or ES256\n"
                 "  --ttl SECONDS  lifetime (default 3600)\n"
                 "  --role ROLE    user (default) or service\n"
                 "  --iss ISSUER   iss claim\n"
                 "  --aud AUDIENCE aud claim\n"
                 "  --iat UNIX     issued-at (default: now)\n");
}

typedef struct {
    const char *key_file;
    fp_jwt_alg alg;
    long long ttl;
    fp_jwt_mint_claims claims;
} token_args;

/* The longest --ttl: ten years. */
#define TOKEN_TTL_MAX_S (10LL * 366 * 86400)
/* The latest --iat: the year 9999, as far as the JWT times go here. */
#define TOKEN_IAT_MAX 253402300799LL

/* Handles one option of `token`. Returns 0, or 2 for a usage error. */
static int token__option(int c, token_args *a)
{
    long long v;

    switch (c) {
    case 'k':
        a->key_file = optarg;
        break;
    case 'a':
        if (fp_jwt_alg_parse(optarg, &a->alg) != 0) {
            fprintf(stderr, "feedctl: --alg must be HS256, RS256 or ES256\n");
            return 2;
        }
        break;
    case 't':
        return fc_check_number("--ttl", " of seconds", optarg, 1, TOKEN_TTL_MAX_S, &a->ttl);
    case 'r':
        if (strcmp(optarg, "user") != 0 && strcmp(optarg, "service") != 0) {
            fprintf(stderr, "feedctl: --role must be user or service\n");
            return 2;
        }
        a->claims.role = strcmp(optarg, "service") == 0 ? FP_ROLE_SERVICE : FP_ROLE_USER;
        break;
    case 'i':
        a->claims.iss = optarg;
        break;
    case 'u':
        a->claims.aud = optarg;
        break;
    case 'I':
        if (fc_check_number("--iat", " of seconds", optarg, 1, TOKEN_IAT_MAX, &v) != 0)
            return 2;
        a->claims.iat = v;
        break;
    case 'h':
        token__usage(stdout);
        exit(0);
    default:
        token__usage(stderr);
        return 2;
    }
    return 0;
}

/* Parses the options of `token` (argv[0] = "token"). Returns 0, or 2 for
 * a usage error. */
static int token__parse(int argc, char **argv, token_args *a)
{
    static const struct option longopts[] = {
        {"key", required_argument, NULL, 'k'},
        {"alg", required_argument, NULL, 'a'},
        {"ttl", required_argument, NULL, 't'},
        {"role", required_argument, NULL, 'r'},
        {"iss", required_argument, NULL, 'i'},
        {"aud", required_argument, NULL, 'u'},
        {"iat", required_argument, NULL, 'I'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, rc;

    optind = 0; /* glibc: start over on this argv */
    for (;;) {
        c = getopt_long(argc, argv, "h", longopts, NULL);
        if (c == -1)
            break;
        rc = token__option(c, a);
        if (rc != 0)
            return rc;
    }
    if (optind + 1 != argc || a->ttl <= 0) {
        token__usage(stderr);
        return 2;
    }
    a->claims.sub = argv[optind];
    return 0;
}

/* Reads the signing key for alg from key_file and mints a token with
 * claims. Returns 0 with a malloc'd token in *token, or -errno with the
 * reason in err. */
int fc_mint(fp_jwt_alg alg, const char *key_file, const fp_jwt_mint_claims *claims, char **token,
            char *err, size_t errlen)
{
    unsigned char *key = NULL;
    size_t key_len = 0;
    int rc;

    rc = fp_jwt_load_key(alg, key_file, &key, &key_len, err, errlen);
    if (rc == 0)
        rc = fp_jwt_mint(alg, key, key_len, claims, token, err, errlen);
    fp_jwt_key_free(key, key_len);
    return rc;
}

/* `feedctl token <user_id> [options]`: prints a signed JWT. key_file and
 * alg are the defaults for --key and --alg (the global options given
 * before the command, else $FEEDPUSH_JWT_SIGNING_KEY and HS256). Returns
 * the exit code. */
int fc_cmd_token(int argc, char **argv, const char *key_file, fp_jwt_alg alg)
{
    token_args a = {0};
    char *token = NULL, err[512];
    int rc;

    a.alg = alg;
    a.ttl = 3600;
    a.key_file = key_file;
    rc = token__parse(argc, argv, &a);
    if (rc != 0)
        return rc;
    if (a.key_file == NULL || *a.key_file == '\0') {
        fprintf(stderr,
                "feedctl: no signing key: pass --key FILE or set FEEDPUSH_JWT_SIGNING_KEY\n");
        return 2;
    }
    if (a.claims.iat == 0)
        a.claims.iat = (int64_t)time(NULL);
    a.claims.exp = a.claims.iat + a.ttl;
    rc = fc_mint(a.alg, a.key_file, &a.claims, &token, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "feedctl: %s\n", err);
        return 1;
    }
    printf("%s\n", token);
    free(token);
    return 0;
}

/* Sets x->bearer to a copy of token. Returns 0 or FC_FAIL. */
static int auth__copy(fc_ctx *x, const char *token)
{
    x->bearer = strdup(token);
    if (x->bearer == NULL) {
        fprintf(stderr, "feedctl: out of memory\n");
        return FC_FAIL;
    }
    return 0;
}

/* Mints a TOKEN_AS_TTL_S token for --as with --key into x->bearer.
 * Returns 0 or FC_FAIL after printing why. */
static int auth__mint(fc_ctx *x)
{
    fp_jwt_mint_claims c = {0};
    char err[512];
    int rc;

    c.sub = x->as;
    c.iat = (int64_t)time(NULL);
    c.exp = c.iat + TOKEN_AS_TTL_S;
    rc = fc_mint(x->alg, x->key_file, &c, &x->bearer, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "feedctl: %s\n", err);
        return FC_FAIL;
    }
    return 0;
}

/* Asks the gateway's dev endpoint (POST /api/v1/dev/token) for a token for
 * --as into x->bearer. Returns 0 or FC_FAIL after printing why; a 404
 * means the gateway is not in dev mode. */
static int auth__dev(fc_ctx *x)
{
    cJSON *body = cJSON_CreateObject();
    const cJSON *token;
    fc_reply r;
    int rc;

    if (body == NULL || cJSON_AddStringToObject(body, "user_id", x->as) == NULL) {
        fprintf(stderr, "feedctl: out of memory\n");
        cJSON_Delete(body);
        return FC_FAIL;
    }
    rc = fc_request(x, "POST", "/api/v1/dev/token", body, NULL, &r);
    if (rc == 0 && r.status == 404) {
        fprintf(stderr, "feedctl: the gateway is not in dev mode: pass --token or --key\n");
        rc = FC_FAIL;
    } else if (rc == 0) {
        rc = fc_reply_error(&r);
    }
    if (rc == 0) {
        token = cJSON_GetObjectItemCaseSensitive(r.json, "token");
        if (cJSON_IsString(token)) {
            rc = auth__copy(x, token->valuestring);
        } else {
            fprintf(stderr, "feedctl: the gateway's dev token reply holds no token\n");
            rc = FC_FAIL;
        }
    }
    fc_reply_free(&r);
    cJSON_Delete(body);
    return rc;
}

/* Chooses the bearer token for a command that acts as a user, once per
 * run: --token; else, with --as, a token minted for --as with the signing
 * key (--key or $FEEDPUSH_JWT_SIGNING_KEY) or, without a key, one from the
 * gateway's dev endpoint; else $FEEDPUSH_TOKEN. Sets x->bearer. Returns 0,
 * FC_FAIL, or FC_USAGE (no way to authenticate, bad --as). */
int fc_auth(fc_ctx *x)
{
    if (x->bearer != NULL)
        return 0;
    if (x->token != NULL && *x->token != '\0')
        return auth__copy(x, x->token);
    if (x->as != NULL) {
        if (fc_check_id("--as", x->as) != 0)
            return FC_USAGE;
        if (x->key_file != NULL && *x->key_file != '\0')
            return auth__mint(x);
        return auth__dev(x);
    }
    if (x->env_token != NULL && *x->env_token != '\0')
        return auth__copy(x, x->env_token);
    fprintf(stderr, "feedctl: this command acts as a user: pass --as USER or --token JWT\n");
    return FC_USAGE;
}
