"""Strict base64: b64decode/b64encode, decode_int8/decode_binary, encode_int8/encode_binary."""

import base64
import string

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import pplx_codec as pc
import reference as ref
from helpers import on_every_isa, raises_exactly

ALPHABET = (string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/").encode()
# every byte that is neither in the alphabet nor '=': ASCII ones work as str too
BAD_BYTES = [b for b in range(256) if b not in ALPHABET and b != ord("=")]
BAD_ASCII = [b for b in BAD_BYTES if b < 128]

AWKWARD_DIMS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129]
REAL_DIMS = [128, 256, 512, 1024, 2560]
dims = st.one_of(st.sampled_from(AWKWARD_DIMS + REAL_DIMS), st.integers(1, 2560))
INPUT_KINDS = ["str", "bytes", "bytearray", "memoryview", "uint8", "uint8-readonly"]


@st.composite
def blobs(draw):
    """Random bytes: small sizes (every tail and padding case) and large ones
    (the AVX2 4-block loop, its 1-block loop and the serial tail)."""
    size = draw(st.one_of(st.integers(0, 300), st.integers(301, 5000)))
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1))).bytes(size)


@st.composite
def int8_matrices(draw, min_rows=0, max_rows=9):
    """(n, dim) int8 with the full range; -128 and 127 appear whenever there is room."""
    n, dim = draw(st.integers(min_rows, max_rows)), draw(dims)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["uniform", "extremes", "constant"]))
    if kind == "uniform":
        m = rng.integers(-128, 127, (n, dim), dtype=np.int8, endpoint=True)
    elif kind == "extremes":
        m = rng.choice(np.array([-128, -127, -1, 0, 1, 126, 127], dtype=np.int8), (n, dim))
    else:
        m = np.full((n, dim), draw(st.sampled_from([-128, 127, 0, -1])), dtype=np.int8)
    if kind != "constant" and m.size >= 2:
        i, j = rng.choice(m.size, 2, replace=False)
        m.flat[i], m.flat[j] = -128, 127
    return m


def as_input(text: bytes, kind: str):
    return {
        "str": lambda: text.decode("ascii"),
        "bytes": lambda: text,
        "bytearray": lambda: bytearray(text),
        "memoryview": lambda: memoryview(text),
        "uint8": lambda: np.frombuffer(text, dtype=np.uint8).copy(),
        "uint8-readonly": lambda: np.frombuffer(text, dtype=np.uint8),
    }[kind]()


def encode(raw: bytes) -> bytes:
    return base64.b64encode(raw)


def text_of_len(n: int, pad: int, seed: int = 0) -> bytes:
    """A canonical base64 text of n chars (n % 4 == 0, n > 0) ending in `pad` '='."""
    raw = np.random.default_rng(seed + n).bytes(n // 4 * 3 - pad)
    t = encode(raw)
    assert len(t) == n and t.count(b"=") == pad
    return t


# ---------------------------------------------------------------- RFC 4648

RFC4648 = [(b"", b""), (b"f", b"Zg=="), (b"fo", b"Zm8="), (b"foo", b"Zm9v"), (b"foob", b"Zm9vYg=="),
           (b"fooba", b"Zm9vYmE="), (b"foobar", b"Zm9vYmFy")]


@pytest.mark.parametrize(("plain", "coded"), RFC4648, ids=[c.decode() or "empty" for _, c in RFC4648])
def test_rfc4648_vectors(isa, plain, coded):
    for kind in INPUT_KINDS:
        got = pc.b64decode(as_input(coded, kind))
        assert got.dtype == np.uint8 and got.ndim == 1
        assert got.tobytes() == plain
    assert pc.b64encode(plain) == coded
    assert pc.b64encode(bytearray(plain)) == coded
    assert pc.b64encode(np.frombuffer(plain, dtype=np.uint8)) == coded


# ---------------------------------------------------------------- b64decode / b64encode, valid input

@given(raw=blobs(), kind=st.sampled_from(INPUT_KINDS))
def test_b64decode_matches_reference(isa, raw, kind):
    text = encode(raw)
    got = pc.b64decode(as_input(text, kind))
    assert got.dtype == np.uint8 and got.shape == (len(raw),)
    assert got.tobytes() == raw
    np.testing.assert_array_equal(got, ref.b64decode(text))


@given(raw=blobs())
def test_b64decode_isas_agree(raw):
    text = encode(raw).decode()
    results = on_every_isa(lambda: pc.b64decode(text))
    for r in results:
        np.testing.assert_array_equal(r, ref.b64decode(text))


@given(raw=blobs(), kind=st.sampled_from(["bytes", "bytearray", "memoryview", "uint8"]))
def test_b64encode_matches_reference(isa, raw, kind):
    data = {"bytes": raw, "bytearray": bytearray(raw), "memoryview": memoryview(raw),
            "uint8": np.frombuffer(raw, dtype=np.uint8)}[kind]
    got = pc.b64encode(data)
    assert type(got) is bytes
    assert got == ref.b64encode(raw) == base64.b64encode(raw)


@given(raw=blobs())
def test_b64encode_isas_agree(raw):
    assert on_every_isa(lambda: pc.b64encode(raw)) == [base64.b64encode(raw)] * len(pc.capabilities()["detected"])


def test_b64encode_takes_raw_bytes_of_contiguous_arrays(isa):
    m = np.arange(-60, 60, dtype=np.int8).reshape(8, 15)
    assert pc.b64encode(m) == base64.b64encode(m.tobytes())
    f = np.linspace(-1, 1, 33, dtype=np.float32)
    assert pc.b64encode(f) == base64.b64encode(f.tobytes())


def test_b64encode_rejects_bad_input(isa):
    with pytest.raises(TypeError, match="not str"):
        pc.b64encode("Zm9v")
    with pytest.raises(TypeError, match="bytes-like"):
        pc.b64encode(12345)
    with pytest.raises(TypeError, match="bytes-like"):
        pc.b64encode([1, 2, 3])
    with raises_exactly(ValueError, "data must be C-contiguous"):
        pc.b64encode(np.arange(16, dtype=np.uint8)[::2])
    with raises_exactly(ValueError, "data must be C-contiguous"):
        pc.b64encode(np.zeros((4, 4), dtype=np.uint8).T)
    with raises_exactly(ValueError, "data must be C-contiguous"):
        pc.b64encode(memoryview(b"abcdefgh")[::2])


def test_b64decode_accepts_read_only_and_sliced_buffers(isa):
    text = encode(bytes(range(256)) * 3)
    buf = np.frombuffer(b"##" + text + b"##", dtype=np.uint8)[2:-2]  # read-only, odd start
    assert not buf.flags.writeable
    assert pc.b64decode(buf).tobytes() == bytes(range(256)) * 3
    assert pc.b64decode(memoryview(b"##" + text)[2:]).tobytes() == bytes(range(256)) * 3


def test_b64decode_empty(isa):
    for kind in INPUT_KINDS:
        got = pc.b64decode(as_input(b"", kind))
        assert got.shape == (0,) and got.dtype == np.uint8


def test_b64decode_every_length_stays_inside_out(isa):
    """Every decoded length 0..600 (every padding case at every position relative
    to the 32-char blocks), into an `out` inside a guarded buffer: the SIMD
    stores that overshoot a block must never land past the output, not even
    when decoding stops at an invalid char near the end."""
    rng = np.random.default_rng(42)
    for size in range(601):
        raw = rng.bytes(size)
        text = encode(raw)
        buf = np.full(size + 96, 0xAB, dtype=np.uint8)
        out = buf[32:32 + size]
        assert pc.b64decode(text, out=out) is out
        assert out.tobytes() == raw, size
        assert (buf[:32] == 0xAB).all() and (buf[32 + size:] == 0xAB).all(), size
        if len(text) >= 8:
            bad = text[:-5] + b"!" + text[-4:]
            buf[:] = 0xAB
            with pytest.raises(ValueError, match=f"offset {len(text) - 5}$"):
                pc.b64decode(bad, out=out)
            assert (buf[:32] == 0xAB).all() and (buf[32 + size:] == 0xAB).all(), size


# ---------------------------------------------------------------- b64decode out=

def test_b64decode_out_is_filled_and_returned(isa):
    raw = bytes(range(200))
    out = np.zeros(200, dtype=np.uint8)
    res = pc.b64decode(encode(raw), out=out)
    assert res is out
    assert out.tobytes() == raw


@pytest.mark.parametrize(("out", "exc", "msg"), [
    (np.zeros(199, dtype=np.uint8), ValueError, "out must have shape (200,), got (199,)"),
    (np.zeros(201, dtype=np.uint8), ValueError, "out must have shape (200,), got (201,)"),
    (np.zeros((1, 200), dtype=np.uint8), ValueError, "out must have shape (200,), got (1, 200)"),
    (np.zeros(200, dtype=np.int8), TypeError, "out must have dtype uint8, got int8"),
    (np.zeros(400, dtype=np.uint8)[::2], ValueError, "out must be C-contiguous"),
    (np.frombuffer(bytes(200), dtype=np.uint8), ValueError, "out is read-only"),
    (bytearray(200), TypeError, "out must be a numpy array, got bytearray"),
], ids=["short", "long", "2d", "int8", "strided", "readonly", "bytearray"])
def test_b64decode_bad_out(isa, out, exc, msg):
    with raises_exactly(exc, msg):
        pc.b64decode(encode(bytes(range(200))), out=out)


# ---------------------------------------------------------------- b64decode, invalid input

def error_message(fn, *args) -> str:
    """The ValueError message of fn(*args) (cheaper than pytest.raises in hot loops)."""
    try:
        fn(*args)
    except ValueError as e:
        return str(e)
    raise AssertionError(f"no ValueError for {args!r:.80}")


@pytest.mark.parametrize("pad", [0, 1, 2])
def test_invalid_char_at_every_offset(isa, pad):
    """'!' at every offset of texts of every length up to 520 chars: the message
    names exactly that offset, whichever loop (4-block, 1-block, serial tail,
    last quad) meets it."""
    for n in range(4, 524, 4):
        text = text_of_len(n, pad)
        for p in range(n):
            msg = error_message(pc.b64decode, text[:p] + b"!" + text[p + 1:])
            if text[p] != ord("=") or text[p - 1] != ord("="):
                assert msg == f"invalid base64: invalid base64 character '!' at offset {p}", (n, p)
            else:  # "xx=!": a non-'=' after the padding
                assert msg == f"invalid base64: data character after '=' padding at offset {p}", (n, p)


# For n = 304 the AVX2 decoder runs its 4-block loop over chars 0..255, its
# 1-block loop over 256..287, the serial quads over 288..299, then the last quad.
# For n = 104: 1-block loop over 0..63, serial 64..99.
OFFSETS = {
    8: list(range(8)),
    104: [0, 5, 31, 32, 63, 64, 99, 100, 101, 102, 103],
    304: [0, 1, 31, 32, 127, 128, 200, 255, 256, 270, 287, 288, 299, 300, 301, 302, 303],
}


@pytest.mark.parametrize("n", sorted(OFFSETS))
def test_every_non_alphabet_byte_is_rejected(isa, n):
    """Each of the 190 non-alphabet byte values (including 0x80..0xFF, which only
    bytes can hold) at offsets in every decoding loop."""
    text = text_of_len(n, 0)
    for b in BAD_BYTES:
        for p in OFFSETS[n]:
            bad = text[:p] + bytes([b]) + text[p + 1:]
            msg = f"invalid base64: invalid base64 character {chr(b)!r} at offset {p}"
            assert error_message(pc.b64decode, bad) == msg
            if b < 128:
                assert error_message(pc.b64decode, bad.decode("ascii")) == msg


@given(raw=blobs(), data=st.data())
def test_invalid_char_at_random_offset(isa, raw, data):
    text = encode(raw)
    assume(len(text) > 0)
    data_offsets = len(text) - text.count(b"=")
    p = data.draw(st.integers(0, data_offsets - 1), label="offset")
    b = data.draw(st.sampled_from(BAD_BYTES), label="byte")
    bad = text[:p] + bytes([b]) + text[p + 1:]
    msg = f"invalid base64: invalid base64 character {chr(b)!r} at offset {p}"
    with raises_exactly(ValueError, msg):
        pc.b64decode(bad)
    with pytest.raises(ValueError):
        ref.b64decode(bad)


@given(raw=blobs(), data=st.data())
def test_first_of_several_invalid_chars_is_named(isa, raw, data):
    text = encode(raw)
    data_offsets = len(text) - text.count(b"=")
    assume(data_offsets >= 2)
    ps = data.draw(st.lists(st.integers(0, data_offsets - 1), min_size=2, max_size=5, unique=True))
    bad = bytearray(text)
    for p in ps:
        bad[p] = ord("!")
    with raises_exactly(ValueError, f"invalid base64: invalid base64 character '!' at offset {min(ps)}"):
        pc.b64decode(bytes(bad))


@given(raw=blobs(), data=st.data())
def test_early_padding_is_named(isa, raw, data):
    text = encode(raw)
    assume(len(text) >= 4)
    p = data.draw(st.integers(0, len(text) - 3))  # before the last two chars, where '=' may go
    assume(text[p] != ord("="))
    bad = text[:p] + b"=" + text[p + 1:]
    with raises_exactly(ValueError, f"invalid base64: unexpected '=' padding at offset {p}"):
        pc.b64decode(bad)
    with pytest.raises(ValueError):
        ref.b64decode(bad)


@pytest.mark.parametrize(("text", "msg"), [
    ("Zg=a", "data character after '=' padding at offset 3"),
    ("Zm9vZg=a", "data character after '=' padding at offset 7"),
    ("Z===", "unexpected '=' padding at offset 1"),
    ("=AAA", "unexpected '=' padding at offset 0"),
    ("====", "unexpected '=' padding at offset 0"),
    ("A=AA", "unexpected '=' padding at offset 1"),
    ("Zg==Zg==", "unexpected '=' padding at offset 2"),
    ("Zm8=Zm8=", "unexpected '=' padding at offset 3"),
    ("AAAA" * 100 + "=AAA", "unexpected '=' padding at offset 400"),
    ("AAAA" * 100 + "Zg=a", "data character after '=' padding at offset 403"),
    ("AAAA" * 50 + "A=AA" + "AAAA" * 50, "unexpected '=' padding at offset 201"),
    ("QR==", "non-zero bits before '=' padding at offset 1 (non-canonical encoding)"),
    ("Zh==", "non-zero bits before '=' padding at offset 1 (non-canonical encoding)"),
    ("QUJ=", "non-zero bits before '=' padding at offset 2 (non-canonical encoding)"),
    ("Zm9=", "non-zero bits before '=' padding at offset 2 (non-canonical encoding)"),
    ("AAAA" * 100 + "QR==", "non-zero bits before '=' padding at offset 401 (non-canonical encoding)"),
    ("A", "length 1 is not a multiple of 4"),
    ("AB", "length 2 is not a multiple of 4"),
    ("Zg=", "length 3 is not a multiple of 4"),
    ("Zm9vY", "length 5 is not a multiple of 4"),
    ("Zg===", "length 5 is not a multiple of 4"),
    ("A" * 5001, "length 5001 is not a multiple of 4"),
    ("Zm9v\nZm9", "invalid base64 character '\\n' at offset 4"),
    ("Zm9v Zm9", "invalid base64 character ' ' at offset 4"),
    (" Zm9", "invalid base64 character ' ' at offset 0"),
    ("Zm9\t", "invalid base64 character '\\t' at offset 3"),
    ("Zm9vYmFy\r\n" + "AA", "invalid base64 character '\\r' at offset 8"),
    ("-_-_", "invalid base64 character '-' at offset 0"),
    ("AAAA_AAA", "invalid base64 character '_' at offset 4"),
    ("Zm9v" * 40 + "-A==", "invalid base64 character '-' at offset 160"),
    ("Zm\x009", "invalid base64 character '\\x00' at offset 2"),
    ("Zm9\x7f", "invalid base64 character '\\x7f' at offset 3"),
], ids=lambda v: v[:24] if isinstance(v, str) else None)
def test_invalid_text(isa, text, msg):
    for kind in INPUT_KINDS:
        with raises_exactly(ValueError, "invalid base64: " + msg):
            pc.b64decode(as_input(text.encode("ascii"), kind))
    with pytest.raises(ValueError):
        ref.b64decode(text)


def test_stdlib_is_lenient_where_we_are_strict():
    """Why the reference has its own checks: the stdlib's validate=True takes these."""
    assert base64.b64decode("QR==", validate=True) == b"A"
    for text in ["QR==", "QUJ=", "Zh=="]:
        with pytest.raises(ValueError):
            ref.b64decode(text)


@given(raw=st.binary(min_size=1, max_size=400).filter(lambda r: len(r) % 3), bit=st.integers(0, 3))
def test_noncanonical_trailing_bits(isa, raw, bit):
    text = bytearray(encode(raw))
    pad = text.count(b"=")
    k = len(text) - pad - 1  # the char holding the dropped bits: 4 of them for "xx==", 2 for "xxx="
    assume(bit < (4 if pad == 2 else 2))
    text[k] = ALPHABET[ALPHABET.index(text[k]) ^ (1 << bit)]
    with raises_exactly(ValueError, f"invalid base64: non-zero bits before '=' padding at offset {k} "
                                    "(non-canonical encoding)"):
        pc.b64decode(bytes(text))
    with pytest.raises(ValueError):
        ref.b64decode(bytes(text))


@pytest.mark.parametrize(("text", "offset", "char"), [
    ("Zm9vé===", 4, "é"), ("é", 0, "é"), ("AAAA\u20acAAA", 4, "\u20ac"), ("Zm9\U0001F600", 3, "\U0001F600"),
    ("\xff" * 8, 0, "\xff"),
])
def test_non_ascii_str(isa, text, offset, char):
    with raises_exactly(ValueError, f"non-ASCII character {char!r} at offset {offset}"):
        pc.b64decode(text)


def test_non_ascii_bytes_name_the_offset(isa):
    with raises_exactly(ValueError, f"invalid base64: invalid base64 character {chr(0xC3)!r} at offset 4"):
        pc.b64decode("Zm9vé===".encode()[:8])


@pytest.mark.parametrize(("data", "exc", "msg"), [
    (12345, TypeError, "data must be str, a bytes-like object or a uint8 array, got int"),
    (["Zm9v"], TypeError, "data must be str, a bytes-like object or a uint8 array, got list"),
    (None, TypeError, "data must be str, a bytes-like object or a uint8 array, got NoneType"),
    (np.frombuffer(b"Zm9v", dtype=np.int8), TypeError, "data must have dtype uint8, got int8"),
    (np.array([90.0, 109, 57, 118]), TypeError, "data must have dtype uint8, got float64"),
    (np.frombuffer(b"Zm9vZm9v", dtype=np.uint8).reshape(2, 4), ValueError, "data must have 1 dimensions, got 2"),
    (np.array(90, dtype=np.uint8), ValueError, "data must have 1 dimensions, got 0"),
    (memoryview(b"Zm9vZm9v")[::2], ValueError, "data must be C-contiguous"),
], ids=["int", "list", "none", "int8", "float64", "2d", "0d", "strided-memoryview"])
def test_b64decode_bad_argument(isa, data, exc, msg):
    with raises_exactly(exc, msg):
        pc.b64decode(data)


def test_b64decode_rejects_strided_uint8_array(isa):
    with pytest.raises(ValueError, match="C-contiguous"):
        pc.b64decode(np.frombuffer(b"ZZmm99vv", dtype=np.uint8)[::2])


# ---------------------------------------------------------------- decode_int8 / decode_binary

def rows_as(m: np.ndarray, container: str, item: str):
    items = [base64.b64encode(row.tobytes()) for row in m]
    if item == "str":
        items = [t.decode() for t in items]
    elif item == "mixed":
        items = [t.decode() if i % 2 else t for i, t in enumerate(items)]
    return {"list": lambda: items, "tuple": lambda: tuple(items), "generator": lambda: (t for t in items)}[container]()


@given(m=int8_matrices(), container=st.sampled_from(["list", "tuple", "generator"]),
       item=st.sampled_from(["str", "bytes", "mixed"]), give_dim=st.booleans())
def test_decode_int8_matches_reference(isa, m, container, item, give_dim):
    n, dim = m.shape
    give_dim = give_dim or n == 0
    got = pc.decode_int8(rows_as(m, container, item), dim=dim if give_dim else None)
    assert got.dtype == np.int8 and got.shape == (n, dim) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, m)
    if n:
        np.testing.assert_array_equal(got, ref.decode_int8(rows_as(m, "list", "str")))


@given(m=int8_matrices(min_rows=1))
def test_decode_int8_isas_agree(m):
    items = pc.encode_int8(m)
    for got in on_every_isa(lambda: pc.decode_int8(items)):
        np.testing.assert_array_equal(got, ref.decode_int8(items))


@given(m=int8_matrices(min_rows=1, max_rows=1), as_bytes=st.booleans())
def test_decode_int8_single_string_is_one_row(isa, m, as_bytes):
    text = base64.b64encode(m.tobytes())
    got = pc.decode_int8(text if as_bytes else text.decode())
    assert got.shape == m.shape
    np.testing.assert_array_equal(got, m)


@given(k=st.integers(1, 320), n=st.integers(0, 9), seed=st.integers(0, 2**32 - 1),
       item=st.sampled_from(["str", "bytes"]))
def test_decode_binary_matches_reference(isa, k, n, seed, item):
    dim = 8 * k
    codes = np.random.default_rng(seed).integers(0, 256, (n, k), dtype=np.uint8)
    items = rows_as(codes, "list", item)
    got = pc.decode_binary(items, dim)
    assert got.dtype == np.uint8 and got.shape == (n, k)
    np.testing.assert_array_equal(got, codes)
    if n:
        np.testing.assert_array_equal(got, ref.decode_binary(items, dim))


def test_decode_rows_real_sizes(isa):
    rng = np.random.default_rng(7)
    for dim in REAL_DIMS:
        m = rng.integers(-128, 127, (5, dim), dtype=np.int8, endpoint=True)
        np.testing.assert_array_equal(pc.decode_int8(ref.encode_int8(m)), m)
        codes = rng.integers(0, 256, (5, dim // 8), dtype=np.uint8)
        np.testing.assert_array_equal(pc.decode_binary(ref.encode_binary(codes), dim), codes)


def test_decode_empty_sequence(isa):
    for empty in ([], (), iter([])):
        got = pc.decode_int8(empty, dim=1024)
        assert got.shape == (0, 1024) and got.dtype == np.int8
    got = pc.decode_binary([], 1024)
    assert got.shape == (0, 128) and got.dtype == np.uint8
    with raises_exactly(ValueError, "dim is required when there are no items"):
        pc.decode_int8([])


def test_decode_rows_out_is_filled_and_returned(isa):
    m = np.arange(-128, 128, dtype=np.int8).reshape(4, 64)
    out = np.zeros((4, 64), dtype=np.int8)
    assert pc.decode_int8(pc.encode_int8(m), out=out) is out
    np.testing.assert_array_equal(out, m)
    codes = m.view(np.uint8)
    outb = np.zeros((4, 64), dtype=np.uint8)
    assert pc.decode_binary(pc.encode_binary(codes), 512, out=outb) is outb
    np.testing.assert_array_equal(outb, codes)


def test_decode_rows_stay_inside_out(isa):
    """Rows of every width 1..200 decoded back to back into a guarded `out`."""
    rng = np.random.default_rng(8)
    for dim in range(1, 201):
        m = rng.integers(-128, 127, (3, dim), dtype=np.int8, endpoint=True)
        buf = np.full(3 * dim + 96, 0x55, dtype=np.int8)
        out = buf[32:32 + 3 * dim].reshape(3, dim)
        assert pc.decode_int8(ref.encode_int8(m), out=out) is out
        np.testing.assert_array_equal(out, m)
        assert (buf[:32] == 0x55).all() and (buf[32 + 3 * dim:] == 0x55).all(), dim


@pytest.mark.parametrize(("out", "exc", "msg"), [
    (np.zeros((4, 65), dtype=np.int8), ValueError, "out must have shape (4, 64), got (4, 65)"),
    (np.zeros((3, 64), dtype=np.int8), ValueError, "out must have shape (4, 64), got (3, 64)"),
    (np.zeros(256, dtype=np.int8), ValueError, "out must have shape (4, 64), got (256,)"),
    (np.zeros((4, 64), dtype=np.uint8), TypeError, "out must have dtype int8, got uint8"),
    (np.zeros((4, 128), dtype=np.int8)[:, :64], ValueError, "out must be C-contiguous"),
    (np.zeros((64, 4), dtype=np.int8).T, ValueError, "out must be C-contiguous"),
    (np.frombuffer(bytes(256), dtype=np.int8).reshape(4, 64), ValueError, "out is read-only"),
    ([[0] * 64] * 4, TypeError, "out must be a numpy array, got list"),
], ids=["wide", "short", "1d", "uint8", "strided", "fortran", "readonly", "list"])
def test_decode_int8_bad_out(isa, out, exc, msg):
    items = pc.encode_int8(np.ones((4, 64), dtype=np.int8))
    with raises_exactly(exc, msg):
        pc.decode_int8(items, out=out)


def test_decode_binary_bad_out(isa):
    items = pc.encode_binary(np.ones((2, 16), dtype=np.uint8))
    with raises_exactly(TypeError, "out must have dtype uint8, got int8"):
        pc.decode_binary(items, 128, out=np.zeros((2, 16), dtype=np.int8))
    with raises_exactly(ValueError, "out must have shape (2, 16), got (2, 128)"):
        pc.decode_binary(items, 128, out=np.zeros((2, 128), dtype=np.uint8))


@given(m=int8_matrices(min_rows=1), data=st.data())
def test_decode_int8_error_names_item_and_offset(isa, m, data):
    n, dim = m.shape
    items = pc.encode_int8(m)
    i = data.draw(st.integers(0, n - 1), label="item")
    text = items[i]
    p = data.draw(st.integers(0, len(text) - text.count("=") - 1), label="offset")
    items[i] = text[:p] + "!" + text[p + 1:]
    msg = f"item {i}: invalid base64: invalid base64 character '!' at offset {p}"
    with raises_exactly(ValueError, msg):
        pc.decode_int8(items)
    with raises_exactly(ValueError, msg):
        pc.decode_int8([t.encode() for t in items], dim=dim)


def test_decode_int8_error_item_3_offset_17(isa):
    items = pc.encode_int8(np.arange(-128, 128, dtype=np.int8).reshape(8, 32))
    items[3] = items[3][:17] + "!" + items[3][18:]
    items[5] = "!" + items[5][1:]  # a later bad item does not hide the first
    with raises_exactly(ValueError, "item 3: invalid base64: invalid base64 character '!' at offset 17"):
        pc.decode_int8(items)


@pytest.mark.parametrize(("dim", "bad", "msg"), [
    (32, base64.b64encode(bytes(35)).decode(), "decodes to 35 bytes, expected 32"),
    (32, base64.b64encode(bytes(31)).decode(), "decodes to 31 bytes, expected 32"),
    (32, base64.b64encode(bytes(33)).decode(), "decodes to 33 bytes, expected 32"),
    (32, "", "decodes to 0 bytes, expected 32"),
    (32, "AAAAA", "invalid base64: length 5 is not a multiple of 4"),
    (32, "A" * 43 + "\xe9", "non-ASCII character '\xe9' at offset 43"),
    (32, "A" * 40 + "AAB=", "invalid base64: non-zero bits before '=' padding at offset 42 (non-canonical encoding)"),
    (32, "A" * 20 + "\n" + "A" * 22 + "=", "invalid base64: invalid base64 character '\\n' at offset 20"),
    (33, "A" * 40 + "AA=A", "invalid base64: data character after '=' padding at offset 43"),
    (33, "A" * 20 + "=" + "A" * 23, "invalid base64: unexpected '=' padding at offset 20"),
    (33, "A" * 43 + "-", "invalid base64: invalid base64 character '-' at offset 43"),
], ids=lambda v: v[:30] if isinstance(v, str) else None)
def test_decode_int8_item_errors(isa, dim, bad, msg):
    good = base64.b64encode(bytes(range(dim))).decode()
    for k in range(4):
        items = [good] * 4
        items[k] = bad
        if k:  # dim inferred from item 0
            with raises_exactly(ValueError, f"item {k}: {msg}"):
                pc.decode_int8(items)
        with raises_exactly(ValueError, f"item {k}: {msg}"):
            pc.decode_int8(items, dim=dim)
        with raises_exactly(ValueError, f"item {k}: {msg}"):
            pc.decode_int8([t.encode("latin-1") if t.isascii() else t for t in items], dim=dim)


def test_decode_int8_infers_dim_from_item_0(isa):
    with raises_exactly(ValueError, "item 0: empty (pass dim=0 for zero-width rows)"):
        pc.decode_int8(["", "AAAA"])
    with raises_exactly(ValueError, "item 0: invalid base64: length 5 is not a multiple of 4"):
        pc.decode_int8(["AAAAA", "AAAA"])
    with raises_exactly(ValueError, "item 1: decodes to 6 bytes, expected 3"):
        pc.decode_int8(["AAAA", "AAAAAAAA"])


@pytest.mark.parametrize(("item", "name"), [(42, "int"), (None, "NoneType"), (bytearray(b"AAAA"), "bytearray"),
                                            (memoryview(b"AAAA"), "memoryview"), (["AAAA"], "list"),
                                            (np.zeros(3, np.int8), "ndarray")])
def test_decode_int8_non_str_item(isa, item, name):
    for k in range(3):
        items = ["AAAA"] * 3
        items[k] = item
        with raises_exactly(TypeError, f"item {k}: expected str or bytes, got {name}"):
            pc.decode_int8(items)
        with raises_exactly(TypeError, f"item {k}: expected str or bytes, got {name}"):
            pc.decode_binary(items, 24)


def test_decode_int8_bad_items_argument(isa):
    with pytest.raises(TypeError, match="not a numpy array"):
        pc.decode_int8(np.array(["AAAA"]))
    with raises_exactly(TypeError, "items must be a str or a sequence of str, got int"):
        pc.decode_int8(5)
    with raises_exactly(TypeError, "items must be a str or a sequence of str, got NoneType"):
        pc.decode_int8(None, dim=3)


@pytest.mark.parametrize(("dim", "exc", "msg"), [
    (-8, ValueError, "dim must be >= 0, got -8"),
    (True, TypeError, "dim must be an integer, got bool"),
    (3.0, TypeError, "dim must be an integer, got float"),
    ("3", TypeError, "dim must be an integer, got str"),
])
def test_decode_bad_dim(isa, dim, exc, msg):
    with raises_exactly(exc, msg):
        pc.decode_int8(["AAAA"], dim=dim)
    with raises_exactly(exc, msg):
        pc.decode_binary(["AAAA"], dim)


@pytest.mark.parametrize("dim", [1, 7, 12, 1020, 1025])
def test_decode_binary_dim_not_multiple_of_8(isa, dim):
    with raises_exactly(ValueError, f"dim must be a multiple of 8 for binary codes, got {dim}"):
        pc.decode_binary(["AAAA"], dim)


def test_decode_binary_wrong_length_item(isa):
    items = pc.encode_binary(np.zeros((3, 16), dtype=np.uint8))
    with raises_exactly(ValueError, "item 0: decodes to 16 bytes, expected 32"):
        pc.decode_binary(items, 256)
    dim_numpy = np.int64(128)  # any operator.index-able integer
    assert pc.decode_binary(items, dim_numpy).shape == (3, 16)


# ---------------------------------------------------------------- encode_int8 / encode_binary

def layouts(m: np.ndarray, tmp_path=None):
    """The same rows in every memory layout the API accepts."""
    wide = np.zeros((m.shape[0], m.shape[1] + 13), dtype=m.dtype)
    wide[:, 3:3 + m.shape[1]] = m
    ro = m.copy()
    ro.flags.writeable = False
    yield "c", m
    yield "strided-rows", wide[:, 3:3 + m.shape[1]]
    yield "reversed-rows", m[::-1].copy()[::-1]
    yield "read-only", ro
    if tmp_path is not None:
        path = tmp_path / "m.bin"
        m.tofile(path)
        yield "memmap", np.memmap(path, dtype=m.dtype, mode="r", shape=m.shape)


@given(m=int8_matrices(min_rows=1))
def test_encode_int8_matches_reference(isa, m):
    for name, view in layouts(m):
        got = pc.encode_int8(view)
        assert got == ref.encode_int8(m), name
        assert all(type(s) is str for s in got)


@given(m=int8_matrices(min_rows=1, max_rows=1))
def test_encode_int8_one_row(isa, m):
    assert pc.encode_int8(m[0]) == ref.encode_int8(m)


@given(m=int8_matrices(min_rows=1))
def test_encode_decode_round_trip(isa, m):
    np.testing.assert_array_equal(pc.decode_int8(pc.encode_int8(m), dim=m.shape[1]), m)
    codes = m.view(np.uint8)
    if m.shape[1] % 8 == 0:
        np.testing.assert_array_equal(pc.decode_binary(pc.encode_binary(codes), 8 * m.shape[1]), codes)


@given(m=int8_matrices(min_rows=1))
def test_encode_isas_agree(m):
    for got in on_every_isa(lambda: pc.encode_int8(m)):
        assert got == ref.encode_int8(m)


def test_encode_accepts_memmap_and_views(isa, tmp_path):
    m = np.random.default_rng(3).integers(-128, 127, (7, 1024), dtype=np.int8, endpoint=True)
    for name, view in layouts(m, tmp_path):
        assert pc.encode_int8(view) == ref.encode_int8(m), name
        assert pc.encode_binary(view.view(np.uint8)) == ref.encode_binary(m), name
    assert pc.encode_int8(m[:, :256]) == ref.encode_int8(m[:, :256].copy())
    assert pc.encode_int8(m[::2]) == ref.encode_int8(m[::2].copy())
    assert pc.encode_int8(m[::-1]) == ref.encode_int8(m[::-1].copy())
    assert pc.encode_int8(m[:0]) == []
    assert pc.encode_int8(m[:, :0]) == [""] * 7


@pytest.mark.parametrize(("fn", "arg", "exc", "msg"), [
    (pc.encode_int8, np.zeros((2, 8), np.uint8), TypeError, "matrix must have dtype int8, got uint8"),
    (pc.encode_int8, np.zeros((2, 8), np.float32), TypeError, "matrix must have dtype int8, got float32"),
    (pc.encode_int8, [[1, 2]], TypeError, "matrix must be a numpy array, got list"),
    (pc.encode_int8, np.zeros((2, 2, 8), np.int8), ValueError, "matrix must have 1 or 2 dimensions, got 3"),
    (pc.encode_int8, np.array(1, np.int8), ValueError, "matrix must have 1 or 2 dimensions, got 0"),
    (pc.encode_binary, np.zeros((2, 8), np.int8), TypeError, "packed must have dtype uint8, got int8"),
    (pc.encode_binary, b"abc", TypeError, "packed must be a numpy array, got bytes"),
], ids=["uint8", "float32", "list", "3d", "0d", "binary-int8", "binary-bytes"])
def test_encode_bad_argument(isa, fn, arg, exc, msg):
    with raises_exactly(exc, msg):
        fn(arg)


def test_encode_rejects_non_contiguous_rows(isa):
    m = np.zeros((4, 64), np.int8)
    for bad in (m[:, ::2], np.asfortranarray(m), m.T, m[0, ::3]):
        with pytest.raises(ValueError, match=r"^matrix rows must be contiguous \(element stride"):
            pc.encode_int8(bad)
    with pytest.raises(ValueError, match=r"^packed rows must be contiguous"):
        pc.encode_binary(m.view(np.uint8)[:, ::2])


@pytest.mark.parametrize("dim", [1, 2, 1024])
def test_encode_empty_batch(isa, dim):
    """No rows in, no strings out, however the empty matrix was made (numpy 2
    gives a fresh (0, d) array strides (0, 0); decode_int8 returns one too)."""
    for empty in (np.zeros((0, dim), np.int8), np.zeros((5, dim), np.int8)[:0], pc.decode_int8([], dim=dim)):
        assert pc.encode_int8(empty) == []
    if dim % 8 == 0:
        assert pc.encode_binary(pc.decode_binary([], dim)) == []
