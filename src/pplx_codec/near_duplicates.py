"""Near-duplicate detection: the groups of rows whose cosine is at least a threshold.

The definition, exactly: rows ``i != j`` are *near duplicates* when the
cosine a search reports for them (:func:`pplx_codec.ranking.cosine_of_dot`:
the exact integer dot product over the product of the two float32 norms in
double precision, rounded once to float32, and 0 when either row is all
zeros) is ``>= threshold``, compared as real numbers.  The *groups* are the
connected components of the graph with an edge between every pair of near
duplicates (so a chain a~b, b~c is one group even when a and c are further
apart), listed with at least two rows each, rows ascending, groups ordered by
their first row.  The answer does not depend on ``threads`` or ``block_rows``.
A row's cosine with its own copy is within 2**-23 of 1, either side (the
norms are float32), so a threshold of exactly 1.0 may miss exact copies: use
e.g. 0.9999 for "identical up to rounding".

By default the search is exact: the int8 dot-product kernel runs over blocks
of rows against every later row (each pair once, never an ``n x n`` matrix:
a block holds at most :data:`BLOCK_ENTRIES` dot products), a per-row integer
bound keeps only the dots that can reach the threshold, and those are
confirmed with the exact cosine.  ``candidates=K`` is the fast mode: each
row's ``K`` nearest rows by Hamming distance of the binary codes
(:func:`pplx_codec.search_binary`, all rows' codes as one query matrix per
block), confirmed with the exact cosine.  It never reports a false pair, but
it misses pairs whose codes are not among each other's ``K`` nearest (the
README gives the measured recall).
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np

from . import ranking, search
from .bits import pack_bits
from .vectors import norms

if TYPE_CHECKING:
    from .store import Stored

__all__ = ["dedup", "check_threshold", "BLOCK_ENTRIES"]

#: Dot products held at once by the exact search (int32: 16 MiB), whatever the row count.
BLOCK_ENTRIES = 1 << 22
#: Confirmed pairs kept before they are merged into the groups.
_PENDING = 1 << 22
#: Rows per block of the fast mode's binary search.
_FAST_BLOCK = 2048


def check_threshold(threshold) -> float:
    """``threshold`` as a float in -1..1 (a cosine); NaN, a bool or a non-number is refused."""
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a number, got {type(threshold).__name__}")
    t = float(threshold)
    if not -1.0 <= t <= 1.0:  # written so that NaN fails
        raise ValueError(f"threshold must be a cosine in -1..1, got {threshold}")
    return t


def dedup(vectors: np.ndarray | Stored, threshold: float = 0.95, *, candidates: int | None = None,
          codes: np.ndarray | None = None, threads: int | None = None,
          block_rows: int | None = None) -> list[list[int]]:
    """The groups of near-duplicate rows of ``vectors`` (see the module's
    docstring for the exact definition): a list of groups, each a list of
    two or more row indices, ascending; groups ordered by their first row.

    ``vectors``: int8 ``(n, dim)`` rows (a memmap is read block by block), or
    a :class:`pplx_codec.store.Stored` (its int8 rows, and its binary codes for
    ``candidates``).  ``threshold``: a cosine in -1..1.  ``candidates``: None
    (exact, the default) or ``K`` for the fast binary mode (``K`` Hamming
    neighbours per row, from ``codes`` packed in any one bit order, else the
    store's codes, else packed from ``vectors``).  ``block_rows``: rows per
    block of the exact search (default: as many as keep a block within
    :data:`BLOCK_ENTRIES` dot products).
    """
    v, stored_codes = _int8_rows(vectors)
    if codes is None:
        codes = stored_codes
    t = check_threshold(threshold)
    threads = ranking.check_threads(threads)
    n = v.shape[0]
    if candidates is not None:
        candidates = ranking.check_k(candidates)
    if block_rows is not None:
        block_rows = ranking.check_k(block_rows)
    groups = _Groups(n)
    if n >= 2:
        xn = norms(v)
        if candidates is None:
            _exact_pairs(v, xn, t, threads, block_rows, groups)
        else:
            _binary_pairs(v, xn, t, threads, candidates, _codes(codes, v), groups)
    return groups.listed()


def _int8_rows(vectors) -> tuple[np.ndarray, np.ndarray | None]:
    """The int8 rows of ``vectors`` (an array or a store), checked; and a store's binary codes."""
    codes = None
    if not isinstance(vectors, np.ndarray) and hasattr(vectors, "int8"):  # a Stored
        if vectors.int8 is None:
            raise ValueError("this store has no int8 vectors: dedup needs them for the exact cosine")
        vectors, codes = vectors.int8, getattr(vectors, "binary", None)
    if not isinstance(vectors, np.ndarray):
        raise TypeError(f"vectors must be an int8 numpy array or a store, got {type(vectors).__name__}")
    if vectors.dtype != np.int8:
        raise TypeError(f"vectors must have dtype int8, got {vectors.dtype}")
    if vectors.ndim != 2:
        raise ValueError(f"vectors must be 2-D (rows), got {vectors.ndim} dimension(s)")
    return vectors, codes


def _codes(codes, v: np.ndarray) -> np.ndarray:
    if codes is None:
        return pack_bits(v)
    width = -(-v.shape[1] // 8)
    if not isinstance(codes, np.ndarray) or codes.dtype != np.uint8 or codes.shape != (v.shape[0], width):
        got = f"{codes.dtype} {codes.shape}" if isinstance(codes, np.ndarray) else type(codes).__name__
        raise ValueError(f"codes must be packed uint8 ({v.shape[0]}, {width}), one row per vector, got {got}")
    return codes


def _exact_pairs(v: np.ndarray, xn: np.ndarray, t: float, threads: int, block_rows: int | None,
                 groups: _Groups) -> None:
    """Every pair i < j once: rows [s, e) against rows [s, n), block by block."""
    n = v.shape[0]
    # the smallest non-zero norm among rows s.. (a zero row is at cosine 0 with everything)
    suffix_min = np.minimum.accumulate(np.where(xn > 0, xn, np.inf)[::-1])[::-1].astype(np.float64)
    s = 0
    while s < n - 1:
        e = min(n, s + (block_rows or max(1, BLOCK_ENTRIES // (n - s))))
        d = search.dot_matrix(v[s:e], v[s:], threads)          # (e - s, n - s) int32
        if t > 0:
            r, c = np.nonzero(d >= _dot_bound(t, xn[s:e], suffix_min[s])[:, None])
        else:  # most pairs qualify: every dot is a candidate
            r, c = np.nonzero(np.ones(d.shape, bool))
        upper = c > r                                          # j > i: each pair once, no self pairs
        r, c = r[upper], c[upper]
        ok = ranking.cosine_of_dot(d[r, c], xn[s + r], xn[s + c]).astype(np.float64) >= t
        groups.add(s + r[ok], s + c[ok])
        s = e


def _dot_bound(t: float, row_norms: np.ndarray, min_norm: float) -> np.ndarray:
    """For ``t > 0``, per row ``i``: an integer that every dot ``d`` with a
    row ``j`` (norm >= ``min_norm``) whose cosine reaches ``t`` is at least.

    cosine >= t means the ratio d / (|i| |j|) >= t / (1 + 2**-23) once the
    float32 rounding (and the float64 one, far smaller) is undone, so
    d >= t (1 - 2**-23) |i| |j| >= t (1 - 2**-20) |i| min_norm, floored; and
    d >= 1, since a positive cosine needs a positive dot.  A bound, not the
    test: the exact cosine decides."""
    with np.errstate(invalid="ignore"):  # 0 * inf (a zero row, no non-zero row after it): no bound, NaN -> 1
        bound = np.floor(t * (1 - 2.0**-20) * row_norms.astype(np.float64) * min_norm)
    return np.clip(np.nan_to_num(bound, posinf=2**31 - 1), 1, 2**31 - 1).astype(np.int32)


def _binary_pairs(v: np.ndarray, xn: np.ndarray, t: float, threads: int, k: int, codes: np.ndarray,
                  groups: _Groups) -> None:
    """Each row's ``k`` nearest codes (itself excluded), confirmed by exact cosine."""
    n = v.shape[0]
    for s in range(0, n, _FAST_BLOCK):
        e = min(n, s + _FAST_BLOCK)
        _, ids = search.search_binary(codes[s:e], codes, min(k + 1, n), threads)
        rows = np.arange(s, e)[:, None]
        ids = np.where(ids == rows, -1, ids)                  # itself is no candidate
        safe = np.maximum(ids, 0)                             # -1 reads row 0, unused
        near = v[safe]                                        # (e - s, k + 1, dim)
        dots = ranking.exact_dots(v[s:e], ids, near.__getitem__)
        cos = ranking.cosine_of_dot(dots, xn[s:e, None], xn[safe]).astype(np.float64)
        r, c = np.nonzero((ids >= 0) & (cos >= t))
        groups.add(s + r, ids[r, c])


class _Groups:
    """Connected components of the pairs added: a forest of row labels, each
    pointing at a lower row of its component (the root: the lowest row).
    Pairs are buffered and merged in batches, vectorized: hook the higher
    root under the lower, then jump pointers until every label is a root,
    until every pair's ends share a root.  Memory: the labels and at most
    ``_PENDING`` buffered pairs."""

    def __init__(self, n: int):
        self.label = np.arange(n, dtype=np.int64)
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.count = 0

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        if a.size:
            self.pending.append((a.astype(np.int64), b.astype(np.int64)))
            self.count += a.size
            if self.count >= _PENDING:
                self._merge()

    def _merge(self) -> None:
        if not self.pending:
            return
        a = np.concatenate([p[0] for p in self.pending])
        b = np.concatenate([p[1] for p in self.pending])
        self.pending, self.count = [], 0
        label = self.label
        while True:
            la, lb = label[a], label[b]
            apart = la != lb
            if not apart.any():
                break
            a, b, la, lb = a[apart], b[apart], la[apart], lb[apart]
            np.minimum.at(label, np.maximum(la, lb), np.minimum(la, lb))   # labels are roots: hook
            while True:                                                   # then compress fully
                up = label[label]
                if np.array_equal(up, label):
                    break
                label = up
        self.label = label

    def listed(self) -> list[list[int]]:
        self._merge()
        label = self.label
        sizes = np.bincount(label, minlength=label.size) if label.size else np.zeros(0, np.int64)
        grouped = np.flatnonzero(sizes[label] >= 2)              # rows in a group, ascending
        order = np.argsort(label[grouped], kind="stable")        # by root, rows stay ascending
        rows = grouped[order]
        cuts = np.flatnonzero(np.diff(label[rows])) + 1
        return [part.tolist() for part in np.split(rows, cuts)] if rows.size else []

