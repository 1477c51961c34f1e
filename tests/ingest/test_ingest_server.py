"""The ingest app served by uvicorn on loopback, as `abasto ingest serve` runs it."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn

from abasto.contracts.events import DeviceEvent, Heartbeat, encode_event
from abasto.devices.registry import CredentialRegistry
from abasto.ingest import IngestLimits, create_app
from abasto.settings import Settings

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def base_url(embedded_services: Settings) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(embedded_services, limits=IngestLimits(max_body_bytes=4096))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)


def test_served_over_http(embedded_services: Settings, base_url: str) -> None:
    store = f"U{uuid.uuid4().hex[:6].upper()}"
    device = CredentialRegistry(embedded_services).add_device(store)
    event = DeviceEvent(device.device_id, store, 1, datetime.now(UTC), Heartbeat(battery_mv=3700))
    url = f"{base_url}/v1/stores/{store}/devices/{device.device_id}/events"
    auth = (device.username, device.password)
    assert httpx.get(f"{base_url}/healthz").json() == {"ok": True}
    ok = httpx.post(url, content=b"[" + encode_event(event) + b"]", auth=auth)
    assert ok.status_code == 200 and ok.json()["results"] == [{"index": 0, "status": "accepted", "code": 200}]
    big = httpx.post(url, content=b" " * 5000, auth=auth)  # refused on its Content-Length
    assert big.status_code == 413
    assert httpx.post(url, content=b"[]", auth=(device.username, "x")).status_code == 401
