"""Crowds: many members arriving at once never overfill a jam nor hand out a loop twice."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable

import grpc
import pytest
from crowd_support import CAPACITY, StatsWatch, Watcher, get_stats, summarize
from support import Harness

from jamservice.loops import DEFAULT_CATALOG
from jamservice.v1 import jam_pb2 as pb

StartHarness = Callable[..., Awaitable[Harness]]

STREAMS_PER_CHANNEL = 20
log = logging.getLogger(__name__)


def open_watchers(harness: Harness, count: int, per_channel: int = STREAMS_PER_CHANNEL) -> list[Watcher]:
    """Streams spread over a few channels: a channel per stream would cost more than the crowd itself."""
    channels = [harness.channel() for _ in range(math.ceil(count / per_channel))]
    return [Watcher(channels[i // per_channel]) for i in range(count)]


async def holds(value: bool) -> bool:
    """An awaitable truth, for Harness.wait_until."""
    return value


async def leave_all(harness: Harness, control: grpc.aio.Channel, watchers: list[Watcher]) -> None:
    """Cancel every stream and wait until the server has processed the leaves."""
    for watcher in watchers:
        watcher.cancel()
    await asyncio.gather(*(watcher.wait_ended() for watcher in watchers))
    hub = harness.server.servicer.hub
    await harness.wait_until(lambda: holds(not hub.members), timeout=10)
    stats = await get_stats(control)
    assert (stats.jam_count, stats.user_count) == (0, 0)


def assert_views_match_server(harness: Harness, watchers: list[Watcher]) -> None:
    """Each member's view is its jam's presence on the server, within capacity and with distinct loops."""
    jams = harness.server.servicer.hub.backend._jams  # type: ignore[attr-defined]
    for watcher in watchers:
        assert not watcher.problems, watcher.problems
        truth = summarize(jams[watcher.jam_id].state)
        assert watcher.view.summary() == truth
        loops = [loop for metas in truth.values() for _, loop, _ in metas]
        assert len(loops) <= CAPACITY and len(set(loops)) == len(loops)


async def test_two_hundred_joining_one_named_jam_at_once_seat_seven_and_redirect_the_rest(
    make_harness: StartHarness,
) -> None:
    harness = await make_harness()
    control = harness.channel()
    crowd = open_watchers(harness, 200)
    watch = StatsWatch(control).start()
    answers = await asyncio.gather(*(watcher.join("stage") for watcher in crowd))
    await watch.stop()

    seated = [w for w, answer in zip(crowd, answers, strict=True) if isinstance(answer, pb.PresenceState)]
    redirects = [answer for answer in answers if isinstance(answer, pb.JoinRedirect)]
    assert (len(seated), len(redirects)) == (7, 193)
    assert not watch.problems, watch.problems[:5]
    assert all(r.requested_jam_id == "stage" and r.jam_id and r.jam_id != "stage" for r in redirects)
    assert sorted(w.loop_name for w in seated) == sorted(DEFAULT_CATALOG)
    assert {w.jam_id for w in seated} == {"stage"}
    # The k-th member seated finds k members in the PresenceState it is sent.
    states = [answer for answer in answers if isinstance(answer, pb.PresenceState)]
    sizes = sorted(sum(len(presence.metas) for presence in state.presences.values()) for state in states)
    assert sizes == list(range(1, 8))
    await asyncio.gather(*(w.barrier() for w in seated))
    assert_views_match_server(harness, seated)
    stats = await get_stats(control)
    assert (stats.jam_count, stats.user_count, dict(stats.jams)) == (1, 7, {"stage": pb.JamStats(user_count=7)})
    await leave_all(harness, control, crowd)


async def test_five_hundred_placed_at_once_fill_the_fewest_jams(make_harness: StartHarness) -> None:
    harness = await make_harness()
    control = harness.channel()
    crowd = open_watchers(harness, 500)
    watch = StatsWatch(control).start()
    answers = await asyncio.gather(*(watcher.join() for watcher in crowd))
    await watch.stop()

    assert all(isinstance(answer, pb.PresenceState) for answer in answers)
    assert not watch.problems, watch.problems[:5]
    loops_by_jam: dict[str, list[str]] = defaultdict(list)
    for watcher in crowd:
        loops_by_jam[watcher.jam_id].append(watcher.loop_name)
    assert len(loops_by_jam) == math.ceil(500 / CAPACITY) == 72
    for jam_id, loops in loops_by_jam.items():
        assert len(loops) <= CAPACITY and len(set(loops)) == len(loops), (jam_id, loops)
    assert sorted(len(loops) for loops in loops_by_jam.values()) == [500 - 71 * CAPACITY] + [CAPACITY] * 71
    await asyncio.gather(*(w.barrier() for w in crowd))
    assert_views_match_server(harness, crowd)
    stats = await get_stats(control)
    assert (stats.jam_count, stats.user_count) == (72, 500)
    assert {jam_id: jam.user_count for jam_id, jam in stats.jams.items()} == {
        jam_id: len(loops) for jam_id, loops in loops_by_jam.items()
    }
    await leave_all(harness, control, crowd)


class Pinger:
    """Pings on its own stream, one Ping at a time, and records every round trip."""

    def __init__(self, watcher: Watcher, limit: float) -> None:
        self.watcher = watcher
        self.limit = limit
        self.round_trips: list[float] = []
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.round_trips.append(await self.watcher.barrier(timeout=self.limit))
            if self._stop.is_set():
                return
            # Paces the pings so they sample the herd rather than add to it; nothing is awaited here.
            await asyncio.sleep(0.02)

    async def stop(self) -> list[float]:
        """Stop pinging; fails if any Pong was late."""
        self._stop.set()
        await self._task
        return self.round_trips


async def rejoin(watcher: Watcher, jam_id: str) -> int:
    """Join jam_id, asking again while the old streams' seats are still held; the number of redirects."""
    redirects = 0
    answer = await watcher.join(jam_id)
    while isinstance(answer, pb.JoinRedirect):
        redirects += 1
        assert redirects < 1000, f"{jam_id} never took its member back"
        answer = await watcher.join(jam_id)
    assert isinstance(answer, pb.PresenceState)
    return redirects


@pytest.mark.parametrize("drop", ["cancel", "channel_close_after_new_connections"])
async def test_a_reconnect_herd_refills_its_jams_while_pings_stay_answered(
    make_harness: StartHarness, drop: str
) -> None:
    harness = await make_harness()
    control = harness.channel()
    jam_ids = [f"jam-{i}" for i in range(30)]
    home = [jam_ids[i // CAPACITY] for i in range(30 * CAPACITY)]
    first = open_watchers(harness, len(home), per_channel=15)
    channels = [w.channel for w in first]
    answers = await asyncio.gather(*(w.join(jam_id) for w, jam_id in zip(first, home, strict=True)))
    assert all(isinstance(answer, pb.PresenceState) for answer in answers)
    pinger_stream = Watcher(harness.channel())
    assert isinstance(await pinger_stream.join("pinger"), pb.PresenceState)
    pinger = Pinger(pinger_stream, limit=2.0)
    watch = StatsWatch(control).start()

    if drop == "cancel":
        started = time.monotonic()
        for watcher in first:
            watcher.cancel()
        # Same connections: each old stream's cancel reaches the server ahead of its successor's Join.
        second = [Watcher(channel) for channel in channels]
        redirects = await asyncio.gather(*(rejoin(w, jam_id) for w, jam_id in zip(second, home, strict=True)))
    else:
        # The new connections come up before the server hears that the old ones are gone: every jam is still full.
        second = open_watchers(harness, len(home), per_channel=15)
        started = time.monotonic()
        early = await asyncio.gather(*(w.join(jam_id) for w, jam_id in zip(second, home, strict=True)))
        assert all(
            isinstance(answer, pb.JoinRedirect) and answer.requested_jam_id == jam_id
            for answer, jam_id in zip(early, home, strict=True)
        )
        await asyncio.gather(*(channel.close() for channel in set(channels)))
        redirects = [*await asyncio.gather(*(rejoin(w, jam_id) for w, jam_id in zip(second, home, strict=True)))]
        redirects.append(len(early))
    herd_seconds = time.monotonic() - started

    await watch.stop()
    round_trips = await pinger.stop()
    assert not watch.problems, watch.problems[:5]
    for watcher in first:
        assert await watcher.wait_ended() == grpc.StatusCode.CANCELLED
    hub = harness.server.servicer.hub
    # The old streams' handlers end when the server processes their cancels, which no stream reports.
    await harness.wait_until(lambda: holds(len(hub.members) == len(second) + 1), timeout=10)
    await asyncio.gather(*(w.barrier() for w in second))
    for watcher, jam_id in zip(second, home, strict=True):
        assert watcher.jam_id == jam_id
        assert watcher.states == 1
        assert watcher.user_id in watcher.view.state
    assert_views_match_server(harness, second)
    stats = await get_stats(control)
    assert (stats.jam_count, stats.user_count) == (31, 211)
    assert all(stats.jams[jam_id].user_count == CAPACITY for jam_id in jam_ids)
    log.info(
        "%s herd of %d rejoined in %.2f s with %d redirects; %d pings, slowest %.3f s",
        drop, len(second), herd_seconds, sum(redirects), len(round_trips), max(round_trips),
    )
    await leave_all(harness, control, [*second, pinger_stream])
