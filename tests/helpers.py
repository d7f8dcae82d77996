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
