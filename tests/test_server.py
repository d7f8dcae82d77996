"""The reference server: spec conformance, validation, auth, usage and cost,
token counts, determinism, streaming, concurrency, the hash backend's
similarity, the CLI.  (Faults: test_server_faults.py; schemathesis:
test_server_schemathesis.py; the sentence-transformers backend:
test_server_model.py; stopping ``pplx-codec serve``: test_server_stop.py.)"""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import h11
import httpx
import numpy as np
import pytest

import pplx_codec as pc
from pplx_codec import cli
from pplx_codec.constants import MAX_INPUT_TOKENS, MAX_REQUEST_TOKENS, MODEL_DIMS, PRICE_PER_MILLION_TOKENS
from pplx_codec.server import ServerConfig, create_app, guards, running
from pplx_codec.server.backends import STATIC_MODEL_DIR, HashBackend, contextualize, encode_rows, quantize_int8
from pplx_codec.server.cache import LRU
from pplx_codec.server.runner import bind
from pplx_codec.server.token_counts import ESTIMATE_PATTERN, EstimateCounter, TokenizerCounter
from server_support import (
    AUTH,
    HTTP_VALIDATION_ERROR,
    KEY,
    SCHEMAS,
    SEED,
    SPEC_PATH,
    body_json,
    check_contextualized,
    check_embeddings,
    doc_rows,
    header,
    int8,
    raw_exchange,
    rows,
    start_serve,
    stopped,
    unit,
)

SMALL, LARGE = "pplx-embed-v1-0.6b", "pplx-embed-v1-4b"
CTX_SMALL, CTX_LARGE = "pplx-embed-context-v1-0.6b", "pplx-embed-context-v1-4b"
EMB, CTX = "/v1/embeddings", "/v1/contextualizedembeddings"
SEED_SHA256 = "c51a7254c14da5db0e8db443aaaf2d922c06c9e44fda2efc4d4acd64abaa66a1"


@pytest.fixture(scope="module")
def url():
    with running(api_keys=[KEY, "second-key"], backend="hash") as base:
        yield base


@pytest.fixture(scope="module")
def client(url):
    with httpx.Client(base_url=url, headers=AUTH, timeout=120) as c:
        yield c


def post(client, path, body):
    r = client.post(path, json=body)
    return r, (r.json() if r.headers.get("content-type", "").startswith("application/json") else None)


# --- the spec ---

def test_seed_spec_copy_is_unmodified():
    data = SPEC_PATH.read_bytes()
    assert hashlib.sha256(data).hexdigest() == SEED_SHA256
    shared = Path(__file__).resolve().parents[2] / "shared" / "spec" / SPEC_PATH.name
    if shared.exists():  # beside a checkout (CI's clone and the dev tree) the seed itself is there too
        assert shared.read_bytes() == data


def test_openapi_matches_seed_spec(url):
    own = httpx.get(url + "/openapi.json").json()  # no key needed for the schema
    assert own["openapi"] == SEED["openapi"]
    for name, schema in SCHEMAS.items():
        assert own["components"]["schemas"][name] == schema, name
    assert own["components"]["securitySchemes"] == SEED["components"]["securitySchemes"]
    assert own["paths"][EMB] == SEED["paths"][EMB]


def test_openapi_contextualized_endpoint(url):
    own = httpx.get(url + "/openapi.json").json()
    op = own["paths"][CTX]["post"]
    assert op["operationId"] == "contextualized_embeddings_v1_contextualizedembeddings_post"
    assert op["security"] == [{"HTTPBearer": []}]
    assert set(op["responses"]) == {"200", "422"}
    schemas = own["components"]["schemas"]
    request = schemas["ContextualizedEmbeddingsRequest"]
    assert request["required"] == ["input", "model"]
    assert request["properties"]["input"]["items"] == {
        "type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}
    assert (request["properties"]["input"]["minItems"], request["properties"]["input"]["maxItems"]) == (1, 512)
    assert request["properties"]["model"]["enum"] == [CTX_SMALL, CTX_LARGE]
    for key in ("dimensions", "encoding_format"):
        assert {k: v for k, v in request["properties"][key].items() if k != "description"} == \
            {k: v for k, v in SCHEMAS["EmbeddingsRequest"]["properties"][key].items() if k != "description"}
    response = schemas["ContextualizedEmbeddingsResponse"]["properties"]
    assert response["usage"] == {"$ref": "#/components/schemas/EmbeddingsUsage"}
    assert response["data"]["items"] == {"$ref": "#/components/schemas/ContextualizedEmbeddingObject"}
    assert schemas["ContextualizedEmbeddingObject"]["properties"]["data"]["items"] == \
        {"$ref": "#/components/schemas/EmbeddingObject"}


def test_openapi_without_auth_declares_none():
    with running(auth=False) as base:
        own = httpx.get(base + "/openapi.json").json()
    assert "securitySchemes" not in own["components"]
    assert "security" not in own["paths"][EMB]["post"]


# --- both endpoints, both formats, every model ---

@pytest.mark.parametrize("fmt", ["base64_int8", "base64_binary"])
@pytest.mark.parametrize("model", [SMALL, LARGE])
def test_embeddings(client, model, fmt):
    texts = ["hello world", "the second text", "third"]
    r, body = post(client, EMB, {"input": texts, "model": model, "encoding_format": fmt})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.headers["x-token-count"] == "estimate"
    check_embeddings(body, len(texts), model)
    dim = MODEL_DIMS[model]
    if fmt == "base64_int8":
        assert pc.decode_int8(rows(body), dim).shape == (3, dim)
    else:
        assert pc.decode_binary(rows(body), dim).shape == (3, dim // 8)


def test_default_format_is_int8_and_one_string_is_one_input(client):
    _, one = post(client, EMB, {"input": "just one", "model": SMALL})
    _, listed = post(client, EMB, {"input": ["just one"], "model": SMALL, "encoding_format": "base64_int8"})
    check_embeddings(one, 1, SMALL)
    assert one == listed
    assert pc.decode_int8(rows(one)).shape == (1, 1024)


@pytest.mark.parametrize("fmt", ["base64_int8", "base64_binary"])
@pytest.mark.parametrize("model", [CTX_SMALL, CTX_LARGE])
def test_contextualized(client, model, fmt):
    docs = [["chunk one of doc zero", "chunk two of doc zero", "three"], ["a query"], ["x", "y"]]
    r, body = post(client, CTX, {"input": docs, "model": model, "encoding_format": fmt})
    assert r.status_code == 200
    check_contextualized(body, [3, 1, 2], model)
    dim = MODEL_DIMS[model]
    for doc, strings in zip(docs, doc_rows(body), strict=True):
        if fmt == "base64_int8":
            assert pc.decode_int8(strings, dim).shape == (len(doc), dim)
        else:
            assert pc.decode_binary(strings, dim).shape == (len(doc), dim // 8)


# --- validation: one case per spec rule; FastAPI's 422 shape, exactly ---

def _ok(model=SMALL, **kw):
    return {"input": ["hello"], "model": model, **kw}


def _without(key):
    body = _ok()
    del body[key]
    return body


INVALID = [
    # (id, path, body, loc, type)
    ("missing-input", EMB, _without("input"), ["body", "input"], "missing"),
    ("missing-model", EMB, _without("model"), ["body", "model"], "missing"),
    ("empty-string", EMB, _ok(input=""), ["body", "input"], "string_too_short"),
    ("empty-string-item", EMB, _ok(input=["a", ""]), ["body", "input", 1], "string_too_short"),
    ("empty-list", EMB, _ok(input=[]), ["body", "input"], "too_short"),
    ("513-inputs", EMB, _ok(input=["t"] * 513), ["body", "input"], "too_long"),
    ("input-number", EMB, _ok(input=5), ["body", "input"], "string_or_array_type"),
    ("input-null", EMB, _ok(input=None), ["body", "input"], "string_or_array_type"),
    ("input-item-number", EMB, _ok(input=["a", 7]), ["body", "input", 1], "string_type"),
    ("unknown-model", EMB, _ok(model="pplx-embed-v2"), ["body", "model"], "literal_error"),
    ("context-model-on-embeddings", EMB, _ok(model=CTX_SMALL), ["body", "model"], "literal_error"),
    ("model-not-string", EMB, _ok(model=3), ["body", "model"], "literal_error"),
    ("format-float", EMB, _ok(encoding_format="float"), ["body", "encoding_format"], "literal_error"),
    ("format-null", EMB, _ok(encoding_format=None), ["body", "encoding_format"], "literal_error"),
    ("dimensions-string", EMB, _ok(dimensions="256"), ["body", "dimensions"], "int_type"),
    ("dimensions-fraction", EMB, _ok(dimensions=256.5), ["body", "dimensions"], "int_type"),
    ("dimensions-bool", EMB, _ok(dimensions=True), ["body", "dimensions"], "int_type"),
    ("dimensions-null", EMB, _ok(dimensions=None), ["body", "dimensions"], "int_type"),
    ("body-not-object", EMB, ["hello"], ["body"], "model_attributes_type"),
    ("ctx-missing-input", CTX, {"model": CTX_SMALL}, ["body", "input"], "missing"),
    ("ctx-flat-list", CTX, {"input": ["a"], "model": CTX_SMALL}, ["body", "input", 0], "list_type"),
    ("ctx-string", CTX, {"input": "a", "model": CTX_SMALL}, ["body", "input"], "list_type"),
    ("ctx-no-documents", CTX, {"input": [], "model": CTX_SMALL}, ["body", "input"], "too_short"),
    ("ctx-empty-document", CTX, {"input": [["a"], []], "model": CTX_SMALL}, ["body", "input", 1], "too_short"),
    ("ctx-empty-chunk", CTX, {"input": [["a", ""]], "model": CTX_SMALL}, ["body", "input", 0, 1],
     "string_too_short"),
    ("ctx-513-documents", CTX, {"input": [["d"]] * 513, "model": CTX_SMALL}, ["body", "input"], "too_long"),
    ("ctx-standard-model", CTX, {"input": [["a"]], "model": SMALL}, ["body", "model"], "literal_error"),
    ("ctx-format", CTX, {"input": [["a"]], "model": CTX_SMALL, "encoding_format": "float"},
     ["body", "encoding_format"], "literal_error"),
]


@pytest.mark.parametrize("path,body,loc,kind", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_request(client, path, body, loc, kind):
    r, got = post(client, path, body)
    assert r.status_code == 422
    assert set(got) == {"detail"}
    assert [(d["loc"], d["type"]) for d in got["detail"]] == [(loc, kind)]
    assert all(set(d) == {"loc", "msg", "type"} and d["msg"] for d in got["detail"])
    HTTP_VALIDATION_ERROR.validate(got)


def test_all_errors_reported_at_once(client):
    r, got = post(client, EMB, {"input": "", "model": "x", "encoding_format": "float"})
    assert r.status_code == 422
    assert [d["loc"] for d in got["detail"]] == [["body", "input"], ["body", "model"], ["body", "encoding_format"]]


@pytest.mark.parametrize("content", [b"{not json", b"&\xff\xfe", b"[" * 50_000, b""])
def test_unparseable_body_is_422(client, content):
    r = client.post(EMB, content=content, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] in ("json_invalid", "missing")
    HTTP_VALIDATION_ERROR.validate(r.json())


def test_any_json_string_is_text_but_lone_surrogates(client):
    # NUL, control characters and escaped surrogate pairs are text; a lone surrogate
    # is not (RFC 8259 8.2 leaves it to the receiver: pydantic, like the service's, says 422)
    raw = b'{"input": ["nul \\u0000 and \\u001f", "\\udbff\\udfff"], "model": "pplx-embed-v1-0.6b"}'
    r = client.post(EMB, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 200
    check_embeddings(r.json(), 2, SMALL)
    assert r.json()["usage"]["prompt_tokens"] == 4 + 1  # "nul", " \0", " and", " \x1f" (a whitespace run); U+10FFFF
    raw = b'{"input": ["fine", "\\ud800 lone"], "model": "pplx-embed-v1-0.6b"}'
    r = client.post(EMB, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert [(d["loc"], d["type"]) for d in r.json()["detail"]] == [(["body", "input", 1], "string_unicode")]


def test_unknown_fields_are_ignored(client):
    r, body = post(client, EMB, _ok(user="someone", extra={"x": 1}))
    assert r.status_code == 200
    check_embeddings(body, 1, SMALL)


def test_integral_float_dimensions_are_integers(client):
    _, a = post(client, EMB, _ok(dimensions=256.0))
    _, b = post(client, EMB, _ok(dimensions=256))
    assert a == b and len(pc.b64decode(rows(a)[0])) == 256


@pytest.mark.parametrize("path,model,dims,ok", [
    (path, model, dims, 128 <= dims <= MODEL_DIMS[model])
    for path, models in ((EMB, (SMALL, LARGE)), (CTX, (CTX_SMALL, CTX_LARGE)))
    for model in models
    for dims in (127, 128, 129, 1023, 1024, 1025, 2559, 2560, 2561)])
def test_dimensions_boundaries(client, path, model, dims, ok):
    body = {"input": ["boundary"] if path == EMB else [["boundary"]], "model": model, "dimensions": dims}
    r, got = post(client, path, body)
    if not ok:
        assert r.status_code == 422
        assert [(d["loc"], d["type"]) for d in got["detail"]] == \
            [(["body", "dimensions"], "greater_than_equal" if dims < 128 else "less_than_equal")]
        if 128 <= dims <= 2560:
            assert str(MODEL_DIMS[model]) in got["detail"][0]["msg"] and model in got["detail"][0]["msg"]
        return
    assert r.status_code == 200
    strings = rows(got) if path == EMB else doc_rows(got)[0]
    assert len(pc.b64decode(strings[0])) == dims
    body["encoding_format"] = "base64_binary"
    _, got = post(client, path, body)
    strings = rows(got) if path == EMB else doc_rows(got)[0]
    assert len(pc.b64decode(strings[0])) == -(-dims // 8)


def test_binary_dimensions_not_a_multiple_of_8_pad_with_zero_bits(client):
    _, full = post(client, EMB, _ok(dimensions=136, encoding_format="base64_binary"))
    _, cut = post(client, EMB, _ok(dimensions=130, encoding_format="base64_binary"))
    a, b = pc.b64decode(rows(full)[0]), pc.b64decode(rows(cut)[0])
    assert len(b) == 17
    assert np.array_equal(b[:16], a[:16]) and b[16] == a[16] & 0b11


def test_512_inputs_and_512_documents_are_accepted(client):
    r, body = post(client, EMB, {"input": [f"text {i}" for i in range(512)], "model": SMALL, "dimensions": 128})
    assert r.status_code == 200
    check_embeddings(body, 512, SMALL)
    r, body = post(client, CTX, {"input": [[f"doc {i}"] for i in range(512)], "model": CTX_SMALL, "dimensions": 128})
    assert r.status_code == 200
    check_contextualized(body, [1] * 512, CTX_SMALL)


# --- token limits: the estimate counts each digit as one token, so runs of
# digits hit the limits exactly ---

def digits(n: int) -> str:
    return "7" * n


def test_per_input_token_limit(client):
    r, body = post(client, EMB, _ok(input=[digits(MAX_INPUT_TOKENS)], dimensions=128))
    assert r.status_code == 200 and body["usage"]["prompt_tokens"] == MAX_INPUT_TOKENS
    r, body = post(client, EMB, _ok(input=["ok", digits(MAX_INPUT_TOKENS + 1)]))
    assert r.status_code == 422
    (detail,) = body["detail"]
    assert (detail["loc"], detail["type"]) == (["body", "input", 1], "too_many_tokens")
    assert "32769" in detail["msg"] and "32768" in detail["msg"] and "estimated" in detail["msg"]


def test_per_request_token_limit(client):
    share = MAX_REQUEST_TOKENS // 4
    r, body = post(client, EMB, _ok(input=[digits(share)] * 4, dimensions=128))
    assert r.status_code == 200 and body["usage"]["prompt_tokens"] == MAX_REQUEST_TOKENS
    r, body = post(client, EMB, _ok(input=[digits(share)] * 4 + ["1"]))
    assert r.status_code == 422
    assert [(d["loc"], d["type"]) for d in body["detail"]] == [(["body", "input"], "too_many_tokens_in_the_request")]


def test_contextualized_limits(client):
    def ctx(docs):
        return post(client, CTX, {"input": docs, "model": CTX_SMALL, "dimensions": 128,
                                  "encoding_format": "base64_binary"})

    half = digits(MAX_INPUT_TOKENS // 2)
    r, body = ctx([[half, half]])  # a document of exactly 32768 tokens
    assert r.status_code == 200 and body["usage"]["total_tokens"] == MAX_INPUT_TOKENS
    r, body = ctx([["fine"], [half, half, "7"]])
    assert r.status_code == 422
    assert [(d["loc"], d["type"]) for d in body["detail"]] == \
        [(["body", "input", 1], "too_many_tokens_in_the_document")]

    share = digits(MAX_REQUEST_TOKENS // 4)
    r, body = ctx([[share], [share], [share], [share]])
    assert r.status_code == 200 and body["usage"]["total_tokens"] == MAX_REQUEST_TOKENS
    r, body = ctx([[share], [share], [share], [share, "1"]])
    assert r.status_code == 422
    assert [(d["loc"], d["type"]) for d in body["detail"]] == [(["body", "input"], "too_many_tokens_in_the_request")]

    r, body = ctx([["c"] * 32] * 500)  # 16,000 chunks
    assert r.status_code == 200
    check_contextualized(body, [32] * 500, CTX_SMALL)
    r, body = ctx([["c"] * 32] * 500 + [["one too many"]])
    assert r.status_code == 422
    assert [(d["loc"], d["type"]) for d in body["detail"]] == [(["body", "input"], "too_many_chunks")]


# --- usage and cost ---

@pytest.mark.parametrize("model", list(PRICE_PER_MILLION_TOKENS))
def test_usage_and_cost(client, model):
    # "hello world" is 2 tokens ("hello", " world"), "12345" is 5, "Hi!" is 2
    texts = ["hello world", "12345", "Hi!"]
    if model.startswith("pplx-embed-context"):
        r, body = post(client, CTX, {"input": [texts[:2], texts[2:]], "model": model})
    else:
        r, body = post(client, EMB, {"input": texts, "model": model})
    assert r.status_code == 200
    expected = float(Decimal(9) * PRICE_PER_MILLION_TOKENS[model] / 1_000_000)
    assert body["usage"] == {"prompt_tokens": 9, "total_tokens": 9,
                             "cost": {"input_cost": expected, "total_cost": expected, "currency": "USD"}}


def test_cost_of_a_full_request_is_exact(client):
    _, body = post(client, EMB, _ok(model=LARGE, input=[digits(MAX_REQUEST_TOKENS // 4)] * 4, dimensions=128))
    assert body["usage"]["cost"]["input_cost"] == 0.0036  # 120,000 tokens at $0.03 per million
    text = json.dumps(body["usage"])
    assert '"input_cost": 0.0036' in text


def test_price_table():
    assert PRICE_PER_MILLION_TOKENS == {SMALL: Decimal("0.004"), LARGE: Decimal("0.03"),
                                        CTX_SMALL: Decimal("0.008"), CTX_LARGE: Decimal("0.05")}


# --- token counting ---

@pytest.mark.parametrize("text,count", [
    ("hello world", 2),
    ("The quick brown fox.", 5),
    ("2024-11-25", 10),                 # every digit, every dash
    ("internationalization", 3),        # 8 ASCII letters per token
    ("日本語", 3),                       # one per non-ASCII letter
    ("a  b", 3),                         # "a", " ", " b"
    ("\n\n\n", 1),
    (" " * 40, 3),                       # whitespace: 16 per token
    ("__init__", 3),                     # "__", "init", "__"
    ("\ud800", 1),                       # a lone surrogate (valid JSON) is a character
])
def test_token_estimate(text, count):
    assert EstimateCounter().count([text]) == [count]


def test_token_estimate_covers_every_character():
    text = "Ünïcödé — naïve café, 3.14 ≥ π; tabs\there\r\n" + "".join(map(chr, range(0x20, 0x250)))
    assert "".join(ESTIMATE_PATTERN.findall(text)) == text


def test_tokenizer_json_gives_exact_counts(tmp_path):
    from tokenizers import Tokenizer
    path = STATIC_MODEL_DIR / "tokenizer.json"  # all-MiniLM-L6-v2's, shipped in the package
    texts = ["hello world", "Tokenization of unusual words: antidisestablishmentarianism.", "word " * 600]
    plain = Tokenizer.from_file(str(path))
    plain.no_padding()
    plain.no_truncation()
    exact = [len(plain.encode(t, add_special_tokens=False).ids) for t in texts]
    counter = TokenizerCounter(path)
    # the file truncates to 512 tokens (and may pad); counts must not
    assert json.loads(path.read_text(encoding="utf-8"))["truncation"]["max_length"] < 600
    assert counter.count(texts) == exact
    assert exact[0] == 2 and exact[2] == 600 and exact[1] > 8
    assert counter.count(["\ud800 x"]) == counter.count(["\ufffd x"])
    with running(api_keys=[KEY], tokenizer=str(path)) as base:
        r = httpx.post(base + EMB, json={"input": texts, "model": SMALL}, headers=AUTH)
    assert r.headers["x-token-count"] == "tokenizer"
    assert r.json()["usage"]["prompt_tokens"] == sum(exact)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="cannot load tokenizer"):
        TokenizerCounter(tmp_path / "bad.json")


# --- quantization, prefix, determinism ---

def test_quantize_int8_is_the_service_formula():
    x = np.array([[-50, -3, -1, -0.004, 0, 0.0039, 0.004, 0.5, 2, 50]], dtype=np.float32)
    assert quantize_int8(x).tolist() == [[-127, -126, -97, -1, 0, 0, 1, 59, 122, 127]]
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1.5, (64, 2560)).astype(np.float32)
    assert np.array_equal(quantize_int8(x), np.clip(np.round(np.tanh(x) * 127), -128, 127).astype(np.int8))
    assert encode_rows(x, 300, "base64_int8") == pc.encode_int8(quantize_int8(x)[:, :300].copy())
    bits = np.packbits(x[:, :300] > 0, axis=1, bitorder="little")
    assert encode_rows(x, 300, "base64_binary") == pc.encode_binary(bits)


@pytest.mark.parametrize("path,model", [(EMB, LARGE), (CTX, CTX_SMALL)])
def test_dimensions_is_a_prefix_and_binary_is_the_sign(client, path, model):
    texts = ["alpha beta gamma", "delta epsilon", "zeta eta theta iota"]
    inp = texts if path == EMB else [texts]

    def get(**kw):
        _, body = post(client, path, {"input": inp, "model": model, **kw})
        strings = rows(body) if path == EMB else doc_rows(body)[0]
        return strings

    full = pc.decode_int8(get(), MODEL_DIMS[model])
    for dims in (128, 256, 1000):
        assert np.array_equal(pc.decode_int8(get(dimensions=dims), dims), full[:, :dims])
        bits = pc.unpack_bits(pc.decode_binary(get(dimensions=dims - dims % 8, encoding_format="base64_binary"),
                                               dims - dims % 8))
        prefix = full[:, :dims - dims % 8]
        assert np.all(bits[prefix > 0] == 1) and np.all(bits[prefix < 0] == 0)


def test_int8_values_spread_like_an_embedding(client):
    _, body = post(client, EMB, {"input": ["a fairly ordinary sentence about nothing much"], "model": LARGE})
    v = int8(body, 2560)[0].astype(np.float64)
    assert 40 < v.std() < 70 and abs(v.mean()) < 5 and 0.45 < (v > 0).mean() < 0.55


def test_deterministic_across_requests_and_processes(client):
    texts = [f"determinism check {i} with words" for i in range(40)]
    req = {"input": texts, "model": LARGE, "dimensions": 1000}
    first = client.post(EMB, json=req).content
    assert client.post(EMB, json=req).content == first
    # another process (another hash seed for str, another numpy state), and two workers
    with running(api_keys=[KEY], backend="hash", separate_process=True) as other:
        assert httpx.post(other + EMB, json=req, headers=AUTH, timeout=60).content == first
    with running(api_keys=[KEY], backend="hash", workers=2) as pool:
        with httpx.Client(base_url=pool, headers=AUTH, timeout=60) as c:
            assert all(c.post(EMB, json=req).content == first for _ in range(4))


def test_caches_are_transparent(client):
    texts = [f"cache check {i}" for i in range(100)]
    requests = [{"input": texts, "model": SMALL}, {"input": texts[::-1], "model": SMALL, "dimensions": 256},
                {"input": texts[:10], "model": SMALL, "encoding_format": "base64_binary"}]
    with running(api_keys=[KEY], backend="hash", cache_bytes=0) as uncached:
        with httpx.Client(base_url=uncached, headers=AUTH) as c:
            want = [c.post(EMB, json=r).content for r in requests]
    for _ in range(2):  # the first round fills the caches, the second reads them
        assert [client.post(EMB, json=r).content for r in requests] == want


def test_lru_keeps_the_most_recent_within_its_budget():
    cache = LRU(100)
    cache.put_many([("a", 1, 40), ("b", 2, 40)])
    assert cache.get_many(["a", "x"]) == [1, None]  # "a" is now the most recent
    cache.put_many([("c", 3, 40)])
    assert cache.get_many(["a", "b", "c"]) == [1, None, 3] and cache.bytes == 80
    cache.put_many([("huge", 4, 101), ("a", 5, 10)])
    assert cache.get_many(["huge", "a"]) == [None, 5] and cache.bytes == 50 and len(cache) == 2
    off = LRU(0)
    off.put_many([("a", 1, 1)])
    assert off.get_many(["a"]) == [None] and len(off) == 0


def test_listening_socket_is_tcp():
    # proto 0 would keep asyncio from setting TCP_NODELAY: every keep-alive response
    # would then wait ~40 ms for a delayed ACK
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_models_do_not_share_a_space(client):
    _, a = post(client, EMB, {"input": ["same text"], "model": SMALL})
    _, b = post(client, CTX, {"input": [["same text"]], "model": CTX_SMALL})
    cos = (unit(int8(a, 1024)) @ unit(pc.decode_int8(doc_rows(b)[0], 1024)).T)[0, 0]
    assert abs(cos) < 0.2


# --- auth ---

@pytest.mark.parametrize("headers,message", [
    ({}, "Missing bearer token"),
    ({"Authorization": "Bearer wrong-key"}, "Invalid API key"),
    ({"Authorization": f"Bearer {KEY}x"}, "Invalid API key"),
    ({"Authorization": f"Basic {KEY}"}, "Missing bearer token"),
    ({"Authorization": KEY}, "Missing bearer token"),
    ({"Authorization": "Bearer"}, "Invalid API key"),
])
def test_auth_rejects(url, headers, message):
    for path in (EMB, CTX):
        r = httpx.post(url + path, json=_ok(), headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json() == {"error": {"message": r.json()["error"]["message"], "type": "authentication_error",
                                      "code": 401}}
        assert r.json()["error"]["message"].startswith(message)


@pytest.mark.parametrize("value", [f"Bearer {KEY}", f"bearer {KEY}", f"BEARER  {KEY}", "Bearer second-key"])
def test_auth_accepts(url, value):
    assert httpx.post(url + EMB, json=_ok(), headers={"Authorization": value}).status_code == 200


def test_auth_comes_before_parsing(url):
    r = httpx.post(url + EMB, content=b"{broken", headers={"content-type": "application/json"})
    assert r.status_code == 401


def test_auth_compares_every_key_in_constant_time(url, monkeypatch):
    calls = []
    real = guards.hmac.compare_digest
    monkeypatch.setattr(guards.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    assert httpx.post(url + EMB, json=_ok(), headers=AUTH).status_code == 200
    assert len(calls) == 2  # both keys, though the first matched


def test_keys_from_the_environment(monkeypatch):
    monkeypatch.setenv("PPLX_CODEC_SERVER_KEYS", " env-key-1 , env-key-2,")
    with running(api_keys=[KEY]) as base:
        for key in (KEY, "env-key-1", "env-key-2"):
            assert httpx.post(base + EMB, json=_ok(), headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert httpx.post(base + EMB, json=_ok(), headers={"Authorization": "Bearer"}).status_code == 401


def test_auth_needs_a_key_or_no_auth(monkeypatch):
    monkeypatch.delenv("PPLX_CODEC_SERVER_KEYS", raising=False)
    with pytest.raises(ValueError, match="no API keys"):
        create_app()
    with pytest.raises(ValueError, match="non-empty"):
        ServerConfig(api_keys=[" padded "])
    with running(auth=False) as base:
        assert httpx.post(base + EMB, json=_ok()).status_code == 200


# --- body size limit ---

def _chunked(n):  # no Content-Length: the limit applies while reading
    yield b'{"model": "pplx-embed-v1-0.6b", "input": ["'
    for _ in range(n):
        yield b"y" * 1000
    yield b'"]}'


def _error(r, status: int, kind: str) -> str:
    """The one JSON error shape every status but 422 has; returns its message."""
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "code"}
    assert (body["error"]["type"], body["error"]["code"]) == (kind, status) and body["error"]["message"]
    return body["error"]["message"]


@pytest.fixture(scope="module")
def small_limit():
    with running(api_keys=[KEY], max_body_bytes=4096) as base:
        yield base


def test_body_size_limit(small_limit):
    json_header = {"content-type": "application/json"}
    with httpx.Client(base_url=small_limit, headers=AUTH) as c:
        assert c.post(EMB, json=_ok(input=["x" * 3000])).status_code == 200
        assert c.post(EMB, content=_chunked(3), headers=json_header).status_code == 200
        # over the limit, with Content-Length and chunked: the same JSON 413
        assert "4096" in _error(c.post(EMB, json=_ok(input=["x" * 5000])), 413, "request_too_large")
        assert "4096" in _error(c.post(EMB, content=_chunked(5), headers=json_header), 413, "request_too_large")


@pytest.mark.parametrize("headers,message", [({}, "Missing bearer token"),
                                             ({"Authorization": "Bearer wrong"}, "Invalid API key")])
def test_auth_comes_before_the_body_size_limit(small_limit, headers, message):
    for kw in ({"json": _ok(input=["x" * 5000])},
               {"content": _chunked(5), "headers": {"content-type": "application/json"}}):
        kw["headers"] = {**kw.get("headers", {}), **headers}
        r = httpx.post(small_limit + EMB, **kw)
        assert _error(r, 401, "authentication_error").startswith(message)


@pytest.mark.parametrize("headers,status", [({}, 401), (AUTH, 413)])
def test_oversized_body_is_refused_unread(small_limit, headers, status):
    # the headers announce 1 GB and not one byte of it is sent: the answer must come
    # from the headers alone (a server that read first would wait, and the socket time out)
    parts = urlsplit(small_limit)
    conn = h11.Connection(h11.CLIENT)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall(conn.send(h11.Request(method="POST", target=EMB, headers=[
            ("host", parts.netloc), ("content-type", "application/json"), ("content-length", str(10**9)),
            *headers.items()])))
        response, body = None, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
    assert response.status_code == status
    assert header(response, b"content-type") == b"application/json"
    assert json.loads(body)["error"]["code"] == status


def test_internal_errors_are_json(monkeypatch):
    from starlette.testclient import TestClient

    app = create_app(api_keys=[KEY])

    def broken(texts):
        raise RuntimeError("the token counter broke")

    monkeypatch.setattr(app.state.counter, "count", broken)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post(EMB, json=_ok(), headers=AUTH)
    assert _error(r, 500, "internal_server_error") == "Internal Server Error"


def test_other_errors_are_json(client):
    r = client.get(EMB)
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["error"]["code"] == 405
    r = client.post("/v1/nope", json={})
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"


# --- streaming ---

def test_large_response_is_streamed_in_chunks(url):
    texts = [f"row {i}: " + " ".join(f"w{(i * 7 + j) % 997}" for j in range(30)) for i in range(512)]
    request = json.dumps({"input": texts, "model": LARGE}).encode()
    response, chunks, data, clean = raw_exchange(url, EMB, request, AUTH)
    assert response.status_code == 200 and clean
    assert header(response, b"transfer-encoding") == b"chunked"
    assert header(response, b"content-length") is None
    # 512 x 2560 int8 is 1.8 MB of JSON: it leaves in many pieces of at most ~256 KiB
    assert len(data) > 1_700_000
    assert len(chunks) >= 7 and max(chunks) <= 300_000
    body = body_json(data)
    check_embeddings(body, 512, LARGE)
    assert int8(body, 2560).shape == (512, 2560)


# --- concurrency ---

def test_fifty_concurrent_clients(client, url):
    def job(i):
        if i % 5 == 4:
            req = (CTX, {"input": [[f"doc {i} chunk {j}" for j in range(3)], ["q"]], "model": CTX_LARGE})
        else:
            req = (EMB, {"input": [f"client {i} text {j}" for j in range(1 + i % 40)], "model": (SMALL, LARGE)[i % 2],
                         "encoding_format": ("base64_int8", "base64_binary")[i % 3 > 0]})
        with httpx.Client(base_url=url, headers=AUTH, timeout=120) as c:
            return req, [c.post(*req[:1], json=req[1]) for _ in range(2)]

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(job, range(50)))
    for (path, body), responses in results:
        assert [r.status_code for r in responses] == [200, 200]
        assert responses[0].content == responses[1].content == client.post(path, json=body).content


# --- the hash backend's similarity ---

TOPICS = [
    "The cat sat on the warm mat near the kitchen door",
    "Stock markets fell sharply after the central bank raised interest rates",
    "The new vaccine showed strong protection against severe illness in trials",
    "Heavy rain caused flooding across the northern valley overnight",
    "The football team won the championship after a dramatic penalty shootout",
    "Researchers trained a neural network to translate ancient languages",
    "A recipe for bread needs flour, water, salt and patient kneading",
    "The spacecraft entered orbit around Mars after a seven month journey",
]
VARIANTS = [
    ["A cat was sitting on the warm mat by the kitchen door", "near the kitchen door the cat sat on a warm mat",
     "The CAT sat on the mat near the door of the kitchen"],
    ["Stock markets dropped sharply when the central bank raised rates", "After the central bank raised interest "
     "rates, markets fell"],
    ["In trials the new vaccine gave strong protection against severe illness", "strong protection against severe "
     "illness from a new vaccine"],
    ["Flooding across the northern valley after heavy rain overnight", "heavy overnight rain flooded the valley"],
    ["After a dramatic penalty shootout the football team won the championship", "the team won the football "
     "championship on penalties"],
    ["A neural network was trained by researchers to translate ancient languages", "translating ancient languages "
     "with a trained neural network"],
    ["Bread recipe: flour, water and salt, plus patient kneading", "you need flour water salt and kneading for bread"],
    ["After a seven month journey the spacecraft entered Mars orbit", "the spacecraft reached orbit around Mars"],
]


@pytest.mark.parametrize("fmt", ["base64_int8", "base64_binary"])
def test_hash_backend_similarity_is_meaningful(client, fmt):
    variants = [v for group in VARIANTS for v in group]
    owner = [t for t, group in enumerate(VARIANTS) for _ in group]
    _, b = post(client, EMB, {"input": TOPICS, "model": LARGE, "encoding_format": fmt})
    _, v = post(client, EMB, {"input": variants, "model": LARGE, "encoding_format": fmt})
    if fmt == "base64_int8":
        sim = unit(int8(v, 2560)) @ unit(int8(b, 2560)).T
    else:  # fewer differing bits = closer
        sim = -pc.hamming_matrix(pc.decode_binary(rows(v), 2560), pc.decode_binary(rows(b), 2560)).astype(float)
    assert list(sim.argmax(axis=1)) == owner
    if fmt == "base64_int8":
        own = sim[np.arange(len(owner)), owner]
        others = np.where(np.eye(len(TOPICS), dtype=bool)[owner], -np.inf, sim).max(axis=1)
        assert own.min() > others.max()


def test_large_documents_stream_in_batches_with_the_same_vectors(client, url):
    # 2560-dim int8 rows go ~75 to a batch: a 400-chunk document takes the
    # two-pass path, the 3-chunk ones the whole-document path
    docs = [[f"long document chunk {i} about {i % 13}" for i in range(400)], ["short", "doc"], ["q"]]
    _, body = post(client, CTX, {"input": docs, "model": CTX_LARGE})
    check_contextualized(body, [400, 2, 1], CTX_LARGE)
    b = HashBackend()
    want = [encode_rows(contextualize(b.embed(CTX_LARGE, d), [len(d)]), 2560, "base64_int8") for d in docs]
    assert doc_rows(body) == want
    # the same document through the whole-document path (128 dims: ~1170 rows a batch) is a prefix
    _, short = post(client, CTX, {"input": docs, "model": CTX_LARGE, "dimensions": 128})
    for full, cut in zip(doc_rows(body), doc_rows(short), strict=True):
        assert np.array_equal(pc.decode_int8(cut, 128), pc.decode_int8(full, 2560)[:, :128])
    # and a large document leaves in pieces like any other response
    request = json.dumps({"input": [[f"c{i}" for i in range(1000)]], "model": CTX_LARGE}).encode()
    response, chunks, data, clean = raw_exchange(url, CTX, request, AUTH)
    assert clean and len(chunks) > 10 and max(chunks) <= 300_000
    check_contextualized(body_json(data), [1000], CTX_LARGE)


def test_contextualized_chunks_carry_their_document(client):
    doc = ["Mars has two small moons", "Phobos orbits very close to the planet", "Deimos is even smaller"]
    _, alone = post(client, CTX, {"input": [[c] for c in doc], "model": CTX_LARGE})
    _, together = post(client, CTX, {"input": [doc], "model": CTX_LARGE})
    a = unit(np.vstack([pc.decode_int8(r, 2560) for r in doc_rows(alone)]))
    t = unit(pc.decode_int8(doc_rows(together)[0], 2560))
    # in context, the chunks move toward each other, and each stays closest to itself alone
    assert (t @ t.T)[np.triu_indices(3, 1)].min() > (a @ a.T)[np.triu_indices(3, 1)].max()
    assert list((t @ a.T).argmax(axis=1)) == [0, 1, 2]
    # a one-chunk document (a query, [[query]]) keeps its own direction
    x = HashBackend().embed(CTX_LARGE, doc)
    assert np.allclose(contextualize(x[:1], [1]), x[:1], atol=1e-6)
    assert np.allclose(np.linalg.norm(contextualize(x, [3]), axis=1), np.linalg.norm(x, axis=1), rtol=1e-5)


def test_hash_backend_edge_texts():
    b = HashBackend()
    x = b.embed(SMALL, ["!!!", " ", "\ud800", "ÉCOLE école", "x" * 100_000])
    assert np.all(np.isfinite(x)) and np.all(np.linalg.norm(x, axis=1) > 0)
    assert np.allclose(x[3], b.embed(SMALL, ["école école"])[0])  # case-insensitive


# --- the CLI ---

def _post_when_serving(base, body):
    # the socket listens from before the banner: a connection waits in its backlog
    # until uvicorn (or a worker) serves it, and a 200 proves that it serves
    return httpx.post(base + EMB, json=body, headers=AUTH, timeout=120)


def test_cli_serve_runs_and_stops():
    # (stopping it at every point of startup, and with workers: test_server_stop.py)
    proc, base, line = start_serve("--backend", "hash", "--fault", "shuffle=1", "--fault-seed", "3")
    try:
        assert "backend hash" in line and "faults shuffle=1" in line
        r = _post_when_serving(base, _ok(input=list("abcdef")))
        assert r.status_code == 200 and r.headers["x-fault-injected"] == "shuffle"
        check_embeddings(r.json(), 6, SMALL)
    finally:
        done = stopped(proc, signal.SIGINT)  # Ctrl-C: a requested, clean stop
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("argv,message", [
    (["serve"], "no API keys"),
    (["serve", "--api-key", "k", "--backend", "sentence-transformers"], "needs model_path"),
    (["serve", "--api-key", "k", "--fault", "teapot=0.5"], "unknown fault mode 'teapot'"),
    (["serve", "--api-key", "k", "--fault", "429=0.7", "--fault", "500=0.7"], "add up to 1.4"),
    (["serve", "--api-key", "k", "--fault", "429"], "MODE=RATE"),
    (["serve", "--api-key", "k", "--workers", "0"], "--workers must be >= 1"),
    (["serve", "--api-key", "k", "--host", "256.1.1.1"], "pplx-codec serve:"),
])
def test_cli_serve_rejects_bad_arguments(argv, message, capsys, monkeypatch):
    monkeypatch.delenv("PPLX_CODEC_SERVER_KEYS", raising=False)
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_serve_without_the_server_extra(capsys, monkeypatch):
    for name in [m for m in sys.modules if m.startswith("pplx_codec.server")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if not installed
    assert cli.main(["serve", "--no-auth"]) == 2
    assert "pip install 'pplx-codec[server]'" in capsys.readouterr().err


def test_cli_info_still_works(capsys):
    assert cli.main(["info"]) == 0
    assert "isa active" in capsys.readouterr().out


def test_running_refuses_other_hosts():
    with pytest.raises(ValueError, match="loopback only"):
        with running(host="0.0.0.0", auth=False):
            pass
