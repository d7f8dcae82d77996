"""How the bench times (benchmarks/_sampling.py) and the compute peaks it measures
(benchmarks/peaks.py over the compiled _peaks and codec/simd/peak/).

The sampler: a case's rows are timed in interleaved rounds (so a burst of load
from elsewhere falls on every row alike: issue 25's 8 MiB b64decode against
pybase64 measured 1.55x, 1.58x, 1.28x and 0.98x in four runs when each row was
timed in a block of its own), short calls get a warm-up call and more samples,
the total is bounded, disturbed rounds are replaced (at most half as many
again) and the least disturbed kept, and no garbage collection runs while
timing.  The peaks: every detected tier has both kinds, each checked against
its oracle, and a tier this CPU lacks is refused.  No timing is asserted.
"""

from __future__ import annotations

import gc
import itertools
import re
import time

import numpy as np
import pytest

import pplx_codec as pc
from helpers import raises_exactly
from pplx_codec import _peaks
from pplx_codec.benchmarks import Case, Impl, _sampling, peaks, run_cases

DETECTED = pc.capabilities()["detected"]


def _recording(name: str, log: list, seconds: float = 0.0):
    def fn():
        log.append((name, gc.isenabled()))
        if seconds:
            time.sleep(seconds)
        return 1
    return fn


def _case(*impls: Impl) -> Case:
    return Case("codec", "recorded", 1, 1, list(impls))


def test_rows_are_timed_in_interleaved_rounds_without_gc():
    log: list = []
    case = _case(Impl("a", _recording("a", log), True), Impl("b", _recording("b", log)))
    assert gc.isenabled()
    (result,) = run_cases([case], quick=True)
    assert gc.isenabled()  # restored
    # the check (GC on), then each row's calibration (2 calls), then the rounds (GC off)
    assert log[:2] == [("a", True), ("b", True)]
    timed = log[2 + 4:]
    assert timed and not any(on for _, on in timed)
    switches = sum(1 for x, y in itertools.pairwise(timed) if x[0] != y[0])
    taken = {impl.name: case.stats[impl.label]["taken"] for impl in case.impls}
    # every round takes one sample of each row (a then b, then b then a: rotated), so the rows
    # alternate once a round at least (timed in blocks, they would alternate once)
    assert taken["a"] == taken["b"] and switches >= taken["a"]
    for impl, t in result[1]:
        stats = case.stats[impl.label]
        assert stats["samples"] == 7 and stats["q1"] <= t <= stats["q3"]
        assert stats["loops"] >= _sampling.WARM_LOOPS  # a short call: loops, each after a warm-up call
        assert sum(1 for x, _ in timed if x == impl.name) == stats["taken"] * (stats["loops"] + 1)


def test_long_calls_get_fewer_samples_and_no_warm_up():
    log: list = []
    slow = Impl("slow", _recording("slow", log, 0.03), True)
    case = _case(slow, Impl("fast", _recording("fast", [])))
    run_cases([case], quick=True)
    stats = case.stats[slow.label]
    # 0.15 s of 0.03 s calls: 5 one-call samples (at least 3, at most 7), no warm-up call
    assert stats["loops"] == 1 and 3 <= stats["samples"] <= 5 and case.stats["fast"]["samples"] == 7
    assert len(log) == 1 + 2 + stats["taken"]


def test_disturbed_samples_are_replaced_and_the_quietest_kept(monkeypatch):
    flag = _sampling.OTHER_LOAD_FLAG
    loads = iter([0.5, 0.01, 0.9, 0.02, 0.03, 0.6, 0.04, 0.05, 0.06, 0.07])
    monkeypatch.setattr(_sampling, "cpu_sample", lambda: None)
    monkeypatch.setattr(_sampling, "other_load", lambda before, after: next(loads))
    monkeypatch.setattr(_sampling, "_calibrate", lambda impl, budget, repeats, least: _sampling.Series(impl, 1, 5, 7))
    (series,) = _sampling.sample_case([Impl("a", lambda: None)], 0.1, 5, 3)
    # 5 wanted: after 5 rounds only 3 were quiet, so rounds go on until 5 are (7 taken, the most)
    assert series.loads == [0.5, 0.01, 0.9, 0.02, 0.03, 0.6, 0.04]
    assert series.kept() == [0, 1, 3, 4, 6] and series.quiet() == 4 < 5 and not series.needs()
    t, cpu, load, stats = series.figures()
    assert stats["samples"] == 5 and stats["taken"] == 7
    assert load == pytest.approx((0.5 + 0.01 + 0.02 + 0.03 + 0.04) / 5)
    assert load > flag  # still flagged: the table says so


def test_a_quiet_machine_takes_only_the_samples_wanted(monkeypatch):
    monkeypatch.setattr(_sampling, "cpu_sample", lambda: None)
    monkeypatch.setattr(_sampling, "other_load", lambda before, after: None)  # unknown counts as quiet
    monkeypatch.setattr(_sampling, "_calibrate", lambda impl, budget, repeats, least: _sampling.Series(impl, 1, 5, 7))
    (series,) = _sampling.sample_case([Impl("a", lambda: None)], 0.1, 5, 3)
    assert len(series.times) == 5 and series.figures()[2] is None


def test_probes_run_between_rounds_spread_over_the_case(monkeypatch):
    """A batched case's peak loops run between its rounds (every want // runs rounds), so they
    meet the same conditions as the rows; the runs the rounds did not reach, at the end."""
    log: list = []
    monkeypatch.setattr(_sampling, "_calibrate", lambda impl, budget, repeats, least: _sampling.Series(impl, 1, 6, 6))
    impl = Impl("a", lambda: log.append("row"))
    _sampling.sample_case([impl], 0.1, 6, 3, [lambda: log.append("probe")], probe_runs=3)
    assert log == ["row", "probe", "row", "row", "probe", "row", "row", "probe", "row"]
    log.clear()
    _sampling.sample_case([impl], 0.1, 6, 3, [lambda: log.append("p1"), lambda: log.append("p2")], probe_runs=8)
    assert log == ["row", "p1", "p2"] * 6 + ["p1", "p2"] * 2


# ----------------------------------------------------------------- the peaks


@pytest.mark.parametrize("tier", DETECTED)
def test_every_detected_tier_has_both_peaks_checked(tier):
    buf = _peaks.operand()
    assert buf.ctypes.data % 64 == 0 and buf.shape == (_peaks.BYTES,) and buf.max() < 128
    for kind in _peaks.KINDS:
        forms = _peaks.forms(tier, kind)
        assert forms and len(set(forms)) == len(forms)
        for i in range(len(forms)):
            units, cpu, wall = _peaks.run(tier, kind, i, buf, 0.001, warmup=0.0)
            assert units > 0 and cpu >= 0 and wall > 0


def test_peak_refusals():
    lacking = [t for t in ("avx2", "avx512", "amx", "neon", "neon_dotprod") if t not in DETECTED]
    buf = _peaks.operand()
    with raises_exactly(ValueError, "unknown peak kind 'flops'; known: popcount, mac"):
        _peaks.forms("serial", "flops")
    with raises_exactly(ValueError, "unknown tier 'sse9'"):
        _peaks.run("sse9", "mac", 0, buf, 0.0)
    if lacking:
        with raises_exactly(ValueError, f"tier '{lacking[0]}' is not detected on this CPU (detected: "
                                        f"{', '.join(DETECTED)})"):
            _peaks.forms(lacking[0], "popcount")
    with raises_exactly(ValueError, "serial has 1 popcount form(s), not form 1"):
        _peaks.run("serial", "popcount", 1, buf, 0.0)
    for bad in (buf[:-1], buf.astype(np.int16), np.zeros((2, _peaks.BYTES // 2), np.uint8)):
        with raises_exactly(ValueError, f"buf must be a contiguous uint8 array of {_peaks.BYTES} bytes "
                                        "(use operand())"):
            _peaks.run("serial", "popcount", 0, bad, 0.0)


def test_a_loop_that_computed_something_else_is_not_a_rate():
    """Bytes of 128 and more are read as unsigned by vpmaddubsw / vpdpbusd and as signed by
    the oracle (as by TDPBSSD and SDOT): the checksums differ, and the run says so."""
    tier = next((t for t in ("avx512", "avx2") if t in DETECTED), None)
    if tier is None:
        pytest.skip("no x86 tier with an unsigned-byte multiply-add here")
    form = _peaks.forms(tier, "mac")[0]
    buf = np.full(_peaks.BYTES, 0xFF, np.uint8)
    wrong = f"^the {re.escape(tier)} {re.escape(form)} peak loop computed a wrong checksum "  # form: a+b
    with pytest.raises(RuntimeError, match=wrong):
        _peaks.run(tier, "mac", 0, buf, 0.0, warmup=0.0)  # one repeat: a sum that does not wrap to 0


def test_measure_per_core_and_threads(monkeypatch):
    from pplx_codec import _dispatch

    # the default table ("auto") is held to the peaks of the tiers its Hamming and dot families run
    assert peaks.tier_for("auto", "popcount") == _dispatch.paths("auto")["hamming"]
    assert peaks.tier_for("auto", "mac") == _dispatch.paths("auto")["dot"]
    active = peaks.tier_for(pc.capabilities()["active"], "popcount")
    got = peaks.measure([active, "no such tier"], [2], quick=True)
    assert set(got) == {(active, k, n) for k in _peaks.KINDS for n in (1, 2)}
    for (tier, kind, n), p in got.items():
        assert (p.tier, p.kind, p.threads) == (tier, kind, n) and p.per_s > 0 and len(p.samples) == 3
        assert p.form in _peaks.forms(tier, kind) and p.per_s in p.samples
    # a path name that is not a tier finds the peak of the tier TIER_OF names
    monkeypatch.setitem(peaks.TIER_OF, "ymm512", active)
    assert peaks.peak_for(got, "ymm512", "mac", 2) is got[(active, "mac", 2)]
    assert peaks.peak_for(got, "sse9", "mac", 2) is None and peaks.peak_for(got, None, "mac", 2) is None
    frac, p = peaks.fraction(got, 1e9, 0.5, "ymm512", "popcount", 1)
    assert p is got[(active, "popcount", 1)] and frac == pytest.approx(2e9 / p.per_s)
    assert peaks.describe(0.63, p) == f"63% of {active} popcount peak (1 thread)"
    lines = peaks.header(got, quick=True)
    assert lines[0].startswith("compute peaks (") and len(lines) == 3
    # the meter: a batched case's probes are its kind only, its rows' tiers, 1 thread and theirs
    meter = peaks.Meter(active, quick=True)
    case = Case("search", "batched", 1, 1, [Impl("ours", lambda: 1, True, threads=2), Impl("peer", lambda: 1)],
                peak=("mac", 1e6))
    todo = meter.probes(case)
    assert {(p.tier, p.kind, p.threads) for p in todo} == {(active, "mac", 1), (active, "mac", 2)}
    assert len(todo) == 2 * len(_peaks.forms(active, "mac")) and meter.probes(_case()) == []
    for p in todo:
        p()
    meter.collect(case, todo)
    assert set(case.peaks) == {(active, "mac", 1), (active, "mac", 2)} and set(meter.peaks()) == set(case.peaks)
