"""int8 vectors: truncate, norms, to_float32."""


import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pplx_codec as pc
import reference as ref
from helpers import on_every_isa, raises_exactly

AWKWARD_DIMS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129]
REAL_DIMS = [128, 256, 512, 1024, 2560]
dims = st.one_of(st.sampled_from([0] + AWKWARD_DIMS + REAL_DIMS), st.integers(0, 2560))


@st.composite
def int8_rows(draw, min_rows=0, max_rows=9, dims=dims):
    """(n, dim) int8 rows, or one 1-D row, over the full range (-128 and 127 appear
    whenever there is room), some rows all zero, in every accepted layout."""
    n, dim = draw(st.integers(min_rows, max_rows)), draw(dims)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["uniform", "extremes", "constant", "small"]))
    if kind == "uniform":
        m = rng.integers(-128, 127, (n, dim), dtype=np.int8, endpoint=True)
    elif kind == "extremes":
        m = rng.choice(np.array([-128, -127, -1, 0, 1, 126, 127], dtype=np.int8), (n, dim))
    elif kind == "small":
        m = rng.integers(-2, 2, (n, dim), dtype=np.int8, endpoint=True)
    else:
        m = np.full((n, dim), draw(st.sampled_from([-128, 127, 0, -1])), dtype=np.int8)
    if kind != "constant" and m.size >= 2:
        i, j = rng.choice(m.size, 2, replace=False)
        m.flat[i], m.flat[j] = -128, 127
    if draw(st.booleans()):
        m[rng.random(n) < 0.3] = 0
    if n and draw(st.booleans()):
        m = m[0]
    how = draw(st.sampled_from(["c", "strided-rows", "reversed-rows"]))
    if how == "strided-rows" or (how == "reversed-rows" and m.ndim == 1):
        buf = np.zeros(m.shape[:-1] + (m.shape[-1] + 7,), np.int8)
        buf[..., 3:3 + m.shape[-1]] = m
        return buf[..., 3:3 + m.shape[-1]]
    if how == "reversed-rows":
        return m[::-1].copy()[::-1]
    return m


# ---------------------------------------------------------------- norms

@given(m=int8_rows())
def test_norms_match_reference_exactly(isa, m):
    got = pc.norms(m)
    assert got.dtype == np.float32 and got.shape == m.shape[:-1]
    assert np.array_equal(got, ref.norms(m))


@given(m=int8_rows())
def test_norms_isas_agree(m):
    for got in on_every_isa(lambda: pc.norms(m)):
        assert np.array_equal(got, ref.norms(m))


@pytest.mark.parametrize("value", [-128, 127, -127])
@pytest.mark.parametrize("dim", REAL_DIMS + [2560 + 31])
def test_norms_extreme_rows(isa, value, dim):
    m = np.full((3, dim), value, dtype=np.int8)
    want = np.float32(np.sqrt(float(dim * value * value)))
    got = pc.norms(m)
    assert np.array_equal(got, np.full(3, want, np.float32))
    assert np.array_equal(got, ref.norms(m))
    assert pc.norms(m[0]) == want


def test_norms_all_minus_128_at_2560(isa):
    m = np.full(2560, -128, dtype=np.int8)
    assert 2560 * 16384 == 41943040
    got = pc.norms(m)
    assert got.shape == () and got.dtype == np.float32
    assert got == np.float32(np.sqrt(41943040.0)) == ref.norms(m)


def test_norms_of_long_rows_do_not_overflow(isa):
    """Rows longer than 131072 values of -128 have a sum of squares >= 2**31."""
    for dim in (131072, 131073, 200000):
        m = np.full((2, dim), -128, dtype=np.int8)
        m[1, ::2] = 127
        want = ref.norms(m)
        assert np.array_equal(pc.norms(m), want), dim
        assert np.array_equal(pc.to_float32(m), ref.to_float32(m)), dim


def test_norms_of_zero_rows_and_one_element(isa):
    assert np.array_equal(pc.norms(np.zeros((4, 1024), np.int8)), np.zeros(4, np.float32))
    assert np.array_equal(pc.norms(np.array([[-128], [3], [0]], np.int8)), np.array([128, 3, 0], np.float32))
    assert np.array_equal(pc.norms(np.zeros((3, 0), np.int8)), np.zeros(3, np.float32))


# ---------------------------------------------------------------- to_float32

@given(m=int8_rows(), normalize=st.booleans())
def test_to_float32_matches_reference_exactly(isa, m, normalize):
    got = pc.to_float32(m, normalize=normalize)
    assert got.dtype == np.float32 and got.shape == m.shape and got.flags.c_contiguous
    assert not np.isnan(got).any()
    assert np.array_equal(got, ref.to_float32(m, normalize))


@given(m=int8_rows(), normalize=st.booleans())
def test_to_float32_isas_agree(m, normalize):
    for got in on_every_isa(lambda: pc.to_float32(m, normalize)):
        assert np.array_equal(got, ref.to_float32(m, normalize))


@given(m=int8_rows())
def test_to_float32_rows_have_unit_norm(isa, m):
    f = pc.to_float32(m).astype(np.float64)
    n = np.linalg.norm(f, axis=-1)
    nonzero = np.abs(m.astype(np.int64)).sum(axis=-1) > 0
    np.testing.assert_allclose(n[nonzero], 1.0, rtol=1e-6)
    assert (n[~nonzero] == 0).all()


def test_to_float32_zero_rows_stay_zero(isa):
    m = np.zeros((3, 1024), np.int8)
    m[1, 7] = -128
    for normalize in (True, False):
        got = pc.to_float32(m, normalize)
        assert not np.isnan(got).any()
        assert (got[0] == 0).all() and (got[2] == 0).all()
        assert np.array_equal(got, ref.to_float32(m, normalize))
    assert pc.to_float32(m)[1, 7] == -1.0
    assert np.array_equal(pc.to_float32(np.zeros(2560, np.int8)), np.zeros(2560, np.float32))


def test_to_float32_default_normalizes_and_truthiness(isa):
    m = np.array([[3, 4, 0, 0, 0, 0, 0, 0, 0]], np.int8)
    assert np.array_equal(pc.to_float32(m)[0, :2], np.array([0.6, 0.8], np.float32))
    assert np.array_equal(pc.to_float32(m, normalize=0), m.astype(np.float32))
    assert np.array_equal(pc.to_float32(m, normalize=1), pc.to_float32(m))


def test_to_float32_one_row_is_one_d(isa):
    v = np.arange(-128, 128, dtype=np.int8)
    got = pc.to_float32(v)
    assert got.shape == (256,)
    assert np.array_equal(got, ref.to_float32(v))


# ---------------------------------------------------------------- layouts, read-only, memmap, out=

def test_read_only_memmap_and_strided_inputs(isa, tmp_path):
    m = np.random.default_rng(4).integers(-128, 127, (9, 2560), dtype=np.int8, endpoint=True)
    m[4] = 0
    ro = m.copy()
    ro.flags.writeable = False
    path = tmp_path / "m.bin"
    m.tofile(path)
    mm = np.memmap(path, dtype=np.int8, mode="r", shape=m.shape)
    for view in (ro, mm):
        assert np.array_equal(pc.norms(view), ref.norms(m))
        assert np.array_equal(pc.to_float32(view), ref.to_float32(m))
        assert np.array_equal(pc.to_float32(view, False), ref.to_float32(m, False))
    for part in (m[:, :256], m[::3, 1000:1500], m[::-1], m[2], m[:, 7:8]):
        assert np.array_equal(pc.norms(part), ref.norms(part))
        assert np.array_equal(pc.to_float32(part), ref.to_float32(part))


def test_out_is_filled_and_returned(isa):
    m = np.random.default_rng(2).integers(-128, 127, (5, 100), dtype=np.int8, endpoint=True)
    out = np.zeros(5, np.float32)
    assert pc.norms(m, out=out) is out
    assert np.array_equal(out, ref.norms(m))
    out0 = np.zeros((), np.float32)
    assert pc.norms(m[0], out=out0) is out0
    assert out0 == ref.norms(m[0])
    f = np.full((5, 100), np.nan, np.float32)
    m[3] = 0
    assert pc.to_float32(m, out=f) is f
    assert np.array_equal(f, ref.to_float32(m))
    f1 = np.zeros(100, np.float32)
    assert pc.to_float32(m[1], False, out=f1) is f1
    assert np.array_equal(f1, m[1].astype(np.float32))


def test_outputs_stay_inside_out(isa):
    """norms and to_float32 into guarded `out` buffers at every width up to 300."""
    rng = np.random.default_rng(6)
    for dim in range(1, 301):
        m = rng.integers(-128, 127, (3, dim), dtype=np.int8, endpoint=True)
        m[1] = 0
        buf = np.full(3 * dim + 64, 7.0, np.float32)
        out = buf[32:32 + 3 * dim].reshape(3, dim)
        pc.to_float32(m, out=out)
        assert np.array_equal(out, ref.to_float32(m))
        assert (buf[:32] == 7).all() and (buf[32 + 3 * dim:] == 7).all(), dim
        nbuf = np.full(3 + 64, 7.0, np.float32)
        pc.norms(m, out=nbuf[32:35])
        assert np.array_equal(nbuf[32:35], ref.norms(m))
        assert (nbuf[:32] == 7).all() and (nbuf[35:] == 7).all(), dim


@pytest.mark.parametrize(("out", "exc", "msg"), [
    (np.zeros(6, np.float32), ValueError, "out must have shape (5,), got (6,)"),
    (np.zeros((5, 1), np.float32), ValueError, "out must have shape (5,), got (5, 1)"),
    (np.zeros(5, np.float64), TypeError, "out must have dtype float32, got float64"),
    (np.zeros(5, ">f4"), TypeError, "out must have dtype float32, got >f4"),
    (np.zeros(10, np.float32)[::2], ValueError, "out must be C-contiguous"),
    (np.frombuffer(bytes(20), np.float32), ValueError, "out is read-only"),
    ([0.0] * 5, TypeError, "out must be a numpy array, got list"),
], ids=["long", "2d", "float64", "big-endian", "strided", "readonly", "list"])
def test_norms_bad_out(isa, out, exc, msg):
    with raises_exactly(exc, msg):
        pc.norms(np.ones((5, 16), np.int8), out=out)


def test_norms_one_row_bad_out(isa):
    with raises_exactly(ValueError, "out must have shape (), got (1,)"):
        pc.norms(np.ones(16, np.int8), out=np.zeros(1, np.float32))


@pytest.mark.parametrize(("out", "exc", "msg"), [
    (np.zeros((5, 17), np.float32), ValueError, "out must have shape (5, 16), got (5, 17)"),
    (np.zeros(80, np.float32), ValueError, "out must have shape (5, 16), got (80,)"),
    (np.zeros((5, 16), np.float64), TypeError, "out must have dtype float32, got float64"),
    (np.zeros((5, 16), np.int8), TypeError, "out must have dtype float32, got int8"),
    (np.zeros((5, 32), np.float32)[:, :16], ValueError, "out must be C-contiguous"),
    (np.zeros((16, 5), np.float32).T, ValueError, "out must be C-contiguous"),
    (np.frombuffer(bytes(320), np.float32).reshape(5, 16), ValueError, "out is read-only"),
], ids=["wide", "1d", "float64", "int8", "strided", "fortran", "readonly"])
def test_to_float32_bad_out(isa, out, exc, msg):
    with raises_exactly(exc, msg):
        pc.to_float32(np.ones((5, 16), np.int8), out=out)


@pytest.mark.parametrize("fn", [pc.norms, pc.to_float32])
@pytest.mark.parametrize(("arg", "exc", "msg"), [
    (np.zeros((2, 8), np.uint8), TypeError, "matrix must have dtype int8, got uint8"),
    (np.zeros((2, 8), np.float32), TypeError, "matrix must have dtype int8, got float32"),
    (np.zeros((2, 8), np.int16), TypeError, "matrix must have dtype int8, got int16"),
    ([[1, 2]], TypeError, "matrix must be a numpy array, got list"),
    (np.zeros((2, 2, 8), np.int8), ValueError, "matrix must have 1 or 2 dimensions, got 3"),
    (np.array(3, np.int8), ValueError, "matrix must have 1 or 2 dimensions, got 0"),
], ids=["uint8", "float32", "int16", "list", "3d", "0d"])
def test_bad_matrix(isa, fn, arg, exc, msg):
    with raises_exactly(exc, msg):
        fn(arg)


@pytest.mark.parametrize("fn", [pc.norms, pc.to_float32])
def test_non_contiguous_rows_rejected(isa, fn):
    m = np.zeros((4, 64), np.int8)
    for bad in (m[:, ::2], np.asfortranarray(m), m.T, m[0, ::2]):
        with pytest.raises(ValueError, match=r"^matrix rows must be contiguous \(element stride"):
            fn(bad)


@pytest.mark.parametrize("fn", [pc.norms, pc.to_float32])
def test_empty_batch(isa, fn):
    """No rows in, no rows out, however the (0, d) matrix was made (numpy 2 gives
    a fresh one strides (0, 0); so does decode_int8([], dim=d))."""
    for m in (np.zeros((5, 1024), np.int8)[:0], np.zeros((0, 1024), np.int8), pc.decode_int8([], dim=1024)):
        got = fn(m)
        assert got.shape == ((0,) if fn is pc.norms else (0, 1024))


# ---------------------------------------------------------------- truncate

@given(m=int8_rows(dims=st.integers(128, 2560) | st.sampled_from(REAL_DIMS)), data=st.data(),
       encoding=st.sampled_from(["int8", "base64_int8"]))
def test_truncate_int8(isa, m, data, encoding):
    d = m.shape[-1]
    k = data.draw(st.integers(128, d) | st.sampled_from([128, d]), label="dimensions")
    got = pc.truncate(m, k, encoding)
    assert got.dtype == np.int8 and got.shape == m.shape[:-1] + (k,) and got.flags.c_contiguous
    assert np.array_equal(got, ref.truncate(m, k, encoding))
    view = pc.truncate(m, k, encoding, copy=False)
    assert (m.size == 0 or np.shares_memory(view, m)) and np.array_equal(view, got)  # empty arrays share no memory
    # the view is accepted by every kernel
    assert np.array_equal(pc.norms(view), ref.norms(got))
    assert np.array_equal(pc.to_float32(view), ref.to_float32(got))
    assert pc.encode_int8(view) == ref.encode_int8(got)


@given(n=st.integers(1, 9), w=st.integers(16, 320) | st.sampled_from([16, 32, 64, 128, 320]),
       seed=st.integers(0, 2**32 - 1), data=st.data(), encoding=st.sampled_from(["binary", "base64_binary"]),
       one_d=st.booleans())
def test_truncate_binary(isa, n, w, seed, data, encoding, one_d):
    codes = np.random.default_rng(seed).integers(0, 256, (n, w), dtype=np.uint8)
    if one_d:
        codes = codes[0]
    k = 8 * data.draw(st.integers(16, w), label="bytes kept")
    got = pc.truncate(codes, k, encoding)
    assert got.dtype == np.uint8 and got.shape == codes.shape[:-1] + (k // 8,) and got.flags.c_contiguous
    assert np.array_equal(got, ref.truncate(codes, k, encoding))
    view = pc.truncate(codes, k, encoding, copy=False)
    assert np.shares_memory(view, codes) and np.array_equal(view, got)
    assert np.array_equal(pc.unpack_bits(view), ref.unpack_bits(got))
    assert np.array_equal(pc.unpack_bits(codes, k), ref.unpack_bits(got))


@pytest.mark.parametrize(("shape", "k", "encoding", "dtype"), [
    ((4, 1024), 256, "int8", np.int8),     # strided rows: copied
    ((4, 1024), 1024, "int8", np.int8),    # every dimension kept
    ((1, 1024), 256, "int8", np.int8),     # one row: the prefix view is already contiguous
    ((1024,), 256, "int8", np.int8),       # one 1-D vector
    ((2560,), 2560, "int8", np.int8),
    ((4, 128), 1024, "binary", np.uint8),
    ((128,), 512, "binary", np.uint8),
], ids=["rows", "all-dims", "one-row", "1d", "1d-all", "binary-all", "binary-1d"])
def test_truncate_copy_never_aliases_the_input(shape, k, encoding, dtype):
    """copy=True (the default) returns a new array: writing to it leaves the input alone."""
    m = np.ones(shape, dtype)
    got = pc.truncate(m, k, encoding)
    assert not np.shares_memory(got, m)
    got[...] = 0
    assert (m == 1).all()


def test_truncate_real_sizes():
    m = np.arange(5 * 2560).reshape(5, 2560).astype(np.int8)
    for k in (128, 256, 512, 1024, 2560):
        assert np.array_equal(pc.truncate(m, k), m[:, :k])
        assert np.array_equal(pc.truncate(m.view(np.uint8)[:, :320], k, "binary"), m.view(np.uint8)[:, :k // 8])


@pytest.mark.parametrize(("dimensions", "exc", "msg"), [
    (127, ValueError, "dimensions must be in 128..1024, got 127"),
    (1025, ValueError, "dimensions must be in 128..1024, got 1025"),
    (8, ValueError, "dimensions must be in 128..1024, got 8"),
    (0, ValueError, "dimensions must be positive, got 0"),
    (-256, ValueError, "dimensions must be positive, got -256"),
    (256.0, TypeError, "dimensions must be an integer, got float"),
    ("256", TypeError, "dimensions must be an integer, got str"),
])
def test_truncate_bad_dimensions(dimensions, exc, msg):
    with raises_exactly(exc, msg):
        pc.truncate(np.zeros((2, 1024), np.int8), dimensions)
    with raises_exactly(exc, msg):
        pc.truncate(np.zeros((2, 128), np.uint8), dimensions, "binary")


@pytest.mark.parametrize("dimensions", [129, 132, 1020, 1023])
def test_truncate_binary_needs_multiple_of_8(dimensions):
    with raises_exactly(ValueError, f"dimensions must be a multiple of 8 for binary codes, got {dimensions}"):
        pc.truncate(np.zeros((2, 128), np.uint8), dimensions, "binary")
    assert pc.truncate(np.zeros((2, 1024), np.int8), dimensions).shape == (2, dimensions)


@pytest.mark.parametrize("dimensions", [64, 65, 127, 128, 256])
def test_truncate_small_matrix_has_no_valid_dimensions(dimensions):
    """Issue 22, finding 6: rows narrower than the API's minimum said "dimensions
    must be in 128..64", a range with nothing in it."""
    msg = ("rows of 64 dimensions are narrower than the API's minimum of 128: they cannot be truncated "
           f"(got dimensions={dimensions})")
    with raises_exactly(ValueError, msg):
        pc.truncate(np.zeros((2, 64), np.int8), dimensions)
    with raises_exactly(ValueError, msg):
        pc.truncate(np.zeros((2, 8), np.uint8), dimensions, "binary")
    with raises_exactly(ValueError, msg.replace("64 dimensions", "0 dimensions")):
        pc.truncate(np.zeros((2, 0), np.int8), dimensions)


@pytest.mark.parametrize("encoding", ["float", "ubinary", "base64", "INT8", "", None, "base64_float"])
def test_truncate_unknown_encoding(encoding):
    with raises_exactly(ValueError, f"encoding must be 'int8' or 'binary', got {encoding!r}"):
        pc.truncate(np.zeros((2, 256), np.int8), 128, encoding)


@pytest.mark.parametrize(("matrix", "encoding", "msg"), [
    (np.zeros((2, 256), np.uint8), "int8",
     "matrix must be a 1-D or 2-D int8 array for int8 rows, got uint8 with 2 dimensions"),
    (np.zeros((2, 256), np.int8), "binary",
     "matrix must be a 1-D or 2-D uint8 array for binary rows, got int8 with 2 dimensions"),
    (np.zeros((2, 256), np.float32), "int8",
     "matrix must be a 1-D or 2-D int8 array for int8 rows, got float32 with 2 dimensions"),
    (np.zeros((2, 2, 256), np.int8), "int8",
     "matrix must be a 1-D or 2-D int8 array for int8 rows, got int8 with 3 dimensions"),
    (np.array(1, np.int8), "int8", "matrix must be a 1-D or 2-D int8 array for int8 rows, got int8 with 0 dimensions"),
    ([[0] * 256], "int8", "matrix must be a 1-D or 2-D int8 array for int8 rows, got list"),
], ids=["uint8-as-int8", "int8-as-binary", "float32", "3d", "0d", "list"])
def test_truncate_bad_matrix(matrix, encoding, msg):
    with raises_exactly(TypeError, msg):
        pc.truncate(matrix, 128, encoding)


# ---------------------------------------------------------------- unit_lists (the adapters' float lists)

@given(m=int8_rows())
def test_unit_lists_are_to_float32_tolist(isa, m):
    from pplx_codec import _int8

    m = np.ascontiguousarray(m if m.ndim == 2 else m[None])  # what the adapters hand it
    got = _int8.unit_lists(m)
    assert got == ref.to_float32(m, True).tolist()
    assert all(type(v) is float for row in got for v in row)


def test_unit_lists_share_one_float_per_value(isa):
    from pplx_codec import _int8

    m = np.array([[3, -4, 3, 0, 3, -4], [0, 0, 0, 0, 0, 0], [-128, 127, -128, 127, 1, 1]], np.int8)
    a, zero, c = _int8.unit_lists(m)
    assert a == pc.to_float32(m)[0].tolist()
    assert a[0] is a[2] is a[4] and a[1] is a[5] and zero == [0.0] * 6 and c[0] is c[2]
    assert _int8.unit_lists(np.zeros((0, 8), np.int8)) == []


@pytest.mark.parametrize(("x", "exc", "message"), [
    (np.zeros(8, np.int8), ValueError, "matrix must be 2-D (rows), got 1 dimension(s)"),
    (np.zeros((2, 8), np.float32), TypeError, None),
    (np.zeros((2, 16), np.int8)[:, ::2], ValueError,
     "matrix rows must be contiguous (element stride 2 != 1); pass np.ascontiguousarray(...) (which copies)"),
])
def test_unit_lists_refuses(x, exc, message):
    from pplx_codec import _int8

    with pytest.raises(exc) as e:
        _int8.unit_lists(x)
    if message is not None:
        assert str(e.value) == message
