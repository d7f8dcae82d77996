"""The static backend (the reference server's default): the model the package
ships, its encoder against model2vec's own and a per-text numpy oracle, the
map to the API's sizes, determinism, threads, hostile texts, and the server and
CLI serving it.  Retrieval quality is tests/test_quality.py."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
from tokenizers import Tokenizer

import pplx_codec as pc
from pplx_codec import cli
from pplx_codec.constants import MODEL_DIMS
from pplx_codec.server import ServerConfig, running
from pplx_codec.server.backends import (
    STATIC_MODEL_DIR,
    StaticBackend,
    make_backend,
    quantize_int8,
    spread,
    static_backend,
)
from server_support import AUTH, KEY, check_embeddings, int8

REFERENCE = Path(__file__).parent / "data" / "static_model2vec_reference.npz"
SMALL, LARGE = "pplx-embed-v1-0.6b", "pplx-embed-v1-4b"


@pytest.fixture(scope="module")
def backend() -> StaticBackend:
    return static_backend()


def oracle(texts: list[str]) -> np.ndarray:
    """model2vec's encode, written out text by text from the shipped files."""
    config = json.loads((STATIC_MODEL_DIR / "config.json").read_text())
    with np.load(STATIC_MODEL_DIR / "vectors.npz") as z:
        table = z["q"].astype(np.float64) * z["scale"][:, None]
    tok = Tokenizer.from_file(str(STATIC_MODEL_DIR / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(config["max_length"])
    unk = config["unk_token_id"]
    out = []
    for text in texts:
        ids = [i for i in tok.encode(text[:config["max_length"] * config["median_token_length"]],
                                     add_special_tokens=False).ids if i != unk] or [unk]
        v = table[ids].mean(axis=0)
        out.append(v / np.linalg.norm(v))
    return np.array(out)


def test_the_shipped_model():
    config = json.loads((STATIC_MODEL_DIR / "config.json").read_text())
    with np.load(STATIC_MODEL_DIR / "vectors.npz") as z:
        assert z["q"].dtype == np.int8 and z["q"].shape == (config["vocab_size"], config["dim"]) == (29525, 256)
        assert z["scale"].dtype == np.float32 and (z["scale"] > 0).all()
        assert np.abs(z["q"]).max(axis=1).min() == 127  # each row's scale is its own peak
    size = sum(f.stat().st_size for f in STATIC_MODEL_DIR.iterdir() if f.is_file())
    assert size < 8 << 20, size  # a few MB in the wheel


def test_agrees_with_model2vec(backend):
    """tools/distill_static.py recorded model2vec's own StaticModel.encode (float32 weights) of these texts."""
    with np.load(REFERENCE) as z:
        texts, want = [str(t) for t in z["texts"]], z["vectors"]
    got = backend.encode(texts)
    has_tokens = np.linalg.norm(want, axis=1) > 0
    assert has_tokens.sum() >= len(texts) - 6
    cos = np.einsum("ij,ij->i", got[has_tokens], want[has_tokens]) / np.linalg.norm(want[has_tokens], axis=1)
    assert cos.min() > 0.9995, cos.min()  # the only difference: int8 weights
    # model2vec gives texts without a known token a zero vector; here they get [UNK]'s row
    unk = backend.encode(["\u2063"])[0]
    for t in np.array(texts)[~has_tokens]:
        np.testing.assert_array_equal(backend.encode([t])[0], unk)


def test_encode_equals_the_per_text_oracle(backend):
    texts = ["how do I catch an exception", "a", "x" * 5000, "read a file " * 700, "", " \t ",
             "ÉCOLE école 東京", "💩", "a\ud800b", *(f"text number {i} of many" for i in range(50))]
    got = backend.encode(texts)
    # one text alone is encoded as within a batch
    np.testing.assert_array_equal(np.stack([backend.encode([t])[0] for t in texts]), got)
    want = oracle([t.encode("utf-8", "surrogatepass").decode("utf-8", "replace") for t in texts])
    np.testing.assert_allclose(got, want, atol=2e-6)
    assert np.isfinite(got).all() and np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)


def test_api_sizes_prefixes_and_quantization(backend):
    texts = ["open a file", "read a file line by line", "catch an exception", "sort a list in place"]
    unit = backend.encode(texts)
    for model, dim in MODEL_DIMS.items():
        x = backend.embed(model, texts)
        assert x.shape == (len(texts), dim) and x.dtype == np.float32 and x.flags.c_contiguous
        # the sentence-transformers backend's map: zero-pad, then the fixed all-pass filter; RMS 0.5
        np.testing.assert_allclose(x, spread(unit, dim) * (0.5 * np.sqrt(dim)), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(x @ x.T / (0.25 * dim), unit @ unit.T, atol=1e-5)  # cosines kept
    # what a client gets: the quantized prefix, and its int8 cosines follow the model's
    q = quantize_int8(backend.embed(SMALL, texts)[:, :256]).astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    assert np.abs(q @ q.T - unit @ unit.T).max() < 0.15
    assert np.argmax((q @ q.T)[1, [0, 2, 3]]) == 0  # "read a file ..." is nearest "open a file"


def test_deterministic_and_thread_safe(backend):
    texts = [f"paragraph {i} about files, loops and exceptions" for i in range(300)]
    want = backend.embed(LARGE, texts)
    fresh = StaticBackend()  # another instance (another load) gives the same bytes
    assert fresh.embed(LARGE, texts).tobytes() == want.tobytes()
    results, errors = [None] * 8, []

    def work(i):
        try:
            results[i] = backend.embed(LARGE, texts[i:] + texts[:i])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, got in enumerate(results):
        np.testing.assert_array_equal(got, np.roll(want, -i, axis=0))


def test_loaded_once_per_process_and_bad_model_dirs(tmp_path):
    assert static_backend() is static_backend(STATIC_MODEL_DIR) is make_backend("static")
    assert make_backend().name == "static" and ServerConfig().backend == "static"
    with pytest.raises(ValueError, match="cannot load the static model"):
        StaticBackend(tmp_path)
    shutil.copytree(STATIC_MODEL_DIR, tmp_path / "m")
    (tmp_path / "m" / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="tokenizer"):
        StaticBackend(tmp_path / "m")
    np.savez(tmp_path / "m" / "vectors.npz", q=np.zeros((3, 4), np.float32), scale=np.ones(3, np.float32))
    shutil.copy(STATIC_MODEL_DIR / "tokenizer.json", tmp_path / "m")
    with pytest.raises(ValueError, match="int8"):
        StaticBackend(tmp_path / "m")
    with pytest.raises(ValueError, match="unknown backend"):
        ServerConfig(backend="nope")


def test_served_by_default_over_http(backend):
    texts = ["how do I catch an exception", "the try statement specifies exception handlers", "lambda"]
    with running(api_keys=[KEY]) as url:  # the default backend
        r = httpx.post(url + "/v1/embeddings", json={"input": texts, "model": SMALL, "dimensions": 512},
                       headers=AUTH, timeout=60)
        assert r.status_code == 200
        check_embeddings(r.json(), len(texts), SMALL)
        np.testing.assert_array_equal(int8(r.json(), 512), quantize_int8(backend.embed(SMALL, texts)[:, :512]))
        with pc.Client(api_key=KEY, base_url=url) as c:
            got = c.embed(texts, encoding_format="base64_binary").vectors
        np.testing.assert_array_equal(got, pc.pack_bits(backend.embed(SMALL, texts)))


def test_cli_says_which_backend_serves(tmp_path, monkeypatch, capsys):
    for var in ("PERPLEXITY_API_KEY", "PPLX_API_KEY", "PERPLEXITY_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    src = tmp_path / "texts.txt"
    src.write_text("open a file for reading\ncatch an exception with try\nsort a list in place\n")
    assert cli.main(["embed", str(src), "--out", str(tmp_path / "s"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "embedded reference server (static backend)" in err, err
    assert cli.main(["search", str(tmp_path / "s"), "how do I handle an error", "-k", "1"]) == 0
    assert "catch an exception with try" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    assert "static" in capsys.readouterr().out
