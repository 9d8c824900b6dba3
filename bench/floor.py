"""The floor: a grpc.aio server that only holds streams, to show what grpcio itself costs per open stream.

Each stream's handler reads the Join, writes Joined and a one-member PresenceState, then waits for
the next request: one coroutine per stream, no queue, no writer task, no fan-out. It is not a jam
server; it answers GetStats so the benchmark's member scenarios can count its jams (seven streams
each, filled in order).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import uuid

import grpc

from jamservice.v1 import jam_pb2 as pb
from jamservice.v1 import jam_pb2_grpc

log = logging.getLogger("bench.floor")

JAM_SIZE = 7


class FloorServicer(jam_pb2_grpc.JamServiceServicer):
    """Holds streams and counts them."""

    def __init__(self) -> None:
        self.streams = 0

    async def Jam(self, request_iterator: object, context: grpc.aio.ServicerContext) -> None:
        request = await context.read()
        if request is grpc.aio.EOF:
            return
        user_id = str(uuid.uuid4())
        jam_id = f"jam-{self.streams // JAM_SIZE}"
        self.streams += 1
        try:
            await context.write(pb.JamResponse(joined=pb.Joined(user_id=user_id, jam_id=jam_id)))
            state = pb.JamResponse()
            state.presence_state.presences[user_id].metas.add(user_id=user_id)
            await context.write(state)
            while await context.read() is not grpc.aio.EOF:
                pass
        finally:
            self.streams -= 1

    async def GetStats(self, request: pb.GetStatsRequest, context: grpc.aio.ServicerContext) -> pb.GetStatsResponse:
        return pb.GetStatsResponse(jam_count=-(-self.streams // JAM_SIZE), user_count=self.streams)


async def serve(listen: str) -> None:
    """Serve until SIGINT or SIGTERM."""
    server = grpc.aio.server()
    jam_pb2_grpc.add_JamServiceServicer_to_server(FloorServicer(), server)
    port = server.add_insecure_port(listen)
    await server.start()
    log.info("floor listening on %s:%d", listen.rsplit(":", 1)[0], port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await server.stop(0.5)


def main(argv: list[str] | None = None) -> None:
    """Entry point: python -m bench.floor --listen HOST:PORT."""
    parser = argparse.ArgumentParser(prog="bench.floor", description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:0", help="address to listen on, HOST:PORT")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args.listen))


if __name__ == "__main__":
    main()
