"""A load process: many Jam streams multiplexed over a few channels, driven by the harness over a pipe.

Every stream sends and receives raw bytes, so the generator spends no time on protobuf beyond
one parse of each Joined; loop events are matched to their sender by slicing the user id out of
the encoded JamResponse. Times come from time.perf_counter_ns (CLOCK_MONOTONIC), which every
process of the machine shares, so the harness can open and close measurement windows.
"""

from __future__ import annotations

import asyncio
import math
import random
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from time import perf_counter_ns
from typing import Any

import grpc

from jamservice.v1 import jam_pb2 as pb

JAM_METHOD = "/jamservice.v1.JamService/Jam"
STATS_METHOD = "/jamservice.v1.JamService/GetStats"
PLAY = pb.JamRequest(loop_event=pb.LoopEvent(type=pb.LOOP_EVENT_TYPE_PLAYED)).SerializeToString()
STOP = pb.JamRequest(loop_event=pb.LoopEvent(type=pb.LOOP_EVENT_TYPE_STOPPED)).SerializeToString()
JAM_SIZE = 7
# The first byte of an encoded JamResponse: field number << 3 | wire type 2 (length-delimited).
LOOP_EVENT_TAG = 5 << 3 | 2
# Streams opened at once: a larger burst can push grpc's server past its pending-call backlog limit
# (grpc.server.max_pending_requests, 1000 by default), and it then sheds calls with RST_STREAM.
OPEN_WAVE = 200
PRESENCE_STATE_TAG = 3 << 3 | 2
# Each channel is its own TCP connection: without this, channels to one target share a subchannel.
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]


def join_request(jam_id: str) -> bytes:
    """An encoded Join for jam_id (empty: auto-placement)."""
    return pb.JamRequest(join=pb.Join(jam_id=jam_id)).SerializeToString()


def loop_event_sender(raw: bytes) -> bytes:
    """The user id of an encoded JamResponse carrying a LoopEvent."""
    # Fast path: tag, one-byte length, user_id field (tag 0x0a) with a one-byte length.
    if raw[1] < 0x80 and raw[2] == 0x0A and raw[3] < 0x80:
        return raw[4 : 4 + raw[3]]
    return pb.JamResponse.FromString(raw).loop_event.user_id.encode()


JOIN_AUTO = join_request("")


@dataclass(slots=True)
class Window:
    """A measurement window and what the streams counted inside it."""

    start: int = 0
    end: int = 0
    sent: int = 0
    received: int = 0
    latencies: list[int] = field(default_factory=list)


class Member:
    """One joined stream, with the send times of its loop events and its read position per sender."""

    __slots__ = ("call", "cursors", "peers", "reader", "sent", "user_id")

    def __init__(self, call: Any, user_id: bytes) -> None:
        self.call = call
        self.user_id = user_id
        self.sent: list[int] = []
        self.cursors: dict[bytes, int] = {}
        self.peers = 0
        self.reader: asyncio.Task[None] | None = None


class Session:
    """The streams this process holds on one server."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.channels: list[grpc.aio.Channel] = []
        self.stats_channel: grpc.aio.Channel | None = None
        self.streams = 0
        self.members: list[Member] = []
        self.pending: list[Any] = []
        self.by_user: dict[bytes, Member] = {}
        self.window = Window()
        self.expected = 0
        self.delivered = 0
        self.received = 0
        self.sends = 0
        self.errors: list[str] = []
        self.generation = 0
        self.jams = 0
        self.closing = False

    async def reserve(self, count: int, per_channel: int) -> None:
        """Open and connect the channels that the next `count` streams need."""
        last = (self.streams + count - 1) // per_channel
        fresh = []
        while len(self.channels) <= last:
            fresh.append(grpc.aio.insecure_channel(self.address, options=CHANNEL_OPTIONS))
            self.channels.append(fresh[-1])
        # Connect first, so that no timed join also waits for a TCP and HTTP/2 handshake.
        await asyncio.gather(*(asyncio.wait_for(channel.channel_ready(), 30) for channel in fresh))

    def channel(self, per_channel: int) -> grpc.aio.Channel:
        """The channel for the next stream: a new one every per_channel streams (see reserve())."""
        index = self.streams // per_channel
        self.streams += 1
        return self.channels[index]


class LoadWorker:
    """The commands the harness sends to a load process."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.sessions: dict[str, Session] = {}

    async def open_session(self, name: str, address: str) -> None:
        """Start holding streams on the server at address."""
        await self.close_session(name)
        self.sessions[name] = Session(address)

    async def setup_fanout(self, name: str, jams: int, channels: int) -> dict[str, Any]:
        """Fill `jams` jams of seven members each, spreading the streams over `channels` channels."""
        session = self.sessions[name]
        session.jams = jams
        session.generation += 1
        per_channel = max(1, math.ceil(jams * JAM_SIZE / channels))
        await session.reserve(jams * JAM_SIZE, per_channel)
        started = perf_counter_ns()
        await asyncio.gather(*(self._fill_jam(session, j, per_channel) for j in range(jams)))
        return {"members": len(session.members), "seconds": (perf_counter_ns() - started) / 1e9}

    async def ensure_fanout(self, name: str, channels: int) -> dict[str, Any]:
        """Rebuild the fan-out jams on fresh streams if any stream failed."""
        session = self.sessions[name]
        if not session.errors:
            return {"rebuilt": False}
        errors = list(session.errors)
        address, jams = session.address, session.jams
        await self.close_session(name)
        self.sessions[name] = Session(address)
        self.sessions[name].generation = session.generation
        await self.setup_fanout(name, jams, channels)
        return {"rebuilt": True, "errors": errors}

    async def run_level(
        self, name: str, rate_per_member: float, start_ns: int, warmup_ns: int, duration_ns: int, drain_s: float
    ) -> dict[str, Any]:
        """Play and stop every member's loop at a fixed rate; count and time what arrives in the window."""
        session = self.sessions[name]
        window = Window(start_ns + warmup_ns, start_ns + warmup_ns + duration_ns)
        session.window = window
        received_before, sends_before = session.received, session.sends
        period = int(1e9 / rate_per_member)
        senders = [
            asyncio.create_task(self._play(session, member, period, start_ns + random.randrange(period), window.end))
            for member in session.members
        ]
        await asyncio.gather(*senders)
        deadline = perf_counter_ns() + int(drain_s * 1e9)
        while session.delivered < session.expected and not session.errors and perf_counter_ns() < deadline:
            await asyncio.sleep(0.01)
        session.window = Window()
        return {
            "level_sent": session.sends - sends_before,
            "level_received": session.received - received_before,
            "sent": window.sent,
            "received": window.received,
            "latencies_ns": window.latencies,
            "undelivered": session.expected - session.delivered,
            "errors": list(session.errors),
        }

    async def open_streams(self, name: str, count: int, per_channel: int) -> dict[str, Any]:
        """Open `count` Jam calls that have not joined yet, a wave at a time."""
        session = self.sessions[name]
        await session.reserve(count, per_channel)
        reopened = 0
        errors: list[str] = []
        for wave in range(0, count, OPEN_WAVE):
            channels = [session.channel(per_channel) for _ in range(min(OPEN_WAVE, count - wave))]
            calls = [channel.stream_stream(JAM_METHOD)() for channel in channels]
            for attempt in range(3):
                results = await asyncio.gather(*(c.wait_for_connection() for c in calls), return_exceptions=True)
                failed = [i for i, result in enumerate(results) if result is not None]
                if not failed:
                    break
                if attempt == 2:
                    raise RuntimeError(f"could not open {len(failed)} calls: {results[failed[0]]!r}")
                # grpc's server sheds calls that wait too long for the application to pick them up; retry those.
                reopened += len(failed)
                errors += [repr(results[i]) for i in failed[:2]]
                for i in failed:
                    calls[i] = channels[i].stream_stream(JAM_METHOD)()
            session.pending.extend(calls)
        return {"opened": count, "reopened": reopened, "reopen_errors": errors[:4]}

    async def storm(self, name: str, start_ns: int) -> dict[str, Any]:
        """At start_ns, send an auto-placed Join on every pending call at once; time each to its PresenceState."""
        session = self.sessions[name]
        calls, session.pending = session.pending, []
        await _sleep_until(start_ns)
        results = await asyncio.gather(*(self._join(session, call, "") for call in calls), return_exceptions=True)
        timings = [r for r in results if isinstance(r, tuple)]
        errors = [repr(r) for r in results if not isinstance(r, tuple)]
        return {
            "joined": len(timings),
            "first_sent_ns": min((t[0] for t in timings), default=0),
            "last_received_ns": max((t[1] for t in timings), default=0),
            "latencies_ns": [t[1] - t[0] for t in timings],
            "errors": errors,
        }

    async def join_many(self, name: str, count: int, per_channel: int, concurrency: int) -> dict[str, Any]:
        """Open and join `count` more auto-placed members, `concurrency` at a time."""
        session = self.sessions[name]
        gate = asyncio.Semaphore(concurrency)

        async def one() -> tuple[int, int]:
            async with gate:
                return await self._join(session, session.channel(per_channel).stream_stream(JAM_METHOD)(), "")

        await session.reserve(count, per_channel)
        started = perf_counter_ns()
        results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
        errors = [repr(r) for r in results if not isinstance(r, tuple)]
        return {"joined": count - len(errors), "errors": errors[:5], "seconds": (perf_counter_ns() - started) / 1e9}

    async def stats(self, name: str) -> dict[str, int]:
        """The server's GetStats counts."""
        session = self.sessions[name]
        if session.stats_channel is None:
            session.stats_channel = grpc.aio.insecure_channel(session.address, options=CHANNEL_OPTIONS)
        call = session.stats_channel.unary_unary(
            STATS_METHOD,
            request_serializer=pb.GetStatsRequest.SerializeToString,
            response_deserializer=pb.GetStatsResponse.FromString,
        )
        response = await call(pb.GetStatsRequest(), timeout=10)
        return {"jam_count": response.jam_count, "user_count": response.user_count}

    async def close_session(self, name: str) -> None:
        """Cancel every call of the session and close its channels."""
        session = self.sessions.pop(name, None)
        if session is None:
            return
        session.closing = True
        for member in session.members:
            member.call.cancel()
        for call in session.pending:
            call.cancel()
        readers = [m.reader for m in session.members if m.reader is not None]
        await asyncio.gather(*readers, return_exceptions=True)
        channels = [*session.channels, *([session.stats_channel] if session.stats_channel else [])]
        await asyncio.gather(*(channel.close() for channel in channels), return_exceptions=True)

    async def close_all(self) -> None:
        """Close every session."""
        for name in list(self.sessions):
            await self.close_session(name)

    async def _fill_jam(self, session: Session, jam: int, per_channel: int) -> None:
        jam_id = f"bench-{self.index}-{session.generation}-{jam}"
        members: list[Member] = []
        for _ in range(JAM_SIZE):
            await self._join(session, session.channel(per_channel).stream_stream(JAM_METHOD)(), jam_id)
            members.append(session.members[-1])
        for member in members:
            member.peers = len(members) - 1

    async def _join(self, session: Session, call: Any, jam_id: str) -> tuple[int, int]:
        request = join_request(jam_id) if jam_id else JOIN_AUTO
        sent = perf_counter_ns()
        await call.write(request)
        user_id = b""
        while True:
            raw = await call.read()
            if raw is grpc.aio.EOF:
                raise RuntimeError(f"stream ended while joining: {await call.code()} {await call.details()}")
            if raw[0] == PRESENCE_STATE_TAG:
                break
            response = pb.JamResponse.FromString(raw)
            if response.WhichOneof("kind") == "joined":
                user_id = response.joined.user_id.encode()
            elif response.WhichOneof("kind") == "join_redirect":
                raise RuntimeError(f"redirected from {jam_id!r}")
        received = perf_counter_ns()
        member = Member(call, user_id)
        session.members.append(member)
        session.by_user[user_id] = member
        member.reader = asyncio.create_task(self._read(session, member))
        return sent, received

    async def _read(self, session: Session, member: Member) -> None:
        read = member.call.read
        cursors = member.cursors
        by_user = session.by_user
        try:
            while (raw := await read()) is not grpc.aio.EOF:
                now = perf_counter_ns()
                session.received += 1
                window = session.window
                if window.start <= now < window.end:
                    window.received += 1
                if raw[0] == LOOP_EVENT_TAG:
                    user_id = loop_event_sender(raw)
                    sender = by_user.get(user_id)
                    if sender is None:
                        continue
                    index = cursors.get(user_id, 0)
                    cursors[user_id] = index + 1
                    session.delivered += 1
                    sent = sender.sent[index]
                    if window.start <= sent < window.end:
                        window.latencies.append(now - sent)
            if not session.closing:
                session.errors.append(f"stream ended: {await member.call.code()}")
        except grpc.aio.AioRpcError as error:
            if not session.closing:
                session.errors.append(f"{error.code().name}: {error.details()}")
        except IndexError:
            session.errors.append("a loop event arrived that its sender never sent")

    async def _play(self, session: Session, member: Member, period: int, first: int, stop: int) -> None:
        window = session.window
        write = member.call.write
        sent = member.sent
        due = first
        play = True
        try:
            while due < stop:
                delay = due - perf_counter_ns()
                if delay > 0:
                    await asyncio.sleep(delay / 1e9)
                now = perf_counter_ns()
                sent.append(now)
                session.sends += 1
                session.expected += member.peers
                if window.start <= now < window.end:
                    window.sent += 1
                await write(PLAY if play else STOP)
                play = not play
                # Open loop at the offered rate, but a sender that fell a whole period behind does not burst.
                due = max(due + period, now)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as error:
            session.errors.append(f"write failed: {error!r}")


async def _sleep_until(deadline_ns: int) -> None:
    delay = deadline_ns - perf_counter_ns()
    if delay > 0:
        await asyncio.sleep(delay / 1e9)


async def _serve(conn: Connection, index: int) -> None:
    worker = LoadWorker(index)
    loop = asyncio.get_running_loop()
    try:
        while True:
            try:
                message = await loop.run_in_executor(None, conn.recv)
            except EOFError:
                return
            if message is None:
                return
            command, kwargs = message
            method: Callable[..., Awaitable[Any]] = getattr(worker, command)
            try:
                conn.send(("ok", await method(**kwargs)))
            except Exception:  # noqa: BLE001 - any failure goes back to the harness, which reports it
                conn.send(("error", traceback.format_exc()))
    finally:
        await worker.close_all()


def worker_main(conn: Connection, index: int) -> None:
    """Entry point of a load process."""
    asyncio.run(_serve(conn, index))
