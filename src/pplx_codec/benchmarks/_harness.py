"""Benchmark cases and their runs: each implementation checked, then timed (``_sampling``)."""

from __future__ import annotations

import gc
import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ._sampling import OTHER_LOAD_FLAG, cpu_sample, current_label, other_load, running, sample_case

__all__ = ["Case", "Impl", "OTHER_LOAD_FLAG", "check_case", "check_impl", "current_label", "optional",
           "run_cases", "running", "with_tiers"]


@dataclass
class Impl:
    name: str
    fn: Callable[[], Any]  # does the whole workload once and returns the result
    ours: bool = False
    # compares this implementation's result with the case's `expected` instead of Case.check
    # (e.g. a peer whose float math may order near-ties differently)
    check: Callable[[Any, Any], None] | None = None
    # a bound, not an implementation (e.g. reading the inputs once at memory bandwidth): timed
    # like the others but not checked, not a peer; the table shows every row's time over it
    limit: bool = False
    # ours only: the kernel tier (``use_isa`` name) this row is checked and timed under; None:
    # whatever tier is active (see ``with_tiers``)
    isa: str | None = None
    # the kernels this row runs, for the table's "kernels" column (default: the tier for ours,
    # else what hardware.peer_kernels says of the peer the row's name starts with)
    kernels: str | None = None
    # threads the row computes on, where the case compares it with a peak (Case.peak): which
    # peak (per core, or for that many threads) its work is a fraction of
    threads: int = 1

    @property
    def label(self) -> str:
        """The row's name in the table and the key of its figures: the name, plus ``[tier]``
        when it runs under a tier of its own."""
        return f"{self.name} [{self.isa}]" if self.isa else self.name


@dataclass
class Case:
    family: str
    name: str
    nbytes: int  # bytes produced per run (read, for reductions), for GB/s
    expected: Any
    impls: list[Impl]
    missing: list[str] = field(default_factory=list)  # peers whose package is not installed
    # ("name prefix", ratio): ours must be >= ratio x the fastest impl whose name starts so
    target: tuple[str, float] | None = None
    # more targets, each ("name prefix", ratio) or ("name prefix", ratio, "cpu"): the last compares
    # this process's CPU time per call (ours must use >= ratio x less than that peer) instead of wall time
    targets: list[tuple] = field(default_factory=list)
    # how a result is compared with `expected`; exact by default
    check: Callable[[Any, Any], None] = lambda got, want: np.testing.assert_array_equal(got, want)
    note: str = ""
    # items (e.g. vectors) one call produces: the table adds items/s and this process's CPU time per item
    per_item: int = 0
    item: str = "item"
    # an expensive job (e.g. in a fresh process): its checked run is its one timed sample
    timed_by_check: bool = False
    # after the rows: report(case, [(impl, seconds)]) -> (lines, target verdicts) for figures that are
    # not times (e.g. peak memory an implementation recorded while it ran)
    report: Callable[[Case, list], tuple[list[str], list[str]]] | None = None
    # set by run_cases: impl name -> median CPU seconds this process used per call (all its threads;
    # not child processes)
    cpu: dict[str, float] = field(default_factory=dict)
    # set by run_cases: impl name -> share of the machine's CPU time used outside this process
    # (other processes, hypervisor steal) while that implementation was timed
    other_load: dict[str, float] = field(default_factory=dict)
    # set by run_cases: impl label -> {"samples" (kept), "taken", "loops" (calls per sample),
    # "q1", "q3" (seconds per call, quartiles of the kept samples)}
    stats: dict[str, dict] = field(default_factory=dict)
    # a batched kernel case: (peak kind, work per call), kind "popcount" (bytes popcounted) or
    # "mac" (int8 multiply-adds): our rows show their work rate as a fraction of the machine's
    # peak of that kind under their tier (benchmarks.peaks)
    peak: tuple[str, float] | None = None
    # set by run_cases with a peak meter: (tier, kind, threads) -> the peak measured during this case
    peaks: dict = field(default_factory=dict)

    @property
    def kernel(self) -> bool:
        """A kernel case: one call of our code on in-memory data (not a whole job with items
        per second, not a job timed by its one run in a fresh process).  Its medians are the
        ones held steady, and under ``--isa all`` the default path is held to the fastest."""
        return not self.per_item and not self.timed_by_check


def with_tiers(cases: list[Case], tiers: list[str]) -> list[Case]:
    """Each case with every one of our implementations once per tier (``Impl.isa`` set, so it
    is checked and timed under that tier), in the tiers' order, before the peers."""
    for case in cases:
        ours = [impl for impl in case.impls if impl.ours]
        case.impls = [replace(impl, isa=t) for t in tiers for impl in ours] + \
            [impl for impl in case.impls if not impl.ours]
    return cases


def optional(module: str, missing: list[str], label: str | None = None):
    """Import a peer library, or record it as missing (with its pip name) and return None."""
    try:
        return importlib.import_module(module)
    except ImportError:
        missing.append(label or module)
        return None


def check_impl(case: Case, impl: Impl, result: Any) -> None:
    """Compare one implementation's result with the reference (no-op for a limit row)."""
    if impl.limit:
        return
    try:
        (impl.check or case.check)(result, case.expected)
    except AssertionError as e:
        raise AssertionError(f"{case.name}: {impl.name} gave a wrong answer: {e}") from None


def check_case(case: Case) -> None:
    """Run every implementation once (ours under its tier) and compare with the reference;
    raises on a wrong answer."""
    for impl in case.impls:
        if not impl.limit:
            with running(impl):
                check_impl(case, impl, impl.fn())


def _timed_check(case: Case, impl: Impl) -> tuple[float, float, dict]:
    """One checked run, timed (wall and this process's CPU seconds)."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    result = impl.fn()
    t, cpu = time.perf_counter() - t0, time.process_time() - c0
    check_impl(case, impl, result)
    return t, cpu, {"samples": 1, "taken": 1, "loops": 1, "q1": t, "q3": t}


def run_cases(cases: list[Case], quick: bool = False, progress: Callable[[str], None] | None = None,
              meter=None):
    """Check then time every implementation; returns [(case, [(impl, seconds)])].

    Each case's implementations are timed together, in interleaved rounds
    (``_sampling``, which says why), with garbage collection off: medians and
    quartiles of about a second of samples each (0.15 s with ``quick``).  The
    share of the CPUs other processes used during the kept samples is left in
    ``case.other_load`` for the table.  A ``timed_by_check`` case (an expensive
    job in a fresh process) is timed by its one checked run.  ``meter``
    (``peaks.Meter``): the compute peaks a batched case (``Case.peak``) is
    compared with are measured between its rounds, into ``case.peaks``.

    An implementation with ``isa`` set (ours, see ``with_tiers``) is checked and timed under
    that tier (``running``); the figures are keyed by ``Impl.label``."""
    budget, repeats, least = (0.15, 7, 3) if quick else (1.0, 15, 5)
    results = []
    for case in cases:
        if progress:
            progress(case.name)
        timings = []
        if case.timed_by_check:
            for impl in case.impls:
                if impl.limit:
                    t, cpu, load, stats = sample_case([impl], budget, repeats, least)[0].figures()
                else:
                    before = cpu_sample()
                    with running(impl):
                        t, cpu, stats = _timed_check(case, impl)
                    load = other_load(before, cpu_sample())
                timings.append((impl, t))
                case.cpu[impl.label], case.stats[impl.label] = cpu, stats
                if load is not None:
                    case.other_load[impl.label] = load
        else:
            check_case(case)
            collecting = gc.isenabled()
            gc.collect()
            gc.disable()
            probes = meter.probes(case) if meter is not None else []
            try:
                all_series = sample_case(case.impls, budget, repeats, least, probes,
                                         meter.runs if probes else 0)
            finally:
                if collecting:
                    gc.enable()
            if probes:
                meter.collect(case, probes)
            for impl, series in zip(case.impls, all_series, strict=True):
                t, cpu, load, stats = series.figures()
                timings.append((impl, t))
                case.cpu[impl.label], case.stats[impl.label] = cpu, stats
                if load is not None:
                    case.other_load[impl.label] = load
        results.append((case, timings))
    return results
