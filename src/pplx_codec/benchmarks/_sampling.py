"""How ``run_cases`` times the implementations of one case: interleaved samples.

A sample is the mean time of a loop of calls.  Why the samples are taken so
(issue 25: on a 2-core machine shared with other jobs, the 8 MiB ``b64decode``
row measured 330 us in one run and 410 us in another while its peer stayed at
500 us, because each row was timed in a block of its own, seconds apart, and
whatever else ran during our block and not during the peer's showed as our
speed):

- **Interleaved rounds.**  A round takes one sample of every implementation of
  the case (in an order rotated from round to round), so a burst of load from
  elsewhere, a frequency change or a neighbour filling the shared L3 falls on
  ours and the peers alike instead of on whichever block it met.
- **A warm-up call before each sample** of a short call (the loop is at least
  ``WARM_LOOPS`` calls): the previous implementation of the round has just
  evicted this one's data from the caches.  Long calls (a 100 ms search) are
  not warmed: the warm-up would double their time and their data does not fit
  in a cache anyway.
- **More samples of short calls, a bounded total.**  Each implementation gets
  about ``budget`` seconds: up to ``repeats`` samples, never fewer than
  ``min_samples``; a call longer than budget/repeats is one call per sample.
- **The quietest samples.**  The share of the machine's CPU time used by other
  processes is read once per round (``/proc/stat``); while fewer than the
  wanted number of samples were taken in quiet rounds, rounds go on, up to half
  as many again, and the median and quartiles are of the least disturbed
  samples.  Their mean disturbance is reported, and flagged above
  ``OTHER_LOAD_FLAG``.
- **No garbage collection while timing** (``run_cases`` disables it around a
  case): a collection triggered by one peer's allocations would land in
  whichever sample was running.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._isa import ENV_VAR, use_isa

try:
    import resource
except ImportError:  # not POSIX: no measure of other processes' load
    resource = None  # type: ignore[assignment]  # (tested before use)

# Above this share of the machine's CPU time taken by others, a sample counts as disturbed.
OTHER_LOAD_FLAG = 0.05
# A loop of at least this many calls gets an untimed call before it.
WARM_LOOPS = 4

_running: Any = None


def current_label() -> str | None:
    """The label of the implementation being checked or timed now (None outside run_cases):
    for an implementation's own closures that keep figures per row (e.g. a report's)."""
    return _running.label if _running is not None else None


@contextmanager
def running(impl) -> Iterator[None]:
    """Run the block as ``impl`` (a ``benchmarks.Impl``) runs: under its tier (``use_isa``;
    and ``PPLX_CODEC_ISA`` set, so a child process it starts runs that tier too), with
    ``current_label()`` naming it."""
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


def cpu_sample() -> tuple[float, float, float] | None:
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


def other_load(before, after) -> float | None:
    """Share of all CPUs' time between two ``cpu_sample``s used by anything but this process
    (and its descendants)."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    others = (after[1] - before[1]) - (after[2] - before[2])
    return max(0.0, others / ((after[0] - before[0]) * (os.cpu_count() or 1)))


@dataclass
class Series:
    """One implementation's samples: ``loops`` calls each, ``want`` kept, at most ``most`` taken."""
    impl: Any
    loops: int
    want: int
    most: int
    times: list[float] = field(default_factory=list)  # seconds per call, per sample
    cpus: list[float] = field(default_factory=list)  # this process's CPU seconds per call
    loads: list[float | None] = field(default_factory=list)  # other processes' share during its round

    def quiet(self) -> int:
        return sum(1 for load in self.loads if load is None or load <= OTHER_LOAD_FLAG)

    def needs(self) -> bool:
        taken = len(self.times)
        return taken < self.want or (taken < self.most and self.quiet() < self.want)

    def kept(self) -> list[int]:
        """The ``want`` least disturbed samples (the earlier of equals)."""
        order = sorted(range(len(self.times)), key=lambda i: (self.loads[i] or 0.0, i))
        return sorted(order[:self.want])

    def figures(self) -> tuple[float, float, float | None, dict]:
        """(median seconds per call, median CPU seconds per call, mean other load or None, stats)."""
        keep = self.kept()
        times = [self.times[i] for i in keep]
        loads = [x for i in keep if (x := self.loads[i]) is not None]
        q1, q3 = np.percentile(times, [25, 75])
        stats = {"samples": len(keep), "taken": len(self.times), "loops": self.loops, "q1": float(q1),
                 "q3": float(q3)}
        return (float(np.median(times)), float(np.median([self.cpus[i] for i in keep])),
                sum(loads) / len(loads) if loads else None, stats)


def _calibrate(impl, budget: float, repeats: int, min_samples: int) -> Series:
    """A warm call, then one timed call to size the loop and the number of samples."""
    with running(impl):
        impl.fn()  # warm caches and lazy imports
        t0 = time.perf_counter()
        impl.fn()
        once = max(time.perf_counter() - t0, 1e-7)
    want = max(min_samples, min(repeats, int(budget / once)))
    loops = max(1, int(budget / repeats / once))
    return Series(impl, loops, want, want + max(1, want // 2))


def _sample(series: Series) -> tuple[float, float]:
    """One sample: (seconds per call, this process's CPU seconds per call)."""
    fn, loops = series.impl.fn, series.loops
    with running(series.impl):
        if loops >= WARM_LOOPS:
            fn()
        c0 = time.process_time()
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        t = time.perf_counter() - t0
        return t / loops, (time.process_time() - c0) / loops


def sample_case(impls: list, budget: float, repeats: int, min_samples: int, probes: list | tuple = (),
                probe_runs: int = 0) -> list[Series]:
    """Time ``impls`` (one case's) in interleaved rounds; their series, in the same order.

    ``probes``: callables (a compute-peak loop each, ``peaks.Probe``) called ``probe_runs``
    times, between rounds spread over the case (every few rounds, the rest at the end), so
    what they measure is measured under the same conditions as the rows."""
    series = [_calibrate(impl, budget, repeats, min_samples) for impl in impls]
    every = max(1, max(s.want for s in series) // probe_runs) if probe_runs else 0
    probed = 0
    before = cpu_sample()
    rounds = 0
    while pending := [s for s in series if s.needs()]:
        start = rounds % len(pending)
        taken = [(s, *_sample(s)) for s in pending[start:] + pending[:start]]
        after = cpu_sample()
        load = other_load(before, after)
        for s, t, cpu in taken:
            s.times.append(t)
            s.cpus.append(cpu)
            s.loads.append(load)
        if probes and probed < probe_runs and rounds % every == 0:
            for probe in probes:
                probe()
            probed += 1
            after = cpu_sample()  # the probes' time is no row's
        before = after
        rounds += 1
    for _ in range(probed, probe_runs if probes else 0):
        for probe in probes:
            probe()
    return series
