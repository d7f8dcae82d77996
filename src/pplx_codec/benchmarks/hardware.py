"""What hardware a benchmark ran on: the CPU's name, the instruction-set flags our
kernel tiers (and the peers') depend on, and which kernels each peer library
loaded.  Used by ``pplx-codec bench`` (table header, ``--json``) and
``pplx-codec info`` (its ``cpu:`` line).

Everything here is best effort and never raises: a CPU name or a peer's kernel
level that cannot be read is reported as unknown, not guessed.
"""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
import sys
from typing import Any

# The CPU flags our tiers and the peers' kernels depend on, in Linux /proc/cpuinfo
# spelling: popcnt/bmi2/avx2 (avx2 tier), avx512 f/dq/bw/vl/vpopcntdq/vnni/vbmi (avx512
# tier), gfni (its GFNI variant), amx_tile/amx_int8 (amx tier); on Arm asimd (neon tier),
# asimddp (neon_dotprod), and i8mm/sve, which peers use.
X86_FLAGS = ("popcnt", "bmi2", "avx2", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vpopcntdq",
             "avx512_vnni", "avx512vbmi", "gfni", "amx_tile", "amx_int8")
ARM_FLAGS = ("asimd", "asimddp", "i8mm", "sve")

# Arm "CPU part" numbers (implementer 0x41, Arm Ltd) of common server and board cores
_ARM_PARTS = {0xd03: "Cortex-A53", 0xd05: "Cortex-A55", 0xd08: "Cortex-A72", 0xd0b: "Cortex-A76",
              0xd0c: "Neoverse-N1", 0xd40: "Neoverse-V1", 0xd44: "Cortex-X1", 0xd49: "Neoverse-N2",
              0xd4f: "Neoverse-V2", 0xd84: "Neoverse-V3", 0xd8e: "Neoverse-N3"}
_ARM_IMPLEMENTERS = {0x41: "Arm", 0x61: "Apple", 0xc0: "Ampere", 0x48: "HiSilicon", 0x51: "Qualcomm"}

# numpy's names for the same features (its private __cpu_features__), the fallback where
# /proc/cpuinfo is unavailable (macOS, Windows)
_NUMPY_NAMES = {"popcnt": "POPCNT", "bmi2": "BMI2", "avx2": "AVX2", "avx512f": "AVX512F", "avx512dq": "AVX512DQ",
                "avx512bw": "AVX512BW", "avx512vl": "AVX512VL", "avx512_vpopcntdq": "AVX512VPOPCNTDQ",
                "avx512_vnni": "AVX512VNNI", "avx512vbmi": "AVX512VBMI", "gfni": "GFNI", "asimd": "ASIMD",
                "asimddp": "ASIMDDP", "sve": "SVE"}


def _is_arm() -> bool:
    return platform.machine().lower() in ("aarch64", "arm64", "armv8l")


def _cpuinfo() -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per processor block (Linux), else []."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return []
    blocks = []
    for block in text.split("\n\n"):
        entry = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                entry[key.strip()] = value.strip()
        if entry:
            blocks.append(entry)
    return blocks


def _sysctl(name: str) -> str | None:
    try:
        r = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0:
        return None
    return r.stdout.strip() or None


def _arm_name(entry: dict[str, str]) -> str | None:
    try:
        implementer = int(entry["CPU implementer"], 16)
        part = int(entry["CPU part"], 16)
    except (KeyError, ValueError):
        return None
    vendor = _ARM_IMPLEMENTERS.get(implementer, f"implementer {implementer:#x}")
    core = _ARM_PARTS.get(part) if implementer == 0x41 else None
    return f"{vendor} {core}" if core else f"{vendor} part {part:#x}"


def cpu_name() -> str:
    """The CPU's marketing name: /proc/cpuinfo "model name" (Linux x86), the Arm
    implementer/part (Linux Arm), ``sysctl machdep.cpu.brand_string`` (macOS), else
    ``platform.processor()``; "unknown CPU" when none says anything."""
    info = _cpuinfo()
    for entry in info:
        for key in ("model name", "Model Name", "cpu model", "Processor"):
            if entry.get(key):
                return " ".join(entry[key].split())
    for entry in info:
        name = _arm_name(entry)
        if name:
            return name
    if sys.platform == "darwin":
        name = _sysctl("machdep.cpu.brand_string")
        if name:
            return name
    return platform.processor() or "unknown CPU"


def cpu_flags() -> list[str]:
    """The relevant flags (``X86_FLAGS`` or ``ARM_FLAGS``) this CPU reports, in that order."""
    wanted = ARM_FLAGS if _is_arm() else X86_FLAGS
    for entry in _cpuinfo():
        have = entry.get("flags") or entry.get("Features")
        if have is not None:
            present = set(have.split())
            return [f for f in wanted if f in present]
    if sys.platform == "darwin" and _is_arm():  # Apple silicon: every core has NEON and the dot product
        dotprod = _sysctl("hw.optional.arm.FEAT_DotProd") == "1"
        return ["asimd"] + (["asimddp"] if dotprod else []) + \
            (["i8mm"] if _sysctl("hw.optional.arm.FEAT_I8MM") == "1" else [])
    features = _numpy_cpu("__cpu_features__") or {}  # elsewhere: numpy's own detection (no AMX there)
    return [f for f in wanted if features.get(_NUMPY_NAMES.get(f, ""), False)]


def _numpy_cpu(name: str):
    """numpy's private record of the CPU's features and its SIMD dispatch targets, or None."""
    try:
        return getattr(importlib.import_module("numpy._core._multiarray_umath"), name)
    except (ImportError, AttributeError):
        return None


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# The peers' worker-thread pools, told to sleep when idle.  By default
# numpy's OpenBLAS spins ~2^28 cycles after every call (measured on Zen 4:
# 106 ms of CPU in the 200 ms after one matmul) and faiss's OpenMP threads
# spin too (8 ms): in a bench whose rows are interleaved, that spinning lands
# in the next row's time, on the same two cores.  Read by the libraries when
# they load, so `pplx-codec bench` sets them by running itself again
# (cli.py) unless the user set them.
QUIET_THREAD_POOLS = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}


def thread_pools() -> dict[str, str | None]:
    """The pool settings this process started with (None: unset, the library's default)."""
    return {name: os.environ.get(name) for name in QUIET_THREAD_POOLS}


def describe_thread_pools() -> str:
    """One line: what the peers' idle worker threads do in this run."""
    now = thread_pools()
    settings = ", ".join(f"{k}={v}" for k, v in now.items() if v is not None) or "library defaults"
    quiet = all(now[k] == v for k, v in QUIET_THREAD_POOLS.items())
    effect = ("idle OpenMP/OpenBLAS worker threads sleep" if quiet
              else "idle worker threads may spin into the next row's time")
    return f"{settings} ({effect})"


def machine() -> dict[str, Any]:
    """The machine, for a benchmark's JSON: CPU name, architecture, OS, relevant flags, CPUs, and the
    thread-pool settings the run had."""
    return {"cpu": cpu_name(), "arch": platform.machine(), "system": f"{platform.system()} {platform.release()}",
            "flags": cpu_flags(), "logical_cpus": os.cpu_count(), "usable_cpus": usable_cpus(),
            "thread_pools": thread_pools()}


def describe_cpu() -> str:
    """One line: ``AMD EPYC 7B13 (x86_64, 2 CPUs; popcnt bmi2 avx2)``."""
    m = machine()
    cpus = f"{m['usable_cpus']} of {m['logical_cpus']} CPUs" if m["usable_cpus"] != m["logical_cpus"] \
        else f"{m['logical_cpus']} CPUs"
    return f"{m['cpu']} ({m['arch']}, {cpus}; {' '.join(m['flags']) or 'no SIMD flags of interest'})"


# ----------------------------------------------------------------- peers' kernels


def _module(name: str):
    try:
        return importlib.import_module(name)
    except Exception:  # not installed, or a broken install: it must not stop the benchmark header
        return None


def _faiss(faiss) -> tuple[str, str]:
    """faiss 1.15 has one library with dynamic dispatch (``SIMDConfig``: the level it
    picked); older wheels have one library per level, chosen by faiss/loader.py."""
    simd = getattr(faiss, "SIMDConfig", None)
    if simd is not None and hasattr(simd, "get_level_name"):
        try:
            level = str(simd.get_level_name())
            detail = f"dynamic dispatch, running {level}"
            mask = int(faiss.compiled_simd_levels())
            names = {int(getattr(faiss, a)): a[len("SIMDLevel_"):] for a in dir(faiss)
                     if a.startswith("SIMDLevel_") and a != "SIMDLevel_COUNT"}
            compiled = [names[b] for b in sorted(names) if mask >> b & 1]
            if compiled:
                detail += f" (compiled: {' '.join(compiled)})"
            return level, detail
        except Exception:  # fall back to the compile options
            pass
    try:
        options = str(faiss.get_compile_options()).split()
    except Exception:
        options = []
    loaded = [m[len("faiss.swigfaiss_"):] if m != "faiss.swigfaiss" else "generic" for m in sys.modules
              if m.startswith("faiss.swigfaiss")]  # faiss.swigfaiss_avx512_spr -> avx512_spr
    levels = [o for o in options if o not in ("OPTIMIZE", "DD")] or ["generic"]
    detail = f"loaded build: {', '.join(loaded) or '?'}; compile options: {' '.join(options) or '?'}"
    return levels[-1], detail


def _capabilities(lib) -> tuple[str, str]:
    """numkong/simsimd: every capability flag that is true here; the row shows the newest one
    (each kernel uses the best it has, which may be an older one)."""
    try:
        caps = [k for k, v in lib.get_capabilities().items() if v]
    except Exception:
        return "?", "capabilities unknown"
    best = [c for c in caps if c != "serial"]
    return (best[-1] if best else "serial"), "capabilities: " + " ".join(caps)


def _pybase64(lib) -> tuple[str, str]:
    try:  # private, stable since pybase64 1.0
        path = lib._get_simd_path()
        name = str(lib._get_simd_name(path))
        return name, f"SIMD path {name}"
    except Exception:
        return "?", "SIMD path unknown"


def _usearch(lib) -> tuple[str, str]:
    try:
        compiled = importlib.import_module("usearch.compiled")
        available = str(compiled.hardware_acceleration_available())
    except Exception:
        return "?", "hardware acceleration unknown"
    caps = [c.strip() for c in available.split(",") if c.strip()]
    best = [c for c in caps if c != "serial"]
    return (best[-1] if best else "serial"), f"available: {' '.join(caps)} (rows name the kernel per metric)"


def usearch_kernel(metric: str, dtype: str, ndim: int) -> str | None:
    """The kernel usearch uses for ``metric`` ("Hamming", "Cos") on ``dtype`` ("B1", "I8")."""
    try:
        compiled = importlib.import_module("usearch.compiled")
        return str(compiled.hardware_acceleration(dtype=getattr(compiled.ScalarKind, dtype), ndim=ndim,
                                                  metric_kind=getattr(compiled.MetricKind, metric)))
    except Exception:
        return None


def _numpy(np) -> tuple[str, str]:
    __cpu_dispatch__, __cpu_features__ = _numpy_cpu("__cpu_dispatch__"), _numpy_cpu("__cpu_features__")
    if __cpu_dispatch__ is None or __cpu_features__ is None:
        return "?", "SIMD unknown"
    here = [d for d in __cpu_dispatch__ if __cpu_features__.get(d)]
    best = here[-1] if here else "baseline"
    return best, f"best dispatch target here {best} (of {' '.join(__cpu_dispatch__)})"


def numpy_blas() -> str | None:
    """numpy's BLAS and the kernels it picked (e.g. ``openblas Haswell``), via threadpoolctl."""
    tpc = _module("threadpoolctl")
    if tpc is None:
        return None
    for lib in tpc.threadpool_info():
        if lib.get("user_api") == "blas":
            return " ".join(str(x) for x in (lib.get("internal_api"), lib.get("architecture")) if x)
    return None


# peer key -> (module, function describing it); keys are also how table rows name them
_PEERS = {"faiss": ("faiss", _faiss), "numkong": ("numkong", _capabilities), "simsimd": ("simsimd", _capabilities),
          "usearch": ("usearch.index", _usearch), "pybase64": ("pybase64", _pybase64), "numpy": ("numpy", _numpy)}


def peer_kernels(names=None) -> dict[str, dict[str, str]]:
    """For each installed peer of ``names`` (keys of ``peer_of``; default all):
    ``{"kernels": short tag for the table's rows, "detail": one line for the header}``."""
    out = {}
    for key in names if names is not None else [*_PEERS, "numpy BLAS"]:
        if key == "numpy BLAS":
            blas = numpy_blas()
            if blas:
                out[key] = {"kernels": blas.split()[-1], "detail": blas + " (threadpoolctl)"}
            continue
        if key not in _PEERS:
            continue
        mod = _module(_PEERS[key][0])
        if mod is None:
            continue
        tag, detail = _PEERS[key][1](mod)
        out[key] = {"kernels": tag, "detail": detail}
    return out


def peer_of(row_name: str) -> str | None:
    """Which peer's kernels a table row runs, from its name ("faiss IndexBinaryFlat ..." ->
    "faiss"; "orjson + pybase64 per item" -> "pybase64": the SIMD part of that row)."""
    low = row_name.lower()
    for key in ("faiss", "numkong", "simsimd", "usearch", "pybase64"):
        if key in low:
            return key
    if "blas" in low and "numpy" in low:
        return "numpy BLAS"
    if "numpy" in low or "np." in low or "einsum" in low:
        return "numpy"
    return None
