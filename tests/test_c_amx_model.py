"""The AMX tier's int8 kernel on a software model of the tile instructions.

No machine we test on has AMX, and none has an emulator for it, so
tests/c/amx_model.c compiles codec/simd/dot/amx.h with the tile instructions
replaced by a plain-C model written from Intel's pseudo-code
(tests/c/amx_model.h) and its AVX-512 code on SIMDe, under AddressSanitizer
and UndefinedBehaviorSanitizer, and compares dot_i8_block and the scan
drivers with plain references.  On a machine that does have AMX the `isa`
fixture and tests/test_c_sanitize.py run the real instructions as well.
"""

import os
import platform
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import background
from helpers import required_in_ci

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "tests" / "c" / "amx_model.c"
HEADERS = ROOT / "codec"
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
# SIMDe's 512-bit types are passed by value: -Wno-psabi silences GCC's notes on that ABI.
# PPLX_AMX_MIN_NQ=1: every query count through the tiles (the kernel hands
# groups of fewer than 4 queries to the avx512 kernel, tested on its own).
FLAGS = ["-O1", "-g1", "-DPPLX_SIMDE_X86", "-DPPLX_AMX_MIN_NQ=1", "-Wno-psabi", *SANITIZE,
         "-Wall", "-Wextra", "-Werror"]
if platform.machine().lower() in ("x86_64", "amd64"):
    FLAGS.insert(0, "-march=x86-64-v2")  # SIMDe then runs its 128-bit parts on SSE4.2
ENV = {"ASAN_OPTIONS": "abort_on_error=1", "UBSAN_OPTIONS": "print_stacktrace=1:abort_on_error=1"}


def _unavailable(reason: str) -> NoReturn:
    required_in_ci("the AMX model harness", reason)


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


BACKGROUND_JOBS = ("amx-model",)


@background.job("amx-model")
def _build_and_run(tmp: Path):
    """("unavailable", reason), ("failed", build) or ("ran", run); started with
    the session (tests/background.py), collected by the test at the end."""
    cc = shlex.split(os.environ.get("CC", "")) or [
        shutil.which("cc") or shutil.which("gcc") or shutil.which("clang") or ""]
    if not cc[0] or not shutil.which(cc[0]):
        return "unavailable", "no C compiler on PATH (cc/gcc/clang, or $CC): tests/c/amx_model.c cannot be built"
    (tmp / "p.c").write_text("#include <simde/x86/avx512.h>\nint main(void) { return 0; }\n")
    r = subprocess.run([*cc, *FLAGS, str(tmp / "p.c"), "-o", str(tmp / "p")],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        return "unavailable", (f"{cc[0]} cannot build a SIMDe program with -fsanitize=address,undefined here (SIMDe "
                               f"headers, e.g. libsimde-dev, or the sanitizer runtimes missing): {_tail(r.stderr, 5)}")
    exe = tmp / "amx_model"
    build = subprocess.run([*cc, *FLAGS, f"-I{HEADERS}", str(HARNESS), "-o", str(exe), "-lm"],
                           capture_output=True, text=True, timeout=900)
    if build.returncode != 0:
        return "failed", build
    return "ran", subprocess.run([str(exe)], capture_output=True, text=True, timeout=900, env={**os.environ, **ENV})


def test_amx_kernel_on_the_tile_model():
    status, got = background.result("amx-model")
    if status == "unavailable":
        _unavailable(got)
    assert status == "ran", f"the harness does not build cleanly:\n{_tail(got.stderr)}"
    run = got
    report = f"exit {run.returncode}\nstdout:\n{_tail(run.stdout)}\nstderr:\n{_tail(run.stderr, 80)}"
    assert run.returncode == 0, report
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    m = re.fullmatch(r"amx_model: (\d+) checks, (\d+) TDPBSSD, ok", summary)
    assert m, report
    assert int(m.group(1)) > 50_000 and int(m.group(2)) > 100_000, report
