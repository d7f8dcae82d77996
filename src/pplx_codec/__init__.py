"""pplx-codec: fast, strict codecs for Perplexity embeddings.

Kernels are compiled C (SIMD with runtime CPU dispatch) behind a numpy API:
base64 decoding straight into int8/uint8 matrices, bit packing in either bit
order, int8 norms, exact Hamming / int8 cosine top-k search and indexes,
exact near-duplicate groups (``dedup``).  See
``capabilities()`` for the instruction set in use.
"""

from . import _isa
from ._isa import capabilities, use_isa
from ._rate import RateBudget
from ._stream import StreamDecodeError, StreamDecoder
from ._version import VERSION
from .b64 import b64decode, b64encode, decode_binary, decode_int8, encode_binary, encode_int8
from .bits import pack_bits, reverse_bitorder, unpack_bits
from .client import AsyncClient, Client
from .errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PartialResult,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from .index import BinaryIndex, Index, Int8Index
from .near_duplicates import dedup
from .results import ContextualizedEmbeddings, Embeddings, EmbeddingsResponse, Usage
from .search import cosine, dot, dot_matrix, hamming, hamming_matrix, merge_topk, search_binary, search_int8
from .vectors import norms, to_float32, truncate

# written once, in pyproject.toml; read back from the installed metadata by _version
__version__ = VERSION

# PPLX_CODEC_ISA=<tier> picks the tier for the whole process, at import.
_isa.apply_env()

__all__ = [
    "__version__",
    "capabilities",
    "use_isa",
    "b64decode",
    "b64encode",
    "decode_int8",
    "decode_binary",
    "encode_int8",
    "encode_binary",
    "pack_bits",
    "unpack_bits",
    "reverse_bitorder",
    "truncate",
    "norms",
    "to_float32",
    "hamming",
    "hamming_matrix",
    "dot",
    "dot_matrix",
    "cosine",
    "search_binary",
    "search_int8",
    "merge_topk",
    "BinaryIndex",
    "Int8Index",
    "Index",
    "dedup",
    "Client",
    "AsyncClient",
    "RateBudget",
    "StreamDecoder",
    "StreamDecodeError",
    "Embeddings",
    "ContextualizedEmbeddings",
    "EmbeddingsResponse",
    "Usage",
    "PartialResult",
    "APIError",
    "APIStatusError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "UnprocessableEntityError",
    "RateLimitError",
    "InternalServerError",
    "APIConnectionError",
    "APITimeoutError",
    "APIResponseValidationError",
]
