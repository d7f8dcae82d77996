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

AMX has no emulator; its kernel's data layout is checked against a software
model of the tile instructions (tests/test_c_amx_model.py), and it runs for
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

from helpers import required_in_ci
from test_c_sanitize import ENV, HARNESS, HEADERS, SANITIZE, _tail

X86_64 = platform.machine().lower() in ("x86_64", "amd64")
SIMDE_HEADER = "simde/x86/avx512.h"
# -Wno-psabi: SIMDe passes 256/512-bit vectors by value in functions built
# without AVX, and GCC notes that this ABI changed in GCC 4.6 (harmless here:
# every such function is static to the one translation unit).
WARN = ["-Wall", "-Wextra", "-Werror", "-Wno-psabi"]
QEMU_LIBS = "/usr/aarch64-linux-gnu"


def _summary(run: subprocess.CompletedProcess) -> list[str]:
    report = f"exit {run.returncode}\nstdout:\n{_tail(run.stdout)}\nstderr:\n{_tail(run.stderr, 80)}"
    assert run.returncode == 0, report
    last = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    m = re.fullmatch(r"sanitize: (\d+) checks, tiers ((?:\w+ ?)+), ok", last)
    assert m, report
    assert int(m.group(1)) > 100_000, report
    return m.group(2).split()


def _build(cmd: list[str], what: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"{what} does not build cleanly:\n{' '.join(cmd)}\n{_tail(r.stderr)}"


def _simde_compiler(tmp_path: Path) -> str:
    if not X86_64:
        pytest.skip(f"the SIMDe builds of the x86 harness need an x86-64 machine, this is {platform.machine()}")
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        required_in_ci("the SIMDe tier harness", "no C compiler (gcc/cc) on PATH")
    probe = tmp_path / "probe.c"
    probe.write_text(f"#include <{SIMDE_HEADER}>\nint main(void) {{ return 0; }}\n")
    r = subprocess.run([cc, "-fsyntax-only", str(probe)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        required_in_ci("the SIMDe tier harness",
                       f"SIMDe headers not found ({SIMDE_HEADER}; Debian: apt-get install libsimde-dev)")
    return cc


def test_avx2_and_avx512_kernels_through_simde_under_sanitizers(tmp_path):
    """The AVX-512 kernels (and the AVX2 ones once more) on a baseline x86-64
    (-march=x86-64-v2: no AVX at all), intrinsics from SIMDe."""
    cc = _simde_compiler(tmp_path)
    exe = tmp_path / "tiers-simde-x86"
    _build([cc, "-O1", "-g1", "-march=x86-64-v2", "-DPPLX_SIMDE_X86", *SANITIZE, *WARN, f"-I{HEADERS}",
            str(HARNESS), "-o", str(exe), "-lm"], "the SIMDe x86 harness")
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=900, env={**os.environ, **ENV})
    assert _summary(run) == ["serial", "avx2", "avx512"]


def test_neon_kernels_through_simde(tmp_path):
    """The NEON and dotprod kernels compiled for x86-64, intrinsics from SIMDe."""
    cc = _simde_compiler(tmp_path)
    exe = tmp_path / "tiers-simde-neon"
    _build([cc, "-O1", "-g1", "-DPPLX_SIMDE_NEON", *WARN, f"-I{HEADERS}", str(HARNESS), "-o", str(exe), "-lm"],
           "the SIMDe NEON harness")
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=900)
    assert _summary(run) == ["serial", "neon", "neon_dotprod"]


@pytest.fixture(scope="module")
def aarch64_harness(tmp_path_factory) -> Path:
    if platform.machine().lower() in ("aarch64", "arm64"):
        pytest.skip("on an aarch64 machine the neon tiers run natively (tests/test_c_sanitize.py and the isa fixture)")
    cc, qemu = shutil.which("aarch64-linux-gnu-gcc"), shutil.which("qemu-aarch64")
    if not cc or not qemu:
        required_in_ci("the aarch64 tier harness under qemu",
                       "aarch64-linux-gnu-gcc or qemu-aarch64 not on PATH (Debian: gcc-aarch64-linux-gnu, qemu-user)")
    exe = tmp_path_factory.mktemp("aarch64") / "tiers-aarch64"
    _build([cc, "-O2", "-g1", *WARN, f"-I{HEADERS}", str(HARNESS), "-o", str(exe), "-lm"],
           "the aarch64 harness")
    return exe


@pytest.mark.parametrize(("cpu", "tiers"), [("max", ["serial", "neon", "neon_dotprod"]),
                                             ("cortex-a53", ["serial", "neon"])])
def test_neon_kernels_on_emulated_aarch64(aarch64_harness, cpu, tiers):
    """Real NEON/SDOT instructions under qemu; an Armv8.0 core (cortex-a53)
    has no dotprod and the HWCAP check must say so."""
    run = subprocess.run(["qemu-aarch64", "-cpu", cpu, "-L", QEMU_LIBS, str(aarch64_harness)],
                         capture_output=True, text=True, timeout=900)
    assert _summary(run) == tiers
