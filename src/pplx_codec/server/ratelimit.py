"""The per-key request rate limit, and the request log that shows it.

Perplexity limits requests per minute per API key with a leaky bucket
(API-NOTES.md); ``ServerConfig(rpm=N)`` (``serve --rpm N``) does the same:
each key has a bucket of ``rpm_burst`` requests that leaks ``N / 60`` a
second; a request that finds it full is answered 429 with ``Retry-After``
(whole seconds until it would fit) and the OpenAI-shaped error body, like the
injected 429 fault, and does not fill it.  So at most ``rpm_burst + N * W / 60``
requests of one key pass in any W seconds.  The service's bucket size is not
published: ``DEFAULT_BURST`` is ours.  With ``--workers N`` each worker
process has its own buckets.

``request_log`` (``serve --request-log FILE``): one JSON line per API request
that passed auth, appended when the limit decides on it:
``{"t": <time.time()>, "key": <first 12 hex of the key's SHA-256>, "path": ...,
"limited": <true if answered 429>}``.  The key itself is never written.
Tests read it to measure the rate a client really kept.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time

from .guards import API_PREFIX, bearer_token, error_body, send_response

DEFAULT_BURST = 5


class LeakyBucket:
    """One key's bucket, as a meter: ``admit(now)`` is 0.0 when the request
    fits (and it is counted), else the seconds until it would."""

    def __init__(self, per_minute: float, capacity: int):
        self.leak_per_second = per_minute / 60.0
        self.capacity = capacity
        self.level = 0.0
        self.last: float | None = None

    def admit(self, now: float) -> float:
        if self.last is not None:
            self.level = max(0.0, self.level - (now - self.last) * self.leak_per_second)
        self.last = now
        over = self.level + 1 - self.capacity
        if over <= 1e-9:
            self.level += 1
            return 0.0
        return over / self.leak_per_second


def key_id(token: bytes) -> str:
    """What the log says for a key: enough to tell keys apart, nothing to use."""
    return hashlib.sha256(token).hexdigest()[:12]


class RateLimit:
    """ASGI middleware: the per-key limit (``per_minute`` None: none) and the
    request log (``log_path`` None: none), for API paths only."""

    def __init__(self, app, per_minute: float | None, burst: int, log_path: str | None):
        self.app = app
        self.per_minute, self.burst, self.log_path = per_minute, burst, log_path
        self._buckets: dict[bytes, LeakyBucket] = {}
        self._lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            return await self.app(scope, receive, send)
        token = bearer_token(scope) or b""   # without auth: one bucket for all
        wait = 0.0
        if self.per_minute is not None:
            with self._lock:
                bucket = self._buckets.get(token)
                if bucket is None:
                    bucket = self._buckets[token] = LeakyBucket(self.per_minute, self.burst)
                wait = bucket.admit(time.monotonic())
        if self.log_path is not None:
            self._log(token, scope["path"], wait > 0)
        if wait > 0:
            message = f"Rate limit exceeded: {self.per_minute:g} requests per minute for this API key"
            return await send_response(send, 429, error_body(429, "rate_limit_error", message),
                                       [(b"retry-after", str(math.ceil(wait)).encode())])
        return await self.app(scope, receive, send)

    def _log(self, token: bytes, path: str, limited: bool) -> None:
        line = json.dumps({"t": time.time(), "key": key_id(token), "path": path, "limited": limited}) + "\n"
        with self._lock, open(self.log_path, "a", encoding="utf-8") as f:   # type: ignore[arg-type]
            f.write(line)


def read_log(path) -> list[dict]:
    """The request log's entries, in order."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
