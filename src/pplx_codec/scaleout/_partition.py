"""One partition task of the dask embed, run on a worker: embed the
partition's texts, write them as a store shard, then the sidecar that marks
the shard complete (its usage includes the partition's failed attempts');
and the errors that say which partitions failed, picklable across processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import errors, store
from ..results import Usage
from ..settings import EmbedSettings
from ..store import _fs
from . import _budget

#: The shard format the sidecars name.
FORMAT = "pplx-codec-dask-embed"

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


# ---------------------------------------------------------------- the task


@dataclass(frozen=True)
class Job:
    """What every partition task of the job needs.  Picklable; its repr never shows the key."""

    out: str
    settings: EmbedSettings
    save_texts: bool
    budget: str                # the distributed.Semaphore's name
    max_concurrency: int
    base_url: str | None
    timeout: float | None
    max_retries: int
    api_key: str | None = field(default=None, repr=False)
    #: the job's request-rate budget, on the scheduler under ``budget``'s name (None: no limit)
    max_requests_per_minute: float | None = None

    def client_key(self) -> tuple:
        key = hashlib.sha256((self.api_key or "").encode()).hexdigest()
        return (key, self.base_url, self.timeout, self.max_retries, self.max_concurrency, self.budget)


def _as_list(part) -> list:
    if isinstance(part, list):
        return part
    if hasattr(part, "tolist"):   # a pandas Series (a dask dataframe partition)
        return part.tolist()
    return list(part)


def count_texts(part) -> int:
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


def read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


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


def usage_of(d) -> Usage:
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
            total += usage_of(json.loads(line))
        except (ValueError, TypeError):
            pass   # a line torn by a kill mid-append
    return total


def embed_partition(part, partition: int, offset: int, job: Job) -> dict:
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
                  "sha256": _digest(texts), **job.settings.as_dict()}
        side_path = root / f"{name}.json"
        side = read_json(side_path)
        if _complete(side, expect, root):
            spent_path.unlink(missing_ok=True)   # left by a kill after the sidecar: counted in it
            return {**side, "skipped": True, "attempt_usage": asdict(Usage())}
        # from here until the new sidecar, the shard is not complete: an old sidecar must
        # not vouch for a shard that is being replaced
        side_path.unlink(missing_ok=True)
        usage, seconds = Usage(), 0.0
        if count:
            t0 = time.perf_counter()
            s = job.settings
            got = _budget.worker_client(job).embed(texts, model=s.model, dimensions=s.dimensions,
                                                   encoding_format=s.encoding_format, bitorder=s.bitorder)
            paid = got.usage   # spent even if writing the shard fails
            store.save(root / name, **s.arrays(got.vectors), bitorder=s.bitorder,
                       meta={"model": s.model, "partition": partition, "offset": offset,
                             "sha256": expect["sha256"]},
                       texts=texts if job.save_texts else None)
            seconds = time.perf_counter() - t0
            usage = got.usage
        total = _spent(spent_path)   # earlier failed attempts, then this one
        total += usage
        side = {**expect, "path": name if count else None, "seconds": round(seconds, 6), "usage": asdict(total)}
        _fs.replace_json(side_path, side)
        paid = None   # counted in the sidecar now
        spent_path.unlink(missing_ok=True)
        return {**side, "skipped": False, "attempt_usage": asdict(usage)}
    except PartitionError:
        raise
    except Exception as e:
        partial = getattr(e, "partial", None)
        _record_spent(spent_path, paid if paid is not None else getattr(partial, "usage", None))
        raise PartitionError.wrap(partition, offset, count, e) from None
