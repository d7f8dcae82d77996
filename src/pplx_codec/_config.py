"""A client's configuration, checked once: the API key (from the arguments or
the environment), the base URL, httpx timeouts and the per-attempt deadline,
retries, concurrency, the request-rate budget, and the headers every
request carries.
"""

from __future__ import annotations

import math
import os
import re

import httpx

from . import _checks, _rate, errors
from ._content_encoding import ACCEPT_ENCODING
from ._version import VERSION
from .constants import DEFAULT_BASE_URL, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT


def attempt_deadline(deadline, timeout: httpx.Timeout) -> float | None:
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


#: an HTTP header's name (RFC 9110 token) and value, as h11 checks them before sending
_NAME = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(r"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?", re.ASCII)
_CONTROLS = {"\x00": "a NUL", "\n": "a line feed", "\r": "a carriage return", "\x0b": "a vertical tab",
             "\x0c": "a form feed"}


def header_value(value, what: str) -> str:
    """``value``, checked to be sendable as an HTTP header value (else httpx
    fails at every attempt, quoting it).  The error says where it breaks the
    rule, never the value itself: it may be a secret."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    if _VALUE.fullmatch(value) and value.isascii():
        return value
    if not value.isascii():
        i = next(i for i, c in enumerate(value) if not c.isascii())
        why = f"a character that is not ASCII at position {i}"
    elif value != value.strip(" \t"):
        why = "whitespace at its start or end"
    else:
        i, c = next((i, c) for i, c in enumerate(value) if c in _CONTROLS)
        why = f"{_CONTROLS[c]} at position {i}"
    raise ValueError(f"{what} cannot be sent in an HTTP header: it holds {why} (the value is not shown)")


def headers(default_headers) -> dict[str, str]:
    """``default_headers`` (a mapping of names to values, or None), each name and value checked."""
    out = {}
    for name, value in dict(default_headers or {}).items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"default_headers: {name!r} is not an HTTP header name")
        out[name] = header_value(value, f"default_headers[{name!r}]")
    return out


class Config:
    """A client's settings, checked: the key (never in a repr), where and how
    long each attempt may take, retries, concurrency, the rate budget, extra
    headers (their values never in an error, as the key)."""

    def __init__(self, api_key, base_url, timeout, max_retries, max_concurrency, default_headers, deadline=None,
                 max_requests_per_minute=None):
        key = api_key or os.environ.get("PERPLEXITY_API_KEY") or os.environ.get("PPLX_API_KEY")
        if not key:
            raise errors.APIError("no API key: pass api_key=... or set PERPLEXITY_API_KEY (or PPLX_API_KEY)")
        self.api_key = header_value(key, "the API key")
        self.base_url = (base_url or os.environ.get("PERPLEXITY_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        if timeout is None:
            timeout = httpx.Timeout(DEFAULT_TIMEOUT, connect=DEFAULT_CONNECT_TIMEOUT)
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._deadline_arg = deadline  # with_options(timeout=...) derives a default deadline afresh
        self.deadline = attempt_deadline(deadline, self.timeout)
        self.max_retries = _checks.max_retries(max_retries)
        self.max_concurrency = _checks.positive_int(max_concurrency, "max_concurrency")
        self.default_headers = headers(default_headers)
        #: what every error the client raises masks (errors.Secrets)
        self.secrets = errors.Secrets.of(self.api_key, self.default_headers)
        #: the request-rate budget (None: no limit), shared with the clients ``with_options`` makes
        self.rate = _rate.budget(max_requests_per_minute)
        self._headers: httpx.Headers | None = None

    def headers(self) -> httpx.Headers:
        """Every request's headers, made once (httpx takes an ``httpx.Headers`` as it is; a dict
        it checks and encodes again on every request).  httpx copies them: this one is never changed."""
        if self._headers is None:
            self._headers = httpx.Headers({
                "Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json",
                "Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING, "User-Agent": f"pplx-codec/{VERSION}",
                **self.default_headers})
        return self._headers

    def options(self) -> dict:
        return dict(api_key=self.api_key, base_url=self.base_url, timeout=self.timeout,
                    deadline=self._deadline_arg, max_retries=self.max_retries,
                    max_concurrency=self.max_concurrency, default_headers=self.default_headers,
                    max_requests_per_minute=self.rate)
