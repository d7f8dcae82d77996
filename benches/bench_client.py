"""Client benchmarks (pytest-benchmark): response decoding against json/base64,
orjson, msgspec and the official SDK's parsing; whole jobs through the
loopback reference server, our Client against the official SDK client.

Same cases as ``pplx-codec bench --family client``.  Every implementation's
answer is checked against the oracle (the server's hash backend called
directly).  With ``--benchmark-disable`` (the default in pyproject) each
runs once, checked, with the end-to-end and fresh-process memory jobs at
1,024 texts, which keeps CI fast; with timing enabled the answer is checked
before and after timing, at full size (20,000 texts end to end, 100,000 for
peak memory):

    pytest benches/bench_client.py --benchmark-enable

The CPU-per-vector and peak-memory figures and the targets are printed by
``pplx-codec bench --family client``, not here.
"""

import pytest

from pplx_codec.benchmarks import check_impl
from pplx_codec.benchmarks import client_cases as client


def _timing(config) -> bool:
    return bool(config.getoption("benchmark_enable", False)) or not config.getoption("benchmark_disable", False)


def pytest_generate_tests(metafunc):
    if {"case", "impl"} <= set(metafunc.fixturenames):
        cases = client.cases(small=not _timing(metafunc.config))
        metafunc.parametrize(("case", "impl"), [
            pytest.param(case, impl, id=f"{case.name} | {impl.name}") for case in cases for impl in case.impls])


def test_client(benchmark, case, impl):
    if not benchmark.disabled:  # timing: check first; disabled, the one run below is checked
        check_impl(case, impl, impl.fn())
    benchmark.group = case.name
    benchmark.extra_info["nbytes"] = case.nbytes
    if case.per_item:
        benchmark.extra_info["vectors"] = case.per_item
    result = benchmark(impl.fn)
    check_impl(case, impl, result)
