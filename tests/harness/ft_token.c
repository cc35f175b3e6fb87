#include "ft_token.h"
#include "fp_jws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

static void *token__alloc(size_t n)
{
    void *p = malloc(n);

    if (p == NULL)
        abort();
    return p;
}

char *ft_token_mint(fp_jwt_alg alg, const unsigned char *key, size_t key_len, const char *sub,
                    fp_role role, int64_t iat, int64_t exp)
{
    fp_jwt_mint_claims c = {0};
    char *tok = NULL, err[256];

    c.sub = sub;
    c.iat = iat;
    c.exp = exp;
    c.role = role;
    if (fp_jwt_mint(alg, key, key_len, &c, &tok, err, sizeof(err)) != 0) {
        fprintf(stderr, "ft_token: minting a token for %s: %s\n", sub, err);
        return NULL;
    }
    return tok;
}

char *ft_b64url(const void *data, size_t n)
{
    char *out = fp_b64url_encode(data, n);

    if (out == NULL)
        abort();
    return out;
}

char *ft_token_raw(const char *header, const char *payload, const char *sig)
{
    char *h = ft_b64url(header, strlen(header));
    char *p = ft_b64url(payload, strlen(payload));
    size_t n;
    char *tok;

    if (sig == NULL)
        sig = "";
    n = strlen(h) + strlen(p) + strlen(sig) + 3;
    tok = token__alloc(n);
    snprintf(tok, n, "%s.%s.%s", h, p, sig);
    free(p);
    free(h);
    return tok;
}

char *ft_token_hand(const char *header, const char *payload, const struct evp_md_st *md,
                    const unsigned char *key, size_t key_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    char *unsigned_tok = ft_token_raw(header, payload, NULL);
    size_t n = strlen(unsigned_tok) - 1; /* without the last '.' */
    size_t tn;
    char *sig, *tok;

    if (md == NULL)
        return unsigned_tok;
    if (HMAC(md, key, (int)key_len, (unsigned char *)unsigned_tok, n, mac, &mac_len) == NULL)
        abort();
    sig = ft_b64url(mac, mac_len);
    tn = n + 1 + strlen(sig) + 1;
    tok = token__alloc(tn);
    snprintf(tok, tn, "%.*s.%s", (int)n, unsigned_tok, sig);
    free(sig);
    free(unsigned_tok);
    return tok;
}
