/*
 * ft_token.h - JWTs for tests and benches: minted by fp_jwt_mint, or built
 * by hand, the header and payload JSON text exactly as given (duplicate
 * members, foreign algorithms, anything fp_jwt would never mint),
 * base64url-encoded, then signed with HMAC or given any signature text.
 * Every function returns a malloc'd string and aborts when out of memory.
 */
#ifndef FT_TOKEN_H
#define FT_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "fp_jwt.h"

/* A token fp_jwt_mint signs with key for sub with role, issued at iat (0:
 * no iat claim), expiring at exp (unix seconds); NULL, with the reason on
 * stderr, when minting fails. */
char *ft_token_mint(fp_jwt_alg alg, const unsigned char *key, size_t key_len, const char *sub,
                    fp_role role, int64_t iat, int64_t exp);

/* n bytes as unpadded base64url. */
char *ft_b64url(const void *data, size_t n);

/* "header.payload.sig", sig as given (NULL: empty). */
char *ft_token_raw(const char *header, const char *payload, const char *sig);

struct evp_md_st;
/* "header.payload.sig", sig the base64url HMAC md (e.g. EVP_sha256())
 * with key over "header.payload"; md NULL: an empty signature. */
char *ft_token_hand(const char *header, const char *payload, const struct evp_md_st *md,
                    const unsigned char *key, size_t key_len);

#endif
