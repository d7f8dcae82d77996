"""The int8 searches on every tier this CPU runs: bit for bit the serial tier's.

Issue 25 reworked the int8 x int8 path: the avx512 kernel multiplies up to 8
queries by 3, 4 or 6 rows per step (by the query count) with the rows left
over as one smaller block, the scans size their tiles for it (a multiple of
12 rows), prefetch the next tile while the query groups work on this one,
and offer rows to the heaps in blocks of 16 (a block with no candidate
skipped whole); the int16 copy of the queries is made only for tables that
read it; from 16 queries on, the avx512 scan takes them in whole groups of 16
(the fused kernel: queries in the lanes, the heap test in the kernel) and the
rest through the blocks of 8.  None of it may change a result: the scores are exact int32 dots
(cosines of them), ties go to the lower row, so every tier must return
exactly what serial returns.  Checked at query counts around the query
blocks (8 on avx512, 16 on amx) and the threads' query split, row counts
around the row blocks and the tiles, dims around the 64-byte steps, and on
views whose rows start off any alignment.
"""

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pplx_codec as pc
import reference as ref
from pplx_codec import search

DETECTED = pc.capabilities()["detected"]
OTHERS = [name for name in DETECTED if name != "serial"]
# Tiers whose table multiplies int8 by int8 (dot_i8_block) / whose kernels take
# int16 queries: the first must not make the int16 copy, the second must.
INT8_KERNEL_TIERS = {"avx512", "amx", "neon", "neon_dotprod"}
INT16_QUERY_TIERS = {"serial", "avx2"}

DIMS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257,
        1023, 1024, 1025, 2560]
# 1..9: every query count of one avx512 group and one over; 15..17, 23..25,
# 33: around two, three and four groups of 8 (one and two of 16 for amx and
# the avx512 fused scan), 47..49: three fused groups and a block remainder.
QUERY_COUNTS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 23, 24, 25, 33, 47, 48, 49]


def tile8_rows(row_bytes: int) -> int:
    """The int8 x int8 scan's tile (simd/topk.h pplx_tile8_rows): 64 KiB of
    rows, at most 512, a multiple of 12 from 24 rows up (16 at least)."""
    t = min(512, 65536 // row_bytes)
    return (max(16, t) if t < 24 else t // 12 * 12)


def off_alignment(a: np.ndarray, offset: int, pad: int) -> np.ndarray:
    """The same values in rows `pad` bytes apart beyond their length, the first
    starting `offset` bytes past a 64-byte boundary."""
    m, d = a.shape
    raw = np.zeros(m * (d + pad) + 64 + offset, np.int8)
    start = (-raw.ctypes.data) % 64 + offset
    rows = raw[start:start + m * (d + pad)].reshape(m, d + pad)[:, :d]
    rows[...] = a
    assert rows.size == 0 or rows.ctypes.data % 64 == offset
    return rows


def int8_data(rng, shape, kind: str) -> np.ndarray:
    """Uniform over the full range, the extremes only, or rows drawn from a
    pool of three (equal scores everywhere: ties) with some rows zero."""
    if kind == "extremes":
        return rng.choice(np.array([-128, -127, 0, 127], np.int8), shape)
    if kind == "pool":
        pool = rng.integers(-128, 128, (3, shape[1]), dtype=np.int8)
        out = pool[rng.integers(0, 3, shape[0])]
        out[rng.random(shape[0]) < 0.15] = 0
        return out
    return rng.integers(-128, 128, shape, dtype=np.int8)


def assert_same(got, want):
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, g.shape, w.dtype, w.shape)
        np.testing.assert_array_equal(g, w)


def results(Q, X, ks, threads):
    """Every int8 result for these queries and rows: search_int8 (cosine and
    dot, each k) and dot_matrix."""
    out = []
    for k in ks:
        out.extend(search.search_int8(Q, X, k, metric="cosine", threads=threads))
        out.extend(search.search_int8(Q, X, k, metric="dot", threads=threads))
    out.append(search.dot_matrix(Q, X, threads=threads))
    return out


def assert_tiers_agree(Q, X, ks, threads=(1, 2)):
    for t in threads:
        with pc.use_isa("serial"):
            want = results(Q, X, ks, t)
        for name in OTHERS:
            with pc.use_isa(name):
                assert_same(results(Q, X, ks, t), want)


needs_another_tier = pytest.mark.skipif(not OTHERS, reason="this CPU runs only the serial tier")


@needs_another_tier
@pytest.mark.parametrize("dim", DIMS)
def test_every_tier_is_serial_around_the_blocks(dim):
    """Query counts around the query blocks x row counts around the row
    blocks (3, 4, 6: every remainder) and the tile, in both orders of
    magnitude of k, one data set per dim (a pool with ties for odd dims)."""
    rng = np.random.default_rng(dim)
    tile = tile8_rows(dim)
    kind = "pool" if dim % 2 else ("extremes" if dim % 4 == 0 else "uniform")
    X = int8_data(rng, (2 * tile + 13, dim), kind)
    Q = int8_data(rng, (max(QUERY_COUNTS), dim), "uniform" if kind == "pool" else kind)
    if kind == "pool":
        Q[: max(QUERY_COUNTS) // 2] = X[: max(QUERY_COUNTS) // 2]  # queries equal to rows: exact ties at the top
    for n in (1, 5, 6, 7, 11, 12, 13, tile - 1, tile, tile + 1, 2 * tile + 13):
        for m in QUERY_COUNTS:
            assert_tiers_agree(Q[:m], X[:n], (1, 10, n + 3), threads=(1,))
    for m in (8, 9, 16, 17, 33):  # threads: a query split (m >= 8) and a row split
        assert_tiers_agree(Q[:m], X, (10,), threads=(2, 3))


@needs_another_tier
@pytest.mark.parametrize("offset", [1, 2, 3])
def test_every_tier_is_serial_off_alignment(offset):
    """Queries and rows starting 1..3 bytes past a 64-byte boundary, rows
    further apart than their length (odd strides)."""
    rng = np.random.default_rng(offset)
    for dim in (63, 64, 65, 129, 1024, 2560):
        tile = tile8_rows(dim + 2 * offset + 1)
        X = off_alignment(int8_data(rng, (tile + 7, dim), "uniform"), offset, 2 * offset + 1)
        Q = off_alignment(int8_data(rng, (25, dim), "uniform"), (offset + 1) % 4, offset)
        for m in (1, 7, 8, 9, 17, 25):
            assert_tiers_agree(Q[:m], X, (1, 10))


@needs_another_tier
@settings(max_examples=60)
@given(m=st.integers(0, 40), n=st.one_of(st.integers(0, 40), st.integers(0, 300)),
       dim=st.one_of(st.sampled_from(DIMS), st.integers(0, 2600)),
       kind=st.sampled_from(["uniform", "extremes", "pool"]), offset=st.integers(0, 3),
       seed=st.integers(0, 2**32 - 1))
def test_every_tier_is_serial_on_random_shapes(m, n, dim, kind, offset, seed):
    rng = np.random.default_rng(seed)
    X = off_alignment(int8_data(rng, (n, dim), kind), offset, offset)
    Q = off_alignment(int8_data(rng, (m, dim), kind), (offset + 2) % 4, 0)
    assert_tiers_agree(Q, X, (1, 7, max(n, 1)), threads=(1, 2))


@pytest.mark.parametrize("call", ["search_int8 cosine", "search_int8 dot", "dot_matrix"])
def test_the_int16_copy_of_the_queries_only_where_a_kernel_reads_it(call):
    """Issue 25: the int16 copy of the queries (2 bytes an element; 512 KiB
    here) is made for the tables whose kernels take int16 queries and no
    others: a table with an int8 x int8 kernel reads the queries as given."""
    rng = np.random.default_rng(5)
    Q, X = rng.integers(-128, 128, (64, 4096), dtype=np.int8), rng.integers(-128, 128, (8, 4096), dtype=np.int8)
    copy = Q.size * 2
    run = {"search_int8 cosine": lambda: search.search_int8(Q, X, 3),
           "search_int8 dot": lambda: search.search_int8(Q, X, 3, metric="dot"),
           "dot_matrix": lambda: search.dot_matrix(Q, X)}[call]
    for name in DETECTED:
        with pc.use_isa(name):
            run()  # anything made once per process, made before the count
            tracemalloc.start()
            try:
                run()
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        if name in INT8_KERNEL_TIERS:
            assert peak < copy // 4, (name, peak)
        elif name in INT16_QUERY_TIERS:
            assert peak >= copy, (name, peak)


@pytest.mark.parametrize("name", DETECTED)
@pytest.mark.parametrize("gap", [0, 5])
def test_rows_in_reverse_memory_order(name, gap):
    """Rows at a negative stride (X[::-1], packed or with gaps between rows)
    searched with several query groups, over more than one tile: the answer
    of the numpy oracle, on every tier serial included.  The scans pass the
    stride on as a wrapped size_t; the next-tile prefetch of issue 25 once
    sized a byte range from it and looped ~2^58 times (the fuzz test found
    it hanging CI), so this runs the case every time, not by chance."""
    rng = np.random.default_rng(gap)
    for dim in (64, 1024, 1995):
        n = 2 * tile8_rows(dim) + 5
        buf = rng.integers(-128, 128, (n, dim + gap), dtype=np.int8)
        X = buf[::-1, :dim]
        assert X.strides[0] < 0
        for m in (1, 5, 9, 17, 33):
            Q = rng.integers(-128, 128, (m, dim), dtype=np.int8)
            with pc.use_isa(name):
                for threads in (1, 2):
                    for metric in ("cosine", "dot"):
                        assert_same(search.search_int8(Q, X, 10, metric=metric, threads=threads),
                                    ref.search_int8(Q, X, 10, metric))
                    np.testing.assert_array_equal(search.dot_matrix(Q, X, threads=threads), ref.dot_matrix(Q, X))
                    codes, qcodes = X.view(np.uint8)[:, :dim // 8], Q.view(np.uint8)[:, :dim // 8]
                    assert_same(search.search_binary(qcodes, codes, 10, threads=threads),
                                ref.search_binary(qcodes, codes, 10))
