"""The delivery's fast paths pinned to the exact, per-row paths they stand for.

* the fast decoder (:mod:`abasto.delivery.fastdecode`): its types are the contract's but for the two
  checks it moves out (``sku`` per distinct value, ``event_time`` aware); it returns the contract
  decoder's values, or None whenever the contract decoder rejects anything;
* :func:`~abasto.delivery.rows.decode_batch` (columns built per payload type through numpy,
  event times as integer microseconds) equals the per-row decoder it replaced (kept below as
  :func:`reference_decode`): the same partitions, tables, Parquet bytes and counters, on mixed
  inputs built to hit every path;
* the vectorised dedup (:func:`~abasto.delivery.dedup.keys_of`, the per-device fast path of
  ``drop_written``/``keep_recorded``) equals the per-row selection.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import random
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abasto.contracts.batches import (
    MAX_BATCH_BYTES,
    SCHEMA_BATCH_V1,
    DeviceBatch,
    decode_batch_record,
    is_batch,
)
from abasto.contracts.events import decode_event
from abasto.delivery import durable
from abasto.delivery.dedup import (
    Runs,
    WrittenKeys,
    _filter,
    _merge,
    drop_written,
    keep_recorded,
    keys_of,
)
from abasto.delivery.fastdecode import FastBatch, SkuCheck, decode_valid_batch
from abasto.delivery.layout import partition_of
from abasto.delivery.rows import POS_EVENTS_SCHEMA, DecodedBatch, RawMessage, _instants, decode_batch
from abasto.errors import InvalidEventError
from abasto.lake.storage import join_uri

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SKUS = ["COLA-600-NR", "AGUA-1L", "X.y:z_9-", "Z" * 64]
BAD_SKUS = ["bad sku", "COLA\n", "", "Z" * 65, "ñandú", "a/b"]
ZONES = ["Z", "+00:00", "+05:30", "-03:00", "+14:00", "-12:00"]
PAYLOAD_COLUMNS = (
    "sku",
    "qty",
    "price",
    "on_hand",
    "order_id",
    "door_openings",
    "temperature_c",
    "battery_mv",
)


# --- the fast decoder's types are the contract's ---------------------------------------------
def _shape(t: Any, relaxed: bool = False) -> Any:
    """A comparable description of a msgspec type; ``relaxed``: with the fast decoder's two
    relaxations (``sku`` any string, ``event_time`` aware)."""
    if isinstance(t, mi.StructType):
        fields = []
        for f in t.fields:
            ftype = _shape(f.type, relaxed)
            if relaxed and f.name == "sku":
                ftype = _shape(mi.StrType())
            if relaxed and f.name == "event_time":
                ftype = _shape(mi.DateTimeType(tz=True))
            fields.append(
                (f.name, f.encode_name, ftype, f.required, repr(f.default), repr(f.default_factory))
            )
        return ("struct", t.tag_field, t.tag, t.array_like, t.forbid_unknown_fields, tuple(fields))
    if isinstance(t, mi.UnionType):
        return ("union", tuple(_shape(x, relaxed) for x in t.types))
    if isinstance(t, mi.ListType):
        return ("list", _shape(t.item_type, relaxed), t.min_length, t.max_length)
    return repr(t)


def test_the_fast_decoder_types_are_the_contract_types_but_for_its_two_relaxations() -> None:
    assert _shape(mi.type_info(FastBatch)) == _shape(mi.type_info(DeviceBatch), relaxed=True)
    assert _shape(mi.type_info(FastBatch)) != _shape(mi.type_info(DeviceBatch))


# --- random device traffic --------------------------------------------------------------------
def iso(t: datetime, zone: str) -> str:
    if zone == "Z":
        return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    sign = 1 if zone[0] == "+" else -1
    offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return t.astimezone(timezone(offset)).strftime("%Y-%m-%dT%H:%M:%S.%f") + zone


def random_payload(r: random.Random) -> dict[str, Any]:
    kind = r.randrange(5)
    if kind == 0:
        return {
            "type": "sale",
            "sku": r.choice(SKUS),
            "qty": r.randint(1, 9),
            "price": r.choice([16.0, 0.0, 12]),
        }
    if kind == 1:
        return {"type": "stock", "sku": r.choice(SKUS), "on_hand": r.randint(0, 1_000_000)}
    if kind == 2:
        doc: dict[str, Any] = {"type": "delivery", "sku": r.choice(SKUS), "qty": r.randint(1, 300)}
        if r.random() < 0.5:
            doc["order_id"] = r.choice(["PO-1", None, "ü-2"])
        return doc
    if kind == 3:
        return {
            "type": "cooler",
            "door_openings": r.randint(0, 30),
            "temperature_c": r.choice([4.5, -30, 60]),
        }
    doc = {"type": "heartbeat"}
    if r.random() < 0.7:
        doc["battery_mv"] = r.choice([3700, None, 0, 100_000, -5, 100_001, 2**31])
    return doc


def random_time(r: random.Random, now: datetime) -> datetime:
    if r.random() < 0.2:  # on an hour boundary, or just before it
        hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=r.randint(-30, 0))
        return hour - timedelta(microseconds=r.choice([0, 1, 999_999]))
    return now + timedelta(seconds=r.uniform(-3 * 86_400, 600), microseconds=r.randrange(1_000_000))


def corrupt(r: random.Random, event: dict[str, Any]) -> None:
    """One defect that makes the contract reject the event (or, last, one it accepts)."""
    kind = r.randrange(8)
    if kind == 0:
        event["event_time"] = event["event_time"][:19]  # naive
    elif kind == 1:
        event["event_time"] = iso(NOW + timedelta(minutes=r.choice([10.001, 11, 600])), r.choice(ZONES))
    elif kind == 2:
        event["payload"] = {"type": "stock", "sku": r.choice(BAD_SKUS), "on_hand": 1}
    elif kind == 3:
        event["payload"]["bogus"] = 1
    elif kind == 4:
        event["payload"] = {"type": "sale", "sku": "A", "qty": 1, "price": 1.0, "on_hand": None}
    elif kind == 5:
        event["seq"] = -1
    elif kind == 6:
        event["payload"] = {"type": "cooler", "door_openings": 1, "temperature_c": 60.5}
    else:
        event["event_time"] = iso(NOW + timedelta(minutes=10), "Z")  # at the limit: valid


class Traffic:
    """Raw messages of three devices: single events, batched records, copies, broken ones."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        # small seqs, and large ones: past 2**32 (the dedup's two sort keys), up to the int64 bound
        starts = [0, 5, 999_990, 2**32 - 3, 2**63 - 10]
        self.next_seq = {f"dev-S000{i}-1": self.r.choice(starts) for i in (1, 2, 3)}
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def event(self, device: str) -> dict[str, Any]:
        r = self.r
        seq = self.next_seq[device]
        self.next_seq[device] = min(seq + r.choice([1, 1, 2, 5]), 2**63 - 1)
        doc = {
            "seq": seq,
            "event_time": iso(random_time(r, NOW), r.choice(ZONES)),
            "payload": random_payload(r),
        }
        self.sent.append((device, doc))
        return doc

    def message(self) -> bytes:
        r = self.r
        device = r.choice(list(self.next_seq))
        store = "S000" + device[7]
        x = r.random()
        if x < 0.25:  # a single event, maybe a copy
            if self.sent and r.random() < 0.3:
                device, doc = r.choice(self.sent)
                store = "S000" + device[7]
            else:
                doc = self.event(device)
            return json.dumps(
                {"schema": "abasto.pos/v1", "device_id": device, "store_id": store, **doc}
            ).encode()
        if x < 0.32:  # a broken envelope
            return r.choice(
                [
                    b'{"schema":"abasto.pos.batch/v1","events":[]}',
                    b'{"schema":"abasto.pos.batch/v1","device_id":"d","store_id":"s","events":[{"seq":1,',
                    json.dumps(
                        {
                            "schema": SCHEMA_BATCH_V1,
                            "device_id": "bad id",
                            "store_id": store,
                            "events": [self.event(device)],
                        }
                    ).encode(),
                    b'{"schema":"abasto.pos.batch/v1"' + b" " * MAX_BATCH_BYTES + b"}",
                ]
            )
        events = [self.event(device) for _ in range(r.choice([1, 2, 8, 30]))]
        mine = [doc for d, doc in self.sent if d == device]
        if r.random() < 0.25:  # copies of earlier events, inside the record
            at = r.randrange(len(events) + 1)
            events[at:at] = [
                json.loads(json.dumps(e)) for e in r.sample(mine, min(len(mine), r.randint(1, 4)))
            ]
        if r.random() < 0.1:
            events.append(json.loads(json.dumps(r.choice(events))))
        if r.random() < 0.25:
            for e in r.sample(events, r.randint(1, min(3, len(events)))):
                corrupt(r, e)
        return json.dumps(
            {"schema": SCHEMA_BATCH_V1, "device_id": device, "store_id": store, "events": events}
        ).encode()

    def messages(self, n: int) -> list[RawMessage]:
        msgs = [RawMessage(i + 1, f"pos.S0001.dev-{i}", self.message()) for i in range(n)]
        self.r.shuffle(msgs)
        return msgs


# --- the per-row decoder the fast paths replaced ------------------------------------------------
def reference_decode(messages: Iterable[RawMessage], *, received_at: datetime) -> DecodedBatch:
    """``decode_batch`` as it was: a Python list per column, a getattr per payload column and row,
    Arrow converting the datetimes, each message through the contract's decoders."""
    values: dict[str, list[object]] = {f.name: [] for f in POS_EVENTS_SCHEMA}
    hours: list[int] = []
    out = DecodedBatch()
    seen: set[tuple[str, int]] = set()

    def add(
        msg: RawMessage, device: str, store: str, seq: int, at: datetime, p: Any, schema: str, i: int | None
    ) -> None:
        row = {"stream_seq": msg.stream_seq, "subject": msg.subject, "device_id": device, "store_id": store}
        row |= {"seq": seq, "event_time": at, "type": type(p).__struct_config__.tag}
        row |= {name: getattr(p, name, None) for name in PAYLOAD_COLUMNS}
        row |= {"schema": schema, "received_at": received_at, "batch_index": i}
        for name, value in row.items():
            values[name].append(value)
        hours.append(int(at.timestamp() // 3600))

    for msg in sorted(messages, key=lambda m: m.stream_seq):
        if is_batch(msg.data):
            try:
                record = decode_batch_record(msg.data, now=received_at)
            except InvalidEventError as exc:
                out.invalid[exc.reason] += 1
                continue
            for rejected in record.rejected:
                out.invalid[rejected.reason] += 1
            for i, e in zip(record.indexes, record.events, strict=True):
                if (record.device_id, e.seq) in seen:
                    out.duplicates += 1
                    continue
                seen.add((record.device_id, e.seq))
                add(
                    msg, record.device_id, record.store_id, e.seq, e.event_time, e.payload, SCHEMA_BATCH_V1, i
                )
            continue
        try:
            event = decode_event(msg.data, now=received_at)
        except InvalidEventError as exc:
            out.invalid[exc.reason] += 1
            continue
        if (event.device_id, event.seq) in seen:
            out.duplicates += 1
            continue
        seen.add((event.device_id, event.seq))
        add(
            msg,
            event.device_id,
            event.store_id,
            event.seq,
            event.event_time,
            event.payload,
            event.schema,
            None,
        )
    if hours:
        table = pa.Table.from_pydict(values, schema=POS_EVENTS_SCHEMA)
        order = np.argsort(np.asarray(hours), kind="stable")
        table = table.take(pa.array(order))
        ordered = [hours[i] for i in order]
        lo = 0
        for hour, group in itertools.groupby(ordered):
            n = len(list(group))
            out.partitions[partition_of(datetime.fromtimestamp(hour * 3600, UTC))] = table.slice(lo, n)
            lo += n
        out.partitions = dict(sorted(out.partitions.items()))
    return out


def parquet_sha(table: pa.Table) -> str:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def assert_same_batch(fast: DecodedBatch, exact: DecodedBatch, *, parquet: bool = True) -> None:
    """The same partitions, tables (schema, values) and counters; ``parquet``: and file bytes."""
    assert list(fast.partitions) == list(exact.partitions)
    for part, table in fast.partitions.items():
        assert table.schema.equals(exact.partitions[part].schema, check_metadata=True)
        assert table.equals(exact.partitions[part]), part
        if parquet:
            assert parquet_sha(table) == parquet_sha(exact.partitions[part]), part
    assert list(fast.invalid.items()) == list(exact.invalid.items())
    assert fast.duplicates == exact.duplicates


@pytest.mark.parametrize("seed", range(40))
def test_decode_batch_equals_the_per_row_decoder_on_mixed_traffic(seed: int) -> None:
    msgs = Traffic(seed).messages(random.Random(seed).randint(1, 30))
    assert_same_batch(decode_batch(msgs, received_at=NOW), reference_decode(msgs, received_at=NOW))


@pytest.mark.parametrize(
    "received_at",
    [
        NOW.astimezone(timezone(timedelta(hours=-5))),  # aware, not UTC
        NOW.replace(tzinfo=None),  # naive: every record through the contract's decoder
    ],
)
def test_decode_batch_equals_the_per_row_decoder_whatever_the_received_at_zone(received_at: datetime) -> None:
    msgs = Traffic(7).messages(25)
    if received_at.tzinfo is None:
        with pytest.raises(TypeError):  # an aware event time minus a naive instant, as before
            reference_decode(msgs, received_at=received_at)
        with pytest.raises(TypeError):
            decode_batch(msgs, received_at=received_at)
        return
    assert_same_batch(
        decode_batch(msgs, received_at=received_at), reference_decode(msgs, received_at=received_at)
    )


@pytest.mark.parametrize(
    ("times", "received_at"),
    [
        (["0001-01-01T00:00:00Z", "0001-01-01T12:59:59.999999+01:00"], NOW),
        (
            ["9999-12-31T23:59:59.999999Z", "9999-12-31T20:00:00-03:00"],
            datetime(9999, 12, 31, 23, 55, tzinfo=UTC),
        ),
        (
            ["9999-12-31T22:59:59.999999Z", "9999-12-31T20:00:00-03:00"],
            datetime(9999, 12, 31, 23, 55, tzinfo=UTC),
        ),
        (
            ["2038-01-19T03:14:07.999999Z", "1901-12-13T20:45:52.000001Z", "1970-01-01T00:00:00Z"],
            datetime(2038, 1, 19, 4, tzinfo=UTC),
        ),
    ],
)
def test_far_past_and_far_future_times_partition_as_before(times: list[str], received_at: datetime) -> None:
    events = [{"seq": i, "event_time": t, "payload": {"type": "heartbeat"}} for i, t in enumerate(times)]
    doc = {"schema": SCHEMA_BATCH_V1, "device_id": "d", "store_id": "s", "events": events}
    msgs = [RawMessage(1, "pos.s.d", json.dumps(doc).encode())]
    try:
        exact = reference_decode(msgs, received_at=received_at)
    except ValueError:  # 9999-12-31T23:59:59.999999Z: its float timestamp rounds up to year 10000
        with pytest.raises(ValueError, match="year 10000"):
            decode_batch(msgs, received_at=received_at)
        return
    fast = decode_batch(msgs, received_at=received_at)
    assert fast.rows == len(times)
    assert_same_batch(fast, exact)


# --- the fast decoder returns the contract's values, or None ----------------------------------------
def _valid_doc() -> dict[str, Any]:
    t = Traffic(3)
    events = [t.event("dev-S0001-1") for _ in range(12)]
    return {"schema": SCHEMA_BATCH_V1, "device_id": "dev-S0001-1", "store_id": "S0001", "events": events}


def _defects() -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [("valid", None)]
    out += [
        (f"sku {s!r}", ("payload", {"type": "sale", "sku": s, "qty": 1, "price": 1.0}))
        for s in [*BAD_SKUS, "Z" * 64]
    ]
    out += [
        ("naive", ("event_time", "2026-03-02T11:00:00")),
        ("future", ("event_time", "2026-03-02T12:10:00.000001Z")),
        ("at the limit", ("event_time", "2026-03-02T12:10:00Z")),
        ("offset future", ("event_time", "2026-03-02T17:41:00+05:30")),
        ("unknown field", ("payload", {"type": "heartbeat", "battery_mv": 1, "x": 1})),
        (
            "a column of another type",
            ("payload", {"type": "sale", "sku": "A", "qty": 1, "price": 1.0, "on_hand": 3}),
        ),
        ("kind attribute", ("payload", {"type": "heartbeat", "code": 1})),
        ("qty 0", ("payload", {"type": "delivery", "sku": "A", "qty": 0})),
        ("too cold", ("payload", {"type": "cooler", "door_openings": 0, "temperature_c": -30.5})),
        ("seq", ("seq", 1_000_001)),
        ("envelope", ("device_id", "bad id")),
        ("no events", ("events", [])),
        (
            "too many",
            (
                "events",
                [{"seq": 1, "event_time": "2026-03-02T11:00:00Z", "payload": {"type": "heartbeat"}}] * 1001,
            ),
        ),
        ("oversized", ("device_id", "x" * MAX_BATCH_BYTES)),
    ]
    return out


@pytest.mark.parametrize(("name", "defect"), _defects(), ids=[n for n, _ in _defects()])
def test_the_fast_decoder_returns_the_contract_values_or_none(name: str, defect: Any) -> None:
    doc = _valid_doc()
    if defect is not None:
        field, value = defect
        if field in ("device_id", "events"):
            doc[field] = value
        else:
            doc["events"][5][field] = value
    data = json.dumps(doc).encode()
    try:
        record = decode_batch_record(data, now=NOW)
    except InvalidEventError:
        record = None
    fast = decode_valid_batch(data, NOW, SkuCheck())
    if record is None or record.rejected:
        assert fast is None
        return
    assert fast is not None
    assert (fast.device_id, fast.store_id) == (record.device_id, record.store_id)
    assert fast.seqs == [e.seq for e in record.events]
    assert fast.times == [e.event_time for e in record.events]
    assert [(p.code, msgspec.structs.asdict(p)) for p in fast.payloads] == [
        (fast.payloads[i].code, msgspec.structs.asdict(e.payload)) for i, e in enumerate(record.events)
    ]
    assert [type(p).__struct_config__.tag for p in fast.payloads] == [
        type(e.payload).__struct_config__.tag for e in record.events
    ]


def test_a_sku_is_checked_by_the_contract_id_type_once_per_batch() -> None:
    check = SkuCheck()
    assert check.all_valid({"A", None}) and "A" in check.valid
    assert not check.all_valid({"A", "a b"}) and "a b" not in check.valid


# --- times: integer microseconds and hours as Arrow and Python make them ------------------------
offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda m: timezone(timedelta(minutes=m))
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets),
        min_size=1,
    )
)
def test_microseconds_and_hours_equal_arrow_and_python(times: list[datetime]) -> None:
    micros, hours = _instants(times)
    assert micros.tolist() == pa.array(times, pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist()
    assert hours.tolist() == [int(t.timestamp() // 3600) for t in times]


@pytest.mark.parametrize(
    "times",
    [
        [datetime(2026, 3, 2, 12, 0, 0, 999_999, tzinfo=timezone(timedelta(seconds=1, microseconds=5)))],
        [datetime(9999, 12, 31, 22, 59, 59, 999_999, tzinfo=UTC), datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC)],
        [
            datetime(2255, 6, 5, 23, 47, 34, 740_991, tzinfo=UTC),
            datetime(1685, 7, 29, 0, 12, 25, 259_009, tzinfo=UTC),
        ],
        [datetime(2026, 3, 2, 12, 0), datetime(2026, 3, 2, 13, 0)],  # naive: as Arrow and Python make them
    ],
)
def test_odd_zones_far_times_and_naive_times_convert_as_before(times: list[datetime]) -> None:
    micros, hours = _instants(times)
    assert micros.tolist() == pa.array(times, pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist()
    assert hours.tolist() == [int(t.timestamp() // 3600) for t in times]


# --- dedup: the per-device fast path equals the per-row selection -------------------------------
def _per_row_drop(batch: DecodedBatch, written: WrittenKeys) -> Any:
    return _filter(
        batch, lambda d, s: not written.contains(d, s), written.beyond_horizon, lambda d, lo, hi: False
    )


def _per_row_keep(batch: DecodedBatch, runs: Runs) -> Any:
    recorded = WrittenKeys(window=2**62)
    recorded.add(runs)
    return _filter(batch, recorded.contains, lambda d, s: False, lambda d, lo, hi: False)


def _reference_keys(batch: DecodedBatch) -> Runs:
    seqs: dict[str, list[int]] = {}
    for table in batch.partitions.values():
        for d, s in zip(table["device_id"].to_pylist(), table["seq"].to_pylist(), strict=True):
            seqs.setdefault(d, []).append(s)
    return {d: _merge((s, s) for s in seqs[d]) for d in sorted(seqs)}


def _assert_same_selection(fast: Any, exact: Any) -> None:
    assert (fast.dropped, fast.beyond_horizon) == (exact.dropped, exact.beyond_horizon)
    assert_same_batch(fast.batch, exact.batch, parquet=False)  # the rows of the same tables


@pytest.mark.parametrize("seed", range(20))
def test_the_dedup_fast_path_equals_the_per_row_selection(seed: int) -> None:
    r = random.Random(seed)
    batch = decode_batch(Traffic(seed).messages(r.randint(1, 30)), received_at=NOW)
    keys = keys_of(batch)
    assert keys == _reference_keys(batch) and list(keys) == list(_reference_keys(batch))
    for trial in range(6):
        written = WrittenKeys(window=r.choice([1, 3, 10, 100_000]))
        if trial:  # some of the batch's keys (so some devices are clean, others not), and others
            for device, runs in keys.items():
                if r.random() < 0.5:
                    picked = r.sample(runs, max(1, len(runs) // r.choice([1, 3])))
                    written.add(
                        {device: [(max(0, s - r.randint(0, 2)), e + r.randint(-1, 2)) for s, e in picked]}
                    )
            if r.random() < 0.3:
                written.add({"dev-S0002-1": [(r.randint(0, 1_000_000), 1_000_000)]})
        selection = drop_written(batch, written)
        _assert_same_selection(selection, _per_row_drop(batch, written))
        kept = keys_of(selection.batch)
        _assert_same_selection(keep_recorded(batch, kept), _per_row_keep(batch, kept))
        some = {d: runs[: r.randint(0, len(runs))] for d, runs in keys.items() if r.random() < 0.7}
        _assert_same_selection(keep_recorded(batch, some), _per_row_keep(batch, some))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 60), st.integers(0, 5)), max_size=6),
    st.integers(1, 40),
    st.integers(0, 70),
    st.integers(0, 10),
)
def test_range_questions_answer_as_the_per_seq_ones(
    runs: list[tuple[int, int]], window: int, lo: int, width: int
) -> None:
    keys = WrittenKeys(window=window)
    keys.add({"d": [(s, s + w) for s, w in runs]})
    hi = lo + width
    seqs = range(lo, hi + 1)
    clear = not any(keys.contains("d", s) or keys.beyond_horizon("d", s) for s in seqs)
    assert keys.clear_of("d", lo, hi) == clear
    assert keys.clear_of("other", lo, hi)
    unbounded = WrittenKeys(window=2**62)
    unbounded.add({"d": [(s, s + w) for s, w in runs]})
    assert unbounded.covers("d", lo, hi) == all(unbounded.contains("d", s) for s in seqs)
    assert not unbounded.covers("other", lo, hi)


def test_an_empty_batch_has_no_keys_and_selects_nothing() -> None:
    empty = DecodedBatch(invalid=Counter({"malformed_json": 1}))
    assert keys_of(empty) == {}
    selection = drop_written(empty, WrittenKeys())
    assert selection.batch.partitions == {} and selection.batch.invalid == {"malformed_json": 1}


def test_partition_directories_are_made_with_one_sync_per_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    monkeypatch.setattr(durable, "_fsync_dir", synced.append)
    parts = [f"date=2026-03-0{d}/hour={h:02d}" for d in (1, 2) for h in range(24)]
    durable.make_dirs_durable(join_uri(tmp_path.as_uri(), "t", p) for p in parts)
    assert all((tmp_path / "t" / p).is_dir() for p in parts)
    root = str(tmp_path / "t")
    assert sorted(synced) == sorted(
        [str(tmp_path), root, f"{root}/date=2026-03-01", f"{root}/date=2026-03-02"]
    )
    synced.clear()
    durable.make_dirs_durable(join_uri(tmp_path.as_uri(), "t", p) for p in parts)
    assert synced == []  # nothing new, nothing to sync
