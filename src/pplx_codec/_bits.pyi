# Types of the compiled module built from codec/_bits.pyx (checked against
# the build by `python -m mypy.stubtest pplx_codec`).  The documented API is
# pplx_codec.bits, which wraps these.
from typing import Any

import numpy as np
import numpy.typing as npt

def pack(x: npt.NDArray[Any], msb: bool, out: npt.NDArray[np.uint8] | None = None) -> npt.NDArray[np.uint8]: ...

# typenum: the numpy type number of the result, uint8 (0/1), int8 or float32 (-1/+1)
def unpack(
    packed: npt.NDArray[np.uint8], dim: int | None, msb: bool, typenum: int, out: npt.NDArray[Any] | None = None
) -> npt.NDArray[Any]: ...
def reverse(packed: npt.NDArray[np.uint8], out: npt.NDArray[np.uint8] | None = None) -> npt.NDArray[np.uint8]: ...
