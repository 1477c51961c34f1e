"""Device events → rows of the raw events table: the envelope flattened, one Arrow table per
partition.

A batch is decoded as a whole (:func:`decode_batch`) with one ``received_at`` instant, the
delivery's arrival time of the batch; it is also the ``now`` of the future-timestamp check, so
decoding the same messages again with the same instant (crash recovery) gives the same rows.
Invalid payloads are counted by reason and left out (the stream processor dead-letters them); an
event that appears twice in a batch (same ``device_id``, ``seq``) keeps its first copy (lowest
stream sequence).

Batched records (``abasto.pos.batch/v1``) give one row per event, with the same columns: the
message's ``stream_seq`` and ``subject``, the batch's device and store, the event's own ``seq``,
``event_time`` and payload, ``schema`` = the batch's schema, and ``batch_index`` = the event's
position in the message (null for single events), so (``stream_seq``, ``batch_index``) still
orders the rows as they arrived. An invalid event of a batch is counted and left out alone; an
invalid envelope leaves the whole message out. Rows still dedup by (``device_id``, ``seq``), across
single and batched messages alike.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import numpy as np
import pyarrow as pa

from abasto.contracts.batches import SCHEMA_BATCH_V1, BatchedEvent, decode_batch_record, is_batch
from abasto.contracts.events import (
    CoolerTelemetry,
    DeliveryReceipt,
    Heartbeat,
    Payload,
    SaleScan,
    StockReading,
    decode_event,
)
from abasto.delivery.layout import partition_of
from abasto.errors import InvalidEventError

__all__ = ["POS_EVENTS_SCHEMA", "DecodedBatch", "RawMessage", "decode_batch"]

_TS: Final = pa.timestamp("us", tz="UTC")

#: columns of the raw events table (the partition keys ``date``/``hour`` live in the path)
POS_EVENTS_SCHEMA: Final = pa.schema(
    [
        pa.field("stream_seq", pa.int64(), nullable=False),
        pa.field("subject", pa.string(), nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("store_id", pa.string(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("event_time", _TS, nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("sku", pa.string()),
        pa.field("qty", pa.int32()),
        pa.field("price", pa.float64()),
        pa.field("on_hand", pa.int32()),
        pa.field("order_id", pa.string()),
        pa.field("door_openings", pa.int32()),
        pa.field("temperature_c", pa.float64()),
        pa.field("battery_mv", pa.int32()),
        pa.field("schema", pa.string(), nullable=False),
        pa.field("received_at", _TS, nullable=False),
        #: position of the event in its batched record; null for a single-event message
        pa.field("batch_index", pa.int32()),
    ]
)

_TYPE_OF: Final[dict[type, str]] = {
    SaleScan: "sale",
    StockReading: "stock",
    DeliveryReceipt: "delivery",
    CoolerTelemetry: "cooler",
    Heartbeat: "heartbeat",
}


@dataclass(frozen=True, slots=True)
class RawMessage:
    """What the delivery keeps of a stream message until its batch is written."""

    stream_seq: int
    subject: str
    data: bytes


@dataclass(slots=True)
class DecodedBatch:
    """Rows of one batch split by partition, and what was left out."""

    partitions: dict[str, pa.Table] = field(default_factory=dict)
    invalid: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0

    @property
    def rows(self) -> int:
        return sum(t.num_rows for t in self.partitions.values())


class _Columns:
    """Column builders of a whole batch, in stream order, with each row's UTC hour number.

    Single events are appended one by one; the events of a batched record are appended a column
    at a time (one comprehension per column, not a method call per event). :meth:`partitions`
    splits the rows by hour with a stable sort, so each partition keeps the stream order.
    """

    def __init__(self) -> None:
        self.values: dict[str, list[object]] = {f.name: [] for f in POS_EVENTS_SCHEMA}
        self.hours: list[int] = []

    def add(
        self,
        msg: RawMessage,
        device_id: str,
        store_id: str,
        seq: int,
        event_time: datetime,
        p: Payload,
        schema: str,
        received_at: datetime,
    ) -> None:
        v = self.values
        v["stream_seq"].append(msg.stream_seq)
        v["subject"].append(msg.subject)
        v["device_id"].append(device_id)
        v["store_id"].append(store_id)
        v["seq"].append(seq)
        v["event_time"].append(event_time)
        v["type"].append(_TYPE_OF[type(p)])
        for name in _PAYLOAD_COLUMNS:
            v[name].append(getattr(p, name, None))
        v["schema"].append(schema)
        v["received_at"].append(received_at)
        v["batch_index"].append(None)
        self.hours.append(int(event_time.timestamp() // 3600))

    def extend(
        self,
        msg: RawMessage,
        device_id: str,
        store_id: str,
        events: list[BatchedEvent],
        indexes: list[int],
        received_at: datetime,
    ) -> None:
        """The events of one batched record (all kept), ``indexes`` their positions in it."""
        k = len(events)
        v = self.values
        v["stream_seq"] += [msg.stream_seq] * k
        v["subject"] += [msg.subject] * k
        v["device_id"] += [device_id] * k
        v["store_id"] += [store_id] * k
        v["seq"] += [e.seq for e in events]
        times = [e.event_time for e in events]
        v["event_time"] += times
        payloads = [e.payload for e in events]
        v["type"] += [_TYPE_OF[type(p)] for p in payloads]
        for name in _PAYLOAD_COLUMNS:
            v[name] += [getattr(p, name, None) for p in payloads]
        v["schema"] += [SCHEMA_BATCH_V1] * k
        v["received_at"] += [received_at] * k
        v["batch_index"] += indexes
        self.hours += [int(t.timestamp() // 3600) for t in times]

    def partitions(self) -> dict[str, pa.Table]:
        """The rows by partition (sorted by partition name), each in stream order."""
        if not self.hours:
            return {}
        table = pa.Table.from_pydict(self.values, schema=POS_EVENTS_SCHEMA)
        hours = np.asarray(self.hours, dtype=np.int64)
        order = np.argsort(hours, kind="stable")
        ordered = hours[order]
        starts = np.flatnonzero(np.diff(ordered)) + 1
        bounds = [0, *starts.tolist(), len(ordered)]
        table = table.take(pa.array(order))
        out: dict[str, pa.Table] = {}
        for lo, hi in itertools.pairwise(bounds):
            hour = datetime.fromtimestamp(int(ordered[lo]) * 3600, UTC)
            out[partition_of(hour)] = table.slice(lo, hi - lo)
        return dict(sorted(out.items()))


#: payload fields that are columns of their own (null where the payload type has none)
_PAYLOAD_COLUMNS: Final = (
    "sku",
    "qty",
    "price",
    "on_hand",
    "order_id",
    "door_openings",
    "temperature_c",
    "battery_mv",
)


def decode_batch(messages: Iterable[RawMessage], *, received_at: datetime) -> DecodedBatch:
    """Decode ``messages`` (any order) into per-partition tables sorted by stream sequence."""
    out = DecodedBatch()
    seen: set[tuple[str, int]] = set()
    columns = _Columns()
    for msg in sorted(messages, key=lambda m: m.stream_seq):
        if is_batch(msg.data):
            _add_batch(msg, received_at, out, seen, columns)
            continue
        try:
            event = decode_event(msg.data, now=received_at)
        except InvalidEventError as exc:
            out.invalid[exc.reason] += 1
            continue
        key = (event.device_id, event.seq)
        if key in seen:
            out.duplicates += 1
            continue
        seen.add(key)
        columns.add(
            msg,
            event.device_id,
            event.store_id,
            event.seq,
            event.event_time,
            event.payload,
            event.schema,
            received_at,
        )
    out.partitions = columns.partitions()
    return out


def _add_batch(
    msg: RawMessage,
    received_at: datetime,
    out: DecodedBatch,
    seen: set[tuple[str, int]],
    columns: _Columns,
) -> None:
    """The rows of one batched record (its invalid events counted and left out)."""
    try:
        record = decode_batch_record(msg.data, now=received_at)
    except InvalidEventError as exc:
        out.invalid[exc.reason] += 1
        return
    for rejected in record.rejected:
        out.invalid[rejected.reason] += 1
    device = record.device_id
    keys = [(device, e.seq) for e in record.events]
    fresh = seen.isdisjoint(keys) and len(set(keys)) == len(keys)
    if fresh:
        seen.update(keys)
        events, indexes = record.events, list(record.indexes)
    else:
        events, indexes = [], []
        for key, index, e in zip(keys, record.indexes, record.events, strict=True):
            if key in seen:
                out.duplicates += 1
                continue
            seen.add(key)
            events.append(e)
            indexes.append(index)
    columns.extend(msg, device, record.store_id, events, indexes, received_at)
