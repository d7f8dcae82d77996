"""``pplx-codec dedup``: the groups of near-duplicate rows of a store, as JSON lines."""

from __future__ import annotations

import json
import sys
import time

from ._cli_support import Refused, at_least, refusing

__all__ = ["add_parser", "cmd_dedup"]


def cmd_dedup(args) -> int:
    from . import store
    from .near_duplicates import check_threshold, dedup

    with refusing():
        threshold = check_threshold(args.threshold)
    with refusing(args.store, "read store"):
        stored = store.load(args.store)
    if "int8" not in stored.encodings:
        raise Refused(f"dedup needs the store's int8 vectors for the exact cosine ({args.store} holds "
                      f"{', '.join(stored.encodings)}); embed it with --encoding int8,binary")
    started = time.perf_counter()
    with refusing(args.store, "read store"):
        groups = dedup(stored, threshold, candidates=args.candidates, threads=args.threads)
    seconds = time.perf_counter() - started
    texts = stored.texts
    lines: list[dict] = [{"group": g, "rows": rows} for g, rows in enumerate(groups)]
    if texts is not None:
        with refusing(args.store, "read store"):  # a damaged texts.jsonl: one line, before any output
            for line in lines:
                line["texts"] = [texts[r] for r in line["rows"]]
    for line in lines:
        print(json.dumps(line))
    how = "exact" if args.candidates is None else f"binary top-{args.candidates} candidates (may miss pairs)"
    print(f"pplx-codec dedup: {stored.count:,} rows ({stored.dimensions} dims): {len(groups):,} groups of "
          f"{sum(map(len, groups)):,} rows at cosine >= {threshold:g}, {how}, in {seconds:.2f} s", file=sys.stderr)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "dedup", help="groups of near-duplicate rows of a store, as JSON lines",
        description="Find the groups of rows whose int8 cosine is at least --threshold: the connected components "
                    "of the graph with an edge between every two rows whose cosine (as search scores it) is "
                    ">= the threshold.  Exact by default (the int8 dot kernels over blocks of rows, never an "
                    "n x n matrix); --candidates K is faster and may miss pairs.  Writes one JSON line per group, "
                    '{"group": g, "rows": [...], "texts": [...]} (texts when the store has them), groups of two '
                    "or more rows, ordered by their first row; a summary on stderr.")
    p.add_argument("store", metavar="DIR")
    p.add_argument("--threshold", type=float, default=0.95, help="cosine in -1..1 (default 0.95)")
    p.add_argument("--candidates", type=at_least(1), metavar="K",
                   help="fast mode: only each row's K nearest rows by Hamming distance of the binary codes, "
                        "confirmed by exact cosine (may miss pairs)")
    p.add_argument("--threads", type=at_least(1), help="threads (default: the cores this process may use)")
    p.set_defaults(func=cmd_dedup)
