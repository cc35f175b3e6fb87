/*
 * fp_jws.h - the signature layer under fp_jwt (JWS compact form, RFC 7515)
 * on OpenSSL: base64url, and signing and verifying "header.payload" with
 * HS256 (HMAC-SHA256), RS256 (RSASSA-PKCS1-v1_5 SHA-256) or ES256 (ECDSA
 * P-256 SHA-256, the signature as JOSE's 64-byte R||S, not DER).
 *
 * Keys are parsed once by the caller: an HS256 secret is bytes, an RS256
 * or ES256 key an EVP_PKEY (public to verify, private to sign) whose type
 * the caller has checked. Used by fp_jwt; tests (tests/harness/ft_token,
 * the JWT unit test) use its base64url.
 */
#ifndef FP_JWS_H
#define FP_JWS_H

#include <stddef.h>

#include <openssl/evp.h>

#include "fp_jwt.h"

/* A key for one algorithm: secret for HS256, pkey for RS256/ES256. */
typedef struct {
    fp_jwt_alg alg;
    const unsigned char *secret;
    size_t secret_len;
    EVP_PKEY *pkey;
} fp_jws_key;

/* n bytes as unpadded base64url in a new NUL-terminated string, or NULL
 * when out of memory. */
char *fp_b64url_encode(const void *data, size_t n);

/* n base64url characters (no padding; n % 4 != 1) decoded into a new
 * NUL-terminated buffer (length in *out_len), or NULL when out of memory
 * or not base64. */
unsigned char *fp_b64url_decode(const char *src, size_t n, size_t *out_len);

/*
 * Verifies sig (the decoded signature part) over the n bytes of input.
 * Returns 1 when it is valid, 0 when not (any length, any content), or
 * -ENOMEM. HS256 compares in constant time.
 */
int fp_jws_verify(const fp_jws_key *k, const char *input, size_t n, const unsigned char *sig,
                  size_t sig_len);

/* Signs the n bytes of input. Returns 0 with a malloc'd signature in *sig
 * (its length in *sig_len), or -ENOMEM / -EINVAL. */
int fp_jws_sign(const fp_jws_key *k, const char *input, size_t n, unsigned char **sig,
                size_t *sig_len);

#endif
