"""The JamBalancer picks the most populated jam with room, keeping jams in buckets by size."""

from __future__ import annotations

import itertools
import uuid

import pytest
from hypothesis import assume, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from jamservice.balancer import JamBalancer, Placement, new_jam_id


def counter_ids() -> JamBalancer:
    """A balancer of capacity 7 whose new jam ids are new-1, new-2, ..."""
    numbers = itertools.count(1)
    return JamBalancer(7, make_id=lambda: f"new-{next(numbers)}")


def test_new_jam_ids_are_uuid4() -> None:
    ids = {new_jam_id() for _ in range(10)}
    assert len(ids) == 10
    assert all(uuid.UUID(jam_id).version == 4 for jam_id in ids)


def test_with_no_jams_a_join_goes_to_a_new_jam() -> None:
    balancer = counter_ids()
    assert balancer.place() == Placement("new-1")
    assert balancer.place() == Placement("new-2"), "each placement into a new jam gets a fresh id"


def test_an_empty_request_goes_to_the_most_populated_jam_with_room() -> None:
    balancer = counter_ids()
    balancer.resize("small", 2)
    balancer.resize("big", 6)
    balancer.resize("full", 7)
    balancer.resize("tiny", 1)
    assert balancer.place() == Placement("big")
    assert balancer.best() == "big"


def test_among_equally_populated_jams_the_first_to_reach_that_size_wins() -> None:
    balancer = counter_ids()
    balancer.resize("a", 2)
    balancer.resize("b", 3)
    balancer.resize("c", 2)
    balancer.resize("a", 3)
    assert balancer.best() == "b", "b reached 3 before a"
    balancer.resize("b", 2)
    assert balancer.best() == "a"
    balancer.resize("b", 3)
    assert balancer.best() == "a", "b came back to 3 after a got there"


def test_when_every_jam_is_full_a_join_goes_to_a_new_jam() -> None:
    balancer = counter_ids()
    balancer.resize("a", 7)
    balancer.resize("b", 7)
    assert balancer.place() == Placement("new-1")


def test_a_requested_jam_with_room_is_used_even_if_another_is_more_populated() -> None:
    balancer = counter_ids()
    balancer.resize("big", 6)
    balancer.resize("small", 1)
    assert balancer.place("small") == Placement("small")
    assert balancer.place("unknown") == Placement("unknown"), "a named jam that does not exist yet has room"


def test_a_full_requested_jam_is_redirected_to_where_the_balancer_would_place_now() -> None:
    balancer = counter_ids()
    balancer.resize("full", 7)
    assert balancer.place("full") == Placement("new-1", redirected_from="full")
    balancer.resize("other", 4)
    assert balancer.place("full") == Placement("other", redirected_from="full")


def test_resize_to_zero_forgets_the_jam() -> None:
    balancer = counter_ids()
    balancer.resize("a", 3)
    balancer.resize("a", 0)
    assert balancer.jams() == {}
    assert balancer.size("a") == 0
    assert balancer.best() == "new-1"
    balancer.resize("never-seen", 0)
    assert balancer.jams() == {}


def test_size_and_jams_report_what_was_recorded() -> None:
    balancer = counter_ids()
    balancer.resize("a", 3)
    balancer.resize("b", 7)
    balancer.resize("a", 4)
    assert balancer.jams() == {"a": 4, "b": 7}
    assert balancer.size("a") == 4 and balancer.size("nope") == 0


@pytest.mark.parametrize("size", [-1, 8])
def test_resize_outside_zero_to_capacity_is_rejected(size: int) -> None:
    balancer = counter_ids()
    balancer.resize("a", 2)
    with pytest.raises(ValueError):
        balancer.resize("a", size)
    assert balancer.jams() == {"a": 2}, "a rejected resize changes nothing"


def test_capacity_below_one_is_rejected() -> None:
    with pytest.raises(ValueError):
        JamBalancer(0)


def test_capacity_one_always_places_into_a_new_jam() -> None:
    numbers = itertools.count(1)
    balancer = JamBalancer(1, make_id=lambda: f"new-{next(numbers)}")
    balancer.resize("a", 1)
    assert balancer.place() == Placement("new-1")
    assert balancer.place("a") == Placement("new-2", redirected_from="a")


JAM_IDS = st.sampled_from([f"jam-{i}" for i in range(6)])


class BalancerAgainstNaiveModel(RuleBasedStateMachine):
    """Random resizes and placements agree with a model that scans every jam."""

    capacity = 4

    def __init__(self) -> None:
        super().__init__()
        self.made = itertools.count(1)
        self.balancer = JamBalancer(self.capacity, make_id=lambda: f"new-{next(self.made)}")
        self.sizes: dict[str, int] = {}
        # When each jam reached its current size; the earliest wins a tie.
        self.reached: dict[str, int] = {}
        self.clock = itertools.count()
        self.expected_new = 1

    def model_best(self) -> str | None:
        with_room = [j for j, s in self.sizes.items() if s < self.capacity]
        if not with_room:
            return None
        return min(with_room, key=lambda j: (-self.sizes[j], self.reached[j]))

    def expect_place(self, requested: str) -> Placement:
        if requested and self.sizes.get(requested, 0) < self.capacity:
            return Placement(requested)
        best = self.model_best()
        if best is None:
            best = f"new-{self.expected_new}"
            self.expected_new += 1
        return Placement(best, redirected_from=requested or None)

    @rule(jam_id=JAM_IDS, size=st.integers(0, capacity))
    def resize(self, jam_id: str, size: int) -> None:
        assume(size != self.sizes.get(jam_id, 0))
        self.balancer.resize(jam_id, size)
        if size:
            self.sizes[jam_id] = size
            self.reached[jam_id] = next(self.clock)
        else:
            self.sizes.pop(jam_id, None)
            self.reached.pop(jam_id, None)

    @rule(data=st.data(), step=st.sampled_from([1, -1]))
    @precondition(lambda self: bool(self.sizes))
    def step_a_jam(self, data: st.DataObject, step: int) -> None:
        # Real jams move one seat at a time; this makes ties in the middle buckets common.
        jam_id = data.draw(st.sampled_from(sorted(self.sizes)))
        size = self.sizes[jam_id] + step
        assume(0 <= size <= self.capacity)
        self.resize(jam_id, size)

    @rule()
    def place_anywhere(self) -> None:
        assert self.balancer.place() == self.expect_place("")

    @rule(requested=JAM_IDS)
    def place_requested(self, requested: str) -> None:
        assert self.balancer.place(requested) == self.expect_place(requested)

    @invariant()
    def sizes_and_buckets_agree_with_the_model(self) -> None:
        assert self.balancer.jams() == self.sizes
        buckets = self.balancer._buckets
        assert len(buckets) == self.capacity + 1
        assert not buckets[0], "size 0 means forgotten"
        for size, bucket in enumerate(buckets):
            assert set(bucket) == {j for j, s in self.sizes.items() if s == size}
            assert list(bucket) == sorted(bucket, key=lambda j: self.reached[j]), "a bucket keeps arrival order"


BalancerAgainstNaiveModel.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_balancer_agrees_with_a_naive_model = BalancerAgainstNaiveModel.TestCase
