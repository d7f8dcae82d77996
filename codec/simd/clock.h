/* clock.h - a monotonic wall clock in seconds, for the code that times
 * kernels in-process: the calibration that picks each family's path
 * (calibrate.h) and the bench's compute-peak loops (peak/peak.h).
 * CLOCK_MONOTONIC (QueryPerformanceCounter on Windows): never steps back when
 * the system time is set, resolution well under a microsecond. */
#ifndef PPLX_CLOCK_H
#define PPLX_CLOCK_H

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#else
#include <time.h>
#endif

static inline double pplx_now_seconds(void) {
#if defined(_WIN32)
    LARGE_INTEGER f, c;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (double)c.QuadPart / (double)f.QuadPart;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#endif
}

#endif
