"""Limits on message size, loop event rate and streams per process end streams clearly; each is a flag and env var."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc
import pytest
from support import PLAYED, STOPPED, Harness, JamClient

from jamservice.config import Settings
from jamservice.ratelimit import TokenBucket
from jamservice.v1 import jam_pb2 as pb

StartHarness = Callable[..., Awaitable[Harness]]

RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED

LIMITS = [
    ("outbox_size", "--outbox-size", "JAM_OUTBOX_SIZE", "17", 17),
    ("max_message_bytes", "--max-message-bytes", "JAM_MAX_MESSAGE_BYTES", "4096", 4096),
    ("loop_event_rate", "--loop-event-rate", "JAM_LOOP_EVENT_RATE", "2.5", 2.5),
    ("loop_event_burst", "--loop-event-burst", "JAM_LOOP_EVENT_BURST", "9", 9),
    ("max_streams", "--max-streams", "JAM_MAX_STREAMS", "5", 5),
    ("max_streams_per_connection", "--max-streams-per-connection", "JAM_MAX_STREAMS_PER_CONNECTION", "50", 50),
    ("ping_rate", "--ping-rate", "JAM_PING_RATE", "3.5", 3.5),
    ("ping_burst", "--ping-burst", "JAM_PING_BURST", "6", 6),
    ("join_timeout_seconds", "--join-timeout-seconds", "JAM_JOIN_TIMEOUT_SECONDS", "2.5", 2.5),
    ("keepalive_seconds", "--keepalive-seconds", "JAM_KEEPALIVE_SECONDS", "3", 3),
    ("keepalive_timeout_seconds", "--keepalive-timeout-seconds", "JAM_KEEPALIVE_TIMEOUT_SECONDS", "4", 4),
    ("grace_seconds", "--grace-seconds", "JAM_GRACE_SECONDS", "1.5", 1.5),
]


async def join_or_status(member: JamClient) -> str:
    """'joined' if the stream gets a seat, else the name of the status it ends with."""
    try:
        await member.join()
        return "joined"
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
        # The stream was refused before or while the Join went out.
        code, _ = await member.status()
        return code.name


async def test_request_larger_than_max_message_bytes_ends_the_stream_with_resource_exhausted(jam: Harness) -> None:
    member = jam.client()
    await member.send(pb.JamRequest(join=pb.Join(jam_id="big", name="x" * 20_000)))
    code, _ = await member.status()
    assert code == RESOURCE_EXHAUSTED
    stats = await jam.stats()
    assert stats.jam_count == 0 and stats.user_count == 0
    members = jam.server.servicer.hub.members

    async def released() -> bool:
        return not members

    await jam.wait_until(released)


async def test_small_max_message_bytes_refuses_what_the_default_accepts(make_harness: StartHarness) -> None:
    jam = await make_harness(max_message_bytes=64)
    member = jam.client()
    # A valid Join of about 100 bytes: fine by default, too big for this server.
    await member.send(pb.JamRequest(join=pb.Join(jam_id="j" * 40, name="n" * 60)))
    code, _ = await member.status()
    assert code == RESOURCE_EXHAUSTED


async def test_loop_events_past_the_burst_end_the_stream_and_the_member_leaves(make_harness: StartHarness) -> None:
    # A rate this low adds no token during the test, so exactly the burst gets through.
    jam = await make_harness(loop_event_rate=0.01, loop_event_burst=5)
    watcher = await jam.joined("busy")
    player = await jam.joined("busy")
    assert list((await watcher.diff()).joins) == [player.user_id]
    # One past the burst, and no more: a write after the server ends the stream would fail on the client.
    for i in range(6):
        await player.loop_event(PLAYED if i % 2 == 0 else STOPPED)

    code, details = await player.status()
    assert code == RESOURCE_EXHAUSTED
    assert "loop events" in details

    events: list[int] = []
    while True:
        response = await watcher.next()
        if response.WhichOneof("kind") == "loop_event":
            assert response.loop_event.user_id == player.user_id
            events.append(response.loop_event.type)
        elif not response.presence_diff.joins:
            assert list(response.presence_diff.leaves) == [player.user_id]
            break
    assert events == [PLAYED, STOPPED, PLAYED, STOPPED, PLAYED]
    stats = await jam.stats()
    assert stats.user_count == 1


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=20, burst=40)
    start = bucket._last
    assert all(bucket.allow(now=start) for _ in range(40))
    assert not bucket.allow(now=start)
    # Half a second at 20 a second earns ten more events, and no more.
    assert sum(bucket.allow(now=start + 0.5) for _ in range(15)) == 10
    # A long pause refills the bucket only up to the burst.
    assert sum(bucket.allow(now=start + 100) for _ in range(50)) == 40


async def test_stream_past_max_streams_is_refused_at_once_with_resource_exhausted(make_harness: StartHarness) -> None:
    jam = await make_harness(max_streams=5)
    members = jam.server.servicer.hub.members
    # Streams count from their start, before any Join.
    quiet = [jam.client() for _ in range(5)]

    async def five_open() -> bool:
        return len(members) == 5

    await jam.wait_until(five_open)

    extra = jam.client()
    code, details = await extra.status()
    assert code == RESOURCE_EXHAUSTED
    assert "5 streams" in details
    assert len(members) == 5

    await quiet[0].half_close()
    code, _ = await quiet[0].status()
    assert code == grpc.StatusCode.OK
    assert await join_or_status(jam.client()) == "joined"


async def test_fifty_streams_opened_together_never_exceed_max_streams(make_harness: StartHarness) -> None:
    jam = await make_harness(max_streams=10)
    channels = [jam.channel() for _ in range(5)]
    crowd = [jam.client(channels[i % len(channels)]) for i in range(50)]
    outcomes = await asyncio.gather(*(join_or_status(member) for member in crowd))
    assert outcomes.count("joined") == 10
    assert outcomes.count(RESOURCE_EXHAUSTED.name) == 40
    assert len(jam.server.servicer.hub.members) == 10
    stats = await jam.stats()
    assert stats.user_count == 10


@pytest.mark.parametrize(("name", "flag", "env", "raw", "value"), LIMITS)
def test_each_limit_is_a_flag_and_an_environment_variable(
    name: str, flag: str, env: str, raw: str, value: float
) -> None:
    assert getattr(Settings.from_args([flag, raw], environ={}), name) == value
    assert getattr(Settings.from_args([], environ={env: raw}), name) == value
    # The flag wins over the environment.
    assert getattr(Settings.from_args([flag, raw], environ={env: "99"}), name) == value
    assert getattr(Settings.from_args([], environ={}), name) == getattr(Settings(), name)


@pytest.mark.parametrize(("name", "flag", "env", "raw", "value"), LIMITS)
@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf"])
def test_non_positive_limits_are_rejected(name: str, flag: str, env: str, raw: str, value: float, bad: str) -> None:
    with pytest.raises(SystemExit) as flag_exit:
        Settings.from_args([flag, bad], environ={})
    with pytest.raises(SystemExit) as env_exit:
        Settings.from_args([], environ={env: bad})
    assert flag_exit.value.code == env_exit.value.code == 2


async def test_a_stream_that_never_joins_is_ended_and_frees_its_slot(make_harness: StartHarness) -> None:
    harness = await make_harness(join_timeout_seconds=0.5, max_streams=1)
    silent = harness.client()
    code, details = await silent.status(timeout=5)
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "Join" in details
    member = harness.client()
    await member.join("room")
    assert member.jam_id == "room"


async def test_a_redirected_stream_must_still_take_a_seat_in_time(make_harness: StartHarness) -> None:
    harness = await make_harness(join_timeout_seconds=0.5)
    for _ in range(7):
        await harness.joined("full")
    waiting = harness.client()
    await waiting.send(pb.JamRequest(join=pb.Join(jam_id="full")))
    assert (await waiting.next("join_redirect")).join_redirect.requested_jam_id == "full"
    assert (await waiting.status(timeout=5))[0] == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_a_seated_member_is_not_timed_out(make_harness: StartHarness) -> None:
    harness = await make_harness(join_timeout_seconds=0.3)
    member = await harness.joined("room")
    other = await harness.joined("room")
    await member.diff()
    # Well past the join deadline, the seated member still plays.
    await asyncio.sleep(0.6)
    await other.play()
    assert (await member.diff()).joins[other.user_id].metas[0].loop_event == PLAYED


async def test_pings_past_their_burst_end_the_stream(make_harness: StartHarness) -> None:
    harness = await make_harness(ping_rate=1, ping_burst=5)
    watcher = await harness.joined("room")
    flooder = await harness.joined("room")
    await watcher.diff()
    for _ in range(6):
        await flooder.send(pb.JamRequest(ping=pb.Ping()))
    code, details = await flooder.status()
    assert code == RESOURCE_EXHAUSTED and "pings" in details
    assert list((await watcher.diff()).leaves) == [flooder.user_id]


async def test_streams_cancelled_as_they_open_give_their_slots_back(make_harness: StartHarness) -> None:
    harness = await make_harness(max_streams=50)
    channel = harness.channel()
    for round_ in range(4):
        calls = [harness.client(channel) for _ in range(50)]
        if round_ % 2:
            await asyncio.gather(*(c.send(pb.JamRequest(join=pb.Join(jam_id="room"))) for c in calls))
        for call in calls:
            call.cancel()
    hub = harness.server.servicer.hub

    async def empty() -> bool:
        return not hub.members

    await harness.wait_until(empty)
    member = harness.client()
    await member.join("room")


@pytest.mark.parametrize("listen", ["127.0.0.1:99999", "127.0.0.1", "127.0.0.1:http"])
def test_a_listen_address_without_a_valid_port_is_rejected(listen: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        Settings.from_args(["--listen", listen], environ={})
    assert exit_.value.code == 2
