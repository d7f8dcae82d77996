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
    t->dot_block = pplx_dot_block_serial;
    t->dot16_block = pplx_dot16_block_serial;
    t->i8_qblock = 0;
    t->dot_i8_block = NULL;
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
    /* dot */
    t->dot_block = pplx_dot_block_avx512;
    t->dot16_block = pplx_dot16_block_avx512;
    t->i8_qblock = PPLX_DOT_I8_QBLOCK_AVX512;
    t->dot_i8_block = pplx_dot_i8_block_avx512;
    (void)t;
}
#endif

#if PPLX_COMPILE_AMX
static void pplx_fill_amx(pplx_table *t) {
    /* dot */
    t->i8_qblock = 16;
    t->dot_i8_block = pplx_dot_i8_block_amx;
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
}

#endif
