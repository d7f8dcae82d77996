"""int8 embedding helpers: Matryoshka truncation, L2 norms, float32 conversion."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import numpy.typing as npt

from . import _checks, _int8
from .constants import ENCODING_NAMES, ENCODINGS, MIN_DIMENSIONS

__all__ = ["truncate", "norms", "to_float32"]

_T = TypeVar("_T", bound=np.generic)


def truncate(matrix: npt.NDArray[_T], dimensions: int, encoding: str = "int8", copy: bool = True) -> npt.NDArray[_T]:
    """Keep the first ``dimensions`` dimensions of every row (Matryoshka).

    ``encoding``: ``"int8"`` (``(n, d)`` int8 rows) or ``"binary"`` (``(n, d // 8)``
    packed uint8 rows; ``dimensions`` must then be a multiple of 8).  The
    ``base64_*`` names are accepted too.  ``dimensions`` must be in
    ``128..d``, as the API allows (rows narrower than 128 cannot be
    truncated).  The API quantizes element-wise, so this equals what a
    request with the smaller ``dimensions`` returns, unless the service
    renormalizes (not documented).

    Returns a new C-contiguous array (a copy of ``n * dimensions`` values);
    ``copy=False`` returns a strided view instead, which every function in
    this package accepts.
    """
    enc = ENCODINGS.get(encoding, encoding)
    if enc not in ENCODING_NAMES:
        raise ValueError(f"encoding must be 'int8' or 'binary', got {encoding!r}")
    m = matrix
    want = np.int8 if enc == "int8" else np.uint8
    if not isinstance(m, np.ndarray) or m.dtype != want or m.ndim not in (1, 2):
        raise TypeError(f"matrix must be a 1-D or 2-D {np.dtype(want)} array for {enc} rows, got "
                        + (f"{m.dtype} with {m.ndim} dimensions" if isinstance(m, np.ndarray) else type(m).__name__))
    dimensions = _checks.positive_int(dimensions, "dimensions")
    per_item = 1 if enc == "int8" else 8
    current = m.shape[-1] * per_item
    if current < MIN_DIMENSIONS:  # no valid `dimensions`: "in 128..64" would be no range at all
        raise ValueError(f"rows of {current} dimensions are narrower than the API's minimum of {MIN_DIMENSIONS}: "
                         f"they cannot be truncated (got dimensions={dimensions})")
    if not MIN_DIMENSIONS <= dimensions <= current:
        raise ValueError(f"dimensions must be in {MIN_DIMENSIONS}..{current}, got {dimensions}")
    if dimensions % per_item:
        raise ValueError(f"dimensions must be a multiple of 8 for binary codes, got {dimensions}")
    view = m[..., : dimensions // per_item]
    # ascontiguousarray would hand back the input itself when nothing is cut
    return view.copy() if copy else view


def norms(matrix: np.ndarray, out: np.ndarray | None = None) -> npt.NDArray[np.float32]:
    """float32 L2 norm of each int8 row (a 0-d array for one 1-D vector).

    Exact: the int32 sum of squares, square-rooted in double, rounded once.
    """
    return _int8.norms(matrix, out)


def to_float32(matrix: np.ndarray, normalize: bool = True, out: np.ndarray | None = None) -> npt.NDArray[np.float32]:
    """int8 rows as float32, each divided by its L2 norm when ``normalize``.

    Normalized rows make inner product equal cosine, for vector stores that
    only offer inner product.  An all-zero row stays all zero (not NaN).
    """
    return _int8.to_float32(matrix, bool(normalize), out)
