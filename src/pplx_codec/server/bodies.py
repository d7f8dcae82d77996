"""Response bodies, produced and sent one batch of rows at a time.

The JSON is written by hand because its shape is fixed and its bulk is
base64 (never in need of escaping): the head, then each batch's rows as
soon as they are computed (in a worker thread, off the event loop), then
``model`` and ``usage``.  A 512 x 2560 int8 response (1.8 MB) leaves in
chunks of ~256 KB; no body is ever held whole in memory.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence

import anyio
import numpy as np

from ..constants import MODEL_DIMS
from .backends import Backend, contextualize, encode_rows, lean, unit_sum
from .cache import LRU
from .faults import Fault, InjectedDisconnect

#: Target size of one chunk of the body.
CHUNK_BYTES = 256 << 10
_ROW_OVERHEAD = len('{"object":"embedding","index":00000,"embedding":""},')


def rows_per_batch(dimensions: int, encoding_format: str) -> int:
    raw = dimensions if encoding_format == "base64_int8" else (dimensions + 7) // 8
    return max(1, CHUNK_BYTES // (4 * -(-raw // 3) + _ROW_OVERHEAD))


def _head() -> bytes:
    return b'{"object":"list","data":['


def _tail(model: str, usage: dict) -> bytes:
    return ('],"model":' + json.dumps(model) + ',"usage":' + json.dumps(usage, separators=(",", ":")) + "}").encode()


def _rows(indices: Sequence[int], strings: Sequence[str]) -> str:
    return ",".join(f'{{"object":"embedding","index":{i},"embedding":"{s}"}}'
                    for i, s in zip(indices, strings, strict=True))


class _Pacer:
    """Spreads the ``slow`` fault's delay over the batches; a no-op otherwise."""

    def __init__(self, fault: Fault, batches: int, slow_seconds: float):
        self.delay = slow_seconds / max(batches, 1) if fault.mode == "slow" else 0.0

    async def wait(self) -> None:
        if self.delay:
            await anyio.sleep(self.delay)


def encoded_rows(backend: Backend, cache: LRU, model: str, texts: Sequence[str], dimensions: int,
                 encoding_format: str) -> list[str]:
    """The base64 rows of ``texts``: from the cache, the rest embedded in one batch and remembered."""
    keys = [(model, dimensions, encoding_format, t) for t in texts]
    found = cache.get_many(keys)
    missing = [j for j, s in enumerate(found) if s is None]
    if missing:
        strings = encode_rows(backend.embed(model, [texts[j] for j in missing]), dimensions, encoding_format)
        for j, s in zip(missing, strings, strict=True):
            found[j] = s
        # a row's cost: its string, its text (the key holds it), ~100 bytes of bookkeeping
        cache.put_many((keys[j], s, len(s) + len(texts[j]) + 100) for j, s in zip(missing, strings, strict=True))
    return found


async def embeddings_body(backend: Backend, cache: LRU, model: str, texts: Sequence[str], dimensions: int,
                          encoding_format: str, usage: dict, fault: Fault,
                          slow_seconds: float) -> AsyncIterator[bytes]:
    n = len(texts)
    order = fault.permutation(n)
    if fault.mode == "drop":
        order = order[: n // 2]
    size = rows_per_batch(dimensions, encoding_format)
    batches = [order[i:i + size] for i in range(0, len(order), size)]
    pacer = _Pacer(fault, len(batches), slow_seconds)

    def compute(first: bool, idx: np.ndarray) -> bytes:
        strings = encoded_rows(backend, cache, model, [texts[i] for i in idx], dimensions, encoding_format)
        rows = _rows(idx.tolist(), strings)
        return (rows if first else "," + rows).encode()

    yield _head()
    for b, idx in enumerate(batches):
        await pacer.wait()
        yield await anyio.to_thread.run_sync(compute, b == 0, idx)
    if fault.mode == "drop":
        raise InjectedDisconnect(f"request {fault.sequence}: dropped after {len(order)} of {n} rows")
    yield _tail(model, usage)


async def contextualized_body(backend: Backend, model: str, documents: Sequence[Sequence[str]], dimensions: int,
                              encoding_format: str, usage: dict, fault: Fault,
                              slow_seconds: float) -> AsyncIterator[bytes]:
    """Whole documents are embedded a batch of about ``rows_per_batch`` chunks at a
    time.  A document longer than that goes alone, in two passes over its chunks in
    batches (its direction, then its rows), so no batch, and no piece of the body,
    grows with the size of a document."""
    n = len(documents)
    order = fault.permutation(n)
    if fault.mode == "drop":
        order = order[: n // 2]
    size = rows_per_batch(dimensions, encoding_format)
    groups: list[list[int]] = []  # runs of small documents, or one large one
    pending: list[int] = []
    pending_chunks = 0
    for d in order.tolist():
        k = len(documents[d])
        if k > size:
            groups += [pending, [d]] if pending else [[d]]
            pending, pending_chunks = [], 0
            continue
        pending.append(d)
        pending_chunks += k
        if pending_chunks >= size:
            groups.append(pending)
            pending, pending_chunks = [], 0
    if pending:
        groups.append(pending)
    # the pacer waits once per small group, and once per pass-one and pass-two batch of a large document
    waits = sum(1 if len(documents[g[0]]) <= size else 1 + -(-len(documents[g[0]]) // size) for g in groups)
    pacer = _Pacer(fault, waits, slow_seconds)
    comma = ""  # before every document but the first

    def document(d: int, strings: Sequence[str], within: np.ndarray) -> str:
        return f'{{"object":"list","index":{d},"data":[{_rows(within.tolist(), strings)}]}}'

    def small(docs: list[int]) -> str:
        sizes = [len(documents[d]) for d in docs]
        x = contextualize(backend.embed(model, [c for d in docs for c in documents[d]]), sizes)
        strings = encode_rows(x, dimensions, encoding_format)
        parts, start = [], 0
        for d, k in zip(docs, sizes, strict=True):
            within = fault.permutation(k, salt=d + 1)
            parts.append(document(d, [strings[start + j] for j in within], within))
            start += k
        return ",".join(parts)

    def direction(chunks: Sequence[str]) -> np.ndarray:
        total = np.zeros(MODEL_DIMS[model], np.float64)
        for i in range(0, len(chunks), size):
            total += unit_sum(backend.embed(model, chunks[i:i + size]))
        return total

    def large_rows(chunks: Sequence[str], sums: np.ndarray, idx: np.ndarray) -> str:
        x = lean(backend.embed(model, [chunks[j] for j in idx]), sums)
        return _rows(idx.tolist(), encode_rows(x, dimensions, encoding_format))

    yield _head()
    for group in groups:
        k = len(documents[group[0]])
        if k <= size:
            await pacer.wait()
            yield (comma + await anyio.to_thread.run_sync(small, group)).encode()
        else:
            d = group[0]
            chunks = documents[d]
            within = fault.permutation(k, salt=d + 1)
            await pacer.wait()
            sums = await anyio.to_thread.run_sync(direction, chunks)
            yield f'{comma}{{"object":"list","index":{d},"data":['.encode()
            for i in range(0, k, size):
                await pacer.wait()
                rows = await anyio.to_thread.run_sync(large_rows, chunks, sums, within[i:i + size])
                yield (("," if i else "") + rows).encode()
            yield b"]}"
        comma = ","
    if fault.mode == "drop":
        raise InjectedDisconnect(f"request {fault.sequence}: dropped after {len(order)} of {n} documents")
    yield _tail(model, usage)
