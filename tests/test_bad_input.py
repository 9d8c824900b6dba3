"""Bad requests end only their own stream, with INVALID_ARGUMENT and a clear message, and leave no ghost member."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from support import PLAYED, TIMEOUT, Harness, JamClient

from jamservice.v1 import jam_pb2 as pb

JAM_METHOD = "/jamservice.v1.JamService/Jam"


class RawStream:
    """A Jam stream that writes raw bytes, so requests the generated stub would refuse can be sent."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        method = channel.stream_stream(JAM_METHOD, request_serializer=None, response_deserializer=None)
        self.call = method()

    async def write(self, raw: bytes) -> None:
        """Send bytes as one request message."""
        await self.call.write(raw)

    async def read(self) -> pb.JamResponse:
        """The next response, parsed."""
        raw = await asyncio.wait_for(self.call.read(), TIMEOUT)
        assert raw is not grpc.aio.EOF, "stream ended"
        assert isinstance(raw, bytes)
        return pb.JamResponse.FromString(raw)

    async def join(self, jam_id: str) -> str:
        """Join and return the user id; Joined and PresenceState are checked on the way."""
        await self.write(pb.JamRequest(join=pb.Join(jam_id=jam_id)).SerializeToString())
        joined = await self.read()
        assert joined.HasField("joined"), joined
        assert (await self.read()).HasField("presence_state")
        return joined.joined.user_id

    async def status(self) -> tuple[grpc.StatusCode, str]:
        """Drain the stream and return how it ended."""

        async def drain() -> None:
            while await self.call.read() is not grpc.aio.EOF:
                pass

        try:
            await asyncio.wait_for(drain(), TIMEOUT)
        except grpc.aio.AioRpcError:
            pass
        return await self.call.code(), await self.call.details() or ""


def join_request(jam_id: str = "room", name: str = "") -> bytes:
    """A serialised JamRequest holding a Join."""
    return pb.JamRequest(join=pb.Join(jam_id=jam_id, name=name)).SerializeToString()


def loop_event_request(kind: int) -> bytes:
    """A serialised JamRequest holding a LoopEvent of any type number."""
    return pb.JamRequest(loop_event=pb.LoopEvent(type=kind)).SerializeToString()  # type: ignore[arg-type]


BAD_JOINS = [
    pytest.param(join_request(jam_id="j" * 65), "jam_id is longer than 64 characters", id="jam-id-too-long"),
    pytest.param(join_request(jam_id="my jam"), "jam_id may hold only", id="jam-id-with-space"),
    pytest.param(join_request(jam_id="jam/1"), "jam_id may hold only", id="jam-id-with-slash"),
    pytest.param(join_request(jam_id="jäm"), "jam_id may hold only", id="jam-id-non-ascii"),
    pytest.param(join_request(name="n" * 65), "name is longer than 64 characters", id="name-too-long"),
    pytest.param(join_request(name="bell\x07"), "control characters", id="name-with-bell"),
    pytest.param(join_request(name="two\nlines"), "control characters", id="name-with-newline"),
    pytest.param(join_request(name="evil\u202eroom"), "bidi controls", id="name-with-bidi-override"),
    pytest.param(join_request(name="one\u2028two"), "line separators", id="name-with-line-separator"),
]

BAD_REQUESTS = [
    pytest.param(loop_event_request(pb.LOOP_EVENT_TYPE_UNSPECIFIED), "loop_event type must be", id="unspecified-type"),
    pytest.param(loop_event_request(7), "loop_event type must be", id="unknown-type-number"),
    pytest.param(pb.JamRequest().SerializeToString(), "no kind set", id="no-kind"),
    pytest.param(b"\x0a\x05ab", "malformed JamRequest", id="truncated-bytes"),
    pytest.param(b"\xff\xff\xff\xff", "malformed JamRequest", id="garbage-bytes"),
]


async def assert_quiet(client: JamClient) -> None:
    """The next message is the Pong to a Ping sent now: nothing else was queued."""
    await client.send(pb.JamRequest(ping=pb.Ping(client_time_unix_nanos=42)))
    assert (await client.next("pong")).pong.client_time_unix_nanos == 42


async def assert_still_serving(jam: Harness, watcher: JamClient, user_count: int) -> None:
    """The watcher's stream still works, the stats hold no ghost, and a newcomer can join."""
    await assert_quiet(watcher)
    stats = await jam.stats()
    assert stats.user_count == user_count
    assert {k: v.user_count for k, v in stats.jams.items()} == {"room": user_count}
    newcomer = await jam.joined("room")
    assert list((await watcher.diff()).joins) == [newcomer.user_id]


@pytest.mark.parametrize(("raw", "message"), BAD_JOINS)
async def test_a_bad_join_ends_the_stream_with_invalid_argument(jam: Harness, raw: bytes, message: str) -> None:
    watcher = await jam.joined("room")
    bad = RawStream(jam.channel())
    await bad.write(raw)
    code, details = await bad.status()
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in details
    await assert_still_serving(jam, watcher, user_count=1)


@pytest.mark.parametrize(("raw", "message"), BAD_REQUESTS)
async def test_a_bad_request_after_joining_ends_the_stream_and_the_others_see_its_leave(
    jam: Harness, raw: bytes, message: str
) -> None:
    watcher = await jam.joined("room")
    bad = RawStream(jam.channel())
    bad_user = await bad.join("room")
    assert list((await watcher.diff()).joins) == [bad_user]
    await bad.write(raw)
    code, details = await bad.status()
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in details
    diff = await watcher.diff()
    assert not diff.joins and list(diff.leaves) == [bad_user]
    await assert_still_serving(jam, watcher, user_count=1)


@pytest.mark.parametrize(("raw", "message"), BAD_REQUESTS)
async def test_a_bad_first_request_ends_the_stream_with_invalid_argument(jam: Harness, raw: bytes, message: str) -> None:
    watcher = await jam.joined("room")
    bad = RawStream(jam.channel())
    await bad.write(raw)
    code, details = await bad.status()
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in details
    await assert_still_serving(jam, watcher, user_count=1)


async def test_a_bad_request_after_a_redirect_leaves_the_full_jam_untouched(jam: Harness) -> None:
    members = [await jam.joined("room") for _ in range(7)]
    for i, member in enumerate(members):
        for _ in range(len(members) - i - 1):
            await member.diff()
    bad = RawStream(jam.channel())
    await bad.write(join_request("room"))
    assert (await bad.read()).HasField("join_redirect")
    await bad.write(loop_event_request(pb.LOOP_EVENT_TYPE_UNSPECIFIED))
    assert (await bad.status())[0] == grpc.StatusCode.INVALID_ARGUMENT
    for member in members:
        await assert_quiet(member)
    assert (await jam.stats()).user_count == 7


async def test_the_longest_and_widest_valid_join_is_accepted(jam: Harness) -> None:
    jam_id = ("AZaz09._:-" * 7)[:64]
    name = ("Zoë 🎸 " * 20)[:64]
    client = jam.client()
    state = await client.join(jam_id, name)
    assert client.jam_id == jam_id
    assert state.presences[client.user_id].metas[0].name == name


async def test_one_bad_stream_does_not_disturb_a_playing_jam(jam: Harness) -> None:
    ann = await jam.joined("room")
    bob = await jam.joined("room")
    await ann.diff()
    bad = RawStream(jam.channel())
    await bad.write(b"\xff\xff\xff\xff")
    await bob.play()
    assert (await bad.status())[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert (await ann.diff()).joins[bob.user_id].metas[0].loop_event == PLAYED
    assert (await ann.next("loop_event")).loop_event.user_id == bob.user_id
    await assert_quiet(ann)


@pytest.mark.parametrize(
    ("second", "code"),
    [
        (b"\xff\xff", grpc.StatusCode.INVALID_ARGUMENT),
        (join_request("room"), grpc.StatusCode.FAILED_PRECONDITION),
        (pb.JamRequest(loop_event=pb.LoopEvent(type=PLAYED, user_id="someone-else")).SerializeToString(),
         grpc.StatusCode.PERMISSION_DENIED),
    ],
    ids=["garbage", "second-join", "impersonation"],
)
async def test_a_bad_request_right_behind_the_join_still_gets_its_status(
    jam: Harness, second: bytes, code: grpc.StatusCode
) -> None:
    # The status must not collide with the Joined and PresenceState still being written.
    for _ in range(5):
        stream = RawStream(jam.channel())
        await stream.write(join_request("room"))
        await stream.write(second)
        assert (await stream.status())[0] == code
    stats = await jam.stats()
    assert (stats.jam_count, stats.user_count) == (0, 0)
