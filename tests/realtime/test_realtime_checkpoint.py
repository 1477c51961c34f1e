"""Checkpointed workers: snapshot/restore, kill -9 and restart, and workers splitting the stores."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from checkpoint_world import LiveDay, alerts_by_id, live_day, reference_alerts, stored_alerts

from abasto.contracts.alerts import Alert
from abasto.contracts.events import encode_event
from abasto.devices.simulator import publish_stream
from abasto.errors import ConfigError, InvalidInputError
from abasto.realtime.checkpoint import Checkpoint, CheckpointStore
from abasto.realtime.engine import Output
from abasto.realtime.partition import Partition, partition_of
from abasto.realtime.processor import Processor
from abasto.realtime.snapshot import EngineSnapshot, decode_snapshot, encode_snapshot
from abasto.settings import NatsSettings
from abasto.stream.ephemeral import EphemeralNatsServer
from abasto.stream.jetstream import JetStreamEventStream
from abasto.stream.topology import abasto_streams, pos_subject

FAST_STORES = 110  # ≈ 21k events, ≈ 300 alerts


def messages(day: LiveDay) -> list[tuple[str, bytes]]:
    return [(pos_subject(e.store_id, e.device_id), encode_event(e)) for e in day.events]


def alerts_of(outputs: list[Output]) -> dict[str, bytes]:
    return alerts_by_id([o for o in outputs if isinstance(o, Alert)])


# --- state snapshot, no server ---------------------------------------------------------------------


def test_restored_engine_continues_exactly_like_the_uninterrupted_one() -> None:
    day = live_day(30)
    msgs = messages(day)
    whole = day.engine()
    expected = [o for s, d in msgs for o in whole.process(s, d)]
    assert alerts_of(expected), "the day must raise alerts for the test to mean anything"

    outputs: list[Output] = []
    engine = day.engine()
    cuts = sorted(random.Random(5).sample(range(1, len(msgs)), 4))
    for a, b in zip([0, *cuts], [*cuts, len(msgs)], strict=True):
        outputs += [o for s, d in msgs[a:b] for o in engine.process(s, d)]
        # a new engine (as after kill -9) from the encoded snapshot only
        snap = decode_snapshot(encode_snapshot(engine.snapshot()))
        engine = day.engine()
        engine.restore(snap)

    assert outputs == expected
    assert engine.metrics.as_dict() == whole.metrics.as_dict()

    # (decoded on both sides: an int velocity mass comes back as the equal float)
    def roundtrip(snap: EngineSnapshot) -> EngineSnapshot:
        return decode_snapshot(encode_snapshot(snap))

    assert roundtrip(engine.snapshot()) == roundtrip(whole.snapshot())


def test_skipping_calm_pairs_changes_no_output() -> None:
    """The detector's shortcut for unchanged pairs (and the compact demand series) are exact: the
    same alerts, counters and state as an engine that computes every evaluation in full."""
    day = live_day(30)
    msgs = messages(day)
    fast, full = day.engine(), day.engine()
    full._detector._monotone = False  # never memoises a calm pair
    assert [o for s, d in msgs for o in fast.process(s, d)] == [
        o for s, d in msgs for o in full.process(s, d)
    ]
    assert fast.metrics.as_dict() == full.metrics.as_dict()
    assert encode_snapshot(fast.snapshot()) == encode_snapshot(full.snapshot())
    assert any(st.calm_now is not None for st in fast.pairs())


def test_checkpoint_file_is_replaced_atomically_and_checked(tmp_path: Path) -> None:
    day = live_day(30)
    engine = day.engine()
    for s, d in messages(day)[:500]:
        engine.process(s, d)
    store = CheckpointStore(tmp_path / "ckpt")
    assert store.load("w") is None
    store.save(Checkpoint.of("w", 1, 3, 41, 500, engine.snapshot()))
    store.save(Checkpoint.of("w", 1, 3, 500, 500, engine.snapshot()))
    assert sorted(p.name for p in store.directory.iterdir()) == ["w.ckpt"]  # no temporary left
    ckpt = store.load_for("w", 1, 3)
    assert ckpt is not None
    assert ckpt.stream_seq == 500
    assert ckpt.engine_state() == engine.snapshot()
    with pytest.raises(ConfigError, match="partition 1 of 3"):
        store.load_for("w", 0, 2)
    store.path("w").write_bytes(b"ABASTOCK" + b"\xc1garbage")
    with pytest.raises(InvalidInputError, match="damaged"):
        store.load("w")


def test_partitions_cover_every_store_once() -> None:
    stores = [f"S{i:04d}" for i in range(1, 301)]
    owners = {s: [k for k in range(3) if Partition(k, 3).owns(s)] for s in stores}
    assert all(len(o) == 1 for o in owners.values())
    sizes = [sum(1 for o in owners.values() if o == [k]) for k in range(3)]
    assert min(sizes) > 60  # the hash spreads the stores
    assert Partition(2, 3).filter_subjects(stores) == [
        f"pos.{s}.>" for s in stores if partition_of(s, 3) == 2
    ]
    assert Partition().filter_subjects(stores) == ["pos.>"]
    with pytest.raises(InvalidInputError):
        Partition(3, 3)


# --- on a real JetStream ---------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EphemeralNatsServer]:
    with EphemeralNatsServer(tmp_path / "nats") as srv:
        yield srv


@pytest.fixture
async def stream(server: EphemeralNatsServer) -> AsyncIterator[JetStreamEventStream]:
    async with JetStreamEventStream(server.url) as s:
        # the workers' own defaults, so their ensure_streams changes nothing
        await s.ensure_streams(abasto_streams(NatsSettings()))
        yield s


def worker_command(*args: str) -> list[str]:
    """``python -m abasto.cli realtime run …`` once the command is registered, else its module."""
    from abasto.cli import app  # noqa: PLC0415

    registered = any(g.name == "realtime" for g in app.registered_groups)
    entry = ["abasto.cli", "realtime"] if registered else ["abasto.cli.realtime"]
    return [sys.executable, "-m", *entry, "run", *args]


def _seq_of(store: CheckpointStore, durable: str) -> int:
    with contextlib.suppress(InvalidInputError):
        ckpt = store.load(durable)
        return 0 if ckpt is None else ckpt.stream_seq
    return 0


async def run_with_kills(
    tmp_path: Path, server: EphemeralNatsServer, day: LiveDay, last_seq: int, kills: int, seed: int
) -> list[int]:
    """Start the worker, SIGKILL it at random points ``kills`` times, then let it finish.

    Returns the checkpointed seq each killed worker had reached.
    """
    world_dir, pattern_path = day.save(tmp_path / "inputs")
    store = CheckpointStore(tmp_path / "ckpt")
    env = {**os.environ, "ABASTO_HOME": str(tmp_path / "home"), "ABASTO_NATS__URL": server.url}
    args = [
        "--once",
        "--world",
        str(world_dir),
        "--pattern",
        str(pattern_path),
        "--checkpoint-dir",
        str(store.directory),
        "--checkpoint-every",
        "700",
        "--batch",
        "250",
    ]
    rng = random.Random(seed)
    targets = sorted(rng.randrange(last_seq // 10, last_seq * 9 // 10) for _ in range(kills))
    reached: list[int] = []
    for target in targets:
        proc = subprocess.Popen(worker_command(*args), env=env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while proc.poll() is None and _seq_of(store, "realtime") < target and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(rng.uniform(0.0, 0.15))  # land anywhere: mid-batch, mid-publish, mid-write
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL, "the worker finished before it could be killed"
        reached.append(_seq_of(store, "realtime"))
    done = subprocess.run(
        worker_command(*args), check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    ckpt = store.load("realtime")
    assert ckpt is not None
    assert ckpt.stream_seq == last_seq
    return reached


async def check_kill_and_restart(
    tmp_path: Path, server: EphemeralNatsServer, stream: JetStreamEventStream, stores: int, kills: int
) -> None:
    day = live_day(stores)
    await publish_stream(day.events, stream)
    last_seq = (await stream.stream_state("POS")).last_seq
    expected = alerts_by_id(await reference_alerts(stream, day))
    assert len(expected) > 100

    reached = await run_with_kills(tmp_path, server, day, last_seq, kills, seed=stores + kills)

    assert all(0 < r < last_seq for r in reached), reached  # every kill landed mid-stream
    stored = await stored_alerts(stream, "check-alerts")
    ids = [a.alert_id for a in stored]
    assert len(ids) == len(set(ids)), "an alert id was stored twice"
    assert alerts_by_id(stored) == expected  # same ids, same content, byte for byte
    assert (await stream.stream_state("ALERTS")).messages == len(expected)


async def test_kill_9_and_restart_changes_no_alert(
    tmp_path: Path, server: EphemeralNatsServer, stream: JetStreamEventStream
) -> None:
    await check_kill_and_restart(tmp_path, server, stream, stores=FAST_STORES, kills=3)


@pytest.mark.slow
async def test_kill_9_five_times_on_a_bigger_day_changes_no_alert(
    tmp_path: Path, server: EphemeralNatsServer, stream: JetStreamEventStream
) -> None:
    await check_kill_and_restart(tmp_path, server, stream, stores=500, kills=5)


async def test_two_workers_split_the_stores_and_raise_the_same_alerts_as_one(
    tmp_path: Path, stream: JetStreamEventStream
) -> None:
    day = live_day(40)
    await publish_stream(day.events, stream)
    expected = alerts_by_id(await reference_alerts(stream, day))
    assert expected

    store = CheckpointStore(tmp_path / "ckpt")
    workers = [
        Processor(
            stream,
            day.engine(),
            partition=Partition(k, 2),
            stores=day.store_ids,
            checkpoints=store,
            checkpoint_every=1_000,
            batch_size=300,
        )
        for k in range(2)
    ]
    await asyncio.gather(*(w.run_until_idle() for w in workers))

    assert [w.durable for w in workers] == ["realtime-p0of2", "realtime-p1of2"]
    stored = await stored_alerts(stream, "check-alerts")
    assert alerts_by_id(stored) == expected
    assert len(stored) == len(expected)
    for k, w in enumerate(workers):  # JetStream gave each worker only its own stores
        assert w.metrics.accepted > 0
        assert {p.store_id for p in w.engine.pairs()} <= {s for s in day.store_ids if partition_of(s, 2) == k}
    assert sum(w.metrics.accepted for w in workers) == len(day.events)
    assert all(store.load(w.durable) is not None for w in workers)
