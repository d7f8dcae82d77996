/* bits/avx512.h - the AVX-512 tier of the bits kernels (the contract and the
 * reference: bits/serial.h).
 *
 * An AVX-512BW compare writes a mask register with one bit per lane, lane 0
 * in bit 0: the LSB-first code of 64 values is exactly the mask of a 64-lane
 * compare, and a 64-bit word of LSB-first code bytes is exactly a mask to
 * expand.  Per 64 values (port notes from uops.info, Ice Lake; not measured
 * here, this machine has no AVX-512):
 *  - pack_i8 / pack_b8: one 64-byte load, vpcmpgtb (> 0) or vptestmb
 *    (!= 0, the bool rule) into k, kmovq, one 8-byte store.  MSB-first:
 *    vpshufb first reverses the bytes inside each qword (each group of 8
 *    values), so the same compare yields every byte's bits in the other
 *    order: one shuffle per 64 values, cheaper than reversing the mask in a
 *    GPR (3 rounds of shift/and/or, ~15 scalar ops).
 *  - pack_f32 / pack_f64: 4 (8) vcmpps/vcmppd with _CMP_GT_OQ (ordered,
 *    non-signalling: NaN gives 0 and -0.0 > 0 is false, like C's >), the
 *    16- (8-) bit masks joined in a GPR.  MSB-first: that 64-bit word is
 *    bit-reversed inside each byte by SWAR (pplx_rev8x8_u64).  Those scalar
 *    ops run on the ALU ports beside 4-8 loads and compares per 64 values;
 *    a vpermps per input vector would instead compete with the compares for
 *    port 5.
 *  - unpack: LSB-first, the 8 code bytes are the mask (one 8-byte load and
 *    a kmovq), expanded by vmovdqu8{z} of ones (u8, 0/1), vpblendmb of -1/+1
 *    (i8) or vblendmps of -1.0/+1.0 per 16 bits (f32).  MSB-first: the 8
 *    bytes are broadcast, vpshufb copies code byte i into lanes 8i..8i+7 and
 *    vptestmb against 0x80,0x40,..,0x01 gives the mask in lane order (two
 *    shuffle-port uops, no scalar reversal).
 *  - reverse_bits: with GFNI, one vgf2p8affineqb per 64 bytes with the
 *    bit-reversal matrix 0x8040201008040201 (result bit i of each byte =
 *    parity(matrix byte 7 - i & x) = x bit 7 - i), in
 *    pplx_reverse_bits_avx512_gfni, compiled for PPLX_TARGET_AVX512_GFNI and
 *    picked by dispatch.h only when CPUID reports GFNI (a hypervisor may hide
 *    it).  Without GFNI, pplx_reverse_bits_avx512: two vpshufb nibble
 *    lookups whose tables are pre-shifted so one OR joins them.  pack/unpack
 *    do not need a vector reversal (see above), so they stay GFNI-free and
 *    need a single target.
 *  - tails (the last n % 64 values, and the code bytes under them): masked
 *    loads and stores.  Masked-off elements are neither read nor written
 *    (fault suppression), so no byte outside the buffers is touched and no
 *    serial loop is needed; masked-off inputs load as 0, which packs to 0
 *    bits, the zero padding of a partial last byte.
 *  - streaming stores: unpack_u8/i8 outputs of at least pplx_stream_min
 *    bytes (3/4 of the L3, at least 2 MiB; shared with the avx2 tier, whose
 *    pplx_fill_avx2 sets it and runs before pplx_fill_avx512) are written with
 *    vmovntdq after a masked prologue up to a 64-byte boundary.  The avx512
 *    table entry replaces the avx2 one, so without this an AVX-512 machine
 *    would lose the avx2 tier's measured gain (no read-for-ownership of lines
 *    the 8x output overwrites whole, once it cannot stay in cache anyway);
 *    the crossover is a property of the cache, not of the vector width, and
 *    a 64-byte aligned zmm streaming store fills one write-combining line per
 *    instruction, the best case.  Not measured on AVX-512 hardware.  As in
 *    avx2, unpack_f32 is not streamed, and a destination that is not 8-byte
 *    aligned (code bytes advance 8 outputs at a time) stays on plain stores.
 */
#ifndef PPLX_BITS_AVX512_H
#define PPLX_BITS_AVX512_H

#include "avx2.h"

#if PPLX_COMPILE_AVX512


/* The low r bits set, r <= 64 (bzhi). */
static inline uint64_t pplx_low_bits64(size_t r) { return r >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << r) - 1; }

/* Reverse the bits inside each byte of a 64-bit word (SWAR). */
static inline uint64_t pplx_rev8x8_u64(uint64_t m) {
    m = (m >> 4 & 0x0F0F0F0F0F0F0F0FULL) | (m & 0x0F0F0F0F0F0F0F0FULL) << 4;
    m = (m >> 2 & 0x3333333333333333ULL) | (m & 0x3333333333333333ULL) << 2;
    m = (m >> 1 & 0x5555555555555555ULL) | (m & 0x5555555555555555ULL) << 1;
    return m;
}

/* ---- pack ---- */

/* vpshufb indices reversing the 8 bytes of every qword. */
PPLX_TARGET_AVX512 static inline __m512i pplx_qword_byte_rev_avx512(void) {
    return _mm512_set_epi64(0x08090A0B0C0D0E0FLL, 0x0001020304050607LL, 0x08090A0B0C0D0E0FLL, 0x0001020304050607LL,
                            0x08090A0B0C0D0E0FLL, 0x0001020304050607LL, 0x08090A0B0C0D0E0FLL, 0x0001020304050607LL);
}

/* 64 bytes -> 64-bit code (bool: byte != 0, else int8 > 0), MSB-first via rev. */
PPLX_TARGET_AVX512 static inline uint64_t pplx_pack64_bytes_avx512(__m512i v, int msb, int isbool, __m512i rev) {
    if (msb) v = _mm512_shuffle_epi8(v, rev);
    return isbool ? (uint64_t)_mm512_test_epi8_mask(v, v) : (uint64_t)_mm512_cmpgt_epi8_mask(v, _mm512_setzero_si512());
}

PPLX_TARGET_AVX512 static inline void pplx_pack_bytes_avx512(const uint8_t *x, size_t n, uint8_t *d, int msb,
                                                            int isbool) {
    const __m512i rev = pplx_qword_byte_rev_avx512();
    size_t j = 0;
    for (; j + 64 <= n; j += 64) {
        uint64_t m = pplx_pack64_bytes_avx512(_mm512_loadu_si512(x + j), msb, isbool, rev);
        memcpy(d + j / 8, &m, 8); /* x86 is little-endian: byte 0 = bits 0..7 */
    }
    if (j < n) {
        const size_t r = n - j;
        uint64_t m = pplx_pack64_bytes_avx512(pplx_mm512_maskz_loadu_epi8(pplx_low_bits64(r), x + j), msb, isbool, rev);
        pplx_mm512_mask_storeu_epi8(d + j / 8, pplx_low_bits64((r + 7) / 8), _mm512_set1_epi64((long long)m));
    }
}

PPLX_TARGET_AVX512 static void pplx_pack_i8_avx512(const int8_t *x, size_t n, uint8_t *d, int msb) {
    pplx_pack_bytes_avx512((const uint8_t *)x, n, d, msb, 0);
}

PPLX_TARGET_AVX512 static void pplx_pack_b8_avx512(const uint8_t *x, size_t n, uint8_t *d, int msb) {
    pplx_pack_bytes_avx512(x, n, d, msb, 1);
}

/* Store the code of 64 (or, last, r < 64) values: 8 (or ceil(r / 8)) bytes. */
PPLX_TARGET_AVX512 static inline void pplx_store_code64_avx512(uint8_t *d, uint64_t m, size_t r, int msb) {
    if (msb) m = pplx_rev8x8_u64(m);
    if (r >= 64) memcpy(d, &m, 8);
    else pplx_mm512_mask_storeu_epi8(d, pplx_low_bits64((r + 7) / 8), _mm512_set1_epi64((long long)m));
}

PPLX_TARGET_AVX512 static void pplx_pack_f32_avx512(const float *x, size_t n, uint8_t *d, int msb) {
    const __m512 zero = _mm512_setzero_ps();
    size_t j = 0;
    for (; j + 64 <= n; j += 64) {
        uint64_t m = 0;
        for (int k = 0; k < 4; k++)
            m |= (uint64_t)_mm512_cmp_ps_mask(_mm512_loadu_ps(x + j + 16 * k), zero, _CMP_GT_OQ) << (16 * k);
        pplx_store_code64_avx512(d + j / 8, m, 64, msb);
    }
    if (j < n) {
        const size_t r = n - j;
        uint64_t m = 0;
        for (size_t k = 0; 16 * k < r; k++) {
            __m512 v = pplx_mm512_maskz_loadu_ps((uint16_t)pplx_low_bits64(r - 16 * k), x + j + 16 * k);
            m |= (uint64_t)_mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ) << (16 * k);
        }
        pplx_store_code64_avx512(d + j / 8, m, r, msb);
    }
}

PPLX_TARGET_AVX512 static void pplx_pack_f64_avx512(const double *x, size_t n, uint8_t *d, int msb) {
    const __m512d zero = _mm512_setzero_pd();
    size_t j = 0;
    for (; j + 64 <= n; j += 64) {
        uint64_t m = 0;
        for (int k = 0; k < 8; k++)
            m |= (uint64_t)_mm512_cmp_pd_mask(_mm512_loadu_pd(x + j + 8 * k), zero, _CMP_GT_OQ) << (8 * k);
        pplx_store_code64_avx512(d + j / 8, m, 64, msb);
    }
    if (j < n) {
        const size_t r = n - j;
        uint64_t m = 0;
        for (size_t k = 0; 8 * k < r; k++) {
            __m512d v = pplx_mm512_maskz_loadu_pd((uint8_t)pplx_low_bits64(r - 8 * k), x + j + 8 * k);
            m |= (uint64_t)_mm512_cmp_pd_mask(v, zero, _CMP_GT_OQ) << (8 * k);
        }
        pplx_store_code64_avx512(d + j / 8, m, r, msb);
    }
}

/* ---- unpack ---- */

/* The mask of 64 dimensions (lane i = dimension i) from 8 code bytes w. */
PPLX_TARGET_AVX512 static inline uint64_t pplx_code_mask64_avx512(uint64_t w, int msb) {
    if (!msb) return w;
    const long long c = 0x0101010101010101LL; /* lane 8i..8i+7 <- code byte i */
    const __m512i spread = _mm512_set_epi64(7 * c, 6 * c, 5 * c, 4 * c, 3 * c, 2 * c, c, 0);
    const __m512i sel = _mm512_set1_epi64((long long)0x0102040810204080ULL); /* lane 8i+k tests bit 7-k */
    return (uint64_t)_mm512_test_epi8_mask(_mm512_shuffle_epi8(_mm512_set1_epi64((long long)w), spread), sel);
}

/* Up to 8 code bytes as a word (masked load: nothing past them is read). */
PPLX_TARGET_AVX512 static inline uint64_t pplx_code_word_avx512(const uint8_t *s, size_t nbytes) {
    return (uint64_t)_mm_cvtsi128_si64(_mm512_castsi512_si128(pplx_mm512_maskz_loadu_epi8(pplx_low_bits64(nbytes), s)));
}

/* 64 dimensions -> 64 bytes: 0/1, or -1/+1 when sign. */
PPLX_TARGET_AVX512 static inline __m512i pplx_bytes_of_mask64_avx512(uint64_t k, int sign) {
    return sign ? _mm512_mask_blend_epi8(k, _mm512_set1_epi8(-1), _mm512_set1_epi8(1))
                : _mm512_maskz_mov_epi8(k, _mm512_set1_epi8(1));
}

/* r <= 64 dimensions from code byte s[0] on, to y[0..r), masked. */
PPLX_TARGET_AVX512 static inline void pplx_unpack_bytes_part_avx512(const uint8_t *s, size_t r, uint8_t *y, int msb,
                                                                   int sign) {
    uint64_t k = pplx_code_mask64_avx512(pplx_code_word_avx512(s, (r + 7) / 8), msb);
    pplx_mm512_mask_storeu_epi8(y, pplx_low_bits64(r), pplx_bytes_of_mask64_avx512(k, sign));
}

/* Shared by the u8 (0/1) and i8 (-1/+1) unpackers: one output byte per bit. */
PPLX_TARGET_AVX512 static inline void pplx_unpack_bytes_avx512(const uint8_t *s, size_t n, uint8_t *y, int msb,
                                                              int sign) {
    size_t j = 0;
    if (n >= pplx_stream_min) {
        /* Outputs before the first 64-byte boundary: a whole number of code
         * bytes only when y is 8-byte aligned; otherwise plain stores. */
        const size_t p = (size_t)(-(uintptr_t)y & 63);
        if (p % 8 == 0 && p <= n) {
            if (p) pplx_unpack_bytes_part_avx512(s, p, y, msb, sign);
            for (j = p; j + 64 <= n; j += 64) {
                uint64_t w;
                memcpy(&w, s + j / 8, 8);
                pplx_mm512_stream_si512(y + j, pplx_bytes_of_mask64_avx512(pplx_code_mask64_avx512(w, msb), sign));
            }
            _mm_sfence();
        }
    }
    for (; j + 64 <= n; j += 64) {
        uint64_t w;
        memcpy(&w, s + j / 8, 8);
        _mm512_storeu_si512(y + j, pplx_bytes_of_mask64_avx512(pplx_code_mask64_avx512(w, msb), sign));
    }
    if (j < n) pplx_unpack_bytes_part_avx512(s + j / 8, n - j, y + j, msb, sign);
}

PPLX_TARGET_AVX512 static void pplx_unpack_u8_avx512(const uint8_t *s, size_t n, uint8_t *y, int msb) {
    pplx_unpack_bytes_avx512(s, n, y, msb, 0);
}

PPLX_TARGET_AVX512 static void pplx_unpack_i8_avx512(const uint8_t *s, size_t n, int8_t *y, int msb) {
    pplx_unpack_bytes_avx512(s, n, (uint8_t *)y, msb, 1);
}

PPLX_TARGET_AVX512 static void pplx_unpack_f32_avx512(const uint8_t *s, size_t n, float *y, int msb) {
    const __m512 pos = _mm512_set1_ps(1.0f), neg = _mm512_set1_ps(-1.0f);
    size_t j = 0;
    for (; j + 64 <= n; j += 64) {
        uint64_t w;
        memcpy(&w, s + j / 8, 8);
        const uint64_t k = pplx_code_mask64_avx512(w, msb);
        for (int q = 0; q < 4; q++)
            _mm512_storeu_ps(y + j + 16 * q, _mm512_mask_blend_ps((uint16_t)(k >> (16 * q)), neg, pos));
    }
    if (j < n) {
        const size_t r = n - j;
        const uint64_t k = pplx_code_mask64_avx512(pplx_code_word_avx512(s + j / 8, (r + 7) / 8), msb);
        for (size_t q = 0; 16 * q < r; q++)
            pplx_mm512_mask_storeu_ps(y + j + 16 * q, (uint16_t)pplx_low_bits64(r - 16 * q),
                                     _mm512_mask_blend_ps((uint16_t)(k >> (16 * q)), neg, pos));
    }
}

/* ---- reverse_bits ---- */

PPLX_TARGET_AVX512 static inline __m512i pplx_rev8_avx512(__m512i v) {
    /* rev4 of a nibble; the low nibble's lookup comes pre-shifted to the top */
    const __m512i rev_hi = _mm512_broadcast_i32x4(
        _mm_setr_epi8(0x00, 0x08, 0x04, 0x0C, 0x02, 0x0A, 0x06, 0x0E, 0x01, 0x09, 0x05, 0x0D, 0x03, 0x0B, 0x07, 0x0F));
    const __m512i rev_lo = _mm512_broadcast_i32x4(_mm_setr_epi8(
        0x00, (char)0x80, 0x40, (char)0xC0, 0x20, (char)0xA0, 0x60, (char)0xE0, 0x10, (char)0x90, 0x50, (char)0xD0,
        0x30, (char)0xB0, 0x70, (char)0xF0));
    const __m512i nib = _mm512_set1_epi8(0x0F);
    __m512i lo = _mm512_shuffle_epi8(rev_lo, _mm512_and_si512(v, nib));
    __m512i hi = _mm512_shuffle_epi8(rev_hi, _mm512_and_si512(_mm512_srli_epi16(v, 4), nib));
    return _mm512_or_si512(lo, hi);
}

PPLX_TARGET_AVX512 static void pplx_reverse_bits_avx512(const uint8_t *s, size_t n, uint8_t *d) {
    size_t i = 0;
    for (; i + 64 <= n; i += 64) _mm512_storeu_si512(d + i, pplx_rev8_avx512(_mm512_loadu_si512(s + i)));
    if (i < n) {
        const uint64_t k = pplx_low_bits64(n - i);
        pplx_mm512_mask_storeu_epi8(d + i, k, pplx_rev8_avx512(pplx_mm512_maskz_loadu_epi8(k, s + i)));
    }
}

PPLX_TARGET_AVX512_GFNI static inline __m512i pplx_rev8_avx512_gfni(__m512i v) {
    return _mm512_gf2p8affine_epi64_epi8(v, _mm512_set1_epi64((long long)0x8040201008040201ULL), 0);
}

PPLX_TARGET_AVX512_GFNI static void pplx_reverse_bits_avx512_gfni(const uint8_t *s, size_t n, uint8_t *d) {
    size_t i = 0;
    for (; i + 64 <= n; i += 64) _mm512_storeu_si512(d + i, pplx_rev8_avx512_gfni(_mm512_loadu_si512(s + i)));
    if (i < n) {
        const uint64_t k = pplx_low_bits64(n - i);
        pplx_mm512_mask_storeu_epi8(d + i, k, pplx_rev8_avx512_gfni(pplx_mm512_maskz_loadu_epi8(k, s + i)));
    }
}

#endif /* PPLX_COMPILE_AVX512 */
#endif
