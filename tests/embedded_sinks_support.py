"""What the LanceDB and sqlite-vec sink tests share: stores with ties, hostile
texts, the top-k comparison that allows a database's own order of ties, and
a load killed with SIGKILL in a child process."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np

import pplx_codec as pc
from pplx_codec import store

MODEL = "pplx-embed-v1-0.6b"

HOSTILE = ["", "a\x00b", "line\nbreak\r\n", "quote ' \" `; DROP TABLE x; --", "é漢字🙂", "x" * 5_000,
           "tab\tand \\ backslash", "\u2028\u2029", "\ufeffbom"]


def tied_rows(n: int, d: int, *, seed: int = 0, zeros: bool = False) -> np.ndarray:
    """int8 rows, half of them copies of a few distinct rows (exact ties for every metric),
    the rest random; no zero component unless ``zeros``."""
    rng = np.random.default_rng(seed)
    base = rng.integers(-128, 128, (5, d), dtype=np.int8)
    x = rng.integers(-128, 128, (n, d), dtype=np.int8)
    pick = rng.random(n) < 0.5
    x[pick] = base[rng.integers(0, len(base), int(pick.sum()))]
    if not zeros:
        x[x == 0] = 1
    return x


def make_store(path, n: int, d: int = 128, *, seed: int = 0, texts=None, model: str | None = MODEL,
               binary: bool = True, zeros: bool = False) -> store.Stored:
    """A store of ``tied_rows`` with codes in Perplexity's order (LSB first) and texts."""
    x = tied_rows(n, d, seed=seed, zeros=zeros)
    texts = [f"row {i} " + HOSTILE[i % len(HOSTILE)] for i in range(n)] if texts is None else texts
    codes = pc.pack_bits(x, "little") if binary and d % 8 == 0 else None
    store.save(path, int8=x, binary=codes, bitorder="little", texts=texts,
               meta={"model": model} if model is not None else None)
    return store.load(path)


def assert_same_topk(D_db, I_db, D_ours, I_ours, dist_all, *, atol: float = 0.0) -> None:
    """A database's top-k against ours where the database may order (and pick among) ties its
    own way: the same distances in order; every returned id really at its distance; the ids
    strictly closer than the k-th distance the same set; none repeated."""
    D_db, I_db = np.asarray(D_db, np.float64), np.asarray(I_db, np.int64)
    D_ours, I_ours = np.asarray(D_ours, np.float64), np.asarray(I_ours, np.int64)
    assert len(I_db) == len(I_ours) and len(set(I_db.tolist())) == len(I_db)
    np.testing.assert_allclose(D_db, D_ours, rtol=0, atol=atol)
    np.testing.assert_allclose(np.asarray(dist_all, np.float64)[I_db], D_db, rtol=0, atol=atol)
    kth = D_ours[-1]
    assert set(I_db[D_db < kth - atol].tolist()) == set(I_ours[D_ours < kth - atol].tolist())


def kill_midway(code: str, timeout: float = 60.0) -> None:
    """Run ``code`` in a child Python, wait for its line "ready" (printed at a point where it
    sleeps in the middle of a load), then SIGKILL it: no cleanup code runs."""
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()  # type: ignore[union-attr]
        assert line == "ready\n", f"child said {line!r}, exit {child.poll()}"
        time.sleep(0.1)
    finally:
        child.kill()
        child.wait(timeout)
        child.stdout.close()  # type: ignore[union-attr]
