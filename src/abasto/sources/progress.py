"""Progress reports of bulk loads, handed to a caller's callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LoadProgress:
    """``rows_done`` of ``rows_total`` rows of ``table`` are in the database (not committed yet)."""

    table: str
    rows_done: int
    rows_total: int


ProgressCallback = Callable[[LoadProgress], None]


def ignore_progress(_: LoadProgress) -> None:
    """The default callback: report nothing."""


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What a bulk load wrote: rows per table and the wall time it took."""

    rows: dict[str, int]
    seconds: float

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def rows_per_second(self) -> float:
        return self.total_rows / self.seconds if self.seconds > 0 else float("inf")
