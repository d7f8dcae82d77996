"""Loading a store into LanceDB and sqlite-vec: ours vs each database's documented
path (pytest-benchmark).

Same cases as ``embedded_sinks_cases``.  Each test reads its table back and checks
it (row count, distinct ids, aggregates equal to numpy's on the store) before
timing it, so ``--benchmark-disable`` (the default in pyproject) still runs every
check, on ~1,000 rows, which keeps CI fast.  With timing enabled the cases have
their full size (100,000 x 1024):

    pytest benches/bench_embedded_sinks.py --benchmark-enable
"""

import pytest

from pplx_codec.benchmarks import check_impl
from pplx_codec.benchmarks import embedded_sinks_cases as sinks


def _timing(config) -> bool:
    return bool(config.getoption("benchmark_enable", False)) or not config.getoption("benchmark_disable", False)


def pytest_generate_tests(metafunc):
    if {"case", "impl"} <= set(metafunc.fixturenames):
        cases = sinks.cases(small=not _timing(metafunc.config))
        metafunc.parametrize(("case", "impl"), [
            pytest.param(case, impl, id=f"{case.name} | {impl.name}") for case in cases for impl in case.impls])


def test_embedded_sinks(benchmark, case, impl):
    check_impl(case, impl, impl.fn())
    benchmark.group = case.name
    benchmark.extra_info["nbytes"] = case.nbytes
    benchmark.extra_info["rows"] = case.per_item
    result = benchmark(impl.fn)
    check_impl(case, impl, result)
