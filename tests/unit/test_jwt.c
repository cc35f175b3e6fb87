/*
 * Unit tests for common/fp_jwt: pinned algorithm, signatures (against
 * vectors made by node's crypto module, see tests/data/jwt/gen.sh), claim
 * rules and key loading. Needs FP_TEST_DATA = absolute path of tests/data.
 *
 * Tokens with custom payloads are built by tests/harness/ft_token (fp_jws's
 * base64url, its own HMAC); tokens minted by fp_jwt_mint are cross-checked
 * with a plain OpenSSL signature verification (its own R||S to DER).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fp_jwt.h"
#include "ft_main.h"
#include "fp_jws.h"
#include "ft_token.h"

/* "Now" for every test: 2025-06-15. Vectors expire in 2100. */
#define NOW ((int64_t)1750000000)
#define EXP_2100 ((int64_t)4102444800)
#define ISS "feedpush-test"
#define AUD "feedpush"
/* Claims every custom payload needs to pass the configured verifiers. */
#define GOOD "\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":4102444800"
#define HDR_HS "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

typedef struct {
    unsigned char *secret, *rs_key, *es_key, *rs_pub;
    size_t secret_len, rs_key_len, es_key_len, rs_pub_len;
    fp_jwt_verifier *hs, *rs, *es; /* iss + aud configured, leeway 0 */
    fp_jwt_verifier *hs_open;      /* no iss/aud, leeway 60 */
} fixture;

static fixture g;

/* ------------------------------------------------------------ helpers */

static const char *data_path(const char *name)
{
    static char path[4096];
    const char *dir = getenv("FP_TEST_DATA");

    assert_non_null(dir);
    snprintf(path, sizeof(path), "%s/jwt/%s", dir, name);
    return path;
}

static unsigned char *read_data(const char *name, size_t *len)
{
    unsigned char *buf = NULL;
    char err[256];

    assert_int_equal(fp_jwt_read_key_file(data_path(name), &buf, len, err, sizeof(err)), 0);
    return buf;
}

/* A token vector file, trailing newline removed. */
static char *read_token(const char *name)
{
    size_t len;
    char *t = (char *)read_data(name, &len);

    while (len > 0 && t[len - 1] == '\n')
        t[--len] = '\0';
    return t;
}

static fp_jwt_verifier *make_verifier(fp_jwt_alg alg, const char *key, const char *iss,
                                      const char *aud, int leeway)
{
    fp_jwt_config cfg = {
        .alg = alg, .key_file = data_path(key), .issuer = iss, .audience = aud, .leeway_s = leeway};
    fp_jwt_verifier *v = NULL;
    char err[256] = "";
    int rc = fp_jwt_verifier_new(&cfg, &v, err, sizeof(err));

    if (rc != 0)
        fail_msg("verifier_new(%s): %d %s", key, rc, err);
    return v;
}

/* header.payload.HMAC-SHA256(key) with the JSON texts as given. */
static char *sign_hs(const char *hdr, const char *payload, const unsigned char *key, size_t key_len)
{
    return ft_token_hand(hdr, payload, EVP_sha256(), key, key_len);
}

/* HS256 token with the test secret and the payload {fmt...}. */
static char *tok_hs(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *tok_hs(const char *fmt, ...)
{
    char payload[16384];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(payload, sizeof(payload), fmt, ap);
    va_end(ap);
    return sign_hs(HDR_HS, payload, g.secret, g.secret_len);
}

static void expect_ok(const fp_jwt_verifier *v, const char *tok, int64_t now, fp_jwt_claims *c)
{
    char reason[256] = "";
    int rc = fp_jwt_verify(v, tok, now, c, reason, sizeof(reason));

    if (rc != 0)
        fail_msg("expected ok, got %d (%s): %s", rc, fp_jwt_strerror(rc), reason);
}

/* Asserts refusal code, a non-empty reason not quoting the token, and a
 * zeroed claims struct. */
static void expect_refused(const fp_jwt_verifier *v, const char *tok, int64_t now, int code)
{
    static const fp_jwt_claims zero;
    fp_jwt_claims c;
    char reason[256] = "";
    const char *dot = tok != NULL ? strchr(tok, '.') : NULL;
    int rc;

    memset(&c, 0x5a, sizeof(c));
    rc = fp_jwt_verify(v, tok, now, &c, reason, sizeof(reason));
    if (rc != -code)
        fail_msg("expected -%d (%s), got %d (%s): %s", code, fp_jwt_strerror(code), rc,
                 fp_jwt_strerror(rc), reason);
    assert_true(strlen(reason) > 0);
    assert_memory_equal(&c, &zero, sizeof(c));
    if (dot != NULL && dot - tok >= 8) {
        char head[9];

        memcpy(head, tok, 8);
        head[8] = '\0';
        assert_null(strstr(reason, head));
    }
}

/* expect_ok at NOW, then frees tok. */
static void expect_ok_free(const fp_jwt_verifier *v, char *tok)
{
    expect_ok(v, tok, NOW, NULL);
    free(tok);
}

static void expect_refused_free(const fp_jwt_verifier *v, char *tok, int code)
{
    expect_refused(v, tok, NOW, code);
    free(tok);
}

/* Independent check of a minted RS256/ES256 token with plain OpenSSL
 * (ES256: the 64-byte R||S signature is rebuilt as DER first). */
static bool ossl_verify(const char *tok, const char *pub_name, fp_jwt_alg alg)
{
    const char *dot = strrchr(tok, '.');
    size_t sig_len, der_len = 0, pem_len;
    unsigned char *sig = fp_b64url_decode(dot + 1, strlen(dot + 1), &sig_len), *der = NULL;
    unsigned char *pem = read_data(pub_name, &pem_len);
    BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
    EVP_PKEY *pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok;

    assert_non_null(sig);
    assert_non_null(pk);
    if (alg == FP_JWT_ES256) {
        ECDSA_SIG *es = ECDSA_SIG_new();

        assert_int_equal(sig_len, 64);
        ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
        der_len = (size_t)i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);
    }
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pk), 1);
    ok = EVP_DigestVerify(ctx, der != NULL ? der : sig, der != NULL ? der_len : sig_len,
                          (const unsigned char *)tok, (size_t)(dot - tok)) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    BIO_free(bio);
    OPENSSL_free(der);
    fp_jwt_key_free(pem, pem_len);
    free(sig);
    return ok;
}

static char *mint(fp_jwt_alg alg, const fp_jwt_mint_claims *c)
{
    const unsigned char *key = alg == FP_JWT_HS256   ? g.secret
                               : alg == FP_JWT_RS256 ? g.rs_key
                                                     : g.es_key;
    size_t len = alg == FP_JWT_HS256   ? g.secret_len
                 : alg == FP_JWT_RS256 ? g.rs_key_len
                                       : g.es_key_len;
    char err[256] = "", *tok = NULL;
    int rc = fp_jwt_mint(alg, key, len, c, &tok, err, sizeof(err));

    if (rc != 0)
        fail_msg("mint: %d %s", rc, err);
    return tok;
}

static fp_jwt_verifier *verifier_for(fp_jwt_alg alg)
{
    return alg == FP_JWT_HS256 ? g.hs : alg == FP_JWT_RS256 ? g.rs : g.es;
}

/* Changes one character in the middle of the signature part. */
static void flip_sig(char *tok)
{
    char *sig = strrchr(tok, '.') + 1;
    char *c = sig + strlen(sig) / 2;

    *c = *c == 'A' ? 'B' : 'A';
}

/* ------------------------------------------------------------- fixture */

static int setup(void **state)
{
    char err[256];

    (void)state;
    assert_int_equal(fp_jwt_load_key(FP_JWT_HS256, data_path("hs256.secret"), &g.secret,
                                     &g.secret_len, err, sizeof(err)),
                     0);
    g.rs_key = read_data("rs256.key", &g.rs_key_len);
    g.es_key = read_data("es256.key", &g.es_key_len);
    g.rs_pub = read_data("rs256.pub", &g.rs_pub_len);
    g.hs = make_verifier(FP_JWT_HS256, "hs256.secret", ISS, AUD, 0);
    g.rs = make_verifier(FP_JWT_RS256, "rs256.pub", ISS, AUD, 0);
    g.es = make_verifier(FP_JWT_ES256, "es256.pub", ISS, AUD, 0);
    g.hs_open = make_verifier(FP_JWT_HS256, "hs256.secret", NULL, "", 60);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fp_jwt_verifier_free(g.hs_open);
    fp_jwt_verifier_free(g.es);
    fp_jwt_verifier_free(g.rs);
    fp_jwt_verifier_free(g.hs);
    fp_jwt_key_free(g.rs_pub, g.rs_pub_len);
    fp_jwt_key_free(g.es_key, g.es_key_len);
    fp_jwt_key_free(g.rs_key, g.rs_key_len);
    fp_jwt_key_free(g.secret, g.secret_len);
    return 0;
}

/* --------------------------------------------------------------- tests */

static void test_alg_names(void **state)
{
    fp_jwt_alg a = 0;

    (void)state;
    assert_int_equal(fp_jwt_alg_parse("HS256", &a), 0);
    assert_int_equal(a, FP_JWT_HS256);
    assert_int_equal(fp_jwt_alg_parse("RS256", &a), 0);
    assert_int_equal(a, FP_JWT_RS256);
    assert_int_equal(fp_jwt_alg_parse("ES256", &a), 0);
    assert_int_equal(a, FP_JWT_ES256);
    assert_int_equal(fp_jwt_alg_parse("none", &a), -EINVAL);
    assert_int_equal(fp_jwt_alg_parse("hs256", &a), -EINVAL);
    assert_int_equal(fp_jwt_alg_parse("HS512", &a), -EINVAL);
    assert_int_equal(fp_jwt_alg_parse(NULL, &a), -EINVAL);
    assert_string_equal(fp_jwt_alg_name(FP_JWT_ES256), "ES256");
    assert_string_equal(fp_jwt_alg_name((fp_jwt_alg)0), "?");
    assert_string_equal(fp_jwt_strerror(-FP_JWT_E_EXPIRED), "expired");
    assert_string_equal(fp_jwt_strerror(FP_JWT_E_TOO_LONG), "too long");
    assert_string_equal(fp_jwt_strerror(-FP_JWT_E_CLAIM_TYPE), "claim type");
    assert_string_equal(fp_jwt_strerror(-FP_JWT_E_LIFETIME), "lifetime");
    assert_string_equal(fp_jwt_strerror(0), "ok");
    assert_string_equal(fp_jwt_strerror(-FP_JWT_E_IAT_MISSING), "iat missing");
    assert_string_equal(fp_jwt_strerror(-FP_JWT_E_IAT_MISSING - 1), "error");
    assert_string_equal(fp_jwt_strerror(-ENOMEM), "error");
}

/* Vectors signed by node (HMAC, RSA PKCS#1 v1.5, ECDSA ieee-p1363). */
static void test_node_vectors(void **state)
{
    char *hs = read_token("hs256.jwt"), *rs = read_token("rs256.jwt");
    char *es = read_token("es256.jwt");
    fp_jwt_claims c;

    (void)state;
    expect_ok(g.hs, hs, NOW, &c);
    assert_string_equal(c.sub, "node-user");
    assert_int_equal(c.exp, EXP_2100);
    assert_true(c.has_iat);
    assert_int_equal(c.iat, 1700000000);
    assert_false(c.has_nbf);
    assert_int_equal(c.role, FP_ROLE_USER);
    expect_ok(g.rs, rs, NOW, &c);
    assert_string_equal(c.sub, "node-user");
    expect_ok(g.es, es, NOW, &c);
    assert_string_equal(c.sub, "node-bridge");
    assert_int_equal(c.role, FP_ROLE_SERVICE);
    /* Valid until the very last second before exp. */
    expect_ok(g.rs, rs, EXP_2100 - 1, NULL);
    expect_refused(g.rs, rs, EXP_2100, FP_JWT_E_EXPIRED);
    free(es);
    free(rs);
    free(hs);
}

/* fp_jwt_mint round trip for every algorithm, cross-checked with OpenSSL. */
static void test_mint_roundtrip(void **state)
{
    static const fp_jwt_alg algs[] = {FP_JWT_HS256, FP_JWT_RS256, FP_JWT_ES256};
    fp_jwt_mint_claims mc = {"alice_1", NOW - 10, NOW + 3600, NOW - 5, ISS, AUD, FP_ROLE_USER};
    fp_jwt_claims c;
    size_t i;

    (void)state;
    for (i = 0; i < 3; i++) {
        char *tok = mint(algs[i], &mc);

        expect_ok(verifier_for(algs[i]), tok, NOW, &c);
        assert_string_equal(c.sub, "alice_1");
        assert_int_equal(c.exp, NOW + 3600);
        assert_true(c.has_iat && c.iat == NOW - 10);
        assert_true(c.has_nbf && c.nbf == NOW - 5);
        assert_int_equal(c.role, FP_ROLE_USER);
        if (algs[i] == FP_JWT_RS256)
            assert_true(ossl_verify(tok, "rs256.pub", FP_JWT_RS256));
        if (algs[i] == FP_JWT_ES256) {
            assert_int_equal(strlen(strrchr(tok, '.') + 1), 86); /* 64 bytes: R||S */
            assert_true(ossl_verify(tok, "es256.pub", FP_JWT_ES256));
        }
        free(tok);
    }
    /* iat/nbf 0 are omitted; service role is written. */
    mc.iat = 0;
    mc.nbf = 0;
    mc.role = FP_ROLE_SERVICE;
    {
        char *tok = mint(FP_JWT_ES256, &mc);

        expect_ok(g.es, tok, NOW, &c);
        assert_false(c.has_iat);
        assert_false(c.has_nbf);
        assert_int_equal(c.role, FP_ROLE_SERVICE);
        free(tok);
    }
}

static void test_mint_errors(void **state)
{
    fp_jwt_mint_claims mc = {"bob", NOW, NOW + 60, 0, NULL, NULL, FP_ROLE_USER};
    char err[256], *tok = (char *)"x";

    (void)state;
    mc.sub = "a/b";
    err[0] = '\0';
    assert_int_equal(fp_jwt_mint(FP_JWT_HS256, g.secret, g.secret_len, &mc, &tok, err, sizeof(err)),
                     -EINVAL);
    assert_null(tok);
    assert_true(strlen(err) > 0);
    mc.sub = "bob";
    mc.exp = 0;
    assert_int_equal(fp_jwt_mint(FP_JWT_HS256, g.secret, g.secret_len, &mc, &tok, err, sizeof(err)),
                     -EINVAL);
    mc.exp = NOW + 60;
    assert_int_equal(
        fp_jwt_mint(FP_JWT_HS256, (const unsigned char *)"short", 5, &mc, &tok, err, sizeof(err)),
        -EINVAL);
    /* An EC key for RS256, a public key where a private one is needed. */
    err[0] = '\0';
    assert_int_equal(fp_jwt_mint(FP_JWT_RS256, g.es_key, g.es_key_len, &mc, &tok, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "not an RSA"));
    assert_int_equal(fp_jwt_mint(FP_JWT_RS256, g.rs_pub, g.rs_pub_len, &mc, &tok, err, sizeof(err)),
                     -EINVAL);
    assert_null(tok);
}

static void test_bad_signature(void **state)
{
    static const char *const files[] = {"hs256.jwt", "rs256.jwt", "es256.jwt"};
    fp_jwt_verifier *vs[3] = {g.hs, g.rs, g.es};
    char *tok;
    size_t i;

    (void)state;
    for (i = 0; i < 3; i++) {
        tok = read_token(files[i]);
        flip_sig(tok);
        expect_refused_free(vs[i], tok, FP_JWT_E_SIGNATURE);
    }
    /* Signature dropped, cut short, or DER-encoded ECDSA (not JOSE R||S). */
    tok = read_token("hs256.jwt");
    strrchr(tok, '.')[1] = '\0';
    expect_refused_free(g.hs, tok, FP_JWT_E_SIGNATURE);
    tok = read_token("rs256.jwt");
    tok[strlen(tok) - 4] = '\0';
    expect_refused_free(g.rs, tok, FP_JWT_E_SIGNATURE);
    expect_refused_free(g.es, read_token("es256-der.jwt"), FP_JWT_E_SIGNATURE);
    /* The same signature spelled another way: a last character with a
     * bit set past the data, which decodes to the same bytes (base64url
     * has one spelling of each value; the canonical one verifies above). */
    for (i = 0; i < 3; i++) {
        static const char abc[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        char *last;

        tok = read_token(files[i]);
        last = tok + strlen(tok) - 1;
        assert_non_null(strchr(abc, *last));
        assert_int_equal((strchr(abc, *last) - abc) & 1, 0);
        *last = abc[(strchr(abc, *last) - abc) | 1];
        expect_refused_free(vs[i], tok, FP_JWT_E_SIGNATURE);
    }
    /* Signed with a different secret. */
    expect_refused_free(g.hs,
                        sign_hs(HDR_HS, "{" GOOD ",\"sub\":\"u\"}",
                                (const unsigned char *)"0123456789abcdef0123456789abcdeX", 32),
                        FP_JWT_E_SIGNATURE);
}

static void test_alg_none(void **state)
{
    fp_jwt_verifier *vs[4] = {g.hs, g.rs, g.es, g.hs_open};
    const char *payload = "{" GOOD ",\"sub\":\"mallory\"}";
    size_t i;

    (void)state;
    for (i = 0; i < 4; i++) {
        expect_refused_free(vs[i], ft_token_raw("{\"alg\":\"none\"}", payload, ""), FP_JWT_E_ALG);
        expect_refused_free(vs[i], ft_token_raw("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, ""),
                            FP_JWT_E_ALG);
        expect_refused_free(vs[i], ft_token_raw("{\"alg\":\"None\"}", payload, "c2ln"),
                            FP_JWT_E_ALG);
        expect_refused_free(vs[i], ft_token_raw("{\"typ\":\"JWT\"}", payload, ""), FP_JWT_E_ALG);
        expect_refused_free(vs[i], ft_token_raw("{\"alg\":null}", payload, ""), FP_JWT_E_ALG);
    }
    expect_refused_free(g.hs, ft_token_raw("{\"alg\":\"hs256\"}", payload, ""), FP_JWT_E_ALG);
}

/* HS256 keyed with the RS256 public key while RS256 is configured: the
 * classic confusion attack, from node and made here (file bytes as MAC key). */
static void test_alg_confusion(void **state)
{
    const char *payload = "{" GOOD ",\"sub\":\"mallory\"}";
    char reason[256] = "";
    char *tok = read_token("hs256-confusion.jwt");

    (void)state;
    expect_refused(g.rs, tok, NOW, FP_JWT_E_ALG);
    assert_int_equal(fp_jwt_verify(g.rs, tok, NOW, NULL, reason, sizeof(reason)), -FP_JWT_E_ALG);
    assert_string_equal(reason, "algorithm HS256 not allowed (configured RS256)");
    free(tok);
    expect_refused_free(g.rs, sign_hs(HDR_HS, payload, g.rs_pub, g.rs_pub_len), FP_JWT_E_ALG);
}

static void test_alg_mismatch(void **state)
{
    (void)state;
    expect_refused_free(g.es, read_token("rs256.jwt"), FP_JWT_E_ALG);
    expect_refused_free(g.rs, read_token("es256.jwt"), FP_JWT_E_ALG);
    expect_refused_free(g.es, read_token("hs256.jwt"), FP_JWT_E_ALG);
    expect_refused_free(g.hs, read_token("rs256.jwt"), FP_JWT_E_ALG);
    /* Two alg members (cJSON keeps the first, jansson the last):
     * refused as malformed before either is looked at. */
    expect_refused_free(g.rs,
                        sign_hs("{\"alg\":\"RS256\",\"alg\":\"HS256\"}", "{" GOOD ",\"sub\":\"m\"}",
                                g.rs_pub, g.rs_pub_len),
                        FP_JWT_E_MALFORMED);
}

static void test_reason_text(void **state)
{
    char *tok =
        ft_token_raw("{\"alg\":\"HS256<script>alert(1)</script>"
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
                "{}", "");
    char reason[256] = "";

    (void)state;
    assert_int_equal(fp_jwt_verify(g.rs, tok, NOW, NULL, reason, sizeof(reason)), -FP_JWT_E_ALG);
    assert_null(strchr(reason, '<'));
    assert_non_null(strstr(reason, "not allowed (configured RS256)"));
    assert_non_null(strstr(reason, "..."));
    /* NULL reason buffer and NULL claims are fine. */
    assert_int_equal(fp_jwt_verify(g.rs, tok, NOW, NULL, NULL, 0), -FP_JWT_E_ALG);
    assert_int_equal(fp_jwt_verify(NULL, tok, NOW, NULL, reason, sizeof(reason)), -EINVAL);
    free(tok);
}

static void test_expiry(void **state)
{
    fp_jwt_mint_claims mc = {"u1", NOW - 100, NOW - 1, 0, ISS, AUD, FP_ROLE_USER};
    char *tok;

    (void)state;
    tok = mint(FP_JWT_HS256, &mc);
    expect_refused(g.hs, tok, NOW, FP_JWT_E_EXPIRED);
    expect_refused(g.hs_open, tok, NOW, FP_JWT_E_EXPIRED); /* no leeway on exp */
    free(tok);
    mc.exp = NOW;
    tok = mint(FP_JWT_HS256, &mc);
    expect_refused(g.hs, tok, NOW, FP_JWT_E_EXPIRED);
    expect_ok(g.hs, tok, NOW - 1, NULL);
    free(tok);
    expect_refused_free(g.hs, tok_hs("{\"sub\":\"u\",\"iss\":\"" ISS "\",\"aud\":\"" AUD "\"}"),
                        FP_JWT_E_EXP_MISSING);
    expect_refused_free(g.hs, tok_hs("{\"sub\":\"u\",\"iss\":\"" ISS "\",\"aud\":\"" AUD
                                     "\",\"exp\":\"4102444800\"}"),
                        FP_JWT_E_CLAIM_TYPE);
}

static void test_exp_types(void **state)
{
    static const char *const bad[] = {"\"4102444800\"", "4102444800.5", "-1",  "1e300",
                                      "true",           "null",         "[1]", "{}"};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_refused_free(g.hs_open, tok_hs("{\"sub\":\"u\",\"exp\":%s}", bad[i]),
                            FP_JWT_E_CLAIM_TYPE);
    expect_refused_free(g.hs_open, tok_hs("{\"sub\":\"u\",\"exp\":4102444800,\"nbf\":\"1\"}"),
                        FP_JWT_E_CLAIM_TYPE);
    expect_refused_free(g.hs_open, tok_hs("{\"sub\":\"u\",\"exp\":4102444800,\"iat\":1.5}"),
                        FP_JWT_E_CLAIM_TYPE);
}

static void test_not_before(void **state)
{
    fp_jwt_claims c;
    char *tok;

    (void)state;
    /* hs: leeway 0. */
    expect_refused_free(g.hs, tok_hs("{" GOOD ",\"sub\":\"u\",\"nbf\":%lld}", (long long)NOW + 1),
                        FP_JWT_E_NOT_YET_VALID);
    tok = tok_hs("{" GOOD ",\"sub\":\"u\",\"nbf\":%lld}", (long long)NOW);
    expect_ok(g.hs, tok, NOW, &c);
    assert_true(c.has_nbf);
    assert_int_equal(c.nbf, NOW);
    free(tok);
    /* hs_open: leeway 60. */
    expect_refused_free(g.hs_open,
                        tok_hs("{" GOOD ",\"sub\":\"u\",\"nbf\":%lld}", (long long)NOW + 61),
                        FP_JWT_E_NOT_YET_VALID);
    expect_ok_free(g.hs_open, tok_hs("{" GOOD ",\"sub\":\"u\",\"nbf\":%lld}", (long long)NOW + 60));
}

static void test_issued_in_future(void **state)
{
    (void)state;
    expect_refused_free(g.hs, tok_hs("{" GOOD ",\"sub\":\"u\",\"iat\":%lld}", (long long)NOW + 1),
                        FP_JWT_E_ISSUED_IN_FUTURE);
    expect_refused_free(g.hs_open,
                        tok_hs("{" GOOD ",\"sub\":\"u\",\"iat\":%lld}", (long long)NOW + 61),
                        FP_JWT_E_ISSUED_IN_FUTURE);
    expect_ok_free(g.hs_open, tok_hs("{" GOOD ",\"sub\":\"u\",\"iat\":%lld}", (long long)NOW + 60));
}

static void test_issuer(void **state)
{
    const char *tail = "\"aud\":\"" AUD "\",\"exp\":4102444800,\"sub\":\"u\"";

    (void)state;
    expect_refused_free(g.hs, tok_hs("{%s,\"iss\":\"evil\"}", tail), FP_JWT_E_ISSUER);
    expect_refused_free(g.hs, tok_hs("{%s,\"iss\":\"feedpush-test \"}", tail), FP_JWT_E_ISSUER);
    expect_refused_free(g.hs, tok_hs("{%s}", tail), FP_JWT_E_ISSUER);
    expect_refused_free(g.hs, tok_hs("{%s,\"iss\":[\"" ISS "\"]}", tail), FP_JWT_E_CLAIM_TYPE);
    /* Not configured: not checked. */
    expect_ok_free(g.hs_open, tok_hs("{%s,\"iss\":\"anyone\"}", tail));
}

static void test_audience(void **state)
{
    const char *tail = "\"iss\":\"" ISS "\",\"exp\":4102444800,\"sub\":\"u\"";

    (void)state;
    expect_refused_free(g.hs, tok_hs("{%s,\"aud\":\"other\"}", tail), FP_JWT_E_AUDIENCE);
    expect_refused_free(g.hs, tok_hs("{%s,\"aud\":[\"a\",\"b\"]}", tail), FP_JWT_E_AUDIENCE);
    expect_refused_free(g.hs, tok_hs("{%s,\"aud\":[]}", tail), FP_JWT_E_AUDIENCE);
    expect_refused_free(g.hs, tok_hs("{%s}", tail), FP_JWT_E_AUDIENCE);
    expect_refused_free(g.hs, tok_hs("{%s,\"aud\":7}", tail), FP_JWT_E_CLAIM_TYPE);
    expect_refused_free(g.hs, tok_hs("{%s,\"aud\":[7,\"" AUD "\"]}", tail), FP_JWT_E_CLAIM_TYPE);
    expect_ok_free(g.hs, tok_hs("{%s,\"aud\":[\"other\",\"" AUD "\"]}", tail));
    expect_ok_free(g.hs_open, tok_hs("{%s,\"aud\":\"whatever\"}", tail));
}

static void test_sub(void **state)
{
    static const char *const bad[] = {"a/b", "a+b", "#", "", "feed/#", "a b", "\\u00e9"};
    char too_long[FP_ID_MAX + 2];
    fp_jwt_claims c;
    char *tok;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_refused_free(g.hs, tok_hs("{" GOOD ",\"sub\":\"%s\"}", bad[i]), FP_JWT_E_SUB);
    memset(too_long, 'a', FP_ID_MAX + 1);
    too_long[FP_ID_MAX + 1] = '\0';
    expect_refused_free(g.hs, tok_hs("{" GOOD ",\"sub\":\"%s\"}", too_long), FP_JWT_E_SUB);
    expect_refused_free(g.hs, tok_hs("{" GOOD "}"), FP_JWT_E_SUB);
    expect_refused_free(g.hs, tok_hs("{" GOOD ",\"sub\":42}"), FP_JWT_E_CLAIM_TYPE);
    /* A NUL escape would cut the string short in C: refused outright. */
    expect_refused_free(g.hs, tok_hs("{" GOOD ",\"sub\":\"abc\\u0000/x\"}"), FP_JWT_E_MALFORMED);
    /* The longest id fits. */
    tok = tok_hs("{" GOOD ",\"sub\":\"%s\"}",
                 "0123456789012345678901234567890123456789012345678901234567890123");
    expect_ok(g.hs, tok, NOW, &c);
    assert_int_equal(strlen(c.sub), FP_ID_MAX);
    free(tok);
}

/* Header and claims are read once, by fp_json: a name given twice is
 * refused (readers differ on which one counts), escapes are read exactly. */
static void test_duplicates_and_escapes(void **state)
{
    char reason[256] = "";
    fp_jwt_claims c;
    char *tok;

    (void)state;
    /* Without the rule this authenticated as alice. */
    tok = tok_hs("{" GOOD ",\"sub\":\"bob\",\"sub\":\"alice\"}");
    expect_refused(g.hs, tok, NOW, FP_JWT_E_MALFORMED);
    fp_jwt_verify(g.hs, tok, NOW, NULL, reason, sizeof(reason));
    assert_non_null(strstr(reason, "sub: duplicate member"));
    free(tok);
    expect_refused_free(g.hs, tok_hs("{" GOOD ",\"exp\":1,\"sub\":\"bob\"}"), FP_JWT_E_MALFORMED);
    expect_refused_free(g.hs, ft_token_raw("{\"alg\":\"none\",\"alg\":\"HS256\"}", "{}", ""),
                        FP_JWT_E_MALFORMED);
    /* An escaped backslash followed by u0000 is text, not a NUL escape. */
    tok = tok_hs("{" GOOD ",\"sub\":\"abc\",\"note\":\"a\\\\u0000b\"}");
    expect_ok(g.hs, tok, NOW, &c);
    assert_string_equal(c.sub, "abc");
    free(tok);
    /* Invalid UTF-8 in a claim the verifier does not read is refused too. */
    expect_refused_free(g.hs, tok_hs("{" GOOD ",\"sub\":\"abc\",\"x\":\"\xff\"}"),
                        FP_JWT_E_MALFORMED);
}

static void test_role(void **state)
{
    fp_jwt_claims c;
    char *tok;

    (void)state;
    tok = tok_hs("{" GOOD ",\"sub\":\"bridge\",\"role\":\"service\"}");
    expect_ok(g.hs, tok, NOW, &c);
    assert_int_equal(c.role, FP_ROLE_SERVICE);
    free(tok);
    tok = tok_hs("{" GOOD ",\"sub\":\"u\",\"role\":\"user\"}");
    expect_ok(g.hs, tok, NOW, &c);
    assert_int_equal(c.role, FP_ROLE_USER);
    free(tok);
    expect_refused_free(g.hs, tok_hs("{" GOOD ",\"sub\":\"u\",\"role\":\"admin\"}"), FP_JWT_E_ROLE);
    expect_refused_free(g.hs, tok_hs("{" GOOD ",\"sub\":\"u\",\"role\":\"Service\"}"),
                        FP_JWT_E_ROLE);
    expect_refused_free(g.hs, tok_hs("{" GOOD ",\"sub\":\"u\",\"role\":1}"), FP_JWT_E_CLAIM_TYPE);
}

static void test_too_long(void **state)
{
    size_t n = 100 * 1024;
    char *tok = malloc(n + 1);

    (void)state;
    assert_non_null(tok);
    memset(tok, 'A', n);
    tok[10] = '.';
    tok[20] = '.';
    tok[n] = '\0';
    expect_refused(g.hs, tok, NOW, FP_JWT_E_TOO_LONG);
    /* One byte over the limit; the limit itself is only malformed. */
    tok[FP_JWT_MAX_BYTES + 1] = '\0';
    expect_refused(g.rs, tok, NOW, FP_JWT_E_TOO_LONG);
    tok[FP_JWT_MAX_BYTES] = '\0';
    expect_refused(g.rs, tok, NOW, FP_JWT_E_MALFORMED);
    /* A valid token padded with a huge claim. */
    free(tok);
    {
        char *big = malloc(9000);

        assert_non_null(big);
        memset(big, 'x', 8999);
        big[8999] = '\0';
        tok = tok_hs("{" GOOD ",\"sub\":\"u\",\"pad\":\"%.1900s%.1900s%.1900s%.1900s\"}", big, big,
                     big, big);
        free(big);
    }
    expect_refused_free(g.hs, tok, FP_JWT_E_TOO_LONG);
}

static void test_garbage(void **state)
{
    static const char *const bad[] = {
        "",
        ".",
        "..",
        "...",
        "a.b",
        "a.b.c.d",
        "abcd.efgh.ijkl",
        "eyJ!.e30.",
        "a b.c.d",
        "eyJhbGciOiJIUzI1NiJ9.e30=.AAAA",
        "eyJhbGciOiJIUzI1NiJ9..AAAA",
        ".e30.AAAA",
        "eyJhbGciOiJIUzI1NiJ9.e30.A",
        "\xff\xfe.e30.AA",
        "eyJhbGciOiJIUzI1NiJ9\n.e30.AA",
    };
    fp_jwt_verifier *vs[3] = {g.hs, g.rs, g.es};
    size_t i, j;

    (void)state;
    for (j = 0; j < 3; j++) {
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            expect_refused(vs[j], bad[i], NOW, FP_JWT_E_MALFORMED);
        expect_refused(vs[j], NULL, NOW, FP_JWT_E_MALFORMED);
    }
    /* Header not an object / not JSON; payload not JSON; crit header. */
    expect_refused_free(g.hs, ft_token_raw("[\"HS256\"]", "{}", ""), FP_JWT_E_MALFORMED);
    expect_refused_free(g.hs, ft_token_raw("{\"alg\":\"HS256\"", "{}", ""), FP_JWT_E_MALFORMED);
    expect_refused_free(g.hs, ft_token_raw("{\"alg\":\"HS256\"} x", "{}", ""), FP_JWT_E_MALFORMED);
    expect_refused_free(g.hs, sign_hs(HDR_HS, "not json", g.secret, g.secret_len),
                        FP_JWT_E_MALFORMED);
    expect_refused_free(g.hs, sign_hs(HDR_HS, "[1,2]", g.secret, g.secret_len), FP_JWT_E_MALFORMED);
    expect_refused_free(g.hs,
                        sign_hs("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
                                "{" GOOD ",\"sub\":\"u\"}", g.secret, g.secret_len),
                        FP_JWT_E_MALFORMED);
    expect_refused_free(g.hs,
                        sign_hs("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}",
                                "{" GOOD ",\"sub\":\"u\"}", g.secret, g.secret_len),
                        FP_JWT_E_MALFORMED);
    expect_refused_free(g.hs,
                        sign_hs("{\"alg\":\"HS256\",\"typ\":7}", "{" GOOD ",\"sub\":\"u\"}",
                                g.secret, g.secret_len),
                        FP_JWT_E_MALFORMED);
    /* typ is optional and compared without case; other members ignored. */
    expect_ok_free(g.hs, sign_hs("{\"alg\":\"HS256\",\"typ\":\"jwt\",\"kid\":\"k1\"}",
                                 "{" GOOD ",\"sub\":\"u\"}", g.secret, g.secret_len));
    expect_ok_free(
        g.hs, sign_hs("{\"alg\":\"HS256\"}", "{" GOOD ",\"sub\":\"u\"}", g.secret, g.secret_len));
}

/* A maximum lifetime: exp - iat up to it is accepted, over it refused;
 * without iat, exp - now counts (leaving iat out gains nothing), and an
 * old iat does not stretch it. Out-of-range settings are refused. */
static void test_max_lifetime(void **state)
{
    fp_jwt_config cfg = {
        .alg = FP_JWT_HS256, .key_file = data_path("hs256.secret"), .max_lifetime_s = 3600};
    fp_jwt_verifier *v = NULL;
    char err[256];

    (void)state;
    assert_int_equal(fp_jwt_verifier_new(&cfg, &v, err, sizeof(err)), 0);
    expect_ok_free(v, tok_hs("{\"sub\":\"u\",\"iat\":%lld,\"exp\":%lld}", (long long)NOW,
                             (long long)NOW + 3600));
    expect_refused_free(v,
                        tok_hs("{\"sub\":\"u\",\"iat\":%lld,\"exp\":%lld}", (long long)NOW,
                               (long long)NOW + 3601),
                        FP_JWT_E_LIFETIME);
    expect_ok_free(v, tok_hs("{\"sub\":\"u\",\"exp\":%lld}", (long long)NOW + 3600));
    expect_refused_free(v, tok_hs("{\"sub\":\"u\",\"exp\":%lld}", (long long)NOW + 3601),
                        FP_JWT_E_LIFETIME);
    expect_refused_free(v,
                        tok_hs("{\"sub\":\"u\",\"iat\":%lld,\"exp\":%lld}",
                               (long long)NOW - 7200, (long long)NOW + 60),
                        FP_JWT_E_LIFETIME);
    fp_jwt_verifier_free(v);
    v = NULL;
    cfg.max_lifetime_s = -1;
    assert_int_equal(fp_jwt_verifier_new(&cfg, &v, err, sizeof(err)), -EINVAL);
    cfg.max_lifetime_s = (int64_t)FP_JWT_LIFETIME_MAX + 1;
    assert_int_equal(fp_jwt_verifier_new(&cfg, &v, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "maximum lifetime"));
    assert_null(v);
}

/* require_iat: a token without iat is refused whatever else it holds; one
 * with iat is checked as before. Without the flag both are accepted.
 * A revocation is kept for ever unless iat is required and the lifetime
 * bounded, then for the maximum lifetime. */
static void test_require_iat(void **state)
{
    fp_jwt_config cfg = {.alg = FP_JWT_HS256, .key_file = data_path("hs256.secret")};
    fp_jwt_verifier *v = NULL;
    char err[256];

    (void)state;
    assert_int_equal(fp_jwt_revocation_keep(&cfg), 0);
    cfg.max_lifetime_s = 3600;
    assert_int_equal(fp_jwt_revocation_keep(&cfg), 0);
    cfg.require_iat = true;
    assert_int_equal(fp_jwt_revocation_keep(&cfg), 3600);
    cfg.max_lifetime_s = 0;
    assert_int_equal(fp_jwt_revocation_keep(&cfg), 0);

    assert_int_equal(fp_jwt_verifier_new(&cfg, &v, err, sizeof(err)), 0);
    expect_refused_free(v, tok_hs("{\"sub\":\"u\",\"exp\":%lld}", (long long)NOW + 60),
                        FP_JWT_E_IAT_MISSING);
    expect_ok_free(v, tok_hs("{\"sub\":\"u\",\"iat\":%lld,\"exp\":%lld}", (long long)NOW,
                             (long long)NOW + 60));
    /* An expired token is refused as expired, not for its missing iat. */
    expect_refused_free(v, tok_hs("{\"sub\":\"u\",\"exp\":%lld}", (long long)NOW - 1),
                        FP_JWT_E_EXPIRED);
    fp_jwt_verifier_free(v);
    v = NULL;
    cfg.require_iat = false;
    assert_int_equal(fp_jwt_verifier_new(&cfg, &v, err, sizeof(err)), 0);
    expect_ok_free(v, tok_hs("{\"sub\":\"u\",\"exp\":%lld}", (long long)NOW + 60));
    fp_jwt_verifier_free(v);
}

/* A revocation at second T revokes tokens issued at T or earlier, and
 * tokens without iat; T + 1 is the first second of valid tokens. */
static void test_revoked(void **state)
{
    (void)state;
    assert_false(fp_jwt_revoked(true, NOW, 0));
    assert_false(fp_jwt_revoked(false, 0, 0));
    assert_true(fp_jwt_revoked(true, NOW - 1, NOW));
    assert_true(fp_jwt_revoked(true, NOW, NOW));
    assert_false(fp_jwt_revoked(true, NOW + 1, NOW));
    assert_true(fp_jwt_revoked(false, 0, NOW));
}

static void test_verifier_errors(void **state)
{
    fp_jwt_config cfg = {.alg = FP_JWT_HS256};
    fp_jwt_verifier *v = NULL;
    char err[512], want[4200];

    (void)state;
    snprintf(want, sizeof(want), "jwt key file %s: No such file or directory",
             data_path("missing.pem"));
    cfg.key_file = data_path("missing.pem");
    assert_int_equal(fp_jwt_verifier_new(&cfg, &v, err, sizeof(err)), -ENOENT);
    assert_string_equal(err, want);
    assert_null(v);

    cfg.key_file = data_path("hs256-short.secret");
    assert_int_equal(fp_jwt_verifier_new(&cfg, &v, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "need at least 32"));

    cfg.alg = FP_JWT_ES256;
    cfg.key_file = data_path("rs256.pub");
    assert_int_equal(fp_jwt_verifier_new(&cfg, &v, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not an EC P-256 public key"));

    cfg.alg = FP_JWT_RS256;
    cfg.key_file = data_path("es256.pub");
    assert_int_equal(fp_jwt_verifier_new(&cfg, &v, err, sizeof(err)), -EINVAL);
    snprintf(want, sizeof(want), "jwt key file %s: not an RSA public key", data_path("es256.pub"));
    assert_string_equal(err, want);

    cfg.key_file = data_path("rsa1024.pub");
    assert_int_equal(fp_jwt_verifier_new(&cfg, &v, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "1024 bits"));

    /* Decision: a private key where the public one is expected is refused. */
    cfg.key_file = data_path("rs256.key");
    assert_int_equal(fp_jwt_verifier_new(&cfg, &v, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "private key"));
    cfg.alg = FP_JWT_ES256;
    cfg.key_file = data_path("es256.key");
    assert_int_equal(fp_jwt_verifier_new(&cfg, &v, err, sizeof(err)), -EINVAL);

    /* Not PEM at all; a directory; no file configured. */
    cfg.alg = FP_JWT_RS256;
    cfg.key_file = data_path("hs256.secret");
    assert_int_equal(fp_jwt_verifier_new(&cfg, &v, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "no PEM public key"));

    cfg.key_file = getenv("FP_TEST_DATA"); /* a directory */
    assert_int_equal(fp_jwt_verifier_new(&cfg, &v, err, sizeof(err)), -EINVAL);
    cfg.key_file = NULL;
    assert_int_equal(fp_jwt_verifier_new(&cfg, &v, err, sizeof(err)), -EINVAL);

    cfg.key_file = data_path("rs256.pub");
    cfg.leeway_s = 301;
    assert_int_equal(fp_jwt_verifier_new(&cfg, &v, err, sizeof(err)), -EINVAL);
    cfg.leeway_s = -1;
    assert_int_equal(fp_jwt_verifier_new(&cfg, &v, err, sizeof(err)), -EINVAL);
    cfg.leeway_s = 300;
    cfg.alg = (fp_jwt_alg)0;
    assert_int_equal(fp_jwt_verifier_new(&cfg, &v, err, sizeof(err)), -EINVAL);
    cfg.alg = FP_JWT_RS256;
    assert_int_equal(fp_jwt_verifier_new(&cfg, &v, err, sizeof(err)), 0);
    assert_non_null(v);
    fp_jwt_verifier_free(v);
    fp_jwt_verifier_free(NULL);
}

static void test_key_files(void **state)
{
    unsigned char *k = NULL;
    size_t len = 0;
    char err[256];

    (void)state;
    /* The secret file ends in one newline: raw read keeps it, load strips it. */
    assert_int_equal(fp_jwt_read_key_file(data_path("hs256.secret"), &k, &len, err, sizeof(err)),
                     0);
    assert_int_equal(len, 65);
    assert_int_equal(k[64], '\n');
    fp_jwt_key_free(k, len);
    assert_int_equal(
        fp_jwt_load_key(FP_JWT_HS256, data_path("hs256.secret"), &k, &len, err, sizeof(err)), 0);
    assert_int_equal(len, 64);
    assert_int_equal(k[64], '\0');
    fp_jwt_key_free(k, len);
    assert_int_equal(
        fp_jwt_load_key(FP_JWT_HS256, data_path("hs256-short.secret"), &k, &len, err, sizeof(err)),
        -EINVAL);
    assert_null(k);
    /* A public key given as an HS256 secret: anyone holding it could sign. */
    assert_int_equal(
        fp_jwt_load_key(FP_JWT_HS256, data_path("es256.pub"), &k, &len, err, sizeof(err)), -EINVAL);
    assert_null(k);
    assert_non_null(strstr(err, "is a PEM key, not an HS256 secret"));
    /* Also behind text that OpenSSL's PEM reader skips. */
    assert_int_equal(
        fp_jwt_load_key(FP_JWT_HS256, data_path("es256-preamble.pub"), &k, &len, err, sizeof(err)),
        -EINVAL);
    assert_null(k);
}

/* Writes n bytes to a new temp file and loads it as an HS256 key: the
 * result, with the reason in err. */
static int load_hs_from(const void *data, size_t n, char *err, size_t errlen)
{
    char path[] = "/tmp/fp-test-key-XXXXXX";
    unsigned char *k = NULL;
    size_t len = 0;
    int fd = mkstemp(path), rc;

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);
    rc = fp_jwt_load_key(FP_JWT_HS256, path, &k, &len, err, errlen);
    unlink(path);
    if (rc != 0)
        assert_null(k);
    fp_jwt_key_free(k, len);
    return rc;
}

/* Keys in other formats than PEM in an HS256 key file are refused too; a
 * random secret of any bytes is not taken for one. */
static void test_key_kinds(void **state)
{
    static const char jwk[] =
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8"
        "Tus9uPHvRVEU\",\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}\n";
    static const char ssh[] =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx0c2V0LXRoaXMtaXMtbm90LWEta2V5 "
        "ops@example\n";
    static const char json_secret[] = "{\"not\":\"a key but a secret of 32 bytes or more\"}";
    unsigned char random[64], *der = NULL;
    size_t pem_len;
    unsigned char *pem = read_data("es256.pub", &pem_len);
    BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
    EVP_PKEY *pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    char err[256];
    int der_len, i;

    (void)state;
    assert_non_null(pk);
    der_len = i2d_PUBKEY(pk, &der);
    assert_true(der_len > 32);
    assert_int_equal(load_hs_from(jwk, sizeof(jwk) - 1, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "is a JWK, not an HS256 secret"));
    assert_int_equal(load_hs_from(ssh, sizeof(ssh) - 1, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "is an OpenSSH key, not an HS256 secret"));
    assert_int_equal(load_hs_from(der, (size_t)der_len, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "is a DER public key, not an HS256 secret"));
    OPENSSL_free(der);
    der = NULL;
    /* A DER key that ends in 0x0a, which the loader strips as a newline:
     * one P-256 key in about 256 (the last byte is the point's). */
    for (i = 0; i < 20000; i++) {
        EVP_PKEY *k = EVP_EC_gen("P-256");

        assert_non_null(k);
        der_len = i2d_PUBKEY(k, &der);
        EVP_PKEY_free(k);
        assert_true(der_len > 32);
        if (der[der_len - 1] == '\n')
            break;
        OPENSSL_free(der);
        der = NULL;
    }
    assert_non_null(der);
    assert_int_equal(load_hs_from(der, (size_t)der_len, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "is a DER public key, not an HS256 secret"));
    for (i = 0; i < 64; i++)
        random[i] = (unsigned char)(i * 37 + 11);
    random[0] = 0x30; /* a DER SEQUENCE's first byte, and no key */
    random[1] = 0x3e;
    assert_int_equal(load_hs_from(random, sizeof(random), err, sizeof(err)), 0);
    assert_int_equal(load_hs_from(json_secret, sizeof(json_secret) - 1, err, sizeof(err)), 0);
    OPENSSL_free(der);
    EVP_PKEY_free(pk);
    BIO_free(bio);
    fp_jwt_key_free(pem, pem_len);
}

/* A self-signed certificate of k, in DER (*der, OPENSSL_free'd by the
 * caller); returns its length. */
static int der_cert(EVP_PKEY *k, unsigned char **der)
{
    X509 *x = X509_new();
    int len;

    assert_non_null(x);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
    assert_int_equal(X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                                (const unsigned char *)"feedpush", -1, -1, 0),
                     1);
    assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(x)), 1);
    assert_int_equal(X509_set_pubkey(x, k), 1);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    len = i2d_X509(x, der);
    X509_free(x);
    assert_true(len > 32);
    return len;
}

/* Private keys (PKCS#8 and the traditional form), an RSA public key in
 * PKCS#1 and a certificate, in DER, refused as HS256 secrets too: a
 * certificate carries the public key, so it is no secret either. */
static void test_der_kinds(void **state)
{
    EVP_PKEY *ec = EVP_EC_gen("P-256"), *rsa;
    PKCS8_PRIV_KEY_INFO *p8;
    unsigned char *der = NULL, *pem;
    size_t pem_len;
    BIO *bio;
    char err[256];
    int len;

    (void)state;
    assert_non_null(ec);
    p8 = EVP_PKEY2PKCS8(ec);
    assert_non_null(p8);
    len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
    PKCS8_PRIV_KEY_INFO_free(p8);
    assert_true(len > 32);
    assert_int_equal(load_hs_from(der, (size_t)len, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "is a DER private key, not an HS256 secret"));
    OPENSSL_free(der);
    der = NULL;
    len = i2d_PrivateKey(ec, &der); /* SEC 1, the traditional EC form */
    assert_true(len > 32);
    assert_int_equal(load_hs_from(der, (size_t)len, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "is a DER private key, not an HS256 secret"));
    OPENSSL_free(der);
    der = NULL;
    len = der_cert(ec, &der);
    assert_int_equal(load_hs_from(der, (size_t)len, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "is a DER certificate, not an HS256 secret"));
    OPENSSL_free(der);
    der = NULL;

    pem = read_data("rs256.pub", &pem_len);
    bio = BIO_new_mem_buf(pem, (int)pem_len);
    rsa = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    assert_non_null(rsa);
    len = i2d_PublicKey(rsa, &der); /* PKCS#1 RSAPublicKey */
    assert_true(len > 32);
    assert_int_equal(load_hs_from(der, (size_t)len, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "is a DER public key, not an HS256 secret"));
    OPENSSL_free(der);
    EVP_PKEY_free(rsa);
    BIO_free(bio);
    fp_jwt_key_free(pem, pem_len);
    EVP_PKEY_free(ec);
}

/* Several threads verifying with the same verifier at once. */
static void *verify_loop(void *arg)
{
    const char *tok = arg;
    int i, bad = 0;

    for (i = 0; i < 200; i++) {
        fp_jwt_claims c;
        char reason[128];

        if (fp_jwt_verify(g.es, tok, NOW, &c, reason, sizeof(reason)) != 0 ||
            strcmp(c.sub, "node-bridge") != 0)
            bad++;
    }
    return (void *)(intptr_t)bad;
}

static void test_concurrent(void **state)
{
    char *tok = read_token("es256.jwt");
    pthread_t th[4];
    void *res;
    int i;

    (void)state;
    for (i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, verify_loop, tok), 0);
    for (i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], &res), 0);
        assert_int_equal((intptr_t)res, 0);
    }
    free(tok);
}

/* clang-format off */
FT_MAIN(ft_unit_run, setup, teardown,
        cmocka_unit_test(test_alg_names),
        cmocka_unit_test(test_node_vectors),
        cmocka_unit_test(test_mint_roundtrip),
        cmocka_unit_test(test_mint_errors),
        cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_alg_confusion),
        cmocka_unit_test(test_alg_mismatch),
        cmocka_unit_test(test_reason_text),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_exp_types),
        cmocka_unit_test(test_not_before),
        cmocka_unit_test(test_issued_in_future),
        cmocka_unit_test(test_issuer),
        cmocka_unit_test(test_audience),
        cmocka_unit_test(test_sub),
        cmocka_unit_test(test_duplicates_and_escapes),
        cmocka_unit_test(test_role),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_max_lifetime),
        cmocka_unit_test(test_require_iat),
        cmocka_unit_test(test_revoked),
        cmocka_unit_test(test_verifier_errors),
        cmocka_unit_test(test_key_files),
        cmocka_unit_test(test_key_kinds),
        cmocka_unit_test(test_der_kinds),
        cmocka_unit_test(test_concurrent))
/* clang-format on */
