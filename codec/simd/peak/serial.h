/* peak/serial.h - the serial tier's compute peaks (see peak/peak.h for what a
 * peak is and how it is timed and checked).
 *
 * Popcount: the SWAR popcount of hamming/serial.h (the serial tier assumes no
 * POPCNT instruction: baseline x86-64 has none, and its kernel is this one)
 * on 8-byte words of the L1-resident buffer, four independent sums so the
 * adds of one word do not wait for the previous word's.
 *
 * Multiply-add: the serial scans' inner loop (dot/serial.h's dot16_block:
 * the tile's rows widened to int16 once, then int16 x int16 products summed
 * in 32 bits), whatever the compiler makes of it at the build's baseline
 * (GCC -O3: SSE2 pmaddwd, 8 multiply-adds per instruction): the serial
 * tier's rate, not a hand-written one.  Rows of 1024 dims as the batched
 * cases' (the first 8 KiB of the operand, widened once per call: 16 KiB of
 * int16) against 4 queries (8 KiB), so the per-row reduction costs what it
 * costs the kernel.  (A first version multiplied the int8 bytes directly, 4
 * queries per 4 bytes: GCC vectorised it poorly, and the serial search ran
 * at 107% of that "peak".)  Each dot product stays below 2^31 (1024 x 127
 * x 127); their sum is kept modulo 2^32 in unsigned arithmetic.
 */
#ifndef PPLX_PEAK_SERIAL_H
#define PPLX_PEAK_SERIAL_H

#include "common.h"
#include "../hamming/serial.h"

static uint64_t pplx_peak_popcount_serial(const uint8_t *buf, size_t reps) {
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t r = 0; r < reps; r++) {
        PPLX_PEAK_CLOBBER(buf);
        for (size_t i = 0; i < PPLX_PEAK_BYTES; i += 32) {
            a0 += (uint64_t)pplx_popcount64_swar(pplx_load_u64(buf + i));
            a1 += (uint64_t)pplx_popcount64_swar(pplx_load_u64(buf + i + 8));
            a2 += (uint64_t)pplx_popcount64_swar(pplx_load_u64(buf + i + 16));
            a3 += (uint64_t)pplx_popcount64_swar(pplx_load_u64(buf + i + 24));
        }
    }
    return a0 + a1 + a2 + a3;
}

#define PPLX_PEAK_SERIAL_DIM 1024
#define PPLX_PEAK_SERIAL_SPAN ((size_t)8192) /* operand bytes the multiply-add loop reads */

static uint64_t pplx_peak_mac_serial(const uint8_t *buf, size_t reps) {
    int16_t x[PPLX_PEAK_SERIAL_SPAN], q[PPLX_PEAK_NQ][PPLX_PEAK_SERIAL_DIM];
    for (size_t i = 0; i < PPLX_PEAK_SERIAL_SPAN; i++) x[i] = (int16_t)(int8_t)buf[i];
    for (int k = 0; k < PPLX_PEAK_NQ; k++)
        for (size_t j = 0; j < PPLX_PEAK_SERIAL_DIM; j++) q[k][j] = pplx_peak_q[k][j % 4];
    uint32_t acc = 0;
    for (size_t r = 0; r < reps; r++) {
        PPLX_PEAK_CLOBBER(x);
        for (size_t row = 0; row < PPLX_PEAK_SERIAL_SPAN; row += PPLX_PEAK_SERIAL_DIM)
            for (int k = 0; k < PPLX_PEAK_NQ; k++) {
                int32_t s = 0;
                for (size_t j = 0; j < PPLX_PEAK_SERIAL_DIM; j++) s += (int32_t)x[row + j] * q[k][j];
                acc += (uint32_t)s;
            }
    }
    return acc;
}

#endif
