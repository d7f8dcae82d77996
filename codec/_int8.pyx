# int8 row kernels: L2 norms and float32 conversion.  Validation lives in
# pplx_codec.vectors.
from libc.math cimport sqrt
from libc.stdint cimport int8_t, int32_t
from _kernels cimport pplx_table, load_table

cdef const pplx_table **T = load_table()


def norms_into(const int8_t[:, ::1] x, float[::1] out):
    cdef Py_ssize_t n = x.shape[0], dim = x.shape[1], i
    if n == 0:
        return
    with nogil:
        for i in range(n):
            out[i] = <float>sqrt(<double>T[0].sumsq_i8(&x[i, 0], dim))


def to_float32_into(const int8_t[:, ::1] x, float[:, ::1] out, bint normalize):
    cdef Py_ssize_t n = x.shape[0], dim = x.shape[1], i, j
    cdef float div
    if n == 0 or dim == 0:
        return
    with nogil:
        for i in range(n):
            div = <float>sqrt(<double>T[0].sumsq_i8(&x[i, 0], dim)) if normalize else 1.0
            if div == 0:  # an all-zero row has no direction: keep it zero, not NaN
                for j in range(dim):
                    out[i, j] = 0
            else:
                T[0].i8_to_f32(&x[i, 0], dim, div, &out[i, 0])
