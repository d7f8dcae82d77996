"""Benchmark cases shared by ``pplx-codec bench`` and ``benches/`` (pytest-benchmark).

Each family's cases are in ``<family>_cases.py``.  A case is one workload
with a reference answer and several implementations (ours and the libraries
a user would pick instead).  Every implementation's result is checked against
the reference before it is timed.
"""

from ._harness import Case, Impl, check_case, check_impl, run_cases, with_tiers
from .table import format_table

__all__ = ["Case", "Impl", "check_case", "check_impl", "run_cases", "format_table", "families", "with_tiers"]


def families() -> dict:
    """Family name -> function(quick: bool) -> list[Case]."""
    from . import codec_cases

    def search(quick: bool = False):  # imported on use: one family's import error spares the others
        from . import search_cases

        return search_cases.cases(quick=quick)

    def client(quick: bool = False):
        from . import client_cases

        return client_cases.cases(quick=quick)

    def sinks(quick: bool = False):
        from . import sinks_cases

        return sinks_cases.cases(quick=quick)

    def integrations(quick: bool = False):
        from . import integrations_cases

        return integrations_cases.cases(quick=quick)

    return {"codec": codec_cases.cases, "search": search, "client": client, "sinks": sinks,
            "integrations": integrations}
