"""What every request passes before its route: bearer auth, the body size
limit, then fault injection.

Plain ASGI middleware rather than FastAPI dependencies, because FastAPI reads
and parses the body before it runs dependencies: an unauthenticated request
with a broken body would get a 422 instead of a 401, and any client could
make the server read and parse up to the size limit without a key.  For the
same reason the size limit is ours rather than FastAPI's ``max_body_size``:
that one wraps the whole app, so it answered an over-long ``Content-Length``
before auth (even replacing the 401 with its 413), and in ``text/plain``.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence

from starlette.exceptions import HTTPException

from .faults import FAULT_HEADER, FAULT_SCOPE_KEY, STATUS_FAULTS, FaultPlan, retry_after

API_PREFIX = "/v1/"


def error_body(status: int, kind: str, message: str) -> bytes:
    """The JSON error shape for everything but 422s (OpenAI's, which Perplexity's API uses)."""
    return json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()


async def send_response(send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


def _is_api(scope) -> bool:
    return scope["type"] == "http" and scope["path"].startswith(API_PREFIX)


def bearer_token(scope) -> bytes | None:
    """The token of the request's ``Authorization: Bearer <token>`` (None: no such header)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, rest = value.strip().partition(b" ")
            return rest.strip() if scheme.lower() == b"bearer" else None
    return None


class BearerAuth:
    """401 unless ``Authorization: Bearer <key>`` names a configured key.

    Every key is compared, each in constant time (``hmac.compare_digest``),
    so neither a key's content nor which key matched shows in the timing.
    """

    def __init__(self, app, keys: Sequence[str]):
        self.app = app
        self.keys = [k.encode() for k in keys]

    async def __call__(self, scope, receive, send):
        if not _is_api(scope):
            return await self.app(scope, receive, send)
        token = bearer_token(scope)
        if token is None:
            return await self._reject(send, "Missing bearer token: send 'Authorization: Bearer <API key>'")
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(token, key)
        if not matched:
            return await self._reject(send, "Invalid API key")
        return await self.app(scope, receive, send)

    @staticmethod
    async def _reject(send, message: str) -> None:
        await send_response(send, 401, error_body(401, "authentication_error", message),
                            [(b"www-authenticate", b"Bearer")])


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body without ``Content-Length`` passes the
    limit: FastAPI re-raises an ``HTTPException`` from reading the body (any other
    error would become its 400), so the app's handler answers it in the JSON shape."""

    def __init__(self, limit: int):
        super().__init__(413, f"Request body over the limit of {limit} bytes")


class BodyLimit:
    """413 for a body over ``limit`` bytes: at once, unread, when ``Content-Length``
    says so; else while reading, as soon as the bytes received pass it."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
        # uvicorn's HTTP parser refuses a Content-Length that is not a number; should
        # one get here, the count while reading still holds the limit
        if length.isdigit() and int(length) > self.limit:
            # answered from the headers: not one byte of the body is read, or waited for
            return await send_response(send, 413, error_body(413, "request_too_large",
                                                             BodyTooLarge(self.limit).detail))
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        # the app's handler for HTTPExceptions (inside this middleware) answers the raise
        return await self.app(scope, limited, send)


class InjectFaults:
    """Draws each API request's fault; answers the status faults (429/500/503)
    itself, and hands the others to the response stream in the request's scope."""

    def __init__(self, app, plan: FaultPlan):
        self.app = app
        self.plan = plan

    async def __call__(self, scope, receive, send):
        if not _is_api(scope):
            return await self.app(scope, receive, send)
        fault = self.plan.draw()
        if fault.mode in STATUS_FAULTS:
            status, kind, message = STATUS_FAULTS[fault.mode]
            headers = [(FAULT_HEADER.encode(), fault.mode.encode())]
            if status != 500:
                headers.append((b"retry-after", retry_after(self.plan.config).encode()))
            return await send_response(send, status, error_body(status, kind, message), headers)
        return await self.app({**scope, FAULT_SCOPE_KEY: fault}, receive, send)
