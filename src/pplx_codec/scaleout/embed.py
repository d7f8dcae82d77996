"""Distributed embedding: one shard per input partition, resumable.

This module is the driver: it counts each partition's texts (global row
offsets), then runs one task per partition (:mod:`._partition`).  A task embeds its texts with the worker's
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
plugin releases a worker's leases as soon as the scheduler removes it
(:mod:`._budget`).

The request-rate budget (``max_requests_per_minute``) is one token bucket
for the job too, kept on the scheduler by another plugin: before each
attempt (retries included) a worker's client asks the scheduler, which
answers when the attempt may start, so the whole cluster keeps the rate
and a 429 on any worker slows every worker down (:mod:`pplx_codec._rate`).
Then the request takes its concurrency lease: when the concurrency budget
is what binds, a request may be sent later than its slot.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import uuid
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import dask.bag as db
import numpy as np
from dask.delayed import delayed

from .. import _checks
from .._rate import DEFAULT_BURST, checked_rate
from ..constants import API_BITORDER, DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_RETRIES, DEFAULT_MODEL
from ..results import Usage
from ..settings import EmbedSettings
from ..store import _fs
from . import _budget, _partition
from ._budget import BUDGET_PREFIX, Semaphore
from ._partition import FORMAT, EmbedError, PartitionError
from .shards import MANIFEST, from_shards

__all__ = ["embed", "EmbedResult", "EmbedError", "PartitionError"]

JOB = "job.json"
VERSION = 1


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
    have = _partition.read_json(path)
    if have is None:
        _fs.replace_json(path, want)
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


def embed(texts, out_dir, *, model: str = DEFAULT_MODEL, dimensions: int | None = None,
          encodings=("int8",), bitorder: str = API_BITORDER, api_key: str | None = None,
          base_url: str | None = None, timeout: float | None = None, max_retries: int = DEFAULT_MAX_RETRIES,
          max_concurrency: int = DEFAULT_MAX_CONCURRENCY, partition_size: int = 1024, save_texts: bool = False,
          client=None, max_requests_per_minute: float | None = None) -> EmbedResult:
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
    whole cluster (a ``distributed.Semaphore``).  ``max_requests_per_minute``:
    requests (attempts) a minute across the whole cluster, one token bucket
    on the scheduler, slowed down by a 429 anywhere (None: no limit; the
    scheduler must be able to import pplx-codec).  ``client``: the
    ``distributed.Client`` to use (default: the current one).

    A partition that fails leaves no shard; the others are written and an
    :class:`EmbedError` says which failed and why.  Calling again with the
    same input and settings skips every complete shard.
    """
    settings = EmbedSettings.checked(model, dimensions, encodings, bitorder)
    max_concurrency = _positive(max_concurrency, "max_concurrency")
    max_retries = _checks.max_retries(max_retries)
    if max_requests_per_minute is not None:
        max_requests_per_minute, _ = checked_rate(max_requests_per_minute, DEFAULT_BURST)
    parts = _partitions(texts, partition_size)
    dclient = _distributed_client(client)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    _check_job_file(root, settings.as_dict())
    (root / MANIFEST).unlink(missing_ok=True)   # reappears only when every shard is complete

    counts = dclient.gather(dclient.compute([delayed(_partition.count_texts, pure=True)(p) for p in parts]))
    if sum(counts) == 0:
        raise ValueError("texts is empty")
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(int).tolist()
    _remove_stale(root, len(parts))

    from distributed import wait

    _register_lease_release(dclient)
    budget = f"{BUDGET_PREFIX}{uuid.uuid4().hex}"
    sem = Semaphore(max_leases=max_concurrency, name=budget, scheduler_rpc=dclient.scheduler, loop=dclient.loop)
    sem.register()
    job = _partition.Job(out=str(root.resolve()), settings=settings, save_texts=bool(save_texts),
                          budget=budget, max_concurrency=max_concurrency, base_url=base_url,
               timeout=timeout, max_retries=max_retries, api_key=api_key,
               max_requests_per_minute=max_requests_per_minute)
    t0 = time.perf_counter()
    rate_open = False
    try:
        if max_requests_per_minute is not None:
            _open_rate_budget(dclient, budget, max_requests_per_minute)
            rate_open = True
        tasks = [delayed(_partition.embed_partition, pure=False)(p, i, offsets[i], job,
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
        if rate_open:
            dclient.sync(dclient.scheduler.pplx_codec_rate_close, name=budget)
    seconds = time.perf_counter() - t0
    if failures:
        raise EmbedError(failures, len(parts))

    total, run = Usage(), Usage()   # every attempt's (the sidecars'), this run's
    for r in results:
        total += _partition.usage_of(r.get("usage"))
        run += _partition.usage_of(r["attempt_usage"])
    manifest = {"format": FORMAT, "version": VERSION, **settings.as_dict(), "count": int(offsets[-1]),
                "partitions": len(parts),
                "shards": [{"path": r["path"], "partition": r["partition"], "offset": r["offset"],
                            "count": r["count"], "sha256": r["sha256"]} for r in results],
                "usage": asdict(total)}
    _fs.replace_json(root / MANIFEST, manifest)
    return EmbedResult(root, manifest, sum(r["count"] for r in results if not r["skipped"]),
                       [r["partition"] for r in results if r["skipped"]], seconds, run)


def _register_lease_release(dclient) -> None:
    """Install :class:`_budget.ReleaseLostLeases` on the scheduler (once).  A
    scheduler that cannot load it (pplx-codec not installed there, pickled
    plugins disabled) still enforces the budget: a lost worker's leases then
    come back after distributed's lease timeout, as the warning says."""
    try:
        dclient.register_plugin(_budget.ReleaseLostLeases())
    except Exception as e:  # noqa: BLE001 - whatever the scheduler raised, the job can run
        warnings.warn(f"pplx_codec.dask.embed: the scheduler did not take the plugin that releases a lost "
                      f"worker's concurrency leases ({type(e).__name__}: {e}); they come back only after "
                      "distributed.scheduler.locks.lease-timeout", RuntimeWarning, stacklevel=3)


def _open_rate_budget(dclient, name: str, per_minute: float) -> None:
    """The job's rate budget on the scheduler (:class:`_budget.RateBudgets`);
    without it no budget could hold across workers, so a scheduler that
    refuses the plugin is an error."""
    try:
        dclient.register_plugin(_budget.RateBudgets())
    except Exception as e:  # noqa: BLE001 - whatever the scheduler raised, say what it means
        raise RuntimeError(f"pplx_codec.dask.embed: max_requests_per_minute needs the scheduler to run the "
                           f"plugin that keeps the rate budget, and it refused ({type(e).__name__}: {e}); "
                           "install pplx-codec where the scheduler runs") from e
    dclient.sync(dclient.scheduler.pplx_codec_rate_open, name=name, per_minute=per_minute, burst=DEFAULT_BURST)


def _positive(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)
