"""A small world's live day: devices → MQTT (store users) → nats-server → JetStream → processor → ALERTS."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import paho.mqtt.publish as mqtt_publish
import pytest

from abasto.contracts.alerts import Alert, decode_alert
from abasto.contracts.events import DeviceEvent, SaleScan, encode_event
from abasto.devices.registry import CredentialRegistry
from abasto.devices.simulator import PublishReport, expand_live_day, publish_mqtt, registry_credentials
from abasto.errors import ServiceUnavailableError
from abasto.ml.pattern import fit_pattern
from abasto.realtime.bootstrap import engine_for_world
from abasto.realtime.processor import Processor
from abasto.services import nats_connect_options, reload_nats
from abasto.settings import Settings, WorldSettings
from abasto.stream.jetstream import JetStreamEventStream
from abasto.stream.port import StreamMessage
from abasto.stream.topology import REASON_HEADER, abasto_streams
from abasto.world import World, generate
from abasto.world.views import sellout_history

pytestmark = pytest.mark.services


history = sellout_history  # the bottler's observable sell-out before the live day


def spoof(event: DeviceEvent, claimed_store: str) -> DeviceEvent:
    """The same device claiming another store's sale in its payload (on its own topic)."""
    return DeviceEvent(
        device_id=event.device_id,
        store_id=claimed_store,
        seq=10**6,
        event_time=event.event_time,
        payload=SaleScan(sku="COLA-600-NR", qty=1, price=16.0),
    )


async def read_from(stream: JetStreamEventStream, name: str, start_seq: int) -> list[StreamMessage]:
    consumer = await stream.consumer(name, f"e2e-read-{uuid.uuid4().hex[:10]}", start_seq=start_seq)
    out: list[StreamMessage] = []
    while batch := await consumer.fetch(1000, timeout_s=0.5):
        for m in batch:
            await m.ack()
        out += batch
    return out


async def test_live_day_over_mqtt_raises_alerts_on_the_alerts_stream(embedded_services: Settings) -> None:
    settings = embedded_services
    world = generate(WorldSettings(seed=11, stores=10, skus=8, history_days=21))
    pattern = fit_pattern(history(world), timezone=world.timezone).with_version("e2e-1")
    events = expand_live_day(world, seed=3)
    store_ids = sorted({e.store_id for e in events})
    CredentialRegistry(settings).register_stores(store_ids)
    reload_nats(settings)
    forged = spoof(events[0], claimed_store=store_ids[1])

    async with JetStreamEventStream.from_connect_options(
        nats_connect_options(settings), name="e2e"
    ) as stream:
        await stream.ensure_streams(abasto_streams(settings.nats))
        starts = {name: (await stream.stream_state(name)).last_seq + 1 for name in ("POS", "ALERTS", "DLQ")}

        report = await asyncio.to_thread(_publish_with_retry, events, settings)
        assert report.events == len(events)
        await asyncio.to_thread(_publish_as, store_ids[0], forged, settings)
        deadline = time.monotonic() + 30  # a PUBACK does not prove JetStream stored it yet
        while (await stream.stream_state("POS")).last_seq - starts["POS"] + 1 < report.events + 1:
            assert time.monotonic() < deadline, "POS did not receive every MQTT message"
            await asyncio.sleep(0.1)

        engine = engine_for_world(world, pattern, settings)
        processor = Processor(stream, engine, durable=f"e2e-{uuid.uuid4().hex[:10]}", start_seq=starts["POS"])
        metrics = await processor.run_until_idle()

        assert metrics.accepted == len(events)
        assert dict(metrics.rejected) == {"store_mismatch": 1}
        assert metrics.received == metrics.accepted + metrics.rejected_total + metrics.duplicates
        assert metrics.alerts_total > 0

        alert_msgs = await read_from(stream, "ALERTS", starts["ALERTS"])
        alerts = [decode_alert(m.data) for m in alert_msgs]
        assert len(alerts) == metrics.alerts_total
        assert all(
            m.msg_id == a.alert_id and m.subject == f"alerts.{a.store_id}"
            for m, a in zip(alert_msgs, alerts, strict=True)
        )
        assert len({a.alert_id for a in alerts}) == len(alerts)
        assert {a.model_version for a in alerts} == {"e2e-1"}
        carried = {(r["store_id"], r["sku"]) for r in world.assortment.to_pylist()}
        assert all((a.store_id, a.sku) in carried for a in alerts)
        projected = [a for a in alerts if a.kind == "projected_stockout"]
        assert all(a.next_delivery_at is not None and a.next_delivery_at > a.raised_at for a in projected)
        assert all(a.suggested_qty > 0 for a in projected)
        _assert_alerts_find_real_stockouts(world, projected)

        dead = await read_from(stream, "DLQ", starts["DLQ"])
        assert [m.headers[REASON_HEADER] for m in dead] == ["store_mismatch"]

    print(
        f"\nMQTT publish: {report.rate:,.0f} ev/s ({report.events} events, {len(store_ids)} connections); "
        f"processed: {processor.last_run.rate if processor.last_run else 0:,.0f} events/s; "
        f"alerts: {dict(metrics.alerts)}"
    )


def _publish_as(store_id: str, event: DeviceEvent, settings: Settings) -> None:
    """Publish with ``store_id``'s own login on its own topic, whatever the event claims."""
    login = CredentialRegistry(settings).get(store_id)
    mqtt_publish.single(
        f"pos/{store_id}/{event.device_id}",
        encode_event(event),
        qos=1,
        hostname=settings.nats.host,
        port=settings.nats.mqtt_port,
        auth={"username": login.username, "password": login.password},
        client_id=f"spoofer-{uuid.uuid4().hex[:8]}",
    )


def _publish_with_retry(events: list[DeviceEvent], settings: Settings) -> PublishReport:
    """The server applies the reloaded users asynchronously: retry the first connection briefly."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return publish_mqtt(
                events,
                host=settings.nats.host,
                port=settings.nats.mqtt_port,
                credentials=registry_credentials(settings),
            )
        except ServiceUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _assert_alerts_find_real_stockouts(world: World, alerts: list[Alert]) -> None:
    """Every live-day stockout with lost sales of the ground truth was projected, before or as it began."""
    live = [
        e
        for e in world.stockout_episodes.to_pylist()
        if world.live_start <= e["start_at"] < world.live_end and e["lost_units"] > 0
    ]
    by_pair = {(a.store_id, a.sku): a for a in alerts}
    caught = [e for e in live if (e["store_id"], e["sku"]) in by_pair]
    assert live, "the seed was chosen to have stockouts on the live day"
    assert len(caught) >= 0.8 * len(live), (len(caught), len(live))
    ahead = [
        e
        for e in caught
        if by_pair[(e["store_id"], e["sku"])].raised_at <= e["start_at"] + timedelta(minutes=5)
    ]
    assert len(ahead) >= 0.5 * len(caught)


@pytest.mark.slow
async def test_default_world_day_over_mqtt_throughput(embedded_services: Settings) -> None:
    """The default world (60 stores × 20 SKUs): every event through MQTT and the processor, with rates."""
    settings = embedded_services
    world = generate(WorldSettings(seed=42, stores=60, skus=20, history_days=28))
    pattern = fit_pattern(history(world), timezone=world.timezone).with_version("bench")
    events = expand_live_day(world, seed=1)
    CredentialRegistry(settings).register_stores(sorted({e.store_id for e in events}))
    reload_nats(settings)
    async with JetStreamEventStream.from_connect_options(
        nats_connect_options(settings), name="bench"
    ) as stream:
        await stream.ensure_streams(abasto_streams(settings.nats))
        start = (await stream.stream_state("POS")).last_seq + 1
        report = await asyncio.to_thread(_publish_with_retry, events, settings)
        deadline = time.monotonic() + 60
        while (await stream.stream_state("POS")).last_seq - start + 1 < len(events):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        processor = Processor(
            stream,
            engine_for_world(world, pattern, settings),
            durable=f"bench-{uuid.uuid4().hex[:8]}",
            start_seq=start,
        )
        metrics = await processor.run_until_idle()
    assert metrics.accepted == len(events)
    assert processor.last_run is not None
    print(
        f"\n{len(events)} events from 60 stores: MQTT {report.rate:,.0f} ev/s; "
        f"processor {processor.last_run.rate:,.0f} ev/s; alerts {dict(metrics.alerts)}"
    )
    assert report.rate > 1_000 and processor.last_run.rate > 1_000
