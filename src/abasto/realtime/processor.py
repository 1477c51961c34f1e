"""The stream processor: JetStream (POS) → Engine → ALERTS / DLQ, with at-least-once delivery.

Per batch: fetch from the durable pull consumer, run each message through the engine, publish the
outputs (alerts with ``Nats-Msg-Id`` = alert id, dead letters with the reason header) and only then
acknowledge the inputs. A crash before the acks redelivers the batch; alert ids and the dead-letter
ids (``dlq:<stream seq>``) make the re-published outputs duplicates the stream drops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from abasto.contracts.alerts import Alert, encode_alert
from abasto.errors import ServiceUnavailableError, is_transient
from abasto.realtime.engine import DeadLetter, Engine, Output
from abasto.realtime.metrics import ProcessorMetrics
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
        engine: Engine,
        *,
        durable: str = "realtime",
        source_stream: str = POS_STREAM,
        batch_size: int = 1_000,
        fetch_timeout_s: float = 0.5,
        ack_wait_s: float = 60.0,
        start_seq: int | None = None,
    ) -> None:
        """``start_seq``: where a new durable consumer starts (default: the stream's beginning)."""
        self._stream = stream
        self.engine = engine
        self._durable = durable
        self._source = source_stream
        self._batch = batch_size
        self._fetch_timeout = fetch_timeout_s
        self._ack_wait = ack_wait_s
        self._start_seq = start_seq
        self._consumer: Consumer | None = None
        self.last_run: RunStats | None = None

    @property
    def metrics(self) -> ProcessorMetrics:
        return self.engine.metrics

    async def _bound(self) -> Consumer:
        if self._consumer is None:
            self._consumer = await self._stream.consumer(
                self._source,
                self._durable,
                ack_wait_s=self._ack_wait,
                max_ack_pending=max(self._batch * 4, 1000),
                start_seq=self._start_seq,
            )
        return self._consumer

    async def run_until_idle(self) -> ProcessorMetrics:
        """Process until the consumer has nothing pending and nothing unacknowledged."""
        consumer = await self._bound()
        started, count = time.perf_counter(), 0
        busy_until = started
        while True:
            msgs = await consumer.fetch(self._batch, timeout_s=self._fetch_timeout)
            if msgs:
                await self._handle(msgs)
                count += len(msgs)
                busy_until = time.perf_counter()
                continue
            if (await consumer.state()).idle:
                break
        # the rate counts the time until the last batch was handled, not the final idle wait
        self.last_run = RunStats(count, busy_until - started)
        return self.metrics

    async def run(self, stop: asyncio.Event) -> None:
        """Process until ``stop`` is set; transient stream errors are retried with backoff."""
        backoff = 0.2
        while not stop.is_set():
            try:
                consumer = await self._bound()
                msgs = await consumer.fetch(self._batch, timeout_s=self._fetch_timeout)
                if msgs:
                    await self._handle(msgs, stop)
                backoff = 0.2
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("stream unavailable (%r); retrying in %.1fs", exc, backoff)
                await _sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, 5.0)

    async def _handle(self, msgs: list[StreamMessage], stop: asyncio.Event | None = None) -> None:
        outgoing: list[OutgoingMessage] = []
        for msg in msgs:
            for out in self.engine.process(msg.subject, msg.data):
                outgoing.append(_to_message(out, msg))
        if outgoing:
            await self._publish(outgoing, stop)
        for msg in msgs:
            await msg.ack()

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
    return OutgoingMessage(
        subject=DLQ_POS_SUBJECT,
        data=dl.data,
        msg_id=f"dlq:{source.stream_seq}",
        headers={REASON_HEADER: dl.reason, ORIGIN_SUBJECT_HEADER: dl.subject, DETAIL_HEADER: detail},
    )


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return
