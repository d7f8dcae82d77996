"""Small assertions shared by the kernel test modules."""

from __future__ import annotations

import re

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
