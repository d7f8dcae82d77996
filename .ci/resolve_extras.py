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
metadata runs setup.py (which cythonizes into the tree), so each set gets its
own copy of the build inputs and a few run at once.

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
NOT_INPUTS = shutil.ignore_patterns("*.so", "*.c", "*.pyd", "__pycache__", "*.egg-info", "build")


def resolve(root: Path, extras: tuple[str, ...]) -> tuple[tuple[str, ...], bool, str, float]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp, "project")
        copy.mkdir()
        for name in BUILD_INPUTS:
            src = root / name
            if src.is_dir():
                shutil.copytree(src, copy / name, ignore=NOT_INPUTS)
            elif src.exists():
                shutil.copy2(src, copy / name)
        report = Path(tmp, "report.json")
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
                            "--disable-pip-version-check", "--report", str(report),
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
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    sets = [(e,) for e in project.get("optional-dependencies", {})] + TOGETHER
    failed = []
    # pip spends much of a resolution waiting on the index: a few at once
    with ThreadPoolExecutor(3) as pool:
        for extras, ok, text, seconds in pool.map(lambda s: resolve(root, s), sets):
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
