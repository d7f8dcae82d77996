"""CI's first step: resolve every extra of pyproject.toml as a fresh install would.

For each extra alone, and for the sets CI and the README install together,
`pip install --dry-run --ignore-installed --report` resolves ``.[extras]`` (the
project itself, as the README's lines name it) and this prints the versions pip
chose.  A set that does not resolve is named as a resolver failure with pip's
own words, before anything is built: a pair of packages released together that
lags on the index (dask 2026.11.0 pinning a distributed the index did not have
yet, issue 21) fails here, not twenty minutes into CI.

The project is resolved as itself, not as its list of requirements: pip's
backtracking depends on the order it meets requirements in, and the list
alone resolved a set that failed as ``.[test,bench]``.  Getting the project's
metadata runs setup.py, which cythonizes into the tree: the first set is
resolved in a copy of the build inputs, which leaves the generated C there,
and the others, a few at once, each in a copy of that one (Cython skips C
that is newer than its sources).  The build requirements ([build-system])
are installed once into this interpreter's environment and the metadata is
built without isolation: a fresh isolated build environment per set was
most of the time.  (Runtime dependencies are resolved the same either way.)

usage: python .ci/resolve_extras.py [PROJECT_DIR]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import tomllib

# what is installed together, beyond each extra alone: the README's second line, CI's
# MiniLM run on top of it
TOGETHER = [("test", "bench"), ("test", "bench", "model")]
# what setup.py and the metadata need (no build products, no tests)
BUILD_INPUTS = ["pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE", "src", "codec"]
NOT_INPUTS = shutil.ignore_patterns("*.so", "*.pyd", "__pycache__", "*.egg-info", "build")


def copy_inputs(root: Path, to: Path) -> None:
    """The build inputs of `root` into `to`, timestamps kept (Cython compares them)."""
    to.mkdir()
    for name in BUILD_INPUTS:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, to / name, ignore=NOT_INPUTS)
        elif src.exists():
            shutil.copy2(src, to / name)


def resolve(root: Path, extras: tuple[str, ...], in_copy: bool = True) -> tuple[tuple[str, ...], bool, str, float]:
    """Resolve `root[extras]`, in a copy of `root`'s build inputs unless `in_copy` is false."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp, "project") if in_copy else root
        if in_copy:
            copy_inputs(root, copy)
        report = Path(tmp, "report.json")
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
                            "--no-build-isolation", "--disable-pip-version-check", "--report", str(report),
                            f"{copy}[{','.join(extras)}]"],
                           capture_output=True, text=True)
        seconds = time.monotonic() - started
        if r.returncode != 0:
            # which packages pip backtracked over (its INFO lines), then how it ended
            said = (r.stdout + r.stderr).splitlines()
            backtracked = list(dict.fromkeys(ln for ln in said if ln.startswith("INFO: pip is looking at")))
            errors = [ln for ln in r.stderr.splitlines() if not ln.startswith(("WARNING: Location", "INFO: "))]
            return extras, False, "\n".join(backtracked + ["..."] + errors[-12:]), seconds
        chosen = sorted((i["metadata"]["name"], i["metadata"]["version"])
                        for i in json.loads(report.read_text())["install"] if not i.get("is_direct"))
    return extras, True, ", ".join(f"{n}=={v}" for n, v in chosen), seconds


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    project = pyproject["project"]
    build = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                            *pyproject["build-system"]["requires"]], capture_output=True, text=True)
    if build.returncode != 0:
        print(f"resolve: the build requirements do not install: {build.stderr.strip()}")
        return 1
    sets = [(e,) for e in project.get("optional-dependencies", {})] + TOGETHER
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        seed = Path(tmp, "seed")
        copy_inputs(root, seed)
        first = resolve(seed, sets[0], in_copy=False)  # cythonizes in the seed: the copies start from its C
        # pip spends much of a resolution waiting on the index: a few at once
        with ThreadPoolExecutor(3) as pool:
            results = [first, *pool.map(lambda s: resolve(seed, s), sets[1:])]
    for extras, ok, text, seconds in results:
        label = ",".join(extras)
        if ok:
            print(f"resolve [{label}] ({seconds:.0f} s): {text}")
        else:
            failed.append(label)
            print(f"resolve [{label}]: RESOLVER FAILURE ({seconds:.0f} s): pip could not find versions that "
                  f"install together:\n{text}")
    if failed:
        print(f"resolve: {len(failed)} of {len(sets)} sets of extras do not install on a fresh machine: "
              f"{'; '.join(failed)}")
        return 1
    print(f"resolve: all {len(sets)} sets of extras resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
