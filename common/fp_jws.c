/*
 * fp_jws.c - base64url and the three JWS algorithms on OpenSSL 3.
 *
 * The keys arrive parsed (fp_jwt parses a public key once per verifier),
 * so a verification is one HMAC or one EVP_DigestVerify: no PEM parsing
 * per token. An EVP_PKEY is only read here, so one key serves any number
 * of threads, each call with its own EVP_MD_CTX.
 */
#include "fp_jws.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/hmac.h>

/* ES256: R and S are 32 bytes each. */
#define JWS__ES256_HALF 32

char *fp_b64url_encode(const void *data, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    size_t len, i;

    if (out == NULL)
        return NULL;
    len = (size_t)EVP_EncodeBlock((unsigned char *)out, data, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (i = 0; i < len; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    return out;
}

/* The 6-bit value of a base64url character, or -1 for any other. */
static int jws__b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    return c == '_' ? 63 : -1;
}

/*
 * Is src (n characters) base64url in its one canonical spelling: only
 * the alphabet's characters (no padding, no whitespace, none of standard
 * base64's + and /), and a last character whose bits past the data are
 * zero? Without the last check a token had four spellings or more that
 * all verified (RFC 4648, section 3.5).
 */
static bool jws__b64url_canonical(const char *src, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (jws__b64url_value(src[i]) < 0)
            return false;
    }
    if (n % 4 == 2)
        return (jws__b64url_value(src[n - 1]) & 0x0f) == 0;
    if (n % 4 == 3)
        return (jws__b64url_value(src[n - 1]) & 0x03) == 0;
    return n % 4 == 0;
}

/*
 * Checks that src is canonical base64url, maps it to standard base64,
 * pads, and decodes with EVP_DecodeBlock, which counts the padding as
 * zero bytes: they are taken off again.
 */
unsigned char *fp_b64url_decode(const char *src, size_t n, size_t *out_len)
{
    size_t pad = (4 - n % 4) % 4, i;
    unsigned char *in = malloc(n + pad + 1);
    unsigned char *out = malloc((n + pad) / 4 * 3 + 1);
    int r = -1;

    if (in != NULL && out != NULL && jws__b64url_canonical(src, n)) {
        for (i = 0; i < n; i++) {
            if (src[i] == '-')
                in[i] = '+';
            else if (src[i] == '_')
                in[i] = '/';
            else
                in[i] = (unsigned char)src[i];
        }
        memset(in + n, '=', pad);
        r = EVP_DecodeBlock(out, in, (int)(n + pad));
    }
    free(in);
    if (r < 0 || (size_t)r < pad) {
        free(out);
        return NULL;
    }
    *out_len = (size_t)r - pad;
    out[*out_len] = '\0';
    return out;
}

/* HMAC-SHA256 of input into mac (32 bytes). Returns 0 or -ENOMEM. */
static int jws__hmac(const fp_jws_key *k, const char *input, size_t n, unsigned char *mac,
                     unsigned int *mac_len)
{
    if (HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)input, n, mac,
             mac_len) == NULL) {
        ERR_clear_error();
        return -ENOMEM;
    }
    return 0;
}

/* JOSE R||S (64 bytes) as a DER ECDSA-Sig-Value. Returns its length with
 * *der set (OPENSSL_free it), or -1. */
static int jws__es256_to_der(const unsigned char *rs, unsigned char **der)
{
    ECDSA_SIG *s = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(rs, JWS__ES256_HALF, NULL);
    BIGNUM *sv = BN_bin2bn(rs + JWS__ES256_HALF, JWS__ES256_HALF, NULL);
    int len = -1;

    *der = NULL;
    if (s != NULL && r != NULL && sv != NULL && ECDSA_SIG_set0(s, r, sv) == 1) {
        r = NULL; /* owned by s now */
        sv = NULL;
        len = i2d_ECDSA_SIG(s, der);
    }
    BN_free(r);
    BN_free(sv);
    ECDSA_SIG_free(s);
    return len;
}

/* A DER ECDSA-Sig-Value as JOSE R||S into rs (64 bytes). 0 or -EINVAL. */
static int jws__der_to_es256(const unsigned char *der, size_t len, unsigned char *rs)
{
    const unsigned char *p = der;
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)len);
    int rc = -EINVAL;

    if (s != NULL && BN_bn2binpad(ECDSA_SIG_get0_r(s), rs, JWS__ES256_HALF) == JWS__ES256_HALF &&
        BN_bn2binpad(ECDSA_SIG_get0_s(s), rs + JWS__ES256_HALF, JWS__ES256_HALF) == JWS__ES256_HALF)
        rc = 0;
    ECDSA_SIG_free(s);
    return rc;
}

/* RS256/ES256 verification of DER-or-PKCS#1 sig. 1, 0 or -ENOMEM. */
static int jws__pk_verify(EVP_PKEY *pkey, const char *input, size_t n, const unsigned char *sig,
                          size_t sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = -ENOMEM;

    if (ctx == NULL)
        return -ENOMEM;
    if (EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey) == 1)
        rc = EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)input, n) == 1;
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    return rc;
}

int fp_jws_verify(const fp_jws_key *k, const char *input, size_t n, const unsigned char *sig,
                  size_t sig_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE], *der = NULL;
    unsigned int mac_len = 0;
    int der_len, rc;

    switch (k->alg) {
    case FP_JWT_HS256:
        rc = jws__hmac(k, input, n, mac, &mac_len);
        if (rc != 0)
            return rc;
        rc = sig_len == mac_len && CRYPTO_memcmp(sig, mac, mac_len) == 0;
        OPENSSL_cleanse(mac, sizeof(mac));
        return rc;
    case FP_JWT_RS256:
        return jws__pk_verify(k->pkey, input, n, sig, sig_len);
    case FP_JWT_ES256:
        if (sig_len != 2 * JWS__ES256_HALF)
            return 0;
        der_len = jws__es256_to_der(sig, &der);
        if (der_len <= 0)
            return -ENOMEM;
        rc = jws__pk_verify(k->pkey, input, n, der, (size_t)der_len);
        OPENSSL_free(der);
        return rc;
    }
    return 0;
}

/* RS256/ES256 signature as OpenSSL writes it (ES256: DER). 0 or -errno. */
static int jws__pk_sign(EVP_PKEY *pkey, const char *input, size_t n, unsigned char **sig,
                        size_t *sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = -EINVAL;

    *sig = NULL;
    if (ctx == NULL)
        return -ENOMEM;
    if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) != 1 ||
        EVP_DigestSign(ctx, NULL, sig_len, (const unsigned char *)input, n) != 1)
        goto done;
    *sig = malloc(*sig_len);
    if (*sig == NULL) {
        rc = -ENOMEM;
        goto done;
    }
    if (EVP_DigestSign(ctx, *sig, sig_len, (const unsigned char *)input, n) == 1)
        rc = 0;
done:
    if (rc != 0) {
        free(*sig);
        *sig = NULL;
    }
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    return rc;
}

int fp_jws_sign(const fp_jws_key *k, const char *input, size_t n, unsigned char **sig,
                size_t *sig_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE], *raw = NULL;
    unsigned int mac_len = 0;
    size_t raw_len = 0;
    int rc;

    *sig = NULL;
    if (k->alg == FP_JWT_HS256) {
        rc = jws__hmac(k, input, n, mac, &mac_len);
        if (rc != 0)
            return rc;
        *sig = malloc(mac_len);
        if (*sig == NULL)
            return -ENOMEM;
        memcpy(*sig, mac, mac_len);
        *sig_len = mac_len;
        return 0;
    }
    /* RS256: the signature as it is; ES256: DER, made R||S below. */
    rc = jws__pk_sign(k->pkey, input, n, &raw, &raw_len);
    if (rc != 0 || k->alg == FP_JWT_RS256) {
        *sig = raw;
        *sig_len = raw_len;
        return rc;
    }
    *sig = malloc(2 * JWS__ES256_HALF);
    rc = *sig == NULL ? -ENOMEM : jws__der_to_es256(raw, raw_len, *sig);
    free(raw);
    if (rc != 0) {
        free(*sig);
        *sig = NULL;
        return rc;
    }
    *sig_len = 2 * JWS__ES256_HALF;
    return 0;
}
