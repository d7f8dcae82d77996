/* cpu.h - the kernel tiers: which this build compiled, which this CPU runs.
 *
 * Tiers (enum pplx_isa), each a superset of the one it builds on:
 *   serial        portable C, the reference every other tier is tested against
 *   avx2          x86-64: AVX2 + POPCNT (Haswell, Zen 1)
 *   avx512        x86-64: AVX-512 F, BW, VL, VPOPCNTDQ, VNNI, VBMI (Ice Lake,
 *                 Zen 4); GFNI is used where present (every such CPU shipped
 *                 has it, but a hypervisor may hide it), checked separately
 *   amx           avx512 + AMX-TILE and AMX-INT8 (Sapphire Rapids)
 *   neon          aarch64: Advanced SIMD, always present there
 *   neon_dotprod  neon + SDOT/UDOT (Armv8.2 dotprod: Graviton 2+, Ampere,
 *                 Apple M1+)
 *
 * x86-64 tiers are compiled per function with __attribute__((target(...)))
 * so the global flags stay baseline and one binary runs everywhere.  A tier is
 * usable only when CPUID reports its instructions *and* XGETBV(XCR0) shows the
 * OS saves the registers they use (XMM+YMM for avx2; opmask, ZMM0-15 upper
 * halves and ZMM16-31 for avx512; XTILECFG and XTILEDATA for amx): CPUID says
 * what the silicon can do, not what the kernel or hypervisor enabled.  Linux
 * also hands out AMX tile state only on request (arch_prctl
 * ARCH_REQ_XCOMP_PERM); a refusal means no amx tier, not a crash.
 * aarch64: NEON is baseline; dotprod is read from the auxiliary vector
 * (HWCAP_ASIMDDP) on Linux, sysctl on macOS.
 *
 * Testing builds: PPLX_SIMDE_X86 compiles the avx2 and avx512 tiers against
 * SIMDe (portable implementations of the intrinsics) on any x86-64 machine,
 * PPLX_SIMDE_NEON the neon tiers; every compiled tier then counts as usable.
 * The C harness (tests/c/sanitize.c) is built that way by tests/test_c_tiers.py.
 */
#ifndef PPLX_CPU_H
#define PPLX_CPU_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum pplx_isa {
    PPLX_ISA_SERIAL = 0,
    PPLX_ISA_AVX2 = 1,
    PPLX_ISA_AVX512 = 2,
    PPLX_ISA_AMX = 3,
    PPLX_ISA_NEON = 4,
    PPLX_ISA_NEON_DOTPROD = 5,
    PPLX_ISA_COUNT = 6
};

static const char *const pplx_isa_names[PPLX_ISA_COUNT] = {"serial", "avx2",  "avx512",
                                                           "amx",    "neon",  "neon_dotprod"};

/* Tiers that are compiled and detected but not made active by default: AMX
 * until its kernels have run on AMX hardware (no emulator exists for it).
 * use_isa("amx") / PPLX_CODEC_ISA=amx select it explicitly. */
#define PPLX_ISA_OPT_IN ((1u << PPLX_ISA_AMX))

#if defined(PPLX_SIMDE_X86)
/* SIMDe test build: intrinsics by their Intel names, implemented portably. */
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <simde/x86/gfni.h>
#define PPLX_COMPILE_AVX2 1
#define PPLX_COMPILE_AVX512 1
#if defined(PPLX_AMX_MODEL)
/* tests/c/amx_model.h: the tile instructions modelled in plain C (no AMX
 * hardware or emulator needed), so dot/amx.h's kernel runs on any machine. */
#define PPLX_COMPILE_AMX 1
#define PPLX_TARGET_AMX
#else
#define PPLX_COMPILE_AMX 0
#endif
#define PPLX_TARGET_AVX2
#define PPLX_TARGET_AVX512
#define PPLX_TARGET_AVX512_GFNI
#elif !defined(PPLX_SIMDE_NEON) && (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define PPLX_COMPILE_AVX2 1
#define PPLX_COMPILE_AVX512 1
#define PPLX_TARGET_AVX2 __attribute__((target("avx2,popcnt")))
#define PPLX_TARGET_AVX512_SET "avx2,popcnt,bmi2,avx512f,avx512bw,avx512vl,avx512dq,avx512vpopcntdq,avx512vnni,avx512vbmi"
#define PPLX_TARGET_AVX512 __attribute__((target(PPLX_TARGET_AVX512_SET)))
#define PPLX_TARGET_AVX512_GFNI __attribute__((target(PPLX_TARGET_AVX512_SET ",gfni")))
/* AMX intrinsics: GCC 11+, clang 12+. */
#if (defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && __GNUC__ >= 11)
#define PPLX_COMPILE_AMX 1
#define PPLX_TARGET_AMX __attribute__((target(PPLX_TARGET_AVX512_SET ",amx-tile,amx-int8")))
#else
#define PPLX_COMPILE_AMX 0
#endif
#include <cpuid.h>
#include <immintrin.h>
#else
#define PPLX_COMPILE_AVX2 0
#define PPLX_COMPILE_AVX512 0
#define PPLX_COMPILE_AMX 0
#endif

#if defined(PPLX_SIMDE_NEON)
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/arm/neon.h>
#define PPLX_COMPILE_NEON 1
#define PPLX_COMPILE_NEON_DOTPROD 1
#define PPLX_TARGET_NEON_DOTPROD
#elif (defined(__aarch64__) || defined(_M_ARM64)) && (defined(__GNUC__) || defined(__clang__))
#include <arm_neon.h>
#define PPLX_COMPILE_NEON 1
#if defined(__ARM_FEATURE_DOTPROD)
/* the whole build targets dotprod (-march=armv8.2-a+dotprod, Apple M1) */
#define PPLX_COMPILE_NEON_DOTPROD 1
#define PPLX_TARGET_NEON_DOTPROD
#elif !defined(__clang__)
/* GCC: per function, like the x86 tiers.  (clang 14's arm_neon.h declares
 * vdotq only when the whole translation unit targets dotprod.) */
#define PPLX_COMPILE_NEON_DOTPROD 1
#define PPLX_TARGET_NEON_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#else
#define PPLX_COMPILE_NEON_DOTPROD 0
#endif
#else
#define PPLX_COMPILE_NEON 0
#define PPLX_COMPILE_NEON_DOTPROD 0
#endif

#if PPLX_COMPILE_NEON_DOTPROD && !defined(PPLX_SIMDE_NEON) && defined(__linux__)
#include <sys/auxv.h>
#endif
#if PPLX_COMPILE_NEON_DOTPROD && !defined(PPLX_SIMDE_NEON) && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

#include "simde_gaps.h"

/* Bit mask of ISAs compiled into this binary (bit i = enum pplx_isa i). */
static inline unsigned pplx_isa_compiled(void) {
    return (1u << PPLX_ISA_SERIAL) | (PPLX_COMPILE_AVX2 ? (1u << PPLX_ISA_AVX2) : 0u) |
           (PPLX_COMPILE_AVX512 ? (1u << PPLX_ISA_AVX512) : 0u) | (PPLX_COMPILE_AMX ? (1u << PPLX_ISA_AMX) : 0u) |
           (PPLX_COMPILE_NEON ? (1u << PPLX_ISA_NEON) : 0u) |
           (PPLX_COMPILE_NEON_DOTPROD ? (1u << PPLX_ISA_NEON_DOTPROD) : 0u);
}

#if PPLX_COMPILE_AVX2 && !defined(PPLX_SIMDE_X86)
static inline uint64_t pplx_xgetbv0(void) {
    uint32_t lo, hi;
    /* Raw mnemonic: no -mxsave needed. */
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* CPUID leaf 7 subleaf 0 (zeros when the CPU has no leaf 7). */
static inline void pplx_cpuid7(unsigned *b, unsigned *c, unsigned *d) {
    unsigned a;
    *b = *c = *d = 0;
    if (__get_cpuid_max(0, 0) >= 7) __cpuid_count(7, 0, a, *b, *c, *d);
    (void)a;
}

static inline int pplx_cpu_osxsave(unsigned need_ecx) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned osxsave = 1u << 27;
    return (c & (osxsave | need_ecx)) == (osxsave | need_ecx);
}

static inline int pplx_cpu_avx2_usable(void) {
    const unsigned avx = 1u << 28, popcnt = 1u << 23;
    if (!pplx_cpu_osxsave(avx | popcnt)) return 0;
    if ((pplx_xgetbv0() & 0x6) != 0x6) return 0; /* XMM (bit 1) + YMM (bit 2) */
    unsigned b, c, d;
    pplx_cpuid7(&b, &c, &d);
    return (b >> 5) & 1; /* CPUID.7.0:EBX.AVX2 */
}

static inline int pplx_cpu_avx512_usable(void) {
    if (!pplx_cpu_avx2_usable()) return 0;
    /* XCR0: XMM, YMM, opmask (5), ZMM_Hi256 (6), Hi16_ZMM (7) */
    if ((pplx_xgetbv0() & 0xE6) != 0xE6) return 0;
    unsigned b, c, d;
    pplx_cpuid7(&b, &c, &d);
    const unsigned ebx = 1u << 16 /* F */ | 1u << 17 /* DQ */ | 1u << 30 /* BW */ | 1u << 31 /* VL */ |
                         1u << 8 /* BMI2 */;
    const unsigned ecx = 1u << 1 /* VBMI */ | 1u << 11 /* VNNI */ | 1u << 14 /* VPOPCNTDQ */;
    return (b & ebx) == ebx && (c & ecx) == ecx;
}

/* GFNI (gf2p8affineqb) beside avx512: picks the bit-reversal kernel. */
static inline int pplx_cpu_gfni(void) {
    unsigned b, c, d;
    pplx_cpuid7(&b, &c, &d);
    return (c >> 8) & 1;
}

#if PPLX_COMPILE_AMX && defined(__linux__)
/* arch_prctl(2) as a raw syscall (number 158 on x86-64): no libc feature
 * macros needed, whatever the including file defines. 0 or -errno. */
static inline long pplx_arch_prctl(long code, long arg) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "0"(158L), "D"(code), "S"(arg) : "rcx", "r11", "memory");
    return ret;
}
#endif

/* Why the amx tier is not usable on a CPU that has AMX: 0 = usable or no
 * AMX at all, else -errno of Linux's refusal to grant tile data (-ENOSPC:
 * a signal stack (sigaltstack) in the process is too small for the AMX
 * signal frame), or PPLX_AMX_SMALL_TILES when the tile palette is smaller
 * than the kernel's 8 tiles of 16 x 64 bytes.  Set by pplx_isa_detected. */
#define PPLX_AMX_SMALL_TILES 1
static long pplx_amx_refusal = 0;

static inline int pplx_cpu_amx_usable(void) {
#if PPLX_COMPILE_AMX && defined(__linux__)
    if (!pplx_cpu_avx512_usable()) return 0;
    unsigned a, b, c, d;
    pplx_cpuid7(&b, &c, &d);
    const unsigned edx = 1u << 24 /* AMX-TILE */ | 1u << 25 /* AMX-INT8 */;
    if ((d & edx) != edx) return 0;
    /* XCR0 bits 17 (XTILECFG) and 18 (XTILEDATA) */
    if ((pplx_xgetbv0() & 0x60000) != 0x60000) return 0;
    /* The palette the kernel's tile config assumes (every AMX CPU so far):
     * CPUID.1DH.1 (palette 1) at least 8 tiles, 64 bytes a row, 16 rows;
     * CPUID.1EH.0 (TMUL) K >= 16 rows and N >= 64 bytes. */
    int palette_ok = __get_cpuid_max(0, 0) >= 0x1E;
    if (palette_ok) {
        __cpuid_count(0x1D, 1, a, b, c, d);
        palette_ok = (b >> 16) >= 8 && (b & 0xFFFF) >= 64 && (c & 0xFFFF) >= 16;
        __cpuid_count(0x1E, 0, a, b, c, d);
        palette_ok = palette_ok && (b & 0xFF) >= 16 && ((b >> 8) & 0xFFFF) >= 64;
    }
    (void)a;
    if (!palette_ok) {
        pplx_amx_refusal = PPLX_AMX_SMALL_TILES;
        return 0;
    }
    /* ARCH_REQ_XCOMP_PERM (0x1023) for XFEATURE_XTILEDATA (18): once per
     * process, granted to every thread; 0 = granted (also when already). */
    pplx_amx_refusal = pplx_arch_prctl(0x1023, 18);
    return pplx_amx_refusal == 0;
#else
    return 0; /* other OSes: not wired (Windows enables AMX differently) */
#endif
}
#endif

#if defined(PPLX_SIMDE_X86)
static inline int pplx_cpu_gfni(void) { return 1; } /* SIMDe implements it */
#endif

#if PPLX_COMPILE_NEON_DOTPROD && !defined(PPLX_SIMDE_NEON)
static inline int pplx_cpu_dotprod(void) {
#if defined(__ARM_FEATURE_DOTPROD)
    return 1; /* the whole build requires it */
#elif defined(__linux__)
    return (getauxval(AT_HWCAP) >> 20) & 1; /* HWCAP_ASIMDDP */
#elif defined(__APPLE__)
    int v = 0;
    size_t n = sizeof v;
    return sysctlbyname("hw.optional.arm.FEAT_DotProd", &v, &n, NULL, 0) == 0 && v;
#else
    return 0;
#endif
}
#endif

/* The CPU model for the calibration cache (pplx_codec/_calibrate.py): on
 * x86-64 "<vendor> <family>/<model>/<stepping> <brand string>" from CPUID
 * (family and model extended as the SDMs say; a hypervisor may blank the
 * brand but passes the signature through), written into buf (n >= 96);
 * 0 elsewhere, where the caller asks the OS. */
static inline int pplx_cpu_identity(char *buf, size_t n) {
#if PPLX_COMPILE_AVX2 && !defined(PPLX_SIMDE_X86)
    unsigned a, b, c, d, brand[12] = {0};
    char vendor[13] = {0};
    if (n < 96 || !__get_cpuid(0, &a, &b, &c, &d)) return 0;
    memcpy(vendor, &b, 4), memcpy(vendor + 4, &d, 4), memcpy(vendor + 8, &c, 4);
    __get_cpuid(1, &a, &b, &c, &d);
    unsigned family = (a >> 8) & 0xF, model = (a >> 4) & 0xF, stepping = a & 0xF;
    if (family == 0xF) family += (a >> 20) & 0xFF;
    if (family == 0x6 || family >= 0xF) model |= ((a >> 16) & 0xF) << 4;
    if ((unsigned)__get_cpuid_max(0x80000000, 0) >= 0x80000004u) /* int in clang's cpuid.h, unsigned in GCC's */
        for (unsigned i = 0; i < 3; i++)
            __get_cpuid(0x80000002 + i, &brand[4 * i], &brand[4 * i + 1], &brand[4 * i + 2], &brand[4 * i + 3]);
    char name[49] = {0};
    memcpy(name, brand, 48);
    snprintf(buf, n, "%s %u/%u/%u %s", vendor, family, model, stepping, name);
    return 1;
#else
    (void)buf, (void)n;
    return 0;
#endif
}

/* See pplx_amx_refusal (0 where there is nothing to report). */
static inline long pplx_isa_amx_refusal(void) {
#if PPLX_COMPILE_AVX2 && !defined(PPLX_SIMDE_X86)
    return pplx_amx_refusal;
#else
    return 0;
#endif
}

/* Bit mask of ISAs this CPU (and OS) can run, among those compiled.  Called
 * once per process (the _dispatch module caches it): the AMX check asks the
 * kernel for tile state. */
static inline unsigned pplx_isa_detected(void) {
    unsigned m = 1u << PPLX_ISA_SERIAL;
#if defined(PPLX_SIMDE_X86) || defined(PPLX_SIMDE_NEON)
    m = pplx_isa_compiled();
#else
#if PPLX_COMPILE_AVX2
    if (pplx_cpu_avx2_usable()) m |= 1u << PPLX_ISA_AVX2;
    if (pplx_cpu_avx512_usable()) m |= 1u << PPLX_ISA_AVX512;
    if ((m >> PPLX_ISA_AVX512 & 1) && pplx_cpu_amx_usable()) m |= 1u << PPLX_ISA_AMX;
#endif
#if PPLX_COMPILE_NEON
    m |= 1u << PPLX_ISA_NEON;
#endif
#if PPLX_COMPILE_NEON_DOTPROD
    if (pplx_cpu_dotprod()) m |= 1u << PPLX_ISA_NEON_DOTPROD;
#endif
#endif
    return m & pplx_isa_compiled();
}

#endif
