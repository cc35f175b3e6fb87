/*
 * fp_config.h - typed configuration from a file of "key value" lines plus
 * environment overrides.
 *
 * A daemon describes its options with a table of fp_conf_opt (name, type,
 * where the value goes in its config struct, default, range) and calls
 * fp_conf_load(). The file format:
 *
 *     # comment
 *     redis_host 127.0.0.1
 *     feed_length 1000
 *
 * One key per line, the value is the rest of the line with surrounding
 * blanks removed. Blank lines and lines starting with '#' are ignored.
 * Then, for every option, the environment variable <prefix><KEY> (key in
 * upper case, e.g. FEEDPUSH_REDIS_HOST) overrides the file.
 *
 * Errors name their origin: "bridge.conf:12: unknown key \"redis_hots\"" or
 * "environment FEEDPUSH_FEED_LENGTH: 0 is out of range 1..100000".
 */
#ifndef FP_CONFIG_H
#define FP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    FP_CONF_STRING, /* char *, malloc'd; freed by fp_conf_free() */
    FP_CONF_INT,    /* int64_t, decimal, checked against min..max */
    FP_CONF_BOOL,   /* bool: true/false, yes/no, on/off, 1/0 */
} fp_conf_type;

typedef struct {
    const char *key;  /* lower case, [a-z0-9_] */
    fp_conf_type type;
    size_t offset;    /* offsetof() the field in the caller's struct */
    const char *def;  /* default as text; NULL = none (string NULL, int 0, bool false) */
    int64_t min, max; /* FP_CONF_INT only */
    bool required;    /* must end up set, by default, file or environment */
    const char *help; /* one line for --help */
} fp_conf_opt;

#define FP_CONF_ERR_MAX 512

/*
 * Fills cfg from defaults, then the file at path (skipped when path is NULL),
 * then the environment. The table's fields may hold anything before (they
 * are overwritten, never freed or read); the rest of cfg is not touched. Returns 0, -ENOENT/-EACCES (file unreadable),
 * -EINVAL (unknown key, bad value, duplicate key, missing required option)
 * or -ENOMEM. On failure err holds one line and cfg holds nothing to free.
 */
int fp_conf_load(const fp_conf_opt *opts, size_t n_opts, void *cfg, const char *path,
                 const char *env_prefix, char *err, size_t errlen);
/*
 * fp_conf_load for a tool that needs a part of a daemon's options (feedctl
 * reading the amqp_* keys of bridge.conf): the file's keys that are not in
 * the table are skipped, not refused. The rest is checked as there.
 */
int fp_conf_load_part(const fp_conf_opt *opts, size_t n_opts, void *cfg, const char *path,
                      const char *env_prefix, char *err, size_t errlen);

/*
 * The steps of fp_conf_load() for callers whose options come from
 * elsewhere (the broker plugin's plugin_opt_* pairs):
 *   fp_conf_defaults()  clear every field of the table (whatever it
 *                       held), then store every default;
 *   fp_conf_set()       one key/value; origin names where it came from in
 *                       errors; -ENOENT for an unknown key (err filled);
 *   fp_conf_check_required()  every required option ended up set; errors
 *                       name it as <key_prefix><key>.
 * Keys match case-insensitively. Each returns 0 or a negative error with
 * err filled; on failure call fp_conf_free().
 */
int fp_conf_defaults(const fp_conf_opt *opts, size_t n_opts, void *cfg, char *err, size_t errlen);
int fp_conf_set(const fp_conf_opt *opts, size_t n_opts, void *cfg, const char *key,
                const char *value, const char *origin, char *err, size_t errlen);
int fp_conf_check_required(const fp_conf_opt *opts, size_t n_opts, void *cfg,
                           const char *key_prefix, char *err, size_t errlen);

/* Frees the strings fp_conf_load() stored in cfg and sets them to NULL. */
void fp_conf_free(const fp_conf_opt *opts, size_t n_opts, void *cfg);

/* Prints one line per option (key, type, default, help) for --help. */
void fp_conf_usage(const fp_conf_opt *opts, size_t n_opts, const char *env_prefix, FILE *out);

#endif
