"""Exact similarity and top-k search over packed binary codes and int8 vectors.

Results are shaped like faiss's: ``(distances_or_scores, indices)`` with one
row per query, best first, ties broken by the lower row index (the same
answer whatever ``threads`` is).  When ``k`` exceeds the number of rows the
missing entries have index ``-1`` and distance ``INT32_MAX`` (binary) or
score ``-inf`` (int8).  A 1-D query gives 1-D results.

Metrics: Hamming distance for codes; for int8 vectors cosine (the right one
for Perplexity's unnormalized int8 output) or the exact integer dot product.
Nothing here copies the database: rows may be a ``np.memmap`` or a view with
any row stride, as long as each row's bytes are adjacent.

``threads`` defaults to the cores this process may run on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from . import _checks, _search
from .vectors import norms as _norms

__all__ = [
    "hamming",
    "hamming_matrix",
    "dot",
    "dot_matrix",
    "cosine",
    "search_binary",
    "search_int8",
    "merge_topk",
    "default_threads",
    "PAD_DISTANCE",
]

#: Distance reported for the padding entries of a binary search with k > n.
PAD_DISTANCE = int(np.iinfo(np.int32).max)

_METRICS = ("cosine", "dot")


def default_threads() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


#: More threads than this is a bug at the call site (the work splits into at
#: most rows / 2048 or queries / 4 parts anyway).
MAX_THREADS = 1 << 16


def _threads(threads) -> int:
    return default_threads() if threads is None else _checks.positive_int(threads, "threads", MAX_THREADS)


def _k(k) -> int:
    k = _checks.positive_int(k, "k", minimum=-sys.maxsize)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return k


def hamming(q: np.ndarray, codes: np.ndarray, threads: int | None = None,
            out: np.ndarray | None = None) -> npt.NDArray[np.int32]:
    """Hamming distances (int32, shape ``(n,)``) from one packed code ``q``
    (uint8, ``(w,)``) to each row of ``codes`` (uint8, ``(n, w)``)."""
    if isinstance(q, np.ndarray) and q.ndim != 1:
        raise ValueError(f"q must be one code (1-D); use hamming_matrix for {q.ndim}-D queries")
    return _search.hamming_matrix(q, codes, _threads(threads), out)


def hamming_matrix(queries: np.ndarray, codes: np.ndarray, threads: int | None = None,
                   out: np.ndarray | None = None) -> npt.NDArray[np.int32]:
    """All-pairs Hamming distances, int32 ``(m, n)``.  This materialises the
    whole matrix: for the nearest rows use :func:`search_binary`."""
    return _search.hamming_matrix(queries, codes, _threads(threads), out)


def dot(q: np.ndarray, db: np.ndarray, threads: int | None = None,
        out: np.ndarray | None = None) -> npt.NDArray[np.int32]:
    """Exact int32 dot products of one int8 vector with each row of ``db``."""
    if isinstance(q, np.ndarray) and q.ndim != 1:
        raise ValueError(f"q must be one vector (1-D); use dot_matrix for {q.ndim}-D queries")
    return _search.dot_matrix(q, db, _threads(threads), out)


def dot_matrix(queries: np.ndarray, db: np.ndarray, threads: int | None = None,
               out: np.ndarray | None = None) -> npt.NDArray[np.int32]:
    """Exact int32 dot products, ``(m, n)`` (int8 products summed in int32;
    rows of up to 131071 dimensions cannot overflow)."""
    return _search.dot_matrix(queries, db, _threads(threads), out)


def cosine(queries: np.ndarray, db: np.ndarray, db_norms: np.ndarray | None = None,
           threads: int | None = None) -> npt.NDArray[np.float32]:
    """float32 cosine similarities, ``(m, n)`` (``(n,)`` for a 1-D query).

    Each value is the exact integer dot product divided by the product of the
    two L2 norms in double precision, rounded once; 0 where either vector is
    all zeros.  ``db_norms`` (from :func:`pplx_codec.norms`) saves a pass over
    ``db`` when it is searched repeatedly.
    """
    d = _search.dot_matrix(queries, db, _threads(threads))
    qn = _norms(queries)
    if db_norms is None:
        return _cosine_of_dot(d, qn[..., None] if d.ndim == 2 else qn, _norms(db))
    xn = _db_norms(db_norms, db.shape[0], db.shape[1])
    s = _cosine_of_dot(d, qn[..., None] if d.ndim == 2 else qn, xn)
    # Norms that do not belong to db, checked where it costs little: a row
    # with "norm 0" but a non-zero dot product; and, recomputed, the norm of
    # each query's top row (a norm too small inflates its row's score, so the
    # rows it ranks wrongly rise to where this looks).
    zero = np.argwhere((xn == 0) & (d != 0))
    if zero.size:
        _norms_mismatch(db, xn, int(zero[0, -1]))
    if s.size:
        _check_reported_norms(db, xn, np.argmax(np.abs(s), axis=-1))
    return s


def _cosine_of_dot(d: np.ndarray, qn: np.ndarray, xn: np.ndarray) -> np.ndarray:
    """The kernels' cosine: exact dot / (float64 norm * float64 norm), rounded
    once to float32, 0 for a zero vector (arguments broadcast)."""
    den = qn.astype(np.float64) * xn.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(den > 0, d / np.where(den > 0, den, 1.0), 0.0)
    return s.astype(np.float32)


def _db_norms(db_norms, n: int, dim: int | None = None) -> np.ndarray:
    """Cached norms checked for what can be checked without reading db: type,
    shape, and range (an int8 row of ``dim`` values has a norm in
    ``0..128 * sqrt(dim)``; NaN is in no range)."""
    if not isinstance(db_norms, np.ndarray) or db_norms.dtype != np.float32:
        got = db_norms.dtype if isinstance(db_norms, np.ndarray) else type(db_norms).__name__
        raise TypeError(f"db_norms must be a float32 array (pplx_codec.norms(db)), got {got}")
    if db_norms.shape != (n,):
        raise ValueError(f"db_norms must have shape ({n},), one norm per row, got {db_norms.shape}")
    if n:
        top = np.inf if dim is None else np.float32(128 * np.sqrt(dim) * (1 + 1e-6))
        lo, hi = db_norms.min(), db_norms.max()
        if not (lo >= 0 and hi <= top):  # written so that NaN fails
            r = int(np.argmax(~((db_norms >= 0) & (db_norms <= top))))
            raise ValueError(f"db_norms[{r}] = {db_norms[r]} is not the norm of an int8 row"
                             + (f" of {dim} values (0..{128 * np.sqrt(dim):.1f})" if dim is not None else ""))
    return np.ascontiguousarray(db_norms)


def _norms_mismatch(db: np.ndarray, db_norms: np.ndarray, row: int):
    raise ValueError(f"db_norms do not match db: row {row} has norm {float(_norms(db[row]))}, db_norms says "
                     f"{float(db_norms[row])}; compute them with pplx_codec.norms(db)")


def _check_reported_norms(db: np.ndarray, db_norms: np.ndarray, I: np.ndarray) -> None:
    """Recompute the norms of the rows a search reports and compare them with
    the cached ones given.  Wrong cached norms (stale, or of another matrix)
    would rank silently wrong; norms too small push their rows into the top
    k, exactly the rows checked here, at O(k) rows per query rather than a
    pass over db.  (Norms too large sink their rows unseen: the check is a
    safety net, not a proof.)"""
    rows = np.asarray(I)
    rows = rows[rows >= 0]
    if rows.size:
        bad = np.flatnonzero(_norms(db[rows]) != db_norms[rows])
        if bad.size:
            _norms_mismatch(db, db_norms, int(rows[bad[0]]))


def _best_first(values: np.ndarray, ids: np.ndarray, k: int, descending: bool):
    """The first ``k`` columns of each row ordered as every search here orders
    results: padding (``ids < 0``) last, then value best first, then the lower
    index.  Values are compared exactly (integers as int64)."""
    pad = ids < 0
    key = values.astype(np.int64 if values.dtype.kind in "iu" else np.float64)
    order = np.lexsort((np.where(pad, np.iinfo(np.int64).max, ids), -key if descending else key, pad),
                       axis=1)[:, :k]
    return np.take_along_axis(values, order, axis=1), np.take_along_axis(ids, order, axis=1)


def _squeeze(one: bool, *arrays):
    return tuple(a[0] for a in arrays) if one else arrays


def search_binary(queries: np.ndarray, codes: np.ndarray, k: int, threads: int | None = None,
                  ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    """The ``k`` codes nearest to each query by Hamming distance.

    ``queries``: uint8 ``(m, w)`` (or ``(w,)``) packed in the same bit order as
    ``codes`` (uint8 ``(n, w)``).  Returns ``(D, I)``: int32 distances
    ascending and int64 row indices, each ``(m, k)``.  The top-k is kept in
    per-query heaps while scanning: memory is O(m * k), not O(m * n).
    """
    k = _k(k)
    D, I = _search.topk_hamming(queries, codes, k, _threads(threads))
    return _squeeze(isinstance(queries, np.ndarray) and queries.ndim == 1, D, I)


def search_int8(queries: np.ndarray, db: np.ndarray, k: int, metric: str = "cosine",
                db_norms: np.ndarray | None = None, threads: int | None = None,
                ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """The ``k`` rows of ``db`` most similar to each int8 query.

    ``metric``: ``"cosine"`` (default; Perplexity's int8 vectors are
    unnormalized, so this is the meaningful one) or ``"dot"`` (exact integer
    dot product, ranked exactly, reported as float32).  ``db_norms``: cached
    ``norms(db)``; computed when omitted.  Returns ``(S, I)``: float32
    similarities descending and int64 row indices, each ``(m, k)``.
    """
    k = _k(k)
    if metric not in _METRICS:
        raise ValueError(f"metric must be 'cosine' or 'dot', got {metric!r}")
    cos = metric == "cosine"
    if not cos and db_norms is not None:
        raise ValueError("db_norms is only used with metric='cosine'")
    qn = xn = None
    if cos:
        if not isinstance(db, np.ndarray) or db.ndim != 2:
            _search.topk_int8(queries, db, k, False, None, None, 1)  # raises the shape/type error
        qn = np.atleast_1d(_norms(queries))
        xn = _norms(db) if db_norms is None else _db_norms(db_norms, db.shape[0], db.shape[1])
    S, I = _search.topk_int8(queries, db, k, cos, qn, xn, _threads(threads))
    if db_norms is not None and xn is not None:  # xn: db_norms checked (metric="cosine")
        _check_reported_norms(db, xn, I)
    return _squeeze(isinstance(queries, np.ndarray) and queries.ndim == 1, S, I)


def merge_topk(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int, offsets: Sequence[int] | None = None,
               descending: bool = False) -> tuple[np.ndarray, npt.NDArray[np.int64]]:
    """Merge per-shard ``(D, I)`` results into the result one search over all
    shards would give.

    ``parts``: results of the same queries against each shard (each ``(m, k_i)``
    or 1-D, best first, ``-1`` for padding).  ``offsets``: the global index of
    each shard's first row, added to its indices (default: none, the indices
    are global already).  ``descending``: True for similarities (int8), False
    for distances (Hamming).  Ties are broken by the lower global index, as in
    a single search; padding sorts last and stays ``-1``.
    """
    k = _k(k)
    if not parts:
        raise ValueError("parts is empty: nothing to merge")
    if offsets is not None and len(offsets) != len(parts):
        raise ValueError(f"got {len(offsets)} offsets for {len(parts)} parts")
    one = np.ndim(parts[0][0]) == 1
    ds: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    for p, part in enumerate(parts):
        try:
            D, I = part
        except (TypeError, ValueError):
            raise TypeError(f"part {p}: expected a (D, I) pair, got {type(part).__name__}") from None
        D, I = np.asarray(D), np.asarray(I)
        # one shape rule for all parts: a 1-D part among 2-D ones (or the
        # reverse) is a mix-up of single- and multi-query results
        if D.ndim not in (1, 2) or D.ndim != (1 if one else 2) or D.shape != I.shape:
            raise ValueError(f"part {p}: D {D.shape} and I {I.shape} must have the same shape, "
                             f"{'1-D' if one else '2-D'} like part 0")
        if D.dtype.kind not in "iuf" or I.dtype.kind not in "iu":
            raise TypeError(f"part {p}: D must be numbers and I integers, got {D.dtype} and {I.dtype}")
        D, I = np.atleast_2d(D), np.atleast_2d(I)
        if ds and D.shape[0] != ds[0].shape[0]:
            raise ValueError(f"part {p}: {D.shape[0]} query rows, part 0 has {ds[0].shape[0]}")
        I = I.astype(np.int64, copy=True)
        if offsets is not None:
            I[I >= 0] += int(offsets[p])
        ds.append(D)
        ids.append(I)
    D = np.concatenate(ds, axis=1)
    I = np.concatenate(ids, axis=1)
    D, I = _best_first(D, I, k, descending)
    if D.shape[1] < k:  # fewer candidates than k in total: pad like a search does
        extra = k - D.shape[1]
        fill = -np.inf if descending else PAD_DISTANCE
        D = np.concatenate([D, np.full((D.shape[0], extra), fill, D.dtype)], axis=1)
        I = np.concatenate([I, np.full((I.shape[0], extra), -1, np.int64)], axis=1)
    return _squeeze(one, D, I)
