"""The pipelines behind the CLI's ``embed`` and ``search``: a corpus embedded
into a store (a resumable job, in the store's sense: its ``.partial`` and
job key), and a query embedded as a store's rows were, then searched.

Embedding runs in chunks of texts; each chunk's rows go to the store's
``Writer`` (memory-mapped, flushed, then marked done), so a killed run
resumes where it stopped: finished chunks are never re-embedded.  A chunk
that fails keeps the rows that did arrive.  Each chunk's usage is logged in
the job (``Writer.record``) before its rows are written, so meta.json's
``usage`` is the sum over every run, failed and killed ones included.
Binary codes are derived from the int8 rows when both encodings are asked
for (``EmbedSettings.arrays``: one request per text instead of two).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import _progress, errors, store
from .client import Client
from .constants import API_BITORDER, DEFAULT_MODEL, EMBED_CHUNK
from .corpus import Source
from .index import BinaryIndex, Index, Int8Index
from .results import Usage
from .settings import EmbedSettings

__all__ = ["EmbedReport", "embed_corpus", "search_store", "search_queries", "Hit"]


@dataclass
class EmbedReport:
    count: int
    embedded: int          # texts embedded by this run (the rest were done before)
    seconds: float
    usage: Usage = field(default_factory=Usage)

    @property
    def rate(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else float("inf")


def _job_key(source: Source, settings: EmbedSettings, encodings, endpoint: str) -> str:
    # the encodings as the caller gave them: a .partial started before keeps resuming
    ident = json.dumps([source.sha256, settings.model, settings.dimensions, list(encodings), settings.bitorder,
                        endpoint])
    return hashlib.sha256(ident.encode()).hexdigest()


def embed_corpus(client: Client, source: Source, out: str, model: str = DEFAULT_MODEL,
                 dimensions: int | None = None, encodings: tuple[str, ...] = ("int8", "binary"),
                 bitorder: str = API_BITORDER, chunk: int = EMBED_CHUNK, progress=True,
                 endpoint: str = "") -> EmbedReport:
    """Embed ``source.texts`` into the store at ``out`` (resuming a matching
    unfinished job there) and commit it.  ``endpoint`` names where vectors
    come from, so that a resume never mixes two services' vectors."""
    settings = EmbedSettings.checked(model, dimensions, encodings, bitorder)
    dims = settings.dimensions
    n = len(source.texts)
    meta = {"model": model, "dimensions": dims, "source": source.path, "source_sha256": source.sha256,
            "endpoint": endpoint}
    writer = store.Writer.resume_or_create(out, n, dims, encodings=settings.encodings, bitorder=bitorder,
                                           meta=meta, job_key=_job_key(source, settings, encodings, endpoint))
    usage = Usage()
    todo = writer.missing()
    update, close = _progress.reporter(bool(progress), n, model, initial=n - todo.size)
    started = time.perf_counter()
    try:
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            if writer.done[start:stop].all():
                continue
            try:
                got = client.embed(source.texts[start:stop], model=model, dimensions=dims,
                                   encoding_format=settings.encoding_format, bitorder=bitorder)
            except errors.APIError as e:
                if e.partial is not None:  # keep what arrived: a rerun embeds only the rest
                    if e.partial.usage is not None:
                        _spent(writer, usage, e.partial.usage)
                    _write_runs(writer, settings, start, e.partial.vectors, e.partial.filled)
                raise
            _spent(writer, usage, got.usage)
            writer.write(start, **settings.arrays(got.vectors))
            update(stop - start)
    except BaseException:
        writer.close()  # releases the job lock; the .partial stays for the next run
        raise
    finally:
        close()
    seconds = time.perf_counter() - started
    writer.commit(meta={**meta, "usage": asdict(_job_usage(writer)), "resumed": bool(writer.resumed),
                        "seconds": round(seconds, 3)},
                  texts=source.texts)
    return EmbedReport(n, int(todo.size), seconds, usage)


def _spent(writer, run: Usage, usage: Usage) -> None:
    """Count a chunk's usage for this run and, durably, for the job: logged
    before its rows are written, so that a kill at any point keeps every
    request that was paid for (rows lost with a kill are embedded, and
    counted, again)."""
    writer.record({"usage": asdict(usage)})
    run += usage


def _job_usage(writer) -> Usage:
    """The sum over every run of the job (meta.json's ``usage``)."""
    total = Usage()
    for entry in writer.records():
        try:
            total += Usage(**entry["usage"])
        except (TypeError, KeyError) as e:
            raise ValueError(f"{writer.partial}: a record of this job is not a usage ({entry!r}: {e}); "
                             "remove its log.jsonl to commit without the earlier runs' usage") from None
    return total


def _write_runs(writer, settings: EmbedSettings, start: int, vectors: np.ndarray, filled: np.ndarray) -> None:
    """Write the filled rows of a partial result, run by contiguous run."""
    idx = np.flatnonzero(filled)
    if idx.size == 0:
        return
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    for run in np.split(idx, breaks):
        lo, hi = int(run[0]), int(run[-1]) + 1
        writer.write(start + lo, **settings.arrays(vectors[lo:hi]))


@dataclass
class Hit:
    rank: int
    row: int
    score: float
    text: str | None


def search_store(client: Client, path: str, query: str, k: int = 10, rescore: int = 4,
                 threads: int | None = None, exact: bool = False) -> tuple[list[Hit], dict]:
    """Embed ``query`` as the store's vectors were embedded, search, and return
    the hits (best first) and timings (see :func:`search_queries`)."""
    hits, info = search_queries(client, path, [query], k, rescore, threads, exact)
    return hits[0], info


# --- many queries at once (``pplx-codec search --queries``) ---

def search_queries(client: Client, path: str, queries: list[str], k: int = 10, rescore: int = 4,
                   threads: int | None = None, exact: bool = False) -> tuple[list[list[Hit]], dict]:
    """Embed all ``queries`` in one ``Client.embed`` call (the client batches
    the requests) as the store's rows were embedded, search them as one
    query matrix, and return each query's hits (best first) and timings.

    The search is the store's: binary top-``k * rescore`` re-ranked by exact
    int8 cosine when both encodings are stored, else exact int8 cosine, else
    exact Hamming (scores are then distances, lowest first).  ``exact``:
    int8 cosine over every row, no binary stage (needs the store's int8)."""
    stored = store.load(path)
    meta = stored.meta
    model, dims = meta["model"], stored.dimensions
    index = stored.index("int8" if exact else None)  # no int8 with exact: a ValueError, before any request
    t0 = time.perf_counter()
    q = client.embed(queries, model=model, dimensions=dims, encoding_format="base64_int8").vectors
    t1 = time.perf_counter()
    S: np.ndarray  # similarities (int8 rows) or Hamming distances (codes only)
    if isinstance(index, Index):
        S, I = index.search(q, k, rescore=rescore, threads=threads)
        how = f"binary top-{k * rescore} + int8 cosine rescoring"
    elif isinstance(index, Int8Index):
        S, I = index.search(q, k, threads=threads)
        how = "exact int8 cosine"
    else:
        assert isinstance(index, BinaryIndex)
        S, I = index.search(q, k, threads=threads)  # int8 queries: packed in the index's bit order
        how = "exact Hamming"
    t2 = time.perf_counter()
    texts = stored.texts
    hits = [[Hit(r + 1, int(i), float(s), texts[int(i)] if texts is not None else None)
             for r, (s, i) in enumerate(zip(row_s, row_i, strict=True)) if i >= 0]
            for row_s, row_i in zip(S, I, strict=True)]
    return hits, {"embed_ms": (t1 - t0) * 1e3, "search_ms": (t2 - t1) * 1e3, "method": how,
                  "rows": stored.count, "model": model, "dimensions": dims, "queries": len(queries)}
