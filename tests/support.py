"""Test helpers: a member that wraps one Jam stream, and a harness around a running server."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from jamservice.server import JamServer
from jamservice.v1 import jam_pb2 as pb
from jamservice.v1 import jam_pb2_grpc

TIMEOUT = 5.0

PLAYED = pb.LOOP_EVENT_TYPE_PLAYED
STOPPED = pb.LOOP_EVENT_TYPE_STOPPED


class JamClient:
    """One Jam stream, with helpers that wait on it with a timeout."""

    def __init__(self, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self.channel = channel
        self.call = jam_pb2_grpc.JamServiceStub(channel).Jam(metadata=metadata or None)
        self.user_id = ""
        self.jam_id = ""
        self.loop_name = ""

    async def send(self, request: pb.JamRequest) -> None:
        await self.call.write(request)

    async def next(self, kind: str | None = None, timeout: float = TIMEOUT) -> pb.JamResponse:
        """The next response; fails if it does not come in time or is of another kind."""
        response = await asyncio.wait_for(self.call.read(), timeout)
        assert response is not grpc.aio.EOF, "stream ended"
        assert isinstance(response, pb.JamResponse)
        if kind is not None:
            got = response.WhichOneof("kind")
            assert got == kind, f"expected {kind}, got {got}: {response}"
        return response

    async def join(self, jam_id: str = "", name: str = "") -> pb.PresenceState:
        """Join and return the PresenceState that follows Joined."""
        await self.send(pb.JamRequest(join=pb.Join(jam_id=jam_id, name=name)))
        joined = (await self.next("joined")).joined
        self.user_id, self.jam_id, self.loop_name = joined.user_id, joined.jam_id, joined.loop_name
        return (await self.next("presence_state")).presence_state

    async def loop_event(self, kind: int, user_id: str = "") -> None:
        await self.send(pb.JamRequest(loop_event=pb.LoopEvent(type=kind, user_id=user_id)))  # type: ignore[arg-type]

    async def play(self) -> None:
        await self.loop_event(PLAYED)

    async def stop(self) -> None:
        await self.loop_event(STOPPED)

    async def diff(self, timeout: float = TIMEOUT) -> pb.PresenceDiff:
        return (await self.next("presence_diff", timeout)).presence_diff

    async def status(self, timeout: float = TIMEOUT) -> tuple[grpc.StatusCode, str]:
        """Read until the stream ends and return its status, skipping any messages on the way."""

        async def drain() -> None:
            while await self.call.read() is not grpc.aio.EOF:
                pass

        try:
            await asyncio.wait_for(drain(), timeout)
        except grpc.aio.AioRpcError:
            pass
        except TimeoutError:
            self.call.cancel()
            raise AssertionError(f"stream still open after {timeout} s") from None
        return await self.call.code(), await self.call.details() or ""

    async def half_close(self) -> None:
        await self.call.done_writing()

    def cancel(self) -> None:
        self.call.cancel()


@dataclasses.dataclass
class Harness:
    """A running server and a way to open members on it."""

    server: JamServer
    address: str
    channels: list[grpc.aio.Channel]
    clients: list[JamClient]

    def channel(self, **kwargs: Any) -> grpc.aio.Channel:
        channel = grpc.aio.insecure_channel(self.address, **kwargs)
        self.channels.append(channel)
        return channel

    def client(self, channel: grpc.aio.Channel | None = None, metadata: tuple[tuple[str, str], ...] = ()) -> JamClient:
        """A new stream, on its own channel unless one is given."""
        client = JamClient(channel or self.channel(), metadata)
        self.clients.append(client)
        return client

    async def joined(self, jam_id: str = "", name: str = "") -> JamClient:
        client = self.client()
        await client.join(jam_id, name)
        return client

    async def stats(self) -> pb.GetStatsResponse:
        stub = jam_pb2_grpc.JamServiceStub(self.channels[0] if self.channels else self.channel())
        return await stub.GetStats(pb.GetStatsRequest(), timeout=TIMEOUT)

    async def wait_until(self, predicate: Callable[[], Awaitable[bool]], timeout: float = TIMEOUT) -> None:
        """Poll server-side state until it holds; for state that no stream reports."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not await predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.01)


