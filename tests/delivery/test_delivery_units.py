"""Pure parts of the delivery: layout, rows, ledger, durable writes, config."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from delivery_helpers import T0, events

from abasto.contracts.events import encode_event
from abasto.delivery import DeliveryConfig, Ledger, decode_batch, part_name, partition_of
from abasto.delivery.durable import write_parquet_durable
from abasto.delivery.layout import manifest_name, parse_part_name
from abasto.delivery.ledger import BatchManifest, runs_of
from abasto.delivery.rows import POS_EVENTS_SCHEMA, RawMessage
from abasto.errors import InvalidInputError, TerminalError

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_partition_is_the_utc_hour_of_the_event() -> None:
    mexico = timezone(timedelta(hours=-6))
    assert partition_of(datetime(2026, 3, 1, 20, 30, tzinfo=mexico)) == "date=2026-03-02/hour=02"
    assert partition_of(datetime(2026, 3, 1, 0, 0, tzinfo=UTC)) == "date=2026-03-01/hour=00"
    with pytest.raises(InvalidInputError):
        partition_of(datetime(2026, 3, 1, 0, 0))


def test_part_names_sort_by_sequence_and_round_trip() -> None:
    name = part_name(7, 1234)
    assert name == "part-00000000000000000007-00000000000000001234.parquet"
    assert parse_part_name(name) == (7, 1234)
    assert sorted([part_name(10, 20), part_name(9, 9)]) == [part_name(9, 9), part_name(10, 20)]
    assert manifest_name(1, 2).startswith("batch-")
    for first, last in ((0, 3), (5, 4)):
        with pytest.raises(InvalidInputError):
            part_name(first, last)
    with pytest.raises(InvalidInputError):
        parse_part_name("part-1-2.parquet")


def _raw(seq: int, data: bytes) -> RawMessage:
    return RawMessage(seq, "pos.S0001.dev-S0001-1", data)


def test_decode_batch_flattens_splits_dedups_and_counts_invalid() -> None:
    evs = events(4, start=T0, step=timedelta(hours=1))  # 22:10, 23:10, 00:10 (next day), 01:10
    msgs = [_raw(i + 1, encode_event(e)) for i, e in enumerate(evs)]
    msgs.append(_raw(5, b"{not json"))
    msgs.append(_raw(6, b'{"schema": "abasto.pos/v1"}'))
    msgs.append(_raw(7, encode_event(evs[0])))  # the same event again, later in the stream
    batch = decode_batch(reversed(msgs), received_at=NOW)
    assert sorted(batch.partitions) == [
        "date=2026-03-01/hour=22",
        "date=2026-03-01/hour=23",
        "date=2026-03-02/hour=00",
        "date=2026-03-02/hour=01",
    ]
    assert batch.rows == 4
    assert batch.duplicates == 1
    assert batch.invalid == {"malformed_json": 1, "invalid_field": 1}
    first = batch.partitions["date=2026-03-01/hour=22"]
    assert first.schema == POS_EVENTS_SCHEMA
    row = first.to_pylist()[0]
    assert row["stream_seq"] == 1  # the first copy wins
    assert (row["type"], row["sku"], row["qty"], row["price"]) == ("sale", "COLA-600-NR", 1, 16.0)
    assert row["on_hand"] is None and row["received_at"] == NOW and row["event_time"] == T0
    cooler = batch.partitions["date=2026-03-02/hour=00"].to_pylist()[0]
    assert (cooler["type"], cooler["door_openings"], cooler["temperature_c"]) == ("cooler", 2, 4.5)
    assert cooler["sku"] is None


def test_decode_batch_rejects_far_future_events_against_received_at() -> None:
    future = events(1, start=NOW + timedelta(hours=1))[0]
    batch = decode_batch([_raw(1, encode_event(future))], received_at=NOW)
    assert batch.rows == 0 and batch.invalid == {"future_timestamp": 1}
    later = decode_batch([_raw(1, encode_event(future))], received_at=NOW + timedelta(hours=2))
    assert later.rows == 1


def test_runs_of_compresses_sequences() -> None:
    assert runs_of([7, 1, 2, 3, 3, 9, 8]) == [(1, 3), (7, 9)]
    assert runs_of([]) == []


def _manifest(runs: list[tuple[int, int]]) -> BatchManifest:
    return BatchManifest(
        first_seq=runs[0][0],
        last_seq=runs[-1][1],
        runs=runs,
        messages=sum(e - s + 1 for s, e in runs),
        files={"date=2026-03-01/hour=22/x.parquet": 1},
        received_at=NOW,
        first_digest="0" * 16,
    )


def test_ledger_finds_records_reloads_and_prunes(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path.as_uri())
    a, b = _manifest([(1, 10)]), _manifest([(11, 15), (20, 30)])
    ledger.record(a)
    ledger.record(b)
    assert ledger.find(0) is None and ledger.find(1) == a and ledger.find(10) == a
    assert ledger.find(12) == b and ledger.find(17) is None and ledger.find(30) == b
    with pytest.raises(InvalidInputError, match="already belong"):
        ledger.record(_manifest([(16, 25)]))
    with pytest.raises(InvalidInputError):
        ledger.record(_manifest([(5, 5)]))

    reloaded = Ledger(tmp_path.as_uri())
    assert reloaded.load() == 2 and reloaded.find(25) == b
    assert reloaded.load(stream_first_seq=11) == 1  # a's sequences left the stream: pruned
    assert Ledger(tmp_path.as_uri()).load() == 1


def test_ledger_refuses_a_corrupt_manifest(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path.as_uri())
    ledger.record(_manifest([(1, 2)]))
    (tmp_path / "_delivery" / "batches" / manifest_name(1, 2)).write_text("{")
    with pytest.raises(TerminalError, match="unreadable"):
        Ledger(tmp_path.as_uri()).load()


def test_durable_write_leaves_only_the_final_file(tmp_path: Path) -> None:
    batch = decode_batch([_raw(1, encode_event(events(1)[0]))], received_at=NOW)
    table = next(iter(batch.partitions.values()))
    target = tmp_path / "a" / "b" / "part.parquet"
    write_parquet_durable(table, target.as_uri())
    assert [p.name for p in target.parent.iterdir()] == ["part.parquet"]
    assert pq.read_table(target).equals(table)


def test_config_validation() -> None:
    with pytest.raises(InvalidInputError, match="max_messages"):
        DeliveryConfig(max_messages=0)
    with pytest.raises(InvalidInputError, match="ack_wait_s"):
        DeliveryConfig(max_age_s=30, ack_wait_s=30)
    with pytest.raises(InvalidInputError):
        DeliveryConfig(start_seq=0)
    assert DeliveryConfig(max_messages=10, fetch_batch=5).max_ack_pending == 25
