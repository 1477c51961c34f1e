import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from abasto.contracts.alerts import Alert, alert_id, can_transition, decode_alert, encode_alert
from abasto.contracts.events import (
    DeviceEvent,
    Heartbeat,
    SaleScan,
    StockReading,
    decode_event,
    encode_event,
)
from abasto.errors import InvalidEventError, TerminalError, TransientError, is_transient

NOW = datetime(2026, 10, 13, 14, 0, tzinfo=UTC)


def _event(**kw: object) -> DeviceEvent:
    base: dict[str, object] = {
        "device_id": "dev-S1-1",
        "store_id": "S1",
        "seq": 7,
        "event_time": NOW,
        "payload": SaleScan(sku="COLA-600-NR", qty=2, price=16.0),
    }
    base.update(kw)
    return DeviceEvent(**base)  # type: ignore[arg-type]


def test_event_round_trip_and_msg_id() -> None:
    ev = _event()
    assert decode_event(encode_event(ev), now=NOW) == ev
    assert ev.msg_id == "dev-S1-1:7"
    assert ev.sku == "COLA-600-NR"
    assert _event(payload=StockReading(sku="X", on_hand=3)).sku == "X"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b'{"device_id": 1}', "invalid_field"),
        (b"x" * 70_000, "oversized"),
    ],
)
def test_bad_events_are_rejected_with_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEventError) as info:
        decode_event(raw, now=NOW)
    assert info.value.reason == reason


def test_wrong_type_and_unknown_field_and_negative_qty() -> None:
    good = encode_event(_event()).decode()
    for bad in (
        good.replace('"qty":2', '"qty":"2"'),
        good.replace('"qty":2', '"qty":-1'),
        good.replace('"seq":7', '"seq":7,"extra":1'),
        good.replace('"type":"sale"', '"type":"teleport"'),
    ):
        with pytest.raises(InvalidEventError, match="invalid_field"):
            decode_event(bad.encode(), now=NOW)


def test_seq_is_any_non_negative_int64() -> None:
    """A device counts its events for years: only the raw files' int64 bounds its seq."""
    for seq in (0, 1_000_001, 2**40, 2**63 - 1):
        assert decode_event(encode_event(_event(seq=seq)), now=NOW).seq == seq
    for seq in (-1, 2**63):
        with pytest.raises(InvalidEventError, match="seq"):
            decode_event(encode_event(_event(seq=7)).replace(b'"seq":7', f'"seq":{seq}'.encode()), now=NOW)


@pytest.mark.parametrize("mv", [-1, 100_001, 2**31])
def test_a_battery_voltage_out_of_range_is_rejected(mv: int) -> None:
    """Bounded (0..100,000 mV): a value beyond int32 would fail the raw files' column instead."""
    for ok in (0, 3700, 100_000, None):
        assert decode_event(encode_event(_event(payload=Heartbeat(battery_mv=ok))), now=NOW)
    bad = encode_event(_event(payload=Heartbeat(battery_mv=0))).replace(
        b'"battery_mv":0', f'"battery_mv":{mv}'.encode()
    )
    with pytest.raises(InvalidEventError, match="battery_mv") as info:
        decode_event(bad, now=NOW)
    assert info.value.reason == "invalid_field"


def test_future_and_naive_timestamps() -> None:
    future = encode_event(_event(event_time=NOW + timedelta(hours=1)))
    with pytest.raises(InvalidEventError) as info:
        decode_event(future, now=NOW)
    assert info.value.reason == "future_timestamp"
    naive = encode_event(_event()).replace(b"Z", b"")
    with pytest.raises(InvalidEventError) as info:
        decode_event(naive, now=NOW)
    assert info.value.reason == "naive_timestamp"


@given(st.binary(max_size=512))
def test_decoder_never_raises_anything_but_invalid_event(data: bytes) -> None:
    with contextlib.suppress(InvalidEventError):
        decode_event(data, now=NOW)


def test_alert_id_is_stable_and_distinct() -> None:
    assert alert_id("S1", "A", "2026-10-13") == alert_id("S1", "A", "2026-10-13")
    assert alert_id("S1", "A", "2026-10-13") != alert_id("S1", "A", "2026-10-14")
    assert alert_id("S1", "AB", "x") != alert_id("S1A", "B", "x")


def test_alert_state_machine_and_round_trip() -> None:
    assert can_transition("open", "acknowledged")
    assert not can_transition("resolved", "open")
    assert not can_transition("acknowledged", "open")
    a = Alert(
        alert_id=alert_id("S1", "A", "e1"),
        kind="projected_stockout",
        store_id="S1",
        sku="A",
        raised_at=NOW,
        episode="e1",
        risk=0.8,
        on_hand_estimate=3,
        expected_units_per_hour=2,
        observed_units_per_hour=3,
        projected_stockout_at=NOW + timedelta(hours=1),
        next_delivery_at=NOW + timedelta(days=1),
        suggested_qty=24,
        model_version="3",
    )
    assert decode_alert(encode_alert(a)) == a
    ev = a.to_event()
    assert ev["source"] == "abasto.realtime" and ev["detail"]["store_id"] == "S1"  # type: ignore[index]


def test_error_split() -> None:
    assert is_transient(TransientError("x"))
    assert not is_transient(TerminalError("x"))
    assert is_transient(ConnectionResetError())
    assert not is_transient(ValueError())
