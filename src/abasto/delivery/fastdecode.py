"""The delivery's fast decoder of batched records: the valid path of
:func:`abasto.contracts.batches.decode_batch_record` at a lower cost, or None.

:func:`decode_valid_batch` accepts a message only when every one of its events is valid, and then
returns exactly the values the contract's decoder returns (the payload structs are the delivery's
mirrors of the contract's, with the same fields, tags, defaults and constraints). Whatever it
does not accept (an invalid envelope or event, a naive or future ``event_time``, an oversized
message, a SKU breaking its pattern) goes through the contract's decoder, which tells why.

Two checks move out of the per-event JSON decode:

* the ``sku`` pattern and length (an ``Id``): the mirrors decode ``sku`` as a plain ``str`` and the
  *distinct* SKUs of a message are validated with the contract's own ``Id`` type
  (``msgspec.convert``), once per SKU and delivery batch (a few dozen SKUs for ~100k events);
* the future-timestamp check: one comparison of the latest ``event_time`` of the message (a naive
  ``event_time`` is refused by the mirror's ``tz=True``, so every time is aware and comparable).

``tests/delivery/test_fast_paths.py`` pins the mirrors to the contract's types (the same msgspec type
information but for the relaxations above) and both decoders to the same results.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Annotated, ClassVar, Final, Literal

import msgspec

from abasto.contracts.batches import MAX_BATCH_BYTES, MAX_BATCH_EVENTS
from abasto.contracts.events import MAX_FUTURE_SKEW, Id, Millivolts, NonNegative, Positive, Seq

__all__ = ["KINDS", "MIRRORS", "FastPayload", "FastRecord", "SkuCheck", "decode_valid_batch"]


class FastSale(msgspec.Struct, tag="sale", forbid_unknown_fields=True, frozen=True):
    """Mirror of :class:`~abasto.contracts.events.SaleScan` (``sku`` checked per distinct value)."""

    sku: str
    qty: Positive
    price: Annotated[float, msgspec.Meta(ge=0)]
    on_hand = None
    order_id = None
    door_openings = None
    temperature_c = None
    battery_mv = None
    #: position of the type in :data:`KINDS`
    code: ClassVar[int] = 0


class FastStock(msgspec.Struct, tag="stock", forbid_unknown_fields=True, frozen=True):
    """Mirror of :class:`~abasto.contracts.events.StockReading`."""

    sku: str
    on_hand: NonNegative
    qty = None
    price = None
    order_id = None
    door_openings = None
    temperature_c = None
    battery_mv = None
    #: position of the type in :data:`KINDS`
    code: ClassVar[int] = 1


class FastDelivery(msgspec.Struct, tag="delivery", forbid_unknown_fields=True, frozen=True):
    """Mirror of :class:`~abasto.contracts.events.DeliveryReceipt`."""

    sku: str
    qty: Positive
    order_id: str | None = None
    price = None
    on_hand = None
    door_openings = None
    temperature_c = None
    battery_mv = None
    #: position of the type in :data:`KINDS`
    code: ClassVar[int] = 2


class FastCooler(msgspec.Struct, tag="cooler", forbid_unknown_fields=True, frozen=True):
    """Mirror of :class:`~abasto.contracts.events.CoolerTelemetry`."""

    door_openings: NonNegative
    temperature_c: Annotated[float, msgspec.Meta(ge=-30, le=60)]
    sku = None
    qty = None
    price = None
    on_hand = None
    order_id = None
    battery_mv = None
    #: position of the type in :data:`KINDS`
    code: ClassVar[int] = 3


class FastHeartbeat(msgspec.Struct, tag="heartbeat", forbid_unknown_fields=True, frozen=True):
    """Mirror of :class:`~abasto.contracts.events.Heartbeat`."""

    battery_mv: Millivolts | None = None
    sku = None
    qty = None
    price = None
    on_hand = None
    order_id = None
    door_openings = None
    temperature_c = None
    #: position of the type in :data:`KINDS`
    code: ClassVar[int] = 4


FastPayload = FastSale | FastStock | FastDelivery | FastCooler | FastHeartbeat
#: the mirrors by ``code``, with their tags (the ``type`` column)
MIRRORS: Final = (FastSale, FastStock, FastDelivery, FastCooler, FastHeartbeat)
KINDS: Final = ("sale", "stock", "delivery", "cooler", "heartbeat")


class FastEvent(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Mirror of :class:`~abasto.contracts.batches.BatchedEvent` (``event_time`` must be aware)."""

    seq: Seq
    event_time: Annotated[datetime, msgspec.Meta(tz=True)]
    payload: FastPayload


class FastBatch(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Mirror of :class:`~abasto.contracts.batches.DeviceBatch`."""

    schema: Literal["abasto.pos.batch/v1"]
    device_id: Id
    store_id: Id
    events: Annotated[list[FastEvent], msgspec.Meta(min_length=1, max_length=MAX_BATCH_EVENTS)]


_decoder: Final = msgspec.json.Decoder(FastBatch)


class SkuCheck:
    """SKUs found valid by the contract's ``Id`` type (keep one per delivery batch: bounded)."""

    __slots__ = ("valid",)

    def __init__(self) -> None:
        self.valid: set[str | None] = {None}

    def all_valid(self, skus: set[str | None]) -> bool:
        new = skus - self.valid
        for sku in new:
            try:
                msgspec.convert(sku, Id)
            except msgspec.ValidationError:
                return False
            self.valid.add(sku)
        return True


@dataclass(frozen=True, slots=True)
class FastRecord:
    """A batched record whose events are all valid, as columns (``indexes`` = ``range(len)``)."""

    device_id: str
    store_id: str
    seqs: list[int]
    times: list[datetime]
    payloads: list[FastPayload]


_seq: Final = attrgetter("seq")
_time: Final = attrgetter("event_time")
_payload: Final = attrgetter("payload")
_sku: Final = attrgetter("sku")


def decode_valid_batch(data: bytes, now: datetime, skus: SkuCheck) -> FastRecord | None:
    """The batch if its envelope and every event are valid (as of ``now``, an aware instant);
    None: decode it with :func:`~abasto.contracts.batches.decode_batch_record`."""
    if len(data) > MAX_BATCH_BYTES:
        return None
    try:
        batch = _decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):  # a ValidationError is a DecodeError
        return None
    events = batch.events
    times: list[datetime] = list(map(_time, events))
    if max(times) - now > MAX_FUTURE_SKEW:
        return None
    payloads: list[FastPayload] = list(map(_payload, events))
    if not skus.all_valid(set(map(_sku, payloads))):
        return None
    return FastRecord(batch.device_id, batch.store_id, list(map(_seq, events)), times, payloads)
