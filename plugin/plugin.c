/*
 * plugin.c - feed_auth.so entry points for the mosquitto 2.0 plugin API
 * (version 5): option parsing, key loading, callback registration, and
 * the background Redis thread's start and stop.
 *
 * A missing or invalid option, or an unreadable key, makes init fail with
 * one log line, and mosquitto then refuses to start: never an open broker.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
/* The library is built with hidden visibility; only the three entry
 * points the broker looks up are exported. */
#pragma GCC visibility push(default)
#include <mosquitto_plugin.h>
#pragma GCC visibility pop

#include "feed_auth.h"
#include "fp_control.h"

static mosquitto_plugin_id_t *plugin__id;

/* The events this plugin handles, registered and unregistered as a set;
 * data is the event_data of both calls (MOSQ_EVT_CONTROL: the topic). */
static const struct {
    int event;
    MOSQ_FUNC_generic_callback cb;
    const char *data;
} plugin__callbacks[] = {
    {MOSQ_EVT_BASIC_AUTH, fa_on_basic_auth, NULL},
    {MOSQ_EVT_RELOAD, fa_on_reload, NULL},
    {MOSQ_EVT_ACL_CHECK, fa_on_acl_check, NULL},
    {MOSQ_EVT_DISCONNECT, fa_on_disconnect, NULL},
    {MOSQ_EVT_TICK, fa_on_tick, NULL},
    {MOSQ_EVT_CONTROL, fa_on_control, FP_CONTROL_DELIVER_TOPIC},
};
#define PLUGIN__N_CALLBACKS (sizeof(plugin__callbacks) / sizeof(plugin__callbacks[0]))

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
    int i;

    for (i = 0; i < supported_version_count; i++) {
        if (supported_versions[i] == 5)
            return 5;
    }
    return -1;
}

/* Builds the JWT verifier from the options, and says how long a
 * revocation matters under them (*keep: fp_jwt_revocation_keep). Returns
 * 0 or -EINVAL (logged). */
static int plugin__load_verifier(fa_plugin *pl, int64_t *keep)
{
    fp_jwt_config cfg;
    char err[512];
    int rc;

    memset(&cfg, 0, sizeof(cfg));
    if (fp_jwt_alg_parse(pl->opts.alg, &cfg.alg) != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR,
                             "feed_auth: plugin_opt_alg \"%.16s\" is not HS256, RS256 or ES256",
                             pl->opts.alg);
        return -EINVAL;
    }
    cfg.key_file = pl->opts.key_file;
    cfg.issuer = pl->opts.issuer;
    cfg.audience = pl->opts.audience;
    cfg.leeway_s = (int)pl->opts.leeway;
    cfg.max_lifetime_s = pl->opts.max_lifetime;
    cfg.require_iat = pl->opts.require_iat;
    rc = fp_jwt_verifier_new(&cfg, &pl->verifier, err, sizeof(err));
    if (rc != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "feed_auth: %s", err);
        return -EINVAL;
    }
    *keep = fp_jwt_revocation_keep(&cfg);
    return 0;
}

static void plugin__unregister(size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        mosquitto_callback_unregister(plugin__id, plugin__callbacks[i].event,
                                      plugin__callbacks[i].cb, plugin__callbacks[i].data);
}

/* Registers every callback; on a failure unregisters the ones done. */
static int plugin__register(fa_plugin *pl)
{
    size_t i;
    int rc;

    for (i = 0; i < PLUGIN__N_CALLBACKS; i++) {
        rc = mosquitto_callback_register(plugin__id, plugin__callbacks[i].event,
                                         plugin__callbacks[i].cb, plugin__callbacks[i].data, pl);
        if (rc != MOSQ_ERR_SUCCESS) {
            mosquitto_log_printf(MOSQ_LOG_ERR, "feed_auth: registering callback %d failed: %s",
                                 plugin__callbacks[i].event, mosquitto_strerror(rc));
            plugin__unregister(i);
            return rc;
        }
    }
    return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *options, int option_count)
{
    fa_plugin *pl;
    char err[512], where[FP_HOST_MAX * 2 + 96];
    int64_t keep = 0;
    int rc = MOSQ_ERR_INVAL;

    plugin__id = identifier;
    pl = calloc(1, sizeof(*pl));
    if (pl == NULL)
        return MOSQ_ERR_NOMEM;
    if (fa_options_parse(&pl->opts, options, option_count, err, sizeof(err)) != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "feed_auth: %s", err);
        goto error_free;
    }
    if (plugin__load_verifier(pl, &keep) != 0)
        goto error_options;
    if (fa_presence_init(&pl->presence) != 0)
        goto error_verifier;
    if (fa_revocations_init(&pl->revocations, pl->opts.revocation_file, keep) != 0)
        goto error_presence;
    if (fa_revocations_load(&pl->revocations) != 0)
        goto error_held;
    if (fa_held_load(pl) != 0)
        goto error_held;
    if (fa_redis_start(&pl->redis, &pl->opts, &pl->presence, &pl->revocations) != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "feed_auth: cannot start the Redis thread");
        goto error_revocations;
    }
    rc = plugin__register(pl);
    if (rc != MOSQ_ERR_SUCCESS)
        goto error_redis;
    if (pl->opts.redis.sentinels[0] != '\0')
        snprintf(where, sizeof(where), "the primary \"%s\" of Sentinels %s",
                 pl->opts.redis.master_name, pl->opts.redis.sentinels);
    else
        snprintf(where, sizeof(where), "%s:%d", pl->opts.redis.host, (int)pl->opts.redis.port);
    mosquitto_log_printf(MOSQ_LOG_INFO,
                         "feed_auth: node %s, %s tokens, presence in Redis %s (prefix \"%s\")",
                         pl->opts.node_id, pl->opts.alg, where, pl->opts.redis.prefix);
    if (keep > 0)
        mosquitto_log_printf(MOSQ_LOG_INFO,
                             "feed_auth: tokens need iat; a revocation is forgotten %lld s after "
                             "its cut-off (max_lifetime)",
                             (long long)keep);
    else if (pl->opts.require_iat)
        mosquitto_log_printf(MOSQ_LOG_INFO, "feed_auth: tokens need iat; revocations are kept for "
                                            "ever (no max_lifetime)");
    *userdata = pl;
    return MOSQ_ERR_SUCCESS;

error_redis:
    fa_redis_stop(pl->redis);
error_revocations:
error_held:
    fa_sessions_clear(&pl->sessions);
    fa_ended_clear(&pl->ended);
    fa_revocations_destroy(&pl->revocations);
error_presence:
    fa_presence_destroy(&pl->presence);
error_verifier:
    fp_jwt_verifier_free(pl->verifier);
error_options:
    fa_options_free(&pl->opts);
error_free:
    free(pl);
    return rc == MOSQ_ERR_SUCCESS ? MOSQ_ERR_INVAL : rc;
}

/* At a graceful stop, once the Redis thread is gone: the revocations, if
 * their last write failed. Logged when it fails again. */
static void plugin__save_revocations(fa_plugin *pl)
{
    size_t n;
    int rc = fa_revocations_save(&pl->revocations, &n);

    if (rc < 0)
        mosquitto_log_printf(MOSQ_LOG_ERR, "feed_auth: cannot write %s: %s", pl->revocations.file,
                             strerror(-rc));
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
    fa_plugin *pl = userdata;

    (void)options;
    (void)option_count;
    if (pl == NULL)
        return MOSQ_ERR_SUCCESS;
    plugin__unregister(PLUGIN__N_CALLBACKS);
    fa_held_save(pl);
    fa_redis_stop(pl->redis);
    plugin__save_revocations(pl);
    fa_sessions_clear(&pl->sessions);
    fa_ended_clear(&pl->ended);
    fa_revocations_destroy(&pl->revocations);
    fa_presence_destroy(&pl->presence);
    fp_jwt_verifier_free(pl->verifier);
    fa_options_free(&pl->opts);
    free(pl);
    return MOSQ_ERR_SUCCESS;
}
