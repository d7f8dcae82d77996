"""Haystack (``pip install 'pplx-codec[haystack]'``): ``PerplexityDocumentEmbedder``
and ``PerplexityTextEmbedder`` components backed by :class:`pplx_codec.Client` /
:class:`pplx_codec.AsyncClient`.

Haystack sends telemetry unless ``HAYSTACK_TELEMETRY_ENABLED=False`` is set
before it is imported; this module changes nothing of that.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import numpy as np
from haystack import Document, component, default_from_dict, default_to_dict
from haystack.utils import Secret, deserialize_secrets_inplace
from tqdm import tqdm

from ..constants import DEFAULT_MODEL
from ._common import Embedder, unit_lists

__all__ = ["PerplexityDocumentEmbedder", "PerplexityTextEmbedder"]

_KEY = Secret.from_env_var(["PERPLEXITY_API_KEY", "PPLX_API_KEY"], strict=False)


class _Base:
    """What both components share: the settings, serialization, the embedder.
    (``@component`` remakes each class, so their ``__init__`` calls this one by
    name: a bare ``super()`` fails there.)"""

    def __init__(self, model: str, dimensions: int | None, api_key: Secret, base_url: str | None,
                 codes: str | os.PathLike[str] | None, client_options: dict | None, endpoint: str | None) -> None:
        self.model = model
        self.api_key = api_key
        self.base_url = base_url
        self.codes = None if codes is None else str(codes)
        self.client_options = dict(client_options or {})
        self.endpoint = endpoint
        self._embedder = Embedder(model, dimensions, api_key=api_key.resolve_value(), base_url=base_url, codes=codes,
                                  source="pplx_codec.integrations.haystack", endpoint=endpoint,
                                  **self.client_options)
        self.dimensions = self._embedder.dimensions

    def _meta(self) -> dict[str, Any]:
        return {"model": self.model, "dimensions": self.dimensions}

    def _fields(self) -> dict[str, Any]:
        return dict(model=self.model, dimensions=self.dimensions, api_key=self.api_key.to_dict(),
                    base_url=self.base_url, codes=self.codes, client_options=self.client_options,
                    endpoint=self.endpoint)


@component
class PerplexityDocumentEmbedder(_Base):
    """Embeds Haystack ``Document``s with Perplexity (``embedding`` set on a
    copy of each), through this package's client: token-aware batching,
    retries, the request-rate budget, each distinct text paid for once, both
    models, Matryoshka ``dimensions``, the streaming decoder.  Every batch
    of ``batch_size`` documents is one client call (which splits it into the
    API's requests itself); ``progress_bar`` counts them.  The text of a
    document is ``prefix + embedding_separator.join(meta values of
    meta_fields_to_embed + [content]) + suffix``, as Haystack's own embedders make it.

    The floats are Perplexity's int8 rows scaled to unit length (float32
    until Haystack's list conversion): every document store's metric
    (cosine, dot product, L2) then ranks them as int8 cosine does, up to
    float32 rounding of near-ties.  ``codes=STORE_DIR`` keeps the int8 rows,
    binary codes (LSB-first: Haystack's own Perplexity embedders unpack
    MSB-first) and texts in a pplx-codec store, resumable like ``pplx-codec
    embed`` (a store filled from another ``endpoint``, by default the base
    URL, is refused).  Use the same ``model`` and ``dimensions`` in the
    :class:`PerplexityTextEmbedder` of the queries: given the same ``codes=``
    it refuses a mismatch."""

    def __init__(self, model: str = DEFAULT_MODEL, dimensions: int | None = None, api_key: Secret = _KEY,
                 base_url: str | None = None, batch_size: int = 512, progress_bar: bool = True,
                 meta_fields_to_embed: list[str] | None = None, embedding_separator: str = "\n", prefix: str = "",
                 suffix: str = "", codes: str | os.PathLike[str] | None = None,
                 client_options: dict | None = None, endpoint: str | None = None) -> None:
        _Base.__init__(self, model, dimensions, api_key, base_url, codes, client_options, endpoint)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self.progress_bar = progress_bar
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator
        self.prefix = prefix
        self.suffix = suffix

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, **self._fields(), batch_size=self.batch_size, progress_bar=self.progress_bar,
                               meta_fields_to_embed=self.meta_fields_to_embed,
                               embedding_separator=self.embedding_separator, prefix=self.prefix, suffix=self.suffix)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PerplexityDocumentEmbedder:
        deserialize_secrets_inplace(data["init_parameters"], keys=["api_key"])
        return default_from_dict(cls, data)

    def _texts(self, documents: list[Document]) -> list[str]:
        if not isinstance(documents, list) or not all(isinstance(d, Document) for d in documents):
            raise TypeError("PerplexityDocumentEmbedder expects a list of Documents (a str: PerplexityTextEmbedder)")
        out = []
        for d in documents:
            meta = [str(d.meta[k]) for k in self.meta_fields_to_embed if d.meta.get(k) is not None]
            out.append(self.prefix + self.embedding_separator.join([*meta, d.content or ""]) + self.suffix)
        return out

    def _done(self, documents: list[Document], rows: list[np.ndarray]) -> dict[str, Any]:
        lists = unit_lists(np.concatenate(rows)) if rows else []
        docs = [replace(d, embedding=v) for d, v in zip(documents, lists, strict=True)]
        return {"documents": docs, "meta": self._meta()}

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        texts = self._texts(documents)
        rows = [self._embedder.rows(texts[i:i + self.batch_size])
                for i in tqdm(range(0, len(texts), self.batch_size), disable=not self.progress_bar,
                              desc="Calculating embeddings")]
        return self._done(documents, rows)

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    async def run_async(self, documents: list[Document]) -> dict[str, Any]:
        texts = self._texts(documents)
        rows = [await self._embedder.arows(texts[i:i + self.batch_size])
                for i in tqdm(range(0, len(texts), self.batch_size), disable=not self.progress_bar,
                              desc="Calculating embeddings")]
        return self._done(documents, rows)


@component
class PerplexityTextEmbedder(_Base):
    """Embeds one text (a query) with Perplexity, as
    :class:`PerplexityDocumentEmbedder` embeds documents: the same floats
    (int8 rows scaled to unit length, so every document store's metric ranks
    as int8 cosine does, up to float32 rounding of near-ties).  Queries are
    never written to a store; ``codes=`` names the documents' store only to
    refuse a model or dimensions other than its rows'."""

    def __init__(self, model: str = DEFAULT_MODEL, dimensions: int | None = None, api_key: Secret = _KEY,
                 base_url: str | None = None, prefix: str = "", suffix: str = "",
                 codes: str | os.PathLike[str] | None = None, client_options: dict | None = None,
                 endpoint: str | None = None) -> None:
        _Base.__init__(self, model, dimensions, api_key, base_url, codes, client_options, endpoint)
        self.prefix = prefix
        self.suffix = suffix

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, **self._fields(), prefix=self.prefix, suffix=self.suffix)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PerplexityTextEmbedder:
        deserialize_secrets_inplace(data["init_parameters"], keys=["api_key"])
        return default_from_dict(cls, data)

    def _text(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise TypeError("PerplexityTextEmbedder expects a str (documents: PerplexityDocumentEmbedder)")
        return [self.prefix + text + self.suffix]

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    def run(self, text: str) -> dict[str, Any]:
        row = self._embedder.rows(self._text(text), documents=False)
        return {"embedding": unit_lists(row)[0], "meta": self._meta()}

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    async def run_async(self, text: str) -> dict[str, Any]:
        row = await self._embedder.arows(self._text(text), documents=False)
        return {"embedding": unit_lists(row)[0], "meta": self._meta()}
