"""The plan of an embedding call, with no I/O: the inputs checked (each a
text the API takes, within its token and count limits), batches of at most
512 inputs and a token budget (estimated, pplx_codec.tokens), each batch's
request body, the matrix the batches' rows are decoded into, and the result
assembled from what arrived.  The client sends; this decides.

A call pays once per distinct text (``Client.embed``): a text repeated in
the inputs (exactly: ``str`` equality, no normalisation) is sent once, at its
first occurrence, and its row is copied to the repeats when the result is
assembled.  The batches then cover the distinct texts only, and decode into
a matrix of one row per distinct text (``out``); ``inverse`` maps each output
row to its row there.  Without repeats (found with one ``set``), ``out`` is
the output itself and nothing is copied.  ``embeddings.create`` sends what it
is given, as the API would receive it, and the contextualized endpoint is not
deduplicated: a chunk's vector depends on its document.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from . import errors
from ._json_body import request_body
from ._stream import StreamDecoder
from .bits import reverse_bitorder
from .constants import (
    API_BITORDER,
    MAX_CHUNKS,
    MAX_DOCUMENTS,
    MAX_INPUT_TOKENS,
    MAX_INPUTS,
    MAX_REQUEST_TOKENS,
    TOKEN_BUDGET_SHARE,
)
from .results import ContextualizedEmbeddings, Embeddings, EmbeddingsResponse, Usage
from .settings import EmbedSettings
from .tokens import estimate_tokens


@dataclass
class Batch:
    """Inputs [start, stop) of the call (documents for the contextualized
    endpoint), output rows [row0, row1), and the inputs themselves."""

    start: int
    stop: int
    row0: int
    row1: int
    inputs: list
    doc_rows: list[int] | None
    tokens: int


class Plan:
    """A validated request plan: batches and the matrix they fill, and
    what arrives for each batch checked, counted and assembled."""

    def __init__(self, inputs, settings: EmbedSettings, token_limit: int = MAX_REQUEST_TOKENS,
                 budget_share: float = TOKEN_BUDGET_SHARE, distinct: bool = True):
        self.settings = settings
        self.model, self.dimensions, self.bitorder = settings.model, settings.dimensions, settings.bitorder
        self.encoding_format = encoding_format = settings.encoding_format
        self.contextual = contextual = settings.contextualized
        self.single = isinstance(inputs, str) and not contextual
        #: first row of each document, and the end (contextualized plans only)
        self.offsets: np.ndarray | None = None
        #: output row -> row of ``out`` (None: the same row; no text was repeated)
        self.inverse: np.ndarray | None = None
        self._repeats: np.ndarray | None = None  # output rows per row of ``out``, with repeats
        if contextual:
            docs, est = self._documents(inputs)
            counts = [len(d) for d in docs]
            self.offsets = offsets = np.zeros(len(docs) + 1, np.int64)
            np.cumsum(counts, out=offsets[1:])
            self.batches = list(self._plan_documents(docs, est, int(token_limit * budget_share)))
            n = int(offsets[-1])
            self.ninputs = len(docs)
        else:
            texts, est = self._texts(inputs)
            self.ninputs = len(texts)
            if distinct:
                texts, inverse, firsts = distinct_texts(texts)
                if inverse is not None and firsts is not None:
                    est = [est[i] for i in firsts.tolist()]
                    self.inverse, self._repeats = inverse, np.bincount(inverse, minlength=len(texts))
            self.batches = list(self._plan_texts(texts, est, int(token_limit * budget_share)))
            n = len(texts)
        #: rows of the output (inputs, or chunks); ``out`` has ``len(out)`` rows, one per text sent
        self.nrows = self.ninputs if self.inverse is not None else n
        dimensions = settings.dimensions
        width = dimensions if encoding_format == "base64_int8" else dimensions // 8
        self.out = np.empty((n, width), np.int8 if encoding_format == "base64_int8" else np.uint8)
        self.filled = np.zeros(n, bool)
        self.usage = Usage()
        self._lock = threading.Lock()  # Client's worker threads report batches done

    @classmethod
    def one_request(cls, inputs, model: str, dimensions, encoding_format: str) -> Plan:
        """``embeddings.create``: the inputs of exactly one request, rows as
        the API sends them; repeated texts are sent as given (it mirrors the API)."""
        plan = cls(inputs, EmbedSettings.for_request(model, dimensions, encoding_format, API_BITORDER),
                   budget_share=1.0, distinct=False)
        if len(plan.batches) != 1:
            raise ValueError(f"one request takes at most {MAX_INPUTS} inputs and {MAX_REQUEST_TOKENS} tokens; "
                             "use client.embed() to batch")
        return plan

    @staticmethod
    def _bounds(texts, name) -> list[int]:
        """Upper bounds of the texts' token estimates (their lengths: every
        estimated token covers at least one character), after checking each is
        a text the API takes; ``name(i)`` names text i in errors.  This runs per
        text before any request, so the common case is kept to a few C calls;
        the regex estimate (~5 us a paragraph) runs only for very long texts."""
        try:  # (one C call per text; a str subclass is a str here, as below)
            ascii = all(map(str.isascii, texts))
        except TypeError:  # not a str: the loop below names it
            ascii = False
        if ascii:
            bounds = list(map(len, texts))
            if min(bounds, default=1) > 0 and max(bounds, default=0) <= MAX_INPUT_TOKENS:
                return bounds
        bounds = [0] * len(texts)
        for i, t in enumerate(texts):  # something needs a closer look: find it, name it
            if not isinstance(t, str):
                raise TypeError(f"{name(i)} must be a str, got {type(t).__name__}")
            if not t:
                raise ValueError(f"{name(i)} is an empty string (the API rejects empty inputs)")
            try:
                t.encode("utf-8")
            except UnicodeEncodeError as e:  # a lone surrogate: not sendable as UTF-8 JSON
                raise ValueError(f"{name(i)} is not valid Unicode text ({e.reason} at character {e.start})") from None
            bounds[i] = len(t)
            if len(t) > MAX_INPUT_TOKENS:
                tokens = estimate_tokens(t)
                if tokens > MAX_INPUT_TOKENS:
                    raise ValueError(f"{name(i)} has about {tokens} tokens (estimated); the API accepts at most "
                                     f"{MAX_INPUT_TOKENS} per input")
                bounds[i] = tokens
        return bounds

    def _texts(self, inputs) -> tuple[list[str], list[int]]:
        if isinstance(inputs, str):
            inputs = [inputs]
        elif isinstance(inputs, (bytes, bytearray)) or not isinstance(inputs, Iterable):
            raise TypeError(f"texts must be a str or an iterable of str, got {type(inputs).__name__}")
        texts = inputs if isinstance(inputs, list) else list(inputs)
        est = self._bounds(texts, lambda i: f"texts[{i}]")
        if not texts:
            raise ValueError("texts is empty")
        return texts, est

    def _documents(self, inputs) -> tuple[list[list[str]], list[int]]:
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Iterable):
            raise TypeError("documents must be an iterable of documents, each a list of chunk strings")
        docs: list[list[str]] = []
        est: list[int] = []
        for d, doc in enumerate(inputs):
            if isinstance(doc, (str, bytes)) or not isinstance(doc, Sequence):
                raise TypeError(f"documents[{d}] must be a list of chunk strings, got {type(doc).__name__}")
            if not doc:
                raise ValueError(f"documents[{d}] has no chunks")
            tokens = sum(self._bounds(doc, lambda j, d=d: f"documents[{d}][{j}]"))
            if tokens > MAX_INPUT_TOKENS:  # the bound is too high: count properly
                tokens = sum(estimate_tokens(c) for c in doc)
            if tokens > MAX_INPUT_TOKENS:
                raise ValueError(f"documents[{d}] has about {tokens} tokens (estimated); the API accepts at most "
                                 f"{MAX_INPUT_TOKENS} per document")
            if len(doc) > MAX_CHUNKS:
                raise ValueError(f"documents[{d}] has {len(doc)} chunks; a request takes at most {MAX_CHUNKS}")
            docs.append(list(doc))
            est.append(tokens)
        if not docs:
            raise ValueError("documents is empty")
        return docs, est

    @staticmethod
    def _greedy(sizes: list[int], bounds: list[int], estimate, budget: int, max_items: int, max_size: int):
        """(start, stop, tokens) of consecutive groups: at most ``max_items``
        items, ``max_size`` summed ``sizes`` (chunks) and ``budget`` tokens.
        ``bounds`` are upper bounds of the token estimates (lengths); where they
        would close a group early, its items get ``estimate(i)`` first."""
        exact = [False] * len(bounds)

        def refine(lo: int, hi: int) -> int:
            for j in range(lo, hi):
                if not exact[j]:
                    bounds[j] = min(bounds[j], estimate(j))
                    exact[j] = True
            return sum(bounds[lo:hi])

        def group(start: int) -> tuple[int, int]:
            """The group from ``start``, item by item: (its stop, its tokens)."""
            tokens, size = 0, 0
            for i in range(start, len(bounds)):
                full = i - start == max_items or size + sizes[i] > max_size
                if i > start and (full or tokens + bounds[i] > budget):
                    if not full and not exact[i]:
                        tokens = refine(start, i + 1) - bounds[i]
                    if full or tokens + bounds[i] > budget:
                        return i, tokens
                tokens += bounds[i]
                size += sizes[i]
            return len(bounds), tokens

        start = 0
        while True:
            # The common case first: the next max_items fit by their bounds, which is the group the
            # loop in group() would find (nothing closes it early), at the cost of two sums in C.
            stop = min(start + max_items, len(bounds))
            tokens = sum(bounds[start:stop])
            if tokens > budget or sum(sizes[start:stop]) > max_size:
                stop, tokens = group(start)
            yield start, stop, tokens
            if stop == len(bounds):
                return
            start = stop

    def _plan_texts(self, texts: list[str], bounds: list[int], budget: int):
        for lo, hi, tokens in self._greedy([1] * len(texts), bounds, lambda j: estimate_tokens(texts[j]), budget,
                                           MAX_INPUTS, len(texts)):
            yield Batch(lo, hi, lo, hi, texts[lo:hi], None, tokens)

    def _plan_documents(self, docs: list[list[str]], bounds: list[int], budget: int):
        estimate = lambda d: sum(estimate_tokens(c) for c in docs[d])  # noqa: E731
        for lo, hi, tokens in self._greedy([len(d) for d in docs], bounds, estimate, budget, MAX_DOCUMENTS,
                                           MAX_CHUNKS):
            yield self._doc_batch(docs, lo, hi, tokens)

    def _doc_offsets(self) -> np.ndarray:
        if self.offsets is None:
            raise TypeError("not a contextualized plan: it has no documents")
        return self.offsets

    def _doc_batch(self, docs, start: int, stop: int, tokens: int) -> Batch:
        part = docs[start:stop]
        offsets = self._doc_offsets()
        return Batch(start, stop, int(offsets[start]), int(offsets[stop]), part, [len(d) for d in part], tokens)

    def halves(self, b: Batch, err: errors.UnprocessableEntityError) -> list[Batch] | None:
        """The two halves to send instead of ``b``, when ``err`` says it has
        too many tokens and it has more than one input; else None."""
        if b.stop - b.start < 2 or not _is_token_limit(err):
            return None
        h = (b.stop - b.start) // 2
        if self.contextual:
            docs = b.inputs
            return [self._doc_batch_from(docs, b.start, 0, h), self._doc_batch_from(docs, b.start, h, len(docs))]
        return [Batch(b.start, b.start + h, b.row0, b.row0 + h, b.inputs[:h], None, b.tokens // 2),
                Batch(b.start + h, b.stop, b.row0 + h, b.row1, b.inputs[h:], None, b.tokens - b.tokens // 2)]

    def _doc_batch_from(self, docs, base: int, lo: int, hi: int) -> Batch:
        row0 = int(self._doc_offsets()[base + lo])
        part = docs[lo:hi]
        n = sum(len(d) for d in part)
        return Batch(base + lo, base + hi, row0, row0 + n, part, [len(d) for d in part], 0)

    def body(self, b: Batch) -> bytes:
        """The batch's request body: what ``json.dumps(..., ensure_ascii=False)`` writes (``_json_body``)."""
        return request_body(b.inputs, {"model": self.model, "dimensions": self.dimensions,
                                       "encoding_format": self.encoding_format}, nested=self.contextual)

    def decoder(self, b: Batch) -> StreamDecoder:
        return StreamDecoder(self.out[b.row0:b.row1], b.doc_rows)

    def check(self, meta: dict) -> Usage:
        """The usage of one decoded response, after checking its other fields;
        ``ValueError`` when they are not what was asked or not the API's shape."""
        model = meta.get("model")
        if model is not None and model != self.model:
            raise ValueError(f"response is for model {model!r}, requested {self.model!r}")
        usage = Usage()
        try:
            usage.add(meta.get("usage"))
        except ValueError as e:
            raise ValueError(f"malformed response: {e}") from None
        return usage

    def rows_of(self, b: Batch) -> int:
        """Rows of the output that batch ``b`` fills (its repeats included):
        what a progress report counts."""
        if self._repeats is None:
            return b.row1 - b.row0
        return int(self._repeats[b.row0:b.row1].sum())

    def done(self, b: Batch, usage: Usage) -> None:
        """A batch's rows arrived and passed every check."""
        with self._lock:
            self.filled[b.row0:b.row1] = True
            self.usage += usage

    def partial(self) -> errors.PartialResult:
        """The rows that arrived, repeats filled from their text's row."""
        with self._lock:
            filled = self.filled.copy()
        if self.inverse is not None:
            filled = filled[self.inverse]
        return errors.PartialResult(self._converted(), filled, self.usage)

    def _converted(self) -> np.ndarray:
        """The output rows: codes in the bit order asked for (the API packs
        LSB-first), each repeated text's row copied to its repeats."""
        out = self.out
        if self.encoding_format == "base64_binary" and self.bitorder != API_BITORDER:
            out = reverse_bitorder(out, out=out)
        return out if self.inverse is None else out[self.inverse]

    def result(self):
        vectors = self._converted()
        s = self.settings
        if self.contextual:
            return ContextualizedEmbeddings(vectors, self._doc_offsets(), s.model, s.dimensions, s.encoding_format,
                                            s.bitorder, self.usage)
        return Embeddings(vectors[0] if self.single else vectors, s.model, s.dimensions, s.encoding_format,
                          s.bitorder, self.usage)

    def response(self, meta: dict) -> EmbeddingsResponse:
        """The result of ``one_request``: the rows, with the response's top-level fields."""
        return EmbeddingsResponse(self.out, meta.get("model", self.model), meta.get("usage", {}),
                                  meta.get("object", "list"))


def distinct_texts(texts: list[str]) -> tuple[list[str], np.ndarray | None, np.ndarray | None]:
    """``(distinct, inverse, firsts)``: the distinct texts of ``texts`` in the
    order of their first occurrence, ``inverse[i]`` the position of
    ``texts[i]`` among them, ``firsts[j]`` the position of ``distinct[j]``'s
    first occurrence; ``(texts, None, None)`` when no text repeats.  Texts are
    equal only when they are equal strings (no normalisation of Unicode or
    white space: the API may embed such variants differently).  The check
    for repeats is one ``set`` of the texts; only a list with repeats costs
    Python work per text."""
    if len(set(texts)) == len(texts):
        return texts, None, None
    index: dict[str, int] = {}
    inverse = np.fromiter((index.setdefault(t, len(index)) for t in texts), np.intp, len(texts))
    # new texts are numbered in order: a first occurrence is where the running maximum grows
    firsts = np.flatnonzero(np.diff(np.maximum.accumulate(inverse), prepend=-1))
    return list(index), inverse, firsts


def _is_token_limit(err: errors.UnprocessableEntityError) -> bool:
    return any("token" in str(d.get("msg", "")).lower() or "token" in str(d.get("type", "")).lower()
               for d in err.detail if isinstance(d, dict))
