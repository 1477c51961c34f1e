"""Benchmark plumbing: embedded services of their own (temp home, free ports), percentiles, timing.

Benchmarks never touch the machine's services nor abasto's default ports: each suite starts the
embedded nats-server / PostgreSQL it needs under a temporary home on ports free right now, and
stops them (and removes the home) afterwards, whatever happens.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from abasto.services import down, up
from abasto.services.isolated import isolated_settings
from abasto.settings import Settings


@contextlib.contextmanager
def bench_home(prefix: str) -> Iterator[Path]:
    """A temporary home directory, removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix=f"abasto-bench-{prefix}-"))
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def embedded(prefix: str, only: Iterable[str]) -> Iterator[Settings]:
    """Start ``only`` (``nats``, ``postgres``) under a temp home on free ports; stop them afterwards."""
    names = tuple(only)
    with bench_home(prefix) as home:
        settings = isolated_settings(home)
        try:
            up(settings, only=names, timeout_s=90)
            yield settings
        finally:
            down(settings, only=names)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by linear interpolation; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
