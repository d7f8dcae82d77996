"""Running the server: ``serve_socket`` for the CLI, ``running`` for tests, benchmarks
and the CLI's embedded default.

Both listen on a socket they bind themselves (uvicorn's ``fd=`` path assumes
a Unix socket), which is also how ``running`` learns its free port without a
race: the socket is bound to port 0 and listening before uvicorn starts.

Stopping: SIGINT and SIGTERM are one request, "stop cleanly", and
``serve_socket`` returns normally after it (the CLI then exits 0), whenever the
signal lands: while the app loads (startup is abandoned), before or after
uvicorn installs its own handlers, or while workers run.  The request is a flag
that each step of startup reads (``pplx_codec._stop_signals``: an exception raised from
a handler can be dropped on its way, and the server then served on).

Why our own handlers: uvicorn alone would re-raise the signal it caught once it
has shut down, to whatever handler was there before it: the process then died
of SIGTERM (-15) with one worker, raised KeyboardInterrupt for SIGINT, or
exited 0 if SIGINT was ignored when it started (a background job), and exited
0 with several workers.
"""

from __future__ import annotations

import argparse
import copy
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.supervisors import Multiprocess
from uvicorn.supervisors.multiprocess import SIGNALS as SUPERVISOR_SIGNALS

from .._stop_signals import Stop, StopRequested, stop_signals
from .app import create_app
from .config import CONFIG_ENV, ServerConfig
from .http_errors import JSONErrorsH11Protocol
from .received import ReceivedInputs

LOOPBACK = ("127.0.0.1", "localhost", "::1")
_APP_FACTORY = "pplx_codec.server.app:app_from_env"


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    # proto must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted
    # connections only then, and without it every keep-alive response waits
    # ~40 ms for a delayed ACK
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _uvicorn_config(app, *, workers: int, log_level: str, access_log: bool) -> uvicorn.Config:
    # uvicorn's logging setup, plus this package's logger (fault draws, backend details) on the same handler
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["pplx_codec"] = {"handlers": ["default"], "level": log_level.upper(), "propagate": False}
    return uvicorn.Config(app, factory=isinstance(app, str), workers=workers, log_level=log_level,
                          log_config=log_config, access_log=access_log, timeout_graceful_shutdown=5,
                          http=JSONErrorsH11Protocol)  # malformed HTTP answered in the API's JSON shape


def serve_socket(config: ServerConfig, sock: socket.socket, *, workers: int = 1, log_level: str = "info",
                 access_log: bool = True) -> None:
    """Serve ``config`` on ``sock`` until SIGINT or SIGTERM (blocks); return after
    the clean shutdown, whenever the signal lands (see the module's docstring)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    try:
        with stop_signals() as stop:
            stop.check()  # a stop noted before this call (the CLI's handlers are in from its start)
            if workers == 1:
                _serve_one(config, sock, stop, log_level, access_log)
            else:
                _serve_many(config, sock, workers, stop, log_level, access_log)
    except StopRequested:
        pass


def _serve_one(config: ServerConfig, sock: socket.socket, stop: Stop, log_level: str, access_log: bool) -> None:
    with stop.abandoning():  # a model load may take a while: a stop does not wait for it
        app = create_app(config)
    server = uvicorn.Server(_uvicorn_config(app, workers=1, log_level=log_level, access_log=access_log))
    stop.serving(server)
    # uvicorn's handlers replace ours while it runs; a signal before that has set
    # should_exit, which nothing resets: uvicorn starts, then drains at once
    server.run(sockets=[sock])
    if not server.started:
        raise RuntimeError("the server did not start (see the log above)")


def _serve_many(config: ServerConfig, sock: socket.socket, workers: int, stop: Stop, log_level: str,
                access_log: bool) -> None:
    # worker processes import the app factory afresh: hand them the config.
    # Check it here first, so a bad config fails once and clearly.
    config.accepted_keys()
    if config.backend == "sentence-transformers" and not (config.model_path and os.path.isdir(config.model_path)):
        raise ValueError(f"model path {config.model_path!r} is not a directory")
    os.environ[CONFIG_ENV] = config.to_json()
    # the supervisor installs its own handlers (SIGINT and SIGTERM stop the workers and
    # return, as a stop should) and never puts back the ones it found: this does
    main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.getsignal(sig) for sig in SUPERVISOR_SIGNALS} if main else {}
    try:
        supervisor = Multiprocess(_uvicorn_config(_APP_FACTORY, workers=workers, log_level=log_level,
                                                  access_log=access_log), sockets=[sock])
        # its handlers are in now (they queue a signal for its loop): one that came
        # before them is only in our flag, read here, before any worker starts
        stop.check()
        supervisor.run()
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: a handler not set from Python, which cannot be put back
                signal.signal(sig, handler)


@contextmanager
def running(*, host: str = "127.0.0.1", port: int = 0, workers: int = 1, separate_process: bool | None = None,
            log_level: str = "warning", startup_timeout: float = 120.0, received: ReceivedInputs | None = None,
            **config) -> Iterator[str]:
    """Start a server on a free loopback port in the background; yield its base URL.

    ``config``: ``ServerConfig`` fields (``api_keys=["k"]`` or ``auth=False``,
    ``backend``, ``faults={"429": 0.1}``, ...).  The server runs in a thread of
    this process, or, with ``workers > 1`` or ``separate_process=True``, in a
    child process (no GIL shared with the caller: what a benchmark wants).
    Stopped, and its port freed, when the block exits.  ``received``: a
    ``ReceivedInputs`` the endpoints log each request to (in-thread servers only).
    """
    if host not in LOOPBACK:
        raise ValueError(f"running() serves on loopback only ({', '.join(LOOPBACK)}), not {host!r}")
    cfg = ServerConfig(**config)
    sock = bind(host, port)
    try:
        if separate_process if separate_process is not None else workers > 1:
            if received is not None:
                raise ValueError("received= needs the server in this process (workers=1, no separate_process)")
            with _in_child(cfg, sock, workers, log_level, startup_timeout) as url:
                yield url
        else:
            if workers != 1:
                raise ValueError("workers > 1 needs separate_process=True")
            with _in_thread(cfg, sock, log_level, startup_timeout, received) as url:
                yield url
    finally:
        sock.close()


@contextmanager
def _in_thread(config: ServerConfig, sock: socket.socket, log_level: str, timeout: float,
               received: ReceivedInputs | None = None) -> Iterator[str]:
    app = create_app(config, received=received)  # a bad config or model raises here, in the caller
    server = uvicorn.Server(_uvicorn_config(app, workers=1, log_level=log_level, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="pplx-codec-server",
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server stopped while starting (see the log)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"the server did not start within {timeout} s")
        time.sleep(0.01)
    try:
        yield base_url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def _in_child(config: ServerConfig, sock: socket.socket, workers: int, log_level: str,
              timeout: float) -> Iterator[str]:
    config.accepted_keys()  # fail here, not in the child
    env = dict(os.environ, **{CONFIG_ENV: config.to_json()})
    cmd = [sys.executable, "-m", "pplx_codec.server", "--fd", str(sock.fileno()),
           "--workers", str(workers), "--log-level", log_level]
    child = subprocess.Popen(cmd, env=env, pass_fds=[sock.fileno()])
    url = base_url(sock)
    try:
        _wait_ready(child, url, timeout)
        yield url
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _wait_ready(child: subprocess.Popen, url: str, timeout: float) -> None:
    # the socket listens already, so a connection just waits until a worker
    # accepts it: ask for the schema until one answers
    deadline = time.monotonic() + timeout
    while True:
        if child.poll() is not None:
            raise RuntimeError(f"the server process exited with code {child.returncode} while starting")
        try:
            with urllib.request.urlopen(url + "/openapi.json", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server process did not answer within {timeout} s")
        time.sleep(0.05)


def child_main(argv: list[str] | None = None) -> int:
    """Entry of ``running()``'s child process: config from the environment, socket inherited."""
    p = argparse.ArgumentParser(prog="python -m pplx_codec.server")
    p.add_argument("--fd", type=int, required=True)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--log-level", default="warning")
    args = p.parse_args(argv)
    sock = socket.socket(fileno=args.fd)
    serve_socket(ServerConfig.from_json(os.environ[CONFIG_ENV]), sock, workers=args.workers,
                 log_level=args.log_level, access_log=False)
    return 0

