"""texts.jsonl: one JSON string per line, written synced and read on demand."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._fs import fsync_file


def check_texts(texts, count: int):
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a sequence of str (one per row), got {type(texts).__name__}")
    if len(texts) != count:
        raise ValueError(f"got {len(texts)} texts for {count} rows")
    return texts


def first_not_utf8(texts) -> int | None:
    """The index of the first text UTF-8 cannot encode (a lone surrogate, which
    texts.jsonl can hold), or None: for the formats that store text as UTF-8."""
    for i, t in enumerate(texts):
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            return i
    return None


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
    (8 bytes per 64 rows), so a lookup reads at most 64 lines.  A line that
    is not a JSON string is a ``ValueError`` naming the file and the line;
    ``corrupt`` ends it (what the file belongs to: a store, or a job)."""

    STRIDE = 64
    _CHUNK = 1 << 24

    def __init__(self, path: Path, count: int, corrupt: str = "corrupt store"):
        self.path = Path(path)
        self._count = count
        self._corrupt = corrupt
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
                raise ValueError(f"{self.path}: {seen} complete lines{partial} for {self._count} rows: "
                                 f"{self._corrupt}")
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
            start, stop, step = i.indices(self._count)
            if step == 1:
                return self._range(start, stop)
            return [self[j] for j in range(start, stop, step)]
        n = self._count
        try:
            if not -n <= i < n:
                raise IndexError(f"text {i} out of range for {n} rows")
        except TypeError:
            raise TypeError(f"texts indices must be integers or slices, got {type(i).__name__}") from None
        i = int(i) % n
        return self._text(self._block(i // self.STRIDE)[i % self.STRIDE], i)

    def _range(self, start: int, stop: int) -> list[str]:
        """Rows ``start .. stop - 1`` in one read of their blocks (``[i]`` reads a block per row)."""
        if start >= stop:
            return []
        starts = self._index()
        first, last = start // self.STRIDE, (stop - 1) // self.STRIDE + 1
        with open(self.path, "rb") as f:
            f.seek(int(starts[first]))
            lines = f.read(int(starts[last] - starts[first])).split(b"\n")
        skip = start - first * self.STRIDE
        rows = lines[skip:skip + stop - start]
        # One JSON document for the whole range: ~40x faster than a json.loads per line.  It is
        # exact whenever it gives as many strings as there are lines (the commas between lines
        # are ours, so each line must then hold exactly one string); anything else is read line
        # by line, which names the first bad line.
        try:
            texts = json.loads(b"[" + b",".join(rows) + b"]")
        except ValueError:   # JSONDecodeError, UnicodeDecodeError
            texts = None
        if isinstance(texts, list) and len(texts) == len(rows) and all(type(t) is str for t in texts):
            return texts
        return [self._text(line, start + j) for j, line in enumerate(rows)]

    def _text(self, line: bytes, i: int) -> str:
        """Row ``i``'s text from its line; json's own message names neither the file nor the line."""
        try:
            text = json.loads(line)
        except json.JSONDecodeError as e:   # its "line 1" is the JSON document's: say the column only
            why = f"{e.msg.removesuffix(' at')} at column {e.colno}"   # "Unterminated string starting at"
            raise ValueError(f"{self.path}:{i + 1}: not a JSON string ({why}): {self._corrupt}") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{self.path}:{i + 1}: not UTF-8 ({e.reason} at byte {e.start + 1} of the line): "
                             f"{self._corrupt}") from None
        if not isinstance(text, str):
            raise ValueError(f"{self.path}:{i + 1}: a JSON {type(text).__name__}, not a string: {self._corrupt}")
        return text

    def __iter__(self):
        # one sequential pass (Sequence's default would seek once per row)
        n = 0
        with open(self.path, "rb") as f:
            for n, line in enumerate(f, 1):
                if n > self._count:
                    break
                yield self._text(line.removesuffix(b"\n"), n - 1)   # as [i] sees it: the same message
        if n < self._count:
            raise ValueError(f"{self.path}: {n} lines for {self._count} rows: {self._corrupt}")
