/* dispatch.h - the one table of kernel pointers.
 *
 * The kernels are static functions in the family headers; this header is
 * included by exactly one translation unit (the _dispatch extension), which
 * fills one table per compiled ISA at import and publishes a pointer to the
 * active one.  The other extensions call through that pointer, so switching
 * ISA (tests, bug reports) is one pointer store and nothing is compiled twice.
 */
#ifndef PPLX_DISPATCH_H
#define PPLX_DISPATCH_H

#include "cpu.h"
#include "kernels.h"
#include "base64.h"
#include "bits.h"
#include "int8.h"
#include "hamming.h"
#include "dot.h"

static void pplx_table_fill(pplx_table *t, int isa) {
    t->isa = isa;
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
#if PPLX_COMPILE_AVX2
    if (isa == PPLX_ISA_AVX2) {
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
}

#endif
