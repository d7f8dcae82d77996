"""The values of ``default_headers`` are masked as the API key is (issue 22):
the client cannot know which are secrets (a proxy's key, a cookie), so none
shows in an error's message, body, request or response headers, nor in a
log line; their names do.  A value that cannot be sent as a header is refused
when the client is made, without quoting it."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

import pplx_codec as pc
from helpers import raises_exactly
from pplx_codec.errors import REDACTED, Secrets
from server_support import KEY
from test_client import Runner, good_body, kind, raises  # noqa: F401 (fixtures)
from test_client_hostile import Dribbler, key_free

PROXY_KEY = "pk-5c1f0e9b77a2d4c3"
COOKIE = "session=0d6e1c2b9a8f7e6d"
HEADERS = {"X-Proxy-Key": PROXY_KEY, "Cookie": COOKIE, "X-Retry": "1"}
SECRETS = (PROXY_KEY, COOKIE, KEY)


def secret_free(*texts: str, secrets=SECRETS) -> None:
    """No secret, nor its first 8 characters (a quote cut off mid-value)."""
    for t in texts:
        for s in secrets:
            assert s[:8] not in t, (s, t)


def check(err: pc.APIError) -> None:
    key_free(err)
    secret_free(str(err), repr(err), repr(err.body), repr(vars(err)))
    for request in (err.request, getattr(getattr(err, "response", None), "request", None)):
        if request is not None:
            secret_free(repr(request), repr(request.headers))
            secret_free(repr(request.headers.multi_items()), secrets=(PROXY_KEY, COOKIE))
            assert {request.headers[name] for name in HEADERS} == {REDACTED}  # the names stay
            assert request.headers["authorization"] == f"Bearer {KEY}"  # as sent (httpx's repr masks it)
    response = getattr(err, "response", None)
    if response is not None:
        secret_free(repr(response.headers.multi_items()))


def _echo(request: bytes) -> bytes:
    """A 401 quoting the request's header lines back in its body and its headers."""
    lines = request.split(b"\r\n\r\n")[0].decode()
    body = json.dumps({"error": {"message": lines, "type": f"Cookie: {COOKIE}", PROXY_KEY: [lines]}}).encode()
    return (b"HTTP/1.1 401 No\r\ncontent-type: application/json\r\nconnection: close\r\nx-echo: %s\r\n"
            b"set-cookie: %s\r\ncontent-length: %d\r\n\r\n" % (PROXY_KEY.encode(), COOKIE.encode(), len(body)) + body)


def test_echoed_default_headers_are_redacted(kind):
    with Dribbler(_echo, drip=b"") as srv:
        err = raises(Runner(kind, srv.url, timeout=5, max_retries=0, default_headers=HEADERS), pc.AuthenticationError,
                     "embed", ["a"])
    check(err)
    assert "x-proxy-key: [redacted]" in str(err).lower() and "cookie: [redacted]" in str(err).lower()
    assert err.body["error"]["type"] == "Cookie: [redacted]" and "[redacted]" in err.body["error"]
    assert err.response.headers["x-echo"] == err.response.headers["set-cookie"] == REDACTED
    assert err.response.status_code == 401


def test_a_short_value_is_masked_in_the_request_only(kind):
    """X-Retry: 1 is not looked for in text (it would mask the 1 of "401"), only in ``request``."""
    with Dribbler(_echo, drip=b"") as srv:
        err = raises(Runner(kind, srv.url, timeout=5, max_retries=0, default_headers=HEADERS), pc.AuthenticationError,
                     "embed", ["a"])
    assert str(err).startswith("Error code: 401 - ") and "x-retry: 1" in str(err).lower()
    assert err.request.headers["x-retry"] == REDACTED


@pytest.mark.parametrize("answer, exc", [
    (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n{", pc.APIConnectionError),  # cut off: a transport error
    (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n[]",
     pc.APIResponseValidationError),
    (b"HTTP/1.1 503 X\r\ncontent-length: 0\r\n\r\n", pc.InternalServerError),
])
def test_every_error_masks_its_request(kind, answer, exc):
    with Dribbler(answer, drip=b"", limit=0.3) as srv:
        err = raises(Runner(kind, srv.url, timeout=5, max_retries=0, default_headers=HEADERS), exc, "embed", ["a"])
    check(err)
    assert err.request is not None


def test_logs_hold_no_default_header(kind, caplog):
    """Nothing the client or httpx logs, DEBUG included, holds a default header's
    value: request headers are never logged.  (httpcore's DEBUG trace does log the
    response headers as received: a server echoing one there shows it, as for the
    key; see the README.)"""
    caplog.set_level(logging.DEBUG)
    body = json.dumps({"error": {"message": f"denied for {PROXY_KEY} with {COOKIE}"}}).encode()
    answer = b"HTTP/1.1 403 No\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body) + body
    with Dribbler(answer, drip=b"") as srv:
        err = raises(Runner(kind, srv.url, timeout=5, max_retries=0, default_headers=HEADERS),
                     pc.PermissionDeniedError, "embed", ["a"])
    logging.getLogger("test").error("failed: %s %r %r", err, err.body, err.request.headers)
    assert caplog.records and any(r.name.startswith("httpcore") for r in caplog.records)
    secret_free(caplog.text, *(r.getMessage() for r in caplog.records))


@pytest.mark.parametrize("cls", [pc.Client, pc.AsyncClient])
def test_repr_shows_no_header(cls):
    c = cls(api_key=KEY, base_url="http://127.0.0.1:9", default_headers=HEADERS)
    secret_free(repr(c), repr(c.with_options(max_retries=1)))


def test_secrets_rule():
    s = Secrets.of("sk-key-0123456789", {"A": "short", "B": "a-longer-value", "C": "a-longer-value-still"})
    assert s.texts == ("a-longer-value-still", "sk-key-0123456789", "a-longer-value")  # longest first
    assert s.headers == {"a", "b", "c"}
    assert s.mask("x a-longer-value-still y a-longer-v z short") == "x [redacted] y [redacted] z short"
    request = httpx.Request("POST", "http://x", headers={"a": "short", "d": "kept"}, content=b"{}")
    masked = s.request(request)
    assert masked.headers["a"] == REDACTED and masked.headers["d"] == "kept" and masked.content == b"{}"
    assert request.headers["a"] == "short"  # the request as sent is not changed
    assert Secrets.of("sk-key-0123456789", {}).request(request) is request


BAD_HEADERS = [
    ({"X-Key": "secret-value\n"}, ValueError, "default_headers['X-Key'] cannot be sent in an HTTP header: it holds "
                                               "a line feed at position 12 (the value is not shown)"),
    ({"X-Key": "secret\r\nX-Injected: 1"}, ValueError, "default_headers['X-Key'] cannot be sent in an HTTP header: "
                                                        "it holds a carriage return at position 6 (the value is not "
                                                        "shown)"),
    ({"X-Key": "secret\x00value"}, ValueError, "default_headers['X-Key'] cannot be sent in an HTTP header: it holds "
                                                "a NUL at position 6 (the value is not shown)"),
    ({"X-Key": " secret-value"}, ValueError, "default_headers['X-Key'] cannot be sent in an HTTP header: it holds "
                                              "whitespace at its start or end (the value is not shown)"),
    ({"X-Key": "sécret-value"}, ValueError, "default_headers['X-Key'] cannot be sent in an HTTP header: it holds a "
                                             "character that is not ASCII at position 1 (the value is not shown)"),
    ({"X-Key": 12345678}, TypeError, "default_headers['X-Key'] must be a str, got int"),
    ({"X Key": "v"}, ValueError, "default_headers: 'X Key' is not an HTTP header name"),
    ({"X-Key:": "v"}, ValueError, "default_headers: 'X-Key:' is not an HTTP header name"),
    ({"": "v"}, ValueError, "default_headers: '' is not an HTTP header name"),
]


@pytest.mark.parametrize("cls", [pc.Client, pc.AsyncClient])
@pytest.mark.parametrize("headers, exc, message", BAD_HEADERS)
def test_unsendable_headers_are_refused_unquoted(cls, headers, exc, message):
    """Before: an APIConnectionError at every attempt (retried), quoting the value
    (``LocalProtocolError: Illegal header value b'secret-value\\n'``), or a bare
    UnicodeEncodeError."""
    with raises_exactly(exc, message):
        cls(api_key=KEY, default_headers=headers)


def test_unsendable_key_is_refused_unquoted(monkeypatch):
    with raises_exactly(ValueError, "the API key cannot be sent in an HTTP header: it holds a line feed at "
                                    "position 19 (the value is not shown)"):
        pc.Client(api_key=KEY + "\n")  # as read from a file
    monkeypatch.setenv("PERPLEXITY_API_KEY", " " + KEY)
    with raises_exactly(ValueError, "the API key cannot be sent in an HTTP header: it holds whitespace at its "
                                    "start or end (the value is not shown)"):
        pc.Client()


def test_fine_headers_are_sent_as_given(kind):
    seen = []

    def handler(request):
        seen.append({k: request.headers[k] for k in ("x-proxy-key", "cookie", "x-retry", "x-empty", "x-tab")})
        return httpx.Response(200, json=good_body(request))

    headers = {**HEADERS, "X-Empty": "", "X-Tab": "a\tb"}
    Runner(kind, "http://test", transport=httpx.MockTransport(handler), max_retries=0,
           default_headers=headers).embed(["a"])
    assert seen == [{"x-proxy-key": PROXY_KEY, "cookie": COOKIE, "x-retry": "1", "x-empty": "", "x-tab": "a\tb"}]
