/* base64/avx2.h - the AVX2 tier of the base64 kernels (the algorithm: see the header comment
 * of base64/serial.h, whose kernels are the reference these are tested against). */
#ifndef PPLX_BASE64_AVX2_H
#define PPLX_BASE64_AVX2_H

#include "serial.h"

#if PPLX_COMPILE_AVX2
/* 32 chars -> 24 bytes stored at d (32 bytes are written, the last 8 are
 * slack).  The return value is non-zero in some byte exactly when a char is
 * outside the alphabet, so callers can OR it over several blocks and test
 * once: what was stored for an invalid block is redone by the serial code. */
PPLX_TARGET_AVX2 static inline __m256i pplx_b64_block_avx2(const uint8_t *s, uint8_t *d) {
    const __m256i lut_lo = _mm256_setr_epi8(
        0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1A, 0x1B, 0x1B, 0x1B, 0x1A,
        0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1A, 0x1B, 0x1B, 0x1B, 0x1A);
    const __m256i lut_hi = _mm256_setr_epi8(
        0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10,
        0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10);
    /* value - ascii per high nibble; index 1 is '/' (nibble 2 minus 1). */
    const __m256i lut_roll = _mm256_setr_epi8(
        0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i nib = _mm256_set1_epi8(0x0F);
    __m256i in = _mm256_loadu_si256((const __m256i *)s);
    __m256i hi_n = _mm256_and_si256(_mm256_srli_epi32(in, 4), nib);
    __m256i lo_n = _mm256_and_si256(in, nib);
    __m256i bad = _mm256_and_si256(_mm256_shuffle_epi8(lut_lo, lo_n), _mm256_shuffle_epi8(lut_hi, hi_n));
    __m256i slash = _mm256_cmpeq_epi8(in, _mm256_set1_epi8('/'));
    __m256i roll = _mm256_shuffle_epi8(lut_roll, _mm256_add_epi8(slash, hi_n));
    __m256i v = _mm256_add_epi8(in, roll);
    /* [a b c d] -> a<<6|b, c<<6|d -> a<<18|b<<12|c<<6|d per 32-bit lane */
    __m256i ab_cd = _mm256_maddubs_epi16(v, _mm256_set1_epi32(0x01400140));
    __m256i w = _mm256_madd_epi16(ab_cd, _mm256_set1_epi32(0x00011000));
    w = _mm256_shuffle_epi8(w, _mm256_setr_epi8(
        2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1,
        2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1));
    /* two 16-byte stores 12 bytes apart beat a cross-lane vpermd on Zen 1/2 */
    _mm_storeu_si128((__m128i *)d, _mm256_castsi256_si128(w));
    _mm_storeu_si128((__m128i *)(d + 12), _mm256_extracti128_si256(w, 1));
    return bad;
}

PPLX_TARGET_AVX2 static ptrdiff_t pplx_b64_decode_avx2(const uint8_t *s, size_t n, uint8_t *d,
                                                      size_t *err) {
    if (n % 4) { *err = n - n % 4; return PPLX_B64_BADLEN; }
    if (n == 0) return 0;
    const size_t body = n - 4; /* chars before the last quad */
    size_t i = 0;
    /* A block at i writes up to d + i/4*3 + 28; the output holds at least
     * body/4*3 + 1 bytes, so body - i >= 40 keeps every write inside it. */
    while (body - i >= 32 * 3 + 40) {
        __m256i bad = pplx_b64_block_avx2(s + i, d + i / 4 * 3);
        bad = _mm256_or_si256(bad, pplx_b64_block_avx2(s + i + 32, d + i / 4 * 3 + 24));
        bad = _mm256_or_si256(bad, pplx_b64_block_avx2(s + i + 64, d + i / 4 * 3 + 48));
        bad = _mm256_or_si256(bad, pplx_b64_block_avx2(s + i + 96, d + i / 4 * 3 + 72));
        if (!_mm256_testz_si256(bad, bad)) break; /* the serial code below finds the offset */
        i += 128;
    }
    while (body - i >= 40) {
        __m256i bad = pplx_b64_block_avx2(s + i, d + i / 4 * 3);
        if (!_mm256_testz_si256(bad, bad)) break;
        i += 32;
    }
    size_t bad = pplx_b64_quads_serial(s + i, (body - i) / 4, d + i / 4 * 3);
    if (bad != (size_t)-1) { *err = i + bad; return PPLX_B64_BADCHAR; }
    ptrdiff_t last = pplx_b64_last_quad(s, n, d + body / 4 * 3, err);
    return last < 0 ? last : (ptrdiff_t)(body / 4 * 3) + last;
}

PPLX_TARGET_AVX2 static inline __m256i pplx_b64_enc_block_avx2(__m256i in) {
    /* per 3 bytes [a b c] -> [b a c b], so each 32-bit lane holds the 24 bits */
    in = _mm256_shuffle_epi8(in, _mm256_setr_epi8(
        1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10,
        1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10));
    __m256i t0 = _mm256_and_si256(in, _mm256_set1_epi32(0x0FC0FC00));
    __m256i t1 = _mm256_mulhi_epu16(t0, _mm256_set1_epi32(0x04000040));
    __m256i t2 = _mm256_and_si256(in, _mm256_set1_epi32(0x003F03F0));
    __m256i t3 = _mm256_mullo_epi16(t2, _mm256_set1_epi32(0x01000010));
    __m256i idx = _mm256_or_si256(t1, t3); /* one 6-bit value per byte, in output order */
    /* range of each value: 0 = a-z, 1..10 = 0-9, 11 = '+', 12 = '/', 13 = A-Z */
    __m256i r = _mm256_subs_epu8(idx, _mm256_set1_epi8(51));
    __m256i upper = _mm256_cmpgt_epi8(_mm256_set1_epi8(26), idx);
    r = _mm256_or_si256(r, _mm256_and_si256(upper, _mm256_set1_epi8(13)));
    const __m256i shift = _mm256_setr_epi8(
        'a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
        '0' - 52, '0' - 52, '+' - 62, '/' - 63, 'A', 0, 0,
        'a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
        '0' - 52, '0' - 52, '+' - 62, '/' - 63, 'A', 0, 0);
    return _mm256_add_epi8(idx, _mm256_shuffle_epi8(shift, r));
}

PPLX_TARGET_AVX2 static size_t pplx_b64_encode_avx2(const uint8_t *s, size_t n, uint8_t *d) {
    size_t i = 0, o = 0;
    /* two 16-byte loads at s+i and s+i+12: needs 28 readable bytes */
    for (; i + 28 <= n; i += 24, o += 32) {
        __m128i lo = _mm_loadu_si128((const __m128i *)(s + i));
        __m128i hi = _mm_loadu_si128((const __m128i *)(s + i + 12));
        __m256i in = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
        _mm256_storeu_si256((__m256i *)(d + o), pplx_b64_enc_block_avx2(in));
    }
    return o + pplx_b64_encode_serial(s + i, n - i, d + o);
}

#endif /* PPLX_COMPILE_AVX2 */
#endif
