"""A DNS lookup that a caller can stop waiting for.

``getaddrinfo`` is a blocking libc call with no timeout: a resolver that does
not answer holds the thread calling it for as long as the resolver likes
(``resolv.conf``'s timeouts and attempts, an NSS module that hangs).  So
``Client``'s transport (:mod:`pplx_codec._transport`) runs each lookup on a
daemon thread of its own and waits for it at most until the attempt's
deadline; a lookup given up on goes on in its thread, which ends when the
resolver answers (it is a daemon: it never holds the interpreter's exit).

Bounded: concurrent lookups of the same host and port share one thread
(the attempts of a client waiting on a hung resolver add no threads), and at
most :data:`MAX_LOOKUPS` different ones run at once in the process.
"""

from __future__ import annotations

import socket
import threading

#: The most lookups (of different host:port pairs) waiting on the resolver at once.
MAX_LOOKUPS = 16

Address = tuple[int, tuple]  # (family, sockaddr), as getaddrinfo gives them


class LookupTimeout(TimeoutError):
    """The resolver did not answer in the time given."""


class _Lookup:
    def __init__(self):
        self.done = threading.Event()
        self.addresses: list[Address] = []
        self.error: OSError | None = None


_lock = threading.Lock()
_running: dict[tuple[str, int], _Lookup] = {}


def _run(key: tuple[str, int], lookup: _Lookup) -> None:
    try:
        found = socket.getaddrinfo(key[0], key[1], type=socket.SOCK_STREAM)
        lookup.addresses = list(dict.fromkeys((family, sockaddr) for family, _, _, _, sockaddr in found))
    except OSError as e:
        lookup.error = e
    except Exception as e:  # such as a UnicodeError for a name IDNA cannot encode: the lookup failed all the same
        lookup.error = OSError(f"the lookup of {key[0]!r} failed: {type(e).__name__}: {e}")
    finally:
        with _lock:
            del _running[key]
        lookup.done.set()


def lookup(host: str, port: int, timeout: float | None) -> list[Address]:
    """``getaddrinfo(host, port, type=SOCK_STREAM)``'s addresses, in its order,
    waited for at most ``timeout`` seconds (None: as long as it takes).
    Raises ``LookupTimeout`` when the time runs out, ``OSError`` (such as
    ``socket.gaierror``) when the lookup fails or cannot start."""
    key = (host, port)
    with _lock:
        running = _running.get(key)
        if running is None:
            if len(_running) >= MAX_LOOKUPS:
                raise OSError(f"the lookup of {host!r} cannot start: {MAX_LOOKUPS} lookups are still waiting "
                              "for the resolver")
            running = _running[key] = _Lookup()
            threading.Thread(target=_run, args=(key, running), name=f"pplx-codec-dns {host}", daemon=True).start()
    if not running.done.wait(timeout):
        raise LookupTimeout(f"the DNS lookup of {host!r} took longer than {timeout:g} s")
    e = running.error
    if e is not None:  # a copy: the waiters of one lookup may raise it in several threads at once
        raise type(e)(*e.args)
    return running.addresses
