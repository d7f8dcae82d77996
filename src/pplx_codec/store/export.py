"""Hand rows to faiss or usearch (the ``bench`` extra installs both).

Both libraries take packed codes MSB first (numpy's ``np.packbits`` default):
codes are converted from LSB first here, so that codes users add later with
those libraries' own helpers (``np.packbits``, usearch ``b1x8`` from bools)
mean the same dimensions.  Queries must then be MSB first too:
``pplx_codec.reverse_bitorder(q)`` for Perplexity's ``base64_binary``.
Hamming distances are unchanged by the conversion.

Both libraries keep their own copy of the data (in RAM); rows are converted
and added in blocks of about 16 MiB, so nothing larger is allocated here.
"""

from __future__ import annotations

import importlib

import numpy as np

from .. import _checks
from ..bits import reverse_bitorder
from ._meta import check_rows

__all__ = ["to_faiss_binary_index", "to_usearch"]

_BLOCK_BYTES = 1 << 24


def _import(module: str, dist: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{module.split('.')[0]} is not installed: pip install {dist} "
                          "(or pip install 'pplx-codec[bench]')") from None


def _blocks(rows: np.ndarray, msb_from: str | None):
    """(start, C-contiguous block) pairs; codes reversed to MSB first when
    ``msb_from`` is ``"little"``."""
    step = max(1, _BLOCK_BYTES // max(1, rows.shape[1]))
    for s in range(0, rows.shape[0], step):
        block = rows[s:s + step]
        yield s, reverse_bitorder(block) if msb_from == "little" else np.ascontiguousarray(block)


def _codes(codes, bitorder) -> np.ndarray:
    if bitorder is None:
        raise ValueError("bitorder is required with codes: 'little' (Perplexity's base64_binary, "
                         "the store's default) or 'big'")
    _checks.bitorder(bitorder)
    return check_rows(codes, "binary")


def to_faiss_binary_index(codes: np.ndarray, bitorder: str):
    """A ``faiss.IndexBinaryFlat`` over ``(n, d // 8)`` packed codes in
    ``bitorder``, holding them MSB first; ids are row indices.  Search with
    MSB-first queries: ``index.search(reverse_bitorder(q), k)``."""
    faiss = _import("faiss", "faiss-cpu")
    codes = _codes(codes, bitorder)
    index = faiss.IndexBinaryFlat(8 * codes.shape[1])
    for _, block in _blocks(codes, bitorder):
        index.add(block)
    return index


def to_usearch(codes: np.ndarray | None = None, int8: np.ndarray | None = None, bitorder: str | None = None,
               **index_options):
    """A ``usearch.index.Index`` keyed by row index: for ``codes`` (packed, in
    ``bitorder``) metric ``hamming`` over ``b1x8`` MSB-first bits; for
    ``int8`` vectors metric ``cos`` over ``i8``.  One of the two.
    ``index_options`` go to ``usearch.index.Index`` (connectivity, ...).
    Compare with our exact search with ``index.search(q, k, exact=True)``."""
    usearch = _import("usearch.index", "usearch")
    if (codes is None) == (int8 is None):
        raise ValueError("pass codes= (packed binary) or int8= (vectors): exactly one")
    if codes is not None:
        rows = _codes(codes, bitorder)
        index = usearch.Index(ndim=8 * rows.shape[1], metric="hamming", dtype="b1x8", **index_options)
        blocks = _blocks(rows, bitorder)
    else:
        rows = check_rows(int8, "int8")
        index = usearch.Index(ndim=rows.shape[1], metric="cos", dtype="i8", **index_options)
        blocks = _blocks(rows, None)
    for start, block in blocks:
        index.add(np.arange(start, start + block.shape[0], dtype=np.uint64), block)
    return index
