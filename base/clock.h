/*
 * clock - monotonic and wall-clock time in nanoseconds
 *
 * CLOCK_MONOTONIC is system-wide, so monotonic stamps written into shared memory by one
 * process are comparable in another.
 */
#ifndef RINGMAIL_CLOCK_H
#define RINGMAIL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t clock_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define CLOCK_MS(x) ((uint64_t)(x) * 1000000u)
#define CLOCK_SEC(x) ((uint64_t)(x) * 1000000000u)

#endif
