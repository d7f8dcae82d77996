"""Arrow tables and Parquet files of embeddings (the ``arrow`` extra: pyarrow).

A table has a ``FixedSizeBinary(dimensions)`` column ``int8`` and/or a
``FixedSizeBinary(dimensions // 8)`` column ``binary`` (one row per value:
the raw bytes of the numpy row), and optionally a ``text`` string column.
Each vector column's field metadata says ``encoding`` and ``dimensions``,
the ``binary`` one also ``bitorder``; the schema metadata ``pplx-codec``
holds the store's meta.json.

Conversions share memory where Arrow allows: :func:`to_arrow` wraps the numpy
buffers (a memmap stays on disk), :func:`from_arrow` gives read-only numpy
views of a column's buffer.  A column of several chunks (a Parquet file of
several row groups, concatenated tables) is concatenated: one copy.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import _checks
from . import _fs
from ._meta import FILES, STRUCTURAL, build_meta, dimensions_of
from ._payload import prepare
from ._stored import Stored
from ._texts import first_not_utf8

__all__ = ["to_arrow", "from_arrow", "write_parquet", "read_parquet"]

SCHEMA_KEY = b"pplx-codec"
TEXT = "text"


def _pyarrow():
    try:
        import pyarrow
    except ImportError:
        raise ImportError("Arrow and Parquet support needs pyarrow: pip install 'pplx-codec[arrow]'") from None
    return pyarrow


def to_arrow(source=None, *, int8: np.ndarray | None = None, binary: np.ndarray | None = None,
             bitorder: str | None = None, meta: dict | None = None, texts=None):
    """A ``pyarrow.Table`` of a ``Stored``, an ``Embeddings`` or arrays (the
    arguments of :func:`pplx_codec.store.save`).  Vector columns are built on
    the numpy buffers without copying (rows with gaps between them are made
    contiguous first: a copy); texts are converted to an Arrow string column."""
    pa = _pyarrow()
    p = prepare(source, int8, binary, bitorder, meta, texts)
    d = p.meta["dimensions"]
    fields, columns = [], []
    for enc, a in p.arrays.items():
        a = np.ascontiguousarray(a)
        md = {"encoding": enc, "dimensions": str(d)}
        if enc == "binary":
            md["bitorder"] = p.bitorder
        t = pa.binary(a.shape[1])
        fields.append(pa.field(enc, t, nullable=False, metadata=md))
        # py_buffer keeps a reference to the array (and its memmap) alive
        columns.append(pa.FixedSizeBinaryArray.from_buffers(t, a.shape[0], [None, pa.py_buffer(a)]))
    if p.texts is not None:
        fields.append(pa.field(TEXT, pa.string(), nullable=False))
        columns.append(_string_column(pa, p.texts))
    schema = pa.schema(fields, metadata={SCHEMA_KEY: json.dumps(p.meta, ensure_ascii=False).encode()})
    return pa.Table.from_arrays(columns, schema=schema)


def _string_column(pa, texts):
    def strs():
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] must be str, got {type(t).__name__}")
            yield t

    try:
        return pa.array(strs(), pa.string())
    except UnicodeEncodeError:
        # Arrow strings are UTF-8: a lone surrogate (which texts.jsonl can
        # hold) has no encoding.  Find the row for the message.
        bad = first_not_utf8(texts)
        raise ValueError(f"texts[{bad}] is not valid Unicode (a lone surrogate): Arrow strings are UTF-8") from None


def from_arrow(table, bitorder: str | None = None) -> Stored:
    """The rows of a table made by :func:`to_arrow` (or any table with
    FixedSizeBinary ``int8`` / ``binary`` columns) as a ``Stored`` without a
    path: read-only numpy views of the Arrow buffers (one concatenation per
    column of several chunks), ``texts`` a lazy sequence over the ``text``
    column.  The bit order comes from the ``binary`` field's metadata;
    ``bitorder`` is needed only when that is missing, and must agree with it
    otherwise."""
    pa = _pyarrow()
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise TypeError(f"table must be a pyarrow.Table or RecordBatch, got {type(table).__name__}")
    schema_meta = _schema_meta(table.schema)
    arrays, declared = {}, {}
    for enc in FILES:
        if enc not in table.schema.names:
            continue
        field = table.schema.field(enc)
        if not pa.types.is_fixed_size_binary(field.type):
            raise TypeError(f"column {enc!r} must be fixed_size_binary (one value per row), got {field.type}")
        col = table.column(enc)
        if col.null_count:
            raise ValueError(f"column {enc!r} has {col.null_count} null rows")
        arrays[enc] = _numpy(col, field.type.byte_width, FILES[enc][1])
        declared[enc] = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
    if not arrays:
        raise ValueError(f"the table has no 'int8' or 'binary' column (columns: {table.schema.names})")
    d = dimensions_of(arrays.get("int8"), arrays.get("binary"))
    for enc, md in declared.items():
        if "dimensions" in md and md["dimensions"] != str(d):
            raise ValueError(f"column {enc!r} says dimensions={md['dimensions']} but holds {d}")
    order = _bitorder(declared.get("binary"), schema_meta, bitorder)
    texts = None
    if TEXT in table.schema.names:
        col = table.column(TEXT)
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            raise TypeError(f"column 'text' must be strings, got {col.type}")
        if col.null_count:
            raise ValueError(f"column 'text' has {col.null_count} null rows")
        texts = ArrowTexts(col)
    extras = {k: v for k, v in schema_meta.items() if k not in STRUCTURAL}
    meta = build_meta(table.num_rows, d, list(arrays), order, extras)
    return Stored(meta, arrays.get("int8"), arrays.get("binary"), texts)


def _schema_meta(schema) -> dict:
    raw = (schema.metadata or {}).get(SCHEMA_KEY)
    if raw is None:
        return {}
    try:
        meta = json.loads(raw)
    except ValueError as e:
        raise ValueError(f"the table's {SCHEMA_KEY.decode()!r} schema metadata is not JSON: {e}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"the table's {SCHEMA_KEY.decode()!r} schema metadata is not a JSON object")
    return meta


def _bitorder(binary_field: dict | None, schema_meta: dict, given: str | None) -> str:
    if given is not None:
        _checks.bitorder(given)
    if binary_field is None:   # no codes: the order only describes what would be stored
        return given or schema_meta.get("bitorder") or "little"
    found = binary_field.get("bitorder") or schema_meta.get("bitorder")
    if found is None:
        if given is None:
            raise ValueError("the 'binary' column has no bitorder metadata: pass bitorder='little' (Perplexity's "
                             "base64_binary, LSB first) or 'big' (np.packbits, faiss, usearch)")
        return given
    _checks.bitorder(found)
    if given is not None and given != found:
        raise ValueError(f"bitorder={given!r} contradicts the table's metadata ({found!r}); convert codes with "
                         "pplx_codec.reverse_bitorder instead")
    return found


def _numpy(col, width: int, dtype: np.dtype) -> np.ndarray:
    chunks = [c for c in col.chunks if len(c)]
    if not chunks:
        return np.empty((0, width), dtype)
    views = [_view(c, width, dtype) for c in chunks]
    if len(views) == 1:
        return views[0]
    out = np.concatenate(views)
    out.flags.writeable = False
    return out


def _view(chunk, width: int, dtype: np.dtype) -> np.ndarray:
    """Read-only rows over one FixedSizeBinaryArray's data buffer (a slice's
    offset honoured), no copy."""
    data = chunk.buffers()[1]
    v = np.frombuffer(data, np.uint8, count=len(chunk) * width, offset=chunk.offset * width)
    v = v.view(dtype).reshape(len(chunk), width)
    v.flags.writeable = False   # Arrow data is immutable; numpy must not write through
    return v


class ArrowTexts(Sequence[str]):
    """The ``text`` column as a sequence of str, converted row by row."""

    def __init__(self, column):
        self.column = column

    def __len__(self) -> int:
        return len(self.column)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"text {i} out of range for {n} rows")
        return self.column[i % n].as_py()

    def __iter__(self):
        for chunk in self.column.chunks:
            yield from chunk.to_pylist()


def write_parquet(path, source=None, *, int8: np.ndarray | None = None, binary: np.ndarray | None = None,
                  bitorder: str | None = None, meta: dict | None = None, texts=None, **options) -> None:
    """:func:`to_arrow`, written to one Parquet file (atomically: a temp file
    renamed over ``path``).  ``options`` go to ``pyarrow.parquet.write_table``;
    by default only the text column is dictionary-encoded (vectors never
    repeat)."""
    _pyarrow()
    import pyarrow.parquet as pq

    table = to_arrow(source, int8=int8, binary=binary, bitorder=bitorder, meta=meta, texts=texts)
    options.setdefault("use_dictionary", [TEXT] if TEXT in table.schema.names else False)
    final = Path(path)
    tmp = final.with_name(f".{final.name}.tmp-{secrets.token_hex(6)}")
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f, **options)
            _fs.fsync_file(f)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def read_parquet(path, bitorder: str | None = None) -> Stored:
    """A Parquet file written by :func:`write_parquet` (or any with the same
    columns) as :func:`from_arrow` gives it.  Parquet is decoded into memory:
    for data larger than RAM use the .npy store, which is memory-mapped."""
    _pyarrow()
    import pyarrow.parquet as pq

    if not Path(path).is_file():
        raise FileNotFoundError(f"no Parquet file at {path}")
    return from_arrow(pq.read_table(path), bitorder=bitorder)
