"""The JamService servicer: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

import grpc

from jamservice import errors, wire
from jamservice.auth import Authenticator
from jamservice.config import Settings
from jamservice.hub import JamHub, Member
from jamservice.messages import Join, Ping, Play
from jamservice.outbox import Outbox
from jamservice.ratelimit import TokenBucket
from jamservice.v1 import jam_pb2 as pb

log = logging.getLogger(__name__)

SERVICE_NAME = "jamservice.v1.JamService"

# How long a refused stream waits for its first request before it is told why.
REFUSE_READ_SECONDS = 1.0

STATUS: dict[type[errors.JamError], grpc.StatusCode] = {
    errors.BadRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotJoined: grpc.StatusCode.FAILED_PRECONDITION,
    errors.AlreadyJoined: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Impersonation: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.SlowConsumer: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.TooManyStreams: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.JoinTimeout: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.ShuttingDown: grpc.StatusCode.UNAVAILABLE,
}


def status_of(error: errors.JamError) -> grpc.StatusCode:
    """The gRPC status code for a domain error."""
    return STATUS.get(type(error), grpc.StatusCode.INTERNAL)


class JamServicer:
    """Serves the Jam stream and GetStats on top of a JamHub."""

    def __init__(self, hub: JamHub, settings: Settings) -> None:
        self.hub = hub
        self.settings = settings
        self.auth = Authenticator(settings.auth_secret) if settings.auth_secret else None
        self._aborts: set[asyncio.Task[None]] = set()

    async def Jam(self, request_iterator: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
        try:
            member = Member(
                self._identify(context),
                Outbox(self.settings.outbox_size, context.write),
                TokenBucket(self.settings.loop_event_rate, self.settings.loop_event_burst),
                TokenBucket(self.settings.ping_rate, self.settings.ping_burst),
                lambda error: self._kick(context, member, error),
            )
            self.hub.attach(member)
        except errors.JamError as error:
            await self._refuse(context, error)
        try:
            try:
                if await self._send_headers(context):
                    await self._read(context, member)
            finally:
                await self.hub.detach(member)
            await member.outbox.flush()
        except errors.JamError as error:
            await member.outbox.discard()
            if not member.kicked:
                member.kicked = True
                await context.abort(status_of(error), str(error))
        finally:
            await member.outbox.discard()

    async def _send_headers(self, context: grpc.aio.ServicerContext[bytes, bytes]) -> bool:
        """Send the response headers on their own; False when the call is already gone."""
        # A status sent while the first message is still being written would otherwise carry the
        # headers again, which grpc refuses (TOO_MANY_OPERATIONS) and the client never hears why.
        try:
            await context.send_initial_metadata(())
        except Exception:
            log.debug("call ended before its headers were sent", exc_info=True)
            return False
        return True

    async def _refuse(self, context: grpc.aio.ServicerContext[bytes, bytes], error: errors.JamError) -> None:
        """End a stream that was never let in, once its first request has arrived (or a moment passed)."""
        # grpc's asyncio client reports INTERNAL instead of our status when one of its writes fails
        # after the call ended (grpc/grpc#36066); reading first lets the client's Join land.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(context.read(), REFUSE_READ_SECONDS)
        await context.abort(status_of(error), str(error))

    async def GetStats(self, request: pb.GetStatsRequest, context: grpc.aio.ServicerContext[pb.GetStatsRequest, pb.GetStatsResponse]) -> pb.GetStatsResponse:
        try:
            self._identify(context)
        except errors.JamError as error:
            await context.abort(status_of(error), str(error))
        jams = await self.hub.stats()
        response = pb.GetStatsResponse(jam_count=len(jams), user_count=sum(jams.values()))
        for jam_id, count in jams.items():
            response.jams[jam_id].user_count = count
        return response

    def _identify(self, context: grpc.aio.ServicerContext[object, object]) -> str:
        if self.auth is None:
            return str(uuid.uuid4())
        return self.auth.user_id(context.invocation_metadata() or ())

    async def _read(self, context: grpc.aio.ServicerContext[bytes, bytes], member: Member) -> None:
        joined_once = False
        loop = asyncio.get_running_loop()
        seat_deadline = loop.time() + self.settings.join_timeout_seconds
        while True:
            if member.seq:
                raw = await context.read()
            else:
                # A stream that has never held a seat must get one in time, or it would keep a
                # slot of --max-streams for nothing.
                try:
                    raw = await asyncio.wait_for(context.read(), max(0.0, seat_deadline - loop.time()))
                except TimeoutError:
                    raise errors.JoinTimeout(
                        f"no seat within {self.settings.join_timeout_seconds:g} s: send a Join first"
                    ) from None
            if raw is grpc.aio.EOF:
                return
            if member.kicked:
                # Its status is on the way (behind what it has not read); nothing more of it counts.
                continue
            request = wire.decode_request(raw)  # type: ignore[arg-type]
            if isinstance(request, Join):
                joined_once = True
                await self.hub.join(member, request.jam_id, request.name)
            elif not joined_once:
                raise errors.BadRequest("the first request must be a Join")
            elif isinstance(request, Play):
                if request.user_id and request.user_id != member.user_id:
                    raise errors.Impersonation("loop_event.user_id must be empty or your own user id")
                await self.hub.play(member, request.loop_event)
            elif isinstance(request, Ping):
                self.hub.pong(member, request.client_time)

    def _kick(self, context: grpc.aio.ServicerContext[bytes, bytes], member: Member, error: errors.JamError) -> None:
        task = asyncio.get_running_loop().create_task(self._abort(context, member, error))
        self._aborts.add(task)
        task.add_done_callback(self._aborts.discard)

    async def _abort(
        self, context: grpc.aio.ServicerContext[bytes, bytes], member: Member, error: errors.JamError
    ) -> None:
        # The status goes out only after what the client has not read yet, which may be never:
        # give up the seat first, so the other members see this one leave now.
        try:
            await self.hub.leave(member)
        except Exception:
            log.warning("could not give up the seat of a stream ended with %s", status_of(error).name, exc_info=True)
        # abort() always raises: AbortError once the status is sent, another error when the call
        # already ended. Either way the stream's own handler does the cleanup.
        try:
            await context.abort(status_of(error), str(error))
        except grpc.aio.AbortError:
            pass
        except Exception:
            log.debug("stream already ended when ending it with %s", status_of(error).name, exc_info=True)

    async def close(self) -> None:
        """Stop the tasks that are still ending streams."""
        for task in list(self._aborts):
            task.cancel()
        await asyncio.gather(*self._aborts, return_exceptions=True)

    def method_handlers(self) -> grpc.GenericRpcHandler:
        """Handlers that take and give raw bytes for Jam, so each fanned-out message is serialised once."""
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "Jam": grpc.stream_stream_rpc_method_handler(self.Jam),
                "GetStats": grpc.unary_unary_rpc_method_handler(
                    self.GetStats,
                    request_deserializer=pb.GetStatsRequest.FromString,
                    response_serializer=pb.GetStatsResponse.SerializeToString,
                ),
            },
        )
