"""How every search in the package orders, scores and pads its results, and
checks ``k`` and ``threads``: one definition each, shared by
:mod:`pplx_codec.search` (one array), :mod:`pplx_codec.index` (segments,
binary retrieval + int8 rescoring) and :mod:`pplx_codec.scaleout`
(dask blocks).  The lowest of those layers: it imports none of them.

- order: :func:`best_first` (padding last, best value first, then the lower
  row index), :func:`pad` up to ``k``, :func:`squeeze` for a 1-D query;
- scores: :func:`cosine_of_dot` (the kernels' cosine from an exact dot),
  :func:`exact_dots` of queries with candidate rows, :func:`dot_scores`
  (exact dots reported as float32), :func:`rescore` (exact cosine of
  candidates, best ``k`` first);
- arguments: :func:`check_k` (and its bound, :func:`max_columns`),
  :func:`check_rescore` (the candidates of a rescoring search),
  :func:`check_metric`, :func:`check_threads`, :func:`check_db_norms`
  (and :func:`check_reported_norms` after a search).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn, Protocol

import numpy as np

from . import _checks, _search
from .vectors import norms

__all__ = [
    "PAD_DISTANCE",
    "MAX_THREADS",
    "default_threads",
    "check_threads",
    "MAX_PADDING",
    "METRICS",
    "max_columns",
    "check_k",
    "check_rescore",
    "check_metric",
    "check_db_norms",
    "norms_mismatch",
    "check_reported_norms",
    "best_first",
    "pad",
    "squeeze",
    "cosine_of_dot",
    "exact_dots",
    "dot_scores",
    "CandidateRows",
    "rescore",
]

#: Distance reported for the padding entries of a binary search with k > n.
PAD_DISTANCE = int(np.iinfo(np.int32).max)

#: A search asked for more results than it has rows pads them (index -1), as
#: faiss does, up to this many columns beyond the rows, or as many as the rows
#: when they are more: ``k=10`` over 5 rows is padding, ``k=2**28`` over 20
#: rows is a mistake that would allocate gigabytes of it.
MAX_PADDING = 1024

#: Metrics of an int8 search.
METRICS = ("cosine", "dot")

#: More threads than this is a bug at the call site (the work splits into at
#: most rows / 2048 or queries / 4 parts anyway).
MAX_THREADS = 1 << 16


def default_threads() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def check_threads(threads) -> int:
    """``threads`` as given (1..MAX_THREADS), or :func:`default_threads` for None."""
    return default_threads() if threads is None else _checks.positive_int(threads, "threads", MAX_THREADS)


def max_columns(rows: int) -> int:
    """The most result columns a search of ``rows`` rows returns: the rows,
    then at most ``max(rows, MAX_PADDING)`` columns of padding."""
    return rows + max(rows, MAX_PADDING)


def check_k(k, rows: int | None = None, of: str = "row") -> int:
    """``k`` as an int >= 1: a bool or a non-integer is a TypeError, a ``k``
    below 1 a ValueError, and so is a ``k`` beyond :func:`max_columns` of the
    ``rows`` searched (``of``: what they are, for the message), or beyond a
    C size when ``rows`` is not known."""
    k = _checks.integer(k, "k")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if rows is None:
        if k > sys.maxsize:
            raise ValueError(f"k must be at most {sys.maxsize}, got {k}")
    elif k > max_columns(rows):
        raise ValueError(f"k must be at most {max_columns(rows)} for {rows} {of}{'' if rows == 1 else 's'} (a search "
                         f"pads at most max({of}s, {MAX_PADDING}) = {max_columns(rows) - rows} columns beyond them), "
                         f"got {k}" + (f"; k={rows} returns every {of}" if rows else ""))
    return k


def check_rescore(rescore, k: int, rows: int) -> int:
    """The candidates a binary retrieval of ``rows`` rows hands to rescoring
    for ``k`` results: ``k * rescore`` (``rescore`` an int >= 1, ``k``
    checked already), but never more than all the rows, or ``k`` when that is
    more.  Candidates beyond the rows would be padding, which rescoring ranks
    last: leaving them out changes no answer (``k=n, rescore=8`` is a fair
    request, not an error), and ``rescore=10**9`` allocates nothing extra."""
    rescore = _checks.integer(rescore, "rescore")
    if rescore < 1:
        raise ValueError(f"rescore must be positive, got {rescore}")
    return max(k, min(k * rescore, rows))


def check_metric(metric) -> bool:
    """True for ``"cosine"``, False for ``"dot"``; anything else is a ValueError."""
    if metric not in METRICS:
        raise ValueError(f"metric must be 'cosine' or 'dot', got {metric!r}")
    return metric == "cosine"


def check_db_norms(db_norms, n: int, dim: int | None = None, db: np.ndarray | None = None,
                   name: str = "db_norms", of: str = "db", offset: int = 0) -> np.ndarray:
    """Cached norms (``name``) of the ``n`` rows ``of``, checked for what costs
    little: type, shape, range (an int8 row of ``dim`` values has a norm in
    ``0..128 * sqrt(dim)``; NaN is in no range) and, given the rows ``db``,
    that each norm of 0 is an all-zero row's.  Messages number the rows from
    ``offset`` (``db`` a block of a larger array).  A zero norm in place of a
    real one would hide its row from every search (its cosine is 0 whatever
    the query) and no later check sees it (the row is never reported); the
    rows read are only those with norm 0, in chunks, stopping at the first
    wrong one: a norms array left at ``np.zeros`` costs one chunk."""
    if not isinstance(db_norms, np.ndarray) or db_norms.dtype != np.float32:
        got = db_norms.dtype if isinstance(db_norms, np.ndarray) else type(db_norms).__name__
        raise TypeError(f"{name} must be a float32 array (pplx_codec.norms({of})), got {got}")
    if db_norms.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one norm per row, got {db_norms.shape}")
    if n:
        top = np.inf if dim is None else np.float32(128 * np.sqrt(dim) * (1 + 1e-6))
        lo, hi = db_norms.min(), db_norms.max()
        if not (lo >= 0 and hi <= top):  # written so that NaN fails
            r = int(np.argmax(~((db_norms >= 0) & (db_norms <= top))))
            raise ValueError(f"{name}[{offset + r}] = {db_norms[r]} is not the norm of an int8 row"
                             + (f" of {dim} values (0..{128 * np.sqrt(dim):.1f})" if dim is not None else ""))
        if db is not None and lo == 0:  # -0.0 == 0 too
            zero = np.flatnonzero(db_norms == 0)
            for s in range(0, zero.size, 1024):
                rows = zero[s:s + 1024]
                wrong = np.flatnonzero(db[rows].any(axis=1))
                if wrong.size:
                    r = int(rows[wrong[0]])
                    norms_mismatch(norms(db[r]), db_norms[r], offset + r, name, of)
    return np.ascontiguousarray(db_norms)


def norms_mismatch(actual, cached, row: int, name: str = "db_norms", of: str = "db") -> NoReturn:
    """Raise: the cached norm of row ``row`` is ``cached``, its norm is ``actual``."""
    raise ValueError(f"{name} do not match {of}: row {row} has norm {float(actual)}, not {float(cached)}; "
                     f"compute them with pplx_codec.norms({of})")


def check_reported_norms(ids: np.ndarray, rows: np.ndarray, cached: np.ndarray, name: str = "db_norms",
                         of: str = "db") -> None:
    """Recompute the norms of the rows a search reports (``ids``, 1-D, no
    padding; ``rows``: theirs, ``(len(ids), dim)``) and compare them with the
    ``cached`` ones it used.  Wrong cached norms (stale, or of another
    matrix) would rank silently wrong; norms too small push their rows into
    the top k, exactly the rows checked here, at O(k) rows per query rather
    than a pass over db.  (Norms too large sink their rows unseen: the check
    is a safety net, not a proof.)"""
    if ids.size:
        actual = norms(rows)
        bad = np.flatnonzero(actual != cached)
        if bad.size:
            norms_mismatch(actual[bad[0]], cached[bad[0]], int(ids[bad[0]]), name, of)


def best_first(values: np.ndarray, ids: np.ndarray, k: int, descending: bool):
    """The first ``k`` columns of each row ordered as every search here orders
    results: padding (``ids < 0``) last, then value best first, then the lower
    index.  Values are compared exactly (integers as int64)."""
    padding = ids < 0
    key = values.astype(np.int64 if values.dtype.kind in "iu" else np.float64)
    order = np.lexsort((np.where(padding, np.iinfo(np.int64).max, ids), -key if descending else key, padding),
                       axis=1)[:, :k]
    return np.take_along_axis(values, order, axis=1), np.take_along_axis(ids, order, axis=1)


def pad(D: np.ndarray, I: np.ndarray, k: int, descending: bool):
    """``(D, I)`` (2-D) padded to ``k`` columns as a search pads when ``k``
    exceeds the row count: index -1, and score ``-inf`` (``descending``,
    similarities) or distance :data:`PAD_DISTANCE`.  Appended, not sorted
    in: callers order first (sorting again by float32 scores would undo the
    exact integer order of a dot search)."""
    extra = k - D.shape[1]
    if extra <= 0:
        return D, I
    m = D.shape[0]
    fill = -np.inf if descending else PAD_DISTANCE
    return (np.concatenate([D, np.full((m, extra), fill, D.dtype)], axis=1),
            np.concatenate([I, np.full((m, extra), -1, np.int64)], axis=1))


def squeeze(one: bool, *arrays):
    """The first row of each array for a single 1-D query (``one``), else the arrays."""
    return tuple(a[0] for a in arrays) if one else arrays


def cosine_of_dot(d: np.ndarray, qn: np.ndarray, xn: np.ndarray) -> np.ndarray:
    """The kernels' cosine: exact dot / (float64 norm * float64 norm), rounded
    once to float32, 0 for a zero vector (arguments broadcast)."""
    den = qn.astype(np.float64) * xn.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(den > 0, d / np.where(den > 0, den, 1.0), 0.0)
    return s.astype(np.float32)


def exact_dots(q: np.ndarray, ids: np.ndarray, rows_of: Callable[[int], np.ndarray]) -> np.ndarray:
    """Exact int64 dot products of each query ``q[i]`` with its candidates
    ``ids[i, :]`` (0 for padding, ``ids < 0``).  ``rows_of(i)``: query
    ``i``'s candidate rows, int8 ``(c, dim)``, each row's bytes adjacent (any
    row where ``ids[i]`` is padding); only those rows need to be read, query
    by query, so a memory-mapped database is not loaded."""
    if not (ids >= 0).any():   # no candidate at all (e.g. no rows): nothing to read
        return np.zeros(ids.shape, np.int64)
    dots = np.empty(ids.shape, np.int32)
    for i in range(ids.shape[0]):   # one kernel call per query over all its candidates
        _search.dot_matrix(q[i], rows_of(i), 1, dots[i])
    return np.where(ids >= 0, dots, 0).astype(np.int64)


def dot_scores(d: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Exact integer dot products reported as a dot search reports them:
    float32 (rounded once: |d| < 2**53), ``-inf`` for padding."""
    return np.where(ids >= 0, d.astype(np.float32), np.float32(-np.inf))


class CandidateRows(Protocol):
    """What :func:`rescore` reads of the candidate rows, by global index: an
    :class:`~pplx_codec.Int8Index`, or the rows a distributed search gathered."""

    def exact_dots(self, q: np.ndarray, ids: np.ndarray) -> np.ndarray: ...

    def norms_of(self, ids: np.ndarray) -> np.ndarray: ...


def rescore(q: np.ndarray, cand: np.ndarray, db: CandidateRows, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine of each query with its candidate rows, best k first (ties:
    lower index; -1 candidates stay padding)."""
    scores = cosine_of_dot(db.exact_dots(q, cand), norms(q)[:, None], db.norms_of(cand))
    scores[cand < 0] = -np.inf
    return best_first(scores, cand, k, descending=True)
