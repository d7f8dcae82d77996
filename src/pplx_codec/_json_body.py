"""A request's JSON body, byte for byte what ``json.dumps(body, ensure_ascii=False).encode()``
writes, without json's loop over every character of every text.

A batch's body is nearly all its texts (512 paragraphs: ~90 KB), and json's C
encoder looks at a string one character at a time (~4 ns each: 0.3-0.5 ms a
request, a fifth of the client's CPU on a big job).  Most texts need no escape,
and those that do hold few distinct characters needing one.  So the texts are
joined with NUL and encoded to UTF-8 (one C call each); the bytes needing an
escape (``"``, ``\\``, the controls below 0x20; UTF-8 never uses a byte below
0x80 inside a multi-byte character, so each is a character of a text) are
found with numpy; each one present is replaced by json's own spelling of its
escape (``bytes.replace``: a pass at memchr speed), and the NULs, now only the
joins, by what separates the strings.  A text holding a NUL itself, or anything
but ``str``s, takes ``json.dumps``: the same bytes, json's way.
"""

from __future__ import annotations

import json

import numpy as np

__all__ = ["request_body"]

#: json's escape of each byte it escapes (``ensure_ascii=False``: ``"``, ``\``
#: and the controls below 0x20; the short forms, else ``\u00XX`` in lowercase hex)
ESCAPES = {c: b"\\u%04x" % c for c in range(0x20)} | {
    0x22: b'\\"', 0x5C: b"\\\\", 0x08: b"\\b", 0x0C: b"\\f", 0x0A: b"\\n", 0x0D: b"\\r", 0x09: b"\\t"}
#: the joins of the texts until their escapes are written (json escapes a NUL: it is never left in a text)
JOIN = 0x00


def _escaped(texts: list[str]) -> bytes | None:
    """The texts' JSON string contents, escaped, in UTF-8, joined by NUL; None
    when a text holds a NUL (a join could not be told from it), is not a
    ``str``, or is not valid UTF-8 (a lone surrogate)."""
    try:
        raw = chr(JOIN).join(texts).encode()
    except (TypeError, UnicodeEncodeError):  # json.dumps raises its own error for them, if any
        return None
    a = np.frombuffer(raw, np.uint8)
    controls = a < 0x20
    joins = len(texts) - 1
    found = [c for c in (0x5C, 0x22) if c in raw]  # the backslash first: the other escapes write backslashes
    if np.count_nonzero(controls) != joins:  # controls other than the joins (the common case has none)
        if np.count_nonzero(a == JOIN) != joins:  # a text holds a NUL
            return None
        found += [c for c in np.unique(a[controls]).tolist() if c != JOIN]
    for c in found:
        raw = raw.replace(bytes((c,)), ESCAPES[c])
    return raw


def _array(texts: list[str]) -> bytes | None:
    """``json.dumps(texts, ensure_ascii=False).encode()``, or None (see ``_escaped``)."""
    if not texts:
        return b"[]"
    raw = _escaped(texts)
    return None if raw is None else b'["' + raw.replace(bytes((JOIN,)), b'", "') + b'"]'


def _nested(documents: list[list[str]]) -> bytes | None:
    """The same for a list of lists of texts (the contextualized endpoint's documents)."""
    if not all(isinstance(d, (list, tuple)) for d in documents):  # (json writes a str as one string)
        return None
    chunks = [c for d in documents for c in d]
    raw = _escaped(chunks) if chunks else b""
    if raw is None:
        return None
    items = raw.split(bytes((JOIN,))) if chunks else []
    out, at = [], 0
    for d in documents:
        n = len(d)
        out.append(b'["' + b'", "'.join(items[at:at + n]) + b'"]' if n else b"[]")
        at += n
    return b"[" + b", ".join(out) + b"]"


def request_body(inputs: list, fields: dict, nested: bool = False) -> bytes:
    """``json.dumps({"input": inputs, **fields}, ensure_ascii=False).encode()``:
    ``inputs`` a list of texts, or (``nested``) of lists of texts; ``fields``
    the rest of the body (json.dumps writes them: they are short)."""
    array = _nested(inputs) if nested else _array(inputs)
    if array is None:
        return json.dumps({"input": inputs, **fields}, ensure_ascii=False).encode()
    rest = json.dumps(fields, ensure_ascii=False).encode()  # b'{"model": ...}', or b'{}'
    return b"".join((b'{"input": ', array, b", " + rest[1:] if fields else b"}"))
