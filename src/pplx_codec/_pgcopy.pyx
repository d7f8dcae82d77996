# PostgreSQL's COPY ... (FORMAT BINARY) rows for a pgvector table, assembled
# from numpy buffers in one pass without the GIL.  The layout of a row, as the
# server reads it (src/backend/commands/copyfromparse.c; pgvector's
# halfvec_recv / vector_recv / bit_recv):
#
#   int16 field count, then per field int32 byte length and the bytes:
#   id        bigint: 8 bytes, big-endian
#   embedding halfvec: int16 dim, int16 unused (0), dim x float16 BE
#             vector:  int16 dim, int16 unused (0), dim x float32 BE
#   code      bit(n):  int32 bit length, n / 8 bytes as stored
#   text      text:    the UTF-8 bytes
#
# The payload opens with the 19-byte header (signature, flags, extension
# length) and ends with the int16 -1 trailer, when asked.  Every int8 value is
# exact as a half and as a float, so a 256-entry table of their big-endian
# bytes converts a vector with one lookup per component.  The per-row UTF-8 of
# the texts comes from CPython (cached on the str; no copy for ASCII): the
# only step that needs the GIL, and each text's bytes are checked there for
# NUL, which PostgreSQL's text cannot hold.
cimport numpy as cnp
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int8_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memchr, memcpy

import numpy as np

cnp.import_array()

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object, Py_ssize_t *) except NULL

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
TRAILER = b"\xff\xff"

#: vector_type codes of encode_rows
NONE, HALFVEC, VECTOR = 0, 1, 2

# int8 value v at [v + 128]: its bytes as stored in the payload (big-endian)
cdef uint16_t HALF[256]
cdef uint32_t SINGLE[256]


cdef void _tables():
    h = np.arange(-128, 128).astype(">f2").view(np.uint16)
    f = np.arange(-128, 128).astype(">f4").view(np.uint32)
    cdef int i
    for i in range(256):
        HALF[i] = h[i]
        SINGLE[i] = f[i]


_tables()


cdef inline uint8_t *put16(uint8_t *p, uint16_t v) noexcept nogil:
    p[0] = v >> 8
    p[1] = v & 0xFF
    return p + 2


cdef inline uint8_t *put32(uint8_t *p, uint32_t v) noexcept nogil:
    p[0] = v >> 24
    p[1] = (v >> 16) & 0xFF
    p[2] = (v >> 8) & 0xFF
    p[3] = v & 0xFF
    return p + 4


cdef inline uint8_t *put64(uint8_t *p, uint64_t v) noexcept nogil:
    p = put32(p, <uint32_t>(v >> 32))
    return put32(p, <uint32_t>v)


cdef cnp.ndarray _rows(a, str name, int typenum, Py_ssize_t n):
    if not isinstance(a, np.ndarray) or cnp.PyArray_TYPE(a) != typenum or cnp.PyArray_NDIM(a) != 2:
        raise TypeError(f"{name} must be a 2-d {np.dtype(cnp.PyArray_DescrFromType(typenum)).name} array")
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError(f"{name} must be C-contiguous")
    if cnp.PyArray_DIM(a, 0) != n:
        raise ValueError(f"{name} has {cnp.PyArray_DIM(a, 0)} rows, the texts {n}")
    return a


def encode_rows(int64_t first_id, texts, int8=None, int vector_type=HALFVEC, bits=None, Py_ssize_t dims=0,
                bint header=True, bint trailer=True):
    """The COPY BINARY payload of rows ``first_id ..``: (id, [embedding], [code], text)."""
    texts = list(texts)  # holds each str while its UTF-8 is read without the GIL
    cdef Py_ssize_t n = len(texts), d = 0, w = 0, i, ln, total, fields = 2
    cdef cnp.ndarray v = None, b = None
    if vector_type not in (HALFVEC, VECTOR):
        raise ValueError(f"vector_type must be {HALFVEC} (halfvec) or {VECTOR} (vector), got {vector_type}")
    if int8 is not None:
        v = _rows(int8, "int8", cnp.NPY_INT8, n)
        d = cnp.PyArray_DIM(v, 1)
        if d < 1 or d > 16000:
            raise ValueError(f"int8 rows must have 1..16000 dimensions (pgvector's limit), got {d}")
        fields += 1
    if bits is not None:
        b = _rows(bits, "bits", cnp.NPY_UINT8, n)
        w = cnp.PyArray_DIM(b, 1)
        if dims <= 0 or (dims + 7) // 8 != w:
            raise ValueError(f"dims {dims} does not match codes of {w} bytes")
        fields += 1
    cdef bint half = vector_type == HALFVEC
    cdef Py_ssize_t vbytes = 4 + d * (2 if half else 4)
    cdef Py_ssize_t fixed = 2 + 12 + 4 + (4 + vbytes if v is not None else 0) + (8 + w if b is not None else 0)
    cdef const char **tp = <const char **>PyMem_Malloc(max(n, 1) * sizeof(char *))
    cdef Py_ssize_t *tl = <Py_ssize_t *>PyMem_Malloc(max(n, 1) * sizeof(Py_ssize_t))
    if tp == NULL or tl == NULL:
        PyMem_Free(tp)
        PyMem_Free(tl)
        raise MemoryError()
    cdef const char *s
    cdef uint8_t *p
    cdef const int8_t *vp
    cdef const uint8_t *bp
    cdef Py_ssize_t j
    cdef bytes out
    try:
        total = (19 if header else 0) + (2 if trailer else 0) + n * fixed
        for i in range(n):
            t = texts[i]
            if type(t) is not str:
                raise TypeError(f"row {first_id + i}: text must be a str, got {type(t).__name__}")
            try:
                s = PyUnicode_AsUTF8AndSize(t, &ln)
            except UnicodeEncodeError as e:
                raise ValueError(f"row {first_id + i}: PostgreSQL text cannot hold this text "
                                 f"(a lone surrogate {t[e.start]!r} at character {e.start})") from None
            if ln and memchr(s, 0, ln) != NULL:
                raise ValueError(f"row {first_id + i}: PostgreSQL text cannot hold this text "
                                 f"(a NUL character at byte {<const char *>memchr(s, 0, ln) - s})")
            if ln > 0x3FFFFFFF:
                raise ValueError(f"row {first_id + i}: text of {ln} bytes is over PostgreSQL's 1 GB limit")
            tp[i] = s
            tl[i] = ln
            total += ln
        out = PyBytes_FromStringAndSize(NULL, total)
        p = <uint8_t *>PyBytes_AS_STRING(out)
        vp = <const int8_t *>cnp.PyArray_DATA(v) if v is not None else NULL
        bp = <const uint8_t *>cnp.PyArray_DATA(b) if b is not None else NULL
        with nogil:
            if header:
                memcpy(p, b"PGCOPY\n\xff\r\n\x00", 11)
                p = put32(put32(p + 11, 0), 0)
            for i in range(n):
                p = put16(p, <uint16_t>fields)
                p = put64(put32(p, 8), <uint64_t>(first_id + i))
                if vp != NULL:
                    p = put16(put16(put32(p, <uint32_t>vbytes), <uint16_t>d), 0)
                    if half:
                        for j in range(d):
                            memcpy(p, &HALF[<uint8_t>(vp[j] + 128)], 2)
                            p += 2
                    else:
                        for j in range(d):
                            memcpy(p, &SINGLE[<uint8_t>(vp[j] + 128)], 4)
                            p += 4
                    vp += d
                if bp != NULL:
                    p = put32(put32(p, <uint32_t>(4 + w)), <uint32_t>dims)
                    memcpy(p, bp, w)
                    p += w
                    bp += w
                p = put32(p, <uint32_t>tl[i])
                if tl[i]:
                    memcpy(p, tp[i], tl[i])
                    p += tl[i]
            if trailer:
                p = put16(p, 0xFFFF)
        return out
    finally:
        PyMem_Free(tp)
        PyMem_Free(tl)
