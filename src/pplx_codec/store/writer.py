"""Resumable, incremental construction of a store.

A job writes into ``<path>.partial/``: the final ``vectors.npy`` /
``codes.npy`` preallocated at their full shapes and written in place through
memory maps, a ``done.npy`` row mask, ``job.json`` (the parameters, meta
and a caller's job key), ``texts.jsonl`` when the caller gives the rows'
texts (so that the next job, on another input, can take over the rows of
the texts it shares: see ``_carry.py``) and, once :meth:`Writer.record` is
used, ``log.jsonl`` (the caller's records, e.g. each chunk's usage, kept
across runs and handed on with the rows).  The files and the lock are
``_partial.py``'s.  Rows count as done only after their data is synced to
disk, and the mask is synced after that, so after a crash at any instant
every row marked done holds its data.  ``commit()`` installs the finished
store with the same atomic replacement as :func:`save`.  At every instant the
path holds the previous store (or nothing) or the new one, and the
``.partial`` can be resumed until the new store is in place.
"""

from __future__ import annotations

import json
import operator
import os
import shutil
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import _fs
from ._carry import copy_rows, match_rows
from ._core import finish, install, load, open_npy
from ._meta import (
    FILES,
    TEXTS,
    build_meta,
    check_meta,
    check_rows,
    is_store,
    json_encodings,
    json_int,
    partial_path,
    row_width,
)
from ._partial import (
    DONE,
    JOB,
    JOB_FORMAT,
    JOB_VERSION,
    LOG,
    PARTIAL_WHAT,
    JobInUse,
    create_npy,
    drop_torn_line,
    is_partial,
    link_or_move,
    lock,
    new_job,
    write_log,
)
from ._stored import Stored
from ._texts import Texts, check_texts, write_texts

__all__ = ["Writer", "JobInUse"]


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
            job = new_job(job["count"], job["dimensions"], json_encodings(job["encodings"]), job["bitorder"],
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
        self.carried = 0                      # rows taken over from another job (resume_or_create)
        self.discarded: str | None = None     # why a .partial found by resume_or_create was not used

    # --- construction ---------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike[str], count: int, dimensions: int, encodings=("int8",),
               bitorder: str = "little", meta: dict | None = None, *, job_key=None,
               texts: Sequence[str] | None = None, carry: Writer | None = None) -> Writer:
        """Start a fresh job for the store ``path`` (an existing ``.partial``
        is discarded): ``count`` rows of ``dimensions``, ``encodings`` a subset
        of ``("int8", "binary")``, codes in ``bitorder``.  The files are
        allocated at full size now, so a full disk fails here.  ``texts``:
        one str per row, kept in the job (:attr:`texts`).  ``carry``: the
        open Writer of the ``.partial`` being replaced, whose done rows are
        copied to every row of the same text, with its records, before the
        new job replaces it (so a crash at any instant keeps them); it needs
        ``texts`` and the same dimensions, encodings and bit order, and
        stays open (close it)."""
        final = Path(path)
        job = new_job(count, dimensions, encodings, bitorder, meta, job_key)
        if texts is not None:
            check_texts(texts, job["count"])
        _fs.check_replaceable(final, is_store, "a pplx-codec store")   # the commit would refuse: refuse now
        partial = partial_path(final)
        if carry is not None:
            carry._open_or_raise()
            if carry.partial != partial or texts is None or carry.texts is None or \
                    (carry.dimensions, carry.encodings, carry.bitorder) != (job["dimensions"],
                                                                          tuple(job["encodings"]), job["bitorder"]):
                raise ValueError("carry must be the Writer of this store's .partial, keeping its texts, with the "
                                 "same dimensions, encodings and bit order; and texts must be given")
        with _fs.staging(partial) as tmp:
            for e in job["encodings"]:
                create_npy(tmp / FILES[e][0], FILES[e][1], (job["count"], row_width(e, job["dimensions"])))
            create_npy(tmp / DONE, np.dtype(bool), (job["count"],))
            if texts is not None:
                write_texts(tmp / TEXTS, texts, job["count"])
            _fs.write_json(tmp / JOB, job)
            carried = 0 if carry is None or texts is None else carry._carry_into(tmp, job, texts)
            fd = lock(tmp)     # the lock moves with the directory
            old = None
            try:
                if carry is None and os.path.isdir(partial) and not _fs.is_empty_dir(partial):
                    old = lock(partial)   # refuse to discard a job another Writer is running
                _fs.install(tmp, partial, is_partial, PARTIAL_WHAT)
            except BaseException:
                os.close(fd)
                raise
            finally:
                if old is not None:
                    os.close(old)
        writer = cls(final, fd, resumed=False)
        writer.carried = carried
        return writer

    def _carry_into(self, tmp: Path, job: dict, texts: Sequence[str]) -> int:
        """Copy into the job staged at ``tmp`` (``job``, ``texts``) each done
        row of this job whose text it holds, and this job's records; the rows
        written there."""
        records = self.records()   # a corrupt log is refused before anything is copied
        mine = self.texts
        assert mine is not None   # create() checked
        src, dst = match_rows(mine, self.done, texts)
        if dst.size:
            shape = (job["count"],)
            arrays = {e: open_npy(tmp / FILES[e][0], FILES[e][1], shape + (row_width(e, self.dimensions),), "r+")
                      for e in self.encodings}
            copy_rows(self._arrays, arrays, open_npy(tmp / DONE, np.dtype(bool), shape, "r+"), src, dst)
        if records:
            write_log(tmp / LOG, records)
        return int(dst.size)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Writer:
        """Resume the unfinished job of the store ``path`` (its ``.partial``)."""
        final = Path(path)
        partial = partial_path(final)
        if not (partial / JOB).is_file():
            done = " (the store is committed already)" if is_store(final) else ""
            raise FileNotFoundError(f"no unfinished job at {partial}{done}")
        return cls(final, lock(partial), resumed=True)

    @classmethod
    def resume_or_create(cls, path: str | os.PathLike[str], count: int, dimensions: int, encodings=("int8",),
                         bitorder: str = "little", meta: dict | None = None, *, job_key,
                         texts: Sequence[str] | None = None,
                         reuse: Callable[[Writer], str | None] | None = None) -> Writer:
        """Resume the ``.partial`` if it is this job (the same ``job_key``,
        count, dimensions, encodings and bit order), else start fresh; the
        ``resumed`` attribute tells which.  ``job_key``: JSON identifying the
        input, e.g. a hash of the texts, model and dimensions (required: two
        inputs of the same shape must not resume each other).  A ``meta`` that
        differs from the job's replaces it.  ``texts``: one str per row, kept
        in the job.

        A ``.partial`` of another job is not lost when its rows can stand for
        this one's: ``reuse(other)`` is called with it (open, locked) and
        returns None when a row of it is this job's row of the same text (the
        same model, service...), else why not.  Then the new job starts with
        each done row of the other whose text is among ``texts`` (given to
        every row of that text) and with its :meth:`records`; ``carried``
        counts those rows.  It needs both jobs' texts and the same dimensions,
        encodings and bit order.  Otherwise the other job, or a ``.partial``
        whose files are damaged, is discarded and ``discarded`` says why.
        A damaged ``texts.jsonl`` or log of a job to carry is a ValueError
        naming the file."""
        final = Path(path)
        want = new_job(count, dimensions, encodings, bitorder, meta, job_key)
        discarded = None
        if (partial_path(final) / JOB).is_file():
            try:
                writer = cls.open(final)
            except (ValueError, FileNotFoundError) as e:
                writer, discarded = None, f"it is damaged ({e})"     # start again
            if writer is not None:
                if all(writer._job.get(k) == want[k] for k in ("count", "dimensions", "encodings", "bitorder",
                                                                "job_key")):
                    if meta is not None and want["meta"] != writer._job["meta"]:
                        writer._job["meta"] = want["meta"]
                        _fs.replace_json(writer.partial / JOB, writer._job)
                    if texts is not None and writer.texts is None:   # begun without: keep them from now on
                        try:
                            writer._keep_texts(texts)
                        except BaseException:
                            writer.close()
                            raise
                    return writer
                try:
                    discarded = writer._why_not_carry(want, texts, reuse)
                    if discarded is None:
                        return cls.create(final, count, dimensions, encodings, bitorder, meta, job_key=job_key,
                                          texts=texts, carry=writer)
                finally:
                    writer.close()
        fresh = cls.create(final, count, dimensions, encodings, bitorder, meta, job_key=job_key, texts=texts)
        fresh.discarded = discarded
        return fresh

    def _why_not_carry(self, want: dict, texts, reuse) -> str | None:
        """None when this (other) job's rows may be carried into the job ``want``, else why not."""
        if reuse is None or texts is None:
            return "it is another job"
        why = reuse(self)
        if why is None and self.texts is None:
            why = "it keeps no texts to match its rows by"
        if why is None and (self.dimensions, list(self.encodings), self.bitorder) != \
                (want["dimensions"], want["encodings"], want["bitorder"]):
            why = (f"its rows are {self.dimensions} dimensions, {'+'.join(self.encodings)}, {self.bitorder} bit "
                   f"order (this job: {want['dimensions']}, {'+'.join(want['encodings'])}, {want['bitorder']})")
        return why

    def _keep_texts(self, texts: Sequence[str]) -> None:
        """Add texts.jsonl to a job begun without: written aside and renamed
        in, so that a crash never leaves a short one for a later job to read."""
        check_texts(texts, self.count)
        tmp = self.partial / f".{TEXTS}.tmp"
        write_texts(tmp, texts, self.count)
        os.replace(tmp, self.partial / TEXTS)
        _fs.fsync_dir(self.partial)

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
    def texts(self) -> Texts | None:
        """The rows' texts the job keeps (read on demand), or None."""
        path = self.partial / TEXTS
        return Texts(path, self.count, f"corrupt job (remove {self.partial} to start afresh)") \
            if path.is_file() else None

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
            drop_torn_line(path)
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
                    moved += link_or_move(self.partial / name, tmp / name)
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
