/*
 * posts.c - POST /api/v1/posts (a post.created event with a new id, or
 * one named by the client's key) and
 * DELETE /api/v1/posts/{id} (a post.deleted event, author only).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/evp.h>

#include "fp_log.h"
#include "gateway.h"

/*
 * A new post id: the creation time in milliseconds (11 hex digits, so ids
 * sort by time until the year 2527) and 64 random bits. Returns 0 or -EIO
 * when the kernel gives no randomness.
 */
static int posts__new_id(int64_t ms, char id[FP_ID_BUFSZ])
{
    uint64_t r;

    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return -EIO;
    snprintf(id, FP_ID_BUFSZ, "%011" PRIx64 "%016" PRIx64, (uint64_t)ms, r);
    return 0;
}

/*
 * The id of a post sent with a key (a name the client gives one post,
 * kept across its retries): 27 hex digits of SHA-256 over the author, the
 * key and the text, so a retry of a post whose answer was lost (a 503
 * after RabbitMQ took it, a dropped connection) names the same post,
 * which the bridges apply once; another author's key, or the same key
 * with another text, names another. Returns 0 or -EIO.
 */
static int posts__keyed_id(const char *author, const char *key, const char *text,
                           char id[FP_ID_BUFSZ])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0, i;
    int ok;

    ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
         EVP_DigestUpdate(ctx, author, strlen(author) + 1) == 1 &&
         EVP_DigestUpdate(ctx, key, strlen(key) + 1) == 1 &&
         EVP_DigestUpdate(ctx, text, strlen(text)) == 1 && EVP_DigestFinal_ex(ctx, md, &n) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok || n < 14)
        return -EIO;
    for (i = 0; i < 14; i++)
        snprintf(id + 2 * i, 3, "%02x", md[i]);
    id[27] = '\0';
    return 0;
}

/* The post as the API returns it. */
static cJSON *posts__json(const fp_post *p)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL || cJSON_AddStringToObject(o, "id", p->id) == NULL ||
        cJSON_AddStringToObject(o, "author_id", p->author_id) == NULL ||
        cJSON_AddStringToObject(o, "text", p->text) == NULL ||
        cJSON_AddNumberToObject(o, "created_at", (double)p->created_at) == NULL) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

void fg_posts_create(fg_gateway *gw, const fg_request *req, fg_response *resp)
{
    fp_event ev = {.type = FP_EVENT_POST_CREATED};
    char reason[160];
    const cJSON *text, *key;
    cJSON *body, *out;
    int rc;

    body = fg_body_object(req, resp, false);
    if (body == NULL)
        return;
    text = cJSON_GetObjectItemCaseSensitive(body, "text");
    if (!cJSON_IsString(text)) {
        fg_respond_error(resp, 400, "bad_request", "text: a string is required");
        goto done;
    }
    key = cJSON_GetObjectItemCaseSensitive(body, "key");
    if (cJSON_IsNull(key))
        key = NULL; /* an optional field given as null is absent (protocol.md) */
    if (key != NULL && !(cJSON_IsString(key) && fp_id_valid(key->valuestring))) {
        fg_respond_error(resp, 400, "bad_request", "key: 1-64 characters of [A-Za-z0-9_-]");
        goto done;
    }
    ev.post.created_at = fp_time_real_ms();
    snprintf(ev.post.author_id, sizeof(ev.post.author_id), "%s", req->caller.sub);
    ev.post.text = text->valuestring;
    if (key != NULL)
        rc = posts__keyed_id(ev.post.author_id, key->valuestring, ev.post.text, ev.post.id);
    else
        rc = posts__new_id(ev.post.created_at, ev.post.id);
    if (rc != 0) {
        fg_respond_internal(resp, "post id", -EIO);
        goto done;
    }
    if (fp_event_validate(&ev, reason, sizeof(reason)) != 0) {
        /* Reasons name the event field ("post.text: ..."): say "text". */
        fg_respond_error(resp, 400, "bad_request", "%s",
                         strncmp(reason, "post.", 5) == 0 ? reason + 5 : reason);
        goto done;
    }
    if (!fg_publish(gw, &ev, resp))
        goto done;
    fp_debug("post %s by %s published", ev.post.id, ev.post.author_id);
    out = cJSON_CreateObject();
    if (out != NULL && !cJSON_AddItemToObject(out, "post", posts__json(&ev.post))) {
        cJSON_Delete(out);
        out = NULL;
    }
    fg_respond_json(resp, 201, out);
done:
    cJSON_Delete(body); /* ev.post.text pointed into it */
}

void fg_posts_delete(fg_gateway *gw, const fg_request *req, fg_response *resp)
{
    fp_event ev = {.type = FP_EVENT_POST_DELETED};
    char author[FP_ID_BUFSZ];
    fp_store *st;
    cJSON *out;
    int rc;

    if (!fp_id_valid(req->param)) {
        fg_respond_error(resp, 400, "bad_request", "post id: 1-64 characters of [A-Za-z0-9_-]");
        return;
    }
    st = fg_backend_store(gw);
    if (st == NULL) {
        fg_respond_unavailable(resp, "redis");
        return;
    }
    FG_STORE_CALL(gw, rc, fp_store_post_author(st, req->param, author));
    if (rc == -ENOENT) {
        fg_respond_error(resp, 404, "not_found", "no post %s", req->param);
        return;
    }
    if (rc == -EIDRM) {
        /* A delete sent again (after a 503 whose event went through) or
         * late: what it asked for is done. */
        fg_respond_error(resp, 410, "gone", "post %s was deleted", req->param);
        return;
    }
    if (rc != 0) {
        fg_respond_store_error(gw, resp, rc, "post lookup");
        return;
    }
    if (strcmp(author, req->caller.sub) != 0) {
        fg_respond_error(resp, 403, "forbidden", "only the author may delete a post");
        return;
    }
    snprintf(ev.post_id, sizeof(ev.post_id), "%s", req->param);
    snprintf(ev.author_id, sizeof(ev.author_id), "%s", author);
    if (!fg_publish(gw, &ev, resp))
        return;
    out = cJSON_CreateObject();
    if (out != NULL && (cJSON_AddStringToObject(out, "post_id", ev.post_id) == NULL ||
                        cJSON_AddBoolToObject(out, "deleted", 1) == NULL)) {
        cJSON_Delete(out);
        out = NULL;
    }
    fg_respond_json(resp, 200, out);
}
