"""Client family: response decoding, and whole jobs through the loopback reference server.

Decode cases: one recorded response body (512 x 1024 int8, 512 x 2560 int8,
512 x 1024 binary) -> the matrix, rows placed by ``index``.  The bodies are
what the reference server sends for 512 distinct texts, requested once over
HTTP (or, without the server extra, built exactly as the server writes
them).  Ours: :class:`StreamDecoder` fed 64 KiB pieces (what httpx's
``iter_bytes`` yields: httpcore reads 64 KiB at a time) and the body in one
piece.  Peers: ``json`` + ``base64``; orjson + pybase64; a msgspec Struct
schema + pybase64, or with ``embedding: bytes`` (msgspec's own base64); and
the official ``perplexityai`` SDK's own parsing (its ``APIResponse.parse()``
on an httpx response holding the body: ``response.json()``, then
``construct_type`` into the model ``embeddings.create`` returns) +
pybase64.  Every implementation allocates its output matrix per call and
decodes base64 strictly (pybase64 ``validate=True``; the stdlib row uses ``b64decode``'s
default, its fastest).  The oracle is the server's hash backend called
directly (float vectors -> ``round(tanh(x) * 127)`` or ``x > 0`` packed
LSB-first), so it shares no JSON or base64 code with any implementation.

End-to-end cases: ``N_E2E`` (20,000) distinct texts -> a ``N_E2E x 1024``
int8 matrix through the reference server in a child process, our
:class:`~pplx_codec.client.Client` against the official SDK client (the same
512-text batches through ``embeddings.create`` on a thread pool, each
response's ``.embedding`` strings decoded with pybase64 into the matrix by
``index``).  Both use ``CONCURRENCY`` (4) requests in flight and their
defaults otherwise (2 retries, none taken: no faults).  Server cost is the
same for both: its row cache holds every text of every case and is warmed
before anything is timed, so each timed job is served from the cache (the
server then costs ~7 us of CPU per vector, ~3.5 ms of one core per 512-row
response, leaving most of the 2 cores to the client; the case prints the
server's CPU per vector while serving each client, read from /proc).  Rows
report wall-clock vectors/s and the client process's own CPU time per
vector (``time.process_time()`` around each sample: all its threads, user +
system; the server's CPU is in another process and not counted).  Targets:
ours >= 4x less CPU per vector, and no fewer vectors/s.

Peak memory: each client runs an ``N_MEM`` (100,000)-text job in a fresh
process (``python -m pplx_codec.benchmarks.client_memory memory-job ...``); after
imports, the texts and the client exist, the process resets its peak RSS
(``/proc/self/clear_refs``), and reports its peak RSS after the job
(``VmHWM``) minus its RSS before it.  Target: ours <= 1.5x the output
matrix.  The row time is the whole fresh process (start-up included); the
figures below it are the point.

Texts: ``passage <i>. `` then 6-40 pseudo-words (about 170 characters,
~30 estimated tokens on average), the same for every run and every size
(text ``i`` never changes).
"""

from __future__ import annotations

import base64
import json

import numpy as np

import pplx_codec as pc
from pplx_codec.constants import MODEL_DIMS

from ._harness import Case, Impl, current_label, optional
from .client_memory import memory_case
from .client_setup import (
    BATCH,
    CHUNK,
    CONCURRENCY,
    KEY,
    MODEL,
    MODEL_4B,
    N_E2E,
    N_MEM,
    built_body,
    oracle,
    post,
    process_cpu,
    sdk_job,
    sdk_parser,
    server_pid,
    server_url,
    texts,
    warm,
)

# ----------------------------------------------------------------- decode cases


def _decode_case(model: str, fmt: str, libs: dict, missing: list[str], url: str | None) -> Case:
    n = BATCH
    binary = fmt == "base64_binary"
    dim = MODEL_DIMS[model]
    width = dim // 8 if binary else dim
    dtype = np.uint8 if binary else np.int8
    if url is not None:
        import httpx

        expected = oracle(n, model, fmt)
        with httpx.Client(timeout=300) as http:
            body = post(http, url, texts(n), model, fmt)
        source = "recorded from the reference server"
    else:
        rng = np.random.default_rng(dim + binary)
        expected = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max + 1, (n, width), dtype=dtype)
        body = built_body(expected, model, fmt)
        source = "built as the reference server writes it"
    chunks = [body[i:i + CHUNK] for i in range(0, len(body), CHUNK)]
    StreamDecoder = pc.StreamDecoder

    def stream_chunks():
        out = np.empty((n, width), dtype)
        dec = StreamDecoder(out)
        for c in chunks:
            dec.feed(c)
        dec.finish()
        return out

    def stream_whole():
        out = np.empty((n, width), dtype)
        dec = StreamDecoder(out)
        dec.feed(body)
        dec.finish()
        return out

    def stdlib():
        out = np.empty((n, width), dtype)
        mv = out.data.cast("B")
        for item in json.loads(body)["data"]:
            at = item["index"] * width
            mv[at:at + width] = base64.b64decode(item["embedding"])
        return out

    impls = [Impl(f"StreamDecoder, {CHUNK >> 10} KiB pieces", stream_chunks, True),
             Impl("StreamDecoder, whole body", stream_whole, True),
             Impl("json + base64.b64decode per item", stdlib)]
    orjson, msgspec, pybase64, perplexity = (libs[k] for k in ("orjson", "msgspec", "pybase64", "perplexity"))
    if orjson and pybase64:
        b64, loads = pybase64.b64decode, orjson.loads

        def orjson_pybase64():
            out = np.empty((n, width), dtype)
            mv = out.data.cast("B")
            for item in loads(body)["data"]:
                at = item["index"] * width
                mv[at:at + width] = b64(item["embedding"], validate=True)
            return out
        impls.append(Impl("orjson + pybase64 per item", orjson_pybase64))
    if msgspec:
        # a typed schema, as a msgspec user declares it (defstruct: this module's annotations are strings)
        def schema(embedding_type):
            item = msgspec.defstruct("Item", [("index", int), ("embedding", embedding_type),
                                              ("object", str, "embedding")])
            # (list[item]: a type made at run time, which no type checker can follow)
            return msgspec.defstruct("Response", [("data", list[item]),  # type: ignore[valid-type]
                                                  ("model", str, ""), ("object", str, "list"),
                                                  ("usage", dict | None, None)])

        Response = schema(str)
        ResponseBytes = schema(bytes)  # msgspec decodes base64 into bytes itself
        typed = msgspec.json.Decoder(Response).decode
        typed_bytes = msgspec.json.Decoder(ResponseBytes).decode

        if pybase64:
            b64 = pybase64.b64decode

            def msgspec_pybase64():
                out = np.empty((n, width), dtype)
                mv = out.data.cast("B")
                for item in typed(body).data:
                    at = item.index * width
                    mv[at:at + width] = b64(item.embedding, validate=True)
                return out
            impls.append(Impl("msgspec Struct + pybase64 per item", msgspec_pybase64))

        def msgspec_bytes():
            out = np.empty((n, width), dtype)
            mv = out.data.cast("B")
            for item in typed_bytes(body).data:
                at = item.index * width
                mv[at:at + width] = item.embedding
            return out
        impls.append(Impl("msgspec Struct (embedding: bytes, its base64)", msgspec_bytes))
    if perplexity and pybase64:
        parse = sdk_parser(perplexity, body)
        b64 = pybase64.b64decode

        def sdk_parse():
            r = parse()
            out = np.empty((n, width), dtype)
            mv = out.data.cast("B")
            for item in r.data:
                at = item.index * width
                mv[at:at + width] = b64(item.embedding, validate=True)
            return out
        impls.append(Impl("official SDK parsing + pybase64 per item", sdk_parse))
    kind = f"{dim} bits binary" if binary else f"{dim} int8"
    return Case("client", f"decode response {n} x {kind} ({len(body) / 1e6:.2f} MB body)", expected.nbytes,
                expected, impls, list(missing), targets=[("", 6.0), ("official SDK", 20.0)],
                note=f"{source}; GB/s = matrix bytes / time")


# ----------------------------------------------------------------- end to end


def _e2e_case(n: int, libs: dict, missing: list[str], url: str, label: str) -> Case:
    from pplx_codec.client import Client

    ts = texts(n)
    expected = oracle(n)
    warm(url, n)
    client = Client(api_key=KEY, base_url=url, max_concurrency=CONCURRENCY)
    pid = server_pid()
    server_cpu: dict[str, list[float]] = {}

    def metered(name: str, fn):
        """fn, also adding up the server process's CPU time per job (one /proc read each side)."""
        def run():
            s0 = process_cpu(pid)
            out = fn()
            s1 = process_cpu(pid)
            if s0 is not None and s1 is not None:  # per row: ours runs once per tier with --isa
                server_cpu.setdefault(current_label() or name, []).append(s1 - s0)
            return out
        return Impl(name, run)

    ours = metered(f"Client.embed (max_concurrency={CONCURRENCY})", lambda: client.embed(ts, model=MODEL).vectors)
    ours.ours = True
    impls = [ours]
    perplexity, pybase64 = libs["perplexity"], libs["pybase64"]
    if perplexity and pybase64:
        sdk = perplexity.Perplexity(api_key=KEY, base_url=url)
        impls.append(metered(f"official SDK, {CONCURRENCY} threads + pybase64", lambda: sdk_job(sdk, ts, pybase64)))

    def report(case: Case, timings) -> tuple[list[str], list[str]]:
        lines = []
        for impl, _ in timings:
            per_job = server_cpu.get(impl.label)
            if per_job:  # /proc counts clock ticks (10 ms): the mean over every job run
                lines.append(f"server CPU while serving {impl.label}: "
                             f"{sum(per_job) / len(per_job) / n * 1e6:.2f} us/vector (mean of {len(per_job)} jobs)")
        return lines, []

    return Case("client", f"end to end: {n:,} texts -> {n:,} x 1024 int8{label}", expected.nbytes, expected,
                impls, list(missing), targets=[("official SDK", 1.0), ("official SDK", 4.0, "cpu")],
                per_item=n, item="vector", report=report,
                note=f"loopback server in a child process, cache warm; {CONCURRENCY} requests in flight")


# ----------------------------------------------------------------- the family


def cases(quick: bool = False, small: bool = False) -> list[Case]:
    """The client cases.  Full: end to end with ``N_E2E`` texts, peak memory with ``N_MEM``.
    ``quick``: 5,000 and 25,000 texts (the case names say so).  ``small``: 1,024 texts for
    both, for correctness-only runs (CI); the decode cases never shrink."""
    missing: list[str] = []
    libs = {
        "pybase64": optional("pybase64", missing),
        "orjson": optional("orjson", missing),
        "msgspec": optional("msgspec", missing),
        "perplexity": optional("perplexity", missing, "perplexityai"),
    }
    try:
        url = server_url()
    except ImportError as e:  # no server extra: decode cases on built bodies, no end-to-end cases
        missing.append(f"pplx-codec[server] ({e.name})")
        url = None
    out = [_decode_case(MODEL, "base64_int8", libs, missing, url),
           _decode_case(MODEL_4B, "base64_int8", libs, missing, url),
           _decode_case(MODEL, "base64_binary", libs, missing, url)]
    if url is None:
        return out
    if small:
        n_e2e = n_mem = 1024
        label = " (small)"
    elif quick:
        n_e2e, n_mem = 5_000, 25_000
        label = " (quick)"
    else:
        n_e2e, n_mem, label = N_E2E, N_MEM, ""
    out.append(_e2e_case(n_e2e, libs, missing, url, label))
    out.append(memory_case(n_mem, libs, missing, url, label))
    return out


