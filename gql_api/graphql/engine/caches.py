"""A least-recently-used cache bounded by bytes, for values derived from request texts.

Entry counts are no bound when the keys are client-chosen: 1,024 entries of one-megabyte
documents are a gigabyte. Each entry here declares its size (the key's text plus an estimate of
what it keeps alive); the cache evicts the least recently used entries until the total fits, and
refuses outright an entry larger than ``max_entry_bytes``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BytesBoundedLRU(Generic[K, V]):
    def __init__(self, *, max_bytes: int, max_entry_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = min(max_entry_bytes, max_bytes)
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self.total_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        found = self._entries.get(key)
        if found is None:
            return None
        self._entries.move_to_end(key)
        return found[0]

    def put(self, key: K, value: V, size: int) -> bool:
        """Keep ``value`` under ``key``; False when it is too large to be kept at all."""
        if size > self.max_entry_bytes:
            return False
        previous = self._entries.pop(key, None)
        if previous is not None:
            self.total_bytes -= previous[1]
        self._entries[key] = (value, size)
        self.total_bytes += size
        while self.total_bytes > self.max_bytes:
            _key, (_value, evicted) = self._entries.popitem(last=False)
            self.total_bytes -= evicted
        return True
