/* dot/neon.h - the neon and neon_dotprod tiers of the dot kernels (the
 * reference: dot/serial.h).  Not measured here (this machine is x86);
 * instruction choices from the Arm Cortex-A72/A76 and Neoverse N1
 * software optimization guides.
 *
 * neon (baseline AArch64 Advanced SIMD), one engine (pplx_dn_tile: NQ
 * queries x NR rows, one int32x4 accumulator per pair) for three kernels,
 * 16 dimensions per step:
 *   dot_i8_block  int8 queries as stored x int8 rows: vmull_s8 /
 *                 vmull_high_s8 (SMULL, SMULL2) multiply 8 + 8 byte pairs
 *                 into int16 (ONE product each, |x q| <= 2^14: fits), then
 *                 vpadalq_s16 (SADALP) adds adjacent int16 pairs into the
 *                 int32 accumulator.  Never a multiply-accumulate into int16
 *                 (SMLAL.8H): two products (-128)(-128) already make 32768.
 *                 This is what the neon tier's scans call (i8_qblock 8):
 *                 no int16 copy of the queries or of the tiles.
 *   dot_block     int16 queries x int8 rows: the 16 row bytes sign-extended
 *                 once per step (SXTL, SXTL2, shared by the queries), then
 *                 vmlal_s16 / vmlal_high_s16 (SMLAL, SMLAL2: int16 x int16
 *                 into int32 lanes, exact for any int16 query).
 *   dot16_block   int16 x int16: SMLAL, SMLAL2.
 * The same work per 16 dims and pair (4 instructions) in the three; the
 * int8 one reads half the bytes, and by the Cortex-A7x guides' tables SMULL
 * and SADALP issue to different ASIMD pipes where SMLAL needs the multiply
 * pipe (not measured).
 *
 * neon_dotprod (Armv8.2 DotProd): dot_i8_block with vdotq_s32 (SDOT: 4
 * signed x signed byte products summed into each int32 lane, exact), one
 * instruction per 16 dims and pair instead of four; i8_qblock 8.
 *
 * Exactness: no bias and no wraparound here.  Every partial sum of a lane
 * is a sum of true products of the row's dimensions, so its magnitude is at
 * most 2^14 * 131071 < 2^31 (PPLX_DOT_MAX_DIM).
 *
 * Blocking (32 q registers).  SDOT: 5-8 queries x 2 rows = 10-16
 * accumulators + 2 row vectors + 1 query vector <= 19 registers, 2-4
 * queries x 4 rows (8-16 accumulators): each row vector feeds up to 8
 * queries, each query vector 2-4 rows, and the many independent
 * accumulators hide SDOT's latency.  SMULL + SADALP: 4 instructions per pair
 * and step, so 8 accumulators (2 x 4 rows, 3-4 x 2, 5-8 x 1) keep the pipes
 * busy and the loads (at most 9 per 32 multiplies) are not the limit; with
 * 16, GCC schedules a step's 32 products early and spills (object code
 * inspected).  The int16 kernels take 2 rows (their row and query vectors
 * are two registers each).  One query reads its rows one after the other
 * (one sequential stream) with 2-4 accumulators per row, and reduces 4 rows
 * together.  8 queries per call (vs 4) halve how often the scans re-read a
 * tile from L2.
 *
 * Reduction: vpaddq_s32 (ADDP) trees, 4 accumulators -> one int32x4 of 4
 * results (3 ADDP).  Tails (dim % 16): the elements left are copied into a
 * zeroed 16-element block (NEON has no masked loads) and go through the
 * same step; zeros add nothing, and no byte past a row is read.  No software
 * prefetch: Arm cores' stream prefetchers follow one sequential stream, and
 * the avx2 tier's distance was tuned on Zen 3, not transferable unmeasured.
 */
#ifndef PPLX_DOT_NEON_H
#define PPLX_DOT_NEON_H

#include <string.h>
#include "serial.h"

#if PPLX_COMPILE_NEON

/* Queries per dot_i8_block call. */
#define PPLX_DOT_I8_QBLOCK_NEON 8
#define PPLX_DOT_I8_QBLOCK_NEON_DOTPROD 8

/* Loops over the queries and rows of a tile (constant trip counts after
 * inlining) must be unrolled so the accumulators stay in registers. */
#if defined(__clang__)
#define PPLX_DN_UNROLL
#else
#define PPLX_DN_UNROLL _Pragma("GCC unroll 16")
#endif

/* The first n (< 16) values at p in a zeroed block. */
static inline int8x16_t pplx_dn_tail_s8(const int8_t *p, size_t n) {
    int8_t b[16] = {0};
    memcpy(b, p, n);
    return vld1q_s8(b);
}

static inline int16x8x2_t pplx_dn_tail_s16(const int16_t *p, size_t n) {
    int16_t b[16] = {0};
    memcpy(b, p, n * 2);
    int16x8x2_t v;
    v.val[0] = vld1q_s16(b);
    v.val[1] = vld1q_s16(b + 8);
    return v;
}

/* [sum a0, sum a1, sum a2, sum a3] */
static inline int32x4_t pplx_dn_red4(int32x4_t a0, int32x4_t a1, int32x4_t a2, int32x4_t a3) {
    return vpaddq_s32(vpaddq_s32(a0, a1), vpaddq_s32(a2, a3));
}

/* a[0..n) (n <= 16, a constant after inlining) -> d[k] = sum of a[k]. */
__attribute__((always_inline)) static inline void pplx_dn_reduce(const int32x4_t *a, int n, int32_t *d) {
    vst1q_s32(d, pplx_dn_red4(a[0], a[1], a[2], a[3]));
    if (n > 4) vst1q_s32(d + 4, pplx_dn_red4(a[4], a[5], a[6], a[7]));
    if (n > 8) vst1q_s32(d + 8, pplx_dn_red4(a[8], a[9], a[10], a[11]));
    if (n > 12) vst1q_s32(d + 12, pplx_dn_red4(a[12], a[13], a[14], a[15]));
}

/* ---- neon: the engine of the three kernels --------------------------------- */

enum { PPLX_DN_I8 = 0, PPLX_DN_W8 = 1, PPLX_DN_W16 = 2 };

/* 16 elements of a row or query: bytes (b) or int16 halves (h). */
typedef struct {
    int8x16_t b;
    int16x8x2_t h;
} pplx_dn_vec;

/* Row c at element j (masked: the rem < 16 elements left, zero-padded). */
__attribute__((always_inline)) static inline pplx_dn_vec pplx_dn_row(int kind, const char *x, size_t j, size_t rem,
                                                                     int masked) {
    pplx_dn_vec v;
    if (kind == PPLX_DN_W16) {
        const int16_t *p = (const int16_t *)(const void *)x + j;
        if (masked) {
            v.h = pplx_dn_tail_s16(p, rem);
        } else {
            v.h.val[0] = vld1q_s16(p);
            v.h.val[1] = vld1q_s16(p + 8);
        }
        v.b = vdupq_n_s8(0);
        return v;
    }
    const int8_t *p = (const int8_t *)(const void *)x + j;
    v.b = masked ? pplx_dn_tail_s8(p, rem) : vld1q_s8(p);
    if (kind == PPLX_DN_W8) { /* SXTL, SXTL2: once per row and step */
        v.h.val[0] = vmovl_s8(vget_low_s8(v.b));
        v.h.val[1] = vmovl_high_s8(v.b);
    } else {
        v.h.val[0] = v.h.val[1] = vdupq_n_s16(0);
    }
    return v;
}

/* Query at element j: int8 for I8, int16 for W8 / W16. */
__attribute__((always_inline)) static inline pplx_dn_vec pplx_dn_query(int kind, const char *q, size_t j, size_t rem,
                                                                       int masked) {
    return pplx_dn_row(kind == PPLX_DN_I8 ? PPLX_DN_I8 : PPLX_DN_W16, q, j, rem, masked);
}

/* *lo / *hi += the products of the step (the same accumulator or two). */
__attribute__((always_inline)) static inline void pplx_dn_madd(int kind, int32x4_t *lo, int32x4_t *hi,
                                                               const pplx_dn_vec *r, const pplx_dn_vec *q) {
    if (kind == PPLX_DN_I8) {
        *lo = vpadalq_s16(*lo, vmull_s8(vget_low_s8(r->b), vget_low_s8(q->b)));
        *hi = vpadalq_s16(*hi, vmull_high_s8(r->b, q->b));
    } else {
        *lo = vmlal_s16(*lo, vget_low_s16(r->h.val[0]), vget_low_s16(q->h.val[0]));
        *hi = vmlal_high_s16(*hi, r->h.val[0], q->h.val[0]);
        *lo = vmlal_s16(*lo, vget_low_s16(r->h.val[1]), vget_low_s16(q->h.val[1]));
        *hi = vmlal_high_s16(*hi, r->h.val[1], q->h.val[1]);
    }
}

/* One step at element j for queries [0, nq) and rows [c0, c1):
 * acc[i * nr + c] (and acc[i * nr + c + hi], the second accumulator). */
__attribute__((always_inline)) static inline void pplx_dn_step(int kind, const char *const *q, int nq,
                                                               const char *const *x, int c0, int c1, int nr, int lo,
                                                               int hi, size_t j, size_t rem, int masked,
                                                               int32x4_t *acc) {
    pplx_dn_vec xv[4];
PPLX_DN_UNROLL
    for (int c = c0; c < c1; c++) xv[c] = pplx_dn_row(kind, x[c], j, rem, masked);
PPLX_DN_UNROLL
    for (int i = 0; i < nq; i++) {
        const pplx_dn_vec qv = pplx_dn_query(kind, q[i], j, rem, masked);
PPLX_DN_UNROLL
        for (int c = c0; c < c1; c++)
            pplx_dn_madd(kind, &acc[i * nr + c + lo], &acc[i * nr + c + hi], &xv[c], &qv);
    }
}

/* One query x one row: four accumulators, two per step, alternating. */
__attribute__((always_inline)) static inline int32x4_t pplx_dn_row1(int kind, const char *q, const char *x,
                                                                    size_t dim) {
    const char *const qs[1] = {q}, *const xs[1] = {x};
    int32x4_t s[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
    size_t j = 0;
    for (; j + 32 <= dim; j += 32) {
        pplx_dn_step(kind, qs, 1, xs, 0, 1, 1, 0, 1, j, 0, 0, s);
        pplx_dn_step(kind, qs, 1, xs, 0, 1, 1, 2, 3, j + 16, 0, 0, s);
    }
    if (j + 16 <= dim) {
        pplx_dn_step(kind, qs, 1, xs, 0, 1, 1, 0, 1, j, 0, 0, s);
        j += 16;
    }
    if (j < dim) pplx_dn_step(kind, qs, 1, xs, 0, 1, 1, 2, 3, j, dim - j, 1, s);
    return vaddq_s32(vaddq_s32(s[0], s[1]), vaddq_s32(s[2], s[3]));
}

/* NQ queries x NR rows (NQ * NR <= 16; constants after inlining):
 * d[i * NR + c] = q_i . row_c.  One query: its rows one after the other. */
__attribute__((always_inline)) static inline void pplx_dn_tile(int kind, const char *const *q, int nq,
                                                               const char *x0, size_t xbytes, int nr, size_t dim,
                                                               int32_t *d) {
    const char *x[4];
PPLX_DN_UNROLL
    for (int c = 0; c < 4; c++) x[c] = x0 + (size_t)(c < nr ? c : 0) * xbytes;
    int32x4_t a[16];
PPLX_DN_UNROLL
    for (int i = 0; i < 16; i++) a[i] = vdupq_n_s32(0);
    if (nq == 1) {
        a[0] = pplx_dn_row1(kind, q[0], x[0], dim);
        if (nr > 1) a[1] = pplx_dn_row1(kind, q[0], x[1], dim);
        if (nr > 2) a[2] = pplx_dn_row1(kind, q[0], x[2], dim);
        if (nr > 3) a[3] = pplx_dn_row1(kind, q[0], x[3], dim);
    } else {
        size_t j = 0;
        for (; j + 16 <= dim; j += 16) pplx_dn_step(kind, q, nq, x, 0, nr, nr, 0, 0, j, 0, 0, a);
        if (j < dim) pplx_dn_step(kind, q, nq, x, 0, nr, nr, 0, 0, j, dim - j, 1, a);
    }
    pplx_dn_reduce(a, nq * nr, d);
}

/* Rows of one (NQ, NR) combination with tile function TILE: tiles of NR
 * rows, then the rows left over one at a time. */
#define PPLX_DN_ROWS(TILE, KIND, NQ, NR)                                                                      \
    {                                                                                                         \
        size_t r = 0;                                                                                         \
        int32_t d[16];                                                                                        \
        for (; r + (NR) <= nrows; r += (NR)) {                                                                \
            TILE(KIND, q, NQ, X8 + r * xbytes, xbytes, NR, dim, d);                                           \
            for (int i = 0; i < (NQ); i++) memcpy(out + (size_t)i * ostride + r, d + i * (NR), (NR) * 4);     \
        }                                                                                                     \
        for (; r < nrows; r++) {                                                                              \
            TILE(KIND, q, NQ, X8 + r * xbytes, xbytes, 1, dim, d);                                            \
            for (int i = 0; i < (NQ); i++) out[(size_t)i * ostride + r] = d[i];                               \
        }                                                                                                     \
    }

/* 1..8 queries; rows per tile: NRA for 2 queries, NRB for 3-4, NRC for 5-8. */
#define PPLX_DN_I8_BLOCK(TILE, KIND, NRA, NRB, NRC)                                                           \
    {                                                                                                         \
        if (nq == 0 || nq > 8) return; /* outside the contract (kernels.h): touch nothing */                  \
        const char *q[8];                                                                                     \
        for (size_t i = 0; i < 8; i++) q[i] = (const char *)(Q + (i < nq ? i : 0) * qstride);                 \
        const char *X8 = (const char *)X;                                                                     \
        const size_t xbytes = xstride;                                                                        \
        switch (nq) {                                                                                         \
            case 1: PPLX_DN_ROWS(TILE, KIND, 1, 4) break;                                                     \
            case 2: PPLX_DN_ROWS(TILE, KIND, 2, NRA) break;                                                   \
            case 3: PPLX_DN_ROWS(TILE, KIND, 3, NRB) break;                                                   \
            case 4: PPLX_DN_ROWS(TILE, KIND, 4, NRB) break;                                                   \
            case 5: PPLX_DN_ROWS(TILE, KIND, 5, NRC) break;                                                   \
            case 6: PPLX_DN_ROWS(TILE, KIND, 6, NRC) break;                                                   \
            case 7: PPLX_DN_ROWS(TILE, KIND, 7, NRC) break;                                                   \
            default: PPLX_DN_ROWS(TILE, KIND, 8, NRC) break;                                                  \
        }                                                                                                     \
    }

/* SMULL + SADALP: at most 8 accumulators (see the header comment). */
static void pplx_dot_i8_block_neon(const int8_t *Q, size_t nq, size_t qstride, const int8_t *X, size_t nrows,
                                   size_t dim, size_t xstride, int32_t *out, size_t ostride)
    PPLX_DN_I8_BLOCK(pplx_dn_tile, PPLX_DN_I8, 4, 2, 1)

/* int16 queries (1 <= nq <= 4) x int8 rows (W8) or int16 rows (W16): 2 rows per tile. */
#define PPLX_DN_W_BLOCK(KIND, XE)                                                                             \
    {                                                                                                         \
        if (nq == 0 || nq > 4) return; /* outside the contract (kernels.h): touch nothing */                  \
        const char *q[4];                                                                                     \
        for (size_t i = 0; i < 4; i++) q[i] = (const char *)(Q + (i < nq ? i : 0) * qstride);                 \
        const char *X8 = (const char *)X;                                                                     \
        const size_t xbytes = xstride * (XE);                                                                 \
        switch (nq) {                                                                                         \
            case 1: PPLX_DN_ROWS(pplx_dn_tile, KIND, 1, 4) break;                                             \
            case 2: PPLX_DN_ROWS(pplx_dn_tile, KIND, 2, 2) break;                                             \
            case 3: PPLX_DN_ROWS(pplx_dn_tile, KIND, 3, 2) break;                                             \
            default: PPLX_DN_ROWS(pplx_dn_tile, KIND, 4, 2) break;                                            \
        }                                                                                                     \
    }

static void pplx_dot_block_neon(const int16_t *Q, size_t nq, size_t qstride, const int8_t *X, size_t nrows,
                                size_t dim, size_t xstride, int32_t *out, size_t ostride)
    PPLX_DN_W_BLOCK(PPLX_DN_W8, 1)

static void pplx_dot16_block_neon(const int16_t *Q, size_t nq, size_t qstride, const int16_t *X, size_t nrows,
                                  size_t dim, size_t xstride, int32_t *out, size_t ostride)
    PPLX_DN_W_BLOCK(PPLX_DN_W16, 2)

#undef PPLX_DN_W_BLOCK

/* ---- neon_dotprod: SDOT ------------------------------------------------------ *
 * Its own small copy of the tile logic: a function using vdotq_s32 must be
 * compiled for dotprod (GCC: per function), and the engine above is not. */
#if PPLX_COMPILE_NEON_DOTPROD

__attribute__((always_inline)) PPLX_TARGET_NEON_DOTPROD static inline void pplx_dd_step(
        const char *const *q, int nq, const char *const *x, int c0, int c1, int nr, int shift, size_t j, size_t rem,
        int masked, int32x4_t *acc) {
    int8x16_t xv[4];
PPLX_DN_UNROLL
    for (int c = c0; c < c1; c++) {
        const int8_t *p = (const int8_t *)(const void *)x[c] + j;
        xv[c] = masked ? pplx_dn_tail_s8(p, rem) : vld1q_s8(p);
    }
PPLX_DN_UNROLL
    for (int i = 0; i < nq; i++) {
        const int8_t *p = (const int8_t *)(const void *)q[i] + j;
        const int8x16_t qv = masked ? pplx_dn_tail_s8(p, rem) : vld1q_s8(p);
PPLX_DN_UNROLL
        for (int c = c0; c < c1; c++) acc[i * nr + c + shift] = vdotq_s32(acc[i * nr + c + shift], xv[c], qv);
    }
}

/* One query x one row: two accumulators alternating between steps. */
__attribute__((always_inline)) PPLX_TARGET_NEON_DOTPROD static inline int32x4_t pplx_dd_row1(const char *q,
                                                                                             const char *x,
                                                                                             size_t dim) {
    const char *const qs[1] = {q}, *const xs[1] = {x};
    int32x4_t s[2] = {vdupq_n_s32(0), vdupq_n_s32(0)};
    size_t j = 0;
    for (; j + 32 <= dim; j += 32) {
        pplx_dd_step(qs, 1, xs, 0, 1, 1, 0, j, 0, 0, s);
        pplx_dd_step(qs, 1, xs, 0, 1, 1, 1, j + 16, 0, 0, s);
    }
    if (j + 16 <= dim) {
        pplx_dd_step(qs, 1, xs, 0, 1, 1, 0, j, 0, 0, s);
        j += 16;
    }
    if (j < dim) pplx_dd_step(qs, 1, xs, 0, 1, 1, 1, j, dim - j, 1, s);
    return vaddq_s32(s[0], s[1]);
}

/* As pplx_dn_tile (KIND unused: there is one). */
__attribute__((always_inline)) PPLX_TARGET_NEON_DOTPROD static inline void pplx_dd_tile(
        int kind, const char *const *q, int nq, const char *x0, size_t xbytes, int nr, size_t dim, int32_t *d) {
    (void)kind;
    const char *x[4];
PPLX_DN_UNROLL
    for (int c = 0; c < 4; c++) x[c] = x0 + (size_t)(c < nr ? c : 0) * xbytes;
    int32x4_t a[16];
PPLX_DN_UNROLL
    for (int i = 0; i < 16; i++) a[i] = vdupq_n_s32(0);
    if (nq == 1) {
        a[0] = pplx_dd_row1(q[0], x[0], dim);
        if (nr > 1) a[1] = pplx_dd_row1(q[0], x[1], dim);
        if (nr > 2) a[2] = pplx_dd_row1(q[0], x[2], dim);
        if (nr > 3) a[3] = pplx_dd_row1(q[0], x[3], dim);
    } else {
        size_t j = 0;
        for (; j + 16 <= dim; j += 16) pplx_dd_step(q, nq, x, 0, nr, nr, 0, j, 0, 0, a);
        if (j < dim) pplx_dd_step(q, nq, x, 0, nr, nr, 0, j, dim - j, 1, a);
    }
    pplx_dn_reduce(a, nq * nr, d);
}

PPLX_TARGET_NEON_DOTPROD static void pplx_dot_i8_block_neon_dotprod(const int8_t *Q, size_t nq, size_t qstride,
                                                                   const int8_t *X, size_t nrows, size_t dim,
                                                                   size_t xstride, int32_t *out, size_t ostride)
    PPLX_DN_I8_BLOCK(pplx_dd_tile, 0, 4, 4, 2)

#endif /* PPLX_COMPILE_NEON_DOTPROD */

#undef PPLX_DN_I8_BLOCK
#undef PPLX_DN_ROWS

#endif /* PPLX_COMPILE_NEON */
#endif
