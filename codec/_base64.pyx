# Base64 entry points: argument plumbing around the table's b64 kernels.
# Pointers into str/bytes objects are collected with the GIL held (the
# objects are kept alive by a tuple we own), then every kernel runs without
# it.  Validation of numpy arguments happens in pplx_codec.b64.
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from libc.stdint cimport uint8_t
from libc.stdlib cimport malloc, free

from _kernels cimport (pplx_table, load_table, pplx_b64_decoded_len, pplx_b64_encoded_len,
                       PPLX_B64_BADCHAR, PPLX_B64_BADPAD, PPLX_B64_BADLEN, PPLX_B64_NONCANON)

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    void *PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    Py_ssize_t PyBytes_GET_SIZE(object o)

cdef const pplx_table **T = load_table()


cdef str _describe(ptrdiff_t code, size_t pos, const uint8_t *s, size_t n):
    """The message for a decoder error code."""
    if code == PPLX_B64_BADLEN:
        return f"length {n} is not a multiple of 4"
    if code == PPLX_B64_BADPAD:
        return f"data character after '=' padding at offset {pos}"
    if code == PPLX_B64_NONCANON:
        return f"non-zero bits before '=' padding at offset {pos} (non-canonical encoding)"
    if s[pos] == b'=':
        return f"unexpected '=' padding at offset {pos}"
    return f"invalid base64 character {chr(s[pos])!r} at offset {pos}"


cdef str _non_ascii(str s):
    for i, ch in enumerate(s):
        if ord(ch) > 127:
            return f"non-ASCII character {ch!r} at offset {i}"
    return "non-ASCII text"


cdef int _text_ptr(object o, const uint8_t **p, size_t *n, str where) except -1:
    """Borrow the bytes of an ASCII str or a bytes object (caller keeps o alive)."""
    if type(o) is str or isinstance(o, str):
        if not PyUnicode_IS_ASCII(o):
            raise ValueError(f"{where}{_non_ascii(o)}")
        p[0] = <const uint8_t *>PyUnicode_DATA(o)
        n[0] = PyUnicode_GET_LENGTH(o)
    elif isinstance(o, bytes):
        p[0] = <const uint8_t *>PyBytes_AS_STRING(o)
        n[0] = PyBytes_GET_SIZE(o)
    else:
        raise TypeError(f"{where}expected str or bytes, got {type(o).__name__}")
    return 0


def decoded_size(data):
    """Bytes a strict decode of `data` (str or bytes-like) yields; ValueError if impossible."""
    cdef const uint8_t *p
    cdef size_t n
    cdef Py_buffer view
    if isinstance(data, (str, bytes)):
        _text_ptr(data, &p, &n, "")
        m = pplx_b64_decoded_len(p, n)
    else:
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            m = pplx_b64_decoded_len(<const uint8_t *>view.buf, view.len)
            n = view.len
        finally:
            PyBuffer_Release(&view)
    if m < 0:
        raise ValueError(f"invalid base64: length {n} is not a multiple of 4")
    return m


def decode_into(data, uint8_t[::1] out):
    """Decode `data` (ASCII str or any C-contiguous bytes-like) into `out`,
    whose length must be decoded_size(data)."""
    cdef const uint8_t *p
    cdef size_t n, err = 0
    cdef ptrdiff_t r
    cdef Py_buffer view
    cdef bint have_view = False
    if isinstance(data, (str, bytes)):
        _text_ptr(data, &p, &n, "")
    else:
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        have_view = True
        p = <const uint8_t *>view.buf
        n = view.len
    try:
        m = pplx_b64_decoded_len(p, n)
        if m >= 0 and m != out.shape[0]:
            raise ValueError(f"out has {out.shape[0]} bytes, the data decodes to {m}")
        with nogil:
            r = T[0].b64_decode(p, n, &out[0] if out.shape[0] else NULL, &err)
        if r < 0:
            raise ValueError("invalid base64: " + _describe(r, err, p, n))
    finally:
        if have_view:
            PyBuffer_Release(&view)


def encode(data):
    """bytes of the base64 text of a C-contiguous bytes-like object."""
    cdef Py_buffer view
    cdef uint8_t *dst
    cdef size_t n
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        n = view.len
        res = PyBytes_FromStringAndSize(NULL, pplx_b64_encoded_len(n))
        dst = <uint8_t *>PyBytes_AS_STRING(res)
        with nogil:
            T[0].b64_encode(<const uint8_t *>view.buf, n, dst)
        return res
    finally:
        PyBuffer_Release(&view)


def row_size(items):
    """Decoded size of the first item of a sequence (for dim inference)."""
    cdef const uint8_t *p
    cdef size_t n
    _text_ptr(items[0], &p, &n, "item 0: ")
    m = pplx_b64_decoded_len(p, n)
    if m < 0:
        raise ValueError(f"item 0: invalid base64: length {n} is not a multiple of 4")
    return m


def decode_rows(tuple items, uint8_t[:, ::1] out):
    """Decode items[i] (str or bytes) into row i of out; every item must
    decode to exactly out.shape[1] bytes.  Returns out's row count."""
    cdef Py_ssize_t nrows = len(items), width = out.shape[1], i
    cdef const uint8_t **ptrs
    cdef size_t *lens
    cdef size_t err = 0
    cdef ptrdiff_t r = 0, m
    cdef Py_ssize_t bad = -1
    if out.shape[0] != nrows:
        raise ValueError(f"out has {out.shape[0]} rows for {nrows} items")
    if nrows == 0:
        return 0
    ptrs = <const uint8_t **>malloc(nrows * sizeof(uint8_t *))
    lens = <size_t *>malloc(nrows * sizeof(size_t))
    if ptrs == NULL or lens == NULL:
        free(ptrs); free(lens)
        raise MemoryError()
    try:
        for i in range(nrows):
            _text_ptr(items[i], &ptrs[i], &lens[i], f"item {i}: ")
        with nogil:
            for i in range(nrows):
                m = pplx_b64_decoded_len(ptrs[i], lens[i])
                if m != width:
                    bad = i
                    r = 0
                    break
                r = T[0].b64_decode(ptrs[i], lens[i], &out[i, 0], &err)
                if r < 0:
                    bad = i
                    break
        if bad >= 0:
            m = pplx_b64_decoded_len(ptrs[bad], lens[bad])
            if r < 0:
                msg = "invalid base64: " + _describe(r, err, ptrs[bad], lens[bad])
            elif m < 0:
                msg = f"invalid base64: length {lens[bad]} is not a multiple of 4"
            else:
                msg = f"decodes to {m} bytes, expected {width}"
            raise ValueError(f"item {bad}: {msg}")
        return nrows
    finally:
        free(ptrs)
        free(lens)


def encode_rows(const uint8_t[:, ::1] rows):
    """One ASCII str of base64 per row."""
    cdef Py_ssize_t nrows = rows.shape[0], width = rows.shape[1], i
    cdef size_t enc = pplx_b64_encoded_len(width)
    cdef list res = PyList_New(nrows)
    cdef uint8_t **dst = <uint8_t **>malloc((nrows if nrows else 1) * sizeof(uint8_t *))
    if dst == NULL:
        raise MemoryError()
    try:
        # The strs are created with the GIL, filled without it: nobody else
        # can see them until the list is returned.
        for i in range(nrows):
            s = PyUnicode_New(enc, 127)
            Py_INCREF(s)
            PyList_SET_ITEM(res, i, s)
            dst[i] = <uint8_t *>PyUnicode_DATA(s)
        if width:
            with nogil:
                for i in range(nrows):
                    T[0].b64_encode(&rows[i, 0], width, dst[i])
        return res
    finally:
        free(dst)
