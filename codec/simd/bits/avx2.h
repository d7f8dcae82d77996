/* bits/avx2.h - the AVX2 tier of the bits kernels (the algorithm: see the header comment
 * of bits/serial.h, whose kernels are the reference these are tested against). */
#ifndef PPLX_BITS_AVX2_H
#define PPLX_BITS_AVX2_H

#include "serial.h"

#if PPLX_COMPILE_AVX2
/* Unpacked outputs at least this large (bytes) bypass the cache.  Streaming
 * stores pay only when the output would evict the last-level cache anyway:
 * measured 1.4x faster at 4 MiB on a VM reporting a small L3, but 2.2x
 * slower at 4 MiB and 1.2x slower at 64 MiB on a Zen host with 32 MiB of L3.
 * So, like glibc's memcpy, the threshold is 3/4 of the L3 size the OS
 * reports, never below 2 MiB; set once by pplx_stream_min_init(). */
static size_t pplx_stream_min = (size_t)2 << 20;

static void pplx_stream_min_init(void) {
#ifdef _SC_LEVEL3_CACHE_SIZE
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (l3 > 0 && (size_t)l3 / 4 * 3 > pplx_stream_min) pplx_stream_min = (size_t)l3 / 4 * 3;
#endif
}

/* Store a 32-bit LSB-first mask as 4 bytes, optionally bit-reversed per byte. */
static inline void pplx_store_mask32(uint8_t *d, uint32_t m, int msb) {
    if (msb) {
        d[0] = pplx_rev8((uint8_t)m);
        d[1] = pplx_rev8((uint8_t)(m >> 8));
        d[2] = pplx_rev8((uint8_t)(m >> 16));
        d[3] = pplx_rev8((uint8_t)(m >> 24));
    } else {
        memcpy(d, &m, 4); /* x86 is little-endian: byte 0 = bits 0..7 */
    }
}

PPLX_TARGET_AVX2 static void pplx_pack_i8_avx2(const int8_t *x, size_t n, uint8_t *d, int msb) {
    const __m256i zero = _mm256_setzero_si256();
    size_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(x + j));
        uint32_t m = (uint32_t)_mm256_movemask_epi8(_mm256_cmpgt_epi8(v, zero));
        pplx_store_mask32(d + j / 8, m, msb);
    }
    if (j < n) pplx_pack_i8_serial(x + j, n - j, d + j / 8, msb);
}

PPLX_TARGET_AVX2 static void pplx_pack_b8_avx2(const uint8_t *x, size_t n, uint8_t *d, int msb) {
    const __m256i zero = _mm256_setzero_si256();
    size_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(x + j));
        uint32_t m = ~(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, zero));
        pplx_store_mask32(d + j / 8, m, msb);
    }
    if (j < n) pplx_pack_b8_serial(x + j, n - j, d + j / 8, msb);
}

PPLX_TARGET_AVX2 static void pplx_pack_f32_avx2(const float *x, size_t n, uint8_t *d, int msb) {
    const __m256 zero = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 32 <= n; j += 32) {
        uint32_t m = 0;
        for (int k = 0; k < 4; k++) {
            __m256 v = _mm256_loadu_ps(x + j + 8 * k);
            m |= (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_GT_OQ)) << (8 * k);
        }
        pplx_store_mask32(d + j / 8, m, msb);
    }
    if (j < n) pplx_pack_f32_serial(x + j, n - j, d + j / 8, msb);
}

PPLX_TARGET_AVX2 static void pplx_pack_f64_avx2(const double *x, size_t n, uint8_t *d, int msb) {
    const __m256d zero = _mm256_setzero_pd();
    size_t j = 0;
    for (; j + 32 <= n; j += 32) {
        uint32_t m = 0;
        for (int k = 0; k < 8; k++) {
            __m256d v = _mm256_loadu_pd(x + j + 4 * k);
            m |= (uint32_t)_mm256_movemask_pd(_mm256_cmp_pd(v, zero, _CMP_GT_OQ)) << (4 * k);
        }
        pplx_store_mask32(d + j / 8, m, msb);
    }
    if (j < n) pplx_pack_f64_serial(x + j, n - j, d + j / 8, msb);
}

/* 4 code bytes -> 32 lanes of 0xFF (bit set) / 0x00 (bit clear). */
PPLX_TARGET_AVX2 static inline __m256i pplx_expand32_avx2(const uint8_t *s, __m256i bitsel) {
    uint32_t w;
    memcpy(&w, s, 4);
    __m256i v = _mm256_set1_epi32((int)w);
    v = _mm256_shuffle_epi8(v, _mm256_setr_epi8(
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
        2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bitsel), bitsel);
}

PPLX_TARGET_AVX2 static inline __m256i pplx_bitsel_avx2(int msb) {
    return msb ? _mm256_set1_epi64x((long long)0x0102040810204080ULL)
               : _mm256_set1_epi64x((long long)0x8040201008040201ULL);
}

/* 0xFF/0x00 lanes -> 0/1 (u8) or -1/+1 (i8: (m & 2) - 1). */
PPLX_TARGET_AVX2 static inline __m256i pplx_bytes_of_mask(__m256i m, int sign) {
    return sign ? _mm256_sub_epi8(_mm256_and_si256(m, _mm256_set1_epi8(2)), _mm256_set1_epi8(1))
                : _mm256_and_si256(m, _mm256_set1_epi8(1));
}

/* Shared by the u8 (0/1) and i8 (-1/+1) unpackers: one output byte per bit. */
PPLX_TARGET_AVX2 static inline void pplx_unpack_bytes_avx2(const uint8_t *s, size_t n, uint8_t *y, int msb,
                                                          int sign) {
    const __m256i sel = pplx_bitsel_avx2(msb);
    size_t j = 0;
    if (n >= pplx_stream_min) {
        /* The output is 8x the input and larger than L2: write it around the
         * cache (no read-for-ownership of lines overwritten whole; measured
         * 1.4x faster at 4 MiB on Zen).  Align the destination first. */
        for (; j + 8 <= n && ((uintptr_t)(y + j) & 31); j += 8) {
            if (sign) pplx_unpack_i8_serial(s + j / 8, 8, (int8_t *)y + j, msb);
            else pplx_unpack_u8_serial(s + j / 8, 8, y + j, msb);
        }
        if (((uintptr_t)(y + j) & 31) == 0) {
            for (; j + 32 <= n; j += 32)
                _mm256_stream_si256((__m256i *)(y + j),
                                    pplx_bytes_of_mask(pplx_expand32_avx2(s + j / 8, sel), sign));
            _mm_sfence();
        }
    }
    for (; j + 32 <= n; j += 32)
        _mm256_storeu_si256((__m256i *)(y + j), pplx_bytes_of_mask(pplx_expand32_avx2(s + j / 8, sel), sign));
    if (j < n) {
        if (sign) pplx_unpack_i8_serial(s + j / 8, n - j, (int8_t *)y + j, msb);
        else pplx_unpack_u8_serial(s + j / 8, n - j, y + j, msb);
    }
}

PPLX_TARGET_AVX2 static void pplx_unpack_u8_avx2(const uint8_t *s, size_t n, uint8_t *y, int msb) {
    pplx_unpack_bytes_avx2(s, n, y, msb, 0);
}

PPLX_TARGET_AVX2 static void pplx_unpack_i8_avx2(const uint8_t *s, size_t n, int8_t *y, int msb) {
    pplx_unpack_bytes_avx2(s, n, (uint8_t *)y, msb, 1);
}

PPLX_TARGET_AVX2 static void pplx_unpack_f32_avx2(const uint8_t *s, size_t n, float *y, int msb) {
    const __m256i sel = pplx_bitsel_avx2(msb);
    const __m256 pos = _mm256_set1_ps(1.0f), neg = _mm256_set1_ps(-1.0f);
    size_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m256i m = pplx_expand32_avx2(s + j / 8, sel);
        __m128i h[2] = {_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1)};
        for (int k = 0; k < 4; k++) {
            __m128i b = k & 1 ? _mm_srli_si128(h[k >> 1], 8) : h[k >> 1];
            __m256 mask = _mm256_castsi256_ps(_mm256_cvtepi8_epi32(b));
            _mm256_storeu_ps(y + j + 8 * k, _mm256_blendv_ps(neg, pos, mask));
        }
    }
    if (j < n) pplx_unpack_f32_serial(s + j / 8, n - j, y + j, msb);
}

PPLX_TARGET_AVX2 static void pplx_reverse_bits_avx2(const uint8_t *s, size_t n, uint8_t *d) {
    const __m256i rev4 = _mm256_setr_epi8(
        0x0, 0x8, 0x4, 0xC, 0x2, 0xA, 0x6, 0xE, 0x1, 0x9, 0x5, 0xD, 0x3, 0xB, 0x7, 0xF,
        0x0, 0x8, 0x4, 0xC, 0x2, 0xA, 0x6, 0xE, 0x1, 0x9, 0x5, 0xD, 0x3, 0xB, 0x7, 0xF);
    const __m256i nib = _mm256_set1_epi8(0x0F);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(s + i));
        __m256i lo = _mm256_shuffle_epi8(rev4, _mm256_and_si256(v, nib));
        __m256i hi = _mm256_shuffle_epi8(rev4, _mm256_and_si256(_mm256_srli_epi16(v, 4), nib));
        _mm256_storeu_si256((__m256i *)(d + i), _mm256_or_si256(_mm256_slli_epi16(lo, 4), hi));
    }
    pplx_reverse_bits_serial(s + i, n - i, d + i);
}

#endif /* PPLX_COMPILE_AVX2 */
#endif
