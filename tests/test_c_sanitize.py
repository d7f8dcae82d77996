"""The C kernels under AddressSanitizer and UndefinedBehaviorSanitizer.

tests/c/sanitize.c calls every kernel of every tier this CPU runs, and the
fused top-k drivers, at awkward sizes (zero included) on buffers of exactly
the size a kernel may touch, and compares every tier with the serial one and
the serial one with a plain reference.  Built here with the system compiler,
so the README's test command covers it; a sanitizer finding fails the test
with the sanitizer's report and the case that triggered it.
"""

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

import pplx_codec as pc
from helpers import required_in_ci

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "tests" / "c" / "sanitize.c"
HEADERS = ROOT / "codec"
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
# -g1 (line tables) names file:line in every report at half the build time of -g.
FLAGS = ["-O1", "-g1", *SANITIZE, "-Wall", "-Wextra", "-Werror"]
ENV = {
    # Abort (rather than exit) on a finding, so the harness's SIGABRT handler
    # can name the case.  Leak checking stays at its platform default (on for
    # Linux, where it checks the drivers free their scratch tile; setting it
    # explicitly is a fatal error where LeakSanitizer does not exist).
    "ASAN_OPTIONS": "abort_on_error=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:abort_on_error=1",
}


def _unavailable(reason: str) -> NoReturn:
    required_in_ci("the sanitizer harness", reason)


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="module")
def compiler(tmp_path_factory) -> list[str]:
    cc = shlex.split(os.environ.get("CC", "")) or [
        shutil.which("cc") or shutil.which("gcc") or shutil.which("clang") or ""]
    if not cc[0] or not shutil.which(cc[0]):
        _unavailable("no C compiler on PATH (cc/gcc/clang, or $CC): the sanitizer harness tests/c/sanitize.c "
                    "cannot be built")
    # A compiler without the sanitizer runtimes (libasan/libubsan not
    # installed) cannot run this test at all; say so instead of failing on it.
    probe = tmp_path_factory.mktemp("probe")
    (probe / "p.c").write_text("int main(void) { return 0; }\n")
    r = subprocess.run([*cc, *SANITIZE, str(probe / "p.c"), "-o", str(probe / "p")],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        _unavailable(f"{cc[0]} cannot build with -fsanitize=address,undefined here: {_tail(r.stderr, 5)}")
    return cc


def test_kernels_under_asan_and_ubsan(compiler, tmp_path):
    exe = tmp_path / "sanitize"
    build = subprocess.run([*compiler, *FLAGS, f"-I{HEADERS}", str(HARNESS), "-o", str(exe), "-lm"],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, f"the harness does not build cleanly:\n{_tail(build.stderr)}"
    env = {**os.environ, **ENV}
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600, env=env)
    report = f"exit {run.returncode}\nstdout:\n{_tail(run.stdout)}\nstderr:\n{_tail(run.stderr, 80)}"
    assert run.returncode == 0, report
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    m = re.fullmatch(r"sanitize: (\d+) checks, tiers ((?:\w+ ?)+), ok", summary)
    assert m, report
    assert int(m.group(1)) > 100_000, report
    # The harness ran every tier the extension itself detects (the same cpu.h
    # test): on an AVX2 machine the AVX2 kernels were exercised, not skipped.
    assert m.group(2).split() == pc.capabilities()["detected"], report
