"""The client family's workload: its texts, the loopback reference server,
the oracle rows, and what a user of the official SDK writes (client_cases.py
describes the cases)."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import pplx_codec as pc
from pplx_codec.constants import MODEL_DIMS

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


def server_url() -> str:
    """The loopback reference server (a child process), started once and stopped at exit."""
    if "url" not in _server:
        from pplx_codec.server import running

        stack = contextlib.ExitStack()
        _server["url"] = stack.enter_context(running(api_keys=[KEY], backend="hash", separate_process=True,
                                                     cache_bytes=CACHE_BYTES))
        _server["warm"] = {}
        atexit.register(stack.close)
    return _server["url"]


def server_pid() -> int | None:
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


def process_cpu(pid: int | None) -> float | None:
    """CPU-seconds process ``pid`` has used (all its threads), or None."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def post(http, url: str, inputs: list[str], model: str, fmt: str) -> bytes:
    r = http.post(url + "/v1/embeddings", json={"input": inputs, "model": model, "encoding_format": fmt},
                  headers={"Authorization": f"Bearer {KEY}"})
    if r.status_code != 200:
        raise RuntimeError(f"reference server answered {r.status_code}: {r.text[:500]}")
    return r.content


def warm(url: str, n: int, model: str = MODEL, fmt: str = "base64_int8") -> None:
    """Have the server compute (and cache) the rows of texts(n) once, outside any timing."""
    import httpx

    done = _server["warm"].get((model, fmt), 0)
    if done >= n:
        return
    ts = texts(n)
    with httpx.Client(timeout=300) as http, ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda s: post(http, url, ts[s:min(s + BATCH, n)], model, fmt), range(done, n, BATCH)))
    _server["warm"][(model, fmt)] = n


_oracles: dict = {}


def oracle(n: int, model: str = MODEL, fmt: str = "base64_int8") -> np.ndarray:
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


def built_body(x: np.ndarray, model: str, fmt: str) -> bytes:
    """A body exactly as the reference server writes it, for rows ``x`` (without the server extra)."""
    strs = pc.encode_int8(x) if fmt == "base64_int8" else pc.encode_binary(x)
    rows = ",".join(f'{{"object":"embedding","index":{i},"embedding":"{s}"}}' for i, s in enumerate(strs))
    usage = {"prompt_tokens": 1, "total_tokens": 1, "cost": {"input_cost": 0.0, "total_cost": 0.0, "currency": "USD"}}
    return ('{"object":"list","data":[' + rows + '],"model":' + json.dumps(model) + ',"usage":'
            + json.dumps(usage, separators=(",", ":")) + "}").encode()


# ----------------------------------------------------------------- the SDK's ways


def sdk_model(perplexity):
    """The pydantic model ``embeddings.create`` returns (its ``cast_to``)."""
    try:
        from perplexity.generated.api import EmbeddingsResponseOutput

        return EmbeddingsResponseOutput
    except ImportError:  # older releases
        from perplexity.types import EmbeddingCreateResponse

        return EmbeddingCreateResponse


def sdk_parser(perplexity, body: bytes):
    """body -> the SDK's response model, the SDK's own way: what ``embeddings.create`` does once
    httpx has read the body (``APIResponse.parse()``: ``response.json()``, then the client's
    ``_process_response_data``, i.e. ``construct_type`` into the model)."""
    import httpx

    sdk = perplexity.Perplexity(api_key=KEY, base_url="http://127.0.0.1:9")  # never connects
    cast_to = sdk_model(perplexity)
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


def sdk_job(sdk, ts: list[str], pybase64, model: str = MODEL, fmt: str = "base64_int8") -> np.ndarray:
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


