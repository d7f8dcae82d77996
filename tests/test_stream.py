"""Sans-IO streaming decoder of Embeddings API responses: pplx_codec._stream.StreamDecoder.

Every valid response must decode, however it is split into feeds, to exactly
what the oracle (reference.decode_response: json.loads + strict base64) gives;
every invalid one must raise StreamDecodeError naming the problem, never
return a wrong matrix.
"""

import base64
import itertools
import json
import random
import re
import threading
from functools import partial

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from helpers import raises_exactly
from pplx_codec._stream import StreamDecodeError, StreamDecoder

AWKWARD_WIDTHS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 320, 1024, 2560]
DTYPES = {"int8": np.int8, "binary": np.uint8}
FEED_KINDS = ["bytes", "bytearray", "memoryview", "uint8"]


# ---------------------------------------------------------------- helpers

def b64(row) -> str:
    return base64.b64encode(np.ascontiguousarray(row).tobytes()).decode("ascii")


def matrix(rng, n, width, dtype) -> np.ndarray:
    """(n, width) rows over the full range; int8 gets -128 and 127 whenever there is room."""
    m = rng.integers(0, 256, (n, width), dtype=np.uint8)
    if m.size >= 2:
        i, j = rng.choice(m.size, 2, replace=False)
        m.flat[i], m.flat[j] = 0x80, 0x7F  # -128 and 127 as int8
    return m.view(dtype)


def random_doc_rows(rng, n) -> list:
    """Chunk counts of the documents of a contextualized request with n chunks."""
    counts, left = [], n
    while left:
        k = int(rng.integers(1, left + 1))
        counts.append(k)
        left -= k
    return counts


def doc_starts(doc_rows) -> list:
    return [int(x) for x in np.concatenate([[0], np.cumsum(doc_rows)])]


def api_response(m, doc_rows=None, order=None, docs_order=None, model="pplx-embed-v1-0.6b",
                 usage=None) -> dict:
    """The response as the service builds it (data in `order`, default 0..n-1)."""
    usage = {"prompt_tokens": 12, "total_tokens": 12} if usage is None else usage
    if doc_rows is None:
        order = range(len(m)) if order is None else order
        data = [{"object": "embedding", "index": int(i), "embedding": b64(m[i])} for i in order]
    else:
        starts = doc_starts(doc_rows)
        docs_order = range(len(doc_rows)) if docs_order is None else docs_order
        data = [{"object": "list", "index": int(d),
                 "data": [{"object": "embedding", "index": j, "embedding": b64(m[starts[d] + j])}
                          for j in range(doc_rows[d])]}
                for d in docs_order]
    return {"object": "list", "data": data, "model": model, "usage": usage}


STYLES = {"default": {}, "compact": {"separators": (",", ":")}, "pretty": {"indent": 2}}


def dumps(obj, style="default") -> bytes:
    return json.dumps(obj, **STYLES[style]).encode()


def as_feed(chunk: bytes, kind: str):
    return {"bytes": lambda: chunk, "bytearray": lambda: bytearray(chunk), "memoryview": lambda: memoryview(chunk),
            "uint8": lambda: np.frombuffer(chunk, dtype=np.uint8)}[kind]()


def split(body: bytes, cuts) -> list:
    bounds = [0, *sorted(cuts), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(bounds)]


def decode(body, n, width, dtype=np.int8, doc_rows=None, chunks=None, kinds=None, out=None):
    """(out, meta) of feeding `chunks` (default: the whole body at once)."""
    out = np.zeros((n, width), dtype) if out is None else out
    dec = StreamDecoder(out, doc_rows)
    for k, chunk in enumerate([body] if chunks is None else chunks):
        assert dec.feed(as_feed(chunk, kinds[k % len(kinds)]) if kinds else chunk) is None
    meta = dec.finish()
    assert dec.rows_done == n and dec.filled().all()
    return out, meta


def stream_error(body, n, width, dtype=np.int8, doc_rows=None, chunks=None) -> str:
    """The StreamDecodeError message of decoding body (fed as `chunks`), from feed() or finish()."""
    out = np.zeros((n, width), dtype)
    dec = StreamDecoder(out, doc_rows)
    try:
        for chunk in [body] if chunks is None else chunks:
            dec.feed(chunk)
        meta = dec.finish()
    except StreamDecodeError as e:
        return str(e)
    raise AssertionError(f"accepted: {body[:200]!r}... -> {meta!r:.100}")


def byte_by_byte(body: bytes) -> list:
    return [body[i:i + 1] for i in range(len(body))]


def assert_same(got, want):
    (out, meta), (want_out, want_meta) = got, want
    assert out.dtype == want_out.dtype
    np.testing.assert_array_equal(out, want_out)
    assert meta == want_meta


# ---------------------------------------------------------------- the oracle itself

def test_oracle_decodes_api_responses():
    m = np.array([[1, -128, 127], [0, 5, -1]], np.int8)
    body = dumps(api_response(m, order=[1, 0]))
    out, meta = ref.decode_response(body, 2, 3, np.int8)
    np.testing.assert_array_equal(out, m)
    assert meta == {"object": "list", "model": "pplx-embed-v1-0.6b", "usage": {"prompt_tokens": 12, "total_tokens": 12}}
    out, _ = ref.decode_response(dumps(api_response(m, doc_rows=[1, 1], docs_order=[1, 0])), 2, 3, np.int8, [1, 1])
    np.testing.assert_array_equal(out, m)


@pytest.mark.parametrize("body", [
    b'{"data": [{"index": 0, "embedding": "AAA="}], "x": NaN}',
    b'{"data": [{"index": 0, "index": 0, "embedding": "AAA="}]}',
    b'{"data": [{"index": -0, "embedding": "AAA="}]}',
    b'{"data": [{"index": 0.0, "embedding": "AAA="}]}',
    b'{"data": [{"index": true, "embedding": "AAA="}]}',
    b'{"data": [{"index": 0, "embedding": "AAB="}]}',
    b'{"data": [{"index": 0, "embedding": "AAAA"}]}',
    b'{"data": [{"index": 0, "embedding": "AAA="}], "data": []}',
    b'{"data": [{"index": 0, "embedding": "AAA="}]} x',
    b'{"data": [{"index": 0, "embedding": "AAA="}], "x": "\xff"}',
    b'{"data": [{"index": 0, "embedding": "AAA="}], "x": ' + b"[" * 64 + b"]" * 64 + b"}",
])
def test_oracle_is_strict(body):
    with pytest.raises(ValueError):
        ref.decode_response(body, 1, 2)


# ---------------------------------------------------------------- valid responses, every split

def small_case(kind, layout):
    """A ~3-row response (int8 or binary; flat or contextualized) and what it decodes to."""
    rng = np.random.default_rng(7)
    dtype = DTYPES[kind]
    width = 5 if kind == "int8" else 4  # '=' and '==' padding
    doc_rows = None if layout.startswith("flat") else [2, 1]
    m = matrix(rng, 3, width, dtype)
    if doc_rows is None:
        obj = api_response(m, order=[2, 0, 1])
    else:
        obj = api_response(m, doc_rows, docs_order=[1, 0])
        obj["data"][1]["data"].reverse()
    if layout.endswith("reordered"):  # index after embedding, doc index after its chunks, data last
        def late_index(d):
            d = dict(d)
            d["index"] = d.pop("index")
            return d
        if doc_rows is None:
            obj["data"] = [late_index(x) for x in obj["data"]]
        else:
            obj["data"] = [late_index({**d, "data": [late_index(c) for c in d["data"]]}) for d in obj["data"]]
        obj["data"] = obj.pop("data")
    return m, doc_rows, obj


CASES = [(k, layout, style) for k in DTYPES for layout in ["flat", "flat-reordered", "ctx", "ctx-reordered"]
         for style in ["default", "compact", "pretty"]]


@pytest.mark.parametrize(("kind", "layout", "style"), CASES, ids=["-".join(c) for c in CASES])
def test_every_two_way_split(kind, layout, style):
    m, doc_rows, obj = small_case(kind, layout)
    body = dumps(obj, style)
    n, width = m.shape
    want = ref.decode_response(body, n, width, m.dtype, doc_rows)
    np.testing.assert_array_equal(want[0], m)
    one = decode(body, n, width, m.dtype, doc_rows)
    assert_same(one, want)
    assert one[1] == {k: v for k, v in obj.items() if k != "data"}
    for k in range(len(body) + 1):
        assert_same(decode(body, n, width, m.dtype, doc_rows, [body[:k], body[k:]]), want)
    assert_same(decode(body, n, width, m.dtype, doc_rows, byte_by_byte(body)), want)
    # and with empty feeds in between
    assert_same(decode(body, n, width, m.dtype, doc_rows, [b"", body[:40], b"", body[40:], b""]), want)


def test_every_three_way_split_of_one_item():
    """Both cut points anywhere in an item: the fast path, the carry and the
    scratch row meet every split of the header, the base64 and the index."""
    m = np.array([[7, -128, 127, 0, 1, 2, 3]], np.int8)
    for item in [{"object": "embedding", "index": 0, "embedding": b64(m[0])},
                 {"object": "embedding", "embedding": b64(m[0]), "index": 0}]:
        for style in ["default", "compact"]:
            body = dumps({"object": "list", "data": [item], "model": "m"}, style)
            for a in range(len(body) + 1):
                for b in range(a, len(body) + 1):
                    out, meta = decode(body, 1, 7, np.int8, None, [body[:a], body[a:b], body[b:]])
                    assert out.tobytes() == m.tobytes() and meta == {"object": "list", "model": "m"}, (a, b)


@st.composite
def api_cases(draw, widths=AWKWARD_WIDTHS, max_rows=9):
    """A realistic response: n 1..9 rows of an awkward width, int8 or binary,
    flat or contextualized, data (and chunks) in any order, any json.dumps style."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(1, max_rows))
    width = draw(st.sampled_from(widths))
    dtype = DTYPES[draw(st.sampled_from(sorted(DTYPES)))]
    m = matrix(rng, n, width, dtype)
    doc_rows = random_doc_rows(rng, n) if draw(st.booleans()) else None
    if doc_rows is None:
        obj = api_response(m, order=rng.permutation(n))
    else:
        obj = api_response(m, doc_rows, docs_order=rng.permutation(len(doc_rows)))
        for d in obj["data"]:
            rng.shuffle(d["data"])
    return m, doc_rows, dumps(obj, draw(st.sampled_from(sorted(STYLES))))


def partitions(data, body):
    """Chunks of the body: random cut points, or fixed-size pieces (as a socket gives)."""
    if data.draw(st.booleans(), label="fixed size"):
        size = data.draw(st.one_of(st.integers(1, 16), st.sampled_from([63, 64, 65, 1000, 4096, 16384])), label="size")
        return [body[i:i + size] for i in range(0, len(body), size)] or [b""]
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=24), label="cuts")
    return split(body, cuts)


@given(case=api_cases(), data=st.data())
def test_random_partitions_match_one_shot_and_oracle(isa, case, data):
    m, doc_rows, body = case
    n, width = m.shape
    want = ref.decode_response(body, n, width, m.dtype, doc_rows)
    np.testing.assert_array_equal(want[0], m)
    assert_same(decode(body, n, width, m.dtype, doc_rows), want)
    for _ in range(3):
        chunks = partitions(data, body)
        kinds = data.draw(st.lists(st.sampled_from(FEED_KINDS), min_size=1, max_size=4), label="kinds")
        assert_same(decode(body, n, width, m.dtype, doc_rows, chunks, kinds), want)
    if len(body) < 3000:
        assert_same(decode(body, n, width, m.dtype, doc_rows, byte_by_byte(body)), want)


BAD_B64 = [b"!", b"-", b"_", b".", b" ", b"\x7f", b"\n", rb"\n", rb"\u00e9", rb"\u0000", rb"\"", rb"\\"]


@given(case=api_cases(), data=st.data())
def test_corrupted_embedding_is_rejected_however_split(isa, case, data):
    """One embedding of a realistic response damaged (a bad character, a '=',
    a character dropped or added, a quad added or dropped): rejected, naming
    the base64 or the length, for any partition."""
    m, doc_rows, body = case
    n, width = m.shape
    row = data.draw(st.integers(0, n - 1), label="row")
    text = b64(m.view(np.uint8)[row]).encode()
    start = body.index(b'"' + text + b'"') + 1
    end = start + len(text)
    kind = data.draw(st.sampled_from(["char", "equals", "drop", "add", "add-quad", "drop-quad"]), label="kind")
    at = data.draw(st.integers(start, end - 1), label="at")
    if kind == "char":
        bad = body[:at] + data.draw(st.sampled_from(BAD_B64), label="bad") + body[at + 1:]
    elif kind == "equals":
        bad = body[:at] + b"=" + body[at + 1:]
    elif kind == "drop":
        bad = body[:at] + body[at + 1:]
    elif kind == "add":
        bad = body[:at] + b"A" + body[at:]
    elif kind == "add-quad":
        bad = body[:start] + b"AAAA" + body[start:]
    else:
        bad = body[:start] + body[start + 4:]
    try:
        ref.decode_response(bad, n, width, m.dtype, doc_rows)
    except ValueError:
        pass
    else:  # '=' over a '=' changes nothing
        assert bad == body
        return
    for chunks in [None, partitions(data, bad)]:
        msg = stream_error(bad, n, width, m.dtype, doc_rows, chunks)
        assert re.search(r"invalid base64 in 'embedding'|'embedding' decodes to (more than )?\d+ bytes", msg), msg


def test_real_sizes_every_isa(isa):
    """Full-size rows (2560-dim int8, 320-byte binary, 1024) over many feeds."""
    rng = np.random.default_rng(3)
    for width, dtype in [(2560, np.int8), (320, np.uint8), (1024, np.int8), (128, np.uint8)]:
        m = matrix(rng, 17, width, dtype)
        for doc_rows in [None, [5, 1, 11]]:
            body = dumps(api_response(m, doc_rows, order=rng.permutation(17), docs_order=[2, 0, 1]))
            want = ref.decode_response(body, 17, width, dtype, doc_rows)
            for size in [1000, 1499, 4096, 65536, len(body)]:
                chunks = [body[i:i + size] for i in range(0, len(body), size)]
                assert_same(decode(body, 17, width, dtype, doc_rows, chunks), want)


# ---------------------------------------------------------------- JSON variety
#
# A small JSON writer that makes every choice JSON allows: whitespace between
# any two tokens, any key order, escapes anywhere in strings (including
# `\/` and `\u002F` inside the base64), numbers in every form, unknown fields
# with nested values at every level.

class Raw(str):
    """JSON text written as is (a number or literal in a chosen form)."""


class B64(str):
    """An embedding: base64 whose characters may be written as escapes."""


class Obj(list):
    """A JSON object as (key, value) pairs, in the order written."""


WHITESPACE = ["", "", "", " ", "  ", "\n", "\t", "\r\n", "\n    ", " \t\n\r "]
NUMBERS = ["0", "-0", "7", "-12", "3.25", "-0.5", "1e3", "1E+3", "2.5e-7", "-1.0E-2", "123456789012345678901234567890",
           "6.02e23", "0.000", "-9007199254740993"]
KEYS = ["object", "id", "Index", "indexx", "embeddings", "Embedding", "dat", "DATA", "index ", "x", "é", "ключ", "😀",
        "with \"quotes\"", "back\\slash", "tab\there", "slash/", "", "a_key_longer_than_thirty_two_bytes_"]
STRINGS = ["", "embedding", "list", "a \"quoted\" \\ string", "ctl\n\t\b\f\r\x01", "/path/", "é😀ß", "\u2028", "{[,:]}"]
ROOT_KEYS_NAMED_WRONG = {k for k in KEYS if len(k.encode()) > 32 or not k.isascii()}
SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def u_escape(ch: str, r: random.Random) -> str:
    code = ord(ch)
    if code > 0xFFFF:  # surrogate pair
        code -= 0x10000
        return u_escape(chr(0xD800 + (code >> 10)), r) + u_escape(chr(0xDC00 + (code & 0x3FF)), r)
    text = f"\\u{code:04x}"
    return text.upper().replace("\\U", "\\u") if r.random() < 0.5 else text


def write_string(s: str, r: random.Random, p_escape: float) -> str:
    out = ['"']
    for ch in s:
        if ch in SHORT_ESCAPES:
            out.append(SHORT_ESCAPES[ch] if r.random() < 0.7 else u_escape(ch, r))
        elif ch < " ":
            out.append(u_escape(ch, r))
        elif ch == "/" and r.random() < 0.5:
            out.append("\\/")
        elif r.random() < p_escape:
            out.append(u_escape(ch, r))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def write(v, r: random.Random, p_ws: float = 0.3) -> str:
    def ws():
        return r.choice(WHITESPACE) if r.random() < p_ws else ""

    def go(v):
        if isinstance(v, Raw):
            return str(v)
        if isinstance(v, B64):
            return write_string(v, r, r.choice([0.0, 0.0, 0.05, 0.5]))
        if isinstance(v, str):
            return write_string(v, r, 0.2)
        if isinstance(v, Obj):
            if not v:
                return "{" + ws() + "}"
            return "{" + ",".join(ws() + write_string(k, r, 0.1) + ws() + ":" + ws() + go(x) + ws()
                                  for k, x in v) + "}"
        if isinstance(v, list):
            if not v:
                return "[" + ws() + "]"
            return "[" + ",".join(ws() + go(x) + ws() for x in v) + "]"
        raise TypeError(type(v))

    return ws() + go(v) + ws()


def unknown_value(r: random.Random, depth: int = 0):
    kind = r.choice(["number", "literal", "string", "array", "object"] if depth < 3 else ["number", "string"])
    if kind == "number":
        return Raw(r.choice(NUMBERS))
    if kind == "literal":
        return Raw(r.choice(["true", "false", "null"]))
    if kind == "string":
        return r.choice(STRINGS)
    if kind == "array":
        return [unknown_value(r, depth + 1) for _ in range(r.randint(0, 3))]
    # nested objects may use the names that matter at the level above: they must be ignored
    keys = r.sample(KEYS + ["index", "embedding", "data"], r.randint(0, 3))
    return Obj((k, unknown_value(r, depth + 1)) for k in keys)


def with_unknown(pairs, r: random.Random, reserved, max_extra=3) -> Obj:
    keys = [k for k in KEYS if k not in reserved]
    pairs = pairs + [(k, unknown_value(r)) for k in r.sample(keys, r.randint(0, max_extra))]
    r.shuffle(pairs)
    return Obj(pairs)


def varied_response(m, doc_rows, r: random.Random) -> Obj:
    def item(index, row):
        return with_unknown([("object", "embedding"), ("index", Raw(str(index))), ("embedding", B64(b64(row)))],
                            r, {"index", "embedding"})

    if doc_rows is None:
        data = [item(i, m[i]) for i in range(len(m))]
    else:
        starts = doc_starts(doc_rows)
        data = []
        for d, k in enumerate(doc_rows):
            chunks = [item(j, m[starts[d] + j]) for j in range(k)]
            r.shuffle(chunks)
            data.append(with_unknown([("object", "list"), ("index", Raw(str(d))), ("data", chunks)],
                                     r, {"index", "data"}))
    r.shuffle(data)
    usage = Obj([("prompt_tokens", Raw("12")), ("total_tokens", Raw("1.2e1")),
                 ("cost", Obj([("usd", Raw("-0.5e-3"))]))])
    # (top-level keys that are long or escaped non-ASCII: see test_meta_keeps_every_top_level_key_name)
    return with_unknown([("object", "list"), ("data", data), ("model", "pplx/embed\\v1"), ("usage", usage)],
                        r, {"data", "object", "model", "usage", *ROOT_KEYS_NAMED_WRONG})


@st.composite
def varied_cases(draw, widths=(1, 2, 3, 4, 5, 8, 16, 17, 31, 33, 64, 65, 129)):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    r = random.Random(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(1, 6))
    width = draw(st.sampled_from(widths))
    dtype = DTYPES[draw(st.sampled_from(sorted(DTYPES)))]
    m = matrix(rng, n, width, dtype)
    doc_rows = random_doc_rows(rng, n) if draw(st.booleans()) else None
    text = write(varied_response(m, doc_rows, r), r, p_ws=draw(st.sampled_from([0.0, 0.3, 1.0])))
    return m, doc_rows, text.encode("utf-8")


@given(case=varied_cases(), data=st.data())
def test_json_variety_matches_oracle(isa, case, data):
    m, doc_rows, body = case
    n, width = m.shape
    want = ref.decode_response(body, n, width, m.dtype, doc_rows)
    np.testing.assert_array_equal(want[0], m)
    assert_same(decode(body, n, width, m.dtype, doc_rows), want)
    for _ in range(3):
        assert_same(decode(body, n, width, m.dtype, doc_rows, partitions(data, body)), want)


def test_writer_makes_the_variety_it_claims():
    """The generator above really produces escapes in base64, whitespace
    everywhere, unknown nested fields and late indexes (else the test above
    would prove little)."""
    seen = set()
    for seed in range(200):
        r = random.Random(seed)
        m = matrix(np.random.default_rng(seed), 4, 33, np.int8)
        doc_rows = None if seed % 2 else [3, 1]
        text = write(varied_response(m, doc_rows, r), r, p_ws=1.0)
        obj = json.loads(text)
        items = obj["data"] if doc_rows is None else [c for d in obj["data"] for c in d["data"]]
        seen.add("slash-escape" if re.search(r'"embedding"\s*:\s*"[^"]*\\/', text) else "")
        seen.add("u-escape" if re.search(r'"embedding"\s*:\s*"[^"]*\\u00', text) else "")
        seen.add("tab" if "\t" in text else "")
        seen.add("late-index" if any(list(i).index("index") > list(i).index("embedding") for i in items) else "")
        seen.add("data-last" if list(obj)[-1] == "data" else "")
        if doc_rows:
            seen.add("doc-index-late" if any(list(d).index("index") > list(d).index("data") for d in obj["data"])
                     else "")
    assert seen >= {"slash-escape", "u-escape", "tab", "late-index", "data-last", "doc-index-late"}


@pytest.mark.parametrize("style", ["default", "compact", "pretty"])
@pytest.mark.parametrize("escape", ["\\/", "\\u002F", "\\u002f"])
def test_escaped_slash_in_base64(style, escape):
    """json.dumps never escapes '/', other encoders do: '\\/' and '\\u002F' in
    the base64 are the '/' they stand for, at every split."""
    m = np.full((2, 6), -1, np.int8)  # 0xFF bytes: '////////'
    body = dumps(api_response(m), style).replace(b"/", escape.encode())
    assert body.count(escape.encode()) == 16
    for k in range(len(body) + 1):
        out, _ = decode(body, 2, 6, np.int8, None, [body[:k], body[k:]])
        np.testing.assert_array_equal(out, m)


@pytest.mark.parametrize("char", list("ABZaz09+/="))
def test_unicode_escape_of_every_kind_of_base64_char(char):
    raw = {"A": b"\x00\x00\x00", "B": b"\x00\x10\x41", "Z": b"\x64\x00\x00", "a": b"\x68\x00\x00",
           "z": b"\xcc\x00\x00", "0": b"\xd0\x00\x00", "9": b"\xf4\x00\x00", "+": b"\xf8\x00\x00",
           "/": b"\xfc\x00\x00", "=": b"\x00\x00"}[char]
    text = base64.b64encode(raw).decode()
    assert char in text
    escaped = text.replace(char, f"\\u{ord(char):04X}")
    body = b'{"data": [{"index": 0, "embedding": "%s"}]}' % escaped.encode()
    for k in range(len(body) + 1):
        out, _ = decode(body, 1, len(raw), np.uint8, None, [body[:k], body[k:]])
        assert out.tobytes() == raw


# ---------------------------------------------------------------- the item fast path and its near misses
#
# `{"object": "embedding", "index": N, "embedding": "` (and its compact form)
# is taken in one step when a feed holds all of it; everything else goes
# byte by byte.  Every split of these bodies meets both paths.

N_FAST = 12  # two-digit indexes too
FAST_ROWS = matrix(np.random.default_rng(12), N_FAST, 7, np.int8)


def fast_body(header: str, sep=", ") -> bytes:
    """Every item written as header.format(i=...) + base64 + '"}'."""
    items = [header.format(i=i) + b64(FAST_ROWS[i]) + '"}' for i in (3, 0, 11, 1, 2, 10, 4, 5, 6, 7, 8, 9)]
    return ('{"object": "list", "data": [' + sep.join(items) + '], "model": "m"}').encode()


VALID_HEADERS = [
    '{{"object": "embedding", "index": {i}, "embedding": "',
    '{{"object":"embedding","index":{i},"embedding":"',
    '{{"object": "embedding", "index":  {i}, "embedding": "',
    '{{"object": "embedding", "index": {i} , "embedding": "',
    '{{"object": "embedding", "index": {i},"embedding": "',
    '{{"object":"embedding","index":{i}, "embedding":"',
    '{{"object": "embedding","index": {i}, "embedding": "',
    '{{ "object": "embedding", "index": {i}, "embedding": "',
    '{{"object": "embeddings", "index": {i}, "embedding": "',
    '{{"object": "embedding", "index": {i}, "embedding" : "',
    '{{"object": "embedding", "index": {i}, "embedding":\n"',
    '{{"object": "embedding", "ind\\u0065x": {i}, "embedding": "',
    '{{"index": {i}, "object": "embedding", "embedding": "',
    '{{"object": "embedding", "x": {{"index": -1, "embedding": 5}}, "index": {i}, "embedding": "',
]


@pytest.mark.parametrize("sep", [", ", ",", ",\n  "])
@pytest.mark.parametrize("header", VALID_HEADERS)
def test_fast_path_and_near_misses_that_are_valid(header, sep):
    body = fast_body(header, sep)
    want = ref.decode_response(body, N_FAST, 7, np.int8)
    np.testing.assert_array_equal(want[0], FAST_ROWS)
    assert_same(decode(body, N_FAST, 7), want)
    for k in range(len(body) + 1):
        assert_same(decode(body, N_FAST, 7, np.int8, None, [body[:k], body[k:]]), want)
    assert_same(decode(body, N_FAST, 7, np.int8, None, byte_by_byte(body)), want)


INVALID_INDEXES = [
    ("01", "invalid JSON"), ("00", "invalid JSON"), ("-01", "invalid JSON|non-negative integer"),
    ("1.", "invalid JSON"),
    ("+1", "invalid JSON"), ("- 1", "invalid JSON"), ("1 1", "invalid JSON"), ("1,", "invalid JSON"),
    ("", "invalid JSON"), ("0x1", "invalid JSON"), ("NaN", "invalid JSON"), ("Infinity", "invalid JSON"),
    ("3.0", "non-negative integer"), ("1.5", "non-negative integer"), ("1e0", "non-negative integer"),
    ("1E2", "non-negative integer"), ("-1", "non-negative integer"), ("-0", "non-negative integer"),
    ('"1"', "non-negative integer"), ("true", "non-negative integer"), ("null", "non-negative integer"),
    ("[1]", "not an embeddings response"), ("{}", "not an embeddings response"),
    ("12", "out of range"), ("99", "out of range"), ("123456789012345", "out of range"),
    ("1234567890123456", "out of range|non-negative integer"),
    ("99999999999999999999999999999999", "out of range|non-negative integer"),
]


@pytest.mark.parametrize("compact", [False, True], ids=["spaced", "compact"])
@pytest.mark.parametrize(("index", "msg"), INVALID_INDEXES, ids=[i for i, _ in INVALID_INDEXES])
def test_fast_path_near_misses_that_are_invalid(index, msg, compact):
    """The third item's index is replaced: rejected whether the header is
    scanned in one step or byte by byte."""
    header = '{{"object":"embedding","index":{i},"embedding":"' if compact else \
        '{{"object": "embedding", "index": {i}, "embedding": "'
    key = b'"index":' if compact else b'"index": '
    body = fast_body(header).replace(key + b"11,", key + index.encode() + b",", 1)
    assert body != fast_body(header)
    with pytest.raises(ValueError):
        ref.decode_response(body, N_FAST, 7)
    cut = body.index(key + index.encode() + b",") + len(key)  # at the index
    for chunks in [None, byte_by_byte(body), [body[:cut], body[cut:]], [body[:cut + 1], body[cut + 1:]]]:
        assert re.search(msg, stream_error(body, N_FAST, 7, chunks=chunks)), chunks and len(chunks)


def test_fast_path_index_out_of_range_per_document():
    """Contextualized chunks take the fast path too; their index is checked
    against their document's chunk count."""
    m = FAST_ROWS[:5]
    body = dumps(api_response(m, [3, 2]))
    assert b'{"object": "embedding", "index": 1, "embedding": "' in body
    bad = body.replace(b'"index": 1, "embedding": "' + b64(m[4]).encode(),
                       b'"index": 2, "embedding": "' + b64(m[4]).encode())
    assert bad != body
    with pytest.raises(ValueError):
        ref.decode_response(bad, 5, 7, np.int8, [3, 2])
    for chunks in [None, byte_by_byte(bad)]:
        assert "'index' 2 is out of range (expected 0..1)" in stream_error(bad, 5, 7, np.int8, [3, 2], chunks)


# ---------------------------------------------------------------- malformed responses
#
# A 3-row, 4-byte-wide response written by hand, one defect at a time.  Each
# must be rejected by the oracle, and by the decoder with a message naming the
# defect, whether fed at once, byte by byte or split at any byte.

ROWS = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [-128, 127, 0, -1]], np.int8)
ENC = [b64(r) for r in ROWS]  # 'AQIDBA==', 'BQYHCA==', 'gH8A/w=='


def it(i, emb=None, index=None, extra=""):
    """A data item; `emb` / `index` are JSON text (None: the right one; "": leave the key out)."""
    emb = f'"{ENC[i]}"' if emb is None else emb
    index = str(i) if index is None else index
    fields = ['"object": "embedding"']
    fields += [f'"index": {index}'] if index != "" else []
    fields += [f'"embedding": {emb}'] if emb != "" else []
    return "{" + ", ".join(fields) + extra + "}"


def flat(*items, before='"object": "list", ', after=', "model": "m", "usage": {"total_tokens": 3}') -> bytes:
    items = items or (it(0), it(1), it(2))
    return ("{" + before + '"data": [' + ", ".join(items) + "]" + after + "}").encode()


def doc(d, *chunks, index=None, extra=""):
    """Document d of the contextualized response (doc_rows [2, 1]: rows 0-1, row 2)."""
    if not chunks:
        chunks = [it(0), it(1, emb=f'"{ENC[1]}"')] if d == 0 else [it(0, emb=f'"{ENC[2]}"')]
    index = str(d) if index is None else index
    head = '{"object": "list", ' + (f'"index": {index}, ' if index != "" else "")
    return head + '"data": [' + ", ".join(chunks) + "]" + extra + "}"


def ctx(*docs) -> bytes:
    docs = docs or (doc(0), doc(1))
    return ('{"object": "list", "data": [' + ", ".join(docs) + '], "model": "m"}').encode()


def test_hand_written_bodies_are_valid():
    for body, doc_rows in [(flat(), None), (ctx(), [2, 1])]:
        want = ref.decode_response(body, 3, 4, np.int8, doc_rows)
        np.testing.assert_array_equal(want[0], ROWS)
        assert_same(decode(body, 3, 4, np.int8, doc_rows), want)


X = re.escape
# (name, the index as sent, as the message shows it)
BIG_INDEXES = [
    ("2**63-1", str(2 ** 63 - 1), str(2 ** 63 - 1)),
    ("2**63", str(2 ** 63), str(2 ** 63)),
    ("2**64", str(2 ** 64), "18446744073709551616"),
    ("10**15+10", str(10 ** 15 + 10), str(10 ** 15 + 10)),  # the first that num_value does not hold whole
    ("64-digits", "9" * 64, "9" * 64),
    ("65-digits", "1" + "2" * 64, "1" + "2" * 63 + "... (65 digits)"),
    ("65-digits-16-held", "1" + "0" * 14 + "3" * 50, "1" + "0" * 14 + "3" * 49 + "... (65 digits)"),
    ("400-digits", "7" * 400, "7" * 64 + "... (400 digits)"),
]
MALFORMED = [
    # rows: missing, repeated, out of range
    ("missing-row", flat(it(0), it(2)), None, X("response is missing 1 of 3 rows (first missing rows: [1])")),
    ("no-rows", b'{"object": "list", "data": [], "model": "m"}', None, X("missing 3 of 3 rows")),
    ("no-data", b'{"object": "list", "model": "m"}', None, X("missing 3 of 3 rows")),
    ("duplicate-index", flat(it(0), it(1), it(1)), None, X("row 1 appears twice")),
    ("duplicate-late-index", flat(it(0), it(2), f'{{"embedding": "{ENC[0]}", "index": 0}}'), None,
     X("row 0 appears twice")),
    ("index-out-of-range", flat(it(0), it(1), it(2, index="3")), None, X("'index' 3 is out of range (expected 0..2)")),
    ("late-index-out-of-range", flat(it(0), it(1), f'{{"embedding": "{ENC[2]}", "index": 3}}'), None,
     X("'index' 3 is out of range (expected 0..2)")),
    ("ctx-missing-chunk", ctx(doc(0, it(0)), doc(1)), [2, 1], X("missing 1 of 3 rows (first missing rows: [1])")),
    ("ctx-missing-doc", ctx(doc(1)), [2, 1], X("missing 2 of 3 rows")),
    ("ctx-chunk-out-of-range", ctx(doc(0), doc(1, it(1, emb=f'"{ENC[2]}"'))), [2, 1],
     X("'index' 1 is out of range (expected 0..0)")),
    ("ctx-chunk-out-of-range-doc-index-late",
     ctx(doc(0), '{"data": [' + it(1, emb=f'"{ENC[2]}"') + '], "index": 1}'), [2, 1],
     X("'index' 1 is out of range (expected 0..0)")),
    ("ctx-chunk-out-of-range-everything-late",
     ctx(doc(0), f'{{"data": [{{"embedding": "{ENC[2]}", "index": 1}}], "index": 1}}'), [2, 1],
     X("'index' 1 is out of range (expected 0..0)")),
    ("ctx-duplicate-chunk", ctx(doc(0, it(0), it(0)), doc(1)), [2, 1], X("row 0 appears twice")),
    ("ctx-duplicate-chunk-doc-index-late",
     ctx(f'{{"data": [{it(1)}, {it(1)}], "index": 0}}', doc(1)), [2, 1], X("row 1 appears twice")),
    ("ctx-doc-index-out-of-range", ctx(doc(0), doc(2)), [2, 1], X("'index' 2 is out of range (expected 0..1)")),
    # an index of 16 digits or more is named as sent (issue 22: 2**64 was shown as 2**63 - 1), from its item
    *[(f"index-{name}", flat(it(0), it(1), it(2, index=digits)), None,
       X(f" (data item 2): 'index' {shown} is out of range (expected 0..2)"))
      for name, digits, shown in BIG_INDEXES],
    ("ctx-chunk-index-2**64", ctx(doc(0), doc(1, it(0, index=str(2 ** 64), emb=f'"{ENC[2]}"'))), [2, 1],
     X(f" (data item 2, document 1): 'index' {2 ** 64} is out of range (expected 0..0)")),
    # (its document's index not read yet: any document's chunks are fewer than the largest's)
    ("ctx-chunk-index-2**64-doc-index-late",
     ctx(doc(0), '{"data": [' + it(0, index=str(2 ** 64), emb=f'"{ENC[2]}"') + '], "index": 1}'),
     [2, 1], X(f" (data item 2): 'index' {2 ** 64} is out of range "
               "(expected 0..1, the chunks of the largest document)")),
    ("ctx-doc-index-2**64", ctx(doc(0), doc(1, index=str(2 ** 64))), [2, 1],
     X(f"'index' {2 ** 64} is out of range (expected 0..1)")),
    ("ctx-doc-index-negative", ctx(doc(0), doc(1, index="-1")), [2, 1], "non-negative integer"),
    ("ctx-duplicate-doc", ctx(doc(0), doc(0)), [2, 1], X("document 0 appears twice")),
    ("ctx-duplicate-doc-index-late", ctx(doc(0), f'{{"data": [{it(0)}, {it(1)}], "index": 0}}'), [2, 1],
     X("document 0 appears twice")),
    # every row arrived exactly once, but document 0 is there twice (the oracle rejects it: so must the decoder)
    ("ctx-duplicate-doc-without-chunks", ctx(doc(0), doc(1), '{"index": 0, "data": []}'), [2, 1],
     X("document 0 appears twice")),
    ("ctx-duplicate-doc-without-data", ctx(doc(0), doc(1), '{"index": 1}'), [2, 1], X("document 1 appears twice")),
    ("ctx-doc-without-index", ctx(doc(0), doc(1, index="")), [2, 1], X("a document has no 'index'")),
    ("ctx-doc-index-string", ctx(doc(0), doc(1, index='"1"')), [2, 1], X("'index' must be a non-negative integer")),
    ("ctx-doc-index-float", ctx(doc(0), doc(1, index="1.0")), [2, 1], X("'index' must be a non-negative integer")),
    ("ctx-doc-data-not-array", ctx(doc(0), '{"index": 1, "data": {}}'), [2, 1], "not an embeddings response"),
    ("ctx-chunks-not-objects", ctx(doc(0), f'{{"index": 1, "data": ["{ENC[2]}"]}}'), [2, 1],
     "not an embeddings response"),
    ("ctx-chunk-without-embedding", ctx(doc(0), doc(1, it(0, emb=""))), [2, 1], X("an item has no 'embedding'")),
    ("ctx-chunk-without-index", ctx(doc(0), doc(1, it(0, index="", emb=f'"{ENC[2]}"'))), [2, 1],
     X("an item has no 'index'")),
    ("ctx-flat-shape", flat(), [2, 1], "out of range|missing 3 of 3 rows"),  # items read as documents
    # items
    ("no-index", flat(it(0), it(1), it(2, index="")), None, X("an item has no 'index'")),
    ("no-embedding", flat(it(0), it(1, emb=""), it(2)), None, X("an item has no 'embedding'")),
    ("empty-item", flat(it(0), it(1), "{}"), None, X("an item has no 'index'")),
    ("index-string", flat(it(0), it(1, index='"1"'), it(2)), None, X("'index' must be a non-negative integer")),
    ("index-null", flat(it(0), it(1, index="null"), it(2)), None, X("'index' must be a non-negative integer")),
    ("index-false", flat(it(0), it(1, index="false"), it(2)), None, X("'index' must be a non-negative integer")),
    ("index-array", flat(it(0), it(1, index="[1]"), it(2)), None, "not an embeddings response"),
    ("index-twice", flat(it(0), it(1, extra=', "index": 1'), it(2)), None, X("a key appears twice in one object")),
    ("embedding-twice", flat(it(0), it(1, extra=f', "embedding": "{ENC[1]}"'), it(2)), None,
     X("a key appears twice in one object")),
    ("data-twice", flat(after=', "data": []'), None, X("a key appears twice in one object")),
    ("ctx-doc-index-twice", ctx(doc(0), doc(1, extra=', "index": 1')), [2, 1], X("a key appears twice in one object")),
    ("ctx-doc-data-twice", ctx(doc(0), doc(1, extra=', "data": []')), [2, 1], X("a key appears twice in one object")),
    ("embedding-number", flat(it(0), it(1, emb="12"), it(2)), None, "not an embeddings response"),
    ("embedding-negative", flat(it(0), it(1, emb="-1.5e3"), it(2)), None, "not an embeddings response"),
    ("embedding-null", flat(it(0), it(1, emb="null"), it(2)), None, "not an embeddings response"),
    ("embedding-true", flat(it(0), it(1, emb="true"), it(2)), None, "not an embeddings response"),
    ("embedding-list", flat(it(0), it(1, emb="[5, 6, 7, 8]"), it(2)), None, "not an embeddings response"),
    ("embedding-object", flat(it(0), it(1, emb='{"b64": "BQYHCA=="}'), it(2)), None, "not an embeddings response"),
    ("embedding-list-of-strings", flat(it(0), it(1, emb=f'["{ENC[1]}"]'), it(2)), None,
     "not an embeddings response"),
    # base64
    *[(f"bad-char-{name}", flat(it(0), it(1, emb=f'"BQY{ch}CA=="'), it(2)), None,
       X(f"invalid base64 in 'embedding': invalid character {shown} at offset "))  # (offset: see the bug tests)
      for name, ch, shown in [("bang", "!", "'!'"), ("dash", "-", "'-'"), ("underscore", "_", "'_'"),
                              ("space", " ", "' '"), ("dot", ".", "'.'"), ("tilde", "~", "'~'"),
                              ("del", "\x7f", "'\\x7f'"), ("quote", '\\"', "'\"'"), ("backslash", "\\\\", "'\\\\'"),
                              ("escaped-newline", "\\n", "'\\n'"), ("escaped-nul", "\\u0000", "'\\x00'")]],
    ("bad-char-non-ascii-raw", flat(it(0), it(1, emb='"BQYéA=="'), it(2)), None,
     "invalid base64 in 'embedding': invalid character .* at offset"),
    ("bad-char-non-ascii-escaped", flat(it(0), it(1, emb='"BQY\\u00e9CA=="'), it(2)), None,
     "invalid base64 in 'embedding': invalid character .* at offset"),
    ("bad-char-raw-control", flat(it(0), it(1, emb='"BQY\nCA=="'), it(2)), None, "invalid base64|invalid JSON"),
    ("bad-char-first", flat(it(0), it(1, emb='"!QYHCA=="'), it(2)), None,
     X("invalid base64 in 'embedding': invalid character '!' at offset ")),
    # a wrong '=' may be caught by the length check (the '=' count says how many bytes the row holds)
    ("bad-char-last", flat(it(0), it(1), it(2, emb='"gH8A/w=!"')), None, "invalid base64 in 'embedding'|decodes to"),
    ("padding-in-middle", flat(it(0), it(1, emb='"BQ==BQYHCA=="'), it(2)), None,
     "invalid base64 in 'embedding'|decodes to"),
    ("padding-in-middle-same-length", flat(it(0), it(1, emb='"BQ==CA=="'), it(2)), None,
     "invalid base64 in 'embedding'"),
    ("padding-then-data", flat(it(0), it(1, emb='"BQYHC=A="'), it(2)), None,
     "invalid base64 in 'embedding'|decodes to"),
    ("triple-padding", flat(it(0), it(1, emb='"BQYHC==="'), it(2)), None, "invalid base64 in 'embedding'"),
    ("only-padding", flat(it(0), it(1, emb='"========"'), it(2)), None, "invalid base64 in 'embedding'"),
    ("non-canonical-two-pad", flat(it(0), it(1, emb='"BQYHCB=="'), it(2)), None,
     X("invalid base64 in 'embedding': non-zero bits before '=' padding")),
    ("non-canonical-one-pad", flat(it(0), it(1, emb='"BQYHCAB="'), it(2)), None,
     "invalid base64 in 'embedding'|decodes to"),
    ("too-short", flat(it(0), it(1, emb='"BQYH"'), it(2)), None, X("'embedding' decodes to 3 bytes, expected 4")),
    ("empty-string", flat(it(0), it(1, emb='""'), it(2)), None, X("'embedding' decodes to 0 bytes, expected 4")),
    ("too-long", flat(it(0), it(1, emb='"BQYHCAk="'), it(2)), None, X("'embedding' decodes to more than 4 bytes")),
    ("one-extra-quad", flat(it(0), it(1, emb='"BQYHCAkKCw=="'), it(2)), None,
     X("'embedding' decodes to more than 4 bytes")),
    ("two-rows-in-one", flat(it(0), it(1, emb=f'"{ENC[1]}{ENC[2]}"'), it(2)), None,
     "invalid base64 in 'embedding'|decodes to"),
    ("unpadded", flat(it(0), it(1, emb='"BQYHCA"'), it(2)), None, "is not a multiple of 4"),
    ("one-char-short", flat(it(0), it(1, emb='"BQYHCA="'), it(2)), None, "is not a multiple of 4"),
    ("one-char-long", flat(it(0), it(1, emb='"BQYHCAkKC"'), it(2)), None, "is not a multiple of 4|decodes to"),
    ("single-char", flat(it(0), it(1, emb='"B"'), it(2)), None, "is not a multiple of 4"),
    # shape
    ("root-array", b'[{"index": 0, "embedding": "AQIDBA=="}]', None, "not an embeddings response"),
    ("root-number", b"1", None, "not an embeddings response"),
    ("root-string", b'"data"', None, "not an embeddings response"),
    ("root-null", b"null", None, "not an embeddings response"),
    ("root-html", b"<html>502 Bad Gateway</html>", None, "not an embeddings response|invalid JSON"),
    ("data-object", b'{"data": {"0": {"index": 0, "embedding": "AQIDBA=="}}}', None, "not an embeddings response"),
    ("data-null", b'{"data": null}', None, "not an embeddings response"),
    ("data-string", b'{"data": "AQIDBA=="}', None, "not an embeddings response"),
    ("data-number", b'{"data": 3}', None, "not an embeddings response"),
    ("data-items-strings", flat(f'"{ENC[0]}"', it(1), it(2)), None, "not an embeddings response"),
    ("data-items-arrays", flat("[]", it(1), it(2)), None, "not an embeddings response"),
    ("data-items-null", flat(it(0), it(1), it(2), "null"), None, "not an embeddings response"),
    ("data-items-numbers", flat(it(0), it(1), it(2), "3"), None, "not an embeddings response"),
    ("trailing-comma-data", flat(it(0), it(1), it(2) + ","), None, "not an embeddings response|invalid JSON"),
    # trailing data
    *[(f"trailing-{name}", flat() + tail, None, X("data after the end of the JSON document"))
      for name, tail in [("letter", b"x"), ("object", b"{}"), ("second-response", b"\n" + flat()),
                         ("bracket", b"]"), ("brace", b"}"), ("comma", b","), ("number", b" \n 1"), ("nul", b"\x00")]],
    # JSON syntax
    *[(f"syntax-{name}", body, None, "invalid JSON") for name, body in [
        ("missing-colon-root", flat(after=', "model" "m"')),
        ("missing-colon-item", flat(it(0), f'{{"index" 1, "embedding": "{ENC[1]}"}}', it(2))),
        ("double-colon", flat(after=', "model":: "m"')),
        ("trailing-comma-array", flat(after=', "x": [1,]')),
        ("trailing-comma-object", flat(after=', "x": {"a": 1,}')),
        ("trailing-comma-item", flat(it(0), it(1, extra=","), it(2))),
        ("trailing-comma-root", flat(after=', "model": "m",')),
        ("leading-comma", flat(after=', "x": [,1]')),
        ("double-comma", flat(after=', "x": [1,,2]')),
        ("missing-comma-items", flat(it(0), it(1) + " " + it(2))),
        ("missing-comma-keys", flat(after=', "model": "m" "usage": {}')),
        ("missing-value", flat(after=', "model": }')),
        ("key-without-value", flat(after=', "model"')),
        ("mismatched-close", flat(after=', "x": [1}')),
        ("mismatched-close-object", flat(after=', "x": {"a": 1]')),
        ("colon-in-array", flat(after=', "x": [1: 2]')),
        ("bad-literal-tru", flat(after=', "x": tru')),
        ("bad-literal-True", flat(after=', "x": True')),
        ("bad-literal-nul", flat(after=', "x": [nul]')),
        ("bad-literal-nulll", flat(after=', "x": nulll')),
        ("bad-literal-fals", flat(it(0), it(1, extra=', "x": fals'), it(2))),
        ("NaN", flat(after=', "x": NaN')),
        ("Infinity", flat(after=', "x": -Infinity')),
        ("control-char-in-string", flat(after=', "model": "m\nx"')),
        ("tab-in-string", flat(after=', "model": "m\tx"')),
        ("nul-in-item-string", flat(it(0), it(1, extra=', "x": "a\x00b"'), it(2))),
        ("control-char-in-key", flat(after=', "mo\x1fdel": "m"')),
        ("bad-escape-x", flat(after=', "model": "\\x41"')),
        ("bad-escape-in-item", flat(it(0), it(1, extra=', "x": "\\a"'), it(2))),
        ("bad-escape-in-key", flat(after=', "\\k": 1')),
        ("bad-escape-in-embedding", flat(it(0), it(1, emb='"BQY\\xCA=="'), it(2))),
        ("bad-unicode-escape", flat(after=', "model": "\\u12G4"')),
        ("short-unicode-escape", flat(after=', "model": "\\u12"')),
        ("bad-unicode-escape-in-embedding", flat(it(0), it(1, emb='"BQY\\u00ZZCA=="'), it(2))),
        ("number-leading-zero", flat(after=', "x": 012')),
        ("number-dot-end", flat(after=', "x": 1.')),
        ("number-dot-start", flat(after=', "x": .5')),
        ("number-plus", flat(after=', "x": +1')),
        ("number-minus-only", flat(after=', "x": -')),
        ("number-double-minus", flat(after=', "x": --1')),
        ("number-exponent-only", flat(after=', "x": 1e')),
        ("number-exponent-sign-only", flat(after=', "x": 1e+')),
        ("number-two-dots", flat(after=', "x": 1.2.3')),
        ("number-hex", flat(after=', "x": 0x10')),
        ("single-quotes", flat(after=", 'model': 'm'")),
        ("unquoted-key", flat(after=", model: 1")),
        ("key-not-string", flat(after=", 1: 1")),
        ("object-as-key", flat(after=', {}: 1')),
        ("form-feed-whitespace", flat(after=',\x0c"model": "m"')),
        ("nbsp-whitespace", flat(after=',\xa0"model": "m"').replace(b"\xc2\xa0", b"\xa0")),
        ("comment", flat(after=', /* c */ "model": "m"')),
        ("unterminated-root", flat()[:-1] + b"]"),
        ("extra-close", flat(after=', "x": [1]]')),
    ]],
]


@pytest.mark.parametrize(("body", "doc_rows", "msg"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_response_is_rejected(body, doc_rows, msg):
    with pytest.raises(ValueError):
        ref.decode_response(body, 3, 4, np.int8, doc_rows)
    for k in [None, *range(len(body) + 1)]:
        chunks = None if k is None else [body[:k], body[k:]]
        got = stream_error(body, 3, 4, np.int8, doc_rows, chunks)
        assert re.search(msg, got), (k, got)
    got = stream_error(body, 3, 4, np.int8, doc_rows, byte_by_byte(body))
    assert re.search(msg, got), got


def test_bad_base64_at_every_position_and_chunk_boundary(isa):
    """A long row (the SIMD loops, not just the serial tail) with one bad
    character at many offsets, split around it: rejected, naming base64."""
    rng = np.random.default_rng(11)
    m = matrix(rng, 2, 1024, np.int8)
    body = dumps(api_response(m))
    start = body.index(b64(m[1]).encode())
    for off in [0, 1, 2, 3, 4, 31, 32, 33, 63, 64, 127, 128, 255, 256, 300, 1000, 1364, 1365, 1366, 1367]:
        bad = body[:start + off] + b"!" + body[start + off + 1:]
        for cut in [None, start + off - 1, start + off, start + off + 1, start + off + 2, start + off - 30]:
            chunks = None if cut is None else [bad[:cut], bad[cut:]]
            msg = stream_error(bad, 2, 1024, np.int8, None, chunks)
            assert re.search("invalid base64 in 'embedding'" + ("|decodes to" if off >= 1366 else ""), msg), \
                (off, cut, msg)  # ('!' for the padding '=' changes the decoded length)


# ---------------------------------------------------------------- truncation

@pytest.mark.parametrize(("kind", "layout", "style"), CASES, ids=["-".join(c) for c in CASES])
def test_truncated_at_every_byte(kind, layout, style):
    """Every proper prefix of a response (in one feed or two) makes finish()
    raise "truncated"; the whole body (plus trailing whitespace) decodes."""
    m, doc_rows, obj = small_case(kind, layout)
    body = dumps(obj, style)
    n, width = m.shape
    for k in range(len(body)):
        prefix = body[:k]
        for chunks in [[prefix], [prefix[:k // 2], prefix[k // 2:]]]:
            out = np.zeros((n, width), m.dtype)
            dec = StreamDecoder(out, doc_rows)
            for c in chunks:
                dec.feed(c)
            with pytest.raises(StreamDecodeError, match="^truncated response: the body ended "):
                dec.finish()
    out, _ = decode(body + b" \r\n\t ", n, width, m.dtype, doc_rows)
    np.testing.assert_array_equal(out, m)


def test_truncated_messages():
    dec = StreamDecoder(np.zeros((1, 4), np.int8))
    with pytest.raises(StreamDecodeError, match="^truncated response: the body ended before any JSON$"):
        dec.finish()
    dec.feed(b"")
    with pytest.raises(StreamDecodeError, match="^truncated response: the body ended before any JSON$"):
        dec.finish()
    dec = StreamDecoder(np.zeros((1, 4), np.int8))
    dec.feed(prefix := b'{"data": [{"index": 0, "embedding": "AQID')
    with pytest.raises(StreamDecodeError,
                       match=f"^truncated response: the body ended at byte {len(prefix)}, inside the document$"):
        dec.finish()
    dec = StreamDecoder(np.zeros((1, 4), np.int8))
    dec.feed(b"  \n")
    with pytest.raises(StreamDecodeError, match="^truncated response"):
        dec.finish()


def test_truncation_then_more_data_still_decodes():
    """finish() on a truncated body raises without spoiling the decoder (sans-IO:
    the caller may have called it early)."""
    body = flat()
    dec = StreamDecoder(out := np.zeros((3, 4), np.int8))
    dec.feed(body[:100])
    with pytest.raises(StreamDecodeError, match="truncated"):
        dec.finish()
    dec.feed(body[100:])
    assert dec.finish() == {"object": "list", "model": "m", "usage": {"total_tokens": 3}}
    np.testing.assert_array_equal(out, ROWS)


# ---------------------------------------------------------------- after finish() (issue 22)

FINISHED = ("StreamDecoder.{}: the response is already decoded (finish() returned); "
            "one decoder decodes one response")


@pytest.mark.parametrize("doc_rows", [None, [2, 1]], ids=["flat", "ctx"])
@pytest.mark.parametrize("more", [b" ", b"\n\t\r ", b"x", b"}", b"", bytearray(b"{}"), np.zeros(3, np.uint8)],
                         ids=["space", "whitespace", "letter", "brace", "empty", "bytearray", "uint8"])
def test_feed_and_finish_after_finish_raise(more, doc_rows):
    """A finished decoder takes no more of a body (whitespace and an empty
    chunk no more than garbage: it was once let through, or turned the
    decoder into an error state) and no second finish(): RuntimeError, and
    the rows, filled() and rows_done are the ones finish() checked."""
    body = flat() if doc_rows is None else ctx()
    meta = {"object": "list", "model": "m", "usage": {"total_tokens": 3}} if doc_rows is None else \
        {"object": "list", "model": "m"}
    dec = StreamDecoder(out := np.zeros((3, 4), np.int8), doc_rows)
    dec.feed(body)
    assert dec.finish() == meta
    for call, name in [(partial(dec.feed, more), "feed()"), (dec.finish, "finish()"),
                       (partial(dec.feed, more), "feed()"), (dec.finish, "finish()")]:
        with raises_exactly(RuntimeError, FINISHED.format(name)):
            call()
        np.testing.assert_array_equal(out, ROWS)
        assert dec.rows_done == 3 and dec.filled().all()


def test_a_finish_that_raised_did_not_finish():
    """finish() that raised leaves the decoder as it was: a truncated body
    may be fed its rest; one with a row missing still says so."""
    dec = StreamDecoder(np.zeros((3, 4), np.int8))
    dec.feed(flat(it(0), it(2)))
    for _ in range(2):
        with pytest.raises(StreamDecodeError, match=re.escape("missing 1 of 3 rows")):
            dec.finish()
    dec.feed(b" ")  # whitespace after the document: still valid, the document is not decoded
    with pytest.raises(StreamDecodeError, match=re.escape("missing 1 of 3 rows")):
        dec.finish()


# ---------------------------------------------------------------- limits

MAX_DEPTH = ref.MAX_STREAM_DEPTH


def nested(k: int) -> str:
    """k nested containers, alternating arrays and objects."""
    text = "1"
    for level in range(k):
        text = f"[{text}]" if level % 2 else f'{{"a": {text}}}'
    return text


@pytest.mark.parametrize("where", ["root", "item", "doc", "chunk", "usage"])
def test_nesting_limit(where):
    """64 levels of containers (the root object counting as one) decode; 65 raise."""
    def body(k):  # k: the depth of the deepest container in the whole document
        if where == "root":
            return flat(after=f', "x": {nested(k - 1)}')
        if where == "usage":
            return flat(after=f', "usage": {{"u": {nested(k - 2)}}}')
        if where == "item":
            return flat(it(0), it(1, extra=f', "x": {nested(k - 3)}'), it(2))
        if where == "doc":
            return ctx(doc(0), doc(1, extra=f', "x": {nested(k - 3)}'))
        return ctx(doc(0), doc(1, it(0, emb=f'"{ENC[2]}"', extra=f', "x": {nested(k - 5)}')))

    doc_rows = [2, 1] if where in ("doc", "chunk") else None
    ok, deep = body(MAX_DEPTH), body(MAX_DEPTH + 1)
    np.testing.assert_array_equal(ref.decode_response(ok, 3, 4, np.int8, doc_rows)[0], ROWS)
    with pytest.raises(ValueError):
        ref.decode_response(deep, 3, 4, np.int8, doc_rows)
    for chunks in [None, byte_by_byte(ok)]:
        np.testing.assert_array_equal(decode(ok, 3, 4, np.int8, doc_rows, chunks)[0], ROWS)
    for chunks in [None, byte_by_byte(deep)]:
        assert f"JSON nested deeper than {MAX_DEPTH}" in stream_error(deep, 3, 4, np.int8, doc_rows, chunks)
    # far deeper: still the same error, no recursion anywhere
    deeper = b'{"data": [], "x": ' + b"[" * 100_000
    assert f"JSON nested deeper than {MAX_DEPTH}" in stream_error(deeper, 0, 4)


CAPTURE_MAX = 1 << 20  # all the top-level fields other than data together: key + value text, + 2 bytes per field


def top_level_body(fields, data_key='"data"', data_first=False) -> bytes:
    """A response of ROWS with the other top-level fields `fields`: (key, value) as raw JSON text (key without
    its quotes).  Against CAPTURE_MAX they cost sum(len(key) + len(value) + 2)."""
    data = f'{data_key}: [{it(0)}, {it(1)}, {it(2)}]'
    parts = [f'"{k}": {v}' for k, v in fields]
    return ("{" + ", ".join([data, *parts] if data_first else [*parts, data]) + "}").encode()


def chunked(body, size):
    return None if size is None else [body[i:i + size] for i in range(0, len(body), size)]


CAP_ERROR = X(f"the top-level fields other than 'data' take more than {CAPTURE_MAX} bytes in total")


@pytest.mark.parametrize("data_first", [True, False], ids=["data-first", "data-last"])
@pytest.mark.parametrize("value", ["string", "array", "object"])
def test_top_level_field_size_limit(value, data_first):
    """The top-level fields other than data are kept until finish(), up to
    CAPTURE_MAX in total (each key and value as sent, plus 2 bytes); one byte
    more raises, whether data comes before them or after (its key is read
    when the buffer is already full)."""
    def fields(total):
        inner = total - (len("model") + len('"m"') + 2) - (len("big") + 2)
        want = {"string": "x" * (inner - 2), "array": ["x" * (inner - 4)], "object": {"k": "x" * (inner - 9)}}[value]
        text = json.dumps(want)
        assert len(text) == inner
        return [("model", '"m"'), ("big", text)], want

    pairs, want = fields(CAPTURE_MAX)
    for data_key in ['"data"', '"\\u0064\\u0061\\u0074\\u0061"']:  # "data" spelled with escapes: 24 bytes
        body = top_level_body(pairs, data_key, data_first)
        assert ref.decode_response(body, 3, 4)[1] == {"model": "m", "big": want}
        for size in [None, 65536, 1_000_003]:
            out, meta = decode(body, 3, 4, np.int8, None, chunked(body, size))
            assert meta == {"model": "m", "big": want}
            np.testing.assert_array_equal(out, ROWS)
    pairs, _ = fields(CAPTURE_MAX + 1)
    body = top_level_body(pairs, data_first=data_first)
    for size in [None, 65536, 4096]:
        assert re.search(CAP_ERROR, stream_error(body, 3, 4, np.int8, None, chunked(body, size)))


def test_top_level_fields_are_capped_in_total():
    """Issue 10 #6: each field was capped at 1 MiB, but not their sum (200 of
    them took the process to 429 MB).  Now the sum is: 32 fields of 64 KiB,
    or 500,000 fields of 1 byte (each counts 2 bytes more: 1.5 MiB), fail in
    the feed that takes them past the cap."""
    for fields in [[(f"f{i}", f'"{"x" * 65536}"') for i in range(32)], [("", "0")] * (CAPTURE_MAX // 2)]:
        body = top_level_body(fields)
        counted = sum(len(k) + len(v) + 2 for k, v in fields)
        assert counted > CAPTURE_MAX
        dec = StreamDecoder(np.zeros((3, 4), np.int8))
        fed = 0
        with pytest.raises(StreamDecodeError, match=CAP_ERROR):
            for piece in chunked(body, 4096):
                dec.feed(piece)
                fed += len(piece)
        # in the feed that crossed the cap: the text fed so far is what was counted and the
        # quotes, colons, commas and spaces around it (len(body) / counted of it)
        assert fed <= CAPTURE_MAX * len(body) / counted + 4096 < len(body)
    # just under the cap: the fields all come back, duplicates as json.loads has them (the last one)
    fields = [(f"f{i % 100}", str(i)) for i in range(CAPTURE_MAX // 12)]
    body = top_level_body(fields)
    assert sum(len(k) + len(v) + 2 for k, v in fields) <= CAPTURE_MAX
    want = ref.decode_response(body, 3, 4)
    assert len(want[1]) == 100
    assert_same(decode(body, 3, 4, np.int8, None, chunked(body, 4096)), want)


@pytest.mark.parametrize("what", ["string", "number", "key"])
def test_oversized_top_level_field_fails_without_buffering_it(what):
    """Memory stays bounded: a never-ending top-level string, number or key
    fails in the feed that takes it past 1 MiB, not at the end (64 MiB are offered)."""
    dec = StreamDecoder(np.zeros((3, 4), np.int8))
    dec.feed({"string": b'{"data": [], "model": "', "number": b'{"data": [], "n": 1', "key": b'{"data": [], "'}[what])
    piece = (b"1" if what == "number" else b"x") * 65536
    fed = 0
    with pytest.raises(StreamDecodeError, match=CAP_ERROR):
        for _ in range(1024):
            dec.feed(piece)
            fed += len(piece)
    assert CAPTURE_MAX - len(piece) <= fed <= CAPTURE_MAX
    with pytest.raises(StreamDecodeError, match="after an error"):
        dec.feed(piece)


def test_large_unknown_fields_inside_items_are_not_buffered():
    """Unknown fields of items and documents are validated and skipped, never
    kept: 16 MiB of them decode fine, fed in pieces."""
    filler = "z" * (8 << 20)
    body = flat(it(0, extra=f', "debug": "{filler}"'), it(1), it(2, extra=f', "more": ["{filler}", 1.5e3, null]'))
    chunks = [body[i:i + (1 << 20)] for i in range(0, len(body), 1 << 20)]
    out, meta = decode(body, 3, 4, np.int8, None, chunks)
    np.testing.assert_array_equal(out, ROWS)
    assert meta == {"object": "list", "model": "m", "usage": {"total_tokens": 3}}


# ---------------------------------------------------------------- after an error

@pytest.mark.parametrize("body", [flat(it(0), it(0)), flat() + b"x", b"[1]", flat(it(0), it(1, emb='"!!!!!!!!"'))],
                         ids=["duplicate", "trailing", "shape", "base64"])
def test_feed_and_finish_after_an_error_raise(body):
    dec = StreamDecoder(np.zeros((3, 4), np.int8))
    with pytest.raises(StreamDecodeError):
        dec.feed(body)
    for call in [lambda: dec.feed(b" "), lambda: dec.feed(b""), dec.finish, lambda: dec.feed(flat()), dec.finish]:
        with pytest.raises(StreamDecodeError, match="after an error"):
            call()


def test_feed_takes_bytes_like_objects_only():
    dec = StreamDecoder(np.zeros((3, 4), np.int8))
    with pytest.raises(TypeError):
        dec.feed(flat().decode())
    with pytest.raises(TypeError):
        dec.feed(None)
    body = flat()
    for k, piece in enumerate(split(body, [20, 90, 150])):
        dec.feed(as_feed(piece, FEED_KINDS[k]))
    assert dec.finish()["model"] == "m"


def test_stream_decode_error_is_a_value_error():
    assert issubclass(StreamDecodeError, ValueError)


def test_missing_rows_error_lists_the_first_ten():
    m = np.arange(40 * 3, dtype=np.int8).reshape(40, 3)
    body = dumps(api_response(m, order=[0, 5, 39]))
    msg = stream_error(body, 40, 3)
    assert msg == "response is missing 37 of 40 rows (first missing rows: [1, 2, 3, 4, 6, 7, 8, 9, 10, 11])"


# ---------------------------------------------------------------- filled() / rows_done

def completion_offsets(obj, body, doc_rows):
    """For each row, a byte offset by which it is certainly complete: the end of
    its item (flat) or of its document (contextualized: the document index may
    come last)."""
    done = {}
    if doc_rows is None:
        for item in obj["data"]:
            text = json.dumps(item).encode()
            done[item["index"]] = body.index(text) + len(text)
    else:
        starts = doc_starts(doc_rows)
        for d in obj["data"]:
            text = json.dumps(d).encode()
            for c in d["data"]:
                done[starts[d["index"]] + c["index"]] = body.index(text) + len(text)
    return done


@pytest.mark.parametrize("layout", ["flat", "flat-reordered", "ctx", "ctx-reordered"])
def test_filled_marks_every_completed_row(layout):
    """After any prefix: every row whose item (document) has been read is
    marked, rows_done counts the marks, marks only grow; a document's rows
    whose document index has not been read yet are not marked."""
    m, doc_rows, obj = small_case("int8", layout)
    body = dumps(obj)
    n, width = m.shape
    done = completion_offsets(obj, body, doc_rows)
    doc_index_at = {}
    if doc_rows is not None and layout.endswith("reordered"):
        starts = doc_starts(doc_rows)
        for d in obj["data"]:
            text = json.dumps(d).encode()
            at = body.index(text) + text.rindex(b'"index": ') + len('"index": ') + 1  # past its digit
            doc_index_at.update({starts[d["index"]] + c["index"]: at for c in d["data"]})
    for k in range(len(body) + 1):
        for chunks in [[body[:k]], [body[:k // 3], body[k // 3:k]]]:
            dec = StreamDecoder(np.zeros((n, width), np.int8), doc_rows)
            before = np.zeros(n, bool)
            for c in chunks:
                dec.feed(c)
                now = dec.filled()
                assert now.dtype == bool and now.shape == (n,)
                assert (now >= before).all()
                before = now
            filled = dec.filled()
            assert dec.rows_done == filled.sum()
            for r in range(n):
                if k >= done[r]:
                    assert filled[r], (k, r)
                if r in doc_index_at and k < doc_index_at[r]:
                    assert not filled[r], (k, r)


def test_rows_never_written_are_not_marked():
    sentinel = np.full((3, 4), 99, np.int8)
    out = sentinel.copy()
    dec = StreamDecoder(out)
    dec.feed(flat(it(2), it(0)))
    np.testing.assert_array_equal(dec.filled(), [True, False, True])
    assert dec.rows_done == 2
    np.testing.assert_array_equal(out[1], sentinel[1])
    with pytest.raises(StreamDecodeError, match=re.escape("missing 1 of 3 rows (first missing rows: [1])")):
        dec.finish()
    # contextualized: a document whose index never came
    out = sentinel.copy()
    dec = StreamDecoder(out, [2, 1])
    dec.feed(b'{"data": [' + doc(1).encode() + b', {"data": [' + it(0).encode() + b", " + it(1).encode())
    np.testing.assert_array_equal(dec.filled(), [False, False, True])
    np.testing.assert_array_equal(out[:2], sentinel[:2])
    assert dec.rows_done == 1


def test_filled_is_a_copy():
    dec = StreamDecoder(np.zeros((3, 4), np.int8))
    body = flat(it(0), it(1))
    dec.feed(body[:body.index(it(1).encode())])
    mask = dec.filled()
    mask[:] = True
    np.testing.assert_array_equal(dec.filled(), [True, False, False])


# ---------------------------------------------------------------- out and doc_rows arguments

@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("doc_rows", [None, [4, 1, 5]], ids=["flat", "ctx"])
def test_rows_land_in_place_in_a_view(dtype, doc_rows):
    rng = np.random.default_rng(5)
    m = matrix(rng, 10, 33, dtype)
    big = np.full((30, 33), 0x5A, dtype)
    view = big[10:20]
    body = dumps(api_response(m, doc_rows, order=rng.permutation(10), docs_order=[2, 0, 1]))
    dec = StreamDecoder(view, doc_rows)
    for i in range(0, len(body), 97):
        dec.feed(body[i:i + 97])
    dec.finish()
    np.testing.assert_array_equal(big[10:20], m)
    assert (big[:10] == 0x5A).all() and (big[20:] == 0x5A).all()


def test_out_of_zero_rows():
    assert decode(b'{"data": [], "model": "m"}', 0, 4)[1] == {"model": "m"}
    assert decode(b'{"data": [], "model": "m"}', 0, 4, np.int8, [])[1] == {"model": "m"}


def at_end_of(body: bytes, text: str) -> int:
    """The byte after the first `text` in `body` (where an index's digits end)."""
    return body.index(text.encode()) + len(text)


NO_ITEMS, NO_DOCS = "(expected no items: out has 0 rows)", "(expected no documents: doc_rows is empty)"
ZERO_ROW_BODIES = [  # (body, doc_rows, where the error is, the message: issue 22, it said "expected 0..-1")
    (flat(it(0)), None, '"index": 0', f" (data item 0, index 0): 'index' 0 is out of range {NO_ITEMS}"),
    (flat(it(0, emb='"AQIDBA==", "x": 1'), it(1)), None, '"index": 0',
     f" (data item 0, index 0): 'index' 0 is out of range {NO_ITEMS}"),
    (flat(f'{{"embedding": "{ENC[0]}", "index": 0}}'), None, '"index": 0',
     f" (data item 0, index 0): 'index' 0 is out of range {NO_ITEMS}"),
    (flat(it(0, index=str(2 ** 64))), None, f'"index": {2 ** 64}',
     f" (data item 0): 'index' {2 ** 64} is out of range {NO_ITEMS}"),
    (ctx(doc(0)), [], '"index": 0', f": 'index' 0 is out of range {NO_DOCS}"),
    # (its chunks come before its index: the first one has nowhere to wait)
    (ctx('{"data": [' + it(0) + '], "index": 0}'), [], '"embedding": ', f": a document has chunks {NO_DOCS}"),
    (ctx('{"data": [' + it(0, index=str(2 ** 64)) + '], "index": 0}'), [], f'"index": {2 ** 64}',
     f" (data item 0): 'index' {2 ** 64} is out of range {NO_DOCS}"),
]
ZERO_ROWS = [(body, doc_rows, f"response byte {at_end_of(body, at)}{msg}")
             for body, doc_rows, at, msg in ZERO_ROW_BODIES]


@pytest.mark.parametrize(("body", "doc_rows", "msg"), ZERO_ROWS)
def test_out_of_zero_rows_names_what_it_expects(body, doc_rows, msg):
    """A decoder made for no rows says that it expects no items (documents),
    the same message however the body is split."""
    for chunks in [None, byte_by_byte(body), *([body[:k], body[k:]] for k in range(len(body) + 1))]:
        assert stream_error(body, 0, 4, np.int8, doc_rows, chunks) == msg, chunks and len(chunks)


BAD_OUTS = [
    (np.zeros((3, 4), np.float32), TypeError),
    (np.zeros((3, 4), np.int16), TypeError),
    (np.zeros((3, 4), bool), TypeError),
    ([[0] * 4] * 3, TypeError),
    (bytearray(12), TypeError),
    (None, TypeError),
    (np.zeros(12, np.int8), ValueError),
    (np.zeros((3, 4, 1), np.int8), ValueError),
    (np.zeros((3, 0), np.int8), ValueError),
    (np.zeros((6, 4), np.int8)[::2], ValueError),
    (np.zeros((3, 8), np.int8)[:, ::2], ValueError),
    (np.zeros((3, 8), np.int8)[:, :4], ValueError),
    (np.zeros((3, 4), np.int8, order="F"), ValueError),
    (np.frombuffer(bytes(12), np.int8).reshape(3, 4), ValueError),
]


@pytest.mark.parametrize(("out", "exc"), BAD_OUTS, ids=[
    "float32", "int16", "bool", "list", "bytearray", "None", "1-D", "3-D", "zero-width", "row-strided",
    "element-strided", "column-slice", "fortran", "read-only"])
def test_bad_out(out, exc):
    with pytest.raises(exc):
        StreamDecoder(out)


@pytest.mark.parametrize("doc_rows", [[2, 2], [1, 1], [3, 0], [4, -1], [], [0, 3], [1, 1, 1, 1]])
def test_doc_rows_must_sum_to_n(doc_rows):
    with pytest.raises(ValueError, match="doc_rows must be positive chunk counts summing to the 3 rows of out"):
        StreamDecoder(np.zeros((3, 4), np.int8), doc_rows)


def test_doc_rows_any_sequence():
    body = ctx()
    for doc_rows in [(2, 1), np.array([2, 1]), [np.int64(2), np.int64(1)]]:
        np.testing.assert_array_equal(decode(body, 3, 4, np.int8, doc_rows)[0], ROWS)


# ---------------------------------------------------------------- defects found (these fail on the decoder as written)

def test_filled_marks_only_fully_written_rows():
    """filled()/rows_done promise the rows *written so far* (for partial
    results): a row whose embedding has only begun must not be marked.  The
    decoder marks a row as soon as its embedding string starts (the row is
    claimed in _embedding_start), so a response cut inside an embedding
    reports a half-written row as done."""
    m = np.arange(1, 97, dtype=np.int8).reshape(3, 32)
    body = dumps(api_response(m))
    cut = body.index(b64(m[0]).encode()) + 5  # 5 of its 44 base64 characters
    out = np.zeros((3, 32), np.int8)
    dec = StreamDecoder(out)
    dec.feed(body[:cut])
    assert not np.array_equal(out[0], m[0])  # only 3 of its 32 bytes are there
    assert dec.rows_done == 0
    np.testing.assert_array_equal(dec.filled(), [False, False, False])


@pytest.mark.parametrize("layout", ["flat", "ctx"])
def test_marked_rows_are_complete_after_every_prefix(layout):
    """The same property over every prefix: each row marked in filled() holds
    its final value (out starts as the bitwise complement of the answer)."""
    m, doc_rows, obj = small_case("int8", layout)
    body = dumps(obj)
    bad = []
    for k in range(len(body) + 1):
        out = ~m
        dec = StreamDecoder(out, doc_rows)
        dec.feed(body[:k])
        for r in np.flatnonzero(dec.filled()):
            if not np.array_equal(out[r], m[r]):
                bad.append((k, int(r)))
    assert not bad, f"{len(bad)} (prefix length, row) pairs with a half-written row marked, e.g. {bad[:3]}"


@pytest.mark.parametrize("key", ["a_key_longer_than_thirty_two_bytes_", "x" * 33, "\u00e9", "\u043a\u043b\u044e\u0447",
                                 "raw-\u00e9-and-more-than-32-bytes-long!!"])
def test_meta_keeps_every_top_level_key_name(key):
    """finish() returns the other top-level fields under their names.  A key
    longer than 32 bytes (KEY_MAX), or with a non-ASCII character written as
    a \\u escape (json.dumps' default), comes back as '' instead; two such
    fields collide."""
    for ensure_ascii in [True, False]:
        obj = api_response(ROWS)
        obj[key] = {"v": 1}
        body = json.dumps(obj, ensure_ascii=ensure_ascii).encode()
        _, want = ref.decode_response(body, 3, 4, np.int8)
        assert set(want) == {"object", "model", "usage", key}
        _, meta = decode(body, 3, 4)
        assert meta == want, (ensure_ascii, sorted(meta))


def test_base64_error_offset_is_the_offset_in_the_string():
    """'invalid character X at offset N': N is the character's offset in the
    embedding string, however the body was split and whatever escapes come
    before it.  (It once counted characters carried over a feed boundary or
    an escape twice: the `got:` comments show what that gave.)"""
    body = flat(it(0), it(1, emb='"BQY!CA=="'), it(2))
    start = body.index(b"BQY!")
    assert "invalid character '!' at offset 3" in stream_error(body, 3, 4)  # one feed: right
    got = {k: re.search(r"at offset (\d+)", stream_error(body, 3, 4, chunks=[body[:k], body[k:]])).group(1)
           for k in range(start, start + 4)}
    assert got == {k: "3" for k in got}, got  # got: {.., start + 1: '4', start + 2: '5', ..}
    # an escaped character before the bad one shifts it the same way, in one feed
    escaped = flat(it(0), it(1, emb='"BQY\\u0021CA=="'), it(2))
    assert "invalid character '!' at offset 3" in stream_error(escaped, 3, 4)  # got: offset 6


@pytest.mark.parametrize(("emb", "length"), [("BQYHCA", 6), ("BQYHCA=", 7), ("B", 1), ("BQYHC", 5)])
def test_base64_length_error_names_the_length(emb, length):
    """'length N is not a multiple of 4' reports N = the string's length
    (it once added the characters left over a second time: "length 8" for a
    6-character string)."""
    body = flat(it(0), it(1, emb=f'"{emb}"'), it(2))
    msg = stream_error(body, 3, 4)
    assert f"length {length} is not a multiple of 4" in msg, msg


def test_chunk_index_out_of_range_names_its_position():
    """'response byte N' of an out-of-range chunk index (contextualized) is a
    byte of the item that holds it, one-shot or split (it was once the start
    of the feed that held it, byte 0 of a one-shot response)."""
    body = ctx(doc(0), doc(1, it(1, emb=f'"{ENC[2]}"')))
    item_start = body.rindex(b'{"object": "embedding"')
    for chunks in [None, [body[:10], body[10:]]]:
        msg = stream_error(body, 3, 4, np.int8, [2, 1], chunks)
        assert "'index' 1 is out of range (expected 0..0)" in msg
        at = int(re.match(r"response byte (\d+)", msg).group(1))
        assert item_start <= at < len(body), msg


@pytest.mark.parametrize("where", ["item-value", "item-key", "doc-value", "root-key"])
def test_invalid_utf8_is_rejected(where):
    """JSON text is UTF-8 (RFC 8259 §8.1) and json.loads rejects these bodies:
    so does the decoder, in every string (see test_utf8_in_every_string_context)."""
    body = {
        "item-value": flat(it(0), it(1, extra=', "x": "\xff"'), it(2)),
        "item-key": flat(it(0), it(1, extra=', "\xc3": 1'), it(2)),
        "doc-value": ctx(doc(0), doc(1, extra=', "x": "\xc3("')),
        "root-key": flat(after=', "\xff": 1'),
    }[where]
    body = body.replace(b"\xc3\xbf", b"\xff").replace(b"\xc3\x83", b"\xc3")  # the str -> UTF-8 of flat()/ctx()
    doc_rows = [2, 1] if where.startswith("doc") else None
    with pytest.raises(ValueError):
        ref.decode_response(body, 3, 4, np.int8, doc_rows)
    stream_error(body, 3, 4, np.int8, doc_rows)


# ---------------------------------------------------------------- UTF-8 in every string (issue 10 #4)
#
# The oracle is Python's strict bytes.decode("utf-8") then json.loads: every
# string of the body, wherever it sits (and whether the decoder keeps it, as
# top-level fields, or only skips it, as unknown fields of items), must be
# valid UTF-8: no overlong forms, no UTF-8-encoded surrogates (ED A0..ED BF),
# nothing above U+10FFFF, no lead byte without its continuation bytes (an
# ASCII byte, a quote or a backslash where a continuation byte is due), no
# stray continuation byte.  \u escapes are JSON's business, not UTF-8's:
# json.loads accepts lone surrogates written as escapes, and so does the decoder.

UTF8_SEQUENCES = {
    # valid: the ends of each range
    "U+0080": b"\xc2\x80", "U+07FF": b"\xdf\xbf", "U+0800": b"\xe0\xa0\x80", "U+D7FF": b"\xed\x9f\xbf",
    "U+E000": b"\xee\x80\x80", "U+FFFF": b"\xef\xbf\xbf", "U+10000": b"\xf0\x90\x80\x80",
    "U+10FFFF": b"\xf4\x8f\xbf\xbf", "e-acute": "é".encode(), "euro": "€".encode(), "emoji": "😀".encode(),
    "mixed": "aé€😀z".encode(),
    # a lead byte, then ASCII where a continuation is due (the "emb\xc3A\xa9")
    "c3-A-a9": b"\xc3A\xa9", "e2-82-A-ac": b"\xe2\x82A\xac", "e2-A-82-ac": b"\xe2A\x82\xac",
    "f0-9f-98-A-80": b"\xf0\x9f\x98A\x80", "f0-A-9f-98-80": b"\xf0A\x9f\x98\x80", "c3-space-a9": b"\xc3 \xa9",
    "c3-7f-a9": b"\xc3\x7f\xa9",
    # a lead byte cut short by the end of the string, or by an escape
    "c3-end": b"\xc3", "e2-82-end": b"\xe2\x82", "f0-9f-98-end": b"\xf0\x9f\x98",
    "c3-escape": b"\xc3\\n", "c3-escaped-quote": b'\xc3\\"', "e2-u-escape": b"\xe2\\u0082\xac",
    # a lead byte followed by another lead byte
    "c3-c3-a9": b"\xc3\xc3\xa9", "e2-c3-a9": b"\xe2\xc3\xa9",
    # stray continuation bytes
    "80": b"\x80", "bf": b"\xbf", "a-80-b": b"a\x80b", "e-acute-a9": "é".encode() + b"\xa9",
    # overlong forms
    "c0-80": b"\xc0\x80", "c1-bf": b"\xc1\xbf", "e0-80-80": b"\xe0\x80\x80", "e0-9f-bf": b"\xe0\x9f\xbf",
    "f0-80-80-80": b"\xf0\x80\x80\x80", "f0-8f-bf-bf": b"\xf0\x8f\xbf\xbf", "c0-a2-quote": b"\xc0\xa2",
    # surrogates encoded in UTF-8 (CESU-8 / WTF-8)
    "ed-a0-80": b"\xed\xa0\x80", "ed-bf-bf": b"\xed\xbf\xbf", "surrogate-pair": b"\xed\xa0\xbd\xed\xb8\x80",
    # above U+10FFFF, and bytes that never occur
    "f4-90-80-80": b"\xf4\x90\x80\x80", "f5-80-80-80": b"\xf5\x80\x80\x80", "f7-bf-bf-bf": b"\xf7\xbf\xbf\xbf",
    "f8": b"\xf8\x88\x80\x80\x80", "fe": b"\xfe", "ff": b"\xff",
    # \u escapes: surrogates alone or paired, as json.loads has them
    "esc-lone-high": rb"\ud800", "esc-lone-low": rb"\udc00", "esc-pair": rb"\ud83d\ude00",
    "esc-high-then-ascii": rb"\ud83dx", "esc-reversed-pair": rb"\ude00\ud83d", "esc-nul": rb"\u0000",
    "esc-then-utf8": rb"\u00e9" + "é".encode(),
}

# (a string of the body that holds {s}, doc_rows)
UTF8_CONTEXTS = {
    "root-key": (flat(after=', "k{s}": 1, "model": "m"'), None),
    "root-value": (flat(after=', "model": "m{s}"'), None),
    "root-nested": (flat(after=', "usage": {"a": [1, {"b": "x{s}y"}]}'), None),
    "root-nested-key": (flat(after=', "usage": {"a{s}": 1}'), None),
    "item-key": (flat(it(0), it(1, extra=', "{s}": 1'), it(2)), None),
    "item-key-before-index": (flat(it(0), '{"x{s}": 1, ' + it(1)[1:], it(2)), None),
    "item-value": (flat(it(0), it(1, extra=', "object2": "emb{s}"'), it(2)), None),
    "item-object-value": (flat('{"object": "emb{s}", ' + it(0)[1:], it(1), it(2)), None),
    "item-nested": (flat(it(0), it(1, extra=', "x": {"y": ["{s}", 2]}'), it(2)), None),
    "doc-key": (ctx(doc(0), doc(1, extra=', "k{s}": null')), [2, 1]),
    "doc-value": (ctx(doc(0), doc(1, extra=', "x": "{s}"')), [2, 1]),
    "chunk-value": (ctx(doc(0), doc(1, it(0, emb=f'"{ENC[2]}"', extra=', "x": ["{s}"]'))), [2, 1]),
    # anything but base64 there is an error, whatever the UTF-8
    "embedding": (flat(it(0), it(1, emb='"BQ{s}YHCA=="'), it(2)), None),
}


def utf8_case(context, seq):
    template, doc_rows = UTF8_CONTEXTS[context]
    body = template.replace(b"{s}", UTF8_SEQUENCES[seq])
    return body, doc_rows, body.index(UTF8_SEQUENCES[seq])


def oracle_or_none(body, n, width, dtype=np.int8, doc_rows=None):
    try:
        return ref.decode_response(body, n, width, dtype, doc_rows)
    except ValueError:
        return None


@pytest.mark.parametrize("seq", sorted(UTF8_SEQUENCES))
@pytest.mark.parametrize("context", sorted(UTF8_CONTEXTS))
def test_utf8_in_every_string_context(context, seq):
    """Every string context x every kind of (in)valid UTF-8: the decoder agrees
    with the strict oracle, fed at once, byte by byte, and split at every
    byte around the sequence (a multi-byte sequence across a feed boundary)."""
    body, doc_rows, at = utf8_case(context, seq)
    want = oracle_or_none(body, 3, 4, np.int8, doc_rows)
    if context == "embedding":
        assert want is None
    elif seq.startswith("esc-"):
        assert want is not None  # json.loads takes every \u escape, lone surrogates too
    else:  # the oracle itself: valid UTF-8 exactly when Python's strict decoder says so
        try:
            UTF8_SEQUENCES[seq].decode("utf-8")
        except UnicodeDecodeError:
            assert want is None
        else:
            assert want is not None
    around = range(at - 1, at + len(UTF8_SEQUENCES[seq]) + 2)
    splits = [None, byte_by_byte(body)] + [[body[:k], body[k:]] for k in around]
    for chunks in splits:
        if want is None:
            msg = stream_error(body, 3, 4, np.int8, doc_rows, chunks)
            if context == "embedding":
                assert re.search("invalid base64|decodes to|invalid JSON|not valid UTF-8", msg), msg
            elif not seq.startswith("esc-"):
                assert re.search("not valid UTF-8|invalid JSON", msg), msg
        else:
            assert_same(decode(body, 3, 4, np.int8, doc_rows, chunks), want)


def test_utf8_sequences_cover_both_outcomes():
    """The table above has valid and invalid sequences, and the issue's case."""
    verdicts = {name: oracle_or_none(utf8_case("item-value", name)[0], 3, 4) is not None for name in UTF8_SEQUENCES}
    assert sum(verdicts.values()) >= 15 and len(verdicts) - sum(verdicts.values()) >= 30
    assert not verdicts["c3-A-a9"]
    # the reproducer, verbatim
    with pytest.raises(StreamDecodeError, match="not valid UTF-8"):
        StreamDecoder(np.zeros((1, 3), np.int8)).feed(
            b'{"data":[{"object":"emb\xc3A\xa9","index":0,"embedding":"AQID"}]}')


@pytest.mark.parametrize("seq", ["U+0080", "U+0800", "U+10FFFF", "emoji"])
def test_truncated_inside_a_multibyte_sequence(seq):
    """The body ends (or a feed ends and finish() is called) inside a
    multi-byte sequence: truncated, never accepted; then the rest decodes."""
    body, doc_rows, at = utf8_case("item-value", seq)
    want = ref.decode_response(body, 3, 4)
    for k in range(at + 1, at + len(UTF8_SEQUENCES[seq])):
        dec = StreamDecoder(out := np.zeros((3, 4), np.int8))
        dec.feed(body[:k])
        with pytest.raises(StreamDecodeError, match="truncated"):
            dec.finish()
        dec.feed(body[k:])
        assert_same((out, dec.finish()), want)


# ---------------------------------------------------------------- memory bounds (issue 10 #6)

def test_chunks_waiting_for_their_document_index_are_bounded():
    """Chunks that come before their document's index wait in scratch rows.
    No document of the request has more than max(doc_rows) chunks, so one
    more waiting chunk is an error at once (before: the scratch grew with
    every chunk until the index came, then the duplicate was reported)."""
    waiting = [it(j % 2, emb=f'"{ENC[j % 2]}"') for j in range(20_000)]
    body = ctx('{"data": [' + ", ".join(waiting) + '], "index": 0}', doc(1))
    assert oracle_or_none(body, 3, 4, np.int8, [2, 1]) is None
    third = body.index(b"{", body.index(b"{", body.index(it(1).encode()) + 1))  # the third chunk
    dec = StreamDecoder(np.zeros((3, 4), np.int8), [2, 1])
    dec.feed(body[:third])
    with pytest.raises(StreamDecodeError, match=X("a document has more chunks than the largest document of the "
                                                  "request (2)")):
        dec.feed(body[third:third + 200])
    # two waiting chunks (the most a document of [2, 1] has) are fine, in any order
    good = ctx(f'{{"data": [{it(1)}, {it(0)}], "index": 0}}', doc(1))
    np.testing.assert_array_equal(decode(good, 3, 4, np.int8, [2, 1], byte_by_byte(good))[0], ROWS)


def test_huge_keys_numbers_and_strings_inside_items_are_not_kept():
    """Unknown keys, numbers and strings of items are validated and skipped
    whatever their length (8 MiB each here), in pieces."""
    big = 8 << 20
    body = flat(it(0, extra=f', "{"k" * big}": 1'), it(1, extra=f', "n": -{"9" * big}.{"5" * 1000}e+{"7" * 1000}'),
                it(2, extra=f', "s": "{"é" * (big // 2)}"'))
    out, meta = decode(body, 3, 4, np.int8, None, chunked(body, 1 << 20))
    np.testing.assert_array_equal(out, ROWS)
    assert meta == {"object": "list", "model": "m", "usage": {"total_tokens": 3}}


def test_init_twice_raises():
    """__init__ again would reuse buffers sized for the first `out` (a scratch
    row of 4 bytes then written as 4096: a heap overflow): RuntimeError."""
    dec = StreamDecoder(np.zeros((1, 4), np.int8))
    dec.feed(b'{"data": [{"embedding": "AQIDBA==", ')  # a scratch row waits for its index
    with pytest.raises(RuntimeError, match="create a new decoder"):
        dec.__init__(np.zeros((1, 4096), np.int8))
    dec.feed(b'"index": 0}]}')
    assert dec.finish() == {}


# ---------------------------------------------------------------- one thread at a time (issue 10 #5)

BUSY = "in use by feed\\(\\) in another thread"


def test_concurrent_calls_raise_runtime_error():
    """While one thread is inside feed() (scanning without the GIL), feed(),
    finish(), filled() and __init__ from another raise RuntimeError, and the
    first feed is unaffected.  (Thread A's feed of 16 MB takes long enough
    for the probes; an attempt where A finished before they all ran does not
    count, and is retried with a body twice as long.)"""
    unit = b'{"k\\u00e9": ["\xc3\xa9", -1.5e3, true, null, [0, {}]]}, '
    for attempt in range(3):
        head, tail = flat(it(0, extra=', "x": []'), it(1), it(2)).split(b'"x": [', 1)
        big = head + b'"x": [' + unit * ((16 << 20) // len(unit) * 2 ** attempt) + b"0" + tail
        dec = StreamDecoder(out := np.zeros((3, 4), np.int8))
        started, seen, errors = threading.Event(), [], []

        def feed_big(dec: StreamDecoder, big: bytes, started: threading.Event, errors: list) -> None:
            started.set()
            try:
                dec.feed(big)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        t = threading.Thread(target=feed_big, args=(dec, big, started, errors))
        t.start()
        started.wait()
        while t.is_alive() and not seen:  # until A is inside feed()
            try:
                dec.feed(b"")
            except RuntimeError as e:
                seen.append(str(e))
        probes = [partial(dec.feed, b" "), dec.finish, dec.filled, partial(dec.__init__, np.zeros((3, 4), np.int8))]
        for probe in probes:
            try:
                probe()
            except RuntimeError as e:
                seen.append(str(e))
        inside = t.is_alive()
        t.join()
        assert not errors, errors
        if inside:  # A was inside feed() during all the probes: each one raised
            break
    assert inside, "thread A's feed() never outlasted the probes"
    assert len(seen) == 5 and all(re.search(BUSY, m) for m in seen), seen
    assert dec.finish() == {"object": "list", "model": "m", "usage": {"total_tokens": 3}}
    np.testing.assert_array_equal(out, ROWS)


def rotated_units(element: bytes, r: int, copies: int):
    """(head, unit, tail) with head + unit * k + tail == (element + b",") * k + element for every k:
    identical feeds that each start and end at byte r of an element (inside a token)."""
    e = element + b","
    return element[:r], (e[r:] + e[:r]) * copies, element[r:]


def test_threads_feeding_one_decoder_never_corrupt_it():
    """Four threads race to feed one decoder.  Every feed is the same bytes
    (a run of elements of an unknown array, then a run of base64 quads, each
    feed starting and ending inside a token: in a UTF-8 sequence, an escape,
    a number, a base64 quad), so any order of the feeds that got in is the
    same body.  Each call either returns or raises RuntimeError (then it is
    retried); the result equals the oracle's, never a wrong row."""
    element = '{"k\\u00e9y": ["é😀\\n", -1.5e3, true, null, {"a": []}]}'.encode()
    r = element.index("😀".encode()) + 2  # inside the emoji's four bytes
    head1, unit1, tail1 = rotated_units(element, r, 64)
    quad = b64(np.array([0x80, 0x7F, 0x00], np.uint8)).encode()  # 'gH8A'
    k2, copies2 = 100, 256  # 100 feeds of 256 rotated quads: 'H8Ag' * 256
    width = 3 * (k2 * copies2 + 1)
    rows = [b64(np.full(width, v, np.uint8)) for v in (1, 2)]
    # bytes: fed by this thread; (unit, count): count feeds of unit raced by four threads
    body_parts = [b'{"object": "list", "data": [{"index": 0, "x": [' + head1, (unit1, 200),
                  tail1 + b'], "embedding": "' + rows[0].encode() + b'"}, {"embedding": "' + quad[:1],
                  ((quad[1:] + quad[:1]) * copies2, k2), quad[1:] + b'", "index": 1}, {"index": 2, "embedding": "'
                  + rows[1].encode() + b'"}], "model": "m"}']
    body = b"".join(p if isinstance(p, bytes) else p[0] * p[1] for p in body_parts)
    want = ref.decode_response(body, 3, width, np.uint8)
    dec = StreamDecoder(out := np.zeros((3, width), np.uint8))
    unexpected = []
    lock = threading.Lock()

    def worker(tokens, unit):
        while True:
            with lock:
                if not tokens:
                    return
                tokens.pop()
            try:
                dec.feed(unit)
            except RuntimeError:
                with lock:
                    tokens.append(1)  # not fed: someone must feed it again
            except BaseException as e:  # noqa: BLE001 - reported below
                unexpected.append(e)
                return

    for part in body_parts:
        if isinstance(part, bytes):
            dec.feed(part)
            continue
        unit, count = part
        tokens = [1] * count
        threads = [threading.Thread(target=worker, args=(tokens, unit)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not unexpected, unexpected
    assert_same((out, dec.finish()), want)
