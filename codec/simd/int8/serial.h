/* int8/serial.h - row statistics and conversions of signed int8 embeddings.
 *
 * Perplexity's int8 vectors are clamp(round(tanh(x) * 127)) with no scale
 * and no normalization, so cosine needs each row's L2 norm.  The sum of
 * squares is returned as int64: 2560 * 128^2 fits int32, but a caller may
 * pass any row length and 131072 * 128^2 = 2^31 does not.  The SIMD kernel
 * keeps int32 lanes (cheap) and flushes them to int64 every 64 Ki elements,
 * before a lane can overflow.  The norm is sqrt((double)sum) rounded once to
 * float32, the same value numpy gets from an int64 sum.  Conversion divides in float32 (not multiply-by-reciprocal)
 * so results equal numpy's x.astype(float32) / norm bit for bit.
 *  - sumsq avx2: pmovsxbw 16 bytes -> 16 int16, pmaddwd with itself (pairs
 *    of squares, at most 2 * 16384, fit int32), int32 accumulators.
 *  - to_f32 avx2: pmovsxbd 8 bytes -> cvtdq2ps -> divps.
 */
#ifndef PPLX_INT8_SERIAL_H
#define PPLX_INT8_SERIAL_H

#include <stddef.h>
#include <stdint.h>
#include "../cpu.h"

static int64_t pplx_sumsq_i8_serial(const int8_t *x, size_t n) {
    int64_t s = 0;
    for (size_t j = 0; j < n; j++) s += (int32_t)x[j] * x[j];
    return s;
}

static void pplx_i8_to_f32_serial(const int8_t *x, size_t n, float div, float *y) {
    for (size_t j = 0; j < n; j++) y[j] = (float)x[j] / div;
}

#endif
