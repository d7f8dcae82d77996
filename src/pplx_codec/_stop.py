"""Stopping a call's batches: ``Client`` runs them on worker threads, which a
KeyboardInterrupt never reaches (Python raises it in the main thread only),
so each call has a :class:`Stop` that every wait of its batches waits on.

Every wait of a batch between attempts (its turn under the rate budget, its
backoff before a retry) is ``stop.sleep(seconds)``: an ``Event`` wait, not
``time.sleep``, which ends at once, raising :class:`Stopped`, when the call
is stopped; and ``stop.check()`` comes right before each attempt is sent.
So once stopped, a call sends nothing more.  Two ways to stop:

- ``drain()``: another batch failed (its error is the call's): no batch
  starts another attempt, and the attempts in flight finish (their rows
  were paid for, and count).
- ``abort()``: the caller is gone (KeyboardInterrupt, or a bug): the same,
  and the attempts in flight end too.  ``Client``'s own transport
  (``_transport.DeadlineStream``) registers each socket wait of an attempt
  with its call's stop (``watching``), and ``abort`` shuts those sockets
  down, which ends a blocked read or send at once.  (Over another
  transport, a user's ``http_client`` or a proxy's, an attempt in flight
  ends when httpx's own waits do; the call does not wait for it.)

:func:`run_threads` runs the batches of a call on daemon threads under one
stop: a stopped call's leftover attempt can never hold the process at its
exit, as a thread pool's worker would.  ``AsyncStop`` is the same for
``AsyncClient`` (whose tasks a cancellation reaches anyway).
"""

from __future__ import annotations

import asyncio
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

__all__ = ["Stop", "AsyncStop", "Stopped", "run_threads", "SETTLE_SECONDS"]

#: How long an aborted call waits for its worker threads to end (they end at
#: once but over a transport it cannot abort) before it raises.
SETTLE_SECONDS = 0.25

B = TypeVar("B")


class Stopped(Exception):
    """A batch ended because its call was stopped: not an error of its own
    (the call raises what stopped it)."""


class Stop:
    """One sync call's stop (see the module's docstring); thread-safe."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._aborted = False
        self._waiting: set[socket.socket] = set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or raise ``Stopped`` as soon as the call is stopped."""
        if self._event.wait(seconds):
            raise Stopped

    def check(self) -> None:
        """Raise ``Stopped`` if the call is stopped: before an attempt is sent."""
        if self._event.is_set():
            raise Stopped

    def drain(self) -> None:
        """No new attempt; those in flight finish."""
        self._event.set()

    def abort(self) -> None:
        """No new attempt, and those in flight end now (their sockets shut down)."""
        with self._lock:
            self._aborted = True
            waiting = list(self._waiting)
        self._event.set()
        for sock in waiting:
            try:  # the socket's own method: an SSLSocket's would touch its TLS state from this thread
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:  # closed meanwhile
                pass

    def watching(self, sock: socket.socket) -> Watching:
        """Around one wait on ``sock`` (a read, a send, a TLS handshake):
        ``abort`` shuts it down, and the wait raises ``Stopped``, whatever the
        shut socket made it return or raise."""
        return Watching(self, sock)

    def _enter(self, sock: socket.socket) -> None:
        with self._lock:
            if self._aborted:
                raise Stopped
            self._waiting.add(sock)

    def _leave(self, sock: socket.socket) -> None:
        with self._lock:
            self._waiting.discard(sock)
            aborted = self._aborted
        if aborted:
            raise Stopped  # the abort is why the wait ended: this replaces what the wait raised


class Watching:
    """``Stop.watching``'s context: a class, not a generator, as it is entered
    around every read and send of every attempt."""

    __slots__ = ("_stop", "_sock")

    def __init__(self, stop: Stop, sock: socket.socket):
        self._stop, self._sock = stop, sock

    def __enter__(self) -> None:
        self._stop._enter(self._sock)

    def __exit__(self, *exc) -> None:
        self._stop._leave(self._sock)


class AsyncStop:
    """``AsyncClient``'s drain of a call: the same waits, with ``await``."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._event.wait(), seconds)
        except asyncio.TimeoutError:
            return
        raise Stopped

    def check(self) -> None:
        if self._event.is_set():
            raise Stopped

    def drain(self) -> None:
        self._event.set()


_DONE = object()   # a worker thread's last message


def run_threads(work: Callable[[B], int], batches: list[B], threads: int, stop: Stop,
                update: Callable[[int], None]) -> BaseException | None:
    """``work(b)`` for each batch, in order, on ``threads`` daemon threads;
    ``update(rows)`` in this thread as each one ends.  A batch's exception
    that is an ``Exception`` drains the call (the first one is returned once
    every thread has ended); anything raised in this thread meanwhile (a
    KeyboardInterrupt), or a worker's ``BaseException``, aborts it, and is
    raised after the threads ended (at most ``SETTLE_SECONDS`` later)."""
    todo = deque(batches)
    lock = threading.Lock()
    messages: queue.SimpleQueue = queue.SimpleQueue()

    def worker() -> None:
        try:
            while True:
                with lock:
                    if stop.is_set() or not todo:
                        return
                    b = todo.popleft()
                try:
                    messages.put((work(b), None))
                except BaseException as e:  # handed to the call's thread, which decides
                    messages.put((0, e))
        finally:
            messages.put(_DONE)

    alive = min(threads, len(batches))
    for i in range(alive):
        threading.Thread(target=worker, name=f"pplx-codec-{i}", daemon=True).start()
    failure: BaseException | None = None
    try:
        while alive:
            message = messages.get()
            if message is _DONE:
                alive -= 1
                continue
            rows, e = message
            if e is None:
                update(rows)
            elif isinstance(e, Stopped):
                pass
            elif isinstance(e, Exception):
                failure = failure or e
                stop.drain()
            else:
                raise e
    except BaseException:
        stop.abort()
        _settle(messages, alive)
        raise
    return failure


def _settle(messages: queue.SimpleQueue, alive: int) -> None:
    """Wait (a little) for the ``alive`` worker threads of an aborted call to
    end; a second KeyboardInterrupt ends the wait."""
    end = time.monotonic() + SETTLE_SECONDS
    try:
        while alive:
            if messages.get(timeout=max(0.0, end - time.monotonic())) is _DONE:
                alive -= 1
    except (queue.Empty, KeyboardInterrupt):
        pass
