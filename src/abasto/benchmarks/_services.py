"""Benchmark plumbing: embedded services of their own (temp home, free ports), percentiles, timing.

Benchmarks never touch the machine's services nor abasto's default ports: each suite starts the
embedded nats-server / PostgreSQL it needs under a temporary home on ports free right now, and
stops them (and removes the home) afterwards, whatever happens.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from abasto.services import down, up
from abasto.settings import Settings, load_settings


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


@contextlib.contextmanager
def bench_home(prefix: str) -> Iterator[Path]:
    """A temporary home directory, removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix=f"abasto-bench-{prefix}-"))
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def isolated_settings(home: Path) -> Settings:
    """Settings under ``home`` with free ports; external service URLs from the environment ignored."""
    nats_port, mqtt_port, monitor_port, pg_port = free_ports(4)
    return load_settings(
        home=home,
        nats={"url": None, "port": nats_port, "mqtt_port": mqtt_port, "monitor_port": monitor_port},
        postgres={"url": None, "port": pg_port},
    )


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
