"""One player's Jam stream as a client holds it: connect, join, follow redirects, keep the jam's presence."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from jamservice.client.presence import PresenceView
from jamservice.v1 import jam_pb2 as pb
from jamservice.v1 import jam_pb2_grpc

DEFAULT_SERVER = "127.0.0.1:50051"

# Ping an idle connection every 20 s and give up after 10 s without an answer, so a dead server or a silent
# NAT drop ends the stream instead of leaving it hanging. The server accepts pings at most every 5 s.
CLIENT_CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 20000),
    ("grpc.keepalive_timeout_ms", 10000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)

# A redirect names a jam with room, so a second one in a row only happens when others fill it first;
# many in a row means something is wrong and the session stops rather than loop.
MAX_REDIRECTS = 8

PLAYED = pb.LOOP_EVENT_TYPE_PLAYED
STOPPED = pb.LOOP_EVENT_TYPE_STOPPED


class SessionError(Exception):
    """A client session could not go on."""


class Unreachable(SessionError):
    """The server did not accept a connection before the connect deadline."""


class TooManyRedirects(SessionError):
    """The server kept redirecting the Join."""


@dataclass(frozen=True)
class Target:
    """Where a jam server is and how to talk to it."""

    server: str = DEFAULT_SERVER
    token: str = ""
    tls_ca: str = ""

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Call metadata: the bearer token, when there is one."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def open_channel(self) -> grpc.aio.Channel:
        """A TLS channel trusting tls_ca when it is set, an insecure one otherwise."""
        if self.tls_ca:
            credentials = grpc.ssl_channel_credentials(root_certificates=Path(self.tls_ca).read_bytes())
            return grpc.aio.secure_channel(self.server, credentials, options=CLIENT_CHANNEL_OPTIONS)
        return grpc.aio.insecure_channel(self.server, options=CLIENT_CHANNEL_OPTIONS)


async def connect(target: Target, timeout: float) -> grpc.aio.Channel:
    """Open a channel and wait until it is ready, or raise Unreachable after `timeout` seconds."""
    channel = target.open_channel()
    try:
        await asyncio.wait_for(channel.channel_ready(), timeout)
    except TimeoutError:
        await channel.close()
        scheme = "TLS" if target.tls_ca else "insecure; pass --tls-ca if the server uses TLS"
        raise Unreachable(f"cannot reach {target.server} ({scheme}) within {timeout:g} s") from None
    return channel


async def fetch_stats(channel: grpc.aio.Channel, target: Target, timeout: float) -> pb.GetStatsResponse:
    """Ask the server for its jams and players."""
    stub = jam_pb2_grpc.JamServiceStub(channel)
    response: pb.GetStatsResponse = await stub.GetStats(
        pb.GetStatsRequest(), metadata=target.metadata() or None, timeout=timeout
    )
    return response


def describe(error: grpc.aio.AioRpcError) -> str:
    """A failed call as one line: status code name and details."""
    details = (error.details() or "").replace("\n", " ")
    return f"{error.code().name}: {details}" if details else error.code().name


class JamSession:
    """One Jam stream: joins, follows JoinRedirect by itself, and keeps a PresenceView of the jam."""

    def __init__(self, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self.call = jam_pb2_grpc.JamServiceStub(channel).Jam(metadata=metadata or None)
        self.presence = PresenceView()
        self.joined = asyncio.Event()
        self.user_id = ""
        self.jam_id = ""
        self.loop_name = ""
        self.name = ""
        self.redirects = 0
        self._closing = False
        # grpc.aio allows one write at a time; commands, redirects and half-close come from different tasks.
        self._write_lock = asyncio.Lock()

    async def join(self, jam_id: str = "", name: str = "") -> None:
        """Ask for a seat; the answer comes through messages()."""
        self.name = name
        await self._write(pb.JamRequest(join=pb.Join(jam_id=jam_id, name=name)))

    async def play(self) -> None:
        """Start this player's loop."""
        await self._write(pb.JamRequest(loop_event=pb.LoopEvent(type=PLAYED)))

    async def stop(self) -> None:
        """Stop this player's loop."""
        await self._write(pb.JamRequest(loop_event=pb.LoopEvent(type=STOPPED)))

    async def ping(self) -> None:
        """Ask for a Pong carrying the local clock."""
        await self._write(pb.JamRequest(ping=pb.Ping(client_time_unix_nanos=time.time_ns())))

    async def half_close(self) -> None:
        """Leave the jam: no more requests; the server then ends the stream with OK."""
        self._closing = True
        async with self._write_lock:
            await self.call.done_writing()

    def cancel(self) -> None:
        """Drop the stream at once."""
        self.call.cancel()

    @property
    def own_meta(self) -> pb.PresenceMeta | None:
        """This stream's presence meta, once joined; the user id alone is not enough when one user has two streams."""
        for meta in self.presence.state.get(self.user_id, ()):
            if meta.loop_name == self.loop_name:
                return meta
        return None

    @property
    def playing(self) -> bool:
        """Whether this stream's loop plays, as the server last reported."""
        meta = self.own_meta
        return meta is not None and meta.loop_event == PLAYED

    def display_name(self, user_id: str) -> str:
        """A user's display name from presence, or the user id when it has none."""
        for meta in self.presence.state.get(user_id, ()):
            if meta.name:
                return meta.name
        return user_id

    async def messages(self) -> AsyncIterator[pb.JamResponse]:
        """Every server message until the stream ends with OK; a failed stream raises grpc.aio.AioRpcError."""
        while True:
            response = await self.call.read()
            if response is grpc.aio.EOF:
                break
            assert isinstance(response, pb.JamResponse)
            await self._observe(response)
            yield response
        code = await self.call.code()
        if code != grpc.StatusCode.OK:
            # read() raises on a failed call in current grpcio; this keeps the contract if it ever does not.
            raise grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), await self.call.details())

    async def _observe(self, response: pb.JamResponse) -> None:
        kind = response.WhichOneof("kind")
        if kind == "joined":
            self.user_id = response.joined.user_id
            self.jam_id = response.joined.jam_id
            self.loop_name = response.joined.loop_name
            self.redirects = 0
            self.joined.set()
        elif kind == "join_redirect":
            await self._follow(response.join_redirect)
        else:
            self.presence.apply(response)

    async def _follow(self, redirect: pb.JoinRedirect) -> None:
        if self._closing:
            return
        self.redirects += 1
        if self.redirects > MAX_REDIRECTS:
            self.cancel()
            raise TooManyRedirects(f"redirected {MAX_REDIRECTS} times in a row without a seat")
        try:
            await self.join(redirect.jam_id, self.name)
        except asyncio.InvalidStateError:
            # The player half-closed meanwhile: leaving wins over following the redirect.
            if not self._closing:
                raise

    async def _write(self, request: pb.JamRequest) -> None:
        async with self._write_lock:
            await self.call.write(request)
