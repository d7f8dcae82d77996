"""What a sink writes: the table's layout, and rows in blocks with their ids.

Every target gets the same rows in the same form: ``Batch`` holds ids
``first .. first + n - 1`` (a store's row numbers, or a sink's running
count), the int8 vectors, the packed codes already in the target's own bit
order, and the texts.  The conversions happen here once, so no target
decides them again:

- codes from a store or a response in the other bit order are reversed
  (``reverse_bitorder``): pgvector's ``bit(n)`` and LanceDB keep dimension i
  MSB first (``np.packbits``), sqlite-vec LSB first, as Perplexity's
  ``base64_binary``;
- with int8 rows and no codes, the codes are derived: bit = value > 0, the
  rule of pgvector's ``binary_quantize`` and sqlite-vec's
  ``vec_quantize_binary`` (and of ``EmbedSettings.arrays``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from ..bits import pack_bits, reverse_bitorder
from ..store import Stored
from ..store._texts import first_not_utf8

__all__ = ["Layout", "Batch", "layout_of", "batch_of", "store_batches", "not_utf8", "BATCH_ROWS"]

#: Rows per block of an export: about 20 MiB of COPY payload at 1024 dims, small
#: enough that a killed load loses little, large enough that a block's fixed
#: costs (a transaction, a round trip) vanish.
BATCH_ROWS = 8192


@dataclasses.dataclass(frozen=True)
class Layout:
    """What a table holds: the model (None when unknown), the dimensions, and
    which columns: ``int8`` (the vectors) and ``binary`` (packed codes; only
    when dimensions are a multiple of 8).  Texts are always a column (empty
    string where a row has none)."""

    model: str | None
    dimensions: int
    int8: bool
    binary: bool

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Layout:
        return cls(d.get("model"), int(d["dimensions"]), bool(d["int8"]), bool(d["binary"]))

    def mismatch(self, other: Layout) -> str | None:
        """How ``other`` (a table's) differs from this one (the rows'), or None."""
        diffs = [f"{name} {getattr(other, name)!r} (the rows: {getattr(self, name)!r})"
                 for name in ("model", "dimensions", "int8", "binary")
                 if getattr(self, name) != getattr(other, name)]
        return ", ".join(diffs) or None


@dataclasses.dataclass
class Batch:
    """Rows ``first .. first + len - 1``: ``int8`` (n, d) or None, ``bits``
    (n, d // 8) in the target's bit order or None, ``texts`` (n strings)."""

    first: int
    int8: np.ndarray | None
    bits: np.ndarray | None
    texts: Sequence[str]

    def __len__(self) -> int:
        a = self.int8 if self.int8 is not None else self.bits
        assert a is not None
        return a.shape[0]

    @property
    def end(self) -> int:
        return self.first + len(self)

    @property
    def ids(self) -> np.ndarray:
        return np.arange(self.first, self.end, dtype=np.int64)


def layout_of(model: str | None, dimensions: int, has_int8: bool) -> Layout:
    """Codes are kept whenever the dimensions pack into bytes (derived from int8 if need be)."""
    return Layout(model, dimensions, has_int8, dimensions % 8 == 0)


def batch_of(first: int, int8: np.ndarray | None, binary: np.ndarray | None, bitorder: str,
             texts: Sequence[str] | None, target_bitorder: str, layout: Layout) -> Batch:
    """One block of rows for a target: codes converted to ``target_bitorder`` or derived from int8."""
    bits = None
    if layout.binary:
        if binary is not None:
            bits = np.ascontiguousarray(binary) if bitorder == target_bitorder else reverse_bitorder(binary)
        else:
            assert int8 is not None
            bits = pack_bits(np.ascontiguousarray(int8), target_bitorder)
    if int8 is not None:
        int8 = np.ascontiguousarray(int8) if layout.int8 else None
    n = (int8 if int8 is not None else bits).shape[0]  # type: ignore[union-attr]
    return Batch(first, int8, bits, list(texts) if texts is not None else [""] * n)


def store_batches(stored: Stored, target_bitorder: str, layout: Layout, start: int = 0, stop: int | None = None,
                  rows: int = BATCH_ROWS) -> Iterator[Batch]:
    """A store's rows ``start .. stop - 1`` in blocks of ``rows``, read from its memmaps block by block."""
    stop = stored.count if stop is None else stop
    texts = stored.texts
    for s in range(start, stop, rows):
        e = min(stop, s + rows)
        yield batch_of(s, None if stored.int8 is None else stored.int8[s:e],
                       None if stored.binary is None else stored.binary[s:e], stored.bitorder,
                       None if texts is None else texts[s:e], target_bitorder, layout)


def not_utf8(batch: Batch, target: str) -> ValueError | None:
    """The error for a block whose texts ``target`` cannot store as UTF-8 (a lone
    surrogate, which texts.jsonl can hold), naming the row's id; None when all are UTF-8."""
    bad = first_not_utf8(batch.texts)
    if bad is None:
        return None
    return ValueError(f"the text of row {batch.first + bad} is not valid Unicode (a lone surrogate): "
                      f"{target} stores text as UTF-8")


def query_row(vector) -> np.ndarray:
    """The int8 query row of a two-stage search (every target's)."""
    v = np.asarray(vector)
    if v.dtype != np.int8 or v.ndim != 1:
        raise ValueError(f"vector must be one int8 row, got {v.dtype} of shape {v.shape}")
    return v
