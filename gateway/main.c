/*
 * feed-gateway: the HTTP API of feedpush and the browser client. See
 * gateway.h for the modules and docs/gateway.md for the API.
 *
 *   feed-gateway [-c gateway.conf]
 *
 * Loads the configuration and the token keys (a bad one stops it with one
 * line), opens Redis and RabbitMQ (either may be down at start: requests
 * that need it get 503 until it is back), then serves HTTP until SIGTERM
 * or SIGINT, and exits 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fp_config.h"
#include "fp_log.h"
#include "fp_version.h"
#include "gateway.h"

static volatile int main__stop;

/* Only sets the flag: the health loop sees it within 50 ms and stops the
 * workers itself. Touching their contexts from here could race with their
 * destruction on a second signal. */
static void main__on_signal(int sig)
{
    (void)sig;
    main__stop = 1;
}

static void main__usage(FILE *out)
{
    fprintf(out, "usage: feed-gateway [-c gateway.conf] | --help | --version\n\n"
                 "Configuration keys (file lines \"key value\"; environment FEEDPUSH_<KEY>):\n");
    fg_config_usage(out);
}

/* A configured file that must exist (www_dir/index.html, mqtt.min.js). */
static int main__need_file(const char *dir, const char *name, const char *key)
{
    char path[4096];
    struct stat st;

    if (dir[0] == '\0')
        return 0;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
        return 0;
    fp_error("%s %s: no %s there (set %s \"\" to serve no browser client)", key, dir, name, key);
    return -ENOENT;
}

/* HTTPS needs tls_cert and tls_key together, both readable. 0 or -EINVAL. */
static int main__tls(const fg_config *c)
{
    bool cert = c->tls_cert[0] != '\0', key = c->tls_key[0] != '\0';

    if (cert != key) {
        fp_error("HTTPS needs both tls_cert and tls_key (%s is not set)",
                 cert ? "tls_key" : "tls_cert");
        return -EINVAL;
    }
    if (cert && access(c->tls_cert, R_OK) != 0) {
        fp_error("tls_cert %s: %s", c->tls_cert, strerror(errno));
        return -EINVAL;
    }
    if (key && access(c->tls_key, R_OK) != 0) {
        fp_error("tls_key %s: %s", c->tls_key, strerror(errno));
        return -EINVAL;
    }
    return 0;
}

/* amqp_hosts and redis_sentinels, when set, must parse. 0 or -EINVAL
 * (logged). */
static int main__link_options(const fg_config *c)
{
    char err[256];

    if (fp_amqp_options_check(&c->amqp, err, sizeof(err)) == 0 &&
        fp_redis_options_check(&c->redis, err, sizeof(err)) == 0)
        return 0;
    fp_error("%s", err);
    return -EINVAL;
}

/*
 * Dev mode: mints a token as POST /api/v1/dev/token would and verifies
 * it as every request's token is, so that a signing key that cannot sign
 * (a file that is no private key of jwt_alg) or that is not the pair of
 * jwt_key stops the start with one line, instead of a 500 or a 401 for
 * every dev token. 0 or -EINVAL (logged).
 */
static int main__check_signing_key(fg_gateway *gw)
{
    fp_jwt_claims claims;
    char *token = NULL, err[256];
    int64_t exp;
    int rc;

    if (fg_dev_mint(gw, "feedpush-start-check", &token, &exp, err, sizeof(err)) != 0) {
        fp_error("jwt_signing_key %s cannot sign %s tokens: %s", gw->cfg.jwt_signing_key,
                 gw->cfg.jwt_alg, err);
        return -EINVAL;
    }
    rc = fp_jwt_verify(gw->verifier, token, (int64_t)time(NULL), &claims, err, sizeof(err));
    free(token);
    if (rc != 0) {
        fp_error("jwt_signing_key %s makes dev tokens that jwt_key %s refuses (%s: %s): they "
                 "must be a pair (or, for HS256, the same secret)",
                 gw->cfg.jwt_signing_key, gw->cfg.jwt_key, fp_jwt_strerror(rc), err);
        return -EINVAL;
    }
    return 0;
}

/* Builds the token verifier and, in dev mode, loads the signing key. */
static int main__keys(fg_gateway *gw)
{
    fp_jwt_config jc = {0};
    char err[512];
    int rc;

    if (fp_jwt_alg_parse(gw->cfg.jwt_alg, &gw->alg) != 0) {
        fp_error("jwt_alg %s: must be HS256, RS256 or ES256", gw->cfg.jwt_alg);
        return -EINVAL;
    }
    jc.alg = gw->alg;
    jc.key_file = gw->cfg.jwt_key;
    jc.issuer = gw->cfg.jwt_issuer;
    jc.audience = gw->cfg.jwt_audience;
    jc.leeway_s = (int)gw->cfg.jwt_leeway;
    jc.max_lifetime_s = gw->cfg.jwt_max_lifetime;
    jc.require_iat = gw->cfg.jwt_require_iat;
    if (gw->cfg.dev_mode && jc.max_lifetime_s > 0 && gw->cfg.dev_token_ttl > jc.max_lifetime_s) {
        fp_error("dev_token_ttl %lld is over jwt_max_lifetime %lld: dev tokens would be refused",
                 (long long)gw->cfg.dev_token_ttl, (long long)jc.max_lifetime_s);
        return -EINVAL;
    }
    rc = fp_jwt_verifier_new(&jc, &gw->verifier, err, sizeof(err));
    if (rc != 0) {
        fp_error("jwt_key: %s", err);
        return rc;
    }
    if (!gw->cfg.dev_mode)
        return 0;
    if (gw->cfg.jwt_signing_key[0] == '\0') {
        fp_error("dev_mode is on but jwt_signing_key is not set (dev tokens need it)");
        return -EINVAL;
    }
    rc = fp_jwt_load_key(gw->alg, gw->cfg.jwt_signing_key, &gw->signing_key, &gw->signing_key_len,
                         err, sizeof(err));
    if (rc != 0) {
        fp_error("jwt_signing_key: %s", err);
        return rc;
    }
    return main__check_signing_key(gw);
}

/* Parses the command line: -c FILE, --help, --version. Returns 0, 1 (help
 * or version shown) or 2. */
static int main__args(int argc, char **argv, const char **conf)
{
    int i;

    for (i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            *conf = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            main__usage(stdout);
            return 1;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("feed-gateway %s\n", FP_VERSION);
            return 1;
        } else {
            main__usage(stderr);
            return 2;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    static fg_shared shared;
    static fg_gateway gw; /* the health loop's links; the workers copy it */
    const char *conf = NULL;
    fp_log_level level;
    char err[FP_CONF_ERR_MAX];
    int rc, bad;

    fp_log_set_component("feed-gateway");
    if (fg_metrics_init(&shared.metrics) != 0 || pthread_mutex_init(&shared.lock, NULL) != 0)
        return 1;
    gw.shared = &shared;
    rc = main__args(argc, argv, &conf);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    /* A configuration it cannot use exits 2, which its unit does not
     * restart on (RestartPreventExitStatus=2), as a bad command line. */
    if (fg_config_load(&gw.cfg, conf, err, sizeof(err)) != 0) {
        fp_error("%s", err);
        return 2;
    }
    rc = 2;
    if (fp_log_level_parse(gw.cfg.log_level, &level) != 0) {
        fp_error("log_level %s: must be debug, info, warn or error", gw.cfg.log_level);
        goto done;
    }
    fp_log_set_level(level);
    bad = main__keys(&gw);
    if (bad == 0)
        bad = main__tls(&gw.cfg);
    if (bad == 0)
        bad = main__link_options(&gw.cfg);
    if (bad == 0)
        bad = main__need_file(gw.cfg.www_dir, "index.html", "www_dir");
    if (bad == 0)
        bad = main__need_file(gw.cfg.mqtt_js_dir, "mqtt.min.js", "mqtt_js_dir");
    if (bad != 0) {
        rc = bad == -ENOMEM ? 1 : 2; /* out of memory is no configuration's fault */
        goto done;
    }
    rc = 1;
    if (fg_backend_open(&gw, true, true) != 0)
        goto done;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, main__on_signal);
    signal(SIGINT, main__on_signal);
    if (fg_http_run(&gw, &main__stop) == 0) {
        fp_info("stopped");
        rc = 0;
    }
done:
    fg_backend_close(&gw);
    fp_jwt_key_free(gw.signing_key, gw.signing_key_len);
    fp_jwt_verifier_free(gw.verifier);
    fg_config_free(&gw.cfg);
    pthread_mutex_destroy(&shared.lock);
    fg_metrics_destroy(&shared.metrics);
    return rc;
}
