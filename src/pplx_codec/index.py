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

from . import _checks, ranking, search
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
        return _search_segments(self._segments, lambda i, seg: search.search_binary(q, seg, k, threads), k,
                                descending=False, empty=lambda: search.search_binary(
                                    q, np.empty((0, self.width), np.uint8), k, threads))


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
        their ``pplx_codec.norms`` if already known (e.g. stored beside a memmap)."""
        v = _rows(vectors, "vectors", np.int8, self.dim, "dimensions")
        if norms is None:
            n = _norms(v)
        else:
            n = norms
            if not isinstance(n, np.ndarray) or n.dtype != np.float32 or n.shape != (v.shape[0],):
                raise ValueError(f"norms must be float32 of shape ({v.shape[0]},) as pplx_codec.norms gives")
            n = np.ascontiguousarray(n)
        self._segments.append(v)
        self._norms.append(n)

    def search(self, queries: np.ndarray, k: int, metric: str = "cosine",
               threads: int | None = None) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """``(S, I)``: float32 similarities descending and int64 row indices of
        the ``k`` most similar rows per query (see :func:`search.search_int8`)."""
        q = _queries_int8(queries, self.dim)
        S, I = _search_segments(
            self._segments,
            lambda i, seg: search.search_int8(q, seg, k, metric, self._norms[i] if metric == "cosine" else None,
                                              threads),
            k, descending=True,
            empty=lambda: search.search_int8(q, np.empty((0, self.dim), np.int8), k, metric, threads=threads))
        if metric == "dot" and len(self._segments.arrays) > 1:
            # float32 scores tie above 2**24 where the integers differ: re-rank
            # the merged candidates by their exact dot products
            one = q.ndim == 1
            q2, I2 = (q[None], I[None]) if one else (q, I)
            d, I2 = ranking.best_first(self.exact_dots(q2, I2), I2, k, descending=True)
            return ranking.squeeze(one, ranking.dot_scores(d, I2), I2)
        return S, I

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
        k = ranking.check_k(k)
        rescore = _checks.positive_int(rescore, "rescore")
        q = _queries_int8(queries, self.dim)
        one = q.ndim == 1
        q2 = q[None] if one else q
        _, cand = self.binary.search(pack_bits(q2, self.bitorder), k * rescore, threads)
        return ranking.squeeze(one, *ranking.rescore(q2, cand, self.int8, k))


def _queries_int8(queries, dim: int) -> np.ndarray:
    if not isinstance(queries, np.ndarray):
        raise TypeError(f"queries must be a numpy array, got {type(queries).__name__}")
    if queries.dtype != np.int8:
        raise TypeError(f"queries must have dtype int8, got {queries.dtype}")
    if queries.ndim not in (1, 2) or queries.shape[-1] != dim:
        raise ValueError(f"queries must be (m, {dim}) or ({dim},) int8, got shape {queries.shape}")
    return queries


def _search_segments(segments: _Segments, one, k: int, descending: bool, empty):
    if not segments.arrays:
        return empty()
    if len(segments.arrays) == 1:
        return one(0, segments.arrays[0])
    parts = [one(i, a) for i, a in enumerate(segments.arrays)]
    return search.merge_topk(parts, k, offsets=segments.starts, descending=descending)
