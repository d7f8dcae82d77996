"""Deterministic randomness that no platform or library version can change.

numpy's ``Generator`` methods may change their streams between releases; the
hash backend's filters, the projection of the sentence-transformers backend
and the fault draws must not, so they come from SplitMix64 here.
"""

from __future__ import annotations

import numpy as np

_MASK = 0xFFFFFFFFFFFFFFFF


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 step, vectorized over uint64 (arithmetic wraps)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def key(*parts: int) -> int:
    """Several integers (any size, any sign) -> one 64-bit seed."""
    k = np.uint64(0)
    for part in parts:
        k = splitmix64(np.array([k ^ np.uint64(part & _MASK)], dtype=np.uint64))[0]
    return int(k)


def uniform(seed: int, n: int) -> np.ndarray:
    """``n`` float64 in [0, 1) from ``seed``."""
    start = splitmix64(np.array([seed & _MASK], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        counters = np.arange(n, dtype=np.uint64) + start
    return (splitmix64(counters) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
