"""Strict base64 for embeddings: one blob, or many per-vector strings into one matrix.

Everything here is RFC 4648 with the standard alphabet and ``=`` padding,
strictly: a character outside the alphabet, whitespace, misplaced padding,
non-zero bits under the padding, or a length that is not a multiple of 4
raise ``ValueError`` naming the offset (and, for sequences, the item).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from . import _base64, _checks

__all__ = ["b64decode", "b64encode", "decode_int8", "decode_binary", "encode_int8", "encode_binary"]

_TEXT = (str, bytes, bytearray, memoryview)


def _blob(data, name: str = "data"):
    """data as something the buffer/str fast paths accept, checked."""
    if isinstance(data, np.ndarray):
        _checks.array(data, name, (np.uint8,), ndim=(1,))
        if not data.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous")
        return data
    if isinstance(data, memoryview) and not data.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if not isinstance(data, _TEXT):
        raise TypeError(f"{name} must be str, bytes, bytearray, memoryview or a uint8 array, "
                        f"got {type(data).__name__}")
    return data


def b64decode(data, out: np.ndarray | None = None) -> np.ndarray:
    """Decode one base64 text into a 1-D uint8 array.

    ``data``: ASCII ``str``, ``bytes``, ``bytearray``, contiguous ``memoryview``
    or 1-D uint8 array.  ``out``: optional C-contiguous uint8 array of exactly
    the decoded size (``len(data) // 4 * 3`` minus padding).
    """
    data = _blob(data)
    size = _base64.decoded_size(data)
    out = _checks.out_array(out, (size,), np.uint8)
    _base64.decode_into(data, out)
    return out


def b64encode(data) -> bytes:
    """Encode bytes-like data (or a C-contiguous array's raw bytes) as base64 ``bytes``."""
    if isinstance(data, str):
        raise TypeError("b64encode takes bytes-like data, not str")
    if isinstance(data, np.ndarray) and not data.flags.c_contiguous:
        raise ValueError("data must be C-contiguous")
    if isinstance(data, memoryview) and not data.c_contiguous:
        raise ValueError("data must be C-contiguous")
    try:
        return _base64.encode(data)
    except (TypeError, BufferError) as e:
        raise TypeError(f"data must be bytes-like, got {type(data).__name__}") from e


def _items(items) -> tuple:
    if isinstance(items, (str, bytes)):
        return (items,)
    if isinstance(items, np.ndarray):
        raise TypeError("items must be a sequence of base64 str/bytes, not a numpy array; "
                        "use b64decode for one blob")
    if not isinstance(items, Iterable):
        raise TypeError(f"items must be a str or a sequence of str, got {type(items).__name__}")
    return tuple(items)


def decode_int8(items, dim: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Decode base64_int8 embeddings into an ``(n, dim)`` int8 matrix in one call.

    ``items``: a sequence (or iterable) of base64 ``str``/``bytes``, one per
    vector, as a JSON parser hands them over; or one string for one row.
    ``dim`` is inferred from the first item when not given; every item must
    decode to exactly ``dim`` bytes.  No Python object is created per item.
    ``out``: optional C-contiguous int8 ``(n, dim)`` array to fill.
    """
    seq = _items(items)
    if dim is None:
        if not seq:
            raise ValueError("dim is required when there are no items")
        dim = _base64.row_size(seq)
    dim = _checks.positive_int(dim, "dim")
    out = _checks.out_array(out, (len(seq), dim), np.int8)
    _base64.decode_rows(seq, out.view(np.uint8))
    return out


def decode_binary(items, dim: int, out: np.ndarray | None = None) -> np.ndarray:
    """Decode base64_binary embeddings into ``(n, dim // 8)`` packed uint8 codes.

    ``dim`` is the number of dimensions (bits), a multiple of 8.  The bit
    order is whatever the producer used (Perplexity: LSB-first); decoding
    does not touch bits.
    """
    dim = _checks.positive_int(dim, "dim")
    if dim % 8:
        raise ValueError(f"dim must be a multiple of 8 for binary codes, got {dim}")
    seq = _items(items)
    out = _checks.out_array(out, (len(seq), dim // 8), np.uint8)
    _base64.decode_rows(seq, out)
    return out


def encode_int8(matrix: np.ndarray) -> list[str]:
    """One base64 ``str`` per row of an int8 matrix (the base64_int8 wire format)."""
    m = _checks.rows(_checks.array(matrix, "matrix", (np.int8,)), "matrix")
    return _base64.encode_rows(m.view(np.uint8))


def encode_binary(packed: np.ndarray) -> list[str]:
    """One base64 ``str`` per row of packed uint8 codes (the base64_binary wire format)."""
    p = _checks.rows(_checks.array(packed, "packed", (np.uint8,)), "packed")
    return _base64.encode_rows(p)
