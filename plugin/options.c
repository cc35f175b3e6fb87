/*
 * options.c - plugin_opt_* parsing.
 *
 * The broker hands us its plugin_opt_<key> <value> lines as key/value
 * pairs; they are typed and range-checked by common/fp_config, the same
 * code the daemons use for their config files. Unknown keys are refused:
 * a typo must not silently leave a default in place.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "feed_auth.h"
#include "fp_config.h"

static const fp_conf_opt options__table[] = {
    {"alg", FP_CONF_STRING, offsetof(fa_options, alg), NULL, 0, 0, true,
     "JWT algorithm: HS256, RS256 or ES256"},
    {"key_file", FP_CONF_STRING, offsetof(fa_options, key_file), NULL, 0, 0, true,
     "HS256 secret file, or RS256/ES256 public key PEM"},
    {"issuer", FP_CONF_STRING, offsetof(fa_options, issuer), NULL, 0, 0, false,
     "required iss claim (unset: not checked)"},
    {"audience", FP_CONF_STRING, offsetof(fa_options, audience), NULL, 0, 0, false,
     "required aud claim (unset: not checked)"},
    {"leeway", FP_CONF_INT, offsetof(fa_options, leeway), "5", 0, FP_JWT_LEEWAY_MAX, false,
     "clock-skew allowance for nbf/iat, seconds"},
    {"max_lifetime", FP_CONF_INT, offsetof(fa_options, max_lifetime), "0", 0, FP_JWT_LIFETIME_MAX,
     false, "longest token lifetime (exp - iat) accepted, seconds; 0 = none"},
    {"require_iat", FP_CONF_BOOL, offsetof(fa_options, require_iat), "off", 0, 0, false,
     "refuse tokens without iat (with max_lifetime, revocations are then forgotten after it)"},
    {"node_id", FP_CONF_STRING, offsetof(fa_options, node_id), NULL, 0, 0, true,
     "this broker's node id"},
    FP_REDIS_CONF_OPTIONS(fa_options, redis),
    {"heartbeat_interval", FP_CONF_INT, offsetof(fa_options, heartbeat_interval), "5", 1, 300,
     false, "seconds between node heartbeats (the key lives 3 intervals)"},
    {"session_max_lifetime", FP_CONF_INT, offsetof(fa_options, session_max_lifetime), "86400", 1,
     31536000, false,
     "seconds a persistent session outlives its connection (= persistent_client_expiration)"},
    {"max_sessions_per_user", FP_CONF_INT, offsetof(fa_options, max_sessions_per_user), "8", 1,
     10000, false, "persistent sessions one user may hold on this node"},
    {"session_file", FP_CONF_STRING, offsetof(fa_options, session_file), NULL, 0, 0, false,
     "file keeping persistent sessions over a broker restart (unset: not kept)"},
    {"session_save_interval", FP_CONF_INT, offsetof(fa_options, session_save_interval), "60", 0,
     86400, false,
     "seconds between saves of session_file while sessions change (0: only at a graceful stop)"},
    {"revocation_file", FP_CONF_STRING, offsetof(fa_options, revocation_file), NULL, 0, 0, false,
     "file keeping the revocations over a broker restart (unset: loaded from Redis only)"},
};
#define OPTIONS__N (sizeof(options__table) / sizeof(options__table[0]))

/*
 * Resolves path's directory (symbolic links, "..", repeated slashes) into
 * out, followed by its last part. Returns 0, or -1 when the directory
 * cannot be resolved (not there yet: the caller compares the text).
 */
static int options__resolve(const char *path, char *out, size_t len)
{
    char dir[PATH_MAX], real[PATH_MAX];
    const char *slash = strrchr(path, '/'), *base = slash != NULL ? slash + 1 : path;
    size_t n = slash != NULL ? (size_t)(slash - path) : 0;

    if (n >= sizeof(dir))
        return -1;
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (n == 0)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)n, path);
    if (realpath(dir, real) == NULL)
        return -1;
    return snprintf(out, len, "%s/%s", real, base) < (int)len ? 0 : -1;
}

/* Whether paths a and b name the same file: the same text, the same
 * resolved directory and name, or (both existing) the same inode. */
static bool options__same_file(const char *a, const char *b)
{
    char ra[PATH_MAX + NAME_MAX + 2], rb[PATH_MAX + NAME_MAX + 2];
    struct stat sa, sb;

    if (strcmp(a, b) == 0)
        return true;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    return options__resolve(a, ra, sizeof(ra)) == 0 && options__resolve(b, rb, sizeof(rb)) == 0 &&
           strcmp(ra, rb) == 0;
}

/* Whether a names b's temporary file (fa_statefile_temp), which
 * fa_statefile_replace deletes before each write of b. */
static bool options__temp_of(const char *a, const char *b)
{
    char tmp[PATH_MAX];

    return fa_statefile_temp(b, tmp, sizeof(tmp)) == 0 && options__same_file(a, tmp);
}

/* The two state files, when both are set, must be apart: neither the same
 * file nor one the other's temporary file. 0, or -EINVAL with err. */
static int options__state_files(const fa_options *o, char *err, size_t errlen)
{
    const char *s = o->session_file, *r = o->revocation_file;

    if (s == NULL || r == NULL)
        return 0;
    /* Both are rewritten through "<path>.tmp", each by its own thread:
     * one path would leave whichever was written last, and the other
     * would refuse it at the next start. */
    if (options__same_file(s, r)) {
        snprintf(err, errlen,
                 "plugin_opt_session_file and plugin_opt_revocation_file are the "
                 "same file (%.128s): give each its own",
                 s);
        return -EINVAL;
    }
    /* A write of one deletes "<path>.tmp" first: the other file. */
    if (options__temp_of(s, r) || options__temp_of(r, s)) {
        snprintf(err, errlen,
                 "plugin_opt_session_file (%.128s) and plugin_opt_revocation_file (%.128s): "
                 "one is the other's temporary file \"<path>.tmp\"; give each its own name",
                 s, r);
        return -EINVAL;
    }
    return 0;
}

int fa_options_parse(fa_options *o, struct mosquitto_opt *opts, int n, char *err, size_t errlen)
{
    char origin[96];
    int i, rc;

    memset(o, 0, sizeof(*o));
    rc = fp_conf_defaults(options__table, OPTIONS__N, o, err, errlen);
    for (i = 0; rc == 0 && i < n; i++) {
        snprintf(origin, sizeof(origin), "plugin_opt_%.64s", opts[i].key);
        rc = fp_conf_set(options__table, OPTIONS__N, o, opts[i].key, opts[i].value, origin, err,
                         errlen);
    }
    if (rc == 0)
        rc = fp_conf_check_required(options__table, OPTIONS__N, o, "plugin_opt_", err, errlen);
    if (rc == 0 && fp_redis_options_check(&o->redis, err, errlen) != 0)
        rc = -EINVAL;
    if (rc == 0 && !fp_id_valid(o->node_id)) {
        snprintf(err, errlen, "plugin_opt_node_id: \"%.64s\" is not a valid id ([A-Za-z0-9_-], 1-64)",
                 o->node_id);
        rc = -EINVAL;
    }
    if (rc == 0)
        rc = options__state_files(o, err, errlen);
    if (rc != 0) {
        fa_options_free(o);
        return -EINVAL;
    }
    return 0;
}

void fa_options_free(fa_options *o)
{
    fp_conf_free(options__table, OPTIONS__N, o);
}
