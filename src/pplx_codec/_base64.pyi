# Types of the compiled module built from codec/_base64.pyx (checked against
# the build by `python -m mypy.stubtest pplx_codec`).  The documented API is
# pplx_codec.b64, which wraps these.
from collections.abc import Iterable
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

# numpy declares ndarray.__buffer__ (which makes it a Buffer) for Python >= 3.12
# only: the arrays are spelt out for 3.10 and 3.11.
_BytesLike: TypeAlias = Buffer | npt.NDArray[Any]
_Text: TypeAlias = str | bytes

def b64decode(data: str | _BytesLike, out: npt.NDArray[np.uint8] | None = None) -> npt.NDArray[np.uint8]: ...
def encode(data: _BytesLike) -> bytes: ...

# typenum: the numpy type number of int8 or uint8 (np.dtype(np.int8).num)
def decode_rows(
    items: _Text | Iterable[_Text], width: int | None, typenum: int, out: npt.NDArray[Any] | None = None
) -> npt.NDArray[Any]: ...
def encode_rows(rows: npt.NDArray[np.integer[Any]], name: str, typenum: int) -> list[str]: ...
