/* bits/neon.h - the NEON tier of the bits kernels (the contract and the
 * reference: bits/serial.h).  Baseline AArch64 Advanced SIMD, no attribute.
 *
 * NEON has no movemask, so 64 values at a time (not measured here: this
 * machine is x86; instruction choices from the Arm Neoverse/Cortex
 * optimization guides):
 *  - pack: per 16 values a 0xFF/0x00 byte mask (int8: vcgtq_s8 > 0; bool:
 *    vtstq_u8 of the byte with itself, != 0; float32: vcgtq_f32, four
 *    vectors narrowed by vuzp1q_u16 + vuzp1q_u8; float64: vcgtq_f64, eight
 *    vectors narrowed by vuzp1q_u32/u16/u8).  FCMGT is an ordered compare,
 *    so NaN gives 0, and -0.0 > 0 is false, like C's >.  Each mask is ANDed
 *    with the bit weights 1,2,4,..,128 (MSB-first: 128,64,..,1) repeating
 *    every 8 lanes, and three rounds of vpaddq_u8 (ADDP) sum 8 adjacent
 *    lanes into one code byte: the weights of a group are distinct bits, so
 *    the sums are ORs and cannot carry.  4 ADDP per 64 values give 8 code
 *    bytes in order (vpaddq(a, b) puts a's pair sums before b's).
 *  - unpack: the 8 code bytes in both halves of a q register; four vqtbl1q_u8
 *    (TBL) copy code byte i into lanes 8i..8i+7, vtstq_u8 (CMTST) against
 *    the same weights gives 0xFF/0x00 per dimension, then u8: AND 1; i8:
 *    ORN(1, mask) = +1 / -1 (0xFF); f32: sign-extend the mask to 32 bits
 *    (SXTL, SXTL2) and BSL between +1.0 and -1.0.  The bit order is only the
 *    choice of weights, in pack and unpack alike.
 *  - reverse_bits: vrbitq_u8 (RBIT on bytes), 64 bytes per iteration.
 *  - tails (the last n % 64 values): copied into a zeroed local block and run
 *    through the same vector code, then only the bytes that belong to the
 *    output are copied out.  NEON has no masked loads or stores; this keeps
 *    the tail vectorized and touches no byte outside the buffers.  Zero
 *    padding packs to 0 bits, the contract's trailing zeros.
 *  - no streaming stores: A64 offers STNP only as a hint with no compiler
 *    intrinsic, and Arm cores (Cortex-A7x, Neoverse) switch to a write
 *    streaming mode by themselves on long runs of full-line writes, which is
 *    what the avx2 tier's non-temporal stores do by hand.
 */
#ifndef PPLX_BITS_NEON_H
#define PPLX_BITS_NEON_H

#include "serial.h"

#if PPLX_COMPILE_NEON

/* Bit weights of lanes 8i..8i+7: LSB-first 1,2,..,128; MSB-first 128,..,1. */
static inline uint8x16_t pplx_bit_weights_neon(int msb) {
    return vreinterpretq_u8_u64(vdupq_n_u64(msb ? 0x0102040810204080ULL : 0x8040201008040201ULL));
}

/* Four 16-lane 0xFF/0x00 masks (64 values in order) -> 8 code bytes. */
static inline uint8x8_t pplx_pack64_neon(uint8x16_t m0, uint8x16_t m1, uint8x16_t m2, uint8x16_t m3, uint8x16_t w) {
    const uint8x16_t a = vpaddq_u8(vandq_u8(m0, w), vandq_u8(m1, w)); /* sums of 2 lanes */
    const uint8x16_t b = vpaddq_u8(vandq_u8(m2, w), vandq_u8(m3, w));
    const uint8x16_t c = vpaddq_u8(a, b);     /* of 4 */
    return vget_low_u8(vpaddq_u8(c, c));      /* of 8: the code bytes */
}

/* 16 values -> 16 lanes of 0xFF (bit set) / 0x00. */
static inline uint8x16_t pplx_mask16_i8_neon(const int8_t *x) { return vcgtq_s8(vld1q_s8(x), vdupq_n_s8(0)); }

static inline uint8x16_t pplx_mask16_b8_neon(const uint8_t *x) {
    const uint8x16_t v = vld1q_u8(x);
    return vtstq_u8(v, v);
}

static inline uint8x16_t pplx_mask16_f32_neon(const float *x) {
    const float32x4_t z = vdupq_n_f32(0.0f);
    const uint32x4_t c0 = vcgtq_f32(vld1q_f32(x), z), c1 = vcgtq_f32(vld1q_f32(x + 4), z);
    const uint32x4_t c2 = vcgtq_f32(vld1q_f32(x + 8), z), c3 = vcgtq_f32(vld1q_f32(x + 12), z);
    const uint16x8_t a = vuzp1q_u16(vreinterpretq_u16_u32(c0), vreinterpretq_u16_u32(c1));
    const uint16x8_t b = vuzp1q_u16(vreinterpretq_u16_u32(c2), vreinterpretq_u16_u32(c3));
    return vuzp1q_u8(vreinterpretq_u8_u16(a), vreinterpretq_u8_u16(b));
}

static inline uint16x8_t pplx_mask8_f64_neon(const double *x) {
    const float64x2_t z = vdupq_n_f64(0.0);
    const uint64x2_t c0 = vcgtq_f64(vld1q_f64(x), z), c1 = vcgtq_f64(vld1q_f64(x + 2), z);
    const uint64x2_t c2 = vcgtq_f64(vld1q_f64(x + 4), z), c3 = vcgtq_f64(vld1q_f64(x + 6), z);
    const uint32x4_t a = vuzp1q_u32(vreinterpretq_u32_u64(c0), vreinterpretq_u32_u64(c1));
    const uint32x4_t b = vuzp1q_u32(vreinterpretq_u32_u64(c2), vreinterpretq_u32_u64(c3));
    return vuzp1q_u16(vreinterpretq_u16_u32(a), vreinterpretq_u16_u32(b));
}

static inline uint8x16_t pplx_mask16_f64_neon(const double *x) {
    return vuzp1q_u8(vreinterpretq_u8_u16(pplx_mask8_f64_neon(x)), vreinterpretq_u8_u16(pplx_mask8_f64_neon(x + 8)));
}

/* The packers: 64 values per step; the last n % 64 from a zeroed copy. */
#define PPLX_PACK_NEON(NAME, T, MASK16)                                                                       \
    static void NAME(const T *x, size_t n, uint8_t *d, int msb) {                                           \
        const uint8x16_t w = pplx_bit_weights_neon(msb);                                                    \
        size_t j = 0;                                                                                       \
        for (; j + 64 <= n; j += 64)                                                                        \
            vst1_u8(d + j / 8, pplx_pack64_neon(MASK16(x + j), MASK16(x + j + 16), MASK16(x + j + 32),       \
                                                MASK16(x + j + 48), w));                                    \
        if (j < n) {                                                                                        \
            T buf[64];                                                                                      \
            uint8_t code[8];                                                                                \
            memset(buf, 0, sizeof buf);                                                                     \
            memcpy(buf, x + j, (n - j) * sizeof(T));                                                        \
            vst1_u8(code, pplx_pack64_neon(MASK16(buf), MASK16(buf + 16), MASK16(buf + 32), MASK16(buf + 48), \
                                           w));                                                             \
            memcpy(d + j / 8, code, (n - j + 7) / 8);                                                       \
        }                                                                                                   \
    }
PPLX_PACK_NEON(pplx_pack_i8_neon, int8_t, pplx_mask16_i8_neon)
PPLX_PACK_NEON(pplx_pack_b8_neon, uint8_t, pplx_mask16_b8_neon)
PPLX_PACK_NEON(pplx_pack_f32_neon, float, pplx_mask16_f32_neon)
PPLX_PACK_NEON(pplx_pack_f64_neon, double, pplx_mask16_f64_neon)

/* 8 code bytes -> m[q] = 0xFF/0x00 for dimensions 16q..16q+15. */
static inline void pplx_expand64_neon(const uint8_t *s, uint8x16_t w, uint8x16_t m[4]) {
    const uint8x8_t b = vld1_u8(s);
    const uint8x16_t t = vcombine_u8(b, b);
    const uint64_t c = 0x0101010101010101ULL; /* lanes 8i..8i+7 <- code byte i */
    for (int q = 0; q < 4; q++) {
        const uint8x16_t idx = vcombine_u8(vcreate_u8(c * (uint64_t)(2 * q)), vcreate_u8(c * (uint64_t)(2 * q + 1)));
        m[q] = vtstq_u8(vqtbl1q_u8(t, idx), w);
    }
}

static inline void pplx_unpack64_u8_neon(const uint8_t *s, uint8_t *y, uint8x16_t w) {
    uint8x16_t m[4];
    pplx_expand64_neon(s, w, m);
    for (int q = 0; q < 4; q++) vst1q_u8(y + 16 * q, vandq_u8(m[q], vdupq_n_u8(1)));
}

static inline void pplx_unpack64_i8_neon(const uint8_t *s, int8_t *y, uint8x16_t w) {
    uint8x16_t m[4];
    pplx_expand64_neon(s, w, m);
    /* 1 | ~mask: set -> 1, clear -> 0xFF = -1 */
    for (int q = 0; q < 4; q++) vst1q_s8(y + 16 * q, vreinterpretq_s8_u8(vornq_u8(vdupq_n_u8(1), m[q])));
}

static inline void pplx_unpack64_f32_neon(const uint8_t *s, float *y, uint8x16_t w) {
    const float32x4_t pos = vdupq_n_f32(1.0f), neg = vdupq_n_f32(-1.0f);
    uint8x16_t m[4];
    pplx_expand64_neon(s, w, m);
    for (int q = 0; q < 4; q++) {
        const int8x16_t b = vreinterpretq_s8_u8(m[q]);
        const int16x8_t lo = vmovl_s8(vget_low_s8(b)), hi = vmovl_high_s8(b);
        vst1q_f32(y + 16 * q, vbslq_f32(vreinterpretq_u32_s32(vmovl_s16(vget_low_s16(lo))), pos, neg));
        vst1q_f32(y + 16 * q + 4, vbslq_f32(vreinterpretq_u32_s32(vmovl_high_s16(lo)), pos, neg));
        vst1q_f32(y + 16 * q + 8, vbslq_f32(vreinterpretq_u32_s32(vmovl_s16(vget_low_s16(hi))), pos, neg));
        vst1q_f32(y + 16 * q + 12, vbslq_f32(vreinterpretq_u32_s32(vmovl_high_s16(hi)), pos, neg));
    }
}

/* The unpackers: 64 dimensions per step; the last n % 64 through a zeroed
 * copy of their code bytes and a local output block. */
#define PPLX_UNPACK_NEON(NAME, T, STEP)                                                                       \
    static void NAME(const uint8_t *s, size_t n, T *y, int msb) {                                           \
        const uint8x16_t w = pplx_bit_weights_neon(msb);                                                    \
        size_t j = 0;                                                                                       \
        for (; j + 64 <= n; j += 64) STEP(s + j / 8, y + j, w);                                             \
        if (j < n) {                                                                                        \
            uint8_t code[8] = {0};                                                                          \
            T out[64];                                                                                      \
            memcpy(code, s + j / 8, (n - j + 7) / 8);                                                       \
            STEP(code, out, w);                                                                             \
            memcpy(y + j, out, (n - j) * sizeof(T));                                                        \
        }                                                                                                   \
    }
PPLX_UNPACK_NEON(pplx_unpack_u8_neon, uint8_t, pplx_unpack64_u8_neon)
PPLX_UNPACK_NEON(pplx_unpack_i8_neon, int8_t, pplx_unpack64_i8_neon)
PPLX_UNPACK_NEON(pplx_unpack_f32_neon, float, pplx_unpack64_f32_neon)

static void pplx_reverse_bits_neon(const uint8_t *s, size_t n, uint8_t *d) {
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int q = 0; q < 4; q++) vst1q_u8(d + i + 16 * q, vrbitq_u8(vld1q_u8(s + i + 16 * q)));
    for (; i + 16 <= n; i += 16) vst1q_u8(d + i, vrbitq_u8(vld1q_u8(s + i)));
    if (i < n) {
        uint8_t b[16] = {0};
        memcpy(b, s + i, n - i);
        vst1q_u8(b, vrbitq_u8(vld1q_u8(b)));
        memcpy(d + i, b, n - i);
    }
}

#endif /* PPLX_COMPILE_NEON */
#endif
