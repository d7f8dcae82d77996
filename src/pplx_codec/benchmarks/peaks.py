"""This machine's compute peaks, measured in the bench's own run, and the batched
search cases' fractions of them.

Two kinds: ``popcount`` (bytes popcounted per second) and ``mac`` (int8
multiply-adds per second), per kernel tier, with that tier's instructions
(the loops and why each is the peak: ``codec/simd/peak/peak.h``; the wrapper:
``_peaks``), per core (1 thread) and for the threads the batched cases use.
A tier this CPU does not run gets no figure.  Each figure is the median of a
few short runs (the rounds interleave every tier, form and thread count, as
the cases' samples do), the best instruction form's where a tier has several;
each run's result is checked against the loops' oracle before its rate
counts.

A case with ``Case.peak = (kind, work per call)`` shows, beside each of our
rows, ``work / median / peak``: the peak of the kind under the tier the row ran
(its ``Impl.isa``, else the active tier) for the row's ``Impl.threads``.  A
row under the default table (``auto``: each kernel family on its own path) is
held to the peak of the tier its family runs (``FAMILY_OF``: popcount rows are
Hamming scans, mac rows int8 dots).  Any other name ``--isa`` accepts that is
not a tier of ``codec/simd/cpu.h`` gets none, unless mapped in ``TIER_OF`` to
the tier whose instructions it runs.
"""

from __future__ import annotations

import statistics
import sys
import threading
from dataclasses import dataclass

from .. import _dispatch, _peaks
from .._isa import capabilities

KINDS = _peaks.KINDS
# kind -> (what a unit is, rate unit, its scale)
UNITS = {"popcount": ("bytes popcounted", "GB/s", 1e9), "mac": ("int8 multiply-adds", "GMAC/s", 1e9)}
# a path name that is not a tier -> the tier whose peak bounds it (none yet)
TIER_OF: dict[str, str] = {}
# the kernel family each kind's batched rows run, for rows under the default table
FAMILY_OF = {"popcount": "hamming", "mac": "dot"}


def tier_for(tier: str, kind: str) -> str:
    """The tier whose ``kind`` peak bounds a row run under ``tier`` (a tier, ``auto``, or a
    name of ``TIER_OF``)."""
    if tier == _dispatch.AUTO:
        return _dispatch.paths(_dispatch.AUTO)[FAMILY_OF[kind]]
    return TIER_OF.get(tier, tier)
# what a run's rate is per (peak.h: Windows has no fine per-thread CPU clock)
CLOCK = "wall clock" if sys.platform == "win32" else "thread CPU time"


@dataclass
class Peak:
    tier: str
    kind: str
    threads: int
    per_s: float  # units per second, all threads together
    form: str  # the instruction form that reached it
    samples: list[float]  # that form's runs, units per second


def _run(tier: str, kind: str, form: int, threads: int, seconds: float) -> float:
    """One run on ``threads`` threads at once (each on its own L1 operand; the loop releases
    the GIL): the sum of their rates, each by its thread's CPU time."""
    if threads == 1:
        units, cpu, _ = _peaks.run(tier, kind, form, _peaks.operand(), seconds)
        return units / cpu if cpu > 0 else 0.0
    bufs = [_peaks.operand() for _ in range(threads)]
    start = threading.Barrier(threads)
    out: list[tuple[float, float, float] | BaseException | None] = [None] * threads

    def work(i: int) -> None:
        try:
            start.wait()
            out[i] = _peaks.run(tier, kind, form, bufs[i], seconds)
        except BaseException as e:  # noqa: BLE001 - raised in the caller below
            out[i] = e

    pool = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    rate = 0.0
    for r in out:
        if isinstance(r, BaseException):
            raise r
        assert r is not None
        rate += r[0] / r[1] if r[1] > 0 else 0.0
    return rate


def measure(tiers: list[str], threads: list[int], quick: bool = False) -> dict[tuple[str, str, int], Peak]:
    """Peaks keyed by (tier, kind, threads) for each detected tier of ``tiers`` (other names
    through ``TIER_OF``) and each thread count (1 is always measured)."""
    seconds, repeats = (0.02, 3) if quick else (0.03, 5)
    detected = capabilities()["detected"]
    real = list(dict.fromkeys(tier_for(t, kind) for t in tiers for kind in KINDS))
    counts = sorted({1, *threads})
    jobs = [(tier, kind, i, name, n) for tier in real if tier in detected for kind in KINDS
            for i, name in enumerate(_peaks.forms(tier, kind)) for n in counts]
    runs: dict[tuple, list[float]] = {job: [] for job in jobs}
    for _ in range(repeats):
        for job in jobs:
            tier, kind, i, _name, n = job
            runs[job].append(_run(tier, kind, i, n, seconds))
    peaks: dict[tuple[str, str, int], Peak] = {}
    for (tier, kind, _i, name, n), rates in runs.items():
        rate = statistics.median(rates)
        best = peaks.get((tier, kind, n))
        if best is None or rate > best.per_s:
            peaks[(tier, kind, n)] = Peak(tier, kind, n, rate, name, rates)
    return peaks


def peak_for(peaks: dict, tier: str | None, kind: str, threads: int) -> Peak | None:
    if tier is None:
        return None
    return peaks.get((tier_for(tier, kind), kind, threads))


def fraction(peaks: dict, work: float, seconds: float, tier: str | None, kind: str,
             threads: int) -> tuple[float, Peak] | None:
    """(work / seconds / peak, the peak), or None without a peak for that tier."""
    peak = peak_for(peaks, tier, kind, threads)
    if peak is None or seconds <= 0 or peak.per_s <= 0:
        return None
    return work / seconds / peak.per_s, peak


def describe(frac: float, peak: Peak) -> str:
    """The table's words for a row's fraction, e.g. "62% of avx512 popcount peak (2 threads)"."""
    return f"{frac:.0%} of {peak.tier} {peak.kind} peak ({peak.threads} thread{'s' if peak.threads > 1 else ''})"


def header(peaks: dict, quick: bool = False) -> list[str]:
    """The lines that state the peaks: per tier and kind, per core and for each thread count."""
    seconds, repeats = (0.02, 3) if quick else (0.03, 5)
    lines = [f"compute peaks (codec/simd/peak: L1-resident loops, rates by each thread's {CLOCK}; median of "
             f"{repeats} runs of {seconds * 1e3:.0f} ms):"]
    for tier, kind in dict.fromkeys((p.tier, p.kind) for p in peaks.values()):
        _, unit, scale = UNITS[kind]
        mine = sorted((p for p in peaks.values() if (p.tier, p.kind) == (tier, kind)), key=lambda p: p.threads)
        one_form = len({p.form for p in mine}) == 1
        parts = [f"{p.per_s / scale:.1f} {unit} " + ("per core" if p.threads == 1 else f"on {p.threads} threads")
                 + ("" if one_form else f" ({p.form})") for p in mine]
        lines.append(f"  {tier:7} {kind:8} " + ", ".join(parts) + (f" ({mine[0].form})" if one_form else ""))
    return lines


def to_json(peaks: dict) -> list[dict]:
    """The peaks as ``bench --json`` records them."""
    return [{"tier": p.tier, "kind": p.kind, "unit": UNITS[p.kind][0], "threads": p.threads, "per_s": p.per_s,
             "form": p.form, "runs_per_s": list(p.samples), "clock": CLOCK} for p in peaks.values()]
