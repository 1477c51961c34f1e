"""Group device events into batched records (``abasto.pos.batch/v1``) as a store gateway would.

A device buffers its events and sends them as one message when the buffer holds ``max_events``
or its first event is ``window`` old (in event time) when the next arrives. Batches come out in the
order they would be sent (by the newest event time of the device when the batch closed), so each
device's (and store's) events stay in the given order on the stream.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from abasto.contracts.batches import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    DeviceBatch,
    batch_of,
    encode_batch,
)
from abasto.contracts.events import DeviceEvent
from abasto.errors import InvalidInputError
from abasto.stream.port import EventStream, OutgoingMessage
from abasto.stream.topology import pos_subject

__all__ = ["BatchPublishReport", "batch_events", "batch_messages", "publish_batches"]

DEFAULT_WINDOW = timedelta(minutes=15)


def batch_events(
    events: Iterable[DeviceEvent], *, max_events: int = 500, window: timedelta = DEFAULT_WINDOW
) -> list[DeviceBatch]:
    """Cut ``events`` (in event-time order) into per-device batches (see the module docstring).

    Raises:
        InvalidInputError: ``max_events`` outside 1..MAX_BATCH_EVENTS or a non-positive window.
    """
    if not 1 <= max_events <= MAX_BATCH_EVENTS:
        raise InvalidInputError(
            f"max_events={max_events} is outside 1..{MAX_BATCH_EVENTS}", hint="pick e.g. 500"
        )
    if window <= timedelta(0):
        raise InvalidInputError(f"window={window} must be positive", hint="pick e.g. 15 minutes")
    open_: dict[str, list[DeviceEvent]] = {}
    closed: list[list[DeviceEvent]] = []
    for e in events:
        buf = open_.get(e.device_id)
        if buf is not None and (len(buf) >= max_events or e.event_time - buf[0].event_time >= window):
            closed.append(buf)
            buf = None
        if buf is None:
            buf = open_[e.device_id] = []
        buf.append(e)
    closed += open_.values()
    # when a batch is sent: the newest event time its device had seen by then (a running maximum,
    # so a device's batches keep their order even when a late event closes one)
    newest: dict[str, datetime] = {}
    keyed: list[tuple[datetime, str, int, list[DeviceEvent]]] = []
    for k, b in enumerate(closed):
        device = b[0].device_id
        top = max([e.event_time for e in b] + [newest.get(device, b[0].event_time)])
        newest[device] = top
        keyed.append((top, b[0].store_id, k, b))
    keyed.sort(key=lambda x: x[:3])
    return [batch_of(b) for *_, b in keyed]


def batch_messages(batches: Iterable[DeviceBatch], *, msg_id_suffix: str = "") -> list[OutgoingMessage]:
    """One stream message per batch: subject ``pos.<store>.<device>``, msg id ``device:first..last``
    (+ ``msg_id_suffix``: a benchmark publishing the same batches again gives them new ids).

    Raises:
        InvalidInputError: a batch encodes to more than MAX_BATCH_BYTES.
    """
    out: list[OutgoingMessage] = []
    for b in batches:
        data = encode_batch(b)
        if len(data) > MAX_BATCH_BYTES:
            raise InvalidInputError(
                f"batch {b.msg_id} is {len(data)} bytes, more than {MAX_BATCH_BYTES}",
                hint="lower max_events",
            )
        msg_id = b.msg_id + msg_id_suffix
        out.append(OutgoingMessage(pos_subject(b.store_id, b.device_id), data, msg_id=msg_id))
    return out


@dataclass(frozen=True, slots=True)
class BatchPublishReport:
    messages: int
    events: int
    seconds: float
    duplicates: int

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


async def publish_batches(
    batches: Sequence[DeviceBatch], stream: EventStream, *, chunk: int = 200
) -> BatchPublishReport:
    """Publish ``batches`` into the stream port, ``chunk`` messages per publish round."""
    started = time.perf_counter()
    duplicates = 0
    for i in range(0, len(batches), chunk):
        results = await stream.publish_batch(batch_messages(batches[i : i + chunk]))
        duplicates += sum(1 for r in results if r.duplicate)
    return BatchPublishReport(
        messages=len(batches),
        events=sum(len(b.events) for b in batches),
        seconds=time.perf_counter() - started,
        duplicates=duplicates,
    )
