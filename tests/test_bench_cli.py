"""``pplx-codec bench``: the hardware it reports, ``--isa`` (ours under several
tiers side by side), ``--json`` and ``bench compare``.

The runs use a tiny benchmark family (real kernels and real peers on small
inputs, one retime at most) so that each takes seconds; the real families
are the same cases the benches/ tests check.  Nothing here asserts a timing:
only what ran, under which tier, and that the ratios are computed from the
medians reported.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from datetime import datetime

import numpy as np
import pytest

import pplx_codec as pc
from pplx_codec import cli
from pplx_codec.benchmarks import Case, Impl, hardware, report
from pplx_codec.benchmarks._harness import optional

CAPS = pc.capabilities()
DETECTED = CAPS["detected"]


def _tiny_batched(seen: set) -> Case:
    """A batched Hamming search (ours on 2 threads, numpy): its work is bytes popcounted, so
    our row shows its fraction of the popcount peak."""
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 256, (512, 128), dtype=np.uint8)
    q = rng.integers(0, 256, (8, 128), dtype=np.uint8)
    d = np.stack([np.bitwise_count(codes.view(np.uint64) ^ row).sum(axis=1) for row in q.view(np.uint64)])

    def ours():
        seen.add((pc.capabilities()["active"], os.environ.get("PPLX_CODEC_ISA")))
        return pc.hamming_matrix(q, codes, threads=2)

    impls = [Impl("hamming_matrix (threads=2)", ours, True, threads=2),
             Impl("numpy bitwise_count(xor).sum", lambda: np.stack([
                 np.bitwise_count(codes.view(np.uint64) ^ row).sum(axis=1) for row in q.view(np.uint64)]))]
    return Case("search", "tiny batched hamming 8 x 512 x 1024 bits", codes.nbytes, d, impls,
                check=lambda got, want: np.testing.assert_array_equal(np.asarray(got, np.int64), want),
                peak=("popcount", float(q.shape[0] * codes.nbytes)))


def _tiny_cases(seen: set, batched: bool = False) -> list[Case]:
    """Two small cases: base64 rows (ours, stdlib, pybase64) and a Hamming search (ours,
    numpy, faiss); with ``batched``, a third (``_tiny_batched``).  Our implementations record
    the tier and PPLX_CODEC_ISA they ran under."""
    missing: list[str] = []
    pybase64 = optional("pybase64", missing)
    faiss = optional("faiss", missing, "faiss-cpu")
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (16, 64), dtype=np.int8)
    strs = [base64.b64encode(r.tobytes()).decode() for r in x]

    def ours_decode():
        seen.add((pc.capabilities()["active"], os.environ.get("PPLX_CODEC_ISA")))
        return pc.decode_int8(strs, 64)

    impls = [Impl("decode_int8", ours_decode, True),
             Impl("stdlib b64decode + join",
                  lambda: np.frombuffer(b"".join(base64.b64decode(s) for s in strs), np.int8).reshape(16, 64))]
    if pybase64:
        impls.append(Impl("pybase64 per item + join", lambda: np.frombuffer(
            b"".join(pybase64.b64decode(s, validate=True) for s in strs), np.int8).reshape(16, 64)))
    out = [Case("codec", "tiny decode_int8 16 x 64", x.nbytes, x, impls, list(missing), target=("stdlib", 0.0))]

    codes = rng.integers(0, 256, (256, 16), dtype=np.uint8)
    q = codes[:1].copy()
    d = np.bitwise_count(codes.view(np.uint64) ^ q.view(np.uint64)).sum(axis=1)
    impls = [Impl("hamming", lambda: pc.hamming(q[0], codes), True),
             Impl("numpy bitwise_count(xor).sum", lambda: np.bitwise_count(codes.view(np.uint64)
                                                                           ^ q.view(np.uint64)).sum(axis=1))]
    if faiss:
        ix = faiss.IndexBinaryFlat(128)
        ix.add(codes)
        def faiss_all():
            D, I = ix.search(q, 256)
            return D[0][np.argsort(I[0])]
        impls.append(Impl("faiss IndexBinaryFlat all distances", faiss_all))
    out.append(Case("search", "tiny hamming 1 x 256 x 128 bits", codes.nbytes, d, impls, list(missing),
                    check=lambda got, want: np.testing.assert_array_equal(np.asarray(got, np.int64), want)))
    return out + ([_tiny_batched(seen)] if batched else [])


@pytest.fixture()
def tiny(monkeypatch):
    """`bench` runs the tiny family (as "codec"); returns the set of (active tier, env) our rows saw."""
    seen: set = set()
    monkeypatch.setattr("pplx_codec.benchmarks.families", lambda: {"codec": lambda quick=False: _tiny_cases(seen)})
    monkeypatch.delenv("PPLX_CODEC_ISA", raising=False)
    return seen


@pytest.fixture()
def tiny_batched(monkeypatch):
    """As ``tiny``, with the batched case: `bench` measures the compute peaks."""
    seen: set = set()
    monkeypatch.setattr("pplx_codec.benchmarks.families",
                        lambda: {"codec": lambda quick=False: _tiny_cases(seen, batched=True)})
    monkeypatch.delenv("PPLX_CODEC_ISA", raising=False)
    return seen


def _ours_is(stdout: str) -> list[str]:
    """Our rows of the table, without the "! others NN%" mark a busy machine adds."""
    return [ln.split("  ! others")[0] for ln in stdout.splitlines() if ln.startswith(" * ")]


# ----------------------------------------------------------------- the CPU, in info and bench


def test_cpu_description():
    name, flags = hardware.cpu_name(), hardware.cpu_flags()
    assert name and "\n" not in name
    assert set(flags) <= set(hardware.X86_FLAGS) | set(hardware.ARM_FLAGS)
    if "avx2" in DETECTED and os.path.exists("/proc/cpuinfo"):
        assert "avx2" in flags
    line = hardware.describe_cpu()
    assert line.startswith(name) and all(f in line for f in flags)
    m = hardware.machine()
    assert m["cpu"] == name and m["flags"] == flags and m["logical_cpus"] >= m["usable_cpus"] >= 1


def test_cpu_description_on_arm_linux(monkeypatch):
    """aarch64 Linux has no "model name": the implementer and part name the core."""
    block = {"processor": "0", "BogoMIPS": "243.75", "CPU implementer": "0x41", "CPU part": "0xd0c",
             "Features": "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
                         "dcpop asimddp ssbs"}
    monkeypatch.setattr(hardware, "_cpuinfo", lambda: [block, dict(block, processor="1")])
    monkeypatch.setattr(hardware.platform, "machine", lambda: "aarch64")
    assert hardware.cpu_name() == "Arm Neoverse-N1"
    assert hardware.cpu_flags() == ["asimd", "asimddp"]
    monkeypatch.setattr(hardware, "_cpuinfo", lambda: [dict(block, **{"CPU implementer": "0x99"})])
    assert hardware.cpu_name() == "implementer 0x99 part 0xd0c"


def test_info_names_the_cpu(capsys):
    assert cli.main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"cpu:          {hardware.describe_cpu()}" in lines
    assert any(ln.startswith("isa active:") for ln in lines)


def test_rows_name_their_peer():
    assert hardware.peer_of("faiss IndexBinaryFlat (threads=2)") == "faiss"
    assert hardware.peer_of("orjson + pybase64 per item") == "pybase64"
    assert hardware.peer_of("numkong hammings_packed (threads=2) + top-k") == "numkong"
    assert hardware.peer_of("numpy BLAS float32 matmul, normalized + top-k") == "numpy BLAS"
    assert hardware.peer_of("np.unpackbits(bitorder=little)") == "numpy"
    assert hardware.peer_of("json + base64.b64decode per item") is None
    kernels = hardware.peer_kernels(["faiss", "numkong", "simsimd", "pybase64", "numpy", "no such peer"])
    assert "no such peer" not in kernels and "numpy" in kernels
    for info in kernels.values():
        assert info["kernels"] and info["detail"]


# ----------------------------------------------------------------- argument parsing


def test_bench_and_bench_compare_parse():
    p = cli.build_parser()
    a = p.parse_args(["bench", "--quick"])
    assert a.func is cli.cmd_bench and a.quick and a.bench_action is None and a.isa is None and a.json is None
    a = p.parse_args(["bench", "--family", "codec", "--quick", "--isa", "serial", "--json", "x.json"])
    assert a.func is cli.cmd_bench and a.family == ["codec"] and a.isa == "serial" and a.json == "x.json"
    a = p.parse_args(["bench", "compare", "a.json", "b.json"])
    assert a.func is cli.cmd_bench_compare and (a.a, a.b) == ("a.json", "b.json")


def test_isa_lists():
    caps = {"compiled": ["serial", "avx2", "avx512", "amx"], "detected": ["serial", "avx2", "avx512", "amx"],
            "opt_in": ["amx"]}
    assert cli._bench_tiers("serial,avx2", caps) == ["serial", "avx2"]
    assert cli._bench_tiers(" AVX512 , serial,avx512", caps) == ["avx512", "serial"]
    # opt-in ones included, then the default table (each family on its measured path)
    assert cli._bench_tiers("all", caps) == ["serial", "avx2", "avx512", "amx", "auto"]
    assert cli._bench_tiers("amx", caps) == ["amx"]
    assert cli._bench_tiers("avx2,all", caps) == ["avx2", "serial", "avx512", "amx", "auto"]
    assert cli._bench_tiers("auto,avx2,AUTO", caps) == ["auto", "avx2"]
    assert cli._bench_tiers("all", CAPS) == DETECTED + ["auto"]
    for text, words in (("avx512", "this CPU does not support it"), ("neon", "not compiled into this build"),
                        ("sse4", "unknown tier"), ("all,sse4", "unknown tier"), (",", "name at least one tier")):
        caps = {"compiled": ["serial", "avx2", "avx512"], "detected": ["serial", "avx2"], "opt_in": []}
        with pytest.raises(cli._Refused, match=words):
            cli._bench_tiers(text, caps)


def test_isa_not_detected_is_refused(tiny, capsys):
    missing = [t for t in CAPS["compiled"] if t not in DETECTED] or \
        [t for t in cli._TIERS if t not in CAPS["compiled"]]
    for tier in (missing[0], "sse9"):
        assert cli.main(["bench", "--quick", "--isa", f"serial,{tier}"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and not tiny  # refused before anything ran
        assert err.count("\n") == 1 and err.startswith(f"pplx-codec bench: --isa {tier}: "), err


# ----------------------------------------------------------------- runs


def test_isa_runs_ours_under_each_tier(tiny, tmp_path, capsys):
    if len(DETECTED) < 2:
        pytest.skip(f"one tier detected ({DETECTED[0]}): nothing to put side by side")
    tiers = DETECTED[:2]  # serial,avx2 on x86-64 with AVX2
    path = tmp_path / "run.json"
    assert cli.main(["bench", "--quick", "--isa", ",".join(tiers), "--json", str(path)]) == 0
    out = capsys.readouterr().out
    # every one of our rows ran (checked, timed) under its tier, with the env var its children see
    assert tiny == {(t, t) for t in tiers}
    assert os.environ.get("PPLX_CODEC_ISA") is None and pc.capabilities()["active"] == CAPS["active"]
    assert f"isa {', '.join(tiers)};" in out.splitlines()[0]
    assert out.splitlines()[1] == f"cpu: {hardware.describe_cpu()}"
    assert f"ours ran under {', '.join(tiers)}" in out
    ours = _ours_is(out)
    for t in tiers:
        assert f"ours {t}" in out
        assert any(f"decode_int8 [{t}]" in ln and ln.split()[-1] == t for ln in ours)
        assert any(f"hamming [{t}]" in ln for ln in ours)
        assert f"tiny decode_int8 16 x 64 [{t}]: ours / best 'stdlib'" in out
    assert f"{tiers[1]} over {tiers[0]}: decode_int8 " in out

    doc = report.load(str(path))
    assert doc["isa"]["ran"] == tiers
    for case in {r["case"] for r in doc["rows"]}:
        rows = [r for r in doc["rows"] if r["case"] == case]
        ours_rows = [r for r in rows if r["side"] == "ours"]
        assert sorted(r["tier"] for r in ours_rows) == sorted(tiers)
        best = {t: min(r["median_s"] for r in ours_rows if r["tier"] == t) for t in tiers}
        for r in rows:
            if r["side"] == "peer":
                assert r["tier"] is None and r["ours_is"].keys() == set(tiers)
                for t in tiers:
                    assert r["ours_is"][t] == pytest.approx(r["median_s"] / best[t])
        base = {r["name"]: r["median_s"] for r in ours_rows if r["tier"] == tiers[0]}
        for r in ours_rows:
            assert r["speedup_over"][tiers[0]] == pytest.approx(base[r["name"]] / r["median_s"])
    if "faiss" in doc["peer_kernels"]:
        faiss_row = next(r for r in doc["rows"] if r["name"].startswith("faiss"))
        assert faiss_row["kernels"] == doc["peer_kernels"]["faiss"]["kernels"]
        assert "  faiss " in out


def test_json_round_trip(tiny, tmp_path, capsys):
    path = tmp_path / "sub" / "run.json"
    path.parent.mkdir()
    assert cli.main(["bench", "--quick", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    active = CAPS["active"]
    # the default is today's table: our rows once, under the active tier, without a tier label
    assert tiny == {(active, None)}
    assert "ours is" in out and "[" + active + "]" not in out
    assert all(ln.split()[-1] == active for ln in _ours_is(out))
    assert out.rstrip().endswith(f"wrote {path} ({len(json.loads(path.read_text())['rows'])} rows)")
    assert [p.name for p in path.parent.iterdir()] == ["run.json"]  # no temporary file left

    doc = report.load(str(path))
    assert doc["schema"] == report.SCHEMA == 1 and doc["kind"] == "pplx-codec bench"
    assert doc["pplx_codec"] == pc.__version__ and doc["mode"] == "quick" and doc["families"] == ["codec"]
    when = datetime.fromisoformat(doc["date"].replace("Z", "+00:00"))
    assert when.utcoffset().total_seconds() == 0
    assert doc["machine"] == hardware.machine()
    assert doc["versions"]["numpy"] == np.__version__ and "faiss-cpu" in doc["versions"]
    assert {k: doc["isa"][k] for k in ("compiled", "detected", "active")} == \
        {k: CAPS[k] for k in ("compiled", "detected", "active")}
    assert doc["isa"]["ran"] == [active]
    assert any("tiny decode_int8" in v for v in doc["targets"])
    names = {(r["case"], r["name"]) for r in doc["rows"]}
    assert ("tiny decode_int8 16 x 64", "decode_int8") in names and ("tiny decode_int8 16 x 64",
                                                                     "stdlib b64decode + join") in names
    for r in doc["rows"]:
        # quick: 7 samples of a short call, fewer (3 at least) of one longer than 0.15 / 7 s; at
        # most half as many again taken while the machine was busy (the least disturbed kept)
        assert r["median_s"] > 0 and 3 <= r["samples"] <= 7 and r["loops"] >= 1
        assert r["samples"] <= r["taken"] <= r["samples"] + max(1, r["samples"] // 2)
        assert r["q1_s"] <= r["median_s"] <= r["q3_s"]
        assert r["gb_per_s"] == pytest.approx(r["nbytes"] / r["median_s"] / 1e9)
        assert r["tier"] == (active if r["side"] == "ours" else None)
        if r["side"] == "peer":
            assert list(r["ours_is"]) == [active]


def _row_line(out: str, name: str) -> str:
    """A row of the table by its implementation's label (without the "! others" mark)."""
    return next(ln for ln in out.splitlines() if ln[3:].startswith(name + " ")).split("  ! others")[0]


def _check_peaks(doc: dict, tiers: list[str]) -> dict:
    """Every tier ran: the batched case's kind (popcount), per core and on 2 threads, positive,
    the median of the 3 runs (quick) made during that case; (tier, kind, threads) -> peak."""
    from pplx_codec.benchmarks.peaks import tier_for

    real = dict.fromkeys(tier_for(t, "popcount") for t in tiers)  # auto: the tier its Hamming family runs
    peaks = {(p["tier"], p["kind"], p["threads"]): p for p in doc["peaks"]}
    assert set(peaks) == {(t, "popcount", n) for t in real for n in (1, 2)}
    for p in peaks.values():
        assert p["per_s"] > 0 and p["form"] and len(p["runs_per_s"]) == 3 and p["per_s"] in p["runs_per_s"]
        assert p["unit"] == "bytes popcounted" and p["clock"] == "thread CPU time"
    return peaks


def test_batched_rows_show_their_share_of_the_peak(tiny_batched, tmp_path, capsys):
    path = tmp_path / "run.json"
    assert cli.main(["bench", "--quick", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    active = CAPS["active"]
    doc = report.load(str(path))
    peaks = _check_peaks(doc, [active])
    from pplx_codec.benchmarks.peaks import tier_for

    active = tier_for(active, "popcount")  # the tier whose popcount peak bounds the row (auto: Hamming's path)
    lines = out.splitlines()
    at = lines.index(next(ln for ln in lines if ln.startswith("compute peaks (codec/simd/peak")))
    assert lines[at + 2].startswith("case / implementation")  # the header's one line per tier and kind
    one, two = peaks[(active, "popcount", 1)], peaks[(active, "popcount", 2)]
    assert lines[at + 1].split()[:2] == [active, "popcount"]
    assert f"{one['per_s'] / 1e9:.1f} GB/s per core" in lines[at + 1]
    assert f"{two['per_s'] / 1e9:.1f} GB/s on 2 threads" in lines[at + 1]
    row = next(r for r in doc["rows"] if r["case"].startswith("tiny batched") and r["side"] == "ours")
    want = row["peak"]["work"] / row["median_s"] / peaks[(active, "popcount", 2)]["per_s"]
    assert row["peak"] == {"kind": "popcount", "tier": active, "threads": 2, "work": 8 * 512 * 128.0,
                           "fraction": pytest.approx(want)}
    assert _row_line(out, "hamming_matrix (threads=2)").endswith(f"  {want:.0%} of {active} popcount peak (2 threads)")
    # only our rows of the batched case have a fraction
    assert [r["name"] for r in doc["rows"] if "peak" in r] == ["hamming_matrix (threads=2)"]
    assert out.count(" peak (") == 1 and "N% of <tier> <kind> peak = " in out


def test_each_tier_row_against_its_own_peak(tiny_batched, tmp_path, capsys):
    if len(DETECTED) < 2:
        pytest.skip(f"one tier detected ({DETECTED[0]}): nothing to put side by side")
    tiers = DETECTED[:2]
    path = tmp_path / "run.json"
    assert cli.main(["bench", "--quick", "--isa", ",".join(tiers), "--json", str(path)]) == 0
    out = capsys.readouterr().out
    doc = report.load(str(path))
    peaks = _check_peaks(doc, tiers)
    for t in tiers:
        row = next(r for r in doc["rows"] if r["case"].startswith("tiny batched") and r["tier"] == t)
        frac = row["peak"]["work"] / row["median_s"] / peaks[(t, "popcount", 2)]["per_s"]
        assert row["peak"]["tier"] == t and row["peak"]["fraction"] == pytest.approx(frac)
        assert _row_line(out, f"hamming_matrix (threads=2) [{t}]").endswith(f"of {t} popcount peak (2 threads)")


def test_no_peaks_without_a_batched_case(tiny, tmp_path, capsys):
    path = tmp_path / "run.json"
    assert cli.main(["bench", "--quick", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "compute peaks" not in out and " peak (" not in out and report.load(str(path))["peaks"] == []


def test_every_row_shows_its_spread(tiny, tmp_path, capsys):
    path = tmp_path / "run.json"
    assert cli.main(["bench", "--quick", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    header = next(ln for ln in out.splitlines() if ln.startswith("case / implementation"))
    assert header.split()[3:6] == ["median", "iqr", "GB/s"]
    assert "iqr = inter-quartile range / median" in out
    for r in report.load(str(path))["rows"]:  # (the tiny cases' row names are unique)
        iqr = (r["q3_s"] - r["q1_s"]) / r["median_s"]
        line = _row_line(out, r["name"]).split()
        assert line[line.index("us" if r["median_s"] < 1e-3 else "ms") + 1] == f"{iqr:.1%}"


def test_json_target_refused_before_running(tiny, tmp_path, capsys):
    for target in (tmp_path / "no" / "x.json", tmp_path):
        assert cli.main(["bench", "--quick", "--json", str(target)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and not tiny and err.startswith(f"pplx-codec bench: cannot write --json {target}")


# ----------------------------------------------------------------- compare


def _row(doc, case_prefix, name):
    return next(r for r in doc["rows"] if r["case"].startswith(case_prefix) and r["name"] == name)


def _line(out: str, name: str) -> list[str]:
    return next(ln for ln in out.splitlines() if ln[3:].startswith(name + " ")).split()


def test_compare_two_runs(tiny, tmp_path, capsys):
    a_path, b_path = tmp_path / "a.json", tmp_path / "b.json"
    assert cli.main(["bench", "--quick", "--json", str(a_path)]) == 0
    capsys.readouterr()
    a = json.loads(a_path.read_text())
    # B: "another machine": our rows under another tier and twice as fast, the stdlib row
    # 4x slower, numpy's row gone, one row B alone has
    b = json.loads(a_path.read_text())
    b["machine"]["cpu"] = "Some Other CPU"
    b["date"] = "2030-01-02T03:04:05Z"
    # a tier other than the one A ran, whichever that was (serial, avx2, avx512, neon, ...)
    a_tier = _row(a, "tiny decode_int8", "decode_int8")["tier"]
    other = "neon" if a_tier != "neon" else "serial"
    for r in b["rows"]:
        if r["side"] == "ours":
            r["median_s"] /= 2
            r["tier"] = other
        elif r["name"] == "stdlib b64decode + join":
            r["median_s"] *= 4
    b["rows"] = [r for r in b["rows"] if not r["name"].startswith("numpy")]
    b["rows"].append(dict(_row(a, "tiny decode_int8", "stdlib b64decode + join"), name="only in b", median_s=1e-3))
    b_path.write_text(json.dumps(b))

    assert cli.main(["bench", "compare", str(a_path), str(b_path)]) == 0
    out = capsys.readouterr().out
    assert f"A: {a_path}: pplx-codec {pc.__version__} (quick), {a['date']}" in out
    assert "B: " in out and "cpu Some Other CPU" in out and "2030-01-02T03:04:05Z" in out
    ours = _line(out, "decode_int8")
    assert a_tier == CAPS["active"] and ours[2:5] == [a_tier, "->", other] and ours[-1] == "2.00x"
    assert _line(out, "hamming")[-1] == "2.00x"
    assert _line(out, "stdlib b64decode + join")[-1] == "0.25x"
    assert _line(out, "numpy bitwise_count(xor).sum")[-3:] == ["only", "in", "A"] and out.count("only in A") == 1
    assert _line(out, "only in b")[-3:] == ["only", "in", "B"]
    assert "geometric mean B/A speed, our rows: 2.00x over 2 rows" in out
    assert "rows in one file only: A 1, B 1" in out

    # the same file twice: every row matches itself, speed 1
    assert cli.main(["bench", "compare", str(a_path), str(a_path)]) == 0
    out = capsys.readouterr().out
    assert "only in" not in out and "geometric mean B/A speed, our rows: 1.00x" in out


@pytest.mark.parametrize(("content", "words"), [
    (b"", "not JSON"),
    (b"\xff\xfe garbage", "not UTF-8"),
    (b"[1, 2]", "is not a pplx-codec bench result"),
    (b'{"schema": 1, "rows": []}', "is not a pplx-codec bench result"),
    (b'{"kind": "pplx-codec bench", "schema": 99, "rows": []}', "schema 99 is newer"),
    (b'{"kind": "pplx-codec bench", "schema": "1", "rows": []}', "bad bench schema"),
    (b'{"kind": "pplx-codec bench", "schema": 1}', "without a list of rows"),
    (b'{"kind": "pplx-codec bench", "schema": 1, "rows": [{"case": "c", "name": "n", "side": "ours"}]}',
     "row 0 has no valid 'median_s'"),
    (b'{"kind": "pplx-codec bench", "schema": 1, "rows": [{"case": "c", "name": "n", "side": "ours", '
     b'"median_s": 0}]}', "row 0 has median_s 0"),
])
def test_compare_refuses_what_bench_did_not_write(tmp_path, capsys, content, words):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"kind": "pplx-codec bench", "schema": 1, "rows": []}))
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    for args in ([str(bad), str(good)], [str(good), str(bad)]):
        assert cli.main(["bench", "compare", *args]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1, err
        assert err.startswith(f"pplx-codec bench compare: {bad}") and words in err, err


def test_compare_missing_file(tmp_path, capsys):
    assert cli.main(["bench", "compare", str(tmp_path / "nope.json"), str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err
    assert err == f"pplx-codec bench compare: cannot read {tmp_path / 'nope.json'}: No such file or directory\n"


# ----------------------------------------------------------------- the peers' idle thread pools

# `pplx-codec bench` as the program (argv from the command line), with one tiny case; the
# program runs itself again with the pools told to sleep, so the code must patch the family
# on every start.
_PROGRAM = """
import sys
import numpy as np
from pplx_codec import benchmarks, cli
from pplx_codec.benchmarks import Case, Impl
x = np.arange(64, dtype=np.int64)
benchmarks.families = lambda: {"codec": lambda quick=False: [
    Case("codec", "tiny sum", x.nbytes, int(x.sum()), [Impl("ours", lambda: int(x.sum()), True),
                                                       Impl("peer", lambda: int(np.sum(x)))])]}
sys.exit(cli.main())
"""


@pytest.mark.parametrize("user", [{}, {"OMP_WAIT_POLICY": "ACTIVE"}])
def test_bench_tells_idle_thread_pools_to_sleep(tmp_path, user):
    """OpenBLAS spins about 2^28 cycles after a call and OpenMP's threads spin too: in a bench of
    interleaved rows that lands in the next row's time.  The program sets both pools to sleep
    (never over a value the user gave), says so in its header, and records it in the JSON; a
    call of cli.main from Python (as the other tests here) cannot, and is left as it is."""
    env = {k: v for k, v in os.environ.items()
           if k not in hardware.QUIET_THREAD_POOLS and k != "PPLX_CODEC_BENCH_RERUN"}
    path = tmp_path / "run.json"
    run = subprocess.run([sys.executable, "-c", _PROGRAM, "bench", "--quick", "--json", str(path)],
                         env={**env, **user}, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    want = {**hardware.QUIET_THREAD_POOLS, **user}
    line = [ln for ln in run.stdout.splitlines() if ln.startswith("thread pools: ")]
    assert line == [f"thread pools: OMP_WAIT_POLICY={want['OMP_WAIT_POLICY']}, "
                    f"OPENBLAS_THREAD_TIMEOUT={want['OPENBLAS_THREAD_TIMEOUT']} "
                    + ("(idle OpenMP/OpenBLAS worker threads sleep)" if not user
                       else "(idle worker threads may spin into the next row's time)")], run.stdout
    # the first start printed nothing before running again
    assert run.stdout.count(f"pplx-codec {pc.__version__} bench") == 1
    assert report.load(str(path))["machine"]["thread_pools"] == want
