/* peak/serial.h - the serial tier's compute peaks (see peak/peak.h for what a
 * peak is and how it is timed and checked).
 *
 * Popcount: the SWAR popcount of hamming/serial.h (the serial tier assumes no
 * POPCNT instruction: baseline x86-64 has none, and its kernel is this one)
 * on 8-byte words of the L1-resident buffer, four independent sums so the
 * adds of one word do not wait for the previous word's.
 *
 * Multiply-add: the serial dot kernel's arithmetic (int8 row bytes times
 * small signed query values, products summed in 32 bits), 4 queries per row
 * byte as a 4-query block does, whatever the compiler makes of it at the
 * build's baseline (GCC -O3 vectorises it with SSE2): the serial tier's
 * rate, not a hand-written one.  Sums are kept modulo 2^32 in unsigned
 * arithmetic (a long run overflows int32, which C leaves undefined).
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

static uint64_t pplx_peak_mac_serial(const uint8_t *buf, size_t reps) {
    uint32_t acc[PPLX_PEAK_NQ] = {0};
    for (size_t r = 0; r < reps; r++) {
        PPLX_PEAK_CLOBBER(buf);
        for (size_t i = 0; i < PPLX_PEAK_BYTES; i += 4) {
            const int32_t x0 = (int8_t)buf[i], x1 = (int8_t)buf[i + 1], x2 = (int8_t)buf[i + 2],
                          x3 = (int8_t)buf[i + 3];
            for (int k = 0; k < PPLX_PEAK_NQ; k++) {
                const int8_t *q = pplx_peak_q[k];
                acc[k] += (uint32_t)(x0 * q[0] + x1 * q[1] + x2 * q[2] + x3 * q[3]);
            }
        }
    }
    return (uint32_t)(acc[0] + acc[1] + acc[2] + acc[3]);
}

#endif
