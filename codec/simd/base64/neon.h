/* base64/neon.h - the NEON (aarch64 Advanced SIMD) tier of the base64
 * kernels, with the strictness rules and the error reporting of
 * base64/serial.h, whose kernels are the reference these are tested against.
 * NEON is baseline on aarch64: no target attribute.
 *
 * Decode, 64 chars -> 48 bytes per step:
 *  - vld4q_u8 loads 64 chars deinterleaved: register j holds char j of each
 *    of the 16 quads, so the quads never have to be taken apart by shuffles.
 *  - translate: TBL with four table registers covers 64 entries.  vqtbl4q_u8
 *    over entries 0..63 of pplx_b64_value (the 6-bit value, 0xFF outside the
 *    alphabet) gives the value of chars 0..63 and 0 for the others (an index
 *    out of range reads 0); vqtbx4q_u8 over entries 64..127 indexed by
 *    char ^ 0x40 then overwrites exactly the chars 64..127 (for the others
 *    the index is >= 64, and TBX leaves the lane alone).  A char >= 0x80
 *    keeps that 0, but it carries its own sign bit: a char is invalid exactly
 *    when (char | value) has its sign bit set.  These ORs are accumulated
 *    over four blocks (256 chars) and the sign bits tested once per group with
 *    one UMAXV (an across-lanes reduction, of long latency).
 *  - combine: with the values a, b, c, d of each quad in four registers,
 *    byte 0 = a<<2 | b>>4, byte 1 = b<<4 | c>>2, byte 2 = c<<6 | d (byte
 *    shifts drop the bits above 8).  For valid values the two parts of each
 *    byte do not overlap (b>>4 < 4, c>>2 < 16, d < 64), so the OR is an ADD
 *    and USRA (shift right and accumulate) does the right shift and the OR in
 *    one instruction: 6 instructions for 48 bytes.  (SLI, shift left and
 *    insert, would save one more, but SIMDe 0.7.4, the x86 test build of
 *    this code, lacks vsliq_n_u8.)  What invalid blocks produce is redone.
 *  - vst3q_u8 interleaves the three byte registers and stores exactly 48
 *    bytes: nothing is written past the block's output.
 *  - exactness: blocks only cover the quads before the last one; a group
 *    (up to four blocks) whose accumulator shows an invalid char is redone
 *    from its start by the serial code, which names the offset of the first
 *    bad char (at most 64 quads, overwriting what the vector code stored;
 *    the output past an error is unspecified anyway).  The last quad always
 *    goes through pplx_b64_last_quad (the only place '=' is legal), the
 *    quads between the last whole block and the last quad (< 16) through
 *    pplx_b64_quads_serial.
 *  - one call site of the block function, so GCC inlines it, and the tables
 *    come from vld1q_u8_x4: given constants, GCC 12 folds them into
 *    literals and rebuilds the four-register groups through the stack in
 *    every block (checked in the generated code).
 * Encode, 48 bytes -> 64 chars per step:
 *  - vld3q_u8 loads 48 bytes deinterleaved into the bytes a, b, c of 16
 *    triples; the four 6-bit fields are a>>2 (USHR), (a<<4 | b>>4) & 63 and
 *    (b<<2 | c>>6) & 63 (SHL, SRI - shift right and insert - and AND), c & 63;
 *  - vqtbl4q_u8 over the 64-char alphabet maps each field to its char;
 *  - vst4q_u8 interleaves them and stores exactly 64 chars.
 *  Loads and stores are exact, so every whole 48-byte block goes through
 *  the vector code; the last < 48 bytes and the padding through the serial
 *  code.
 * Cost (counted in the generated code, not measured): per 64 chars decoded
 * one LD4, 8 four-register TBL/TBX, 4 EOR, 9 ORR, 5 SHL/USRA, one ST3 (and
 * a few register moves GCC adds for ST3's consecutive registers); per 48
 * bytes encoded one LD3, 8 shifts/inserts/ANDs, 4 TBL and one ST4.  In the
 * Arm optimization guides TBL/TBX cost grows with the number of table
 * registers, so the lookups dominate; the structure loads and stores spare
 * all the shuffles a byte-order approach would need.
 */
#ifndef PPLX_BASE64_NEON_H
#define PPLX_BASE64_NEON_H

#include "serial.h"

#if PPLX_COMPILE_NEON
/* The value of each char (0xFF or, for chars >= 0x80, 0 when invalid);
 * *acc gets char | value OR-ed in.  lo, hi: pplx_b64_value[0..63], [64..127]. */
static inline uint8x16_t pplx_b64_xlat_neon(uint8x16_t c, uint8x16x4_t lo, uint8x16x4_t hi, uint8x16_t *acc) {
    uint8x16_t v = vqtbl4q_u8(lo, c);
    v = vqtbx4q_u8(v, hi, veorq_u8(c, vdupq_n_u8(0x40)));
    *acc = vorrq_u8(*acc, vorrq_u8(c, v));
    return v;
}

/* 64 chars at s -> 48 bytes at d (exactly 48 written).  Returns acc with the
 * chars and their values OR-ed in: its sign bits are set exactly when some
 * char so far was outside the alphabet. */
static inline uint8x16_t pplx_b64_block_neon(const uint8_t *s, uint8_t *d, uint8x16_t acc, uint8x16x4_t lo,
                                             uint8x16x4_t hi) {
    uint8x16x4_t in = vld4q_u8(s);
    uint8x16_t a = pplx_b64_xlat_neon(in.val[0], lo, hi, &acc);
    uint8x16_t b = pplx_b64_xlat_neon(in.val[1], lo, hi, &acc);
    uint8x16_t c = pplx_b64_xlat_neon(in.val[2], lo, hi, &acc);
    uint8x16_t e = pplx_b64_xlat_neon(in.val[3], lo, hi, &acc);
    uint8x16x3_t out;
    out.val[0] = vsraq_n_u8(vshlq_n_u8(a, 2), b, 4); /* a<<2 | b>>4 */
    out.val[1] = vsraq_n_u8(vshlq_n_u8(b, 4), c, 2); /* b<<4 | c>>2 */
    out.val[2] = vorrq_u8(vshlq_n_u8(c, 6), e);      /* c<<6 | d */
    vst3q_u8(d, out);
    return acc;
}

static inline int pplx_b64_any_bad_neon(uint8x16_t acc) { return vmaxvq_u8(acc) >= 0x80; }

static ptrdiff_t pplx_b64_decode_neon(const uint8_t *s, size_t n, uint8_t *d, size_t *err) {
    if (n % 4) { *err = n - n % 4; return PPLX_B64_BADLEN; }
    if (n == 0) return 0;
    const size_t body = n - 4; /* chars before the last quad */
    size_t i = 0;
    if (body >= 64) {
        /* vld1q_u8_x4, not a constant (see the header comment) */
        const uint8x16x4_t lo = vld1q_u8_x4(pplx_b64_value), hi = vld1q_u8_x4(pplx_b64_value + 64);
        /* Groups of up to four blocks, validity tested once per group; a
         * failing group is left to the serial code below, which names the
         * offset.  A block at i reads s[i, i+64) and writes d[i/4*3,
         * i/4*3+48): inside the body and its output while body - i >= 64.
         * One call site: GCC then inlines the block. */
        while (body - i >= 64) {
            size_t nb = (body - i) / 64;
            if (nb > 4) nb = 4;
            uint8x16_t acc = vdupq_n_u8(0);
            for (size_t k = 0; k < nb; k++)
                acc = pplx_b64_block_neon(s + i + 64 * k, d + i / 4 * 3 + 48 * k, acc, lo, hi);
            if (pplx_b64_any_bad_neon(acc)) break;
            i += 64 * nb;
        }
    }
    size_t bad = pplx_b64_quads_serial(s + i, (body - i) / 4, d + i / 4 * 3);
    if (bad != (size_t)-1) { *err = i + bad; return PPLX_B64_BADCHAR; }
    ptrdiff_t last = pplx_b64_last_quad(s, n, d + body / 4 * 3, err);
    return last < 0 ? last : (ptrdiff_t)(body / 4 * 3) + last;
}

static size_t pplx_b64_encode_neon(const uint8_t *s, size_t n, uint8_t *d) {
    size_t i = 0, o = 0;
    if (n >= 48) {
        const uint8x16x4_t alpha = vld1q_u8_x4((const uint8_t *)pplx_b64_alphabet);
        const uint8x16_t m63 = vdupq_n_u8(63);
        for (; i + 48 <= n; i += 48, o += 64) {
            uint8x16x3_t in = vld3q_u8(s + i);
            uint8x16_t a = in.val[0], b = in.val[1], c = in.val[2];
            uint8x16x4_t out;
            out.val[0] = vqtbl4q_u8(alpha, vshrq_n_u8(a, 2));
            out.val[1] = vqtbl4q_u8(alpha, vandq_u8(vsriq_n_u8(vshlq_n_u8(a, 4), b, 4), m63));
            out.val[2] = vqtbl4q_u8(alpha, vandq_u8(vsriq_n_u8(vshlq_n_u8(b, 2), c, 6), m63));
            out.val[3] = vqtbl4q_u8(alpha, vandq_u8(c, m63));
            vst4q_u8(d + o, out);
        }
    }
    return o + pplx_b64_encode_serial(s + i, n - i, d + o);
}

#endif /* PPLX_COMPILE_NEON */
#endif
