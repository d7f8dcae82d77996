/* amx_model.h - the AMX tile instructions that codec/simd/dot/amx.h uses,
 * modelled in plain C, so its kernel can be tested on a machine without AMX
 * (none of ours has it, and no emulator is installed).
 *
 * Include it before any codec header, in a SIMDe build (-DPPLX_SIMDE_X86):
 * it defines PPLX_AMX_MODEL, with which cpu.h compiles the amx tier (and
 * counts it as detected, like every tier of a SIMDe build), and the
 * PPLX_TILE_* macros dot/amx.h routes every tile instruction through.
 * tests/c/amx_model.c is the harness; tests/c/sanitize.c can be built with
 * `-include amx_model.h` to run its checks on the amx tier too.
 *
 * Written from the Operation and Exceptions sections of Intel's SDM vol. 2
 * (LDTILECFG, TILELOADD, TILESTORED, TILEZERO, TDPBSSD, TILERELEASE; AMX
 * exception classes), palette 1 as Sapphire Rapids enumerates it in CPUID
 * leaves 0x1D/0x1E (8 tiles, 16 rows of 64 bytes; TMUL K and N at most 16):
 *   - a tile is valid when configured with rows and colsb both non-zero;
 *     loads write its configured rows x colsb and zero the rest of the 16 x
 *     64 bytes; stores write only rows x colsb bytes to memory;
 *   - TDPBSSD sign-extends the bytes and adds in 32 bits, wrapping (no
 *     saturation), and zeroes the destination beyond its rows and colsb;
 *   - #GP from LDTILECFG: a palette other than 0 or 1, non-zero reserved
 *     bytes (2-15, colsb of tiles 8-15, rows of tiles 8-15), colsb > 64,
 *     rows > 16, rows or colsb zero but not both;
 *   - #UD: any tile instruction but LDTILECFG/TILERELEASE with tiles not
 *     configured or on an invalid tile; TDPBSSD on tiles not all different,
 *     or whose shapes do not chain (C rows = A rows, C colsb = B colsb,
 *     A colsb / 4 = B rows) or exceed TMUL's K or N; colsb not a multiple
 *     of 4 (as the Bochs emulator checks it), start_row >= rows.
 * A fault prints the instruction and the reason (on stdout) and aborts; an
 * out-of-bounds tile load or store is an ASan report (rows are copied with
 * memcpy).  Counters let the harness check that each kernel call configures
 * once and leaves the tiles released. */
#ifndef PPLX_AMX_MODEL_H
#define PPLX_AMX_MODEL_H

#ifdef PPLX_CPU_H
#error "amx_model.h must come before the codec headers (it sets PPLX_AMX_MODEL for cpu.h)"
#endif
#ifndef PPLX_SIMDE_X86
#error "amx_model.h is for the SIMDe build (-DPPLX_SIMDE_X86): dot/amx.h's AVX-512 code must run here too"
#endif

#define PPLX_AMX_MODEL 1

/* No system header here: this file comes first (also by -include), before
 * the includer's own feature-test macros (_POSIX_C_SOURCE) take effect. */
typedef __UINT8_TYPE__ amx_u8;
typedef __UINT16_TYPE__ amx_u16;
typedef __UINT32_TYPE__ amx_u32;
typedef __INT32_TYPE__ amx_i32;
typedef __INT8_TYPE__ amx_i8;
typedef __PTRDIFF_TYPE__ amx_ptrdiff;

enum { AMX_MAX_NAMES = 8, AMX_BYTES_PER_ROW = 64, AMX_MAX_ROWS = 16, AMX_TMUL_MAXK = 16, AMX_TMUL_MAXN = 16 };

typedef struct {
    int configured; /* TILES_CONFIGURED */
    amx_u8 palette_id, start_row;
    amx_u16 colsb[AMX_MAX_NAMES];
    amx_u8 rows[AMX_MAX_NAMES];
    amx_u8 row[AMX_MAX_NAMES][AMX_MAX_ROWS][AMX_BYTES_PER_ROW];
    /* for the harness: instructions executed */
    unsigned long long n_ldtilecfg, n_tileloadd, n_tilestored, n_tilezero, n_tdpbssd, n_tilerelease;
} amx_model_state;

static amx_model_state amx_model;

static void amx_model_fault(const char *insn, const char *exc, const char *why, int tile) {
    __builtin_printf("amx model: %s raises %s: %s (tile %d)\n", insn, exc, why, tile);
    __builtin_abort();
}

static void amx_model_zero_all(void) { __builtin_memset(amx_model.row, 0, sizeof amx_model.row); }

/* TILES_CONFIGURED := 0, tilecfg := 64 zero bytes */
static void amx_model_init_cfg(void) {
    amx_model.configured = 0;
    amx_model.palette_id = amx_model.start_row = 0;
    __builtin_memset(amx_model.colsb, 0, sizeof amx_model.colsb);
    __builtin_memset(amx_model.rows, 0, sizeof amx_model.rows);
}

static void amx_model_zero_upper_rows(int t, unsigned from) {
    for (unsigned i = from; i < AMX_MAX_ROWS; i++) __builtin_memset(amx_model.row[t][i], 0, AMX_BYTES_PER_ROW);
}

static void amx_model_write_row_and_zero(int t, unsigned r, const amx_u8 *data, unsigned nbytes) {
    __builtin_memcpy(amx_model.row[t][r], data, nbytes);
    __builtin_memset(amx_model.row[t][r] + nbytes, 0, AMX_BYTES_PER_ROW - nbytes);
}

/* The #UD checks every tile-using instruction shares. */
static void amx_model_check_tile(const char *insn, int t) {
    if (!amx_model.configured) amx_model_fault(insn, "#UD", "tiles not configured", t);
    if (t < 0 || t >= AMX_MAX_NAMES) amx_model_fault(insn, "#UD", "tile >= max_names", t);
    if (amx_model.rows[t] == 0) amx_model_fault(insn, "#UD", "tile not valid (not configured)", t);
    if (amx_model.colsb[t] % 4) amx_model_fault(insn, "#UD", "colsb not a multiple of 4", t);
}

static void amx_model_ldtilecfg(const void *mem) {
    amx_u8 buf[64];
    int error = 0;
    __builtin_memcpy(buf, mem, 64); /* read_memory(mem, 64): ASan checks the 64 bytes */
    amx_model.n_ldtilecfg++;
    const amx_u8 palette_id = buf[0];
    amx_u16 colsb[AMX_MAX_NAMES];
    amx_u8 rows[AMX_MAX_NAMES];
    if (palette_id > 1) error = 1;
    if (palette_id != 0) {
        for (int p = 2; p < 16; p++) error |= buf[p] != 0;
        for (int n = 0; n < AMX_MAX_NAMES; n++) {
            colsb[n] = (amx_u16)(buf[16 + 2 * n] | buf[17 + 2 * n] << 8);
            error |= colsb[n] > AMX_BYTES_PER_ROW;
        }
        for (int p = 16 + 2 * AMX_MAX_NAMES; p < 48; p++) error |= buf[p] != 0;
        for (int n = 0; n < AMX_MAX_NAMES; n++) {
            rows[n] = buf[48 + n];
            error |= rows[n] > AMX_MAX_ROWS;
        }
        for (int p = 48 + AMX_MAX_NAMES; p < 64; p++) error |= buf[p] != 0;
        for (int n = 0; n < AMX_MAX_NAMES; n++) error |= (rows[n] == 0) != (colsb[n] == 0);
    }
    if (error) amx_model_fault("LDTILECFG", "#GP", "invalid configuration", -1);
    if (palette_id == 0) { /* init state */
        amx_model_init_cfg();
    } else {
        amx_model.configured = 1;
        amx_model.palette_id = palette_id;
        amx_model.start_row = buf[1];
        __builtin_memcpy(amx_model.colsb, colsb, sizeof colsb);
        __builtin_memcpy(amx_model.rows, rows, sizeof rows);
    }
    amx_model_zero_all();
}

static void amx_model_tileloadd(int t, const void *base, amx_ptrdiff stride) {
    amx_model_check_tile("TILELOADD", t);
    if (amx_model.start_row >= amx_model.rows[t]) amx_model_fault("TILELOADD", "#UD", "start_row >= rows", t);
    amx_model.n_tileloadd++;
    unsigned start = amx_model.start_row;
    const unsigned nbytes = amx_model.colsb[t];
    amx_model_zero_upper_rows(t, start);
    while (start < amx_model.rows[t]) {
        amx_u8 data[AMX_BYTES_PER_ROW];
        /* read_memory(memptr, nbytes) */
        __builtin_memcpy(data, (const char *)base + (amx_ptrdiff)start * stride, nbytes);
        amx_model_write_row_and_zero(t, start, data, nbytes);
        start++;
    }
    amx_model_zero_upper_rows(t, amx_model.rows[t]);
    amx_model.start_row = 0; /* zero_tilecfg_start() */
}

static void amx_model_tilestored(int t, void *base, amx_ptrdiff stride) {
    amx_model_check_tile("TILESTORED", t);
    if (amx_model.start_row >= amx_model.rows[t]) amx_model_fault("TILESTORED", "#UD", "start_row >= rows", t);
    amx_model.n_tilestored++;
    for (unsigned r = amx_model.start_row; r < amx_model.rows[t]; r++)
        __builtin_memcpy((char *)base + (amx_ptrdiff)r * stride, amx_model.row[t][r], amx_model.colsb[t]);
    amx_model.start_row = 0;
}

static void amx_model_tilezero(int t) {
    amx_model_check_tile("TILEZERO", t);
    amx_model.n_tilezero++;
    __builtin_memset(amx_model.row[t], 0, sizeof amx_model.row[t]); /* all max_rows x bytes_per_row */
    amx_model.start_row = 0;
}

/* Only the model's own registers in here: not instrumented (it is most of the
 * harness's run time).  The sums are in uint32: the hardware's wrapping adds
 * (C has no wrapping int32), and in wrapping arithmetic the order of the
 * pseudo-code's loops (m, then k, then n) does not matter, so the bytes are
 * sign-extended once per instruction and the dot products taken per (m, n). */
__attribute__((no_sanitize("address", "undefined"))) static void amx_model_tdpbssd(int c, int a, int b) {
    if (c == a || c == b || a == b) amx_model_fault("TDPBSSD", "#UD", "tiles not all different", c);
    amx_model_check_tile("TDPBSSD", c);
    amx_model_check_tile("TDPBSSD", a);
    amx_model_check_tile("TDPBSSD", b);
    if (amx_model.colsb[c] != amx_model.colsb[b]) amx_model_fault("TDPBSSD", "#UD", "C colsb != B colsb", c);
    if (amx_model.rows[c] != amx_model.rows[a]) amx_model_fault("TDPBSSD", "#UD", "C rows != A rows", c);
    if (amx_model.colsb[a] / 4 != amx_model.rows[b]) amx_model_fault("TDPBSSD", "#UD", "A colsb / 4 != B rows", a);
    if (amx_model.colsb[c] / 4 > AMX_TMUL_MAXN || amx_model.colsb[b] / 4 > AMX_TMUL_MAXN)
        amx_model_fault("TDPBSSD", "#UD", "N > tmul_maxn", c);
    if (amx_model.colsb[a] / 4 > AMX_TMUL_MAXK || amx_model.rows[b] > AMX_TMUL_MAXK)
        amx_model_fault("TDPBSSD", "#UD", "K > tmul_maxk", a);
    amx_model.n_tdpbssd++;
    const unsigned M = amx_model.rows[c], K4 = amx_model.colsb[a] / 4u, N = amx_model.colsb[c] / 4u;
    /* SignExtend32 of every byte of B (K4 rows x 4N) and, per row, of A */
    amx_i32 bt[AMX_TMUL_MAXN][4 * AMX_TMUL_MAXK]; /* bt[n][4k + j] = B.row[k].byte[4n + j] */
    for (unsigned k = 0; k < K4; k++)
        for (unsigned n = 0; n < N; n++)
            for (unsigned j = 0; j < 4; j++) bt[n][4 * k + j] = (amx_i8)amx_model.row[b][k][4 * n + j];
    for (unsigned m = 0; m < M; m++) {
        amx_u32 tmp[AMX_BYTES_PER_ROW / 4]; /* tmp := dst.row[m] */
        amx_i32 ax[4 * AMX_TMUL_MAXK];       /* A.row[m].byte[4k + j] */
        __builtin_memcpy(tmp, amx_model.row[c][m], sizeof tmp);
        for (unsigned i = 0; i < 4 * K4; i++) ax[i] = (amx_i8)amx_model.row[a][m][i];
        for (unsigned n = 0; n < N; n++) {
            /* DPBD(tmp.dword[n], A.row[m].dword[k], B.row[k].dword[n]) for every k */
            amx_u32 s = tmp[n];
            for (unsigned i = 0; i < 4 * K4; i++) s += (amx_u32)(ax[i] * bt[n][i]);
            tmp[n] = s;
        }
        amx_model_write_row_and_zero(c, m, (const amx_u8 *)tmp, 4 * N);
    }
    amx_model_zero_upper_rows(c, M);
    amx_model.start_row = 0;
}

static void amx_model_tilerelease(void) {
    amx_model.n_tilerelease++;
    amx_model_init_cfg();
    amx_model_zero_all();
}

#define PPLX_TILE_LOADCONFIG(cfg) amx_model_ldtilecfg(cfg)
#define PPLX_TILE_LOADD(t, p, stride) amx_model_tileloadd(t, p, (amx_ptrdiff)(stride))
#define PPLX_TILE_STORED(t, p, stride) amx_model_tilestored(t, p, (amx_ptrdiff)(stride))
#define PPLX_TILE_ZERO(t) amx_model_tilezero(t)
#define PPLX_TILE_DPBSSD(c, a, b) amx_model_tdpbssd(c, a, b)
#define PPLX_TILE_RELEASE() amx_model_tilerelease()

#endif
