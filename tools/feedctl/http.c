/*
 * http.c - feedctl's one HTTP client (the libcurl easy interface).
 *
 * A request is a method, a path appended to --url, an optional JSON body
 * and an optional bearer token; the reply is the status, the body as
 * received and, when the body is JSON, its cJSON parse. One easy handle
 * per run, so a command that first fetches a dev token reuses the
 * connection. Timeouts: connect 5 s, whole request 30 s; no redirects;
 * http and https only; replies over HTTP_MAX_BODY bytes are refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "feedctl.h"

#define HTTP_MAX_BODY (16L * 1024 * 1024)
#define HTTP_CONNECT_TIMEOUT_S 5L
#define HTTP_TIMEOUT_S 30L

struct fc_http {
    CURL *curl;
    char errbuf[CURL_ERROR_SIZE];
};

/* A growing reply body, always NUL-terminated once anything arrived. */
typedef struct {
    char *buf;
    size_t len;
    size_t cap;
    bool too_big;
} http_buf;

int fc_http_init(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "feedctl: libcurl would not initialise\n");
        return FC_FAIL;
    }
    return 0;
}

void fc_http_cleanup(void)
{
    curl_global_cleanup();
}

/* curl write callback: appends the chunk to the http_buf at userp.
 * Returns the chunk's size, or 0 (curl then aborts the transfer) when
 * memory runs out or the body would pass HTTP_MAX_BODY. */
static size_t http__write(char *data, size_t size, size_t nmemb, void *userp)
{
    http_buf *b = userp;
    size_t n = size * nmemb;
    size_t cap;
    char *p;

    if (n > (size_t)HTTP_MAX_BODY - b->len) {
        b->too_big = true;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        cap = b->cap != 0 ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        p = realloc(b->buf, cap);
        if (p == NULL)
            return 0;
        b->buf = p;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, data, n);
    b->len += n;
    b->buf[b->len] = '\0';
    return n;
}

/* Returns the run's client, making it on first use with the options every
 * request shares; NULL when libcurl cannot make a handle. */
static fc_http *http__client(fc_ctx *x)
{
    fc_http *h;

    if (x->http != NULL)
        return x->http;
    h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->curl = curl_easy_init();
    if (h->curl == NULL) {
        free(h);
        return NULL;
    }
    curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT, HTTP_CONNECT_TIMEOUT_S);
    curl_easy_setopt(h->curl, CURLOPT_TIMEOUT, HTTP_TIMEOUT_S);
    curl_easy_setopt(h->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(h->curl, CURLOPT_USERAGENT, "feedctl");
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, http__write);
    /* https: libcurl verifies the certificate and the host name by default. */
    if (x->cacert != NULL && x->cacert[0] != '\0')
        curl_easy_setopt(h->curl, CURLOPT_CAINFO, x->cacert);
    x->http = h;
    return h;
}

/* Frees what the run acquired: the client and the token in use. */
void fc_ctx_free(fc_ctx *x)
{
    if (x->http != NULL) {
        curl_easy_cleanup(x->http->curl);
        free(x->http);
        x->http = NULL;
    }
    free(x->bearer);
    x->bearer = NULL;
}

/* Returns base (without trailing '/') + path, malloc'd; NULL when out of
 * memory. */
static char *http__url(const char *base, const char *path)
{
    size_t blen = strlen(base);
    char *url;

    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    url = malloc(blen + strlen(path) + 1);
    if (url == NULL)
        return NULL;
    memcpy(url, base, blen);
    strcpy(url + blen, path);
    return url;
}

/* Returns prefix + segment with segment URL-escaped by curl (malloc'd, the
 * caller frees), or NULL after printing why. */
char *fc_path(fc_ctx *x, const char *prefix, const char *segment)
{
    fc_http *h = http__client(x);
    char *esc = NULL, *path = NULL;

    if (h != NULL)
        esc = curl_easy_escape(h->curl, segment, 0);
    if (esc != NULL)
        path = malloc(strlen(prefix) + strlen(esc) + 1);
    if (path != NULL) {
        strcpy(path, prefix);
        strcat(path, esc);
    } else {
        fprintf(stderr, "feedctl: out of memory\n");
    }
    curl_free(esc);
    return path;
}

/* Builds the request headers: Accept, the JSON Content-Type when a body
 * goes out (or none at all for an empty PUT/POST), no Expect, and the
 * bearer token. Returns the list, or NULL when out of memory. */
static struct curl_slist *http__headers(bool json_body, bool empty_body, const char *bearer)
{
    struct curl_slist *l = NULL, *t;
    char *auth = NULL;

    l = curl_slist_append(l, "Accept: application/json");
    if (l == NULL)
        return NULL;
    t = curl_slist_append(l, "Expect:");
    if (t != NULL && json_body)
        t = curl_slist_append(l, "Content-Type: application/json");
    if (t != NULL && empty_body)
        t = curl_slist_append(l, "Content-Type:");
    if (t != NULL && bearer != NULL) {
        auth = malloc(strlen(bearer) + sizeof("Authorization: Bearer "));
        t = NULL;
        if (auth != NULL) {
            strcpy(auth, "Authorization: Bearer ");
            strcat(auth, bearer);
            t = curl_slist_append(l, auth);
            free(auth);
        }
    }
    if (t == NULL) {
        curl_slist_free_all(l);
        return NULL;
    }
    return l;
}

/* Sets the method and body of the next request: GET plain, a JSON body
 * when there is one, an empty body for PUT/POST without one (so
 * Content-Length: 0 goes out), no body for DELETE and the rest. */
static void http__method(CURL *curl, const char *method, const char *json)
{
    bool put_or_post = strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0;

    if (json != NULL || put_or_post) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json != NULL ? json : "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)(json != NULL ? strlen(json) : 0));
    } else {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    }
    if (strcmp(method, "GET") == 0 || strcmp(method, "POST") == 0)
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, NULL);
    else
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
}

/*
 * Prints why the gateway at url could not be reached. The URL is printed
 * without its user name and password, which a --url may carry for a proxy
 * in front of the gateway (curl's own message names the host only); when
 * curl cannot take it apart, "--url" stands in for it.
 */
static void http__unreachable(const char *url, const char *why)
{
    CURLU *u = curl_url();
    char *shown = NULL;

    if (u != NULL && curl_url_set(u, CURLUPART_URL, url, CURLU_GUESS_SCHEME) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_USER, NULL, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &shown, 0) != CURLUE_OK)
        shown = NULL;
    fprintf(stderr, "feedctl: cannot reach the gateway at %s: %s\n",
            shown != NULL ? shown : "--url", why);
    curl_free(shown);
    curl_url_cleanup(u);
}

/* Runs one prepared request into *r. Returns 0 when a reply arrived,
 * whatever its status, or FC_FAIL after printing why (the gateway cannot
 * be reached, timed out, or the reply is too big). */
static int http__perform(fc_ctx *x, fc_http *h, fc_reply *r)
{
    http_buf b = {0};
    CURLcode cc;

    h->errbuf[0] = '\0';
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, &b);
    cc = curl_easy_perform(h->curl);
    if (cc != CURLE_OK) {
        if (b.too_big)
            fprintf(stderr, "feedctl: the gateway's reply is over %ld bytes\n", HTTP_MAX_BODY);
        else
            http__unreachable(x->url, h->errbuf[0] != '\0' ? h->errbuf : curl_easy_strerror(cc));
        free(b.buf);
        return FC_FAIL;
    }
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &r->status);
    r->body = b.buf != NULL ? b.buf : calloc(1, 1);
    r->len = b.len;
    if (r->body == NULL) {
        fprintf(stderr, "feedctl: out of memory\n");
        return FC_FAIL;
    }
    if (r->len > 0)
        r->json = cJSON_ParseWithLength(r->body, r->len);
    return 0;
}

/* Sends method path (with body as JSON and bearer as the Authorization
 * token, each when not NULL) and fills *r. Returns 0 when a reply arrived,
 * whatever its status, or FC_FAIL after printing why. *r is always safe to
 * fc_reply_free. */
int fc_request(fc_ctx *x, const char *method, const char *path, const cJSON *body,
               const char *bearer, fc_reply *r)
{
    fc_http *h = http__client(x);
    struct curl_slist *hdrs = NULL;
    char *url = NULL, *json = NULL;
    bool empty;
    int rc = FC_FAIL;

    memset(r, 0, sizeof(*r));
    if (h == NULL)
        goto fail;
    if (body != NULL) {
        json = cJSON_PrintUnformatted(body);
        if (json == NULL)
            goto fail;
    }
    empty = json == NULL && (strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0);
    url = http__url(x->url, path);
    hdrs = http__headers(json != NULL, empty, bearer);
    if (url == NULL || hdrs == NULL)
        goto fail;
    curl_easy_setopt(h->curl, CURLOPT_URL, url);
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hdrs);
    http__method(h->curl, method, json);
    rc = http__perform(x, h, r);
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, NULL);
    goto done;
fail:
    fprintf(stderr, "feedctl: out of memory (or libcurl would not start)\n");
done:
    curl_slist_free_all(hdrs);
    free(url);
    cJSON_free(json);
    return rc;
}

/* When r's status is 400 or above, prints "feedctl: <status> <error>:
 * <message>" from its {"error","message"} body and returns FC_FAIL;
 * returns 0 otherwise. */
int fc_reply_error(const fc_reply *r)
{
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(r->json, "error");
    const cJSON *message = cJSON_GetObjectItemCaseSensitive(r->json, "message");

    if (r->status < 400)
        return 0;
    if (!cJSON_IsString(error) && !cJSON_IsString(message)) {
        fprintf(stderr,
                "feedctl: %ld: not a feed-gateway error reply (no \"error\", \"message\")\n",
                r->status);
        return FC_FAIL;
    }
    fprintf(stderr, "feedctl: %ld ", r->status);
    if (cJSON_IsString(error))
        fc_put_clean(stderr, error->valuestring);
    else
        fputs("(no error code)", stderr);
    fputs(": ", stderr);
    if (cJSON_IsString(message))
        fc_put_clean(stderr, message->valuestring);
    else
        fputs("the reply has no JSON error body", stderr);
    fputc('\n', stderr);
    return FC_FAIL;
}

int fc_reply_object(const fc_reply *r)
{
    if (cJSON_IsObject(r->json))
        return 0;
    fprintf(stderr, "feedctl: the gateway's reply (status %ld) is not a JSON object\n", r->status);
    return FC_FAIL;
}

/* Sends an API request with the run's token (x->bearer, may be NULL) and
 * checks the reply: returns 0 when the status is below 400 and the body is
 * a JSON object, else FC_FAIL after printing why. */
int fc_call(fc_ctx *x, const char *method, const char *path, const cJSON *body, fc_reply *r)
{
    int rc = fc_request(x, method, path, body, x->bearer, r);

    if (rc == 0)
        rc = fc_reply_error(r);
    if (rc == 0)
        rc = fc_reply_object(r);
    return rc;
}

/* Prints r's body as received on stdout (fc_put_json: with what a
 * terminal may take as controls escaped), ending with a newline. */
void fc_reply_print(const fc_reply *r)
{
    fc_put_json(stdout, r->body, r->len);
    if (r->len == 0 || r->body[r->len - 1] != '\n')
        putchar('\n');
}

void fc_reply_free(fc_reply *r)
{
    cJSON_Delete(r->json);
    free(r->body);
    memset(r, 0, sizeof(*r));
}
