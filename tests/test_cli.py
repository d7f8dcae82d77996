"""The CLI's main job end to end: embed (embedded server and a real HTTP
server with faults), interrupt, resume, search; plus the corpus readers."""

from __future__ import annotations

import json
import os
import re
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


# --- bad input: one line on stderr, exit code 2, naming the user's path ---

def _refused(capsys, argv) -> str:
    """Run the CLI on bad input: exit code 2 and exactly one line on stderr (no traceback,
    and no embedded server started first: that would say so on a line of its own)."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"pplx-codec {argv[0]}: "), err
    return err.strip()


def test_embed_refuses_a_directory_as_input(tmp_path, monkeypatch, capsys):
    _no_key(monkeypatch)
    (tmp_path / "adir").mkdir()
    err = _refused(capsys, ["embed", str(tmp_path / "adir"), "--out", str(tmp_path / "s"), "--quiet"])
    assert err == f"pplx-codec embed: cannot read {tmp_path / 'adir'}: Is a directory"
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("name,content,line", [
    ("texts.txt", b"first text\nsecond text\n\nthe caf\xe9 text\n", 4),
    ("docs.jsonl", b'{"text": "one"}\n{"text": "tw\xc3o"}\n', 2),
    # past the decoder's first chunk: its offsets count from the chunk, not the file
    ("long.txt", b"".join(b"text number %d\n" % i for i in range(20_000)) + b"\xff\n", 20_001),
], ids=["text", "jsonl", "past-the-first-chunk"])
def test_embed_names_the_file_and_line_of_invalid_utf8(tmp_path, monkeypatch, capsys, name, content, line):
    _no_key(monkeypatch)
    src = tmp_path / name
    src.write_bytes(content)
    err = _refused(capsys, ["embed", str(src), "--out", str(tmp_path / "s"), "--quiet"])
    assert err.startswith(f"pplx-codec embed: {src}:{line}: not UTF-8 text ("), err


def test_read_texts_names_the_file_and_line_of_invalid_utf8(tmp_path):
    """The library call says it too, not only the CLI: a ValueError naming the file and line."""
    from pplx_codec.corpus import read_texts
    for name, content in [("t.txt", b"ok\nbad \xe9\n"), ("t.jsonl", b'{"text": "ok"}\n{"text": "\xc3"}\n')]:
        src = tmp_path / name
        src.write_bytes(content)
        with pytest.raises(ValueError, match=f"^{re.escape(str(src))}:2: not UTF-8 text"):
            read_texts(str(src))


def test_embed_names_the_out_path_and_the_cause(tmp_path, corpus, monkeypatch, capsys):
    _no_key(monkeypatch)
    # the store is staged in a hidden directory beside --out: an error there is about --out
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = blocker / "store"
    assert cli.main(["embed", str(corpus), "--out", str(out), "--quiet"]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == f"pplx-codec embed: cannot write --out {out}: {blocker} is not a directory"
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc here: it is the directory nobody (not even root) can create entries in")
    out = "/proc/pplx-codec-test-store"
    assert cli.main(["embed", str(corpus), "--out", out, "--quiet"]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"pplx-codec embed: cannot write --out {out}: ") and ".partial" not in last, last


def test_search_checks_the_store_before_starting_a_server(tmp_path, monkeypatch, capsys):
    _no_key(monkeypatch)
    assert _refused(capsys, ["search", str(tmp_path / "missing"), "q"]) == \
        f"pplx-codec search: no store at {tmp_path / 'missing'}"
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "meta.json").mkdir()
    assert _refused(capsys, ["search", str(tmp_path / "odd"), "q"]) == \
        f"pplx-codec search: cannot read store {tmp_path / 'odd'}: Is a directory ({tmp_path / 'odd' / 'meta.json'})"


@pytest.mark.parametrize("argv,message", [
    (["search", "DIR", "q", "-k", "0"], "argument -k: must be >= 1, got 0"),
    (["search", "DIR", "q", "--rescore", "-1"], "argument --rescore: must be >= 1, got -1"),
    (["search", "DIR", "q", "-k", "True"], "argument -k: invalid int value: 'True'"),
    (["embed", "IN", "--out", "DIR", "--chunk", "0"], "argument --chunk: must be >= 1, got 0"),
    (["embed", "IN", "--out", "DIR", "--dimensions", "0"], "argument --dimensions: must be >= 1, got 0"),
    (["embed", "IN", "--out", "DIR", "--max-concurrency", "0"], "argument --max-concurrency: must be >= 1, got 0"),
    (["embed", "IN", "--out", "DIR", "--max-retries", "-1"], "argument --max-retries: must be >= 0, got -1"),
])
def test_bad_numbers_are_refused_before_anything_starts(argv, message, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(argv)
    assert exit.value.code == 2 and message in capsys.readouterr().err


def test_search_k_beyond_the_store_lists_every_row(tmp_path, corpus, monkeypatch, capsys):
    _no_key(monkeypatch)
    out = tmp_path / "store"
    assert cli.main(["embed", str(corpus), "--out", str(out), "--quiet", "--encoding", "int8"]) == 0
    capsys.readouterr()
    # k asks for rows the store does not have: no k-sized allocation, every row once
    assert cli.main(["search", str(out), TEXTS[7], "-k", str(10**12)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(TEXTS)
    assert sorted(int(ln.split()[2][1:]) for ln in lines[1:]) == list(range(len(TEXTS)))


def test_output_into_a_closed_pipe_is_not_a_traceback():
    """`pplx-codec info | head -1`: the reader leaves early; no BrokenPipeError
    traceback, and the exit code a closed pipe conventionally gives (128 + SIGPIPE)."""
    p = subprocess.Popen([sys.executable, "-m", "pplx_codec", "info"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    p.stdout.close()  # no reader at all: the child's first write fails
    err = p.stderr.read()
    assert p.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


# --- one --out at a time; a damaged store named by every command (issue 22 item 11) ---

_HOLD = """
import sys
from pplx_codec import store
w = store.Writer.create(sys.argv[1], 10, 128, job_key="another run")
print("ready", flush=True)
sys.stdin.read()
"""


def test_a_second_embed_on_the_same_out_is_one_line(tmp_path, corpus, capsys):
    out = tmp_path / "store"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline() == "ready\n"
        with running(api_keys=["k"]) as url:
            argv = ["embed", str(corpus), "--out", str(out), "--quiet", "--base-url", url, "--api-key", "k"]
            assert _refused(capsys, argv) == \
                f"pplx-codec embed: another pplx-codec embed is writing {out} (its unfinished job is locked): " \
                "wait for it to end, or stop it, then run this again"
            assert _refused(capsys, argv + ["--replace", "--encoding", "int8"]).startswith(
                "pplx-codec embed: another pplx-codec embed is writing")
            holder.stdin.close()
            assert holder.wait(timeout=60) == 0
            assert cli.main(argv) == 0  # the lock went with its process
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err  # the other run's job had other settings: said, and discarded
    assert err == f"pplx-codec embed: the unfinished run in {out} could not be reused (model None (this run: " \
        "'pplx-embed-v1-0.6b'); dimensions 128 (this run: 1024); encodings ['int8'] (this run: ['int8', 'binary']); " \
        f"endpoint None (this run: '{url}')): its rows were discarded\n"
    assert list(store.load(out).texts) == TEXTS


def test_a_damaged_texts_jsonl_is_named_by_every_command(tmp_path, corpus, capsys):
    out = tmp_path / "store"
    texts = out / "texts.jsonl"
    with running(api_keys=["k"]) as url:
        server = ["--base-url", url, "--api-key", "k"]
        assert cli.main(["embed", str(corpus), "--out", str(out), "--quiet", *server]) == 0
        lines = texts.read_bytes().split(b"\n")
        lines[4] = lines[4][:-1]  # row 4's closing quote lost
        texts.write_bytes(b"\n".join(lines))
        capsys.readouterr()
        damaged = f"{texts}:5: not a JSON string (Unterminated string starting at column 1): corrupt store"
        assert _refused(capsys, ["search", str(out), TEXTS[4], "-k", "3", *server]) == f"pplx-codec search: {damaged}"
        assert _refused(capsys, ["dedup", str(out), "--threshold", "-1"]) == f"pplx-codec dedup: {damaged}"
        assert _refused(capsys, ["embed", str(corpus), "--out", str(out), "--quiet", *server]) == \
            f"pplx-codec embed: {damaged}. Pass --replace (replace=True) to embed every text afresh and replace " \
            "it, or choose another --out"
        assert cli.main(["embed", str(corpus), "--out", str(out), "--quiet", "--replace", *server]) == 0
    assert list(store.load(out).texts) == TEXTS
