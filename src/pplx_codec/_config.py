"""A client's configuration, checked once: the API key (from the arguments or
the environment), the base URL, httpx timeouts and the per-attempt deadline,
retries, concurrency, the request-rate budget, and the headers every
request carries.
"""

from __future__ import annotations

import math
import os

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


class Config:
    """A client's settings, checked: the key (never in a repr), where and how
    long each attempt may take, retries, concurrency, the rate budget, extra headers."""

    def __init__(self, api_key, base_url, timeout, max_retries, max_concurrency, default_headers, deadline=None,
                 max_requests_per_minute=None):
        key = api_key or os.environ.get("PERPLEXITY_API_KEY") or os.environ.get("PPLX_API_KEY")
        if not key:
            raise errors.APIError("no API key: pass api_key=... or set PERPLEXITY_API_KEY (or PPLX_API_KEY)")
        self.api_key = key
        self.base_url = (base_url or os.environ.get("PERPLEXITY_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        if timeout is None:
            timeout = httpx.Timeout(DEFAULT_TIMEOUT, connect=DEFAULT_CONNECT_TIMEOUT)
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._deadline_arg = deadline  # with_options(timeout=...) derives a default deadline afresh
        self.deadline = attempt_deadline(deadline, self.timeout)
        self.max_retries = _checks.max_retries(max_retries)
        self.max_concurrency = _checks.positive_int(max_concurrency, "max_concurrency")
        self.default_headers = dict(default_headers or {})
        #: the request-rate budget (None: no limit), shared with the clients ``with_options`` makes
        self.rate = _rate.budget(max_requests_per_minute)

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json",
                "Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING, "User-Agent": f"pplx-codec/{VERSION}",
                **self.default_headers}

    def options(self) -> dict:
        return dict(api_key=self.api_key, base_url=self.base_url, timeout=self.timeout,
                    deadline=self._deadline_arg, max_retries=self.max_retries,
                    max_concurrency=self.max_concurrency, default_headers=self.default_headers,
                    max_requests_per_minute=self.rate)
