/* dot/amx.h - the AMX tier of the dot kernels: dot_i8_block (int8 queries x
 * int8 rows -> exact int32) on the tile matrix multiply unit (TMUL) of Intel
 * Sapphire Rapids and later.
 *
 * NOT YET RUN ON AMX HARDWARE.  It has been compiled (gcc, clang) and tested
 * against a software model of the tile instructions (see Testing), never
 * executed by a CPU with AMX; that is why cpu.h lists amx in
 * PPLX_ISA_OPT_IN: detected, but active only through use_isa("amx") or
 * PPLX_CODEC_ISA=amx.
 *
 * The instruction.  TDPBSSD C, A, B (signed x signed bytes, int32 sums):
 *   C[m][n] += sum over k < K of A[m][k] * B[k / 4][4 n + k % 4]
 * for A of M rows x K bytes, B of K/4 rows x 4N bytes (the "VNNI layout":
 * the 4 consecutive k of column n share a dword) and C of M rows x N int32,
 * M <= 16, K <= 64, N <= 16.  At full size that is 16 x 16 x 64 = 16384
 * multiply-adds, documented as one instruction per 16 cycles per core.
 *
 * Layout: rows are A, queries are B.  A row block is 16 rows x 64 dims of
 * X, which TILELOADD reads in place with the row stride: no reshaping of
 * the big operand.  The queries are the ones reshaped: for the 64-dim chunk
 * at dim k, B[i][4n + j] = Q[n][k + 4i + j], i.e. the 16 x 16 transpose of
 * the 32-bit groups of the (16 queries x 64 dims) block, done with AVX-512
 * (unpacklo/hi_epi32, unpacklo/hi_epi64, then shuffle_i32x4 twice: 64
 * two-source shuffles) into a 64-byte aligned stack buffer.  C[m][n] =
 * dot(row m, query n) is then row-major where out[n * ostride + r] is
 * query-major, so each finished C is stored (TILESTORED) and transposed
 * back with the same 64 shuffles.
 *   Why not the other way round (queries as A, C already query-major)?  Then
 * every 16 rows x 64 dims of X, 1 KiB, needs its own 64-shuffle transpose
 * into the VNNI layout: 64 cycles of the one 512-bit shuffle port per 16
 * cycles of TMUL, so the kernel would be shuffle-bound at a quarter of the
 * TMUL rate.  Here the queries, the same for the whole call, are transposed
 * once per 64 dims (cached for the call, below) and the output once per 16
 * rows, whatever dim is: 64 shuffles per 16 rows against 16 cycles of TMUL
 * per 64 dims, which still leaves the shuffles ahead for dim < 256
 * (pure instruction counts: nothing here was measured).
 *
 * Blocking and tile budget (palette 1: 8 tiles of at most 16 x 64 bytes):
 *   tmm0-3  C: 4 row blocks (64 rows) x nq queries, 16 rows x 4 nq bytes
 *   tmm4-5  A: row blocks, alternating, so loading block b + 1 does not wait
 *           for the TMUL still reading block b
 *   tmm6-7  B: the query chunk, alternating between even and odd chunks
 * For each group of 64 rows: zero C; for each 64-dim chunk load B once and
 * run up to 4 (TILELOADD A, TDPBSSD); then store and transpose the 4 C
 * tiles.  Per TMUL: one A load and a quarter of a B load.  Every tile shape
 * depends on nq only, so the configuration is loaded once per call: a
 * 64-byte stack struct and one LDTILECFG, which Intel's guidance describes
 * as high-latency (to be issued no more often than needed) without a cycle
 * count; none is claimed here.  Against it, a call from the scans covers
 * ~64 KiB of rows (pplx_tile8_rows) per 16 queries: 64 TMULs, ~1000 cycles
 * at the documented rate.  If hardware shows it matters, the fix is to keep
 * the configuration across calls (per thread, keyed by nq), which the
 * TILERELEASE at the end of every call now rules out: tile state is volatile
 * in the x86-64 psABI anyway, the scans run on pool threads whose other
 * code must not inherit our configuration, and a released (init) tile state
 * lets XSAVE and context switches skip its 8 KiB.
 * Rows are loaded with TILELOADD.  TILELOADDT1 (_tile_stream_loadd) hints
 * that the data need not stay in the nearest cache level; the scans re-read
 * each ~64 KiB tile of rows once per group of 16 queries, more than the 48
 * KiB L1D of Sapphire Rapids, so it might suit them: to be measured on
 * hardware, not chosen blind.
 *
 * Queries: with dim <= 64 * PPLX_AMX_QCACHE (512) every chunk is transposed
 * once per call into an 8 KiB stack buffer; above, once per chunk per group
 * of 64 rows into one of two slots (the scans' tiles of ~64 KiB then hold at
 * most 128 rows, two groups).
 *
 * Edges, never reading a byte outside the nq queries and nrows rows (dim
 * bytes each) nor writing outside out[q * ostride + r], q < nq, r < nrows:
 *   - dims: chunk c covers dims [64c, 64c + 64), except the last, moved back
 *     to [dim - 64, dim) so its rows are still loaded in place; the dims it
 *     shares with the chunk before are zeroed in B (a byte-masked move), so
 *     each dim counts once.  dim < 64: rows and queries are copied into
 *     zero-padded 64-byte buffers (AVX-512 masked loads would avoid that,
 *     but SIMDe, which the tests run on, lacks them).
 *   - rows: the last block of 16 starts at nrows - 16, overlapping the one
 *     before (rows in both are computed twice and written twice with the
 *     same value); nrows < 16: one block copied into a zero-padded buffer.
 *   - queries: N = nq (B rows of 4 nq bytes, C of nq columns), so only the
 *     nq queries are read; nq outside 1..16 returns at once, writing nothing.
 *
 * Exactness: |x * y| <= 2^14 and dim <= PPLX_DOT_MAX_DIM = 131071, so every
 * partial sum fits int32, and TDPBSSD accumulates in int32 without
 * saturation (unlike VPDPBUSDS): the result is exact in any order.
 *
 * Why i8_qblock = 16: N <= 16 is TMUL's limit, and PPLX_QBLOCK_MAX sizes the
 * scans' buffers for it.  With rows in M, a TDPBSSD does 16 rows x nq
 * queries x 64 dims; assuming (not measured) that its cost follows M and
 * not N, fewer queries per call only waste it.  For the same reason the
 * avx512 tier's VNNI kernel (pplx_dot_i8_block_avx512) is probably the
 * better one for small nq: groups of fewer than PPLX_AMX_MIN_NQ queries go to it.
 *
 * Compilers.  Every tile instruction goes through the PPLX_TILE_* macros:
 * by default the intrinsics, with a compiler barrier that names the pointer,
 * because GCC 11-13 implement _tile_loadd as an asm with no memory operand
 * and _tile_loadconfig as one that reads 8 bytes: without the barrier GCC
 * may sink or drop the stores that fill the B, pad and config buffers.  The
 * intrinsics take literal tile numbers (GCC pastes them into the asm text),
 * hence macros with the tile numbers written out rather than loops.
 *
 * Testing.  tests/c/amx_model.h defines the PPLX_TILE_* macros as a plain-C
 * model of LDTILECFG, TILELOADD, TILESTORED, TILEZERO, TDPBSSD and
 * TILERELEASE, written from Intel's pseudo-code (the configured rows and
 * bytes per row of each tile, zeroing beyond them, and the #GP / #UD
 * checks), and PPLX_AMX_MODEL, with which cpu.h compiles this tier in the
 * SIMDe build (PPLX_SIMDE_X86: the AVX-512 shuffles in portable C).
 * tests/c/amx_model.c compares the kernel with a plain reference (nq 0..17,
 * nrows 0..40 and 500, dims 0 to 2560, all -128, odd strides, misaligned
 * exact-size buffers under ASan/UBSan) and checks that each call configures
 * once and releases the tiles; tests/test_c_amx_model.py runs it.  What the
 * model cannot show: a misreading of the manual shared by the model and the
 * kernel, the real intrinsics' code generation (checked only by compiling
 * and disassembling), and OS behaviour (first-use XFD trap, signal stack
 * size).  On an AMX machine, the Python suite's `isa` fixture and
 * tests/c/sanitize.c run this tier like any other.
 */
#ifndef PPLX_DOT_AMX_H
#define PPLX_DOT_AMX_H

#include <string.h>
#include "avx512.h"

#if PPLX_COMPILE_AMX

#ifndef PPLX_TILE_LOADD /* tests/c/amx_model.h defines all of them */
#define PPLX_AMX_BARRIER(p) __asm__ volatile("" : : "r"(p) : "memory")
#define PPLX_TILE_LOADCONFIG(cfg)                                                                            \
    do {                                                                                                     \
        PPLX_AMX_BARRIER(cfg);                                                                               \
        _tile_loadconfig(cfg);                                                                               \
    } while (0)
#define PPLX_TILE_LOADD(t, p, stride)                                                                        \
    do {                                                                                                     \
        PPLX_AMX_BARRIER(p);                                                                                 \
        _tile_loadd(t, p, stride);                                                                           \
    } while (0)
#define PPLX_TILE_STORED(t, p, stride)                                                                       \
    do {                                                                                                     \
        _tile_stored(t, p, stride);                                                                          \
        PPLX_AMX_BARRIER(p);                                                                                 \
    } while (0)
#define PPLX_TILE_ZERO(t) _tile_zero(t)
#define PPLX_TILE_DPBSSD(c, a, b) _tile_dpbssd(c, a, b)
#define PPLX_TILE_RELEASE() _tile_release()
#endif

/* Query chunks kept transposed for the whole call (1 KiB each). */
#define PPLX_AMX_QCACHE 8

/* LDTILECFG's 64-byte operand, palette 1. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} pplx_amx_tilecfg;

/* r[i] dword j -> r[j] dword i (16 x 16 32-bit elements): 4 stages of 16
 * two-source shuffles, written out (GCC 12 kept the loop form in memory). */
/* S1: lane L of t[i], t[i + 1] = r_i, r_i+1 at dwords 4L, 4L+1, then at 4L+2, 4L+3 */
#define PPLX_AMX_S1(i)                                                                                               \
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]), t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1])
/* S2: lane L of r[i + e] = column 4L + e of rows i..i+3 */
#define PPLX_AMX_S2(i)                                                                                               \
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]), r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]),                  \
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]), r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3])
/* S3, S4: for each e, a 4 x 4 transpose of 128-bit lanes (0x88: lanes 0, 2 of each source; 0xDD: 1, 3) */
#define PPLX_AMX_S3(e)                                                                                               \
    t[e] = _mm512_shuffle_i32x4(r[e], r[4 + e], 0x88), t[4 + e] = _mm512_shuffle_i32x4(r[e], r[4 + e], 0xDD),        \
    t[8 + e] = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0x88),                                                      \
    t[12 + e] = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0xDD)
#define PPLX_AMX_S4(e)                                                                                               \
    r[e] = _mm512_shuffle_i32x4(t[e], t[8 + e], 0x88), r[8 + e] = _mm512_shuffle_i32x4(t[e], t[8 + e], 0xDD),        \
    r[4 + e] = _mm512_shuffle_i32x4(t[4 + e], t[12 + e], 0x88),                                                      \
    r[12 + e] = _mm512_shuffle_i32x4(t[4 + e], t[12 + e], 0xDD)
__attribute__((always_inline)) PPLX_TARGET_AMX static inline void pplx_amx_transpose16(__m512i r[16]) {
    __m512i t[16];
    PPLX_AMX_S1(0), PPLX_AMX_S1(2), PPLX_AMX_S1(4), PPLX_AMX_S1(6);
    PPLX_AMX_S1(8), PPLX_AMX_S1(10), PPLX_AMX_S1(12), PPLX_AMX_S1(14);
    PPLX_AMX_S2(0), PPLX_AMX_S2(4), PPLX_AMX_S2(8), PPLX_AMX_S2(12);
    PPLX_AMX_S3(0), PPLX_AMX_S3(1), PPLX_AMX_S3(2), PPLX_AMX_S3(3);
    PPLX_AMX_S4(0), PPLX_AMX_S4(1), PPLX_AMX_S4(2), PPLX_AMX_S4(3);
}
#undef PPLX_AMX_S1
#undef PPLX_AMX_S2
#undef PPLX_AMX_S3
#undef PPLX_AMX_S4

/* First dim of chunk c of nk: the last chunk ends at dim (dim >= 64). */
static inline size_t pplx_amx_koff(size_t c, size_t nk, size_t dim) {
    return c + 1 < nk ? 64 * c : dim >= 64 ? dim - 64 : 0;
}

/* First row of 16-row block b: the last block ends at nrows (nrows >= 16). */
static inline size_t pplx_amx_row0(size_t b, size_t nrows) {
    return nrows < 16 ? 0 : 16 * b + 16 <= nrows ? 16 * b : nrows - 16;
}

/* The B tile of chunk c, 16 rows 64 bytes apart: B[i][4n + j] = Q[n][k + 4i + j]
 * for the chunk's own dims, 0 for the dims the last chunk shares with the one
 * before, for dims >= dim and for queries n >= nq. */
PPLX_TARGET_AMX static void pplx_amx_qchunk(const int8_t *Q, size_t nq, size_t qstride, size_t dim, size_t c,
                                            size_t nk, int8_t *b) {
    __m512i v[16];
    const size_t k = pplx_amx_koff(c, nk, dim);
    const uint64_t keep = ~(uint64_t)0 << (64 * nk - dim); /* last chunk: its last dim - 64 (nk - 1) bytes */
    for (size_t n = 0; n < 16; n++) {
        if (n >= nq) {
            v[n] = _mm512_setzero_si512();
        } else if (dim >= 64) {
            v[n] = _mm512_loadu_si512((const void *)(Q + n * qstride + k));
            if (c + 1 == nk) v[n] = _mm512_maskz_mov_epi8(keep, v[n]);
        } else {
            int8_t t[64];
            memset(t, 0, sizeof t);
            memcpy(t, Q + n * qstride, dim);
            v[n] = _mm512_loadu_si512((const void *)t);
        }
    }
    pplx_amx_transpose16(v);
    for (int i = 0; i < 16; i++) _mm512_store_si512((void *)(b + 64 * i), v[i]);
}

/* nv rows of w bytes, xstride apart, to the first rows of a 64-byte-stride pad. */
static inline void pplx_amx_pad(int8_t *pad, const int8_t *x, size_t xstride, size_t nv, size_t w) {
    for (size_t m = 0; m < nv; m++) memcpy(pad + 64 * m, x + m * xstride, w);
}

/* One stored C tile (16 rows x nq int32, rows 64 bytes apart) to out[n * ostride + m], m < nv. */
PPLX_TARGET_AMX static void pplx_amx_emit(const int32_t *cbuf, size_t nq, int32_t *out, size_t ostride, size_t nv) {
    __m512i v[16];
    for (int m = 0; m < 16; m++) v[m] = _mm512_load_si512((const void *)(cbuf + 16 * m));
    pplx_amx_transpose16(v);
    for (size_t n = 0; n < nq; n++) {
        if (nv == 16) {
            _mm512_storeu_si512((void *)(out + n * ostride), v[n]);
        } else {
            int32_t t[16];
            _mm512_storeu_si512((void *)t, v[n]);
            memcpy(out + n * ostride, t, nv * sizeof(int32_t));
        }
    }
}

/* Block i of the group (rows s[i]...) times chunk B (tile BT) into C tile CT,
 * through A tile AT: loaded in place, or from the zero-padded copy. */
#define PPLX_AMX_A(AT, CT, BT, i)                                                                            \
    do {                                                                                                     \
        const int8_t *xa_ = X + s[i] * xstride + k_;                                                         \
        if (direct) {                                                                                        \
            PPLX_TILE_LOADD(AT, xa_, xstride);                                                               \
        } else {                                                                                             \
            pplx_amx_pad(pad, xa_, xstride, nrows - s[i] < 16 ? nrows - s[i] : 16, w);                       \
            PPLX_TILE_LOADD(AT, pad, 64);                                                                    \
        }                                                                                                    \
        PPLX_TILE_DPBSSD(CT, AT, BT);                                                                        \
    } while (0)

/* Chunk C of every block of the group, B in tile BT (6 or 7). */
#define PPLX_AMX_CHUNK(C, BT)                                                                                \
    do {                                                                                                     \
        const size_t c_ = (C), k_ = pplx_amx_koff(c_, nk, dim);                                              \
        int8_t *b_ = cached ? qb + 1024 * c_ : qb + 1024 * (BT - 6);                                         \
        if (!cached) pplx_amx_qchunk(Q, nq, qstride, dim, c_, nk, b_);                                       \
        PPLX_TILE_LOADD(BT, b_, 64);                                                                         \
        PPLX_AMX_A(4, 0, BT, 0);                                                                             \
        if (nb > 1) PPLX_AMX_A(5, 1, BT, 1);                                                                 \
        if (nb > 2) PPLX_AMX_A(4, 2, BT, 2);                                                                 \
        if (nb > 3) PPLX_AMX_A(5, 3, BT, 3);                                                                 \
    } while (0)

/* C tile CT (block i of the group) to out. */
#define PPLX_AMX_EMIT(CT, i)                                                                                 \
    do {                                                                                                     \
        PPLX_TILE_STORED(CT, cbuf, 64);                                                                      \
        pplx_amx_emit(cbuf, nq, out + s[i], ostride, nrows - s[i] < 16 ? nrows - s[i] : 16);                \
    } while (0)

#ifndef PPLX_AMX_MIN_NQ
#define PPLX_AMX_MIN_NQ 4
#endif
#if PPLX_AMX_MIN_NQ > PPLX_DOT_I8_QBLOCK_AVX512 + 1
#error "PPLX_AMX_MIN_NQ: the avx512 kernel takes at most PPLX_DOT_I8_QBLOCK_AVX512 queries"
#endif

PPLX_TARGET_AMX static void pplx_dot_i8_block_amx(const int8_t *Q, size_t nq, size_t qstride, const int8_t *X,
                                                 size_t nrows, size_t dim, size_t xstride, int32_t *out,
                                                 size_t ostride) {
    if (nq == 0 || nq > 16) return; /* outside the contract (kernels.h): touch nothing */
    /* A group of few queries leaves most of each tile product idle: the avx512 VNNI kernel (qblock 8) takes
     * those.  The threshold is a guess until measured on AMX hardware; tests/c/amx_model.c is built with
     * PPLX_AMX_MIN_NQ=1 so the tile path sees every nq. */
    if (nq < PPLX_AMX_MIN_NQ) {
        pplx_dot_i8_block_avx512(Q, nq, qstride, X, nrows, dim, xstride, out, ostride);
        return;
    }
    if (nrows == 0) return;
    if (dim == 0) {
        for (size_t q = 0; q < nq; q++)
            for (size_t r = 0; r < nrows; r++) out[q * ostride + r] = 0;
        return;
    }
    const size_t nk = (dim + 63) / 64, nblk = (nrows + 15) / 16, w = dim < 64 ? dim : 64;
    const int direct = nrows >= 16 && dim >= 64, cached = nk <= PPLX_AMX_QCACHE;
    __attribute__((aligned(64))) int8_t qb[PPLX_AMX_QCACHE * 1024];
    __attribute__((aligned(64))) int8_t pad[1024];
    __attribute__((aligned(64))) int32_t cbuf[256];
    __attribute__((aligned(64))) pplx_amx_tilecfg cfg;
    if (cached)
        for (size_t c = 0; c < nk; c++) pplx_amx_qchunk(Q, nq, qstride, dim, c, nk, qb + 1024 * c);
    if (!direct) memset(pad, 0, sizeof pad);
    memset(cbuf, 0, sizeof cbuf); /* columns >= nq: never stored by the tiles, read by the transpose */
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = (uint16_t)(t == 4 || t == 5 ? 64 : 4 * nq); /* A: 64 dims; C, B: nq int32 columns */
    }
    PPLX_TILE_LOADCONFIG(&cfg);
    for (size_t b0 = 0; b0 < nblk; b0 += 4) {
        const size_t nb = nblk - b0 < 4 ? nblk - b0 : 4;
        size_t s[4];
        for (size_t i = 0; i < 4; i++) s[i] = pplx_amx_row0(b0 + (i < nb ? i : 0), nrows);
        PPLX_TILE_ZERO(0);
        PPLX_TILE_ZERO(1);
        PPLX_TILE_ZERO(2);
        PPLX_TILE_ZERO(3);
        size_t c = 0;
        for (; c + 2 <= nk; c += 2) {
            PPLX_AMX_CHUNK(c, 6);
            PPLX_AMX_CHUNK(c + 1, 7);
        }
        if (c < nk) PPLX_AMX_CHUNK(c, 6);
        PPLX_AMX_EMIT(0, 0);
        if (nb > 1) PPLX_AMX_EMIT(1, 1);
        if (nb > 2) PPLX_AMX_EMIT(2, 2);
        if (nb > 3) PPLX_AMX_EMIT(3, 3);
    }
    PPLX_TILE_RELEASE();
}
#undef PPLX_AMX_A
#undef PPLX_AMX_CHUNK
#undef PPLX_AMX_EMIT

#endif /* PPLX_COMPILE_AMX */
#endif
