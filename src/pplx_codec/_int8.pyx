# int8 row kernels: L2 norms, float32 conversion, and unit-length rows as lists of floats.  Checks in _arrays.pxd,
# docstrings in pplx_codec.vectors.
cimport numpy as cnp
from cpython.float cimport PyFloat_FromDouble
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
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


def unit_lists(matrix):
    # to_float32(matrix, True).tolist(), value for value, for 2-D rows.  A row of
    # int8 values has at most 256 distinct floats: each is made once per row (by
    # the same kernel, from a row of the 256 possible values) and shared by the
    # row's list, so a 1024-dimension row costs at most 256 float objects
    # instead of 1024 (their allocation and freeing is nearly all the time of
    # tolist()).  Floats are immutable: sharing them is invisible.
    cdef cnp.ndarray a = checked(matrix, "matrix", "int8", 2, cnp.NPY_INT8)
    if cnp.PyArray_NDIM(a) != 2:
        raise ValueError(f"matrix must be 2-D (rows), got {cnp.PyArray_NDIM(a)} dimension(s)")
    cdef Py_ssize_t n, dim, rs, i, j
    row_geometry(a, "matrix", &n, &dim, &rs)
    cdef const int8_t *src = <const int8_t *>cnp.PyArray_DATA(a)
    cdef const int8_t *row
    cdef int8_t values[256]
    cdef float table[256]
    cdef PyObject *made[256]
    cdef float div
    cdef list out = PyList_New(n)
    cdef list one
    cdef object f
    cdef object zero = 0.0
    for j in range(256):
        values[j] = <int8_t>(j - 128)
    for i in range(n):
        row = <const int8_t *>(<const char *>src + i * rs)
        div = <float>sqrt(<double>T[0].sumsq_i8(row, dim))
        one = PyList_New(dim)
        if div == 0:  # an all-zero row stays zero (to_float32's rule)
            for j in range(dim):
                Py_INCREF(zero)
                PyList_SET_ITEM(one, j, zero)
        else:
            T[0].i8_to_f32(values, 256, div, table)
            memset(made, 0, sizeof(made))
            for j in range(dim):
                if made[row[j] + 128] == NULL:
                    f = PyFloat_FromDouble(<double>table[row[j] + 128])
                    Py_INCREF(f)  # this table's reference, dropped at the end of the row
                    made[row[j] + 128] = <PyObject *>f
                Py_INCREF(<object>made[row[j] + 128])  # the list's reference (SET_ITEM steals it)
                PyList_SET_ITEM(one, j, <object>made[row[j] + 128])
            for j in range(256):
                if made[j] != NULL:
                    Py_DECREF(<object>made[j])
        Py_INCREF(one)
        PyList_SET_ITEM(out, i, one)
    return out
