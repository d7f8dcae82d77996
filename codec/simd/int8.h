/* int8.h - row statistics and conversions of signed int8 embeddings.
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
#ifndef PPLX_INT8_H
#define PPLX_INT8_H

#include <stddef.h>
#include <stdint.h>
#include "cpu.h"

static int64_t pplx_sumsq_i8_serial(const int8_t *x, size_t n) {
    int64_t s = 0;
    for (size_t j = 0; j < n; j++) s += (int32_t)x[j] * x[j];
    return s;
}

static void pplx_i8_to_f32_serial(const int8_t *x, size_t n, float div, float *y) {
    for (size_t j = 0; j < n; j++) y[j] = (float)x[j] / div;
}

#if PPLX_COMPILE_AVX2
/* Each int32 lane gains at most 2 * 128^2 = 2^15 per 32 elements; 64 Ki
 * elements give 2048 steps, 2^26 per lane, far from 2^31. */
#define PPLX_SUMSQ_BLOCK ((size_t)1 << 16)

PPLX_TARGET_AVX2 static int64_t pplx_sumsq_i8_avx2(const int8_t *x, size_t n) {
    int64_t total = 0;
    size_t j = 0;
    while (j + 32 <= n) {
        size_t stop = n - j > PPLX_SUMSQ_BLOCK ? j + PPLX_SUMSQ_BLOCK : n;
        __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
        for (; j + 32 <= stop; j += 32) {
            __m256i a = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x + j)));
            __m256i b = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x + j + 16)));
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(a, a));
            acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(b, b));
        }
        __m256i acc = _mm256_add_epi32(acc0, acc1);
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
        total += _mm_cvtsi128_si32(s);
    }
    return total + pplx_sumsq_i8_serial(x + j, n - j);
}

PPLX_TARGET_AVX2 static void pplx_i8_to_f32_avx2(const int8_t *x, size_t n, float div, float *y) {
    const __m256 d = _mm256_set1_ps(div);
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m128i b = _mm_loadl_epi64((const __m128i *)(x + j));
        _mm256_storeu_ps(y + j, _mm256_div_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)), d));
    }
    pplx_i8_to_f32_serial(x + j, n - j, div, y + j);
}
#endif

#endif
