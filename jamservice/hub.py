"""The JamHub: this process's streams, their seats, and the fan-out of jam changes to them."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from jamservice.backends import Backend, JamChange, Seat
from jamservice.balancer import Placement
from jamservice.errors import (
    AlreadyJoined,
    JamError,
    NotJoined,
    RateLimited,
    ShuttingDown,
    SlowConsumer,
    TooManyStreams,
)
from jamservice.messages import Joined, LoopChange, Outgoing, Pong, Redirected, Snapshot
from jamservice.outbox import Outbox
from jamservice.presence import LoopEventType
from jamservice.ratelimit import TokenBucket

log = logging.getLogger(__name__)

Encoder = Callable[[Outgoing], bytes]


class Member:
    """One stream: its identity, its seat if it has one, and its outbox."""

    __slots__ = ("jam_id", "kicked", "limiter", "on_kick", "outbox", "ping_limiter", "seq", "stream_id", "user_id")

    def __init__(
        self,
        user_id: str,
        outbox: Outbox,
        limiter: TokenBucket,
        ping_limiter: TokenBucket,
        on_kick: Callable[[JamError], None],
    ) -> None:
        self.stream_id = uuid.uuid4().hex
        self.user_id = user_id
        self.jam_id: str | None = None
        # Changes of the jam up to this seq are already in what the member was sent.
        self.seq = 0
        self.outbox = outbox
        self.limiter = limiter
        self.ping_limiter = ping_limiter
        self.on_kick = on_kick
        self.kicked = False

    def kick(self, error: JamError) -> None:
        """End the stream with this error, once."""
        if not self.kicked:
            self.kicked = True
            self.outbox.close()
            self.on_kick(error)


class JamHub:
    """Sends joins, leaves and loop events to the backend and fans its changes out to local members."""

    def __init__(self, backend: Backend, encode: Encoder, max_streams: int) -> None:
        self.backend = backend
        self.encode = encode
        self.max_streams = max_streams
        self.members: dict[str, Member] = {}
        self._jams: dict[str, dict[str, Member]] = {}
        self.closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        backend.listener = self._fan_out

    def attach(self, member: Member) -> None:
        """Count a new stream in, or refuse it."""
        if self.closing:
            raise ShuttingDown()
        if len(self.members) >= self.max_streams:
            raise TooManyStreams(f"this server holds its limit of {self.max_streams} streams")
        self.members[member.stream_id] = member

    async def detach(self, member: Member) -> None:
        """Leave the jam, if in one, and forget the stream."""
        try:
            await self.leave(member)
        finally:
            self.members.pop(member.stream_id, None)

    def send(self, member: Member, message: Outgoing) -> None:
        """Queue one message for one member; a full outbox ends its stream."""
        if not member.outbox.put(self.encode(message)):
            member.kick(SlowConsumer())

    async def join(self, member: Member, jam_id: str, name: str) -> None:
        """Seat the member, or send it a redirect when the jam is full."""
        if member.jam_id is not None:
            raise AlreadyJoined(f"already in jam {member.jam_id}")
        result = await self.backend.join(
            member.stream_id, member.user_id, name, jam_id, lambda seat: self._seat(member, seat)
        )
        if isinstance(result, Placement):
            self.send(member, Redirected(jam_id, result.jam_id))

    def _seat(self, member: Member, seat: Seat) -> None:
        # Runs in the same step as the backend's change, so the member misses no later change of the jam.
        if member.stream_id not in self.members:
            # The stream ended while its join was under way: give the seat back.
            self._spawn(self.backend.leave(seat.jam_id, member.stream_id))
            return
        member.jam_id = seat.jam_id
        member.seq = seat.seq
        self._jams.setdefault(seat.jam_id, {})[member.stream_id] = member
        self.send(member, Joined(member.user_id, seat.jam_id, seat.meta.loop_name))
        self.send(member, Snapshot(seat.state))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background jam task failed", exc_info=task.exception())

    async def leave(self, member: Member) -> None:
        """Give up the member's seat; harmless when it has none."""
        jam_id = member.jam_id
        if jam_id is None:
            return
        member.jam_id = None
        local = self._jams.get(jam_id)
        if local is not None:
            local.pop(member.stream_id, None)
            if not local:
                del self._jams[jam_id]
        await self.backend.leave(jam_id, member.stream_id)

    async def play(self, member: Member, loop_event: LoopEventType) -> None:
        """Record a loop event, which fans out as a presence update and a LoopEvent."""
        if member.jam_id is None:
            raise NotJoined("join a jam before sending loop events")
        if not member.limiter.allow():
            raise RateLimited(
                f"more than {member.limiter.rate:g} loop events a second (burst {member.limiter.burst:g})"
            )
        await self.backend.set_loop_event(member.jam_id, member.stream_id, loop_event)

    def pong(self, member: Member, client_time: int) -> None:
        """Answer a Ping, within the member's ping rate."""
        if not member.ping_limiter.allow():
            raise RateLimited(
                f"more than {member.ping_limiter.rate:g} pings a second (burst {member.ping_limiter.burst:g})"
            )
        self.send(member, Pong(client_time, time.time_ns()))

    async def stats(self) -> dict[str, int]:
        """Every jam and its number of streams."""
        return await self.backend.stats()

    async def close(self) -> None:
        """Refuse new streams, process every member's leave, then end every stream as shutting down."""
        self.closing = True
        for member in list(self.members.values()):
            member.outbox.close()
        for member in list(self.members.values()):
            await self.leave(member)
            member.kick(ShuttingDown())
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _fan_out(self, change: JamChange) -> None:
        members = self._jams.get(change.jam_id)
        if not members:
            return
        diff = self.encode(change.diff)
        event = None
        if change.loop_event:
            event = self.encode(LoopChange(change.user_id, change.loop_event))
        for member in members.values():
            if member.seq >= change.seq:
                continue
            member.seq = change.seq
            outbox = member.outbox
            if not outbox.put(diff) or (event is not None and member.stream_id != change.stream_id and not outbox.put(event)):
                member.kick(SlowConsumer())
