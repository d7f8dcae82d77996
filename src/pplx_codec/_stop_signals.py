"""SIGINT and SIGTERM as one request, "stop cleanly", held as a flag (``pplx-codec serve``).

Why a flag: Python runs a signal handler between two bytecodes of whatever the
main thread runs, and that may be a finalizer or a weakref callback (importlib
runs one on nearly every import).  An exception raised there cannot propagate:
Python reports it as "Exception ignored" and drops it.  A handler that only
raised lost a stop that way: the server then served until the next signal.  So
the handler records the signal first, each step of startup reads the record
(``check``), and once a server exists the handler tells it (``serving``).  An
exception from the handler is only a shortcut out of a slow step
(``abandoning``, a model load), with the flag behind it.

Nothing here imports the server (fastapi, uvicorn: over a second), so the CLI
installs these handlers before it imports anything slow.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, Protocol

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(BaseException):
    """SIGINT or SIGTERM arrived before anything was serving: there is nothing to
    drain, so starting up is abandoned.  A BaseException, as KeyboardInterrupt
    is, so that no ``except Exception`` on the way turns it into an error."""


class Drains(Protocol):
    """A running server a stop is handed to (uvicorn's ``Server``)."""

    should_exit: bool


class Stop:
    """What SIGINT and SIGTERM do while ``stop_signals`` is in force.

    Always: note the signal (``signal``, the first one's number).  Once a server
    is serving (``serving``): set its ``should_exit``, so that it drains; while
    uvicorn's own handlers are in they do the same.  Inside ``abandoning``: also
    raise ``StopRequested`` from the first signal.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self.server: Drains | None = None
        self.abandon = False
        self.raised = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is None:
            self.signal = signum
        if self.server is not None:
            self.server.should_exit = True
        elif self.abandon and not self.raised:
            # only once: a second signal must not interrupt the first one's unwinding
            self.raised = True
            raise StopRequested(signum)

    def check(self) -> None:
        """Raise ``StopRequested`` if a stop was requested: each step of startup asks first."""
        if self.signal is not None:
            raise StopRequested(self.signal)

    def serving(self, server: Drains) -> None:
        """From here a stop drains ``server``; a stop noted before it is handed over too
        (as a ``StopRequested`` from ``check``: ``server`` has not served yet)."""
        self.server = server  # first: a signal after this line reaches the server itself
        self.check()

    @contextmanager
    def abandoning(self) -> Iterator[None]:
        """A slow step (loading the app) that a stop interrupts with ``StopRequested``.

        Should the exception be dropped (raised in a finalizer: see the module's
        docstring), the flag still holds the stop, and the step after this one
        reads it; the "Exception ignored" report of our own exception is not
        printed.  Should a library turn it into another exception (``raise
        RuntimeError(...) from e``), it is a ``StopRequested`` again here.
        """
        report = sys.unraisablehook

        def quiet(unraisable: sys.UnraisableHookArgs) -> None:
            if not isinstance(unraisable.exc_value, StopRequested):
                report(unraisable)

        sys.unraisablehook, self.abandon = quiet, True
        try:
            yield
        except BaseException as e:
            if self.signal is not None and not isinstance(e, StopRequested) and _caused_by_stop(e):
                raise StopRequested(self.signal) from e
            raise
        finally:
            self.abandon = False
            sys.unraisablehook = report
        self.check()


def _caused_by_stop(error: BaseException) -> bool:
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        e = pending.pop()
        if e is None or id(e) in seen:
            continue
        if isinstance(e, StopRequested):
            return True
        seen.add(id(e))
        pending += [e.__cause__, e.__context__]
    return False


@contextmanager
def stop_signals() -> Iterator[Stop]:
    """SIGINT and SIGTERM mean "stop cleanly" in this block (see ``Stop``).

    Reentrant: inside another ``stop_signals`` block it shares that one's state.
    Outside the main thread, which is the only one Python runs signal handlers
    in, it installs nothing (and neither does uvicorn).
    """
    if threading.current_thread() is not threading.main_thread():
        yield Stop()
        return
    outer = getattr(signal.getsignal(signal.SIGINT), "__self__", None)
    if isinstance(outer, Stop):
        yield outer
        return
    stop = Stop()
    previous: dict[int, Any] = {}  # what signal.signal returns: a handler, SIG_DFL, SIG_IGN or None
    try:
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, stop.handle)
        yield stop
    finally:
        for signum, handler in previous.items():
            if handler is not None:  # None: a handler not set from Python, which cannot be put back
                signal.signal(signum, handler)
