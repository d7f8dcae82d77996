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
cimport cython
cimport numpy as cnp
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from libc.stdint cimport uint8_t, int64_t, INT64_MAX
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memset
from ._kernels cimport (pplx_table, load_table, pplx_b64_decoded_len,
                       PPLX_B64_BADCHAR, PPLX_B64_BADPAD, PPLX_B64_BADLEN, PPLX_B64_NONCANON)
from ._arrays cimport checked, row_geometry

import json
import operator

cdef extern from "simd/json/json.h" nogil:
    int pplx_json_tier(int isa)
    bint pplx_json_tier_usable(int tier)
    size_t pplx_json_special(int tier, const uint8_t *s, size_t n)
    size_t pplx_json_quote(int tier, const uint8_t *s, size_t n)
    bint pplx_json_same(const uint8_t *p, const char *lit, size_t n)

import numpy as np

cnp.import_array()
cdef const pplx_table **T = load_table()


class StreamDecodeError(ValueError):
    """The response body is not a well-formed embeddings response for this
    request (bad JSON, truncated, an index missing or repeated, bad base64...)."""


# Parser states
cdef enum:
    S_VALUE, S_AFTER_VALUE, S_KEY_OR_CLOSE, S_KEY, S_COLON, S_STRING, S_ESCAPE, S_UNICODE,
    S_NUMBER, S_LITERAL, S_DONE, S_ERROR

# Number sub-states (JSON grammar)
cdef enum:
    N_SIGN, N_ZERO, N_INT, N_DOT, N_FRAC, N_EXP, N_EXP_SIGN, N_EXP_DIGITS

# What a container is, given where it sits
cdef enum:
    R_ROOT, R_DATA, R_ITEM, R_DOC, R_CHUNKS, R_SKIP

# What the value of the current key means
cdef enum:
    K_OTHER, K_DATA, K_INDEX, K_EMBEDDING, K_CAPTURE

# What the string being scanned is for
cdef enum:
    P_KEY, P_EMBEDDING, P_OTHER

cdef enum:
    MAX_DEPTH = 64
    KEY_MAX = 32
    # All the top-level fields other than `data` together: the text of each
    # key and value plus 2 bytes (their separators in the buffer).
    CAPTURE_MAX = 1 << 20
    # While a top-level key is read it may be "data" (then it is not kept),
    # written with up to 4 six-byte \u escapes: room for it past CAPTURE_MAX.
    DATA_KEY_SLACK = 32

# Separates keys and values in the capture buffer: a byte that valid UTF-8
# (hence any text the scanner lets through) never contains.
cdef enum:
    SEP = 0xFF

cdef enum:  # error codes (details in the decoder's err_* fields)
    E_NONE, E_SYNTAX, E_DEPTH, E_SHAPE, E_INDEX_TYPE, E_INDEX_RANGE, E_DUPLICATE_ROW, E_DUPLICATE_KEY,
    E_B64, E_LENGTH, E_MISSING_FIELD, E_TRAILING, E_NO_MEMORY, E_CAPTURE_SIZE, E_UTF8, E_DUPLICATE_DOC,
    E_TOO_MANY_CHUNKS


ctypedef ptrdiff_t (*b64_decode_fn)(const uint8_t *, size_t, uint8_t *, size_t *) noexcept nogil

cdef struct items_run:
    int64_t count           # items decoded and marked
    int64_t last_index      # the `index` of the last one
    Py_ssize_t done         # the byte after its '}'
    int pad                 # '=' a row's base64 ends with


cdef inline void _items_loop(const uint8_t *s, Py_ssize_t n, Py_ssize_t j, const char *mid, Py_ssize_t ml,
                             const char *between, Py_ssize_t bl, Py_ssize_t enc, Py_ssize_t w, int64_t base,
                             int64_t limit, uint8_t *seen, uint8_t *rows, b64_decode_fn decode,
                             items_run *r) noexcept nogil:
    """StreamDecoder._items_run's loop, j at the index digits of the first item
    (its head checked).  An item qualifies when its bytes are
    {"object":"embedding","index":N,"embedding":"B64"} (or with json.dumps's
    default spacing: the literals `mid` and `between` say which), N a JSON
    integer < 10**15 naming an unfilled row of the array (or document), B64
    exactly the length of a row, ending in the row's padding and decoding
    without error; every byte is checked (the literals by word compares: the
    33 bytes `"},{"object":"embedding","index":` from one item's closing quote
    to the next one's index digits are five loads).  A qualifying item is
    committed (its row marked filled) when its closing '}' is in the chunk.
    Anything else, even valid JSON in another layout, ends the run before that
    item with nothing of it committed (its row may have been written, never
    marked filled): the general path then scans it and reports any error
    exactly as it would have without this run."""
    cdef Py_ssize_t d, p, e
    cdef int64_t v, row
    cdef bint more, eq1
    cdef size_t err = 0
    while True:
        d = j
        v = 0
        while j < n and j - d < 15 and <unsigned>(s[j] - c'0') <= 9:
            v = v * 10 + (s[j] - c'0')
            j += 1
        if j == d or (s[d] == c'0' and j - d > 1) or n - j < ml + enc + 2 or not pplx_json_same(s + j, mid, ml):
            return
        p = j + ml
        e = p + enc  # the closing quote, if the string has the length of a row
        if n - e >= bl and pplx_json_same(s + e, between, bl):
            more = True
        elif s[e] == c'"' and s[e + 1] == c'}':
            more = False
        else:
            return
        if v >= limit:
            return
        row = base + v
        eq1 = s[e - 1] == c'='
        if seen[row] or eq1 + (eq1 and s[e - 2] == c'=') != r.pad or decode(s + p, enc, rows + row * w, &err) < 0:
            return
        seen[row] = 1
        r.count += 1
        r.last_index = v
        r.done = e + 2
        if not more:
            return
        j = e + bl


cdef inline bint _plain_tail(const uint8_t *p, Py_ssize_t n) noexcept nogil:
    """No quote or backslash among the n (< 4) bytes at p."""
    cdef Py_ssize_t j
    for j in range(n):
        if p[j] == c'"' or p[j] == c'\\':
            return False
    return True


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
    The top-level fields other than ``data`` may take ``CAPTURE_MAX`` (1 MiB)
    in total (each key and value as sent, plus 2 bytes); past that, and past
    ``MAX_DEPTH`` (64) nested containers, it raises ``StreamDecodeError``.
    """
    cdef cnp.ndarray out
    cdef uint8_t *rows
    cdef Py_ssize_t nrows, width
    cdef bint contextual
    cdef int64_t *doc_start      # row of each document's first chunk; ndocs + 1 entries
    cdef Py_ssize_t ndocs
    cdef uint8_t *doc_seen       # documents whose index has arrived
    cdef Py_ssize_t max_doc_rows # chunks of the largest document: the most scratch rows a valid body needs
    cdef bint busy               # a call is inside feed() (maybe without the GIL): see _check_idle
    cdef int jtier               # tier of the byte scanners (simd/json), from the active table per feed()
    cdef Py_ssize_t run_items    # items decoded by _items_run (for tests: see _run_items)
    cdef uint8_t *seen
    cdef Py_ssize_t nseen

    # parser
    cdef int state, ret_state
    cdef int depth
    cdef uint8_t ctype[MAX_DEPTH + 1]       # '{' or '['
    cdef uint8_t role[MAX_DEPTH + 1]
    cdef uint8_t key_role[MAX_DEPTH + 1]
    cdef uint8_t keys_seen[MAX_DEPTH + 1]   # bit per K_* for duplicate detection in items/docs
    cdef int purpose
    cdef char key[KEY_MAX]
    cdef int key_len
    cdef bint key_long
    cdef int num_state
    cdef int64_t num_value
    cdef bint num_integer, num_negative, num_big
    cdef int value_role                     # K_* of the value being scanned (numbers, strings)
    cdef const char *literal
    cdef int literal_pos
    cdef int uni_count
    cdef int u8_need                        # continuation bytes still due in a UTF-8 sequence
    cdef uint8_t u8_lo, u8_hi               # the range the next one must fall in
    cdef unsigned uni_value
    cdef Py_ssize_t consumed                # bytes of the body fed before the current chunk

    # the item (data[i] or a chunk) and document being scanned
    cdef int64_t item_index, doc_index, item_number, doc_number
    cdef bint item_has_embedding
    cdef uint8_t *emb_dst
    cdef bint emb_in_scratch
    cdef int64_t emb_row
    cdef Py_ssize_t emb_pos, emb_chars
    cdef Py_ssize_t enc_len                 # base64 length of a full row
    cdef uint8_t carry[4]
    cdef int ncarry
    cdef bint padded

    # rows waiting for their index (scratch) and where they go
    cdef uint8_t *scratch
    cdef Py_ssize_t scratch_rows, scratch_cap
    cdef int64_t *pending_chunk             # chunk index of each scratch row
    cdef int64_t *pending_doc

    # raw top-level keys and values other than data, parsed at finish():
    # key SEP value SEP key SEP value SEP ...
    cdef bint capturing, key_capturing
    cdef uint8_t *cap
    cdef Py_ssize_t cap_len, cap_cap
    cdef Py_ssize_t cap_rec                 # where the field being read starts in the buffer

    # error details
    cdef int err
    cdef Py_ssize_t err_at
    cdef int64_t err_value, err_limit
    cdef const uint8_t *chunk              # the chunk being scanned
    cdef Py_ssize_t cap_from               # where the captured value resumes in it
    cdef bint _after_comma                 # the S_VALUE state was entered by ','
    cdef int err_b64
    cdef uint8_t err_char
    cdef Py_ssize_t err_char_offset

    def __cinit__(self):
        self.doc_start = NULL
        self.doc_seen = NULL
        self.seen = NULL
        self.scratch = NULL
        self.pending_chunk = NULL
        self.pending_doc = NULL
        self.cap = NULL

    def __init__(self, out, doc_rows=None):
        cdef Py_ssize_t n, w, rs, d, c
        cdef cnp.ndarray a
        self._check_idle("__init__()")
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
        self.item_number = -1
        self.doc_number = -1
        self.doc_index = -1

    def __dealloc__(self):
        free(self.doc_start)
        free(self.doc_seen)
        free(self.seen)
        free(self.scratch)
        free(self.pending_chunk)
        free(self.pending_doc)
        free(self.cap)

    @property
    def rows_done(self):
        """How many rows have been written so far (one machine word: safe to
        read from another thread while feed() runs, as a progress count)."""
        return self.nseen

    cdef _check_idle(self, str what):
        # Called with the GIL held and no Python code between the test and the
        # caller setting `busy`: two threads cannot both pass it.
        if self.busy:
            raise RuntimeError(f"StreamDecoder.{what}: the decoder is in use by feed() in another thread "
                               "(or reentrantly); one decoder decodes one response, from one thread at a time")

    def filled(self):
        """Boolean mask of the rows written so far (for partial results)."""
        self._check_idle("filled()")
        return np.frombuffer((<char *>self.seen)[:self.nrows], np.uint8).astype(bool)

    def feed(self, data):
        """Scan the next piece of the body (any bytes-like object)."""
        cdef Py_buffer view
        self._check_idle("feed()")
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
                    self._scan(<const uint8_t *>view.buf, view.len)
                if self.err != E_NONE:
                    self._raise()
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
        self._check_idle("finish()")
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
        return meta

    # ------------------------------------------------------------------ errors

    cdef void _fail(self, int code, Py_ssize_t at) noexcept nogil:
        if self.err == E_NONE:
            self.err = code
            self.err_at = at
        self.state = S_ERROR

    cdef _raise(self):
        cdef Py_ssize_t at = self.consumed + self.err_at
        where = f"response byte {at}"
        if self.item_number >= 0 and self.err in (E_INDEX_TYPE, E_INDEX_RANGE, E_DUPLICATE_ROW, E_B64,
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
        elif code == E_INDEX_RANGE:
            shown = "with more than 15 digits" if self.err_value == INT64_MAX else str(self.err_value)
            msg = f"'index' {shown} is out of range (expected 0..{self.err_limit - 1})"
        elif code == E_DUPLICATE_ROW:
            msg = f"row {self.err_value} appears twice"
        elif code == E_DUPLICATE_KEY:
            msg = "a key appears twice in one object"
        elif code == E_B64:
            ch = chr(self.err_char)
            off = self.err_char_offset
            if self.err_b64 == PPLX_B64_BADPAD:
                msg = f"invalid base64 in 'embedding': data after '=' padding at offset {off}"
            elif self.err_b64 == PPLX_B64_NONCANON:
                msg = f"invalid base64 in 'embedding': non-zero bits before '=' padding at offset {off}"
            elif self.err_b64 == PPLX_B64_BADLEN:
                msg = f"invalid base64 in 'embedding': length {off} is not a multiple of 4"
            elif ch == "=":
                msg = f"invalid base64 in 'embedding': unexpected '=' padding at offset {off}"
            else:
                msg = f"invalid base64 in 'embedding': invalid character {ch!r} at offset {off}"
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
            msg = f"a document has more chunks than the largest document of the request ({self.max_doc_rows})"
        elif code == E_NO_MEMORY:
            raise MemoryError()
        else:
            msg = (f"the top-level fields other than 'data' take more than {CAPTURE_MAX} bytes in total "
                   "(keys and values as sent, plus 2 bytes per field)")
        raise StreamDecodeError(f"{where}: {msg}")

    # ------------------------------------------------------------------ scanning

    cdef inline bint _ws(self, uint8_t c) noexcept nogil:
        return c == 32 or c == 10 or c == 13 or c == 9

    cdef void _scan(self, const uint8_t *s, Py_ssize_t n) noexcept nogil:
        cdef Py_ssize_t i = 0, j
        cdef uint8_t c
        cdef int st
        self.chunk = s
        self.cap_from = 0
        self.jtier = pplx_json_tier(T[0].isa)
        while i < n:
            st = self.state
            if st == S_ERROR:
                break
            if st == S_STRING:
                if self.purpose == P_EMBEDDING:
                    i = self._embedding_run(s, n, i)
                    continue
                # a run of plain characters: only '"', '\\', controls and non-ASCII need
                # the state machine, and every byte does while a UTF-8 sequence is
                # incomplete (an ASCII byte there is an error)
                j = i
                if self.u8_need == 0:
                    j = i + <Py_ssize_t>pplx_json_special(self.jtier, s + i, n - i)
                if self.purpose == P_KEY:
                    self._key_run(s + i, j - i)
                i = j
                if i == n:
                    break
            elif st != S_NUMBER and st != S_LITERAL and st != S_UNICODE and st != S_ESCAPE:
                c = s[i]
                if c == 32 or c == 10 or c == 13 or c == 9:
                    i += 1
                    continue
                if c == c'{' and st == S_VALUE and (self.role[self.depth] == R_CHUNKS or
                                                    (self.role[self.depth] == R_DATA and not self.contextual)):
                    j = self._items_run(s, n, i) if _fast_paths else i
                    if j == i:
                        j = self._item_fast(s, n, i)
                    if j > i:
                        i = j
                        continue
            self._step(s[i], s, i)
            i += 1
        # a captured top-level key or value continues in the next chunk
        if (self.capturing or self.key_capturing) and self.state != S_ERROR and \
                not self._capture(s + self.cap_from, n - self.cap_from, self.key_capturing):
            self._fail(E_CAPTURE_SIZE, n - 1)

    cdef Py_ssize_t _items_run(self, const uint8_t *s, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
        """Whole items written exactly as the service writes them, one after
        the other: at the '{' of an item of a flat `data` array (or of the
        chunks of a document whose index is known), in state S_VALUE, decode
        every item the chunk holds up to its closing '}', and return the byte
        after the last one's '}', the state machine exactly where the bytewise
        scan would have left it; return i when the first item does not
        qualify (see _items_loop)."""
        cdef int64_t base, limit, row
        cdef items_run r
        if self.depth >= MAX_DEPTH:
            return i
        if self.role[self.depth] == R_CHUNKS:
            if self.doc_index < 0:
                return i  # rows wait in scratch for the document's index: the general path
            base = self.doc_start[self.doc_index]
            limit = self.doc_start[self.doc_index + 1] - base
        else:
            base = 0
            limit = self.nrows
        r.count = 0
        r.pad = <int>(self.enc_len // 4 * 3 - self.width)
        # the same loop for the two spacings, each with its literals as constants
        if n - i >= 30 and pplx_json_same(s + i, b'{"object":"embedding","index":', 30):
            _items_loop(s, n, i + 30, b',"embedding":"', 14, b'"},{"object":"embedding","index":', 33,
                        self.enc_len, self.width, base, limit, self.seen, self.rows, T[0].b64_decode, &r)
        elif n - i >= 33 and pplx_json_same(s + i, b'{"object": "embedding", "index": ', 33):
            _items_loop(s, n, i + 33, b', "embedding": "', 16, b'"}, {"object": "embedding", "index": ', 37,
                        self.enc_len, self.width, base, limit, self.seen, self.rows, T[0].b64_decode, &r)
        if r.count == 0:
            return i
        # the state after the last item's '}', as the bytewise scan leaves it
        row = base + r.last_index
        self.nseen += r.count
        self.run_items += r.count
        self.item_number += r.count
        self.item_index = r.last_index
        self.item_has_embedding = True
        self.emb_row = row
        self.emb_dst = self.rows + row * self.width
        self.emb_in_scratch = False
        self.emb_pos = self.width
        self.emb_chars = self.enc_len
        self.ncarry = 0
        self.padded = False
        self.ctype[self.depth + 1] = c'{'
        self.role[self.depth + 1] = R_ITEM
        self.keys_seen[self.depth + 1] = (1 << K_INDEX) | (1 << K_EMBEDDING)
        self.key_role[self.depth + 1] = K_EMBEDDING
        self.value_role = K_EMBEDDING
        self.purpose = P_EMBEDDING
        self._after_comma = False
        self.state = S_AFTER_VALUE
        return r.done

    cdef Py_ssize_t _item_fast(self, const uint8_t *s, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
        """The common shape of an item, as the service (and json.dumps) write it:
        {"object": "embedding", "index": N, "embedding": "...  (with or without
        the spaces).  When the chunk holds all of that up to the opening quote
        of the embedding, move the state machine to exactly where the byte-wise
        scan would be, in one step; otherwise return i and let it scan."""
        cdef const char *mid
        cdef Py_ssize_t hl, ml, j, d
        cdef int64_t v = 0
        if n - i >= 33 and pplx_json_same(s + i, b'{"object": "embedding", "index": ', 33):
            hl = 33
            mid = b', "embedding": "'
            ml = 16
        elif n - i >= 30 and pplx_json_same(s + i, b'{"object":"embedding","index":', 30):
            hl = 30
            mid = b',"embedding":"'
            ml = 14
        else:
            return i
        j = i + hl
        d = j
        while j < n and s[j] >= c'0' and s[j] <= c'9' and j - d < 15:
            v = v * 10 + (s[j] - c'0')
            j += 1
        if j == d or (s[d] == c'0' and j - d > 1) or n - j < ml or not pplx_json_same(s + j, mid, ml):
            return i
        # as if scanned: '{' opened an item, "object" was skipped, index read, key "embedding" seen
        self._open(c'{', i)
        if self.state == S_ERROR:
            return n
        self.item_index = v
        if not self.contextual and v >= self.nrows:
            self.err_value = v
            self.err_limit = self.nrows
            self._fail(E_INDEX_RANGE, d)
            return n
        self.keys_seen[self.depth] = (1 << K_INDEX) | (1 << K_EMBEDDING)
        self.key_role[self.depth] = K_EMBEDDING
        self.value_role = K_EMBEDDING
        self.state = S_STRING
        self.purpose = P_EMBEDDING
        self._embedding_start(j + ml - 1)
        return j + ml

    cdef inline void _key_run(self, const uint8_t *p, Py_ssize_t n) noexcept nogil:
        if self.key_len + n > KEY_MAX:
            self.key_long = True
            return
        memcpy(self.key + self.key_len, p, n)
        self.key_len += <int>n

    cdef bint _capture(self, const uint8_t *p, Py_ssize_t n, bint key=False) noexcept nogil:
        """Append n bytes of a top-level key or value to the capture buffer;
        False past the limit (a key may be "data", not kept: it gets some slack)."""
        cdef Py_ssize_t need = self.cap_len + n, size
        cdef Py_ssize_t limit = CAPTURE_MAX + DATA_KEY_SLACK if key else CAPTURE_MAX
        cdef uint8_t *b
        if need > limit:
            return False
        if need > self.cap_cap:
            size = min(max(need, 2 * self.cap_cap, 256), CAPTURE_MAX + DATA_KEY_SLACK)
            b = <uint8_t *>realloc(self.cap, size)
            if b == NULL:
                return False
            self.cap = b
            self.cap_cap = size
        memcpy(self.cap + self.cap_len, p, n)
        self.cap_len += n
        return True

    cdef bint _capture_sep(self, bint key=False) noexcept nogil:
        cdef uint8_t sep = SEP
        return self._capture(&sep, 1, key)

    cdef void _end_capture(self, Py_ssize_t end) noexcept nogil:
        """The captured value ends before byte `end` of the current chunk."""
        self.capturing = False
        if not self._capture(self.chunk + self.cap_from, end - self.cap_from) or not self._capture_sep():
            self._fail(E_CAPTURE_SIZE, end)

    cdef Py_ssize_t _embedding_run(self, const uint8_t *s, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
        """Inside an embedding string: hand the run up to the next quote or
        backslash to the base64 decoder; return where scanning continues."""
        cdef const uint8_t *p = s + i
        cdef Py_ssize_t rem = self.enc_len - self.emb_chars
        cdef size_t err = 0
        cdef ptrdiff_t got
        # Fast path: the rest of a well-formed string ends exactly where its
        # length says, so one decoder pass validates and decodes it, with no
        # search for the quote.  Anything else (an escape, a wrong length, a
        # bad character) makes the decoder or the quote check fail, and the
        # general path below redoes the run and reports precisely.
        if self.ncarry == 0 and not self.padded and rem > 0 and i + rem < n and s[i + rem] == c'"' and \
                self.emb_pos + pplx_b64_decoded_len(p, rem) == self.width:
            got = T[0].b64_decode(p, rem, self.emb_dst + self.emb_pos, &err)
            if got >= 0:
                self.emb_pos += got
                self.emb_chars += rem
                self._embedding_end(i + rem)
                self._value_done(i + rem)
                return i + rem + 1
        # The same where a chunk boundary cuts the string (64 KiB pieces cut one
        # item each), again with no search for the quote: what the general path
        # would do, done only when the decoder accepts every char (so there is no
        # quote or backslash among them) and undone (by the general path redoing
        # the run) otherwise.
        cdef Py_ssize_t k = n - i, full, rest, t
        cdef uint8_t quad[4]
        if not _fast_paths or self.padded:
            pass
        elif self.ncarry == 0 and k < rem:
            # the chunk ends inside the string: decode its whole quads, carry the
            # rest (none may be a quote or backslash); no '=' before the end
            full = k - k % 4
            if full > 0 and p[full - 1] != c'=' and _plain_tail(p + full, k - full) and \
                    T[0].b64_decode(p, full, self.emb_dst + self.emb_pos, &err) == full // 4 * 3:
                self.emb_pos += full // 4 * 3  # (k < rem: still short of the row)
                self.emb_chars += full
                memcpy(self.carry, p + full, k - full)
                self.ncarry = <int>(k - full)
                return n
        elif self.ncarry > 0 and rem > 4 and i + rem - self.ncarry < n and \
                s[i + rem - self.ncarry] == c'"':
            # the string began in an earlier chunk and ends where its length says:
            # the carried quad (a middle one: 3 bytes), then the rest in one pass
            t = 4 - self.ncarry   # chars of this chunk that complete the quad
            rest = rem - 4        # chars after them, up to the quote at p[t + rest]
            memcpy(quad, self.carry, self.ncarry)
            memcpy(quad + self.ncarry, p, t)
            if self.emb_pos + 3 + pplx_b64_decoded_len(p + t, rest) == self.width and \
                    T[0].b64_decode(quad, 4, self.emb_dst + self.emb_pos, &err) == 3 and \
                    T[0].b64_decode(p + t, rest, self.emb_dst + self.emb_pos + 3, &err) >= 0:
                self.emb_pos = self.width
                self.emb_chars += 4 + rest
                self.padded = p[t + rest - 1] == c'='
                self.ncarry = 0
                self._embedding_end(i + t + rest)
                self._value_done(i + t + rest)
                return i + t + rest + 1
        # the run ends at the first quote or backslash (any other byte that is not
        # base64 is the decoder's to report)
        cdef Py_ssize_t stop = i + <Py_ssize_t>pplx_json_quote(self.jtier, p, n - i)
        if stop > i and not self._b64_feed(s + i, stop - i, i):
            return n
        if stop == n:
            return n
        if s[stop] == c'\\':
            self.ret_state = S_STRING
            self.state = S_ESCAPE
            return stop + 1
        # closing quote
        self._embedding_end(stop)
        self._value_done(stop)
        return stop + 1

    cdef bint _b64_feed(self, const uint8_t *s, Py_ssize_t n, Py_ssize_t at) noexcept nogil:
        """Decode n more characters of the current embedding (any count; up to
        3 are carried to the next call)."""
        cdef Py_ssize_t take, full
        if self.padded:
            self._b64_error(PPLX_B64_BADPAD, s[0], self.emb_chars, at)
            return False
        if self.ncarry:
            take = min(4 - self.ncarry, n)
            memcpy(self.carry + self.ncarry, s, take)
            self.ncarry += take
            s += take
            n -= take
            at += take
            if self.ncarry < 4:
                return True
            self.ncarry = 0
            if not self._b64_decode(self.carry, 4, at - 4):
                return False
            if n and self.padded:
                self._b64_error(PPLX_B64_BADPAD, s[0], self.emb_chars, at)
                return False
        full = n - n % 4
        if full and not self._b64_decode(s, full, at):
            return False
        memcpy(self.carry, s + full, n - full)
        self.ncarry = <int>(n - full)
        return True

    cdef bint _b64_decode(self, const uint8_t *s, Py_ssize_t n, Py_ssize_t at) noexcept nogil:
        """Decode n (a multiple of 4) characters into the row."""
        cdef size_t err = 0
        cdef ptrdiff_t want = pplx_b64_decoded_len(s, n), got
        if self.emb_pos + want > self.width:
            self.err_value = -1  # more than width: how much more is not known yet
            self._fail(E_LENGTH, at)
            return False
        got = T[0].b64_decode(s, n, self.emb_dst + self.emb_pos, &err)
        if got < 0:
            self._b64_error(<int>got, s[err] if <Py_ssize_t>err < n else 0, self.emb_chars + err, at + err)
            return False
        self.emb_pos += got
        self.emb_chars += n
        if s[n - 1] == c'=':
            self.padded = True
        return True

    cdef void _b64_error(self, int code, uint8_t ch, Py_ssize_t offset, Py_ssize_t at) noexcept nogil:
        self.err_b64 = code
        self.err_char = ch
        self.err_char_offset = offset
        self._fail(E_B64, at)

    cdef void _embedding_start(self, Py_ssize_t at) noexcept nogil:
        cdef int64_t row = self._row_of(self.item_index, at)
        self.emb_pos = 0
        self.emb_chars = 0
        self.ncarry = 0
        self.padded = False
        if row >= 0:
            if self.seen[row]:  # marked when complete (_embedding_end): a row is never reported half-written
                self.err_value = row
                self._fail(E_DUPLICATE_ROW, at)
                return
            self.emb_row = row
            self.emb_dst = self.rows + row * self.width
            self.emb_in_scratch = False
        elif row == -1:  # index (or document index) not known yet
            self.emb_dst = self._scratch_row(at)
            self.emb_in_scratch = True

    cdef void _embedding_end(self, Py_ssize_t at) noexcept nogil:
        if self.ncarry:
            self.err_b64 = PPLX_B64_BADLEN
            self.err_char = 0
            self.err_char_offset = self.emb_chars + self.ncarry
            self._fail(E_B64, at)
            return
        if self.emb_pos != self.width:
            self.err_value = self.emb_pos
            self._fail(E_LENGTH, at)
            return
        self.item_has_embedding = True
        if not self.emb_in_scratch:
            self.seen[self.emb_row] = 1
            self.nseen += 1

    cdef int64_t _row_of(self, int64_t index, Py_ssize_t at) noexcept nogil:
        """The output row of chunk/item `index` in the current document; -1 if
        not known yet; -2 after reporting an out-of-range index."""
        if index < 0:
            return -1
        if not self.contextual:
            if index >= self.nrows:
                self.err_value = index
                self.err_limit = self.nrows
                self._fail(E_INDEX_RANGE, at)
                return -2
            return index
        if self.doc_index < 0:
            return -1
        if index >= self.doc_start[self.doc_index + 1] - self.doc_start[self.doc_index]:
            self.err_value = index
            self.err_limit = self.doc_start[self.doc_index + 1] - self.doc_start[self.doc_index]
            self._fail(E_INDEX_RANGE, at)
            return -2
        return self.doc_start[self.doc_index] + index

    cdef bint _claim(self, int64_t row, Py_ssize_t at) noexcept nogil:
        if self.seen[row]:
            self.err_value = row
            self._fail(E_DUPLICATE_ROW, at)
            return False
        self.seen[row] = 1
        self.nseen += 1
        return True

    cdef uint8_t *_scratch_row(self, Py_ssize_t at) noexcept nogil:
        cdef Py_ssize_t cap
        cdef uint8_t *b
        cdef int64_t *pc
        cdef int64_t *pd
        if self.contextual and self.scratch_rows >= self.max_doc_rows:
            # chunks waiting for their document's index: more than any document
            # of the request has can only be an error, and would grow without bound
            # (flat, a scratch row is freed when its item closes: there is one at most)
            self._fail(E_TOO_MANY_CHUNKS, at)
            return self.rows  # never written: the error stops the scan
        if self.scratch_rows == self.scratch_cap:
            cap = max(4, 2 * self.scratch_cap)
            if self.contextual:
                cap = min(cap, self.max_doc_rows)
            b = <uint8_t *>realloc(self.scratch, cap * self.width)
            if b != NULL:
                self.scratch = b
            pc = <int64_t *>realloc(self.pending_chunk, cap * sizeof(int64_t))
            if pc != NULL:
                self.pending_chunk = pc
            pd = <int64_t *>realloc(self.pending_doc, cap * sizeof(int64_t))
            if pd != NULL:
                self.pending_doc = pd
            if b == NULL or pc == NULL or pd == NULL:
                self._fail(E_NO_MEMORY, at)
                return self.rows  # never written: the error stops the scan
            self.scratch_cap = cap
        self.pending_chunk[self.scratch_rows] = -1
        self.pending_doc[self.scratch_rows] = -1
        self.scratch_rows += 1
        return self.scratch + (self.scratch_rows - 1) * self.width

    cdef void _flush_scratch(self, Py_ssize_t at) noexcept nogil:
        """Copy scratch rows whose place is now known (the document index arrived)."""
        cdef Py_ssize_t r
        cdef int64_t row
        for r in range(self.scratch_rows):
            row = self._row_of(self.pending_chunk[r], at)
            if row == -2:
                return
            if not self._claim(row, at):
                return
            memcpy(self.rows + row * self.width, self.scratch + r * self.width, self.width)
        self.scratch_rows = 0

    # ------------------------------------------------------------------ structure

    cdef void _open(self, uint8_t kind, Py_ssize_t at) noexcept nogil:
        """A '{' or '[' starts the value of the current key/element."""
        cdef int parent = self.role[self.depth]
        cdef int k = self.key_role[self.depth] if self.depth else K_OTHER
        cdef int r = R_SKIP
        if self.depth >= MAX_DEPTH:
            self._fail(E_DEPTH, at)
            return
        if self.depth == 0:
            if kind != c'{':
                self._fail(E_SHAPE, at)
                return
            r = R_ROOT
        elif parent == R_ROOT and k == K_DATA:
            if kind != c'[':
                self._fail(E_SHAPE, at)
                return
            r = R_DATA
        elif parent == R_DATA or parent == R_CHUNKS:
            if kind != c'{':
                self._fail(E_SHAPE, at)
                return
            if parent == R_DATA and self.contextual:
                r = R_DOC
                self.doc_number += 1
                self.doc_index = -1
                self.scratch_rows = 0
            else:
                r = R_ITEM
                self.item_number += 1
                self.item_index = -1
                self.item_has_embedding = False
        elif parent == R_DOC and k == K_DATA:
            if kind != c'[':
                self._fail(E_SHAPE, at)
                return
            r = R_CHUNKS
        elif (parent == R_ITEM or parent == R_DOC) and k != K_OTHER:
            self._fail(E_SHAPE, at)  # index/embedding must be a scalar
            return
        self.depth += 1
        self.ctype[self.depth] = kind
        self.role[self.depth] = r
        self.key_role[self.depth] = K_OTHER
        self.keys_seen[self.depth] = 0
        self._after_comma = False
        self.state = S_KEY_OR_CLOSE if kind == c'{' else S_VALUE

    cdef void _close(self, Py_ssize_t at) noexcept nogil:
        cdef int r = self.role[self.depth]
        cdef int64_t row
        if r == R_ITEM:
            if self.item_index < 0:
                self.err_value = 0
                self._fail(E_MISSING_FIELD, at)
                return
            if not self.item_has_embedding:
                self.err_value = 1
                self._fail(E_MISSING_FIELD, at)
                return
            if self.emb_in_scratch:
                if self.contextual and self.doc_index < 0:
                    self.pending_chunk[self.scratch_rows - 1] = self.item_index
                else:
                    row = self._row_of(self.item_index, at)
                    if row < 0 or not self._claim(row, at):
                        return
                    memcpy(self.rows + row * self.width, self.scratch + (self.scratch_rows - 1) * self.width,
                           self.width)
                    self.scratch_rows -= 1
        elif r == R_DOC:
            if self.doc_index < 0:
                self.err_value = 2
                self._fail(E_MISSING_FIELD, at)
                return
        elif r == R_DATA or r == R_ROOT:
            pass
        self.depth -= 1
        self._value_done(at)

    cdef void _value_done(self, Py_ssize_t at, bint inclusive=True) noexcept nogil:
        """A value ended at byte `at` (inclusive) or just before it (numbers,
        which end at the first byte that is not part of them)."""
        if self.state == S_ERROR:
            return
        self.state = S_AFTER_VALUE if self.depth > 0 else S_DONE
        if self.capturing and self.depth == 1:
            self._end_capture(at + 1 if inclusive else at)

    cdef void _key_done(self, Py_ssize_t at) noexcept nogil:
        """Classify the key just read in the object at the current depth."""
        cdef int r = self.role[self.depth]
        cdef int k = K_OTHER
        if not self.key_long:
            if self.key_len == 4 and self.key[0] == c'd' and self.key[1] == c'a' and self.key[2] == c't' \
                    and self.key[3] == c'a':
                k = K_DATA
            elif self.key_len == 5 and self.key[0] == c'i' and self.key[1] == c'n' and self.key[2] == c'd' \
                    and self.key[3] == c'e' and self.key[4] == c'x':
                k = K_INDEX
            elif self.key_len == 9 and self.key[0] == c'e' and self.key[1] == c'm' and self.key[2] == c'b' \
                    and self.key[3] == c'e' and self.key[4] == c'd' and self.key[5] == c'd' \
                    and self.key[6] == c'i' and self.key[7] == c'n' and self.key[8] == c'g':
                k = K_EMBEDDING
        if r == R_ROOT:
            k = K_DATA if k == K_DATA else K_CAPTURE
            if k == K_DATA:
                self.cap_len = self.cap_rec  # not kept: its value is the rows
            elif self.cap_len > CAPTURE_MAX:  # the key had slack in case it was "data"
                self._fail(E_CAPTURE_SIZE, at)
                return
        elif r == R_ITEM:
            k = k if (k == K_INDEX or k == K_EMBEDDING) else K_OTHER
        elif r == R_DOC:
            k = k if (k == K_INDEX or k == K_DATA) else K_OTHER
        else:
            k = K_OTHER
        if k != K_OTHER and k != K_CAPTURE:
            if self.keys_seen[self.depth] & (1 << k):
                self._fail(E_DUPLICATE_KEY, at)
                return
            self.keys_seen[self.depth] |= (1 << k)
        self.key_role[self.depth] = k
        self.state = S_COLON

    cdef void _begin_value(self, uint8_t c, const uint8_t *s, Py_ssize_t at) noexcept nogil:
        """First byte of a value in state S_VALUE."""
        cdef int parent = self.role[self.depth]
        if not (c == c'{' or c == c'[' or c == c'"' or c == c'-' or (c >= c'0' and c <= c'9') or
                c == c't' or c == c'f' or c == c'n'):
            self._fail(E_SYNTAX, at)
            return
        cdef int k = self.key_role[self.depth] if self.depth else K_OTHER
        self.value_role = K_OTHER
        if self.depth > 0 and self.ctype[self.depth] == c'{':
            self.value_role = k
        if self.depth == 1 and k == K_CAPTURE and not self.capturing:
            # the buffer already holds the raw key and its separator
            self.capturing = True
            self.cap_from = at
        if c == c'{' or c == c'[':
            if self.depth > 0 and self.ctype[self.depth] == c'[' and \
                    (parent == R_DATA or parent == R_CHUNKS) and c != c'{':
                self._fail(E_SHAPE, at)
                return
            self._open(c, at)
            return
        if self.depth == 0:
            self._fail(E_SHAPE, at)
            return
        if (parent == R_DATA or parent == R_CHUNKS) or (parent == R_ROOT and k == K_DATA) or \
                (parent == R_DOC and k == K_DATA):
            self._fail(E_SHAPE, at)  # data / chunks / their elements must be containers
            return
        if c == c'"':
            self.state = S_STRING
            if self.value_role == K_EMBEDDING:
                self.purpose = P_EMBEDDING
                self._embedding_start(at)
            elif self.value_role == K_INDEX:
                self._fail(E_INDEX_TYPE, at)
            else:
                self.purpose = P_OTHER
            return
        if c == c'-' or (c >= c'0' and c <= c'9'):
            if self.value_role == K_EMBEDDING:
                self._fail(E_SHAPE, at)
                return
            self.state = S_NUMBER
            self.num_value = 0
            self.num_integer = True
            self.num_big = False
            self.num_negative = c == c'-'
            if c == c'-':
                self.num_state = N_SIGN
            elif c == c'0':
                self.num_state = N_ZERO
            else:
                self.num_state = N_INT
                self.num_value = c - c'0'
            return
        if c == c't' or c == c'f' or c == c'n':
            if self.value_role == K_INDEX:
                self._fail(E_INDEX_TYPE, at)
                return
            if self.value_role == K_EMBEDDING:
                self._fail(E_SHAPE, at)
                return
            self.literal = b"true" if c == c't' else (b"false" if c == c'f' else b"null")
            self.literal_pos = 1
            self.state = S_LITERAL
            return
        self._fail(E_SYNTAX, at)

    cdef void _number_done(self, Py_ssize_t at) noexcept nogil:
        cdef int64_t row
        if self.value_role == K_INDEX:
            if not self.num_integer or self.num_negative:
                self._fail(E_INDEX_TYPE, at)
                return
            if self.num_big:
                self.num_value = INT64_MAX  # out of range whatever the limit
            if self.role[self.depth] == R_DOC:
                if self.num_value >= self.ndocs:
                    self.err_value = self.num_value
                    self.err_limit = self.ndocs
                    self._fail(E_INDEX_RANGE, at)
                    return
                if self.doc_seen[self.num_value]:
                    self.err_value = self.num_value
                    self._fail(E_DUPLICATE_DOC, at)
                    return
                self.doc_seen[self.num_value] = 1
                self.doc_index = self.num_value
                self._flush_scratch(at)
            else:
                self.item_index = self.num_value
                if not self.contextual and self.item_index >= self.nrows:
                    self.err_value = self.item_index
                    self.err_limit = self.nrows
                    self._fail(E_INDEX_RANGE, at)
                    return
        self._value_done(at, False)

    cdef void _step(self, uint8_t c, const uint8_t *s, Py_ssize_t at) noexcept nogil:
        cdef int st = self.state
        if st == S_VALUE:
            if self._ws(c):
                return
            if c == c']' and self.depth > 0 and self.ctype[self.depth] == c'[' and self._empty_array_ok():
                self._close(at)
                return
            self._begin_value(c, s, at)
        elif st == S_AFTER_VALUE:
            if self._ws(c):
                return
            if c == c',':
                self.state = S_KEY if self.ctype[self.depth] == c'{' else S_VALUE
                self._after_comma = True
            elif (c == c'}' and self.ctype[self.depth] == c'{') or (c == c']' and self.ctype[self.depth] == c'['):
                self._close(at)
            else:
                self._fail(E_SYNTAX, at)
        elif st == S_KEY_OR_CLOSE or st == S_KEY:
            if self._ws(c):
                return
            if c == c'"':
                self.state = S_STRING
                self.purpose = P_KEY
                self.key_len = 0
                self.key_long = False
                if self.depth == 1:  # a top-level key: keep its raw text to name a captured field
                    self.cap_rec = self.cap_len
                    self.key_capturing = True
                    self.cap_from = at + 1
            elif c == c'}' and st == S_KEY_OR_CLOSE:
                self._close(at)
            else:
                self._fail(E_SYNTAX, at)
        elif st == S_COLON:
            if self._ws(c):
                return
            if c == c':':
                self.state = S_VALUE
                self._after_comma = False
            else:
                self._fail(E_SYNTAX, at)
        elif st == S_STRING:
            if self.u8_need and c < 0x80:
                self._fail(E_UTF8, at)
                return
            if c == c'"':
                if self.purpose == P_KEY:
                    if self.key_capturing:
                        self.key_capturing = False
                        if not self._capture(self.chunk + self.cap_from, at - self.cap_from, True) or \
                                not self._capture_sep(True):
                            self._fail(E_CAPTURE_SIZE, at)
                            return
                    self._key_done(at)
                else:
                    self._value_done(at)
            elif c == c'\\':
                self.ret_state = S_STRING
                self.state = S_ESCAPE
            elif c < 0x20:
                self._fail(E_SYNTAX, at)  # raw control characters are not allowed in JSON strings
            elif c >= 0x80:
                self._utf8_byte(c, at)
                if self.purpose == P_KEY:
                    self.key_long = True  # not one of the (ASCII) keys we look for
            elif self.purpose == P_KEY:
                self._key_char(c)
        elif st == S_ESCAPE:
            if c == c'u':
                self.state = S_UNICODE
                self.uni_count = 0
                self.uni_value = 0
                return
            if c == c'"' or c == c'\\' or c == c'/':
                pass
            elif c == c'b':
                c = 8
            elif c == c'f':
                c = 12
            elif c == c'n':
                c = 10
            elif c == c'r':
                c = 13
            elif c == c't':
                c = 9
            else:
                self._fail(E_SYNTAX, at)
                return
            self.state = S_STRING
            self._string_char(c, at)
        elif st == S_UNICODE:
            if c >= c'0' and c <= c'9':
                self.uni_value = self.uni_value * 16 + (c - c'0')
            elif c >= c'a' and c <= c'f':
                self.uni_value = self.uni_value * 16 + (c - c'a' + 10)
            elif c >= c'A' and c <= c'F':
                self.uni_value = self.uni_value * 16 + (c - c'A' + 10)
            else:
                self._fail(E_SYNTAX, at)
                return
            self.uni_count += 1
            if self.uni_count == 4:
                self.state = S_STRING
                # only ASCII matters to us: non-ASCII in a key makes it unknown,
                # in an embedding it is an invalid base64 character
                self._string_char(<uint8_t>self.uni_value if self.uni_value < 128 else 0xFF, at)
        elif st == S_NUMBER:
            self._number_char(c, s, at)
        elif st == S_LITERAL:
            if c != <uint8_t>self.literal[self.literal_pos]:
                self._fail(E_SYNTAX, at)
                return
            self.literal_pos += 1
            if self.literal[self.literal_pos] == 0:
                self._value_done(at)
        elif st == S_DONE:
            if not self._ws(c):
                self._fail(E_TRAILING, at)

    cdef bint _empty_array_ok(self) noexcept nogil:
        # ']' right after '[' (an empty array) but not after a ',' ("[1,]")
        return not self._after_comma

    cdef void _utf8_byte(self, uint8_t c, Py_ssize_t at) noexcept nogil:
        """Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing
        above U+10FFFF, as json.loads decoding the body as UTF-8 would demand."""
        if self.u8_need:
            if c < self.u8_lo or c > self.u8_hi:
                self._fail(E_UTF8, at)
                return
            self.u8_need -= 1
            self.u8_lo = 0x80
            self.u8_hi = 0xBF
            return
        self.u8_lo = 0x80
        self.u8_hi = 0xBF
        if 0xC2 <= c <= 0xDF:
            self.u8_need = 1
        elif 0xE0 <= c <= 0xEF:
            self.u8_need = 2
            if c == 0xE0:
                self.u8_lo = 0xA0
            elif c == 0xED:
                self.u8_hi = 0x9F
        elif 0xF0 <= c <= 0xF4:
            self.u8_need = 3
            if c == 0xF0:
                self.u8_lo = 0x90
            elif c == 0xF4:
                self.u8_hi = 0x8F
        else:
            self._fail(E_UTF8, at)

    cdef void _key_char(self, uint8_t c) noexcept nogil:
        if self.key_len < KEY_MAX:
            self.key[self.key_len] = <char>c
            self.key_len += 1
        else:
            self.key_long = True

    cdef void _string_char(self, uint8_t c, Py_ssize_t at) noexcept nogil:
        """One character produced by an escape."""
        if self.purpose == P_KEY:
            if c == 0xFF:
                self.key_long = True  # non-ASCII: not a key we know
            else:
                self._key_char(c)
        elif self.purpose == P_EMBEDDING:
            self._b64_feed(&c, 1, at)

    cdef void _number_char(self, uint8_t c, const uint8_t *s, Py_ssize_t at) noexcept nogil:
        cdef int ns = self.num_state
        cdef bint digit = c >= c'0' and c <= c'9'
        if ns == N_SIGN:
            if c == c'0':
                self.num_state = N_ZERO
            elif digit:
                self.num_state = N_INT
                self.num_value = c - c'0'
            else:
                self._fail(E_SYNTAX, at)
            return
        if ns == N_INT and digit:
            if self.num_value > 100000000000000LL:
                self.num_big = True
            else:
                self.num_value = self.num_value * 10 + (c - c'0')
            return
        if (ns == N_ZERO or ns == N_INT) and c == c'.':
            self.num_state = N_DOT
            self.num_integer = False
            return
        if (ns == N_ZERO or ns == N_INT or ns == N_FRAC) and (c == c'e' or c == c'E'):
            self.num_state = N_EXP
            self.num_integer = False
            return
        if ns == N_DOT:
            if digit:
                self.num_state = N_FRAC
            else:
                self._fail(E_SYNTAX, at)
            return
        if ns == N_FRAC and digit:
            return
        if ns == N_EXP:
            if c == c'+' or c == c'-':
                self.num_state = N_EXP_SIGN
            elif digit:
                self.num_state = N_EXP_DIGITS
            else:
                self._fail(E_SYNTAX, at)
            return
        if ns == N_EXP_SIGN:
            if digit:
                self.num_state = N_EXP_DIGITS
            else:
                self._fail(E_SYNTAX, at)
            return
        if ns == N_EXP_DIGITS and digit:
            return
        # The number ended at a complete state: this byte belongs to what follows.
        if ns == N_ZERO or ns == N_INT or ns == N_FRAC or ns == N_EXP_DIGITS:
            self._number_done(at)
            if self.state != S_ERROR:
                self._step(c, s, at)
        else:
            self._fail(E_SYNTAX, at)


# ---------------------------------------------------------------- tests only

_JSON_TIERS = ("serial", "sse2", "avx2", "neon")  # PPLX_JSON_* order
# (asked once: CPUID traps to the hypervisor in a VM)
_JSON_USABLE = tuple(bool(pplx_json_tier_usable(t)) for t in range(len(_JSON_TIERS)))


def _json_tier():
    """The byte scanners' tier the active kernel table selects (what feed() runs)."""
    return _JSON_TIERS[pplx_json_tier(T[0].isa)]


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
