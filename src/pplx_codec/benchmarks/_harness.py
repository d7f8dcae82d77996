"""Timing and reporting for benchmark cases: medians of repeated runs, ratios in one run."""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .._isa import ENV_VAR, use_isa
from .hardware import peer_of

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
    # ours only: the kernel tier (``use_isa`` name) this row is checked and timed under; None:
    # whatever tier is active (see ``with_tiers``)
    isa: str | None = None
    # the kernels this row runs, for the table's "kernels" column (default: the tier for ours,
    # else what hardware.peer_kernels says of the peer the row's name starts with)
    kernels: str | None = None

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
    # set by run_cases: impl label -> {"samples", "loops" (calls per sample), "q1", "q3"
    # (seconds per call, quartiles of the samples)}
    stats: dict[str, dict] = field(default_factory=dict)


# Above this share of the machine's CPU time taken by others, a row is retimed (up to
# RETIME times, keeping the least disturbed timing) and, if still above, flagged.
OTHER_LOAD_FLAG = 0.05
RETIME = 2


def _descendants_cpu(tick: float) -> float:
    """CPU-seconds used so far by this process's live descendants (e.g. a benchmark's own
    server in a child process) and by the children they have reaped, from /proc; 0 where
    unreadable."""
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
        # rest[1] = ppid, rest[11] = utime, rest[12] = stime, rest[13] = cutime, rest[14] = cstime
        # (fields 4, 14-17 of proc(5)).  cutime/cstime: its children that have exited (a database
        # server's per-connection backends, gone when the connection closes), whose time is in no
        # live process's utime any more: without them a load over fresh connections read as
        # "other" load
        ticks = int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
        children.setdefault(int(rest[1]), []).append((pid, ticks / tick))
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


def with_tiers(cases: list[Case], tiers: list[str]) -> list[Case]:
    """Each case with every one of our implementations once per tier (``Impl.isa`` set, so it
    is checked and timed under that tier), in the tiers' order, before the peers."""
    for case in cases:
        ours = [impl for impl in case.impls if impl.ours]
        case.impls = [replace(impl, isa=t) for t in tiers for impl in ours] + \
            [impl for impl in case.impls if not impl.ours]
    return cases


_running: Impl | None = None


def current_label() -> str | None:
    """The label of the implementation being checked or timed now (None outside run_cases):
    for an implementation's own closures that keep figures per row (e.g. a report's)."""
    return _running.label if _running is not None else None


@contextmanager
def running(impl: Impl) -> Iterator[None]:
    """Run the block as ``impl`` runs: under its tier (``use_isa``; and ``PPLX_CODEC_ISA`` set,
    so a child process it starts runs that tier too), with ``current_label()`` naming it."""
    global _running
    _running = impl
    saved = os.environ.get(ENV_VAR)
    try:
        if impl.isa is None:
            yield
        else:
            with use_isa(impl.isa):
                os.environ[ENV_VAR] = impl.isa
                yield
    finally:
        _running = None
        if impl.isa is not None:
            if saved is None:
                os.environ.pop(ENV_VAR, None)
            else:
                os.environ[ENV_VAR] = saved


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


def _median_time(fn: Callable[[], Any], budget: float, repeats: int) -> tuple[float, float, dict]:
    """Median seconds per call over `repeats` samples of an auto-sized loop, the median
    CPU-seconds this process used per call (all its threads) in the same samples, and the
    samples' count, loop size and quartiles."""
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
    q1, q3 = np.percentile(samples, [25, 75])
    stats = {"samples": repeats, "loops": number, "q1": float(q1), "q3": float(q3)}
    return float(np.median(samples)), float(np.median(cpu)), stats


def _timed_check(case: Case, impl: Impl) -> tuple[float, float, dict]:
    """One checked run, timed (wall and this process's CPU seconds)."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    result = impl.fn()
    t, cpu = time.perf_counter() - t0, time.process_time() - c0
    check_impl(case, impl, result)
    return t, cpu, {"samples": 1, "loops": 1, "q1": t, "q3": t}


def run_cases(cases: list[Case], quick: bool = False, progress: Callable[[str], None] | None = None):
    """Check then time every implementation; returns [(case, [(impl, seconds)])].

    A timing during which other processes kept more than OTHER_LOAD_FLAG of the machine's
    CPUs busy is retaken (up to RETIME times, each after waiting up to 10 s for the CPUs to
    go quiet); the least disturbed one is kept, and the share of the CPUs others used is
    left in ``case.other_load`` for the table.

    An implementation with ``isa`` set (ours, see ``with_tiers``) is checked and timed under
    that tier (``running``); the figures are keyed by ``Impl.label``."""
    budget, repeats = (0.15, 5) if quick else (1.0, 9)
    results = []
    for case in cases:
        if progress:
            progress(case.name)
        if not case.timed_by_check:
            check_case(case)
        timings = []
        for impl in case.impls:
            best: tuple[float, float, float | None, dict] | None = None
            with running(impl):
                for attempt in range(1 + RETIME):
                    if attempt:
                        _wait_quiet()
                    before = _cpu_sample()
                    if case.timed_by_check and not impl.limit:
                        t, cpu, stats = _timed_check(case, impl)
                    else:
                        t, cpu, stats = _median_time(impl.fn, budget, repeats)
                    load = _other_load(before, _cpu_sample())
                    if best is None or (load is not None and best[2] is not None and load < best[2]):
                        best = (t, cpu, load, stats)
                    if load is None or load <= OTHER_LOAD_FLAG or case.timed_by_check:
                        break
            assert best is not None  # the loop runs at least once
            timings.append((impl, best[0]))
            case.cpu[impl.label] = best[1]
            case.stats[impl.label] = best[3]
            if best[2] is not None:
                case.other_load[impl.label] = best[2]
        results.append((case, timings))
    return results


def fmt_time(s: float) -> str:
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:7.2f} {unit}"
    return f"{s / 1e-9:7.1f} ns"


def _verdict(case: Case, timings, prefix: str, want: float, metric: str = "time", *, tier: str | None = None) -> str:
    """One target's line: ours against the best peer whose name starts with ``prefix``, by
    wall time or (metric "cpu") by this process's CPU time per call; with ``tier``, ours are
    only the rows timed under that tier."""
    if metric == "cpu":
        value = {impl.label: case.cpu.get(impl.label) for impl, _ in timings}
    else:
        value = {impl.label: t for impl, t in timings}
    ours = [v for impl, _ in timings if impl.ours and (tier is None or impl.isa == tier)
            and (v := value[impl.label]) is not None]
    peers = [v for impl, _ in timings if not impl.ours and not impl.limit and impl.name.startswith(prefix)
             and (v := value[impl.label]) is not None]
    what = f"best '{prefix}'" if prefix else "best peer" + (" installed" if case.missing else "")
    label = "CPU time: " if metric == "cpu" else ""
    name = f"{case.name} [{tier}]" if tier else case.name
    if not peers or not ours:
        return f"{name}: {label}target vs {what} not measured (peer not installed)"
    got = min(peers) / min(ours)
    return (f"{name}: {label}ours / {what} = {got:.2f}x "
            f"(target >= {want}x) {'met' if got >= want else 'MISSED'}")


def tiers_of(results) -> list[str]:
    """The tiers our rows ran under (``Impl.isa``), in order of appearance; [] when none was set."""
    seen: list[str] = []
    for _, timings in results:
        for impl, _ in timings:
            if impl.ours and impl.isa and impl.isa not in seen:
                seen.append(impl.isa)
    return seen


def best_ours(timings, tiers: list[str]) -> dict[str | None, float]:
    """Our best median per tier (key None: over all our rows, when fewer than 2 tiers ran)."""
    if len(tiers) < 2:
        return {None: min(t for impl, t in timings if impl.ours)}
    best: dict[str | None, float] = {}
    for impl, t in timings:
        if impl.ours and impl.isa is not None:
            best[impl.isa] = min(t, best.get(impl.isa, t))
    return best


def verdicts(results) -> list[str]:
    """Every target's line (per tier when several ran), then the cases' report verdicts."""
    tiers = tiers_of(results)
    out = []
    for case, timings in results:
        for target in ([case.target] if case.target else []) + list(case.targets):
            for tier in tiers if len(tiers) > 1 else [None]:
                out.append(_verdict(case, timings, *target, tier=tier))
        if case.report:
            out += case.report(case, timings)[1]
    return out


def row_kernels(impl: Impl, default_tier: str | None, kernels: dict[str, str]) -> str:
    """What the "kernels" column says of a row."""
    if impl.kernels is not None:
        return impl.kernels
    if impl.ours:
        return impl.isa or default_tier or ""
    if impl.limit:
        return ""
    peer = peer_of(impl.name)
    return kernels.get(peer, "") if peer else ""


def _tier_speedups(timings, tiers: list[str]) -> str | None:
    """Per case, with several tiers: each of our rows' speed under every tier over the first."""
    base = {impl.name: t for impl, t in timings if impl.ours and impl.isa == tiers[0]}
    parts = []
    for tier in tiers[1:]:
        pairs = [f"{impl.name} {base[impl.name] / t:.2f}x" for impl, t in timings
                 if impl.ours and impl.isa == tier and impl.name in base]
        if pairs:
            parts.append(f"{tier} over {tiers[0]}: " + ", ".join(pairs))
    return "; ".join(parts) or None


def format_table(results, default_tier: str | None = None, kernels: dict[str, str] | None = None) -> str:
    """One table: per case, each implementation's median, GB/s, how many times faster ours
    is (per tier, when ours ran under several) and the kernels each row ran.

    ``default_tier``: the tier of our rows that have none of their own (the active one);
    ``kernels``: peer (``hardware.peer_of``) -> the kernels it uses here."""
    kernels = kernels or {}
    tiers = tiers_of(results)
    multi = len(tiers) > 1
    lines = []
    any_limit = any(impl.limit for _, timings in results for impl, _ in timings)
    width = max([49] + [len(impl.label) + (7 if impl.limit else 0) for _, timings in results for impl, _ in timings])
    ratio_heads = [f"ours {t}" for t in tiers] if multi else ["ours is"]
    ratio_widths = [max(9, len(h)) for h in ratio_heads]
    kern_width = max([7] + [len(row_kernels(impl, default_tier, kernels)) for _, timings in results
                            for impl, _ in timings])
    header = f"{'case / implementation':{width + 3}} {'median':>10} {'GB/s':>7}"
    header += "".join(f" {h:>{w}}" for h, w in zip(ratio_heads, ratio_widths, strict=True))
    header += f"  {'kernels':{kern_width}}"
    header += f" {'x limit':>8}" if any_limit else ""
    lines += [header.rstrip(), "-" * len(header.rstrip())]
    disturbed = False
    for case, timings in results:
        best = best_ours(timings, tiers)
        limit = min((t for impl, t in timings if impl.limit), default=None)
        lines.append(f"{case.name}" + (f"  [{case.note}]" if case.note else ""))
        for impl, t in sorted(timings, key=lambda it: it[1]):
            mark = "*" if impl.ours else "=" if impl.limit else " "
            name = f"limit: {impl.label}" if impl.limit else impl.label
            row = f" {mark} {name:{width}} {fmt_time(t):>10} {case.nbytes / t / 1e9:7.2f}"
            for key, w in zip(tiers if multi else [None], ratio_widths, strict=True):
                ratio = "" if impl.ours or impl.limit or key not in best else f"{t / best[key]:8.2f}x"
                row += f" {ratio:>{w}}"
            row += f"  {row_kernels(impl, default_tier, kernels):{kern_width}}"
            if any_limit:
                row += f" {t / limit:7.2f}x" if limit is not None and not impl.limit else " " * 9
            if case.per_item:
                cpu = case.cpu.get(impl.label)
                row += f"  {case.per_item / t:>9,.0f} {case.item}s/s"
                if cpu is not None:
                    row += f", cpu {cpu / case.per_item * 1e6:7.2f} us/{case.item}"
            load = case.other_load.get(impl.label)
            if load is not None and load > OTHER_LOAD_FLAG:
                row += f"  ! others {load:.0%}"
                disturbed = True
            lines.append(row.rstrip())
        if multi and (speedups := _tier_speedups(timings, tiers)):
            lines.append(f"   {speedups}")
        if case.missing:
            lines.append(f"   (not installed: {', '.join(case.missing)})")
        if case.report:
            extra, _ = case.report(case, timings)
            lines += ["   " + line for line in extra]
    lines.append("")
    if multi:
        lines.append("* = pplx-codec, once per tier ([tier]).  'ours <tier>' = peer median / our best median under "
                     "that tier (higher is better for us).")
    else:
        lines.append("* = pplx-codec.  'ours is' = peer median / our best median (higher is better for us).")
    lines.append("kernels = our tier; for a peer, the SIMD level it runs here (faiss: its dispatched level; "
                 "numkong/simsimd: the newest capability\n"
                 "  this CPU has, which a kernel may not use; usearch: its kernel for the row's metric).")
    if any(case.per_item for case, _ in results):
        lines.append("cpu = CPU time of this process (all its threads, user + system; not child processes) "
                     "per item, median over the samples.")
    if any_limit:
        lines.append("= = a bound, not an implementation; 'x limit' = row median / the bound's median.")
    if disturbed:
        lines.append(f"! = other processes used more than {OTHER_LOAD_FLAG:.0%} of the machine's CPU time while "
                     "that row was timed: its time (and ratios with it) may be inflated; rerun on a quiet machine.")
    lines += ["", "Targets:"] + ["  " + v for v in verdicts(results)]
    return "\n".join(lines)
