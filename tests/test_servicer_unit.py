"""GetStats through grpc_testing: the servicer's translation and auth check, with no socket.

grpc_testing calls handlers synchronously from its own thread and knows nothing of grpc.aio, so it cannot
drive the Jam stream (which reads with `await context.read()`). GetStats awaits nothing of its context, so a
small adapter runs it to completion on a private event loop in grpc_testing's thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc_testing

from jamservice import wire
from jamservice.auth import make_token
from jamservice.backends.memory import MemoryBackend
from jamservice.config import Settings
from jamservice.hub import JamHub
from jamservice.loops import LoopCycler
from jamservice.servicer import JamServicer
from jamservice.v1 import jam_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["JamService"]
GET_STATS = SERVICE.methods_by_name["GetStats"]
SECRET = "a-unit-test-secret-of-at-least-32-bytes"


class BlockingGetStats:
    """GetStats of a JamServicer, run to completion for grpc_testing's synchronous calls."""

    def __init__(self, servicer: JamServicer) -> None:
        self._servicer = servicer

    def GetStats(self, request: pb.GetStatsRequest, context: Any) -> pb.GetStatsResponse:
        """The servicer's GetStats, awaited to the end; grpc_testing's context stands in for an aio one."""
        return asyncio.run(self._servicer.GetStats(request, context))


def servicer_with_jams(settings: Settings, sizes: dict[str, int]) -> JamServicer:
    """A servicer over a memory backend already holding jams of these sizes."""
    backend = MemoryBackend(LoopCycler())

    async def seat() -> None:
        for jam_id, size in sizes.items():
            for i in range(size):
                await backend.join(f"{jam_id}-stream-{i}", f"{jam_id}-user-{i}", "", jam_id, lambda seat: None)

    asyncio.run(seat())
    return JamServicer(JamHub(backend, wire.encode, settings.max_streams), settings)


def call_get_stats(
    servicer: JamServicer, metadata: tuple[tuple[str, str], ...] = ()
) -> tuple[object, grpc.StatusCode, str]:
    """Call GetStats through a grpc_testing server: the response, the status code and its details."""
    server = grpc_testing.server_from_dictionary({SERVICE: BlockingGetStats(servicer)}, grpc_testing.strict_real_time())
    rpc = server.invoke_unary_unary(GET_STATS, metadata, pb.GetStatsRequest(), 5.0)
    response, _, code, details = rpc.termination()
    return response, code, details


def test_get_stats_reports_each_jam_and_the_totals() -> None:
    servicer = servicer_with_jams(Settings(), {"a": 3, "b": 1, "c": 7})
    response, code, _ = call_get_stats(servicer)
    assert code == grpc.StatusCode.OK
    assert isinstance(response, pb.GetStatsResponse)
    assert (response.jam_count, response.user_count) == (3, 11)
    assert {k: v.user_count for k, v in response.jams.items()} == {"a": 3, "b": 1, "c": 7}


def test_get_stats_needs_a_token_when_auth_is_on() -> None:
    servicer = servicer_with_jams(Settings(auth_secret=SECRET), {"a": 2})
    _, code, details = call_get_stats(servicer)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert "authorization" in details
    response, code, _ = call_get_stats(servicer, (("authorization", f"Bearer {make_token(SECRET, 'ann')}"),))
    assert code == grpc.StatusCode.OK
    assert isinstance(response, pb.GetStatsResponse) and response.user_count == 2
