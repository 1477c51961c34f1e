"""Settings for a private set of embedded services: a given home and ports free right now.

Tests and benchmarks use it so they never collide with a developer's running ``abasto up``
(default ports) or with each other.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Any

from abasto.settings import Settings, load_settings


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that are free on 127.0.0.1 right now."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def isolated_settings(home: Path, /, **overrides: Any) -> Settings:
    """Settings with ``home`` and fresh free ports; external URLs from the environment are ignored."""
    nats_port, mqtt_port, monitor_port, pg_port = free_ports(4)
    nats: dict[str, Any] = {"url": None, "port": nats_port, "mqtt_port": mqtt_port}
    nats["monitor_port"] = monitor_port
    postgres: dict[str, Any] = {"url": None, "port": pg_port}
    nats.update(overrides.pop("nats", {}))
    postgres.update(overrides.pop("postgres", {}))
    home = overrides.pop("home", home)
    return load_settings(home=home, nats=nats, postgres=postgres, **overrides)
