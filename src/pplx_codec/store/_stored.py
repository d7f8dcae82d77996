"""Stored: a store's rows, meta and texts, as load() and save() give them back."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..index import BinaryIndex, Index, Int8Index


class Stored:
    """A store's rows: ``int8`` ``(count, dimensions)`` and/or ``binary``
    ``(count, dimensions // 8)`` packed codes in ``bitorder`` (None when
    absent), ``meta`` (meta.json), ``texts`` (a lazy sequence, or None) and
    ``path`` (None for a table converted from Arrow), and the optional
    sidecars of a document store (None when absent): ``ids`` (one unique str
    per row), ``metadata`` (one dict per row) and ``deleted`` (a bool mask:
    tombstoned rows are still in the arrays; searches through
    :meth:`index` do not skip them, the document store built on it does).

    Arrays from ``load(mmap=True)`` are read-only ``np.memmap``: the rows are
    read from disk as they are used, never all at once.
    """

    def __init__(self, meta: dict, int8: npt.NDArray[np.int8] | None = None,
                 binary: npt.NDArray[np.uint8] | None = None, texts: Sequence[str] | None = None,
                 path: Path | None = None, ids: list[str] | None = None, metadata: list[dict] | None = None,
                 deleted: npt.NDArray[np.bool_] | None = None):
        self.ids = ids
        self.metadata = metadata
        self.deleted = deleted
        self.meta = meta
        self.int8 = int8
        self.binary = binary
        self.texts = texts
        self.path = path

    @property
    def bitorder(self) -> str:
        return self.meta["bitorder"]

    @property
    def dimensions(self) -> int:
        return self.meta["dimensions"]

    @property
    def count(self) -> int:
        return self.meta["count"]

    @property
    def encodings(self) -> tuple[str, ...]:
        return tuple(self.meta["encodings"])

    @property
    def model(self) -> str | None:
        return self.meta.get("model")

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        where = f"{str(self.path)!r}, " if self.path is not None else ""
        return (f"Stored({where}count={self.count}, dimensions={self.dimensions}, "
                f"encodings={list(self.encodings)}, bitorder={self.bitorder!r}, model={self.model!r}, "
                f"texts={'yes' if self.texts is not None else 'no'})")

    def index(self, kind: str | None = None) -> BinaryIndex | Int8Index | Index:
        """An exact index over these rows, sharing their memory (memmaps stay
        memmaps): ``Index`` when both encodings are present (binary retrieval,
        int8 rescoring), else ``BinaryIndex`` or ``Int8Index``.  ``kind``
        (``"both"``, ``"binary"``, ``"int8"``) picks one explicitly.  Indexes
        holding int8 rows compute their norms here: one pass over the vectors,
        4 bytes per row kept."""
        if kind is None:
            kind = "both" if len(self.encodings) == 2 else self.encodings[0]
        if kind not in ("both", "binary", "int8"):
            raise ValueError(f"kind must be 'both', 'binary' or 'int8', got {kind!r}")
        for enc in ("binary", "int8") if kind == "both" else (kind,):
            if enc not in self.encodings:
                raise ValueError(f"this store has no {enc} encoding (it holds {', '.join(self.encodings)})")
        if kind == "binary":
            b = BinaryIndex(self.dimensions, self.bitorder)
            b.add(self._rows("binary"), bitorder=self.bitorder)
            return b
        if kind == "int8":
            i = Int8Index(self.dimensions)
            i.add(self._rows("int8"))
            return i
        both = Index(self.dimensions, self.bitorder)
        both.add(self._rows("int8"), codes=self._rows("binary"), bitorder=self.bitorder)
        return both

    def _rows(self, encoding: str) -> np.ndarray:
        """The array of an encoding meta lists (a Stored built with meta
        listing an encoding but without its array has none to give)."""
        a = self.int8 if encoding == "int8" else self.binary
        if a is None:
            raise ValueError(f"this store's meta lists the {encoding} encoding but it holds no {encoding} array")
        return a
