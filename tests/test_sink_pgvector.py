"""The pgvector sink against a real PostgreSQL 18 + pgvector 0.8.6 (tests/pg_support.py):
what it loads is proved through the database's own functions (``<~>``, ``<=>``,
``binary_quantize``) against pplx_codec's search, and the two-stage query
returns ``Index``'s rescored top-k.  Loads, idempotency and errors:
tests/test_sink_pgvector_load.py."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

import pplx_codec as pc
from helpers import raises_exactly
from pplx_codec import sinks, store
from pplx_codec.bits import pack_bits
from pplx_codec.search import search_binary, search_int8
from pplx_codec.server import running
from pplx_codec.sinks.pgvector import PgvectorSink, two_stage_search, two_stage_sql
from server_support import KEY

TOL = 1e-5  # pgvector's cosine is float arithmetic on exact halves; ours float32 of exact integer dots


def tied_rows(n: int, d: int, seed: int, distinct: int | None = None, zeros: bool = True) -> np.ndarray:
    """``n`` int8 rows drawn from ``distinct`` ones (exact ties in every distance); with
    ``zeros=False`` no component is 0 (so bit = value > 0 is binary_quantize's rule too)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(-128, 128, (distinct or max(1, n // 3), d), dtype=np.int8)
    if not zeros:
        base[base == 0] = 1
    return np.ascontiguousarray(base[rng.integers(0, base.shape[0], n)])


def save(tmp_path, x: np.ndarray, name: str = "s", model: str = "m", texts=None):
    texts = texts if texts is not None else [f"row {i}: é {i % 7}" for i in range(x.shape[0])]
    return store.save(tmp_path / name, int8=x, meta={"model": model}, texts=texts)


def bit_string(q: np.ndarray) -> str:
    """The query's code as pgvector's bit text, written from the definition (dimension i at character i)."""
    return "".join("1" if v > 0 else "0" for v in q)


def vec_text(q: np.ndarray) -> str:
    return "[" + ",".join(str(int(v)) for v in q) + "]"


def same_ranking(ids, scores, want_ids, want_scores, tol: float = TOL) -> None:
    """Equal scores (to ``tol``) position by position, and equal ids wherever the
    score is not within ``tol`` of a neighbour's (a near-tie may order either way)."""
    ids, want_ids = np.asarray(ids), np.asarray(want_ids)
    scores, want_scores = np.asarray(scores, np.float64), np.asarray(want_scores, np.float64)
    assert ids.shape == want_ids.shape
    np.testing.assert_allclose(scores, want_scores, atol=tol, rtol=0)
    gap = np.diff(want_scores, prepend=np.inf, append=-np.inf)
    clear = (np.abs(gap[:-1]) > tol) & (np.abs(gap[1:]) > tol)
    assert (ids[clear] == want_ids[clear]).all(), (ids, want_ids)


@pytest.mark.parametrize(("n", "d", "vector_type"), [(300, 128, "halfvec"), (257, 24, "vector"), (1, 8, "halfvec")])
def test_hamming_and_cosine_equal_ours(postgres, pg_table, tmp_path, n, d, vector_type):
    x = tied_rows(n, d, seed=n + d)
    stored = save(tmp_path, x)
    assert sinks.export(stored, postgres.dsn, table=pg_table, vector_type=vector_type, rows=64) == n
    codes = pack_bits(x, "little")
    k = min(n, 25)
    for q in tied_rows(4, d, seed=99):
        got = postgres.sql(f"SELECT id, code <~> %s::varbit FROM {pg_table} ORDER BY 2, id LIMIT %s",
                           [bit_string(q), k])
        D, I = search_binary(pack_bits(q, "little"), codes, k)
        assert [r[0] for r in got] == I.tolist()
        assert [int(r[1]) for r in got] == D.tolist()
        got = postgres.sql(f"SELECT id, 1 - (embedding <=> %s::{vector_type}) FROM {pg_table} ORDER BY "
                           f"embedding <=> %s::{vector_type}, id LIMIT %s", [vec_text(q), vec_text(q), k])
        S, I = search_int8(q, x, k, metric="cosine")
        same_ranking([r[0] for r in got], [r[1] for r in got], I, S)
    # every row's cosine, not only the top: pgvector's <=> is our cosine
    q = x[0]
    every = postgres.sql(f"SELECT 1 - (embedding <=> %s::{vector_type}) FROM {pg_table} ORDER BY id", [vec_text(q)])
    S, I = search_int8(q, x, n, metric="cosine")
    np.testing.assert_allclose(np.array([r[0] for r in every])[I], S, atol=TOL, rtol=0)


def test_codes_are_binary_quantize_of_the_vectors(postgres, pg_table, tmp_path):
    x = tied_rows(500, 256, seed=1, zeros=False)
    sinks.export(save(tmp_path, x), postgres.dsn, table=pg_table)
    rows = postgres.sql(f"SELECT count(*), count(*) FILTER (WHERE code = binary_quantize(embedding)::bit(256)) "
                        f"FROM {pg_table}")
    assert rows == [(500, 500)]
    # and from a store holding Perplexity's own LSB-first codes (converted, not derived)
    both = store.save(tmp_path / "both", int8=x, binary=pack_bits(x, "little"), bitorder="little",
                      meta={"model": "m"})
    sinks.export(both, postgres.dsn, table=pg_table)
    assert postgres.sql(f"SELECT count(*) FROM {pg_table} WHERE code = binary_quantize(embedding)::bit(256)") \
        == [(500,)]


class RawLittle(PgvectorSink):
    """What a load without the conversion does: Perplexity's LSB-first bytes as they are."""
    bitorder = "little"


def test_raw_lsb_first_bytes_fail_the_check(postgres, pg_table, tmp_path):
    """The check above is not vacuous: without the conversion it fails."""
    x = tied_rows(200, 64, seed=2, zeros=False)
    with RawLittle(postgres.dsn, table=pg_table) as sink:
        sink.write_store(save(tmp_path, x))
    agree, = postgres.sql(f"SELECT count(*) FROM {pg_table} WHERE code = binary_quantize(embedding)::bit(64)")
    assert agree == (0,)
    # ... while the codes still agree with each other: nothing else would have told
    assert postgres.sql(f"SELECT count(*) FROM {pg_table} a JOIN {pg_table} b ON a.id < b.id "
                        f"WHERE (a.code <~> b.code) = 0 AND a.embedding = b.embedding")[0][0] > 0


@pytest.mark.parametrize("vector_type", ["halfvec", "vector"])
@pytest.mark.parametrize("quantize_in_sql", [False, True])
def test_two_stage_query_is_our_rescored_top_k(postgres, pg_table, tmp_path, vector_type,
                                               quantize_in_sql):
    n, d, k, rescore = 600, 128, 10, 4
    x = tied_rows(n, d, seed=3, distinct=150, zeros=False)
    sinks.export(save(tmp_path, x), postgres.dsn, table=pg_table, vector_type=vector_type)
    index = pc.Index(d)
    index.add(x)
    texts = store.load(tmp_path / "s").texts
    with postgres.connect() as conn:
        for q in np.concatenate([tied_rows(5, d, seed=4, zeros=False), x[:2]]):
            S, I = index.search(q, k, rescore=rescore)
            got = two_stage_search(conn, q, None if quantize_in_sql else pack_bits(q, "little"), table=pg_table,
                                   k=k, candidates=k * rescore, vector_type=vector_type,
                                   quantize_in_sql=quantize_in_sql)
            same_ranking([g[0] for g in got], [g[2] for g in got], I, S)
            assert [g[1] for g in got] == [texts[int(i)] for i in [g[0] for g in got]]


def test_two_stage_sql_text():
    assert two_stage_sql("docs", k=10, candidates=40) == (
        "SELECT id, text, 1 - (embedding <=> %(vector)s::halfvec) AS score\n"
        "FROM (\n"
        "    SELECT id, text, embedding FROM docs\n"
        "    ORDER BY code <~> %(code)s::varbit, id\n"
        "    LIMIT 40\n"
        ") AS candidates\n"
        "ORDER BY embedding <=> %(vector)s::halfvec, id\n"
        "LIMIT 10")
    assert "ORDER BY code <~> binary_quantize(%(vector)s::vector), id" in two_stage_sql(
        k=1, candidates=1, vector_type="vector", quantize_in_sql=True)
    for bad, error, message in [(dict(k=0, candidates=1), ValueError, "k must be positive, got 0"),
                                (dict(k=1, candidates=True), TypeError, "candidates must be an integer, got bool"),
                                (dict(k=1, candidates=2**70), ValueError,
                                 f"candidates must be at most {sys.maxsize}, got {2**70}"),
                                (dict(k=1, candidates=1, vector_type="bit"), ValueError,
                                 "vector_type must be 'halfvec' or 'vector', got 'bit'")]:
        with raises_exactly(error, message):
            two_stage_sql(**bad)


def test_add_from_the_client_in_batches(postgres, pg_table):
    """Client.embed results from the reference server, batch by batch, no store on disk."""
    texts = [f"document {i} about {'cats' if i % 3 else 'dogs'} ✓" for i in range(40)]
    with running(api_keys=[KEY], backend="hash") as url, pc.Client(api_key=KEY, base_url=url) as client:
        results = [client.embed(texts[i:i + 15]) for i in range(0, 40, 15)]
    with sinks.open_sink(postgres.dsn, table=pg_table) as sink:
        ids = [sink.add(r, texts[i * 15:(i + 1) * 15]) for i, r in enumerate(results)]
    assert [(r.start, r.stop) for r in ids] == [(0, 15), (15, 30), (30, 40)]
    x = np.concatenate([r.vectors for r in results])
    d = x.shape[1]
    got = postgres.sql(f"SELECT id, text, embedding::text, code = binary_quantize(embedding)::bit({d}) "
                       f"FROM {pg_table} ORDER BY id")
    assert [g[0] for g in got] == list(range(40)) and [g[1] for g in got] == texts
    assert [g[2] for g in got] == [vec_text(v) for v in x]
    assert all(g[3] for g in got)  # int8 results: the codes are derived, bit = value > 0
    assert postgres.sql(f"SELECT obj_description('{pg_table}'::regclass)::json->>'model'")[0][0] == results[0].model


def test_concurrent_add_from_threads(postgres, pg_table):
    x = tied_rows(400, 16, seed=5)
    got_ids: list[range] = []
    with sinks.open_sink(postgres.dsn, table=pg_table) as sink:
        def worker(t: int) -> None:
            for j in range(5):
                rows = slice(t * 100 + j * 20, t * 100 + (j + 1) * 20)
                got_ids.append(sink.add(int8=x[rows], texts=[f"{t}/{j}/{i}" for i in range(20)], model="m"))

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    ids = sorted(i for r in got_ids for i in r)
    assert ids == list(range(400))
    assert postgres.sql(f"SELECT count(*), count(DISTINCT id), min(id), max(id), count(DISTINCT text) "
                        f"FROM {pg_table}") == [(400, 400, 0, 399, 400)]


def test_hnsw_indexes(postgres, pg_table, tmp_path):
    n, d = 400, 64
    x = tied_rows(n, d, seed=6, distinct=n, zeros=False)
    sinks.export(save(tmp_path, x), postgres.dsn, table=pg_table, index="hnsw")
    indexes = dict(postgres.sql("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [pg_table]))
    assert "USING hnsw (embedding halfvec_cosine_ops)" in indexes[f"{pg_table}_embedding_hnsw"]
    assert "USING hnsw (code bit_hamming_ops)" in indexes[f"{pg_table}_code_hnsw"]
    with postgres.connect() as conn:
        conn.execute("SET enable_seqscan = off")
        q = x[7]
        plan = "\n".join(r[0] for r in conn.execute(
            f"EXPLAIN SELECT id FROM {pg_table} ORDER BY embedding <=> %s::halfvec LIMIT 5", [vec_text(q)]))
        assert f"{pg_table}_embedding_hnsw" in plan
        ids = [r[0] for r in conn.execute(
            f"SELECT id FROM {pg_table} ORDER BY embedding <=> %s::halfvec LIMIT 5", [vec_text(q)])]
        assert ids[0] == 7
        plan = "\n".join(r[0] for r in conn.execute(
            f"EXPLAIN SELECT id FROM {pg_table} ORDER BY code <~> %s::varbit LIMIT 5", [bit_string(q)]))
        assert f"{pg_table}_code_hnsw" in plan
        ids = [r[0] for r in conn.execute(
            f"SELECT id FROM {pg_table} ORDER BY code <~> %s::varbit LIMIT 5", [bit_string(q)])]
        assert ids[0] == 7
    # an export again (the indexes exist) keeps them, and the rows
    sinks.export(save(tmp_path, x, name="again"), postgres.dsn, table=pg_table, index="hnsw")
    assert postgres.sql(f"SELECT count(*) FROM {pg_table}") == [(n,)]
