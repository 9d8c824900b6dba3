"""The server's side services: health, reflection, and GetStats."""

from __future__ import annotations

import asyncio

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from support import TIMEOUT, Harness

from jamservice.v1 import jam_pb2 as pb

SERVICE = "jamservice.v1.JamService"


async def test_health_reports_serving_for_the_server_and_the_jam_service(jam: Harness) -> None:
    stub = health_pb2_grpc.HealthStub(jam.channel())
    for service in ("", SERVICE):
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
        assert response.status == health_pb2.HealthCheckResponse.SERVING, service


async def test_health_reports_an_unknown_service_as_not_found(jam: Harness) -> None:
    stub = health_pb2_grpc.HealthStub(jam.channel())
    try:
        await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=TIMEOUT)
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND
    else:
        raise AssertionError("an unknown service must not be reported healthy")


def reflect(address: str) -> tuple[list[str], list[str], list[str]]:
    """Ask the server's reflection service for its services and JamRequest's fields, over a blocking channel."""
    with grpc.insecure_channel(address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        pool = DescriptorPool(database)
        services = list(database.get_services())
        request = pool.FindMessageTypeByName("jamservice.v1.JamRequest")
        methods = [m.name for m in pool.FindServiceByName(SERVICE).methods]
        return services, [f.name for f in request.fields], methods


async def test_reflection_lists_the_jam_service_and_resolves_its_messages(jam: Harness) -> None:
    # The reflection client blocks, and the server runs on this event loop: call it from a thread.
    services, fields, methods = await asyncio.to_thread(reflect, jam.address)
    assert SERVICE in services
    assert "grpc.health.v1.Health" in services
    assert fields == ["join", "loop_event", "ping"]
    assert methods == ["Jam", "GetStats"]


async def test_get_stats_of_an_empty_server_is_zero(jam: Harness) -> None:
    stats = await jam.stats()
    assert stats == pb.GetStatsResponse()


async def test_get_stats_counts_jams_users_and_users_per_jam(jam: Harness) -> None:
    for jam_id, count in (("a", 3), ("b", 1), ("c", 7)):
        for _ in range(count):
            await jam.joined(jam_id)
    redirected = jam.client()
    await redirected.send(pb.JamRequest(join=pb.Join(jam_id="c")))
    assert (await redirected.next()).HasField("join_redirect")
    stats = await jam.stats()
    assert (stats.jam_count, stats.user_count) == (3, 11), "a redirected stream holds no seat"
    assert {k: v.user_count for k, v in stats.jams.items()} == {"a": 3, "b": 1, "c": 7}
