"""Types and lint, as CI runs them.

- ``python -m mypy.stubtest pplx_codec``: the ``.pyi`` stubs of the compiled
  modules against the importable build (names, signatures, a stub for every
  module), after type-checking the whole package with pyproject.toml's
  ``[tool.mypy]`` (any error there fails it too).  Only what
  tests/typing/stubtest_allowlist.txt names, with its reason, is let through.
- ``mypy --strict`` on tests/typing/example_usage.py, a program on the public
  API as a user's typed code would be (against the installed package: its
  ``py.typed`` and stubs), which is also run, so that it stays real.
- ``ruff check`` of the source tree (``[tool.ruff]``).

The tools come with the ``test`` extra.  Without one a contributor gets a skip
saying so; CI (``CI`` set) fails instead.  mypy and stubtest run from a
scratch directory, so they see the installed package, never the source tree.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import required_in_ci

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
TYPING = ROOT / "tests" / "typing"
EXAMPLE = TYPING / "example_usage.py"
ALLOWLIST = TYPING / "stubtest_allowlist.txt"


def _python_m(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``python -m ...`` with this interpreter (the venv the package is installed in)."""
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _needs(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        required_in_ci(f"the {module} check", f"{module} is not installed (it comes with pip install '.[test]')")


def _report(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit status {proc.returncode}\n{proc.stdout}{proc.stderr}"


@pytest.fixture(scope="module")
def source_tree() -> Path:
    # the configuration and the code to lint live in the checkout these tests come from
    if not PYPROJECT.is_file():
        required_in_ci("the static checks", f"no pyproject.toml at {ROOT}: the tests are not in a source tree")
    return ROOT


def test_stubs_match_the_build(source_tree, tmp_path):
    _needs("mypy")
    proc = _python_m("mypy.stubtest", "pplx_codec", "--mypy-config-file", str(PYPROJECT),
                     "--allowlist", str(ALLOWLIST), cwd=tmp_path)
    assert proc.returncode == 0, _report(proc)
    assert "Success: no issues found" in proc.stdout, _report(proc)


def test_example_passes_mypy_strict(source_tree, tmp_path):
    _needs("mypy")
    proc = _python_m("mypy", "--strict", "--config-file", str(PYPROJECT), "--cache-dir", str(tmp_path / "cache"),
                     str(EXAMPLE), cwd=tmp_path)
    assert proc.returncode == 0, _report(proc)
    assert proc.stdout.startswith("Success: no issues found in 1 source file"), _report(proc)


def test_example_runs(source_tree, tmp_path):
    # what mypy checked is a working program: the reference server, codecs, search, a store
    proc = subprocess.run([sys.executable, str(EXAMPLE)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, _report(proc)
    assert "4 texts, nearest [0," in proc.stdout, _report(proc)


def test_ruff(source_tree):
    _needs("ruff")
    # --no-cache: nothing written into the checkout
    proc = _python_m("ruff", "check", "--no-cache", "--output-format", "concise", ".", cwd=source_tree)
    assert proc.returncode == 0, _report(proc)
