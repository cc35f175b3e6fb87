/*
 * response.c - JSON responses: bodies, the {"error","message"} form of
 * every error, and request bodies parsed as one JSON object.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp_json.h"
#include "fp_log.h"
#include "gateway.h"

/* A body that cannot be built (out of memory) is replaced by a fixed one. */
static const char response__oom[] = "{\"error\":\"internal\",\"message\":\"out of memory\"}";

void fg_respond_body(fg_response *resp, int status, const char *content_type, char *body,
                     size_t len)
{
    free(resp->body);
    resp->status = status;
    resp->content_type = content_type;
    resp->body = body;
    resp->len = len;
}

static void response__set(fg_response *resp, int status, char *body)
{
    char *oom;

    if (body == NULL) {
        oom = strdup(response__oom);
        fg_respond_body(resp, 500, "application/json", oom, oom != NULL ? strlen(oom) : 0);
        return;
    }
    fg_respond_body(resp, status, "application/json", body, strlen(body));
}

void fg_respond_json(fg_response *resp, int status, cJSON *obj)
{
    char *body = obj != NULL ? cJSON_PrintUnformatted(obj) : NULL;

    cJSON_Delete(obj);
    response__set(resp, status, body);
}

void fg_respond_error(fg_response *resp, int status, const char *code, const char *fmt, ...)
{
    char message[512];
    cJSON *obj;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    obj = cJSON_CreateObject();
    if (obj != NULL && (cJSON_AddStringToObject(obj, "error", code) == NULL ||
                        cJSON_AddStringToObject(obj, "message", message) == NULL)) {
        cJSON_Delete(obj);
        obj = NULL;
    }
    fg_respond_json(resp, status, obj);
}

void fg_respond_unavailable(fg_response *resp, const char *what)
{
    fg_respond_error(resp, 503, "unavailable", "%s is unreachable; try again shortly", what);
}

void fg_respond_internal(fg_response *resp, const char *what, int rc)
{
    fp_error("%s failed: %s", what, strerror(rc < 0 ? -rc : rc));
    fg_respond_error(resp, 500, "internal", "%s failed", what);
}

cJSON *fg_body_object(const fg_request *req, fg_response *resp, bool allow_empty)
{
    char reason[128];
    cJSON *obj = NULL;

    if (req->body_len == 0) {
        if (allow_empty)
            return cJSON_CreateObject();
        fg_respond_error(resp, 400, "bad_request", "a JSON object body is required");
        return NULL;
    }
    if (fp_json_object_parse(req->body, req->body_len, &obj, reason, sizeof(reason)) != 0) {
        fg_respond_error(resp, 400, "bad_request", "body: %s", reason);
        return NULL;
    }
    return obj;
}
