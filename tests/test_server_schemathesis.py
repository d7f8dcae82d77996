"""schemathesis against the seed spec (the unmodified copy in tests/data), not
the server's own schema: every check, positive and negative data, with the
missing-key cases schemathesis derives from the spec's HTTPBearer security.
The hooks in server_schemathesis_hooks.py drop only the two failures that
come from what the spec states in prose alone."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from pplx_codec.server import running
from server_support import KEY, SPEC_PATH

TESTS = Path(__file__).parent


def schemathesis(url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SCHEMATHESIS_HOOKS="server_schemathesis_hooks", PPLX_CODEC_TEST_KEY=KEY,
               PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
               NO_COLOR="1")
    cmd = [sys.executable, "-m", "schemathesis.cli", "run", str(SPEC_PATH), "--url", url,
           "-H", f"Authorization: Bearer {KEY}", "--checks", "all", "--seed", "1", "--workers", "1", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_schemathesis_finds_nothing(tmp_path):
    with running(api_keys=[KEY]) as url:
        run = schemathesis(url, tmp_path, "--max-examples", "80")
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "No issues found" in out, out
    generated = int(re.search(r"(\d+) generated", out).group(1))
    assert generated >= 100, out  # coverage and fuzzing phases both ran


def test_schemathesis_would_catch_a_broken_server(tmp_path):
    # the same harness against a server answering 500 to everything must fail,
    # so the run above passing means something
    with running(api_keys=[KEY], faults={"500": 1.0}) as url:
        run = schemathesis(url, tmp_path, "--max-examples", "5", "--phases", "fuzzing")
    out = run.stdout + run.stderr
    assert run.returncode != 0 and "Server error" in out, out
