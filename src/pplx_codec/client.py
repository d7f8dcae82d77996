"""The API client: texts in, numpy matrices out, straight from the socket.

``Client`` and ``AsyncClient`` have the same methods.  A call is planned once
(:mod:`pplx_codec._plan`: validation, each distinct text once, batches of at
most 512 inputs and a token budget, the output matrix), then each batch is POSTed and its response
body is fed, as it arrives, to a :class:`StreamDecoder` writing into that
batch's rows of the output.  Retries follow :mod:`pplx_codec._retry`; a 422
about tokens splits the batch in two.  If a batch finally fails, the
exception carries ``partial`` (rows done so far), and nothing is silently
dropped.

Every decision about an attempt (its timeouts and deadline, what a response
or an exception means, whether to retry, masking the key in what is raised)
is made by :class:`pplx_codec._exchange.Exchange`, shared by both clients;
their loops only do the I/O, the same steps with and without ``await``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence

import httpx

from . import _content_encoding, _progress, _stop, _transport, errors
from ._config import Config
from ._exchange import FAILURES, Exchange
from ._plan import Batch, Plan
from ._progress import Progress
from ._rate import Budget
from .constants import (
    API_BITORDER,
    DEFAULT_CONTEXTUALIZED_MODEL,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
)
from .results import ContextualizedEmbeddings, Embeddings, EmbeddingsResponse, Usage
from .settings import EmbedSettings

__all__ = ["Client", "AsyncClient"]


class _Base:
    _config: Config

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

    def _exchange(self, plan: Plan, b: Batch) -> Exchange:
        return Exchange(self._config, self._url(plan.contextual), plan, b)

    def __repr__(self) -> str:  # never the key
        return f"{type(self).__name__}(base_url={self.base_url!r}, max_retries={self.max_retries}, " \
               f"max_concurrency={self.max_concurrency})"

    def _url(self, contextual: bool) -> httpx.URL:
        # parsed once per client: httpx parses a str URL again on every request
        urls = self.__dict__.setdefault("_urls", {})
        url = urls.get(contextual)
        if url is None:
            url = urls[contextual] = httpx.URL(
                self.base_url + ("/v1/contextualizedembeddings" if contextual else "/v1/embeddings"))
        return url


def _texts_plan(texts, model, dimensions, encoding_format, bitorder) -> Plan:
    return Plan(texts, EmbedSettings.for_request(model, dimensions, encoding_format, bitorder))


def _documents_plan(documents, model, dimensions, encoding_format, bitorder) -> Plan:
    return Plan(documents, EmbedSettings.for_request(model, dimensions, encoding_format, bitorder,
                                                     contextualized=True))


# ---------------------------------------------------------------- sync


class _SyncEmbeddings:
    """``client.embeddings.create(...)``: one request, as the SDK does it."""

    def __init__(self, client: Client):
        self._client = client

    def create(self, *, input, model: str, dimensions: int | None = None,
               encoding_format: str = "base64_int8") -> EmbeddingsResponse:
        plan = Plan.one_request(input, model, dimensions, encoding_format)
        return plan.response(self._client._request(plan, plan.batches[0], split=False, stop=_stop.Stop()))


class Client(_Base):
    """Synchronous client.  ``max_concurrency`` requests run on worker threads
    (the decoding releases the GIL).

    ``timeout`` (seconds or an ``httpx.Timeout``, default 900 s, 5 s to
    connect) bounds each network operation; ``deadline`` (seconds, default:
    the read timeout; ``math.inf``: none) bounds each attempt of a request as
    a whole, so that a server trickling its response cannot hold it.  An
    attempt past its deadline is an ``APITimeoutError``, retried like one.
    No wait of an attempt lasts past its deadline (the DNS lookup, connecting,
    the TLS handshake, each send, each read of the status line, headers and
    body), so an attempt ends about at its deadline whatever the server
    trickles or the resolver does.  With your own ``http_client``, or a proxy
    set in the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY: this client then keeps
    httpx's transport, which applies it), the bound is httpx's: no wait
    lasts longer than ``min(timeout, deadline)`` and the deadline is checked
    as the headers and each chunk of the body arrive, so an attempt whose
    headers came ends at most about ``deadline + min(read timeout,
    deadline)`` after it started, and a server trickling the headers
    themselves is bounded per read only, and the DNS lookup not at all.  (A
    client from ``with_options`` shares its parent's transport and bounds.)
    ``AsyncClient`` cancels the attempt at the deadline itself, wherever it
    is waiting.

    ``max_requests_per_minute`` (default None: no limit) paces the client
    under the account's request rate: every attempt of every request, from
    any thread, takes a token of one bucket first (evenly spaced, one at a
    time), and a 429 slows the whole client down (no attempt before its
    ``Retry-After``, then half the rate, recovering over a minute); see
    :mod:`pplx_codec._rate`.  A :class:`pplx_codec.RateBudget` instead of a
    number is shared with the other clients given it (and a burst set).

    Ctrl-C stops a call at once, whatever its threads are waiting for (a
    turn under the rate budget, a retry's backoff, a response: over the
    client's own transport, the attempts in flight end too): nothing more is
    sent, and the ``KeyboardInterrupt`` raised carries ``partial`` (a
    :class:`pplx_codec.errors.PartialResult`, as an ``APIError`` does): the
    rows that did arrive.  A failed request ends the call's waits as well:
    no other request is sent after it, and those in flight finish."""

    def __init__(self, api_key: str | None = None, base_url: str | None = None,
                 timeout: float | httpx.Timeout | None = None, max_retries: int = DEFAULT_MAX_RETRIES,
                 max_concurrency: int = DEFAULT_MAX_CONCURRENCY, http_client: httpx.Client | None = None,
                 default_headers: dict[str, str] | None = None, deadline: float | None = None,
                 max_requests_per_minute: float | Budget | None = None) -> None:
        self._config = Config(api_key, base_url, timeout, max_retries, max_concurrency, default_headers, deadline,
                              max_requests_per_minute)
        self._own_http = http_client is None
        if http_client is None:
            limits = httpx.Limits(max_connections=max(10, self._config.max_concurrency))
            # a proxy from the environment is httpx's to apply: it does so for a client built without a transport
            transport = None if _transport.env_proxy() else _transport.DeadlineTransport(limits)
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
        straight into one matrix (row ``i`` = ``texts[i]``).  Each distinct
        text is sent once (exact ``str`` equality) and its row copied to its
        repeats; ``usage`` is what was sent, and ``progress`` counts rows of
        the result, repeats included."""
        plan = _texts_plan(texts, model, dimensions, encoding_format, bitorder)
        self._run(plan, progress)
        return plan.result()

    def embed_contextualized(self, documents: Iterable[Sequence[str]], model: str = DEFAULT_CONTEXTUALIZED_MODEL,
                             dimensions: int | None = None, encoding_format: str = "base64_int8",
                             bitorder: str = API_BITORDER,
                             progress: bool | Progress = False) -> ContextualizedEmbeddings:
        """Embed documents made of ordered chunks; ``result[d]`` is document
        ``d``'s chunk matrix."""
        plan = _documents_plan(documents, model, dimensions, encoding_format, bitorder)
        self._run(plan, progress)
        return plan.result()

    def _run(self, plan: Plan, progress) -> None:
        """The batches, one after another in this thread or on worker threads
        (``_stop.run_threads``) under one stop.  A failed batch drains the
        call: nothing more is sent, the attempts in flight finish (their rows
        count), and its error is raised with ``partial``.  A KeyboardInterrupt
        aborts it: every wait ends at once, nothing more is sent, the
        attempts in flight end, and the KeyboardInterrupt itself is raised
        with ``partial`` set, the rows that did arrive (as an error's)."""
        update, close = _progress.reporter(progress, plan.nrows, plan.model, plan.usage)
        stop = _stop.Stop()
        failure: BaseException | None = None

        def work(b: Batch) -> int:
            self._request(plan, b, True, stop)
            return plan.rows_of(b)

        try:
            if self.max_concurrency == 1 or len(plan.batches) == 1:
                for b in plan.batches:
                    update(work(b))
            else:
                failure = _stop.run_threads(work, plan.batches, self.max_concurrency, stop, update)
        except errors.APIError as e:
            failure = e
        except KeyboardInterrupt as e:
            e.partial = plan.partial()  # type: ignore[attr-defined]
            raise
        finally:
            close()
        if failure is not None:
            if isinstance(failure, errors.APIError):
                failure.partial = plan.partial()
            raise failure

    # From here to the end of the class, AsyncClient has the same code with ``await``.

    def _request(self, plan: Plan, b: Batch, split: bool, stop: _stop.Stop) -> dict:
        """POST one batch (retried); on a 422 about tokens, split it in two."""
        try:
            meta, usage = self._post(plan, b, stop)
        except errors.UnprocessableEntityError as e:
            halves = plan.halves(b, e) if split else None
            if halves is None:
                raise
            for half in halves:
                self._request(plan, half, split, stop)
            return {}
        plan.done(b, usage)
        return meta

    def _post(self, plan: Plan, b: Batch, stop: _stop.Stop) -> tuple[dict, Usage]:
        x = self._exchange(plan, b)
        while True:
            for pause in x.paced():  # the request-rate budget: a token per attempt
                stop.sleep(pause)  # (every wait ends when the call is stopped: _stop)
            stop.check()  # a stopped call sends nothing more
            timeout = x.start()
            try:
                return self._attempt(x, timeout, stop)
            except FAILURES as e:
                delay = x.failed(e)
            stop.sleep(delay)

    def _attempt(self, x: Exchange, timeout: httpx.Timeout, stop: _stop.Stop) -> tuple[dict, Usage]:
        # this thread's socket waits end by the deadline, and when the call is aborted
        _transport.ATTEMPT.ends, _transport.ATTEMPT.stop = x.ends, stop
        try:
            with self._http.stream("POST", x.url, content=x.body, headers=x.headers, timeout=timeout) as resp:
                x.arrived(resp)
                for chunk in _content_encoding.body(resp):  # inflated in bounded steps
                    if x.feed(chunk):
                        break
                return x.end()
        finally:
            _transport.ATTEMPT.ends, _transport.ATTEMPT.stop = math.inf, None


# ---------------------------------------------------------------- async


class _AsyncEmbeddings:
    def __init__(self, client: AsyncClient):
        self._client = client

    async def create(self, *, input, model: str, dimensions: int | None = None,
                     encoding_format: str = "base64_int8") -> EmbeddingsResponse:
        plan = Plan.one_request(input, model, dimensions, encoding_format)
        return plan.response(await self._client._request(plan, plan.batches[0], split=False,
                                                             stop=_stop.AsyncStop()))


class AsyncClient(_Base):
    """asyncio client with the same methods as :class:`Client` (awaitable).
    Its waits (the rate budget's, a retry's backoff) never block the loop."""

    def __init__(self, api_key: str | None = None, base_url: str | None = None,
                 timeout: float | httpx.Timeout | None = None, max_retries: int = DEFAULT_MAX_RETRIES,
                 max_concurrency: int = DEFAULT_MAX_CONCURRENCY, http_client: httpx.AsyncClient | None = None,
                 default_headers: dict[str, str] | None = None, deadline: float | None = None,
                 max_requests_per_minute: float | Budget | None = None) -> None:
        self._config = Config(api_key, base_url, timeout, max_retries, max_concurrency, default_headers, deadline,
                              max_requests_per_minute)
        self._own_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=self._config.timeout,
            limits=httpx.Limits(max_connections=max(10, self._config.max_concurrency)))
        self.embeddings = _AsyncEmbeddings(self)

    def with_options(self, **overrides) -> AsyncClient:
        """A client with some settings changed, sharing this one's connections."""
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
        """Embed any number of texts: batched, concurrent, retried, decoded
        straight into one matrix (row ``i`` = ``texts[i]``).  Each distinct
        text is sent once (exact ``str`` equality) and its row copied to its
        repeats; ``usage`` is what was sent, and ``progress`` counts rows of
        the result, repeats included."""
        plan = _texts_plan(texts, model, dimensions, encoding_format, bitorder)
        await self._run(plan, progress)
        return plan.result()

    async def embed_contextualized(self, documents: Iterable[Sequence[str]],
                                   model: str = DEFAULT_CONTEXTUALIZED_MODEL, dimensions: int | None = None,
                                   encoding_format: str = "base64_int8", bitorder: str = API_BITORDER,
                                   progress: bool | Progress = False) -> ContextualizedEmbeddings:
        """Embed documents made of ordered chunks; ``result[d]`` is document
        ``d``'s chunk matrix."""
        plan = _documents_plan(documents, model, dimensions, encoding_format, bitorder)
        await self._run(plan, progress)
        return plan.result()

    async def _run(self, plan: Plan, progress) -> None:
        update, close = _progress.reporter(progress, plan.nrows, plan.model, plan.usage)
        gate = asyncio.Semaphore(self.max_concurrency)
        stop = _stop.AsyncStop()

        async def work(b: Batch) -> None:
            async with gate:
                if stop.is_set():
                    return  # a batch failed: start nothing new, keep what is in flight
                try:
                    await self._request(plan, b, True, stop)
                except _stop.Stopped:
                    return
                except BaseException:
                    stop.drain()
                    raise
            update(plan.rows_of(b))

        try:
            results = await asyncio.gather(*(work(b) for b in plan.batches), return_exceptions=True)
        finally:
            close()
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, errors.APIError):
                raise r
        failure = next((r for r in results if isinstance(r, errors.APIError)), None)
        if failure is not None:
            failure.partial = plan.partial()
            raise failure

    # From here to the end of the class, Client has the same code without ``await``.

    async def _request(self, plan: Plan, b: Batch, split: bool, stop: _stop.AsyncStop) -> dict:
        """POST one batch (retried); on a 422 about tokens, split it in two."""
        try:
            meta, usage = await self._post(plan, b, stop)
        except errors.UnprocessableEntityError as e:
            halves = plan.halves(b, e) if split else None
            if halves is None:
                raise
            for half in halves:
                await self._request(plan, half, split, stop)
            return {}
        plan.done(b, usage)
        return meta

    async def _post(self, plan: Plan, b: Batch, stop: _stop.AsyncStop) -> tuple[dict, Usage]:
        x = self._exchange(plan, b)
        while True:
            for pause in x.paced():  # the request-rate budget: a token per attempt
                await stop.sleep(pause)  # (every wait ends when the call is stopped: _stop)
            stop.check()  # a stopped call sends nothing more
            timeout = x.start()
            try:  # cancelled at the deadline, wherever it is waiting
                return await asyncio.wait_for(self._attempt(x, timeout), x.remaining())
            except FAILURES as e:
                delay = x.failed(e)
            await stop.sleep(delay)

    async def _attempt(self, x: Exchange, timeout: httpx.Timeout) -> tuple[dict, Usage]:
        async with self._http.stream("POST", x.url, content=x.body, headers=x.headers, timeout=timeout) as resp:
            x.arrived(resp)
            async for chunk in _content_encoding.abody(resp):  # inflated in bounded steps
                if x.feed(chunk):
                    break
            return x.end()
