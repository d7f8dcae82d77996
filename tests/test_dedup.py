"""pplx_codec.dedup: the groups of near-duplicate rows, checked against a
brute-force numpy oracle (every pair's cosine, connected components by a
plain union-find), on awkward sizes, thresholds on the boundary, every
thread count and block size; the fast binary mode never reports a false
pair, equals the exact answer when it may look at every row, and its misses
are shown; bad arguments are refused with a clear error."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pplx_codec as pc
from pplx_codec import near_duplicates, store

# --- the oracle ---


def pair_cosines(v: np.ndarray) -> np.ndarray:
    """Every pair's cosine as the package defines it, computed here without
    its kernels: exact int64 dots over float64 products of the float32 norms,
    rounded once to float32, 0 where either row is all zeros."""
    d = v.astype(np.int64) @ v.astype(np.int64).T
    xn = pc.norms(v).astype(np.float64)
    den = xn[:, None] * xn[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, d / den, 0.0).astype(np.float32)


def oracle(v: np.ndarray, threshold: float) -> list[list[int]]:
    n = v.shape[0]
    cos = pair_cosines(v).astype(np.float64) if n else np.zeros((0, 0))
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for i, j in zip(*np.nonzero(cos >= threshold), strict=True):
        if i != j:
            a, b = find(int(i)), find(int(j))
            parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted(g for g in groups.values() if len(g) >= 2)


# --- data: clusters of near-duplicates, exact copies, zero rows ---

@st.composite
def rows(draw):
    dim = draw(st.sampled_from([0, 1, 3, 8, 128, 1024]))
    n = draw(st.integers(0, 48))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    bases = rng.integers(-128, 128, (max(1, draw(st.integers(1, 6))), dim))
    noise = draw(st.sampled_from([0, 2, 12, 60]))
    v = bases[rng.integers(0, bases.shape[0], n)] + rng.integers(-noise, noise + 1, (n, dim))
    v = np.clip(v, -128, 127).astype(np.int8)
    if n and draw(st.booleans()):
        v[rng.integers(0, n, draw(st.integers(1, 3)))] = 0           # zero rows: cosine 0 with everything
    if n > 1 and draw(st.booleans()):
        v[1:3] = v[0]                                                 # identical rows
    return v


@st.composite
def thresholds(draw, v):
    """A threshold drawn from the pairs' own cosines (the boundary: >= must
    hold with equality) or from anywhere in -1..1."""
    n = v.shape[0]
    if n >= 2 and draw(st.booleans()):
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        return min(1.0, float(pair_cosines(v[[i, j]])[0, 1]))   # rounding can put a cosine past 1
    return draw(st.sampled_from([-1.0, 0.0, 0.5, 0.9, 0.95, 1.0]) | st.floats(-1, 1))


@settings(max_examples=60)
@given(st.data())
def test_exact_equals_brute_force(data):
    v = data.draw(rows())
    t = data.draw(thresholds(v))
    n = v.shape[0]
    threads = data.draw(st.sampled_from([1, 2, 3]))
    block = data.draw(st.none() | st.integers(1, max(1, n + 1)))
    want = oracle(v, t)
    assert pc.dedup(v, t, threads=threads, block_rows=block) == want
    # the fast mode confirms by exact cosine; looking at every row it is exact too
    assert pc.dedup(v, t, candidates=max(1, n), threads=threads) == want


def test_sizes_without_pairs_and_the_zero_rule():
    assert pc.dedup(np.zeros((0, 16), np.int8)) == []
    assert pc.dedup(np.ones((1, 16), np.int8), -1.0) == []
    zeros = np.zeros((4, 16), np.int8)
    assert pc.dedup(zeros, 0.5) == []                    # cosine 0: no pair at a positive threshold
    assert pc.dedup(zeros, 0.0) == [[0, 1, 2, 3]]        # ... and every pair at 0
    same = np.tile(np.arange(-8, 8, dtype=np.int8), (5, 1))
    assert pc.dedup(same, 0.999999) == [[0, 1, 2, 3, 4]]
    assert pc.dedup(same, 1.0) == oracle(same, 1.0)       # whatever float32 rounding makes of 1.0: the rule's answer


def test_a_chain_is_one_group_and_groups_are_ordered():
    """Components, not cliques: a~b and b~c put a and c together even when
    a and c are further apart than the threshold."""
    rng = np.random.default_rng(5)
    start = rng.integers(-100, 100, 256)
    step = rng.integers(-100, 100, 256)
    chain = np.stack([start + step * k // 8 for k in range(5)]).astype(np.int8)
    cos = pair_cosines(chain)
    t = float(min(cos[k, k + 1] for k in range(4)))
    assert cos[0, 4] < t
    other = rng.integers(-100, 100, (3, 256)).astype(np.int8)
    v = np.concatenate([other[:1], chain, other[1:], other[1:2]])   # the copy of other[1] at the end
    got = pc.dedup(v, t)
    assert got == oracle(v, t) == [[1, 2, 3, 4, 5], [6, 8]]


def test_many_pairs_stay_in_bounded_blocks(monkeypatch):
    """No dot matrix larger than BLOCK_ENTRIES (or one row against the rest),
    and pairs merged in batches of _PENDING: the same groups."""
    rng = np.random.default_rng(1)
    v = np.clip(rng.integers(-128, 128, (3, 64))[rng.integers(0, 3, 90)] + rng.integers(-20, 21, (90, 64)),
                -128, 127).astype(np.int8)
    shapes = []
    real = near_duplicates.search.dot_matrix

    def recording(q, db, threads=None, out=None):
        shapes.append((q.shape[0], db.shape[0]))
        return real(q, db, threads, out)

    monkeypatch.setattr(near_duplicates.search, "dot_matrix", recording)
    monkeypatch.setattr(near_duplicates, "BLOCK_ENTRIES", 200)
    monkeypatch.setattr(near_duplicates, "_PENDING", 7)
    for t in (0.8, -1.0):
        shapes.clear()
        assert pc.dedup(v, t) == oracle(v, t)
        assert shapes and all(m * c <= max(200, c) for m, c in shapes), shapes
        starts = [v.shape[0] - c for _, c in shapes]          # block [s, s + m) against rows s..
        steps = zip([m for m, _ in shapes[:-1]], starts[:-1], starts[1:], strict=True)
        assert starts[0] == 0 and all(s + m == nxt for m, s, nxt in steps)
        assert starts[-1] + shapes[-1][0] >= v.shape[0] - 1     # each row once, up to the last pair


def test_a_store_and_its_codes(tmp_path):
    rng = np.random.default_rng(2)
    v = np.clip(rng.integers(-128, 128, (4, 128))[rng.integers(0, 4, 30)] + rng.integers(-9, 10, (30, 128)),
                -128, 127).astype(np.int8)
    store.save(tmp_path / "s", int8=v, binary=pc.pack_bits(v), texts=[f"t{i}" for i in range(30)])
    s = store.load(tmp_path / "s")
    want = oracle(v, 0.9)
    assert want and pc.dedup(s, 0.9) == want
    assert pc.dedup(s, 0.9, candidates=29) == want        # the store's own codes
    store.save(tmp_path / "b", binary=pc.pack_bits(v))
    with pytest.raises(ValueError, match="no int8 vectors"):
        pc.dedup(store.load(tmp_path / "b"))


def test_fast_mode_misses_what_the_codes_hide():
    """Why exact is the default: two rows at cosine ~0.99 whose small values
    differ in sign have codes far apart, so a Hamming top-k can miss them;
    the exact search cannot.  Near-duplicates made by small noise, the
    usual kind, the fast mode finds (recall 1 on this set)."""
    rng = np.random.default_rng(3)
    big = np.zeros(512, np.int64)
    big[:32] = rng.choice([-127, 127], 32)
    a = big + rng.choice([-1, 1], 512) * (np.arange(512) >= 32)
    b = big - (a - big)                                  # the small values' signs flipped: far codes
    tail = np.arange(512) >= 32
    decoys = [np.where(tail, np.sign(x - big), 0) * rng.integers(1, 3, (20, 512)) for x in (a, b)]
    v = np.concatenate([np.stack([a, b]), *decoys]).astype(np.int8)   # decoys: a's or b's codes, other vectors
    assert pair_cosines(v[:2])[0, 1] > 0.95
    assert pc.dedup(v, 0.95) == oracle(v, 0.95) == [[0, 1]]
    assert pc.dedup(v, 0.95, candidates=5) == []

    base = rng.integers(-128, 128, (200, 1024))
    dup = np.clip(base[rng.integers(0, 200, 100)] + rng.integers(-25, 26, (100, 1024)), -128, 127)
    v = np.concatenate([base, dup]).astype(np.int8)
    want = oracle(v, 0.95)
    assert len(want) > 50 and pc.dedup(v, 0.95, candidates=4) == want


@pytest.mark.parametrize("threshold,exc,message", [
    (float("nan"), ValueError, "threshold must be a cosine in -1..1, got nan"),
    (1.0001, ValueError, "threshold must be a cosine in -1..1, got 1.0001"),
    (-1.5, ValueError, "threshold must be a cosine in -1..1, got -1.5"),
    (float("inf"), ValueError, "threshold must be a cosine in -1..1, got inf"),
    ("0.9", TypeError, "threshold must be a number, got str"),
    (True, TypeError, "threshold must be a number, got bool"),
])
def test_bad_thresholds(threshold, exc, message):
    with pytest.raises(exc, match="^" + message.replace(".", r"\.") + "$"):
        pc.dedup(np.zeros((3, 8), np.int8), threshold)


def test_bad_arguments():
    v = np.zeros((3, 8), np.int8)
    with pytest.raises(TypeError, match="dtype int8, got float32"):
        pc.dedup(v.astype(np.float32))
    with pytest.raises(ValueError, match="2-D"):
        pc.dedup(v[0])
    with pytest.raises(TypeError, match="got list"):
        pc.dedup(v.tolist())
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        pc.dedup(v, candidates=0)
    with pytest.raises(ValueError, match=r"codes must be packed uint8 \(3, 1\)"):
        pc.dedup(v, candidates=2, codes=np.zeros((2, 1), np.uint8))
    with pytest.raises(ValueError, match="threads must be positive"):
        pc.dedup(v, threads=0)
