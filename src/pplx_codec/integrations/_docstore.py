"""The framework-free core of ``PerplexityVectorStore``: int8 rows and their
binary codes with ids, texts and metadata, deleted by tombstones, searched
exactly, persisted as a pplx-codec store directory.

Rows are kept as Perplexity sends them: int8, plus the packed sign bits
(LSB-first) for the binary stage of :class:`pplx_codec.Index`.  Rows of a
dimension that is not a multiple of 8 (another model's floats, e.g. the
6-dimensional fake embeddings of LangChain's standard tests) are padded
with zero columns to the next multiple of 8: zeros change no dot product and
no norm, so cosine is unchanged, and their bits are 0 in every row and
query, so Hamming distance is unchanged too.

Floats from another ``Embeddings`` are quantized here, row by row, as the
API quantizes: ``round(x * 127 / max|x|)`` (an all-zero row stays zero); their
codes are then the sign bits of those int8 values (bit = value > 0).

Persistence: every change rewrites the store at ``path`` (atomically, as
:func:`pplx_codec.store.save` does, dropping the tombstoned rows), but a
delete, which only writes the tombstone mask
(:func:`pplx_codec.store.delete_rows`).
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .. import store
from ..bits import pack_bits
from ..constants import EMBEDDING_MODELS
from ..index import Index
from ..ranking import check_k

__all__ = ["quantize_floats", "DocRows"]

#: meta.json keys of a document store
IDENTITY = "embedding"
VECTOR_DIMENSIONS = "vector_dimensions"


def quantize_floats(x) -> np.ndarray:
    """float rows -> int8 rows, each scaled by ``127 / max|row|`` and rounded
    half to even (an all-zero row stays zero).  ``ValueError`` for a
    non-finite value or a ragged list."""
    try:
        a = np.asarray(x, dtype=np.float64)
    except ValueError as e:  # ragged lists
        raise ValueError(f"embeddings must be rows of one length: {e}") from None
    if a.ndim != 2:
        raise ValueError(f"embeddings must be a list of vectors, got an array of shape {a.shape}")
    if not np.isfinite(a).all():
        row = int(np.flatnonzero(~np.isfinite(a).all(axis=1))[0])
        raise ValueError(f"embedding {row} has a non-finite value (NaN or infinity): it cannot be quantized")
    top = np.abs(a).max(axis=1, keepdims=True) if a.shape[1] else np.zeros((a.shape[0], 1))
    scale = np.divide(127.0, top, out=np.zeros_like(top), where=top > 0)
    return np.clip(np.rint(a * scale), -127, 127).astype(np.int8)


def _width(dim: int) -> int:
    return 8 * math.ceil(dim / 8)


def _pad(rows: np.ndarray, width: int) -> np.ndarray:
    if rows.shape[1] == width:
        return np.ascontiguousarray(rows)
    out = np.zeros((rows.shape[0], width), np.int8)
    out[:, :rows.shape[1]] = rows
    return out


class DocRows:
    """Rows with ids, texts and metadata; ``identity`` says how the rows were
    made (meta.json's ``embedding``: a reopened store must be given an
    embedding that makes the same rows)."""

    MAX_SEGMENTS = 16

    def __init__(self, dimensions: int, identity: dict, path: str | os.PathLike[str] | None = None):
        self.dim = dimensions
        self.width = _width(dimensions)
        self.identity = identity
        self.path = None if path is None else Path(path)
        self._int8: list[np.ndarray] = []
        self._codes: list[np.ndarray] = []
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.metadata: list[dict] = []
        self.deleted = np.zeros(0, bool)
        self.row_of: dict[str, int] = {}     # live rows only
        self._index = Index(self.width)

    # --- what is held ---

    def __len__(self) -> int:
        return len(self.row_of)

    @property
    def ntotal(self) -> int:
        return len(self.ids)

    def int8_rows(self, rows: Sequence[int]) -> np.ndarray:
        """The int8 rows at ``rows`` (unpadded: ``(len(rows), dimensions)``)."""
        all_rows = self._int8[0] if len(self._int8) == 1 else np.concatenate(self._int8 or [self._empty()])
        return all_rows[np.asarray(rows, np.intp), :self.dim]

    def _empty(self) -> np.ndarray:
        return np.empty((0, self.width), np.int8)

    # --- changes ---

    def add(self, rows: np.ndarray, texts: list[str], metadatas: list[dict] | None, ids: list[str | None] | None,
            codes: np.ndarray | None = None) -> list[str]:
        """Append rows (int8 ``(n, dimensions)``; ``codes``: their LSB-first
        sign bits when the caller has them) with their texts, metadata and
        ids (None or a missing one: a new uuid4).  An id already held is
        replaced: its old row becomes a tombstone, as does an earlier row of
        the same call with the id."""
        n = len(texts)
        if rows.dtype != np.int8 or rows.shape != (n, self.dim):
            raise ValueError(f"expected int8 rows of shape ({n}, {self.dim}), got {rows.dtype} {rows.shape}: "
                             "every row of a store has the dimensions of its embedding")
        metadatas = [{} for _ in range(n)] if metadatas is None else [dict(m or {}) for m in metadatas]
        got = [None] * n if ids is None else list(ids)
        if len(metadatas) != n or len(got) != n:
            raise ValueError(f"got {n} texts, {len(metadatas)} metadatas and {len(got)} ids: one of each per text")
        new_ids = [str(uuid.uuid4()) if i is None else i for i in got]
        for i in new_ids:
            if not isinstance(i, str):
                raise TypeError(f"ids must be str, got {type(i).__name__}")
        padded = _pad(rows, self.width)
        bits = pack_bits(padded, "little") if codes is None or self.width != self.dim else np.ascontiguousarray(codes)
        start = self.ntotal
        self.deleted = np.concatenate([self.deleted, np.zeros(n, bool)])
        for j, i in enumerate(new_ids):
            old = self.row_of.get(i)
            if old is not None:
                self.deleted[old] = True
            self.row_of[i] = start + j
        self.ids += new_ids
        self.texts += texts
        self.metadata += metadatas
        self._int8.append(padded)
        self._codes.append(bits)
        self._index.add(padded, codes=bits, bitorder="little")
        if self.path is not None:
            self.save()
        else:  # in memory: few segments to search, and replaced rows do not pile up
            compact = 2 * int(self.deleted.sum()) >= self.ntotal
            if compact or len(self._int8) > self.MAX_SEGMENTS:
                self._consolidate(compact)
        return new_ids

    def delete(self, ids: Sequence[str]) -> bool:
        """Tombstone the rows of ``ids`` (ids not held are ignored); True
        when a row was deleted."""
        rows = [self.row_of.pop(i) for i in ids if i in self.row_of]
        if not rows:
            return False
        self.deleted[rows] = True
        if self.path is not None and (self.path / "meta.json").is_file():
            store.delete_rows(self.path, rows)
        return True

    def _consolidate(self, compact: bool) -> None:
        """One segment of every row (tombstones dropped when ``compact``),
        and the index rebuilt over it."""
        keep = np.flatnonzero(~self.deleted) if compact else np.arange(self.ntotal)
        int8 = np.concatenate(self._int8 or [self._empty()])[keep]
        codes = np.concatenate(self._codes or [np.empty((0, self.width // 8), np.uint8)])[keep]
        self._set(int8, codes, [self.ids[r] for r in keep], [self.texts[r] for r in keep],
                  [self.metadata[r] for r in keep], self.deleted[keep])

    def _set(self, int8, codes, ids, texts, metadata, deleted) -> None:
        self._int8, self._codes = ([int8], [codes]) if len(ids) else ([], [])
        self.ids, self.texts, self.metadata, self.deleted = ids, texts, metadata, deleted
        self.row_of = {i: r for r, i in enumerate(ids) if not deleted[r]}
        self._index = Index(self.width)
        if len(ids):
            self._index.add(int8, codes=codes, bitorder="little")

    # --- persistence ---

    def save(self) -> None:
        assert self.path is not None
        self._consolidate(compact=True)  # a rewrite anyway: tombstoned rows (replaced ids too) are dropped
        if not self.ntotal:  # no rows: a store of zero rows (the .npy files of shape (0, width))
            self._save_empty(self.path)
            return
        meta = {IDENTITY: self.identity, VECTOR_DIMENSIONS: self.dim, "model": self.identity.get("model")}
        store.save(self.path, int8=self._int8[0], binary=self._codes[0], texts=self.texts, ids=self.ids,
                   metadata=self.metadata, deleted=self.deleted, meta=meta)

    def _save_empty(self, path: Path) -> None:
        meta = {IDENTITY: self.identity, VECTOR_DIMENSIONS: self.dim, "model": self.identity.get("model")}
        store.save(path, int8=self._empty(), binary=np.empty((0, self.width // 8), np.uint8), texts=[],
                   ids=[], metadata=[], deleted=np.zeros(0, bool), meta=meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str], check: Callable[[dict, int], None], mmap: bool = False) -> DocRows:
        """Reopen the document store at ``path``; ``check(identity,
        dimensions)`` raises when the embedding given cannot make its rows.

        A store from ``pplx-codec embed`` (int8 rows, codes and texts of one
        Perplexity model, no sidecars) opens too, as rows of
        ``PerplexityEmbeddings`` with ids ``"0"``, ``"1"``, ...; changes then
        stay in memory (``path`` None), so that store stays as ``pplx-codec
        embed`` made it, and keeps resuming and reusing rows."""
        s = store.load(path, mmap=mmap)
        identity, dim = s.meta.get(IDENTITY), s.meta.get(VECTOR_DIMENSIONS)
        keep_path: str | os.PathLike[str] | None = path
        if identity is None and dim is None and s.model in EMBEDDING_MODELS and "sidecars" not in s.meta:
            identity = {"class": "PerplexityEmbeddings", "model": s.model, "dimensions": s.dimensions}
            dim, keep_path = s.dimensions, None
        if not isinstance(identity, dict) or type(dim) is not int or not 0 < dim <= s.dimensions:
            raise ValueError(f"{path}: neither a PerplexityVectorStore directory (meta.json has no valid "
                             f"{IDENTITY!r} and {VECTOR_DIMENSIONS!r}) nor a store of a Perplexity model's rows "
                             f"(its model is {s.model!r})")
        if s.int8 is None or s.binary is None or s.texts is None:
            raise ValueError(f"{path}: a vector store needs int8 rows, binary codes and texts; this store has "
                             f"{', '.join(s.encodings)}{' and texts' if s.texts is not None else ', no texts'}")
        check(identity, dim)
        out = cls(dim, identity, keep_path)
        n = s.count
        ids = list(s.ids) if s.ids is not None else [str(i) for i in range(n)]
        out._set(s.int8, s.binary, ids, list(s.texts), s.metadata or [{} for _ in range(n)],
                 np.zeros(n, bool) if s.deleted is None else s.deleted.copy())
        return out

    # --- search ---

    def search(self, query: np.ndarray, k: int, exact: bool = False, rescore: int = 4,
               keep: Callable[[int], bool] | None = None) -> list[tuple[int, float]]:
        """``(row, cosine)`` of the ``k`` best live rows, best first (ties to
        the lower row).  ``query``: int8 ``(dimensions,)``.  ``exact``: int8
        cosine over every row; else binary candidates (``k * rescore``)
        rescored by int8 cosine.  ``keep(row)``: a filter (the search is
        then exact over every row)."""
        k = check_k(k)
        if query.dtype != np.int8 or query.shape != (self.dim,):
            raise ValueError(f"the query has shape {query.shape} ({query.dtype}) but this store's rows have "
                             f"{self.dim} dimensions: queries and documents must be embedded alike")
        if not self.row_of:
            return []
        deleted = int(self.deleted.sum())
        want = self.ntotal if keep is not None else min(self.ntotal, k + deleted)
        q = _pad(query[None], self.width)[0]
        if exact or keep is not None:
            S, I = self._index.int8.search(q, want)
        else:
            S, I = self._index.search(q, want, rescore=rescore)
        out = []
        for s, r in zip(S.tolist(), I.tolist(), strict=True):
            if r < 0 or self.deleted[r] or (keep is not None and not keep(r)):
                continue
            out.append((r, s))
            if len(out) == k:
                break
        return out
