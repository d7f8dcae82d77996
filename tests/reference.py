"""Slow, obviously-correct oracles for the public API: stdlib and numpy only.

One function per public function, same name and (valid-input) semantics.
They validate only what the wire format requires (strict base64); argument
errors are tested against the package directly, not against these.
"""

from __future__ import annotations

import base64
import binascii
import json  # (the stream oracle's)

import numpy as np

_UNPACK_VALUES = {  # dtype -> (value of a clear bit, value of a set bit)
    np.dtype(np.uint8): (0, 1),
    np.dtype(np.int8): (-1, 1),
    np.dtype(np.float32): (-1.0, 1.0),
}


def _as_bytes(data) -> bytes:
    if isinstance(data, str):
        return data.encode("ascii")  # UnicodeEncodeError is a ValueError
    if isinstance(data, np.ndarray):
        assert data.dtype == np.uint8 and data.ndim == 1
        return data.tobytes()
    return bytes(data)


def b64decode(data) -> np.ndarray:
    """Strict RFC 4648 decode: standard alphabet, '=' only as the final padding
    of a length that is a multiple of 4, zero bits under the padding."""
    s = _as_bytes(data)
    if len(s) % 4:
        raise ValueError("length is not a multiple of 4")
    body = s[:-2] + s[-2:].rstrip(b"=")
    if b"=" in body:
        raise ValueError("'=' before the end")
    try:
        raw = base64.b64decode(s, validate=True)
    except binascii.Error as e:
        raise ValueError(str(e)) from None
    if base64.b64encode(raw) != s:  # the stdlib accepts "QR==" (non-zero trailing bits)
        raise ValueError("non-canonical encoding")
    return np.frombuffer(raw, dtype=np.uint8).copy()


def b64encode(data) -> bytes:
    return base64.b64encode(data.tobytes() if isinstance(data, np.ndarray) else bytes(data))


def _decode_rows(items, width, dtype) -> np.ndarray:
    if isinstance(items, (str, bytes)):
        items = [items]
    rows = [b64decode(item) for item in items]
    if width is None:
        width = len(rows[0])
    if any(len(r) != width for r in rows):
        raise ValueError("an item decodes to the wrong length")
    out = np.zeros((len(rows), width), dtype=np.uint8)
    for i, r in enumerate(rows):
        out[i] = r
    return out.view(dtype)


def decode_int8(items, dim=None) -> np.ndarray:
    return _decode_rows(items, dim, np.int8)


def decode_binary(items, dim) -> np.ndarray:
    assert dim % 8 == 0
    return _decode_rows(items, dim // 8, np.uint8)


def encode_int8(matrix) -> list[str]:
    return [base64.b64encode(row.tobytes()).decode("ascii") for row in np.atleast_2d(matrix)]


encode_binary = encode_int8


def pack_bits(x, bitorder="little") -> np.ndarray:
    return np.packbits(np.asarray(x) > 0, axis=-1, bitorder=bitorder)


def unpack_bits(packed, dim=None, bitorder="little", dtype=np.uint8) -> np.ndarray:
    dim = 8 * packed.shape[-1] if dim is None else dim
    bits = np.unpackbits(packed, axis=-1, bitorder=bitorder)[..., :dim]
    clear, set_ = _UNPACK_VALUES[np.dtype(dtype)]
    return np.where(bits == 1, set_, clear).astype(dtype)


def reverse_bitorder(packed) -> np.ndarray:
    return np.packbits(np.unpackbits(packed, axis=-1, bitorder="little"), axis=-1, bitorder="big")


def truncate(matrix, dimensions, encoding="int8") -> np.ndarray:
    per_item = 8 if encoding in ("binary", "base64_binary") else 1
    return matrix[..., : dimensions // per_item].copy()


def norms(matrix) -> np.ndarray:
    sumsq = (matrix.astype(np.int64) ** 2).sum(axis=-1)
    return np.asarray(np.sqrt(sumsq.astype(np.float64)).astype(np.float32))


def to_float32(matrix, normalize=True) -> np.ndarray:
    f = matrix.astype(np.float32)
    if not normalize:
        return f
    n = norms(matrix)[..., None]
    out = np.zeros_like(f)
    np.divide(f, n, out=out, where=n != 0)  # float32 / float32, zero rows stay zero
    return out


# ---------------------------------------------------------------- search
#
# Exact and slow: every distance is computed in int64 (or float64 for the
# cosine's one division), every top-k is a full np.lexsort per query with the
# row index as the last key.  Padding when k > n: (INT32_MAX, -1) for Hamming,
# (-inf, -1) for similarities.

PAD_DISTANCE = int(np.iinfo(np.int32).max)


def _rows2d(a):
    a = np.asarray(a)
    return a[None] if a.ndim == 1 else a


def hamming_matrix(queries, codes) -> np.ndarray:
    """int32 (m, n) Hamming distances ((n,) for one 1-D query): popcount of XOR."""
    q, x = _rows2d(queries), np.asarray(codes)
    out = np.zeros((q.shape[0], x.shape[0]), np.int64)
    for i in range(q.shape[0]):
        out[i] = np.bitwise_count(np.bitwise_xor(x, q[i])).sum(axis=1, dtype=np.int64)
    out = out.astype(np.int32)
    return out[0] if np.ndim(queries) == 1 else out


hamming = hamming_matrix


def dot_matrix(queries, db) -> np.ndarray:
    """Exact int8 dot products: int64 matmul, then int32 (asserted to fit)."""
    d = _rows2d(queries).astype(np.int64) @ np.asarray(db).astype(np.int64).T
    assert np.abs(d).max(initial=0) < 2**31
    d = d.astype(np.int32)
    return d[0] if np.ndim(queries) == 1 else d


dot = dot_matrix


def cosine(queries, db) -> np.ndarray:
    """float32(exact dot / (float64(norm q) * float64(norm x))), 0 for a zero vector,
    with the float32 norms of `norms`."""
    d = _rows2d(queries).astype(np.int64) @ np.asarray(db).astype(np.int64).T
    qn = norms(_rows2d(queries)).astype(np.float64)
    xn = norms(np.asarray(db)).astype(np.float64)
    den = qn[:, None] * xn[None, :]
    s = np.zeros(d.shape, np.float64)
    np.divide(d.astype(np.float64), den, out=s, where=den > 0)
    s = s.astype(np.float32)
    return s[0] if np.ndim(queries) == 1 else s


def topk(keys: np.ndarray, k: int, pad, largest: bool):
    """Best k of each row of `keys` (m, n): smallest (or largest) first, ties
    by the lower column; (pad, -1) beyond n."""
    m, n = keys.shape
    vals = np.full((m, k), pad, dtype=keys.dtype)
    ids = np.full((m, k), -1, dtype=np.int64)
    cols = np.arange(n)
    for i in range(m):
        order = np.lexsort((cols, -keys[i] if largest else keys[i]))[:k]
        vals[i, : len(order)] = keys[i, order]
        ids[i, : len(order)] = order
    return vals, ids


def _squeeze(one, D, I):
    return (D[0], I[0]) if one else (D, I)


def search_binary(queries, codes, k):
    D = hamming_matrix(_rows2d(queries), codes)
    return _squeeze(np.ndim(queries) == 1, *topk(D, k, PAD_DISTANCE, largest=False))


def search_int8(queries, db, k, metric="cosine"):
    q = _rows2d(queries)
    if metric == "cosine":
        S, I = topk(cosine(q, db), k, -np.inf, largest=True)
    else:
        d = q.astype(np.int64) @ np.asarray(db).astype(np.int64).T  # rank the exact integers
        D, I = topk(d, k, 0, largest=True)
        S = np.where(I >= 0, D.astype(np.float32), np.float32(-np.inf)).astype(np.float32)
    return _squeeze(np.ndim(queries) == 1, S, I)


def index_search(queries, vectors, codes, k, rescore, bitorder="little"):
    """Binary top-(k * rescore) by Hamming distance (ties: lower row) of the
    queries packed in `bitorder` against `codes`, then those candidates
    re-ranked by the float32 cosine (ties: lower row); padded to k."""
    q = _rows2d(queries)
    _, cand = search_binary(pack_bits(q, bitorder), codes, k * rescore)
    S = np.full((q.shape[0], k), -np.inf, np.float32)
    I = np.full((q.shape[0], k), -1, np.int64)
    for i in range(q.shape[0]):
        c = cand[i][cand[i] >= 0]
        s = cosine(q[i], vectors[c])
        order = np.lexsort((c, -s))[:k]
        S[i, : len(order)] = s[order]
        I[i, : len(order)] = c[order]
    return _squeeze(np.ndim(queries) == 1, S, I)


# ---------------------------------------------------------------- streaming response decoder
#
# The whole body through json.loads, then every rule of the wire format
# checked on the parsed tree.  Stricter than json.loads where the format is:
# NaN/Infinity, a repeated `data`/`index`/`embedding` key, an `index` that is
# not a non-negative JSON integer (3.0, 1e0, -0, true, "3") and JSON nested
# deeper than MAX_STREAM_DEPTH containers are rejected.  (The 1 MiB budget
# shared by the captured top-level fields is not modelled: it depends on the
# raw text.)

MAX_STREAM_DEPTH = 64


class _Neg(int):
    """An integer written with a '-' (so "-0" is not a valid index)."""


class _Obj(dict):
    """A JSON object that remembers which keys appeared more than once."""

    def __init__(self, pairs):
        super().__init__()
        self.dups = set()
        for k, v in pairs:
            if k in self:
                self.dups.add(k)
            self[k] = v


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def _parse_int(text):
    return _Neg(int(text)) if text.startswith("-") else int(text)


def _depth(v) -> int:
    """Containers on the deepest path (iterative: no recursion limit)."""
    deepest, stack = 0, [(v, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d + 1)
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def _expect(ok: bool, message: str):
    if not ok:
        raise ValueError(message)


def _index(obj, limit, what) -> int:
    if "index" in obj.dups:
        raise ValueError(f"{what}: 'index' appears twice")
    if "index" not in obj:
        raise ValueError(f"{what}: no 'index'")
    v = obj["index"]
    if type(v) is not int:  # bool, float, _Neg, str, ...
        raise ValueError(f"{what}: 'index' {v!r} is not a non-negative integer")
    if v >= limit:
        raise ValueError(f"{what}: 'index' {v} is out of range")
    return v


def _items(container, key, what) -> list:
    _expect(isinstance(container, dict), f"{what} is not an object")
    if key in container.dups:
        raise ValueError(f"{what}: '{key}' appears twice")
    items = container.get(key, [])
    _expect(isinstance(items, list), f"{what}: '{key}' is not an array")
    return items


def _place(item, limit, row0, width, out, seen, what):
    _expect(isinstance(item, dict), f"{what} is not an object")
    if "embedding" in item.dups:
        raise ValueError(f"{what}: 'embedding' appears twice")
    i = _index(item, limit, what)
    if "embedding" not in item:
        raise ValueError(f"{what}: no 'embedding'")
    emb = item["embedding"]
    _expect(isinstance(emb, str), f"{what}: 'embedding' is not a string")
    row = b64decode(emb)
    if len(row) != width:
        raise ValueError(f"{what}: 'embedding' decodes to {len(row)} bytes, expected {width}")
    if seen[row0 + i]:
        raise ValueError(f"row {row0 + i} appears twice")
    seen[row0 + i] = True
    out[row0 + i] = row


def decode_response(body: bytes, n: int, width: int, dtype=np.int8, doc_rows=None):
    """(matrix, meta) of an Embeddings API response body, or ValueError.

    Flat: rows by each data item's `index`.  Contextualized (`doc_rows` = chunk
    count of each document): chunk j of document d goes to row
    sum(doc_rows[:d]) + j.  meta: the top-level fields other than `data`.
    """
    try:
        root = json.loads(bytes(body).decode("utf-8"), object_pairs_hook=_Obj,
                          parse_constant=_reject_constant, parse_int=_parse_int)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"invalid JSON: {e}") from None
    if _depth(root) > MAX_STREAM_DEPTH:
        raise ValueError("JSON nested too deeply")
    out = np.zeros((n, width), np.uint8)
    seen = np.zeros(n, bool)
    data = _items(root, "data", "the response")
    if doc_rows is None:
        for k, item in enumerate(data):
            _place(item, n, 0, width, out, seen, f"data item {k}")
    else:
        starts = np.concatenate([[0], np.cumsum(doc_rows)]).astype(int)
        docs_seen = set()
        for k, doc in enumerate(data):
            chunks = _items(doc, "data", f"document item {k}")
            d = _index(doc, len(doc_rows), f"document item {k}")
            if d in docs_seen:
                raise ValueError(f"document {d} appears twice")
            docs_seen.add(d)
            for c, item in enumerate(chunks):
                _place(item, doc_rows[d], int(starts[d]), width, out, seen, f"document {d} chunk item {c}")
    if not seen.all():
        raise ValueError(f"missing rows {np.flatnonzero(~seen)[:10].tolist()}")
    meta = {k: v for k, v in root.items() if k != "data"}
    return out.view(dtype), meta
