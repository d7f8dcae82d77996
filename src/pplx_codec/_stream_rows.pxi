# `index` and rows, for StreamDecoder (included by _stream.pyx): the one
# range rule of an index, where an item's row is (index -> row, flat or by
# document), the scratch rows of items whose index (or whose document's
# index) comes after their embedding, and the fast path for runs of whole
# items in the service's layout (_items_run), which commits rows by the same
# rules and leaves the state machine where the bytewise scan would.


cdef inline bint _index_in_range(StreamDecoder self, int64_t index, int64_t limit, Py_ssize_t at) noexcept nogil:
    """The one range rule of an `index` (a data item's, a chunk's or a
    document's), whichever path read it: below `limit`, the count of what it
    may name.  Otherwise E_INDEX_RANGE at byte `at` of the chunk, the message
    naming the index and the limit.  (Negative never gets here: that is
    E_INDEX_TYPE; nor above 10**15 + 9: that is _big_index; _items_loop only
    ends its run where this would fail, and the general path then reports it
    here.)"""
    if index < limit:
        return True
    self.err_value = index
    self.err_limit = limit
    _fail(self, E_INDEX_RANGE, at)
    return False


cdef inline int64_t _index_limit(StreamDecoder self) noexcept nogil:
    """How many rows an item's `index` may name: the rows of `out` (flat), or
    the chunks of the current document; -1 while that document's index is
    not known."""
    if not self.contextual:
        return self.nrows
    if self.doc_index < 0:
        return -1
    return self.doc_start[self.doc_index + 1] - self.doc_start[self.doc_index]


cdef inline bint _item_index_read(StreamDecoder self, int64_t index, Py_ssize_t at) noexcept nogil:
    """An item's `index` was read, its digits ending before byte `at` (the
    state machine and _item_fast both pass that byte).  Flat, its row is
    known, so the index is checked now; contextualized, when its row is
    placed (_row_of), once its document's index is known too."""
    self.item_index = index
    return self.contextual or _index_in_range(self, index, _index_limit(self), at)


cdef void _number_done(StreamDecoder self, Py_ssize_t at) noexcept nogil:
    """A number ended before byte `at`.  An `index` takes effect here: a
    document's names its document (and places the chunks waiting in
    scratch), an item's its row."""
    if self.value_role == K_INDEX:
        if not self.num_integer or self.num_negative:
            _fail(self, E_INDEX_TYPE, at)
            return
        if self.num_big:
            _big_index(self, at)
            return
        if self.role[self.depth] == R_DOC:
            if not _index_in_range(self, self.num_value, self.ndocs, at):
                return
            if self.doc_seen[self.num_value]:
                self.err_value = self.num_value
                _fail(self, E_DUPLICATE_DOC, at)
                return
            self.doc_seen[self.num_value] = 1
            self.doc_index = self.num_value
            _flush_scratch(self, at)
        elif not _item_index_read(self, self.num_value, at):
            return
    _value_done(self, at, False)


cdef void _big_index(StreamDecoder self, Py_ssize_t at) noexcept nogil:
    """An `index` above 10**15 + 9 (num_big: 16 digits or more, more than
    num_value holds) ended before byte `at`: out of range for any request
    (none has 10**15 rows, documents or chunks), so it is reported now,
    wherever it is, rather than held as an int64 that would misname it.  The
    message names its digits (err_value and big_digits) and the range of
    what it names: documents, the rows of `out` (flat), the chunks of its
    document, or, while that document's index is not known, the chunks of
    the largest document of the request."""
    cdef int64_t limit
    if self.role[self.depth] == R_DOC:
        limit = self.ndocs
    else:
        limit = _index_limit(self)
        if limit < 0:
            limit = self.max_doc_rows
    self.err_value = self.num_value
    self.err_limit = limit
    _fail(self, E_INDEX_BIG, at)


cdef int64_t _row_of(StreamDecoder self, int64_t index, Py_ssize_t at) noexcept nogil:
    """The output row of chunk/item `index` in the current document; -1 if
    not known yet; -2 after reporting an out-of-range index."""
    cdef int64_t limit
    if index < 0:
        return -1
    limit = _index_limit(self)
    if limit < 0:
        return -1
    if not _index_in_range(self, index, limit, at):
        return -2
    return self.doc_start[self.doc_index] + index if self.contextual else index


cdef bint _claim(StreamDecoder self, int64_t row, Py_ssize_t at) noexcept nogil:
    """Mark a row copied from scratch filled; False after reporting it was already."""
    if self.seen[row]:
        self.err_value = row
        _fail(self, E_DUPLICATE_ROW, at)
        return False
    self.seen[row] = 1
    self.nseen += 1
    return True


cdef uint8_t *_scratch_row(StreamDecoder self, Py_ssize_t at) noexcept nogil:
    """A scratch row for an embedding whose row is not known yet."""
    cdef Py_ssize_t cap
    cdef uint8_t *b
    cdef int64_t *pc
    if self.contextual and self.scratch_rows >= self.max_doc_rows:
        # chunks waiting for their document's index: more than any document
        # of the request has can only be an error, and would grow without bound
        # (flat, a scratch row is freed when its item closes: there is one at most)
        _fail(self, E_TOO_MANY_CHUNKS, at)
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
        if b == NULL or pc == NULL:
            _fail(self, E_NO_MEMORY, at)
            return self.rows  # never written: the error stops the scan
        self.scratch_cap = cap
    self.pending_chunk[self.scratch_rows] = -1
    self.scratch_rows += 1
    return self.scratch + (self.scratch_rows - 1) * self.width


cdef void _flush_scratch(StreamDecoder self, Py_ssize_t at) noexcept nogil:
    """Copy scratch rows whose place is now known (the document index arrived)."""
    cdef Py_ssize_t r
    cdef int64_t row
    for r in range(self.scratch_rows):
        row = _row_of(self, self.pending_chunk[r], at)
        if row == -2:
            return
        if not _claim(self, row, at):
            return
        memcpy(self.rows + row * self.width, self.scratch + r * self.width, self.width)
    self.scratch_rows = 0


cdef inline void _items_loop(const uint8_t *s, Py_ssize_t n, Py_ssize_t j, const char *mid, Py_ssize_t ml,
                             const char *between, Py_ssize_t bl, Py_ssize_t enc, Py_ssize_t w, int64_t base,
                             int64_t limit, uint8_t *seen, uint8_t *rows, b64_decode_fn decode,
                             items_run *r) noexcept nogil:
    """_items_run's loop, j at the index digits of the first item
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
            return  # out of range (_index_in_range's rule): the general path reports it
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


cdef Py_ssize_t _items_run(StreamDecoder self, const uint8_t *s, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
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
    limit = _index_limit(self)
    if limit < 0:
        return i  # rows wait in scratch for the document's index: the general path
    base = self.doc_start[self.doc_index] if self.contextual else 0
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


cdef Py_ssize_t _item_fast(StreamDecoder self, const uint8_t *s, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
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
    _open(self, c'{', i)
    if self.state == S_ERROR:
        return n
    if not _item_index_read(self, v, j):  # j: the byte after the digits, as the state machine reports
        return n
    self.keys_seen[self.depth] = (1 << K_INDEX) | (1 << K_EMBEDDING)
    self.key_role[self.depth] = K_EMBEDDING
    self.value_role = K_EMBEDDING
    self.state = S_STRING
    self.purpose = P_EMBEDDING
    _embedding_start(self, j + ml - 1)
    return j + ml
