# Similarity entry points: argument checks (see _arrays.pxd), then the tiled
# scans of simd/topk.h on OpenMP threads without the GIL.  Work is split by
# queries when there are enough of them (each thread owns whole heaps), by
# row ranges otherwise (each thread fills its own heaps, merged at the end);
# either way the result is the same, because the heap order is total.
# Docstrings, defaults and metric names live in pplx_codec.search.
cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.stdint cimport int8_t, uint8_t, int16_t, int32_t, int64_t
from _kernels cimport pplx_table, load_table
from _arrays cimport checked, row_geometry, out_array, disjoint_array

import numpy as np

cnp.import_array()
cdef const pplx_table **T = load_table()

cdef extern from "simd/topk.h" nogil:
    int64_t PPLX_NO_ROW
    int32_t PPLX_NO_KEY
    int PPLX_METRIC_DOT
    int PPLX_METRIC_COSINE
    void pplx_heap_init(int32_t *key, int64_t *idx, size_t k)
    void pplx_heap_merge(int32_t *key, int64_t *idx, const int32_t *skey, const int64_t *sidx, size_t k)
    void pplx_heap_sort(int32_t *key, int64_t *idx, size_t k)
    float pplx_score_of_key(int32_t key)
    float pplx_cosine(int32_t dot, float qn, float xn)
    size_t pplx_tile_rows(size_t row_bytes)
    void pplx_scan_hamming(const pplx_table *tab, const uint8_t *Q, size_t nq, size_t qstride, const uint8_t *X,
                           size_t r0, size_t r1, size_t w, size_t xstride, size_t k, int64_t base, int32_t *hk,
                           int64_t *hi)
    void pplx_matrix_hamming(const pplx_table *tab, const uint8_t *Q, size_t nq, size_t qstride, const uint8_t *X,
                             size_t r0, size_t r1, size_t w, size_t xstride, int32_t *out, size_t ostride)
    void pplx_matrix_dot(const pplx_table *tab, const int16_t *Q16, size_t nq, size_t qstride, const int8_t *X,
                         size_t r0, size_t r1, size_t dim, size_t xstride, int32_t *out, size_t ostride)
    void pplx_scan_int8(const pplx_table *tab, const int16_t *Q16, size_t nq, size_t qstride, const int8_t *X,
                        size_t r0, size_t r1, size_t dim, size_t xstride, int metric, const float *qn,
                        const float *xn, size_t k, int64_t base, int32_t *hk, int64_t *hi)

cdef extern from "simd/dot.h":
    size_t PPLX_DOT_MAX_DIM

# Below this many rows per thread, splitting rows costs more than it saves.
cdef Py_ssize_t MIN_ROWS_PER_THREAD = 2048

MAX_DOT_DIM = PPLX_DOT_MAX_DIM


cdef class _Pair:
    """Queries and database checked against each other (shape, dtype, width)."""
    cdef cnp.ndarray q, x
    cdef Py_ssize_t m, n, width, qs, xs
    cdef bint one


cdef _Pair _pair(object queries, object db, str qname, str xname, int typenum, str want):
    cdef _Pair p = _Pair()
    cdef Py_ssize_t qw, xw
    p.q = checked(queries, qname, want, 2, typenum)
    p.x = checked(db, xname, want, 2, typenum)
    if cnp.PyArray_NDIM(p.x) != 2:
        raise ValueError(f"{xname} must be a 2-D array of rows, got {cnp.PyArray_NDIM(p.x)} dimension(s)")
    p.one = cnp.PyArray_NDIM(p.q) == 1
    row_geometry(p.q, qname, &p.m, &qw, &p.qs)
    row_geometry(p.x, xname, &p.n, &xw, &p.xs)
    if qw != xw:
        unit = "bytes" if typenum == cnp.NPY_UINT8 else "dimensions"
        raise ValueError(f"{qname} have {qw} {unit} per row but {xname} has {xw}")
    p.width = xw
    return p


cdef int _parts(Py_ssize_t m, Py_ssize_t n, int threads, bint *by_rows):
    """How many parts to run on how many threads, and whether rows are split."""
    if threads <= 1:
        by_rows[0] = False
        return 1
    if m >= 4 * threads:
        by_rows[0] = False
        return threads
    by_rows[0] = n >= MIN_ROWS_PER_THREAD * 2
    if by_rows[0]:
        return min(threads, <int>(n // MIN_ROWS_PER_THREAD))
    return min(threads, <int>((m + 3) // 4))


cdef inline Py_ssize_t _bound(Py_ssize_t total, Py_ssize_t parts, Py_ssize_t p, Py_ssize_t quantum) noexcept nogil:
    """Start of part p of `parts` contiguous ranges of [0, total), in multiples
    of quantum (p == parts gives total).  Returned, not written through a
    pointer: prange makes a variable thread-private only when it is assigned."""
    cdef Py_ssize_t units = (total + quantum - 1) // quantum
    return min(total, (units * p // parts) * quantum)


cdef Py_ssize_t _heap_size(Py_ssize_t k, Py_ssize_t n) except -1:
    """Heap entries per query: k, or just n when k asks for more than the rows
    there are (the rest is padding, added by _padded, not carried through
    every heap operation and thread merge)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return max(1, min(k, n))


cdef tuple _padded(object V, object I, Py_ssize_t k, object fill):
    """(V, I) widened to k columns with (fill, -1)."""
    if V.shape[1] == k:
        return V, I
    Vp = np.full((V.shape[0], k), fill, V.dtype)
    Ip = np.full((I.shape[0], k), -1, np.int64)
    Vp[:, :V.shape[1]] = V
    Ip[:, :I.shape[1]] = I
    return Vp, Ip


def topk_hamming(queries, codes, Py_ssize_t k_wanted, int threads, int64_t base=0):
    """(D int32 (m, k), I int64 (m, k)) ascending, padded with (INT32_MAX, -1)."""
    cdef _Pair p = _pair(queries, codes, "queries", "codes", cnp.NPY_UINT8, "uint8")
    cdef Py_ssize_t k = _heap_size(k_wanted, p.n)
    D = np.empty((p.m, k), np.int32)
    I = np.empty((p.m, k), np.int64)
    cdef int32_t[:, ::1] hk = D
    cdef int64_t[:, ::1] hi = I
    cdef bint by_rows
    cdef int nparts = _parts(p.m, p.n, threads, &by_rows)
    cdef int32_t[:, :, ::1] sk = np.empty((nparts if by_rows else 1, p.m, k), np.int32)
    cdef int64_t[:, :, ::1] si = np.empty((nparts if by_rows else 1, p.m, k), np.int64)
    cdef const uint8_t *Q = <const uint8_t *>cnp.PyArray_DATA(p.q)
    cdef const uint8_t *X = <const uint8_t *>cnp.PyArray_DATA(p.x)
    cdef const pplx_table *t = T[0]
    cdef Py_ssize_t part, lo, hi_, mm = p.m, n = p.n, w = p.width, qs = p.qs, xs = p.xs
    if mm and not by_rows:  # a row split seeds the result from the first part's heaps (_finish)
        pplx_heap_init(&hk[0, 0], &hi[0, 0], mm * k)
    if by_rows:
        for part in prange(nparts, nogil=True, num_threads=nparts, schedule="static", chunksize=1):
            lo = _bound(n, nparts, part, 1)
            hi_ = _bound(n, nparts, part + 1, 1)
            pplx_heap_init(&sk[part, 0, 0], &si[part, 0, 0], mm * k)
            pplx_scan_hamming(t, Q, mm, qs, X, lo, hi_, w, xs, k, base, &sk[part, 0, 0], &si[part, 0, 0])
    else:
        for part in prange(nparts, nogil=True, num_threads=nparts, schedule="static", chunksize=1):
            lo = _bound(mm, nparts, part, 4)
            hi_ = _bound(mm, nparts, part + 1, 4)
            if hi_ > lo:
                pplx_scan_hamming(t, Q + lo * qs, hi_ - lo, qs, X, 0, n, w, xs, k, base, &hk[lo, 0], &hi[lo, 0])
    with nogil:
        _finish(&hk[0, 0] if mm else NULL, &hi[0, 0] if mm else NULL, mm, k,
                &sk[0, 0, 0] if mm else NULL, &si[0, 0, 0] if mm else NULL, nparts if by_rows else 0)
    return _padded(D, I, k_wanted, np.iinfo(np.int32).max)


def topk_int8(queries, db, Py_ssize_t k_wanted, bint cosine, qnorms, dbnorms, int threads, int64_t base=0):
    """(S float32 (m, k), I int64 (m, k)) descending, padded with (-inf, -1).
    qnorms/dbnorms: float32 norms of each query/row (cosine only)."""
    cdef _Pair p = _pair(queries, db, "queries", "db", cnp.NPY_INT8, "int8")
    cdef Py_ssize_t k = _heap_size(k_wanted, p.n)
    if <size_t>p.width > PPLX_DOT_MAX_DIM:
        raise ValueError(f"rows of {p.width} dimensions could overflow int32 dot products (max {PPLX_DOT_MAX_DIM})")
    cdef const float *qn = NULL
    cdef const float *xn = NULL
    cdef cnp.ndarray qna, xna
    if cosine:
        qna = checked(qnorms, "query norms", "float32", 1, cnp.NPY_FLOAT32)
        xna = checked(dbnorms, "db_norms", "float32", 1, cnp.NPY_FLOAT32)
        if cnp.PyArray_DIM(qna, 0) != p.m or not cnp.PyArray_IS_C_CONTIGUOUS(qna):
            raise ValueError(f"query norms must be a contiguous float32 array of {p.m}")
        if cnp.PyArray_DIM(xna, 0) != p.n or not cnp.PyArray_IS_C_CONTIGUOUS(xna):
            raise ValueError(f"db_norms must be a C-contiguous float32 array of {p.n} norms (one per row), "
                             f"got shape {(<object>xna).shape}")
        qn = <const float *>cnp.PyArray_DATA(qna)
        xn = <const float *>cnp.PyArray_DATA(xna)

    # Queries widened once to int16, the form the kernels multiply.
    q16 = np.empty((p.m, p.width), np.int16)
    if p.m:
        np.copyto(q16, p.q.reshape(p.m, p.width))
    cdef const int16_t *Q = <const int16_t *>cnp.PyArray_DATA(q16)
    cdef const int8_t *X = <const int8_t *>cnp.PyArray_DATA(p.x)
    S = np.empty((p.m, k), np.float32)
    I = np.empty((p.m, k), np.int64)
    keys_arr = np.empty((p.m, k), np.int32)
    cdef int32_t[:, ::1] hk = keys_arr
    cdef int64_t[:, ::1] hi = I
    cdef float[:, ::1] sv = S
    cdef bint by_rows
    cdef int nparts = _parts(p.m, p.n, threads, &by_rows)
    cdef int32_t[:, :, ::1] sk = np.empty((nparts if by_rows else 1, p.m, k), np.int32)
    cdef int64_t[:, :, ::1] si = np.empty((nparts if by_rows else 1, p.m, k), np.int64)
    cdef const pplx_table *t = T[0]
    cdef int metric = PPLX_METRIC_COSINE if cosine else PPLX_METRIC_DOT
    cdef Py_ssize_t i, j, part, lo, hi_, mm = p.m, n = p.n, dim = p.width, xs = p.xs
    if mm and not by_rows:  # a row split seeds the result from the first part's heaps (_finish)
        pplx_heap_init(&hk[0, 0], &hi[0, 0], mm * k)
    if by_rows:
        for part in prange(nparts, nogil=True, num_threads=nparts, schedule="static", chunksize=1):
            lo = _bound(n, nparts, part, 1)
            hi_ = _bound(n, nparts, part + 1, 1)
            pplx_heap_init(&sk[part, 0, 0], &si[part, 0, 0], mm * k)
            pplx_scan_int8(t, Q, mm, dim, X, lo, hi_, dim, xs, metric, qn, xn, k, base,
                           &sk[part, 0, 0], &si[part, 0, 0])
    else:
        for part in prange(nparts, nogil=True, num_threads=nparts, schedule="static", chunksize=1):
            lo = _bound(mm, nparts, part, 4)
            hi_ = _bound(mm, nparts, part + 1, 4)
            if hi_ > lo:
                pplx_scan_int8(t, Q + lo * dim, hi_ - lo, dim, X, 0, n, dim, xs, metric,
                               (qn + lo) if qn != NULL else NULL, xn, k, base, &hk[lo, 0], &hi[lo, 0])
    with nogil:
        _finish(&hk[0, 0] if mm else NULL, &hi[0, 0] if mm else NULL, mm, k,
                &sk[0, 0, 0] if mm else NULL, &si[0, 0, 0] if mm else NULL, nparts if by_rows else 0)
        for i in range(mm):
            for j in range(k):
                if hi[i, j] == -1:
                    sv[i, j] = -INFINITY
                elif cosine:
                    sv[i, j] = pplx_score_of_key(hk[i, j])
                else:
                    sv[i, j] = <float>(-<int64_t>hk[i, j])
    return _padded(S, I, k_wanted, -np.inf)


cdef void _finish(int32_t *hk, int64_t *hi, Py_ssize_t m, Py_ssize_t k, const int32_t *sk, const int64_t *si,
                  int row_parts) noexcept nogil:
    """Merge the per-thread heaps of a row split (part 0 seeds the result),
    sort each query's heap best-first and turn sentinel rows into -1."""
    cdef Py_ssize_t q, j, part
    if row_parts:
        for q in range(m):
            for j in range(k):
                hk[q * k + j] = sk[q * k + j]
                hi[q * k + j] = si[q * k + j]
            for part in range(1, row_parts):
                pplx_heap_merge(hk + q * k, hi + q * k, sk + (part * m + q) * k, si + (part * m + q) * k, k)
    for q in range(m):
        pplx_heap_sort(hk + q * k, hi + q * k, k)
        for j in range(k):
            if hi[q * k + j] == PPLX_NO_ROW:
                hi[q * k + j] = -1


def hamming_matrix(queries, codes, int threads, out=None):
    """int32 (m, n) distances, or (n,) for one 1-D query."""
    cdef _Pair p = _pair(queries, codes, "queries", "codes", cnp.NPY_UINT8, "uint8")
    cdef cnp.ndarray o = out_array(out, cnp.NPY_INT32, 1, p.n) if p.one else \
        out_array(out, cnp.NPY_INT32, 2, p.m, p.n)
    disjoint_array(out, o, p.q, "queries")
    disjoint_array(out, o, p.x, "codes")
    cdef const uint8_t *Q = <const uint8_t *>cnp.PyArray_DATA(p.q)
    cdef const uint8_t *X = <const uint8_t *>cnp.PyArray_DATA(p.x)
    cdef int32_t *D = <int32_t *>cnp.PyArray_DATA(o)
    cdef const pplx_table *t = T[0]
    cdef Py_ssize_t part, lo, hi_, mm = p.m, n = p.n, w = p.width, qs = p.qs, xs = p.xs
    cdef int nparts = max(1, min(threads, <int>(n // MIN_ROWS_PER_THREAD)))
    for part in prange(nparts, nogil=True, num_threads=nparts, schedule="static", chunksize=1):
        lo = _bound(n, nparts, part, 1)
        hi_ = _bound(n, nparts, part + 1, 1)
        pplx_matrix_hamming(t, Q, mm, qs, X, lo, hi_, w, xs, D, n)
    return o


def dot_matrix(queries, db, int threads, out=None):
    """Exact int32 (m, n) dot products, or (n,) for one 1-D query."""
    cdef _Pair p = _pair(queries, db, "queries", "db", cnp.NPY_INT8, "int8")
    if <size_t>p.width > PPLX_DOT_MAX_DIM:
        raise ValueError(f"rows of {p.width} dimensions could overflow int32 dot products (max {PPLX_DOT_MAX_DIM})")
    cdef cnp.ndarray o = out_array(out, cnp.NPY_INT32, 1, p.n) if p.one else \
        out_array(out, cnp.NPY_INT32, 2, p.m, p.n)
    disjoint_array(out, o, p.q, "queries")
    disjoint_array(out, o, p.x, "db")
    q16 = np.empty((p.m, p.width), np.int16)
    if p.m:
        np.copyto(q16, p.q.reshape(p.m, p.width))
    cdef const int16_t *Q = <const int16_t *>cnp.PyArray_DATA(q16)
    cdef const int8_t *X = <const int8_t *>cnp.PyArray_DATA(p.x)
    cdef int32_t *D = <int32_t *>cnp.PyArray_DATA(o)
    cdef const pplx_table *t = T[0]
    cdef Py_ssize_t part, lo, hi_, mm = p.m, n = p.n, dim = p.width, xs = p.xs
    cdef int nparts = max(1, min(threads, <int>(n // MIN_ROWS_PER_THREAD)))
    for part in prange(nparts, nogil=True, num_threads=nparts, schedule="static", chunksize=1):
        lo = _bound(n, nparts, part, 1)
        hi_ = _bound(n, nparts, part + 1, 1)
        pplx_matrix_dot(t, Q, mm, dim, X, lo, hi_, dim, xs, D, n)
    return o
