# Types of the compiled module built from codec/_search.pyx (checked against
# the build by `python -m mypy.stubtest pplx_codec`).  The documented API is
# pplx_codec.search, which wraps these.

import numpy as np
import numpy.typing as npt

MAX_DOT_DIM: int

def threads_api() -> str: ...
def topk_hamming(
    queries: npt.NDArray[np.uint8], codes: npt.NDArray[np.uint8], k_wanted: int, threads: int, base: int = 0
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]: ...
def topk_int8(
    queries: npt.NDArray[np.int8],
    db: npt.NDArray[np.int8],
    k_wanted: int,
    cosine: bool,
    qnorms: npt.NDArray[np.float32] | None,
    dbnorms: npt.NDArray[np.float32] | None,
    threads: int,
    base: int = 0,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
def hamming_matrix(
    queries: npt.NDArray[np.uint8], codes: npt.NDArray[np.uint8], threads: int, out: npt.NDArray[np.int32] | None = None
) -> npt.NDArray[np.int32]: ...
def dot_matrix(
    queries: npt.NDArray[np.int8], db: npt.NDArray[np.int8], threads: int, out: npt.NDArray[np.int32] | None = None
) -> npt.NDArray[np.int32]: ...

# testing hooks
def _thread_stats() -> tuple[int, int, int]: ...
def _refuse_threads_after(limit: int | None) -> int | None: ...
