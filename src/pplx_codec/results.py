"""What the client returns: decoded matrices with their metadata."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Usage", "Embeddings", "ContextualizedEmbeddings", "EmbeddingsResponse"]


@dataclass
class Usage:
    """Tokens and cost, summed over every request a job made."""

    prompt_tokens: int = 0
    total_tokens: int = 0
    input_cost: float = 0.0
    total_cost: float = 0.0
    currency: str = "USD"
    requests: int = 0

    def __iadd__(self, other: Usage) -> Usage:
        """Sum another job's usage into this one."""
        self.prompt_tokens += other.prompt_tokens
        self.total_tokens += other.total_tokens
        self.input_cost += other.input_cost
        self.total_cost += other.total_cost
        self.requests += other.requests
        self.currency = other.currency
        return self

    def add(self, usage: dict | None) -> None:
        """Add one response's ``usage`` object."""
        self.requests += 1
        if not isinstance(usage, dict):
            return
        self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.total_tokens += int(usage.get("total_tokens") or 0)
        cost = usage.get("cost")
        if isinstance(cost, dict):
            self.input_cost += float(cost.get("input_cost") or 0.0)
            self.total_cost += float(cost.get("total_cost") or 0.0)
            self.currency = cost.get("currency") or self.currency


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
