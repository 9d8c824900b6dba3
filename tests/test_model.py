"""A model of the jam service, checked step by step against a real server by random sequences of requests."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import grpc
import pytest
from crowd_support import CAPACITY, Watcher, check_jam_stats, get_stats, summarize
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from support import Harness

from jamservice.config import Settings
from jamservice.loops import DEFAULT_CATALOG
from jamservice.server import JamServer, start
from jamservice.v1 import jam_pb2 as pb

T = TypeVar("T")
StartHarness = Callable[..., Awaitable[Harness]]

STEP_TIMEOUT = 15.0
NAMED_JAMS = ("red", "blue")
PLAYED, STOPPED = pb.LOOP_EVENT_TYPE_PLAYED, pb.LOOP_EVENT_TYPE_STOPPED
# Requests that a joined stream may not send; each ends the stream with INVALID_ARGUMENT.
BAD_REQUESTS = {
    "unspecified loop event": pb.JamRequest(loop_event=pb.LoopEvent(type=pb.LOOP_EVENT_TYPE_UNSPECIFIED)),
    "no kind": pb.JamRequest(),
    "jam id with a space": pb.JamRequest(join=pb.Join(jam_id="red room")),
    "jam id too long": pb.JamRequest(join=pb.Join(jam_id="j" * 65)),
    "name with a control character": pb.JamRequest(join=pb.Join(jam_id="red", name="bell\a")),
}
GARBAGE = b"\x0a\xff"
RAW_JAM = "/jamservice.v1.JamService/Jam"


class Loop:
    """An event loop in a thread of its own, for a synchronous state machine to drive a grpc.aio server."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="model-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = STEP_TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@dataclasses.dataclass
class Env:
    """The server under test and the loop it runs on, shared by every example."""

    loop: Loop
    server: JamServer
    control: grpc.aio.Channel

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"


@pytest.fixture
def env() -> Iterator[Env]:
    loop = Loop()

    async def up() -> Env:
        server = await start(Settings(listen="127.0.0.1:0"))
        return Env(loop, server, grpc.aio.insecure_channel(f"127.0.0.1:{server.port}"))

    running = loop.run(up())
    try:
        yield running
    finally:

        async def down() -> None:
            await running.control.close()
            await running.server.stop(0.5)

        loop.run(down())
        loop.close()


@dataclasses.dataclass
class Player:
    """One live, seated stream: what the model expects of it."""

    watcher: Watcher
    user_id: str
    jam_id: str
    # Loop events of other members this stream must have been sent, in order.
    expected_events: list[tuple[str, int]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Seat:
    """The model's record of one member of a jam."""

    loop_name: str
    loop_event: int = pb.LOOP_EVENT_TYPE_UNSPECIFIED


class JamModel(RuleBasedStateMachine):
    """Joins, plays, stops and leaves by every path, with the model's jams kept beside the server's."""

    def __init__(self, env: Env) -> None:
        super().__init__()
        self.env = env
        self.players: list[Player] = []
        self.jams: dict[str, dict[str, Seat]] = {}
        self.channels: list[grpc.aio.Channel] = []

    # What the model predicts

    def room(self) -> list[str]:
        """Jams with a free seat, most populated first, as the balancer ranks them."""
        return [j for j, seats in self.jams.items() if len(seats) < CAPACITY]

    def best_choices(self) -> set[str]:
        """Where the balancer may place a join without a jam id: a most populated jam with room (empty: a new jam)."""
        open_jams = self.room()
        if not open_jams:
            return set()
        most = max(len(self.jams[j]) for j in open_jams)
        return {j for j in open_jams if len(self.jams[j]) == most}

    def free_loop(self, jam_id: str) -> str:
        held = {seat.loop_name for seat in self.jams.get(jam_id, {}).values()}
        return next(loop for loop in DEFAULT_CATALOG if loop not in held)

    def check_placement(self, jam_id: str, choices: set[str]) -> None:
        if choices:
            assert jam_id in choices, f"placed in {jam_id}, expected one of {choices}"
        else:
            assert jam_id not in self.jams, f"placed in {jam_id}, expected a new jam"

    def seat(self, player: Player, loop_name: str) -> None:
        assert loop_name == self.free_loop(player.jam_id), "not the first free loop of the catalog"
        self.jams.setdefault(player.jam_id, {})[player.user_id] = Seat(loop_name)
        self.players.append(player)

    def unseat(self, player: Player) -> None:
        self.players.remove(player)
        seats = self.jams[player.jam_id]
        del seats[player.user_id]
        if not seats:
            del self.jams[player.jam_id]

    # Driving the server

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.env.loop.run(coro)

    async def new_channel(self) -> grpc.aio.Channel:
        channel = grpc.aio.insecure_channel(self.env.address)
        self.channels.append(channel)
        return channel

    async def join(self, jam_id: str) -> Player:
        """Open a stream and join, following a redirect the way a client would."""
        watcher = Watcher(await self.new_channel())
        answer = await watcher.join(jam_id)
        if isinstance(answer, pb.JoinRedirect):
            assert jam_id and len(self.jams.get(jam_id, {})) == CAPACITY, f"redirected from {jam_id} with room"
            assert answer.requested_jam_id == jam_id
            self.check_placement(answer.jam_id, self.best_choices())
            answer = await watcher.join(answer.jam_id)
        else:
            if jam_id:
                assert len(self.jams.get(jam_id, {})) < CAPACITY, f"seated in full jam {jam_id}"
                assert watcher.jam_id == jam_id
            else:
                self.check_placement(watcher.jam_id, self.best_choices())
        assert isinstance(answer, pb.PresenceState), f"not seated: {answer}"
        return Player(watcher, watcher.user_id, watcher.jam_id)

    async def server_forgets(self, streams: int) -> None:
        """Wait until the server holds this many streams; a cancel is processed without telling any stream."""
        hub = self.env.server.servicer.hub
        deadline = asyncio.get_running_loop().time() + 5
        while len(hub.members) != streams:
            assert asyncio.get_running_loop().time() < deadline, f"server holds {len(hub.members)}, not {streams}"
            await asyncio.sleep(0.005)

    def pick(self, index: int) -> Player:
        return self.players[index % len(self.players)]

    # Rules

    @rule(jam_id=st.sampled_from(NAMED_JAMS), count=st.integers(1, 4))
    def join_named(self, jam_id: str, count: int) -> None:
        for _ in range(count):
            player = self.run(self.join(jam_id))
            self.seat(player, player.watcher.loop_name)

    @rule()
    def join_auto(self) -> None:
        player = self.run(self.join(""))
        self.seat(player, player.watcher.loop_name)

    @precondition(lambda self: self.players)
    @rule(index=st.integers(0, 63), kind=st.sampled_from([PLAYED, STOPPED]))
    def play(self, index: int, kind: int) -> None:
        player = self.pick(index)

        async def play() -> None:
            await player.watcher.play(kind)
            # A Pong on the same stream comes after the event has been fanned out.
            await player.watcher.barrier()

        self.run(play())
        self.jams[player.jam_id][player.user_id].loop_event = kind
        for other in self.players:
            if other.jam_id == player.jam_id and other is not player:
                other.expected_events.append((player.user_id, kind))

    @precondition(lambda self: self.players)
    @rule(index=st.integers(0, 63), path=st.sampled_from(["half_close", "cancel", "channel_close"]))
    def leave(self, index: int, path: str) -> None:
        player = self.pick(index)
        self.unseat(player)

        async def leave() -> None:
            watcher = player.watcher
            if path == "half_close":
                await watcher.half_close()
                assert await watcher.wait_ended() == grpc.StatusCode.OK
                return
            if path == "cancel":
                watcher.cancel()
            else:
                await watcher.channel.close()
            assert await watcher.wait_ended() == grpc.StatusCode.CANCELLED
            await self.server_forgets(len(self.players))

        self.run(leave())

    @precondition(lambda self: self.players)
    @rule(index=st.integers(0, 63), jam_id=st.sampled_from(["", *NAMED_JAMS]))
    def join_twice(self, index: int, jam_id: str) -> None:
        player = self.pick(index)
        self.unseat(player)

        async def join_again() -> None:
            await player.watcher.send(pb.JamRequest(join=pb.Join(jam_id=jam_id)))
            assert await player.watcher.wait_ended() == grpc.StatusCode.FAILED_PRECONDITION

        self.run(join_again())

    @precondition(lambda self: self.players)
    @rule(index=st.integers(0, 63), case=st.sampled_from(sorted(BAD_REQUESTS)))
    def send_bad_request(self, index: int, case: str) -> None:
        player = self.pick(index)
        self.unseat(player)

        async def send() -> None:
            await player.watcher.send(BAD_REQUESTS[case])
            assert await player.watcher.wait_ended() == grpc.StatusCode.INVALID_ARGUMENT, case

        self.run(send())

    @rule(first=st.sampled_from([pb.JamRequest(ping=pb.Ping()), pb.JamRequest(loop_event=pb.LoopEvent(type=PLAYED))]))
    def send_something_before_joining(self, first: pb.JamRequest) -> None:
        async def send() -> None:
            watcher = Watcher(await self.new_channel())
            await watcher.send(first)
            assert await watcher.wait_ended() == grpc.StatusCode.INVALID_ARGUMENT
            await self.server_forgets(len(self.players))

        self.run(send())

    @rule(jam_id=st.sampled_from(["", *NAMED_JAMS]))
    def send_malformed_bytes_after_joining(self, jam_id: str) -> None:
        target = jam_id if len(self.jams.get(jam_id, {})) < CAPACITY else ""
        choices = self.best_choices()

        async def send() -> tuple[str, str]:
            call = (await self.new_channel()).stream_stream(RAW_JAM, request_serializer=None, response_deserializer=None)()
            await call.write(pb.JamRequest(join=pb.Join(jam_id=target)).SerializeToString())
            joined = pb.JamResponse.FromString(await call.read()).joined
            assert pb.JamResponse.FromString(await call.read()).HasField("presence_state")
            await call.write(GARBAGE)
            try:
                while await call.read() is not grpc.aio.EOF:
                    pass
            except grpc.aio.AioRpcError:
                pass
            assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT
            return joined.jam_id, joined.loop_name

        jam, loop_name = self.run(send())
        if target:
            assert jam == target
        else:
            self.check_placement(jam, choices)
        assert loop_name == self.free_loop(jam)

    # Invariants

    @invariant()
    def server_agrees_with_model(self) -> None:
        self.run(self.check())

    async def check(self) -> None:
        await asyncio.gather(*(player.watcher.barrier() for player in self.players))
        hub = self.env.server.servicer.hub
        server_jams = hub.backend._jams  # type: ignore[attr-defined]
        assert len(hub.members) == len(self.players)
        assert set(server_jams) == set(self.jams), "the server's jams are not the model's"
        for jam_id, seats in self.jams.items():
            truth = summarize(server_jams[jam_id].state)
            loops = [loop for metas in truth.values() for _, loop, _ in metas]
            assert 0 < len(loops) <= CAPACITY and len(set(loops)) == len(loops), (jam_id, loops)
            expected = {user_id: [(seat.loop_name, seat.loop_event)] for user_id, seat in seats.items()}
            assert {key: [(loop, event) for _, loop, event in metas] for key, metas in truth.items()} == expected
        for player in self.players:
            watcher = player.watcher
            assert not watcher.problems, watcher.problems
            assert watcher.states == 1
            assert watcher.view.summary() == summarize(server_jams[player.jam_id].state)
            assert watcher.loop_events == player.expected_events
        stats = await get_stats(self.env.control)
        assert not check_jam_stats(stats)
        assert {j: s.user_count for j, s in stats.jams.items()} == {j: len(s) for j, s in self.jams.items()}

    def teardown(self) -> None:
        async def close() -> None:
            for player in self.players:
                player.watcher.cancel()
            await asyncio.gather(*(player.watcher.close() for player in self.players))
            for channel in self.channels:
                await channel.close()
            await self.server_forgets(0)
            stats = await get_stats(self.env.control)
            assert (stats.jam_count, stats.user_count) == (0, 0), f"left behind: {stats}"

        self.run(close())


def test_random_sessions_keep_server_views_and_model_in_agreement(env: Env) -> None:
    run_state_machine_as_test(
        lambda: JamModel(env),  # type: ignore[arg-type]  # a factory is accepted as well as a class
        settings=settings(
            max_examples=25,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


async def test_malformed_bytes_end_only_their_own_stream(make_harness: StartHarness) -> None:
    harness = await make_harness()
    others = [Watcher(harness.channel()) for _ in range(3)]
    for other in others:
        assert isinstance(await other.join("room"), pb.PresenceState)
    call = harness.channel().stream_stream(RAW_JAM, request_serializer=None, response_deserializer=None)()
    await call.write(pb.JamRequest(join=pb.Join(jam_id="room")).SerializeToString())
    user_id = pb.JamResponse.FromString(await call.read()).joined.user_id
    await call.write(GARBAGE)
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        while await call.read() is not grpc.aio.EOF:
            pass
    assert ended.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # Everyone else is served as before: they saw the intruder come and go, and still hear each other.
    await others[0].play()
    # The Pong on the player's own stream follows the fan-out of its event; the others' Pongs, its delivery.
    await others[0].barrier()
    await asyncio.gather(*(other.barrier() for other in others))
    for other in others:
        assert other.seen[user_id] == 1 and other.departures[user_id] == 1
        assert set(other.view.state) == {o.user_id for o in others}
        assert not other.problems
    assert others[1].loop_events == others[2].loop_events == [(others[0].user_id, PLAYED)]
    stats = await get_stats(harness.channels[0])
    assert (stats.jam_count, stats.user_count) == (1, 3)
    for other in others:
        await other.close()
