"""Scale-out on Dask (``pip install 'pplx-codec[dask]'``).

- :func:`search`: exact top-k over a ``dask.array`` of packed codes or int8
  vectors chunked by rows; the same ``(D, I)`` as the single-machine search
  of the concatenated rows, ties and padding included.
- :func:`from_shards`: ``.npy`` files, store directories or an embed output
  directory as one lazy array, one memory-mapped block per shard.
- :func:`search_rescore`: binary retrieval over all codes, exact int8 cosine
  on the candidates only (the same answer as :meth:`pplx_codec.Index.search`).
- :func:`norms`: the int8 rows' norms, lazily, to reuse across cosine searches.
- :func:`embed`: texts (a ``dask.bag``, a dask dataframe ``Series`` or a
  list) embedded through the API on the workers, one client per worker, one
  concurrency budget and one request-rate budget (``max_requests_per_minute``)
  across the cluster, written as store shards with sidecars and a manifest;
  resumable shard by shard.

Everything runs on the current dask scheduler, a ``distributed.Client`` when
one is active (``embed`` needs one).  This module is ``pplx_codec.dask``;
inside the package, ``import dask`` still means the dask library (absolute
imports).
"""

from __future__ import annotations

from .scaleout.embed import EmbedError, EmbedResult, PartitionError, embed
from .scaleout.sharded_search import norms, search, search_rescore
from .scaleout.shards import MANIFEST, ShardArray, from_shards

__all__ = ["search", "search_rescore", "norms", "from_shards", "ShardArray", "embed", "EmbedResult", "EmbedError",
           "PartitionError", "MANIFEST"]
