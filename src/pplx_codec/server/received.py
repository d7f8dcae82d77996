"""What the server was sent, as it saw it: an opt-in log of the requests that
reached an endpoint, so that a test can show from the server's side what a
client sent (each distinct text once; only a corpus's new texts).

Off unless one is given: ``running(received=log)`` or
``create_app(config, received=log)`` (in-process servers only; it keeps
every text it is sent, so it is for tests and benchmarks, not for a
long-running server).  A request is logged when its body has been parsed and
validated against the schema, before its token limits are checked and its
vectors made; a request that auth, the body limit or an injected status
fault answered first never reaches it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

__all__ = ["Received", "ReceivedInputs"]


@dataclass(frozen=True)
class Received:
    #: ``time.monotonic()`` when the endpoint took the request
    at: float
    #: ``/v1/embeddings`` or ``/v1/contextualizedembeddings``
    endpoint: str
    #: the texts, or the documents (each a tuple of its chunks), as received
    inputs: tuple


class ReceivedInputs:
    """The requests an app's endpoints took, in arrival order (thread-safe)."""

    def __init__(self) -> None:
        self._requests: list[Received] = []
        self._lock = threading.Lock()

    def add(self, endpoint: str, inputs) -> None:
        entry = Received(time.monotonic(), endpoint,
                              tuple(tuple(d) if isinstance(d, list) else d for d in inputs))
        with self._lock:
            self._requests.append(entry)

    @property
    def requests(self) -> list[Received]:
        """A snapshot of the requests so far."""
        with self._lock:
            return list(self._requests)

    def texts(self, endpoint: str = "/v1/embeddings") -> list[str]:
        """Every text sent to ``endpoint``, request by request (chunks, for
        the contextualized one), repeats kept: what the client paid for."""
        out: list[str] = []
        for r in self.requests:
            if r.endpoint == endpoint:
                out.extend(c for d in r.inputs for c in (d if isinstance(d, tuple) else (d,)))
        return out

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._requests)
