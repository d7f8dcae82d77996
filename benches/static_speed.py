"""Speed of the reference server's ``static`` backend against model2vec's own
encoder, in one process, on the built-in corpus (the README's figures).

    python benches/static_speed.py [--model2vec DIR] [--repeat 7]

Times ``StaticBackend.encode`` (the 256-dim unit vectors: the same work as
model2vec's ``StaticModel.encode``) and ``embed`` to both API models' sizes
(with the projection and scaling the server applies), over the 1,532
paragraphs of ``pydoc_data.topics`` that ``pplx-codec embed pydoc-topics``
sends.  Medians of ``--repeat`` runs after one warm-up.

``--model2vec DIR``: a float32 model2vec model of the same distillation
(``tools/distill_static.py --reference DIR`` saves one) and an interpreter
with ``model2vec`` installed (the recipe's virtualenv; put ``src`` on
PYTHONPATH).  Its ``StaticModel.encode`` is timed on the same texts, after
checking that both encoders give the same vectors (cosine >= 0.999 per text:
ours reads the int8 weights), so the two figures are for the same answer.

Not collected by pytest (not bench_*.py): the figures it prints are
throughputs on whatever machine runs it, not pass/fail.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from pplx_codec.corpus import read_texts
from pplx_codec.server.backends import static_backend


def rate(fn, texts: list[str], repeat: int) -> float:
    fn(texts)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn(texts)
        times.append(time.perf_counter() - started)
    return len(texts) / statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model2vec", metavar="DIR", help="a float32 model2vec model to compare with (model2vec installed)")
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args()
    texts = list(read_texts("pydoc-topics").texts)
    backend = static_backend()
    print(f"{len(texts):,} texts ({sum(map(len, texts)):,} characters), medians of {args.repeat}")
    if args.model2vec:
        from model2vec import StaticModel

        model = StaticModel.from_pretrained(args.model2vec)
        theirs, ours = model.encode(texts), backend.encode(texts)
        cosines = np.sum(theirs * ours, axis=1) / np.maximum(np.linalg.norm(theirs, axis=1), 1e-30)
        nonzero = np.linalg.norm(theirs, axis=1) > 0  # model2vec gives a text with no known token a zero vector
        if not (cosines[nonzero] >= 0.999).all():
            raise SystemExit(f"the encoders disagree: lowest cosine {cosines[nonzero].min():.6f}")
        print(f"model2vec StaticModel.encode (float32): {rate(model.encode, texts, args.repeat):>8,.0f} texts/s"
              f"  (vectors within cosine {cosines[nonzero].min():.5f} of ours)")
    print(f"StaticBackend.encode (int8 weights):    {rate(backend.encode, texts, args.repeat):>8,.0f} texts/s")
    for model in ("pplx-embed-v1-0.6b", "pplx-embed-v1-4b"):
        fps = rate(lambda t, model=model: backend.embed(model, t), texts, args.repeat)
        print(f"StaticBackend.embed to {model}: {fps:>8,.0f} texts/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
