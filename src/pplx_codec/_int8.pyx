# int8 row kernels: L2 norms and float32 conversion.  Checks in _arrays.pxd,
# docstrings in pplx_codec.vectors.
cimport numpy as cnp
from libc.math cimport sqrt
from libc.stdint cimport int8_t
from libc.string cimport memset
from ._kernels cimport pplx_table, load_table
from ._arrays cimport checked, row_geometry, out_array, out_rows, disjoint_array

cnp.import_array()
cdef const pplx_table **T = load_table()


def norms(matrix, out=None):
    cdef cnp.ndarray a = checked(matrix, "matrix", "int8", 2,
                                 cnp.NPY_INT8)
    cdef Py_ssize_t n, dim, rs, i
    row_geometry(a, "matrix", &n, &dim, &rs)
    # one 1-D vector -> a 0-d result, like np.linalg.norm
    cdef cnp.ndarray o = out_array(out, cnp.NPY_FLOAT32, 0, 0) if cnp.PyArray_NDIM(a) == 1 \
        else out_array(out, cnp.NPY_FLOAT32, 1, n)
    disjoint_array(out, o, a, "matrix")
    cdef const char *src = <const char *>cnp.PyArray_DATA(a)
    cdef float *dst = <float *>cnp.PyArray_DATA(o)
    with nogil:
        for i in range(n):
            dst[i] = <float>sqrt(<double>T[0].sumsq_i8(<const int8_t *>(src + i * rs), dim))
    return o


def to_float32(matrix, bint normalize, out=None):
    cdef cnp.ndarray a = checked(matrix, "matrix", "int8", 2,
                                 cnp.NPY_INT8)
    cdef Py_ssize_t n, dim, rs, i
    row_geometry(a, "matrix", &n, &dim, &rs)
    cdef cnp.ndarray o = out_rows(out, cnp.PyArray_NDIM(a) == 1, n, dim, cnp.NPY_FLOAT32)
    disjoint_array(out, o, a, "matrix")
    cdef const char *src = <const char *>cnp.PyArray_DATA(a)
    cdef float *dst = <float *>cnp.PyArray_DATA(o)
    cdef float div
    with nogil:
        for i in range(n):
            div = <float>sqrt(<double>T[0].sumsq_i8(<const int8_t *>(src + i * rs), dim)) if normalize else 1.0
            if div == 0:  # an all-zero row has no direction: keep it zero, not NaN
                memset(dst + i * dim, 0, dim * sizeof(float))
            else:
                T[0].i8_to_f32(<const int8_t *>(src + i * rs), dim, div, dst + i * dim)
    return o
