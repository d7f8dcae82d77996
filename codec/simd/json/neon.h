/* json/neon.h - the NEON (aarch64 Advanced SIMD, baseline there: no target
 * attribute) tier of the JSON byte scanners (what they find: json/serial.h,
 * whose functions are the reference these are tested against).
 *
 * 16 bytes per step: '"' and '\\' by two CMEQ, a control character (< 0x20)
 * or a non-ASCII byte (>= 0x80) by ONE signed CMGT (0x20 > (int8_t)c: the
 * bytes >= 0x80 are the negative ones), OR-ed.  NEON has no movemask; SHRN
 * by 4 of the 0x00/0xFF lanes seen as 8 u16 narrows them to one 64-bit word
 * with 4 bits per byte (the usual NEON substitute), tested against zero; the
 * first hit is at ctz / 4.  Blocks are loaded while a whole one fits; the
 * rest is one block ending exactly at s + n, overlapping bytes known plain;
 * under 16 bytes the serial code: nothing is read past s + n.
 */
#ifndef PPLX_JSON_NEON_H
#define PPLX_JSON_NEON_H

#include "serial.h"

#if PPLX_COMPILE_NEON
static inline uint64_t pplx_json_nibbles_neon(uint8x16_t m) {
    return vget_lane_u64(vreinterpret_u64_u8(vshrn_n_u16(vreinterpretq_u16_u8(m), 4)), 0);
}

static inline uint64_t pplx_json_special_mask_neon(const uint8_t *p) {
    uint8x16_t v = vld1q_u8(p);
    uint8x16_t m = vorrq_u8(vceqq_u8(v, vdupq_n_u8('"')), vceqq_u8(v, vdupq_n_u8('\\')));
    m = vorrq_u8(m, vcgtq_s8(vdupq_n_s8(0x20), vreinterpretq_s8_u8(v)));
    return pplx_json_nibbles_neon(m);
}

static inline uint64_t pplx_json_quote_mask_neon(const uint8_t *p) {
    uint8x16_t v = vld1q_u8(p);
    return pplx_json_nibbles_neon(vorrq_u8(vceqq_u8(v, vdupq_n_u8('"')), vceqq_u8(v, vdupq_n_u8('\\'))));
}

static inline size_t pplx_json_special_neon(const uint8_t *s, size_t n) {
    if (n < 16) return pplx_json_special_serial(s, n);
    uint64_t m;
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        if ((m = pplx_json_special_mask_neon(s + i)) != 0) return i + (size_t)(__builtin_ctzll(m) >> 2);
    if (i < n && (m = pplx_json_special_mask_neon(s + n - 16)) != 0)
        return n - 16 + (size_t)(__builtin_ctzll(m) >> 2);
    return n;
}

static inline size_t pplx_json_quote_neon(const uint8_t *s, size_t n) {
    if (n < 16) return pplx_json_quote_serial(s, n);
    uint64_t m;
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        if ((m = pplx_json_quote_mask_neon(s + i)) != 0) return i + (size_t)(__builtin_ctzll(m) >> 2);
    if (i < n && (m = pplx_json_quote_mask_neon(s + n - 16)) != 0)
        return n - 16 + (size_t)(__builtin_ctzll(m) >> 2);
    return n;
}
#endif

#endif
