/* peak/neon.h - the neon and neon_dotprod tiers' compute peaks (see
 * peak/peak.h).  Not measured here (this project's machines are x86);
 * checked for their sums under qemu and SIMDe by the C harness.
 *
 * Popcount (both tiers): CNT (vcntq_u8, the count of each byte) of each
 * loaded 16 bytes, added into byte accumulators (UADD); four accumulators
 * of 16 vectors each (at most 128 per byte) are widened once per KiB
 * (UADDLP, UADALP), as hamming/neon.h reduces once per row.
 *
 * Multiply-add, neon: the dot kernel's SMULL / SMULL2 (8 + 8 signed byte
 * products into int16, one product each: |x q| <= 2^14 fits) and SADALP
 * (adjacent int16 pairs added into int32 lanes): 16 multiply-adds per four
 * instructions.  Multiply-accumulating into int16 (SMLAL.8H) would be two
 * instructions, but two (-128) * (-128) products already overflow it, so no
 * kernel can use it: this is the tier's ceiling.  neon_dotprod: SDOT
 * (vdotq_s32, 4 signed byte products summed into each int32 lane), 16
 * multiply-adds per instruction.  Each loaded row vector feeds 4 queries
 * held in registers; 8 independent accumulators (SDOT: 2 rows x 4 queries;
 * SMULL: lo and hi halves x 4 queries) cover the latencies.
 */
#ifndef PPLX_PEAK_NEON_H
#define PPLX_PEAK_NEON_H

#include "common.h"

#if PPLX_COMPILE_NEON

static inline int8x16_t pplx_peak_qvec_neon(int k) { return vreinterpretq_s8_s32(vdupq_n_s32(pplx_peak_qword(k))); }

/* Lane sums modulo 2^32 (unsigned: wrapping is defined). */
static inline uint32_t pplx_peak_hsum32_neon(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
    const uint32x4_t s = vaddq_u32(vaddq_u32(vreinterpretq_u32_s32(a), vreinterpretq_u32_s32(b)),
                                   vaddq_u32(vreinterpretq_u32_s32(c), vreinterpretq_u32_s32(d)));
    return vaddvq_u32(s);
}

static uint64_t pplx_peak_popcount_neon(const uint8_t *buf, size_t reps) {
    uint64x2_t tot = vdupq_n_u64(0);
    for (size_t r = 0; r < reps; r++) {
        PPLX_PEAK_CLOBBER(buf);
        for (size_t i = 0; i < PPLX_PEAK_BYTES; i += 1024) {
            uint8x16_t c0 = vdupq_n_u8(0), c1 = c0, c2 = c0, c3 = c0;
            for (size_t j = 0; j < 1024; j += 64) {
                c0 = vaddq_u8(c0, vcntq_u8(vld1q_u8(buf + i + j)));
                c1 = vaddq_u8(c1, vcntq_u8(vld1q_u8(buf + i + j + 16)));
                c2 = vaddq_u8(c2, vcntq_u8(vld1q_u8(buf + i + j + 32)));
                c3 = vaddq_u8(c3, vcntq_u8(vld1q_u8(buf + i + j + 48)));
            }
            uint16x8_t s = vpaddlq_u8(c0);
            s = vpadalq_u8(s, c1);
            s = vpadalq_u8(s, c2);
            s = vpadalq_u8(s, c3);
            tot = vpadalq_u32(tot, vpaddlq_u16(s));
        }
    }
    return vgetq_lane_u64(tot, 0) + vgetq_lane_u64(tot, 1);
}

static uint64_t pplx_peak_mac_neon(const uint8_t *buf, size_t reps) {
    const int8x16_t q0 = pplx_peak_qvec_neon(0), q1 = pplx_peak_qvec_neon(1), q2 = pplx_peak_qvec_neon(2),
                    q3 = pplx_peak_qvec_neon(3);
    int32x4_t l0 = vdupq_n_s32(0), l1 = l0, l2 = l0, l3 = l0, h0 = l0, h1 = l0, h2 = l0, h3 = l0;
#define PPLX_PEAK_SMULL(l, h, q)                                                                             \
    do {                                                                                                     \
        l = vpadalq_s16(l, vmull_s8(vget_low_s8(x), vget_low_s8(q)));                                        \
        h = vpadalq_s16(h, vmull_high_s8(x, q));                                                             \
    } while (0)
    for (size_t r = 0; r < reps; r++) {
        PPLX_PEAK_CLOBBER(buf);
        for (size_t i = 0; i < PPLX_PEAK_BYTES; i += 16) {
            const int8x16_t x = vld1q_s8((const int8_t *)(const void *)(buf + i));
            PPLX_PEAK_SMULL(l0, h0, q0);
            PPLX_PEAK_SMULL(l1, h1, q1);
            PPLX_PEAK_SMULL(l2, h2, q2);
            PPLX_PEAK_SMULL(l3, h3, q3);
        }
    }
#undef PPLX_PEAK_SMULL
    return (uint32_t)(pplx_peak_hsum32_neon(l0, l1, l2, l3) + pplx_peak_hsum32_neon(h0, h1, h2, h3));
}

#if PPLX_COMPILE_NEON_DOTPROD
PPLX_TARGET_NEON_DOTPROD static uint64_t pplx_peak_mac_sdot(const uint8_t *buf, size_t reps) {
    const int8x16_t q0 = pplx_peak_qvec_neon(0), q1 = pplx_peak_qvec_neon(1), q2 = pplx_peak_qvec_neon(2),
                    q3 = pplx_peak_qvec_neon(3);
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (size_t r = 0; r < reps; r++) {
        PPLX_PEAK_CLOBBER(buf);
        for (size_t i = 0; i < PPLX_PEAK_BYTES; i += 32) {
            const int8x16_t x0 = vld1q_s8((const int8_t *)(const void *)(buf + i));
            const int8x16_t x1 = vld1q_s8((const int8_t *)(const void *)(buf + i + 16));
            a0 = vdotq_s32(a0, x0, q0);
            a1 = vdotq_s32(a1, x0, q1);
            a2 = vdotq_s32(a2, x0, q2);
            a3 = vdotq_s32(a3, x0, q3);
            a4 = vdotq_s32(a4, x1, q0);
            a5 = vdotq_s32(a5, x1, q1);
            a6 = vdotq_s32(a6, x1, q2);
            a7 = vdotq_s32(a7, x1, q3);
        }
    }
    return (uint32_t)(pplx_peak_hsum32_neon(a0, a1, a2, a3) + pplx_peak_hsum32_neon(a4, a5, a6, a7));
}
#endif

#endif /* PPLX_COMPILE_NEON */
#endif
