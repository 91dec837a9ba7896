"""Memos bounded in bytes as well as entries: what hostile input may cost us in memory.

Every memo here is keyed by something an admitted object contains (an image string, a
registry host label, a namespace's labels). ``functools.lru_cache`` bounds entries only, and
an entry can be a kilobyte-long image with its parsed parts: ten thousand distinct
adversarial images grew a worker by 70-180 MiB that it never gave back (BENCHMARKS.md §6).
A :class:`Memo` weighs each entry (an estimate of the bytes its key and value hold) and
forgets everything when either bound is reached: a steady cluster repeats the same few
images, so the memo refills with what matters at once, and an attacker buys a bounded cost.

Not locked: under the GIL a race costs at most a recomputation or a stale byte count, and
the memo is cleared on the next overflow either way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Memo"]

K = TypeVar("K")
V = TypeVar("V")

_MISSING = object()


class Memo(Generic[K, V]):
    """``compute(key)`` remembered, up to ``entries`` entries and ``max_bytes`` estimated."""

    def __init__(self, weigh: Callable[[K, V], int], *, entries: int, max_bytes: int) -> None:
        self._entries: dict[K, V] = {}
        self._weigh = weigh
        self._limit = entries
        self._max_bytes = max_bytes
        # One entry may take a 64th of the memo: a pod of thousands of containers (a hostile
        # 3 MiB body) is decided afresh each time instead of evicting everything else and
        # pinning its whole object graph; real workloads are far below this.
        self._max_entry_bytes = max(1, max_bytes // 64)
        self._bytes = 0

    def get(self, key: K, compute: Callable[[K], V]) -> V:
        found = self._entries.get(key, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]  # not the sentinel: a stored V
        value = compute(key)
        weight = self._weigh(key, value)
        if weight > self._max_entry_bytes:
            return value  # too large to be worth keeping: answer without it
        if len(self._entries) >= self._limit or self._bytes + weight > self._max_bytes:
            self._entries, self._bytes = {}, 0
        self._entries[key] = value
        self._bytes += weight
        return value

    def clear(self) -> None:
        self._entries, self._bytes = {}, 0

    @property
    def size(self) -> tuple[int, int]:
        """(entries, estimated bytes) held now."""
        return len(self._entries), self._bytes
