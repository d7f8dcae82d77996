"""Strict base64 for embeddings: one blob, or many per-vector strings into one matrix.

Everything here is RFC 4648 with the standard alphabet and ``=`` padding,
strictly: a character outside the alphabet, whitespace, misplaced padding,
non-zero bits under the padding, or a length that is not a multiple of 4
raise ``ValueError`` naming the offset (and, for sequences, the item).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from . import _base64, _checks

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from Python 3.12 on

_INT8, _UINT8 = np.dtype(np.int8).num, np.dtype(np.uint8).num


__all__ = ["b64decode", "b64encode", "decode_int8", "decode_binary", "encode_int8", "encode_binary"]

# numpy declares ndarray a Buffer for Python >= 3.12 only: arrays are spelt out
def b64decode(data: str | Buffer | npt.NDArray[Any], out: np.ndarray | None = None) -> npt.NDArray[np.uint8]:
    """Decode one base64 text into a 1-D uint8 array.

    ``data``: ASCII ``str``, ``bytes``, ``bytearray``, contiguous ``memoryview``
    or 1-D uint8 array.  ``out``: optional C-contiguous uint8 array of exactly
    the decoded size (``len(data) // 4 * 3`` minus padding).
    """
    return _base64.b64decode(data, out)


def b64encode(data: Buffer | npt.NDArray[Any]) -> bytes:
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


def decode_int8(items: str | bytes | Iterable[str | bytes], dim: int | None = None,
                out: np.ndarray | None = None) -> npt.NDArray[np.int8]:
    """Decode base64_int8 embeddings into an ``(n, dim)`` int8 matrix in one call.

    ``items``: a sequence (or iterable) of base64 ``str``/``bytes``, one per
    vector, as a JSON parser hands them over; or one string for one row.
    ``dim`` is inferred from the first item when not given (an empty first
    item is an error then: pass ``dim=0`` for zero-width rows); every item
    must decode to exactly ``dim`` bytes.  No Python object is created per item.
    ``out``: optional C-contiguous int8 ``(n, dim)`` array to fill.
    """
    if dim is not None:  # 0: zero-width rows (empty strings), what encode_int8 gives for them
        dim = _checks.positive_int(dim, "dim", minimum=0)
    return _base64.decode_rows(items, dim, _INT8, out)


def decode_binary(items: str | bytes | Iterable[str | bytes], dim: int,
                  out: np.ndarray | None = None) -> npt.NDArray[np.uint8]:
    """Decode base64_binary embeddings into ``(n, dim // 8)`` packed uint8 codes.

    ``dim`` is the number of dimensions (bits), a multiple of 8.  The bit
    order is whatever the producer used (Perplexity: LSB-first); decoding
    does not touch bits.
    """
    dim = _checks.positive_int(dim, "dim", minimum=0)
    if dim % 8:
        raise ValueError(f"dim must be a multiple of 8 for binary codes, got {dim}")
    return _base64.decode_rows(items, dim // 8, _UINT8, out)


def encode_int8(matrix: np.ndarray) -> list[str]:
    """One base64 ``str`` per row of an int8 matrix (the base64_int8 wire format)."""
    return _base64.encode_rows(matrix, "matrix", _INT8)


def encode_binary(packed: np.ndarray) -> list[str]:
    """One base64 ``str`` per row of packed uint8 codes (the base64_binary wire format)."""
    return _base64.encode_rows(packed, "packed", _UINT8)
