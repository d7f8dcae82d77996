"""The CLI's main job end to end: embed (embedded server and a real HTTP
server with faults), interrupt, resume, search; plus the corpus readers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import pplx_codec as pc
from pplx_codec import cli, store
from pplx_codec.corpus import read_texts
from pplx_codec.server import running

TEXTS = [f"paragraph {i} about {w} and {v}" for i, (w, v) in
         enumerate((w, v) for w in ("files", "loops", "classes", "numbers", "strings", "modules", "errors")
                   for v in ("reading", "writing", "sorting", "parsing", "testing", "timing"))] * 3
TEXTS = [f"{t} #{i}" for i, t in enumerate(TEXTS)]  # 126 distinct texts


def _no_key(monkeypatch):
    for var in ("PERPLEXITY_API_KEY", "PPLX_API_KEY", "PERPLEXITY_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


def _reference(texts, url, key, **kw):
    with pc.Client(api_key=key, base_url=url) as c:
        return c.embed(texts, **kw).vectors


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(TEXTS) + "\n\n", encoding="utf-8")
    return path


def test_embed_and_search_with_the_embedded_server(tmp_path, corpus, monkeypatch, capsys):
    _no_key(monkeypatch)
    out = tmp_path / "store"
    assert cli.main(["embed", str(corpus), "--out", str(out), "--quiet", "--chunk", "50"]) == 0
    captured = capsys.readouterr()
    assert "embedded reference server" in captured.err and captured.err.count("\n") == 1
    assert f"embedded {len(TEXTS)} texts" in captured.out
    s = store.load(out)
    assert s.count == len(TEXTS) and s.encodings == ("int8", "binary") and s.bitorder == "little"
    assert s.meta["source_sha256"] == read_texts(str(corpus)).sha256 and s.meta["usage"]["requests"] == 3
    assert list(s.texts) == TEXTS
    # the same vectors a direct client call gets from the same (deterministic) backend
    with running(api_keys=["k"]) as url:
        want = _reference(TEXTS, url, "k")
    np.testing.assert_array_equal(s.int8, want)
    np.testing.assert_array_equal(s.binary, pc.pack_bits(want))

    assert cli.main(["search", str(out), TEXTS[40], "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "binary top-12 + int8 cosine rescoring" in lines[0]
    assert len(lines) == 4 and lines[1].split()[:3] == ["1", "1.0000", "#40"], lines  # a text finds itself


def test_embed_is_resumable_after_a_failure(tmp_path, corpus, monkeypatch, capsys):
    _no_key(monkeypatch)
    out = tmp_path / "store"
    # every request fails with a 500, and no retries: the first chunk fails, nothing is committed
    with running(api_keys=["k"], faults={"500": 1.0}) as url:
        code = cli.main(["embed", str(corpus), "--out", str(out), "--quiet", "--chunk", "40", "--base-url", url,
                         "--api-key", "k", "--max-retries", "0"])
    assert code == 1 and "run the same command again to resume" in capsys.readouterr().err
    assert not out.exists()
    # half the requests fail: some chunks are done, the store is not there yet
    with running(api_keys=["k"], faults={"rates": {"500": 0.5}, "seed": 3}) as url:
        args = ["embed", str(corpus), "--out", str(out), "--quiet", "--chunk", "20", "--base-url", url,
                "--api-key", "k", "--max-retries", "0", "--max-concurrency", "1"]
        first = cli.main(args)
        writer_done = None
        if first == 1:
            w = store.Writer.open(out)
            writer_done = int(w.done.sum())
            w.close()
            assert 0 < writer_done < len(TEXTS)
        # rerun until complete: each run only embeds what is missing
        for _ in range(20):
            if cli.main(args) == 0:
                break
        else:
            pytest.fail("the job never completed")
        want = _reference(TEXTS, url, "k")
    report = capsys.readouterr().out.strip().splitlines()[-1]
    if writer_done is not None:
        assert "already done" in report
    s = store.load(out)
    np.testing.assert_array_equal(s.int8, want)
    assert s.meta["resumed"] is (writer_done is not None or "already done" in report)


def test_embed_binary_only_big_endian_and_dimensions(tmp_path, corpus, monkeypatch):
    _no_key(monkeypatch)
    out = tmp_path / "codes"
    assert cli.main(["embed", str(corpus), "--out", str(out), "--quiet", "--encoding", "binary",
                     "--bitorder", "big", "--dimensions", "256", "--model", "pplx-embed-v1-4b"]) == 0
    s = store.load(out)
    assert s.int8 is None and s.binary.shape == (len(TEXTS), 32) and s.bitorder == "big"
    with running(api_keys=["k"]) as url:
        want = _reference(TEXTS, url, "k", model="pplx-embed-v1-4b", dimensions=256,
                          encoding_format="base64_binary", bitorder="big")
    np.testing.assert_array_equal(s.binary, want)


def test_jsonl_and_bad_inputs(tmp_path, monkeypatch, capsys):
    _no_key(monkeypatch)
    src = tmp_path / "docs.jsonl"
    src.write_text("\n".join(json.dumps({"body": t, "id": i}) for i, t in enumerate(TEXTS[:10])) + "\n")
    assert read_texts(str(src), field="body").texts == TEXTS[:10]
    assert cli.main(["embed", str(src), "--out", str(tmp_path / "s"), "--quiet"]) == 2
    assert "no field 'text'" in capsys.readouterr().err
    assert cli.main(["embed", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "s")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["embed", str(src), "--field", "body", "--out", str(tmp_path / "s"), "--encoding", "f32"]) == 2
    assert "--encoding takes" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": 3}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: field 'text' is int"):
        read_texts(str(bad))


def test_builtin_corpus_is_real_prose():
    src = read_texts("pydoc-topics")
    assert len(src.texts) > 1000 and len(set(src.texts)) == len(src.texts)
    assert all(len(t) >= 40 and "\n" not in t and not t.endswith("*****") for t in src.texts)  # no headings
    assert any("file object" in t for t in src.texts)
    assert read_texts("pydoc-topics").sha256 == src.sha256


def test_console_script_help_and_errors():
    r = subprocess.run([sys.executable, "-m", "pplx_codec", "embed", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "pydoc" in r.stdout and "--encoding" in r.stdout
    r = subprocess.run([sys.executable, "-m", "pplx_codec", "search"], capture_output=True, text=True)
    assert r.returncode == 2 and "required" in r.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PERPLEXITY_API_KEY", "PPLX_API_KEY")}
    r = subprocess.run([sys.executable, "-m", "pplx_codec", "search", "/nonexistent/store", "q"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "pplx-codec search:" in r.stderr
