/* The AMX tier's int8 kernel (codec/simd/dot/amx.h) on a software model of
 * the tile instructions (amx_model.h) and SIMDe's AVX-512: no AMX hardware
 * or emulator needed.
 *
 *   cc -O1 -g1 -march=x86-64-v2 -DPPLX_SIMDE_X86 -fsanitize=address,undefined \
 *      -fno-sanitize-recover=all -Wall -Wextra -Werror -Wno-psabi -Icodec \
 *      tests/c/amx_model.c -o amx_model -lm && ./amx_model
 *
 * Run so by tests/test_c_amx_model.py.  Checks, each buffer allocated at its
 * exact size (an overrun is an ASan report), starting 1..3 bytes (int8) or
 * elements (int32) past a 64-byte boundary:
 *   1. the model itself: TDPBSSD on hand-made tiles against a direct sum
 *      (-128 everywhere, shapes below 16 x 64, int32 wrap), loads zeroing
 *      past colsb, and the faults a misconfigured kernel would hit (#GP,
 *      #UD), each in a child process that must abort;
 *   2. dot_i8_block against a plain reference: nq 0..17 (outside 1..16:
 *      nothing written), nrows 0..40 and 500, dims 0 .. 2560, random and
 *      all -128 values, tight and odd strides; the whole output buffer is
 *      compared (stride gaps keep their junk), the inputs must be unchanged,
 *      and each call that does work loads the configuration once and ends
 *      with the tiles released;
 *   3. the scan drivers of topk.h (matrix and top-k, groups of 16 queries,
 *      tiles of rows) with the amx table against the serial one.
 * Prints one summary line; exits non-zero on any mismatch. */
#define _POSIX_C_SOURCE 200809L
#include "amx_model.h"
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "simd/dispatch.h"
#include "simd/topk.h"
#include "check.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define JUNK 0xA5
#define JUNK32 ((int32_t)0xA5A5A5A5u)


static void on_fatal(int sig) {
    static const char a[] = "amx_model: stopped in ", b[] = "\n";
    if (write(2, a, strlen(a)) < 0 || write(2, where, strlen(where)) < 0 || write(2, b, 1) < 0) {
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void *xalloc(size_t n, size_t off) {
    void *base = NULL;
    if (posix_memalign(&base, 64, n + off) != 0) {
        perror("posix_memalign");
        exit(2);
    }
    memset(base, JUNK, n + off);
    return (char *)base + off;
}

static void xfree(void *p, size_t off) { free((char *)p - off); }

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Random int8, with -128 and 127 more often than chance. */
static int8_t rnd8(void) {
    const uint64_t r = rnd();
    return (r & 15) == 0 ? -128 : (r & 15) == 1 ? 127 : (int8_t)(r >> 8);
}

static size_t span(size_t count, size_t stride, size_t width) { return count ? (count - 1) * stride + width : 0; }

/* n random int8 (rnd8) or all -128: slices of a pool made once, at random
 * offsets (filling megabytes value by value was most of the run time). */
#define POOL (1u << 16)
static int8_t pool[POOL];
static void fill8(int8_t *p, size_t n, int extreme) {
    if (extreme) {
        memset(p, 0x80, n);
        return;
    }
    if (pool[0] == 0 && pool[1] == 0)
        for (size_t i = 0; i < POOL; i++) pool[i] = rnd8();
    while (n) {
        const size_t at = rnd() % (POOL / 2), len = n < POOL / 2 ? n : POOL / 2;
        memcpy(p, pool + at, len);
        p += len;
        n -= len;
    }
}

/* ---- 1. the model ------------------------------------------------------- */

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} cfg_t;

static void cfg_set(cfg_t *c, int t, int rows, int colsb) {
    c->rows[t] = (uint8_t)rows;
    c->colsb[t] = (uint16_t)colsb;
}

/* C (M x N) += A (M x 4K) . B (K x 4N) in the VNNI layout, against the sum. */
static void model_tdpbssd_case(int M, int K, int N, int extreme) {
    AT("model TDPBSSD M=%d K=%d N=%d extreme=%d", M, K, N, extreme);
    int8_t a[16][64], b[16][64];
    int32_t c0[16][16], c[16][16];
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 64; j++) {
            a[i][j] = extreme ? -128 : rnd8();
            b[i][j] = extreme ? -128 : rnd8();
        }
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) c0[i][j] = extreme ? INT32_MAX - 1000 : (int32_t)(rnd() % 2000001) - 1000000;
    cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    cfg_set(&cfg, 0, M, 4 * N);
    cfg_set(&cfg, 1, M, 4 * K);
    cfg_set(&cfg, 2, K, 4 * N);
    PPLX_TILE_LOADCONFIG(&cfg);
    PPLX_TILE_LOADD(0, c0, 64);
    PPLX_TILE_LOADD(1, a, 64);
    PPLX_TILE_LOADD(2, b, 64);
    PPLX_TILE_DPBSSD(0, 1, 2);
    memset(c, 0x5A, sizeof c);
    PPLX_TILE_STORED(0, c, 64);
    PPLX_TILE_RELEASE();
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 16; n++) {
            int32_t want;
            if (m < M && n < N) {
                uint32_t s = (uint32_t)c0[m][n];
                for (int k = 0; k < 4 * K; k++) s += (uint32_t)((int32_t)a[m][k] * b[k / 4][4 * n + k % 4]);
                want = (int32_t)s;
            } else {
                want = 0x5A5A5A5A; /* TILESTORED writes rows x colsb only */
            }
            CHECK(c[m][n] == want, "model TDPBSSD M=%d K=%d N=%d: C[%d][%d] = %d, want %d", M, K, N, m, n, c[m][n],
                  want);
        }
    CHECK(!amx_model.configured, "TILERELEASE left tiles configured");
}

/* A load of fewer than 64 bytes per row, then a store of all 64: the rest is zero. */
static void model_load_zeroes(void) {
    AT("model TILELOADD zeroing");
    uint8_t src[16][64], dst[16][64];
    memset(src, 0x77, sizeof src);
    cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    cfg_set(&cfg, 3, 5, 12);
    cfg_set(&cfg, 4, 16, 64);
    PPLX_TILE_LOADCONFIG(&cfg);
    PPLX_TILE_LOADD(3, src, 64);
    memcpy(amx_model.row[4], amx_model.row[3], sizeof amx_model.row[3]); /* look at the whole register */
    PPLX_TILE_STORED(4, dst, 64);
    PPLX_TILE_RELEASE();
    for (int r = 0; r < 16; r++)
        for (int j = 0; j < 64; j++) CHECK(dst[r][j] == (r < 5 && j < 12 ? 0x77 : 0), "load zeroing [%d][%d]", r, j);
}

/* Each must abort (the fault a kernel bug would raise on hardware). */
static void model_fault(int which) {
    cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg_set(&cfg, t, 16, 64);
    static int8_t buf[16 * 64];
    switch (which) {
        case 0: cfg.palette = 2; break;                 /* #GP: palette */
        case 1: cfg.reserved[3] = 1; break;             /* #GP: reserved byte */
        case 2: cfg_set(&cfg, 8, 1, 4); break;          /* #GP: tile 8 in palette 1 */
        case 3: cfg_set(&cfg, 2, 17, 64); break;        /* #GP: rows > 16 */
        case 4: cfg_set(&cfg, 2, 16, 68); break;        /* #GP: colsb > 64 */
        case 5: cfg_set(&cfg, 2, 0, 64); break;         /* #GP: rows 0, colsb not */
        case 6: cfg_set(&cfg, 0, 8, 64); break;         /* #UD below: C rows != A rows */
        case 7: cfg_set(&cfg, 2, 8, 64); break;         /* #UD below: A colsb / 4 != B rows */
        case 8: cfg_set(&cfg, 0, 16, 32); break;        /* #UD below: C colsb != B colsb */
        case 9: cfg_set(&cfg, 3, 0, 0); break;          /* #UD below: tile 3 not valid */
        case 10: break;                                 /* #UD below: tiles not all different */
        case 11: break;                                 /* #UD below: not configured */
        case 12: cfg_set(&cfg, 3, 16, 6); break;        /* #UD below: colsb % 4 */
        default: break;
    }
    if (which != 11) PPLX_TILE_LOADCONFIG(&cfg);
    if (which == 9 || which == 11 || which == 12) PPLX_TILE_LOADD(3, buf, 64);
    else if (which == 10) PPLX_TILE_DPBSSD(0, 1, 1);
    else PPLX_TILE_DPBSSD(0, 1, 2);
}

static void model_faults(void) {
    for (int which = 0; which <= 12; which++) {
        AT("model fault %d", which);
        fflush(stdout);
        const pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            exit(2);
        }
        if (pid == 0) {
            if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(3);
            signal(SIGABRT, SIG_DFL);
            model_fault(which);
            _exit(0); /* no fault: wrong */
        }
        int st = 0;
        waitpid(pid, &st, 0);
        CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "model fault case %d did not fault (status %d)", which, st);
    }
}

static void test_model(void) {
    static const int shapes[][3] = {{16, 16, 16}, {1, 1, 1}, {16, 16, 1}, {3, 5, 7}, {16, 1, 16}, {7, 16, 16}};
    for (size_t i = 0; i < NELEM(shapes); i++)
        for (int extreme = 0; extreme < 2; extreme++)
            model_tdpbssd_case(shapes[i][0], shapes[i][1], shapes[i][2], extreme);
    model_load_zeroes();
    model_faults();
}

/* ---- 2. dot_i8_block -------------------------------------------------- */

static pplx_table amx, serial;

/* The plain sum, in int64.  Not instrumented (half the run time otherwise):
 * it reads what the kernel reads, which is checked there. */
__attribute__((no_sanitize("address", "undefined"))) static int32_t ref_dot(const int8_t *q, const int8_t *x,
                                                                          size_t dim) {
    int64_t s = 0;
    for (size_t j = 0; j < dim; j++) s += (int64_t)q[j] * x[j];
    return (int32_t)s;
}

/* variant 0: tight strides; 1: odd strides, other offsets; 2: all -128 */
static void test_block(size_t nq, size_t nrows, size_t dim, int variant) {
    const size_t qstride = dim + (variant == 1 ? 3 : 0), xstride = dim + (variant == 1 ? 5 : 0);
    const size_t ostride = nrows + (variant == 1 ? 3 : 0);
    const size_t oq = 1 + (nq + dim) % 3, ox = 1 + (nrows + dim + 1) % 3, oo = (nq + nrows + (size_t)variant) % 4;
    const size_t qbytes = span(nq, qstride, dim), xbytes = span(nrows, xstride, dim), onum = span(nq, ostride, nrows);
    AT("dot_i8_block nq=%zu nrows=%zu dim=%zu strides q%zu x%zu o%zu", nq, nrows, dim, qstride, xstride, ostride);
    int8_t *Q = xalloc(qbytes, oq), *X = xalloc(xbytes, ox);
    int32_t *out = xalloc(onum * 4, oo * 4);
    fill8(Q, qbytes, variant == 2);
    fill8(X, xbytes, variant == 2);
    int8_t *Qc = malloc(qbytes + 1), *Xc = malloc(xbytes + 1);
    memcpy(Qc, Q, qbytes);
    memcpy(Xc, X, xbytes);
    int32_t *ref = malloc(onum * 4 + 4);
    for (size_t i = 0; i < onum; i++) ref[i] = JUNK32;
    for (size_t q = 0; q < (nq >= 1 && nq <= 16 ? nq : 0); q++)
        for (size_t r = 0; r < nrows; r++) ref[q * ostride + r] = ref_dot(Q + q * qstride, X + r * xstride, dim);
    const amx_model_state before = amx_model;
    amx.dot_i8_block(Q, nq, qstride, X, nrows, dim, xstride, out, ostride);
    const int works = nq >= 1 && nq <= 16 && nrows > 0 && dim > 0;
    size_t bad = onum;
    for (size_t i = onum; i-- > 0;)
        if (out[i] != ref[i]) bad = i;
    CHECK(bad == onum, "dot_i8_block nq=%zu nrows=%zu dim=%zu strides q%zu x%zu o%zu: out[%zu] = %d, want %d", nq,
          nrows, dim, qstride, xstride, ostride, bad, bad < onum ? out[bad] : 0, bad < onum ? ref[bad] : 0);
    CHECK(!memcmp(Q, Qc, qbytes) && !memcmp(X, Xc, xbytes), "dot_i8_block nq=%zu nrows=%zu dim=%zu wrote its inputs",
          nq, nrows, dim);
    CHECK(amx_model.n_ldtilecfg - before.n_ldtilecfg == (unsigned)works &&
              amx_model.n_tilerelease - before.n_tilerelease == (unsigned)works && !amx_model.configured,
          "dot_i8_block nq=%zu nrows=%zu dim=%zu: %llu LDTILECFG, %llu TILERELEASE, configured %d at return", nq,
          nrows, dim, amx_model.n_ldtilecfg - before.n_ldtilecfg, amx_model.n_tilerelease - before.n_tilerelease,
          amx_model.configured);
    if (!works)
        CHECK(amx_model.n_tileloadd == before.n_tileloadd && amx_model.n_tdpbssd == before.n_tdpbssd,
              "dot_i8_block nq=%zu nrows=%zu dim=%zu: tile instructions without work", nq, nrows, dim);
    free(ref);
    free(Qc);
    free(Xc);
    xfree(Q, oq);
    xfree(X, ox);
    xfree(out, oo * 4);
}

static void test_blocks(void) {
    static const size_t dims[] = {0, 1, 3, 4, 5, 63, 64, 65, 127, 128, 129, 200, 512, 513, 1024, 2560};
    static const size_t big_nrows[] = {0, 1, 15, 16, 17, 31, 33, 40, 500};
    static const size_t big_nq[] = {0, 1, 2, 4, 5, 8, 15, 16, 17}, biggest_nq[] = {0, 1, 5, 16, 17};
    for (size_t di = 0; di < NELEM(dims); di++) {
        const size_t dim = dims[di];
        const int big = dim >= 1024;
        for (size_t ri = 0; ri < 41 + NELEM(big_nrows); ri++) {
            const size_t nrows = ri < 41 ? ri : big_nrows[ri - 41];
            if (big && ri < 41) continue; /* big dims: the listed row counts only */
            if (!big && ri >= 41 && nrows != 500) continue;
            for (size_t nqi = 0; nqi < 18; nqi++) {
                size_t nq = nqi;
                if (big && nrows == 500) {
                    if (nqi >= NELEM(biggest_nq)) break;
                    nq = biggest_nq[nqi];
                } else if (big || nrows == 500) {
                    if (nqi >= NELEM(big_nq)) break;
                    nq = big_nq[nqi];
                }
                for (int variant = 0; variant < 3; variant++) {
                    /* all -128: the largest sums; a few query counts are enough */
                    if (variant == 2 && nq != 16 && nq != 1 && ((big || nrows == 500) || (nq != 5 && nq != 15)))
                        continue;
                    test_block(nq, nrows, dim, variant);
                }
            }
        }
    }
}

/* ---- 3. the drivers -------------------------------------------------- */

static void test_drivers_one(size_t dim, size_t nrows, size_t nq, int padded) {
    const size_t qstride = dim + (padded ? 1 : 0), xstride = dim + (padded ? 3 : 0), ox = padded ? 1 + nrows % 3 : 0;
    AT("drivers dim=%zu nrows=%zu nq=%zu padded=%d", dim, nrows, nq, padded);
    const size_t xbytes = span(nrows, xstride, dim), qbytes = span(nq, qstride, dim);
    int8_t *X = xalloc(xbytes, ox), *Q8 = xalloc(qbytes, 2);
    int16_t *Q16 = malloc(qbytes * 2 + 2);
    float *qn = malloc(nq * 4 + 4), *xn = malloc(nrows * 4 + 4);
    fill8(X, xbytes, 0);
    fill8(Q8, qbytes, 0);
    for (size_t i = 0; i < qbytes; i++) Q16[i] = Q8[i];
    if (nrows > 3) memcpy(X + 3 * xstride, X + 2 * xstride, dim); /* a tie */
    for (size_t q = 0; q < nq; q++) {
        double s = 0;
        for (size_t j = 0; j < dim; j++) s += (double)Q8[q * qstride + j] * Q8[q * qstride + j];
        qn[q] = (float)sqrt(s);
    }
    for (size_t r = 0; r < nrows; r++) {
        double s = 0;
        for (size_t j = 0; j < dim; j++) s += (double)X[r * xstride + j] * X[r * xstride + j];
        xn[r] = (float)sqrt(s);
    }
    /* the full matrix over rows [1, nrows) (columns 0 and gaps keep their junk) */
    const size_t r0 = nrows > 1 ? 1 : 0, on = nq * nrows;
    int32_t *m_amx = xalloc(on * 4, 4), *m_ser = xalloc(on * 4, 4);
    pplx_matrix_dot(&amx, Q8, qstride, Q16, nq, qstride, X, r0, nrows, dim, xstride, m_amx, nrows);
    pplx_matrix_dot(&serial, Q8, qstride, Q16, nq, qstride, X, r0, nrows, dim, xstride, m_ser, nrows);
    size_t bad = on;
    for (size_t i = on; i-- > 0;)
        if (m_amx[i] != m_ser[i]) bad = i;
    CHECK(bad == on, "matrix_dot dim=%zu nrows=%zu nq=%zu: [%zu] = %d, serial %d", dim, nrows, nq, bad,
          bad < on ? m_amx[bad] : 0, bad < on ? m_ser[bad] : 0);
    /* top-k, both metrics: the same heaps as the serial tier */
    for (int metric = 0; metric < 2; metric++) {
        const size_t k = 5;
        int32_t *hk[2];
        int64_t *hi[2];
        for (int t = 0; t < 2; t++) {
            hk[t] = malloc(nq * k * 4 + 4);
            hi[t] = malloc(nq * k * 8 + 8);
            pplx_heap_init(hk[t], hi[t], nq * k);
            pplx_scan_int8(t ? &serial : &amx, Q8, qstride, Q16, nq, qstride, X, 0, nrows, dim, xstride,
                           metric ? PPLX_METRIC_COSINE : PPLX_METRIC_DOT, metric ? qn : NULL, metric ? xn : NULL, k,
                           7, hk[t], hi[t]);
            for (size_t q = 0; q < nq; q++) pplx_heap_sort(hk[t] + q * k, hi[t] + q * k, k);
        }
        CHECK(!memcmp(hk[0], hk[1], nq * k * 4) && !memcmp(hi[0], hi[1], nq * k * 8),
              "scan_int8 %s dim=%zu nrows=%zu nq=%zu: heaps differ from serial", metric ? "cosine" : "dot", dim,
              nrows, nq);
        for (int t = 0; t < 2; t++) {
            free(hk[t]);
            free(hi[t]);
        }
    }
    CHECK(!amx_model.configured, "tiles left configured after the drivers");
    xfree(m_amx, 4);
    xfree(m_ser, 4);
    xfree(X, ox);
    xfree(Q8, 2);
    free(Q16);
    free(qn);
    free(xn);
}

static void test_drivers(void) {
    static const size_t dims[] = {1, 63, 64, 65, 200, 700};
    static const size_t rows[] = {1, 17, 600};
    static const size_t nqs[] = {1, 16, 17, 33};
    for (size_t di = 0; di < NELEM(dims); di++)
        for (size_t ri = 0; ri < NELEM(rows); ri++)
            for (size_t qi = 0; qi < NELEM(nqs); qi++)
                for (int padded = 0; padded < (rows[ri] * dims[di] <= 50000 ? 2 : 1); padded++)
                    test_drivers_one(dims[di], rows[ri], nqs[qi], padded);
}

int main(void) {
    signal(SIGABRT, on_fatal);
    setvbuf(stdout, NULL, _IOLBF, 0);
    const unsigned detected = pplx_isa_detected();
    if (!(detected >> PPLX_ISA_AMX & 1)) {
        printf("amx_model: the amx tier is not compiled in this build\n");
        return 1;
    }
    pplx_table_fill(&amx, PPLX_ISA_AMX);
    pplx_table_fill(&serial, PPLX_ISA_SERIAL);
    if (amx.i8_qblock != 16 || amx.dot_i8_block != pplx_dot_i8_block_amx) {
        printf("amx_model: the amx table does not use pplx_dot_i8_block_amx with i8_qblock 16\n");
        return 1;
    }
    test_model();
    test_blocks();
    test_drivers();
    printf("amx_model: %llu checks, %llu TDPBSSD, ", checks, amx_model.n_tdpbssd);
    if (failures) printf("%lu FAILED\n", failures);
    else printf("ok\n");
    return failures != 0;
}
