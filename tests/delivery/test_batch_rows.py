"""Batched records (``abasto.pos.batch/v1``) in the raw events table: one row per event, exactly once."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import msgspec
from delivery_helpers import T0, events, expected_keys, keys, read_table

from abasto.contracts.batches import SCHEMA_BATCH_V1, batch_of, encode_batch
from abasto.contracts.events import SCHEMA_V1, DeviceEvent, encode_event
from abasto.delivery import DeliveryConfig, RawDelivery, decode_batch
from abasto.delivery.rows import POS_EVENTS_SCHEMA, RawMessage
from abasto.devices.batching import batch_events, batch_messages
from abasto.stream.port import EventStream, OutgoingMessage, StreamSpec

SUBJECT = "pos.S0001.dev-S0001-1"
NOW_FOR_TESTS = T0 + timedelta(days=1, hours=1)


def _s1(n: int, step: timedelta = timedelta(minutes=7)) -> list[DeviceEvent]:
    """``n`` events of device dev-S0001-1."""
    return [e for e in events(2 * n, step=step) if e.store_id == "S0001"]


def test_a_batch_gives_one_row_per_event_with_its_index_and_partition() -> None:
    evs = _s1(6, step=timedelta(minutes=20))  # 22:10 → past midnight: two dates
    batch = RawMessage(5, SUBJECT, encode_batch(batch_of(evs)))
    later = msgspec.structs.replace(events(1, start=T0 + timedelta(days=1))[0], seq=100)
    single = RawMessage(9, SUBJECT, encode_event(later))
    out = decode_batch([single, batch], received_at=NOW_FOR_TESTS)
    assert out.rows == 7 and not out.invalid and out.duplicates == 0
    rows = sorted(
        (r for t in out.partitions.values() for r in t.to_pylist()), key=lambda r: (r["stream_seq"], r["seq"])
    )
    assert [(r["stream_seq"], r["seq"], r["batch_index"], r["schema"]) for r in rows] == [
        *[(5, e.seq, i, SCHEMA_BATCH_V1) for i, e in enumerate(evs)],
        (9, 100, None, SCHEMA_V1),
    ]
    assert all(t.schema == POS_EVENTS_SCHEMA for t in out.partitions.values())
    assert {r["device_id"] for r in rows[:6]} == {"dev-S0001-1"}
    assert [r["event_time"] for r in rows[:6]] == [e.event_time for e in evs]
    assert len(out.partitions) > 2  # the batch's events land in their own hour partitions


def test_invalid_events_of_a_batch_are_counted_alone_and_duplicates_across_messages_dropped() -> None:
    evs = _s1(4)
    doc = json.loads(encode_batch(batch_of(evs)))
    doc["events"][1]["event_time"] = "2026-03-01T22:30:00"  # naive
    broken = RawMessage(1, SUBJECT, json.dumps(doc).encode())
    resent_single = RawMessage(2, SUBJECT, encode_event(evs[0]))
    resent_batch = RawMessage(3, SUBJECT, encode_batch(batch_of(evs[2:])))
    garbage = RawMessage(4, SUBJECT, b'{"schema":"abasto.pos.batch/v1","events":[]}')
    out = decode_batch([resent_batch, garbage, broken, resent_single], received_at=NOW_FOR_TESTS)
    assert out.invalid == {"naive_timestamp": 1, "invalid_field": 1}
    assert out.duplicates == 3
    assert out.rows == 3
    idx = sorted(r["batch_index"] for t in out.partitions.values() for r in t.to_pylist())
    assert idx == [0, 2, 3]


async def test_batched_records_are_delivered_exactly_once_and_replay_writes_nothing(
    stream: EventStream, pos_spec: StreamSpec, tmp_path: Path
) -> None:
    evs = events(40, step=timedelta(minutes=9))
    prefix = pos_spec.subjects[0].removesuffix(".>")
    msgs = [
        OutgoingMessage(f"{prefix}.{m.subject.split('.', 1)[1]}", m.data, msg_id=m.msg_id)
        for m in batch_messages(batch_events(evs, max_events=4, window=timedelta(minutes=40)))
    ]
    results = await stream.publish_batch(msgs + msgs[:3])  # the first three re-sent: dropped by msg id
    assert sum(1 for r in results if r.duplicate) == 3
    config = DeliveryConfig(stream=pos_spec.name, fetch_timeout_s=0.2, max_age_s=5.0, max_messages=3)
    delivery = RawDelivery(stream, tmp_path.as_uri(), config)
    metrics = await delivery.run_until_idle()
    assert (metrics.messages, metrics.rows_written) == (len(msgs), len(evs))
    table = read_table(delivery.table_uri)
    assert keys(table) == expected_keys(evs)
    assert table["batch_index"].null_count == 0

    replay = DeliveryConfig(
        stream=pos_spec.name, durable="replay", fetch_timeout_s=0.2, max_age_s=5.0, max_messages=3
    )
    again = await RawDelivery(stream, tmp_path.as_uri(), replay).run_until_idle()
    assert (again.already_delivered, again.files_written) == (len(msgs), 0)
    assert keys(read_table(delivery.table_uri)) == expected_keys(evs)
