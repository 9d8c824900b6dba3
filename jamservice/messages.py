"""What clients ask for and what they are sent, as plain values."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from jamservice.errors import BadRequest
from jamservice.presence import Diff, LoopEventType, State

MAX_JAM_ID = 64
MAX_NAME = 64
_JAM_ID = re.compile(r"[A-Za-z0-9._:-]*")
# Bidi embeddings, overrides and isolates can make one name display as another.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def unprintable(text: str) -> bool:
    """Whether text holds control characters, line or paragraph separators, or bidi controls."""
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp") or c in _BIDI_CONTROLS for c in text)


@dataclass(frozen=True, slots=True)
class Join:
    """Ask for a seat; an empty jam_id lets the balancer choose."""

    jam_id: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        if len(self.jam_id) > MAX_JAM_ID:
            raise BadRequest(f"jam_id is longer than {MAX_JAM_ID} characters")
        if not _JAM_ID.fullmatch(self.jam_id):
            raise BadRequest("jam_id may hold only letters, digits and . _ : -")
        if len(self.name) > MAX_NAME:
            raise BadRequest(f"name is longer than {MAX_NAME} characters")
        if unprintable(self.name):
            raise BadRequest("name must not contain control characters, line separators or bidi controls")


@dataclass(frozen=True, slots=True)
class Play:
    """Start or stop the sender's loop; user_id is what the client claimed, if anything."""

    loop_event: LoopEventType
    user_id: str = ""

    def __post_init__(self) -> None:
        if self.loop_event not in (LoopEventType.PLAYED, LoopEventType.STOPPED):
            raise BadRequest("loop_event type must be LOOP_EVENT_TYPE_PLAYED or LOOP_EVENT_TYPE_STOPPED")


@dataclass(frozen=True, slots=True)
class Ping:
    """Ask for a Pong."""

    client_time: int = 0


Request = Join | Play | Ping


@dataclass(frozen=True, slots=True)
class Joined:
    """The stream holds a seat."""

    user_id: str
    jam_id: str
    loop_name: str


@dataclass(frozen=True, slots=True)
class Redirected:
    """The requested jam was full; jam_id is where the balancer would place the player."""

    requested_jam_id: str
    jam_id: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A jam's whole presence."""

    state: State


@dataclass(frozen=True, slots=True)
class LoopChange:
    """Another member started or stopped their loop."""

    user_id: str
    loop_event: LoopEventType


@dataclass(frozen=True, slots=True)
class Pong:
    """The answer to a Ping."""

    client_time: int
    server_time: int


Outgoing = Joined | Redirected | Snapshot | Diff | LoopChange | Pong
