"""A bare grpc.aio fan-out server on the same proto: the baseline the jam server is compared with.

It seats each stream in the requested jam (or fills auto-placed jams seven at a time), answers
Joined and a minimal PresenceState, and forwards every loop event to the other streams of the
jam. No presence diffs, no checks, no balancing, no limits: unbounded queues, one per stream.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import uuid
from collections.abc import AsyncIterator

import grpc

from jamservice.v1 import jam_pb2 as pb
from jamservice.v1 import jam_pb2_grpc

log = logging.getLogger("bench.baseline")

JAM_SIZE = 7


class Stream:
    """One Jam call: its identity, its jam and its queue of responses."""

    __slots__ = ("jam_id", "queue", "user_id")

    def __init__(self) -> None:
        self.user_id = str(uuid.uuid4())
        self.jam_id = ""
        self.queue: asyncio.Queue[pb.JamResponse | None] = asyncio.Queue()


class BaselineServicer(jam_pb2_grpc.JamServiceServicer):
    """Forwards loop events to the other streams of a jam, and nothing else."""

    def __init__(self) -> None:
        self.jams: dict[str, dict[str, Stream]] = {}
        self._filling = ""

    async def Jam(
        self, request_iterator: AsyncIterator[pb.JamRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.JamResponse]:
        stream = Stream()
        reader = asyncio.create_task(self._read(request_iterator, stream))
        try:
            while (response := await stream.queue.get()) is not None:
                yield response
        finally:
            reader.cancel()
            self._leave(stream)

    async def GetStats(self, request: pb.GetStatsRequest, context: grpc.aio.ServicerContext) -> pb.GetStatsResponse:
        response = pb.GetStatsResponse(jam_count=len(self.jams), user_count=sum(map(len, self.jams.values())))
        for jam_id, streams in self.jams.items():
            response.jams[jam_id].user_count = len(streams)
        return response

    async def _read(self, request_iterator: AsyncIterator[pb.JamRequest], stream: Stream) -> None:
        try:
            async for request in request_iterator:
                kind = request.WhichOneof("kind")
                if kind == "loop_event":
                    self._forward(stream, request.loop_event.type)
                elif kind == "join" and not stream.jam_id:
                    self._join(stream, request.join.jam_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The call went away under us; the handler's finally does the leave.
            log.debug("stream ended while reading", exc_info=True)
        stream.queue.put_nowait(None)

    def _join(self, stream: Stream, jam_id: str) -> None:
        if not jam_id:
            if len(self.jams.get(self._filling, ())) >= JAM_SIZE or not self._filling:
                self._filling = str(uuid.uuid4())
            jam_id = self._filling
        stream.jam_id = jam_id
        members = self.jams.setdefault(jam_id, {})
        members[stream.user_id] = stream
        stream.queue.put_nowait(pb.JamResponse(joined=pb.Joined(user_id=stream.user_id, jam_id=jam_id)))
        state = pb.JamResponse()
        for user_id in members:
            state.presence_state.presences[user_id].metas.add(user_id=user_id)
        stream.queue.put_nowait(state)

    def _forward(self, sender: Stream, kind: int) -> None:
        members = self.jams.get(sender.jam_id)
        if not members:
            return
        event = pb.JamResponse(loop_event=pb.LoopEvent(user_id=sender.user_id, type=kind))  # type: ignore[arg-type]
        for stream in members.values():
            if stream is not sender:
                stream.queue.put_nowait(event)

    def _leave(self, stream: Stream) -> None:
        members = self.jams.get(stream.jam_id)
        if members is not None:
            members.pop(stream.user_id, None)
            if not members:
                del self.jams[stream.jam_id]


async def serve(listen: str) -> None:
    """Serve until SIGINT or SIGTERM."""
    server = grpc.aio.server()
    jam_pb2_grpc.add_JamServiceServicer_to_server(BaselineServicer(), server)
    port = server.add_insecure_port(listen)
    await server.start()
    log.info("baseline listening on %s:%d", listen.rsplit(":", 1)[0], port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await server.stop(0.5)


def main(argv: list[str] | None = None) -> None:
    """Entry point: python -m bench.baseline --listen HOST:PORT."""
    parser = argparse.ArgumentParser(prog="bench.baseline", description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:0", help="address to listen on, HOST:PORT")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args.listen))


if __name__ == "__main__":
    main()
