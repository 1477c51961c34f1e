"""HTTP batch ingest against the session's nats-server: per-event results, exactly-once storage in
POS, dead letters with reasons, and the 401/403/413 answers."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from abasto.contracts.events import DeviceEvent, SaleScan, StockReading, encode_event
from abasto.devices.registry import CredentialRegistry, DeviceCredentials
from abasto.ingest import IngestLimits, create_app
from abasto.ingest.batch import PRINCIPAL_HEADER
from abasto.settings import Settings
from abasto.stream import StreamMessage, open_stream
from abasto.stream.topology import DLQ_STREAM, POS_STREAM, REASON_HEADER

pytestmark = pytest.mark.services

RUN = uuid.uuid4().hex[:6].upper()
STORE, OTHER = f"H{RUN}A", f"H{RUN}B"


def _auth(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _event(device_id: str, seq: int, *, store_id: str = STORE, at: datetime | None = None) -> bytes:
    event = DeviceEvent(
        device_id=device_id,
        store_id=store_id,
        seq=seq,
        event_time=at or datetime.now(UTC) - timedelta(minutes=1),
        payload=SaleScan(sku="COLA-600-NR", qty=2, price=16.0) if seq % 2 else StockReading("COLA-600-NR", 7),
    )
    return encode_event(event)


def _url(store_id: str, device_id: str) -> str:
    return f"/v1/stores/{store_id}/devices/{device_id}/events"


@pytest.fixture(scope="module")
def device(embedded_services: Settings) -> DeviceCredentials:
    return CredentialRegistry(embedded_services).add_device(STORE)


@pytest.fixture
async def client(embedded_services: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(embedded_services, limits=IngestLimits(max_body_bytes=64 * 1024, max_events=20))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as http:
            yield http


async def _drain(settings: Settings, stream_name: str, filter_subject: str) -> list[StreamMessage]:
    async with open_stream(settings, name="test-drain") as stream:
        consumer = await stream.consumer(
            stream_name, f"drain-{uuid.uuid4().hex[:8]}", filter_subject=filter_subject
        )
        found: list[StreamMessage] = []
        while batch := await consumer.fetch(500, timeout_s=0.5):
            for msg in batch:
                await msg.ack()
            found.extend(batch)
        return found


async def test_batch_results_exactly_once_and_dead_letters(
    embedded_services: Settings, device: DeviceCredentials, client: httpx.AsyncClient
) -> None:
    dev = device.device_id
    batch = [
        json.loads(_event(dev, 1)),
        json.loads(_event(dev, 2)),
        {"device_id": dev, "store_id": STORE, "seq": 3},  # no event_time, no payload
        json.loads(_event(dev, 4, store_id=OTHER)),  # spoofed store
        json.loads(_event("dev-someone-else", 5)),  # another device
        json.loads(_event(dev, 6, at=datetime.now(UTC) + timedelta(hours=2))),  # clock far ahead
        json.loads(_event(dev, 1)),  # the same event twice in one batch
        json.loads(_event(dev, 7)),
    ]
    headers = _auth(device.username, device.password)
    first = await client.post(_url(STORE, dev), json=batch, headers=headers)
    assert first.status_code == 200, first.text
    doc = first.json()
    got = [(r["index"], r["status"], r.get("reason"), r["code"]) for r in doc["results"]]
    assert got == [
        (0, "accepted", None, 200),
        (1, "accepted", None, 200),
        (2, "rejected", "invalid_field", 400),
        (3, "rejected", "store_mismatch", 403),
        (4, "rejected", "device_mismatch", 403),
        (5, "rejected", "future_timestamp", 400),
        (6, "duplicate", None, 200),
        (7, "accepted", None, 200),
    ]
    assert (doc["accepted"], doc["duplicate"], doc["rejected"]) == (3, 1, 4)

    # the device did not get the answer and re-sends the whole batch
    again = await client.post(_url(STORE, dev), json=batch, headers=headers)
    assert again.status_code == 200
    statuses = [r["status"] for r in again.json()["results"]]
    assert statuses == ["duplicate", "duplicate", *["rejected"] * 4, "duplicate", "duplicate"]

    stored = await _drain(embedded_services, POS_STREAM, f"pos.{STORE}.>")
    assert sorted(m.msg_id or "" for m in stored) == [f"{dev}:1", f"{dev}:2", f"{dev}:7"]
    assert {m.subject for m in stored} == {f"pos.{STORE}.{dev}"}
    assert await _drain(embedded_services, POS_STREAM, f"pos.{OTHER}.>") == []  # the spoof went nowhere

    dead = [
        m
        for m in await _drain(embedded_services, DLQ_STREAM, "dlq.pos")
        if m.headers.get(PRINCIPAL_HEADER) == device.username
    ]
    reasons = sorted(m.headers[REASON_HEADER] for m in dead)  # each once, although sent twice
    assert reasons == ["device_mismatch", "future_timestamp", "invalid_field", "store_mismatch"]
    spoof = next(m for m in dead if m.headers[REASON_HEADER] == "store_mismatch")
    assert json.loads(spoof.data)["store_id"] == OTHER


async def test_ndjson_and_store_login(
    embedded_services: Settings, device: DeviceCredentials, client: httpx.AsyncClient
) -> None:
    store = CredentialRegistry(embedded_services).register_stores([STORE])[STORE]
    other_device = f"dev-{STORE}-ndjson"
    body = _event(other_device, 1) + b"\n\n" + b"{not json\n" + _event(other_device, 2) + b"\n"
    answer = await client.post(
        _url(STORE, other_device),
        content=body,
        headers={**_auth(store.username, store.password), "Content-Type": "application/x-ndjson"},
    )
    assert answer.status_code == 200, answer.text
    got = [(r["status"], r.get("reason")) for r in answer.json()["results"]]
    assert got == [("accepted", None), ("rejected", "malformed_json"), ("accepted", None)]
    stored = await _drain(embedded_services, POS_STREAM, f"pos.{STORE}.{other_device}")
    assert [m.msg_id for m in stored] == [f"{other_device}:1", f"{other_device}:2"]


async def test_authentication_and_authorization(
    embedded_services: Settings, device: DeviceCredentials, client: httpx.AsyncClient
) -> None:
    dev = device.device_id
    body = [json.loads(_event(dev, 100))]
    missing = await client.post(_url(STORE, dev), json=body)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Basic")
    wrong = await client.post(_url(STORE, dev), json=body, headers=_auth(device.username, "nope"))
    assert wrong.status_code == 401
    unknown = await client.post(_url(STORE, dev), json=body, headers=_auth("dev-ghost", device.password))
    assert unknown.status_code == 401

    headers = _auth(device.username, device.password)
    other_store = await client.post(_url(OTHER, dev), json=body, headers=headers)
    assert (other_store.status_code, other_store.json()["error"]) == (403, "store_mismatch")
    other_device = await client.post(_url(STORE, f"dev-{STORE}-99"), json=body, headers=headers)
    assert (other_device.status_code, other_device.json()["error"]) == (403, "device_mismatch")
    assert await _drain(embedded_services, POS_STREAM, f"pos.{STORE}.dev-{STORE}-99") == []


async def test_limits(embedded_services: Settings, client: httpx.AsyncClient) -> None:
    own = CredentialRegistry(embedded_services).add_device(STORE, f"dev-{STORE}-limits")
    headers = _auth(own.username, own.password)
    url = _url(STORE, own.device_id)
    too_big = await client.post(url, content=b"[" + b" " * 70_000 + b"]", headers=headers)
    assert (too_big.status_code, too_big.json()["error"]) == (413, "body_too_large")
    many = [json.loads(_event(own.device_id, i)) for i in range(21)]
    too_many = await client.post(url, json=many, headers=headers)
    assert (too_many.status_code, too_many.json()["error"]) == (413, "batch_too_large")
    broken = await client.post(url, content=b"[{]", headers=headers)
    assert (broken.status_code, broken.json()["error"]) == (400, "malformed_batch")
    assert await _drain(embedded_services, POS_STREAM, f"pos.{STORE}.{own.device_id}") == []


async def test_revoked_device_is_refused_at_once(
    embedded_services: Settings, client: httpx.AsyncClient
) -> None:
    registry = CredentialRegistry(embedded_services)
    own = registry.add_device(STORE, f"dev-{STORE}-revoked")
    headers = _auth(own.username, own.password)
    url = _url(STORE, own.device_id)
    assert (
        await client.post(url, json=[json.loads(_event(own.device_id, 1))], headers=headers)
    ).status_code == 200
    registry.revoke_device(own.device_id)
    after = await client.post(url, json=[json.loads(_event(own.device_id, 2))], headers=headers)
    assert after.status_code == 401
    stored = await _drain(embedded_services, POS_STREAM, f"pos.{STORE}.{own.device_id}")
    assert [m.msg_id for m in stored] == [f"{own.device_id}:1"]
