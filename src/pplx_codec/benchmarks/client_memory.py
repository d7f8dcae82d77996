"""The client family's peak-memory case: each client runs one job in a fresh
process (this module's ``memory-job`` command), which reports its peak RSS
(client_cases.py describes the method)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np

from pplx_codec.constants import MODEL_DIMS

from ._harness import Case, Impl, current_label
from .client_setup import (
    CONCURRENCY,
    KEY,
    MEMORY_TARGET,
    MODEL,
    oracle,
    sdk_job,
    texts,
    warm,
)

# ----------------------------------------------------------------- peak memory, in a fresh process


def status_kib() -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of this process, KiB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0])
    return out


def memory_job(which: str, url: str, n: int) -> dict:
    """Run in a fresh process: one client's job of texts(n), and its peak RSS increase.

    The peak is VmHWM, reset to the current RSS just before the job.  Not ru_maxrss: in a
    process just started by exec it begins at the exec-ing parent's peak (Linux carries the
    old memory map's high-water mark into it), here the benchmark process's, holding the oracle.
    """
    import gc

    ts = texts(n)
    if which == "ours":
        from pplx_codec.client import Client

        client = Client(api_key=KEY, base_url=url, max_concurrency=CONCURRENCY)

        def run():
            return client.embed(ts, model=MODEL).vectors
    else:
        import perplexity
        import pybase64

        sdk = perplexity.Perplexity(api_key=KEY, base_url=url)

        def run():
            return sdk_job(sdk, ts, pybase64)
    gc.collect()
    try:  # reset VmHWM to the current RSS (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    before = status_kib()
    c0, t0 = time.process_time(), time.perf_counter()
    out = run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    after = status_kib()
    # without the reset, VmHWM may predate the job: the increase is then a lower bound
    increase = (after["VmHWM"] - (before["VmRSS"] if reset else before["VmHWM"])) * 1024
    return {"sha256": hashlib.sha256(out.tobytes()).hexdigest(), "shape": list(out.shape),
            "peak_increase": increase, "rss_before": before["VmRSS"] * 1024, "peak_reset": reset,
            "wall": wall, "cpu": cpu, "matrix_bytes": out.nbytes}


def memory_case(n: int, libs: dict, missing: list[str], url: str, label: str) -> Case:
    expected = hashlib.sha256(oracle(n).tobytes()).hexdigest()
    warm(url, n)
    figures: dict[str, dict] = {}
    matrix = n * MODEL_DIMS[MODEL]

    def job(which: str, name: str):
        def run():
            env = dict(os.environ)
            src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
            r = subprocess.run([sys.executable, "-m", "pplx_codec.benchmarks.client_memory", "memory-job", which, url,
                                str(n)], capture_output=True, text=True, timeout=900, env=env, check=False)
            if r.returncode != 0:
                raise RuntimeError(f"{name}: the memory job failed ({r.returncode}):\n{r.stderr[-3000:]}")
            fig = json.loads(r.stdout.strip().splitlines()[-1])
            figures[current_label() or name] = fig  # per row: ours runs once per tier with --isa
            return fig["sha256"]
        return run

    ours = f"Client.embed (max_concurrency={CONCURRENCY}), fresh process"
    impls = [Impl(ours, job("ours", ours), True)]
    if libs["perplexity"] and libs["pybase64"]:
        name = f"official SDK, {CONCURRENCY} threads + pybase64, fresh process"
        impls.append(Impl(name, job("sdk", name)))

    def report(case: Case, timings) -> tuple[list[str], list[str]]:
        lines = [(f"peak RSS increase during the job (output matrix {matrix / 1e6:.1f} MB; row times include "
                  "process start-up):")]
        for impl, _ in timings:
            f = figures.get(impl.label)
            if f is None:
                continue
            lines.append(f"  {impl.label}: {f['peak_increase'] / 1e6:7.1f} MB = {f['peak_increase'] / matrix:.2f}x "
                         f"the matrix; the job alone {f['wall']:.2f} s ({n / f['wall']:,.0f} vectors/s), "
                         f"cpu {f['cpu'] / n * 1e6:.2f} us/vector"
                         + ("" if f["peak_reset"] else " (peak not resettable: a lower bound)"))
        verdicts = []
        for impl, _ in timings:
            if impl.ours and impl.label in figures:
                got = figures[impl.label]["peak_increase"] / matrix
                tier = f" [{impl.isa}]" if impl.isa else ""
                verdicts.append(f"{case.name}{tier}: ours peak RSS increase = {got:.2f}x the output matrix "
                                f"(target <= {MEMORY_TARGET}x) {'met' if got <= MEMORY_TARGET else 'MISSED'}")
        return lines, verdicts

    return Case("client", f"peak memory: {n:,} texts -> {n:,} x 1024 int8{label}", matrix, expected, impls,
                list(missing), check=lambda got, want: np.testing.assert_equal(got, want),
                timed_by_check=True, report=report,
                note="each client in a fresh process; checked by the matrix's SHA-256")


def _main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "memory-job" and argv[1] in ("ours", "sdk"):
        print(json.dumps(memory_job(argv[1], argv[2], int(argv[3]))), flush=True)
        return 0
    print("usage: python -m pplx_codec.benchmarks.client_memory memory-job {ours|sdk} BASE_URL N", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
