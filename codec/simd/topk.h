/* topk.h - exact top-k fused into the distance scan.
 *
 * Each query keeps a fixed-size max-heap of its k best (key, row) pairs
 * (heap.h: the heaps, the keys and the order they share).
 *
 * The scan walks the database in tiles small enough to stay in L1/L2
 * (~64 KiB of codes or vectors), computes the distances of a group of up to
 * 4 queries (i8_qblock with an int8 x int8 kernel) to the tile into a small
 * buffer with the table's block kernel, then offers each to its query's
 * heap (the int8 scan: each query's scores of the tile tested together
 * first, pplx_offer_group, and each group's kernel call preceded by a
 * prefetch of its share of the next tile, so memory is read while the tile
 * in cache is multiplied).  Where the table has filter kernels (avx512),
 * many-query scans take their queries in groups of 8 codes
 * (hamming8_filter) or 16 int8 vectors (dot_i8t_filter) instead: the
 * queries transposed into the lanes once per scan, the heap test inside the
 * kernel with each heap's bound from before the tile, and only the rows it
 * keeps offered, in increasing order, with the exact test (the heaps end
 * the same as on the block path).  The full distance matrix is never stored.  Early reject:
 * a heap is seeded with sentinels (INT32_MAX, no row) and, within one scan,
 * rows arrive in increasing index order, so a candidate enters only when
 * its key is strictly below the heap's worst; equal keys would lose the tie
 * anyway.  Merging heaps of row ranges scanned by different threads uses
 * the full (key, row) comparison.
 */
#ifndef PPLX_TOPK_H
#define PPLX_TOPK_H

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "heap.h"
#include "kernels.h"

#define PPLX_TILE_MAX 512

enum { PPLX_METRIC_DOT = 0, PPLX_METRIC_COSINE = 1 };

static inline size_t pplx_tile_rows(size_t row_bytes) {
    size_t t = row_bytes ? ((size_t)64 << 10) / row_bytes : PPLX_TILE_MAX;
    return t < 16 ? 16 : t > PPLX_TILE_MAX ? PPLX_TILE_MAX : t;
}

#ifndef PPLX_TILE16_BYTES
#define PPLX_TILE16_BYTES (64 << 10)
#endif
/* Rows per widened (int16) tile: even (the avx2 and neon kernels multiply
 * 4 queries by 2 rows per step).  Zero-width rows (dim 0) take the largest
 * tile: there is nothing to widen. */
static inline size_t pplx_tile16_rows(size_t dim) {
    if (dim == 0) return PPLX_TILE_MAX;
    size_t t = PPLX_TILE16_BYTES / (2 * dim) / 2 * 2;
    return t < 2 ? 2 : t > PPLX_TILE_MAX ? PPLX_TILE_MAX : t;
}

/* The fused Hamming scan (T->hamming8_filter: eight queries a call, the
 * top-k test in the kernel) takes the queries in groups of 8, and a last
 * group of 6 or 7 too; fewer left over go through the block kernel's groups
 * of 4, as do all the queries of codes that are not whole 64-bit words.
 * Measured on Zen 4 (100,000 codes of 128 bytes, one thread, the two paths
 * interleaved): block / fused time 0.86 at 5 queries, 1.05 at 6, 1.21 at 7,
 * 1.22 at 8, and 0.76 at 9 when the ninth had a fused call of its own. */
#define PPLX_H8_MIN_LAST 6

/* How many of nq queries the fused scan takes. */
static inline size_t pplx_h8_queries(size_t nq) { return nq / 8 * 8 + (nq % 8 >= PPLX_H8_MIN_LAST ? nq % 8 : 0); }

/* Codes of up to 2^27 bytes: every lane count of the fused kernel stays
 * below 2^31 (hamming/avx512.h). */
#define PPLX_H8_MAX_WIDTH ((size_t)1 << 27)

/* Scratch of the fused scan: the queries transposed in groups of 8 (word j
 * of query g * 8 + i at qt[g * nw * 8 + 8 * j + i]; the lanes past the last
 * query are zero and never reported), and one tile's kept rows. */
typedef struct pplx_h8_scratch {
    uint64_t *qt;
    uint32_t hrow[PPLX_TILE_MAX];
    int32_t hd[8 * PPLX_TILE_MAX];
} pplx_h8_scratch;

/* The scratch for a fused scan of these nq queries (pplx_h8_queries of the
 * scan's), or NULL when the fused path does not apply (no kernel, no such
 * queries, a width that is not whole words) or memory is short, which only
 * costs speed: the block path runs. */
static pplx_h8_scratch *pplx_h8_prepare(const pplx_table *T, const uint8_t *Q, size_t nq, size_t qstride,
                                        size_t w) {
    if (!T->hamming8_filter || nq == 0 || w == 0 || w % 8 || w > PPLX_H8_MAX_WIDTH) return NULL;
    const size_t nw = w / 8;
    pplx_h8_scratch *s = (pplx_h8_scratch *)malloc(sizeof *s);
    if (!s) return NULL;
    s->qt = (uint64_t *)calloc((nq + 7) / 8 * nw * 8, sizeof(uint64_t));
    if (!s->qt) {
        free(s);
        return NULL;
    }
    for (size_t q = 0; q < nq; q++)
        for (size_t j = 0; j < nw; j++) memcpy(s->qt + (q / 8 * nw + j) * 8 + q % 8, Q + q * qstride + 8 * j, 8);
    return s;
}

static void pplx_h8_release(pplx_h8_scratch *s) {
    if (s) free(s->qt);
    free(s);
}

/* The fused scan of rows [t, t + nt) for the queries' groups of 8: each
 * group's kernel call keeps the rows some query's heap might take (bound:
 * the heap's worst key before the tile, which only tightens as rows enter)
 * and those rows are offered in increasing order, as the block path offers
 * them, so the heaps end the same. */
static void pplx_h8_tile(const pplx_table *T, pplx_h8_scratch *s, size_t nq, const uint8_t *X, size_t t, size_t nt,
                         size_t w, size_t xstride, size_t k, int64_t base, int32_t *hk, int64_t *hi) {
    const size_t nw = w / 8;
    for (size_t g = 0; g < nq; g += 8) {
        const size_t ng = nq - g < 8 ? nq - g : 8;
        int32_t worst[8];
        for (size_t i = 0; i < 8; i++) worst[i] = i < ng ? hk[(g + i) * k] : INT32_MIN; /* an empty lane: never */
        const size_t nh = T->hamming8_filter(s->qt + g * nw, nw, X + t * xstride, nt, xstride, worst, s->hrow,
                                             s->hd);
        for (size_t h = 0; h < nh; h++)
            for (size_t i = 0; i < ng; i++) {
                int32_t *key = hk + (g + i) * k;
                const int32_t d = s->hd[8 * h + i];
                if (d < key[0]) pplx_heap_replace(key, hi + (g + i) * k, k, d, base + (int64_t)(t + s->hrow[h]));
            }
    }
}

/* Rows [r0, r1) of X against queries Q[0..nq); heaps hk/hi hold k entries per
 * query; reported row numbers are base + r. */
static void pplx_scan_hamming(const pplx_table *T, const uint8_t *Q, size_t nq, size_t qstride, const uint8_t *X,
                              size_t r0, size_t r1, size_t w, size_t xstride, size_t k, int64_t base, int32_t *hk,
                              int64_t *hi) {
    int32_t buf[4 * PPLX_TILE_MAX];
    if (k == 0) return; /* an empty heap keeps nothing (and has no root to compare with) */
    const size_t tile = pplx_tile_rows(xstride);
    /* queries [0, nf) fused, the rest in the block kernel's groups */
    const size_t nh8 = pplx_h8_queries(nq);
    pplx_h8_scratch *s = pplx_h8_prepare(T, Q, nh8, qstride, w);
    const size_t nf = s ? nh8 : 0;
    for (size_t t = r0; t < r1; t += tile) {
        size_t nt = r1 - t < tile ? r1 - t : tile;
        if (s) pplx_h8_tile(T, s, nf, X, t, nt, w, xstride, k, base, hk, hi);
        for (size_t g = nf; g < nq; g += 4) {
            size_t ng = nq - g < 4 ? nq - g : 4;
            T->hamming_block(Q + g * qstride, ng, qstride, X + t * xstride, nt, w, xstride, buf, PPLX_TILE_MAX);
            for (size_t q = 0; q < ng; q++)
                pplx_heap_offer(hk + (g + q) * k, hi + (g + q) * k, k, buf + q * PPLX_TILE_MAX, nt, base + (int64_t)t);
        }
    }
    pplx_h8_release(s);
}

/* Distances of queries [g, g + ng) to tile rows [t, t + nt): from the int16
 * copy of the tile when there is one, else straight from the int8 rows. */
static inline void pplx_dot_tile(const pplx_table *T, const int8_t *Q8, size_t q8stride, const int16_t *Q16,
                                 size_t ng, size_t qstride, const int8_t *X, size_t nt, size_t dim, size_t xstride,
                                 const int16_t *W, int32_t *buf) {
    if (T->dot_i8_block) T->dot_i8_block(Q8, ng, q8stride, X, nt, dim, xstride, buf, PPLX_TILE_MAX);
    else if (W) T->dot16_block(Q16, ng, qstride, W, nt, dim, dim, buf, PPLX_TILE_MAX);
    else T->dot_block(Q16, ng, qstride, X, nt, dim, xstride, buf, PPLX_TILE_MAX);
}

/* Queries per kernel call: the tier's int8 x int8 block when it has one. */
static inline size_t pplx_qblock(const pplx_table *T) { return T->dot_i8_block ? T->i8_qblock : 4; }

/* Whether the int8 scans and matrices of table T read the int16 copy of the
 * queries (Q16): only through dot_block/dot16_block, which they call when T
 * has no dot_i8_block.  Otherwise a caller need not make the copy and may
 * pass NULL.  Asked of the table a search actually runs with (tables can mix
 * tiers by kernel family), never of a tier name. */
static inline int pplx_int8_reads_q16(const pplx_table *T) { return T->dot_i8_block == NULL; }

/* With more than one group of 4 queries each tile is read many times: widen
 * it to int16 once (scratch of tile * dim int16; NULL when not worth it or
 * when allocation fails, which only costs speed). */
static int16_t *pplx_widen_scratch(const pplx_table *T, size_t nq, size_t tile, size_t dim) {
    return nq > 4 && !T->dot_i8_block ? (int16_t *)malloc(tile * dim * sizeof(int16_t)) : NULL;
}

#ifndef PPLX_TILE8_BYTES
#define PPLX_TILE8_BYTES (64 << 10)
#endif
/* Rows per tile of the int8 x int8 kernel (dot_i8_block) when more than one
 * group of queries reads each tile: about PPLX_TILE8_BYTES, a multiple of
 * 12 (the kernels' row blocks are 3, 4 or 6 rows, so only the last tile of a
 * scan has rows left over). */
static inline size_t pplx_tile8_rows(size_t row_bytes) {
    size_t t = row_bytes ? (size_t)PPLX_TILE8_BYTES / row_bytes : PPLX_TILE_MAX;
    t = t > PPLX_TILE_MAX ? PPLX_TILE_MAX : t;
    return t < 24 ? (t < 16 ? 16 : t) : t / 12 * 12;
}

/* Rows per tile: sized for the int16 copy when one is made. */
static inline size_t pplx_int8_tile(const pplx_table *T, size_t nq, size_t dim, size_t xstride) {
    if (T->dot_i8_block) return nq > T->i8_qblock ? pplx_tile8_rows(xstride) : pplx_tile_rows(xstride);
    return nq > 4 ? pplx_tile16_rows(dim) : pplx_tile_rows(xstride);
}

static inline void pplx_widen_tile(const int8_t *X, size_t nt, size_t dim, size_t xstride, int16_t *W) {
    for (size_t r = 0; r < nt; r++)
        for (size_t j = 0; j < dim; j++) W[r * dim + j] = X[r * xstride + j];
}

/* One exact score against one heap (the per-row step of pplx_offer_rows
 * without its float pre-test): dot, key -d; cosine, the key of the cosine
 * of d with norms qq and x. */
static inline void pplx_offer_one(int metric, int32_t d, float qq, float x, size_t k, int64_t row, int32_t *key,
                                  int64_t *idx) {
    const int32_t c = metric == PPLX_METRIC_DOT ? -d : pplx_key_of_score(pplx_cosine(d, qq, x));
    if (c < key[0]) pplx_heap_replace(key, idx, k, c, row);
}

/* The bound a score must pass to enter a heap whose worst key is `worst`
 * (the tests of pplx_any_pass and the filter kernels): dot, d > lim (the
 * negated worst key); cosine, !((float)d < flim * xn), the float estimate
 * of pplx_offer_group's comment, with qq the query's norm. */
static inline void pplx_heap_bound(int metric, int32_t worst, float qq, int32_t *lim, float *flim) {
    *lim = metric == PPLX_METRIC_DOT ? -worst : 0;
    *flim = metric == PPLX_METRIC_DOT ? 0.0f : pplx_reject_below(worst) * qq;
}

/* The per-row path of pplx_offer_group: each of d[0..nt) (row t + j)
 * against one query's heap, metric dot (key -dot) or cosine (qq the query's
 * norm, xt the tile's row norms).  Cosine rows are first tested with a float
 * estimate (below) and only the rest get the exact double division. */
static void pplx_offer_rows(int metric, const int32_t *d, size_t nt, size_t t, float qq, const float *xt, size_t k,
                            int64_t base, int32_t *key, int64_t *idx) {
    if (metric == PPLX_METRIC_DOT) {
        for (size_t j = 0; j < nt; j++)
            pplx_offer_one(metric, d[j], 0.0f, 0.0f, k, base + (int64_t)(t + j), key, idx);
        return;
    }
    float cq = pplx_reject_below(key[0]) * qq;
    for (size_t j = 0; j < nt; j++) {
        if ((float)d[j] < cq * xt[j]) continue;
        pplx_offer_one(metric, d[j], qq, xt[j], k, base + (int64_t)(t + j), key, idx);
        cq = pplx_reject_below(key[0]) * qq;
    }
}

/* For each of NG queries (a constant after inlining: 1, 4, 8 or 16), whether
 * any of its scores d[q][0..nt) passes its heap's test: dot, d > lim[q] (the
 * negated worst key: no overflow, |dot| < 2^31 by PPLX_DOT_MAX_DIM); cosine,
 * !((float)d < flim[q] * xt[j]) (the float estimate of pplx_offer_rows,
 * negated so that a NaN passes, as it does there).  Rows outer, queries
 * inner, no branch: compilers vectorize over rows at the baseline ISA (SSE2,
 * NEON) with NG independent OR chains, each row norm loaded once for all
 * the queries: about 2 instructions a score with SSE2. */
static inline void pplx_any_pass(int metric, int NG, const int32_t *const *d, size_t nt, const float *xt,
                                 const int32_t *lim, const float *flim, int *any) {
    for (int q = 0; q < NG; q++) any[q] = 0;
    if (metric == PPLX_METRIC_DOT) {
        for (size_t j = 0; j < nt; j++)
            for (int q = 0; q < NG; q++) any[q] |= d[q][j] > lim[q];
    } else {
        for (size_t j = 0; j < nt; j++) {
            const float x = xt[j];
            for (int q = 0; q < NG; q++) any[q] |= !((float)d[q][j] < flim[q] * x);
        }
    }
}

/* Offer the scores of a group of ng queries to tile rows [t, t + nt) to
 * their heaps: query q's are buf[q * PPLX_TILE_MAX + j] (row t + j), its norm
 * qn[q] (cosine), its heap hk/hi + q * k.  Once a heap is full nearly every
 * row loses to its worst entry by a wide margin, so each query's scores of
 * the whole tile are first tested together (pplx_any_pass), and only a
 * query with a row that might enter takes the per-row path.  The test is the
 * per-row one, with the bound the heap had before the tile (it only
 * tightens as rows enter), so the heaps see the same entries in the same
 * order as without it.  (Testing each row on its own, as before, cost about
 * 2.6 cycles a score on Zen 4: a tenth of a 256 x 100,000 x 1024 search.)
 *
 * The cosine estimate: a row can enter only if its cosine d / (qn xn),
 * rounded to float, is above the heap's worst w (pplx_cosine rounds
 * monotonically and w is a float), and cut = pplx_reject_below(w) is below
 * w by about 1e-5 |w| + 1e-30.  (float)d < (cut qn) xn, three roundings of
 * relative error 2^-24 each, implies d / (qn xn) < cut + 2^-21 |cut| < w
 * for qn, xn > 0.  A zero norm makes d = 0 and both sides 0: nothing is
 * rejected; so does a NaN, and cut = -inf (a heap with free slots).  (The
 * estimate used to be d / qn < cut xn: one division more per query and
 * tile, the same margin.) */
static void pplx_offer_group(int metric, const int32_t *buf, size_t ng, size_t nt, size_t t, const float *qn,
                             const float *xn, size_t k, int64_t base, int32_t *hk, int64_t *hi) {
    const int32_t *d[PPLX_QBLOCK_MAX];
    int32_t lim[PPLX_QBLOCK_MAX];
    float flim[PPLX_QBLOCK_MAX];
    int any[PPLX_QBLOCK_MAX];
    const float *xt = metric == PPLX_METRIC_DOT ? NULL : xn + t;
    if (ng > PPLX_QBLOCK_MAX) return; /* never: groups are at most i8_qblock <= PPLX_QBLOCK_MAX or 4 */
    for (size_t q = 0; q < ng; q++) {
        d[q] = buf + q * PPLX_TILE_MAX;
        pplx_heap_bound(metric, hk[q * k], metric == PPLX_METRIC_DOT ? 0.0f : qn[q], lim + q, flim + q);
    }
    switch (ng) {
        case 4: pplx_any_pass(metric, 4, d, nt, xt, lim, flim, any); break;
        case 8: pplx_any_pass(metric, 8, d, nt, xt, lim, flim, any); break;
        case 16: pplx_any_pass(metric, 16, d, nt, xt, lim, flim, any); break;
        default:
            for (size_t q = 0; q < ng; q++) pplx_any_pass(metric, 1, d + q, nt, xt, lim + q, flim + q, any + q);
    }
    for (size_t q = 0; q < ng; q++)
        if (any[q])
            pplx_offer_rows(metric, d[q], nt, t, metric == PPLX_METRIC_DOT ? 0.0f : qn[q], xt, k, base, hk + q * k,
                            hi + q * k);
}

/* Ask for rows [r0, r1) of the rows at X (dim bytes each, xstride apart)
 * to be brought into the L2 cache, when the compiler has a way to say so (a
 * hint: nothing else depends on it).  Row by row, never as one byte range:
 * rows may be in reverse memory order (xstride is then a wrapped negative
 * size_t, and "the bytes from the first row to the last" is no range at
 * all: sizing one from it once made a 2^58-line loop), or have gaps. */
static inline void pplx_prefetch_rows(const int8_t *X, size_t xstride, size_t dim, size_t r0, size_t r1) {
#if defined(__GNUC__) || defined(__clang__)
    if (dim == 0) return;
    for (size_t r = r0; r < r1; r++) {
        const char *row = (const char *)X + r * xstride;
        for (size_t o = 0; o < dim; o += 64) __builtin_prefetch(row + o, 0, 2);
        __builtin_prefetch(row + dim - 1, 0, 2); /* the last line, when the row starts mid-line */
    }
#else
    (void)X, (void)xstride, (void)dim, (void)r0, (void)r1;
#endif
}

/* The fused int8 scan (T->dot_i8t_filter: sixteen queries a call, the heap
 * test in the kernel) takes the queries in whole groups of 16 from this
 * many on; the rest (fewer than 16) go through dot_i8_block, whose blocks
 * of up to 8 queries waste no lanes on them. */
#define PPLX_I8T_QUERIES 16

/* Scratch of the fused int8 scan: the queries of the whole groups
 * transposed and biased (group g at qt + g * 64 * nd, layout in
 * dot/serial.h), one tile's row sums, its kept rows and their dots. */
typedef struct pplx_i8t_scratch {
    uint8_t *qt;
    size_t nd;
    int32_t rowsum[PPLX_TILE_MAX];
    uint32_t hrow[PPLX_TILE_MAX];
    int32_t hd[PPLX_I8T_QUERIES * PPLX_TILE_MAX];
} pplx_i8t_scratch;

/* The scratch for a fused scan of the first nq / 16 * 16 queries, or NULL
 * when it does not apply (no kernel, fewer than 16 queries, rows too long
 * to be exact) or memory is short, which only costs speed. */
static pplx_i8t_scratch *pplx_i8t_prepare(const pplx_table *T, const int8_t *Q8, size_t nq, size_t q8stride,
                                          size_t dim) {
    if (!T->dot_i8t_filter || nq < PPLX_I8T_QUERIES || dim == 0 || dim > PPLX_DOT_MAX_DIM) return NULL;
    pplx_i8t_scratch *s = (pplx_i8t_scratch *)malloc(sizeof *s);
    if (!s) return NULL;
    s->nd = (dim + 3) / 4;
    const size_t ng = nq / PPLX_I8T_QUERIES;
    s->qt = (uint8_t *)calloc(ng * 64 * s->nd, 1); /* bytes past dim stay 0 */
    if (!s->qt) {
        free(s);
        return NULL;
    }
    for (size_t q = 0; q < ng * PPLX_I8T_QUERIES; q++) {
        uint8_t *g = s->qt + q / PPLX_I8T_QUERIES * 64 * s->nd + 4 * (q % PPLX_I8T_QUERIES);
        for (size_t j = 0; j < dim; j++) g[64 * (j / 4) + j % 4] = (uint8_t)(Q8[q * q8stride + j] + 128);
    }
    return s;
}

static void pplx_i8t_release(pplx_i8t_scratch *s) {
    if (s) free(s->qt);
    free(s);
}

/* Group g (queries [16 g, 16 g + 16)) of the fused scan over tile rows [t,
 * t + nt): the kernel keeps the rows whose score passes the float test of
 * pplx_offer_group for some query, with the bound its heap had before the
 * call (it only tightens), and each kept row's scores are offered exactly,
 * rows in increasing order: the heaps end as on the block path.  The first
 * group of a tile has the row sums computed (sums_known 0). */
static void pplx_i8t_group(const pplx_table *T, pplx_i8t_scratch *s, size_t g, const int8_t *X, size_t t,
                           size_t nt, size_t dim, size_t xstride, int metric, const float *qn, const float *xn,
                           size_t k, int64_t base, int32_t *hk, int64_t *hi) {
    int32_t lim[PPLX_I8T_QUERIES];
    float flim[PPLX_I8T_QUERIES];
    const size_t q0 = g * PPLX_I8T_QUERIES;
    for (size_t i = 0; i < PPLX_I8T_QUERIES; i++)
        pplx_heap_bound(metric, hk[(q0 + i) * k], metric == PPLX_METRIC_DOT ? 0.0f : qn[q0 + i], lim + i, flim + i);
    const float *xt = metric == PPLX_METRIC_DOT ? NULL : xn + t;
    const size_t nh = T->dot_i8t_filter(s->qt + g * 64 * s->nd, X + t * xstride, nt, dim, xstride, s->rowsum,
                                        g != 0, lim, flim, xt, s->hrow, s->hd);
    for (size_t h = 0; h < nh; h++) {
        const size_t j = s->hrow[h];
        for (size_t i = 0; i < PPLX_I8T_QUERIES; i++)
            pplx_offer_one(metric, s->hd[PPLX_I8T_QUERIES * h + i], metric == PPLX_METRIC_DOT ? 0.0f : qn[q0 + i],
                           xt ? xt[j] : 0.0f, k, base + (int64_t)(t + j), hk + (q0 + i) * k, hi + (q0 + i) * k);
    }
}

/* The top-k scan of pplx_scan_hamming for int8 rows: Q8 holds the queries
 * as stored (q8stride bytes apart), Q16 the same widened to int16 (qstride
 * elements apart; read only by tables without dot_i8_block, NULL allowed
 * otherwise); metric dot (key -dot) or cosine (qn per query, xn per row of
 * X, indexed like X).
 *
 * With more than one group of queries, each tile is read from memory by
 * the first group's kernel call and from cache by the others, which would
 * leave the first call waiting on memory with no work beside it: each
 * group's call is preceded by a prefetch of its share of the next tile, so
 * the next tile arrives while this one is being multiplied. */
static void pplx_scan_int8(const pplx_table *T, const int8_t *Q8, size_t q8stride, const int16_t *Q16, size_t nq,
                           size_t qstride, const int8_t *X, size_t r0, size_t r1, size_t dim, size_t xstride,
                           int metric, const float *qn, const float *xn, size_t k, int64_t base, int32_t *hk,
                           int64_t *hi) {
    int32_t buf[PPLX_QBLOCK_MAX * PPLX_TILE_MAX];
    if (k == 0) return; /* an empty heap keeps nothing (and has no root to compare with) */
    const size_t tile = pplx_int8_tile(T, nq, dim, xstride), qb = pplx_qblock(T);
    int16_t *W = pplx_widen_scratch(T, nq, tile, dim);
    /* queries [0, nf) in fused groups of 16, the rest in the block kernel's groups */
    pplx_i8t_scratch *s = pplx_i8t_prepare(T, Q8, nq, q8stride, dim);
    const size_t nf = s ? nq / PPLX_I8T_QUERIES * PPLX_I8T_QUERIES : 0;
    const size_t ngroups = nf / PPLX_I8T_QUERIES + (nq - nf + qb - 1) / qb;
    for (size_t t = r0; t < r1; t += tile) {
        size_t nt = r1 - t < tile ? r1 - t : tile;
        /* the next tile's rows (at most PPLX_TILE_MAX: the shares cannot overflow) */
        const size_t nn = r1 - t - nt < tile ? r1 - t - nt : tile;
        const int8_t *next = X + (t + nt) * xstride;
        if (W) pplx_widen_tile(X + t * xstride, nt, dim, xstride, W);
        for (size_t g = 0; g < nf; g += PPLX_I8T_QUERIES) {
            const size_t gi = g / PPLX_I8T_QUERIES;
            if (ngroups > 1 && nn) pplx_prefetch_rows(next, xstride, dim, nn * gi / ngroups, nn * (gi + 1) / ngroups);
            pplx_i8t_group(T, s, gi, X, t, nt, dim, xstride, metric, qn, xn, k, base, hk, hi);
        }
        for (size_t g = nf; g < nq; g += qb) {
            size_t ng = nq - g < qb ? nq - g : qb;
            if (ngroups > 1 && nn) {
                const size_t gi = nf / PPLX_I8T_QUERIES + (g - nf) / qb;
                pplx_prefetch_rows(next, xstride, dim, nn * gi / ngroups, nn * (gi + 1) / ngroups);
            }
            pplx_dot_tile(T, Q8 + g * q8stride, q8stride, Q16 ? Q16 + g * qstride : NULL, ng, qstride,
                          X + t * xstride, nt, dim, xstride, W, buf);
            pplx_offer_group(metric, buf, ng, nt, t, metric == PPLX_METRIC_DOT ? NULL : qn + g, xn, k, base,
                             hk + g * k, hi + g * k);
        }
    }
    pplx_i8t_release(s);
    free(W);
}

/* Full (nq, r1 - r0) matrices, same tiling: out[q * ostride + r]. */
static void pplx_matrix_hamming(const pplx_table *T, const uint8_t *Q, size_t nq, size_t qstride, const uint8_t *X,
                                size_t r0, size_t r1, size_t w, size_t xstride, int32_t *out, size_t ostride) {
    const size_t tile = pplx_tile_rows(xstride);
    for (size_t t = r0; t < r1; t += tile) {
        size_t nt = r1 - t < tile ? r1 - t : tile;
        for (size_t g = 0; g < nq; g += 4)
            T->hamming_block(Q + g * qstride, nq - g < 4 ? nq - g : 4, qstride, X + t * xstride, nt, w, xstride,
                             out + g * ostride + t, ostride);
    }
}

static void pplx_matrix_dot(const pplx_table *T, const int8_t *Q8, size_t q8stride, const int16_t *Q16, size_t nq,
                            size_t qstride, const int8_t *X, size_t r0, size_t r1, size_t dim, size_t xstride,
                            int32_t *out, size_t ostride) {
    const size_t tile = pplx_int8_tile(T, nq, dim, xstride), qb = pplx_qblock(T);
    int16_t *W = pplx_widen_scratch(T, nq, tile, dim);
    for (size_t t = r0; t < r1; t += tile) {
        size_t nt = r1 - t < tile ? r1 - t : tile;
        if (W) pplx_widen_tile(X + t * xstride, nt, dim, xstride, W);
        for (size_t g = 0; g < nq; g += qb) {
            size_t ng = nq - g < qb ? nq - g : qb;
            if (T->dot_i8_block)
                T->dot_i8_block(Q8 + g * q8stride, ng, q8stride, X + t * xstride, nt, dim, xstride,
                                out + g * ostride + t, ostride);
            else if (W)
                T->dot16_block(Q16 + g * qstride, ng, qstride, W, nt, dim, dim, out + g * ostride + t, ostride);
            else
                T->dot_block(Q16 + g * qstride, ng, qstride, X + t * xstride, nt, dim, xstride,
                             out + g * ostride + t, ostride);
        }
    }
    free(W);
}

#endif
