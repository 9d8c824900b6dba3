"""Silent peers are found through HTTP/2 keepalive and removed; clients that ping within the policy are left alone."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

import grpc
from process_support import freezing_proxy, member_process
from support import Harness

from jamservice.server import MIN_CLIENT_PING_INTERVAL_MS
from jamservice.v1 import jam_pb2 as pb

StartHarness = Callable[..., Awaitable[Harness]]

FAST_KEEPALIVE = {"keepalive_seconds": 1.0, "keepalive_timeout_seconds": 1.0}
# With a 1 s ping and a 1 s timeout a silent peer is gone in about 2 s; the rest is room for a busy machine.
LEAVE_TIMEOUT = 15.0
# The options a client is told to use, except that this one pings at the fastest rate the server allows.
CLIENT_OPTIONS = [
    ("grpc.keepalive_time_ms", MIN_CLIENT_PING_INTERVAL_MS),
    ("grpc.keepalive_timeout_ms", 10000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
# A server that refused pings this often would send GOAWAY too_many_pings on the third strike, about 15 s in.
IDLE_SECONDS = 18.0


async def test_member_whose_process_is_stopped_is_dropped_through_keepalive(make_harness: StartHarness) -> None:
    jam = await make_harness(**FAST_KEEPALIVE)
    watcher = await jam.joined("quiet", "watcher")
    async with member_process(jam.address, "quiet") as (process, user_id):
        assert list((await watcher.diff()).joins) == [user_id]
        process.send_signal(signal.SIGSTOP)
        diff = await watcher.diff(timeout=LEAVE_TIMEOUT)
        assert list(diff.leaves) == [user_id] and not diff.joins
    stats = await jam.stats()
    assert stats.user_count == 1


async def test_member_behind_a_network_gone_silent_is_dropped_through_keepalive(make_harness: StartHarness) -> None:
    jam = await make_harness(**FAST_KEEPALIVE)
    watcher = await jam.joined("cut", "watcher")
    async with freezing_proxy(jam.address) as proxy:
        channel = grpc.aio.insecure_channel(proxy.address)
        jam.channels.append(channel)
        far = jam.client(channel)
        await far.join("cut", "far")
        assert list((await watcher.diff()).joins) == [far.user_id]
        proxy.freeze()
        diff = await watcher.diff(timeout=LEAVE_TIMEOUT)
        assert list(diff.leaves) == [far.user_id] and not diff.joins
        stats = await jam.stats()
        assert stats.user_count == 1


async def test_client_pinging_as_often_as_allowed_keeps_its_idle_stream(jam: Harness) -> None:
    member = jam.client(jam.channel(options=CLIENT_OPTIONS))
    await member.join("idle")
    # Staying idle is the behaviour under test: only the client's keepalive pings cross the connection.
    await asyncio.sleep(IDLE_SECONDS)
    await member.send(pb.JamRequest(ping=pb.Ping(client_time_unix_nanos=42)))
    pong = (await member.next("pong")).pong
    assert pong.client_time_unix_nanos == 42
    stats = await jam.stats()
    assert stats.user_count == 1


async def test_member_whose_process_is_killed_leaves_exactly_once(jam: Harness) -> None:
    watcher = await jam.joined("doomed", "watcher")
    async with member_process(jam.address, "doomed") as (process, user_id):
        assert list((await watcher.diff()).joins) == [user_id]
        process.send_signal(signal.SIGKILL)
        diff = await watcher.diff()
        assert list(diff.leaves) == [user_id] and not diff.joins
    # Exactly one leave: the next message after a ping is its pong.
    await watcher.send(pb.JamRequest(ping=pb.Ping(client_time_unix_nanos=7)))
    assert (await watcher.next("pong")).pong.client_time_unix_nanos == 7
    stats = await jam.stats()
    assert (stats.jam_count, stats.user_count) == (1, 1)
    newcomer = await jam.joined("doomed")
    assert newcomer.loop_name == "Amsterdam_Layers"
