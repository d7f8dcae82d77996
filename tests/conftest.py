import os

import pytest
from hypothesis import HealthCheck, settings

import pplx_codec

# The `isa` fixture is set once per test, not per example (that is the point:
# every example of the test runs on that ISA), and some examples build
# multi-megabyte inputs.
_COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)
settings.register_profile("default", max_examples=100, **_COMMON)
settings.register_profile("ci", max_examples=200, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("quick", max_examples=20, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

DETECTED = pplx_codec.capabilities()["detected"]


@pytest.fixture(params=DETECTED, ids=[f"isa={name}" for name in DETECTED])
def isa(request):
    """Run the test once with every ISA this CPU supports (serial always)."""
    with pplx_codec.use_isa(request.param):
        assert pplx_codec.capabilities()["active"] == request.param
        yield request.param
