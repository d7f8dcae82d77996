/* int8/neon.h - the NEON tier of the int8 kernels (the contract and the
 * reference: int8/serial.h).  Baseline AArch64 Advanced SIMD.
 *
 *  - sumsq_i8: vmull_s8 / vmull_high_s8 (SMULL, SMULL2) square 8 int8 into
 *    int16 (at most 128^2 = 16384, fits), vpadalq_s16 (SADALP) adds adjacent
 *    pairs into int32 lanes.  Four accumulators, 64 bytes per iteration, so
 *    the SADALP chains (latency 4 on Neoverse N1) overlap.  Exactness: every
 *    partial sum (a lane, an accumulator, their total) adds squares of one
 *    block's elements, all >= 0, so it is at most the block's whole sum,
 *    <= 2^16 * 128^2 = 2^30 < 2^31; each block of 64 Ki elements is reduced
 *    by vaddlvq_s32 (SADDLV, widening to int64) into the int64 total, exact
 *    for any n.  The last n % 16 bytes come from a zeroed local copy (zeros
 *    add nothing).  (SDOT, in the neon_dotprod tier, would square 4 bytes
 *    per lane per instruction; not done here.)
 *  - i8_to_f32: 16 int8 -> SXTL/SXTL2 twice -> SCVTF (exact: |x| <= 128) ->
 *    FDIV by the divisor: a correctly rounded IEEE division like the serial
 *    (float)x / div (Linux runs with FPCR.FZ clear, so subnormals are kept
 *    as in C), bit-identical to numpy's x.astype(float32) / div; a
 *    reciprocal estimate + multiply would not be.  The last n % 16 through a
 *    zeroed local block, copied out.
 */
#ifndef PPLX_INT8_NEON_H
#define PPLX_INT8_NEON_H

#include <string.h>
#include "serial.h"

#if PPLX_COMPILE_NEON


/* Elements per int32 block (see the bound above). */
#define PPLX_SUMSQ_BLOCK_NEON ((size_t)1 << 16)

static inline int32x4_t pplx_sq16_neon(int32x4_t acc, int8x16_t v, int high) {
    return vpadalq_s16(acc, high ? vmull_high_s8(v, v) : vmull_s8(vget_low_s8(v), vget_low_s8(v)));
}

static int64_t pplx_sumsq_i8_neon(const int8_t *x, size_t n) {
    int64_t total = 0;
    size_t j = 0;
    while (j < n) {
        const size_t stop = n - j > PPLX_SUMSQ_BLOCK_NEON ? j + PPLX_SUMSQ_BLOCK_NEON : n;
        int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
        for (; j + 64 <= stop; j += 64) {
            const int8x16_t v0 = vld1q_s8(x + j), v1 = vld1q_s8(x + j + 16);
            const int8x16_t v2 = vld1q_s8(x + j + 32), v3 = vld1q_s8(x + j + 48);
            a0 = pplx_sq16_neon(a0, v0, 0);
            a1 = pplx_sq16_neon(a1, v0, 1);
            a2 = pplx_sq16_neon(a2, v1, 0);
            a3 = pplx_sq16_neon(a3, v1, 1);
            a0 = pplx_sq16_neon(a0, v2, 0);
            a1 = pplx_sq16_neon(a1, v2, 1);
            a2 = pplx_sq16_neon(a2, v3, 0);
            a3 = pplx_sq16_neon(a3, v3, 1);
        }
        for (; j + 16 <= stop; j += 16) {
            const int8x16_t v = vld1q_s8(x + j);
            a0 = pplx_sq16_neon(a0, v, 0);
            a1 = pplx_sq16_neon(a1, v, 1);
        }
        if (j < stop) {
            int8_t b[16] = {0};
            memcpy(b, x + j, stop - j);
            const int8x16_t v = vld1q_s8(b);
            a2 = pplx_sq16_neon(a2, v, 0);
            a3 = pplx_sq16_neon(a3, v, 1);
            j = stop;
        }
        total += vaddlvq_s32(vaddq_s32(vaddq_s32(a0, a1), vaddq_s32(a2, a3)));
    }
    return total;
}

/* 16 int8 -> 16 float32 divided by d, stored at y. */
static inline void pplx_i8x16_to_f32_neon(int8x16_t v, float32x4_t d, float *y) {
    const int16x8_t lo = vmovl_s8(vget_low_s8(v)), hi = vmovl_high_s8(v);
    vst1q_f32(y, pplx_vdivq_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), d));
    vst1q_f32(y + 4, pplx_vdivq_f32(vcvtq_f32_s32(vmovl_high_s16(lo)), d));
    vst1q_f32(y + 8, pplx_vdivq_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), d));
    vst1q_f32(y + 12, pplx_vdivq_f32(vcvtq_f32_s32(vmovl_high_s16(hi)), d));
}

static void pplx_i8_to_f32_neon(const int8_t *x, size_t n, float div, float *y) {
    const float32x4_t d = vdupq_n_f32(div);
    size_t j = 0;
    for (; j + 16 <= n; j += 16) pplx_i8x16_to_f32_neon(vld1q_s8(x + j), d, y + j);
    if (j < n) {
        int8_t b[16] = {0};
        float out[16];
        memcpy(b, x + j, n - j);
        pplx_i8x16_to_f32_neon(vld1q_s8(b), d, out);
        memcpy(y + j, out, (n - j) * sizeof(float));
    }
}

#endif /* PPLX_COMPILE_NEON */
#endif
