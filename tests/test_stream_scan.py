"""The streaming decoder's fast paths outside base64 (codec/_stream.pyx, codec/simd/json/).

- The byte scanners (simd/json: '"', '\\\\', controls and non-ASCII in strings;
  '"' and '\\\\' in embeddings), each vector tier against its serial twin at
  every length, every position of every kind of stop byte and every
  alignment, and the tier feed() picks for each kernel table.
- The run of whole items in the service's exact layout (_items_run): however
  a body is split, and whatever is wrong with which item of a run, the outcome
  (the matrix, finish()'s fields, or the error message, the rows marked filled
  and their bytes) is the one of the same pieces with the runs turned off
  (_set_fast_paths(False): the scan as before them), and for valid bodies the
  one of the bytewise state machine (a body fed one byte at a time: no fast
  path engages on one byte).
- The same for embeddings cut by a chunk boundary (decoded without searching
  for their quote, _embedding_run), cut at every position.  (One error message
  depends on where the body is split, runs or not: a base64 string too long is
  reported as too long or as bad padding depending on how its last quads
  arrive.  An out-of-range `index` is reported at the byte after its digits
  on every path: one rule, _index_in_range, or _big_index for one above
  10**15 + 9, which no fast path reads.)
"""

import base64
import json
import platform
from contextlib import contextmanager

import numpy as np
import pytest

import pplx_codec
from pplx_codec import _stream
from pplx_codec._stream import StreamDecodeError, StreamDecoder

TIERS = list(_stream._JSON_TIERS)
STOPS = {"special": [ord('"'), ord("\\"), 0x00, 0x01, 0x0A, 0x1F, 0x80, 0xBF, 0xC3, 0xFF],
         "quote": [ord('"'), ord("\\")]}
# plain in both scanners (and the bytes next to the stop classes: ' ', '!', '#', '[', ']', 0x7F)
PLAIN = b" !#AZaz09+/=[]\x7f{}:,u"


def first_stop(data: bytes, what: str) -> int:
    stop = (lambda c: c in b'"\\' or c < 0x20 or c >= 0x80) if what == "special" else (lambda c: c in b'"\\')
    return next((i for i, c in enumerate(data) if stop(c)), len(data))


# ---------------------------------------------------------------- the byte scanners


@pytest.mark.parametrize("what", ["special", "quote"])
@pytest.mark.parametrize("tier", TIERS)
def test_scanner_matches_its_serial_twin(tier, what):
    if _stream._json_scan(b"", what, tier) is None:
        pytest.skip(f"no {tier} scanner in this build or on this CPU")
    buf = bytearray(200)
    for n in range(0, 100):
        plain = bytes(PLAIN[(i + n) % len(PLAIN)] for i in range(n))
        assert first_stop(plain, what) == n
        for off in (0, 1, 7, 31):  # alignments: the buffer is a slice of a larger one
            buf[off:off + n] = plain
            view = memoryview(buf)[off:off + n]
            assert _stream._json_scan(view, what, tier) == n
            for k in range(n):
                for c in STOPS[what]:
                    buf[off + k] = c  # the first stop is at k
                    assert _stream._json_scan(view, what, tier) == k == _stream._json_scan(view, what, "serial")
                    if k + 1 < n:  # a second stop further on: the first one wins
                        k2 = k + 1 + (k * 7 + c) % (n - k - 1)
                        buf[off + k2] = STOPS[what][-1]
                        assert _stream._json_scan(view, what, tier) == k
                        buf[off + k2] = plain[k2]
                    buf[off + k] = plain[k]


@pytest.mark.parametrize("what", ["special", "quote"])
@pytest.mark.parametrize("tier", TIERS)
def test_scanner_every_byte_value_at_every_position(tier, what):
    if _stream._json_scan(b"", what, tier) is None:
        pytest.skip(f"no {tier} scanner in this build or on this CPU")
    for v in range(256):
        for n in (15, 16, 17, 31, 32, 33, 64, 65):
            for k in range(n):
                data = bytearray(b"A" * n)
                data[k] = v
                assert _stream._json_scan(bytes(data), what, tier) == first_stop(bytes(data), what)


def test_scanner_tier_follows_the_kernel_table(isa):
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    arm = platform.machine().lower() in ("aarch64", "arm64")
    want = ("avx2" if isa in ("avx2", "avx512", "amx") else "sse2") if x86 else "neon" if arm else "serial"
    assert _stream._json_tier() == want


# ---------------------------------------------------------------- runs of items: same outcome as bytewise

W = 16  # bytes per row: 24 base64 chars, '=='-padded ... and 7 (12 chars, '=') and 3 (4 chars, none)


def rows(n, width, seed=0):
    return np.random.default_rng(seed).integers(-128, 128, (n, width), dtype=np.int8)


def b64(row) -> str:
    return base64.b64encode(row.tobytes()).decode()


def item(i, emb, spaced=False):
    if spaced:
        return f'{{"object": "embedding", "index": {i}, "embedding": "{emb}"}}'
    return f'{{"object":"embedding","index":{i},"embedding":"{emb}"}}'


def service_body(m, order=None, spaced=False, items=None) -> bytes:
    """The body exactly as the reference server writes it (compact), or json.dumps's default spacing."""
    order = range(len(m)) if order is None else order
    items = [item(i, b64(m[i]), spaced) for i in order] if items is None else items
    usage = '{"prompt_tokens":1,"total_tokens":1,"cost":{"input_cost":0.0,"total_cost":0.0,"currency":"USD"}}'
    if spaced:
        return ('{"object": "list", "data": [' + ", ".join(items) + '], "model": "m", "usage": '
                + json.dumps(json.loads(usage)) + "}").encode()
    return ('{"object":"list","data":[' + ",".join(items) + '],"model":"m","usage":' + usage + "}").encode()


def outcome(body, n, width, chunks, doc_rows=None):
    """What decoding `body` fed as `chunks` gives: ("ok", matrix bytes, fields) or
    ("error", message, filled mask, rows_done, bytes of the filled rows)."""
    out = np.zeros((n, width), np.int8)
    dec = StreamDecoder(out, doc_rows)
    try:
        for c in chunks:
            dec.feed(c)
        meta = dec.finish()
    except StreamDecodeError as e:
        filled = dec.filled()
        return ("error", str(e), filled.tobytes(), dec.rows_done, out[filled].tobytes())
    return ("ok", out.tobytes(), meta)


def bytewise(body, n, width, doc_rows=None):
    return outcome(body, n, width, [body[i:i + 1] for i in range(len(body))], doc_rows)


@contextmanager
def fast_paths(on):
    was = _stream._set_fast_paths(on)
    try:
        yield
    finally:
        _stream._set_fast_paths(was)


def general(body, n, width, chunks, doc_rows=None):
    """The outcome of the same pieces without runs of items."""
    with fast_paths(False):
        return outcome(body, n, width, chunks, doc_rows)


def run_items(body, n, width, chunks, doc_rows=None) -> int:
    dec = StreamDecoder(np.empty((n, width), np.int8), doc_rows)
    for c in chunks:
        dec.feed(c)
    dec.finish()
    return dec._run_items()


def test_runs_take_the_service_layout():
    """Every item goes through the run when the body is fed whole (compact or
    spaced); in pieces, all but the items a piece boundary cuts; none when off."""
    n = 40
    m = rows(n, W)
    for spaced in (False, True):
        body = service_body(m, list(reversed(range(n))), spaced)
        assert run_items(body, n, W, [body]) == n
        pieces = [body[i:i + 1000] for i in range(0, len(body), 1000)]
        assert n - (len(pieces) - 1) <= run_items(body, n, W, pieces) <= n  # a boundary cuts one item at most
        with fast_paths(False):
            assert run_items(body, n, W, [body]) == 0
    assert run_items(ctx_body(m, [10, 30]), n, W, [ctx_body(m, [10, 30])], [10, 30]) == n


def test_item_runs_switch():
    assert _stream._set_fast_paths(True) is True
    with fast_paths(False):
        assert _stream._set_fast_paths(False) is False
    assert _stream._set_fast_paths(True) is True


def splits(body, every=1):
    """The body whole, in two at every `every`-th position, in 64 KiB and in small pieces."""
    yield [body]
    for k in range(0, len(body) + 1, every):
        yield [body[:k], body[k:]]
    for size in (7, 33, 100, 65536):
        yield [body[i:i + size] for i in range(0, len(body), size)]


@pytest.mark.parametrize("spaced", [False, True], ids=["compact", "spaced"])
@pytest.mark.parametrize("width", [1, 3, 7, W, 128])
def test_service_bodies_decode_however_split(width, spaced, isa):
    n = 11
    m = rows(n, width)
    for order in (range(n), [3, 0, 10, 1, 2, 9, 4, 5, 6, 7, 8]):
        body = service_body(m, order, spaced)
        want = bytewise(body, n, width)
        assert want[0] == "ok" and want[1] == m.tobytes()
        for chunks in splits(body):
            assert outcome(body, n, width, chunks) == want
            assert general(body, n, width, chunks) == want


def mutations(m, k):
    """(name, list of item strings) with item k of a compact run changed one way."""
    n, width = m.shape
    good = [item(i, b64(m[i])) for i in range(n)]
    e = b64(m[k])

    def at(s):
        items = list(good)
        items[k] = s
        return items

    yield "index out of range", at(item(n, e))
    yield "index far out of range", at(item(10 ** 14 + 7, e))
    yield "16-digit index", at(item(10 ** 15 + 1, e))
    yield "huge index", at(item(10 ** 30, e))
    yield "index 2**64", at(item(2 ** 64, e))  # named with its digits, never as 2**63 - 1 (issue 22)
    yield "index of 65 digits", at(item(int("9" * 65), e))  # named cut, with its length
    yield "duplicate index", at(item((k + 1) % n, e))
    yield "leading zero", at(item(k, e).replace(f'"index":{k},', f'"index":0{k},'))
    yield "negative", at(item(k, e).replace(f'"index":{k},', f'"index":-{k},'))
    yield "float index", at(item(k, e).replace(f'"index":{k},', f'"index":{k}.0,'))
    yield "exponent index", at(item(k, e).replace(f'"index":{k},', f'"index":{k}e0,'))
    yield "string index", at(item(k, e).replace(f'"index":{k},', f'"index":"{k}",'))
    yield "no digits", at(item(k, e).replace(f'"index":{k},', '"index":,'))
    yield "short embedding", at(item(k, e[:-4]))
    yield "long embedding", at(item(k, e + "AAAA"))
    yield "one char short", at(item(k, e[:-1]))
    yield "bad char first", at(item(k, "!" + e[1:]))
    yield "bad char last before padding", at(item(k, e[:-3] + "!" + e[-2:]))
    yield "control char", at(item(k, e[:2] + "\x01" + e[3:]))
    yield "non-ASCII", at(item(k, e[:2] + "\u00e9" + e[4:]))
    yield "quote inside", at(item(k, e[:2] + '\\"' + e[4:]))
    yield "escaped slash (valid)", at(item(k, e.replace("/", "\\/")) if "/" in e else item(k, e))
    yield "unicode escape (valid)", at(item(k, "\\u00" + format(ord(e[0]), "02x") + e[1:]))
    yield "padding moved", at(item(k, e.rstrip("=") + "=" * (len(e) - len(e.rstrip("=")) + 1)))
    yield "non-canonical", at(item(k, e[:-3] + ("B" if e[-3] == "A" else "A") + e[-2:]) if e.endswith("==") else
                              item(k, e))
    yield "no padding", at(item(k, e.rstrip("=")))
    yield "missing brace", at(item(k, e)[:-1])
    yield "extra key after", at(item(k, e)[:-1] + ',"x":1}')
    yield "extra key before", at(item(k, e).replace('{"object"', '{"x":[1,{"index":2}],"object"'))
    yield "keys reordered (valid)", at(f'{{"index":{k},"object":"embedding","embedding":"{e}"}}')
    yield "index after embedding (valid)", at(f'{{"object":"embedding","embedding":"{e}","index":{k}}}')
    yield "duplicate index key", at(item(k, e)[:-1] + f',"index":{k}}}')
    yield "duplicate embedding key", at(item(k, e)[:-1] + f',"embedding":"{e}"}}')
    yield "no embedding", at(f'{{"object":"embedding","index":{k}}}')
    yield "no index", at(f'{{"object":"embedding","embedding":"{e}"}}')
    yield "spaced item (valid)", at(item(k, e, spaced=True))
    yield "space before brace (valid)", at(item(k, e)[:-1] + " }")
    yield "newline after comma (valid)", at("\n" + item(k, e))
    yield "object other (valid)", at(item(k, e).replace('"embedding","index"', '"embeddings","index"'))
    yield "embedding a number", at(item(k, e).replace(f'"embedding":"{e}"', '"embedding":5'))
    yield "embedding null", at(item(k, e).replace(f'"embedding":"{e}"', '"embedding":null'))
    yield "item an array", at(f'[{k}]')
    yield "item a number", at(f'{k}')
    yield "trailing comma", at(item(k, e) + ",")
    yield "missing comma", good[:k] + [good[k] + good[(k + 1) % n]] + good[k + 2:] if k + 1 < n else good


@pytest.mark.parametrize("k", [0, 1, 10])  # the first item of a run, one after a committed one, the last
@pytest.mark.parametrize("width", [1, 7, W])
def test_any_item_of_a_run_goes_wrong_as_bytewise(width, k):
    """Item k of a run of 11 service items is changed (valid or not): every
    split of the body gives what the same pieces give without runs: the same
    error message (same byte, item, index), the same rows filled; valid
    bodies decode as bytewise."""
    n = 11
    m = rows(n, width, seed=k)
    seen = set()
    for name, items in mutations(m, k):
        body = service_body(m, items=items)
        if body in seen:
            continue
        seen.add(body)
        want = bytewise(body, n, width)
        for chunks in splits(body, every=2):
            got = outcome(body, n, width, chunks)
            assert got == general(body, n, width, chunks), (name, [len(c) for c in chunks])
            if want[0] == "ok" or name in SAME_ERROR_HOWEVER_SPLIT:
                assert got == want, (name, [len(c) for c in chunks])


# Mutations whose error is the bytewise one at every split, runs or not (the
# message, the rows filled): an index out of range is named at the byte after
# its digits, whatever its size.
SAME_ERROR_HOWEVER_SPLIT = {"index out of range", "index far out of range", "16-digit index", "huge index",
                            "index 2**64", "index of 65 digits"}


def test_top_level_errors_after_a_run_name_the_last_item():
    """Errors after the data array that name an item (a second "data" key)
    see the item count and index the run left behind."""
    n = 6
    m = rows(n, W)
    body = service_body(m).replace(b'"model":"m"', b'"data":[]')
    want = bytewise(body, n, W)
    assert want[0] == "error" and "(data item 5, index 5)" in want[1]
    for chunks in splits(body):
        assert outcome(body, n, W, chunks) == want


def ctx_body(m, doc_rows, docs_order=None, items_of=None) -> bytes:
    starts = np.concatenate([[0], np.cumsum(doc_rows)])
    docs = []
    for d in range(len(doc_rows)) if docs_order is None else docs_order:
        items = [item(j, b64(m[starts[d] + j])) for j in range(doc_rows[d])]
        if items_of:
            items = items_of(d, items)
        docs.append(f'{{"object":"list","index":{d},"data":[' + ",".join(items) + "]}")
    return ('{"object":"list","data":[' + ",".join(docs) + '],"model":"m","usage":{"total_tokens":1}}').encode()


def test_contextualized_runs_as_bytewise():
    doc_rows = [3, 1, 5, 2]
    n = sum(doc_rows)
    m = rows(n, 7)
    bodies = [ctx_body(m, doc_rows), ctx_body(m, doc_rows, [2, 0, 3, 1])]
    # a chunk index out of its document's range, a duplicate chunk, a chunk before the document's index
    bodies.append(ctx_body(m, doc_rows, items_of=lambda d, it: it if d != 2 else
                           it[:3] + [it[3].replace('"index":3', '"index":5')] + it[4:]))
    bodies.append(ctx_body(m, doc_rows, items_of=lambda d, it: it if d != 2 else it[:3] + [it[1]] + it[4:]))
    bodies.append(ctx_body(m, doc_rows).replace(b'{"object":"list","index":2,"data":[',
                                                b'{"object":"list","data":[', 1).replace(
        b'"}]},{"object":"list","index":3', b'"}],"index":2},{"object":"list","index":3', 1))
    for body in bodies:
        want = bytewise(body, n, 7, doc_rows)
        for chunks in splits(body):
            got = outcome(body, n, 7, chunks, doc_rows)
            assert got == general(body, n, 7, chunks, doc_rows)
            if want[0] == "ok":
                assert got == want


def test_contextualized_index_of_2_64_is_named_however_split():
    """A chunk index of 2**64, its document's index read or not yet (issue
    22: it was named 9223372036854775807): the same error at every split,
    runs or not, naming its digits."""
    doc_rows = [3, 1, 5, 2]
    n = sum(doc_rows)
    m = rows(n, 7)
    big = ctx_body(m, doc_rows, items_of=lambda d, it: it if d != 2 else
                   it[:3] + [it[3].replace('"index":3', f'"index":{2 ** 64}')] + it[4:])
    late = big.replace(b'{"object":"list","index":2,"data":[', b'{"object":"list","data":[', 1).replace(
        b'"}]},{"object":"list","index":3', b'"}],"index":2},{"object":"list","index":3', 1)
    for body, where, expected in [(big, "(data item 7, document 2)", "expected 0..4"),
                                  (late, "(data item 7)", "expected 0..4, the chunks of the largest document")]:
        want = bytewise(body, n, 7, doc_rows)
        at = body.index(b"18446744073709551616") + 20  # the byte after its digits
        assert want[1] == f"response byte {at} {where}: 'index' 18446744073709551616 is out of range ({expected})"
        for chunks in splits(body):
            assert outcome(body, n, 7, chunks, doc_rows) == want == general(body, n, 7, chunks, doc_rows)


def test_run_with_rows_from_feed_kinds_and_tiers(isa):
    """The run under each kernel tier, fed bytes, bytearray, memoryview, numpy."""
    n = 40
    m = rows(n, 128, seed=3)
    body = service_body(m, order=list(reversed(range(n))))
    for kind in (bytes, bytearray, memoryview, lambda b: np.frombuffer(b, np.uint8)):
        out = np.empty((n, 128), np.int8)
        dec = StreamDecoder(out)
        for i in range(0, len(body), 4096):
            dec.feed(kind(body[i:i + 4096]))
        meta = dec.finish()
        np.testing.assert_array_equal(out, m)
        assert meta["model"] == "m" and meta["usage"]["cost"]["currency"] == "USD"


def test_finish_parses_fields_as_json_loads():
    """finish()'s fields: json.loads's scanner called directly, json.loads's values and errors."""
    m = rows(2, 3)
    fields = ['"model":"m\\u00e9"', '"usage":{"a":[1,2.5,-0.0,1e400,null,true,"x"]}', '"\\u006bey":"v"',
              '"n":12345678901234567890', '"s":"\\ud800"']
    body = ('{"object":"list","data":[' + ",".join(item(i, b64(m[i])) for i in range(2)) + "],"
            + ",".join(fields) + "}").encode()
    got = outcome(body, 2, 3, [body])
    want = {"object": "list", "model": "m\u00e9", "usage": {"a": [1, 2.5, -0.0, float("inf"), None, True, "x"]},
            "key": "v", "n": 12345678901234567890, "s": "\ud800"}
    assert got[0] == "ok" and got[2] == want
    assert got == bytewise(body, 2, 3)


def test_rows_done_counts_the_run():
    n = 9
    m = rows(n, 7)
    body = service_body(m)
    out = np.empty((n, 7), np.int8)
    dec = StreamDecoder(out)
    cut = body.index(b'{"object":"embedding","index":5')
    dec.feed(body[:cut])
    assert dec.rows_done == 5 and dec.filled().tolist() == [True] * 5 + [False] * 4
    dec.feed(body[cut:])
    dec.finish()
    assert dec.rows_done == n
    assert pplx_codec.StreamDecoder is StreamDecoder


EMBEDDING_MUTATIONS = [
    ("valid", lambda e: e),
    ("bad char first", lambda e: "!" + e[1:]),
    ("bad char middle", lambda e: e[:9] + "!" + e[10:]),
    ("bad char last", lambda e: e[:-1] + "!"),
    ("quote middle", lambda e: e[:9] + '\\"' + e[10:]),
    ("escaped slash", lambda e: e[:9] + "\\/" + e[10:]),
    ("unicode escape", lambda e: e[:9] + "\\u0041" + e[10:]),
    ("control char", lambda e: e[:9] + "\x01" + e[10:]),
    ("non-ASCII", lambda e: e[:9] + "\u00e9" + e[10:]),
    ("padding early", lambda e: e[:8] + "====" + e[12:]),
    ("padding in a middle quad", lambda e: e[:10] + "=" + e[11:]),
    ("a padded quad in the middle", lambda e: e[:8] + "AA==" + e[12:]),
    ("a one-pad quad in the middle", lambda e: e[:4] + "AAA=" + e[8:]),
    ("no padding", lambda e: e.rstrip("=")),
    ("one char short", lambda e: e[:-1]),
    ("one quad short", lambda e: e[:-4]),
    ("one quad long", lambda e: "AAAA" + e),
    ("one char long", lambda e: "A" + e),
    ("two quads long", lambda e: e + "AAAA"),
    ("ends early", lambda e: e[:13]),
    ("non-canonical", lambda e: e[:-3] + chr(ord(e[-3]) ^ 1) + e[-2:]),
]


@pytest.mark.parametrize("width", [7, W, 20])
@pytest.mark.parametrize("name", [m[0] for m in EMBEDDING_MUTATIONS])
def test_embedding_cut_anywhere_as_before(width, name):
    """The middle item's embedding changed one way, the body cut once or twice
    anywhere around it (the string begun in one chunk and ended in a later
    one, with 0..3 chars carried): the same outcome as without the fast paths."""
    mutate = dict(EMBEDDING_MUTATIONS)[name]
    n = 3
    m = rows(n, width, seed=width)
    items = [item(i, b64(m[i])) for i in range(n)]
    items[1] = item(1, mutate(b64(m[1])))
    body = service_body(m, items=items)
    a = body.index(b'"embedding":"', body.index(b'"index":1,')) + len(b'"embedding":"')
    b = body.index(b'"', a + 1 if name != "quote middle" else body.index(b'\\"', a) + 2)
    cuts = range(max(a - 2, 0), min(b + 3, len(body)))
    for c1 in cuts:
        for c2 in [None, *[c for c in cuts if c > c1]]:
            chunks = [body[:c1], body[c1:]] if c2 is None else [body[:c1], body[c1:c2], body[c2:]]
            assert outcome(body, n, width, chunks) == general(body, n, width, chunks), (c1, c2)
    if name == "valid":
        assert outcome(body, n, width, [body[:a + 5], body[a + 5:]])[1] == m.tobytes()
