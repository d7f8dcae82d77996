"""The one skeleton every sink runs: what a target is given, in which order,
and what a load promises, decided here once (as openai-python's base client
does for requests); a target module only says how to talk to its database.

A load's promises, for every target:

- **ids are row numbers.**  An export writes a store's row i as id i; rows a
  sink is given with ``add`` get ids from a running count (``first_id``, 0
  by default), so a pipeline run twice writes the same ids twice.
- **each block is one transaction** that first deletes the block's id range,
  then inserts it: re-running a load is idempotent, and a load killed midway
  leaves whole blocks only, which the re-run replaces.  An export then
  deletes every id at or past the store's count, so the table ends as the
  store.
- **a table that exists is checked first**: another model, other dimensions
  or other columns are refused (``TableMismatch``) unless ``replace=True``,
  which drops and recreates it.
- **errors are one line**: a target's connection failure is a ``SinkError``
  whose message never holds the password (``mask_password``).

A target subclasses ``Sink`` and fills in the hooks: ``connect``,
``existing_layout``, ``create``, ``drop``, ``write_batch``, ``delete_from``,
``finish`` and ``disconnect``; ``bitorder`` is the order its bit columns
keep.  ``write_store`` may be overridden to run several streams.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ..store import Stored
from ..store._payload import prepare
from ._rows import BATCH_ROWS, Batch, Layout, batch_of, layout_of, store_batches

__all__ = ["Sink", "SinkError", "TableMismatch", "FOREIGN", "check_table_name", "mask_password", "shown_dsn",
           "one_line"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")


class SinkError(Exception):
    """A target could not be reached or used: one line, no password in it."""


class TableMismatch(SinkError):
    """The table exists and holds other rows (model, dimensions or columns): ``replace=True`` overwrites it."""


#: what ``existing_layout`` returns for a table of that name that pplx-codec did not make
#: (no layout recorded with it): refused like a mismatch, dropped with ``replace``
FOREIGN = Layout(None, 0, False, False)


def check_table_name(name) -> str:
    """A plain SQL identifier: letters, digits and _ (never quoted into SQL as given)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"table name must be letters, digits and _ (at most 63, not starting with a digit), "
                         f"got {name!r}")
    return name


def one_line(e: BaseException) -> str:
    """A driver's error as one line of a ``SinkError``: its lines joined by "; ", spaces collapsed."""
    lines = (" ".join(line.split()) for line in str(e).splitlines())
    return "; ".join(line for line in lines if line) or type(e).__name__


def mask_password(text: str, dsn: str) -> str:
    """``text`` with the DSN's password (and the DSN's password part) replaced by ``***``."""
    try:
        password = urlsplit(dsn).password
    except ValueError:
        password = None
    for secret in {password, *re.findall(r"password=([^\s&]+)", dsn)} - {None, ""}:
        text = text.replace(secret, "***")
    return text


def shown_dsn(dsn: str) -> str:
    """The DSN as it may be printed: the password replaced by ``***``."""
    try:
        parts = urlsplit(dsn)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
            return mask_password(urlunsplit(parts._replace(netloc=netloc)), dsn)
    except ValueError:
        pass
    return mask_password(dsn, dsn)


class Sink:
    """Rows into one table of a database.  Use as a context manager::

        with pplx_codec.sinks.open_sink("postgresql://...", table="docs") as sink:
            for texts in chunks:
                sink.add(client.embed(texts, encoding_format="base64_int8"), texts)

    or ``sink.write_store(pplx_codec.store.load(path))`` (what ``export`` does).
    One sink is one load: calls from several threads are serialized.
    """

    #: the bit order of the target's bit columns ("big": dimension i at bit 7 - i % 8)
    bitorder = "big"

    def __init__(self, target: str, *, table: str = "embeddings", replace: bool = False, first_id: int = 0):
        self.target = target
        self.table = check_table_name(table)
        self.replace = bool(replace)
        if isinstance(first_id, bool) or not isinstance(first_id, (int, np.integer)) or first_id < 0:
            raise ValueError(f"first_id must be a non-negative integer, got {first_id!r}")
        self.next_id = int(first_id)
        self.layout: Layout | None = None
        self.rows_written = 0
        self._lock = threading.RLock()
        self._open = False

    # -- hooks a target fills in ------------------------------------------------------
    def connect(self) -> None:
        raise NotImplementedError

    def existing_layout(self) -> Layout | None:
        """The layout recorded with the table, None when there is no table, ``FOREIGN`` when
        a table of that name has no layout recorded."""
        raise NotImplementedError

    def create(self, layout: Layout) -> None:
        raise NotImplementedError

    def drop(self) -> None:
        raise NotImplementedError

    def write_batch(self, batch: Batch) -> None:
        """Delete ids ``batch.first .. batch.end - 1`` and insert the batch, in one transaction."""
        raise NotImplementedError

    def delete_from(self, end_id: int) -> None:
        """Delete every row with id >= ``end_id``."""
        raise NotImplementedError

    def finish(self) -> None:
        """After the last row (indexes, statistics); nothing by default."""

    def disconnect(self) -> None:
        raise NotImplementedError

    def columns(self) -> list[str]:
        """The table's columns as a summary line names them."""
        lay = self.layout
        return ["id", "text"] + (["int8"] if lay and lay.int8 else []) + (["binary"] if lay and lay.binary else [])

    @property
    def shown(self) -> str:
        """The target as it may be printed (a DSN without its password)."""
        return shown_dsn(self.target)

    # -- the skeleton ---------------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(finished=exc_type is None)

    def close(self, finished: bool = True) -> None:
        """Run ``finish`` (when the load ended well) and disconnect; closing twice does nothing."""
        with self._lock:
            if not self._open:
                return
            self._open = False
            try:
                if finished and self.layout is not None:
                    self.finish()
            finally:
                self.disconnect()

    def open(self, layout: Layout) -> None:
        """Connect, then check (or create, or with ``replace`` recreate) the table for ``layout``."""
        with self._lock:
            if self.layout is not None:
                if (why := layout.mismatch(self.layout)) is not None:
                    raise ValueError(f"these rows do not fit the rows this sink already wrote: {why}")
                return
            if not self._open:
                self.connect()
                self._open = True
            have = self.existing_layout()
            if have is not None and self.replace:
                self.drop()
                have = None
            if have is None:
                self.create(layout)
            elif have is FOREIGN:
                raise TableMismatch(f"table {self.table} exists but was not made by pplx-codec (no layout recorded "
                                    "with it); pass replace=True (--replace) to overwrite it")
            elif (why := layout.mismatch(have)) is not None:
                raise TableMismatch(f"table {self.table} exists with other rows: {why}; "
                                    "pass replace=True (--replace) to overwrite it")
            self.layout = layout

    def add(self, embeddings=None, texts: Sequence[str] | None = None, *, int8: np.ndarray | None = None,
            binary: np.ndarray | None = None, bitorder: str | None = None, model: str | None = None) -> range:
        """Append rows: an ``Embeddings`` (a ``Client.embed`` result) and/or ``int8=`` vectors /
        ``binary=`` codes (in ``bitorder``, Perplexity's "little" by default), with their ``texts``.
        Returns the ids they got.  With int8 rows only, the codes are derived (bit = value > 0)."""
        p = prepare(embeddings, int8, binary, bitorder, None, texts)
        model = model if model is not None else p.meta.get("model")
        layout = layout_of(model, p.meta["dimensions"], p.int8 is not None)
        with self._lock:
            self.open(layout)
            assert self.layout is not None
            batch = batch_of(self.next_id, p.int8, p.binary, p.bitorder, p.texts, self.bitorder, self.layout)
            self.write_batch(batch)
            self.next_id = batch.end
            self.rows_written += len(batch)
            return range(batch.first, batch.end)

    def write_store(self, stored: Stored, rows: int = BATCH_ROWS) -> int:
        """Write a store's rows as ids 0 .. count - 1, then delete any id past them; the count."""
        layout = layout_of(stored.model, stored.dimensions, stored.int8 is not None)
        with self._lock:
            self.open(layout)
            assert self.layout is not None
            self.write_ranges(stored, [(0, stored.count)], rows)
            self.delete_from(stored.count)
            self.next_id = stored.count
            return stored.count

    def write_ranges(self, stored: Stored, ranges: list[tuple[int, int]], rows: int) -> None:
        """Write the store's rows in ``ranges``, block by block (one stream; a target may run several)."""
        assert self.layout is not None
        for start, stop in ranges:
            for batch in store_batches(stored, self.bitorder, self.layout, start, stop, rows):
                self.write_batch(batch)
                self.rows_written += len(batch)
