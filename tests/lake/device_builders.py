"""Raw device-event files in the delivery's layout, for the device-table tests."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from abasto.delivery.layout import part_name, partition_of, pos_events_uri
from abasto.delivery.rows import POS_EVENTS_SCHEMA
from abasto.lake import device_tables
from abasto.lake.storage import join_uri, write_parquet_atomic

T0 = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)
RECEIVED = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Ev:
    """One device event (the raw columns the device tables read)."""

    device_id: str
    seq: int
    minutes: float  # event time = T0 + minutes
    type: str = "sale"
    sku: str | None = "COLA-600"
    qty: int | None = 1
    price: float | None = 15.0
    on_hand: int | None = None
    stream_seq: int = 0

    @property
    def store_id(self) -> str:
        return "S" + self.device_id.split("-")[-1]

    @property
    def event_time(self) -> datetime:
        return T0 + timedelta(minutes=self.minutes)


def sale(
    device: str, seq: int, minutes: float, sku: str = "COLA-600", qty: int = 1, price: float = 15.0
) -> Ev:
    return Ev(device, seq, minutes, "sale", sku, qty, price)


def stock(device: str, seq: int, minutes: float, sku: str = "COLA-600", on_hand: int = 10) -> Ev:
    return Ev(device, seq, minutes, "stock", sku, None, None, on_hand)


def heartbeat(device: str, seq: int, minutes: float) -> Ev:
    return Ev(device, seq, minutes, "heartbeat", None, None, None)


def rows(events: list[Ev], first_seq: int) -> pa.Table:
    n = len(events)
    columns: dict[str, list[object]] = {
        "stream_seq": [e.stream_seq or first_seq + i for i, e in enumerate(events)],
        "subject": [f"pos.{e.store_id}.{e.device_id}" for e in events],
        "device_id": [e.device_id for e in events],
        "store_id": [e.store_id for e in events],
        "seq": [e.seq for e in events],
        "event_time": [e.event_time for e in events],
        "type": [e.type for e in events],
        "sku": [e.sku for e in events],
        "qty": [e.qty for e in events],
        "price": [e.price for e in events],
        "on_hand": [e.on_hand for e in events],
        "order_id": [None] * n,
        "door_openings": [None] * n,
        "temperature_c": [None] * n,
        "battery_mv": [None] * n,
        "schema": ["abasto.pos/v1"] * n,
        "received_at": [RECEIVED] * n,
    }
    for name in POS_EVENTS_SCHEMA.names:  # columns the delivery added since (null here)
        columns.setdefault(name, [None] * n)
    return pa.Table.from_pydict(columns, schema=POS_EVENTS_SCHEMA)


def write_batch(raw_uri: str, events: list[Ev], first_seq: int) -> list[str]:
    """Write ``events`` as one delivery batch (one file per hour partition); returns the relpaths
    under the events table root."""
    last_seq = first_seq + max(len(events), 1) - 1
    by_part: dict[str, list[Ev]] = {}
    for e in events:
        by_part.setdefault(partition_of(e.event_time), []).append(e)
    written = []
    for part, evs in sorted(by_part.items()):
        rel = f"{part}/{part_name(first_seq, last_seq)}"
        write_parquet_atomic(rows(evs, first_seq), join_uri(pos_events_uri(raw_uri), rel))
        written.append(rel)
    return written


def count_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the reads of each raw file (by relpath) the device tables make from now on."""
    reads: Counter[str] = Counter()
    read_one = device_tables._read_one

    def counted(names: Any, index: int, f: Any) -> Any:
        reads[f.relpath] += 1
        return read_one(names, index, f)

    monkeypatch.setattr(device_tables, "_read_one", counted)
    return reads
