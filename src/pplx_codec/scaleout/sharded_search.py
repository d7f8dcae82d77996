"""Exact top-k over a ``dask.array`` of packed codes or int8 vectors.

One task per row block runs the single-machine kernel on the block as it is
(a memory-mapped shard is scanned in place, not copied), adds the block's
global row offset to its indices, and hands ``(keys, indices)`` to a tree of
:func:`pplx_codec.merge_topk` calls, ``split_every`` parts per merge.  Blocks
and merges keep ``min(k, rows)`` columns; only the answer is padded to ``k``
(on the client), so a ``k`` far above the row count costs the rows, not ``k``,
in every task.  An
array straight from :func:`~pplx_codec.dask.from_shards` gets tasks that map
their own shards (``shards_per_task`` of them, merged in the task): no block
is ever a task result, and no per-block alias task is left by graph fusion.

Why the answer is the single-machine answer, ties included: every search here
ranks by a total order, (key, global row index), so the global top-k rows of
a block are among that block's own top-k, and merging top-k lists by the same
order is associative.  The keys must carry the whole order, though:

- Hamming: the int32 distances are exact.
- cosine: the kernels rank by the float32 score itself (then the row), and
  every block computes the same float32 score for a row as one search would.
- dot: the kernels rank by the exact integer but report float32, which ties
  above 2**24 where the integers differ.  Each block therefore returns the
  exact int64 dot products of its top-k rows (re-read from the block: k rows
  per query), the tree merges on those, and only the final result is
  converted to float32, as the single-machine search reports it.
"""

from __future__ import annotations

import uuid

import dask
import dask.array as da
import numpy as np
from dask.delayed import Delayed, delayed

from .. import ranking
from .. import search as _local
from ..bits import pack_bits
from ..vectors import norms as _norms
from .shards import open_shard, shard_specs

__all__ = ["search", "search_rescore", "norms"]

_DESCENDING = {"hamming": False, "cosine": True, "dot": True}


def _codes_array(codes, name: str = "codes") -> da.Array:
    if not isinstance(codes, da.Array):
        raise TypeError(f"{name} must be a dask.array.Array (da.from_array(x, chunks=(rows, -1)) or "
                        f"pplx_codec.dask.from_shards(...)), got {type(codes).__name__}")
    if codes.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, bytes or dimensions), got {codes.ndim} dimension(s)")
    if codes.dtype not in (np.uint8, np.int8):
        raise TypeError(f"{name} must be uint8 packed codes or int8 vectors, got {codes.dtype}")
    if any(np.isnan(c) for c in codes.chunks[0]):
        raise ValueError(f"{name} has unknown chunk sizes (NaN): call .compute_chunk_sizes() first, the "
                         "search needs each block's global row offset")
    if len(codes.chunks[1]) > 1:
        # each task needs whole rows: join the column chunks (rows stay as chunked)
        codes = codes.rechunk({1: -1})
    return codes


def _metric(codes: da.Array, metric: str | None) -> str:
    if codes.dtype == np.uint8:
        metric = "hamming" if metric is None else metric
        if metric != "hamming":
            raise ValueError(f"uint8 codes are searched by metric='hamming', got {metric!r}")
    else:
        metric = "cosine" if metric is None else metric
        if metric not in ("cosine", "dot"):
            raise ValueError(f"int8 vectors are searched by metric='cosine' or 'dot', got {metric!r}")
    return metric


def _norms_column(db_norms, codes: da.Array) -> da.Array:
    """``db_norms`` as an ``(n, 1)`` dask array chunked like ``codes``' rows."""
    n = codes.shape[0]
    if isinstance(db_norms, da.Array):
        if db_norms.dtype != np.float32:
            raise TypeError(f"db_norms must be float32 (pplx_codec.norms / pplx_codec.dask.norms), "
                            f"got {db_norms.dtype}")
        if db_norms.shape != (n,):
            raise ValueError(f"db_norms must have shape ({n},), one norm per row, got {db_norms.shape}")
        return db_norms.rechunk((codes.chunks[0],))[:, None]
    # the local checks and messages; a norm of 0 is checked against its row by the block's search
    xn = ranking.check_db_norms(db_norms, n, codes.shape[1])
    return da.from_array(xn[:, None], chunks=(codes.chunks[0], (1,)))


_KEY_DTYPES = {"hamming": np.int32, "cosine": np.float32, "dot": np.int64}


def _topk(block, norms, queries, k, metric, threads, start):
    """The top-k of one row block, with global row indices.  Returns
    ``(keys, I)``: int32 distances, float32 cosines or exact int64 dots,
    ``min(k, rows)`` columns: a block never holds padding (with a ``k`` far
    above the row count, padding would be ``m x k`` per task)."""
    k = min(k, block.shape[0])
    if k == 0:
        m = queries.shape[0]
        return np.empty((m, 0), _KEY_DTYPES[metric]), np.empty((m, 0), np.int64)
    D: np.ndarray  # Hamming distances, cosines or exact dot products
    if metric == "hamming":
        D, I = _local.search_binary(queries, block, k, threads)
    elif metric == "cosine":
        xn = None
        if norms is not None:   # checked here first, to name a bad norm's row in the whole array
            xn = ranking.check_db_norms(np.ascontiguousarray(norms[:, 0]), block.shape[0], block.shape[1], block,
                                        offset=start)
        D, I = _local.search_int8(queries, block, k, "cosine", xn, threads)
    else:
        _, I = _local.search_int8(queries, block, k, "dot", threads=threads)
        # re-read the block's k rows per query (-1: none, k <= rows here; row 0 stands in)
        D = ranking.exact_dots(queries, I, lambda i: block[np.maximum(I[i], 0)])
    I[I >= 0] += start
    return D, I


def _block_topk(block, norms=None, *, queries, k, metric, threads, block_info=None):
    """A block of any dask array (map_blocks tells where it starts)."""
    return _topk(block, norms, queries, k, metric, threads, int(block_info[0]["array-location"][0][0]))


def _shards_topk(specs, norms, starts, *, queries, k, metric, threads):
    """Consecutive shards of a from_shards array, each opened (memory-mapped)
    and scanned by this task, merged here."""
    parts = [_topk(open_shard(*spec), nb, queries, k, metric, threads, start)
             for spec, nb, start in zip(specs, norms, starts, strict=True)]
    return parts[0] if len(parts) == 1 else _merge(parts, k, _DESCENDING[metric])


def _block_nodes(codes: da.Array, norms_col, q, k, metric, threads, shards_per_task) -> list:
    """Delayed ``(keys, I)`` results of consecutive row blocks, in order."""
    kw = dict(queries=q, k=k, metric=metric, threads=threads)
    specs = shard_specs(codes)
    if specs is not None:
        # an array straight from from_shards: tasks that map their shards and scan them
        # (with a generic graph, dask's fusion of the opening into the scan leaves an alias
        # task per block behind, doubling the scheduler's work per query)
        starts = np.concatenate([[0], np.cumsum(codes.chunks[0])[:-1]]).astype(int).tolist()
        norm_parts = [None] * len(specs) if norms_col is None else list(norms_col.to_delayed().ravel())
        g = shards_per_task
        return [delayed(_shards_topk, pure=False)(list(specs[i:i + g]), norm_parts[i:i + g], starts[i:i + g], **kw)
                for i in range(0, len(specs), g)]
    if shards_per_task != 1:
        raise ValueError("shards_per_task applies to arrays made by from_shards (rechunk others instead)")
    args = [codes] if norms_col is None else [codes, norms_col]
    # Keys are new on every call (uuid): a search is never answered from a previous
    # one's results still held by the cluster, and never races their release.
    # to_delayed optimizes the array graph: a block's loading is fused into its
    # search task when the block has no other use (no db_norms computed from it).
    parts = da.map_blocks(_block_topk, *args, **kw, chunks=(tuple(1 for _ in codes.chunks[0]), (1,)),
                          dtype=object, meta=np.empty((0, 0), object), name="pplx-topk-" + uuid.uuid4().hex)
    return list(parts.to_delayed().ravel())


def _merge(parts, k, descending):
    """Merged top-k of parts that hold no padding, without padding either:
    ``min(k, candidates)`` columns."""
    k = min(k, sum(p[1].shape[1] for p in parts))
    if k == 0:
        return parts[0]
    return _local.merge_topk(parts, k, descending=descending)


def _finish(result, metric, one, k):
    """The search's answer from the tree's: float32 scores for dot, and the
    padding up to ``k``, here only (appended, not merge_topk's padding: that
    sorts again, by the float32 scores, which would undo the exact integer
    order of a dot search)."""
    D, I = result
    if metric == "dot":
        D = ranking.dot_scores(D, I)
    return ranking.squeeze(one, *ranking.pad(D, I, k, _DESCENDING[metric]))


def _norms_block(block):
    return _norms(block)[:, None]


def norms(vectors: da.Array) -> da.Array:
    """Exact float32 L2 norms of a dask array of int8 rows, lazily, chunked
    like its rows: compute (or ``.persist()``) them once and pass them as
    ``db_norms=`` to search a large array by cosine repeatedly."""
    vectors = _codes_array(vectors, "vectors")
    if vectors.dtype != np.int8:
        raise TypeError(f"vectors must be int8, got {vectors.dtype}")
    # da.map_blocks, not the method: dask's @wraps of the method hides its signature from type checkers
    col = da.map_blocks(_norms_block, vectors, chunks=(vectors.chunks[0], (1,)), dtype=np.float32,
                        meta=np.empty((0, 0), np.float32))
    return col[:, 0]


def _check_tree_options(split_every, shards_per_task) -> None:
    if isinstance(split_every, bool) or not isinstance(split_every, int) or split_every < 2:
        raise ValueError(f"split_every must be an integer >= 2, got {split_every!r}")
    if isinstance(shards_per_task, bool) or not isinstance(shards_per_task, int) or shards_per_task < 1:
        raise ValueError(f"shards_per_task must be a positive integer, got {shards_per_task!r}")


def search(codes: da.Array, queries: np.ndarray, k: int, metric: str | None = None, db_norms=None,
           threads: int = 1, split_every: int = 8, shards_per_task: int = 1, compute: bool = True):
    """Exact top-k of ``queries`` over every row of ``codes``: the same
    ``(D, I)`` as :func:`pplx_codec.search_binary` / :func:`pplx_codec.search_int8`
    on the concatenated rows, indices and ties included.

    ``codes``: a 2-D ``dask.array`` chunked by rows (column chunks are joined),
    uint8 packed codes (``metric="hamming"``) or int8 vectors (``"cosine"``,
    the default, or ``"dot"``).  ``queries``: numpy, ``(m, w)`` or one 1-D
    query (1-D results), the same dtype and width as the rows.  ``db_norms``:
    float32 norms of the rows, numpy or dask (see :func:`norms`), for cosine;
    computed per block when omitted.  ``threads``: kernel threads inside each
    task (1 suits one task per worker thread).  ``split_every``: parts per
    merge in the reduction tree.  ``shards_per_task``: for an array straight
    from :func:`from_shards`, how many consecutive shards one task scans
    (fewer, larger tasks: less scheduler work per query when shards are
    many and small).  ``compute=False`` returns a ``Delayed``
    whose value is ``(D, I)``.  Runs on the current dask scheduler: a
    ``distributed.Client`` if one is active.
    """
    codes = _codes_array(codes)
    metric = _metric(codes, metric)
    k = ranking.check_k(k, codes.shape[0])
    threads = ranking.check_threads(threads)
    _check_tree_options(split_every, shards_per_task)
    if metric != "cosine" and db_norms is not None:
        raise ValueError("db_norms is only used with metric='cosine'")
    tree = _tree(codes, queries, k, metric, db_norms, threads, split_every, shards_per_task)
    one = queries.ndim == 1   # queries are checked by now
    if compute:   # padded here, on the client: only the answer is ever m x k
        return _finish(dask.compute(tree)[0], metric, one, k)
    return delayed(_finish, pure=False)(tree, metric, one, k)


def _tree(codes: da.Array, queries, k: int, metric: str, db_norms, threads: int, split_every: int,
          shards_per_task: int) -> Delayed:
    """The reduction tree of a search (arguments checked): a ``Delayed``
    ``(keys, I)`` of ``min(k, rows)`` columns, best first, no padding."""
    # The local search on zero rows checks the queries exactly as a local
    # search of `codes` would (type, dtype, shape, width), here, before any
    # task; with k=1, as it allocates its (m, k) result even for no rows.
    empty = np.empty((0, codes.shape[1]), codes.dtype)
    if metric == "hamming":
        _local.search_binary(queries, empty, 1)
    else:
        _local.search_int8(queries, empty, 1, metric)
    q = np.ascontiguousarray(queries[None] if queries.ndim == 1 else queries)

    norms_col = None if db_norms is None else _norms_column(db_norms, codes)
    nodes = _block_nodes(codes, norms_col, q, k, metric, threads, shards_per_task)
    descending = _DESCENDING[metric]
    while len(nodes) > 1:
        nodes = [delayed(_merge, pure=False)(nodes[i:i + split_every], k, descending)
                 for i in range(0, len(nodes), split_every)]
    return nodes[0]


class _Candidates:
    """The int8 rows of a query batch's candidates, gathered once; answers
    what :func:`pplx_codec.ranking.rescore` asks an ``Int8Index`` (dots,
    norms by global id)."""

    def __init__(self, ids: np.ndarray, rows: np.ndarray):
        self.ids, self.rows, self.norms = ids, rows, _norms(rows)

    def _pos(self, ids: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.ids, np.where(ids < 0, self.ids[:1] if self.ids.size else 0, ids))

    def exact_dots(self, q: np.ndarray, ids: np.ndarray) -> np.ndarray:
        if not self.ids.size:   # no rows gathered: every candidate is padding
            return np.zeros(ids.shape, np.int64)
        pos = self._pos(ids)
        return ranking.exact_dots(q, ids, lambda i: self.rows[pos[i]])

    def norms_of(self, ids: np.ndarray) -> np.ndarray:
        if not self.ids.size:
            return np.zeros(ids.shape, np.float32)
        return np.where(ids >= 0, self.norms[self._pos(ids)], np.float32(0)).astype(np.float32)


def search_rescore(codes: da.Array, vectors: da.Array, queries: np.ndarray, k: int, rescore: int = 4,
                   bitorder: str = "little", threads: int = 1, split_every: int = 8, shards_per_task: int = 1):
    """Binary retrieval with int8 rescoring over dask arrays: the ``k *
    rescore`` nearest ``codes`` by Hamming distance (a full scan, as
    :func:`search`), then exact int8 cosine on those candidates only, whose
    rows are the only ones read from ``vectors``.  The same ``(S, I)`` as
    :meth:`pplx_codec.Index.search` over the same rows.

    ``codes``: uint8 packed in ``bitorder``, and ``vectors``: int8, the same
    rows in the same order (e.g. ``from_shards(stores, encoding="binary")``
    and ``encoding="int8"``).  ``queries``: int8 ``(m, dim)`` or ``(dim,)``.
    Two round trips to the cluster: the scan, then the candidates' rows.
    """
    codes, vectors = _codes_array(codes), _codes_array(vectors, "vectors")
    if codes.dtype != np.uint8 or vectors.dtype != np.int8:
        raise TypeError(f"codes must be uint8 and vectors int8, got {codes.dtype} and {vectors.dtype}")
    if codes.shape[0] != vectors.shape[0] or 8 * codes.shape[1] != vectors.shape[1]:
        raise ValueError(f"codes {codes.shape} and vectors {vectors.shape} must be the same rows "
                         f"(dimensions = 8 x code bytes)")
    k = ranking.check_k(k, codes.shape[0])
    candidates = ranking.check_rescore(rescore, k, codes.shape[0])
    if not isinstance(queries, np.ndarray) or queries.dtype != np.int8:
        raise TypeError("queries must be an int8 numpy array")
    if queries.ndim not in (1, 2) or queries.shape[-1] != vectors.shape[1]:
        raise ValueError(f"queries must be (m, {vectors.shape[1]}) or ({vectors.shape[1]},) int8, "
                         f"got shape {queries.shape}")
    threads = ranking.check_threads(threads)
    _check_tree_options(split_every, shards_per_task)
    one = queries.ndim == 1
    q = np.ascontiguousarray(queries[None] if one else queries)
    # the candidates unpadded (min(k * rescore, rows) columns), so that a k far above
    # the row count costs the rows, not k, until the answer is padded
    _, cand = dask.compute(_tree(codes, pack_bits(q, bitorder), candidates, "hamming", None, threads,
                                 split_every, shards_per_task))[0]
    ids = np.unique(cand[cand >= 0])
    rows = vectors[ids].compute() if ids.size else np.empty((0, vectors.shape[1]), np.int8)
    S, I = ranking.rescore(q, cand, _Candidates(ids, np.ascontiguousarray(rows)), k)
    return ranking.squeeze(one, *ranking.pad(S, I, k, descending=True))
