"""``Client``'s socket stream (pplx_codec._transport.DeadlineStream) after issue 25: its
own non-blocking reads and sends, each trying first and waiting (a capped ``poll``)
only when the socket says it must, and reads of up to ``READ_BYTES`` whatever httpcore
asks for.  What must not change: every wait ends by the attempt's deadline and by
its timeout, an abort of the call ends a wait at once, EOF and resets are what
httpcore expects (``b""``, ``ReadError``/``WriteError``), every byte sent arrives
once, and over TLS too, whose sockets can need to read to write and to write to
read.  And on the wire: the request's bytes are those httpx and ``json.dumps`` made
before (the same head, the same body).

The streams here sit on real loopback sockets (``pair``); the TLS test runs a whole
``Client`` job against a loopback TLS server with a throw-away certificate (made
with the ``openssl`` command) that reads the request slowly and sends the
response in pieces.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time

import httpcore
import httpx
import numpy as np
import pytest

import pplx_codec as pc
from helpers import required_in_ci
from pplx_codec import _stop, _transport
from pplx_codec._json_body import request_body
from test_client import M06, expected, good_body, make_texts

KEY = "transport-test-key"


class Raw(httpcore.NetworkStream):
    """A connected socket as httpcore's stream interface shows it to ``DeadlineStream``."""

    def __init__(self, sock: socket.socket):
        self.sock = sock

    def get_extra_info(self, info: str):
        return self.sock if info == "socket" else None

    def close(self) -> None:
        self.sock.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> Raw:  # as httpcore's SyncStream does
        self.sock.settimeout(timeout)
        return Raw(ssl_context.wrap_socket(self.sock, server_hostname=server_hostname))


class Recording(socket.socket):
    """A socket that notes how much each ``recv`` asked for."""

    asked: list[int]

    def recv(self, size, *args):
        self.asked.append(size)
        return super().recv(size, *args)


def connected(small: bool = False) -> tuple[_transport.DeadlineStream, socket.socket]:
    """A DeadlineStream on one end of a loopback TCP connection, and the other end; ``small``:
    4 KiB kernel buffers both ways (set before the connection, as TCP needs), so that sends
    must wait for the reader."""
    listener = socket.create_server(("127.0.0.1", 0))
    ours = socket.socket()
    if small:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    ours.connect(listener.getsockname())
    theirs, _ = listener.accept()
    listener.close()
    mine = Recording(fileno=ours.detach())
    mine.asked = []
    return _transport.DeadlineStream(Raw(mine)), theirs


@pytest.fixture(params=[False], ids=[""])
def pair(request):
    stream, theirs = connected(request.param)
    yield stream, theirs
    stream.close()
    theirs.close()


@pytest.fixture
def deadline():
    """Sets this thread's attempt deadline (seconds from now), as Client._attempt does."""
    def at(seconds: float) -> None:
        _transport.ATTEMPT.ends = time.monotonic() + seconds
    yield at
    _transport.ATTEMPT.ends, _transport.ATTEMPT.stop = float("inf"), None


def later(seconds: float, fn, *args) -> threading.Thread:
    t = threading.Thread(target=lambda: (time.sleep(seconds), fn(*args)), daemon=True)
    t.start()
    return t


# ================================================================ reads

def test_a_read_asks_for_read_bytes_whatever_httpcore_asks(pair):
    stream, theirs = pair
    theirs.sendall(b"abc")
    assert stream.read(65536, timeout=5) == b"abc"
    assert stream._sock.asked == [_transport.READ_BYTES]  # data there: one recv, no wait
    theirs.sendall(b"d")
    assert stream.read(_transport.READ_BYTES * 2, timeout=5) == b"d"
    assert stream._sock.asked[-1] == _transport.READ_BYTES * 2


def test_a_read_waits_for_data_and_takes_all_there_is(pair):
    stream, theirs = pair
    later(0.1, theirs.sendall, b"x" * 5000)
    got = stream.read(64, timeout=5)
    while len(got) < 5000:
        got += stream.read(64, timeout=5)
    assert got == b"x" * 5000
    assert stream._sock.asked[0] == _transport.READ_BYTES


def test_a_read_ends_at_its_timeout(pair):
    stream, _ = pair
    t0 = time.monotonic()
    with pytest.raises(httpcore.ReadTimeout, match="timed out"):
        stream.read(65536, timeout=0.2)
    assert 0.18 <= time.monotonic() - t0 < 2


def test_a_read_ends_at_the_attempt_s_deadline(pair, deadline):
    stream, theirs = pair
    deadline(0.2)
    t0 = time.monotonic()
    with pytest.raises(httpcore.ReadTimeout, match="timed out"):
        stream.read(65536, timeout=30)
    assert 0.18 <= time.monotonic() - t0 < 2
    theirs.sendall(b"late")  # the deadline passed: no wait starts, data there or not
    with pytest.raises(httpcore.ReadTimeout, match="the attempt's deadline passed"):
        while True:
            stream.read(65536, timeout=30)


def test_end_of_stream(pair):
    stream, theirs = pair
    theirs.sendall(b"last")
    theirs.shutdown(socket.SHUT_WR)
    assert stream.read(10, timeout=5) == b"last"
    assert stream.read(10, timeout=5) == b""


def test_a_reset_is_a_read_error(pair):
    stream, theirs = pair
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    theirs.close()  # a reset
    with pytest.raises(httpcore.ReadError):
        stream.read(10, timeout=5)


def test_an_abort_ends_a_waiting_read_at_once(pair, deadline):
    stream, _ = pair
    stop = _stop.Stop()
    _transport.ATTEMPT.stop = stop
    later(0.2, stop.abort)
    t0 = time.monotonic()
    with pytest.raises(_stop.Stopped):
        stream.read(65536, timeout=30)
    assert time.monotonic() - t0 < 5
    with pytest.raises(_stop.Stopped):  # and an aborted call waits no more
        stream.read(65536, timeout=30)


# ================================================================ sends

@pytest.mark.parametrize("pair", [True], ids=["small buffers"], indirect=True)
def test_a_big_write_arrives_whole_to_a_slow_reader(pair):
    stream, theirs = pair
    data = np.random.default_rng(1).integers(0, 256, 3 << 20, np.uint8).tobytes()
    got = bytearray()

    def drain():
        while len(got) < len(data):
            got.extend(theirs.recv(65536))
            time.sleep(0.001)

    t = threading.Thread(target=drain)
    t.start()
    stream.write(data, timeout=30)
    t.join(30)
    assert bytes(got) == data
    assert not t.is_alive()


@pytest.mark.parametrize("pair", [True], ids=["small buffers"], indirect=True)
def test_a_write_to_a_reader_that_stops_ends_at_its_timeout(pair):
    stream, theirs = pair
    t0 = time.monotonic()
    with pytest.raises(httpcore.WriteTimeout, match="timed out"):
        stream.write(b"x" * (16 << 20), timeout=0.3)
    assert time.monotonic() - t0 < 5


def test_a_write_to_a_closed_peer_is_a_write_error(pair):
    stream, theirs = pair
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    theirs.close()
    time.sleep(0.05)
    with pytest.raises(httpcore.WriteError):
        for _ in range(3):
            stream.write(b"x" * 100_000, timeout=5)


# ================================================================ on the wire, and over TLS

def _read_request(conn: socket.socket) -> tuple[bytes, bytes]:
    data = bytearray()
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b"", b""
        data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += conn.recv(65536)
    return head, body


class Server:
    """A loopback HTTP/1.1 server (TLS when given a context), one thread per
    connection, keeping connections alive; it records each request's head and
    body, waits ``pause`` seconds before reading each request, and answers with
    the rows the reference server would send, in ``pieces`` writes ``gap`` apart."""

    def __init__(self, context: ssl.SSLContext | None = None, pause: float = 0.0, pieces: int = 1,
                 gap: float = 0.0, rcvbuf: int | None = None):
        self.context, self.pause, self.pieces, self.gap = context, pause, pieces, gap
        self.requests: list[tuple[bytes, bytes]] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        if rcvbuf:  # accepted sockets inherit it: a client's sends block soon
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.port = self._listener.getsockname()[1]
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
            while True:
                time.sleep(self.pause)
                head, body = _read_request(conn)
                if not head:
                    return
                self.requests.append((head, body))
                out = json.dumps(good_body(type("R", (), {"content": body}))).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n" % len(out))
                step = -(-len(out) // self.pieces)
                for at in range(0, len(out), step):
                    time.sleep(self.gap)
                    conn.sendall(out[at:at + step])
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._listener.close()


def _head_httpx_writes(url: str, body: bytes) -> list[tuple[bytes, bytes]]:
    """The request head httpx wrote before issue 25 (the client's headers as a dict, a str URL)."""
    sent = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json", "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate", "User-Agent": f"pplx-codec/{pc.__version__}"}
    return httpx.Client().build_request("POST", url + "/v1/embeddings", content=body, headers=sent).headers.raw


def _head_lines(head: bytes) -> list[tuple[bytes, bytes]]:
    lines = head.split(b"\r\n")[1:]
    return [(k, v.strip()) for k, v in (line.split(b":", 1) for line in lines)]


def test_plain_requests_are_the_bytes_httpx_and_json_made():
    ts = make_texts(700) + ['quote " backslash \\ newline \n tab \t', "é € \U0001f600", "nul \x00 here"]
    srv = Server(pieces=5, gap=0.01)
    try:
        url = f"http://127.0.0.1:{srv.port}"
        with pc.Client(api_key=KEY, base_url=url, max_concurrency=1) as c:
            out = c.embed(ts, model=M06, dimensions=256)
        np.testing.assert_array_equal(out.vectors, expected(M06, ts, 256))
        assert len(srv.requests) == 2 and srv.connections == 1  # kept alive
        for (head, body), part in zip(srv.requests, (ts[:512], ts[512:]), strict=True):
            fields = {"model": M06, "dimensions": 256, "encoding_format": "base64_int8"}
            assert body == json.dumps({"input": part, **fields}, ensure_ascii=False).encode()
            assert body == request_body(part, fields)
            assert head.split(b"\r\n")[0] == b"POST /v1/embeddings HTTP/1.1"
            assert _head_lines(head) == _head_httpx_writes(url, body)
    finally:
        srv.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        required_in_ci("the TLS transport test", "the openssl command is not installed")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem")], check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


def test_tls_job_reads_and_sends_through_every_wait(certificate, monkeypatch):
    """A TLS server that reads each request only after a pause, through a 4 KiB
    receive buffer (the client's sends must wait), and sends each response in 8
    pieces 20 ms apart (its reads must wait): the rows, on one connection."""
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # httpx.create_ssl_context trusts it
    ts = make_texts(1100, tag="tls")
    srv = Server(context, pause=0.2, pieces=8, gap=0.02, rcvbuf=4096)
    try:
        with pc.Client(api_key=KEY, base_url=f"https://127.0.0.1:{srv.port}", max_concurrency=1,
                       timeout=30) as c:
            out = c.embed(ts, model=M06, dimensions=128)
        np.testing.assert_array_equal(out.vectors, expected(M06, ts, 128))
        assert len(srv.requests) == 3 and srv.connections == 1
        assert [json.loads(b)["input"] for _, b in srv.requests] == [ts[:512], ts[512:1024], ts[1024:]]
    finally:
        srv.close()


def test_tls_stream_sends_and_reads_through_every_wait(certificate):
    """Over ``start_tls`` (ours) on 4 KiB buffers: a 3 MB send to a slow reader waits
    on the TLS socket's want-write, a read of what comes later on its want-read."""
    cert, key = certificate
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    stream, theirs = connected(small=True)
    data = np.random.default_rng(2).integers(0, 256, 3 << 20, np.uint8).tobytes()
    got = bytearray()

    def serve():
        tls = server_context.wrap_socket(theirs, server_side=True)
        while len(got) < len(data):
            got.extend(tls.recv(65536))
            time.sleep(0.001)
        time.sleep(0.1)
        tls.sendall(b"reply" * 1000)

    t = threading.Thread(target=serve)
    t.start()
    waits = []
    readiness = _transport.readiness
    try:
        _transport.readiness = lambda e, own: waits.append(type(e)) or readiness(e, own)
        tls = stream.start_tls(client_context, "127.0.0.1", timeout=10)
        tls.write(data, timeout=30)
        reply = b""
        while len(reply) < 5000:
            reply += tls.read(65536, timeout=10)
    finally:
        _transport.readiness = readiness
        t.join(30)
        stream.close()
    assert bytes(got) == data and reply == b"reply" * 1000
    assert ssl.SSLWantWriteError in waits and ssl.SSLWantReadError in waits


def test_tls_read_ends_at_the_deadline(certificate, monkeypatch):
    """A TLS server that never answers: the attempt ends at its deadline."""
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    srv = Server(context, pause=30)
    try:
        t0 = time.monotonic()
        with pc.Client(api_key=KEY, base_url=f"https://127.0.0.1:{srv.port}", max_retries=0, timeout=30,
                       deadline=0.5) as c, pytest.raises(pc.APITimeoutError, match="0.5 s deadline"):
            c.embed(["a"], model=M06)
        assert time.monotonic() - t0 < 10
    finally:
        srv.close()
