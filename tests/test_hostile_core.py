"""Hostile input to the compiled core: regressions for issue 10's findings 1-3
and 7, each of which crashed, allocated without bound or answered silently
wrong before the fix.

- zero-width rows: one rule everywhere (an empty vector: Hamming 0, dot 0,
  cosine 0, packs to zero bytes); the widened many-query int8 path divided by
  the row width (SIGFPE);
- ``out=`` overlapping an input: a ValueError, except the exact in-place call
  of an elementwise kernel (``reverse_bitorder(c, out=c)``);
- bool bytes that are not 0/1: true when non-zero, as numpy reads them;
- loose scalars and containers: bools, huge integers, unordered containers,
  buffer-protocol objects, mixed merge parts, misaligned views;
- (issue 22, findings 5 and 6) ``k`` bounded by the rows searched, the same
  bound and message for every search, and messages that state the real range.
"""

import array
import mmap

import numpy as np
import pytest

import pplx_codec as pc
import reference as ref
from helpers import raises_exactly

# ---------------------------------------------------------------- 1. zero width


@pytest.mark.parametrize("m", [1, 4, 5, 9, 17])
@pytest.mark.parametrize("threads", [1, 2])
def test_zero_width_int8(isa, m, threads):
    """More than 4 queries took the widened-tile path, which sized its tile by
    dividing by 2 * dim: a floating point exception killed the interpreter."""
    Q, X = np.zeros((m, 0), np.int8), np.zeros((5, 0), np.int8)
    assert np.array_equal(pc.dot_matrix(Q, X, threads=threads), np.zeros((m, 5), np.int32))
    assert np.array_equal(pc.cosine(Q, X, threads=threads), np.zeros((m, 5), np.float32))
    for metric in ("cosine", "dot"):
        S, I = pc.search_int8(Q, X, k=3, metric=metric, threads=threads)
        # every row ties at 0: the lower row index wins, as for any tie
        assert np.array_equal(S, np.zeros((m, 3), np.float32))
        assert np.array_equal(I, np.tile(np.arange(3), (m, 1)))
        assert [a.tolist() for a in (S, I)] == [a.tolist() for a in ref.search_int8(Q, X, 3, metric)]


def test_zero_width_reproducers(isa):
    """The issue's three reproducers."""
    assert pc.dot_matrix(np.zeros((5, 0), np.int8), np.zeros((1, 0), np.int8), threads=1).shape == (5, 1)
    S, I = pc.search_int8(np.zeros((9, 0), np.int8), np.zeros((1, 0), np.int8), k=1)
    assert S.tolist() == [[0.0]] * 9 and I.tolist() == [[0]] * 9
    assert pc.cosine(np.zeros((5, 0), np.int8), np.zeros((3, 0), np.int8)).tolist() == [[0.0] * 3] * 5


@pytest.mark.parametrize("m", [1, 5, 9])
def test_zero_width_codes_and_rows(isa, m):
    Q, C = np.zeros((m, 0), np.uint8), np.zeros((6, 0), np.uint8)
    assert np.array_equal(pc.hamming_matrix(Q, C), np.zeros((m, 6), np.int32))
    D, I = pc.search_binary(Q, C, k=2)
    assert D.tolist() == [[0, 0]] * m and I.tolist() == [[0, 1]] * m
    assert pc.pack_bits(np.zeros((3, 0), np.float32)).shape == (3, 0)
    assert pc.unpack_bits(np.zeros((3, 0), np.uint8)).shape == (3, 0)
    assert pc.unpack_bits(np.zeros((3, 2), np.uint8), dim=0).shape == (3, 0)
    assert pc.reverse_bitorder(np.zeros((3, 0), np.uint8)).shape == (3, 0)
    assert pc.norms(np.zeros((3, 0), np.int8)).tolist() == [0.0] * 3
    assert pc.to_float32(np.zeros((3, 0), np.int8)).shape == (3, 0)


def test_zero_width_rows_round_trip_through_base64(isa):
    """encode gives an empty string per zero-width row; decode takes them back with dim=0."""
    strs = pc.encode_int8(np.zeros((3, 0), np.int8))
    assert strs == ["", "", ""] and pc.encode_binary(np.zeros((3, 0), np.uint8)) == strs
    assert pc.decode_int8(strs, dim=0).shape == (3, 0)
    assert pc.decode_binary(strs, dim=0).shape == (3, 0)
    with raises_exactly(ValueError, "item 1: decodes to 3 bytes, expected 0"):
        pc.decode_int8(["", "AAAA"], dim=0)


@pytest.mark.parametrize("m", [0, 1, 6])
def test_no_rows_and_no_queries(isa, m):
    """n = 0 rows: everything is padding; m = 0 queries: empty results."""
    for w in (0, 1, 33):
        D, I = pc.search_binary(np.zeros((m, w), np.uint8), np.zeros((0, w), np.uint8), k=4)
        assert D.shape == I.shape == (m, 4) and (I == -1).all() and (D == pc.search.PAD_DISTANCE).all()
        S, I = pc.search_int8(np.zeros((m, w), np.int8), np.zeros((0, w), np.int8), k=4)
        assert S.shape == (m, 4) and (I == -1).all() and np.isneginf(S).all()


def test_k_far_above_the_row_count(isa):
    """Heaps hold min(k, n) entries; only the result is padded to k (up to
    the bound: 20 rows + 1024 columns of padding)."""
    rng = np.random.default_rng(1)
    X = rng.integers(-128, 128, (20, 16), dtype=np.int8)
    S, I = pc.search_int8(X[:3], X, k=1044)
    want = ref.search_int8(X[:3], X, 20)
    assert S.shape == (3, 1044) and np.array_equal(I[:, :20], want[1]) and (I[:, 20:] == -1).all()
    assert np.array_equal(S[:, :20], want[0]) and np.isneginf(S[:, 20:]).all()
    C = rng.integers(0, 256, (20, 4), dtype=np.uint8)
    D, I = pc.search_binary(C[:2], C, k=1044)
    want = ref.search_binary(C[:2], C, 20)
    assert np.array_equal(D[:, :20], want[0]) and np.array_equal(I[:, :20], want[1])
    assert (I[:, 20:] == -1).all() and (D[:, 20:] == pc.search.PAD_DISTANCE).all()


def _k_bound(k, n):
    return (f"k must be at most {n + max(n, 1024)} for {n} row{'' if n == 1 else 's'} (a search pads at most "
            f"max(rows, 1024) = {max(n, 1024)} columns beyond them), got {k}"
            + (f"; k={n} returns every row" if n else ""))


def test_k_padding_is_bounded_reproducer(isa):
    """Issue 22, finding 5: k was bounded by nothing, and the padding beyond
    the rows was allocated: 3 queries over 20 codes with k=2**28 asked for
    ~9.6 GB.  Now a ValueError naming the bound and suggesting k=n."""
    codes = np.random.default_rng(0).integers(0, 256, (20, 64), dtype=np.uint8)
    with raises_exactly(ValueError, "k must be at most 1044 for 20 rows (a search pads at most max(rows, 1024) = "
                                    "1024 columns beyond them), got 268435456; k=20 returns every row"):
        pc.search_binary(codes[:3], codes, k=2**28)
    # a k a little above n is still padded, as faiss does
    D, I = pc.search_binary(codes[:3], codes[:5], k=10)
    assert D.shape == (3, 10) and (I[:, 5:] == -1).all() and (I[:, :5] >= 0).all()


@pytest.mark.parametrize("n", [0, 1, 5, 1024, 2000])
def test_k_bound_is_the_same_for_every_search(isa, n):
    """max(n, 1024) columns of padding are fine, one more is refused, with
    the same message, by every search entry point (the bound is ranking's)."""
    rng = np.random.default_rng(n)
    V = rng.integers(-128, 128, (n, 16), dtype=np.int8)
    C = pc.pack_bits(V)
    q = rng.integers(-128, 128, (2, 16), dtype=np.int8)
    ok, bad = n + max(n, 1024), n + max(n, 1024) + 1
    b, i8, idx = pc.BinaryIndex(16), pc.Int8Index(16), pc.Index(16)
    for index in (b, i8, idx):   # two segments: the bound is the index's rows, not a segment's
        index.add(V[: n // 2])
        index.add(V[n // 2:])
    calls = [lambda k: pc.search_binary(pc.pack_bits(q), C, k), lambda k: pc.search_int8(q, V, k),
             lambda k: pc.search_int8(q, V, k, "dot"), lambda k: b.search(q, k), lambda k: i8.search(q, k),
             lambda k: i8.search(q, k, "dot"), lambda k: idx.search(q, k)]
    for call in calls:
        D, I = call(ok)
        assert D.shape == I.shape == (2, ok) and (I[:, n:] == -1).all() and (I[:, :n] >= 0).all()
        for k in (bad, 2**28, 2**63, 2**70):
            with raises_exactly(ValueError, _k_bound(k, n)):
                call(k)


def test_merge_topk_padding_is_bounded(isa):
    """merge_topk pads beyond the parts' columns as a search pads beyond its rows."""
    part = (np.array([[1.0, 0.5]], np.float32), np.array([[0, 1]]))
    D, I = pc.merge_topk([part, part], 1028, offsets=[0, 2], descending=True)
    assert D.shape == (1, 1028) and I[0, :4].tolist() == [0, 2, 1, 3] and (I[0, 4:] == -1).all()
    with raises_exactly(ValueError, "k must be at most 1028 for 4 candidates (a search pads at most max(candidates, "
                                    "1024) = 1024 columns beyond them), got 1029; k=4 returns every candidate"):
        pc.merge_topk([part, part], 1029, offsets=[0, 2], descending=True)


def test_index_rescore_beyond_the_rows(isa):
    """Issue 22, findings 5 and 6: Index.search(rescore=10**9) asked for 33.5 GB
    of candidates, and rescore=2**62 was reported as a bad k.  Candidates
    beyond the rows would only be padding: they are left out, and the answer
    is the exact cosine top-k (every row rescored), as a rescore of n/k gives."""
    rng = np.random.default_rng(2)
    V = rng.integers(-128, 128, (20, 64), dtype=np.int8)
    index = pc.Index(64)
    index.add(V)
    want = ref.search_int8(V[:3], V, 3)
    for rescore in (7, 10**9, 2**62, 2**70):
        np.testing.assert_array_equal(index.search(V[:3], 3, rescore=rescore)[1], want[1])
    S, I = index.search(V[:3], 25, rescore=8)   # k above the rows: padded to k, as a search pads
    assert S.shape == (3, 25) and (I[:, 20:] == -1).all() and np.isneginf(S[:, 20:]).all()
    for rescore, exc, msg in ((0, ValueError, "rescore must be positive, got 0"),
                              (-2**63, ValueError, f"rescore must be positive, got {-2**63}"),
                              (True, TypeError, "rescore must be an integer, got bool"),
                              (2.0, TypeError, "rescore must be an integer, got float")):
        with raises_exactly(exc, msg):
            index.search(V[:3], 3, rescore=rescore)


# ---------------------------------------------------------------- 2. out= overlapping an input

def test_overlap_reproducer(isa):
    """The issue's reproducer: the wrong answer is now a ValueError."""
    buf = np.zeros(8 * 64 * 16, np.uint8)
    c = buf[:64 * 16].reshape(64, 16)
    c[:] = np.random.default_rng(0).integers(0, 256, (64, 16), np.uint8)
    exp = np.unpackbits(c, axis=1, bitorder="little")
    o = buf.reshape(64, 128)
    with pytest.raises(ValueError, match="out overlaps packed"):
        pc.unpack_bits(c, out=o)
    assert np.array_equal(pc.unpack_bits(c.copy(), out=o), exp)  # a separate input is fine


def _overlapping_cases(rng):
    """(name, call(out), input array, out array) with out sharing memory with the input."""
    raw = np.zeros(1 << 16, np.uint8)
    codes = raw[8:8 + 40 * 16].reshape(40, 16)
    codes[:] = rng.integers(0, 256, codes.shape, dtype=np.uint8)
    i8 = codes.view(np.int8)
    # outputs laid over the same bytes (shifted by a few so that a kernel
    # that writes ahead of its reads goes wrong, as unpack_bits did)
    f32 = raw[:40 * 16 * 4].view(np.float32).reshape(40, 16)
    f32_row = raw[:40 * 4].view(np.float32)
    u8_bits = raw[:40 * 128].reshape(40, 128)
    i32 = raw[:40 * 40 * 4].view(np.int32).reshape(40, 40)
    i32_row = raw[:40 * 4].view(np.int32)
    packed_out = raw[9:9 + 40 * 2].reshape(40, 2)
    return [
        ("unpack_bits", lambda o: pc.unpack_bits(codes, out=o), u8_bits, "packed"),
        ("unpack_bits f32", lambda o: pc.unpack_bits(codes, dtype=np.float32, out=o),
         raw[:40 * 128 * 4].view(np.float32).reshape(40, 128), "packed"),
        ("pack_bits", lambda o: pc.pack_bits(i8, out=o), packed_out, "x"),
        ("reverse_bitorder shifted", lambda o: pc.reverse_bitorder(codes, out=o), raw[9:9 + 640].reshape(40, 16),
         "packed"),
        ("to_float32", lambda o: pc.to_float32(i8, out=o), f32, "matrix"),
        ("norms", lambda o: pc.norms(i8, out=o), f32_row, "matrix"),
        ("hamming_matrix", lambda o: pc.hamming_matrix(codes, codes, out=o), i32, "queries"),
        ("hamming", lambda o: pc.hamming(codes[5], codes, out=o), i32_row, "queries"),
        ("dot_matrix", lambda o: pc.dot_matrix(i8, i8, out=o), i32, "queries"),
        ("dot", lambda o: pc.dot(i8[3], i8, out=o), raw[200:200 + 160].view(np.int32), "db"),
    ]


def test_every_out_refuses_overlap(isa):
    rng = np.random.default_rng(2)
    for _name, call, out, what in _overlapping_cases(rng):
        with pytest.raises(ValueError, match=f"out overlaps {what} in memory"):
            call(out)


def test_out_overlapping_only_the_db(isa):
    """The second input counts too."""
    rng = np.random.default_rng(3)
    raw = np.zeros(4096, np.uint8)
    X = raw[:64 * 8].reshape(64, 8)
    X[:] = rng.integers(0, 256, X.shape, dtype=np.uint8)
    q = rng.integers(0, 256, (1, 8), dtype=np.uint8)
    with pytest.raises(ValueError, match="out overlaps codes"):
        pc.hamming_matrix(q, X, out=raw[256:256 + 64 * 4].view(np.int32).reshape(1, 64))
    with pytest.raises(ValueError, match="out overlaps db"):
        pc.dot_matrix(q.view(np.int8), X.view(np.int8), out=raw[256:256 + 64 * 4].view(np.int32).reshape(1, 64))


def test_b64decode_out_overlapping_its_input(isa):
    data = bytearray(b"Zm9vYmFyYmF6" + bytes(12))
    view = np.frombuffer(data, np.uint8)
    with pytest.raises(ValueError, match="out overlaps data"):
        pc.b64decode(memoryview(data)[:12], out=view[3:12])
    assert pc.b64decode(memoryview(data)[:12], out=view[12:21]).tobytes() == b"foobarbaz"


def test_reverse_bitorder_in_place(isa):
    """The one kernel documented safe in place: exactly the same array."""
    rng = np.random.default_rng(4)
    for shape in [(0, 4), (1, 1), (7, 33), (300, 128)]:
        c = rng.integers(0, 256, shape, dtype=np.uint8)
        want = ref.reverse_bitorder(c)
        assert pc.reverse_bitorder(c, out=c) is c and np.array_equal(c, want)
    one = rng.integers(0, 256, 100, dtype=np.uint8)
    want = ref.reverse_bitorder(one)
    pc.reverse_bitorder(one, out=one)
    assert np.array_equal(one, want)


def test_disjoint_neighbours_are_not_overlap(isa):
    """Adjacent but disjoint slices of one buffer are fine (no false alarm)."""
    raw = np.random.default_rng(5).integers(0, 256, 8 * 16 + 8 * 128, dtype=np.uint8)
    c, o = raw[:8 * 16].reshape(8, 16), raw[8 * 16:].reshape(8, 128)
    want = ref.unpack_bits(c.copy())
    assert np.array_equal(pc.unpack_bits(c, out=o), want)
    m = np.zeros((4, 8), np.int8)
    # interleaved rows that never touch: a strided input whose gaps hold... nothing of out
    assert pc.norms(m, out=np.zeros(4, np.float32)).tolist() == [0.0] * 4


# ---------------------------------------------------------------- 3. bool bytes

def test_pack_bits_bools_are_true_when_non_zero(isa):
    x = np.frombuffer(bytes([2, 0, 255, 1, 0, 0, 0, 128]), bool)
    assert pc.pack_bits(x).tolist() == np.packbits(x, bitorder="little").tolist() == [141]
    assert pc.pack_bits(x, "big").tolist() == np.packbits(x).tolist()


@pytest.mark.parametrize("dim", [1, 7, 8, 31, 32, 33, 64, 100, 1024])
def test_pack_bits_raw_bool_bytes(isa, dim):
    rng = np.random.default_rng(dim)
    raw = rng.integers(0, 256, (5, dim), dtype=np.uint8)
    raw[rng.random(raw.shape) < 0.4] = 0
    x = raw.view(np.bool_)
    for order in ("little", "big"):
        assert np.array_equal(pc.pack_bits(x, order), np.packbits(raw != 0, axis=-1, bitorder=order))


# ---------------------------------------------------------------- 7. loose argument checks

@pytest.mark.parametrize("items", [{"AAAA": 1}, {"AAAA"}, frozenset({"AAAA"}), {"a": "AAAA"}.keys()])
def test_decode_refuses_unordered_containers(isa, items):
    with pytest.raises(TypeError, match="ordered sequence"):
        pc.decode_int8(items)


def test_decode_accepts_ordered_iterables(isa):
    rows = pc.encode_int8(np.arange(12, dtype=np.int8).reshape(3, 4))
    want = np.arange(12, dtype=np.int8).reshape(3, 4)
    as_dict = dict(enumerate(rows))
    for items in (rows, tuple(rows), iter(rows), (r for r in rows), as_dict.values()):
        assert np.array_equal(pc.decode_int8(items), want)


@pytest.mark.parametrize(("call", "exc", "msg"), [
    (lambda: pc.decode_int8(["AAAA"], dim=True), TypeError, "dim must be an integer, got bool"),
    (lambda: pc.decode_binary(["AAAA"], dim=np.True_), TypeError, "dim must be an integer, got bool"),
    (lambda: pc.decode_int8(["AAAA"], dim=2**64), ValueError, f"dim must be at most {2**63 - 1}, got {2**64}"),
    (lambda: pc.search_binary(np.zeros(4, np.uint8), np.zeros((3, 4), np.uint8), k=True), TypeError,
     "k must be an integer, got bool"),
    (lambda: pc.search_int8(np.zeros(4, np.int8), np.zeros((3, 4), np.int8), k=2**70), ValueError,
     f"k must be at most 1027 for 3 rows (a search pads at most max(rows, 1024) = 1024 columns beyond them), "
     f"got {2**70}; k=3 returns every row"),
    # the true range, not ">= -9223372036854775807" (issue 22, finding 6)
    (lambda: pc.search_binary(np.zeros(4, np.uint8), np.zeros((3, 4), np.uint8), k=-2**63), ValueError,
     f"k must be >= 1, got {-2**63}"),
    (lambda: pc.search_binary(np.zeros(4, np.uint8), np.zeros((3, 4), np.uint8), k=-2**70), ValueError,
     f"k must be >= 1, got {-2**70}"),
    (lambda: pc.merge_topk([(np.zeros(2), np.zeros(2, np.int64))], k=2**70), ValueError,
     f"k must be at most {2**63 - 1}, got {2**70}"),
    (lambda: pc.dot_matrix(np.zeros(4, np.int8), np.zeros((3, 4), np.int8), threads=2**40), ValueError,
     "threads must be at most 65536"),
    (lambda: pc.hamming(np.zeros(4, np.uint8), np.zeros((3, 4), np.uint8), threads=False), TypeError,
     "threads must be an integer, got bool"),
    (lambda: pc.truncate(np.zeros((2, 256), np.int8), True), TypeError, "dimensions must be an integer, got bool"),
])
def test_scalar_checks(isa, call, exc, msg):
    with pytest.raises(exc, match="^" + msg.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_huge_dim_is_an_error_not_an_allocation(isa):
    """Lengths are checked before the output is allocated."""
    with raises_exactly(ValueError, f"item 0: decodes to 3 bytes, expected {2**50}"):
        pc.decode_int8(["AAAA"], dim=2**50)
    with raises_exactly(ValueError, f"item 0: decodes to 3 bytes, expected {2**40}"):
        pc.decode_binary(["AAAA", "AAAA"], dim=8 * 2**40)


def test_first_bad_item_is_named(isa):
    """A bad character before a bad length is still reported first."""
    with raises_exactly(ValueError, "item 1: invalid base64: invalid base64 character '!' at offset 2"):
        pc.decode_int8(["AAAA", "AA!A", "AAAAAAAA"])
    with raises_exactly(ValueError, "item 2: decodes to 6 bytes, expected 3"):
        pc.decode_int8(["AAAA", "AAAA", "AAAAAAAA", "AA!A"])


def test_b64decode_takes_any_bytes_like(isa, tmp_path):
    p = tmp_path / "blob"
    p.write_bytes(b"Zm9vYmFy")
    with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        assert pc.b64decode(mm).tobytes() == b"foobar"
    assert pc.b64decode(array.array("B", b"Zm9vYmFy")).tobytes() == b"foobar"
    assert pc.b64decode(memoryview(b"Zm9vYmFy").cast("c")).tobytes() == b"foobar"
    with pytest.raises(TypeError, match="bytes-like"):
        pc.b64decode(12345)


def test_merge_topk_refuses_mixed_parts():
    D1, I1 = np.array([1, 2], np.int32), np.array([0, 1])
    D2, I2 = np.array([[0, 5]], np.int32), np.array([[3, 4]])
    with pytest.raises(ValueError, match="part 1: .* 1-D like part 0"):
        pc.merge_topk([(D1, I1), (D2, I2)], 2)
    with pytest.raises(ValueError, match="part 1: .* 2-D like part 0"):
        pc.merge_topk([(D2, I2), (D1, I1)], 2)
    with pytest.raises(ValueError, match="part 1: 2 query rows, part 0 has 1"):
        pc.merge_topk([(D2, I2), (np.zeros((2, 2), np.int32), np.zeros((2, 2), np.int64))], 2)
    with pytest.raises(TypeError, match="part 0: D must be numbers and I integers"):
        pc.merge_topk([(D2, I2.astype(np.float64))], 2)
    with pytest.raises(TypeError, match=r"part 0: expected a \(D, I\) pair"):
        pc.merge_topk([D2], 2)
    # the right answer for well-formed parts, 1-D and 2-D
    D, I = pc.merge_topk([(D1, I1), (np.array([0, 9], np.int32), np.array([5, 6]))], 3)
    assert D.tolist() == [0, 1, 2] and I.tolist() == [5, 0, 1]


def test_misaligned_views(isa):
    """float32/float64 views at odd byte offsets: inputs are read through an
    aligned copy; an unaligned `out` is refused (C kernels may only
    dereference aligned element pointers)."""
    rng = np.random.default_rng(6)
    for n in (1, 7, 33, 1000):
        buf = np.zeros(8 * n + 8, np.uint8)
        x = buf[1:1 + 4 * n].view(np.float32)
        x[:] = rng.standard_normal(n)
        assert not x.flags.aligned
        assert np.array_equal(pc.pack_bits(x), ref.pack_bits(x))
        y = buf[3:3 + 8 * n].view(np.float64)
        y[:] = rng.standard_normal(n)
        assert np.array_equal(pc.pack_bits(y, "big"), ref.pack_bits(y, "big"))
    m = rng.integers(-128, 128, (5, 9), dtype=np.int8)
    bad = np.zeros(4 * 5 + 1, np.uint8)[1:].view(np.float32)
    with pytest.raises(ValueError, match="out is not aligned"):
        pc.norms(m, out=bad)
    with pytest.raises(ValueError, match="out is not aligned"):
        pc.hamming_matrix(m.view(np.uint8), m.view(np.uint8),
                          out=np.zeros(4 * 25 + 1, np.uint8)[1:].view(np.int32).reshape(5, 5))
