/*
 * fuzz_jwt.c - fp_jwt_verify on any bytes as a token, with fixed keys: an
 * HS256 secret and the test ES256 public key (tests/data/jwt), the first
 * byte choosing the verifier. A crash, leak or UB is a finding, and so is
 * an accepted token whose claims break the rules (the corpus holds valid
 * ES256 tokens, so acceptance itself is no finding).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fp_jwt.h"

#define FUZZ__NOW ((int64_t)1750000000)

static fp_jwt_verifier *fuzz__v[2];

/* A verifier for alg with the key in file (written first when text is
 * given). Aborts on failure: the target cannot run without it. */
static fp_jwt_verifier *fuzz__verifier(fp_jwt_alg alg, const char *file, const char *text)
{
    fp_jwt_config cfg = {.alg = alg, .key_file = file, .leeway_s = 5};
    fp_jwt_verifier *v = NULL;
    char err[512];
    FILE *f;

    if (text != NULL) {
        f = fopen(file, "w");
        if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
            abort();
    }
    if (fp_jwt_verifier_new(&cfg, &v, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_jwt: %s\n", err);
        abort();
    }
    return v;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char secret[64];

    (void)argc;
    (void)argv;
    snprintf(secret, sizeof(secret), "/tmp/fuzz_jwt.%ld.secret", (long)getpid());
    fuzz__v[0] = fuzz__verifier(FP_JWT_HS256, secret, "fuzz-secret-fuzz-secret-fuzz-secret!\n");
    unlink(secret);
    fuzz__v[1] = fuzz__verifier(FP_JWT_ES256, FP_FUZZ_DATA "/jwt/es256.pub", NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fp_jwt_claims claims;
    char reason[256], *token;
    int rc;

    if (size == 0)
        return 0;
    token = malloc(size);
    if (token == NULL)
        return 0;
    memcpy(token, data + 1, size - 1);
    token[size - 1] = '\0';
    rc = fp_jwt_verify(fuzz__v[data[0] & 1], token, FUZZ__NOW, &claims, reason, sizeof(reason));
    if (rc == 0 && (!fp_id_valid(claims.sub) || claims.exp <= FUZZ__NOW))
        abort();
    free(token);
    return 0;
}
