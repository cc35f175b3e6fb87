/*
 * fp_jwt.h - JWT verification (and minting for dev tools and tests).
 *
 * A verifier holds one key for one algorithm, pinned by configuration
 * (RFC 8725 section 3.1): the token header's "alg" must equal it exactly,
 * so "none", HS/RS confusion and any algorithm switch are refused before
 * any signature is looked at. Keys are parsed once, when the verifier is
 * built (fp_jws does the signatures). Supported: HS256 (shared secret file),
 * RS256 (RSA >= 2048 bit public key PEM), ES256 (EC P-256 public key PEM,
 * JOSE R||S signatures).
 *
 * Claims (times are unix seconds: JSON numbers with an integral value in
 * 0..2^53-1, else FP_JWT_E_CLAIM_TYPE):
 *   exp  required; refused when now >= exp (no leeway)
 *   nbf  optional; refused when now + leeway < nbf
 *   iat  optional (required with require_iat); refused when
 *        iat > now + leeway
 *   iss  exact string match when an issuer is configured
 *   aud  string equal to, or array containing, the configured audience
 *   sub  required; a valid id (fp_id_valid)
 *   role optional; "user" (default) or "service"
 * Other claims are ignored. A JSON text holding a \u0000 escape is refused
 * as malformed (C strings would be cut there).
 *
 * A verifier is immutable once built: fp_jwt_verify may run concurrently
 * on the same verifier from several threads.
 */
#ifndef FP_JWT_H
#define FP_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fp_id.h"

/* Longest token accepted (bytes, without the NUL). Longer ones are refused
 * before any decoding. */
#define FP_JWT_MAX_BYTES 8192
/* Largest key file read (bytes). */
#define FP_JWT_KEY_FILE_MAX 65536
/* Shortest HS256 secret (bytes, RFC 7518 section 3.2: >= hash size). */
#define FP_JWT_HS_SECRET_MIN 32
/* Smallest RSA modulus accepted (bits, RFC 7518 section 3.3). */
#define FP_JWT_RSA_BITS_MIN 2048
/* Largest leeway_s accepted by fp_jwt_verifier_new. */
#define FP_JWT_LEEWAY_MAX 300
/* Largest configurable maximum token lifetime: ten years, in seconds. */
#define FP_JWT_LIFETIME_MAX 315360000

typedef enum { FP_JWT_HS256 = 1, FP_JWT_RS256, FP_JWT_ES256 } fp_jwt_alg;

/* "HS256", "RS256", "ES256"; "?" for anything else. */
const char *fp_jwt_alg_name(fp_jwt_alg a);

/* Parses an exact (case-sensitive, as in JWA) algorithm name.
 * Returns 0 and sets *out, or -EINVAL (NULL, unknown, "none", "hs256"). */
int fp_jwt_alg_parse(const char *s, fp_jwt_alg *out);

typedef enum { FP_ROLE_USER = 0, FP_ROLE_SERVICE = 1 } fp_role;

/* Refusal codes: fp_jwt_verify returns one of these negated,
 * e.g. -FP_JWT_E_EXPIRED. They do not collide with errno values. */
typedef enum {
    FP_JWT_E_TOO_LONG = 1000,  /* longer than FP_JWT_MAX_BYTES */
    FP_JWT_E_MALFORMED,        /* not header.payload.signature in base64url JSON */
    FP_JWT_E_ALG,              /* header alg missing or not the configured one */
    FP_JWT_E_SIGNATURE,        /* signature wrong, missing or of the wrong length */
    FP_JWT_E_EXPIRED,          /* now >= exp */
    FP_JWT_E_NOT_YET_VALID,    /* now + leeway < nbf */
    FP_JWT_E_ISSUED_IN_FUTURE, /* iat > now + leeway */
    FP_JWT_E_ISSUER,           /* iss missing or different (when configured) */
    FP_JWT_E_AUDIENCE,         /* aud missing or not matching (when configured) */
    FP_JWT_E_SUB,              /* sub missing or not a valid id */
    FP_JWT_E_EXP_MISSING,      /* no exp claim */
    FP_JWT_E_ROLE,             /* role neither "user" nor "service" */
    FP_JWT_E_CLAIM_TYPE,       /* a claim has the wrong JSON type */
    FP_JWT_E_LIFETIME,         /* exp - iat over the configured maximum */
    FP_JWT_E_IAT_MISSING,      /* no iat claim, and require_iat is set */
} fp_jwt_refusal;

/* Short name for a refusal code, negative or positive ("expired",
 * "signature", ...); "ok" for 0 and "error" for anything else. */
const char *fp_jwt_strerror(int code);

typedef struct {
    fp_jwt_alg alg;
    /* HS256: secret file (one trailing newline stripped; fewer than
     * FP_JWT_HS_SECRET_MIN bytes refused). RS256: RSA public key PEM
     * ("BEGIN PUBLIC KEY"). ES256: EC P-256 public key PEM. The key type is
     * checked at load; a PRIVATE key file is refused (the verifying nodes
     * never need it; extract with `openssl pkey -in k.pem -pubout`). */
    const char *key_file;
    const char *issuer;   /* NULL or "" = not checked */
    const char *audience; /* NULL or "" = not checked */
    int leeway_s;         /* clock-skew allowance for nbf/iat, 0..FP_JWT_LEEWAY_MAX */
    /* Longest accepted lifetime, exp - iat (exp - now for a token without
     * iat), in seconds; 0 = no limit, else 1..FP_JWT_LIFETIME_MAX. */
    int64_t max_lifetime_s;
    /* Refuse tokens without iat (FP_JWT_E_IAT_MISSING). With a maximum
     * lifetime too, a revocation's cut-off can be forgotten max_lifetime_s
     * after it (fp_jwt_revocation_keep): no token it revokes is valid
     * then, while a token without iat would be valid again. */
    bool require_iat;
} fp_jwt_config;

/* Opaque; holds the key bytes read once and the configuration copied. */
typedef struct fp_jwt_verifier fp_jwt_verifier;

/* Builds a verifier from cfg (strings are copied). Returns 0, or -errno
 * with a message in err such as "jwt key file /x: No such file or
 * directory" or "jwt key file /x: not an RSA public key" (-EINVAL). */
int fp_jwt_verifier_new(const fp_jwt_config *cfg, fp_jwt_verifier **out, char *err, size_t errlen);

/* Frees v (NULL is fine); secret bytes are wiped first. */
void fp_jwt_verifier_free(fp_jwt_verifier *v);

typedef struct {
    char sub[FP_ID_BUFSZ];
    int64_t exp;
    int64_t iat;
    bool has_iat;
    int64_t nbf;
    bool has_nbf;
    fp_role role;
} fp_jwt_claims;

/* Verifies the NUL-terminated token at time now (unix seconds). Returns 0
 * and fills *out (may be NULL), or -FP_JWT_E_* (-EINVAL for a NULL v,
 * -ENOMEM) with a one-line reason in reason (may be NULL). The reason
 * never contains the token; values taken from the token are quoted by
 * fp_json_quote (shortened, every byte that is not printable ASCII and
 * every quote, apostrophe, backslash, <, >, & and backtick made '?'). *out is zeroed
 * on refusal. A header "typ", if
 * present, must be "JWT" (any case); a "crit" header is refused. */
int fp_jwt_verify(const fp_jwt_verifier *v, const char *token, int64_t now, fp_jwt_claims *out,
                  char *reason, size_t reason_len);

/*
 * Does a revocation of the token's user with cut-off before (unix
 * seconds; 0 = none) revoke a token issued at iat (has_iat false: no iat
 * claim)? Every token issued at or before the cut-off is revoked, and so
 * is a token without iat: iat has one-second resolution, so a token minted
 * in the revocation's own second cannot be told from one minted just
 * before it, and RFC 8725 prefers refusing. A user revoked at second T
 * needs tokens issued at T + 1 or later.
 */
bool fp_jwt_revoked(bool has_iat, int64_t iat, int64_t before);

/*
 * How long a revocation matters under cfg, in seconds; 0 = for ever.
 * With require_iat and a maximum lifetime, every token a cut-off revokes
 * (iat <= before) has exp <= before + max_lifetime_s, so from that second
 * on the cut-off refuses nothing cfg would accept and can be forgotten.
 * Without iat required, a token without iat issued before the cut-off
 * may have any exp: the cut-off is kept for ever.
 */
int64_t fp_jwt_revocation_keep(const fp_jwt_config *cfg);

/* Claims for fp_jwt_mint. sub must be a valid id and exp > 0; iat and nbf
 * are omitted when 0, iss and aud when NULL or "". role "service" is
 * written as a claim, FP_ROLE_USER is left implicit. */
typedef struct {
    const char *sub;
    int64_t iat;
    int64_t exp;
    int64_t nbf; /* 0 = omit */
    const char *iss;
    const char *aud;
    fp_role role;
} fp_jwt_mint_claims;

/* Mints a signed token for dev tools and tests. key: HS256 secret bytes
 * (at least FP_JWT_HS_SECRET_MIN), or RS256/ES256 PRIVATE key PEM bytes.
 * Returns 0 and a malloc'd NUL-terminated token in *token_out, or -errno
 * with a message in err. */
int fp_jwt_mint(fp_jwt_alg alg, const unsigned char *key, size_t key_len,
                const fp_jwt_mint_claims *c, char **token_out, char *err, size_t errlen);

/* Reads a whole key file (at most FP_JWT_KEY_FILE_MAX bytes, a regular
 * file) as is. Returns 0 with a malloc'd buffer in *out (NUL-terminated,
 * the NUL not counted in *len; release with fp_jwt_key_free), or -errno
 * with "jwt key file <path>: <why>" in err. */
int fp_jwt_read_key_file(const char *path, unsigned char **out, size_t *len, char *err,
                         size_t errlen);

/* Reads the key file for alg the way the verifier does: for HS256 one
 * trailing newline is stripped and a secret shorter than
 * FP_JWT_HS_SECRET_MIN is refused (-EINVAL). Token minting tools use this
 * so that they sign with exactly the bytes the verifier checks with. */
int fp_jwt_load_key(fp_jwt_alg alg, const char *path, unsigned char **out, size_t *len, char *err,
                    size_t errlen);

/* Wipes and frees a buffer from fp_jwt_read_key_file / fp_jwt_load_key. */
void fp_jwt_key_free(unsigned char *key, size_t len);

#endif
