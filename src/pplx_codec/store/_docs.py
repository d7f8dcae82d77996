"""A store's optional per-row sidecars: what a document store keeps beside the rows.

    ids.jsonl       one JSON string per line, line i = row i's id (unique)
    metadata.jsonl  one JSON object per line, line i = row i's metadata
    deleted.npy     bool (count,): True marks a deleted row (a tombstone)

meta.json's ``sidecars`` lists the ones a store has (``_meta.SIDECARS``); a
store without the key has none, so every store written before them reads as
it did.  A listed sidecar must be there and hold one entry per row; a file
no list names is not read (a delete interrupted between its two renames left
it: the delete did not happen).  Tombstones are written in place by
:func:`delete_rows` (the mask renamed over the old one, then meta.json), so
deleting rows does not rewrite the store; ``save()`` writes all three.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from . import _fs
from ._meta import META, SIDECARS, json_sidecars, parse_meta
from ._texts import Texts, write_texts

__all__ = ["check_ids", "check_metadata", "check_deleted", "write_sidecars", "read_sidecars", "delete_rows"]


def check_ids(ids, count: int) -> list[str]:
    """One str id per row, no id twice (a ``ValueError`` names the first repeat)."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise TypeError(f"ids must be a sequence of str (one per row), got {type(ids).__name__}")
    ids = list(ids)
    if len(ids) != count:
        raise ValueError(f"got {len(ids)} ids for {count} rows")
    seen: set[str] = set()
    for i, x in enumerate(ids):
        if not isinstance(x, str):
            raise TypeError(f"ids[{i}] must be str, got {type(x).__name__}")
        if x in seen:
            raise ValueError(f"ids[{i}] = {x!r} repeats an earlier id: ids must be unique")
        seen.add(x)
    return ids


def check_metadata(metadata, count: int) -> list[dict]:
    """One JSON-serializable dict (str keys) per row."""
    if isinstance(metadata, (str, bytes, Mapping)) or not isinstance(metadata, Sequence):
        raise TypeError(f"metadata must be a sequence of dicts (one per row), got {type(metadata).__name__}")
    if len(metadata) != count:
        raise ValueError(f"got {len(metadata)} metadata dicts for {count} rows")
    out = []
    for i, m in enumerate(metadata):
        if not isinstance(m, Mapping) or not all(isinstance(k, str) for k in m):
            raise TypeError(f"metadata[{i}] must be a dict with str keys, got {type(m).__name__}")
        try:
            json.dumps(dict(m), allow_nan=False)
        except (TypeError, ValueError) as e:
            raise TypeError(f"metadata[{i}] must be JSON-serializable: {e}") from None
        out.append(dict(m))
    return out


def check_deleted(deleted, count: int) -> np.ndarray:
    """A bool mask of ``count`` rows (True: deleted)."""
    if not isinstance(deleted, np.ndarray) or deleted.dtype != np.bool_ or deleted.shape != (count,):
        what = f"{deleted.dtype} {deleted.shape}" if isinstance(deleted, np.ndarray) else type(deleted).__name__
        raise TypeError(f"deleted must be a numpy bool array of shape ({count},), got {what}")
    return np.ascontiguousarray(deleted)


def write_sidecars(tmp: Path, count: int, ids=None, metadata=None, deleted=None) -> list[str]:
    """Write the sidecars given into the staging directory ``tmp`` (each
    checked first); the names written, for meta.json's ``sidecars``."""
    id_list = None if ids is None else check_ids(ids, count)
    dicts = None if metadata is None else check_metadata(metadata, count)
    mask = None if deleted is None else check_deleted(deleted, count)
    if id_list is not None:
        write_texts(tmp / SIDECARS["ids"], id_list, count)
    if dicts is not None:
        with open(tmp / SIDECARS["metadata"], "wb") as f:
            for m in dicts:
                f.write(json.dumps(m, ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogatepass"))
                f.write(b"\n")
            _fs.fsync_file(f)
    if mask is not None:
        _fs.write_npy(tmp / SIDECARS["deleted"], mask)
    given = {"ids": id_list, "metadata": dicts, "deleted": mask}
    return [k for k, v in given.items() if v is not None]


def read_sidecars(root: Path, meta: dict) -> dict:
    """The sidecars meta.json lists, read and checked: ``{"ids": list[str],
    "metadata": list[dict], "deleted": bool array}`` (absent ones None).
    ``ValueError`` naming the file for anything but what meta.json says."""
    count = meta["count"]
    out: dict = dict.fromkeys(SIDECARS)
    for name in json_sidecars(meta.get("sidecars")):
        path = root / SIDECARS[name]
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: incomplete store (meta.json lists it)")
        try:
            if name == "ids":
                out[name] = check_ids(list(Texts(path, count)), count)
            elif name == "metadata":
                out[name] = check_metadata(_read_objects(path), count)
            else:
                out[name] = check_deleted(np.load(path, allow_pickle=False), count)
        except (TypeError, ValueError, EOFError) as e:
            raise ValueError(f"{path}: corrupt store: {e}") from None
    return out


def _read_objects(path: Path) -> list:
    with open(path, "rb") as f:
        return [json.loads(line) for line in f]


def delete_rows(path: str | os.PathLike[str], rows) -> np.ndarray:
    """Mark ``rows`` of the store at ``path`` deleted (tombstones: the rows
    stay in the files, and ``load()`` gives the mask as ``Stored.deleted``).
    Writes only the mask (renamed over the old one) and then meta.json, so a
    crash in between leaves the store as it was.  Returns the new mask."""
    root = Path(path)
    meta = parse_meta(json.loads((root / META).read_bytes()), root)
    count = meta["count"]
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if rows.size and (rows.min() < 0 or rows.max() >= count):
        raise IndexError(f"rows to delete must be in 0..{count - 1}, got {rows.min()}..{rows.max()}")
    mask = read_sidecars(root, meta)["deleted"]
    mask = np.zeros(count, bool) if mask is None else mask.copy()
    mask[rows] = True
    _fs.replace_file(root / SIDECARS["deleted"], lambda tmp: _fs.write_npy(tmp, mask))
    listed = json_sidecars(meta.get("sidecars"))
    if "deleted" not in listed:
        _fs.replace_json(root / META, {**meta, "sidecars": [k for k in SIDECARS if k in {*listed, "deleted"}]})
    return mask
