"""``pplx-codec search --queries FILE`` as pipelines use it: every query
embedded by one ``Client.embed`` call and searched as one query matrix, the
same hits as searching each query alone, ``--exact`` checked against a numpy
brute force, ``--json`` lines for other tools; the queries file's formats and
its errors (one line on stderr, exit code 2, before any server starts); and
``pplx-codec dedup`` writing the groups ``pplx_codec.dedup`` finds."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

import pplx_codec as pc
from pplx_codec import cli, index, store
from pplx_codec.corpus import read_queries
from pplx_codec.server import running

TEXTS = [f"note {i}: {w} {v} with {u}" for i, (w, v, u) in enumerate(
    (w, v, u) for w in ("files", "loops", "classes", "errors") for v in ("reading", "writing", "sorting")
    for u in ("lists", "dicts", "sets"))]
QUERIES = [TEXTS[5], "sorting sets of errors", TEXTS[30], "writing dicts"]
MODEL = "pplx-embed-v1-0.6b"


@pytest.fixture(scope="module")
def embedded():
    """The texts' and queries' int8 vectors from the reference server (the
    same deterministic backend the CLI's embedded server uses)."""
    with running(api_keys=["k"]) as url, pc.Client(api_key="k", base_url=url) as c:
        return c.embed(TEXTS, model=MODEL).vectors, c.embed(QUERIES, model=MODEL).vectors


@pytest.fixture()
def stores(tmp_path, embedded, monkeypatch):
    for var in ("PERPLEXITY_API_KEY", "PPLX_API_KEY", "PERPLEXITY_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    v, _ = embedded
    meta = {"model": MODEL}
    both = store.save(tmp_path / "both", int8=v, binary=pc.pack_bits(v), meta=meta, texts=TEXTS).path
    codes = store.save(tmp_path / "codes", binary=pc.pack_bits(v), meta=meta).path
    return str(both), str(codes)


def write(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return str(path)


def json_hits(capsys) -> list[dict]:
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines()]


def brute_force(q: np.ndarray, v: np.ndarray, k: int):
    """The k best rows by the package's cosine, ties to the lower row, in numpy."""
    d = q.astype(np.int64) @ v.astype(np.int64).T
    den = pc.norms(q).astype(np.float64)[:, None] * pc.norms(v).astype(np.float64)[None, :]
    s = np.where(den > 0, d / np.where(den > 0, den, 1), 0).astype(np.float32)
    order = np.lexsort((np.broadcast_to(np.arange(v.shape[0]), s.shape), -s.astype(np.float64)), axis=1)[:, :k]
    return np.take_along_axis(s, order, axis=1), order


def test_many_queries_one_embed_call_one_search(tmp_path, stores, embedded, monkeypatch, capsys):
    both, _ = stores
    calls, searches = [], []
    embed = pc.Client.embed
    search = index.Index.search
    monkeypatch.setattr(pc.Client, "embed", lambda self, texts, **kw: calls.append(list(texts)) or
                        embed(self, texts, **kw))
    monkeypatch.setattr(index.Index, "search", lambda self, q, k, **kw: searches.append(q.shape) or
                        search(self, q, k, **kw))
    queries = write(tmp_path, "q.txt", "\n".join(QUERIES[:2]) + "\n\n  \n" + "\r\n".join(QUERIES[2:]) + "\r\n")
    assert cli.main(["search", both, "--queries", queries, "-k", "3", "--json"]) == 0
    assert calls == [QUERIES] and searches == [(len(QUERIES), embedded[0].shape[1])]
    hits = json_hits(capsys)
    assert len(hits) == 3 * len(QUERIES) and all(set(h) == {"query", "rank", "row", "score", "text"} for h in hits)
    assert [h["query"] for h in hits] == [q for q in QUERIES for _ in range(3)]
    assert [h["rank"] for h in hits] == [1, 2, 3] * len(QUERIES)
    assert all(h["text"] == TEXTS[h["row"]] for h in hits)
    assert hits[0]["row"] == 5 and hits[6]["row"] == 30 and math.isclose(hits[0]["score"], 1, abs_tol=1e-6)
    # the same hits, in the same order, as each query searched alone (today's one-query command)
    for n, query in enumerate(QUERIES):
        assert cli.main(["search", both, query, "-k", "3"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert "binary top-12 + int8 cosine rescoring: query embedded in" in lines[0]
        alone = [(int(ln.split()[2][1:]), float(ln.split()[1])) for ln in lines[1:]]
        assert alone == [(h["row"], round(h["score"], 4)) for h in hits[3 * n: 3 * n + 3]]


def test_exact_is_brute_force_and_the_text_output(tmp_path, stores, embedded, capsys):
    both, _ = stores
    v, q = embedded
    queries = write(tmp_path, "q.jsonl", "\n".join(json.dumps(x) for x in (
        QUERIES[0], {"query": QUERIES[1], "text": "not this"}, {"text": QUERIES[2], "id": 7}, QUERIES[3])))
    assert cli.main(["search", both, "--queries", queries, "--exact", "-k", "4", "--json"]) == 0
    hits = json_hits(capsys)
    s, order = brute_force(q, v, 4)
    assert [h["row"] for h in hits] == order.ravel().tolist()
    assert [h["score"] for h in hits] == [float(str(x)) for x in s.ravel()]   # float32, shortest repr
    assert cli.main(["search", both, "--queries", queries, "--exact", "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "exact int8 cosine: 4 queries embedded in" in lines[0]
    assert lines[1] == f"query 1: {QUERIES[0]}" and lines[4] == f"query 2: {QUERIES[1]}"
    assert [int(ln.split()[2][1:]) for ln in lines[2:4]] == order[0, :2].tolist()


def test_formats_stdin_and_a_codes_only_store(tmp_path, stores, embedded, monkeypatch, capsys):
    both, codes = stores
    # a .txt name read as JSONL, and a .jsonl name read as lines (the JSON text is then the query)
    as_jsonl = write(tmp_path, "q.txt", '"writing dicts"\n')
    assert cli.main(["search", both, "--queries", as_jsonl, "--queries-format", "jsonl", "--json", "-k", "1"]) == 0
    assert json_hits(capsys)[0]["query"] == "writing dicts"
    as_lines = write(tmp_path, "q.jsonl", '{"query": "x"}\n')
    assert cli.main(["search", both, "--queries", as_lines, "--queries-format", "lines", "--json", "-k", "1"]) == 0
    assert json_hits(capsys)[0]["query"] == '{"query": "x"}'
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(("\n".join(QUERIES) + "\n").encode())))
    assert cli.main(["search", codes, "--queries", "-", "--json", "-k", "2"]) == 0
    hits = json_hits(capsys)
    # codes only: exact Hamming, distances as integers, no texts
    want = pc.search_binary(pc.pack_bits(embedded[1]), pc.pack_bits(embedded[0]), 2)
    assert [h["score"] for h in hits] == want[0].ravel().tolist() and all(type(h["score"]) is int for h in hits)
    assert [h["row"] for h in hits] == want[1].ravel().tolist() and all(h["text"] is None for h in hits)


def test_read_queries_lines_jsonl_bom_and_line_numbers(tmp_path):
    p = write(tmp_path, "q.txt", b"\xef\xbb\xbffirst\r\n\n  padded  \nlast")
    assert read_queries(p) == ["first", "  padded  ", "last"]
    p = write(tmp_path, "q.ndjson", b'\n"a"\n{"text": "b"}\n')
    assert read_queries(p) == ["a", "b"]
    with pytest.raises(ValueError, match="queries format must be lines or jsonl, got 'csv'"):
        read_queries(p, "csv")


def refused(capsys, argv) -> str:
    """Exit code 2 and exactly one line on stderr (so no embedded server was started)."""
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.out == "", captured
    return captured.err.strip()


@pytest.mark.parametrize("name,content,message", [
    ("empty.txt", b"", "{p}: no queries found"),
    ("blank.txt", b"\n \n\r\n", "{p}: no queries found"),
    ("bad.txt", b"fine\n\ncaf\xe9 au lait\n",
     "{p}:3: not UTF-8 text (invalid continuation byte at byte 4 of the line)"),
    ("bad.jsonl", b'"fine"\n\n{"query": "x"\n', "{p}:3: invalid JSON: Expecting ',' delimiter: line 1 column 14 "
                                                "(char 13)"),
    ("num.jsonl", b'"fine"\n42\n', "{p}:2: line is int: expected a JSON string or an object with a string "
                                   '"query" (or "text") field'),
    ("obj.jsonl", b'{"query": ["x"]}\n', '{p}:1: field "query" is list: expected a JSON string or an object with '
                                         'a string "query" (or "text") field'),
    ("none.jsonl", b'{"q": "x"}\n', '{p}:1: an object with no "query" or "text" field'),
    ("void.jsonl", b'"  "\n', "{p}:1: empty query"),
    ("lone.jsonl", b'"\\ud800"\n', "{p}:1: the query is not valid Unicode text (a lone surrogate)"),
])
def test_bad_query_files(tmp_path, stores, capsys, name, content, message):
    both, _ = stores
    p = write(tmp_path, name, content)
    assert refused(capsys, ["search", both, "--queries", p]) == "pplx-codec search: " + message.format(p=p)


def test_bad_search_arguments(tmp_path, stores, capsys):
    both, codes = stores
    q = write(tmp_path, "q.txt", "one\n")
    missing = tmp_path / "missing.txt"
    assert refused(capsys, ["search", both, "--queries", str(missing)]) == \
        f"pplx-codec search: cannot read --queries {missing}: No such file or directory"
    assert refused(capsys, ["search", both, "q", "--queries", q]) == \
        "pplx-codec search: give one QUERY or --queries FILE, not both"
    assert refused(capsys, ["search", both]) == "pplx-codec search: give one QUERY or --queries FILE"
    assert refused(capsys, ["search", codes, "--queries", q, "--exact"]) == \
        f"pplx-codec search: --exact needs the store's int8 vectors ({codes} holds binary)"
    with pytest.raises(SystemExit) as exit:
        cli.main(["search", both, "--queries", q, "-k", "0"])
    assert exit.value.code == 2 and "argument -k: must be >= 1, got 0" in capsys.readouterr().err


# --- pplx-codec dedup ---

def test_dedup_command_writes_the_groups(tmp_path, capsys):
    rng = np.random.default_rng(4)
    v = np.clip(rng.integers(-128, 128, (5, 256))[rng.integers(0, 5, 40)] + rng.integers(-30, 31, (40, 256)),
                -128, 127).astype(np.int8)
    v[7] = 0
    texts = [f"row {i}" for i in range(40)]
    with_texts = str(store.save(tmp_path / "t", int8=v, binary=pc.pack_bits(v), texts=texts).path)
    bare = str(store.save(tmp_path / "b", int8=v).path)
    want = pc.dedup(v, 0.9)
    assert len(want) >= 3
    assert cli.main(["dedup", with_texts, "--threshold", "0.9", "--threads", "1"]) == 0
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert lines == [{"group": g, "rows": rows, "texts": [texts[r] for r in rows]} for g, rows in enumerate(want)]
    assert captured.err.startswith(f"pplx-codec dedup: 40 rows (256 dims): {len(want)} groups of "
                                   f"{sum(map(len, want))} rows at cosine >= 0.9, exact, in ")
    assert cli.main(["dedup", bare, "--threshold", "0.9", "--candidates", "39"]) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == \
        [{"group": g, "rows": rows} for g, rows in enumerate(want)]


def test_dedup_command_refuses_bad_input(tmp_path, capsys):
    v = np.ones((3, 16), np.int8)
    good = str(store.save(tmp_path / "s", int8=v).path)
    codes = str(store.save(tmp_path / "c", binary=pc.pack_bits(v)).path)
    for threshold in ("nan", "1.5", "-2"):
        assert refused(capsys, ["dedup", good, "--threshold", threshold]) == \
            f"pplx-codec dedup: threshold must be a cosine in -1..1, got {float(threshold)}"
    assert refused(capsys, ["dedup", str(tmp_path / "none")]) == f"pplx-codec dedup: no store at {tmp_path / 'none'}"
    assert refused(capsys, ["dedup", codes]).startswith(
        f"pplx-codec dedup: dedup needs the store's int8 vectors for the exact cosine ({codes} holds binary)")
    with pytest.raises(SystemExit) as exit:
        cli.main(["dedup", good, "--candidates", "0"])
    assert exit.value.code == 2 and "argument --candidates: must be >= 1, got 0" in capsys.readouterr().err


def test_the_candidates_named_are_the_ones_rescored(tmp_path, embedded, monkeypatch, capsys):
    """A store of 5 rows: `-k 3` hands rescoring all 5 rows (k * rescore = 12 would be
    padding), and the line says so; `-k 5000` is every row, not the search's padding bound."""
    for var in ("PERPLEXITY_API_KEY", "PPLX_API_KEY", "PERPLEXITY_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    v = embedded[0][:5]
    small = store.save(tmp_path / "small", int8=v, binary=pc.pack_bits(v), meta={"model": MODEL},
                       texts=TEXTS[:5]).path
    for k, rows in ((3, 3), (5000, 5)):
        assert cli.main(["search", str(small), TEXTS[2], "-k", str(k)]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert "binary top-5 + int8 cosine rescoring" in lines[0], lines[0]
        assert len(lines) == 1 + rows and lines[1].split()[2] == "#2", lines
