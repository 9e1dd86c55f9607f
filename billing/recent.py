"""A small per-process memory of recent answers, for lookups every request makes.

Entries live `seconds` and are dropped at once when this process changes what they
remember; another worker's change is seen within `seconds`.
"""

from __future__ import annotations

import time
import weakref
from typing import Generic, Hashable, TypeVar

V = TypeVar("V")
_MISSING = object()


_ALL: "weakref.WeakSet[Recent]" = weakref.WeakSet()


class Recent(Generic[V]):
    def __init__(self, seconds: int, max_entries: int = 1024) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, V]] = {}
        _ALL.add(self)

    def get(self, key: Hashable) -> V | object:
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[0] > self.seconds:
            return _MISSING
        return entry[1]

    def put(self, key: Hashable, value: V) -> V:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (time.monotonic(), value)
        return value

    def clear(self) -> None:
        self._entries.clear()


MISSING = _MISSING


def forget_remembered() -> None:
    """Empty every Recent memory in this process (the tests do, between tests, since each
    one's database starts empty again)."""
    for memory in list(_ALL):
        memory.clear()
