# Bit packing entry points: checks (see _arrays.pxd), then the table's kernels
# row by row without the GIL.  Rows whose values fill whole bytes and sit
# back to back go to the kernel as one run, so small dims do not pay a call
# per row.  Docstrings and bit-order parsing live in pplx_codec.bits.
cimport numpy as cnp
from libc.stdint cimport int8_t, uint8_t
from ._kernels cimport pplx_table, load_table
from ._arrays cimport checked, row_geometry, out_array, out_rows, disjoint_array

cnp.import_array()
cdef const pplx_table **T = load_table()


def pack(x, bint msb, out=None):
    cdef cnp.ndarray a = checked(x, "x", "float32, float64, int8 or bool", 2,
                                 cnp.NPY_FLOAT32, cnp.NPY_FLOAT64, cnp.NPY_INT8, cnp.NPY_BOOL)
    cdef Py_ssize_t n, dim, rs, i
    row_geometry(a, "x", &n, &dim, &rs)
    cdef Py_ssize_t width = (dim + 7) // 8
    cdef cnp.ndarray o = out_rows(out, cnp.PyArray_NDIM(a) == 1, n, width, cnp.NPY_UINT8)
    disjoint_array(out, o, a, "x")
    cdef const char *src = <const char *>cnp.PyArray_DATA(a)
    cdef uint8_t *dst = <uint8_t *>cnp.PyArray_DATA(o)
    cdef int t = cnp.PyArray_TYPE(a)
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(a)
    if dim % 8 == 0 and rs == dim * item:  # one run over all rows
        dim *= n
        n = 1 if n else 0
    with nogil:
        for i in range(n):
            if t == cnp.NPY_FLOAT32:
                T[0].pack_f32(<const float *>(src + i * rs), dim, dst + i * width, msb)
            elif t == cnp.NPY_FLOAT64:
                T[0].pack_f64(<const double *>(src + i * rs), dim, dst + i * width, msb)
            elif t == cnp.NPY_INT8:
                T[0].pack_i8(<const int8_t *>(src + i * rs), dim, dst + i * width, msb)
            else:  # bool: any non-zero byte is True, as numpy reads it
                T[0].pack_b8(<const uint8_t *>(src + i * rs), dim, dst + i * width, msb)
    return o


def unpack(packed, dim, bint msb, int typenum, out=None):
    """typenum: NPY_UINT8 (0/1), NPY_INT8 (-1/+1) or NPY_FLOAT32 (-1/+1)."""
    cdef cnp.ndarray a = checked(packed, "packed", "uint8", 2,
                                 cnp.NPY_UINT8)
    cdef Py_ssize_t n, width, rs, i, d
    row_geometry(a, "packed", &n, &width, &rs)
    if dim is None:
        d = 8 * width
    else:
        d = dim
        if d < 0 or d > 8 * width:
            raise ValueError(f"dim must be in 0..{8 * width} for codes of {width} bytes, got {d}")
    cdef cnp.ndarray o = out_rows(out, cnp.PyArray_NDIM(a) == 1, n, d, typenum)
    disjoint_array(out, o, a, "packed")
    cdef const uint8_t *src = <const uint8_t *>cnp.PyArray_DATA(a)
    cdef char *dst = <char *>cnp.PyArray_DATA(o)
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(o), orow = d * item
    if d == 8 * width and rs == width:  # one run over all rows
        d *= n
        n = 1 if n else 0
    with nogil:
        for i in range(n):
            if typenum == cnp.NPY_UINT8:
                T[0].unpack_u8(src + i * rs, d, <uint8_t *>(dst + i * orow), msb)
            elif typenum == cnp.NPY_INT8:
                T[0].unpack_i8(src + i * rs, d, <int8_t *>(dst + i * orow), msb)
            else:
                T[0].unpack_f32(src + i * rs, d, <float *>(dst + i * orow), msb)
    return o


def reverse(packed, out=None):
    cdef cnp.ndarray a = checked(packed, "packed", "uint8", 2,
                                 cnp.NPY_UINT8)
    cdef Py_ssize_t n, width, rs, i
    row_geometry(a, "packed", &n, &width, &rs)
    cdef cnp.ndarray o = out_rows(out, cnp.PyArray_NDIM(a) == 1, n, width, cnp.NPY_UINT8)
    # byte i of the output depends on byte i of the input only: in place is fine
    disjoint_array(out, o, a, "packed", True)
    cdef const uint8_t *src = <const uint8_t *>cnp.PyArray_DATA(a)
    cdef uint8_t *dst = <uint8_t *>cnp.PyArray_DATA(o)
    cdef Py_ssize_t ow = width
    if rs == width:
        width *= n
        n = 1 if n else 0
    with nogil:
        for i in range(n):
            T[0].reverse_bits(src + i * rs, width, dst + i * ow)
    return o
