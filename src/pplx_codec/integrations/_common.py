"""What every framework adapter shares: one model and one size for documents
and queries alike, the clients behind them, unit-length floats from the int8
rows, and the ``codes=`` store that keeps what the frameworks cannot.

No framework is imported here: each adapter module imports its own.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import _int8, store
from ..client import AsyncClient, Client
from ..constants import API_BITORDER, DEFAULT_MODEL
from ..corpus import Source
from ..pipelines import embed_corpus
from ..settings import EmbedSettings
from ..vectors import to_float32

__all__ = ["Embedder", "CodesStore", "unit_floats", "unit_lists", "FLOATS_NOTE"]

#: what each adapter's docstring says of the floats it returns
FLOATS_NOTE = """The floats are Perplexity's int8 rows scaled to unit length (float32 until
    the framework's list conversion): every vector store's metric (cosine,
    inner product, L2) then ranks them as int8 cosine does, up to float32
    rounding of near-ties."""


def unit_floats(rows: np.ndarray) -> np.ndarray:
    """int8 rows as float32 of unit length (an all-zero row stays zero)."""
    return to_float32(np.ascontiguousarray(rows), normalize=True)


def unit_lists(rows: np.ndarray) -> list[list[float]]:
    """``unit_floats(rows).tolist()``, value for value, in about a third of its
    CPU time: what a framework's ``list[list[float]]`` costs is nearly all
    allocating and freeing float objects, and a row of int8 values has at
    most 256 distinct ones, made once per row and shared by its list
    (``_int8.unit_lists``).  The collector is paused meanwhile: the lists
    hold only floats, so no cycle can form, and without the pause it
    traverses every list built so far, again and again."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return _int8.unit_lists(np.ascontiguousarray(rows))
    finally:
        if paused:
            gc.enable()


def _texts(texts, what: str = "texts") -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"{what} must be a list of str, got {type(texts).__name__}")
    return list(texts)


class CodesStore:
    """``codes=STORE_DIR``: the int8 rows, their binary codes (LSB-first, the
    API's order) and the texts of every document embedded, kept in a
    pplx-codec store as they arrive.

    Each call embeds into the store with ``pplx-codec embed``'s pipeline
    (:func:`pplx_codec.pipelines.embed_corpus`): the corpus is the store's
    texts plus the call's new ones, so a text the store holds is not paid for
    again, a killed call resumes where it stopped (its ``.partial``), and the
    store is swapped in whole.  Each call that brings new texts rewrites the
    store (its rows are copied into the new one): embed documents in large
    batches.  A store made with another model or dimensions is refused, and
    so is one filled from another ``endpoint`` (the name of where the vectors
    come from, kept in the store as ``pplx-codec embed`` keeps it: the base
    URL unless named), so that a store never mixes two services' vectors."""

    def __init__(self, path: str | os.PathLike[str], settings: EmbedSettings, source: str, endpoint: str):
        self.path = Path(path)
        self.settings = settings
        self.source = source
        self.endpoint = endpoint
        self.check()

    def check(self) -> None:
        """Refuse a store made with another model or dimensions (queries and
        documents must be embedded alike)."""
        try:
            old = store.load(self.path)
        except FileNotFoundError:
            return
        theirs = (old.model, old.dimensions)
        mine = (self.settings.model, self.settings.dimensions)
        if theirs != mine:
            raise ValueError(f"codes store {str(self.path)!r} holds {theirs[0]} at {theirs[1]} dimensions, but this "
                             f"embedder uses {mine[0]} at {mine[1]} dimensions: documents and queries must be "
                             "embedded with one model and one size (use another codes= directory)")
        if old.meta.get("endpoint") != self.endpoint:
            raise ValueError(f"codes store {str(self.path)!r} was filled from {old.meta.get('endpoint')!r}, but this "
                             f"embedder embeds at {self.endpoint!r}: a store never mixes two services' vectors (name "
                             "a service that moved with endpoint=, e.g. a reference server restarted on another "
                             "port, or use another codes= directory)")

    def embed(self, client: Client, texts: list[str], progress: bool = False) -> np.ndarray:
        """The int8 rows of ``texts`` (row i = texts[i]), each distinct text
        embedded once and kept in the store."""
        try:
            old = store.load(self.path)
        except FileNotFoundError:
            old = None
        held = list(old.texts) if old is not None and old.texts is not None else []
        known = set(held)
        new = [t for t in dict.fromkeys(texts) if t not in known]
        if new or old is None:
            corpus = held + new
            embed_corpus(client, Source.of(corpus, self.source), str(self.path), self.settings.model,
                         self.settings.dimensions, ("int8", "binary"), API_BITORDER, progress=progress,
                         endpoint=self.endpoint)
            old = store.load(self.path)
            held = corpus
        assert old.int8 is not None
        row: dict[str, int] = {}
        for i, t in enumerate(held):
            row.setdefault(t, i)
        return np.asarray(old.int8[np.fromiter((row[t] for t in texts), np.intp, len(texts))])


class Embedder:
    """The embedding side of an adapter: ``model`` and ``dimensions`` fixed at
    construction for documents and queries alike, a :class:`Client` and an
    :class:`AsyncClient` (one per event loop: an httpx async client belongs
    to the loop it first ran on) and the optional ``codes=`` store.

    ``client_options`` go to both clients (``max_concurrency``,
    ``max_retries``, ``timeout``, ``max_requests_per_minute``, ...); the key
    and base URL default to ``PERPLEXITY_API_KEY`` / ``PERPLEXITY_BASE_URL``
    as the clients read them.  ``endpoint``: the name the ``codes=`` store
    keeps of where its vectors come from (default: the base URL)."""

    def __init__(self, model: str = DEFAULT_MODEL, dimensions: int | None = None, *, api_key: str | None = None,
                 base_url: str | None = None, codes: str | os.PathLike[str] | None = None,
                 client: Client | None = None, async_client: AsyncClient | None = None, progress: bool = False,
                 source: str = "pplx_codec.integrations", endpoint: str | None = None, **client_options) -> None:
        # codes pack 8 dimensions a byte: checked now, not at the first document
        self.settings = EmbedSettings.checked(model, dimensions, ("int8", "binary") if codes is not None else "int8")
        self._options = dict(api_key=api_key, base_url=base_url, **client_options)
        self._client = client if client is not None else Client(**self._options)
        self._own_client = client is None
        self._async_given = async_client
        self._async: dict[int, AsyncClient] = {}
        self._lock = threading.Lock()
        self.progress = progress
        self.codes = None if codes is None else CodesStore(codes, self.settings, source,
                                                           self._client.base_url if endpoint is None else endpoint)

    @property
    def model(self) -> str:
        return self.settings.model

    @property
    def dimensions(self) -> int:
        return self.settings.dimensions

    @property
    def client(self) -> Client:
        return self._client

    def aclient(self) -> AsyncClient:
        """The async client of the running event loop."""
        if self._async_given is not None:
            return self._async_given
        loop = id(asyncio.get_running_loop())
        with self._lock:
            got = self._async.get(loop)
            if got is None:
                # one entry: a client of a finished loop is dropped (its connections went with the loop)
                self._async = {loop: AsyncClient(**self._options)}
                got = self._async[loop]
        return got

    def rows(self, texts, documents: bool = True) -> np.ndarray:
        """int8 ``(len(texts), dimensions)`` rows; documents go through the
        ``codes=`` store when there is one (queries never do)."""
        texts = _texts(texts)
        if not texts:
            return np.empty((0, self.dimensions), np.int8)
        if documents and self.codes is not None:
            return self.codes.embed(self._client, texts, self.progress)
        return self._client.embed(texts, model=self.model, dimensions=self.dimensions,
                                  progress=self.progress and documents).vectors

    async def arows(self, texts, documents: bool = True) -> np.ndarray:
        """:meth:`rows` on the async client (natively: no thread), but for
        documents kept in a ``codes=`` store, whose resumable job writes
        files and runs on a worker thread."""
        texts = _texts(texts)
        if not texts:
            return np.empty((0, self.dimensions), np.int8)
        if documents and self.codes is not None:
            return await asyncio.to_thread(self.rows, texts, True)
        got = await self.aclient().embed(texts, model=self.model, dimensions=self.dimensions,
                                         progress=self.progress and documents)
        return got.vectors

    def close(self) -> None:
        if self._own_client:
            self._client.close()
