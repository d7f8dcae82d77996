"""Fault injection, off by default: for client tests and resilience benchmarks.

Each API request (one that passed auth) gets a sequence number ``n`` in this
server process, and ``n`` with the seed alone decides its fate: one uniform
draw keyed by ``(seed, n)`` picks at most one mode by the configured rates
(cumulative, in ``MODES`` order; the rates sum to at most 1).  So a
client that sends requests one after another sees the same faults on every
run.  With concurrent requests, which request gets sequence number ``n``
depends on arrival order; with ``--workers N`` each worker counts its own.

Modes:
- ``429``: Too Many Requests with ``Retry-After: <retry_after>`` (seconds).
- ``500``: Internal Server Error.
- ``503``: Service Unavailable with ``Retry-After``.
- ``drop``: a 200 whose body stops after the head and half of the rows, then
  the connection is closed (the client sees an incomplete chunked body).
- ``slow``: a correct 200 whose rows are spread over ``slow_seconds``.
- ``shuffle``: a correct 200 with ``data`` (and each document's chunks) in a
  random order; every row keeps its ``index``.

Injected responses carry ``X-Fault-Injected: <mode>``.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .rng import key, uniform

log = logging.getLogger("pplx_codec.server")

MODES = ("429", "500", "503", "drop", "slow", "shuffle")
FAULT_HEADER = "x-fault-injected"
#: where the drawn ``Fault`` travels from the middleware to the route (an ASGI scope extension key)
FAULT_SCOPE_KEY = "pplx_codec.fault"


@dataclass(frozen=True)
class FaultConfig:
    rates: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0
    retry_after: float = 1.0
    slow_seconds: float = 2.0

    def __post_init__(self):
        rates = dict(self.rates)
        unknown = [m for m in rates if m not in MODES]
        if unknown:
            raise ValueError(f"unknown fault mode {unknown[0]!r} (known: {', '.join(MODES)})")
        for mode, rate in rates.items():
            if isinstance(rate, bool) or not (isinstance(rate, (int, float)) and 0 <= rate <= 1):
                raise ValueError(f"fault rate for {mode} must be a number in [0, 1], got {rate!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"fault seed must be an integer, got {self.seed!r}")
        if sum(rates.values()) > 1 + 1e-9:
            raise ValueError(f"fault rates add up to {sum(rates.values()):g}; one request gets at most one "
                             "fault, so they must add up to at most 1")
        if not (isinstance(self.retry_after, (int, float)) and 0 <= self.retry_after <= 3600):
            raise ValueError(f"retry_after must be between 0 and 3600 seconds, got {self.retry_after!r}")
        if not (isinstance(self.slow_seconds, (int, float)) and 0 <= self.slow_seconds <= 600):
            raise ValueError(f"slow_seconds must be between 0 and 600, got {self.slow_seconds!r}")
        object.__setattr__(self, "rates", {m: float(rates[m]) for m in MODES if rates.get(m)})

    @property
    def enabled(self) -> bool:
        return bool(self.rates)

    def to_dict(self) -> dict:
        return {"rates": dict(self.rates), "seed": self.seed, "retry_after": self.retry_after,
                "slow_seconds": self.slow_seconds}

    @classmethod
    def parse(cls, specs: list[str], **kwargs) -> FaultConfig:
        """``["429=0.1", "drop=0.05"]`` (the CLI's ``--fault``) -> FaultConfig."""
        rates = {}
        for spec in specs:
            mode, sep, rate = spec.partition("=")
            try:
                if not sep:
                    raise ValueError
                rates[mode.strip()] = float(rate)
            except ValueError:
                raise ValueError(f"--fault takes MODE=RATE (e.g. 429=0.1), got {spec!r}") from None
        return cls(rates, **kwargs)


@dataclass(frozen=True)
class Fault:
    """What happens to one request."""

    mode: str | None
    sequence: int
    seed: int

    def permutation(self, n: int, salt: int = 0) -> np.ndarray:
        """The order in which ``shuffle`` sends ``n`` rows (identity otherwise);
        ``salt`` tells apart the several orders one response needs."""
        if self.mode != "shuffle" or n < 2:
            return np.arange(n)
        return np.argsort(uniform(key(self.seed, self.sequence, 1 + salt), n), kind="stable")


class FaultPlan:
    """Hands out a ``Fault`` per request, in order, thread-safely."""

    def __init__(self, config: FaultConfig):
        self.config = config
        self._counter = itertools.count()
        self._lock = threading.Lock()
        edges, total = [], 0.0
        for mode, rate in config.rates.items():
            total += rate
            edges.append((total, mode))
        self._edges = edges

    def draw(self) -> Fault:
        with self._lock:
            n = next(self._counter)
        mode = None
        if self._edges:
            u = uniform(key(self.config.seed, n, 0), 1)[0]
            mode = next((m for edge, m in self._edges if u < edge), None)
        if mode is not None:
            log.info("request %d: injecting fault %s", n, mode)
        return Fault(mode, n, self.config.seed)


class InjectedDisconnect(Exception):
    """Raised mid-body by the ``drop`` fault: the server closes the connection."""


#: status, error type and message of each status fault
STATUS_FAULTS = {
    "429": (429, "rate_limit_error", "Rate limit exceeded (injected fault)"),
    "500": (500, "internal_server_error", "Internal server error (injected fault)"),
    "503": (503, "service_unavailable", "Service temporarily unavailable (injected fault)"),
}


def retry_after(config: FaultConfig) -> str:
    # Retry-After is delay-seconds: a non-negative integer (RFC 9110)
    return str(math.ceil(config.retry_after))


class DropFilter(logging.Filter):
    """Keeps uvicorn from logging a traceback for every injected disconnect."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not _contains(exc, InjectedDisconnect)


def _contains(exc: BaseException | None, kind: type) -> bool:
    if exc is None:
        return False
    if isinstance(exc, kind):
        return True
    group = getattr(exc, "exceptions", None)  # an exception group (builtin from 3.11, a backport on 3.10)
    if isinstance(group, tuple):
        return any(_contains(e, kind) for e in group)
    return _contains(exc.__cause__ or exc.__context__, kind)
