"""Batched device records, schema ``abasto.pos.batch/v1``.

One device (or a store gateway speaking for it) sends up to :data:`MAX_BATCH_EVENTS` events in one
message of at most :data:`MAX_BATCH_BYTES`, on the same subject as single events
(``pos.<store_id>.<device_id>``)::

    {"schema": "abasto.pos.batch/v1", "device_id": "dev-S0001-1", "store_id": "S0001",
     "events": [{"seq": 17, "event_time": "2026-10-13T14:05:09.120000Z",
                 "payload": {"type": "sale", "sku": "COLA-600-NR", "qty": 2, "price": 16.0}},
                {"seq": 18, ...}]}

Each event keeps its own ``seq``, ``event_time`` and payload (the payload types of
``abasto.pos/v1``); ``(device_id, seq)`` still identifies an event. The batch's dedup id
(``Nats-Msg-Id``) is ``<device_id>:<first seq>..<last seq>``.

Decoding (:func:`decode_batch_record`) is strict. A broken envelope (malformed JSON, a wrong or
unknown envelope field, no events, too many, too big) rejects the whole message with
:class:`~abasto.errors.InvalidEventError`. An invalid event inside a valid envelope is rejected
alone (:class:`RejectedEvent`, with its index in the batch and its own bytes) and the others are
kept. The valid path decodes the whole message once; only a message holding an invalid event is
decoded a second time, event by event, to find which.

:func:`is_batch` tells a batch from a single event by its top-level ``schema`` field, cheaply: a
substring test on the bytes, confirmed by a decode of that one field only when the substring is
there (a single event cannot carry that schema).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Final, Literal

import msgspec

from abasto.contracts.events import (
    MAX_FUTURE_SKEW,
    DeviceEvent,
    Id,
    Payload,
    Seq,
)
from abasto.errors import InvalidEventError, InvalidInputError

SCHEMA_BATCH_V1: Final = "abasto.pos.batch/v1"
MAX_BATCH_EVENTS: Final = 1_000
MAX_BATCH_BYTES: Final = 1024 * 1024
#: header of a dead letter cut out of a batch: the event's index in the batch
BATCH_INDEX_HEADER: Final = "Abasto-Batch-Index"

_SCHEMA_BYTES: Final = b'"' + SCHEMA_BATCH_V1.encode() + b'"'
_PREFIX: Final = b'{"schema":' + _SCHEMA_BYTES


class BatchedEvent(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One event of a batch: the device and store are the batch's."""

    seq: Seq
    event_time: datetime
    payload: Payload


class DeviceBatch(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The envelope of a batch of one device's events (``schema`` first: see :func:`is_batch`)."""

    schema: Literal["abasto.pos.batch/v1"]
    device_id: Id
    store_id: Id
    events: Annotated[list[BatchedEvent], msgspec.Meta(min_length=1, max_length=MAX_BATCH_EVENTS)]

    @property
    def msg_id(self) -> str:
        """Deduplication id: ``<device_id>:<first seq>..<last seq>`` (as listed)."""
        return f"{self.device_id}:{self.events[0].seq}..{self.events[-1].seq}"

    def device_event(self, index: int) -> DeviceEvent:
        """The ``index``-th event as a single ``abasto.pos/v1`` event."""
        e = self.events[index]
        return DeviceEvent(
            device_id=self.device_id,
            store_id=self.store_id,
            seq=e.seq,
            event_time=e.event_time,
            payload=e.payload,
        )


class _LooseBatch(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The envelope with its events left undecoded (to validate them one by one)."""

    schema: Literal["abasto.pos.batch/v1"]
    device_id: Id
    store_id: Id
    events: Annotated[list[msgspec.Raw], msgspec.Meta(min_length=1, max_length=MAX_BATCH_EVENTS)]


class _SchemaOnly(msgspec.Struct):
    schema: str | None = None


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    """An invalid event of a batch: its index, why, and its own bytes (for the dead letters)."""

    index: int
    reason: str
    detail: str
    data: bytes


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """A decoded batch: the valid events with their indexes in the message, and the rejected ones."""

    device_id: str
    store_id: str
    events: list[BatchedEvent]
    #: ``indexes[k]``: position of ``events[k]`` in the message
    indexes: list[int]
    rejected: list[RejectedEvent]

    @property
    def size(self) -> int:
        """Events in the message, valid or not."""
        return len(self.events) + len(self.rejected)


_strict: Final = msgspec.json.Decoder(DeviceBatch)
_loose: Final = msgspec.json.Decoder(_LooseBatch)
_one: Final = msgspec.json.Decoder(BatchedEvent)
_schema_only: Final = msgspec.json.Decoder(_SchemaOnly)
_encoder: Final = msgspec.json.Encoder()


def is_batch(data: bytes) -> bool:
    """Whether ``data``'s top-level ``schema`` is ``abasto.pos.batch/v1`` (malformed: False)."""
    if data.startswith(_PREFIX):
        return True
    if _SCHEMA_BYTES not in data:
        return False
    try:
        return _schema_only.decode(data).schema == SCHEMA_BATCH_V1
    except (msgspec.DecodeError, UnicodeDecodeError):
        return False


def encode_batch(batch: DeviceBatch) -> bytes:
    return _encoder.encode(batch)


def batch_of(events: Sequence[DeviceEvent]) -> DeviceBatch:
    """One batch of ``events`` (in the given order), all of one device and store.

    Raises:
        InvalidInputError: no events, too many, or events of several devices or stores.
    """
    if not events:
        raise InvalidInputError("a batch needs at least one event", hint="skip empty groups")
    if len(events) > MAX_BATCH_EVENTS:
        raise InvalidInputError(
            f"{len(events)} events in one batch, at most {MAX_BATCH_EVENTS}",
            hint="split the events with abasto.devices.batching.batch_events",
        )
    device, store = events[0].device_id, events[0].store_id
    for e in events:
        if e.device_id != device or e.store_id != store:
            raise InvalidInputError(
                f"a batch holds one device's events: {e.device_id}@{e.store_id} with {device}@{store}",
                hint="group the events by device first",
            )
    return DeviceBatch(
        schema=SCHEMA_BATCH_V1,
        device_id=device,
        store_id=store,
        events=[BatchedEvent(seq=e.seq, event_time=e.event_time, payload=e.payload) for e in events],
    )


def decode_batch_record(data: bytes, *, now: datetime | None = None) -> BatchRecord:
    """Decode a batch; invalid events are set apart (see the module docstring).

    Raises:
        InvalidEventError: the envelope itself is invalid (the whole message is rejected).
    """
    if len(data) > MAX_BATCH_BYTES:
        raise InvalidEventError("oversized", f"batch of {len(data)} bytes > {MAX_BATCH_BYTES}")
    try:
        batch = _strict.decode(data)
    except msgspec.ValidationError:
        return _decode_one_by_one(data, now)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # UnicodeDecodeError: bad UTF-8
        raise InvalidEventError("malformed_json", str(exc)) from exc
    events = batch.events
    bad: list[RejectedEvent] | None = None
    for i, e in enumerate(events):
        problem = _time_problem(e.event_time, now)
        if problem is not None:
            bad = bad or []
            bad.append(RejectedEvent(i, *problem, _encoder.encode(e)))
    if bad is None:
        return BatchRecord(batch.device_id, batch.store_id, events, list(range(len(events))), [])
    rejected = {r.index for r in bad}
    kept = [i for i in range(len(events)) if i not in rejected]
    return BatchRecord(batch.device_id, batch.store_id, [events[i] for i in kept], kept, bad)


def _decode_one_by_one(data: bytes, now: datetime | None) -> BatchRecord:
    try:
        loose = _loose.decode(data)
    except msgspec.ValidationError as exc:
        raise InvalidEventError("invalid_field", f"batch envelope: {exc}") from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # pragma: no cover - parsed before
        raise InvalidEventError("malformed_json", str(exc)) from exc
    events: list[BatchedEvent] = []
    indexes: list[int] = []
    rejected: list[RejectedEvent] = []
    for i, raw in enumerate(loose.events):
        raw_bytes = bytes(raw)
        try:
            e = _one.decode(raw_bytes)
        except msgspec.ValidationError as exc:
            rejected.append(RejectedEvent(i, "invalid_field", str(exc), raw_bytes))
            continue
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # pragma: no cover - parsed before
            rejected.append(RejectedEvent(i, "malformed_json", str(exc), raw_bytes))
            continue
        problem = _time_problem(e.event_time, now)
        if problem is not None:
            rejected.append(RejectedEvent(i, *problem, raw_bytes))
            continue
        events.append(e)
        indexes.append(i)
    return BatchRecord(loose.device_id, loose.store_id, events, indexes, rejected)


def _time_problem(at: datetime, now: datetime | None) -> tuple[str, str] | None:
    if at.tzinfo is None:
        return "naive_timestamp", "event_time must carry a timezone (use Z)"
    if now is not None and at - now > MAX_FUTURE_SKEW:
        return "future_timestamp", f"event_time {at.isoformat()} is ahead of {now.isoformat()}"
    return None
