"""The API client: texts in, numpy matrices out, straight from the socket.

``Client`` and ``AsyncClient`` have the same methods.  A job is planned once
(``_Job``: validation, batches of at most 512 inputs and a token budget, the
output matrix), then each batch is POSTed and its response body is fed, as
it arrives, to a :class:`StreamDecoder` writing into that batch's rows of
the output.  Retries follow :mod:`pplx_codec._retry`; a 422 about tokens
splits the batch in two.  If a batch finally fails, the exception carries
``partial`` (rows done so far), and nothing is silently dropped.

Every decision about an attempt (its timeouts and deadline, what an
exception means, whether to retry, masking the key in what is raised) is
made by :class:`_Exchange`, shared by both clients; their loops only do the
IO.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import threading
import time
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import httpcore
import httpx
import numpy as np

from . import _checks, _progress, _retry, errors
from ._progress import Progress
from ._stream import StreamDecodeError, StreamDecoder
from ._version import VERSION
from .bits import reverse_bitorder
from .constants import (
    API_BITORDER,
    DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_CONTEXTUALIZED_MODEL,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT,
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

__all__ = ["Client", "AsyncClient"]

_ERROR_BODY_LIMIT = 1 << 20
#: What can end an attempt; ``_Exchange.failed`` says what each means.  A bare
#: TimeoutError is the deadline's (httpx raises its own timeout classes).
_FAILURES = (StreamDecodeError, httpx.TransportError, httpx.DecodingError, errors.APIError, TimeoutError,
             asyncio.TimeoutError)

# ---------------------------------------------------------------- planning


@dataclass
class _Batch:
    """Inputs [start, stop) of the job (documents for the contextualized
    endpoint), output rows [row0, row1), and the inputs themselves."""

    start: int
    stop: int
    row0: int
    row1: int
    inputs: list
    doc_rows: list[int] | None
    tokens: int


class _Job:
    """A validated request plan: batches and the matrix they fill."""

    def __init__(self, inputs, settings: EmbedSettings, token_limit: int = MAX_REQUEST_TOKENS,
                 budget_share: float = TOKEN_BUDGET_SHARE):
        self.settings = settings
        self.model, self.dimensions, self.bitorder = settings.model, settings.dimensions, settings.bitorder
        self.encoding_format = encoding_format = settings.encoding_format
        self.contextual = contextual = settings.contextualized
        self.single = isinstance(inputs, str) and not contextual
        #: first row of each document, and the end (contextualized jobs only)
        self.offsets: np.ndarray | None = None
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
            self.batches = list(self._plan_texts(texts, est, int(token_limit * budget_share)))
            n = self.ninputs = len(texts)
        self.nrows = n
        dimensions = settings.dimensions
        width = dimensions if encoding_format == "base64_int8" else dimensions // 8
        self.out = np.empty((n, width), np.int8 if encoding_format == "base64_int8" else np.uint8)
        self.filled = np.zeros(n, bool)
        self.usage = Usage()

    @staticmethod
    def _bounds(texts, name) -> list[int]:
        """Upper bounds of the texts' token estimates (their lengths: every
        estimated token covers at least one character), after checking each is
        a text the API takes; ``name(i)`` names text i in errors.  This runs per
        text before any request, so the common case is kept to a few C calls;
        the regex estimate (~5 us a paragraph) runs only for very long texts."""
        if all(type(t) is str for t in texts):
            bounds = list(map(len, texts))
            if min(bounds, default=1) > 0 and max(bounds, default=0) <= MAX_INPUT_TOKENS and \
                    all(t.isascii() for t in texts):
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

        start, tokens, size = 0, 0, 0
        for i in range(len(bounds)):
            full = i - start == max_items or size + sizes[i] > max_size
            if i > start and (full or tokens + bounds[i] > budget):
                if not full and not exact[i]:
                    tokens = refine(start, i + 1) - bounds[i]
                if full or tokens + bounds[i] > budget:
                    yield start, i, tokens
                    start, tokens, size = i, 0, 0
            tokens += bounds[i]
            size += sizes[i]
        yield start, len(bounds), tokens

    def _plan_texts(self, texts: list[str], bounds: list[int], budget: int):
        for lo, hi, tokens in self._greedy([1] * len(texts), bounds, lambda j: estimate_tokens(texts[j]), budget,
                                           MAX_INPUTS, len(texts)):
            yield _Batch(lo, hi, lo, hi, texts[lo:hi], None, tokens)

    def _plan_documents(self, docs: list[list[str]], bounds: list[int], budget: int):
        estimate = lambda d: sum(estimate_tokens(c) for c in docs[d])  # noqa: E731
        for lo, hi, tokens in self._greedy([len(d) for d in docs], bounds, estimate, budget, MAX_DOCUMENTS,
                                           MAX_CHUNKS):
            yield self._doc_batch(docs, lo, hi, tokens)

    def _doc_offsets(self) -> np.ndarray:
        if self.offsets is None:
            raise TypeError("not a contextualized job: it has no documents")
        return self.offsets

    def _doc_batch(self, docs, start: int, stop: int, tokens: int) -> _Batch:
        part = docs[start:stop]
        offsets = self._doc_offsets()
        return _Batch(start, stop, int(offsets[start]), int(offsets[stop]), part, [len(d) for d in part], tokens)

    def split(self, b: _Batch) -> list[_Batch]:
        """Two halves of a batch the server found too large."""
        h = (b.stop - b.start) // 2
        if self.contextual:
            docs = b.inputs
            return [self._doc_batch_from(docs, b.start, 0, h), self._doc_batch_from(docs, b.start, h, len(docs))]
        return [_Batch(b.start, b.start + h, b.row0, b.row0 + h, b.inputs[:h], None, b.tokens // 2),
                _Batch(b.start + h, b.stop, b.row0 + h, b.row1, b.inputs[h:], None, b.tokens - b.tokens // 2)]

    def _doc_batch_from(self, docs, base: int, lo: int, hi: int) -> _Batch:
        row0 = int(self._doc_offsets()[base + lo])
        part = docs[lo:hi]
        n = sum(len(d) for d in part)
        return _Batch(base + lo, base + hi, row0, row0 + n, part, [len(d) for d in part], 0)

    def body(self, b: _Batch) -> bytes:
        return json.dumps({"input": b.inputs, "model": self.model, "dimensions": self.dimensions,
                           "encoding_format": self.encoding_format}, ensure_ascii=False).encode()

    def decoder(self, b: _Batch) -> StreamDecoder:
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

    def done(self, b: _Batch, usage: Usage) -> None:
        """A batch's rows arrived and passed every check."""
        self.filled[b.row0:b.row1] = True
        self.usage += usage

    def partial(self) -> errors.PartialResult:
        return errors.PartialResult(self._converted(), self.filled.copy(), self.usage)

    def _converted(self) -> np.ndarray:
        # The API packs LSB-first; hand codes over in the order asked for.
        if self.encoding_format == "base64_binary" and self.bitorder != API_BITORDER:
            return reverse_bitorder(self.out, out=self.out)
        return self.out

    def result(self):
        vectors = self._converted()
        common = dict(model=self.model, dimensions=self.dimensions, encoding_format=self.encoding_format,
                      bitorder=self.bitorder, usage=self.usage)
        if self.contextual:
            return ContextualizedEmbeddings(vectors, self._doc_offsets(), **common)
        return Embeddings(vectors[0] if self.single else vectors, **common)


def _is_token_limit(err: errors.APIError) -> bool:
    if not isinstance(err, errors.UnprocessableEntityError):
        return False
    return any("token" in str(d.get("msg", "")).lower() or "token" in str(d.get("type", "")).lower()
               for d in err.detail if isinstance(d, dict))


def _error_body(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


class _Exchange:
    """The POST of one batch, attempt after attempt: every decision the sync
    and async loops share, so that they only do the IO.

    Each attempt has a deadline (``_Config.deadline`` seconds from its start,
    covering connecting, sending, the status line and the whole body), checked
    whenever a chunk of the body arrives; no httpx timeout of the attempt is
    longer than it, so that a wait for a chunk is bounded too.  (Within it,
    ``AsyncClient`` cancels the attempt at the deadline, and ``Client``'s own
    transport, ``_DeadlineTransport``, ends every socket wait by it.)  A response
    whose status is not 200 is an error whatever its body: when its body
    does not arrive whole (deadline, dropped connection, undecodable
    Content-Encoding), the error is raised with the part that did.
    """

    def __init__(self, config: _Config, url: str, job: _Job, b: _Batch):
        self.url, self.job, self.batch = url, job, b
        self.body = job.body(b)
        self.headers = config.headers()
        self.timeout, self.deadline, self.max_retries = config.timeout, config.deadline, config.max_retries
        self._secret = config._api_key
        self.retries = 0
        self._ends = math.inf
        self._resp: httpx.Response | None = None
        self._error = bytearray()

    def start(self) -> httpx.Timeout:
        """Begin an attempt; returns its httpx timeouts (none past the deadline)."""
        self._resp, self._error = None, bytearray()
        d = self.deadline
        if d is None:
            self._ends = math.inf
            return self.timeout
        self._ends = time.monotonic() + d
        t = self.timeout
        cap = lambda s: d if s is None else min(s, d)  # noqa: E731
        return httpx.Timeout(connect=cap(t.connect), read=cap(t.read), write=cap(t.write), pool=cap(t.pool))

    @property
    def ends(self) -> float:
        """When the attempt's deadline passes (``time.monotonic()``; inf: never)."""
        return self._ends

    def remaining(self) -> float | None:
        """Seconds left to the attempt's deadline (None: no deadline)."""
        return None if self._ends == math.inf else max(0.0, self._ends - time.monotonic())

    def check(self) -> None:
        """Raise TimeoutError once the attempt's deadline has passed."""
        if time.monotonic() >= self._ends:
            raise TimeoutError("deadline")

    def arrived(self, resp: httpx.Response) -> StreamDecoder | None:
        """The status line and headers are in: the decoder of a 200's body, or
        None for an error response (its body goes to ``keep_error``)."""
        self._resp = resp
        self.check()
        return self.job.decoder(self.batch) if resp.status_code == 200 else None

    def keep_error(self, chunk: bytes) -> bool:
        """Keep a chunk of an error body; True once enough is kept (stop reading)."""
        self._error += chunk
        if len(self._error) > _ERROR_BODY_LIMIT:
            return True
        self.check()
        return False

    def status_error(self, note: str | None = None) -> errors.APIStatusError:
        body = errors.redact(_error_body(bytes(self._error[:_ERROR_BODY_LIMIT])), self._secret)
        return errors.status_error(self._resp, body, note)

    def finish(self, dec: StreamDecoder) -> tuple[dict, Usage]:
        """The body ended: the response's top-level fields and its usage."""
        meta = dec.finish()
        try:
            return meta, self.job.check(meta)
        except ValueError as e:
            raise errors.APIResponseValidationError(str(e), response=self._resp) from None

    def failed(self, e: BaseException) -> errors.APIError:
        """The API error for what ended an attempt (what is not the API's,
        such as a bug, is raised again as it is)."""
        resp = self._resp
        error_response = resp is not None and resp.status_code != 200
        if isinstance(e, errors.APIError):
            return e
        deadline_passed = self.deadline is not None and (
            isinstance(e, (TimeoutError, asyncio.TimeoutError)) or  # ours (check, or wait_for's cancellation)
            isinstance(e, httpx.TimeoutException) and time.monotonic() >= self._ends)  # a read capped at it
        if deadline_passed:
            if error_response:
                return self.status_error(f"body cut off: the {self.deadline:g} s deadline passed")
            return errors.APITimeoutError(f"Request timed out: the response was not complete within the "
                                          f"{self.deadline:g} s deadline", request=getattr(resp, "request", None))
        if isinstance(e, httpx.DecodingError):
            encoding = resp.headers.get("content-encoding") if resp is not None else None
            what = f"the body does not decode as its Content-Encoding {encoding!r} says ({e})"
            if error_response:
                return self.status_error(what)
            return errors.APIResponseValidationError(f"malformed response: {what}", response=resp)
        if isinstance(e, httpx.TransportError):
            if error_response:
                return self.status_error(f"body cut off: {type(e).__name__}: {e}")
            return _transport_error(e)
        if isinstance(e, StreamDecodeError):
            return errors.APIResponseValidationError(f"malformed response: {e}", response=resp)
        raise e

    def retry(self, err: errors.APIError) -> float:
        """Seconds to wait before the next attempt; raises ``err``, with the
        key masked, when there is none.  Retried: what the SDK retries
        (connection errors, timeouts and deadlines, 408/409/429/5xx or
        ``x-should-retry``), at most ``max_retries`` times."""
        if self.retries < self.max_retries:
            wait = None
            if isinstance(err, errors.APIStatusError):
                if _retry.should_retry(err.status_code, err.response.headers):
                    wait = _retry.delay(self.retries, err.response.headers)
            elif isinstance(err, errors.APIConnectionError):
                wait = _retry.delay(self.retries)
            if wait is not None:
                self.retries += 1
                return wait
        raise err._redact(self._secret)


# ---------------------------------------------------------------- configuration


def _deadline(deadline, timeout: httpx.Timeout) -> float | None:
    """Seconds one attempt may take in all (None: no limit).  By default the
    read timeout: the SDK's ``timeout`` is meant for the whole request, and
    httpx applies it to each read only."""
    if deadline is None:
        return timeout.read
    if isinstance(deadline, bool) or not isinstance(deadline, (int, float)):
        raise TypeError(f"deadline must be a number of seconds or None, got {type(deadline).__name__}")
    if not deadline > 0:
        raise ValueError(f"deadline must be positive, got {deadline!r}")
    return None if deadline == math.inf else float(deadline)


class _Config:
    def __init__(self, api_key, base_url, timeout, max_retries, max_concurrency, default_headers, deadline=None):
        key = api_key or os.environ.get("PERPLEXITY_API_KEY") or os.environ.get("PPLX_API_KEY")
        if not key:
            raise errors.APIError("no API key: pass api_key=... or set PERPLEXITY_API_KEY (or PPLX_API_KEY)")
        self._api_key = key
        self.base_url = (base_url or os.environ.get("PERPLEXITY_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        if timeout is None:
            timeout = httpx.Timeout(DEFAULT_TIMEOUT, connect=DEFAULT_CONNECT_TIMEOUT)
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._deadline_arg = deadline  # with_options(timeout=...) derives a default deadline afresh
        self.deadline = _deadline(deadline, self.timeout)
        self.max_retries = _checks.max_retries(max_retries)
        self.max_concurrency = _checks.positive_int(max_concurrency, "max_concurrency")
        self.default_headers = dict(default_headers or {})

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self._api_key}", "Content-Type": "application/json",
                "Accept": "application/json", "User-Agent": f"pplx-codec/{VERSION}", **self.default_headers}

    def options(self) -> dict:
        return dict(api_key=self._api_key, base_url=self.base_url, timeout=self.timeout,
                    deadline=self._deadline_arg, max_retries=self.max_retries,
                    max_concurrency=self.max_concurrency, default_headers=self.default_headers)


class _Base:
    _config: _Config

    @property
    def base_url(self) -> str:
        return self._config.base_url

    @property
    def max_retries(self) -> int:
        return self._config.max_retries

    @property
    def max_concurrency(self) -> int:
        return self._config.max_concurrency

    @property
    def timeout(self) -> httpx.Timeout:
        return self._config.timeout

    @property
    def deadline(self) -> float | None:
        """Seconds one attempt of a request may take in all (None: no limit)."""
        return self._config.deadline

    def _exchange(self, job: _Job, b: _Batch) -> _Exchange:
        return _Exchange(self._config, self._url(job.contextual), job, b)

    def __repr__(self) -> str:  # never the key
        return f"{type(self).__name__}(base_url={self.base_url!r}, max_retries={self.max_retries}, " \
               f"max_concurrency={self.max_concurrency})"

    def _url(self, contextual: bool) -> str:
        return self.base_url + ("/v1/contextualizedembeddings" if contextual else "/v1/embeddings")


# ---------------------------------------------------------------- sync transport: the deadline at every wait


class _AttemptEnds(threading.local):
    """When the sync attempt running in this thread must end (``time.monotonic()``).
    ``Client._attempt`` sets it around the whole exchange: a sync attempt runs
    in one thread, from connecting to the last byte of the body, so the
    sockets it waits on can find its deadline here without being told."""

    ends = math.inf  # the class attribute is every thread's default: no attempt, no deadline


_ATTEMPT = _AttemptEnds()


def _capped(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` capped at the time left to this thread's attempt; raises
    ``expired`` (an httpcore timeout) once none is left."""
    ends = _ATTEMPT.ends
    if ends == math.inf:
        return timeout
    left = ends - time.monotonic()
    if left <= 0:
        raise expired("the attempt's deadline passed")
    return left if timeout is None or timeout > left else timeout


class _DeadlineStream(httpcore.NetworkStream):
    """httpcore's socket stream, each of whose waits (a read, a send, the TLS
    handshake) ends by the deadline of the attempt running in the thread:
    httpx's timeouts bound each read, so a server sending a byte now and
    then, in its headers as well as its body, could hold a sync attempt
    forever.  One cap per read of up to 64 KiB: no per-byte work."""

    def __init__(self, stream: httpcore.NetworkStream):
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _capped(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # httpcore's own write gives each send() the whole timeout, so a server
        # reading slowly could hold one write call: cap every send instead.
        sock = self._stream.get_extra_info("socket")
        view = memoryview(buffer)
        try:
            while view:
                sock.settimeout(_capped(timeout, httpcore.WriteTimeout))
                view = view[sock.send(view):]
        except TimeoutError as e:
            raise httpcore.WriteTimeout(str(e)) from e
        except OSError as e:
            raise httpcore.WriteError(str(e)) from e

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        # (CPython bounds the whole handshake by the socket's timeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname,
                                                      _capped(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """``httpcore.SyncBackend`` making ``_DeadlineStream``s."""

    def __init__(self):
        self._backend = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options=None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._backend.connect_tcp(host, port, _capped(timeout, httpcore.ConnectTimeout),
                                                         local_address, socket_options))


#: httpcore's exceptions and the httpx ones to raise for them, the most
#: specific first (httpx's own table is private to its transport).
_HTTPCORE_ERRORS = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout), (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout), (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError), (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError), (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError), (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.ProxyError, httpx.ProxyError), (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)


@contextlib.contextmanager
def _httpx_errors():
    """httpcore's exceptions raised as httpx's, as ``httpx.HTTPTransport`` does."""
    try:
        yield
    except Exception as e:
        for core, ours in _HTTPCORE_ERRORS:
            if isinstance(e, core):
                raise ours(str(e)) from e
        raise


class _Body(httpx.SyncByteStream):
    def __init__(self, stream):
        self._stream = stream

    def __iter__(self):
        with _httpx_errors():
            yield from self._stream

    def close(self) -> None:
        with _httpx_errors():
            self._stream.close()


class _DeadlineTransport(httpx.BaseTransport):
    """What ``httpx.HTTPTransport()`` does by default (a pool of HTTP/1.1
    connections within ``limits``, kept alive; TLS verified by
    ``httpx.create_ssl_context``, which honours SSL_CERT_FILE/SSL_CERT_DIR),
    over ``_DeadlineStream``s: ``Client``'s transport when it makes its own
    httpx client and no proxy is configured (httpx reads proxies from the
    environment only for a client built without a transport)."""

    def __init__(self, limits: httpx.Limits):
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(), max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            network_backend=_DeadlineBackend())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        req = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw, content=request.stream, extensions=request.extensions)
        with _httpx_errors():
            resp = self._pool.handle_request(req)
        return httpx.Response(resp.status, headers=resp.headers, stream=_Body(resp.stream),
                              extensions=resp.extensions)

    def close(self) -> None:
        with _httpx_errors():
            self._pool.close()


def _env_proxy() -> bool:
    """Whether ``httpx.Client()`` would route some requests through a proxy
    from the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY; not when
    NO_PROXY is ``*``), by the rule httpx itself follows."""
    found = urllib.request.getproxies()
    if "*" in (h.strip() for h in found.get("no", "").split(",")):
        return False
    return any(found.get(scheme) for scheme in ("http", "https", "all"))


# ---------------------------------------------------------------- sync


class _SyncEmbeddings:
    """``client.embeddings.create(...)``: one request, as the SDK does it."""

    def __init__(self, client: Client):
        self._client = client

    def create(self, *, input, model: str, dimensions: int | None = None,
               encoding_format: str = "base64_int8") -> EmbeddingsResponse:
        job = _Job(input, EmbedSettings.for_request(model, dimensions, encoding_format, API_BITORDER), budget_share=1.0)
        if len(job.batches) != 1:
            raise ValueError(f"one request takes at most {MAX_INPUTS} inputs and {MAX_REQUEST_TOKENS} tokens; "
                             "use client.embed() to batch")
        meta = self._client._request(job, job.batches[0], split=False)
        return EmbeddingsResponse(job.out, meta.get("model", model), meta.get("usage", {}), meta.get("object", "list"))


class Client(_Base):
    """Synchronous client.  ``max_concurrency`` requests run on worker threads
    (the decoding releases the GIL).

    ``timeout`` (seconds or an ``httpx.Timeout``, default 900 s, 5 s to
    connect) bounds each network operation; ``deadline`` (seconds, default:
    the read timeout; ``math.inf``: none) bounds each attempt of a request as
    a whole, so that a server trickling its response cannot hold it.  An
    attempt past its deadline is an ``APITimeoutError``, retried like one.
    No socket wait of an attempt lasts past its deadline (connecting, the
    TLS handshake, each send, each read of the status line, headers and
    body), so an attempt ends about at its deadline whatever the server
    trickles.  With your own ``http_client``, or a proxy set in the
    environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY: this client then keeps
    httpx's transport, which applies it), the bound is httpx's: no wait
    lasts longer than ``min(timeout, deadline)`` and the deadline is checked
    as the headers and each chunk of the body arrive, so an attempt whose
    headers came ends at most about ``deadline + min(read timeout,
    deadline)`` after it started, and a server trickling the headers
    themselves is bounded per read only.  (A client from ``with_options``
    shares its parent's transport and bounds; the DNS lookup is bounded by
    neither.)  ``AsyncClient`` cancels the attempt at the deadline itself,
    wherever it is waiting."""

    def __init__(self, api_key: str | None = None, base_url: str | None = None,
                 timeout: float | httpx.Timeout | None = None, max_retries: int = DEFAULT_MAX_RETRIES,
                 max_concurrency: int = DEFAULT_MAX_CONCURRENCY, http_client: httpx.Client | None = None,
                 default_headers: dict[str, str] | None = None, deadline: float | None = None) -> None:
        self._config = _Config(api_key, base_url, timeout, max_retries, max_concurrency, default_headers, deadline)
        self._own_http = http_client is None
        if http_client is None:
            limits = httpx.Limits(max_connections=max(10, self._config.max_concurrency))
            # a proxy from the environment is httpx's to apply: it does so for a client built without a transport
            transport = None if _env_proxy() else _DeadlineTransport(limits)
            http_client = httpx.Client(timeout=self._config.timeout, limits=limits, transport=transport)
        self._http = http_client
        self.embeddings = _SyncEmbeddings(self)

    def with_options(self, **overrides) -> Client:
        """A client with some settings changed, sharing this one's connections."""
        opts = self._config.options() | overrides
        opts.setdefault("http_client", self._http)
        return Client(**opts)

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def embed(self, texts: str | Iterable[str], model: str = DEFAULT_MODEL, dimensions: int | None = None,
              encoding_format: str = "base64_int8", bitorder: str = API_BITORDER,
              progress: bool | Progress = False) -> Embeddings:
        """Embed any number of texts: batched, concurrent, retried, decoded
        straight into one matrix (row ``i`` = ``texts[i]``)."""
        job = _Job(texts, EmbedSettings.for_request(model, dimensions, encoding_format, bitorder))
        self._run(job, progress)
        return job.result()

    def embed_contextualized(self, documents: Iterable[Sequence[str]], model: str = DEFAULT_CONTEXTUALIZED_MODEL,
                             dimensions: int | None = None, encoding_format: str = "base64_int8",
                             bitorder: str = API_BITORDER,
                             progress: bool | Progress = False) -> ContextualizedEmbeddings:
        """Embed documents made of ordered chunks; ``result[d]`` is document
        ``d``'s chunk matrix."""
        job = _Job(documents, EmbedSettings.for_request(model, dimensions, encoding_format, bitorder,
                                                        contextualized=True))
        self._run(job, progress)
        return job.result()

    def _run(self, job: _Job, progress) -> None:
        update, close = _progress.reporter(progress, job.nrows, job.model, job.usage)
        pending = list(reversed(job.batches))
        failure: errors.APIError | None = None
        lock = threading.Lock()

        def work(b: _Batch) -> int:
            self._request(job, b, split=True, lock=lock)
            return b.row1 - b.row0

        try:
            if self.max_concurrency == 1 or len(pending) == 1:
                for b in reversed(pending):
                    update(work(b))
                return
            with ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="pplx-codec") as pool:
                running: set[Future[int]] = set()
                while pending or running:
                    while pending and failure is None and len(running) < self.max_concurrency:
                        running.add(pool.submit(work, pending.pop()))
                    if not running:
                        break
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for f in done:
                        try:
                            update(f.result())
                        except errors.APIError as e:
                            failure = failure or e
                    if failure is not None:
                        pending.clear()  # let the running ones finish: their rows count
        except errors.APIError as e:
            failure = e
        finally:
            close()
        if failure is not None:
            failure.partial = job.partial()
            raise failure

    def _request(self, job: _Job, b: _Batch, split: bool, lock: threading.Lock | None = None) -> dict:
        """POST one batch (retried); on a 422 about tokens, split it in two."""
        try:
            meta, usage = self._post(job, b)
        except errors.UnprocessableEntityError as e:
            if split and b.stop - b.start > 1 and _is_token_limit(e):
                for half in job.split(b):
                    self._request(job, half, split, lock)
                return {}
            raise
        if lock is None:
            job.done(b, usage)
        else:
            with lock:
                job.done(b, usage)
        return meta

    def _post(self, job: _Job, b: _Batch) -> tuple[dict, Usage]:
        x = self._exchange(job, b)
        while True:
            try:
                return self._attempt(x, x.start())
            except _FAILURES as e:
                err = x.failed(e)
            time.sleep(x.retry(err))

    def _attempt(self, x: _Exchange, timeout: httpx.Timeout) -> tuple[dict, Usage]:
        _ATTEMPT.ends = x.ends  # for _DeadlineStream: this thread's socket waits end by it
        try:
            with self._http.stream("POST", x.url, content=x.body, headers=x.headers, timeout=timeout) as resp:
                dec = x.arrived(resp)
                if dec is None:
                    for chunk in resp.iter_bytes():
                        if x.keep_error(chunk):
                            break
                    raise x.status_error()
                for chunk in resp.iter_bytes():
                    x.check()
                    dec.feed(chunk)
                return x.finish(dec)
        finally:
            _ATTEMPT.ends = math.inf


def _transport_error(e: httpx.TransportError) -> errors.APIConnectionError:
    """The SDK-shaped (retryable) error for an httpx transport failure."""
    if isinstance(e, httpx.TimeoutException):
        return errors.APITimeoutError(request=e.request)
    return errors.APIConnectionError(f"Connection error: {type(e).__name__}: {e}",
                                     request=getattr(e, "_request", None))


# ---------------------------------------------------------------- async


class _AsyncEmbeddings:
    def __init__(self, client: AsyncClient):
        self._client = client

    async def create(self, *, input, model: str, dimensions: int | None = None,
                     encoding_format: str = "base64_int8") -> EmbeddingsResponse:
        job = _Job(input, EmbedSettings.for_request(model, dimensions, encoding_format, API_BITORDER), budget_share=1.0)
        if len(job.batches) != 1:
            raise ValueError(f"one request takes at most {MAX_INPUTS} inputs and {MAX_REQUEST_TOKENS} tokens; "
                             "use client.embed() to batch")
        meta = await self._client._request(job, job.batches[0], split=False)
        return EmbeddingsResponse(job.out, meta.get("model", model), meta.get("usage", {}), meta.get("object", "list"))


class AsyncClient(_Base):
    """asyncio client with the same methods as :class:`Client` (awaitable)."""

    def __init__(self, api_key: str | None = None, base_url: str | None = None,
                 timeout: float | httpx.Timeout | None = None, max_retries: int = DEFAULT_MAX_RETRIES,
                 max_concurrency: int = DEFAULT_MAX_CONCURRENCY, http_client: httpx.AsyncClient | None = None,
                 default_headers: dict[str, str] | None = None, deadline: float | None = None) -> None:
        self._config = _Config(api_key, base_url, timeout, max_retries, max_concurrency, default_headers, deadline)
        self._own_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=self._config.timeout,
            limits=httpx.Limits(max_connections=max(10, self._config.max_concurrency)))
        self.embeddings = _AsyncEmbeddings(self)

    def with_options(self, **overrides) -> AsyncClient:
        opts = self._config.options() | overrides
        opts.setdefault("http_client", self._http)
        return AsyncClient(**opts)

    async def close(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def embed(self, texts: str | Iterable[str], model: str = DEFAULT_MODEL,
                    dimensions: int | None = None, encoding_format: str = "base64_int8",
                    bitorder: str = API_BITORDER, progress: bool | Progress = False) -> Embeddings:
        job = _Job(texts, EmbedSettings.for_request(model, dimensions, encoding_format, bitorder))
        await self._run(job, progress)
        return job.result()

    async def embed_contextualized(self, documents: Iterable[Sequence[str]],
                                   model: str = DEFAULT_CONTEXTUALIZED_MODEL, dimensions: int | None = None,
                                   encoding_format: str = "base64_int8", bitorder: str = API_BITORDER,
                                   progress: bool | Progress = False) -> ContextualizedEmbeddings:
        job = _Job(documents, EmbedSettings.for_request(model, dimensions, encoding_format, bitorder,
                                                        contextualized=True))
        await self._run(job, progress)
        return job.result()

    async def _run(self, job: _Job, progress) -> None:
        update, close = _progress.reporter(progress, job.nrows, job.model, job.usage)
        gate = asyncio.Semaphore(self.max_concurrency)
        failed = asyncio.Event()

        async def work(b: _Batch) -> None:
            async with gate:
                if failed.is_set():
                    return  # a batch failed: start nothing new, keep what is running
                try:
                    await self._request(job, b, split=True)
                except BaseException:
                    failed.set()
                    raise
            update(b.row1 - b.row0)

        try:
            results = await asyncio.gather(*(work(b) for b in job.batches), return_exceptions=True)
        finally:
            close()
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, errors.APIError):
                raise r
        failure = next((r for r in results if isinstance(r, errors.APIError)), None)
        if failure is not None:
            failure.partial = job.partial()
            raise failure

    async def _request(self, job: _Job, b: _Batch, split: bool) -> dict:
        try:
            meta, usage = await self._post(job, b)
        except errors.UnprocessableEntityError as e:
            if split and b.stop - b.start > 1 and _is_token_limit(e):
                for half in job.split(b):
                    await self._request(job, half, split)
                return {}
            raise
        job.done(b, usage)
        return meta

    async def _post(self, job: _Job, b: _Batch) -> tuple[dict, Usage]:
        x = self._exchange(job, b)
        while True:
            timeout = x.start()
            try:  # cancelled at the deadline, wherever it is waiting
                return await asyncio.wait_for(self._attempt(x, timeout), x.remaining())
            except _FAILURES as e:
                err = x.failed(e)
            await asyncio.sleep(x.retry(err))

    async def _attempt(self, x: _Exchange, timeout: httpx.Timeout) -> tuple[dict, Usage]:
        async with self._http.stream("POST", x.url, content=x.body, headers=x.headers, timeout=timeout) as resp:
            dec = x.arrived(resp)
            if dec is None:
                async for chunk in resp.aiter_bytes():
                    if x.keep_error(chunk):
                        break
                raise x.status_error()
            async for chunk in resp.aiter_bytes():
                x.check()
                dec.feed(chunk)
            return x.finish(dec)
