"""Exact indexes over Perplexity embeddings: binary codes, int8 vectors, both.

Each ``add()`` keeps the caller's array as one segment, without copying
(a ``np.memmap`` stays a memmap, so a corpus larger than RAM is searched
straight from disk); the arrays must not be modified afterwards.  Searches run
over every segment and merge with :func:`pplx_codec.search.merge_topk`, so
the result equals one search over the concatenated rows, indices included.

``Index`` holds both forms of the same rows and implements the published
binary-retrieval + int8-rescoring recipe: the ``k * rescore`` nearest codes
by Hamming distance, re-ranked by exact int8 cosine.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from . import _checks, _search, ranking, search
from .bits import pack_bits
from .vectors import norms as _norms

__all__ = ["BinaryIndex", "Int8Index", "Index"]


def _dim(dim) -> int:
    return _checks.positive_int(dim, "dim")


def _rows(x, name: str, dtype, width: int, unit: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")
    if x.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)}, got {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows), got {x.ndim} dimension(s)")
    if x.shape[1] != width:
        raise ValueError(f"{name} have {x.shape[1]} {unit} per row, this index holds {width}")
    if x.shape[0] > 0 and x.shape[1] > 1 and x.strides[1] != x.itemsize:  # (0, d) arrays may have 0 strides
        raise ValueError(f"{name} rows must be contiguous; pass np.ascontiguousarray(...) (which copies)")
    return x


class _Segments:
    """Arrays added one by one, and where each starts in the global numbering."""

    def __init__(self):
        self.arrays: list[np.ndarray] = []
        self.starts: list[int] = []
        self.ntotal = 0

    def append(self, a: np.ndarray) -> None:
        self.arrays.append(a)
        self.starts.append(self.ntotal)
        self.ntotal += a.shape[0]

    def rows(self, ids: np.ndarray, width: int, dtype) -> np.ndarray:
        """Rows at global indices ``ids`` (any shape, -1 gives zeros), gathered
        segment by segment: only these rows are read (a memmap is not loaded)."""
        out = np.zeros(ids.shape + (width,), dtype)
        for a, start in zip(self.arrays, self.starts, strict=True):
            local = ids - start
            hit = (local >= 0) & (local < a.shape[0])
            if hit.any():
                out[hit] = a[local[hit]]
        return out


class BinaryIndex:
    """Packed binary codes searched by exact Hamming distance.

    ``bitorder``: how the stored codes are packed, ``"little"`` (LSB first,
    Perplexity's ``base64_binary``) or ``"big"`` (np.packbits' default,
    faiss).  Codes in the other order give wrong answers silently, so every
    method that takes packed codes accepts ``bitorder=`` to state theirs and
    refuses a mismatch; vectors (int8/float/bool) are packed in the index's
    order automatically.
    """

    def __init__(self, dim: int, bitorder: str = "little"):
        self.dim = _dim(dim)
        if self.dim % 8:
            raise ValueError(f"dim must be a multiple of 8 for packed codes, got {self.dim}")
        _checks.bitorder(bitorder)
        self.bitorder = bitorder
        self.width = self.dim // 8
        self._segments = _Segments()

    @property
    def ntotal(self) -> int:
        return self._segments.ntotal

    def __len__(self) -> int:
        return self.ntotal

    def __repr__(self) -> str:
        return f"BinaryIndex(dim={self.dim}, bitorder={self.bitorder!r}, ntotal={self.ntotal})"

    def packed(self, codes: np.ndarray, bitorder: str | None = None) -> np.ndarray:
        """The rows :meth:`add` would append for ``codes``, checked the same
        way, without appending them: packed uint8 codes as given (not
        copied; ``bitorder`` states theirs) or vectors packed in this index's
        order.  (:class:`Index` checks codes against its vectors with it.)"""
        return self._codes(codes, "codes", bitorder)

    def _codes(self, x, name: str, bitorder: str | None, allow_1d: bool = False) -> np.ndarray:
        """Packed codes in this index's bit order from codes or vectors."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")
        one = allow_1d and x.ndim == 1
        if x.dtype == np.uint8:
            if bitorder is not None:
                _checks.bitorder(bitorder)
                if bitorder != self.bitorder:
                    raise ValueError(f"{name} are packed {bitorder!r} (bitorder={bitorder!r}) but this index holds "
                                     f"{self.bitorder!r} codes; convert with pplx_codec.reverse_bitorder")
            x2 = _rows(x[None] if one else x, name, np.uint8, self.width, "bytes")
            return x2[0] if one else x2
        if x.dtype in (np.int8, np.float32, np.float64, np.bool_):
            v = _rows(x[None] if one else x, name, x.dtype, self.dim, "dimensions")
            packed = pack_bits(v, self.bitorder)
            return packed[0] if one else packed
        raise TypeError(f"{name} must be packed uint8 codes or int8/float32/float64/bool vectors, got {x.dtype}")

    def add(self, codes: np.ndarray, bitorder: str | None = None) -> None:
        """Append rows: packed uint8 ``(n, dim // 8)`` codes (kept as given, not
        copied) or ``(n, dim)`` int8/float/bool vectors (packed, bit = value > 0)."""
        self._segments.append(self._codes(codes, "codes", bitorder))

    def search(self, queries: np.ndarray, k: int, threads: int | None = None,
               bitorder: str | None = None) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """``(D, I)``: int32 Hamming distances ascending and int64 row indices
        of the ``k`` nearest rows per query (see :func:`search.search_binary`)."""
        q = self._codes(queries, "queries", bitorder, allow_1d=True)
        k = ranking.check_k(k, self.ntotal)
        return _search_segments(self._segments, lambda i, seg, kk: search.search_binary(q, seg, kk, threads), k,
                                descending=False, empty=np.empty((0, self.width), np.uint8))


class Int8Index:
    """int8 vectors searched by exact cosine (default) or integer dot product.

    Row norms are computed once per ``add()`` and cached, so a search reads
    only the int8 data.
    """

    def __init__(self, dim: int):
        self.dim = _dim(dim)
        self._segments = _Segments()
        self._norms: list[np.ndarray] = []

    @property
    def ntotal(self) -> int:
        return self._segments.ntotal

    def __len__(self) -> int:
        return self.ntotal

    def __repr__(self) -> str:
        return f"Int8Index(dim={self.dim}, ntotal={self.ntotal})"

    def add(self, vectors: np.ndarray, norms: np.ndarray | None = None) -> None:
        """Append ``(n, dim)`` int8 rows (kept as given, not copied).  ``norms``:
        their ``pplx_codec.norms`` if already known (e.g. stored beside a memmap),
        checked here as a search checks ``db_norms`` (float32, one per row,
        each a possible norm, 0 only for an all-zero row): a bad array is
        refused by this call, and the index is left as it was."""
        v = _rows(vectors, "vectors", np.int8, self.dim, "dimensions")
        if norms is None:
            n = _norms(v)
        else:
            n = ranking.check_db_norms(norms, v.shape[0], self.dim, v, name="norms", of="vectors")
        self._segments.append(v)
        self._norms.append(n)

    def search(self, queries: np.ndarray, k: int, metric: str = "cosine",
               threads: int | None = None) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """``(S, I)``: float32 similarities descending and int64 row indices of
        the ``k`` most similar rows per query (see :func:`search.search_int8`)."""
        q = _queries_int8(queries, self.dim)
        k = ranking.check_k(k, self.ntotal)
        cos = ranking.check_metric(metric)
        threads = ranking.check_threads(threads)
        one = q.ndim == 1
        q2 = q[None] if one else q
        qn = _norms(q2) if cos else None
        S, I = _search_segments(
            self._segments,
            lambda i, seg, kk: _search.topk_int8(q2, seg, kk, cos, qn, self._norm_list[i] if cos else None,
                                                 threads),
            k, descending=True, empty=np.empty((0, self.dim), np.int8))
        if cos:
            self.check_reported(I)
        elif len(self._segments.arrays) > 1:
            # float32 scores tie above 2**24 where the integers differ: re-rank
            # the merged candidates by their exact dot products
            d, I = ranking.best_first(self.exact_dots(q2, I), I, k, descending=True)
            S = ranking.dot_scores(d, I)
        return ranking.squeeze(one, S, I)

    @property
    def _norm_list(self) -> list[np.ndarray]:
        """The cached norms of each segment (one empty array for no segment)."""
        return self._norms or [np.empty(0, np.float32)]

    def check_reported(self, I: np.ndarray) -> None:
        """The cached norms of the rows a search reports (``I``, global) against
        their recomputed norms (see :func:`pplx_codec.ranking.check_reported_norms`):
        norms given to :meth:`add` that are too small would rank their rows
        silently high."""
        ids = I[I >= 0]
        ranking.check_reported_norms(ids, self._segments.rows(ids, self.dim, np.int8), self.norms_of(ids),
                                     name="norms given to add()", of="vectors")

    def exact_dots(self, q: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Exact int64 dot products of each query ``q[i]`` with the rows
        ``ids[i, :]`` (0 for -1); only those rows are read."""
        rows = self._segments.rows(ids, self.dim, np.int8)        # (m, c, dim)
        return ranking.exact_dots(q, ids, rows.__getitem__)

    def norms_of(self, ids: np.ndarray) -> np.ndarray:
        """Cached norms of the rows at global indices ``ids`` (0 for -1)."""
        out = np.zeros(ids.shape, np.float32)
        for n, start in zip(self._norms, self._segments.starts, strict=True):
            local = ids - start
            hit = (local >= 0) & (local < n.shape[0])
            out[hit] = n[local[hit]]
        return out


class Index:
    """The same rows as binary codes and int8 vectors: fast binary retrieval,
    exact int8 cosine rescoring.

    ``add(vectors)`` derives the codes with ``pack_bits(vectors, bitorder)``
    (bit = value > 0) unless the API's own ``base64_binary`` codes are given
    as ``codes=`` (a value that rounded to int8 0 has bit 1 there when the
    float was positive; either is fine for retrieval).
    """

    def __init__(self, dim: int, bitorder: str = "little"):
        self.binary = BinaryIndex(dim, bitorder)
        self.int8 = Int8Index(dim)
        self.dim = self.binary.dim

    @property
    def bitorder(self) -> str:
        return self.binary.bitorder

    @property
    def ntotal(self) -> int:
        return self.int8.ntotal

    def __len__(self) -> int:
        return self.ntotal

    def __repr__(self) -> str:
        return f"Index(dim={self.dim}, bitorder={self.bitorder!r}, ntotal={self.ntotal})"

    def add(self, vectors: np.ndarray, codes: np.ndarray | None = None, bitorder: str | None = None,
            norms: np.ndarray | None = None) -> None:
        """Append ``(n, dim)`` int8 rows and their packed codes (derived when
        ``codes`` is None; ``bitorder`` states the order of given codes)."""
        v = _rows(vectors, "vectors", np.int8, self.dim, "dimensions")
        c = self.binary.packed(v if codes is None else codes, bitorder)
        if c.shape[0] != v.shape[0]:
            raise ValueError(f"got {c.shape[0]} codes for {v.shape[0]} vectors")
        self.int8.add(v, norms)
        self.binary.add(c)   # packed and checked above: kept as they are, cannot fail here

    def search(self, queries: np.ndarray, k: int, rescore: int = 4,
               threads: int | None = None) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """``(S, I)``: the ``k`` best rows by exact int8 cosine among the
        ``k * rescore`` nearest by Hamming distance (``rescore=1``: binary
        ranking, cosine scores).  ``queries``: int8 ``(m, dim)`` or ``(dim,)``."""
        k = ranking.check_k(k, self.ntotal)
        candidates = ranking.check_rescore(rescore, k, self.ntotal)
        q = _queries_int8(queries, self.dim)
        one = q.ndim == 1
        q2 = q[None] if one else q
        _, cand = self.binary.search(pack_bits(q2, self.bitorder), candidates, threads)
        S, I = ranking.rescore(q2, cand, self.int8, k)
        self.int8.check_reported(I)
        return ranking.squeeze(one, S, I)


def _queries_int8(queries, dim: int) -> np.ndarray:
    if not isinstance(queries, np.ndarray):
        raise TypeError(f"queries must be a numpy array, got {type(queries).__name__}")
    if queries.dtype != np.int8:
        raise TypeError(f"queries must have dtype int8, got {queries.dtype}")
    if queries.ndim not in (1, 2) or queries.shape[-1] != dim:
        raise ValueError(f"queries must be (m, {dim}) or ({dim},) int8, got shape {queries.shape}")
    return queries


def _search_segments(segments: _Segments, one, k: int, descending: bool, empty: np.ndarray):
    """``one(i, segment, k)`` over every segment (``empty``, 0 rows, when there
    is none), merged.  Several segments are each asked for at most their own
    rows (all the rows any can give): merge_topk pads to ``k`` once, instead
    of every segment padding to a ``k`` meant for the whole index."""
    arrays = segments.arrays or [empty]
    if len(arrays) == 1:
        return one(0, arrays[0], k)
    parts = [one(i, a, min(k, max(1, a.shape[0]))) for i, a in enumerate(arrays)]
    return search.merge_topk(parts, k, offsets=segments.starts, descending=descending)
