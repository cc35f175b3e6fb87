/*
 * dev.c - what the browser client needs before it has a token:
 * GET /api/v1/config (where the brokers are, whether dev sign-in exists)
 * and, in dev mode only, POST /api/v1/dev/token (a short-lived user token
 * for any valid user id: for trying feedpush out, never for production).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fp_log.h"
#include "gateway.h"

/* Adds each comma-separated URL of list (blanks trimmed) to arr. */
static bool dev__add_urls(cJSON *arr, const char *list)
{
    const char *p = list, *end, *a, *b;
    char url[512];

    while (*p != '\0') {
        end = strchr(p, ',');
        if (end == NULL)
            end = p + strlen(p);
        a = p;
        b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (b > a && (size_t)(b - a) < sizeof(url)) {
            memcpy(url, a, (size_t)(b - a));
            url[b - a] = '\0';
            if (!cJSON_AddItemToArray(arr, cJSON_CreateString(url)))
                return false;
        }
        p = *end == ',' ? end + 1 : end;
    }
    return true;
}

void fg_dev_config(fg_gateway *gw, const fg_request *req, fg_response *resp)
{
    cJSON *out = cJSON_CreateObject(), *urls;

    (void)req;
    urls = cJSON_AddArrayToObject(out, "mqtt_ws_urls");
    if (urls == NULL || !dev__add_urls(urls, gw->cfg.mqtt_ws_urls) ||
        cJSON_AddBoolToObject(out, "dev_mode", gw->cfg.dev_mode) == NULL) {
        cJSON_Delete(out);
        out = NULL;
    }
    fg_respond_json(resp, 200, out);
}

int fg_dev_mint(const fg_gateway *gw, const char *sub, char **token, int64_t *exp, char *err,
                size_t errlen)
{
    fp_jwt_mint_claims c = {0};

    c.sub = sub;
    c.iat = (int64_t)time(NULL);
    c.exp = c.iat + gw->cfg.dev_token_ttl;
    c.iss = gw->cfg.jwt_issuer;
    c.aud = gw->cfg.jwt_audience;
    *exp = c.exp;
    return fp_jwt_mint(gw->alg, gw->signing_key, gw->signing_key_len, &c, token, err, errlen);
}

void fg_dev_token(fg_gateway *gw, const fg_request *req, fg_response *resp)
{
    char *token = NULL, err[256];
    const cJSON *uid;
    cJSON *body, *out;
    int64_t exp;

    body = fg_body_object(req, resp, false);
    if (body == NULL)
        return;
    uid = cJSON_GetObjectItemCaseSensitive(body, "user_id");
    if (!cJSON_IsString(uid) || !fp_id_valid(uid->valuestring)) {
        fg_respond_error(resp, 400, "bad_request", "user_id: 1-64 characters of [A-Za-z0-9_-]");
        goto done;
    }
    if (fg_dev_mint(gw, uid->valuestring, &token, &exp, err, sizeof(err)) != 0) {
        fp_error("dev token: %s", err);
        fg_respond_error(resp, 500, "internal", "could not sign a token");
        goto done;
    }
    fp_info("dev token issued for %s", uid->valuestring);
    out = cJSON_CreateObject();
    if (out != NULL && (cJSON_AddStringToObject(out, "token", token) == NULL ||
                        cJSON_AddStringToObject(out, "user_id", uid->valuestring) == NULL ||
                        cJSON_AddNumberToObject(out, "expires_at", (double)exp) == NULL)) {
        cJSON_Delete(out);
        out = NULL;
    }
    fg_respond_json(resp, 200, out);
done:
    free(token);
    cJSON_Delete(body);
}
