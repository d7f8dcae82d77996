"""Each kernel family on its own path (issue 25): the default table, the calibration that
chooses it, its cache, and that every path computes the same as serial, bit for bit."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pplx_codec as pc
from helpers import raises_exactly
from pplx_codec import _calibrate, _dispatch

FAMILIES = list(_dispatch.FAMILIES)
DETECTED = pc.capabilities()["detected"]
NOT_FORCED = os.environ.get("PPLX_CODEC_ISA", "") in ("", "auto")

# what a fresh process reports about its default paths
REPORT = """
import json, pplx_codec as pc
from pplx_codec import _calibrate
state = _calibrate.state()
print(json.dumps({"paths": pc.capabilities()["paths"], "state": state}))
"""


def fresh(cache_dir, **env):
    """A new interpreter importing the package with the cache in ``cache_dir``; its report."""
    e = {k: v for k, v in os.environ.items() if k not in ("PPLX_CODEC_ISA", "PPLX_CODEC_CALIBRATE")}
    e.update({"PPLX_CODEC_CACHE_DIR": str(cache_dir), **env})
    r = subprocess.run([sys.executable, "-c", REPORT], env=e, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def picks(report):
    return {f: e["path"] for f, e in report["paths"].items()}


# ---------------------------------------------------------------- the rule


def test_choose_keeps_the_preferred_path_on_a_near_tie():
    times = {"serial": [10.0, 10.0], "avx2": [1.02, 0.99], "avx512": [1.0, 1.0]}
    path, rel = _calibrate.choose(times, "avx512")
    assert path == "avx512"
    assert rel["avx512"] == 1.0 and rel["serial"] == pytest.approx(10.0)
    assert rel["avx2"] == pytest.approx((1.02 * 0.99) ** 0.5)


def test_choose_takes_a_path_faster_by_more_than_the_margin():
    # faster on one workload, slower on the other: the geometric mean decides
    path, rel = _calibrate.choose({"avx2": [0.8, 1.25], "avx512": [1.0, 1.0]}, "avx512")
    assert (path, rel["avx2"]) == ("avx512", pytest.approx(1.0))
    path, rel = _calibrate.choose({"avx2": [0.5, 1.5], "avx512": [1.0, 1.0]}, "avx512")
    assert (path, rel["avx2"]) == ("avx2", pytest.approx(0.75 ** 0.5))
    path, _ = _calibrate.choose({"avx2": [0.9, 0.9], "avx512": [1.0, 1.0]}, "avx512")
    assert path == "avx2"
    at_margin = 1 - _calibrate.MARGIN
    path, _ = _calibrate.choose({"avx2": [at_margin, at_margin], "avx512": [1.0, 1.0]}, "avx512")
    assert path == "avx512"  # exactly at the margin is still a tie


def test_choose_survives_a_zero_clock_reading():
    path, rel = _calibrate.choose({"avx2": [0.0, 1.0], "avx512": [1.0, 1.0]}, "avx512")
    assert path == "avx2" and 0 < rel["avx2"] < 0.01


def test_measure_is_bounded_by_its_budget():
    record = _calibrate.measure(budget=0.0)
    assert record["rounds"] == _calibrate.MIN_ROUNDS
    record = _calibrate.measure()
    assert _calibrate.MIN_ROUNDS <= record["rounds"] <= _calibrate.ROUNDS
    for family, entry in record["families"].items():
        assert entry["candidates"] == _dispatch.candidates(family)
        assert entry["path"] in entry["candidates"]
        if len(entry["candidates"]) > 1:
            assert set(entry["relative"]) == set(entry["candidates"])
            assert entry["relative"][entry["candidates"][-1]] == 1.0
            assert all(r > 0 for r in entry["relative"].values())


@pytest.mark.parametrize("family", FAMILIES)
def test_measure_refuses_what_it_does_not_have(family):
    n = _dispatch.shapes(family)
    assert n >= 2
    with raises_exactly(ValueError, f"{family} has workloads 0..{n - 1}, not {n}"):
        _dispatch.measure(family, "serial", n)
    with raises_exactly(ValueError, f"{family} has workloads 0..{n - 1}, not -1"):
        _dispatch.measure(family, "serial", -1)
    with raises_exactly(ValueError, f"unknown kernel family 'nope'; known: {FAMILIES}"):
        _dispatch.measure("nope", "serial", 0)
    assert _dispatch.measure(family, "serial", 0) > 0


# ---------------------------------------------------------------- the default table


def test_candidates_are_distinct_code_lowest_tier_first():
    best = [n for n in DETECTED if n not in pc.capabilities()["opt_in"]][-1]
    for family in FAMILIES:
        cands = _dispatch.candidates(family)
        assert cands[0] == "serial" and len(set(cands)) == len(cands)
        assert [c for c in DETECTED if c in cands] == cands
        assert cands[-1] == _dispatch.paths(best)[family]


def test_set_paths_refuses_a_path_that_is_not_a_candidate():
    with raises_exactly(ValueError, f"unknown kernel family 'nope'; known: {FAMILIES}"):
        _dispatch.set_paths({"nope": "serial"})
    if "amx" in pc.capabilities()["opt_in"]:  # opt-in tiers are never a default path
        with pytest.raises(ValueError, match="^'amx' is not a path of the dot kernels here"):
            _dispatch.set_paths({"dot": "amx"})
    with raises_exactly(ValueError, f"'bogus' is not a path of the json kernels here; "
                                    f"candidates: {_dispatch.candidates('json')}"):
        _dispatch.set_paths({"json": "bogus"})


@pytest.fixture
def restore_paths():
    before = _dispatch.paths("auto")
    yield
    _dispatch.set_paths(before)
    assert _dispatch.paths("auto") == before


def test_set_paths_switches_one_family(restore_paths):
    before = _dispatch.paths("auto")
    with pc.use_isa("auto"):
        _dispatch.set_paths({"hamming": "serial"})
        assert _dispatch.paths() == {**before, "hamming": "serial"}
        caps = pc.capabilities()
        assert caps["active"] == "auto" and caps["paths"]["hamming"]["path"] == "serial"
        with pc.use_isa(DETECTED[-1]):  # forcing a tier does not change the default table
            assert pc.capabilities()["paths"]["hamming"] == {"path": _dispatch.paths(DETECTED[-1])["hamming"],
                                                             "why": "forced"}
        assert _dispatch.paths()["hamming"] == "serial"


@pytest.mark.skipif(not NOT_FORCED, reason="PPLX_CODEC_ISA forces one tier in this run: no default paths")
def test_this_process_reports_why():
    state = _calibrate.state()
    caps = pc.capabilities()
    assert caps["active"] == "auto"
    for family, entry in caps["paths"].items():
        several = len(_dispatch.candidates(family)) > 1
        assert entry["why"] == ("measured" if several and state["why"] == "measured" else "detected"), family


# ---------------------------------------------------------------- the calibration at import and its cache


def test_first_import_measures_and_caches_then_reads_the_cache(tmp_path):
    first = fresh(tmp_path)
    files = list(tmp_path.glob("kernel-paths-*.json"))
    assert len(files) == 1
    assert first["state"]["why"] == "measured" and first["state"]["cache_error"] is None
    assert first["state"]["source"] == f"measured now, cached in {files[0]}"
    cached = json.loads(files[0].read_text())
    assert cached["record"] == first["state"]["record"]
    assert cached["key"]["cpu"] and cached["key"]["detected"] == DETECTED
    second = fresh(tmp_path)
    assert second["state"]["source"] == f"cached in {files[0]}"
    assert second["state"]["record"] == first["state"]["record"] and picks(second) == picks(first)
    for family, entry in first["paths"].items():
        assert entry["path"] == first["state"]["record"]["families"][family]["path"]


def test_calibration_off_takes_the_best_tier_and_writes_nothing(tmp_path):
    best = [n for n in DETECTED if n not in pc.capabilities()["opt_in"]][-1]
    report = fresh(tmp_path, PPLX_CODEC_CALIBRATE="0")
    assert picks(report) == _dispatch.paths(best)
    assert {e["why"] for e in report["paths"].values()} == {"detected"}
    assert report["state"]["source"] == "PPLX_CODEC_CALIBRATE=0"
    assert list(tmp_path.iterdir()) == []


def test_forcing_a_tier_skips_the_calibration(tmp_path):
    report = fresh(tmp_path, PPLX_CODEC_ISA="serial")
    assert {e["why"] for e in report["paths"].values()} == {"forced"}
    assert set(picks(report).values()) == {"serial"}
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["garbage", "empty", "list", "other key", "unknown path", "missing family"])
def test_a_damaged_cache_is_measured_again(tmp_path, damage):
    fresh(tmp_path)
    (file,) = tmp_path.glob("kernel-paths-*.json")
    data = json.loads(file.read_text())
    if damage == "garbage":
        file.write_bytes(b"\xff\xfe{not json")
    elif damage == "empty":
        file.write_text("")
    elif damage == "list":
        file.write_text("[1, 2]")
    elif damage == "other key":
        data["key"]["version"] = "0.0.0-other"
        file.write_text(json.dumps(data))
    elif damage == "unknown path":
        data["record"]["families"]["hamming"]["path"] = "avx4096"
        file.write_text(json.dumps(data))
    else:
        del data["record"]["families"]
        file.write_text(json.dumps(data))
    report = fresh(tmp_path)
    assert report["state"]["source"].startswith("measured now, cached in ")
    assert json.loads(file.read_text())["record"] == report["state"]["record"]


def test_an_unwritable_cache_directory_costs_time_not_correctness(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory would be")
    report = fresh(blocker)
    state = report["state"]
    assert state["why"] == "measured" and state["source"] == "measured now"
    assert state["cache_error"].startswith(("FileExistsError", "NotADirectoryError"))
    e = {**os.environ, "PPLX_CODEC_CACHE_DIR": str(blocker)}
    e.pop("PPLX_CODEC_ISA", None)
    r = subprocess.run([sys.executable, "-m", "pplx_codec", "info"], env=e, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "not cached (" in r.stdout and "the next process measures again" in r.stdout


def test_the_same_paths_on_repeated_calibrations(tmp_path):
    """Three calibrations from scratch choose the same path for every family (a near-tie keeps
    the preferred path, so noise cannot flip a choice unless two paths sit at the margin)."""
    reports = [fresh(tmp_path / str(i)) for i in range(3)]
    chosen = [picks(r) for r in reports]
    relative = [{f: e["relative"] for f, e in r["state"]["record"]["families"].items()} for r in reports]
    assert chosen[0] == chosen[1] == chosen[2], relative


def test_info_shows_each_familys_path_and_why(tmp_path):
    e = {k: v for k, v in os.environ.items() if k not in ("PPLX_CODEC_ISA", "PPLX_CODEC_CALIBRATE")}
    e["PPLX_CODEC_CACHE_DIR"] = str(tmp_path)

    def info(*args, **env):
        r = subprocess.run([sys.executable, "-m", "pplx_codec", "info", *args], env={**e, **env},
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout.splitlines()

    out = info()
    (file,) = tmp_path.glob("kernel-paths-*.json")
    record = json.loads(file.read_text())["record"]
    assert "isa active:   auto" in out
    at = next(i for i, line in enumerate(out) if line.startswith("kernel paths: "))
    assert out[at].startswith("kernel paths: each family on its fastest path, measured on this CPU model in ")
    assert out[at].endswith(f"; measured now, cached in {file}")
    for i, family in enumerate(FAMILIES):
        words = out[at + 1 + i].split()
        entry = record["families"][family]
        assert words[:2] == [family, entry["path"]]
        assert " ".join(words[2:5]) == ("measured fastest here" if len(entry["candidates"]) > 1
                                        else "the best tier CPUID")
    assert info()[at].endswith(f"; cached in {file}")
    before = file.stat().st_mtime_ns
    out = info("--calibrate", PPLX_CODEC_CALIBRATE="0")  # an explicit request measures whatever the setting
    assert out[at].endswith(f"; measured now, cached in {file}") and file.stat().st_mtime_ns != before
    forced = info(PPLX_CODEC_ISA="serial")
    assert forced[at] == "kernel paths: every family on serial (forced by PPLX_CODEC_ISA=serial; 'auto' is the default)"
    assert [line.split() for line in forced[at + 1:at + 1 + len(FAMILIES)]] == [[f, "serial", "forced"]
                                                                                  for f in FAMILIES]


# ---------------------------------------------------------------- every path computes the same


def every_table():
    """(name, entered) for each one-tier table this CPU runs and, for each family, the default
    table with that family on each of its candidates (the mixes the calibration may choose)."""
    yield from ((tier, lambda tier=tier: pc.use_isa(tier)) for tier in DETECTED)
    for family in FAMILIES:
        for path in _dispatch.candidates(family):
            yield f"auto+{family}={path}", lambda family=family, path=path: _mixed({family: path})


class _mixed:
    def __init__(self, picks):
        self.picks, self.before = picks, _dispatch.paths("auto")

    def __enter__(self):
        self.isa = pc.use_isa("auto")
        self.isa.__enter__()
        _dispatch.set_paths(self.picks)

    def __exit__(self, *exc):
        _dispatch.set_paths(self.before)
        return self.isa.__exit__(*exc)


def everything(rng, n, dim):
    """One result of every public kernel on random rows with repeated rows and ties."""
    x = rng.integers(-128, 128, (n, dim), dtype=np.int8)
    x[n // 2:n // 2 + 2] = x[0]  # equal rows: equal scores, ties to the lower row
    codes = pc.pack_bits(x)
    q = np.concatenate([x[:3], rng.integers(-128, 128, (2, dim), dtype=np.int8)])
    qc = pc.pack_bits(q)
    k = min(5, n)
    strings = pc.encode_int8(x)
    out = {
        "b64": pc.b64decode(pc.b64encode(x.tobytes())).tobytes(),
        "decode_int8": pc.decode_int8(strings, dim).tobytes(),
        "decode_binary": pc.decode_binary(pc.encode_binary(codes), dim).tobytes(),
        "pack": [pc.pack_bits(x, o).tobytes() for o in ("little", "big")]
                + [pc.pack_bits(x.astype(np.float32), "big").tobytes(), pc.pack_bits(x > 0).tobytes()],
        "unpack": [pc.unpack_bits(codes, dim, o, dtype=t).tobytes() for o in ("little", "big")
                   for t in (np.uint8, np.int8, np.float32)],
        "reverse": pc.reverse_bitorder(codes).tobytes(),
        "norms": pc.norms(x).tobytes(),
        "float": pc.to_float32(x).tobytes(),
        "hamming": pc.hamming_matrix(qc, codes).tobytes(),
        "dot": pc.dot_matrix(q, x).tobytes(),
        "search_binary": [a.tobytes() for a in pc.search_binary(qc, codes, k)],
        "search_int8": [a.tobytes() for a in pc.search_int8(q, x, k)]
                       + [a.tobytes() for a in pc.search_int8(q, x, k, metric="dot")],
    }
    body = json.dumps({"object": "list", "model": "pplx-embed-v1-0.6b",
                       "data": [{"object": "embedding", "index": i, "embedding": s} for i, s in enumerate(strings)],
                       "usage": {"prompt_tokens": 1, "total_tokens": 1}}).encode()
    rows = np.zeros((n, dim), np.int8)
    dec = pc.StreamDecoder(rows)
    for at in range(0, len(body), 97):
        dec.feed(body[at:at + 97])
    dec.finish()
    out["stream"] = rows.tobytes()
    return out


@given(seed=st.integers(0, 2**32 - 1), n=st.sampled_from([1, 2, 5, 9, 17, 33, 65, 130]),
       dim=st.sampled_from([8, 16, 24, 64, 128, 136, 256, 1024]))
def test_every_path_computes_what_serial_computes(seed, n, dim):
    with pc.use_isa("serial"):
        want = everything(np.random.default_rng(seed), n, dim)
    for name, enter in every_table():
        with enter():
            got = everything(np.random.default_rng(seed), n, dim)
        assert got == want, name


def test_switching_paths_while_searches_run_never_changes_an_answer(restore_paths):
    """Publishing a new default table while other threads search: each search runs on one table
    (the pointer it read when it started), so every answer is exact whatever was switched."""
    rng = np.random.default_rng(25)
    x = rng.integers(-128, 128, (3000, 256), dtype=np.int8)
    codes, q = pc.pack_bits(x), x[:20]
    with pc.use_isa("serial"):
        want_i8 = [a.tobytes() for a in pc.search_int8(q, x, 10)]
        want_bin = [a.tobytes() for a in pc.search_binary(pc.pack_bits(q), codes, 10)]
    stop, wrong = threading.Event(), []

    def search():
        while not stop.is_set():
            if [a.tobytes() for a in pc.search_int8(q, x, 10, threads=2)] != want_i8:
                wrong.append("int8")
            if [a.tobytes() for a in pc.search_binary(pc.pack_bits(q), codes, 10)] != want_bin:
                wrong.append("binary")

    with pc.use_isa("auto"):
        workers = [threading.Thread(target=search) for _ in range(2)]
        for w in workers:
            w.start()
        try:
            for i in range(200):
                _dispatch.set_paths({f: c[i % len(c)] for f in ("dot", "hamming", "bits")
                                     for c in [_dispatch.candidates(f)]})
        finally:
            stop.set()
            for w in workers:
                w.join()
    assert wrong == []


def test_cache_dir_follows_the_platform(monkeypatch, tmp_path):
    monkeypatch.setenv("PPLX_CODEC_CACHE_DIR", str(tmp_path / "here"))
    assert _calibrate.cache_dir() == tmp_path / "here"
    monkeypatch.delenv("PPLX_CODEC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert _calibrate.cache_dir() == tmp_path / "xdg" / "pplx-codec"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert _calibrate.cache_dir().name in ("pplx-codec", "Cache")
    assert Path.home() in _calibrate.cache_dir().parents
