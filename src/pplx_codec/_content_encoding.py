"""A response body's ``Content-Encoding`` undone in bounded steps.

httpx inflates each chunk read from the socket in one call, with no limit on
what it produces: a 64 KiB chunk of a gzip bomb becomes ~64 MB before the
client can look at it (an error body is kept up to 1 MiB, a 200's is fed to
the decoder chunk by chunk).  The clients read the raw bytes instead and
inflate them here, ``zlib`` asked for at most :data:`STEP` bytes at a time, so
no step holds more than that before the client's checks see it (and stop
reading, for an error body past its limit).

The clients ask for the encodings that can be undone this way only
(:data:`ACCEPT_ENCODING`; httpx would offer ``br`` and ``zstd`` too when their
packages are installed); a body in any other encoding is a ``DecodingError``.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator

import httpx

#: The most bytes one step of inflating produces.
STEP = 1 << 20
#: What the clients send as ``Accept-Encoding``: what this module undoes.
ACCEPT_ENCODING = "gzip, deflate"

Stage = Callable[[bytes], Iterator[bytes]]


def _inflate(d, data: bytes) -> Iterator[bytes]:
    """``data`` through the decompressor ``d``, at most ``STEP`` bytes per step."""
    while True:
        out = d.decompress(data, STEP)
        if out:
            yield out
        data = d.unconsumed_tail
        if not data and len(out) < STEP:  # a full step may leave output pending: ask again
            return


class _Zlib:
    """gzip, or deflate: zlib-wrapped as RFC 9110 says, or raw as some servers
    send it (told apart by the first two bytes, as httpx does by trying)."""

    def __init__(self, wbits: int, deflate: bool = False):
        self._d = zlib.decompressobj(wbits)
        self._head: bytes | None = b"" if deflate else None  # deflate: its first bytes, until there are two

    def __call__(self, data: bytes) -> Iterator[bytes]:
        if self._head is not None:
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return
            self._head = None
            cmf, flg = data[0], data[1]
            if not (cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf << 8 | flg) % 31 == 0):  # not a zlib header
                self._d = zlib.decompressobj(-zlib.MAX_WBITS)
        yield from _inflate(self._d, data)


class Decoder:
    """Undoes the ``Content-Encoding`` of one response (the last applied first),
    a chunk of raw body at a time; each piece it yields is at most ``STEP`` bytes
    (but for identity, whose pieces are the chunks given)."""

    def __init__(self, headers: httpx.Headers, request: httpx.Request | None = None):
        self._request = request
        stages: list[Stage] = []
        for token in headers.get_list("content-encoding", split_commas=True):
            token = token.strip().lower()
            if token in ("gzip", "x-gzip"):
                stages.append(_Zlib(zlib.MAX_WBITS | 16))
            elif token == "deflate":
                stages.append(_Zlib(zlib.MAX_WBITS, deflate=True))
            elif token not in ("identity", ""):
                raise httpx.DecodingError(f"{token!r} is not an encoding the client asked for "
                                          f"(Accept-Encoding: {ACCEPT_ENCODING})", request=request)
        self._stages = stages[::-1]

    def decode(self, raw: bytes) -> Iterator[bytes]:
        try:
            yield from _through(self._stages, [raw])
        except zlib.error as e:
            raise httpx.DecodingError(str(e), request=self._request) from e


def _through(stages: list[Stage], pieces: Iterable[bytes]) -> Iterator[bytes]:
    if not stages:
        yield from pieces
        return
    first, rest = stages[0], stages[1:]
    for piece in pieces:
        yield from _through(rest, first(piece))


def _decoder(resp: httpx.Response) -> Decoder:
    try:
        request = resp.request
    except RuntimeError:  # a response made by hand, never sent
        request = None
    return Decoder(resp.headers, request)


def body(resp: httpx.Response) -> Iterator[bytes]:
    """``resp``'s body decoded, as ``iter_bytes()`` gives it but in bounded steps."""
    if resp.is_stream_consumed:  # a transport that read the body already: httpx decoded it then
        yield from resp.iter_bytes()
        return
    decoder = _decoder(resp)
    for raw in resp.iter_raw():
        yield from decoder.decode(raw)


async def abody(resp: httpx.Response) -> AsyncIterator[bytes]:
    """``body`` for an ``httpx.AsyncClient``'s response."""
    if resp.is_stream_consumed:
        async for chunk in resp.aiter_bytes():
            yield chunk
        return
    decoder = _decoder(resp)
    async for raw in resp.aiter_raw():
        for piece in decoder.decode(raw):
            yield piece
