"""A bounded queue of encoded messages for one stream."""

from __future__ import annotations

import asyncio
from collections import deque


class Outbox:
    """Messages waiting to be written to one stream.

    put() never blocks: it returns False when the outbox is full, and the caller
    then ends the stream as a slow consumer. One writer awaits get().
    """

    __slots__ = ("_items", "_limit", "_waiter", "closed")

    def __init__(self, limit: int) -> None:
        self._items: deque[bytes] = deque()
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: bytes) -> bool:
        """Queue a message; False when full. Messages put after close() are dropped."""
        if self.closed:
            return True
        if len(self._items) >= self._limit:
            return False
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    async def get(self) -> bytes | None:
        """The next message; None once the outbox is closed and drained."""
        while not self._items:
            if self.closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()

    def close(self) -> None:
        """Take no more messages; get() drains what is queued, then returns None."""
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
