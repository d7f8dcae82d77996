# Types of the compiled module built from src/pplx_codec/_peaks.pyx (checked
# against the build by `python -m mypy.stubtest pplx_codec`).  Used by
# pplx_codec.benchmarks.peaks.
import numpy as np
import numpy.typing as npt

KINDS: tuple[str, str]
BYTES: int

def forms(tier: str, kind: str) -> list[str]: ...
def operand() -> npt.NDArray[np.uint8]: ...
def run(
    tier: str, kind: str, form: int, buf: npt.NDArray[np.uint8], seconds: float, warmup: float = 0.002
) -> tuple[float, float, float]: ...
