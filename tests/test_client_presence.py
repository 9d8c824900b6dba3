"""The client's presence view follows Phoenix presence.js: syncState and syncDiff, joins before leaves, metas by ref."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from jamservice import presence, wire
from jamservice.client.presence import PresenceView, State, arrivals_and_departures, sync_diff, sync_state
from jamservice.messages import Snapshot
from jamservice.presence import LoopEventType, Meta
from jamservice.v1 import jam_pb2 as pb

PLAYED = pb.LOOP_EVENT_TYPE_PLAYED


def meta(key: str, ref: str, loop: str = "loop", event: int = 0, ref_prev: str = "") -> pb.PresenceMeta:
    return pb.PresenceMeta(user_id=key, ref=ref, loop_name=loop, loop_event=event, ref_prev=ref_prev)  # type: ignore[arg-type]


def refs(state: State) -> dict[str, list[str]]:
    return {key: [m.ref for m in metas] for key, metas in state.items()}


class Calls:
    """Records on_join and on_leave calls as ref lists."""

    def __init__(self) -> None:
        self.joins: list[tuple[str, list[str] | None, list[str]]] = []
        self.leaves: list[tuple[str, list[str], list[str]]] = []

    def on_join(self, key: str, current: list[pb.PresenceMeta] | None, joined: list[pb.PresenceMeta]) -> None:
        self.joins.append((key, None if current is None else [m.ref for m in current], [m.ref for m in joined]))

    def on_leave(self, key: str, remaining: list[pb.PresenceMeta], left: list[pb.PresenceMeta]) -> None:
        self.leaves.append((key, [m.ref for m in remaining], [m.ref for m in left]))


def test_joins_apply_before_leaves_so_a_meta_joined_and_left_in_one_diff_is_gone() -> None:
    state: State = {}
    sync_diff(state, {"u": [meta("u", "1")]}, {"u": [meta("u", "1")]})
    assert state == {}


def test_a_join_with_a_known_ref_replaces_the_meta_instead_of_duplicating_it() -> None:
    state: State = {"u": [meta("u", "1"), meta("u", "2")]}
    sync_diff(state, {"u": [meta("u", "2", event=PLAYED)]}, {})
    assert refs(state) == {"u": ["1", "2"]}
    assert state["u"][1].loop_event == PLAYED


def test_an_update_keeps_one_meta_under_the_key_with_the_new_version() -> None:
    calls = Calls()
    state: State = {"u": [meta("u", "1")]}
    sync_diff(state, {"u": [meta("u", "2", event=PLAYED, ref_prev="1")]}, {"u": [meta("u", "1")]}, calls.on_join, calls.on_leave)
    assert refs(state) == {"u": ["2"]}
    assert state["u"][0].loop_event == PLAYED
    assert calls.joins == [("u", ["1"], ["2"])]
    assert calls.leaves == [("u", ["2"], ["1"])]


def test_a_leave_for_an_unknown_key_is_ignored_without_a_callback() -> None:
    calls = Calls()
    state: State = {"u": [meta("u", "1")]}
    sync_diff(state, {}, {"ghost": [meta("ghost", "9")]}, calls.on_join, calls.on_leave)
    assert refs(state) == {"u": ["1"]}
    assert calls.leaves == []


def test_a_key_is_dropped_when_its_last_meta_leaves_and_kept_while_one_remains() -> None:
    calls = Calls()
    state: State = {"u": [meta("u", "1"), meta("u", "2")]}
    sync_diff(state, {}, {"u": [meta("u", "1")]}, calls.on_join, calls.on_leave)
    assert refs(state) == {"u": ["2"]}
    sync_diff(state, {}, {"u": [meta("u", "2")]}, calls.on_join, calls.on_leave)
    assert state == {}
    assert calls.leaves == [("u", ["2"], ["1"]), ("u", [], ["2"])]


def test_sync_state_reports_new_keys_vanished_keys_and_changed_metas() -> None:
    calls = Calls()
    state: State = {"stays": [meta("stays", "1")], "goes": [meta("goes", "2")], "changes": [meta("changes", "3")]}
    new = {"stays": [meta("stays", "1")], "changes": [meta("changes", "4")], "comes": [meta("comes", "5")]}
    sync_state(state, new, calls.on_join, calls.on_leave)
    assert refs(state) == {"stays": ["1"], "changes": ["4"], "comes": ["5"]}
    assert sorted(calls.joins) == [("changes", ["3"], ["4"]), ("comes", None, ["5"])]
    assert sorted(calls.leaves) == [("changes", ["4"], ["3"]), ("goes", [], ["2"])]


def test_view_applies_presence_messages_and_ignores_the_rest() -> None:
    view = PresenceView()
    assert not view.apply(pb.JamResponse(pong=pb.Pong()))
    state = pb.JamResponse(presence_state=pb.PresenceState(presences={"u": pb.Presence(metas=[meta("u", "1")])}))
    assert view.apply(state)
    assert view.summary() == {"u": [("1", "loop", 0)]}


def test_arrivals_and_departures_leave_out_updates() -> None:
    diff = pb.PresenceDiff(
        joins={"u": pb.Presence(metas=[meta("u", "2", ref_prev="1")]), "new": pb.Presence(metas=[meta("new", "5")])},
        leaves={"u": pb.Presence(metas=[meta("u", "1")]), "old": pb.Presence(metas=[meta("old", "7")])},
    )
    joined, left = arrivals_and_departures(diff)
    assert [m.ref for m in joined] == ["5"]
    assert [m.ref for m in left] == ["7"]


# One step on the server's presence: ("join", key), ("leave", which meta) or ("update", which meta, event).
steps = st.lists(
    st.one_of(
        st.tuples(st.just("join"), st.sampled_from(["ann", "bob", "cy"])),
        st.tuples(st.just("leave"), st.integers(0, 20)),
        st.tuples(st.just("update"), st.integers(0, 20), st.sampled_from([LoopEventType.PLAYED, LoopEventType.STOPPED])),
    ),
    max_size=40,
)


def server_truth(ops: list[tuple[object, ...]]) -> tuple[list[presence.State], list[pb.JamResponse]]:
    """Run the steps through the server's pure presence; its state before and after each step, and the diffs it sent."""
    state: presence.State = presence.EMPTY
    states = [state]
    sent: list[pb.JamResponse] = []
    for n, op in enumerate(ops):
        states.append(state)
        metas = [m for ms in state.values() for m in ms]
        if op[0] == "join":
            key = str(op[1])
            new_meta = Meta(user_id=key, loop_name=f"loop{n}", name=key, ref=presence.new_ref(), online_at=n)
            state, diff = presence.join(state, new_meta)
        elif not metas:
            continue
        elif op[0] == "leave":
            gone = metas[int(op[1]) % len(metas)]  # type: ignore[call-overload]
            state, diff = presence.leave(state, gone.user_id, gone.ref)
        else:
            target = metas[int(op[1]) % len(metas)]  # type: ignore[call-overload]
            state, diff = presence.update(state, target.user_id, target.ref, op[2])  # type: ignore[arg-type]
        sent.append(pb.JamResponse.FromString(wire.encode(diff)))
        states[-1] = state
    return states, sent


def snapshot(state: presence.State) -> pb.JamResponse:
    return pb.JamResponse.FromString(wire.encode(Snapshot(state)))


def truth_summary(state: presence.State) -> dict[str, list[tuple[str, str, int]]]:
    return {key: sorted((m.ref, m.loop_name, int(m.loop_event)) for m in metas) for key, metas in state.items()}


@settings(max_examples=200, deadline=None)
@given(steps)
def test_applying_the_servers_diffs_in_order_gives_the_servers_state(ops: list[tuple[object, ...]]) -> None:
    states, sent = server_truth(ops)
    view = PresenceView()
    for response in sent:
        assert view.apply(response)
    assert view.summary() == truth_summary(states[-1])


@settings(max_examples=200, deadline=None)
@given(steps, steps)
def test_sync_state_brings_any_view_to_the_new_state(before: list[tuple[object, ...]], after: list[tuple[object, ...]]) -> None:
    states, _ = server_truth(before + after)
    old, new = states[len(before)], states[-1]
    view = PresenceView()
    view.apply(snapshot(old))
    calls = Calls()
    view.on_join, view.on_leave = calls.on_join, calls.on_leave
    view.apply(snapshot(new))
    assert view.summary() == truth_summary(new)
    # Each reported ref really changed: joined refs are new, left refs are gone.
    old_refs = {m.ref for ms in old.values() for m in ms}
    new_refs = {m.ref for ms in new.values() for m in ms}
    assert {ref for _, _, joined in calls.joins for ref in joined} == new_refs - old_refs
    assert {ref for _, _, left in calls.leaves for ref in left} == old_refs - new_refs
