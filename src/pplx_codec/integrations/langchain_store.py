"""LangChain: ``PerplexityVectorStore``, a ``VectorStore`` that keeps
Perplexity's int8 rows and binary codes instead of floats, searched exactly
with this package's kernels and persisted as a pplx-codec store directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from ._common import unit_floats
from ._docstore import DocRows, quantize_floats
from .langchain_embeddings import PerplexityEmbeddings

__all__ = ["PerplexityVectorStore"]


def _identity(embedding: Embeddings, dimensions: int) -> dict:
    if isinstance(embedding, PerplexityEmbeddings):
        return {"class": "PerplexityEmbeddings", "model": embedding.model, "dimensions": embedding.dimensions}
    return {"class": type(embedding).__name__, "model": None, "dimensions": dimensions}


class PerplexityVectorStore(VectorStore):
    """A LangChain vector store over this package's exact search, keeping
    int8 rows and binary codes (1 + 1/8 bytes a dimension, plus 4 bytes a row
    of cached norm) instead of float lists.

    Search: the ``k * rescore`` nearest rows by Hamming distance of the
    binary codes, rescored by exact int8 cosine (:class:`pplx_codec.Index`);
    ``exact=True``: exact int8 cosine over every row.  Ties go to the row
    added first.  Scores are cosine similarities (relevance: ``(1 + cos) / 2``).

    With :class:`PerplexityEmbeddings` the rows are the API's int8 rows,
    taken straight from the client (no float round trip), and the codes
    their sign bits, LSB-first as the API packs them.  With any other
    ``Embeddings`` the floats are quantized here, per row as the API does
    (``round(x * 127 / max|x|)``), and the codes are the sign bits of those;
    rows of a dimension that is not a multiple of 8 are padded with zero
    columns (zero bits), which changes no cosine and no Hamming distance.

    ``path``: a directory the store is kept in (a pplx-codec store with the
    ``ids``, ``metadata`` and ``deleted`` sidecars), rewritten atomically at
    each ``add_texts`` and given only the new tombstone mask at each
    ``delete``; reopen it with :meth:`load`.  Without it the store is in
    memory only.  Queries must be embedded as the documents were: a store
    reopened with an embedding of another model or dimensions is refused,
    as is a query vector of the wrong length.
    """

    def __init__(self, embedding: Embeddings, *, path: str | os.PathLike[str] | None = None,
                 exact: bool = False, rescore: int = 4, _rows: DocRows | None = None) -> None:
        self._embedding = embedding
        self.exact = exact
        self.rescore = rescore
        self._path = path
        self._rows = _rows
        if _rows is None and isinstance(embedding, PerplexityEmbeddings):
            self._rows = DocRows(embedding.dimensions, _identity(embedding, embedding.dimensions), path)

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    @property
    def path(self):
        return None if self._rows is None else self._rows.path

    def __len__(self) -> int:
        return 0 if self._rows is None else len(self._rows)

    # --- rows from the embedding ---

    def _ours(self) -> PerplexityEmbeddings | None:
        return self._embedding if isinstance(self._embedding, PerplexityEmbeddings) else None

    def _store_for(self, dim: int) -> DocRows:
        """The rows, made at the first add when the embedding's size is
        known only from its first vectors."""
        if self._rows is None:
            self._rows = DocRows(dim, _identity(self._embedding, dim), self._path)
        return self._rows

    def _query_row(self, embedding: Sequence[float] | np.ndarray) -> np.ndarray:
        return quantize_floats([embedding])[0]

    # --- adding and deleting ---

    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *, ids: list[str] | None = None,
                  **kwargs: Any) -> list[str]:
        texts = list(texts)
        ours = self._ours()
        rows = ours.embed_int8(texts) if ours is not None else quantize_floats(
            self._embedding.embed_documents(texts)).reshape(len(texts), -1)
        return self._add(rows, texts, metadatas, ids)

    async def aadd_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                         ids: list[str] | None = None, **kwargs: Any) -> list[str]:
        texts = list(texts)
        ours = self._ours()
        rows = await ours.aembed_int8(texts) if ours is not None else quantize_floats(
            await self._embedding.aembed_documents(texts)).reshape(len(texts), -1)
        return self._add(rows, texts, metadatas, ids)

    def _add(self, rows: np.ndarray, texts: list[str], metadatas, ids) -> list[str]:
        if not texts:
            return []
        return self._store_for(rows.shape[1]).add(rows, texts, metadatas, ids)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        if ids is None:
            raise ValueError("delete() needs the ids to delete (deleting every row: make a new store)")
        return False if self._rows is None else self._rows.delete(list(ids))

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        return self.delete(ids, **kwargs)

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        rows = self._rows
        if rows is None:
            return []
        return [self._doc(rows.row_of[i]) for i in ids if i in rows.row_of]

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return self.get_by_ids(ids)

    def _doc(self, r: int) -> Document:
        rows = self._rows
        assert rows is not None
        return Document(id=rows.ids[r], page_content=rows.texts[r], metadata=dict(rows.metadata[r]))

    # --- search ---

    def _search_row(self, q: np.ndarray, k: int, filter: Callable[[Document], bool] | None = None,
                    exact: bool | None = None) -> list[tuple[Document, float]]:
        rows = self._rows
        if rows is None:
            return []
        keep = None if filter is None else (lambda r: filter(self._doc(r)))
        hits = rows.search(q, k, self.exact if exact is None else exact, self.rescore, keep)
        return [(self._doc(r), s) for r, s in hits]

    def _embed_query(self, query: str) -> np.ndarray:
        ours = self._ours()
        if ours is not None:
            return ours.embed_int8([query], query=True)[0]
        return self._query_row(self._embedding.embed_query(query))

    async def _aembed_query(self, query: str) -> np.ndarray:
        ours = self._ours()
        if ours is not None:
            return (await ours.aembed_int8([query], query=True))[0]
        return self._query_row(await self._embedding.aembed_query(query))

    def similarity_search_with_score(self, query: str, k: int = 4, filter: Callable[[Document], bool] | None = None,
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        """``(document, cosine)`` of the ``k`` most similar documents, best
        first.  ``filter(document)``: keep only documents it accepts (the
        search is then exact over every row); ``exact=``: this search's."""
        if self._rows is None:
            return []
        return self._search_row(self._embed_query(query), k, filter, kwargs.get("exact"))

    async def asimilarity_search_with_score(self, query: str, k: int = 4,
                                            filter: Callable[[Document], bool] | None = None,
                                            **kwargs: Any) -> list[tuple[Document, float]]:
        if self._rows is None:
            return []
        return self._search_row(await self._aembed_query(query), k, filter, kwargs.get("exact"))

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, **kwargs)]

    async def asimilarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [d for d, _ in await self.asimilarity_search_with_score(query, k, **kwargs)]

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, **kwargs: Any) -> list[Document]:
        """Search by a float vector (quantized as documents from another
        ``Embeddings`` are: compare like with like)."""
        return [d for d, _ in self._search_row(self._query_row(embedding), k, kwargs.get("filter"),
                                               kwargs.get("exact"))]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return lambda cos: (1.0 + cos) / 2.0

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
                                      **kwargs: Any) -> list[Document]:
        return self._mmr(self._embed_query(query), k, fetch_k, lambda_mult, kwargs.get("filter"))

    async def amax_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                             lambda_mult: float = 0.5, **kwargs: Any) -> list[Document]:
        return self._mmr(await self._aembed_query(query), k, fetch_k, lambda_mult, kwargs.get("filter"))

    def max_marginal_relevance_search_by_vector(self, embedding: list[float], k: int = 4, fetch_k: int = 20,
                                                lambda_mult: float = 0.5, **kwargs: Any) -> list[Document]:
        return self._mmr(self._query_row(embedding), k, fetch_k, lambda_mult, kwargs.get("filter"))

    def _mmr(self, q: np.ndarray, k: int, fetch_k: int, lambda_mult: float, filter) -> list[Document]:
        """Maximal marginal relevance over the ``fetch_k`` best rows, on the
        int8 rows scaled to unit length (cosine, as the search ranks)."""
        rows = self._rows
        if rows is None:
            return []
        keep = None if filter is None else (lambda r: filter(self._doc(r)))
        hits = rows.search(q, max(k, fetch_k), self.exact, self.rescore, keep)
        if not hits:
            return []
        found = [r for r, _ in hits]
        # (typed as taking lists; it makes an array of whatever it is given)
        chosen = maximal_marginal_relevance(unit_floats(q[None])[0], unit_floats(rows.int8_rows(found)),  # type: ignore[arg-type]
                                            lambda_mult=lambda_mult, k=k)
        return [self._doc(found[i]) for i in chosen]

    # --- construction ---

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings, metadatas: list[dict] | None = None, *,
                   ids: list[str] | None = None, path: str | os.PathLike[str] | None = None, exact: bool = False,
                   rescore: int = 4, **kwargs: Any) -> PerplexityVectorStore:
        vs = cls(embedding, path=path, exact=exact, rescore=rescore)
        vs.add_texts(texts, metadatas, ids=ids)
        return vs

    @classmethod
    async def afrom_texts(cls, texts: list[str], embedding: Embeddings, metadatas: list[dict] | None = None, *,
                          ids: list[str] | None = None, path: str | os.PathLike[str] | None = None,
                          exact: bool = False, rescore: int = 4, **kwargs: Any) -> PerplexityVectorStore:
        vs = cls(embedding, path=path, exact=exact, rescore=rescore)
        await vs.aadd_texts(texts, metadatas, ids=ids)
        return vs

    @classmethod
    def load(cls, path: str | os.PathLike[str], embedding: Embeddings, *, exact: bool = False, rescore: int = 4,
             mmap: bool = False) -> PerplexityVectorStore:
        """Reopen the store kept at ``path``.  ``embedding`` must make the
        rows it holds: a ``PerplexityEmbeddings`` of the same model and
        dimensions, or (for a store of another ``Embeddings``) one of the
        same class and size; anything else is a ``ValueError``.  A store
        made by ``pplx-codec embed`` opens too (ids ``"0"``, ``"1"``, ...: its
        row numbers): it is then searched in place and never written, so
        changes stay in memory and that store keeps resuming and reusing
        rows as ``pplx-codec embed`` made it."""

        def check(identity: dict, dim: int) -> None:
            ours = isinstance(embedding, PerplexityEmbeddings)
            mine = _identity(embedding, embedding.dimensions if isinstance(embedding, PerplexityEmbeddings) else dim)
            if identity.get("class") != mine["class"] or (ours and identity != mine):
                raise ValueError(f"{path} holds rows of {_said(identity)}, but the embedding given is "
                                 f"{_said(mine)}: queries must be embedded as the documents were")

        return cls(embedding, path=path, exact=exact, rescore=rescore, _rows=DocRows.load(path, check, mmap))


def _said(identity: dict) -> str:
    model = f" {identity['model']}" if identity.get("model") else ""
    return f"{identity.get('class')}{model} at {identity.get('dimensions')} dimensions"
