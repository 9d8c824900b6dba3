"""Graceful shutdown of a real jam-server process on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from process_support import jam_server_process
from support import TIMEOUT, JamClient

from jamservice.servicer import SERVICE_NAME

GRACE_SECONDS = 2.0
# Interpreter exit and a busy machine, on top of the grace period.
EXIT_MARGIN = 3.0

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_turns_health_off_ends_every_stream_and_exits_cleanly_within_the_grace(
    sig: signal.Signals,
) -> None:
    async with jam_server_process("--grace-seconds", str(GRACE_SECONDS)) as server:
        channel = grpc.aio.insecure_channel(server.address)
        try:
            members = [JamClient(channel) for _ in range(3)]
            for i, member in enumerate(members):
                await member.join("finale", f"m{i}")
            health = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
            assert (await asyncio.wait_for(health.read(), TIMEOUT)).status == SERVING

            server.send_signal(sig)
            signalled = time.monotonic()
            assert (await asyncio.wait_for(health.read(), TIMEOUT)).status == NOT_SERVING
            # An open health watch would hold the server for the whole grace period.
            health.cancel()

            latecomer = JamClient(channel)
            code, _ = await latecomer.status()
            assert code == grpc.StatusCode.UNAVAILABLE

            for member in members:
                code, details = await member.status()
                assert code == grpc.StatusCode.UNAVAILABLE
                assert details == "server shutting down"

            assert await server.wait(GRACE_SECONDS + EXIT_MARGIN) == 0
            assert time.monotonic() - signalled < GRACE_SECONDS + EXIT_MARGIN
            assert "jam-server stopped" in server.log
        finally:
            await channel.close()
