"""The batched record envelope ``abasto.pos.batch/v1``: strict decode, per-event rejection, routing."""

import contextlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abasto.contracts.batches import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    SCHEMA_BATCH_V1,
    batch_of,
    decode_batch_record,
    encode_batch,
    is_batch,
)
from abasto.contracts.events import DeviceEvent, SaleScan, StockReading, decode_event, encode_event
from abasto.errors import InvalidEventError, InvalidInputError

NOW = datetime(2026, 10, 13, 14, 0, tzinfo=UTC)


def _events(n: int, *, device: str = "dev-S1-1", store: str = "S1", first: int = 1) -> list[DeviceEvent]:
    return [
        DeviceEvent(
            device_id=device,
            store_id=store,
            seq=first + i,
            event_time=NOW + timedelta(seconds=i),
            payload=SaleScan(sku="COLA-600-NR", qty=1 + i % 3, price=16.0)
            if i % 2 == 0
            else StockReading(sku="COLA-600-NR", on_hand=40 - i),
        )
        for i in range(n)
    ]


def _doc(n: int = 4) -> dict[str, object]:
    doc = json.loads(encode_batch(batch_of(_events(n))))
    assert isinstance(doc, dict)
    return doc


def test_round_trip_msg_id_and_expansion_to_single_events() -> None:
    events = _events(5, first=17)
    batch = batch_of(events)
    data = encode_batch(batch)
    assert data.startswith(b'{"schema":"abasto.pos.batch/v1"')
    assert batch.msg_id == "dev-S1-1:17..21"
    record = decode_batch_record(data, now=NOW)
    assert (record.device_id, record.store_id, record.indexes, record.rejected) == (
        "dev-S1-1",
        "S1",
        [0, 1, 2, 3, 4],
        [],
    )
    assert [batch.device_event(i) for i in range(5)] == events
    assert [e.payload for e in record.events] == [e.payload for e in events]


def test_is_batch_reads_the_top_level_schema_whatever_the_key_order() -> None:
    doc = _doc()
    reordered = {k: doc[k] for k in ("events", "device_id", "store_id", "schema")}
    assert is_batch(encode_batch(batch_of(_events(2))))
    assert is_batch(json.dumps(reordered).encode())
    assert not is_batch(encode_event(_events(1)[0]))
    # the schema string inside a value is not the envelope's schema
    single = DeviceEvent(
        device_id="dev-S1-1",
        store_id="S1",
        seq=1,
        event_time=NOW,
        payload=SaleScan(sku="COLA-600-NR", qty=1, price=1.0),
    )
    tricky = json.loads(encode_event(single))
    tricky["payload"] = {"type": "delivery", "sku": "X", "qty": 1, "order_id": f'x"{SCHEMA_BATCH_V1}'}
    assert not is_batch(json.dumps(tricky).encode())
    # a truncated batch is still routed to the batch decoder, which rejects it
    assert is_batch(b'{"schema":"abasto.pos.batch/v1",')
    assert not is_batch(b'garbage "abasto.pos.batch/v1" {')


def test_invalid_events_are_rejected_alone_with_index_reason_and_own_bytes() -> None:
    doc = _doc(5)
    events = doc["events"]
    assert isinstance(events, list)
    events[0]["payload"]["qty"] = 0  # out of range (sales at 0, 2, 4; readings at 1, 3)
    events[2]["event_time"] = "2026-10-13T14:00:02"  # naive
    events[4]["event_time"] = (NOW + timedelta(hours=2)).isoformat()  # future
    events[3]["extra"] = 1  # unknown field
    record = decode_batch_record(json.dumps(doc).encode(), now=NOW)
    assert record.indexes == [1]
    assert record.size == 5
    reasons = {r.index: r.reason for r in record.rejected}
    assert reasons == {0: "invalid_field", 2: "naive_timestamp", 3: "invalid_field", 4: "future_timestamp"}
    by_index = {r.index: r for r in record.rejected}
    assert json.loads(by_index[3].data)["extra"] == 1
    assert "qty" in by_index[0].detail


def test_time_problems_on_the_fast_path_keep_the_other_events() -> None:
    doc = _doc(3)
    events = doc["events"]
    assert isinstance(events, list)
    events[1]["event_time"] = (NOW + timedelta(minutes=30)).isoformat()
    record = decode_batch_record(json.dumps(doc).encode(), now=NOW)
    assert record.indexes == [0, 2]
    assert [(r.index, r.reason) for r in record.rejected] == [(1, "future_timestamp")]
    assert json.loads(record.rejected[0].data)["seq"] == 2
    # without a clock, the same batch is whole
    assert decode_batch_record(json.dumps(doc).encode()).indexes == [0, 1, 2]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.update(events=[]), "invalid_field"),
        (lambda d: d.update(device_id="bad id!"), "invalid_field"),
        (lambda d: d.update(unknown=1), "invalid_field"),
        (lambda d: d.pop("store_id"), "invalid_field"),
        (lambda d: d.update(schema="abasto.pos/v1"), "invalid_field"),
        (lambda d: d.update(events=d["events"] * (MAX_BATCH_EVENTS // 4 + 1)), "invalid_field"),
    ],
)
def test_a_broken_envelope_rejects_the_whole_message(mutate: object, reason: str) -> None:
    doc = _doc()
    assert callable(mutate)
    mutate(doc)
    with pytest.raises(InvalidEventError) as info:
        decode_batch_record(json.dumps(doc).encode(), now=NOW)
    assert info.value.reason == reason


def test_malformed_and_oversized_messages() -> None:
    with pytest.raises(InvalidEventError) as info:
        decode_batch_record(b'{"schema":"abasto.pos.batch/v1",', now=NOW)
    assert info.value.reason == "malformed_json"
    with pytest.raises(InvalidEventError) as info:
        decode_batch_record(b" " * (MAX_BATCH_BYTES + 1))
    assert info.value.reason == "oversized"


def test_batch_of_refuses_mixed_devices_empty_and_too_many() -> None:
    with pytest.raises(InvalidInputError, match="one device"):
        batch_of(_events(2) + _events(1, device="dev-S1-2"))
    with pytest.raises(InvalidInputError, match="at least one"):
        batch_of([])
    with pytest.raises(InvalidInputError, match="at most"):
        batch_of(_events(MAX_BATCH_EVENTS + 1))


@given(st.binary(max_size=512))
def test_decoder_never_raises_anything_but_invalid_event(data: bytes) -> None:
    with contextlib.suppress(InvalidEventError):
        decode_batch_record(data, now=NOW)
    is_batch(data)  # never raises


_valid = encode_batch(batch_of(_events(3)))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(_valid) - 1), st.binary(min_size=1, max_size=4))
def test_corrupted_batches_are_rejected_whole_or_per_event(at: int, junk: bytes) -> None:
    data = _valid[:at] + junk + _valid[at + len(junk) :]
    try:
        record = decode_batch_record(data, now=NOW)
    except InvalidEventError as exc:
        assert exc.reason in {"malformed_json", "invalid_field"}
        return
    assert sorted(record.indexes + [r.index for r in record.rejected]) == list(range(record.size))
    assert all(r.reason in {"invalid_field", "naive_timestamp", "future_timestamp"} for r in record.rejected)


def test_invalid_utf8_is_malformed_json_not_a_crash() -> None:
    bad = _valid.replace(b"COLA", b"C\x80LA", 1)
    assert is_batch(bad)
    with pytest.raises(InvalidEventError) as info:
        decode_batch_record(bad, now=NOW)
    assert info.value.reason == "malformed_json"
    single = encode_event(_events(1)[0]).replace(b"COLA", b"C\x80LA")
    with pytest.raises(InvalidEventError) as info:
        decode_event(single, now=NOW)
    assert info.value.reason == "malformed_json"
