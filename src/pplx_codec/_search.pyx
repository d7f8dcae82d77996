# Similarity entry points: argument checks (see _arrays.pxd), then the tiled
# scans of simd/topk.h without the GIL, split into parts run by the caller
# and a small pool of the module's own threads (simd/threads.h; no OpenMP).
# Work is split by queries when there are enough of them (each part owns
# whole heaps), by row ranges otherwise (each part fills its own heaps,
# merged at the end); either way the result is the same, because the heap
# order is total.  A part is a plain C function of a _Search and its number:
# one skeleton of parts, with the kernel plugged in as a hook (see the parts).
# Docstrings, defaults and metric names live in pplx_codec.search.
cimport numpy as cnp
from libc.math cimport INFINITY
from libc.string cimport memset
from libc.stdint cimport int8_t, uint8_t, int16_t, int32_t, int64_t
from ._kernels cimport pplx_table, load_table
from ._arrays cimport checked, row_geometry, out_array, disjoint_array

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
    int pplx_int8_reads_q16(const pplx_table *tab)
    void pplx_scan_hamming(const pplx_table *tab, const uint8_t *Q, size_t nq, size_t qstride, const uint8_t *X,
                           size_t r0, size_t r1, size_t w, size_t xstride, size_t k, int64_t base, int32_t *hk,
                           int64_t *hi)
    void pplx_matrix_hamming(const pplx_table *tab, const uint8_t *Q, size_t nq, size_t qstride, const uint8_t *X,
                             size_t r0, size_t r1, size_t w, size_t xstride, int32_t *out, size_t ostride)
    void pplx_matrix_dot(const pplx_table *tab, const int8_t *Q8, size_t q8stride, const int16_t *Q16, size_t nq,
                         size_t qstride, const int8_t *X, size_t r0, size_t r1, size_t dim, size_t xstride,
                         int32_t *out, size_t ostride)
    void pplx_scan_int8(const pplx_table *tab, const int8_t *Q8, size_t q8stride, const int16_t *Q16, size_t nq,
                        size_t qstride, const int8_t *X, size_t r0, size_t r1, size_t dim, size_t xstride,
                        int metric, const float *qn,
                        const float *xn, size_t k, int64_t base, int32_t *hk, int64_t *hi)

cdef extern from "simd/dot/serial.h":
    size_t PPLX_DOT_MAX_DIM

cdef extern from "simd/threads.h" nogil:
    ctypedef void (*pplx_part_fn)(void *ctx, int part) noexcept nogil
    const char *PPLX_THREADS_API
    int pplx_threads_start_limit
    int pplx_run_parts(int nparts, pplx_part_fn fn, void *ctx)
    void pplx_threads_stats(int *workers, long *refused)

# Below this many rows per thread, splitting rows costs more than it saves.
cdef Py_ssize_t MIN_ROWS_PER_THREAD = 2048

MAX_DOT_DIM = PPLX_DOT_MAX_DIM

# Parts the pool's threads ran (the callers ran the rest), updated with the GIL held.
cdef Py_ssize_t _helped = 0


def threads_api():
    """The threads the parts of a search run on: "pthreads" or "win32"."""
    return PPLX_THREADS_API.decode()


def _thread_stats():
    """Testing hook: (threads in the pool, thread starts refused, parts the
    pool's threads ran) so far in this process."""
    cdef int workers
    cdef long refused
    pplx_threads_stats(&workers, &refused)
    return workers, refused, _helped


def _refuse_threads_after(limit):
    """Testing hook: let the pool hold at most `limit` threads (None: no
    limit), as if the system refused more; returns the previous limit.
    Parts no thread takes are run by the calling thread."""
    global pplx_threads_start_limit
    before = None if pplx_threads_start_limit < 0 else pplx_threads_start_limit
    pplx_threads_start_limit = -1 if limit is None else max(0, min(<int>limit, 1 << 30))
    return before


cdef struct _Search

# The hooks a search plugs into the one skeleton of parts (below): a top-k scan of
# queries [q0, q1) against rows [r0, r1) into heaps hk/hi (k per query), or a
# matrix fill of columns [r0, r1) for every query.
ctypedef void (*scan_fn)(const _Search *j, Py_ssize_t q0, Py_ssize_t q1, Py_ssize_t r0, Py_ssize_t r1,
                         int32_t *hk, int64_t *hi) noexcept nogil
ctypedef void (*fill_fn)(const _Search *j, Py_ssize_t r0, Py_ssize_t r1) noexcept nogil

cdef struct _Search:
    # one search, read by every part: each part writes only its own output
    const pplx_table *t
    scan_fn scan            # top-k: the kernel's scan (_scan_hamming, _scan_int8)
    fill_fn fill            # matrix: the kernel's fill (_fill_hamming, _fill_dot)
    const uint8_t *Qb       # binary queries (qs bytes apart)
    const int8_t *Q8        # int8 queries as given (qs bytes apart)
    const int16_t *Q16      # the same widened to int16 (width elements apart), or NULL: only made
                            # when the search's table has no int8 x int8 kernel (_with_queries)
    const uint8_t *Xb       # binary rows (xs bytes apart)
    const int8_t *X8        # int8 rows (xs bytes apart)
    Py_ssize_t m, n, width, qs, xs, k
    int nparts, metric
    const float *qn         # cosine: query norms, row norms
    const float *xn
    int64_t base
    int32_t *hk             # (m, k) result heaps: written by a query split
    int64_t *hi
    int32_t *sk             # (nparts, m, k) heaps of a row split, one set per part
    int64_t *si
    int32_t *D              # (m, n) matrix


cdef int _run(_Search *search, pplx_part_fn fn) except -1:
    """Run search.nparts parts of fn without the GIL."""
    global _helped
    cdef int helped
    with nogil:
        helped = pplx_run_parts(search.nparts, fn, search)
    _helped += helped
    return 0


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
    """How many parts to run on how many threads, and whether rows are split.
    Queries go to the parts in whole groups of 4 (the kernels' query block):
    when the groups do not divide evenly (100 queries on 2 threads: 13 groups
    and 12), the part with one more group sets the time, so rows are split
    instead whenever there are enough of them (every part then scans every
    query over an equal share of the rows, and reads only that share)."""
    if threads <= 1:
        by_rows[0] = False
        return 1
    if m >= 4 * threads and (((m + 3) // 4) % threads == 0 or n < MIN_ROWS_PER_THREAD * threads):
        by_rows[0] = False
        return threads
    by_rows[0] = n >= MIN_ROWS_PER_THREAD * 2
    if by_rows[0]:
        return min(threads, <int>(n // MIN_ROWS_PER_THREAD))
    return min(threads, <int>((m + 3) // 4))


cdef inline Py_ssize_t _bound(Py_ssize_t total, Py_ssize_t parts, Py_ssize_t p, Py_ssize_t quantum) noexcept nogil:
    """Start of part p of `parts` contiguous ranges of [0, total), in multiples
    of quantum (p == parts gives total)."""
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


# ---------------------------------------------------------------- the parts
# One skeleton for every search (as scikit-learn's pairwise reductions have
# one): a part takes its range of queries or rows and calls the search's hook.
# Each part runs on whichever thread takes it (the caller's or a pool
# thread), reads the search and writes only the output that belongs to it.

cdef void _part_by_rows(void *ctx, int part) noexcept nogil:
    """Top-k over a range of rows for every query, into this part's own heaps."""
    cdef _Search *j = <_Search *>ctx
    cdef Py_ssize_t lo = _bound(j.n, j.nparts, part, 1), hi = _bound(j.n, j.nparts, part + 1, 1)
    cdef int32_t *sk = j.sk + part * j.m * j.k
    cdef int64_t *si = j.si + part * j.m * j.k
    pplx_heap_init(sk, si, j.m * j.k)
    j.scan(j, 0, j.m, lo, hi, sk, si)


cdef void _part_by_queries(void *ctx, int part) noexcept nogil:
    """Top-k over every row for a range of queries (in fours, the kernels'
    query block), into those queries' result heaps."""
    cdef _Search *j = <_Search *>ctx
    cdef Py_ssize_t lo = _bound(j.m, j.nparts, part, 4), hi = _bound(j.m, j.nparts, part + 1, 4)
    if hi > lo:
        j.scan(j, lo, hi, 0, j.n, j.hk + lo * j.k, j.hi + lo * j.k)


cdef void _part_matrix(void *ctx, int part) noexcept nogil:
    """A full matrix's columns for a range of rows."""
    cdef _Search *j = <_Search *>ctx
    j.fill(j, _bound(j.n, j.nparts, part, 1), _bound(j.n, j.nparts, part + 1, 1))


# The hooks: each kernel's call, given a range.

cdef void _scan_hamming(const _Search *j, Py_ssize_t q0, Py_ssize_t q1, Py_ssize_t r0, Py_ssize_t r1,
                        int32_t *hk, int64_t *hi) noexcept nogil:
    pplx_scan_hamming(j.t, j.Qb + q0 * j.qs, q1 - q0, j.qs, j.Xb, r0, r1, j.width, j.xs, j.k, j.base, hk, hi)


cdef void _scan_int8(const _Search *j, Py_ssize_t q0, Py_ssize_t q1, Py_ssize_t r0, Py_ssize_t r1,
                     int32_t *hk, int64_t *hi) noexcept nogil:
    pplx_scan_int8(j.t, j.Q8 + q0 * j.qs, j.qs, (j.Q16 + q0 * j.width) if j.Q16 != NULL else NULL, q1 - q0, j.width,
                   j.X8, r0, r1, j.width, j.xs, j.metric, (j.qn + q0) if j.qn != NULL else NULL, j.xn, j.k, j.base,
                   hk, hi)


cdef void _fill_hamming(const _Search *j, Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    pplx_matrix_hamming(j.t, j.Qb, j.m, j.qs, j.Xb, r0, r1, j.width, j.xs, j.D, j.n)


cdef void _fill_dot(const _Search *j, Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    pplx_matrix_dot(j.t, j.Q8, j.qs, j.Q16, j.m, j.width, j.X8, r0, r1, j.width, j.xs, j.D, j.n)


# ---------------------------------------------------------------- entry points

cdef _Search _new_search(_Pair p, Py_ssize_t k, int nparts, int64_t base):
    """A search over p's rows, every pointer not set here NULL."""
    cdef _Search search
    memset(&search, 0, sizeof(search))
    search.t = T[0]
    search.m, search.n, search.width, search.qs, search.xs, search.k = p.m, p.n, p.width, p.qs, p.xs, k
    search.nparts, search.base = nparts, base
    return search


cdef object _with_queries(_Search *search, _Pair p):
    """Point the int8 search at p's queries: as stored (Q8), and widened once to
    int16 (Q16) only when the search's own table reads that copy (a table
    without an int8 x int8 kernel: pplx_int8_reads_q16).  Returns the copy or
    None; the caller holds it until the search is done."""
    search.Q8 = <const int8_t *>cnp.PyArray_DATA(p.q)
    search.Q16 = NULL
    if not pplx_int8_reads_q16(search.t):
        return None
    q16 = np.empty((p.m, p.width), np.int16)
    if p.m:
        np.copyto(q16, p.q.reshape(p.m, p.width))
    search.Q16 = <const int16_t *>cnp.PyArray_DATA(q16)
    return q16


cdef tuple _topk(_Search *search, int threads, scan_fn scan):
    """Run a top-k search with the scan hook: its parts split queries or rows
    (_parts), a row split's heaps are merged, and each query's heap is sorted
    best-first.  Returns (keys int32 (m, k), I int64 (m, k))."""
    cdef Py_ssize_t m = search.m, k = search.k
    cdef bint by_rows
    search.nparts = _parts(m, search.n, threads, &by_rows)
    search.scan = scan
    K = np.empty((m, k), np.int32)
    I = np.empty((m, k), np.int64)
    SK = np.empty((search.nparts if by_rows else 1, m, k), np.int32)
    SI = np.empty((search.nparts if by_rows else 1, m, k), np.int64)
    search.hk, search.hi = <int32_t *>cnp.PyArray_DATA(K), <int64_t *>cnp.PyArray_DATA(I)
    search.sk, search.si = <int32_t *>cnp.PyArray_DATA(SK), <int64_t *>cnp.PyArray_DATA(SI)
    if not by_rows:  # a row split seeds the result from the first part's heaps (_finish)
        pplx_heap_init(search.hk, search.hi, m * k)
    _run(search, _part_by_rows if by_rows else _part_by_queries)
    with nogil:
        _finish(search.hk, search.hi, m, k, search.sk, search.si, search.nparts if by_rows else 0)
    return K, I


def topk_hamming(queries, codes, Py_ssize_t k_wanted, int threads, int64_t base=0):
    """(D int32 (m, k), I int64 (m, k)) ascending, padded with (INT32_MAX, -1)."""
    cdef _Pair p = _pair(queries, codes, "queries", "codes", cnp.NPY_UINT8, "uint8")
    cdef Py_ssize_t k = _heap_size(k_wanted, p.n)
    cdef _Search search = _new_search(p, k, 0, base)
    search.Qb = <const uint8_t *>cnp.PyArray_DATA(p.q)
    search.Xb = <const uint8_t *>cnp.PyArray_DATA(p.x)
    D, I = _topk(&search, threads, _scan_hamming)   # the keys are the distances
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

    cdef _Search search = _new_search(p, k, 0, base)
    q16 = _with_queries(&search, p)
    search.X8 = <const int8_t *>cnp.PyArray_DATA(p.x)
    search.metric = PPLX_METRIC_COSINE if cosine else PPLX_METRIC_DOT
    search.qn, search.xn = qn, xn
    keys_arr, I = _topk(&search, threads, _scan_int8)
    S = np.empty((p.m, k), np.float32)
    cdef float *sv = <float *>cnp.PyArray_DATA(S)
    cdef Py_ssize_t i
    with nogil:
        for i in range(p.m * k):
            if search.hi[i] == -1:
                sv[i] = -INFINITY
            elif cosine:
                sv[i] = pplx_score_of_key(search.hk[i])
            else:
                sv[i] = <float>(-<int64_t>search.hk[i])
    return _padded(S, I, k_wanted, -np.inf)


cdef void _finish(int32_t *hk, int64_t *hi, Py_ssize_t m, Py_ssize_t k, const int32_t *sk, const int64_t *si,
                  int row_parts) noexcept nogil:
    """Merge the per-part heaps of a row split (part 0 seeds the result),
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


cdef int _matrix_parts(Py_ssize_t n, int threads):
    """Row ranges of a full matrix: one per thread, each of MIN_ROWS_PER_THREAD rows or more."""
    return max(1, min(threads, <int>(n // MIN_ROWS_PER_THREAD)))


def hamming_matrix(queries, codes, int threads, out=None):
    """int32 (m, n) distances, or (n,) for one 1-D query."""
    cdef _Pair p = _pair(queries, codes, "queries", "codes", cnp.NPY_UINT8, "uint8")
    cdef cnp.ndarray o = out_array(out, cnp.NPY_INT32, 1, p.n) if p.one else \
        out_array(out, cnp.NPY_INT32, 2, p.m, p.n)
    disjoint_array(out, o, p.q, "queries")
    disjoint_array(out, o, p.x, "codes")
    cdef _Search search = _new_search(p, 0, _matrix_parts(p.n, threads), 0)
    search.Qb = <const uint8_t *>cnp.PyArray_DATA(p.q)
    search.Xb = <const uint8_t *>cnp.PyArray_DATA(p.x)
    search.D = <int32_t *>cnp.PyArray_DATA(o)
    search.fill = _fill_hamming
    _run(&search, _part_matrix)
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
    cdef _Search search = _new_search(p, 0, _matrix_parts(p.n, threads), 0)
    q16 = _with_queries(&search, p)
    search.X8 = <const int8_t *>cnp.PyArray_DATA(p.x)
    search.D = <int32_t *>cnp.PyArray_DATA(o)
    search.fill = _fill_dot
    _run(&search, _part_matrix)
    return o
