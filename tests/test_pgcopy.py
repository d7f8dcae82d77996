"""pplx_codec._pgcopy: COPY BINARY rows for pgvector tables, against a
pure-Python ``struct`` oracle written from PostgreSQL's documented format
(the COPY file format; pgvector's halfvec_send / vector_send / bit's varbit_send)."""

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import raises_exactly
from pplx_codec import _pgcopy

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)


def oracle(first_id, texts, int8=None, vector_type=_pgcopy.HALFVEC, bits=None, dims=0):
    out = bytearray(HEADER)
    for i, text in enumerate(texts):
        fields = [struct.pack(">q", first_id + i)]
        if int8 is not None:
            fmt = ">e" if vector_type == _pgcopy.HALFVEC else ">f"
            fields.append(struct.pack(">hh", len(int8[i]), 0) + b"".join(struct.pack(fmt, float(v)) for v in int8[i]))
        if bits is not None:
            fields.append(struct.pack(">i", dims) + bytes(bits[i]))
        fields.append(text.encode("utf-8"))
        out += struct.pack(">h", len(fields))
        for f in fields:
            out += struct.pack(">i", len(f)) + f
    return bytes(out + struct.pack(">h", -1))


DIMS = st.sampled_from([1, 2, 3, 7, 8, 9, 127, 128, 129, 1024, 2560])
TEXTS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=12)


@given(st.integers(0, 5), DIMS, st.sampled_from([_pgcopy.HALFVEC, _pgcopy.VECTOR]), st.integers(0, 2**40),
       st.booleans(), st.booleans(), st.data())
def test_rows_equal_the_oracle(n, d, vector_type, first, with_int8, with_bits, data):
    rng = np.random.default_rng(n * 7919 + d)
    x = rng.integers(-128, 128, (n, d), dtype=np.int8)
    x[:, :1] = -128  # the extremes, every time
    x[:, -1:] = 127
    codes = np.packbits(x > 0, axis=1) if d % 8 == 0 else None
    texts = data.draw(st.lists(TEXTS, min_size=n, max_size=n))
    args = dict(int8=x if with_int8 else None, vector_type=vector_type,
                bits=codes if with_bits else None, dims=d if with_bits and codes is not None else 0)
    assert _pgcopy.encode_rows(first, texts, **args) == oracle(first, texts, **args)


def test_no_rows_is_header_and_trailer():
    assert _pgcopy.encode_rows(0, []) == HEADER + b"\xff\xff" == _pgcopy.HEADER + _pgcopy.TRAILER
    assert _pgcopy.encode_rows(0, [], header=False, trailer=False) == b""


def test_multibyte_and_long_texts():
    texts = ["", "é", "日本語", "🙂" * 1000, "a\nb\tc'\"\\", "x" * 100_000]
    x = np.arange(len(texts) * 16, dtype=np.int64).reshape(len(texts), 16).astype(np.int8)
    assert _pgcopy.encode_rows(5, texts, x) == oracle(5, texts, x)


@pytest.mark.parametrize(("text", "message"), [
    ("a\0b", "row 12: PostgreSQL text cannot hold this text (a NUL character at byte 1)"),
    ("ok \ud800 no", "row 12: PostgreSQL text cannot hold this text (a lone surrogate '\\ud800' at character 3)"),
    ("\udfff", "row 12: PostgreSQL text cannot hold this text (a lone surrogate '\\udfff' at character 0)"),
])
def test_texts_postgresql_cannot_hold_name_the_row(text, message):
    with raises_exactly(ValueError, message):
        _pgcopy.encode_rows(10, ["fine", "also fine", text], np.zeros((3, 8), np.int8))


@pytest.mark.parametrize(("kwargs", "exc", "message"), [
    (dict(int8=np.zeros((2, 8), np.int8)), ValueError, "int8 has 2 rows, the texts 1"),
    (dict(int8=np.zeros((1, 8), np.uint8)), TypeError, "int8 must be a 2-d int8 array"),
    (dict(int8=np.zeros((1, 16), np.int8)[:, ::2]), ValueError, "int8 must be C-contiguous"),
    (dict(int8=np.zeros((1, 0), np.int8)), ValueError,
     "int8 rows must have 1..16000 dimensions (pgvector's limit), got 0"),
    (dict(bits=np.zeros((1, 2), np.uint8), dims=8), ValueError, "dims 8 does not match codes of 2 bytes"),
    (dict(vector_type=7), ValueError, "vector_type must be 1 (halfvec) or 2 (vector), got 7"),
])
def test_bad_arguments(kwargs, exc, message):
    with raises_exactly(exc, message):
        _pgcopy.encode_rows(0, ["t"], **kwargs)


def test_not_a_str():
    with raises_exactly(TypeError, "row 3: text must be a str, got bytes"):
        _pgcopy.encode_rows(3, [b"x"])
