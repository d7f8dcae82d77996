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
    if not cnp.PyArray_ISALIGNED(a):
        # A float32/float64 view at an odd byte offset (np.frombuffer(buf,
        # offset=1), packed records): C kernels may only dereference aligned
        # element pointers, so they get an aligned copy (rare, and correct).
        return cnp.PyArray_NewCopy(a, cnp.NPY_CORDER)
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
    if not cnp.PyArray_ISALIGNED(o):
        raise ValueError(f"out is not aligned for {want} (a view at an odd byte offset); pass an aligned array")
    return o


cdef inline cnp.ndarray out_rows(object out, bint one_row, Py_ssize_t n, Py_ssize_t width, int typenum):
    """Row-wise result: 2-D (n, width), or 1-D (width,) when the input was one 1-D row."""
    if one_row:
        return out_array(out, typenum, 1, width)
    return out_array(out, typenum, 2, n, width)


cdef inline bint byte_extent(cnp.ndarray a, const char **lo, const char **hi):
    """The byte range [lo, hi) that a's elements occupy (False when a has none).
    Bounds only, as np.may_share_memory: any stride sign, no per-element walk."""
    cdef const char *p = <const char *>cnp.PyArray_DATA(a)
    cdef Py_ssize_t low = 0, high = cnp.PyArray_ITEMSIZE(a), d, s
    cdef int i
    for i in range(cnp.PyArray_NDIM(a)):
        d = cnp.PyArray_DIM(a, i)
        if d == 0:
            return False
        s = cnp.PyArray_STRIDE(a, i) * (d - 1)
        if s > 0:
            high += s
        else:
            low += s
    lo[0] = p + low
    hi[0] = p + high
    return True


cdef inline int disjoint(object out, cnp.ndarray o, const char *lo, const char *hi, str name,
                         bint same_ok=False, bint hint=False) except -1:
    """Refuse a caller's `out` whose memory overlaps an input's bytes [lo, hi).

    The kernels stream through their input while writing `out`: a partial
    overlap overwrites input not yet read and gives a wrong answer silently.
    same_ok: the caller has checked that out and the input are the same
    elements in the same layout, and the kernel maps element i to element i
    (reads it before writing it), so that exact overlap is a correct in-place
    call."""
    if out is None or lo == hi or same_ok:
        return 0
    cdef const char *olo = NULL
    cdef const char *ohi = NULL
    if not byte_extent(o, &olo, &ohi) or ohi <= lo or hi <= olo:
        return 0
    raise ValueError(f"out overlaps {name} in memory, which would give wrong results; pass a separate "
                     f"out array{' (or exactly the same array, for in place)' if hint else ''}")


cdef inline int disjoint_array(object out, cnp.ndarray o, cnp.ndarray a, str name,
                               bint in_place_ok=False) except -1:
    """disjoint() for an input array.  in_place_ok: the kernel is elementwise
    with out's shape and dtype equal to a's, so out being exactly a (same
    start, same extent; with equal shapes and C-contiguous out that means the
    same layout) is allowed."""
    cdef const char *lo = NULL
    cdef const char *hi = NULL
    cdef const char *olo = NULL
    cdef const char *ohi = NULL
    if out is None or not byte_extent(a, &lo, &hi):
        return 0
    cdef bint same = (in_place_ok and cnp.PyArray_DATA(o) == cnp.PyArray_DATA(a)
                      and byte_extent(o, &olo, &ohi) and olo == lo and ohi == hi)
    return disjoint(out, o, lo, hi, name, same, in_place_ok)
