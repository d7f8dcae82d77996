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
import numpy.typing as npt

from . import _bits, _checks

__all__ = ["pack_bits", "unpack_bits", "reverse_bitorder"]

# keyed by the scalar types and their dtypes, so the common call skips np.dtype()
_UNPACKED: dict[object, int] = {k: np.dtype(t).num for t in (np.uint8, np.int8, np.float32) for k in (t, np.dtype(t))}


def pack_bits(x: np.ndarray, bitorder: str = "little", out: np.ndarray | None = None) -> npt.NDArray[np.uint8]:
    """Pack rows to one bit per value: bit = (value > 0).

    ``x``: float32, float64, int8 or bool, 1-D (one row) or 2-D ``(n, dim)``
    with contiguous rows.  Returns ``(n, ceil(dim / 8))`` uint8 (1-D for 1-D
    input); the unused bits of a last partial byte are zero.  NaN, 0 and -0.0
    give 0, matching the API's quantizer (bit = 1 where the value is positive).
    """
    return _bits.pack(x, _checks.bitorder(bitorder), out)


def unpack_bits(packed: np.ndarray, dim: int | None = None, bitorder: str = "little",
                dtype: npt.DTypeLike = np.uint8, out: np.ndarray | None = None) -> np.ndarray:
    """Expand packed codes to one value per dimension.

    ``dtype``: ``np.uint8`` gives 0/1; ``np.int8`` gives -1/+1; ``np.float32``
    gives -1.0/+1.0 (the sign vectors used to rescore against float or int8
    queries).  ``dim`` defaults to ``8 * packed.shape[-1]`` and may be smaller
    (a Matryoshka prefix), never larger.
    """
    msb = _checks.bitorder(bitorder)
    typenum = _UNPACKED.get(dtype) or _UNPACKED.get(np.dtype(dtype))
    if typenum is None:
        raise TypeError(f"dtype must be uint8 (0/1), int8 (-1/+1) or float32 (-1/+1), got {np.dtype(dtype)}")
    if dim is not None:
        dim = _checks.positive_int(dim, "dim", minimum=0)  # 0: zero-width rows, like pack_bits of 0 values
    return _bits.unpack(packed, dim, msb, typenum, out)


def reverse_bitorder(packed: np.ndarray, out: np.ndarray | None = None) -> npt.NDArray[np.uint8]:
    """Reverse the bits of every byte: LSB-first <-> MSB-first codes, same shape."""
    return _bits.reverse(packed, out)
