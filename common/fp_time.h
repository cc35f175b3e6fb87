/*
 * fp_time.h - the clocks every component reads.
 *
 * Durations, timeouts and rates use the monotonic clock (never jumps);
 * timestamps that leave the process (post ids, created_at, counters'
 * updated_ms) use the real-time clock.
 */
#ifndef FP_TIME_H
#define FP_TIME_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* The monotonic clock in nanoseconds, microseconds and milliseconds. */
int64_t fp_time_mono_ns(void);
int64_t fp_time_mono_us(void);
int64_t fp_time_mono_ms(void);

/* Milliseconds since the Unix epoch (real-time clock). */
int64_t fp_time_real_ms(void);

/* The real-time instant ms from now, as pthread_cond_timedwait() takes it
 * (a condition variable with the default clock) and pthread_timedjoin_np().
 * ms >= 0. */
struct timespec fp_time_real_deadline(int ms);

/* The monotonic instant ms from now, for pthread_cond_timedwait() on a
 * condition variable made by fp_time_cond_init(). ms >= 0. */
struct timespec fp_time_mono_deadline(int ms);

/* Initialises cond for timed waits on the monotonic clock, which a step
 * of the real-time clock (NTP, an operator) cannot lengthen or shorten.
 * Returns 0 or an errno value, as pthread_cond_init(). */
int fp_time_cond_init(pthread_cond_t *cond);

#endif
