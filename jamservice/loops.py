"""The LoopCycler: which loop a joiner gets."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

DEFAULT_CATALOG: tuple[str, ...] = (
    "80s_Back_Beat",
    "Amsterdam_Layers",
    "Synthetic_String_Bass",
    "Degenerating_Pitch_Vox",
    "Kyoto_Night_Guitar",
    "Conga_Groove",
    "African_Rain_Caxixi",
)

MAX_LOOP_NAME = 128


class LoopCycler:
    """Hands each joiner the first loop in catalog order that nobody in the jam holds."""

    def __init__(self, catalog: Sequence[str] = DEFAULT_CATALOG) -> None:
        names = tuple(catalog)
        if not names:
            raise ValueError("the loop catalog is empty")
        if len(set(names)) != len(names):
            raise ValueError("the loop catalog names a loop twice")
        for name in names:
            if not name or len(name) > MAX_LOOP_NAME or not name.isprintable():
                raise ValueError(f"bad loop name {name!r}")
        self.catalog = names

    @property
    def capacity(self) -> int:
        """Seats in a jam: one per loop."""
        return len(self.catalog)

    def next_loop(self, held: Collection[str]) -> str | None:
        """The first free loop, or None when every loop is held."""
        for name in self.catalog:
            if name not in held:
                return name
        return None

    @classmethod
    def from_file(cls, path: str | Path) -> LoopCycler:
        """Read a catalog with one loop name a line; blank lines and # comments are skipped."""
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        return cls([s for line in lines if (s := line.strip()) and not s.startswith("#")])
