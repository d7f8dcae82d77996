/* peak/avx512.h - the avx512 tier's compute peaks (see peak/peak.h).
 *
 * Each instruction in two forms, 512-bit (zmm) and 256-bit (ymm, through
 * AVX512VL), because the tier may use either and they do not run at the
 * same rate everywhere: Zen 4 executes most 512-bit operations as two
 * 256-bit halves, and on this project's Zen 4 VPOPCNTQ ymm counted more
 * bytes per second than VPOPCNTQ zmm.  The tier's peak is the faster form
 * (peak.h), so no kernel of the tier, whatever width it picks, can beat it.
 *
 * Popcount: VPOPCNTQ (AVX512_VPOPCNTDQ) of each loaded vector, VPADDQ into
 * 8 independent accumulators (a kernel's loop: a load, the count, an add;
 * the XOR of a Hamming distance is not popcount work and is left out).
 *
 * Multiply-add: VPDPBUSD (AVX512_VNNI: u8 x s8, 4 products summed into each
 * int32 lane), 64 multiply-adds per zmm instruction (32 per ymm).  Each
 * loaded row vector feeds 4 queries held in registers, 2 rows per step: 8
 * independent accumulators cover its latency (4-5 cycles) and a load per 4
 * multiply-adds leaves the load ports idle half the time, the dot kernel's
 * blocking in miniature (dot/avx512.h: 16 accumulators, 10 loads per 16).
 */
#ifndef PPLX_PEAK_AVX512_H
#define PPLX_PEAK_AVX512_H

#include "avx2.h"

#if PPLX_COMPILE_AVX512

/* One loop body per vector width: V the vector type, W its bytes, and the
 * width's intrinsics. */
#define PPLX_PEAK_POPCOUNT_LOOP(V, W, LOAD, POPCNT, ADD, ZERO)                                               \
    V a0 = ZERO(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;                            \
    for (size_t r = 0; r < reps; r++) {                                                                      \
        PPLX_PEAK_CLOBBER(buf);                                                                              \
        for (size_t i = 0; i < PPLX_PEAK_BYTES; i += 8 * (W)) {                                              \
            a0 = ADD(a0, POPCNT(LOAD(buf + i)));                                                             \
            a1 = ADD(a1, POPCNT(LOAD(buf + i + (W))));                                                       \
            a2 = ADD(a2, POPCNT(LOAD(buf + i + 2 * (W))));                                                   \
            a3 = ADD(a3, POPCNT(LOAD(buf + i + 3 * (W))));                                                   \
            a4 = ADD(a4, POPCNT(LOAD(buf + i + 4 * (W))));                                                   \
            a5 = ADD(a5, POPCNT(LOAD(buf + i + 5 * (W))));                                                   \
            a6 = ADD(a6, POPCNT(LOAD(buf + i + 6 * (W))));                                                   \
            a7 = ADD(a7, POPCNT(LOAD(buf + i + 7 * (W))));                                                   \
        }                                                                                                    \
    }                                                                                                        \
    a0 = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));

#define PPLX_PEAK_MAC_LOOP(V, W, LOAD, DPBUSD, ADD, ZERO, SET1)                                              \
    const V q0 = SET1(pplx_peak_qword(0)), q1 = SET1(pplx_peak_qword(1)), q2 = SET1(pplx_peak_qword(2)),     \
            q3 = SET1(pplx_peak_qword(3));                                                                   \
    V a0 = ZERO(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;                            \
    for (size_t r = 0; r < reps; r++) {                                                                      \
        PPLX_PEAK_CLOBBER(buf);                                                                              \
        for (size_t i = 0; i < PPLX_PEAK_BYTES; i += 2 * (W)) {                                              \
            const V x0 = LOAD(buf + i), x1 = LOAD(buf + i + (W));                                            \
            a0 = DPBUSD(a0, x0, q0);                                                                         \
            a1 = DPBUSD(a1, x0, q1);                                                                         \
            a2 = DPBUSD(a2, x0, q2);                                                                         \
            a3 = DPBUSD(a3, x0, q3);                                                                         \
            a4 = DPBUSD(a4, x1, q0);                                                                         \
            a5 = DPBUSD(a5, x1, q1);                                                                         \
            a6 = DPBUSD(a6, x1, q2);                                                                         \
            a7 = DPBUSD(a7, x1, q3);                                                                         \
        }                                                                                                    \
    }                                                                                                        \
    a0 = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));

#define PPLX_PEAK_LOADZ(p) _mm512_loadu_si512((const void *)(p))
#define PPLX_PEAK_LOADY(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))

PPLX_TARGET_AVX512 static uint64_t pplx_peak_popcount_zmm(const uint8_t *buf, size_t reps) {
    PPLX_PEAK_POPCOUNT_LOOP(__m512i, 64, PPLX_PEAK_LOADZ, _mm512_popcnt_epi64, _mm512_add_epi64,
                            _mm512_setzero_si512)
    return pplx_peak_hsum64_avx2(_mm256_add_epi64(_mm512_castsi512_si256(a0), _mm512_extracti64x4_epi64(a0, 1)));
}

PPLX_TARGET_AVX512 static uint64_t pplx_peak_popcount_ymm(const uint8_t *buf, size_t reps) {
    PPLX_PEAK_POPCOUNT_LOOP(__m256i, 32, PPLX_PEAK_LOADY, _mm256_popcnt_epi64, _mm256_add_epi64,
                            _mm256_setzero_si256)
    return pplx_peak_hsum64_avx2(a0);
}

PPLX_TARGET_AVX512 static uint64_t pplx_peak_mac_zmm(const uint8_t *buf, size_t reps) {
    PPLX_PEAK_MAC_LOOP(__m512i, 64, PPLX_PEAK_LOADZ, _mm512_dpbusd_epi32, _mm512_add_epi32, _mm512_setzero_si512,
                       _mm512_set1_epi32)
    return pplx_peak_hsum32_avx2(_mm256_add_epi32(_mm512_castsi512_si256(a0), _mm512_extracti64x4_epi64(a0, 1)));
}

PPLX_TARGET_AVX512 static uint64_t pplx_peak_mac_ymm(const uint8_t *buf, size_t reps) {
    PPLX_PEAK_MAC_LOOP(__m256i, 32, PPLX_PEAK_LOADY, _mm256_dpbusd_epi32, _mm256_add_epi32, _mm256_setzero_si256,
                       _mm256_set1_epi32)
    return pplx_peak_hsum32_avx2(a0);
}

#undef PPLX_PEAK_POPCOUNT_LOOP
#undef PPLX_PEAK_MAC_LOOP
#undef PPLX_PEAK_LOADZ
#undef PPLX_PEAK_LOADY

#endif /* PPLX_COMPILE_AVX512 */
#endif
