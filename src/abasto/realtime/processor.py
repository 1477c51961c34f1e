"""The stream processor: JetStream (POS) → Engine → ALERTS / DLQ.

Per batch: fetch from the durable pull consumer (the next batch is fetched while this one is
handled: read-ahead), run each message through the engine, publish the outputs (alerts with
``Nats-Msg-Id`` = alert id, dead letters ``dlq:<stream seq>`` with the reason header) and wait for
the stream's acknowledgements. An output is not held behind a slow batch: once
it has waited ``OUTPUT_BUDGET_S``, the outputs so far are published before the batch goes on.

Without a checkpoint store (the demo), the inputs are then acknowledged: at-least-once, and a
restart starts from an empty state.

With a :class:`~abasto.realtime.checkpoint.CheckpointStore` the worker checkpoints every
``checkpoint_every`` messages or ``checkpoint_interval_s`` seconds (and when idle or stopping), in
this order (quix-streams' ``Checkpoint.commit``):

1. flush the outputs: every output of the inputs up to stream seq S is stored in ALERTS/DLQ
   (each batch's publishes are awaited before the next fetch, so nothing is pending);
2. write the engine snapshot tagged with S, durably and atomically (fsync + rename);
3. acknowledge the inputs up to S.

On start the worker loads its checkpoint (seq S, or none: empty state and S = 0), recreates its
durable consumer at S + 1 and skips any delivered message with stream seq ≤ the last applied one
(redeliveries after a lost ack). The engine is deterministic, so re-reading S + 1 … in stream
order from the state at S reproduces exactly the outputs the crashed worker produced, with the
same ``Nats-Msg-Id``: the stream drops those already stored (a crash between steps 1 and 2), and
nothing is lost (outputs are stored before the state that no longer produces them). Outputs are
therefore exactly-once in ALERTS/DLQ, provided a worker restarts within the streams' duplicate
window (``nats.duplicate_window_s``, 600 s by default) of its last publish; beyond it a replayed
alert could be stored twice, but with the same alert id (derived from store, SKU and episode), so
consumers still see one alert per id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from abasto.contracts.alerts import Alert, encode_alert
from abasto.contracts.batches import BATCH_INDEX_HEADER
from abasto.errors import ConfigError, ServiceUnavailableError, is_transient
from abasto.realtime.checkpoint import Checkpoint, CheckpointStore
from abasto.realtime.engine import DeadLetter, Output
from abasto.realtime.metrics import ProcessorMetrics
from abasto.realtime.partition import Partition, open_consumer
from abasto.realtime.snapshot import EngineSnapshot
from abasto.stream.jetstream import JetStreamEventStream
from abasto.stream.port import Consumer, EventStream, OutgoingMessage, StreamMessage
from abasto.stream.topology import (
    DETAIL_HEADER,
    DLQ_POS_SUBJECT,
    ORIGIN_SUBJECT_HEADER,
    POS_STREAM,
    REASON_HEADER,
    alerts_subject,
)

log = logging.getLogger(__name__)

_MAX_DETAIL = 240
#: at most this long an output waits behind the rest of its batch before it is published
OUTPUT_BUDGET_S = 0.02


class StreamEngine(Protocol):
    """What the processor needs of an engine: :class:`~abasto.realtime.engine.Engine`, or a wrapper
    around one (the engine may be a compiled class, which Python classes cannot subclass)."""

    @property
    def metrics(self) -> ProcessorMetrics: ...

    def process(self, subject: str, data: bytes) -> list[Output]: ...

    def snapshot(self) -> EngineSnapshot: ...

    def restore(self, snap: EngineSnapshot) -> None: ...


@dataclass(frozen=True, slots=True)
class RunStats:
    messages: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


class Processor:
    def __init__(
        self,
        stream: EventStream,
        engine: StreamEngine,
        *,
        durable: str = "realtime",
        source_stream: str = POS_STREAM,
        batch_size: int = 1_000,
        fetch_timeout_s: float = 0.5,
        ack_wait_s: float = 60.0,
        start_seq: int | None = None,
        partition: Partition | None = None,
        stores: Sequence[str] = (),
        checkpoints: CheckpointStore | None = None,
        checkpoint_every: int = 10_000,
        checkpoint_interval_s: float = 5.0,
    ) -> None:
        """``start_seq``: where a new durable consumer starts (default: the stream's beginning).

        ``partition`` (with the registered ``stores``): this worker's share of the stores; its
        durable consumer is ``<durable>-p<index>of<count>``. ``checkpoints``: checkpoint there (see
        the module docstring); both need the JetStream backend.
        """
        self._stream = stream
        self.engine = engine
        self.partition = partition or Partition()
        self._durable = self.partition.durable(durable)
        self._filters = self.partition.filter_subjects(stores)
        self._source = source_stream
        self._batch = batch_size
        self._fetch_timeout = fetch_timeout_s
        self._ack_wait = ack_wait_s
        self._start_seq = start_seq
        self._consumer: Consumer | None = None
        self.last_run: RunStats | None = None
        self._checkpoints = checkpoints
        self._ckpt_every = max(1, checkpoint_every)
        self._ckpt_interval = checkpoint_interval_s
        #: last stream seq applied to the engine; inputs up to it are not applied again
        self.position = 0
        #: messages applied (over every run of this worker, when checkpointing)
        self.applied = 0
        #: redelivered messages skipped as already applied
        self.skipped = 0
        self.checkpoints_written = 0
        #: time.monotonic() when the last batch was handled (its outputs stored; acked or pending
        #: the next checkpoint)
        self.handled_at: float | None = None
        self._unacked: list[StreamMessage] = []
        self._last_ckpt = time.monotonic()
        if (checkpoints is not None or not self.partition.whole) and not isinstance(
            stream, JetStreamEventStream
        ):
            raise ConfigError("checkpointing and partitioned workers need the JetStream stream backend")

    @property
    def metrics(self) -> ProcessorMetrics:
        return self.engine.metrics

    @property
    def durable(self) -> str:
        return self._durable

    async def bind(self) -> Consumer:
        """Bind the durable consumer (restoring the checkpoint, if any) now; idempotent.

        ``run``/``run_until_idle`` bind on their own; binding first lets a caller start the
        clock, or the publishers, only once the worker is in place.
        """
        return await self._bound()

    async def _bound(self) -> Consumer:
        if self._consumer is None:
            self._consumer = await self._open()
        return self._consumer

    async def _open(self) -> Consumer:
        stream = self._stream
        if self._checkpoints is None and self.partition.whole:
            return await stream.consumer(
                self._source,
                self._durable,
                ack_wait_s=self._ack_wait,
                max_ack_pending=max(self._batch * 4, 1000),
                start_seq=self._start_seq,
            )
        assert isinstance(stream, JetStreamEventStream)  # checked in __init__
        start = self._start_seq
        if self._checkpoints is not None:
            ckpt = await asyncio.to_thread(
                self._checkpoints.load_for, self._durable, self.partition.index, self.partition.count
            )
            if ckpt is not None:
                self.engine.restore(ckpt.engine_state())
                self.position, self.applied = ckpt.stream_seq, ckpt.messages
                start = ckpt.stream_seq + 1
                log.info("%s resumes after stream seq %d", self._durable, ckpt.stream_seq)
        return await open_consumer(
            stream,
            self._source,
            self._durable,
            self._filters,
            start_seq=start,
            reset=self._checkpoints is not None,
            ack_wait_s=self._ack_wait,
            # acks wait for the checkpoint: room for a checkpoint's worth of messages and a batch
            max_ack_pending=max(self._ckpt_every + 2 * self._batch, self._batch * 4, 1000),
        )

    async def run_until_idle(self) -> ProcessorMetrics:
        """Process until the consumer has nothing pending and nothing unacknowledged."""
        consumer = await self._bound()
        started, count = time.perf_counter(), 0
        busy_until = started
        ahead: asyncio.Task[list[StreamMessage]] | None = None
        try:
            while True:
                fetched, ahead = ahead, None
                msgs = await self._fetch(consumer, fetched)
                if msgs:
                    ahead = await self._read_ahead(consumer)
                    await self._handle(msgs)
                    count += len(msgs)
                    busy_until = time.perf_counter()
                    continue
                if self._unacked:
                    await self.checkpoint()
                    continue
                if (await consumer.state()).idle:
                    break
        finally:
            await _drop(ahead)
        # the rate counts the time until the last batch was handled, not the final idle wait
        self.last_run = RunStats(count, busy_until - started)
        return self.metrics

    async def run(self, stop: asyncio.Event) -> None:
        """Process until ``stop`` is set; transient stream errors are retried with backoff.

        A batch fetched ahead when ``stop`` is set is handled before returning (as a fetch in
        progress would be): stopping waits at most one fetch timeout and one batch.
        """
        backoff = 0.2
        ahead: asyncio.Task[list[StreamMessage]] | None = None
        try:
            while not stop.is_set() or ahead is not None:
                try:
                    consumer = await self._bound()
                    fetched, ahead = ahead, None
                    msgs = await self._fetch(consumer, fetched)
                    if msgs:
                        if not stop.is_set():
                            ahead = await self._read_ahead(consumer)
                        await self._handle(msgs, stop)
                    elif self._unacked:
                        await self.checkpoint()  # idle: make the progress durable
                    backoff = 0.2
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    if stop.is_set():
                        break  # what was fetched ahead and not handled is redelivered
                    log.warning("stream unavailable (%r); retrying in %.1fs", exc, backoff)
                    await _sleep_or_stop(stop, backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            await _drop(ahead)
        if self._unacked:
            await self.checkpoint()

    async def _fetch(
        self, consumer: Consumer, ahead: asyncio.Task[list[StreamMessage]] | None
    ) -> list[StreamMessage]:
        """The batch fetched ahead, if any (the caller forgets the task first), else a fetch now."""
        if ahead is not None:
            return await ahead
        return await consumer.fetch(self._batch, timeout_s=self._fetch_timeout)

    async def _read_ahead(self, consumer: Consumer) -> asyncio.Task[list[StreamMessage]]:
        """Fetch the next batch while this one is handled.

        The engine runs without yielding, so the request is sent now: two turns of the event loop
        let the fetch send its pull request and the client's flusher write it. The stream then
        delivers the next batch during the engine's work instead of after it. Messages arrive in
        stream order and are handled after the current batch, so the order of application, the
        outputs and the checkpoint order (module docstring) are unchanged.
        """
        task = asyncio.create_task(consumer.fetch(self._batch, timeout_s=self._fetch_timeout))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return task

    async def _handle(self, msgs: list[StreamMessage], stop: asyncio.Event | None = None) -> None:
        outgoing: list[OutgoingMessage] = []
        oldest = 0.0  # when the first output still unpublished was produced
        for msg in msgs:
            if msg.stream_seq <= self.position:
                self.skipped += 1  # applied before a lost ack (or a crash): its outputs are stored
                continue
            outs = self.engine.process(msg.subject, msg.data)
            if outs:
                if not outgoing:
                    oldest = time.monotonic()
                outgoing += [_to_message(out, msg) for out in outs]
            self.position = msg.stream_seq
            self.applied += 1
            if outgoing and time.monotonic() - oldest >= OUTPUT_BUDGET_S:
                # an output waited its budget behind the batch: publish what there is. Safe at any
                # point: outputs are stored before the checkpoint that would skip their inputs,
                # and a replay republishes them under the same ids (dropped as duplicates)
                await self._publish(outgoing, stop)
                outgoing = []
        if outgoing:
            await self._publish(outgoing, stop)
        if self._checkpoints is None:
            for msg in msgs:
                await msg.ack()
            self.handled_at = time.monotonic()
            return
        self._unacked += msgs
        if (
            len(self._unacked) >= self._ckpt_every
            or time.monotonic() - self._last_ckpt >= self._ckpt_interval
        ):
            await self.checkpoint()
        self.handled_at = time.monotonic()

    async def checkpoint(self) -> None:
        """Commit: outputs flushed → state written at ``position`` → inputs acknowledged.

        Step 1 holds on entry: :meth:`_handle` awaited the stream's acks of every output.
        """
        store = self._checkpoints
        if store is None:
            return
        ckpt = Checkpoint.of(
            self._durable,
            self.partition.index,
            self.partition.count,
            self.position,
            self.applied,
            self.engine.snapshot(),
        )
        await asyncio.to_thread(store.save, ckpt)
        self.checkpoints_written += 1
        unacked, self._unacked = self._unacked, []
        for msg in unacked:
            await msg.ack()
        self._last_ckpt = time.monotonic()

    async def _publish(self, outgoing: list[OutgoingMessage], stop: asyncio.Event | None) -> None:
        """Publish until acknowledged: the inputs are not acked before their outputs are stored."""
        backoff = 0.2
        while True:
            try:
                await self._stream.publish_batch(outgoing)
                return
            except ServiceUnavailableError as exc:
                if stop is not None and stop.is_set():
                    raise
                log.warning("publishing %d outputs failed (%r); retrying", len(outgoing), exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


def _to_message(out: Output, source: StreamMessage) -> OutgoingMessage:
    if isinstance(out, Alert):
        return OutgoingMessage(
            subject=alerts_subject(out.store_id),
            data=encode_alert(out),
            msg_id=out.alert_id,
            headers={"Abasto-Alert-Kind": out.kind},
        )
    return _dead_letter(out, source)


def _dead_letter(dl: DeadLetter, source: StreamMessage) -> OutgoingMessage:
    detail = " ".join(dl.detail.split())[:_MAX_DETAIL] or "-"
    headers = {REASON_HEADER: dl.reason, ORIGIN_SUBJECT_HEADER: dl.subject, DETAIL_HEADER: detail}
    msg_id = f"dlq:{source.stream_seq}"
    if dl.index is not None:  # one event of a batched record: one dead letter per index
        msg_id = f"{msg_id}:{dl.index}"
        headers[BATCH_INDEX_HEADER] = str(dl.index)
    return OutgoingMessage(subject=DLQ_POS_SUBJECT, data=dl.data, msg_id=msg_id, headers=headers)


async def _drop(task: asyncio.Task[list[StreamMessage]] | None) -> None:
    """Cancel an unused read-ahead; its messages, unacknowledged, are redelivered."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return
