"""``pplx-codec serve``: the local reference server, stopped cleanly by SIGINT or SIGTERM
at any point of its startup (``_stop_signals``)."""

from __future__ import annotations

import argparse
import sys

from ._cli_support import at_least
from ._version import VERSION as __version__

__all__ = ["add_parser", "cmd_serve"]


def cmd_serve(args) -> int:
    from ._stop_signals import StopRequested, stop_signals

    # From here on (so from before the server's imports, a second or more, and the
    # banner line), SIGINT and SIGTERM are one request to stop cleanly, and a clean
    # stop exits 0, whenever the signal lands: what supervisors (systemd, docker,
    # Kubernetes) expect of a stop they asked for.
    try:
        with stop_signals() as stop:
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
                                      cache_bytes=int(args.cache_mb * (1 << 20)), faults=faults,
                                      rpm=args.rpm, request_log=args.request_log,
                                      **({} if args.rpm_burst is None else {"rpm_burst": args.rpm_burst}))
                keys = config.accepted_keys()
                if args.workers < 1:
                    raise ValueError(f"--workers must be >= 1, got {args.workers}")
                stop.check()  # stopped while starting: bind nothing
                if args.fd is not None:
                    import socket
                    sock, where = socket.socket(fileno=args.fd), f"inherited socket fd {args.fd}"
                else:
                    sock = bind(args.host, args.port)
                    where = base_url(sock)
            except (ValueError, TypeError, OSError) as e:
                print(f"pplx-codec serve: {e}", file=sys.stderr)
                return 2
            try:
                if not config.auth and args.fd is None and args.host not in LOOPBACK:
                    print(f"warning: --no-auth on {args.host}: anyone who can reach it can use it", file=sys.stderr)
                faulty = ", faults " + ", ".join(f"{m}={r:g}" for m, r in faults.rates.items()) \
                    if faults.enabled else ""
                print(f"pplx-codec {__version__}: Perplexity Embeddings API on {where} (backend {config.backend}, "
                      f"{args.workers} worker(s), auth {f'{len(keys)} key(s)' if config.auth else 'off'}{faulty})",
                      flush=True)
                serve_socket(config, sock, workers=args.workers, log_level=args.log_level,
                             access_log=not args.no_access_log)
            except (ValueError, RuntimeError) as e:
                print(f"pplx-codec serve: {e}", file=sys.stderr)
                return 1
            finally:
                sock.close()
    except StopRequested:  # before serve_socket took over: nothing was serving yet
        pass
    return 0


def add_parser(sub) -> None:
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
    serve.add_argument("--backend", choices=("static", "hash", "sentence-transformers"), default="static",
                       help="static: the package's static model, all-MiniLM-L6-v2 distilled to token vectors, real "
                            "semantic neighbours with no torch (default); hash: deterministic bag of words, "
                            "close exactly when texts share words; sentence-transformers: a local model (needs "
                            "the model extra and --model-path)")
    serve.add_argument("--model-path", help="directory of a sentence-transformers model (e.g. pplx-embed-v1); "
                                            "with --backend static, a static model in the shipped format")
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
    serve.add_argument("--rpm", type=_positive_number, metavar="N",
                       help="limit each key to N requests per minute, as the service does (a leaky bucket; "
                            "429 with Retry-After beyond it; default: no limit)")
    serve.add_argument("--rpm-burst", type=at_least(1), metavar="B",
                       help="requests a key may send at once under --rpm (the bucket's size; default 5)")
    serve.add_argument("--request-log", metavar="FILE",
                       help="append one JSON line per API request to FILE (time, key hash, path, limited)")
    serve.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    serve.add_argument("--no-access-log", action="store_true", help="do not log each request")
    serve.set_defaults(func=cmd_serve)


def _positive_number(text: str) -> float:
    """An argparse type: a finite number > 0."""
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value
