# The embedding strings, for StreamDecoder (included by _stream.pyx): where
# an embedding's row is when its string begins (in `out`, or a scratch row
# while its index is not known), its base64 handed to the active table's
# decoder run by run straight from the chunk, at most 3 characters of an
# incomplete quad carried over a chunk boundary, and the checks when the
# string ends (whole quads, exactly a row's bytes).  Base64 errors keep the
# kernel's code, the character and its offset in the string: _raise words
# them with b64_error_text (_kernels.pxd), as the kernels' callers do.


cdef void _embedding_start(StreamDecoder self, Py_ssize_t at) noexcept nogil:
    """The opening quote of an embedding, at byte `at`: its row, in `out` if
    its index (and its document's) is known, else a scratch row."""
    cdef int64_t row = _row_of(self, self.item_index, at)
    self.emb_pos = 0
    self.emb_chars = 0
    self.ncarry = 0
    self.padded = False
    if row >= 0:
        if self.seen[row]:  # marked when complete (_embedding_end): a row is never reported half-written
            self.err_value = row
            _fail(self, E_DUPLICATE_ROW, at)
            return
        self.emb_row = row
        self.emb_dst = self.rows + row * self.width
        self.emb_in_scratch = False
    elif row == -1:  # index (or document index) not known yet
        self.emb_dst = _scratch_row(self, at)
        self.emb_in_scratch = True


cdef void _embedding_end(StreamDecoder self, Py_ssize_t at) noexcept nogil:
    """The closing quote of the embedding, at byte `at`: whole quads, exactly
    a row's bytes; its row is marked filled (a scratch row when its item
    closes, or when its document's index arrives)."""
    if self.ncarry:  # the length (for the message: see b64_error_text) counts the characters carried
        _b64_error(self, PPLX_B64_BADLEN, 0, self.emb_chars + self.ncarry, at)
        return
    if self.emb_pos != self.width:
        self.err_value = self.emb_pos
        _fail(self, E_LENGTH, at)
        return
    self.item_has_embedding = True
    if not self.emb_in_scratch:
        self.seen[self.emb_row] = 1
        self.nseen += 1


cdef Py_ssize_t _embedding_run(StreamDecoder self, const uint8_t *s, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
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
            _embedding_end(self, i + rem)
            _value_done(self, i + rem)
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
            _embedding_end(self, i + t + rest)
            _value_done(self, i + t + rest)
            return i + t + rest + 1
    # the run ends at the first quote or backslash (any other byte that is not
    # base64 is the decoder's to report)
    cdef Py_ssize_t stop = i + <Py_ssize_t>pplx_json_quote(self.jtier, p, n - i)
    if stop > i and not _b64_feed(self, s + i, stop - i, i):
        return n
    if stop == n:
        return n
    if s[stop] == c'\\':
        self.ret_state = S_STRING
        self.state = S_ESCAPE
        return stop + 1
    # closing quote
    _embedding_end(self, stop)
    _value_done(self, stop)
    return stop + 1


cdef inline bint _plain_tail(const uint8_t *p, Py_ssize_t n) noexcept nogil:
    """No quote or backslash among the n (< 4) bytes at p."""
    cdef Py_ssize_t j
    for j in range(n):
        if p[j] == c'"' or p[j] == c'\\':
            return False
    return True


cdef bint _b64_feed(StreamDecoder self, const uint8_t *s, Py_ssize_t n, Py_ssize_t at) noexcept nogil:
    """Decode n more characters of the current embedding (any count; up to
    3 are carried to the next call)."""
    cdef Py_ssize_t take, full
    if self.padded:
        _b64_error(self, PPLX_B64_BADPAD, s[0], self.emb_chars, at)
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
        if not _b64_decode(self, self.carry, 4, at - 4):
            return False
        if n and self.padded:
            _b64_error(self, PPLX_B64_BADPAD, s[0], self.emb_chars, at)
            return False
    full = n - n % 4
    if full and not _b64_decode(self, s, full, at):
        return False
    memcpy(self.carry, s + full, n - full)
    self.ncarry = <int>(n - full)
    return True


cdef bint _b64_decode(StreamDecoder self, const uint8_t *s, Py_ssize_t n, Py_ssize_t at) noexcept nogil:
    """Decode n (a multiple of 4) characters into the row."""
    cdef size_t err = 0
    cdef ptrdiff_t want = pplx_b64_decoded_len(s, n), got
    if self.emb_pos + want > self.width:
        self.err_value = -1  # more than width: how much more is not known yet
        _fail(self, E_LENGTH, at)
        return False
    got = T[0].b64_decode(s, n, self.emb_dst + self.emb_pos, &err)
    if got < 0:
        _b64_error(self, <int>got, s[err] if <Py_ssize_t>err < n else 0, self.emb_chars + err, at + err)
        return False
    self.emb_pos += got
    self.emb_chars += n
    if s[n - 1] == c'=':
        self.padded = True
    return True


cdef void _b64_error(StreamDecoder self, int code, uint8_t ch, Py_ssize_t offset, Py_ssize_t at) noexcept nogil:
    """A base64 error: the kernel's code, the character and its offset in the
    string (what _raise words), at byte `at` of the chunk."""
    self.err_b64 = code
    self.err_char = ch
    self.err_char_offset = offset
    _fail(self, E_B64, at)
