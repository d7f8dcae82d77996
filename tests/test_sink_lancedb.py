"""The LanceDB sink against the real engine: its own Hamming search over the
loaded codes agrees with pplx_codec.search_binary, every write is one
commit, and a re-run or a killed load ends with every row once."""

from __future__ import annotations

import threading

import numpy as np
import pytest

lancedb = pytest.importorskip("lancedb")
pa = pytest.importorskip("pyarrow")

import pplx_codec as pc  # noqa: E402
from embedded_sinks_support import HOSTILE, MODEL, assert_same_topk, kill_midway, make_store, tied_rows  # noqa: E402
from helpers import raises_exactly  # noqa: E402
from pplx_codec import cli, sinks, store  # noqa: E402
from pplx_codec.sinks import SinkError, TableMismatch  # noqa: E402
from pplx_codec.sinks.lancedb import LAYOUT_KEY, LanceDBSink, two_stage_search  # noqa: E402
from server_support import KEY  # noqa: E402


def table(path, name: str = "embeddings"):
    return lancedb.connect(str(path)).open_table(name)   # a fresh handle sees the latest commit


def rows_of(path, name: str = "embeddings"):
    """(ids, int8 rows or None, codes or None, texts) read back, by id."""
    t = table(path, name).to_arrow().sort_by("id")
    def matrix(col, dtype):
        if col not in t.column_names:
            return None
        c = t.column(col).combine_chunks()
        return c.values.to_numpy().astype(dtype).reshape(len(c), -1) if len(c) else np.empty((0, 0), dtype)
    return t.column("id").to_numpy(), matrix("int8", np.int8), matrix("binary", np.uint8), t.column("text").to_pylist()


def counts(path, name: str = "embeddings") -> tuple[int, int]:
    ids = table(path, name).to_arrow().column("id").to_numpy()
    return len(ids), len(np.unique(ids))


def assert_holds(path, s: store.Stored, name: str = "embeddings") -> None:
    """The table holds exactly the store's rows, ids = row numbers, codes MSB first."""
    ids, x, c, texts = rows_of(path, name)
    np.testing.assert_array_equal(ids, np.arange(s.count))
    if s.count:
        np.testing.assert_array_equal(x, s.int8)
        if s.binary is not None and s.dimensions % 8 == 0:
            np.testing.assert_array_equal(c, pc.reverse_bitorder(s.binary))
    assert texts == list(s.texts)


def hamming_search(t, code: np.ndarray, k: int):
    r = t.search(code, vector_column_name="binary").distance_type("hamming").limit(k).to_arrow()
    return r.column("_distance").to_numpy(), r.column("id").to_numpy()


# ------------------------------------------------------------------ bit order and the engine's own search

def test_codes_are_msb_first_as_np_packbits(tmp_path):
    """LanceDB's docs pack binary vectors with np.packbits (MSB first): the loaded codes equal
    np.packbits(vector > 0) of the loaded int8 rows, while the store keeps Perplexity's LSB order."""
    s = make_store(tmp_path / "s", 100, 64)
    sinks.export(s, f"lancedb:{tmp_path / 'db'}", rows=32)
    _, x, c, _ = rows_of(tmp_path / "db")
    np.testing.assert_array_equal(c, np.packbits(x > 0, axis=1))
    assert not np.array_equal(c, s.binary)
    assert LanceDBSink.bitorder == "big"


@pytest.mark.parametrize("d", [128, 1024])
def test_engine_hamming_equals_ours(tmp_path, d):
    s = make_store(tmp_path / "s", 400, d, seed=d)
    sinks.export(s, f"lancedb:{tmp_path / 'db'}", rows=100)
    with sinks.open_sink(f"lancedb:{tmp_path / 'db'}") as sink:   # and some rows again, as later commits
        sink.next_id = 50
        sink.add(int8=s.int8[50:150], texts=list(s.texts[50:150]), model=MODEL)
    t = table(tmp_path / "db")
    assert t.count_rows() == 400
    k = 30
    for q in np.concatenate([s.int8[[0, 2, 399]], tied_rows(3, d, seed=99)]):
        ours = pc.pack_bits(q, "little")
        D, I = pc.search_binary(ours, s.binary, k)
        Dl, Il = hamming_search(t, np.packbits(q > 0), k)      # the query packed as LanceDB's docs pack it
        assert_same_topk(Dl, Il, D, I, pc.hamming(ours, s.binary))


def test_int8_column_cannot_be_searched_by_lancedb(tmp_path):
    """LanceDB 0.40.0 turns every query vector into float32 and refuses it on an int8 column,
    whatever the metric: the reason the README rescores Hamming candidates with our cosine."""
    s = make_store(tmp_path / "s", 10, 64)
    sinks.export(s, f"lancedb:{tmp_path / 'db'}")
    t = table(tmp_path / "db")
    for metric in ("cosine", "l2", "dot"):
        for q in (s.int8[0], s.int8[0].astype(np.float32)):
            with raises_exactly(ValueError, "Invalid input, Column int8 has element type Int8 and the query vector "
                                "is Float32"):
                t.search(q, vector_column_name="int8").distance_type(metric).limit(3).to_arrow()


def test_codes_in_the_wrong_order_give_wrong_candidates(tmp_path):
    """Perplexity's LSB-first codes loaded as raw bytes (a store that claims MSB first): a query
    packed as LanceDB's docs pack it (np.packbits) no longer finds our Hamming neighbours."""
    x = tied_rows(300, 128)
    store.save(tmp_path / "s", int8=x, binary=pc.pack_bits(x, "little"), bitorder="big")   # mislabelled
    sinks.export(tmp_path / "s", f"lancedb:{tmp_path / 'db'}")
    t = table(tmp_path / "db")
    ours = pc.pack_bits(x, "little")
    q = tied_rows(1, 128, seed=42)[0]
    D, I = pc.search_binary(pc.pack_bits(q, "little"), ours, 20)
    Dl, Il = hamming_search(t, np.packbits(q > 0), 20)
    with pytest.raises(AssertionError):
        assert_same_topk(Dl, Il, D, I, pc.hamming(pc.pack_bits(q, "little"), ours))


def test_two_stage_search_returns_our_rescored_top_k(tmp_path):
    """The README's recipe: LanceDB's Hamming candidates, rescored by our exact int8 cosine
    (LanceDB cannot search the int8 column), against pplx_codec's Index."""
    s = make_store(tmp_path / "s", 600, 256, seed=5)
    sinks.export(s, f"lancedb:{tmp_path / 'db'}")
    tbl = table(tmp_path / "db")
    index = pc.Index(256)
    index.add(s.int8)
    k, rescore = 10, 4
    for q in np.concatenate([s.int8[[1, 2]], tied_rows(4, 256, seed=11)]):
        S, J = index.search(q, k, rescore=rescore)
        for code in (None, pc.pack_bits(q, "little")):  # derived, or the API's LSB-first code
            got = two_stage_search(tbl, q, code, k=k, candidates=k * rescore)
            assert [t for _, t, _ in got] == [s.texts[i] for i, _, _ in got]
            assert_same_topk(1.0 - np.array([sc for *_, sc in got]), np.array([i for i, *_ in got]),
                             1.0 - S.astype(np.float64), J, 1.0 - pc.cosine(q, s.int8).astype(np.float64),
                             atol=1e-6)


# ------------------------------------------------------------------ idempotent, killed, replaced

def test_export_twice_and_bigger_then_smaller(tmp_path):
    path, target = tmp_path / "db", f"lancedb:{tmp_path / 'db'}"
    big = make_store(tmp_path / "big", 50, 64, seed=1)
    small = make_store(tmp_path / "small", 20, 64, seed=2)
    for _ in range(2):
        assert sinks.export(big, target, rows=16) == 50
        assert counts(path) == (50, 50)
    v = table(path).version
    assert sinks.export(small, target, rows=16) == 20
    assert table(path).version == v + 1             # the smaller store: one commit (merge + delete)
    assert_holds(path, small)
    meta = table(path).schema.metadata[LAYOUT_KEY]
    assert meta == b'{"model": "pplx-embed-v1-0.6b", "dimensions": 64, "int8": true, "binary": true}'


def test_add_is_idempotent_per_call(tmp_path):
    x = tied_rows(30, 64)
    for _ in range(2):          # the same pipeline run twice: the same ids, once each
        with sinks.open_sink(f"lancedb:{tmp_path / 'db'}") as sink:
            for i in range(0, 30, 10):
                sink.add(int8=x[i:i + 10], texts=[str(j) for j in range(i, i + 10)])
    ids, got, _, texts = rows_of(tmp_path / "db")
    np.testing.assert_array_equal(ids, np.arange(30))
    np.testing.assert_array_equal(got, x)
    assert texts == [str(j) for j in range(30)]


KILLED = """
import time
from pplx_codec import sinks, store

s = store.load(%r)
texts = s.texts
class Texts:
    def __len__(self):
        return len(texts)
    def __getitem__(self, i):
        if isinstance(i, slice) and i.start == 3 * 500:   # LanceDB is reading the 4th block
            print("ready", flush=True)
            time.sleep(60)
        return texts[i]
s.texts = Texts()
sinks.export(s, %r, rows=500)
"""


@pytest.mark.parametrize("existing", [0, 5000])
def test_killed_load_then_rerun_has_every_row_once(tmp_path, existing):
    """Killed in the middle of its one commit: an empty table stays empty, a full one unchanged."""
    s = make_store(tmp_path / "s", 5000, 64)
    target = f"lancedb:{tmp_path / 'db'}"
    if existing:
        sinks.export(make_store(tmp_path / "old", existing, 64, seed=7), target)
    kill_midway(KILLED % (str(tmp_path / "s"), target))
    assert counts(tmp_path / "db") == (existing, existing)
    sinks.export(s, target, rows=500)
    assert counts(tmp_path / "db") == (5000, 5000)
    assert_holds(tmp_path / "db", s)


def test_other_dimensions_refused_then_replaced(tmp_path):
    target = f"lancedb:{tmp_path / 'db'}"
    sinks.export(make_store(tmp_path / "a", 10, 64), target)
    b = make_store(tmp_path / "b", 7, 128, model="pplx-embed-v1-4b")
    with raises_exactly(TableMismatch, "table embeddings exists with other rows: model 'pplx-embed-v1-0.6b' "
                        "(the rows: 'pplx-embed-v1-4b'), dimensions 64 (the rows: 128); pass replace=True "
                        "(--replace) to overwrite it"):
        sinks.export(b, target)
    assert counts(tmp_path / "db") == (10, 10)
    assert sinks.export(b, target, replace=True) == 7
    assert_holds(tmp_path / "db", b)


def test_someone_elses_table_refused_then_replaced(tmp_path):
    db = lancedb.connect(str(tmp_path / "db"))
    db.create_table("embeddings", data=[{"id": 1, "vector": [0.5, 0.25]}])
    s = make_store(tmp_path / "s", 5, 64)
    with raises_exactly(TableMismatch, "table embeddings exists but was not made by pplx-codec (no layout recorded "
                        "with it); pass replace=True (--replace) to overwrite it"):
        sinks.export(s, f"lancedb:{tmp_path / 'db'}")
    assert table(tmp_path / "db").count_rows() == 1
    sinks.export(s, f"lancedb:{tmp_path / 'db'}", replace=True)
    assert_holds(tmp_path / "db", s)


# ------------------------------------------------------------------ awkward sizes and texts

@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 8, 9])
def test_sizes_around_block_boundaries(tmp_path, n):
    s = make_store(tmp_path / "s", n, 64, seed=n)
    sinks.export(s, f"lancedb:{tmp_path / 'db'}", rows=4)
    assert counts(tmp_path / "db") == (n, n)
    assert_holds(tmp_path / "db", s)


def test_matryoshka_130_dims_is_int8_only(tmp_path):
    s = make_store(tmp_path / "s", 30, 130)
    sinks.export(s, f"lancedb:{tmp_path / 'db'}", rows=8)
    assert table(tmp_path / "db").schema.names == ["id", "text", "int8"]
    assert table(tmp_path / "db").schema.field("int8").type == pa.list_(pa.int8(), 130)
    assert_holds(tmp_path / "db", s)


def test_binary_only_store(tmp_path):
    x = tied_rows(40, 64)
    store.save(tmp_path / "s", binary=pc.pack_bits(x, "little"), bitorder="little")
    sinks.export(tmp_path / "s", f"lancedb:{tmp_path / 'db'}")
    ids, got, codes, texts = rows_of(tmp_path / "db")
    assert got is None and texts == [""] * 40
    np.testing.assert_array_equal(codes, np.packbits(x > 0, axis=1))


def test_hostile_texts_round_trip(tmp_path):
    texts = HOSTILE + ["y" * 1_000_000]
    s = make_store(tmp_path / "s", len(texts), 64, texts=texts)
    sinks.export(s, f"lancedb:{tmp_path / 'db'}", rows=3)
    assert rows_of(tmp_path / "db")[3] == texts


def test_lone_surrogate_names_the_row_and_commits_nothing(tmp_path):
    texts = [f"t{i}" for i in range(10)]
    texts[6] = "bad \ud800 text"
    s = make_store(tmp_path / "s", 10, 64, texts=texts)
    message = "the text of row 6 is not valid Unicode (a lone surrogate): Arrow (LanceDB) stores text as UTF-8"
    with raises_exactly(ValueError, message):
        sinks.export(s, f"lancedb:{tmp_path / 'db'}", rows=4)
    assert counts(tmp_path / "db") == (0, 0)        # one commit: nothing of the store
    with sinks.open_sink(f"lancedb:{tmp_path / 'db'}") as sink, raises_exactly(ValueError, message):
        sink.add(int8=s.int8, texts=texts, model=MODEL)


# ------------------------------------------------------------------ streaming: threads and the client

def test_concurrent_add_from_threads(tmp_path):
    x = tied_rows(120, 64)
    with sinks.open_sink(f"lancedb:{tmp_path / 'db'}") as sink:
        def work(t):
            for j in range(3):
                rows = slice(t * 30 + j * 10, t * 30 + j * 10 + 10)
                sink.add(int8=x[rows], texts=[str(i) for i in range(120)[rows]])
        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    ids, got, codes, texts = rows_of(tmp_path / "db")
    np.testing.assert_array_equal(ids, np.arange(120))
    src = np.array([int(t) for t in texts])
    assert sorted(src.tolist()) == list(range(120))
    np.testing.assert_array_equal(got, x[src])
    np.testing.assert_array_equal(codes, np.packbits(x[src] > 0, axis=1))


def test_client_embed_batches_into_the_sink(tmp_path):
    from pplx_codec.server import running

    texts = [f"document {i} about {'cats' if i % 3 else 'dogs'}" for i in range(130)]
    with running(api_keys=[KEY], backend="hash") as url, pc.Client(api_key=KEY, base_url=url) as client:
        with sinks.open_sink(f"lancedb:{tmp_path / 'db'}") as sink:
            for i in range(0, len(texts), 50):
                chunk = texts[i:i + 50]
                assert sink.add(client.embed(chunk, dimensions=256), chunk) == range(i, i + len(chunk))
        whole = client.embed(texts, dimensions=256)
        api = client.embed(texts, dimensions=256, encoding_format="base64_binary").vectors   # LSB first
    ids, x, codes, got = rows_of(tmp_path / "db")
    np.testing.assert_array_equal(ids, np.arange(130))
    np.testing.assert_array_equal(x, whole.vectors)
    assert got == texts
    # int8 rows alone: the codes are derived as the databases quantize (bit = value > 0), MSB first.
    # The API's own codes are the sign of the float: they differ only where int8 rounded to 0.
    np.testing.assert_array_equal(codes, np.packbits(whole.vectors > 0, axis=1))
    differ = pc.unpack_bits(api, 256, "little").astype(bool) != (whole.vectors > 0)
    assert (whole.vectors[differ] == 0).all()
    t = table(tmp_path / "db")
    mine = pc.reverse_bitorder(codes)
    D, I = pc.search_binary(mine[5], mine, 10)
    Dl, Il = hamming_search(t, codes[5], 10)
    assert_same_topk(Dl, Il, D, I, pc.hamming(mine[5], mine))


# ------------------------------------------------------------------ errors and the CLI

def test_path_errors_are_one_line(tmp_path):
    s = make_store(tmp_path / "s", 3, 64)
    (tmp_path / "plain").write_text("x")
    with raises_exactly(SinkError, f"lancedb: cannot open {tmp_path / 'plain'}: it is not a directory (LanceDB "
                        "keeps a directory of tables)"):
        sinks.export(s, f"lancedb:{tmp_path / 'plain'}")
    with raises_exactly(SinkError, f"lancedb: cannot open {tmp_path / 'plain' / 'db'}: [Errno 20] Not a "
                        f"directory: '{tmp_path / 'plain' / 'db'}'"):
        sinks.export(s, f"lancedb:{tmp_path / 'plain' / 'db'}")


def test_cli_export_and_its_errors(tmp_path, capsys):
    make_store(tmp_path / "s", 12, 64)
    assert cli.main(["export", str(tmp_path / "s"), str(tmp_path / "x.lance"), "--rows", "5"]) == 0
    line = capsys.readouterr().err
    assert line.startswith(f"pplx-codec export: 12 rows (64 dims, id, text, int8, binary) into lancedb table "
                           f"embeddings at {tmp_path / 'x.lance'} in ") and line.count("\n") == 1
    assert counts(tmp_path / "x.lance") == (12, 12)
    make_store(tmp_path / "t", 3, 128)
    (tmp_path / "plain").write_text("x")
    for args, want in [
        ([f"lancedb:{tmp_path / 'x.lance'}"],
         "table embeddings exists with other rows: dimensions 64 (the rows: 128); pass replace=True (--replace) to "
         "overwrite it"),
        ([f"lancedb:{tmp_path / 'plain'}"], f"lancedb: cannot open {tmp_path / 'plain'}: it is not a directory "
                                            "(LanceDB keeps a directory of tables)"),
        ([f"lancedb:{tmp_path / 'x.lance'}", "--index", "hnsw"],
         "--index: pgvector options; lancedb takes none of them"),
    ]:
        assert cli.main(["export", str(tmp_path / "t"), *args]) == 2
        assert capsys.readouterr().err == f"pplx-codec export: {want}\n"
    assert cli.main(["export", str(tmp_path / "t"), f"lancedb:{tmp_path / 'x.lance'}", "--replace", "--quiet"]) == 0
    assert counts(tmp_path / "x.lance") == (3, 3)
