#include "fp_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONF__LINE_MAX 4096

/* Where a value came from, for error messages: "file.conf:12" or "environment X". */
typedef struct {
    char where[256];
} conf__origin;

static void *conf__field(void *cfg, const fp_conf_opt *opt)
{
    return (char *)cfg + opt->offset;
}

static const fp_conf_opt *conf__find(const fp_conf_opt *opts, size_t n, const char *key)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strcasecmp(opts[i].key, key) == 0)
            return &opts[i];
    }
    return NULL;
}

/*
 * Parses a boolean word. Returns 0 and sets *out, or -EINVAL.
 */
static int conf__parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    size_t i;

    for (i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

/*
 * Parses a whole decimal integer (no trailing characters) within the
 * option's range. Returns 0 and sets *out, or -EINVAL with err filled.
 */
static int conf__parse_int(const fp_conf_opt *opt, const char *s, int64_t *out,
                           const conf__origin *o, char *err, size_t errlen)
{
    char *end = NULL;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (*s == '\0' || end == NULL || *end != '\0' || errno == ERANGE) {
        snprintf(err, errlen, "%s: %s: \"%s\" is not an integer", o->where, opt->key, s);
        return -EINVAL;
    }
    if (v < opt->min || v > opt->max) {
        snprintf(err, errlen, "%s: %s: %lld is out of range %lld..%lld", o->where, opt->key, v,
                 (long long)opt->min, (long long)opt->max);
        return -EINVAL;
    }
    *out = (int64_t)v;
    return 0;
}

/*
 * Stores the text value s into the option's field, converting it to the
 * option's type. Returns 0, -EINVAL (bad value, err filled) or -ENOMEM.
 */
static int conf__set(const fp_conf_opt *opt, void *cfg, const char *s, const conf__origin *o,
                     char *err, size_t errlen)
{
    void *field = conf__field(cfg, opt);
    int64_t iv;
    bool bv;
    char *copy;

    switch (opt->type) {
    case FP_CONF_STRING:
        copy = strdup(s);
        if (copy == NULL) {
            snprintf(err, errlen, "%s: %s: out of memory", o->where, opt->key);
            return -ENOMEM;
        }
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    case FP_CONF_INT:
        if (conf__parse_int(opt, s, &iv, o, err, errlen) != 0)
            return -EINVAL;
        *(int64_t *)field = iv;
        return 0;
    case FP_CONF_BOOL:
        if (conf__parse_bool(s, &bv) != 0) {
            snprintf(err, errlen, "%s: %s: \"%s\" is not a boolean (true/false, yes/no, on/off)",
                     o->where, opt->key, s);
            return -EINVAL;
        }
        *(bool *)field = bv;
        return 0;
    }
    snprintf(err, errlen, "%s: %s: unsupported option type", o->where, opt->key);
    return -EINVAL;
}

int fp_conf_set(const fp_conf_opt *opts, size_t n_opts, void *cfg, const char *key,
                const char *value, const char *origin, char *err, size_t errlen)
{
    const fp_conf_opt *opt = conf__find(opts, n_opts, key);
    conf__origin o;

    snprintf(o.where, sizeof(o.where), "%s", origin != NULL ? origin : "option");
    if (opt == NULL) {
        snprintf(err, errlen, "%s: unknown key \"%.64s\"", o.where, key);
        return -ENOENT;
    }
    return conf__set(opt, cfg, value, &o, err, errlen);
}

/* Trims leading and trailing blanks in place; returns the new start. */
static char *conf__trim(char *s)
{
    char *end;

    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    *end = '\0';
    return s;
}

/*
 * Applies one line of the file. seen[] records the line each option was
 * set on, to refuse duplicates; part: a key not in the table is skipped
 * (fp_conf_load_part). Returns 0 or a negative error (err filled).
 */
static int conf__apply_line(const fp_conf_opt *opts, size_t n, void *cfg, char *line,
                            const char *path, int lineno, int *seen, bool part, char *err,
                            size_t errlen)
{
    conf__origin o;
    const fp_conf_opt *opt;
    char *key, *value;
    size_t klen;

    key = conf__trim(line);
    if (*key == '\0' || *key == '#')
        return 0;
    klen = strcspn(key, " \t");
    value = key + klen;
    if (*value != '\0')
        *value++ = '\0';
    value = conf__trim(value);
    snprintf(o.where, sizeof(o.where), "%s:%d", path, lineno);
    opt = conf__find(opts, n, key);
    if (opt == NULL && part)
        return 0;
    if (opt == NULL) {
        snprintf(err, errlen, "%s: unknown key \"%.64s\"", o.where, key);
        return -EINVAL;
    }
    if (seen[opt - opts] != 0) {
        snprintf(err, errlen, "%s: duplicate key \"%s\" (first set on line %d)", o.where, key,
                 seen[opt - opts]);
        return -EINVAL;
    }
    if (*value == '\0') {
        snprintf(err, errlen, "%s: key \"%s\" has no value", o.where, key);
        return -EINVAL;
    }
    if (strcmp(value, "\"\"") == 0)
        value[0] = '\0'; /* "" is the empty string: www_dir "" */
    seen[opt - opts] = lineno;
    return conf__set(opt, cfg, value, &o, err, errlen);
}

/*
 * Reads the file line by line. Lines longer than CONF__LINE_MAX are refused
 * rather than silently split. Returns 0 or a negative error (err filled).
 */
static int conf__load_file(const fp_conf_opt *opts, size_t n, void *cfg, const char *path,
                           bool part, char *err, size_t errlen)
{
    char line[CONF__LINE_MAX];
    int lineno = 0, rc = 0, *seen;
    FILE *f;

    seen = calloc(n + 1, sizeof(*seen));
    if (seen == NULL)
        return -ENOMEM;
    f = fopen(path, "r");
    if (f == NULL) {
        rc = -errno;
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto done;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            snprintf(err, errlen, "%s:%d: line longer than %d bytes", path, lineno,
                     CONF__LINE_MAX - 2);
            rc = -EINVAL;
            break;
        }
        rc = conf__apply_line(opts, n, cfg, line, path, lineno, seen, part, err, errlen);
        if (rc != 0)
            break;
    }
    fclose(f);
done:
    free(seen);
    return rc;
}

/* Builds "<prefix><KEY>" in buf. */
static void conf__env_name(const char *prefix, const char *key, char *buf, size_t len)
{
    size_t i, p;

    p = (size_t)snprintf(buf, len, "%s", prefix != NULL ? prefix : "");
    for (i = 0; key[i] != '\0' && p + 1 < len; i++)
        buf[p++] = (char)toupper((unsigned char)key[i]);
    buf[p < len ? p : len - 1] = '\0';
}

static int conf__load_env(const fp_conf_opt *opts, size_t n, void *cfg, const char *prefix,
                          char *err, size_t errlen)
{
    conf__origin o;
    const char *v;
    char name[128];
    size_t i;
    int rc;

    for (i = 0; i < n; i++) {
        conf__env_name(prefix, opts[i].key, name, sizeof(name));
        v = getenv(name);
        if (v == NULL)
            continue;
        snprintf(o.where, sizeof(o.where), "environment %s", name);
        rc = conf__set(&opts[i], cfg, v, &o, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Sets every field of the table to its empty value (NULL, 0, false),
 * whatever it held: nothing in cfg is freed or read. */
static void conf__clear(const fp_conf_opt *opts, size_t n, void *cfg)
{
    void *field;
    size_t i;

    for (i = 0; i < n; i++) {
        field = conf__field(cfg, &opts[i]);
        if (opts[i].type == FP_CONF_STRING)
            *(char **)field = NULL;
        else if (opts[i].type == FP_CONF_INT)
            *(int64_t *)field = 0;
        else
            *(bool *)field = false;
    }
}

int fp_conf_defaults(const fp_conf_opt *opts, size_t n, void *cfg, char *err, size_t errlen)
{
    conf__origin o;
    size_t i;
    int rc;

    conf__clear(opts, n, cfg);
    for (i = 0; i < n; i++) {
        if (opts[i].def == NULL)
            continue;
        snprintf(o.where, sizeof(o.where), "default");
        rc = conf__set(&opts[i], cfg, opts[i].def, &o, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* A required string must be set and non-empty; other types always hold a
 * value. hint, when not NULL, is appended to the error. */
static int conf__check_required(const fp_conf_opt *opts, size_t n, void *cfg,
                                const char *key_prefix, const char *env_prefix, char *err,
                                size_t errlen)
{
    char name[128];
    size_t i;
    char *s;

    for (i = 0; i < n; i++) {
        if (!opts[i].required || opts[i].type != FP_CONF_STRING)
            continue;
        s = *(char **)conf__field(cfg, &opts[i]);
        if (s != NULL && *s != '\0')
            continue;
        if (env_prefix != NULL) {
            conf__env_name(env_prefix, opts[i].key, name, sizeof(name));
            snprintf(err, errlen, "required option \"%s%s\" is not set (config file or %s)",
                     key_prefix, opts[i].key, name);
        } else {
            snprintf(err, errlen, "required option \"%s%s\" is not set", key_prefix,
                     opts[i].key);
        }
        return -EINVAL;
    }
    return 0;
}

int fp_conf_check_required(const fp_conf_opt *opts, size_t n_opts, void *cfg,
                           const char *key_prefix, char *err, size_t errlen)
{
    return conf__check_required(opts, n_opts, cfg, key_prefix != NULL ? key_prefix : "", NULL,
                                err, errlen);
}

/* fp_conf_load and fp_conf_load_part; part: keys not in the table are
 * skipped. */
static int conf__load(const fp_conf_opt *opts, size_t n_opts, void *cfg, const char *path,
                      const char *env_prefix, bool part, char *err, size_t errlen)
{
    int rc;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    rc = fp_conf_defaults(opts, n_opts, cfg, err, errlen);
    if (rc == 0 && path != NULL)
        rc = conf__load_file(opts, n_opts, cfg, path, part, err, errlen);
    if (rc == 0)
        rc = conf__load_env(opts, n_opts, cfg, env_prefix, err, errlen);
    if (rc == 0)
        rc = conf__check_required(opts, n_opts, cfg, "", env_prefix != NULL ? env_prefix : "",
                                  err, errlen);
    if (rc != 0)
        fp_conf_free(opts, n_opts, cfg);
    return rc;
}

int fp_conf_load(const fp_conf_opt *opts, size_t n_opts, void *cfg, const char *path,
                 const char *env_prefix, char *err, size_t errlen)
{
    return conf__load(opts, n_opts, cfg, path, env_prefix, false, err, errlen);
}

int fp_conf_load_part(const fp_conf_opt *opts, size_t n_opts, void *cfg, const char *path,
                      const char *env_prefix, char *err, size_t errlen)
{
    return conf__load(opts, n_opts, cfg, path, env_prefix, true, err, errlen);
}

void fp_conf_free(const fp_conf_opt *opts, size_t n_opts, void *cfg)
{
    size_t i;
    char **s;

    for (i = 0; i < n_opts; i++) {
        if (opts[i].type != FP_CONF_STRING)
            continue;
        s = (char **)conf__field(cfg, &opts[i]);
        free(*s);
        *s = NULL;
    }
}

void fp_conf_usage(const fp_conf_opt *opts, size_t n_opts, const char *env_prefix, FILE *out)
{
    static const char *const types[] = {"string", "int", "bool"};
    char name[128];
    size_t i;

    for (i = 0; i < n_opts; i++) {
        conf__env_name(env_prefix, opts[i].key, name, sizeof(name));
        fprintf(out, "  %-22s %-6s %-28s %s%s [%s]\n", opts[i].key, types[opts[i].type],
                opts[i].def != NULL ? opts[i].def : "-", opts[i].help != NULL ? opts[i].help : "",
                opts[i].required ? " (required)" : "", name);
    }
}
