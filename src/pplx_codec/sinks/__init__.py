"""Rows into the databases users keep vectors in: PostgreSQL + pgvector,
LanceDB and sqlite-vec (one module a target).

``export(store, target)`` writes a store's rows (id = row number, the text,
the int8 vectors and the binary codes in the target's bit order);
``open_sink(target)`` gives a ``Sink`` that takes ``Client.embed`` results
batch by batch (``sink.add(result, texts)``), so a pipeline loads without a
store on disk.  The target is named by a string:

- ``postgresql://...`` or ``postgres://...``: pgvector (the ``pgvector`` extra)
- ``lancedb:DIR`` or a directory ending ``.lance`` / ``.lancedb``: LanceDB (``lancedb``)
- ``sqlite:FILE`` or a file ending ``.sqlite``, ``.sqlite3``, ``.db``: sqlite-vec (``sqlite-vec``)

The promises every load keeps (ids, idempotent blocks, a refused mismatch)
are ``Sink``'s, in ``_base.py``.
"""

from __future__ import annotations

import importlib
import os

from ._base import Sink, SinkError, TableMismatch, check_table_name
from ._rows import BATCH_ROWS, Layout

__all__ = ["open_sink", "export", "target_kind", "check_table_name", "Sink", "SinkError", "TableMismatch", "Layout",
           "BATCH_ROWS"]

#: kind -> (module, class, the extra that installs its driver)
_TARGETS = {
    "pgvector": ("pgvector", "PgvectorSink", "pgvector"),
    "lancedb": ("lancedb", "LanceDBSink", "lancedb"),
    "sqlite-vec": ("sqlite_vec", "SqliteVecSink", "sqlite-vec"),
}

FORMS = ("postgresql://USER:PASSWORD@HOST/DB (pgvector), lancedb:DIR or DIR.lance (LanceDB), "
         "sqlite:FILE or FILE.sqlite / .sqlite3 / .db (sqlite-vec)")


def target_kind(target: str) -> tuple[str, str]:
    """(kind, where) of a target string: the DSN for pgvector, a path for the others."""
    if not isinstance(target, (str, os.PathLike)):
        raise TypeError(f"target must be a string, got {type(target).__name__}")
    t = os.fspath(target)
    if t.startswith(("postgresql://", "postgres://")):
        return "pgvector", t
    for scheme, kind in (("lancedb:", "lancedb"), ("sqlite:", "sqlite-vec")):
        if t.startswith(scheme):
            where = t[len(scheme):]
            where = where[2:] if where.startswith("//") else where
            if not where:
                raise ValueError(f"target {t!r} names no path")
            return kind, where
    if t.rstrip("/").endswith((".lance", ".lancedb")):
        return "lancedb", t
    if t.endswith((".sqlite", ".sqlite3", ".db")):
        return "sqlite-vec", t
    raise ValueError(f"unknown target {t!r}: use {FORMS}")


def open_sink(target: str, *, table: str = "embeddings", replace: bool = False, **options) -> Sink:
    """The ``Sink`` for ``target`` (see the module's doc); ``options`` go to its class
    (pgvector: ``vector_type``, ``index``, ``streams``)."""
    kind, where = target_kind(target)
    module, cls, extra = _TARGETS[kind]
    try:
        mod = importlib.import_module(f"{__name__}.{module}")
    except ImportError as e:
        if (e.name or "").startswith("pplx_codec"):
            raise
        raise ImportError(f"the {kind} target needs its driver ({e.name} is missing): "
                          f"pip install 'pplx-codec[{extra}]'") from None
    return getattr(mod, cls)(where, table=table, replace=replace, **options)


def export(stored, target: str, *, table: str = "embeddings", replace: bool = False, rows: int = BATCH_ROWS,
           **options) -> int:
    """Write a store (a ``Stored`` or its path) into ``target``: ids are row numbers, and
    the table ends holding exactly the store's rows.  Returns the row count."""
    from .. import store

    if not isinstance(stored, store.Stored):
        stored = store.load(stored)
    with open_sink(target, table=table, replace=replace, **options) as sink:
        return sink.write_store(stored, rows)
