"""Codec kernels vs stdlib, numpy and pybase64 (pytest-benchmark).

Same cases as ``pplx-codec bench``.  Each test checks its implementation's
answer against the reference before timing it, so ``--benchmark-disable``
(the default in pyproject) still runs every correctness check.
Run the timings with:  pytest benches --benchmark-enable
"""

import pytest

from pplx_codec.benchmarks import codec_cases as codec

CASES = codec.cases(quick=True)
PARAMS = [pytest.param(case, impl, id=f"{case.name} | {impl.name}") for case in CASES for impl in case.impls]


@pytest.mark.parametrize(("case", "impl"), PARAMS)
def test_codec(benchmark, case, impl):
    case.check(impl.fn(), case.expected)
    benchmark.group = case.name
    benchmark.extra_info["nbytes"] = case.nbytes
    result = benchmark(impl.fn)
    case.check(result, case.expected)
