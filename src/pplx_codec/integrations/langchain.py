"""LangChain (``pip install 'pplx-codec[langchain]'``): ``PerplexityEmbeddings``,
an ``Embeddings`` backed by :class:`pplx_codec.Client` / :class:`pplx_codec.AsyncClient`,
and ``PerplexityVectorStore``, a ``VectorStore`` that keeps Perplexity's int8
rows and binary codes and searches them exactly."""

from .langchain_embeddings import PerplexityEmbeddings
from .langchain_store import PerplexityVectorStore

__all__ = ["PerplexityEmbeddings", "PerplexityVectorStore"]
