"""Slow, obviously-correct oracles for the public API: stdlib and numpy only.

One function per public function, same name and (valid-input) semantics.
They validate only what the wire format requires (strict base64); argument
errors are tested against the package directly, not against these.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np

_UNPACK_VALUES = {  # dtype -> (value of a clear bit, value of a set bit)
    np.dtype(np.uint8): (0, 1),
    np.dtype(np.int8): (-1, 1),
    np.dtype(np.float32): (-1.0, 1.0),
}


def _as_bytes(data) -> bytes:
    if isinstance(data, str):
        return data.encode("ascii")  # UnicodeEncodeError is a ValueError
    if isinstance(data, np.ndarray):
        assert data.dtype == np.uint8 and data.ndim == 1
        return data.tobytes()
    return bytes(data)


def b64decode(data) -> np.ndarray:
    """Strict RFC 4648 decode: standard alphabet, '=' only as the final padding
    of a length that is a multiple of 4, zero bits under the padding."""
    s = _as_bytes(data)
    if len(s) % 4:
        raise ValueError("length is not a multiple of 4")
    body = s[:-2] + s[-2:].rstrip(b"=")
    if b"=" in body:
        raise ValueError("'=' before the end")
    try:
        raw = base64.b64decode(s, validate=True)
    except binascii.Error as e:
        raise ValueError(str(e)) from None
    if base64.b64encode(raw) != s:  # the stdlib accepts "QR==" (non-zero trailing bits)
        raise ValueError("non-canonical encoding")
    return np.frombuffer(raw, dtype=np.uint8).copy()


def b64encode(data) -> bytes:
    return base64.b64encode(data.tobytes() if isinstance(data, np.ndarray) else bytes(data))


def _decode_rows(items, width, dtype) -> np.ndarray:
    if isinstance(items, (str, bytes)):
        items = [items]
    rows = [b64decode(item) for item in items]
    if width is None:
        width = len(rows[0])
    if any(len(r) != width for r in rows):
        raise ValueError("an item decodes to the wrong length")
    out = np.zeros((len(rows), width), dtype=np.uint8)
    for i, r in enumerate(rows):
        out[i] = r
    return out.view(dtype)


def decode_int8(items, dim=None) -> np.ndarray:
    return _decode_rows(items, dim, np.int8)


def decode_binary(items, dim) -> np.ndarray:
    assert dim % 8 == 0
    return _decode_rows(items, dim // 8, np.uint8)


def encode_int8(matrix) -> list[str]:
    return [base64.b64encode(row.tobytes()).decode("ascii") for row in np.atleast_2d(matrix)]


encode_binary = encode_int8


def pack_bits(x, bitorder="little") -> np.ndarray:
    return np.packbits(np.asarray(x) > 0, axis=-1, bitorder=bitorder)


def unpack_bits(packed, dim=None, bitorder="little", dtype=np.uint8) -> np.ndarray:
    dim = 8 * packed.shape[-1] if dim is None else dim
    bits = np.unpackbits(packed, axis=-1, bitorder=bitorder)[..., :dim]
    clear, set_ = _UNPACK_VALUES[np.dtype(dtype)]
    return np.where(bits == 1, set_, clear).astype(dtype)


def reverse_bitorder(packed) -> np.ndarray:
    return np.packbits(np.unpackbits(packed, axis=-1, bitorder="little"), axis=-1, bitorder="big")


def truncate(matrix, dimensions, encoding="int8") -> np.ndarray:
    per_item = 8 if encoding in ("binary", "base64_binary") else 1
    return matrix[..., : dimensions // per_item].copy()


def norms(matrix) -> np.ndarray:
    sumsq = (matrix.astype(np.int64) ** 2).sum(axis=-1)
    return np.asarray(np.sqrt(sumsq.astype(np.float64)).astype(np.float32))


def to_float32(matrix, normalize=True) -> np.ndarray:
    f = matrix.astype(np.float32)
    if not normalize:
        return f
    n = norms(matrix)[..., None]
    out = np.zeros_like(f)
    np.divide(f, n, out=out, where=n != 0)  # float32 / float32, zero rows stay zero
    return out
