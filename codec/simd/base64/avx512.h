/* base64/avx512.h - the AVX-512 (VBMI) tier of the base64 kernels: the
 * vector algorithm of Mula & Lemire, "Base64 encoding and decoding at almost
 * the speed of a memory copy" (Software: Practice and Experience, 2019), with
 * the strictness rules and the error reporting of base64/serial.h, whose
 * kernels are the reference these are tested against.
 *
 * Decode, 64 chars -> 48 bytes per step:
 *  - translate: one vpermi2b (_mm512_permutex2var_epi8) looks every char up
 *    in a 128-entry table held in two zmm registers (the first 128 entries of
 *    pplx_b64_value: the 6-bit value, 0xFF outside the alphabet).  vpermi2b
 *    indexes with the low 7 bits only, so a char >= 0x80 reads some entry;
 *    such chars carry their own sign bit, hence a char is invalid exactly
 *    when (char | value) has its sign bit set.  One vpternlogd ORs char and
 *    value into an accumulator; the sign bits of the accumulator are tested
 *    once per group of four blocks (256 chars) with vpmovb2m.  This replaces
 *    the three pshufb classification of the avx2 tier with one permute.
 *  - pack: vpmaddubsw with 0x40,0x01 pairs gives a<<6|b and c<<6|d per
 *    16 bits (at most 4095: no saturation), a word multiply-add with
 *    0x1000,0x0001 gives a<<18|b<<12|c<<6|d per dword (at most 2^24-1, no
 *    overflow), and one vpermb (_mm512_permutexvar_epi8) squeezes the three
 *    low bytes of each dword, big-endian, into the low 48 bytes.  The word
 *    multiply-add is vpdpwssd (AVX512-VNNI, part of this tier) on a zero
 *    accumulator rather than the paper's vpmaddwd: the same arithmetic and
 *    the same class of cost, but SIMDe 0.7.4 defines _mm512_madd_epi16 with
 *    the wrong number of arguments, so the test build could not compile it.
 *  - store: exactly 48 bytes, a 32-byte store and a 16-byte vextracti32x4
 *    store, so nothing is ever written past the block's output.  (A masked
 *    vmovdqu8 with k = 2^48-1 would do the same in one instruction, but SIMDe
 *    0.7.4, which the test harness runs this code through on machines without
 *    AVX-512, has no masked loads or stores.)
 *  - exactness: blocks only cover the quads before the last one; a group
 *    whose accumulator shows an invalid char is redone block by block, and
 *    the failing block by the serial code, which names the offset of the
 *    first bad char.  What the vector code stored for an invalid block is
 *    overwritten by that redo (the output past an error is unspecified
 *    anyway).  The last quad always goes through pplx_b64_last_quad (the
 *    only place '=' is legal).
 *  - the quads between the last whole block and the last quad (< 16): one
 *    more block, its chars loaded and its bytes stored under masks (no byte
 *    outside them touched), validated before anything is stored; a bad char
 *    there leaves them to pplx_b64_quads_serial, which names it.  Embeddings
 *    are short strings: a 1024-bit code is 172 chars, of which 2 blocks
 *    cover 128 and 10 quads were left to the serial loop, where the avx2
 *    tier (32-char blocks) leaves 2; that made this tier slower than avx2
 *    on decode_binary and on base64_binary responses (Zen 4, 512 rows:
 *    16.5 against 12.3 us).  With the masked block: 9.5 us.
 * Encode, 48 bytes -> 64 chars per step:
 *  - one vpermb gathers, for the k-th triple [a b c], the bytes b a c b into
 *    the k-th dword, so its 16-bit halves hold a<<8|b and b<<8|c;
 *  - one vpmultishiftqb (_mm512_multishift_epi64_epi8) picks the 8 bits
 *    starting at bit 10, 4, 22, 16 (and +32 for the odd dword) of each
 *    qword: byte 4k+j then holds the j-th 6-bit field in its low 6 bits (the
 *    two bits above are junk);
 *  - one vpermb over the 64-char alphabet maps them to ASCII: vpermb only
 *    reads the low 6 bits of each index, so the junk bits need no mask.
 *  Loads read 64 bytes for 48 while 64 are readable; one more block, if 48
 *  bytes remain, is loaded exactly (32 + 16 bytes); the whole triples left
 *  (< 16) as one block loaded and stored under masks; the last 1-2 bytes
 *  and the padding go through the serial code.  Each step stores exactly 64
 *  chars.
 * Cost (counted in the generated code): per 64 chars decoded one 64-byte load (GCC loads it twice, as
 * vpermi2b overwrites its index register), vpermi2b, vpternlogd,
 * vpmaddubsw, vpdpwssd, vpermb, a 32- and a 16-byte store, plus one
 * vpmovb2m + kortest per group; per 48 bytes encoded one load, two vpermb,
 * one vpmultishiftqb and one store.  The byte permutes share port 5 on
 * Intel cores, which should bound both loops.
 */
#ifndef PPLX_BASE64_AVX512_H
#define PPLX_BASE64_AVX512_H

#include "avx2.h"

#if PPLX_COMPILE_AVX512
/* vpermb indices: output byte j of triple k = j / 3 is byte 2 - j % 3 of
 * dword k (the 24-bit value a<<18|b<<12|c<<6|d is little-endian there). */
static const uint8_t pplx_b64_pack_avx512[64] = {
    2,  1,  0,  6,  5,  4,  10, 9,  8,  14, 13, 12, 18, 17, 16, 22, 21, 20, 26, 25, 24, 30,
    29, 28, 34, 33, 32, 38, 37, 36, 42, 41, 40, 46, 45, 44, 50, 49, 48, 54, 53, 52, 58, 57,
    56, 62, 61, 60, 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0};

/* vpermb indices: dword k of the encoder input is [b a c b] of triple k. */
static const uint8_t pplx_b64_gather_avx512[64] = {
    1,  0,  2,  1,  4,  3,  5,  4,  7,  6,  8,  7,  10, 9,  11, 10, 13, 12, 14, 13, 16, 15,
    17, 16, 19, 18, 20, 19, 22, 21, 23, 22, 25, 24, 26, 25, 28, 27, 29, 28, 31, 30, 32, 31,
    34, 33, 35, 34, 37, 36, 38, 37, 40, 39, 41, 40, 43, 42, 44, 43, 46, 45, 47, 46};

/* 64 chars at s -> 48 bytes at d (exactly 48 written).  Returns acc with
 * the chars and their table values OR-ed in: its sign bits are set exactly
 * when some char so far was outside the alphabet. */
PPLX_TARGET_AVX512 static inline __m512i pplx_b64_block_avx512(const uint8_t *s, uint8_t *d, __m512i acc,
                                                               __m512i lut_lo, __m512i lut_hi, __m512i pack) {
    __m512i in = _mm512_loadu_si512((const void *)s);
    __m512i v = _mm512_permutex2var_epi8(lut_lo, in, lut_hi);
    acc = _mm512_ternarylogic_epi32(acc, in, v, 0xFE); /* acc | in | v */
    /* [a b c d] -> a<<6|b, c<<6|d -> a<<18|b<<12|c<<6|d per dword */
    __m512i ab_cd = _mm512_maddubs_epi16(v, _mm512_set1_epi32(0x01400140));
    __m512i w = _mm512_dpwssd_epi32(_mm512_setzero_si512(), ab_cd, _mm512_set1_epi32(0x00011000));
    w = _mm512_permutexvar_epi8(pack, w);
    _mm256_storeu_si256((__m256i *)d, _mm512_castsi512_si256(w));
    _mm_storeu_si128((__m128i *)(d + 32), _mm512_extracti32x4_epi32(w, 2));
    return acc;
}

/* The r (4 <= r < 64, a multiple of 4) chars at s -> r / 4 * 3 bytes at d,
 * as one block read and written under masks (nothing outside the r chars
 * and the bytes they make is touched).  Returns 0, having written nothing,
 * when a char is outside the alphabet (the caller's serial code finds it).
 * The masked-off lanes load as 0, an invalid char, so the validity mask is
 * ANDed with the load mask. */
PPLX_TARGET_AVX512 static inline int pplx_b64_tail_avx512(const uint8_t *s, size_t r, uint8_t *d, __m512i lut_lo,
                                                          __m512i lut_hi, __m512i pack) {
    const uint64_t k = ((uint64_t)1 << r) - 1;
    const __m512i in = pplx_mm512_maskz_loadu_epi8(k, s);
    const __m512i v = _mm512_permutex2var_epi8(lut_lo, in, lut_hi);
    if ((uint64_t)_mm512_movepi8_mask(_mm512_or_si512(in, v)) & k) return 0;
    const __m512i ab_cd = _mm512_maddubs_epi16(v, _mm512_set1_epi32(0x01400140));
    __m512i w = _mm512_dpwssd_epi32(_mm512_setzero_si512(), ab_cd, _mm512_set1_epi32(0x00011000));
    w = _mm512_permutexvar_epi8(pack, w);
    pplx_mm512_mask_storeu_epi8(d, ((uint64_t)1 << (r / 4 * 3)) - 1, w);
    return 1;
}

PPLX_TARGET_AVX512 static ptrdiff_t pplx_b64_decode_avx512(const uint8_t *s, size_t n, uint8_t *d,
                                                          size_t *err) {
    if (n % 4) { *err = n - n % 4; return PPLX_B64_BADLEN; }
    if (n == 0) return 0;
    const size_t body = n - 4; /* chars before the last quad */
    const __m512i lut_lo = _mm512_loadu_si512((const void *)pplx_b64_value);
    const __m512i lut_hi = _mm512_loadu_si512((const void *)(pplx_b64_value + 64));
    const __m512i pack = _mm512_loadu_si512((const void *)pplx_b64_pack_avx512);
    size_t i = 0;
    /* A block at i reads s[i, i+64) and writes d[i/4*3, i/4*3+48): inside
     * the body and its output as long as body - i >= 64. */
    while (body - i >= 64 * 4) {
        uint8_t *o = d + i / 4 * 3;
        __m512i acc = _mm512_setzero_si512();
        acc = pplx_b64_block_avx512(s + i, o, acc, lut_lo, lut_hi, pack);
        acc = pplx_b64_block_avx512(s + i + 64, o + 48, acc, lut_lo, lut_hi, pack);
        acc = pplx_b64_block_avx512(s + i + 128, o + 96, acc, lut_lo, lut_hi, pack);
        acc = pplx_b64_block_avx512(s + i + 192, o + 144, acc, lut_lo, lut_hi, pack);
        if (_mm512_movepi8_mask(acc) != 0) break; /* redone below, block by block */
        i += 256;
    }
    while (body - i >= 64) {
        __m512i acc = pplx_b64_block_avx512(s + i, d + i / 4 * 3, _mm512_setzero_si512(), lut_lo, lut_hi, pack);
        if (_mm512_movepi8_mask(acc) != 0) break; /* the serial code below finds the offset */
        i += 64;
    }
    if (body - i < 64 && body > i) { /* the last < 16 quads before the last one: one masked block */
        if (pplx_b64_tail_avx512(s + i, body - i, d + i / 4 * 3, lut_lo, lut_hi, pack)) i = body;
    }
    size_t bad = pplx_b64_quads_serial(s + i, (body - i) / 4, d + i / 4 * 3);
    if (bad != (size_t)-1) { *err = i + bad; return PPLX_B64_BADCHAR; }
    ptrdiff_t last = pplx_b64_last_quad(s, n, d + body / 4 * 3, err);
    return last < 0 ? last : (ptrdiff_t)(body / 4 * 3) + last;
}

/* 48 bytes (the low 48 of in) -> 64 chars. */
PPLX_TARGET_AVX512 static inline __m512i pplx_b64_enc_block_avx512(__m512i in, __m512i gather, __m512i alpha) {
    __m512i x = _mm512_permutexvar_epi8(gather, in);
    /* per dword b | a<<8 | c<<16 | b<<24: the fields a>>2, (a&3)<<4|b>>4,
     * (b&15)<<2|c>>6, c&63 start at bits 10, 4, 22, 16 */
    __m512i idx = _mm512_multishift_epi64_epi8(_mm512_set1_epi64(0x3036242A1016040All), x);
    return _mm512_permutexvar_epi8(idx, alpha);
}

PPLX_TARGET_AVX512 static size_t pplx_b64_encode_avx512(const uint8_t *s, size_t n, uint8_t *d) {
    const __m512i gather = _mm512_loadu_si512((const void *)pplx_b64_gather_avx512);
    const __m512i alpha = _mm512_loadu_si512((const void *)pplx_b64_alphabet);
    size_t i = 0, o = 0;
    for (; i + 64 <= n; i += 48, o += 64) {
        __m512i in = _mm512_loadu_si512((const void *)(s + i));
        _mm512_storeu_si512((void *)(d + o), pplx_b64_enc_block_avx512(in, gather, alpha));
    }
    if (i + 48 <= n) { /* one more block, loaded exactly */
        __m512i in = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_loadu_si256((const __m256i *)(s + i)), 0);
        in = _mm512_inserti32x4(in, _mm_loadu_si128((const __m128i *)(s + i + 32)), 2);
        _mm512_storeu_si512((void *)(d + o), pplx_b64_enc_block_avx512(in, gather, alpha));
        i += 48;
        o += 64;
    }
    if (n - i >= 3) { /* the whole triples left (< 16): one block loaded and stored under masks */
        const size_t t = (n - i) / 3;
        const __m512i in = pplx_mm512_maskz_loadu_epi8(((uint64_t)1 << (3 * t)) - 1, s + i);
        pplx_mm512_mask_storeu_epi8(d + o, ((uint64_t)1 << (4 * t)) - 1, pplx_b64_enc_block_avx512(in, gather, alpha));
        i += 3 * t;
        o += 4 * t;
    }
    return o + pplx_b64_encode_serial(s + i, n - i, d + o);
}

#endif /* PPLX_COMPILE_AVX512 */
#endif
