"""Which instruction set the kernels run: report it, force it.

The best ISA the CPU supports is active after import.  ``PPLX_CODEC_ISA``
(e.g. ``serial``) forces one for the whole process; ``use_isa`` forces one
for a block.  Switching is process-wide (it swaps one table pointer), so do
not switch while other threads are running kernels.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from . import _dispatch, _search

ENV_VAR = "PPLX_CODEC_ISA"


def capabilities() -> dict:
    """``{"compiled": [...], "detected": [...], "opt_in": [...], "active": name, "forced_by": ..., "threads": ...}``.

    compiled: ISAs whose kernels are in this build (x86-64: serial, avx2,
    avx512, amx; aarch64: serial, neon, neon_dotprod); detected: those this
    CPU and OS can run (CPUID plus the XGETBV check of the register state the
    OS enabled; for amx also Linux's grant of tile state; on aarch64 the
    HWCAP bits); opt_in: detected tiers that are not made active by default
    (amx, until its kernels have run on AMX hardware); active: the one in use
    now, by default the best detected tier not in opt_in; threads: what searches with ``threads > 1``
    run their parts on, ``"pthreads"`` or ``"win32"`` (the build's own
    threads: no OpenMP runtime is involved).
    """
    return {
        "compiled": _dispatch.compiled(),
        "detected": _dispatch.detected(),
        "opt_in": _dispatch.opt_in(),
        "active": _dispatch.active(),
        "forced_by": f"{ENV_VAR}={os.environ[ENV_VAR]}" if os.environ.get(ENV_VAR) else None,
        "threads": _search.threads_api(),
    }


@contextmanager
def use_isa(name: str):
    """Run the block with the ``name`` kernels: ``"serial"``, ``"avx2"``,
    ``"avx512"``, ``"amx"``, ``"neon"`` or ``"neon_dotprod"``.

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
    """Make the tier named by the environment (``ENV_VAR``) active; called once, at import."""
    forced = os.environ.get(ENV_VAR)
    if forced:
        try:
            _dispatch.set_active(forced)
        except ValueError as e:
            raise ImportError(f"{ENV_VAR}={forced!r}: {e}") from None
