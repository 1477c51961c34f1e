"""The processor on a real JetStream: POS → alerts on ALERTS, rejects on DLQ, resume, replay."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from realtime_doubles import SKU, Device, FlatPattern, local, reference

from abasto.contracts.alerts import decode_alert
from abasto.realtime.engine import Engine, Output
from abasto.realtime.metrics import ProcessorMetrics
from abasto.realtime.processor import Processor
from abasto.realtime.snapshot import EngineSnapshot
from abasto.settings import NatsSettings
from abasto.stream.ephemeral import EphemeralNatsServer
from abasto.stream.jetstream import JetStreamEventStream
from abasto.stream.port import EventStream, OutgoingMessage, StreamMessage
from abasto.stream.topology import REASON_HEADER, abasto_streams


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EphemeralNatsServer]:
    with EphemeralNatsServer(tmp_path_factory.mktemp("nats-rt")) as srv:
        yield srv


@pytest.fixture
async def stream(server: EphemeralNatsServer) -> AsyncIterator[EventStream]:
    async with JetStreamEventStream(server.url) as s:
        for name in ("POS", "ALERTS", "DLQ"):  # a clean slate per test
            with contextlib.suppress(Exception):  # absent on first use
                await s.js.delete_stream(name)
        await s.ensure_streams(abasto_streams(NatsSettings(stream_max_bytes=256 * 1024 * 1024)))
        yield s


_readers = itertools.count()


def engine() -> Engine:
    return Engine(FlatPattern({("S1", SKU): 2.0}), reference())


async def put(stream: EventStream, msgs: list[tuple[str, bytes]]) -> None:
    await stream.publish_batch([OutgoingMessage(s, d) for s, d in msgs])  # as MQTT does: no msg id


async def read_all(stream: EventStream, name: str) -> list[StreamMessage]:
    consumer = await stream.consumer(name, f"reader-{name}-{next(_readers)}")
    out: list[StreamMessage] = []
    while batch := await consumer.fetch(500, timeout_s=0.3):
        out += batch
    return out


def day_of_events(dev: Device) -> list[tuple[str, bytes]]:
    msgs = [dev.stock(local(14, 8), 12)]  # 12 units at 2/h: out by ~14:00, truck tomorrow 09:00
    msgs += [dev.sale(local(14, 8, 30) + k * (local(14, 9) - local(14, 8)), 1) for k in range(6)]
    return msgs


async def test_alerts_and_dead_letters_land_on_their_streams(stream: EventStream) -> None:
    dev = Device("S1")
    msgs = day_of_events(dev)
    msgs += [(dev.subject, b"{garbage"), ("pos.S2.dev-S2-1", dev.log[1][1]), msgs[2]]  # bad, spoofed, resent
    await put(stream, msgs)
    proc = Processor(stream, engine(), batch_size=4)
    metrics = await proc.run_until_idle()
    assert (metrics.received, metrics.accepted, metrics.duplicates) == (len(msgs), 7, 1)
    assert dict(metrics.rejected) == {"malformed_json": 1, "store_mismatch": 1}
    alerts = await read_all(stream, "ALERTS")
    (alert_msg,) = alerts
    alert = decode_alert(alert_msg.data)
    assert alert_msg.subject == "alerts.S1" and alert_msg.msg_id == alert.alert_id
    assert alert.kind == "projected_stockout" and alert.store_id == "S1"
    dlq = await read_all(stream, "DLQ")
    assert sorted(m.headers[REASON_HEADER] for m in dlq) == ["malformed_json", "store_mismatch"]
    assert {m.subject for m in dlq} == {"dlq.pos"}
    assert b"{garbage" in {m.data for m in dlq}
    assert proc.last_run is not None and proc.last_run.messages == len(msgs)


async def test_replay_from_scratch_does_not_duplicate_alerts(stream: EventStream) -> None:
    await put(stream, day_of_events(Device("S1")))
    await Processor(stream, engine(), durable="first").run_until_idle()
    await Processor(stream, engine(), durable="replay").run_until_idle()  # same input, fresh state
    assert len(await read_all(stream, "ALERTS")) == 1
    assert (await stream.stream_state("DLQ")).messages == 0


async def test_durable_consumer_resumes_where_it_stopped(stream: EventStream) -> None:
    dev = Device("S1")
    first = [dev.stock(local(14, 8), 100), dev.sale(local(14, 9))]
    await put(stream, first)
    p1 = Processor(stream, engine(), durable="worker")
    await p1.run_until_idle()
    second = [dev.sale(local(14, 10)), dev.sale(local(14, 11))]
    await put(stream, second)
    p2 = Processor(stream, engine(), durable="worker")  # a restarted worker
    m2 = await p2.run_until_idle()
    assert m2.received == len(second)


async def test_run_until_stopped(stream: EventStream) -> None:
    proc = Processor(stream, engine(), fetch_timeout_s=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(proc.run(stop))
    await put(stream, day_of_events(Device("S1")))
    for _ in range(100):
        if proc.metrics.alerts_total:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert proc.metrics.alerts_total == 1 and proc.metrics.accepted == 7


async def test_a_long_run_of_sales_is_processed_whole(stream: EventStream, tmp_path: Path) -> None:
    """6,000 sales over many fetch batches: every one accepted, the run's rate recorded (speed itself
    is measured by ``abasto bench realtime``, not asserted here)."""
    devices = [Device(f"S{i}") for i in (1, 2)]
    msgs: list[tuple[str, bytes]] = []
    for dev in devices:
        msgs.append(dev.stock(local(14, 8), 5000))
    for k in range(3000):
        for dev in devices:
            msgs.append(dev.sale(local(14, 8) + k * (local(14, 8, 1) - local(14, 8)) / 5, 1))
    await put(stream, msgs)
    proc = Processor(stream, Engine(FlatPattern({("S1", SKU): 2.0, ("S2", SKU): 2.0}), reference()))
    await proc.run_until_idle()
    assert proc.metrics.accepted == len(msgs)
    assert proc.last_run is not None and proc.last_run.rate > 0, proc.last_run


class _StopAfterFirst:
    """An engine that asks its worker to stop once it has processed one message."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.engine = engine()
        self.stop = stop
        self.seen: list[bytes] = []

    @property
    def metrics(self) -> ProcessorMetrics:
        return self.engine.metrics

    def process(self, subject: str, data: bytes) -> list[Output]:
        self.seen.append(data)
        self.stop.set()
        return self.engine.process(subject, data)

    def snapshot(self) -> EngineSnapshot:
        return self.engine.snapshot()

    def restore(self, snap: EngineSnapshot) -> None:
        self.engine.restore(snap)


async def test_a_batch_read_ahead_is_handled_before_stopping(stream: EventStream) -> None:
    """The worker fetches the next batch while handling one; stopping handles the batch read ahead,
    and the same worker then goes on from the next message: none lost, none applied twice."""
    dev = Device("S1")
    msgs = [dev.stock(local(14, 8), 500)] + [dev.sale(local(14, 8, k + 1)) for k in range(29)]
    await put(stream, msgs)
    stop = asyncio.Event()
    wrapped = _StopAfterFirst(stop)
    proc = Processor(stream, wrapped, batch_size=10, fetch_timeout_s=0.3)
    await asyncio.wait_for(proc.run(stop), timeout=10)
    assert wrapped.seen == [d for _, d in msgs[:20]]  # the first batch and the one read ahead
    assert proc.handled_at is not None
    await proc.run_until_idle()
    assert wrapped.seen == [d for _, d in msgs]
    assert (proc.metrics.accepted, proc.metrics.duplicates, proc.applied) == (30, 0, 30)
