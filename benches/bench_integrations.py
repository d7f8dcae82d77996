"""Integrations benchmarks (pytest-benchmark): LangChain ``embed_documents``
through the loopback reference server, our ``PerplexityEmbeddings`` against
``langchain-perplexity`` and the official SDK + numpy.

Same case as ``pplx_codec.benchmarks.integrations_cases``.  Every
implementation's vectors are checked against the oracle (the server's hash
backend called directly).  With ``--benchmark-disable`` (the default in
pyproject) each runs once, checked, at 1,024 texts; with timing enabled at
20,000 texts, checked before and after timing:

    pytest benches/bench_integrations.py --benchmark-enable

The CPU-per-vector figures and the target are printed by ``pplx-codec bench``
once the family is registered, not here.
"""

import numpy as np
import pytest

pytest.importorskip("langchain_core", reason="the langchain extra is not installed")

from pplx_codec.benchmarks import check_impl  # noqa: E402
from pplx_codec.benchmarks import integrations_cases as integrations  # noqa: E402


def _timing(config) -> bool:
    return bool(config.getoption("benchmark_enable", False)) or not config.getoption("benchmark_disable", False)


def pytest_generate_tests(metafunc):
    if {"case", "impl"} <= set(metafunc.fixturenames):
        cases = integrations.cases(small=not _timing(metafunc.config))
        metafunc.parametrize(("case", "impl"), [
            pytest.param(case, impl, id=f"{case.name} | {impl.name}") for case in cases for impl in case.impls])


def test_integrations(benchmark, case, impl):
    if not benchmark.disabled:  # timing: check first; disabled, the one run below is checked
        check_impl(case, impl, impl.fn())
    benchmark.group = case.name
    benchmark.extra_info["vectors"] = case.per_item
    result = benchmark(impl.fn)
    check_impl(case, impl, result)


def test_every_peer_was_checked():
    """A peer that is installed is either a row or a line saying why it is not (wrong vectors, a failure)."""
    for case in integrations.cases(small=True):
        lines, _ = case.report(case, []) if case.report else ([], [])
        rows = {impl.name.split(" ")[0] for impl in case.impls}
        for peer in ("langchain-perplexity", "official"):
            if not any(m.startswith(peer) for m in case.missing) and "perplexityai" not in case.missing:
                assert peer in rows or any(line.startswith(peer) for line in lines), (peer, rows, lines)


def test_a_peer_with_wrong_vectors_is_said_not_timed():
    expected = np.arange(1, 17, dtype=np.int8).reshape(2, 8)
    notes: list[str] = []
    swapped = expected[::-1].astype(float).tolist()   # rows in arrival order, not by index
    assert not integrations._precheck("some peer", lambda: swapped, expected, notes)
    assert notes == ["some peer: WRONG vectors, not timed: 2 of 2 vectors point elsewhere than their rows "
                     "(first: row 0)"]
    assert integrations._precheck("right peer", lambda: (expected * 3).astype(float).tolist(), expected, notes)
