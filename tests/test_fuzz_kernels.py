"""A bounded fuzz job over every kernel entry point: random shapes that include
zero-width, empty and one-row inputs, every accepted layout (C order, rows at
a free stride, rows in reverse memory order, one 1-D row, views at odd byte
offsets), and ``out=`` given fresh, misaligned or overlapping an input.

Each call must either equal the numpy oracle (tests/reference.py) or raise a
clear ValueError/TypeError for the cases the API refuses (an overlapping or
unaligned ``out``); never crash, hang or answer wrong.  The budget is CI-sized
(1000 examples per test and ISA, ~10 s here); the per-kernel property tests go
deeper on each kernel.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pplx_codec as pc
import reference as ref

AWKWARD = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257]
widths = st.one_of(st.sampled_from(AWKWARD), st.integers(0, 2560))
rows = st.one_of(st.sampled_from([0, 1, 2, 3, 4, 5, 9, 17]), st.integers(0, 70))
LAYOUTS = ["c", "strided", "reversed", "one-row", "odd-offset"]
OUT_MODES = ["none", "fresh", "odd-offset", "overlap"]


def place(a: np.ndarray, layout: str, rng) -> np.ndarray:
    """The values of a (2-D) in another accepted memory layout."""
    if layout == "one-row":
        return a[0] if a.shape[0] else a
    if layout == "strided":
        buf = np.zeros((a.shape[0], a.shape[1] + 3), a.dtype)
        buf[:, 1:1 + a.shape[1]] = a
        return buf[:, 1:1 + a.shape[1]]
    if layout == "reversed":
        return a[::-1].copy()[::-1]
    if layout == "odd-offset":  # rows start off any SIMD (and element) alignment
        off = int(rng.integers(1, 8))
        raw = np.zeros(a.nbytes + off, np.uint8)
        v = raw[off:].view(a.dtype).reshape(a.shape)
        v[...] = a
        return v
    return a


def overlapping(a: np.ndarray, shape, dtype, rng):
    """(a', out): a' holds a's values in a buffer that out (shape, dtype) also
    occupies, the two byte ranges intersecting at a random place; or (a, None)
    when either has no bytes.  Offsets keep each view aligned for its dtype."""
    dtype = np.dtype(dtype)
    osize = int(np.prod(shape)) * dtype.itemsize
    if a.nbytes == 0 or osize == 0:
        return a, None
    raw = np.zeros(a.nbytes + 2 * osize + 128, np.uint8)
    raw = raw[(-raw.ctypes.data) % 64:]
    ia = (osize + 7) // 8 * 8 + 8 * int(rng.integers(0, 4))
    # out starts at a multiple of 8 in (ia - osize, ia + a.nbytes): the ranges meet
    lo = max(0, (ia - osize) // 8 * 8 + 8)
    hi = (ia + a.nbytes - 1) // 8 * 8
    io = 8 * int(rng.integers(lo // 8, hi // 8 + 1))
    a2 = raw[ia:ia + a.nbytes].view(a.dtype).reshape(a.shape)
    a2[...] = a
    out = raw[io:io + osize].view(dtype).reshape(shape)
    assert np.may_share_memory(a2, out)
    return a2, out


def make_out(shape, dtype, mode: str, rng):
    """(out, refused) for the modes other than overlap."""
    if mode == "none":
        return None, False
    if mode == "fresh":
        return np.zeros(shape, dtype), False
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    out = np.zeros(size + 1, np.uint8)[1:].view(dtype).reshape(shape)
    return out, not out.flags.aligned


def run(fn, inputs: list, shape, dtype, mode, rng, in_place_ok=False):
    """fn(*inputs, out) with out per the mode; None when the call is refused
    (as it must be for an overlapping or unaligned out), after checking that
    a refused call left its inputs untouched."""
    if mode == "overlap":
        which = int(rng.integers(0, len(inputs)))
        inputs = list(inputs)
        inputs[which], out = overlapping(inputs[which], shape, dtype, rng)
        if out is None:
            return fn(*inputs, None), None
        a = inputs[which]
        if in_place_ok and a.shape == tuple(shape) and a.flags.c_contiguous and (
                rng.random() < 0.5 or out.ctypes.data == a.ctypes.data):
            return fn(*inputs, a), a  # exactly in place: allowed
        before = [np.array(a, copy=True) for a in inputs]
        with pytest.raises(ValueError, match="out overlaps"):
            fn(*inputs, out)
        for a, b in zip(inputs, before, strict=True):
            np.testing.assert_array_equal(a, b)
        return None, None
    out, refused = make_out(shape, dtype, mode, rng)
    if refused:
        with pytest.raises(ValueError, match="out is not aligned"):
            fn(*inputs, out)
        return None, None
    got = fn(*inputs, out)
    if out is not None:
        assert got is out
    return got, out


def int8_matrix(rng, n, d):
    kind = rng.integers(0, 3)
    if kind == 0:
        return rng.integers(-128, 128, (n, d), dtype=np.int8)
    if kind == 1:
        return rng.choice(np.array([-128, -1, 0, 1, 127], np.int8), (n, d))
    return np.zeros((n, d), np.int8)


def codes_matrix(rng, n, w):
    return rng.integers(0, 256, (n, w), dtype=np.uint8)


@settings(max_examples=1000)
@given(seed=st.integers(0, 2**32 - 1), n=rows, w=widths, layout=st.sampled_from(LAYOUTS),
       mode=st.sampled_from(OUT_MODES), kernel=st.sampled_from(
           ["pack_bits", "unpack_bits", "reverse_bitorder", "norms", "to_float32", "b64decode"]))
def test_fuzz_row_kernels(isa, seed, n, w, layout, mode, kernel):
    rng = np.random.default_rng(seed)
    if kernel == "pack_bits":
        dtype = [np.float32, np.float64, np.int8, np.bool_][seed % 4]
        if dtype == np.bool_:  # raw bytes, not only 0/1: true when non-zero
            x = (rng.integers(0, 256, (n, w), dtype=np.uint8) * (rng.random((n, w)) < 0.5)).view(bool)
        elif dtype == np.int8:
            x = int8_matrix(rng, n, w)
        else:
            x = rng.standard_normal((n, w)).astype(dtype)
            x[rng.random((n, w)) < 0.1] = np.nan
        x = place(x, layout, rng)
        order = ["little", "big"][seed % 2]
        want = ref.pack_bits(x, order)
        got, _ = run(lambda x, o: pc.pack_bits(x, order, out=o), [x], want.shape, np.uint8, mode, rng)
    elif kernel == "unpack_bits":
        c = place(codes_matrix(rng, n, w // 8), layout, rng)
        dtype = [np.uint8, np.int8, np.float32][seed % 3]
        dim = None if seed % 2 else int(rng.integers(0, 8 * c.shape[-1] + 1))
        want = ref.unpack_bits(c, dim, "little", dtype)
        got, _ = run(lambda c, o: pc.unpack_bits(c, dim, "little", dtype, out=o), [c], want.shape, dtype, mode, rng)
    elif kernel == "reverse_bitorder":
        c = place(codes_matrix(rng, n, w // 8), layout, rng)
        want = ref.reverse_bitorder(c)
        got, _ = run(lambda c, o: pc.reverse_bitorder(c, out=o), [c], want.shape, np.uint8, mode, rng,
                     in_place_ok=True)
    elif kernel == "norms":
        m = place(int8_matrix(rng, n, w), layout, rng)
        want = ref.norms(m)
        got, _ = run(lambda m, o: pc.norms(m, out=o), [m], want.shape, np.float32, mode, rng)
    elif kernel == "to_float32":
        m = place(int8_matrix(rng, n, w), layout, rng)
        norm = bool(seed % 2)
        want = ref.to_float32(m, norm)
        got, _ = run(lambda m, o: pc.to_float32(m, norm, out=o), [m], want.shape, np.float32, mode, rng)
    else:  # b64decode of a blob held in a uint8 array (so out can overlap it)
        blob = rng.integers(0, 256, n * w // 4, dtype=np.uint8).tobytes()
        text = np.frombuffer(bytearray(pc.b64encode(blob)), np.uint8)
        if layout == "odd-offset":
            text = place(text[None], "odd-offset", rng)[0]
        want = np.frombuffer(blob, np.uint8)
        got, _ = run(lambda t, o: pc.b64decode(t, out=o), [text], want.shape, np.uint8, mode, rng)
    if got is not None:
        np.testing.assert_array_equal(got, want)


@settings(max_examples=1000)
@given(seed=st.integers(0, 2**32 - 1), m=rows, n=rows, w=widths, qlayout=st.sampled_from(LAYOUTS),
       xlayout=st.sampled_from(["c", "strided", "reversed", "odd-offset"]), mode=st.sampled_from(OUT_MODES),
       kernel=st.sampled_from(["hamming_matrix", "dot_matrix", "cosine", "search_binary", "search_int8"]),
       threads=st.sampled_from([1, 2, 3]))
def test_fuzz_similarity(isa, seed, m, n, w, qlayout, xlayout, mode, kernel, threads):
    rng = np.random.default_rng(seed)
    m = max(m, 1) if qlayout == "one-row" else m
    binary = kernel in ("hamming_matrix", "search_binary")
    w = w // 8 if binary else w
    make = codes_matrix if binary else int8_matrix
    X = place(make(rng, n, w), xlayout, rng)
    if rng.random() < 0.3 and n:  # queries drawn from the rows: exact ties
        Q = place(np.ascontiguousarray(X[rng.integers(0, n, m)]), qlayout, rng)
    else:
        Q = place(make(rng, m, w), qlayout, rng)
    if kernel in ("hamming_matrix", "dot_matrix"):
        want = (ref.hamming_matrix if binary else ref.dot_matrix)(Q, X)
        fn = pc.hamming_matrix if binary else pc.dot_matrix
        got, _ = run(lambda q, x, o: fn(q, x, threads=threads, out=o), [Q, X], want.shape, np.int32, mode, rng)
        if got is not None:
            np.testing.assert_array_equal(got, want)
    elif kernel == "cosine":
        np.testing.assert_array_equal(pc.cosine(Q, X, threads=threads), ref.cosine(Q, X))
    else:
        k = int(rng.choice([1, 3, max(n, 1), n + 4]))
        if binary:
            got, want = pc.search_binary(Q, X, k, threads=threads), ref.search_binary(Q, X, k)
        else:
            metric = ["cosine", "dot"][seed % 2]
            got, want = pc.search_int8(Q, X, k, metric, threads=threads), ref.search_int8(Q, X, k, metric)
        for g, e in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, e)
