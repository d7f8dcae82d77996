"""Sinks family: loading 100,000 x 1024 rows (id, text, int8, binary) into the
databases users keep vectors in, ours against each database's documented path,
in one run: pgvector (``pgvector_cases``: executemany, COPY with ``write_row``,
ours on 1 and 2 streams, and the server's own limit), LanceDB and sqlite-vec
(``embedded_sinks_cases``).  A target whose driver is missing is listed as a
missing peer; the others still run."""

from __future__ import annotations

from ._harness import Case

__all__ = ["cases"]


def cases(quick: bool = False, small: bool = False) -> list[Case]:
    from . import embedded_sinks_cases, pgvector_cases

    return pgvector_cases.cases(quick=quick, small=small) + embedded_sinks_cases.cases(quick=quick, small=small)
