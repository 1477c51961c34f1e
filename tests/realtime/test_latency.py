"""Latency mechanics: fetches return what is there, batches publish whole, outputs keep a budget.

A fetch must hand over the messages available (or the first ones to arrive) at once, not wait for
a full batch or for its expiry; none may be lost or repeated across fetches, including after a
request that expired on the client side; a batch publish must still store everything when the
client's window of pending publishes is smaller than the batch; and the processor must publish an
output once it has waited ``OUTPUT_BUDGET_S`` behind the rest of its batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest
from realtime_doubles import SKU, FlatPattern, reference

from abasto.realtime.engine import DeadLetter, Engine, Output
from abasto.realtime.metrics import ProcessorMetrics
from abasto.realtime.processor import OUTPUT_BUDGET_S, Processor
from abasto.realtime.snapshot import EngineSnapshot
from abasto.settings import NatsSettings
from abasto.stream.ephemeral import EphemeralNatsServer
from abasto.stream.jetstream import JetStreamConsumer, JetStreamEventStream
from abasto.stream.port import OutgoingMessage, PublishResult, StreamSpec
from abasto.stream.topology import abasto_streams

pytestmark = pytest.mark.services

NAME = "LATFETCH"
SUBJECT = "latfetch.s1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EphemeralNatsServer]:
    with EphemeralNatsServer(tmp_path_factory.mktemp("nats-latency")) as srv:
        yield srv


@pytest.fixture
async def stream(server: EphemeralNatsServer) -> AsyncIterator[JetStreamEventStream]:
    async with JetStreamEventStream(server.url, max_pending_publishes=16) as s:
        with contextlib.suppress(Exception):  # absent on first use
            await s.js.delete_stream(NAME)
        await s.ensure_streams([StreamSpec(name=NAME, subjects=("latfetch.>",))])
        yield s


async def _consumer(stream: JetStreamEventStream, durable: str = "lat") -> JetStreamConsumer:
    consumer = await stream.consumer(NAME, durable, ack_wait_s=30.0)
    assert isinstance(consumer, JetStreamConsumer)
    return consumer


async def _put(stream: JetStreamEventStream, first: int, count: int) -> None:
    await stream.publish_batch(
        [OutgoingMessage(SUBJECT, f"m{i}".encode()) for i in range(first, first + count)]
    )


async def test_fetch_returns_the_available_messages_without_waiting_for_a_full_batch(
    stream: JetStreamEventStream,
) -> None:
    await _put(stream, 0, 7)
    consumer = await _consumer(stream)
    t0 = time.monotonic()
    msgs = await consumer.fetch(1_000, timeout_s=5.0)
    took = time.monotonic() - t0
    assert [m.data for m in msgs] == [f"m{i}".encode() for i in range(7)]
    assert took < 2.0, f"fetch held 7 available messages for {took:.2f} s (timeout 5 s)"


async def test_fetch_returns_a_message_published_while_it_waits(stream: JetStreamEventStream) -> None:
    consumer = await _consumer(stream)

    async def later() -> None:
        await asyncio.sleep(0.2)
        await _put(stream, 0, 1)

    task = asyncio.create_task(later())
    t0 = time.monotonic()
    msgs = await consumer.fetch(100, timeout_s=5.0)
    took = time.monotonic() - t0
    await task
    assert [m.data for m in msgs] == [b"m0"]
    assert 0.15 < took < 2.5, f"fetch returned after {took:.2f} s for a message sent at 0.2 s"


async def test_an_empty_fetch_waits_out_its_timeout_and_returns_nothing(stream: JetStreamEventStream) -> None:
    consumer = await _consumer(stream)
    t0 = time.monotonic()
    assert await consumer.fetch(10, timeout_s=0.3) == []
    assert 0.2 < time.monotonic() - t0 < 3.0


async def test_batches_follow_the_stream_without_loss_or_repeat_across_expired_requests(
    stream: JetStreamEventStream,
) -> None:
    consumer = await _consumer(stream)
    assert await consumer.fetch(10, timeout_s=0.05) == []  # a request the client gave up on
    await _put(stream, 0, 250)
    sizes: list[int] = []
    seqs: list[int] = []
    deadline = time.monotonic() + 20
    while len(seqs) < 250 and time.monotonic() < deadline:
        msgs = await consumer.fetch(100, timeout_s=1.0)
        if msgs:
            sizes.append(len(msgs))
        for m in msgs:
            seqs.append(m.stream_seq)
            await m.ack()
    assert seqs == list(range(1, 251))
    assert max(sizes) == 100
    assert await consumer.fetch(10, timeout_s=0.2) == []
    state = await consumer.state()
    assert (state.pending, state.ack_pending) == (0, 0)
    # every delivered byte was handed over: the subscription is not drifting toward slow-consumer drops
    assert consumer._sub.pending_bytes == 0


async def test_a_batch_larger_than_the_pending_window_is_stored_whole(stream: JetStreamEventStream) -> None:
    # the stream allows 16 pending publishes: the batch of 200 waits for room instead of failing
    results = await stream.publish_batch([OutgoingMessage(SUBJECT, f"b{i}".encode()) for i in range(200)])
    assert [r.seq for r in results] == list(range(1, 201))
    assert not any(r.duplicate for r in results)
    assert (await stream.stream_state(NAME)).messages == 200


class _SlowEngine:
    """An engine taking ``per_message_s`` per message; the first message yields a dead letter."""

    def __init__(self, per_message_s: float) -> None:
        self.engine = Engine(FlatPattern({("S1", SKU): 2.0}), reference())
        self.per_message_s = per_message_s
        self.seen = 0

    @property
    def metrics(self) -> ProcessorMetrics:
        return self.engine.metrics

    def process(self, subject: str, data: bytes) -> list[Output]:
        time.sleep(self.per_message_s)
        self.seen += 1
        if self.seen == 1:
            return [DeadLetter(subject=subject, data=data, reason="test", detail="first of the batch")]
        return []

    def snapshot(self) -> EngineSnapshot:
        return self.engine.snapshot()

    def restore(self, snap: EngineSnapshot) -> None:
        self.engine.restore(snap)


class _RecordingStream(JetStreamEventStream):
    """Notes how far the engine had got each time the processor published outputs."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.engine: _SlowEngine | None = None
        self.published_after: list[tuple[int, int]] = []  # (messages processed, outputs)

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> list[PublishResult]:
        assert self.engine is not None
        self.published_after.append((self.engine.seen, len(messages)))
        return await super().publish_batch(messages)


async def test_an_output_is_published_within_its_budget_not_after_the_whole_batch(
    server: EphemeralNatsServer,
) -> None:
    async with _RecordingStream(server.url) as stream:
        for name in ("POS", "DLQ", "ALERTS"):
            with contextlib.suppress(Exception):
                await stream.js.delete_stream(name)
        await stream.ensure_streams(abasto_streams(NatsSettings(stream_max_bytes=64 * 1024 * 1024)))
        engine = stream.engine = _SlowEngine(per_message_s=OUTPUT_BUDGET_S * 0.75)
        await stream.publish_batch([OutgoingMessage(f"pos.S1.d1.{i}", b"{}") for i in range(12)])
        stream.published_after.clear()
        processor = Processor(stream, engine, durable="lat-budget", batch_size=12)
        await processor.run_until_idle()
        assert engine.seen == 12
        # one fetch of 12 messages taking ~0.18 s: the dead letter of the first left after ≤ 4
        assert len(stream.published_after) == 1
        processed, outputs = stream.published_after[0]
        assert outputs == 1
        assert processed <= 4, f"the output waited for {processed} of 12 messages"
        assert (await stream.stream_state("DLQ")).messages == 1
