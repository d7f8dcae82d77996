"""Crash-safe file system steps: staging directories, fsync, atomic directory
replacement, space reservation.

A store (or a job's ``.partial``) is always built in a staging directory next
to its final path, so the final rename never crosses file systems, and then
installed with one atomic step.  Replacing an existing directory uses Linux's
``renameat2(RENAME_EXCHANGE)``: the old and new directories swap names in one
step, so there is no instant at which the path is missing; the old one is then
deleted under the staging name.  Where the kernel or file system lacks it,
the fallback is two renames (old aside, new in place) with a window of a few
microseconds in which the path does not exist.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
# errnos meaning "this kernel / file system cannot do it": fall back, don't fail
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM}

_libc: ctypes.CDLL | None
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - no C library to load (not Linux)
    _libc = None
_renameat2 = getattr(_libc, "renameat2", None)
_fallocate = getattr(_libc, "fallocate", None)
if _fallocate is not None:
    _fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def fsync_file(f) -> None:
    f.flush()
    os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Make the directory's entries (creations, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")
        fsync_file(f)


def write_npy(path: Path, a: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, a, allow_pickle=False)   # streams: contiguous arrays (memmaps too) are written as they are
        fsync_file(f)


def replace_file(path: Path, write: Callable[[Path], None]) -> None:
    """Rewrite one file atomically: ``write(tmp)`` fills a temp file beside it, renamed over it."""
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def replace_json(path: Path, obj) -> None:
    """Rewrite one JSON file atomically (a temp file renamed over it)."""
    replace_file(path, lambda tmp: write_json(tmp, obj))


def reserve(f, size: int) -> None:
    """Allocate the file's blocks now, so that a full disk is an ``OSError``
    here rather than a SIGBUS later, when a store through a memory map hits a
    hole that cannot be filled.  Calls fallocate(2) itself: glibc's
    posix_fallocate would emulate it on file systems without support by
    writing every block, which takes minutes for a 100 GB job."""
    if _fallocate is None or size <= 0:
        return
    if _fallocate(f.fileno(), 0, 0, size) != 0:
        err = ctypes.get_errno()
        if err in _UNSUPPORTED:
            return  # sparse file then: still correct, only the early error is lost
        raise OSError(err, f"cannot reserve {size} bytes for {f.name}: {os.strerror(err)}")


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically; False when unsupported here."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, f"cannot exchange {a} and {b}: {os.strerror(err)}")


def is_empty_dir(path: Path) -> bool:
    try:
        with os.scandir(path) as it:
            return next(it, None) is None
    except (NotADirectoryError, FileNotFoundError):
        return False


@contextlib.contextmanager
def staging(final: Path):
    """A fresh directory next to ``final``, removed unless it was installed."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{secrets.token_hex(6)}")
    tmp.mkdir()
    try:
        yield tmp
    finally:
        # after install() the staging name holds the replaced directory (or nothing)
        shutil.rmtree(tmp, ignore_errors=True)


def check_replaceable(final: Path, is_ours, what: str) -> None:
    """Refuse to replace anything at ``final`` but an empty directory or one
    that ``is_ours(path)`` recognises (a store, a job's partial)."""
    if not os.path.lexists(final) or is_empty_dir(final):
        return
    if final.is_symlink() or not final.is_dir():
        raise FileExistsError(f"{final} exists and is not a directory: refusing to replace it with {what}")
    if not is_ours(final):
        raise FileExistsError(f"{final} exists and is not {what}: refusing to replace it "
                              "(remove it or choose another path)")


def install(tmp: Path, final: Path, is_ours, what: str) -> None:
    """Put the complete directory ``tmp`` at ``final`` in one atomic step,
    replacing an existing directory only if :func:`check_replaceable` allows."""
    check_replaceable(final, is_ours, what)
    fsync_dir(tmp)
    if not os.path.lexists(final) or is_empty_dir(final):
        os.rename(tmp, final)       # onto nothing or an empty directory: atomic
    elif exchange(tmp, final):
        pass                        # tmp now holds the old directory; staging() deletes it
    else:
        aside = final.with_name(f".{final.name}.old-{secrets.token_hex(6)}")
        os.rename(final, aside)
        os.rename(tmp, final)
        shutil.rmtree(aside, ignore_errors=True)
    fsync_dir(final.parent)
