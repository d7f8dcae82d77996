"""This machine's compute peaks, measured in the bench's own run, and the batched
search cases' fractions of them.

Two kinds: ``popcount`` (bytes popcounted per second) and ``mac`` (int8
multiply-adds per second), per kernel tier, with that tier's instructions
(the loops and why each is the peak: ``codec/simd/peak/peak.h``; the wrapper:
``_peaks``), per core (1 thread) and for the threads the batched cases use.
A tier this CPU does not run gets no figure.  Each run's result is checked
against the loops' oracle before its rate counts; a figure is the median of
its runs, the best instruction form's where a tier has several.

Measured inside the batched cases (``Meter``): each round of a case's samples
(``_sampling``) is followed, every few rounds, by one short run of each peak
loop the case's rows need, so the peak and the rows it is compared with are
measured in the same minutes, under the same load.  Why that matters here:
on this project's shared 2-core KVM machine the same serial loop ran at 7.6
and at 14 GMAC/s a few seconds apart (the host's load, invisible from inside),
so a peak measured at the start of a run could be off by 2x by the time the
case ran.

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


class Probe:
    """One peak loop (tier, kind, form) on ``threads`` threads: each call adds one run's rate."""

    def __init__(self, tier: str, kind: str, form: int, name: str, threads: int, seconds: float):
        self.tier, self.kind, self.form, self.name, self.threads = tier, kind, form, name, threads
        self.seconds = seconds
        self.rates: list[float] = []

    def __call__(self) -> None:
        self.rates.append(_run(self.tier, self.kind, self.form, self.threads, self.seconds))


def _settings(quick: bool) -> tuple[float, int]:
    """(seconds of a run, runs per figure)."""
    return (0.02, 3) if quick else (0.03, 5)


def probes(tiers: list[str], kinds: list[str] | tuple[str, ...], threads: list[int], quick: bool) -> list[Probe]:
    """A probe per form of each kind of each detected tier of ``tiers`` (other names through
    ``TIER_OF``), on 1 thread and each of ``threads``."""
    seconds, _ = _settings(quick)
    detected = capabilities()["detected"]
    real = [t for t in dict.fromkeys(tier_for(t, k) for t in tiers for k in kinds) if t in detected]
    return [Probe(tier, kind, i, name, n, seconds) for tier in real for kind in kinds
            for i, name in enumerate(_peaks.forms(tier, kind)) for n in sorted({1, *threads})]


def figures(done: list[Probe]) -> dict[tuple[str, str, int], Peak]:
    """Per (tier, kind, threads): the median of the best form's runs."""
    best: dict[tuple[str, str, int], Peak] = {}
    for p in done:
        if not p.rates:
            continue
        rate = statistics.median(p.rates)
        key = (p.tier, p.kind, p.threads)
        if key not in best or rate > best[key].per_s:
            best[key] = Peak(p.tier, p.kind, p.threads, rate, p.name, list(p.rates))
    return best


def measure(tiers: list[str], threads: list[int], quick: bool = False) -> dict[tuple[str, str, int], Peak]:
    """Peaks keyed by (tier, kind, threads), both kinds, measured now: the runs of every
    probe interleaved, round by round."""
    todo = probes(tiers, KINDS, threads, quick)
    for _ in range(_settings(quick)[1]):
        for probe in todo:
            probe()
    return figures(todo)


class Meter:
    """The peaks of the batched cases of one run, measured inside them (``run_cases``):
    ``probes(case)`` before a case's rounds, ``collect(case, probes)`` after."""

    def __init__(self, default_tier: str, quick: bool = False):
        self.default_tier, self.quick = default_tier, quick
        self.runs = _settings(quick)[1]  # runs of each probe per case
        self.done: list[Probe] = []

    def probes(self, case) -> list[Probe]:
        if case.peak is None:
            return []
        ours = [impl for impl in case.impls if impl.ours]
        tiers = list(dict.fromkeys(impl.isa or self.default_tier for impl in ours))
        return probes(tiers, [case.peak[0]], [impl.threads for impl in ours], self.quick)

    def collect(self, case, done: list[Probe]) -> None:
        """The case's own peaks (``case.peaks``: what its rows' fractions use) and the run's."""
        case.peaks = figures(done)
        self.done += done

    def peaks(self) -> dict[tuple[str, str, int], Peak]:
        """The run's peaks (the header's, the JSON's): every case's runs of each loop together."""
        merged: dict[tuple, Probe] = {}
        for p in self.done:
            key = (p.tier, p.kind, p.form, p.threads)
            if key not in merged:
                merged[key] = Probe(p.tier, p.kind, p.form, p.name, p.threads, p.seconds)
            merged[key].rates += p.rates
        return figures(list(merged.values()))


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
    seconds, _ = _settings(quick)
    lines = [f"compute peaks (codec/simd/peak: L1-resident loops of {seconds * 1e3:.0f} ms, rates by {CLOCK}, "
             "medians of the runs made during the batched cases; per core, and all threads at once):"]
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
