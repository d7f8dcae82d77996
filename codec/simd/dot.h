/* dot.h - exact int32 dot products of int8 vectors.
 *
 * dot_block(Q16, nq <= 4, X, nrows): dot products of up to 4 queries with
 * nrows int8 rows, out[q * ostride + r].  Queries arrive already widened to
 * int16 (the caller does it once per search, they are few); rows are read as
 * int8, so a scan moves one byte per dimension from memory.
 *
 * Exactness.  |x * y| <= 128 * 128 = 2^14, so a row of up to 131071 dims
 * sums within int32 (callers check the length).  The AVX2 kernel widens 16
 * row bytes to int16 (vpmovsxbw) and multiplies with vpmaddwd, which adds
 * adjacent int16 products into int32 lanes: 2 * 2^14 = 32768 fits int32
 * with no saturation.  vpmaddubsw (u8 x i8 -> saturating int16 pair sums)
 * would do twice the work per instruction but is wrong exactly when both
 * pairs are (-128) * (-128): 32768 > INT16_MAX.  Register blocking: 4
 * queries x 2 rows = 8 ymm accumulators, so each widened row vector feeds 4
 * multiplies and each query vector 2.
 */
#ifndef PPLX_DOT_H
#define PPLX_DOT_H

#include <stddef.h>
#include <stdint.h>
#include "cpu.h"

/* The largest row length whose dot products cannot overflow int32. */
#define PPLX_DOT_MAX_DIM ((size_t)131071)

static inline int32_t pplx_dot_one_serial(const int16_t *q, const int8_t *x, size_t dim) {
    int32_t s = 0;
    for (size_t j = 0; j < dim; j++) s += (int32_t)q[j] * x[j];
    return s;
}

static void pplx_dot_block_serial(const int16_t *Q, size_t nq, size_t qstride, const int8_t *X, size_t nrows,
                                  size_t dim, size_t xstride, int32_t *out, size_t ostride) {
    for (size_t r = 0; r < nrows; r++)
        for (size_t q = 0; q < nq; q++)
            out[q * ostride + r] = pplx_dot_one_serial(Q + q * qstride, X + r * xstride, dim);
}

/* The same with rows already widened to int16 (many-query scans widen each
 * tile of rows once, so the inner loop is only multiplies and adds). */
static void pplx_dot16_block_serial(const int16_t *Q, size_t nq, size_t qstride, const int16_t *X, size_t nrows,
                                    size_t dim, size_t xstride, int32_t *out, size_t ostride) {
    for (size_t r = 0; r < nrows; r++)
        for (size_t q = 0; q < nq; q++) {
            const int16_t *a = Q + q * qstride, *b = X + r * xstride;
            int32_t s = 0;
            for (size_t j = 0; j < dim; j++) s += (int32_t)a[j] * b[j];
            out[q * ostride + r] = s;
        }
}

#if PPLX_COMPILE_AVX2

PPLX_TARGET_AVX2 static inline int32_t pplx_hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* NQ queries x NR rows (NR 1 or 2), constants after inlining. */
__attribute__((always_inline)) PPLX_TARGET_AVX2 static inline void pplx_dot_tile_avx2(
        const int16_t *const *q, int nq, const int8_t *x0, const int8_t *x1, int nr, size_t dim, int32_t d[4][2]) {
    __m256i a[4][2];
    for (int i = 0; i < 4; i++) a[i][0] = a[i][1] = _mm256_setzero_si256();
    size_t j = 0;
    for (; j + 16 <= dim; j += 16) {
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
        for (; r + 2 <= nrows; r += 2) {                                                       \
            pplx_dot_tile_avx2(q, NQ, X + r * xstride, X + (r + 1) * xstride, 2, dim, d);      \
            for (int i = 0; i < NQ; i++) {                                                     \
                out[(size_t)i * ostride + r] = d[i][0];                                        \
                out[(size_t)i * ostride + r + 1] = d[i][1];                                    \
            }                                                                                  \
        }                                                                                      \
        if (r < nrows) {                                                                       \
            pplx_dot_tile_avx2(q, NQ, X + r * xstride, X + r * xstride, 1, dim, d);            \
            for (int i = 0; i < NQ; i++) out[(size_t)i * ostride + r] = d[i][0];               \
        }                                                                                      \
    }

PPLX_TARGET_AVX2 static void pplx_dot_block_avx2(const int16_t *Q, size_t nq, size_t qstride, const int8_t *X,
                                                size_t nrows, size_t dim, size_t xstride, int32_t *out,
                                                size_t ostride) {
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

/* 4 queries x 2 int16 rows: 8 accumulators, 2 row vectors, 1 query vector
 * (4 x 3 would fit 16 ymm registers on paper, but GCC spills accumulators). */
__attribute__((always_inline)) PPLX_TARGET_AVX2 static inline void pplx_dot16_tile_avx2(
        const int16_t *Q, size_t qstride, const int16_t *x0, const int16_t *x1, int nr, size_t dim, int32_t d[4][2]) {
    __m256i a[4][2];
    for (int i = 0; i < 4; i++) a[i][0] = a[i][1] = _mm256_setzero_si256();
    for (size_t j = 0; j < dim; j += 16) {
        __m256i r0 = _mm256_loadu_si256((const __m256i *)(x0 + j));
        __m256i r1 = nr > 1 ? _mm256_loadu_si256((const __m256i *)(x1 + j)) : r0;
        for (int i = 0; i < 4; i++) {
            __m256i qv = _mm256_loadu_si256((const __m256i *)(Q + i * qstride + j));
            a[i][0] = _mm256_add_epi32(a[i][0], _mm256_madd_epi16(qv, r0));
            if (nr > 1) a[i][1] = _mm256_add_epi32(a[i][1], _mm256_madd_epi16(qv, r1));
        }
    }
    for (int i = 0; i < 4; i++) {
        d[i][0] = pplx_hsum_epi32(a[i][0]);
        if (nr > 1) d[i][1] = pplx_hsum_epi32(a[i][1]);
    }
}

PPLX_TARGET_AVX2 static void pplx_dot16_block_avx2(const int16_t *Q, size_t nq, size_t qstride, const int16_t *X,
                                                  size_t nrows, size_t dim, size_t xstride, int32_t *out,
                                                  size_t ostride) {
    if (nq != 4 || dim % 16) {
        pplx_dot16_block_serial(Q, nq, qstride, X, nrows, dim, xstride, out, ostride);
        return;
    }
    int32_t d[4][2];
    size_t r = 0;
    for (; r + 2 <= nrows; r += 2) {
        pplx_dot16_tile_avx2(Q, qstride, X + r * xstride, X + (r + 1) * xstride, 2, dim, d);
        for (int i = 0; i < 4; i++) {
            out[(size_t)i * ostride + r] = d[i][0];
            out[(size_t)i * ostride + r + 1] = d[i][1];
        }
    }
    if (r < nrows) {
        pplx_dot16_tile_avx2(Q, qstride, X + r * xstride, X + r * xstride, 1, dim, d);
        for (int i = 0; i < 4; i++) out[(size_t)i * ostride + r] = d[i][0];
    }
}

#endif

#endif
