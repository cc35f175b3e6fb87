/*
 * fp_sentinel.h - finding the Redis primary through Redis Sentinel, for
 * feed-bridge, feed-gateway (fp_store) and feed_auth.so.
 *
 * Debian's hiredis 0.14 knows nothing of Sentinel, so this is the small
 * part of it feedpush needs: ask the Sentinels in turn for the address of
 * a named primary (SENTINEL get-master-addr-by-name), check with ROLE that
 * the server there really is a primary, and watch one Sentinel's
 * +switch-master channel so a promotion is noticed even while the old
 * primary still answers. Callers ask again whenever their Redis
 * connection fails, a write is refused with READONLY, or the watch says
 * the primary moved.
 *
 * Not thread-safe: one fp_sentinel per thread (each has its own watch
 * connection). Functions return 0 or a negative errno; errstr says why.
 */
#ifndef FP_SENTINEL_H
#define FP_SENTINEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fp_hosts.h"

#define FP_SENTINEL_PORT 26379
#define FP_SENTINEL_NAME_MAX 64

/*
 * The Redis options of feed-bridge, feed-gateway and feed_auth.so, as
 * their configs hold them: the redis_* keys (FP_REDIS_CONF_OPTIONS, the
 * fp_config table entries; the includer needs fp_config.h and stddef.h),
 * checked at start-up by fp_redis_options_check.
 */
typedef struct {
    char *host;
    int64_t port;
    char *prefix;
    char *sentinels;
    char *master_name;
    char *user;                   /* "": AUTH as the default user */
    char *password_file;          /* "": no AUTH */
    char *sentinel_user;          /* the same for the Sentinels: "": the default user */
    char *sentinel_password_file; /* "": the Sentinels are not AUTHed */
} fp_redis_options;

/* The fp_conf_opt entries of the fp_redis_options member of config type. */
#define FP_REDIS_CONF_OPTIONS(type, member)                                                        \
    {"redis_host",                                                                                 \
     FP_CONF_STRING,                                                                               \
     offsetof(type, member.host),                                                                  \
     "127.0.0.1",                                                                                  \
     0,                                                                                            \
     0,                                                                                            \
     false,                                                                                        \
     "Redis host (without redis_sentinels)"},                                                      \
        {"redis_port", FP_CONF_INT, offsetof(type, member.port),           "6379", 1,              \
         65535,        false,       "Redis port (without redis_sentinels)"},                       \
        {"redis_prefix",                                                                           \
         FP_CONF_STRING,                                                                           \
         offsetof(type, member.prefix),                                                            \
         "",                                                                                       \
         0,                                                                                        \
         0,                                                                                        \
         false,                                                                                    \
         "prefix of every Redis key (the same in every bridge, gateway and plugin)"},              \
        {"redis_sentinels",                                                                        \
         FP_CONF_STRING,                                                                           \
         offsetof(type, member.sentinels),                                                         \
         "",                                                                                       \
         0,                                                                                        \
         0,                                                                                        \
         false,                                                                                    \
         "Redis Sentinels, host[:port],... (port 26379): they name the primary (\"\" = "           \
         "redis_host)"},                                                                           \
        {"redis_master_name",                                                                      \
         FP_CONF_STRING,                                                                           \
         offsetof(type, member.master_name),                                                       \
         "feedpush",                                                                               \
         0,                                                                                        \
         0,                                                                                        \
         false,                                                                                    \
         "the primary's name in the Sentinels' configuration"},                                    \
        {"redis_user",                                                                             \
         FP_CONF_STRING,                                                                           \
         offsetof(type, member.user),                                                              \
         "",                                                                                       \
         0,                                                                                        \
         0,                                                                                        \
         false,                                                                                    \
         "Redis ACL user to AUTH as (\"\" = the default user)"},                                   \
        {"redis_password_file",                                                                    \
         FP_CONF_STRING,                                                                           \
         offsetof(type, member.password_file),                                                     \
         "",                                                                                       \
         0,                                                                                        \
         0,                                                                                        \
         false,                                                                                    \
         "file holding the Redis password, read at each connect to AUTH (\"\" = no AUTH)"},        \
        {"redis_sentinel_user",                                                                    \
         FP_CONF_STRING,                                                                           \
         offsetof(type, member.sentinel_user),                                                     \
         "",                                                                                       \
         0,                                                                                        \
         0,                                                                                        \
         false,                                                                                    \
         "ACL user to AUTH as on the Sentinels (\"\" = the default user)"},                        \
    {                                                                                              \
        "redis_sentinel_password_file", FP_CONF_STRING,                                            \
            offsetof(type, member.sentinel_password_file), "", 0, 0, false,                        \
            "file holding the Sentinels' password, read at each connect to a Sentinel to AUTH "    \
            "(\"\" = no AUTH)"                                                                     \
    }

/* o's redis_sentinels, when set, must parse and redis_master_name be a
 * name; its redis_password_file and redis_sentinel_password_file, when
 * set, must hold a password (fp_redis_password_check). 0, or -EINVAL
 * with err saying why (-ENOMEM). */
int fp_redis_options_check(const fp_redis_options *o, char *err, size_t errlen);

/* path ("" or NULL: none) holds a password: one line of 1 to 512 bytes.
 * 0, or -EINVAL with err naming key (the option that names the file,
 * e.g. "redis_password_file"), the file and what is wrong. */
int fp_redis_password_check(const char *key, const char *path, char *err, size_t errlen);

struct redisContext;

/*
 * After a connect: AUTH on c with the password in path (read now, so a
 * rotated one is used from the next connect on), as user when it is set.
 * Nothing when path is NULL or "". Returns 0, -EINVAL (the file: err says
 * why, naming key as fp_redis_password_check does), -EIO (no reply),
 * -EACCES (refused: err holds Redis' reply) or -ENOMEM. err never holds
 * the password.
 */
int fp_redis_auth(struct redisContext *c, const char *key, const char *user, const char *path,
                  char *err, size_t errlen);

/*
 * The same without waiting, for a non-blocking c: appends the AUTH
 * command to c's output, for the caller to send and to read its reply
 * first. Returns 1 when appended, 0 when path is NULL or "" (nothing to
 * send), -EINVAL (the file, as above) or -ENOMEM. hiredis keeps the
 * command in c's output buffer until it is written and does not wipe that
 * memory (fp_redis_auth's command neither).
 */
int fp_redis_auth_append(struct redisContext *c, const char *key, const char *user,
                         const char *path, char *err, size_t errlen);

typedef struct fp_sentinel fp_sentinel;

/*
 * A client of the Sentinels in list ("host[:port],...", port 26379 when
 * left out) for the primary called name, with timeout_ms for each connect
 * and reply. Returns 0, -EINVAL (a bad list or name: err says why) or
 * -ENOMEM. Nothing is dialled yet.
 */
int fp_sentinel_new(fp_sentinel **out, const char *list, const char *name, int timeout_ms,
                    char *err, size_t errlen);

/*
 * Every later connection to a Sentinel AUTHs first (fp_redis_auth with
 * the password in path, as user when it is set; "" or NULL path: none),
 * for Sentinels that require a password. A refused AUTH fails that
 * Sentinel like an unreachable one, with errstr saying so. Returns 0 or
 * -ENOMEM.
 */
int fp_sentinel_auth(fp_sentinel *s, const char *user, const char *path);

/* Closes the watch and frees s. NULL is fine. */
void fp_sentinel_free(fp_sentinel *s);

/*
 * Asks the Sentinels in turn, starting with the one that answered last,
 * for the primary's address, and (re)subscribes the watch to
 * +switch-master on the one that answered, on the connection it answered
 * on and in the same write, so no switch after the answer is missed.
 * Returns 0 with *primary filled, or -EIO when none knew (errstr: the
 * last one's failure).
 */
int fp_sentinel_primary(fp_sentinel *s, fp_host *primary);

/*
 * Without blocking: 1 when the primary moved since the last call, else 0.
 * The watch tells: a +switch-master for this primary, or, on a watch
 * opened again, a Sentinel naming another primary (a switch while there
 * was no watch), each when the primary it names is not the one
 * fp_sentinel_primary returned last.
 *
 * A watch whose Sentinel went away (restarted, connection cut) is
 * dropped and opened again by later calls, step by step without
 * blocking: connect, AUTH, the question, SUBSCRIBE. Each step moves on
 * when a later call finds it done; the connect, and then the replies, may
 * take the timeout each. An attempt that fails or times out moves to the
 * next Sentinel, at most one attempt a second. A Sentinel is dialled at
 * the address a blocking connect last reached it at, so no name is looked
 * up; known limit: one given by name that was never reached that way is
 * resolved with a blocking getaddrinfo.
 */
int fp_sentinel_switched(fp_sentinel *s);

/* The watch connection's descriptor (for poll, POLLIN), -1 when there is
 * none. It wakes the caller for a +switch-master, and for the replies of
 * a watch being opened once fp_sentinel_switched has sent its questions;
 * not when that watch's connect completes (a socket turns writable, not
 * readable), so call fp_sentinel_switched on a timer as well (the daemons
 * do at least once a second), not only when the descriptor wakes. */
int fp_sentinel_fd(const fp_sentinel *s);

/* true while the watch is subscribed (not being opened again). */
bool fp_sentinel_watching(const fp_sentinel *s);

/* Why the last failing call failed; never NULL. */
const char *fp_sentinel_errstr(const fp_sentinel *s);

/*
 * ROLE on c: 0 when its server is a primary, -EAGAIN when it is a
 * replica (or a Sentinel), -EPROTO when it refused ROLE (NOAUTH without
 * a password, NOPERM), -EIO on an I/O error. err says which.
 */
int fp_sentinel_check_primary(struct redisContext *c, char *err, size_t errlen);

/* Is r's text a READONLY error (a write sent to a replica, as an old
 * primary becomes after a failover)? */
bool fp_sentinel_readonly(const char *error_text);

#endif
