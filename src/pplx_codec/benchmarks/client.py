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
process (``python -m pplx_codec.benchmarks.client memory-job ...``); after
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

import atexit
import base64
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import pplx_codec as pc
from pplx_codec.constants import MODEL_DIMS

from ._harness import Case, Impl, current_label, optional

MODEL = "pplx-embed-v1-0.6b"
MODEL_4B = "pplx-embed-v1-4b"
CONCURRENCY = 4
CHUNK = 64 << 10
BATCH = 512
N_E2E = 20_000
N_MEM = 100_000
KEY = "pplx-codec-bench"
#: the server's row cache: every text of every case (~1.7 KB a row), so timed jobs are all hits
CACHE_BYTES = 512 << 20
MEMORY_TARGET = 1.5

# ----------------------------------------------------------------- texts

_BLOCK = 1024
_SYLLABLES = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"] + ["th", "sh", "qu", "st"]


def _vocabulary() -> list[str]:
    rng = np.random.default_rng(7)
    words: set[str] = set()
    while len(words) < 4096:
        words.add("".join(_SYLLABLES[k] for k in rng.integers(0, len(_SYLLABLES), rng.integers(1, 5))))
    return sorted(words)


_VOCAB: list[str] | None = None
_TEXTS: list[str] = []


def texts(n: int) -> list[str]:
    """The first ``n`` benchmark texts: distinct, deterministic, each independent of ``n``."""
    global _VOCAB
    if _VOCAB is None:
        _VOCAB = _vocabulary()
    vocab = np.array(_VOCAB, dtype=object)
    while len(_TEXTS) < n:
        block = len(_TEXTS) // _BLOCK
        rng = np.random.default_rng([11, block])
        lengths = rng.integers(6, 41, _BLOCK)
        words = vocab[rng.integers(0, len(vocab), (_BLOCK, 40))]
        base = block * _BLOCK
        _TEXTS.extend(f"passage {base + j}. " + " ".join(words[j, :lengths[j]]) for j in range(_BLOCK))
    return _TEXTS[:n]


# ----------------------------------------------------------------- the reference server and the oracle

_server: dict = {}


def _server_url() -> str:
    """The loopback reference server (a child process), started once and stopped at exit."""
    if "url" not in _server:
        from pplx_codec.server import running

        stack = contextlib.ExitStack()
        _server["url"] = stack.enter_context(running(api_keys=[KEY], separate_process=True,
                                                     cache_bytes=CACHE_BYTES))
        _server["warm"] = {}
        atexit.register(stack.close)
    return _server["url"]


def _server_pid() -> int | None:
    """The reference server's process (our child running ``pplx_codec.server``), if findable."""
    if "pid" not in _server:
        _server["pid"] = None
        for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read()
            except (OSError, IndexError, ValueError):
                continue
            if ppid == os.getpid() and b"pplx_codec.server" in cmd:
                _server["pid"] = int(entry)
                break
    return _server["pid"]


def _process_cpu(pid: int | None) -> float | None:
    """CPU-seconds process ``pid`` has used (all its threads), or None."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _post(http, url: str, inputs: list[str], model: str, fmt: str) -> bytes:
    r = http.post(url + "/v1/embeddings", json={"input": inputs, "model": model, "encoding_format": fmt},
                  headers={"Authorization": f"Bearer {KEY}"})
    if r.status_code != 200:
        raise RuntimeError(f"reference server answered {r.status_code}: {r.text[:500]}")
    return r.content


def _warm(url: str, n: int, model: str = MODEL, fmt: str = "base64_int8") -> None:
    """Have the server compute (and cache) the rows of texts(n) once, outside any timing."""
    import httpx

    done = _server["warm"].get((model, fmt), 0)
    if done >= n:
        return
    ts = texts(n)
    with httpx.Client(timeout=300) as http, ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda s: _post(http, url, ts[s:min(s + BATCH, n)], model, fmt), range(done, n, BATCH)))
    _server["warm"][(model, fmt)] = n


_oracles: dict = {}


def _oracle(n: int, model: str = MODEL, fmt: str = "base64_int8") -> np.ndarray:
    """The rows texts(n) must decode to: the server's hash backend, called directly."""
    from pplx_codec.server.backends import HashBackend, quantize_int8

    have = _oracles.get((model, fmt))
    if have is None or len(have) < n:
        backend = _oracles.setdefault("backend", HashBackend())
        ts = texts(n)
        start = 0 if have is None else len(have)
        parts = [] if have is None else [have]
        for s in range(start, n, BATCH):
            x = backend.embed(model, ts[s:min(s + BATCH, n)])
            parts.append(quantize_int8(x) if fmt == "base64_int8" else np.packbits(x > 0, axis=1, bitorder="little"))
        _oracles[(model, fmt)] = have = np.concatenate(parts)
    return have[:n]


def _built_body(x: np.ndarray, model: str, fmt: str) -> bytes:
    """A body exactly as the reference server writes it, for rows ``x`` (without the server extra)."""
    strs = pc.encode_int8(x) if fmt == "base64_int8" else pc.encode_binary(x)
    rows = ",".join(f'{{"object":"embedding","index":{i},"embedding":"{s}"}}' for i, s in enumerate(strs))
    usage = {"prompt_tokens": 1, "total_tokens": 1, "cost": {"input_cost": 0.0, "total_cost": 0.0, "currency": "USD"}}
    return ('{"object":"list","data":[' + rows + '],"model":' + json.dumps(model) + ',"usage":'
            + json.dumps(usage, separators=(",", ":")) + "}").encode()


# ----------------------------------------------------------------- the SDK's ways


def _sdk_model(perplexity):
    """The pydantic model ``embeddings.create`` returns (its ``cast_to``)."""
    try:
        from perplexity.generated.api import EmbeddingsResponseOutput

        return EmbeddingsResponseOutput
    except ImportError:  # older releases
        from perplexity.types import EmbeddingCreateResponse

        return EmbeddingCreateResponse


def _sdk_parser(perplexity, body: bytes):
    """body -> the SDK's response model, the SDK's own way: what ``embeddings.create`` does once
    httpx has read the body (``APIResponse.parse()``: ``response.json()``, then the client's
    ``_process_response_data``, i.e. ``construct_type`` into the model)."""
    import httpx

    sdk = perplexity.Perplexity(api_key=KEY, base_url="http://127.0.0.1:9")  # never connects
    cast_to = _sdk_model(perplexity)
    headers = {"content-type": "application/json"}
    try:
        from perplexity._models import FinalRequestOptions
        from perplexity._response import APIResponse

        options = FinalRequestOptions.construct(method="post", url="/v1/embeddings")

        def parse():
            raw = httpx.Response(200, headers=headers, content=body)
            return APIResponse(raw=raw, cast_to=cast_to, client=sdk, stream=False, stream_cls=None,
                               options=options).parse()
        parse()
        return parse
    except (ImportError, TypeError, AttributeError):  # internals moved: the step that does the work
        response = httpx.Response(200, headers=headers, content=b"{}")
        return lambda: sdk._process_response_data(data=json.loads(body), cast_to=cast_to, response=response)


def _sdk_job(sdk, ts: list[str], pybase64, model: str = MODEL, fmt: str = "base64_int8") -> np.ndarray:
    """What a user of the official SDK writes for a big job: 512-text batches on a thread pool
    of CONCURRENCY, each response's base64 strings decoded into the matrix by index."""
    n = len(ts)
    width = MODEL_DIMS[model] if fmt == "base64_int8" else MODEL_DIMS[model] // 8
    out = np.empty((n, width), np.int8 if fmt == "base64_int8" else np.uint8)
    mv = out.data.cast("B")
    b64 = pybase64.b64decode

    def batch(start: int) -> None:
        r = sdk.embeddings.create(input=ts[start:start + BATCH], model=model, encoding_format=fmt)
        for item in r.data:
            at = (start + item.index) * width
            mv[at:at + width] = b64(item.embedding, validate=True)

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(batch, range(0, n, BATCH)))
    return out


# ----------------------------------------------------------------- decode cases


def _decode_case(model: str, fmt: str, libs: dict, missing: list[str], url: str | None) -> Case:
    n = BATCH
    binary = fmt == "base64_binary"
    dim = MODEL_DIMS[model]
    width = dim // 8 if binary else dim
    dtype = np.uint8 if binary else np.int8
    if url is not None:
        import httpx

        expected = _oracle(n, model, fmt)
        with httpx.Client(timeout=300) as http:
            body = _post(http, url, texts(n), model, fmt)
        source = "recorded from the reference server"
    else:
        rng = np.random.default_rng(dim + binary)
        expected = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max + 1, (n, width), dtype=dtype)
        body = _built_body(expected, model, fmt)
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
        parse = _sdk_parser(perplexity, body)
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
    expected = _oracle(n)
    _warm(url, n)
    client = Client(api_key=KEY, base_url=url, max_concurrency=CONCURRENCY)
    pid = _server_pid()
    server_cpu: dict[str, list[float]] = {}

    def metered(name: str, fn):
        """fn, also adding up the server process's CPU time per job (one /proc read each side)."""
        def run():
            s0 = _process_cpu(pid)
            out = fn()
            s1 = _process_cpu(pid)
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
        impls.append(metered(f"official SDK, {CONCURRENCY} threads + pybase64", lambda: _sdk_job(sdk, ts, pybase64)))

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


# ----------------------------------------------------------------- peak memory, in a fresh process


def _status_kib() -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of this process, KiB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0])
    return out


def memory_job(which: str, url: str, n: int) -> dict:
    """Run in a fresh process: one client's job of texts(n), and its peak RSS increase.

    The peak is VmHWM, reset to the current RSS just before the job.  Not ru_maxrss: in a
    process just started by exec it begins at the exec-ing parent's peak (Linux carries the
    old memory map's high-water mark into it), here the benchmark process's, holding the oracle.
    """
    import gc

    ts = texts(n)
    if which == "ours":
        from pplx_codec.client import Client

        client = Client(api_key=KEY, base_url=url, max_concurrency=CONCURRENCY)

        def run():
            return client.embed(ts, model=MODEL).vectors
    else:
        import perplexity
        import pybase64

        sdk = perplexity.Perplexity(api_key=KEY, base_url=url)

        def run():
            return _sdk_job(sdk, ts, pybase64)
    gc.collect()
    try:  # reset VmHWM to the current RSS (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    before = _status_kib()
    c0, t0 = time.process_time(), time.perf_counter()
    out = run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    after = _status_kib()
    # without the reset, VmHWM may predate the job: the increase is then a lower bound
    increase = (after["VmHWM"] - (before["VmRSS"] if reset else before["VmHWM"])) * 1024
    return {"sha256": hashlib.sha256(out.tobytes()).hexdigest(), "shape": list(out.shape),
            "peak_increase": increase, "rss_before": before["VmRSS"] * 1024, "peak_reset": reset,
            "wall": wall, "cpu": cpu, "matrix_bytes": out.nbytes}


def _memory_case(n: int, libs: dict, missing: list[str], url: str, label: str) -> Case:
    expected = hashlib.sha256(_oracle(n).tobytes()).hexdigest()
    _warm(url, n)
    figures: dict[str, dict] = {}
    matrix = n * MODEL_DIMS[MODEL]

    def job(which: str, name: str):
        def run():
            env = dict(os.environ)
            src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
            r = subprocess.run([sys.executable, "-m", "pplx_codec.benchmarks.client", "memory-job", which, url,
                                str(n)], capture_output=True, text=True, timeout=900, env=env, check=False)
            if r.returncode != 0:
                raise RuntimeError(f"{name}: the memory job failed ({r.returncode}):\n{r.stderr[-3000:]}")
            fig = json.loads(r.stdout.strip().splitlines()[-1])
            figures[current_label() or name] = fig  # per row: ours runs once per tier with --isa
            return fig["sha256"]
        return run

    ours = f"Client.embed (max_concurrency={CONCURRENCY}), fresh process"
    impls = [Impl(ours, job("ours", ours), True)]
    if libs["perplexity"] and libs["pybase64"]:
        name = f"official SDK, {CONCURRENCY} threads + pybase64, fresh process"
        impls.append(Impl(name, job("sdk", name)))

    def report(case: Case, timings) -> tuple[list[str], list[str]]:
        lines = [(f"peak RSS increase during the job (output matrix {matrix / 1e6:.1f} MB; row times include "
                  "process start-up):")]
        for impl, _ in timings:
            f = figures.get(impl.label)
            if f is None:
                continue
            lines.append(f"  {impl.label}: {f['peak_increase'] / 1e6:7.1f} MB = {f['peak_increase'] / matrix:.2f}x "
                         f"the matrix; the job alone {f['wall']:.2f} s ({n / f['wall']:,.0f} vectors/s), "
                         f"cpu {f['cpu'] / n * 1e6:.2f} us/vector"
                         + ("" if f["peak_reset"] else " (peak not resettable: a lower bound)"))
        verdicts = []
        for impl, _ in timings:
            if impl.ours and impl.label in figures:
                got = figures[impl.label]["peak_increase"] / matrix
                tier = f" [{impl.isa}]" if impl.isa else ""
                verdicts.append(f"{case.name}{tier}: ours peak RSS increase = {got:.2f}x the output matrix "
                                f"(target <= {MEMORY_TARGET}x) {'met' if got <= MEMORY_TARGET else 'MISSED'}")
        return lines, verdicts

    return Case("client", f"peak memory: {n:,} texts -> {n:,} x 1024 int8{label}", matrix, expected, impls,
                list(missing), check=lambda got, want: np.testing.assert_equal(got, want),
                timed_by_check=True, report=report,
                note="each client in a fresh process; checked by the matrix's SHA-256")


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
        url = _server_url()
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
    out.append(_memory_case(n_mem, libs, missing, url, label))
    return out


def _main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "memory-job" and argv[1] in ("ours", "sdk"):
        print(json.dumps(memory_job(argv[1], argv[2], int(argv[3]))), flush=True)
        return 0
    print("usage: python -m pplx_codec.benchmarks.client memory-job {ours|sdk} BASE_URL N", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
