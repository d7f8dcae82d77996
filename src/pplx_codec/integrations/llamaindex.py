"""LlamaIndex (``pip install 'pplx-codec[llamaindex]'``): ``PerplexityEmbedding``,
a ``BaseEmbedding`` backed by :class:`pplx_codec.Client` / :class:`pplx_codec.AsyncClient`."""

from __future__ import annotations

import os
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import Field, PrivateAttr

from ..client import AsyncClient, Client
from ..constants import DEFAULT_MODEL
from ._common import Embedder, unit_lists

__all__ = ["PerplexityEmbedding"]


class PerplexityEmbedding(BaseEmbedding):
    """Perplexity embeddings for LlamaIndex, through this package's client:
    token-aware batching (512 inputs, 120k tokens a request), retries, the
    request-rate budget, each distinct text paid for once, both models,
    Matryoshka ``dimensions``, the streaming decoder.  The batch methods
    (``get_text_embedding_batch`` and its async twin) send each of
    LlamaIndex's batches as one client call, and the async ones run on the
    async client itself (not a per-text ``gather``).

    The floats are Perplexity's int8 rows scaled to unit length (float32
    until LlamaIndex's list conversion): every vector store's metric (cosine,
    inner product, L2) then ranks them as int8 cosine does, up to float32
    rounding of near-ties.

    ``model_name`` and ``dimensions`` hold for documents and queries alike.
    ``codes=STORE_DIR`` keeps the int8 rows, binary codes (LSB-first) and
    texts of every document embedded in a pplx-codec store, resumable like
    ``pplx-codec embed``; a store made with another model or dimensions is
    refused, as is one filled from another ``endpoint`` (default: the base
    URL).  Each batch that brings new texts rewrites that store: with
    ``codes=``, raise ``embed_batch_size`` (default here 512, LlamaIndex's
    own is 10).  ``api_key``/``base_url`` default to ``PERPLEXITY_API_KEY`` /
    ``PERPLEXITY_BASE_URL``; ``client_options`` go to the clients.
    """

    model_name: str = Field(default=DEFAULT_MODEL, description="The Perplexity embedding model.")
    dimensions: int | None = Field(default=None, description="Matryoshka dimensions (None: the model's full size).")
    embed_batch_size: int = Field(default=512, gt=0, description="Texts per client call.")
    _embedder: Embedder = PrivateAttr()

    def __init__(self, model_name: str = DEFAULT_MODEL, dimensions: int | None = None, *,
                 api_key: str | None = None, base_url: str | None = None,
                 codes: str | os.PathLike[str] | None = None, client: Client | None = None,
                 async_client: AsyncClient | None = None, client_options: dict | None = None,
                 endpoint: str | None = None, **kwargs: Any) -> None:
        embedder = Embedder(model_name, dimensions, api_key=api_key, base_url=base_url, codes=codes, client=client,
                            async_client=async_client, source="pplx_codec.integrations.llamaindex", endpoint=endpoint,
                            **(client_options or {}))
        super().__init__(model_name=model_name, **kwargs)
        self.dimensions = embedder.dimensions  # the model's full size when None was given
        self._embedder = embedder

    @classmethod
    def class_name(cls) -> str:
        return "PerplexityEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return unit_lists(self._embedder.rows([query], documents=False))[0]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return unit_lists(await self._embedder.arows([query], documents=False))[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return (await self._aget_text_embeddings([text]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return unit_lists(self._embedder.rows(texts))

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return unit_lists(await self._embedder.arows(texts))
