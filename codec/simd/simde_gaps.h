/* simde_gaps.h - the intrinsics the kernels use that SIMDe 0.7.4 (the test
 * builds' portable intrinsics, see cpu.h) lacks, under one name each.
 *
 * Native builds: each pplx_* name is the real intrinsic.  SIMDe test builds
 * (PPLX_SIMDE_X86 / PPLX_SIMDE_NEON): a plain element loop with the
 * documented semantics.  The masked loads and stores read and write only the
 * selected elements, as the instructions do (a masked-off element is never
 * touched, so may lie outside the buffer): that keeps ASan checking every
 * byte a kernel really touches.  The kernels are the same code either way.
 * Included by cpu.h after the intrinsics headers.
 */
#ifndef PPLX_SIMDE_GAPS_H
#define PPLX_SIMDE_GAPS_H

#if defined(PPLX_SIMDE_X86)
#define PPLX_MASKZ_LOAD(NAME, VEC, MASK, T, N, LOAD)                            \
    static inline VEC NAME(MASK k, const void *p) {                            \
        T t[N];                                                                \
        for (int i = 0; i < (N); i++) t[i] = (k >> i & 1) ? ((const T *)p)[i] : (T)0; \
        return LOAD;                                                           \
    }
PPLX_MASKZ_LOAD(pplx_mm512_maskz_loadu_epi8, __m512i, uint64_t, uint8_t, 64, _mm512_loadu_si512(t))
PPLX_MASKZ_LOAD(pplx_mm512_maskz_loadu_epi16, __m512i, uint32_t, uint16_t, 32, _mm512_loadu_si512(t))
PPLX_MASKZ_LOAD(pplx_mm256_maskz_loadu_epi8, __m256i, uint32_t, uint8_t, 32,
                _mm256_loadu_si256((const __m256i *)(const void *)t))
PPLX_MASKZ_LOAD(pplx_mm512_maskz_loadu_ps, __m512, uint16_t, float, 16, _mm512_loadu_ps(t))
PPLX_MASKZ_LOAD(pplx_mm512_maskz_loadu_pd, __m512d, uint8_t, double, 8, _mm512_loadu_pd(t))
#undef PPLX_MASKZ_LOAD

static inline void pplx_mm512_mask_storeu_epi8(void *p, uint64_t k, __m512i v) {
    uint8_t t[64];
    _mm512_storeu_si512(t, v);
    for (int i = 0; i < 64; i++)
        if (k >> i & 1) ((uint8_t *)p)[i] = t[i];
}
static inline void pplx_mm512_mask_storeu_ps(float *p, uint16_t k, __m512 v) {
    float t[16];
    _mm512_storeu_ps(t, v);
    for (int i = 0; i < 16; i++)
        if (k >> i & 1) p[i] = t[i];
}
/* vpshufd with a merge mask: dword i = k bit i ? a's dword (imm >> 2 * (i % 4) & 3) of i's 128-bit block : src's */
static inline __m512i pplx_mm512_mask_shuffle_epi32(__m512i src, uint16_t k, __m512i a, int imm) {
    int32_t s[16], v[16], r[16];
    _mm512_storeu_si512(s, src);
    _mm512_storeu_si512(v, a);
    for (int i = 0; i < 16; i++) r[i] = (k >> i & 1) ? v[i / 4 * 4 + (imm >> (2 * (i % 4)) & 3)] : s[i];
    return _mm512_loadu_si512(r);
}
/* a non-temporal store is an ordinary store, as far as the result goes */
static inline void pplx_mm512_stream_si512(void *p, __m512i v) { _mm512_store_si512(p, v); }
static inline __m512i pplx_mm512_cvtepi8_epi32(__m128i v) {
    int8_t b[16];
    int32_t t[16];
    _mm_storeu_si128((__m128i *)(void *)b, v);
    for (int i = 0; i < 16; i++) t[i] = b[i];
    return _mm512_loadu_si512(t);
}
static inline __m512 pplx_mm512_cvtepi32_ps(__m512i v) {
    int32_t b[16];
    float t[16];
    _mm512_storeu_si512(b, v);
    for (int i = 0; i < 16; i++) t[i] = (float)b[i];
    return _mm512_loadu_ps(t);
}
#elif PPLX_COMPILE_AVX512
#define pplx_mm512_maskz_loadu_epi8 _mm512_maskz_loadu_epi8
#define pplx_mm512_maskz_loadu_epi16 _mm512_maskz_loadu_epi16
#define pplx_mm256_maskz_loadu_epi8 _mm256_maskz_loadu_epi8
#define pplx_mm512_maskz_loadu_ps _mm512_maskz_loadu_ps
#define pplx_mm512_maskz_loadu_pd _mm512_maskz_loadu_pd
#define pplx_mm512_mask_storeu_epi8 _mm512_mask_storeu_epi8
#define pplx_mm512_mask_shuffle_epi32(src, k, a, imm) _mm512_mask_shuffle_epi32((src), (k), (a), (_MM_PERM_ENUM)(imm))
#define pplx_mm512_mask_storeu_ps _mm512_mask_storeu_ps
#define pplx_mm512_stream_si512(p, v) _mm512_stream_si512((__m512i *)(p), (v))
#define pplx_mm512_cvtepi8_epi32 _mm512_cvtepi8_epi32
#define pplx_mm512_cvtepi32_ps _mm512_cvtepi32_ps
#endif

#if defined(PPLX_SIMDE_NEON)
/* FDIV is A64-only, and SIMDe lacks it: the same IEEE division per lane */
static inline float32x4_t pplx_vdivq_f32(float32x4_t a, float32x4_t b) {
    float x[4], y[4];
    vst1q_f32(x, a);
    vst1q_f32(y, b);
    for (int i = 0; i < 4; i++) x[i] = x[i] / y[i];
    return vld1q_f32(x);
}
#elif PPLX_COMPILE_NEON
#define pplx_vdivq_f32 vdivq_f32
#endif

#endif
