"""The ``pplx-codec`` command: ``info``, ``bench`` and ``serve`` (later issues add more)."""

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


def cmd_serve(args) -> int:
    try:
        from .server.config import DEFAULT_MAX_BODY_BYTES, ServerConfig
        from .server.faults import FaultConfig
        from .server.runner import LOOPBACK, base_url, bind, serve_socket
    except ImportError as e:
        print(f"pplx-codec serve needs the server extra ({e.name} is missing): "
              "pip install 'pplx-codec[server]'", file=sys.stderr)
        return 2
    try:
        faults = FaultConfig.parse(args.fault or [], seed=args.fault_seed, retry_after=args.retry_after,
                                   slow_seconds=args.slow_seconds)
        config = ServerConfig(backend=args.backend, model_path=args.model_path,
                              trust_remote_code=args.trust_remote_code, output_scale=args.output_scale,
                              tokenizer=args.tokenizer, api_keys=args.api_key or (), auth=not args.no_auth,
                              max_body_bytes=args.max_body_bytes or DEFAULT_MAX_BODY_BYTES,
                              cache_bytes=int(args.cache_mb * (1 << 20)), faults=faults)
        keys = config.accepted_keys()
        if args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        if args.fd is not None:
            import socket
            sock, where = socket.socket(fileno=args.fd), f"inherited socket fd {args.fd}"
        else:
            sock = bind(args.host, args.port)
            where = base_url(sock)
    except (ValueError, TypeError, OSError) as e:
        print(f"pplx-codec serve: {e}", file=sys.stderr)
        return 2
    if not config.auth and args.fd is None and args.host not in LOOPBACK:
        print(f"warning: --no-auth on {args.host}: anyone who can reach it can use it", file=sys.stderr)
    print(f"pplx-codec {__version__}: Perplexity Embeddings API on {where} (backend {config.backend}, "
          f"{args.workers} worker(s), auth {f'{len(keys)} key(s)' if config.auth else 'off'}"
          f"{', faults ' + ', '.join(f'{m}={r:g}' for m, r in faults.rates.items()) if faults.enabled else ''})",
          flush=True)
    try:
        serve_socket(config, sock, workers=args.workers, log_level=args.log_level, access_log=not args.no_access_log)
    except KeyboardInterrupt:  # uvicorn shuts down gracefully, then re-raises Ctrl-C
        return 130
    except (ValueError, RuntimeError) as e:
        print(f"pplx-codec serve: {e}", file=sys.stderr)
        return 1
    finally:
        sock.close()
    return 0


def _add_serve(sub) -> None:
    # nothing from .server here: the CLI must work without the server extra
    serve = sub.add_parser(
        "serve", help="run the local reference server (the Embeddings API on loopback)",
        description="Serve POST /v1/embeddings and /v1/contextualizedembeddings as the Perplexity API does "
                    "(needs the server extra).  API keys come from --api-key and PPLX_CODEC_SERVER_KEYS "
                    "(comma-separated); one of them, or --no-auth, is required.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--fd", type=int, help="serve on an inherited listening socket instead (socket activation)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument("--backend", choices=("hash", "sentence-transformers"), default="hash",
                       help="hash: deterministic, no dependencies (default); sentence-transformers: a local "
                            "model (needs the model extra and --model-path)")
    serve.add_argument("--model-path", help="directory of a sentence-transformers model (e.g. pplx-embed-v1)")
    serve.add_argument("--trust-remote-code", action="store_true",
                       help="allow the model directory's own Python code (the pplx-embed weights need it)")
    serve.add_argument("--output-scale", type=float, default=1.0,
                       help="multiply model vectors by this before quantizing (default 1)")
    serve.add_argument("--tokenizer", help="tokenizer.json for exact token counts (default: the model's own, "
                                           "else a documented estimate)")
    serve.add_argument("--api-key", action="append", metavar="KEY", help="accepted bearer token (repeatable)")
    serve.add_argument("--no-auth", action="store_true", help="accept requests without a key")
    serve.add_argument("--max-body-bytes", type=int, help="request body limit (default 16 MiB)")
    serve.add_argument("--cache-mb", type=float, default=64,
                       help="memory for remembered rows and token counts of repeated texts (default 64; 0: off)")
    serve.add_argument("--fault", action="append", metavar="MODE=RATE",
                       help="inject a fault into this fraction of requests; MODE is 429, 500, 503, drop, slow "
                            "or shuffle (repeatable; rates add up to at most 1)")
    serve.add_argument("--fault-seed", type=int, default=0, help="seed of the fault draws (default 0)")
    serve.add_argument("--retry-after", type=float, default=1.0, help="Retry-After of 429/503 faults, seconds")
    serve.add_argument("--slow-seconds", type=float, default=2.0, help="how long a slow-fault body takes")
    serve.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    serve.add_argument("--no-access-log", action="store_true", help="do not log each request")
    serve.set_defaults(func=cmd_serve)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pplx-codec", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--version", action="version", version=f"pplx-codec {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="versions, instruction sets, installed peers")
    info.set_defaults(func=cmd_info)
    bench = sub.add_parser("bench", help="time our kernels against the peers, in one run, as one table")
    bench.add_argument("--quick", action="store_true", help="fewer, shorter samples (about a minute for all families)")
    bench.add_argument("--family", action="append", help="only this family (repeatable)")
    bench.set_defaults(func=cmd_bench)
    _add_serve(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
