"""Phoenix presence as pure functions: each change returns the new state and a diff in Phoenix's shape."""

from __future__ import annotations

import pytest

from jamservice import presence
from jamservice.presence import EMPTY, Diff, LoopEventType, Meta


def meta(user_id: str, loop_name: str = "80s_Back_Beat", name: str = "") -> Meta:
    """A fresh meta with its own ref."""
    return Meta(user_id=user_id, loop_name=loop_name, name=name, ref=presence.new_ref(), online_at=1)


def test_join_adds_the_meta_and_reports_it_in_joins_only() -> None:
    ann = meta("ann", name="Ann")
    state, diff = presence.join(EMPTY, ann)
    assert state == {"ann": (ann,)}
    assert diff == Diff(joins={"ann": (ann,)}, leaves={})
    assert EMPTY == {}, "the input state must not change"


def test_two_metas_under_one_key_are_kept_separately() -> None:
    first, second = meta("ann", "80s_Back_Beat"), meta("ann", "Amsterdam_Layers")
    state, _ = presence.join(EMPTY, first)
    state, diff = presence.join(state, second)
    assert state["ann"] == (first, second)
    assert diff.joins == {"ann": (second,)}, "the diff holds only the new meta, not the whole key"
    assert presence.size(state) == 2

    state, diff = presence.leave(state, "ann", first.ref)
    assert state == {"ann": (second,)}
    assert diff == Diff(joins={}, leaves={"ann": (first,)})


def test_leave_of_the_last_meta_drops_the_key() -> None:
    ann, bob = meta("ann"), meta("bob", "Amsterdam_Layers")
    state, _ = presence.join(EMPTY, ann)
    state, _ = presence.join(state, bob)
    after, diff = presence.leave(state, "ann", ann.ref)
    assert after == {"bob": (bob,)}
    assert diff.leaves == {"ann": (ann,)} and diff.joins == {}
    assert set(state) == {"ann", "bob"}, "the input state must not change"


def test_leave_of_an_unknown_ref_changes_nothing() -> None:
    ann = meta("ann")
    state, _ = presence.join(EMPTY, ann)
    for key, ref in (("ann", "no-such-ref"), ("nobody", ann.ref)):
        after, diff = presence.leave(state, key, ref)
        assert after == state
        assert diff == Diff(joins={}, leaves={})


def test_update_puts_the_new_meta_in_joins_and_the_old_in_leaves_under_one_key() -> None:
    ann, other = meta("ann"), meta("ann", "Conga_Groove")
    state, _ = presence.join(EMPTY, ann)
    state, _ = presence.join(state, other)
    after, diff = presence.update(state, "ann", ann.ref, LoopEventType.PLAYED)
    new = diff.joins["ann"][0]
    assert diff.leaves == {"ann": (ann,)}
    assert len(diff.joins["ann"]) == 1
    assert new.loop_event == LoopEventType.PLAYED
    assert new.ref != ann.ref and new.ref_prev == ann.ref
    assert (new.user_id, new.loop_name, new.name, new.online_at) == (ann.user_id, ann.loop_name, ann.name, ann.online_at)
    assert after["ann"] == (new, other), "the updated meta keeps its place and the other meta is untouched"
    assert state["ann"] == (ann, other), "the input state must not change"


def test_update_of_an_unknown_ref_raises_key_error() -> None:
    state, _ = presence.join(EMPTY, meta("ann"))
    with pytest.raises(KeyError):
        presence.update(state, "ann", "no-such-ref", LoopEventType.PLAYED)
    with pytest.raises(KeyError):
        presence.update(state, "nobody", "no-such-ref", LoopEventType.PLAYED)


def test_find_returns_the_meta_with_that_ref_or_none() -> None:
    ann, bob = meta("ann"), meta("bob")
    state, _ = presence.join(EMPTY, ann)
    state, _ = presence.join(state, bob)
    assert presence.find(state, "ann", ann.ref) is ann
    assert presence.find(state, "ann", bob.ref) is None
    assert presence.find(state, "carol", ann.ref) is None


def test_size_counts_metas_not_keys() -> None:
    assert presence.size(EMPTY) == 0
    state, _ = presence.join(EMPTY, meta("ann"))
    state, _ = presence.join(state, meta("ann"))
    state, _ = presence.join(state, meta("bob"))
    assert presence.size(state) == 3
    assert len(state) == 2


def test_loops_held_lists_every_metas_loop() -> None:
    state, _ = presence.join(EMPTY, meta("ann", "80s_Back_Beat"))
    state, _ = presence.join(state, meta("ann", "Conga_Groove"))
    state, _ = presence.join(state, meta("bob", "Amsterdam_Layers"))
    assert presence.loops_held(state) == {"80s_Back_Beat", "Conga_Groove", "Amsterdam_Layers"}


def test_new_refs_are_unique() -> None:
    refs = [presence.new_ref() for _ in range(1000)]
    assert len(set(refs)) == len(refs)
