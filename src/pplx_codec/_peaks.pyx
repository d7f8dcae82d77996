# The machine's compute peaks for `pplx-codec bench` (benchmarks/peaks.py):
# the loops of codec/simd/peak/ (what they measure and why it is the peak is
# in peak.h), run without the GIL so several threads measure at once, each
# run's checksum compared with the plain-C oracle before its rate is given.
from libc.stdint cimport uint8_t, uint64_t

cimport numpy as cnp

import numpy as np

from . import _dispatch

cnp.import_array()

cdef extern from "simd/peak/peak.h":
    enum:
        PPLX_ISA_COUNT
        PPLX_PEAK_POPCOUNT
        PPLX_PEAK_MAC
        PPLX_PEAK_MAX_FORMS
    size_t PPLX_PEAK_BYTES
    const char *pplx_isa_names[]
    ctypedef uint64_t (*pplx_peak_loop)(const uint8_t *buf, size_t reps) noexcept nogil
    ctypedef struct pplx_peak_form:
        const char *name
        pplx_peak_loop loop
        double units_per_rep
        size_t span
        int kind
        int tiles
    ctypedef struct pplx_peak_result:
        double units
        double seconds
        double wall
        uint64_t reps
        uint64_t check
    int pplx_peak_forms(int isa, int kind, pplx_peak_form *out) noexcept nogil
    uint64_t pplx_peak_expect(const pplx_peak_form *f, const uint8_t *buf, uint64_t reps) noexcept nogil
    void pplx_peak_run(const pplx_peak_form *f, const uint8_t *buf, double warmup, double seconds,
                       pplx_peak_result *res) noexcept nogil

KINDS = ("popcount", "mac")
BYTES = PPLX_PEAK_BYTES


cdef int _kind(str kind) except -1:
    if kind == "popcount":
        return PPLX_PEAK_POPCOUNT
    if kind == "mac":
        return PPLX_PEAK_MAC
    raise ValueError(f"unknown peak kind {kind!r}; known: {', '.join(KINDS)}")


cdef int _tier(str tier) except -1:
    """The tier's index; it must be detected: its loops run its instructions."""
    cdef int i
    for i in range(PPLX_ISA_COUNT):
        if pplx_isa_names[i].decode() == tier:
            if tier not in _dispatch.detected():
                raise ValueError(f"tier {tier!r} is not detected on this CPU (detected: "
                                 f"{', '.join(_dispatch.detected())})")
            return i
    raise ValueError(f"unknown tier {tier!r}")


def forms(str tier, str kind):
    """The instruction forms the tier has for ``kind`` ("popcount": bytes
    popcounted; "mac": int8 multiply-adds), in the order ``run`` numbers
    them.  The tier must be detected."""
    cdef pplx_peak_form f[PPLX_PEAK_MAX_FORMS]
    cdef int n = pplx_peak_forms(_tier(tier), _kind(kind), f)
    return [f[i].name.decode() for i in range(n)]


def operand():
    """A fresh 64-byte aligned buffer of PPLX_PEAK_BYTES values 0..127 (peak/common.h), one per thread."""
    raw = np.random.default_rng(0x9EA4).integers(0, 128, BYTES + 64, dtype=np.uint8)
    at = (-raw.ctypes.data) % 64
    return raw[at:at + BYTES]


def run(str tier, str kind, int form, cnp.ndarray buf, double seconds, double warmup=0.002):
    """Run form ``form`` of the tier's ``kind`` loop for ``seconds`` (after
    ``warmup``) of this thread's CPU time on ``buf`` (from ``operand()``),
    without the GIL; returns (units done, CPU seconds, wall seconds) (peak.h:
    why CPU time).  RuntimeError if its checksum is not the oracle's: a rate
    is only given for work that was done."""
    cdef pplx_peak_form f[PPLX_PEAK_MAX_FORMS]
    cdef pplx_peak_result res
    cdef int n = pplx_peak_forms(_tier(tier), _kind(kind), f)
    if not 0 <= form < n:
        raise ValueError(f"{tier} has {n} {kind} form(s), not form {form}")
    if buf.dtype != np.uint8 or buf.ndim != 1 or buf.shape[0] != BYTES or not buf.flags.c_contiguous:
        raise ValueError(f"buf must be a contiguous uint8 array of {BYTES} bytes (use operand())")
    cdef const uint8_t *p = <const uint8_t *>cnp.PyArray_DATA(buf)
    cdef uint64_t want
    with nogil:
        pplx_peak_run(&f[form], p, warmup, seconds, &res)
        want = pplx_peak_expect(&f[form], p, res.reps)
    if res.check != want:
        raise RuntimeError(f"the {tier} {f[form].name.decode()} peak loop computed a wrong checksum "
                           f"({res.check}, want {want}): its rate would not be a rate of that work")
    return res.units, res.seconds, res.wall
