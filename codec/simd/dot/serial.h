/* dot/serial.h - exact int32 dot products of int8 vectors.
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
#ifndef PPLX_DOT_SERIAL_H
#define PPLX_DOT_SERIAL_H

#include <stddef.h>
#include <stdint.h>
#include "../cpu.h"
#include "../kernels.h" /* PPLX_DOT_MAX_DIM */

/* Software prefetch distance (bytes ahead in each row stream).  A one-query
 * scan is a pure sequential read, yet measured at only ~10 GB/s per core
 * without it (the hardware prefetcher does not run far enough ahead of two
 * interleaved row streams); 2 KiB ahead: 11.5 GB/s on one core, 18 on two.
 * Rows need not be contiguous: a prefetch of an unrelated line is harmless. */
#ifndef PPLX_DOT_PREFETCH
#define PPLX_DOT_PREFETCH 2048
#endif

static inline int32_t pplx_dot_one_serial(const int16_t *q, const int8_t *x, size_t dim) {
    int32_t s = 0;
    for (size_t j = 0; j < dim; j++) s += (int32_t)q[j] * x[j];
    return s;
}

static void pplx_dot_block_serial(const int16_t *Q, size_t nq, size_t qstride, const int8_t *X, size_t nrows,
                                  size_t dim, size_t xstride, int32_t *out, size_t ostride) {
    if (nq > 4) return; /* the contract every tier keeps (kernels.h) */
    for (size_t r = 0; r < nrows; r++)
        for (size_t q = 0; q < nq; q++)
            out[q * ostride + r] = pplx_dot_one_serial(Q + q * qstride, X + r * xstride, dim);
}

/* The same with rows already widened to int16 (many-query scans widen each
 * tile of rows once, so the inner loop is only multiplies and adds). */
static void pplx_dot16_block_serial(const int16_t *Q, size_t nq, size_t qstride, const int16_t *X, size_t nrows,
                                    size_t dim, size_t xstride, int32_t *out, size_t ostride) {
    if (nq > 4) return; /* the contract every tier keeps (kernels.h) */
    for (size_t r = 0; r < nrows; r++)
        for (size_t q = 0; q < nq; q++) {
            const int16_t *a = Q + q * qstride, *b = X + r * xstride;
            int32_t s = 0;
            for (size_t j = 0; j < dim; j++) s += (int32_t)a[j] * b[j];
            out[q * ostride + r] = s;
        }
}

/* dot_i8t_filter (kernels.h): the dot products of sixteen int8 queries
 * with each row, kept only for the rows where some query's score might
 * enter its heap.  The queries come transposed and biased, the layout the
 * vector kernel wants (dot/avx512.h): byte b of dword j of query i at
 * Qt[64 j + 4 i + b] is q_i[4 j + b] + 128 as an unsigned byte, and 0 past
 * the query's dim (nd = ceil(dim / 4) dwords).  With the rows' sums
 * (rowsum[r] = sum_j x_r[j]; written here when !sums_known, read when
 * known) the dot is sum (Qt - 128) x = sum Qt x - 128 rowsum.  Row r is kept
 * when some lane i has d > lim[i] (xn NULL: the dot metric, lim the negated
 * heap worst) or !((float)d < flim[i] * xn[r]) (cosine: the estimate of
 * topk.h's pplx_offer_rows); kept rows in increasing order, hrow[h] = r and
 * hd[16 h + i] = d_i for all 16 lanes.  Returns how many.  This is the
 * readable reference the vector kernel is tested against (tests/c); the
 * serial table has no entry, so the serial scan stays the block path. */
static size_t pplx_dot_i8t_filter_serial(const uint8_t *Qt, const int8_t *X, size_t nrows, size_t dim,
                                         size_t xstride, int32_t *rowsum, int sums_known, const int32_t *lim,
                                         const float *flim, const float *xn, uint32_t *hrow, int32_t *hd) {
    size_t nh = 0;
    for (size_t r = 0; r < nrows; r++) {
        const int8_t *x = X + r * xstride;
        if (!sums_known) {
            int32_t s = 0;
            for (size_t j = 0; j < dim; j++) s += x[j];
            rowsum[r] = s;
        }
        int32_t d[16];
        int keep = 0;
        for (size_t i = 0; i < 16; i++) {
            int32_t s = 0;
            for (size_t j = 0; j < dim; j++) s += ((int32_t)Qt[64 * (j / 4) + 4 * i + j % 4] - 128) * x[j];
            d[i] = s;
            keep |= xn ? !((float)s < flim[i] * xn[r]) : s > lim[i];
        }
        if (!keep) continue;
        hrow[nh] = (uint32_t)r;
        for (size_t i = 0; i < 16; i++) hd[16 * nh + i] = d[i];
        nh++;
    }
    return nh;
}

#endif
