# Incremental (sans-IO) decoder of Embeddings API responses.
#
# feed(chunk) scans the JSON byte by byte with an explicit state machine and
# a stack of containers, so a response may be split anywhere.  Only the
# `embedding` strings matter for speed: their base64 goes straight from the
# chunk into the table's decoder and lands in the destination row; at most 3
# characters that straddle a chunk boundary are carried over.  Everything
# else (keys, numbers, the small top-level values such as `model` and
# `usage`) is validated and either interpreted on the fly (`index`) or kept
# as raw bytes and parsed with the json module at finish().
#
# Two fast paths ride on the state machine, and each leaves it exactly where
# the bytewise scan would have (tests/test_stream_scan.py compares them with
# it, split everywhere).  Runs of whole items in the service's layout
# (`{"object":"embedding","index":N,"embedding":"..."}`, one after the other):
# _items_run checks every byte with word compares, reads the index digits in
# a plain loop and decodes each row with one call, about 110 instructions per
# item besides the base64 (the state machine took ~580).  And the bytes of a
# string up to the next '"', '\', control or non-ASCII byte (or, in an
# embedding, the next '"' or '\'), found 16 or 32 at a time by the scanners
# of simd/json, whose tier follows the active kernel table.
#
# Rows are placed by `index`, never by position.  When an item's `index`
# comes after its `embedding` (or, contextualized, a document's `index` after
# its chunks), the row is decoded into scratch space and copied once the
# index is known.  Every row must arrive exactly once, with exactly the
# expected number of bytes; anything else raises StreamDecodeError, so the
# output matrix is never silently wrong.
#
# The whole scan of one chunk runs without the GIL, so a decoder is guarded
# against concurrent (or reentrant) use: a second call while feed() is
# running raises RuntimeError instead of sharing the state and the scratch
# buffers.
#
# Memory is bounded whatever the body: besides the output matrix, a decoder
# keeps one byte per row and per document, at most max(doc_rows) scratch rows
# (chunks waiting for their document's index), a fixed container stack of
# MAX_DEPTH levels, and the text of the top-level fields other than `data`,
# CAPTURE_MAX bytes in total.
#
# Where things are.  _stream.pxd states the contract: the states, every field
# of the decoder and the signature of every C function.  This file is the
# small public surface: StreamDecoder's Python methods (__init__, feed,
# finish, rows_done, filled), the guard against concurrent use, and the text
# of every error (_fail records an error where it happens, _raise words it).
# The scan is in parts `include`d below, one C translation unit as before
# (so the calls between them stay direct and inlinable):
#   _stream_lex.pxi     the byte-level lexer: the loop over a chunk (_scan),
#                       the byte state machine (_step), whitespace, literals,
#                       numbers, strings and strict UTF-8;
#   _stream_struct.pxi  structure: containers and what each is (root, data,
#                       item, document, chunks), keys and their roles, where
#                       a value begins and ends, and the capture of the
#                       top-level fields other than `data`;
#   _stream_rows.pxi    `index` and rows: the one range rule of an index,
#                       index -> row placement, scratch rows for items whose
#                       index comes late, and the runs of items in the
#                       service's layout (the fast path);
#   _stream_b64.pxi     the embedding strings: their row, their base64 decoded
#                       into it run by run, carried over chunk boundaries.
cimport cython
cimport numpy as cnp
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from libc.stdint cimport uint8_t, int64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memset
from ._kernels cimport (pplx_table, load_table, pplx_b64_decoded_len, PPLX_B64_BADPAD, PPLX_B64_BADLEN, b64_error_text,
                       PPLX_FAM_JSON)
from ._arrays cimport checked, row_geometry

import json
import operator

import numpy as np

cnp.import_array()
cdef const pplx_table **T = load_table()


class StreamDecodeError(ValueError):
    """The response body is not a well-formed embeddings response for this
    request (bad JSON, truncated, an index missing or repeated, bad base64...)."""


# Whether feed() takes the runs of items in the service's layout (_items_run)
# and decodes embeddings cut by a chunk boundary without searching for their
# quote (_embedding_run); off only in tests, to compare with the scan without
# them.
cdef bint _fast_paths = True

# json.loads's own scanner (json.loads(s) is _default_decoder.decode(s), which
# calls this after its Python layers: the BOM test, two regex matches for
# whitespace, raw_decode; they cost as much as the scan of a `usage` object).
cdef object _json_scan_once = json.decoder.JSONDecoder().scan_once


cdef object _json_value(str text):
    """json.loads(text) for the text of one JSON value the scanner validated,
    as sent (no whitespace around it, no BOM).  Anything unexpected goes
    through json.loads itself, which raises what it always did."""
    try:
        value, end = _json_scan_once(text, 0)
    except Exception:
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value


include "_stream_lex.pxi"
include "_stream_struct.pxi"
include "_stream_rows.pxi"
include "_stream_b64.pxi"


@cython.final
cdef class StreamDecoder:
    """Decode one Embeddings API response, fed in chunks, into ``out``.

    ``StreamDecoder(out, doc_rows=None)``: ``out`` is the C-contiguous
    ``(n, width)`` int8 or uint8 matrix the rows go to (for ``base64_int8``
    ``width = dimensions``, for ``base64_binary`` ``dimensions // 8``).
    ``doc_rows``: for the contextualized endpoint, the number of chunks of
    each document, in request order; chunk ``j`` of document ``d`` lands in
    row ``sum(doc_rows[:d]) + j``.

    ``feed(chunk)`` with any bytes-like pieces of the body, in order; then
    ``finish()``, which checks that the document is complete and every row
    arrived exactly once, and returns the other top-level fields parsed
    (``{"model": ..., "usage": {...}, "object": "list", ...}``).

    One decoder decodes one response, from one thread at a time: a call to
    ``feed()``, ``finish()`` or ``filled()`` while another thread is inside
    ``feed()`` raises ``RuntimeError`` (``rows_done`` may be read any time).
    Once ``finish()`` has returned, the response is decoded: ``feed()`` (even
    of whitespace or nothing) and a second ``finish()`` raise
    ``RuntimeError``, and the rows, ``filled()`` and ``rows_done`` stay as
    they were.  (A ``finish()`` that raised did not finish: a truncated body
    may still be fed the rest.)
    The top-level fields other than ``data`` may take ``CAPTURE_MAX`` (1 MiB)
    in total (each key and value as sent, plus 2 bytes); past that, and past
    ``MAX_DEPTH`` (64) nested containers, it raises ``StreamDecodeError``.
    """

    def __cinit__(self):
        self.doc_start = NULL
        self.doc_seen = NULL
        self.seen = NULL
        self.scratch = NULL
        self.pending_chunk = NULL
        self.cap = NULL

    def __init__(self, out, doc_rows=None):
        cdef Py_ssize_t n, w, rs, d, c
        cdef cnp.ndarray a
        _check_idle(self, "__init__()")
        if self.doc_start != NULL:
            # the buffers are sized for the first `out`; reusing them for another
            # would write past them (and under a running feed(), free them)
            raise RuntimeError("StreamDecoder.__init__ cannot be called again: create a new decoder")
        a = checked(out, "out", "int8 or uint8", 2, cnp.NPY_INT8, cnp.NPY_UINT8)
        if cnp.PyArray_NDIM(a) != 2:
            raise ValueError("out must be a 2-D (rows, width) matrix")
        row_geometry(a, "out", &n, &w, &rs)
        if not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISWRITEABLE(a):
            raise ValueError("out must be C-contiguous and writable")
        if w < 1:
            raise ValueError("out rows must have at least one byte")
        self.out = a
        self.rows = <uint8_t *>cnp.PyArray_DATA(a)
        self.nrows = n
        self.width = w
        self.enc_len = (w + 2) // 3 * 4
        self.contextual = doc_rows is not None
        counts = [n] if doc_rows is None else [operator.index(c) for c in doc_rows]  # flat: one "document"
        if self.contextual and (any(c < 1 for c in counts) or sum(counts) != n):
            raise ValueError(f"doc_rows must be positive chunk counts summing to the {n} rows of out")
        self.ndocs = len(counts)
        self.seen = <uint8_t *>malloc(n + 1)
        self.doc_seen = <uint8_t *>malloc(self.ndocs + 1)
        self.doc_start = <int64_t *>malloc((self.ndocs + 1) * sizeof(int64_t))
        if self.doc_start == NULL or self.seen == NULL or self.doc_seen == NULL:
            raise MemoryError()
        memset(self.doc_seen, 0, self.ndocs + 1)
        self.doc_start[0] = 0
        self.max_doc_rows = 0  # (max() with its keyword costs half of __init__)
        for d in range(self.ndocs):
            c = counts[d]
            self.doc_start[d + 1] = self.doc_start[d] + c
            if c > self.max_doc_rows:
                self.max_doc_rows = c
        memset(self.seen, 0, n + 1)
        self.nseen = 0
        self.state = S_VALUE
        self.depth = 0
        self.role[0] = R_SKIP
        self.consumed = 0
        self.capturing = False
        self.cap_len = 0
        self.cap_cap = 0
        self.err = E_NONE
        self.finished = False
        self.item_number = -1
        self.doc_number = -1
        self.doc_index = -1

    def __dealloc__(self):
        free(self.doc_start)
        free(self.doc_seen)
        free(self.seen)
        free(self.scratch)
        free(self.pending_chunk)
        free(self.cap)

    @property
    def rows_done(self):
        """How many rows have been written so far (one machine word: safe to
        read from another thread while feed() runs, as a progress count)."""
        return self.nseen

    def filled(self):
        """Boolean mask of the rows written so far (for partial results)."""
        _check_idle(self, "filled()")
        return np.frombuffer((<char *>self.seen)[:self.nrows], np.uint8).astype(bool)

    def feed(self, data):
        """Scan the next piece of the body (any bytes-like object)."""
        cdef Py_buffer view
        _check_idle(self, "feed()")
        _check_unfinished(self, "feed()")
        if self.err != E_NONE:
            raise StreamDecodeError("feed() after an error")
        if self.state == S_ERROR:
            raise StreamDecodeError("decoder is in an error state")
        # The scan runs without the GIL and may realloc the scratch and capture
        # buffers: no other call may touch the decoder until it is over.
        self.busy = True
        try:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            try:
                with nogil:
                    _scan(self, <const uint8_t *>view.buf, view.len)
                if self.err != E_NONE:
                    _raise(self)
                self.consumed += view.len
            finally:
                PyBuffer_Release(&view)
        finally:
            self.busy = False

    def _run_items(self):
        """Tests only: how many items runs of items (_items_run) decoded."""
        return self.run_items

    def finish(self):
        """Check the body was complete and every row arrived; return the other
        top-level fields (``model``, ``usage``, ``object``, ...) parsed."""
        _check_idle(self, "finish()")
        _check_unfinished(self, "finish()")
        if self.err != E_NONE:
            raise StreamDecodeError("finish() after an error")
        if self.state != S_DONE:
            where = "before any JSON" if self.consumed == 0 else f"at byte {self.consumed}, inside the document"
            raise StreamDecodeError(f"truncated response: the body ended {where}")
        if self.nseen != self.nrows:
            missing = [i for i in range(self.nrows) if not self.seen[i]]
            raise StreamDecodeError(f"response is missing {len(missing)} of {self.nrows} rows "
                                    f"(first missing rows: {missing[:10]})")
        cdef bytes raw_key, raw
        cdef list parts
        cdef Py_ssize_t f
        meta = {}
        parts = (<char *>self.cap)[:self.cap_len].split(bytes([SEP])) if self.cap_len else [b""]
        for f in range(0, len(parts) - 1, 2):
            raw_key = parts[f]
            raw = parts[f + 1]
            # strict UTF-8 (json.loads(bytes) would let encoded surrogates through)
            try:
                # plain ASCII keys and strings (what the service sends) need no JSON parser;
                # the scanner has validated the syntax already
                # (92: '\\', an int: `bytes in bytes` first tries the argument as an int, and
                # the TypeError it raises and clears cost more than the rest of finish())
                key = raw_key.decode("ascii") if raw_key.isascii() and 92 not in raw_key else \
                    _json_value((b'"' + raw_key + b'"').decode("utf-8"))
                if len(raw) >= 2 and raw[0] == 34 and raw.isascii() and 92 not in raw:  # 34: '"'
                    meta[key] = raw[1:len(raw) - 1].decode("ascii")
                else:
                    meta[key] = _json_value(raw.decode("utf-8"))
            except ValueError as e:
                raise StreamDecodeError(f"top-level field {raw_key[:40]!r}: {e}") from None
        self.finished = True
        return meta


# ---------------------------------------------------------------- the guard and errors

cdef _check_idle(StreamDecoder self, str what):
    # Called with the GIL held and no Python code between the test and the
    # caller setting `busy`: two threads cannot both pass it.
    if self.busy:
        raise RuntimeError(f"StreamDecoder.{what}: the decoder is in use by feed() in another thread "
                           "(or reentrantly); one decoder decodes one response, from one thread at a time")


cdef _check_unfinished(StreamDecoder self, str what):
    # A finished decoder holds a decoded response: more of a body (whitespace
    # included, which would pass the scan, or garbage, which would turn it into
    # an error state) or a second finish() is the caller's mistake, not the
    # server's, so it is a RuntimeError, as the guard's, and changes nothing.
    if self.finished:
        raise RuntimeError(f"StreamDecoder.{what}: the response is already decoded (finish() returned); "
                           "one decoder decodes one response")


cdef void _fail(StreamDecoder self, int code, Py_ssize_t at) noexcept nogil:
    """Record error `code` at byte `at` of the chunk (the first one wins; its
    details are in the err_* fields) and stop the scan; feed() raises it."""
    if self.err == E_NONE:
        self.err = code
        self.err_at = at
    self.state = S_ERROR


cdef _raise(StreamDecoder self):
    """Raise the recorded error, worded: every message of the scan is here."""
    cdef Py_ssize_t at = self.consumed + self.err_at
    where = f"response byte {at}"
    if self.item_number >= 0 and self.err in (E_INDEX_TYPE, E_INDEX_RANGE, E_INDEX_BIG, E_DUPLICATE_ROW, E_B64,
                                             E_LENGTH, E_MISSING_FIELD, E_DUPLICATE_KEY):
        where += f" (data item {self.item_number}" + \
            (f", index {self.item_index}" if self.item_index >= 0 else "") + \
            (f", document {self.doc_index}" if self.contextual and self.doc_index >= 0 else "") + ")"
    code = self.err
    if code == E_SYNTAX:
        msg = "invalid JSON"
    elif code == E_DEPTH:
        msg = f"JSON nested deeper than {MAX_DEPTH}"
    elif code == E_SHAPE:
        msg = ("not an embeddings response: expected an object with a 'data' array of objects"
               + (" (documents with a 'data' array of chunk objects)" if self.contextual else ""))
    elif code == E_INDEX_TYPE:
        msg = "'index' must be a non-negative integer"
    elif code == E_INDEX_RANGE or code == E_INDEX_BIG:
        shown = _index_text(self) if code == E_INDEX_BIG else str(self.err_value)
        # (a chunk's E_INDEX_BIG before its document's index: the limit is the largest document's, see _big_index)
        largest = code == E_INDEX_BIG and self.contextual and self.role[self.depth] == R_ITEM and self.doc_index < 0
        expected = f"expected 0..{self.err_limit - 1}" + (", the chunks of the largest document" if largest else "")
        msg = f"'index' {shown} is out of range " + (f"({expected})" if self.err_limit > 0 else _expected_none(self))
    elif code == E_DUPLICATE_ROW:
        msg = f"row {self.err_value} appears twice"
    elif code == E_DUPLICATE_KEY:
        msg = "a key appears twice in one object"
    elif code == E_B64:
        # (for a bad length, the offset recorded is the length: _embedding_end)
        off = self.err_char_offset
        msg = "invalid base64 in 'embedding': " + b64_error_text(self.err_b64, off, self.err_char, off, True)
    elif code == E_LENGTH:
        msg = (f"'embedding' decodes to more than {self.width} bytes" if self.err_value < 0 else
               f"'embedding' decodes to {self.err_value} bytes, expected {self.width}")
    elif code == E_MISSING_FIELD:
        msg = "an item has no 'index'" if self.err_value == 0 else \
            "an item has no 'embedding'" if self.err_value == 1 else "a document has no 'index'"
    elif code == E_TRAILING:
        msg = "data after the end of the JSON document"
    elif code == E_UTF8:
        msg = "invalid JSON: a string is not valid UTF-8"
    elif code == E_DUPLICATE_DOC:
        msg = f"document {self.err_value} appears twice"
    elif code == E_TOO_MANY_CHUNKS:
        msg = (f"a document has more chunks than the largest document of the request ({self.max_doc_rows})"
               if self.max_doc_rows else "a document has chunks " + _expected_none(self))
    elif code == E_NO_MEMORY:
        raise MemoryError()
    else:
        msg = (f"the top-level fields other than 'data' take more than {CAPTURE_MAX} bytes in total "
               "(keys and values as sent, plus 2 bytes per field)")
    raise StreamDecodeError(f"{where}: {msg}")


cdef str _index_text(StreamDecoder self):
    """The digits of the E_INDEX_BIG index as sent (num_value's, then
    big_digits); past INDEX_SHOWN of them, the first INDEX_SHOWN and the count."""
    head = str(self.err_value)
    total = len(head) + self.big_ndigits
    digits = head + (<char *>self.big_digits)[:min(self.big_ndigits, BIG_DIGITS)].decode("ascii")
    return digits if total <= INDEX_SHOWN else f"{digits[:INDEX_SHOWN]}... ({total} digits)"


cdef str _expected_none(StreamDecoder self):
    """What a decoder made for no rows expects, as __init__ was told: an
    index or a document can only be out of range."""
    return "(expected no documents: doc_rows is empty)" if self.contextual else \
        "(expected no items: out has 0 rows)"


# ---------------------------------------------------------------- tests only

_JSON_TIERS = ("serial", "sse2", "avx2", "neon")  # PPLX_JSON_* order
# (asked once: CPUID traps to the hypervisor in a VM)
_JSON_USABLE = tuple(bool(pplx_json_tier_usable(t)) for t in range(len(_JSON_TIERS)))


def _json_tier():
    """The byte scanners' tier the active kernel table selects (what feed() runs)."""
    return _JSON_TIERS[pplx_json_tier(T[0].fam[PPLX_FAM_JSON])]


def _set_fast_paths(bint on):
    """Tests only: turn the runs of items and the quote-less decoding of
    embeddings cut by a chunk boundary off (the scan as before them) or back
    on, for every decoder of the process; returns the previous setting."""
    global _fast_paths
    was = _fast_paths
    _fast_paths = on
    return was


def _json_scan(data, str what, str tier):
    """Tests only: index of the first byte the scanner `what` stops at in
    `data` (len(data) if none): "special" ('"', '\\', < 0x20, >= 0x80) or
    "quote" ('"', '\\'), run by scanner tier `tier` (serial, sse2, avx2,
    neon); None when this build or this CPU has no such tier."""
    cdef Py_buffer view
    cdef int t = _JSON_TIERS.index(tier)
    cdef bint special = what == "special"
    cdef size_t r
    if what not in ("special", "quote"):
        raise ValueError(f"unknown scanner {what!r}")
    if not _JSON_USABLE[t]:
        return None
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        with nogil:
            r = pplx_json_special(t, <const uint8_t *>view.buf, view.len) if special else \
                pplx_json_quote(t, <const uint8_t *>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)
    return r

