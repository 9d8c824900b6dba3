"""A client's view of a jam's presence, kept as Phoenix's presence.js syncState and syncDiff keep it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from jamservice.v1 import jam_pb2 as pb

Metas = list[pb.PresenceMeta]
State = dict[str, Metas]
# on_join(key, metas before or None, metas that joined); on_leave(key, metas left, metas that left)
OnJoin = Callable[[str, Metas | None, Metas], None]
OnLeave = Callable[[str, Metas, Metas], None]


def _noop(*_: object) -> None:
    pass


def sync_diff(
    state: State,
    joins: Mapping[str, Sequence[pb.PresenceMeta]],
    leaves: Mapping[str, Sequence[pb.PresenceMeta]],
    on_join: OnJoin = _noop,
    on_leave: OnLeave = _noop,
) -> State:
    """Apply a diff in place: joins first, then leaves; metas matched by ref; empty keys dropped."""
    for key, joined in joins.items():
        current = state.get(key)
        refs = {meta.ref for meta in joined}
        kept = [meta for meta in current or () if meta.ref not in refs]
        state[key] = kept + list(joined)
        on_join(key, current, list(joined))
    for key, left in leaves.items():
        current = state.get(key)
        if current is None:
            continue
        refs = {meta.ref for meta in left}
        state[key] = [meta for meta in current if meta.ref not in refs]
        on_leave(key, state[key], list(left))
        if not state[key]:
            del state[key]
    return state


def sync_state(state: State, new: Mapping[str, Sequence[pb.PresenceMeta]], on_join: OnJoin = _noop, on_leave: OnLeave = _noop) -> State:
    """Replace the state with a full one, reporting what joined and left as a diff would."""
    joins: dict[str, list[pb.PresenceMeta]] = {}
    leaves: dict[str, list[pb.PresenceMeta]] = {key: list(metas) for key, metas in state.items() if key not in new}
    for key, metas in new.items():
        current = state.get(key)
        if current is None:
            joins[key] = list(metas)
            continue
        new_refs = {meta.ref for meta in metas}
        current_refs = {meta.ref for meta in current}
        joined = [meta for meta in metas if meta.ref not in current_refs]
        left = [meta for meta in current if meta.ref not in new_refs]
        if joined:
            joins[key] = joined
        if left:
            leaves[key] = left
    return sync_diff(state, joins, leaves, on_join, on_leave)


class PresenceView:
    """The presence of one jam as a client sees it, built from PresenceState and PresenceDiff messages."""

    def __init__(self, on_join: OnJoin = _noop, on_leave: OnLeave = _noop) -> None:
        self.state: State = {}
        self.on_join = on_join
        self.on_leave = on_leave

    def apply(self, response: pb.JamResponse) -> bool:
        """Apply a response if it is presence; True when it was."""
        kind = response.WhichOneof("kind")
        if kind == "presence_state":
            self.apply_state(response.presence_state)
        elif kind == "presence_diff":
            self.apply_diff(response.presence_diff)
        else:
            return False
        return True

    def apply_state(self, message: pb.PresenceState) -> None:
        """Take a full PresenceState."""
        sync_state(self.state, {k: v.metas for k, v in message.presences.items()}, self.on_join, self.on_leave)

    def apply_diff(self, message: pb.PresenceDiff) -> None:
        """Apply a PresenceDiff."""
        sync_diff(
            self.state,
            {k: v.metas for k, v in message.joins.items()},
            {k: v.metas for k, v in message.leaves.items()},
            self.on_join,
            self.on_leave,
        )

    def metas(self) -> list[pb.PresenceMeta]:
        """Every meta, ordered by join time."""
        return sorted((m for metas in self.state.values() for m in metas), key=lambda m: (m.online_at_unix_nanos, m.ref))

    def summary(self) -> dict[str, list[tuple[str, str, int]]]:
        """key -> [(ref, loop_name, loop_event)], handy for comparing views."""
        return {key: sorted((m.ref, m.loop_name, m.loop_event) for m in metas) for key, metas in self.state.items()}


def arrivals_and_departures(diff: pb.PresenceDiff) -> tuple[Metas, Metas]:
    """The metas that really joined and really left in a diff; an update (new meta replacing old) is neither."""
    joined = [meta for presence in diff.joins.values() for meta in presence.metas]
    replaced = {meta.ref_prev for meta in joined if meta.ref_prev}
    left = [meta for presence in diff.leaves.values() for meta in presence.metas if meta.ref not in replaced]
    return [meta for meta in joined if not meta.ref_prev], left
