/* peak/peak.h - this machine's compute peaks, per kernel tier: the rate at
 * which one core popcounts bytes and does int8 multiply-adds with the
 * instructions of that tier, measured by `pplx-codec bench` in the same run
 * as the batched searches, whose times it turns into fractions of a peak.
 *
 * What is measured.  For each tier and kind, one small loop per instruction
 * form the tier may use (peak/<tier>.h), over a 16 KiB buffer that stays in
 * L1, with enough independent accumulators to cover the instruction's
 * latency and, for the multiply-adds, the queries in registers (4 of them
 * per loaded row vector, as the kernels block):
 *   popcount  bytes popcounted per second: the count and its accumulation
 *             (plus the load of the operand), nothing else;
 *   mac       int8 multiply-adds per second (a product and its addition).
 * Why it is the peak.  Nothing a kernel of the tier does can count bytes or
 * multiply-add faster than these instructions issue on operands already in
 * L1: a search adds work (the XOR of a Hamming distance, the row bias of
 * VNNI, the reduction, the top-k) and moves its operands from further out.
 * Where a tier has several forms (avx512: 512- and 256-bit vectors; amx:
 * TDPBSSD, or VNNI for small blocks) its peak is the fastest one, so no
 * choice of a kernel of the tier can exceed it.  Each loop is compiled with
 * its tier's target attributes (cpu.h), like the kernels, and runs only
 * where that tier is detected (the caller's check).
 *
 * How it is timed (pplx_peak_run): a warm-up (the first AVX-512 or AMX
 * instructions of a core may run slowly while it powers those units up),
 * which also sizes a chunk of repeats to about half a millisecond, then
 * whole chunks until the thread has run for the time asked for, read once
 * per chunk.  The rate's denominator is the thread's own CPU time
 * (CLOCK_THREAD_CPUTIME_ID), not the wall clock: on a machine shared with
 * other processes the scheduler may take the core away mid-run, and the
 * wall clock then measured the neighbours (this project's 2-core machine:
 * VPOPCNTQ at 75 GB/s by the wall clock under load, 170 alone).  A peak is
 * what the core does while it runs the loop; the search rows it is compared
 * with keep their wall times.  (Windows has no fine thread clock: the wall
 * clock there.)  The caller takes the median of a few runs and runs one per
 * thread, at once, for the multi-thread figure.
 *
 * Checked: every loop returns a checksum of what it computed (the bytes'
 * popcount; the multiply-add sums modulo 2^32), which pplx_peak_expect
 * computes in plain C: a loop the compiler had hollowed out, or one that
 * counted wrong, fails the check instead of reporting a rate.
 */
#ifndef PPLX_PEAK_H
#define PPLX_PEAK_H

#include "serial.h"
#include "avx2.h"
#include "avx512.h"
#include "amx.h"
#include "neon.h"

#include "../clock.h"

enum { PPLX_PEAK_POPCOUNT = 0, PPLX_PEAK_MAC = 1, PPLX_PEAK_KINDS = 2 };
#define PPLX_PEAK_MAX_FORMS 3

typedef uint64_t (*pplx_peak_loop)(const uint8_t *buf, size_t reps);

typedef struct {
    const char *name;     /* the instruction form, e.g. "VPOPCNTQ zmm" */
    pplx_peak_loop loop;
    double units_per_rep; /* bytes popcounted or multiply-adds per repeat */
    size_t span;          /* the operand's bytes one repeat reads (its first span bytes) */
    int kind;             /* PPLX_PEAK_POPCOUNT or PPLX_PEAK_MAC */
    int tiles;            /* the AMX loop: tile-resident operands (its own reference sum) */
} pplx_peak_form;

typedef struct {
    double units;   /* bytes or multiply-adds done in the timed part */
    double seconds; /* the CPU time this thread ran it for (pplx_peak_cpu) */
    double wall;    /* its length by the wall clock */
    uint64_t reps;
    uint64_t check; /* the loops' checksums over the timed repeats (pplx_peak_expect) */
} pplx_peak_result;

/* The forms of `kind` the tier `isa` has in this build: fills out (at most
 * PPLX_PEAK_MAX_FORMS), returns how many (0: none, e.g. a tier not compiled). */
static int pplx_peak_forms(int isa, int kind, pplx_peak_form *out) {
    int n = 0;
    const double bytes = (double)PPLX_PEAK_BYTES, macs = (double)(PPLX_PEAK_NQ * PPLX_PEAK_BYTES);
#define PPLX_PEAK_FORM(NAME, LOOP, UNITS, TILES)                                                             \
    do {                                                                                                     \
        out[n].name = NAME;                                                                                  \
        out[n].loop = LOOP;                                                                                  \
        out[n].units_per_rep = UNITS;                                                                        \
        out[n].span = PPLX_PEAK_BYTES;                                                                       \
        out[n].kind = kind;                                                                                  \
        out[n].tiles = TILES;                                                                                \
        n++;                                                                                                 \
    } while (0)
    const int pop = kind == PPLX_PEAK_POPCOUNT;
    if (kind != PPLX_PEAK_POPCOUNT && kind != PPLX_PEAK_MAC) return 0;
    switch (isa) {
    case PPLX_ISA_SERIAL:
        if (pop) {
            PPLX_PEAK_FORM("SWAR popcount of 64-bit words", pplx_peak_popcount_serial, bytes, 0);
        } else {
            PPLX_PEAK_FORM("C int16 multiply-add (baseline build)", pplx_peak_mac_serial,
                           (double)(PPLX_PEAK_NQ * PPLX_PEAK_SERIAL_SPAN), 0);
            out[n - 1].span = PPLX_PEAK_SERIAL_SPAN;
        }
        break;
#if PPLX_COMPILE_AVX2
    case PPLX_ISA_AVX2:
        if (pop) PPLX_PEAK_FORM("vpshufb nibble table", pplx_peak_popcount_avx2, bytes, 0);
        else PPLX_PEAK_FORM("vpmaddubsw+vpmaddwd", pplx_peak_mac_avx2, macs, 0);
        break;
#endif
#if PPLX_COMPILE_AVX512
    case PPLX_ISA_AMX:
#if PPLX_COMPILE_AMX
        if (!pop)
            PPLX_PEAK_FORM("TDPBSSD", pplx_peak_mac_amx, (double)PPLX_PEAK_AMX_STEPS * 4.0 * 16.0 * 16.0 * 64.0, 1);
#endif
        /* fall through - the amx tier has avx512's instructions too */
    case PPLX_ISA_AVX512:
        if (pop) {
            PPLX_PEAK_FORM("VPOPCNTQ zmm", pplx_peak_popcount_zmm, bytes, 0);
            PPLX_PEAK_FORM("VPOPCNTQ ymm", pplx_peak_popcount_ymm, bytes, 0);
        } else {
            PPLX_PEAK_FORM("VPDPBUSD zmm", pplx_peak_mac_zmm, macs, 0);
            PPLX_PEAK_FORM("VPDPBUSD ymm", pplx_peak_mac_ymm, macs, 0);
        }
        break;
#endif
#if PPLX_COMPILE_NEON
    case PPLX_ISA_NEON_DOTPROD:
#if PPLX_COMPILE_NEON_DOTPROD
        if (!pop) PPLX_PEAK_FORM("SDOT", pplx_peak_mac_sdot, macs, 0);
#endif
        /* fall through - neon's instructions too */
    case PPLX_ISA_NEON:
        if (pop) PPLX_PEAK_FORM("CNT", pplx_peak_popcount_neon, bytes, 0);
        else PPLX_PEAK_FORM("SMULL+SADALP", pplx_peak_mac_neon, macs, 0);
        break;
#endif
    default:
        break;
    }
#undef PPLX_PEAK_FORM
    return n;
}

/* What a form's loop must return for `reps` repeats over buf (the peak
 * loops' oracle, in plain C). */
static uint64_t pplx_peak_expect(const pplx_peak_form *f, const uint8_t *buf, uint64_t reps) {
    if (f->kind == PPLX_PEAK_POPCOUNT) {
        uint64_t bits = 0;
        for (size_t i = 0; i < f->span; i++)
            for (uint8_t b = buf[i]; b; b &= (uint8_t)(b - 1)) bits++;
        return reps * bits;
    }
    uint32_t sum = 0; /* modulo 2^32, as the loops' int32 lanes wrap */
    if (f->tiles) {
#if PPLX_COMPILE_AMX
        /* each A block (rows 0-15, 16-31 of 64 bytes) times B twice (tiles 6 and 7), with
         * C[m][n] = sum_k A[m][k] q[n % 4][k % 4] */
        for (size_t i = 0; i < 2048; i++)
            for (int n = 0; n < 16; n++) sum += 2u * (uint32_t)((int32_t)(int8_t)buf[i] * pplx_peak_q[n % 4][i % 4]);
        return (uint32_t)(sum * (uint32_t)(reps * PPLX_PEAK_AMX_STEPS));
#endif
    }
    for (size_t i = 0; i < f->span; i++)
        for (int k = 0; k < PPLX_PEAK_NQ; k++) sum += (uint32_t)((int32_t)(int8_t)buf[i] * pplx_peak_q[k][i % 4]);
    return (uint32_t)(sum * (uint32_t)reps);
}

/* The calling thread's CPU time in seconds (the wall clock on Windows). */
static double pplx_peak_cpu(void) {
#if defined(_WIN32)
    return pplx_now_seconds();
#else
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
#endif
}

/* Run f's loop for `warmup` seconds, then time whole chunks of repeats until
 * the thread has run them for `seconds` of CPU time (one chunk at least: 0
 * runs one), or for 20 x `seconds` by the wall clock (a core the scheduler
 * keeps giving away: the figure from what did run). */
static void pplx_peak_run(const pplx_peak_form *f, const uint8_t *buf, double warmup, double seconds,
                          pplx_peak_result *res) {
    size_t chunk = 1;
    uint64_t check = 0, reps = 0;
    double t0 = pplx_now_seconds(), t = t0;
    while (t - t0 < warmup) {
        const double c0 = t;
        check += f->loop(buf, chunk);
        t = pplx_now_seconds();
        if (t - c0 < 5e-4 && chunk < ((size_t)1 << 24)) chunk *= 2;
    }
    check = 0;
    t0 = pplx_now_seconds();
    const double u0 = pplx_peak_cpu();
    double u;
    do {
        check += f->loop(buf, chunk);
        reps += chunk;
        t = pplx_now_seconds();
        u = pplx_peak_cpu();
    } while (u - u0 < seconds && t - t0 < 20 * seconds);
    res->units = (double)reps * f->units_per_rep;
    res->seconds = u - u0;
    res->wall = t - t0;
    res->reps = reps;
    res->check = f->kind == PPLX_PEAK_MAC ? (check & 0xFFFFFFFFu) : check;
}

#endif
