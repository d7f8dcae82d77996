"""The paths a size or a shape selects inside the avx512 Hamming and base64
kernels (issue 25), on every tier this CPU runs, bit for bit against serial.

- Hamming: tiles of 4 queries x 4 rows with one lane sum for all 16 pairs, the
  128-byte queries held in registers, the rows left over (nrows % 4) one at a
  time, the masked last bytes of other widths, 2 and 3 query groups, the one
  query scan; misaligned and strided rows (numpy's large arrays start 16 bytes
  past a 64-byte line); the top-k heaps offered 16 distances at a time (ties
  on purpose: equal rows, tiny alphabets); the thread split (rows when the
  groups of 4 queries do not divide evenly among the threads).
- base64: the < 16 quads after the last 64-char block decoded as one masked
  block, the < 16 triples after the last 48-byte block encoded as one, every
  count of them behind 0 to 5 blocks, a bad char anywhere in them, and the
  StreamDecoder's rows of 1024 bits (172 chars: 2 blocks and 10 quads).
"""

from __future__ import annotations

import base64
from functools import partial

import numpy as np
import pytest

import pplx_codec as pc
from helpers import on_every_isa
from pplx_codec import search

DETECTED = pc.capabilities()["detected"]
# widths (bytes) around every vector width the kernels use, and the real codes
WIDTHS = [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 191, 192, 193, 255, 256, 257,
          319, 320, 321]
# rows: below, at and past the 4-row tiles, each remainder, one and two 16-key offer groups, a scan tile
ROWS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 15, 16, 17, 31, 33, 513]
N_QUERIES = [1, 2, 3, 4, 5, 7, 8, 9]


def _same_on_every_isa(fn, *args):
    """fn(*args) (arrays, or a tuple of them) under every detected tier equals
    serial's, dtype and shape included; returns serial's."""
    results = [r if isinstance(r, tuple) else (r,) for r in on_every_isa(partial(fn, *args))]
    for name, got in zip(DETECTED[1:], results[1:], strict=True):
        for g, w in zip(got, results[0], strict=True):
            assert g.dtype == w.dtype and g.shape == w.shape, name
            np.testing.assert_array_equal(g, w, err_msg=name)
    return results[0] if len(results[0]) > 1 else results[0][0]


def _rows(rng, n, w, layout, kind):
    """n codes of w bytes in the given memory layout (same values either way)."""
    pool = np.array([0x00, 0x01, 0x80], np.uint8)
    codes = rng.choice(pool, (n, w)) if kind == "tiny" else rng.integers(0, 256, (n, w), dtype=np.uint8)
    if n > 2:
        codes[n // 2] = codes[0]  # an exact tie with row 0
    if layout == "c":
        return codes
    if layout == "offset16":  # where numpy's large arrays start relative to a cache line
        buf = np.empty(n * w + 64, np.uint8)
        start = (16 - buf.ctypes.data) % 64
        out = buf[start:start + n * w].reshape(n, w)
    elif layout == "offset1":
        buf = np.empty(n * w + 1, np.uint8)
        out = buf[1:].reshape(n, w)
    else:  # strided: rows 3 bytes apart more than their width
        out = np.empty((n, w + 3), np.uint8)[:, :w]
    out[...] = codes
    return out


@pytest.mark.parametrize("w", WIDTHS)
def test_hamming_paths_agree_with_serial(w):
    rng = np.random.default_rng(w)
    for layout in ("c", "offset16", "offset1", "strided"):
        for kind in ("uniform", "tiny"):
            X = _rows(rng, max(ROWS), w, layout, kind)
            Q = _rows(rng, max(N_QUERIES), w, "offset16" if layout == "c" else layout, kind)
            Q[1] = X[5]  # distance 0
            for n in ROWS:
                for m in N_QUERIES:
                    _same_on_every_isa(search.hamming_matrix, Q[:m], X[:n])
            for m in (1, 4, 9):
                for k in (1, 10):
                    _same_on_every_isa(search.search_binary, Q[:m], X, k)


@pytest.mark.parametrize("m", [1, 4, 8, 12, 13, 100])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_hamming_search_splits_agree_with_serial(m, threads):
    """Query splits, and row splits where the groups of 4 do not divide evenly
    (100 queries on 2 threads), give serial's one-thread answer, ties included."""
    rng = np.random.default_rng(m * 10 + threads)
    X = _rows(rng, 9000, 128, "offset16", "tiny")
    Q = _rows(rng, m, 128, "offset16", "tiny")
    with pc.use_isa("serial"):
        want = search.search_binary(Q, X, 10, threads=1)
    for name in DETECTED:
        with pc.use_isa(name):
            got = search.search_binary(Q, X, 10, threads=threads)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w, err_msg=name)


# ---------------------------------------------------------------- base64

# every count of quads (or triples) after the last block, behind 0 to 5 blocks
B64_WIDTHS = list(range(1, 340))


def test_base64_tails_agree_with_serial():
    rng = np.random.default_rng(25)
    for w in B64_WIDTHS:
        codes = rng.integers(0, 256, (3, w), dtype=np.uint8)
        strs = on_every_isa(partial(pc.encode_binary, codes))
        assert strs == [[base64.b64encode(r.tobytes()).decode() for r in codes]] * len(DETECTED)
        got = _same_on_every_isa(pc.decode_binary, strs[0], 8 * w)
        np.testing.assert_array_equal(got, codes)


@pytest.mark.parametrize("w", [40, 47, 48, 49, 100, 128, 129, 320])
def test_base64_bad_char_in_the_masked_tail_is_named_alike(w):
    """A bad char at every position of the last 64 chars of an item: every tier
    raises serial's message (item and offset)."""
    codes = np.random.default_rng(w).integers(0, 256, (2, w), dtype=np.uint8)
    text = base64.b64encode(codes[1].tobytes()).decode()
    good = base64.b64encode(codes[0].tobytes()).decode()

    def message(bad):
        with pytest.raises(ValueError) as e:
            pc.decode_binary([good, bad], 8 * w)
        return str(e.value)

    for p in range(max(0, len(text) - 64), len(text)):
        msgs = on_every_isa(partial(message, text[:p] + "!" + text[p + 1:]))
        assert len(set(msgs)) == 1, (p, msgs)


def test_stream_binary_rows_agree_with_serial():
    """A base64_binary response of 1024-bit rows (172 chars each), whole and in
    pieces that cut items anywhere."""
    codes = np.random.default_rng(172).integers(0, 256, (64, 128), dtype=np.uint8)
    items = ",".join(f'{{"object":"embedding","index":{i},"embedding":"{s}"}}'
                     for i, s in enumerate(base64.b64encode(r.tobytes()).decode() for r in codes))
    body = ('{"object":"list","data":[' + items + '],"model":"pplx-embed-v1-0.6b"}').encode()

    def decode(size):
        out = np.zeros_like(codes)
        dec = pc.StreamDecoder(out)
        for i in range(0, len(body), size):
            dec.feed(body[i:i + size])
        dec.finish()
        return out

    for size in (len(body), 4096, 173, 61):
        np.testing.assert_array_equal(_same_on_every_isa(decode, size), codes)
