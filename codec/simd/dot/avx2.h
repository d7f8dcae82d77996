/* dot/avx2.h - the AVX2 tier of the dot kernels (the algorithm: see the header comment
 * of dot/serial.h, whose kernels are the reference these are tested against). */
#ifndef PPLX_DOT_AVX2_H
#define PPLX_DOT_AVX2_H

#include "serial.h"

#if PPLX_COMPILE_AVX2
PPLX_TARGET_AVX2 static inline int32_t pplx_hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* NQ queries x NR rows (NR 1 or 2), constants after inlining.  One query
 * reads one row at a time: a single sequential stream, which the prefetch
 * keeps at memory bandwidth (two interleaved row streams measured 25% slower). */
__attribute__((always_inline)) PPLX_TARGET_AVX2 static inline void pplx_dot_tile_avx2(
        const int16_t *const *q, int nq, const int8_t *x0, const int8_t *x1, int nr, size_t dim, int32_t d[4][2]) {
    __m256i a[4][2];
    for (int i = 0; i < 4; i++) a[i][0] = a[i][1] = _mm256_setzero_si256();
    size_t j = 0;
    for (; j + 16 <= dim; j += 16) {
        if ((j & 63) == 0) {
            _mm_prefetch((const char *)(x0 + j + PPLX_DOT_PREFETCH), _MM_HINT_T0);
            if (nr > 1) _mm_prefetch((const char *)(x1 + j + PPLX_DOT_PREFETCH), _MM_HINT_T0);
        }
        __m256i r0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x0 + j)));
        __m256i r1 = nr > 1 ? _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x1 + j))) : r0;
        for (int i = 0; i < nq; i++) {
            __m256i qv = _mm256_loadu_si256((const __m256i *)(q[i] + j));
            a[i][0] = _mm256_add_epi32(a[i][0], _mm256_madd_epi16(qv, r0));
            if (nr > 1) a[i][1] = _mm256_add_epi32(a[i][1], _mm256_madd_epi16(qv, r1));
        }
    }
    for (int i = 0; i < nq; i++) {
        d[i][0] = pplx_hsum_epi32(a[i][0]) + pplx_dot_one_serial(q[i] + j, x0 + j, dim - j);
        if (nr > 1) d[i][1] = pplx_hsum_epi32(a[i][1]) + pplx_dot_one_serial(q[i] + j, x1 + j, dim - j);
    }
}

#define PPLX_DOT_ROWS(NQ)                                                                      \
    {                                                                                          \
        size_t r = 0;                                                                          \
        int32_t d[4][2];                                                                       \
        for (; NQ > 1 && r + 2 <= nrows; r += 2) {                                             \
            pplx_dot_tile_avx2(q, NQ, X + r * xstride, X + (r + 1) * xstride, 2, dim, d);      \
            for (int i = 0; i < NQ; i++) {                                                     \
                out[(size_t)i * ostride + r] = d[i][0];                                        \
                out[(size_t)i * ostride + r + 1] = d[i][1];                                    \
            }                                                                                  \
        }                                                                                      \
        for (; r < nrows; r++) {                                                               \
            pplx_dot_tile_avx2(q, NQ, X + r * xstride, X + r * xstride, 1, dim, d);            \
            for (int i = 0; i < NQ; i++) out[(size_t)i * ostride + r] = d[i][0];               \
        }                                                                                      \
    }

PPLX_TARGET_AVX2 static void pplx_dot_block_avx2(const int16_t *Q, size_t nq, size_t qstride, const int8_t *X,
                                                size_t nrows, size_t dim, size_t xstride, int32_t *out,
                                                size_t ostride) {
    if (nq == 0 || nq > 4) return; /* outside the contract (kernels.h): touch nothing */
    const int16_t *q[4];
    for (size_t i = 0; i < 4; i++) q[i] = Q + (i < nq ? i : 0) * qstride;
    switch (nq) {
        case 1: PPLX_DOT_ROWS(1) break;
        case 2: PPLX_DOT_ROWS(2) break;
        case 3: PPLX_DOT_ROWS(3) break;
        default: PPLX_DOT_ROWS(4) break;
    }
}
#undef PPLX_DOT_ROWS

/* int16 rows (a widened tile): NQ queries x NR rows, NR <= 2, constants after
 * inlining.  Per 16 elements: 2 row loads, 4 query loads (memory operands of
 * vpmaddwd), 8 vpmaddwd and 8 vpaddd into 8 accumulators: 8 + 2 + a
 * product = 11 ymm registers, so every accumulator stays in a register.
 * (A 4 x 3 block needs all 16 and more for the products: GCC 12 kept 8 of
 * its 12 accumulators on the stack, a load, add and store each per step,
 * and the stores' forwarding chain held it to ~35% of vpmaddwd's rate on
 * Zen 3.)  Zen 3 issues two vpmaddwd a cycle, on the same pipes as
 * vpmaddubsw (measured): int16 data needs two vector instructions per 16
 * multiply-adds, so this block's ceiling is 3/4 of the vpmaddubsw chain's. */
#define PPLX_MADD(A, Q, R) A = _mm256_add_epi32(A, _mm256_madd_epi16(Q, R))
__attribute__((always_inline)) PPLX_TARGET_AVX2 static inline void pplx_dot16_tile_avx2(
        const int16_t *Q, size_t qstride, int nq, const int16_t *x0, const int16_t *x1, int nr, size_t dim,
        int32_t *out, size_t ostride) {
    __m256i a00 = _mm256_setzero_si256(), a01 = a00, a10 = a00, a11 = a00;
    __m256i a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    const int16_t *q0 = Q, *q1 = Q + qstride, *q2 = Q + 2 * qstride, *q3 = Q + 3 * qstride;
    size_t j = 0;
    for (; j + 16 <= dim; j += 16) {
        const __m256i r0 = _mm256_loadu_si256((const __m256i *)(x0 + j));
        const __m256i r1 = nr > 1 ? _mm256_loadu_si256((const __m256i *)(x1 + j)) : r0;
        __m256i q = _mm256_loadu_si256((const __m256i *)(q0 + j));
        PPLX_MADD(a00, q, r0);
        if (nr > 1) PPLX_MADD(a01, q, r1);
        if (nq > 1) {
            q = _mm256_loadu_si256((const __m256i *)(q1 + j));
            PPLX_MADD(a10, q, r0);
            if (nr > 1) PPLX_MADD(a11, q, r1);
        }
        if (nq > 2) {
            q = _mm256_loadu_si256((const __m256i *)(q2 + j));
            PPLX_MADD(a20, q, r0);
            if (nr > 1) PPLX_MADD(a21, q, r1);
        }
        if (nq > 3) {
            q = _mm256_loadu_si256((const __m256i *)(q3 + j));
            PPLX_MADD(a30, q, r0);
            if (nr > 1) PPLX_MADD(a31, q, r1);
        }
    }
    const __m256i acc[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
    const int16_t *qs[4] = {q0, q1, q2, q3};
    const int16_t *xs[2] = {x0, x1};
    for (int i = 0; i < nq; i++)
        for (int c = 0; c < nr; c++) {
            int32_t t = pplx_hsum_epi32(acc[i][c]);
            for (size_t k = j; k < dim; k++) t += (int32_t)qs[i][k] * xs[c][k];
            out[(size_t)i * ostride + c] = t;
        }
}
#undef PPLX_MADD

#define PPLX_DOT16_ROWS(NQ)                                                                            \
    {                                                                                                  \
        size_t r = 0;                                                                                  \
        for (; r + 2 <= nrows; r += 2)                                                                 \
            pplx_dot16_tile_avx2(Q, qstride, NQ, X + r * xstride, X + (r + 1) * xstride, 2, dim,       \
                                 out + r, ostride);                                                    \
        if (r < nrows) pplx_dot16_tile_avx2(Q, qstride, NQ, X + r * xstride, X, 1, dim, out + r, ostride); \
    }

PPLX_TARGET_AVX2 static void pplx_dot16_block_avx2(const int16_t *Q, size_t nq, size_t qstride, const int16_t *X,
                                                  size_t nrows, size_t dim, size_t xstride, int32_t *out,
                                                  size_t ostride) {
    if (nq == 0 || nq > 4) return; /* outside the contract (kernels.h): touch nothing */
    switch (nq) {
        case 1: PPLX_DOT16_ROWS(1) break;
        case 2: PPLX_DOT16_ROWS(2) break;
        case 3: PPLX_DOT16_ROWS(3) break;
        default: PPLX_DOT16_ROWS(4) break;
    }
}
#undef PPLX_DOT16_ROWS

#endif /* PPLX_COMPILE_AVX2 */
#endif
