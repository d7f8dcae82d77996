"""Every kernel tier checked against the serial one, on any x86-64 machine.

The tiers this CPU lacks cannot run natively here, so the C harness
tests/c/sanitize.c (every table entry and the fused top-k drivers of every
tier it is built with, at awkward sizes, on exact-size buffers) is built
three more ways:

- x86-64 with the AVX2 and AVX-512 intrinsics taken from SIMDe (portable C
  implementations of them; Debian's libsimde-dev), under ASan and UBSan:
  the avx512 kernels' logic, on any x86-64 CPU.
- aarch64, cross-compiled and run under qemu-user: the real NEON and SDOT
  instructions, emulated.  `-cpu max` has dotprod (tiers serial, neon,
  neon_dotprod); `-cpu cortex-a53` (Armv8.0) has not, which checks the
  HWCAP detection too (tiers serial, neon).
- x86-64 with the NEON intrinsics from SIMDe: the same NEON code through a
  second, independent implementation of the intrinsics.

AMX has no emulator; its kernel is checked against a software model of the
tile instructions (here in the SIMDe build, and in depth by
tests/test_c_amx_model.py), and it runs for
real only where the CPU has it (then natively in tests/test_c_sanitize.py and
under the `isa` fixture everywhere).  Speed is not measured here: these
builds only prove the answers.
"""

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import background
from helpers import required_in_ci
from test_c_sanitize import ENV, HARNESS, HEADERS, SANITIZE, _tail

X86_64 = platform.machine().lower() in ("x86_64", "amd64")
SIMDE_HEADER = "simde/x86/avx512.h"
# -Wno-psabi: SIMDe passes 256/512-bit vectors by value in functions built
# without AVX, and GCC notes that this ABI changed in GCC 4.6 (harmless here:
# every such function is static to the one translation unit).
WARN = ["-Wall", "-Wextra", "-Werror", "-Wno-psabi"]
QEMU_LIBS = "/usr/aarch64-linux-gnu"
AMX_MODEL = HARNESS.parent / "amx_model.h"


def _summary(run: subprocess.CompletedProcess) -> list[str]:
    report = f"exit {run.returncode}\nstdout:\n{_tail(run.stdout)}\nstderr:\n{_tail(run.stderr, 80)}"
    assert run.returncode == 0, report
    last = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    m = re.fullmatch(r"sanitize: (\d+) checks, tiers ((?:\w+ ?)+), ok", last)
    assert m, report
    assert int(m.group(1)) > 100_000, report
    return m.group(2).split()


def _build_and_run(build: list[str], runs: list[list[str]], env: dict | None = None):
    """Build, then each run: ("built", build, [runs]) or ("failed", build, [])."""
    b = subprocess.run(build, capture_output=True, text=True, timeout=900)
    if b.returncode != 0:
        return "failed", b, []
    return "built", b, [subprocess.run(r, capture_output=True, text=True, timeout=900, env=env) for r in runs]


def _simde_compiler(tmp: Path):
    """gcc with SIMDe's headers, or ("skip" | "unavailable", reason)."""
    if not X86_64:
        # not a missing tool: on another architecture these builds do not apply
        return "skip", f"the SIMDe builds of the x86 harness need x86-64, this is {platform.machine()}"
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        return "unavailable", "no C compiler (gcc/cc) on PATH"
    probe = tmp / "probe.c"
    probe.write_text(f"#include <{SIMDE_HEADER}>\nint main(void) {{ return 0; }}\n")
    r = subprocess.run([cc, "-fsyntax-only", str(probe)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return "unavailable", f"SIMDe headers not found ({SIMDE_HEADER}; Debian: apt-get install libsimde-dev)"
    return cc


BACKGROUND_JOBS = ("tiers-simde-x86", "tiers-simde-neon", "tiers-aarch64")
AARCH64_CPUS = {"max": ["serial", "neon", "neon_dotprod"], "cortex-a53": ["serial", "neon"]}


# Each build a job started with the session (tests/background.py): they run
# beside the rest of the suite, and these tests, run last, collect them.
@background.job("tiers-simde-x86")
def _simde_x86(tmp: Path):
    cc = _simde_compiler(tmp)
    if isinstance(cc, tuple):
        return cc
    exe = tmp / "tiers-simde-x86"
    return _build_and_run([cc, "-O1", "-g1", "-march=x86-64-v2", "-DPPLX_SIMDE_X86", "-include", str(AMX_MODEL),
                           *SANITIZE, *WARN, f"-I{HEADERS}", str(HARNESS), "-o", str(exe), "-lm"],
                          [[str(exe)]], {**os.environ, **ENV})


@background.job("tiers-simde-neon")
def _simde_neon(tmp: Path):
    cc = _simde_compiler(tmp)
    if isinstance(cc, tuple):
        return cc
    exe = tmp / "tiers-simde-neon"
    return _build_and_run([cc, "-O1", "-g1", "-DPPLX_SIMDE_NEON", *WARN, f"-I{HEADERS}", str(HARNESS),
                           "-o", str(exe), "-lm"], [[str(exe)]])


@background.job("tiers-aarch64")
def _aarch64(tmp: Path):
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "skip", "on an aarch64 machine the neon tiers run natively (tests/test_c_sanitize.py, the isa fixture)"
    cc, qemu = shutil.which("aarch64-linux-gnu-gcc"), shutil.which("qemu-aarch64")
    if not cc or not qemu:
        return "unavailable", ("aarch64-linux-gnu-gcc or qemu-aarch64 not on PATH "
                               "(Debian: gcc-aarch64-linux-gnu, qemu-user)")
    exe = tmp / "tiers-aarch64"
    return _build_and_run([cc, "-O2", "-g1", *WARN, f"-I{HEADERS}", str(HARNESS), "-o", str(exe), "-lm"],
                          [[qemu, "-cpu", cpu, "-L", QEMU_LIBS, str(exe)] for cpu in AARCH64_CPUS])


def _runs(name: str, what: str) -> list[subprocess.CompletedProcess]:
    status, *rest = background.result(name)
    if status == "skip":
        pytest.skip(rest[0])
    if status == "unavailable":
        required_in_ci(what, rest[0])
    b, runs = rest
    assert status == "built", f"{what} does not build cleanly:\n{' '.join(b.args)}\n{_tail(b.stderr)}"
    return runs


def test_avx2_avx512_and_amx_kernels_through_simde_under_sanitizers():
    """The AVX-512 kernels (and the AVX2 ones once more) on a baseline x86-64
    (-march=x86-64-v2: no AVX at all), intrinsics from SIMDe; the amx tier
    too, its tile instructions from the software model of
    tests/c/amx_model.h (so the scans and its hand-off of small query
    groups to the avx512 kernel are checked as dispatch wires them)."""
    (run,) = _runs("tiers-simde-x86", "the SIMDe x86 tier harness")
    assert _summary(run) == ["serial", "avx2", "avx512", "amx"]


def test_neon_kernels_through_simde():
    """The NEON and dotprod kernels compiled for x86-64, intrinsics from SIMDe."""
    (run,) = _runs("tiers-simde-neon", "the SIMDe NEON tier harness")
    assert _summary(run) == ["serial", "neon", "neon_dotprod"]


@pytest.mark.parametrize("cpu", list(AARCH64_CPUS))
def test_neon_kernels_on_emulated_aarch64(cpu):
    """Real NEON/SDOT instructions under qemu; an Armv8.0 core (cortex-a53)
    has no dotprod and the HWCAP check must say so."""
    runs = _runs("tiers-aarch64", "the aarch64 tier harness under qemu")
    assert _summary(runs[list(AARCH64_CPUS).index(cpu)]) == AARCH64_CPUS[cpu]
