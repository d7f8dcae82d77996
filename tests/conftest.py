import atexit
import os
import shutil
import tempfile

# The kernels' measured default paths are cached in the user's cache directory
# (pplx_codec._calibrate); the tests measure into a directory of their own, set
# before the first import of the package (every subprocess inherits it), so a
# test run neither reads nor leaves a choice in the home directory.
if not os.environ.get("PPLX_CODEC_CACHE_DIR"):
    os.environ["PPLX_CODEC_CACHE_DIR"] = tempfile.mkdtemp(prefix="pplx-codec-cache-")
    atexit.register(shutil.rmtree, os.environ["PPLX_CODEC_CACHE_DIR"], True)

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

import background  # noqa: E402
import pplx_codec  # noqa: E402

# the session's one PostgreSQL + pgvector server (fixtures `postgres`, `pg_table`), started on first use
pytest_plugins = ("pg_support",)

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

_CAPS = pplx_codec.capabilities()
COMPILED, DETECTED = _CAPS["compiled"], _CAPS["detected"]


@pytest.fixture(params=COMPILED, ids=[f"isa={name}" for name in COMPILED])
def isa(request):
    """Run the test once with every ISA this CPU supports (serial always).
    A tier compiled into the build that this CPU lacks is a skip that says
    so (never a silent pass): its kernels are checked against the serial ones
    by tests/test_c_tiers.py (SIMDe on x86-64, qemu-aarch64 for Arm)."""
    if request.param not in DETECTED:
        pytest.skip(f"isa={request.param}: not supported by this CPU (detected: {', '.join(DETECTED)}); "
                    "its kernels run in the C harnesses instead "
                    "(tests/test_c_tiers.py; amx: tests/test_c_amx_model.py)")
    with pplx_codec.use_isa(request.param):
        assert pplx_codec.capabilities()["active"] == request.param
        yield request.param


def pytest_collection_modifyitems(session, config, items):
    """The tests that wait on background builds (tests/background.py) run
    last, so their builds overlap the rest of the suite."""
    items.sort(key=lambda item: item.path.name in background.MODULES)


def pytest_collection_finish(session):
    """Start the background builds of the tests that were selected."""
    if session.config.option.collectonly:
        return
    for item in session.items:
        if item.path.name in background.MODULES:
            for name in getattr(item.module, "BACKGROUND_JOBS", ()):
                background.start(name)
