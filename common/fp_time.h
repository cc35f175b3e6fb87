/*
 * fp_time.h - the clocks every component reads.
 *
 * Durations, timeouts and rates use the monotonic clock (never jumps);
 * timestamps that leave the process (post ids, created_at, counters'
 * updated_ms) use the real-time clock.
 */
#ifndef FP_TIME_H
#define FP_TIME_H

#include <stdint.h>
#include <time.h>

/* The monotonic clock in nanoseconds, microseconds and milliseconds. */
int64_t fp_time_mono_ns(void);
int64_t fp_time_mono_us(void);
int64_t fp_time_mono_ms(void);

/* Milliseconds since the Unix epoch (real-time clock). */
int64_t fp_time_real_ms(void);

/* The real-time instant ms from now, as pthread_cond_timedwait() takes it
 * (a condition variable with the default clock). ms >= 0. */
struct timespec fp_time_real_deadline(int ms);

#endif
