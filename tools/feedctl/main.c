/*
 * feedctl - command-line tool for a feedpush deployment.
 *
 *   feedctl token <user_id> [options]   mint a signed JWT (dev and tests)
 *
 * The remaining commands (post, follow, feed, ribbon, stats) arrive with
 * feed-gateway; until then only `token` exists.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fp_jwt.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: feedctl token <user_id> [options]\n"
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

/* Parses the options of `token`. Returns 0, or 2 for a usage error. */
static int token__parse(int argc, char **argv, token_args *a)
{
    static const struct option longopts[] = {
        {"key", required_argument, NULL, 'k'}, {"alg", required_argument, NULL, 'a'},
        {"ttl", required_argument, NULL, 't'}, {"role", required_argument, NULL, 'r'},
        {"iss", required_argument, NULL, 'i'}, {"aud", required_argument, NULL, 'u'},
        {"iat", required_argument, NULL, 'I'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'k': a->key_file = optarg; break;
        case 'a':
            if (fp_jwt_alg_parse(optarg, &a->alg) != 0) {
                fprintf(stderr, "feedctl: --alg must be HS256, RS256 or ES256\n");
                return 2;
            }
            break;
        case 't': a->ttl = atoll(optarg); break;
        case 'r':
            if (strcmp(optarg, "user") != 0 && strcmp(optarg, "service") != 0) {
                fprintf(stderr, "feedctl: --role must be user or service\n");
                return 2;
            }
            a->claims.role = strcmp(optarg, "service") == 0 ? FP_ROLE_SERVICE : FP_ROLE_USER;
            break;
        case 'i': a->claims.iss = optarg; break;
        case 'u': a->claims.aud = optarg; break;
        case 'I': a->claims.iat = atoll(optarg); break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return 2;
        }
    }
    if (optind + 1 != argc || a->ttl <= 0) {
        usage(stderr);
        return 2;
    }
    a->claims.sub = argv[optind];
    return 0;
}

static int cmd_token(int argc, char **argv)
{
    token_args a = {0};
    unsigned char *key = NULL;
    size_t key_len = 0;
    char *token = NULL, err[512];
    int rc;

    a.alg = FP_JWT_HS256;
    a.ttl = 3600;
    a.key_file = getenv("FEEDPUSH_JWT_SIGNING_KEY");
    rc = token__parse(argc, argv, &a);
    if (rc != 0)
        return rc;
    if (a.key_file == NULL || *a.key_file == '\0') {
        fprintf(stderr, "feedctl: no signing key: pass --key FILE or set FEEDPUSH_JWT_SIGNING_KEY\n");
        return 2;
    }
    if (a.claims.iat == 0)
        a.claims.iat = (int64_t)time(NULL);
    a.claims.exp = a.claims.iat + a.ttl;
    rc = fp_jwt_load_key(a.alg, a.key_file, &key, &key_len, err, sizeof(err));
    if (rc == 0)
        rc = fp_jwt_mint(a.alg, key, key_len, &a.claims, &token, err, sizeof(err));
    fp_jwt_key_free(key, key_len);
    if (rc != 0) {
        fprintf(stderr, "feedctl: %s\n", err);
        return 1;
    }
    printf("%s\n", token);
    free(token);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "token") == 0)
        return cmd_token(argc - 1, argv + 1);
    fprintf(stderr, "feedctl: unknown command \"%s\" (see feedctl --help)\n", argv[1]);
    return 2;
}
