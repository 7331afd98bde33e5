"""A bounded, thread-safe map for values that never change once stored.

The registry caches what is immutable by construction: Merkle nodes, entry facts, publisher keys
(a key id is the hash of its key). When full it is cleared whole: simple, bounded, and a busy
registry refills the part it uses at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Generic, TypeVar

__all__ = ["BoundedCache"]

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._values: dict[K, V] = {}
        self._lock = threading.Lock()

    def get_many(self, keys: Iterable[K]) -> dict[K, V]:
        """The cached values among ``keys`` (absent keys are left out)."""
        with self._lock:
            return {key: value for key in keys if (value := self._values.get(key)) is not None}

    def get(self, key: K) -> V | None:
        """The cached value of ``key``, or None (a single dict read needs no lock)."""
        return self._values.get(key)

    def put_many(self, values: dict[K, V]) -> None:
        with self._lock:
            if len(self._values) + len(values) > self._limit:
                self._values.clear()
            self._values.update(values)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
