"""Exceptions of the API client, shaped like the official SDK's.

``APIError`` > ``APIStatusError`` (one subclass per status family) and
``APIConnectionError`` > ``APITimeoutError``; ``APIResponseValidationError``
for a 200 response whose body is not a valid embeddings response.

When a multi-request job fails, the exception raised is the one of the
failing request, with ``partial`` set to a :class:`PartialResult`: the rows
that did arrive, so a caller can resume without re-embedding them.

No message, ``repr`` or attribute here contains the API key: the response
and request objects are httpx's, whose header ``repr`` masks credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


@dataclass
class PartialResult:
    """What a failed job did produce.

    ``vectors``: the full-size output matrix, rows valid where ``filled``;
    ``filled``: bool mask per input; ``missing``: indices still to embed.
    """

    vectors: np.ndarray
    filled: np.ndarray

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


def status_error(response: Any, body: Any) -> APIStatusError:
    """The exception for a non-2xx response (body: parsed JSON, or text)."""
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
    return cls(f"Error code: {code} - {text}", response=response, body=body)
