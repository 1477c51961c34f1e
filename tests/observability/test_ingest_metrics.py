"""The ingest gateway's /metrics against the session's nats-server: posts and per-event results."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from abasto.contracts.events import DeviceEvent, Heartbeat, encode_event
from abasto.devices.registry import CredentialRegistry
from abasto.ingest import create_app
from abasto.ingest.metrics import IngestMetrics
from abasto.settings import Settings

pytestmark = pytest.mark.services


def _samples(text: str, name: str, label: str) -> dict[str, float]:
    return {
        s.labels[label]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


async def test_ingest_metrics_count_what_the_answers_said(embedded_services: Settings) -> None:
    store = f"M{uuid.uuid4().hex[:6].upper()}"
    device = CredentialRegistry(embedded_services).add_device(store)
    at = datetime.now(UTC) - timedelta(minutes=1)
    events = [encode_event(DeviceEvent(device.device_id, store, seq, at, Heartbeat(3700))) for seq in (1, 2)]
    batch = b"[" + b",".join([*events, events[0], b'{"device_id": 3}']) + b"]"  # 2 new, 1 duplicate, 1 bad
    url = f"/v1/stores/{store}/devices/{device.device_id}/events"
    login = base64.b64encode(f"{device.username}:{device.password}".encode()).decode()
    counters = IngestMetrics()
    app = create_app(embedded_services, metrics=counters)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as http:
            answer = (await http.post(url, content=batch, headers={"Authorization": f"Basic {login}"})).json()
            assert (await http.post(url, content=batch)).status_code == 401
            text = (await http.get("/metrics")).text
    assert (answer["accepted"], answer["duplicate"], answer["rejected"]) == (2, 1, 1)
    assert _samples(text, "abasto_ingest_events_total", "outcome") == {
        "accepted": 2,
        "duplicate": 1,
        "rejected": 1,
    }
    assert _samples(text, "abasto_ingest_requests_total", "code") == {"200": 1, "401": 1}
    assert (
        _samples(text, "abasto_ingest_rejected_total", "reason")
        == dict(counters.rejected)
        == {"invalid_field": 1}
    )
