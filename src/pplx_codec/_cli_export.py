"""``pplx-codec export STORE TARGET``: a store's rows into pgvector, LanceDB or sqlite-vec."""

from __future__ import annotations

import os
import sys
import time

from ._cli_support import Refused, at_least, refusing

__all__ = ["add_parser", "cmd_export"]


def cmd_export(args) -> int:
    from . import store
    from .sinks import BATCH_ROWS, SinkError, check_table_name, open_sink, target_kind

    with refusing():  # the arguments, before the store is read or a database reached
        kind, _ = target_kind(args.target)
        check_table_name(args.table)
    options = {}
    if kind == "pgvector":
        options = {"vector_type": args.vector_type, "index": args.index, "streams": args.streams}
    else:
        given = [flag for flag, value, default in (("--vector-type", args.vector_type, "halfvec"),
                                                   ("--index", args.index, None), ("--streams", args.streams, 1))
                 if value != default]
        if given:
            raise Refused(f"{', '.join(given)}: pgvector options; {kind} takes none of them")
    with refusing(args.store, "read store"):
        stored = store.load(args.store)
    # LanceDB logs "No existing dataset at ..., it will be created" as a WARN on stderr for a
    # new table: the command's one summary line stays alone (a LANCE_LOG the user set wins)
    os.environ.setdefault("LANCE_LOG", "error")
    try:
        with refusing(args.store, "read store"):
            with open_sink(args.target, table=args.table, replace=args.replace, **options) as sink:
                # timed from here: the driver's import (lancedb's takes ~1.5 s) is not the load
                started = time.perf_counter()
                count = sink.write_store(stored, args.rows or BATCH_ROWS)
    except (SinkError, ImportError) as e:
        raise Refused(str(e)) from None
    seconds = time.perf_counter() - started
    if not args.quiet:
        rate = f", {count / seconds:,.0f} rows/s" if seconds > 0 and count else ""
        print(f"pplx-codec export: {count:,} rows ({stored.dimensions} dims, {', '.join(sink.columns())}) into "
              f"{kind} table {args.table} at {sink.shown} in {seconds:.2f} s{rate}", file=sys.stderr)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export", help="write a store's rows into pgvector, LanceDB or sqlite-vec",
        description="Write the rows of the store DIR into a table of TARGET: id (the row number), text, the "
                    "int8 vector and the binary code in the database's own bit order. Each block of rows is one "
                    "transaction that replaces its ids: running it again is idempotent, and a killed run, run "
                    "again, ends with every row once. The table ends holding exactly the store's rows. TARGET: "
                    "postgresql://USER:PASSWORD@HOST/DB (pgvector), lancedb:DIR or DIR.lance (LanceDB), "
                    "sqlite:FILE or FILE.sqlite/.sqlite3/.db (sqlite-vec).")
    p.add_argument("store", metavar="DIR")
    p.add_argument("target", metavar="TARGET")
    p.add_argument("--table", default="embeddings", help="table name (default: embeddings)")
    p.add_argument("--replace", action="store_true",
                   help="drop and recreate a table that holds another model, other dimensions or other columns "
                        "(without it, such a table is refused)")
    p.add_argument("--rows", type=at_least(1), help="rows per transaction (default 8192)")
    p.add_argument("--vector-type", choices=("halfvec", "vector"), default="halfvec",
                   help="pgvector: the int8 column's type (default halfvec: exact for int8, half the size)")
    p.add_argument("--index", choices=("hnsw",),
                   help="pgvector: build HNSW indexes after the load (halfvec_cosine_ops on the vectors, "
                        "bit_hamming_ops on the codes)")
    p.add_argument("--streams", type=at_least(1), default=1,
                   help="pgvector: parallel COPY streams, one connection each, rows split by id range (default 1)")
    p.add_argument("--quiet", action="store_true", help="no summary line")
    p.set_defaults(func=cmd_export)
