"""What the client returns: decoded matrices with their metadata."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Usage", "Embeddings", "ContextualizedEmbeddings", "EmbeddingsResponse"]


@dataclass
class Usage:
    """Tokens and cost, summed over every request a call made."""

    prompt_tokens: int = 0
    total_tokens: int = 0
    input_cost: float = 0.0
    total_cost: float = 0.0
    currency: str = "USD"
    requests: int = 0

    def __iadd__(self, other: Usage) -> Usage:
        """Sum another usage into this one."""
        self.prompt_tokens += other.prompt_tokens
        self.total_tokens += other.total_tokens
        self.input_cost += other.input_cost
        self.total_cost += other.total_cost
        self.requests += other.requests
        self.currency = other.currency
        return self

    def add(self, usage: dict | None) -> None:
        """Add one response's ``usage`` object (absent or null: the request
        only).  A malformed one raises ``ValueError`` naming the field, and
        adds nothing: everything is checked before anything is summed."""
        usage = _object(usage, "usage")
        cost = _object(usage.get("cost"), "usage.cost")
        prompt, total = _count(usage, "prompt_tokens"), _count(usage, "total_tokens")
        input_cost, total_cost = _amount(cost, "input_cost"), _amount(cost, "total_cost")
        currency = cost.get("currency")
        if currency is not None and not isinstance(currency, str):
            raise ValueError(f"usage.cost.currency must be a string, got {_shown(currency)}")
        self.requests += 1
        self.prompt_tokens += prompt
        self.total_tokens += total
        self.input_cost += input_cost
        self.total_cost += total_cost
        self.currency = currency or self.currency


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def _object(value, name: str) -> dict:
    """A JSON object of the usage (null or absent: an empty one)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object, got {_shown(value)}")
    return value


def _count(usage: dict, name: str) -> int:
    """A token count: a non-negative integer (an integral JSON float such as
    ``12.0`` too); null or absent counts 0."""
    v = usage.get(name)
    if v is None:
        return 0
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"usage.{name} must be a non-negative integer, got {_shown(v)}")
    return v


def _amount(cost: dict, name: str) -> float:
    """A cost: a finite non-negative number; null or absent counts 0."""
    v = cost.get(name)
    if v is None:
        return 0.0
    try:
        f = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan
    except OverflowError:  # an integer beyond any float
        f = math.inf
    if not (math.isfinite(f) and f >= 0):
        raise ValueError(f"usage.cost.{name} must be a finite non-negative number, got {_shown(v)}")
    return f


@dataclass
class Embeddings:
    """``vectors``: ``(n, dimensions)`` int8, or ``(n, dimensions // 8)`` uint8
    packed codes in ``bitorder`` for ``base64_binary`` (one row, 1-D, when a
    single string was embedded)."""

    vectors: np.ndarray
    model: str
    dimensions: int
    encoding_format: str
    bitorder: str
    usage: Usage = field(default_factory=Usage)

    def __len__(self) -> int:
        return 1 if self.vectors.ndim == 1 else self.vectors.shape[0]

    def __repr__(self) -> str:
        return (f"Embeddings({self.vectors.shape} {self.vectors.dtype}, model={self.model!r}, "
                f"dimensions={self.dimensions}, encoding_format={self.encoding_format!r}, "
                f"bitorder={self.bitorder!r}, tokens={self.usage.total_tokens})")


@dataclass
class ContextualizedEmbeddings:
    """Chunk vectors of many documents in one flat matrix.

    ``vectors[offsets[d]:offsets[d + 1]]`` are document ``d``'s chunks in
    order; ``result[d]`` gives exactly that, ``len(result)`` the number of
    documents, ``result.document_of`` the document of each flat row.
    """

    vectors: np.ndarray
    offsets: np.ndarray
    model: str
    dimensions: int
    encoding_format: str
    bitorder: str
    usage: Usage = field(default_factory=Usage)

    def __len__(self) -> int:
        return self.offsets.size - 1

    def __getitem__(self, doc: int) -> np.ndarray:
        n = len(self)
        if not -n <= doc < n:
            raise IndexError(f"document {doc} out of range for {n} documents")
        doc %= n
        return self.vectors[self.offsets[doc]:self.offsets[doc + 1]]

    def __iter__(self):
        return (self[d] for d in range(len(self)))

    @property
    def counts(self) -> np.ndarray:
        """Chunks per document."""
        return np.diff(self.offsets)

    @property
    def document_of(self) -> np.ndarray:
        """Document index of each row of ``vectors``."""
        return np.repeat(np.arange(len(self)), self.counts)

    def __repr__(self) -> str:
        return (f"ContextualizedEmbeddings({len(self)} documents, {self.vectors.shape} {self.vectors.dtype}, "
                f"model={self.model!r}, encoding_format={self.encoding_format!r})")


@dataclass
class EmbeddingsResponse:
    """One raw API response, decoded: ``embeddings`` holds row ``index`` of the
    request's inputs (the SDK returns base64 strings in arrival order)."""

    embeddings: np.ndarray
    model: str
    usage: dict
    object: str = "list"
