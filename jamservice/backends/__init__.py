"""Backends store jams and presence and carry their changes; fan-out to streams happens above them."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from jamservice.balancer import Placement
from jamservice.loops import LoopCycler
from jamservice.presence import Diff, LoopEventType, Meta, State


@dataclass(frozen=True, slots=True)
class JamChange:
    """One change to a jam's presence; seq rises by one per change within a jam."""

    jam_id: str
    seq: int
    diff: Diff
    stream_id: str
    loop_event: LoopEventType = LoopEventType.UNSPECIFIED
    user_id: str = ""


@dataclass(frozen=True, slots=True)
class Seat:
    """A successful join: the joiner's meta and the jam's state including it, as of change `seq`."""

    jam_id: str
    meta: Meta
    state: State
    seq: int


Listener = Callable[[JamChange], None]
Seated = Callable[[Seat], None]


class Backend(abc.ABC):
    """Jam membership and presence behind one small interface.

    Every change is checked and applied atomically, then handed to the listener,
    in seq order per jam. The listener must not block.
    """

    def __init__(self, cycler: LoopCycler) -> None:
        self.cycler = cycler
        self.listener: Listener = lambda change: None

    async def connect(self) -> None:
        """Open connections, if any."""

    async def disconnect(self) -> None:
        """Close connections, if any."""

    @abc.abstractmethod
    async def join(self, stream_id: str, user_id: str, name: str, jam_id: str, seated: Seated) -> Seat | Placement:
        """Seat a stream in a jam (empty jam_id: the balancer picks), or return the redirect for a full jam.

        `seated` is called with the seat before the join's change reaches the listener, even when
        the caller was cancelled meanwhile, so the seat always has an owner who can give it back.
        """

    @abc.abstractmethod
    async def leave(self, jam_id: str, stream_id: str) -> None:
        """Remove a stream's meta; a jam left empty is removed. Leaving twice is harmless."""

    @abc.abstractmethod
    async def set_loop_event(self, jam_id: str, stream_id: str, loop_event: LoopEventType) -> None:
        """Record a loop event in the stream's meta (a presence update)."""

    @abc.abstractmethod
    async def stats(self) -> dict[str, int]:
        """Every jam and its number of streams."""


def backend_from_url(url: str, cycler: LoopCycler) -> Backend:
    """Build a backend from a URL such as memory://."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from jamservice.backends.memory import MemoryBackend

        return MemoryBackend(cycler)
    raise ValueError(f"unknown backend {url!r}: supported is memory://")
