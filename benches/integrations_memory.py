"""Memory of a LangChain vector store holding 100,000 rows x 1024 dimensions:
``PerplexityVectorStore`` against LangChain's ``InMemoryVectorStore``.

    python benches/integrations_memory.py [--rows 100000]

Each store runs in a fresh process, fed by the same ``PerplexityEmbeddings``
through the loopback reference server (hash backend, in a child process: its
memory is not counted), on the client family's texts (~170 characters each):

- ``PerplexityVectorStore``: int8 rows + binary codes + norms, texts, ids;
- ``InMemoryVectorStore`` fed by ``PerplexityEmbeddings``: float lists whose
  equal values share one float object (at most 256 per row);
- ``InMemoryVectorStore`` fed by floats as most providers hand them over
  (``numpy``'s ``tolist()``: one float object per value).

After the imports, the texts and the embedding exist, the process resets its
peak RSS (``/proc/self/clear_refs``), adds every text (``add_texts``; the
in-memory store in slices of 10,000), and reports its RSS (``VmRSS``) and
peak (``VmHWM``) over the RSS before, the time of one query, and whether the
query's own text is its top hit.  Linux only (``/proc``).

Not collected by pytest (not bench_*.py): at full size the float lists take
~4 GB.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import time

KINDS = ("ours", "inmemory", "inmemory-distinct")


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def _one(kind: str, n: int) -> str:
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import InMemoryVectorStore

    from pplx_codec.benchmarks.client_setup import KEY, server_url, texts, warm
    from pplx_codec.integrations.langchain import PerplexityEmbeddings, PerplexityVectorStore

    url = server_url()
    warm(url, n)
    ts, ids = texts(n), [str(i) for i in range(n)]
    ours = PerplexityEmbeddings(api_key=KEY, base_url=url, max_concurrency=4)

    class Distinct(Embeddings):
        """Floats as most providers hand them over: one object per value."""

        def embed_documents(self, t: list[str]) -> list[list[float]]:
            return ours.embed_int8(t).astype("float32").tolist()

        def embed_query(self, t: str) -> list[float]:
            return ours.embed_int8([t], query=True)[0].astype("float32").tolist()

    emb: Embeddings = Distinct() if kind == "inmemory-distinct" else ours
    emb.embed_documents(ts[:600])   # the client's code paths, warm
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")   # resets VmHWM to the current RSS
    base = _status("VmRSS:")
    t0 = time.perf_counter()
    vs: PerplexityVectorStore | InMemoryVectorStore
    if kind == "ours":
        vs = PerplexityVectorStore(emb)
        vs.add_texts(ts, ids=ids)
    else:
        vs = InMemoryVectorStore(emb)
        for s in range(0, n, 10_000):
            vs.add_texts(ts[s:s + 10_000], ids=ids[s:s + 10_000])
    added = time.perf_counter() - t0
    gc.collect()
    rss, peak = _status("VmRSS:"), _status("VmHWM:")
    probe = ts[n // 2]
    t0 = time.perf_counter()
    top = vs.similarity_search(probe, k=10)[0].page_content
    query = time.perf_counter() - t0
    return (f"{kind}: {n:,} rows: held {(rss - base) / 1e6:.1f} MB, peak +{(peak - base) / 1e6:.1f} MB, "
            f"add_texts {added:.1f} s, one query {query * 1e3:.1f} ms, top hit is the query's text: {top == probe}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--kind", choices=KINDS, help=argparse.SUPPRESS)  # one store, in this process
    args = p.parse_args()
    if args.kind:
        print(_one(args.kind, args.rows), flush=True)
        return
    for kind in KINDS:   # each in a fresh process: nothing of one is counted in another
        done = subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--kind", kind],
                              capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{kind} failed:\n{done.stderr}")
        print(done.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
