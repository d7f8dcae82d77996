"""pplx_codec.store: the .npy store (save/load, memory mapping, atomic
replacement), the resumable Writer, Arrow/Parquet conversion, and the
faiss/usearch exporters checked by searching through them."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import time

import faiss
import numpy as np
import pyarrow as pa
import pytest

import pplx_codec as pc
from helpers import raises_exactly
from pplx_codec import store
from pplx_codec.results import ContextualizedEmbeddings, Embeddings, Usage
from pplx_codec.store import Writer, _core, _fs

D = 128
TEXTS_ODD = ["plain", "", "line\nbreak", "cr\r\nlf", 'quote " and \\ backslash', "tab\there", "é ü 中文 🙂",
             "sep\u2028para\u2029", "nul\x00byte", "lone \ud800 surrogate", "{\"json\": [1, 2]}", " padded "]


def rows(n=150, d=D, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.integers(-128, 128, (n, d), dtype=np.int8)
    return v, pc.pack_bits(v, "little")


def texts_for(n, utf8=False):
    """Rows of awkward text; ``utf8``: without the lone surrogate (Arrow cannot hold it)."""
    odd = [t for t in TEXTS_ODD if not utf8 or "\ud800" not in t]
    return [odd[i % len(odd)] + f" #{i}" for i in range(n)]


def leftovers(parent):
    """Staging or aside directories a failed operation should have removed."""
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


# --- save / load ------------------------------------------------------------------


@pytest.mark.parametrize("bitorder", ["little", "big"])
@pytest.mark.parametrize("encodings", [("int8",), ("binary",), ("int8", "binary")])
def test_save_load_round_trip(tmp_path, encodings, bitorder):
    v, c = rows()
    codes = c if bitorder == "little" else pc.reverse_bitorder(c)
    arrays = dict(int8=v if "int8" in encodings else None, binary=codes if "binary" in encodings else None)
    saved = store.save(tmp_path / "s", **arrays, bitorder=bitorder, meta={"model": "pplx-embed-v1-0.6b"})
    for mmap in (True, False):
        s = store.load(tmp_path / "s", mmap=mmap)
        assert (s.count, s.dimensions, s.bitorder, s.encodings) == (150, D, bitorder, encodings)
        assert s.meta == saved.meta == {"format": "pplx-codec-store", "version": 1, "count": 150, "dimensions": D,
                                        "encodings": list(encodings), "bitorder": bitorder,
                                        "model": "pplx-embed-v1-0.6b"}
        for enc, want in (("int8", v), ("binary", codes)):
            got = getattr(s, enc)
            if enc not in encodings:
                assert got is None
                continue
            np.testing.assert_array_equal(got, want)
            assert isinstance(got, np.memmap) is mmap
            assert got.flags.writeable is not mmap
        assert s.texts is None and len(s) == 150
    files = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert files == sorted(["meta.json"] + [{"int8": "vectors.npy", "binary": "codes.npy"}[e] for e in encodings])
    assert json.loads((tmp_path / "s" / "meta.json").read_text())["bitorder"] == bitorder


def test_memmap_is_read_only(tmp_path):
    v, _ = rows()
    s = store.save(tmp_path / "s", int8=v)
    with pytest.raises(ValueError, match="read-only"):
        s.int8[0, 0] = 1


def test_meta_extras_and_structural_keys(tmp_path):
    v, c = rows()
    extras = {"source": {"path": "in.jsonl", "sha256": "ab" * 32}, "usage": {"total_tokens": 7},
              "cost": 0.25, "tags": ["a", "é"], "count": 150}   # a structural key with the right value is fine
    s = store.save(tmp_path / "s", int8=v, binary=c, meta=extras)
    assert {k: s.meta[k] for k in ("source", "usage", "cost", "tags")} == {k: extras[k] for k in
                                                                           ("source", "usage", "cost", "tags")}
    assert s.meta["model"] is None
    with pytest.raises(ValueError, match="meta\\['dimensions'\\] = 64 contradicts"):
        store.save(tmp_path / "t", int8=v, meta={"dimensions": 64})
    with pytest.raises(ValueError, match="bitorder"):
        store.save(tmp_path / "t", binary=c, meta={"bitorder": "big"})
    with pytest.raises(TypeError, match="JSON-serializable"):
        store.save(tmp_path / "t", int8=v, meta={"when": object()})
    with pytest.raises(TypeError, match="meta must be a dict"):
        store.save(tmp_path / "t", int8=v, meta=[("a", 1)])
    assert not (tmp_path / "t").exists()


def test_save_embeddings(tmp_path):
    v, c = rows()
    usage = Usage(prompt_tokens=10, total_tokens=10, input_cost=0.5, total_cost=0.5, requests=2)
    e8 = Embeddings(v, "pplx-embed-v1-0.6b", D, "base64_int8", "little", usage)
    s = store.save(tmp_path / "a", e8)
    np.testing.assert_array_equal(s.int8, v)
    assert s.meta["model"] == "pplx-embed-v1-0.6b" and s.meta["usage"]["total_tokens"] == 10
    assert s.meta["usage"]["requests"] == 2 and s.encodings == ("int8",)

    # codes the client returned MSB first keep their order, or are converted when asked
    big = Embeddings(pc.reverse_bitorder(c), "pplx-embed-v1-0.6b", D, "base64_binary", "big")
    s = store.save(tmp_path / "b", big)
    assert s.bitorder == "big"
    np.testing.assert_array_equal(s.binary, pc.reverse_bitorder(c))
    s = store.save(tmp_path / "c", big, bitorder="little")
    assert s.bitorder == "little"
    np.testing.assert_array_equal(s.binary, c)

    # one embedded string (1-D) is one row; the other encoding may come as an array
    one = Embeddings(v[7], "pplx-embed-v1-0.6b", D, "base64_int8", "little")
    s = store.save(tmp_path / "d", one, binary=c[7:8])
    assert s.int8.shape == (1, D) and s.encodings == ("int8", "binary")
    np.testing.assert_array_equal(s.binary, c[7:8])

    with pytest.raises(ValueError, match="int8 given twice"):
        store.save(tmp_path / "e", e8, int8=v)
    with pytest.raises(ValueError, match="dimensions=256"):
        store.save(tmp_path / "e", Embeddings(v, "m", 256, "base64_int8", "little"))
    with pytest.raises(ValueError, match="encoding_format"):
        store.save(tmp_path / "e", Embeddings(v, "m", D, "float", "little"))
    with pytest.raises(TypeError, match="ContextualizedEmbeddings"):
        store.save(tmp_path / "e", ContextualizedEmbeddings(v, np.array([0, 150]), "m", D, "base64_int8", "little"))
    with pytest.raises(TypeError, match="Embeddings or a Stored"):
        store.save(tmp_path / "e", v)


def test_save_a_stored_copies_it(tmp_path):
    v, c = rows()
    texts = texts_for(150)
    a = store.save(tmp_path / "a", int8=v, binary=pc.reverse_bitorder(c), bitorder="big", meta={"x": 1},
                   texts=texts)
    b = store.save(tmp_path / "b", a)                      # its own order: copied as is
    assert b.meta == a.meta and list(b.texts) == texts
    np.testing.assert_array_equal(b.binary, a.binary)
    c2 = store.save(tmp_path / "c", a, bitorder="little")  # another order: converted
    assert c2.bitorder == "little" and c2.meta["x"] == 1
    np.testing.assert_array_equal(c2.binary, c)


def test_texts_round_trip_and_laziness(tmp_path):
    n = 2 * store.Texts.STRIDE + 5      # crosses the offset blocks
    v, _ = rows(n)
    texts = texts_for(n)
    store.save(tmp_path / "s", int8=v, texts=texts)
    t = store.load(tmp_path / "s").texts
    assert isinstance(t, store.Texts) and len(t) == n
    assert t._starts is None            # len() did not read the file
    assert [t[i] for i in range(n)] == texts
    assert t[-1] == texts[-1] and t[-n] == texts[0]
    assert t[60:70] == texts[60:70] and t[::-37] == texts[::-37]
    # a step-1 slice reads its blocks once: every start and stop around the block edges
    edges = sorted({0, 1, 62, 63, 64, 65, 127, 128, 129, n - 1, n, n + 3, -1, -65})
    for a in edges:
        for b in edges:
            assert t[a:b] == texts[a:b], (a, b)
    assert list(t) == texts
    assert t._starts.size == n // store.Texts.STRIDE + 2      # one offset per 64 rows, plus the end
    raw = (tmp_path / "s" / "texts.jsonl").read_bytes()
    assert raw.count(b"\n") == n and "é ü 中文 🙂".encode() in raw     # one line per row, UTF-8
    with pytest.raises(IndexError):
        t[n]
    with pytest.raises(TypeError):
        t["1"]


def test_texts_corrupt_or_bad(tmp_path):
    v, _ = rows(10)
    store.save(tmp_path / "s", int8=v, texts=[str(i) for i in range(10)])
    p = tmp_path / "s" / "texts.jsonl"
    p.write_bytes(p.read_bytes()[:-1])          # last line unterminated
    with pytest.raises(ValueError, match="corrupt store"):
        store.load(tmp_path / "s").texts[3]
    p.write_bytes(b'"a"\n' * 9)                  # a line short
    with pytest.raises(ValueError, match="9 complete lines for 10 rows"):
        store.load(tmp_path / "s").texts[0]
    with pytest.raises(ValueError, match="9 lines for 10 rows"):
        list(store.load(tmp_path / "s").texts)
    with pytest.raises(ValueError, match="got 9 texts for 10 rows"):
        store.save(tmp_path / "t", int8=v, texts=["x"] * 9)
    with pytest.raises(TypeError, match=r"texts\[4\] must be str"):
        store.save(tmp_path / "t", int8=v, texts=["x"] * 4 + [b"bytes"] + ["x"] * 5)
    with pytest.raises(TypeError, match="sequence of str"):
        store.save(tmp_path / "t", int8=v, texts="abcdefghij")
    assert not (tmp_path / "t").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("line,why", [
    (b'"unterminated', "not a JSON string (Unterminated string starting at column 1)"),
    (b'"a" "b"', "not a JSON string (Extra data at column 5)"),
    (b"", "not a JSON string (Expecting value at column 1)"),
    (b"42", "a JSON int, not a string"),
    (b'["a"]', "a JSON list, not a string"),
    (b'"caf\xe9"', "not UTF-8 (invalid continuation byte at byte 5 of the line)"),
], ids=["unterminated", "two-strings", "empty", "number", "list", "not-utf8"])
def test_texts_name_the_file_and_line_of_a_damaged_line(tmp_path, line, why):
    """Issue 22 item 11: json's own message ("Unterminated string starting
    at: line 1 column 1 (char 0)") named neither the file nor the line."""
    v, _ = rows(70)
    s = store.save(tmp_path / "s", int8=v, texts=[str(i) for i in range(70)])
    p = tmp_path / "s" / "texts.jsonl"
    lines = p.read_bytes().split(b"\n")
    lines[66] = line                             # row 66: the second offset block
    p.write_bytes(b"\n".join(lines))
    message = f"{p}:67: {why}: corrupt store"
    with raises_exactly(ValueError, message):
        store.load(s.path).texts[66]
    with raises_exactly(ValueError, message):
        list(store.load(s.path).texts)          # the sequential pass says the same
    with raises_exactly(ValueError, message):
        store.load(s.path).texts[60:70]         # and a slice (read as one JSON document first)
    assert store.load(s.path).texts[65] == "65"  # the other lines still read


@pytest.mark.parametrize("pair", [(b'"a","b"', b""), (b'"a",', b'"b"'), (b'"a"]', b'["b"'), (b'"a", "b"', b" ")])
def test_a_slice_never_takes_two_damaged_lines_for_two_texts(tmp_path, pair):
    """A slice is parsed as one JSON array of its lines first: lines that together still make
    one string a line must not pass for good ones; the line-by-line reading names the first."""
    v, _ = rows(70)
    s = store.save(tmp_path / "s", int8=v, texts=[str(i) for i in range(70)])
    p = tmp_path / "s" / "texts.jsonl"
    lines = p.read_bytes().split(b"\n")
    lines[66:68] = pair
    p.write_bytes(b"\n".join(lines))
    with pytest.raises(ValueError, match=f"^{re.escape(str(p))}:6[78]: .*: corrupt store$"):
        store.load(s.path).texts[60:70]
    assert store.load(s.path).texts[60:66] == [str(i) for i in range(60, 66)]


def _rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def test_load_maps_without_reading(tmp_path):
    """A 2 GiB store (a sparse file: nothing is written to disk) opens in
    milliseconds and leaves the resident set where it was."""
    n, d = 2 << 20, 1024
    root = tmp_path / "big"
    root.mkdir()
    m = np.lib.format.open_memmap(root / "vectors.npy", "w+", np.int8, (n, d))
    m[n // 2, :3] = [1, 2, 3]
    m.flush()
    del m
    assert os.stat(root / "vectors.npy").st_blocks * 512 < (1 << 20)     # really sparse
    (root / "meta.json").write_text(json.dumps({"format": "pplx-codec-store", "version": 1, "count": n,
                                                "dimensions": d, "encodings": ["int8"], "bitorder": "little"}))
    before = _rss()
    s = store.load(root)
    # the resident set shows that nothing was read (a wall-clock bound would also fail on a loaded machine)
    assert isinstance(s.int8, np.memmap) and s.int8.shape == (n, d)
    assert _rss() - before < (32 << 20)
    np.testing.assert_array_equal(s.int8[n // 2, :4], [1, 2, 3, 0])     # read on demand
    assert _rss() - before < (32 << 20)
    s2 = store.load(root)
    assert os.path.samefile(s.int8.filename, s2.int8.filename) and s2.int8.offset == s.int8.offset


def test_index_over_memmaps_equals_direct_search(tmp_path):
    v, c = rows(400)
    q = v[:7]
    s = store.save(tmp_path / "s", int8=v, binary=c)
    idx = s.index()
    assert isinstance(idx, pc.Index) and idx.ntotal == 400
    assert idx.int8._segments.arrays[0] is s.int8 and idx.binary._segments.arrays[0] is s.binary   # not copied
    direct = pc.Index(D)
    direct.add(v.copy(), codes=c.copy())
    for got, want in zip(idx.search(q, 10, rescore=3), direct.search(q, 10, rescore=3), strict=True):
        np.testing.assert_array_equal(got, want)

    b = s.index("binary")
    assert isinstance(b, pc.BinaryIndex)
    for got, want in zip(b.search(c[:7], 10), pc.search_binary(c[:7], c, 10), strict=True):
        np.testing.assert_array_equal(got, want)
    i8 = store.save(tmp_path / "i", int8=v).index()
    assert isinstance(i8, pc.Int8Index)
    for got, want in zip(i8.search(q, 10), pc.search_int8(q, v, 10), strict=True):
        np.testing.assert_array_equal(got, want)
    big = store.save(tmp_path / "g", binary=pc.reverse_bitorder(c), bitorder="big").index()
    assert isinstance(big, pc.BinaryIndex) and big.bitorder == "big"
    np.testing.assert_array_equal(big.search(v[:7], 10)[1], pc.search_binary(c[:7], c, 10)[1])   # packs q as big
    with pytest.raises(ValueError, match="no binary encoding"):
        store.load(tmp_path / "i").index("binary")
    with pytest.raises(ValueError, match="kind must be"):
        s.index("float")


# --- atomic writes --------------------------------------------------------------


class Boom(RuntimeError):
    pass


def _fail_on_call(monkeypatch, module, name, when=1):
    real = getattr(module, name)
    calls = []

    def wrapper(*a, **k):
        calls.append(1)
        if len(calls) == when:
            raise Boom(f"injected failure in {name}")
        return real(*a, **k)

    monkeypatch.setattr(module, name, wrapper)


@pytest.mark.parametrize("where", [("write_npy", 2), ("write_texts", 1), ("install", 1)])
def test_crash_mid_save_leaves_nothing(tmp_path, monkeypatch, where):
    v, c = rows()
    _fail_on_call(monkeypatch, _core, *where)
    with pytest.raises(Boom):
        store.save(tmp_path / "s", int8=v, binary=c, texts=texts_for(150))
    assert not (tmp_path / "s").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_crash_mid_replace_keeps_old_store(tmp_path, monkeypatch, exchange):
    swapped, real_exchange = [], _fs.exchange

    def spy(a, b):      # the real renameat2, or "unsupported here" for the fallback
        swapped.append(real_exchange(a, b) if exchange else False)
        return swapped[-1]

    monkeypatch.setattr(_fs, "exchange", spy)
    v, c = rows()
    old = store.save(tmp_path / "s", int8=v, meta={"generation": 1})
    with monkeypatch.context() as mp:
        _fail_on_call(mp, _core, "write_npy", when=2)
        with pytest.raises(Boom):
            store.save(tmp_path / "s", int8=v[::-1], binary=c[::-1], meta={"generation": 2})
    s = store.load(tmp_path / "s")
    assert s.meta == old.meta and s.encodings == ("int8",)
    np.testing.assert_array_equal(s.int8, v)
    # and a replacement that completes replaces everything, leaving nothing behind
    s = store.save(tmp_path / "s", binary=c[::-1], meta={"generation": 3})
    assert store.load(tmp_path / "s").meta["generation"] == 3 and s.encodings == ("binary",)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["codes.npy", "meta.json"]
    assert leftovers(tmp_path) == [] and swapped == [exchange]     # the path tested is the path taken


def test_refuses_to_replace_what_is_not_a_store(tmp_path, monkeypatch):
    v, _ = rows()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a pplx-codec store"):
        store.save(tmp_path / "docs", int8=v)
    (tmp_path / "file").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a directory"):
        store.save(tmp_path / "file", int8=v)
    with pytest.raises(FileExistsError):
        Writer.create(tmp_path / "docs", 10, D)
    assert (tmp_path / "docs" / "notes.txt").read_text() == "keep me" and (tmp_path / "file").read_text() == "keep me"
    (tmp_path / "empty").mkdir()                       # an empty directory is taken
    with monkeypatch.context() as mp:
        _fail_on_call(mp, _core, "write_npy")          # refused before any data is written
        with pytest.raises(FileExistsError):
            store.save(tmp_path / "docs", int8=v)
    assert store.save(tmp_path / "empty", int8=v).count == 150
    assert leftovers(tmp_path) == []


def test_directory_created_during_save_is_not_replaced(tmp_path, monkeypatch):
    """Someone else creates the path while the data is written: the install
    step checks again and refuses, leaving their directory alone."""
    v, _ = rows()
    real = _core.write_npy

    def racing(path, a):
        (tmp_path / "s").mkdir(exist_ok=True)
        (tmp_path / "s" / "theirs.txt").write_text("theirs")
        return real(path, a)

    monkeypatch.setattr(_core, "write_npy", racing)
    with pytest.raises(FileExistsError, match="not a pplx-codec store"):
        store.save(tmp_path / "s", int8=v)
    assert [p.name for p in (tmp_path / "s").iterdir()] == ["theirs.txt"] and leftovers(tmp_path) == []


_CHILD = r"""
import sys
import numpy as np
from pplx_codec import store

mode, path = sys.argv[1], sys.argv[2]
if mode == "writer":       # one row per write, each synced: as many crash points as possible
    w = store.Writer.resume_or_create(path, 200_000, 64, ("int8", "binary"), job_key="kill")
    for i in w.missing().tolist():
        w.write(i, int8=np.full((1, 64), i % 127, np.int8), binary=np.full((1, 8), i % 256, np.uint8))
        if i == 20:
            print("ready", flush=True)
elif mode == "carry":      # two jobs on overlapping texts, each taking over the other's rows, over and over
    n, rounds = 5000, 0
    jobs = [[f"t{k}" for k in range(n)], [f"t{k}" for k in np.random.default_rng(1).permutation(n + 2000)[:n]]]
    while True:
        key = rounds % 2
        texts = jobs[key]
        w = store.Writer.resume_or_create(path, n, 64, ("int8", "binary"), job_key=key, texts=texts,
                                          reuse=lambda other: None)
        todo = w.missing()[:500]
        values = np.array([int(texts[i][1:]) % 127 for i in todo.tolist()], np.int8)
        w.write_rows(todo, int8=np.repeat(values[:, None], 64, axis=1),
                     binary=np.repeat(values.astype(np.uint8)[:, None], 8, axis=1))
        w.record(rounds)
        w.close()
        rounds += 1
        if rounds == 4:
            print("ready", flush=True)
else:                      # replace the store over and over
    gen = 0
    while True:
        gen += 1
        store.save(path, int8=np.full((3000, 64), gen % 127, np.int8), meta={"generation": gen},
                   texts=[str(gen)] * 3000)
        if gen == 3:
            print("ready", flush=True)
"""


def _kill_midway(mode, path):
    child = subprocess.Popen([sys.executable, "-c", _CHILD, mode, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        time.sleep(0.15)
    finally:
        child.kill()            # SIGKILL: no cleanup code runs
        child.wait()
        child.stdout.close()


def test_killed_save_leaves_a_whole_store(tmp_path):
    _kill_midway("save", tmp_path / "s")
    s = store.load(tmp_path / "s")
    gen = s.meta["generation"]
    assert gen >= 3 and (s.int8 == gen % 127).all() and s.texts[2999] == str(gen)


def test_killed_writer_resumes(tmp_path):
    """Row i holds i % 127 (int8) and i % 256 (codes): after the kill, every
    row marked done must hold its values, which the committed store shows."""
    _kill_midway("writer", tmp_path / "w")
    w = Writer.open(tmp_path / "w")               # the dead process's lock is gone
    assert 20 < w.done.sum() < 200_000
    missing = w.missing()
    for run in np.split(missing, np.flatnonzero(np.diff(missing) != 1) + 1):
        w.write(int(run[0]), int8=np.repeat((run % 127).astype(np.int8)[:, None], 64, axis=1),
                binary=np.repeat((run % 256).astype(np.uint8)[:, None], 8, axis=1))
    s = w.commit()
    i = np.arange(200_000)
    np.testing.assert_array_equal(s.int8, np.repeat((i % 127).astype(np.int8)[:, None], 64, axis=1))
    np.testing.assert_array_equal(s.binary, np.repeat((i % 256).astype(np.uint8)[:, None], 8, axis=1))


def test_killed_carry_keeps_every_done_row_right(tmp_path):
    """Killed at any instant while jobs take over each other's rows: the
    .partial is one job, and each row it marks done holds its own text's row."""
    _kill_midway("carry", tmp_path / "w")
    w = Writer.open(tmp_path / "w")
    done = np.flatnonzero(w.done)
    texts = list(w.texts)
    assert done.size >= 500 and len(texts) == 5000
    values = np.array([int(texts[i][1:]) % 127 for i in done.tolist()], np.int8)
    np.testing.assert_array_equal(w._arrays["int8"][done], np.repeat(values[:, None], 64, axis=1))
    np.testing.assert_array_equal(w._arrays["binary"][done], np.repeat(values.astype(np.uint8)[:, None], 8, axis=1))
    rounds = w.records()
    assert rounds == list(range(len(rounds))) and len(rounds) >= 4   # every run's record, in order, once
    w.close()


# --- Writer ------------------------------------------------------------------------


def test_writer_resume_and_commit(tmp_path):
    v, c = rows(300)
    out = tmp_path / "out"
    w = Writer.resume_or_create(out, 300, D, ("int8", "binary"), meta={"model": "m"}, job_key="input-sha:1")
    assert not w.resumed and w.missing().size == 300
    w.write(100, int8=v[100:150], binary=c[100:150])
    w.write(0, int8=v[:100], binary=c[:100])
    w.close()                          # the process ends here; the next run resumes
    assert sorted(p.name for p in w.partial.iterdir()) == ["codes.npy", "done.npy", "job.json", "vectors.npy"]
    with pytest.raises(FileNotFoundError, match="unfinished job"):
        store.load(out)

    w = Writer.resume_or_create(out, 300, D, ("int8", "binary"), meta={"model": "m", "run": 2},
                                job_key="input-sha:1")
    assert w.resumed and w.done[:150].all() and not w.done[150:].any()
    np.testing.assert_array_equal(w.missing(), np.arange(150, 300))
    with pytest.raises(ValueError, match="read-only"):
        w.done[0] = False
    with pytest.raises(ValueError, match="150 of 300 rows are not written yet"):
        w.commit()
    w.write(150, int8=v[150:], binary=c[150:])
    s = w.commit(meta={"cost": 0.5}, texts=texts_for(300))
    assert not w.partial.exists() and leftovers(tmp_path) == []
    np.testing.assert_array_equal(s.int8, v)
    np.testing.assert_array_equal(s.binary, c)
    assert (s.meta["model"], s.meta["run"], s.meta["cost"]) == ("m", 2, 0.5)
    assert s.texts[299] == texts_for(300)[299]
    assert sorted(p.name for p in out.iterdir()) == ["codes.npy", "meta.json", "texts.jsonl", "vectors.npy"]
    with pytest.raises(ValueError, match="closed"):
        w.write(0, int8=v[:1], binary=c[:1])
    with pytest.raises(FileNotFoundError, match="committed already"):
        Writer.open(out)


def test_writer_commit_replaces_old_store(tmp_path):
    v, _ = rows(20)
    store.save(tmp_path / "s", int8=v[::-1], meta={"old": True})
    with Writer.create(tmp_path / "s", 20, D) as w:
        assert (tmp_path / "s" / "meta.json").exists()     # the old store stays until commit
        w.write(0, int8=v)
        s = w.commit()
    np.testing.assert_array_equal(store.load(tmp_path / "s").int8, v)
    assert "old" not in s.meta and leftovers(tmp_path) == []


@pytest.mark.parametrize("change", [dict(job_key="b"), dict(job_key=["a"]), dict(count=41), dict(dimensions=64),
                                    dict(bitorder="big"), dict(encodings=("int8", "binary"))],
                         ids=lambda c: next(iter(c)))
def test_writer_job_key_or_shape_mismatch_starts_fresh(tmp_path, change):
    v, _ = rows(40)
    base = dict(count=40, dimensions=D, encodings=("int8",), bitorder="little", job_key="a")
    w = Writer.resume_or_create(tmp_path / "o", **base)
    w.write(0, int8=v[:20])
    w.close()
    w = Writer.resume_or_create(tmp_path / "o", **base)
    assert w.resumed and w.missing().size == 20              # the same job resumes
    w.close()
    args = base | change
    w = Writer.resume_or_create(tmp_path / "o", **args)
    assert not w.resumed and w.missing().size == args["count"] and w.job_key == args["job_key"]
    assert (w.count, w.dimensions, w.encodings, w.bitorder) == (args["count"], args["dimensions"],
                                                                 args["encodings"], args["bitorder"])
    w.close()
    assert leftovers(tmp_path) == []


def test_writer_damaged_partial_starts_fresh(tmp_path):
    v, _ = rows(40)
    w = Writer.create(tmp_path / "o", 40, D, job_key="a")
    w.write(0, int8=v[:20])
    w.close()
    with open(w.partial / "vectors.npy", "r+b") as f:
        f.truncate(1000)
    with pytest.raises(ValueError, match="corrupt store"):
        Writer.open(tmp_path / "o")
    w = Writer.resume_or_create(tmp_path / "o", 40, D, job_key="a")
    assert not w.resumed and w.missing().size == 40
    w.close()


def _by_text(texts) -> np.ndarray:
    """Each row's int8 values, a function of its text alone (``"t<k>"``: k % 127)."""
    return np.repeat(np.array([int(t[1:]) % 127 for t in texts], np.int8)[:, None], D, axis=1)


def test_writer_carries_the_rows_of_another_job_by_text(tmp_path):
    old_texts = [f"t{k}" for k in range(100)] + ["t5", "t6"]
    w = Writer.resume_or_create(tmp_path / "o", 102, D, job_key="a", texts=old_texts)
    assert list(w.texts) == old_texts
    done = np.r_[0:30, 60:80, 101]                    # t0-t29, t60-t79, and a repeat of t6
    w.write_rows(done, int8=_by_text([old_texts[i] for i in done]))
    w.record({"usage": 1})
    w.record({"usage": 2})
    w.close()
    new_texts = [f"t{k}" for k in range(150, 0, -3)] + ["t6", "t6", "t29 ", "t5", "t40"]   # repeats, an edit
    with Writer.open(tmp_path / "o") as old:   # only the .partial it replaces, with texts, the same shape
        for path, d, t in [(tmp_path / "elsewhere", D, new_texts), (tmp_path / "o", 64, new_texts),
                           (tmp_path / "o", D, None)]:
            with pytest.raises(ValueError, match="carry must be the Writer of this store's .partial"):
                Writer.create(path, len(new_texts), d, job_key="b", texts=t, carry=old)
    calls = []

    def reuse(other):
        calls.append((other.job_key, other.count, int(other.done.sum())))
        return None

    w = Writer.resume_or_create(tmp_path / "o", len(new_texts), D, job_key="b", texts=new_texts, reuse=reuse)
    assert calls == [("a", 102, 51)] and not w.resumed and w.discarded is None
    held = {f"t{k}" for k in [*range(30), *range(60, 80)]}
    want = np.array([t in held for t in new_texts])   # "t40" was never done, "t29 " is another text
    assert w.carried == int(want.sum()) == 16 + 3 and w.done.tolist() == want.tolist()
    assert w.records() == [{"usage": 1}, {"usage": 2}] and list(w.texts) == new_texts
    plain = [t.strip() for t in new_texts]
    w.write_rows(np.flatnonzero(~want), int8=_by_text([t for t, h in zip(plain, want, strict=True) if not h]))
    np.testing.assert_array_equal(w.commit().int8, _by_text(plain))
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("case", ["no reuse", "reuse says no", "no texts here", "no texts there", "dimensions",
                                  "damaged", "locked"])
def test_writer_discards_what_it_cannot_carry(tmp_path, case):
    texts = [f"t{k}" for k in range(40)]
    w = Writer.create(tmp_path / "o", 40, D, job_key="a", texts=None if case == "no texts there" else texts)
    w.write(0, int8=_by_text(texts[:20]))
    w.close()
    if case == "damaged":
        (w.partial / "done.npy").write_bytes(b"not npy")
    def reuse(other):
        return "other settings" if case == "reuse says no" else None

    args = dict(count=40, dimensions=64 if case == "dimensions" else D, job_key="b",
                texts=None if case == "no texts here" else texts[::-1], reuse=None if case == "no reuse" else reuse)
    if case == "locked":
        holder = Writer.open(tmp_path / "o")
        with pytest.raises(store.JobInUse, match="in use by another Writer"):
            Writer.resume_or_create(tmp_path / "o", **args)
        holder.close()
        return
    w = Writer.resume_or_create(tmp_path / "o", **args)
    assert w.carried == 0 and not w.done.any() and w.records() == []
    if case == "damaged":
        assert w.discarded.startswith(f"it is damaged ({w.partial / 'done.npy'}: not a readable .npy file")
    else:
        assert w.discarded == {
            "no reuse": "it is another job", "reuse says no": "other settings", "no texts here": "it is another job",
            "no texts there": "it keeps no texts to match its rows by",
            "dimensions": "its rows are 128 dimensions, int8, little bit order (this job: 64, int8, little)",
        }[case]
    w.close()


@pytest.mark.parametrize("where", ["install", "copy"])
def test_writer_crash_while_carrying_keeps_the_old_job(tmp_path, monkeypatch, where):
    texts = [f"t{k}" for k in range(50)]
    w = Writer.create(tmp_path / "o", 50, D, job_key="a", texts=texts)
    w.write(0, int8=_by_text(texts[:25]))
    w.record("paid")
    w.close()
    from pplx_codec.store import writer as writer_module
    if where == "install":
        _fail_on_call(monkeypatch, _fs, "install")
    else:
        _fail_on_call(monkeypatch, writer_module, "copy_rows")
    with pytest.raises(Boom):
        Writer.resume_or_create(tmp_path / "o", 30, D, job_key="b", texts=texts[10:40], reuse=lambda other: None)
    w = Writer.open(tmp_path / "o")                     # the old job, whole, and unlocked
    assert w.job_key == "a" and np.flatnonzero(w.done).tolist() == list(range(25)) and w.records() == ["paid"]
    w.close()
    assert leftovers(tmp_path) == []


def test_writer_flushes_data_before_done(tmp_path, monkeypatch):
    order = []
    real = np.memmap.flush
    monkeypatch.setattr(np.memmap, "flush", lambda self: (order.append(os.path.basename(self.filename)),
                                                          real(self))[1])
    v, c = rows(40)
    w = Writer.create(tmp_path / "o", 40, D, ("int8", "binary"))
    w.write(0, int8=v[:10], binary=c[:10])
    assert order == ["vectors.npy", "codes.npy", "done.npy"] and w.done[:10].all()
    order.clear()
    w.write(10, int8=v[10:20], binary=c[10:20], flush=False)
    w.write(20, int8=v[20:30], binary=c[20:30], flush=False)
    assert order == [] and not w.done[10:].any()        # written, not yet done
    w.flush()
    assert order == ["vectors.npy", "codes.npy", "done.npy"] and w.done[:30].all()
    w.close()


def test_writer_crash_then_resume_sees_synced_rows(tmp_path):
    v, _ = rows(40)
    w = Writer.create(tmp_path / "o", 40, D, job_key="k")
    w.write(0, int8=v[:10])
    w.write(10, int8=v[10:20], flush=False)       # never synced: not done after the "crash"
    with pytest.raises(RuntimeError, match="in use by another Writer"):
        Writer.open(tmp_path / "o")
    with pytest.raises(RuntimeError, match="in use"):
        Writer.create(tmp_path / "o", 40, D, job_key="k")
    w._close_lock()                               # the process dies: the kernel drops its lock
    w2 = Writer.open(tmp_path / "o")
    np.testing.assert_array_equal(w2.missing(), np.arange(10, 40))
    w2.write(10, int8=v[10:])
    np.testing.assert_array_equal(w2.commit().int8, v)


@pytest.mark.parametrize("link", [True, False], ids=["hard-link", "move"])
def test_writer_failed_commit_keeps_job(tmp_path, monkeypatch, link):
    if not link:
        def no_link(src, dst):
            raise OSError(errno.EPERM, "no hard links here")
        monkeypatch.setattr(os, "link", no_link)
    v, c = rows(30)
    old = store.save(tmp_path / "o", int8=v[::-1], binary=c[::-1])
    w = Writer.create(tmp_path / "o", 30, D, ("int8", "binary"))
    w.write(0, int8=v, binary=c)
    with pytest.raises(TypeError, match=r"texts\[29\]"):
        w.commit(texts=["ok"] * 29 + [None])
    np.testing.assert_array_equal(store.load(tmp_path / "o").int8, old.int8)
    assert w.missing().size == 0 and (w.partial / "vectors.npy").exists() and leftovers(tmp_path) == []
    s = w.commit(texts=["ok"] * 30)
    np.testing.assert_array_equal(s.int8, v)
    np.testing.assert_array_equal(s.binary, c)


def test_writer_bad_input(tmp_path):
    v, c = rows(20)
    with pytest.raises(ValueError, match="multiple of 8"):
        Writer.create(tmp_path / "o", 20, 100, ("binary",))
    with pytest.raises(ValueError, match="positive"):
        Writer.create(tmp_path / "o", 0, D)
    with pytest.raises(ValueError, match="encodings"):
        Writer.create(tmp_path / "o", 20, D, ("float32",))
    with pytest.raises(ValueError, match="bitorder"):
        Writer.create(tmp_path / "o", 20, D, bitorder="middle")
    with pytest.raises(TypeError, match="job_key"):
        Writer.create(tmp_path / "o", 20, D, job_key=object())
    with pytest.raises(ValueError, match="contradicts"):
        Writer.create(tmp_path / "o", 20, D, meta={"count": 21})
    with pytest.raises(FileNotFoundError, match="no unfinished job"):
        Writer.open(tmp_path / "o")
    w = Writer.create(tmp_path / "o", 20, D, ("int8", "binary"))
    with pytest.raises(ValueError, match="pass binary= too"):
        w.write(0, int8=v)
    with pytest.raises(ValueError, match=r"rows \[15, 35\) are outside \[0, 20\)"):
        w.write(15, int8=v, binary=c)
    with pytest.raises(ValueError, match="outside"):
        w.write(-1, int8=v[:1], binary=c[:1])
    with pytest.raises(TypeError, match="start must be an integer"):
        w.write(1.5, int8=v[:1], binary=c[:1])
    with pytest.raises(ValueError, match="same number of rows"):
        w.write(0, int8=v[:2], binary=c[:3])
    with pytest.raises(ValueError, match="64 dimensions"):
        w.write(0, int8=v[:2, :64], binary=c[:2])
    with pytest.raises(TypeError, match="int8 vectors"):
        w.write(0, int8=v[:2].astype(np.float32), binary=c[:2])
    assert w.missing().size == 20
    w.close()
    w = Writer.create(tmp_path / "p", 20, D)
    with pytest.raises(ValueError, match="does not store binary"):
        w.write(0, int8=v, binary=c)
    w.close()


# --- bad input, broken stores ------------------------------------------------------


def test_save_bad_input(tmp_path):
    v, c = rows(20)
    p = tmp_path / "s"
    cases = [
        (dict(), ValueError, "nothing to store"),
        (dict(int8=v.astype(np.float32)), TypeError, "int8 vectors"),
        (dict(int8=v.tolist()), TypeError, "numpy array"),
        (dict(binary=v), TypeError, "packed uint8 codes"),
        (dict(int8=v[0]), ValueError, "2-D"),
        (dict(int8=v[:, :0]), ValueError, "empty"),
        (dict(int8=v, binary=c[:19]), ValueError, "20 rows but binary has 19"),
        (dict(int8=v[:, :100], binary=c[:, :13]), ValueError, "multiple of 8"),
        (dict(int8=v, binary=c[:, :8]), ValueError, "same dimensions"),
        (dict(binary=c, bitorder="msb"), ValueError, "bitorder"),
    ]
    for kwargs, exc, match in cases:
        with pytest.raises(exc, match=match):
            store.save(p, **kwargs)
    assert not p.exists() and leftovers(tmp_path) == []


def _meta(path):
    return json.loads((path / "meta.json").read_text())


def test_load_errors(tmp_path):
    v, c = rows(20)
    with pytest.raises(FileNotFoundError, match="no store at"):
        store.load(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(FileNotFoundError, match="no meta.json"):
        store.load(tmp_path / "plain")
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileNotFoundError, match="is a file"):
        store.load(tmp_path / "f")

    def broken(name, edit_meta=None, raw=None):
        p = store.save(tmp_path / name, int8=v, binary=c).path
        if raw is not None:
            (p / "meta.json").write_bytes(raw)
        if edit_meta is not None:
            m = _meta(p)
            edit_meta(m)
            (p / "meta.json").write_text(json.dumps(m))
        return p

    with pytest.raises(ValueError, match="corrupt store"):
        store.load(broken("json", raw=b'{"format": '))
    with pytest.raises(ValueError, match="not a pplx-codec store"):
        store.load(broken("fmt", lambda m: m.update(format="other")))
    with pytest.raises(ValueError, match="unsupported store version 2"):
        store.load(broken("ver", lambda m: m.update(version=2)))
    with pytest.raises(ValueError, match=r"says int8 \(21, 128\)"):
        store.load(broken("count", lambda m: m.update(count=21)))
    with pytest.raises(ValueError, match="corrupt meta.json: bitorder"):
        store.load(broken("order", lambda m: m.update(bitorder="lsb")))
    with pytest.raises(ValueError, match="corrupt meta.json: encodings"):
        store.load(broken("enc", lambda m: m.update(encodings=["int4"])))
    with pytest.raises(ValueError, match="corrupt meta.json: count"):
        store.load(broken("neg", lambda m: m.update(count=-1)))
    p = broken("nofile")
    (p / "codes.npy").unlink()
    with pytest.raises(FileNotFoundError, match="codes.npy is missing"):
        store.load(p)
    p = broken("trunc")
    with open(p / "vectors.npy", "r+b") as f:
        f.truncate(500)
    for mmap in (True, False):
        with pytest.raises(ValueError, match="not a readable .npy file"):
            store.load(p, mmap=mmap)
    p = broken("fortran")
    np.save(p / "vectors.npy", np.asfortranarray(v))
    with pytest.raises(ValueError, match="Fortran"):
        store.load(p)


MISTYPED_META = {   # every field load() reads, with a JSON value of the wrong type or shape
    "encodings-string": ("encodings", "int8"),      # iterated, this was its letters: KeyError: 'i'
    "encodings-null": ("encodings", None),
    "encodings-object": ("encodings", {"int8": 1}),
    "encodings-number": ("encodings", [8]),
    "encodings-twice": ("encodings", ["int8", "int8"]),
    "count-string": ("count", "20"),
    "count-float": ("count", 20.0),
    "count-bool": ("count", True),
    "dimensions-string": ("dimensions", "128"),
    "dimensions-float": ("dimensions", 128.0),
    "dimensions-bool": ("dimensions", True),
    "dimensions-list": ("dimensions", [128]),
    "bitorder-number": ("bitorder", 1),
    "bitorder-list": ("bitorder", ["little"]),
    "model-number": ("model", 5),
    "model-object": ("model", {"name": "m"}),
    "version-bool": ("version", True),
    "version-float": ("version", 1.0),
}


@pytest.mark.parametrize("field,value", MISTYPED_META.values(), ids=MISTYPED_META.keys())
def test_load_rejects_mistyped_meta_fields(tmp_path, field, value):
    """A mistyped meta.json field is a ValueError naming the file, like every
    other corruption (never a KeyError or TypeError from deeper down)."""
    v, c = rows(20)
    p = store.save(tmp_path / "s", int8=v, binary=c, meta={"model": "m"}).path
    m = _meta(p)
    m[field] = value
    (p / "meta.json").write_text(json.dumps(m))
    for mmap in (True, False):
        with pytest.raises(ValueError, match=re.escape(str(p)) + ": (corrupt meta.json|unsupported store version)"):
            store.load(p, mmap=mmap)


def test_load_rejects_bytes_after_npy_data(tmp_path):
    """numpy ignores bytes after a .npy file's data; a store does not: the
    file's size must be its header plus the data it announces."""
    v, c = rows(20)
    for name, extra in (("vectors.npy", b"\x00"), ("codes.npy", bytes(16 * 5))):
        p = store.save(tmp_path / name, int8=v, binary=c).path
        with open(p / name, "ab") as f:
            f.write(extra)
        for mmap in (True, False):
            with pytest.raises(ValueError, match=rf"{name}: not a readable .npy file .*the file has \d+ bytes.*"
                                                 "corrupt store"):
                store.load(p, mmap=mmap)
    # a job's files too (a Writer maps them read-write)
    w = Writer.create(tmp_path / "job", 20, D)
    w.close()
    with open(w.partial / "done.npy", "ab") as f:
        f.write(b"\x01")
    with pytest.raises(ValueError, match="done.npy: not a readable .npy file"):
        Writer.open(tmp_path / "job")


def test_writer_rejects_mistyped_job(tmp_path):
    """job.json is checked by type like meta.json: encodings given as a bare
    string is a corrupt job (resume_or_create then starts afresh)."""
    v, _ = rows(20)
    w = Writer.create(tmp_path / "o", 20, D, ("int8",), job_key="k")
    w.write(0, int8=v[:5])
    w.close()
    job_path = w.partial / "job.json"
    good = json.loads(job_path.read_text())
    for field, value in (("encodings", "int8"), ("count", 20.0), ("count", True), ("dimensions", "128"),
                         ("version", True)):
        job_path.write_text(json.dumps({**good, field: value}))
        with pytest.raises(ValueError, match="job.json: corrupt job"):
            Writer.open(tmp_path / "o")
    w = Writer.resume_or_create(tmp_path / "o", 20, D, ("int8",), job_key="k")
    assert not w.resumed and w.encodings == ("int8",) and w.missing().size == 20
    w.close()


def test_arrow_metadata_fields_are_checked(tmp_path):
    """from_arrow builds meta through the same checks: a schema's model or
    bit order of the wrong type is refused, not handed on."""
    v, _ = rows(10)
    good = store.to_arrow(int8=v)
    meta = json.loads(good.schema.metadata[b"pplx-codec"])
    for field, value, exc in (("model", 5, TypeError), ("bitorder", 7, ValueError)):
        bad = good.replace_schema_metadata({b"pplx-codec": json.dumps({**meta, field: value}).encode()})
        with pytest.raises(exc, match=field):
            store.from_arrow(bad)


def test_writer_records_survive_runs_and_torn_appends(tmp_path):
    w = Writer.create(tmp_path / "o", 10, D, job_key="k")
    assert w.records() == []
    w.record({"usage": {"total_tokens": 3}})
    w.record(["any", "json", 1.5])
    w.close()
    with open(w.partial / "log.jsonl", "ab") as f:   # a crash in the middle of an append
        f.write(b'{"usage": {"tot')
    w = Writer.resume_or_create(tmp_path / "o", 10, D, job_key="k")
    assert w.resumed and w.records() == [{"usage": {"total_tokens": 3}}, ["any", "json", 1.5]]
    w.record("after the crash")
    assert w.records()[-1] == "after the crash" and len(w.records()) == 3
    with pytest.raises(TypeError, match="JSON-serializable"):
        w.record({"x": object()})
    with pytest.raises(TypeError, match="JSON-serializable"):
        w.record(float("nan"))
    w.close()
    (w.partial / "log.jsonl").write_bytes(b'{"ok": 1}\nnot json\n')
    w = Writer.open(tmp_path / "o")
    with pytest.raises(ValueError, match="log.jsonl: line 2 is not a JSON record"):
        w.records()
    w.close()
    w = Writer.resume_or_create(tmp_path / "o", 10, D, job_key="other")   # another job: a fresh log
    assert w.records() == []
    w.close()


class FakeClient:
    """Client.embed's contract, scripted per call: each chunk's rows are
    ``row % 100`` and cost 1 token per text; ``fail``: {call: rows that
    arrive before an APIError (None: a KeyboardInterrupt, as a kill)}."""

    def __init__(self, fail=None):
        self.fail, self.calls = fail or {}, 0

    def embed(self, texts, model, dimensions, encoding_format, bitorder):
        call, self.calls = self.calls, self.calls + 1
        rows = np.array([int(t) % 100 for t in texts], np.int8)[:, None].repeat(dimensions, 1)
        if call in self.fail:
            if self.fail[call] is None:
                raise KeyboardInterrupt
            arrived = self.fail[call]
            usage = Usage(prompt_tokens=arrived, total_tokens=arrived, requests=1)
            e = pc.APIError("boom")
            filled = np.arange(len(texts)) < arrived
            e.partial = pc.PartialResult(np.where(filled[:, None], rows, 0), filled, usage)
            raise e
        usage = Usage(prompt_tokens=len(texts), total_tokens=len(texts), requests=1)
        return Embeddings(rows, model, dimensions, encoding_format, bitorder, usage)


def test_resumed_embed_usage_sums_every_run(tmp_path):
    """meta.json's usage is the sum over all runs: the chunks of a failed run
    (and the rows that run kept from its failing chunk), of a killed run, and
    of the run that commits."""
    from pplx_codec import pipelines
    from pplx_codec.corpus import Source

    texts = [str(i) for i in range(300)]
    src = Source(texts, "t.txt", "sha-of-texts")
    out = tmp_path / "out"
    opts = dict(model="pplx-embed-v1-0.6b", dimensions=128, encodings=("int8",), chunk=100, progress=False)
    with pytest.raises(pc.APIError):   # chunk 0: 100 tokens; chunk 1 fails after 40 rows: 40 tokens
        pipelines.embed_corpus(FakeClient({1: 40}), src, str(out), **opts)
    # only the rows still missing are sent again (each text is paid for once): rows 140-239, 100 tokens; killed
    with pytest.raises(KeyboardInterrupt):
        pipelines.embed_corpus(FakeClient({1: None}), src, str(out), **opts)
    report = pipelines.embed_corpus(FakeClient(), src, str(out), **opts)   # rows 240-299: 60 tokens
    assert (report.usage.total_tokens, report.usage.requests) == (60, 1)   # this run's
    s = store.load(out)
    assert s.meta["usage"]["total_tokens"] == s.meta["usage"]["prompt_tokens"] == 300
    assert s.meta["usage"]["requests"] == 4 and s.meta["resumed"] is True
    np.testing.assert_array_equal(s.int8[:, 0], np.arange(300) % 100)


# --- Arrow / Parquet ---------------------------------------------------------------


def _buffer_view(table, column):
    chunk = table.column(column).chunks[0]
    return np.frombuffer(chunk.buffers()[1], np.uint8)


@pytest.mark.parametrize("bitorder", ["little", "big"])
@pytest.mark.parametrize("encodings", [("int8",), ("binary",), ("int8", "binary")])
def test_arrow_round_trip(tmp_path, encodings, bitorder):
    v, c = rows()
    codes = c if bitorder == "little" else pc.reverse_bitorder(c)
    s = store.save(tmp_path / "s", int8=v if "int8" in encodings else None,
                   binary=codes if "binary" in encodings else None, bitorder=bitorder,
                   meta={"model": "pplx-embed-v1-4b", "source": "x"}, texts=texts_for(150, utf8=True))
    t = store.to_arrow(s)
    assert t.column_names == list(encodings) + ["text"] and t.num_rows == 150
    assert json.loads(t.schema.metadata[b"pplx-codec"]) == s.meta
    for enc in encodings:
        f = t.schema.field(enc)
        assert f.type == pa.binary(D if enc == "int8" else D // 8)
        assert f.metadata[b"encoding"] == enc.encode() and f.metadata[b"dimensions"] == str(D).encode()
        assert (f.metadata.get(b"bitorder") == bitorder.encode()) is (enc == "binary")
        assert np.shares_memory(_buffer_view(t, enc), getattr(s, enc))   # on the memmap, not a copy
    back = store.from_arrow(t)
    assert back.meta == s.meta and back.path is None and list(back.texts) == texts_for(150, utf8=True)
    for enc in encodings:
        np.testing.assert_array_equal(getattr(back, enc), getattr(s, enc))
        assert np.shares_memory(getattr(back, enc), _buffer_view(t, enc))
        assert not getattr(back, enc).flags.writeable

    store.write_parquet(tmp_path / "s.parquet", s)
    r = store.read_parquet(tmp_path / "s.parquet")
    assert r.meta == s.meta and r.bitorder == bitorder and r.texts[-1] == texts_for(150, utf8=True)[-1]
    assert r.texts[100:103] == texts_for(150, utf8=True)[100:103]
    for enc in encodings:
        np.testing.assert_array_equal(getattr(r, enc), getattr(s, enc))
    assert leftovers(tmp_path) == []


def test_arrow_slices_chunks_and_arrays(tmp_path):
    v, c = rows(100)
    t = store.to_arrow(int8=v, binary=c, meta={"model": "m"})
    assert np.shares_memory(_buffer_view(t, "int8"), v)
    part = store.from_arrow(t.slice(30, 20))          # a slice: the array offset is honoured
    np.testing.assert_array_equal(part.int8, v[30:50])
    np.testing.assert_array_equal(part.binary, c[30:50])
    assert np.shares_memory(part.int8, v) and part.count == 20 and part.meta["model"] == "m"
    two = pa.concat_tables([t.slice(0, 60), t.slice(60)])
    assert two.column("int8").num_chunks == 2
    joined = store.from_arrow(two)                   # several chunks: concatenated, one copy
    np.testing.assert_array_equal(joined.int8, v)
    assert not np.shares_memory(joined.int8, v) and not joined.int8.flags.writeable
    batch = store.from_arrow(t.to_batches()[0])
    np.testing.assert_array_equal(batch.binary, c)
    strided = store.to_arrow(int8=v[::2])            # rows with gaps are copied once
    np.testing.assert_array_equal(store.from_arrow(strided).int8, v[::2])
    e = store.from_arrow(store.to_arrow(int8=v[:0]))
    assert e.int8.shape == (0, D) and e.count == 0
    direct = pc.Index(D)
    direct.add(v, codes=c)
    np.testing.assert_array_equal(store.from_arrow(t).index().search(v[:3], 5)[1], direct.search(v[:3], 5)[1])


def test_arrow_without_metadata_needs_bitorder(tmp_path):
    v, c = rows(50)
    t = pa.table({"binary": pa.FixedSizeBinaryArray.from_buffers(pa.binary(D // 8), 50, [None, pa.py_buffer(c)]),
                  "int8": pa.FixedSizeBinaryArray.from_buffers(pa.binary(D), 50, [None, pa.py_buffer(v)])})
    with pytest.raises(ValueError, match="no bitorder metadata: pass bitorder="):
        store.from_arrow(t)
    s = store.from_arrow(t, bitorder="little")
    assert s.bitorder == "little" and s.encodings == ("int8", "binary") and s.meta["model"] is None
    np.testing.assert_array_equal(s.binary, c)
    assert store.from_arrow(t.select(["int8"])).encodings == ("int8",)    # no codes: no order needed
    tagged = store.to_arrow(binary=c, bitorder="big")
    assert store.from_arrow(tagged, bitorder="big").bitorder == "big"
    with pytest.raises(ValueError, match="contradicts the table's metadata"):
        store.from_arrow(tagged, bitorder="little")
    pq_path = tmp_path / "plain.parquet"
    import pyarrow.parquet as pq
    pq.write_table(t, pq_path)
    with pytest.raises(ValueError, match="no bitorder metadata"):
        store.read_parquet(pq_path)
    assert store.read_parquet(pq_path, bitorder="big").bitorder == "big"


def test_arrow_bad_tables(tmp_path):
    v, c = rows(10)
    good = store.to_arrow(int8=v, binary=c, texts=[str(i) for i in range(10)])
    with pytest.raises(TypeError, match="pyarrow.Table"):
        store.from_arrow({"int8": v})
    with pytest.raises(ValueError, match="no 'int8' or 'binary' column"):
        store.from_arrow(good.select(["text"]))
    with pytest.raises(TypeError, match="fixed_size_binary"):
        store.from_arrow(pa.table({"int8": pa.array([b"ab"] * 10, pa.binary())}))
    with pytest.raises(ValueError, match="null rows"):
        store.from_arrow(pa.table({"int8": pa.array([b"a" * D] * 9 + [None], pa.binary(D))}))
    with pytest.raises(TypeError, match="column 'text' must be strings"):
        store.from_arrow(good.set_column(2, "text", pa.array(range(10))))
    lying = good.schema.set(0, good.schema.field("int8").with_metadata({"dimensions": "256"}))
    with pytest.raises(ValueError, match="says dimensions=256 but holds 128"):
        store.from_arrow(good.cast(lying))
    with pytest.raises(ValueError, match="not JSON"):
        store.from_arrow(good.replace_schema_metadata({b"pplx-codec": b"{"}))
    with pytest.raises(ValueError, match="int8 has 10 rows but binary has 9"):
        store.to_arrow(int8=v, binary=c[:9])
    with pytest.raises(TypeError, match=r"texts\[3\] must be str"):
        store.to_arrow(int8=v, texts=["a"] * 3 + [3] + ["a"] * 6)
    with pytest.raises(ValueError, match=r"texts\[9\] is not valid Unicode"):
        store.to_arrow(int8=v, texts=["a"] * 9 + ["lone \ud800"])
    with pytest.raises(FileNotFoundError):
        store.read_parquet(tmp_path / "none.parquet")


# --- faiss / usearch ----------------------------------------------------------------


def _same_neighbours(D_peer, I_peer, D_ours, I_ours, tol=0.0):
    """Equal sorted distance lists; equal index sets strictly inside the k-th
    distance (ties at the boundary may be cut differently)."""
    np.testing.assert_allclose(np.sort(D_peer, axis=1), np.sort(D_ours, axis=1), atol=tol, rtol=0)
    for dp, ip, do, io in zip(D_peer, I_peer, D_ours, I_ours, strict=True):
        kth = do.max()
        assert set(ip[dp < kth - tol].tolist()) == set(io[do < kth - tol].tolist())


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((20, 256)).astype(np.float32)
    x = centers[rng.integers(0, 20, 3000)] + 0.8 * rng.standard_normal((3000, 256)).astype(np.float32)
    v = np.clip(np.round(np.tanh(x / 2) * 127), -128, 127).astype(np.int8)
    return v, pc.pack_bits(v, "little"), v[rng.choice(3000, 25, replace=False)]


@pytest.mark.parametrize("bitorder", ["little", "big"])
def test_faiss_binary_matches_our_search(corpus, bitorder):
    _, c, q = corpus
    codes = c if bitorder == "little" else pc.reverse_bitorder(c)
    index = store.to_faiss_binary_index(codes, bitorder)
    assert isinstance(index, faiss.IndexBinaryFlat) and index.ntotal == 3000 and index.d == 256
    msb = pc.reverse_bitorder(c)
    np.testing.assert_array_equal(faiss.vector_to_array(index.xb).reshape(3000, 32), msb)   # held MSB first
    qc = pc.pack_bits(q, "little")
    Dp, Ip = index.search(pc.reverse_bitorder(qc), 20)
    Do, Io = pc.search_binary(qc, c, 20)
    _same_neighbours(Dp, Ip, Do, Io)
    Dn, _ = index.search(np.packbits(q > 0, axis=1), 1)    # numpy's own (MSB) packing finds the rows
    assert (Dn[:, 0] == 0).all()


@pytest.mark.parametrize("bitorder", ["little", "big"])
def test_usearch_binary_matches_our_search(corpus, bitorder):
    _, c, q = corpus
    codes = c if bitorder == "little" else pc.reverse_bitorder(c)
    index = store.to_usearch(codes=codes, bitorder=bitorder)
    assert len(index) == 3000 and index.ndim == 256 and str(index.metric).endswith("Hamming")
    np.testing.assert_array_equal(index.get(123), pc.reverse_bitorder(c[123]))
    qc = pc.pack_bits(q, "little")
    m = index.search(pc.reverse_bitorder(qc), 20, exact=True)
    Do, Io = pc.search_binary(qc, c, 20)
    _same_neighbours(m.distances, m.keys.astype(np.int64), Do.astype(np.float32), Io)
    m1 = index.search(np.packbits(q > 0, axis=1), 1, exact=True)
    assert (m1.distances[:, 0] == 0).all()


def test_usearch_int8_matches_our_search(corpus):
    v, _, q = corpus
    index = store.to_usearch(int8=v)
    assert len(index) == 3000 and str(index.metric).endswith("Cos") and str(index.dtype).endswith("I8")
    m = index.search(q, 20, exact=True)
    S, I = pc.search_int8(q, v, 20)
    _same_neighbours(m.distances, m.keys.astype(np.int64), 1 - S, I, tol=1e-5)


def test_exporters_bad_input(corpus):
    v, c, _ = corpus
    with pytest.raises(ValueError, match="exactly one"):
        store.to_usearch()
    with pytest.raises(ValueError, match="exactly one"):
        store.to_usearch(codes=c, int8=v, bitorder="little")
    with pytest.raises(ValueError, match="bitorder is required"):
        store.to_usearch(codes=c)
    with pytest.raises(ValueError, match="bitorder"):
        store.to_faiss_binary_index(c, "lsb")
    with pytest.raises(TypeError, match="packed uint8 codes"):
        store.to_faiss_binary_index(v, "little")
    with pytest.raises(TypeError, match="int8 vectors"):
        store.to_usearch(int8=v.astype(np.float32))
