"""Exceptions of the API client, shaped like the official SDK's.

``APIError`` > ``APIStatusError`` (one subclass per status family) and
``APIConnectionError`` > ``APITimeoutError``; ``APIResponseValidationError``
for a 200 response whose body is not a valid embeddings response.

When a multi-request job fails, the exception raised is the one of the
failing request, with ``partial`` set to a :class:`PartialResult`: the rows
that did arrive, so a caller can resume without re-embedding them.

No message, ``repr`` or attribute here contains the API key: the client
calls :meth:`APIError._redact` on every error before raising it, which masks
the key wherever a server echoed it (message, ``body``, response headers).
``request`` is the request as sent: its ``Authorization`` header holds the
key, which httpx's ``repr`` of headers masks.
"""

from __future__ import annotations

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
#: A run of the key's first characters this long counts as the key: a message
#: quoting a response cut at a length limit may hold only the start of it.
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


def redact(value: Any, secret: str) -> Any:
    """``value`` (a str, or a parsed JSON body) with ``secret`` masked in every
    string, keys included; other values as they are."""
    if isinstance(value, str):
        return _mask(value, secret)
    if isinstance(value, dict):
        return {redact(k, secret): redact(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secret) for v in value]
    return value


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

    def _redact(self, secret: str) -> APIError:
        """Mask ``secret`` (the API key) in what this error shows of a response:
        its message, ``body`` and ``response`` headers (a copy is kept in their
        place when a header holds it; the streamed body is never stored there)."""
        self.message = _mask(self.message, secret)
        self.args = tuple(_mask(a, secret) if isinstance(a, str) else a for a in self.args)
        self.body = redact(self.body, secret)
        response = getattr(self, "response", None)
        if isinstance(response, httpx.Response):
            items = response.headers.multi_items()
            masked = [(_mask(k, secret), _mask(v, secret)) for k, v in items]
            if masked != items:
                self.response = httpx.Response(response.status_code, headers=masked, request=response.request)
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
