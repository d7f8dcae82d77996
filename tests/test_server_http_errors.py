"""Requests that are not HTTP get the API's JSON error shape, not uvicorn's
text/plain 400 (issue 22): raw bytes over a socket to 127.0.0.1, the answer
parsed by h11."""

from __future__ import annotations

import json
import logging
import socket
import time
from urllib.parse import urlsplit

import h11
import pytest

from pplx_codec.server import running
from pplx_codec.server.http_errors import error_response
from server_support import KEY, header

HEAD = b"POST /v1/embeddings HTTP/1.1\r\nhost: x\r\n"
AUTH = f"authorization: Bearer {KEY}\r\n".encode()


@pytest.fixture(scope="module")
def server():
    with running(api_keys=[KEY], backend="hash") as url:
        parts = urlsplit(url)
        yield parts.hostname, parts.port


def exchange(server, *parts: bytes, pause: float = 0.0, limit: float = 10.0):
    """Send ``parts`` (``pause`` s apart), then read to the end of the connection:
    the h11 response, its body, and whether the server closed the connection."""
    with socket.create_connection(server, timeout=limit) as sock:
        for i, part in enumerate(parts):
            if i and pause:
                time.sleep(pause)
            try:
                sock.sendall(part)
            except OSError:  # the server answered and closed before taking it all
                break
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="POST", target="/", headers=[("host", "x")]))  # h11 reads a response only then
        response, body, closed = None, bytearray(), False
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                closed = sock.recv(1) == b""  # the server closes after its answer
                break
            elif isinstance(event, h11.ConnectionClosed):
                break
        return response, bytes(body), closed


MALFORMED = [
    ("bad request line", [b"GARBAGE\r\n\r\n"], 400, "illegal request line"),
    ("no method", [b" /v1/embeddings HTTP/1.1\r\n\r\n"], 400, "illegal request line"),
    ("invalid header bytes", [HEAD + b"x-bad\x01: y\r\n\r\n"], 400, "illegal header line"),
    ("NUL in a header value", [HEAD + b"x-v: a\x00b\r\n\r\n"], 400, "illegal header line"),
    ("header without a colon", [HEAD + b"just words\r\n\r\n"], 400, "illegal header line"),
    ("bad Content-Length", [HEAD + b"content-length: abc\r\n\r\n"], 400, "bad Content-Length"),
    ("negative Content-Length", [HEAD + b"content-length: -1\r\n\r\n"], 400, "bad Content-Length"),
    ("conflicting Content-Length", [HEAD + b"content-length: 1\r\ncontent-length: 2\r\n\r\n"], 400,
     "conflicting Content-Length headers"),
    ("unknown Transfer-Encoding", [HEAD + b"transfer-encoding: gzip\r\n\r\n"], 501,
     "Only Transfer-Encoding: chunked is supported"),
    ("broken chunk", [HEAD + AUTH + b"transfer-encoding: chunked\r\n\r\nzz\r\n"], 400, "illegal chunk header"),
    # h11 holds at most 16 KiB of an incomplete head: past it, 431
    ("headers too large", [HEAD + b"x-big: ", b"a" * 70_000], 431, "Receive buffer too long"),
]


@pytest.mark.parametrize("parts, status, what", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_http_gets_the_json_error_shape(server, parts, status, what):
    response, body, closed = exchange(server, *parts, pause=0.2)
    assert response.status_code == status
    assert header(response, b"content-type") == b"application/json"
    assert header(response, b"content-length") == str(len(body)).encode()
    kind = {431: "request_too_large", 501: "not_implemented"}.get(status, "invalid_request_error")
    assert json.loads(body) == {"error": {"message": f"Invalid HTTP request: {what}", "type": kind, "code": status}}
    assert closed


def test_the_offending_bytes_are_not_sent_back(server):
    """h11 quotes a bad header line in its message; the answer leaves the quote out
    (the line may be the request's Authorization)."""
    response, body, _ = exchange(server, HEAD + b"Authorization Bearer " + KEY.encode() + b"\r\n\r\n")
    assert response.status_code == 400 and KEY.encode() not in body and b"Authorization" not in body
    assert json.loads(body)["error"]["message"] == "Invalid HTTP request: illegal header line"


def test_broken_chunk_after_the_app_answered_closes_quietly(server, caplog):
    """No key: the app answers 401 before reading the body; the broken chunk that follows
    cannot get a second response, so the connection closes after the 401.  (uvicorn's
    own 400 tried to send one, and asyncio logged "Fatal error: protocol.data_received()
    call failed" with h11's LocalProtocolError.)"""
    response, body, _ = exchange(server, HEAD + b"transfer-encoding: chunked\r\n\r\n", b"zz\r\n", pause=0.3)
    assert response.status_code == 401 and json.loads(body)["error"]["type"] == "authentication_error"
    time.sleep(0.2)  # the broken chunk is handled after the 401 went out
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_the_server_still_serves_after_malformed_requests(server):
    for _name, parts, *_ in MALFORMED:
        exchange(server, *parts)
    body = json.dumps({"input": ["still here"], "model": "pplx-embed-v1-0.6b", "dimensions": 128}).encode()
    response, data, _ = exchange(server, HEAD + AUTH + b"content-type: application/json\r\nconnection: close\r\n"
                                 + b"content-length: %d\r\n\r\n" % len(body) + body)
    assert response.status_code == 200 and json.loads(data)["data"][0]["index"] == 0


def test_error_response_without_the_error():
    """Should uvicorn call the 400 with no h11 error recorded: a plain 400, JSON all the same."""
    assert error_response(None) == (400, b'{"error": {"message": "Invalid HTTP request", '
                                         b'"type": "invalid_request_error", "code": 400}}')
