"""A bounded queue of encoded messages for one stream, with the task that writes them."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Write = Callable[[bytes], Awaitable[None]]


class Outbox:
    """Messages waiting to be written to one stream.

    put() never blocks: it returns False when the outbox is full, and the caller
    then ends the stream as a slow consumer. A writer task exists only while
    messages are waiting, so an idle stream costs no task.
    """

    __slots__ = ("_items", "_limit", "_write", "_writer", "closed")

    def __init__(self, limit: int, write: Write) -> None:
        self._items: deque[bytes] = deque()
        self._limit = limit
        self._write = write
        self._writer: asyncio.Task[None] | None = None
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
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain())
        return True

    async def _drain(self) -> None:
        try:
            while self._items:
                await self._write(self._items.popleft())
        except asyncio.CancelledError:
            raise
        except Exception:
            # The stream is gone; its handler is being cancelled and will clean up.
            log.debug("write failed", exc_info=True)
            self.closed = True
            self._items.clear()
        finally:
            self._writer = None

    def close(self) -> None:
        """Take no more messages."""
        self.closed = True

    async def flush(self) -> None:
        """Take no more messages and wait until the queued ones are written."""
        self.closed = True
        while (writer := self._writer) is not None:
            await asyncio.shield(writer)

    async def discard(self) -> None:
        """Take no more messages, drop the queued ones, and stop the writer."""
        self.closed = True
        self._items.clear()
        writer = self._writer
        if writer is None:
            return
        writer.cancel()
        try:
            await writer
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
