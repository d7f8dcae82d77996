"""The store layout: file names, meta.json, input checks, texts.jsonl.

One place decides what a valid store is, for save(), load(), the Writer and
the Arrow conversion alike.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .. import _checks
from ..bits import reverse_bitorder
from ..constants import API_BITORDER, ENCODINGS
from ..results import ContextualizedEmbeddings, Embeddings

FORMAT = "pplx-codec-store"
VERSION = 1
META = "meta.json"
TEXTS = "texts.jsonl"
#: encoding -> (file, dtype); also the order encodings are listed in
FILES = {"int8": ("vectors.npy", np.dtype(np.int8)), "binary": ("codes.npy", np.dtype(np.uint8))}
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
    return {**meta, "encodings": encodings}


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


@dataclasses.dataclass
class Payload:
    """Validated arrays and meta, ready to be written or converted."""

    int8: np.ndarray | None
    binary: np.ndarray | None
    bitorder: str
    meta: dict
    texts: Sequence[str] | None

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        return {e: a for e, a in (("int8", self.int8), ("binary", self.binary)) if a is not None}


def prepare(source, int8, binary, bitorder: str | None, meta, texts) -> Payload:
    """Normalise save()/to_arrow() arguments: an ``Embeddings`` or ``Stored``
    and/or explicit arrays.  ``bitorder``: the order to store codes in; None
    keeps a source's own order (its codes are converted, copied, when
    ``bitorder`` differs), else ``"little"``.  Explicit ``binary=`` codes are
    taken as being in the resulting order already."""
    if bitorder is not None:
        _checks.bitorder(bitorder)
    extras = check_meta(meta)
    given = {"int8": int8, "binary": binary}
    if source is None:
        bitorder = bitorder or API_BITORDER
    else:
        arrays, src_order, src_meta, src_texts = _from_source(source)
        for enc, a in arrays.items():
            if given[enc] is not None:
                raise ValueError(f"{enc} given twice: by the {type(source).__name__} and as {enc}=")
            given[enc] = a
        bitorder = bitorder or src_order
        if "binary" in arrays and src_order != bitorder:
            given["binary"] = reverse_bitorder(check_rows(arrays["binary"], "binary"))
        extras = {**src_meta, **extras}
        if texts is None:
            texts = src_texts
    if given["int8"] is None and given["binary"] is None:
        raise ValueError("nothing to store: pass Embeddings, int8= vectors and/or binary= codes")
    int8 = None if given["int8"] is None else check_rows(given["int8"], "int8")
    binary = None if given["binary"] is None else check_rows(given["binary"], "binary")
    d = dimensions_of(int8, binary)
    n = (int8 if int8 is not None else binary).shape[0]
    if source is not None and isinstance(source, Embeddings) and source.dimensions != d:
        raise ValueError(f"Embeddings says dimensions={source.dimensions} but its vectors have {d}")
    if texts is not None:
        texts = check_texts(texts, n)
    encodings = [e for e, a in (("int8", int8), ("binary", binary)) if a is not None]
    return Payload(int8, binary, bitorder, build_meta(n, d, encodings, bitorder, extras), texts)


def _from_source(source):
    """(arrays by encoding, bit order, meta extras, texts) of a save() source."""
    from ._core import Stored  # the Stored class needs this module: import here

    if isinstance(source, Stored):
        extras = {k: v for k, v in source.meta.items() if k not in STRUCTURAL}
        arrays = {e: a for e, a in (("int8", source.int8), ("binary", source.binary)) if a is not None}
        return arrays, source.bitorder, extras, source.texts
    if isinstance(source, ContextualizedEmbeddings):
        raise TypeError("ContextualizedEmbeddings have per-document offsets a store does not hold: save "
                        "result.vectors as int8=/binary= and keep result.offsets (e.g. np.save) beside it")
    if not isinstance(source, Embeddings):
        raise TypeError(f"embeddings must be a pplx_codec.Embeddings or a Stored, got {type(source).__name__}")
    enc = ENCODINGS.get(source.encoding_format)
    if enc is None:
        raise ValueError(f"unknown encoding_format {source.encoding_format!r} (expected one of {list(ENCODINGS)})")
    v = source.vectors
    if isinstance(v, np.ndarray) and v.ndim == 1:
        v = v[None]  # one embedded string
    extras = {"model": source.model, "usage": dataclasses.asdict(source.usage)}
    _checks.bitorder(source.bitorder)
    return {enc: v}, source.bitorder, extras, None


# --- texts.jsonl: one JSON string per line -------------------------------------


def check_texts(texts, count: int):
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a sequence of str (one per row), got {type(texts).__name__}")
    if len(texts) != count:
        raise ValueError(f"got {len(texts)} texts for {count} rows")
    return texts


def _line(text: str) -> bytes:
    # json.dumps escapes newlines and quotes, so a line is a row.  UTF-8 keeps
    # the file readable; a lone surrogate (not encodable) falls back to the
    # ASCII escape form, which json.loads turns back into the same str.
    s = json.dumps(text, ensure_ascii=False)
    try:
        return s.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        return json.dumps(text).encode("ascii") + b"\n"


def write_texts(path: Path, texts, count: int) -> None:
    from ._fs import fsync_file

    with open(path, "wb") as f:
        n = 0
        for n, t in enumerate(texts, 1):
            if not isinstance(t, str):
                raise TypeError(f"texts[{n - 1}] must be str, got {type(t).__name__}")
            f.write(_line(t))
        if n != count:
            raise ValueError(f"got {n} texts for {count} rows")
        fsync_file(f)


class Texts(Sequence[str]):
    """texts.jsonl read on demand: ``len()`` is free; the first ``[i]`` scans
    the file once for line starts, keeping one offset per ``STRIDE`` lines
    (8 bytes per 64 rows), so a lookup reads at most 64 lines."""

    STRIDE = 64
    _CHUNK = 1 << 24

    def __init__(self, path: Path, count: int):
        self.path = Path(path)
        self._count = count
        self._starts: np.ndarray | None = None   # byte offset of lines 0, STRIDE, 2*STRIDE, ..., then EOF

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"Texts({str(self.path)!r}, {self._count} rows)"

    def _index(self) -> np.ndarray:
        if self._starts is None:
            starts, seen, size, last = [np.zeros(1, np.int64)], 0, 0, b"\n"
            buf = bytearray(self._CHUNK)
            with open(self.path, "rb") as f:
                while (got := f.readinto(buf)):
                    ends = np.flatnonzero(np.frombuffer(buf, np.uint8, got) == 10)   # b"\n"
                    lines = seen + 1 + np.arange(ends.size)      # the line after each newline
                    keep = (lines % self.STRIDE == 0) & (lines < self._count)
                    starts.append(size + ends[keep] + 1)
                    seen += ends.size
                    size += got
                    last = bytes(buf[got - 1:got])
            if seen != self._count or last != b"\n":
                partial = "" if last == b"\n" else " and an unterminated one"
                raise ValueError(f"{self.path}: {seen} complete lines{partial} for {self._count} rows: corrupt store")
            self._starts = np.concatenate(starts + [np.array([size], np.int64)])
        return self._starts

    def _block(self, b: int) -> list[bytes]:
        starts = self._index()
        with open(self.path, "rb") as f:
            f.seek(int(starts[b]))
            data = f.read(int(starts[b + 1] - starts[b]))
        return data.split(b"\n")[:-1]

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._count))]
        n = self._count
        try:
            if not -n <= i < n:
                raise IndexError(f"text {i} out of range for {n} rows")
        except TypeError:
            raise TypeError(f"texts indices must be integers or slices, got {type(i).__name__}") from None
        i = int(i) % n
        return json.loads(self._block(i // self.STRIDE)[i % self.STRIDE])

    def __iter__(self):
        # one sequential pass (Sequence's default would seek once per row)
        n = 0
        with open(self.path, "rb") as f:
            for n, line in enumerate(f, 1):
                if n > self._count:
                    break
                yield json.loads(line)
        if n < self._count:
            raise ValueError(f"{self.path}: {n} lines for {self._count} rows: corrupt store")
