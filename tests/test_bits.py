"""Bit packing: pack_bits, unpack_bits, reverse_bitorder."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pplx_codec as pc
import reference as ref
from helpers import on_every_isa, raises_exactly

AWKWARD_DIMS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129]
REAL_DIMS = [128, 256, 512, 1024, 2560]
dims = st.one_of(st.sampled_from(AWKWARD_DIMS + REAL_DIMS), st.integers(0, 2560))
widths = st.one_of(st.sampled_from([0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 31, 32, 33, 64, 128, 320]), st.integers(0, 400))
bitorders = st.sampled_from(["little", "big"])
UNPACK_DTYPES = [np.uint8, np.int8, np.float32]
unpack_dtypes = st.sampled_from(UNPACK_DTYPES + ["uint8", "int8", "float32", np.dtype(np.int8), np.dtype(np.float32)])

F32_SPECIAL = np.array([np.nan, -np.nan, 0.0, -0.0, np.inf, -np.inf, 1e-45, -1e-45, 1.2e-38, -1.2e-38,
                        1.0, -1.0, 3.4e38, -3.4e38], dtype=np.float32)
F64_SPECIAL = np.array([np.nan, -np.nan, 0.0, -0.0, np.inf, -np.inf, 5e-324, -5e-324, 2.2e-308, -2.2e-308,
                        1e-45, -1e-45, 1.0, -1.0, 1.7e308, -1.7e308], dtype=np.float64)


@st.composite
def pack_inputs(draw, min_rows=0, max_rows=9):
    """(x, layout): float32/float64/int8/bool rows (or one 1-D row) with NaN, +-0,
    +-inf, denormals and the int8 extremes mixed in."""
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int8, np.bool_]))
    n, dim = draw(st.integers(min_rows, max_rows)), draw(dims)
    shape = (dim,) if draw(st.booleans()) else (n, dim)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    special_share = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    if dtype == np.bool_:
        x = rng.random(shape) < draw(st.sampled_from([0.0, 0.5, 1.0]))
        if draw(st.booleans()):  # bool bytes that are not 0/1 (a view of raw bytes): true when non-zero
            x = (x * rng.integers(1, 256, shape, dtype=np.uint8, endpoint=False)).view(np.bool_)
    elif dtype == np.int8:
        x = rng.integers(-128, 127, shape, dtype=np.int8, endpoint=True)
        specials = np.array([-128, -1, 0, 1, 127], dtype=np.int8)
    else:
        x = rng.standard_normal(shape).astype(dtype)
        specials = F32_SPECIAL if dtype == np.float32 else F64_SPECIAL
    if dtype != np.bool_:
        mask = rng.random(shape) < special_share
        x[mask] = rng.choice(specials, int(mask.sum()))
    return relayout(x, draw(st.sampled_from(["c", "strided-rows", "reversed-rows"])))


def relayout(a: np.ndarray, how: str) -> np.ndarray:
    """The same values in another accepted layout: rows at a free stride (and an
    address off the SIMD alignment), or rows in reverse memory order."""
    if how == "c":
        return a
    if a.ndim == 1 or how == "strided-rows":
        buf = np.zeros(a.shape[:-1] + (a.shape[-1] + 5,), dtype=a.dtype)
        buf[..., 1:1 + a.shape[-1]] = a
        return buf[..., 1:1 + a.shape[-1]]
    return a[::-1].copy()[::-1]


@st.composite
def packed_codes(draw, min_rows=0, max_rows=9):
    n, w = draw(st.integers(min_rows, max_rows)), draw(widths)
    shape = (w,) if draw(st.booleans()) else (n, w)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    codes = rng.integers(0, 256, shape, dtype=np.uint8, endpoint=False)
    if draw(st.booleans()):
        if w:
            codes[..., rng.integers(0, w)] = draw(st.sampled_from([0, 255, 1, 128]))
    return relayout(codes, draw(st.sampled_from(["c", "strided-rows", "reversed-rows"])))


# ---------------------------------------------------------------- pack_bits

@given(x=pack_inputs(), bitorder=bitorders)
def test_pack_bits_matches_reference(isa, x, bitorder):
    got = pc.pack_bits(x, bitorder=bitorder)
    want = ref.pack_bits(x, bitorder)
    assert got.dtype == np.uint8 and got.flags.c_contiguous
    assert got.shape == x.shape[:-1] + ((x.shape[-1] + 7) // 8,)
    np.testing.assert_array_equal(got, want)


@given(x=pack_inputs(), bitorder=bitorders)
def test_pack_bits_isas_agree(x, bitorder):
    want = ref.pack_bits(x, bitorder)
    for got in on_every_isa(lambda: pc.pack_bits(x, bitorder)):
        np.testing.assert_array_equal(got, want)


def test_pack_bits_default_is_little(isa):
    x = np.array([1, -1, -1, -1, -1, -1, -1, -1, -1, 1], dtype=np.float32)
    np.testing.assert_array_equal(pc.pack_bits(x), [0x01, 0x02])
    np.testing.assert_array_equal(pc.pack_bits(x, "little"), [0x01, 0x02])
    np.testing.assert_array_equal(pc.pack_bits(x, "big"), [0x80, 0x40])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bitorder", ["little", "big"])
def test_pack_nan_and_signed_zero_give_0(isa, dtype, bitorder):
    specials = F32_SPECIAL if dtype == np.float32 else F64_SPECIAL
    for dim in (len(specials), 64, 67, 1024):  # serial only, and the SIMD loop with tails
        x = np.resize(specials, dim).astype(dtype)
        bits = np.unpackbits(pc.pack_bits(x, bitorder), bitorder=bitorder)[:dim]
        for v, bit in zip(x, bits, strict=True):
            assert bit == (1 if v > 0 else 0), (v, bit)
        nan_or_zero = np.isnan(x) | (x == 0)
        assert nan_or_zero.sum() >= dim * 4 // len(specials)
        assert not bits[nan_or_zero].any()


@pytest.mark.parametrize("dtype", [np.int8, np.bool_])
def test_pack_int8_and_bool_thresholds(isa, dtype):
    x = np.resize(np.array([-128, -1, 0, 1, 127] if dtype == np.int8 else [0, 1, 1, 0, 0]), 101).astype(dtype)
    for bitorder in ("little", "big"):
        np.testing.assert_array_equal(np.unpackbits(pc.pack_bits(x, bitorder), bitorder=bitorder)[:101], x > 0)


@pytest.mark.parametrize("dim", [1, 5, 7, 9, 15, 17, 31, 33, 63, 65, 127, 129, 1021])
@pytest.mark.parametrize("bitorder", ["little", "big"])
def test_pack_trailing_bits_are_zero(isa, dim, bitorder):
    for dtype in (np.float32, np.float64, np.int8, np.bool_):
        x = np.ones((3, dim), dtype=dtype)
        packed = pc.pack_bits(x, bitorder)
        assert packed.shape == (3, (dim + 7) // 8)
        assert (packed[:, :-1] == 0xFF).all()
        tail = (1 << dim % 8) - 1 if bitorder == "little" else (0xFF << (8 - dim % 8)) & 0xFF
        assert (packed[:, -1] == (tail if dim % 8 else 0xFF)).all()


def test_pack_one_d_gives_one_d(isa):
    x = np.linspace(-1, 1, 100, dtype=np.float32)
    got = pc.pack_bits(x)
    assert got.shape == (13,)
    np.testing.assert_array_equal(got, np.packbits(x > 0, bitorder="little"))
    assert pc.pack_bits(x[None, :]).shape == (1, 13)


@given(x=pack_inputs(), bitorder=bitorders)
def test_pack_unpack_round_trip(isa, x, bitorder):
    dim = x.shape[-1]
    packed = pc.pack_bits(x, bitorder)
    np.testing.assert_array_equal(pc.unpack_bits(packed, dim, bitorder), (x > 0).astype(np.uint8))
    np.testing.assert_array_equal(pc.unpack_bits(packed, dim, bitorder, dtype=np.int8),
                                  np.where(x > 0, 1, -1).astype(np.int8))
    np.testing.assert_array_equal(pc.unpack_bits(packed, dim, bitorder, dtype=np.float32),
                                  np.where(x > 0, 1.0, -1.0).astype(np.float32))


def test_pack_real_sizes(isa):
    rng = np.random.default_rng(11)
    for dim in REAL_DIMS:
        x = rng.standard_normal((10, dim)).astype(np.float32)
        i8 = np.clip(np.round(np.tanh(x) * 127), -128, 127).astype(np.int8)
        for bitorder in ("little", "big"):
            np.testing.assert_array_equal(pc.pack_bits(x, bitorder), ref.pack_bits(x, bitorder))
            np.testing.assert_array_equal(pc.pack_bits(i8, bitorder), ref.pack_bits(i8, bitorder))


# ---------------------------------------------------------------- unpack_bits

@given(codes=packed_codes(), data=st.data(), bitorder=bitorders, dtype=unpack_dtypes)
def test_unpack_bits_matches_reference(isa, codes, data, bitorder, dtype):
    w = codes.shape[-1]
    dim = data.draw(st.one_of(st.none(), st.integers(0, 8 * w), st.just(8 * w)), label="dim")
    got = pc.unpack_bits(codes, dim, bitorder, dtype)
    want = ref.unpack_bits(codes, dim, bitorder, dtype)
    assert got.dtype == np.dtype(dtype) and got.flags.c_contiguous
    assert got.shape == codes.shape[:-1] + (8 * w if dim is None else dim,)
    np.testing.assert_array_equal(got, want)


@given(codes=packed_codes(), data=st.data(), bitorder=bitorders, dtype=st.sampled_from(UNPACK_DTYPES))
def test_unpack_bits_isas_agree(codes, data, bitorder, dtype):
    dim = data.draw(st.one_of(st.none(), st.integers(0, 8 * codes.shape[-1])), label="dim")
    want = ref.unpack_bits(codes, dim, bitorder, dtype)
    for got in on_every_isa(lambda: pc.unpack_bits(codes, dim, bitorder, dtype)):
        np.testing.assert_array_equal(got, want)


def test_unpack_values_and_defaults(isa):
    codes = np.array([[0b00000101, 0b10000000]], dtype=np.uint8)
    np.testing.assert_array_equal(pc.unpack_bits(codes)[0], [1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(pc.unpack_bits(codes, bitorder="big")[0],
                                  [0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(pc.unpack_bits(codes, 3, dtype=np.int8)[0], [1, -1, 1])
    f = pc.unpack_bits(codes, 9, dtype=np.float32)
    assert f.dtype == np.float32 and f.shape == (1, 9)
    np.testing.assert_array_equal(f[0], [1, -1, 1, -1, -1, -1, -1, -1, -1])
    assert pc.unpack_bits(codes[0]).shape == (16,)


@pytest.mark.parametrize("dtype", UNPACK_DTYPES)
@pytest.mark.parametrize("bitorder", ["little", "big"])
@pytest.mark.parametrize(("shape", "dim", "offset"), [
    ((2**18 + 7,), None, 0),      # one row, >= 2 MiB of bytes out: the streaming-store path
                                  # (when forced: by default it starts at 3/4 of the L3 size)
    ((2**18 + 7,), None, 1),      # ... into a destination that can never be 32-byte aligned
    ((2**18 + 7,), None, 8),      # ... that the 8-bit steps can align
    ((2**18 + 7,), None, 24),
    ((16, 16411), None, 0),       # many rows run as one
    ((16, 16411), None, 16),
    ((16, 16411), 131283, 3),     # a prefix: row by row
])
def test_unpack_large_outputs(isa, stream_min, dtype, bitorder, shape, dim, offset):
    codes = np.random.default_rng(5).integers(0, 256, shape, dtype=np.uint8)
    want = ref.unpack_bits(codes, dim, bitorder, dtype)
    itemsize = np.dtype(dtype).itemsize
    offset *= itemsize  # element-aligned, but not 32-byte aligned unless chosen so
    buf = np.full(want.nbytes + offset + 64, 0xAB, dtype=np.uint8)
    out = buf[offset:offset + want.nbytes].view(dtype).reshape(want.shape)
    assert pc.unpack_bits(codes, dim, bitorder, dtype, out=out) is out
    np.testing.assert_array_equal(out, want)
    assert (buf[:offset] == 0xAB).all() and (buf[offset + want.nbytes:] == 0xAB).all()
    np.testing.assert_array_equal(pc.unpack_bits(codes, dim, bitorder, dtype), want)
    assert itemsize * want.size >= 2**21


@pytest.fixture(params=[None, 2**21, 1], ids=["stream=auto", "stream>=2MiB", "stream=always"])
def stream_min(request):
    """Where AVX2 unpacking switches to streaming stores: as this machine
    chooses, at 2 MiB, and for every output (so small awkward sizes reach it)."""
    from pplx_codec import _dispatch

    if request.param is None:
        yield None
        return
    before = _dispatch._stream_min(request.param)
    try:
        yield request.param
    finally:
        assert _dispatch._stream_min(before) == request.param


def test_stream_threshold_is_at_least_2mib():
    from pplx_codec import _dispatch

    assert _dispatch._stream_min() >= 2**21 or "avx2" not in pc.capabilities()["compiled"]


@given(codes=packed_codes(), bitorder=st.sampled_from(["little", "big"]),
       dtype=st.sampled_from(UNPACK_DTYPES), offset=st.integers(0, 40))
def test_unpack_streaming_path_any_size(isa, codes, bitorder, dtype, offset):
    """Every output streamed (threshold 1 byte): the alignment prologue and the
    tails must give the reference answer at every size and destination offset."""
    from pplx_codec import _dispatch

    want = ref.unpack_bits(codes, None, bitorder, dtype)
    itemsize = np.dtype(dtype).itemsize
    buf = np.full(want.nbytes + offset * itemsize + 64, 0x5C, dtype=np.uint8)
    out = buf[offset * itemsize:offset * itemsize + want.nbytes].view(dtype).reshape(want.shape)
    before = _dispatch._stream_min(1)
    try:
        pc.unpack_bits(codes, None, bitorder, dtype, out=out)
    finally:
        _dispatch._stream_min(before)
    np.testing.assert_array_equal(out, want)
    assert (buf[:offset * itemsize] == 0x5C).all() and (buf[offset * itemsize + want.nbytes:] == 0x5C).all()


# ---------------------------------------------------------------- reverse_bitorder

@given(codes=packed_codes())
def test_reverse_bitorder_matches_reference(isa, codes):
    got = pc.reverse_bitorder(codes)
    assert got.dtype == np.uint8 and got.shape == codes.shape and got.flags.c_contiguous
    np.testing.assert_array_equal(got, ref.reverse_bitorder(codes))
    np.testing.assert_array_equal(pc.reverse_bitorder(got), codes)


@given(codes=packed_codes())
def test_reverse_bitorder_isas_agree(codes):
    for got in on_every_isa(lambda: pc.reverse_bitorder(codes)):
        np.testing.assert_array_equal(got, ref.reverse_bitorder(codes))


@given(x=pack_inputs())
def test_reverse_converts_between_bitorders(isa, x):
    np.testing.assert_array_equal(pc.reverse_bitorder(pc.pack_bits(x, "little")), pc.pack_bits(x, "big"))
    np.testing.assert_array_equal(pc.reverse_bitorder(pc.pack_bits(x, "big")), pc.pack_bits(x, "little"))


def test_reverse_every_byte_value(isa):
    b = np.arange(256, dtype=np.uint8)
    want = np.array([int(f"{v:08b}"[::-1], 2) for v in range(256)], dtype=np.uint8)
    for k in (1, 7, 33, 100):  # the SIMD loop at each byte lane, and the tail
        codes = np.tile(np.roll(b, k), 3)
        np.testing.assert_array_equal(pc.reverse_bitorder(codes), np.tile(np.roll(want, k), 3))


# ---------------------------------------------------------------- memory layouts and out=

def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def memmap_of(a, tmp_path, name):
    path = tmp_path / name
    a.tofile(path)
    return np.memmap(path, dtype=a.dtype, mode="r", shape=a.shape)


def test_read_only_and_memmap_inputs(isa, tmp_path):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((6, 1000)).astype(np.float32)
    i8 = rng.integers(-128, 127, (6, 1000), dtype=np.int8, endpoint=True)
    codes = rng.integers(0, 256, (6, 125), dtype=np.uint8)
    for src in (x, i8):
        for view in (read_only(src), memmap_of(src, tmp_path, f"{src.dtype}.bin")):
            np.testing.assert_array_equal(pc.pack_bits(view, "big"), ref.pack_bits(src, "big"))
    for view in (read_only(codes), memmap_of(codes, tmp_path, "codes.bin")):
        np.testing.assert_array_equal(pc.unpack_bits(view, 999, dtype=np.int8),
                                      ref.unpack_bits(codes, 999, dtype=np.int8))
        np.testing.assert_array_equal(pc.reverse_bitorder(view), ref.reverse_bitorder(codes))


def test_strided_row_slices_are_accepted(isa):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((5, 2560)).astype(np.float32)
    codes = rng.integers(0, 256, (5, 320), dtype=np.uint8)
    np.testing.assert_array_equal(pc.pack_bits(x[:, :256]), ref.pack_bits(x[:, :256]))
    np.testing.assert_array_equal(pc.pack_bits(x[::2, 100:300]), ref.pack_bits(x[::2, 100:300]))
    np.testing.assert_array_equal(pc.pack_bits(x[::-1]), ref.pack_bits(x[::-1]))
    np.testing.assert_array_equal(pc.unpack_bits(codes[:, :32]), ref.unpack_bits(codes[:, :32]))
    np.testing.assert_array_equal(pc.unpack_bits(codes[::-2, 1:]), ref.unpack_bits(codes[::-2, 1:]))
    np.testing.assert_array_equal(pc.reverse_bitorder(codes[:, 3:40]), ref.reverse_bitorder(codes[:, 3:40]))
    np.testing.assert_array_equal(pc.reverse_bitorder(codes[::-1]), ref.reverse_bitorder(codes[::-1]))


def test_empty_batch(isa):
    """No rows in, no rows out, however the (0, d) array was made (numpy 2 gives a
    freshly allocated one strides (0, 0))."""
    for x in (np.zeros((0, 1024), np.float32), np.zeros((3, 1024), np.float32)[:0]):
        assert pc.pack_bits(x).shape == (0, 128)
    for codes in (np.zeros((0, 128), np.uint8), pc.decode_binary([], 1024)):
        assert pc.unpack_bits(codes).shape == (0, 1024)
        assert pc.unpack_bits(codes, 100, dtype=np.float32).shape == (0, 100)
        assert pc.reverse_bitorder(codes).shape == (0, 128)


def test_zero_width_rows(isa):
    assert pc.pack_bits(np.zeros((3, 0), np.float32)).shape == (3, 0)
    assert pc.unpack_bits(np.zeros((3, 0), np.uint8)).shape == (3, 0)
    assert pc.reverse_bitorder(np.zeros((3, 0), np.uint8)).shape == (3, 0)


def test_out_is_filled_and_returned(isa):
    x = np.random.default_rng(1).standard_normal((4, 70))
    out = np.zeros((4, 9), np.uint8)
    assert pc.pack_bits(x, "big", out=out) is out
    np.testing.assert_array_equal(out, ref.pack_bits(x, "big"))
    out1 = np.zeros(9, np.uint8)
    assert pc.pack_bits(x[0], out=out1) is out1
    np.testing.assert_array_equal(out1, ref.pack_bits(x[0]))
    codes = ref.pack_bits(x)
    for dtype in UNPACK_DTYPES:
        uo = np.zeros((4, 70), dtype)
        assert pc.unpack_bits(codes, 70, dtype=dtype, out=uo) is uo
        np.testing.assert_array_equal(uo, ref.unpack_bits(codes, 70, dtype=dtype))
    ro = np.zeros((4, 9), np.uint8)
    assert pc.reverse_bitorder(codes, out=ro) is ro
    np.testing.assert_array_equal(ro, ref.reverse_bitorder(codes))


def _bad_outs(shape, dtype):
    n = int(np.prod(shape))
    other = np.float32 if np.dtype(dtype) != np.float32 else np.uint8
    ro = np.zeros(shape, dtype)
    ro.flags.writeable = False
    wide = np.zeros(shape[:-1] + (shape[-1] + 1,), dtype)
    return [
        (np.zeros(shape[:-1] + (shape[-1] + 1,), dtype), ValueError, "out must have shape"),
        (np.zeros((n,), dtype) if len(shape) == 2 else np.zeros((1,) + shape, dtype), ValueError,
         "out must have shape"),
        (np.zeros(shape, other), TypeError, f"out must have dtype {np.dtype(dtype)}, got {np.dtype(other)}"),
        (wide[..., :-1], ValueError, "out must be C-contiguous"),
        (ro, ValueError, "out is read-only"),
        (np.zeros(shape, dtype).tolist(), TypeError, "out must be a numpy array, got list"),
    ]


@pytest.mark.parametrize("one_d", [False, True], ids=["2d", "1d"])
def test_bad_out(isa, one_d):
    x = np.ones((4, 70), np.float32)
    codes = np.ones((4, 9), np.uint8)
    if one_d:
        x, codes = x[0], codes[0]
    lead = codes.shape[:-1]
    cases = [(lambda o: pc.pack_bits(x, out=o), lead + (9,), np.uint8),
             (lambda o: pc.reverse_bitorder(codes, out=o), lead + (9,), np.uint8)]
    cases += [(lambda o, d=d: pc.unpack_bits(codes, 70, dtype=d, out=o), lead + (70,), d) for d in UNPACK_DTYPES]
    for call, shape, dtype in cases:
        for out, exc, msg in _bad_outs(shape, dtype):
            if one_d and msg == "out must be C-contiguous":
                out = np.zeros(2 * shape[0], dtype)[::2]
            with pytest.raises(exc, match="^" + re.escape(msg)):
                call(out)


@pytest.mark.parametrize(("x", "exc", "msg"), [
    (np.zeros((2, 8), np.int16), TypeError, "x must have dtype float32, float64, int8 or bool, got int16"),
    (np.zeros((2, 8), np.uint8), TypeError, "x must have dtype float32, float64, int8 or bool, got uint8"),
    (np.zeros((2, 8), np.float16), TypeError, "x must have dtype float32, float64, int8 or bool, got float16"),
    (np.zeros((2, 8), np.complex64), TypeError, "x must have dtype float32, float64, int8 or bool, got complex64"),
    (np.zeros((2, 8), ">f4"), TypeError, "x must have dtype float32, float64, int8 or bool, got >f4"),
    (np.zeros((2, 8), ">f8"), TypeError, "x must have dtype float32, float64, int8 or bool, got >f8"),
    ([[1.0, -1.0]], TypeError, "x must be a numpy array, got list"),
    (np.zeros((2, 2, 8), np.float32), ValueError, "x must have 1 or 2 dimensions, got 3"),
    (np.float32(1.0), TypeError, "x must be a numpy array, got float32"),
    (np.array(1.0, np.float32), ValueError, "x must have 1 or 2 dimensions, got 0"),
], ids=["int16", "uint8", "float16", "complex64", "be-f4", "be-f8", "list", "3d", "scalar", "0d"])
def test_pack_bad_input(isa, x, exc, msg):
    with raises_exactly(exc, msg):
        pc.pack_bits(x)


@pytest.mark.parametrize("fn", ["pack_bits", "unpack_bits", "reverse_bitorder"])
def test_non_contiguous_rows_rejected(isa, fn):
    name, a = ("x", np.zeros((4, 64), np.float32)) if fn == "pack_bits" else ("packed", np.zeros((4, 64), np.uint8))
    for bad in (a[:, ::2], np.asfortranarray(a), a.T, a[0, ::2]):
        with pytest.raises(ValueError, match=rf"^{name} rows must be contiguous \(element stride"):
            getattr(pc, fn)(bad)


@pytest.mark.parametrize("bitorder", ["LSB", "MSB", "Little", "BIG", "", None, 0])
def test_bad_bitorder(isa, bitorder):
    with raises_exactly(ValueError, f"bitorder must be 'little' or 'big', got {bitorder!r}"):
        pc.pack_bits(np.ones(8, np.float32), bitorder=bitorder)
    with raises_exactly(ValueError, f"bitorder must be 'little' or 'big', got {bitorder!r}"):
        pc.unpack_bits(np.ones(1, np.uint8), bitorder=bitorder)


@pytest.mark.parametrize(("codes", "exc", "msg"), [
    (np.zeros((2, 8), np.int8), TypeError, "packed must have dtype uint8, got int8"),
    (np.zeros((2, 8), np.bool_), TypeError, "packed must have dtype uint8, got bool"),
    (b"\x00\x01", TypeError, "packed must be a numpy array, got bytes"),
    (np.zeros((2, 2, 8), np.uint8), ValueError, "packed must have 1 or 2 dimensions, got 3"),
    (np.array(1, np.uint8), ValueError, "packed must have 1 or 2 dimensions, got 0"),
])
def test_unpack_and_reverse_bad_input(isa, codes, exc, msg):
    with raises_exactly(exc, msg):
        pc.unpack_bits(codes)
    with raises_exactly(exc, msg):
        pc.reverse_bitorder(codes)


@pytest.mark.parametrize(("width", "dim"), [(1, 9), (2, 17), (128, 1025), (320, 2561), (1, 10**9)])
def test_unpack_dim_larger_than_codes(isa, width, dim):
    with raises_exactly(ValueError, f"dim must be in 0..{8 * width} for codes of {width} bytes, got {dim}"):
        pc.unpack_bits(np.zeros((3, width), np.uint8), dim)


@pytest.mark.parametrize(("dim", "exc", "msg"), [
    (-1, ValueError, "dim must be >= 0, got -1"),
    (8.0, TypeError, "dim must be an integer, got float"),
    (True, TypeError, "dim must be an integer, got bool"),
    (2**64, ValueError, f"dim must be at most {2**63 - 1}, got {2**64}"),
])
def test_unpack_bad_dim(isa, dim, exc, msg):
    with raises_exactly(exc, msg):
        pc.unpack_bits(np.zeros((3, 4), np.uint8), dim)


@pytest.mark.parametrize("dtype", [np.float64, np.int16, np.bool_, np.uint16, "float16"])
def test_unpack_bad_dtype(isa, dtype):
    with raises_exactly(TypeError, "dtype must be uint8 (0/1), int8 (-1/+1) or float32 (-1/+1), "
                                   f"got {np.dtype(dtype)}"):
        pc.unpack_bits(np.zeros((3, 4), np.uint8), dtype=dtype)


def test_outputs_stay_inside_out(isa):
    """pack/unpack/reverse into guarded `out` buffers at every width up to 300 bits."""
    rng = np.random.default_rng(21)
    for dim in range(1, 301):
        x = rng.standard_normal((3, dim)).astype(np.float32)
        w = (dim + 7) // 8
        for bitorder in ("little", "big"):
            buf = np.full(3 * w + 64, 0xAB, np.uint8)
            out = buf[32:32 + 3 * w].reshape(3, w)
            pc.pack_bits(x, bitorder, out=out)
            np.testing.assert_array_equal(out, ref.pack_bits(x, bitorder))
            assert (buf[:32] == 0xAB).all() and (buf[32 + 3 * w:] == 0xAB).all(), dim
        codes = ref.pack_bits(x)
        buf = np.full(3 * w + 64, 0xAB, np.uint8)
        out = buf[32:32 + 3 * w].reshape(3, w)
        pc.reverse_bitorder(codes, out=out)
        np.testing.assert_array_equal(out, ref.reverse_bitorder(codes))
        assert (buf[:32] == 0xAB).all() and (buf[32 + 3 * w:] == 0xAB).all(), dim
        for dtype in UNPACK_DTYPES:
            buf = np.full(3 * dim + 64, 7, dtype)
            out = buf[32:32 + 3 * dim].reshape(3, dim)
            pc.unpack_bits(codes, dim, dtype=dtype, out=out)
            np.testing.assert_array_equal(out, ref.unpack_bits(codes, dim, dtype=dtype))
            assert (buf[:32] == 7).all() and (buf[32 + 3 * dim:] == 7).all(), (dim, dtype)
