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

Cost. A batched record whose events are all valid is decoded by the delivery's fast decoder
(:mod:`abasto.delivery.fastdecode`: the contract's values, or None and then the contract's own
decoder), and its events are kept as a few lists per message. The columns are built once per
batch: event times as exact integer microseconds (``t - epoch``) and their hours from the same
float ``t.timestamp()`` as always, payload columns per payload type through numpy, message-level
values repeated by index. The rows, tables and Parquet bytes are those of the per-row decoder this
replaced (``tests/delivery/test_fast_paths.py`` keeps it as the reference).
"""

from __future__ import annotations

import itertools
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter, itemgetter
from typing import Final

import msgspec
import numpy as np
import pyarrow as pa

from abasto.contracts.batches import SCHEMA_BATCH_V1, decode_batch_record, is_batch
from abasto.contracts.events import (
    CoolerTelemetry,
    DeliveryReceipt,
    Heartbeat,
    Payload,
    SaleScan,
    StockReading,
    decode_event,
)
from abasto.delivery.fastdecode import (
    KINDS,
    MIRRORS,
    FastCooler,
    FastDelivery,
    FastHeartbeat,
    FastPayload,
    FastSale,
    FastStock,
    SkuCheck,
    decode_valid_batch,
)
from abasto.delivery.layout import partition_of
from abasto.errors import InvalidEventError

__all__ = ["DICTIONARY_COLUMNS", "POS_EVENTS_SCHEMA", "DecodedBatch", "RawMessage", "decode_batch"]

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

#: the columns the raw files dictionary-encode: the strings (few distinct values a file: stores,
#: devices, SKUs, types). Numbers and times are written plain: their dictionaries cost more CPU
#: than they save bytes (on the benchmark's files: ~20 % less write CPU, 10 % fewer bytes, reads
#: no slower)
DICTIONARY_COLUMNS: Final = tuple(f.name for f in POS_EVENTS_SCHEMA if f.type == pa.string())
#: the raw files' codec: Snappy, as Firehose's Parquet conversion writes by default. The raw zone is
#: written once and read by the curate job, which writes the curated tables with zstd; on the
#: benchmark's files Snappy costs half zstd's encoding CPU for ~45 % more bytes
COMPRESSION: Final = "snappy"


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
_CODE: Final = attrgetter("code")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DAYS: Final = attrgetter("days")
_SECONDS: Final = attrgetter("seconds")
_MICROS: Final = attrgetter("microseconds")
_MICROSECOND: Final = attrgetter("microsecond")

#: the contract's payload types → the delivery's mirrors (every payload column an attribute)
_MIRROR: Final[dict[type, type[FastPayload]]] = {
    SaleScan: FastSale,
    StockReading: FastStock,
    DeliveryReceipt: FastDelivery,
    CoolerTelemetry: FastCooler,
    Heartbeat: FastHeartbeat,
}


def _mirror(p: Payload) -> FastPayload:
    """The same values as the delivery's mirror type."""
    return _MIRROR[type(p)](**msgspec.structs.asdict(p))


class _Rows:
    """The rows of a batch in stream order, gathered a message at a time: what is the same for
    every row of a message once, the events' values as lists. :meth:`partitions` builds the Arrow
    columns in one go and splits the rows by hour with a stable sort, so each partition keeps the
    stream order."""

    def __init__(self) -> None:
        # one entry per message with rows
        self.stream_seqs: list[int] = []
        self.subjects: list[str] = []
        self.devices: list[str] = []
        self.stores: list[str] = []
        self.schemas: list[str] = []
        self.counts: list[int] = []
        # one entry per row
        self.seqs: list[int] = []
        self.times: list[datetime] = []
        self.payloads: list[FastPayload] = []
        #: position in the batched record, -1 for a single event
        self.indexes: list[int] = []

    def add(
        self,
        msg: RawMessage,
        device_id: str,
        store_id: str,
        schema: str,
        seqs: list[int],
        times: list[datetime],
        payloads: list[FastPayload],
        indexes: Sequence[int],
    ) -> None:
        self.stream_seqs.append(msg.stream_seq)
        self.subjects.append(msg.subject)
        self.devices.append(device_id)
        self.stores.append(store_id)
        self.schemas.append(schema)
        self.counts.append(len(seqs))
        self.seqs += seqs
        self.times += times
        self.payloads += payloads
        self.indexes += indexes

    def partitions(self, received_at: datetime) -> dict[str, pa.Table]:
        """The rows by partition (sorted by partition name), each in stream order."""
        n = len(self.seqs)
        if not n:
            return {}
        micros, hours = _instants(self.times)
        # rows by hour, in stream order within an hour: every column is built in this order
        order = np.argsort(hours, kind="stable")
        ordered = hours[order]
        per_message = pa.array(np.repeat(np.arange(len(self.counts)), self.counts)[order])
        indexes = np.asarray(self.indexes, dtype=np.int32)[order]
        columns: dict[str, pa.Array] = {
            "stream_seq": pa.array(np.asarray(self.stream_seqs, dtype=np.int64)).take(per_message),
            "subject": pa.array(self.subjects, pa.string()).take(per_message),
            "device_id": pa.array(self.devices, pa.string()).take(per_message),
            "store_id": pa.array(self.stores, pa.string()).take(per_message),
            "seq": pa.array(np.asarray(self.seqs, dtype=np.int64)[order]),
            "event_time": pa.array(micros[order], _TS),
            **_payload_columns(self.payloads, order),
            "schema": pa.array(self.schemas, pa.string()).take(per_message),
            "received_at": pa.array([received_at], _TS).take(pa.array(np.zeros(n, dtype=np.int64))),
            "batch_index": pa.array(indexes, pa.int32(), mask=indexes < 0),
        }
        table = pa.Table.from_arrays([columns[f.name] for f in POS_EVENTS_SCHEMA], schema=POS_EVENTS_SCHEMA)
        starts = np.flatnonzero(np.diff(ordered)) + 1
        bounds = [0, *starts.tolist(), n]
        out: dict[str, pa.Table] = {}
        for lo, hi in itertools.pairwise(bounds):
            hour = datetime.fromtimestamp(int(ordered[lo]) * 3600, UTC)
            out[partition_of(hour)] = table.slice(lo, hi - lo)
        return dict(sorted(out.items()))


def _payload_columns(payloads: list[FastPayload], order: np.ndarray) -> dict[str, pa.Array]:
    """The ``type`` and payload columns of the rows ``order`` of ``payloads``.

    The payloads are grouped by type (a stable sort) and a column reads only the groups whose type
    has it as a field: numbers through numpy, null elsewhere; strings, and a group holding None or
    a number beyond the column's type, as Python lists that Arrow converts as it did before.
    """
    n = len(payloads)
    codes = np.fromiter(map(_CODE, payloads), dtype=np.int8, count=n)
    by_type = np.argsort(codes, kind="stable")
    grouped: Sequence[FastPayload] = itemgetter(*by_type.tolist())(payloads) if n > 1 else payloads
    # where each row of ``order`` sits in ``grouped``
    at = np.empty(n, dtype=np.int64)
    at[by_type] = np.arange(n)
    at = at[order]
    ends = np.cumsum(np.bincount(codes, minlength=len(MIRRORS))).tolist()
    spans = [(cls, lo, hi) for cls, lo, hi in zip(MIRRORS, [0, *ends], ends, strict=False) if hi > lo]
    out: dict[str, pa.Array] = {"type": pa.array(KINDS, pa.string()).take(pa.array(codes[order]))}
    for name in _PAYLOAD_COLUMNS:
        arrow_type = POS_EVENTS_SCHEMA.field(name).type
        get = attrgetter(name)
        having = [(lo, hi) for cls, lo, hi in spans if name in cls.__struct_fields__]
        column = None
        if not pa.types.is_string(arrow_type):
            column = _numbers(grouped, having, get, arrow_type, at)
        if column is None:
            pieces = [
                pa.array(list(map(get, grouped[lo:hi])), arrow_type)
                if name in cls.__struct_fields__
                else pa.nulls(hi - lo, arrow_type)
                for cls, lo, hi in spans
            ]
            column = pa.concat_arrays(pieces).take(pa.array(at))
        out[name] = column
    return out


def _numbers(
    grouped: Sequence[FastPayload],
    having: list[tuple[int, int]],
    get: Callable[[FastPayload], object],
    arrow_type: pa.DataType,
    at: np.ndarray,
) -> pa.Array | None:
    """A numeric column through numpy; None if a value is None or beyond the column's type."""
    dtype = np.dtype(arrow_type.to_pandas_dtype())
    values = np.zeros(len(grouped), dtype=dtype)
    valid = np.zeros(len(grouped), dtype=np.bool_)
    for lo, hi in having:
        try:
            values[lo:hi] = np.fromiter(map(get, grouped[lo:hi]), dtype=dtype, count=hi - lo)
        except (TypeError, ValueError, OverflowError):
            return None
        valid[lo:hi] = True
    return pa.array(values[at], arrow_type, mask=~valid[at])


def _instants(times: list[datetime]) -> tuple[np.ndarray, np.ndarray]:
    """Each time as microseconds since the epoch (the value Arrow converts it to) and its hour
    number, ``int(t.timestamp() // 3600)`` (as rows were always partitioned: from the float).

    ``t - epoch`` is exact, and it is Arrow's value unless the time zone's offset has a fraction
    of a second (Arrow drops it; msgspec decodes none: ``Z`` or ``±HH:MM``): then Arrow converts
    them. ``t.timestamp()`` is ``t - epoch`` in microseconds divided by 10**6, rounded once: the
    same division in numpy while the count converts exactly to a float (below 2**53 µs, years
    1685-2255), ``t.timestamp()`` itself beyond.
    """
    n = len(times)
    try:
        deltas = list(map(operator.sub, times, itertools.repeat(_EPOCH, n)))
    except TypeError:  # a naive time (neither decoder lets one through)
        stamps = np.fromiter(map(datetime.timestamp, times), dtype=np.float64, count=n)
        return _arrow_micros(times), np.floor_divide(stamps, 3600.0).astype(np.int64)
    days = np.fromiter(map(_DAYS, deltas), dtype=np.int64, count=n)
    seconds = np.fromiter(map(_SECONDS, deltas), dtype=np.int64, count=n)
    fraction = np.fromiter(map(_MICROS, deltas), dtype=np.int64, count=n)
    micros = (days * 86_400 + seconds) * 1_000_000 + fraction
    stamps = micros.astype(np.float64) / 1e6
    far = np.flatnonzero(np.abs(micros) >= 1 << 53)
    if len(far):
        stamps[far] = [times[i].timestamp() for i in far.tolist()]
    hours = np.floor_divide(stamps, 3600.0).astype(np.int64)
    if not np.array_equal(np.fromiter(map(_MICROSECOND, times), dtype=np.int64, count=n), fraction):
        micros = _arrow_micros(times)  # an offset with a fraction of a second
    return micros, hours


def _arrow_micros(times: list[datetime]) -> np.ndarray:
    return np.asarray(pa.array(times, _TS).cast(pa.int64()))


def decode_batch(messages: Iterable[RawMessage], *, received_at: datetime) -> DecodedBatch:
    """Decode ``messages`` (any order) into per-partition tables sorted by stream sequence."""
    out = DecodedBatch()
    #: device → seqs kept so far in this batch
    seen: dict[str, set[int]] = {}
    rows = _Rows()
    # the fast decoder compares event times with an aware instant only
    skus = SkuCheck() if received_at.utcoffset() is not None else None
    for msg in sorted(messages, key=lambda m: m.stream_seq):
        if is_batch(msg.data):
            _add_batch(msg, received_at, out, seen, rows, skus)
            continue
        try:
            event = decode_event(msg.data, now=received_at)
        except InvalidEventError as exc:
            out.invalid[exc.reason] += 1
            continue
        kept = seen.setdefault(event.device_id, set())
        if event.seq in kept:
            out.duplicates += 1
            continue
        kept.add(event.seq)
        rows.add(
            msg,
            event.device_id,
            event.store_id,
            event.schema,
            [event.seq],
            [event.event_time],
            [_mirror(event.payload)],
            [-1],
        )
    out.partitions = rows.partitions(received_at)
    return out


def _add_batch(
    msg: RawMessage,
    received_at: datetime,
    out: DecodedBatch,
    seen: dict[str, set[int]],
    rows: _Rows,
    skus: SkuCheck | None,
) -> None:
    """The rows of one batched record (its invalid events counted and left out)."""
    fast = None if skus is None else decode_valid_batch(msg.data, received_at, skus)
    indexes: list[int]
    if fast is not None:
        device, store = fast.device_id, fast.store_id
        seqs, times, payloads = fast.seqs, fast.times, fast.payloads
        indexes = list(range(len(seqs)))
    else:
        try:
            record = decode_batch_record(msg.data, now=received_at)
        except InvalidEventError as exc:
            out.invalid[exc.reason] += 1
            return
        for rejected in record.rejected:
            out.invalid[rejected.reason] += 1
        device, store = record.device_id, record.store_id
        seqs = [e.seq for e in record.events]
        times = [e.event_time for e in record.events]
        payloads = [_mirror(e.payload) for e in record.events]
        indexes = list(record.indexes)
    kept = seen.setdefault(device, set())
    distinct = set(seqs)
    if len(distinct) == len(seqs) and kept.isdisjoint(distinct):
        kept |= distinct
    else:
        picked: list[int] = []
        for k, seq in enumerate(seqs):
            if seq in kept:
                out.duplicates += 1
                continue
            kept.add(seq)
            picked.append(k)
        seqs = [seqs[k] for k in picked]
        times = [times[k] for k in picked]
        payloads = [payloads[k] for k in picked]
        indexes = [indexes[k] for k in picked]
    if seqs:
        rows.add(msg, device, store, SCHEMA_BATCH_V1, seqs, times, payloads, indexes)
