/* peak/amx.h - the amx tier's int8 multiply-add peak: TDPBSSD on full
 * tiles (see peak/peak.h).  The tier's popcount is avx512's.
 *
 * NOT YET RUN ON AMX HARDWARE (as dot/amx.h): compiled, and checked against
 * the plain-C model of the tile instructions (tests/c/amx_model.h) by the
 * C harness; the bench measures it only where the amx tier is detected.
 *
 * Full tiles (16 rows x 64 bytes, palette 1): one TDPBSSD is 16 x 16 x 64
 * = 16384 multiply-adds.  Tiles 0-3 accumulate, 4-5 hold two 16-row blocks
 * of the buffer (A) and 6-7 the queries in the VNNI layout (B), loaded once
 * per call: the loop is TMUL alone, its four products independent (each C
 * tile is written by every fourth instruction), as in the kernel's 4 row
 * blocks x 1 query chunk.  Tile loads are not in the loop because the
 * kernel issues about one per TMUL and the load ports are not what bounds
 * it; a peak must bound the instruction's own rate.
 */
#ifndef PPLX_PEAK_AMX_H
#define PPLX_PEAK_AMX_H

#include "common.h"
#include "../dot/amx.h"

#if PPLX_COMPILE_AMX

/* TDPBSSD per repeat: 4 per step (one into each C tile). */
#define PPLX_PEAK_AMX_STEPS 16

/* B: 16 rows x 16 dwords; dword n of every row is query (n % 4)'s pattern,
 * so C[m][n] = sum over the 64 bytes k of A[m][k] * q[n % 4][k % 4]. */
static inline void pplx_peak_amx_queries(int8_t *b) {
    for (int r = 0; r < 16; r++)
        for (int n = 0; n < 16; n++) memcpy(b + 64 * r + 4 * n, pplx_peak_q[n % 4], 4);
}

PPLX_TARGET_AMX static uint64_t pplx_peak_mac_amx(const uint8_t *buf, size_t reps) {
    __attribute__((aligned(64))) int8_t b[1024];
    __attribute__((aligned(64))) int32_t c[256];
    __attribute__((aligned(64))) pplx_amx_tilecfg cfg;
    pplx_peak_amx_queries(b);
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    PPLX_TILE_LOADCONFIG(&cfg);
    PPLX_TILE_ZERO(0);
    PPLX_TILE_ZERO(1);
    PPLX_TILE_ZERO(2);
    PPLX_TILE_ZERO(3);
    PPLX_TILE_LOADD(4, buf, 64);
    PPLX_TILE_LOADD(5, buf + 1024, 64);
    PPLX_TILE_LOADD(6, b, 64);
    PPLX_TILE_LOADD(7, b, 64);
    for (size_t r = 0; r < reps; r++)
        for (int s = 0; s < PPLX_PEAK_AMX_STEPS; s++) {
            PPLX_TILE_DPBSSD(0, 4, 6);
            PPLX_TILE_DPBSSD(1, 4, 7);
            PPLX_TILE_DPBSSD(2, 5, 6);
            PPLX_TILE_DPBSSD(3, 5, 7);
        }
    uint32_t sum = 0;
#define PPLX_PEAK_AMX_SUM(t)                                                                                 \
    do {                                                                                                     \
        PPLX_TILE_STORED(t, c, 64);                                                                          \
        for (int i = 0; i < 256; i++) sum += (uint32_t)c[i];                                                 \
    } while (0)
    PPLX_PEAK_AMX_SUM(0);
    PPLX_PEAK_AMX_SUM(1);
    PPLX_PEAK_AMX_SUM(2);
    PPLX_PEAK_AMX_SUM(3);
#undef PPLX_PEAK_AMX_SUM
    PPLX_TILE_RELEASE();
    return sum;
}

#endif /* PPLX_COMPILE_AMX */
#endif
