"""The store layout: file names, meta.json, and the checks of what a store holds.

One place decides what a valid store is, for save(), load(), the Writer, the
Arrow conversion and the Dask shards alike.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .. import _checks

FORMAT = "pplx-codec-store"
VERSION = 1
META = "meta.json"
TEXTS = "texts.jsonl"
#: encoding -> (file, dtype); also the order encodings are listed in
FILES = {"int8": ("vectors.npy", np.dtype(np.int8)), "binary": ("codes.npy", np.dtype(np.uint8))}
#: optional per-row sidecars (a document store's ids, metadata and tombstones: store/_docs.py), in the order
#: meta.json's ``sidecars`` lists them; a store without that key (every store written before them) has none
SIDECARS = {"ids": "ids.jsonl", "metadata": "metadata.jsonl", "deleted": "deleted.npy"}
#: meta.json keys the store computes; a caller's meta may repeat them only with the same value
STRUCTURAL = ("format", "version", "count", "dimensions", "encodings", "bitorder")


def row_width(encoding: str, dimensions: int) -> int:
    return dimensions // 8 if encoding == "binary" else dimensions


def check_dimensions(dimensions, encodings) -> int:
    d = _checks.positive_int(dimensions, "dimensions")
    if "binary" in encodings and d % 8:
        raise ValueError(f"binary codes pack 8 dimensions per byte: dimensions must be a multiple of 8, got {d}")
    return d


def check_encodings(encodings) -> tuple[str, ...]:
    if isinstance(encodings, str):
        encodings = (encodings,)
    try:
        given = list(encodings)
    except TypeError:
        raise TypeError(f"encodings must be a sequence of 'int8'/'binary', got {type(encodings).__name__}") from None
    unknown = [e for e in given if e not in FILES]
    if unknown or not given or len(set(given)) != len(given):
        raise ValueError(f"encodings must be 'int8', 'binary' or both (once each), got {given!r}")
    return tuple(e for e in FILES if e in given)


def check_rows(x, encoding: str) -> np.ndarray:
    """A 2-D array of the encoding's dtype (int8 vectors, uint8 packed codes)."""
    dtype = FILES[encoding][1]
    name = "int8" if encoding == "int8" else "binary"
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")
    if x.dtype != dtype:
        what = "int8 vectors" if encoding == "int8" else "packed uint8 codes (pplx_codec.pack_bits)"
        raise TypeError(f"{name} must be {what}, got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, {'dimensions' if encoding == 'int8' else 'bytes'}), "
                         f"got shape {x.shape}; one row is x[None]")
    if x.shape[1] == 0:
        raise ValueError(f"{name} rows are empty (shape {x.shape})")
    return x


def dimensions_of(int8, binary) -> int:
    """Dimensions implied by the arrays given (validated), which must agree."""
    if int8 is not None and binary is not None:
        if int8.shape[0] != binary.shape[0]:
            raise ValueError(f"int8 has {int8.shape[0]} rows but binary has {binary.shape[0]}: "
                             "both encodings must hold the same rows")
        if int8.shape[1] != 8 * binary.shape[1]:
            raise ValueError(f"int8 has {int8.shape[1]} dimensions but binary codes of {binary.shape[1]} bytes "
                             f"hold {8 * binary.shape[1]}: both encodings must have the same dimensions "
                             "(binary needs a multiple of 8)")
    return int8.shape[1] if int8 is not None else 8 * binary.shape[1]


def check_meta(meta) -> dict:
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    bad = [k for k in meta if not isinstance(k, str)]
    if bad:
        raise TypeError(f"meta keys must be strings, got {bad[0]!r}")
    try:
        json.dumps(dict(meta), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"meta must be JSON-serializable: {e}") from None
    return dict(meta)


def build_meta(count: int, dimensions: int, encodings, bitorder: str, extras: Mapping) -> dict:
    """meta.json: the structural keys, ``model``, then the caller's keys
    (checked by :func:`check_fields`, as load() will check them)."""
    encodings = list(check_encodings(encodings))
    computed = dict(format=FORMAT, version=VERSION, count=count, dimensions=dimensions, encodings=encodings,
                    bitorder=bitorder)
    for k in STRUCTURAL:
        if k in extras and extras[k] != computed[k]:
            raise ValueError(f"meta[{k!r}] = {extras[k]!r} contradicts the data ({computed[k]!r}); "
                             f"the store sets {', '.join(STRUCTURAL)} itself")
    model = extras.get("model")
    if model is not None and not isinstance(model, str):
        raise TypeError(f"meta['model'] must be a str or None, got {type(model).__name__}")
    return check_fields({**computed, "model": model, **{k: v for k, v in extras.items() if k not in STRUCTURAL}})


def json_int(value, name: str, minimum: int) -> int:
    """An integer read from JSON: not a bool (``true`` == 1 in Python), not a
    float (``1.0`` == 1), at least ``minimum``."""
    if type(value) is not int or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def json_encodings(value) -> list[str]:
    """Encodings read from JSON: a list of known names, once each, in the
    canonical order.  A bare string is corrupt here (iterating it would give
    its letters)."""
    if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
        raise ValueError(f"encodings must be a list of 'int8'/'binary', got {value!r}")
    return list(check_encodings(value))


def check_fields(meta: dict) -> dict:
    """The one check of every meta.json field this package reads, by type and
    value: count, dimensions, encodings, bitorder, model (format and version
    are checked first, by :func:`parse_meta`).  Returns the meta with its
    encodings in canonical order.  Raises ``ValueError``."""
    try:
        encodings = json_encodings(meta.get("encodings"))
        json_int(meta.get("count"), "count", 0)
        check_dimensions(json_int(meta.get("dimensions"), "dimensions", 1), encodings)
        _checks.bitorder(meta.get("bitorder"))
    except TypeError as e:   # e.g. an unhashable bitorder
        raise ValueError(str(e)) from None
    model = meta.get("model")
    if model is not None and not isinstance(model, str):
        raise ValueError(f"model must be a string or null, got {model!r}")
    if "sidecars" in meta:
        json_sidecars(meta["sidecars"])
    return {**meta, "encodings": encodings}


def json_sidecars(value) -> list[str]:
    """meta.json's ``sidecars``: a list of known sidecar names, once each, in
    the canonical order (absent: none)."""
    if value is None:
        return []
    if (not isinstance(value, list) or not all(isinstance(v, str) and v in SIDECARS for v in value)
            or len(set(value)) != len(value)):
        raise ValueError(f"sidecars must be a list of {', '.join(map(repr, SIDECARS))} (once each), got {value!r}")
    return [k for k in SIDECARS if k in value]


def parse_meta(raw, where) -> dict:
    """Check a meta.json read from disk: a ``ValueError`` naming ``where`` for
    anything but a valid store's metadata, never a ``KeyError``/``TypeError``
    later."""
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ValueError(f"{where}: not a pplx-codec store (format is not {FORMAT!r})")
    version = raw.get("version")
    if type(version) is not int or version != VERSION:
        raise ValueError(f"{where}: unsupported store version {version!r} "
                         f"(this pplx-codec reads version {VERSION}; upgrade pplx-codec)")
    try:
        return check_fields(raw)
    except ValueError as e:
        raise ValueError(f"{where}: corrupt meta.json: {e}") from None


def partial_path(final: Path) -> Path:
    """Where a Writer builds the store that will be ``final``."""
    return final.with_name(final.name + ".partial")


def is_store(path: Path) -> bool:
    try:
        with open(path / META, encoding="utf-8") as f:
            return json.load(f).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False
