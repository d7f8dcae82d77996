"""PostgreSQL + pgvector: one table, loaded with ``COPY ... (FORMAT BINARY)``.

The table (``Layout`` and the vector type recorded as JSON in its comment)::

    id bigint PRIMARY KEY, text text NOT NULL,
    embedding halfvec(n)   -- the int8 vector (exact: every int8 is a half); or vector(n)
    code bit(n)            -- the binary code, dimension i at bit i of the string

pgvector's ``bit(n)`` keeps dimension i most-significant-bit first in each
byte (``np.packbits``), the order of its ``binary_quantize``; Perplexity's
``base64_binary`` is least-significant-bit first, so ``bitorder = "big"``
here and the skeleton converts.  Loaded as raw bytes the codes would still
agree with each other but not with ``binary_quantize`` of the query.

Each block of rows is one transaction: ``DELETE`` of its id range, then one
COPY whose payload ``_pgcopy.encode_rows`` assembles from the numpy rows in
one compiled pass (the texts' UTF-8 is the only per-row Python step).
Encoding the next block on a worker thread while this one is sent measured
no gain (100k x 1024, 2 cores: 46.9k rows/s with it, 49.1k without; our
side is ~20% of the wall time, the server the rest), so there is none.  With
``streams=k`` an export splits the ids into k contiguous ranges, one
connection and one thread each.  The two-stage query is in ``pgvector_sql``.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg  # a missing driver: open_sink names the extra that installs it
from psycopg import sql

from .. import _pgcopy
from .._checks import positive_int
from ..store import Stored
from ._base import Sink, SinkError, TableMismatch, mask_password, one_line
from ._rows import Batch, Layout, store_batches
from .pgvector_sql import two_stage_search, two_stage_sql

__all__ = ["PgvectorSink", "two_stage_sql", "two_stage_search", "MARK"]

#: the key our comment carries: a table without it was made by someone else
MARK = "pplx_codec"
VECTOR_TYPES = {"halfvec": (_pgcopy.HALFVEC, 2, 4000), "vector": (_pgcopy.VECTOR, 4, 2000)}  # code, bytes, HNSW max
BIT_HNSW_MAX = 64000
CONNECT_TIMEOUT = 10
# A heap row must fit one 8 kB page when a column is PLAIN (never compressed,
# never moved out of line); the text stays toastable, leaving it a pointer.
PAGE_ROOM = 8000


class PgvectorSink(Sink):
    """Rows into a PostgreSQL table with pgvector (see the module's doc).

    ``vector_type``: "halfvec" (default; exact for int8, half the bytes) or "vector";
    ``index``: None or "hnsw" (after the load: HNSW ``*_cosine_ops`` on the vectors and
    ``bit_hamming_ops`` on the codes); ``streams``: parallel COPY connections for an export.
    """

    bitorder = "big"
    #: SET STORAGE PLAIN on the vector column where a row still fits a page: pgvector's
    #: default (EXTERNAL) moves a halfvec(1024) (2 kB) out of line into the TOAST table, so
    #: every exact scan detoasts it.  Measured (100k x 1024, 2 cores): exact <=> over the
    #: table 0.15 s PLAIN vs 0.38 s EXTERNAL; the load 44k vs 47k rows/s (MAIN: 28k, it
    #: tries to compress the random halves)
    plain_storage = True

    def __init__(self, target: str, *, table: str = "embeddings", replace: bool = False, first_id: int = 0,
                 vector_type: str = "halfvec", index: str | None = None, streams: int = 1):
        super().__init__(target, table=table, replace=replace, first_id=first_id)
        if vector_type not in VECTOR_TYPES:
            raise ValueError(f"vector_type must be 'halfvec' or 'vector', got {vector_type!r}")
        if index not in (None, "hnsw"):
            raise ValueError(f"index must be None or 'hnsw', got {index!r}")
        streams = positive_int(streams, "streams", maximum=64)
        self.vector_type, self.index, self.streams = vector_type, index, streams
        self.conn: psycopg.Connection | None = None

    # -- connections ------------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection:
        try:
            given = psycopg.conninfo.conninfo_to_dict(self.target)
            # the payload's texts are UTF-8: the server converts them from client_encoding
            # (a database in another encoding would otherwise store them misread)
            if "connect_timeout" in given:
                return psycopg.connect(self.target, client_encoding="UTF8")
            return psycopg.connect(self.target, client_encoding="UTF8", connect_timeout=CONNECT_TIMEOUT)
        except psycopg.Error as e:
            raise SinkError(mask_password(f"cannot connect to PostgreSQL at {self.shown}: {one_line(e)}",
                                          self.target)) from None

    def _fail(self, what: str, e: BaseException) -> SinkError:
        return SinkError(mask_password(f"{what} ({self.shown}): {one_line(e)}", self.target))

    def connect(self) -> None:
        self.conn = self._connect()
        try:
            self.conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            self.conn.commit()
        except psycopg.Error as e:
            self.disconnect()  # the skeleton closes only what opened
            raise self._fail("this PostgreSQL server cannot enable pgvector (CREATE EXTENSION vector): "
                             "install the pgvector extension on it", e) from None

    def disconnect(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # -- the table ------------------------------------------------------------------------------
    @property
    def _t(self) -> sql.Identifier:
        return sql.Identifier(self.table.lower())  # as PostgreSQL folds the unquoted name

    def existing_layout(self) -> Layout | None:
        assert self.conn is not None
        row = self.conn.execute("SELECT obj_description(to_regclass(%s), 'pg_class'), to_regclass(%s) IS NOT NULL",
                                [self.table, self.table]).fetchone()
        self.conn.commit()
        assert row is not None
        comment, exists = row
        if not exists:
            return None
        try:
            recorded = json.loads(comment) if comment else None
        except ValueError:
            recorded = None
        if not isinstance(recorded, dict) or MARK not in recorded:
            why = "it was not made by pplx-codec (its comment records no layout)"
        elif recorded.get("vector_type") != self.vector_type:
            why = f"vector_type {recorded.get('vector_type')!r} (the rows: {self.vector_type!r})"
        else:
            return Layout.from_dict(recorded)
        if self.replace:
            return Layout(None, 0, False, False)  # any layout: open() drops it
        raise TableMismatch(f"table {self.table} exists with other rows: {why}; "
                            "pass replace=True (--replace) to overwrite it")

    def plain_fits(self, layout: Layout) -> bool:
        """Whether a row with the vector column PLAIN still fits a page (not vector(2560))."""
        vbytes = 8 + VECTOR_TYPES[self.vector_type][1] * layout.dimensions
        return 24 + 8 + vbytes + (8 + layout.dimensions // 8 if layout.binary else 0) + 18 <= PAGE_ROOM

    def create(self, layout: Layout) -> None:
        assert self.conn is not None
        d = layout.dimensions
        if self.index == "hnsw":
            limit = VECTOR_TYPES[self.vector_type][2]
            if layout.int8 and d > limit:
                raise ValueError(f"pgvector's HNSW index takes {self.vector_type} of at most {limit} dimensions, "
                                 f"these rows have {d}")
        cols: list[sql.Composable] = [sql.SQL("id bigint PRIMARY KEY"), sql.SQL("text text NOT NULL")]
        if layout.int8:
            cols.append(sql.SQL("embedding {}({})").format(sql.SQL(self.vector_type), sql.Literal(d)))
        if layout.binary:
            cols.append(sql.SQL("code bit({})").format(sql.Literal(d)))
        comment = json.dumps({MARK: 1, **layout.as_dict(), "vector_type": self.vector_type})
        try:
            with self.conn.transaction():
                self.conn.execute(sql.SQL("CREATE TABLE {} ({})").format(self._t, sql.SQL(", ").join(cols)))
                if layout.int8 and self.plain_storage and self.plain_fits(layout):
                    self.conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN embedding SET STORAGE PLAIN")
                                      .format(self._t))
                self.conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(self._t, sql.Literal(comment)))
        except psycopg.Error as e:
            raise self._fail(f"cannot create table {self.table}", e) from None

    def drop(self) -> None:
        assert self.conn is not None
        with self.conn.transaction():
            self.conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._t))

    # -- rows --------------------------------------------------------------------------------------
    def encode(self, batch: Batch) -> bytes:
        """The block's COPY payload (a ValueError naming the row for a text PostgreSQL cannot hold)."""
        assert self.layout is not None
        return _pgcopy.encode_rows(batch.first, batch.texts, batch.int8, VECTOR_TYPES[self.vector_type][0],
                                   batch.bits, self.layout.dimensions)

    def copy_sql(self) -> sql.Composed:
        assert self.layout is not None
        cols = ["id"] + (["embedding"] if self.layout.int8 else []) + (["code"] if self.layout.binary else [])
        return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            self._t, sql.SQL(", ").join(map(sql.Identifier, cols + ["text"])))

    def send(self, conn: psycopg.Connection, first: int, end: int, payload: bytes) -> None:
        """Replace ids ``first .. end - 1`` with the payload's rows, in one transaction."""
        try:
            with conn.transaction():
                conn.execute(sql.SQL("DELETE FROM {} WHERE id >= %s AND id < %s").format(self._t), [first, end])
                with conn.cursor().copy(self.copy_sql()) as copy:
                    copy.write(memoryview(payload))
        except psycopg.Error as e:  # the server's message, one line (a COPY error names its line)
            raise self._fail(f"the load into {self.table} failed at ids {first}..{end - 1}", e) from None

    def write_batch(self, batch: Batch) -> None:
        assert self.conn is not None
        self.send(self.conn, batch.first, batch.end, self.encode(batch))

    def delete_from(self, end_id: int) -> None:
        assert self.conn is not None
        with self.conn.transaction():
            self.conn.execute(sql.SQL("DELETE FROM {} WHERE id >= %s").format(self._t), [end_id])

    def write_ranges(self, stored: Stored, ranges: list[tuple[int, int]], rows: int) -> None:
        """Each range split into ``streams`` contiguous id ranges, one connection and thread each."""
        assert self.layout is not None and self.conn is not None
        parts = []
        for start, stop in ranges:
            step = -(-(stop - start) // self.streams)
            parts += [(s, min(stop, s + step)) for s in range(start, stop, max(step, 1))]
        stop_all = threading.Event()
        written = [0] * len(parts)

        layout = self.layout
        assert layout is not None

        def run(i: int, conn: psycopg.Connection) -> None:
            start, stop = parts[i]
            for batch in store_batches(stored, self.bitorder, layout, start, stop, rows):
                if stop_all.is_set():
                    return
                self.send(conn, batch.first, batch.end, self.encode(batch))
                written[i] += len(batch)

        if len(parts) <= 1:
            for i in range(len(parts)):
                run(i, self.conn)
        else:
            conns = [self.conn]
            try:
                for _ in parts[1:]:
                    conns.append(self._connect())
                with ThreadPoolExecutor(len(parts)) as pool:
                    futures = [pool.submit(run, i, c) for i, c in enumerate(conns)]
                    def failed(f) -> None:  # one stream's error stops the others at their next block
                        if f.exception() is not None:
                            stop_all.set()

                    for f in futures:
                        f.add_done_callback(failed)
                    errors = [f.exception() for f in futures]
            finally:
                for c in conns[1:]:
                    c.close()
            if first := next((e for e in errors if e is not None), None):
                raise first
        self.rows_written += sum(written)

    def finish(self) -> None:
        assert self.conn is not None and self.layout is not None
        if self.index == "hnsw":
            ops = f"{self.vector_type}_cosine_ops"
            with self.conn.transaction():
                if self.layout.int8:
                    self.conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (embedding {})").format(
                        sql.Identifier(f"{self.table.lower()}_embedding_hnsw"), self._t, sql.SQL(ops)))
                if self.layout.binary and self.layout.dimensions <= BIT_HNSW_MAX:
                    self.conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (code bit_hamming_ops)")
                                      .format(sql.Identifier(f"{self.table.lower()}_code_hnsw"), self._t))
