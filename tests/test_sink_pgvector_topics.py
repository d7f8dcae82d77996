"""The issue's proof from end to end, as a user runs it: ``pplx-codec embed
pydoc-topics``, ``pplx-codec export topics postgresql://...``, then the
README's two-stage SQL (exact: no index, as many candidates as ``search``
rescores, the query's int8 row and code from our client) gives the same
top-10 as ``pplx-codec search topics "read a file line by line"``."""

from __future__ import annotations

import json

import psycopg
import pytest

import pplx_codec as pc
from pplx_codec import cli, store
from pplx_codec.cli import EMBEDDED_BACKEND
from pplx_codec.server import running
from pplx_codec.sinks.pgvector import two_stage_search

QUERY = "read a file line by line"
K, RESCORE = 10, 4  # pplx-codec search's defaults: k * rescore binary candidates


@pytest.fixture(scope="module")
def topics(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    for var in ("PERPLEXITY_API_KEY", "PPLX_API_KEY", "PERPLEXITY_BASE_URL"):
        mp.delenv(var, raising=False)  # the CLI's embedded default, as the README's first line runs
    out = str(tmp_path_factory.mktemp("topics") / "topics")
    try:
        assert cli.main(["embed", "pydoc-topics", "--out", out, "--quiet"]) == 0
        yield out
    finally:
        mp.undo()


def test_export_then_the_readme_sql_gives_search_s_top_10(topics, postgres, pg_table, capsys):
    assert cli.main(["export", topics, postgres.dsn, "--table", pg_table]) == 0
    err = capsys.readouterr().err
    s = store.load(topics)
    assert err.startswith(f"pplx-codec export: {s.count:,} rows (1024 dims, id, text, int8, binary) into pgvector "
                          f"table {pg_table} at ")

    assert cli.main(["search", topics, QUERY, "-k", str(K), "--json"]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [h["rank"] for h in hits] == list(range(1, K + 1))

    # the query as our client gets it, from the same reference server backend the CLI embeds with
    with running(api_keys=["k"], backend=EMBEDDED_BACKEND) as url, pc.Client(api_key="k", base_url=url) as c:
        q = c.embed([QUERY], model=s.model, dimensions=s.dimensions).vectors[0]
        code = c.embed([QUERY], model=s.model, dimensions=s.dimensions, encoding_format="base64_binary").vectors[0]
    with psycopg.connect(postgres.dsn) as conn:
        for sql_code in (code, None):  # the API's LSB-first code (converted), or binary_quantize in SQL
            got = two_stage_search(conn, q, sql_code, table=pg_table, k=K, candidates=K * RESCORE,
                                   quantize_in_sql=sql_code is None)
            assert [i for i, _, _ in got] == [h["row"] for h in hits]
            assert [t for _, t, _ in got] == [h["text"] for h in hits]
            assert [sc for *_, sc in got] == pytest.approx([h["score"] for h in hits], abs=1e-6)
