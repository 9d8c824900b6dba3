"""The in-memory backend: all state in this process."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from jamservice import presence
from jamservice.backends import Backend, JamChange, Seat, Seated
from jamservice.balancer import JamBalancer, Placement
from jamservice.errors import NotJoined
from jamservice.loops import LoopCycler
from jamservice.presence import LoopEventType, Meta, State


@dataclass(slots=True)
class _Jam:
    state: State = field(default_factory=dict)
    seq: int = 0
    streams: dict[str, tuple[str, str]] = field(default_factory=dict)  # stream_id -> (key, ref)


class MemoryBackend(Backend):
    """Jams in a dict. No method awaits between its check and its change, so each is atomic."""

    def __init__(self, cycler: LoopCycler) -> None:
        super().__init__(cycler)
        self._jams: dict[str, _Jam] = {}
        self._balancer = JamBalancer(cycler.capacity)

    async def join(self, stream_id: str, user_id: str, name: str, jam_id: str, seated: Seated) -> Seat | Placement:
        placement = self._balancer.place(jam_id)
        if placement.redirected_from is not None:
            return placement
        jam = self._jams.setdefault(placement.jam_id, _Jam())
        loop_name = self.cycler.next_loop(presence.loops_held(jam.state))
        assert loop_name is not None, "the balancer placed a join into a full jam"
        meta = Meta(
            user_id=user_id,
            loop_name=loop_name,
            name=name,
            ref=presence.new_ref(),
            online_at=time.time_ns(),
        )
        jam.state, diff = presence.join(jam.state, meta)
        jam.seq += 1
        jam.streams[stream_id] = (user_id, meta.ref)
        self._balancer.resize(placement.jam_id, len(jam.streams))
        seat = Seat(placement.jam_id, meta, jam.state, jam.seq)
        seated(seat)
        self.listener(JamChange(placement.jam_id, jam.seq, diff, stream_id))
        return seat

    async def leave(self, jam_id: str, stream_id: str) -> None:
        jam = self._jams.get(jam_id)
        if jam is None or stream_id not in jam.streams:
            return
        key, ref = jam.streams.pop(stream_id)
        jam.state, diff = presence.leave(jam.state, key, ref)
        jam.seq += 1
        self._balancer.resize(jam_id, len(jam.streams))
        if not jam.streams:
            del self._jams[jam_id]
        self.listener(JamChange(jam_id, jam.seq, diff, stream_id))

    async def set_loop_event(self, jam_id: str, stream_id: str, loop_event: LoopEventType) -> None:
        jam = self._jams.get(jam_id)
        if jam is None or stream_id not in jam.streams:
            raise NotJoined("not in a jam")
        key, ref = jam.streams[stream_id]
        jam.state, diff = presence.update(jam.state, key, ref, loop_event)
        jam.seq += 1
        jam.streams[stream_id] = (key, diff.joins[key][0].ref)
        self.listener(JamChange(jam_id, jam.seq, diff, stream_id, loop_event, key))

    async def stats(self) -> dict[str, int]:
        return self._balancer.jams()
