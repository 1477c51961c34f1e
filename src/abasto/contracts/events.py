"""Device event envelope, schema ``abasto.pos/v1``.

What POS devices (scanners, smart coolers, drivers' handhelds) send. One envelope, one
payload per event type, tagged by ``type``::

    {"schema": "abasto.pos/v1", "device_id": "dev-S0001-1", "store_id": "S0001", "seq": 17,
     "event_time": "2026-10-13T14:05:09.120000Z",
     "payload": {"type": "sale", "sku": "COLA-600-NR", "qty": 2, "price": 16.0}}

``seq`` increases per device; ``(device_id, seq)`` identifies an event for deduplication
(``Nats-Msg-Id``). Decoding is strict: unknown fields, wrong types and missing fields are rejected
with :class:`~abasto.errors.InvalidEventError` whose ``reason`` is a short code for the dead-letter
stream and metrics.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Final, Literal

import msgspec

from abasto.errors import InvalidEventError

SCHEMA_V1: Final = "abasto.pos/v1"
MAX_EVENT_BYTES: Final = 64 * 1024
#: events further in the future than this (device clock skew) are rejected
MAX_FUTURE_SKEW: Final = timedelta(minutes=10)

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
NonNegative = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
Positive = Annotated[int, msgspec.Meta(gt=0, le=100_000)]
#: a device's event sequence number, counting up over the device's life: any non-negative int64 (the
#: raw files' column type)
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
#: a device battery's voltage in millivolts (bounded so that it fits the raw files' int32 column)
Millivolts = Annotated[int, msgspec.Meta(ge=0, le=100_000)]


class SaleScan(msgspec.Struct, tag="sale", forbid_unknown_fields=True, frozen=True):
    """Units of one SKU sold in one ticket line."""

    sku: Id
    qty: Positive
    price: Annotated[float, msgspec.Meta(ge=0)]


class StockReading(msgspec.Struct, tag="stock", forbid_unknown_fields=True, frozen=True):
    """Units on hand (shelf + cooler) of one SKU, as counted or sensed."""

    sku: Id
    on_hand: NonNegative


class DeliveryReceipt(msgspec.Struct, tag="delivery", forbid_unknown_fields=True, frozen=True):
    """Units of one SKU received from the bottler's truck (driver's handheld)."""

    sku: Id
    qty: Positive
    order_id: str | None = None


class CoolerTelemetry(msgspec.Struct, tag="cooler", forbid_unknown_fields=True, frozen=True):
    """Smart-cooler reading since the previous one."""

    door_openings: NonNegative
    temperature_c: Annotated[float, msgspec.Meta(ge=-30, le=60)]


class Heartbeat(msgspec.Struct, tag="heartbeat", forbid_unknown_fields=True, frozen=True):
    """The device is alive; its battery voltage when it knows it."""

    battery_mv: Millivolts | None = None


Payload = SaleScan | StockReading | DeliveryReceipt | CoolerTelemetry | Heartbeat


class DeviceEvent(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The envelope every device event travels in."""

    device_id: Id
    store_id: Id
    seq: Seq
    event_time: datetime
    payload: Payload
    schema: Literal["abasto.pos/v1"] = SCHEMA_V1

    @property
    def msg_id(self) -> str:
        """Deduplication id: the same event re-sent by a device has the same id."""
        return f"{self.device_id}:{self.seq}"

    @property
    def sku(self) -> str | None:
        return getattr(self.payload, "sku", None)


_decoder: Final = msgspec.json.Decoder(DeviceEvent)
_encoder: Final = msgspec.json.Encoder()


def encode_event(event: DeviceEvent) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes, *, now: datetime | None = None) -> DeviceEvent:
    """Decode and validate one event. Raises InvalidEventError naming what was wrong."""
    if len(data) > MAX_EVENT_BYTES:
        raise InvalidEventError("oversized", f"{len(data)} bytes > {MAX_EVENT_BYTES}")
    try:
        event = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise InvalidEventError("invalid_field", str(exc)) from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # invalid UTF-8 in a string
        raise InvalidEventError("malformed_json", str(exc)) from exc
    if event.event_time.tzinfo is None:
        raise InvalidEventError("naive_timestamp", "event_time must carry a timezone (use Z)")
    if now is not None and event.event_time - now > MAX_FUTURE_SKEW:
        raise InvalidEventError(
            "future_timestamp", f"event_time {event.event_time.isoformat()} is ahead of {now.isoformat()}"
        )
    return event
