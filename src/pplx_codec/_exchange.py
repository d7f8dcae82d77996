"""One batch's POST, attempt by attempt, as a sans-IO step: the client's
loop does the I/O (send, receive the status line and headers, read chunks of
the body, sleep) and hands each event to an :class:`Exchange`, which decides
everything else: each attempt's httpx timeouts and deadline, decoding the
body into the batch's rows, what an error response or an exception means,
whether to retry and after what delay (:mod:`pplx_codec._retry`), and the
key and the default headers masked in what is raised.  ``Client`` and
``AsyncClient`` share it, so their loops differ only in ``await``.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterable

import httpx

from . import _retry, errors
from ._config import Config
from ._plan import Batch, Plan
from ._stream import StreamDecodeError, StreamDecoder
from .results import Usage

#: The most of an error response's body kept for its exception.
ERROR_BODY_LIMIT = 1 << 20
#: What can end an attempt; ``Exchange.failed`` says what each means.  A bare
#: TimeoutError is the deadline's (httpx raises its own timeout classes).
FAILURES = (StreamDecodeError, httpx.TransportError, httpx.DecodingError, errors.APIError, TimeoutError,
            asyncio.TimeoutError)


class Exchange:
    """The POST of one batch, attempt after attempt.  Per attempt the loop
    calls ``start`` (its timeouts), sends, ``arrived`` (status and headers),
    ``feed`` for each chunk of the body until it says stop, then ``end``:
    the batch's rows committed, with the response's top-level fields and
    usage, or an exception.  Whatever ended an attempt goes to ``failed``:
    the delay before the next one, or the error raised.

    Each attempt has a deadline (``Config.deadline`` seconds from its start,
    covering connecting, sending, the status line and the whole body), checked
    whenever a chunk of the body arrives; no httpx timeout of the attempt is
    longer than it, so that a wait for a chunk is bounded too.  (Within it,
    ``AsyncClient`` cancels the attempt at the deadline, and ``Client``'s own
    transport, ``_transport.DeadlineTransport``, ends every socket wait by it.)
    A response whose status is not 200 is an error whatever its body: when its
    body does not arrive whole (deadline, dropped connection, undecodable
    Content-Encoding), the error is raised with the part that did.
    """

    def __init__(self, config: Config, url: httpx.URL, plan: Plan, b: Batch):
        self.url, self.plan, self.batch = url, plan, b
        self.body = plan.body(b)
        self.headers = config.headers()
        self.timeout, self.deadline, self.max_retries = config.timeout, config.deadline, config.max_retries
        self._secrets = config.secrets
        self.rate = config.rate
        self.retries = 0
        self.started = math.inf   # time.monotonic() at the attempt's start
        self._ends = math.inf
        self._resp: httpx.Response | None = None
        self._decoder: StreamDecoder | None = None
        self._error = bytearray()

    def paced(self) -> Iterable[float]:
        """The sleeps before the next attempt may start, under the client's
        request-rate budget (none without one): each attempt takes a token."""
        return () if self.rate is None else self.rate.waits()

    def start(self) -> httpx.Timeout:
        """Begin an attempt; returns its httpx timeouts (none past the deadline)."""
        self._resp, self._decoder, self._error = None, None, bytearray()
        self.started = time.monotonic()
        d = self.deadline
        if d is None:
            self._ends = math.inf
            return self.timeout
        self._ends = self.started + d
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

    def _check(self) -> None:
        """Raise TimeoutError once the attempt's deadline has passed."""
        if time.monotonic() >= self._ends:
            raise TimeoutError("deadline")

    def arrived(self, resp: httpx.Response) -> None:
        """The status line and headers are in: a 200's body is decoded into
        the batch's rows, an error response's is kept for its exception."""
        self._resp = resp
        self._check()
        if resp.status_code == 200:
            self._decoder = self.plan.decoder(self.batch)

    def feed(self, chunk: bytes) -> bool:
        """A chunk of the body; True once the loop should stop reading (enough
        of an error body is kept)."""
        dec = self._decoder
        if dec is None:
            self._error += chunk
            if len(self._error) > ERROR_BODY_LIMIT:
                return True
            self._check()
            return False
        self._check()
        dec.feed(chunk)
        return False

    def end(self) -> tuple[dict, Usage]:
        """The body ended (or enough of an error body arrived): the response's
        top-level fields and its usage, or the error response's exception."""
        dec = self._decoder
        if dec is None:
            raise self._status_error()
        meta = dec.finish()
        try:
            return meta, self.plan.check(meta)
        except ValueError as e:
            raise errors.APIResponseValidationError(str(e), response=self._resp) from None

    def _status_error(self, note: str | None = None) -> errors.APIStatusError:
        body = self._secrets.redact(_error_body(bytes(self._error[:ERROR_BODY_LIMIT])))
        return errors.status_error(self._resp, body, note)

    def failed(self, e: BaseException) -> float:
        """Seconds to wait before the next attempt, after ``e`` (one of
        ``FAILURES``) ended this one; raises the API error it means, with the
        key and the default headers masked, when there is none.  Retried:
        what the SDK retries (connection errors, timeouts and deadlines,
        408/409/429/5xx or ``x-should-retry``), at most ``max_retries`` times.
        What is not the API's, such as a bug, is raised again as it is.  A 429
        slows down the client's rate budget, retried or not (``_rate``)."""
        err = self._api_error(e)
        wait = None
        if isinstance(err, errors.APIStatusError):
            headers = err.response.headers
            if err.status_code == 429 and self.rate is not None:
                self.rate.throttled(_retry.retry_after(headers), self.started)
            if _retry.should_retry(err.status_code, headers):
                wait = _retry.delay(self.retries, headers)
        elif isinstance(err, errors.APIConnectionError):
            wait = _retry.delay(self.retries)
        if wait is not None and self.retries < self.max_retries:
            self.retries += 1
            return wait
        raise err._redact(self._secrets)

    def _api_error(self, e: BaseException) -> errors.APIError:
        resp = self._resp
        error_response = resp is not None and resp.status_code != 200
        if isinstance(e, errors.APIError):
            return e
        deadline_passed = self.deadline is not None and (
            isinstance(e, (TimeoutError, asyncio.TimeoutError)) or  # ours (_check, or wait_for's cancellation)
            isinstance(e, httpx.TimeoutException) and time.monotonic() >= self._ends)  # a read capped at it
        if deadline_passed:
            if error_response:
                return self._status_error(f"body cut off: the {self.deadline:g} s deadline passed")
            return errors.APITimeoutError(f"Request timed out: the response was not complete within the "
                                          f"{self.deadline:g} s deadline", request=getattr(resp, "request", None))
        if isinstance(e, httpx.DecodingError):
            encoding = resp.headers.get("content-encoding") if resp is not None else None
            what = f"the body does not decode as its Content-Encoding {encoding!r} says ({e})"
            if error_response:
                return self._status_error(what)
            return errors.APIResponseValidationError(f"malformed response: {what}", response=resp)
        if isinstance(e, httpx.TransportError):
            if error_response:
                return self._status_error(f"body cut off: {type(e).__name__}: {e}")
            return _transport_error(e)
        if isinstance(e, StreamDecodeError):
            return errors.APIResponseValidationError(f"malformed response: {e}", response=resp)
        raise e


def _error_body(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _transport_error(e: httpx.TransportError) -> errors.APIConnectionError:
    """The SDK-shaped (retryable) error for an httpx transport failure."""
    if isinstance(e, httpx.TimeoutException):
        return errors.APITimeoutError(request=e.request)
    return errors.APIConnectionError(f"Connection error: {type(e).__name__}: {e}",
                                     request=getattr(e, "_request", None))
