"""The ``pplx-codec`` command: ``info`` and ``bench`` (later issues add more)."""

from __future__ import annotations

import argparse
import platform
import sys
from importlib import metadata

import numpy as np

from . import __version__, capabilities

# peers the bench extra installs, by distribution name
_PEERS = ("pybase64", "numkong", "simsimd", "faiss-cpu", "usearch", "msgspec", "orjson", "perplexityai")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cmd_info(args) -> int:
    caps = capabilities()
    print(f"pplx-codec {__version__}")
    print(f"python {platform.python_version()} ({platform.machine()}, {platform.system()}), numpy {np.__version__}")
    print(f"isa compiled: {', '.join(caps['compiled'])}")
    print(f"isa detected: {', '.join(caps['detected'])}")
    print(f"isa active:   {caps['active']}" + (f" (forced by {caps['forced_by']})" if caps["forced_by"] else ""))
    print("peers: " + ", ".join(f"{d} {_version(d) or '(not installed)'}" for d in _PEERS))
    return 0


def cmd_bench(args) -> int:
    from .benchmarks import families, format_table, run_cases

    fams = families()
    chosen = args.family or list(fams)
    unknown = [f for f in chosen if f not in fams]
    if unknown:
        print(f"unknown benchmark family: {', '.join(unknown)} (known: {', '.join(fams)})", file=sys.stderr)
        return 2
    cases = [c for f in chosen for c in fams[f](quick=args.quick)]
    caps = capabilities()
    print(f"pplx-codec {__version__} bench ({'quick' if args.quick else 'full'}); isa {caps['active']}; "
          f"medians of {'5' if args.quick else '9'} samples; each result checked before timing")
    results = run_cases(cases, quick=args.quick,
                        progress=lambda name: print(f"  running {name} ...", file=sys.stderr, flush=True))
    print(format_table(results))
    missing = sorted({m for c in cases for m in c.missing})
    if missing:
        print(f"\nPeers not installed: {', '.join(missing)}. "
              "Add them with: pip install 'pplx-codec[bench]'")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pplx-codec", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--version", action="version", version=f"pplx-codec {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="versions, instruction sets, installed peers")
    info.set_defaults(func=cmd_info)
    bench = sub.add_parser("bench", help="time our kernels against the peers, in one run, as one table")
    bench.add_argument("--quick", action="store_true", help="fewer, shorter samples (under 30 s)")
    bench.add_argument("--family", action="append", help="only this family (repeatable)")
    bench.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
