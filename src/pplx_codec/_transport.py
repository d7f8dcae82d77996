"""``Client``'s own httpx transport: what ``httpx.HTTPTransport()`` does by
default, over sockets each of whose waits ends by the deadline of the attempt
running in the thread (:data:`ATTEMPT`), so that a server trickling bytes
cannot hold a sync attempt past its deadline; the DNS lookup before them too
(:mod:`pplx_codec._dns`), so that a resolver cannot either.  Also whether the
environment sets a proxy (then httpx's own transport is kept, to apply it).
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import select
import socket
import ssl
import threading
import time
import urllib.request

import httpcore
import httpx

from . import _dns
from ._stop import Stop


class AttemptEnds(threading.local):
    """When the sync attempt running in this thread must end (``time.monotonic()``),
    and the stop of its call.  ``Client._attempt`` (pplx_codec.client) sets them around the
    whole exchange: a sync attempt runs in one thread, from connecting to the last byte of
    the body, so the sockets it waits on can find its deadline and its stop here without
    being told."""

    ends = math.inf  # the class attributes are every thread's default: no attempt, no deadline,
    stop: Stop | None = None  # no stop


def watched(sock: socket.socket):
    """Around one socket wait of this thread's attempt: its call's abort ends
    it at once (``_stop.Stop.watching``)."""
    stop = ATTEMPT.stop
    return NOT_WATCHED if stop is None else stop.watching(sock)


ATTEMPT = AttemptEnds()
NOT_WATCHED = contextlib.nullcontext()

#: The most one read of a response takes from the socket.  httpcore asks for
#: 64 KiB at a time, and each read is a trip through httpcore's, h11's and
#: httpx's Python (a dozen generators and context managers) and system calls
#: with the GIL dropped and taken again around each: a 512 x 1024 int8
#: response (0.7 MB) took ~13 reads.  Taking what the socket holds, up to
#: this, takes one per piece the server sent (~6).
READ_BYTES = 1 << 20


def capped(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` capped at the time left to this thread's attempt; raises
    ``expired`` (an httpcore timeout) once none is left."""
    ends = ATTEMPT.ends
    if ends == math.inf:
        return timeout
    left = ends - time.monotonic()
    if left <= 0:
        raise expired("the attempt's deadline passed")
    return left if timeout is None or timeout > left else timeout


def readiness(e: OSError, own: int) -> int | None:
    """What a non-blocking socket raising ``e`` must wait for (``select.POLLIN``
    or ``POLLOUT``): ``own``, the call's direction, for a ``BlockingIOError``;
    a TLS socket can need to read to write, and to write to read.  None: ``e``
    is an error."""
    if isinstance(e, ssl.SSLWantReadError):
        return select.POLLIN
    if isinstance(e, ssl.SSLWantWriteError):
        return select.POLLOUT
    return own if isinstance(e, BlockingIOError) else None


def wait(sock: socket.socket, events: int, timeout: float | None, expired: type[Exception]) -> None:
    """Until ``sock`` is ready for ``events`` (``select.POLLIN``/``POLLOUT``),
    at most ``timeout`` seconds (None: no limit), capped at the attempt's
    deadline; ``expired`` (an httpcore timeout) when the time is up."""
    limit = capped(timeout, expired)
    poll = select.poll()
    poll.register(sock, events)
    if not poll.poll(None if limit is None else math.ceil(limit * 1000)):
        raise expired("timed out")


class DeadlineStream(httpcore.NetworkStream):
    """httpcore's socket stream, each of whose waits (a read, a send, the TLS
    handshake) ends by the deadline of the attempt running in the thread:
    httpx's timeouts bound each read, so a server sending a byte now and
    then, in its headers as well as its body, could hold a sync attempt
    forever.  One cap per wait of up to READ_BYTES: no per-byte work.

    Reads and sends are our own, on the socket made non-blocking once: each
    tries first and waits (``poll``, capped) only when the socket says it must.
    A read of data already there is then one system call, where httpcore's
    (and CPython's, for a socket with a timeout) is three: ``settimeout``'s
    ``ioctl``, ``poll``, ``recv``, each dropping the GIL and taking it again;
    a send to a socket with room, the same."""

    def __init__(self, stream: httpcore.NetworkStream):
        self._stream = stream
        self._sock: socket.socket = stream.get_extra_info("socket")
        self._sock.settimeout(0.0)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # up to READ_BYTES, what the socket holds, whatever httpcore asks for (h11 takes any amount)
        sock, size = self._sock, max(max_bytes, READ_BYTES)
        with watched(self._sock):
            while True:
                try:
                    return sock.recv(size)
                except OSError as e:
                    events = readiness(e, select.POLLIN)
                    if events is None:
                        raise httpcore.ReadError(str(e)) from e
                wait(sock, events, timeout, httpcore.ReadTimeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # httpcore's own write gives each send() the whole timeout, so a server
        # reading slowly could hold one write call: cap every wait instead.
        sock, view = self._sock, memoryview(buffer)
        with watched(self._sock):
            while view:
                try:
                    view = view[sock.send(view):]
                    continue
                except OSError as e:
                    events = readiness(e, select.POLLOUT)
                    if events is None:
                        raise httpcore.WriteError(str(e)) from e
                wait(sock, events, timeout, httpcore.WriteTimeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        # (CPython bounds the whole handshake by the socket's timeout, which httpcore sets)
        with watched(self._sock):
            return DeadlineStream(self._stream.start_tls(ssl_context, server_hostname,
                                                          capped(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """``httpcore.SyncBackend`` making ``DeadlineStream``s, whose DNS lookup
    ends by the attempt's deadline too (and by the connect timeout)."""

    def __init__(self):
        self._backend = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options=None) -> httpcore.NetworkStream:
        # SyncBackend resolves the name inside socket.create_connection, a
        # wait nothing bounds: look it up here (_dns), then connect to each
        # address in turn as create_connection does, each by IP (no lookup).
        last: Exception | None = None
        for ip in addresses(host, port, capped(timeout, httpcore.ConnectTimeout)):
            try:
                return DeadlineStream(self._backend.connect_tcp(ip, port, capped(timeout, httpcore.ConnectTimeout),
                                                                 local_address, socket_options))
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                last = e
        assert last is not None  # addresses() returns at least one
        raise last


def addresses(host: str, port: int, timeout: float | None) -> list[str]:
    """The IPs to connect to for ``host`` (itself, if it is one), looked up
    within ``timeout`` seconds: httpcore's exceptions for a failed lookup."""
    try:
        ipaddress.ip_address(host)
        return [host]
    except ValueError:
        pass
    try:
        found = _dns.lookup(host, port, timeout)
    except _dns.LookupTimeout as e:
        raise httpcore.ConnectTimeout(str(e)) from e
    except OSError as e:
        raise httpcore.ConnectError(str(e)) from e
    if not found:
        raise httpcore.ConnectError(f"no address found for {host!r}")
    return [sockaddr[0] for _, sockaddr in found]


#: httpcore's exceptions and the httpx ones to raise for them, the most
#: specific first (httpx's own table is private to its transport).
HTTPCORE_ERRORS = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout), (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout), (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError), (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError), (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError), (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.ProxyError, httpx.ProxyError), (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)


@contextlib.contextmanager
def httpx_errors():
    """httpcore's exceptions raised as httpx's, as ``httpx.HTTPTransport`` does."""
    try:
        yield
    except Exception as e:
        for core, ours in HTTPCORE_ERRORS:
            if isinstance(e, core):
                raise ours(str(e)) from e
        raise


class Body(httpx.SyncByteStream):
    def __init__(self, stream):
        self._stream = stream

    def __iter__(self):
        with httpx_errors():
            yield from self._stream

    def close(self) -> None:
        with httpx_errors():
            self._stream.close()


class DeadlineTransport(httpx.BaseTransport):
    """What ``httpx.HTTPTransport()`` does by default (a pool of HTTP/1.1
    connections within ``limits``, kept alive; TLS verified by
    ``httpx.create_ssl_context``, which honours SSL_CERT_FILE/SSL_CERT_DIR),
    over ``DeadlineStream``s: ``Client``'s transport when it makes its own
    httpx client and no proxy is configured (httpx reads proxies from the
    environment only for a client built without a transport)."""

    def __init__(self, limits: httpx.Limits):
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(), max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            network_backend=DeadlineBackend())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        req = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw, content=request.stream, extensions=request.extensions)
        with httpx_errors():
            resp = self._pool.handle_request(req)
        return httpx.Response(resp.status, headers=resp.headers, stream=Body(resp.stream),
                              extensions=resp.extensions)

    def close(self) -> None:
        with httpx_errors():
            self._pool.close()


def env_proxy() -> bool:
    """Whether ``httpx.Client()`` would route some requests through a proxy
    from the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY; not when
    NO_PROXY is ``*``), by the rule httpx itself follows."""
    found = urllib.request.getproxies()
    if "*" in (h.strip() for h in found.get("no", "").split(",")):
        return False
    return any(found.get(scheme) for scheme in ("http", "https", "all"))


# ---------------------------------------------------------------- sync
