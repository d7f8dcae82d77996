"""LangChain's ``Embeddings``: ``PerplexityEmbeddings``, backed by this
package's client (import it from :mod:`pplx_codec.integrations.langchain`)."""

from __future__ import annotations

import os

import numpy as np
from langchain_core.embeddings import Embeddings

from ..client import AsyncClient, Client
from ..constants import DEFAULT_MODEL
from ._common import Embedder, unit_lists

__all__ = ["PerplexityEmbeddings"]


class PerplexityEmbeddings(Embeddings):
    """Perplexity embeddings for LangChain, through :class:`pplx_codec.Client`
    and :class:`pplx_codec.AsyncClient`: token-aware batching (512 inputs,
    120k tokens a request), retries, the request-rate budget, each distinct
    text paid for once, both models, Matryoshka ``dimensions``, and the
    streaming decoder (no JSON tree, no per-vector unpacking).

    The floats are Perplexity's int8 rows scaled to unit length (float32
    until LangChain's list conversion): every vector store's metric (cosine,
    inner product, L2) then ranks them as int8 cosine does, up to float32
    rounding of near-ties.

    ``model`` and ``dimensions`` hold for documents and queries alike.
    ``codes=STORE_DIR`` keeps what LangChain cannot: the int8 rows, their
    binary codes (LSB-first) and the texts of every document embedded go into
    a pplx-codec store as they arrive, resumable like ``pplx-codec embed``
    (see :class:`pplx_codec.integrations._common.CodesStore`); a store made
    with another model or dimensions is refused, and so is one filled from
    another ``endpoint`` (default: the base URL; name a reference server
    restarted on another port).  ``aembed_documents`` and
    ``aembed_query`` run on the async client itself (no thread pool), except
    documents kept in a ``codes=`` store (the store's job runs on a thread).

    ``api_key``/``base_url`` default to ``PERPLEXITY_API_KEY`` /
    ``PERPLEXITY_BASE_URL``; other keyword arguments (``max_concurrency``,
    ``max_retries``, ``timeout``, ``max_requests_per_minute``, ...) go to the
    clients.  :class:`PerplexityVectorStore` takes the int8 rows and codes
    straight from :meth:`embed_int8` (no float round trip).
    """

    def __init__(self, model: str = DEFAULT_MODEL, dimensions: int | None = None, *, api_key: str | None = None,
                 base_url: str | None = None, codes: str | os.PathLike[str] | None = None,
                 client: Client | None = None, async_client: AsyncClient | None = None, progress: bool = False,
                 endpoint: str | None = None, **client_options) -> None:
        self._embedder = Embedder(model, dimensions, api_key=api_key, base_url=base_url, codes=codes, client=client,
                                  async_client=async_client, progress=progress, endpoint=endpoint,
                                  source="pplx_codec.integrations.langchain", **client_options)

    @property
    def model(self) -> str:
        return self._embedder.model

    @property
    def dimensions(self) -> int:
        return self._embedder.dimensions

    @property
    def base_url(self) -> str:
        return self.client.base_url

    @property
    def client(self) -> Client:
        return self._embedder.client

    def __repr__(self) -> str:
        codes = self._embedder.codes
        return (f"PerplexityEmbeddings(model={self.model!r}, dimensions={self.dimensions}, "
                f"base_url={self.client.base_url!r}" + (f", codes={str(codes.path)!r})" if codes else ")"))

    # --- int8 rows, for PerplexityVectorStore and anyone who wants them ---

    def embed_int8(self, texts: list[str], *, query: bool = False) -> np.ndarray:
        """int8 ``(len(texts), dimensions)`` rows (documents go to ``codes=``, queries do not)."""
        return self._embedder.rows(texts, documents=not query)

    async def aembed_int8(self, texts: list[str], *, query: bool = False) -> np.ndarray:
        return await self._embedder.arows(texts, documents=not query)

    # --- LangChain's Embeddings ---

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return unit_lists(self.embed_int8(texts))

    def embed_query(self, text: str) -> list[float]:
        return unit_lists(self.embed_int8([text], query=True))[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return unit_lists(await self.aembed_int8(texts))

    async def aembed_query(self, text: str) -> list[float]:
        return unit_lists(await self.aembed_int8([text], query=True))[0]

    def close(self) -> None:
        """Close the client this object made (not one passed in)."""
        self._embedder.close()

