"""What every command of ``pplx-codec`` shares: bad input said in one line
(``Refused``, which ``cli.main`` prints after the command's name, exit code
2), the one place that turns errors into it (``refusing``), the argparse
type of a bounded integer (``at_least``), the client's ``--rpm`` (``rpm``),
and a Ctrl-C that lets a command save what it did (``saves_on_ctrl_c``)."""

from __future__ import annotations

import argparse
import functools
import os
import signal
import threading
import time
from contextlib import contextmanager

from ._rate import RATE_RANGE, checked_per_minute

__all__ = ["Refused", "refusing", "os_error", "at_least", "rpm", "saves_on_ctrl_c", "CTRL_C_GRACE"]

#: Seconds after a Ctrl-C in which another one is ignored (see ``saves_on_ctrl_c``).
CTRL_C_GRACE = 2.0


class Refused(Exception):
    """Bad input, said in one line: ``main`` prints it after the command's name and exits 2."""


@contextmanager
def refusing(path: str | None = None, action: str = "read"):
    """The one place where a command's bad input becomes ``Refused``: a
    ``ValueError`` or ``TypeError`` with its own message (a file that is not
    UTF-8 is one, naming the file and line: see corpus.read_texts); an
    ``OSError`` as what went wrong with the user's ``path`` when the command
    tried to ``action`` it ("read", "write --out"), with the cause, not the
    name of some file the package made or opened inside it."""
    try:
        yield
    except OSError as e:
        raise Refused(os_error(e, path, action)) from None
    except (ValueError, TypeError) as e:
        raise Refused(str(e)) from None


def os_error(e: OSError, path: str | None, action: str) -> str:
    if e.errno is None or path is None:  # this package's own messages name the path already
        return str(e)
    cause = e.strerror or str(e)
    if e.filename is not None and not isinstance(e.filename, int):
        mine, theirs = os.path.abspath(path), os.path.abspath(os.fsdecode(e.filename))
        if mine.startswith(theirs + os.sep):  # a parent directory is in the way
            cause = f"{e.filename} is not a directory" if os.path.exists(theirs) and not os.path.isdir(theirs) \
                else f"{cause} ({e.filename})"
        elif theirs.startswith(mine + os.sep):  # a file inside (a store's)
            cause = f"{cause} ({e.filename})"
        # else the path itself, or a staging directory beside it: an internal name
    return f"cannot {action} {path}: {cause}"


def at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``, refused before anything starts."""
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = "int"  # argparse names the type in "invalid int value: 'x'"
    return parse


def rpm(value: float | None) -> float | None:
    """``--rpm`` as the client's rate budget takes it (None: no limit), or
    refused in one line before a server starts or a request is sent: a rate
    too slow to wait for failed only at the second request's wait, after the
    first one was paid for."""
    if value is None:
        return None
    try:
        return checked_per_minute(value)
    except ValueError:
        raise Refused(f"--rpm must be {RATE_RANGE}, got {value:g}") from None


def saves_on_ctrl_c(command):
    """A command that, stopped by Ctrl-C, saves what it did before it exits
    (``embed``: the rows that arrived, in DIR.partial).  The first SIGINT
    raises KeyboardInterrupt as always; another within ``CTRL_C_GRACE``
    seconds is ignored, so that a Ctrl-C pressed twice does not cut the
    saving short (it takes well under a second) and lose rows already paid
    for; one after that raises again.  After a Ctrl-C the handler stays
    (the process is about to exit: a second one then must not turn the
    clean exit into a traceback).  Only where SIGINT has Python's own
    handler: a shell's background job ignores it, and a program calling
    ``main`` may handle it itself."""
    @functools.wraps(command)
    def run(args):
        if threading.current_thread() is not threading.main_thread() or \
                signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return command(args)
        first: list[float] = []

        def handler(signum, frame):
            if first and time.monotonic() - first[0] < CTRL_C_GRACE:
                return  # the first one is being handled: what arrived is being saved
            first[:] = [time.monotonic()]
            raise KeyboardInterrupt

        signal.signal(signal.SIGINT, handler)
        try:
            return command(args)
        finally:
            if not first:
                signal.signal(signal.SIGINT, signal.default_int_handler)
    return run
