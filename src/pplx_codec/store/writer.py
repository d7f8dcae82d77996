"""Resumable, incremental construction of a store.

A job writes into ``<path>.partial/``: the final ``vectors.npy`` /
``codes.npy`` preallocated at their full shapes and written in place through
memory maps, a ``done.npy`` row mask, ``job.json`` (the parameters, meta
and a caller's job key) and, once :meth:`Writer.record` is used, ``log.jsonl``
(the caller's records, e.g. each chunk's usage, kept across runs).  Rows count as done only after their data is synced
to disk, and the mask is synced after that, so after a crash at any instant
every row marked done holds its data.  ``commit()`` installs the finished
store with the same atomic replacement as :func:`save`.  At every instant the
path holds the previous store (or nothing) or the new one, and the
``.partial`` can be resumed until the new store is in place.
"""

from __future__ import annotations

import errno
import fcntl
import json
import operator
import os
import shutil
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from .. import _checks
from . import _fs
from ._core import finish, install, load, open_npy
from ._meta import (
    FILES,
    build_meta,
    check_dimensions,
    check_encodings,
    check_meta,
    check_rows,
    is_store,
    json_encodings,
    json_int,
    partial_path,
    row_width,
)
from ._stored import Stored
from ._texts import check_texts

__all__ = ["Writer"]

JOB = "job.json"
DONE = "done.npy"
LOG = "log.jsonl"    # Writer.record(): one JSON entry per line, appended and synced
JOB_FORMAT = "pplx-codec-partial"
JOB_VERSION = 1
_PARTIAL = "a pplx-codec job (.partial)"


def _is_partial(path: Path) -> bool:
    """A job's directory, even with a damaged job.json (it may be replaced)."""
    return (path / JOB).is_file() or (path / DONE).is_file()


def _job(count, dimensions, encodings, bitorder, meta, job_key) -> dict:
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


def _lock(path: Path) -> int:
    """An exclusive lock on the job directory for this Writer's lifetime
    (released by the kernel if the process dies): two processes resuming the
    same job would otherwise interleave rows and done marks."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RuntimeError(f"{path} is in use by another Writer (another process is running this job)") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _create_npy(path: Path, dtype, shape) -> None:
    m = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)   # header + a sparse file
    del m   # unmapped (nothing written through it)
    with open(path, "r+b") as f:
        _fs.reserve(f, os.fstat(f.fileno()).st_size)


class Writer:
    """Fills a store row range by row range, across crashes and restarts.

    Build one with :meth:`create`, :meth:`open` or :meth:`resume_or_create`;
    then :meth:`write` rows in any order, and :meth:`commit` when
    :meth:`missing` is empty.  One Writer per job at a time (a lock enforces
    it across processes); a Writer is not thread-safe.
    """

    def __init__(self, final: Path, lock_fd: int, resumed: bool):
        # use create(), open() or resume_or_create()
        self.path = final
        self.partial = partial_path(final)
        self.resumed = resumed
        self._close_lock = weakref.finalize(self, os.close, lock_fd)
        try:
            job = json.loads((self.partial / JOB).read_bytes())
            if not isinstance(job, dict) or job.get("format") != JOB_FORMAT:
                raise ValueError(f"not a {JOB_FORMAT} job")
            if type(job.get("version")) is not int or job["version"] != JOB_VERSION:
                raise ValueError(f"unsupported job version {job.get('version')!r}")
            # the JSON types first (a bare string of encodings would pass as its letters), then the values
            json_int(job["count"], "count", 1)
            json_int(job["dimensions"], "dimensions", 1)
            job = _job(job["count"], job["dimensions"], json_encodings(job["encodings"]), job["bitorder"],
                       job["meta"], job["job_key"])
        except (ValueError, KeyError, TypeError) as e:
            self._close_lock()
            raise ValueError(f"{self.partial / JOB}: corrupt job: {e}") from None
        self._job = job
        try:
            self._arrays = {e: open_npy(self.partial / FILES[e][0], FILES[e][1],
                                        (self.count, row_width(e, self.dimensions)), "r+") for e in self.encodings}
            self._done: np.memmap | None = open_npy(self.partial / DONE, np.dtype(bool), (self.count,), "r+")
        except BaseException:
            self._close_lock()
            raise
        self._pending: list[slice | np.ndarray] = []   # rows written, not yet marked done
        self._log_checked = False
        self._closed = False

    # --- construction ---------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike[str], count: int, dimensions: int, encodings=("int8",),
               bitorder: str = "little", meta: dict | None = None, *, job_key=None) -> Writer:
        """Start a fresh job for the store ``path`` (an existing ``.partial``
        is discarded): ``count`` rows of ``dimensions``, ``encodings`` a subset
        of ``("int8", "binary")``, codes in ``bitorder``.  The files are
        allocated at full size now, so a full disk fails here."""
        final = Path(path)
        job = _job(count, dimensions, encodings, bitorder, meta, job_key)
        _fs.check_replaceable(final, is_store, "a pplx-codec store")   # the commit would refuse: refuse now
        partial = partial_path(final)
        with _fs.staging(partial) as tmp:
            for e in job["encodings"]:
                _create_npy(tmp / FILES[e][0], FILES[e][1], (job["count"], row_width(e, job["dimensions"])))
            _create_npy(tmp / DONE, np.dtype(bool), (job["count"],))
            _fs.write_json(tmp / JOB, job)
            fd = _lock(tmp)     # the lock moves with the directory
            old = None
            try:
                if os.path.isdir(partial) and not _fs.is_empty_dir(partial):
                    old = _lock(partial)   # refuse to discard a job another Writer is running
                _fs.install(tmp, partial, _is_partial, _PARTIAL)
            except BaseException:
                os.close(fd)
                raise
            finally:
                if old is not None:
                    os.close(old)
        return cls(final, fd, resumed=False)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Writer:
        """Resume the unfinished job of the store ``path`` (its ``.partial``)."""
        final = Path(path)
        partial = partial_path(final)
        if not (partial / JOB).is_file():
            done = " (the store is committed already)" if is_store(final) else ""
            raise FileNotFoundError(f"no unfinished job at {partial}{done}")
        return cls(final, _lock(partial), resumed=True)

    @classmethod
    def resume_or_create(cls, path: str | os.PathLike[str], count: int, dimensions: int, encodings=("int8",),
                         bitorder: str = "little", meta: dict | None = None, *, job_key) -> Writer:
        """Resume the ``.partial`` if it is this job (the same ``job_key``,
        count, dimensions, encodings and bit order), else start fresh; the
        ``resumed`` attribute tells which.  ``job_key``: JSON identifying the
        input, e.g. a hash of the texts, model and dimensions (required: two
        inputs of the same shape must not resume each other).  A ``meta`` that
        differs from the job's replaces it.  A ``.partial`` whose files are
        damaged is started afresh."""
        final = Path(path)
        want = _job(count, dimensions, encodings, bitorder, meta, job_key)
        if (partial_path(final) / JOB).is_file():
            try:
                writer = cls.open(final)
            except (ValueError, FileNotFoundError):
                writer = None     # damaged: start again
            if writer is not None:
                if all(writer._job.get(k) == want[k] for k in ("count", "dimensions", "encodings", "bitorder",
                                                                "job_key")):
                    if meta is not None and want["meta"] != writer._job["meta"]:
                        writer._job["meta"] = want["meta"]
                        _fs.replace_json(writer.partial / JOB, writer._job)
                    return writer
                writer.close()
        return cls.create(final, count, dimensions, encodings, bitorder, meta, job_key=job_key)

    # --- the job ----------------------------------------------------------

    @property
    def count(self) -> int:
        return self._job["count"]

    @property
    def dimensions(self) -> int:
        return self._job["dimensions"]

    @property
    def encodings(self) -> tuple[str, ...]:
        return tuple(self._job["encodings"])

    @property
    def bitorder(self) -> str:
        return self._job["bitorder"]

    @property
    def job_key(self) -> Any:
        """The job's JSON key, as stored."""
        return self._job["job_key"]

    @property
    def meta(self) -> dict:
        return dict(self._job["meta"])

    @property
    def done(self) -> np.ndarray:
        """Read-only bool view: rows written and synced."""
        view = self._mask().view(np.ndarray)
        view.flags.writeable = False
        return view

    def missing(self) -> np.ndarray:
        """Indices (int64) of the rows not done yet, ascending."""
        return np.flatnonzero(~self._mask())

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.count - self.missing().size}/{self.count} rows done"
        return (f"Writer({str(self.path)!r}, count={self.count}, dimensions={self.dimensions}, "
                f"encodings={list(self.encodings)}, bitorder={self.bitorder!r}, {state})")

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _open_or_raise(self) -> Writer:
        if self._closed:
            raise ValueError(f"this Writer for {self.path} is closed")
        return self

    def _mask(self) -> np.memmap:
        """The done mask (None once closed: the mapping is released)."""
        if self._closed or self._done is None:
            raise ValueError(f"this Writer for {self.path} is closed")
        return self._done

    def write(self, start: int, int8: np.ndarray | None = None, binary: np.ndarray | None = None, *,
              flush: bool = True) -> None:
        """Store rows ``[start, start + len)`` of every encoding of the job
        (codes in the job's bit order).  ``flush=True``: synced and marked done
        before returning; ``flush=False``: marked done by the next
        :meth:`flush` (fewer syncs for many small writes)."""
        n, rows = self._checked_rows(int8, binary)
        try:
            start = operator.index(start)
        except TypeError:
            raise TypeError(f"start must be an integer, got {type(start).__name__}") from None
        if start < 0 or start + n > self.count:
            raise ValueError(f"rows [{start}, {start + n}) are outside [0, {self.count})")
        self._put(slice(start, start + n), rows, flush)

    def write_rows(self, where, int8: np.ndarray | None = None, binary: np.ndarray | None = None, *,
                   flush: bool = True) -> None:
        """Store the given rows at the row indices ``where`` (one distinct
        index per row, in any order), as :meth:`write` does for a range: for
        rows scattered over the store, such as the repeats of a text."""
        n, rows = self._checked_rows(int8, binary)
        idx = np.asarray(where)
        if idx.dtype.kind not in "iu" or idx.shape != (n,):
            raise ValueError(f"where must be {n} integer row indices (one per row), got {idx.dtype} {idx.shape}")
        if n and (int(idx.min()) < 0 or int(idx.max()) >= self.count):
            raise ValueError(f"row indices must be in [0, {self.count})")
        if np.unique(idx).size != n:
            raise ValueError("where must not name a row twice")
        self._put(idx.astype(np.intp), rows, flush)

    def _put(self, where, rows: dict, flush: bool) -> None:
        for e, a in rows.items():
            self._arrays[e][where] = a
        self._pending.append(where)
        if flush:
            self.flush()

    def _checked_rows(self, int8, binary) -> tuple[int, dict]:
        """The rows of every encoding of the job, checked; and how many."""
        self._open_or_raise()
        given = {"int8": int8, "binary": binary}
        for e, a in given.items():
            if a is not None and e not in self.encodings:
                raise ValueError(f"this job does not store {e} (encodings: {', '.join(self.encodings)})")
            if a is None and e in self.encodings:
                raise ValueError(f"this job stores {' and '.join(self.encodings)}: pass {e}= too "
                                 "(a row is done when every encoding is written)")
        rows = {e: check_rows(given[e], e) for e in self.encodings}
        for e, a in rows.items():
            if a.shape[1] != row_width(e, self.dimensions):
                raise ValueError(f"{e} rows have {a.shape[1]} {'dimensions' if e == 'int8' else 'bytes'}, "
                                 f"this job stores {row_width(e, self.dimensions)}")
        n = {a.shape[0] for a in rows.values()}
        if len(n) != 1:
            raise ValueError("int8 and binary must hold the same number of rows")
        return n.pop(), rows

    def flush(self) -> None:
        """Sync the written rows, then mark them done and sync the mask (in
        that order: a row marked done always has its data on disk)."""
        done = self._mask()
        if not self._pending:
            return
        for a in self._arrays.values():
            a.flush()       # msync: on Linux costs what is dirty, not the mapping's size
        for where in self._pending:
            done[where] = True
        done.flush()
        self._pending.clear()

    def record(self, entry) -> None:
        """Append ``entry`` (any JSON value) to the job's log, synced before
        returning.  For what a caller must not lose across crashes and
        resumes, e.g. the usage each chunk of an embedding job cost: write
        it right after it is known (before the rows), and :meth:`records`
        gives back every entry of every run of this job until
        :meth:`commit`.  A crash in the middle of an append loses only that
        entry."""
        self._open_or_raise()
        try:
            line = json.dumps(entry, allow_nan=False) + "\n"   # ASCII: a line is an entry, whatever it holds
        except (TypeError, ValueError) as e:
            raise TypeError(f"a job record must be JSON-serializable: {e}") from None
        path = self.partial / LOG
        new = not path.exists()
        if not new and not self._log_checked:
            _drop_torn_line(path)
        self._log_checked = True
        with open(path, "ab") as f:
            f.write(line.encode("ascii"))
            _fs.fsync_file(f)
        if new:
            _fs.fsync_dir(self.partial)

    def records(self) -> list:
        """Every entry :meth:`record` stored for this job, oldest first, over
        all runs.  An entry torn by a crash mid-append is skipped; any other
        unreadable line is a ``ValueError`` naming the file."""
        self._open_or_raise()
        path = self.partial / LOG
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        out = []
        for i, line in enumerate(lines[:-1], 1):   # the last piece has no newline: empty, or torn
            try:
                out.append(json.loads(line))
            except ValueError as e:
                raise ValueError(f"{path}: line {i} is not a JSON record ({e}): corrupt job log (remove the "
                                 "file to go on without the records of earlier runs)") from None
        return out

    def commit(self, meta: dict | None = None, texts=None) -> Stored:
        """Install the finished store at ``path`` and return it loaded.
        ``meta`` adds to (overrides) the job's meta; ``texts``: one str per
        row.  Raises ``ValueError`` while rows are missing.  The data files are
        hard-linked into the new store, not copied; the ``.partial`` is removed
        once the store is in place."""
        self.flush()
        missing = self.missing()
        if missing.size:
            raise ValueError(f"{missing.size} of {self.count} rows are not written yet "
                             f"(first: {missing[:5].tolist()}): write them before commit()")
        full = build_meta(self.count, self.dimensions, self.encodings, self.bitorder,
                          {**self._job["meta"], **check_meta(meta)})
        if texts is not None:
            check_texts(texts, self.count)
        _fs.check_replaceable(self.path, is_store, "a pplx-codec store")
        with _fs.staging(self.path) as tmp:
            moved = []
            try:
                for e in self.encodings:
                    name = FILES[e][0]
                    moved += _link_or_move(self.partial / name, tmp / name)
                finish(tmp, full, texts)
                install(tmp, self.path)
            except BaseException:
                for src, dst in moved:   # the fallback moved data out of the job: put it back
                    os.rename(dst, src)
                raise
        self.close()
        shutil.rmtree(self.partial, ignore_errors=True)
        return load(self.path)

    def close(self) -> None:
        """Sync pending rows and release the files and the lock (the
        ``.partial`` stays, resumable).  Idempotent."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._arrays = {}
            self._done = None
            self._close_lock()


def _drop_torn_line(path: Path) -> None:
    """Cut the log after its last newline: a crash in the middle of an append
    leaves a partial line that the next entry must not be glued to."""
    with open(path, "r+b") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)
            _fs.fsync_file(f)


def _link_or_move(src: Path, dst: Path) -> list[tuple[Path, Path]]:
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
