# Argument checks shared by every extension.  Inline (compiled into each
# module, nothing imported at run time) and written against the numpy C API:
# a Python-level check costs ~0.2 us per attribute on a slow core, these cost
# nanoseconds, which is what makes one-vector calls cheap.
# Each extension must call cnp.import_array() at import.
cimport numpy as cnp
from numpy cimport npy_intp

ctypedef enum:
    NO_TYPE = -1

cdef inline cnp.ndarray checked(object x, str name, str want, int max_ndim, int t0,
                                int t1=NO_TYPE, int t2=NO_TYPE, int t3=NO_TYPE):
    """x as an ndarray of a native-order dtype among t0..t3, with 1..max_ndim dims."""
    if not cnp.PyArray_Check(x):
        raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int t = cnp.PyArray_TYPE(a)
    if not (t == t0 or t == t1 or t == t2 or t == t3) or not cnp.PyArray_ISNOTSWAPPED(a):
        raise TypeError(f"{name} must have dtype {want}, got {a.dtype}")
    cdef int nd = cnp.PyArray_NDIM(a)
    if nd < 1 or nd > max_ndim:
        raise ValueError(f"{name} must have {'1 or 2' if max_ndim == 2 else '1'} dimensions, got {nd}")
    return a


cdef inline int row_geometry(cnp.ndarray a, str name, Py_ssize_t *n, Py_ssize_t *dim,
                             Py_ssize_t *row_stride) except -1:
    """Rows of a 1-D (one row) or 2-D array whose rows are runs of memory.

    The row stride is free (slices like m[:, :256] are fine); elements within
    a row must be adjacent, because the kernels read rows as runs of memory.
    """
    cdef int nd = cnp.PyArray_NDIM(a)
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(a)
    n[0] = cnp.PyArray_DIM(a, 0) if nd == 2 else 1
    dim[0] = cnp.PyArray_DIM(a, nd - 1)
    cdef Py_ssize_t inner = cnp.PyArray_STRIDE(a, nd - 1)
    # an empty batch has no rows to read; numpy gives some of those zero strides
    if dim[0] > 1 and inner != item and n[0] > 0:
        raise ValueError(f"{name} rows must be contiguous (element stride {inner} != {item}); "
                         "pass np.ascontiguousarray(...) (which copies)")
    row_stride[0] = cnp.PyArray_STRIDE(a, 0) if nd == 2 else dim[0] * item
    return 0


cdef inline cnp.ndarray out_array(object out, int typenum, int nd, Py_ssize_t d0, Py_ssize_t d1=0):
    """A new C-contiguous array, or the caller's `out` checked to be exactly that."""
    cdef npy_intp dims[2]
    dims[0] = d0
    dims[1] = d1
    if out is None:
        return cnp.PyArray_EMPTY(nd, dims, typenum, 0)
    want = cnp.PyArray_DescrFromType(typenum)
    shape = (d0, d1)[:nd]
    if not cnp.PyArray_Check(out):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    cdef cnp.ndarray o = <cnp.ndarray>out
    if cnp.PyArray_TYPE(o) != typenum or not cnp.PyArray_ISNOTSWAPPED(o):
        raise TypeError(f"out must have dtype {want}, got {o.dtype}")
    if cnp.PyArray_NDIM(o) != nd or (cnp.PyArray_DIM(o, 0) != d0 if nd >= 1 else False) or \
            (cnp.PyArray_DIM(o, 1) != d1 if nd == 2 else False):
        raise ValueError(f"out must have shape {shape}, got {(<object>o).shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(o):
        raise ValueError("out must be C-contiguous")
    if not cnp.PyArray_ISWRITEABLE(o):
        raise ValueError("out is read-only")
    return o


cdef inline cnp.ndarray out_rows(object out, bint one_row, Py_ssize_t n, Py_ssize_t width, int typenum):
    """Row-wise result: 2-D (n, width), or 1-D (width,) when the input was one 1-D row."""
    if one_row:
        return out_array(out, typenum, 1, width)
    return out_array(out, typenum, 2, n, width)
