/* calibrate.h - time one kernel family's code on small in-cache workloads.
 *
 * The default kernel table takes each family from the tier that runs it
 * fastest on this machine (dispatch.h).  CPUID cannot tell which that is:
 * Zen 4 has the AVX-512 instructions but runs most 512-bit operations as two
 * 256-bit halves, and VPCOMPRESSB/VPERMB cost differently there than on
 * Intel, so a tier chosen by the instructions it has can lose to the one
 * below it.  So each distinct path of a family is timed here, on workloads
 * shaped like the package's own calls (rows of a 1024-dim response, 128-byte
 * binary codes, a block of queries against a tile of rows), and the choice is
 * made from those times (pplx_codec/_calibrate.py: the rounds, the statistic
 * and the rule are there; this file only runs and times one shape once).
 *
 * The data is in cache on purpose: it measures the code, which is what
 * differs between paths; a scan of a large database is paced by memory
 * whichever path reads it.  Each run is a few to a few tens of microseconds
 * on a current core, so a whole calibration stays far under 100 ms.  Inputs
 * are fixed pseudo-random data (valid base64 where it is decoded), the same
 * on every run: a measurement never depends on the data it happened to get.
 */
#ifndef PPLX_CALIBRATE_H
#define PPLX_CALIBRATE_H

#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "dispatch.h"

/* Workload sizes: 1024-dim rows (the 0.6b model's full size) and their
 * 128-byte codes; row counts chosen so each run is microseconds, not
 * nanoseconds (the clock's own cost stays under 1%). */
enum {
    PPLX_CAL_DIM = 1024,
    PPLX_CAL_CODE = 128,                   /* bytes of a 1024-bit code */
    PPLX_CAL_ROWS = 256,                   /* int8 rows and codes of a run */
    PPLX_CAL_SHORT = 172,                  /* base64 chars of one 128-byte code */
    PPLX_CAL_LONG = 1368,                  /* base64 chars of one 1024-dim int8 row */
    PPLX_CAL_BLOB = 65535,                 /* bytes of one long base64 string (decoded) */
    PPLX_CAL_QUERIES = 16,                 /* queries of the batched dot shape */
    PPLX_CAL_TEXT = 65536,                 /* bytes the JSON scanners run over */
    PPLX_CAL_SHAPES_MAX = 5
};

typedef struct pplx_cal {
    int8_t *rows;     /* PPLX_CAL_ROWS x DIM int8 */
    int16_t *rows16;  /* the first 256 rows widened, for the dot16 path */
    float *f32;       /* 64 x DIM floats: pack_f32 input */
    float *f32_out;   /* 64 x DIM floats: unpack_f32 / i8_to_f32 output */
    uint8_t *codes;   /* 4 x PPLX_CAL_ROWS codes of 128 bytes */
    uint8_t *u8_out;  /* PPLX_CAL_ROWS x DIM bytes: unpack_u8 output, base64 output */
    uint8_t *b64;     /* text: 512 short strings, then 64 long ones, then the blob */
    uint8_t *text;    /* JSON string content: base64 letters, no quote until the end */
    int16_t *q16;     /* PPLX_CAL_QUERIES x DIM */
    int32_t *out;     /* PPLX_CAL_QUERIES x PPLX_CAL_ROWS scores */
    uint64_t *qt;     /* the first 8 codes transposed (hamming8_filter's layout) */
    uint32_t *hrow;   /* hamming8_filter's kept rows: 4 x PPLX_CAL_ROWS */
    int32_t *hd;      /* and their distances: 8 per row (dot_i8t_filter's dots: 16 per row, 64 rows) */
    uint8_t *qt8;     /* the first 16 int8 rows as dot_i8t_filter's queries (transposed, biased) */
    int32_t *rowsum;  /* dot_i8t_filter's row sums: PPLX_CAL_ROWS */
    volatile uint64_t sink; /* keeps results that are only returned (sums, offsets) */
} pplx_cal;

static const int pplx_cal_nshapes[PPLX_FAM_COUNT] = {4, 5, 2, 2, 2, 2};

static void pplx_cal_free(pplx_cal *c) {
    if (!c) return;
    free(c->rows);
    free(c->rows16);
    free(c->f32);
    free(c->f32_out);
    free(c->codes);
    free(c->u8_out);
    free(c->b64);
    free(c->text);
    free(c->q16);
    free(c->out);
    free(c->qt);
    free(c->hrow);
    free(c->hd);
    free(c->qt8);
    free(c->rowsum);
    free(c);
}

/* NULL when out of memory. */
static pplx_cal *pplx_cal_new(void) {
    pplx_cal *c = (pplx_cal *)calloc(1, sizeof *c);
    if (!c) return NULL;
    const size_t nb64 = 512 * PPLX_CAL_SHORT + 64 * PPLX_CAL_LONG + pplx_b64_encoded_len(PPLX_CAL_BLOB);
    c->rows = (int8_t *)malloc((size_t)PPLX_CAL_ROWS * PPLX_CAL_DIM);
    c->rows16 = (int16_t *)malloc((size_t)PPLX_CAL_ROWS * PPLX_CAL_DIM * sizeof(int16_t));
    c->f32 = (float *)malloc((size_t)64 * PPLX_CAL_DIM * sizeof(float));
    c->f32_out = (float *)malloc((size_t)64 * PPLX_CAL_DIM * sizeof(float));
    c->codes = (uint8_t *)malloc((size_t)4 * PPLX_CAL_ROWS * PPLX_CAL_CODE);
    c->u8_out = (uint8_t *)malloc((size_t)PPLX_CAL_ROWS * PPLX_CAL_DIM);
    c->b64 = (uint8_t *)malloc(nb64);
    c->text = (uint8_t *)malloc(PPLX_CAL_TEXT + 1);
    c->q16 = (int16_t *)malloc((size_t)PPLX_CAL_QUERIES * PPLX_CAL_DIM * sizeof(int16_t));
    c->out = (int32_t *)malloc((size_t)PPLX_CAL_QUERIES * PPLX_CAL_ROWS * sizeof(int32_t));
    c->qt = (uint64_t *)malloc((size_t)PPLX_CAL_CODE * 8);
    c->hrow = (uint32_t *)malloc((size_t)4 * PPLX_CAL_ROWS * sizeof(uint32_t));
    c->hd = (int32_t *)malloc((size_t)4 * PPLX_CAL_ROWS * 8 * sizeof(int32_t));
    c->qt8 = (uint8_t *)malloc((size_t)PPLX_CAL_QUERIES * PPLX_CAL_DIM);
    c->rowsum = (int32_t *)malloc((size_t)PPLX_CAL_ROWS * sizeof(int32_t));
    if (!c->rows || !c->rows16 || !c->f32 || !c->f32_out || !c->codes || !c->u8_out || !c->b64 || !c->text ||
        !c->q16 || !c->out || !c->qt || !c->hrow || !c->hd || !c->qt8 || !c->rowsum) {
        pplx_cal_free(c);
        return NULL;
    }
    uint64_t x = 0x9E3779B97F4A7C15ull; /* xorshift64: the same data in every process */
    for (size_t i = 0; i < (size_t)PPLX_CAL_ROWS * PPLX_CAL_DIM; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        c->rows[i] = (int8_t)(x >> 32);
        c->rows16[i] = c->rows[i];
    }
    for (size_t i = 0; i < (size_t)64 * PPLX_CAL_DIM; i++) c->f32[i] = (float)c->rows[i] * 0.25f;
    memcpy(c->codes, c->rows, (size_t)4 * PPLX_CAL_ROWS * PPLX_CAL_CODE);
    for (size_t i = 0; i < (size_t)PPLX_CAL_QUERIES * PPLX_CAL_DIM; i++) c->q16[i] = c->rows[i];
    for (size_t q = 0; q < 8; q++)
        for (size_t j = 0; j < PPLX_CAL_CODE / 8; j++) memcpy(c->qt + 8 * j + q, c->codes + q * PPLX_CAL_CODE + 8 * j, 8);
    for (size_t q = 0; q < PPLX_CAL_QUERIES; q++) /* 16 queries: one fused group */
        for (size_t j = 0; j < PPLX_CAL_DIM; j++)
            c->qt8[64 * (j / 4) + 4 * q + j % 4] = (uint8_t)(c->rows[q * PPLX_CAL_DIM + j] + 128);
    /* base64 of the rows: short strings of codes, long ones of int8 rows, one blob */
    uint8_t *t = c->b64;
    for (size_t i = 0; i < 512; i++) t += pplx_b64_encode_serial(c->codes + i * PPLX_CAL_CODE, PPLX_CAL_CODE, t);
    for (size_t i = 0; i < 64; i++) t += pplx_b64_encode_serial((const uint8_t *)c->rows + i * PPLX_CAL_DIM, PPLX_CAL_DIM, t);
    pplx_b64_encode_serial((const uint8_t *)c->rows, PPLX_CAL_BLOB, t);
    for (size_t i = 0; i < PPLX_CAL_TEXT; i++) c->text[i] = c->b64[i % (512 * PPLX_CAL_SHORT)];
    c->text[PPLX_CAL_TEXT] = '"';
    return c;
}

/* The int8 x int8 dot of nq queries against nrows rows the way the scans
 * (topk.h) run it for this table: 16 queries through the fused kernel where
 * the table has one (the row sums computed, as for a tile's first group),
 * else the int8 kernel in groups of i8_qblock
 * queries where the tier has one, else int16 queries four at a time (on an
 * int16 copy of the tile when more than four queries share it). */
static void pplx_cal_dot(const pplx_table *T, pplx_cal *c, size_t nq, size_t nrows) {
    const size_t dim = PPLX_CAL_DIM;
    if (T->dot_i8t_filter && nq == PPLX_CAL_QUERIES) { /* the fused scan's group of 16, bounds no dot passes */
        static const int32_t none[16] = {INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX,
                                         INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX,
                                         INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX};
        c->sink += T->dot_i8t_filter(c->qt8, c->rows, nrows, dim, dim, c->rowsum, 0, none, NULL, NULL, c->hrow, c->hd);
        return;
    }
    if (T->dot_i8_block) {
        for (size_t g = 0; g < nq; g += T->i8_qblock) {
            size_t ng = nq - g < T->i8_qblock ? nq - g : T->i8_qblock;
            T->dot_i8_block(c->rows + g * dim, ng, dim, c->rows, nrows, dim, dim, c->out + g * nrows, nrows);
        }
        return;
    }
    for (size_t g = 0; g < nq; g += 4) {
        size_t ng = nq - g < 4 ? nq - g : 4;
        if (nq > 4)
            T->dot16_block(c->q16 + g * dim, ng, dim, c->rows16, nrows, dim, dim, c->out + g * nrows, nrows);
        else
            T->dot_block(c->q16 + g * dim, ng, dim, c->rows, nrows, dim, dim, c->out + g * nrows, nrows);
    }
}

/* Run shape `shape` of family `f` once with table T; seconds it took, or -1
 * for a shape the family does not have. */
static double pplx_cal_run(const pplx_table *T, pplx_cal *c, int f, int shape) {
    if (f < 0 || f >= PPLX_FAM_COUNT || shape < 0 || shape >= pplx_cal_nshapes[f]) return -1.0;
    const size_t dim = PPLX_CAL_DIM, cw = PPLX_CAL_CODE;
    size_t err = 0, acc = 0;
    double t0 = pplx_now_seconds();
    switch (f * PPLX_CAL_SHAPES_MAX + shape) {
    /* base64: each response row is one string; binary rows are short */
    case PPLX_FAM_BASE64 * PPLX_CAL_SHAPES_MAX + 0:
        for (size_t i = 0; i < 512; i++)
            acc += (size_t)T->b64_decode(c->b64 + i * PPLX_CAL_SHORT, PPLX_CAL_SHORT, c->u8_out + i * cw, &err);
        break;
    case PPLX_FAM_BASE64 * PPLX_CAL_SHAPES_MAX + 1: {
        const uint8_t *s = c->b64 + 512 * PPLX_CAL_SHORT;
        for (size_t i = 0; i < 64; i++)
            acc += (size_t)T->b64_decode(s + i * PPLX_CAL_LONG, PPLX_CAL_LONG, c->u8_out + i * dim, &err);
        break;
    }
    case PPLX_FAM_BASE64 * PPLX_CAL_SHAPES_MAX + 2:
        acc += (size_t)T->b64_decode(c->b64 + 512 * PPLX_CAL_SHORT + 64 * PPLX_CAL_LONG,
                                     pplx_b64_encoded_len(PPLX_CAL_BLOB), c->u8_out, &err);
        break;
    case PPLX_FAM_BASE64 * PPLX_CAL_SHAPES_MAX + 3:
        acc += T->b64_encode((const uint8_t *)c->rows, PPLX_CAL_BLOB, c->u8_out);
        break;
    /* bits: unpacking and packing rows of 1024 dims, and bit-order reversal */
    case PPLX_FAM_BITS * PPLX_CAL_SHAPES_MAX + 0:
        for (size_t i = 0; i < PPLX_CAL_ROWS; i++) T->unpack_u8(c->codes + i * cw, dim, c->u8_out + i * dim, 0);
        break;
    case PPLX_FAM_BITS * PPLX_CAL_SHAPES_MAX + 1:
        for (size_t i = 0; i < 64; i++) T->unpack_f32(c->codes + i * cw, dim, c->f32_out + i * dim, 0);
        break;
    case PPLX_FAM_BITS * PPLX_CAL_SHAPES_MAX + 2:
        for (size_t i = 0; i < PPLX_CAL_ROWS; i++) T->pack_i8(c->rows + i * dim, dim, c->u8_out + i * cw, 0);
        break;
    case PPLX_FAM_BITS * PPLX_CAL_SHAPES_MAX + 3:
        for (size_t i = 0; i < 64; i++) T->pack_f32(c->f32 + i * dim, dim, c->u8_out + i * cw, 0);
        break;
    case PPLX_FAM_BITS * PPLX_CAL_SHAPES_MAX + 4:
        T->reverse_bits(c->codes, 4 * PPLX_CAL_ROWS * cw, c->u8_out);
        break;
    /* int8: norms and unit float rows */
    case PPLX_FAM_INT8 * PPLX_CAL_SHAPES_MAX + 0:
        for (size_t i = 0; i < PPLX_CAL_ROWS; i++) acc += (size_t)T->sumsq_i8(c->rows + i * dim, dim);
        break;
    case PPLX_FAM_INT8 * PPLX_CAL_SHAPES_MAX + 1:
        for (size_t i = 0; i < 64; i++) T->i8_to_f32(c->rows + i * dim, dim, 3.0f, c->f32_out + i * dim);
        break;
    /* hamming: 8 queries (batched search, as the scans run them: the fused
     * kernel where the table has one, with bounds no row passes, as after the
     * first tiles; else two blocks of 4) and one query */
    case PPLX_FAM_HAMMING * PPLX_CAL_SHAPES_MAX + 0:
        if (T->hamming8_filter) {
            static const int32_t none[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            acc += T->hamming8_filter(c->qt, cw / 8, c->codes, 4 * PPLX_CAL_ROWS, cw, none, c->hrow, c->hd);
        } else {
            T->hamming_block(c->codes, 4, cw, c->codes, 4 * PPLX_CAL_ROWS, cw, cw, c->out, 4 * PPLX_CAL_ROWS);
            T->hamming_block(c->codes + 4 * cw, 4, cw, c->codes, 4 * PPLX_CAL_ROWS, cw, cw, c->out,
                             4 * PPLX_CAL_ROWS);
        }
        break;
    case PPLX_FAM_HAMMING * PPLX_CAL_SHAPES_MAX + 1:
        T->hamming_block(c->codes, 1, cw, c->codes, 4 * PPLX_CAL_ROWS, cw, cw, c->out, 4 * PPLX_CAL_ROWS);
        break;
    /* dot: 16 queries against a tile (batched search) and one query */
    case PPLX_FAM_DOT * PPLX_CAL_SHAPES_MAX + 0:
        pplx_cal_dot(T, c, PPLX_CAL_QUERIES, 64);
        break;
    case PPLX_FAM_DOT * PPLX_CAL_SHAPES_MAX + 1:
        pplx_cal_dot(T, c, 1, PPLX_CAL_ROWS);
        break;
    /* json: the runs of plain bytes between the decoder's stops */
    case PPLX_FAM_JSON * PPLX_CAL_SHAPES_MAX + 0:
        acc += pplx_json_special(pplx_json_tier(T->fam[PPLX_FAM_JSON]), c->text, PPLX_CAL_TEXT + 1);
        break;
    case PPLX_FAM_JSON * PPLX_CAL_SHAPES_MAX + 1:
        acc += pplx_json_quote(pplx_json_tier(T->fam[PPLX_FAM_JSON]), c->text, PPLX_CAL_TEXT + 1);
        break;
    }
    double t1 = pplx_now_seconds();
    c->sink += acc + err;
    return t1 - t0;
}

#endif
