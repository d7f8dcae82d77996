# The contract of StreamDecoder (_stream.pyx): its states, the decoder's
# fields and the signature of every C function of the scan, stated before any
# behaviour (as asyncpg's coreproto.pxd and py-pgproto's frb.pxd do).
#
# The behaviour is C functions over the decoder, `_fn(StreamDecoder self,
# ...)`, rather than cdef methods: Cython takes a class's methods only from its
# own body, and an `include` is not allowed there, so methods could not be
# split into parts (_stream.pyx says which part holds what).  The class is
# final and every part is `include`d into the one module: the calls are the
# same direct C calls, in the same translation unit, as the methods' were.
# (Being declared here, Cython also lists the functions in the module's
# __pyx_capi__; nothing cimports them.)
cimport cython
cimport numpy as cnp
from libc.stdint cimport uint8_t, int64_t

# The byte scanners and literal compare of simd/json (the tier follows the
# active kernel table).
cdef extern from "simd/json/json.h" nogil:
    int pplx_json_tier(int isa)
    bint pplx_json_tier_usable(int tier)
    size_t pplx_json_special(int tier, const uint8_t *s, size_t n)
    size_t pplx_json_quote(int tier, const uint8_t *s, size_t n)
    bint pplx_json_same(const uint8_t *p, const char *lit, size_t n)


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
    # An `index` above 10**15 + 9 (num_big) is out of range for any request;
    # its message names it with the digits as sent, up to INDEX_SHOWN of them
    # (a longer one is cut, with its length): num_value holds the first 15
    # or 16, big_digits up to BIG_DIGITS after them.
    INDEX_SHOWN = 64
    BIG_DIGITS = INDEX_SHOWN - 15

# Separates keys and values in the capture buffer: a byte that valid UTF-8
# (hence any text the scanner lets through) never contains.
cdef enum:
    SEP = 0xFF

cdef enum:  # error codes (details in the decoder's err_* fields; the text in _raise)
    E_NONE, E_SYNTAX, E_DEPTH, E_SHAPE, E_INDEX_TYPE, E_INDEX_RANGE, E_DUPLICATE_ROW, E_DUPLICATE_KEY,
    E_B64, E_LENGTH, E_MISSING_FIELD, E_TRAILING, E_NO_MEMORY, E_CAPTURE_SIZE, E_UTF8, E_DUPLICATE_DOC,
    E_TOO_MANY_CHUNKS, E_INDEX_BIG


ctypedef ptrdiff_t (*b64_decode_fn)(const uint8_t *, size_t, uint8_t *, size_t *) noexcept nogil

# What a run of items (_items_loop) committed
cdef struct items_run:
    int64_t count           # items decoded and marked
    int64_t last_index      # the `index` of the last one
    Py_ssize_t done         # the byte after its '}'
    int pad                 # '=' a row's base64 ends with


@cython.final
cdef class StreamDecoder:
    # The fields the byte state machine reads on every byte (lexer state,
    # then the container stack) come first: placed after the output fields,
    # the bytewise scan of pretty-printed bodies measured 5-10% slower for
    # the same instructions.

    # ---- lexer state (_stream_lex.pxi): where in the JSON grammar the scan is
    cdef int state, ret_state    # S_*; ret_state: the state an escape returns to
    cdef int purpose             # P_*: what the string being scanned is for
    cdef char key[KEY_MAX]       # the key being read (its first KEY_MAX bytes)
    cdef int key_len
    cdef bint key_long           # longer than KEY_MAX or not ASCII: not a key we look for
    cdef int num_state           # N_*
    cdef int64_t num_value
    cdef bint num_integer, num_negative, num_big
    cdef const char *literal     # "true", "false" or "null", and how much of it was seen
    cdef int literal_pos
    cdef int uni_count           # hex digits of a \u escape seen, and their value
    cdef unsigned uni_value
    cdef int u8_need             # continuation bytes still due in a UTF-8 sequence
    cdef uint8_t u8_lo, u8_hi    # the range the next one must fall in
    cdef bint _after_comma       # the S_VALUE state was entered by ','

    # ---- structure (_stream_struct.pxi): the stack of containers and what each is
    cdef int depth
    cdef uint8_t ctype[MAX_DEPTH + 1]       # '{' or '['
    cdef uint8_t role[MAX_DEPTH + 1]        # R_*
    cdef uint8_t key_role[MAX_DEPTH + 1]    # K_* of the key last read in each object
    cdef uint8_t keys_seen[MAX_DEPTH + 1]   # bit per K_* for duplicate detection in items/docs
    cdef int value_role                     # K_* of the value being scanned (numbers, strings)

    # ---- the output and the request's shape (set by __init__, then fixed)
    cdef cnp.ndarray out
    cdef uint8_t *rows
    cdef Py_ssize_t nrows, width
    cdef Py_ssize_t enc_len                 # base64 length of a full row
    cdef bint contextual
    cdef int64_t *doc_start      # row of each document's first chunk; ndocs + 1 entries
    cdef Py_ssize_t ndocs
    cdef Py_ssize_t max_doc_rows # chunks of the largest document: the most scratch rows a valid body needs
    cdef uint8_t *seen           # rows written (one byte per row), marked when complete
    cdef Py_ssize_t nseen        # how many: rows_done
    cdef uint8_t *doc_seen       # documents whose index has arrived

    # ---- the call in progress
    cdef bint busy               # a call is inside feed() (maybe without the GIL): see _check_idle
    cdef int jtier               # tier of the byte scanners (simd/json), from the active table per feed()
    cdef Py_ssize_t run_items    # items decoded by _items_run (for tests: see _run_items)
    cdef Py_ssize_t consumed     # bytes of the body fed before the current chunk
    cdef const uint8_t *chunk    # the chunk being scanned

    # ---- placement (_stream_rows.pxi): the item (data[i] or a chunk) and document being scanned
    cdef int64_t item_index, doc_index      # their `index`, -1 until read
    cdef int64_t item_number, doc_number    # their position in the body (for error messages)
    cdef bint item_has_embedding
    # rows waiting for their index (scratch) and where they go
    cdef uint8_t *scratch
    cdef Py_ssize_t scratch_rows, scratch_cap
    cdef int64_t *pending_chunk             # chunk index of each scratch row

    # ---- the embedding being decoded (_stream_b64.pxi), with its base64 carry-over
    cdef uint8_t *emb_dst                   # its row: in `out`, or a scratch row
    cdef bint emb_in_scratch
    cdef int64_t emb_row                    # the row of `out` (not in scratch)
    cdef Py_ssize_t emb_pos, emb_chars      # bytes written, base64 characters decoded
    cdef uint8_t carry[4]                   # characters of an incomplete quad, for the next run
    cdef int ncarry
    cdef bint padded                        # the last quad decoded ended in '='

    # ---- capture (_stream_struct.pxi): raw top-level keys and values other than data,
    # parsed at finish(): key SEP value SEP key SEP value SEP ...
    cdef bint capturing, key_capturing
    cdef uint8_t *cap
    cdef Py_ssize_t cap_len, cap_cap
    cdef Py_ssize_t cap_rec                 # where the field being read starts in the buffer
    cdef Py_ssize_t cap_from                # where the captured value resumes in the chunk

    # ---- errors: the first one, with what _raise needs to word it
    cdef int err                            # E_*
    cdef Py_ssize_t err_at                  # its byte in the chunk
    cdef int64_t err_value, err_limit
    cdef int err_b64                        # PPLX_B64_*, the character and its offset in the string
    cdef uint8_t err_char
    cdef Py_ssize_t err_char_offset
    # the digits of an integer past num_value's (kept for E_INDEX_BIG; written
    # only past 15 digits, so they are here, away from the fields of the byte loop)
    cdef Py_ssize_t big_ndigits
    cdef char big_digits[BIG_DIGITS]

    # ---- after a successful finish(): the response is decoded, and the
    # decoder takes no more calls that would change it (feed(), finish())
    cdef bint finished


# ---- errors and the guard (_stream.pyx)
cdef object _check_idle(StreamDecoder self, str what)
cdef object _check_unfinished(StreamDecoder self, str what)
cdef void _fail(StreamDecoder self, int code, Py_ssize_t at) noexcept nogil
cdef object _raise(StreamDecoder self)
cdef str _index_text(StreamDecoder self)
cdef str _expected_none(StreamDecoder self)

# ---- lexer (_stream_lex.pxi)
cdef bint _ws(uint8_t c) noexcept nogil
cdef void _scan(StreamDecoder self, const uint8_t *s, Py_ssize_t n) noexcept nogil
cdef void _step(StreamDecoder self, uint8_t c, const uint8_t *s, Py_ssize_t at) noexcept nogil
cdef bint _empty_array_ok(StreamDecoder self) noexcept nogil
cdef void _utf8_byte(StreamDecoder self, uint8_t c, Py_ssize_t at) noexcept nogil
cdef void _key_run(StreamDecoder self, const uint8_t *p, Py_ssize_t n) noexcept nogil
cdef void _key_char(StreamDecoder self, uint8_t c) noexcept nogil
cdef void _string_char(StreamDecoder self, uint8_t c, Py_ssize_t at) noexcept nogil
cdef void _number_char(StreamDecoder self, uint8_t c, const uint8_t *s, Py_ssize_t at) noexcept nogil
cdef void _big_digit(StreamDecoder self, uint8_t c) noexcept nogil

# ---- structure and capture (_stream_struct.pxi)
cdef void _open(StreamDecoder self, uint8_t kind, Py_ssize_t at) noexcept nogil
cdef void _close(StreamDecoder self, Py_ssize_t at) noexcept nogil
cdef void _value_done(StreamDecoder self, Py_ssize_t at, bint inclusive=*) noexcept nogil
cdef void _key_done(StreamDecoder self, Py_ssize_t at) noexcept nogil
cdef void _begin_value(StreamDecoder self, uint8_t c, const uint8_t *s, Py_ssize_t at) noexcept nogil
cdef bint _capture(StreamDecoder self, const uint8_t *p, Py_ssize_t n, bint key=*) noexcept nogil
cdef bint _capture_sep(StreamDecoder self, bint key=*) noexcept nogil
cdef void _end_capture(StreamDecoder self, Py_ssize_t end) noexcept nogil

# ---- index and row placement, and the runs of items (_stream_rows.pxi)
cdef bint _index_in_range(StreamDecoder self, int64_t index, int64_t limit, Py_ssize_t at) noexcept nogil
cdef int64_t _index_limit(StreamDecoder self) noexcept nogil
cdef bint _item_index_read(StreamDecoder self, int64_t index, Py_ssize_t at) noexcept nogil
cdef void _number_done(StreamDecoder self, Py_ssize_t at) noexcept nogil
cdef void _big_index(StreamDecoder self, Py_ssize_t at) noexcept nogil
cdef int64_t _row_of(StreamDecoder self, int64_t index, Py_ssize_t at) noexcept nogil
cdef bint _claim(StreamDecoder self, int64_t row, Py_ssize_t at) noexcept nogil
cdef uint8_t *_scratch_row(StreamDecoder self, Py_ssize_t at) noexcept nogil
cdef void _flush_scratch(StreamDecoder self, Py_ssize_t at) noexcept nogil
cdef void _items_loop(const uint8_t *s, Py_ssize_t n, Py_ssize_t j, const char *mid, Py_ssize_t ml,
                      const char *between, Py_ssize_t bl, Py_ssize_t enc, Py_ssize_t w, int64_t base,
                      int64_t limit, uint8_t *seen, uint8_t *rows, b64_decode_fn decode,
                      items_run *r) noexcept nogil
cdef Py_ssize_t _items_run(StreamDecoder self, const uint8_t *s, Py_ssize_t n, Py_ssize_t i) noexcept nogil
cdef Py_ssize_t _item_fast(StreamDecoder self, const uint8_t *s, Py_ssize_t n, Py_ssize_t i) noexcept nogil

# ---- embeddings: their row, and base64 carried over chunk boundaries (_stream_b64.pxi)
cdef void _embedding_start(StreamDecoder self, Py_ssize_t at) noexcept nogil
cdef void _embedding_end(StreamDecoder self, Py_ssize_t at) noexcept nogil
cdef Py_ssize_t _embedding_run(StreamDecoder self, const uint8_t *s, Py_ssize_t n, Py_ssize_t i) noexcept nogil
cdef bint _plain_tail(const uint8_t *p, Py_ssize_t n) noexcept nogil
cdef bint _b64_feed(StreamDecoder self, const uint8_t *s, Py_ssize_t n, Py_ssize_t at) noexcept nogil
cdef bint _b64_decode(StreamDecoder self, const uint8_t *s, Py_ssize_t n, Py_ssize_t at) noexcept nogil
cdef void _b64_error(StreamDecoder self, int code, uint8_t ch, Py_ssize_t offset, Py_ssize_t at) noexcept nogil
