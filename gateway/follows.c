/*
 * follows.c - PUT / DELETE /api/v1/follows/{userId} (follow.created /
 * follow.deleted events) and GET /api/v1/follows (following:<caller>).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

/* Publishes a follow event of type t from the caller to req->param. */
static void follows__change(fg_gateway *gw, const fg_request *req, fg_response *resp,
                            fp_event_type t)
{
    fp_event ev = {.type = t};
    fp_store *st;
    cJSON *out;
    int rc;

    if (!fp_id_valid(req->param)) {
        fg_respond_error(resp, 400, "bad_request", "user id: 1-64 characters of [A-Za-z0-9_-]");
        return;
    }
    if (strcmp(req->param, req->caller.sub) == 0) {
        fg_respond_error(resp, 400, "bad_request", "you cannot follow yourself");
        return;
    }
    snprintf(ev.follower_id, sizeof(ev.follower_id), "%s", req->caller.sub);
    snprintf(ev.followee_id, sizeof(ev.followee_id), "%s", req->param);
    /* The stamp orders this change after the pair's earlier ones, should
     * one of those be delivered again later (fp_store_follow). */
    st = fg_backend_store(gw);
    if (st == NULL) {
        fg_respond_unavailable(resp, "redis");
        return;
    }
    FG_STORE_CALL(gw, rc, fp_store_follow_stamp(st, ev.follower_id, ev.followee_id, &ev.follow_at));
    if (rc != 0) {
        fg_respond_store_error(gw, resp, rc, "follow stamp");
        return;
    }
    if (!fg_publish(gw, &ev, resp))
        return;
    out = cJSON_CreateObject();
    if (out != NULL &&
        (cJSON_AddStringToObject(out, "follower_id", ev.follower_id) == NULL ||
         cJSON_AddStringToObject(out, "followee_id", ev.followee_id) == NULL ||
         cJSON_AddBoolToObject(out, "following", t == FP_EVENT_FOLLOW_CREATED) == NULL)) {
        cJSON_Delete(out);
        out = NULL;
    }
    fg_respond_json(resp, 200, out);
}

void fg_follows_put(fg_gateway *gw, const fg_request *req, fg_response *resp)
{
    follows__change(gw, req, resp, FP_EVENT_FOLLOW_CREATED);
}

void fg_follows_delete(fg_gateway *gw, const fg_request *req, fg_response *resp)
{
    follows__change(gw, req, resp, FP_EVENT_FOLLOW_DELETED);
}

void fg_follows_list(fg_gateway *gw, const fg_request *req, fg_response *resp)
{
    char(*ids)[FP_ID_BUFSZ] = NULL;
    cJSON *out, *arr;
    fp_store *st;
    size_t i, n = 0;
    int rc;

    st = fg_backend_store(gw);
    if (st == NULL) {
        fg_respond_unavailable(resp, "redis");
        return;
    }
    FG_STORE_CALL(gw, rc, fp_store_following(st, req->caller.sub, &ids, &n));
    if (rc != 0) {
        fg_respond_store_error(gw, resp, rc, "follows read");
        return;
    }
    out = cJSON_CreateObject();
    arr = cJSON_AddArrayToObject(out, "following");
    for (i = 0; arr != NULL && i < n; i++) {
        if (!cJSON_AddItemToArray(arr, cJSON_CreateString(ids[i]))) {
            arr = NULL;
        }
    }
    free(ids);
    if (arr == NULL) {
        cJSON_Delete(out);
        out = NULL;
    }
    fg_respond_json(resp, 200, out);
}
