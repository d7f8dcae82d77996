/* cpu.h - which instruction sets this build compiled, and which the CPU runs.
 *
 * x86-64: AVX2 kernels are compiled per function with
 * __attribute__((target("avx2,..."))) so the global flags stay baseline and
 * one binary runs everywhere.  At run time AVX2 is usable only when CPUID
 * reports AVX, AVX2, POPCNT and OSXSAVE *and* XGETBV(XCR0) shows the OS
 * saves XMM and YMM state: CPUID alone says what the silicon can do, not
 * whether the kernel/hypervisor enabled the 256-bit registers.
 * aarch64: nothing vector-specific is compiled yet, the serial kernels run.
 */
#ifndef PPLX_CPU_H
#define PPLX_CPU_H

#include <stdint.h>

enum pplx_isa { PPLX_ISA_SERIAL = 0, PPLX_ISA_AVX2 = 1, PPLX_ISA_COUNT = 2 };

static const char *const pplx_isa_names[PPLX_ISA_COUNT] = {"serial", "avx2"};

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define PPLX_COMPILE_AVX2 1
#define PPLX_TARGET_AVX2 __attribute__((target("avx2,popcnt")))
#include <cpuid.h>
#include <immintrin.h>
#else
#define PPLX_COMPILE_AVX2 0
#endif

/* Bit mask of ISAs compiled into this binary (bit i = enum pplx_isa i). */
static inline unsigned pplx_isa_compiled(void) {
    return (1u << PPLX_ISA_SERIAL) | (PPLX_COMPILE_AVX2 ? (1u << PPLX_ISA_AVX2) : 0u);
}

#if PPLX_COMPILE_AVX2
static inline uint64_t pplx_xgetbv0(void) {
    uint32_t lo, hi;
    /* Raw opcode-free mnemonic: no -mxsave needed. */
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static inline int pplx_cpu_avx2_usable(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned osxsave = 1u << 27, avx = 1u << 28, popcnt = 1u << 23;
    if ((c & (osxsave | avx | popcnt)) != (osxsave | avx | popcnt)) return 0;
    if ((pplx_xgetbv0() & 0x6) != 0x6) return 0;       /* XMM (bit 1) + YMM (bit 2) */
    if (__get_cpuid_max(0, 0) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 5) & 1;                                /* CPUID.7.0:EBX.AVX2 */
}
#endif

/* Bit mask of ISAs this CPU (and OS) can run, among those compiled. */
static inline unsigned pplx_isa_detected(void) {
    unsigned m = 1u << PPLX_ISA_SERIAL;
#if PPLX_COMPILE_AVX2
    if (pplx_cpu_avx2_usable()) m |= 1u << PPLX_ISA_AVX2;
#endif
    return m;
}

#endif
