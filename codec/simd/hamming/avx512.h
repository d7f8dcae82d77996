/* hamming/avx512.h - the avx512 tier of the hamming kernels (the reference: hamming/serial.h).
 *
 * XOR + VPOPCNTQ (AVX512_VPOPCNTDQ) on 64-byte vectors: one vpxorq and one
 * vpopcntq per 64 bytes and (query, row) pair, counts added into 64-bit
 * lanes (vpaddq).  A row's last (w % 64) bytes are read with a zero-masking
 * byte load (vmovdqu8 with a {z} mask, which suppresses faults on the
 * masked-off bytes) from the row and from each query, so no byte past a
 * code is read and the zero bytes add nothing.  The common widths, 128 B
 * (1024 dims: 2 vectors) and 320 B (2560 dims: 5 vectors), are multiples of
 * 64: their bodies are compiled separately with the width a constant, so
 * the loop is unrolled and the masked step disappears.
 *
 * Where the time goes (measured on Zen 4, which runs a 512-bit operation as
 * two 256-bit halves on its 4 vector pipes: at most 2 zmm operations per
 * cycle of any kind, of which at most 1 vpopcntq).  Every vector operation
 * counts.  A pair of 128-byte codes costs 2 vpxorq + 2 vpopcntq + 1 vpaddq,
 * and then its 8 lane counts must be summed into one distance, about 7
 * shuffles and adds for one zmm alone.  So the 2-4 query kernel works on
 * tiles of NQ queries x 4 rows (up to 16 accumulators, 16 pairs for 4 row
 * loads and 4 query loads per 64 bytes) and sums the lanes of all 16 pairs
 * together in 29 instructions (under 2 per distance), in three rounds that
 * each halve the vectors:
 *  - two pairs into one vector: vpshufd with a merge mask puts the low
 *    dword of each lane of the second into the (zero) high dword of the
 *    first (every lane count is below 2^32);
 *  - two of those into one: unpacklo/unpackhi_epi64 + vpaddd leave, in each
 *    128-bit block, the 4 rows of one query summed over 2 lanes;
 *  - the four blocks of four queries: two rounds of vshufi32x4 + vpaddd,
 *    after which 128-bit block i holds query i's 4 distances, stored as
 *    one 16-byte store per query.
 * With 128-byte codes the 4 queries' 8 vectors are loaded once per call and
 * stay in registers (8 + 16 accumulators + the row vectors fit the 32 zmm).
 * 4 queries x 512 rows of 128 bytes in L2, bytes compared per cycle: 25 with
 * the former 4 x 1 tiles (queries reloaded per row, 11 instructions to sum
 * each 4 distances), 33 now; with no lane sums at all it would be 42.
 *
 * One query (the memory-bound scan of a whole database) processes 4 rows
 * one after the other (a single sequential stream, as the avx2 kernels
 * found best) and reduces them together into one 16-byte store.  It issues
 * no software prefetch: the avx2 tier asks for each line 2 KiB ahead
 * (measured on Zen 3: the hardware prefetcher alone left a core at ~10
 * GB/s), but on Zen 4 the same prefetch made this kernel slower than avx2
 * on a 1,000,000 x 128-byte scan (2 threads: 6.0 against 4.4 ms in the
 * bench), and without it the scan takes 0.81-0.91 of the avx2 kernel's time
 * (1 and 2 threads, same process and data; distances of 512, 1024 and 4096
 * bytes were no better).  With 2-4 queries the call does 2-4 times more work
 * per byte and the scans run the query groups over a tile already in L1/L2.
 *
 * Exactness: counts only; a row of w bytes has at most 8w differing bits,
 * held in 64-bit lanes and summed in 32-bit lanes (w < 2^28 bytes).
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

/* acc[i * 4 + c] += popcount(q_i ^ row_c) over bytes [j, j + 64) (masked:
 * k), for queries i < nq and rows c0 <= c < c1. */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline void pplx_h512_step(
        const uint8_t *const *q, int nq, const uint8_t *const *x, int c0, int c1, size_t j, uint64_t k, int masked,
        __m512i *acc) {
    __m512i xv[4];
PPLX_H512_UNROLL
    for (int c = c0; c < c1; c++) xv[c] = pplx_h512_load(x[c] + j, k, masked);
PPLX_H512_UNROLL
    for (int i = 0; i < nq; i++) {
        const __m512i v = pplx_h512_load(q[i] + j, k, masked);
PPLX_H512_UNROLL
        for (int c = c0; c < c1; c++)
            acc[i * 4 + c] = _mm512_add_epi64(acc[i * 4 + c], _mm512_popcnt_epi64(_mm512_xor_si512(v, xv[c])));
    }
}

/* Two pairs' lane counts as one vector of dword pairs [a | b] (every lane
 * count is below 2^32, so a's high dwords are zero and take b's low ones). */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline __m512i pplx_h512_pack(__m512i a, __m512i b) {
    return pplx_mm512_mask_shuffle_epi32(a, 0xAAAA, b, 0xB1);
}

/* The distances from the packed lane counts of queries i < nq: p[2 * i]
 * rows 0 and 1, p[2 * i + 1] rows 2 and 3 (a missing row's counts zero).
 * 128-bit block i of the result holds query i's four distances, dword c =
 * row c (see the header comment). */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline __m512i pplx_h512_reduce(const __m512i *p, int nq) {
    __m512i t[4];
PPLX_H512_UNROLL
    for (int i = 0; i < 4; i++) /* each 128-bit block b: [r0, r1, r2, r3] over lanes 2b and 2b + 1 */
        t[i] = i < nq ? _mm512_add_epi32(_mm512_unpacklo_epi64(p[2 * i], p[2 * i + 1]),
                                         _mm512_unpackhi_epi64(p[2 * i], p[2 * i + 1]))
                      : _mm512_setzero_si512();
    if (nq == 1) { /* the four blocks of t[0] into block 0 */
        const __m512i s = _mm512_add_epi32(t[0], _mm512_shuffle_i32x4(t[0], t[0], 0x4E));
        return _mm512_add_epi32(s, _mm512_shuffle_i32x4(s, s, 0xB1));
    }
    /* [t0 b0+b1, t0 b2+b3, t1 b0+b1, t1 b2+b3], the same for t2, t3 */
    const __m512i s01 = _mm512_add_epi32(_mm512_shuffle_i32x4(t[0], t[1], 0x88), _mm512_shuffle_i32x4(t[0], t[1], 0xDD));
    const __m512i s23 = _mm512_add_epi32(_mm512_shuffle_i32x4(t[2], t[3], 0x88), _mm512_shuffle_i32x4(t[2], t[3], 0xDD));
    return _mm512_add_epi32(_mm512_shuffle_i32x4(s01, s23, 0x88), _mm512_shuffle_i32x4(s01, s23, 0xDD));
}

/* Queries i < nq (vectors held in qv[i * nv + v]) x one row of nv * 64
 * bytes: the lane counts of each pair into d[i]. */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline void pplx_h512_row_held(const __m512i *qv, size_t nv,
                                                                                       int nq, const uint8_t *x,
                                                                                       __m512i *d) {
    __m512i xv[2];
PPLX_H512_UNROLL
    for (size_t v = 0; v < nv; v++) xv[v] = _mm512_loadu_si512((const void *)(x + 64 * v));
PPLX_H512_UNROLL
    for (int i = 0; i < nq; i++) {
        __m512i a = _mm512_popcnt_epi64(_mm512_xor_si512(qv[(size_t)i * nv], xv[0]));
PPLX_H512_UNROLL
        for (size_t v = 1; v < nv; v++)
            a = _mm512_add_epi64(a, _mm512_popcnt_epi64(_mm512_xor_si512(qv[(size_t)i * nv + v], xv[v])));
        d[i] = a;
    }
}

/* NQ queries x NR rows (NR <= 4) of w bytes, rows xstride apart from x0
 * (constants after inlining, and w too for the specialised widths): the
 * distances, query i's in 128-bit block i, row c in its dword c.  qv: the
 * queries' vectors, held in registers by the caller (w = 128 only). */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline __m512i pplx_hamming_tile_avx512(
        const uint8_t *const *q, const __m512i *qv, int nq, const uint8_t *x0, size_t xstride, int nr, size_t w) {
    const uint8_t *x[4];
PPLX_H512_UNROLL
    for (int c = 0; c < 4; c++) x[c] = x0 + (size_t)(c < nr ? c : 0) * xstride;
    __m512i acc[16], p[8];
PPLX_H512_UNROLL
    for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_si512();
    if (qv) {
        /* Row after row, each row's pairs summed whole, and each two rows'
         * counts packed as soon as they are done: at most 8 query vectors, 2
         * row vectors and 12 sums are live, so nothing spills (computing
         * all 16 pairs 64 bytes at a time kept 16 partial sums of each half
         * and spilled, GCC 12). */
        const size_t nv = w / 64;
        __m512i d[4][4];
PPLX_H512_UNROLL
        for (int c = 0; c < 4; c++) {
            if (c < nr) {
                pplx_h512_row_held(qv, nv, nq, x[c], d[c]);
            } else {
PPLX_H512_UNROLL
                for (int i = 0; i < 4; i++) d[c][i] = _mm512_setzero_si512();
            }
            if (c % 2) {
PPLX_H512_UNROLL
                for (int i = 0; i < nq; i++) p[2 * i + c / 2] = pplx_h512_pack(d[c - 1][i], d[c][i]);
            }
        }
        return pplx_h512_reduce(p, nq);
    }
    const uint64_t tail = w % 64 ? ~(uint64_t)0 >> (64 - w % 64) : 0;
    if (nq == 1) { /* one query: row after row, one sequential stream */
PPLX_H512_UNROLL
        for (int c = 0; c < nr; c++) {
            size_t j = 0;
#pragma GCC unroll 8
            for (; j + 64 <= w; j += 64) pplx_h512_step(q, 1, x, c, c + 1, j, 0, 0, acc);
            PPLX_H512_FRESH(acc[c]);
            if (j < w) pplx_h512_step(q, 1, x, c, c + 1, j, tail, 1, acc);
        }
    } else { /* more: all rows of the tile at each step */
        size_t j = 0;
#pragma GCC unroll 8
        for (; j + 64 <= w; j += 64) pplx_h512_step(q, nq, x, 0, nr, j, 0, 0, acc);
PPLX_H512_UNROLL
        for (int i = 0; i < 16; i++)
            if (i / 4 < nq && i % 4 < nr) PPLX_H512_FRESH(acc[i]);
        if (j < w) pplx_h512_step(q, nq, x, 0, nr, j, tail, 1, acc);
    }
PPLX_H512_UNROLL
    for (int i = 0; i < 4; i++) {
        p[2 * i] = pplx_h512_pack(acc[i * 4], acc[i * 4 + 1]);
        p[2 * i + 1] = pplx_h512_pack(acc[i * 4 + 2], acc[i * 4 + 3]);
    }
    return pplx_h512_reduce(p, nq);
}

/* The first n (<= 4) dwords of block i of s to p. */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline void pplx_h512_store(int32_t *p, __m512i s, int i,
                                                                                    int n) {
    int32_t d[16];
    if (n == 4) { /* the immediate must be a literal even where i is not folded (-O0, -O1) */
        const __m128i b = i == 0 ? _mm512_castsi512_si128(s) : i == 1 ? _mm512_extracti32x4_epi32(s, 1)
                        : i == 2 ? _mm512_extracti32x4_epi32(s, 2) : _mm512_extracti32x4_epi32(s, 3);
        _mm_storeu_si128((__m128i *)(void *)p, b);
        return;
    }
    _mm512_storeu_si512((void *)d, s);
    for (int c = 0; c < n; c++) p[c] = d[i * 4 + c];
}

/* Rows of one (NQ, W) combination in tiles of 4, W == 0 meaning "any
 * width"; the rows left over (nrows % 4) one at a time.  With 128-byte
 * codes and 2-4 queries, the queries' vectors are loaded once (qv). */
#define PPLX_H512_ROWS(NQ, W)                                                                                 \
    {                                                                                                         \
        const size_t w_ = (W) ? (size_t)(W) : w;                                                              \
        __m512i qv_[8];                                                                                       \
        const int hold_ = (NQ) > 1 && (W) == 128;                                                             \
        if (hold_)                                                                                            \
            for (int i = 0; i < 8; i++) qv_[i] = _mm512_loadu_si512((const void *)(q[i / 2] + 64 * (i % 2))); \
        size_t r = 0;                                                                                         \
        for (; r + 4 <= nrows; r += 4) {                                                                      \
            const __m512i s = pplx_hamming_tile_avx512(q, hold_ ? qv_ : NULL, NQ, X + r * xstride, xstride, 4, w_); \
            for (int i = 0; i < (NQ); i++) pplx_h512_store(out + (size_t)i * ostride + r, s, i, 4);           \
        }                                                                                                     \
        for (; r < nrows; r++) {                                                                              \
            const __m512i s = pplx_hamming_tile_avx512(q, hold_ ? qv_ : NULL, NQ, X + r * xstride, xstride, 1, w_); \
            for (int i = 0; i < (NQ); i++) pplx_h512_store(out + (size_t)i * ostride + r, s, i, 1);           \
        }                                                                                                     \
    }

PPLX_TARGET_AVX512 static void pplx_hamming_block_avx512(const uint8_t *Q, size_t nq, size_t qstride,
                                                        const uint8_t *X, size_t nrows, size_t w, size_t xstride,
                                                        int32_t *out, size_t ostride) {
    if (nq == 0 || nq > 4) return; /* outside the contract (kernels.h): touch nothing */
    const uint8_t *q[4];
    for (size_t i = 0; i < 4; i++) q[i] = Q + (i < nq ? i : 0) * qstride;
    switch (nq) {
        case 1:
            if (w == 128) PPLX_H512_ROWS(1, 128)
            else if (w == 320) PPLX_H512_ROWS(1, 320)
            else PPLX_H512_ROWS(1, 0)
            break;
        case 2: PPLX_H512_ROWS(2, 0) break;
        case 3: PPLX_H512_ROWS(3, 0) break;
        default:
            if (w == 128) PPLX_H512_ROWS(4, 128)
            else if (w == 320) PPLX_H512_ROWS(4, 320)
            else PPLX_H512_ROWS(4, 0)
            break;
    }
}
#undef PPLX_H512_ROWS

/* ---- Eight queries in the lanes of one vector: hamming8_filter ----
 *
 * The block kernel above gives each (query, row) pair its own vector and
 * must then sum the vector's eight lane counts into one distance: with
 * 128-byte codes that sum is a quarter of its vector operations.  Here the
 * eight lanes are eight queries instead: the queries come transposed (word j
 * of query i at Qt[8 * j + i], kernels.h), each 64-bit word of a row is
 * broadcast to all lanes, and vpxorq + vpopcntq + vpaddq add that word's
 * distance to each query's lane.  After the row's last word each lane holds
 * one query's whole distance: nothing is summed across lanes, and the
 * scan's top-k test is one compare (vpcmpq) of the eight distances with the
 * eight heaps' worst keys.  Only a row that some query might keep (after
 * the first tiles, a few in ten thousand) is written out, as 8 int32s.
 *
 * Per word and row: one broadcast load (a load, no ALU operation), and
 * three zmm operations for 64 bytes of (query, row) pairs.  Four rows per
 * step share each query vector and keep four independent add chains.  With
 * 128-byte codes (nw = 16, 1024 dims) the 16 query vectors stay in
 * registers; other widths read them from L1 (nw * 64 bytes).
 * Measured on Zen 4 (1 thread, 100 queries x 100,000 codes of 128 bytes in
 * tiles of 512 rows, top-10): the block kernel with the scan's offers 14.2
 * ms, this kernel with its hits offered 9.6 ms (134 GB/s of pairs, 0.70 of
 * the VPOPCNTQ ymm peak of that core); 2 rows a step 9.9 ms, 8 rows 9.7.
 *
 * Exactness: a row has at most 64 nw differing bits per query, held in a
 * 64-bit lane; callers keep 64 nw below 2^31 (a code of 2^28 bytes). */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline __m512i pplx_h8_word(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8); /* rows need not be 8-byte aligned */
    return _mm512_set1_epi64((long long)v);
}

/* The distances of the 8 queries to NR rows at x (xstride apart), lane i =
 * query i: a[c] for row c.  qv: the query vectors in registers (nw = 16),
 * or NULL to load them from Qt. */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline void pplx_h8_rows(const uint64_t *Qt,
                                                                                 const __m512i *qv, size_t nw,
                                                                                 const uint8_t *x, size_t xstride,
                                                                                 int nr, __m512i *a) {
PPLX_H512_UNROLL
    for (int c = 0; c < nr; c++) a[c] = _mm512_setzero_si512();
#pragma GCC unroll 16
    for (size_t j = 0; j < nw; j++) {
        const __m512i q = qv ? qv[j] : _mm512_loadu_si512((const void *)(Qt + 8 * j));
PPLX_H512_UNROLL
        for (int c = 0; c < nr; c++) {
            a[c] = _mm512_add_epi64(a[c], _mm512_popcnt_epi64(_mm512_xor_si512(q, pplx_h8_word(x + c * xstride + 8 * j))));
            /* one add chain per row, in this order: without it GCC 12 computes the counts of all
             * the words first and spills them to the stack (1.5x slower, object code inspected) */
            PPLX_H512_FRESH(a[c]);
        }
    }
}

/* Rows [r, r + nr) with distances a[0..nr): record those below lim somewhere. */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline size_t pplx_h8_keep(const __m512i *a, int nr,
                                                                                   __m512i lim, size_t r,
                                                                                   uint32_t *hrow, int32_t *hd,
                                                                                   size_t nh) {
    unsigned m[4], any = 0;
PPLX_H512_UNROLL
    for (int c = 0; c < nr; c++) {
        m[c] = _mm512_cmpgt_epi64_mask(lim, a[c]); /* a < lim */
        any |= m[c];
    }
    if (!any) return nh;
    for (int c = 0; c < nr; c++) {
        if (!m[c]) continue;
        hrow[nh] = (uint32_t)(r + (size_t)c);
        _mm256_storeu_si256((__m256i *)(void *)(hd + 8 * nh), _mm512_cvtepi64_epi32(a[c]));
        nh++;
    }
    return nh;
}

__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline size_t pplx_h8_filter(
        const uint64_t *Qt, const __m512i *qv, size_t nw, const uint8_t *X, size_t nrows, size_t xstride,
        __m512i lim, uint32_t *hrow, int32_t *hd) {
    size_t nh = 0, r = 0;
    __m512i a[4];
    for (; r + 4 <= nrows; r += 4) {
        pplx_h8_rows(Qt, qv, nw, X + r * xstride, xstride, 4, a);
        nh = pplx_h8_keep(a, 4, lim, r, hrow, hd, nh);
    }
    for (; r < nrows; r++) {
        pplx_h8_rows(Qt, qv, nw, X + r * xstride, xstride, 1, a);
        nh = pplx_h8_keep(a, 1, lim, r, hrow, hd, nh);
    }
    return nh;
}

PPLX_TARGET_AVX512 static size_t pplx_hamming8_filter_avx512(const uint64_t *Qt, size_t nw, const uint8_t *X,
                                                             size_t nrows, size_t xstride, const int32_t *worst,
                                                             uint32_t *hrow, int32_t *hd) {
    /* the bounds widened to the 64-bit lanes of the distances */
    int64_t w64[8];
    for (int i = 0; i < 8; i++) w64[i] = worst[i];
    const __m512i lim = _mm512_loadu_si512((const void *)w64);
    if (nw == 16) {
        __m512i qv[16];
        for (int j = 0; j < 16; j++) qv[j] = _mm512_loadu_si512((const void *)(Qt + 8 * j));
        return pplx_h8_filter(Qt, qv, 16, X, nrows, xstride, lim, hrow, hd);
    }
    return pplx_h8_filter(Qt, NULL, nw, X, nrows, xstride, lim, hrow, hd);
}

#endif /* PPLX_COMPILE_AVX512 */
#endif
