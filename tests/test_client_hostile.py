"""Client and AsyncClient against hostile servers (issue 10, items 8-11):
responses that trickle, a malformed ``usage``, a body that is not what its
Content-Encoding says, and servers that echo the API key back.

Trickling and encoding use ``Dribbler``, a raw-socket HTTP server on
loopback that answers at once with a head and then sends a little at a time,
recording whether the client hung up before the server's own time limit:
that is what shows the client gave up by itself, with no timed assertion.
Everything else answers through ``httpx.MockTransport``.  Every test runs
with both clients (``kind``), except where said.
"""

from __future__ import annotations

import gzip
import json
import math
import select
import socket
import threading
import time

import httpcore
import httpx
import numpy as np
import pytest

import pplx_codec as pc
from pplx_codec.results import Usage
from server_support import KEY
from test_client import M06, Runner, assert_key_free, delays, expected, good_body, kind, make_texts, raises  # noqa: F401 (fixtures)

JSON_200 = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n"


class Dribbler:
    """A loopback HTTP/1.1 server, a thread per connection.  Each reads one
    request, sends ``head`` (bytes, or a function of the request's bytes) at
    once, then ``drip`` every ``every`` seconds (nothing if empty; a list:
    its items in turn, then nothing) until the client hangs up, or until
    ``limit`` seconds pass and it closes the connection itself.
    ``outcomes()``: per connection, "hung up" or "limit"."""

    def __init__(self, head, drip: bytes | list[bytes] = b" ", every: float = 0.05, limit: float = 10.0):
        self.head, self.drip, self.every, self.limit = head, drip, every, limit
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._outcomes: list[str | None] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def __enter__(self) -> Dribbler:
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._accepter.join()
        for t in list(self._threads):
            t.join()
        self._sock.close()

    def outcomes(self) -> list[str | None]:
        """How each connection ended (waits for them: at most ``limit`` s each)."""
        for t in list(self._threads):
            t.join()
        return list(self._outcomes)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            i = len(self._outcomes)
            self._outcomes.append(None)
            t = threading.Thread(target=self._serve, args=(conn, i), daemon=True)
            self._threads.append(t)
            t.start()

    @staticmethod
    def _request(conn: socket.socket) -> bytes:
        data = bytearray()
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return bytes(data)
            data += chunk
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body

    def _serve(self, conn: socket.socket, i: int) -> None:
        outcome = "stopped"
        try:
            conn.settimeout(self.limit)
            request = self._request(conn)
            conn.sendall(self.head(request) if callable(self.head) else self.head)
            drips = list(self.drip) if isinstance(self.drip, list) else None
            end = time.monotonic() + self.limit
            while not self._stop.is_set():
                if time.monotonic() >= end:
                    outcome = "limit"
                    break
                readable, _, _ = select.select([conn], [], [], self.every)
                if readable:
                    if not conn.recv(65536):  # the client closed its end
                        outcome = "hung up"
                        break
                    continue
                if drips:
                    conn.sendall(drips.pop(0))
                elif drips is None and self.drip:
                    conn.sendall(self.drip)
        except OSError:  # reset or broken pipe: the client went away
            outcome = "hung up"
        finally:
            self._outcomes[i] = outcome
            conn.close()


def no_secret(*texts: str) -> None:
    """Neither the key nor its first 12 characters (a cut-off quote) anywhere."""
    for t in texts:
        assert KEY not in t and KEY[:12] not in t, t


def key_free(err: BaseException) -> None:
    assert_key_free(err)
    no_secret(str(err), repr(err), repr(err.body), repr(vars(err)))
    response = getattr(err, "response", None)
    if response is not None:
        no_secret(repr(response.headers.multi_items()))


# ================================================================ 8: a deadline for the whole request

def test_trickling_200_hits_the_deadline(kind):
    """The issue's reproducer: 200, ``{"data":[``, then a space every 50 ms.
    Each read returns in time, so only a deadline on the whole attempt
    (default: the read timeout) ends it; the server saw the client hang up."""
    with Dribbler(JSON_200 + b'{"data":[') as srv:
        err = raises(Runner(kind, srv.url, timeout=0.5, max_retries=0), pc.APITimeoutError, "embed", ["a", "b"])
        assert srv.outcomes() == ["hung up"]
    assert "0.5 s deadline" in str(err)
    assert not err.partial.filled.any()
    key_free(err)


def test_trickling_200_deadline_is_retried_like_a_timeout(kind, delays):
    with Dribbler(JSON_200 + b'{"data":[') as srv:
        err = raises(Runner(kind, srv.url, timeout=0.4, max_retries=2), pc.APITimeoutError, "embed", ["a"])
        assert srv.outcomes() == ["hung up"] * 3  # every attempt cut at its own deadline
    assert len(delays) == 2 and "deadline" in str(err)


def test_deadline_shorter_than_the_timeout(kind):
    """``deadline`` set apart from ``timeout``: a 30 s read timeout does not
    let a trickle run past a 0.5 s deadline, nor does a silent server hold a
    read past it (every httpx timeout of an attempt is capped at the deadline)."""
    for drip in (b" ", b""):
        with Dribbler(JSON_200 + b'{"data":[', drip=drip) as srv:
            err = raises(Runner(kind, srv.url, timeout=30, deadline=0.5, max_retries=0), pc.APITimeoutError,
                         "embed", ["a"])
            assert srv.outcomes() == ["hung up"], drip
        assert "0.5 s deadline" in str(err)


@pytest.mark.parametrize("status, exc, retried", [(503, pc.InternalServerError, True),
                                                  (401, pc.AuthenticationError, False)])
def test_trickling_error_body_keeps_its_status(kind, delays, status, exc, retried):
    """An error whose body trickles: the status is known, so the status error
    is raised (and retried by its status) with the part of the body that arrived."""
    head = (f"HTTP/1.1 {status} Whatever\r\ncontent-type: text/plain\r\ncontent-length: 1000000\r\n\r\n"
            "upstream is slow").encode()
    with Dribbler(head) as srv:
        err = raises(Runner(kind, srv.url, timeout=0.4, max_retries=1), exc, "embed", ["a"])
        assert srv.outcomes() == ["hung up"] * (2 if retried else 1)
    assert err.status_code == status and err.body.startswith("upstream is slow")
    assert "upstream is slow" in str(err) and "deadline" in str(err)
    assert len(delays) == (1 if retried else 0)
    key_free(err)


@pytest.mark.parametrize("head", [b"HTTP/1.1 200 ", b"HTTP/1.1 200 OK\r\nx-slow: "],
                         ids=["status line", "headers"])
def test_trickling_headers_hit_the_deadline(kind, head):
    """A server that trickles the status line or the headers, a byte every
    0.3 s, never trips a read timeout (30 s, capped at the 0.5 s deadline).
    AsyncClient cancels the attempt at its deadline; Client's transport caps
    each socket wait at the time left to it.  Before, the sync attempt went
    on until the server's limit (then a connection error, not the deadline)."""
    with Dribbler(head, drip=b"a", every=0.3, limit=5) as srv:
        err = raises(Runner(kind, srv.url, timeout=30, deadline=0.5, max_retries=0), pc.APITimeoutError,
                     "embed", ["a"])
        assert srv.outcomes() == ["hung up"]
    assert "0.5 s deadline" in str(err)
    key_free(err)


def test_sync_send_is_capped_at_the_deadline():
    """Client's socket stream gives each send() of a write the time left to
    the attempt, not the write as a whole (httpcore's write gives each send
    the whole timeout): a server reading slowly, 1 KiB every 10 ms, cannot
    hold the request's upload past the deadline.  (Tested on the stream: on
    loopback, a request body fits in the kernel's send buffer.)"""
    from pplx_codec._transport import ATTEMPT as _ATTEMPT
    from pplx_codec._transport import DeadlineBackend as _DeadlineBackend

    listener = socket.create_server(("127.0.0.1", 0))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # small windows: the sender blocks soon
    outcome = []

    def sip():
        conn, _ = listener.accept()
        end = time.monotonic() + 5
        with conn:
            while time.monotonic() < end:
                if not conn.recv(1024):
                    outcome.append("hung up")
                    return
                time.sleep(0.01)
            outcome.append("limit")

    reader = threading.Thread(target=sip, daemon=True)
    reader.start()
    stream = _DeadlineBackend().connect_tcp("127.0.0.1", listener.getsockname()[1], timeout=5)
    stream.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    _ATTEMPT.ends = time.monotonic() + 0.5
    try:
        with pytest.raises(httpcore.WriteTimeout, match="deadline|timed out"):
            stream.write(b"x" * (8 << 20), timeout=30)
    finally:
        _ATTEMPT.ends = math.inf
        stream.close()
        reader.join()
        listener.close()
    assert outcome == ["hung up"]


def test_httpcore_errors_become_httpx_errors():
    """Client's transport raises httpx's exceptions, as httpx's own does: its
    table covers every exception httpcore exports (but ConnectionNotAvailable,
    which httpcore's pool handles itself), each as httpx's class of that name."""
    from pplx_codec._transport import httpx_errors as _httpx_errors

    core = [c for c in vars(httpcore).values()
            if isinstance(c, type) and issubclass(c, Exception) and c is not httpcore.ConnectionNotAvailable]
    assert len(core) >= 14
    for cls in core:
        with pytest.raises(httpx.HTTPError) as info:
            with _httpx_errors():
                raise cls("what httpcore said")
        assert type(info.value) is getattr(httpx, cls.__name__) and str(info.value) == "what httpcore said"
        assert info.value.__cause__.__class__ is cls
    with pytest.raises(KeyError):  # not httpcore's: as it is
        with _httpx_errors():
            raise KeyError("x")


def test_proxy_from_the_environment_is_still_used(monkeypatch):
    """Client's own transport does not read proxy variables, so with one set
    the client keeps httpx's transport, which does: the request goes to the
    proxy (here a server answering 401 to whatever it is asked)."""
    seen = []

    def head(request: bytes) -> bytes:
        seen.append(request.split(b"\r\n")[0])
        return b"HTTP/1.1 401 No\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: 2\r\n\r\nno"

    with Dribbler(head, drip=b"") as proxy:
        for name in ("http_proxy", "NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        raises(Runner("sync", "http://api.example.invalid", timeout=5, max_retries=0), pc.AuthenticationError,
               "embed", ["a"])
    assert seen == [b"POST http://api.example.invalid/v1/embeddings HTTP/1.1"]


def _ok_body(texts: list[str]) -> bytes:
    """The right response body for ``texts`` (model M06, full size)."""
    return json.dumps(good_body(httpx.Request("POST", "http://x", json={"input": texts, "model": M06}))).encode()


def test_trickle_that_completes_in_time_succeeds(kind):
    """The deadline bounds an attempt, not a slow response that ends within
    it: 15 pieces 0.1 s apart, longer than the 0.5 s read timeout in all,
    shorter than the 10 s deadline."""
    texts = ["slow but fine"]
    body = _ok_body(texts)
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: %d\r\n\r\n" \
        % len(body)
    step = len(body) // 15 + 1
    with Dribbler(head, drip=[body[i:i + step] for i in range(0, len(body), step)], every=0.1) as srv:
        got = Runner(kind, srv.url, timeout=0.5, deadline=10, max_retries=0).embed(texts)
    assert np.array_equal(got.vectors, expected(M06, texts))


@pytest.mark.parametrize("cls", [pc.Client, pc.AsyncClient])
def test_deadline_option(cls):
    def deadline(**kw):
        return cls(api_key=KEY, base_url="http://127.0.0.1:9", **kw).deadline

    assert deadline() == 900.0  # the default read timeout
    assert deadline(timeout=2) == 2.0
    assert deadline(timeout=httpx.Timeout(10, read=3)) == 3.0
    assert deadline(timeout=httpx.Timeout(None)) is None  # no timeouts asked: no deadline either
    assert deadline(timeout=2, deadline=7.5) == 7.5
    assert deadline(deadline=math.inf) is None
    for bad, exc in [(True, TypeError), ("1", TypeError), (0, ValueError), (-1.0, ValueError),
                     (math.nan, ValueError)]:
        with pytest.raises(exc, match="deadline"):
            deadline(deadline=bad)
    c = cls(api_key=KEY, base_url="http://127.0.0.1:9")
    assert c.with_options(timeout=0.25).deadline == 0.25  # a derived default follows the timeout
    assert cls(api_key=KEY, deadline=5).with_options(timeout=1).deadline == 5.0  # a chosen one stays


# ================================================================ 9: a malformed usage

def _body_with_usage(request, usage_json: str | None) -> bytes:
    """A valid response to ``request`` whose ``usage`` is the raw JSON text
    ``usage_json`` (raw: ``1e400`` has no Python spelling json.dumps would write)."""
    body = good_body(request)
    del body["usage"]
    raw = json.dumps(body)
    return raw.encode() if usage_json is None else (raw[:-1] + f', "usage": {usage_json}}}').encode()


BAD_USAGE = {
    "string_tokens": ('{"prompt_tokens": "lots", "total_tokens": 3}', "usage.prompt_tokens"),
    "list_tokens": ('{"prompt_tokens": [1], "total_tokens": 3}', "usage.prompt_tokens"),
    "huge_tokens": ('{"prompt_tokens": 1e400, "total_tokens": 3}', "usage.prompt_tokens"),
    "fraction": ('{"prompt_tokens": 2, "total_tokens": 1.5}', "usage.total_tokens"),
    "negative": ('{"prompt_tokens": -3, "total_tokens": 3}', "usage.prompt_tokens"),
    "bool": ('{"prompt_tokens": true, "total_tokens": 3}', "usage.prompt_tokens"),
    "string_cost": ('{"prompt_tokens": 1, "cost": {"total_cost": "free"}}', "usage.cost.total_cost"),
    "huge_cost": ('{"prompt_tokens": 1, "cost": {"input_cost": 1e400}}', "usage.cost.input_cost"),
    "cost_list": ('{"prompt_tokens": 1, "cost": [1]}', "usage.cost"),
    "currency": ('{"prompt_tokens": 1, "cost": {"currency": 5}}', "usage.cost.currency"),
    "not_an_object": ('"plenty"', "usage must be an object"),
}


@pytest.mark.parametrize("damage", sorted(BAD_USAGE))
def test_malformed_usage_is_a_validation_error_keeping_earlier_batches(kind, delays, damage):
    """Batch 2 of 3 has a malformed usage: an APIResponseValidationError
    (status 200, naming the field, not retried) whose ``.partial`` keeps
    batch 1's rows; batch 2's rows are not counted (its response failed a
    check), and nothing was added to the usage by it."""
    usage_json, field = BAD_USAGE[damage]
    texts = make_texts(1100, "usage")
    calls = []

    def handler(request):
        calls.append(request)
        first = json.loads(request.content)["input"][0]
        bad = first == texts[512]
        return httpx.Response(200, content=_body_with_usage(request, usage_json if bad else None))

    c = Runner(kind, "http://test", transport=httpx.MockTransport(handler), max_retries=3, max_concurrency=1)
    err = raises(c, pc.APIResponseValidationError, "embed", texts, dimensions=128)
    assert len(calls) == 2 and delays == []
    assert err.status_code == 200 and field in str(err) and "malformed response" in str(err)
    p = err.partial
    assert list(np.flatnonzero(p.filled)) == list(range(512))
    assert np.array_equal(p.vectors[:512], expected(M06, texts[:512], 128))
    err = raises(c, pc.APIResponseValidationError, "create", input=texts[512:520], model=M06)
    assert field in str(err)


def test_usage_shapes_that_are_fine(kind):
    """Absent, null, empty, null fields, integral floats: the request counts,
    the numbers that are there are summed."""
    shapes = [None, "null", "{}", '{"prompt_tokens": null, "cost": null}',
              '{"prompt_tokens": 4.0, "total_tokens": 4, "cost": {"input_cost": 1, "total_cost": 0.5, '
              '"currency": "USD"}}']
    texts = make_texts(len(shapes) * 512, "fine")

    def handler(request):
        first = json.loads(request.content)["input"][0]
        return httpx.Response(200, content=_body_with_usage(request, shapes[texts.index(first) // 512]))

    e = Runner(kind, "http://test", transport=httpx.MockTransport(handler), max_concurrency=1).embed(
        texts, dimensions=128)
    assert np.array_equal(e.vectors, expected(M06, texts, 128))
    u = e.usage
    assert (u.requests, u.prompt_tokens, u.total_tokens, u.input_cost, u.total_cost) == (5, 4, 4, 1.0, 0.5)


def test_usage_add_is_all_or_nothing():
    u = Usage(prompt_tokens=5, total_tokens=5, requests=1)
    before = dict(u.__dict__)
    for usage in ({"prompt_tokens": 2, "total_tokens": "x"}, {"prompt_tokens": 2, "cost": {"total_cost": "free"}},
                  {"prompt_tokens": 2, "cost": {"input_cost": 10 ** 400}}, [1]):
        with pytest.raises(ValueError, match="usage"):
            u.add(usage)
        assert u.__dict__ == before
    u.add({"prompt_tokens": 2, "total_tokens": 3, "cost": {"total_cost": 0.25, "currency": "EUR"}})
    assert (u.prompt_tokens, u.total_tokens, u.total_cost, u.currency, u.requests) == (7, 8, 0.25, "EUR", 2)


# ================================================================ 10: a body that is not its Content-Encoding

def _http(status: int, body: bytes, encoding: str = "gzip") -> bytes:
    return (f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-encoding: {encoding}\r\n"
            f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body


def test_bad_gzip_200_is_a_validation_error_not_retried(kind, delays):
    with Dribbler(_http(200, b'{"data": [], "not": "gzip at all"}'), drip=b"") as srv:
        err = raises(Runner(kind, srv.url, timeout=5, max_retries=2), pc.APIResponseValidationError, "embed", ["a"])
        assert len(srv.outcomes()) == 1 and delays == []  # the server answered, wrongly: not retried
    assert err.status_code == 200 and "Content-Encoding 'gzip'" in str(err)
    assert not err.partial.filled.any()
    key_free(err)


@pytest.mark.parametrize("status, exc, attempts", [(503, pc.InternalServerError, 3),
                                                   (401, pc.AuthenticationError, 1)])
def test_bad_gzip_error_body_keeps_its_status(kind, delays, status, exc, attempts):
    with Dribbler(_http(status, b"upstream said no, not in gzip"), drip=b"") as srv:
        err = raises(Runner(kind, srv.url, timeout=5, max_retries=2), exc, "embed", ["a"])
        assert len(srv.outcomes()) == attempts and len(delays) == attempts - 1
    assert err.status_code == status and "Content-Encoding 'gzip'" in str(err)


def test_bad_gzip_decoded_by_the_transport_itself(kind, delays):
    """A transport that reads the body before handing the response over
    (MockTransport with ``content=``) raises the DecodingError before the
    client sees a status: a validation error all the same, not retried."""
    calls = []

    def handler(request):
        calls.append(request)
        return httpx.Response(200, headers={"content-encoding": "gzip"}, content=b"not gzip")

    err = raises(Runner(kind, "http://test", transport=httpx.MockTransport(handler), max_retries=2),
                 pc.APIResponseValidationError, "embed", ["a"])
    assert len(calls) == 1 and delays == [] and "Content-Encoding" in str(err)


def test_real_gzip_is_decoded(kind):
    texts = ["zipped"]
    with Dribbler(_http(200, gzip.compress(_ok_body(texts))), drip=b"") as srv:
        got = Runner(kind, srv.url, timeout=5, max_retries=0).embed(texts)
    assert np.array_equal(got.vectors, expected(M06, texts))


# ================================================================ 11: the key never reaches an exception

def _echo(request: httpx.Request) -> httpx.Response:
    """A server that quotes the request's Authorization header back, in
    every place an error can show: message, body fields, keys, headers."""
    auth = request.headers["authorization"]
    what = json.loads(request.content)["input"][0]
    if what == "json":
        return httpx.Response(401, headers={"www-authenticate": auth},
                              json={"error": {"message": f"rejected {auth}", "type": auth, auth: [auth]}})
    if what == "text":
        return httpx.Response(403, text=f"forbidden: Authorization: {auth}")
    if what == "detail":
        return httpx.Response(422, json={"detail": [{"loc": ["header", auth], "msg": auth, "type": "x"}]})
    if what == "cut":  # the key straddles the 500 characters a message quotes
        return httpx.Response(400, text="x" * 480 + auth)
    body = good_body(request)
    if what == "usage":
        body["usage"]["prompt_tokens"] = auth
    elif what == "usage_cut":  # a value quoted cut at 60 characters, mid-key
        body["usage"]["prompt_tokens"] = "x" * 40 + auth
    elif what == "model":
        body["model"] = auth
    return httpx.Response(200, json=body)


@pytest.mark.parametrize("what, exc", [("json", pc.AuthenticationError), ("text", pc.PermissionDeniedError),
                                       ("detail", pc.UnprocessableEntityError), ("cut", pc.BadRequestError),
                                       ("usage", pc.APIResponseValidationError),
                                       ("usage_cut", pc.APIResponseValidationError),
                                       ("model", pc.APIResponseValidationError)])
def test_echoed_key_is_redacted(kind, what, exc):
    c = Runner(kind, "http://test", transport=httpx.MockTransport(_echo), max_retries=0)
    err = raises(c, exc, "embed", [what])
    key_free(err)
    assert "[redacted]" in str(err) or "[redacted]" in repr(err.body), str(err)
    err = raises(c, exc, "create", input=[what], model=M06)
    key_free(err)


def test_echoed_key_is_redacted_in_body_and_headers(kind):
    err = raises(Runner(kind, "http://test", transport=httpx.MockTransport(_echo)), pc.AuthenticationError,
                 "embed", ["json"])
    assert err.body == {"error": {"message": "rejected Bearer [redacted]", "type": "Bearer [redacted]",
                                  "Bearer [redacted]": ["Bearer [redacted]"]}}
    assert err.response.status_code == 401
    assert err.response.headers["www-authenticate"] == "Bearer [redacted]"
    assert err.request.headers["authorization"] == f"Bearer {KEY}"  # the request as sent (its repr masks it)


def test_echoed_key_over_a_socket(kind):
    """The same over loopback: a server that copies the request's header lines into its error body."""
    def head(request: bytes) -> bytes:
        body = json.dumps({"error": {"message": request.split(b"\r\n\r\n")[0].decode()}}).encode()
        return b"HTTP/1.1 401 No\r\ncontent-type: application/json\r\nconnection: close\r\n" \
            b"content-length: %d\r\n\r\n" % len(body) + body

    with Dribbler(head, drip=b"") as srv:
        err = raises(Runner(kind, srv.url, timeout=5, max_retries=0), pc.AuthenticationError, "embed", ["a"])
    assert "authorization: bearer [redacted]" in str(err).lower()
    key_free(err)
