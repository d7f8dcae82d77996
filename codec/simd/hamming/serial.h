/* hamming/serial.h - Hamming distance between bit-packed codes.
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
 * accumulators.  For ONE query the vector alternatives (Mula's nibble-LUT:
 * vpshufb x2 + vpsadbw, or Harley-Seal carry-save adders) need about six
 * vector ops per 32 bytes plus a horizontal reduction per row, which does not
 * pay off for codes this short: the one-query avx2 kernel uses POPCNT, with
 * bodies specialised (fully unrolled) for 128- and 320-byte codes.  For a
 * block of FOUR queries the count turns: each row is loaded once for all
 * four, the per-byte counts accumulate across the row and are reduced once
 * per row and query (vpsadbw), so the nibble-LUT costs ~9 ymm ops per query
 * and 32 bytes on the vector pipes against 16 scalar ops (load, XOR, POPCNT,
 * ADD per 8 bytes) on the integer ALUs: hamming/avx2.h uses it for 4-query
 * blocks of widths that are multiples of 32 bytes (up to 992, so per-byte
 * counts cannot overflow).  Any other width: 8-byte words, then the
 * remaining bytes.
 * The serial kernel uses the SWAR popcount (no instruction-set assumption)
 * and is the reference the fast one is tested against.
 */
#ifndef PPLX_HAMMING_SERIAL_H
#define PPLX_HAMMING_SERIAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "../cpu.h"

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
    if (nq > 4) return; /* the contract every tier keeps (kernels.h) */
    for (size_t r = 0; r < nrows; r++)
        for (size_t q = 0; q < nq; q++)
            out[q * ostride + r] = pplx_hamming_one_serial(Q + q * qstride, X + r * xstride, w);
}

/* hamming8_filter (kernels.h): the distances of eight queries to each row,
 * kept only for the rows where some query's distance is below its bound.
 * The queries come transposed (word j of query i at Qt[8 * j + i]) because
 * that is the layout the vector kernels want: one 64-bit word of a row,
 * broadcast, is compared with the same word of all eight queries at once,
 * so each distance ends in its own lane and no lanes are ever summed
 * (hamming/avx512.h).  A scan gives each query's heap worst key as its
 * bound: a row whose distances all reach their bounds cannot enter any
 * heap, and the rest are offered as before.  This is the readable
 * reference the vector kernels are tested against (tests/c); the serial
 * table itself keeps the block path, so the fused scans of the other tiers
 * are checked against a scan that does not use them. */
static size_t pplx_hamming8_filter_serial(const uint64_t *Qt, size_t nw, const uint8_t *X, size_t nrows,
                                          size_t xstride, const int32_t *worst, uint32_t *hrow, int32_t *hd) {
    size_t nh = 0;
    for (size_t r = 0; r < nrows; r++) {
        int32_t d[8];
        int hit = 0;
        for (size_t i = 0; i < 8; i++) {
            d[i] = 0;
            for (size_t j = 0; j < nw; j++)
                d[i] += pplx_popcount64_swar(Qt[8 * j + i] ^ pplx_load_u64(X + r * xstride + 8 * j));
            hit |= d[i] < worst[i];
        }
        if (!hit) continue;
        hrow[nh] = (uint32_t)r;
        memcpy(hd + 8 * nh, d, sizeof d);
        nh++;
    }
    return nh;
}

#endif
