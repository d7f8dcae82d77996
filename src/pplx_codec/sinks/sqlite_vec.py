"""sqlite-vec: one ``vec0`` virtual table in one SQLite file.

The table (columns as the layout says: no ``code`` when the dimensions are not
a multiple of 8, no ``embedding`` for binary-only rows)::

    CREATE VIRTUAL TABLE t USING vec0(id integer primary key,
        embedding int8[n] distance_metric=cosine, code bit[n], +text text)

and its layout (model, dimensions, columns) as JSON in the side table
``pplx_codec_tables(name, layout)``, written in the same transaction, so a
table of that name without a record is someone else's and is refused.

**Driver: apsw.**  The extension is a shared library that SQLite must load,
and the standard ``sqlite3`` module of many Python builds (this project's CI
Python included) is compiled without ``enable_load_extension``.  apsw wraps
its own SQLite and can load extensions everywhere; ``pysqlite3`` or
``sqlean-py`` from PyPI would do as well.  The extension comes from the
``sqlite-vec`` package (``sqlite_vec.loadable_path()``).

**Bit order: LSB first** (``bitorder = "little"``).  sqlite-vec's
``vec_quantize_binary`` puts dimension i at bit ``i % 8`` of byte ``i // 8``
(int8 ``[1, -1, 0, 2, 0, 0, 0, 0, 1, ...]`` gives bytes ``09 01``), which is
Perplexity's ``base64_binary`` order: its codes go in unchanged, and the
loaded ``code`` equals ``vec_quantize_binary(embedding)``.

**Writes.**  ``vec0`` has no upsert, so each block is one transaction that
deletes its id range and inserts its rows (SQLite's journal makes a killed
load roll back to the last whole block).  Each row binds slices of the
block's numpy buffers (memoryviews: no per-row lists, no copies) through
``vec_int8(?)`` / ``vec_bit(?)``.
"""

from __future__ import annotations

import json
import os

import apsw
import numpy as np
import sqlite_vec

from .._checks import positive_int
from ._base import FOREIGN, Sink, SinkError, check_table_name, one_line
from ._rows import Batch, Layout, not_utf8, query_row

__all__ = ["SqliteVecSink", "RECORDS", "connect", "two_stage_sql", "two_stage_search"]

#: the side table that records what each of our tables holds
RECORDS = "pplx_codec_tables"

#: how long a write waits for another connection's lock before failing (ms)
BUSY_MS = 10_000


def _row_views(a: np.ndarray):
    """Each row of ``a`` as a slice of one flat memoryview of the block: SQLite copies the
    bytes it is bound to, so nothing is built per row but the slice itself."""
    w = a.shape[1]
    flat = np.ascontiguousarray(a).reshape(-1).view(np.uint8).data
    return (flat[j:j + w] for j in range(0, a.shape[0] * w, w))


class SqliteVecSink(Sink):
    """Rows into a ``vec0`` table of the SQLite file ``target`` (created if missing)."""

    bitorder = "little"

    def __init__(self, target: str, *, table: str = "embeddings", replace: bool = False, first_id: int = 0):
        super().__init__(os.fspath(target), table=table, replace=replace, first_id=first_id)
        self.db: apsw.Connection | None = None

    def _fail(self, what: str, e: BaseException) -> SinkError:
        return SinkError(f"sqlite-vec: cannot {what} {self.target}: {one_line(e)}")

    # -- hooks ------------------------------------------------------------------------------
    def connect(self) -> None:
        if os.path.isdir(self.target):
            raise SinkError(f"sqlite-vec: cannot open {self.target}: it is a directory (give a file)")
        try:
            db = connect(self.target)
            db.setbusytimeout(BUSY_MS)
            db.execute("SELECT count(*) FROM sqlite_master").fetchall()  # a file that is not a database fails here
        except (apsw.Error, OSError) as e:
            raise self._fail("open", e) from None
        self.db = db

    def _conn(self) -> apsw.Connection:
        assert self.db is not None, "not connected"
        return self.db

    def _exists(self, name: str) -> bool:
        return bool(self._conn().execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchall())

    def existing_layout(self) -> Layout | None:
        try:
            if not self._exists(self.table):
                return None
            row = None
            if self._exists(RECORDS):
                row = self._conn().execute(f"SELECT layout FROM {RECORDS} WHERE name = ?", (self.table,)).fetchone()
        except apsw.Error as e:
            raise self._fail("read", e) from None
        if row is None:
            return FOREIGN
        try:
            return Layout.from_dict(json.loads(row[0]))
        except (ValueError, KeyError, TypeError):
            return FOREIGN

    def create(self, layout: Layout) -> None:
        d = layout.dimensions
        cols = ["id integer primary key"]
        if layout.int8:
            cols.append(f"embedding int8[{d}] distance_metric=cosine")
        if layout.binary:
            cols.append(f"code bit[{d}]")
        cols.append("+text text")
        db = self._conn()
        try:
            with db:
                db.execute(f"CREATE TABLE IF NOT EXISTS {RECORDS}(name TEXT PRIMARY KEY, layout TEXT NOT NULL)")
                db.execute(f"CREATE VIRTUAL TABLE {self.table} USING vec0({', '.join(cols)})")
                db.execute(f"INSERT OR REPLACE INTO {RECORDS}(name, layout) VALUES (?, ?)",
                           (self.table, json.dumps(layout.as_dict())))
        except apsw.Error as e:
            raise self._fail(f"create table {self.table} in", e) from None

    def drop(self) -> None:
        db = self._conn()
        try:
            with db:
                kind = db.execute("SELECT type FROM sqlite_master WHERE name = ?", (self.table,)).fetchone()
                if kind is not None:
                    db.execute(f"DROP {'VIEW' if kind[0] == 'view' else 'TABLE'} {self.table}")
                if self._exists(RECORDS):
                    db.execute(f"DELETE FROM {RECORDS} WHERE name = ?", (self.table,))
        except apsw.Error as e:
            raise self._fail(f"drop table {self.table} in", e) from None

    def _insert_sql(self) -> str:
        lay = self.layout
        assert lay is not None
        names, values = ["id"], ["?"]
        if lay.int8:
            names.append("embedding")
            values.append("vec_int8(?)")
        if lay.binary:
            names.append("code")
            values.append("vec_bit(?)")
        names.append("text")
        values.append("?")
        return f"INSERT INTO {self.table}({', '.join(names)}) VALUES ({', '.join(values)})"

    def write_batch(self, batch: Batch) -> None:
        n = len(batch)
        columns: list = [range(batch.first, batch.end)]
        columns += [_row_views(a) for a in (batch.int8, batch.bits) if a is not None]
        columns.append(batch.texts)
        db = self._conn()
        try:
            with db:
                db.execute(f"DELETE FROM {self.table} WHERE id >= ? AND id < ?", (batch.first, batch.end))
                if n:
                    db.executemany(self._insert_sql(), zip(*columns, strict=True))
        except UnicodeEncodeError:
            if (err := not_utf8(batch, "SQLite")) is None:
                raise
            raise err from None
        except apsw.Error as e:
            raise self._fail(f"write rows {batch.first}..{batch.end - 1} into", e) from None

    def delete_from(self, end_id: int) -> None:
        db = self._conn()
        try:
            with db:
                db.execute(f"DELETE FROM {self.table} WHERE id >= ?", (end_id,))
        except apsw.Error as e:
            raise self._fail(f"delete rows from {end_id} in", e) from None

    def disconnect(self) -> None:
        if self.db is not None:
            db, self.db = self.db, None
            try:
                db.close()
            except apsw.Error:
                pass

    def columns(self) -> list[str]:
        lay = self.layout
        return ["id", "text"] + (["embedding int8"] if lay and lay.int8 else []) + \
            (["code bit"] if lay and lay.binary else [])


def two_stage_sql(table: str = "embeddings") -> str:
    """The two-stage query over a table this sink wrote: the ``:candidates`` nearest rows by
    Hamming distance of the codes (the query ``:q``, its int8 bytes, quantized in SQL by
    ``vec_quantize_binary``, whose rule and bit order are the loaded codes'), rescored by cosine
    on the int8 column; ``id, text, score`` (cosine similarity), best first, ties to the lower
    id at both stages, as ``pplx_codec.Index.search`` ranks.  Exact: a full scan."""
    t = check_table_name(table)
    return (f"SELECT id, text, 1.0 - vec_distance_cosine(embedding, vec_int8(:q)) AS score\n"
            f"FROM {t}\n"
            f"WHERE id IN (SELECT id FROM {t}\n"
            f"             ORDER BY vec_distance_hamming(code, vec_quantize_binary(vec_int8(:q))), id\n"
            f"             LIMIT :candidates)\n"
            f"ORDER BY score DESC, id\n"
            f"LIMIT :k")


def two_stage_search(db, vector: np.ndarray, *, table: str = "embeddings", k: int = 10,
                     candidates: int = 40) -> list[tuple[int, str, float]]:
    """Run ``two_stage_sql`` on an apsw connection with sqlite-vec loaded (``connect``):
    ``[(id, text, score)]`` best first, for one int8 query row."""
    v = query_row(vector)
    k, candidates = positive_int(k, "k"), positive_int(candidates, "candidates")
    rows = db.execute(two_stage_sql(table), {"q": v.tobytes(), "candidates": candidates, "k": k}).fetchall()
    return [(int(i), t, float(s)) for i, t, s in rows]


def connect(path: str) -> apsw.Connection:
    """An apsw connection to ``path`` with the sqlite-vec extension loaded (for queries)."""
    db = apsw.Connection(os.fspath(path))
    db.enable_load_extension(True)
    db.load_extension(sqlite_vec.loadable_path())
    db.enable_load_extension(False)
    return db
