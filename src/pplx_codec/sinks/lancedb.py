"""LanceDB: one table in a LanceDB directory (``lancedb.connect(dir)``).

Columns::

    id      int64
    text    string
    int8    fixed_size_list<int8>[n]       (when the rows have int8 vectors)
    binary  fixed_size_list<uint8>[n / 8]  (when n is a multiple of 8)

built without copying from the store's numpy buffers (``pa.py_buffer``, as
``store/arrow.py`` does); the layout is recorded in the schema metadata
(``pplx-codec-layout``), so a table of that name without it is refused.

**Bit order: MSB first** (``bitorder = "big"``).  LanceDB's own binary-vector
example (docs, "Binary vector"; lancedb ``python/python/tests/docs/
test_binary_vector.py``) packs bits with ``np.packbits``, whose default is
MSB first.  Hamming distance does not depend on the order, but a query must
be packed like the rows: ``np.packbits(vector > 0)`` as LanceDB shows it, or
Perplexity's ``base64_binary`` passed through ``pplx_codec.reverse_bitorder``.

**Search.**  ``tbl.search(code, vector_column_name="binary")
.distance_type("hamming")`` is exact Hamming over the codes.  LanceDB 0.40.0
cannot search the int8 column: every query vector is converted to float32,
and it then refuses ("Column int8 has element type Int8 and the query vector
is Float32") for every metric; rescore the Hamming candidates' ``int8`` rows
with ``pplx_codec.search_int8`` instead.

**Writes.**  Every LanceDB write is one atomic commit.  An export into an
empty table is ONE ``add`` of a reader over all the blocks (a killed load
commits nothing); into a table with rows, ONE ``merge_insert`` on ``id`` that
updates, inserts and deletes the ids at or past the store's count.  ``add``
(rows from a pipeline) appends when its id range is free, else replaces the
range with one ``merge_insert``: idempotent per call.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa

from .._checks import positive_int
from ..bits import pack_bits, reverse_bitorder
from ..search import search_int8
from ._base import FOREIGN, Sink, SinkError, one_line
from ._rows import BATCH_ROWS, Batch, Layout, layout_of, not_utf8, query_row, store_batches

__all__ = ["LanceDBSink", "LAYOUT_KEY", "schema_of", "record_batch", "two_stage_search"]

#: the schema metadata key that holds the table's layout (JSON)
LAYOUT_KEY = b"pplx-codec-layout"


def schema_of(layout: Layout) -> pa.Schema:
    """The table's Arrow schema for ``layout``, with the layout in its metadata."""
    d = layout.dimensions
    fields = [pa.field("id", pa.int64(), nullable=False), pa.field("text", pa.string(), nullable=False)]
    if layout.int8:
        fields.append(pa.field("int8", pa.list_(pa.int8(), d), nullable=False))
    if layout.binary:
        fields.append(pa.field("binary", pa.list_(pa.uint8(), d // 8), nullable=False))
    return pa.schema(fields, metadata={LAYOUT_KEY: json.dumps(layout.as_dict()).encode()})


def _vectors(a: np.ndarray, t: pa.DataType) -> pa.FixedSizeListArray:
    """Rows of ``a`` as a fixed-size-list column on its own buffer (no copy)."""
    a = np.ascontiguousarray(a)
    flat = pa.Array.from_buffers(t, a.size, [None, pa.py_buffer(a)])   # py_buffer keeps ``a`` alive
    return pa.FixedSizeListArray.from_arrays(flat, a.shape[1])


def record_batch(batch: Batch, schema: pa.Schema) -> pa.RecordBatch:
    """One block as an Arrow record batch of ``schema``; texts SQLite/Arrow cannot hold
    as UTF-8 are a ValueError naming the row."""
    columns = [pa.array(batch.ids)]
    try:
        columns.append(pa.array(batch.texts, pa.string()))
    except UnicodeEncodeError:
        if (err := not_utf8(batch, "Arrow (LanceDB)")) is None:
            raise
        raise err from None
    if batch.int8 is not None:
        columns.append(_vectors(batch.int8, pa.int8()))
    if batch.bits is not None:
        columns.append(_vectors(batch.bits, pa.uint8()))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class LanceDBSink(Sink):
    """Rows into the table ``table`` of the LanceDB directory ``target`` (created if missing)."""

    bitorder = "big"

    def __init__(self, target: str, *, table: str = "embeddings", replace: bool = False, first_id: int = 0):
        super().__init__(os.fspath(target), table=table, replace=replace, first_id=first_id)
        # lancedb's DBConnection and Table (typed Any: set by connect / existing_layout / create)
        self.db: Any = None
        self.tbl: Any = None

    def _fail(self, what: str, e: BaseException) -> SinkError:
        return SinkError(f"lancedb: cannot {what} {self.target}: {one_line(e)}")

    @property
    def schema(self) -> pa.Schema:
        assert self.layout is not None
        return schema_of(self.layout)

    # -- hooks ------------------------------------------------------------------------------
    def connect(self) -> None:
        if os.path.exists(self.target) and not os.path.isdir(self.target):
            raise SinkError(f"lancedb: cannot open {self.target}: it is not a directory (LanceDB keeps a "
                            "directory of tables)")
        try:
            self.db = lancedb.connect(self.target)
            self._names()
        except (OSError, ValueError, RuntimeError) as e:
            raise self._fail("open", e) from None

    def _names(self) -> list[str]:
        assert self.db is not None, "not connected"
        names: list[str] = []
        token = None
        while True:   # list_tables pages its answer
            page = self.db.list_tables(page_token=token)
            names += page.tables
            token = page.page_token
            if not token:
                return names

    def existing_layout(self) -> Layout | None:
        try:
            if self.table not in self._names():
                return None
            self.tbl = self.db.open_table(self.table)
            raw = (self.tbl.schema.metadata or {}).get(LAYOUT_KEY)
        except (OSError, ValueError, RuntimeError) as e:
            raise self._fail(f"open table {self.table} in", e) from None
        if raw is None:
            return FOREIGN
        try:
            return Layout.from_dict(json.loads(raw))
        except (ValueError, KeyError, TypeError):
            return FOREIGN

    def create(self, layout: Layout) -> None:
        try:
            self.tbl = self.db.create_table(self.table, schema=schema_of(layout))
        except (OSError, ValueError, RuntimeError) as e:
            raise self._fail(f"create table {self.table} in", e) from None

    def drop(self) -> None:
        try:
            self.db.drop_table(self.table)
        except (OSError, ValueError, RuntimeError) as e:
            raise self._fail(f"drop table {self.table} in", e) from None
        self.tbl = None

    def _merge(self, data, delete_where: str | None):
        """One commit: rows of ``data`` replace those with their ids, others are inserted, and
        target rows matching ``delete_where`` that ``data`` does not hold are deleted."""
        m = self.tbl.merge_insert("id").when_matched_update_all().when_not_matched_insert_all()
        if delete_where is not None:
            m = m.when_not_matched_by_source_delete(delete_where)
        m.execute(data)

    def write_batch(self, batch: Batch) -> None:
        rb = record_batch(batch, self.schema)
        span = f"id >= {batch.first} AND id < {batch.end}"
        try:
            if self.tbl.count_rows(span) == 0:
                if len(batch):
                    self.tbl.add(rb)
            else:
                self._merge(rb, span)
        except (OSError, ValueError, RuntimeError) as e:
            raise self._fail(f"write rows {batch.first}..{batch.end - 1} into", e) from None

    def delete_from(self, end_id: int) -> None:
        try:
            self.tbl.delete(f"id >= {int(end_id)}")
        except (OSError, ValueError, RuntimeError) as e:
            raise self._fail(f"delete rows from {end_id} in", e) from None

    def disconnect(self) -> None:
        self.tbl = None
        self.db = None

    def write_store(self, stored, rows: int = BATCH_ROWS) -> int:
        """The whole store in ONE commit: an ``add`` of all blocks into an empty table, else a
        ``merge_insert`` that also deletes every id at or past the store's count."""
        layout = layout_of(stored.model, stored.dimensions, stored.int8 is not None)
        with self._lock:
            self.open(layout)
            assert self.layout is not None and self.tbl is not None
            schema = self.schema
            failed: list[BaseException] = []
            reader = pa.RecordBatchReader.from_batches(schema, self._batches(stored, schema, rows, failed))
            try:
                if self.tbl.count_rows() == 0:
                    if stored.count:
                        self.tbl.add(reader)
                else:
                    self._merge(reader, f"id >= {stored.count} OR id < 0")
            except Exception as e:
                if failed:   # our own error while LanceDB read the blocks (e.g. a text not UTF-8)
                    raise failed[0] from None
                if isinstance(e, (OSError, ValueError, RuntimeError)):
                    raise self._fail(f"write {stored.count} rows into", e) from None
                raise
            self.next_id = stored.count
            return stored.count

    def _batches(self, stored, schema: pa.Schema, rows: int, failed: list) -> Iterator[pa.RecordBatch]:
        """The store's blocks as record batches; an error is kept in ``failed`` (LanceDB reports
        a reader's exception in its own words)."""
        assert self.layout is not None
        try:
            for batch in store_batches(stored, self.bitorder, self.layout, 0, stored.count, rows):
                yield record_batch(batch, schema)
                self.rows_written += len(batch)
        except Exception as e:
            failed.append(e)
            raise


def two_stage_search(tbl, vector: np.ndarray, code: np.ndarray | None = None, *, k: int = 10,
                     candidates: int = 40, bitorder: str = "little") -> list[tuple[int, str, float]]:
    """The two-stage search over a table this sink wrote: LanceDB's exact Hamming search for
    the ``candidates`` nearest codes, their int8 rows rescored by our exact cosine (LanceDB
    cannot search the int8 column); ``[(id, text, score)]`` best first, ties to the lower id.
    ``code``: the query's packed code in ``bitorder`` (Perplexity's "little" by default;
    None: derived from ``vector``, bit = value > 0, as the loaded codes were where the rows
    came without codes).  LanceDB orders rows tied at the candidates' cut-off by their place
    in the table, not by id, so on ties there it may keep other candidates than
    ``pplx_codec.Index.search``."""
    v = query_row(vector)
    k, candidates = positive_int(k, "k"), positive_int(candidates, "candidates")
    q = pack_bits(v[None], "big")[0] if code is None else \
        (np.asarray(code, np.uint8) if bitorder == "big" else reverse_bitorder(np.asarray(code, np.uint8)[None])[0])
    found = (tbl.search(q, vector_column_name="binary").distance_type("hamming").limit(candidates)
             .select(["id", "text", "int8"]).to_arrow().sort_by("id"))
    if found.num_rows == 0:
        return []
    rows = found["int8"].combine_chunks().values.to_numpy().reshape(found.num_rows, -1)
    S, J = search_int8(v, rows, min(k, found.num_rows))
    ids, texts = found["id"].to_numpy(), found["text"].to_pylist()
    return [(int(ids[j]), texts[j], float(sc)) for sc, j in zip(S.tolist(), J.tolist(), strict=True)]
