"""Exact similarity and top-k search over packed binary codes and int8 vectors.

Results are shaped like faiss's: ``(distances_or_scores, indices)`` with one
row per query, best first, ties broken by the lower row index (the same
answer whatever ``threads`` is).  When ``k`` exceeds the number of rows the
missing entries have index ``-1`` and distance ``INT32_MAX`` (binary) or
score ``-inf`` (int8), up to ``max(n, 1024)`` of them: a ``k`` that would
pad more is a ValueError (:func:`pplx_codec.ranking.max_columns`).  A 1-D
query gives 1-D results.

Metrics: Hamming distance for codes; for int8 vectors cosine (the right one
for Perplexity's unnormalized int8 output) or the exact integer dot product.
Nothing here copies the database: rows may be a ``np.memmap`` or a view with
any row stride, as long as each row's bytes are adjacent.

``threads`` defaults to the cores this process may run on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from . import _search
from .ranking import MAX_THREADS as MAX_THREADS  # public here before ranking.py held it
from .ranking import (
    PAD_DISTANCE,
    best_first,
    check_db_norms,
    check_k,
    check_metric,
    check_reported_norms,
    check_threads,
    cosine_of_dot,
    default_threads,
    pad,
    squeeze,
)
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


def hamming(q: np.ndarray, codes: np.ndarray, threads: int | None = None,
            out: np.ndarray | None = None) -> npt.NDArray[np.int32]:
    """Hamming distances (int32, shape ``(n,)``) from one packed code ``q``
    (uint8, ``(w,)``) to each row of ``codes`` (uint8, ``(n, w)``)."""
    if isinstance(q, np.ndarray) and q.ndim != 1:
        raise ValueError(f"q must be one code (1-D); use hamming_matrix for {q.ndim}-D queries")
    return _search.hamming_matrix(q, codes, check_threads(threads), out)


def hamming_matrix(queries: np.ndarray, codes: np.ndarray, threads: int | None = None,
                   out: np.ndarray | None = None) -> npt.NDArray[np.int32]:
    """All-pairs Hamming distances, int32 ``(m, n)``.  This materialises the
    whole matrix: for the nearest rows use :func:`search_binary`."""
    return _search.hamming_matrix(queries, codes, check_threads(threads), out)


def dot(q: np.ndarray, db: np.ndarray, threads: int | None = None,
        out: np.ndarray | None = None) -> npt.NDArray[np.int32]:
    """Exact int32 dot products of one int8 vector with each row of ``db``."""
    if isinstance(q, np.ndarray) and q.ndim != 1:
        raise ValueError(f"q must be one vector (1-D); use dot_matrix for {q.ndim}-D queries")
    return _search.dot_matrix(q, db, check_threads(threads), out)


def dot_matrix(queries: np.ndarray, db: np.ndarray, threads: int | None = None,
               out: np.ndarray | None = None) -> npt.NDArray[np.int32]:
    """Exact int32 dot products, ``(m, n)`` (int8 products summed in int32;
    rows of up to 131071 dimensions cannot overflow)."""
    return _search.dot_matrix(queries, db, check_threads(threads), out)


def cosine(queries: np.ndarray, db: np.ndarray, db_norms: np.ndarray | None = None,
           threads: int | None = None) -> npt.NDArray[np.float32]:
    """float32 cosine similarities, ``(m, n)`` (``(n,)`` for a 1-D query).

    Each value is the exact integer dot product divided by the product of the
    two L2 norms in double precision, rounded once; 0 where either vector is
    all zeros.  ``db_norms`` (from :func:`pplx_codec.norms`) saves a pass over
    ``db`` when it is searched repeatedly.
    """
    d = _search.dot_matrix(queries, db, check_threads(threads))
    qn = _norms(queries)
    if db_norms is None:
        return cosine_of_dot(d, qn[..., None] if d.ndim == 2 else qn, _norms(db))
    xn = check_db_norms(db_norms, db.shape[0], db.shape[1], db)   # a norm of 0 is an all-zero row's
    s = cosine_of_dot(d, qn[..., None] if d.ndim == 2 else qn, xn)
    # Norms that do not belong to db, checked where it costs little: recomputed,
    # the norm of each query's top row (a norm too small inflates its row's
    # score, so the rows it ranks wrongly rise to where this looks).
    if s.size:
        _check_reported(db, xn, np.argmax(np.abs(s), axis=-1))
    return s


def _check_reported(db: np.ndarray, db_norms: np.ndarray, I: np.ndarray) -> None:
    """:func:`~pplx_codec.ranking.check_reported_norms` of the rows ``I`` of ``db``."""
    ids = np.asarray(I)
    ids = ids[ids >= 0]
    check_reported_norms(ids, db[ids], db_norms[ids])


def _rows(x) -> int | None:
    """The row count of a 2-D array (bounds ``k``), None for anything else
    (the compiled search refuses it, before it allocates any result)."""
    return x.shape[0] if isinstance(x, np.ndarray) and x.ndim == 2 else None


def search_binary(queries: np.ndarray, codes: np.ndarray, k: int, threads: int | None = None,
                  ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    """The ``k`` codes nearest to each query by Hamming distance.

    ``queries``: uint8 ``(m, w)`` (or ``(w,)``) packed in the same bit order as
    ``codes`` (uint8 ``(n, w)``).  Returns ``(D, I)``: int32 distances
    ascending and int64 row indices, each ``(m, k)``.  The top-k is kept in
    per-query heaps while scanning: memory is O(m * k), not O(m * n).
    """
    k = check_k(k, _rows(codes))
    D, I = _search.topk_hamming(queries, codes, k, check_threads(threads))
    return squeeze(isinstance(queries, np.ndarray) and queries.ndim == 1, D, I)


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
    k = check_k(k, _rows(db))
    cos = check_metric(metric)
    if not cos and db_norms is not None:
        raise ValueError("db_norms is only used with metric='cosine'")
    qn = xn = None
    if cos:
        if not isinstance(db, np.ndarray) or db.ndim != 2:
            _search.topk_int8(queries, db, k, False, None, None, 1)  # raises the shape/type error
        qn = np.atleast_1d(_norms(queries))
        xn = _norms(db) if db_norms is None else check_db_norms(db_norms, db.shape[0], db.shape[1], db)
    S, I = _search.topk_int8(queries, db, k, cos, qn, xn, check_threads(threads))
    if db_norms is not None and xn is not None:  # xn: db_norms checked (metric="cosine")
        _check_reported(db, xn, I)
    return squeeze(isinstance(queries, np.ndarray) and queries.ndim == 1, S, I)


def merge_topk(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int, offsets: Sequence[int] | None = None,
               descending: bool = False) -> tuple[np.ndarray, npt.NDArray[np.int64]]:
    """Merge per-shard ``(D, I)`` results into the result one search over all
    shards would give.

    ``parts``: results of the same queries against each shard (each ``(m, k_i)``
    or 1-D, best first, ``-1`` for padding).  ``offsets``: the global index of
    each shard's first row, added to its indices (default: none, the indices
    are global already).  ``descending``: True for similarities (int8), False
    for distances (Hamming).  Ties are broken by the lower global index, as in
    a single search; padding sorts last and stays ``-1``.  A NaN in ``D``
    is a ValueError (it has no place in the order), and so is a ``k`` that
    would pad beyond the parts' columns more than a search pads beyond its
    rows (:func:`pplx_codec.ranking.max_columns`).
    """
    k = check_k(k)
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
        # NaN is in no order: it would be dropped or kept depending on its neighbours
        if D.dtype.kind == "f" and np.isnan(D).any():
            at = ", ".join(str(int(i)) for i in np.argwhere(np.isnan(D))[0])
            raise ValueError(f"part {p}: D[{at}] is NaN; merge_topk ranks numbers only (no search gives NaN)")
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
    check_k(k, D.shape[1], of="candidate")   # padding beyond the candidates is bounded as a search's is
    D, I = best_first(D, I, k, descending)
    D, I = pad(D, I, k, descending)  # fewer candidates than k in total: pad like a search does
    return squeeze(one, D, I)
