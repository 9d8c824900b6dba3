"""Churn: members come and go by every path there is, and each leaves exactly once, leaving nothing behind."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import random
import time
import tracemalloc
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from crowd_support import StatsWatch, Watcher, check_jam_stats, summarize
from support import Harness

import jamservice
from jamservice.backends import Seat, Seated
from jamservice.balancer import Placement
from jamservice.hub import Member
from jamservice.outbox import Outbox
from jamservice.presence import LoopEventType
from jamservice.v1 import jam_pb2 as pb

StartHarness = Callable[..., Awaitable[Harness]]

PATHS = ("half_close", "cancel", "channel_close", "deadline", "handler_error")
EXPECTED_CODE = {
    "half_close": grpc.StatusCode.OK,
    "cancel": grpc.StatusCode.CANCELLED,
    "channel_close": grpc.StatusCode.CANCELLED,
    "deadline": grpc.StatusCode.DEADLINE_EXCEEDED,
    "handler_error": grpc.StatusCode.UNKNOWN,
}
STREAMS_PER_CHANNEL = 20
CONCURRENCY = 120
# Bytes that jamservice may still hold after a churn, against a warmed-up baseline: dicts that grew keep their
# tables. A leak of one small object per member (1,000 of them) is well above it.
MEMORY_TOLERANCE = 96 * 1024


@dataclasses.dataclass
class Plan:
    """What one churner does, drawn up front so a seed fixes it whatever the timing."""

    path: str
    target: str
    plays: int
    jitters: list[float]
    deadline: float | None


@dataclasses.dataclass
class Outcome:
    """What happened to one churner."""

    plan: Plan
    user_id: str
    jam_id: str
    code: grpc.StatusCode | None
    watcher: Watcher
    # A write that met the deadline ends the call on the client side with INTERNAL instead.
    raced: bool = False


def draw_plans(rng: random.Random, count: int, stay_jams: list[str]) -> list[Plan]:
    plans = []
    for i in range(count):
        path = PATHS[i % len(PATHS)]
        plans.append(
            Plan(
                path=path,
                # Named stay jams fill up and redirect; an empty id goes to the most populated jam with room.
                target=rng.choice([*stay_jams, "", "", f"other-{rng.randrange(20)}"]),
                # The failing play ends the stream; a write racing that end would fail on the client side instead.
                plays=1 if path == "handler_error" else rng.randint(0, 3),
                jitters=[rng.uniform(0, 0.02) for _ in range(6)],
                deadline=rng.uniform(0.3, 1.5) if path == "deadline" else None,
            )
        )
    rng.shuffle(plans)
    return plans


class Churn:
    """Stayers hold seats in a few named jams while churners join, play and leave around them."""

    def __init__(self, harness: Harness, doomed: set[str]) -> None:
        self.harness = harness
        self.doomed = doomed
        self.shared = [harness.channel() for _ in range(4)]

    async def run(self, seed: int, churners: int, stay_jams: int, stayers_per_jam: int) -> Counter[str]:
        """Run one churn and check every stayer's view of it; what happened, counted by kind."""
        rng = random.Random(seed)
        jam_ids = [f"stay-{seed}-{i}" for i in range(stay_jams)]
        stayers: dict[str, list[Watcher]] = {}
        for jam_id in jam_ids:
            stayers[jam_id] = []
            for _ in range(stayers_per_jam):
                watcher = Watcher(self.shared[0])
                assert isinstance(await watcher.join(jam_id), pb.PresenceState)
                stayers[jam_id].append(watcher)
        plans = draw_plans(rng, churners, jam_ids)
        limit = asyncio.Semaphore(CONCURRENCY)
        channels = [self.harness.channel() for _ in range(churners // STREAMS_PER_CHANNEL + 1)]

        async def one(index: int, plan: Plan) -> Outcome:
            async with limit:
                return await self.churner(plan, channels[index % len(channels)])

        watch = StatsWatch(self.shared[1]).start()
        outcomes = await asyncio.gather(*(one(i, plan) for i, plan in enumerate(plans)))
        await watch.stop()
        assert not watch.problems, watch.problems[:5]

        for outcome in outcomes:
            expected = {EXPECTED_CODE[outcome.plan.path]} | ({grpc.StatusCode.INTERNAL} if outcome.raced else set())
            assert outcome.code in expected, (
                f"{outcome.plan.path} ended with {outcome.code}: {outcome.watcher.details}"
            )
            assert not outcome.watcher.problems, outcome.watcher.problems
        seated = [o for o in outcomes if o.jam_id]
        # Only a deadline may end a stream before its Joined arrives.
        assert all(o.jam_id for o in outcomes if o.plan.path != "deadline")
        assert len(seated) >= churners * 3 // 4

        everyone = [w for group in stayers.values() for w in group]
        hub = self.harness.server.servicer.hub
        # A cancelled stream's leave is processed when the server notices the cancel, which no stream reports.
        await self.harness.wait_until(lambda: holds(len(hub.members) == len(everyone)), timeout=10)
        await asyncio.gather(*(w.barrier() for w in everyone))

        backend = hub.backend
        for jam_id, group in stayers.items():
            truth = summarize(backend._jams[jam_id].state)  # type: ignore[attr-defined]
            assert set(truth) == {w.user_id for w in group}
            visitors = [o.user_id for o in seated if o.jam_id == jam_id]
            for watcher in group:
                assert not watcher.problems, watcher.problems
                assert watcher.view.summary() == truth
                for key, joins in watcher.seen.items():
                    assert joins == 1, f"{watcher.user_id} saw {key} join {joins} times"
                    leaves = 0 if key in truth else 1
                    assert watcher.departures[key] == leaves, (
                        f"{watcher.user_id} in {jam_id} saw {key} leave {watcher.departures[key]} times"
                    )
                for user_id in visitors:
                    assert watcher.seen[user_id] == 1 and watcher.departures[user_id] == 1, user_id
        for watcher in everyone:
            await watcher.half_close()
        for watcher in everyone:
            assert await watcher.wait_ended() == grpc.StatusCode.OK
        figures = Counter(o.plan.path for o in seated)
        figures["seated"] = len(seated)
        figures["raced_deadline"] = sum(o.raced for o in outcomes)
        figures["stats_polls"] = watch.polls
        return figures

    async def churner(self, plan: Plan, shared: grpc.aio.Channel) -> Outcome:
        channel = self.harness.channel() if plan.path == "channel_close" else shared
        watcher = Watcher(channel, timeout=plan.deadline)
        jitters = iter(plan.jitters)
        raced = False
        try:
            await asyncio.sleep(next(jitters))
            state = await watcher.join_until_seated(plan.target)
            if state is not None:
                if plan.path == "handler_error":
                    self.doomed.add(watcher.user_id)
                for kind in ([pb.LOOP_EVENT_TYPE_PLAYED, pb.LOOP_EVENT_TYPE_STOPPED] * 2)[: plan.plays]:
                    await asyncio.sleep(next(jitters))
                    await watcher.play(kind)
                await asyncio.sleep(next(jitters))
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            # Only a deadline ends a stream under us while we still write.
            if plan.path != "deadline":
                raise
            raced = True
        if plan.path == "half_close":
            await watcher.half_close()
        elif plan.path == "cancel":
            watcher.cancel()
        elif plan.path == "channel_close":
            await channel.close()
        code = await watcher.wait_ended(timeout=10)
        return Outcome(plan, watcher.user_id, watcher.jam_id, code, watcher, raced)


async def holds(value: bool) -> bool:
    """An awaitable truth, for Harness.wait_until."""
    return value


def count_instances(*kinds: type) -> dict[str, int]:
    """Live objects of each kind, after a full collection."""
    gc.collect()
    counts = dict.fromkeys((kind.__name__ for kind in kinds), 0)
    for obj in gc.get_objects():
        for kind in kinds:
            if isinstance(obj, kind):
                counts[kind.__name__] += 1
    return counts


def jamservice_bytes(snapshot: tracemalloc.Snapshot) -> int:
    """Bytes allocated from jamservice's own source files and still alive."""
    ours = snapshot.filter_traces([tracemalloc.Filter(True, str(Path(jamservice.__file__).parent / "*"))])
    return sum(stat.size for stat in ours.statistics("filename"))


def task_kinds() -> Counter[str]:
    """The running tasks but this one, by coroutine; grpc replaces its own accept tasks, so identities would not do."""
    current = asyncio.current_task()
    coroutines = (task.get_coro() for task in asyncio.all_tasks() if task is not current)
    return Counter(coro.__qualname__ for coro in coroutines)  # type: ignore[union-attr]


async def assert_server_holds_nothing(harness: Harness, tasks_before: Counter[str]) -> None:
    stats = await harness.stats()
    assert (stats.jam_count, stats.user_count, dict(stats.jams)) == (0, 0, {})
    hub = harness.server.servicer.hub
    assert hub.members == {} and hub._jams == {}
    assert hub.backend._jams == {}  # type: ignore[attr-defined]

    def leftover() -> Counter[str]:
        return task_kinds() - tasks_before

    # Handler tasks finish a moment after their client has seen the status; no stream reports that.
    try:
        await harness.wait_until(lambda: holds(not leftover()), timeout=10)
    except AssertionError:
        raise AssertionError(f"tasks left over: {leftover()}") from None
    assert count_instances(Member, Outbox) == {"Member": 0, "Outbox": 0}


async def test_a_thousand_members_leave_exactly_once_whatever_the_path(
    make_harness: StartHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The injected handler failure is logged with its traceback; a captured record would keep its Member alive.
    monkeypatch.setattr(logging.getLogger("grpc._cython.cygrpc"), "disabled", True)
    tracemalloc.start()
    try:
        harness = await make_harness()
        tasks_before = task_kinds()
        hub = harness.server.servicer.hub
        doomed: set[str] = set()
        real_play = hub.play

        async def play(member: Member, loop_event: LoopEventType) -> None:
            if member.user_id in doomed:
                raise RuntimeError(f"injected failure for {member.user_id}")
            await real_play(member, loop_event)

        monkeypatch.setattr(hub, "play", play)
        churn = Churn(harness, doomed)

        # A small round first, so caches and pools that live for the whole process are in the baseline.
        await churn.run(seed=1, churners=60, stay_jams=2, stayers_per_jam=2)
        await assert_server_holds_nothing(harness, tasks_before)
        baseline = tracemalloc.take_snapshot()

        started = time.monotonic()
        figures = await churn.run(seed=2, churners=1000, stay_jams=10, stayers_per_jam=2)
        elapsed = time.monotonic() - started
        await assert_server_holds_nothing(harness, tasks_before)
        grown = jamservice_bytes(tracemalloc.take_snapshot()) - jamservice_bytes(baseline)
        assert grown < MEMORY_TOLERANCE, f"jamservice holds {grown} more bytes after the churn"
        logging.getLogger(__name__).info(
            "1000 churners in %.1f s; jamservice memory grew %d bytes; %s", elapsed, grown, dict(figures)
        )
    finally:
        tracemalloc.stop()


class HeldJoin:
    """Holds the backend's join until released, so a cancel can arrive while the Join is being handled.

    With lands_anyway the join still takes its seat after the caller gave up, like a remote
    backend whose request is already on the wire.
    """

    def __init__(self, harness: Harness, lands_anyway: bool) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.lands_anyway = lands_anyway
        backend = harness.server.servicer.hub.backend
        self.real_join = backend.join
        backend.join = self.join  # type: ignore[method-assign]

    async def join(self, stream_id: str, user_id: str, name: str, jam_id: str, seated: Seated) -> Seat | Placement:
        async def held() -> Seat | Placement:
            await self.release.wait()
            return await self.real_join(stream_id, user_id, name, jam_id, seated)

        self.entered.set()
        work = asyncio.ensure_future(held())
        try:
            return await (asyncio.shield(work) if self.lands_anyway else work)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


@pytest.mark.parametrize("lands_anyway", [False, True], ids=["backend-join-cancelled", "backend-join-lands-anyway"])
async def test_a_cancel_while_the_join_is_handled_leaves_nobody_seated(
    make_harness: StartHarness, lands_anyway: bool
) -> None:
    harness = await make_harness()
    other = Watcher(harness.channel())
    assert isinstance(await other.join("room"), pb.PresenceState)
    held = HeldJoin(harness, lands_anyway)
    joiner = Watcher(harness.channel())
    await joiner.send(pb.JamRequest(join=pb.Join(jam_id="room")))
    await asyncio.wait_for(held.entered.wait(), 5)
    joiner.cancel()
    await asyncio.wait_for(held.cancelled.wait(), 5)
    held.release.set()

    hub = harness.server.servicer.hub
    # The handler forgets the stream after its cleanup, which no stream reports.
    await harness.wait_until(lambda: holds(len(hub.members) == 1))
    await harness.wait_until(lambda: holds(len(hub.backend._jams["room"].streams) == 1))  # type: ignore[attr-defined]
    await other.barrier()
    stats = await harness.stats()
    assert not check_jam_stats(stats)
    assert (stats.jam_count, stats.user_count) == (1, 1)
    assert set(other.view.state) == {other.user_id}
    # Had the joiner been seated for a moment, the other member must have seen it come and go, once each.
    for key, joins in other.seen.items():
        if key != other.user_id:
            assert joins == 1 and other.departures[key] == 1, f"{key}: {joins} joins, {other.departures[key]} leaves"
    assert not other.problems, other.problems
    await other.close()
    await joiner.close()
