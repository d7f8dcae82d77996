"""A least-recently-used map within a byte budget, safe across threads.

Every backend is deterministic, so the server remembers encoded rows and
token counts by text: a client benchmark that sends the same texts again
measures the client and the transport, not the embedding of its texts.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from typing import Any


class LRU:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get_many(self, keys: Sequence[Hashable]) -> list[Any]:
        """The values of ``keys``, None for those not held; hits become most recent."""
        if not self.max_bytes:
            return [None] * len(keys)
        out: list[Any] = []
        entries = self._entries
        with self._lock:
            for k in keys:
                hit = entries.get(k)
                if hit is None:
                    out.append(None)
                else:
                    entries.move_to_end(k)
                    out.append(hit[0])
        return out

    def put_many(self, items: Iterable[tuple[Hashable, Any, int]]) -> None:
        """Insert ``(key, value, cost in bytes)``s, evicting the least recent beyond the budget;
        an item costing more than the whole budget is not kept."""
        if not self.max_bytes:
            return
        entries = self._entries
        with self._lock:
            for key, value, cost in items:
                if cost > self.max_bytes:
                    continue
                old = entries.pop(key, None)
                if old is not None:
                    self.bytes -= old[1]
                entries[key] = (value, cost)
                self.bytes += cost
            while self.bytes > self.max_bytes:
                _, (_, cost) = entries.popitem(last=False)
                self.bytes -= cost
