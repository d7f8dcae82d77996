"""Bounded fuzz of StreamDecoder (issue 10, "Must show"): mutated responses at random splits.

Real, valid responses (int8 and binary; flat and contextualized; several
items in any order; json.dumps styles, or the JSON-variety writer of
test_stream with whitespace everywhere, escapes and unknown fields at every
level) are damaged by byte flips, insertions of bytes and JSON tokens,
deletions, truncations and duplications of slices (random or aligned on
tokens, which repeats items, keys and rows), then fed whole, at random split
points and byte by byte.

The oracle is reference.decode_response: strict bytes.decode("utf-8"), then
json.loads, then the rules of the API checked on the tree.  For every
mutated body:

- oracle accepts  -> the decoder accepts and gives the same rows and the
  same top-level fields;
- oracle rejects  -> the decoder raises StreamDecodeError;
- the decoder raises nothing else (anything else fails the test, and a crash
  kills it); every split gives the same outcome.

Where json.loads is looser than JSON or than the API, the oracle applies a
rule, never a skip: NaN/Infinity are rejected (parse_constant), a repeated
`data`/`index`/`embedding` key or document is rejected, an `index` must be a
non-negative JSON integer (not -0, 1.0, true), JSON nested deeper than 64
containers is rejected (see reference.py).  Two limits of the decoder are
not modelled by the oracle, so the bodies stay below them, and the test
asserts that they do: the 1 MiB cap on the top-level fields other than
`data`, and Python's 4300-digit limit on int() (json.loads applies it to
every number; the decoder only parses the top-level fields, and skips
numbers inside items): a body under 4300 bytes holds no such number.

Budget: FUZZ_EXAMPLES examples of 1 + SEEDED_MUTATIONS mutated bodies per
kind, each decoded three ways: 5 to 10 s per test on one core.
"""

import random
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference as ref
from pplx_codec._stream import StreamDecodeError, StreamDecoder
from test_stream import DTYPES, STYLES, api_response, dumps, matrix, random_doc_rows, varied_response, write

FUZZ_EXAMPLES = 600
SEEDED_MUTATIONS = 3
MAX_BODY = 4300  # Python's int() digit limit (sys.get_int_max_str_digits() default): see the docstring

# JSON tokens and byte sequences that matter to the scanner: structure, the
# keys and values it interprets, numbers and literals at the edge of JSON,
# escapes (a lone surrogate is valid JSON), valid and invalid UTF-8, a BOM.
INSERTS = [
    b" ", b"\n", b"\t", b"\r", b",", b":", b'"', b"\\", b"{", b"}", b"[", b"]", b"{}", b"[]", b'""',
    b"0", b"7", b"-0", b"-1", b"1.0", b"1e0", b"1e400", b"01", b"NaN", b"Infinity", b"-Infinity",
    b"true", b"false", b"null", b"nul",
    b'"index": 0, ', b'"index": 1, ', b'"index": 99, ', b'"embedding": "AAAA", ', b'"embedding": "", ',
    b'"data": [], ', b'"x": {"y": [1, "z", {"index": 0}]}, ', b'"\\u0069ndex": 0, ', b'"model": "m", ',
    b"\\u00e9", b"\\ud800", b"\\udc00", b"\\/", b"\\u0041", b"\\n", b"\\x",
    b"\xc3\xa9", b"\xf0\x9f\x98\x80", b"\xc3", b"\xa9", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf",
    b"\xe0\x80\x80", b"\xff", b"\x00", b"\x1f", b"\x7f", "\ufeff".encode(),
    b"=", b"==", b"A", b"Q", b"+", b"/", b"AAAA", b"////",
]
SET_BYTES = b'"\\{}[],:0123456789-+.eE \n=AQZagz/+tfnu\x00\x1f\x7f\x80\xbf\xc2\xc3\xed\xf0\xf4\xff'
# where a slice may start and end when it is aligned on tokens
STARTS = frozenset(b'{[",')
NON_ASCII = frozenset(range(0x80, 0x100))
BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
ENDS = frozenset(b'}]",')


# ---------------------------------------------------------------- sources of choices

class Draws:
    """Choices from hypothesis (shrinkable)."""

    def __init__(self, data):
        self.data = data

    def integer(self, lo, hi):
        return self.data.draw(st.integers(lo, hi))

    def choice(self, seq):
        return self.data.draw(st.sampled_from(seq))


class Seeded:
    """The same choices from random.Random (for the variety check)."""

    def __init__(self, seed):
        self.r = random.Random(seed)

    def integer(self, lo, hi):
        return self.r.randint(lo, hi)

    def choice(self, seq):
        return self.r.choice(seq)


# ---------------------------------------------------------------- bodies

def base_case(src, kind=None):
    """(body, n, width, dtype, doc_rows) of a valid response (int8 or binary: `kind`, or drawn)."""
    rng = np.random.default_rng(src.integer(0, 2**32 - 1))
    dtype = DTYPES[kind or src.choice(sorted(DTYPES))]
    n = src.integer(1, 4)
    width = src.choice([1, 2, 3, 4, 5, 8, 16, 17, 33])
    m = matrix(rng, n, width, dtype)
    doc_rows = random_doc_rows(rng, n) if src.choice([False, True]) else None
    style = src.choice(sorted(STYLES) + ["varied"])
    if style == "varied":
        r = random.Random(src.integer(0, 2**32 - 1))
        body = write(varied_response(m, doc_rows, r), r, p_ws=src.choice([0.0, 0.3, 1.0])).encode()
    else:
        obj = api_response(m, doc_rows, order=rng.permutation(n), docs_order=rng.permutation(len(doc_rows or [0])))
        if doc_rows is not None:
            for d in obj["data"]:
                rng.shuffle(d["data"])
        body = dumps(obj, style)
    return body, n, width, dtype, doc_rows


def aligned(body, src, which):
    at = [i for i, c in enumerate(body) if c in which]
    return src.choice(at) if at else src.integer(0, len(body))


def mutate(body: bytes, src) -> bytes:
    """1 to 4 mutations of body."""
    for _ in range(src.integer(1, 4)):
        n = len(body)
        kind = src.choice(["flip", "set", "insert", "insert-random", "delete", "truncate", "duplicate",
                           "duplicate-aligned", "whitespace", "base64-char", "into-utf8", "utf8-byte"])
        at = src.integer(0, max(n - 1, 0))
        if kind == "flip" and n:
            body = body[:at] + bytes([body[at] ^ src.integer(1, 255)]) + body[at + 1:]
        elif kind == "set" and n:
            body = body[:at] + bytes([src.choice(SET_BYTES)]) + body[at + 1:]
        elif kind == "insert":
            body = body[:at] + src.choice(INSERTS) + body[at:]
        elif kind == "insert-random":
            body = body[:at] + bytes(src.integer(0, 255) for _ in range(src.integer(1, 4))) + body[at:]
        elif kind == "delete":
            body = body[:at] + body[at + src.integer(1, 8):]
        elif kind == "whitespace":  # after a structural byte: still valid JSON
            to = aligned(body, src, b"{[,:") + 1
            body = body[:to] + src.choice([b" ", b"\n", b"\t", b"\r\n", b"   "]) + body[to:]
        elif kind == "base64-char":  # another base64 character for one: other rows, or a bad length/padding
            to = aligned(body, src, BASE64)
            body = body[:to] + bytes([src.choice(BASE64)]) + body[to + 1:]
        elif kind == "into-utf8":  # a byte before a non-ASCII one: inside a multi-byte sequence, or after it
            to = aligned(body, src, NON_ASCII)
            body = body[:to] + bytes([src.choice(b'A "\\\x7f\x80\xc3')]) + body[to:]
        elif kind == "utf8-byte":  # one byte of a multi-byte sequence dropped or replaced
            to = aligned(body, src, NON_ASCII)
            new = bytes([src.choice(b"\x80\xa0\xbf\xc0\xc3\xed\xf4\xf5")])[:src.integer(0, 1)]
            body = body[:to] + new + body[to + 1:]
        elif kind == "truncate":
            body = body[:at]
        elif kind == "duplicate":
            a = src.integer(0, n)
            piece = body[a:a + src.integer(1, 120)]
            body = body[:at] + piece + body[at:]
        else:  # a slice from a token start to a token end, repeated at a token start: items, keys, rows
            a = aligned(body, src, STARTS)
            b = aligned(body[a:], src, ENDS) + a + 1
            piece = body[a:b][:400]
            to = aligned(body, src, STARTS)
            body = body[:to] + piece + body[to:]
    return body


# ---------------------------------------------------------------- the comparison

def oracle(body, n, width, dtype, doc_rows):
    try:
        return ref.decode_response(body, n, width, dtype, doc_rows)
    except ValueError:  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
        return None


def decoder(body, n, width, dtype, doc_rows, chunks):
    """(out, meta), or the StreamDecodeError.  Any other exception propagates."""
    out = np.zeros((n, width), dtype)
    dec = StreamDecoder(out, doc_rows)
    try:
        for k, chunk in enumerate(chunks):
            dec.feed(memoryview(chunk) if k % 2 else chunk)
        return out, dec.finish()
    except StreamDecodeError as e:
        return e


def random_splits(body, src):
    cuts = sorted(src.integer(0, len(body)) for _ in range(src.integer(1, 12)))
    return [body[a:b] for a, b in pairwise([0, *cuts, len(body)])]


def check(body, n, width, dtype, doc_rows, src):
    assert len(body) < MAX_BODY, len(body)  # the oracle's limits: see the module docstring
    want = oracle(body, n, width, dtype, doc_rows)
    for how, chunks in [("one feed", [body]), ("random splits", random_splits(body, src)),
                        ("byte by byte", [body[i:i + 1] for i in range(len(body))])]:
        got = decoder(body, n, width, dtype, doc_rows, chunks)
        if want is None:
            assert isinstance(got, StreamDecodeError), f"{how}: the decoder accepted what the oracle rejects: {body!r}"
        else:
            assert not isinstance(got, StreamDecodeError), f"{how}: valid body rejected ({got}): {body!r}"
            assert got[0].dtype == want[0].dtype
            np.testing.assert_array_equal(got[0], want[0], err_msg=f"{how}: {body!r}")
            assert got[1] == want[1], f"{how}: {body!r}"
    return want is not None


@pytest.mark.parametrize("kind", sorted(DTYPES))
@settings(max_examples=FUZZ_EXAMPLES)
@given(data=st.data())
def test_mutated_responses_match_the_oracle(kind, data):
    # The base body and the split points come from a drawn seed (hypothesis
    # draws cost ~1 ms each); the first mutation is drawn, so that it shrinks,
    # then SEEDED_MUTATIONS more of the same body come from the seed.
    seeded = Seeded(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    body, n, width, dtype, doc_rows = base_case(seeded, kind)
    assert oracle(body, n, width, dtype, doc_rows) is not None  # a valid response before mutation
    check(mutate(body, Draws(data)), n, width, dtype, doc_rows, seeded)
    for _ in range(SEEDED_MUTATIONS):
        check(mutate(body, seeded), n, width, dtype, doc_rows, seeded)


def test_mutations_make_both_valid_and_invalid_bodies():
    """The fuzz above proves little if every mutation breaks the JSON: over
    fixed seeds, a good share of mutated bodies are still valid responses
    (and differ from the original), most are not, and the decoder agrees on all."""
    outcomes = {"valid-changed": 0, "invalid": 0, "unchanged": 0}
    for seed in range(1000):
        src = Seeded(seed)
        body, n, width, dtype, doc_rows = base_case(src)
        bad = mutate(body, src)
        ok = check(bad, n, width, dtype, doc_rows, src)
        if ok and bad != body:
            outcomes["valid-changed"] += 1
        elif not ok:
            outcomes["invalid"] += 1
        else:
            outcomes["unchanged"] += 1
    assert outcomes["valid-changed"] >= 50 and outcomes["invalid"] >= 500, outcomes
