# The byte-level lexer of StreamDecoder (included by _stream.pyx; the fields
# it moves are the "lexer state" of _stream.pxd): the loop over a chunk, which
# hands runs of bytes to the fast paths (string runs found by the simd/json
# scanners, embeddings to _stream_b64.pxi, runs of items to _stream_rows.pxi),
# and the byte state machine for the rest: whitespace, punctuation, literals,
# numbers, strings with their escapes and strict UTF-8.  What a value means
# (its container, its key) is _stream_struct.pxi's business.


cdef inline bint _ws(uint8_t c) noexcept nogil:
    """JSON's whitespace (RFC 8259: space, tab, line feed, carriage return)."""
    return c == 32 or c == 10 or c == 13 or c == 9


cdef void _scan(StreamDecoder self, const uint8_t *s, Py_ssize_t n) noexcept nogil:
    """Scan one chunk (without the GIL): runs of string bytes and the runs of
    items go to their fast paths, every other byte to the state machine."""
    cdef Py_ssize_t i = 0, j
    cdef uint8_t c
    cdef int st
    self.chunk = s
    self.cap_from = 0
    self.jtier = pplx_json_tier(T[0].fam[PPLX_FAM_JSON])
    while i < n:
        st = self.state
        if st == S_ERROR:
            break
        if st == S_STRING:
            if self.purpose == P_EMBEDDING:
                i = _embedding_run(self, s, n, i)
                continue
            # a run of plain characters: only '"', '\\', controls and non-ASCII need
            # the state machine, and every byte does while a UTF-8 sequence is
            # incomplete (an ASCII byte there is an error)
            j = i
            if self.u8_need == 0:
                j = i + <Py_ssize_t>pplx_json_special(self.jtier, s + i, n - i)
            if self.purpose == P_KEY:
                _key_run(self, s + i, j - i)
            i = j
            if i == n:
                break
        elif st != S_NUMBER and st != S_LITERAL and st != S_UNICODE and st != S_ESCAPE:
            c = s[i]
            if _ws(c):
                i += 1
                continue
            if c == c'{' and st == S_VALUE and (self.role[self.depth] == R_CHUNKS or
                                                (self.role[self.depth] == R_DATA and not self.contextual)):
                j = _items_run(self, s, n, i) if _fast_paths else i
                if j == i:
                    j = _item_fast(self, s, n, i)
                if j > i:
                    i = j
                    continue
        _step(self, s[i], s, i)
        i += 1
    # a captured top-level key or value continues in the next chunk
    if (self.capturing or self.key_capturing) and self.state != S_ERROR and \
            not _capture(self, s + self.cap_from, n - self.cap_from, self.key_capturing):
        _fail(self, E_CAPTURE_SIZE, n - 1)


cdef void _step(StreamDecoder self, uint8_t c, const uint8_t *s, Py_ssize_t at) noexcept nogil:
    """The byte state machine: byte `c`, at offset `at` of the chunk `s`."""
    cdef int st = self.state
    if st == S_VALUE:
        if _ws(c):
            return
        if c == c']' and self.depth > 0 and self.ctype[self.depth] == c'[' and _empty_array_ok(self):
            _close(self, at)
            return
        _begin_value(self, c, s, at)
    elif st == S_AFTER_VALUE:
        if _ws(c):
            return
        if c == c',':
            self.state = S_KEY if self.ctype[self.depth] == c'{' else S_VALUE
            self._after_comma = True
        elif (c == c'}' and self.ctype[self.depth] == c'{') or (c == c']' and self.ctype[self.depth] == c'['):
            _close(self, at)
        else:
            _fail(self, E_SYNTAX, at)
    elif st == S_KEY_OR_CLOSE or st == S_KEY:
        if _ws(c):
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
            _close(self, at)
        else:
            _fail(self, E_SYNTAX, at)
    elif st == S_COLON:
        if _ws(c):
            return
        if c == c':':
            self.state = S_VALUE
            self._after_comma = False
        else:
            _fail(self, E_SYNTAX, at)
    elif st == S_STRING:
        if self.u8_need and c < 0x80:
            _fail(self, E_UTF8, at)
            return
        if c == c'"':
            if self.purpose == P_KEY:
                if self.key_capturing:
                    self.key_capturing = False
                    if not _capture(self, self.chunk + self.cap_from, at - self.cap_from, True) or \
                            not _capture_sep(self, True):
                        _fail(self, E_CAPTURE_SIZE, at)
                        return
                _key_done(self, at)
            else:
                _value_done(self, at)
        elif c == c'\\':
            self.ret_state = S_STRING
            self.state = S_ESCAPE
        elif c < 0x20:
            _fail(self, E_SYNTAX, at)  # raw control characters are not allowed in JSON strings
        elif c >= 0x80:
            _utf8_byte(self, c, at)
            if self.purpose == P_KEY:
                self.key_long = True  # not one of the (ASCII) keys we look for
        elif self.purpose == P_KEY:
            _key_char(self, c)
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
            _fail(self, E_SYNTAX, at)
            return
        self.state = S_STRING
        _string_char(self, c, at)
    elif st == S_UNICODE:
        if c >= c'0' and c <= c'9':
            self.uni_value = self.uni_value * 16 + (c - c'0')
        elif c >= c'a' and c <= c'f':
            self.uni_value = self.uni_value * 16 + (c - c'a' + 10)
        elif c >= c'A' and c <= c'F':
            self.uni_value = self.uni_value * 16 + (c - c'A' + 10)
        else:
            _fail(self, E_SYNTAX, at)
            return
        self.uni_count += 1
        if self.uni_count == 4:
            self.state = S_STRING
            # only ASCII matters to us: non-ASCII in a key makes it unknown,
            # in an embedding it is an invalid base64 character
            _string_char(self, <uint8_t>self.uni_value if self.uni_value < 128 else 0xFF, at)
    elif st == S_NUMBER:
        _number_char(self, c, s, at)
    elif st == S_LITERAL:
        if c != <uint8_t>self.literal[self.literal_pos]:
            _fail(self, E_SYNTAX, at)
            return
        self.literal_pos += 1
        if self.literal[self.literal_pos] == 0:
            _value_done(self, at)
    elif st == S_DONE:
        if not _ws(c):
            _fail(self, E_TRAILING, at)


cdef bint _empty_array_ok(StreamDecoder self) noexcept nogil:
    # ']' right after '[' (an empty array) but not after a ',' ("[1,]")
    return not self._after_comma


cdef void _number_char(StreamDecoder self, uint8_t c, const uint8_t *s, Py_ssize_t at) noexcept nogil:
    """A byte of a number (the JSON grammar, N_* states); the first byte
    after a complete number ends it and is then stepped as what follows."""
    cdef int ns = self.num_state
    cdef bint digit = c >= c'0' and c <= c'9'
    if ns == N_SIGN:
        if c == c'0':
            self.num_state = N_ZERO
        elif digit:
            self.num_state = N_INT
            self.num_value = c - c'0'
        else:
            _fail(self, E_SYNTAX, at)
        return
    if ns == N_INT and digit:
        if self.num_value > 100000000000000LL:
            _big_digit(self, c)
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
            _fail(self, E_SYNTAX, at)
        return
    if ns == N_FRAC and digit:
        return
    if ns == N_EXP:
        if c == c'+' or c == c'-':
            self.num_state = N_EXP_SIGN
        elif digit:
            self.num_state = N_EXP_DIGITS
        else:
            _fail(self, E_SYNTAX, at)
        return
    if ns == N_EXP_SIGN:
        if digit:
            self.num_state = N_EXP_DIGITS
        else:
            _fail(self, E_SYNTAX, at)
        return
    if ns == N_EXP_DIGITS and digit:
        return
    # The number ended at a complete state: this byte belongs to what follows.
    if ns == N_ZERO or ns == N_INT or ns == N_FRAC or ns == N_EXP_DIGITS:
        _number_done(self, at)
        if self.state != S_ERROR:
            _step(self, c, s, at)
    else:
        _fail(self, E_SYNTAX, at)


cdef void _big_digit(StreamDecoder self, uint8_t c) noexcept nogil:
    """A digit of an integer past the 15 or 16 num_value holds: the integer
    is too big to be an `index` (num_big), and the first BIG_DIGITS of these
    digits are kept, so that an `index` this big is named as sent (_raise)."""
    if not self.num_big:
        self.num_big = True
        self.big_ndigits = 0
    if self.big_ndigits < BIG_DIGITS:
        self.big_digits[self.big_ndigits] = <char>c
    self.big_ndigits += 1


cdef void _utf8_byte(StreamDecoder self, uint8_t c, Py_ssize_t at) noexcept nogil:
    """Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing
    above U+10FFFF, as json.loads decoding the body as UTF-8 would demand."""
    if self.u8_need:
        if c < self.u8_lo or c > self.u8_hi:
            _fail(self, E_UTF8, at)
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
        _fail(self, E_UTF8, at)


cdef inline void _key_run(StreamDecoder self, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    """A run of plain bytes of a key: kept up to KEY_MAX bytes (longer keys are none we look for)."""
    if self.key_len + n > KEY_MAX:
        self.key_long = True
        return
    memcpy(self.key + self.key_len, p, n)
    self.key_len += <int>n


cdef void _key_char(StreamDecoder self, uint8_t c) noexcept nogil:
    if self.key_len < KEY_MAX:
        self.key[self.key_len] = <char>c
        self.key_len += 1
    else:
        self.key_long = True


cdef void _string_char(StreamDecoder self, uint8_t c, Py_ssize_t at) noexcept nogil:
    """One character produced by an escape."""
    if self.purpose == P_KEY:
        if c == 0xFF:
            self.key_long = True  # non-ASCII: not a key we know
        else:
            _key_char(self, c)
    elif self.purpose == P_EMBEDDING:
        _b64_feed(self, &c, 1, at)
