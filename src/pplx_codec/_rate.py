"""The request-rate budget: at most so many requests per minute, for every
thread and task of a client (and, on Dask, every worker of a job).

The account's limit is on requests per minute per key (a leaky bucket, says
API-NOTES.md), so the client paces itself with a token bucket: every ATTEMPT
of a request (a retry too) takes a token before it is sent.

:class:`RatePolicy` is the policy, sans-IO: given the time (any clock, passed
in), it says when the next attempt may start.  It is the generic cell rate
algorithm (GCRA), a token bucket kept as one "theoretical arrival time":

- ``per_minute`` requests per minute, evenly spaced (one every
  ``60 / per_minute`` s), and at most ``burst`` at once after a quiet spell.
  In any 60 s window at most ``per_minute + burst`` attempts start.
- On a 429 (the server said we are too fast, whatever we were told), the
  budget slows down for the whole client: no attempt starts before the
  server's ``Retry-After`` has passed (the bucket restarts empty then, so the
  waiting requests do not burst at once), and the rate is halved
  (multiplicative decrease, never below 1/16 of the configured rate), then
  recovers linearly to the configured rate over ``RECOVERY_SECONDS``
  (additive increase).  Several requests in flight that meet 429s together
  halve the rate once: only a 429 to an attempt sent after the last slowdown
  slows down again.

:class:`RateBudget` shares one policy between threads (a lock held for the
arithmetic only, never while sleeping): ``for pause in budget.waits():
sleep(pause)`` before each attempt, the same loop with ``time.sleep`` and
``await asyncio.sleep``.  An attempt whose slot falls inside a pause that a
429 started meanwhile takes a new slot after it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol, runtime_checkable

#: A 429 multiplies the rate by this ...
SLOWDOWN = 0.5
#: ... never below this share of the configured rate ...
MIN_SHARE = 1 / 16
#: ... and the configured rate comes back over this many seconds from none (linearly).
RECOVERY_SECONDS = 60.0
#: Requests that may start at once after a quiet spell: 1, evenly spaced (what any
#: leaky bucket at a higher rate accepts, whatever its size).
DEFAULT_BURST = 1
#: ``RatePolicy.waits``'s lock when there are no threads (nullcontext is reusable)
NO_LOCK = nullcontext()


#: The slowest rate a budget takes: one request a day.  A slower pace is not one a job waits
#: for, and the bound keeps every wait the budget implies (a day between requests, 16 days
#: while a 429's slowdown lasts) far inside what ``time.sleep`` and ``Event.wait`` take:
#: a rate such as 1e-9 a minute asks for a wait of 1,900 years, and they raise OverflowError
#: (after the first request went out, at the second one's wait).  No bound above: a huge
#: rate only paces nothing, as no limit does.
MIN_PER_MINUTE = 1 / 1440
#: The range, as messages state it.
RATE_RANGE = "a finite number of requests per minute >= 1/1440 (one a day)"


def checked_per_minute(per_minute, name: str = "max_requests_per_minute", unlimited: str = "or None (no limit)"
                       ) -> float:
    """``per_minute`` as a float, when it is a rate a budget takes; else a
    ``ValueError`` naming ``name`` and the range, and ``unlimited``: how to
    ask for no limit (refused before any request)."""
    try:
        value = float(per_minute) if isinstance(per_minute, (int, float)) and not isinstance(per_minute, bool) \
            else math.nan
    except OverflowError:  # an int beyond any float
        value = math.inf
    if not MIN_PER_MINUTE <= value < math.inf:
        raise ValueError(f"{name} must be {RATE_RANGE}{', ' + unlimited if unlimited else ''}, got {per_minute!r}")
    return value


def checked_rate(per_minute, burst) -> tuple[float, int]:
    value = checked_per_minute(per_minute)
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise ValueError(f"burst must be a positive integer, got {burst!r}")
    return value, burst


class RatePolicy:
    """When each attempt may start (see the module's docstring); pure: every
    method takes the time ``now`` from the caller's clock, and nothing sleeps."""

    def __init__(self, per_minute: float, burst: int = DEFAULT_BURST):
        self.per_minute, self.burst = checked_rate(per_minute, burst)
        self._tau = (self.burst - 1) * 60.0 / self.per_minute   # how far ahead of time the bucket lets a start be
        self._tat = -math.inf        # the theoretical arrival time: the bucket is empty at tat - tau
        self.pause_until = -math.inf
        self._cut_at = -math.inf     # the last slowdown, and the rate it left
        self._cut_rate = self.per_minute

    def rate(self, now: float) -> float:
        """Requests per minute at ``now``: the configured rate, or less while
        recovering from a slowdown."""
        if self._cut_at == -math.inf:
            return self.per_minute
        recovered = self._cut_rate + self.per_minute * (now - self._cut_at) / RECOVERY_SECONDS
        return min(self.per_minute, recovered)

    def reserve(self, now: float) -> float:
        """Take a token: the time (>= ``now``) the attempt may start."""
        start = max(now, self._tat - self._tau, self.pause_until)
        self._tat = max(self._tat, start) + 60.0 / self.rate(start)
        return start

    def admits(self, start: float) -> bool:
        """Whether a slot from ``reserve`` still stands (no pause began over it since)."""
        return start >= self.pause_until

    def waits(self, clock, lock: AbstractContextManager = NO_LOCK) -> Iterator[float]:
        """The sleeps before one attempt may start (sleep each; when the
        iteration ends, the attempt goes): its slot, and a new one should a
        429 have begun a pause over it meanwhile.  ``clock()`` is the time;
        ``lock`` is held around each look at the policy, never while sleeping."""
        while True:
            with lock:
                now = clock()
                start = self.reserve(now)
            if start <= now:
                return
            yield start - now
            with lock:
                if self.admits(start):
                    return

    def throttled(self, now: float, wait: float | None, sent_at: float) -> None:
        """A 429 came at ``now`` to the attempt that started at ``sent_at``;
        the server asked for ``wait`` seconds (None: it did not say)."""
        until = now + max(0.0, wait or 0.0)
        self.pause_until = max(self.pause_until, until)
        self._tat = max(self._tat, self.pause_until + self._tau)   # empty at the pause's end: no burst then
        if sent_at >= self._cut_at:   # sent at the present pace: too fast still
            self._cut_rate = max(self.rate(now) * SLOWDOWN, self.per_minute * MIN_SHARE)
            self._cut_at = now


@runtime_checkable
class Budget(Protocol):
    """What a client's request loop asks of a rate budget (:class:`RateBudget`,
    or the Dask embed's cluster-wide one)."""

    def waits(self) -> Iterable[float]:
        """Seconds to sleep, one after another, before the next attempt may start."""
        ...

    def throttled(self, wait: float | None, sent_at: float) -> None:
        """A 429 to an attempt started at ``sent_at`` (``time.monotonic()``);
        ``wait``: the seconds the server asked for (None: not said)."""
        ...


class RateBudget:
    """A request-rate budget of ``per_minute`` requests a minute, ``burst`` at
    once, shared by all the threads and tasks of the clients given it:
    ``Client(max_requests_per_minute=110)`` makes one for the client (and the
    clients ``with_options`` derives from it); pass one ``RateBudget`` to
    several clients that use the same key to share it."""

    def __init__(self, per_minute: float, burst: int = DEFAULT_BURST, clock=time.monotonic):
        self.policy = RatePolicy(per_minute, burst)
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def per_minute(self) -> float:
        return self.policy.per_minute

    @property
    def burst(self) -> int:
        return self.policy.burst

    def waits(self) -> Iterator[float]:
        return self.policy.waits(self._clock, self._lock)

    def throttled(self, wait: float | None, sent_at: float) -> None:
        with self._lock:
            self.policy.throttled(self._clock(), wait, sent_at)

    def __repr__(self) -> str:
        return f"RateBudget(per_minute={self.per_minute:g}, burst={self.burst})"


def budget(value) -> Budget | None:
    """A client's ``max_requests_per_minute``: None (no limit), a number (a
    budget of its own) or a budget to share."""
    if value is None:
        return None
    if isinstance(value, Budget):
        return value
    return RateBudget(value)  # (its policy checks the number)
