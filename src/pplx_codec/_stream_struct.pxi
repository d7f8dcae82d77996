# Structure, for StreamDecoder (included by _stream.pyx): the stack of
# containers and what each one is by where it sits (the root object, `data`,
# an item or a document, a document's chunks, or anything else, skipped),
# keys and the role of their values, where a value begins and ends, and the
# capture of the raw text of the top-level fields other than `data` (parsed
# by finish()).  Shape errors (E_SHAPE and the like) are found here.


cdef void _open(StreamDecoder self, uint8_t kind, Py_ssize_t at) noexcept nogil:
    """A '{' or '[' starts the value of the current key/element."""
    cdef int parent = self.role[self.depth]
    cdef int k = self.key_role[self.depth] if self.depth else K_OTHER
    cdef int r = R_SKIP
    if self.depth >= MAX_DEPTH:
        _fail(self, E_DEPTH, at)
        return
    if self.depth == 0:
        if kind != c'{':
            _fail(self, E_SHAPE, at)
            return
        r = R_ROOT
    elif parent == R_ROOT and k == K_DATA:
        if kind != c'[':
            _fail(self, E_SHAPE, at)
            return
        r = R_DATA
    elif parent == R_DATA or parent == R_CHUNKS:
        if kind != c'{':
            _fail(self, E_SHAPE, at)
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
            _fail(self, E_SHAPE, at)
            return
        r = R_CHUNKS
    elif (parent == R_ITEM or parent == R_DOC) and k != K_OTHER:
        _fail(self, E_SHAPE, at)  # index/embedding must be a scalar
        return
    self.depth += 1
    self.ctype[self.depth] = kind
    self.role[self.depth] = r
    self.key_role[self.depth] = K_OTHER
    self.keys_seen[self.depth] = 0
    self._after_comma = False
    self.state = S_KEY_OR_CLOSE if kind == c'{' else S_VALUE


cdef void _close(StreamDecoder self, Py_ssize_t at) noexcept nogil:
    """A '}' or ']' at byte `at` closes the current container: an item
    needs its index and embedding (a row in scratch is placed now if it
    can be), a document its index."""
    cdef int r = self.role[self.depth]
    cdef int64_t row
    if r == R_ITEM:
        if self.item_index < 0:
            self.err_value = 0
            _fail(self, E_MISSING_FIELD, at)
            return
        if not self.item_has_embedding:
            self.err_value = 1
            _fail(self, E_MISSING_FIELD, at)
            return
        if self.emb_in_scratch:
            if self.contextual and self.doc_index < 0:
                self.pending_chunk[self.scratch_rows - 1] = self.item_index
            else:
                row = _row_of(self, self.item_index, at)
                if row < 0 or not _claim(self, row, at):
                    return
                memcpy(self.rows + row * self.width, self.scratch + (self.scratch_rows - 1) * self.width,
                       self.width)
                self.scratch_rows -= 1
    elif r == R_DOC:
        if self.doc_index < 0:
            self.err_value = 2
            _fail(self, E_MISSING_FIELD, at)
            return
    elif r == R_DATA or r == R_ROOT:
        pass
    self.depth -= 1
    _value_done(self, at)


cdef void _value_done(StreamDecoder self, Py_ssize_t at, bint inclusive=True) noexcept nogil:
    """A value ended at byte `at` (inclusive) or just before it (numbers,
    which end at the first byte that is not part of them)."""
    if self.state == S_ERROR:
        return
    self.state = S_AFTER_VALUE if self.depth > 0 else S_DONE
    if self.capturing and self.depth == 1:
        _end_capture(self, at + 1 if inclusive else at)


cdef void _key_done(StreamDecoder self, Py_ssize_t at) noexcept nogil:
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
            _fail(self, E_CAPTURE_SIZE, at)
            return
    elif r == R_ITEM:
        k = k if (k == K_INDEX or k == K_EMBEDDING) else K_OTHER
    elif r == R_DOC:
        k = k if (k == K_INDEX or k == K_DATA) else K_OTHER
    else:
        k = K_OTHER
    if k != K_OTHER and k != K_CAPTURE:
        if self.keys_seen[self.depth] & (1 << k):
            _fail(self, E_DUPLICATE_KEY, at)
            return
        self.keys_seen[self.depth] |= (1 << k)
    self.key_role[self.depth] = k
    self.state = S_COLON


cdef void _begin_value(StreamDecoder self, uint8_t c, const uint8_t *s, Py_ssize_t at) noexcept nogil:
    """First byte of a value in state S_VALUE."""
    cdef int parent = self.role[self.depth]
    if not (c == c'{' or c == c'[' or c == c'"' or c == c'-' or (c >= c'0' and c <= c'9') or
            c == c't' or c == c'f' or c == c'n'):
        _fail(self, E_SYNTAX, at)
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
            _fail(self, E_SHAPE, at)
            return
        _open(self, c, at)
        return
    if self.depth == 0:
        _fail(self, E_SHAPE, at)
        return
    if (parent == R_DATA or parent == R_CHUNKS) or (parent == R_ROOT and k == K_DATA) or \
            (parent == R_DOC and k == K_DATA):
        _fail(self, E_SHAPE, at)  # data / chunks / their elements must be containers
        return
    if c == c'"':
        self.state = S_STRING
        if self.value_role == K_EMBEDDING:
            self.purpose = P_EMBEDDING
            _embedding_start(self, at)
        elif self.value_role == K_INDEX:
            _fail(self, E_INDEX_TYPE, at)
        else:
            self.purpose = P_OTHER
        return
    if c == c'-' or (c >= c'0' and c <= c'9'):
        if self.value_role == K_EMBEDDING:
            _fail(self, E_SHAPE, at)
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
            _fail(self, E_INDEX_TYPE, at)
            return
        if self.value_role == K_EMBEDDING:
            _fail(self, E_SHAPE, at)
            return
        self.literal = b"true" if c == c't' else (b"false" if c == c'f' else b"null")
        self.literal_pos = 1
        self.state = S_LITERAL
        return
    _fail(self, E_SYNTAX, at)


cdef bint _capture(StreamDecoder self, const uint8_t *p, Py_ssize_t n, bint key=False) noexcept nogil:
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


cdef bint _capture_sep(StreamDecoder self, bint key=False) noexcept nogil:
    cdef uint8_t sep = SEP
    return _capture(self, &sep, 1, key)


cdef void _end_capture(StreamDecoder self, Py_ssize_t end) noexcept nogil:
    """The captured value ends before byte `end` of the current chunk."""
    self.capturing = False
    if not _capture(self, self.chunk + self.cap_from, end - self.cap_from) or not _capture_sep(self):
        _fail(self, E_CAPTURE_SIZE, end)
