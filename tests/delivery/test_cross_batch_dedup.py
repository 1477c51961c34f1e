"""Issue 3: every accepted event is in the raw zone exactly once, across delivery batches, kills
and restarts (stream duplicates carry no ``Nats-Msg-Id``, so JetStream cannot drop them)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from delivery_helpers import (
    RECEIVED_AT,
    events,
    expected_keys,
    keys,
    kill_test_config,
    publish,
    read_table,
    subject_of,
)

from abasto.contracts.batches import batch_of, encode_batch
from abasto.contracts.events import DeviceEvent, encode_event
from abasto.delivery import DeliveryConfig, RawDelivery, part_name
from abasto.delivery.layout import DEDUP_STATE, LEDGER_DIR
from abasto.lake.storage import list_files
from abasto.stream.ephemeral import EphemeralNatsServer
from abasto.stream.jetstream import JetStreamEventStream
from abasto.stream.port import EventStream, OutgoingMessage, StreamSpec

RUNNER = Path(__file__).with_name("kill_runner.py")


def _config(spec: StreamSpec, **overrides: object) -> DeliveryConfig:
    values: dict[str, object] = {
        "stream": spec.name,
        "fetch_timeout_s": 0.2,
        "max_age_s": 5.0,
        "ack_wait_s": 30.0,
    }
    values.update(overrides)
    return DeliveryConfig(**values)  # type: ignore[arg-type]


def _table_files(raw: Path) -> dict[str, bytes]:
    """relpath → bytes of the data files and manifests (not the dedup state)."""
    root = raw / "devices" / "pos_events"
    out = {f.relpath: (root / f.relpath).read_bytes() for f in list_files(str(root), suffix=".parquet")}
    ledger = root / LEDGER_DIR
    out |= {f"{LEDGER_DIR}/{p.name}": p.read_bytes() for p in sorted(ledger.glob("*.json"))}
    return out


async def test_copies_landing_in_later_batches_are_written_once(
    stream: EventStream, pos_spec: StreamSpec, tmp_path: Path
) -> None:
    evs = events(100, step=timedelta(minutes=3))
    # 100 events, then 10 re-sent (no msg id): the copies fall into the third 50-message batch
    await publish(stream, pos_spec, [*evs, *evs[40:50]])
    delivery = RawDelivery(stream, tmp_path.as_uri(), _config(pos_spec, max_messages=50))
    metrics = await delivery.run_until_idle()
    assert metrics.messages == 110 and metrics.batches == 3
    assert (metrics.rows_written, metrics.duplicates_across_batches, metrics.duplicates) == (100, 10, 0)
    table = read_table(delivery.table_uri)
    assert table.num_rows == 100 and keys(table) == expected_keys(evs)
    # a batch made only of copies writes neither files nor a manifest
    assert len(delivery.ledger) == 2

    # after a restart the state comes back from the manifests: copies of any batch are dropped
    await publish(stream, pos_spec, [*evs[0:5], *evs[95:100]])
    restarted = RawDelivery(stream, tmp_path.as_uri(), _config(pos_spec, max_messages=50))
    again = await restarted.run_until_idle()
    assert (again.messages, again.rows_written, again.duplicates_across_batches) == (10, 0, 10)
    assert read_table(delivery.table_uri).num_rows == 100
    assert restarted.metrics.as_dict()["duplicates_across_batches"] == 10


async def test_a_batched_record_resent_at_other_boundaries_adds_only_its_new_events(
    stream: EventStream, pos_spec: StreamSpec, tmp_path: Path
) -> None:
    mine = [e for e in events(40, step=timedelta(minutes=4)) if e.device_id == "dev-S0001-1"]  # 20 events
    singles = [
        OutgoingMessage(subject_of(pos_spec, e.store_id, e.device_id), encode_event(e)) for e in mine[:12]
    ]

    def batched(part: Sequence[DeviceEvent]) -> OutgoingMessage:
        return OutgoingMessage(subject_of(pos_spec, "S0001", "dev-S0001-1"), encode_batch(batch_of(part)))

    # the device re-sends 8..11 (already sent one by one) inside a record reaching 15, then re-cuts 10..19
    await stream.publish_batch([*singles, batched(mine[8:16]), batched(mine[10:20])])
    delivery = RawDelivery(stream, tmp_path.as_uri(), _config(pos_spec, max_messages=6))
    metrics = await delivery.run_until_idle()
    table = read_table(delivery.table_uri)
    assert keys(table) == expected_keys(mine)
    assert metrics.duplicates_across_batches + metrics.duplicates == 4 + 6
    assert metrics.duplicates_across_batches >= 4  # the singles 8..11 went out in earlier batches
    by_seq = {r["seq"]: r["batch_index"] for r in table.to_pylist()}
    assert [by_seq[e.seq] for e in mine[10:14]] == [None, None, 4, 5]  # first copies kept
    assert [by_seq[e.seq] for e in mine[16:20]] == [6, 7, 8, 9]


async def test_a_copy_beyond_the_horizon_is_written_again_and_counted(
    stream: EventStream, pos_spec: StreamSpec, tmp_path: Path
) -> None:
    evs = events(60, step=timedelta(minutes=2))  # per device: seqs 0..58 (even) / 1..59 (odd)
    await publish(stream, pos_spec, evs)
    cfg = _config(pos_spec, max_messages=20, dedup_window=20)
    first = await RawDelivery(stream, tmp_path.as_uri(), cfg).run_until_idle()
    assert first.rows_written == 60
    # dev-S0001-1's hwm is 58: horizon 38. Seq 38 is beyond it (written again), 40 within (dropped)
    await publish(stream, pos_spec, [evs[38], evs[40], evs[2]])
    delivery = RawDelivery(stream, tmp_path.as_uri(), cfg)
    metrics = await delivery.run_until_idle()
    assert (metrics.rows_written, metrics.duplicates_across_batches, metrics.beyond_horizon) == (2, 1, 2)
    table = read_table(delivery.table_uri)
    assert table.num_rows == 62
    assert (
        sorted(k for k in keys(table) if keys(table).count(k) > 1)
        == [("dev-S0001-1", 2)] * 2 + [("dev-S0001-1", 38)] * 2
    )
    # the documented horizon, not a bug: a larger window drops them too
    wide = tmp_path / "wide"
    await RawDelivery(
        stream, wide.as_uri(), _config(pos_spec, durable="wide", max_messages=20)
    ).run_until_idle()
    assert keys(read_table(str(wide / "devices" / "pos_events"))) == expected_keys(evs)


async def test_state_of_pruned_manifests_outlives_them(
    delivery_nats: EphemeralNatsServer, tmp_path: Path
) -> None:
    # a stream small enough to drop its oldest messages: their manifests are pruned on start
    size = len(encode_event(events(1)[0]))
    spec = StreamSpec(name="DPOSPRUNE", subjects=("dprune.>",), max_bytes=30 * (size + 120))
    evs = events(80, step=timedelta(minutes=1))
    async with JetStreamEventStream(delivery_nats.url, name="prune-test") as stream:
        await stream.ensure_streams([spec])
        try:
            cfg = _config(spec, max_messages=10)
            for chunk in range(0, 60, 10):  # delivered as they come; the stream drops the oldest
                await publish(stream, spec, evs[chunk : chunk + 10])
                await RawDelivery(stream, tmp_path.as_uri(), cfg).run_until_idle()
            assert (await stream.stream_state(spec.name)).first_seq > 20
            await publish(stream, spec, evs[5:8])  # copies of events whose manifests go away
            delivery = RawDelivery(stream, tmp_path.as_uri(), cfg)
            metrics = await delivery.run_until_idle()
            root = tmp_path / "devices" / "pos_events"
            assert (root / DEDUP_STATE).is_file()
            assert all(m.first_seq > 10 for m in delivery.ledger.manifests())
            assert metrics.duplicates_across_batches == 3
            assert keys(read_table(str(root))) == expected_keys(evs[:60])
            # a third start reads the folded state back
            await publish(stream, spec, [evs[0], *evs[60:62]])
            third = await RawDelivery(stream, tmp_path.as_uri(), cfg).run_until_idle()
            assert (third.rows_written, third.duplicates_across_batches) == (2, 1)
        finally:
            await stream.delete_stream(spec.name)


def _kill_test_messages(spec: StreamSpec) -> tuple[list[OutgoingMessage], list[DeviceEvent]]:
    """67 messages with copies straddling batches of 10: singles, singles re-sent (the batch 11..20
    holds copies of events of 1..10), batched records re-cutting events already sent, a whole
    record re-sent."""
    evs = events(60, step=timedelta(minutes=10))

    def single(e: DeviceEvent) -> OutgoingMessage:
        return OutgoingMessage(subject_of(spec, e.store_id, e.device_id), encode_event(e))

    def record(part: Sequence[DeviceEvent]) -> OutgoingMessage:
        e = part[0]
        return OutgoingMessage(subject_of(spec, e.store_id, e.device_id), encode_batch(batch_of(part)))

    dev1 = [e for e in evs[40:56] if e.device_id == "dev-S0001-1"]
    dev2 = [e for e in evs[44:56] if e.device_id == "dev-S0002-1"]
    msgs = [
        *map(single, evs[:15]),
        *map(single, evs[5:9]),
        *map(single, evs[15:25]),
        *map(single, evs[18:24]),
        *map(single, evs[25:50]),
        record(dev1),
        record(dev2),
        *map(single, evs[56:60]),
        record(dev1),
    ]
    assert len(msgs) == 67
    return msgs, evs


async def _deliver(stream: EventStream, spec: StreamSpec, raw: Path, durable: str) -> None:
    delivery = RawDelivery(
        stream, raw.as_uri(), kill_test_config(spec.name, durable), wall_clock=lambda: RECEIVED_AT
    )
    await delivery.run_until_idle()


@pytest.mark.parametrize(
    ("stage", "what"),
    [
        pytest.param("acked", "between batches", marks=pytest.mark.slow),
        ("file", "mid-batch: manifest and one file written"),
        pytest.param("manifest", "mid-batch: manifest written, no file", marks=pytest.mark.slow),
    ],
)
async def test_kill_9_then_restart_gives_the_files_of_an_uninterrupted_run(
    delivery_nats: EphemeralNatsServer,
    stream: EventStream,
    pos_spec: StreamSpec,
    tmp_path: Path,
    stage: str,
    what: str,
) -> None:
    msgs, evs = _kill_test_messages(pos_spec)
    await stream.publish_batch(msgs)
    reference = tmp_path / "reference"
    await _deliver(stream, pos_spec, reference, "reference")
    expected = _table_files(reference)
    assert keys(read_table(str(reference / "devices" / "pos_events"))) == expected_keys(evs)

    killed = tmp_path / "killed"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(RUNNER),
        delivery_nats.url,
        pos_spec.name,
        killed.as_uri(),
        "killed",
        stage,
        "11",
        cwd=str(RUNNER.parent),
    )
    assert await asyncio.wait_for(proc.wait(), timeout=60) == -signal.SIGKILL, what
    partial = _table_files(killed)
    assert partial and all(expected[name] == data for name, data in partial.items())
    # the batch 11..20 spans two hours (two files) and drops copies of events of batch 1..10
    second = part_name(11, 20)
    assert sum(n.endswith(second) for n in expected) == 2
    assert sum(n.endswith(second) for n in partial) == {"acked": 2, "file": 1, "manifest": 0}[stage]
    assert not any(n.endswith(part_name(21, 30)) for n in partial)

    await _deliver(stream, pos_spec, killed, "killed")  # the restart, same durable consumer
    assert _table_files(killed) == expected  # byte for byte, names included
    table = read_table(str(killed / "devices" / "pos_events"))
    assert table.num_rows == len(evs) and keys(table) == expected_keys(evs)
