/* int8/avx512.h - the AVX-512 tier of the int8 kernels (the contract and the
 * reference: int8/serial.h).
 *
 *  - sumsq_i8: 32 int8 at a time sign-extended to 32 int16 (vpmovsxbw), then
 *    vpdpwssd (AVX512-VNNI) of the vector with itself: each int32 lane gains
 *    x[2i]^2 + x[2i+1]^2, the pairs vpmaddwd would give, without the separate
 *    vpaddd.  Four accumulators over 128 bytes per iteration: a vpdpwssd
 *    has a latency of 5 cycles (uops.info, Ice Lake) and the sign
 *    extensions (port 5) allow about one per cycle, so four independent
 *    chains keep most of that rate (not measured: no AVX-512 here).
 *    Exactness: every partial sum (a lane, an accumulator, a step of the
 *    horizontal reduction) adds squares of one block's elements, all >= 0, so
 *    it is at most the block's whole sum, <= 2^16 * 128^2 = 2^30 < 2^31: the
 *    int32 lanes cannot overflow.  Each block of 64 Ki elements is reduced to
 *    int32 and added to the int64 total, exact for any n (the avx2 block).
 *    The last n % 32 bytes come in through a masked load (masked-off bytes
 *    read as 0 and add 0).
 *  - i8_to_f32: 16 int8 -> vpmovsxbd -> vcvtdq2ps (exact: |x| <= 128) ->
 *    vdivps by the broadcast divisor, a correctly rounded IEEE division like
 *    the serial (float)x / div, so bit-identical to numpy's
 *    x.astype(float32) / div (a reciprocal multiply would not be).  Bound by
 *    the divider (vdivps zmm: one per ~10 cycles on Ice Lake, about the ymm
 *    rate per element), so no unrolling.  The last n % 16 values: a masked
 *    load of the bytes and a masked store of the floats.
 */
#ifndef PPLX_INT8_AVX512_H
#define PPLX_INT8_AVX512_H

#include "avx2.h"

#if PPLX_COMPILE_AVX512


/* Elements per int32 block (see the bound above); a multiple of 128. */
#define PPLX_SUMSQ_BLOCK_AVX512 ((size_t)1 << 16)

PPLX_TARGET_AVX512 static inline __m512i pplx_sq_acc_avx512(__m512i acc, __m256i b) {
    const __m512i w = _mm512_cvtepi8_epi16(b);
    return _mm512_dpwssd_epi32(acc, w, w);
}

PPLX_TARGET_AVX512 static int64_t pplx_sumsq_i8_avx512(const int8_t *x, size_t n) {
    int64_t total = 0;
    size_t j = 0;
    while (j < n) {
        const size_t stop = n - j > PPLX_SUMSQ_BLOCK_AVX512 ? j + PPLX_SUMSQ_BLOCK_AVX512 : n;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        for (; j + 128 <= stop; j += 128) {
            a0 = pplx_sq_acc_avx512(a0, _mm256_loadu_si256((const __m256i *)(x + j)));
            a1 = pplx_sq_acc_avx512(a1, _mm256_loadu_si256((const __m256i *)(x + j + 32)));
            a2 = pplx_sq_acc_avx512(a2, _mm256_loadu_si256((const __m256i *)(x + j + 64)));
            a3 = pplx_sq_acc_avx512(a3, _mm256_loadu_si256((const __m256i *)(x + j + 96)));
        }
        for (; j + 32 <= stop; j += 32) a0 = pplx_sq_acc_avx512(a0, _mm256_loadu_si256((const __m256i *)(x + j)));
        if (j < stop) {
            const size_t r = stop - j; /* < 32 */
            __m512i v = pplx_mm512_maskz_loadu_epi8(((uint64_t)1 << r) - 1, x + j);
            a1 = pplx_sq_acc_avx512(a1, _mm512_castsi512_si256(v));
            j = stop;
        }
        const __m512i a = _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3));
        __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
        total += _mm_cvtsi128_si32(s);
    }
    return total;
}

PPLX_TARGET_AVX512 static void pplx_i8_to_f32_avx512(const int8_t *x, size_t n, float div, float *y) {
    const __m512 d = _mm512_set1_ps(div);
    size_t j = 0;
    for (; j + 16 <= n; j += 16) {
        const __m512i v = pplx_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(x + j)));
        _mm512_storeu_ps(y + j, _mm512_div_ps(pplx_mm512_cvtepi32_ps(v), d));
    }
    if (j < n) {
        const uint16_t k = (uint16_t)((1u << (n - j)) - 1);
        const __m128i b = _mm512_castsi512_si128(pplx_mm512_maskz_loadu_epi8(k, x + j));
        /* masked-off lanes hold 0 / div; the masked store drops them */
        pplx_mm512_mask_storeu_ps(y + j, k, _mm512_div_ps(pplx_mm512_cvtepi32_ps(pplx_mm512_cvtepi8_epi32(b)), d));
    }
}

#endif /* PPLX_COMPILE_AVX512 */
#endif
