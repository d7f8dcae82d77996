/* peak/common.h - what every tier's peak loop shares: the operand sizes, the
 * query values, and the barrier that keeps a compiler from folding repeats.
 *
 * Every loop reads PPLX_PEAK_BYTES bytes (16 KiB: in L1 on every core this
 * project has met, 32-64 KiB) once per repeat; the caller fills them with
 * values 0..127, so the multiply-adds read the same numbers whether an
 * instruction takes the row bytes as unsigned (vpdpbusd, vpmaddubsw) or signed
 * (TDPBSSD, SDOT, SMULL).  The queries are PPLX_PEAK_NQ fixed 4-byte patterns
 * (query k's byte j is pplx_peak_q[k][j % 4]), held in registers: a 4-byte
 * pattern broadcast to any vector width is the same query, so every form of a
 * loop computes the same sums, which peak.h's reference checks.  |q| <= 127,
 * so a vpmaddubsw pair sum (at most 2 * 127 * 127 = 32258) never saturates.
 */
#ifndef PPLX_PEAK_COMMON_H
#define PPLX_PEAK_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "../cpu.h"

#define PPLX_PEAK_BYTES ((size_t)16384)
#define PPLX_PEAK_NQ 4

static const int8_t pplx_peak_q[PPLX_PEAK_NQ][4] = {
    {3, -7, 11, -13}, {-17, 19, -23, 29}, {127, 37, -41, -127}, {-99, 53, 101, -61}};

/* Query k's 4 bytes as the int32 a broadcast takes (little-endian, as every
 * x86 and Arm target of this build). */
static inline int32_t pplx_peak_qword(int k) {
    int32_t v;
    memcpy(&v, pplx_peak_q[k], 4);
    return v;
}

/* Once per repeat: the compiler must assume the buffer changed, so it can
 * neither hoist a repeat's loads nor replace the repeats by one repeat times
 * their count.  No instruction is emitted. */
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#define PPLX_PEAK_CLOBBER(p) ((void)(p), _ReadWriteBarrier())
#else
#define PPLX_PEAK_CLOBBER(p) __asm__ volatile("" : : "r"(p) : "memory")
#endif

#endif
