/* clock.h -- the monotonic clock in seconds, for rates and phase timings (never for
 * dates). Header-only. */
#ifndef SOLA_CLOCK_H
#define SOLA_CLOCK_H

#include <time.h>

static inline double sola_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
