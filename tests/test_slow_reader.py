"""A member that stops reading is dropped as a slow consumer; the others keep every event, in order."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Awaitable, Callable

import grpc
from support import PLAYED, STOPPED, Harness, JamClient

from jamservice.hub import Member
from jamservice.v1 import jam_pb2 as pb

StartHarness = Callable[..., Awaitable[Harness]]

OUTBOX_SIZE = 16
PLAYERS = 6
# Enough events to fill the slow member's HTTP/2 window (64 KiB) and then its outbox, about twice over.
ROUNDS = 50
SEQUENCE = [PLAYED, STOPPED] * ROUNDS


@dataclasses.dataclass
class Heard:
    """What one player received: loop events and presence updates per user, arrivals and departures."""

    events: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    updates: dict[str, list[pb.PresenceMeta]] = dataclasses.field(default_factory=dict)
    arrived: list[str] = dataclasses.field(default_factory=list)
    departed: list[str] = dataclasses.field(default_factory=list)

    def note(self, response: pb.JamResponse) -> None:
        kind = response.WhichOneof("kind")
        if kind == "loop_event":
            self.events.setdefault(response.loop_event.user_id, []).append(response.loop_event.type)
            return
        assert kind == "presence_diff", response
        diff = response.presence_diff
        replaced = set()
        for key, presence in diff.joins.items():
            for meta in presence.metas:
                if meta.ref_prev:
                    self.updates.setdefault(key, []).append(meta)
                    replaced.add(meta.ref_prev)
                else:
                    self.arrived.append(key)
        for key, presence in diff.leaves.items():
            self.departed += [key for meta in presence.metas if meta.ref not in replaced]


async def play_and_listen(me: JamClient, others: list[str], slow_id: str, slow: Member, peak: list[int]) -> Heard:
    """Play and stop ROUNDS times, each time waiting for our own update; then read until everything has come."""
    heard = Heard()

    def mine() -> int:
        return len(heard.updates.get(me.user_id, []))

    for kind in SEQUENCE:
        await me.loop_event(kind)
        expected = mine() + 1
        while mine() < expected:
            heard.note(await me.next())
        peak[0] = max(peak[0], len(slow.outbox))

    def complete() -> bool:
        return (
            all(len(heard.events.get(other, [])) == len(SEQUENCE) for other in others)
            and all(len(heard.updates.get(other, [])) == len(SEQUENCE) for other in others)
            and slow_id in heard.departed
        )

    while not complete():
        heard.note(await me.next())
    return heard


async def test_member_that_stops_reading_is_dropped_and_the_others_get_every_event_in_order(
    make_harness: StartHarness,
) -> None:
    jam = await make_harness(outbox_size=OUTBOX_SIZE, loop_event_rate=10_000, loop_event_burst=10_000)
    # Without BDP probing the client keeps its HTTP/2 window at 64 KiB, so the server's writes block early.
    slow = jam.client(jam.channel(options=[("grpc.http2.bdp_probe", 0)]))
    await slow.join("crowded", "slow")
    slow_member = next(m for m in jam.server.servicer.hub.members.values() if m.user_id == slow.user_id)
    players = [await jam.joined("crowded", f"p{i}") for i in range(PLAYERS)]
    ids = [player.user_id for player in players]
    peak = [0]

    # From here on the slow member never calls read, until the very end.
    heard = await asyncio.gather(
        *(play_and_listen(p, [i for i in ids if i != p.user_id], slow.user_id, slow_member, peak) for p in players)
    )

    for player, got in zip(players, heard, strict=True):
        assert player.user_id not in got.events, "a sender must not get its own LoopEvent"
        assert slow.user_id not in got.events
        for sender in ids:
            if sender != player.user_id:
                assert got.events[sender] == SEQUENCE
            metas = got.updates[sender]
            assert [meta.loop_event for meta in metas] == SEQUENCE
            # Each update replaces the one before it: none lost, none out of order.
            assert all(later.ref_prev == earlier.ref for earlier, later in itertools.pairwise(metas))
        assert got.departed == [slow.user_id]

    assert slow_member.kicked
    assert peak[0] <= OUTBOX_SIZE
    assert len(slow_member.outbox) <= OUTBOX_SIZE
    # The slow member has left although it still has not read anything.
    stats = await jam.stats()
    assert stats.user_count == PLAYERS

    code, details = await slow.status(timeout=15)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "slow consumer" in details
