"""Exceptions of the API client, shaped like the official SDK's.

``APIError`` > ``APIStatusError`` (one subclass per status family) and
``APIConnectionError`` > ``APITimeoutError``; ``APIResponseValidationError``
for a 200 response whose body is not a valid embeddings response.

When a multi-request job fails, the exception raised is the one of the
failing request, with ``partial`` set to a :class:`PartialResult`: the rows
that did arrive, so a caller can resume without re-embedding them.

No message, ``repr`` or attribute here contains the API key, nor the value
of a header the caller passed in ``default_headers`` (the client cannot tell
which of those are secrets: a proxy's key, a cookie): the client calls
:meth:`APIError._redact` on every error before raising it, which masks them
wherever a server echoed them (message, ``body``, response headers; see
:class:`Secrets`).  ``request`` is the request as sent, but for the values of
the ``default_headers``, shown as ``[redacted]``: its ``Authorization``
header holds the key, which httpx's ``repr`` of headers masks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

__all__ = [
    "APIError",
    "APIStatusError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "UnprocessableEntityError",
    "RateLimitError",
    "InternalServerError",
    "APIConnectionError",
    "APITimeoutError",
    "APIResponseValidationError",
    "PartialResult",
]

REDACTED = "[redacted]"
#: A run of a secret's first characters this long counts as the secret: a
#: message quoting a response cut at a length limit may hold only the start of it.
#: A default header's value shorter than this is not looked for in text (a
#: value "1" would mask every digit 1): only ``request`` masks it.
_KEY_PREFIX = 8


def _mask(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` (or of a run of at least
    its first ``_KEY_PREFIX`` characters) replaced by ``[redacted]``."""
    head = secret[:_KEY_PREFIX]
    if not head or head not in text:
        return text
    out: list[str] = []
    i = 0
    while (j := text.find(head, i)) >= 0:
        n = len(head)
        while n < len(secret) and j + n < len(text) and text[j + n] == secret[n]:
            n += 1
        out += (text[i:j], REDACTED)
        i = j + n
    out.append(text[i:])
    return "".join(out)


@dataclass(frozen=True)
class Secrets:
    """What a client masks in every error it raises: the API key and the
    values of its ``default_headers`` (those of ``_KEY_PREFIX`` characters or
    more) wherever they show, and the ``default_headers`` values in
    ``request``'s headers whatever their length."""

    texts: tuple[str, ...] = ()
    headers: frozenset[str] = frozenset()  # lower-case names

    @classmethod
    def of(cls, api_key: str, default_headers: Mapping[str, str]) -> Secrets:
        values = [v for v in default_headers.values() if len(v) >= _KEY_PREFIX]
        # longest first: a secret holding another is masked whole
        texts = sorted(dict.fromkeys([api_key, *values]), key=len, reverse=True)
        return cls(tuple(texts), frozenset(name.lower() for name in default_headers))

    def mask(self, text: str) -> str:
        for secret in self.texts:
            text = _mask(text, secret)
        return text

    def redact(self, value: Any) -> Any:
        """``value`` (a str, or a parsed JSON body) with the secrets masked in
        every string, keys included; other values as they are."""
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {self.redact(k): self.redact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact(v) for v in value]
        return value

    def request(self, request: Any) -> Any:
        """``request`` (an ``httpx.Request``) with its ``default_headers``
        values as ``[redacted]``: a copy, when it has any."""
        if not isinstance(request, httpx.Request) or not self.headers:
            return request
        items = request.headers.multi_items()
        masked = [(k, REDACTED if k.lower() in self.headers else v) for k, v in items]
        if masked == items:
            return request
        try:
            content: dict[str, Any] = {"content": request.content}
        except httpx.RequestNotRead:
            content = {"stream": request.stream}
        return httpx.Request(request.method, request.url, headers=masked, extensions=request.extensions, **content)


@dataclass
class PartialResult:
    """What a failed job did produce.

    ``vectors``: the full-size output matrix, rows valid where ``filled``;
    ``filled``: bool mask per input; ``missing``: indices still to embed;
    ``usage``: what the requests that did succeed cost (a
    :class:`pplx_codec.results.Usage`; None when not known).
    """

    vectors: np.ndarray
    filled: np.ndarray
    usage: Any = None

    @property
    def missing(self) -> np.ndarray:
        return np.flatnonzero(~self.filled)

    def __repr__(self) -> str:
        return f"PartialResult(filled={int(self.filled.sum())}/{self.filled.size})"


class APIError(Exception):
    """Base class of every error the client raises for an API call."""

    partial: PartialResult | None = None

    def __init__(self, message: str, *, request: Any = None, body: Any = None):
        super().__init__(message)
        self.message = message
        self.request = request
        self.body = body

    def _redact(self, secrets: Secrets) -> APIError:
        """Mask ``secrets`` (the API key, the default headers) in what this error
        shows: its message, ``body``, ``request`` and ``response`` headers (a copy
        is kept in their place when one holds them; the streamed body is never
        stored there)."""
        self.message = secrets.mask(self.message)
        self.args = tuple(secrets.mask(a) if isinstance(a, str) else a for a in self.args)
        self.body = secrets.redact(self.body)
        original = self.request
        self.request = secrets.request(original)
        response = getattr(self, "response", None)
        if isinstance(response, httpx.Response):
            items = response.headers.multi_items()
            masked = [(secrets.mask(k), secrets.mask(v)) for k, v in items]
            try:
                sent = response.request
            except RuntimeError:  # a response made by hand, never sent
                sent = None
            request = self.request if sent is original else secrets.request(sent)
            if masked != items or request is not sent:
                self.response = httpx.Response(response.status_code, headers=masked, request=request)
        return self


class APIResponseValidationError(APIError):
    """A 200 response whose body is not a well-formed embeddings response."""

    def __init__(self, message: str, *, response: Any = None, body: Any = None):
        super().__init__(message, request=getattr(response, "request", None), body=body)
        self.response = response
        self.status_code = getattr(response, "status_code", None)


class APIStatusError(APIError):
    """The API answered with a non-2xx status."""

    def __init__(self, message: str, *, response: Any, body: Any = None):
        super().__init__(message, request=getattr(response, "request", None), body=body)
        self.response = response
        self.status_code: int = response.status_code


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class UnprocessableEntityError(APIStatusError):
    """422: the request broke a validation rule; ``detail`` is the server's list
    of ``{"loc", "msg", "type"}`` entries."""

    @property
    def detail(self) -> list:
        body = self.body
        return body.get("detail", []) if isinstance(body, dict) else []


class RateLimitError(APIStatusError):
    pass


class InternalServerError(APIStatusError):
    pass


class APIConnectionError(APIError):
    def __init__(self, message: str = "Connection error.", *, request: Any = None):
        super().__init__(message, request=request)


class APITimeoutError(APIConnectionError):
    def __init__(self, message: str = "Request timed out.", *, request: Any = None):
        super().__init__(message, request=request)


_BY_STATUS = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error(response: Any, body: Any, note: str | None = None) -> APIStatusError:
    """The exception for a non-2xx response (body: parsed JSON, or text;
    ``note``: what went wrong reading it, if something did)."""
    code = response.status_code
    cls = _BY_STATUS.get(code, InternalServerError if code >= 500 else APIStatusError)
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        what = detail if isinstance(detail, str) else "; ".join(
            f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" if isinstance(d, dict) else str(d)
            for d in (detail if isinstance(detail, list) else [detail]))
    elif isinstance(body, dict) and "error" in body:
        err = body["error"]
        what = err.get("message", err) if isinstance(err, dict) else err
    else:
        what = body if isinstance(body, str) else repr(body)
    text = str(what)
    if len(text) > 500:
        text = text[:500] + "..."
    if note:
        text += f" ({note})"
    return cls(f"Error code: {code} - {text}", response=response, body=body)
