/* kernels.h - the signatures every ISA implements (the dispatch table type).
 * Shared by the _dispatch extension, which fills it, and the Cython modules,
 * which call through it.  All kernels are pure: no allocation, no Python. */
#ifndef PPLX_KERNELS_H
#define PPLX_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Return codes of the decoders (bytes written when >= 0). */
enum {
    PPLX_B64_BADCHAR = -1,  /* a char outside the alphabet (or '=' too early) */
    PPLX_B64_BADPAD = -2,   /* '=' followed by a data char in the last quad */
    PPLX_B64_BADLEN = -3,   /* length is not a multiple of 4 */
    PPLX_B64_NONCANON = -4  /* the bits dropped by padding are not zero */
};

/* Size a strict decode will produce, or -1 when n is not a multiple of 4.
 * Only sizes the output: the decoder itself validates every char. */
static inline ptrdiff_t pplx_b64_decoded_len(const uint8_t *s, size_t n) {
    if (n % 4) return -1;
    if (n == 0) return 0;
    size_t pad = (s[n - 1] == '=') + (s[n - 1] == '=' && s[n - 2] == '=');
    return (ptrdiff_t)(n / 4 * 3 - pad);
}

static inline size_t pplx_b64_encoded_len(size_t n) { return (n + 2) / 3 * 4; }

/* Kernel families: the groups of entries below that are chosen together.  A
 * tier's table takes every family from that tier (or the tier it extends);
 * the default table takes each family from the path measured fastest on this
 * machine (pplx_codec._dispatch / _calibrate.py).  PPLX_FAM_JSON has no entry
 * here: the streaming decoder's byte scanners follow fam[PPLX_FAM_JSON]
 * (json/json.h). */
enum pplx_family {
    PPLX_FAM_BASE64 = 0, /* b64_decode, b64_encode */
    PPLX_FAM_BITS,       /* pack_*, unpack_*, reverse_bits */
    PPLX_FAM_INT8,       /* sumsq_i8, i8_to_f32 */
    PPLX_FAM_HAMMING,    /* hamming_block, hamming8_filter */
    PPLX_FAM_DOT,        /* dot_block, dot16_block, i8_qblock, dot_i8_block, dot_i8t_filter */
    PPLX_FAM_JSON,       /* the JSON byte scanners */
    PPLX_FAM_COUNT
};

/* isa of a table that mixes tiers family by family (the default one). */
#define PPLX_ISA_MIXED (-1)

typedef struct pplx_table {
    int isa;                  /* the tier of a one-tier table, or PPLX_ISA_MIXED */
    int fam[PPLX_FAM_COUNT];  /* the tier whose code each family runs (enum pplx_isa) */
    /* base64: decode returns bytes written or a PPLX_B64_* error (offset in *err) */
    ptrdiff_t (*b64_decode)(const uint8_t *s, size_t n, uint8_t *d, size_t *err);
    size_t (*b64_encode)(const uint8_t *s, size_t n, uint8_t *d);
    /* bits: n values <-> ceil(n / 8) bytes, msb selects the bit order */
    void (*pack_i8)(const int8_t *x, size_t n, uint8_t *d, int msb);
    void (*pack_b8)(const uint8_t *x, size_t n, uint8_t *d, int msb); /* bool bytes: bit = byte != 0 */
    void (*pack_f32)(const float *x, size_t n, uint8_t *d, int msb);
    void (*pack_f64)(const double *x, size_t n, uint8_t *d, int msb);
    void (*unpack_u8)(const uint8_t *s, size_t n, uint8_t *y, int msb);
    void (*unpack_i8)(const uint8_t *s, size_t n, int8_t *y, int msb);
    void (*unpack_f32)(const uint8_t *s, size_t n, float *y, int msb);
    void (*reverse_bits)(const uint8_t *s, size_t n, uint8_t *d);
    /* int8 rows */
    int64_t (*sumsq_i8)(const int8_t *x, size_t n);
    void (*i8_to_f32)(const int8_t *x, size_t n, float div, float *y);
    /* similarity blocks: 1 <= nq <= 4 queries x nrows rows -> out[q * ostride + r]
     * (any other nq writes nothing, in every tier) */
    void (*hamming_block)(const uint8_t *Q, size_t nq, size_t qstride, const uint8_t *X, size_t nrows, size_t w,
                          size_t xstride, int32_t *out, size_t ostride);
    /* Eight queries at once with the top-k test fused (optional: NULL in tiers without one; the scans then
     * use hamming_block).  Qt holds the queries transposed, word j (8 bytes) of query i at Qt[8 * j + i]; rows
     * are their first 8 * nw bytes.  For each row r < nrows in increasing order whose distance d[i] to some
     * query is below worst[i]: hrow[h] = r and hd[8 * h + i] = d[i] for all 8 i; returns the number of such
     * rows (at most nrows).  The reference is pplx_hamming8_filter_serial (hamming/serial.h). */
    size_t (*hamming8_filter)(const uint64_t *Qt, size_t nw, const uint8_t *X, size_t nrows, size_t xstride,
                              const int32_t *worst, uint32_t *hrow, int32_t *hd);
    void (*dot_block)(const int16_t *Q16, size_t nq, size_t qstride, const int8_t *X, size_t nrows, size_t dim,
                      size_t xstride, int32_t *out, size_t ostride);
    void (*dot16_block)(const int16_t *Q16, size_t nq, size_t qstride, const int16_t *X16, size_t nrows,
                        size_t dim, size_t xstride, int32_t *out, size_t ostride);
    /* int8 queries as stored x int8 rows, 1 <= nq <= i8_qblock (<= PPLX_QBLOCK_MAX) queries per call (any
     * other nq writes nothing).  For tiers whose instructions multiply int8 by int8 (VNNI, AMX, SDOT):
     * when set, the scans call it for every group of i8_qblock queries instead of dot_block/dot16_block
     * (no int16 copy of queries or tiles).  NULL and 0 in tiers without one. */
    size_t i8_qblock;
    void (*dot_i8_block)(const int8_t *Q, size_t nq, size_t qstride, const int8_t *X, size_t nrows, size_t dim,
                         size_t xstride, int32_t *out, size_t ostride);
    /* Sixteen int8 queries at once with the top-k test fused (optional: NULL in tiers without one; the scans
     * then use the kernels above).  Qt: the queries transposed and biased (dot/serial.h says the layout);
     * rowsum: the rows' sums, computed into it when !sums_known; xn NULL: keep a row where some lane's dot
     * d > lim[i], else where !((float)d < flim[i] * xn[r]); hrow/hd as hamming8_filter's, 16 per row.
     * The reference is pplx_dot_i8t_filter_serial (dot/serial.h). */
    size_t (*dot_i8t_filter)(const uint8_t *Qt, const int8_t *X, size_t nrows, size_t dim, size_t xstride,
                             int32_t *rowsum, int sums_known, const int32_t *lim, const float *flim, const float *xn,
                             uint32_t *hrow, int32_t *hd);
} pplx_table;

/* The largest row length whose int8 dot products cannot overflow int32
 * (|x y| <= 2^14: 131071 of them sum below 2^31). */
#define PPLX_DOT_MAX_DIM ((size_t)131071)

/* The most queries a dot_i8_block call takes (sizes the scans' score buffer). */
#define PPLX_QBLOCK_MAX 16

#endif
