/* Unit tests for common/fp_log: format, levels, sanitising, truncation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fp_log.h"
#include "ft_main.h"

static int pipe_fds[2];

static int setup(void **state)
{
    (void)state;
    if (pipe(pipe_fds) != 0)
        return -1;
    fp_log_set_fd(pipe_fds[1]);
    fp_log_set_component("unit");
    fp_log_set_level(FP_LOG_INFO);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fp_log_set_fd(STDERR_FILENO);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return 0;
}

/* Reads what is in the pipe now (the writer never blocks for these sizes). */
static size_t drain(char *buf, size_t len)
{
    ssize_t n;

    fp_log(FP_LOG_ERROR, "END"); /* a marker so the read never waits forever */
    n = read(pipe_fds[0], buf, len - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    return (size_t)n;
}

static void test_format(void **state)
{
    char buf[4096];

    (void)state;
    fp_info("hello %d", 42);
    drain(buf, sizeof(buf));
    /* 2026-11-23T17:54:13.123Z INFO  [unit] hello 42 */
    assert_int_equal(buf[4], '-');
    assert_int_equal(buf[10], 'T');
    assert_int_equal(buf[23], 'Z');
    assert_non_null(strstr(buf, " INFO  [unit] hello 42\n"));
}

static void test_level_filter(void **state)
{
    char buf[4096];

    (void)state;
    fp_log_set_level(FP_LOG_WARN);
    fp_info("dropped");
    fp_warn("kept");
    drain(buf, sizeof(buf));
    assert_null(strstr(buf, "dropped"));
    assert_non_null(strstr(buf, "WARN  [unit] kept"));
    fp_log_set_level(FP_LOG_INFO);
}

static void test_control_chars_cannot_forge_lines(void **state)
{
    char buf[4096];
    char *first_nl;

    (void)state;
    fp_info("user %s", "evil\n2026-01-01T00:00:00.000Z ERROR [unit] forged");
    drain(buf, sizeof(buf));
    first_nl = strchr(buf, '\n');
    assert_non_null(first_nl);
    /* The forged text stayed on the first line, its newline replaced. */
    assert_true(strstr(buf, "forged") < first_nl);
    assert_non_null(strstr(buf, "evil?2026"));
}

static void test_long_line_truncated(void **state)
{
    char big[FP_LOG_LINE_MAX * 2];
    char buf[FP_LOG_LINE_MAX * 4];
    char *nl;

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    fp_info("%s", big);
    drain(buf, sizeof(buf));
    nl = strchr(buf, '\n');
    assert_non_null(nl);
    assert_int_equal((size_t)(nl - buf), FP_LOG_LINE_MAX);
    assert_memory_equal(nl - 3, "...", 3);
}

static void test_level_parse(void **state)
{
    fp_log_level l;

    (void)state;
    assert_int_equal(fp_log_level_parse("debug", &l), 0);
    assert_int_equal(l, FP_LOG_DEBUG);
    assert_int_equal(fp_log_level_parse("WARN", &l), 0);
    assert_int_equal(l, FP_LOG_WARN);
    assert_int_equal(fp_log_level_parse("off", &l), 0);
    assert_int_equal(l, FP_LOG_OFF);
    assert_int_equal(fp_log_level_parse("verbose", &l), -EINVAL);
    assert_int_equal(fp_log_level_parse(NULL, &l), -EINVAL);
}

/* clang-format off */
FT_MAIN(ft_unit_run, setup, teardown,
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_level_filter),
        cmocka_unit_test(test_control_chars_cannot_forge_lines),
        cmocka_unit_test(test_long_line_truncated),
        cmocka_unit_test(test_level_parse))
/* clang-format on */
