/* hamming/avx512.h - the avx512 tier of the hamming kernels (the reference: hamming/serial.h).
 *
 * XOR + VPOPCNTQ (AVX512_VPOPCNTDQ) on 64-byte vectors: one vpxorq and one
 * vpopcntq per 64 bytes and query, counts added into 64-bit lanes (vpaddq).
 * The scalar POPCNT loop of the avx2 tier needs eight XOR + POPCNT + ADD for
 * the same bytes.  A row's last (w % 64) bytes are read with a zero-masking
 * byte load (vmovdqu8 with a {z} mask, which suppresses faults on the
 * masked-off bytes) from the row and from each query, so no byte past a
 * code is read and the zero bytes add nothing.  The common widths, 128 B
 * (1024 dims: 2 vectors) and 320 B (2560 dims: 5 vectors), are multiples
 * of 64: their bodies are compiled separately with the width a constant, so
 * the loop is unrolled and the masked step disappears (the compiler cannot
 * know w on its own).
 *
 * Blocking: a tile of NQ queries x NR rows, NQ * NR = 4 accumulators at most
 * (4 queries x 1 row, 2 x 2, 1 x 4), so each row vector loaded feeds every
 * query of the group and the four lane sums are reduced together: a0 | a1 <<
 * 32 and a2 | a3 << 32 (every lane count is below 2^32), one unpack-and-add
 * of the two, then 512 -> 256 -> 128 bits: the four results as one xmm in
 * 11 instructions, under 3 per result (one zmm alone takes about 7).  One query
 * processes its four rows one after the other (a single sequential stream,
 * as the avx2 kernels found best) and reduces them together into one 16-byte
 * store.  3 queries take a 4th, unused slot (its accumulator stays zero).
 *
 * Prefetch.  The one-query scan reads the codes once, sequentially; the avx2
 * tier measured (Zen 3) that the hardware prefetcher alone leaves it at ~10
 * GB/s per core and that asking for each line PPLX_HAMMING_PREFETCH (2 KiB)
 * ahead brings it near the memory bandwidth.  This kernel issues the same
 * prefetch, one per 64-byte line of each row, for one query only: with 2-4
 * queries the call does 2-4 times more work per byte and the scans run the
 * query groups over a tile already in L1/L2.  Not measured on AVX-512
 * hardware (this machine has none); a prefetch is only a hint, harmless
 * when it is redundant or points past the codes.
 *
 * Exactness: counts only; a row of w bytes has at most 8w differing bits,
 * held in 64-bit lanes and reduced in 32-bit lanes (w < 2^28 bytes).
 */
#ifndef PPLX_HAMMING_AVX512_H
#define PPLX_HAMMING_AVX512_H

#include "avx2.h"

#if PPLX_COMPILE_AVX512

/* Loops over the queries and rows of a tile (constant trip counts after
 * inlining) must be unrolled so the accumulators live in registers: GCC
 * needs the pragma; clang unrolls them by itself and does worse with it. */
#if defined(__clang__)
#define PPLX_H512_UNROLL
#else
#define PPLX_H512_UNROLL _Pragma("GCC unroll 16")
#endif
/* After a loop, PPLX_H512_FRESH(acc) for each accumulator: an empty asm
 * that "may change" it (no instruction), without which GCC (12) keeps two
 * copies of loop-carried sums and moves registers inside the loop (object
 * code inspected; see dot/avx512.h). */
#if defined(__GNUC__) && !defined(__clang__) && !defined(PPLX_SIMDE_X86)
#define PPLX_H512_FRESH(v) __asm__("" : "+v"(v))
#else
#define PPLX_H512_FRESH(v) (void)0
#endif


/* 64 bytes at p, or the first bytes selected by k (the others zero). */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline __m512i pplx_h512_load(const uint8_t *p, uint64_t k,
                                                                                      int masked) {
    return masked ? pplx_mm512_maskz_loadu_epi8(k, p) : _mm512_loadu_si512((const void *)p);
}

/* acc[i * nr + c] += popcount(q_i ^ row_c) over bytes [j, j + 64) (masked: k). */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline void pplx_h512_step(
        const uint8_t *const *q, int nq, const uint8_t *const *x, int c0, int c1, int nr, size_t j, uint64_t k,
        int masked, int prefetch, __m512i *acc) {
    __m512i xv[4];
PPLX_H512_UNROLL
    for (int c = c0; c < c1; c++) {
        if (prefetch) _mm_prefetch((const char *)(x[c] + j) + PPLX_HAMMING_PREFETCH, _MM_HINT_T0);
        xv[c] = pplx_h512_load(x[c] + j, k, masked);
    }
PPLX_H512_UNROLL
    for (int i = 0; i < nq; i++) {
        const __m512i qv = pplx_h512_load(q[i] + j, k, masked);
PPLX_H512_UNROLL
        for (int c = c0; c < c1; c++)
            acc[i * nr + c] = _mm512_add_epi64(acc[i * nr + c], _mm512_popcnt_epi64(_mm512_xor_si512(qv, xv[c])));
    }
}

/* One query x one row (the one-query tiles), with the prefetch. */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline __m512i pplx_h512_row1(const uint8_t *q,
                                                                                      const uint8_t *x, size_t w) {
    const uint8_t *const qs[1] = {q}, *const xs[1] = {x};
    __m512i acc[1] = {_mm512_setzero_si512()};
    size_t j = 0;
#pragma GCC unroll 8
    for (; j + 64 <= w; j += 64) pplx_h512_step(qs, 1, xs, 0, 1, 1, j, 0, 0, 1, acc);
    PPLX_H512_FRESH(acc[0]);
    if (j < w) pplx_h512_step(qs, 1, xs, 0, 1, 1, j, ~(uint64_t)0 >> (64 - (w - j)), 1, 1, acc);
    return acc[0];
}

/* NQ queries x NR rows of w bytes (NQ * NR <= 4; constants after inlining,
 * and w too for the specialised widths): the distances, lane i * NR + c. */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline __m128i pplx_hamming_tile_avx512(
        const uint8_t *const *q, int nq, const uint8_t *x0, size_t xstride, int nr, size_t w) {
    const uint8_t *x[4];
PPLX_H512_UNROLL
    for (int c = 0; c < 4; c++) x[c] = x0 + (size_t)(c < nr ? c : 0) * xstride;
    __m512i acc[4];
PPLX_H512_UNROLL
    for (int i = 0; i < 4; i++) acc[i] = _mm512_setzero_si512();
    if (nq == 1) { /* one query: row after row */
        acc[0] = pplx_h512_row1(q[0], x[0], w);
        if (nr > 1) acc[1] = pplx_h512_row1(q[0], x[1], w);
        if (nr > 2) acc[2] = pplx_h512_row1(q[0], x[2], w);
        if (nr > 3) acc[3] = pplx_h512_row1(q[0], x[3], w);
    } else { /* more: all rows of the tile at each step */
        size_t j = 0;
#pragma GCC unroll 8
        for (; j + 64 <= w; j += 64) pplx_h512_step(q, nq, x, 0, nr, nr, j, 0, 0, 0, acc);
PPLX_H512_UNROLL
        for (int i = 0; i < 4; i++)
            if (i < nq * nr) PPLX_H512_FRESH(acc[i]);
        if (j < w) pplx_h512_step(q, nq, x, 0, nr, nr, j, ~(uint64_t)0 >> (64 - (w - j)), 1, 0, acc);
    }
    const __m512i u = _mm512_or_si512(acc[0], _mm512_slli_epi64(acc[1], 32));
    const __m512i v = _mm512_or_si512(acc[2], _mm512_slli_epi64(acc[3], 32));
    /* each 128-bit block: [a0, a1, a2, a3] partial sums */
    const __m512i t = _mm512_add_epi32(_mm512_unpacklo_epi64(u, v), _mm512_unpackhi_epi64(u, v));
    const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(t), _mm512_extracti64x4_epi64(t, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* Rows of one (NQ, NR, W) combination, W == 0 meaning "any width"; the rows
 * left over (nrows % NR) one at a time. */
#define PPLX_H512_ROWS(NQ, NR, W)                                                                              \
    {                                                                                                          \
        const size_t w_ = (W) ? (size_t)(W) : w;                                                               \
        size_t r = 0;                                                                                          \
        for (; r + (NR) <= nrows; r += (NR)) {                                                                 \
            const __m128i s = pplx_hamming_tile_avx512(q, NQ, X + r * xstride, xstride, NR, w_);               \
            if ((NQ) == 1 && (NR) == 4) {                                                                      \
                _mm_storeu_si128((__m128i *)(void *)(out + r), s);                                             \
            } else {                                                                                           \
                int32_t d[4];                                                                                  \
                _mm_storeu_si128((__m128i *)(void *)d, s);                                                     \
                for (int i = 0; i < (NQ); i++)                                                                 \
                    for (int c = 0; c < (NR); c++) out[(size_t)i * ostride + r + (size_t)c] = d[i * (NR) + c]; \
            }                                                                                                  \
        }                                                                                                      \
        for (; r < nrows; r++) {                                                                               \
            int32_t d[4];                                                                                      \
            _mm_storeu_si128((__m128i *)(void *)d, pplx_hamming_tile_avx512(q, NQ, X + r * xstride, xstride, 1, w_)); \
            for (int i = 0; i < (NQ); i++) out[(size_t)i * ostride + r] = d[i];                                \
        }                                                                                                      \
    }

PPLX_TARGET_AVX512 static void pplx_hamming_block_avx512(const uint8_t *Q, size_t nq, size_t qstride,
                                                        const uint8_t *X, size_t nrows, size_t w, size_t xstride,
                                                        int32_t *out, size_t ostride) {
    if (nq == 0 || nq > 4) return; /* outside the contract (kernels.h): touch nothing */
    const uint8_t *q[4];
    for (size_t i = 0; i < 4; i++) q[i] = Q + (i < nq ? i : 0) * qstride;
    switch (nq) {
        case 1:
            if (w == 128) PPLX_H512_ROWS(1, 4, 128)
            else if (w == 320) PPLX_H512_ROWS(1, 4, 320)
            else PPLX_H512_ROWS(1, 4, 0)
            break;
        case 2: PPLX_H512_ROWS(2, 2, 0) break;
        case 3: PPLX_H512_ROWS(3, 1, 0) break;
        default:
            if (w == 128) PPLX_H512_ROWS(4, 1, 128)
            else if (w == 320) PPLX_H512_ROWS(4, 1, 320)
            else PPLX_H512_ROWS(4, 1, 0)
            break;
    }
}
#undef PPLX_H512_ROWS

#endif /* PPLX_COMPILE_AVX512 */
#endif
