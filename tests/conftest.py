"""Fixtures: a real grpc.aio server on a free port, and members that talk to it over real channels."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from support import Harness

from jamservice.config import Settings
from jamservice.server import start

StartHarness = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_harness() -> AsyncIterator[StartHarness]:
    """Start servers with setting overrides; everything is stopped at the end of the test."""
    harnesses: list[Harness] = []

    async def make(**overrides: Any) -> Harness:
        settings = dataclasses.replace(Settings(listen="127.0.0.1:0"), **overrides)
        server = await start(settings)
        harness = Harness(server, f"127.0.0.1:{server.port}", [], [])
        harnesses.append(harness)
        return harness

    yield make
    for harness in harnesses:
        for client in harness.clients:
            client.cancel()
        for channel in harness.channels:
            await channel.close()
        await harness.server.stop(0.5)


@pytest.fixture
async def jam(make_harness: StartHarness) -> Harness:
    """A server with default settings."""
    return await make_harness()
