"""Shards on disk as one lazy ``dask.array``: one block per shard.

Building the array reads only headers (a .npy header, a store's meta.json).
Each block is a task that memory-maps its shard on the worker that runs it,
and nothing is read until a search scans it.  A block is a
:class:`ShardArray`, a ``np.memmap`` that knows which shard it maps, so that
holding or moving one costs nothing:

- ``dask.sizeof`` counts it as a few bytes, not its file size: a worker
  holding memory-mapped shards does not think its memory is full and start
  spilling them (spilling would read every shard whole and write it back);
- pickled, or serialized by distributed to another worker or to disk, a whole
  shard travels as its path and is mapped again where it lands (shared
  storage, as on any cluster reading the same shards).  A slice of one
  travels as its data, like any array.

Besides, the search fuses a shard's opening into its per-block task when it
can (no ``db_norms``), so the block is not even a task result there.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterable
from pathlib import Path

import dask.array as da
import numpy as np
from dask.delayed import delayed
from dask.sizeof import sizeof

from .. import store
from ..store._core import npy_header
from ..store._meta import FILES, META

__all__ = ["from_shards", "ShardArray", "MANIFEST"]

#: The file :func:`pplx_codec.dask.embed` writes last into its output directory.
MANIFEST = "manifest.json"

#: Each encoding's dtype, as a store keeps it.
_DTYPES = {encoding: dtype for encoding, (_name, dtype) in FILES.items()}


def _files(kind: str, path: Path, encodings) -> list[str]:
    """The files a block of this shard reads, relative to ``path`` ("" for
    ``path`` itself): a .npy shard's file; a store's meta.json and the .npy
    file of every encoding it holds (``store.load`` opens them all)."""
    if kind == "npy":
        return [""]
    return [META] + [FILES[e][0] for e in encodings]


def _stamp(path: Path, files) -> tuple:
    """``(file, size, mtime_ns, inode, ctime_ns)`` of each file a block reads:
    part of the block's task key, and checked again by the task.  A rewrite
    is seen when it changes a file's size, replaces the file (a new inode:
    ``os.replace``, a store saved again) or lands in a later tick of the file
    system's clock than the stamp (mtime and ctime: ctime cannot be set back
    by the writer).  A same-size rewrite in place within the same tick
    (a few ms on Linux) is not: only reading the data could tell."""
    out = []
    for name in files:
        st = (path / name if name else path).stat()
        out.append((name, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns))
    return tuple(out)


def _as_stamp(stamp) -> tuple:
    # a stamp that travelled through msgpack (distributed) comes back as lists
    return tuple(tuple(f) for f in stamp)


def _check_stamp(path: str, stamp) -> None:
    stamp = _as_stamp(stamp)
    if _stamp(Path(path), [f[0] for f in stamp]) != stamp:
        raise ValueError(f"shard {path} changed since the array was built (rebuild it with from_shards)")


class ShardArray(np.memmap):
    """A memory-mapped shard (or a view of one) that pickles as its path.

    ``spec``: how to open the whole shard again, ``(kind, path, encoding,
    shape, stamp)``.  Only an array that is the whole mapping is pickled by
    reference; a slice, or an array computed from one, pickles its data.
    """

    spec: tuple | None = None
    _whole: tuple | None = None

    def __array_finalize__(self, obj):
        super().__array_finalize__(obj)
        self.spec = getattr(obj, "spec", None)
        self._whole = getattr(obj, "_whole", None)

    def _layout(self) -> tuple:
        return (self.__array_interface__["data"][0], self.shape, self.strides)

    @property
    def maps_file(self) -> bool:
        """True when this array's memory is the file's mapping (not a copy)."""
        # numpy's memmap keeps its mapping in _mmap (None for a view of memory
        # that is not the file's); numpy's stubs do not declare it
        return self._mmap is not None  # type: ignore[attr-defined]

    @property
    def is_whole(self) -> bool:
        return self.spec is not None and self.maps_file and self._layout() == self._whole

    def __reduce__(self):
        if self.is_whole:
            return (open_shard, self.spec)
        return (np.asarray, (np.array(self),))


def open_shard(kind: str, path: str, encoding: str | None, shape, stamp) -> np.ndarray:
    """The shard's rows, memory-mapped (runs on a worker).

    Not cached across tasks on purpose: the pages of a mapping that have been
    read count in the process's RSS, which is what distributed's memory
    limits (pause at 80%, restart at 95%) look at.  Mapped anew per task, a
    worker's RSS holds at most the shards its running tasks scan; kept, it
    would grow to every shard the worker ever scanned.  (Mapping again costs
    page faults, not reads: the data stays in the page cache.)
    """
    shape, stamp = tuple(shape), _as_stamp(stamp)
    _check_stamp(path, stamp)
    out = _map(kind, path, encoding, shape, stamp)
    _check_stamp(path, stamp)   # and still the same once mapped: not replaced in between
    return out


def _map(kind: str, path: str, encoding: str | None, shape: tuple, stamp: tuple) -> np.ndarray:
    if kind == "npy":
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    elif encoding is None:  # _describe gives every store shard its encoding
        raise ValueError(f"shard {path}: a store shard needs its encoding")
    else:
        a = getattr(store.load(path, mmap=True), encoding)
    if a.shape != shape:
        raise ValueError(f"shard {path} changed since the array was built: it holds {a.shape}, "
                         f"expected {shape} (rebuild it with from_shards)")
    if not isinstance(a, np.memmap):   # numpy maps no file for an empty array
        return a
    out = a.view(ShardArray)
    out.spec = (kind, path, encoding, shape, stamp)
    out._whole = out._layout()
    return out


@sizeof.register(ShardArray)
def _sizeof_shard(x: ShardArray) -> int:
    # the pages belong to the OS page cache, not to the worker's heap
    return 64 if x.maps_file else int(x.nbytes)


def _register_distributed() -> None:
    """distributed serializes ndarrays (subclasses too) by their buffer: send a
    whole shard as its spec instead."""
    try:
        from distributed.protocol import dask_deserialize, dask_serialize
    except ImportError:  # pragma: no cover - the dask extra installs distributed
        return

    @dask_serialize.register(ShardArray)
    def _serialize(x: ShardArray):
        if x.is_whole and x.spec is not None:  # (a whole shard has its spec)
            return {"shard": list(x.spec)}, []
        return {"shard": None}, [pickle.dumps(np.array(x), protocol=5)]

    @dask_deserialize.register(ShardArray)
    def _deserialize(header, frames):
        if header["shard"] is None:
            return pickle.loads(b"".join(bytes(f) for f in frames))
        try:
            return open_shard(*header["shard"])
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{e}: a whole shard is sent as its path, and this process cannot read it; "
                                    "bring a copy instead (e.g. x.map_blocks(np.array))") from None


_register_distributed()


def _manifest_shards(root: Path) -> list[Path]:
    """The non-empty shards a manifest lists; every field used checked by
    type (a ValueError naming the file, not an AttributeError from deeper)."""
    where = root / MANIFEST
    try:
        manifest = json.loads(where.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{where}: not a pplx-codec shard manifest ({e})") from None
    shards = manifest.get("shards") if isinstance(manifest, dict) else None
    if not isinstance(shards, list):
        raise ValueError(f"{where}: not a pplx-codec shard manifest (no list of shards)")
    out = []
    for i, s in enumerate(shards):
        count = s.get("count") if isinstance(s, dict) else None
        if type(count) is not int or count < 0:
            raise ValueError(f"{where}: shard {i} has no valid count ({s!r})")
        if count:
            if not isinstance(s.get("path"), str) or not s["path"]:
                raise ValueError(f"{where}: shard {i} has {count} rows but no path ({s!r})")
            out.append(root / s["path"])
    return out


def _expand(paths) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    elif not isinstance(paths, Iterable):
        raise TypeError(f"paths must be a path or an iterable of paths, got {type(paths).__name__}")
    out = []
    for p in paths:
        if not isinstance(p, (str, os.PathLike)):
            raise TypeError(f"each shard must be a path (str or os.PathLike), got {type(p).__name__}")
        p = Path(os.path.abspath(p))   # workers resolve paths themselves: make them absolute here
        out.extend(_manifest_shards(p) if (p / MANIFEST).is_file() else [p])
    if not out:
        raise ValueError("no shards given")
    return out


def _describe(path: Path, encoding: str | None):
    """(kind, encoding, shape, dtype, bitorder, files a block reads) from headers only."""
    if path.is_dir():
        s = store.load(path, mmap=True)
        have = s.encodings
        if encoding is None:
            if len(have) != 1:
                raise ValueError(f"store {path} holds {' and '.join(have)}: pass encoding='int8' or 'binary'")
            encoding = have[0]
        elif encoding not in have:
            raise ValueError(f"store {path} has no {encoding} encoding (it holds {', '.join(have)})")
        a = getattr(s, encoding)
        return ("store", encoding, a.shape, a.dtype, s.bitorder if encoding == "binary" else None,
                _files("store", path, s.encodings))
    if not path.is_file():
        raise FileNotFoundError(f"no shard at {path} (a .npy file, a store directory or an embed output "
                                "directory)")
    npy_header(path)   # exactly header + data (no trailing bytes), or a ValueError naming the file
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        raise ValueError(f"{path}: not a readable .npy file ({e})") from None
    if a.ndim != 2 or a.dtype not in _DTYPES.values():
        raise ValueError(f"{path} holds {a.dtype} {a.shape}: a shard is a 2-D int8 or uint8 array")
    if a.shape[0] and a.shape[1] > 1 and a.strides[1] != a.itemsize:
        raise ValueError(f"{path} is Fortran-ordered: rows are not contiguous (re-save it C-ordered)")
    enc = "int8" if a.dtype == np.int8 else "binary"
    if encoding is not None and encoding != enc:
        raise ValueError(f"{path} holds {a.dtype} ({enc}), not {encoding}")
    return "npy", None, a.shape, a.dtype, None, _files("npy", path, ())


def from_shards(paths, encoding: str | None = None) -> da.Array:
    """One ``dask.array`` over many shards, in order, one block per shard.

    ``paths``: ``.npy`` files (2-D int8 vectors or uint8 packed codes), store
    directories (:func:`pplx_codec.store.save`), or an output directory of
    :func:`pplx_codec.dask.embed` (its manifest's shards); or a list mixing
    them.  ``encoding``: ``"int8"`` or ``"binary"``, needed for stores that
    hold both.  All shards must agree on dtype and row width, and stores on
    bit order (a shard's codes in another order would give wrong distances
    silently).  Only headers are read here; a shard is memory-mapped by the
    task that uses it.
    """
    if encoding is not None and encoding not in _DTYPES:
        raise ValueError(f"encoding must be 'int8' or 'binary', got {encoding!r}")
    blocks: list[da.Array] = []
    specs: list[tuple] = []
    first: tuple | None = None
    orders: dict[str, Path] = {}
    for path in _expand(paths):
        kind, enc, shape, dtype, bitorder, files = _describe(path, encoding)
        if first is None:
            first = (path, dtype, shape[1])
        elif (dtype, shape[1]) != first[1:]:
            raise ValueError(f"shard {path} holds {dtype} rows of width {shape[1]} but {first[0]} holds "
                             f"{first[1]} rows of width {first[2]}: all shards must agree")
        if bitorder is not None:
            orders.setdefault(bitorder, path)
            if len(orders) > 1:
                a, b = list(orders.items())
                raise ValueError(f"shards mix bit orders: {b[1]} is {b[0]!r} but {a[1]} is {a[0]!r} "
                                 "(convert with pplx_codec.reverse_bitorder)")
        stamp = _stamp(path, files)
        spec = (kind, str(path), enc, tuple(shape), stamp)
        specs.append(spec)
        task = delayed(open_shard, pure=True)(*spec)
        blocks.append(da.from_delayed(task, shape=shape, dtype=dtype, meta=np.empty((0, 0), dtype)))
    out: da.Array = blocks[0] if len(blocks) == 1 else da.concatenate(blocks, axis=0)
    # what search() uses to give each shard one task that opens and scans it; any
    # operation on the array (slicing, rechunking) makes a new array without it
    out._pplx_shards = tuple(s for s in specs if s[3][0]) or tuple(specs[:1])  # type: ignore[attr-defined]
    return out


def shard_specs(x) -> tuple | None:
    """The shards behind ``x`` when it is an array made by :func:`from_shards`
    (one per block, in order), else None."""
    specs = getattr(x, "_pplx_shards", None)
    if specs is None or len(specs) != len(x.chunks[0]) or len(x.chunks[1]) != 1:
        return None
    if any(spec[3][0] != rows for spec, rows in zip(specs, x.chunks[0], strict=True)):
        return None
    return specs
