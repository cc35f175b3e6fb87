/*
 * feed_auth.h - private header of the feed_auth.so mosquitto plugin.
 *
 * One file per concern:
 *   plugin.c    mosquitto_plugin_* entry points, callback registration
 *   options.c   plugin_opt_* parsing
 *   auth.c      MOSQ_EVT_BASIC_AUTH: JWT, username == sub, revocation
 *   acl.c       MOSQ_EVT_ACL_CHECK: pure topic rules per role
 *   sessions.c  the table of live sessions (pure data structure)
 *   kick.c      MOSQ_EVT_DISCONNECT; MOSQ_EVT_TICK: kicks on expiry and
 *               revocation
 *   presence.c  per-user session counts handed to the Redis thread
 *   held.c      persistent sessions: client id ownership, the offline
 *               records that outlive a connection, their state file
 *   ended.c     connections that ended without a held record while the
 *               broker may keep their session, for a configuration
 *               reload that asks about them again (pure data structure)
 *   revocations.c  the revocation table, and its file
 *   statefile.c the plugin's files, each replaced whole
 *   fanout.c    MOSQ_EVT_CONTROL on $CONTROL/feedpush/v1/deliver: the
 *               bridge's one message per delivery, published here to
 *               feed/<uid> per recipient (fp_control.h)
 *   deliver_msg.c  that message parsed and checked (pure)
 *   redis_sync.c  the background thread: presence writes, heartbeat,
 *               revocation feed (all Redis I/O happens there)
 *
 * Threads: every mosquitto callback runs on the broker thread. The Redis
 * thread shares exactly two things with it, each behind its own mutex: the
 * presence table (presence.c) and the revocation table (revocations.c).
 */
#ifndef FEED_AUTH_H
#define FEED_AUTH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* An allocation failure inside a HASH_ADD leaves the item out of the
 * table (FA_HASH_ADDED tells) instead of calling exit(): uthash's default
 * would take the broker down with the plugin. Defined before uthash.h,
 * which every plugin file takes from here. */
#define HASH_NONFATAL_OOM 1
#include <uthash.h>
/* Whether the HASH_ADD of item through its handle hh took it. */
#define FA_HASH_ADDED(item, hh) ((item)->hh.tbl != NULL)

#include "fp_id.h"
#include "fp_jwt.h"
#include "fp_sentinel.h"
#include "fp_time.h"

struct mosquitto;
struct mosquitto_opt;

/* Client ids with this prefix may only be used by role service (the
 * bridges connect as feed-bridge-<node>). */
#define FA_SERVICE_CLIENT_PREFIX "feed-bridge-"

/* A client id "<user>:<name>" belongs to <user>: no one else may use it.
 * Persistent sessions need such an id (held.c). */
#define FA_OWNER_SEP ':'

/* ------------------------------------------------------------- options */

typedef struct {
    char *alg;      /* HS256 | RS256 | ES256 */
    char *key_file; /* secret or public key */
    char *issuer;   /* optional */
    char *audience; /* optional */
    int64_t leeway;
    int64_t max_lifetime; /* seconds, exp - iat; 0 = no limit */
    bool require_iat;     /* tokens without iat refused; revocations then expire */
    char *node_id;
    fp_redis_options redis;     /* redis_host ... redis_master_name */
    int64_t heartbeat_interval; /* seconds; node:<id> lives 3 intervals */
    int64_t session_max_lifetime;  /* seconds a persistent session outlives its connection */
    int64_t max_sessions_per_user; /* persistent sessions per user on this node */
    char *session_file;            /* where held sessions survive a restart; NULL = nowhere */
    int64_t session_save_interval; /* seconds between saves while they change; 0 = at stop */
    char *revocation_file;         /* where revocations survive a restart; NULL = nowhere */
} fa_options;

/* Parses the plugin_opt_* pairs. Returns 0 or -EINVAL with err filled. */
int fa_options_parse(fa_options *o, struct mosquitto_opt *opts, int n, char *err, size_t errlen);
void fa_options_free(fa_options *o);

/* -------------------------------------------------------------- acl */

/* MOSQ_ACL_* values, repeated so acl.c can be unit-tested without the broker. */
enum { FA_ACL_READ = 0x01, FA_ACL_WRITE = 0x02, FA_ACL_SUBSCRIBE = 0x04, FA_ACL_UNSUBSCRIBE = 0x08 };

/* True when a client of this role and sub may do access on topic. */
bool fa_acl_allowed(fp_role role, const char *sub, const char *topic, int access);
/* True when a publish to topic may be retained: on ribbon only. */
bool fa_acl_retain_allowed(const char *topic);

/* ------------------------------------------------------------ deliver control */

/* A deliver control message (fp_control.h), pointers into its payload. */
typedef struct {
    uint32_t expiry_s; /* 0: none */
    const char *ids;   /* "<uid> <uid> ...", every one valid */
    size_t ids_len;
    size_t n; /* recipients, at least 1 */
    const char *body;
    size_t body_len; /* at least 1 */
} fa_deliver_msg;

/* Parses and checks all of payload. Returns NULL, or why it is malformed
 * (m then holds nothing usable). */
const char *fa_deliver_parse(const void *payload, size_t len, fa_deliver_msg *m);
/* The next recipient from *pos (start at 0): false after the last. */
bool fa_deliver_next(const fa_deliver_msg *m, size_t *pos, const char **id, size_t *id_len);

/* ------------------------------------------------------------ sessions */

typedef struct fa_session {
    struct mosquitto *client; /* key of by_client; NULL for a record loaded
                               * from the state file until the broker's
                               * restored session shows up (fa_held_adopt) */
    char *client_id;          /* key of by_id (only the newest session per id) */
    char sub[FP_ID_BUFSZ];
    fp_role role;
    int64_t exp;
    int64_t iat; /* 0 when the token had none */
    bool in_by_id;
    bool in_by_client;
    bool kicked; /* a kick was issued; its disconnect is on the way */
    bool held;   /* a persistent session: kept after its connection ends */
    int64_t offline_until; /* 0 while connected; else unix s when it expires */
    UT_hash_handle hh_client;
    UT_hash_handle hh_id;
} fa_session;

typedef struct {
    fa_session *by_client;
    fa_session *by_id;
    size_t count;
} fa_sessions;

/* Finds the session of a connected client, NULL if none. */
fa_session *fa_sessions_find(fa_sessions *t, const struct mosquitto *client);
/* The newest session using this client id, NULL if none. */
fa_session *fa_sessions_find_id(fa_sessions *t, const char *client_id);
/* Adds a session (claims already verified; client NULL: a record loaded
 * from the state file). The session it replaces in by_id (if any) is
 * returned in *replaced, still in by_client, or freed already (*replaced
 * NULL) when it had no client. Returns the new session or NULL (ENOMEM). */
fa_session *fa_sessions_add(fa_sessions *t, struct mosquitto *client, const char *client_id,
                            const fp_jwt_claims *c, fa_session **replaced);
/* Indexes s by client (a loaded record meeting its restored session).
 * Returns 0, or -ENOMEM with s left as it was. */
int fa_sessions_bind(fa_sessions *t, fa_session *s, struct mosquitto *client);
/* Removes and frees s. */
void fa_sessions_free(fa_sessions *t, fa_session *s);
void fa_sessions_clear(fa_sessions *t);

/* ------------------------------------------------------------ held sessions */

/* The owner of a client id "<user>:<name>" into owner (FP_ID_BUFSZ).
 * False when the id has no valid owner part. */
bool fa_client_id_owner(const char *client_id, char owner[FP_ID_BUFSZ]);

struct fa_plugin;
/* Ends s's record as a connection goes: a held session stays (offline,
 * until session_max_lifetime), anything else is freed (an MQTT 5 one
 * remembered: fa_ended_add). Counts presence. */
void fa_held_connection_gone(struct fa_plugin *pl, fa_session *s);
/* Forgets s whatever it is (expired, replaced, stale). Counts presence. */
void fa_held_drop(struct fa_plugin *pl, fa_session *s);
/* fa_held_drop of a record whose session the broker freed without a
 * word (its client pointer is stale), with one log line. */
void fa_held_drop_gone(struct fa_plugin *pl, fa_session *s);
/* The record of a client the plugin never authenticated: a session the
 * broker restored from its persistence file, matched by client id to a
 * record from the state file. NULL when there is none. */
fa_session *fa_held_adopt(struct fa_plugin *pl, struct mosquitto *client);
/* Drops offline records past their lifetime. */
void fa_held_expire(struct fa_plugin *pl, int64_t now);
/* From the tick, after a take-over of an offline record: drops the
 * records the broker will never end, as their sessions went with their
 * connections (fa_held_drop_gone). */
void fa_held_drop_leftovers(struct fa_plugin *pl);
/* Loads / saves plugin_opt_session_file (no file set: nothing, 0).
 * Returns 0 or -errno (logged). */
int fa_held_load(struct fa_plugin *pl);
int fa_held_save(struct fa_plugin *pl);
/* From the tick: saves the file when held sessions changed and
 * session_save_interval has passed since the last save (now_ms:
 * monotonic). */
void fa_held_autosave(struct fa_plugin *pl, int64_t now_ms);

/* ------------------------------------------------------------ revocations */

typedef struct fa_revocation {
    char sub[FP_ID_BUFSZ];
    int64_t before; /* tokens with iat <= before are invalid (fp_jwt_revoked) */
    UT_hash_handle hh;
} fa_revocation;

typedef struct {
    pthread_mutex_t lock;
    fa_revocation *map;
    atomic_bool pending; /* new entries the broker thread has not acted on */
    atomic_bool dirty;   /* changed since the file was last written */
    const char *file;    /* plugin_opt_revocation_file (options own it), or NULL */
    int64_t keep_s;      /* a cut-off is dropped keep_s after it; 0 = kept for ever */
    int64_t next_prune;  /* unix seconds: no prune before (Redis thread only) */
} fa_revocations;

/* An empty table; file: where it is kept (NULL: in memory only); keep_s:
 * how long a cut-off matters (fp_jwt_revocation_keep; 0 = for ever). */
int fa_revocations_init(fa_revocations *r, const char *file, int64_t keep_s);
void fa_revocations_destroy(fa_revocations *r);
/* Raises the cut-off for sub (never lowers it); one already past keep_s
 * at now (unix seconds) is ignored. Any thread. 0, or -ENOMEM when the
 * table had no room for a new user (then nothing changed). */
int fa_revocations_raise(fa_revocations *r, const char *sub, int64_t before, int64_t now);
/* Drops the cut-offs past keep_s at now, at most once a minute or once
 * per keep_s if shorter (Redis thread). Returns how many went; the file is then due for a write. */
size_t fa_revocations_prune(fa_revocations *r, int64_t now);
/* The cut-off for sub, 0 when none. Any thread. */
int64_t fa_revocations_get(fa_revocations *r, const char *sub);
/* Loads the table's file, at start (none yet: nothing). Returns 0 or
 * -errno (logged): a file that exists but cannot be read. */
int fa_revocations_load(fa_revocations *r);
/* Writes the table to its file when it changed since the last write.
 * Returns 1 when it wrote it (*n entries, 0 for an empty table), 0 when
 * nothing was due, or -errno; logs nothing (it runs on the Redis
 * thread). */
int fa_revocations_save(fa_revocations *r, size_t *n);

/* ------------------------------------------------------------ state files */

/* The name of path's temporary file, "<path>.tmp", into out (size
 * bytes). 0, or -ENAMETOOLONG. */
int fa_statefile_temp(const char *path, char *out, size_t size);
/* Replaces the file at path with what write(f, arg) writes: a temporary
 * file (fa_statefile_temp, mode 0600; one already there is deleted
 * first), synced, renamed over it, its directory synced, so a crash or a
 * power loss leaves the old file or the new one whole. Returns 0, write's
 * negative return, or -errno; logs nothing. */
int fa_statefile_replace(const char *path, int (*write)(FILE *f, void *arg), void *arg);
/* Reads the file at path (broker thread, at start): its first line must
 * begin with magic, and each line after it goes to line(text, arg), which
 * returns 0 to go on or a negative errno to stop. Returns 1 when there is
 * no file (a first start), 0 when it was read whole, line's negative
 * return, or -errno, logged: unreadable, not a <what> file (-EINVAL), a
 * read error or no memory for a line in it (-EIO: the lines after it
 * would be missing, and the next save would drop them). */
int fa_statefile_read(const char *path, const char *magic, const char *what,
                      int (*line)(char *text, void *arg), void *arg);

/* ------------------------------------------------------------ presence */

/* The two sets presence keeps per node: users connected now
 * (online:<node>) and users with a persistent session there, connected or
 * not (sessions:<node>). Routing sends to a node in either. */
typedef enum { FA_SET_ONLINE = 0, FA_SET_HELD = 1, FA_SETS } fa_presence_set;

typedef struct fa_presence_user {
    char sub[FP_ID_BUFSZ];
    unsigned count[FA_SETS]; /* connections; held sessions */
    UT_hash_handle hh;
} fa_presence_user;

typedef enum { FA_PRESENCE_ADD = 1, FA_PRESENCE_REMOVE } fa_presence_op;

typedef struct fa_presence_delta {
    fa_presence_op op;
    fa_presence_set set;
    char sub[FP_ID_BUFSZ];
    struct fa_presence_delta *next;
} fa_presence_delta;

/* One user of a snapshot and the sets it belongs to. */
typedef struct {
    char sub[FP_ID_BUFSZ];
    bool in[FA_SETS];
} fa_presence_entry;

typedef struct {
    pthread_mutex_t lock;
    fa_presence_user *users;   /* users with >= 1 local session */
    fa_presence_delta *head;   /* changes not yet written to Redis */
    fa_presence_delta **tail;
    size_t queued;
    bool overflow;             /* queue dropped: the thread must resync */
    size_t n_in[FA_SETS];      /* users with count[set] > 0 */
    int wake_fd[2];            /* pipe: a byte wakes the Redis thread */
} fa_presence;

int fa_presence_init(fa_presence *p);
void fa_presence_destroy(fa_presence *p);
/* Broker thread: one more / one fewer connection (FA_SET_ONLINE) or held
 * session (FA_SET_HELD) of sub on this node. Only role user sessions
 * count: presence lists users, not the bridges. fa_presence_up returns
 * 0, or -ENOMEM when sub had no entry and none could be made: nothing
 * is counted then, and the caller must not count that one down (it would
 * take another session's count). An up while sub has any count cannot
 * fail. */
int fa_presence_up(fa_presence *p, fa_presence_set set, const char *sub);
void fa_presence_down(fa_presence *p, fa_presence_set set, const char *sub);
/* How many held sessions sub has on this node. */
unsigned fa_presence_held(fa_presence *p, const char *sub);
/* Redis thread: takes the queued deltas (caller frees with
 * fa_presence_deltas_free); *resync set when the queue overflowed. n (or
 * NULL): the users in each set as those deltas leave them, taken with
 * them. */
fa_presence_delta *fa_presence_take(fa_presence *p, bool *resync, size_t n[FA_SETS]);
/* Redis thread: a snapshot of all users (malloc'd array), clears the queue. */
fa_presence_entry *fa_presence_snapshot(fa_presence *p, size_t *n);
void fa_presence_deltas_free(fa_presence_delta *d);

/* ------------------------------------------------------------ redis thread */

typedef struct fa_redis fa_redis;

/* The background thread's name (its comm in /proc), at most 15 bytes. */
#define FA_REDIS_THREAD_NAME "feed_auth-redis"

/* Starts the background thread, named FA_REDIS_THREAD_NAME, with the
 * asynchronous signals blocked in it. Returns 0 or -errno. */
int fa_redis_start(fa_redis **out, const fa_options *o, fa_presence *p, fa_revocations *r);
/* Stops it: joins the thread, then best-effort removal of this node's
 * presence (a clean shutdown leaves no stale entries). */
void fa_redis_stop(fa_redis *rs);
/* Broker thread: writes the log lines the Redis thread queued. */
void fa_redis_drain_log(fa_redis *rs);

/* ------------------------------------------------------------ ended */

/* The digest of a client id an entry keeps instead of the id (SHA-256). */
#define FA_ENDED_HASH_LEN 32

/* A connection that ended without a held record while the broker may
 * keep its context (ended.c). */
typedef struct fa_ended {
    const struct mosquitto *client;           /* key of by_client; compared, never used */
    unsigned char id_hash[FA_ENDED_HASH_LEN]; /* key of by_id: fa_ended_id_hash(client id) */
    char sub[FP_ID_BUFSZ];          /* its token's sub, exp and iat (0: none) */
    int64_t exp;
    int64_t iat;
    int64_t until; /* unix s: forgotten then */
    struct fa_ended_user *user;
    UT_hash_handle hh_client;
    UT_hash_handle hh_id;
    struct fa_ended *prev, *next;   /* all of them, oldest first */
    struct fa_ended *uprev, *unext; /* the user's, oldest first */
} fa_ended;

/* The entries of one sub. */
typedef struct fa_ended_user {
    char sub[FP_ID_BUFSZ];
    fa_ended *oldest;
    size_t count;
    UT_hash_handle hh;
} fa_ended_user;

typedef struct {
    fa_ended *by_client;
    fa_ended *by_id;
    fa_ended *oldest;
    fa_ended_user *users;
    size_t count;
} fa_ended_set;

/* Entries kept per sub, and in all (the oldest go first). */
#define FA_ENDED_PER_USER 32
#define FA_ENDED_MAX 131072

/* The digest of a client id the set keeps instead of the id. */
void fa_ended_id_hash(const char *client_id, unsigned char out[FA_ENDED_HASH_LEN]);
/* Remembers the end of client's connection (client_id, its token's sub,
 * exp, iat) until the unix second until, in place of the entries of the
 * same client or id. Returns 0 or -ENOMEM (not kept). */
int fa_ended_add(fa_ended_set *set, const struct mosquitto *client, const char *client_id,
                 const char *sub, int64_t exp, int64_t iat, int64_t until);
/* The entry of client, NULL if none. */
const fa_ended *fa_ended_find(fa_ended_set *set, const struct mosquitto *client);
/* Forgets client's entry, if any: a new connection uses that context. */
void fa_ended_forget(fa_ended_set *set, const struct mosquitto *client);
/* Forgets the entry of client_id, if any: a connect took the id over. */
void fa_ended_forget_id(fa_ended_set *set, const char *client_id);
/* Forgets the entries whose time is over at now (unix s). */
void fa_ended_expire(fa_ended_set *set, int64_t now);
void fa_ended_clear(fa_ended_set *set);

/* ------------------------------------------------------------ plugin */

typedef struct fa_plugin {
    fa_options opts;
    fp_jwt_verifier *verifier;
    fa_sessions sessions;
    fa_ended_set ended;
    fa_presence presence;
    fa_revocations revocations;
    fa_redis *redis;
    int64_t next_expiry_check_ms; /* monotonic; next expiry sweep */
    uint64_t held_changes;        /* changes to held sessions since start */
    uint64_t held_saved;          /* held_changes at the last save that worked */
    int64_t next_held_save_ms;    /* monotonic; no autosave before */
    bool held_save_failing;       /* the last autosave failed (logged once) */
    bool leftovers_due;           /* an offline record was taken over (fa_held_drop_leftovers) */
    bool reloading;               /* from MOSQ_EVT_RELOAD to the next tick: basic auth
                                   * calls re-check the broker's contexts (auth.c) */
    bool ticked;                  /* the broker's tick has come at least once */
    int64_t first_auth_ms;        /* monotonic: the first connect, while no tick came */
    bool no_tick_logged;          /* auth.c's no-tick error is logged */
} fa_plugin;

/* Broker callbacks (auth.c, acl.c, kick.c, fanout.c). */
int fa_on_basic_auth(int event, void *event_data, void *userdata);
/* MOSQ_EVT_RELOAD: sets pl->reloading. Returns MOSQ_ERR_PLUGIN_DEFER, so
 * the broker's other plugins reload too. */
int fa_on_reload(int event, void *event_data, void *userdata);
int fa_on_acl_check(int event, void *event_data, void *userdata);
int fa_on_disconnect(int event, void *event_data, void *userdata);
int fa_on_tick(int event, void *event_data, void *userdata);
int fa_on_control(int event, void *event_data, void *userdata);

/* Writes s into out (outsz bytes) for a log line: at most 64 bytes,
 * control characters as '?'. For client ids, which clients choose. */
void fa_log_safe(const char *s, char *out, size_t outsz);

#endif
