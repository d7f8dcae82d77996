/* hamming/avx2.h - the AVX2 tier of the hamming kernels (the algorithm: see the header comment
 * of hamming/serial.h, whose kernels are the reference these are tested against). */
#ifndef PPLX_HAMMING_AVX2_H
#define PPLX_HAMMING_AVX2_H

#include "serial.h"

#if PPLX_COMPILE_AVX2
/* A one-query scan is a sequential read that the hardware prefetcher alone
 * serves at ~10 GB/s per core here; asking for the bytes 2 KiB ahead gets
 * close to the memory bandwidth (see dot/avx2.h). */
#ifndef PPLX_HAMMING_PREFETCH
#define PPLX_HAMMING_PREFETCH 2048
#endif
#define PPLX_PREFETCH_ROW(P, W)                                                                \
    for (size_t o_ = 0; o_ < (W); o_ += 64)                                                    \
        _mm_prefetch((const char *)(P) + PPLX_HAMMING_PREFETCH + o_, _MM_HINT_T0)

/* One row against NQ queries, W bytes; inlined with constant NQ (and W for
 * the specialised widths) so the compiler unrolls and keeps sums in registers. */
__attribute__((always_inline)) PPLX_TARGET_AVX2 static inline void pplx_hamming_row_popcnt(
        const uint8_t *const *q, int nq, const uint8_t *x, size_t w, int32_t *d) {
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t j = 0;
#pragma GCC unroll 40
    for (; j + 8 <= w; j += 8) {
        uint64_t v = pplx_load_u64(x + j);
        s0 += (uint64_t)__builtin_popcountll(v ^ pplx_load_u64(q[0] + j));
        if (nq > 1) s1 += (uint64_t)__builtin_popcountll(v ^ pplx_load_u64(q[1] + j));
        if (nq > 2) s2 += (uint64_t)__builtin_popcountll(v ^ pplx_load_u64(q[2] + j));
        if (nq > 3) s3 += (uint64_t)__builtin_popcountll(v ^ pplx_load_u64(q[3] + j));
    }
    for (; j < w; j++) {
        s0 += (uint64_t)__builtin_popcount((unsigned)(x[j] ^ q[0][j]));
        if (nq > 1) s1 += (uint64_t)__builtin_popcount((unsigned)(x[j] ^ q[1][j]));
        if (nq > 2) s2 += (uint64_t)__builtin_popcount((unsigned)(x[j] ^ q[2][j]));
        if (nq > 3) s3 += (uint64_t)__builtin_popcount((unsigned)(x[j] ^ q[3][j]));
    }
    d[0] = (int32_t)s0;
    if (nq > 1) d[1] = (int32_t)s1;
    if (nq > 2) d[2] = (int32_t)s2;
    if (nq > 3) d[3] = (int32_t)s3;
}

/* Rows of one (NQ, W) combination; W == 0 means "any width" (w at run time). */
#define PPLX_HAMMING_ROWS(NQ, W)                                                               \
    for (size_t r = 0; r < nrows; r++) {                                                       \
        int32_t d[4];                                                                          \
        if (NQ == 1) PPLX_PREFETCH_ROW(X + r * xstride, (W) ? (size_t)(W) : w);                \
        pplx_hamming_row_popcnt(q, NQ, X + r * xstride, (W) ? (size_t)(W) : w, d);             \
        for (int i = 0; i < NQ; i++) out[(size_t)i * ostride + r] = d[i];                      \
    }

/* Four queries against one row of W bytes (W % 32 == 0, W <= 992 so the
 * per-byte counts, at most 8 per 32-byte step, stay below 256): nibble-LUT
 * popcount (vpshufb) on the vector pipes, per-byte sums, one vpsadbw per
 * query and a joint horizontal sum. */
__attribute__((always_inline)) PPLX_TARGET_AVX2 static inline void pplx_hamming_row4_lut(
        const uint8_t *const *q, const uint8_t *x, size_t w, int32_t *d) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i nib = _mm256_set1_epi8(0x0F);
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
#pragma GCC unroll 10
    for (size_t j = 0; j < w; j += 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(x + j));
#define PPLX_LUT_STEP(A, I)                                                                       \
        {                                                                                         \
            __m256i t = _mm256_xor_si256(v, _mm256_loadu_si256((const __m256i *)(q[I] + j)));    \
            __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(t, nib));                      \
            __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(t, 4), nib)); \
            A = _mm256_add_epi8(A, _mm256_add_epi8(lo, hi));                                     \
        }
        PPLX_LUT_STEP(a0, 0) PPLX_LUT_STEP(a1, 1) PPLX_LUT_STEP(a2, 2) PPLX_LUT_STEP(a3, 3)
#undef PPLX_LUT_STEP
    }
    const __m256i z = _mm256_setzero_si256();
    __m256i u = _mm256_or_si256(_mm256_sad_epu8(a0, z), _mm256_slli_epi64(_mm256_sad_epu8(a1, z), 32));
    __m256i v = _mm256_or_si256(_mm256_sad_epu8(a2, z), _mm256_slli_epi64(_mm256_sad_epu8(a3, z), 32));
    __m128i su = _mm_add_epi32(_mm256_castsi256_si128(u), _mm256_extracti128_si256(u, 1));
    __m128i sv = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    __m128i s = _mm_add_epi32(_mm_unpacklo_epi64(su, sv), _mm_unpackhi_epi64(su, sv));
    _mm_storeu_si128((__m128i *)d, s);
}

PPLX_TARGET_AVX2 static void pplx_hamming_block_avx2(const uint8_t *Q, size_t nq, size_t qstride, const uint8_t *X,
                                                    size_t nrows, size_t w, size_t xstride, int32_t *out,
                                                    size_t ostride) {
    if (nq == 0 || nq > 4) return; /* outside the contract (kernels.h): touch nothing */
    const uint8_t *q[4];
    for (size_t i = 0; i < 4; i++) q[i] = Q + (i < nq ? i : 0) * qstride;
    if (nq == 1) {
        if (w == 128) { PPLX_HAMMING_ROWS(1, 128) }
        else if (w == 320) { PPLX_HAMMING_ROWS(1, 320) }
        else { PPLX_HAMMING_ROWS(1, 0) }
    } else if (nq == 4 && w % 32 == 0 && w <= 992) {
        for (size_t r = 0; r < nrows; r++) {
            int32_t d[4];
            pplx_hamming_row4_lut(q, X + r * xstride, w, d);
            for (int i = 0; i < 4; i++) out[(size_t)i * ostride + r] = d[i];
        }
    } else if (nq == 4) {
        if (w == 128) { PPLX_HAMMING_ROWS(4, 128) }
        else if (w == 320) { PPLX_HAMMING_ROWS(4, 320) }
        else { PPLX_HAMMING_ROWS(4, 0) }
    } else if (nq == 2) {
        PPLX_HAMMING_ROWS(2, 0)
    } else {
        PPLX_HAMMING_ROWS(3, 0)
    }
}
#undef PPLX_HAMMING_ROWS

#endif /* PPLX_COMPILE_AVX2 */
#endif
