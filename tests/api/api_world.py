"""The running API the tests talk to (importable, unlike conftest.py)."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analytics"))

from analytics_world import Lake, build_lake

from abasto.api import ApiMetrics, TokenStore

__all__ = ["Api", "Lake", "bearer", "build_lake", "serve"]


@dataclass(frozen=True)
class Api:
    """A running API app over the small analytics lake, with one token per profile used."""

    client: httpx.Client
    lake: Lake
    tokens: TokenStore
    metrics: ApiMetrics
    audit_path: Path
    analyst: dict[str, str]
    planner: dict[str, str]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port (as `abasto api serve` runs it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
