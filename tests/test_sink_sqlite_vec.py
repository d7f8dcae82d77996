"""The sqlite-vec sink against the real extension (apsw + the sqlite-vec package):
its own functions (vec_distance_hamming, vec_distance_cosine, KNN MATCH,
vec_quantize_binary) agree with pplx_codec's search on what was loaded."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

apsw = pytest.importorskip("apsw")
sqlite_vec = pytest.importorskip("sqlite_vec")

import pplx_codec as pc  # noqa: E402
from embedded_sinks_support import HOSTILE, MODEL, assert_same_topk, kill_midway, make_store, tied_rows  # noqa: E402
from helpers import raises_exactly  # noqa: E402
from pplx_codec import cli, sinks, store  # noqa: E402
from pplx_codec.sinks import SinkError, TableMismatch  # noqa: E402
from pplx_codec.sinks.sqlite_vec import SqliteVecSink, connect, two_stage_search  # noqa: E402
from server_support import KEY  # noqa: E402


def rows_of(path, table: str = "embeddings"):
    """(ids, int8 rows, codes, texts) read back, by id."""
    got = connect(path).execute(f"SELECT id, embedding, code, text FROM {table} ORDER BY id").fetchall()
    ids = np.array([r[0] for r in got], np.int64)
    d = len(got[0][1]) if got else 0
    x = np.frombuffer(b"".join(r[1] for r in got), np.int8).reshape(-1, d) if got else None
    c = np.frombuffer(b"".join(r[2] for r in got), np.uint8).reshape(len(got), -1) if got else None
    return ids, x, c, [r[3] for r in got]


def counts(path, table: str = "embeddings") -> tuple[int, int]:
    return connect(path).execute(f"SELECT count(*), count(DISTINCT id) FROM {table}").fetchone()


def assert_holds(path, s: store.Stored, table: str = "embeddings") -> None:
    """The table holds exactly the store's rows, ids = row numbers, codes unchanged (LSB first)."""
    ids, x, c, texts = rows_of(path, table)
    np.testing.assert_array_equal(ids, np.arange(s.count))
    if s.count:
        np.testing.assert_array_equal(x, s.int8)
        np.testing.assert_array_equal(c, s.binary)
    assert texts == list(s.texts)


def check_codes_are_sqlite_vecs(path, table: str = "embeddings") -> None:
    """The loaded code of every row is sqlite-vec's own quantization of its loaded vector."""
    n, same = connect(path).execute(
        f"SELECT count(*), total(code = vec_quantize_binary(embedding)) FROM {table}").fetchone()
    assert same == n, f"{n - int(same)} of {n} codes differ from vec_quantize_binary(embedding)"


# ------------------------------------------------------------------ bit order and the engine's own search

def test_vec_quantize_binary_is_lsb_first_as_perplexity():
    db = connect(":memory:")
    v = np.array([1, -1, 0, 2, 0, 0, 0, 0, 1] + [0] * 7, np.int8)
    (code,) = db.execute("SELECT vec_quantize_binary(vec_int8(?))", (v.tobytes(),)).fetchone()
    assert code.hex() == "0901"
    assert code == pc.pack_bits(v, "little").tobytes()
    assert SqliteVecSink.bitorder == "little"


def test_codes_go_in_unchanged_and_equal_vec_quantize_binary(tmp_path):
    s = make_store(tmp_path / "s", 300, 128)
    sinks.export(s, f"sqlite:{tmp_path / 'x.db'}", rows=64)
    assert_holds(tmp_path / "x.db", s)           # the store's LSB-first bytes, as they were
    check_codes_are_sqlite_vecs(tmp_path / "x.db")


def test_codes_in_the_wrong_order_fail_the_check(tmp_path):
    """Codes packed MSB first but declared LSB first (what loading np.packbits output as raw
    bytes does): they still agree with each other, but not with sqlite-vec's quantization."""
    x = tied_rows(200, 128)
    store.save(tmp_path / "s", int8=x, binary=np.packbits(x > 0, axis=1), bitorder="little", texts=["t"] * 200)
    sinks.export(tmp_path / "s", f"sqlite:{tmp_path / 'x.db'}")
    with pytest.raises(AssertionError, match="codes differ from vec_quantize_binary"):
        check_codes_are_sqlite_vecs(tmp_path / "x.db")


@pytest.mark.parametrize("d", [128, 1024])
def test_engine_search_equals_ours(tmp_path, d):
    s = make_store(tmp_path / "s", 400, d, seed=d)
    path = tmp_path / "x.db"
    sinks.export(s, f"sqlite:{path}", rows=100)
    db = connect(path)
    k = 25
    queries = np.concatenate([s.int8[[0, 7, 399]], tied_rows(3, d, seed=99)])   # stored rows (ties) and new
    for q in queries:
        code = pc.pack_bits(q, "little")
        D, I = pc.search_binary(code, s.binary, k)
        got = db.execute("SELECT id, vec_distance_hamming(code, vec_bit(?)) AS d FROM embeddings "
                         "ORDER BY d, id LIMIT ?", (code.tobytes(), k)).fetchall()
        # exact scan ordered by (distance, id): our order, ties included
        assert [r[0] for r in got] == I.tolist() and [int(r[1]) for r in got] == D.tolist()
        knn = db.execute("SELECT id, distance FROM embeddings WHERE code MATCH vec_bit(?) AND k = ?",
                         (code.tobytes(), k)).fetchall()
        # KNN orders (and picks among) ties its own way: compared as sets per distance
        assert_same_topk([r[1] for r in knn], [r[0] for r in knn], D, I, pc.hamming(code, s.binary))

        S, J = pc.search_int8(q, s.int8, k, metric="cosine")
        cos_all = 1.0 - pc.cosine(q, s.int8).astype(np.float64)
        got = db.execute("SELECT id, vec_distance_cosine(embedding, vec_int8(?)) AS d FROM embeddings "
                         "ORDER BY d, id LIMIT ?", (q.tobytes(), k)).fetchall()
        assert_same_topk([r[1] for r in got], [r[0] for r in got], 1.0 - S.astype(np.float64), J, cos_all,
                         atol=1e-5)
        knn = db.execute("SELECT id, distance FROM embeddings WHERE embedding MATCH vec_int8(?) AND k = ?",
                         (q.tobytes(), k)).fetchall()
        assert_same_topk([r[1] for r in knn], [r[0] for r in knn], 1.0 - S.astype(np.float64), J, cos_all,
                         atol=1e-5)
    check_codes_are_sqlite_vecs(path)


def test_two_stage_query_returns_our_rescored_top_k(tmp_path):
    """The README's query (Hamming candidates on the code, the query quantized in SQL, rescored
    by cosine on the int8 column) against pplx_codec's Index with the same candidates."""
    s = make_store(tmp_path / "s", 600, 256, seed=5)
    sinks.export(s, f"sqlite:{tmp_path / 'x.db'}")
    db = connect(tmp_path / "x.db")
    index = pc.Index(256)
    index.add(s.int8)
    k, rescore = 10, 4
    for q in np.concatenate([s.int8[[1, 2]], tied_rows(4, 256, seed=11)]):
        S, J = index.search(q, k, rescore=rescore)
        got = two_stage_search(db, q, k=k, candidates=k * rescore)
        assert [t for _, t, _ in got] == [s.texts[i] for i, _, _ in got]
        assert_same_topk([1.0 - r[2] for r in got], [r[0] for r in got], 1.0 - S.astype(np.float64), J,
                         1.0 - pc.cosine(q, s.int8).astype(np.float64), atol=1e-5)


# ------------------------------------------------------------------ idempotent, killed, replaced

def test_export_twice_and_bigger_then_smaller(tmp_path):
    path, target = tmp_path / "x.db", f"sqlite:{tmp_path / 'x.db'}"
    big = make_store(tmp_path / "big", 50, 64, seed=1)
    small = make_store(tmp_path / "small", 20, 64, seed=2)
    for _ in range(2):
        assert sinks.export(big, target, rows=16) == 50
        assert counts(path) == (50, 50)
    assert sinks.export(small, target, rows=16) == 20
    assert counts(path) == (20, 20)
    assert_holds(path, small)
    layout = json.loads(connect(path).execute("SELECT layout FROM pplx_codec_tables").fetchone()[0])
    assert layout == {"model": MODEL, "dimensions": 64, "int8": True, "binary": True}


KILLED = """
import time
from pplx_codec import sinks, store
from pplx_codec.sinks.sqlite_vec import SqliteVecSink

write = SqliteVecSink.write_batch
def slow(self, batch):
    if batch.first == 3 * 500:            # the 4th block: stop inside its transaction, mid-insert
        def texts(ts=batch.texts):
            for i, t in enumerate(ts):
                if i == 250:
                    print("ready", flush=True)
                    time.sleep(60)
                yield t
        batch.texts = texts()
    write(self, batch)
SqliteVecSink.write_batch = slow
sinks.export(%r, %r, rows=500)
"""


def test_killed_load_then_rerun_has_every_row_once(tmp_path):
    s = make_store(tmp_path / "s", 5000, 64)
    path = tmp_path / "x.db"
    kill_midway(KILLED % (str(tmp_path / "s"), f"sqlite:{path}"))
    assert counts(path) == (1500, 1500)     # three whole blocks; the 4th rolled back (its delete too)
    sinks.export(s, f"sqlite:{path}", rows=500)
    assert counts(path) == (5000, 5000)
    assert_holds(path, s)


def test_other_dimensions_refused_then_replaced(tmp_path):
    target = f"sqlite:{tmp_path / 'x.db'}"
    sinks.export(make_store(tmp_path / "a", 10, 64), target)
    b = make_store(tmp_path / "b", 7, 128, model="pplx-embed-v1-4b")
    with raises_exactly(TableMismatch, "table embeddings exists with other rows: model 'pplx-embed-v1-0.6b' "
                        "(the rows: 'pplx-embed-v1-4b'), dimensions 64 (the rows: 128); pass replace=True "
                        "(--replace) to overwrite it"):
        sinks.export(b, target)
    assert counts(tmp_path / "x.db") == (10, 10)
    assert sinks.export(b, target, replace=True) == 7
    assert_holds(tmp_path / "x.db", b)


def test_someone_elses_table_refused_then_replaced(tmp_path):
    path = tmp_path / "x.db"
    db = connect(path)
    db.execute("CREATE TABLE embeddings(id integer primary key, v blob); INSERT INTO embeddings VALUES (1, x'00')")
    db.close()
    s = make_store(tmp_path / "s", 5, 64)
    with raises_exactly(TableMismatch, "table embeddings exists but was not made by pplx-codec (no layout recorded "
                        "with it); pass replace=True (--replace) to overwrite it"):
        sinks.export(s, f"sqlite:{path}")
    assert connect(path).execute("SELECT count(*) FROM embeddings").fetchone() == (1,)
    sinks.export(s, f"sqlite:{path}", replace=True)
    assert_holds(path, s)


# ------------------------------------------------------------------ awkward sizes and texts

@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 8, 9])
def test_sizes_around_block_boundaries(tmp_path, n):
    s = make_store(tmp_path / "s", n, 64, seed=n)
    sinks.export(s, f"sqlite:{tmp_path / 'x.db'}", rows=4)
    assert counts(tmp_path / "x.db") == (n, n)
    assert_holds(tmp_path / "x.db", s)


def test_matryoshka_130_dims_is_int8_only(tmp_path):
    s = make_store(tmp_path / "s", 30, 130)
    path = tmp_path / "x.db"
    sinks.export(s, f"sqlite:{path}", rows=8)
    db = connect(path)
    cols = [r[1] for r in db.execute("PRAGMA table_info(embeddings)").fetchall()]
    assert cols == ["id", "embedding", "text"]
    got = db.execute("SELECT id, embedding FROM embeddings ORDER BY id").fetchall()
    np.testing.assert_array_equal(np.frombuffer(b"".join(r[1] for r in got), np.int8).reshape(30, 130), s.int8)
    S, J = pc.search_int8(s.int8[3], s.int8, 5)
    knn = db.execute("SELECT id, distance FROM embeddings WHERE embedding MATCH vec_int8(?) AND k = 5",
                     (s.int8[3].tobytes(),)).fetchall()
    assert_same_topk([r[1] for r in knn], [r[0] for r in knn], 1.0 - S.astype(np.float64), J,
                     1.0 - pc.cosine(s.int8[3], s.int8).astype(np.float64), atol=1e-5)


def test_binary_only_store(tmp_path):
    x = tied_rows(40, 64)
    store.save(tmp_path / "s", binary=pc.pack_bits(x, "little"), bitorder="little")
    sinks.export(tmp_path / "s", f"sqlite:{tmp_path / 'x.db'}")
    db = connect(tmp_path / "x.db")
    assert [r[1] for r in db.execute("PRAGMA table_info(embeddings)").fetchall()] == ["id", "code", "text"]
    got = db.execute("SELECT code, text FROM embeddings ORDER BY id").fetchall()
    assert b"".join(r[0] for r in got) == pc.pack_bits(x, "little").tobytes() and {r[1] for r in got} == {""}


def test_hostile_texts_round_trip(tmp_path):
    texts = HOSTILE + ["y" * 1_000_000]
    s = make_store(tmp_path / "s", len(texts), 64, texts=texts)
    sinks.export(s, f"sqlite:{tmp_path / 'x.db'}", rows=3)
    assert rows_of(tmp_path / "x.db")[3] == texts


def test_lone_surrogate_names_the_row_and_writes_nothing_of_its_block(tmp_path):
    texts = [f"t{i}" for i in range(10)]
    texts[6] = "bad \ud800 text"
    s = make_store(tmp_path / "s", 10, 64, texts=texts)
    with raises_exactly(ValueError, "the text of row 6 is not valid Unicode (a lone surrogate): SQLite stores "
                        "text as UTF-8"):
        sinks.export(s, f"sqlite:{tmp_path / 'x.db'}", rows=4)
    assert counts(tmp_path / "x.db") == (4, 4)     # the first block; the second rolled back whole


# ------------------------------------------------------------------ streaming: threads and the client

def test_concurrent_add_from_threads(tmp_path):
    x = tied_rows(200, 64)
    with sinks.open_sink(f"sqlite:{tmp_path / 'x.db'}") as sink:
        def work(t):
            for j in range(5):
                rows = slice(t * 50 + j * 10, t * 50 + j * 10 + 10)
                sink.add(int8=x[rows], texts=[str(i) for i in range(200)[rows]])
        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    ids, got, codes, texts = rows_of(tmp_path / "x.db")
    np.testing.assert_array_equal(ids, np.arange(200))
    src = np.array([int(t) for t in texts])           # which source row each id received
    assert sorted(src.tolist()) == list(range(200))
    np.testing.assert_array_equal(got, x[src])
    np.testing.assert_array_equal(codes, pc.pack_bits(x[src], "little"))


def test_client_embed_batches_into_the_sink(tmp_path):
    from pplx_codec.server import running

    texts = [f"document {i} about {'cats' if i % 3 else 'dogs'}" for i in range(130)]
    with running(api_keys=[KEY], backend="hash") as url, pc.Client(api_key=KEY, base_url=url) as client:
        with sinks.open_sink(f"sqlite:{tmp_path / 'x.db'}") as sink:
            for i in range(0, len(texts), 50):
                chunk = texts[i:i + 50]
                assert sink.add(client.embed(chunk, dimensions=256), chunk) == range(i, i + len(chunk))
        whole = client.embed(texts, dimensions=256)
    ids, x, codes, got = rows_of(tmp_path / "x.db")
    np.testing.assert_array_equal(ids, np.arange(130))
    np.testing.assert_array_equal(x, whole.vectors)
    np.testing.assert_array_equal(codes, pc.pack_bits(whole.vectors, "little"))
    assert got == texts
    check_codes_are_sqlite_vecs(tmp_path / "x.db")
    layout = json.loads(connect(tmp_path / "x.db").execute("SELECT layout FROM pplx_codec_tables").fetchone()[0])
    assert layout["model"] == whole.model and layout["dimensions"] == 256


# ------------------------------------------------------------------ errors and the CLI

def test_file_errors_are_one_line(tmp_path):
    s = make_store(tmp_path / "s", 3, 64)
    (tmp_path / "plain").write_text("not a database, just text " * 100)
    with raises_exactly(SinkError, f"sqlite-vec: cannot open {tmp_path}: it is a directory (give a file)"):
        sinks.export(s, f"sqlite:{tmp_path}")
    with raises_exactly(SinkError, f"sqlite-vec: cannot open {tmp_path / 'plain'}: file is not a database"):
        sinks.export(s, f"sqlite:{tmp_path / 'plain'}")
    for where in (tmp_path / "no" / "such" / "x.db", tmp_path / "plain" / "x.db"):
        with raises_exactly(SinkError, f"sqlite-vec: cannot open {where}: unable to open database file"):
            sinks.export(s, f"sqlite:{where}")


def test_cli_export_and_its_errors(tmp_path, capsys):
    make_store(tmp_path / "s", 12, 64)
    assert cli.main(["export", str(tmp_path / "s"), f"sqlite:{tmp_path / 'x.db'}", "--rows", "5"]) == 0
    line = capsys.readouterr().err
    assert line.startswith(f"pplx-codec export: 12 rows (64 dims, id, text, embedding int8, code bit) into "
                           f"sqlite-vec table embeddings at {tmp_path / 'x.db'} in ") and line.count("\n") == 1
    assert counts(tmp_path / "x.db") == (12, 12)
    make_store(tmp_path / "t", 3, 128)
    for args, want in [
        ([str(tmp_path / "t"), f"sqlite:{tmp_path / 'x.db'}"],
         "table embeddings exists with other rows: dimensions 64 (the rows: 128); pass replace=True (--replace) to "
         "overwrite it"),
        ([str(tmp_path / "t"), f"sqlite:{tmp_path}"], f"sqlite-vec: cannot open {tmp_path}: it is a directory "
                                                      "(give a file)"),
        ([str(tmp_path / "t"), f"{tmp_path / 'x.db'}", "--streams", "2"],
         "--streams: pgvector options; sqlite-vec takes none of them"),
    ]:
        assert cli.main(["export", *args]) == 2
        assert capsys.readouterr().err == f"pplx-codec export: {want}\n"
    assert cli.main(["export", str(tmp_path / "t"), f"sqlite:{tmp_path / 'x.db'}", "--replace", "--quiet"]) == 0
    assert counts(tmp_path / "x.db") == (3, 3)
