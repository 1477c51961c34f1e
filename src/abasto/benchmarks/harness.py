"""Tiny benchmark harness: medians of repeated runs, each figure beside its limit, as a ratio."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str
    value: float
    limit_name: str
    limit: float

    @property
    def ratio(self) -> float:
        return self.value / self.limit if self.limit else float("nan")


def rate(fn: Callable[[], int], *, repeats: int = 5) -> float:
    """Median items/s of ``fn`` (which returns how many items it processed) over ``repeats`` runs."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)
