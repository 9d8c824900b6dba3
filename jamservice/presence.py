"""Phoenix Presence for one jam, as pure functions: each takes a state and returns the new state and its diff."""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import IntEnum


class LoopEventType(IntEnum):
    """Whether a loop plays; the values match the wire enum."""

    UNSPECIFIED = 0
    PLAYED = 1
    STOPPED = 2


@dataclass(frozen=True, slots=True)
class Meta:
    """One stream's entry under a presence key."""

    user_id: str
    loop_name: str
    name: str
    ref: str
    online_at: int
    loop_event: LoopEventType = LoopEventType.UNSPECIFIED
    ref_prev: str = ""


# key -> metas, one meta per stream of that key. Treated as immutable.
State = Mapping[str, tuple[Meta, ...]]

EMPTY: State = {}


@dataclass(frozen=True, slots=True)
class Diff:
    """What changed: metas that appeared and metas that went away, by key."""

    joins: State
    leaves: State


_ref_prefix = os.urandom(4).hex()
_ref_counter = itertools.count(1)


def new_ref() -> str:
    """A ref unique across processes: a random per-process prefix and a counter."""
    return f"{_ref_prefix}{next(_ref_counter):x}"


def join(state: State, meta: Meta) -> tuple[State, Diff]:
    """Add a meta under its key."""
    new = dict(state)
    new[meta.user_id] = state.get(meta.user_id, ()) + (meta,)
    return new, Diff(joins={meta.user_id: (meta,)}, leaves=EMPTY)


def leave(state: State, key: str, ref: str) -> tuple[State, Diff]:
    """Remove the meta with this ref; a key with no metas left is dropped."""
    metas = state.get(key, ())
    gone = tuple(m for m in metas if m.ref == ref)
    if not gone:
        return state, Diff(joins=EMPTY, leaves=EMPTY)
    new = dict(state)
    kept = tuple(m for m in metas if m.ref != ref)
    if kept:
        new[key] = kept
    else:
        del new[key]
    return new, Diff(joins=EMPTY, leaves={key: gone})


def update(state: State, key: str, ref: str, loop_event: LoopEventType) -> tuple[State, Diff]:
    """Replace a meta with a new version: Phoenix's update, the new meta in joins and the old in leaves."""
    metas = state.get(key, ())
    for i, old in enumerate(metas):
        if old.ref == ref:
            break
    else:
        raise KeyError(f"no meta {ref!r} under {key!r}")
    meta = replace(old, loop_event=loop_event, ref=new_ref(), ref_prev=old.ref)
    new = dict(state)
    new[key] = metas[:i] + (meta,) + metas[i + 1 :]
    return new, Diff(joins={key: (meta,)}, leaves={key: (old,)})


def find(state: State, key: str, ref: str) -> Meta | None:
    """The meta with this ref, if present."""
    for meta in state.get(key, ()):
        if meta.ref == ref:
            return meta
    return None


def size(state: State) -> int:
    """Number of metas: one per stream in the jam."""
    return sum(len(metas) for metas in state.values())


def loops_held(state: State) -> set[str]:
    """Loop names held by any meta."""
    return {meta.loop_name for metas in state.values() for meta in metas}
