/* int8/avx2.h - the AVX2 tier of the int8 kernels (the algorithm: see the header comment
 * of int8/serial.h, whose kernels are the reference these are tested against). */
#ifndef PPLX_INT8_AVX2_H
#define PPLX_INT8_AVX2_H

#include "serial.h"

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

#endif /* PPLX_COMPILE_AVX2 */
#endif
