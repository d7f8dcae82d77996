"""Timing and reporting for benchmark cases: medians of repeated runs, ratios in one run."""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

try:
    import resource
except ImportError:  # not POSIX: no measure of other processes' load
    resource = None  # type: ignore[assignment]  # (tested before use)


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


# Above this share of the machine's CPU time taken by others, a row is retimed (up to
# RETIME times, keeping the least disturbed timing) and, if still above, flagged.
OTHER_LOAD_FLAG = 0.05
RETIME = 2


def _descendants_cpu(tick: float) -> float:
    """CPU-seconds used so far by this process's live descendants (e.g. a benchmark's own
    server in a child process), from /proc; 0 where unreadable."""
    me = os.getpid()
    children: dict[int, list[tuple[int, float]]] = {}
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                # the command name may hold spaces: fields after its closing ')'
                rest = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # rest[1] = ppid, rest[11] = utime, rest[12] = stime (fields 4, 14, 15 of proc(5))
        children.setdefault(int(rest[1]), []).append((pid, (int(rest[11]) + int(rest[12])) / tick))
    total, todo = 0.0, [me]
    while todo:
        for pid, cpu in children.get(todo.pop(), ()):
            total += cpu
            todo.append(pid)
    return total


def _cpu_sample() -> tuple[float, float, float] | None:
    """(wall s, CPU-seconds the whole machine was busy, CPU-seconds this process and its
    descendants used), or None where /proc/stat is unavailable.  A benchmark's own child
    processes (a server it talks to, a job in a fresh process) are part of its workload, not
    "other" load: running ones are read from /proc, finished ones from RUSAGE_CHILDREN."""
    if resource is None:
        return None
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal
    busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tick
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime + _descendants_cpu(tick)
    return time.perf_counter(), busy, own


def _wait_quiet(max_wait: float = 10.0, window: float = 0.5) -> None:
    """Before a retime: wait (up to max_wait s) for a window in which other processes leave the CPUs idle."""
    end = time.perf_counter() + max_wait
    while time.perf_counter() < end:
        before = _cpu_sample()
        time.sleep(window)
        load = _other_load(before, _cpu_sample())
        if load is None or load <= OTHER_LOAD_FLAG:
            return


def _other_load(before, after) -> float | None:
    """Share of all CPUs' time between two samples used by anything but this process (and its
    descendants)."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    others = (after[1] - before[1]) - (after[2] - before[2])
    return max(0.0, others / ((after[0] - before[0]) * (os.cpu_count() or 1)))


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
    """Run every implementation once and compare with the reference; raises on a wrong answer."""
    for impl in case.impls:
        if not impl.limit:
            check_impl(case, impl, impl.fn())


def _median_time(fn: Callable[[], Any], budget: float, repeats: int) -> tuple[float, float]:
    """Median seconds per call over `repeats` samples of an auto-sized loop, and the median
    CPU-seconds this process used per call (all its threads) in the same samples."""
    fn()  # warm caches and lazy imports
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    number = max(1, int(budget / repeats / once))
    samples, cpu = [], []
    for _ in range(repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
        cpu.append((time.process_time() - c0) / number)
    return float(np.median(samples)), float(np.median(cpu))


def _timed_check(case: Case, impl: Impl) -> tuple[float, float]:
    """One checked run, timed (wall and this process's CPU seconds)."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    result = impl.fn()
    t, cpu = time.perf_counter() - t0, time.process_time() - c0
    check_impl(case, impl, result)
    return t, cpu


def run_cases(cases: list[Case], quick: bool = False, progress: Callable[[str], None] | None = None):
    """Check then time every implementation; returns [(case, [(impl, seconds)])].

    A timing during which other processes kept more than OTHER_LOAD_FLAG of the machine's
    CPUs busy is retaken (up to RETIME times, each after waiting up to 10 s for the CPUs to
    go quiet); the least disturbed one is kept, and the share of the CPUs others used is
    left in ``case.other_load`` for the table."""
    budget, repeats = (0.15, 5) if quick else (1.0, 9)
    results = []
    for case in cases:
        if progress:
            progress(case.name)
        if not case.timed_by_check:
            check_case(case)
        timings = []
        for impl in case.impls:
            best: tuple[float, float, float | None] | None = None
            for attempt in range(1 + RETIME):
                if attempt:
                    _wait_quiet()
                before = _cpu_sample()
                if case.timed_by_check:
                    t, cpu = _timed_check(case, impl) if not impl.limit else _median_time(impl.fn, budget, repeats)
                else:
                    t, cpu = _median_time(impl.fn, budget, repeats)
                load = _other_load(before, _cpu_sample())
                if best is None or (load is not None and best[2] is not None and load < best[2]):
                    best = (t, cpu, load)
                if load is None or load <= OTHER_LOAD_FLAG or case.timed_by_check:
                    break
            assert best is not None  # the loop runs at least once
            timings.append((impl, best[0]))
            case.cpu[impl.name] = best[1]
            if best[2] is not None:
                case.other_load[impl.name] = best[2]
        results.append((case, timings))
    return results


def _fmt_time(s: float) -> str:
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:7.2f} {unit}"
    return f"{s / 1e-9:7.1f} ns"


def _verdict(case: Case, timings, prefix: str, want: float, metric: str = "time") -> str:
    """One target's line: ours against the best peer whose name starts with ``prefix``, by
    wall time or (metric "cpu") by this process's CPU time per call."""
    if metric == "cpu":
        value = {impl.name: case.cpu.get(impl.name) for impl, _ in timings}
    else:
        value = {impl.name: t for impl, t in timings}
    ours = [v for impl, _ in timings if impl.ours and (v := value[impl.name]) is not None]
    peers = [v for impl, _ in timings if not impl.ours and not impl.limit and impl.name.startswith(prefix)
             and (v := value[impl.name]) is not None]
    what = f"best '{prefix}'" if prefix else "best peer" + (" installed" if case.missing else "")
    label = "CPU time: " if metric == "cpu" else ""
    if not peers or not ours:
        return f"{case.name}: {label}target vs {what} not measured (peer not installed)"
    got = min(peers) / min(ours)
    return (f"{case.name}: {label}ours / {what} = {got:.2f}x "
            f"(target >= {want}x) {'met' if got >= want else 'MISSED'}")


def format_table(results) -> str:
    """One table: per case, each implementation's median, GB/s, and how many times faster ours is."""
    lines = []
    any_limit = any(impl.limit for _, timings in results for impl, _ in timings)
    header = f"{'case / implementation':52} {'median':>10} {'GB/s':>7} {'ours is':>9}"
    header += f" {'x limit':>8}" if any_limit else ""
    lines += [header, "-" * len(header)]
    verdicts = []
    disturbed = False
    for case, timings in results:
        best_ours = min(t for impl, t in timings if impl.ours)
        limit = min((t for impl, t in timings if impl.limit), default=None)
        lines.append(f"{case.name}" + (f"  [{case.note}]" if case.note else ""))
        for impl, t in sorted(timings, key=lambda it: it[1]):
            ratio = "" if impl.ours or impl.limit else f"{t / best_ours:8.2f}x"
            mark = "*" if impl.ours else "=" if impl.limit else " "
            name = f"limit: {impl.name}" if impl.limit else impl.name
            row = f" {mark} {name:49} {_fmt_time(t):>10} {case.nbytes / t / 1e9:7.2f} {ratio:>9}"
            if limit is not None and not impl.limit:
                row += f" {t / limit:7.2f}x"
            if case.per_item:
                cpu = case.cpu.get(impl.name)
                row += f"  {case.per_item / t:>9,.0f} {case.item}s/s"
                if cpu is not None:
                    row += f", cpu {cpu / case.per_item * 1e6:7.2f} us/{case.item}"
            load = case.other_load.get(impl.name)
            if load is not None and load > OTHER_LOAD_FLAG:
                row += f"{'' if limit is not None or not any_limit else ' ' * 9}  ! others {load:.0%}"
                disturbed = True
            lines.append(row)
        if case.missing:
            lines.append(f"   (not installed: {', '.join(case.missing)})")
        report_verdicts = []
        if case.report:
            extra, report_verdicts = case.report(case, timings)
            lines += ["   " + line for line in extra]
        for target in ([case.target] if case.target else []) + list(case.targets):
            verdicts.append(_verdict(case, timings, *target))
        verdicts += report_verdicts
    lines.append("")
    lines.append("* = pplx-codec.  'ours is' = peer median / our best median (higher is better for us).")
    if any(case.per_item for case, _ in results):
        lines.append("cpu = CPU time of this process (all its threads, user + system; not child processes) "
                     "per item, median over the samples.")
    if any_limit:
        lines.append("= = a bound, not an implementation; 'x limit' = row median / the bound's median.")
    if disturbed:
        lines.append(f"! = other processes used more than {OTHER_LOAD_FLAG:.0%} of the machine's CPU time while "
                     "that row was timed: its time (and ratios with it) may be inflated; rerun on a quiet machine.")
    lines += ["", "Targets:"] + ["  " + v for v in verdicts]
    return "\n".join(lines)
