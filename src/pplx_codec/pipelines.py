"""The pipelines behind the CLI's ``embed`` and ``search``: a corpus embedded
into a store (a resumable job, in the store's sense: its ``.partial`` and
job key), and a query embedded as a store's rows were, then searched.

Embedding runs in chunks of texts; each chunk's rows go to the store's
``Writer`` (memory-mapped, flushed, then marked done), so a killed run
resumes where it stopped: only rows not done are embedded again.  A chunk
that fails keeps the rows that did arrive.  Each chunk's usage is logged in
the job (``Writer.record``) before its rows are written, so meta.json's
``usage`` is the sum over every run, failed and killed ones included.
Binary codes are derived from the int8 rows when both encodings are asked
for (``EmbedSettings.arrays``: one request per text instead of two).

Nothing is paid for twice.  Each distinct text of the corpus (exact ``str``
equality, as ``Client.embed`` compares) is embedded once and its row copied to
every row that repeats it.  When ``out`` already holds a store made with the
same settings (model, dimensions, encodings, bit order and endpoint), a text
it holds is not embedded again: its row is copied from it.  So re-running on a
grown (or edited, or reordered) corpus embeds only the new texts, and the new
store is exactly what a run from scratch would have written: one row per text
of the corpus, in its order (rows of texts no longer in it are dropped).  The
copies are rows of the same resumable job, and the old store stays in place
until the new one is swapped in.  A store at ``out`` made with other settings
is refused (its rows cannot be reused: say ``replace=True``, the CLI's
``--replace``, to embed everything afresh and replace it).

Nor is a killed run's work lost when the corpus changes before the next run.
The ``.partial`` keeps its texts, and a run on another corpus (made with the
same settings) starts with the rows of the killed run whose texts are still
in the corpus, and with the killed run's usage: only what it had not received
is embedded.  An unfinished run made with other settings cannot lend its
rows: it is discarded, and ``EmbedReport.discarded`` says why.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import _progress, errors, store
from ._plan import distinct_texts
from .client import Client
from .constants import API_BITORDER, DEFAULT_MODEL, EMBED_CHUNK
from .corpus import Source
from .index import BinaryIndex, Index, Int8Index
from .ranking import check_rescore
from .results import Usage
from .settings import EmbedSettings

__all__ = ["EmbedReport", "embed_corpus", "search_store", "search_queries", "Hit"]


@dataclass
class EmbedReport:
    count: int
    embedded: int          # distinct texts this run sent (the rest were done before, reused or repeats)
    seconds: float
    usage: Usage = field(default_factory=Usage)
    reused: int = 0        # distinct texts whose row this run copied from the store it replaces
    repeats: int = 0       # rows this run filled from an earlier row of the same text
    written: int = 0       # rows this run wrote in all (count - written were done by an earlier run)
    carried: int = 0       # distinct texts whose row an interrupted run on another corpus had received
    discarded: str | None = None  # why the unfinished run at out (its .partial) could not be used, if one was not

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
                 endpoint: str = "", replace: bool = False) -> EmbedReport:
    """Embed ``source.texts`` into the store at ``out`` (resuming a matching
    unfinished job there) and commit it.  ``endpoint`` names where vectors
    come from, so that a resume never mixes two services' vectors.  Each
    distinct text is sent once, and only when ``out`` does not hold it yet
    (see the module's docstring); ``replace=True`` ignores a store there."""
    settings = EmbedSettings.checked(model, dimensions, encodings, bitorder)
    dims = settings.dimensions
    n = len(source.texts)
    previous = None if replace else _previous(out, settings, endpoint)
    meta = {"model": model, "dimensions": dims, "source": source.path, "source_sha256": source.sha256,
            "endpoint": endpoint}
    def reuse(job: store.Writer) -> str | None:  # an unfinished run on another corpus
        return _unfinished_differs(job, settings, endpoint)

    writer = store.Writer.resume_or_create(out, n, dims, encodings=settings.encodings, bitorder=bitorder,
                                           meta=meta, job_key=_job_key(source, settings, encodings, endpoint),
                                           texts=source.texts, reuse=reuse)
    usage = Usage()
    report = EmbedReport(n, 0, 0.0, usage, discarded=writer.discarded)
    started = time.perf_counter()
    try:
        groups = _Groups(source.texts)
        todo = groups.incomplete(writer.done)
        if writer.carried:
            report.carried = len(groups.texts) - todo.size
        if previous is not None:
            todo = _copy_previous(writer, groups, todo, previous, chunk, report)
            previous = None  # its files are replaced at the commit
        left = int(groups.sizes(todo).sum())
        update, close = _progress.reporter(bool(progress), n, model, initial=n - left)
        try:
            for lo in range(0, todo.size, chunk):
                part = todo[lo:lo + chunk]
                try:
                    got = client.embed([groups.texts[k] for k in part.tolist()], model=model, dimensions=dims,
                                       encoding_format=settings.encoding_format, bitorder=bitorder)
                except (errors.APIError, KeyboardInterrupt) as e:  # Client sets partial on both
                    partial: errors.PartialResult | None = getattr(e, "partial", None)
                    if partial is not None:  # keep what arrived: a rerun embeds only the rest
                        if partial.usage is not None:
                            _spent(writer, usage, partial.usage)
                        sent = np.flatnonzero(partial.filled)
                        _write_groups(writer, groups, part[sent], settings.arrays(partial.vectors[sent]), report)
                    raise
                _spent(writer, usage, got.usage)
                update(_write_groups(writer, groups, part, settings.arrays(got.vectors), report))
                report.embedded += part.size
        finally:
            close()
    except BaseException:
        writer.close()  # releases the job lock; the .partial stays for the next run
        raise
    report.seconds = time.perf_counter() - started
    writer.commit(meta={**meta, "usage": asdict(_job_usage(writer)), "resumed": bool(writer.resumed),
                        "seconds": round(report.seconds, 3)},
                  texts=source.texts)
    return report


class _Groups:
    """The corpus's rows grouped by text: ``texts[k]`` the distinct texts in
    the order of their first occurrence, and the rows holding each."""

    def __init__(self, texts: list[str]):
        uniq, inverse, _ = distinct_texts(texts)
        self.texts = uniq
        self.inverse = np.arange(len(texts)) if inverse is None else inverse
        self._order = np.argsort(self.inverse, kind="stable")   # rows, grouped by text
        self._starts = np.zeros(len(uniq) + 1, np.intp)
        np.cumsum(np.bincount(self.inverse, minlength=len(uniq)), out=self._starts[1:])

    def incomplete(self, done: np.ndarray) -> np.ndarray:
        """The texts (ascending) with a row not done: each is written whole again."""
        return np.flatnonzero(np.bincount(self.inverse[~done], minlength=len(self.texts)))

    def sizes(self, ks: np.ndarray) -> np.ndarray:
        return self._starts[ks + 1] - self._starts[ks]

    def rows(self, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, which)``: every row of the texts ``ks``, and for each the
        position in ``ks`` of its text."""
        lens = self.sizes(ks)
        which = np.repeat(np.arange(ks.size), lens)
        at = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens - self._starts[ks], lens)
        return self._order[at], which


def _write_groups(writer, groups: _Groups, ks: np.ndarray, arrays: Mapping[str, Any], report: EmbedReport) -> int:
    """Write row ``j`` of each encoding of ``arrays`` to every row of text
    ``ks[j]``; the rows written."""
    if ks.size == 0:
        return 0
    rows, which = groups.rows(ks)
    writer.write_rows(rows, **{e: a[which] for e, a in arrays.items()})
    report.written += rows.size
    report.repeats += rows.size - ks.size
    return int(rows.size)


_REPLACE = "Pass --replace (replace=True) to embed every text afresh and replace it, or choose another --out"


def _previous(out: str, settings: EmbedSettings, endpoint: str) -> tuple[store.Stored, dict[str, int]] | None:
    """The store at ``out`` and the row of each text it holds (the first, if
    a text repeats), when its rows can stand for this run's; None when there
    is none.  ``ValueError`` when there is one whose rows cannot."""
    try:
        old = store.load(out)
    except FileNotFoundError:
        return None
    except ValueError as e:   # a damaged store: the message names the file
        raise ValueError(f"{e}. {_REPLACE}") from None
    differ = _differences(old.meta, old.dimensions, old.encodings, old.bitorder, settings, endpoint)
    if old.texts is None:
        differ.append("no texts.jsonl (rows cannot be matched to texts)")
    if differ:
        raise ValueError(f"{out} holds a store whose rows cannot be reused for this run: {'; '.join(differ)}. "
                         f"{_REPLACE}")
    rows: dict[str, int] = {}
    try:
        for i, t in enumerate(old.texts or ()):
            rows.setdefault(t, i)
    except ValueError as e:   # a damaged texts.jsonl: the message names the file and line
        raise ValueError(f"{e}. {_REPLACE}") from None
    return old, rows


def _differences(meta: Mapping[str, Any], dimensions: int, encodings, bitorder: str, settings: EmbedSettings,
                 endpoint: str) -> list[str]:
    """How rows made with these settings (a store's, an unfinished run's)
    differ from this run's: the one rule of "the same settings", each
    difference said as ``name theirs (this run: mine)``."""
    mine = {"model": settings.model, "dimensions": settings.dimensions, "encodings": list(settings.encodings),
            "bitorder": settings.bitorder, "endpoint": endpoint}
    theirs = {"model": meta.get("model"), "dimensions": dimensions, "encodings": list(encodings),
              "bitorder": bitorder, "endpoint": meta.get("endpoint")}
    return [f"{k} {theirs[k]!r} (this run: {mine[k]!r})" for k in mine if theirs[k] != mine[k]]


def _unfinished_differs(job: store.Writer, settings: EmbedSettings, endpoint: str) -> str | None:
    """``Writer.resume_or_create``'s ``reuse``: None when the unfinished job
    of another corpus at ``out`` was made as this run is (its rows can be
    taken over by text, if it keeps its texts), else how it differs."""
    return "; ".join(_differences(job.meta, job.dimensions, job.encodings, job.bitorder, settings, endpoint)) or None


def _copy_previous(writer, groups: _Groups, todo: np.ndarray, previous, chunk: int,
                   report: EmbedReport) -> np.ndarray:
    """Copy the rows of the texts ``todo`` that the previous store holds;
    the texts left to embed."""
    old, where = previous
    src = np.fromiter((where.get(groups.texts[k], -1) for k in todo.tolist()), np.intp, todo.size)
    held = src >= 0
    copy, src = todo[held], src[held]
    arrays = {e: old.int8 if e == "int8" else old.binary for e in writer.encodings}
    for lo in range(0, copy.size, chunk):
        order = np.argsort(src[lo:lo + chunk])  # read the old rows in file order
        ks, rows = copy[lo:lo + chunk][order], src[lo:lo + chunk][order]
        _write_groups(writer, groups, ks, {e: a[rows] for e, a in arrays.items()}, report)
        report.reused += ks.size
    return todo[~held]


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


@dataclass
class Hit:
    rank: int
    row: int
    score: float
    text: str | None


def search_store(client: Client, path: str | store.Stored, query: str, k: int = 10, rescore: int = 4,
                 threads: int | None = None, exact: bool = False) -> tuple[list[Hit], dict]:
    """Embed ``query`` as the store's vectors were embedded, search, and return
    the hits (best first) and timings (see :func:`search_queries`)."""
    hits, info = search_queries(client, path, [query], k, rescore, threads, exact)
    return hits[0], info


# --- many queries at once (``pplx-codec search --queries``) ---

def search_queries(client: Client, path: str | store.Stored, queries: list[str], k: int = 10, rescore: int = 4,
                   threads: int | None = None, exact: bool = False) -> tuple[list[list[Hit]], dict]:
    """Embed all ``queries`` in one ``Client.embed`` call (the client batches
    the requests) as the store's rows were embedded, search them as one
    query matrix, and return each query's hits (best first) and timings.
    ``path``: the store's directory, or the store already loaded.

    The search is the store's: binary top-``k * rescore`` (at most every row) re-ranked by exact
    int8 cosine when both encodings are stored, else exact int8 cosine, else
    exact Hamming (scores are then distances, lowest first).  ``exact``:
    int8 cosine over every row, no binary stage (needs the store's int8)."""
    stored = path if isinstance(path, store.Stored) else store.load(path)
    meta = stored.meta
    model, dims = meta["model"], stored.dimensions
    index = stored.index("int8" if exact else None)  # no int8 with exact: a ValueError, before any request
    t0 = time.perf_counter()
    q = client.embed(queries, model=model, dimensions=dims, encoding_format="base64_int8").vectors
    t1 = time.perf_counter()
    S: np.ndarray  # similarities (int8 rows) or Hamming distances (codes only)
    if isinstance(index, Index):
        S, I = index.search(q, k, rescore=rescore, threads=threads)
        # the candidates rescoring really gets: never more than the rows (ranking.check_rescore)
        how = f"binary top-{check_rescore(rescore, k, stored.count)} + int8 cosine rescoring"
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
