# Declarations of the kernel table (simd/kernels.h) and the one way every
# extension reaches it: a pointer to the active-table pointer owned by
# pplx_codec._dispatch, handed over once through a capsule at import.
from libc.stdint cimport int8_t, uint8_t, int16_t, int32_t, int64_t
from cpython.pycapsule cimport PyCapsule_GetPointer

cdef extern from "simd/kernels.h" nogil:
    enum:
        PPLX_B64_BADCHAR
        PPLX_B64_BADPAD
        PPLX_B64_BADLEN
        PPLX_B64_NONCANON
        PPLX_FAM_BASE64
        PPLX_FAM_BITS
        PPLX_FAM_INT8
        PPLX_FAM_HAMMING
        PPLX_FAM_DOT
        PPLX_FAM_JSON
        PPLX_FAM_COUNT
        PPLX_ISA_MIXED
    ptrdiff_t pplx_b64_decoded_len(const uint8_t *s, size_t n)
    size_t pplx_b64_encoded_len(size_t n)
    ctypedef struct pplx_table:
        int isa
        int fam[6]  # PPLX_FAM_COUNT: the tier whose code each family runs
        ptrdiff_t (*b64_decode)(const uint8_t *s, size_t n, uint8_t *d, size_t *err) noexcept nogil
        size_t (*b64_encode)(const uint8_t *s, size_t n, uint8_t *d) noexcept nogil
        void (*pack_i8)(const int8_t *x, size_t n, uint8_t *d, int msb) noexcept nogil
        void (*pack_b8)(const uint8_t *x, size_t n, uint8_t *d, int msb) noexcept nogil
        void (*pack_f32)(const float *x, size_t n, uint8_t *d, int msb) noexcept nogil
        void (*pack_f64)(const double *x, size_t n, uint8_t *d, int msb) noexcept nogil
        void (*unpack_u8)(const uint8_t *s, size_t n, uint8_t *y, int msb) noexcept nogil
        void (*unpack_i8)(const uint8_t *s, size_t n, int8_t *y, int msb) noexcept nogil
        void (*unpack_f32)(const uint8_t *s, size_t n, float *y, int msb) noexcept nogil
        void (*reverse_bits)(const uint8_t *s, size_t n, uint8_t *d) noexcept nogil
        int64_t (*sumsq_i8)(const int8_t *x, size_t n) noexcept nogil
        void (*i8_to_f32)(const int8_t *x, size_t n, float div, float *y) noexcept nogil
        void (*hamming_block)(const uint8_t *Q, size_t nq, size_t qstride, const uint8_t *X, size_t nrows,
                              size_t w, size_t xstride, int32_t *out, size_t ostride) noexcept nogil
        void (*dot_block)(const int16_t *Q16, size_t nq, size_t qstride, const int8_t *X, size_t nrows,
                          size_t dim, size_t xstride, int32_t *out, size_t ostride) noexcept nogil
        void (*dot16_block)(const int16_t *Q16, size_t nq, size_t qstride, const int16_t *X16, size_t nrows,
                            size_t dim, size_t xstride, int32_t *out, size_t ostride) noexcept nogil

cdef inline const pplx_table** load_table() except NULL:
    from pplx_codec._dispatch import _table_capsule
    return <const pplx_table**>PyCapsule_GetPointer(_table_capsule(), b"pplx_codec._dispatch.table")


cdef inline str b64_error_text(ptrdiff_t code, size_t pos, uint8_t ch, size_t n, bint in_embedding):
    """The words for a decoder error code: pos the offending offset, ch the
    character there, n the length of the string (for PPLX_B64_BADLEN).
    in_embedding: StreamDecoder's wording, after its "invalid base64 in
    'embedding': " ("invalid character", "data after '=' padding", and no
    "(non-canonical encoding)"); otherwise the wording after "invalid
    base64: " of pplx_codec.b64.  Both are kept as they were (callers and
    tests match them); they differ in those three phrases only."""
    if code == PPLX_B64_BADLEN:
        return f"length {n} is not a multiple of 4"
    if code == PPLX_B64_BADPAD:
        return f"data {'' if in_embedding else 'character '}after '=' padding at offset {pos}"
    if code == PPLX_B64_NONCANON:
        return f"non-zero bits before '=' padding at offset {pos}" + ("" if in_embedding else " (non-canonical encoding)")
    if ch == c'=':
        return f"unexpected '=' padding at offset {pos}"
    return f"invalid {'' if in_embedding else 'base64 '}character {chr(ch)!r} at offset {pos}"


cdef inline str b64_error_message(ptrdiff_t code, size_t pos, const uint8_t *s, size_t n):
    """The message for a decoder error code (pos: the offending offset in s)."""
    cdef bint at_char = code != PPLX_B64_BADLEN and code != PPLX_B64_BADPAD and code != PPLX_B64_NONCANON
    return b64_error_text(code, pos, s[pos] if at_char else 0, n, False)
