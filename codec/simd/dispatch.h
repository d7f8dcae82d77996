/* dispatch.h - the one table of kernel pointers, and the one place that wires
 * each tier's kernels into it.
 *
 * Kernels are static functions in codec/simd/<family>/<tier>.h; each tier
 * file includes its family's serial.h (the reference).  This header is
 * included by the _dispatch extension (and the C test harnesses), which fills
 * one table per compiled ISA at import and publishes a pointer to the active
 * one.  The other extensions call through that pointer, so switching ISA
 * (tests, bug reports) is one pointer store and no tier's kernels are
 * compiled twice.  (_search.pyx includes topk.h, the scan drivers that call
 * through the table, and dot/serial.h for the PPLX_DOT_MAX_DIM limit only.)
 *
 * A tier starts from the table of the tier it extends (avx512 from avx2, amx
 * from avx512, neon_dotprod from neon) and replaces the entries it does
 * better, so a family without a kernel of its own in a tier keeps the best
 * one below it.
 *
 * The default table is not one tier's: it takes each kernel family (enum
 * pplx_family) from the tier measured fastest for it on this machine
 * (pplx_table_take; the measurement is calibrate.h, the choice _calibrate.py),
 * because which tier is fastest differs by family and by microarchitecture
 * (Zen 4 runs most 512-bit operations as two 256-bit halves).  Every path
 * computes the same results; only the speed differs.
 */
#ifndef PPLX_DISPATCH_H
#define PPLX_DISPATCH_H

#include "cpu.h"
#include "kernels.h"
#include "base64/avx2.h"
#include "base64/avx512.h"
#include "base64/neon.h"
#include "bits/avx2.h"
#include "bits/avx512.h"
#include "bits/neon.h"
#include "int8/avx2.h"
#include "int8/avx512.h"
#include "int8/neon.h"
#include "hamming/avx2.h"
#include "hamming/avx512.h"
#include "hamming/neon.h"
#include "dot/avx2.h"
#include "dot/avx512.h"
#include "dot/amx.h"
#include "dot/neon.h"
#include "json/json.h"

static void pplx_fill_serial(pplx_table *t) {
    t->b64_decode = pplx_b64_decode_serial;
    t->b64_encode = pplx_b64_encode_serial;
    t->pack_i8 = pplx_pack_i8_serial;
    t->pack_b8 = pplx_pack_b8_serial;
    t->pack_f32 = pplx_pack_f32_serial;
    t->pack_f64 = pplx_pack_f64_serial;
    t->unpack_u8 = pplx_unpack_u8_serial;
    t->unpack_i8 = pplx_unpack_i8_serial;
    t->unpack_f32 = pplx_unpack_f32_serial;
    t->reverse_bits = pplx_reverse_bits_serial;
    t->sumsq_i8 = pplx_sumsq_i8_serial;
    t->i8_to_f32 = pplx_i8_to_f32_serial;
    t->hamming_block = pplx_hamming_block_serial;
    t->hamming8_filter = NULL; /* the serial scan keeps the block path: the oracle the fused one is tested against */
    t->dot_block = pplx_dot_block_serial;
    t->dot16_block = pplx_dot16_block_serial;
    t->i8_qblock = 0;
    t->dot_i8_block = NULL;
    t->dot_i8t_filter = NULL; /* the serial scan keeps the block path (see hamming8_filter) */
}

#if PPLX_COMPILE_AVX2
static void pplx_fill_avx2(pplx_table *t) {
    t->b64_decode = pplx_b64_decode_avx2;
    t->b64_encode = pplx_b64_encode_avx2;
    t->pack_i8 = pplx_pack_i8_avx2;
    t->pack_b8 = pplx_pack_b8_avx2;
    t->pack_f32 = pplx_pack_f32_avx2;
    t->pack_f64 = pplx_pack_f64_avx2;
    pplx_stream_min_init();
    t->unpack_u8 = pplx_unpack_u8_avx2;
    t->unpack_i8 = pplx_unpack_i8_avx2;
    t->unpack_f32 = pplx_unpack_f32_avx2;
    t->reverse_bits = pplx_reverse_bits_avx2;
    t->sumsq_i8 = pplx_sumsq_i8_avx2;
    t->i8_to_f32 = pplx_i8_to_f32_avx2;
    t->hamming_block = pplx_hamming_block_avx2;
    t->dot_block = pplx_dot_block_avx2;
    t->dot16_block = pplx_dot16_block_avx2;
}
#endif

#if PPLX_COMPILE_AVX512
static void pplx_fill_avx512(pplx_table *t) {
    /* base64 */
    t->b64_decode = pplx_b64_decode_avx512;
    t->b64_encode = pplx_b64_encode_avx512;
    /* bits */
    t->pack_i8 = pplx_pack_i8_avx512;
    t->pack_b8 = pplx_pack_b8_avx512;
    t->pack_f32 = pplx_pack_f32_avx512;
    t->pack_f64 = pplx_pack_f64_avx512;
    t->unpack_u8 = pplx_unpack_u8_avx512;
    t->unpack_i8 = pplx_unpack_i8_avx512;
    t->unpack_f32 = pplx_unpack_f32_avx512;
    t->reverse_bits = pplx_cpu_gfni() ? pplx_reverse_bits_avx512_gfni : pplx_reverse_bits_avx512;
    /* int8 */
    t->sumsq_i8 = pplx_sumsq_i8_avx512;
    t->i8_to_f32 = pplx_i8_to_f32_avx512;
    /* hamming */
    t->hamming_block = pplx_hamming_block_avx512;
    t->hamming8_filter = pplx_hamming8_filter_avx512;
    /* dot */
    t->dot_block = pplx_dot_block_avx512;
    t->dot16_block = pplx_dot16_block_avx512;
    t->i8_qblock = PPLX_DOT_I8_QBLOCK_AVX512;
    t->dot_i8_block = pplx_dot_i8_block_avx512;
    t->dot_i8t_filter = pplx_dot_i8t_filter_avx512;
    (void)t;
}
#endif

#if PPLX_COMPILE_AMX
static void pplx_fill_amx(pplx_table *t) {
    /* dot */
    t->i8_qblock = 16;
    t->dot_i8_block = pplx_dot_i8_block_amx;
    t->dot_i8t_filter = NULL; /* the tile kernel is this tier's many-query path */
    (void)t;
}
#endif

#if PPLX_COMPILE_NEON
static void pplx_fill_neon(pplx_table *t) {
    /* base64 */
    t->b64_decode = pplx_b64_decode_neon;
    t->b64_encode = pplx_b64_encode_neon;
    /* bits */
    t->pack_i8 = pplx_pack_i8_neon;
    t->pack_b8 = pplx_pack_b8_neon;
    t->pack_f32 = pplx_pack_f32_neon;
    t->pack_f64 = pplx_pack_f64_neon;
    t->unpack_u8 = pplx_unpack_u8_neon;
    t->unpack_i8 = pplx_unpack_i8_neon;
    t->unpack_f32 = pplx_unpack_f32_neon;
    t->reverse_bits = pplx_reverse_bits_neon;
    /* int8 */
    t->sumsq_i8 = pplx_sumsq_i8_neon;
    t->i8_to_f32 = pplx_i8_to_f32_neon;
    /* hamming */
    t->hamming_block = pplx_hamming_block_neon;
    /* dot */
    t->dot_block = pplx_dot_block_neon;
    t->dot16_block = pplx_dot16_block_neon;
    t->i8_qblock = PPLX_DOT_I8_QBLOCK_NEON;
    t->dot_i8_block = pplx_dot_i8_block_neon;
    (void)t;
}
#endif

#if PPLX_COMPILE_NEON_DOTPROD
static void pplx_fill_neon_dotprod(pplx_table *t) {
    /* dot */
    t->i8_qblock = PPLX_DOT_I8_QBLOCK_NEON_DOTPROD;
    t->dot_i8_block = pplx_dot_i8_block_neon_dotprod;
    (void)t;
}
#endif

static void pplx_table_fill(pplx_table *t, int isa) {
    pplx_fill_serial(t);
#if PPLX_COMPILE_AVX2
    if (isa == PPLX_ISA_AVX2 || isa == PPLX_ISA_AVX512 || isa == PPLX_ISA_AMX) pplx_fill_avx2(t);
#endif
#if PPLX_COMPILE_AVX512
    if (isa == PPLX_ISA_AVX512 || isa == PPLX_ISA_AMX) pplx_fill_avx512(t);
#endif
#if PPLX_COMPILE_AMX
    if (isa == PPLX_ISA_AMX) pplx_fill_amx(t);
#endif
#if PPLX_COMPILE_NEON
    if (isa == PPLX_ISA_NEON || isa == PPLX_ISA_NEON_DOTPROD) pplx_fill_neon(t);
#endif
#if PPLX_COMPILE_NEON_DOTPROD
    if (isa == PPLX_ISA_NEON_DOTPROD) pplx_fill_neon_dotprod(t);
#endif
    t->isa = isa;
    for (int f = 0; f < PPLX_FAM_COUNT; f++) t->fam[f] = isa;
}

/* Whether tables a and b run the same code for family f (same entries; for
 * json the same scanners).  Tells a tier's own kernels from those it keeps
 * from the tier below, so each distinct path is measured once. */
static int pplx_family_same(const pplx_table *a, const pplx_table *b, int f) {
    switch (f) {
    case PPLX_FAM_BASE64:
        return a->b64_decode == b->b64_decode && a->b64_encode == b->b64_encode;
    case PPLX_FAM_BITS:
        return a->pack_i8 == b->pack_i8 && a->pack_b8 == b->pack_b8 && a->pack_f32 == b->pack_f32 &&
               a->pack_f64 == b->pack_f64 && a->unpack_u8 == b->unpack_u8 && a->unpack_i8 == b->unpack_i8 &&
               a->unpack_f32 == b->unpack_f32 && a->reverse_bits == b->reverse_bits;
    case PPLX_FAM_INT8:
        return a->sumsq_i8 == b->sumsq_i8 && a->i8_to_f32 == b->i8_to_f32;
    case PPLX_FAM_HAMMING:
        return a->hamming_block == b->hamming_block && a->hamming8_filter == b->hamming8_filter;
    case PPLX_FAM_DOT:
        return a->dot_block == b->dot_block && a->dot16_block == b->dot16_block && a->i8_qblock == b->i8_qblock &&
               a->dot_i8_block == b->dot_i8_block && a->dot_i8t_filter == b->dot_i8t_filter;
    case PPLX_FAM_JSON:
        return pplx_json_tier(a->fam[f]) == pplx_json_tier(b->fam[f]);
    }
    return 0;
}

/* Copy family f's entries (and where they come from) from src into dst.  The
 * entries of one family are copied together: i8_qblock and dot_i8_block only
 * make sense as a pair. */
static void pplx_table_take(pplx_table *dst, const pplx_table *src, int f) {
    switch (f) {
    case PPLX_FAM_BASE64:
        dst->b64_decode = src->b64_decode;
        dst->b64_encode = src->b64_encode;
        break;
    case PPLX_FAM_BITS:
        dst->pack_i8 = src->pack_i8;
        dst->pack_b8 = src->pack_b8;
        dst->pack_f32 = src->pack_f32;
        dst->pack_f64 = src->pack_f64;
        dst->unpack_u8 = src->unpack_u8;
        dst->unpack_i8 = src->unpack_i8;
        dst->unpack_f32 = src->unpack_f32;
        dst->reverse_bits = src->reverse_bits;
        break;
    case PPLX_FAM_INT8:
        dst->sumsq_i8 = src->sumsq_i8;
        dst->i8_to_f32 = src->i8_to_f32;
        break;
    case PPLX_FAM_HAMMING:
        dst->hamming_block = src->hamming_block;
        dst->hamming8_filter = src->hamming8_filter;
        break;
    case PPLX_FAM_DOT:
        dst->dot_block = src->dot_block;
        dst->dot16_block = src->dot16_block;
        dst->i8_qblock = src->i8_qblock;
        dst->dot_i8_block = src->dot_i8_block;
        dst->dot_i8t_filter = src->dot_i8t_filter;
        break;
    }
    if (f >= 0 && f < PPLX_FAM_COUNT) dst->fam[f] = src->fam[f];
}

#endif
