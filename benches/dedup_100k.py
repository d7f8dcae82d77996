"""Speed of ``pplx-codec dedup`` on 100,000 rows x 1024 dimensions: the
figures of the README's "Near-duplicates" section.

    python benches/dedup_100k.py [--rows 100000] [--dim 1024] [--repeat 3] [--dir DIR]

The store is synthetic (the same seed every run): rows drawn around a shared
direction (two random rows have cosine ~0.2, as embeddings of one corpus
do), norms spread +-30%, and 5% of them near-copies of another row (small
int8 noise: cosine ~0.96-0.99).  Each mode runs ``pplx-codec dedup`` in its
own process ``--repeat`` times; the medians of the wall time (process start
to exit, store load and norms included) are printed with the groups found,
and each run's CPU time (user + sys of all its threads: on a machine shared
with other jobs, the wall time is theirs as much as ours).
The fast mode's recall: the pairs of rows it puts in one group over the pairs
the exact answer does (its groups are always parts of exact groups).

Not collected by pytest (not bench_*.py): it writes ~230 MB and runs minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import pplx_codec as pc
from pplx_codec import store as stores


def make_store(path: Path, n: int, dim: int) -> None:
    rng = np.random.default_rng(14)
    shared = rng.standard_normal(dim)
    v = np.empty((n, dim), np.int8)
    for s in range(0, n, 10_000):
        m = min(n, s + 10_000) - s
        x = 0.5 * shared + rng.standard_normal((m, dim))
        x *= rng.uniform(0.7, 1.3, (m, 1)) * 30
        v[s:s + m] = np.clip(np.rint(x), -128, 127)
    copies = rng.choice(n, n // 20, replace=False)
    sources = rng.integers(0, n, copies.size)
    noise = rng.integers(-6, 7, (copies.size, dim))
    v[copies] = np.clip(v[sources].astype(np.int16) + noise, -128, 127)
    stores.save(path, int8=v, binary=pc.pack_bits(v), meta={"model": "synthetic"})


def run(store: Path, extra: list[str], repeat: int) -> tuple[float, list[list[int]], list[float]]:
    times, groups = [], []
    for _ in range(repeat):
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "pplx_codec", "dedup", str(store), *extra],
                             capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - t0)
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime
        print(f"  run: {' '.join(extra)}: {times[-1]:.2f} s wall, {cpu:.2f} s CPU (user + sys, all threads); "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
        groups = [json.loads(line)["rows"] for line in out.stdout.splitlines()]
    return statistics.median(times), groups, times


def pairs(groups: list[list[int]]) -> int:
    return sum(len(g) * (len(g) - 1) // 2 for g in groups)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threshold", default="0.95")
    p.add_argument("--candidates", type=int, action="append", help="fast modes to time (default 10)")
    p.add_argument("--dir", help="where to write the store (default: a temporary directory)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        store = Path(tmp) / "store"
        make_store(store, args.rows, args.dim)
        print(f"{args.rows:,} rows x {args.dim} dims, threshold {args.threshold}; "
              f"medians of {args.repeat} runs of: pplx-codec dedup {store} --threshold {args.threshold} [...]",
              flush=True)
        median, exact, times = run(store, ["--threshold", args.threshold], args.repeat)
        print(f"exact:          {median:7.2f} s  ({', '.join(f'{t:.2f}' for t in times)}); "
              f"{len(exact):,} groups, {sum(map(len, exact)):,} rows, {pairs(exact):,} pairs")
        for k in args.candidates or [10]:
            median, fast, times = run(store, ["--threshold", args.threshold, "--candidates", str(k)], args.repeat)
            inside = all(any(set(f) <= set(e) for e in exact) for f in fast)
            print(f"--candidates {k:<3d} {median:7.2f} s  ({', '.join(f'{t:.2f}' for t in times)}); "
                  f"{len(fast):,} groups; pair recall {pairs(fast) / max(1, pairs(exact)):.4f}; "
                  f"groups identical: {fast == exact}; inside exact groups: {inside}")
            if not inside:  # the fast mode confirms every pair exactly: a group outside the exact ones is a bug
                raise SystemExit(f"--candidates {k} reported a group that is not inside an exact group")


if __name__ == "__main__":
    main()
