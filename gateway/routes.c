/*
 * routes.c - the route table of feed-gateway: a path (with at most one
 * {id} segment) and a method pick a handler; authenticated routes get the
 * verified caller in req->caller first. No match is 404, a known path
 * with another method 405 with an Allow header; a dev-mode route is 404
 * whatever the method while dev mode is off.
 */
#include <string.h>

#include "gateway.h"

typedef struct {
    fg_method method;
    fg_handler *fn;
    fg_auth_mode auth;
} route__method;

#define ROUTE__METHODS 3

typedef struct {
    fg_route_id id;
    const char *pattern; /* the path; a trailing "{id}" matches one non-empty
                          * segment. Also the metrics' route label. */
    const char *allow;   /* for 405 */
    route__method m[ROUTE__METHODS];
} route__entry;

static const route__entry route__table[] = {
    {FG_ROUTE_CONFIG, "/api/v1/config", "GET", {{FG_GET, fg_dev_config, FG_AUTH_NONE}}},
    {FG_ROUTE_DEV_TOKEN, "/api/v1/dev/token", "POST", {{FG_POST, fg_dev_token, FG_AUTH_NONE}}},
    {FG_ROUTE_POSTS, "/api/v1/posts", "POST", {{FG_POST, fg_posts_create, FG_AUTH_FULL}}},
    {FG_ROUTE_POST, "/api/v1/posts/{id}", "DELETE", {{FG_DELETE, fg_posts_delete, FG_AUTH_FULL}}},
    {FG_ROUTE_FOLLOWS, "/api/v1/follows", "GET", {{FG_GET, fg_follows_list, FG_AUTH_FULL}}},
    {FG_ROUTE_FOLLOW,
     "/api/v1/follows/{id}",
     "PUT, DELETE",
     {{FG_PUT, fg_follows_put, FG_AUTH_FULL}, {FG_DELETE, fg_follows_delete, FG_AUTH_FULL}}},
    {FG_ROUTE_FEED, "/api/v1/feed", "GET", {{FG_GET, fg_reads_feed, FG_AUTH_TOKEN}}},
    {FG_ROUTE_RIBBON,
     "/api/v1/ribbon",
     "GET, POST",
     {{FG_GET, fg_reads_ribbon, FG_AUTH_FULL}, {FG_POST, fg_reads_ribbon_push, FG_AUTH_FULL}}},
    {FG_ROUTE_HEALTHZ, "/healthz", "GET", {{FG_GET, fg_health_check, FG_AUTH_NONE}}},
    {FG_ROUTE_METRICS, "/metrics", "GET", {{FG_GET, fg_health_metrics, FG_AUTH_NONE}}},
    {FG_ROUTE_STATS, "/api/v1/stats", "GET", {{FG_GET, fg_health_stats, FG_AUTH_NONE}}},
};
#define ROUTE__N (sizeof(route__table) / sizeof(route__table[0]))

const char *fg_route_label(fg_route_id r)
{
    size_t i;

    for (i = 0; i < ROUTE__N; i++) {
        if (route__table[i].id == r)
            return route__table[i].pattern;
    }
    return "unknown";
}

const char *fg_method_name(fg_method m)
{
    switch (m) {
    case FG_GET:
        return "GET";
    case FG_POST:
        return "POST";
    case FG_PUT:
        return "PUT";
    case FG_DELETE:
        return "DELETE";
    case FG_HEAD:
        return "HEAD";
    case FG_PATCH:
        return "PATCH";
    case FG_OPTIONS:
        return "OPTIONS";
    default:
        return "OTHER";
    }
}

#define ROUTE__PARAM "{id}"

/* Does path match e? Sets *param to the {id} segment of a param route. */
static bool route__match(const route__entry *e, const char *path, const char **param)
{
    size_t n = strlen(e->pattern), k = strlen(ROUTE__PARAM);

    if (n < k || strcmp(e->pattern + n - k, ROUTE__PARAM) != 0)
        return strcmp(path, e->pattern) == 0;
    n -= k;
    if (strncmp(path, e->pattern, n) != 0 || path[n] == '\0' || strchr(path + n, '/') != NULL)
        return false;
    *param = path + n;
    return true;
}

/* The route entry path belongs to, or NULL. */
static const route__entry *route__find(const char *path, const char **param)
{
    size_t i;

    for (i = 0; i < ROUTE__N; i++) {
        if (route__match(&route__table[i], path, param))
            return &route__table[i];
    }
    return NULL;
}

fg_route_id fg_route_lookup(const char *path)
{
    const char *param = NULL;
    const route__entry *e = route__find(path, &param);

    return e != NULL ? e->id : FG_ROUTE_UNKNOWN;
}

fg_route_id fg_route(fg_gateway *gw, fg_request *req, fg_response *resp)
{
    const char *param = NULL;
    const route__entry *e = route__find(req->path, &param);
    size_t i;

    if (e == NULL) {
        fg_respond_error(resp, 404, "not_found", "no such route");
        return FG_ROUTE_UNKNOWN;
    }
    if (e->id == FG_ROUTE_DEV_TOKEN && !gw->cfg.dev_mode) {
        fg_respond_error(resp, 404, "not_found", "dev mode is off");
        return e->id;
    }
    req->param = param;
    for (i = 0; i < ROUTE__METHODS && e->m[i].fn != NULL; i++) {
        if (e->m[i].method != req->method)
            continue;
        if (e->m[i].auth == FG_AUTH_FULL && fg_auth_check(gw, req, &req->caller, resp) != 0)
            return e->id;
        if (e->m[i].auth == FG_AUTH_TOKEN && fg_auth_token(gw, req, &req->caller, resp) != 0)
            return e->id;
        e->m[i].fn(gw, req, resp);
        return e->id;
    }
    fg_respond_error(resp, 405, "method_not_allowed", "%s is not allowed here (allowed: %s)",
                     fg_method_name(req->method), e->allow);
    resp->allow = e->allow;
    return e->id;
}
