"""Timing and reporting for benchmark cases: medians of repeated runs, ratios in one run."""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass
class Impl:
    name: str
    fn: Callable[[], Any]  # does the whole workload once and returns the result
    ours: bool = False


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
    # how a result is compared with `expected`; exact by default
    check: Callable[[Any, Any], None] = lambda got, want: np.testing.assert_array_equal(got, want)
    note: str = ""


def optional(module: str, missing: list[str], label: str | None = None):
    """Import a peer library, or record it as missing (with its pip name) and return None."""
    try:
        return importlib.import_module(module)
    except ImportError:
        missing.append(label or module)
        return None


def check_case(case: Case) -> None:
    """Run every implementation once and compare with the reference; raises on a wrong answer."""
    for impl in case.impls:
        try:
            case.check(impl.fn(), case.expected)
        except AssertionError as e:
            raise AssertionError(f"{case.name}: {impl.name} gave a wrong answer: {e}") from None


def _median_time(fn: Callable[[], Any], budget: float, repeats: int) -> float:
    """Median seconds per call over `repeats` samples of an auto-sized loop."""
    fn()  # warm caches and lazy imports
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    number = max(1, int(budget / repeats / once))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return float(np.median(samples))


def run_cases(cases: list[Case], quick: bool = False, progress: Callable[[str], None] | None = None):
    """Check then time every implementation; returns [(case, [(impl, seconds)])]."""
    budget, repeats = (0.15, 5) if quick else (1.0, 9)
    results = []
    for case in cases:
        if progress:
            progress(case.name)
        check_case(case)
        results.append((case, [(impl, _median_time(impl.fn, budget, repeats)) for impl in case.impls]))
    return results


def _fmt_time(s: float) -> str:
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:7.2f} {unit}"
    return f"{s / 1e-9:7.1f} ns"


def format_table(results) -> str:
    """One table: per case, each implementation's median, GB/s, and how many times faster ours is."""
    lines = []
    header = f"{'case / implementation':44} {'median':>10} {'GB/s':>7} {'ours is':>9}"
    lines += [header, "-" * len(header)]
    verdicts = []
    for case, timings in results:
        best_ours = min(t for impl, t in timings if impl.ours)
        lines.append(f"{case.name}" + (f"  [{case.note}]" if case.note else ""))
        for impl, t in sorted(timings, key=lambda it: it[1]):
            ratio = "" if impl.ours else f"{t / best_ours:8.2f}x"
            mark = "*" if impl.ours else " "
            lines.append(f" {mark} {impl.name:41} {_fmt_time(t):>10} {case.nbytes / t / 1e9:7.2f} {ratio:>9}")
        if case.missing:
            lines.append(f"   (not installed: {', '.join(case.missing)})")
        if case.target:
            prefix, want = case.target
            peers = [t for impl, t in timings if not impl.ours and impl.name.startswith(prefix)]
            if peers:
                got = min(peers) / best_ours
                verdicts.append(f"{case.name}: ours / best '{prefix}' = {got:.2f}x "
                                f"(target >= {want}x) {'met' if got >= want else 'MISSED'}")
            else:
                verdicts.append(f"{case.name}: target vs '{prefix}' not measured (peer not installed)")
    lines.append("")
    lines.append("* = pplx-codec.  'ours is' = peer median / our best median (higher is better for us).")
    lines += ["", "Targets:"] + ["  " + v for v in verdicts]
    return "\n".join(lines)
