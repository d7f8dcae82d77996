/* peak/avx2.h - the avx2 tier's compute peaks (see peak/peak.h).
 *
 * Popcount: Mula's nibble table, the avx2 tier's vector popcount
 * (hamming/avx2.h uses it for 4-query blocks): per 32 bytes, two vpshufb
 * lookups of the low and high nibbles (vpand, vpsrlw, vpand), added into
 * per-byte counts; four byte accumulators of 8 vectors each (at most 64 per
 * byte: no overflow) are reduced to 64-bit lanes with vpsadbw once per
 * KiB, so the reduction is 1/8 of the work, as in a kernel that reduces
 * once per row.
 *
 * Multiply-add: the vpmaddubsw + vpmaddwd chain (u8 x s8 pairs to int16,
 * then pairs of those to int32 by a multiply with ones, then vpaddd), 32
 * multiply-adds per three instructions: the most int8 multiply-adds per
 * instruction AVX2 has.  (The dot kernel itself widens to int16 and uses
 * vpmaddwd, 16 per instruction, because vpmaddubsw saturates on
 * (-128) * (-128) pairs: the chain is the tier's ceiling, not its kernel.)
 * Each loaded row vector feeds 4 queries held in registers, 2 rows per
 * step: 8 independent accumulators cover the chain's latency, one load per
 * 4 chains.
 */
#ifndef PPLX_PEAK_AVX2_H
#define PPLX_PEAK_AVX2_H

#include "common.h"

#if PPLX_COMPILE_AVX2

PPLX_TARGET_AVX2 static inline uint64_t pplx_peak_hsum64_avx2(__m256i v) {
    const __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return (uint64_t)_mm_cvtsi128_si64(s) + (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(s, s));
}

PPLX_TARGET_AVX2 static inline uint32_t pplx_peak_hsum32_avx2(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return (uint32_t)_mm_cvtsi128_si32(s);
}

PPLX_TARGET_AVX2 static uint64_t pplx_peak_popcount_avx2(const uint8_t *buf, size_t reps) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1,
                                         2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0F), zero = _mm256_setzero_si256();
    __m256i tot = zero;
    for (size_t r = 0; r < reps; r++) {
        PPLX_PEAK_CLOBBER(buf);
        for (size_t i = 0; i < PPLX_PEAK_BYTES; i += 1024) {
            __m256i c0 = zero, c1 = zero, c2 = zero, c3 = zero;
#define PPLX_PEAK_NIB(c, off)                                                                                \
    do {                                                                                                     \
        const __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(buf + i + (off)));             \
        c = _mm256_add_epi8(c, _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(v, low)),          \
                                               _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low)))); \
    } while (0)
            for (size_t j = 0; j < 1024; j += 128) {
                PPLX_PEAK_NIB(c0, j);
                PPLX_PEAK_NIB(c1, j + 32);
                PPLX_PEAK_NIB(c2, j + 64);
                PPLX_PEAK_NIB(c3, j + 96);
            }
#undef PPLX_PEAK_NIB
            tot = _mm256_add_epi64(tot, _mm256_add_epi64(_mm256_sad_epu8(c0, zero), _mm256_sad_epu8(c1, zero)));
            tot = _mm256_add_epi64(tot, _mm256_add_epi64(_mm256_sad_epu8(c2, zero), _mm256_sad_epu8(c3, zero)));
        }
    }
    return pplx_peak_hsum64_avx2(tot);
}

PPLX_TARGET_AVX2 static uint64_t pplx_peak_mac_avx2(const uint8_t *buf, size_t reps) {
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i q0 = _mm256_set1_epi32(pplx_peak_qword(0)), q1 = _mm256_set1_epi32(pplx_peak_qword(1)),
                  q2 = _mm256_set1_epi32(pplx_peak_qword(2)), q3 = _mm256_set1_epi32(pplx_peak_qword(3));
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
#define PPLX_PEAK_CHAIN(a, x, q) a = _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_maddubs_epi16(x, q), ones))
    for (size_t r = 0; r < reps; r++) {
        PPLX_PEAK_CLOBBER(buf);
        for (size_t i = 0; i < PPLX_PEAK_BYTES; i += 64) {
            const __m256i x0 = _mm256_loadu_si256((const __m256i *)(const void *)(buf + i));
            const __m256i x1 = _mm256_loadu_si256((const __m256i *)(const void *)(buf + i + 32));
            PPLX_PEAK_CHAIN(a0, x0, q0);
            PPLX_PEAK_CHAIN(a1, x0, q1);
            PPLX_PEAK_CHAIN(a2, x0, q2);
            PPLX_PEAK_CHAIN(a3, x0, q3);
            PPLX_PEAK_CHAIN(a4, x1, q0);
            PPLX_PEAK_CHAIN(a5, x1, q1);
            PPLX_PEAK_CHAIN(a6, x1, q2);
            PPLX_PEAK_CHAIN(a7, x1, q3);
        }
    }
#undef PPLX_PEAK_CHAIN
    a0 = _mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3));
    a4 = _mm256_add_epi32(_mm256_add_epi32(a4, a5), _mm256_add_epi32(a6, a7));
    return pplx_peak_hsum32_avx2(_mm256_add_epi32(a0, a4));
}

#endif /* PPLX_COMPILE_AVX2 */
#endif
