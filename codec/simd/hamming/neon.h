/* hamming/neon.h - the neon tier of the hamming kernels (the reference:
 * hamming/serial.h).  Baseline AArch64 Advanced SIMD, no attribute.  Not
 * measured here (this machine is x86); instruction choices from the Arm
 * Cortex-A7x / Neoverse N1 software optimization guides.
 *
 * Per 16 bytes and query: veorq_u8 (EOR), vcntq_u8 (CNT: the popcount of
 * each byte, 0..8) and vaddq_u8 into a per-pair byte accumulator; every 31
 * chunks (496 bytes, so a byte lane holds at most 31 * 8 = 248 < 256) the
 * bytes are widened pairwise, vpaddlq_u8 (UADDLP) to 8 uint16, and added
 * pairwise into the pair's uint32x4 with vpadalq_u16 (UADALP), which cannot
 * overflow for any width.  So the steady state is three simple ALU
 * instructions per 16 bytes and query, which the Cortex-A7x / Neoverse
 * guides list for both ASIMD pipes; adding the counts straight into wider
 * lanes (UADALP per chunk) would put the pairwise-accumulate, a one-pipe,
 * longer-latency instruction there, on every chunk.  The common widths (128
 * and 320 bytes: 8 and 20 chunks) fit one block; their bodies are compiled
 * with the width a constant.
 *
 * The neon_dotprod alternative, UDOT of the CNT bytes with a vector of ones
 * (vdotq_u32), sums 4 bytes into uint32 lanes in one instruction; it would
 * replace the vaddq_u8 one for one and save only the per-block widening
 * (2 instructions per 31 chunks), with a longer latency than ADD: not
 * clearly better, so the neon kernel serves both tiers.
 *
 * Blocking as in the avx512 tier: NQ queries x NR rows with NQ * NR
 * = 4 pairs at most (4 x 1, 2 x 2, 1 x 4): each row vector loaded feeds every
 * query, and the four uint32x4 sums reduce together with three vpaddq_u32
 * (ADDP) into one vector of four distances (one 16-byte store for one query
 * and four rows).  One query reads its rows one after the other (a single
 * sequential stream).  The last w % 16 bytes: an 8-byte half chunk (vld1_u8,
 * zero-extended to 16 lanes) if 8 or more are left, then the last 0-7 bytes
 * from a zeroed 16-byte copy (NEON has no masked loads; nothing past a code
 * is read).  No software prefetch: the cores' stream prefetchers follow a
 * sequential read, and the avx2 tier's distance (tuned on Zen 3) is not
 * transferable without measurements.
 *
 * Exactness: counts only, in uint32 lanes; int32 results (w < 2^28 bytes).
 */
#ifndef PPLX_HAMMING_NEON_H
#define PPLX_HAMMING_NEON_H

#include <string.h>
#include "serial.h"

#if PPLX_COMPILE_NEON

/* Loops over the queries and rows of a tile (constant trip counts after
 * inlining) must be unrolled so the accumulators stay in registers. */
#if defined(__clang__)
#define PPLX_HN_UNROLL
#else
#define PPLX_HN_UNROLL _Pragma("GCC unroll 16")
#endif

/* Bytes [j, j + 16) of p; the half chunk (8 bytes, the high lanes zero); or
 * the last n < 8 bytes in a zeroed block. */
__attribute__((always_inline)) static inline uint8x16_t pplx_hn_load(const uint8_t *p, size_t j, int part,
                                                                     size_t n) {
    if (part == 0) return vld1q_u8(p + j);
    if (part == 1) return vcombine_u8(vld1_u8(p + j), vdup_n_u8(0));
    uint8_t b[16] = {0};
    memcpy(b, p + j, n < 8 ? n : 8); /* n < 8 here (the bound for GCC -O0's overflow warning) */
    return vld1q_u8(b);
}

/* acc[i * nr + c] += the popcounts of q_i ^ row_c over bytes [j, j + n):
 * n a multiple of 16, at most 31 * 16 (part 0); or one partial chunk
 * (part 1: 8 bytes, part 2: the n < 8 left). */
__attribute__((always_inline)) static inline void pplx_hn_span(const uint8_t *const *q, int nq,
                                                               const uint8_t *const *x, int c0, int c1, int nr,
                                                               size_t j, size_t n, int part, uint32x4_t *acc) {
    uint8x16_t cnt[4];
PPLX_HN_UNROLL
    for (int k = 0; k < 4; k++) cnt[k] = vdupq_n_u8(0);
    const size_t end = part ? j + 16 : j + n;
#pragma GCC unroll 4
    for (size_t o = j; o < end; o += 16) {
        uint8x16_t xv[4];
PPLX_HN_UNROLL
        for (int c = c0; c < c1; c++) xv[c] = pplx_hn_load(x[c], o, part, n);
PPLX_HN_UNROLL
        for (int i = 0; i < nq; i++) {
            const uint8x16_t qv = pplx_hn_load(q[i], o, part, n);
PPLX_HN_UNROLL
            for (int c = c0; c < c1; c++)
                cnt[i * nr + c] = vaddq_u8(cnt[i * nr + c], vcntq_u8(veorq_u8(qv, xv[c])));
        }
    }
PPLX_HN_UNROLL
    for (int i = 0; i < nq; i++)
PPLX_HN_UNROLL
        for (int c = c0; c < c1; c++) acc[i * nr + c] = vpadalq_u16(acc[i * nr + c], vpaddlq_u8(cnt[i * nr + c]));
}

/* Rows [c0, c1) of the tile against the queries, w bytes. */
__attribute__((always_inline)) static inline void pplx_hn_rows(const uint8_t *const *q, int nq,
                                                               const uint8_t *const *x, int c0, int c1, int nr,
                                                               size_t w, uint32x4_t *acc) {
    const size_t w16 = w & ~(size_t)15;
    size_t j = 0;
    for (; j + 496 <= w16; j += 496) pplx_hn_span(q, nq, x, c0, c1, nr, j, 496, 0, acc);
    if (j < w16) pplx_hn_span(q, nq, x, c0, c1, nr, j, w16 - j, 0, acc);
    j = w16;
    if (j + 8 <= w) {
        pplx_hn_span(q, nq, x, c0, c1, nr, j, 8, 1, acc);
        j += 8;
    }
    if (j < w) pplx_hn_span(q, nq, x, c0, c1, nr, j, w - j, 2, acc);
}

/* NQ queries x NR rows (NQ * NR <= 4; constants after inlining, and w too
 * for the specialised widths): the distances, lane i * NR + c. */
__attribute__((always_inline)) static inline uint32x4_t pplx_hamming_tile_neon(const uint8_t *const *q, int nq,
                                                                               const uint8_t *x0, size_t xstride,
                                                                               int nr, size_t w) {
    const uint8_t *x[4];
PPLX_HN_UNROLL
    for (int c = 0; c < 4; c++) x[c] = x0 + (size_t)(c < nr ? c : 0) * xstride;
    uint32x4_t acc[4];
PPLX_HN_UNROLL
    for (int k = 0; k < 4; k++) acc[k] = vdupq_n_u32(0);
    if (nq == 1) { /* one query: row after row */
        pplx_hn_rows(q, 1, x, 0, 1, nr, w, acc);
        if (nr > 1) pplx_hn_rows(q, 1, x, 1, 2, nr, w, acc);
        if (nr > 2) pplx_hn_rows(q, 1, x, 2, 3, nr, w, acc);
        if (nr > 3) pplx_hn_rows(q, 1, x, 3, 4, nr, w, acc);
    } else { /* more: all rows of the tile at each step */
        pplx_hn_rows(q, nq, x, 0, nr, nr, w, acc);
    }
    return vpaddq_u32(vpaddq_u32(acc[0], acc[1]), vpaddq_u32(acc[2], acc[3]));
}

/* Rows of one (NQ, NR, W) combination, W == 0 meaning "any width"; the rows
 * left over (nrows % NR) one at a time. */
#define PPLX_HN_ROWS(NQ, NR, W)                                                                                \
    {                                                                                                          \
        const size_t w_ = (W) ? (size_t)(W) : w;                                                               \
        size_t r = 0;                                                                                          \
        for (; r + (NR) <= nrows; r += (NR)) {                                                                 \
            const uint32x4_t s = pplx_hamming_tile_neon(q, NQ, X + r * xstride, xstride, NR, w_);              \
            if ((NQ) == 1 && (NR) == 4) {                                                                      \
                vst1q_s32(out + r, vreinterpretq_s32_u32(s));                                                  \
            } else {                                                                                           \
                int32_t d[4];                                                                                  \
                vst1q_s32(d, vreinterpretq_s32_u32(s));                                                        \
                for (int i = 0; i < (NQ); i++)                                                                 \
                    for (int c = 0; c < (NR); c++) out[(size_t)i * ostride + r + (size_t)c] = d[i * (NR) + c]; \
            }                                                                                                  \
        }                                                                                                      \
        for (; r < nrows; r++) {                                                                               \
            int32_t d[4];                                                                                      \
            vst1q_s32(d, vreinterpretq_s32_u32(pplx_hamming_tile_neon(q, NQ, X + r * xstride, xstride, 1, w_))); \
            for (int i = 0; i < (NQ); i++) out[(size_t)i * ostride + r] = d[i];                                \
        }                                                                                                      \
    }

static void pplx_hamming_block_neon(const uint8_t *Q, size_t nq, size_t qstride, const uint8_t *X, size_t nrows,
                                    size_t w, size_t xstride, int32_t *out, size_t ostride) {
    if (nq == 0 || nq > 4) return; /* outside the contract (kernels.h): touch nothing */
    const uint8_t *q[4];
    for (size_t i = 0; i < 4; i++) q[i] = Q + (i < nq ? i : 0) * qstride;
    switch (nq) {
        case 1:
            if (w == 128) PPLX_HN_ROWS(1, 4, 128)
            else if (w == 320) PPLX_HN_ROWS(1, 4, 320)
            else PPLX_HN_ROWS(1, 4, 0)
            break;
        case 2: PPLX_HN_ROWS(2, 2, 0) break;
        case 3: PPLX_HN_ROWS(3, 1, 0) break;
        default:
            if (w == 128) PPLX_HN_ROWS(4, 1, 128)
            else if (w == 320) PPLX_HN_ROWS(4, 1, 320)
            else PPLX_HN_ROWS(4, 1, 0)
            break;
    }
}
#undef PPLX_HN_ROWS

#endif /* PPLX_COMPILE_NEON */
#endif
