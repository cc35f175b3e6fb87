/*
 * feed_auth.so, authentication: a real mosquitto loading the plugin over
 * TCP. Every refusal the plugin promises is tried and must produce a
 * not-authorised CONNACK (5 under MQTT 3.1.1, 135 under v5) and one broker
 * log line naming the reason and the client id, never the token; valid
 * tokens are accepted. Tokens the minting code refuses to build (alg none,
 * other algorithms, missing claims, bad sub, oversized) are built by hand
 * here with OpenSSL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <mqtt_protocol.h>

#include "ft_redis.h"
#include "ft_token.h"
#include "plugin_env.h"
#include "ft_main.h"

#define CONNECT_MS 3000
#define LOG_WAIT_MS 2000

static ft_plugin_env env;

/* Fails when a stop failed, e.g. a sanitizer report in the broker log. */
FT_FIXTURES(ft_plugin_env_start(&env, "n1", NULL), ft_plugin_env_stop(&env))

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

/* ------------------------------------------------------------ tokens */

#define HDR_HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* A hand-built HS256 token with this payload, signed with e's secret. */
static char *hs256_token(const ft_plugin_env *e, const char *payload)
{
    return ft_plugin_env_hand_token(e, HDR_HS256, payload, EVP_sha256());
}

/* A token minted by common/fp_jwt with e's secret (nbf, iss, aud...). */
static char *mint(const ft_plugin_env *e, const fp_jwt_mint_claims *c)
{
    char *tok = NULL, err[256];

    if (fp_jwt_mint(FP_JWT_HS256, e->secret, sizeof(e->secret), c, &tok, err, sizeof(err)) != 0)
        fail_msg("mint: %s", err);
    return tok;
}

/* ------------------------------------------------------------ broker log */

/* The whole broker log of e; malloc'd, "" when there is none yet. */
static char *read_log(const ft_plugin_env *e)
{
    char path[PATH_MAX + 32], *buf;
    size_t n = 0, cap = 65536, got;
    FILE *f;

    snprintf(path, sizeof(path), "%s/mosquitto/mosquitto.log", e->mosq.dir);
    buf = malloc(cap + 1);
    assert_non_null(buf);
    f = fopen(path, "r");
    if (f != NULL) {
        for (;;) {
            got = fread(buf + n, 1, cap - n, f);
            n += got;
            if (n < cap)
                break;
            cap *= 2;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
        fclose(f);
    }
    buf[n] = '\0';
    return buf;
}

/* True when log has one line containing both a and b. */
static bool log_line_has(const char *log, const char *a, const char *b)
{
    const char *p = log, *hit, *start, *end;

    for (;;) {
        hit = strstr(p, a);
        if (hit == NULL)
            return false;
        start = hit;
        while (start > log && start[-1] != '\n')
            start--;
        end = strchr(hit, '\n');
        if (end == NULL)
            end = hit + strlen(hit);
        for (p = start; p + strlen(b) <= end; p++) {
            if (strncmp(p, b, strlen(b)) == 0)
                return true;
        }
        p = hit + 1;
    }
}

/* Waits up to LOG_WAIT_MS for a broker log line holding both a and b. */
static bool log_wait(const ft_plugin_env *e, const char *a, const char *b)
{
    int64_t end = fp_time_mono_ms() + LOG_WAIT_MS;
    bool found;
    char *log;

    for (;;) {
        log = read_log(e);
        found = log_line_has(log, a, b);
        free(log);
        if (found || fp_time_mono_ms() >= end)
            return found;
        ft_sleep_ms(20);
    }
}

/* Asserts the broker log holds neither the token nor any of its parts
 * long enough to be recognisable. */
static void assert_log_free_of(const ft_plugin_env *e, const char *token)
{
    char *log = read_log(e), *copy = strdup(token), *part, *save = NULL;
    bool leaked = strstr(log, token) != NULL;

    assert_non_null(copy);
    for (part = strtok_r(copy, ".", &save); part != NULL && !leaked;
         part = strtok_r(NULL, ".", &save)) {
        if (strlen(part) >= 12 && strstr(log, part) != NULL)
            leaked = true;
    }
    free(copy);
    free(log);
    if (leaked)
        fail_msg("the broker log contains (part of) a token");
}

/*
 * Connects with client_id/user/token over protocol 4 or 5 and asserts the
 * not-authorised CONNACK, a log line "refused client \"<client_id>\"" that
 * contains why, and no trace of the token in the log.
 */
static void expect_refused(const ft_plugin_env *e, const char *client_id, const char *user,
                           const char *token, int protocol, const char *why)
{
    char needle[128];
    ft_mqtt c;
    int rc;

    rc = ft_mqtt_connect(&c, e->mosq.port, client_id, user, token, protocol, CONNECT_MS);
    ft_mqtt_close(&c);
    assert_int_equal(rc, protocol == 5 ? 135 : 5);
    snprintf(needle, sizeof(needle), "refused client \"%s\":", client_id);
    if (!log_wait(e, needle, why))
        fail_msg("no broker log line with '%s' and '%s'", needle, why);
    if (token != NULL)
        assert_log_free_of(e, token);
}

/* Connects and asserts the CONNACK accepted it (then disconnects). */
static void expect_accepted(const ft_plugin_env *e, const char *client_id, const char *user,
                            const char *token, int protocol)
{
    ft_mqtt c;
    int rc;

    rc = ft_mqtt_connect(&c, e->mosq.port, client_id, user, token, protocol, CONNECT_MS);
    ft_mqtt_close(&c);
    assert_int_equal(rc, 0);
}

/* expect_refused under MQTT 3.1.1 and 5, as clients "<name>-4" and
 * "<name>-5". */
static void expect_refused_both(const ft_plugin_env *e, const char *name, const char *user,
                                const char *token, const char *why)
{
    char id[64];
    int protocol;

    for (protocol = 4; protocol <= 5; protocol++) {
        snprintf(id, sizeof(id), "%s-%d", name, protocol);
        expect_refused(e, id, user, token, protocol, why);
    }
}

/* expect_accepted under MQTT 3.1.1 and 5, as clients "<name>-4" and
 * "<name>-5". */
static void expect_accepted_both(const ft_plugin_env *e, const char *name, const char *user,
                                 const char *token)
{
    char id[64];
    int protocol;

    for (protocol = 4; protocol <= 5; protocol++) {
        snprintf(id, sizeof(id), "%s-%d", name, protocol);
        expect_accepted(e, id, user, token, protocol);
    }
}

/* ------------------------------------------------------------ tests */

static void test_valid_token_accepted(void **state)
{
    char *tok = ft_plugin_env_token_now(&env, "alice", FP_ROLE_USER);
    ft_mqtt c;

    (void)state;
    assert_int_equal(ft_mqtt_connect(&c, env.mosq.port, NULL, "alice", tok, 4, 3000), 0);
    assert_int_equal(ft_mqtt_subscribe(&c, "feed/alice", 3000), 1);
    ft_mqtt_close(&c);
    free(tok);
}

static void test_username_must_equal_sub(void **state)
{
    char *tok = ft_plugin_env_token_now(&env, "alice", FP_ROLE_USER);

    (void)state;
    expect_refused_both(&env, "user-ne", "bob", tok, "username does not match the token's sub");
    free(tok);
}

/* The control for every hand-built token below: built the same way but
 * valid, it is accepted, so their refusals come from what they change. */
static void test_hand_built_token_accepted(void **state)
{
    char payload[256], *tok;
    int64_t now = now_s();

    (void)state;
    snprintf(payload, sizeof(payload), "{\"sub\":\"alice\",\"iat\":%lld,\"exp\":%lld}",
             (long long)now, (long long)now + 3600);
    tok = hs256_token(&env, payload);
    expect_accepted_both(&env, "hand-ok", "alice", tok);
    free(tok);
}

static void test_bad_signature_refused(void **state)
{
    char *tok = ft_plugin_env_token_now(&env, "alice", FP_ROLE_USER);
    char *sig = strrchr(tok, '.') + 1;

    (void)state;
    /* A middle character: all six of its bits are signature bits. */
    assert_true(strlen(sig) > 20);
    sig[10] = sig[10] == 'A' ? 'B' : 'A';
    expect_refused_both(&env, "badsig", "alice", tok, "token refused (signature)");
    free(tok);
}

static void test_alg_none_refused(void **state)
{
    char payload[256], *tok;
    int64_t now = now_s();

    (void)state;
    snprintf(payload, sizeof(payload), "{\"sub\":\"alice\",\"iat\":%lld,\"exp\":%lld}",
             (long long)now, (long long)now + 3600);
    tok = ft_plugin_env_hand_token(&env, "{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, NULL);
    assert_int_equal(tok[strlen(tok) - 1], '.'); /* empty signature */
    expect_refused_both(&env, "algnone", "alice", tok, "token refused (algorithm)");
    free(tok);
}

/* HS384 correctly signed, and HS/RS confusion: an RS256 header over an
 * HMAC-SHA256 signature made with the shared secret. */
static void test_other_algorithm_refused(void **state)
{
    char payload[256], *hs384, *rs256;
    int64_t now = now_s();

    (void)state;
    snprintf(payload, sizeof(payload), "{\"sub\":\"alice\",\"iat\":%lld,\"exp\":%lld}",
             (long long)now, (long long)now + 3600);
    hs384 = ft_plugin_env_hand_token(&env, "{\"alg\":\"HS384\",\"typ\":\"JWT\"}", payload,
                                     EVP_sha384());
    rs256 = ft_plugin_env_hand_token(&env, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", payload,
                                     EVP_sha256());
    expect_refused_both(&env, "hs384", "alice", hs384, "token refused (algorithm)");
    expect_refused_both(&env, "rs256", "alice", rs256, "token refused (algorithm)");
    free(hs384);
    free(rs256);
}

/* A private key of tests/data/jwt ("rs256" or "es256"), loaded for
 * minting; path gets the matching public key. */
static unsigned char *data_key(const char *name, fp_jwt_alg alg, char *path, size_t len,
                               size_t *key_len)
{
    const char *src = getenv("FP_SOURCE_DIR");
    unsigned char *key = NULL;
    char err[256];

    assert_non_null(src);
    snprintf(path, len, "%s/tests/data/jwt/%s.key", src, name);
    if (fp_jwt_load_key(alg, path, &key, key_len, err, sizeof(err)) != 0)
        fail_msg("%s: %s", path, err);
    snprintf(path, len, "%s/tests/data/jwt/%s.pub", src, name);
    return key;
}

/* Brokers verifying RS256 and ES256 with the public keys of tests/data/jwt
 * accept the tokens signed with their private keys, and refuse a token of
 * the other algorithm and an HS256 token: the algorithm is pinned. */
static void test_asymmetric_algorithms(void **state)
{
    static const fp_jwt_alg algs[2] = {FP_JWT_RS256, FP_JWT_ES256};
    static const char *const names[2] = {"rs256", "es256"};
    char pub[2][PATH_MAX], *good, *other, *hs;
    unsigned char *key[2];
    size_t key_len[2];
    ft_plugin_env e;
    int64_t now = now_s();
    int i;

    (void)state;
    for (i = 0; i < 2; i++)
        key[i] = data_key(names[i], algs[i], pub[i], sizeof(pub[i]), &key_len[i]);
    for (i = 0; i < 2; i++) {
        assert_int_equal(ft_plugin_env_start_key(&e, names[i], algs[i], pub[i], NULL), 0);
        good = ft_token_mint(algs[i], key[i], key_len[i], "alice", FP_ROLE_USER, now, now + 600);
        other = ft_token_mint(algs[1 - i], key[1 - i], key_len[1 - i], "alice", FP_ROLE_USER, now,
                              now + 600);
        hs = ft_plugin_env_token_now(&e, "alice", FP_ROLE_USER);
        assert_non_null(good);
        assert_non_null(other);
        expect_accepted_both(&e, "asym-ok", "alice", good);
        expect_refused_both(&e, "asym-other", "alice", other, "token refused (algorithm)");
        expect_refused_both(&e, "asym-hs", "alice", hs, "token refused (algorithm)");
        free(good);
        free(other);
        free(hs);
        assert_int_equal(ft_plugin_env_stop(&e), 0);
    }
    for (i = 0; i < 2; i++)
        fp_jwt_key_free(key[i], key_len[i]);
}

static void test_expired_refused(void **state)
{
    int64_t now = now_s();
    char *tok = ft_plugin_env_token(&env, "alice", now - 7200, now - 60, FP_ROLE_USER);

    (void)state;
    expect_refused_both(&env, "expired", "alice", tok, "token refused (expired)");
    free(tok);
}

/* nbf an hour ahead is refused; nbf 2 s ahead is within the default 5 s
 * leeway and accepted. */
static void test_not_yet_valid_refused(void **state)
{
    int64_t now = now_s();
    fp_jwt_mint_claims c = {.sub = "alice", .iat = now, .exp = now + 7200, .nbf = now + 3600};
    char *late, *soon;

    (void)state;
    late = mint(&env, &c);
    c.nbf = now + 2;
    soon = mint(&env, &c);
    expect_refused_both(&env, "nbf", "alice", late, "token refused (not yet valid)");
    expect_accepted(&env, "nbf-leeway", "alice", soon, 4);
    free(late);
    free(soon);
}

/* A second broker configured with an issuer, an audience and a maximum
 * token lifetime of two hours. */
static void test_issuer_and_audience(void **state)
{
    static ft_plugin_env env2;
    int64_t now = now_s();
    fp_jwt_mint_claims c = {
        .sub = "alice", .iat = now, .exp = now + 3600, .iss = "feedpush", .aud = "feed"};
    char payload[256], *ok, *bad_iss, *no_iss, *bad_aud, *no_aud, *aud_list, *longest, *too_long;

    (void)state;
    assert_int_equal(ft_plugin_env_start(&env2, "n2",
                                         "plugin_opt_issuer feedpush\nplugin_opt_audience feed\n"
                                         "plugin_opt_max_lifetime 7200"),
                     0);
    ok = mint(&env2, &c);
    c.iss = "feedpush-evil";
    bad_iss = mint(&env2, &c);
    c.iss = NULL;
    no_iss = mint(&env2, &c);
    c.iss = "feedpush";
    c.aud = "feeds";
    bad_aud = mint(&env2, &c);
    c.aud = NULL;
    no_aud = mint(&env2, &c);
    c.aud = "feed";
    c.exp = now + 7200;
    longest = mint(&env2, &c);
    c.exp = now + 7201;
    too_long = mint(&env2, &c);
    snprintf(payload, sizeof(payload),
             "{\"sub\":\"alice\",\"iat\":%lld,\"exp\":%lld,\"iss\":\"feedpush\","
             "\"aud\":[\"web\",\"feed\"]}",
             (long long)now, (long long)now + 3600);
    aud_list = hs256_token(&env2, payload);

    expect_accepted_both(&env2, "issaud-ok", "alice", ok);
    expect_accepted(&env2, "issaud-list", "alice", aud_list, 4);
    expect_refused_both(&env2, "iss-bad", "alice", bad_iss, "token refused (issuer)");
    expect_refused(&env2, "iss-none", "alice", no_iss, 4, "token refused (issuer)");
    expect_refused_both(&env2, "aud-bad", "alice", bad_aud, "token refused (audience)");
    expect_refused(&env2, "aud-none", "alice", no_aud, 4, "token refused (audience)");
    expect_accepted(&env2, "life-max", "alice", longest, 5);
    expect_refused_both(&env2, "life-over", "alice", too_long, "token refused (lifetime)");
    /* A token of the first broker (other secret) is no good here. */
    free(ok);
    ok = ft_plugin_env_token_now(&env, "alice", FP_ROLE_USER);
    expect_refused(&env2, "other-secret", "alice", ok, 4, "token refused (signature)");

    free(ok);
    free(bad_iss);
    free(no_iss);
    free(bad_aud);
    free(no_aud);
    free(aud_list);
    free(longest);
    free(too_long);
    assert_int_equal(ft_plugin_env_stop(&env2), 0);
}

static void test_missing_sub_or_exp_refused(void **state)
{
    char payload[256], *no_sub, *no_exp;
    int64_t now = now_s();

    (void)state;
    snprintf(payload, sizeof(payload), "{\"iat\":%lld,\"exp\":%lld}", (long long)now,
             (long long)now + 3600);
    no_sub = hs256_token(&env, payload);
    snprintf(payload, sizeof(payload), "{\"sub\":\"alice\",\"iat\":%lld}", (long long)now);
    no_exp = hs256_token(&env, payload);
    expect_refused_both(&env, "nosub", "alice", no_sub, "token refused (sub)");
    expect_refused_both(&env, "noexp", "alice", no_exp, "token refused (exp missing)");
    free(no_sub);
    free(no_exp);
}

/* Subs that would be topic levels or wildcards; username == sub. */
static void test_invalid_sub_refused(void **state)
{
    static const char *const subs[] = {"a/b", "a+b", "#"};
    char payload[256], client_id[32], *tok;
    int64_t now = now_s();
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        snprintf(payload, sizeof(payload), "{\"sub\":\"%s\",\"iat\":%lld,\"exp\":%lld}", subs[i],
                 (long long)now, (long long)now + 3600);
        tok = hs256_token(&env, payload);
        snprintf(client_id, sizeof(client_id), "badsub-%zu-4", i);
        expect_refused(&env, client_id, subs[i], tok, 4, "token refused (sub)");
        snprintf(client_id, sizeof(client_id), "badsub-%zu-5", i);
        expect_refused(&env, client_id, subs[i], tok, 5, "token refused (sub)");
        free(tok);
    }
}

/* A token of pad_len padding characters in an extra claim. */
static char *padded_token(size_t pad_len, int64_t now)
{
    char *payload = malloc(pad_len + 128), *tok;
    int n;

    assert_non_null(payload);
    n = snprintf(payload, pad_len + 128, "{\"sub\":\"alice\",\"iat\":%lld,\"exp\":%lld,\"pad\":\"",
                 (long long)now, (long long)now + 3600);
    memset(payload + n, 'x', pad_len);
    snprintf(payload + n + pad_len, 8, "\"}");
    tok = hs256_token(&env, payload);
    free(payload);
    return tok;
}

/* The longest token that fits FP_JWT_MAX_BYTES is accepted, the first
 * longer one is refused. */
static void test_token_over_8k_refused(void **state)
{
    char *fits = NULL, *over = NULL, *tok;
    int64_t now = now_s();
    size_t pad;

    (void)state;
    for (pad = 5900; over == NULL; pad++) {
        tok = padded_token(pad, now);
        if (strlen(tok) <= FP_JWT_MAX_BYTES) {
            free(fits);
            fits = tok;
        } else {
            over = tok;
        }
    }
    assert_non_null(fits);
    assert_true(strlen(fits) >= FP_JWT_MAX_BYTES - 2);
    assert_true(strlen(over) > FP_JWT_MAX_BYTES);
    expect_accepted(&env, "long-fits", "alice", fits, 4);
    expect_refused_both(&env, "long-over", "alice", over, "token refused (too long)");
    free(fits);
    free(over);
}

static void test_no_password_refused(void **state)
{
    (void)state;
    expect_refused_both(&env, "nopw", "alice", NULL, "no username or no password");
    expect_refused_both(&env, "anon", NULL, NULL, "no username or no password");
}

/* Client ids are the client's choice: the log line carries at most 64
 * bytes of one. */
static void test_long_client_id_capped_in_log(void **state)
{
    char client_id[128], needle[128], *log;
    ft_mqtt c;
    int rc;

    (void)state;
    memset(client_id, 'c', 64);
    snprintf(client_id + 64, sizeof(client_id) - 64, "-TAIL-BEYOND-64");
    rc = ft_mqtt_connect(&c, env.mosq.port, client_id, "alice", NULL, 4, CONNECT_MS);
    ft_mqtt_close(&c);
    assert_int_equal(rc, 5);
    /* The 64-byte prefix closed by the quote: nothing of the tail. */
    snprintf(needle, sizeof(needle), "refused client \"%.64s\":", client_id);
    assert_true(log_wait(&env, needle, "no username or no password"));
    log = read_log(&env);
    rc = strstr(log, "TAIL-BEYOND") != NULL;
    free(log);
    assert_false(rc);
}

static void on_connect_rc(struct mosquitto *m, void *obj, int rc, int flags,
                          const mosquitto_property *props)
{
    (void)m;
    (void)flags;
    (void)props;
    *(int *)obj = rc;
}

/* MQTT 5 enhanced authentication (an authentication method in CONNECT)
 * bypasses MOSQ_EVT_BASIC_AUTH; with no handler for it the broker must
 * refuse, even with a valid token as password. */
static void test_v5_enhanced_auth_refused(void **state)
{
    char *tok = ft_plugin_env_token_now(&env, "alice", FP_ROLE_USER);
    mosquitto_property *props = NULL;
    struct mosquitto *m;
    int connack = -1, rc;
    int64_t end;

    (void)state;
    m = mosquitto_new("extauth-5", true, &connack);
    assert_non_null(m);
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_connect_v5_callback_set(m, on_connect_rc);
    assert_int_equal(mosquitto_username_pw_set(m, "alice", tok), MOSQ_ERR_SUCCESS);
    assert_int_equal(
        mosquitto_property_add_string(&props, MQTT_PROP_AUTHENTICATION_METHOD, "SCRAM-SHA-256"),
        MOSQ_ERR_SUCCESS);
    rc = mosquitto_connect_bind_v5(m, "127.0.0.1", env.mosq.port, 60, NULL, props);
    mosquitto_property_free_all(&props);
    end = fp_time_mono_ms() + CONNECT_MS;
    while (rc == MOSQ_ERR_SUCCESS && connack < 0 && fp_time_mono_ms() < end) {
        if (mosquitto_loop(m, 50, 1) != MOSQ_ERR_SUCCESS)
            break;
    }
    mosquitto_destroy(m);
    free(tok);
    assert_int_equal(rc, MOSQ_ERR_SUCCESS);
    /* 140: bad authentication method. */
    assert_int_equal(connack, 140);
}

/* Raises the revocation of uid the way the control plane does: the key
 * revoked:<uid> and a message "<uid> <before>" on the channel revoked,
 * which the plugin must be listening to. */
static void revoke_user(const ft_plugin_env *e, const char *uid, int64_t before)
{
    redisContext *r = ft_redis_connect(e->redis.port);
    char msg[96];

    ft_redis_ok(r, "SET revoked:%s %lld", uid, (long long)before);
    snprintf(msg, sizeof(msg), "%s %lld", uid, (long long)before);
    /* At least the plugin's subscription. */
    assert_true(ft_redis_int(r, "PUBLISH revoked %s", msg) >= 1);
    redisFree(r);
}

static void test_revoked_user_old_tokens_refused(void **state)
{
    int64_t before = now_s(), end;
    char *old = ft_plugin_env_token(&env, "rvk", before - 60, before + 3600, FP_ROLE_USER);
    char *no_iat = ft_plugin_env_token(&env, "rvk", 0, before + 3600, FP_ROLE_USER);
    char *at_cut = ft_plugin_env_token(&env, "rvk", before, before + 3600, FP_ROLE_USER);
    char *fresh = ft_plugin_env_token(&env, "rvk", before + 1, before + 3600, FP_ROLE_USER);
    ft_mqtt live, c;
    int rc;

    (void)state;
    /* Valid until the revocation. */
    assert_int_equal(ft_mqtt_connect(&live, env.mosq.port, "rvk-live", "rvk", old, 4, CONNECT_MS),
                     0);
    revoke_user(&env, "rvk", before);
    end = fp_time_mono_ms() + 2000;
    for (;;) {
        rc = ft_mqtt_connect(&c, env.mosq.port, "rvk-old", "rvk", old, 4, CONNECT_MS);
        ft_mqtt_close(&c);
        if (rc != 0 || fp_time_mono_ms() >= end)
            break;
        ft_sleep_ms(50);
    }
    assert_int_equal(rc, 5);
    assert_true(log_wait(&env, "refused client \"rvk-old\":", "at or before its revocation"));
    assert_log_free_of(&env, old);
    expect_refused(&env, "rvk-old-5", "rvk", old, 5, "at or before its revocation");
    expect_refused(&env, "rvk-noiat", "rvk", no_iat, 4, "at or before its revocation");
    /* Issued in the revocation's own second: refused too (fp_jwt_revoked). */
    expect_refused(&env, "rvk-cut", "rvk", at_cut, 4, "at or before its revocation");
    /* The live session of the old token is kicked. */
    assert_true(ft_mqtt_wait_closed(&live, 2000) >= 0);
    ft_mqtt_close(&live);
    assert_true(log_wait(&env, "disconnecting client \"rvk-live\"", "user revoked"));
    /* A token issued after the cut-off is fine and stays connected. */
    assert_int_equal(ft_mqtt_connect(&c, env.mosq.port, "rvk-new", "rvk", fresh, 4, CONNECT_MS), 0);
    assert_int_equal(ft_mqtt_subscribe(&c, "feed/rvk", 3000), 1);
    ft_mqtt_pump(&c, 300);
    assert_false(c.disconnected);
    ft_mqtt_close(&c);
    free(old);
    free(no_iat);
    free(at_cut);
    free(fresh);
}

/* Another user may not take over a live client id (it would kick its
 * owner); once the owner is gone the id is free again. */
static void test_client_id_of_other_user_refused(void **state)
{
    char *alice = ft_plugin_env_token_now(&env, "alice", FP_ROLE_USER);
    char *bob = ft_plugin_env_token_now(&env, "bob", FP_ROLE_USER);
    int64_t end;
    ft_mqtt a, b;
    int rc;

    (void)state;
    assert_int_equal(ft_mqtt_connect(&a, env.mosq.port, "shared-1", "alice", alice, 4, CONNECT_MS),
                     0);
    expect_refused(&env, "shared-1", "bob", bob, 4, "client id is in use by another user");
    expect_refused(&env, "shared-1", "bob", bob, 5, "client id is in use by another user");
    /* alice's session is untouched and still authorised. */
    ft_mqtt_pump(&a, 100);
    assert_false(a.disconnected);
    assert_int_equal(ft_mqtt_subscribe(&a, "feed/alice", 3000), 1);
    ft_mqtt_close(&a);
    end = fp_time_mono_ms() + 2000;
    for (;;) {
        rc = ft_mqtt_connect(&b, env.mosq.port, "shared-1", "bob", bob, 4, CONNECT_MS);
        ft_mqtt_close(&b);
        if (rc == 0 || fp_time_mono_ms() >= end)
            break;
        ft_sleep_ms(50);
    }
    assert_int_equal(rc, 0);
    free(alice);
    free(bob);
}

/* The same user reusing their own client id takes the session over; the
 * new session keeps the id (another user is still refused). */
static void test_client_id_takeover_by_same_user(void **state)
{
    char *alice = ft_plugin_env_token_now(&env, "alice", FP_ROLE_USER);
    char *bob = ft_plugin_env_token_now(&env, "bob", FP_ROLE_USER);
    ft_mqtt a1, a2;

    (void)state;
    assert_int_equal(ft_mqtt_connect(&a1, env.mosq.port, "shared-2", "alice", alice, 4, CONNECT_MS),
                     0);
    assert_int_equal(ft_mqtt_connect(&a2, env.mosq.port, "shared-2", "alice", alice, 5, CONNECT_MS),
                     0);
    assert_true(ft_mqtt_wait_closed(&a1, 2000) >= 0);
    ft_mqtt_close(&a1);
    assert_int_equal(ft_mqtt_subscribe(&a2, "feed/alice", 3000), 1);
    expect_refused(&env, "shared-2", "bob", bob, 4, "client id is in use by another user");
    ft_mqtt_pump(&a2, 100);
    assert_false(a2.disconnected);
    ft_mqtt_close(&a2);
    free(alice);
    free(bob);
}

/* Bridge client ids are reserved for services; quotes in a client id are
 * neutralised in the log line that quotes it. */
static void test_reserved_and_quoted_client_ids(void **state)
{
    char *alice = ft_plugin_env_token_now(&env, "alice", FP_ROLE_USER);
    char *svc = ft_plugin_env_token_now(&env, "bridge-n1", FP_ROLE_SERVICE);
    ft_mqtt c;

    (void)state;
    expect_refused(&env, "feed-bridge-n1", "alice", alice, 4,
                   "client ids starting with \"feed-bridge-\" are reserved for services");
    assert_int_equal(ft_mqtt_connect(&c, env.mosq.port, "feed-bridge-n1", "bridge-n1", svc, 4,
                                     CONNECT_MS),
                     0);
    ft_mqtt_close(&c);
    assert_int_not_equal(ft_mqtt_connect(&c, env.mosq.port, "q\": forged", "bob", alice, 4,
                                         CONNECT_MS),
                         0);
    ft_mqtt_close(&c);
    assert_true(log_wait(&env, "refused client \"q?: forged\"", "username does not match"));
    free(alice);
    free(svc);
}

/* clang-format off */
FT_MAIN(ft_mqtt_run_group, setup, teardown,
        cmocka_unit_test(test_valid_token_accepted),
        cmocka_unit_test(test_username_must_equal_sub),
        cmocka_unit_test(test_hand_built_token_accepted),
        cmocka_unit_test(test_bad_signature_refused),
        cmocka_unit_test(test_alg_none_refused),
        cmocka_unit_test(test_other_algorithm_refused),
        cmocka_unit_test(test_asymmetric_algorithms),
        cmocka_unit_test(test_expired_refused),
        cmocka_unit_test(test_not_yet_valid_refused),
        cmocka_unit_test(test_issuer_and_audience),
        cmocka_unit_test(test_missing_sub_or_exp_refused),
        cmocka_unit_test(test_invalid_sub_refused),
        cmocka_unit_test(test_token_over_8k_refused),
        cmocka_unit_test(test_no_password_refused),
        cmocka_unit_test(test_long_client_id_capped_in_log),
        cmocka_unit_test(test_v5_enhanced_auth_refused),
        cmocka_unit_test(test_revoked_user_old_tokens_refused),
        cmocka_unit_test(test_client_id_of_other_user_refused),
        cmocka_unit_test(test_client_id_takeover_by_same_user),
        cmocka_unit_test(test_reserved_and_quoted_client_ids))
/* clang-format on */
