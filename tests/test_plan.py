"""The plan of a call (pplx_codec._plan) and its request bodies (pplx_codec._json_body),
where issue 25 made them cheaper: the same batches and the same bytes as before, faster.

- A batch's body is ``json.dumps(body, ensure_ascii=False).encode()``, byte for byte
  (what went on the wire before), for any texts: every character json escapes
  (``"``, ``\\``, each control below 0x20, in its short or ``\\u00XX`` form), NUL
  (the joins' own byte), non-ASCII, astral characters, empty strings, nested documents;
  what json itself refuses (a lone surrogate, a non-str) it still refuses, with json's
  own exception.
- The batches are those of the item-by-item greedy rule (``reference_greedy``, the
  loop the plan ran before), whose groups the plan now takes whole when their bounds
  fit; the checks of the texts (``Plan._bounds``) take the same inputs and refuse the
  same ones, with the same messages.
"""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pplx_codec as pc
from helpers import raises_exactly
from pplx_codec._json_body import ESCAPES, request_body
from pplx_codec._plan import Plan
from pplx_codec.constants import MAX_INPUT_TOKENS, MAX_INPUTS
from pplx_codec.settings import EmbedSettings
from pplx_codec.tokens import estimate_tokens

FIELDS = {"model": "pplx-embed-v1-0.6b", "dimensions": 1024, "encoding_format": "base64_int8"}


def dumped(inputs, fields=FIELDS) -> bytes:
    """What the client sent before issue 25 (and must still send)."""
    return json.dumps({"input": inputs, **fields}, ensure_ascii=False).encode()


# ================================================================ the body

#: characters where json's escaping and the joins live, and some that need none
HOSTILE = [chr(c) for c in range(0x21)] + ['"', "\\", "/", "\x7f", "\x80", "é", "€", "\u2028", "\u2029",
                                             "\ufeff", "\U0001f600", "a", "]", "[", ",", "\\u0000", "\\n"]
texts = st.lists(st.lists(st.sampled_from(HOSTILE), max_size=12).map("".join), max_size=8)


@settings(max_examples=400, deadline=None)
@given(texts)
def test_body_is_what_json_dumps_writes(items):
    assert request_body(items, FIELDS) == dumped(items)


@settings(max_examples=300, deadline=None)
@given(st.lists(texts, max_size=5))
def test_nested_body_is_what_json_dumps_writes(docs):
    assert request_body(docs, FIELDS, nested=True) == dumped(docs)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=6))
def test_any_text_is_written_as_json_writes_it(items):
    try:
        want = dumped(items)
    except UnicodeEncodeError:  # a lone surrogate: both refuse it
        with pytest.raises(UnicodeEncodeError):
            request_body(items, FIELDS)
        return
    assert request_body(items, FIELDS) == want


def test_every_escape_is_json_s_own():
    for c, escape in ESCAPES.items():
        assert json.dumps(chr(c), ensure_ascii=False).encode() == b'"' + escape + b'"'
    # and nothing else is escaped: every other byte stands for itself in a string
    others = "".join(chr(c) for c in range(0x20, 0x80) if c not in ESCAPES)
    assert json.dumps(others, ensure_ascii=False) == f'"{others}"'


@pytest.mark.parametrize("items", [
    [], [""], ["", ""], ["a\x00b"], ["\x00"], ["x", "\x00", "y"], ["plain", 'q"uote', "back\\slash", "t\tab\n"],
    ["é\x00€", "\U0001f600"], ["\x01\x1f\x00\x7f"],
], ids=repr)
def test_edge_bodies(items):
    """NUL in a text (the joins' byte: json's own way), empty lists and texts, every escape at once."""
    assert request_body(items, FIELDS) == dumped(items)
    assert request_body([items, items[:1], []], FIELDS, nested=True) == dumped([items, items[:1], []])
    assert request_body(items, {}) == dumped(items, {})


def test_big_batch_bodies():
    rng = random.Random(5)
    words = ["alpha", "beta", "γάμμα", "δ", "\U0001f600", 'say "hi"', "C:\\path", "line\nbreak", "tab\there"]
    for clean in (True, False):
        pool = words[:2] if clean else words
        items = [" ".join(rng.choice(pool) for _ in range(rng.randint(1, 60))) for _ in range(MAX_INPUTS)]
        assert request_body(items, FIELDS) == dumped(items)


def test_what_is_not_a_text_is_json_s_to_write_or_refuse():
    for other in ([1, "a"], ["a", None, 2.5], [["a"], "b"]):  # (the plan lets none through: json's way)
        assert request_body(other, FIELDS) == dumped(other)
    for other in ([["a"], 1], ["ab", ["c"]], [("a", "b"), ["c"]]):
        assert request_body(other, FIELDS, nested=True) == dumped(other)
    with pytest.raises(TypeError) as ours:
        request_body(["a", b"bytes"], FIELDS)
    with pytest.raises(TypeError) as theirs:
        dumped(["a", b"bytes"])
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(UnicodeEncodeError):
        request_body(["ok", "lone \ud800 surrogate"], FIELDS)


def test_str_subclasses_are_written_as_their_text():
    class Text(str):
        def __str__(self):
            return "not this"

    items = [Text('a "b"'), Text("c")]
    assert request_body(items, FIELDS) == dumped(items) == dumped(['a "b"', "c"])


def test_the_plan_s_body_is_json_s(monkeypatch):
    """Plan.body is the bytes json.dumps wrote before, for both endpoints."""
    ts = ['one "1"', "two\n2", "three é"]
    for contextual, inputs in ((False, ts), (True, [ts, ts[:1]])):
        s = EmbedSettings.for_request("pplx-embed-context-v1-0.6b" if contextual else "pplx-embed-v1-0.6b", 512,
                                      "base64_binary", "little", contextualized=contextual)
        plan = Plan(inputs, s)
        (b,) = plan.batches
        assert plan.body(b) == dumped(b.inputs, {"model": s.model, "dimensions": 512,
                                                 "encoding_format": "base64_binary"})


# ================================================================ the batches

def reference_greedy(sizes, bounds, estimate, budget, max_items, max_size):
    """The plan's batching before issue 25, item by item (the rule ``Plan._greedy`` keeps)."""
    bounds = list(bounds)
    exact = [False] * len(bounds)

    def refine(lo, hi):
        for j in range(lo, hi):
            if not exact[j]:
                bounds[j] = min(bounds[j], estimate(j))
                exact[j] = True
        return sum(bounds[lo:hi])

    start, tokens, size = 0, 0, 0
    for i in range(len(bounds)):
        full = i - start == max_items or size + sizes[i] > max_size
        if i > start and (full or tokens + bounds[i] > budget):
            if not full and not exact[i]:
                tokens = refine(start, i + 1) - bounds[i]
            if full or tokens + bounds[i] > budget:
                yield start, i, tokens
                start, tokens, size = i, 0, 0
        tokens += bounds[i]
        size += sizes[i]
    yield start, len(bounds), tokens


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(1, 90)), max_size=60), st.integers(1, 300),
       st.integers(1, 9), st.integers(1, 30), st.integers(0, 3))
def test_greedy_groups_are_the_item_by_item_ones(items, budget, max_items, max_size, shrink):
    """Any sizes, bounds and estimates (an estimate at most its bound), any limits."""
    sizes = [s for s, _ in items]
    bounds = [b for _, b in items]
    estimate = lambda j: max(1, bounds[j] // (1 + shrink) - j % 3)  # noqa: E731
    want = list(reference_greedy(sizes, bounds, estimate, budget, max_items, max_size))
    assert list(Plan._greedy(sizes, list(bounds), estimate, budget, max_items, max_size)) == want


def test_greedy_on_a_corpus_and_at_the_limits():
    rng = random.Random(3)
    ts = ["w" * rng.choice([1, 5, 170, 3000, 9000]) + " x" * rng.randint(0, 50) for _ in range(3000)]
    bounds = [len(t) for t in ts]
    for budget in (10_000, 96_000, 10**9):
        for max_items in (1, 7, MAX_INPUTS):
            want = list(reference_greedy([1] * len(ts), bounds, lambda j: estimate_tokens(ts[j]), budget,
                                         max_items, len(ts)))
            assert list(Plan._greedy([1] * len(ts), list(bounds), lambda j: estimate_tokens(ts[j]), budget,
                                     max_items, len(ts))) == want


def test_plan_batches_cover_every_text_within_the_limits():
    ts = [f"text {i} " + "word " * (i % 97) for i in range(5000)]
    s = EmbedSettings.for_request("pplx-embed-v1-0.6b", None, "base64_int8", "little")
    for limit in (120_000, 4_000):
        plan = Plan(ts, s, token_limit=limit)
        assert [(b.start, b.stop) for b in plan.batches] == [
            (lo, hi) for lo, hi, _ in reference_greedy([1] * len(ts), [len(t) for t in ts],
                                                       lambda j: estimate_tokens(ts[j]), int(limit * 0.8),
                                                       MAX_INPUTS, len(ts))]


# ================================================================ the checks of the texts

def _names(i):
    return f"texts[{i}]"


@pytest.mark.parametrize("items", [
    ["a", "b"], ["é", "a"], ["a", "\U0001f600"], ["x" * MAX_INPUT_TOKENS], ["x" * (MAX_INPUT_TOKENS + 1)],
], ids=["ascii", "latin", "astral", "longest", "longer than the limit, fewer tokens"])
def test_bounds_fast_and_slow_agree(items):
    class Text(str):
        pass

    assert Plan._bounds(items, _names) == Plan._bounds([Text(t) for t in items], _names)
    assert Plan._bounds(items, _names)[0] <= len(items[0])


@pytest.mark.parametrize("items, exc, message", [
    (["a", 3], TypeError, "texts[1] must be a str, got int"),
    (["é", b"a"], TypeError, "texts[1] must be a str, got bytes"),
    ([None], TypeError, "texts[0] must be a str, got NoneType"),
    (["a", ""], ValueError, "texts[1] is an empty string (the API rejects empty inputs)"),
    (["é", "lone \ud800"], ValueError, "texts[1] is not valid Unicode text (surrogates not allowed at character 5)"),
    (["a", "ab " * MAX_INPUT_TOKENS], ValueError,
     f"texts[1] has about {estimate_tokens('ab ' * MAX_INPUT_TOKENS)} tokens (estimated); the API accepts at "
     f"most {MAX_INPUT_TOKENS} per input"),
])
def test_bounds_refuse_with_the_same_messages(items, exc, message):
    with raises_exactly(exc, message):
        Plan._bounds(items, _names)
    with raises_exactly(exc, message):  # the same through the client, before any request
        pc.Client(api_key="k", base_url="http://127.0.0.1:9").embed(items)
