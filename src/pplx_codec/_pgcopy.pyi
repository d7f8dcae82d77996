# Types of the compiled module built from src/pplx_codec/_pgcopy.pyx (checked
# against the build by `python -m mypy.stubtest pplx_codec`).  Used by
# pplx_codec.sinks.pgvector.
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

HEADER: bytes
TRAILER: bytes
NONE: int
HALFVEC: int
VECTOR: int

def encode_rows(
    first_id: int,
    texts: Sequence[str],
    int8: npt.NDArray[np.int8] | None = None,
    vector_type: int = 1,
    bits: npt.NDArray[np.uint8] | None = None,
    dims: int = 0,
    header: bool = True,
    trailer: bool = True,
) -> bytes: ...
