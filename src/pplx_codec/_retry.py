"""The retry policy, in one place, for the sync and async clients.

Same rules as the official SDK: retry connection errors, timeouts, 408, 409,
429 and >= 500; never 400/401/403/404/422; an ``x-should-retry`` header
overrides the status rule; ``retry-after-ms`` / ``Retry-After`` (seconds or
an HTTP date) between 0 and 60 s sets the wait; otherwise
``min(0.5 * 2**n, 8)`` seconds times a jitter in [0.75, 1].
"""

from __future__ import annotations

import email.utils
import random
import time

INITIAL_DELAY = 0.5
MAX_DELAY = 8.0
MAX_RETRY_AFTER = 60.0
_RETRY_STATUS = {408, 409, 429}


def should_retry(status: int, headers) -> bool:
    forced = (headers.get("x-should-retry") or "").strip().lower()
    if forced == "true":
        return True
    if forced == "false":
        return False
    return status in _RETRY_STATUS or status >= 500


def retry_after(headers) -> float | None:
    """Seconds the server asked us to wait, when it asked for 0..60 s."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            wait = float(ms) / 1000.0
        except ValueError:
            wait = None
        if wait is not None and 0 <= wait <= MAX_RETRY_AFTER:
            return wait
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        wait = float(value)
    except ValueError:
        when = email.utils.parsedate_tz(value)
        if when is None:
            return None
        wait = email.utils.mktime_tz(when) - time.time()
    return wait if 0 <= wait <= MAX_RETRY_AFTER else None


def delay(retries_done: int, headers=None, rng: random.Random | None = None) -> float:
    """How long to sleep before retry number ``retries_done + 1``."""
    asked = retry_after(headers)
    if asked is not None:
        return asked
    base = min(INITIAL_DELAY * 2.0 ** retries_done, MAX_DELAY)
    return base * (1 - 0.25 * (rng or random).random())
