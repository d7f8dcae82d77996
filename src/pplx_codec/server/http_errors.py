"""Requests that are not HTTP, answered in the API's JSON error shape.

uvicorn answers a request its HTTP parser refuses (a bad request line, a header
line that is not ``name: value``, a bad or conflicting ``Content-Length``, a
``Transfer-Encoding`` other than chunked, a broken chunk, headers past h11's
size limit) itself, before the app sees it, with a ``text/plain`` 400.  The
server runs uvicorn's h11 protocol with that one answer replaced by
:func:`guards.error_body`'s JSON, status h11's hint (400; 431 for headers too
large; 501 for a transfer coding it does not implement), so every response of
the server has the API's shape.  (With ``httptools`` installed, uvicorn's
default would be its httptools protocol, whose plain 400 this does not cover:
the server names this class instead, so it always parses with h11.)
"""

from __future__ import annotations

import http
import re

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .guards import error_body

_KINDS = {431: "request_too_large", 501: "not_implemented"}
#: where h11 quotes the offending bytes in its message: not sent back (nor a
#: header line the request got wrong, which may be its Authorization)
_QUOTED = re.compile(r":? (?:bytearray\(|b'|b\")")


class _Connection(h11.Connection):
    """h11's connection, keeping the error that ended the peer's side:
    uvicorn hands its 400 only a fixed message."""

    error: h11.RemoteProtocolError | None = None

    def next_event(self):
        try:
            return super().next_event()
        except h11.RemoteProtocolError as e:
            self.error = e
            raise


def error_response(error: h11.RemoteProtocolError | None) -> tuple[int, bytes]:
    """The status and JSON body answering a request h11 refused with ``error``."""
    status = error.error_status_hint if error is not None else 400
    what = _QUOTED.split(str(error), maxsplit=1)[0] if error is not None else ""
    message = f"Invalid HTTP request: {what}" if what else "Invalid HTTP request"
    return status, error_body(status, _KINDS.get(status, "invalid_request_error"), message)


class JSONErrorsH11Protocol(H11Protocol):
    """uvicorn's h11 protocol (``uvicorn.Config(http=...)``), its answer to a
    request h11 cannot parse in the API's JSON error shape."""

    def __init__(self, config, server_state, app_state, _loop=None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        size = config.h11_max_incomplete_event_size
        self._conn = _Connection(h11.SERVER, *(() if size is None else (size,)))
        self.conn = self._conn

    def send_400_response(self, msg: str) -> None:
        if self._conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            # the app answered already (say a 401 before reading the body): no second response
            self.transport.close()
            return
        status, body = error_response(self._conn.error)
        headers = [*self.server_state.default_headers, (b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
        reason = http.HTTPStatus(status).phrase
        for event in (h11.Response(status_code=status, headers=headers, reason=reason), h11.Data(data=body),
                      h11.EndOfMessage()):
            self.transport.write(self._conn.send(event) or b"")
        self.transport.close()
