"""What the framework integration tests share: the reference server over
loopback, and no network beyond it (no telemetry, no tokenizer download)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

# Haystack sends telemetry unless told not to, read at its import
os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"

import pytest  # noqa: E402

from pplx_codec.server import running  # noqa: E402
from server_support import KEY  # noqa: E402

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


@contextmanager
def loopback_only() -> Iterator[None]:
    """Every socket connection not to loopback (or a Unix socket) fails at
    once with an ``OSError`` saying where it went: a test that reaches the
    network is a failure, not a slow pass on a connected machine."""
    original = socket.socket.connect, socket.socket.connect_ex

    def guard(address) -> None:
        if isinstance(address, tuple) and address[0] not in _LOOPBACK:
            raise OSError(f"a test tried to reach the network: {address!r}")

    def connect(self, address):
        guard(address)
        return original[0](self, address)

    def connect_ex(self, address):
        guard(address)
        return original[1](self, address)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex = original  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """The reference server (hash backend) over loopback, no network beyond it."""
    with loopback_only(), running(api_keys=[KEY], backend="hash") as url:
        yield url
