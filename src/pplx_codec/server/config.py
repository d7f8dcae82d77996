"""What a server instance is: backend, token counting, auth, limits, faults,
the per-key request rate and the request log.

One frozen ``ServerConfig`` builds the app.  It travels to uvicorn worker
processes (``--workers N``) as JSON in ``PPLX_CODEC_SERVER_CONFIG``, since
each worker imports the app factory afresh.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from .backends import BACKENDS, DEFAULT_BACKEND
from .faults import FaultConfig
from .ratelimit import DEFAULT_BURST as RATE_BURST

KEYS_ENV = "PPLX_CODEC_SERVER_KEYS"
CONFIG_ENV = "PPLX_CODEC_SERVER_CONFIG"

#: 120,000 tokens are at most ~12 MB of JSON even when every character is a
#: 6-byte escape (tokens.py caps a token at 16 whitespace characters), so a
#: valid request always fits; beyond this the server answers 413 unread.
DEFAULT_MAX_BODY_BYTES = 16 << 20
#: ~15,000 rows of 2560 int8 dimensions
DEFAULT_CACHE_BYTES = 64 << 20


def env_keys() -> tuple[str, ...]:
    """Keys from ``PPLX_CODEC_SERVER_KEYS``: comma-separated, blanks ignored."""
    return tuple(k.strip() for k in os.environ.get(KEYS_ENV, "").split(",") if k.strip())


@dataclass(frozen=True)
class ServerConfig:
    #: ``static`` (the model the package ships), ``hash`` or ``sentence-transformers``.
    backend: str = DEFAULT_BACKEND
    #: sentence-transformers: the model's local directory, and its options.
    #: static: another directory in the shipped model's format (default: the shipped one).
    model_path: str | None = None
    trust_remote_code: bool = False
    output_scale: float = 1.0
    #: A ``tokenizer.json`` for exact token counts.  None: ``model_path``'s own
    #: ``tokenizer.json`` if the sentence-transformers model has one, else the estimate.
    tokenizer: str | None = None
    #: Accepted bearer tokens, besides those in ``PPLX_CODEC_SERVER_KEYS``.
    api_keys: Sequence[str] = ()
    #: False: no auth at all (``--no-auth``), for local use.
    auth: bool = True
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Memory for remembered rows (and a quarter more for token counts); 0: none.
    cache_bytes: int = DEFAULT_CACHE_BYTES
    faults: FaultConfig = field(default_factory=FaultConfig)
    #: Requests per minute per key (None: no limit), a leaky bucket of ``rpm_burst``
    #: requests; and a JSON-lines file logging each API request (see ratelimit.py).
    rpm: float | None = None
    rpm_burst: int = RATE_BURST
    request_log: str | None = None

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r} (known: {', '.join(BACKENDS)})")
        if self.backend == "sentence-transformers" and not self.model_path:
            raise ValueError("the sentence-transformers backend needs model_path (--model-path)")
        if isinstance(self.api_keys, str):
            raise TypeError("api_keys must be a sequence of keys, not one string")
        keys = tuple(self.api_keys)
        if any(not isinstance(k, str) or not k.strip() or k != k.strip() for k in keys):
            raise ValueError("API keys must be non-empty strings without surrounding whitespace")
        object.__setattr__(self, "api_keys", keys)
        if isinstance(self.faults, Mapping):
            object.__setattr__(self, "faults", FaultConfig(**self.faults) if "rates" in self.faults
                               else FaultConfig(self.faults))
        if not isinstance(self.max_body_bytes, int) or self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes must be an integer >= 1024, got {self.max_body_bytes!r}")
        if not isinstance(self.cache_bytes, int) or self.cache_bytes < 0:
            raise ValueError(f"cache_bytes must be a non-negative integer, got {self.cache_bytes!r}")
        if self.rpm is not None and (isinstance(self.rpm, bool) or not isinstance(self.rpm, (int, float))
                                     or not 0 < self.rpm < float("inf")):
            raise ValueError(f"rpm must be a positive number of requests per minute, got {self.rpm!r}")
        if isinstance(self.rpm_burst, bool) or not isinstance(self.rpm_burst, int) or self.rpm_burst < 1:
            raise ValueError(f"rpm_burst must be a positive integer, got {self.rpm_burst!r}")
        if not self.output_scale > 0:
            raise ValueError(f"output_scale must be positive, got {self.output_scale!r}")

    def accepted_keys(self) -> tuple[str, ...]:
        """The keys auth accepts; raises if auth is on and there are none."""
        keys = tuple(dict.fromkeys((*self.api_keys, *env_keys())))
        if self.auth and not keys:
            raise ValueError(f"no API keys: pass --api-key KEY (api_keys=[...]), set {KEYS_ENV}=KEY1,KEY2, "
                             "or turn auth off with --no-auth (auth=False)")
        return keys

    def tokenizer_path(self) -> str | None:
        if self.tokenizer is not None:
            return self.tokenizer
        if self.backend == "sentence-transformers" and self.model_path:  # (that backend always has one)
            candidate = os.path.join(self.model_path, "tokenizer.json")
            if os.path.isfile(candidate):
                return candidate
        return None

    def to_json(self) -> str:
        d = asdict(self)
        d["faults"] = self.faults.to_dict()
        d["api_keys"] = list(self.api_keys)
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> ServerConfig:
        d = json.loads(text)
        d["faults"] = FaultConfig(**d["faults"])
        return cls(**d)
