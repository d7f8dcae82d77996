"""Search kernels vs faiss, simsimd, numkong, usearch and numpy (pytest-benchmark).

Same cases as ``pplx-codec bench --family search``.  Each test checks its
implementation's answer against the exact oracle before timing it, so
``--benchmark-disable`` (the default in pyproject) still runs every
correctness check -- on databases ~10x smaller, which keeps CI fast.  With
timing enabled the cases have their full sizes:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest benches/bench_search.py --benchmark-enable

(numpy's BLAS row is only representative with those two variables unset.)
Limit rows (reading the database once) are timed but have nothing to check.
"""

import pytest

from pplx_codec.benchmarks import check_impl
from pplx_codec.benchmarks import search_cases as search


def _timing(config) -> bool:
    return bool(config.getoption("benchmark_enable", False)) or not config.getoption("benchmark_disable", False)


def pytest_generate_tests(metafunc):
    if {"case", "impl"} <= set(metafunc.fixturenames):
        cases = search.cases(small=not _timing(metafunc.config))
        metafunc.parametrize(("case", "impl"), [
            pytest.param(case, impl, id=f"{case.name} | {impl.name}") for case in cases for impl in case.impls])


def test_search(benchmark, case, impl):
    check_impl(case, impl, impl.fn())
    benchmark.group = case.name
    benchmark.extra_info["nbytes"] = case.nbytes
    result = benchmark(impl.fn)
    check_impl(case, impl, result)
