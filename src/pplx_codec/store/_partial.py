"""The files of a job's ``.partial`` (see ``writer.py``): job.json, its
lock, the data files it preallocates, its log, and the hand-over of the data
files to the committed store."""

from __future__ import annotations

import errno
import fcntl
import json
import os
from pathlib import Path

import numpy as np

from .. import _checks
from . import _fs
from ._meta import build_meta, check_dimensions, check_encodings, check_meta

__all__ = ["JOB", "DONE", "LOG", "JOB_FORMAT", "JOB_VERSION", "PARTIAL_WHAT", "JobInUse", "is_partial", "new_job",
           "lock", "create_npy", "write_log", "drop_torn_line", "link_or_move"]


JOB = "job.json"
DONE = "done.npy"
LOG = "log.jsonl"    # Writer.record(): one JSON entry per line, appended and synced
JOB_FORMAT = "pplx-codec-partial"
JOB_VERSION = 1
PARTIAL_WHAT = "a pplx-codec job (.partial)"


def is_partial(path: Path) -> bool:
    """A job's directory, even with a damaged job.json (it may be replaced)."""
    return (path / JOB).is_file() or (path / DONE).is_file()


def new_job(count, dimensions, encodings, bitorder, meta, job_key) -> dict:
    """job.json of a new job, every argument checked."""
    count = _checks.positive_int(count, "count")
    encodings = check_encodings(encodings)
    d = check_dimensions(dimensions, encodings)
    _checks.bitorder(bitorder)
    meta = check_meta(meta)
    build_meta(count, d, encodings, bitorder, meta)   # meta contradicting the job fails now, not at commit
    try:
        job_key = json.loads(json.dumps(job_key, allow_nan=False))   # compare as stored: tuples become lists
    except (TypeError, ValueError) as e:
        raise TypeError(f"job_key must be JSON-serializable (a string is best): {e}") from None
    return dict(format=JOB_FORMAT, version=JOB_VERSION, count=count, dimensions=d, encodings=list(encodings),
                bitorder=bitorder, job_key=job_key, meta=meta)


class JobInUse(RuntimeError):
    """The job's ``.partial`` is locked by another Writer (another process
    is running a job for the same store)."""


def lock(path: Path) -> int:
    """An exclusive lock on the job directory for this Writer's lifetime
    (released by the kernel if the process dies): two processes resuming the
    same job would otherwise interleave rows and done marks."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise JobInUse(f"{path} is in use by another Writer (another process is running this job)") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_npy(path: Path, dtype, shape) -> None:
    m = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)   # header + a sparse file
    del m   # unmapped (nothing written through it)
    with open(path, "r+b") as f:
        _fs.reserve(f, os.fstat(f.fileno()).st_size)


def write_log(path: Path, records: list) -> None:
    """A new log holding ``records`` (a job's, handed on to the job that replaces it), synced."""
    with open(path, "wb") as f:
        f.write(b"".join(json.dumps(r, allow_nan=False).encode("ascii") + b"\n" for r in records))
        _fs.fsync_file(f)


def drop_torn_line(path: Path) -> None:
    """Cut the log after its last newline: a crash in the middle of an append
    leaves a partial line that the next entry must not be glued to."""
    with open(path, "r+b") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)
            _fs.fsync_file(f)


def link_or_move(src: Path, dst: Path) -> list[tuple[Path, Path]]:
    """Hard-link (the job keeps its files until the store is in place); on
    file systems without hard links, move and report it for undoing."""
    try:
        os.link(src, dst)
        return []
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    os.rename(src, dst)
    return [(src, dst)]
