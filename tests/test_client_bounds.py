"""What a hung resolver and a compressed body can cost the client (issue 22).

A DNS lookup of the sync ``Client`` ends by the attempt's deadline (and its
connect timeout) like every other wait: the resolver here is
``socket.getaddrinfo`` replaced by one that blocks on an Event for the names
``*.hang.test`` and knows nothing else but loopback, so no test asks a real
resolver anything.  A gzip or deflate body is inflated at most
``_content_encoding.STEP`` bytes at a time before the client looks at it, so a
bomb costs a bounded step, not 64 MB per chunk: loopback servers send them.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import zlib

import httpx
import numpy as np
import pytest

import pplx_codec as pc
from helpers import raises_exactly
from pplx_codec import _content_encoding, _dns
from pplx_codec._exchange import ERROR_BODY_LIMIT, Exchange
from test_client import M06, Runner, delays, expected, good_body, kind, raises  # noqa: F401 (fixtures)
from test_client_hostile import Dribbler

STEP = _content_encoding.STEP


class Resolver:
    """``socket.getaddrinfo`` as the tests see it: ``*.hang.test`` blocks until
    ``release``; the names in ``known`` resolve to those IPs; loopback names and
    IPs are the real call (no network); anything else is "not known"."""

    def __init__(self, real):
        self.real = real
        self.release = threading.Event()
        self.calls: list[str] = []
        self.blocked: list[threading.Thread] = []
        self.known: dict[str, list[str]] = {}

    def __call__(self, host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        self.calls.append(name)
        if name.endswith(".hang.test"):
            self.blocked.append(threading.current_thread())
            self.release.wait()
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        if name in self.known:
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port))
                    for ip in self.known[name]]
        if name == "localhost" or name.startswith("127."):
            return self.real(host, port, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.fixture
def resolver(monkeypatch):
    r = Resolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", r)
    yield r
    r.release.set()  # the resolver answers at last: every lookup thread it held ends
    for t in r.blocked:
        t.join(timeout=10)
        assert not t.is_alive()


def sync(url: str, **options) -> Runner:
    return Runner("sync", url, **options)


# ================================================================ DNS: the sync client's lookup is bounded

def test_hung_lookup_ends_at_the_deadline(resolver):
    start = time.monotonic()
    with raises_exactly(pc.APITimeoutError, "Request timed out: the response was not complete within the "
                                            "0.5 s deadline"):
        sync("http://api.hang.test:9", timeout=30, deadline=0.5, max_retries=0).embed(["a"])
    assert time.monotonic() - start < 5  # not waiting for the resolver, which has not answered
    assert resolver.blocked and resolver.blocked[0].is_alive() and not resolver.release.is_set()


def test_hung_lookup_ends_at_the_connect_timeout(resolver):
    """The connect timeout bounds the lookup too (shorter than the deadline here)."""
    with raises_exactly(pc.APITimeoutError, "Request timed out."):
        sync("http://api.hang.test:9", timeout=httpx.Timeout(30, connect=0.3), max_retries=0).embed(["a"])


def test_retries_wait_on_the_same_lookup(resolver, delays):
    """Every attempt of a client whose resolver hangs joins the one lookup
    already waiting: no thread per attempt."""
    err = raises(sync("http://api.hang.test:9", timeout=30, deadline=0.3, max_retries=3), pc.APITimeoutError,
                 "embed", ["a"])
    assert len(delays) == 3 and "0.3 s deadline" in str(err)
    assert resolver.calls == ["api.hang.test"] and len(resolver.blocked) == 1


def test_lookups_waiting_at_once_are_bounded(resolver, monkeypatch):
    monkeypatch.setattr(_dns, "MAX_LOOKUPS", 2)
    for port in (1, 2):
        raises(sync(f"http://api.hang.test:{port}", timeout=30, deadline=0.2, max_retries=0), pc.APITimeoutError,
               "embed", ["a"])
    with raises_exactly(pc.APIConnectionError, "Connection error: ConnectError: the lookup of 'api.hang.test' "
                                               "cannot start: 2 lookups are still waiting for the resolver"):
        sync("http://api.hang.test:3", timeout=30, deadline=0.2, max_retries=0).embed(["a"])
    assert len(resolver.blocked) == 2
    resolver.release.set()
    for t in resolver.blocked:
        t.join(timeout=10)
    # once the resolver answers, lookups start again (and fail as it says)
    with raises_exactly(pc.APIConnectionError, "Connection error: ConnectError: [Errno -3] Temporary failure "
                                               "in name resolution"):
        sync("http://api.hang.test:3", timeout=30, deadline=5, max_retries=0).embed(["a"])


def test_failed_lookup_is_a_connection_error_retried(resolver, delays):
    with raises_exactly(pc.APIConnectionError, "Connection error: ConnectError: [Errno -2] Name or service not "
                                               "known"):
        sync("http://nowhere.test:9", timeout=5, max_retries=2).embed(["a"])
    assert len(delays) == 2 and resolver.calls == ["nowhere.test"] * 3


def test_names_resolve_and_each_address_is_tried_in_turn(resolver):
    """A name's addresses are tried in the resolver's order, as
    socket.create_connection does: 127.0.0.2 refuses (the server listens on
    127.0.0.1 only), so the client connects to the second."""
    texts = ["by name"]
    with Dribbler(lambda request: _http(200, json.dumps(good_body(_request_of(request))).encode(), "identity"),
                  drip=b"") as srv:
        port = srv.url.rsplit(":", 1)[1]
        resolver.known["two.test"] = ["127.0.0.2", "127.0.0.1"]
        got = sync(f"http://two.test:{port}", timeout=5, max_retries=0).embed(texts)
        assert np.array_equal(got.vectors, expected(M06, texts))
        got = sync(f"http://localhost:{port}", timeout=5, max_retries=0).embed(texts)  # the real lookup
        assert np.array_equal(got.vectors, expected(M06, texts))
    assert resolver.calls[:1] == ["two.test"]


def test_ip_literals_need_no_lookup(resolver):
    raises(sync("http://127.0.0.1:9", timeout=5, max_retries=0), pc.APIConnectionError, "embed", ["a"])
    assert resolver.calls == ["127.0.0.1"]  # socket.create_connection's own, which does not ask a resolver


def _request_of(raw: bytes) -> httpx.Request:
    head, _, body = raw.partition(b"\r\n\r\n")
    return httpx.Request("POST", "http://x", content=body)


# ================================================================ Content-Encoding: inflated in bounded steps

def _http(status: int, body: bytes, encoding: str) -> bytes:
    return (f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-encoding: {encoding}\r\n"
            f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body


def _bomb(head: bytes, fill: bytes, mib: int, tail: bytes) -> bytes:
    """gzip of ``head + fill * mib MiB + tail``, made without holding it inflated."""
    c = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = fill * (1 << 20)
    return c.compress(head) + b"".join(c.compress(block) for _ in range(mib)) + c.compress(tail) + c.flush()


@pytest.fixture
def fed(monkeypatch):
    """The sizes of the chunks the client's loop hands to ``Exchange.feed``."""
    sizes: list[int] = []
    feed = Exchange.feed

    def spy(self, chunk):
        sizes.append(len(chunk))
        return feed(self, chunk)

    monkeypatch.setattr(Exchange, "feed", spy)
    return sizes


def test_gzip_bomb_error_body_is_cut_at_its_limit(kind, fed):
    """64 MiB of error message in 64 KiB of gzip: read up to the 1 MiB an
    error body keeps, one bounded step at a time, then refused with its status."""
    bomb = _bomb(b'{"error": {"message": "', b"x", 64, b'"}}')
    assert len(bomb) < 100_000
    with Dribbler(_http(503, bomb, "gzip"), drip=b"") as srv:
        err = raises(Runner(kind, srv.url, timeout=10, max_retries=0), pc.InternalServerError, "embed", ["a"])
    assert str(err) == "Error code: 503 - " + ('{"error": {"message": "' + "x" * 500)[:500] + "..."  # not JSON: cut
    assert err.status_code == 503 and err.body.startswith('{"error": {"message": "xxx')
    assert max(fed) <= STEP and sum(fed) <= ERROR_BODY_LIMIT + STEP


def test_gzip_bomb_200_is_fed_in_bounded_steps(kind, fed):
    """A 200 whose 64 MiB are whitespace inside a valid start: every step the
    decoder sees is at most STEP bytes (the deadline bounds how many)."""
    bomb = _bomb(b'{"data": [', b" ", 64, b"]}")
    with Dribbler(_http(200, bomb, "gzip"), drip=b"") as srv:
        err = raises(Runner(kind, srv.url, timeout=10, max_retries=0), pc.APIResponseValidationError, "embed",
                     ["a"])
    assert str(err) == "malformed response: response is missing 1 of 1 rows (first missing rows: [0])"
    assert max(fed) <= STEP and sum(fed) == (64 << 20) + len(b'{"data": [') + 2


def _deflate_raw(data: bytes) -> bytes:
    c = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize("encoding, pack", [
    ("gzip", gzip.compress), ("x-gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", _deflate_raw),
    ("identity", lambda b: b), ("gzip, deflate", lambda b: zlib.compress(gzip.compress(b))),
    ("deflate, gzip", lambda b: gzip.compress(zlib.compress(b))),
], ids=["gzip", "x-gzip", "deflate", "raw deflate", "identity", "gzip then deflate", "deflate then gzip"])
def test_encodings_the_client_asks_for_are_decoded(kind, encoding, pack):
    texts = [f"encoded {encoding}"]
    body = json.dumps(good_body(httpx.Request("POST", "http://x", json={"input": texts, "model": M06}))).encode()
    with Dribbler(_http(200, pack(body), encoding), drip=b"") as srv:
        got = Runner(kind, srv.url, timeout=5, max_retries=0).embed(texts)
    assert np.array_equal(got.vectors, expected(M06, texts))


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br"])
def test_encodings_not_asked_for_are_refused(kind, delays, encoding):
    token = encoding.split(", ")[-1]
    with Dribbler(_http(200, b"\x00" * 32, encoding), drip=b"") as srv:
        err = raises(Runner(kind, srv.url, timeout=5, max_retries=2), pc.APIResponseValidationError, "embed", ["a"])
    assert delays == []  # the server answered, wrongly: not retried
    assert str(err) == (f"malformed response: the body does not decode as its Content-Encoding {encoding!r} says "
                        f"({token!r} is not an encoding the client asked for (Accept-Encoding: gzip, deflate))")


def test_accept_encoding_names_only_what_is_bounded(kind):
    seen = []

    def handler(request):
        seen.append(request.headers["accept-encoding"])
        return httpx.Response(200, json=good_body(request))

    Runner(kind, "http://test", transport=httpx.MockTransport(handler), max_retries=0).embed(["a"])
    assert seen == ["gzip, deflate"]


def _pieces(encoding: str, chunks) -> list[bytes]:
    decoder = _content_encoding.Decoder(httpx.Headers({"content-encoding": encoding}))
    return [p for c in chunks for p in decoder.decode(c)]


# 2 MiB of two-bit noise then 2 MiB of one byte: pieces of the second half would be far over STEP in one call
DATA = bytes(np.random.default_rng(0).integers(0, 4, 2 * STEP + 12345, dtype=np.uint8)) + b"x" * 2 * STEP


@pytest.mark.parametrize("encoding, pack", [("gzip", lambda b: gzip.compress(b, 1)),
                                            ("deflate", lambda b: zlib.compress(b, 1)), ("deflate", _deflate_raw)],
                         ids=["gzip", "deflate", "raw deflate"])
@pytest.mark.parametrize("size", [1, 7, 4096])
def test_decoder_any_chunking(encoding, pack, size):
    """The same bytes whatever the chunk boundaries (one byte at a time
    included, which splits deflate's two header bytes), each piece bounded."""
    packed = pack(DATA)
    cut = min(len(packed), 64 * size)  # 64 chunks of ``size``, then the rest in one (the bound is per piece)
    chunks = [packed[i:i + size] for i in range(0, cut, size)] + [packed[cut:]]
    pieces = _pieces(encoding, chunks)
    assert b"".join(pieces) == DATA and max(map(len, pieces)) <= STEP


def test_decoder_bad_data_is_a_decoding_error():
    with raises_exactly(httpx.DecodingError, "Error -3 while decompressing data: incorrect header check"):
        _pieces("gzip", [b"not gzip at all"])
    assert _pieces("identity", [b"as", b"is"]) == [b"as", b"is"]
