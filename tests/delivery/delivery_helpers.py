"""Builders for the delivery tests: device events, publishing them, reading the raw table back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.dataset as pads

from abasto.contracts.events import (
    CoolerTelemetry,
    DeviceEvent,
    Heartbeat,
    SaleScan,
    StockReading,
    encode_event,
)
from abasto.delivery import DeliveryConfig
from abasto.stream.port import EventStream, OutgoingMessage, StreamSpec

T0 = datetime(2026, 3, 1, 22, 10, tzinfo=UTC)


def events(n: int, *, start: datetime = T0, step: timedelta = timedelta(minutes=7)) -> list[DeviceEvent]:
    """``n`` events of two devices, one of each kind in turn, ``step`` apart in event time."""
    out: list[DeviceEvent] = []
    for i in range(n):
        device = f"dev-S000{i % 2 + 1}-1"
        store = f"S000{i % 2 + 1}"
        kind = i % 4
        payload: SaleScan | StockReading | CoolerTelemetry | Heartbeat
        if kind == 0:
            payload = SaleScan(sku="COLA-600-NR", qty=1 + i % 3, price=16.0)
        elif kind == 1:
            payload = StockReading(sku="COLA-600-NR", on_hand=40 - i % 40)
        elif kind == 2:
            payload = CoolerTelemetry(door_openings=i % 9, temperature_c=4.5)
        else:
            payload = Heartbeat(battery_mv=3700)
        out.append(
            DeviceEvent(device_id=device, store_id=store, seq=i, event_time=start + i * step, payload=payload)
        )
    return out


async def publish(stream: EventStream, spec: StreamSpec, items: Iterable[DeviceEvent | bytes]) -> int:
    """Publish events (or raw payloads) without dedup ids; returns the last stream sequence."""
    prefix = spec.subjects[0].removesuffix(".>")
    messages = []
    for item in items:
        if isinstance(item, bytes):
            messages.append(OutgoingMessage(subject=f"{prefix}.S0001.dev-S0001-1", data=item))
        else:
            messages.append(
                OutgoingMessage(subject=f"{prefix}.{item.store_id}.{item.device_id}", data=encode_event(item))
            )
    results = await stream.publish_batch(messages)
    return results[-1].seq


def read_table(table_uri: str) -> pa.Table:
    """The raw events table as a Hive-partitioned dataset (``date``, ``hour`` from the path)."""
    dataset = pads.dataset(table_uri.removeprefix("file://"), format="parquet", partitioning="hive")
    return dataset.to_table()


def keys(table: pa.Table) -> list[tuple[str, int]]:
    return sorted(zip(table["device_id"].to_pylist(), table["seq"].to_pylist(), strict=True))


def expected_keys(evs: Sequence[DeviceEvent]) -> list[tuple[str, int]]:
    return sorted((e.device_id, e.seq) for e in evs)


#: the fixed ``received_at`` of the kill/restart tests (files must be byte-identical across runs)
RECEIVED_AT = datetime(2026, 3, 3, 6, 0, tzinfo=UTC)


def kill_test_config(stream_name: str, durable: str) -> DeliveryConfig:
    """Batches of exactly 10 messages (one fetch each) and a short ack wait, so a killed run's
    unacknowledged messages come back quickly."""
    return DeliveryConfig(
        stream=stream_name,
        durable=durable,
        max_messages=10,
        fetch_batch=10,
        max_age_s=0.5,
        ack_wait_s=1.5,
        fetch_timeout_s=0.2,
    )


def subject_of(spec: StreamSpec, store_id: str, device_id: str) -> str:
    return f"{spec.subjects[0].removesuffix('.>')}.{store_id}.{device_id}"
