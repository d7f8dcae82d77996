"""The figure-making scripts in benches/ that pytest does not collect
(dedup_100k.py, static_speed.py) still run and check what they time: each is
run here at a small size, so a change that breaks one fails CI rather than
the next person who measures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHES = Path(__file__).resolve().parent.parent / "benches"


def script(name: str, *args: str, cwd: Path) -> str:
    # the interpreter running the tests, so the scripts import the pplx_codec under test
    done = subprocess.run([sys.executable, str(BENCHES / name), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_dedup_script_finds_the_planted_copies(tmp_path):
    out = script("dedup_100k.py", "--rows", "3000", "--dim", "64", "--repeat", "1", "--dir", str(tmp_path),
                 cwd=tmp_path)
    exact = next(line for line in out.splitlines() if line.startswith("exact:"))
    fast = next(line for line in out.splitlines() if line.startswith("--candidates 10"))
    groups = int(exact.split(";")[1].split()[0].replace(",", ""))
    # 5% of the rows are planted near-copies of another row: about 150 groups
    assert 100 <= groups <= 160, exact
    assert "inside exact groups: True" in fast, fast


def test_dedup_script_store_is_the_documented_one(tmp_path):
    sys.path.insert(0, str(BENCHES))
    try:
        import dedup_100k
    finally:
        sys.path.remove(str(BENCHES))
    from pplx_codec import store as stores

    dedup_100k.make_store(tmp_path / "s", 2000, 256)
    rows = stores.load(tmp_path / "s").int8
    x = rows.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    cos = x @ x.T
    off = cos[np.triu_indices(len(x), 1)]
    # "random rows around a shared direction (cosine ~0.2 between two)": the
    # README's description of the 100k set, which its speed depends on
    assert 0.1 < np.median(off) < 0.3, np.median(off)


def test_static_speed_script_times_the_server_encoder(tmp_path):
    pytest.importorskip("tokenizers", reason="the static backend needs tokenizers (the server extra)")
    out = script("static_speed.py", "--repeat", "1", cwd=tmp_path)
    lines = out.splitlines()
    assert lines[0].startswith("1,532 texts"), out
    rates = [float(line.rsplit(":", 1)[1].split()[0].replace(",", "")) for line in lines[1:]]
    assert len(rates) == 3 and all(r > 0 for r in rates), out


def test_integrations_memory_script(tmp_path):
    pytest.importorskip("langchain_core", reason="the langchain extra is not installed")
    out = script("integrations_memory.py", "--rows", "1500", cwd=tmp_path).splitlines()
    assert [line.split(":")[0] for line in out] == ["ours", "inmemory", "inmemory-distinct"], out
    assert all(line.endswith("top hit is the query's text: True") for line in out), out
