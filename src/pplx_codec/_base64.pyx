# Base64 entry points around the table's b64 kernels; array checks in
# _arrays.pxd, docstrings in pplx_codec.b64.  Pointers into str/bytes objects
# are collected with the GIL held (the objects are kept alive by a tuple we
# own), then every kernel runs without it.
cimport numpy as cnp
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyObject_CheckBuffer, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from libc.stdint cimport uint8_t
from libc.stdlib cimport malloc, free

from ._arrays cimport checked, row_geometry, out_array, disjoint
from ._kernels cimport pplx_table, load_table, pplx_b64_decoded_len, pplx_b64_encoded_len, b64_error_message

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    void *PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    Py_ssize_t PyBytes_GET_SIZE(object o)

from collections.abc import Mapping, Set as AbstractSet

cnp.import_array()
cdef const pplx_table **T = load_table()


cdef str _non_ascii(str s):
    for i, ch in enumerate(s):
        if ord(ch) > 127:
            return f"non-ASCII character {ch!r} at offset {i}"
    return "non-ASCII text"


cdef int _text_ptr(object o, const uint8_t **p, size_t *n, Py_ssize_t item) except -1:
    """Borrow the bytes of an ASCII str or a bytes object (caller keeps o alive).
    `item` >= 0 names the sequence item in errors."""
    if isinstance(o, str):
        if PyUnicode_IS_ASCII(o):
            p[0] = <const uint8_t *>PyUnicode_DATA(o)
            n[0] = PyUnicode_GET_LENGTH(o)
            return 0
        raise ValueError(f"{_where(item)}{_non_ascii(o)}")
    if isinstance(o, bytes):
        p[0] = <const uint8_t *>PyBytes_AS_STRING(o)
        n[0] = PyBytes_GET_SIZE(o)
        return 0
    raise TypeError(f"{_where(item)}expected str or bytes, got {type(o).__name__}")


cdef str _where(Py_ssize_t item):
    return f"item {item}: " if item >= 0 else ""


def b64decode(data, out=None):
    cdef const uint8_t *p
    cdef size_t n, err = 0
    cdef ptrdiff_t r, m
    cdef Py_buffer view
    cdef bint have_view = False
    cdef cnp.ndarray o
    if isinstance(data, (str, bytes)):
        _text_ptr(data, &p, &n, -1)
    else:
        if cnp.PyArray_Check(data):
            checked(data, "data", "uint8", 1, cnp.NPY_UINT8)
        elif not PyObject_CheckBuffer(data):  # bytes-like: bytearray, memoryview, mmap, array.array...
            raise TypeError("data must be str, a bytes-like object or a uint8 array, "
                            f"got {type(data).__name__}")
        try:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        except BufferError:
            raise ValueError("data must be C-contiguous") from None
        have_view = True
        p = <const uint8_t *>view.buf
        n = view.len
    try:
        m = pplx_b64_decoded_len(p, n)
        if m < 0:
            raise ValueError(f"invalid base64: length {n} is not a multiple of 4")
        o = out_array(out, cnp.NPY_UINT8, 1, m)
        disjoint(out, o, <const char *>p, <const char *>p + n, "data")
        with nogil:
            r = T[0].b64_decode(p, n, <uint8_t *>cnp.PyArray_DATA(o), &err)
        if r < 0:
            raise ValueError("invalid base64: " + b64_error_message(r, err, p, n))
        return o
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


cdef tuple _as_items(items):
    if isinstance(items, (str, bytes)):
        return (items,)
    if type(items) is list or type(items) is tuple:  # the common case, without the ABC checks
        return tuple(items)
    if cnp.PyArray_Check(items):
        raise TypeError("items must be a sequence of base64 str/bytes, not a numpy array; "
                        "use b64decode for one blob")
    # Row i is item i: a container without a meaningful order (a dict would
    # give its keys, a set any order) would fill rows silently wrong.
    if isinstance(items, (Mapping, AbstractSet)):
        raise TypeError(f"items must be an ordered sequence of base64 str/bytes (row i = item i), "
                        f"got {type(items).__name__}")
    try:
        return tuple(items)
    except TypeError:
        raise TypeError(f"items must be a str or a sequence of str, got {type(items).__name__}") from None


def decode_rows(items, width, int typenum, out=None):
    """Decode items[i] (str or bytes) into row i of an (n, width) array of
    typenum (int8 or uint8); width=None infers it from the first item."""
    cdef tuple seq = _as_items(items)
    cdef Py_ssize_t nrows = len(seq), w, i
    cdef const uint8_t **ptrs
    cdef size_t *lens
    cdef size_t err = 0
    cdef ptrdiff_t r = 0, m
    cdef Py_ssize_t bad = -1
    cdef const uint8_t *p0
    cdef size_t n0
    if width is None:
        if nrows == 0:
            raise ValueError("dim is required when there are no items")
        _text_ptr(seq[0], &p0, &n0, 0)
        m = pplx_b64_decoded_len(p0, n0)
        if m <= 0:
            raise ValueError(f"item 0: invalid base64: length {n0} is not a multiple of 4"
                             if m < 0 else "item 0: empty (pass dim=0 for zero-width rows)")
        w = m
    else:
        w = width
    if nrows == 0:
        return out_array(out, typenum, 2, nrows, w)
    cdef cnp.ndarray o
    cdef uint8_t *dst
    cdef uint8_t *scratch = NULL
    ptrs = <const uint8_t **>malloc(nrows * sizeof(uint8_t *))
    lens = <size_t *>malloc(nrows * sizeof(size_t))
    if ptrs == NULL or lens == NULL:
        free(ptrs); free(lens)
        raise MemoryError()
    try:
        for i in range(nrows):
            _text_ptr(seq[i], &ptrs[i], &lens[i], i)
        # Every length before the output exists: a wrong (say, huge) dim is
        # then an error naming the item, not a huge allocation.
        with nogil:
            for i in range(nrows):
                if pplx_b64_decoded_len(ptrs[i], lens[i]) != w:
                    bad = i
                    break
        if bad > 0:
            # Report the first bad item, as a row-by-row decode would: the
            # rows before `bad` have the right length (so w is a real row
            # size); check their characters in a one-row scratch buffer.
            scratch = <uint8_t *>malloc(w if w else 1)
            if scratch == NULL:
                raise MemoryError()
            with nogil:
                for i in range(bad):
                    r = T[0].b64_decode(ptrs[i], lens[i], scratch, &err)
                    if r < 0:
                        bad = i
                        break
        elif bad < 0:
            o = out_array(out, typenum, 2, nrows, w)
            dst = <uint8_t *>cnp.PyArray_DATA(o)
            with nogil:
                for i in range(nrows):
                    r = T[0].b64_decode(ptrs[i], lens[i], dst + i * w, &err)
                    if r < 0:
                        bad = i
                        break
        if bad >= 0:
            m = pplx_b64_decoded_len(ptrs[bad], lens[bad])
            if r < 0:
                msg = "invalid base64: " + b64_error_message(r, err, ptrs[bad], lens[bad])
            elif m < 0:
                msg = f"invalid base64: length {lens[bad]} is not a multiple of 4"
            else:
                msg = f"decodes to {m} bytes, expected {w}"
            raise ValueError(f"item {bad}: {msg}")
        return o
    finally:
        free(scratch)
        free(ptrs)
        free(lens)


def encode_rows(rows, str name, int typenum):
    """One ASCII str of base64 per row of a 1-D/2-D int8 or uint8 array."""
    cdef cnp.ndarray a = checked(rows, name, "int8" if typenum == cnp.NPY_INT8 else "uint8", 2, typenum)
    cdef Py_ssize_t nrows, width, rs, i
    row_geometry(a, name, &nrows, &width, &rs)
    cdef const uint8_t *src = <const uint8_t *>cnp.PyArray_DATA(a)
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
        with nogil:
            for i in range(nrows):
                T[0].b64_encode(src + i * rs, width, dst[i])
        return res
    finally:
        free(dst)
