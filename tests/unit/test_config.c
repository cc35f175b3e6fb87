/* Unit tests for common/fp_config: file, environment, types, ranges, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fp_config.h"
#include "ft_main.h"

typedef struct {
    char *redis_host;
    int64_t redis_port;
    bool dev_mode;
    char *node_id;
} test_cfg;

static const fp_conf_opt opts[] = {
    {"redis_host", FP_CONF_STRING, offsetof(test_cfg, redis_host), "127.0.0.1", 0, 0, false,
     "Redis host"},
    {"redis_port", FP_CONF_INT, offsetof(test_cfg, redis_port), "6379", 1, 65535, false,
     "Redis port"},
    {"dev_mode", FP_CONF_BOOL, offsetof(test_cfg, dev_mode), "false", 0, 0, false, "dev mode"},
    {"node_id", FP_CONF_STRING, offsetof(test_cfg, node_id), NULL, 0, 0, true, "node id"},
};
#define N_OPTS (sizeof(opts) / sizeof(opts[0]))
#define PREFIX "FPTEST_"

static char path[64];

/* Writes text to a fresh temp file whose name is left in path. */
static void write_conf(const char *text)
{
    int fd;

    snprintf(path, sizeof(path), "/tmp/fp-test-config-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static int teardown(void **state)
{
    (void)state;
    if (path[0] != '\0')
        unlink(path);
    path[0] = '\0';
    unsetenv(PREFIX "REDIS_PORT");
    unsetenv(PREFIX "NODE_ID");
    unsetenv(PREFIX "DEV_MODE");
    return 0;
}

static void test_file_and_defaults(void **state)
{
    test_cfg c = {0};
    char err[FP_CONF_ERR_MAX];

    (void)state;
    write_conf("# a comment\n\n  node_id   n1  \nredis_port 7000\ndev_mode yes\n");
    assert_int_equal(fp_conf_load(opts, N_OPTS, &c, path, PREFIX, err, sizeof(err)), 0);
    assert_string_equal(c.redis_host, "127.0.0.1"); /* default */
    assert_int_equal(c.redis_port, 7000);
    assert_true(c.dev_mode);
    assert_string_equal(c.node_id, "n1");
    fp_conf_free(opts, N_OPTS, &c);
    assert_null(c.redis_host);
    assert_null(c.node_id);
}

/* The fields may hold garbage before a load (found by fuzz_config: a
 * required string without a default used to be left as it was, so the
 * garbage passed the required check and was freed). */
static void test_fields_overwritten(void **state)
{
    test_cfg c;
    char err[FP_CONF_ERR_MAX];

    (void)state;
    memset(&c, 0xa5, sizeof(c));
    write_conf("redis_port 7000\n");
    assert_int_equal(fp_conf_load(opts, N_OPTS, &c, path, PREFIX, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "node_id"));
    unlink(path);
    memset(&c, 0xa5, sizeof(c));
    write_conf("node_id n1\n");
    assert_int_equal(fp_conf_load(opts, N_OPTS, &c, path, PREFIX, err, sizeof(err)), 0);
    assert_string_equal(c.node_id, "n1");
    assert_int_equal(c.redis_port, 6379);
    assert_false(c.dev_mode);
    fp_conf_free(opts, N_OPTS, &c);
}

static void test_env_overrides_file(void **state)
{
    test_cfg c = {0};
    char err[FP_CONF_ERR_MAX];

    (void)state;
    write_conf("node_id n1\nredis_port 7000\n");
    setenv(PREFIX "REDIS_PORT", "7001", 1);
    setenv(PREFIX "NODE_ID", "from-env", 1);
    assert_int_equal(fp_conf_load(opts, N_OPTS, &c, path, PREFIX, err, sizeof(err)), 0);
    assert_int_equal(c.redis_port, 7001);
    assert_string_equal(c.node_id, "from-env");
    fp_conf_free(opts, N_OPTS, &c);
}

static void test_no_file_env_only(void **state)
{
    test_cfg c = {0};
    char err[FP_CONF_ERR_MAX];

    (void)state;
    setenv(PREFIX "NODE_ID", "n9", 1);
    assert_int_equal(fp_conf_load(opts, N_OPTS, &c, NULL, PREFIX, err, sizeof(err)), 0);
    assert_string_equal(c.node_id, "n9");
    assert_int_equal(c.redis_port, 6379);
    fp_conf_free(opts, N_OPTS, &c);
}

/* fp_conf_load_part: the file's other keys are skipped, the table's keys
 * are still checked, and the environment still overrides the file. */
static void test_part_skips_other_keys(void **state)
{
    test_cfg c = {0};
    char err[FP_CONF_ERR_MAX];

    (void)state;
    write_conf("amqp_host mq\nnode_id n1\nredis_port 7000\nfeed_length 10\n");
    assert_int_equal(fp_conf_load(opts, N_OPTS, &c, path, PREFIX, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "unknown key \"amqp_host\""));
    setenv(PREFIX "REDIS_PORT", "7001", 1);
    assert_int_equal(fp_conf_load_part(opts, N_OPTS, &c, path, PREFIX, err, sizeof(err)), 0);
    assert_string_equal(c.node_id, "n1");
    assert_int_equal(c.redis_port, 7001);
    fp_conf_free(opts, N_OPTS, &c);
    write_conf("amqp_host mq\nnode_id n1\nredis_port 0\n");
    assert_int_equal(fp_conf_load_part(opts, N_OPTS, &c, path, PREFIX, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, ":3:"));
    assert_null(c.node_id);
}

/* Loads text and expects failure with an error containing want. */
static void expect_error(const char *text, int want_rc, const char *want)
{
    test_cfg c = {0};
    char err[FP_CONF_ERR_MAX];

    write_conf(text);
    assert_int_equal(fp_conf_load(opts, N_OPTS, &c, path, PREFIX, err, sizeof(err)), want_rc);
    if (strstr(err, want) == NULL)
        fail_msg("error \"%s\" does not contain \"%s\"", err, want);
    /* Nothing is left allocated after a failure. */
    assert_null(c.redis_host);
    assert_null(c.node_id);
    unlink(path);
    path[0] = '\0';
}

static void test_errors_name_file_and_line(void **state)
{
    (void)state;
    expect_error("node_id n1\nredis_hots x\n", -EINVAL, ":2: unknown key \"redis_hots\"");
    expect_error("node_id n1\n\nredis_port 70000\n", -EINVAL,
                 ":3: redis_port: 70000 is out of range 1..65535");
    expect_error("node_id n1\nredis_port 12ab\n", -EINVAL, ":2: redis_port: \"12ab\" is not an integer");
    expect_error("node_id n1\nredis_port 99999999999999999999\n", -EINVAL, "is not an integer");
    expect_error("node_id n1\ndev_mode maybe\n", -EINVAL, ":2: dev_mode: \"maybe\" is not a boolean");
    expect_error("node_id n1\nnode_id n2\n", -EINVAL, ":2: duplicate key \"node_id\" (first set on line 1)");
    expect_error("node_id\n", -EINVAL, ":1: key \"node_id\" has no value");
    expect_error("redis_port 1\n", -EINVAL, "required option \"node_id\" is not set");
    /* The path itself starts the message. */
    expect_error("bogus 1\n", -EINVAL, "/tmp/fp-test-config-");
}

/* A value of "" is the empty string (www_dir "" serves no browser
 * client); quotes anywhere else are the value's own. A required string
 * set to "" is not set. */
static void test_empty_string_value(void **state)
{
    test_cfg c = {0};
    char err[FP_CONF_ERR_MAX];

    (void)state;
    write_conf("node_id n1\nredis_host \"\"\n");
    assert_int_equal(fp_conf_load(opts, N_OPTS, &c, path, PREFIX, err, sizeof(err)), 0);
    assert_string_equal(c.redis_host, "");
    fp_conf_free(opts, N_OPTS, &c);
    unlink(path);
    write_conf("node_id \"n1\"\nredis_host \"\" x\n");
    assert_int_equal(fp_conf_load(opts, N_OPTS, &c, path, PREFIX, err, sizeof(err)), 0);
    assert_string_equal(c.node_id, "\"n1\"");
    assert_string_equal(c.redis_host, "\"\" x");
    fp_conf_free(opts, N_OPTS, &c);
    unlink(path);
    path[0] = '\0';
    expect_error("node_id \"\"\n", -EINVAL, "required option \"node_id\" is not set");
}

static void test_env_error_names_variable(void **state)
{
    test_cfg c = {0};
    char err[FP_CONF_ERR_MAX];

    (void)state;
    setenv(PREFIX "NODE_ID", "n1", 1);
    setenv(PREFIX "REDIS_PORT", "0", 1);
    assert_int_equal(fp_conf_load(opts, N_OPTS, &c, NULL, PREFIX, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "environment FPTEST_REDIS_PORT: redis_port: 0 is out of range"));
    assert_null(c.node_id);
}

static void test_missing_file(void **state)
{
    test_cfg c = {0};
    char err[FP_CONF_ERR_MAX];

    (void)state;
    assert_int_equal(fp_conf_load(opts, N_OPTS, &c, "/nonexistent/feedpush.conf", PREFIX, err,
                                  sizeof(err)),
                     -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/feedpush.conf: cannot open"));
}

static void test_overlong_line(void **state)
{
    char *text = malloc(10000);

    (void)state;
    assert_non_null(text);
    memcpy(text, "node_id ", 8);
    memset(text + 8, 'a', 9000);
    memcpy(text + 9008, "\n", 2);
    expect_error(text, -EINVAL, ":1: line longer than");
    free(text);
}

static void test_usage_lists_every_key(void **state)
{
    char buf[4096] = {0};
    FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");

    (void)state;
    assert_non_null(f);
    fp_conf_usage(opts, N_OPTS, PREFIX, f);
    fclose(f);
    assert_non_null(strstr(buf, "redis_port"));
    assert_non_null(strstr(buf, "FPTEST_NODE_ID"));
    assert_non_null(strstr(buf, "(required)"));
}

/* clang-format off */
FT_MAIN(ft_unit_run, NULL, NULL,
        cmocka_unit_test_teardown(test_file_and_defaults, teardown),
        cmocka_unit_test_teardown(test_fields_overwritten, teardown),
        cmocka_unit_test_teardown(test_empty_string_value, teardown),
        cmocka_unit_test_teardown(test_env_overrides_file, teardown),
        cmocka_unit_test_teardown(test_no_file_env_only, teardown),
        cmocka_unit_test_teardown(test_part_skips_other_keys, teardown),
        cmocka_unit_test_teardown(test_errors_name_file_and_line, teardown),
        cmocka_unit_test_teardown(test_env_error_names_variable, teardown),
        cmocka_unit_test_teardown(test_missing_file, teardown),
        cmocka_unit_test_teardown(test_overlong_line, teardown),
        cmocka_unit_test_teardown(test_usage_lists_every_key, teardown))
/* clang-format on */
