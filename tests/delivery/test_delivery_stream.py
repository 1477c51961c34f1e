"""The delivery against a real nats-server: partitions, replay, crash recovery, triggers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from delivery_helpers import T0, events, expected_keys, keys, publish, read_table

from abasto.contracts.events import encode_event
from abasto.delivery import BatchManifest, DeliveryConfig, FaultHook, RawDelivery, part_name
from abasto.errors import TerminalError
from abasto.lake.storage import list_files
from abasto.stream.ephemeral import EphemeralNatsServer
from abasto.stream.jetstream import JetStreamEventStream
from abasto.stream.port import EventStream, StreamSpec


def _config(spec: StreamSpec, **overrides: object) -> DeliveryConfig:
    values: dict[str, object] = {
        "stream": spec.name,
        "fetch_timeout_s": 0.2,
        "max_age_s": 5.0,
        "ack_wait_s": 30.0,
    }
    values.update(overrides)
    return DeliveryConfig(**values)  # type: ignore[arg-type]


def _files(raw: Path) -> dict[str, int]:
    """relpath → mtime_ns of the data files."""
    root = raw / "devices" / "pos_events"
    return {
        f.relpath: (root / f.relpath).stat().st_mtime_ns for f in list_files(str(root), suffix=".parquet")
    }


async def test_events_land_in_their_event_hour_partitions(
    stream: EventStream, pos_spec: StreamSpec, tmp_path: Path
) -> None:
    evs = events(12, step=timedelta(minutes=25))  # 22:10 on 1 March → 02:45 on 2 March
    last = await publish(stream, pos_spec, evs)
    delivery = RawDelivery(stream, tmp_path.as_uri(), _config(pos_spec))
    metrics = await delivery.run_until_idle()
    assert (metrics.messages, metrics.rows_written, metrics.batches) == (12, 12, 1)
    name = part_name(1, last)
    assert sorted(_files(tmp_path)) == [
        f"date=2026-03-01/hour=22/{name}",
        f"date=2026-03-01/hour=23/{name}",
        f"date=2026-03-02/hour=00/{name}",
        f"date=2026-03-02/hour=01/{name}",
        f"date=2026-03-02/hour=02/{name}",
    ]
    table = read_table(delivery.table_uri)
    assert keys(table) == expected_keys(evs)
    for row in table.to_pylist():
        stamp = row["event_time"]
        assert (str(row["date"]), int(row["hour"])) == (f"{stamp:%Y-%m-%d}", stamp.hour)

    root = delivery.table_uri.removeprefix("file://")
    rows = duckdb.sql(
        f"SELECT date, hour, count(*) AS n, epoch_us(min(event_time)) AS first FROM read_parquet("
        f"'{root}/**/*.parquet', hive_partitioning=true) GROUP BY ALL ORDER BY date, hour"
    ).fetchall()
    assert [(str(d), int(h), n) for d, h, n, _ in rows] == [
        ("2026-03-01", 22, 2),
        ("2026-03-01", 23, 3),
        ("2026-03-02", 0, 2),
        ("2026-03-02", 1, 3),
        ("2026-03-02", 2, 2),
    ]
    assert rows[0][3] == int(T0.timestamp() * 1_000_000)
    # the files' writer options (CONTRACTS.md): Snappy, dictionaries on the string columns only
    meta = pq.ParquetFile(f"{root}/date=2026-03-01/hour=22/{name}").metadata
    chunks = [meta.row_group(0).column(i) for i in range(meta.num_columns)]
    assert {c.compression for c in chunks} == {"SNAPPY"}
    encoded = {c.path_in_schema for c in chunks if c.dictionary_page_offset is not None}
    assert encoded == {f.name for f in table.schema if f.type == pa.string()} - {"date"}


async def test_rerunning_over_the_same_stream_writes_nothing_new(
    stream: EventStream, pos_spec: StreamSpec, tmp_path: Path
) -> None:
    evs = events(30, step=timedelta(minutes=20))
    await publish(stream, pos_spec, evs)
    await RawDelivery(stream, tmp_path.as_uri(), _config(pos_spec, max_messages=8)).run_until_idle()
    before = _files(tmp_path)
    assert len(before) > 4

    same = await RawDelivery(stream, tmp_path.as_uri(), _config(pos_spec, max_messages=8)).run_until_idle()
    assert (same.messages, same.files_written) == (0, 0)
    # a replay through a new consumer from the stream's start: every message is known, nothing written
    replay_cfg = _config(pos_spec, durable="replay", max_messages=5)
    replay = await RawDelivery(stream, tmp_path.as_uri(), replay_cfg).run_until_idle()
    assert (replay.already_delivered, replay.files_written, replay.batches) == (30, 0, 0)
    assert _files(tmp_path) == before

    # a lost file is rebuilt by a replay under its own name, with the same rows
    lost = sorted(before)[3]
    lost_path = tmp_path / "devices" / "pos_events" / lost
    content = pq.read_table(lost_path)
    lost_path.unlink()
    rebuilt = await RawDelivery(
        stream, tmp_path.as_uri(), _config(pos_spec, durable="rebuild")
    ).run_until_idle()
    assert (rebuilt.files_written, rebuilt.batches_recovered) == (1, 1)
    assert sorted(_files(tmp_path)) == sorted(before)
    assert pq.read_table(lost_path).equals(content)
    assert keys(read_table(str(tmp_path / "devices" / "pos_events"))) == expected_keys(evs)


class SimulatedCrash(Exception):
    pass


def _crash_at(stage: str, batch_first_seq: int) -> FaultHook:
    """Raise the first time ``stage`` is reached in the batch starting at ``batch_first_seq``."""
    fired: list[str] = []

    def hook(at: str, manifest: BatchManifest) -> None:
        if at == stage and manifest.first_seq == batch_first_seq and not fired:
            fired.append(at)
            raise SimulatedCrash(f"{at} of {manifest.name}")

    return hook


@pytest.mark.parametrize("stage", ["manifest", "file", "files"])
async def test_crash_before_acking_then_rerun_keeps_every_event_exactly_once(
    delivery_nats: EphemeralNatsServer, stream: EventStream, pos_spec: StreamSpec, tmp_path: Path, stage: str
) -> None:
    evs = events(40, step=timedelta(minutes=11))
    await publish(stream, pos_spec, evs[:25])
    cfg = _config(pos_spec, max_messages=10, max_age_s=0.5, ack_wait_s=1.5)
    crashed_stream = JetStreamEventStream(delivery_nats.url, name="crashing")
    async with crashed_stream:
        crashing = RawDelivery(crashed_stream, tmp_path.as_uri(), cfg, fault_hook=_crash_at(stage, 11))
        with pytest.raises(SimulatedCrash):
            await crashing.run_until_idle()
    # the second batch (11..20) has its manifest; depending on the stage, none, some or all files
    assert crashing.ledger.find(15) is not None
    partial = set(_files(tmp_path))
    second = {p for p in partial if p.endswith(part_name(11, 20))}
    assert len(second) == {"manifest": 0, "file": 1, "files": 2}[stage]
    assert all(not p.endswith(part_name(21, 25)) for p in partial)

    await publish(stream, pos_spec, evs[25:])  # new messages arrive before the redelivery
    resumed = RawDelivery(stream, tmp_path.as_uri(), cfg)
    metrics = await resumed.run_until_idle()
    # files all present: the batch is only acknowledged; otherwise it is re-assembled and completed
    done = stage == "files"
    assert (metrics.batches_recovered, metrics.already_delivered) == ((0, 10) if done else (1, 0))
    table = read_table(resumed.table_uri)
    assert keys(table) == expected_keys(evs)  # every event once: no loss, no second copy
    assert table.num_rows == len(evs)
    names = {Path(p).name for p in _files(tmp_path)}
    assert part_name(11, 20) in names  # the interrupted batch kept its boundaries
    assert partial <= set(_files(tmp_path))


async def test_size_triggers_cut_batches_by_messages_and_bytes(
    stream: EventStream, pos_spec: StreamSpec, tmp_path: Path
) -> None:
    evs = events(35)
    await publish(stream, pos_spec, evs)
    by_count = RawDelivery(stream, tmp_path.as_uri(), _config(pos_spec, max_messages=10, fetch_batch=100))
    fetched = await by_count.poll()
    assert fetched == 35 and by_count.buffered == 5  # 3 batches cut inside the fetch
    assert by_count.metrics.batches == 3
    names = {Path(p).name for p in _files(tmp_path)}
    assert names == {part_name(1, 10), part_name(11, 20), part_name(21, 30)}
    await by_count.flush()
    assert part_name(31, 35) in {Path(p).name for p in _files(tmp_path)}

    sizes = [len(encode_event(e)) for e in evs]
    max_bytes = sum(sizes[:4])
    expected, first, acc = [], 1, 0  # cut as soon as the buffered payload reaches max_bytes
    for seq, size in enumerate(sizes, start=1):
        acc += size
        if acc >= max_bytes:
            expected.append(part_name(first, seq))
            first, acc = seq + 1, 0
    by_bytes = RawDelivery(
        stream,
        (tmp_path / "bytes").as_uri(),
        _config(pos_spec, durable="bytes", max_bytes=max_bytes, fetch_batch=100),
    )
    await by_bytes.poll()
    assert expected[0] == part_name(1, 4) and len(expected) >= 7
    assert {Path(p).name for p in _files(tmp_path / "bytes")} == set(expected)
    assert by_bytes.buffered == 35 - (first - 1)


async def test_time_trigger_cuts_after_max_age_of_the_first_message(
    stream: EventStream, pos_spec: StreamSpec, tmp_path: Path
) -> None:
    now = [100.0]
    await publish(stream, pos_spec, events(3))
    delivery = RawDelivery(stream, tmp_path.as_uri(), _config(pos_spec, max_age_s=5.0), clock=lambda: now[0])
    assert await delivery.poll() == 3
    assert delivery.buffered == 3 and not _files(tmp_path)
    now[0] += 4.9
    await delivery.poll()
    assert delivery.buffered == 3
    now[0] += 0.2
    await delivery.poll()
    assert delivery.buffered == 0 and delivery.metrics.batches == 1 and len(_files(tmp_path)) == 1


async def test_malformed_and_duplicate_events_are_counted_and_left_out(
    stream: EventStream, pos_spec: StreamSpec, tmp_path: Path
) -> None:
    evs = events(6)
    future = events(1, start=datetime.now(UTC) + timedelta(days=2))[0]
    bad = [b"\xff\xfe", b'{"device_id": 3}', encode_event(future)]
    await publish(stream, pos_spec, [evs[0], bad[0], *evs[1:4], evs[2], bad[1], *evs[4:], bad[2]])
    delivery = RawDelivery(stream, tmp_path.as_uri(), _config(pos_spec))
    metrics = await delivery.run_until_idle()
    assert metrics.messages == 10
    assert dict(metrics.invalid) == {"malformed_json": 1, "invalid_field": 1, "future_timestamp": 1}
    assert metrics.duplicates == 1 and metrics.rows_written == 6
    assert keys(read_table(delivery.table_uri)) == expected_keys(evs)


async def test_a_recreated_stream_is_refused_instead_of_silently_skipped(
    stream: EventStream, pos_spec: StreamSpec, tmp_path: Path
) -> None:
    await publish(stream, pos_spec, events(4))
    await RawDelivery(stream, tmp_path.as_uri(), _config(pos_spec)).run_until_idle()
    await stream.delete_stream(pos_spec.name)
    await stream.ensure_streams([pos_spec])
    await publish(stream, pos_spec, events(4, start=T0 + timedelta(days=1)))
    with pytest.raises(TerminalError, match="differs from the batch"):
        await RawDelivery(stream, tmp_path.as_uri(), _config(pos_spec)).run_until_idle()
