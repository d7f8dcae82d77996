/* dot/avx512.h - the avx512 tier of the dot kernels (the reference: dot/serial.h).
 *
 * Three kernels on one engine (pplx_dotz_tile: a tile of NQ queries x NR
 * rows, one zmm accumulator of 16 int32 lanes per pair), all with AVX512_VNNI
 * multiply-adds that accumulate into int32 lanes without saturation:
 *
 *   dot_i8_block   int8 queries as stored x int8 rows: vpdpbusd, 64 dims per
 *                  instruction.  This is what the scans call (one query
 *                  included), so it carries the prefetch and the blocking.
 *   dot_block      int16 queries x int8 rows: 32 row bytes widened with
 *                  vpmovsxbw, vpdpwssd with the query (32 dims).
 *   dot16_block    int16 queries x int16 rows: vpdpwssd.
 * The last two are what the table offers callers that hold int16 queries;
 * with dot_i8_block set the scans never call them (topk.h), so they share
 * the engine rather than being tuned separately.
 *
 * vpdpbusd multiplies UNSIGNED bytes by SIGNED bytes (4 products summed into
 * each int32 lane).  The rows are made unsigned by the bias trick: x ^ 0x80
 * read as u8 is x + 128, so the instruction accumulates
 *     sum_j (x_j + 128) q_j  =  dot(q, x) + 128 sum_j q_j.
 * Biasing the rows costs one vpxorq per row vector, shared by all the
 * queries of the tile; biasing the queries instead would need a per-row
 * correction (sum_j x_j) in every tile.  The correction -128 sum_j q_j is
 * computed once per query and call, lane by lane (vpdpbusd of a vector of
 * ones with the query: lane l gets the query bytes that the multiply-adds
 * will add into lane l, bytes 4l..4l+3 of every 64-byte step), and is the
 * initial value of the query's accumulators, not a final subtraction.
 *
 * Exactness.  Each product (x + 128) q lies in [-255 * 128, 255 * 127] and
 * four of them sum exactly inside the instruction; vpdpbusd (NOT vpdpbusds,
 * which saturates) adds into the lane.  Over 131071 dims (PPLX_DOT_MAX_DIM)
 * the biased total could reach 255 * 128 * 131071 = 4278206720 > 2^31, so
 * it is never formed: a lane starting at -128 (its sum of q) holds, at
 * every step, sum x_j q_j over its dims done so far minus 128 sum q_j over
 * its dims still to come, at most 2^14 * 8192 = 2^27 in magnitude (a lane
 * gets 4 of every 64 dims: at most 8192 of 131071), and in the end exactly
 * its share of dot(q, x).  (The one-query tiles' second accumulator starts
 * at zero and holds biased sums of half a lane's dims: < 2^27 too.)  The
 * lane reduction then adds true partial dot products, each at most 2^14 *
 * 131071 < 2^31.  No int32 value ever wraps, so the result is the serial
 * one (and the SIMDe test build, which emulates the lanes with C int
 * arithmetic, has no signed overflow for UBSan to find).  Summing first and
 * subtracting 128 sum q at the end would also be exact, but only by the
 * modulo-2^32 argument.  vpdpwssd (int16 x int16 pairs, at most 2^15 per
 * lane and step) stays within the same 2^14 * 131071 bound.
 *
 * Tails: the last dim % 64 (32 for the int16 kernels) elements are read
 * with zero-masking loads (fault-suppressing, nothing past a row is read).
 * For dot_i8_block the masked-off row bytes load as 0 and the XOR turns them
 * into 128, but the QUERY bytes there load as 0 too, so those lanes add
 * 128 * 0 = 0; the correction is taken over the same masked query bytes.
 *
 * Blocking (32 zmm registers): dot_i8_block takes up to 8 queries
 * (i8_qblock = PPLX_DOT_I8_QBLOCK_AVX512) and multiplies them by 3 rows per
 * step: 8 x 3 = 24 accumulators + 3 biased row vectors + 1 query vector = 28
 * registers (no spills: object code inspected, GCC 12).  Each row vector
 * feeds 8 multiply-adds and each query vector 3, so a step is 11 loads per
 * 24 vpdpbusd; Zen 4 loads one zmm per cycle and retires one vpdpbusd zmm
 * per cycle, so the loads must stay well under one per multiply-add (8 x 2,
 * as before, was 10 per 16 as written and 18 per 16 as GCC compiled it: it
 * folded each query load into both multiply-adds of the query; the query
 * vector is now pinned in a register, PPLX_DZ_FRESH).  Fewer queries take
 * more rows, to keep about 24 accumulators: 5-6 queries x 4 rows, 2-4
 * queries x 6 rows (4 x 6 = 31 registers).  The rows of a call left over
 * after its blocks of NR are one block of that many (not one at a time).
 * One query reads its rows one after the other (one sequential stream,
 * which the avx2 tier measured faster than interleaved rows), with two
 * accumulators per row alternating between 64-dim steps, and reduces 4 rows
 * together.
 *
 * Reduction: the NQ x NR accumulators (at most 24) are transposed and added
 * in a tree (vpunpck{l,h}dq, vpunpck{l,h}qdq, vshufi32x4 twice: 15 steps of
 * two shuffles and an add for 16 results, about three instructions a
 * result against the 16 vpdpbusd of a 1024-dim dot), pplx_dz_reduce.
 *
 * Prefetch: each row line PPLX_DOT_PREFETCH (2 KiB) ahead, as the avx2
 * kernel (measured there on Zen 3: 10 -> 11.5 GB/s for the one-query scan).
 * Not measured on AVX-512 hardware; for query groups after the first the
 * tile is already in cache and the hint is redundant, not harmful.
 */
#ifndef PPLX_DOT_AVX512_H
#define PPLX_DOT_AVX512_H

#include <string.h>
#include "avx2.h"

#if PPLX_COMPILE_AVX512

/* Loops over the queries and rows of a tile (constant trip counts after
 * inlining) must be unrolled so the accumulators live in registers: GCC
 * needs the pragma; clang unrolls them by itself and does worse with it. */
#if defined(__clang__)
#define PPLX_DZ_UNROLL
#else
#define PPLX_DZ_UNROLL _Pragma("GCC unroll 32")
#endif
/* After a loop, PPLX_DZ_FRESH(acc) for each accumulator: an empty asm that
 * "may change" it (no instruction).  Without it GCC (12) sees the int32
 * view of the accumulators the loop computes as also needed after the loop
 * (by the tail step and the reduction), keeps two copies of each loop-
 * carried value and, with 16 accumulators, copies ~28 zmm registers and
 * spills two per step (object code inspected; clang does not). */
#if defined(__GNUC__) && !defined(__clang__) && !defined(PPLX_SIMDE_X86)
#define PPLX_DZ_FRESH(v) __asm__("" : "+v"(v))
#else
#define PPLX_DZ_FRESH(v) (void)0
#endif

/* Queries per pplx_dot_i8_block_avx512 call (i8_qblock of the avx512 tier). */
#define PPLX_DOT_I8_QBLOCK_AVX512 8


/* Engine kinds: queries x rows. */
enum { PPLX_DZ_I8 = 0, PPLX_DZ_W8 = 1, PPLX_DZ_W16 = 2 };

/* Row vector of the step at element j (masked: the elements selected by k). */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline __m512i pplx_dz_row(int kind, const char *x, size_t j,
                                                                                   uint64_t k, int masked) {
    if (kind == PPLX_DZ_I8) {
        const __m512i v = masked ? pplx_mm512_maskz_loadu_epi8(k, x + j) : _mm512_loadu_si512((const void *)(x + j));
        return _mm512_xor_si512(v, _mm512_set1_epi8(-128)); /* x + 128 as u8 */
    }
    if (kind == PPLX_DZ_W8)
        return _mm512_cvtepi8_epi16(masked ? pplx_mm256_maskz_loadu_epi8((uint32_t)k, x + j)
                                           : _mm256_loadu_si256((const __m256i *)(const void *)(x + j)));
    return masked ? pplx_mm512_maskz_loadu_epi16((uint32_t)k, x + 2 * j) : _mm512_loadu_si512((const void *)(x + 2 * j));
}

__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline __m512i pplx_dz_query(int kind, const char *q,
                                                                                     size_t j, uint64_t k,
                                                                                     int masked) {
    if (kind == PPLX_DZ_I8)
        return masked ? pplx_mm512_maskz_loadu_epi8(k, q + j) : _mm512_loadu_si512((const void *)(q + j));
    return masked ? pplx_mm512_maskz_loadu_epi16((uint32_t)k, q + 2 * j) : _mm512_loadu_si512((const void *)(q + 2 * j));
}

__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline __m512i pplx_dz_madd(int kind, __m512i acc,
                                                                                    __m512i row, __m512i q) {
    return kind == PPLX_DZ_I8 ? _mm512_dpbusd_epi32(acc, row, q) : _mm512_dpwssd_epi32(acc, row, q);
}

/* The most row vectors one step holds (4 queries x 6 rows), and the most
 * accumulators of a tile (NQ x NR <= 24; reduced in groups of 4, so the
 * arrays are padded to 32). */
#define PPLX_DZ_RMAX 6
#define PPLX_DZ_AMAX 32

/* One step at element j for queries [0, nq) and rows [c0, c1) of the tile:
 * acc[i * nr + c + shift] += q_i . row_c over the step's elements. */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline void pplx_dz_step(
        int kind, const char *const *q, int nq, const char *const *x, int c0, int c1, int nr, int shift, size_t j,
        uint64_t k, int masked, __m512i *acc) {
    __m512i xv[PPLX_DZ_RMAX];
PPLX_DZ_UNROLL
    for (int c = c0; c < c1; c++) {
        /* one prefetch per step: per 64-byte line, or per half line for W8
         * (a branch to skip every other one costs GCC register copies) */
        _mm_prefetch(x[c] + (kind == PPLX_DZ_W16 ? 2 * j : j) + PPLX_DOT_PREFETCH, _MM_HINT_T0);
        xv[c] = pplx_dz_row(kind, x[c], j, k, masked);
    }
PPLX_DZ_UNROLL
    for (int i = 0; i < nq; i++) {
        __m512i qv = pplx_dz_query(kind, q[i], j, k, masked);
        /* In a register, loaded once: left to itself GCC folds the load into
         * every multiply-add of the query (a memory operand each), so a step
         * of 8 queries x 2 rows issued 18 vector loads for 16 vpdpbusd, and
         * Zen 4 loads one zmm per cycle: the loads, not the multiply-adds,
         * set the pace. */
        if (c1 - c0 > 1) PPLX_DZ_FRESH(qv);
PPLX_DZ_UNROLL
        for (int c = c0; c < c1; c++) acc[i * nr + c + shift] = pplx_dz_madd(kind, acc[i * nr + c + shift], xv[c], qv);
    }
}

/* Per 128-bit block: [a, b, a, b] partial sums. */
PPLX_TARGET_AVX512 static inline __m512i pplx_dz_red32(__m512i a, __m512i b) {
    return _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
}
/* Of two [a, b, a, b] and [c, d, c, d]: per block [a, b, c, d]. */
PPLX_TARGET_AVX512 static inline __m512i pplx_dz_red64(__m512i ab, __m512i cd) {
    return _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
}
/* Of u, v with blocks [u0 u1 u2 u3], [v0 v1 v2 v3]: [u0+u1, u2+u3, v0+v1, v2+v3]. */
PPLX_TARGET_AVX512 static inline __m512i pplx_dz_red128(__m512i u, __m512i v) {
    return _mm512_add_epi32(_mm512_shuffle_i32x4(u, v, 0x88), _mm512_shuffle_i32x4(u, v, 0xDD));
}

/* The n accumulators a[0..n) (n <= 24, a constant after inlining; a[n..)
 * may hold anything) -> d[0..n) = the sum of each one's 16 lanes; d has
 * room for PPLX_DZ_AMAX.  A transpose-and-add tree: each group of 4
 * accumulators becomes one zmm whose every 128-bit block holds partial sums
 * of the 4 (two unpack steps), four such groups one zmm of 16 sums (two
 * block-shuffle steps): 15 steps of two shuffles and an add for 16 sums,
 * about 3 instructions a result against the 16 vpdpbusd of a 1024-dim dot.
 * One or two groups left over are folded within their own zmm. */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline void pplx_dz_reduce(const __m512i *a, int n,
                                                                                   int32_t *d) {
    __m512i u[PPLX_DZ_AMAX / 4];
    const int ng = (n + 3) / 4;
PPLX_DZ_UNROLL
    for (int g = 0; g < ng; g++) {
        /* a group's missing accumulators count as zero (their sums are not stored) */
        const __m512i z = _mm512_setzero_si512();
        const __m512i a1 = 4 * g + 1 < n ? a[4 * g + 1] : z, a2 = 4 * g + 2 < n ? a[4 * g + 2] : z,
                      a3 = 4 * g + 3 < n ? a[4 * g + 3] : z;
        u[g] = pplx_dz_red64(pplx_dz_red32(a[4 * g], a1), pplx_dz_red32(a2, a3));
    }
    int g = 0;
PPLX_DZ_UNROLL
    for (; g + 3 <= ng; g += 4) {
        const __m512i u3 = g + 3 < ng ? u[g + 3] : _mm512_setzero_si512();
        _mm512_storeu_si512((void *)(d + 4 * g),
                            pplx_dz_red128(pplx_dz_red128(u[g], u[g + 1]), pplx_dz_red128(u[g + 2], u3)));
    }
    if (g + 2 == ng) {
        /* [u0 01, u0 23, u1 01, u1 23] -> [u0, u1, u0, u1]: the low half */
        const __m512i v = pplx_dz_red128(u[g], u[g + 1]);
        _mm256_storeu_si256((__m256i *)(void *)(d + 4 * g), _mm512_castsi512_si256(pplx_dz_red128(v, v)));
    } else if (g + 1 == ng) {
        const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(u[g]), _mm512_extracti64x4_epi64(u[g], 1));
        _mm_storeu_si128((__m128i *)(void *)(d + 4 * g),
                         _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)));
    }
}

/* One query x one row (the one-query tiles): two accumulators alternating
 * between steps, so consecutive multiply-adds do not wait for each other;
 * the first starts at init (the bias correction, or zero). */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline __m512i pplx_dz_row1(int kind, const char *q,
                                                                                    const char *x, size_t dim,
                                                                                    __m512i init) {
    const size_t step = kind == PPLX_DZ_I8 ? 64 : 32;
    const char *const qs[1] = {q}, *const xs[1] = {x};
    __m512i s[2] = {init, _mm512_setzero_si512()};
    size_t j = 0;
    for (; j + 2 * step <= dim; j += 2 * step) {
        pplx_dz_step(kind, qs, 1, xs, 0, 1, 1, 0, j, 0, 0, s);
        pplx_dz_step(kind, qs, 1, xs, 0, 1, 1, 1, j + step, 0, 0, s);
    }
    PPLX_DZ_FRESH(s[0]);
    PPLX_DZ_FRESH(s[1]);
    if (j + step <= dim) {
        pplx_dz_step(kind, qs, 1, xs, 0, 1, 1, 0, j, 0, 0, s);
        j += step;
    }
    if (j < dim) pplx_dz_step(kind, qs, 1, xs, 0, 1, 1, 1, j, ~(uint64_t)0 >> (64 - (dim - j)), 1, s);
    return _mm512_add_epi32(s[0], s[1]);
}

/* NQ queries x NR rows (NQ * NR <= 24, NR <= PPLX_DZ_RMAX; constants after
 * inlining), dim elements: d[i * NR + c] = q_i . row_c (d: PPLX_DZ_AMAX
 * entries).  The accumulators of query i start at bias[i] (the int8
 * kernel's correction, lane by lane; NULL: zero).  One query: its rows one
 * after the other. */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline void pplx_dotz_tile(
        int kind, const char *const *q, int nq, const char *x0, size_t xbytes, int nr, size_t dim,
        const __m512i *bias, int32_t *d) {
    const size_t step = kind == PPLX_DZ_I8 ? 64 : 32;
    const int seq = nq == 1;
    const char *x[PPLX_DZ_RMAX];
PPLX_DZ_UNROLL
    for (int c = 0; c < PPLX_DZ_RMAX; c++) x[c] = x0 + (size_t)(c < nr ? c : 0) * xbytes;
    __m512i a[PPLX_DZ_AMAX];
PPLX_DZ_UNROLL
    for (int i = 0; i < nq * nr; i++) a[i] = bias ? bias[i / nr] : _mm512_setzero_si512();
    if (seq) {
PPLX_DZ_UNROLL
        for (int c = 0; c < nr; c++) a[c] = pplx_dz_row1(kind, q[0], x[c], dim, a[c]);
    } else {
        size_t j = 0;
        for (; j + step <= dim; j += step) pplx_dz_step(kind, q, nq, x, 0, nr, nr, 0, j, 0, 0, a);
PPLX_DZ_UNROLL
        for (int i = 0; i < nq * nr; i++) PPLX_DZ_FRESH(a[i]);
        if (j < dim) pplx_dz_step(kind, q, nq, x, 0, nr, nr, 0, j, ~(uint64_t)0 >> (64 - (dim - j)), 1, a);
    }
    pplx_dz_reduce(a, nq * nr, d);
}

/* Rows of one (NQ, NR) combination: tiles of NR rows, then the NR - 1 or
 * fewer rows left over as one tile of that many. */
#define PPLX_DZ_TILE(KIND, NQ, NR)                                                                             \
    {                                                                                                          \
        pplx_dotz_tile(KIND, q, NQ, X8 + r * xbytes, xbytes, NR, dim, bias, d);                                \
        for (int i = 0; i < (NQ); i++) memcpy(out + (size_t)i * ostride + r, d + i * (NR), (NR) * 4);          \
    }
#define PPLX_DZ_ROWS(KIND, NQ, NR)                                                                             \
    {                                                                                                          \
        size_t r = 0;                                                                                          \
        int32_t d[PPLX_DZ_AMAX];                                                                               \
        for (; r + (NR) <= nrows; r += (NR)) PPLX_DZ_TILE(KIND, NQ, NR)                                        \
        switch (nrows - r) {                                                                                   \
            case 0: break;                                                                                     \
            case 1: PPLX_DZ_TILE(KIND, NQ, 1) break;                                                           \
            case 2: if ((NR) > 2) PPLX_DZ_TILE(KIND, NQ, 2) break;                                             \
            case 3: if ((NR) > 3) PPLX_DZ_TILE(KIND, NQ, 3) break;                                             \
            case 4: if ((NR) > 4) PPLX_DZ_TILE(KIND, NQ, 4) break;                                             \
            default: if ((NR) > 5) PPLX_DZ_TILE(KIND, NQ, 5) break;                                            \
        }                                                                                                      \
    }

/* The bias correction of a query: lane l holds -128 times the sum of the
 * query bytes that vpdpbusd adds into lane l (bytes 4l..4l+3 of every 64-
 * byte step, the masked tail included): |.| <= 128 * 128 * 8192 = 2^27. */
PPLX_TARGET_AVX512 static __m512i pplx_dz_bias(const int8_t *q, size_t dim) {
    const __m512i ones = _mm512_set1_epi8(1);
    __m512i a = _mm512_setzero_si512();
    size_t j = 0;
    for (; j + 64 <= dim; j += 64) a = _mm512_dpbusd_epi32(a, ones, _mm512_loadu_si512((const void *)(q + j)));
    PPLX_DZ_FRESH(a);
    if (j < dim) a = _mm512_dpbusd_epi32(a, ones, pplx_mm512_maskz_loadu_epi8(~(uint64_t)0 >> (64 - (dim - j)), q + j));
    return _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(a, 7));
}

/* int8 queries as stored (1 <= nq <= PPLX_DOT_I8_QBLOCK_AVX512) x int8 rows. */
PPLX_TARGET_AVX512 static void pplx_dot_i8_block_avx512(const int8_t *Q, size_t nq, size_t qstride, const int8_t *X,
                                                       size_t nrows, size_t dim, size_t xstride, int32_t *out,
                                                       size_t ostride) {
    if (nq == 0 || nq > PPLX_DOT_I8_QBLOCK_AVX512) return; /* outside the contract (kernels.h): touch nothing */
    const char *q[PPLX_DOT_I8_QBLOCK_AVX512];
    __m512i bias[PPLX_DOT_I8_QBLOCK_AVX512];
    for (size_t i = 0; i < PPLX_DOT_I8_QBLOCK_AVX512; i++) {
        q[i] = (const char *)(Q + (i < nq ? i : 0) * qstride);
        bias[i] = i < nq ? pplx_dz_bias(Q + i * qstride, dim) : _mm512_setzero_si512();
    }
    const char *X8 = (const char *)X;
    const size_t xbytes = xstride;
    switch (nq) {
        case 1: PPLX_DZ_ROWS(PPLX_DZ_I8, 1, 4) break;
        case 2: PPLX_DZ_ROWS(PPLX_DZ_I8, 2, 6) break;
        case 3: PPLX_DZ_ROWS(PPLX_DZ_I8, 3, 6) break;
        case 4: PPLX_DZ_ROWS(PPLX_DZ_I8, 4, 6) break;
        case 5: PPLX_DZ_ROWS(PPLX_DZ_I8, 5, 4) break;
        case 6: PPLX_DZ_ROWS(PPLX_DZ_I8, 6, 4) break;
        case 7: PPLX_DZ_ROWS(PPLX_DZ_I8, 7, 3) break;
        default: PPLX_DZ_ROWS(PPLX_DZ_I8, 8, 3) break;
    }
}

/* int16 queries (1 <= nq <= 4) x int8 rows (KIND W8) or int16 rows (W16). */
#define PPLX_DZ_W_BLOCK(KIND, XE)                                                                              \
    {                                                                                                          \
        if (nq == 0 || nq > 4) return; /* outside the contract (kernels.h): touch nothing */                   \
        const char *q[4];                                                                                      \
        for (size_t i = 0; i < 4; i++) q[i] = (const char *)(Q + (i < nq ? i : 0) * qstride);                  \
        const __m512i *bias = NULL;                                                                            \
        const char *X8 = (const char *)X;                                                                      \
        const size_t xbytes = xstride * (XE);                                                                  \
        switch (nq) {                                                                                          \
            case 1: PPLX_DZ_ROWS(KIND, 1, 4) break;                                                            \
            case 2: PPLX_DZ_ROWS(KIND, 2, 4) break;                                                            \
            case 3: PPLX_DZ_ROWS(KIND, 3, 4) break;                                                            \
            default: PPLX_DZ_ROWS(KIND, 4, 4) break;                                                           \
        }                                                                                                      \
    }

PPLX_TARGET_AVX512 static void pplx_dot_block_avx512(const int16_t *Q, size_t nq, size_t qstride, const int8_t *X,
                                                    size_t nrows, size_t dim, size_t xstride, int32_t *out,
                                                    size_t ostride) PPLX_DZ_W_BLOCK(PPLX_DZ_W8, 1)

PPLX_TARGET_AVX512 static void pplx_dot16_block_avx512(const int16_t *Q, size_t nq, size_t qstride,
                                                      const int16_t *X, size_t nrows, size_t dim, size_t xstride,
                                                      int32_t *out, size_t ostride) PPLX_DZ_W_BLOCK(PPLX_DZ_W16, 2)

#undef PPLX_DZ_W_BLOCK
#undef PPLX_DZ_ROWS
#undef PPLX_DZ_TILE

/* ---- Sixteen queries in the lanes of one vector: dot_i8t_filter ----
 *
 * The block kernel above gives each (query, row) pair its own accumulator
 * of 16 lanes and must sum the lanes at the end (about 3 shuffle-and-add
 * instructions a result, on the pipes the multiply-adds need), then the
 * scan tests every score against its heap.  Here the 16 lanes are 16
 * queries: the queries come transposed (4 bytes of each query per dword
 * lane, dot/serial.h gives the layout), each 4 bytes of a row are
 * broadcast to every lane, and one vpdpbusd adds those 4 dims' products to
 * all 16 queries' dots.  After a row's last dword the vector holds its 16
 * dots: nothing to sum, and the heap test is one compare (vpcmpd; cosine: a
 * conversion, a multiply by the row's norm and vcmpps) of all 16.
 *
 * The operands swap roles: vpdpbusd multiplies unsigned bytes (the first
 * source, the register) by signed ones (the second, which may be the
 * broadcast from memory), so the QUERIES carry the +128 bias (made once
 * per search, in Qt) and the rows are read as they are.  The correction is
 * then per row: sum_j (q_j + 128) x_j = dot + 128 rowsum, and the
 * accumulator starts at -128 rowsum.  The row sums are computed once per
 * tile (by the call for the first query group, sums_known = 0: vpsadbw of
 * the rows XOR 0x80) and read by the other groups' calls.
 *
 * Exactness: each step adds 4 products (q + 128) x of at most 255 * 128;
 * a lane starting at -128 rowsum holds, after the dims done so far,
 * sum_done q x - 128 sum_rest x, at most 2^14 (done + rest) = 2^14 dim in
 * magnitude: below 2^31 for dim <= PPLX_DOT_MAX_DIM, and at the end exactly
 * the dot.  128 rowsum itself is at most 2^14 * 131071 too.  Dims past a
 * multiple of 4: the row's last 1-3 bytes are read alone (no byte past the
 * row), and Qt is 0 in the lanes' bytes past dim, so they add nothing.
 *
 * Blocking: 12 rows a step (12 accumulators and one query vector; the
 * scans' int8 tiles are multiples of 12 rows), then 4, then 1.  Per dword
 * of the rows: one 64-byte load of Qt and 12 vpdpbusd, each with its
 * row's 4 bytes broadcast from memory.  Measured on Zen 4 (one thread,
 * 256 queries x 100,000 rows of 1024 dims, groups of 16 over tiles of 60
 * rows): 234 GMAC/s in cache with 12 rows a step (4: 191, 8: 251 on 56 of
 * the 60 rows), 212 GMAC/s over the whole scan, against 188 for the block
 * kernel and the scan's separate test. */
#define PPLX_DT_LANES 16

/* The sum of a row's dim int8 values: vpsadbw of (x XOR 0x80) = x + 128
 * against zero, minus 128 for every byte loaded (masked-off ones load as 0
 * and count 128 too). */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline int32_t pplx_dt_rowsum(const int8_t *x,
                                                                                     size_t dim) {
    const __m512i bias = _mm512_set1_epi8(-128), z = _mm512_setzero_si512();
    __m512i s = z;
    size_t j = 0, loaded = 0;
    for (; j + 64 <= dim; j += 64, loaded += 64)
        s = _mm512_add_epi64(s, _mm512_sad_epu8(_mm512_xor_si512(_mm512_loadu_si512((const void *)(x + j)), bias), z));
    if (j < dim) {
        const __m512i v = pplx_mm512_maskz_loadu_epi8(~(uint64_t)0 >> (64 - (dim - j)), x + j);
        s = _mm512_add_epi64(s, _mm512_sad_epu8(_mm512_xor_si512(v, bias), z));
        loaded += 64;
    }
    const __m256i h = _mm256_add_epi64(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
    const __m128i g = _mm_add_epi64(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    return (int32_t)((int64_t)_mm_cvtsi128_si64(g) + (int64_t)_mm_extract_epi64(g, 1) - 128 * (int64_t)loaded);
}

/* The 4 bytes of a row at p (n <= 4 of them; the rest 0) in every lane. */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline __m512i pplx_dt_word(const int8_t *p, size_t n) {
    int32_t v = 0;
    memcpy(&v, p, n);
    return _mm512_set1_epi32(v);
}

/* The 16 lanes' dots with NR rows at x (xstride apart) into a[0..NR). */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline void pplx_dt_rows(const uint8_t *Qt, size_t dim,
                                                                                 const int8_t *x, size_t xstride,
                                                                                 const int32_t *rowsum, int nr,
                                                                                 __m512i *a) {
    const size_t nd = dim / 4;
PPLX_DZ_UNROLL
    for (int c = 0; c < nr; c++) a[c] = _mm512_set1_epi32(-128 * rowsum[c]);
#pragma GCC unroll 4
    for (size_t j = 0; j < nd; j++) {
        const __m512i q = _mm512_loadu_si512((const void *)(Qt + 64 * j));
PPLX_DZ_UNROLL
        for (int c = 0; c < nr; c++) {
            a[c] = _mm512_dpbusd_epi32(a[c], q, pplx_dt_word(x + c * xstride + 4 * j, 4));
            PPLX_DZ_FRESH(a[c]); /* one chain per row, in order (see PPLX_DZ_FRESH) */
        }
    }
    if (dim % 4) {
        const __m512i q = _mm512_loadu_si512((const void *)(Qt + 64 * nd));
PPLX_DZ_UNROLL
        for (int c = 0; c < nr; c++) a[c] = _mm512_dpbusd_epi32(a[c], q, pplx_dt_word(x + c * xstride + 4 * nd, dim % 4));
    }
}

/* Rows [r, r + nr) with dots a[0..nr): record those some lane keeps. */
__attribute__((always_inline)) PPLX_TARGET_AVX512 static inline size_t pplx_dt_keep(const __m512i *a, int nr,
                                                                                   size_t r, __m512i lim,
                                                                                   __m512 flim, const float *xn,
                                                                                   uint32_t *hrow, int32_t *hd,
                                                                                   size_t nh) {
    unsigned m[12], any = 0;
PPLX_DZ_UNROLL
    for (int c = 0; c < nr; c++) {
        m[c] = xn ? (unsigned)_mm512_cmp_ps_mask(pplx_mm512_cvtepi32_ps(a[c]),
                                                 _mm512_mul_ps(flim, _mm512_set1_ps(xn[r + (size_t)c])), _CMP_NLT_UQ)
                  : (unsigned)_mm512_cmpgt_epi32_mask(a[c], lim);
        any |= m[c];
    }
    if (!any) return nh;
    for (int c = 0; c < nr; c++) {
        if (!m[c]) continue;
        hrow[nh] = (uint32_t)(r + (size_t)c);
        _mm512_storeu_si512((void *)(hd + PPLX_DT_LANES * nh), a[c]);
        nh++;
    }
    return nh;
}

#define PPLX_DT_STEP(NR)                                                                                       \
    for (; r + (NR) <= nrows; r += (NR)) {                                                                     \
        __m512i a[NR];                                                                                         \
        pplx_dt_rows(Qt, dim, X + r * xstride, xstride, rowsum + r, NR, a);                                    \
        nh = pplx_dt_keep(a, NR, r, lim, flim, xn, hrow, hd, nh);                                              \
    }

PPLX_TARGET_AVX512 static size_t pplx_dot_i8t_filter_avx512(const uint8_t *Qt, const int8_t *X, size_t nrows,
                                                            size_t dim, size_t xstride, int32_t *rowsum,
                                                            int sums_known, const int32_t *lim32,
                                                            const float *flim32, const float *xn, uint32_t *hrow,
                                                            int32_t *hd) {
    if (!sums_known)
        for (size_t r = 0; r < nrows; r++) rowsum[r] = pplx_dt_rowsum(X + r * xstride, dim);
    const __m512i lim = xn ? _mm512_setzero_si512() : _mm512_loadu_si512((const void *)lim32);
    const __m512 flim = xn ? _mm512_loadu_ps(flim32) : _mm512_setzero_ps();
    size_t nh = 0, r = 0;
    PPLX_DT_STEP(12)
    PPLX_DT_STEP(4)
    PPLX_DT_STEP(1)
    return nh;
}
#undef PPLX_DT_STEP

#endif /* PPLX_COMPILE_AVX512 */
#endif
