"""Which instruction set the kernels run: report it, force it.

By default each kernel family runs the path measured fastest for it on this
CPU (``_calibrate.py``; ``active`` is then ``"auto"``).  ``PPLX_CODEC_ISA``
(e.g. ``serial``) forces one tier for every family for the whole process (one
it cannot run fails the import, or, in the pplx-codec command, the command:
``apply_env``); ``use_isa`` forces one for a block.  Switching is process-wide
(it swaps one table pointer; a search already running finishes on the table it
started with).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from . import _calibrate, _dispatch, _search

ENV_VAR = "PPLX_CODEC_ISA"
AUTO = _dispatch.AUTO

# How a process is the pplx-codec command: its console script ([project.scripts]
# in pyproject.toml), or `python -m` with one of these modules (the package runs
# its __main__; cli has a main block of its own).
COMMAND = "pplx-codec"
COMMAND_MODULES = ("pplx_codec", "pplx_codec.__main__", "pplx_codec.cli")

# The PPLX_CODEC_ISA error the import kept for the command (apply_env), as the command says it.
_command_refusal: str | None = None


def capabilities() -> dict:
    """``{"compiled": [...], "detected": [...], "opt_in": [...], "active": name, "forced_by": ...,
    "paths": {family: {"path": tier, "why": ...}}, "threads": ...}``.

    compiled: ISAs whose kernels are in this build (x86-64: serial, avx2,
    avx512, amx; aarch64: serial, neon, neon_dotprod); detected: those this
    CPU and OS can run (CPUID plus the XGETBV check of the register state the
    OS enabled; for amx also Linux's grant of tile state; on aarch64 the
    HWCAP bits); opt_in: detected tiers that are not made active by default
    (amx, until its kernels have run on AMX hardware); active: the tier every
    family runs now when one is forced, else ``"auto"``; paths: per kernel
    family (base64, bits, int8, hamming, dot, json), the tier whose code it
    runs and why: ``"forced"`` (``PPLX_CODEC_ISA`` or ``use_isa``),
    ``"measured"`` (the fastest path of several, timed on this CPU model:
    ``_calibrate``) or ``"detected"`` (the best tier CPUID reports: the
    family has one path here, or ``PPLX_CODEC_CALIBRATE=0``); threads: what
    searches with ``threads > 1`` run their parts on, ``"pthreads"`` or
    ``"win32"`` (the build's own threads: no OpenMP runtime is involved).
    """
    active = _dispatch.active()
    state = _calibrate.state()
    measured = (state["record"] or {}).get("families", {})
    paths = {}
    for family, tier in _dispatch.paths().items():
        if active != AUTO:
            why = "forced"
        elif state["why"] == "measured" and len(measured.get(family, {}).get("candidates", ())) > 1:
            why = "measured"
        else:
            why = "detected"
        paths[family] = {"path": tier, "why": why}
    return {
        "compiled": _dispatch.compiled(),
        "detected": _dispatch.detected(),
        "opt_in": _dispatch.opt_in(),
        "active": active,
        "forced_by": f"{ENV_VAR}={os.environ[ENV_VAR]}" if os.environ.get(ENV_VAR) else None,
        "paths": paths,
        "threads": _search.threads_api(),
    }


@contextmanager
def use_isa(name: str):
    """Run the block with the ``name`` kernels for every family: ``"serial"``,
    ``"avx2"``, ``"avx512"``, ``"amx"``, ``"neon"`` or ``"neon_dotprod"``; or
    ``"auto"``, each family on its default path.

    Raises ``ValueError`` for an ISA that is unknown, not compiled, or not
    supported by this CPU.  The previous ISA is restored on exit.
    """
    previous = _dispatch.active()
    _dispatch.set_active(name)
    try:
        yield name
    finally:
        _dispatch.set_active(previous)


def apply_env() -> None:
    """Make the tier named by the environment (``ENV_VAR``) active, or, when none is, choose
    each family's default path (``_calibrate.apply``); called once, at import.

    A tier this build or CPU cannot run fails the import with ``ImportError``:
    a library must not run on another tier than the one it was told.  In the
    pplx-codec command it does not: the command cannot catch an error raised
    while its own package is imported (its console script and ``python -m``
    import the package before any of its code runs), and its rule is one line
    on stderr and exit code 2.  There the import goes on with the default
    tier, and ``cli.main`` refuses every command with ``command_refusal()``
    before anything runs."""
    global _command_refusal
    forced = os.environ.get(ENV_VAR)
    if not forced or forced == AUTO:
        _calibrate.apply()
    if forced:
        try:
            _dispatch.set_active(forced)
        except ValueError as e:
            message = f"{ENV_VAR}={forced!r}: {e}"
            if not _started_as_command():
                raise ImportError(message) from None
            # the command names the tiers this CPU runs, whatever was wrong (the
            # message for an unknown name lists the known ones only)
            available = f"available: {_dispatch.detected()}"
            _command_refusal = message if message.endswith(available) else f"{message}; {available}"


def command_refusal() -> str | None:
    """Why the pplx-codec command must refuse to run: the ``ENV_VAR`` it was
    started with names a tier this build or CPU cannot run (``apply_env``); None
    when it does not, and in any process that is not the command (there the
    import failed instead)."""
    return _command_refusal


def _started_as_command() -> bool:
    """Whether this process is the pplx-codec command, from the interpreter's
    own record of its command line: the console script (``sys.argv[0]``), or
    ``python -m`` with one of ``COMMAND_MODULES``.  (While ``-m`` imports the
    packages of its module, ``sys.argv[0]`` is ``"-m"``, and the module's name
    is in ``sys.orig_argv`` just before the command's own arguments, as ``-m
    NAME`` or ``-mNAME``.)  Anything else, ``python -c``, another ``-m``
    module, a program that imports the package, is not the command."""
    argv = getattr(sys, "argv", None) or [""]
    if argv[0] == "-m":
        orig = sys.orig_argv
        at = len(orig) - len(argv)
        if at < 1:
            return False
        token = orig[at]
        return (token[token.index("m") + 1:] if token.startswith("-") else token) in COMMAND_MODULES
    name = os.path.basename(argv[0])
    return name.removesuffix(".exe").removesuffix("-script.py") == COMMAND
