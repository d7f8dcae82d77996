"""The ``pplx-codec`` command: ``embed``, ``search``, ``dedup``, ``serve``, ``bench`` and ``info``.

``embed`` and ``search`` talk to the real API when PERPLEXITY_API_KEY (or
``--api-key``) or ``--base-url`` is given; otherwise they start the local
reference server in-process (the embedded default) and say so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sys
from contextlib import contextmanager

import numpy as np

from . import _cli_dedup, _cli_export, _cli_info, _cli_serve, _cli_support, _dispatch
from ._cli_support import Refused as _Refused  # shared by every command, under the names they had here
from ._cli_support import at_least as _at_least
from ._cli_support import refusing as _refusing
from ._isa import AUTO, capabilities, command_refusal
from ._version import VERSION as __version__
from ._version import dist_version
from .constants import (
    API_BITORDER,
    BITORDERS,
    DEFAULT_BASE_URL,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MODEL,
    EMBED_CHUNK,
    EMBEDDING_MODELS,
)
from .corpus import QUERY_FORMATS
from .settings import ENCODING_NAMES

# peers the bench extra installs, by distribution name
_PEERS = ("pybase64", "numkong", "simsimd", "faiss-cpu", "usearch", "msgspec", "orjson", "perplexityai",
          "langchain-perplexity")
# the drivers of the sinks' targets (pplx_codec.sinks), shown by info and recorded by bench --json
_DRIVERS = ("psycopg", "pgvector", "lancedb", "sqlite-vec", "apsw")
# the frameworks of the adapters (pplx_codec.integrations)
_FRAMEWORKS = ("langchain-core", "llama-index-core", "haystack-ai")


def cmd_info(args) -> int:
    from .benchmarks.hardware import describe_cpu

    if args.calibrate:
        _cli_info.recalibrate()
    caps = capabilities()
    print(f"pplx-codec {__version__}")
    print(f"python {platform.python_version()} ({platform.machine()}, {platform.system()}), numpy {np.__version__}")
    print(f"cpu:          {describe_cpu()}")
    print(f"isa compiled: {', '.join(caps['compiled'])}")
    print(f"isa detected: {', '.join(caps['detected'])}"
          + (f" ({', '.join(caps['opt_in'])}: opt-in, not active by default)" if caps["opt_in"] else ""))
    if refusal := _dispatch.amx_refusal():
        print(f"isa amx:      not usable: {refusal}")
    print(f"isa active:   {caps['active']}" + (f" (forced by {caps['forced_by']})" if caps["forced_by"] else ""))
    print("\n".join(_cli_info.path_lines()))
    print(f"threads:      {caps['threads']} (no OpenMP)")
    print("peers: " + ", ".join(f"{d} {dist_version(d) or '(not installed)'}" for d in _PEERS))
    print("sink drivers: " + ", ".join(f"{d} {dist_version(d) or '(not installed)'}" for d in _DRIVERS))
    print("frameworks: " + ", ".join(f"{d} {dist_version(d) or '(not installed)'}" for d in _FRAMEWORKS))
    return 0


# every tier name a build may have (capabilities()["compiled"] lists this build's)
_TIERS = ("serial", "avx2", "avx512", "amx", "neon", "neon_dotprod")
# peer (benchmarks.hardware.peer_of) -> its distribution, for versions in the header
_PEER_DIST = {"faiss": "faiss-cpu", "numkong": "numkong", "simsimd": "simsimd", "usearch": "usearch",
              "pybase64": "pybase64", "numpy": "numpy", "numpy BLAS": "numpy"}


def _bench_tiers(text: str, caps: dict) -> list[str]:
    """``--isa``: a comma list of tiers, or "all" (every tier this CPU runs, opt-in ones
    included: a benchmark is how an opt-in tier proves itself; then "auto", the default
    table); each must be detected.  "auto" is the default table: each kernel family on its
    own path."""
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    if not names:
        raise _Refused(f"--isa {text!r}: name at least one tier (or all)")
    tiers: list[str] = []
    for name in (t for n in names for t in (caps["detected"] + [AUTO] if n == "all" else [n])):
        if name != AUTO and name not in caps["compiled"]:
            if name not in _TIERS:
                raise _Refused(f"--isa {name}: unknown tier (known: {', '.join(_TIERS)}, auto, or all)")
            raise _Refused(f"--isa {name}: not compiled into this build (compiled: {', '.join(caps['compiled'])})")
        if name != AUTO and name not in caps["detected"]:
            raise _Refused(f"--isa {name}: this CPU does not support it (detected: {', '.join(caps['detected'])})")
        if name not in tiers:
            tiers.append(name)
    return tiers


def _json_target(path: str) -> None:
    """Refuse a --json FILE that cannot be written before the benchmark runs, not after."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise _Refused(f"cannot write --json {path}: it is a directory")
    if not os.path.isdir(directory):
        raise _Refused(f"cannot write --json {path}: no directory {directory}")
    if not os.access(directory, os.W_OK):
        raise _Refused(f"cannot write --json {path}: {directory} is not writable")


def cmd_bench(args) -> int:
    from .benchmarks import families, format_table, hardware, report, run_cases, with_tiers
    from .benchmarks import peaks as peak_mod

    fams = families()
    chosen = args.family or list(fams)
    unknown = [f for f in chosen if f not in fams]
    if unknown:
        print(f"unknown benchmark family: {', '.join(unknown)} (known: {', '.join(fams)})", file=sys.stderr)
        return 2
    caps = capabilities()
    tiers = _bench_tiers(args.isa, caps) if args.isa is not None else None
    if args.json:
        _json_target(args.json)
    cases = [c for f in chosen for c in fams[f](quick=args.quick)]
    if tiers:
        with_tiers(cases, tiers)
    ran = ", ".join(tiers) if tiers else caps["active"]
    print(f"pplx-codec {__version__} bench ({'quick' if args.quick else 'full'}); isa {ran}; "
          f"medians of {'3-7' if args.quick else '5-15'} samples, a case's rows interleaved; "
          "each result checked before timing")
    print(f"cpu: {hardware.describe_cpu()}")
    opt_in = f" (opt-in: {', '.join(caps['opt_in'])})" if caps.get("opt_in") else ""
    forced = f" (forced by {caps['forced_by']})" if caps["forced_by"] else ""
    print(f"tiers: compiled {', '.join(caps['compiled'])}; detected {', '.join(caps['detected'])}{opt_in}; "
          f"active {caps['active']}{forced}; ours ran under {ran}")
    print(f"thread pools: {hardware.describe_thread_pools()}")
    if caps["active"] == AUTO or (tiers and AUTO in tiers):
        print("default paths (auto): " + ", ".join(f"{f} {e}" for f, e in _dispatch.paths(AUTO).items()))
    used = {p for c in cases for impl in c.impls if not impl.ours and not impl.limit
            if (p := hardware.peer_of(impl.name))}
    peer_kernels = hardware.peer_kernels([p for p in _PEER_DIST if p in used])
    if peer_kernels:
        print("peer kernels:")
        for peer, info in peer_kernels.items():
            version = "" if peer == "numpy BLAS" else f" {dist_version(_PEER_DIST[peer])}"
            print(f"  {peer}{version}: {info['detail']}")
    # the compute peaks, measured inside the batched cases (Case.peak) when any is selected
    meter = peak_mod.Meter(caps["active"], quick=args.quick) if any(c.peak for c in cases) else None
    results = run_cases(cases, quick=args.quick, meter=meter,
                        progress=lambda name: print(f"  running {name} ...", file=sys.stderr, flush=True))
    peaks = meter.peaks() if meter is not None else None
    for line in peak_mod.header(peaks, quick=args.quick) if peaks else []:
        print(line)
    print(format_table(results, default_tier=caps["active"],
                       kernels={k: v["kernels"] for k, v in peer_kernels.items()}))
    missing = sorted({m for c in cases for m in c.missing})
    if missing:
        print(f"\nPeers not installed: {', '.join(missing)}. "
              "Add them with: pip install 'pplx-codec[bench]'")
    if args.json:
        doc = report.build(results, version=__version__, mode="quick" if args.quick else "full", families=chosen,
                           capabilities=caps, default_tier=caps["active"], machine=hardware.machine(),
                           versions={"numpy": np.__version__,
                                     **{d: dist_version(d) for d in _PEERS + _DRIVERS + _FRAMEWORKS}},
                           peer_kernels=peer_kernels, missing=missing, peaks=peaks)
        with _refusing(args.json, "write --json"):
            report.write(doc, args.json)
        print(f"\nwrote {args.json} ({len(doc['rows'])} rows)")
    return 0


def cmd_bench_compare(args) -> int:
    from .benchmarks import report

    docs = []
    for path in (args.a, args.b):
        with _refusing(path, "read"):
            docs.append(report.load(path))
    print(report.compare(docs[0], docs[1], args.a, args.b))
    return 0


#: what ``embed`` and ``search`` run against without an API key (said on stderr)
EMBEDDED_BACKEND = "static"
EMBEDDED = f"embedded reference server ({EMBEDDED_BACKEND} backend)"


@contextmanager
def _client(args):
    """(client, endpoint): the real API when a key or base URL is given, else
    the reference server started in this process."""
    from .client import Client

    key = args.api_key or os.environ.get("PERPLEXITY_API_KEY") or os.environ.get("PPLX_API_KEY")
    base = args.base_url or os.environ.get("PERPLEXITY_BASE_URL")
    opts = dict(max_concurrency=args.max_concurrency, max_retries=args.max_retries,
                max_requests_per_minute=_cli_support.rpm(args.rpm))
    if key or base:
        with Client(api_key=key, base_url=base, **opts) as client:
            yield client, client.base_url
        return
    try:
        from .server import running
    except ImportError as e:
        raise SystemExit("pplx-codec: no PERPLEXITY_API_KEY, and the embedded reference server needs the server "
                         f"extra ({e.name} is missing): pip install 'pplx-codec[server]', or set "
                         "PERPLEXITY_API_KEY to use the real API") from None
    local_key = secrets.token_urlsafe(16)
    with running(api_keys=[local_key], backend=EMBEDDED_BACKEND) as url:
        print(f"pplx-codec: no PERPLEXITY_API_KEY: using the {EMBEDDED} at {url} "
              "(all-MiniLM-L6-v2 distilled to static token vectors: real neighbours, not Perplexity's model)",
              file=sys.stderr)
        with Client(api_key=local_key, base_url=url, **opts) as client:
            yield client, EMBEDDED


def _add_client_options(p) -> None:
    p.add_argument("--api-key", help="Perplexity API key (default: PERPLEXITY_API_KEY, then PPLX_API_KEY)")
    p.add_argument("--base-url", help=f"API base URL (default: PERPLEXITY_BASE_URL, then {DEFAULT_BASE_URL} "
                                      "when a key is set, else the embedded reference server)")
    p.add_argument("--max-concurrency", type=_at_least(1), default=DEFAULT_MAX_CONCURRENCY,
                   help=f"requests in flight (default {DEFAULT_MAX_CONCURRENCY})")
    p.add_argument("--max-retries", type=_at_least(0), default=DEFAULT_MAX_RETRIES,
                   help=f"retries per request (default {DEFAULT_MAX_RETRIES})")
    p.add_argument("--rpm", type=float, metavar="N",  # its range is the budget's own check (_cli_support.rpm)
                   help="send at most N requests per minute, retries included, and slow down on a 429 "
                        "(default: no limit; the account's limit is per key; at least 1/1440: one a day)")


@_cli_support.saves_on_ctrl_c
def cmd_embed(args) -> int:
    from . import errors, store
    from .corpus import read_texts
    from .pipelines import embed_corpus

    with _refusing(args.input, "read"):
        encodings = _encodings(args.encoding)
        try:
            source = read_texts(args.input, field=args.field, column=args.column)
        except RuntimeError as e:  # Parquet without pyarrow
            raise _Refused(str(e)) from None
    with _refusing(), _client(args) as (client, endpoint), _refusing(args.out, "write --out"):
        try:
            report = embed_corpus(client, source, args.out, model=args.model, dimensions=args.dimensions,
                                  encodings=encodings, bitorder=args.bitorder, chunk=args.chunk,
                                  progress=not args.quiet, endpoint=endpoint, replace=args.replace)
        except errors.APIError as e:
            done = "" if e.partial is None else f" ({int(e.partial.filled.sum())} rows of the failing chunk kept)"
            print(f"pplx-codec embed: {e}{done}; run the same command again to resume", file=sys.stderr)
            return 1
        except store.JobInUse:  # its lock: the Writer's message names no command
            raise _Refused(f"another pplx-codec embed is writing {args.out} (its unfinished job is locked): "
                           "wait for it to end, or stop it, then run this again") from None
        except KeyboardInterrupt as e:  # Ctrl-C: the client stopped at once; what arrived is in DIR.partial
            partial = getattr(e, "partial", None)
            done = "" if partial is None else f" ({int(partial.filled.sum())} rows of the interrupted chunk kept)"
            print(f"pplx-codec embed: interrupted{done}; run the same command again to resume", file=sys.stderr)
            return 130  # 128 + SIGINT, as a shell reports a Ctrl-C
    u = report.usage
    if report.discarded:
        print(f"pplx-codec embed: the unfinished run in {args.out} could not be reused ({report.discarded}): "
              "its rows were discarded", file=sys.stderr)
    if report.reused or report.repeats or report.carried:  # what was not paid for again
        saved = ([f"{report.carried} from the interrupted run"] if report.carried else []) + \
            ([f"{report.reused} reused from {args.out}"] if report.reused else []) + \
            ([f"{report.repeats} repeated texts filled from their first row"] if report.repeats else [])
        print(f"pplx-codec embed: {report.embedded} new, {', '.join(saved)}", file=sys.stderr)
    resumed = f" ({report.count - report.written} already done)" if report.written < report.count else ""
    print(f"embedded {report.embedded} texts{resumed} in {report.seconds:.2f} s "
          f"({report.rate:,.0f} texts/s); {u.total_tokens:,} tokens, ${u.total_cost:.6f}; "
          f"wrote {args.out} ({report.count} rows, {args.model}, {', '.join(encodings)})")
    return 0


def cmd_search(args) -> int:
    from . import errors, store
    from .corpus import read_queries
    from .pipelines import search_queries

    if (args.query is None) == (args.queries is None):
        raise _Refused("give one QUERY or --queries FILE" + (", not both" if args.query is not None else ""))
    with _refusing(args.queries, "read --queries"):
        queries = [args.query] if args.queries is None else read_queries(args.queries, args.queries_format)
    with _refusing(args.store, "read store"):  # before a server starts to embed the queries
        stored = store.load(args.store)
    if args.exact and "int8" not in stored.encodings:
        raise _Refused(f"--exact needs the store's int8 vectors ({args.store} holds {', '.join(stored.encodings)})")
    with _refusing(), _client(args) as (client, _), _refusing(args.store, "read store"):
        try:
            # the store has count rows: a larger k would only ask the search for padding
            hits, info = search_queries(client, stored, queries, k=max(1, min(args.k, stored.count)),
                                        rescore=args.rescore, exact=args.exact)
        except errors.APIError as e:
            print(f"pplx-codec search: {e}", file=sys.stderr)
            return 1
    what = "query" if args.queries is None else f"{len(queries)} queries"
    summary = (f"{info['rows']:,} rows ({info['model']}, {info['dimensions']} dims), {info['method']}: "
               f"{what} embedded in {info['embed_ms']:.1f} ms, searched in {info['search_ms']:.2f} ms")
    if args.json:  # stdout is for the JSON lines only
        print(f"pplx-codec search: {summary}", file=sys.stderr)
        for query, found in zip(queries, hits, strict=True):
            for h in found:
                # a score as the search gave it: float32 (shortest repr) or a Hamming distance
                score = int(h.score) if info["method"] == "exact Hamming" else float(str(np.float32(h.score)))
                print(json.dumps({"query": query, "rank": h.rank, "row": h.row, "score": score, "text": h.text}))
        return 0
    print(summary)
    width = max(20, min(os.get_terminal_size(sys.stdout.fileno()).columns if sys.stdout.isatty() else 100, 160) - 22)
    for n, (query, found) in enumerate(zip(queries, hits, strict=True), 1):
        if args.queries is not None:
            print(f"query {n}: {' '.join(query.split())}")
        for h in found:
            text = " ".join((h.text or "").split())
            if len(text) > width:
                text = text[: width - 3] + "..."
            print(f"{h.rank:3d}  {h.score:7.4f}  #{h.row:<7d} {text}")
    return 0


def _encodings(spec: str) -> tuple[str, ...]:
    """``--encoding``: a comma list of encodings, in the order given, each once."""
    parts = tuple(dict.fromkeys(p.strip() for p in spec.split(",") if p.strip()))
    if not parts or any(p not in ENCODING_NAMES for p in parts):
        raise ValueError(f"--encoding takes {', '.join(ENCODING_NAMES)} or {','.join(ENCODING_NAMES)}; got {spec!r}")
    return parts


def _add_pipelines(sub) -> None:
    embed = sub.add_parser("embed", help="embed a corpus into a store directory (resumable)",
                           description="Embed INPUT into DIR: vectors.npy (int8) and/or codes.npy (packed binary), "
                                       "meta.json, texts.jsonl. A killed run resumes when run again. Each distinct "
                                       "text is sent once; texts DIR already holds (same settings) are copied, "
                                       "not embedded again, so a grown INPUT costs only its new texts.")
    embed.add_argument("input", metavar="INPUT",
                       help="a text file (one text per line), .jsonl (--field), .parquet (--column), "
                            "or the built-in corpus 'pydoc-topics'")
    embed.add_argument("--out", required=True, metavar="DIR", help="store directory to write")
    embed.add_argument("--field", default="text", help="JSONL field holding the text (default: text)")
    embed.add_argument("--column", default="text", help="Parquet column holding the text (default: text)")
    embed.add_argument("--model", default=DEFAULT_MODEL, choices=EMBEDDING_MODELS)
    embed.add_argument("--dimensions", type=_at_least(1), help="Matryoshka dimensions (default: the model's full size)")
    both = ",".join(ENCODING_NAMES)
    embed.add_argument("--encoding", default=both,
                       help=f"{', '.join(ENCODING_NAMES)} or {both} (default; binary codes are derived from the "
                            "int8 signs)")
    embed.add_argument("--bitorder", default=API_BITORDER, choices=BITORDERS,
                       help=f"bit order of the stored codes (default {API_BITORDER}, as the API sends them)")
    embed.add_argument("--chunk", type=_at_least(1), default=EMBED_CHUNK,
                       help=f"texts per resumable step (default {EMBED_CHUNK})")
    embed.add_argument("--replace", action="store_true",
                       help="embed every text afresh, replacing a store at DIR made with other settings (without "
                            "it, such a store is refused; one made with the same settings lends its rows)")
    embed.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_client_options(embed)
    embed.set_defaults(func=cmd_embed)

    search = sub.add_parser("search", help="search a store for a query, or for a file of queries",
                            description="Embed QUERY (or every query of --queries FILE, in batched requests) with "
                                        "the store's model and dimensions, then search all at once: binary "
                                        "top-k*rescore re-ranked by int8 cosine when both encodings are stored.")
    search.add_argument("store", metavar="DIR")
    search.add_argument("query", metavar="QUERY", nargs="?", help="one query (or give --queries FILE)")
    search.add_argument("--queries", metavar="FILE",
                        help="many queries, embedded in batched requests and searched in one call: one per line "
                             "(blank lines skipped), or JSONL for a .jsonl/.ndjson name (each line a JSON string or "
                             "an object with a \"query\" or \"text\" field); - reads standard input")
    search.add_argument("--queries-format", choices=QUERY_FORMATS,
                        help="read --queries as lines or jsonl whatever its name")
    search.add_argument("-k", type=_at_least(1), default=10, help="results per query (default 10)")
    search.add_argument("--rescore", type=_at_least(1), default=4, help="binary candidates per result (default 4)")
    search.add_argument("--exact", action="store_true",
                        help="exact int8 cosine over every row, no binary stage (needs the store's int8)")
    search.add_argument("--json", action="store_true",
                        help="write JSON lines to stdout, one per hit: query, rank, row, score, text")
    _add_client_options(search)
    search.set_defaults(func=cmd_search)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pplx-codec", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--version", action="version", version=f"pplx-codec {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    _add_pipelines(sub)
    info = sub.add_parser("info", help="versions, instruction sets, installed peers")
    info.add_argument("--calibrate", action="store_true",
                      help="measure each kernel family's paths again and rewrite the cached choice")
    info.set_defaults(func=cmd_info)
    bench = sub.add_parser("bench", help="time our kernels against the peers, in one run, as one table",
                           description="Time our kernels against the peers, in one run, as one table; "
                                       "'pplx-codec bench compare A.json B.json' compares two --json runs.")
    bench.add_argument("--quick", action="store_true", help="fewer, shorter samples (about a minute for all families)")
    bench.add_argument("--family", action="append", help="only this family (repeatable)")
    bench.add_argument("--isa", metavar="TIERS",
                       help="run our rows under each of these kernel tiers, side by side (comma list, e.g. "
                            "serial,avx2; 'auto': the default, each kernel family on its measured path; 'all': "
                            "every tier this CPU supports, opt-in ones included, and auto, with a check that "
                            "auto is the fastest or within 5%% of it); default: the active tier")
    bench.add_argument("--json", metavar="FILE",
                       help="also write every row, with the CPU, tiers, versions and date, to FILE (JSON, "
                            "schema 1; read by 'bench compare')")
    bench.set_defaults(func=cmd_bench)
    bench_actions = bench.add_subparsers(dest="bench_action", metavar="{compare}")
    compare = bench_actions.add_parser(
        "compare", help="speed ratios between two 'bench --json' files",
        description="Match the rows of two 'pplx-codec bench --json' files (two machines, or before/after a "
                    "change) by case, implementation and tier; print both medians and B's speed over A's.")
    compare.add_argument("a", metavar="A.json")
    compare.add_argument("b", metavar="B.json")
    compare.set_defaults(func=cmd_bench_compare)
    _cli_serve.add_parser(sub)
    _cli_dedup.add_parser(sub)
    _cli_export.add_parser(sub)
    return p


def _rerun_with_quiet_pools() -> None:
    """Run this `pplx-codec bench` command again with the peers' idle thread
    pools told to sleep (hardware.QUIET_THREAD_POOLS: the libraries read them
    only when they load, and numpy has loaded by now).  Only for the
    program's own command line on POSIX, once, and never over a value the
    user set; otherwise the run goes on and its header says what the pools do."""
    from .benchmarks import hardware

    missing = {k: v for k, v in hardware.QUIET_THREAD_POOLS.items() if k not in os.environ}
    if not missing or os.name != "posix" or os.environ.get("PPLX_CODEC_BENCH_RERUN"):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]],
              {**os.environ, **missing, "PPLX_CODEC_BENCH_RERUN": "1"})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # --help and --version answer here, whatever PPLX_CODEC_ISA says
    if argv is None and args.command == "bench" and getattr(args, "bench_action", None) is None:
        _rerun_with_quiet_pools()
    try:
        if refusal := command_refusal():  # a PPLX_CODEC_ISA the import could not apply (_isa.apply_env)
            raise _Refused(refusal)
        return args.func(args)
    except _Refused as e:
        action = getattr(args, "bench_action", None)  # "bench compare"
        print(f"pplx-codec {args.command}{f' {action}' if action else ''}: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`pplx-codec search ... | head`): not an error
        # of ours.  Point stdout at devnull so the interpreter's final flush
        # does not raise again, and end as a closed pipe conventionally ends.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
