"""One bit per dimension: pack, unpack, and convert between bit orders.

Bit order matters whenever codes meet anything but another code of the same
origin.  Perplexity's ``base64_binary`` is ``"little"`` (LSB first: dimension
j is bit ``j % 8`` of byte ``j // 8``).  numpy's default, faiss ``IndexBinary``
inputs built with ``np.packbits``, usearch ``b1x8`` and sentence-transformers
``ubinary`` are ``"big"`` (MSB first).  Hamming distance is the same in
either order as long as both sides agree.
"""

from __future__ import annotations

import numpy as np

from . import _bits, _checks

__all__ = ["pack_bits", "unpack_bits", "reverse_bitorder"]

_PACKABLE = (np.float32, np.float64, np.int8, np.bool_)
_UNPACKED = (np.uint8, np.int8, np.float32)


def pack_bits(x: np.ndarray, bitorder: str = "little", out: np.ndarray | None = None) -> np.ndarray:
    """Pack rows to one bit per value: bit = (value > 0).

    ``x``: float32, float64, int8 or bool, 1-D (one row) or 2-D ``(n, dim)``
    with contiguous rows.  Returns ``(n, ceil(dim / 8))`` uint8 (1-D for 1-D
    input); the unused bits of a last partial byte are zero.  NaN, 0 and -0.0
    give 0, matching the API's quantizer (bit = 1 where the value is positive).
    """
    msb = _checks.bitorder(bitorder)
    x = _checks.array(x, "x", _PACKABLE)
    x2 = _checks.rows(x, "x")
    if x2.dtype == np.bool_:
        x2 = x2.view(np.int8)
    n, dim = x2.shape
    result, out2 = _checks.out_rows(out, (n, (dim + 7) // 8), np.uint8, x.ndim == 1)
    _bits.pack_rows(x2, out2, msb)
    return result


def unpack_bits(packed: np.ndarray, dim: int | None = None, bitorder: str = "little",
                dtype=np.uint8, out: np.ndarray | None = None) -> np.ndarray:
    """Expand packed codes to one value per dimension.

    ``dtype``: ``np.uint8`` gives 0/1; ``np.int8`` gives -1/+1; ``np.float32``
    gives -1.0/+1.0 (the sign vectors used to rescore against float or int8
    queries).  ``dim`` defaults to ``8 * packed.shape[-1]`` and may be smaller
    (a Matryoshka prefix), never larger.
    """
    msb = _checks.bitorder(bitorder)
    dtype = np.dtype(dtype)
    if dtype not in [np.dtype(t) for t in _UNPACKED]:
        raise TypeError(f"dtype must be uint8 (0/1), int8 (-1/+1) or float32 (-1/+1), got {dtype}")
    packed = _checks.array(packed, "packed", (np.uint8,))
    p2 = _checks.rows(packed, "packed")
    nbits = 8 * p2.shape[1]
    dim = nbits if dim is None else _checks.positive_int(dim, "dim")
    if dim > nbits:
        raise ValueError(f"dim must be in 1..{nbits} for codes of {p2.shape[1]} bytes, got {dim}")
    result, out2 = _checks.out_rows(out, (p2.shape[0], int(dim)), dtype, packed.ndim == 1)
    _bits.unpack_rows(p2, out2, msb)
    return result


def reverse_bitorder(packed: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Reverse the bits of every byte: LSB-first <-> MSB-first codes, same shape."""
    packed = _checks.array(packed, "packed", (np.uint8,))
    p2 = _checks.rows(packed, "packed")
    result, out2 = _checks.out_rows(out, p2.shape, np.uint8, packed.ndim == 1)
    _bits.reverse_rows(p2, out2)
    return result
