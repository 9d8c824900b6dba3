"""The LoopCycler hands each joiner the first free loop of its catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from jamservice.loops import DEFAULT_CATALOG, MAX_LOOP_NAME, LoopCycler

ORIGINAL_ORDER = [
    "80s_Back_Beat",
    "Amsterdam_Layers",
    "Synthetic_String_Bass",
    "Degenerating_Pitch_Vox",
    "Kyoto_Night_Guitar",
    "Conga_Groove",
    "African_Rain_Caxixi",
]


def test_default_catalog_is_the_seven_original_loops_in_order() -> None:
    cycler = LoopCycler()
    assert list(cycler.catalog) == ORIGINAL_ORDER
    assert list(DEFAULT_CATALOG) == ORIGINAL_ORDER
    assert cycler.capacity == 7


def test_joiners_get_loops_in_catalog_order() -> None:
    cycler = LoopCycler()
    held: list[str] = []
    while (loop := cycler.next_loop(held)) is not None:
        held.append(loop)
    assert held == ORIGINAL_ORDER


def test_next_loop_is_the_first_free_one_in_catalog_order() -> None:
    cycler = LoopCycler()
    held = set(ORIGINAL_ORDER) - {"Amsterdam_Layers", "Conga_Groove"}
    assert cycler.next_loop(held) == "Amsterdam_Layers"
    assert cycler.next_loop(held | {"Amsterdam_Layers"}) == "Conga_Groove"


def test_next_loop_is_none_when_every_loop_is_held() -> None:
    assert LoopCycler().next_loop(ORIGINAL_ORDER) is None
    assert LoopCycler(["a"]).next_loop({"a"}) is None


def test_loops_outside_the_catalog_do_not_take_a_seat() -> None:
    assert LoopCycler(["a", "b"]).next_loop({"zzz"}) == "a"


@pytest.mark.parametrize(
    "catalog",
    [
        pytest.param([], id="empty"),
        pytest.param(["a", "b", "a"], id="duplicate"),
        pytest.param(["a", ""], id="blank-name"),
        pytest.param(["a", "x" * (MAX_LOOP_NAME + 1)], id="too-long"),
        pytest.param(["a", "tab\there"], id="control-character"),
    ],
)
def test_bad_catalogs_are_rejected(catalog: list[str]) -> None:
    with pytest.raises(ValueError):
        LoopCycler(catalog)


def test_a_loop_name_of_the_maximum_length_is_accepted() -> None:
    assert LoopCycler(["x" * MAX_LOOP_NAME]).capacity == 1


def test_from_file_reads_one_loop_a_line_skipping_blanks_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "loops.txt"
    path.write_text("# our loops\nKick\n\n  Snare  \n# Hat\nBass\n", encoding="utf-8")
    cycler = LoopCycler.from_file(path)
    assert cycler.catalog == ("Kick", "Snare", "Bass")
    assert cycler.capacity == 3


def test_from_file_rejects_a_file_with_no_loops(tmp_path: Path) -> None:
    path = tmp_path / "loops.txt"
    path.write_text("# nothing here\n\n", encoding="utf-8")
    with pytest.raises(ValueError):
        LoopCycler.from_file(str(path))


def test_from_file_rejects_a_duplicate_loop(tmp_path: Path) -> None:
    path = tmp_path / "loops.txt"
    path.write_text("Kick\nKick\n", encoding="utf-8")
    with pytest.raises(ValueError):
        LoopCycler.from_file(path)
