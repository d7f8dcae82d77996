"""Embeddings on disk: a directory of .npy files plus sidecars, memory-mapped
on load, built atomically or resumably; Arrow/Parquet conversion; export to
faiss and usearch.

A store directory::

    vectors.npy   int8 (count, dimensions)            when the int8 encoding is stored
    codes.npy     uint8 (count, dimensions // 8)      packed binary codes, in meta's bitorder
    meta.json     {"format": "pplx-codec-store", "version": 1, "count", "dimensions",
                   "encodings": ["int8", "binary"], "bitorder", "model", ...caller's keys}
    texts.jsonl   optional: one JSON string per line, line i = row i
    ids.jsonl, metadata.jsonl, deleted.npy
                  optional sidecars of a document store (listed in meta's "sidecars"):
                  row ids, row metadata, tombstones (``delete_rows``)

``save()`` writes one at once, ``Writer`` fills one range by range across
crashes and restarts, ``load()`` opens one (``np.memmap``: a 100M-row store
opens without reading it).  ``to_arrow``/``from_arrow``/``write_parquet``/
``read_parquet`` need the ``arrow`` extra (pyarrow); ``to_faiss_binary_index``
and ``to_usearch`` need faiss-cpu / usearch.
"""

from ._core import load, save
from ._docs import delete_rows
from ._meta import FORMAT, VERSION
from ._stored import Stored
from ._texts import Texts
from .arrow import from_arrow, read_parquet, to_arrow, write_parquet
from .export import to_faiss_binary_index, to_usearch
from .writer import JobInUse, Writer

__all__ = [
    "save",
    "load",
    "delete_rows",
    "Stored",
    "Texts",
    "Writer",
    "JobInUse",
    "to_arrow",
    "from_arrow",
    "write_parquet",
    "read_parquet",
    "to_faiss_binary_index",
    "to_usearch",
    "FORMAT",
    "VERSION",
]
