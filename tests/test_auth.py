"""Bearer-token authentication: off by default; when on, the token's subject is the user, who can act only as itself."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc
import pytest
from support import PLAYED, TIMEOUT, Harness, JamClient

from jamservice.auth import make_token
from jamservice.v1 import jam_pb2 as pb
from jamservice.v1 import jam_pb2_grpc

StartHarness = Callable[..., Awaitable[Harness]]
Metadata = tuple[tuple[str, str], ...]

SECRET = "a-test-secret-long-enough-for-hs256-keys"

BAD_CREDENTIALS: dict[str, Metadata] = {
    "missing": (),
    "not a bearer token": (("authorization", "Basic YW5uOnB3"),),
    "malformed token": (("authorization", "Bearer not-a-jwt"),),
    "wrongly signed": (("authorization", f"Bearer {make_token('some-other-secret-of-enough-length', 'ann')}"),),
    "expired": (("authorization", f"Bearer {make_token(SECRET, 'ann', ttl_seconds=-60)}"),),
    "subject with control characters": (("authorization", "Bearer " + make_token(SECRET, "ann\u202e\n")),),
}


def bearer(user: str) -> Metadata:
    """Metadata carrying a valid token for `user`."""
    return (("authorization", f"Bearer {make_token(SECRET, user)}"),)


@pytest.fixture
async def secured(make_harness: StartHarness) -> Harness:
    """A server with authentication on."""
    return await make_harness(auth_secret=SECRET)


async def stats(jam: Harness) -> pb.GetStatsResponse:
    stub = jam_pb2_grpc.JamServiceStub(jam.channel())
    return await stub.GetStats(pb.GetStatsRequest(), metadata=bearer("auditor"), timeout=TIMEOUT)


async def joined_as(jam: Harness, user: str, jam_id: str, name: str = "") -> tuple[JamClient, pb.PresenceState]:
    member = jam.client(metadata=bearer(user))
    state = await member.join(jam_id, name)
    return member, state


def meta_of(state: pb.PresenceState, member: JamClient) -> pb.PresenceMeta:
    """The member's own meta: its key's meta holding its loop."""
    return next(meta for meta in state.presences[member.user_id].metas if meta.loop_name == member.loop_name)


async def next_kind(member: JamClient) -> str:
    return (await member.next()).WhichOneof("kind") or ""


async def test_auth_is_off_by_default_and_each_stream_gets_a_fresh_user_id(jam: Harness) -> None:
    first = jam.client(metadata=(("authorization", "Bearer ignored-when-auth-is-off"),))
    await first.join("open")
    second = await jam.joined("open")
    assert first.user_id != second.user_id
    assert len(first.user_id) == 36 and len(second.user_id) == 36


@pytest.mark.parametrize("credentials", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
async def test_bad_credentials_get_unauthenticated_before_any_state_changes(
    secured: Harness, credentials: Metadata
) -> None:
    member = secured.client(metadata=credentials)
    try:
        await member.send(pb.JamRequest(join=pb.Join(jam_id="guarded", name="mallory")))
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
        pass  # refused before the Join went out
    code, _ = await member.status()
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert not secured.server.servicer.hub.members
    response = await stats(secured)
    assert response.jam_count == 0 and response.user_count == 0

    stub = jam_pb2_grpc.JamServiceStub(secured.channel())
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetStats(pb.GetStatsRequest(), metadata=credentials or None, timeout=TIMEOUT)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_token_subject_is_the_user_id(secured: Harness) -> None:
    ann, state = await joined_as(secured, "ann", "named")
    assert ann.user_id == "ann"
    assert list(state.presences) == ["ann"]
    assert state.presences["ann"].metas[0].user_id == "ann"


async def test_two_streams_of_one_user_are_one_key_with_two_seats(secured: Harness) -> None:
    ann1, _ = await joined_as(secured, "ann", "duo")
    ann2, _ = await joined_as(secured, "ann", "duo")
    bob, state = await joined_as(secured, "bob", "duo")
    assert ann1.user_id == ann2.user_id == "ann"
    assert ann1.loop_name != ann2.loop_name
    metas = state.presences["ann"].metas
    assert sorted(meta.loop_name for meta in metas) == sorted([ann1.loop_name, ann2.loop_name])
    assert len({meta.ref for meta in metas}) == 2
    assert (await stats(secured)).user_count == 3

    meta2 = meta_of(state, ann2)
    await ann2.half_close()
    diff = await bob.diff()
    assert not diff.joins
    assert [meta.ref for meta in diff.leaves["ann"].metas] == [meta2.ref]
    code, _ = await ann2.status()
    assert code == grpc.StatusCode.OK

    # The user's other stream keeps its seat and its loop.
    assert (await stats(secured)).user_count == 2
    await ann1.play()
    diff = await bob.diff()
    assert [meta.loop_name for meta in diff.joins["ann"].metas] == [ann1.loop_name]
    event = (await bob.next("loop_event")).loop_event
    assert event.user_id == "ann" and event.type == PLAYED


async def test_loop_event_naming_another_user_is_permission_denied(secured: Harness) -> None:
    ann, _ = await joined_as(secured, "ann", "honest")
    bob, _ = await joined_as(secured, "bob", "honest")
    await ann.diff()  # bob's join

    # Naming oneself is allowed.
    await bob.loop_event(PLAYED, user_id="bob")
    assert (await ann.diff()).joins["bob"].metas[0].loop_event == PLAYED
    assert (await ann.next("loop_event")).loop_event.user_id == "bob"

    await bob.loop_event(PLAYED, user_id="ann")
    code, details = await bob.status()
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "user_id" in details
    # Nothing was played in ann's name; bob's stream has left.
    diff = await ann.diff()
    assert list(diff.leaves) == ["bob"] and not diff.joins
    assert (await stats(secured)).user_count == 1


async def test_loop_event_updates_only_its_streams_meta_and_reaches_every_other_stream(secured: Harness) -> None:
    ann1, _ = await joined_as(secured, "ann", "echo")
    ann2, _ = await joined_as(secured, "ann", "echo")
    bob, state = await joined_as(secured, "bob", "echo")
    await ann1.diff()  # ann2's join
    await ann1.diff()  # bob's join
    await ann2.diff()  # bob's join
    before1, before2 = meta_of(state, ann1), meta_of(state, ann2)

    await ann1.play()
    for member in (bob, ann2, ann1):
        diff = await member.diff()
        assert list(diff.joins) == ["ann"] and list(diff.leaves) == ["ann"]
        (new,) = diff.joins["ann"].metas
        (old,) = diff.leaves["ann"].metas
        assert old.ref == before1.ref and new.ref_prev == before1.ref
        assert new.loop_name == ann1.loop_name and new.loop_event == PLAYED
        assert before2.ref not in (new.ref, old.ref)

    for member in (bob, ann2):
        event = (await member.next("loop_event")).loop_event
        assert event.user_id == "ann" and event.type == PLAYED
    # The sending stream gets no LoopEvent: the next thing it hears is the answer to its Ping.
    await ann1.send(pb.JamRequest(ping=pb.Ping(client_time_unix_nanos=7)))
    assert await next_kind(ann1) == "pong"
