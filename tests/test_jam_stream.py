"""The Jam stream end to end: identity, joins, the LoopCycler, the balancer, loop events, leaving and ordering."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from conftest import StartHarness
from support import PLAYED, STOPPED, Harness, JamClient

from jamservice.client.presence import PresenceView
from jamservice.v1 import jam_pb2 as pb

CATALOG = [
    "80s_Back_Beat",
    "Amsterdam_Layers",
    "Synthetic_String_Bass",
    "Degenerating_Pitch_Vox",
    "Kyoto_Night_Guitar",
    "Conga_Groove",
    "African_Rain_Caxixi",
]

_ping_times = itertools.count(1)


def is_uuid4(value: str) -> bool:
    """Whether value is the canonical text of a UUID4."""
    try:
        return str(uuid.UUID(value)) == value and uuid.UUID(value).version == 4
    except ValueError:
        return False


async def assert_quiet(client: JamClient) -> None:
    """Ping and require the Pong as the very next message: nothing else was queued for this stream."""
    stamp = next(_ping_times)
    await client.send(pb.JamRequest(ping=pb.Ping(client_time_unix_nanos=stamp)))
    pong = (await client.next("pong")).pong
    assert pong.client_time_unix_nanos == stamp


async def seat(jam: Harness, jam_id: str, count: int) -> list[JamClient]:
    """Join count members one after another, checking and consuming each earlier member's join diff."""
    members: list[JamClient] = []
    for _ in range(count):
        newcomer = await jam.joined(jam_id)
        for member in members:
            diff = await member.diff()
            assert list(diff.joins) == [newcomer.user_id] and not diff.leaves
        members.append(newcomer)
    return members


async def send_join(client: JamClient, jam_id: str = "", name: str = "") -> pb.JamResponse:
    """Send a Join and return the first answer, Joined or JoinRedirect."""
    await client.send(pb.JamRequest(join=pb.Join(jam_id=jam_id, name=name)))
    return await client.next()


def only_meta(presences: Mapping[str, pb.Presence], key: str) -> pb.PresenceMeta:
    """The single meta under key in a presences map."""
    metas = presences[key].metas
    assert len(metas) == 1, metas
    return metas[0]


# Identity and the first request


async def test_each_stream_gets_a_fresh_uuid4_user_id(jam: Harness) -> None:
    members = await seat(jam, "room", 3)
    ids = [m.user_id for m in members]
    assert all(is_uuid4(i) for i in ids), ids
    assert len(set(ids)) == 3
    # Two streams on one channel are still two identities.
    channel = jam.channel()
    first, second = jam.client(channel), jam.client(channel)
    await first.join("other")
    await second.join("other")
    assert first.user_id != second.user_id and is_uuid4(second.user_id)


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(pb.JamRequest(ping=pb.Ping(client_time_unix_nanos=1)), id="ping"),
        pytest.param(pb.JamRequest(loop_event=pb.LoopEvent(type=PLAYED)), id="loop-event"),
    ],
)
async def test_a_first_request_other_than_join_ends_the_stream_with_invalid_argument(
    jam: Harness, request_: pb.JamRequest
) -> None:
    client = jam.client()
    await client.send(request_)
    code, details = await client.status()
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "first request must be a Join" in details
    assert (await jam.stats()).user_count == 0


# Joining


async def test_a_joiner_gets_joined_then_the_whole_presence_and_others_get_one_diff(jam: Harness) -> None:
    ann, bob = await seat(jam, "room", 2)
    carol = jam.client()
    await carol.send(pb.JamRequest(join=pb.Join(jam_id="room", name="Carol")))
    joined = (await carol.next("joined")).joined
    assert (joined.jam_id, joined.loop_name) == ("room", "Synthetic_String_Bass")
    assert is_uuid4(joined.user_id)
    state = (await carol.next("presence_state")).presence_state
    assert set(state.presences) == {ann.user_id, bob.user_id, joined.user_id}
    mine = only_meta(state.presences, joined.user_id)
    assert (mine.user_id, mine.loop_name, mine.name) == (joined.user_id, "Synthetic_String_Bass", "Carol")
    assert mine.loop_event == pb.LOOP_EVENT_TYPE_UNSPECIFIED and mine.ref and not mine.ref_prev
    assert only_meta(state.presences, ann.user_id).loop_name == "80s_Back_Beat"
    assert only_meta(state.presences, bob.user_id).loop_name == "Amsterdam_Layers"

    for other in (ann, bob):
        diff = await other.diff()
        assert not diff.leaves
        assert only_meta(diff.joins, joined.user_id) == mine
        await assert_quiet(other)
    # The joiner is not told about its own join: the next message is the Pong.
    await assert_quiet(carol)


async def test_joiners_get_the_loops_in_catalog_order_and_a_freed_loop_goes_to_the_next_joiner(jam: Harness) -> None:
    members = await seat(jam, "room", 7)
    assert [m.loop_name for m in members] == CATALOG
    await members[1].half_close()
    assert (await members[1].status())[0] == grpc.StatusCode.OK
    newcomer = await jam.joined("room")
    assert newcomer.loop_name == "Amsterdam_Layers"


async def test_a_replaced_catalog_sets_the_loops_and_the_capacity(make_harness: StartHarness, tmp_path: Path) -> None:
    catalog = tmp_path / "loops.txt"
    catalog.write_text("Kick\nSnare\n# not a loop\nBass\n", encoding="utf-8")
    jam = await make_harness(loops=str(catalog))
    members = await seat(jam, "small", 3)
    assert [m.loop_name for m in members] == ["Kick", "Snare", "Bass"]
    answer = await send_join(jam.client(), "small")
    assert answer.WhichOneof("kind") == "join_redirect"
    assert answer.join_redirect.requested_jam_id == "small"


# The balancer


async def test_a_join_without_jam_id_goes_to_the_most_populated_jam_with_room(jam: Harness) -> None:
    await seat(jam, "two", 2)
    await seat(jam, "five", 5)
    await seat(jam, "full", 7)
    await seat(jam, "one", 1)
    placed = await jam.joined()
    assert placed.jam_id == "five"
    assert placed.loop_name == "Conga_Groove"


async def test_joins_without_jam_id_fill_a_new_jam_then_open_another(jam: Harness) -> None:
    first = await jam.joined()
    assert is_uuid4(first.jam_id)
    for _ in range(6):
        assert (await jam.joined()).jam_id == first.jam_id
    eighth = await jam.joined()
    assert is_uuid4(eighth.jam_id) and eighth.jam_id != first.jam_id
    assert eighth.loop_name == CATALOG[0]
    stats = await jam.stats()
    assert {k: v.user_count for k, v in stats.jams.items()} == {first.jam_id: 7, eighth.jam_id: 1}


async def test_eighth_member_is_redirected_to_where_the_balancer_would_place_and_can_follow(jam: Harness) -> None:
    members = await seat(jam, "full", 7)
    await seat(jam, "other", 2)
    eighth = jam.client()
    answer = await send_join(eighth, "full", "Eve")
    assert answer.WhichOneof("kind") == "join_redirect"
    assert answer.join_redirect == pb.JoinRedirect(requested_jam_id="full", jam_id="other")
    for member in members:
        await assert_quiet(member)
    # The stream stays open: a Ping works and a second Join follows the redirect.
    await assert_quiet(eighth)
    await eighth.join(answer.join_redirect.jam_id, "Eve")
    assert (eighth.jam_id, eighth.loop_name) == ("other", "Synthetic_String_Bass")
    stats = await jam.stats()
    assert {k: v.user_count for k, v in stats.jams.items()} == {"full": 7, "other": 3}


async def test_a_redirect_names_a_fresh_jam_when_no_jam_has_room(jam: Harness) -> None:
    await seat(jam, "full", 7)
    eighth = jam.client()
    answer = await send_join(eighth, "full")
    redirect = answer.join_redirect
    assert redirect.requested_jam_id == "full"
    assert is_uuid4(redirect.jam_id)
    await eighth.join(redirect.jam_id)
    assert eighth.jam_id == redirect.jam_id and eighth.loop_name == CATALOG[0]


async def test_a_jam_disappears_from_stats_when_its_last_member_leaves(jam: Harness) -> None:
    await jam.stats()
    ann, bob = await seat(jam, "room", 2)
    keep = await jam.joined("stays")
    await ann.half_close()
    await ann.status()
    assert {k: v.user_count for k, v in (await jam.stats()).jams.items()} == {"room": 1, "stays": 1}
    await bob.half_close()
    await bob.status()
    stats = await jam.stats()
    assert "room" not in stats.jams
    assert (stats.jam_count, stats.user_count) == (1, 1)
    await assert_quiet(keep)


async def test_twenty_simultaneous_joins_of_one_jam_seat_seven_and_redirect_thirteen(jam: Harness) -> None:
    clients = [jam.client() for _ in range(20)]
    answers = await asyncio.gather(*(send_join(c, "crowd") for c in clients))
    kinds = [a.WhichOneof("kind") for a in answers]
    assert kinds.count("joined") == 7 and kinds.count("join_redirect") == 13
    loops = [a.joined.loop_name for a in answers if a.HasField("joined")]
    assert sorted(loops) == sorted(CATALOG), "no loop twice"
    for answer in answers:
        if answer.HasField("join_redirect"):
            assert answer.join_redirect.requested_jam_id == "crowd"
            assert answer.join_redirect.jam_id != "crowd"
    stats = await jam.stats()
    assert stats.user_count == 7 and stats.jams["crowd"].user_count == 7


# Loop events


async def test_a_loop_event_updates_the_senders_meta_for_everyone_and_notifies_only_the_others(jam: Harness) -> None:
    ann, bob, carol, dave = await seat(jam, "room", 4)
    current = None
    for kind in (PLAYED, STOPPED, PLAYED):
        await bob.loop_event(kind)
        seen: list[pb.PresenceMeta] = []
        for member in (ann, carol, dave):
            diff = await member.diff()
            new, old = only_meta(diff.joins, bob.user_id), only_meta(diff.leaves, bob.user_id)
            assert set(diff.joins) == set(diff.leaves) == {bob.user_id}
            assert new.loop_event == kind and new.ref_prev == old.ref and new.ref != old.ref
            assert (new.loop_name, new.user_id) == (old.loop_name, old.user_id) == ("Amsterdam_Layers", bob.user_id)
            if current is not None:
                assert old == current, "the old meta is the one the previous update produced"
            event = (await member.next("loop_event")).loop_event
            assert event == pb.LoopEvent(user_id=bob.user_id, type=kind)
            seen.append(new)
        own = await bob.diff()
        assert only_meta(own.joins, bob.user_id) == seen[0]
        assert all(meta == seen[0] for meta in seen), "everyone sees the same new meta"
        current = seen[0]
    for member in (ann, bob, carol, dave):
        await assert_quiet(member)


async def test_a_loop_event_may_name_the_sender_or_nobody(jam: Harness) -> None:
    ann, bob = await seat(jam, "room", 2)
    await bob.loop_event(PLAYED, user_id=bob.user_id)
    await bob.loop_event(STOPPED, user_id="")
    for kind in (PLAYED, STOPPED):
        await ann.diff()
        assert (await ann.next("loop_event")).loop_event == pb.LoopEvent(user_id=bob.user_id, type=kind)
        assert only_meta((await bob.diff()).joins, bob.user_id).loop_event == kind
    await assert_quiet(ann)
    await assert_quiet(bob)


async def test_a_loop_event_naming_someone_else_ends_the_stream_with_permission_denied(jam: Harness) -> None:
    ann, bob, carol = await seat(jam, "room", 3)
    await bob.loop_event(PLAYED, user_id=ann.user_id)
    code, details = await bob.status()
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "user_id" in details
    for member in (ann, carol):
        diff = await member.diff()
        assert not diff.joins
        assert only_meta(diff.leaves, bob.user_id).loop_event == pb.LOOP_EVENT_TYPE_UNSPECIFIED, "nothing was played"
        await assert_quiet(member)
    assert (await jam.stats()).jams["room"].user_count == 2


async def test_a_late_joiners_presence_state_shows_every_loop_and_last_loop_event(jam: Harness) -> None:
    ann, bob, carol = await seat(jam, "room", 3)
    await ann.play()
    await bob.play()
    await bob.stop()
    # Wait until the server applied all three: carol sees three updates.
    for _ in range(3):
        await carol.diff()
        await carol.next("loop_event")
    late = jam.client()
    state = await late.join("room")
    expected = {
        ann.user_id: ("80s_Back_Beat", PLAYED),
        bob.user_id: ("Amsterdam_Layers", STOPPED),
        carol.user_id: ("Synthetic_String_Bass", pb.LOOP_EVENT_TYPE_UNSPECIFIED),
        late.user_id: ("Degenerating_Pitch_Vox", pb.LOOP_EVENT_TYPE_UNSPECIFIED),
    }
    got = {key: (only_meta(state.presences, key).loop_name, only_meta(state.presences, key).loop_event) for key in state.presences}
    assert got == expected


# Leaving


async def leave_by_half_close(client: JamClient, jam: Harness) -> None:
    """Leave by ending the request stream."""
    await client.half_close()
    code, _ = await client.status()
    assert code == grpc.StatusCode.OK, "half-closing ends the call with OK"


async def leave_by_cancel(client: JamClient, jam: Harness) -> None:
    """Leave by cancelling the call."""
    client.cancel()


async def leave_by_closing_the_channel(client: JamClient, jam: Harness) -> None:
    """Leave by closing the connection the call runs on."""
    await client.channel.close()


LEAVE_WAYS = [
    pytest.param(leave_by_half_close, id="half-close"),
    pytest.param(leave_by_cancel, id="cancel"),
    pytest.param(leave_by_closing_the_channel, id="channel-closed"),
]

Leave = Callable[[JamClient, Harness], Awaitable[None]]


@pytest.mark.parametrize("leave", LEAVE_WAYS)
async def test_leaving_gives_each_remaining_member_one_leave_and_frees_the_seat_and_loop(jam: Harness, leave: Leave) -> None:
    await jam.stats()  # its channel is not one of the members'
    ann, bob, carol = await seat(jam, "room", 3)
    await bob.play()
    played = None
    for member in (ann, carol):
        played = only_meta((await member.diff()).joins, bob.user_id)
        await member.next("loop_event")
    await bob.diff()
    await leave(bob, jam)
    for member in (ann, carol):
        diff = await member.diff()
        assert not diff.joins and list(diff.leaves) == [bob.user_id]
        assert only_meta(diff.leaves, bob.user_id) == played
        await assert_quiet(member)
    assert (await jam.stats()).jams["room"].user_count == 2
    newcomer = await jam.joined("room")
    assert newcomer.loop_name == "Amsterdam_Layers"


@pytest.mark.parametrize("leave", LEAVE_WAYS)
async def test_the_last_member_leaving_removes_the_jam(jam: Harness, leave: Leave) -> None:
    await jam.stats()
    other = await jam.joined("other")
    alone = await jam.joined("alone")
    await leave(alone, jam)

    async def gone() -> bool:
        return "alone" not in (await jam.stats()).jams

    # Nobody is left in the jam to be told, so only the server's state can show the leave.
    await jam.wait_until(gone)
    stats = await jam.stats()
    assert (stats.jam_count, stats.user_count) == (1, 1)
    await assert_quiet(other)
    rejoined = await jam.joined("alone")
    assert rejoined.loop_name == CATALOG[0]


async def test_a_second_join_ends_the_stream_with_failed_precondition_and_only_its_leave_is_seen(jam: Harness) -> None:
    await jam.stats()
    ann, bob = await seat(jam, "room", 2)
    await bob.send(pb.JamRequest(join=pb.Join(jam_id="elsewhere")))
    code, details = await bob.status()
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "already in jam room" in details
    diff = await ann.diff()
    assert not diff.joins and list(diff.leaves) == [bob.user_id]
    await assert_quiet(ann)
    stats = await jam.stats()
    assert {k: v.user_count for k, v in stats.jams.items()} == {"room": 1}, "no seat was taken in the other jam"


async def test_a_second_join_of_the_same_jam_is_refused_too(jam: Harness) -> None:
    ann, bob = await seat(jam, "room", 2)
    await bob.send(pb.JamRequest(join=pb.Join(jam_id="room")))
    assert (await bob.status())[0] == grpc.StatusCode.FAILED_PRECONDITION
    diff = await ann.diff()
    assert not diff.joins and list(diff.leaves) == [bob.user_id]
    await assert_quiet(ann)
    assert (await jam.stats()).user_count == 1


# Ping


async def test_a_ping_is_answered_with_a_pong_carrying_both_clocks(jam: Harness) -> None:
    client = await jam.joined("room")
    before = time.time_ns()
    await client.send(pb.JamRequest(ping=pb.Ping(client_time_unix_nanos=123456789)))
    pong = (await client.next("pong")).pong
    after = time.time_ns()
    assert pong.client_time_unix_nanos == 123456789
    # Same machine, same clock: the server's time falls between our two readings (a second's slack for clock steps).
    assert before - 1_000_000_000 <= pong.server_time_unix_nanos <= after + 1_000_000_000


async def test_a_ping_after_a_redirect_is_answered(jam: Harness) -> None:
    await seat(jam, "full", 7)
    client = jam.client()
    assert (await send_join(client, "full")).HasField("join_redirect")
    await assert_quiet(client)


# Ordering


@dataclass
class Observer:
    """One member's view of the jam, checked message by message as Phoenix clients apply them."""

    client: JamClient
    view: PresenceView = field(default_factory=PresenceView)
    loop_events: list[tuple[str, int]] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)

    def refs(self) -> set[str]:
        """Every ref in the view."""
        return {m.ref for metas in self.view.state.values() for m in metas}

    def take(self, response: pb.JamResponse) -> None:
        """Apply one message, failing on a diff that repeats or skips a change."""
        kind = response.WhichOneof("kind")
        if kind == "presence_diff":
            diff = response.presence_diff
            joined = {m.ref for p in diff.joins.values() for m in p.metas}
            left = {m.ref for p in diff.leaves.values() for m in p.metas}
            assert not joined & self.refs(), "a diff repeats a join the member already has"
            assert left <= self.refs() | joined, "a diff removes a meta the member never saw: one was missed"
            self.view.apply(response)
        elif kind == "loop_event":
            self.loop_events.append((response.loop_event.user_id, response.loop_event.type))
        else:
            raise AssertionError(f"unexpected {kind}: {response}")

    async def read_to_pong(self) -> None:
        """Ping, then take every message up to its Pong."""
        stamp = next(_ping_times)
        await self.client.send(pb.JamRequest(ping=pb.Ping(client_time_unix_nanos=stamp)))
        while True:
            response = await self.client.next()
            if response.HasField("pong"):
                assert response.pong.client_time_unix_nanos == stamp
                return
            self.take(response)


def is_suffix(tail: list[int], whole: list[int]) -> bool:
    """Whether whole ends with tail."""
    return not tail or whole[-len(tail) :] == tail


async def test_each_member_sees_every_change_after_its_state_once_and_in_order(jam: Harness) -> None:
    await jam.stats()
    observers = [Observer(jam.client()) for _ in range(7)]
    early, late = observers[:3], observers[3:]
    # One member who was there from the start and one who came late leave while the others play.
    leavers = [early[0], late[0]]
    stayers = [o for o in observers if o not in leavers]

    async def join(observer: Observer) -> None:
        state = await observer.client.join("busy", f"player-{observers.index(observer)}")
        observer.view.apply_state(state)

    async def play(observer: Observer, rounds: int) -> None:
        for i in range(rounds):
            kind = PLAYED if i % 2 == 0 else STOPPED
            observer.sent.append(kind)
            await observer.client.loop_event(kind)
        if observer in leavers:
            await observer.client.half_close()
            assert (await observer.client.status())[0] == grpc.StatusCode.OK
        else:
            await observer.read_to_pong()

    async def join_and_play(observer: Observer, rounds: int) -> None:
        await join(observer)
        await play(observer, rounds)

    for observer in early:
        await join(observer)
    # Late members join while the early ones play, so changes land between a join and what follows it.
    await asyncio.gather(
        *(play(o, 8) for o in early),
        *(join_and_play(o, 3 + i) for i, o in enumerate(late)),
    )
    # Each stream's own Pong came after its own changes, so by now every change is applied and queued.
    await asyncio.gather(*(o.read_to_pong() for o in stayers))

    truth = {o.client.user_id: [(o.client.loop_name, o.sent[-1])] for o in stayers}
    for observer in stayers:
        got = {key: [(m.loop_name, m.loop_event) for m in metas] for key, metas in observer.view.state.items()}
        assert got == truth
        assert observer.view.summary() == stayers[0].view.summary(), "every member holds the same refs"
        senders = {user for user, _ in observer.loop_events}
        assert observer.client.user_id not in senders, "a member was sent its own loop event"
        for other in observers:
            if other is observer:
                continue
            theirs = [kind for user, kind in observer.loop_events if user == other.client.user_id]
            if observer in early:
                assert theirs == other.sent, "a member present from the start gets every loop event once, in order"
            else:
                assert is_suffix(theirs, other.sent), "loop events after a join come once each, in order"
    assert {k: v.user_count for k, v in (await jam.stats()).jams.items()} == {"busy": 5}
