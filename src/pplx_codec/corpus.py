"""Reading the texts to embed: text files, JSONL, Parquet, and a built-in corpus.

The built-in corpus, ``pydoc-topics``, is the help text of Python's own
``pydoc_data.topics`` (the language reference sections ``help("topic")``
shows), split into paragraphs: real prose nobody on this project wrote, on
every machine with Python, for the README's first command.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass

__all__ = ["Source", "read_texts", "pydoc_paragraphs", "BUILTIN_CORPORA", "read_queries", "QUERY_FORMATS"]

BUILTIN_CORPORA = ("pydoc-topics",)
_MIN_PARAGRAPH = 40  # characters: drops headings and one-line fragments
_UNDERLINE = re.compile(r"[*=~^\-]{3,}")


@dataclass
class Source:
    """The texts, where they came from, and a hash that identifies them (a
    resumed job must be embedding the same texts)."""

    texts: list[str]
    path: str
    sha256: str

    @classmethod
    def of(cls, texts: list[str], path: str) -> Source:
        """Texts held in memory (``path`` names where they came from)."""
        return cls(texts, path, _digest(texts))


def _digest(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def pydoc_paragraphs() -> dict[str, list[str]]:
    """Each ``pydoc_data.topics`` topic's paragraphs, as the built-in corpus
    reads them (reST underlines dropped, whitespace collapsed, at least 40
    characters), topics in sorted order.  A paragraph several topics share is
    in each of their lists; the corpus keeps its first copy."""
    from pydoc_data.topics import topics

    out = {}
    for name in sorted(topics):
        paras = []
        for para in re.split(r"\n\s*\n", topics[name]):
            # drop reST heading underlines ("*****")
            lines = [ln for ln in para.splitlines() if not _UNDERLINE.fullmatch(ln.strip())]
            text = " ".join(" ".join(lines).split())
            if len(text) >= _MIN_PARAGRAPH:
                paras.append(text)
        out[name] = paras
    return out


def _pydoc_topics() -> list[str]:
    # several topics share sections: keep one copy
    return list(dict.fromkeys(t for paras in pydoc_paragraphs().values() for t in paras))


def read_texts(source: str, field: str = "text", column: str = "text") -> Source:
    """Texts from ``source``: ``pydoc-topics``; a ``.jsonl`` file (``field`` of
    each object); a ``.parquet`` file (``column``; needs pyarrow); otherwise a
    UTF-8 text file with one text per line (blank lines skipped)."""
    if source in BUILTIN_CORPORA:
        texts = _pydoc_topics()
        return Source(texts, source, _digest(texts))
    if not os.path.exists(source):
        raise FileNotFoundError(f"{source}: no such file (or use the built-in corpus: {', '.join(BUILTIN_CORPORA)})")
    lower = source.lower()
    try:
        if lower.endswith((".jsonl", ".ndjson")):
            texts = _jsonl(source, field)
        elif lower.endswith(".parquet"):
            texts = _parquet(source, column)
        else:
            with open(source, encoding="utf-8") as f:
                texts = [line.rstrip("\r\n") for line in f]
            texts = [t for t in texts if t.strip()]
    except UnicodeDecodeError as e:  # names no file or line by itself
        raise ValueError(_not_utf8(source, e)) from None
    if not texts:
        raise ValueError(f"{source}: no texts found")
    return Source(texts, os.path.abspath(source), _digest(texts))


def _not_utf8(path: str, e: UnicodeDecodeError) -> str:
    # the decoder's offset counts from the chunk it was handed, not from the start
    # of the file: find the line again (no UTF-8 sequence contains a newline byte)
    try:
        with open(path, "rb") as f:
            for lineno, line in enumerate(f, 1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as bad:
                    return _not_utf8_line(path, lineno, bad)
    except OSError:
        pass
    return f"{path}: not UTF-8 text ({e.reason})"


def _not_utf8_line(path: str, lineno: int, bad: UnicodeDecodeError) -> str:
    return f"{path}:{lineno}: not UTF-8 text ({bad.reason} at byte {bad.start + 1} of the line)"


def _jsonl(path: str, field: str) -> list[str]:
    texts = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise ValueError(f"{path}:{lineno}: invalid JSON: {e}") from None
            if not isinstance(obj, dict) or field not in obj:
                raise ValueError(f"{path}:{lineno}: no field {field!r} (choose one with --field)")
            value = obj[field]
            if not isinstance(value, str):
                raise ValueError(f"{path}:{lineno}: field {field!r} is {type(value).__name__}, not a string")
            texts.append(value)
    return texts


def _parquet(path: str, column: str) -> list[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise RuntimeError("reading Parquet needs pyarrow: pip install 'pplx-codec[arrow]'") from None
    table = pq.read_table(path, columns=[column]) if column in pq.read_schema(path).names else None
    if table is None:
        raise ValueError(f"{path}: no column {column!r} (choose one with --column)")
    values = table.column(column).to_pylist()
    bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
    if bad is not None:
        raise ValueError(f"{path}: row {bad} of column {column!r} is {type(values[bad]).__name__}, not a string")
    return values


# --- queries (``pplx-codec search --queries FILE``) ---

#: How a queries file is read: ``lines`` (one query per line) or ``jsonl``.
QUERY_FORMATS = ("lines", "jsonl")


def read_queries(path: str, fmt: str | None = None) -> list[str]:
    """The queries in ``path`` (``"-"``: standard input), in file order.

    ``fmt="lines"``: each line is a query, as it is but for its line ending
    (``\\n`` or ``\\r\\n``); blank lines are skipped.  ``fmt="jsonl"``: each
    non-blank line is a JSON string, or a JSON object with a string field
    ``"query"`` (or, when it has none, ``"text"``).  ``fmt=None`` picks
    ``jsonl`` for a name ending in ``.jsonl`` or ``.ndjson``, else ``lines``.
    A UTF-8 byte order mark at the start is ignored.  A line that is not
    UTF-8, not JSON, not a query, or an empty query is a ValueError naming the
    file and line; so is a file with no queries.
    """
    if fmt is None:
        fmt = "jsonl" if path.lower().endswith((".jsonl", ".ndjson")) else "lines"
    if fmt not in QUERY_FORMATS:
        raise ValueError(f"queries format must be {' or '.join(QUERY_FORMATS)}, got {fmt!r}")
    name = "<stdin>" if path == "-" else path
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    queries = []
    for lineno, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), 1):
        try:
            line = raw.removesuffix(b"\r").decode("utf-8")
        except UnicodeDecodeError as bad:
            raise ValueError(_not_utf8_line(name, lineno, bad)) from None
        if not line.strip():
            continue
        queries.append(line if fmt == "lines" else _json_query(name, lineno, line))
    if not queries:
        raise ValueError(f"{name}: no queries found")
    return queries


def _json_query(name: str, lineno: int, line: str) -> str:
    try:
        obj = json.loads(line)
    except ValueError as e:
        raise ValueError(f"{name}:{lineno}: invalid JSON: {e}") from None
    if isinstance(obj, dict):
        key = "query" if "query" in obj else "text"
        if key not in obj:
            raise ValueError(f'{name}:{lineno}: an object with no "query" or "text" field')
        value, what = obj[key], f'field "{key}"'
    else:
        value, what = obj, "line"
    if not isinstance(value, str):
        raise ValueError(f"{name}:{lineno}: {what} is {type(value).__name__}: expected a JSON string or an "
                         'object with a string "query" (or "text") field')
    if not value.strip():
        raise ValueError(f"{name}:{lineno}: empty query")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a "\\ud800" escape: JSON has them, text does not
        raise ValueError(f"{name}:{lineno}: the query is not valid Unicode text (a lone surrogate)") from None
    return value
