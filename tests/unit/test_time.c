/* fp_time: the clocks. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "fp_time.h"
#include "ft_main.h"

static void test_monotonic_units(void **state)
{
    int64_t ns = fp_time_mono_ns(), us = fp_time_mono_us(), ms = fp_time_mono_ms();
    int64_t ns2 = fp_time_mono_ns();
    struct timespec pause = {0, 20 * 1000000L};

    (void)state;
    assert_true(ns > 0);
    assert_true(ns2 >= ns);
    /* Read in this order, each is no earlier than the one before it. */
    assert_true(us >= ns / 1000);
    assert_true(ms >= us / 1000);
    assert_true(ns2 / 1000000 >= ms);
    nanosleep(&pause, NULL);
    assert_true(fp_time_mono_ms() - ms >= 20);
}

static void test_real(void **state)
{
    int64_t ms = fp_time_real_ms();
    int64_t s = (int64_t)time(NULL);

    (void)state;
    /* Within a second of time(2), in milliseconds since the epoch. */
    assert_true(ms / 1000 >= s - 1 && ms / 1000 <= s + 1);
}

static int64_t ts_ns(struct timespec t)
{
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* The deadline is ms after the instant it was taken, normalised. */
static void test_deadline(void **state)
{
    struct timespec before, after, d;
    int ms;

    (void)state;
    for (ms = 0; ms <= 2500; ms += 250) {
        clock_gettime(CLOCK_REALTIME, &before);
        d = fp_time_real_deadline(ms);
        clock_gettime(CLOCK_REALTIME, &after);
        assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
        assert_true(ts_ns(d) >= ts_ns(before) + (int64_t)ms * 1000000);
        assert_true(ts_ns(d) <= ts_ns(after) + (int64_t)ms * 1000000);
    }
}

/*
 * A condition variable from fp_time_cond_init() takes monotonic deadlines:
 * a wait until 100 ms from now lasts at least 100 ms by the monotonic
 * clock. On the default (real-time) clock the same instant, counted from
 * boot, lies decades in the past and the wait would end at once.
 */
static void test_mono_cond_wait(void **state)
{
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cond;
    struct timespec until, d = fp_time_mono_deadline(0), now;
    int64_t t0;
    int rc = 0;

    (void)state;
    clock_gettime(CLOCK_MONOTONIC, &now);
    assert_true(ts_ns(d) <= ts_ns(now) && ts_ns(now) - ts_ns(d) < 1000000000);
    assert_int_equal(fp_time_cond_init(&cond), 0);
    pthread_mutex_lock(&lock);
    t0 = fp_time_mono_ms();
    until = fp_time_mono_deadline(100);
    while (rc == 0)
        rc = pthread_cond_timedwait(&cond, &lock, &until);
    pthread_mutex_unlock(&lock);
    assert_int_equal(rc, ETIMEDOUT);
    assert_true(fp_time_mono_ms() - t0 >= 100);
    pthread_cond_destroy(&cond);
}

/* clang-format off */
FT_MAIN(ft_unit_run, NULL, NULL,
        cmocka_unit_test(test_monotonic_units),
        cmocka_unit_test(test_real),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_mono_cond_wait))
/* clang-format on */
