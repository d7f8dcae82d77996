"""Per-worker throughput of pplx_codec.dask on a LocalCluster: the figures of
the README's "Scale-out on Dask" section.

    python benches/dask_scaleout.py [--dir DIR] [--binary-shards 8] [--binary-rows 1000000]

Search: shards written as stores (binary 1024-bit codes, int8 1024-dim
vectors), searched with pplx_codec.dask.search from 2 worker processes of
1 thread each (threads=1 per task).  Each per-shard task's compute time comes
from distributed's task stream, so "GB/s per worker" is one shard's bytes over
the time its one worker spent scanning it (page cache warm: the first search
is a warm-up).  Embedding: a 2-worker embed() of distinct texts against the
reference server (hash backend) in its own process, 1024-dim int8.

Not collected by pytest (not bench_*.py): it writes ~2 GB and takes a minute.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from distributed import Client, LocalCluster, get_task_stream

import pplx_codec as pc
import pplx_codec.dask as pdask
from pplx_codec import store
from pplx_codec.server import running


def write_shards(root: Path, kind: str, shards: int, rows: int, dim: int = 1024) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for s in range(shards):
        p = root / f"{kind}-{s:03d}"
        if kind == "binary":
            store.save(p, binary=rng.integers(0, 256, (rows, dim // 8), dtype=np.uint8))
        else:   # both encodings of the same rows, as embed(encodings=("int8", "binary")) writes them
            v = rng.integers(-128, 128, (rows, dim), dtype=np.int8)
            store.save(p, int8=v, binary=pc.pack_bits(v))
        paths.append(p)
    return paths


def timed_search(client, x, queries, k, repeats=3, **kw) -> tuple[float, list[float]]:
    """(best wall seconds, per-shard compute seconds of that run)."""
    pdask.search(x, queries, k, **kw)   # warm-up: page cache, imports on the workers
    best, tasks = float("inf"), []
    for _ in range(repeats):
        with get_task_stream(client) as ts:
            t0 = time.perf_counter()
            pdask.search(x, queries, k, **kw)
            wall = time.perf_counter() - t0
        # one task per shard scans it: "_shards_topk-<uuid>" for an array straight from
        # from_shards (others: "pplx-topk-<token>" blocks, or fused "...-pplx-topk-..." ones
        # with the plain key left as an alias that takes no time): the longest per block
        per_block: dict = {}
        for t in ts.data:
            key = t["key"]
            if isinstance(key, str) and key.startswith("_shards_topk"):
                block = key
            elif isinstance(key, tuple) and "pplx-topk" in str(key[0]):
                block = key[1]
            else:
                continue
            busy = sum(s["stop"] - s["start"] for s in t["startstops"] if s["action"] == "compute")
            per_block[block] = max(per_block.get(block, 0.0), busy)
        per = list(per_block.values())
        if wall < best:
            best, tasks = wall, per
    return best, tasks


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def report_search(name: str, shard_bytes: int, shards: int, wall: float, tasks: list[float]) -> None:
    med = statistics.median(tasks)
    print(f"{name}: {len(tasks)} shard tasks, median {med * 1e3:.1f} ms per {shard_bytes / 1e6:.0f} MB shard "
          f"= {shard_bytes / med / 1e9:.2f} GB/s per worker; whole query {wall * 1e3:.0f} ms for "
          f"{shards * shard_bytes / 1e9:.2f} GB = {shards * shard_bytes / wall / 1e9:.2f} GB/s on 2 workers")


def texts(n: int) -> list[str]:
    words = "the cat dog fish bird tree rock wave star moon sun river hill cloud rain snow wind leaf".split()
    rng = np.random.default_rng(1)
    return [f"doc {i}: " + " ".join(words[j] for j in rng.integers(0, len(words), 12)) for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=None, help="where to write the shards (default: a temporary directory)")
    ap.add_argument("--binary-shards", type=int, default=8)
    ap.add_argument("--binary-rows", type=int, default=1_000_000)
    ap.add_argument("--int8-shards", type=int, default=4)
    ap.add_argument("--int8-rows", type=int, default=250_000)
    ap.add_argument("--texts", type=int, default=40_000)
    args = ap.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="pplx-dask-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as lc, \
                Client(lc) as client:
            bpaths = write_shards(root, "binary", args.binary_shards, args.binary_rows)
            codes = pdask.from_shards(bpaths)
            rng = np.random.default_rng(2)
            for m in (1, 100):
                q = rng.integers(0, 256, (m, 128), dtype=np.uint8)
                wall, tasks = timed_search(client, codes, q, 10)
                report_search(f"Hamming, {m} quer{'y' if m == 1 else 'ies'}, k=10", args.binary_rows * 128,
                              args.binary_shards, wall, tasks)
            ipaths = write_shards(root, "int8", args.int8_shards, args.int8_rows)
            vecs = pdask.from_shards(ipaths, encoding="int8")
            norms = pdask.norms(vecs).persist()   # once, reused by every cosine search
            q = rng.integers(-128, 128, (1, 1024), dtype=np.int8)
            wall, tasks = timed_search(client, vecs, q, 10, db_norms=norms)
            report_search("int8 cosine, 1 query, k=10", args.int8_rows * 1024, args.int8_shards, wall, tasks)
            # binary retrieval + int8 rescoring: the rescoring reads k * rescore rows of the int8 shards
            bcodes = pdask.from_shards(ipaths, encoding="binary")
            n = args.int8_shards * args.int8_rows
            for label, fn in [("binary top-40 over the same rows", lambda: pdask.search(bcodes, pc.pack_bits(q), 40)),
                              ("+ int8 rescoring to top-10", lambda: pdask.search_rescore(bcodes, vecs, q, 10, 4))]:
                fn()
                best = min(_timed(fn) for _ in range(5))
                print(f"{label}, {n} rows, 1 query: {best * 1e3:.0f} ms")

            # the fixed cost of a query: 100 tiny shards (1000 codes each), so the time is the
            # cluster's per-task work (scheduling, messages), not scanning
            tiny = []
            for s in range(100):
                np.save(root / f"tiny-{s:03d}.npy", rng.integers(0, 256, (1000, 128), dtype=np.uint8))
                tiny.append(root / f"tiny-{s:03d}.npy")
            small = pdask.from_shards(tiny)
            q1 = rng.integers(0, 256, (1, 128), dtype=np.uint8)
            for g in (1, 10):
                pdask.search(small, q1, 10, shards_per_task=g)
                best = min(_timed(lambda g=g: pdask.search(small, q1, 10, shards_per_task=g)) for _ in range(5))
                print(f"fixed cost: 100 tiny shards, shards_per_task={g} ({-(-100 // g)} scan tasks): "
                      f"{best * 1e3:.0f} ms per query")

            t = texts(args.texts)
            with running(api_keys=["bench"], backend="hash", separate_process=True) as url:
                pdask.embed(t[:2000], root / "warm", api_key="bench", base_url=url, partition_size=1000)
                t0 = time.perf_counter()
                r = pdask.embed(t, root / "emb", api_key="bench", base_url=url, partition_size=4000,
                                max_concurrency=4)
                wall = time.perf_counter() - t0
            side = [json.loads((root / "emb" / f"{s['path']}.json").read_text())
                    for s in r.manifest["shards"]]
            per_task = [s["count"] / s["seconds"] for s in side]
            print(f"embed: {len(t)} texts, 1024-dim int8, {len(side)} partitions of 4000, max_concurrency=4: "
                  f"{wall:.2f} s = {len(t) / wall:.0f} vectors/s on 2 workers; per partition task (one worker): "
                  f"median {statistics.median(per_task):.0f} vectors/s (requests, decoding, writing the shard)")
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
