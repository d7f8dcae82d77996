"""Distributed embedding: one shard per input partition, resumable.

The driver counts each partition's texts (global row offsets), then runs one
task per partition.  A task embeds its texts with the worker's
:class:`pplx_codec.Client` (one per worker process and job, created on first
use), writes them with :func:`pplx_codec.store.save` as
``OUT/shard-00000`` (atomic), then ``OUT/shard-00000.json``, the sidecar that
marks the shard complete: partition, global offset, count, the texts'
SHA-256 and the settings.  A rerun skips every partition whose sidecar
matches.  ``OUT/manifest.json`` is written last, atomically, only when every
partition is complete.

The concurrency budget is one ``distributed.Semaphore`` for the job: every
HTTP request, on any worker, holds one lease from sending until its body is
read (retry back-off holds none), so at most ``max_concurrency`` requests
are in flight across the cluster.  A worker that dies (SIGKILL, OOM kill)
cannot give its leases back, and distributed would free them only after its
lease timeout (``distributed.scheduler.locks.lease-timeout``, 30 s, checked
every ``lease-validation-interval``, 10 s), the budget shrunk meanwhile: the
leases' ids therefore start with the worker's address, and a scheduler
plugin releases a worker's leases as soon as the scheduler removes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import threading
import time
import traceback
import uuid
import warnings
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dask.bag as db
import httpx
import numpy as np
from dask.delayed import delayed

try:
    from distributed import Semaphore
    from distributed.diagnostics.plugin import SchedulerPlugin
    from distributed.utils_comm import retry_operation
except ImportError:  # pragma: no cover - the dask extra installs distributed; embed() says it is needed
    # stand-ins so that the module imports (the classes below subclass them)
    Semaphore = SchedulerPlugin = object  # type: ignore[misc, assignment]

from .. import errors, store
from ..bits import pack_bits
from ..client import Client
from ..constants import (
    API_BITORDER,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_TIMEOUT,
    EMBEDDING_MODELS,
    MIN_DIMENSIONS,
    MODEL_DIMS,
)
from ..results import Usage
from .shards import MANIFEST, from_shards

__all__ = ["embed", "EmbedResult", "EmbedError", "PartitionError"]

JOB = "job.json"
FORMAT = "pplx-codec-dask-embed"
VERSION = 1
_ENCODINGS = ("int8", "binary")


# ---------------------------------------------------------------- errors


#: A failed partition's rows travel back to the client only up to this size;
#: beyond it, ``PartitionError.partial`` is None and ``filled`` still says which arrived.
PARTIAL_ROWS_LIMIT = 64 << 20


class PartitionError(Exception):
    """One partition could not be embedded or written.

    ``partition``, ``offset`` (its first global row) and ``count`` say which
    rows; ``error_type``, ``status_code`` and the message describe the cause
    (the original exception does not travel between processes: httpx
    objects do not pickle).  ``filled``: which of the partition's rows did
    arrive before the failure (None when the client had no partial result),
    ``partial``: the client's :class:`pplx_codec.PartialResult` itself (the
    rows too) when it is at most ``PARTIAL_ROWS_LIMIT`` bytes;
    ``missing_rows``: the global rows still to embed.
    """

    def __init__(self, partition: int, offset: int, count: int, error_type: str, message: str,
                 status_code: int | None = None, partial: errors.PartialResult | None = None,
                 filled: np.ndarray | None = None):
        self.partition, self.offset, self.count = partition, offset, count
        self.error_type, self.message, self.status_code, self.partial = error_type, message, status_code, partial
        self.filled = partial.filled if filled is None and partial is not None else filled
        rows = f"rows {offset}..{offset + count - 1}" if count else "no rows"
        got = f" ({int(self.filled.sum())}/{count} rows arrived)" if self.filled is not None else ""
        super().__init__(f"partition {partition} ({rows}): {error_type}: {message}{got}")

    @classmethod
    def wrap(cls, partition: int, offset: int, count: int, e: BaseException) -> PartitionError:
        partial = getattr(e, "partial", None)
        partial = partial if isinstance(partial, errors.PartialResult) else None
        filled = None if partial is None else partial.filled
        if partial is not None and partial.vectors.nbytes > PARTIAL_ROWS_LIMIT:
            partial = None
        msg = str(e) or "".join(traceback.format_exception_only(type(e), e)).strip()
        return cls(partition, offset, count, type(e).__name__, msg, getattr(e, "status_code", None), partial, filled)

    @property
    def missing_rows(self) -> np.ndarray:
        """Global indices of this partition's rows that were not embedded."""
        if self.filled is None:
            return np.arange(self.offset, self.offset + self.count)
        return self.offset + np.flatnonzero(~self.filled)

    def __reduce__(self):
        return (type(self), (self.partition, self.offset, self.count, self.error_type, self.message,
                             self.status_code, self.partial, self.filled))


class EmbedError(RuntimeError):
    """Some partitions failed.  The others' shards are complete and kept; no
    manifest was written.  Rerunning the same call embeds only the failed
    (and not yet run) partitions.  ``failures``: one :class:`PartitionError`
    each, by partition."""

    def __init__(self, failures: list[PartitionError], partitions: int):
        self.failures = sorted(failures, key=lambda f: f.partition)
        self.partitions = partitions
        head = "; ".join(str(f) for f in self.failures[:3])
        more = f"; and {len(self.failures) - 3} more" if len(self.failures) > 3 else ""
        super().__init__(f"{len(self.failures)} of {partitions} partition(s) failed (completed shards are kept: "
                         f"rerun to resume): {head}{more}")

    def __reduce__(self):
        return (type(self), (self.failures, self.partitions))


# ---------------------------------------------------------------- the job


@dataclass(frozen=True)
class _Job:
    """What a partition task needs.  Picklable; its repr never shows the key."""

    out: str
    model: str
    dimensions: int
    encodings: tuple[str, ...]
    bitorder: str
    save_texts: bool
    budget: str                # the distributed.Semaphore's name
    max_concurrency: int
    base_url: str | None
    timeout: float | None
    max_retries: int
    api_key: str | None = field(default=None, repr=False)

    @property
    def settings(self) -> dict:
        return {"model": self.model, "dimensions": self.dimensions, "encodings": list(self.encodings),
                "bitorder": self.bitorder}

    @property
    def encoding_format(self) -> str:
        return "base64_int8" if "int8" in self.encodings else "base64_binary"

    def client_key(self) -> tuple:
        key = hashlib.sha256((self.api_key or "").encode()).hexdigest()
        return (key, self.base_url, self.timeout, self.max_retries, self.max_concurrency, self.budget)


def _check_settings(model, dimensions, encodings, bitorder) -> tuple[int, tuple[str, ...]]:
    if model not in EMBEDDING_MODELS:
        raise ValueError(f"model must be one of {', '.join(EMBEDDING_MODELS)}, got {model!r}")
    full = MODEL_DIMS[model]
    dims = full if dimensions is None else dimensions
    if isinstance(dims, bool) or not isinstance(dims, (int, np.integer)):
        raise TypeError(f"dimensions must be an integer, got {type(dims).__name__}")
    dims = int(dims)
    if not MIN_DIMENSIONS <= dims <= full:
        raise ValueError(f"dimensions must be in {MIN_DIMENSIONS}..{full} for {model}, got {dims}")
    encs = (encodings,) if isinstance(encodings, str) else tuple(encodings)
    if not encs or len(set(encs)) != len(encs) or any(e not in _ENCODINGS for e in encs):
        raise ValueError(f"encodings must be 'int8', 'binary' or both, got {encodings!r}")
    encs = tuple(e for e in _ENCODINGS if e in encs)
    if "binary" in encs and dims % 8:
        raise ValueError(f"dimensions must be a multiple of 8 for binary codes, got {dims}")
    if bitorder not in ("little", "big"):
        raise ValueError(f"bitorder must be 'little' or 'big', got {bitorder!r}")
    return dims, encs


# ---------------------------------------------------------------- the budget

#: Every job's semaphore name starts with this.
BUDGET_PREFIX = "pplx-codec-embed-"
_OWNER = "#"   # a lease id is "<worker address>#<uuid>"


class _WorkerSemaphore(Semaphore):
    """The job's semaphore as a worker holds it: the same leases, with ids
    that name the worker, so that the scheduler can release a lost worker's
    leases (:class:`_ReleaseLostLeases`)."""

    def __init__(self, *args, owner: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner

    async def _acquire(self, timeout=None):
        # distributed's Semaphore._acquire, with the owner in the lease id
        await self
        lease_id = f"{self.owner}{_OWNER}{uuid.uuid4().hex}"
        result = await retry_operation(self.scheduler.semaphore_acquire, name=self.name, timeout=timeout,
                                       lease_id=lease_id,
                                       operation=f"semaphore acquire: id={self.id}, lease_id={lease_id}, "
                                                 f"name={self.name}")
        if result:
            self._leases.append(lease_id)
        return result


class _ReleaseLostLeases(SchedulerPlugin):
    """On the scheduler: when a worker is removed (its process died, or it
    was lost), release at once the budget leases its requests held."""

    name = "pplx-codec-release-lost-leases"
    idempotent = True   # one per scheduler, for every job

    def remove_worker(self, scheduler, worker: str, **kwargs) -> None:
        ext = scheduler.extensions.get("semaphores")
        if ext is None:
            return
        prefix = worker + _OWNER
        for name in [n for n in ext.leases if isinstance(n, str) and n.startswith(BUDGET_PREFIX)]:
            for lease_id in [i for i in ext.leases[name] if isinstance(i, str) and i.startswith(prefix)]:
                ext.release(name=name, lease_id=lease_id)


# ---------------------------------------------------------------- on the workers

_CLIENTS: OrderedDict = OrderedDict()   # client_key -> (Client, httpx.Client, Semaphore)
_CLIENTS_LOCK = threading.Lock()
_MAX_CLIENTS = 8


class _Releasing(httpx.SyncByteStream):
    """A response body that gives its lease back when closed."""

    def __init__(self, stream, release):
        self._stream, self._release, self._released = stream, release, False
        self._lock = threading.Lock()

    def __iter__(self):
        yield from self._stream

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            with self._lock:
                released, self._released = self._released, True
            if not released:
                self._release()


class _Budgeted(httpx.BaseTransport):
    """Each request holds a lease of the job's semaphore until its body is closed."""

    def __init__(self, inner: httpx.BaseTransport, semaphore):
        self._inner, self._sem = inner, semaphore

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._sem.acquire()
        try:
            resp = self._inner.handle_request(request)
        except BaseException:
            self._sem.release()
            raise
        resp.stream = _Releasing(resp.stream, self._sem.release)
        return resp

    def close(self) -> None:
        self._inner.close()


def _worker_client(job: _Job) -> Client:
    """This worker's client for the job (created on first use, then reused)."""
    key = job.client_key()
    with _CLIENTS_LOCK:
        hit = _CLIENTS.get(key)
        if hit is not None:
            _CLIENTS.move_to_end(key)
            return hit[0]
        from distributed import get_worker

        worker = get_worker()   # the task thread: bind the semaphore to this worker's scheduler and loop
        sem = _WorkerSemaphore(max_leases=job.max_concurrency, name=job.budget, scheduler_rpc=worker.scheduler,
                               loop=worker.loop, owner=worker.address)
        if job.timeout is None:
            timeout = httpx.Timeout(DEFAULT_TIMEOUT, connect=DEFAULT_CONNECT_TIMEOUT)
        else:
            timeout = httpx.Timeout(job.timeout)
        limits = httpx.Limits(max_connections=max(10, job.max_concurrency))
        http = httpx.Client(transport=_Budgeted(httpx.HTTPTransport(limits=limits), sem), timeout=timeout)
        client = Client(api_key=job.api_key, base_url=job.base_url, timeout=timeout, max_retries=job.max_retries,
                        max_concurrency=job.max_concurrency, http_client=http)
        _CLIENTS[key] = (client, http, sem)
        while len(_CLIENTS) > _MAX_CLIENTS:
            _, (_, old_http, old_sem) = _CLIENTS.popitem(last=False)
            old_http.close()
            if getattr(old_sem, "refresh_callback", None) is not None:
                old_sem.refresh_callback.stop()
        return client


def _as_list(part) -> list:
    if isinstance(part, list):
        return part
    if hasattr(part, "tolist"):   # a pandas Series (a dask dataframe partition)
        return part.tolist()
    return list(part)


def _count(part) -> int:
    return len(_as_list(part))


def _digest(texts: list) -> str:
    h = hashlib.sha256()
    for t in texts:
        if not isinstance(t, str):
            raise TypeError(f"texts must be str, got {type(t).__name__}")
        b = t.encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, obj) -> None:
    """Atomically: a temporary file in the same directory, synced, renamed."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _shard_name(partition: int) -> str:
    return f"shard-{partition:05d}"


def _complete(side: dict | None, expect: dict, root: Path) -> bool:
    if not isinstance(side, dict) or any(side.get(k) != v for k, v in expect.items()):
        return False
    if expect["count"] == 0:
        return True
    try:
        s = store.load(root / _shard_name(expect["partition"]), mmap=True)
    except (OSError, ValueError):
        return False
    return s.count == expect["count"] and list(s.encodings) == expect["encodings"]


#: ``shard-00042.spent.jsonl``: the usage of the partition's failed attempts (the
#: requests that did succeed were paid for), one JSON line per attempt, added to
#: the sidecar's usage when the partition completes.
SPENT = ".spent.jsonl"


def _record_spent(path: Path, usage) -> None:
    if not isinstance(usage, Usage) or not usage.requests:
        return
    try:
        with open(path, "a") as f:
            f.write(json.dumps(asdict(usage)) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        pass   # the failure being reported matters more than its cost


def _usage(d) -> Usage:
    """A Usage from its JSON (a sidecar's, a spent line's); missing fields are 0."""
    names = Usage.__dataclass_fields__
    return Usage(**{k: v for k, v in d.items() if k in names}) if isinstance(d, dict) else Usage()


def _spent(path: Path) -> Usage:
    total = Usage()
    try:
        lines = path.read_text().splitlines(keepends=True)
    except FileNotFoundError:
        return total
    for line in lines:
        try:
            total += _usage(json.loads(line))
        except (ValueError, TypeError):
            pass   # a line torn by a kill mid-append
    return total


def _embed_partition(part, partition: int, offset: int, job: _Job) -> dict:
    """Embed and write one partition (a task); returns its sidecar plus
    ``skipped`` and ``attempt_usage`` (this attempt's requests)."""
    count = 0
    root = Path(job.out)
    name = _shard_name(partition)
    spent_path = root / f"{name}{SPENT}"
    paid = None
    try:
        texts = _as_list(part)
        count = len(texts)
        expect = {"format": FORMAT + "-shard", "partition": partition, "offset": offset, "count": count,
                  "sha256": _digest(texts), **job.settings}
        side_path = root / f"{name}.json"
        side = _read_json(side_path)
        if _complete(side, expect, root):
            spent_path.unlink(missing_ok=True)   # left by a kill after the sidecar: counted in it
            return {**side, "skipped": True, "attempt_usage": asdict(Usage())}
        # from here until the new sidecar, the shard is not complete: an old sidecar must
        # not vouch for a shard that is being replaced
        side_path.unlink(missing_ok=True)
        usage, seconds = Usage(), 0.0
        if count:
            t0 = time.perf_counter()
            got = _worker_client(job).embed(texts, model=job.model, dimensions=job.dimensions,
                                            encoding_format=job.encoding_format, bitorder=job.bitorder)
            paid = got.usage   # spent even if writing the shard fails
            arrays = {"int8": got.vectors} if "int8" in job.encodings else {"binary": got.vectors}
            if job.encodings == ("int8", "binary"):
                arrays["binary"] = pack_bits(got.vectors, job.bitorder)
            store.save(root / name, **arrays, bitorder=job.bitorder,
                       meta={"model": job.model, "partition": partition, "offset": offset,
                             "sha256": expect["sha256"]},
                       texts=texts if job.save_texts else None)
            seconds = time.perf_counter() - t0
            usage = got.usage
        total = _spent(spent_path)   # earlier failed attempts, then this one
        total += usage
        side = {**expect, "path": name if count else None, "seconds": round(seconds, 6), "usage": asdict(total)}
        _write_json(side_path, side)
        paid = None   # counted in the sidecar now
        spent_path.unlink(missing_ok=True)
        return {**side, "skipped": False, "attempt_usage": asdict(usage)}
    except PartitionError:
        raise
    except Exception as e:
        partial = getattr(e, "partial", None)
        _record_spent(spent_path, paid if paid is not None else getattr(partial, "usage", None))
        raise PartitionError.wrap(partition, offset, count, e) from None


# ---------------------------------------------------------------- the driver


@dataclass
class EmbedResult:
    """What :func:`embed` produced.  ``manifest``: the manifest.json written
    (shards, offsets, counts, settings, usage of all runs); ``embedded``:
    rows embedded by this run (the rest were complete before); ``skipped``:
    partitions found complete; ``usage``: this run's requests, tokens, cost."""

    path: Path
    manifest: dict
    embedded: int
    skipped: list[int]
    seconds: float
    usage: Usage

    @property
    def count(self) -> int:
        return self.manifest["count"]

    def array(self, encoding: str | None = None):
        """The rows as a lazy ``dask.array`` over the shards (see :func:`from_shards`)."""
        return from_shards(self.path, encoding=encoding or self.manifest["encodings"][0])


def _partitions(texts, partition_size: int) -> list:
    if isinstance(texts, db.Bag):
        return list(texts.to_delayed())
    dd = sys.modules.get("dask.dataframe")
    # the classes of whatever dask.dataframe has been imported (() matches nothing)
    frame: Any = getattr(dd, "DataFrame", ())
    series: Any = getattr(dd, "Series", ())
    if dd is not None and isinstance(texts, frame):
        raise TypeError("texts is a dask DataFrame: pass one column (a Series) of strings")
    if dd is not None and isinstance(texts, series):
        return list(texts.to_delayed())
    if isinstance(texts, (list, tuple)):
        if not texts:
            raise ValueError("texts is empty")
        if isinstance(partition_size, bool) or not isinstance(partition_size, int) or partition_size < 1:
            raise ValueError(f"partition_size must be a positive integer, got {partition_size!r}")
        return list(db.from_sequence(list(texts), partition_size=partition_size).to_delayed())
    raise TypeError(f"texts must be a dask.bag.Bag of str, a dask dataframe Series of str or a list of str, "
                    f"got {type(texts).__name__}")


def _distributed_client(client):
    if client is not None:
        return client
    try:
        from distributed import get_client
    except ImportError:  # pragma: no cover - the extra installs it
        raise ImportError("pplx_codec.dask.embed needs distributed: pip install 'pplx-codec[dask]'") from None
    try:
        return get_client()
    except ValueError:
        raise ValueError("pplx_codec.dask.embed runs on a distributed cluster: create a distributed.Client "
                         "(e.g. Client(LocalCluster()) or Client('tcp://scheduler:8786')) or pass client=") from None


def _check_job_file(root: Path, settings: dict) -> None:
    path = root / JOB
    want = {"format": FORMAT, "version": VERSION, **settings}
    have = _read_json(path)
    if have is None:
        _write_json(path, want)
    elif have != want:
        raise ValueError(f"{root} holds a job with other settings ({json.dumps(have)}); use another directory "
                         f"or remove it")


def _remove_stale(root: Path, partitions: int) -> None:
    """Shards of a previous run's partitions beyond this run's last."""
    for p in root.glob("shard-*"):
        stem = p.name.split(".")[0]
        try:
            index = int(stem[len("shard-"):])
        except ValueError:
            continue
        if index >= partitions:
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()


def embed(texts, out_dir, *, model: str = "pplx-embed-v1-0.6b", dimensions: int | None = None,
          encodings=("int8",), bitorder: str = API_BITORDER, api_key: str | None = None,
          base_url: str | None = None, timeout: float | None = None, max_retries: int = 2,
          max_concurrency: int = DEFAULT_MAX_CONCURRENCY, partition_size: int = 1024, save_texts: bool = False,
          client=None) -> EmbedResult:
    """Embed ``texts`` on a dask cluster into shards under ``out_dir``.

    ``texts``: a ``dask.bag.Bag`` of str, a dask dataframe ``Series`` of str,
    or a list (split into ``partition_size`` texts per partition).  Row ``i``
    of the result is the ``i``-th text in partition order; partition ``p``
    becomes ``out_dir/shard-{p:05d}`` (a :mod:`pplx_codec.store`) and its
    sidecar ``shard-{p:05d}.json``; ``manifest.json`` is written last.

    ``encodings``: ``("int8",)``, ``("binary",)`` or both (binary then derived
    from the int8 rows, bit = value > 0, one request per text, as the CLI
    does).  ``api_key``: travels to the workers inside the task (never in a
    repr or a log); None: each worker reads ``PERPLEXITY_API_KEY`` from its
    own environment.  ``max_concurrency``: requests in flight across the
    whole cluster (a ``distributed.Semaphore``).  ``client``: the
    ``distributed.Client`` to use (default: the current one).

    A partition that fails leaves no shard; the others are written and an
    :class:`EmbedError` says which failed and why.  Calling again with the
    same input and settings skips every complete shard.
    """
    dims, encs = _check_settings(model, dimensions, encodings, bitorder)
    max_concurrency = _positive(max_concurrency, "max_concurrency")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be a non-negative integer, got {max_retries!r}")
    parts = _partitions(texts, partition_size)
    dclient = _distributed_client(client)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    settings = {"model": model, "dimensions": dims, "encodings": list(encs), "bitorder": bitorder}
    _check_job_file(root, settings)
    (root / MANIFEST).unlink(missing_ok=True)   # reappears only when every shard is complete

    counts = dclient.gather(dclient.compute([delayed(_count, pure=True)(p) for p in parts]))
    if sum(counts) == 0:
        raise ValueError("texts is empty")
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(int).tolist()
    _remove_stale(root, len(parts))

    from distributed import wait

    _register_lease_release(dclient)
    budget = f"{BUDGET_PREFIX}{uuid.uuid4().hex}"
    sem = Semaphore(max_leases=max_concurrency, name=budget, scheduler_rpc=dclient.scheduler, loop=dclient.loop)
    sem.register()
    job = _Job(out=str(root.resolve()), model=model, dimensions=dims, encodings=encs, bitorder=bitorder,
               save_texts=bool(save_texts), budget=budget, max_concurrency=max_concurrency, base_url=base_url,
               timeout=timeout, max_retries=max_retries, api_key=api_key)
    t0 = time.perf_counter()
    try:
        tasks = [delayed(_embed_partition, pure=False)(p, i, offsets[i], job,
                                                       dask_key_name=f"pplx-embed-{budget}-{i}")
                 for i, p in enumerate(parts)]
        futures = dclient.compute(tasks)
        wait(futures)
        results, failures = [], []
        for i, f in enumerate(futures):
            if f.status == "error":   # a PartitionError, or the cluster's own (a worker died: KilledWorker)
                e = f.exception()
                failures.append(e if isinstance(e, PartitionError) else
                                PartitionError.wrap(i, offsets[i], counts[i], e))
            else:
                results.append(f.result())
        del futures
    finally:
        sem.close()
    seconds = time.perf_counter() - t0
    if failures:
        raise EmbedError(failures, len(parts))

    total, run = Usage(), Usage()   # every attempt's (the sidecars'), this run's
    for r in results:
        total += _usage(r.get("usage"))
        run += _usage(r["attempt_usage"])
    manifest = {"format": FORMAT, "version": VERSION, **settings, "count": int(offsets[-1]),
                "partitions": len(parts),
                "shards": [{"path": r["path"], "partition": r["partition"], "offset": r["offset"],
                            "count": r["count"], "sha256": r["sha256"]} for r in results],
                "usage": asdict(total)}
    _write_json(root / MANIFEST, manifest)
    return EmbedResult(root, manifest, sum(r["count"] for r in results if not r["skipped"]),
                       [r["partition"] for r in results if r["skipped"]], seconds, run)


def _register_lease_release(dclient) -> None:
    """Install :class:`_ReleaseLostLeases` on the scheduler (once).  A
    scheduler that cannot load it (pplx-codec not installed there, pickled
    plugins disabled) still enforces the budget: a lost worker's leases then
    come back after distributed's lease timeout, as the warning says."""
    try:
        dclient.register_plugin(_ReleaseLostLeases())
    except Exception as e:  # noqa: BLE001 - whatever the scheduler raised, the job can run
        warnings.warn(f"pplx_codec.dask.embed: the scheduler did not take the plugin that releases a lost "
                      f"worker's concurrency leases ({type(e).__name__}: {e}); they come back only after "
                      "distributed.scheduler.locks.lease-timeout", RuntimeWarning, stacklevel=3)


def _positive(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)

