/*
 * fp_jwt.c - JWT verification and minting on cJSON and OpenSSL (fp_jws).
 *
 * Nothing in a token decides how it is checked: the algorithm and the key
 * are the verifier's (RFC 8725). In order: length cap, compact form, the
 * header's "alg" matched exactly against the configured one, the
 * signature's length, then the signature itself with the key parsed once
 * when the verifier was built, then the claims. The header and the claims
 * set are read once each, by fp_json (duplicate members refused), from the
 * bytes the signature covers, and the claims are checked with types.
 */
#include "fp_jwt.h"
#include "fp_json.h"
#include "fp_jws.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* Largest integer a JSON number (an IEEE double) holds exactly: 2^53 - 1. */
#define JWT__INT_MAX 9007199254740991.0

struct fp_jwt_verifier {
    fp_jwt_alg alg;
    unsigned char *secret; /* HS256 */
    size_t secret_len;
    EVP_PKEY *pkey;     /* RS256/ES256: the public key, parsed once */
    size_t sig_b64_len; /* exact length of the signature part */
    char *issuer;       /* NULL = not checked */
    char *audience;     /* NULL = not checked */
    int leeway_s;
    int64_t max_lifetime_s; /* 0 = no limit */
    bool require_iat;
};

/* Offsets of the three parts of a compact token. */
typedef struct {
    size_t hdr_len;
    size_t pay_off, pay_len;
    size_t sig_off, sig_len;
} jwt__parts;

/* Writes an error for a caller (see fp_json_refuse). */
#define jwt__fmt(buf, len, ...) ((void)fp_json_refuse((buf), (len), 0, __VA_ARGS__))
/* Writes a refusal reason and evaluates to -code. */
#define jwt__refuse(reason, len, code, ...) fp_json_refuse((reason), (len), -(code), __VA_ARGS__)

/* Thread-safe strerror into a caller buffer (XSI strerror_r). */
static const char *jwt__errstr(int errnum, char *buf, size_t len)
{
    if (strerror_r(errnum, buf, len) != 0)
        snprintf(buf, len, "error %d", errnum);
    return buf;
}

/* Is a one of the three algorithms? */
static bool jwt__alg_known(fp_jwt_alg a)
{
    return a == FP_JWT_HS256 || a == FP_JWT_RS256 || a == FP_JWT_ES256;
}

const char *fp_jwt_alg_name(fp_jwt_alg a)
{
    switch (a) {
    case FP_JWT_HS256:
        return "HS256";
    case FP_JWT_RS256:
        return "RS256";
    case FP_JWT_ES256:
        return "ES256";
    }
    return "?";
}

int fp_jwt_alg_parse(const char *s, fp_jwt_alg *out)
{
    static const fp_jwt_alg all[] = {FP_JWT_HS256, FP_JWT_RS256, FP_JWT_ES256};
    size_t i;

    if (s == NULL || out == NULL)
        return -EINVAL;
    for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (strcmp(s, fp_jwt_alg_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return -EINVAL;
}

const char *fp_jwt_strerror(int code)
{
    static const char *const names[] = {
        "too long",         "malformed", "algorithm",   "signature", "expired",     "not yet valid",
        "issued in future", "issuer",    "audience",    "sub",       "exp missing", "role",
        "claim type",       "lifetime",  "iat missing",
    };
    int c = code < 0 ? -code : code;

    if (code == 0)
        return "ok";
    if (c >= FP_JWT_E_TOO_LONG && c - FP_JWT_E_TOO_LONG < (int)(sizeof(names) / sizeof(names[0])))
        return names[c - FP_JWT_E_TOO_LONG];
    return "error";
}

/* ------------------------------------------------------------ key files */

void fp_jwt_key_free(unsigned char *key, size_t len)
{
    if (key == NULL)
        return;
    OPENSSL_cleanse(key, len);
    free(key);
}

/* Reads up to size bytes of fd into a new NUL-terminated buffer.
 * Returns 0 (with *got possibly < size when the file shrank) or -errno. */
static int jwt__read_all(int fd, size_t size, unsigned char **out, size_t *got)
{
    unsigned char *buf = malloc(size + 1);
    size_t n = 0;
    ssize_t r;

    if (buf == NULL)
        return -ENOMEM;
    while (n < size) {
        r = read(fd, buf + n, size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            r = -errno;
            fp_jwt_key_free(buf, size + 1);
            return (int)r;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *out = buf;
    *got = n;
    return 0;
}

/*
 * Reads a whole regular file of at most FP_JWT_KEY_FILE_MAX bytes. The
 * buffer is NUL-terminated (not counted in *len). Returns 0 or -errno with
 * "jwt key file <path>: <why>" in err.
 */
int fp_jwt_read_key_file(const char *path, unsigned char **out, size_t *len, char *err,
                         size_t errlen)
{
    char ebuf[128];
    struct stat st;
    int fd, rc;

    if (out == NULL || len == NULL)
        return -EINVAL;
    *out = NULL;
    *len = 0;
    if (path == NULL || path[0] == '\0') {
        jwt__fmt(err, errlen, "jwt key file not configured");
        return -EINVAL;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        rc = -errno;
        goto fail;
    }
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto fail_fd;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        jwt__fmt(err, errlen, "jwt key file %s: not a regular file", path);
        return -EINVAL;
    }
    if (st.st_size > FP_JWT_KEY_FILE_MAX) {
        close(fd);
        jwt__fmt(err, errlen, "jwt key file %s: larger than %d bytes", path, FP_JWT_KEY_FILE_MAX);
        return -EFBIG;
    }
    rc = jwt__read_all(fd, (size_t)st.st_size, out, len);
    if (rc != 0)
        goto fail_fd;
    close(fd);
    return 0;

fail_fd:
    close(fd);
fail:
    jwt__fmt(err, errlen, "jwt key file %s: %s", path, jwt__errstr(-rc, ebuf, sizeof(ebuf)));
    return rc;
}

/* Drops one trailing "\n" (or "\r\n") from an HS256 secret. */
static size_t jwt__strip_newline(const unsigned char *key, size_t len)
{
    if (len > 0 && key[len - 1] == '\n') {
        len--;
        if (len > 0 && key[len - 1] == '\r')
            len--;
    }
    return len;
}

/* Whether buf[0..n) holds text anywhere. */
static bool jwt__contains(const unsigned char *buf, size_t n, const char *text)
{
    size_t i, k = strlen(text);

    for (i = 0; i + k <= n; i++) {
        if (memcmp(buf + i, text, k) == 0)
            return true;
    }
    return false;
}

/* Whether buf[0..n) starts with prefix, after any blanks. */
static bool jwt__starts(const unsigned char *buf, size_t n, const char *prefix)
{
    size_t i = 0, k = strlen(prefix);

    while (i < n && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
        i++;
    return n - i >= k && memcmp(buf + i, prefix, k) == 0;
}

/* An RSA public key in PKCS#1 (d2i_PublicKey with its type given), in
 * the shape of the other EVP_PKEY decoders. */
static EVP_PKEY *jwt__d2i_rsa_public(EVP_PKEY **out, const unsigned char **pp, long len)
{
    return d2i_PublicKey(EVP_PKEY_RSA, out, pp, len);
}

/*
 * What DER structure buf[0..n) is, whole, or NULL: a public key (SPKI, or
 * an RSA one in PKCS#1), a private key (PKCS#8 or the traditional forms)
 * or an X.509 certificate. A random secret never parses whole.
 */
static const char *jwt__der_kind(const unsigned char *buf, size_t n)
{
    static const struct {
        EVP_PKEY *(*d2i)(EVP_PKEY **, const unsigned char **, long);
        const char *kind;
    } keys[] = {
        {d2i_PUBKEY, "a DER public key"},
        {jwt__d2i_rsa_public, "a DER public key"},
        {d2i_AutoPrivateKey, "a DER private key"},
    };
    const unsigned char *p;
    const char *kind = NULL;
    EVP_PKEY *k;
    X509 *x;
    size_t i;

    for (i = 0; i < sizeof(keys) / sizeof(keys[0]) && kind == NULL; i++) {
        p = buf;
        k = keys[i].d2i(NULL, &p, (long)n);
        if (k != NULL && p == buf + n)
            kind = keys[i].kind;
        EVP_PKEY_free(k);
    }
    if (kind == NULL) {
        p = buf;
        x = d2i_X509(NULL, &p, (long)n);
        if (x != NULL && p == buf + n)
            kind = "a DER certificate";
        X509_free(x);
    }
    ERR_clear_error();
    return kind;
}

/*
 * What key buf[0..n) is, in words for a log line, or NULL when it is none
 * of those this knows: a PEM block, a JWK (a JSON object with "kty"), an
 * OpenSSH public key line, a DER key or certificate (jwt__der_kind). Any
 * of them in an HS256 key file is a key where a secret belongs; a public
 * key or a certificate there would let anyone who has it sign tokens.
 * Limits: a random secret is never taken for one (a DER structure must
 * parse whole); other formats are not known.
 */
static const char *jwt__key_kind(const unsigned char *buf, size_t n)
{
    static const char *const ssh[] = {"ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-"};
    size_t i;

    /* A PEM block's first line anywhere (OpenSSL's reader skips text
     * before it). */
    if (jwt__contains(buf, n, "-----BEGIN "))
        return "a PEM key";
    if (jwt__starts(buf, n, "{") && jwt__contains(buf, n, "\"kty\""))
        return "a JWK";
    for (i = 0; i < sizeof(ssh) / sizeof(ssh[0]); i++) {
        if (jwt__starts(buf, n, ssh[i]))
            return "an OpenSSH key";
    }
    if (n > LONG_MAX)
        return NULL;
    return jwt__der_kind(buf, n);
}

/*
 * Reads the key file for alg. HS256: one trailing newline stripped, fewer
 * than FP_JWT_HS_SECRET_MIN bytes refused with -EINVAL, and so is a key
 * (jwt__key_kind): a public key taken for an HMAC secret would let anyone
 * who has it sign tokens (a half-done switch to RS256/ES256). RS256/ES256:
 * the bytes as they are (the PEM is checked by whoever parses it).
 */
int fp_jwt_load_key(fp_jwt_alg alg, const char *path, unsigned char **out, size_t *len, char *err,
                    size_t errlen)
{
    const char *kind;
    size_t n;
    int rc;

    rc = fp_jwt_read_key_file(path, out, len, err, errlen);
    if (rc != 0 || alg != FP_JWT_HS256)
        return rc;
    n = jwt__strip_newline(*out, *len);
    if (n < FP_JWT_HS_SECRET_MIN) {
        jwt__fmt(err, errlen, "jwt key file %s: HS256 secret has %zu bytes, need at least %d", path,
                 n, FP_JWT_HS_SECRET_MIN);
        fp_jwt_key_free(*out, *len + 1);
        *out = NULL;
        *len = 0;
        return -EINVAL;
    }
    /* Before the newline was stripped too: a DER key may end in 0x0a. */
    kind = jwt__key_kind(*out, n);
    if (kind == NULL && n != *len)
        kind = jwt__key_kind(*out, *len);
    if (kind != NULL) {
        jwt__fmt(err, errlen,
                 "jwt key file %s is %s, not an HS256 secret: set the algorithm to RS256 "
                 "or ES256, or give the HS256 secret",
                 path, kind);
        fp_jwt_key_free(*out, *len + 1);
        *out = NULL;
        *len = 0;
        return -EINVAL;
    }
    (*out)[n] = '\0';
    *len = n;
    return 0;
}

/*
 * Checks that pkey is usable for alg: an RSA key of at least
 * FP_JWT_RSA_BITS_MIN bits for RS256, an EC key on P-256 for ES256
 * (kind is "public" or "private", for the message). Returns 0, or -EINVAL
 * with a short description of what is wrong in why.
 */
static int jwt__key_type_check(fp_jwt_alg alg, EVP_PKEY *pkey, const char *kind, char *why,
                               size_t len)
{
    char group[64];

    if (alg == FP_JWT_RS256 && !EVP_PKEY_is_a(pkey, "RSA")) {
        snprintf(why, len, "not an RSA %s key", kind);
        return -EINVAL;
    }
    if (alg == FP_JWT_RS256 && EVP_PKEY_get_bits(pkey) < FP_JWT_RSA_BITS_MIN) {
        snprintf(why, len, "RSA key has %d bits, need at least %d", EVP_PKEY_get_bits(pkey),
                 FP_JWT_RSA_BITS_MIN);
        return -EINVAL;
    }
    if (alg == FP_JWT_ES256 && (!EVP_PKEY_is_a(pkey, "EC") ||
                                EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL) != 1 ||
                                strcmp(group, "prime256v1") != 0)) {
        snprintf(why, len, "not an EC P-256 %s key", kind);
        return -EINVAL;
    }
    return 0;
}

/* Length of the unpadded base64url encoding of n bytes. */
static size_t jwt__b64url_len(size_t n)
{
    static const size_t tail[3] = {0, 2, 3};

    return n / 3 * 4 + tail[n % 3];
}

/*
 * Parses one PEM key, public or private, for alg and checks its type
 * (jwt__key_type_check). Returns 0 with *out set (EVP_PKEY_free it),
 * -ENODATA when no such PEM key is found or -EINVAL for the wrong kind of
 * key (what is wrong in why), or -ENOMEM.
 */
static int jwt__parse_key(fp_jwt_alg alg, const unsigned char *pem, size_t len, bool private_key,
                          EVP_PKEY **out, char *why, size_t whylen)
{
    const char *kind = private_key ? "private" : "public";
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pkey;
    int rc;

    *out = NULL;
    if (bio == NULL)
        return -ENOMEM;
    if (private_key)
        pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    else
        pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    ERR_clear_error();
    BIO_free(bio);
    if (pkey == NULL) {
        snprintf(why, whylen, "no PEM %s key found", kind);
        return -ENODATA;
    }
    rc = jwt__key_type_check(alg, pkey, kind, why, whylen);
    if (rc != 0) {
        EVP_PKEY_free(pkey);
        return rc;
    }
    *out = pkey;
    return 0;
}

/*
 * Parses the public key PEM in pem (NUL-terminated) for v->alg, checks
 * its type and keeps it in v with the expected signature length. Returns
 * 0 or -errno with err.
 */
static int jwt__load_public(fp_jwt_verifier *v, const char *path, const unsigned char *pem,
                            size_t len, char *err, size_t errlen)
{
    char why[96];
    int rc = jwt__parse_key(v->alg, pem, len, false, &v->pkey, why, sizeof(why));

    if (rc == -ENOMEM)
        return rc;
    if (rc == -ENODATA && strstr((const char *)pem, "PRIVATE KEY") != NULL)
        snprintf(why, sizeof(why), "a private key, need the public key (openssl pkey -pubout)");
    if (rc != 0) {
        jwt__fmt(err, errlen, "jwt key file %s: %s", path, why);
        return -EINVAL;
    }
    v->sig_b64_len =
        jwt__b64url_len(v->alg == FP_JWT_ES256 ? 64 : (size_t)EVP_PKEY_get_size(v->pkey));
    return 0;
}

/* strdup of an optional setting; NULL or "" gives NULL. */
static int jwt__dup_opt(const char *s, char **out)
{
    *out = NULL;
    if (s == NULL || s[0] == '\0')
        return 0;
    *out = strdup(s);
    return *out == NULL ? -ENOMEM : 0;
}

/* Checks the parts of cfg that need no I/O. Returns 0 or -EINVAL with err. */
static int jwt__check_config(const fp_jwt_config *cfg, char *err, size_t errlen)
{
    if (!jwt__alg_known(cfg->alg)) {
        jwt__fmt(err, errlen, "jwt algorithm %d not supported", (int)cfg->alg);
        return -EINVAL;
    }
    if (cfg->leeway_s < 0 || cfg->leeway_s > FP_JWT_LEEWAY_MAX) {
        jwt__fmt(err, errlen, "jwt leeway %d s out of range 0..%d", cfg->leeway_s,
                 FP_JWT_LEEWAY_MAX);
        return -EINVAL;
    }
    if (cfg->max_lifetime_s < 0 || cfg->max_lifetime_s > FP_JWT_LIFETIME_MAX) {
        jwt__fmt(err, errlen, "jwt maximum lifetime %lld s out of range 0..%d",
                 (long long)cfg->max_lifetime_s, FP_JWT_LIFETIME_MAX);
        return -EINVAL;
    }
    return 0;
}

/*
 * Builds a verifier: validates cfg, reads the key file once (HS256: the
 * secret; RS256/ES256: a public key of the right type) and copies the
 * issuer and audience. Returns 0 or -errno with a message in err.
 */
int fp_jwt_verifier_new(const fp_jwt_config *cfg, fp_jwt_verifier **out, char *err, size_t errlen)
{
    fp_jwt_verifier *v = NULL;
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    int rc;

    if (cfg == NULL || out == NULL)
        return -EINVAL;
    *out = NULL;
    rc = jwt__check_config(cfg, err, errlen);
    if (rc != 0)
        return rc;
    v = calloc(1, sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    v->alg = cfg->alg;
    v->leeway_s = cfg->leeway_s;
    v->max_lifetime_s = cfg->max_lifetime_s;
    v->require_iat = cfg->require_iat;
    rc = jwt__dup_opt(cfg->issuer, &v->issuer);
    if (rc == 0)
        rc = jwt__dup_opt(cfg->audience, &v->audience);
    if (rc != 0) {
        jwt__fmt(err, errlen, "jwt: out of memory");
        goto fail;
    }
    rc = fp_jwt_load_key(cfg->alg, cfg->key_file, &raw, &raw_len, err, errlen);
    if (rc != 0)
        goto fail;
    if (cfg->alg == FP_JWT_HS256) {
        v->secret = raw;
        v->secret_len = raw_len;
        v->sig_b64_len = jwt__b64url_len(32);
        raw = NULL;
    } else {
        rc = jwt__load_public(v, cfg->key_file, raw, raw_len, err, errlen);
        if (rc != 0)
            goto fail;
    }
    fp_jwt_key_free(raw, raw_len);
    *out = v;
    return 0;

fail:
    fp_jwt_key_free(raw, raw_len);
    fp_jwt_verifier_free(v);
    return rc;
}

void fp_jwt_verifier_free(fp_jwt_verifier *v)
{
    if (v == NULL)
        return;
    free(v->audience);
    free(v->issuer);
    fp_jwt_key_free(v->secret, v->secret_len);
    EVP_PKEY_free(v->pkey);
    free(v);
}

/* ------------------------------------------------ pre-signature checks */

/* The id alphabet [A-Za-z0-9_-] is exactly the base64url one. */
static bool jwt__b64url_char(unsigned char c)
{
    return fp_id_valid_n((const char *)&c, 1);
}

/*
 * Checks length and compact form: at most FP_JWT_MAX_BYTES, exactly three
 * dot-separated parts of base64url characters, header and payload not
 * empty, no part of a length base64 cannot produce. The signature may be
 * empty here so that an "alg":"none" token is reported as an algorithm
 * problem. Returns 0 and fills *p, or a negated refusal code.
 */
static int jwt__split(const char *token, jwt__parts *p, char *reason, size_t rlen)
{
    size_t n = strnlen(token, FP_JWT_MAX_BYTES + 1);
    size_t dots[2], ndots = 0, i;

    if (n > FP_JWT_MAX_BYTES)
        return jwt__refuse(reason, rlen, FP_JWT_E_TOO_LONG, "token longer than %d bytes",
                           FP_JWT_MAX_BYTES);
    for (i = 0; i < n; i++) {
        if (token[i] == '.') {
            if (ndots == 2)
                return jwt__refuse(reason, rlen, FP_JWT_E_MALFORMED, "token has more than 3 parts");
            dots[ndots++] = i;
        } else if (!jwt__b64url_char((unsigned char)token[i])) {
            return jwt__refuse(reason, rlen, FP_JWT_E_MALFORMED,
                               "token has a character outside base64url at offset %zu", i);
        }
    }
    if (ndots != 2)
        return jwt__refuse(reason, rlen, FP_JWT_E_MALFORMED,
                           "token needs 3 dot-separated parts, has %zu", ndots + 1);
    p->hdr_len = dots[0];
    p->pay_off = dots[0] + 1;
    p->pay_len = dots[1] - p->pay_off;
    p->sig_off = dots[1] + 1;
    p->sig_len = n - p->sig_off;
    if (p->hdr_len == 0 || p->pay_len == 0)
        return jwt__refuse(reason, rlen, FP_JWT_E_MALFORMED, "token header or payload is empty");
    if (p->hdr_len % 4 == 1 || p->pay_len % 4 == 1 || p->sig_len % 4 == 1)
        return jwt__refuse(reason, rlen, FP_JWT_E_MALFORMED, "token part has an invalid length");
    return 0;
}

/*
 * Decodes one base64url part of a token and reads it as a JSON object under
 * fp_json's rules (no duplicate member, no \u0000, strict UTF-8). what
 * names the part in the reason. Returns 0 with *out set (cJSON_Delete it)
 * or -FP_JWT_E_MALFORMED / -ENOMEM with a reason.
 */
static int jwt__decode_part(const char *part, size_t n, const char *what, cJSON **out, char *reason,
                            size_t rlen)
{
    char why[160];
    size_t len;
    unsigned char *text = fp_b64url_decode(part, n, &len);
    int rc;

    *out = NULL;
    if (text == NULL)
        return jwt__refuse(reason, rlen, FP_JWT_E_MALFORMED, "token %s is not base64url", what);
    rc = fp_json_object_parse((const char *)text, len, out, why, sizeof(why));
    free(text);
    if (rc == -ENOMEM)
        return jwt__refuse(reason, rlen, ENOMEM, "out of memory");
    if (rc != 0)
        return jwt__refuse(reason, rlen, FP_JWT_E_MALFORMED,
                           "token %s is not a valid JSON object: %s", what, why);
    return 0;
}

/*
 * Header members other than alg: no "crit" (no extension is understood)
 * and "typ", if present, "JWT" in any case.
 */
static int jwt__check_header_extras(const cJSON *hdr, char *reason, size_t rlen)
{
    const cJSON *typ = cJSON_GetObjectItemCaseSensitive(hdr, "typ");

    if (cJSON_GetObjectItemCaseSensitive(hdr, "crit") != NULL)
        return jwt__refuse(reason, rlen, FP_JWT_E_MALFORMED, "token header crit not supported");
    if (typ != NULL && (!cJSON_IsString(typ) || strcasecmp(typ->valuestring, "JWT") != 0))
        return jwt__refuse(reason, rlen, FP_JWT_E_MALFORMED, "token header typ must be JWT");
    return 0;
}

/*
 * Checks a decoded header (fp_json already refused a second "alg", which
 * JSON parsers resolve differently): "alg" a string equal to the
 * configured algorithm; then the other members.
 */
static int jwt__check_header(const fp_jwt_verifier *v, const cJSON *hdr, char *reason, size_t rlen)
{
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(hdr, "alg");
    const char *want = fp_jwt_alg_name(v->alg);
    char echo[FP_JSON_QUOTE_MAX + 4];

    if (alg == NULL)
        return jwt__refuse(reason, rlen, FP_JWT_E_ALG, "token header has no alg (configured %s)",
                           want);
    if (!cJSON_IsString(alg))
        return jwt__refuse(reason, rlen, FP_JWT_E_ALG, "token header alg is not a string");
    if (strcmp(alg->valuestring, want) != 0) {
        fp_json_quote(alg->valuestring, echo, sizeof(echo));
        return jwt__refuse(reason, rlen, FP_JWT_E_ALG, "algorithm %s not allowed (configured %s)",
                           echo, want);
    }
    return jwt__check_header_extras(hdr, reason, rlen);
}

/*
 * Everything that must hold before the signature is checked: form, header
 * and alg, signature length, and a payload that reads as a JSON object.
 * That object is the claims set, returned in *claims (cJSON_Delete it):
 * the signature covers these very bytes, so once it verifies they are
 * the claims, and they are read only this once. Returns 0 or a negated
 * refusal code with *claims NULL.
 */
static int jwt__precheck(const fp_jwt_verifier *v, const char *token, jwt__parts *p, cJSON **claims,
                         char *reason, size_t rlen)
{
    cJSON *hdr;
    int rc;

    *claims = NULL;
    rc = jwt__split(token, p, reason, rlen);
    if (rc != 0)
        return rc;
    rc = jwt__decode_part(token, p->hdr_len, "header", &hdr, reason, rlen);
    if (rc != 0)
        return rc;
    rc = jwt__check_header(v, hdr, reason, rlen);
    cJSON_Delete(hdr);
    if (rc != 0)
        return rc;
    if (p->sig_len != v->sig_b64_len)
        return jwt__refuse(reason, rlen, FP_JWT_E_SIGNATURE,
                           "signature has %zu characters, %s needs %zu", p->sig_len,
                           fp_jwt_alg_name(v->alg), v->sig_b64_len);
    return jwt__decode_part(token + p->pay_off, p->pay_len, "payload", claims, reason, rlen);
}

/* ------------------------------------------------- signature + claims */

/*
 * Checks the signature part against "header.payload" with the verifier's
 * algorithm and key (fp_jws). Returns 0 or a negated refusal code
 * (-ENOMEM).
 */
static int jwt__check_signature(const fp_jwt_verifier *v, const char *token, const jwt__parts *p,
                                char *reason, size_t rlen)
{
    fp_jws_key k = {v->alg, v->secret, v->secret_len, v->pkey};
    unsigned char *sig;
    size_t sig_len = 0;
    int rc;

    sig = fp_b64url_decode(token + p->sig_off, p->sig_len, &sig_len);
    if (sig == NULL)
        return jwt__refuse(reason, rlen, FP_JWT_E_SIGNATURE, "signature is not base64url");
    rc = fp_jws_verify(&k, token, p->sig_off - 1, sig, sig_len);
    free(sig);
    if (rc < 0)
        return jwt__refuse(reason, rlen, ENOMEM, "out of memory");
    if (rc == 0)
        return jwt__refuse(reason, rlen, FP_JWT_E_SIGNATURE, "signature verification failed");
    return 0;
}

/*
 * Reads the optional integer claim name: absent leaves *present false;
 * otherwise it must be a JSON number with an integral value in
 * 0..2^53-1. Returns 0 or -FP_JWT_E_CLAIM_TYPE.
 */
static int jwt__int_claim(const cJSON *claims, const char *name, int64_t *val, bool *present,
                          char *reason, size_t rlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(claims, name);
    double d;

    *present = false;
    *val = 0;
    if (it == NULL)
        return 0;
    d = cJSON_IsNumber(it) ? it->valuedouble : -1.0;
    if (!(d >= 0.0 && d <= JWT__INT_MAX) || (double)(int64_t)d != d)
        return jwt__refuse(reason, rlen, FP_JWT_E_CLAIM_TYPE,
                           "claim %s must be an integer number of seconds", name);
    *val = (int64_t)d;
    *present = true;
    return 0;
}

/*
 * With a maximum lifetime configured: exp - iat (exp - now when there is
 * no iat, so leaving iat out gains nothing) at most that. Returns 0 or
 * -FP_JWT_E_LIFETIME.
 */
static int jwt__check_lifetime(const fp_jwt_verifier *v, const fp_jwt_claims *c, int64_t now,
                               char *reason, size_t rlen)
{
    int64_t from = c->has_iat ? c->iat : now;

    /* exp is at most 2^53 and now a clock reading: no overflow. */
    if (v->max_lifetime_s > 0 && c->exp - from > v->max_lifetime_s)
        return jwt__refuse(reason, rlen, FP_JWT_E_LIFETIME,
                           "token lifetime %lld s is over the maximum %lld s",
                           (long long)(c->exp - from), (long long)v->max_lifetime_s);
    return 0;
}

/* Reads exp (required), nbf and iat into out and checks them against now.
 * exp is strict; nbf and iat get the configured leeway; then iat's
 * presence (require_iat) and the lifetime. */
static int jwt__check_times(const fp_jwt_verifier *v, const cJSON *claims, int64_t now,
                            fp_jwt_claims *out, char *reason, size_t rlen)
{
    bool has_exp;
    int rc;

    rc = jwt__int_claim(claims, "exp", &out->exp, &has_exp, reason, rlen);
    if (rc == 0)
        rc = jwt__int_claim(claims, "nbf", &out->nbf, &out->has_nbf, reason, rlen);
    if (rc == 0)
        rc = jwt__int_claim(claims, "iat", &out->iat, &out->has_iat, reason, rlen);
    if (rc != 0)
        return rc;
    if (!has_exp)
        return jwt__refuse(reason, rlen, FP_JWT_E_EXP_MISSING, "token has no exp claim");
    if (now >= out->exp)
        return jwt__refuse(reason, rlen, FP_JWT_E_EXPIRED, "token expired at %lld (now %lld)",
                           (long long)out->exp, (long long)now);
    /* Claims are <= 2^53 and leeway <= 300: subtracting cannot overflow. */
    if (out->has_nbf && now < out->nbf - v->leeway_s)
        return jwt__refuse(reason, rlen, FP_JWT_E_NOT_YET_VALID,
                           "token not valid before %lld (now %lld)", (long long)out->nbf,
                           (long long)now);
    if (out->has_iat && out->iat - v->leeway_s > now)
        return jwt__refuse(reason, rlen, FP_JWT_E_ISSUED_IN_FUTURE,
                           "token issued in the future at %lld (now %lld)", (long long)out->iat,
                           (long long)now);
    if (v->require_iat && !out->has_iat)
        return jwt__refuse(reason, rlen, FP_JWT_E_IAT_MISSING, "token has no iat claim");
    return jwt__check_lifetime(v, out, now, reason, rlen);
}

/* iss must be the configured issuer when there is one. */
static int jwt__check_issuer(const fp_jwt_verifier *v, const cJSON *claims, char *reason,
                             size_t rlen)
{
    const cJSON *iss;

    if (v->issuer == NULL)
        return 0;
    iss = cJSON_GetObjectItemCaseSensitive(claims, "iss");
    if (iss == NULL)
        return jwt__refuse(reason, rlen, FP_JWT_E_ISSUER, "token has no iss claim");
    if (!cJSON_IsString(iss))
        return jwt__refuse(reason, rlen, FP_JWT_E_CLAIM_TYPE, "claim iss must be a string");
    if (strcmp(iss->valuestring, v->issuer) != 0)
        return jwt__refuse(reason, rlen, FP_JWT_E_ISSUER, "token issuer is not the configured one");
    return 0;
}

/* aud must be the configured audience, or an array of strings holding it. */
static int jwt__check_audience(const fp_jwt_verifier *v, const cJSON *claims, char *reason,
                               size_t rlen)
{
    const cJSON *aud, *it;
    bool found = false;

    if (v->audience == NULL)
        return 0;
    aud = cJSON_GetObjectItemCaseSensitive(claims, "aud");
    if (aud == NULL)
        return jwt__refuse(reason, rlen, FP_JWT_E_AUDIENCE, "token has no aud claim");
    if (cJSON_IsString(aud)) {
        found = strcmp(aud->valuestring, v->audience) == 0;
    } else if (cJSON_IsArray(aud)) {
        cJSON_ArrayForEach(it, aud)
        {
            if (!cJSON_IsString(it))
                return jwt__refuse(reason, rlen, FP_JWT_E_CLAIM_TYPE,
                                   "claim aud must hold only strings");
            if (strcmp(it->valuestring, v->audience) == 0)
                found = true;
        }
    } else {
        return jwt__refuse(reason, rlen, FP_JWT_E_CLAIM_TYPE,
                           "claim aud must be a string or an array");
    }
    if (!found)
        return jwt__refuse(reason, rlen, FP_JWT_E_AUDIENCE,
                           "token audience does not include the configured one");
    return 0;
}

/* sub: required, a valid id; copied to out->sub. */
static int jwt__check_sub(const cJSON *claims, fp_jwt_claims *out, char *reason, size_t rlen)
{
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(claims, "sub");

    if (sub == NULL)
        return jwt__refuse(reason, rlen, FP_JWT_E_SUB, "token has no sub claim");
    if (!cJSON_IsString(sub))
        return jwt__refuse(reason, rlen, FP_JWT_E_CLAIM_TYPE, "claim sub must be a string");
    if (!fp_id_valid(sub->valuestring))
        return jwt__refuse(reason, rlen, FP_JWT_E_SUB,
                           "sub is not a valid id (1-%d of A-Z a-z 0-9 _ -)", FP_ID_MAX);
    memcpy(out->sub, sub->valuestring, strlen(sub->valuestring) + 1);
    return 0;
}

/* role: absent or "user" -> user, "service" -> service, else refused. */
static int jwt__check_role(const cJSON *claims, fp_jwt_claims *out, char *reason, size_t rlen)
{
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(claims, "role");
    char echo[FP_JSON_QUOTE_MAX + 4];

    out->role = FP_ROLE_USER;
    if (role == NULL)
        return 0;
    if (!cJSON_IsString(role))
        return jwt__refuse(reason, rlen, FP_JWT_E_CLAIM_TYPE, "claim role must be a string");
    if (strcmp(role->valuestring, "user") == 0)
        return 0;
    if (strcmp(role->valuestring, "service") == 0) {
        out->role = FP_ROLE_SERVICE;
        return 0;
    }
    fp_json_quote(role->valuestring, echo, sizeof(echo));
    return jwt__refuse(reason, rlen, FP_JWT_E_ROLE, "role %s not allowed (user or service)", echo);
}

/* All claim checks, in a fixed order: times, iss, aud, sub, role. */
static int jwt__check_claims(const fp_jwt_verifier *v, const cJSON *claims, int64_t now,
                             fp_jwt_claims *out, char *reason, size_t rlen)
{
    int rc;

    rc = jwt__check_times(v, claims, now, out, reason, rlen);
    if (rc == 0)
        rc = jwt__check_issuer(v, claims, reason, rlen);
    if (rc == 0)
        rc = jwt__check_audience(v, claims, reason, rlen);
    if (rc == 0)
        rc = jwt__check_sub(claims, out, reason, rlen);
    if (rc == 0)
        rc = jwt__check_role(claims, out, reason, rlen);
    return rc;
}

/*
 * Verifies token at time now: pre-checks (length, form, pinned alg,
 * signature length, payload JSON), the signature (fp_jws), then claims.
 * Returns 0 with *out filled, or -FP_JWT_E_* (or -EINVAL/-ENOMEM) with a
 * reason; *out is zeroed on failure. Uses no shared mutable state.
 */
int fp_jwt_verify(const fp_jwt_verifier *v, const char *token, int64_t now, fp_jwt_claims *out,
                  char *reason, size_t reason_len)
{
    fp_jwt_claims tmp;
    jwt__parts p = {0};
    cJSON *claims = NULL;
    int rc;

    memset(&tmp, 0, sizeof(tmp));
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (reason != NULL && reason_len > 0)
        reason[0] = '\0';
    if (v == NULL)
        return jwt__refuse(reason, reason_len, EINVAL, "no verifier");
    if (token == NULL)
        return jwt__refuse(reason, reason_len, FP_JWT_E_MALFORMED, "no token");
    rc = jwt__precheck(v, token, &p, &claims, reason, reason_len);
    if (rc == 0)
        rc = jwt__check_signature(v, token, &p, reason, reason_len);
    if (rc == 0)
        rc = jwt__check_claims(v, claims, now, &tmp, reason, reason_len);
    cJSON_Delete(claims);
    if (rc == 0 && out != NULL)
        *out = tmp;
    return rc;
}

bool fp_jwt_revoked(bool has_iat, int64_t iat, int64_t before)
{
    return before > 0 && (!has_iat || iat <= before);
}

int64_t fp_jwt_revocation_keep(const fp_jwt_config *cfg)
{
    return cfg->require_iat && cfg->max_lifetime_s > 0 ? cfg->max_lifetime_s : 0;
}

/* ------------------------------------------------------------- minting */

/* Checks the mint arguments that need no crypto. Returns 0 or -EINVAL. */
static int jwt__mint_check(fp_jwt_alg alg, size_t key_len, const fp_jwt_mint_claims *c, char *err,
                           size_t errlen)
{
    if (!jwt__alg_known(alg) || key_len > INT_MAX) {
        jwt__fmt(err, errlen, "jwt mint: bad algorithm or key");
        return -EINVAL;
    }
    if (alg == FP_JWT_HS256 && key_len < FP_JWT_HS_SECRET_MIN) {
        jwt__fmt(err, errlen, "jwt mint: HS256 secret has %zu bytes, need at least %d", key_len,
                 FP_JWT_HS_SECRET_MIN);
        return -EINVAL;
    }
    if (!fp_id_valid(c->sub)) {
        jwt__fmt(err, errlen, "jwt mint: sub is not a valid id");
        return -EINVAL;
    }
    if (c->exp <= 0 || (double)c->exp > JWT__INT_MAX || c->iat < 0 ||
        (double)c->iat > JWT__INT_MAX || c->nbf < 0 || (double)c->nbf > JWT__INT_MAX ||
        (c->role != FP_ROLE_USER && c->role != FP_ROLE_SERVICE)) {
        jwt__fmt(err, errlen, "jwt mint: exp, iat, nbf or role out of range");
        return -EINVAL;
    }
    return 0;
}

/* Parses a private key PEM for alg (RS256/ES256) and checks its type.
 * Returns 0 with *out set (EVP_PKEY_free it), or -errno with err. */
static int jwt__mint_key(fp_jwt_alg alg, const unsigned char *key, size_t key_len, EVP_PKEY **out,
                         char *err, size_t errlen)
{
    char why[96];
    int rc = jwt__parse_key(alg, key, key_len, true, out, why, sizeof(why));

    if (rc == -ENOMEM)
        return rc;
    if (rc != 0) {
        jwt__fmt(err, errlen, "jwt mint: %s", why);
        return -EINVAL;
    }
    return 0;
}

/* The claims set of c as compact JSON (cJSON_free it), or NULL when out
 * of memory. Optional claims are left out when zero or empty. */
static char *jwt__mint_claims(const fp_jwt_mint_claims *c)
{
    cJSON *o = cJSON_CreateObject();
    char *out = NULL;
    bool ok;

    if (o == NULL)
        return NULL;
    ok = cJSON_AddStringToObject(o, "sub", c->sub) != NULL &&
         cJSON_AddNumberToObject(o, "exp", (double)c->exp) != NULL;
    if (ok && c->iat != 0)
        ok = cJSON_AddNumberToObject(o, "iat", (double)c->iat) != NULL;
    if (ok && c->nbf != 0)
        ok = cJSON_AddNumberToObject(o, "nbf", (double)c->nbf) != NULL;
    if (ok && c->iss != NULL && c->iss[0] != '\0')
        ok = cJSON_AddStringToObject(o, "iss", c->iss) != NULL;
    if (ok && c->aud != NULL && c->aud[0] != '\0')
        ok = cJSON_AddStringToObject(o, "aud", c->aud) != NULL;
    if (ok && c->role == FP_ROLE_SERVICE)
        ok = cJSON_AddStringToObject(o, "role", "service") != NULL;
    if (ok)
        out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

/* The signing input "b64url(header).b64url(claims)" of a token of c, or
 * NULL when out of memory. */
static char *jwt__mint_input(fp_jwt_alg alg, const fp_jwt_mint_claims *c)
{
    char header[48], *claims = jwt__mint_claims(c), *h, *p = NULL, *out = NULL;
    size_t n;

    snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", fp_jwt_alg_name(alg));
    h = fp_b64url_encode(header, strlen(header));
    if (claims != NULL)
        p = fp_b64url_encode(claims, strlen(claims));
    if (h != NULL && p != NULL) {
        n = strlen(h) + 1 + strlen(p) + 1;
        out = malloc(n);
        if (out != NULL)
            snprintf(out, n, "%s.%s", h, p);
    }
    free(p);
    free(h);
    cJSON_free(claims);
    return out;
}

/*
 * Mints a token signed with key (HS256 secret, or RS256/ES256 private key
 * PEM, parsed once here). ES256 signatures are JOSE R||S. Returns 0 with a
 * malloc'd token in *token_out, or -errno with err.
 */
int fp_jwt_mint(fp_jwt_alg alg, const unsigned char *key, size_t key_len,
                const fp_jwt_mint_claims *c, char **token_out, char *err, size_t errlen)
{
    fp_jws_key k = {alg, key, key_len, NULL};
    unsigned char *sig = NULL;
    char *input = NULL, *sig64 = NULL, ebuf[128];
    size_t sig_len = 0, n;
    int rc;

    if (token_out == NULL || key == NULL || c == NULL)
        return -EINVAL;
    *token_out = NULL;
    rc = jwt__mint_check(alg, key_len, c, err, errlen);
    if (rc == 0 && alg != FP_JWT_HS256)
        rc = jwt__mint_key(alg, key, key_len, &k.pkey, err, errlen);
    if (rc != 0)
        return rc;
    rc = -ENOMEM;
    input = jwt__mint_input(alg, c);
    if (input == NULL)
        goto fail;
    rc = fp_jws_sign(&k, input, strlen(input), &sig, &sig_len);
    if (rc != 0)
        goto fail;
    rc = -ENOMEM;
    sig64 = fp_b64url_encode(sig, sig_len);
    if (sig64 == NULL)
        goto fail;
    n = strlen(input) + 1 + strlen(sig64) + 1;
    *token_out = malloc(n);
    if (*token_out == NULL)
        goto fail;
    snprintf(*token_out, n, "%s.%s", input, sig64);
    rc = 0;
fail:
    if (rc != 0)
        jwt__fmt(err, errlen, "jwt mint: signing failed (%s)",
                 jwt__errstr(-rc, ebuf, sizeof(ebuf)));
    free(sig64);
    free(sig);
    free(input);
    EVP_PKEY_free(k.pkey);
    return rc;
}
