# Types of the compiled module built from src/pplx_codec/_stream.pyx (checked
# against the build by `python -m mypy.stubtest pplx_codec`); documented there
# and in pplx_codec.client.
from collections.abc import Iterable
from typing import Any, SupportsIndex, final

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

# Cython's table of the C functions _stream.pxd declares (capsules, for a
# cimport); not Python API.
__pyx_capi__: dict[str, object]

class StreamDecodeError(ValueError): ...

@final
class StreamDecoder:
    # out: int8 or uint8 (checked at run time; np.integer lets `np.int8 if ... else np.uint8` through)
    def __init__(self, out: npt.NDArray[np.integer[Any]], doc_rows: Iterable[SupportsIndex] | None = None) -> None: ...
    @property
    def rows_done(self) -> int: ...
    def filled(self) -> npt.NDArray[np.bool_]: ...
    # numpy declares ndarray a Buffer for Python >= 3.12 only
    def feed(self, data: Buffer | npt.NDArray[Any]) -> None: ...
    def finish(self) -> dict[str, Any]: ...
