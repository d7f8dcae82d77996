"""The two-stage query over a table ``PgvectorSink`` wrote: Hamming candidates
on the ``bit`` column, rescored by cosine on the int8 column, as
``pplx_codec.Index.search`` does (ties to the lower id at both stages).

``two_stage_sql`` gives the SQL text users copy into their app (named
parameters ``%(code)s`` and ``%(vector)s``, psycopg's style);
``two_stage_search`` runs it given a psycopg connection, the query's int8 row
and its code as our client returns it (least-significant-bit first,
converted here to pgvector's order), so tests and users call the same thing.
"""

from __future__ import annotations

import numpy as np

from .. import bits
from .._checks import positive_int
from ._base import check_table_name
from ._rows import query_row

__all__ = ["two_stage_sql", "two_stage_search", "query_params"]

VECTOR_TYPES = ("halfvec", "vector")


def two_stage_sql(table: str = "embeddings", *, k: int, candidates: int, vector_type: str = "halfvec",
                  quantize_in_sql: bool = False) -> str:
    """SQL for the ``k`` best rows by cosine among the ``candidates`` nearest by Hamming
    distance, returning ``id, text, score`` (cosine similarity), best first.

    Parameters: ``%(vector)s``, the query's int8 vector as pgvector text (``'[1,-2,...]'``)
    or a ``pgvector.HalfVector``; ``%(code)s``, its code as a bit string (dimension i at
    character i), unless ``quantize_in_sql`` computes it as ``binary_quantize(vector)``.
    Exact (a sequential scan); with HNSW indexes, drop the ``, id`` tie-breaks to let the
    planner use them (approximate)."""
    check_table_name(table)
    k, candidates = positive_int(k, "k"), positive_int(candidates, "candidates")
    if vector_type not in VECTOR_TYPES:
        raise ValueError(f"vector_type must be 'halfvec' or 'vector', got {vector_type!r}")
    vec = f"%(vector)s::{vector_type}"
    code = f"binary_quantize({vec})" if quantize_in_sql else "%(code)s::varbit"
    return (f"SELECT id, text, 1 - (embedding <=> {vec}) AS score\n"
            f"FROM (\n"
            f"    SELECT id, text, embedding FROM {table}\n"
            f"    ORDER BY code <~> {code}, id\n"
            f"    LIMIT {candidates}\n"
            f") AS candidates\n"
            f"ORDER BY embedding <=> {vec}, id\n"
            f"LIMIT {k}")


def query_params(vector: np.ndarray, code: np.ndarray | None = None, bitorder: str = "little") -> dict:
    """The query's parameters: its int8 ``vector`` as pgvector text and (given) its packed
    ``code`` in ``bitorder`` (Perplexity's "little" by default) as a bit string."""
    v = query_row(vector)
    params = {"vector": "[" + ",".join(map(str, v.tolist())) + "]"}
    if code is not None:
        c = np.asarray(code)
        if c.dtype != np.uint8 or c.ndim != 1 or c.shape[0] * 8 != v.shape[0]:
            raise ValueError(f"code must be {v.shape[0] // 8} packed uint8 bytes for {v.shape[0]} dimensions, "
                             f"got {c.dtype} of shape {c.shape}")
        unpacked = bits.unpack_bits(c[None], v.shape[0], bitorder=bitorder, dtype=np.uint8)[0]
        params["code"] = (unpacked + ord("0")).tobytes().decode("ascii")
    return params


def two_stage_search(conn, vector: np.ndarray, code: np.ndarray | None = None, *, table: str = "embeddings",
                     k: int = 10, candidates: int = 40, bitorder: str = "little", vector_type: str = "halfvec",
                     quantize_in_sql: bool = False) -> list[tuple[int, str, float]]:
    """Run ``two_stage_sql`` on a psycopg connection: ``[(id, text, score)]`` best first.
    ``code``: the query's packed code in ``bitorder`` (None: ``quantize_in_sql``, the code
    computed by the server from ``vector``)."""
    if code is None and not quantize_in_sql:
        raise ValueError("give the query's code, or quantize_in_sql=True")
    query = two_stage_sql(table, k=k, candidates=candidates, vector_type=vector_type,
                          quantize_in_sql=quantize_in_sql)
    params = query_params(vector, None if quantize_in_sql else code, bitorder)
    return [(int(i), t, float(s)) for i, t, s in conn.execute(query, params).fetchall()]
