"""Argument checks shared by the public wrappers: one message style for every function."""

from __future__ import annotations

import operator

import numpy as np

from .constants import BITORDERS


def array(x, name: str, dtypes, ndim=(1, 2)) -> np.ndarray:
    """x as an ndarray of one of `dtypes` (no copy), with an ndim in `ndim`."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")
    dtypes = tuple(np.dtype(d) for d in dtypes)
    if x.dtype not in dtypes:
        want = " or ".join(str(d) for d in dtypes)
        raise TypeError(f"{name} must have dtype {want}, got {x.dtype}")
    if x.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimensions, got {x.ndim}")
    return x


def rows(x: np.ndarray, name: str) -> np.ndarray:
    """A 2-D view of x (one row for 1-D input) whose rows are contiguous.

    Row stride is free (slices like ``m[:, :256]`` are fine); elements within
    a row must be adjacent, because the kernels read rows as runs of memory.
    """
    x2 = x.reshape(1, -1) if x.ndim == 1 else x
    if x2.shape[1] > 1 and x2.strides[1] != x2.itemsize:
        raise ValueError(
            f"{name} rows must be contiguous (element stride {x2.strides[1]} != {x2.itemsize}); "
            "pass np.ascontiguousarray(...) (which copies)"
        )
    return x2


def out_array(out, shape: tuple, dtype, name: str = "out") -> np.ndarray:
    """A new array, or the caller's `out` checked to be exactly what is needed."""
    dtype = np.dtype(dtype)
    if out is None:
        return np.empty(shape, dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {out.shape}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only")
    return out


def bitorder(order: str) -> bool:
    """True for MSB-first."""
    if order not in BITORDERS:
        raise ValueError(f"bitorder must be 'little' or 'big', got {order!r}")
    return order == "big"


def out_rows(out, shape: tuple, dtype, one_row: bool):
    """(result, 2-D view of it) for a row-wise result.

    For 1-D input (one_row) the result, and any caller's `out`, is 1-D of
    shape[1:]; the kernels always see the 2-D view.
    """
    result = out_array(out, shape[1:] if one_row else shape, dtype)
    return result, (result.reshape(1, -1) if one_row else result)


def positive_int(value, name: str) -> int:
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if value < 1:
        raise ValueError(f"{name} must be positive, got {value}")
    return value
