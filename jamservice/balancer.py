"""The JamBalancer: where a player goes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a join lands; redirected_from names a requested jam that was full."""

    jam_id: str
    redirected_from: str | None = None


def new_jam_id() -> str:
    """A fresh jam id."""
    return str(uuid.uuid4())


class JamBalancer:
    """Tracks how many seats each jam uses and picks the most populated jam with room.

    Jams are kept in buckets by size, so a placement costs O(capacity), not O(jams).
    Among equally populated jams, the one that reached that size first wins.
    """

    def __init__(self, capacity: int, make_id: Callable[[], str] = new_jam_id) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._make_id = make_id
        self._sizes: dict[str, int] = {}
        self._buckets: list[dict[str, None]] = [{} for _ in range(capacity + 1)]

    def size(self, jam_id: str) -> int:
        """Seats in use in a jam; 0 for a jam that does not exist."""
        return self._sizes.get(jam_id, 0)

    def best(self) -> str:
        """The most populated jam with room, or a new jam id."""
        for size in range(self.capacity - 1, 0, -1):
            bucket = self._buckets[size]
            if bucket:
                return next(iter(bucket))
        return self._make_id()

    def place(self, requested: str = "") -> Placement:
        """Place a join: the requested jam if it has room, else a redirect to best()."""
        if not requested:
            return Placement(self.best())
        if self.size(requested) < self.capacity:
            return Placement(requested)
        return Placement(self.best(), redirected_from=requested)

    def resize(self, jam_id: str, size: int) -> None:
        """Record a jam's new size; size 0 forgets the jam."""
        if not 0 <= size <= self.capacity:
            raise ValueError(f"jam size {size} outside 0..{self.capacity}")
        old = self._sizes.pop(jam_id, 0)
        self._buckets[old].pop(jam_id, None)
        if size:
            self._sizes[jam_id] = size
            self._buckets[size][jam_id] = None

    def jams(self) -> dict[str, int]:
        """Every jam and its size."""
        return dict(self._sizes)
