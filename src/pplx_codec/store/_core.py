"""save() / load() of a store directory, and the .npy files in it."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Literal, overload

import numpy as np

from . import _fs
from ._docs import read_sidecars, write_sidecars
from ._fs import write_npy
from ._meta import FILES, META, TEXTS, is_store, parse_meta, partial_path, row_width
from ._payload import prepare
from ._stored import Stored
from ._texts import Texts, write_texts

_WHAT = "a pplx-codec store"


def save(path: str | os.PathLike[str], embeddings=None, *, int8: np.ndarray | None = None,
         binary: np.ndarray | None = None, bitorder: str | None = None, meta: dict | None = None,
         texts=None, ids=None, metadata=None, deleted=None) -> Stored:
    """Write a store at ``path`` and return it loaded (memory-mapped).

    ``embeddings``: a :class:`pplx_codec.Embeddings` (its ``encoding_format``
    picks the file, its model and usage go to meta.json) or a ``Stored`` (a
    copy); or give ``int8=`` ``(n, d)`` int8 and/or ``binary=`` ``(n, d // 8)``
    uint8 arrays (both may be given, with the same ``n`` and ``d``).
    ``bitorder``: the order of ``codes.npy``, ``"little"`` (Perplexity's) or
    ``"big"``; by default an ``Embeddings``' or ``Stored``'s own order, else
    ``"little"``.  Explicit ``binary=`` codes must be in that order already;
    a source's codes in the other order are converted.  ``meta``: extra JSON
    keys for meta.json.  ``texts``: one str per row.  ``ids`` (one unique str
    per row), ``metadata`` (one JSON-serializable dict per row) and
    ``deleted`` (a bool mask of rows: tombstones) are the optional sidecars a
    document store keeps (``store/_docs.py``); a ``Stored`` source's own are
    copied unless given.

    Everything is written into a directory next to ``path``, synced, and then
    renamed into place in one step: ``path`` is never half-written.  An
    existing ``path`` is replaced only if it is a store (or an empty
    directory); anything else raises ``FileExistsError``.
    """
    payload = prepare(embeddings, int8, binary, bitorder, meta, texts)
    if isinstance(embeddings, Stored):
        ids = embeddings.ids if ids is None else ids
        metadata = embeddings.metadata if metadata is None else metadata
        deleted = embeddings.deleted if deleted is None else deleted
    final = Path(path)
    _fs.check_replaceable(final, is_store, _WHAT)   # fail before writing gigabytes
    with _fs.staging(final) as tmp:
        # the sidecars are checked (and written) first: meta.json then lists what is there
        sidecars = write_sidecars(tmp, payload.meta["count"], ids, metadata, deleted)
        payload.meta.pop("sidecars", None)
        if sidecars:
            payload.meta["sidecars"] = sidecars
        for enc, a in payload.arrays.items():
            write_npy(tmp / FILES[enc][0], a)
        finish(tmp, payload.meta, payload.texts)
        install(tmp, final)
    return load(final)


def finish(tmp: Path, meta: dict, texts) -> None:
    """The last files of a store: texts, then meta.json (what makes it a store)."""
    if texts is not None:
        write_texts(tmp / TEXTS, texts, meta["count"])
    _fs.write_json(tmp / META, meta)


def install(tmp: Path, final: Path) -> None:
    _fs.install(tmp, final, is_store, _WHAT)


def load(path: str | os.PathLike[str], mmap: bool = True) -> Stored:
    """Open the store at ``path``.  ``mmap=True`` (default): read-only
    ``np.memmap`` arrays, nothing is read until used (a 100M-row store opens
    instantly); ``mmap=False``: plain arrays read into memory.  Texts are read
    on demand either way.  Raises ``FileNotFoundError`` when ``path`` is not a
    store and ``ValueError`` when it is corrupt (meta.json contradicts the
    files, unknown version).  The sidecars meta.json lists (ids, metadata,
    tombstones: see :func:`save`) are read and checked here, whole."""
    root = Path(path)
    if not root.is_dir():
        if root.exists():
            raise FileNotFoundError(f"{root} is a file, not a store directory")
        hint = f" (an unfinished job is at {partial_path(root)}: resume it with Writer.open)" \
            if partial_path(root).is_dir() else ""
        raise FileNotFoundError(f"no store at {root}{hint}")
    try:
        raw = json.loads((root / META).read_bytes())
    except FileNotFoundError:
        raise FileNotFoundError(f"{root} is not a pplx-codec store (no {META})") from None
    except ValueError as e:   # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{root / META}: corrupt store: {e}") from None
    meta = parse_meta(raw, root)
    arrays = {enc: open_npy(root / FILES[enc][0], FILES[enc][1],
                            (meta["count"], row_width(enc, meta["dimensions"])), "r" if mmap else None)
              for enc in meta["encodings"]}
    texts = Texts(root / TEXTS, meta["count"]) if (root / TEXTS).is_file() else None
    return Stored(meta, arrays.get("int8"), arrays.get("binary"), texts, root, **read_sidecars(root, meta))


def npy_header(path: Path) -> tuple[np.dtype, tuple, bool]:
    """``(dtype, shape, fortran_order)`` from a .npy file's header, once the
    file's size is checked to be exactly the header plus the data it
    announces.  numpy itself ignores bytes after the data, which hides a file
    that was appended to or overwritten by a smaller array.  Raises
    ``ValueError`` naming the file."""
    fmt = np.lib.format
    with open(path, "rb") as f:
        try:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(f)
            else:   # 3.0 only adds UTF-8 field names: never an int8/uint8/bool array
                raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
        except (ValueError, EOFError) as e:
            raise ValueError(f"{path}: not a readable .npy file ({e})") from None
        header = f.tell()
        size = os.fstat(f.fileno()).st_size
    expected = header + math.prod(shape) * dtype.itemsize
    if size != expected:
        raise ValueError(f"{path}: not a readable .npy file (its header announces {dtype} {shape}: "
                         f"{expected} bytes with the {header}-byte header, but the file has {size} bytes)")
    return dtype, shape, fortran


@overload
def open_npy(path: Path, dtype: np.dtype, shape: tuple[int, ...], mmap_mode: Literal["r+"]) -> np.memmap: ...
@overload
def open_npy(path: Path, dtype: np.dtype, shape: tuple[int, ...], mmap_mode: Literal["r"] | None) -> np.ndarray: ...
def open_npy(path: Path, dtype: np.dtype, shape: tuple[int, ...], mmap_mode: Literal["r", "r+"] | None) -> np.ndarray:
    """A store's .npy file, checked against what meta.json (or job.json) says."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: incomplete store")
    try:
        npy_header(path)
    except ValueError as e:
        raise ValueError(f"{e}: corrupt store") from None
    try:
        # numpy's "r+" silently extends a short file with zeros: check through "r" first
        a = np.load(path, mmap_mode="r" if mmap_mode == "r+" else mmap_mode, allow_pickle=False)
    except (ValueError, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npy file ({e}): corrupt store") from None
    if a.dtype != dtype or a.shape != shape:
        raise ValueError(f"{path} holds {a.dtype} {a.shape} but the store's metadata says {dtype} {shape}: "
                         "corrupt store")
    if a.size and not a.flags.c_contiguous:
        raise ValueError(f"{path} is Fortran-ordered: rows are not contiguous (re-save it)")
    return np.load(path, mmap_mode="r+") if mmap_mode == "r+" else a


__all__ = ["Stored", "save", "load"]
