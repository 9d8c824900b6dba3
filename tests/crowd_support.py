"""Helpers for the crowd, churn and model tests: a member whose stream is read by a background task."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterable, Mapping

import grpc

from jamservice.client.presence import PresenceView
from jamservice.presence import Meta
from jamservice.v1 import jam_pb2 as pb
from jamservice.v1 import jam_pb2_grpc

TIMEOUT = 5.0
CAPACITY = 7

Summary = dict[str, list[tuple[str, str, int]]]

_ping_ids = itertools.count(1)


class Watcher:
    """One Jam stream, read in the background into a PresenceView.

    It counts, per presence key, the diffs that took the key away (a departure), so
    a test can check that every member that leaves is reported exactly once. Joined,
    JoinRedirect and PresenceState go to `control` for join() to pick up; anything a
    member must never see goes to `problems`.
    """

    def __init__(self, channel: grpc.aio.Channel, timeout: float | None = None) -> None:
        self.channel = channel
        self.call = jam_pb2_grpc.JamServiceStub(channel).Jam(timeout=timeout)
        self.user_id = ""
        self.jam_id = ""
        self.loop_name = ""
        self.view = PresenceView()
        self.seen: Counter[str] = Counter()
        self.departures: Counter[str] = Counter()
        self.loop_events: list[tuple[str, int]] = []
        self.states = 0
        self.problems: list[str] = []
        self.code: grpc.StatusCode | None = None
        self.details = ""
        self.control: asyncio.Queue[pb.JamResponse | None] = asyncio.Queue()
        self.ended = asyncio.Event()
        self._pongs: dict[int, asyncio.Future[None]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def join(self, jam_id: str = "", name: str = "") -> pb.PresenceState | pb.JoinRedirect | None:
        """Send a Join; the PresenceState once seated, the JoinRedirect, or None if the stream ended."""
        await self.call.write(pb.JamRequest(join=pb.Join(jam_id=jam_id, name=name)))
        first = await asyncio.wait_for(self.control.get(), TIMEOUT)
        if first is None:
            return None
        if first.HasField("join_redirect"):
            return first.join_redirect
        assert first.HasField("joined"), f"expected joined, got {first}"
        self.user_id, self.jam_id, self.loop_name = first.joined.user_id, first.joined.jam_id, first.joined.loop_name
        state = await asyncio.wait_for(self.control.get(), TIMEOUT)
        if state is None:
            return None
        assert state.HasField("presence_state"), f"expected presence_state, got {state}"
        return state.presence_state

    async def join_until_seated(self, jam_id: str = "", tries: int = 5) -> pb.PresenceState | None:
        """Join, following redirects; after `tries` redirects let the balancer choose."""
        target = jam_id
        for _ in range(tries):
            answer = await self.join(target)
            if not isinstance(answer, pb.JoinRedirect):
                return answer
            target = answer.jam_id
        answer = await self.join("")
        assert not isinstance(answer, pb.JoinRedirect), "a join without jam_id was redirected"
        return answer

    async def send(self, request: pb.JamRequest) -> None:
        await self.call.write(request)

    async def play(self, kind: int = pb.LOOP_EVENT_TYPE_PLAYED) -> None:
        await self.call.write(pb.JamRequest(loop_event=pb.LoopEvent(type=kind)))  # type: ignore[arg-type]

    async def barrier(self, timeout: float = TIMEOUT) -> float:
        """Ping and wait for the Pong, so everything the server queued before it has been applied; the round trip."""
        ping_id = next(_ping_ids)
        pong = asyncio.get_running_loop().create_future()
        self._pongs[ping_id] = pong
        started = asyncio.get_running_loop().time()
        try:
            await self.call.write(pb.JamRequest(ping=pb.Ping(client_time_unix_nanos=ping_id)))
            await asyncio.wait_for(pong, timeout)
        finally:
            self._pongs.pop(ping_id, None)
        return asyncio.get_running_loop().time() - started

    async def half_close(self) -> None:
        await self.call.done_writing()

    def cancel(self) -> None:
        self.call.cancel()

    async def wait_ended(self, timeout: float = TIMEOUT) -> grpc.StatusCode | None:
        """Wait for the stream to end and return its status code."""
        await asyncio.wait_for(self.ended.wait(), timeout)
        return self.code

    async def close(self) -> None:
        """Stop reading; cancels the call if it is still open."""
        self.call.cancel()
        self._reader.cancel()
        try:
            await self._reader
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    async def _read(self) -> None:
        try:
            while True:
                response = await self.call.read()
                if response is grpc.aio.EOF:
                    break
                assert isinstance(response, pb.JamResponse)
                self._take(response)
        except grpc.aio.AioRpcError:
            pass
        except asyncio.CancelledError:
            # A call cancelled on our side ends its reads with CancelledError; only our own cancellation propagates.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                self._finish()
                raise
        self.code = await self.call.code()
        self.details = await self.call.details() or ""
        self._finish()

    def _finish(self) -> None:
        if self.ended.is_set():
            return
        self.ended.set()
        self.control.put_nowait(None)
        for pong in self._pongs.values():
            if not pong.done():
                pong.set_exception(ConnectionError("stream ended before the pong"))

    def _take(self, response: pb.JamResponse) -> None:
        kind = response.WhichOneof("kind")
        if kind == "presence_diff":
            diff = response.presence_diff
            for key in diff.joins:
                if key not in diff.leaves:
                    self.seen[key] += 1
            for key in diff.leaves:
                if key not in diff.joins:
                    self.departures[key] += 1
                    if self.departures[key] > 1:
                        self.problems.append(f"{self.user_id} saw {key} leave {self.departures[key]} times")
                    if key not in self.seen:
                        self.problems.append(f"{self.user_id} saw {key} leave without having seen it join")
            self.view.apply(response)
            self._check_view()
        elif kind == "presence_state":
            self.states += 1
            for key in response.presence_state.presences:
                self.seen[key] += 1
            self.view.apply(response)
            self._check_view()
            self.control.put_nowait(response)
        elif kind == "loop_event":
            self.loop_events.append((response.loop_event.user_id, response.loop_event.type))
        elif kind == "pong":
            pong = self._pongs.get(response.pong.client_time_unix_nanos)
            if pong is not None and not pong.done():
                pong.set_result(None)
        else:
            self.control.put_nowait(response)

    def _check_view(self) -> None:
        metas = [meta for metas in self.view.state.values() for meta in metas]
        loops = [meta.loop_name for meta in metas]
        if len(metas) > CAPACITY:
            self.problems.append(f"{self.user_id} saw {len(metas)} members in jam {self.jam_id}")
        if len(set(loops)) != len(loops):
            self.problems.append(f"{self.user_id} saw a loop twice in jam {self.jam_id}: {sorted(loops)}")


def summarize(state: Mapping[str, Iterable[Meta]]) -> Summary:
    """A server-side presence state in PresenceView.summary()'s shape."""
    return {key: sorted((m.ref, m.loop_name, int(m.loop_event)) for m in metas) for key, metas in state.items()}


def check_jam_stats(stats: pb.GetStatsResponse) -> list[str]:
    """What is wrong with a GetStats answer: counts that disagree, empty jams, jams above capacity."""
    problems = []
    if stats.jam_count != len(stats.jams):
        problems.append(f"jam_count {stats.jam_count} but {len(stats.jams)} jams listed")
    if stats.user_count != sum(jam.user_count for jam in stats.jams.values()):
        problems.append(f"user_count {stats.user_count} is not the sum of the jams' counts")
    for jam_id, jam in stats.jams.items():
        if not 1 <= jam.user_count <= CAPACITY:
            problems.append(f"jam {jam_id} lists {jam.user_count} members")
    return problems


async def get_stats(channel: grpc.aio.Channel) -> pb.GetStatsResponse:
    """GetStats over a given channel."""
    return await jam_pb2_grpc.JamServiceStub(channel).GetStats(pb.GetStatsRequest(), timeout=TIMEOUT)


class StatsWatch:
    """Polls GetStats while a crowd runs and records every answer that breaks the jam invariants."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.problems: list[str] = []
        self.polls = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> StatsWatch:
        """Start polling."""
        self._task = asyncio.get_running_loop().create_task(self._poll())
        return self

    async def stop(self) -> None:
        """Finish the poll in flight and stop; at least one poll has answered by then."""
        assert self._task is not None
        self._stopping.set()
        await self._task

    async def _poll(self) -> None:
        while True:
            self.problems.extend(check_jam_stats(await get_stats(self.channel)))
            self.polls += 1
            if self._stopping.is_set():
                return
            # Give the crowd the loop between polls; this paces the check, it waits for nothing.
            await asyncio.sleep(0.005)
