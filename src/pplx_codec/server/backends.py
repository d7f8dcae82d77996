"""Where vectors come from, and how they become the wire format.

A backend maps texts to float32 vectors of a model's full size (1024 or
2560).  Everything after that is shared and is what the real service does:
``dimensions`` takes a prefix of the full vector, then int8 is
``clamp(round(tanh(x) * 127), -128, 127)`` and binary is ``x > 0`` packed
LSB-first, both encoded by the codec core.  Because the quantizers work
element by element, a client-side prefix of a full-size response equals
what a smaller ``dimensions`` returns.

- ``static`` (default): a static (per-token) model distilled from
  all-MiniLM-L6-v2, shipped in the package (``static_model/``): real
  semantic neighbours with numpy and ``tokenizers`` only, no torch.
- ``hash``: deterministic bag-of-words vectors, no dependencies: texts are
  close exactly when they share words (what tests of word-level behaviour want).
- ``sentence-transformers``: a local model, e.g. the open pplx-embed weights.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from ..b64 import encode_binary, encode_int8
from ..bits import pack_bits
from ..constants import API_BITORDER, MODEL_DIMS
from .rng import key, uniform

log = logging.getLogger("pplx_codec.server")

BACKENDS = ("static", "hash", "sentence-transformers")
DEFAULT_BACKEND = "static"


class Backend(Protocol):
    name: str

    def embed(self, model: str, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), MODEL_DIMS[model])`` float32 vectors, before quantization."""
        ...


# --- quantization and encoding: the service's, for every backend ---

def quantize_int8(x: np.ndarray) -> np.ndarray:
    """``clamp(round(tanh(x) * 127), -128, 127)`` as int8 (rounding half to even, like torch)."""
    q = np.tanh(x, dtype=np.float32)
    q *= 127
    np.rint(q, out=q)
    # tanh is within [-1, 1], so the clamp never changes a value; kept to be the formula
    np.clip(q, -128, 127, out=q)
    return q.astype(np.int8)


def encode_rows(x: np.ndarray, dimensions: int, encoding_format: str) -> list[str]:
    """One base64 string per row: the first ``dimensions`` values of each full vector, quantized."""
    prefix = np.ascontiguousarray(x[:, :dimensions], dtype=np.float32)
    if encoding_format == "base64_int8":
        return encode_int8(quantize_int8(prefix))
    if encoding_format == "base64_binary":
        return encode_binary(pack_bits(prefix, bitorder=API_BITORDER))
    raise ValueError(f"unknown encoding_format {encoding_format!r}")


# Contextualized embeddings, for any backend.  Not late chunking (which needs a
# model trained for it): each chunk's direction leans toward its document's,
# ``unit(chunk) + 0.5 * direction``, where the direction is the normalized sum
# of the document's unit chunk vectors, and the chunk keeps its norm.  A
# one-chunk document (a query, ``[[query]]``) keeps its own direction.

_CONTEXT_WEIGHT = 0.5


def _unit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0), norms


def unit_sum(x: np.ndarray) -> np.ndarray:
    """The sum of the unit rows of ``x``, in float64 so that summing a document
    in parts or whole gives the same direction."""
    return _unit(x)[0].sum(axis=0, dtype=np.float64)


def lean(x: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """Chunk vectors ``x`` leaned toward their documents' directions (``sums``:
    one ``unit_sum`` per row, or one for all rows)."""
    unit, norms = _unit(x)
    direction, _ = _unit(np.atleast_2d(sums))
    ctx = unit + np.float32(_CONTEXT_WEIGHT) * direction.astype(np.float32)
    ctx_unit, _ = _unit(ctx)
    return (ctx_unit * norms).astype(np.float32, copy=False)


def contextualize(x: np.ndarray, doc_sizes: Sequence[int]) -> np.ndarray:
    """Chunk vectors of whole documents, back to back -> contextualized."""
    starts = np.concatenate(([0], np.cumsum(doc_sizes)[:-1])).astype(np.intp)
    sums = np.stack([unit_sum(x[s:s + k]) for s, k in zip(starts, doc_sizes, strict=True)])
    return lean(x, np.repeat(sums, doc_sizes, axis=0))


def allpass(seed: int, dim: int) -> np.ndarray:
    """The spectrum of a fixed random all-pass filter of length ``dim``: unit
    magnitudes, random phases.  Filtering with it (``mix``) is an orthogonal
    map of R^dim that turns sparse vectors into dense, Gaussian-looking ones."""
    phase = uniform(seed, dim // 2 + 1) * (2 * np.pi)
    spectrum = np.exp(1j * phase)
    # the DC and Nyquist bins of a real signal's spectrum are real: +-1 keeps them unit
    spectrum[0] = 1.0 if phase[0] < np.pi else -1.0
    if dim % 2 == 0:
        spectrum[-1] = 1.0 if phase[-1] < np.pi else -1.0
    return spectrum


def mix(x: np.ndarray, spectrum: np.ndarray) -> np.ndarray:
    """Rows of ``x`` through the all-pass filter, by FFT: O(dim log dim) per row."""
    dim = x.shape[1]
    return np.fft.irfft(np.fft.rfft(x, axis=1) * spectrum, n=dim, axis=1).astype(np.float32)


# --- hash backend ---

_WORD = re.compile(r"[^\W_]+")


class HashBackend:
    """Deterministic, dependency-free vectors in which shared words mean similarity.

    Text -> lowercased words (runs of letters and digits; a text without any
    is one feature, itself) -> feature hashing into a count vector of the
    model's full size ``D`` (bucket: CRC-32 of the word's UTF-8, mod ``D``;
    counts only add, so no text can cancel to a zero vector) -> a fixed
    all-pass filter (unit-magnitude random-phase spectrum, one per model,
    applied by FFT) so the vector is dense like a real embedding -> scaled to
    RMS 0.5, so int8 values spread over about +-60.  The filter is
    orthogonal, so the cosine of two vectors is exactly the cosine of their
    word counts: texts sharing words are close, texts sharing none are
    orthogonal (up to hash collisions, ~1/D).  Each model gets its own
    filter, so models do not share a space.
    """

    name = "hash"
    _RMS = 0.5
    _WORD_CACHE_LIMIT = 1 << 20

    def __init__(self):
        self._filters = {m: allpass(zlib.crc32(m.encode()), d) for m, d in MODEL_DIMS.items()}
        # word -> CRC-32; the Python-level hashing is most of the per-word cost
        self._crc: dict[str, int] = {}

    def _hashes(self, words: list[str]) -> np.ndarray:
        crc = self._crc
        try:
            return np.fromiter(map(crc.__getitem__, words), np.uint32, len(words))
        except KeyError:
            pass
        if len(crc) > self._WORD_CACHE_LIMIT:
            crc.clear()
        for w in words:
            if w not in crc:
                crc[w] = zlib.crc32(w.encode("utf-8", "surrogatepass"))
        return np.fromiter(map(crc.__getitem__, words), np.uint32, len(words))

    def embed(self, model: str, texts: Sequence[str]) -> np.ndarray:
        dim = MODEL_DIMS[model]
        words: list[str] = []
        counts = np.empty(len(texts), np.intp)
        findall = _WORD.findall
        for i, text in enumerate(texts):
            ws = findall(text.lower()) or [text]
            words += ws
            counts[i] = len(ws)
        bucket = self._hashes(words).astype(np.int64) % dim
        row = np.repeat(np.arange(len(texts), dtype=np.int64), counts)
        c = np.bincount(row * dim + bucket, minlength=len(texts) * dim).reshape(len(texts), dim)
        x = mix(c, self._filters[model])
        # every row has a positive count, and the filter keeps norms: rms > 0
        x *= self._RMS / np.sqrt(np.einsum("ij,ij->i", x, x) / dim)[:, None]
        return x


# --- sentence-transformers backend ---

class SentenceTransformerBackend:
    """A sentence-transformers model from a local directory, on the CPU.

    The open pplx-embed weights end their pipeline with their own quantizer
    module; it is dropped so the pooled float output goes through the
    service's quantization here (the same formula).

    The model's vectors are mapped to each API model's size: when the model is
    smaller, zero-padded and spread over all dimensions by a fixed all-pass
    filter (an orthonormal projection: norms and cosines unchanged, every
    prefix a random projection of the whole); unchanged when equal; a
    Matryoshka prefix when larger.  ``output_scale`` multiplies the vectors
    before quantization: models trained without tanh quantization give small
    components (a unit vector spread over 1024 dims is ~0.03 each, int8 +-4),
    and a scale such as 16 puts them in int8's range.
    """

    name = "sentence-transformers"

    def __init__(self, model_path: str | os.PathLike, *, trust_remote_code: bool = False, output_scale: float = 1.0,
                 batch_size: int = 32):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise RuntimeError("the sentence-transformers backend needs the model extra: "
                               "pip install 'pplx-codec[model]'") from e
        path = os.fspath(model_path)
        if not os.path.isdir(path):
            raise ValueError(f"model path {path!r} is not a directory (a sentence-transformers model saved locally)")
        self.model = SentenceTransformer(path, device="cpu", local_files_only=True,
                                         trust_remote_code=trust_remote_code)
        drop_trailing_quantizer(self.model)
        self.dim = int(self.model.encode(["probe"], convert_to_numpy=True, show_progress_bar=False).shape[1])
        self.output_scale = np.float32(output_scale)
        self.batch_size = batch_size
        self._spread = {d: allpass(key(_SPREAD_SEED, d), d) for d in set(MODEL_DIMS.values()) if d > self.dim}
        # torch already uses every core for one batch; concurrent encodes only contend
        self._lock = threading.Lock()
        log.info("sentence-transformers model %s: %d dims, max %s tokens per text", path, self.dim,
                 self.model.max_seq_length)

    def embed(self, model: str, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            v = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                  show_progress_bar=False)
        v = np.asarray(v, dtype=np.float32)
        dim = MODEL_DIMS[model]
        if self.dim < dim:
            v = spread(v, dim, self._spread[dim])
        elif self.dim > dim:
            v = v[:, :dim]
        if self.output_scale != 1:
            v = v * self.output_scale
        return np.ascontiguousarray(v, dtype=np.float32)


def drop_trailing_quantizer(model) -> bool:
    """Remove a last module named ``*Quantizer`` (pplx-embed's ``st_quantize``
    module) from a sentence-transformers pipeline; True if one was removed."""
    if len(model) > 1 and type(model[len(model) - 1]).__name__.endswith("Quantizer"):
        del model[len(model) - 1]
        return True
    return False


_SPREAD_SEED = 0x5EED


def spread(v: np.ndarray, dim: int, spectrum: np.ndarray | None = None) -> np.ndarray:
    """``(n, m)`` vectors -> ``(n, dim)``, ``m <= dim``, by a fixed orthonormal
    projection: zero-pad, then the all-pass filter of ``dim``."""
    if spectrum is None:
        spectrum = allpass(key(_SPREAD_SEED, dim), dim)
    padded = np.zeros((v.shape[0], dim), np.float32)
    padded[:, :v.shape[1]] = v
    return mix(padded, spectrum)


# --- static backend ---

STATIC_MODEL_DIR = Path(__file__).resolve().parent / "static_model"


class StaticBackend:
    """Static (per-token) embeddings: model2vec's encoder over the model in
    ``static_model/`` (made by ``tools/distill_static.py`` from
    all-MiniLM-L6-v2; its README says how), with numpy and ``tokenizers`` only.

    A text is what model2vec's ``StaticModel.encode`` does with it: its first
    ``max_length * median_token_length`` characters, tokenized without special
    tokens and truncated to ``max_length`` tokens, unknown tokens dropped; the
    mean of those tokens' rows (int8 with a scale per row, dequantized once
    at load), normalized to unit length.  A text with no known token gets the
    unknown token's row (model2vec gives a zero vector, which has no direction).

    The ``dim``-dimensional unit vectors go to each API model's size as the
    sentence-transformers backend's do (``spread``: zero-pad, then a fixed
    all-pass filter: an orthonormal map, cosines unchanged, every Matryoshka
    prefix a random projection of the whole), then scaled to RMS 0.5 as the
    hash backend's are, so int8 values spread over about +-60.

    Deterministic (no state changes after load) and safe to call from many
    threads at once: the tokenizer's settings are fixed at load and it is only
    read after that.
    """

    name = "static"
    _RMS = 0.5

    def __init__(self, model_dir: str | os.PathLike | None = None):
        try:
            from tokenizers import Tokenizer
        except ImportError as e:  # the server extra installs it
            raise RuntimeError("the static backend needs the 'tokenizers' package: "
                               "pip install 'pplx-codec[server]'") from e
        path = Path(model_dir) if model_dir is not None else STATIC_MODEL_DIR
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
            with np.load(path / "vectors.npz", allow_pickle=False) as z:
                q, scale = z["q"], z["scale"]
            tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"cannot load the static model in {path}: {e}") from e
        except Exception as e:  # tokenizers raises a bare Exception for a bad file
            raise ValueError(f"cannot load the static model's tokenizer in {path}: {e}") from e
        if q.dtype != np.int8 or q.ndim != 2 or scale.shape != (q.shape[0],):
            raise ValueError(f"static model {path}: vectors.npz must hold q (V, dim) int8 and scale (V,)")
        self.path = path
        self.dim = int(q.shape[1])
        self._table = q.astype(np.float32) * scale.astype(np.float32)[:, None]
        self._table.flags.writeable = False
        self._unk = config.get("unk_token_id")
        max_length = config.get("max_length")
        self._chars = max_length * config["median_token_length"] if max_length else None
        tokenizer.no_padding()
        if max_length:
            tokenizer.enable_truncation(max_length)
        else:
            tokenizer.no_truncation()
        self._tokenizer = tokenizer
        # tokenizers >= 0.21 has encode_batch_fast (no offsets); the ids are the same
        self._encode_batch = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
        self._spread = {d: allpass(key(_SPREAD_SEED, d), d) for d in set(MODEL_DIMS.values()) if d > self.dim}
        log.info("static model %s: %d tokens x %d dims", path, q.shape[0], self.dim)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 unit vectors: model2vec's ``encode`` (above)."""
        n = len(texts)
        chars = self._chars
        cut = [t[:chars] for t in texts] if chars else list(texts)
        try:
            encodings = self._encode_batch(cut, add_special_tokens=False)
        except TypeError:  # a lone surrogate is not UTF-8, which tokenizers needs: U+FFFD, as token counts take it
            cut = [t.encode("utf-8", "surrogatepass").decode("utf-8", "replace") for t in cut]
            encodings = self._encode_batch(cut, add_special_tokens=False)
        unk = self._unk
        table = self._table
        out = np.empty((n, self.dim), np.float32)
        for j, e in enumerate(encodings):
            ids = e.ids
            if unk is not None:
                ids = [i for i in ids if i != unk] or [unk]
            elif not ids:  # (a tokenizer without an unknown token: a blank text has no token)
                ids = [0]
            # one text's rows at a time stay in cache: 3-4x faster than gathering all rows at once
            table.take(ids, axis=0).sum(axis=0, out=out[j])
            out[j] /= len(ids)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= norms + np.float32(1e-32)  # as model2vec normalizes
        return out

    def embed(self, model: str, texts: Sequence[str]) -> np.ndarray:
        dim = MODEL_DIMS[model]
        v = self.encode(texts)
        if self.dim < dim:
            v = spread(v, dim, self._spread[dim])
        elif self.dim > dim:
            v = np.ascontiguousarray(v[:, :dim])
        v *= np.float32(self._RMS * math.sqrt(dim))
        return v


_STATIC: dict[str, StaticBackend] = {}
_STATIC_LOCK = threading.Lock()


def static_backend(model_dir: str | os.PathLike | None = None) -> StaticBackend:
    """The ``StaticBackend`` of ``model_dir`` (default: the shipped model), loaded
    once per process: it never changes after loading and is safe to share, and
    every server a process starts (tests start many) then shares it."""
    path = os.path.realpath(model_dir if model_dir is not None else STATIC_MODEL_DIR)
    with _STATIC_LOCK:
        if path not in _STATIC:
            _STATIC[path] = StaticBackend(path)
        return _STATIC[path]


def make_backend(name: str = DEFAULT_BACKEND, **options) -> Backend:
    if name == "static":
        return static_backend(options.get("model_path"))
    if name == "hash":
        return HashBackend()
    if name == "sentence-transformers":
        if not options.get("model_path"):
            raise ValueError("the sentence-transformers backend needs a model path (--model-path)")
        return SentenceTransformerBackend(options.pop("model_path"), **options)
    raise ValueError(f"unknown backend {name!r} (known: {', '.join(BACKENDS)})")
