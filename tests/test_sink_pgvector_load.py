"""Loads into pgvector (a real PostgreSQL, tests/pg_support.py): idempotent
blocks, a load killed with SIGKILL and re-run, a table that is not ours,
streams, texts PostgreSQL cannot hold, and the CLI's one-line errors (bad
DSN, wrong password, unreachable server) with the password never shown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import pplx_codec as pc
from helpers import raises_exactly
from pg_support import PASSWORD, PASSWORD_ROLE, free_port
from pplx_codec import cli, sinks, store
from pplx_codec.sinks import SinkError, TableMismatch

# the child imports the package under test, wherever this process found it (the source tree, or
# an installed wheel: CI runs the suite against both, and src/ holds no compiled modules there)
UNDER_TEST = str(Path(pc.__file__).resolve().parents[1])


def rows(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(-128, 128, (max(1, n // 4), d), dtype=np.int8)
    return np.ascontiguousarray(base[rng.integers(0, base.shape[0], n)]) if n else np.zeros((0, d), np.int8)


def save(tmp_path, n: int, d: int = 16, name: str = "s", model: str = "m", seed: int = 0, texts=None):
    texts = texts if texts is not None else [f"t{i} «{seed}»\n'q\"" for i in range(n)]
    return store.save(tmp_path / name, int8=rows(n, d, seed), meta={"model": model}, texts=texts)


def digest(pg, table: str) -> tuple:
    """(count, distinct ids, md5 of every row in id order): a table's contents in one value."""
    return pg.sql(f"SELECT count(*), count(DISTINCT id), md5(coalesce(string_agg(id || ':' || text || ':' || "
                  f"coalesce(embedding::text, '') || ':' || coalesce(code::text, ''), '|' ORDER BY id), '')) "
                  f"FROM {table}")[0]


def clean_digest(pg, stored, name: str = "reference") -> tuple:
    """The digest of the store loaded into a fresh table."""
    sinks.export(stored, pg.dsn, table=name, replace=True)
    return digest(pg, name)


def test_rows_and_texts_as_loaded(postgres, pg_table, tmp_path):
    texts = ["", "é日本🙂", "a\nb\r\tc", "quote ' \" \\ ,", "x" * 200_000, "\x01\x7f"]
    stored = save(tmp_path, len(texts), d=8, texts=texts)
    sinks.export(stored, postgres.dsn, table=pg_table, rows=4)
    got = postgres.sql(f"SELECT id, text, embedding::text, code::text FROM {pg_table} ORDER BY id")
    x = np.asarray(stored.int8)
    assert [g[0] for g in got] == list(range(len(texts))) and [g[1] for g in got] == texts
    assert [g[2] for g in got] == ["[" + ",".join(map(str, v)) + "]" for v in x.tolist()]
    assert [g[3] for g in got] == ["".join("1" if v > 0 else "0" for v in r) for r in x]


@pytest.mark.parametrize("n", [0, 1, 2, 63, 64, 65])
def test_block_boundaries_and_idempotency(postgres, pg_table, tmp_path, n):
    stored = save(tmp_path, n)
    want = clean_digest(postgres, stored, f"ref_{n}")
    for _ in range(2):  # twice: the same rows once
        assert sinks.export(stored, postgres.dsn, table=pg_table, rows=64) == n
        assert digest(postgres, pg_table) == want
        assert want[:2] == (n, n)


def test_bigger_then_smaller_store(postgres, pg_table, tmp_path):
    sinks.export(save(tmp_path, 300, name="big", seed=1), postgres.dsn, table=pg_table, rows=50)
    small = save(tmp_path, 70, name="small", seed=2)
    sinks.export(small, postgres.dsn, table=pg_table, rows=50)
    assert digest(postgres, pg_table) == clean_digest(postgres, small)


def test_two_streams_give_the_same_table(postgres, pg_table, tmp_path):
    stored = save(tmp_path, 1001, d=64)
    with sinks.open_sink(postgres.dsn, table=pg_table, streams=2) as sink:
        assert sink.write_store(stored, 100) == 1001
        assert sink.rows_written == 1001
    assert digest(postgres, pg_table) == clean_digest(postgres, stored)
    sinks.export(stored, postgres.dsn, table=pg_table, streams=3, rows=1000)
    assert digest(postgres, pg_table) == clean_digest(postgres, stored)


def test_matryoshka_130_has_no_bit_column(postgres, pg_table, tmp_path):
    sinks.export(save(tmp_path, 5, d=130), postgres.dsn, table=pg_table, vector_type="vector")
    cols = postgres.sql("SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns "
                        "JOIN pg_attribute ON attrelid = %s::regclass AND attname = column_name "
                        "WHERE table_name = %s ORDER BY ordinal_position", [pg_table, pg_table])
    assert cols == [("id", "bigint"), ("text", "text"), ("embedding", "vector(130)")]


def test_storage_plain_only_where_a_row_fits_a_page(postgres, pg_table, tmp_path):
    def storage(vector_type, d):
        sinks.export(save(tmp_path, 2, d=d, name=f"{vector_type}{d}"), postgres.dsn, table=pg_table,
                     vector_type=vector_type, replace=True)
        return postgres.sql(f"SELECT attstorage FROM pg_attribute WHERE attrelid = '{pg_table}'::regclass "
                            f"AND attname = 'embedding'")[0][0]

    assert storage("halfvec", 1024) == "p"
    assert storage("halfvec", 2560) == "p"
    assert storage("vector", 1024) == "p"
    assert storage("vector", 2560) == "e"  # 10 kB: it stays pgvector's default (external), toastable


@pytest.mark.parametrize(("text", "why"), [("nul \0 here", "a NUL character at byte 4"),
                                           ("lone \udc80", "a lone surrogate '\\udc80' at character 5")])
def test_texts_postgresql_cannot_hold(postgres, pg_table, tmp_path, text, why):
    x = rows(70, 16)
    texts = [f"ok {i}" for i in range(70)]
    texts[66] = text
    with sinks.open_sink(postgres.dsn, table=pg_table) as sink:
        sink.add(int8=x[:64], texts=texts[:64], model="m")
        with raises_exactly(ValueError, f"row 66: PostgreSQL text cannot hold this text ({why})"):
            sink.add(int8=x[64:], texts=texts[64:], model="m")
    # nothing of the refused block was sent: the first block only
    assert postgres.sql(f"SELECT count(*), max(id) FROM {pg_table}") == [(64, 63)]


def test_a_table_that_is_not_ours(postgres, pg_table, tmp_path):
    postgres.sql(f"CREATE TABLE {pg_table} (id int, note text)")
    postgres.sql(f"INSERT INTO {pg_table} VALUES (1, 'keep me')")
    stored = save(tmp_path, 3)
    foreign = (f"table {pg_table} exists with other rows: it was not made by pplx-codec (its comment records no "
               "layout); pass replace=True (--replace) to overwrite it")
    with raises_exactly(TableMismatch, foreign):
        sinks.export(stored, postgres.dsn, table=pg_table)
    assert postgres.sql(f"SELECT * FROM {pg_table}") == [(1, "keep me")]
    postgres.sql(f"COMMENT ON TABLE {pg_table} IS 'someone else''s'")
    with pytest.raises(TableMismatch, match="not made by pplx-codec"):
        sinks.export(stored, postgres.dsn, table=pg_table)
    assert sinks.export(stored, postgres.dsn, table=pg_table, replace=True) == 3
    assert digest(postgres, pg_table) == clean_digest(postgres, stored)


def test_mismatch_is_refused_with_the_exact_message(postgres, pg_table, tmp_path, capsys):
    sinks.export(save(tmp_path, 3, d=16, model="a"), postgres.dsn, table=pg_table)
    cases = [
        (dict(d=24), {}, "dimensions 16 (the rows: 24)"),
        (dict(model="b"), {}, "model 'a' (the rows: 'b')"),
        ({}, dict(vector_type="vector"), "vector_type 'halfvec' (the rows: 'vector')"),
    ]
    for i, (store_kw, sink_kw, why) in enumerate(cases):
        stored = save(tmp_path, 4, name=f"other{i}", **{"model": "a", **store_kw})
        with raises_exactly(TableMismatch, f"table {pg_table} exists with other rows: {why}; "
                                           "pass replace=True (--replace) to overwrite it"):
            sinks.export(stored, postgres.dsn, table=pg_table, **sink_kw)
        argv = ["export", str(stored.path), postgres.dsn, "--table", pg_table]
        argv += ["--vector-type", sink_kw["vector_type"]] if sink_kw else []
        assert cli.main(argv) == 2
        assert capsys.readouterr().err == (f"pplx-codec export: table {pg_table} exists with other rows: {why}; "
                                           "pass replace=True (--replace) to overwrite it\n")
        assert postgres.sql(f"SELECT count(*) FROM {pg_table}") == [(3,)]
    assert cli.main(["export", str(stored.path), postgres.dsn, "--table", pg_table, "--replace",
                     "--vector-type", "vector"]) == 0
    assert postgres.sql(f"SELECT count(*), obj_description('{pg_table}'::regclass)::json->>'vector_type' "
                        f"FROM {pg_table}") == [(4, "vector")]


def export_error(capsys, tmp_path, dsn: str) -> str:
    stored = save(tmp_path, 2)
    started = time.monotonic()
    assert cli.main(["export", str(stored.path), dsn]) == 2
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_wrong_password_is_one_line_without_it(postgres, tmp_path, capsys):
    wrong = "Wr0ng-Pa55word"
    err = export_error(capsys, tmp_path, postgres.tcp_dsn.format(password=wrong))
    assert wrong not in err and PASSWORD not in err
    assert err.startswith(f"pplx-codec export: cannot connect to PostgreSQL at postgresql://pplx_pw:***@127.0.0.1:"
                          f"{postgres.port}/postgres?connect_timeout=5: connection failed: ")
    assert 'password authentication failed for user "pplx_pw"' in err
    # and the right one works over the same path
    assert cli.main(["export", str(tmp_path / "s"), postgres.tcp_dsn.format(password=PASSWORD), "--quiet"]) == 0


def test_unreachable_server_and_bad_dsn(tmp_path, capsys):
    port = free_port()  # nothing listens there
    err = export_error(capsys, tmp_path, f"postgresql://u:hunter2@127.0.0.1:{port}/db")
    assert "hunter2" not in err
    assert err.startswith(f"pplx-codec export: cannot connect to PostgreSQL at "
                          f"postgresql://u:***@127.0.0.1:{port}/db: ")
    assert "Connection refused" in err
    err = export_error(capsys, tmp_path, "postgresql://u:hunter2@127.0.0.1:99999/db")
    assert "hunter2" not in err and "invalid" in err
    err = export_error(capsys, tmp_path, "postgresql://u:hunter2@/db?nonsense=1")
    assert err == ('pplx-codec export: cannot connect to PostgreSQL at postgresql://u:***@/db?nonsense=1: '
                   'invalid URI query parameter: "nonsense"\n')
    with raises_exactly(SinkError, "cannot connect to PostgreSQL at postgresql://u:***@/db?nonsense=1: "
                                   'invalid URI query parameter: "nonsense"'):
        sinks.export(store.load(tmp_path / "s"), "postgresql://u:hunter2@/db?nonsense=1")


def test_shown_masks_the_password(postgres):
    sink = sinks.open_sink("postgresql://me:pa55@db.example:5432/x?sslmode=require")
    assert sink.shown == "postgresql://me:***@db.example:5432/x?sslmode=require"
    for bad, message in [(dict(vector_type="bit"), "vector_type must be 'halfvec' or 'vector', got 'bit'"),
                         (dict(index="ivfflat"), "index must be None or 'hnsw', got 'ivfflat'"),
                         (dict(streams=0), "streams must be positive, got 0"),
                         (dict(streams=65), "streams must be at most 64, got 65")]:
        with raises_exactly(ValueError, message):
            sinks.open_sink(postgres.dsn, **bad)


def test_killed_load_rerun_ends_with_every_row_once(postgres, pg_table, tmp_path):
    n = 50_000
    stored = save(tmp_path, n, d=64)
    argv = [sys.executable, "-m", "pplx_codec", "export", str(stored.path), postgres.dsn, "--table", pg_table,
            "--rows", "500", "--quiet"]
    proc = subprocess.Popen(argv, env={**os.environ, "PYTHONPATH": UNDER_TEST}, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if postgres.sql(f"SELECT to_regclass('{pg_table}') IS NOT NULL")[0][0] and \
                    postgres.sql(f"SELECT count(*) FROM {pg_table}")[0][0] >= 2000:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the load ended before it was killed: {proc.stderr.read()!r}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    partial, distinct = postgres.sql(f"SELECT count(*), count(DISTINCT id) FROM {pg_table}")[0]
    assert partial == distinct and partial % 500 == 0 and 2000 <= partial < n  # whole blocks only
    assert cli.main(["export", str(stored.path), postgres.dsn, "--table", pg_table, "--quiet"]) == 0
    assert digest(postgres, pg_table)[:2] == (n, n)
    assert digest(postgres, pg_table) == clean_digest(postgres, stored)


def test_no_pgvector_is_a_clear_error(postgres, tmp_path):
    """A database where the extension is absent and this role may not create it."""
    postgres.sql("DROP DATABASE IF EXISTS noext")
    postgres.sql("CREATE DATABASE noext")
    postgres.sql(f"REVOKE CREATE ON DATABASE noext FROM PUBLIC, {PASSWORD_ROLE}")
    dsn = postgres.tcp_dsn.format(password=PASSWORD).replace("/postgres?", "/noext?")
    with pytest.raises(SinkError) as e:
        sinks.export(save(tmp_path, 2), dsn)
    assert str(e.value).startswith("this PostgreSQL server cannot enable pgvector (CREATE EXTENSION vector): install "
                                   "the pgvector extension on it (postgresql://pplx_pw:***@127.0.0.1:")
    assert "permission denied to create extension" in str(e.value) and PASSWORD not in str(e.value)


def test_hnsw_dimension_limits_refused_before_the_table(postgres, pg_table, tmp_path):
    with raises_exactly(ValueError, "pgvector's HNSW index takes vector of at most 2000 dimensions, these rows have "
                                    "2560"):
        sinks.export(save(tmp_path, 2, d=2560), postgres.dsn, table=pg_table, vector_type="vector", index="hnsw")
    assert postgres.sql(f"SELECT to_regclass('{pg_table}')") == [(None,)]


def test_a_latin1_database_gets_the_texts_right(postgres, tmp_path):
    """The payload is UTF-8 and says so (client_encoding): the server converts, never misreads."""
    postgres.sql("DROP DATABASE IF EXISTS latin")
    postgres.sql("CREATE DATABASE latin ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    dsn = postgres.dsn.replace("/postgres?", "/latin?")
    sinks.export(save(tmp_path, 2, texts=["café", "naïve ÿ"]), dsn)
    import psycopg

    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT text, octet_length(text) FROM embeddings ORDER BY id").fetchall() == \
            [("café", 4), ("naïve ÿ", 7)]  # one byte a character: stored as LATIN1
    with pytest.raises(SinkError) as e:
        sinks.export(save(tmp_path, 2, name="cjk", texts=["fine", "日本"]), dsn)
    assert str(e.value).startswith("the load into embeddings failed at ids 0..1 (postgresql://postgres@/latin?")
    assert 'character with byte sequence 0xe6 0x97 0xa5 in encoding "UTF8" has no equivalent in encoding ' \
           '"LATIN1"' in str(e.value) and "\n" not in str(e.value)
