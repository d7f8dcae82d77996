"""Sinks family, the embedded databases: loading a store's rows (id, text, int8
vector, binary code) into LanceDB and sqlite-vec, ours against the path each
database's own docs show.

- LanceDB: ``table.add(list of dicts)`` (one dict a row, numpy rows as values, as
  LanceDB's examples build them) against ours, ``export`` (Arrow record batches
  on the store's buffers, one commit).
- sqlite-vec: ``executemany`` with ``serialize_int8(row.tolist())`` per row (its
  docs' Python path; apsw, as the stdlib sqlite3 here cannot load extensions)
  against ours, ``export`` (each row bound as memoryview slices of the block).

Every implementation starts from an empty table (ours with ``replace=True``: the
drop and create are in its time, the peers' too) and reads the same memory-mapped
store.  Favours to the peers, outside their time: the texts as a Python list,
and for LanceDB the codes already in its MSB-first order (ours converts Perplexity's
LSB-first codes inside its time).

Each result is checked by reading the table back: the row count, the distinct ids
(0 .. n - 1), and aggregates equal to numpy's on the store (the sum of every int8
value, the bits set in the codes, the text lengths), so a loader that dropped,
repeated or garbled rows fails before it is timed.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

import pplx_codec as pc

from ._harness import Case, Impl, optional

DIM = 1024
MODEL = "pplx-embed-v1-0.6b"


def _store(root: Path, n: int):
    """A store of n x DIM int8 rows, their codes in Perplexity's order (LSB first), and texts."""
    from .. import store

    rng = np.random.default_rng(n)
    x = rng.integers(-128, 128, (n, DIM), dtype=np.int8)
    texts = [f"passage {i}: " + "lorem ipsum dolor sit amet " * (1 + i % 5) for i in range(n)]
    store.save(root / "store", int8=x, binary=pc.pack_bits(x, "little"), bitorder="little", texts=texts,
               meta={"model": MODEL})
    return store.load(root / "store"), texts


def _expected(stored, texts: list[str]) -> dict:
    return {"count": stored.count, "distinct_ids": stored.count, "ids": (0, stored.count - 1),
            "int8_sum": int(stored.int8.sum(dtype=np.int64)),
            "bits_set": int(np.bitwise_count(np.asarray(stored.binary)).sum(dtype=np.int64)),
            "text_chars": sum(len(t) for t in texts)}


def _summary(ids: np.ndarray, x: np.ndarray, codes: np.ndarray, text_chars: int) -> dict:
    return {"count": len(ids), "distinct_ids": len(np.unique(ids)),
            "ids": (int(ids.min()), int(ids.max())) if len(ids) else (0, -1),
            "int8_sum": int(x.sum(dtype=np.int64)), "bits_set": int(np.bitwise_count(codes).sum(dtype=np.int64)),
            "text_chars": text_chars}


def _check(got, want) -> None:
    assert got == want, f"read back {got}, the store holds {want}"


# ----------------------------------------------------------------- LanceDB

def _lancedb_case(root: Path, stored, texts: list[str], lancedb) -> Case:
    import pyarrow.compute as pac

    from ..sinks import export
    from ..sinks._rows import layout_of
    from ..sinks.lancedb import schema_of

    n = stored.count
    where = root / "lancedb"
    schema = schema_of(layout_of(MODEL, DIM, True))
    big = pc.reverse_bitorder(stored.binary)   # the peer's codes in LanceDB's order, made outside its time

    def read_back(name: str) -> dict:
        t = lancedb.connect(str(where)).open_table(name).to_arrow()
        flat = {c: t.column(c).combine_chunks().values.to_numpy() for c in ("int8", "binary")}
        return _summary(t.column("id").to_numpy(), flat["int8"], flat["binary"],
                        int(pac.sum(pac.utf8_length(t.column("text"))).as_py() or 0))

    def ours():
        export(stored, f"lancedb:{where}", table="ours", replace=True)
        return "ours"

    def peer():
        db = lancedb.connect(str(where))
        tbl = db.create_table("peer", schema=schema, mode="overwrite")
        x = stored.int8
        tbl.add([{"id": i, "text": texts[i], "int8": x[i], "binary": big[i]} for i in range(n)])
        return "peer"

    impls = [Impl("ours (Arrow batches, one commit)", ours, ours=True,
                  check=lambda got, want: _check(read_back(got), want)),
             Impl("lancedb table.add(list of dicts)", peer, check=lambda got, want: _check(read_back(got), want))]
    return Case("sinks", f"LanceDB: load {n:,} x {DIM} (int8 + bits + text)", _nbytes(stored, texts),
                _expected(stored, texts), impls, per_item=n, item="row",
                note="empty table each run; " + f"lancedb {lancedb.__version__}")


# ----------------------------------------------------------------- sqlite-vec

def _sqlite_vec_case(root: Path, stored, texts: list[str], apsw, sqlite_vec) -> Case:
    from ..sinks import export

    n = stored.count
    path = root / "sqlite-vec.db"

    def connect():
        db = apsw.Connection(str(path))
        db.enable_load_extension(True)
        db.load_extension(sqlite_vec.loadable_path())
        return db

    def read_back(name: str) -> dict:
        db = connect()
        try:
            rows = db.execute(f"SELECT id, embedding, code, length(text) FROM {name}").fetchall()
        finally:
            db.close()
        ids = np.array([r[0] for r in rows], np.int64)
        x = np.frombuffer(b"".join(r[1] for r in rows), np.int8)
        codes = np.frombuffer(b"".join(r[2] for r in rows), np.uint8)
        return _summary(ids, x, codes, sum(r[3] for r in rows))

    def ours():
        export(stored, f"sqlite:{path}", table="ours", replace=True)
        return "ours"

    def peer():
        db = connect()
        try:
            with db:
                db.execute("DROP TABLE IF EXISTS peer")
                db.execute(f"CREATE VIRTUAL TABLE peer USING vec0(id integer primary key, embedding int8[{DIM}] "
                           f"distance_metric=cosine, code bit[{DIM}], +text text)")
            x, codes = stored.int8, stored.binary
            with db:
                db.executemany("INSERT INTO peer(id, embedding, code, text) VALUES (?, vec_int8(?), vec_bit(?), ?)",
                               [(i, sqlite_vec.serialize_int8(x[i].tolist()), codes[i].tobytes(), texts[i])
                                for i in range(n)])
        finally:
            db.close()
        return "peer"

    impls = [Impl("ours (memoryview rows, a transaction per 8192)", ours, ours=True,
                  check=lambda got, want: _check(read_back(got), want)),
             Impl("sqlite-vec executemany + serialize_int8", peer,
                  check=lambda got, want: _check(read_back(got), want))]
    version = getattr(sqlite_vec, "__version__", "?")
    return Case("sinks", f"sqlite-vec: load {n:,} x {DIM} (int8 + bits + text)", _nbytes(stored, texts),
                _expected(stored, texts), impls, per_item=n, item="row",
                note=f"empty table each run; sqlite-vec {version}, apsw {apsw.apswversion()}")


def _nbytes(stored, texts: list[str]) -> int:
    return int(stored.int8.nbytes + stored.binary.nbytes + sum(len(t.encode()) for t in texts))


def cases(quick: bool = False, small: bool = False) -> list[Case]:
    """``small``: ~1,000 rows (the answer checks in CI); ``quick``: 20,000; else 100,000."""
    n = 1_000 if small else 20_000 if quick else 100_000
    missing: list[str] = []
    os.environ.setdefault("LANCE_LOG", "error")   # no WARN line per new table (as sinks/lancedb.py does)
    lancedb = optional("lancedb", missing)
    apsw = optional("apsw", missing)
    sqlite_vec = optional("sqlite_vec", missing, "sqlite-vec")
    root = Path(tempfile.mkdtemp(prefix="pplx-codec-sinks-"))
    atexit.register(shutil.rmtree, root, True)
    stored, texts = _store(root, n)
    out = []
    if lancedb is not None:
        out.append(_lancedb_case(root, stored, texts, lancedb))
    if apsw is not None and sqlite_vec is not None:
        out.append(_sqlite_vec_case(root, stored, texts, apsw, sqlite_vec))
    for case in out:
        case.missing = list(missing)
    return out
