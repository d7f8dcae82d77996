"""pplx_codec.dask on a distributed.LocalCluster of 2 worker processes.

Search: the Dask result must be *identical* (values, dtypes, indices, order)
to the single-machine search of the concatenated rows, on random data and on
data where most rows tie, for many chunkings (one block, even, uneven, empty
and single-row blocks), k up to beyond the row count, every metric, and the
int8 dot product above 2**24 where float32 scores tie but the integers do
not.  Embedding: against the reference server, the shards must hold exactly
what a local Client.embed of the same texts returns, in order; reruns skip
complete shards (counted at the server); failures name their partition; the
cluster-wide concurrency budget is checked by the server's own count of
requests in flight.
"""

from __future__ import annotations

import json
import os
import pickle
import threading
import time
from contextlib import contextmanager
from itertools import pairwise

import dask
import dask.array as da
import dask.bag as db
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import uvicorn
from dask.delayed import Delayed, delayed
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin
from distributed.protocol import deserialize, serialize

import pplx_codec as pc
import pplx_codec.dask as pdask
from helpers import raises_exactly
from pplx_codec import store
from pplx_codec.scaleout import _budget, _partition
from pplx_codec.scaleout import embed as embed_mod
from pplx_codec.server import FaultConfig, ServerConfig
from pplx_codec.server.app import create_app
from pplx_codec.server.ratelimit import read_log
from pplx_codec.server.rng import key as rng_key
from pplx_codec.server.rng import uniform
from pplx_codec.server.runner import _uvicorn_config, base_url, bind
from pplx_codec.settings import EmbedSettings

KEY = "dask-test-key-5f2c9a"
DIMS = 256


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as lc, \
            Client(lc) as client:
        yield client


class Tracked:
    """ASGI wrapper counting POSTs and the most in flight at once.  A request
    counts from when the app gets it until its last body message starts to
    be sent: inside the client's own window (lease taken before sending,
    given back after the body is read), so the server never over-counts."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = self.requests = 0

    def reset(self):
        with self.lock:
            self.in_flight = self.max_in_flight = self.requests = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        state = {"open": True}

        def leave():
            with self.lock:
                if state["open"]:
                    state["open"] = False
                    self.in_flight -= 1

        async def counted_send(message):
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                leave()
            await send(message)

        try:
            await self.app(scope, receive, counted_send)
        finally:
            leave()


@contextmanager
def serve(**config):
    """The reference server (hash backend) in a thread, wrapped in Tracked."""
    tracked = Tracked(create_app(ServerConfig(api_keys=[KEY], backend="hash", **config)))
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(_uvicorn_config(tracked, workers=1, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield base_url(sock), tracked
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture(scope="module")
def server():
    with serve() as (url, tracked):
        yield url, tracked


def texts_of(n: int, tag: str = "t") -> list[str]:
    words = ["cat", "dog", "fish", "bird", "tree", "rock", "wave", "star", "moon", "sun"]
    return [f"{tag} {i} " + " ".join(words[(i * j + j) % 10] for j in range(1 + i % 7)) for i in range(n)]


def local_embed(url: str, texts, encoding_format="base64_int8", bitorder="little") -> np.ndarray:
    with pc.Client(api_key=KEY, base_url=url) as c:
        return c.embed(texts, dimensions=DIMS, encoding_format=encoding_format, bitorder=bitorder).vectors


# ---------------------------------------------------------------- search data

def tied_codes(n: int, w: int, seed: int) -> np.ndarray:
    """Rows drawn from 3 distinct codes: most distances tie."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (3, w), dtype=np.uint8)
    return base[rng.integers(0, 3, n)]


def tied_vectors(n: int, d: int, seed: int) -> np.ndarray:
    """Rows drawn from 3 distinct vectors and their multiples (equal cosines,
    unequal dots), plus zero rows (cosine 0)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(-40, 41, (3, d), dtype=np.int8)
    rows = base[rng.integers(0, 3, n)] * rng.integers(1, 3, n)[:, None].astype(np.int8)
    rows[rng.random(n) < 0.1] = 0
    return rows


N = 97
CHUNKINGS = {   # rows of the test data used: sum(chunking)
    "one-block": (N,),
    "even": (25, 25, 25, 22),
    "uneven": (1, 40, 3, 0, 50, 3),
    "single-rows": (1,) * 29,   # fewer rows: one task per row
}


def dask_rows(x: np.ndarray, chunking) -> da.Array:
    return da.from_array(x, chunks=(chunking, (x.shape[1],)))


def assert_same(got, want):
    assert len(got) == len(want) == 2
    for g, w in zip(got, want, strict=True):
        assert isinstance(g, np.ndarray) and g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


# ---------------------------------------------------------------- search


@pytest.mark.parametrize("chunking", CHUNKINGS.values(), ids=CHUNKINGS.keys())
@pytest.mark.parametrize("data", ["random", "tied"])
def test_search_binary_matches_local(cluster, data, chunking):
    n = sum(chunking)
    codes = (np.random.default_rng(1).integers(0, 256, (n, 9), dtype=np.uint8) if data == "random"
             else tied_codes(n, 9, 1))
    queries = np.concatenate([codes[[0, 5, n - 1]], np.random.default_rng(2).integers(0, 256, (2, 9), np.uint8)])
    x = dask_rows(codes, chunking)
    for k in (1, 10, 40, n + 13):
        assert_same(pdask.search(x, queries, k), pc.search_binary(queries, codes, k))


@pytest.mark.parametrize("chunking", CHUNKINGS.values(), ids=CHUNKINGS.keys())
@pytest.mark.parametrize("data", ["random", "tied"])
@pytest.mark.parametrize("metric", ["cosine", "dot"])
def test_search_int8_matches_local(cluster, metric, data, chunking):
    n = sum(chunking)
    vec = (np.random.default_rng(3).integers(-128, 128, (n, 33), dtype=np.int8) if data == "random"
           else tied_vectors(n, 33, 3))
    queries = np.concatenate([vec[[1, 2, n - 1]], np.zeros((1, 33), np.int8),
                              np.random.default_rng(4).integers(-128, 128, (2, 33), np.int8)])
    x = dask_rows(vec, chunking)
    for k in (1, 10, 40, n + 13):
        assert_same(pdask.search(x, queries, k, metric), pc.search_int8(queries, vec, k, metric))
    if metric == "cosine" and len(chunking) < 10:   # given norms, numpy or dask (any chunking), give the same answer
        want = pc.search_int8(queries, vec, 12)
        assert_same(pdask.search(x, queries, 12, db_norms=pc.norms(vec)), want)
        assert_same(pdask.search(x, queries, 12, db_norms=da.from_array(pc.norms(vec), chunks=7)), want)
        np.testing.assert_array_equal(pdask.norms(x).compute(), pc.norms(vec))


def test_tied_data_really_ties():
    """The tied sets make the tie-break decide most of the ranking (else
    the tests above would not test it)."""
    codes = tied_codes(N, 9, 1)
    D, _ = pc.search_binary(codes[[0]], codes, N)
    assert len(np.unique(D)) <= 3
    vec = tied_vectors(N, 33, 3)
    S, _ = pc.search_int8(vec[[1]], vec, N)
    assert len(np.unique(S)) <= 4


def test_dot_above_2_24_is_exact(cluster):
    """int8 dots above 2**24 that differ by 1 have equal float32 scores: the
    merge must rank by the integers, as the single search does."""
    rng = np.random.default_rng(5)
    d, n = 1040, 160
    q = np.full((2, d), -128, np.int8)
    q[:, -1] = 1
    q[1, -2] = 3
    v = np.full((n, d), -128, np.int8)   # dots: 128 * 128 * 1038 + small differences
    v[:, -1] = rng.integers(-128, 128, n)
    v[:, -2] = rng.integers(-1, 2, n)
    dots = q.astype(np.int64) @ v.T.astype(np.int64)
    assert dots.min() > 2 ** 24
    assert len(np.unique(dots[0].astype(np.float32))) < len(np.unique(dots[0])) - 10   # float32 ties
    k = 40
    want = pc.search_int8(q, v, k, "dot")
    for chunking in [(37,) * 4 + (12,), (80, 80), (5,) * 32]:
        assert_same(pdask.search(dask_rows(v, chunking), q, k, "dot", split_every=3), want)
    # what a merge of the float32 scores gives instead (what this test guards against)
    starts = list(range(0, n, 37))
    naive = pc.merge_topk([pc.search_int8(q, v[s:s + 37], k, "dot") for s in starts], k, offsets=starts,
                          descending=True)
    assert not np.array_equal(naive[1], want[1])


@pytest.mark.parametrize("data", ["random", "tied"])
def test_search_rescore_matches_index(cluster, data, tmp_path):
    """Binary retrieval + int8 rescoring over stores = pplx_codec.Index.search."""
    rng = np.random.default_rng(10)
    vec = rng.integers(-128, 128, (240, 64), dtype=np.int8) if data == "random" else tied_vectors(240, 64, 10)
    bounds = [0, 1, 90, 91, 240]
    for i, (a, b) in enumerate(pairwise(bounds)):
        store.save(tmp_path / f"s{i}", int8=vec[a:b], binary=pc.pack_bits(vec[a:b]))
    stores = [tmp_path / f"s{i}" for i in range(4)]
    codes, vectors = pdask.from_shards(stores, encoding="binary"), pdask.from_shards(stores, encoding="int8")
    index = pc.Index(64)
    index.add(vec)
    q = np.concatenate([vec[[0, 100]], rng.integers(-128, 128, (2, 64), dtype=np.int8)])
    for k, rescore in ((1, 1), (5, 4), (30, 2), (250, 1)):
        assert_same(pdask.search_rescore(codes, vectors, q, k, rescore), index.search(q, k, rescore=rescore))
    assert_same(pdask.search_rescore(codes, vectors, q[1], 7), index.search(q[1], 7))
    with pytest.raises(ValueError, match="same rows"):
        pdask.search_rescore(codes[:10], vectors, q, 5)


def test_search_one_query_and_options(cluster):
    vec = np.random.default_rng(6).integers(-128, 128, (50, 16), dtype=np.int8)
    x = dask_rows(vec, (20, 30))
    S, I = pdask.search(x, vec[3], 5)
    assert S.shape == I.shape == (5,)
    assert_same((S, I), pc.search_int8(vec[3], vec, 5))
    # columns chunked too: joined, same answer
    xc = da.from_array(vec, chunks=(10, 4))
    assert_same(pdask.search(xc, vec[:4], 7, "dot", threads=2, split_every=2), pc.search_int8(vec[:4], vec, 7, "dot"))
    lazy = pdask.search(x, vec[:2], 3, compute=False)
    assert isinstance(lazy, Delayed)
    assert_same(lazy.compute(), pc.search_int8(vec[:2], vec, 3))
    # an empty array: all padding, as locally
    empty = np.empty((0, 16), np.int8)
    assert_same(pdask.search(da.from_array(empty), vec[:2], 3), pc.search_int8(vec[:2], empty, 3))


def test_search_errors():
    codes = da.from_array(np.zeros((10, 4), np.uint8), chunks=5)
    vec = da.from_array(np.zeros((10, 32), np.int8), chunks=5)
    with pytest.raises(TypeError, match="dask.array"):
        pdask.search(np.zeros((10, 4), np.uint8), np.zeros(4, np.uint8), 1)
    with pytest.raises(ValueError, match="hamming"):
        pdask.search(codes, np.zeros(4, np.uint8), 1, metric="cosine")
    with pytest.raises(ValueError, match="'cosine' or 'dot'"):
        pdask.search(vec, np.zeros(32, np.int8), 1, metric="hamming")
    with pytest.raises(TypeError):   # the local search's own check, before any task
        pdask.search(codes, np.zeros(4, np.int8), 1)
    with pytest.raises(ValueError):
        pdask.search(codes, np.zeros((2, 5), np.uint8), 1)
    with pytest.raises(ValueError, match="k must be"):
        pdask.search(codes, np.zeros(4, np.uint8), 0)
    with pytest.raises(ValueError, match="db_norms is only used"):
        pdask.search(vec, np.zeros(32, np.int8), 1, metric="dot", db_norms=np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="shape"):
        pdask.search(vec, np.zeros(32, np.int8), 1, db_norms=np.zeros(9, np.float32))
    with pytest.raises(ValueError, match="split_every"):
        pdask.search(codes, np.zeros(4, np.uint8), 1, split_every=1)
    with pytest.raises(ValueError, match="shards_per_task"):
        pdask.search(codes, np.zeros(4, np.uint8), 1, shards_per_task=0)
    unknown = da.from_array(np.zeros((10, 4), np.uint8), chunks=5)
    unknown = unknown[unknown[:, 0] == 0]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        pdask.search(unknown, np.zeros(4, np.uint8), 1)


# ---------------------------------------------------------------- shards


def test_from_shards_npy_and_stores(cluster, tmp_path):
    rng = np.random.default_rng(7)
    vec = rng.integers(-128, 128, (300, 64), dtype=np.int8)
    vec[100:200] = vec[0]   # ties across shards
    codes = pc.pack_bits(vec)
    bounds = [0, 40, 41, 41, 170, 300]   # includes a 1-row and an empty shard
    int8_paths, code_paths = [], []
    for i, (a, b) in enumerate(pairwise(bounds)):
        if i % 2:   # stores holding both encodings
            p = tmp_path / f"store{i}"
            store.save(p, int8=vec[a:b], binary=codes[a:b])
            int8_paths.append(p)
            code_paths.append(str(p))
        else:       # plain .npy files
            np.save(tmp_path / f"v{i}.npy", vec[a:b])
            np.save(tmp_path / f"c{i}.npy", codes[a:b])
            int8_paths.append(tmp_path / f"v{i}.npy")
            code_paths.append(str(tmp_path / f"c{i}.npy"))
    x = pdask.from_shards(int8_paths, encoding="int8")
    c = pdask.from_shards(code_paths, encoding="binary")
    # one block per shard; dask's concatenate leaves the empty shard out
    assert x.chunks[0] == c.chunks[0] == (40, 1, 129, 130)

    class HeldShards(WorkerPlugin):   # local: pickled by value, workers need not import this file
        """Records every memory-mapped task result a worker holds, and what
        dask's memory accounting counts it as."""

        name = "pplx-held-shards"

        def setup(self, worker):
            self.worker, self.seen = worker, []

        def transition(self, key, start, finish, **kwargs):
            value = self.worker.data.get(key) if finish == "memory" else None
            if isinstance(value, np.memmap):
                self.seen.append((str(key), type(value).__name__, dask.sizeof.sizeof(value)))

    def held():
        return [x for v in cluster.run(lambda dask_worker: dask_worker.plugins["pplx-held-shards"].seen).values()
                for x in v]

    cluster.register_plugin(HeldShards())
    q = vec[[0, 150, 299]]
    for k in (5, 120, 400):
        assert_same(pdask.search(x, q, k), pc.search_int8(q, vec, k))
        assert_same(pdask.search(x, q, k, "dot"), pc.search_int8(q, vec, k, "dot"))
        assert_same(pdask.search(c, pc.pack_bits(q), k), pc.search_binary(pc.pack_bits(q), codes, k))
        for g in (2, 3, 9):   # several shards per task, merged in the task
            assert_same(pdask.search(x, q, k, "dot", shards_per_task=g), pc.search_int8(q, vec, k, "dot"))
            assert_same(pdask.search(c, pc.pack_bits(q), k, shards_per_task=g),
                        pc.search_binary(pc.pack_bits(q), codes, k))
    norms = pdask.norms(x)
    assert_same(pdask.search(x, q, 120, db_norms=norms), pc.search_int8(q, vec, 120))
    assert_same(pdask.search(x, q, 120, db_norms=norms.persist(), shards_per_task=2), pc.search_int8(q, vec, 120))
    # each shard was mapped inside the task that scans it: never held as a result
    assert held() == []
    # any other graph (here: an identity map over the shards, with norms from the same
    # blocks) holds the blocks as results: ShardArrays, which dask counts as 64 bytes, not
    # their size (else a worker holding many would spill them: read them whole, write them)
    generic = x.map_blocks(lambda b: b, dtype=x.dtype)
    assert_same(pdask.search(generic, q, 120, db_norms=pdask.norms(generic)), pc.search_int8(q, vec, 120))
    assert held() and all(kind == "ShardArray" and size == 64 for _, kind, size in held())
    with pytest.raises(ValueError, match="shards_per_task applies"):
        pdask.search(generic, q, 5, shards_per_task=2)
    # the blocks are the files, memory-mapped, not copies
    kinds = x.map_blocks(lambda b: np.array([[type(b).__name__]], object), chunks=((1,) * 4, (1,)),
                         dtype=object).compute()
    assert kinds.ravel().tolist() == ["ShardArray"] * 4
    np.testing.assert_array_equal(x.compute(), vec)
    np.testing.assert_array_equal(c.compute(), codes)


def test_shard_blocks_travel_as_paths(tmp_path):
    """A whole shard pickles (and serializes for distributed) as its path;
    a slice, or anything computed from one, as its data."""
    vec = np.random.default_rng(9).integers(-128, 128, (2000, 64), dtype=np.int8)
    np.save(tmp_path / "v.npy", vec)
    (block,) = dask.compute(pdask.from_shards(tmp_path / "v.npy").to_delayed()[0, 0], scheduler="sync")
    assert isinstance(block, pdask.ShardArray) and block.is_whole
    assert dask.sizeof.sizeof(block) == 64
    blob = pickle.dumps(block)
    assert len(blob) < 1000
    back = pickle.loads(blob)
    assert isinstance(back, pdask.ShardArray) and back.is_whole
    np.testing.assert_array_equal(back, vec)
    header, frames = serialize(block)
    assert header["serializer"] == "dask" and frames == []
    np.testing.assert_array_equal(deserialize(header, frames), vec)
    part = block[100:300]
    assert not part.is_whole and len(pickle.dumps(part)) > 200 * 64
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(part)), vec[100:300])
    np.testing.assert_array_equal(deserialize(*serialize(part)), vec[100:300])
    assert dask.sizeof.sizeof(block + 1) == vec.nbytes   # a computed array is memory
    # a file rewritten in place is not silently re-read by reference
    np.save(tmp_path / "v.npy", vec[::-1])
    with pytest.raises(ValueError, match="changed since"):
        pickle.loads(blob)


def test_from_shards_checks(tmp_path):
    vec = np.random.default_rng(8).integers(-128, 128, (10, 16), dtype=np.int8)
    store.save(tmp_path / "both", int8=vec, binary=pc.pack_bits(vec))
    store.save(tmp_path / "big", binary=pc.pack_bits(vec, "big"), bitorder="big")
    store.save(tmp_path / "little", binary=pc.pack_bits(vec))
    np.save(tmp_path / "v.npy", vec)
    np.save(tmp_path / "wide.npy", np.zeros((3, 17), np.int8))
    np.save(tmp_path / "f.npy", np.asfortranarray(vec))
    np.save(tmp_path / "f32.npy", vec.astype(np.float32))
    with pytest.raises(ValueError, match="encoding='int8' or 'binary'"):
        pdask.from_shards(tmp_path / "both")
    assert pdask.from_shards(tmp_path / "both", encoding="binary").dtype == np.uint8
    with pytest.raises(ValueError, match="bit orders"):
        pdask.from_shards([tmp_path / "little", tmp_path / "big"])
    with pytest.raises(ValueError, match="all shards must agree"):
        pdask.from_shards([tmp_path / "v.npy", tmp_path / "wide.npy"])
    with pytest.raises(ValueError, match="not binary|holds int8"):
        pdask.from_shards(tmp_path / "v.npy", encoding="binary")
    with pytest.raises(ValueError, match="Fortran"):
        pdask.from_shards(tmp_path / "f.npy")
    with pytest.raises(ValueError, match="2-D int8 or uint8"):
        pdask.from_shards(tmp_path / "f32.npy")
    with pytest.raises(FileNotFoundError):
        pdask.from_shards(tmp_path / "missing.npy")
    with pytest.raises(ValueError, match="no shards"):
        pdask.from_shards([])
    # a shard rewritten with another shape after the graph was built is caught
    x = pdask.from_shards(tmp_path / "v.npy")
    np.save(tmp_path / "v.npy", vec[:5])
    with pytest.raises(ValueError, match="changed since"):
        x.compute(scheduler="sync")


def _later_tick(path) -> None:
    """Wait until the file system's clock has moved past ``path``'s mtime, so
    that a rewrite now lands in a later tick (as any rewrite more than a few
    ms later does): the case the stamps guarantee to catch."""
    probe = path.with_name(".tick-probe")
    for _ in range(10_000):
        probe.write_bytes(b"")
        if probe.stat().st_mtime_ns > path.stat().st_mtime_ns:
            break
        time.sleep(0.001)
    probe.unlink()


@pytest.mark.parametrize("encoding", ["int8", "binary"])
def test_rewritten_store_shard_is_an_error(tmp_path, encoding):
    """A store shard's data file rewritten after the array was built (meta.json
    untouched) is an error, not a search over the new rows: every file a
    block reads is stamped, with its inode and ctime besides size and mtime."""
    V = np.random.default_rng(11).integers(-128, 128, (300, 256), dtype=np.int8)
    q = V[:2] if encoding == "int8" else pc.pack_bits(V[:2])
    d = tmp_path / "s"
    arrays = dict(int8=V, binary=pc.pack_bits(V))
    rewrites = {
        # the reproducer: np.save in place (same inode, same size)
        "in-place": lambda f, a: np.save(f, a),
        # a new file of the same size put in place, with the old mtime given back
        "replaced": lambda f, a: (np.save(f.with_name("new.npy"), a),
                                  os.utime(f.with_name("new.npy"), ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns)),
                                  os.replace(f.with_name("new.npy"), f)),
    }
    for rewrite in rewrites.values():
        for target in ("vectors.npy", "codes.npy"):   # the searched file, or the other one load() opens
            store.save(d, **arrays)
            arr = pdask.from_shards([d], encoding=encoding)
            with dask.config.set(scheduler="sync"):
                want = pc.search_int8(q, V, 3) if encoding == "int8" else pc.search_binary(q, pc.pack_bits(V), 3)
                assert_same(pdask.search(arr, q, 3), want)
                f = d / target
                _later_tick(f)
                rewrite(f, -np.load(f) if target == "vectors.npy" else ~np.load(f))
                with pytest.raises(ValueError, match="changed since the array was built"):
                    pdask.search(arr, q, 3)
                with pytest.raises(ValueError, match="changed since"):
                    arr.compute()
    # a whole block pickled before the rewrite is not re-read by reference either
    store.save(d, **arrays)
    (block,) = dask.compute(pdask.from_shards(d, encoding=encoding).to_delayed()[0, 0], scheduler="sync")
    blob = pickle.dumps(block)
    _later_tick(d / "vectors.npy")
    np.save(d / "vectors.npy", -V)
    with pytest.raises(ValueError, match="changed since"):
        pickle.loads(blob)


def test_npy_shard_with_trailing_bytes_is_refused(tmp_path):
    vec = np.random.default_rng(12).integers(-128, 128, (10, 16), dtype=np.int8)
    np.save(tmp_path / "v.npy", vec)
    with open(tmp_path / "v.npy", "ab") as f:
        f.write(bytes(16))   # one more row's bytes that the header does not announce
    with pytest.raises(ValueError, match=r"v.npy: not a readable .npy file .*the file has \d+ bytes"):
        pdask.from_shards(tmp_path / "v.npy")


def test_from_shards_rejects_mistyped_manifest(tmp_path):
    """A manifest is read like meta.json: each field used checked by type, a
    ValueError naming the file (not an AttributeError or TypeError)."""
    np.save(tmp_path / "s.npy", np.zeros((3, 8), np.int8))
    good = {"shards": [{"path": "s.npy", "count": 3}, {"path": None, "count": 0}]}
    (tmp_path / "manifest.json").write_text(json.dumps(good))
    assert pdask.from_shards(tmp_path).shape == (3, 8)
    for bad in ([], {"shards": "s.npy"}, {"shards": ["s.npy"]}, {"shards": [{"path": "s.npy", "count": "3"}]},
                {"shards": [{"path": "s.npy", "count": True}]}, {"shards": [{"path": 5, "count": 3}]},
                {"shards": [{"count": 3}]}):
        (tmp_path / "manifest.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match="manifest.json: "):
            pdask.from_shards(tmp_path)


def _topk_columns(x) -> int:
    """Columns of a (keys, ids) task result (a block's, a merge's, an answer's); 0 for others."""
    if isinstance(x, tuple) and len(x) == 2 and all(isinstance(a, np.ndarray) for a in x):
        return x[1].shape[-1]
    return 0


def test_k_far_above_rows_costs_rows_not_k():
    """With k above the row count, no task result has k columns (every block
    and merge holds min(k, rows) columns): only the answer is padded, and it
    is the local search's answer.  Before, each block task and merge held
    m x k (k = 3e8 ran the workers out of memory; such a k is now refused,
    see test_k_bound_is_the_local_one, but k = 2 x rows is still padding)."""
    from dask.callbacks import Callback

    rng = np.random.default_rng(13)
    vec = rng.integers(-128, 128, (1000, 64), dtype=np.int8)
    codes = pc.pack_bits(vec)
    q = vec[:3]
    k = 2000   # the most a search of 1000 rows pads to
    x, c = dask_rows(vec, (250,) * 4), dask_rows(codes, (300, 300, 0, 400))
    index = pc.Index(64)
    index.add(vec)
    largest = []
    with Callback(posttask=lambda key, result, dsk, state, wid: largest.append(_topk_columns(result))), \
            dask.config.set(scheduler="sync"):
        assert_same(pdask.search(c, pc.pack_bits(q), k, split_every=2), pc.search_binary(pc.pack_bits(q), codes, k))
        for metric in ("cosine", "dot"):
            assert_same(pdask.search(x, q, k, metric), pc.search_int8(q, vec, k, metric))
        assert_same(pdask.search(x, q[0], k, compute=False).compute(), pc.search_int8(q[0], vec, k))
        assert_same(pdask.search_rescore(c, x, q, k, rescore=3), index.search(q, k, rescore=3))
        assert_same(pdask.search_rescore(c, x, q, 5, rescore=k), index.search(q, 5, rescore=k))
        assert_same(pdask.search_rescore(c, x, q, 5, rescore=10**9), index.search(q, 5, rescore=10**9))
    # the widest (keys, ids) task result is a merge of all 1000 rows; only the
    # compute=False answer task is padded to k
    assert sum(n > 0 for n in largest) > 10
    assert sorted(largest)[-2] <= 1000 < k
    assert sorted(largest)[-1] == k


def test_k_bound_is_the_local_one():
    """Issue 22, finding 5: the same bound on k as the local search (rows +
    max(rows, 1024) columns), checked on the client before any task."""
    vec = np.random.default_rng(14).integers(-128, 128, (30, 64), dtype=np.int8)
    x, c = dask_rows(vec, (10, 20)), dask_rows(pc.pack_bits(vec), (10, 20))
    msg = ("k must be at most 1054 for 30 rows (a search pads at most max(rows, 1024) = 1024 columns beyond them), "
           "got 1055; k=30 returns every row")
    with dask.config.set(scheduler="sync"):
        for call in (lambda k: pdask.search(x, vec[:2], k), lambda k: pdask.search(x, vec[:2], k, "dot"),
                     lambda k: pdask.search(c, pc.pack_bits(vec[:2]), k),
                     lambda k: pdask.search_rescore(c, x, vec[:2], k)):
            with raises_exactly(ValueError, msg):
                call(1055)
            with raises_exactly(ValueError, msg.replace("1055", str(2**70))):
                call(2**70)
            assert call(1054)[1].shape == (2, 1054)
        with raises_exactly(ValueError, "rescore must be positive, got 0"):
            pdask.search_rescore(c, x, vec[:2], 3, rescore=0)


def test_zero_norm_of_a_non_zero_row_is_refused():
    """Issue 22, finding 1: a cached norm of 0 for a non-zero row is refused by
    the block that holds the row (the row is never reported, so the check
    of reported rows could not see it)."""
    vec = np.random.default_rng(15).integers(-128, 128, (30, 64), dtype=np.int8)
    x = dask_rows(vec, (10, 20))
    bad = pc.norms(vec)
    bad[25] = 0.0
    msg = (f"db_norms do not match db: row 25 has norm {float(pc.norms(vec[25]))}, not 0.0; "
           "compute them with pplx_codec.norms(db)")
    with dask.config.set(scheduler="sync"):
        for norms in (bad, da.from_array(bad, chunks=7)):
            with raises_exactly(ValueError, msg):
                pdask.search(x, vec[:2], 3, db_norms=norms)
    bad[25] = np.nan   # a dask array of norms is checked block by block, numbered in the whole array too
    with dask.config.set(scheduler="sync"), raises_exactly(
            ValueError, "db_norms[25] = nan is not the norm of an int8 row of 64 values (0..1024.0)"):
        pdask.search(x, vec[:2], 3, db_norms=da.from_array(bad, chunks=7))


# ---------------------------------------------------------------- embed


def test_embed_list_matches_local(cluster, server, tmp_path):
    url, tracked = server
    texts = texts_of(1500)
    want = local_embed(url, texts)
    tracked.reset()
    r = pdask.embed(texts, tmp_path / "out", api_key=KEY, base_url=url, dimensions=DIMS, partition_size=600,
                    encodings=("int8", "binary"), save_texts=True)
    # 600 + 600 + 300 texts: 2 + 2 + 1 requests (512 inputs per request)
    assert tracked.requests == 5 and r.usage.requests == 5
    assert r.count == 1500 and r.embedded == 1500 and r.skipped == []
    np.testing.assert_array_equal(r.array("int8").compute(), want)
    np.testing.assert_array_equal(r.array("binary").compute(), pc.pack_bits(want))
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m == r.manifest
    assert [(s["path"], s["partition"], s["offset"], s["count"]) for s in m["shards"]] == [
        ("shard-00000", 0, 0, 600), ("shard-00001", 1, 600, 600), ("shard-00002", 2, 1200, 300)]
    assert (m["model"], m["dimensions"], m["encodings"], m["bitorder"], m["count"]) == (
        "pplx-embed-v1-0.6b", DIMS, ["int8", "binary"], "little", 1500)
    s1 = store.load(tmp_path / "out" / "shard-00001")
    assert s1.meta["partition"] == 1 and s1.meta["offset"] == 600 and list(s1.texts) == texts[600:1200]
    side = json.loads((tmp_path / "out" / "shard-00002.json").read_text())
    assert (side["partition"], side["offset"], side["count"]) == (2, 1200, 300)
    # nothing secret on disk
    for p in (tmp_path / "out").rglob("*.json"):
        assert KEY not in p.read_text()


def test_embed_bag_and_series_keep_row_order(cluster, server, tmp_path):
    url, _ = server
    texts = texts_of(700, "bag")
    sizes = [0, 130, 1, 0, 569]   # uneven, empty partitions
    cuts = np.cumsum([0] + sizes)
    bag = db.from_delayed([delayed(list)(texts[a:b]) for a, b in pairwise(cuts)])
    assert bag.npartitions == 5
    want = local_embed(url, texts, "base64_binary", "big")
    r = pdask.embed(bag, tmp_path / "bag", api_key=KEY, base_url=url, dimensions=DIMS, encodings="binary",
                    bitorder="big")
    assert [s["count"] for s in r.manifest["shards"]] == sizes
    assert [s["offset"] for s in r.manifest["shards"]] == cuts[:-1].tolist()
    np.testing.assert_array_equal(r.array().compute(), want)
    assert store.load(tmp_path / "bag" / "shard-00004").bitorder == "big"

    series = dd.from_pandas(pd.Series(texts), npartitions=3)
    r = pdask.embed(series, tmp_path / "series", api_key=KEY, base_url=url, dimensions=DIMS)
    np.testing.assert_array_equal(r.array().compute(), local_embed(url, texts))


def test_embed_resumes_at_shard_granularity(cluster, server, tmp_path):
    url, tracked = server
    texts = texts_of(1000, "resume")
    bad = list(texts)
    bad[450] = ""   # the API rejects empty texts: partition 2 (rows 400..599) fails before any request
    out = tmp_path / "out"
    opts = dict(api_key=KEY, base_url=url, dimensions=DIMS, partition_size=200)
    tracked.reset()
    with pytest.raises(pdask.EmbedError) as info:
        pdask.embed(bad, out, **opts)
    err = info.value
    assert [f.partition for f in err.failures] == [2]
    f = err.failures[0]
    assert (f.offset, f.count, f.error_type) == (400, 200, "ValueError") and "empty" in f.message
    assert "partition 2 (rows 400..599)" in str(err)
    assert not (out / "manifest.json").exists()
    assert tracked.requests == 4
    assert sorted(p.name for p in out.glob("shard-*.json")) == [f"shard-0000{i}.json" for i in (0, 1, 3, 4)]
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")}

    tracked.reset()
    r = pdask.embed(texts, out, **opts)   # fixed input: only partition 2 is embedded
    assert tracked.requests == 1 and r.embedded == 200 and r.skipped == [0, 1, 3, 4]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*") if p.name in mtimes} == mtimes
    np.testing.assert_array_equal(r.array().compute(), local_embed(url, texts))
    assert r.manifest["usage"]["requests"] == 5

    tracked.reset()
    r = pdask.embed(texts, out, **opts)   # complete: nothing to do
    assert tracked.requests == 0 and r.embedded == 0 and r.skipped == [0, 1, 2, 3, 4]
    changed = list(texts)
    changed[999] = "a different last text"
    r = pdask.embed(changed, out, **opts)   # a partition whose texts changed is redone
    assert tracked.requests == 1 and r.skipped == [0, 1, 2, 3]
    np.testing.assert_array_equal(r.array().compute(), local_embed(url, changed))

    # partitioned differently: shards that no longer match are redone, extra ones removed
    tracked.reset()
    r = pdask.embed(texts, out, **{**opts, "partition_size": 500})
    assert tracked.requests == 2 and r.skipped == []
    assert sorted(p.name for p in out.glob("shard-*")) == ["shard-00000", "shard-00000.json", "shard-00001",
                                                          "shard-00001.json"]
    np.testing.assert_array_equal(r.array().compute(), local_embed(url, texts))

    with pytest.raises(ValueError, match="other settings"):
        pdask.embed(texts, out, **{**opts, "dimensions": 128})


def test_embed_failure_carries_partial_rows(cluster, server, tmp_path):
    """A partition whose 2nd request fails reports the rows of its 1st."""
    # the server's fault draw for request n is uniform(key(seed, n, 0)): find a
    # seed where request 0 succeeds and request 1 gets a 500
    seed = next(s for s in range(1000) if uniform(rng_key(s, 0, 0), 1)[0] >= 0.5 > uniform(rng_key(s, 1, 0), 1)[0])
    with serve(faults=FaultConfig({"500": 0.5}, seed=seed)) as (url, _):
        texts = texts_of(600, "partial")
        with pytest.raises(pdask.EmbedError) as info:
            pdask.embed(texts, tmp_path / "out", api_key=KEY, base_url=url, dimensions=DIMS,
                        partition_size=1000, max_concurrency=1, max_retries=0)
    (f,) = info.value.failures
    assert (f.partition, f.error_type, f.status_code) == (0, "InternalServerError", 500)
    assert f.partial.filled.tolist() == f.filled.tolist() == [True] * 512 + [False] * 88
    assert "512/600 rows arrived" in str(f)
    np.testing.assert_array_equal(f.missing_rows, np.arange(512, 600))
    np.testing.assert_array_equal(f.partial.vectors[:512], local_embed(server[0], texts[:512]))
    # the failed attempt's successful request was paid for: the manifest's usage (all
    # runs) counts it with the 2 requests of the rerun that completes the partition
    assert (tmp_path / "out" / f"shard-00000{_partition.SPENT}").is_file()
    r = pdask.embed(texts, tmp_path / "out", api_key=KEY, base_url=server[0], dimensions=DIMS,
                    partition_size=1000, max_concurrency=1)
    assert r.usage.requests == 2 and r.manifest["usage"]["requests"] == 3
    assert r.manifest["usage"]["total_tokens"] > r.usage.total_tokens > 0
    assert not (tmp_path / "out" / f"shard-00000{_partition.SPENT}").exists()
    r = pdask.embed(texts, tmp_path / "out", api_key=KEY, base_url=server[0], dimensions=DIMS,
                    partition_size=1000)
    assert r.skipped == [0] and r.usage.requests == 0 and r.manifest["usage"]["requests"] == 3
    # a partial result too large to send back keeps only which rows arrived
    big = pc.PartialResult(np.zeros((_partition.PARTIAL_ROWS_LIMIT + 1, 1), np.int8), np.ones(3, bool))
    err = pc.APIError("boom")
    err.partial = big
    wrapped = pickle.loads(pickle.dumps(pdask.PartitionError.wrap(4, 100, 3, err)))
    assert wrapped.partial is None and wrapped.filled.tolist() == [True] * 3 and wrapped.missing_rows.size == 0


def test_embed_auth_failure_names_partitions_not_the_key(cluster, server, tmp_path):
    url, _ = server
    secret = "wrong-secret-key-0451"
    with pytest.raises(pdask.EmbedError) as info:
        pdask.embed(texts_of(300), tmp_path / "out", api_key=secret, base_url=url, dimensions=DIMS,
                    partition_size=100)
    err = info.value
    assert [f.partition for f in err.failures] == [0, 1, 2]
    assert all(f.error_type == "AuthenticationError" and f.status_code == 401 for f in err.failures)
    assert all(f.partial is not None and not f.filled.any() for f in err.failures)
    assert secret not in str(err) and secret not in repr(err.failures)
    logs = json.dumps(cluster.get_worker_logs(), default=str) + json.dumps(cluster.get_scheduler_logs(),
                                                                            default=str)
    assert secret not in logs
    job = _partition.Job(out="x", settings=EmbedSettings("m", 8, ("int8",), "little"),
                         save_texts=False, budget="b", max_concurrency=1, base_url=None, timeout=None,
                         max_retries=0, api_key=secret)
    assert secret not in repr(job) and secret not in str(job)


def test_embed_concurrency_budget_is_cluster_wide(cluster, tmp_path):
    """With slow responses, 2 workers and partitions of 2 requests each,
    requests overlap unless the budget serializes them."""
    texts = texts_of(2400, "budget")   # 4 partitions of 600 texts: 8 requests
    with serve(faults=FaultConfig({"slow": 1.0}, slow_seconds=0.15)) as (url, tracked):
        opts = dict(api_key=KEY, base_url=url, dimensions=DIMS, partition_size=600)
        tracked.reset()
        pdask.embed(texts, tmp_path / "free", max_concurrency=8, **opts)
        assert tracked.requests == 8 and tracked.max_in_flight >= 2   # the count sees overlaps
        tracked.reset()
        r = pdask.embed(texts, tmp_path / "one", max_concurrency=1, **opts)
        assert tracked.requests == 8 and tracked.max_in_flight == 1
        cluster.run(lambda: _budget.CLIENTS.clear())
        tracked.reset()
        pdask.embed(texts, tmp_path / "two", max_concurrency=2, **opts)
        assert tracked.requests == 8 and tracked.max_in_flight == 2
    np.testing.assert_array_equal(r.array().compute(), pdask.from_shards(tmp_path / "free").compute())
    # one client per worker process for the job, reused by all its partitions there
    per_worker = cluster.run(lambda: len(_budget.CLIENTS))
    assert set(per_worker.values()) <= {0, 1} and sum(per_worker.values()) >= 1


def test_embed_rate_budget_is_cluster_wide(cluster, server, tmp_path):
    """A 120 RPM server (its log times every request), 2 workers, one budget
    of 110 RPM on the scheduler: no 429, requests at 110 a minute; without
    the budget the same job meets 429s and, with retries enough, loses nothing."""
    texts = texts_of(512 * 10, "rate")   # 5 partitions of 1024 texts: 10 full requests, ~5 s at 110 RPM
    want = local_embed(server[0], texts)
    log = tmp_path / "requests.jsonl"
    with serve(rpm=120, request_log=str(log)) as (url, _):
        opts = dict(api_key=KEY, base_url=url, dimensions=DIMS, partition_size=1024)
        r = pdask.embed(texts, tmp_path / "paced", max_requests_per_minute=110, **opts)
        entries = read_log(log)
        assert len(entries) == 10 and not any(e["limited"] for e in entries)
        t = [e["t"] for e in entries]
        assert 110 * 0.9 < (len(t) - 1) / (t[-1] - t[0]) * 60 < 110 * 1.05
        np.testing.assert_array_equal(r.array().compute(), want)
        # both workers sent under the one budget, named for the job
        names = cluster.run(lambda: {c._config.rate.name for c, _, _ in _budget.CLIENTS.values()
                                     if isinstance(c._config.rate, _budget.ClusterRate)})
        assert len(names) == 2 and len(set.union(*names.values())) == 1
        assert cluster.run_on_scheduler(lambda dask_scheduler: dask_scheduler.plugins[
            _budget.RateBudgets.name].policies) == {}   # closed with its job

        log.unlink()
        free = pdask.embed(texts, tmp_path / "free", max_retries=10, **opts)
        entries = read_log(log)
        assert sum(e["limited"] for e in entries) > 0 and sum(not e["limited"] for e in entries) == 10
        np.testing.assert_array_equal(free.array().compute(), want)
    with pytest.raises(ValueError, match="max_requests_per_minute"):
        pdask.embed(texts, tmp_path / "bad", max_requests_per_minute=0, **opts)

    class Refusing:
        def register_plugin(self, plugin):
            raise ModuleNotFoundError("No module named 'pplx_codec'")

    with pytest.raises(RuntimeError, match="install pplx-codec where the scheduler runs"):
        embed_mod._open_rate_budget(Refusing(), "budget", 60)


def test_a_429_on_one_worker_pauses_the_cluster(cluster):
    """A worker's client reports a 429 asking for 1 s: the other worker's
    next attempt waits for it (the scheduler holds the one policy)."""
    name = _budget.BUDGET_PREFIX + "throttled"
    embed_mod._open_rate_budget(cluster, name, 6000)
    a, b = sorted(cluster.scheduler_info()["workers"])

    def rate():
        from distributed import get_worker

        w = get_worker()
        return _budget.ClusterRate(name, w.scheduler, w.loop)

    def throttle():
        rate().throttled(1.0, time.monotonic())
        return time.time()

    def take():
        list(rate().waits())
        return time.time()

    try:
        assert cluster.submit(take, workers=[b], pure=False).result() > 0   # at once
        told = cluster.submit(throttle, workers=[a], pure=False).result()
        went = cluster.submit(take, workers=[b], pure=False).result()
        assert 0.8 < went - told < 5
    finally:
        cluster.sync(cluster.scheduler.pplx_codec_rate_close, name=name)
    with pytest.raises(RuntimeError, match="has ended"):
        cluster.submit(take, workers=[b], pure=False).result()


def test_embed_input_errors(cluster, tmp_path):
    with pytest.raises(TypeError, match="Series"):
        pdask.embed(dd.from_pandas(pd.DataFrame({"t": ["a", "b"]}), npartitions=1), tmp_path, api_key=KEY)
    with pytest.raises(TypeError):
        pdask.embed("one text", tmp_path, api_key=KEY)
    with pytest.raises(ValueError, match="empty"):
        pdask.embed([], tmp_path, api_key=KEY)
    with pytest.raises(ValueError, match="model"):
        pdask.embed(["a"], tmp_path, model="nope", api_key=KEY)
    with pytest.raises(ValueError, match="multiple of 8"):
        pdask.embed(["a"], tmp_path, dimensions=130, encodings=("binary",), api_key=KEY)
    with pytest.raises(ValueError, match="max_concurrency"):
        pdask.embed(["a"], tmp_path, max_concurrency=0, api_key=KEY)


def test_lost_worker_gives_its_budget_lease_back(cluster):
    """A worker SIGKILLed while one of its requests holds a lease of the job's
    budget: the scheduler releases that lease when it removes the worker.
    The semaphore is registered with an infinite lease timeout, so only that
    release can free it (with distributed's default, 30 s, a killed worker
    held up to 40 s of the budget: a 24,000-text job took 58.5 s, not 24.8 s)."""
    import signal
    import uuid

    from distributed import Semaphore

    name = _budget.BUDGET_PREFIX + "lost-worker-" + uuid.uuid4().hex
    cluster.register_plugin(_budget.ReleaseLostLeases())   # what embed() does
    with dask.config.set({"distributed.scheduler.locks.lease-timeout": "inf"}):
        sem = Semaphore(max_leases=1, name=name, scheduler_rpc=cluster.scheduler, loop=cluster.loop)
        sem.register()
    job = _partition.Job(out="unused", settings=EmbedSettings("pplx-embed-v1-0.6b", DIMS, ("int8",), "little"),
                         save_texts=False, budget=name, max_concurrency=1,
                         base_url="http://127.0.0.1:9", timeout=None, max_retries=0, api_key=KEY)

    def take_the_lease(job):   # as a request does: the worker's client's budget
        _budget.worker_client(job)
        return _budget.CLIENTS[job.client_key()][2].acquire()

    def leases():
        return cluster.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.extensions["semaphores"]
                                                                   .leases[name]))

    a, b = sorted(cluster.scheduler_info()["workers"])
    try:
        assert cluster.submit(take_the_lease, job, workers=[a], pure=False).result() is True
        assert leases() == 1
        pid = cluster.run(os.getpid, workers=[a])[a]
        os.kill(pid, signal.SIGKILL)

        def wait_for_lease(name):
            s = Semaphore(max_leases=1, name=name)
            got = s.acquire(timeout=60)   # bounds only a failure: the release comes with the worker's removal
            if got:
                s.release()
            return got

        assert cluster.submit(wait_for_lease, name, workers=[b], pure=False).result() is True
        assert leases() == 0
    finally:
        # (Semaphore.close() needs a refresh callback, which an infinite timeout does not make)
        cluster.sync(cluster.scheduler.semaphore_close, name=name)
        cluster.wait_for_workers(2, timeout=120)   # the nanny restarts the killed worker


def test_lease_release_plugin_refused_is_a_warning():
    """A scheduler that cannot load the plugin (pplx-codec not installed
    there): the job runs, with a warning naming the lease timeout."""

    class Refusing:
        def register_plugin(self, plugin):
            raise ModuleNotFoundError("No module named 'pplx_codec'")

    with pytest.warns(RuntimeWarning, match="lease-timeout"):
        embed_mod._register_lease_release(Refusing())


def test_module_name_does_not_shadow_dask():
    """pplx_codec/dask.py imports the dask library, not itself."""
    import importlib

    assert pdask.__name__ == "pplx_codec.dask"
    assert importlib.import_module("dask") is dask and dask.__name__ == "dask"
    assert pdask.search.__module__ == "pplx_codec.scaleout.sharded_search"
