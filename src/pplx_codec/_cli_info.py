"""What ``pplx-codec info`` says about the kernels' paths: per family, the tier whose code runs
and why (forced, measured, detected), and how the measured choice was made."""

from __future__ import annotations

from . import _calibrate
from ._isa import AUTO, ENV_VAR, capabilities, use_isa

_WHY = {
    "forced": "forced",
    "measured": "measured fastest here",
    "detected": "the best tier CPUID reports",
}


def recalibrate() -> None:
    """Measure the default paths again and rewrite the cache (``pplx-codec info --calibrate``).
    The default table is what is measured, so it is made active for the measurement whatever
    ``PPLX_CODEC_ISA`` forced, and put back after."""
    with use_isa(AUTO):
        _calibrate.apply(force=True)


def path_lines() -> list[str]:
    """The lines of ``info`` on the kernel paths, under its ``isa active`` line."""
    caps = capabilities()
    state = _calibrate.state()
    record = state["record"] or {}
    lines = []
    if caps["active"] != AUTO:
        lines.append(f"kernel paths: every family on {caps['active']} "
                     f"(forced{' by ' + caps['forced_by'] if caps['forced_by'] else ''}; 'auto' is the default)")
    elif state["why"] == "measured":
        lines.append(f"kernel paths: each family on its fastest path, measured on this CPU model in "
                     f"{record['seconds'] * 1e3:.1f} ms ({record['rounds']} rounds); {state['source']}")
        if state["cache_error"]:
            lines.append(f"              not cached ({state['cache_error']}): the next process measures again")
    else:
        lines.append(f"kernel paths: the best tier CPUID reports for every family (not measured: {state['source']})")
    for family, entry in caps["paths"].items():
        measured = record.get("families", {}).get(family, {})
        others = [f"{p} {r:.2f}x" for p, r in sorted(measured.get("relative", {}).items(), key=lambda x: x[1])
                  if p != entry["path"]] if caps["active"] == AUTO else []
        note = f" (time relative to it: {', '.join(others)})" if others else ""
        lines.append(f"  {family:<8} {entry['path']:<13} {_WHY[entry['why']]}{note}")
    if caps["active"] == AUTO:
        lines.append(f"  ({ENV_VAR}=TIER forces one tier for every family; {_calibrate.ENV_CALIBRATE}=0 turns the "
                     f"measurement off; 'pplx-codec info --calibrate' measures again)")
    return lines
