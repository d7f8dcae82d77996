"""Instruction-set reporting and forcing: capabilities(), use_isa(), PPLX_CODEC_ISA."""

import json
import os
import platform
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import pplx_codec as pc
from helpers import required_in_ci

ENV = "PPLX_CODEC_ISA"
DETECTED_AT_START = pc.capabilities()["detected"]
# every ISA the dispatcher has a name for, in its order (baseline first)
KNOWN = ["serial", "avx2", "avx512", "amx", "neon", "neon_dotprod"]
OPT_IN = ["amx"]  # detected but not active by default (kernels not yet run on hardware)


def run_python(code: str, isa_env: str | None):
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if isa_env is not None:
        env[ENV] = isa_env
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


REPORT = """
import json, numpy as np, pplx_codec as pc
caps = pc.capabilities()
caps["decoded"] = pc.b64decode("Zm9vYmFy").tobytes().decode()
caps["packed"] = pc.pack_bits(np.arange(-20, 20, dtype=np.float32)).tolist()
caps["norm"] = float(pc.norms(np.full(2560, -128, np.int8)))
print(json.dumps(caps))
"""
WANT_PACKED = np.packbits(np.arange(-20, 20) > 0, bitorder="little").tolist()


def test_capabilities_keys_and_consistency():
    caps = pc.capabilities()
    # threads: test_threads.py; paths: test_kernel_paths.py
    assert set(caps) == {"compiled", "detected", "opt_in", "active", "forced_by", "paths", "threads"}
    assert caps["opt_in"] == [n for n in caps["detected"] if n in OPT_IN]
    assert isinstance(caps["compiled"], list) and isinstance(caps["detected"], list)
    assert caps["compiled"][0] == caps["detected"][0] == "serial"
    assert set(caps["compiled"]) <= set(KNOWN)
    assert set(caps["detected"]) <= set(caps["compiled"])
    # one tier forced for every family, or each family on its own path (the default)
    assert caps["active"] in caps["detected"] + ["auto"]
    assert (caps["active"] == "auto") == (os.environ.get(ENV, "") in ("", "auto"))
    # baseline first, then in the dispatcher's order, no duplicates
    assert caps["compiled"] == [n for n in KNOWN if n in caps["compiled"]]
    assert caps["detected"] == [n for n in KNOWN if n in caps["detected"]]
    assert caps["forced_by"] == (f"{ENV}={os.environ[ENV]}" if os.environ.get(ENV) else None)


def test_capabilities_returns_fresh_lists():
    caps = pc.capabilities()
    caps["detected"].append("bogus")
    assert "bogus" not in pc.capabilities()["detected"]


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64") or not sys.platform.startswith("linux"),
                    reason="checks AVX2 detection against /proc/cpuinfo on x86-64 Linux")
def test_avx2_detection_agrees_with_the_kernel():
    """The kernel lists avx2 only when the CPU has it and the OS saves YMM state."""
    with open("/proc/cpuinfo") as f:
        flags = next(line for line in f if line.startswith("flags")).split()
    caps = pc.capabilities()
    assert "avx2" in caps["compiled"]
    assert ("avx2" in caps["detected"]) == ("avx2" in flags and "avx" in flags and "popcnt" in flags)


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64") or not sys.platform.startswith("linux"),
                    reason="checks AVX-512 and AMX detection against /proc/cpuinfo on x86-64 Linux")
def test_avx512_and_amx_detection_agree_with_the_kernel():
    """The kernel lists a flag only when the CPU has it and the OS enabled its
    register state (it clears avx512* when XCR0 lacks the ZMM state, and
    amx* when it lacks tile data)."""
    with open("/proc/cpuinfo") as f:
        flags = set(next(line for line in f if line.startswith("flags")).split())
    caps = pc.capabilities()
    assert "avx512" in caps["compiled"]
    avx512 = {"avx2", "bmi2", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vpopcntdq", "avx512_vnni",
              "avx512vbmi"} <= flags
    assert ("avx512" in caps["detected"]) == avx512, sorted(f for f in flags if "avx512" in f)
    # amx also needs Linux to grant tile data (arch_prctl); the flags say the CPU and kernel support it
    if "amx" in caps["compiled"]:
        assert ("amx" in caps["detected"]) <= (avx512 and {"amx_tile", "amx_int8"} <= flags)


def test_default_is_each_familys_own_path():
    """Not forced, every family runs one of its paths here (which one: test_kernel_paths.py)."""
    r = run_python(REPORT, None)
    assert r.returncode == 0, r.stderr
    caps = json.loads(r.stdout)
    assert caps["active"] == "auto" and caps["forced_by"] is None
    best = [n for n in pc.capabilities()["detected"] if n not in OPT_IN][-1]
    from pplx_codec import _dispatch

    assert set(caps["paths"]) == set(_dispatch.FAMILIES)
    for family, entry in caps["paths"].items():
        assert entry["path"] in _dispatch.candidates(family), (family, entry)
        # the candidates are the tiers up to the best one CPUID reports, each named by the code it runs
        assert _dispatch.candidates(family)[-1] == _dispatch.paths(best)[family]
    assert caps["decoded"] == "foobar" and caps["packed"] == WANT_PACKED


def test_empty_env_var_means_not_forced():
    r = run_python(REPORT, "")
    assert r.returncode == 0, r.stderr
    caps = json.loads(r.stdout)
    assert caps["active"] == "auto"
    assert caps["forced_by"] is None


@pytest.mark.parametrize("name", pc.capabilities()["detected"])
def test_env_var_forces_isa_for_the_process(name):
    r = run_python(REPORT, name)
    assert r.returncode == 0, r.stderr
    caps = json.loads(r.stdout)
    assert caps["active"] == name
    assert caps["forced_by"] == f"{ENV}={name}"
    from pplx_codec import _dispatch

    assert {f: e["path"] for f, e in caps["paths"].items()} == _dispatch.paths(name)
    assert {e["why"] for e in caps["paths"].values()} == {"forced"}
    assert caps["decoded"] == "foobar"
    assert caps["packed"] == WANT_PACKED
    assert caps["norm"] == float(np.float32(np.sqrt(2560 * 16384)))


@pytest.mark.parametrize("bogus", ["bogus", "SERIAL", "avx1024", " serial"])
def test_env_var_unknown_isa_fails_import(bogus):
    r = run_python("import pplx_codec", bogus)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last == f"ImportError: {ENV}={bogus!r}: unknown ISA {bogus!r}; known: {KNOWN} or 'auto'", r.stderr


def test_use_isa_switches_and_restores():
    before = pc.capabilities()["active"]
    for name in pc.capabilities()["detected"]:
        with pc.use_isa(name) as got:
            assert got == name
            assert pc.capabilities()["active"] == name
            assert pc.b64decode("Zm9v").tobytes() == b"foo"
        assert pc.capabilities()["active"] == before


def test_use_isa_nests():
    detected = pc.capabilities()["detected"]
    outer, inner = detected[-1], detected[0]
    before = pc.capabilities()["active"]
    with pc.use_isa(outer):
        with pc.use_isa(inner):
            assert pc.capabilities()["active"] == inner
        assert pc.capabilities()["active"] == outer
    assert pc.capabilities()["active"] == before


def test_use_isa_restores_on_exception():
    before = pc.capabilities()["active"]
    for name in pc.capabilities()["detected"]:
        with pytest.raises(KeyError, match="boom"):
            with pc.use_isa(name):
                assert pc.capabilities()["active"] == name
                raise KeyError("boom")
        assert pc.capabilities()["active"] == before
    with pytest.raises(ValueError, match="invalid base64"):  # an error from a kernel itself
        with pc.use_isa("serial"):
            pc.b64decode("Zm9!")
    assert pc.capabilities()["active"] == before


@pytest.mark.parametrize("name", ["nope", "", "AVX2", "sse2", "sve"])
def test_use_isa_unknown(name):
    before = pc.capabilities()["active"]
    with pytest.raises(ValueError, match="^" + re.escape(f"unknown ISA {name!r}; known: {KNOWN} or 'auto'") + "$"):
        with pc.use_isa(name):
            pytest.fail("the block must not run")
    assert pc.capabilities()["active"] == before


@pytest.mark.parametrize("name", [n for n in KNOWN if n != "serial"])
def test_use_isa_not_detected(name):
    """An ISA the CPU lacks is refused; on a CPU that has it, the hook hides it."""
    from pplx_codec import _dispatch

    before = pc.capabilities()["active"]
    mask = _dispatch._simulate_cpu_without(name) if name in pc.capabilities()["detected"] else None
    try:
        assert name not in pc.capabilities()["detected"]
        with pytest.raises(ValueError, match=f"^ISA {name!r} is not (compiled into this build|supported by this CPU)"):
            with pc.use_isa(name):
                pytest.fail("the block must not run")
        assert pc.capabilities()["active"] == before
    finally:
        if mask is not None:
            _dispatch._restore_detected(mask)
    assert pc.capabilities()["detected"] == DETECTED_AT_START


def test_isa_fixture_activates_each_isa(isa):
    assert pc.capabilities()["active"] == isa


# ---------------------------------------------------------------- the pplx-codec command (issue 22)
#
# An unusable PPLX_CODEC_ISA fails a library's import (above), but the command
# says it in one line on stderr, exit code 2, for every command, `info`
# included, however it is started; --help and --version still answer.

def console_script() -> str:
    """The pplx-codec console script installed beside this interpreter (what users run)."""
    path = shutil.which("pplx-codec", path=os.path.dirname(sys.executable))
    if path is None:
        required_in_ci("the pplx-codec console script", f"no pplx-codec beside {sys.executable} (not installed)")
    return path


LAUNCHERS = {  # every way the command starts
    "console-script": lambda: [console_script()],
    "python-m": lambda: [sys.executable, "-m", "pplx_codec"],
    "python-mNAME": lambda: [sys.executable, "-mpplx_codec"],
    "python-m-cli": lambda: [sys.executable, "-m", "pplx_codec.cli"],
}


def run_command(launcher: str, args: list[str], isa_env: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (ENV, "PERPLEXITY_API_KEY", "PPLX_API_KEY")}
    if isa_env is not None:
        env[ENV] = isa_env
    return subprocess.run(LAUNCHERS[launcher]() + args, env=env, capture_output=True, text=True, timeout=120)


def unusable_tiers() -> list[tuple[str, str]]:
    """(name, why set_active refuses it) for an unknown name, a tier not compiled
    in, and each tier compiled in that this CPU lacks (amx on most)."""
    compiled = pc.capabilities()["compiled"]
    cases = [("bogus", f"unknown ISA 'bogus'; known: {KNOWN} or 'auto'")]
    cases += [(n, f"ISA {n!r} is not compiled into this build") for n in KNOWN if n not in compiled][:1]
    cases += [(n, f"ISA {n!r} is not supported by this CPU") for n in compiled if n not in DETECTED_AT_START]
    return cases


UNUSABLE = unusable_tiers()


def refusal(command: str, name: str, why: str) -> str:
    """The one line: the command, the variable, why, and the tiers this CPU runs."""
    return f"pplx-codec {command}: {ENV}={name!r}: {why}; available: {DETECTED_AT_START}"


@pytest.mark.parametrize("launcher", LAUNCHERS)
@pytest.mark.parametrize(("name", "why"), UNUSABLE, ids=[n for n, _ in UNUSABLE])
def test_command_with_an_unusable_isa_says_it_in_one_line(launcher, name, why):
    """`PPLX_CODEC_ISA=amx pplx-codec info` on a CPU without AMX (issue 22: a
    traceback, exit code 1): one line naming the tiers this CPU runs, exit 2."""
    r = run_command(launcher, ["info"], name)
    assert (r.returncode, r.stderr, r.stdout) == (2, refusal("info", name, why) + "\n", ""), r.stderr


COMMANDS = [["search", "/nonexistent/store", "q"], ["embed", "/nonexistent/texts.txt", "--out", "/nonexistent/out"],
            ["dedup", "/nonexistent/store"], ["bench", "--quick"], ["serve", "--port", "0"]]


@pytest.mark.parametrize("args", COMMANDS, ids=[a[0] for a in COMMANDS])
def test_every_command_refuses_before_it_runs(args):
    """No command starts (a benchmark, a server) on another tier than it was told."""
    name, why = UNUSABLE[0]
    r = run_command("console-script", args, name)
    assert (r.returncode, r.stderr, r.stdout) == (2, refusal(args[0], name, why) + "\n", ""), r.stderr


@pytest.mark.parametrize("launcher", ["console-script", "python-m"])
def test_help_and_version_answer_whatever_the_isa(launcher):
    """They run no kernel: --help prints the help, --version the version, exit 0."""
    name = UNUSABLE[-1][0]
    r = run_command(launcher, ["--help"], name)
    assert r.returncode == 0 and r.stdout.startswith("usage: pplx-codec") and r.stderr == "", r.stderr
    r = run_command(launcher, ["info", "--help"], name)
    assert r.returncode == 0 and r.stdout.startswith("usage: pplx-codec info") and r.stderr == "", r.stderr
    r = run_command(launcher, ["--version"], name)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"pplx-codec {pc.__version__}\n", "")


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_command_runs_the_tier_it_is_told(launcher):
    name = DETECTED_AT_START[0]
    r = run_command(launcher, ["info"], name)
    assert r.returncode == 0, r.stderr
    assert f"isa active:   {name} (forced by {ENV}={name})" in r.stdout.splitlines()


@pytest.mark.parametrize("argv", [["-c", "import pplx_codec"], ["-m", "pplx_codec.b64"], ["-m", "pplx_codec.errors"],
                                  ["-c", "import pplx_codec.cli"]],
                         ids=["import", "-m-another-module", "-m-errors", "import-cli"])
def test_anything_but_the_command_still_fails_import(argv):
    """Only the command defers the error: a program importing the package, or
    running another of its modules, fails loudly, as a library import must."""
    name, why = UNUSABLE[0]
    env = {k: v for k, v in os.environ.items() if k != ENV} | {ENV: name}
    r = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == f"ImportError: {ENV}={name!r}: {why}", r.stderr
