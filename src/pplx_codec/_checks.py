"""Scalar argument checks shared by the public wrappers (array checks are
compiled: see codec/_arrays.pxd)."""

from __future__ import annotations

import operator

from .constants import BITORDERS


def bitorder(order: str) -> bool:
    """True for MSB-first."""
    if order not in BITORDERS:
        raise ValueError(f"bitorder must be 'little' or 'big', got {order!r}")
    return order == "big"


def positive_int(value, name: str) -> int:
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if value < 1:
        raise ValueError(f"{name} must be positive, got {value}")
    return value
