# Bit packing entry points over the table's kernels.  Rows whose values fill
# whole bytes and sit back to back are handed to the kernel as one run, so
# small dims do not pay a call per row.  Validation lives in pplx_codec.bits.
from libc.stdint cimport int8_t, uint8_t
from _kernels cimport pplx_table, load_table

cdef const pplx_table **T = load_table()

ctypedef fused packable_t:
    int8_t
    float
    double

ctypedef fused unpacked_t:
    uint8_t
    int8_t
    float


def pack_rows(const packable_t[:, ::1] x, uint8_t[:, ::1] out, bint msb):
    cdef Py_ssize_t n = x.shape[0], dim = x.shape[1], i
    cdef bint flat = (dim % 8 == 0 and x.strides[0] == dim * <Py_ssize_t>sizeof(packable_t)
                      and out.strides[0] == dim // 8)
    if n == 0 or dim == 0:
        return
    with nogil:
        if packable_t is int8_t:
            if flat:
                T[0].pack_i8(&x[0, 0], n * dim, &out[0, 0], msb)
            else:
                for i in range(n):
                    T[0].pack_i8(&x[i, 0], dim, &out[i, 0], msb)
        elif packable_t is float:
            if flat:
                T[0].pack_f32(&x[0, 0], n * dim, &out[0, 0], msb)
            else:
                for i in range(n):
                    T[0].pack_f32(&x[i, 0], dim, &out[i, 0], msb)
        else:
            if flat:
                T[0].pack_f64(&x[0, 0], n * dim, &out[0, 0], msb)
            else:
                for i in range(n):
                    T[0].pack_f64(&x[i, 0], dim, &out[i, 0], msb)


def unpack_rows(const uint8_t[:, ::1] packed, unpacked_t[:, ::1] out, bint msb):
    cdef Py_ssize_t n = out.shape[0], dim = out.shape[1], i
    cdef bint flat = (dim == packed.shape[1] * 8 and packed.strides[0] == dim // 8
                      and out.strides[0] == dim * <Py_ssize_t>sizeof(unpacked_t))
    if n == 0 or dim == 0:
        return
    with nogil:
        if unpacked_t is uint8_t:
            if flat:
                T[0].unpack_u8(&packed[0, 0], n * dim, &out[0, 0], msb)
            else:
                for i in range(n):
                    T[0].unpack_u8(&packed[i, 0], dim, &out[i, 0], msb)
        elif unpacked_t is int8_t:
            if flat:
                T[0].unpack_i8(&packed[0, 0], n * dim, &out[0, 0], msb)
            else:
                for i in range(n):
                    T[0].unpack_i8(&packed[i, 0], dim, &out[i, 0], msb)
        else:
            if flat:
                T[0].unpack_f32(&packed[0, 0], n * dim, &out[0, 0], msb)
            else:
                for i in range(n):
                    T[0].unpack_f32(&packed[i, 0], dim, &out[i, 0], msb)


def reverse_rows(const uint8_t[:, ::1] src, uint8_t[:, ::1] dst):
    cdef Py_ssize_t n = src.shape[0], width = src.shape[1], i
    if n == 0 or width == 0:
        return
    with nogil:
        if src.strides[0] == width and dst.strides[0] == width:
            T[0].reverse_bits(&src[0, 0], n * width, &dst[0, 0])
        else:
            for i in range(n):
                T[0].reverse_bits(&src[i, 0], width, &dst[i, 0])
