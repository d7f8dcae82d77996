"""Which tier runs each kernel family by default: measured once per CPU model and package version.

A tier is chosen by CPUID as "the best this CPU runs", but the best instructions are not always
the fastest code: on AMD Zen 4 most 512-bit operations run as two 256-bit halves, and some
avx512 kernels lose to avx2 there.  So at the first import on a machine, each family with more
than one path (``_dispatch.candidates``) is timed on small in-cache workloads
(``codec/simd/calibrate.h``) and the default table takes each family from its fastest path.
The choice only ever changes speed: every path computes the same results (the tests hold each
one to the serial oracle, bit for bit).

The result is cached, per CPU model, package version and build, as JSON in the user's cache
directory (``PPLX_CODEC_CACHE_DIR`` moves it; tests point it at a temporary directory), so the
measurement runs once, not at every import.  ``PPLX_CODEC_CALIBRATE=0`` turns it off (every
family from the best tier CPUID reports); ``PPLX_CODEC_ISA`` forces one tier for everything
and skips it.

The rule, in ``choose``: per workload the fastest of ``ROUNDS`` interleaved runs (the minimum is
what the code costs; anything above it is the machine's noise), per path the geometric mean of
its workloads' times relative to the preferred path (the highest tier), and another path
replaces the preferred one only when it is faster by more than ``MARGIN``: a near-tie keeps the
preferred path, so repeated calibrations of an idle machine choose the same.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

from . import _dispatch
from ._version import VERSION

ENV_CALIBRATE = "PPLX_CODEC_CALIBRATE"
ENV_CACHE_DIR = "PPLX_CODEC_CACHE_DIR"
OFF = ("0", "off", "no", "false")
FORMAT = 1  # of the cache file; another one is measured again

ROUNDS = 15          # interleaved rounds of every path's workloads
MIN_ROUNDS = 5       # kept even when the budget runs out
BUDGET_SECONDS = 0.06  # the whole calibration stops adding rounds past this
MARGIN = 0.04        # another path must beat the preferred one by more than this
DROP_AFTER = 2       # rounds after which paths far behind (> DROP_RATIO) stop being timed
DROP_RATIO = 1.5


def cache_dir() -> Path:
    """Where the measured choice is kept: ``PPLX_CODEC_CACHE_DIR``, else the platform's user cache directory."""
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR])
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "pplx-codec" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "pplx-codec"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pplx-codec"


def cpu_model() -> str:
    """The CPU model as precisely as the OS tells it: on x86 CPUID's vendor, family, model,
    stepping and brand string (a hypervisor may hide the brand, not the family and model); on
    Linux/aarch64 the implementer and part numbers; else what ``platform`` knows."""
    ident = _dispatch.cpu_identity()
    if ident:
        return ident
    try:
        lines = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    fields = ("CPU implementer", "CPU architecture", "CPU variant", "CPU part", "CPU revision")
    seen = [line.split(":", 1)[1].strip() for line in lines if line.split(":", 1)[0].strip() in fields]
    import platform

    return " ".join([platform.machine(), platform.processor(), *seen[:len(fields)]]).strip()


def cache_key() -> dict:
    """What a cached choice was measured on: the CPU model, the tiers it runs, this package's
    version and this build of the kernels (another build of the same version may differ)."""
    ext = Path(_dispatch.__file__)
    try:
        st = ext.stat()
        build = f"{ext.name}:{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        build = ext.name
    return {"format": FORMAT, "version": VERSION, "build": build, "cpu": cpu_model(),
            "detected": _dispatch.detected()}


def cache_file(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / f"kernel-paths-{digest}.json"


def choose(times: dict[str, list[float]], preferred: str) -> tuple[str, dict[str, float]]:
    """The path to run and each path's cost relative to the preferred one.

    ``times``: per path, its time per workload (the same workloads for every path).
    ``preferred``: the highest tier, kept unless another path is faster by more than ``MARGIN``."""
    base = times[preferred]
    relative = {}
    for path, ts in times.items():
        ratios = [max(t, 1e-9) / b for t, b in zip(ts, base, strict=True) if b > 0]  # a clock tick of 0: not log(0)
        relative[path] = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else math.inf
    best = min(relative, key=lambda p: (relative[p], p != preferred))
    return (best if relative[best] < 1 - MARGIN else preferred), relative


def measure(budget: float = BUDGET_SECONDS) -> dict:
    """Time every family that has more than one path and choose; returns the record the
    cache keeps: ``{"families": {family: {"path", "candidates", "relative"}}, "rounds",
    "seconds"}``.  Bounded: rounds stop once ``budget`` seconds have passed (after
    ``MIN_ROUNDS``)."""
    start = time.perf_counter()
    families = {f: _dispatch.candidates(f) for f in _dispatch.FAMILIES}
    timed = {f: c for f, c in families.items() if len(c) > 1}
    best: dict[str, dict[str, list[float]]] = {
        f: {p: [math.inf] * _dispatch.shapes(f) for p in c} for f, c in timed.items()}
    live = {f: list(c) for f, c in timed.items()}
    rounds = 0
    try:
        for f, paths in timed.items():  # one untimed run each: first-touch, clocks, caches
            for p in paths:
                for s in range(_dispatch.shapes(f)):
                    _dispatch.measure(f, p, s)
        while rounds < ROUNDS and (rounds < MIN_ROUNDS or time.perf_counter() - start < budget):
            for f, paths in live.items():
                order = paths[rounds % len(paths):] + paths[:rounds % len(paths)]  # rotate who runs first
                for s in range(_dispatch.shapes(f)):
                    for p in order:
                        best[f][p][s] = min(best[f][p][s], _dispatch.measure(f, p, s))
            rounds += 1
            if rounds == DROP_AFTER:
                for f, paths in live.items():
                    _, rel = choose(best[f], paths[-1])
                    fastest = min(rel.values())
                    live[f] = [p for p in paths if rel[p] <= fastest * DROP_RATIO or p == paths[-1]]
    finally:
        _dispatch.release_measure_data()
    out = {}
    for f, paths in families.items():
        if f not in timed:
            out[f] = {"path": paths[-1], "candidates": paths, "relative": {}}
            continue
        path, rel = choose(best[f], paths[-1])  # a path dropped early: its times from its first rounds
        out[f] = {"path": path, "candidates": paths, "relative": {p: round(rel[p], 4) for p in paths}}
    return {"families": out, "rounds": rounds, "seconds": round(time.perf_counter() - start, 4)}


# How the default paths were chosen in this process: "measured" (now or from the cache),
# "detected" (calibration off, or nothing to choose), with the record and where it came from.
_state: dict = {"why": "detected", "record": None, "source": None, "cache_error": None}


def read_cache(key: dict) -> dict | None:
    """The cached record for ``key``, or None (missing, unreadable, another key or format, or a
    path this build no longer has)."""
    try:
        data = json.loads(cache_file(key).read_text(encoding="utf-8"))
        if data.get("key") != key:
            return None
        record = data["record"]
        for f, entry in record["families"].items():
            if entry["path"] not in _dispatch.candidates(f):
                return None
        return record
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_cache(key: dict, record: dict) -> str | None:
    """Keep ``record`` for ``key``; the error in one line when the directory is not writable
    (then the next process measures again: slower to start, never wrong)."""
    path = cache_file(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "record": record,
                                   "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                                  indent=1), encoding="utf-8")
        os.replace(tmp, path)  # whole or not at all, whoever else writes it at the same time
        return None
    except OSError as e:
        return f"{type(e).__name__}: {e}"


def apply(*, force: bool = False) -> None:
    """Choose the default paths: from the cache, else by measuring (and caching); nothing
    when ``PPLX_CODEC_CALIBRATE`` is off.  ``force`` (an explicit request: ``pplx-codec info
    --calibrate``) measures again whatever the cache holds or the setting says."""
    if not force and os.environ.get(ENV_CALIBRATE, "").strip().lower() in OFF:
        _dispatch.set_paths({f: _dispatch.candidates(f)[-1] for f in _dispatch.FAMILIES})
        _state.update(why="detected", record=None, source=f"{ENV_CALIBRATE}={os.environ[ENV_CALIBRATE]}",
                      cache_error=None)
        return
    key = cache_key()
    record = None if force else read_cache(key)
    source = str(cache_file(key))
    error = None
    if record is None:
        record = measure()
        error = write_cache(key, record)
        source = "measured now" + ("" if error else f", cached in {cache_file(key)}")
    else:
        source = f"cached in {source}"
    _dispatch.set_paths({f: entry["path"] for f, entry in record["families"].items()})
    _state.update(why="measured", record=record, source=source, cache_error=error)


def state() -> dict:
    """How this process chose its default paths (for ``capabilities`` and ``pplx-codec info``)."""
    return dict(_state)
