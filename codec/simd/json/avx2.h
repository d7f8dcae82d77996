/* json/avx2.h - the x86-64 tiers of the JSON byte scanners (what they find:
 * json/serial.h, whose functions are the reference these are tested against).
 *
 *  - sse2: x86-64 baseline (no target attribute), 16 bytes per step; used
 *    when the active kernel tier is serial.
 *  - avx2: 32 bytes per step, PPLX_TARGET_AVX2; used when the active tier is
 *    avx2 or above (avx512 and amx imply AVX2).
 * One block: '"' and '\\' by two byte compares (pcmpeqb); a control
 * character (< 0x20) or a non-ASCII byte (>= 0x80) by ONE signed compare,
 * (int8_t)c < 0x20, since the bytes >= 0x80 are exactly the negative ones.
 * The three masks are OR-ed and pmovmskb gives one bit per byte: a zero mask
 * means 16/32 plain bytes (three compares, two ORs, a movemask and a test),
 * otherwise the first hit is at the count of trailing zeros.  Blocks are
 * loaded unaligned while a whole one fits; the rest is one block ending
 * exactly at s + n, which overlaps bytes already known plain (so its first
 * hit is the first one after them): no load ever reads past s + n.  Under
 * one block (n < 16, or n < 32 for avx2) the narrower tier (or the serial
 * code) takes it.  The quote scanner is the same without the signed compare.
 */
#ifndef PPLX_JSON_AVX2_H
#define PPLX_JSON_AVX2_H

#include "serial.h"

#if PPLX_COMPILE_AVX2
static inline unsigned pplx_json_special_mask_sse2(const uint8_t *p) {
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    __m128i m = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
    m = _mm_or_si128(m, _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
    return (unsigned)_mm_movemask_epi8(m);
}

static inline unsigned pplx_json_quote_mask_sse2(const uint8_t *p) {
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    __m128i m = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
    return (unsigned)_mm_movemask_epi8(m);
}

static inline size_t pplx_json_special_sse2(const uint8_t *s, size_t n) {
    if (n < 16) return pplx_json_special_serial(s, n);
    unsigned m;
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        if ((m = pplx_json_special_mask_sse2(s + i)) != 0) return i + (size_t)__builtin_ctz(m);
    if (i < n && (m = pplx_json_special_mask_sse2(s + n - 16)) != 0) return n - 16 + (size_t)__builtin_ctz(m);
    return n;
}

static inline size_t pplx_json_quote_sse2(const uint8_t *s, size_t n) {
    if (n < 16) return pplx_json_quote_serial(s, n);
    unsigned m;
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        if ((m = pplx_json_quote_mask_sse2(s + i)) != 0) return i + (size_t)__builtin_ctz(m);
    if (i < n && (m = pplx_json_quote_mask_sse2(s + n - 16)) != 0) return n - 16 + (size_t)__builtin_ctz(m);
    return n;
}

PPLX_TARGET_AVX2 static inline unsigned pplx_json_special_mask_avx2(const uint8_t *p) {
    __m256i v = _mm256_loadu_si256((const __m256i *)p);
    __m256i m = _mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('"')),
                                _mm256_cmpeq_epi8(v, _mm256_set1_epi8('\\')));
    m = _mm256_or_si256(m, _mm256_cmpgt_epi8(_mm256_set1_epi8(0x20), v));
    return (unsigned)_mm256_movemask_epi8(m);
}

PPLX_TARGET_AVX2 static inline unsigned pplx_json_quote_mask_avx2(const uint8_t *p) {
    __m256i v = _mm256_loadu_si256((const __m256i *)p);
    __m256i m = _mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('"')),
                                _mm256_cmpeq_epi8(v, _mm256_set1_epi8('\\')));
    return (unsigned)_mm256_movemask_epi8(m);
}

PPLX_TARGET_AVX2 static inline size_t pplx_json_special_avx2(const uint8_t *s, size_t n) {
    if (n < 32) return pplx_json_special_sse2(s, n);
    unsigned m;
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        if ((m = pplx_json_special_mask_avx2(s + i)) != 0) return i + (size_t)__builtin_ctz(m);
    if (i < n && (m = pplx_json_special_mask_avx2(s + n - 32)) != 0) return n - 32 + (size_t)__builtin_ctz(m);
    return n;
}

PPLX_TARGET_AVX2 static inline size_t pplx_json_quote_avx2(const uint8_t *s, size_t n) {
    if (n < 32) return pplx_json_quote_sse2(s, n);
    unsigned m;
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        if ((m = pplx_json_quote_mask_avx2(s + i)) != 0) return i + (size_t)__builtin_ctz(m);
    if (i < n && (m = pplx_json_quote_mask_avx2(s + n - 32)) != 0) return n - 32 + (size_t)__builtin_ctz(m);
    return n;
}
#endif

#endif
