"""What an embedding call asks the API for and how its rows are kept, checked
in one place: :class:`EmbedSettings` (model, Matryoshka dimensions,
encodings, bit order), as the client, the corpus pipeline behind ``pplx-codec
embed`` and the dask embed take them, and the one derivation of binary codes
from int8 rows.  No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import numpy as np

from . import _checks
from .bits import pack_bits
from .constants import (
    API_BITORDER,
    CONTEXTUALIZED_MODELS,
    DEFAULT_MODEL,
    EMBEDDING_MODELS,
    ENCODING_NAMES,
    ENCODINGS,
    MIN_DIMENSIONS,
    MODEL_DIMS,
)

__all__ = ["EmbedSettings", "ENCODING_NAMES"]

#: short name -> the API's ``encoding_format``
_FORMATS = {name: fmt for fmt, name in ENCODINGS.items()}


class Rows(TypedDict, total=False):
    """The rows of each kept encoding (keyword arguments of a store write)."""

    int8: np.ndarray
    binary: np.ndarray


@dataclass(frozen=True)
class EmbedSettings:
    """The checked settings of an embedding call.  Build them with
    :meth:`checked` (stored encodings: the corpus pipeline, the dask embed)
    or :meth:`for_request` (one API ``encoding_format``: the client); the
    constructor itself trusts its arguments (a copy unpickled on a worker).

    ``encodings``: the short names kept, in store order; ``dimensions``: the
    model's full size when none was asked for."""

    model: str
    dimensions: int
    encodings: tuple[str, ...] = ("int8",)
    bitorder: str = API_BITORDER
    contextualized: bool = False

    @classmethod
    def checked(cls, model: str = DEFAULT_MODEL, dimensions=None, encodings=("int8",),
                bitorder: str = API_BITORDER) -> EmbedSettings:
        """Settings of ``POST /v1/embeddings`` rows kept as ``encodings``
        (``"int8"``, ``"binary"`` or both; a str or a sequence)."""
        _model(model, EMBEDDING_MODELS)
        dims = _dimensions(model, dimensions)
        encs = (encodings,) if isinstance(encodings, str) else tuple(encodings)
        if not encs or len(set(encs)) != len(encs) or any(e not in ENCODING_NAMES for e in encs):
            raise ValueError(f"encodings must be 'int8', 'binary' or both, got {encodings!r}")
        encs = tuple(e for e in ENCODING_NAMES if e in encs)
        _packable(dims, encs, "binary codes")
        _checks.bitorder(bitorder)
        return cls(model, dims, encs, bitorder)

    @classmethod
    def for_request(cls, model: str, dimensions, encoding_format: str, bitorder: str,
                    contextualized: bool = False) -> EmbedSettings:
        """Settings of one request's rows as the API sends them
        (``encoding_format``), handed over in ``bitorder``."""
        _model(model, CONTEXTUALIZED_MODELS if contextualized else EMBEDDING_MODELS)
        if encoding_format not in ENCODINGS:
            raise ValueError(f"encoding_format must be one of {', '.join(ENCODINGS)}, got {encoding_format!r}")
        dims = _dimensions(model, dimensions)
        encs = (ENCODINGS[encoding_format],)
        _packable(dims, encs, encoding_format)
        _checks.bitorder(bitorder)
        return cls(model, dims, encs, bitorder, contextualized)

    @property
    def encoding_format(self) -> str:
        """What to request: int8 rows whenever int8 is kept (binary codes are
        then derived from them: one request per text, not two), else codes."""
        return _FORMATS["int8" if "int8" in self.encodings else "binary"]

    def as_dict(self) -> dict:
        """The settings as a JSON object (the dask embed's job.json, sidecars and manifest)."""
        return {"model": self.model, "dimensions": self.dimensions, "encodings": list(self.encodings),
                "bitorder": self.bitorder}

    def arrays(self, rows: np.ndarray) -> Rows:
        """Each kept encoding's rows, from the rows of ``encoding_format``
        (in ``bitorder``).  Binary codes derived from int8 rows are bit =
        value > 0, which differs from the service's own binary only for
        values that round to 0."""
        if "int8" not in self.encodings:
            return Rows(binary=rows)
        if "binary" not in self.encodings:
            return Rows(int8=rows)
        return Rows(int8=rows, binary=pack_bits(rows, self.bitorder))


def _model(model, models: tuple[str, ...]) -> None:
    if model not in models:
        raise ValueError(f"model must be one of {', '.join(models)}, got {model!r}")


def _dimensions(model: str, dimensions) -> int:
    """Matryoshka ``dimensions`` of ``model`` (None: its full size)."""
    full = MODEL_DIMS[model]
    if dimensions is None:
        return full
    if isinstance(dimensions, bool) or not isinstance(dimensions, (int, np.integer)):
        raise TypeError(f"dimensions must be an integer, got {type(dimensions).__name__}")
    dims = int(dimensions)
    if not MIN_DIMENSIONS <= dims <= full:
        raise ValueError(f"dimensions must be in {MIN_DIMENSIONS}..{full} for {model}, got {dims}")
    return dims


def _packable(dims: int, encodings: tuple[str, ...], named: str) -> None:
    """Binary codes pack 8 dimensions a byte; ``named``: the encoding as the caller named it."""
    if "binary" in encodings and dims % 8:
        raise ValueError(f"dimensions must be a multiple of 8 for {named}, got {dims}")

