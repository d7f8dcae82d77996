# Types of the compiled module built from codec/_int8.pyx (checked against
# the build by `python -m mypy.stubtest pplx_codec`).  The documented API is
# pplx_codec.vectors, which wraps these.
import numpy as np
import numpy.typing as npt

def norms(matrix: npt.NDArray[np.int8], out: npt.NDArray[np.float32] | None = None) -> npt.NDArray[np.float32]: ...
def to_float32(
    matrix: npt.NDArray[np.int8], normalize: bool, out: npt.NDArray[np.float32] | None = None
) -> npt.NDArray[np.float32]: ...
def unit_lists(matrix: npt.NDArray[np.int8]) -> list[list[float]]: ...
