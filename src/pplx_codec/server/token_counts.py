"""Token counts for ``usage`` and for the per-text and per-request limits.

The service counts with the Qwen3 tokenizer, which is not available offline,
so by default the server *estimates* (and says so in the ``X-Token-Count``
response header).  Given a Hugging Face ``tokenizer.json`` (the ``tokenizers``
package reads it) it counts exactly with that tokenizer instead: Qwen3's own
file, taken from the open pplx-embed weights, gives the service's counts.

The estimate is :func:`pplx_codec.tokens.estimate_tokens` (documented there).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Protocol

from ..tokens import ESTIMATE_PATTERN
from .cache import LRU


class TokenCounter(Protocol):
    #: ``"estimate"`` or ``"tokenizer"``: sent as the ``X-Token-Count`` header.
    method: str

    def count(self, texts: Sequence[str]) -> list[int]: ...


class EstimateCounter:
    """The documented estimate above: no files, no dependencies."""

    method = "estimate"

    def count(self, texts: Sequence[str]) -> list[int]:
        findall = ESTIMATE_PATTERN.findall
        return [len(findall(t)) for t in texts]


class TokenizerCounter:
    """Exact counts with a ``tokenizers`` ``tokenizer.json``, special tokens excluded."""

    method = "tokenizer"

    def __init__(self, path: str | os.PathLike):
        try:
            from tokenizers import Tokenizer
        except ImportError as e:  # the server extra installs it
            raise RuntimeError("counting with a tokenizer.json needs the 'tokenizers' package: "
                               "pip install 'pplx-codec[server]'") from e
        self.path = os.fspath(path)
        try:
            self._tokenizer = Tokenizer.from_file(self.path)
        except Exception as e:  # tokenizers raises a bare Exception for unreadable files
            raise ValueError(f"cannot load tokenizer {self.path!r}: {e}") from e
        # a tokenizer.json may carry the model's truncation/padding settings,
        # which would cap or inflate the counts
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def count(self, texts: Sequence[str]) -> list[int]:
        # a lone surrogate is not encodable text and the Rust side rejects it (the
        # API's validation already does, but the counter is usable on its own):
        # count each as U+FFFD
        safe = [_SURROGATE.sub("\ufffd", t) for t in texts]
        return [len(e.ids) for e in self._tokenizer.encode_batch(safe, add_special_tokens=False)]


_SURROGATE = re.compile("[\ud800-\udfff]")


class CachedCounter:
    """Another counter's counts, remembered by text (see cache.py)."""

    def __init__(self, counter: TokenCounter, cache: LRU):
        self.counter, self.cache, self.method = counter, cache, counter.method

    def count(self, texts: Sequence[str]) -> list[int]:
        found = self.cache.get_many(texts)
        missing = [j for j, n in enumerate(found) if n is None]
        if missing:
            counts = self.counter.count([texts[j] for j in missing])
            for j, n in zip(missing, counts, strict=True):
                found[j] = n
            self.cache.put_many((texts[j], n, len(texts[j]) + 100) for j, n in zip(missing, counts, strict=True))
        return found


def load_counter(tokenizer_path: str | os.PathLike | None, cache_bytes: int = 0) -> TokenCounter:
    counter = EstimateCounter() if tokenizer_path is None else TokenizerCounter(tokenizer_path)
    return CachedCounter(counter, LRU(cache_bytes)) if cache_bytes else counter
