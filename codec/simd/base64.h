/* base64.h - strict RFC 4648 base64: standard alphabet, '=' padding, no
 * whitespace, no line breaks, canonical trailing bits.
 *
 * Decode.  The padding rules live in one place, pplx_b64_last_quad(): every
 * decoder handles all quads but the last as plain data and hands the last
 * one to it.
 *  - serial: one 256-entry table (0xFF = not in the alphabet), 4 chars ->
 *    24 bits -> 3 bytes.  On a bad char the offset of the first one is found
 *    by rescanning its quad.
 *  - avx2: the Mula/Lemire vector decode, 32 chars -> 24 bytes per step.
 *    Each char is classified by two pshufb lookups, one on its high nibble
 *    (a class bit) and one on its low nibble (the classes for which that
 *    low nibble is invalid); the AND of the two is non-zero exactly for the
 *    chars outside the alphabet, so validation costs one vptest per block.
 *    A third pshufb, indexed by the high nibble (minus one for '/', which
 *    shares its nibble with '+'), gives the offset that turns ASCII into the
 *    6-bit value.  pmaddubsw + pmaddwd merge 4 x 6 bits into a 24-bit lane,
 *    a byte shuffle and a dword permute squeeze 8 lanes into 24 bytes.
 *    Validity is OR-ed over four blocks and tested once; a group that fails
 *    is redone by the serial code, which names the offset.  Each step writes
 *    28 bytes for 24 (two 16-byte stores, the slack overwritten by the next
 *    step), so the loop stops while the slack still lands inside the output
 *    and the few quads left go through the serial code.
 * Encode.
 *  - serial: 3 bytes -> four 6-bit alphabet lookups.
 *  - avx2: the Mula vector encode: two 12-byte loads into the two lanes,
 *    pshufb to [b,a,c,b] per 3 bytes, mulhi/mullo to isolate the four 6-bit
 *    fields in byte order, then saturating-subtract/compare + pshufb map each
 *    6-bit value to its ASCII range offset.  24 bytes -> 32 chars per step.
 */
#ifndef PPLX_BASE64_H
#define PPLX_BASE64_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "cpu.h"
#include "kernels.h"

static const uint8_t pplx_b64_value[256] = {
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x3E, 0xFF, 0xFF, 0xFF, 0x3F,
    0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E,
    0x0F, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2A, 0x2B, 0x2C, 0x2D, 0x2E, 0x2F, 0x30, 0x31, 0x32, 0x33, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
};

static const char pplx_b64_alphabet[65] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Decode nq quads that may not hold '='.  Returns the offset of the first
 * invalid char, or (size_t)-1 when all were valid. */
static size_t pplx_b64_quads_serial(const uint8_t *s, size_t nq, uint8_t *d) {
    const uint8_t *v = pplx_b64_value;
    for (size_t q = 0; q < nq; q++, s += 4, d += 3) {
        uint32_t a = v[s[0]], b = v[s[1]], c = v[s[2]], e = v[s[3]];
        if ((a | b | c | e) & 0x80) {
            size_t k = 0;
            while (v[s[k]] != 0xFF) k++;
            return q * 4 + k;
        }
        uint32_t w = a << 18 | b << 12 | c << 6 | e;
        d[0] = (uint8_t)(w >> 16);
        d[1] = (uint8_t)(w >> 8);
        d[2] = (uint8_t)w;
    }
    return (size_t)-1;
}

/* The last quad of a text of length n (>= 4) whose earlier quads are done:
 * the only place '=' is allowed.  Writes 1..3 bytes at d, returns the count
 * or an error code with its offset (relative to the text) in *err. */
static ptrdiff_t pplx_b64_last_quad(const uint8_t *s, size_t n, uint8_t *d, size_t *err) {
    const uint8_t *v = pplx_b64_value;
    const uint8_t *q = s + n - 4;
    uint32_t a = v[q[0]], b = v[q[1]];
    if (a == 0xFF) { *err = n - 4; return PPLX_B64_BADCHAR; }
    if (b == 0xFF) { *err = n - 3; return PPLX_B64_BADCHAR; }
    if (q[3] == '=') {
        if (q[2] == '=') {                                   /* "xx==" : 1 byte */
            if (b & 0x0F) { *err = n - 3; return PPLX_B64_NONCANON; }
            d[0] = (uint8_t)(a << 2 | b >> 4);
            return 1;
        }
        uint32_t c = v[q[2]];                                /* "xxx=" : 2 bytes */
        if (c == 0xFF) { *err = n - 2; return PPLX_B64_BADCHAR; }
        if (c & 0x03) { *err = n - 2; return PPLX_B64_NONCANON; }
        uint32_t w = a << 18 | b << 12 | c << 6;
        d[0] = (uint8_t)(w >> 16);
        d[1] = (uint8_t)(w >> 8);
        return 2;
    }
    if (q[2] == '=') { *err = n - 1; return PPLX_B64_BADPAD; } /* "xx=x" */
    size_t bad = pplx_b64_quads_serial(q, 1, d);
    if (bad != (size_t)-1) { *err = n - 4 + bad; return PPLX_B64_BADCHAR; }
    return 3;
}

static ptrdiff_t pplx_b64_decode_serial(const uint8_t *s, size_t n, uint8_t *d, size_t *err) {
    if (n % 4) { *err = n - n % 4; return PPLX_B64_BADLEN; }
    if (n == 0) return 0;
    size_t bad = pplx_b64_quads_serial(s, n / 4 - 1, d);
    if (bad != (size_t)-1) { *err = bad; return PPLX_B64_BADCHAR; }
    ptrdiff_t last = pplx_b64_last_quad(s, n, d + (n / 4 - 1) * 3, err);
    return last < 0 ? last : (ptrdiff_t)((n / 4 - 1) * 3) + last;
}

static size_t pplx_b64_encode_serial(const uint8_t *s, size_t n, uint8_t *d) {
    const char *A = pplx_b64_alphabet;
    uint8_t *d0 = d;
    size_t i = 0;
    for (; i + 3 <= n; i += 3, d += 4) {
        uint32_t w = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        d[0] = A[w >> 18];
        d[1] = A[(w >> 12) & 63];
        d[2] = A[(w >> 6) & 63];
        d[3] = A[w & 63];
    }
    if (n - i == 1) {
        uint32_t w = (uint32_t)s[i] << 16;
        d[0] = A[w >> 18];
        d[1] = A[(w >> 12) & 63];
        d[2] = '=';
        d[3] = '=';
        d += 4;
    } else if (n - i == 2) {
        uint32_t w = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        d[0] = A[w >> 18];
        d[1] = A[(w >> 12) & 63];
        d[2] = A[(w >> 6) & 63];
        d[3] = '=';
        d += 4;
    }
    return (size_t)(d - d0);
}

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
