/* json/json.h - the JSON byte scanners of the streaming decoder, one entry
 * per scanner that runs the tier matching the active kernel table:
 *   avx2 (pplx_isa avx2, avx512, amx: each implies AVX2 is usable)
 *   sse2 (x86-64 with the serial table: SSE2 is baseline there)
 *   neon (aarch64: neon, neon_dotprod, or the serial table: NEON is baseline)
 *   serial otherwise (and whenever the tier is not compiled in).
 * The decoder reads the tier once per feed() (pplx_json_tier(table->isa)), so
 * use_isa() switches it with the kernels.  What each tier does: serial.h,
 * avx2.h, neon.h.
 */
#ifndef PPLX_JSON_JSON_H
#define PPLX_JSON_JSON_H

#include "serial.h"
#include "avx2.h"
#include "neon.h"

enum { PPLX_JSON_SERIAL = 0, PPLX_JSON_SSE2 = 1, PPLX_JSON_AVX2 = 2, PPLX_JSON_NEON = 3 };

/* Whether scanner tier t is compiled in and this CPU runs it (for tests:
 * the decoder itself only runs what pplx_json_tier gives). */
static inline int pplx_json_tier_usable(int t) {
#if PPLX_COMPILE_AVX2 && !defined(PPLX_SIMDE_X86)
    if (t == PPLX_JSON_AVX2) return pplx_cpu_avx2_usable();
#endif
    return t == PPLX_JSON_SERIAL || ((t == PPLX_JSON_SSE2 || t == PPLX_JSON_AVX2) && PPLX_COMPILE_AVX2) ||
           (t == PPLX_JSON_NEON && PPLX_COMPILE_NEON);
}

static inline int pplx_json_tier(int isa) {
#if PPLX_COMPILE_AVX2
    if (isa == PPLX_ISA_AVX2 || isa == PPLX_ISA_AVX512 || isa == PPLX_ISA_AMX) return PPLX_JSON_AVX2;
    return PPLX_JSON_SSE2;
#elif PPLX_COMPILE_NEON
    (void)isa;
    return PPLX_JSON_NEON;
#else
    (void)isa;
    return PPLX_JSON_SERIAL;
#endif
}

static inline size_t pplx_json_special(int tier, const uint8_t *s, size_t n) {
#if PPLX_COMPILE_AVX2
    if (tier == PPLX_JSON_AVX2) return pplx_json_special_avx2(s, n);
    if (tier == PPLX_JSON_SSE2) return pplx_json_special_sse2(s, n);
#endif
#if PPLX_COMPILE_NEON
    if (tier == PPLX_JSON_NEON) return pplx_json_special_neon(s, n);
#endif
    (void)tier;
    return pplx_json_special_serial(s, n);
}

static inline size_t pplx_json_quote(int tier, const uint8_t *s, size_t n) {
#if PPLX_COMPILE_AVX2
    if (tier == PPLX_JSON_AVX2) return pplx_json_quote_avx2(s, n);
    if (tier == PPLX_JSON_SSE2) return pplx_json_quote_sse2(s, n);
#endif
#if PPLX_COMPILE_NEON
    if (tier == PPLX_JSON_NEON) return pplx_json_quote_neon(s, n);
#endif
    (void)tier;
    return pplx_json_quote_serial(s, n);
}

#endif
