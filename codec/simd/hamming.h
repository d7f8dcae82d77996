/* hamming.h - Hamming distance between bit-packed codes.
 *
 * hamming_block(Q, nq <= 4, X, nrows): the distances of up to 4 query codes
 * to nrows database codes, out[q * ostride + r].  Blocking 4 queries per row
 * makes each database word one load for four XOR+POPCNT, which is what the
 * many-queries case needs; the one-query case is memory bound anyway.
 *
 * Popcount strategy.  Codes here are short (128 B for 1024 dims, 320 B for
 * 2560).  On Zen (1-3) and Intel since Haswell, scalar POPCNT r64 has a
 * throughput of 3-4 per cycle and latency 1, so XOR + POPCNT + ADD on 64-bit
 * words runs at ~8-10 bytes per cycle per core with independent
 * accumulators.  The AVX2 alternatives (Mula's nibble-LUT: vpshufb x2 +
 * vpsadbw, or Harley-Seal carry-save adders) need about six vector ops per
 * 32 bytes plus a horizontal reduction per row, and Zen 1 splits every ymm
 * op in two, so they win only for codes of a kilobyte or more: not our case.
 * So the "avx2" kernel is compiled with target("avx2,popcnt") and uses the
 * POPCNT instruction, with bodies specialised (fully unrolled by the
 * compiler) for 128- and 320-byte codes.  Any other width: 8-byte words,
 * then the remaining bytes.
 * The serial kernel uses the SWAR popcount (no instruction-set assumption)
 * and is the reference the fast one is tested against.
 */
#ifndef PPLX_HAMMING_H
#define PPLX_HAMMING_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "cpu.h"

static inline uint64_t pplx_load_u64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);  /* codes need not be 8-byte aligned */
    return v;
}

static inline int32_t pplx_popcount64_swar(uint64_t x) {
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int32_t)((x * 0x0101010101010101ULL) >> 56);
}

static inline int32_t pplx_hamming_one_serial(const uint8_t *a, const uint8_t *b, size_t w) {
    int32_t d = 0;
    size_t j = 0;
    for (; j + 8 <= w; j += 8) d += pplx_popcount64_swar(pplx_load_u64(a + j) ^ pplx_load_u64(b + j));
    for (; j < w; j++) d += pplx_popcount64_swar((uint64_t)(a[j] ^ b[j]));
    return d;
}

static void pplx_hamming_block_serial(const uint8_t *Q, size_t nq, size_t qstride, const uint8_t *X,
                                      size_t nrows, size_t w, size_t xstride, int32_t *out, size_t ostride) {
    for (size_t r = 0; r < nrows; r++)
        for (size_t q = 0; q < nq; q++)
            out[q * ostride + r] = pplx_hamming_one_serial(Q + q * qstride, X + r * xstride, w);
}

#if PPLX_COMPILE_AVX2

/* One row against NQ queries, W bytes; inlined with constant NQ (and W for
 * the specialised widths) so the compiler unrolls and keeps sums in registers. */
__attribute__((always_inline)) PPLX_TARGET_AVX2 static inline void pplx_hamming_row_popcnt(
        const uint8_t *const *q, int nq, const uint8_t *x, size_t w, int32_t *d) {
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t j = 0;
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
        pplx_hamming_row_popcnt(q, NQ, X + r * xstride, (W) ? (size_t)(W) : w, d);             \
        for (int i = 0; i < NQ; i++) out[(size_t)i * ostride + r] = d[i];                      \
    }

PPLX_TARGET_AVX2 static void pplx_hamming_block_avx2(const uint8_t *Q, size_t nq, size_t qstride, const uint8_t *X,
                                                    size_t nrows, size_t w, size_t xstride, int32_t *out,
                                                    size_t ostride) {
    const uint8_t *q[4];
    for (size_t i = 0; i < 4; i++) q[i] = Q + (i < nq ? i : 0) * qstride;
    if (nq == 1) {
        if (w == 128) { PPLX_HAMMING_ROWS(1, 128) }
        else if (w == 320) { PPLX_HAMMING_ROWS(1, 320) }
        else { PPLX_HAMMING_ROWS(1, 0) }
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

#endif

#endif
