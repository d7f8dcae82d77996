"""What save() and to_arrow() are given, checked and normalised into one Payload.

The sources a store can be made from (an ``Embeddings``, a ``Stored``, or
explicit arrays) are told apart here, so the writers only see arrays in the
store's bit order and a meta.json dict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from .. import _checks
from ..bits import reverse_bitorder
from ..constants import API_BITORDER, ENCODINGS
from ..results import ContextualizedEmbeddings, Embeddings
from ._meta import STRUCTURAL, build_meta, check_meta, check_rows, dimensions_of
from ._stored import Stored
from ._texts import check_texts


@dataclasses.dataclass
class Payload:
    """Validated arrays and meta, ready to be written or converted."""

    int8: np.ndarray | None
    binary: np.ndarray | None
    bitorder: str
    meta: dict
    texts: Sequence[str] | None

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        return {e: a for e, a in (("int8", self.int8), ("binary", self.binary)) if a is not None}


def prepare(source, int8, binary, bitorder: str | None, meta, texts) -> Payload:
    """Normalise save()/to_arrow() arguments: an ``Embeddings`` or ``Stored``
    and/or explicit arrays.  ``bitorder``: the order to store codes in; None
    keeps a source's own order (its codes are converted, copied, when
    ``bitorder`` differs), else ``"little"``.  Explicit ``binary=`` codes are
    taken as being in the resulting order already."""
    if bitorder is not None:
        _checks.bitorder(bitorder)
    extras = check_meta(meta)
    given = {"int8": int8, "binary": binary}
    if source is None:
        bitorder = bitorder or API_BITORDER
    else:
        arrays, src_order, src_meta, src_texts = _from_source(source)
        for enc, a in arrays.items():
            if given[enc] is not None:
                raise ValueError(f"{enc} given twice: by the {type(source).__name__} and as {enc}=")
            given[enc] = a
        bitorder = bitorder or src_order
        if "binary" in arrays and src_order != bitorder:
            given["binary"] = reverse_bitorder(check_rows(arrays["binary"], "binary"))
        extras = {**src_meta, **extras}
        if texts is None:
            texts = src_texts
    if given["int8"] is None and given["binary"] is None:
        raise ValueError("nothing to store: pass Embeddings, int8= vectors and/or binary= codes")
    int8 = None if given["int8"] is None else check_rows(given["int8"], "int8")
    binary = None if given["binary"] is None else check_rows(given["binary"], "binary")
    d = dimensions_of(int8, binary)
    n = (int8 if int8 is not None else binary).shape[0]
    if source is not None and isinstance(source, Embeddings) and source.dimensions != d:
        raise ValueError(f"Embeddings says dimensions={source.dimensions} but its vectors have {d}")
    if texts is not None:
        texts = check_texts(texts, n)
    encodings = [e for e, a in (("int8", int8), ("binary", binary)) if a is not None]
    return Payload(int8, binary, bitorder, build_meta(n, d, encodings, bitorder, extras), texts)


def _from_source(source):
    """(arrays by encoding, bit order, meta extras, texts) of a save() source."""
    if isinstance(source, Stored):
        extras = {k: v for k, v in source.meta.items() if k not in STRUCTURAL}
        arrays = {e: a for e, a in (("int8", source.int8), ("binary", source.binary)) if a is not None}
        return arrays, source.bitorder, extras, source.texts
    if isinstance(source, ContextualizedEmbeddings):
        raise TypeError("ContextualizedEmbeddings have per-document offsets a store does not hold: save "
                        "result.vectors as int8=/binary= and keep result.offsets (e.g. np.save) beside it")
    if not isinstance(source, Embeddings):
        raise TypeError(f"embeddings must be a pplx_codec.Embeddings or a Stored, got {type(source).__name__}")
    enc = ENCODINGS.get(source.encoding_format)
    if enc is None:
        raise ValueError(f"unknown encoding_format {source.encoding_format!r} (expected one of {list(ENCODINGS)})")
    v = source.vectors
    if isinstance(v, np.ndarray) and v.ndim == 1:
        v = v[None]  # one embedded string
    extras = {"model": source.model, "usage": dataclasses.asdict(source.usage)}
    _checks.bitorder(source.bitorder)
    return {enc: v}, source.bitorder, extras, None
