/*
 * auth.c - the caller of an authenticated route: the bearer token,
 * verified by common/fp_jwt with the deployment's one algorithm (the
 * header's alg is never trusted), then checked against revoked:<sub> the
 * way the broker plugin does (fp_jwt_revoked: a token issued at or before
 * the user's revocation, or without iat once the user was revoked, is
 * refused).
 */
#include <errno.h>
#include <time.h>

#include "fp_log.h"
#include "gateway.h"

int fg_auth_token(fg_gateway *gw, const fg_request *req, fp_jwt_claims *claims, fg_response *resp)
{
    char reason[160];
    int rc;

    if (req->bearer == NULL) {
        fg_respond_error(resp, 401, "unauthorized",
                         "an Authorization: Bearer <token> header is required");
        return -1;
    }
    rc = fp_jwt_verify(gw->verifier, req->bearer, (int64_t)time(NULL), claims, reason,
                       sizeof(reason));
    if (rc != 0) {
        fp_debug("token refused: %s", reason);
        fg_respond_error(resp, 401, "unauthorized", "token refused: %s", reason);
        return -1;
    }
    return 0;
}

int fg_auth_not_revoked(const fp_jwt_claims *claims, int64_t before, fg_response *resp)
{
    if (fp_jwt_revoked(claims->has_iat, claims->iat, before)) {
        fg_respond_error(resp, 401, "unauthorized",
                         "token refused: issued at or before %s was revoked", claims->sub);
        return -1;
    }
    return 0;
}

int fg_auth_check(fg_gateway *gw, const fg_request *req, fp_jwt_claims *claims, fg_response *resp)
{
    if (fg_auth_token(gw, req, claims, resp) != 0)
        return -1;
    return fg_auth_revocation(gw, claims, resp);
}

int fg_auth_revocation(fg_gateway *gw, const fp_jwt_claims *claims, fg_response *resp)
{
    fg_revoked *cache = gw->shared != NULL ? gw->shared->revoked : NULL;
    fp_store *st;
    int64_t before = 0;
    uint64_t gen;
    int rc;

    if (fg_revoked_get(cache, claims->sub, &before, &gen) == 0)
        return fg_auth_not_revoked(claims, before, resp);
    st = fg_backend_store(gw);
    if (st == NULL) {
        fg_respond_unavailable(resp, "redis");
        return -1;
    }
    FG_STORE_CALL(gw, rc, fp_store_revoked_before(st, claims->sub, &before));
    if (rc != 0) {
        fg_respond_store_error(gw, resp, rc, "revocation check");
        return -1;
    }
    fg_revoked_put(cache, claims->sub, before, gen);
    return fg_auth_not_revoked(claims, before, resp);
}
