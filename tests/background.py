"""Slow builds started when the session starts, awaited by their tests at the end.

The C harness builds (SIMDe, qemu, the AMX tile model) are each a compiler
and then one single-threaded program, while the rest of the suite keeps one
core busy: started in threads as soon as collection ends (conftest.py), with
their tests moved to the end of the run, they mostly run on the core the
suite leaves idle.  A module registers a starter with `job`; its test calls
`result`, which starts the job itself if the session did not (a test run
on its own, or under -p no:... plugins)."""

from __future__ import annotations

import atexit
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

_pool: ThreadPoolExecutor | None = None
_started: dict[str, Future] = {}
_starters: dict[str, Callable[[Path], Any]] = {}
# test modules whose tests wait on a job: run last (conftest.py)
MODULES = {"test_c_tiers.py", "test_c_amx_model.py"}


def job(name: str):
    """Register fn(tmpdir) -> result as the job `name` (a decorator)."""
    def register(fn):
        _starters[name] = fn
        return fn
    return register


def start(name: str) -> None:
    global _pool
    if name in _started:
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="background-build")
        atexit.register(_pool.shutdown, wait=False, cancel_futures=True)
    tmp = tempfile.TemporaryDirectory(prefix=f"pplx-{name}-")
    atexit.register(tmp.cleanup)
    _started[name] = _pool.submit(_starters[name], Path(tmp.name))


def result(name: str) -> Any:
    start(name)
    return _started[name].result()
