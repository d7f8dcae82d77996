"""Integrations family: LangChain's ``embed_documents`` of ``N_E2E`` (20,000)
texts through the loopback reference server, in one run:

- ours: :class:`pplx_codec.integrations.langchain.PerplexityEmbeddings`
  (the client's batching, ``CONCURRENCY`` (4) requests in flight, the
  streaming decoder, unit-length float32 rows, then LangChain's lists);
- ``langchain-perplexity``, what LangChain users install today: its
  ``embed_documents`` sends every text of a call in one request, which the
  API refuses beyond 512 inputs, so the row calls it on 512-text slices in
  turn, as its user must (one call with every text is tried first and its
  refusal said under the table);
- the official SDK (``perplexityai``) as its user writes a big job (512-text
  batches on ``CONCURRENCY`` threads, each ``.embedding`` base64-decoded
  into a numpy matrix by ``index``), then the rows scaled to unit length by
  numpy and converted to lists, as an ``Embeddings`` must return them.

Every row returns ``list[list[float]]`` and is checked before it is timed:
each vector must point as the oracle's int8 row does (the server's hash
backend called directly; langchain-perplexity returns the int8 values
unscaled, which is the same direction).  A peer whose vectors are wrong is
not timed: the lines under the table say what was wrong.  Rows report
vectors/s and this process's CPU time per vector (the server runs in a
child process, its cache warm, and is not counted).  Target: ours >= 5x
less CPU per vector than langchain-perplexity.

Not registered in :func:`pplx_codec.benchmarks.families` here (the lead
does that); ``benches/bench_integrations.py`` runs the checks.
"""

from __future__ import annotations

import numpy as np

from ._harness import Case, Impl, optional
from .client_setup import BATCH, CONCURRENCY, KEY, MODEL, N_E2E, oracle, sdk_job, server_url, texts, warm

__all__ = ["cases"]

LANGCHAIN_PERPLEXITY = "langchain-perplexity"


def _unit(m: np.ndarray) -> np.ndarray:
    f = m.astype(np.float64)
    n = np.linalg.norm(f, axis=1, keepdims=True)
    return np.divide(f, n, out=np.zeros_like(f), where=n > 0)


def check_direction(got, expected: np.ndarray) -> None:
    """``got`` (lists of floats) points as ``expected`` (int8 rows) does, row by row:
    the same rows, in order, each a positive multiple of the int8 row (float32 rounding allowed)."""
    assert isinstance(got, list) and all(isinstance(v, list) for v in got), \
        f"expected list[list[float]], got {type(got).__name__}"
    a = np.asarray(got, dtype=np.float64)
    assert a.shape == expected.shape, f"shape {a.shape}, expected {expected.shape}"
    bad = np.flatnonzero(np.abs(_unit(a) - _unit(expected)).max(axis=1) > 1e-6)
    assert not bad.size, f"{bad.size} of {len(a)} vectors point elsewhere than their rows (first: row {bad[0]})"


def _langchain_perplexity(lp, perplexity, url: str, ts: list[str], notes: list[str]):
    """The peer's embed_documents, on 512-text slices (one call with every text is refused)."""
    sdk = perplexity.Perplexity(api_key=KEY, base_url=url, max_retries=0)
    emb = lp.PerplexityEmbeddings(model=MODEL, api_key=KEY, client=sdk)
    try:
        emb.embed_documents(ts)
        notes.append(f"{LANGCHAIN_PERPLEXITY}: one embed_documents call with {len(ts):,} texts worked")
    except Exception as e:  # the API's limit: 512 inputs a request
        notes.append(f"{LANGCHAIN_PERPLEXITY}: one embed_documents call with {len(ts):,} texts fails "
                     f"({type(e).__name__}: {str(e)[:120]}); the row calls it on {BATCH}-text slices")

    def run():
        out: list[list[float]] = []
        for s in range(0, len(ts), BATCH):
            out += emb.embed_documents(ts[s:s + BATCH])
        return out
    return run


def _precheck(name: str, fn, expected: np.ndarray, notes: list[str]) -> bool:
    """Run a peer once: True when its vectors are right, else a line saying what was wrong."""
    try:
        check_direction(fn(), expected)
    except AssertionError as e:
        notes.append(f"{name}: WRONG vectors, not timed: {e}")
        return False
    except Exception as e:
        notes.append(f"{name}: failed, not timed: {type(e).__name__}: {str(e)[:200]}")
        return False
    return True


def cases(quick: bool = False, small: bool = False) -> list[Case]:
    """The integrations case: ``N_E2E`` texts; ``quick``: 5,000; ``small``: 1,024 (checks only)."""
    missing: list[str] = []
    lc = optional("pplx_codec.integrations.langchain", missing, "pplx-codec[langchain]")
    lp = optional("langchain_perplexity", missing, LANGCHAIN_PERPLEXITY)
    perplexity = optional("perplexity", missing, "perplexityai")
    pybase64 = optional("pybase64", missing)
    try:
        url = server_url()
    except ImportError as e:
        missing.append(f"pplx-codec[server] ({e.name})")
        return []
    if lc is None:
        return []
    n, label = (1024, " (small)") if small else (5_000, " (quick)") if quick else (N_E2E, "")
    ts = texts(n)
    expected = oracle(n)
    warm(url, n)
    ours = lc.PerplexityEmbeddings(api_key=KEY, base_url=url, max_concurrency=CONCURRENCY)
    impls = [Impl(f"PerplexityEmbeddings.embed_documents (max_concurrency={CONCURRENCY})",
                  lambda: ours.embed_documents(ts), ours=True)]
    notes: list[str] = []
    if lp is not None and perplexity is not None:
        name = f"{LANGCHAIN_PERPLEXITY} embed_documents, {BATCH}-text slices"
        fn = _langchain_perplexity(lp, perplexity, url, ts, notes)
        if _precheck(name, fn, expected, notes):
            impls.append(Impl(name, fn))
    if perplexity is not None and pybase64 is not None:
        sdk = perplexity.Perplexity(api_key=KEY, base_url=url)
        name = f"official SDK, {CONCURRENCY} threads + pybase64 -> numpy unit rows -> lists"

        def sdk_floats():
            return _unit(sdk_job(sdk, ts, pybase64)).astype(np.float32).tolist()
        if _precheck(name, sdk_floats, expected, notes):
            impls.append(Impl(name, sdk_floats))

    def report(case: Case, timings) -> tuple[list[str], list[str]]:
        return list(notes), []

    return [Case("integrations", f"LangChain embed_documents: {n:,} texts -> {n:,} x 1024 floats{label}",
                 n * 1024 * 4, expected, impls, missing, targets=[(LANGCHAIN_PERPLEXITY, 5.0, "cpu")], per_item=n,
                 item="vector", report=report, check=check_direction,
                 note="loopback server in a child process, cache warm; every row returns list[list[float]]")]
