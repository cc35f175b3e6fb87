/*
 * fp_time.c - see fp_time.h. clock_gettime() cannot fail for these clocks
 * on Linux, so its result is not checked.
 */
#include "fp_time.h"

int64_t fp_time_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t fp_time_mono_us(void)
{
    return fp_time_mono_ns() / 1000;
}

int64_t fp_time_mono_ms(void)
{
    return fp_time_mono_ns() / 1000000;
}

int64_t fp_time_real_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The instant ms after now on clock. */
static struct timespec time__deadline(clockid_t clock, int ms)
{
    struct timespec ts;

    clock_gettime(clock, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

struct timespec fp_time_real_deadline(int ms)
{
    return time__deadline(CLOCK_REALTIME, ms);
}

struct timespec fp_time_mono_deadline(int ms)
{
    return time__deadline(CLOCK_MONOTONIC, ms);
}

int fp_time_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);

    if (rc != 0)
        return rc;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}
