"""Scalar argument checks shared by the public wrappers (array checks are
compiled: see codec/_arrays.pxd)."""

from __future__ import annotations

import operator
import sys

import numpy as np

from .constants import BITORDERS


def bitorder(order: object) -> bool:
    """True for MSB-first (``order`` may be anything, e.g. a value read from JSON: checked here)."""
    if order not in BITORDERS:
        raise ValueError(f"bitorder must be 'little' or 'big', got {order!r}")
    return order == "big"


def integer(value, name: str) -> int:
    """``value`` as a Python int (ints and numpy integers; bools are refused:
    ``dim=True`` is a bug at the call site, not 1), any size."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None


def positive_int(value, name: str, maximum: int = sys.maxsize, minimum: int = 1) -> int:
    """An :func:`integer` in minimum..maximum.  The default maximum is what a
    C size can hold, so a huge value is a ValueError here rather than an
    OverflowError deep in a compiled call."""
    value = integer(value, name)
    if value < minimum:
        raise ValueError(f"{name} must be {'positive' if minimum == 1 else f'>= {minimum}'}, got {value}")
    if value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}")
    return value


def max_retries(value) -> int:
    """Retries after a request's first attempt: an int, 0 or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"max_retries must be a non-negative integer, got {value!r}")
    return value
