# The dispatch tables: one filled per compiled ISA at import, and the default
# ("auto") table, which takes each kernel family from the tier chosen for it
# (_calibrate.py measures; set_paths publishes).  Other extensions hold a
# pointer to `_active` (see _kernels.pxd), so set_active() switches every
# kernel at once.
#
# A published table is never written again: a search reads its table pointer
# once and may still be running on the old table when another is published, so
# set_paths() fills a new one and swaps the pointer.  The old ones are kept
# (a few hundred bytes each, a handful per process).
from cpython.pycapsule cimport PyCapsule_New
from libc.stdlib cimport malloc
from ._kernels cimport pplx_table, PPLX_FAM_COUNT, PPLX_ISA_MIXED

cdef extern from "simd/dispatch.h":
    enum:
        PPLX_ISA_SERIAL
        PPLX_ISA_COUNT
        PPLX_ISA_OPT_IN
    const char *pplx_isa_names[]
    unsigned pplx_isa_compiled()
    unsigned pplx_isa_detected()
    long pplx_isa_amx_refusal()
    long PPLX_AMX_SMALL_TILES
    void pplx_table_fill(pplx_table *t, int isa)
    int pplx_cpu_identity(char *buf, size_t n)
    int pplx_family_same(const pplx_table *a, const pplx_table *b, int f)
    void pplx_table_take(pplx_table *dst, const pplx_table *src, int f)

cdef extern from "simd/calibrate.h":
    ctypedef struct pplx_cal:
        pass
    const int pplx_cal_nshapes[]
    pplx_cal *pplx_cal_new()
    void pplx_cal_free(pplx_cal *c)
    double pplx_cal_run(const pplx_table *T, pplx_cal *c, int f, int shape) nogil

cdef pplx_table _tables[PPLX_ISA_COUNT]
cdef const pplx_table *_active = NULL
cdef const pplx_table *_auto = NULL   # the default table: each family from its chosen tier
cdef unsigned _compiled = pplx_isa_compiled()
cdef unsigned _detected = pplx_isa_detected() & _compiled


def _names(unsigned mask):
    return [pplx_isa_names[i].decode() for i in range(PPLX_ISA_COUNT) if mask >> i & 1]


def compiled():
    """ISAs whose kernels are in this binary, baseline first."""
    return _names(_compiled)


def detected():
    """Compiled ISAs this CPU and OS can run (CPUID + XGETBV), baseline first."""
    return _names(_detected)


def opt_in():
    """Detected ISAs that are not made active by default (their kernels have
    not yet run on real hardware: amx); use_isa() selects them explicitly."""
    return _names(_detected & PPLX_ISA_OPT_IN)


def cpu_identity():
    """The CPU's vendor, family/model/stepping and brand string from CPUID on
    x86-64; "" elsewhere."""
    cdef char buf[160]
    if not pplx_cpu_identity(buf, sizeof(buf)):
        return ""
    return buf.decode("ascii", "replace").strip()


def amx_refusal():
    """Why a CPU with AMX has no amx tier here, or None: Linux refused the
    tile data (its errno; ENOSPC means a sigaltstack in this process is too
    small for AMX signal frames), or the tile palette is smaller than the
    kernel's 8 tiles of 16 x 64 bytes."""
    import errno, os
    cdef long r = pplx_isa_amx_refusal()
    if r == 0:
        return None
    if r == PPLX_AMX_SMALL_TILES:
        return "the CPU's AMX tile palette is smaller than 8 tiles of 16 rows x 64 bytes"
    return (f"Linux refused AMX tile data: arch_prctl(ARCH_REQ_XCOMP_PERM) failed with "
            f"{errno.errorcode.get(-r, -r)} ({os.strerror(-r)})")


AUTO = "auto"  # the name of the default table, whose families may come from different tiers
# kernel families in enum pplx_family order (simd/kernels.h)
FAMILIES = ("base64", "bits", "int8", "hamming", "dot", "json")


def active():
    """The ISA every kernel call dispatches to now, or "auto" when each family
    runs the tier chosen for it (the default; paths() tells which)."""
    return AUTO if _active.isa == PPLX_ISA_MIXED else pplx_isa_names[_active.isa].decode()


cdef int _tier_index(str name) except -1:
    cdef int i
    for i in range(PPLX_ISA_COUNT):
        if pplx_isa_names[i].decode() == name:
            if not (_detected >> i & 1):
                why = "not compiled into this build" if not (_compiled >> i & 1) else "not supported by this CPU"
                raise ValueError(f"ISA {name!r} is {why}; available: {detected()}")
            return i
    raise ValueError(f"unknown ISA {name!r}; known: {_names((1u << PPLX_ISA_COUNT) - 1)} or {AUTO!r}")


cdef int _family_index(str family) except -1:
    if family not in FAMILIES:
        raise ValueError(f"unknown kernel family {family!r}; known: {list(FAMILIES)}")
    return FAMILIES.index(family)


def set_active(str name):
    """Point every kernel at the table of `name` (it must be detected), or at
    the default table ("auto")."""
    global _active
    _active = _auto if name == AUTO else &_tables[_tier_index(name)]


cdef str _origin(const pplx_table *t, int f):
    """The lowest compiled tier whose table runs the same code for family f as
    t: the name of the code t runs (amx keeps avx512's bits kernels, so its
    bits family is "avx512"; avx512 keeps avx2's JSON scanners)."""
    cdef int i
    for i in range(PPLX_ISA_COUNT):
        if _compiled >> i & 1 and pplx_family_same(&_tables[i], t, f):
            return pplx_isa_names[i].decode()
    return pplx_isa_names[t.fam[f]].decode()


def candidates(str family):
    """The distinct paths of `family` this CPU runs by default, lowest tier
    first: each detected tier that is not opt-in, named by the code it runs
    (a tier that keeps the family's kernels from the tier below it is that
    tier's path, not another one)."""
    cdef int f = _family_index(family)
    cdef int i
    out = []
    for i in range(PPLX_ISA_COUNT):
        if _detected >> i & 1 and not (PPLX_ISA_OPT_IN >> i & 1):
            name = _origin(&_tables[i], f)
            if name not in out:
                out.append(name)
    return out


def paths(str name=None):
    """{family: the tier whose code it runs} for the table of `name` (a tier,
    or "auto"), by default the active table."""
    cdef const pplx_table *t = _active if name is None else (_auto if name == AUTO else &_tables[_tier_index(name)])
    return {family: _origin(t, f) for f, family in enumerate(FAMILIES)}


def set_paths(dict picks):
    """Make a new default table: each family of `picks` ({family: tier}) from
    that tier's code, the others as before; it becomes active if the default
    table was.  A tier must be one of candidates(family)."""
    global _auto, _active
    cdef pplx_table *t
    cdef int f
    chosen = {}
    for family, tier in picks.items():
        if tier not in candidates(family):
            raise ValueError(f"{tier!r} is not a path of the {family} kernels here; "
                             f"candidates: {candidates(family)}")
        chosen[_family_index(family)] = _tier_index(tier)
    t = <pplx_table *>malloc(sizeof(pplx_table))
    if t == NULL:
        raise MemoryError()
    t[0] = _auto[0]
    for f, i in chosen.items():
        pplx_table_take(t, &_tables[i], f)
    was_active = _active == _auto
    _auto = t
    if was_active:
        _active = _auto


cdef pplx_cal *_cal = NULL


def shapes(str family):
    """How many workloads measure() has for `family`."""
    return pplx_cal_nshapes[_family_index(family)]


def measure(str family, str tier, int shape):
    """Seconds one run of workload `shape` of `family` takes with `tier`'s
    code (simd/calibrate.h: small in-cache data shaped like the package's
    calls).  For the calibration; results of the kernels are discarded."""
    global _cal
    cdef int f = _family_index(family)
    cdef int i = _tier_index(tier)
    cdef double seconds
    if not 0 <= shape < pplx_cal_nshapes[f]:
        raise ValueError(f"{family} has workloads 0..{pplx_cal_nshapes[f] - 1}, not {shape}")
    if _cal == NULL:
        _cal = pplx_cal_new()
        if _cal == NULL:
            raise MemoryError()
    with nogil:
        seconds = pplx_cal_run(&_tables[i], _cal, f, shape)
    return seconds


def release_measure_data():
    """Free measure()'s buffers (about 2 MB) once the calibration is done."""
    global _cal
    pplx_cal_free(_cal)
    _cal = NULL


def _simulate_cpu_without(str name):
    """Testing hook: drop `name` from the detected set, as on a CPU that lacks
    it; returns the previous mask for _restore_detected.  Lets the refusal
    path of set_active be tested on a machine that has every ISA."""
    global _detected
    cdef unsigned before = _detected
    cdef int i
    for i in range(PPLX_ISA_COUNT):
        if i != PPLX_ISA_SERIAL and pplx_isa_names[i].decode() == name:
            _detected &= ~(1u << i)
    return before


def _restore_detected(unsigned mask):
    global _detected
    _detected = mask


cdef extern from *:
    """
    #if PPLX_COMPILE_AVX2
    static size_t pplx_get_stream_min(void) { return pplx_stream_min; }
    static void pplx_set_stream_min(size_t n) { pplx_stream_min = n; }
    #else
    static size_t pplx_get_stream_min(void) { return 0; }
    static void pplx_set_stream_min(size_t n) { (void)n; }
    #endif
    """
    size_t pplx_get_stream_min()
    void pplx_set_stream_min(size_t n)


def _stream_min(n=None):
    """Testing hook: the output size (bytes) from which AVX2 unpacking uses
    streaming stores (0 in builds without AVX2); with `n`, set it and return
    the previous value, so tests can reach that path with small arrays."""
    cdef size_t before = pplx_get_stream_min()
    if n is not None:
        pplx_set_stream_min(n)
    return before


def _table_capsule():
    return PyCapsule_New(<void *>&_active, b"pplx_codec._dispatch.table", NULL)


cdef int _i, _f
cdef int _best = PPLX_ISA_SERIAL
for _i in range(PPLX_ISA_COUNT):
    pplx_table_fill(&_tables[_i], _i)
    # the best detected tier, tiers ordered by enum value within an architecture
    if _detected >> _i & 1 and not (PPLX_ISA_OPT_IN >> _i & 1):
        _best = _i
# The default table until paths are chosen: every family from the best tier
# (what CPUID says; _calibrate.py then measures where there is a choice).
cdef pplx_table *_first = <pplx_table *>malloc(sizeof(pplx_table))
if _first == NULL:
    raise MemoryError()
_first[0] = _tables[_best]
_first.isa = PPLX_ISA_MIXED
_auto = _first
_active = _auto
