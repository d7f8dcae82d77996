# The dispatch table: filled once per compiled ISA at import, the best one the
# CPU runs made active.  Other extensions hold a pointer to `_active` (see
# _kernels.pxd), so set_active() switches every kernel at once.
from cpython.pycapsule cimport PyCapsule_New
from ._kernels cimport pplx_table

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

cdef pplx_table _tables[PPLX_ISA_COUNT]
cdef const pplx_table *_active = NULL
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


def active():
    """The ISA every kernel call dispatches to now."""
    return pplx_isa_names[_active.isa].decode()


def set_active(str name):
    """Point every kernel at the table of `name`; it must be detected."""
    global _active
    cdef int i
    for i in range(PPLX_ISA_COUNT):
        if pplx_isa_names[i].decode() == name:
            if not (_detected >> i & 1):
                why = "not compiled into this build" if not (_compiled >> i & 1) else "not supported by this CPU"
                raise ValueError(f"ISA {name!r} is {why}; available: {detected()}")
            _active = &_tables[i]
            return
    raise ValueError(f"unknown ISA {name!r}; known: {_names((1u << PPLX_ISA_COUNT) - 1)}")


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


cdef int _i
for _i in range(PPLX_ISA_COUNT):
    pplx_table_fill(&_tables[_i], _i)
    # the best detected tier, tiers ordered by enum value within an architecture
    if _detected >> _i & 1 and not (PPLX_ISA_OPT_IN >> _i & 1):
        _active = &_tables[_i]
