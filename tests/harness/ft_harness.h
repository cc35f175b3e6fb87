/*
 * ft_harness.h - real servers for integration tests.
 *
 * A thin C face over tools/fp-server: start a redis-server,
 * rabbitmq-server or mosquitto on a free loopback port, restart it on the
 * same port (fault tests), stop it. (fp-server also starts feed-bridge and
 * feed-gateway; the tests fork those themselves, see ft_harness_child.) The script path and the run's temp dir
 * come from the environment CTest sets (FP_HARNESS, FP_TEST_TMP). Servers a
 * test starts are also stopped by a watchdog if the test dies first.
 */
#ifndef FT_HARNESS_H
#define FT_HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct ft_server {
    char kind[16];      /* "redis", "rabbitmq" or "mosquitto" (tools/fp-server's KIND) */
    char dir[PATH_MAX]; /* where KIND.env, the data and the log live */
    char conf[PATH_MAX];/* mosquitto: extra config appended ("" = anonymous allowed) */
    char cluster[PATH_MAX]; /* rabbitmq: the cluster's dir (its epmd server's), or "" */
    int replica_of;         /* redis: the primary's port at start, or 0 */
    int monitor;            /* sentinel: the port of the primary it watches */
    int port;
    int ws_port;        /* mosquitto: MQTT over WebSockets */
    long pid;
} ft_server;

/* Starts a server of this kind in a fresh dir under FP_TEST_TMP. conf is
 * mosquitto-only (NULL for none). Returns 0 or -1 (reason on stderr). */
int ft_server_start(ft_server *s, const char *kind, const char *conf);

/* A RabbitMQ node of a cluster: epmd is the cluster's port mapper
 * (ft_server_start(epmd, "epmd", NULL), stopped after the nodes). The
 * first node started is the seed; later ones join it (tools/fp-server
 * --cluster). A node restarted or killed and restarted keeps its data and
 * rejoins. Returns 0 or -1. */
int ft_server_start_node(ft_server *s, const ft_server *epmd);

/* A Redis replica of primary (a redis started before). 0 or -1. */
int ft_server_start_replica(ft_server *s, const ft_server *primary);

/* A Redis Sentinel watching primary as "feedpush" (quorum 2; down after
 * 3 s: tools/fp-server). 0 or -1. */
int ft_server_start_sentinel(ft_server *s, const ft_server *primary);

/* Stops it and starts it again on the same port(s). Returns 0 or -1. */
int ft_server_restart(ft_server *s);

/* Stops it (SIGTERM, then SIGKILL after 15 s). Returns 0 or -1. */
int ft_server_stop(ft_server *s);

/* ft_server_stop on each of n servers (a no-op for one already stopped
 * or killed). Returns -1 if any stop failed. */
int ft_servers_stop(ft_server *s, size_t n);

/* Kills it with SIGKILL, as a crash would. Returns 0 or -1. */
int ft_server_kill(ft_server *s);

/* RabbitMQ only: creates a virtual host that the guest user may use, so a
 * test gets the whole AMQP topology to itself. Takes ~4 s. 0 or -1. */
int ft_server_vhost(const ft_server *s, const char *name);

/* RabbitMQ only: sets policy name (definition: JSON) on the queues of
 * vhost whose names match pattern (rabbitmqctl set_policy). 0 or -1. */
int ft_server_policy(const ft_server *s, const char *vhost, const char *name, const char *pattern,
                     const char *definition);

/* RabbitMQ only: raises (on) or ends its memory alarm, which blocks every
 * connection that publishes (fp-server alarm). 0 or -1. */
int ft_server_alarm(const ft_server *s, bool on);

/* 1 when the server's main process is running (zombies do not count). */
int ft_server_running(const ft_server *s);

/* CPU seconds (user + system) the server's main process has used, or -1. */
double ft_server_cpu_seconds(const ft_server *s);

/* Attaches to the run-wide server of a CTest fixture (today: "rabbitmq").
 * Returns 0 or -1 when the fixture did not start it. */
int ft_server_shared(ft_server *s, const char *kind);

/* In a forked child that is about to exec a daemon under test: its own
 * process group, SIGKILL when the test process dies, stdout and stderr
 * appended to log_path. */
void ft_harness_child(const char *log_path);

/* Checks that nothing the harness started under root is left running
 * (fp-server orphans kills what is), then removes root unless keep or
 * something was. Returns 0, or -1 when processes were left behind. */
int ft_harness_root_drop(const char *root, bool keep);

/* What a command run by ft_run did: its exit status (-1 when it did not
 * exit normally, 127 when it could not be run) and what it wrote,
 * NUL-terminated and cut to fit. */
typedef struct {
    int status;
    char out[16384];
    char err[4096];
} ft_run_result;

/* Runs argv[0] (a path) with argv, NULL-terminated, to its end, with its
 * stdout and stderr read into r. Returns r->status. */
int ft_run(ft_run_result *r, const char *const *argv);

/* Sleeps ms milliseconds (resumed after a signal). */
void ft_sleep_ms(int ms);

/* Fills secret with len random bytes (none '\n' or '\r': the verifier
 * strips one trailing newline) and writes them to a new file path, mode
 * 0644. Returns 0 or -1. */
int ft_secret_write(const char *path, unsigned char *secret, size_t len);

/* Writes the len bytes of secret to the file path (made or replaced), mode
 * 0644. Returns 0 or -1. */
int ft_secret_put(const char *path, const unsigned char *secret, size_t len);

/* Writes to path the config lines that load the plugin under test
 * ($FP_PLUGIN) into a test broker: alg ("HS256", "RS256", "ES256") with
 * key_file, node_id, presence in the Redis on 127.0.0.1:redis_port with a
 * heartbeat every second, then extra (more plugin_opt_* lines, or NULL).
 * Returns 0 or -1. */
int ft_plugin_conf_write(const char *path, const char *alg, const char *key_file,
                         const char *node_id, int redis_port, const char *extra);

/*
 * cmocka 1.1.5 reports a failed group setup/teardown but still exits 0, so
 * what a teardown finds (a sanitizer report in a broker log, a daemon that
 * did not stop cleanly) is counted here instead: ft_server_stop() counts
 * its failures, ft_harness_fail() adds others. Tests end main() with
 *     return ft_harness_exit(cmocka_run_group_tests(tests, setup, teardown));
 */
void ft_harness_fail(const char *why);
int ft_harness_exit(int cmocka_rc);

#endif
