"""Shared fixtures of the notify tests: alerts and a real local HTTP server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from abasto.contracts.alerts import Alert, alert_id

# Mon 13 Oct 2025 14:05 in Mexico City (UTC-6, no DST since 2022)
RAISED = datetime(2025, 10, 13, 20, 5, tzinfo=UTC)


def make_alert(**overrides: Any) -> Alert:
    base: dict[str, Any] = {
        "alert_id": alert_id("S0001", "COLA-600-NR", "2025-10-13"),
        "kind": "projected_stockout",
        "store_id": "S0001",
        "sku": "COLA-600-NR",
        "raised_at": RAISED,
        "episode": "2025-10-13",
        "risk": 0.92,
        "on_hand_estimate": 6.2,
        "expected_units_per_hour": 3.2,
        "observed_units_per_hour": 4.5,
        "projected_stockout_at": datetime(2025, 10, 13, 22, 40, 30, tzinfo=UTC),  # 16:40 local
        "next_delivery_at": datetime(2025, 10, 14, 15, 0, tzinfo=UTC),  # Tue 09:00 local
        "suggested_qty": 48,
        "model_version": "demand-pattern/3",
        "region_id": "R01",
        "route_id": "R01-2",
        "channel": "tienda",
    }
    base.update(overrides)
    return Alert(**base)


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookServer:
    """Answers each POST with the next scripted (status, headers, delay_s); 200 when the script ends."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    script: list[tuple[int, dict[str, str], float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def respond(self, *statuses: int, headers: dict[str, str] | None = None, delay_s: float = 0.0) -> None:
        with self.lock:
            self.script.extend((s, headers or {}, delay_s) for s in statuses)

    def next_answer(self) -> tuple[int, dict[str, str], float]:
        with self.lock:
            return self.script.pop(0) if self.script else (200, {}, 0.0)


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    state: WebhookServer | None = None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            assert state is not None
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, headers, delay_s = state.next_answer()
            with state.lock:
                state.requests.append(Recorded(self.path, dict(self.headers.items()), body))
            if delay_s:
                time.sleep(delay_s)
            payload = b'{"ok": true}' if status < 300 else b'{"error": "scripted"}'
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state = WebhookServer(url=f"http://127.0.0.1:{server.server_address[1]}/hooks/abasto")
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="webhook-server", daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def alert_factory() -> Callable[..., Alert]:
    return make_alert
